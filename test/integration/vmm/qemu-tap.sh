#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# net=tap ("tcfilter" networking): vmm-run --netns creates tap0_cloak in a pod network
# namespace (created here, with a veth eth0 <-> peer0 to a second namespace), tc mirred
# redirects eth0 <-> tap both ways, traffic from the peer reaches the tap, and stopping the
# VM removes the tap and the tc rules. Also: network "tap" without --netns is refused.
# Needs root (network namespaces), iproute2 and iputils-ping.
. "$(dirname "$0")/lib.sh"
pod_ns=cloak-tap-pod-$$
peer_ns=cloak-tap-peer-$$
tap=tap0_cloak

net_teardown() {
    local rc=$?
    ip netns del "$pod_ns" 2>/dev/null || true
    ip netns del "$peer_ns" 2>/dev/null || true
    (exit $rc)
    teardown # lib.sh: kills vmm-run and QEMU by pid, prints logs on failure, exits rc
}
trap net_teardown EXIT

sed 's/^network = .*/network = "tap"/' "$CONFIG" >"$work/tap.toml"
grep -q '^network = "tap"' "$work/tap.toml" || { log "could not set network = tap"; exit 1; }
CONFIG=$work/tap.toml

# 1. network "tap" without a namespace: a clear error, nothing left running.
rc=0
"$VMM_RUN" --config "$CONFIG" --state-dir "$state" --backend qemu --kernel "$GUEST/vmlinuz" \
    --initrd "$GUEST/initrd.img" >"$work/runner.out" 2>"$work/runner.err" || rc=$?
[ $rc -eq 1 ] || { log "no --netns: vmm-run exited $rc, expected 1"; exit 1; }
grep -q "netns" "$work/runner.err" || { log "no --netns: bad error:"; cat "$work/runner.err" >&2; exit 1; }
log "no --netns: $(cat "$work/runner.err")"
assert_no_qemu 2

# 2. The pod namespace with eth0, its peer in a second namespace.
ip netns add "$pod_ns"
ip netns add "$peer_ns"
ip link add eth0 netns "$pod_ns" type veth peer name peer0 netns "$peer_ns"
ip -n "$pod_ns" addr add 10.213.0.2/24 dev eth0
ip -n "$peer_ns" addr add 10.213.0.1/24 dev peer0
ip -n "$pod_ns" link set lo up
ip -n "$peer_ns" link set lo up
ip -n "$pod_ns" link set eth0 up
ip -n "$peer_ns" link set peer0 up

start_runner --netns "/var/run/netns/$pod_ns" --pod-if eth0
wait_ready

ip -n "$pod_ns" link show "$tap" >/dev/null || { log "no $tap in $pod_ns"; exit 1; }
ip -n "$pod_ns" link show "$tap" | grep -q '[<,]UP[,>]' || { log "$tap is not up"; exit 1; }
mtu_eth0=$(ip netns exec "$pod_ns" cat /sys/class/net/eth0/mtu)
mtu_tap=$(ip netns exec "$pod_ns" cat /sys/class/net/$tap/mtu)
[ "$mtu_eth0" = "$mtu_tap" ] || { log "MTU: eth0 $mtu_eth0, $tap $mtu_tap"; exit 1; }
tc -n "$pod_ns" filter show dev eth0 ingress | grep -q "mirred (Egress Redirect to device $tap)" \
    || { log "no eth0 -> $tap redirect:"; tc -n "$pod_ns" filter show dev eth0 ingress >&2; exit 1; }
tc -n "$pod_ns" filter show dev "$tap" ingress | grep -q "mirred (Egress Redirect to device eth0)" \
    || { log "no $tap -> eth0 redirect:"; tc -n "$pod_ns" filter show dev "$tap" ingress >&2; exit 1; }

# 3. Traffic from the peer reaches the tap. The guest has no network stack: nobody answers
# ARP, so a static neighbour entry lets the echo requests themselves go out.
tap_tx() { ip netns exec "$pod_ns" cat /sys/class/net/$tap/statistics/tx_packets; }
# Packets the eth0 ingress filter redirected to the tap (its mirred action's counter).
mirred_pkts() {
    tc -s -n "$pod_ns" filter show dev eth0 ingress |
        awk '/mirred/ {m=1} m && /Sent/ {for (i=1;i<NF;i++) if ($(i+1) ~ /^pkt/) {print $i; exit}}'
}
ip -n "$peer_ns" neigh replace 10.213.0.2 lladdr 02:00:0a:d5:00:02 dev peer0
tx0=$(tap_tx)
m0=$(mirred_pkts)
ip netns exec "$peer_ns" ping -c 3 -i 0.2 -W 1 10.213.0.2 >/dev/null 2>&1 || true
sleep 0.5
tx1=$(tap_tx)
m1=$(mirred_pkts)
log "tap tx_packets $tx0 -> $tx1, eth0 mirred redirected $m0 -> $m1"
[ $((m1 - m0)) -ge 3 ] || { log "fewer than 3 packets redirected eth0 -> $tap"; exit 1; }

# 4. Stop: the tap and the tc rules go.
kill -TERM "$runner_pid"
rc=0
wait "$runner_pid" || rc=$?
runner_pid=
[ $rc -eq 0 ] || { log "vmm-run exited $rc after SIGTERM"; exit 1; }
assert_no_qemu 5
assert_no_state_files
for _ in $(seq 1 50); do
    ip -n "$pod_ns" link show "$tap" >/dev/null 2>&1 || break
    sleep 0.1
done
! ip -n "$pod_ns" link show "$tap" >/dev/null 2>&1 || { log "$tap still exists after stop"; exit 1; }
! tc -n "$pod_ns" filter show dev eth0 ingress 2>/dev/null | grep -q mirred \
    || { log "mirred filter left on eth0"; exit 1; }
! tc -n "$pod_ns" qdisc show dev eth0 | grep -q ingress || { log "ingress qdisc left on eth0"; exit 1; }
log PASS
