#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Runs one ttrpc interop case: starts a server on a fresh socket, waits for its "ready"
# line, runs the client case against it, then stops the server with SIGTERM.
#
#   run-interop.sh CASE SERVER [ARGS...] -- CLIENT [ARGS...]
#
# The server is run as `SERVER ARGS... --socket PATH`, the client as
# `CLIENT ARGS... --socket PATH CASE`. Passes when the client exits 0 having printed
# "ok CASE", and the server, still alive at the end, exits 0 on SIGTERM and removes its
# socket. Nothing is left behind: the server is killed and the temp dir removed on every exit.
set -u

usage() {
    echo "usage: run-interop.sh CASE SERVER [ARGS...] -- CLIENT [ARGS...]" >&2
    exit 2
}

[ $# -ge 4 ] || usage
case_name=$1
shift
server=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do
    server+=("$1")
    shift
done
[ $# -ge 2 ] && [ ${#server[@]} -ge 1 ] || usage
shift
client=("$@")

ready_timeout=${INTEROP_READY_TIMEOUT:-10}  # seconds for the server to print "ready"
client_timeout=${INTEROP_CLIENT_TIMEOUT:-90}
stop_timeout=5

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ttrpc-interop.XXXXXX") || exit 1
sock=$tmp/echo.sock
server_pid=
failed=0

cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -KILL "$server_pid" 2>/dev/null
        wait "$server_pid" 2>/dev/null
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
    echo "FAIL: $*"
    failed=1
}

show() { # show FILE TITLE
    if [ -s "$1" ]; then
        echo "--- $2"
        tail -n 40 "$1"
    fi
}

give_up() {
    fail "$*"
    show "$tmp/server.out" "server stdout"
    show "$tmp/server.err" "server stderr"
    exit 1
}

echo "server: ${server[*]} --socket $sock"
: >"$tmp/server.out" # exists before the loop below reads it, whenever the child opens it
"${server[@]}" --socket "$sock" >"$tmp/server.out" 2>"$tmp/server.err" &
server_pid=$!

# Wait for the first complete line of the server's stdout; it must be exactly "ready".
deadline=$((SECONDS + ready_timeout))
while :; do
    if [ "$(wc -l <"$tmp/server.out")" -ge 1 ]; then
        first=$(head -n 1 "$tmp/server.out")
        [ "$first" = ready ] || give_up "server printed '$first' instead of 'ready'"
        break
    fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
        wait "$server_pid"
        give_up "server exited with status $? before printing 'ready'"
    fi
    [ "$SECONDS" -lt "$deadline" ] || give_up "server printed no 'ready' line within ${ready_timeout}s"
    sleep 0.05
done
[ -S "$sock" ] || give_up "server printed 'ready' but $sock is not a socket"

echo "client: ${client[*]} --socket $sock $case_name"
timeout -k 5 "$client_timeout" "${client[@]}" --socket "$sock" "$case_name" \
    >"$tmp/client.out" 2>"$tmp/client.err"
client_rc=$?
show "$tmp/client.out" "client stdout"
show "$tmp/client.err" "client stderr"
if [ "$client_rc" -eq 124 ] || [ "$client_rc" -eq 137 ]; then
    fail "client timed out after ${client_timeout}s"
elif [ "$client_rc" -ne 0 ]; then
    fail "client exited with status $client_rc"
elif ! grep -qx "ok $case_name" "$tmp/client.out"; then
    fail "client exited 0 without printing 'ok $case_name'"
fi

# Stop the server: it must still be running, exit 0 on SIGTERM and remove its socket.
if ! kill -0 "$server_pid" 2>/dev/null; then
    wait "$server_pid"
    fail "server died during the case (exit status $?)"
    server_pid=
else
    kill -TERM "$server_pid"
    deadline=$((SECONDS + stop_timeout))
    while kill -0 "$server_pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
        sleep 0.05
    done
    if kill -0 "$server_pid" 2>/dev/null; then
        fail "server still running ${stop_timeout}s after SIGTERM"
    else
        wait "$server_pid"
        rc=$?
        server_pid=
        [ "$rc" -eq 0 ] || fail "server exited with status $rc on SIGTERM, want 0"
        [ ! -e "$sock" ] || fail "server left its socket $sock behind"
    fi
fi

if [ "$failed" -ne 0 ]; then
    show "$tmp/server.out" "server stdout"
    show "$tmp/server.err" "server stderr"
    exit 1
fi
echo "PASS: $case_name"
