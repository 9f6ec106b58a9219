#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Builds cloak's guest image, reproducibly:  packaging/build-guest.sh OUTDIR
#
#   OUTDIR/vmlinuz     the kernel of the package linux-image-amd64 depends on
#   OUTDIR/initrd.img  gzip'd newc cpio:
#                        /init                         cloak-agent ($CLOAK_BUILD_DIR or build/)
#                        /usr/bin/crun                 + its shared libraries, found below
#                        /lib/x86_64-linux-gnu/*.so*   the libraries crun (and /init) NEED
#                        /lib64/ld-linux-x86-64.so.2   -> ../lib/x86_64-linux-gnu/ (libc6)
#                        /etc/ssl/certs/ca-certificates.crt
#                        /lib/modules/<kver>/kernel/...  the virtio / overlay modules
#                        /lib/modules/cloak.list       their load order, absolute paths
#                        /pause_bundle/config.json     the sandbox's pause container: a
#                                                       minimal OCI config running /pause
#                        /pause_bundle/rootfs/pause    cloak-pause (static: no PT_INTERP)
#                        /pause_bundle/rootfs/{proc,dev,sys,etc}  empty
#                        /proc /sys /dev /run /tmp /etc /root  empty (the kernel's built-in
#                                                       initramfs supplies /dev/console)
#   OUTDIR/SHA256SUMS  sha256 of vmlinuz and initrd.img (`sha256sum -c` skips the `#` lines),
#                      `# package NAME VERSION` for every Debian package used and
#                      `# cloak-agent SHA256`, `# cloak-pause SHA256`
#
# Nothing is installed on the host: packages are fetched with `apt-get download` into the
# cache ($CLOAK_CACHE_DIR, default OUTDIR/.cache) and unpacked with dpkg-deb into a temp dir.
# The versions are apt's candidates; the cache holds one file per exact version, so a
# mirror update makes a new image (and new `# package` lines), never a mixed one.
#
# crun's and cloak-agent's library closure, without running anything: the packages are
# crun, the agent's libraries (agentpkgs below), plus their transitive (Pre-)Depends that
# are library packages (lib*, first alternative),
# read with `dpkg-deb -f`. The files are then chosen by walking DT_NEEDED (readelf -d) from
# /usr/bin/crun (and /init) over the unpacked packages; only those .so files (symlinks
# resolved) go into the image, plus the PT_INTERP loader from libc6. A NEEDED library
# that is not found fails the build.
#
# Reproducible: every file gets mtime $SOURCE_DATE_EPOCH (default 0) and a fixed mode,
# entries are sorted (LC_ALL=C), owned 0:0, `cpio --reproducible -H newc`, `gzip -n -9`.
# Two runs with the same inputs give the same bytes (test/integration/guest-image-repro.sh).
set -euo pipefail
export LC_ALL=C
umask 022

out=${1:?usage: build-guest.sh OUTDIR}
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/.." && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
cache=${CLOAK_CACHE_DIR:-$out/.cache}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
epoch=${SOURCE_DATE_EPOCH:-0}
bdir=${CLOAK_BUILD_DIR:-$src/build}
agent=$bdir/guest/cloak-agent
pause=$bdir/guest/cloak-pause

die() { echo "build-guest.sh: $*" >&2; exit 1; }
for t in apt-cache apt-get dpkg-deb tar cpio gzip readelf sha256sum; do
    command -v "$t" >/dev/null || die "missing tool: $t"
done
[ -f "$agent" ] || die "no $agent (build cloak-agent, or set CLOAK_BUILD_DIR)"
[ -f "$pause" ] || die "no $pause (build cloak-pause, or set CLOAK_BUILD_DIR)"
readelf -h "$pause" >/dev/null 2>&1 || die "$pause is not an ELF file"
# The pause container has no libraries: cloak-pause must be static (no program interpreter).
[ -z "$(readelf -lW "$pause" | sed -n '/ INTERP /p')" ] ||
    die "$pause is not static (it has a PT_INTERP)"

# The kernel's module load order. Each must exist as a module in the kernel package
# (checked: all are =m in Debian 12's 6.1 amd64 config); each one's `depends=` must come
# earlier in the list (checked below).
modules=(virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci
         failover net_failover virtio_net virtio_console overlay)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root" "$work/x"

updated=0
# candidate PKG -> "VERSION ARCH" (apt-get update once if apt knows nothing yet)
candidate() {
    local info
    info=$(apt-cache show --no-all-versions "$1" 2>/dev/null || true)
    if [ -z "$info" ] && [ "$updated" -eq 0 ] && [ "$(id -u)" -eq 0 ]; then
        updated=1
        apt-get update -qq >/dev/null 2>&1 || true
        info=$(apt-cache show --no-all-versions "$1" 2>/dev/null || true)
    fi
    [ -n "$info" ] || die "apt cannot resolve package $1"
    awk '/^Version:/ {v=$2} /^Architecture:/ {a=$2} END {print v, a}' <<<"$info"
}

declare -A debs=()  # package -> cached .deb
declare -A vers=()  # package -> version
# fetch PKG: the candidate's .deb into the cache (if not there yet); sets debs/vers
fetch() {
    local pkg=$1 v a f
    [ -n "${debs[$pkg]:-}" ] && return 0
    read -r v a < <(candidate "$pkg")
    f=$cache/${pkg}_${v//:/%3a}_$a.deb  # apt-get download's name for it (epoch ':' -> %3a)
    if [ ! -s "$f" ]; then
        (cd "$cache" && apt-get download -q "$pkg=$v" 2>&1 >/dev/null |
             grep -v 'Download is performed unsandboxed' >&2 || true)
        [ -s "$f" ] || die "apt-get download $pkg=$v did not give $f"
    fi
    [ "$(dpkg-deb -f "$f" Package)" = "$pkg" ] && [ "$(dpkg-deb -f "$f" Version)" = "$v" ] ||
        die "$f is not $pkg $v"
    debs[$pkg]=$f
    vers[$pkg]=$v
}
# deps DEB: its Depends and Pre-Depends, first alternative, no versions / arch qualifiers
deps() {
    { dpkg-deb -f "$1" Pre-Depends; dpkg-deb -f "$1" Depends; } |
        tr ',' '\n' | sed -e 's/|.*//' -e 's/(.*)//' -e 's/:.*//' -e 's/[[:space:]]//g' |
        sed '/^$/d'
}

# --- kernel -----------------------------------------------------------------------------
fetch linux-image-amd64
kpkg=$(deps "${debs[linux-image-amd64]}" | grep -m1 '^linux-image-') ||
    die "linux-image-amd64 depends on no linux-image-*"
fetch "$kpkg"
kx=$work/x/kernel
mkdir -p "$kx"
dpkg-deb --fsys-tarfile "${debs[$kpkg]}" |
    tar -x -C "$kx" --wildcards './boot/vmlinuz-*' './lib/modules/*/kernel/*.ko*'
set -- "$kx"/lib/modules/*
[ $# -eq 1 ] && [ -d "$1" ] || die "$kpkg: expected one /lib/modules/<ver>"
kver=${1##*/}
[ -f "$kx/boot/vmlinuz-$kver" ] || die "$kpkg: no /boot/vmlinuz-$kver"

mdir=/lib/modules/$kver
mkdir -p "$root/lib/modules"
: >"$root/lib/modules/cloak.list"
loaded=" "
for m in "${modules[@]}"; do
    ko=$(cd "$kx$mdir" && find kernel -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" |
             sort | head -n1)
    [ -n "$ko" ] || die "$kpkg has no module $m (built in? drop it from the list)"
    # .modinfo strings: depends=a,b — every dependency must be loaded before this one
    for d in $(tr '\0' '\n' <"$kx$mdir/$ko" 2>/dev/null | sed -n 's/^depends=//p' |
                   tr ',' ' ' | head -n1); do
        case $loaded in *" $d "*) ;; *) die "module $m needs $d first" ;; esac
    done
    case $ko in *.xz|*.zst) die "$ko is compressed; finit_module wants it plain here" ;; esac
    install -D -m 0644 "$kx$mdir/$ko" "$root$mdir/$ko"
    printf '%s\n' "$mdir/$ko" >>"$root/lib/modules/cloak.list"
    loaded="$loaded$m "
done

# --- crun and its libraries --------------------------------------------------------------
fetch crun
# cloak-agent's own shared libraries: jansson, protobuf-c, libcurl (registry client), zstd,
# zlib, OpenSSL's libcrypto (libarchive is linked in statically: only its tar reader)
agentpkgs=(libjansson4 libprotobuf-c1 libcurl4 libzstd1 zlib1g libssl3)
for p in "${agentpkgs[@]}"; do fetch "$p"; done
queue=(crun "${agentpkgs[@]}")
libpkgs=("${agentpkgs[@]}")
while [ ${#queue[@]} -gt 0 ]; do
    p=${queue[0]}
    queue=("${queue[@]:1}")
    for d in $(deps "${debs[$p]}"); do
        case $d in lib*) ;; *) continue ;; esac
        [ -n "${debs[$d]:-}" ] && continue
        fetch "$d"
        libpkgs+=("$d")
        queue+=("$d")
    done
done
lx=$work/x/libs
mkdir -p "$lx"
for p in crun "${libpkgs[@]}"; do
    dpkg-deb --fsys-tarfile "${debs[$p]}" | tar -x -C "$lx"
done
[ -f "$lx/usr/bin/crun" ] || die "crun's package has no /usr/bin/crun"

# find SONAME in the unpacked packages (the loader's default directories)
findlib() {
    local dir
    for dir in lib/x86_64-linux-gnu usr/lib/x86_64-linux-gnu lib64 lib usr/lib; do
        if [ -e "$lx/$dir/$1" ]; then printf '%s\n' "$lx/$dir/$1"; return 0; fi
    done
    return 1
}
needed() { readelf -dW "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p'; }
interp() { readelf -lW "$1" | sed -n 's/.*\[Requesting program interpreter: \(.*\)\]$/\1/p'; }

install -D -m 0755 "$lx/usr/bin/crun" "$root/usr/bin/crun"
install -D -m 0755 "$agent" "$root/init"
mkdir -p "$root/lib/x86_64-linux-gnu"
# closure MUST_RESOLVE ELF...: copy every NEEDED library, transitively
closure() {
    local must=$1 f n l
    shift
    local todo=("$@")
    while [ ${#todo[@]} -gt 0 ]; do
        f=${todo[0]}
        todo=("${todo[@]:1}")
        for n in $(needed "$f"); do
            [ -e "$root/lib/x86_64-linux-gnu/$n" ] && continue
            if ! l=$(findlib "$n"); then
                [ "$must" = 1 ] && die "${f#"$root"} needs $n, which none of its packages has"
                echo "build-guest.sh: warning: ${f#"$root"} needs $n, not in the image" >&2
                continue
            fi
            install -m 0755 "$(readlink -f "$l")" "$root/lib/x86_64-linux-gnu/$n"
            todo+=("$root/lib/x86_64-linux-gnu/$n")
        done
    done
}
closure 1 "$root/usr/bin/crun"
closure 1 "$root/init"
ld=$(interp "$root/usr/bin/crun")
[ "$ld" = /lib64/ld-linux-x86-64.so.2 ] || die "crun's interpreter is $ld"
[ -e "$root/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" ] ||
    install -m 0755 "$(readlink -f "$(findlib ld-linux-x86-64.so.2)")" \
        "$root/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
mkdir -p "$root/lib64"
ln -s ../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$root/lib64/ld-linux-x86-64.so.2"
ai=$(interp "$root/init")
[ -z "$ai" ] || [ "$ai" = "$ld" ] || die "cloak-agent's interpreter $ai is not $ld"

# --- CA certificates ---------------------------------------------------------------------
# The .deb ships the certificates; the bundle is made at install time by
# update-ca-certificates: every certificate of /etc/ca-certificates.conf (the postinst
# writes them all, sorted), concatenated, each ending in a newline. Same here.
fetch ca-certificates
cx=$work/x/ca
mkdir -p "$cx"
dpkg-deb --fsys-tarfile "${debs[ca-certificates]}" | tar -x -C "$cx" ./usr/share/ca-certificates
mkdir -p "$root/etc/ssl/certs"
(cd "$cx/usr/share/ca-certificates" && find . -type f -name '*.crt' -printf '%P\n' | sort) |
    while read -r c; do sed -e '$a\' "$cx/usr/share/ca-certificates/$c"; done \
        >"$root/etc/ssl/certs/ca-certificates.crt"
[ -s "$root/etc/ssl/certs/ca-certificates.crt" ] || die "no CA certificates"
chmod 0644 "$root/etc/ssl/certs/ca-certificates.crt"

# --- the pause bundle --------------------------------------------------------------------
# The sandbox's pause container, run by the agent with crun: a read-only rootfs holding only
# the static cloak-pause, in its own pid/ipc/uts/mount namespaces (the network is the VM's).
pb=$root/pause_bundle
install -D -m 0755 "$pause" "$pb/rootfs/pause"
mkdir -p "$pb/rootfs/proc" "$pb/rootfs/dev" "$pb/rootfs/sys" "$pb/rootfs/etc"
cat >"$pb/config.json" <<'EOF'
{
  "ociVersion": "1.0.2",
  "process": {
    "terminal": false,
    "user": {"uid": 0, "gid": 0},
    "args": ["/pause"],
    "env": ["PATH=/"],
    "cwd": "/",
    "noNewPrivileges": true
  },
  "root": {"path": "rootfs", "readonly": true},
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc",
     "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
     "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}
  ],
  "linux": {
    "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]
  }
}
EOF

# --- the archive -------------------------------------------------------------------------
mkdir -p "$root/proc" "$root/sys" "$root/dev" "$root/run" "$root/tmp" "$root/etc" "$root/root"
find "$root" -type d -exec chmod 0755 {} +
chmod 1777 "$root/tmp"
chmod 0700 "$root/root"
find "$root" -type f -perm /111 -exec chmod 0755 {} +
find "$root" -type f ! -perm /111 -exec chmod 0644 {} +
find "$root" -exec touch -h -d "@$epoch" {} +
(cd "$root" && find . -mindepth 1 -printf '%P\n' | sort |
     cpio --quiet -o -H newc -R 0:0 --reproducible) | gzip -n -9 >"$work/initrd.img"
install -m 0644 "$kx/boot/vmlinuz-$kver" "$work/vmlinuz"
touch -d "@$epoch" "$work/vmlinuz" "$work/initrd.img"

{
    echo "# cloak guest image: packaging/build-guest.sh, SOURCE_DATE_EPOCH=$epoch"
    echo "# kernel $kver"
    for p in $(printf '%s\n' "${!vers[@]}" | sort); do
        echo "# package $p ${vers[$p]}"
    done
    echo "# cloak-agent $(sha256sum "$agent" | cut -d' ' -f1)"
    echo "# cloak-pause $(sha256sum "$pause" | cut -d' ' -f1)"
    (cd "$work" && sha256sum vmlinuz initrd.img)
} >"$work/SHA256SUMS"
chmod 0644 "$work/SHA256SUMS"
for f in vmlinuz initrd.img SHA256SUMS; do
    mv -f "$work/$f" "$out/$f"
done
echo "guest image: $out (kernel $kver, initrd.img $(stat -c %s "$out/initrd.img") bytes," \
     "$(cd "$root" && du -sb . | cut -f1) bytes unpacked)"
