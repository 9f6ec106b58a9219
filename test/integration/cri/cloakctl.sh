#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# cloakctl's CRI client against a real private containerd 1.6 (containerd.sh) with runc:
#   cloakctl.sh CLOAKCTL CLOAK_PAUSE CTR_PROG
# starts a local registry (../pull/registry.sh) holding the sandbox image and a test image
# (make-images.py: /bin/prog = ctr-prog, /etc/hello), then checks pull, run (output on the
# right streams, exit codes, --entrypoint, SIGTERM, a missing image), ps, exec (id prefix),
# run --pod (a second container in a running pod), rm (container prefix, pod name) and that
# nothing is left in containerd. Everything lives
# in a temp dir; only processes started here are stopped (by pid, see containerd.sh).
set -euo pipefail
cloakctl=${1:?cloakctl}
pause=${2:?cloak-pause}
prog=${3:?ctr-prog}
here=$(cd "$(dirname "$0")" && pwd)

log() { printf '[cloakctl-cri] %s\n' "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }

for b in /usr/bin/containerd /usr/sbin/runc /usr/lib/cni/bridge /usr/bin/docker-registry; do
    [ -x "$b" ] || { [ "$b" = /usr/sbin/runc ] && command -v runc >/dev/null; } ||
        fail "missing $b (packaging/install-deps.sh)"
done
[ "$(id -u)" -eq 0 ] || fail "needs root (containerd, runc, CNI)"

T=$(mktemp -d /tmp/cloakctl-cri.XXXXXX)
bg_pids=()
cleanup() {
    local rc=$? p
    for p in "${bg_pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${bg_pids[@]}"; do wait "$p" 2>/dev/null || true; done
    if [ "$rc" -ne 0 ] && [ -f "$T/ctd/containerd.log" ]; then
        log "containerd.log (tail):"; tail -n 40 "$T/ctd/containerd.log" >&2
    fi
    bash "$here/containerd.sh" stop "$T/ctd" || true
    bash "$here/../pull/registry.sh" stop "$T/reg" || true
    rm -rf "$T"
    exit "$rc"
}
trap cleanup EXIT

bash "$here/../pull/registry.sh" start "$T/reg"
reg=127.0.0.1:$(cat "$T/reg/port")
python3 "$here/make-images.py" --pause "$pause" --prog "$prog" "$reg"
bash "$here/containerd.sh" start "$T/ctd" "$reg"
sock=$T/ctd/containerd.sock
image=$reg/test/prog:v1
mkdir -p "$T/tmp"
export TMPDIR=$T/tmp   # cloakctl run's log directories
C() { "$cloakctl" --address "$sock" "$@"; }
ctr_ls() { ctr --address "$sock" -n k8s.io containers ls -q; }

# --- pull -----------------------------------------------------------------------------------
out=$(C pull "$image") || fail "pull exited $?"
[[ $out == sha256:* ]] || fail "pull printed '$out'"
log "ok: pull -> $out"

# --- run: stdout and stderr apart, the exit code ---------------------------------------------
rc=0
C run "$image" cat /etc/hello /nope >"$T/out" 2>"$T/err" || rc=$?
[ "$rc" -eq 1 ] || fail "run cat: exit $rc, want 1; stderr: $(cat "$T/err")"
[ "$(cat "$T/out")" = "hello from the image" ] || fail "run cat: stdout '$(cat "$T/out")'"
grep -q '^ctr-prog: /nope: No such file or directory$' "$T/err" ||
    fail "run cat: stderr '$(cat "$T/err")'"
log "ok: run: stdout, stderr, exit 1"

rc=0; C run --rm "$image" exit 3 || rc=$?
[ "$rc" -eq 3 ] || fail "run exit 3: exit $rc"
out=$(C run --entrypoint "$image" /bin/prog cat /etc/hello) || fail "run --entrypoint: exit $?"
[ "$out" = "hello from the image" ] || fail "run --entrypoint: '$out'"
log "ok: run: exit 3, --entrypoint"

rc=0; C run "$reg/test/none:v1" 2>"$T/err" || rc=$?
[ "$rc" -eq 1 ] && grep -q 'PullImage' "$T/err" || fail "run of a missing image: exit $rc, '$(cat "$T/err")'"
log "ok: missing image: $(cat "$T/err")"
[ -z "$(ctr_ls)" ] || fail "containers left after run: $(ctr_ls)"
[ -z "$(ls -A "$T/tmp")" ] || fail "log dirs left after run: $(ls "$T/tmp")"

# --- a long-running one (--keep): ps, exec, rm ------------------------------------------------
# Not through C(): a function in the background is a subshell, and $! must be cloakctl.
"$cloakctl" --address "$sock" run --keep "$image" sleep >"$T/run-keep.out" 2>"$T/run-keep.err" &
bg_pids+=($!); keep_pid=$!
cid=""
for _ in $(seq 1 100); do
    cid=$(C ps | awk 'NR > 1 && $4 == "running" { print $1 }')
    [ -n "$cid" ] && break
    sleep 0.2
done
[ -n "$cid" ] || fail "ps shows no running container: $(C ps -a)"
C ps
pod=$(C ps | awk 'NR > 1 { print $2 }')
[[ $pod == cloakctl-* ]] || fail "ps pod column '$pod'"
C ps | awk 'NR > 1' | grep -q " $image " || fail "ps image column: $(C ps)"

out=$(C exec "$cid" /bin/prog cat /etc/hello) || fail "exec: exit $?"
[ "$out" = "hello from the image" ] || fail "exec: '$out'"
rc=0; C exec "${cid:0:4}" /bin/prog exit 7 || rc=$?
[ "$rc" -eq 7 ] || fail "exec exit 7 (prefix ${cid:0:4}): exit $rc"
rc=0; C exec --timeout 5 "$cid" /bin/prog cat /nope 2>"$T/err" || rc=$?
[ "$rc" -eq 1 ] && grep -q '/nope' "$T/err" || fail "exec cat /nope: exit $rc, '$(cat "$T/err")'"
rc=0; C exec nosuchid /bin/prog exit 0 2>"$T/err" || rc=$?
[ "$rc" -eq 1 ] && grep -q "no container 'nosuchid'" "$T/err" || fail "exec nosuchid: $rc"
log "ok: ps, exec (output, exit codes, prefix, unknown id)"

# --- --pod: a second container in the same pod (the first one keeps running) ---------------
out=$(C run --pod "$pod" "$image" cat /etc/hello) || fail "run --pod $pod: exit $?"
[ "$out" = "hello from the image" ] || fail "run --pod: '$out'"
rc=0; C run --pod "$pod" --runtime runc "$image" exit 0 2>/dev/null || rc=$?
[ "$rc" -eq 2 ] || fail "run --pod with --runtime: exit $rc, want 2 (usage)"
"$cloakctl" --address "$sock" run --pod "$pod" --keep "$image" sleep >/dev/null 2>&1 &
bg_pids+=($!); pod_pid=$!
two=""
for _ in $(seq 1 100); do
    two=$(C ps | awk -v p="$pod" 'NR > 1 && $2 == p && $4 == "running" { print $1 }' | sort)
    [ "$(wc -l <<<"$two")" -eq 2 ] && break
    sleep 0.2
done
[ "$(wc -l <<<"$two")" -eq 2 ] || fail "run --pod --keep: ps shows not 2 running in $pod: $(C ps -a)"
[ "$(C ps -a | awk 'NR > 1' | wc -l)" -eq 2 ] || fail "run --pod left a container: $(C ps -a)"
cid2=$(grep -v "^$cid\$" <<<"$two")
out=$(C exec "$cid2" /bin/prog cat /etc/hello) || fail "exec in the --pod container: exit $?"
[ "$out" = "hello from the image" ] || fail "exec in the --pod container: '$out'"
C rm "$cid2" >/dev/null || fail "rm the --pod container $cid2"
rc=0; wait "$pod_pid" || rc=$?
bg_pids=("$keep_pid")
[ "$rc" -ne 0 ] || fail "run --pod --keep exited 0 after its container was removed"
[ "$(C ps | awk 'NR > 1 { print $1 }')" = "${cid:0:12}" ] ||
    fail "after --pod: want only $cid running: $(C ps -a)"
log "ok: run --pod $pod: a second container in the pod (--rm, --keep, exec), the first untouched"

out=$(C rm "${cid:0:12}") || fail "rm container: exit $?"
[[ $cid == "${out:0:12}" ]] || fail "rm printed '$out'"
rc=0; wait "$keep_pid" || rc=$?
bg_pids=()
[ "$rc" -ne 0 ] || fail "run --keep exited 0 after its container was removed"
[ -z "$(C ps -a | awk 'NR > 1')" ] || fail "ps -a after rm: $(C ps -a)"
[ -n "$(ctr_ls)" ] || fail "--keep: the pod's sandbox is gone already"
out=$(C rm "$pod") || fail "rm pod $pod: exit $?"
[ -z "$(ctr_ls)" ] || fail "containers left after rm pod: $(ctr_ls)"
log "ok: rm container by prefix, rm pod by name $pod"
rm -rf "${T:?}/tmp/"*

# --- SIGTERM stops the container and still cleans up -----------------------------------------
"$cloakctl" --address "$sock" run "$image" sleep >"$T/run-term.out" 2>&1 &
bg_pids+=($!); term_pid=$!
for _ in $(seq 1 100); do
    [ -n "$(C ps | awk 'NR > 1')" ] && break
    sleep 0.2
done
kill -TERM "$term_pid"
rc=0; wait "$term_pid" || rc=$?
bg_pids=()
# ctr-prog sleep is PID 1 and ignores SIGTERM: SIGKILL after the 10 s grace.
[ "$rc" -eq 137 ] || fail "run after SIGTERM: exit $rc: $(cat "$T/run-term.out")"
[ -z "$(ctr_ls)" ] || fail "containers left after SIGTERM: $(ctr_ls)"
[ -z "$(ls -A "$T/tmp")" ] || fail "log dirs left after SIGTERM: $(ls "$T/tmp")"
log "ok: SIGTERM -> exit 137, pod removed"
log "PASS"
