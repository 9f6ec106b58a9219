#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# packaging/install.sh on this machine, without touching /etc or /usr/local:
#   packaging.sh BUILD_DIR SHIM SNAPSHOTTER NYDUS_OVERLAYFS CLOAKCTL LIBVIRT_PLUGIN GUEST_ARGV
# A build dir of links to these binaries (--build-dir) with BUILD_DIR/guest (built with
# packaging/build-guest.sh into BUILD_DIR/test-packaging-guest when BUILD_DIR/guest has no
# image). Checks:
#   - a missing guest image fails with a message naming the file and the command that builds
#     it, and installs nothing;
#   - a staged install (--destdir): every file with its mode, paths inside the files name the
#     real prefix (/usr/local) and /etc, the manifest lists exactly what is there;
#   - a real install into a temp --prefix and --sysconfdir: every file with its mode; the
#     shim's guest lookup from <prefix>/bin (GUEST_ARGV, copied next to the installed shim)
#     gives a QEMU argv naming the installed vmlinuz/initrd.img (vmm_config_resolve_guest's
#     <exe_dir>/../share/cloak/guest); the installed cloakctl takes every installed config
#     (vm-config); the unit passes `systemd-analyze verify` silently and two broken copies
#     (a missing ExecStart binary, a misspelled directive) do not; the unit's ExecStart
#     flags start the installed snapshotter (temp --root/--address); check-k8s.py on the
#     RuntimeClass YAML and the containerd drop-in;
#   - a second install changes nothing (files, modes, mtimes, manifest);
#   - --profile auto follows cloakctl check (a stub that says sev-snp runs);
#   - a user-modified cloak.toml survives a reinstall (the new one as cloak.toml.new) and
#     the uninstall; uninstall leaves no file of the manifest and no directory it created
#     (but the kept file's); a second uninstall is fine;
#   - shellcheck on install.sh and this script (shellcheck is in install-deps.sh's list).
# "ok: ..." / "FAIL: ..." lines, then "N passed, N failed"; non-zero exit on a failure.
# Everything lives in one temp dir (PACKAGING_KEEP=1 keeps it).
set -uo pipefail
BUILD=${1:?build dir}
shim=${2:?containerd-shim-cloak-v2}
snapshotter=${3:?cloak-snapshotter}
helper=${4:?nydus-overlayfs}
cloakctl=${5:?cloakctl}
plugin=${6:?cloak-vmm-libvirt.so}
guest_argv=${7:?guest-argv}
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../../.." && pwd)
BUILD=$(cd "$BUILD" && pwd)
install_sh=$src/packaging/install.sh
py=/usr/bin/python3

log() { printf '%s [packaging] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "setup failed: $*"; exit 1; }
passed=0 failed=0
ok() { log "ok: $*"; passed=$((passed + 1)); }
bad() { log "FAIL: $*"; failed=$((failed + 1)); }
check() { # check "what" command...
    local what=$1
    shift
    if "$@"; then ok "$what"; else bad "$what"; fi
}

for t in systemd-analyze sha256sum "$py"; do
    command -v "$t" >/dev/null || die "missing $t (packaging/install-deps.sh)"
done
"$py" -c 'import yaml, tomllib' || die "$py has no yaml module (python3-yaml)"

T=$(mktemp -d /tmp/cloak-packaging.XXXXXX)
snap_pid=
cleanup() {
    local rc=$?
    [ -z "$snap_pid" ] || kill "$snap_pid" 2>/dev/null
    if [ "${PACKAGING_KEEP:-0}" = 1 ]; then log "kept $T"; else rm -rf "$T"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# --- setup: the build dir install.sh reads ---------------------------------------------------
guest=$BUILD/guest
if ! [ -f "$guest/vmlinuz" ] || ! [ -f "$guest/initrd.img" ] || ! [ -f "$guest/SHA256SUMS" ]; then
    guest=$BUILD/test-packaging-guest
    log "no guest image in $BUILD/guest: building one into $guest"
    CLOAK_BUILD_DIR=$BUILD CLOAK_CACHE_DIR=$BUILD/guest-cache \
        bash "$src/packaging/build-guest.sh" "$guest" >"$T/build-guest.log" 2>&1 ||
        { tail -n 30 "$T/build-guest.log" >&2; die "build-guest.sh"; }
fi
# fake_build DIR CLOAKCTL [GUEST_DIR]: links named as install.sh expects them.
fake_build() {
    mkdir -p "$1/shim" "$1/snapshotter" "$1/cli" "$1/vmm"
    ln -sf "$shim" "$1/shim/containerd-shim-cloak-v2"
    ln -sf "$snapshotter" "$1/snapshotter/cloak-snapshotter"
    ln -sf "$helper" "$1/snapshotter/nydus-overlayfs"
    ln -sf "$2" "$1/cli/cloakctl"
    ln -sf "$plugin" "$1/vmm/cloak-vmm-libvirt.so"
    [ -z "${3:-}" ] || ln -sfn "$3" "$1/guest"
}
fake_build "$T/build" "$cloakctl" "$guest"

# expected ROOT PREFIX SYSCONFDIR: "MODE PATH" of every file an install puts there.
expected() {
    local r=$1 p=$2 s=$3 f
    for f in containerd-shim-cloak-v2 cloak-snapshotter cloakctl nydus-overlayfs; do
        echo "755 $r$p/bin/$f"
    done
    echo "644 $r$p/lib/cloak/cloak-vmm-libvirt.so"
    for f in vmlinuz initrd.img SHA256SUMS; do echo "644 $r$p/share/cloak/guest/$f"; done
    for f in "$src"/configs/*.toml; do echo "644 $r$p/share/cloak/configs/${f##*/}"; done
    echo "644 $r$p/share/cloak/kubernetes/runtimeclass.yaml"
    echo "644 $r$p/share/cloak/install-manifest"
    for f in cloak.toml cloak-snp.toml cloak-tdx.toml; do echo "644 $r$s/cloak/$f"; done
    echo "644 $r$s/containerd/conf.d/cloak.toml"
    echo "644 $r$s/systemd/system/cloak-snapshotter.service"
}
# files_equal ROOT PREFIX SYSCONFDIR DIR...: the files under the DIRs are exactly the
# expected ones, with their modes.
files_equal() {
    diff <(expected "$1" "$2" "$3" | sort) \
         <(find "${@:4}" -type f -printf '%m %p\n' | grep -v '\.toml\.new$' | sort) >&2
}
# manifest_exact ROOT MANIFEST DIR...: the manifest's files are those under the DIRs (the
# install's files are ROOT + their path), with their sha256.
manifest_exact() {
    local root=$1 m=$1$2 kind sha path
    while read -r kind sha path; do
        case $kind in
        file | conf)
            [ "$(sha256sum <"$root$path" | cut -d' ' -f1)" = "$sha" ] || {
                echo "sha256 of $root$path differs from $m" >&2; return 1; }
            echo "$root$path" ;;
        esac
    done <"$m" | sort >"$T/listed"
    find "${@:3}" -type f ! -path "$m" | sort | diff "$T/listed" - >&2
}

# --- a missing guest image ---------------------------------------------------------------------
fake_build "$T/build-noguest" "$cloakctl"
out=$(bash "$install_sh" --build-dir "$T/build-noguest" --destdir "$T/noguest" 2>&1)
rc=$?
printf '%s\n' "$out" >&2
check "no guest image: install.sh fails" [ "$rc" -ne 0 ]
check "no guest image: the message names the file and the command that builds it" \
    grep -q "missing $T/build-noguest/guest/vmlinuz: .*cmake --build $T/build-noguest --target guest-image" \
    <<<"$out"
check "no guest image: nothing installed" [ -z "$(find "$T/noguest" -type f 2>/dev/null)" ]

# --- staged install ----------------------------------------------------------------------------
stage=$T/stage
if bash "$install_sh" --build-dir "$T/build" --destdir "$stage" --profile none >"$T/stage.log" 2>&1
then ok "staged install (--destdir)"; else cat "$T/stage.log" >&2; bad "staged install (--destdir)"; fi
check "staged: every file under destdir/usr/local and destdir/etc, with its mode" \
    files_equal "$stage" /usr/local /etc "$stage"
check "staged: the manifest lists exactly the installed files, with their sha256" \
    manifest_exact "$stage" /usr/local/share/cloak/install-manifest "$stage"
check "staged: the unit's ExecStart names /usr/local/bin (the real prefix)" \
    grep -qx 'ExecStart=/usr/local/bin/cloak-snapshotter .*' \
    "$stage/etc/systemd/system/cloak-snapshotter.service"
check "staged: the drop-in's ConfigPath names /etc/cloak" \
    grep -q '^ *ConfigPath = "/etc/cloak/cloak.toml"' "$stage/etc/containerd/conf.d/cloak.toml"
names_nothing_in() { ! grep -rlF "$1" "$1"; }
check "staged: no installed file names the destdir" names_nothing_in "$stage"
check "staged: the imports line for containerd's config.toml is printed" \
    grep -qxF '    imports = ["/etc/containerd/conf.d/*.toml"]' "$T/stage.log"
check "staged: the dedicated-node hazard is printed" grep -q 'HAZARD: .*dedicated' "$T/stage.log"

# --- real install into a temp prefix and sysconfdir --------------------------------------------
P=$T/prefix S=$T/etc
inst() { bash "$install_sh" --build-dir "$T/build" --prefix "$P" --sysconfdir "$S" "$@"; }
if inst --profile none >"$T/real.log" 2>&1; then ok "install --prefix $P --sysconfdir $S"
else cat "$T/real.log" >&2; bad "install --prefix $P --sysconfdir $S"; fi
check "real: every file with its mode" files_equal "" "$P" "$S" "$P" "$S"
check "real: the manifest lists exactly the installed files" \
    manifest_exact "" "$P/share/cloak/install-manifest" "$P" "$S"
check "real: installed binaries are the built ones" \
    cmp -s "$shim" "$P/bin/containerd-shim-cloak-v2"
check "real: cloak.toml is configs/cloak-dev.toml (profile none)" \
    cmp -s "$src/configs/cloak-dev.toml" "$S/cloak/cloak.toml"
sums_ok() { (cd "$1" && sha256sum --quiet -c SHA256SUMS 2>/dev/null); }
check "real: guest image verifies (SHA256SUMS)" sums_ok "$P/share/cloak/guest"

# The shim's lookup, from the installed bin dir (item: <exe_dir>/../share/cloak/guest).
cp "$guest_argv" "$P/bin/guest-argv"
"$P/bin/guest-argv" "$S/cloak/cloak.toml" >"$T/argv" 2>"$T/argv.err"
rc=$?
rm -f "$P/bin/guest-argv"
cat "$T/argv.err" >&2
arg_after() { awk -v o="$1" 'prev == o { print; exit } { prev = $0 }' "$T/argv"; }
kernel=$(arg_after -kernel) initrd=$(arg_after -initrd)
log "QEMU argv from $P/bin: -kernel $kernel -initrd $initrd"
check "guest lookup from <prefix>/bin: QEMU argv built" [ "$rc" -eq 0 ]
is_path() { [ -n "$1" ] && [ "$(realpath -m "$1")" = "$2" ]; }
check "guest lookup from <prefix>/bin: -kernel is the installed vmlinuz" \
    is_path "$kernel" "$P/share/cloak/guest/vmlinuz"
check "guest lookup from <prefix>/bin: -initrd is the installed initrd.img" \
    is_path "$initrd" "$P/share/cloak/guest/initrd.img"
vm_config_ok() { "$P/bin/cloakctl" vm-config --config "$1" --backend qemu >/dev/null; }
for f in cloak.toml cloak-snp.toml cloak-tdx.toml; do
    check "installed cloakctl vm-config --config $S/cloak/$f" vm_config_ok "$S/cloak/$f"
done

# systemd-analyze verify needs no running systemd; it checks that ExecStart exists.
unit=$S/systemd/system/cloak-snapshotter.service
verify() { # verify UNIT: exit 0 and not one warning
    local out
    out=$(systemd-analyze verify --man=no "$1" 2>&1) || { printf '%s\n' "$out" >&2; return 1; }
    [ -z "$out" ] || { printf '%s\n' "$out" >&2; return 1; }
}
check "unit: ExecStart is $P/bin/cloak-snapshotter" \
    grep -qx "ExecStart=$P/bin/cloak-snapshotter --root /var/lib/containerd/io.containerd.snapshotter.v1.cloak --address /run/cloak-snapshotter/cloak-snapshotter.sock" "$unit"
check "unit: systemd-analyze verify passes" verify "$unit"
mkdir -p "$T/broken1" "$T/broken2"
sed "s|^ExecStart=$P/bin/cloak-snapshotter|ExecStart=$P/bin/no-such-snapshotter|" "$unit" \
    >"$T/broken1/cloak-snapshotter.service"
sed 's/^Restart=on-failure/Restrat=on-failure/' "$unit" >"$T/broken2/cloak-snapshotter.service"
if grep -q no-such "$T/broken1/cloak-snapshotter.service" && ! verify "$T/broken1/cloak-snapshotter.service"
then ok "unit: a copy with a missing ExecStart binary fails verify"
else bad "unit: a copy with a missing ExecStart binary fails verify"; fi
if grep -q '^Restrat=' "$T/broken2/cloak-snapshotter.service" && ! verify "$T/broken2/cloak-snapshotter.service"
then ok "unit: a copy with a misspelled directive fails verify"
else bad "unit: a copy with a misspelled directive fails verify"; fi
rtdir=$(sed -n 's/^RuntimeDirectory=//p' "$unit")
check "unit: RuntimeDirectory is the socket's directory (/run/$rtdir)" \
    grep -q "^ExecStart=.* --address /run/$rtdir/[^/ ]*\$" "$unit"

# The unit's ExecStart, with --root and --address in the temp dir, starts the snapshotter.
read -r -a cmd < <(sed -n 's/^ExecStart=//p' "$unit")
for i in "${!cmd[@]}"; do
    case ${cmd[$i]} in
    /var/lib/*) cmd[i]=$T/snap-root ;;
    /run/*) cmd[i]=$T/snap.sock ;;
    esac
done
"${cmd[@]}" 2>"$T/snap.log" &
snap_pid=$!
for _ in $(seq 50); do [ -S "$T/snap.sock" ] && break; sleep 0.1; done
check "unit: its ExecStart flags start the installed snapshotter (socket up)" [ -S "$T/snap.sock" ]
kill "$snap_pid" 2>/dev/null
wait "$snap_pid" 2>/dev/null
snap_pid=

check "RuntimeClass YAML against the containerd drop-in (check-k8s.py)" \
    "$py" "$here/check-k8s.py" "$P/share/cloak/kubernetes/runtimeclass.yaml" \
    "$S/containerd/conf.d/cloak.toml" "$P/share/cloak/install-manifest"

# --- idempotent --------------------------------------------------------------------------------
state() { find "$P" "$S" -printf '%p %m %s %T@\n' | sort; }
state >"$T/state1"
cp "$P/share/cloak/install-manifest" "$T/manifest1"
sleep 1 # a rewrite would show in the mtimes
if inst --profile none >"$T/real2.log" 2>&1; then ok "second install"
else cat "$T/real2.log" >&2; bad "second install"; fi
check "second install: '0 files installed'" grep -q ': 0 files installed, [0-9]* unchanged, 0 kept' "$T/real2.log"
check "second install: every file, mode and mtime unchanged" diff "$T/state1" <(state)
check "second install: the manifest is unchanged" cmp "$T/manifest1" "$P/share/cloak/install-manifest"

# --- --profile auto ----------------------------------------------------------------------------
stub=$T/stub-cloakctl
printf '%s\n' '#!/bin/sh' 'echo "PROFILE   RUNS  DETAIL"' 'echo "none      yes   KVM"' \
    'echo "sev-snp   yes   KVM"' 'echo "tdx       no    no tdx"' >"$stub"
chmod +x "$stub"
fake_build "$T/build-snp" "$stub" "$guest"
bash "$install_sh" --build-dir "$T/build-snp" --destdir "$T/auto" --profile auto >"$T/auto.log" 2>&1
check "--profile auto: sev-snp when cloakctl check says it runs" \
    cmp -s "$src/configs/cloak-snp.toml" "$T/auto/etc/cloak/cloak.toml"
check "--profile auto: says which profile" grep -q 'profile auto: sev-snp' "$T/auto.log"

# --- a user-modified cloak.toml ------------------------------------------------------------------
echo '# changed by the admin' >>"$S/cloak/cloak.toml"
cp "$S/cloak/cloak.toml" "$T/user.toml"
inst --profile none >"$T/real3.log" 2>&1
check "reinstall: the modified cloak.toml is not overwritten" cmp -s "$T/user.toml" "$S/cloak/cloak.toml"
check "reinstall: the new one is cloak.toml.new" cmp -s "$src/configs/cloak-dev.toml" "$S/cloak/cloak.toml.new"
check "reinstall: says so" grep -q "kept $S/cloak/cloak.toml" "$T/real3.log"

# --- uninstall ---------------------------------------------------------------------------------
cp "$P/share/cloak/install-manifest" "$T/manifest3"
out=$(inst --uninstall 2>&1)
rc=$?
printf '%s\n' "$out" >&2
check "uninstall" [ "$rc" -eq 0 ]
check "uninstall: the modified cloak.toml survives" cmp -s "$T/user.toml" "$S/cloak/cloak.toml"
check "uninstall: says it kept it" grep -q "kept $S/cloak/cloak.toml" <<<"$out"
left_files() { # files of the manifest that are still there, but the kept one
    local kind sha path
    while read -r kind sha path; do
        [ "$kind" != dir ] && [ "$path" != "$S/cloak/cloak.toml" ] && [ -e "$path" ] && echo "$path"
    done <"$T/manifest3"
    [ ! -e "$P/share/cloak/install-manifest" ] || echo "$P/share/cloak/install-manifest"
}
check "uninstall: no file of the manifest left" [ -z "$(left_files)" ]
check "uninstall: no directory it created left (but those of the kept file)" \
    diff <(find "$P" "$S" 2>/dev/null | sort) <(printf '%s\n' "$S" "$S/cloak" "$S/cloak/cloak.toml")
out=$(inst --uninstall 2>&1)
rc=$?
check "uninstall twice: exit 0" [ "$rc" -eq 0 ]
check "uninstall twice: nothing to do" grep -q 'nothing to uninstall' <<<"$out"
bash "$install_sh" --destdir "$stage" --uninstall >/dev/null 2>&1
check "staged uninstall: the destdir is empty" [ -z "$(find "$stage" -mindepth 1)" ]

if command -v shellcheck >/dev/null; then
    check "shellcheck install.sh packaging.sh" shellcheck "$install_sh" "$0"
else
    log "shellcheck not installed: not run"
fi

log "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
