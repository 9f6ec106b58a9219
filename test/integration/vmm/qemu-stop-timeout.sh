#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# QEMU cannot answer "quit" (it is SIGSTOPped): vmm_instance_stop() kills it after its
# timeout (10 s in vmm-run) and on_exit reports signal 9.
. "$(dirname "$0")/lib.sh"
start_runner
wait_ready
qpid=$(sed -n 's/^started backend=qemu pid=\([0-9]*\)$/\1/p' "$work/runner.out")
kill -STOP "$qpid"
kill -TERM "$runner_pid"
t0=$(date +%s.%N)
rc=0
wait "$runner_pid" || rc=$?
runner_pid=
[ $rc -eq 0 ] || { log "vmm-run exited $rc"; exit 1; }
grep -q '^exited status=137 reason=qemu killed by signal 9$' "$work/runner.out" ||
    { log "unexpected: $(cat "$work/runner.out")"; exit 1; }
log "killed after $(echo "$(date +%s.%N) - $t0" | bc) s"
assert_no_qemu 5
assert_no_state_files
log PASS
