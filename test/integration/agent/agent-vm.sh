#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The agent integration test (issue 5):
#   agent-vm.sh BUILD_DIR VMM_RUN CONFIG AGENT_TEST CTR_PROG
#
# Builds the real guest image (packaging/build-guest.sh, cloak-agent from BUILD_DIR) into
# BUILD_DIR/test-agent-guest, boots it with vmm-run under QEMU, runs `agent-test main`
# against the host end of the agent's virtio-serial port (STATE/agent.sock) and then
# requires the guest to power itself off after DestroySandbox: vmm-run reports
# "exited status=0" within 60 s. Every process it starts is killed by pid on exit.
set -euo pipefail
BUILD=${1:?build dir}
VMM_RUN=${2:?vmm-run}
CONFIG=${3:?config}
AGENT_TEST=${4:?agent-test}
CTR_PROG=${5:?ctr-prog}
src=$(cd "$(dirname "$0")/../../.." && pwd)
BUILD=$(cd "$BUILD" && pwd)
guest=$BUILD/test-agent-guest

log() { printf '%s [agent-vm] %s\n' "$(date +%T.%N | cut -c1-12)" "$*" >&2; }
elapsed() { echo "$(date +%s.%N) - $1" | bc; }

work=$(mktemp -d /tmp/cloak-agent-XXXXXX) # short: unix socket paths live below it
state=$work/state
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
    if [ "$rc" -ne 0 ]; then
        for f in "$work"/runner.out "$work"/runner.err "$state"/qemu.log; do
            [ -f "$f" ] && { echo "--- $f" >&2; tail -n 30 "$f" >&2; }
        done
        [ -f "$state/console.log" ] && { echo "--- $state/console.log" >&2; tail -n 80 "$state/console.log" >&2; }
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
[ -x "$BUILD/guest/cloak-pause" ] || log "warning: no $BUILD/guest/cloak-pause (the pause container will fail)"

# 1. The guest image, with this build's cloak-agent (the .deb cache is kept in the build dir).
t0=$(date +%s.%N)
CLOAK_BUILD_DIR=$BUILD CLOAK_CACHE_DIR=$BUILD/guest-cache \
    bash "$src/packaging/build-guest.sh" "$guest" >"$work/build-guest.log" 2>&1 ||
    { log "build-guest.sh failed"; tail -n 30 "$work/build-guest.log" >&2; exit 1; }
log "guest image built in $(elapsed "$t0") s"

# 2. The VM.
t_start=$(date +%s.%N)
"$VMM_RUN" --config "$CONFIG" --state-dir "$state" --backend qemu \
    --kernel "$guest/vmlinuz" --initrd "$guest/initrd.img" --id "agent$$" \
    --append-param cloak.log=debug >"$work/runner.out" 2>"$work/runner.err" &
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
"$AGENT_TEST" --socket "$state/agent.sock" --prog "$CTR_PROG" main >"$work/agent-test.out" 2>&1 &
test_pid=$!
test_rc=0
wait "$test_pid" || test_rc=$?
test_pid=
cat "$work/agent-test.out"
ready=$(sed -n 's/^agent ready after \([0-9.]*\) s$/\1/p' "$work/agent-test.out")
[ -n "$ready" ] && log "VM start -> agent ready: $(echo "$t_test - $t_start + $ready" | bc) s"
log "agent-test exited $test_rc after $(elapsed "$t_test") s"

# 4. DestroySandbox powers the guest off: vmm-run reports it and exits by itself.
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

# While the host is away the agent must sleep, not spin on the port's hang-up: sum the guest
# uptime and the agent's CPU time between each "host disconnected" and the next "host
# connected" line (the agent logs both figures). A spinning agent burns ~100% of that time.
if ! gaps=$(awk '
    /msg="host (disconnected|connection failed)/ { match($0, /uptime=[0-9.]+s cpu=[0-9]+ms/);
        split(substr($0, RSTART, RLENGTH), f, /[= ]|s |ms/); up0 = f[2]; cpu0 = f[4]; away = 1; next }
    /msg="host connected/ && away { match($0, /uptime=[0-9.]+s cpu=[0-9]+ms/);
        split(substr($0, RSTART, RLENGTH), f, /[= ]|s |ms/); up += f[2] - up0; cpu += f[4] - cpu0;
        n++; away = 0 }
    END { if (n == 0) exit 1; printf "%d %.2f %d\n", n, up, cpu }' "$state/console.log"); then
    log "FAIL: no disconnect/reconnect pair in the guest console log"
    rc=1
else
    read -r n_gaps gap_s gap_cpu_ms <<<"$gaps"
    log "host away $n_gaps times, ${gap_s} s of guest time in all; agent CPU meanwhile: ${gap_cpu_ms} ms"
    if [ "$(echo "$gap_cpu_ms > $gap_s * 1000 / 4" | bc)" -eq 1 ]; then
        log "FAIL: the agent used more than a quarter of the time the host was away: spinning?"
        rc=1
    fi
fi

[ "$test_rc" -eq 0 ] || rc=1
if [ "$rc" -eq 0 ]; then log "PASS (total $(elapsed "$t0") s)"; else log "FAIL"; fi
exit "$rc"
