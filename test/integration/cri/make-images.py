#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Pushes the CRI test images to a plain-HTTP registry (registry.sh start DIR).

    make-images.py --pause CLOAK_PAUSE --prog CTR_PROG REGISTRY

Reuses the image builder of ../pull/make-images.py (tarfile + the registry HTTP API):
  cloak/pause:1  /pause (the static cloak-pause), Entrypoint ["/pause"]: the sandbox image
  test/prog:v1   /bin/prog (the static ctr-prog), /etc/hello "hello from the image",
                 Entrypoint ["/bin/prog"], Cmd ["sleep"]
Prints nothing; exits non-zero when a push fails.
"""
import argparse
import importlib.util
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location(
    "make_images", os.path.join(HERE, "..", "pull", "make-images.py"))
mi = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mi)


def config(layers, entrypoint, cmd):
    cfg = {
        "created": "2023-11-14T22:13:20Z",
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": entrypoint, "Cmd": cmd, "Env": ["PATH=/bin"],
                   "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [la.diff_id for la in layers]},
        "history": [{"created": "2023-11-14T22:13:20Z", "created_by": "cri/make-images.py"}
                    for _ in layers],
    }
    return json.dumps(cfg, sort_keys=True).encode()


def push(reg, repo, tag, layers, entrypoint, cmd):
    cfg = config(layers, entrypoint, cmd)
    for la in layers:
        reg.push_blob(repo, la.blob)
    reg.push_blob(repo, cfg)
    return reg.push_manifest(repo, tag, mi.manifest(cfg, layers), mi.MT_MANIFEST)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--pause", required=True)
    ap.add_argument("--prog", required=True)
    ap.add_argument("registry", help="host:port")
    args = ap.parse_args()
    with open(args.pause, "rb") as fh:
        pause = fh.read()
    with open(args.prog, "rb") as fh:
        prog = fh.read()
    d, f = mi.d, mi.f
    mounts = [d("proc", 0o555), d("dev"), d("sys", 0o555), d("tmp", 0o1777), d("etc")]
    reg = mi.Registry(args.registry)
    push(reg, "cloak/pause", "1", [mi.Layer([f("pause", pause, 0o755)] + mounts, "gzip")],
         ["/pause"], None)
    push(reg, "test/prog", "v1",
         [mi.Layer([d("bin"), f("bin/prog", prog, 0o755)] + mounts +
                   [f("etc/hello", "hello from the image\n")], "gzip")],
         ["/bin/prog"], ["sleep"])


if __name__ == "__main__":
    main()
