#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# containerd-shim-cloak-v2 end to end, through a real private containerd 1.6 and its CRI:
#   shim-cri.sh BUILD_DIR CLOAKCTL SHIM CLOAK_SNAPSHOTTER NYDUS_OVERLAYFS CTR_PROG CLOAK_PAUSE
#               CONFIG
# Setup: the guest image (packaging/build-guest.sh, this build's cloak-agent) into
# BUILD_DIR/test-shim-guest (.deb cache BUILD_DIR/guest-cache); a copy of CONFIG
# (configs/cloak-dev.toml) with kernel/initrd set to it; a local registry (../pull/registry.sh)
# holding ../cri/make-images.py's cloak/pause:1 (containerd's sandbox_image) and test/prog:v1
# (/bin/prog = ctr-prog, /etc/hello); cloak-snapshotter; containerd (../cri/containerd.sh)
# with cloak-snapshotter as its proxy snapshotter and the `cloak` runtime handler
# (CRI_CLOAK_CONFIG), the shim's and nydus-overlayfs's directories first on its PATH.
# Checks, each pod through `cloakctl run --runtime cloak` (one QEMU VM per pod):
#   - a container's output comes from inside the VM: /etc/hello of the image, and
#     /proc/version names the guest kernel, not the host's (and MemTotal is the VM's);
#   - stdout and stderr apart, exit codes passed through (1, 3, exec 7);
#   - exec into a running container; `ctr tasks ls` shows the pod's tasks;
#   - two containers in one pod (run --keep + run --pod) share ONE QEMU process: the tasks'
#     PIDs (QEMU's, shim.h) are equal and one QEMU cmdline names the pod's state dir;
#   - cloakctl rm of a running container stops it (kill/stop through the shim);
#   - removing a pod leaves no QEMU process, no socket under /run/containerd/s and no dir
#     under /run/cloak/shim (the pod's: both named by sha256(address/k8s.io/pod id));
#   - SIGKILL of a running pod's shim, then cloakctl rm of the pod: nothing left either.
# Prints the shim's VmRSS with one running pod and the pod start timings the shim logs
# (containerd copies the shim's log to its own stderr: DIR/ctd/containerd.log).
# "ok: ..." / "FAIL: ..." lines, then "N passed, N failed"; non-zero exit on a failure.
# Everything lives in one temp dir (SHIM_CRI_KEEP=1 keeps it); only processes started here
# are stopped, by pid; a system containerd is never touched.
set -uo pipefail
BUILD=${1:?build dir}
cloakctl=${2:?cloakctl}
shim=${3:?containerd-shim-cloak-v2}
snapshotter=${4:?cloak-snapshotter}
helper=${5:?nydus-overlayfs}
prog=${6:?ctr-prog}
pause=${7:?cloak-pause}
config_src=${8:?config}
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../../.." && pwd)
cri=$here/../cri
BUILD=$(cd "$BUILD" && pwd)
guest=$BUILD/test-shim-guest
STATE_ROOT=/run/cloak/shim
SOCKET_DIR=/run/containerd/s

log() { printf '%s [shim-cri] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "setup failed: $*"; exit 1; }
passed=0 failed=0
ok() { log "ok: $*"; passed=$((passed + 1)); }
bad() { log "FAIL: $*"; failed=$((failed + 1)); }
check() { # check "what" command...
    local what=$1
    shift
    if "$@"; then ok "$what"; else bad "$what"; fi
}

for b in /usr/bin/containerd /usr/bin/ctr /usr/lib/cni/bridge /usr/bin/docker-registry \
         /usr/bin/qemu-system-x86_64; do
    [ -x "$b" ] || die "missing $b (packaging/install-deps.sh)"
done
[ -x /sbin/mount.fuse3 ] || [ -x /usr/sbin/mount.fuse3 ] || die "missing mount.fuse3 (apt-get install fuse3)"
for f in "$cloakctl" "$shim" "$snapshotter" "$helper" "$prog" "$pause" "$BUILD/guest/cloak-agent"; do
    [ -x "$f" ] || die "missing $f (build it first)"
done
[ "$(id -u)" -eq 0 ] || die "needs root (containerd, mounts, /run/cloak)"

T=$(mktemp -d /tmp/shim-cri.XXXXXX)
snap_pid=""
bg_pids=()
pods=() # every pod id this test created (their state dirs and sockets are ours)

# sha256 of containerd's filepath.Join(address, "k8s.io", pod id): the pod's shim socket is
# SOCKET_DIR/<it>, its state dir STATE_ROOT/<its first 32 hex> (shim/contract.h).
pod_hash() { printf '%s' "$sock/k8s.io/$1" | sha256sum | cut -c1-64; }
pod_state() { local h; h=$(pod_hash "$1"); echo "$STATE_ROOT/${h:0:32}"; }
pod_socket() { echo "$SOCKET_DIR/$(pod_hash "$1")"; }
# QEMU processes whose cmdline names the pod's state dir (its qmp socket, pidfile, console).
pod_qemus() {
    local st p
    st=$(pod_state "$1")
    for p in /proc/[0-9]*; do
        { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -q "qemu-system.* .*$st/" &&
            echo "${p#/proc/}"
    done
}
# The pod's id from containerd's log ("RunPodSandbox for &PodSandboxMetadata{Name:NAME,...}
# returns sandbox id \"ID\"").
pod_id_of() {
    sed -n "s/.*RunPodSandbox for &PodSandboxMetadata{Name:$1,.*returns sandbox id \\\\\"\\([0-9a-f]*\\)\\\\\".*/\\1/p" \
        "$T/ctd/containerd.log" | tail -n 1
}
all_pod_ids() {
    sed -n 's/.*RunPodSandbox for .*returns sandbox id \\"\([0-9a-f]*\)\\".*/\1/p' \
        "$T/ctd/containerd.log" 2>/dev/null | sort -u
}
shim_lines() { grep -a 'component=cloak-shim' "$T/ctd/containerd.log" 2>/dev/null; }

cleanup() {
    local rc=$? p id st
    trap - EXIT
    for p in "${bg_pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${bg_pids[@]}"; do wait "$p" 2>/dev/null || true; done
    mapfile -t pods < <(all_pod_ids)
    mkdir -p "$T/evidence"
    for id in "${pods[@]}"; do
        st=$(pod_state "$id")
        [ -f "$st/console.log" ] && cp "$st/console.log" "$T/evidence/console-$id.log"
    done
    if [ "$failed" -ne 0 ] || [ "$rc" -ne 0 ]; then
        log "containerd.log, the shim's lines (tail):"
        shim_lines | tail -n 60 >&2
        log "containerd.log, errors (tail):"
        grep -a 'level=error' "$T/ctd/containerd.log" 2>/dev/null | tail -n 20 >&2
        for f in "$T"/evidence/console-*.log; do
            [ -f "$f" ] && { log "$f (left behind; tail):"; tail -n 40 "$f" >&2; }
        done
        [ -f "$T/snap.log" ] && { log "snapshotter log (tail):"; tail -n 15 "$T/snap.log" >&2; }
    fi
    # Our pods first through CRI (the shim cleans up), then containerd and its shims by pid.
    if [ -S "${sock:-/nonexistent}" ]; then
        for id in "${pods[@]}"; do
            timeout 120 "$cloakctl" --address "$sock" rm "$id" >/dev/null 2>&1 || true
        done
    fi
    bash "$cri/containerd.sh" stop "$T/ctd" || true
    # What the shims may have left: only our pods' QEMUs, state dirs and sockets.
    for id in "${pods[@]}"; do
        for p in $(pod_qemus "$id"); do log "killing leftover QEMU $p"; kill -9 "$p" 2>/dev/null; done
        st=$(pod_state "$id")
        [ -d "$st" ] && { log "removing leftover $st"; rm -rf "$st"; }
        [ -e "$(pod_socket "$id")" ] && { log "removing leftover $(pod_socket "$id")"; rm -f "$(pod_socket "$id")"; }
    done
    if [ -n "$snap_pid" ]; then
        kill -TERM "$snap_pid" 2>/dev/null || true
        wait "$snap_pid" 2>/dev/null || true
    fi
    bash "$cri/../pull/registry.sh" stop "$T/reg" || true
    awk -v d="$T/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r |
        while read -r m; do umount -l "$m" 2>/dev/null || true; done
    if [ "${SHIM_CRI_KEEP:-0}" = 1 ]; then
        log "kept $T"
    else
        rm -rf "$T"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# --- setup ------------------------------------------------------------------------------------
t0=$(date +%s)
CLOAK_BUILD_DIR=$BUILD CLOAK_CACHE_DIR=$BUILD/guest-cache \
    bash "$src/packaging/build-guest.sh" "$guest" >"$T/build-guest.log" 2>&1 ||
    { tail -n 30 "$T/build-guest.log" >&2; die "build-guest.sh"; }
guest_kver=$(sed -n 's/^# kernel //p' "$guest/SHA256SUMS" | head -n 1)
log "guest image $guest (kernel ${guest_kver:-?}) in $(($(date +%s) - t0)) s"

# The config: CONFIG with kernel and initrd set (a copy: relative paths would resolve
# against its directory).
awk -v k="$guest/vmlinuz" -v i="$guest/initrd.img" '
    { print }
    /^\[hypervisor\]/ { print "kernel = \"" k "\""; print "initrd = \"" i "\"" }
' "$config_src" >"$T/cloak.toml"
grep -q "^kernel = \"$guest/vmlinuz\"" "$T/cloak.toml" || die "no [hypervisor] table in $config_src"

bash "$cri/../pull/registry.sh" start "$T/reg" || die "registry"
reg=127.0.0.1:$(cat "$T/reg/port")
python3 "$cri/make-images.py" --pause "$pause" --prog "$prog" "$reg" || die "make-images.py"
image=$reg/test/prog:v1

"$snapshotter" --root "$T/snap" --address "$T/snap.sock" >"$T/snap.log" 2>&1 </dev/null &
snap_pid=$!
for _ in $(seq 1 100); do [ -S "$T/snap.sock" ] && break; sleep 0.1; done
[ -S "$T/snap.sock" ] || die "cloak-snapshotter: no socket: $(tail -n 5 "$T/snap.log")"

# Our own bridge and subnet: never the ones of a containerd.sh run elsewhere.
shim_dir=$(cd "$(dirname "$shim")" && pwd)
helper_dir=$(cd "$(dirname "$helper")" && pwd)
export CRI_BRIDGE=${SHIM_CRI_BRIDGE:-cloakshim0} CRI_SUBNET=${SHIM_CRI_SUBNET:-10.88.79.0/24}
CRI_SNAPSHOTTER=cloak CRI_SNAPSHOTTER_ADDRESS=$T/snap.sock CRI_CLOAK_CONFIG=$T/cloak.toml \
    CRI_PATH_PREPEND=$shim_dir:$helper_dir \
    bash "$cri/containerd.sh" start "$T/ctd" "$reg" || die "containerd"
sock=$T/ctd/containerd.sock
mkdir -p "$T/tmp"
export TMPDIR=$T/tmp # cloakctl run's log directories
C() { timeout 600 "$cloakctl" --address "$sock" "$@"; }
K() { ctr --address "$sock" -n k8s.io "$@"; }
host_kver=$(uname -r)
host_mem=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)

check "ctr plugins ls: the cloak snapshotter is ok" \
    bash -c "ctr --address '$sock' plugins ls | grep -Eq '^io\.containerd\.snapshotter\.v1 +cloak +.* ok'"

# Waits until `cloakctl ps` shows N running containers in pod NAME (or any pod when NAME is
# ""), at most SEC seconds; prints their (12-hex) ids.
wait_running() {
    local name=$1 n=$2 sec=$3 ids="" i
    for ((i = 0; i < sec * 2; i++)); do
        ids=$(C ps | awk -v p="$name" 'NR > 1 && (p == "" || $2 == p) && $4 == "running" { print $1 }')
        [ -n "$ids" ] && [ "$(wc -l <<<"$ids")" -eq "$n" ] && { echo "$ids"; return 0; }
        sleep 0.5
    done
    echo "$ids"
    return 1
}
# Waits until the pod's QEMU is gone, its state dir and its socket too (SEC seconds).
wait_gone() {
    local id=$1 sec=$2 i
    for ((i = 0; i < sec * 2; i++)); do
        [ -z "$(pod_qemus "$id")" ] && [ ! -e "$(pod_state "$id")" ] && [ ! -e "$(pod_socket "$id")" ] &&
            return 0
        sleep 0.5
    done
    return 1
}
# One check per kind of leftover of pod ID.
check_nothing_left() {
    local id=$1 what=$2
    wait_gone "$id" 30
    check "$what: no QEMU process of pod ${id:0:12} ($(pod_qemus "$id" | tr '\n' ' '))" \
        [ -z "$(pod_qemus "$id")" ]
    check "$what: no state dir $(pod_state "$id")" [ ! -e "$(pod_state "$id")" ]
    check "$what: no socket $(pod_socket "$id")" [ ! -e "$(pod_socket "$id")" ]
}

# --- 1. output from inside the VM, stdout vs stderr, exit 1 -----------------------------------
log "run 1: cat /etc/hello /proc/version /proc/meminfo /nope (a VM boots; the guest pulls)"
t1=$(date +%s)
rc=0
C run --runtime cloak "$image" cat /etc/hello /proc/version /proc/meminfo /nope \
    >"$T/out1" 2>"$T/err1" || rc=$?
log "run 1: exit $rc after $(($(date +%s) - t1)) s"
check "run 1: exit code 1 passed through (rc $rc; stderr: $(head -c 300 "$T/err1"))" [ "$rc" -eq 1 ]
check "run 1: stdout starts with the image's /etc/hello ($(head -n 1 "$T/out1"))" \
    [ "$(head -n 1 "$T/out1")" = "hello from the image" ]
version=$(grep -m1 '^Linux version ' "$T/out1")
log "  guest: $version"
log "  host:  uname -r $host_kver"
check "run 1: /proc/version is the guest's kernel${guest_kver:+ $guest_kver}, not the host's $host_kver" \
    bash -c '[ -n "$1" ] && [[ $1 != "Linux version $2 "* ]] && { [ -z "$3" ] || [[ $1 == "Linux version $3 "* ]]; }' \
    _ "$version" "$host_kver" "$guest_kver"
guest_mem=$(awk '/^MemTotal:/ { print $2 }' "$T/out1")
check "run 1: MemTotal ${guest_mem:-?} kB is the VM's (host $host_mem kB)" \
    bash -c '[ -n "$1" ] && [ "$1" -lt 4194304 ] && [ "$1" -ne "$2" ]' _ "$guest_mem" "$host_mem"
check "run 1: stderr has ctr-prog's error for /nope, stdout does not" \
    bash -c 'grep -q "^ctr-prog: /nope: No such file or directory$" "$1" && ! grep -q /nope "$2"' \
    _ "$T/err1" "$T/out1"
check "run 1: stderr has nothing of stdout" bash -c '! grep -q "hello from the image" "$1"' _ "$T/err1"
mapfile -t pods < <(all_pod_ids)
[ "${#pods[@]}" -ge 1 ] && check_nothing_left "${pods[0]}" "run 1 (pod removed)"

# --- 2. exit 3 --------------------------------------------------------------------------------
log "run 2: exit 3"
t1=$(date +%s)
rc=0
C run --runtime cloak "$image" exit 3 >"$T/out2" 2>"$T/err2" || rc=$?
check "run 2: exit code 3 passed through (rc $rc after $(($(date +%s) - t1)) s; $(head -c 300 "$T/err2"))" \
    [ "$rc" -eq 3 ]

# --- 3. a long-running pod: ps, exec, tasks, a second container, one QEMU, rm ------------------
log "run 3: --keep sleep, in the background"
"$cloakctl" --address "$sock" run --runtime cloak --keep "$image" sleep >"$T/out3" 2>"$T/err3" &
bg_pids+=($!); run3=$!
cid1=$(wait_running "" 1 600) || bad "run 3: no running container after 600 s: $(C ps -a); $(cat "$T/err3")"
pod3=$(C ps | awk -v c="$cid1" 'NR > 1 && $1 == c { print $2 }')
pod3_id=$(pod_id_of "$pod3")
if [ -n "$cid1" ] && [ -n "$pod3_id" ]; then
    ok "run 3: container $cid1 running in pod $pod3 ($pod3_id)"
    st3=$(pod_state "$pod3_id")
    shim3=$(cat "$st3/shim.pid" 2>/dev/null)
    if [ -n "$shim3" ] && [ -r "/proc/$shim3/status" ]; then
        log "shim RSS with one running pod (pid $shim3): $(awk '/^VmRSS:/ { print $2, $3 }' "/proc/$shim3/status")"
    else
        bad "run 3: no shim pid in $st3/shim.pid"
    fi
    out=$(C exec "$cid1" /bin/prog cat /etc/hello 2>&1)
    check "exec cat /etc/hello: '$out'" [ "$out" = "hello from the image" ]
    out=$(C exec "$cid1" /bin/prog cat /proc/version 2>&1)
    check "exec: the guest's kernel ($out)" bash -c '[[ $1 == "Linux version "* && $1 != "Linux version $2 "* ]]' _ "$out" "$host_kver"
    rc=0; C exec "$cid1" /bin/prog exit 7 || rc=$?
    check "exec exit 7: exit code passed through (rc $rc)" [ "$rc" -eq 7 ]
    rc=0; C exec "$cid1" /bin/prog cat /nope >"$T/eo" 2>"$T/ee" || rc=$?
    check "exec cat /nope: exit 1, the error on stderr only (rc $rc)" \
        bash -c '[ "$1" -eq 1 ] && grep -q /nope "$2" && ! grep -q /nope "$3"' _ "$rc" "$T/ee" "$T/eo"

    log "run 4: --pod $pod3 --keep sleep, in the background"
    "$cloakctl" --address "$sock" run --pod "$pod3" --keep "$image" sleep >"$T/out4" 2>"$T/err4" &
    bg_pids+=($!); run4=$!
    two=$(wait_running "$pod3" 2 300)
    check "run --pod: two running containers in pod $pod3 ($(tr '\n' ' ' <<<"$two"); $(head -c 300 "$T/err4"))" \
        [ "$(wc -l <<<"$two")" -eq 2 ]
    cid2=$(grep -v "^$cid1\$" <<<"$two" | head -n 1)
    [ -n "$cid2" ] && {
        out=$(C exec "$cid2" /bin/prog cat /etc/hello 2>&1)
        check "exec in the second container: '$out'" [ "$out" = "hello from the image" ]
    }
    tasks=$(K tasks ls 2>&1)
    printf '%s\n' "$tasks" >&2
    qemus=$(pod_qemus "$pod3_id")
    for q in $qemus; do
        log "  QEMU $q: $(tr '\0' ' ' <"/proc/$q/cmdline" 2>/dev/null | grep -o -- '-machine [^ ]*\|-accel [^ ]*\|-cpu [^ ]*' | tr '\n' ' ')"
    done
    check "one QEMU process for the pod's two containers ($(tr '\n' ' ' <<<"$qemus"))" \
        [ "$(grep -c . <<<"$qemus")" -eq 1 ]
    full1=$(K tasks ls | awk -v c="$cid1" 'index($1, c) == 1 { print $1 }')
    full2=$(K tasks ls | awk -v c="$cid2" 'NR > 1 && c != "" && index($1, c) == 1 { print $1 }')
    check "ctr tasks ls: the sandbox and both containers RUNNING" \
        bash -c 'for t in "$2" "$3" "$4"; do [ -n "$t" ] && awk -v t="$t" "\$1 == t && \$3 == \"RUNNING\" { f = 1 } END { exit !f }" <<<"$1" || exit 1; done' \
        _ "$tasks" "$pod3_id" "$full1" "$full2"
    pids=$(awk -v a="$pod3_id" -v b="$full1" -v c="$full2" '$1 == a || $1 == b || $1 == c { print $2 }' <<<"$tasks" | sort -u)
    check "ctr tasks ls: the 3 tasks have one PID, the QEMU's ($(tr '\n' ' ' <<<"$pids") vs $(tr '\n' ' ' <<<"$qemus"))" \
        bash -c '[ "$(grep -c . <<<"$1")" -eq 1 ] && [ "$1" = "$2" ]' _ "$pids" "$qemus"

    # rm of a running container: StopContainer (ctr-prog sleep, PID 1, ignores SIGTERM: SIGKILL
    # after the 10 s grace) then RemoveContainer.
    if [ -n "$cid2" ]; then
        t1=$(date +%s)
        out=$(C rm "$cid2" 2>&1)
        check "rm of the running second container ($out, $(($(date +%s) - t1)) s)" \
            bash -c '[[ $1 == "$2"* ]]' _ "$out" "$cid2"
        rc=0; timeout 60 tail --pid="$run4" -f /dev/null; wait "$run4" || rc=$?
        bg_pids=("$run3")
        check "run --pod --keep ended when its container was removed (rc $rc)" [ "$rc" -ne 0 ]
        left=$(C ps -a | awk -v p="$pod3" 'NR > 1 && $2 == p { print $1 }')
        check "the first container still runs, alone in the pod ($(tr '\n' ' ' <<<"$left"))" \
            [ "$left" = "$cid1" ]
        check "the pod's QEMU still runs" [ "$(pod_qemus "$pod3_id")" = "$qemus" ]
    fi
    out=$(C rm "$cid1" 2>&1)
    check "rm of the running first container ($out)" bash -c '[[ $1 == "$2"* ]]' _ "$out" "$cid1"
    rc=0; timeout 60 tail --pid="$run3" -f /dev/null; wait "$run3" || rc=$?
    bg_pids=()
    out=$(C rm "$pod3" 2>&1)
    check "rm pod $pod3 ($out)" [ "$out" = "$pod3_id" ]
    check_nothing_left "$pod3_id" "pod removal"
    check "ctr tasks ls: none of the pod's tasks" \
        bash -c '! ctr --address "$1" -n k8s.io tasks ls | grep -q "$2"' _ "$sock" "$pod3_id"
else
    bad "run 3: no pod id for pod '$pod3' / container '$cid1'"
fi

# --- 4. SIGKILL of the shim of a running pod, then rm of the pod --------------------------------
log "run 5: --keep sleep, then SIGKILL of its shim"
"$cloakctl" --address "$sock" run --runtime cloak --keep "$image" sleep >"$T/out5" 2>"$T/err5" &
bg_pids+=($!); run5=$!
cid5=$(wait_running "" 1 600) || bad "run 5: no running container after 600 s: $(cat "$T/err5")"
pod5=$(C ps | awk -v c="$cid5" 'NR > 1 && $1 == c { print $2 }')
pod5_id=$(pod_id_of "$pod5")
if [ -n "$cid5" ] && [ -n "$pod5_id" ]; then
    shim5=$(cat "$(pod_state "$pod5_id")/shim.pid" 2>/dev/null)
    qemu5=$(pod_qemus "$pod5_id")
    if [ -n "$shim5" ] && grep -q containerd-shim-cloak-v2 "/proc/$shim5/cmdline" 2>/dev/null; then
        log "SIGKILL to shim $shim5 (pod $pod5_id, QEMU $qemu5)"
        kill -9 "$shim5"
        rc=0; timeout 120 tail --pid="$run5" -f /dev/null; wait "$run5" || rc=$?
        bg_pids=()
        log "  cloakctl run ended with $rc"
        t1=$(date +%s)
        out=$(C rm "$pod5" 2>&1)
        check "rm pod $pod5 after the shim's SIGKILL ($out, $(($(date +%s) - t1)) s)" \
            [ "$out" = "$pod5_id" ]
        check_nothing_left "$pod5_id" "shim SIGKILL + rm"
    else
        bad "run 5: no live shim pid in $(pod_state "$pod5_id")/shim.pid ('$shim5')"
    fi
else
    bad "run 5: no pod id for pod '$pod5' / container '$cid5'"
fi

# --- 5. the pod's QEMU dies under a running container: exit 255, then rm ---------------------
log "run 6: --keep sleep, then SIGKILL of its QEMU"
"$cloakctl" --address "$sock" run --runtime cloak --keep "$image" sleep >"$T/out6" 2>"$T/err6" &
bg_pids+=($!); run6=$!
cid6=$(wait_running "" 1 600) || bad "run 6: no running container after 600 s: $(cat "$T/err6")"
pod6=$(C ps | awk -v c="$cid6" 'NR > 1 && $1 == c { print $2 }')
pod6_id=$(pod_id_of "$pod6")
if [ -n "$cid6" ] && [ -n "$pod6_id" ] && [ -n "$(pod_qemus "$pod6_id")" ]; then
    qemu6=$(pod_qemus "$pod6_id")
    log "SIGKILL to QEMU $qemu6 (pod $pod6_id)"
    kill -9 $qemu6
    rc=0; timeout 120 tail --pid="$run6" -f /dev/null; wait "$run6" || rc=$?
    bg_pids=()
    check "the VM's death ends the container with status 255 (cloakctl run: $rc)" [ "$rc" -eq 255 ]
    out=$(C rm "$pod6" 2>&1)
    check "rm pod $pod6 after its VM died ($out)" [ "$out" = "$pod6_id" ]
    check_nothing_left "$pod6_id" "QEMU SIGKILL + rm"
else
    bad "run 6: no pod id or QEMU for pod '$pod6' / container '$cid6'"
fi

# --- the end: nothing of ours anywhere ---------------------------------------------------------
mapfile -t pods < <(all_pod_ids)
leftover=()
for id in "${pods[@]}"; do
    [ -n "$(pod_qemus "$id")" ] && leftover+=("QEMU of ${id:0:12}: $(pod_qemus "$id" | tr '\n' ' ')")
    [ -e "$(pod_state "$id")" ] && leftover+=("$(pod_state "$id")")
    [ -e "$(pod_socket "$id")" ] && leftover+=("$(pod_socket "$id")")
done
check "${#pods[@]} pods: no QEMU, state dir or socket left (${leftover[*]:-none})" [ "${#leftover[@]}" -eq 0 ]
check "no container left in containerd ($(K containers ls -q | tr '\n' ' '))" [ -z "$(K containers ls -q)" ]

log "pod start timings (the shim's log):"
shim_lines | grep -aE 'VM started|agent ready|created in the guest|started in' |
    sed -n 's/.*msg="\(\([^"\\]\|\\.\)*\)".*/  \1/p' >&2
log "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
