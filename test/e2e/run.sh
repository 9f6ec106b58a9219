#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# cloak end to end, as a Kubernetes node would run it: pods through containerd 1.6's CRI with
# runtime handler `cloak`, each in its own VM (KVM or TCG), images pulled inside the guest.
#   test/e2e/run.sh            (root; binaries from $CLOAK_BUILD_DIR or build/, whose
#                               guest-image target is built here when it is missing)
# Starts the embedded environment (packaging/embedded-env.sh: its own containerd, cloak-
# snapshotter and docker-registry on loopback, all under one temp dir), builds the test images
# with umoci and pushes them with skopeo, runs the cases below with cloakctl (the CRI client),
# tears everything down (only what it started, by pid) and ends with "N passed, N failed".
# E2E_KEEP=1 keeps the temp dir; E2E_CASES="hello marker ..." runs some cases only.
# Cases:
#   hello      a line printed inside the guest (its kernel, not the host's); exit code 3
#   marker     an image with a unique marker file (uncompressed layer): the container reads
#              it (sha256 compared); no file under containerd's root and state, the
#              snapshotter's root, the shim's state or /tmp (registry storage, image build
#              dirs and logs excluded) holds the marker, no layer blob in the content store
#   layers     four layers (gzip, zstd, gzip), file and directory whiteouts: the right tree
#   pod        two containers in one pod (one QEMU), exec (output, exit code), stop, remove
#   errors     a missing tag, the registry stopped after the host's pull, a tampered layer:
#              each fails naming its cause and leaves no VM, shim or state behind
#   many       ten pods one after another, then three at once: all succeed, all clean up
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
BUILD=$(cd "${CLOAK_BUILD_DIR:-$src/build}" 2>/dev/null && pwd) ||
    { echo "e2e: no build dir ${CLOAK_BUILD_DIR:-$src/build} (cmake --preset default && cmake --build build)" >&2; exit 1; }
cases=${E2E_CASES:-hello marker layers pod errors many}

log() { printf '%s [e2e] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "setup failed: $*"; exit 1; }
passed=0 failed=0
ok() { log "ok: $*"; passed=$((passed + 1)); }
bad() { log "FAIL: $*"; failed=$((failed + 1)); }
check() { # check "what" command...
    local what=$1
    shift
    if "$@"; then ok "$what"; else bad "$what"; fi
}
want() { [[ " $cases " == *" $1 "* ]]; }

[ "$(id -u)" -eq 0 ] || die "needs root (containerd, mounts, /run/cloak)"
if [ ! -f "$BUILD/guest/vmlinuz" ] || [ ! -f "$BUILD/guest/initrd.img" ]; then
    log "building the guest image (cmake --build $BUILD --target guest-image)"
    cmake --build "$BUILD" --target guest-image >&2 || die "guest-image"
fi
# shellcheck source=../../packaging/embedded-env.sh
. "$src/packaging/embedded-env.sh"

T=$(mktemp -d /tmp/cloak-e2e.XXXXXX)
E=$T/env      # the embedded environment
I=$T/images   # our image layouts

export CENV_BRIDGE=${E2E_BRIDGE:-cloake2e0} CENV_SUBNET=${E2E_SUBNET:-10.88.81.0/24}
bg_pids=()

cleanup() {
    local rc=$? p id st
    trap - EXIT
    for p in "${bg_pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${bg_pids[@]}"; do wait "$p" 2>/dev/null || true; done
    if [ "$failed" -ne 0 ] || [ "$rc" -ne 0 ]; then
        log "containerd.log, errors and the shims' warnings (tail):"
        grep -aE 'level=(error|warning)' "$E/ctd/containerd.log" 2>/dev/null | tail -n 30 >&2
        for id in $(cenv_pod_ids); do
            st=$(cenv_pod_state "$id")
            [ -f "$st/console.log" ] && { log "$st/console.log (left behind; tail):"; tail -n 20 "$st/console.log" >&2; }
        done
    fi
    cenv_stop
    if [ "${E2E_KEEP:-0}" = 1 ]; then log "kept $T"; else rm -rf "$T"; fi
    echo "$passed passed, $failed failed"
    [ "$rc" -eq 0 ] && [ "$failed" -ne 0 ] && rc=1
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# --- environment and images ------------------------------------------------------------------
t0=$SECONDS
cenv_start "$E" "$BUILD" "$src/configs/cloak-dev.toml" || die "the embedded environment"
REG=$CENV_REG
guest_kver=$(sed -n 's/^# kernel //p' "$BUILD/guest/SHA256SUMS" | head -n 1)
[ -n "$guest_kver" ] || die "no '# kernel' line in $BUILD/guest/SHA256SUMS"
C() { timeout 600 "$CENV_CLOAKCTL" --address "$CENV_SOCK" "$@"; }
R() { C run --runtime cloak "$@"; }

busybox_image() { oci_busybox "$I" "$1"; }
put_file() { # ROOTFS PATH CONTENT
    mkdir -p "$(dirname "$1/$2")" && printf '%s' "$3" >"$1/$2"
}
busybox_image hello || die "image hello"
oci_push "$I" hello "$REG/e2e/hello:1" || die "push hello"

marker=cloak-e2e-marker-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
marker_sum=$(printf '%s' "$marker" | sha256sum | cut -c1-64)
busybox_image marker && oci_layer "$I" marker put_file /marker "$marker" &&
    python3 "$here/oci-layer.py" "$I" marker -1 none && oci_push "$I" marker "$REG/e2e/marker:1" ||
    die "image marker"

l2() { put_file "$1" /data/a a1 && put_file "$1" /data/b b1 && put_file "$1" /gone/f f &&
       put_file "$1" /data/sub/s s; }
l3() { rm -f "$1/data/b" && rm -rf "$1/gone" && put_file "$1" /data/a a2 && put_file "$1" /data/c c3; }
l4() { rm -rf "$1/data/sub" && put_file "$1" /data/sub/t t4; }
busybox_image layers && oci_layer "$I" layers l2 && oci_layer "$I" layers l3 &&
    oci_layer "$I" layers l4 && python3 "$here/oci-layer.py" "$I" layers 2 zstd &&
    oci_push "$I" layers "$REG/e2e/layers:1" || die "image layers"

busybox_image gone && oci_layer "$I" gone put_file /gone.txt "gone $marker_sum" &&
    oci_push "$I" gone "$REG/e2e/gone:1" || die "image gone"
busybox_image tampered && oci_layer "$I" tampered put_file /t.bin "$(head -c 65536 /dev/urandom | base64 -w0)" &&
    oci_push "$I" tampered "$REG/e2e/tampered:1" || die "image tampered"
log "environment and images ready in $((SECONDS - t0)) s (registry $REG, guest kernel $guest_kver)"

# No pod's VM, shim, state dir or shim socket is left (all pods this containerd created).
nothing_left() {
    local id st q s
    q=$(cenv_qemus)
    s=$(cenv_shims)
    [ -z "$q" ] || { log "QEMU left: $q"; return 1; }
    [ -z "$s" ] || { log "shims left: $s"; return 1; }
    for id in $(cenv_pod_ids); do
        st=$(cenv_pod_state "$id")
        [ ! -e "$st" ] || { log "state dir left: $st"; return 1; }
        [ ! -e "$(cenv_pod_socket "$id")" ] || { log "socket left: $(cenv_pod_socket "$id")"; return 1; }
    done
}
# run_case NAME ARGS...: cloakctl run --runtime cloak ARGS; $T/NAME.out, .err, .rc.
run_case() {
    local name=$1
    shift
    R "$@" >"$T/$name.out" 2>"$T/$name.err"
    echo $? >"$T/$name.rc"
}
rc_of() { cat "$T/$1.rc"; }
out_is() { # NAME EXPECTED: stdout exactly
    local got
    got=$(cat "$T/$1.out")
    [ "$got" = "$2" ] || { log "$1: stdout '$got', expected '$2'; stderr: $(head -c 600 "$T/$1.err")"; return 1; }
}
err_has() { # NAME PATTERN (grep -E)
    grep -Eq -- "$2" "$T/$1.err" || { log "$1: stderr lacks /$2/: $(head -c 800 "$T/$1.err")"; return 1; }
}

# --- hello -----------------------------------------------------------------------------------
if want hello; then
    # The guest's kernel, and its command line (cloak's own parameters: no host has them).
    run_case hello --timings "$REG/e2e/hello:1" -c \
        'echo "inside $(uname -r)"; grep -q "cloak\.registry" /proc/cmdline && echo "cloak VM"; exit 3'
    check "a line printed inside the guest (kernel $guest_kver, the host runs $(uname -r); cloak's kernel command line)" \
        out_is hello "$(printf 'inside %s\ncloak VM' "$guest_kver")"
    check "the exit code comes back (3)" [ "$(rc_of hello)" = 3 ]
    check "cloakctl --timings: first output after create, before exit" awk -v l="$(grep '^cloakctl run: timings:' "$T/hello.err")" 'BEGIN {
            n = split(l, f, /[ =]/); for (i = 1; i < n; i++) v[f[i]] = f[i + 1]
            exit !(v["create"] > 0 && v["first_output"] >= v["create"] && v["exited"] >= v["first_output"]) }'
    log "hello timings: $(sed -n 's/^cloakctl run: timings: //p' "$T/hello.err")"
    check "hello: nothing left" nothing_left
fi

# --- marker ----------------------------------------------------------------------------------
# Files holding the marker under DIRS (find's -prune of the excluded paths, logs skipped).
marker_files() {
    find "$@" \( -path "$E/reg" -o -path "$I" -o -path "$E/images" -o -path "$T/*.out" \) -prune -o \
        -type f ! -name '*.log' -print0 2>/dev/null | xargs -0 -r grep -lF -- "$marker" 2>/dev/null
    return 0
}
if want marker; then
    mapfile -t marker_layers < <(oci_layers "$I" marker)
    check "marker image: its top layer is uncompressed" \
        bash -c "python3 '$here/oci-layer.py' '$I' marker -1 --info | grep -q 'layer.v1.tar\$'"
    run_case marker --keep "$REG/e2e/marker:1" -c 'sha256sum /marker'
    check "the container reads the marker file (sha256 ${marker_sum:0:12}...)" \
        out_is marker "$marker_sum  /marker"
    pod=$(cenv_kept_pod "$T/marker.err")
    [ -n "$pod" ] || bad "marker: no pod kept ($(cat "$T/marker.err"))"
    # While the pod lives: containerd's root and state (the container's rootfs mount among
    # them), the snapshotter's root, the shim's state dir.
    st=$(cenv_pod_state "$pod")
    check "marker: the pod's state dir exists while it runs ($st)" [ -d "$st" ]
    # The controls: the registry's copy of the uncompressed layer holds the marker in plain
    # (as a host-side pull would have left it in the content store and the snapshotter), and
    # the scan finds a planted copy.
    check "marker: the registry's storage holds it in plain (control)" \
        bash -c "grep -rlF -- '$marker' '$E/reg/storage' | grep -q /data\$"
    mkdir -p "$T/control/deep" && printf 'x%sx' "$marker" >"$T/control/deep/f"
    check "marker: the scan finds a planted copy (control)" [ -n "$(marker_files "$T/control")" ]
    rm -rf "$T/control"
    found=$(marker_files "$E/ctd/root" "$E/ctd/state" "$E/snap" "$st")
    check "marker: in no file on the host while the pod lives" [ -z "$found" ]
    [ -z "$found" ] || log "marker found in: $found"
    C rm "$pod" >/dev/null 2>&1
    found=$(marker_files "$E/ctd/root" "$E/ctd/state" "$E/snap" /run/cloak/shim /run/containerd/s)
    found+=$(find /tmp -xdev \( -path "$E/reg" -o -path "$I" -o -path "$E/images" -o -path "$T/*.out" -o -path "$T/*.err" \) -prune -o \
                 -type f ! -name '*.log' -print0 2>/dev/null | xargs -0 -r grep -lF -- "$marker" 2>/dev/null)
    check "marker: in no file under containerd's root/state, the snapshotter, /run/cloak/shim or /tmp after the pod" [ -z "$found" ]
    [ -z "$found" ] || log "marker found in: $found"
    content=$(ctr --address "$CENV_SOCK" -n k8s.io content ls -q 2>&1)
    check "the content store answers and holds the image's manifest" grep -q '^sha256:' <<<"$content"
    leaked=""
    for d in "${marker_layers[@]}"; do
        grep -qx -- "$d" <<<"$content" && leaked+=" $d"
        [ -e "$E/ctd/root/io.containerd.content.v1.content/blobs/sha256/${d#sha256:}" ] && leaked+=" $d(file)"
    done
    check "no layer blob of the image in containerd's content store (${#marker_layers[@]} layers)" [ -z "$leaked" ]
    check "marker: nothing left" nothing_left
fi

# --- layers ----------------------------------------------------------------------------------
if want layers; then
    check "layers image: layer 2 is zstd" \
        bash -c "python3 '$here/oci-layer.py' '$I' layers 2 --info | grep -q 'tar+zstd\$'"
    check "layers image: layer 2 whites out /data/b and /gone" \
        bash -c "python3 '$here/oci-layer.py' '$I' layers 2 --list | grep -Eq '(^|/)data/\\.wh\\.b\$' &&
                 python3 '$here/oci-layer.py' '$I' layers 2 --list | grep -Eq '(^|/)\\.wh\\.gone\$'"
    run_case layers "$REG/e2e/layers:1" -c \
        'cd /data && find . | sort | tr "\n" " "; cat a c sub/t; echo; [ -e /gone ] && echo gone-present || echo gone-absent'
    check "four layers, whiteouts and a zstd layer: the right tree" \
        out_is layers "$(printf '. ./a ./c ./sub ./sub/t a2c3t4\ngone-absent')"
    check "layers: exit 0" [ "$(rc_of layers)" = 0 ]
fi

# --- pod: two containers, exec, stop, remove --------------------------------------------------
# Waits until `cloakctl ps` shows a running container (the only one); prints its id.
wait_running() {
    local i id
    for ((i = 0; i < 600; i++)); do
        id=$(C ps 2>/dev/null | awk 'NR > 1 && $4 == "running" { print $1; exit }')
        [ -n "$id" ] && { echo "$id"; return 0; }
        sleep 0.5
    done
    return 1
}
if want pod; then
    before=$(cenv_pod_ids)
    R --keep "$REG/e2e/hello:1" -c 'echo first; exec sleep 1000' >"$T/pod1.out" 2>"$T/pod1.err" &
    bg=$!
    bg_pids+=("$bg")
    ctr1=$(wait_running)
    # The pod: the one containerd created since (its log names it).
    pod=$(comm -13 <(echo "$before") <(cenv_pod_ids) | head -n 1)
    check "pod: the first container runs (pod ${pod:0:12}, container ${ctr1:-none})" [ -n "$ctr1" ]
    C run --pod "$pod" "$REG/e2e/hello:1" -c 'echo second; exit 4' >"$T/pod2.out" 2>"$T/pod2.err"
    echo $? >"$T/pod2.rc"
    check "pod: a second container in the same pod prints its line" out_is pod2 second
    check "pod: the second container's exit code (4)" [ "$(rc_of pod2)" = 4 ]
    q=$(cenv_pod_qemus "$pod" | wc -l)
    check "pod: its two containers share one QEMU ($q)" [ "$q" = 1 ]
    for p in $(cenv_pod_qemus "$pod") $(cenv_shims); do
        log "pod: RSS of $(tr '\0' ' ' <"/proc/$p/cmdline" | cut -c1-40)... (pid $p): $(awk '/^VmRSS:/ { print $2, $3 }' "/proc/$p/status")"
    done
    C exec "$ctr1" sh -c 'echo exec-out; echo exec-err >&2; exit 5' >"$T/exec.out" 2>"$T/exec.err"
    echo $? >"$T/exec.rc"
    check "exec into the running container: output" out_is exec exec-out
    check "exec: stderr apart" grep -qx exec-err "$T/exec.err"
    check "exec: its exit code (5)" [ "$(rc_of exec)" = 5 ]
    C rm "$ctr1" >"$T/rm1.out" 2>&1
    check "stop and remove the running container (cloakctl rm)" [ $? = 0 ]
    wait "$bg"
    brc=$?
    check "its cloakctl run ends (exit $brc: killed by the stop) and printed its line" \
        bash -c "[ $brc -ne 0 ] && grep -qx first '$T/pod1.out'"
    check "pod: the VM still runs with the pod" [ "$(cenv_pod_qemus "$pod" | wc -l)" = 1 ]
    C rm "$pod" >/dev/null 2>&1
    check "remove the pod: exit 0" [ $? = 0 ]
    check "pod: nothing left" nothing_left
fi

# --- errors ----------------------------------------------------------------------------------
if want errors; then
    run_case missing "$REG/e2e/hello:nope" -c 'echo never'
    check "a missing tag fails (exit $(rc_of missing))" [ "$(rc_of missing)" != 0 ]
    check "a missing tag: the error names the reference and 'not found'" \
        bash -c "grep -q 'e2e/hello:nope' '$T/missing.err' && grep -qi 'not found' '$T/missing.err'"
    check "a missing tag: no VM left" nothing_left

    # The host pulls (manifest and config), then the registry goes away before the guest's
    # pull: the sandbox is being created when the registry stops (cloakctl pulls first).
    runp() { grep -a 'RunPodSandbox for &PodSandboxMetadata' "$E/ctd/containerd.log" | grep -vc 'returns sandbox id'; }
    n0=$(runp)
    R "$REG/e2e/gone:1" -c 'echo never' >"$T/gone.out" 2>"$T/gone.err" &
    bg=$!
    bg_pids+=("$bg")
    for ((i = 0; i < 600; i++)); do
        [ "$(runp)" -gt "$n0" ] && break
        kill -0 "$bg" 2>/dev/null || break
        sleep 0.1
    done
    check "the registry gone: the host's pull succeeded (RunPodSandbox began)" [ "$(runp)" -gt "$n0" ]
    bash "$src/test/integration/pull/registry.sh" stop "$E/reg" >/dev/null 2>&1
    wait "$bg"
    echo $? >"$T/gone.rc"
    REGISTRY_PORT=${REG##*:} bash "$src/test/integration/pull/registry.sh" start "$E/reg" >/dev/null 2>&1 ||
        die "registry restart on ${REG##*:}"
    check "the registry gone after the host's pull: the container fails (exit $(rc_of gone))" [ "$(rc_of gone)" != 0 ]
    check "the registry gone: the error names the guest's pull and the connection" \
        err_has gone "image $REG/e2e/gone@sha256:[0-9a-f]{64}: .*(Couldn't connect|Connection refused)"
    check "the registry gone: no VM left" nothing_left

    # A tampered layer: bytes of the blob in the registry's storage changed, same size.
    tl=$(oci_layers "$I" tampered | tail -n 1)
    blob=$E/reg/storage/docker/registry/v2/blobs/sha256/${tl:7:2}/${tl#sha256:}/data
    if [ -f "$blob" ]; then
        python3 - "$blob" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
for i in range(len(b) // 2, len(b) // 2 + 16):
    b[i] ^= 0xFF
open(p, "wb").write(b)
PY
    fi
    check "tampered: the layer blob is in the registry's storage" [ -f "$blob" ]
    run_case tampered "$REG/e2e/tampered:1" -c 'echo never'
    check "a tampered layer fails the container (exit $(rc_of tampered))" [ "$(rc_of tampered)" != 0 ]
    check "a tampered layer: the error names the layer's digest and a mismatch" \
        err_has tampered "layer ${tl}: digest mismatch"
    check "a tampered layer: no VM left" nothing_left
    check "a tampered layer: never printed" [ ! -s "$T/tampered.out" ]
fi

# --- many ------------------------------------------------------------------------------------
if want many; then
    t1=$SECONDS
    good=0
    for i in $(seq 1 10); do
        run_case "seq$i" "$REG/e2e/hello:1" -c "echo pod-$i"
        if [ "$(rc_of "seq$i")" = 0 ] && [ "$(cat "$T/seq$i.out")" = "pod-$i" ]; then
            good=$((good + 1))
        else
            log "seq$i: exit $(rc_of "seq$i"), out '$(cat "$T/seq$i.out")', err $(head -c 400 "$T/seq$i.err")"
        fi
    done
    check "ten pods one after another all succeed ($good/10, $((SECONDS - t1)) s)" [ "$good" = 10 ]
    check "ten pods: nothing left" nothing_left
    t1=$SECONDS
    pids=()
    for i in 1 2 3; do
        run_case "par$i" "$REG/e2e/hello:1" -c "echo par-$i" &
        pids+=($!)
    done
    bg_pids+=("${pids[@]}")
    for p in "${pids[@]}"; do wait "$p"; done
    good=0
    for i in 1 2 3; do
        if [ "$(rc_of "par$i")" = 0 ] && [ "$(cat "$T/par$i.out")" = "par-$i" ]; then
            good=$((good + 1))
        else
            log "par$i: exit $(rc_of "par$i"), out '$(cat "$T/par$i.out")', err $(head -c 400 "$T/par$i.err")"
        fi
    done
    check "three pods at once all succeed ($good/3, $((SECONDS - t1)) s)" [ "$good" = 3 ]
    check "three pods: nothing left" nothing_left
fi
log "e2e took $((SECONDS - t0)) s"
