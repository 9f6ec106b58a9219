#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Benchmarks guest/layer.c on one ~64 MiB (uncompressed) gzip layer served over HTTP from
# 127.0.0.1, against the two-step baseline run one after the other on the same layer:
#   curl -s URL | tee layer.tgz | sha256sum      (download, keep, hash)
#   gunzip < layer.tgz | tar -x -C dir          (decompress, unpack)
# versus layer-bench URL digest diff_id dir (download, both hashes, decompress, unpack in
# one pass). Rounds alternate; prints the medians and the ratio baseline/pipeline. Never
# checks a threshold (see test/bench/README.md). Run as root, like the agent (tar then keeps
# owners too).
#
#   test/bench/layer/run.sh [--build-dir build] [--rounds 3] [--mib 64] [--bench PATH]
set -euo pipefail

build=build rounds=3 mib=64 bench=
while [ $# -gt 0 ]; do
    case "$1" in
    --build-dir) build=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --mib) mib=$2; shift 2 ;;
    --bench) bench=$2; shift 2 ;;
    *) echo "usage: $0 [--build-dir DIR] [--rounds N] [--mib N] [--bench PATH]" >&2; exit 2 ;;
    esac
done
bench=${bench:-$build/test/layer-bench}
[ -x "$bench" ] || { echo "run.sh: no $bench (ninja -C $build layer-bench)" >&2; exit 1; }
bench=$(realpath "$bench")

work=$(mktemp -d /tmp/cloak-bench-layer-XXXXXX)
server=
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

# A layer of realistic content: ~3000 files in ~150 directories, sizes skewed small with a
# few large ones, two thirds text-like (compressible), one third random; fixed seed.
cat > "$work/gen.py" <<'PY'
import gzip, hashlib, io, random, sys, tarfile
out, mib = sys.argv[1], int(sys.argv[2])
rng = random.Random(20240601)
words = [''.join(rng.choice('abcdefghijklmnopqrstuvwxyz_') for _ in range(rng.randint(2, 12)))
         for _ in range(4000)]
target = mib << 20
dirs = ['usr/lib/python3/pkg%d/sub%d' % (i // 10, i % 10) for i in range(150)]
raw = io.BytesIO()
with tarfile.open(fileobj=raw, mode='w', format=tarfile.PAX_FORMAT) as t:
    for d in sorted({p for d in dirs for p in ['/'.join(d.split('/')[:k]) for k in range(1, 6)]}):
        ti = tarfile.TarInfo(d); ti.type = tarfile.DIRTYPE; ti.mode = 0o755; ti.mtime = 1700000000
        t.addfile(ti)
    total, i = 0, 0
    while total < target:
        size = min(int(rng.lognormvariate(9, 1.6)), 4 << 20)
        if rng.random() < 1 / 3:
            data = rng.randbytes(size)
        else:
            text = ' '.join(rng.choice(words) for _ in range(size // 6 + 1)).encode()
            data = text[:size]
        ti = tarfile.TarInfo('%s/file%05d%s' % (rng.choice(dirs), i, rng.choice(['.py', '.so', '.txt', ''])))
        ti.size = len(data); ti.mode = rng.choice([0o644, 0o755]); ti.mtime = 1700000000
        t.addfile(ti, io.BytesIO(data))
        total += len(data); i += 1
tar = raw.getvalue()
gz = gzip.compress(tar, compresslevel=6, mtime=0)
import os; os.makedirs(os.path.dirname(out), exist_ok=True)
open(out, 'wb').write(gz)
print('sha256:' + hashlib.sha256(gz).hexdigest(), 'sha256:' + hashlib.sha256(tar).hexdigest(),
      len(gz), len(tar), i)
PY
read -r digest diff_id zlen tlen nfiles < <(python3 "$work/gen.py" "$work/srv/layer.tgz" "$mib")
echo "layer: $nfiles files, $tlen bytes uncompressed, $zlen gzip, $digest"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
(cd "$work/srv" && exec python3 -m http.server --bind 127.0.0.1 "$port" >/dev/null 2>&1) &
server=$!
url="http://127.0.0.1:$port/layer.tgz"
for _ in $(seq 50); do curl -sf -o /dev/null "$url" && break; sleep 0.1; done

now() { date +%s.%N; }
fresh() { rm -rf "$work/out" "$work/layer.tgz"; mkdir "$work/out"; sync; }

baseline() {
    fresh
    local t0 t1 sum
    t0=$(now)
    sum=$(curl -s "$url" | tee "$work/layer.tgz" | sha256sum)
    gunzip < "$work/layer.tgz" | tar -x -C "$work/out"
    t1=$(now)
    [ "sha256:${sum%% *}" = "$digest" ] || { echo "baseline: digest mismatch" >&2; exit 1; }
    awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f\n", b - a}'
}

pipeline() {
    fresh
    local t0 t1
    t0=$(now)
    "$bench" "$url" "$digest" "$diff_id" "$work/out" >/dev/null
    t1=$(now)
    awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f\n", b - a}'
}

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

b=() p=()
for r in $(seq "$rounds"); do
    b+=("$(baseline)")
    p+=("$(pipeline)")
    echo "round $r: baseline ${b[-1]} s, pipeline ${p[-1]} s"
done
# the last pipeline run's tree must match what tar made
mkdir -p "$work/ref" && tar -xzf "$work/srv/layer.tgz" -C "$work/ref"
diff -r "$work/ref" "$work/out" >/dev/null || { echo "pipeline output differs from tar's" >&2; exit 1; }
bm=$(median "${b[@]}") pm=$(median "${p[@]}")
awk -v b="$bm" -v p="$pm" 'BEGIN {printf "baseline %.3f s, pipeline %.3f s, ratio %.2f\n", b, p, b / p}'
