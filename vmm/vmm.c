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

const char *
vmm_profile_to_string(vmm_profile p)
{
    return name_of(profile_names, _VMM_PROFILE_MAX, p);
}

vmm_profile
vmm_profile_from_string(const char *s)
{
    return (vmm_profile)lookup(profile_names, _VMM_PROFILE_MAX, s);
}

const char *
vmm_backend_to_string(vmm_backend b)
{
    return name_of(backend_names, _VMM_BACKEND_MAX, b);
}

vmm_backend
vmm_backend_from_string(const char *s)
{
    return (vmm_backend)lookup(backend_names, _VMM_BACKEND_MAX, s);
}

const char *
vmm_accel_to_string(vmm_accel a)
{
    return name_of(accel_names, _VMM_ACCEL_MAX, a);
}

vmm_accel
vmm_accel_from_string(const char *s)
{
    return (vmm_accel)lookup(accel_names, _VMM_ACCEL_MAX, s);
}

const char *
vmm_channel_to_string(vmm_channel c)
{
    return name_of(channel_names, _VMM_CHANNEL_MAX, c);
}

vmm_channel
vmm_channel_from_string(const char *s)
{
    return (vmm_channel)lookup(channel_names, _VMM_CHANNEL_MAX, s);
}

const char *
vmm_net_to_string(vmm_net n)
{
    return name_of(net_names, _VMM_NET_MAX, n);
}

vmm_net
vmm_net_from_string(const char *s)
{
    return (vmm_net)lookup(net_names, _VMM_NET_MAX, s);
}

const char *
vmm_digest_to_string(vmm_digest d)
{
    return name_of(digest_names, _VMM_DIGEST_MAX, d);
}

vmm_digest
vmm_digest_from_string(const char *s)
{
    return (vmm_digest)lookup(digest_names, _VMM_DIGEST_MAX, s);
}

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
