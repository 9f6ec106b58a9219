#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# A throwaway OCI registry for the image-pull tests (Debian's docker-registry):
#   registry.sh start DIR   serve DIR/storage on 127.0.0.1:<a free port, or $REGISTRY_PORT>,
#                           plain HTTP, no auth;
#                           DIR/port, DIR/registry.pid, DIR/registry.log (the access log: one
#                           line per request, e.g. "GET /v2/<repo>/blobs/sha256:... HTTP/1.1" 200);
#                           returns once GET /v2/ answers 200
#   registry.sh stop DIR    kills the pid in DIR/registry.pid (only that one)
set -euo pipefail
REGISTRY_BIN=${REGISTRY_BIN:-/usr/bin/docker-registry}
cmd=${1:?start|stop}
dir=${2:?dir}

log() { printf '[registry] %s\n' "$*" >&2; }

start() {
    [ -x "$REGISTRY_BIN" ] || { log "missing $REGISTRY_BIN (apt-get install docker-registry)"; exit 1; }
    mkdir -p "$dir/storage"
    dir=$(cd "$dir" && pwd)
    if [ -f "$dir/registry.pid" ] && kill -0 "$(cat "$dir/registry.pid")" 2>/dev/null; then
        log "already running: pid $(cat "$dir/registry.pid") port $(cat "$dir/port")"
        exit 1
    fi
    local port pid
    # A port free right now (the registry binds it a moment later; a clash fails the wait).
    # REGISTRY_PORT: a given port (a restart on the port image refs already name).
    port=${REGISTRY_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
    cat >"$dir/config.yml" <<CFG
version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
  secret: cloak-test-$$
CFG
    # Background (so $! is the registry itself); the access log (combined format) goes to
    # stdout, the registry's own log lines to stderr: both into registry.log.
    "$REGISTRY_BIN" serve "$dir/config.yml" >"$dir/registry.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$dir/registry.pid"
    echo "$port" >"$dir/port"
    for _ in $(seq 1 100); do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "docker-registry exited:"; tail -n 20 "$dir/registry.log" >&2
            rm -f "$dir/registry.pid"
            exit 1
        fi
        if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v2/")" = 200 ]; then
            log "pid $pid listening on 127.0.0.1:$port"
            exit 0
        fi
        sleep 0.1
    done
    log "no answer on 127.0.0.1:$port after 10 s"
    kill "$pid" 2>/dev/null || true
    rm -f "$dir/registry.pid"
    exit 1
}

stop() {
    [ -f "$dir/registry.pid" ] || { log "no $dir/registry.pid"; exit 0; }
    local pid
    pid=$(cat "$dir/registry.pid")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/registry.pid"
    log "stopped pid $pid"
}

case $cmd in
start) start ;;
stop) stop ;;
*) log "usage: registry.sh start|stop DIR"; exit 2 ;;
esac
