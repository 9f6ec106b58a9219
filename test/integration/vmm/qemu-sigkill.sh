#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# vmm-run is SIGKILLed: QEMU dies with it (PR_SET_PDEATHSIG); vmm-run --cleanup then removes
# the leftovers and is idempotent.
. "$(dirname "$0")/lib.sh"
start_runner
wait_ready
qpid=$(sed -n 's/^started backend=qemu pid=\([0-9]*\)$/\1/p' "$work/runner.out")
kill -9 "$runner_pid"
wait "$runner_pid" 2>/dev/null || true
runner_pid=
wait_pid_gone "$qpid" 10 || { log "QEMU $qpid survived its controller"; exit 1; }
assert_no_qemu 5
"$VMM_RUN" --cleanup "$state"
[ ! -e "$state" ] || { log "state dir left: $(ls -A "$state")"; exit 1; }
"$VMM_RUN" --cleanup "$state"
log PASS
