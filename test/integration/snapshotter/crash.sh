#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Crash safety of cloak-snapshotter: snapbench's crash mode (test/bench/snapshotter/snapbench.go)
# runs a Prepare/Mounts/Commit/View/Remove workload through containerd's proxy client, kills
# the snapshotter with SIGKILL after 20-300 ms, restarts it on the same root and checks, after
# every restart, through the API and on disk:
#   - every snapshot whose Prepare/View/Commit was acknowledged (and not removed) still
#     exists, with its kind, parent and labels;
#   - no snapshot exists that the client did not create; the op in flight at the kill may or
#     may not have happened, but atomically (a commit gives the active or the committed one);
#   - every active/view snapshot is complete: Mounts works and every dir it names exists;
#   - <root>/snapshots holds exactly one dir per listed snapshot (info.json, fs, work), no
#     orphans left by the startup reconcile.
# Prints ok/FAIL per restart and "N passed, N failed". Exit 77 (skip) without Go or
# containerd's Go sources. Kills only the snapshotter it started, by pid.
#
#   crash.sh SNAPSHOTTER [--kills N] [--seed N]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bench=$here/../../bench/snapshotter
snap=${1:?usage: crash.sh SNAPSHOTTER [--kills N] [--seed N]}
shift
kills=30 seed=$(date +%s%N)
while [ $# -gt 0 ]; do
    case "$1" in
    --kills) kills=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    *) echo "usage: crash.sh SNAPSHOTTER [--kills N] [--seed N]" >&2; exit 2 ;;
    esac
done
[ -x "$snap" ] || { echo "crash.sh: no $snap" >&2; exit 1; }
if ! command -v go >/dev/null || [ ! -d /usr/share/gocode/src/github.com/containerd/containerd ]; then
    echo "SKIP: needs golang-go and golang-github-containerd-containerd-dev"
    exit 77
fi

work=$(mktemp -d /tmp/cloak-snap-crash-XXXXXX)
trap 'rm -rf "$work"' EXIT
"$bench/build.sh" "${CLOAK_SNAPBENCH_CACHE:-/tmp/cloak-snapbench-bin}" snapbench
rc=0
"${CLOAK_SNAPBENCH_CACHE:-/tmp/cloak-snapbench-bin}/snapbench" crash -bin "$snap" \
    -root "$work/root" -kills "$kills" -seed "$seed" || rc=$?
if [ $rc -ne 0 ]; then
    echo "--- snapshotter log (last 40 lines) ---"
    tail -n 40 "$work/root.log" || true
fi
exit $rc
