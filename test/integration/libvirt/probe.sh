#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# libvirt-supports: probe.sh PROBE — what vmm_libvirt_backend.supports() says on this box
# (libvirt 9.0, no KVM, no TEE): none yes; sev no (domcaps); sev-snp and tdx no (version gates).
# Also: libvirt is mapped only after the plugin is loaded, and a missing plugin is a clear error.
set -euo pipefail
probe=${1:?usage: probe.sh PROBE}
out=$("$probe" none sev sev-snp tdx)
echo "$out"
fail() { echo "FAIL: $*" >&2; exit 1; }
line() { printf '%s\n' "$out" | grep "^profile=$1 " || fail "no line for $1"; }

printf '%s\n' "$out" | grep -qx 'maps before=no after=yes' || fail "libvirt mapped before the plugin"
line none | grep -q 'supported=yes' || fail "none must be supported"
line sev | grep -q 'supported=no' || fail "sev must not be supported"
line sev | grep -q "<sev supported='no'" || fail "sev: reason should quote the domcaps"
vout=$(virsh -c qemu:///system version) # captured first: awk's early exit could SIGPIPE virsh
ver=$(printf '%s\n' "$vout" | awk '/Using library/ {v = $NF} END {print v}')
case $ver in
9.*|10.[0-4].*)
    line sev-snp | grep -q "supported=no reason=\"libvirt $ver < 10.5.0 needed for sev-snp\"" ||
        fail "sev-snp: expected the version gate"
    line tdx | grep -q "supported=no reason=\"libvirt $ver < 11.6.0 needed for tdx\"" ||
        fail "tdx: expected the version gate"
    ;;
*)
    line sev-snp | grep -q 'supported=no' || fail "sev-snp must not be supported here"
    line tdx | grep -q 'supported=no' || fail "tdx must not be supported here"
    ;;
esac

err=$(CLOAK_VMM_LIBVIRT_PLUGIN=/nonexistent/cloak-vmm-libvirt.so "$probe" none 2>&1) &&
    fail "a missing plugin must fail"
echo "$err"
printf '%s\n' "$err" | grep -q "tried '/nonexistent/cloak-vmm-libvirt.so' (not found)" ||
    fail "the error must name the place tried"
echo PASS
