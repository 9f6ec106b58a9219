#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Time to first output of a pod: cloak (runtime handler `cloak`: a VM per pod, the image
# pulled inside it) against runc (a second private containerd, overlayfs, the image pulled
# and unpacked on the host), same image, same loopback registry, in the same run.
#   test/bench/pod/run.sh [RUNS]      (root; $CLOAK_BUILD_DIR or build/ with its guest image)
# Each run is a fresh pod through CRI (cloakctl run --timings IMAGE echo ...; cloak's with
# --keep, then cloakctl rm, to read the guest's console first) and, for runc,
# a fresh image: the image is removed from runc's containerd before each run, so both pull
# it every time (cloak's host side only ever fetches the manifest and config). Prints each
# run, the medians of pull/pod/create/start/first_output (s since cloakctl run began), the
# cloak split from the shim's log and the guest's console (VM boot, agent ready, image pull
# in the guest, container start), and the ratio cloak / runc of the median time to first
# output. No threshold: a report, not a test.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../../.." && pwd)
BUILD=$(cd "${CLOAK_BUILD_DIR:-$src/build}" && pwd)
runs=${1:-5}
[ "$(id -u)" -eq 0 ] || { echo "bench/pod: needs root" >&2; exit 1; }
# shellcheck source=../../../packaging/embedded-env.sh
. "$src/packaging/embedded-env.sh"
T=$(mktemp -d /tmp/cloak-bench-pod.XXXXXX)
export CENV_BRIDGE=cloakbench0 CENV_SUBNET=10.88.83.0/24
cleanup() {
    trap - EXIT
    CRI_BRIDGE=cloakbench1 bash "$CENV_CRI/containerd.sh" stop "$T/runc" >/dev/null 2>&1 || true
    cenv_stop
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

cenv_start "$T/env" "$BUILD" "$src/configs/cloak-dev.toml" || exit 1
CRI_BRIDGE=cloakbench1 CRI_SUBNET=10.88.84.0/24 \
    bash "$CENV_CRI/containerd.sh" start "$T/runc" "$CENV_REG" || exit 1
L=$T/images
oci_busybox "$L" hello && oci_push "$L" hello "$CENV_REG/bench/hello:1" || exit 1
image=$CENV_REG/bench/hello:1

declare -A sum
one() { # RUNTIME SOCK N
    local rt=$1 sock=$2 n=$3 err=$T/$1-$3.err args=()
    # cloak: --keep, so the guest's console (the agent's pull line) can be read before the
    # pod goes.
    [ "$rt" = cloak ] && args=(--runtime cloak --keep)
    [ "$rt" = runc ] && ctr --address "$sock" -n k8s.io images rm --sync "$image" >/dev/null 2>&1
    "$CENV_CLOAKCTL" --address "$sock" run "${args[@]}" --timings "$image" -c "echo run $n" \
        >"$T/$rt-$n.out" 2>"$err"
    local rc=$?
    [ "$rc" = 0 ] && [ "$(cat "$T/$rt-$n.out")" = "run $n" ] ||
        { echo "bench/pod: $rt run $n failed (exit $rc): $(cat "$err")" >&2; return 1; }
    if [ "$rt" = cloak ]; then
        local pod pull
        pod=$(cenv_kept_pod "$err")
        pull=$(tr -d '\r' <"$(cenv_pod_state "$pod")/console.log" |
            sed -n 's/.*bench\/hello.* pulled: .* in \([0-9.]*\) s"\{0,1\}$/\1/p' | tail -n 1)
        echo "${pull:-?}" >>"$T/guest-pull"
        "$CENV_CLOAKCTL" --address "$sock" rm "$pod" >/dev/null
    fi
    sed -n 's/^cloakctl run: timings: //p' "$err"
}
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) exit; if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
field() { tr ' ' '\n' | sed -n "s/^$1=//p"; }

for n in $(seq 1 "$runs"); do
    for rt in runc cloak; do
        sock=$CENV_SOCK
        [ "$rt" = runc ] && sock=$T/runc/containerd.sock
        line=$(one "$rt" "$sock" "$n") || exit 1
        printf '%-5s run %d: %s\n' "$rt" "$n" "$line"
        echo "$line" >>"$T/$rt.timings"
    done
done

echo
echo "medians over $runs runs (s since cloakctl run began):"
for rt in runc cloak; do
    printf '  %-5s' "$rt"
    for f in pull pod create start first_output exited; do
        v=$(field "$f" <"$T/$rt.timings" | median)
        printf ' %s=%s' "$f" "$v"
        sum[$rt.$f]=$v
    done
    echo
done

# The cloak split, medians over the runs' pods (the shim's log lines, the guest's pull line).
shimlog() { grep -a 'component=cloak-shim' "$T/env/ctd/containerd.log"; }
vm=$(shimlog | sed -n 's/.*: VM started .* in \([0-9.]*\) s".*/\1/p' | median)
agent=$(shimlog | sed -n 's/.*: agent ready \([0-9.]*\) s after.*/\1/p' | median)
create=$(shimlog | grep 'bench/hello' | sed -n 's/.*created in the guest in \([0-9.]*\) s.*/\1/p' | median)
echo
echo "cloak, where the time to first output went (medians, the shim's log):"
echo "  VM boot (QEMU up, QMP answering)      ${vm:-?} s"
echo "  agent ready (guest kernel, agent)     ${agent:-?} s"
echo "  image pull in the guest               $(median <"$T/guest-pull") s (the agent's log)"
echo "  app container create in the guest     ${create:-?} s (that pull included)"
echo "  (cloakctl: pod ready at ${sum[cloak.pod]} s, container started at ${sum[cloak.start]} s)"
ratio=$(awk -v a="${sum[cloak.first_output]}" -v b="${sum[runc.first_output]}" 'BEGIN { if (b > 0) printf "%.1f", a / b; else print "?" }')
echo
echo "time to first output, median: cloak ${sum[cloak.first_output]} s, runc ${sum[runc.first_output]} s: ratio cloak/runc $ratio"
if grep -q 'TCG only' <("$CENV_CLOAKCTL" check 2>/dev/null); then echo "(cloak's VM runs under TCG here: no usable KVM)"; fi
