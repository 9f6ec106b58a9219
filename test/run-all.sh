#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Runs every test cloak has, from a fresh Debian 12 machine (as root, for the installs):
#   1. install what is missing (packaging/install-deps.sh)
#   2. clang Debug build, compile only (build-clang/)
#   3. ASan+UBSan gcc Debug build: ctest labels unit and fuzz-regress (build-asan/)
#   4. gcc RelWithDebInfo build in build/, the guest image (build/guest), and every ctest
#      test (unit, fuzz-regress, conformance, integration, bench, e2e: test/e2e/run.sh)
# Prints each stage's wall time and ends with ctest's summary of stage 4. Exit status 0
# only when every stage passed. CI=true (or CLOAK_NO_SKIP=1) turns a skipped test into a
# failure. CLOAK_STAGES="deps clang asan main" picks stages (default: all).
set -uo pipefail

cd "$(dirname "$0")/.."
jobs=$(nproc)
stages=${CLOAK_STAGES:-deps clang asan main}
no_skip=${CLOAK_NO_SKIP:-${CI:-}}
failed=()
times=()

stage() {
    local name=$1
    shift
    case " $stages " in *" $name "*) ;; *) return 0 ;; esac
    echo "=== stage $name: $*"
    local t0=$SECONDS
    "$@"
    local rc=$?
    times+=("$(printf '%-6s %5ds  %s' "$name" $((SECONDS - t0)) "$([ $rc -eq 0 ] && echo ok || echo FAILED)")")
    echo "=== stage $name: $((SECONDS - t0))s, $([ $rc -eq 0 ] && echo ok || echo "FAILED (exit $rc)")"
    [ $rc -eq 0 ] || failed+=("$name")
}

# ctest, then a check that nothing was skipped when skips are not allowed.
run_ctest() {
    local dir=$1
    shift
    ctest --test-dir "$dir" --output-on-failure -j"$jobs" --timeout 1800 "$@" 2>&1 | tee "$dir/ctest.log"
    local rc=${PIPESTATUS[0]}
    if [ -n "$no_skip" ] && grep -q 'The following tests did not run' "$dir/ctest.log"; then
        echo "run-all: tests were skipped, and CI allows no skips" >&2
        rc=1
    fi
    return "$rc"
}


stage_deps() { packaging/install-deps.sh; }
stage_clang() { cmake --preset clang >/dev/null && cmake --build build-clang -j"$jobs"; }
stage_asan() {
    cmake --preset asan-ubsan >/dev/null && cmake --build build-asan -j"$jobs" &&
        ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
            run_ctest build-asan -L 'unit|fuzz-regress'
}
# The guest image first (<build>/guest: the e2e suite and the packaging test use it).
stage_main() {
    cmake --preset default >/dev/null && cmake --build build -j"$jobs" &&
        cmake --build build --target guest-image && run_ctest build
}

stage deps stage_deps
stage clang stage_clang
stage asan stage_asan
stage main stage_main

echo "=== wall time per stage"
printf '%s\n' "${times[@]}"
if [ -f build/ctest.log ] && [[ " $stages " == *" main "* ]]; then
    echo "=== summary (stage main)"
    grep -E 'tests passed|tests failed|Total Test time' build/ctest.log
fi
if [ ${#failed[@]} -gt 0 ]; then
    echo "run-all: FAILED stages: ${failed[*]}"
    exit 1
fi
