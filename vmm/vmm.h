/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vmm/: describe, start, watch and stop a confidential VM (backends qemu and libvirt;
 * profiles none, sev, sev-snp, tdx). Only the profile names exist so far.
 */
#pragma once

#include <errno.h>

typedef enum vmm_profile {
    VMM_PROFILE_NONE,
    VMM_PROFILE_SEV,
    VMM_PROFILE_SEV_SNP,
    VMM_PROFILE_TDX,
    _VMM_PROFILE_MAX,
    _VMM_PROFILE_INVALID = -EINVAL,
} vmm_profile;

/* "none", "sev", "sev-snp", "tdx"; NULL for an out-of-range value. */
const char *vmm_profile_to_string(vmm_profile p);
/* The inverse; -EINVAL for an unknown name. */
vmm_profile vmm_profile_from_string(const char *s);
