/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vmm_vm_new: one launch of a config. Everything here is a pure function of the config and
 * the params (no host probing, no randomness), so dry runs and golden files are stable.
 *
 * The kernel command line is the guest agent's contract:
 *   console=ttyS0 quiet panic=-1     console on the first serial port (our console.log);
 *                                    a panic exits the VM at once (QEMU runs -no-reboot)
 *   cloak.agent=vsock                the agent listens on vsock port VMM_AGENT_VSOCK_PORT
 *   cloak.agent=serial               the agent serves /dev/virtio-ports/VMM_AGENT_SERIAL_NAME
 *   cloak.net=10.0.2.15/24,10.0.2.2  with net=user: the guest address/prefix and gateway the
 *                                    agent configures on the first virtio-net interface
 * followed by the config's kernel_params (which may add cloak.log=debug|info|warning|error,
 * the agent's log level; guest/cmdline.c parses all cloak.* keys).
 */
#include "digest.h"
#include "util.h"
#include "vmm.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VMM_STATE_DIR_MAX 96 /* leaves room for "/agent.sock" in a 108-byte sun_path */

/* Name-based UUIDs (RFC 4122 version 5, SHA-1) in cloak's own namespace. */
static const uint8_t cloak_uuid_namespace[16] = {
    0x6c, 0x0a, 0x6b, 0x43, 0x2f, 0x1e, 0x4d, 0x55, 0x9a, 0x61, 0x3c, 0x6f, 0x61, 0x6b, 0x76, 0x6d,
};

static bool
id_is_valid(const char *id)
{
    size_t n = id ? strlen(id) : 0;

    if (n == 0 || n > 128)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-')))
            return false;
    }
    return true;
}

/* Refuses what would break QEMU option syntax (','), JSON/XML quoting or a unix socket path. */
static int
check_state_dir(const char *dir, cc_error **err)
{
    if (!dir || dir[0] != '/')
        return cc_error_msg(err, -EINVAL, "state_dir '%s': must be an absolute path",
                            dir ? dir : "(null)");
    if (strlen(dir) > VMM_STATE_DIR_MAX)
        return cc_error_msg(err, -ENAMETOOLONG,
                            "state_dir '%s': longer than %d bytes (unix socket paths are short)",
                            dir, VMM_STATE_DIR_MAX);
    if (strpbrk(dir, ",\n\r\"'\\"))
        return cc_error_msg(err, -EINVAL,
                            "state_dir '%s': must not contain commas, quotes, backslashes or "
                            "newlines (QEMU option syntax)",
                            dir);
    return 0;
}

/* A Linux interface name: 1..15 bytes (IFNAMSIZ - 1), no '/', ':', whitespace; not "." or "..". */
static bool
ifname_is_valid(const char *n)
{
    size_t len = strlen(n);

    if (len == 0 || len > 15 || cc_streq(n, ".") || cc_streq(n, ".."))
        return false;
    for (size_t i = 0; i < len; i++)
        if (n[i] <= ' ' || n[i] == '/' || n[i] == ':' || n[i] == 0x7f)
            return false;
    return true;
}

/* net=tap facts: the netns may be unset here (dry runs); the qemu backend requires it. */
static int
fill_pod_net(vmm_vm *vm, const vmm_vm_params *p, cc_error **err)
{
    const char *ifname = p->pod_ifname ? p->pod_ifname : "eth0";

    if (p->netns_path) {
        if (p->netns_path[0] != '/')
            return cc_error_msg(err, -EINVAL, "netns_path '%s': must be an absolute path",
                                p->netns_path);
        vm->netns_path = cc_xstrdup(p->netns_path);
    }
    if (!ifname_is_valid(ifname))
        return cc_error_msg(err, -EINVAL,
                            "pod_ifname '%s': not an interface name (1-15 bytes, no '/', ':' "
                            "or whitespace)",
                            ifname);
    vm->pod_ifname = cc_xstrdup(ifname);
    return 0;
}

static bool
uuid_is_valid(const char *u)
{
    if (strlen(u) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? u[i] != '-' : !strchr("0123456789abcdefABCDEF", u[i]))
            return false;
    }
    return true;
}

/* RFC 4122 §4.3: SHA-1 of namespace || name, with the version and variant bits set. */
static char *
uuid_from_name(const char *name)
{
    uint8_t md[CC_SHA1_SIZE];
    cc_sha1_ctx ctx;

    cc_sha1_init(&ctx);
    cc_sha1_update(&ctx, cloak_uuid_namespace, sizeof(cloak_uuid_namespace));
    cc_sha1_update(&ctx, name, strlen(name));
    cc_sha1_final(&ctx, md);
    md[6] = (md[6] & 0x0f) | 0x50; /* version 5 */
    md[8] = (md[8] & 0x3f) | 0x80; /* RFC 4122 variant */
    return cc_xasprintf("%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                        md[0], md[1], md[2], md[3], md[4], md[5], md[6], md[7], md[8], md[9],
                        md[10], md[11], md[12], md[13], md[14], md[15]);
}

static int
resolve_accel(const vmm_config *c, const vmm_host *h, vmm_accel *ret, cc_error **err)
{
    bool tee = c->profile != VMM_PROFILE_NONE;
    vmm_accel a = c->accel;

    if (a == VMM_ACCEL_AUTO)
        a = tee || h->has_kvm ? VMM_ACCEL_KVM : VMM_ACCEL_TCG;
    if (a != VMM_ACCEL_KVM && a != VMM_ACCEL_TCG)
        return cc_error_msg(err, -EINVAL, "accel: invalid value %d", (int)a);
    if (tee && a == VMM_ACCEL_TCG)
        return cc_error_msg(err, -EINVAL,
                            "accel 'tcg' cannot run profile '%s': confidential guests need KVM",
                            vmm_profile_to_string(c->profile));
    *ret = a;
    return 0;
}

static int
resolve_channel(const vmm_config *c, const vmm_vm_params *p, vmm_vm *vm, cc_error **err)
{
    vmm_channel ch = c->channel;

    if (ch == VMM_CHANNEL_AUTO)
        ch = p->host.has_vhost_vsock ? VMM_CHANNEL_VSOCK : VMM_CHANNEL_SERIAL;
    if (ch != VMM_CHANNEL_VSOCK && ch != VMM_CHANNEL_SERIAL)
        return cc_error_msg(err, -EINVAL, "channel: invalid value %d", (int)ch);
    vm->channel = ch;
    vm->vsock_cid = p->vsock_cid ? p->vsock_cid : 3;
    if (vm->vsock_cid < 3)
        return cc_error_msg(err, -EINVAL, "vsock_cid %u: must be >= 3 (0-2 are reserved)",
                            vm->vsock_cid);
    return 0;
}

static char *
build_cmdline(const vmm_config *c, const vmm_vm *vm)
{
    return cc_xasprintf("console=ttyS0 quiet panic=-1 cloak.agent=%s%s%s%s",
                        vm->channel == VMM_CHANNEL_VSOCK ? "vsock" : "serial",
                        c->net == VMM_NET_USER ? " cloak.net=10.0.2.15/24,10.0.2.2" : "",
                        c->kernel_params && c->kernel_params[0] ? " " : "",
                        c->kernel_params ? c->kernel_params : "");
}

static int
vm_fill(vmm_vm *vm, const vmm_config *c, const vmm_vm_params *p, cc_error **err)
{
    int r;

    if (!id_is_valid(p->id))
        return cc_error_msg(err, -EINVAL, "id '%s': expected [A-Za-z0-9][A-Za-z0-9_.-]{0,127}",
                            p->id ? p->id : "(null)");
    vm->id = cc_xstrdup(p->id);
    r = check_state_dir(p->state_dir, err);
    if (r < 0)
        return r;
    vm->state_dir = cc_xstrdup(p->state_dir);
    if (p->uuid) {
        if (!uuid_is_valid(p->uuid))
            return cc_error_msg(err, -EINVAL, "uuid '%s': not an RFC 4122 UUID", p->uuid);
        vm->uuid = cc_xstrdup(p->uuid);
    } else {
        vm->uuid = uuid_from_name(p->id);
    }
    r = fill_pod_net(vm, p, err);
    if (r < 0)
        return r;
    r = resolve_accel(c, &p->host, &vm->accel, err);
    if (r < 0)
        return r;
    r = resolve_channel(c, p, vm, err);
    if (r < 0)
        return r;
    if (c->vcpus == 0 || c->memory_mib == 0)
        return cc_error_msg(err, -EINVAL, "vcpus %u, memory %u MiB: both must be positive",
                            c->vcpus, c->memory_mib);
    vm->vcpus = c->vcpus;
    vm->memory_mib = c->memory_mib;
    vm->kernel_cmdline = build_cmdline(c, vm);
    if (p->initdata) {
        r = vmm_initdata_digest(p->initdata, p->initdata_len, &vm->initdata_alg,
                                vm->initdata_digest, err);
        if (r < 0)
            return cc_error_prefix(err, r, "initdata");
        vm->has_initdata = true;
    }
    return 0;
}

int
vmm_vm_new(const vmm_config *c, const vmm_vm_params *p, vmm_vm **ret, cc_error **err)
{
    _cleanup_(vmm_vm_freep) vmm_vm *vm = cc_xzalloc(sizeof(*vm));
    int r;

    if (c->profile < 0 || c->profile >= _VMM_PROFILE_MAX)
        return cc_error_msg(err, -EINVAL, "profile: invalid value %d", (int)c->profile);
    vm->config = c;
    r = vm_fill(vm, c, p, err);
    if (r < 0)
        return cc_error_prefix(err, r, "vm '%s'", p->id ? p->id : "(null)");
    *ret = TAKE_PTR(vm);
    return 0;
}

vmm_vm *
vmm_vm_free(vmm_vm *vm)
{
    if (!vm)
        return NULL;
    free(vm->id);
    free(vm->uuid);
    free(vm->state_dir);
    free(vm->kernel_cmdline);
    free(vm->netns_path);
    free(vm->pod_ifname);
    free(vm);
    return NULL;
}
