#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Boots the test guest, checks the agent socket, stops it with SIGTERM to vmm-run.
. "$(dirname "$0")/lib.sh"
start_runner
wait_ready
[ -S "$state/agent.sock" ] || { log "no agent.sock (virtio-serial chardev)"; exit 1; }
kill -TERM "$runner_pid"
t0=$(date +%s.%N)
rc=0
wait "$runner_pid" || rc=$?
runner_pid=
[ $rc -eq 0 ] || { log "vmm-run exited $rc after SIGTERM"; exit 1; }
log "stopped in $(echo "$(date +%s.%N) - $t0" | bc) s: $(tail -n1 "$work/runner.out")"
assert_no_qemu 5
assert_no_state_files
log PASS
