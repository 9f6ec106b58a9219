#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# qemu-maps.sh VMM_RUN CONFIG GUEST_DIR — a controller on the qemu backend never maps libvirt
# (the libvirt backend is a dlopen'd plugin): start vmm-run --backend qemu, read its
# /proc/<pid>/maps once the VM runs, then SIGTERM it (exit 0 expected).
set -euo pipefail
vmm_run=${1:?usage: qemu-maps.sh VMM_RUN CONFIG GUEST_DIR}
config=${2:?}
guest=${3:?}
tmp=$(mktemp -d /tmp/cloak-lvq.XXXXXX)
chmod 0755 "$tmp"
pid=
cleanup() {
    local rc=$?
    [ -z "$pid" ] || kill -KILL "$pid" 2>/dev/null || true
    [ $rc -eq 0 ] || cat "$tmp/out.log" 2>/dev/null || true
    rm -rf "$tmp"
    exit $rc
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$vmm_run" --config "$config" --state-dir "$tmp/state" --backend qemu \
    --kernel "$guest/vmlinuz" --initrd "$guest/initrd.img" --id "lvmaps-$$" >"$tmp/out.log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do
    grep -q '^started backend=qemu' "$tmp/out.log" && break
    kill -0 "$pid" 2>/dev/null || fail "vmm-run exited before starting the VM"
    sleep 0.2
done
grep -q '^started backend=qemu' "$tmp/out.log" || fail "no 'started backend=qemu' line"
if grep -q 'libvirt' "/proc/$pid/maps"; then
    grep libvirt "/proc/$pid/maps" >&2
    fail "vmm-run on the qemu backend maps libvirt"
fi
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=
[ $rc -eq 0 ] || fail "vmm-run exited $rc after SIGTERM"
cat "$tmp/out.log"
echo "PASS: no libvirt in the maps of a qemu-backend controller"
