/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Which profiles this host can run, and why not: what `cloakctl check` prints. Reads /dev,
 * /sys/module/kvm_{intel,amd}/parameters, firmware files, runs `<qemu> -version` and
 * `<qemu> -machine none -object help`, and asks libvirt (through the plugin) when the
 * config's backend may use it. Blocks for those (seconds at most).
 */
#pragma once

#include "vmm.h"

typedef struct vmm_check_item {
    bool runs;      /* this host can run the profile (through the qemu backend at least) */
    char *detail;   /* how ("KVM", "TCG (no /dev/kvm)") or why not ("; "-separated reasons) */
    char *libvirt;  /* libvirt's own verdict, or NULL when libvirt was not asked */
} vmm_check_item;

typedef struct vmm_check_report {
    char *qemu;          /* "QEMU 7.2.22 (/usr/bin/qemu-system-x86_64)" or why it did not run */
    bool has_kvm;        /* /dev/kvm present and able to run guests (vmm_kvm_usable) */
    char *kvm_unusable;  /* why not, when has_kvm is false */
    bool has_vhost_vsock;
    char *libvirt;       /* "libvirt at qemu:///system: ..." or NULL when not asked */
    vmm_profile configured;
    vmm_check_item items[_VMM_PROFILE_MAX];
} vmm_check_report;

/*
 * root: "/" on a real host; tests point it at a fake tree (dev/, sys/, firmware paths are
 * looked up under it). ask_libvirt: also ask libvirt (backend auto or libvirt).
 */
int vmm_check_host(const vmm_config *c, const char *root, bool ask_libvirt,
                   vmm_check_report **ret, cc_error **err);
vmm_check_report *vmm_check_report_free(vmm_check_report *r);
CC_DEFINE_CLEANUP(vmm_check_report, vmm_check_report_free)

/*
 * Whether KVM at dev (normally "/dev/kvm") can really run guests: its CPUID offers the
 * x86-64-v2 baseline and a throwaway VM runs to HLT within 3 s (in a child process).
 * When not, *ret_reason (may be NULL; owned by the caller) says why.
 */
bool vmm_kvm_usable(const char *dev, char **ret_reason);
