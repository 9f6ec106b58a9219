#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Re-encodes one layer of an image in an OCI layout (umoci writes gzip layers only).

    oci-layer.py LAYOUT TAG INDEX none|zstd   the layer at INDEX (0 = base; negative from the
                                              top) stored uncompressed or as zstd; the manifest
                                              (new digest) and index.json follow; the config's
                                              diff_ids stay (same uncompressed tar)
    oci-layer.py LAYOUT TAG INDEX --list      that layer's tar member names, one per line
    oci-layer.py LAYOUT TAG INDEX --info      "<digest> <mediaType>"

zstd through the zstd command line tool (python has no zstd module).
"""
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile

MEDIA = {
    "none": "application/vnd.oci.image.layer.v1.tar",
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
}


def blob_path(layout, digest):
    alg, hexd = digest.split(":", 1)
    return os.path.join(layout, "blobs", alg, hexd)


def put_blob(layout, data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with open(blob_path(layout, digest), "wb") as f:
        f.write(data)
    return digest


def decompress(media_type, data):
    if media_type.endswith("+gzip") or media_type.endswith(".gzip"):
        return gzip.decompress(data)
    if media_type.endswith("+zstd"):
        return subprocess.run(["zstd", "-d", "-c", "-q"], input=data, check=True,
                              stdout=subprocess.PIPE).stdout
    return data


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    layout, tag, index, what = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    with open(os.path.join(layout, "index.json")) as f:
        idx = json.load(f)
    desc = next((d for d in idx["manifests"]
                 if d.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag), None)
    if desc is None:
        sys.exit(f"oci-layer.py: no tag '{tag}' in {layout}")
    with open(blob_path(layout, desc["digest"]), "rb") as f:
        manifest = json.load(f)
    layer = manifest["layers"][index]
    with open(blob_path(layout, layer["digest"]), "rb") as f:
        data = f.read()
    if what == "--info":
        print(layer["digest"], layer["mediaType"])
        return
    tar = decompress(layer["mediaType"], data)
    if what == "--list":
        with tarfile.open(fileobj=io.BytesIO(tar)) as t:
            for name in t.getnames():
                print(name)
        return
    if what not in ("none", "zstd"):
        sys.exit(f"oci-layer.py: unknown encoding '{what}' (none, zstd)")
    out = tar if what == "none" else subprocess.run(
        ["zstd", "-q", "-c", "-3"], input=tar, check=True, stdout=subprocess.PIPE).stdout
    layer["digest"] = put_blob(layout, out)
    layer["size"] = len(out)
    layer["mediaType"] = MEDIA[what]
    mbytes = json.dumps(manifest, separators=(",", ":")).encode()
    desc["digest"] = put_blob(layout, mbytes)
    desc["size"] = len(mbytes)
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump(idx, f, separators=(",", ":"))


if __name__ == "__main__":
    main()
