#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Builds the tiny guest the vmm integration tests boot:  build.sh OUTDIR
#   OUTDIR/vmlinuz     Debian's kernel (the package linux-image-amd64 depends on), taken
#                      out of the .deb with dpkg-deb; nothing is installed on the host
#   OUTDIR/initrd.img  a newc cpio holding only a static /init (test-init.c)
# The kernel .deb is cached in OUTDIR/cache. Files are world-readable: libvirtd's QEMU runs
# as its own user and must be able to open them.
set -euo pipefail
out=${1:?usage: build.sh OUTDIR}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out/cache"
out=$(cd "$out" && pwd)

if [ ! -s "$out/vmlinuz" ]; then
    resolve() { apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}'; }
    pkg=$(resolve)
    if [ -z "$pkg" ] && [ "$(id -u)" -eq 0 ]; then
        apt-get update -qq >/dev/null 2>&1 || true # no package lists yet on a fresh machine
        pkg=$(resolve)
    fi
    [ -n "$pkg" ] || { echo "build.sh: cannot resolve linux-image-amd64 (apt-get update?)" >&2; exit 1; }
    deb=$(ls "$out"/cache/"$pkg"_*.deb 2>/dev/null | head -n1 || true)
    if [ -z "$deb" ]; then
        (cd "$out/cache" && apt-get download "$pkg" 2>/dev/null)
        deb=$(ls "$out"/cache/"$pkg"_*.deb | head -n1)
    fi
    x=$(mktemp -d)
    trap 'rm -rf "$x"' EXIT
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$x" --wildcards './boot/vmlinuz-*'
    install -m 0644 "$x"/boot/vmlinuz-* "$out/vmlinuz.tmp"
    mv "$out/vmlinuz.tmp" "$out/vmlinuz"
fi

root=$(mktemp -d)
trap 'rm -rf "$root" ${x:+"$x"}' EXIT
${CC:-cc} -static -O2 -o "$root/init" "$here/test-init.c"
(cd "$root" && printf 'init\n' | cpio --quiet -o -H newc -R 0:0 --reproducible) | gzip -n -1 >"$out/initrd.img.tmp"
chmod 0644 "$out/initrd.img.tmp"
mv "$out/initrd.img.tmp" "$out/initrd.img"
chmod 0755 "$out"
echo "test guest: $out/vmlinuz $out/initrd.img"
