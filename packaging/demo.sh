#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The README's first command: a confidential pod on this machine, from a fresh Debian 12, as
# root.
#   packaging/demo.sh [--keep] [--dir DIR] [--profile auto|none|sev-snp|tdx] [--no-build]
#
#   1. installs the Debian packages that are missing (packaging/install-deps.sh), builds
#      into build/ (or $CLOAK_BUILD_DIR) and the guest image (target guest-image);
#   2. picks the profile: sev-snp or tdx where `cloakctl check` says this host can run it,
#      else none (no TEE: QEMU under KVM, or TCG where there is no KVM);
#   3. starts the embedded environment (packaging/embedded-env.sh) under DIR (default
#      /var/tmp/cloak-demo): a private containerd 1.6, cloak-snapshotter and a local
#      registry holding the demo image (busybox, built with umoci, pushed with skopeo); no
#      system service is touched;
#   4. runs the pod through CRI with runtime handler `cloak` (`cloakctl run --runtime
#      cloak`): the pod's VM boots, the guest pulls the image itself, the container prints
#      what it sees; then prints where the time went (cloakctl's timings, the shim's log,
#      the guest's console);
#   5. removes the pod and stops the environment (--keep: leaves it running and says how to
#      use it and how to stop it).
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
cd "$src"
keep=0 dir=${CLOAK_DEMO_DIR:-/var/tmp/cloak-demo} profile=auto build=1
while [ $# -gt 0 ]; do
    case $1 in
    --keep) keep=1 ;;
    --dir) dir=${2:?--dir DIR}; shift ;;
    --profile) profile=${2:?--profile auto|none|sev-snp|tdx}; shift ;;
    --no-build) build=0 ;;
    -h|--help) sed -n '4,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo.sh: unknown argument '$1' (--help)" >&2; exit 2 ;;
    esac
    shift
done
case $profile in auto|none|sev-snp|tdx) ;; *) echo "demo.sh: --profile: '$profile' is not auto, none, sev-snp or tdx" >&2; exit 2 ;; esac
[ "$(id -u)" -eq 0 ] || { echo "demo.sh: run it as root (containerd, mounts, QEMU)" >&2; exit 1; }
BUILD=${CLOAK_BUILD_DIR:-$src/build}
say() { printf '\n== %s\n' "$*"; }
t_all=$SECONDS

if [ "$build" = 1 ]; then
    say "dependencies, build, guest image"
    packaging/install-deps.sh
    t=$SECONDS
    mkdir -p "$BUILD"
    blog=$BUILD/demo-build.log
    {
        if [ "$BUILD" = "$src/build" ]; then
            cmake --preset default
        else
            cmake -S "$src" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
        fi && cmake --build "$BUILD" -j"$(nproc)" && cmake --build "$BUILD" --target guest-image
    } >"$blog" 2>&1 || { tail -n 40 "$blog" >&2; echo "demo.sh: the build failed (all of it: $blog)" >&2; exit 1; }
    tail -n 1 "$blog"
    echo "built in $((SECONDS - t)) s (log: $blog)"
fi
cloakctl=$BUILD/cli/cloakctl

say "what this host can run (cloakctl check)"
check=$("$cloakctl" check --config configs/cloak-dev.toml 2>&1 || true)
echo "$check"
if [ "$profile" = auto ]; then
    profile=none
    for p in sev-snp tdx; do
        echo "$check" | grep -Eq "^$p +yes" && { profile=$p; break; }
    done
fi
case $profile in
none) config=configs/cloak-dev.toml ;;
sev-snp) config=configs/cloak-snp.toml ;;
tdx) config=configs/cloak-tdx.toml ;;
esac
echo "demo profile: $profile ($config)"

# shellcheck source=packaging/embedded-env.sh
. "$src/packaging/embedded-env.sh"
# DIR is ours only when it is empty or a previous demo's (its .cloak-demo stamp).
if [ -d "$dir" ] && [ -n "$(ls -A "$dir")" ] && [ ! -f "$dir/.cloak-demo" ]; then
    echo "demo.sh: $dir is not empty and not a previous demo's: pick another --dir" >&2
    exit 1
fi
if [ -f "$dir/.cloak-demo" ]; then
    echo "stopping the previous demo environment in $dir (if any)"
    CENV_DIR=$dir CENV_SOCK=$dir/ctd/containerd.sock CENV_CLOAKCTL=$cloakctl CENV_BRIDGE=cloakdemo0 cenv_stop
    rm -rf --one-file-system "$dir"
fi
mkdir -p "$dir"
touch "$dir/.cloak-demo"
export CENV_BRIDGE=cloakdemo0 CENV_SUBNET=10.88.82.0/24
stop_env() {
    local rc=$?
    trap - EXIT
    if [ "$keep" = 1 ] && [ "$rc" -eq 0 ]; then
        return
    fi
    cenv_stop
    [ "$rc" -eq 0 ] && rm -rf --one-file-system "$dir"
    exit "$rc"
}
trap stop_env EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "embedded environment in $dir"
# The demo's config: the profile's, plus where the guest reaches the local registry (plain
# HTTP on the host's loopback, through QEMU user networking).
cfg=$dir/profile.toml
reg_params="cloak.registry.insecure=127.0.0.1:* cloak.registry.loopback=10.0.2.2"
if grep -q '^kernel_params' "$config"; then
    grep -q 'cloak.registry.loopback' "$config" && cp "$config" "$cfg" ||
        sed "s|^kernel_params *= *\"\(.*\)\"|kernel_params = \"\1 $reg_params\"|" "$config" >"$cfg"
else
    awk -v p="$reg_params" '{ print } /^\[hypervisor\]/ { print "kernel_params = \"" p "\"" }' "$config" >"$cfg"
fi
cenv_start "$dir" "$BUILD" "$cfg"

demo_rootfs() {
    local r=$1
    cenv_busybox_rootfs "$r"
    cat >"$r/bin/hello" <<'SH'
#!/bin/sh
echo "hello from a confidential pod"
echo "  kernel:   $(uname -r) (the guest's own; the host runs HOST_KERNEL)"
echo "  memory:   $(awk '/^MemTotal/ { printf "%d MiB", $2 / 1024 }' /proc/meminfo) (the VM's)"
echo "  cpus:     $(grep -c ^processor /proc/cpuinfo)"
tee=none
[ -e /dev/sev-guest ] && tee=sev-snp
[ -e /dev/tdx_guest ] && tee=tdx
grep -qw sev_snp /proc/cpuinfo 2>/dev/null && tee=sev-snp
grep -qw tdx_guest /proc/cpuinfo 2>/dev/null && tee=tdx
echo "  TEE:      $tee"
echo "  image:    pulled and unpacked inside the VM; the host holds only its manifest"
SH
    sed -i "s/HOST_KERNEL/$(uname -r)/" "$r/bin/hello"
    chmod 0755 "$r/bin/hello"
}
L=$dir/images
oci_new "$L" hello
oci_layer "$L" hello demo_rootfs
oci_config "$L" hello --config.entrypoint /bin/hello --config.env PATH=/bin
image=$CENV_REG/demo/hello:1
oci_push "$L" hello "$image"
echo "demo image $image (busybox + /bin/hello)"

say "the pod: cloakctl run --runtime cloak $image"
out=$dir/run.out err=$dir/run.err
set +e
timeout --foreground 900 "$cloakctl" --address "$CENV_SOCK" run --runtime cloak --keep --timings "$image" \
    >"$out" 2>"$err"
rc=$?
set -e
cat "$out"
grep -v '^cloakctl run: ' "$err" >&2 || true
if [ "$rc" -ne 0 ]; then
    echo "demo.sh: the pod failed (exit $rc):" >&2
    cat "$err" >&2
    grep -a 'level=error' "$dir/ctd/containerd.log" | tail -n 5 >&2 || true
    exit 1
fi

# Where the time went (a report: a missing line shows as '?', never fails the demo):
set +e
# cloakctl's steps (s since the run began), the shim's log lines, the
# guest's console (the agent's pull line).
pod=$(cenv_kept_pod "$err")
timings=$(sed -n 's/^cloakctl run: timings: //p' "$err")
tv() { echo "$timings" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
shim() { grep -a 'component=cloak-shim' "$dir/ctd/containerd.log" | sed -n "$1" | tail -n 1; }
vm_boot=$(shim "s/.*pod $pod: VM started .* in \([0-9.]*\) s\".*/\1/p")
vm_desc=$(shim "s/.*pod $pod: VM started (\(.*\)) in [0-9.]* s\".*/\1/p")
agent=$(shim "s/.*pod $pod: agent ready \([0-9.]*\) s after.*/\1/p")
sandbox=$(shim "s/.*pod $pod: sandbox created in the guest in \([0-9.]*\) s.*/\1/p")
pause=$(shim "s/.*container $pod: created in the guest in \([0-9.]*\) s.*/\1/p")
create=$(shim "s/.*container [0-9a-f]*: created in the guest in \([0-9.]*\) s (image [^ ]*demo\/hello.*/\1/p")
start=$(grep -a 'component=cloak-shim' "$dir/ctd/containerd.log" | grep -v "container $pod:" |
        sed -n 's/.*container [0-9a-f]*: started in \([0-9.]*\) s.*/\1/p' | tail -n 1)
console=$(cenv_pod_state "$pod")/console.log
pull_line=$(grep -a 'demo/hello.* pulled:' "$console" 2>/dev/null | tail -n 1 | tr -d '\r' | sed 's/.*msg="\{0,1\}//; s/"$//')
pull=$(echo "$pull_line" | sed -n 's/.* in \([0-9.]*\) s$/\1/p')
t_rm=$(date +%s.%N)
"$cloakctl" --address "$CENV_SOCK" rm "$pod" >/dev/null
t_rm=$(awk -v a="$t_rm" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')

say "where the time went (profile $profile; KVM: $(echo "$check" | sed -n 's/^kvm: *//p'))"
row() { printf '  %-56s %7s s  %s\n' "$1" "${2:-?}" "${3:-}"; }
row "host: CRI pull (manifest and config only)" "$(tv pull)"
row "VM boot: QEMU started, QMP answering" "$vm_boot" "($vm_desc)"
row "agent ready: guest kernel boot, cloak-agent up" "$agent"
row "sandbox in the guest + pause container" "$(awk -v a="${sandbox:-0}" -v b="${pause:-0}" 'BEGIN { printf "%.2f", a + b }')"
row "image pull in the guest" "$pull" "(${pull_line#*pulled: })"
row "container create in the guest (pull included)" "$create"
row "container start" "$start"
row "time to first output (cloakctl run began -> first line)" "$(tv first_output)"
row "container exited" "$(tv exited)"
row "pod removed (cloakctl rm: VM stopped, state gone)" "$t_rm"
echo "  (containerd's log: $dir/ctd/containerd.log; the whole demo took $((SECONDS - t_all)) s)"

if [ "$keep" = 1 ]; then
    say "the environment keeps running"
    echo "  $cloakctl --address $CENV_SOCK run --runtime cloak $image"
    echo "  $cloakctl --address $CENV_SOCK run --runtime cloak --entrypoint $image sh -c 'ls /; cat /proc/cmdline'"
    echo "  stop it: bash -c '. $src/packaging/embedded-env.sh; CENV_DIR=$dir CENV_SOCK=$CENV_SOCK CENV_CLOAKCTL=$cloakctl CENV_BRIDGE=cloakdemo0 cenv_stop'"
    echo "  (the next packaging/demo.sh also stops it first)"
fi
