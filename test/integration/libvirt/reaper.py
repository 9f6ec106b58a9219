#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""reaper.py PROGRAM [ARGS...]: run PROGRAM as a child of a child subreaper that reaps.

libvirtd daemonizes every QEMU it starts (capability probes and domains), so they are
orphaned. In a container whose PID 1 never reaps, a dead QEMU stays a zombie, kill(pid, 0)
keeps succeeding, and libvirtd's virProcessKillPainfully waits ~15 s for each one (and counts
the capability probe as failed, so it probes again on the next lookup). Running libvirtd
below this subreaper gives those QEMUs a parent that reaps them, as systemd would.
SIGTERM/SIGINT are forwarded to PROGRAM; exits once no child is left.
"""
import ctypes
import os
import signal
import sys

PR_SET_CHILD_SUBREAPER = 36


def main():
    if len(sys.argv) < 2:
        print("usage: reaper.py PROGRAM [ARGS...]", file=sys.stderr)
        return 2
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print("reaper.py: prctl: %s" % os.strerror(ctypes.get_errno()), file=sys.stderr)
        return 1
    child = os.fork()
    if child == 0:
        os.execv(sys.argv[1], sys.argv[1:])

    def forward(signum, frame):
        try:
            os.kill(child, signum)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    status = 0
    while True:
        try:
            pid, st = os.wait()
        except ChildProcessError:
            return status
        if pid == child:
            status = os.waitstatus_to_exitcode(st)


if __name__ == "__main__":
    sys.exit(main())
