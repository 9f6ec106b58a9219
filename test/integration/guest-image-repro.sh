#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# packaging/build-guest.sh is bit-for-bit reproducible:  guest-image-repro.sh BUILD_DIR
# Builds the guest image twice (BUILD_DIR/guest/cloak-agent as /init) into two temp dirs
# sharing one download cache ($CLOAK_CACHE_DIR, default BUILD_DIR/guest-cache), then cmp's
# vmlinuz, initrd.img and SHA256SUMS and prints their sizes. Needs root (apt-get download)
# and the Debian mirror. Removes its temp dirs; keeps the cache for the next run.
set -euo pipefail
bdir=${1:?usage: guest-image-repro.sh BUILD_DIR}
bdir=$(cd "$bdir" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
script=$here/../../packaging/build-guest.sh
[ -f "$bdir/guest/cloak-agent" ] || { echo "no $bdir/guest/cloak-agent" >&2; exit 1; }
export CLOAK_BUILD_DIR=$bdir
export CLOAK_CACHE_DIR=${CLOAK_CACHE_DIR:-$bdir/guest-cache}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for run in a b; do
    start=$(date +%s)
    bash "$script" "$tmp/$run"
    echo "run $run: $(( $(date +%s) - start ))s"
done
rc=0
for f in vmlinuz initrd.img SHA256SUMS; do
    if cmp "$tmp/a/$f" "$tmp/b/$f"; then
        echo "identical: $f $(stat -c %s "$tmp/a/$f") bytes"
    else
        echo "DIFFERENT: $f $(stat -c %s "$tmp/a/$f") vs $(stat -c %s "$tmp/b/$f") bytes"
        rc=1
    fi
done
for run in a b; do
    [ "$(cd "$tmp/$run" && ls -A | sort | tr '\n' ' ')" = ".cache SHA256SUMS initrd.img vmlinuz " ] ||
        [ "$(cd "$tmp/$run" && ls -A | sort | tr '\n' ' ')" = "SHA256SUMS initrd.img vmlinuz " ] ||
        { echo "unexpected files in OUTDIR $run: $(ls -A "$tmp/$run")"; rc=1; }
done
(cd "$tmp/a" && sha256sum -c --quiet SHA256SUMS) || rc=1
exit $rc
