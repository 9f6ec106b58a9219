#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Builds the Go side of the snapshotter benchmark and crash test into OUTDIR, if stale:
#   OUTDIR/refsnap    containerd 1.6's overlayfs snapshotter over gRPC (/work/shared/bench/refsnap)
#   OUTDIR/snapbench  the proxy-client driver (snapbench.go: bench and crash modes)
# GOPATH mode, offline, against Debian's golang-github-containerd-containerd-dev.
#
#   build.sh OUTDIR [refsnap|snapbench]...      (default: both)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build.sh OUTDIR [refsnap|snapbench]...}
shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(refsnap snapbench)
refsrc=${CLOAK_REFSNAP_DIR:-/work/shared/bench/refsnap}
command -v go >/dev/null || { echo "build.sh: no go (apt-get install golang-go)" >&2; exit 1; }
[ -d /usr/share/gocode/src/github.com/containerd/containerd ] ||
    { echo "build.sh: no golang-github-containerd-containerd-dev" >&2; exit 1; }
mkdir -p "$out"
out=$(cd "$out" && pwd)

build() { # name source.go
    local name=$1 src=$2
    [ -x "$out/$name" ] && [ "$out/$name" -nt "$src" ] && return 0
    local gp
    gp=$(mktemp -d /tmp/cloak-snapbench-gopath-XXXXXX)
    mkdir -p "$gp/src/$name"
    cp "$src" "$gp/src/$name/main.go"
    (cd "$gp/src/$name" && GOPATH="$gp:/usr/share/gocode" GO111MODULE=off GOFLAGS= GOPROXY=off \
        go build -o "$out/$name.tmp.$$" .)
    mv -f "$out/$name.tmp.$$" "$out/$name" # atomic: concurrent builds are harmless
    rm -rf "$gp"
}
for t in "${targets[@]}"; do
    case "$t" in
    refsnap) build refsnap "$refsrc/main.go" ;;
    snapbench) build snapbench "$here/snapbench.go" ;;
    *) echo "build.sh: unknown target $t" >&2; exit 2 ;;
    esac
done
