#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Long fuzzing, run by hand before a parser change lands (not in every CI run):
#   test/fuzz/run.sh [SECONDS] [NAME...]     default 300 s for every harness
# Builds the `fuzz` preset (clang, libFuzzer, ASan+UBSan) and runs each harness on a scratch
# copy of its committed corpus. Crashes land in build-fuzz/crashes/<name>/; copy a minimized
# reproducer into test/fuzz/corpus/<name>/ so ctest's fuzz-regress replays it from then on.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-300}
shift || true
cmake --preset fuzz >/dev/null
cmake --build build-fuzz -j"$(nproc)"
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
    for f in test/fuzz/fuzz-*.c; do
        n=$(basename "$f" .c)
        [ "$n" = fuzz-main ] || names+=("${n#fuzz-}")
    done
fi
for n in "${names[@]}"; do
    work=build-fuzz/corpus/$n
    crashes=build-fuzz/crashes/$n
    mkdir -p "$work" "$crashes"
    cp -n test/fuzz/corpus/"$n"/* "$work"/ 2>/dev/null || true
    echo "fuzz-$n: ${secs}s"
    build-fuzz/test/fuzz-"$n"-libfuzzer -max_total_time="$secs" -max_len=4096 \
        -artifact_prefix="$crashes/" "$work"
done
