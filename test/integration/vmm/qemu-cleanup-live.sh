#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# vmm_cleanup() on a state dir whose QEMU still runs kills that QEMU (it checks
# /proc/<pid>/cmdline first); its controller then sees "killed by signal 9".
. "$(dirname "$0")/lib.sh"
start_runner
wait_ready
"$VMM_RUN" --cleanup "$state"
rc=0
wait "$runner_pid" || rc=$?
runner_pid=
[ $rc -eq 0 ] || { log "vmm-run exited $rc"; exit 1; }
grep -q '^exited status=137 reason=qemu killed by signal 9$' "$work/runner.out" ||
    { log "unexpected: $(cat "$work/runner.out")"; exit 1; }
assert_no_qemu 5
assert_no_state_files
log PASS
