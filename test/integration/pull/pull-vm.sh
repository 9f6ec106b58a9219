#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The image-pull integration test:
#   pull-vm.sh BUILD_DIR VMM_RUN CONFIG AGENT_TEST CTR_PROG
#
# 1. A registry on 127.0.0.1:<free port> (registry.sh: Debian's docker-registry) and the test
#    images pushed into it (make-images.py --verify: test/multi:v1 with gzip, zstd and plain
#    tar layers and whiteouts, test/multi:index, test/tampered:v1 with a corrupted blob).
# 2. The guest image (packaging/build-guest.sh, cloak-agent from BUILD_DIR) booted with
#    vmm-run under QEMU, user networking: the guest reaches the host's 127.0.0.1 at 10.0.2.2
#    (cloak.registry.loopback) over plain HTTP (cloak.registry.insecure), added to the kernel
#    command line unless CONFIG already has them.
# 3. `agent-test --images images.json pull` (agent-test-pull.c), then the guest must power
#    itself off after DestroySandbox (vmm-run reports "exited status=0" within 60 s).
# 4. The registry's access log: every layer blob of test/multi:v1 was served (GET, 200)
#    exactly once to the guest, although four containers and the index used them.
# Every process it starts is killed by pid on exit. CLOAK_PULL_KEEP=DIR keeps the logs there.
set -euo pipefail
BUILD=${1:?build dir}
VMM_RUN=${2:?vmm-run}
CONFIG=${3:?config}
AGENT_TEST=${4:?agent-test}
CTR_PROG=${5:?ctr-prog}
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../../.." && pwd)
BUILD=$(cd "$BUILD" && pwd)
guest=$BUILD/test-pull-guest

log() { printf '%s [pull-vm] %s\n' "$(date +%T.%N | cut -c1-12)" "$*" >&2; }
elapsed() { echo "$(date +%s.%N) - $1" | bc; }

work=$(mktemp -d /tmp/cloak-pull-XXXXXX) # short: unix socket paths live below it
state=$work/state
reg=$work/registry
runner_pid=''
qemu_pid=''
test_pid=''

# shellcheck disable=SC2317 # called by the trap
teardown() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$test_pid" ]; then kill -9 "$test_pid" 2>/dev/null || true; fi
    if [ -n "$runner_pid" ] && kill -0 "$runner_pid" 2>/dev/null; then
        kill -TERM "$runner_pid" 2>/dev/null || true # vmm-run stops its VM on SIGTERM
        for _ in $(seq 1 50); do kill -0 "$runner_pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$runner_pid" 2>/dev/null || true
    fi
    if [ -n "$qemu_pid" ]; then kill -9 "$qemu_pid" 2>/dev/null || true; fi
    [ -f "$reg/registry.pid" ] && bash "$here/registry.sh" stop "$reg" 2>/dev/null
    if [ "$rc" -ne 0 ]; then
        for f in "$work"/runner.out "$work"/runner.err "$state"/qemu.log "$work"/images.out; do
            [ -f "$f" ] && { echo "--- $f" >&2; tail -n 30 "$f" >&2; }
        done
        [ -f "$reg/registry.log" ] && { echo "--- $reg/registry.log (requests)" >&2;
            grep '^127\.' "$reg/registry.log" | tail -n 40 >&2; }
        [ -f "$state/console.log" ] && { echo "--- $state/console.log" >&2; tail -n 80 "$state/console.log" >&2; }
    fi
    if [ -n "${CLOAK_PULL_KEEP:-}" ]; then
        mkdir -p "$CLOAK_PULL_KEEP"
        cp -f "$work"/*.out "$work"/*.err "$reg"/registry.log "$reg"/images.json \
            "$state"/console.log "$CLOAK_PULL_KEEP"/ 2>/dev/null || true
    fi
    rm -rf "$work"
    exit "$rc"
}
trap teardown EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

for f in "$BUILD/guest/cloak-agent" "$VMM_RUN" "$AGENT_TEST" "$CTR_PROG"; do
    [ -x "$f" ] || { log "missing $f (build it first)"; exit 1; }
done
command -v zstd >/dev/null || { log "missing zstd (apt-get install zstd)"; exit 1; }

# 1. The registry and the images.
t0=$(date +%s.%N)
bash "$here/registry.sh" start "$reg"
port=$(cat "$reg/port")
python3 "$here/make-images.py" --prog "$CTR_PROG" --verify "$reg" "127.0.0.1:$port" \
    >"$work/images.out" 2>&1 || { log "make-images.py failed"; cat "$work/images.out" >&2; exit 1; }
grep '^#' "$work/images.out" >&2 || true
log "registry on 127.0.0.1:$port, images pushed and verified in $(elapsed "$t0") s"
# What the guest fetches comes after this line of the access log.
log_mark=$(wc -l <"$reg/registry.log")

# 2. The guest image and the VM.
t1=$(date +%s.%N)
CLOAK_BUILD_DIR=$BUILD CLOAK_CACHE_DIR=$BUILD/guest-cache \
    bash "$src/packaging/build-guest.sh" "$guest" >"$work/build-guest.log" 2>&1 ||
    { log "build-guest.sh failed"; tail -n 30 "$work/build-guest.log" >&2; exit 1; }
log "guest image built in $(elapsed "$t1") s"

params=(--append-param cloak.log=debug)
grep -q 'cloak\.registry\.insecure' "$CONFIG" ||
    params+=(--append-param 'cloak.registry.insecure=127.0.0.1:*,localhost:*')
grep -q 'cloak\.registry\.loopback' "$CONFIG" ||
    params+=(--append-param cloak.registry.loopback=10.0.2.2)
t_start=$(date +%s.%N)
"$VMM_RUN" --config "$CONFIG" --state-dir "$state" --backend qemu \
    --kernel "$guest/vmlinuz" --initrd "$guest/initrd.img" --id "pull$$" \
    "${params[@]}" >"$work/runner.out" 2>"$work/runner.err" &
runner_pid=$!
for _ in $(seq 1 600); do
    grep -q '^started ' "$work/runner.out" 2>/dev/null && break
    kill -0 "$runner_pid" 2>/dev/null || { log "vmm-run died before starting"; exit 1; }
    sleep 0.1
done
qemu_pid=$(sed -n 's/^started backend=qemu pid=\([0-9]*\).*/\1/p' "$work/runner.out")
[ -n "$qemu_pid" ] || { log "no 'started backend=qemu pid=N' line"; exit 1; }
log "$(head -n1 "$work/runner.out") after $(elapsed "$t_start") s"

# 3. The scenario (in the background, so that the trap can kill it by pid).
t_test=$(date +%s.%N)
"$AGENT_TEST" --socket "$state/agent.sock" --prog "$CTR_PROG" --images "$reg/images.json" \
    pull >"$work/agent-test.out" 2>&1 &
test_pid=$!
test_rc=0
wait "$test_pid" || test_rc=$?
test_pid=
cat "$work/agent-test.out"
log "agent-test exited $test_rc after $(elapsed "$t_test") s"

rc=0
if grep -q '^ok DestroySandbox' "$work/agent-test.out"; then
    t_destroy=$(date +%s.%N)
    for _ in $(seq 1 600); do
        kill -0 "$runner_pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$runner_pid" 2>/dev/null; then
        log "FAIL: the VM still runs 60 s after DestroySandbox"
        rc=1
    else
        runner_rc=0
        wait "$runner_pid" || runner_rc=$?
        runner_pid=
        if ! grep -q '^exited status=0' "$work/runner.out"; then
            log "FAIL: vmm-run (exit $runner_rc) did not report 'exited status=0':"
            cat "$work/runner.out" >&2
            rc=1
        else
            log "ok $(grep '^exited' "$work/runner.out") $(elapsed "$t_destroy") s after DestroySandbox"
        fi
    fi
else
    log "FAIL: DestroySandbox did not succeed: not waiting for the poweroff"
    rc=1
fi

# 4. Each layer blob of test/multi:v1 went to the guest once (access log, combined format:
#    ... "GET /v2/test/multi/blobs/sha256:<hex> HTTP/1.1" 200 <bytes> ...).
tail -n "+$((log_mark + 1))" "$reg/registry.log" | grep '^127\.' >"$work/guest-requests.log" || true
log "the guest's requests to the registry:"
sed -n 's/.*"\([A-Z]* [^ ]*\) HTTP[^"]*" \([0-9]*\) .*/  \2 \1/p' "$work/guest-requests.log" |
    sed 's/sha256:\([0-9a-f]\{12\}\)[0-9a-f]*/sha256:\1…/' | sort | uniq -c >&2
mapfile -t layers < <(python3 -c '
import json, sys
print("\n".join(json.load(open(sys.argv[1]))["images"]["multi"]["layers"]))' "$reg/images.json")
[ "${#layers[@]}" -eq 4 ] || { log "FAIL: images.json lists ${#layers[@]} layers for multi"; rc=1; }
for i in "${!layers[@]}"; do
    l=${layers[$i]}
    n200=$(grep -c "\"GET /v2/test/multi/blobs/$l HTTP/[0-9.]*\" 200 " "$work/guest-requests.log" || true)
    nany=$(grep -c "\"GET /v2/[^ ]*/blobs/$l HTTP" "$work/guest-requests.log" || true)
    if [ "$n200" -eq 1 ]; then
        log "ok L$((i + 1)) ${l:0:19}…: fetched once (GET 200 from test/multi: $n200, GETs of it from any repository: $nany)"
    else
        log "FAIL: L$((i + 1)) ${l:0:19}…: GET 200 from test/multi $n200 times, want exactly 1 (GETs from any repository: $nany)"
        rc=1
    fi
done

[ "$test_rc" -eq 0 ] || rc=1
if [ "$rc" -eq 0 ]; then log "PASS (total $(elapsed "$t0") s)"; else log "FAIL"; fi
exit "$rc"
