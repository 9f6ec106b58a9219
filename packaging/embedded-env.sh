# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
#
# cloak's embedded environment: what a confidential pod needs on one machine, under ONE state
# directory, no system service touched (the demo, packaging/demo.sh, and the e2e suite,
# test/e2e/run.sh, source this file):
#   DIR/reg         docker-registry on 127.0.0.1:<port> (test/integration/pull/registry.sh)
#   DIR/snap        cloak-snapshotter's root; its socket DIR/snap.sock, log DIR/snap.log
#   DIR/ctd         containerd 1.6 with CRI (test/integration/cri/containerd.sh): snapshotter
#                   cloak, runtime handler `cloak` (ConfigPath DIR/cloak.toml), runc the
#                   default handler; socket DIR/ctd/containerd.sock, log DIR/ctd/containerd.log
#                   (the shims log there too)
#   DIR/cloak.toml  the VM config: CONFIG with kernel and initrd set to BUILD/guest
# The exceptions containerd's shim contract imposes: each pod's shim socket lives in
# /run/containerd/s/ and its state (QEMU's sockets, the console log) in /run/cloak/shim/.
#
#   cenv_start DIR BUILD CONFIG   starts all three, pushes the sandbox image cloak/pause:1;
#                                 sets CENV_DIR CENV_BUILD CENV_SOCK CENV_REG CENV_CLOAKCTL
#   cenv_stop                     removes every pod through CRI, stops containerd (and its
#                                 shims), the snapshotter and the registry, by pid; removes
#                                 what the shims of our pods may have left
#   cenv_pod_ids                  every pod id this containerd created
#   cenv_pod_state ID / cenv_pod_qemus ID   a pod's shim state dir / its QEMU pids
#   oci_new / oci_layer / oci_config / oci_push / oci_busybox   images built with umoci,
#                                 pushed with skopeo
#   cenv_kept_pod FILE            the pod `cloakctl run --keep` kept (its stderr in FILE)
# CENV_BRIDGE / CENV_SUBNET: the CNI bridge (default cloakenv0, 10.88.80.0/24).

CENV_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CENV_CRI=$CENV_SRC/test/integration/cri
CENV_REGISTRY_SH=$CENV_SRC/test/integration/pull/registry.sh
CENV_STATE_ROOT=/run/cloak/shim
CENV_SOCKET_DIR=/run/containerd/s

cenv_log() { printf '%s [env] %s\n' "$(date +%T)" "$*" >&2; }

# The binaries of BUILD, the guest image included; prints what is missing and returns 1.
cenv_check_build() {
    local b=$1 f missing=0
    for f in shim/containerd-shim-cloak-v2 snapshotter/cloak-snapshotter snapshotter/nydus-overlayfs \
             cli/cloakctl guest/cloak-pause guest/vmlinuz guest/initrd.img; do
        [ -e "$b/$f" ] || { cenv_log "missing $b/$f"; missing=1; }
    done
    return $missing
}

cenv_start() {
    mkdir -p "$1" || return 1
    CENV_DIR=$(cd "$1" && pwd)
    CENV_SOCK=$CENV_DIR/ctd/containerd.sock
    CENV_CLOAKCTL=$2/cli/cloakctl
    CENV_BUILD=$(cd "$2" && pwd) || { cenv_log "no build dir $2"; return 1; }
    CENV_CLOAKCTL=$CENV_BUILD/cli/cloakctl
    local config=$3
    cenv_check_build "$CENV_BUILD" || return 1
    local b
    for b in /usr/bin/containerd /usr/bin/ctr /usr/lib/cni/bridge /usr/bin/docker-registry \
             /usr/bin/qemu-system-x86_64 /usr/bin/umoci /usr/bin/skopeo; do
        [ -x "$b" ] || { cenv_log "missing $b (packaging/install-deps.sh)"; return 1; }
    done
    [ -x /sbin/mount.fuse3 ] || [ -x /usr/sbin/mount.fuse3 ] ||
        { cenv_log "missing mount.fuse3 (packaging/install-deps.sh)"; return 1; }

    # The VM config: CONFIG with kernel and initrd set (a copy: relative paths would resolve
    # against its directory).
    awk -v k="$CENV_BUILD/guest/vmlinuz" -v i="$CENV_BUILD/guest/initrd.img" '
        /^kernel *=|^initrd *=/ { next }
        { print }
        /^\[hypervisor\]/ { print "kernel = \"" k "\""; print "initrd = \"" i "\"" }
    ' "$config" >"$CENV_DIR/cloak.toml"
    grep -q "^kernel = " "$CENV_DIR/cloak.toml" || { cenv_log "no [hypervisor] table in $config"; return 1; }

    bash "$CENV_REGISTRY_SH" start "$CENV_DIR/reg" || return 1
    CENV_REG=127.0.0.1:$(cat "$CENV_DIR/reg/port")

    "$CENV_BUILD/snapshotter/cloak-snapshotter" --root "$CENV_DIR/snap" --address "$CENV_DIR/snap.sock" \
        >"$CENV_DIR/snap.log" 2>&1 </dev/null &
    echo $! >"$CENV_DIR/snap.pid"
    local i
    for _ in $(seq 1 100); do [ -S "$CENV_DIR/snap.sock" ] && break; sleep 0.1; done
    [ -S "$CENV_DIR/snap.sock" ] || { cenv_log "cloak-snapshotter: no socket: $(tail -n 5 "$CENV_DIR/snap.log")"; return 1; }

    # containerd's sandbox_image (pulled on the host: manifest and config only).
    local L=$CENV_DIR/images
    oci_new "$L" pause || return 1
    oci_layer "$L" pause cenv_pause_rootfs "$CENV_BUILD/guest/cloak-pause" || return 1
    oci_config "$L" pause --config.entrypoint /pause || return 1
    oci_push "$L" pause "$CENV_REG/cloak/pause:1" || return 1

    CRI_BRIDGE=${CENV_BRIDGE:-cloakenv0} CRI_SUBNET=${CENV_SUBNET:-10.88.80.0/24} \
        CRI_SNAPSHOTTER=cloak CRI_SNAPSHOTTER_ADDRESS=$CENV_DIR/snap.sock \
        CRI_CLOAK_CONFIG=$CENV_DIR/cloak.toml \
        CRI_PATH_PREPEND=$CENV_BUILD/shim:$CENV_BUILD/snapshotter \
        bash "$CENV_CRI/containerd.sh" start "$CENV_DIR/ctd" "$CENV_REG" || return 1
    mkdir -p "$CENV_DIR/tmp"
    export TMPDIR=$CENV_DIR/tmp # cloakctl run's log directories
}

# The pods of our containerd: containerd's log names each ("returns sandbox id"), the
# shims name those whose VM they started (also when RunPodSandbox failed later).
cenv_pod_ids() {
    sed -n -e 's/.*RunPodSandbox for .*returns sandbox id \\"\([0-9a-f]*\)\\".*/\1/p' \
        -e 's/.*component=cloak-shim msg="pod \([0-9a-f]\{64\}\): VM started.*/\1/p' \
        "$CENV_DIR/ctd/containerd.log" 2>/dev/null | sort -u
}
# sha256 of containerd's filepath.Join(address, "k8s.io", pod id): the pod's shim socket is
# /run/containerd/s/<it>, its state dir /run/cloak/shim/<its first 32 hex> (shim/contract.h).
cenv_pod_hash() { printf '%s' "$CENV_SOCK/k8s.io/$1" | sha256sum | cut -c1-64; }
cenv_pod_state() { local h; h=$(cenv_pod_hash "$1"); echo "$CENV_STATE_ROOT/${h:0:32}"; }
cenv_pod_socket() { echo "$CENV_SOCKET_DIR/$(cenv_pod_hash "$1")"; }
# QEMU processes whose cmdline names the pod's state dir.
cenv_pod_qemus() {
    local st p
    st=$(cenv_pod_state "$1")
    for p in /proc/[0-9]*; do
        { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -q "qemu-system.* .*$st/" && echo "${p#/proc/}"
    done
    return 0
}
# Every QEMU of any pod of ours, and every shim of our containerd.
cenv_qemus() { local id; for id in $(cenv_pod_ids); do cenv_pod_qemus "$id"; done; }
cenv_shims() {
    local p
    for p in /proc/[0-9]*; do
        { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null |
            grep -q "containerd-shim-cloak-v2 .*-address $CENV_SOCK " && echo "${p#/proc/}"
    done
    return 0
}

cenv_stop() {
    [ -n "${CENV_DIR:-}" ] || return 0
    local - # set +e for this function only: cleanup goes on past a failure
    set +e
    local id p st
    local -a pods
    mapfile -t pods < <(cenv_pod_ids)
    if [ -S "${CENV_SOCK:-}" ]; then
        for id in "${pods[@]}"; do
            timeout 120 "$CENV_CLOAKCTL" --address "$CENV_SOCK" rm "$id" >/dev/null 2>&1 || true
        done
    fi
    CRI_BRIDGE=${CENV_BRIDGE:-cloakenv0} bash "$CENV_CRI/containerd.sh" stop "$CENV_DIR/ctd" || true
    # What killed shims may have left: only our pods' QEMUs, state dirs and sockets.
    for id in "${pods[@]}"; do
        for p in $(cenv_pod_qemus "$id"); do cenv_log "killing leftover QEMU $p"; kill -9 "$p" 2>/dev/null || true; done
        st=$(cenv_pod_state "$id")
        [ -d "$st" ] && { cenv_log "removing leftover $st"; rm -rf "$st"; }
        [ -e "$(cenv_pod_socket "$id")" ] && rm -f "$(cenv_pod_socket "$id")"
    done
    if [ -f "$CENV_DIR/snap.pid" ]; then
        p=$(cat "$CENV_DIR/snap.pid")
        kill -TERM "$p" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
        rm -f "$CENV_DIR/snap.pid"
    fi
    bash "$CENV_REGISTRY_SH" stop "$CENV_DIR/reg" >/dev/null 2>&1 || true
    awk -v d="$CENV_DIR/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r |
        while read -r m; do umount -l "$m" 2>/dev/null || true; done
}

# --- images: umoci builds an OCI layout, skopeo pushes it ------------------------------------
# oci_new LAYOUT TAG: an empty image TAG in the OCI layout LAYOUT (created when missing).
oci_new() {
    [ -f "$1/index.json" ] || umoci init --layout "$1" || return 1
    umoci new --image "$1:$2"
}
# oci_layer LAYOUT TAG FUNC [ARGS...]: FUNC ROOTFS ARGS... changes the image's root file
# system; what it added, changed and removed becomes one new layer (removals: whiteouts).
oci_layer() {
    local L=$1 tag=$2 fn=$3
    shift 3
    local bundle
    bundle=$(mktemp -d "$L.bundle.XXXXXX") && rmdir "$bundle" || return 1
    umoci unpack --image "$L:$tag" "$bundle" >/dev/null || { rm -rf "$bundle"; return 1; }
    "$fn" "$bundle/rootfs" "$@" || { rm -rf "$bundle"; return 1; }
    umoci repack --image "$L:$tag" "$bundle" >/dev/null || { rm -rf "$bundle"; return 1; }
    rm -rf "$bundle"
}
# oci_config LAYOUT TAG UMOCI-CONFIG-ARGS...
oci_config() {
    local L=$1 tag=$2
    shift 2
    umoci config --image "$L:$tag" --os linux --architecture amd64 "$@"
}
# oci_push LAYOUT TAG REF: to the plain-HTTP registry, blobs as they are (no recompression).
oci_push() {
    skopeo copy --quiet --preserve-digests --dest-tls-verify=false \
        "oci:$1:$2" "docker://$3" >/dev/null
}
# The layer digests of TAG (manifest order), one per line.
oci_layers() {
    python3 - "$1" "$2" <<'PY'
import json, sys
L, tag = sys.argv[1:3]
idx = json.load(open(f"{L}/index.json"))
m = next(d for d in idx["manifests"] if d.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag)
alg, hexd = m["digest"].split(":")
man = json.load(open(f"{L}/blobs/{alg}/{hexd}"))
for layer in man["layers"]:
    print(layer["digest"])
PY
}

# oci_busybox LAYOUT TAG: a new image TAG of one busybox layer, entrypoint /bin/sh.
oci_busybox() {
    oci_new "$1" "$2" && oci_layer "$1" "$2" cenv_busybox_rootfs &&
        oci_config "$1" "$2" --config.entrypoint /bin/sh --config.env PATH=/bin
}

# The pod `cloakctl run --keep` kept, from its stderr in FILE.
cenv_kept_pod() { sed -n 's/^cloakctl run: kept new pod \([0-9a-f]*\) .*/\1/p' "$1"; }

# Root file system helpers for oci_layer.
cenv_pause_rootfs() { install -m 0755 "$2" "$1/pause"; }
# busybox (Debian's static build) as /bin/sh and every applet.
cenv_busybox_rootfs() {
    local r=$1 a
    # Static: the image has no libc (Debian's busybox-static, not busybox).
    if readelf -l /bin/busybox 2>/dev/null | grep -q INTERP; then
        cenv_log "/bin/busybox is dynamically linked (apt-get install busybox-static)"
        return 1
    fi
    mkdir -p "$r/bin" "$r/etc" "$r/tmp" "$r/proc" "$r/sys" "$r/dev"
    install -m 0755 /bin/busybox "$r/bin/busybox"
    for a in $(/bin/busybox --list); do
        [ "$a" = busybox ] || ln -sf busybox "$r/bin/$a"
    done
    echo 'root:x:0:0:root:/:/bin/sh' >"$r/etc/passwd"
    echo 'root:x:0:' >"$r/etc/group"
}
