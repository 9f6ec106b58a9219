#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The guest powers off by itself: vmm-run reports "exited status=0" and exits 0.
. "$(dirname "$0")/lib.sh"
start_runner --append-param cloak.test=poweroff
rc=0
for _ in $(seq 1 1200); do
    kill -0 "$runner_pid" 2>/dev/null || break
    sleep 0.1
done
wait "$runner_pid" || rc=$?
runner_pid=
[ $rc -eq 0 ] || { log "vmm-run exited $rc"; exit 1; }
grep -q '^exited status=0 ' "$work/runner.out" || { log "no 'exited status=0'"; cat "$work/runner.out" >&2; exit 1; }
grep -q CLOAK_TEST_GUEST_READY "$state/console.log" || { log "guest never got READY"; exit 1; }
log "$(grep '^exited' "$work/runner.out") after $(echo "$(date +%s.%N) - $t_start" | bc) s"
assert_no_qemu 5
assert_no_state_files
log PASS
