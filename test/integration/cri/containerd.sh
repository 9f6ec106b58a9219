#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# A private containerd (Debian's 1.6) with the CRI plugin, for cloakctl's CRI tests:
#   containerd.sh start DIR [REGISTRY]
#       containerd --config DIR/config.toml, root/state/opt under DIR, gRPC on the unix
#       socket DIR/containerd.sock (no TCP listener but CRI's streaming server on 127.0.0.1);
#       runc (io.containerd.runc.v2) the default runtime, overlayfs; CNI: DIR/cni/net.d with
#       one isolated bridge network (bridge $CRI_BRIDGE, no gateway, no masquerade, no
#       default route, host-local IPAM state under DIR) and the plugins in /usr/lib/cni.
#       REGISTRY (host:port of a plain-HTTP registry, registry.sh) is reached over HTTP and
#       holds the sandbox image REGISTRY/cloak/pause:1. DIR/containerd.pid, DIR/containerd.log.
#       Returns once the CRI answers (ctr --address ... version, then the socket).
#       CRI_SNAPSHOTTER=NAME CRI_SNAPSHOTTER_ADDRESS=SOCK (both optional): CRI uses the proxy
#       snapshotter NAME on SOCK ([proxy_plugins.NAME]) with disable_snapshot_annotations =
#       false, as packaging/containerd/cloak-snapshotter.toml does (test/integration/guestpull).
#       CRI_CLOAK_CONFIG=FILE (optional): also the runtime handler `cloak` as that drop-in
#       documents (runtime_type io.containerd.cloak.v2; options ConfigPath = FILE, the shim's
#       VM config); runc stays the default handler (test/integration/shim).
#       CRI_PATH_PREPEND=DIR[:DIR...] (optional): put first on containerd's PATH (containerd
#       finds containerd-shim-cloak-v2 and mount.fuse3's nydus-overlayfs on its PATH, and its
#       shims inherit it).
#   containerd.sh stop DIR
#       SIGTERM to the pid in DIR/containerd.pid (only that one) and to the shims it started
#       (found by their -address DIR/containerd.sock argument), unmounts what is left
#       under DIR, deletes the bridge.
# restrict_oom_score_adj: this machine lacks CAP_SYS_RESOURCE. Never touches a system
# containerd: every path is under DIR.
set -euo pipefail
CONTAINERD_BIN=${CONTAINERD_BIN:-/usr/bin/containerd}
CRI_BRIDGE=${CRI_BRIDGE:-cloakcri0}
CRI_SUBNET=${CRI_SUBNET:-10.88.77.0/24}
CRI_SNAPSHOTTER=${CRI_SNAPSHOTTER:-overlayfs}
CRI_SNAPSHOTTER_ADDRESS=${CRI_SNAPSHOTTER_ADDRESS:-}
CRI_CLOAK_CONFIG=${CRI_CLOAK_CONFIG:-}
CRI_PATH_PREPEND=${CRI_PATH_PREPEND:-}
cmd=${1:?start|stop}
dir=${2:?dir}
registry=${3:-}

log() { printf '[containerd] %s\n' "$*" >&2; }

write_config() {
    mkdir -p "$dir/root" "$dir/state" "$dir/opt" "$dir/cni/net.d" "$dir/cni/ipam"
    local sandbox_image="registry.invalid/pause:none" mirror="" proxy="" annotations="" cloak=""
    if [ -n "$CRI_SNAPSHOTTER_ADDRESS" ]; then
        proxy="[proxy_plugins.\"$CRI_SNAPSHOTTER\"]
  type = \"snapshot\"
  address = \"$CRI_SNAPSHOTTER_ADDRESS\""
        annotations="disable_snapshot_annotations = false"
    fi
    if [ -n "$CRI_CLOAK_CONFIG" ]; then
        [ -f "$CRI_CLOAK_CONFIG" ] || { log "CRI_CLOAK_CONFIG: no file $CRI_CLOAK_CONFIG"; exit 1; }
        cloak="[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.cloak]
      runtime_type = \"io.containerd.cloak.v2\"
    [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.cloak.options]
      ConfigPath = \"$CRI_CLOAK_CONFIG\""
    fi
    if [ -n "$registry" ]; then
        sandbox_image="$registry/cloak/pause:1"
        mirror="[plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors.\"$registry\"]
      endpoint = [\"http://$registry\"]"
    fi
    cat >"$dir/config.toml" <<CFG
version = 2
root = "$dir/root"
state = "$dir/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "$dir/containerd.sock"
[ttrpc]
  address = "$dir/containerd.sock.ttrpc"
[debug]
  address = ""
  level = "info"
[metrics]
  address = ""
$proxy

[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$sandbox_image"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "$CRI_SNAPSHOTTER"
    $annotations
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
    $cloak
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$dir/cni/net.d"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    $mirror
CFG
    cat >"$dir/cni/net.d/10-cloak-cri.conflist" <<CNI
{
  "cniVersion": "0.4.0",
  "name": "cloak-cri",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$CRI_BRIDGE",
      "isGateway": false,
      "ipMasq": false,
      "hairpinMode": false,
      "ipam": {
        "type": "host-local",
        "dataDir": "$dir/cni/ipam",
        "ranges": [[{"subnet": "$CRI_SUBNET"}]]
      }
    }
  ]
}
CNI
}

start() {
    [ -x "$CONTAINERD_BIN" ] || { log "missing $CONTAINERD_BIN (apt-get install containerd runc containernetworking-plugins)"; exit 1; }
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [ -f "$dir/containerd.pid" ] && kill -0 "$(cat "$dir/containerd.pid")" 2>/dev/null; then
        log "already running: pid $(cat "$dir/containerd.pid")"
        exit 1
    fi
    write_config
    local path=$PATH
    [ -n "$CRI_PATH_PREPEND" ] && path=$CRI_PATH_PREPEND:$PATH
    PATH=$path "$CONTAINERD_BIN" --config "$dir/config.toml" >"$dir/containerd.log" 2>&1 </dev/null &
    local pid=$!
    echo "$pid" >"$dir/containerd.pid"
    for _ in $(seq 1 200); do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "containerd exited:"; tail -n 30 "$dir/containerd.log" >&2
            rm -f "$dir/containerd.pid"
            exit 1
        fi
        if [ -S "$dir/containerd.sock" ] &&
           ctr --address "$dir/containerd.sock" version >/dev/null 2>&1; then
            log "pid $pid serving $dir/containerd.sock"
            exit 0
        fi
        sleep 0.1
    done
    log "no answer on $dir/containerd.sock after 20 s"
    kill "$pid" 2>/dev/null || true
    exit 1
}

stop() {
    dir=$(cd "$dir" 2>/dev/null && pwd) || { log "no $dir"; exit 0; }
    local pid="" p
    [ -f "$dir/containerd.pid" ] && pid=$(cat "$dir/containerd.pid")
    # The shims this containerd started carry "-address $dir/containerd.sock".
    local shims=()
    for p in /proc/[0-9]*; do
        if { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -q -- "-address $dir/containerd.sock"; then
            shims+=("${p#/proc/}")
        fi
    done
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    for p in "${shims[@]}"; do
        kill -9 "$p" 2>/dev/null || true
    done
    rm -f "$dir/containerd.pid"
    # Mounts left by killed shims (rootfs overlays, sandbox shm), deepest first.
    awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r |
        while read -r m; do umount -l "$m" 2>/dev/null || true; done
    if ip link show "$CRI_BRIDGE" >/dev/null 2>&1; then
        ip link del "$CRI_BRIDGE" 2>/dev/null || true
    fi
    log "stopped pid ${pid:-none}, shims ${shims[*]:-none}"
}

case $cmd in
start) start ;;
stop) stop ;;
*) log "usage: containerd.sh start|stop DIR [REGISTRY]"; exit 2 ;;
esac
