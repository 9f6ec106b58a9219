#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Test fixture for the libvirt integration tests (no systemd on CI, and a PID 1 that may not
# reap: libvirtd runs below reaper.py):
#   daemons.sh start STATEFILE   start virtlogd and libvirtd when they do not run; record the
#                                PIDs of the ones started here in STATEFILE ("name pid" lines)
#   daemons.sh stop STATEFILE    stop only what STATEFILE lists (by PID), then remove it
set -euo pipefail
cmd=${1:?usage: daemons.sh start|stop STATEFILE}
state=${2:?usage: daemons.sh start|stop STATEFILE}

running() { # name: is a process of that exact name running?
    pgrep -x "$1" >/dev/null 2>&1
}

here=$(cd "$(dirname "$0")" && pwd)

start_one() { # name pidfile
    local name=$1 pidfile=$2 i
    if running "$name"; then
        echo "$name: already running, leaving it alone"
        return 0
    fi
    rm -f "$pidfile"
    if [ "$name" = libvirtd ]; then
        # Below a reaping subreaper (reaper.py explains why); it leaves when libvirtd does.
        setsid python3 "$here/reaper.py" /usr/sbin/libvirtd </dev/null >/dev/null 2>&1 &
    else
        "/usr/sbin/$name" -d
    fi
    for i in $(seq 1 100); do
        if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
            echo "$name $(cat "$pidfile")" >>"$state"
            echo "$name: started, pid $(cat "$pidfile")"
            return 0
        fi
        sleep 0.1
    done
    echo "$name: did not start (no $pidfile)" >&2
    return 1
}

case $cmd in
start)
    mkdir -p "$(dirname "$state")"
    : >>"$state"
    start_one virtlogd /run/virtlogd.pid
    start_one libvirtd /run/libvirtd.pid
    for i in $(seq 1 60); do
        if virsh -c qemu:///system version >/dev/null 2>&1; then
            echo "libvirtd: answering on qemu:///system"
            exit 0
        fi
        sleep 0.5
    done
    echo "libvirtd: qemu:///system does not answer" >&2
    virsh -c qemu:///system version >&2 || true
    exit 1
    ;;
stop)
    [ -f "$state" ] || { echo "nothing was started here"; exit 0; }
    # Reverse order: libvirtd first (it talks to virtlogd).
    tac "$state" | while read -r name pid; do
        [ -n "$pid" ] || continue
        comm=$(cat "/proc/$pid/comm" 2>/dev/null || true)
        if [ "$comm" != "$name" ]; then
            echo "$name: pid $pid is gone"
            continue
        fi
        kill -TERM "$pid"
        for i in $(seq 1 150); do
            [ -d "/proc/$pid" ] || break
            sleep 0.1
        done
        if [ -d "/proc/$pid" ]; then
            echo "$name: pid $pid ignored SIGTERM, SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
        echo "$name: stopped pid $pid"
    done
    rm -f "$state"
    ;;
*)
    echo "usage: daemons.sh start|stop STATEFILE" >&2
    exit 2
    ;;
esac
