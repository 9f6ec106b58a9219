#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Installs cloak on a Kubernetes node (containerd 1.6), from a build tree:
#
#   packaging/install.sh [--prefix DIR] [--destdir DIR] [--build-dir DIR] [--sysconfdir DIR]
#                        [--profile none|sev-snp|tdx|auto] [--uninstall]
#
#   --prefix      /usr/local         binaries and shared files
#   --destdir     (none)             staged install: every file goes under DIR, while the
#                                    paths written into files name the real prefix/sysconfdir
#   --build-dir   <repo>/build       where the binaries and the guest image were built
#   --sysconfdir  /etc               cloak/, containerd/conf.d/, systemd/system/
#   --profile     auto               the node's default VM config (<sysconfdir>/cloak/cloak.toml):
#                                    none = configs/cloak-dev.toml, sev-snp = cloak-snp.toml,
#                                    tdx = cloak-tdx.toml; auto = what `cloakctl check` says this
#                                    host runs, sev-snp or tdx first, else none
#
# What goes where (P = prefix, S = sysconfdir):
#   P/bin/               containerd-shim-cloak-v2 cloak-snapshotter cloakctl nydus-overlayfs
#   P/lib/cloak/         cloak-vmm-libvirt.so (the libvirt backend, dlopen'd by the shim)
#   P/share/cloak/guest/ vmlinuz initrd.img SHA256SUMS (the shim finds them from P/bin)
#   P/share/cloak/configs/     configs/*.toml, for reference
#   P/share/cloak/kubernetes/  runtimeclass.yaml (kubectl apply -f it once per cluster)
#   S/cloak/             cloak.toml (the profile's config), cloak-snp.toml, cloak-tdx.toml
#   S/containerd/conf.d/cloak.toml        packaging/containerd/cloak-snapshotter.toml
#   S/systemd/system/cloak-snapshotter.service  ExecStart rewritten to P/bin
#   P/share/cloak/install-manifest        every file installed, with its sha256, and every
#                                         directory this script created
#
# S/cloak/*.toml are the admin's: an existing one that differs is never overwritten (the new
# one goes next to it as *.toml.new), and --uninstall keeps one that differs from the sha256
# the manifest recorded. Every other file is ours and replaced when it changed. Running it
# again changes nothing. /etc/containerd/config.toml is never edited: the line it needs is
# printed. Nothing is started or enabled (systemctl is the admin's).
set -euo pipefail
umask 022
export LC_ALL=C

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/.." && pwd)
prog=install.sh

prefix=/usr/local
destdir=
build=$src/build
sysconfdir=/etc
profile=auto
uninstall=0

die() { echo "$prog: $*" >&2; exit 1; }
say() { echo "$prog: $*"; }
usage() {
    echo "usage: $prog [--prefix DIR] [--destdir DIR] [--build-dir DIR] [--sysconfdir DIR]"
    echo "       [--profile none|sev-snp|tdx|auto] [--uninstall]"
}

while [ $# -gt 0 ]; do
    case $1 in
    --prefix | --destdir | --build-dir | --sysconfdir | --profile)
        [ $# -ge 2 ] || { usage >&2; die "$1 needs a value"; }
        case $1 in
        --prefix) prefix=$2 ;;
        --destdir) destdir=$2 ;;
        --build-dir) build=$2 ;;
        --sysconfdir) sysconfdir=$2 ;;
        --profile) profile=$2 ;;
        esac
        shift 2
        ;;
    --prefix=* | --destdir=* | --build-dir=* | --sysconfdir=* | --profile=*)
        set -- "${1%%=*}" "${1#*=}" "${@:2}"
        ;;
    --uninstall) uninstall=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument '$1'" ;;
    esac
done

case $prefix in /*) ;; *) die "--prefix must be absolute, got '$prefix'" ;; esac
case $sysconfdir in /*) ;; *) die "--sysconfdir must be absolute, got '$sysconfdir'" ;; esac
case $profile in none | sev-snp | tdx | auto) ;; *) die "--profile: expected none, sev-snp, tdx or auto, got '$profile'" ;; esac
if [ -n "$destdir" ]; then
    mkdir -p "$destdir"
    destdir=$(cd "$destdir" && pwd)
fi
prefix=${prefix%/}
sysconfdir=${sysconfdir%/}
[ -n "$prefix" ] || die "--prefix must not be /"
[ -n "$sysconfdir" ] || die "--sysconfdir must not be /"

D=$destdir
manifest=$prefix/share/cloak/install-manifest # a real path; the file is $D$manifest

# --- uninstall ---------------------------------------------------------------------------------

# sha256 of a file, or "-" when it does not exist.
sha_of() {
    if [ -f "$1" ]; then sha256sum "$1" | cut -d' ' -f1; else echo -; fi
}

do_uninstall() {
    if [ ! -f "$D$manifest" ]; then
        say "nothing to uninstall: no manifest $D$manifest"
        return 0
    fi
    local kind sha path dirs=() removed=0 kept=0
    while read -r kind sha path; do
        case $kind in
        file | conf)
            [ -e "$D$path" ] || [ -L "$D$path" ] || continue
            # conf: the admin's (S/cloak/*), removed only when it is what was installed.
            if [ "$kind" = conf ] && [ "$(sha_of "$D$path")" != "$sha" ]; then
                say "kept $D$path: modified since it was installed"
                kept=$((kept + 1))
                continue
            fi
            rm -f "$D$path"
            removed=$((removed + 1))
            ;;
        dir) dirs+=("$path") ;;
        *) die "$D$manifest: bad line '$kind $sha $path'" ;;
        esac
    done <"$D$manifest"
    rm -f "$D$manifest"
    # Deepest first; only the empty ones.
    local d
    while read -r d; do
        [ -n "$d" ] || continue
        rmdir "$D$d" 2>/dev/null || true
    done < <(printf '%s\n' "${dirs[@]+"${dirs[@]}"}" | awk '{ print length($0) "\t" $0 }' |
        sort -rn | cut -f2-)
    say "uninstalled from ${D:-/}: $removed files removed, $kept kept"
    say "if cloak-snapshotter.service was enabled: systemctl disable --now cloak-snapshotter;" \
        "systemctl daemon-reload; and take the imports line out of containerd's config.toml"
}

if [ "$uninstall" = 1 ]; then
    do_uninstall
    exit 0
fi

# --- what to install ---------------------------------------------------------------------------

# Every source first, so that nothing is installed when one is missing.
need() { # need FILE HOW-TO-MAKE-IT
    [ -f "$1" ] || die "missing $1: $2"
}
build_hint="build it with: cmake --build $build"
guest_hint="build the guest image with: cmake --build $build --target guest-image (or packaging/build-guest.sh $build/guest)"
need "$build/shim/containerd-shim-cloak-v2" "$build_hint"
need "$build/snapshotter/cloak-snapshotter" "$build_hint"
need "$build/snapshotter/nydus-overlayfs" "$build_hint"
need "$build/cli/cloakctl" "$build_hint"
need "$build/vmm/cloak-vmm-libvirt.so" "$build_hint"
for f in vmlinuz initrd.img SHA256SUMS; do
    need "$build/guest/$f" "$guest_hint"
done
for f in cloak-dev.toml cloak-snp.toml cloak-tdx.toml; do
    need "$src/configs/$f" "part of the source tree"
done
need "$src/packaging/containerd/cloak-snapshotter.toml" "part of the source tree"
need "$src/packaging/systemd/cloak-snapshotter.service" "part of the source tree"
need "$src/packaging/kubernetes/runtimeclass.yaml" "part of the source tree"
(cd "$build/guest" && sha256sum --quiet -c SHA256SUMS) >/dev/null 2>&1 ||
    die "$build/guest/SHA256SUMS does not match vmlinuz/initrd.img: $guest_hint"

if [ "$profile" = auto ]; then
    # `cloakctl check` prints "PROFILE RUNS DETAIL" rows; it exits 1 when `none` cannot run.
    out=$("$build/cli/cloakctl" check 2>&1) || true
    profile=none
    if printf '%s\n' "$out" | grep -Eq '^sev-snp +yes'; then
        profile=sev-snp
    elif printf '%s\n' "$out" | grep -Eq '^tdx +yes'; then
        profile=tdx
    fi
    say "profile auto: $profile (cloakctl check)"
fi
case $profile in
none) default_config=cloak-dev.toml ;;
sev-snp) default_config=cloak-snp.toml ;;
tdx) default_config=cloak-tdx.toml ;;
esac

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Generated files: the unit with ExecStart in P/bin, the drop-in with ConfigPath in S/cloak.
sed_escape() { printf '%s' "$1" | sed 's/[&|\\]/\\&/g'; }
sed "s|^ExecStart=/usr/local/bin/|ExecStart=$(sed_escape "$prefix")/bin/|" \
    "$src/packaging/systemd/cloak-snapshotter.service" >"$tmp/cloak-snapshotter.service"
grep -q "^ExecStart=$prefix/bin/cloak-snapshotter " "$tmp/cloak-snapshotter.service" ||
    die "packaging/systemd/cloak-snapshotter.service: no 'ExecStart=/usr/local/bin/cloak-snapshotter ' line"
sed "s|\"/etc/cloak/|\"$(sed_escape "$sysconfdir")/cloak/|" \
    "$src/packaging/containerd/cloak-snapshotter.toml" >"$tmp/containerd-cloak.toml"

# --- install -----------------------------------------------------------------------------------

# The previous manifest: "dir - PATH" (created here), "file SHA256 PATH" (ours),
# "conf SHA256 PATH" (S/cloak/*: the admin's once installed). PATHs are real, without D.
declare -A old_kind=() old_sha=() listed=()
old_dirs=()
if [ -f "$D$manifest" ]; then
    while read -r kind sha path; do
        case $kind in
        file | conf) old_kind[$path]=$kind old_sha[$path]=$sha ;;
        dir) old_dirs+=("$path") ;;
        *) die "$D$manifest: bad line '$kind $sha $path'" ;;
        esac
    done <"$D$manifest"
fi
new_manifest=$tmp/manifest
: >"$new_manifest"
for d in "${old_dirs[@]+"${old_dirs[@]}"}"; do
    echo "dir - $d" >>"$new_manifest"
done
record() { # record KIND SHA PATH
    echo "$1 $2 $3" >>"$new_manifest"
    listed[$3]=1
}
n_installed=0 n_unchanged=0 n_kept=0

# mkdir -p of the real path DIR under D, recording each directory it creates.
make_dir() {
    local d=$1 missing=()
    while [ -n "$d" ] && [ "$d" != / ] && [ ! -d "$D$d" ]; do
        missing=("$d" "${missing[@]+"${missing[@]}"}")
        d=$(dirname "$d")
    done
    for d in "${missing[@]+"${missing[@]}"}"; do
        mkdir "$D$d" 2>/dev/null || [ -d "$D$d" ] || die "cannot create $D$d"
        echo "dir - $d" >>"$new_manifest"
    done
}

# put SRC DEST MODE [KIND]: DEST (a real path) from SRC, replaced when it differs.
put() {
    local from=$1 to=$2 mode=$3 kind=${4:-file}
    make_dir "$(dirname "$to")"
    if [ -f "$D$to" ] && cmp -s "$from" "$D$to"; then
        chmod "$mode" "$D$to"
        n_unchanged=$((n_unchanged + 1))
    else
        # Next to it, then renamed over it: a running binary is never written in place.
        install -m "$mode" "$from" "$D$to.cloak-tmp"
        mv -f "$D$to.cloak-tmp" "$D$to"
        n_installed=$((n_installed + 1))
    fi
    record "$kind" "$(sha_of "$D$to")" "$to"
}

# put_admin SRC DEST: an admin file (S/cloak/*.toml): never overwritten when it differs.
put_admin() {
    local from=$1 to=$2
    make_dir "$(dirname "$to")"
    if [ ! -e "$D$to" ]; then
        put "$from" "$to" 0644 conf
    elif cmp -s "$from" "$D$to"; then
        n_unchanged=$((n_unchanged + 1))
        # Ours only when we installed it before; an identical file of the admin's stays theirs.
        [ -z "${old_sha[$to]:-}" ] || record conf "${old_sha[$to]}" "$to"
    else
        say "kept $D$to (it differs from $(basename "$from")): the new one is $D$to.new"
        n_kept=$((n_kept + 1))
        # Still removed by --uninstall should it come back to what was installed.
        [ -z "${old_sha[$to]:-}" ] || record conf "${old_sha[$to]}" "$to"
        put "$from" "$to.new" 0644 conf
    fi
}

for b in shim/containerd-shim-cloak-v2 snapshotter/cloak-snapshotter snapshotter/nydus-overlayfs \
         cli/cloakctl; do
    put "$build/$b" "$prefix/bin/$(basename "$b")" 0755
done
put "$build/vmm/cloak-vmm-libvirt.so" "$prefix/lib/cloak/cloak-vmm-libvirt.so" 0644
for f in vmlinuz initrd.img SHA256SUMS; do
    put "$build/guest/$f" "$prefix/share/cloak/guest/$f" 0644
done
for f in "$src"/configs/*.toml; do
    put "$f" "$prefix/share/cloak/configs/$(basename "$f")" 0644
done
put "$src/packaging/kubernetes/runtimeclass.yaml" "$prefix/share/cloak/kubernetes/runtimeclass.yaml" 0644
put_admin "$src/configs/$default_config" "$sysconfdir/cloak/cloak.toml"
put_admin "$src/configs/cloak-snp.toml" "$sysconfdir/cloak/cloak-snp.toml"
put_admin "$src/configs/cloak-tdx.toml" "$sysconfdir/cloak/cloak-tdx.toml"
put "$tmp/containerd-cloak.toml" "$sysconfdir/containerd/conf.d/cloak.toml" 0644
put "$tmp/cloak-snapshotter.service" "$sysconfdir/systemd/system/cloak-snapshotter.service" 0644

# A previous install's file that this one no longer installs (say, cloak.toml.new once the
# admin's cloak.toml matches again) stays listed, so that --uninstall still removes it.
for path in "${!old_sha[@]}"; do
    [ -z "${listed[$path]:-}" ] || continue
    [ ! -e "$D$path" ] || record "${old_kind[$path]}" "${old_sha[$path]}" "$path"
done

make_dir "$(dirname "$manifest")"
# Directories first (in creation order), then files sorted: the same install, the same bytes.
{
    grep '^dir ' "$new_manifest" | awk '!seen[$0]++' || true
    grep -v '^dir ' "$new_manifest" | sort -k3
} >"$tmp/manifest.sorted"
if ! cmp -s "$tmp/manifest.sorted" "$D$manifest"; then
    install -m 0644 "$tmp/manifest.sorted" "$D$manifest"
fi

say "installed into ${D:-/} (prefix $prefix, sysconfdir $sysconfdir, profile $profile):" \
    "$n_installed files installed, $n_unchanged unchanged, $n_kept kept; manifest $D$manifest"

# --- what the admin does next ------------------------------------------------------------------
cfg=$sysconfdir/containerd/config.toml
imports_line="imports = [\"$sysconfdir/containerd/conf.d/*.toml\"]"
if [ -f "$D$cfg" ] && grep -qF "$sysconfdir/containerd/conf.d/" "$D$cfg"; then
    say "$cfg already imports $sysconfdir/containerd/conf.d/"
else
    say "add this line to the top of $cfg (it is not edited here), then restart containerd:"
    echo "    $imports_line"
fi
say "HAZARD: containerd 1.6 has one snapshotter for every runtime: with this drop-in no image" \
    "is unpacked on the host and runc pods on this node fail. The node is dedicated to" \
    "confidential pods ($sysconfdir/containerd/conf.d/cloak.toml says why)."
case $prefix in
/usr | /usr/local) ;;
*) say "containerd must find $prefix/bin (the shim, nydus-overlayfs) on its PATH:" \
       "set Environment=PATH=$prefix/bin:... in a containerd.service drop-in" ;;
esac
say "then: systemctl daemon-reload && systemctl enable --now cloak-snapshotter;" \
    "kubectl apply -f $prefix/share/cloak/kubernetes/runtimeclass.yaml"
