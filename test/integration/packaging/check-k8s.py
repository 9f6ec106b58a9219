#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""check-k8s.py RUNTIMECLASS_YAML DROPIN_TOML MANIFEST [DESTDIR]

The installed RuntimeClass manifest against the installed containerd drop-in:
  - exactly three objects, apiVersion node.k8s.io/v1, kind RuntimeClass, names and handlers
    cloak, cloak-snp, cloak-tdx;
  - overhead.podFixed memory and cpu are Kubernetes quantities; memory covers at least the
    VM's default_memory of the handler's config plus the shim, cpu is more than zero;
  - every handler has a runtimes.<handler> table in the drop-in (TOML, tomllib) whose
    options.ConfigPath is a config file install.sh installed (a `conf` line of MANIFEST, a
    real path: the file itself is DESTDIR + path).
Prints "ok: ..." / "FAIL: ..." lines; exit 1 on any failure. Needs python3-yaml."""
import re
import sys
import tomllib

import yaml

EXPECTED = {"cloak": "cloak", "cloak-snp": "cloak-snp", "cloak-tdx": "cloak-tdx"}
SHIM_MIB = 3
# k8s.io/apimachinery/pkg/api/resource: a signed decimal number, then a binary SI suffix,
# a decimal SI suffix or a decimal exponent.
QUANTITY = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
                      r"(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$")
SUFFIX = {None: 1, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50,
          "Ei": 2**60, "n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9,
          "T": 1e12, "P": 1e15, "E": 1e18}

failed = 0


def check(ok, what):
    global failed
    print(("ok: " if ok else "FAIL: ") + what, flush=True)
    if not ok:
        failed += 1
    return ok


def quantity(s):
    """The value of a Kubernetes quantity string, or None."""
    if not isinstance(s, str):
        return None
    m = QUANTITY.match(s)
    if not m:
        return None
    num, suf = float(m.group(1)), m.group(2)
    if suf and suf[0] in "eE":
        return num * 10 ** int(suf[1:])
    return num * SUFFIX[suf]


def main():
    rc_path, dropin_path, manifest_path = sys.argv[1:4]
    destdir = sys.argv[4] if len(sys.argv) > 4 else ""
    with open(rc_path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    check(len(docs) == 3, f"{rc_path}: 3 objects (got {len(docs)})")
    with open(dropin_path, "rb") as f:
        dropin = tomllib.load(f)
    runtimes = (dropin.get("plugins", {}).get("io.containerd.grpc.v1.cri", {})
                .get("containerd", {}).get("runtimes", {}))
    conf = {}
    with open(manifest_path) as f:
        for line in f:
            kind, sha, path = line.rstrip("\n").split(" ", 2)
            if kind == "conf":
                conf[path] = sha

    names = {}
    for d in docs:
        name = d.get("metadata", {}).get("name")
        check(d.get("apiVersion") == "node.k8s.io/v1" and d.get("kind") == "RuntimeClass",
              f"{name}: apiVersion node.k8s.io/v1, kind RuntimeClass "
              f"(got {d.get('apiVersion')}, {d.get('kind')})")
        names[name] = d.get("handler")
        pf = d.get("overhead", {}).get("podFixed", {})
        mem, cpu = quantity(pf.get("memory")), quantity(pf.get("cpu"))
        check(mem is not None and mem > 0,
              f"{name}: overhead.podFixed.memory {pf.get('memory')!r} is a quantity")
        check(cpu is not None and cpu > 0,
              f"{name}: overhead.podFixed.cpu {pf.get('cpu')!r} is a quantity")

        handler = d.get("handler")
        rt = runtimes.get(handler)
        if not check(isinstance(rt, dict),
                     f"{name}: handler {handler!r} has runtimes.{handler} in {dropin_path}"):
            continue
        check(rt.get("runtime_type") == "io.containerd.cloak.v2",
              f"{name}: runtimes.{handler}.runtime_type is io.containerd.cloak.v2")
        cfg = rt.get("options", {}).get("ConfigPath")
        if not check(cfg in conf, f"{name}: ConfigPath {cfg!r} is a config install.sh installed"):
            continue
        with open(destdir + cfg, "rb") as f:
            vm = tomllib.load(f)
        vm_mib = vm.get("hypervisor", {}).get("default_memory", 2048)
        check(mem is not None and mem >= (vm_mib + SHIM_MIB) * 2**20,
              f"{name}: overhead memory {pf.get('memory')} covers default_memory {vm_mib} MiB "
              f"of {cfg} + the shim")
    check(names == EXPECTED, f"names and handlers are {EXPECTED} (got {names})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
