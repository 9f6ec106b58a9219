/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the host's libvirt can run (../shared/specs/confidential-vm-launch.md §2.3-2.4) and
 * crash cleanup. Version gates on the daemon's libvirt (virConnectGetLibVersion), then the
 * domain capabilities for q35/kvm, searched as text (the elements are flat and libvirt
 * formats them canonically: <sev supported='yes'>, <value>sev-snp</value>):
 *   sev      >= 4.5.0   and <sev supported='yes'>
 *   sev-snp  >= 10.5.0  and <launchSecurity supported='yes'> lists sectype sev-snp
 *   tdx      >= 11.6.0  and <tdx supported='yes'>; before 11.10.0 libvirt reported TDX even
 *                       without kernel support, so /sys/module/kvm_intel/parameters/tdx too
 *   none     whenever the connection works
 */
#include "libvirt-priv.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LV_VERSION(a, b, c) ((a) * 1000000UL + (b) * 1000UL + (c))

typedef struct lv_gate {
    unsigned long min_version;
    const char *min_text;
} lv_gate;

static const lv_gate gates[_VMM_PROFILE_MAX] = {
    [VMM_PROFILE_NONE] = {0, "0.0.0"},
    [VMM_PROFILE_SEV] = {LV_VERSION(4, 5, 0), "4.5.0"},
    [VMM_PROFILE_SEV_SNP] = {LV_VERSION(10, 5, 0), "10.5.0"},
    [VMM_PROFILE_TDX] = {LV_VERSION(11, 6, 0), "11.6.0"},
};

static bool
sysfs_yes(const char *path)
{
    _cleanup_fclose_ FILE *f = fopen(path, "re");
    int c;

    if (!f)
        return false;
    c = fgetc(f);
    return c == 'Y' || c == 'y' || c == '1';
}

/* The text between <tag and its closing </tag> (or the end of a self-closed tag), or NULL. */
static char *
element(const char *xml, const char *tag)
{
    _cleanup_free_ char *open = cc_xasprintf("<%s", tag);
    _cleanup_free_ char *close = cc_xasprintf("</%s>", tag);
    const char *s = xml, *e;

    while ((s = strstr(s, open))) {
        char next = s[strlen(open)];
        if (next == ' ' || next == '>' || next == '/')
            break;
        s++;
    }
    if (!s)
        return NULL;
    e = strchr(s, '>');
    if (e && e[-1] != '/') {
        const char *c = strstr(e, close);
        if (c)
            e = c + strlen(close) - 1;
    }
    return e ? cc_xstrndup(s, e - s + 1) : NULL;
}

/* The element's first tag as written (up to its '>'), for reasons. */
static char *
first_tag(const char *el)
{
    const char *e = strchr(el, '>');

    return cc_xstrndup(el, e ? (size_t)(e - el + 1) : strlen(el));
}

static bool
supported_yes(const char *el)
{
    _cleanup_free_ char *t = first_tag(el);

    return strstr(t, "supported='yes'") || strstr(t, "supported=\"yes\"");
}

/* Checks the domain capabilities for a TEE profile; *ret_reason set when unsupported. */
static void
check_domcaps(const char *caps, vmm_profile p, unsigned long version, char **ret_reason)
{
    static const char *const tags[_VMM_PROFILE_MAX] = {
        [VMM_PROFILE_SEV] = "sev",
        [VMM_PROFILE_SEV_SNP] = "launchSecurity",
        [VMM_PROFILE_TDX] = "tdx",
    };
    _cleanup_free_ char *el = element(caps, tags[p]);
    _cleanup_free_ char *tag = NULL;

    if (!el) {
        *ret_reason = cc_xasprintf("domain capabilities: no <%s> element", tags[p]);
        return;
    }
    tag = first_tag(el);
    if (!supported_yes(el)) {
        *ret_reason = cc_xasprintf("domain capabilities: %s", tag);
        return;
    }
    if (p == VMM_PROFILE_SEV_SNP && !strstr(el, "<value>sev-snp</value>")) {
        *ret_reason = cc_xstrdup("domain capabilities: launchSecurity sectype lacks sev-snp");
        return;
    }
    if (p == VMM_PROFILE_TDX && version < LV_VERSION(11, 10, 0) &&
        !sysfs_yes("/sys/module/kvm_intel/parameters/tdx"))
        *ret_reason = cc_xstrdup("domain capabilities report tdx, but "
                                 "/sys/module/kvm_intel/parameters/tdx is not Y");
}

static char *
version_text(unsigned long v)
{
    return cc_xasprintf("%lu.%lu.%lu", v / 1000000, v / 1000 % 1000, v % 1000);
}

/* The profile's verdict on an open connection: *ret_reason NULL when supported. */
static int
probe(virConnectPtr c, vmm_profile p, char **ret_reason, cc_error **err)
{
    _cleanup_free_ char *caps = NULL;
    _cleanup_free_ char *vt = NULL;
    unsigned long version = 0;

    if (p == VMM_PROFILE_NONE)
        return 0;
    if (virConnectGetLibVersion(c, &version) < 0)
        return vmm_lv_error(err, -EIO, "virConnectGetLibVersion");
    if (version < gates[p].min_version) {
        vt = version_text(version);
        *ret_reason = cc_xasprintf("libvirt %s < %s needed for %s", vt, gates[p].min_text,
                                   vmm_profile_to_string(p));
        return 0;
    }
    caps = virConnectGetDomainCapabilities(c, NULL, "x86_64", "q35", "kvm", 0);
    if (!caps) {
        /* No KVM domain type at all: nothing confidential can run. */
        virErrorPtr e = virGetLastError();
        *ret_reason = cc_xasprintf("domain capabilities (q35, kvm): %s",
                                   e && e->message ? e->message : "unavailable");
        return 0;
    }
    check_domcaps(caps, p, version, ret_reason);
    return 0;
}

int
vmm_lv_supports(const char *uri, vmm_profile profile, bool *ret_supported, char **ret_reason,
                cc_error **err)
{
    char *reason = NULL;
    virConnectPtr c = NULL;
    int r;

    if (profile < 0 || profile >= _VMM_PROFILE_MAX)
        return cc_error_msg(err, -EINVAL, "libvirt: unknown profile %d", (int)profile);
    r = vmm_lv_open(uri, false, &c, err); /* read-only may not read domcaps */
    if (r < 0)
        return r;
    r = probe(c, profile, &reason, err);
    virConnectClose(c);
    if (r < 0)
        return cc_error_prefix(err, r, "probe '%s' for %s", vmm_lv_uri(uri),
                               vmm_profile_to_string(profile));
    *ret_supported = !reason;
    if (ret_reason)
        *ret_reason = reason;
    else
        free(reason);
    return 0;
}

int
vmm_lv_destroy_leftover(const char *uri, const char *name, cc_error **err)
{
    virConnectPtr c = NULL;
    virDomainPtr d;
    int r = 0;

    r = vmm_lv_open(uri, false, &c, err);
    if (r < 0)
        return r;
    d = virDomainLookupByName(c, name);
    if (!d) {
        if (vmm_lv_last_code() != VIR_ERR_NO_DOMAIN)
            r = vmm_lv_error(err, -EIO, "virDomainLookupByName");
    } else {
        if (virDomainDestroy(d) < 0 && vmm_lv_last_code() != VIR_ERR_NO_DOMAIN &&
            vmm_lv_last_code() != VIR_ERR_OPERATION_INVALID)
            r = vmm_lv_error(err, -EIO, "virDomainDestroy");
        virDomainFree(d);
    }
    virConnectClose(c);
    if (r < 0)
        return cc_error_prefix(err, r, "destroy leftover '%s'", name);
    return 0;
}
