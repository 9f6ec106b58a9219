#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Guest pull through a real private containerd 1.6 (../cri/containerd.sh) whose CRI uses
# cloak-snapshotter as its (global) proxy snapshotter, with disable_snapshot_annotations =
# false (packaging/containerd/cloak-snapshotter.toml; specs/guest-pull-snapshotter.md §7):
#   guestpull.sh CLOAKCTL CLOAK_SNAPSHOTTER NYDUS_OVERLAYFS CTR_PROG
# A local registry (../pull/registry.sh) holds ../pull/make-images.py's images; checks:
#   - cloakctl pull of test/multi:v1 (4 layers) succeeds;
#   - containerd's content store holds no layer blob, the registry served none, and no file
#     of the image exists under containerd's or the snapshotter's root;
#   - the snapshots are 4 committed placeholders chained by parent with the cri labels;
#   - a new snapshot above them has exactly one fuse.nydus-overlayfs mount whose
#     io.katacontainers.volume names the image and its manifest digest;
#   - mount.fuse3 runs nydus-overlayfs (from PATH) on those options, as containerd does;
#   - ctr run gets past the temp mount of the new rootfs (and fails without the helper);
#   - a host-side unpack (ctr images pull) is refused with the snapshotter's message.
# Prints "ok: ..." / "FAIL: ..." lines and "N passed, N failed". Everything lives in a temp
# dir; only processes started here are stopped, by pid.
set -uo pipefail
cloakctl=${1:?cloakctl}
snapshotter=${2:?cloak-snapshotter}
helper=${3:?nydus-overlayfs}
prog=${4:?ctr-prog}
here=$(cd "$(dirname "$0")" && pwd)
cri=$here/../cri

log() { printf '[guestpull] %s\n' "$*" >&2; }
die() { log "setup failed: $*"; exit 1; }
passed=0 failed=0
ok() { log "ok: $*"; passed=$((passed + 1)); }
bad() { log "FAIL: $*"; failed=$((failed + 1)); }
check() { # check "what" command...
    local what=$1
    shift
    if "$@"; then ok "$what"; else bad "$what"; fi
}

for b in /usr/bin/containerd /usr/bin/ctr /usr/lib/cni/bridge /usr/bin/docker-registry; do
    [ -x "$b" ] || die "missing $b (packaging/install-deps.sh)"
done
command -v runc >/dev/null || [ -x /usr/sbin/runc ] || die "missing runc (packaging/install-deps.sh)"
[ -x /sbin/mount.fuse3 ] || [ -x /usr/sbin/mount.fuse3 ] || die "missing mount.fuse3 (apt-get install fuse3)"
[ "$(id -u)" -eq 0 ] || die "needs root (containerd, mounts)"

T=$(mktemp -d /tmp/guestpull.XXXXXX)
snap_pid=""
cleanup() {
    local rc=$?
    if [ "$failed" -ne 0 ] || [ "$rc" -ne 0 ]; then
        [ -f "$T/ctd/containerd.log" ] && { log "containerd.log (tail):"; tail -n 30 "$T/ctd/containerd.log" >&2; }
        [ -f "$T/snap.log" ] && { log "snapshotter log (tail):"; tail -n 30 "$T/snap.log" >&2; }
    fi
    bash "$cri/containerd.sh" stop "$T/ctd" || true
    if [ -n "$snap_pid" ]; then
        kill -TERM "$snap_pid" 2>/dev/null || true
        wait "$snap_pid" 2>/dev/null || true
    fi
    bash "$here/../pull/registry.sh" stop "$T/reg" || true
    awk -v d="$T/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r |
        while read -r m; do umount -l "$m" 2>/dev/null || true; done
    rm -rf "$T"
    exit "$rc"
}
trap cleanup EXIT

# --- setup: registry + images, snapshotter, containerd -----------------------------------
bash "$here/../pull/registry.sh" start "$T/reg" || die "registry"
reg=127.0.0.1:$(cat "$T/reg/port")
python3 "$here/../pull/make-images.py" --prog "$prog" "$T/reg" "$reg" >/dev/null || die "make-images.py"
images=$T/reg/images.json
J() { python3 -c "import json, sys; d = json.load(open('$images'))['images']['multi']; $1"; }
ref=$(J 'print(d["ref"])')
manifest=$(J 'print(d["manifest_digest"])')
marker=$(J 'print(d["marker"])')
mapfile -t layers < <(J 'print("\n".join(d["layers"]))')
# ChainIDs (OCI image spec): chain[0] = diff[0], chain[i] = sha256(chain[i-1] + " " + diff[i]).
mapfile -t chain < <(J 'import hashlib
c = []
for x in d["diff_ids"]:
    c.append(x if not c else "sha256:" + hashlib.sha256((c[-1] + " " + x).encode()).hexdigest())
print("\n".join(c))')
[ "${#layers[@]}" -eq 4 ] && [ "${#chain[@]}" -eq 4 ] || die "images.json: ${#layers[@]} layers"
top=${chain[3]}

"$snapshotter" --root "$T/snap" --address "$T/snap.sock" >"$T/snap.log" 2>&1 </dev/null &
snap_pid=$!
for _ in $(seq 1 100); do [ -S "$T/snap.sock" ] && break; sleep 0.1; done
[ -S "$T/snap.sock" ] || die "cloak-snapshotter: no socket: $(tail -n 5 "$T/snap.log")"

# containerd (and the shims and ctr below) find mount.fuse3 and then nydus-overlayfs on PATH.
helper_dir=$(cd "$(dirname "$helper")" && pwd)
base_path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH=$helper_dir:$base_path
CRI_SNAPSHOTTER=cloak CRI_SNAPSHOTTER_ADDRESS=$T/snap.sock \
    bash "$cri/containerd.sh" start "$T/ctd" "$reg" || die "containerd"
sock=$T/ctd/containerd.sock
K() { ctr --address "$sock" -n k8s.io "$@"; }

# --- proxy plugin ---------------------------------------------------------------------------
check "ctr plugins ls: io.containerd.snapshotter.v1 cloak ok" \
    bash -c "ctr --address '$sock' plugins ls | grep -Eq '^io\.containerd\.snapshotter\.v1 +cloak +.* ok'"

# --- CRI pull -------------------------------------------------------------------------------
if out=$("$cloakctl" --address "$sock" pull "$ref" 2>&1) && [[ $out == sha256:* ]]; then
    ok "cloakctl pull $ref -> $out"
else
    bad "cloakctl pull $ref: $out"
fi

# The DIGEST column only: the manifest's containerd.io/gc.ref.content.l.N labels name the
# layers (absent blobs, harmless: spec §3.3).
content=$(K content ls -q 2>&1)
printf '%s\n' "$content" >&2
leaked=()
for l in "${layers[@]}"; do
    grep -qx "$l" <<<"$content" && leaked+=("$l")
done
check "content store: no layer blob (${#layers[@]} layers)" [ "${#leaked[@]}" -eq 0 ]
check "content store: the manifest $manifest and 2 blobs in all (manifest, config)" \
    bash -c 'grep -qx "$1" <<<"$2" && [ "$(wc -l <<<"$2")" -eq 2 ]' _ "$manifest" "$content"
fetched=()
for l in "${layers[@]}"; do
    grep -q "GET /v2/test/multi/blobs/$l" "$T/reg/registry.log" && fetched+=("$l")
done
check "registry log: no layer blob fetched" [ "${#fetched[@]}" -eq 0 ]

found=$(grep -rlF -e "$marker" -e layer1-a -e layer2-a "$T/ctd" "$T/snap" 2>/dev/null |
        grep -v '/containerd\.log$')
check "no image file content under containerd's or the snapshotter's root" [ -z "$found" ]
found=$(find "$T/ctd" "$T/snap" \( -name a.txt -o -name marker -o -name prog \) 2>/dev/null)
check "no image file names (a.txt, marker, prog) on the host" [ -z "$found" ]

# --- the placeholders -------------------------------------------------------------------------
snaps=$(K snapshots --snapshotter cloak ls 2>&1)
printf '%s\n' "$snaps" >&2
chain_ok=true
for i in 0 1 2 3; do
    parent=""
    [ "$i" -gt 0 ] && parent=${chain[$((i - 1))]}
    awk -v k="${chain[$i]}" -v p="$parent" \
        '$1 == k && ((p == "" && NF == 2 && $2 == "Committed") || ($2 == p && $3 == "Committed")) { f = 1 }
         END { exit !f }' <<<"$snaps" || chain_ok=false
done
check "snapshots ls: 4 committed placeholders chained by parent" $chain_ok
check "snapshots ls: nothing but the 4" [ "$(awk 'NR > 1' <<<"$snaps" | wc -l)" -eq 4 ]
info=$(K snapshots --snapshotter cloak info "$top" 2>&1)
check "snapshots info $top: the cri labels" python3 -c '
import json, sys
i = json.loads(sys.argv[1]); l = i.get("Labels", {})
want = {"containerd.io/snapshot.ref": sys.argv[2],
        "containerd.io/snapshot/cri.image-ref": sys.argv[3],
        "containerd.io/snapshot/cri.manifest-digest": sys.argv[4],
        "containerd.io/snapshot/cri.layer-digest": sys.argv[5]}
bad = {k: l.get(k) for k, v in want.items() if l.get(k) != v}
assert str(i.get("Kind")).lower() == "committed", i.get("Kind")
assert not bad, bad
' "$info" "$top" "$ref" "$manifest" "${layers[3]}"

# --- a new snapshot above the image: one fuse.nydus-overlayfs mount -------------------------
mounts=$(K snapshots --snapshotter cloak prepare --mounts c1 "$top" 2>&1)
printf '%s\n' "$mounts" >&2
# prepare --mounts prints the mounts as JSON ([{"Type", "Source", "Options"}]).
check "prepare --mounts c1: exactly one fuse.nydus-overlayfs mount of overlay" python3 -c '
import json, sys
m = json.loads(sys.argv[1])
assert len(m) == 1 and m[0]["Type"] == "fuse.nydus-overlayfs" and m[0]["Source"] == "overlay", m
' "$mounts"
opts=$(python3 -c 'import json, sys; print(",".join(json.loads(sys.argv[1])[0]["Options"]))' "$mounts" 2>/dev/null)
check "the volume option: image_guest_pull, source, image_pull.metadata" python3 -c '
import base64, json, os, sys
opts = sys.argv[1].split(",")
vol = [o for o in opts if o.startswith("io.katacontainers.volume=")]
assert len(vol) == 1, opts
v = json.loads(base64.b64decode(vol[0].split("=", 1)[1], validate=True))
print(v, file=sys.stderr)
assert v["volume_type"] == "image_guest_pull", v
assert v["source"] == sys.argv[2], v
md = v["image_pull"]["metadata"]
assert md["containerd.io/snapshot/cri.image-ref"] == sys.argv[2], md
assert md["containerd.io/snapshot/cri.manifest-digest"] == sys.argv[3], md
for o in opts:
    k, _, p = o.partition("=")
    if k in ("upperdir", "workdir", "lowerdir"):
        for d in p.split(":"):
            assert os.path.isdir(d), o
' "$opts" "$ref" "$manifest"
# ctr snapshots mounts prints "mount -t TYPE SOURCE TARGET -o OPTIONS" per mount.
again=$(K snapshots --snapshotter cloak mounts "$T/x" c1 2>&1)
check "mounts c1 again: the same mount" \
    [ "$again" = "mount -t fuse.nydus-overlayfs overlay $T/x -o $opts" ]

# --- the host helper, invoked as containerd does: mount.fuse3 ... -t nydus-overlayfs ----------
mkdir -p "$T/mnt"
args=()
IFS=, read -ra list <<<"$opts"
for o in "${list[@]}"; do args+=(-o "$o"); done
if out=$(mount.fuse3 overlay "$T/mnt" "${args[@]}" -t nydus-overlayfs 2>&1); then
    line=$(awk -v t="$T/mnt" '$2 == t' /proc/self/mounts)
    upper=$(tr ',' '\n' <<<"$opts" | sed -n 's/^upperdir=//p')
    check "mount.fuse3 -t nydus-overlayfs: kernel overlay, no volume option: $line" \
        bash -c '[[ $1 == "overlay "* ]] && [[ $1 != *katacontainers* ]]' _ "$line"
    echo probe >"$T/mnt/probe" 2>/dev/null
    check "the mount writes to the snapshot's upperdir" [ -f "$upper/probe" ]
    rm -f "$T/mnt/probe"
    umount "$T/mnt" || bad "umount $T/mnt"
else
    bad "mount.fuse3 overlay $T/mnt ... -t nydus-overlayfs: $out"
fi
out=$(PATH=$base_path mount.fuse3 overlay "$T/mnt" "${args[@]}" -t nydus-overlayfs 2>&1)
check "without nydus-overlayfs on PATH the same mount fails ($out)" \
    bash -c '! awk -v t="$1" "\$2 == t { f = 1 } END { exit !f }" /proc/self/mounts' _ "$T/mnt"
umount "$T/mnt" 2>/dev/null
K snapshots --snapshotter cloak rm c1 >/dev/null 2>&1 || bad "snapshots rm c1"

# --- ctr run: containerd's temp mount of the new rootfs (WithAdditionalGIDs) -----------------
# runc then fails on the empty rootfs (the guest-pull rootfs is for the cloak shim): only
# creation is checked. Without the helper on PATH the temp mount itself fails.
out=$(PATH=$base_path K run --snapshotter cloak --runtime io.containerd.runc.v2 "$ref" gp-nohelper /bin/prog exit 0 2>&1)
check "ctr run without nydus-overlayfs on PATH: the temp mount fails" \
    bash -c '[[ $1 == *"mount helper"* ]]' _ "$out"
log "  ($out)"
out=$(timeout 60 ctr --address "$sock" -n k8s.io run --snapshotter cloak --runtime io.containerd.runc.v2 \
      "$ref" gp-run /bin/prog exit 0 2>&1)
log "  ctr run: $out"
check "ctr run: the container is created (the rootfs temp mount went through nydus-overlayfs)" \
    bash -c 'ctr --address "$1" -n k8s.io containers ls -q | grep -qx gp-run' _ "$sock"
check "ctr run: no mount error" bash -c '[[ $1 != *"mount helper"* && $1 != *"failed to mount"* ]]' _ "$out"
K tasks rm -f gp-run >/dev/null 2>&1
K containers rm gp-run >/dev/null 2>&1

# --- a host-side unpack is refused -----------------------------------------------------------
out=$(ctr --address "$sock" -n default images pull --plain-http --snapshotter cloak "$ref" 2>&1)
rc=$?
check "ctr images pull --snapshotter cloak fails with the snapshotter's message" \
    bash -c '[ "$1" -ne 0 ] && [[ $2 == *"host-side image unpack"* ]]' _ "$rc" "$out"
log "  ($(tail -n 1 <<<"$out"))"

log "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
