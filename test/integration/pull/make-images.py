#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Builds the image-pull test images by hand and pushes them to a registry (HTTP API).

    make-images.py --prog CTR_PROG [--verify] DIR REGISTRY

REGISTRY is host:port of a plain-HTTP registry whose filesystem storage is DIR/storage
(registry.sh start DIR). No umoci, skopeo or docker: tarfile, gzip, the zstd CLI and urllib.

Images (all OCI media types, linux/amd64):
  test/multi:v1     L1 gzip  /bin/prog (ctr-prog), /etc/a.txt "layer1-a", /etc/b.txt
                             "layer1-b", /data/x/{keep,gone}.txt, /data/opq/old.txt, and the
                             empty mount points /proc /dev /sys /tmp
                    L2 zstd  /etc/a.txt "layer2-a", /etc/.wh.b.txt, /data/x/.wh.gone.txt,
                             /data/x/new.txt
                    L3 tar   /data/opq/.wh..wh..opq, /data/opq/fresh.txt
                    L4 gzip  /etc/marker: a random marker (also in DIR/marker)
  test/multi:index  an OCI index: that manifest for linux/amd64, and a linux/arm64 manifest
                    (a real one, the registry checks index entries exist, but with nothing
                    runnable: one layer holding /etc/arch)
  test/tampered:v1  like multi (its own L1 and marker, so no blob is shared with multi but
                    L2 and L3); after the push a byte in the middle of its L1 (gzip) blob is
                    flipped on the registry's disk
  wrong digest      a manifest revision link in test/multi for the sha256 of other bytes that
                    points at multi's manifest: the registry serves multi's manifest for a
                    digest it does not have (the agent must notice)
  missing           test/multi@<sha256 of random bytes>: 404 MANIFEST_UNKNOWN

DIR/images.json: {"registry": ..., "images": {NAME: {"ref", "manifest_digest", "layers",
"diff_ids", "marker", "tampered_layer"}}} for NAME in multi, index, tampered, wrong_digest,
missing. --verify fetches everything back and checks digests, the zstd layer and the tamper.
"""
import argparse
import gzip
import hashlib
import io
import json
import os
import secrets
import subprocess
import sys
import tarfile
import urllib.error
import urllib.request

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_TAR = "application/vnd.oci.image.layer.v1.tar"
MT_GZIP = MT_TAR + "+gzip"
MT_ZSTD = MT_TAR + "+zstd"

MTIME = 1700000000  # fixed: identical inputs give identical blobs


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


# --- layers ---------------------------------------------------------------------------------

def make_tar(entries):
    """entries: (path, kind, content/mode): kind "dir", "file" (bytes, mode)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, kind, data, mode in entries:
            info = tarfile.TarInfo(path)
            info.mtime = MTIME
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                info.mode = mode
                tar.addfile(info)
            else:
                info.type = tarfile.REGTYPE
                info.mode = mode
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def d(path, mode=0o755):
    return (path, "dir", None, mode)


def f(path, data, mode=0o644):
    return (path, "file", data if isinstance(data, bytes) else data.encode(), mode)


def compress(tar, kind):
    if kind == "gzip":
        out = io.BytesIO()
        with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as g:
            g.write(tar)
        return out.getvalue(), MT_GZIP
    if kind == "zstd":
        z = subprocess.run(["zstd", "-q", "-c"], input=tar, stdout=subprocess.PIPE, check=True)
        return z.stdout, MT_ZSTD
    return tar, MT_TAR


class Layer:
    def __init__(self, entries, kind):
        self.tar = make_tar(entries)
        self.blob, self.media_type = compress(self.tar, kind)
        self.kind = kind
        self.digest = sha256(self.blob)
        self.diff_id = sha256(self.tar)

    def descriptor(self):
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.blob)}


def layers_multi(prog, marker, extra=None):
    l1 = [d("bin"), f("bin/prog", prog, 0o755), d("etc"), f("etc/a.txt", "layer1-a"),
          f("etc/b.txt", "layer1-b"), d("data"), d("data/x"), f("data/x/keep.txt", "keep"),
          f("data/x/gone.txt", "gone"), d("data/opq"), f("data/opq/old.txt", "old"),
          d("proc", 0o555), d("dev"), d("sys", 0o555), d("tmp", 0o1777)]
    if extra:
        l1.append(f("etc/image", extra))
    l2 = [d("etc"), f("etc/a.txt", "layer2-a"), f("etc/.wh.b.txt", b""), d("data"),
          d("data/x"), f("data/x/.wh.gone.txt", b""), f("data/x/new.txt", "new")]
    l3 = [d("data"), d("data/opq"), f("data/opq/.wh..wh..opq", b""),
          f("data/opq/fresh.txt", "fresh")]
    l4 = [d("etc"), f("etc/marker", marker)]
    return [Layer(l1, "gzip"), Layer(l2, "zstd"), Layer(l3, "plain"), Layer(l4, "gzip")]


def image_config(layers, arch="amd64"):
    cfg = {
        "created": "2023-11-14T22:13:20Z",
        "architecture": arch,
        "os": "linux",
        "config": {"Cmd": ["/bin/prog", "sleep"], "Env": ["PATH=/bin"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [la.diff_id for la in layers]},
        "history": [{"created": "2023-11-14T22:13:20Z", "created_by": "make-images.py"}
                    for _ in layers],
    }
    return json.dumps(cfg, sort_keys=True).encode()


def manifest(config_blob, layers):
    m = {
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": {"mediaType": MT_CONFIG, "digest": sha256(config_blob),
                   "size": len(config_blob)},
        "layers": [la.descriptor() for la in layers],
    }
    return json.dumps(m, indent=2).encode()


# --- the registry API -------------------------------------------------------------------------

class Registry:
    def __init__(self, hostport):
        self.base = "http://" + hostport

    def request(self, method, path, data=None, headers=None, want=(200,)):
        url = path if path.startswith("http") else self.base + path
        req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                body = resp.read()
                status, hdrs = resp.status, resp.headers
        except urllib.error.HTTPError as e:
            body, status, hdrs = e.read(), e.code, e.headers
        if status not in want:
            raise RuntimeError(f"{method} {url}: HTTP {status}: {body[:300]!r}")
        return status, hdrs, body

    def push_blob(self, repo, blob):
        digest = sha256(blob)
        status, _, _ = self.request("HEAD", f"/v2/{repo}/blobs/{digest}", want=(200, 404))
        if status == 200:
            return digest
        _, hdrs, _ = self.request("POST", f"/v2/{repo}/blobs/uploads/", data=b"", want=(202,))
        loc = hdrs["Location"]
        if not loc.startswith("http"):
            loc = self.base + loc
        loc += ("&" if "?" in loc else "?") + "digest=" + digest
        self.request("PUT", loc, data=blob, want=(201,),
                     headers={"Content-Type": "application/octet-stream",
                              "Content-Length": str(len(blob))})
        return digest

    def push_manifest(self, repo, reference, body, media_type):
        _, hdrs, _ = self.request("PUT", f"/v2/{repo}/manifests/{reference}", data=body,
                                  want=(201,), headers={"Content-Type": media_type})
        digest = sha256(body)
        if hdrs.get("Docker-Content-Digest") not in (None, digest):
            raise RuntimeError(f"{repo}:{reference}: registry says digest "
                               f"{hdrs['Docker-Content-Digest']}, want {digest}")
        return digest

    def get_manifest(self, repo, reference):
        accept = ", ".join([MT_MANIFEST, MT_INDEX])
        return self.request("GET", f"/v2/{repo}/manifests/{reference}",
                            headers={"Accept": accept}, want=(200, 404))

    def get_blob(self, repo, digest):
        return self.request("GET", f"/v2/{repo}/blobs/{digest}")[2]


def push_image(reg, repo, tag, layers, arch="amd64"):
    cfg = image_config(layers, arch)
    for la in layers:
        reg.push_blob(repo, la.blob)
    reg.push_blob(repo, cfg)
    body = manifest(cfg, layers)
    return reg.push_manifest(repo, tag or sha256(body), body, MT_MANIFEST), len(body)


def blob_path(storage, digest):
    hexd = digest.split(":", 1)[1]
    return os.path.join(storage, "docker/registry/v2/blobs/sha256", hexd[:2], hexd, "data")


def tamper(storage, layer):
    """Overwrites layer's blob on the registry's disk with a byte in its middle flipped: from
    the good bytes, so that a second run against the same storage does not flip it back."""
    data = bytearray(layer.blob)
    mid = len(data) // 2
    data[mid] ^= 0x5A
    with open(blob_path(storage, layer.digest), "r+b") as fh:
        fh.write(data)
    return mid


def link_wrong_digest(storage, repo, real_digest):
    """A revision link for the digest of other bytes that names the real manifest's blob."""
    wrong = sha256(b"not the manifest of " + repo.encode() + secrets.token_bytes(8))
    link_dir = os.path.join(storage, "docker/registry/v2/repositories", repo,
                            "_manifests/revisions/sha256", wrong.split(":", 1)[1])
    os.makedirs(link_dir, exist_ok=True)
    with open(os.path.join(link_dir, "link"), "w") as fh:
        fh.write(real_digest)
    return wrong


# --- verification -----------------------------------------------------------------------------

def verify(reg, images, storage):
    problems = []

    def check(cond, what):
        print(("ok " if cond else "FAIL ") + what)
        if not cond:
            problems.append(what)

    multi = images["multi"]
    for name in ("multi", "index", "tampered"):
        im = images[name]
        repo = im["repository"]
        status, hdrs, body = reg.get_manifest(repo, im["manifest_digest"])
        check(status == 200 and sha256(body) == im["manifest_digest"],
              f"{name}: manifest {im['manifest_digest']} served with that digest")
        status, _, tbody = reg.get_manifest(repo, im["tag"])
        check(status == 200 and sha256(tbody) == im["manifest_digest"],
              f"{name}: tag {im['tag']} -> the same manifest")
        if name == "index":
            idx = json.loads(body)
            plats = [(m["platform"]["os"], m["platform"]["architecture"], m["digest"])
                     for m in idx["manifests"]]
            check(("linux", "amd64", multi["manifest_digest"]) in plats,
                  f"index: linux/amd64 -> {multi['manifest_digest']} (platforms {plats})")
            continue
        man = json.loads(body)
        cfg = reg.get_blob(repo, man["config"]["digest"])
        check(sha256(cfg) == man["config"]["digest"], f"{name}: config blob digest")
        diff_ids = json.loads(cfg)["rootfs"]["diff_ids"]
        for i, desc in enumerate(man["layers"]):
            blob = reg.get_blob(repo, desc["digest"])
            got = sha256(blob)
            if name == "tampered" and desc["digest"] == im["tampered_layer"]:
                check(got != desc["digest"] and len(blob) == desc["size"],
                      f"{name}: L{i + 1} {desc['digest'][:19]}... served tampered "
                      f"(sha256 {got[:19]}..., same size)")
                continue
            check(got == desc["digest"] and len(blob) == desc["size"],
                  f"{name}: L{i + 1} blob digest and size ({desc['mediaType'].rsplit('.', 1)[1]})")
            if desc["mediaType"] == MT_GZIP:
                tar = gzip.decompress(blob)
            elif desc["mediaType"] == MT_ZSTD:
                tar = subprocess.run(["zstd", "-q", "-d", "-c"], input=blob,
                                     stdout=subprocess.PIPE, check=True).stdout
            else:
                tar = blob
            check(sha256(tar) == diff_ids[i], f"{name}: L{i + 1} diff_id")
            names = tarfile.open(fileobj=io.BytesIO(tar)).getnames()
            print(f"#   L{i + 1}: {' '.join(names)}")

    wrong = images["wrong_digest"]
    status, _, body = reg.get_manifest(wrong["repository"], wrong["manifest_digest"])
    check(status == 200 and sha256(body) != wrong["manifest_digest"],
          f"wrong_digest: {wrong['manifest_digest'][:19]}... serves a manifest of digest "
          f"{sha256(body)[:19]}...")
    miss = images["missing"]
    status, _, body = reg.get_manifest(miss["repository"], miss["manifest_digest"])
    check(status == 404 and b"MANIFEST_UNKNOWN" in body, f"missing: 404 {body[:60]!r}")
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--prog", required=True, help="the static ctr-prog binary")
    ap.add_argument("--verify", action="store_true", help="fetch everything back and check it")
    ap.add_argument("dir")
    ap.add_argument("registry", help="host:port")
    args = ap.parse_args()

    storage = os.path.join(args.dir, "storage")
    with open(args.prog, "rb") as fh:
        prog = fh.read()
    reg = Registry(args.registry)
    images = {}

    def entry(repo, tag, digest, layers, marker=None, **extra):
        e = {"ref": f"{args.registry}/{repo}:{tag}", "repository": repo, "tag": tag,
             "manifest_digest": digest, "layers": [la.digest for la in layers],
             "diff_ids": [la.diff_id for la in layers], "marker": marker}
        e.update(extra)
        return e

    # test/multi:v1
    marker = "marker-" + secrets.token_hex(12)
    layers = layers_multi(prog, marker)
    digest, size = push_image(reg, "test/multi", "v1", layers)
    images["multi"] = entry("test/multi", "v1", digest, layers, marker)
    with open(os.path.join(args.dir, "marker"), "w") as fh:
        fh.write(marker + "\n")

    # test/multi:index (the arm64 entry must exist: the registry checks index entries)
    arm = [Layer([d("etc"), f("etc/arch", "arm64, nothing to run here")], "gzip")]
    arm_digest, arm_size = push_image(reg, "test/multi", None, arm, arch="arm64")
    index = {
        "schemaVersion": 2,
        "mediaType": MT_INDEX,
        "manifests": [
            {"mediaType": MT_MANIFEST, "digest": digest, "size": size,
             "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": MT_MANIFEST, "digest": arm_digest, "size": arm_size,
             "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
        ],
    }
    index_body = json.dumps(index, indent=2).encode()
    index_digest = reg.push_manifest("test/multi", "index", index_body, MT_INDEX)
    images["index"] = entry("test/multi", "index", index_digest, layers, marker,
                            amd64_manifest=digest, arm64_manifest=arm_digest)

    # test/tampered:v1
    t_marker = "tampered-" + secrets.token_hex(12)
    t_layers = layers_multi(prog, t_marker, extra="tampered")
    t_digest, _ = push_image(reg, "test/tampered", "v1", t_layers)
    shared = {la.digest for la in layers}
    victim = t_layers[0]
    assert victim.kind == "gzip" and victim.digest not in shared
    offset = tamper(storage, victim)
    images["tampered"] = entry("test/tampered", "v1", t_digest, t_layers, t_marker,
                               tampered_layer=victim.digest, tampered_offset=offset)

    # the registry answers a digest it does not have with multi's manifest
    wrong = link_wrong_digest(storage, "test/multi", digest)
    images["wrong_digest"] = entry("test/multi", "v1", wrong, [], None, served_digest=digest)

    # a manifest that does not exist
    images["missing"] = entry("test/multi", "gone", sha256(secrets.token_bytes(32)), [])

    doc = {"registry": args.registry, "images": images}
    with open(os.path.join(args.dir, "images.json"), "w") as fh:
        json.dump(doc, fh, indent=2)
        fh.write("\n")
    for name, im in images.items():
        print(f"# {name}: {im['ref']}@{im['manifest_digest']}")
        for i, la in enumerate(im["layers"]):
            print(f"#   L{i + 1} {la}")
    print(f"# tampered: {victim.digest} byte {offset} of {len(victim.blob)} flipped")

    if args.verify:
        problems = verify(reg, images, storage)
        if problems:
            print(f"{len(problems)} verification failures", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
