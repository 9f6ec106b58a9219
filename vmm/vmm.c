/* SPDX-License-Identifier: Apache-2.0 */
#include "vmm.h"

#include <string.h>

static const char *const profile_names[_VMM_PROFILE_MAX] = {
    [VMM_PROFILE_NONE] = "none",
    [VMM_PROFILE_SEV] = "sev",
    [VMM_PROFILE_SEV_SNP] = "sev-snp",
    [VMM_PROFILE_TDX] = "tdx",
};

const char *
vmm_profile_to_string(vmm_profile p)
{
    if (p < 0 || p >= _VMM_PROFILE_MAX)
        return NULL;
    return profile_names[p];
}

vmm_profile
vmm_profile_from_string(const char *s)
{
    for (int i = 0; s && i < _VMM_PROFILE_MAX; i++)
        if (strcmp(s, profile_names[i]) == 0)
            return (vmm_profile)i;
    return _VMM_PROFILE_INVALID;
}
