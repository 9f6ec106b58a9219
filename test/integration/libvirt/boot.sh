#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# libvirt backend integration test: boot.sh term|sigkill VMM_RUN CONFIG GUEST_DIR
# Boots the test guest through vmm-run --backend libvirt on qemu:///system (TCG, virtio-serial
# on this CI box), waits for CLOAK_TEST_GUEST_READY on the console, then
#   term:    SIGTERM vmm-run → it must stop the VM and exit 0
#   sigkill: SIGKILL vmm-run → AUTODESTROY must remove the domain within ~20 s
# and checks nothing is left: no domain cloak-<id>, no QEMU on the state dir, no agent.sock.
set -euo pipefail
mode=${1:?usage: boot.sh term|sigkill VMM_RUN CONFIG GUEST_DIR}
vmm_run=${2:?}
config_src=${3:?}
guest=${4:?}
uri=qemu:///system
id="lvtest-$mode-$$"
dom="cloak-$id"

# libvirtd's QEMU runs as libvirt-qemu: every directory on the way must be traversable.
tmp=$(mktemp -d /tmp/cloak-lv.XXXXXX)
chmod 0755 "$tmp"
state=$tmp/state
pid=

cleanup() {
    local rc=$?
    [ -z "$pid" ] || kill -KILL "$pid" 2>/dev/null || true
    virsh -c "$uri" destroy "$dom" >/dev/null 2>&1 || true
    virsh -c "$uri" destroy "cloak-lvother-$$" >/dev/null 2>&1 || true
    if [ $rc -ne 0 ]; then
        echo "--- vmm-run output"; cat "$tmp/out.log" 2>/dev/null || true
        echo "--- console.log (tail)"; tail -n 20 "$state/console.log" 2>/dev/null || true
        echo "--- /var/log/libvirt/qemu/$dom.log (tail)"
        tail -n 20 "/var/log/libvirt/qemu/$dom.log" 2>/dev/null || true
    fi
    rm -rf "$tmp"
    exit $rc
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

qemu_left() { # prints pids of QEMUs whose command line names the state dir
    pgrep -f "qemu-system.*$state/" || true
}

domain_listed() {
    # Not `virsh ... | grep -q`: with pipefail, grep quitting early can SIGPIPE virsh.
    local names
    names=$(virsh -c "$uri" list --all --name) || fail "virsh list failed"
    printf '%s\n' "$names" | grep -x "$dom" >/dev/null
}

# The dev config, switched to the libvirt backend.
sed -e 's/^backend = .*/backend = "libvirt"/' "$config_src" >"$tmp/cloak.toml"
grep -q '^libvirt_uri' "$tmp/cloak.toml" ||
    sed -i "s|^backend = .*|&\nlibvirt_uri = \"$uri\"|" "$tmp/cloak.toml"

start=$(date +%s)
stdbuf -oL "$vmm_run" --config "$tmp/cloak.toml" --state-dir "$state" --backend libvirt \
    --kernel "$guest/vmlinuz" --initrd "$guest/initrd.img" --id "$id" >"$tmp/out.log" 2>&1 &
pid=$!

for _ in $(seq 1 600); do
    grep -q '^started backend=libvirt' "$tmp/out.log" && break
    kill -0 "$pid" 2>/dev/null || fail "vmm-run exited before starting the VM"
    sleep 0.2
done
grep -q '^started backend=libvirt' "$tmp/out.log" || fail "no 'started backend=libvirt' line"
domain_listed || fail "domain $dom not listed by virsh"

for _ in $(seq 1 750); do # 150 s: TCG on a busy 2-core box
    grep -q CLOAK_TEST_GUEST_READY "$state/console.log" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || fail "vmm-run exited before the guest was ready"
    sleep 0.2
done
grep -q CLOAK_TEST_GUEST_READY "$state/console.log" 2>/dev/null || fail "guest never ready"
echo "guest ready after $(($(date +%s) - start)) s"

case $mode in
term)
    # Another domain stopping on the same daemon must not look like ours exiting (the event
    # callback sees every domain of its connection).
    other="cloak-lvother-$$"
    printf '%s\n' "<domain type='qemu'><name>$other</name><memory unit='MiB'>32</memory>" \
        "<os><type arch='x86_64' machine='q35'>hvm</type></os></domain>" >"$tmp/other.xml"
    virsh -c "$uri" create "$tmp/other.xml" >/dev/null || fail "cannot create $other"
    virsh -c "$uri" destroy "$other" >/dev/null || fail "cannot destroy $other"
    sleep 2
    kill -0 "$pid" 2>/dev/null || fail "vmm-run exited when another domain stopped"
    ! grep -q '^exited' "$tmp/out.log" || fail "vmm-run reported an exit for another domain"
    kill -TERM "$pid"
    rc=0
    wait "$pid" || rc=$?
    pid=
    [ $rc -eq 0 ] || fail "vmm-run exited $rc after SIGTERM"
    ! domain_listed || fail "domain $dom still listed after vmm-run exited"
    ;;
sigkill)
    kill -KILL "$pid"
    wait "$pid" 2>/dev/null || true
    pid=
    for _ in $(seq 1 100); do # 20 s
        domain_listed || [ -n "$(qemu_left)" ] || break
        sleep 0.2
    done
    ! domain_listed || fail "domain $dom survived its controller (no AUTODESTROY?)"
    ;;
esac

for _ in $(seq 1 50); do
    [ -z "$(qemu_left)" ] && break
    sleep 0.2
done
[ -z "$(qemu_left)" ] || fail "QEMU still running on $state: $(qemu_left)"
if [ "$mode" = term ]; then
    [ ! -e "$state/agent.sock" ] || fail "agent.sock left in $state"
else
    # The controller died: its crash cleanup removes the state files.
    "$vmm_run" --cleanup "$state" || fail "vmm-run --cleanup failed"
    [ ! -e "$state/agent.sock" ] || fail "agent.sock left in $state after --cleanup"
fi
cat "$tmp/out.log"
echo "PASS ($mode) in $(($(date +%s) - start)) s"
