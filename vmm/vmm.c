/* SPDX-License-Identifier: Apache-2.0 */
/* Enum <-> string helpers for the names configs and logs use, and small shared helpers. */
#include "vmm.h"

#include <stdlib.h>
#include <string.h>

static const char *const profile_names[_VMM_PROFILE_MAX] = {
    [VMM_PROFILE_NONE] = "none",
    [VMM_PROFILE_SEV] = "sev",
    [VMM_PROFILE_SEV_SNP] = "sev-snp",
    [VMM_PROFILE_TDX] = "tdx",
};

static const char *const backend_names[_VMM_BACKEND_MAX] = {
    [VMM_BACKEND_AUTO] = "auto",
    [VMM_BACKEND_QEMU] = "qemu",
    [VMM_BACKEND_LIBVIRT] = "libvirt",
};

static const char *const accel_names[_VMM_ACCEL_MAX] = {
    [VMM_ACCEL_AUTO] = "auto",
    [VMM_ACCEL_KVM] = "kvm",
    [VMM_ACCEL_TCG] = "tcg",
};

static const char *const channel_names[_VMM_CHANNEL_MAX] = {
    [VMM_CHANNEL_AUTO] = "auto",
    [VMM_CHANNEL_VSOCK] = "vsock",
    [VMM_CHANNEL_SERIAL] = "serial",
};

static const char *const net_names[_VMM_NET_MAX] = {
    [VMM_NET_NONE] = "none",
    [VMM_NET_USER] = "user",
    [VMM_NET_TAP] = "tap",
};

static const char *const digest_names[_VMM_DIGEST_MAX] = {
    [VMM_DIGEST_SHA256] = "sha256",
    [VMM_DIGEST_SHA384] = "sha384",
    [VMM_DIGEST_SHA512] = "sha512",
};

static const char *
name_of(const char *const *names, int n, int v)
{
    if (v < 0 || v >= n)
        return NULL;
    return names[v];
}

/* The index of s in names, or -EINVAL (also for NULL). */
static int
lookup(const char *const *names, int n, const char *s)
{
    for (int i = 0; s && i < n; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -EINVAL;
}

/* vmm_<name>_to_string() and vmm_<name>_from_string() over <name>_names (declared in vmm.h). */
#define VMM_STRING_TABLE(name, type, max)                                                          \
    const char *vmm_##name##_to_string(type v)                                                     \
    {                                                                                              \
        return name_of(name##_names, max, v);                                                      \
    }                                                                                              \
    type vmm_##name##_from_string(const char *s)                                                   \
    {                                                                                              \
        return (type)lookup(name##_names, max, s);                                                 \
    }

VMM_STRING_TABLE(profile, vmm_profile, _VMM_PROFILE_MAX)
VMM_STRING_TABLE(backend, vmm_backend, _VMM_BACKEND_MAX)
VMM_STRING_TABLE(accel, vmm_accel, _VMM_ACCEL_MAX)
VMM_STRING_TABLE(channel, vmm_channel, _VMM_CHANNEL_MAX)
VMM_STRING_TABLE(net, vmm_net, _VMM_NET_MAX)
VMM_STRING_TABLE(digest, vmm_digest, _VMM_DIGEST_MAX)

size_t
vmm_digest_size(vmm_digest d)
{
    switch (d) {
    case VMM_DIGEST_SHA256:
        return 32;
    case VMM_DIGEST_SHA384:
        return 48;
    case VMM_DIGEST_SHA512:
        return 64;
    default:
        return 0;
    }
}

char **
vmm_strv_free(char **v)
{
    if (!v)
        return NULL;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
    return NULL;
}
