#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The one list of every Debian 12 (bookworm) package cloak's build, tests and runtime need.
# Idempotent: installs only what is missing, running `apt-get update` once, and only then.
#
#   packaging/install-deps.sh            install what is missing (root)
#   packaging/install-deps.sh --list     print the list, one package a line
#   packaging/install-deps.sh --missing  print what is not installed; exit 1 if anything is
set -euo pipefail

packages=(
    # build
    build-essential     # gcc, make, libc headers
    cmake               # >= 3.25 (CMakePresets.json v4)
    ninja-build
    pkg-config
    clang               # the second compiler CI builds with; libFuzzer
    libclang-rt-14-dev  # clang's sanitizer and libFuzzer runtimes
    protobuf-c-compiler # protoc-c: C code from proto/ at build time
    # libraries (lib/, proto/)
    libjansson-dev      # JSON
    libprotobuf-c-dev   # protobuf-c runtime
    libssl-dev          # OpenSSL libcrypto: guest/ digests; tests check lib/digest.c against it
    libvirt-dev         # libvirt client API for the libvirt backend plugin (vmm/libvirt/)
    libgrpc-dev         # gRPC C core: snapshotter server, cloakctl CRI client (lib/grpc*.c)
    # libraries (guest/: image pull inside the guest)
    libcurl4-openssl-dev # registry client
    libarchive-dev      # tar reading of image layers
    zlib1g-dev          # gzip layers
    libzstd-dev         # zstd layers
    # runtime: the libvirt backend (qemu:///system) and the qemu backend
    libvirt-daemon-system # libvirtd + virtlogd + the QEMU driver (no systemd needed: -d)
    libvirt-clients     # virsh: integration tests check domains are gone
    qemu-system-x86     # qemu-system-x86_64 (both backends)
    iproute2            # tc and ip for tap networking (net = "tap", vmm/tap.c)
    # tests
    cpio                # the integration test guest's initramfs (test/integration/guest)
    procps              # pgrep/pkill: tests check no QEMU outlives them
    iputils-ping        # ping: traffic through the tap in test/integration/vmm/qemu-tap.sh
    libcmocka-dev       # unit tests
    libxml2-utils       # xmllint: well-formedness checks of generated libvirt XML
    curl                # tests wait for the registry's /v2/ with it
    python3             # toml-test runner (../shared/conformance/toml-test/run.py); test images
    docker-registry     # the registry the guest pulls test images from (127.0.0.1 only)
    zstd                # zstd test layers
    umoci skopeo        # e2e test images: built as OCI layouts with umoci, pushed with skopeo
    busybox-static      # the demo and e2e images' userland (/bin/busybox, static)
    systemd             # systemd-analyze verify of packaging/systemd/ (no systemd runs here)
    python3-yaml        # the RuntimeClass manifests are parsed in the packaging test
    crun                # host-side agent tests (cloak-agent --listen) and benchmarks
    containerd runc containernetworking-plugins # cloakctl CRI tests: a private containerd 1.6 (test/integration/cri)
    fuse3               # /sbin/mount.fuse: containerd runs nydus-overlayfs through it (guest-pull rootfs)
    golang-go                          # Go peers for interop tests (GOPATH mode, offline)
    golang-github-containerd-ttrpc-dev # containerd's ttrpc 1.1.1: interop peer and baseline
    golang-github-containerd-containerd-dev # containerd 1.6 snapshots/testsuite: conformance/snapshotter
)

missing() {
    local p
    for p in "${packages[@]}"; do
        if [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" != installed ]; then
            echo "$p"
        fi
    done
}

case "${1:-}" in
--list)
    printf '%s\n' "${packages[@]}"
    exit 0
    ;;
--missing)
    m=$(missing)
    [ -z "$m" ] || { echo "$m"; exit 1; }
    exit 0
    ;;
"") ;;
*)
    echo "usage: $0 [--list|--missing]" >&2
    exit 2
    ;;
esac

mapfile -t todo < <(missing)
if [ "${#todo[@]}" -eq 0 ]; then
    echo "install-deps: all ${#packages[@]} packages present"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing ${todo[*]}; run as root to install them" >&2
    exit 1
fi
echo "install-deps: installing ${todo[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${todo[@]}"
