#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# QEMU exits during its start (missing kernel): vmm-run fails with QEMU's own message and
# nothing keeps running.
. "$(dirname "$0")/lib.sh"
rc=0
"$VMM_RUN" --config "$CONFIG" --state-dir "$state" --backend qemu --kernel "$work/no-such-kernel" \
    --initrd "$GUEST/initrd.img" >"$work/runner.out" 2>"$work/runner.err" || rc=$?
[ $rc -eq 1 ] || { log "vmm-run exited $rc, expected 1"; exit 1; }
grep -q "start qemu: .*could not open kernel file" "$work/runner.err" || { log "bad error:"; cat "$work/runner.err" >&2; exit 1; }
log "error: $(cat "$work/runner.err")"
assert_no_qemu 2
assert_no_state_files
log PASS
