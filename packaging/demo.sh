#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The README's first command. Its goal: install, build, build the guest image, start an
# embedded environment (private containerd, cloak-snapshotter, a local registry) and run a
# confidential pod through CRI, printing its output and where the time went.
#
# Today it installs what is missing, builds everything into build/, and shows what this host
# can run (cloakctl check). The pod demo arrives with the end-to-end issue.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$SECONDS
packaging/install-deps.sh
cmake --preset default >/dev/null
cmake --build build -j"$(nproc)"
echo
echo "built in $((SECONDS - t0))s:"
for b in build/shim/containerd-shim-cloak-v2 build/snapshotter/cloak-snapshotter \
         build/guest/cloak-agent build/cli/cloakctl; do
    printf '  %-40s %s\n' "$b" "$("$b" --version)"
done
echo
echo "what this host can run (cloakctl check):"
build/cli/cloakctl check --config configs/cloak-dev.toml || true
echo
echo "cloak's shared library, protocols (ttrpc, containerd/CRI/Kata protos) and VM launcher"
echo "(vmm/: QEMU and libvirt, none/SEV/SEV-SNP/TDX) are done and tested; the shim, agent and"
echo "snapshotter are still placeholders, so no confidential pod runs yet. See README.md, 'Status'."
