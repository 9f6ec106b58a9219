#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# ttrpc benchmark: our C Echo server against containerd's Go ttrpc server (v1.1.1), both
# driven by the same Go client (ttrpc-go-bench: N goroutines on ONE connection, the way
# containerd talks to a shim). Runs alternate C, Go, C, Go, ... to spread machine drift over
# both, and the table shows medians over the rounds. Prints ratios, never judges them: the
# exit status reflects only whether everything ran and every call succeeded.
#
#   run.sh [--build-dir DIR] [--duration S] [--rounds N] [--payload BYTES]
#          [--concurrency "1 16"] [--connections M] [--c-server PATH]
#
# Builds nothing: takes the binaries from DIR/test/ (default: build/ in the source tree).
set -u

here=$(cd "$(dirname "$0")" && pwd)
build=$here/../../../build
duration=5
rounds=3
payload=16
concurrency="1 16"
connections=1
c_server=

usage() {
    sed -n '3,/^$/s/^# \{0,1\}//p' "$0" >&2
    exit 2
}
while [ $# -gt 0 ]; do
    case $1 in
    --build-dir) build=${2:?}; shift 2 ;;
    --duration) duration=${2:?}; shift 2 ;;
    --rounds) rounds=${2:?}; shift 2 ;;
    --payload) payload=${2:?}; shift 2 ;;
    --concurrency) concurrency=${2:?}; shift 2 ;;
    --connections) connections=${2:?}; shift 2 ;;
    --c-server) c_server=${2:?}; shift 2 ;;
    -h | --help) usage ;;
    *) echo "run.sh: unknown argument '$1'" >&2; usage ;;
    esac
done

bin=$build/test
c_server=${c_server:-$bin/ttrpc-c-server}
go_server=$bin/ttrpc-go-server
bench=$bin/ttrpc-go-bench
for f in "$c_server" "$go_server" "$bench"; do
    if [ ! -x "$f" ]; then
        echo "run.sh: $f not found; build first (ninja -C $build)" >&2
        exit 1
    fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ttrpc-bench.XXXXXX") || exit 1
pids=()
cleanup() {
    for p in "${pids[@]}"; do
        kill -TERM "$p" 2>/dev/null
    done
    for p in "${pids[@]}"; do
        wait "$p" 2>/dev/null
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_server() { # start_server NAME BINARY
    local out=$tmp/$1.out
    : >"$out"
    "$2" --socket "$tmp/$1.sock" >"$out" 2>"$tmp/$1.err" &
    pids+=($!)
    local i
    for i in $(seq 200); do
        [ "$(head -n 1 "$out")" = ready ] && [ "$(wc -l <"$out")" -ge 1 ] && return 0
        kill -0 "$!" 2>/dev/null || break
        sleep 0.05
    done
    echo "run.sh: $1 server ($2) did not get ready" >&2
    cat "$tmp/$1.err" >&2
    exit 1
}

# field JSON NAME: a number from ttrpc-go-bench's one-line JSON.
field() {
    sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p" <<<"$1"
}

median() {
    sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

start_server c "$c_server"
start_server go "$go_server"

echo "# ttrpc Echo benchmark: client ttrpc-go-bench, $connections connection(s), payload $payload B," \
    "${duration}s per run, $rounds round(s), alternating C/Go"
for n in $concurrency; do
    for r in $(seq "$rounds"); do
        for s in c go; do
            line=$("$bench" --socket "$tmp/$s.sock" --concurrency "$n" --duration "$duration" \
                --payload "$payload" --connections "$connections" 2>"$tmp/bench.err")
            rc=$?
            echo "# $s round $r: $line"
            if [ "$rc" -ne 0 ] || [ -z "$(field "$line" rps)" ]; then
                echo "run.sh: ttrpc-go-bench against the $s server failed (status $rc)" >&2
                cat "$tmp/bench.err" >&2
                exit 1
            fi
            field "$line" rps >>"$tmp/rps.$s.$n"
            field "$line" p99_us >>"$tmp/p99.$s.$n"
        done
    done
done

printf '%-12s %12s %12s %10s %12s %12s %10s\n' \
    concurrency "rps C" "rps Go" "rps C/Go" "p99us C" "p99us Go" "p99 C/Go"
for n in $concurrency; do
    rc=$(median <"$tmp/rps.c.$n")
    rg=$(median <"$tmp/rps.go.$n")
    pc=$(median <"$tmp/p99.c.$n")
    pg=$(median <"$tmp/p99.go.$n")
    awk -v n="$n" -v rc="$rc" -v rg="$rg" -v pc="$pc" -v pg="$pg" 'BEGIN {
        printf "%-12s %12.0f %12.0f %10s %12.0f %12.0f %10s\n", n, rc, rg,
            (rg > 0 ? sprintf("%.2f", rc / rg) : "n/a"), pc, pg,
            (pg > 0 ? sprintf("%.2f", pc / pg) : "n/a") }'
done
