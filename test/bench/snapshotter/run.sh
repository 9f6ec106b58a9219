#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Benchmarks cloak-snapshotter against containerd 1.6's native overlayfs snapshotter (refsnap,
# /work/shared/bench/refsnap) behind the same Snapshots gRPC API, through containerd's own
# proxy client (snapbench.go). Per round, each snapshotter is started on a fresh root under
# /tmp and runs the same workload:
#   - ITERS cycles of Prepare(key, base) -> Mounts -> Commit -> Prepare(child of it) -> Mounts
#     -> Remove(child) -> Remove(committed);
#   - CHAINS chains of 20 layers (Prepare/Commit each), a View on top, Stat of every layer,
#     5 Lists (Walk), then removal of the chain.
# Rounds alternate ref and cloak. Prints the median over rounds of each op's mean latency and
# the ratio ref/cloak per op and overall (median total wall time of the workload):
#   ratio > 1 means cloak is faster (ratio 2.0: cloak takes half ref's time).
# Never checks a threshold (see test/bench/README.md). Nothing is mounted: both snapshotters
# only return mount specs. Measured on a shared machine: compare ratios, not microseconds.
#
#   test/bench/snapshotter/run.sh [--build-dir build] [--rounds 5] [--iters 200] [--chains 5]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

build=build rounds=5 iters=200 chains=5
while [ $# -gt 0 ]; do
    case "$1" in
    --build-dir) build=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --iters) iters=$2; shift 2 ;;
    --chains) chains=$2; shift 2 ;;
    *) echo "usage: $0 [--build-dir DIR] [--rounds N] [--iters N] [--chains N]" >&2; exit 2 ;;
    esac
done
cloak=$build/snapshotter/cloak-snapshotter
[ -x "$cloak" ] || { echo "run.sh: no $cloak (ninja -C $build cloak-snapshotter-bin)" >&2; exit 1; }
cloak=$(realpath "$cloak")
bin=${CLOAK_SNAPBENCH_CACHE:-/tmp/cloak-snapbench-bin}
"$here/build.sh" "$bin"

work=$(mktemp -d /tmp/cloak-bench-snap-XXXXXX)
pid=
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

# one NAME: starts the snapshotter on a fresh root, runs the workload, stops it (by pid).
# Output: snapbench's "op NAME COUNT MEAN_US" and "total SECONDS" lines.
one() {
    local name=$1 root=$work/$1-root sock=$work/$1.sock
    rm -rf "$root" "$sock"
    mkdir -p "$root"
    sync
    case "$name" in
    ref) "$bin/refsnap" "$sock" "$root" >"$work/$name.log" 2>&1 & ;;
    cloak) "$cloak" --root "$root" --address "$sock" >"$work/$name.log" 2>&1 & ;;
    esac
    pid=$!
    for _ in $(seq 200); do [ -S "$sock" ] && break; sleep 0.05; done
    [ -S "$sock" ] || { echo "run.sh: $name did not start:" >&2; cat "$work/$name.log" >&2; exit 1; }
    "$bin/snapbench" bench -sock "$sock" -iters "$iters" -chains "$chains"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    pid=
    rm -rf "$root"
}

: >"$work/results"
for r in $(seq "$rounds"); do
    for name in ref cloak; do
        one "$name" | sed "s/^/$name /" >>"$work/results"
    done
    echo "round $r: total ref $(awk '$1=="ref" && $2=="total" {v=$3} END {print v}' "$work/results") s," \
         "cloak $(awk '$1=="cloak" && $2=="total" {v=$3} END {print v}' "$work/results") s"
done

# Medians over rounds; per op the mean latency (us) of each round.
awk '
function median(s,   a, n, t, i, j) {
    n = split(s, a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
$2 == "op" { v[$1, $3] = v[$1, $3] " " $5; cnt[$3] = $4; if (!($3 in seen)) { seen[$3] = 1; order[++n] = $3 } }
$2 == "total" { v[$1, "total"] = v[$1, "total"] " " $3 }
END {
    printf "%-14s %7s %12s %12s %8s\n", "op", "count", "ref us", "cloak us", "ratio"
    for (i = 1; i <= n; i++) {
        op = order[i]; a = median(v["ref", op]); b = median(v["cloak", op])
        printf "%-14s %7d %12.1f %12.1f %8.2f\n", op, cnt[op], a, b, a / b
    }
    a = median(v["ref", "total"]); b = median(v["cloak", "total"])
    printf "overall: ref %.3f s, cloak %.3f s per workload (median of %d rounds), ratio ref/cloak %.2f\n", a, b, split(v["ref", "total"], x, " "), a / b
    print "(ratio = ref time / cloak time: > 1 means cloak is faster)"
}' "$work/results"
