# SPDX-License-Identifier: Apache-2.0
# Shared by the vmm integration tests: sourced with  VMM_RUN CONFIG GUEST_DIR  as $1..$3.
# Every QEMU a test starts is killed by pid on exit (trap), whatever happens.
set -euo pipefail
VMM_RUN=${1:?vmm-run}
CONFIG=${2:?config}
GUEST=${3:?guest dir}
[ -s "$GUEST/vmlinuz" ] && [ -s "$GUEST/initrd.img" ] || { echo "no test guest in $GUEST" >&2; exit 1; }

work=$(mktemp -d /tmp/cloak-vmm-XXXXXX) # short: unix socket paths live below it
state=$work/state
runner_pid=

log() { printf '%s [%s] %s\n' "$(date +%T.%N | cut -c1-12)" "${0##*/}" "$*" >&2; }

# The pids of QEMUs whose command line names our state dir.
qemu_pids() { pgrep -f -- "$state/qmp.sock" || true; }

teardown() {
    local rc=$?
    [ -n "$runner_pid" ] && kill -9 "$runner_pid" 2>/dev/null || true
    for p in $(qemu_pids); do kill -9 "$p" 2>/dev/null || true; done
    if [ $rc -ne 0 ]; then
        for f in "$work"/runner.out "$work"/runner.err "$state"/qemu.log "$state"/console.log; do
            [ -f "$f" ] && { echo "--- $f" >&2; tail -n 30 "$f" >&2; }
        done
    fi
    rm -rf "$work"
    exit $rc
}
trap teardown EXIT

# start_runner [extra vmm-run args...]: starts vmm-run in the background, waits for "started".
start_runner() {
    t_start=$(date +%s.%N)
    "$VMM_RUN" --config "$CONFIG" --state-dir "$state" --backend qemu \
        --kernel "$GUEST/vmlinuz" --initrd "$GUEST/initrd.img" --id "t$$" "$@" \
        >"$work/runner.out" 2>"$work/runner.err" &
    runner_pid=$!
    for _ in $(seq 1 600); do
        grep -q '^started ' "$work/runner.out" 2>/dev/null && break
        kill -0 "$runner_pid" 2>/dev/null || { log "vmm-run died before starting"; return 1; }
        sleep 0.1
    done
    grep -q '^started backend=qemu pid=[0-9]' "$work/runner.out" || { log "no 'started' line"; return 1; }
    log "$(head -n1 "$work/runner.out") after $(echo "$(date +%s.%N) - $t_start" | bc) s"
}

# wait_ready: the guest printed CLOAK_TEST_GUEST_READY on its console (up to 120 s).
wait_ready() {
    for _ in $(seq 1 1200); do
        if grep -q CLOAK_TEST_GUEST_READY "$state/console.log" 2>/dev/null; then
            log "guest ready $(echo "$(date +%s.%N) - $t_start" | bc) s after start"
            return 0
        fi
        kill -0 "$runner_pid" 2>/dev/null || { log "vmm-run exited before READY"; return 1; }
        sleep 0.1
    done
    log "no CLOAK_TEST_GUEST_READY within 120 s"
    return 1
}

# wait_pid_gone PID SECONDS
wait_pid_gone() {
    for _ in $(seq 1 $(($2 * 10))); do
        # gone, or a zombie nobody reaped yet (PID 1 of a container may not)
        [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = "" ] && return 0
        [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = Z ] && return 0
        sleep 0.1
    done
    return 1
}

# assert_no_qemu SECONDS: no QEMU of ours remains (waits a little for it to die).
assert_no_qemu() {
    for _ in $(seq 1 $(($1 * 10))); do
        [ -z "$(qemu_pids)" ] && return 0
        sleep 0.1
    done
    log "QEMU still running: $(qemu_pids)"
    return 1
}

assert_no_state_files() {
    for f in qmp.sock agent.sock qemu.pid; do
        [ ! -e "$state/$f" ] || { log "$state/$f left behind"; return 1; }
    done
}
