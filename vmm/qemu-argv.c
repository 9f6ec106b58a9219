/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The QEMU argv of a vmm_vm (../shared/specs/confidential-vm-launch.md §1).
 *
 * Decisions the spec leaves open:
 * - -no-reboot for every profile: a pod VM never reboots (TEEs cannot; the kernel runs
 *   panic=-1 so a panic ends QEMU).
 * - -cpu default: none → host (KVM) or max (TCG); sev and sev-snp → EPYC-v4 (the model feeds
 *   the launch measurement, as in kata); tdx → host (QEMU rejects named models for TDs).
 * - sev-snp gets kernel_irqchip=split as kata does for every confidential guest.
 * - -bios whenever the config names firmware (required for sev-snp and tdx; for none and sev
 *   the default SeaBIOS boots the kernel directly).
 * - tdx-guest: TD attributes are written as "sept-ve-disable":bool when bit 28 is the only
 *   bit that may be set, else as raw "attributes" (which carries bit 28 itself): never both,
 *   because QEMU applies JSON properties in no defined order.
 * - tap networking: the launcher passes the tap fd as fd 3 (-netdev tap,fd=3).
 * - romfile= (empty) goes last on every PCI device; TEE profiles add
 *   disable-legacy=on,iommu_platform=on to every virtio PCI device.
 * Nothing from §1.7 is emitted (no nvdimm, rng, balloon, virtio-mem/fs, hotplug slots,
 * pflash, SMM).
 */
#include "builder.h"
#include "util.h"
#include "vmm.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define TDX_ATTR_SEPT_VE_DISABLE UINT64_C(0x10000000)

static bool
is_tee(const vmm_vm *vm)
{
    return vm->config->profile != VMM_PROFILE_NONE;
}

/* Builds "<prefix><escaped value>" as one argument: QEMU option syntax doubles ','. */
static void
add_opt_path(vmm_argv *a, const char *prefix, const char *value, const char *suffix)
{
    vmm_strbuf b = {0};
    char *s = NULL;

    vmm_strbuf_append(&b, prefix);
    vmm_strbuf_append_qemu_opt(&b, value);
    vmm_strbuf_append(&b, suffix);
    if (vmm_strbuf_finish(&b, &s, NULL) < 0)
        vmm_argv_fail(a, -ENOMEM, "build argument");
    vmm_argv_add_take(a, s);
}

/* A virtio PCI -device: "<driver>,<opts>[,disable-legacy=on,iommu_platform=on],romfile=". */
static void
add_virtio_pci(vmm_argv *a, const vmm_vm *vm, const char *driver_and_opts)
{
    vmm_argv_add(a, "-device");
    vmm_argv_addf(a, "%s%s,romfile=", driver_and_opts,
                  is_tee(vm) ? ",disable-legacy=on,iommu_platform=on" : "");
}

static const char *
machine_options(const vmm_vm *vm)
{
    switch (vm->config->profile) {
    case VMM_PROFILE_SEV:
        return ",confidential-guest-support=sev0";
    case VMM_PROFILE_SEV_SNP:
        return ",kernel_irqchip=split,confidential-guest-support=sev0,vmport=off";
    case VMM_PROFILE_TDX:
        return ",kernel_irqchip=split,confidential-guest-support=tdx0,hpet=off";
    default:
        return "";
    }
}

static const char *
default_cpu(const vmm_vm *vm)
{
    switch (vm->config->profile) {
    case VMM_PROFILE_SEV:
    case VMM_PROFILE_SEV_SNP:
        return "EPYC-v4";
    case VMM_PROFILE_TDX:
        return "host";
    default:
        return vm->accel == VMM_ACCEL_TCG ? "max" : "host";
    }
}

static void
add_skeleton(vmm_argv *a, const vmm_vm *vm)
{
    const vmm_config *c = vm->config;

    vmm_argv_add(a, c->qemu_path ? c->qemu_path : "qemu-system-x86_64");
    vmm_argv_add(a, "-name");
    vmm_argv_addf(a, "cloak-%s,debug-threads=on", vm->id);
    vmm_argv_add(a, "-uuid");
    vmm_argv_add(a, vm->uuid);
    vmm_argv_add(a, "-nodefaults");
    vmm_argv_add(a, "-no-user-config");
    vmm_argv_add(a, "-nographic");
    vmm_argv_add(a, "-vga");
    vmm_argv_add(a, "none");
    vmm_argv_add(a, "-no-reboot");
    vmm_argv_add(a, "-machine");
    /* machine and cpu_model are option strings themselves (e.g. "EPYC-v4,pmu=off"). */
    vmm_argv_addf(a, "%s,accel=%s%s", c->machine ? c->machine : "q35",
                  vm->accel == VMM_ACCEL_TCG ? "tcg" : "kvm", machine_options(vm));
    vmm_argv_add(a, "-cpu");
    vmm_argv_add(a, c->cpu_model ? c->cpu_model : default_cpu(vm));
    vmm_argv_add(a, "-smp");
    vmm_argv_addf(a, "%u", vm->vcpus);
    vmm_argv_add(a, "-m");
    vmm_argv_addf(a, "%uM", vm->memory_mib);
    vmm_argv_add(a, "-qmp");
    add_opt_path(a, "unix:", vm->state_dir, "/qmp.sock,server=on,wait=off");
    vmm_argv_add(a, "-pidfile");
    vmm_argv_addf(a, "%s/qemu.pid", vm->state_dir);
    vmm_argv_add(a, "-chardev");
    add_opt_path(a, "file,id=con0,path=", vm->state_dir, "/console.log");
    vmm_argv_add(a, "-serial");
    vmm_argv_add(a, "chardev:con0");
}

static void
add_boot(vmm_argv *a, const vmm_vm *vm)
{
    const vmm_config *c = vm->config;
    vmm_profile p = c->profile;

    if (c->firmware) {
        vmm_argv_add(a, "-bios");
        vmm_argv_add(a, c->firmware);
    } else if (p == VMM_PROFILE_SEV_SNP || p == VMM_PROFILE_TDX) {
        vmm_argv_fail(a, -EINVAL, "profile '%s' needs firmware (-bios)", vmm_profile_to_string(p));
    }
    if (!c->kernel || !c->initrd) {
        vmm_argv_fail(a, -EINVAL, "no guest kernel/initrd (resolve them before building argv)");
        return;
    }
    vmm_argv_add(a, "-kernel");
    vmm_argv_add(a, c->kernel);
    vmm_argv_add(a, "-initrd");
    vmm_argv_add(a, c->initrd);
    vmm_argv_add(a, "-append");
    vmm_argv_add(a, vm->kernel_cmdline);
}

static void
add_sev(vmm_argv *a, const vmm_vm *vm)
{
    const vmm_tee *t = &vm->config->tee;

    vmm_argv_add(a, "-object");
    vmm_argv_addf(a,
                  "sev-guest,id=sev0,cbitpos=%u,reduced-phys-bits=%u,policy=0x%" PRIx64
                  ",kernel-hashes=%s",
                  t->cbitpos, t->reduced_phys_bits, t->policy, t->kernel_hashes ? "on" : "off");
}

static void
add_sev_snp(vmm_argv *a, const vmm_vm *vm)
{
    const vmm_tee *t = &vm->config->tee;
    vmm_strbuf b = {0};
    char *s = NULL;

    if (!t->snp_id_block != !t->snp_id_auth) {
        vmm_argv_fail(a, -EINVAL, "sev-snp: id-block and id-auth must be given together");
        return;
    }
    vmm_strbuf_appendf(&b,
                       "sev-snp-guest,id=sev0,cbitpos=%u,reduced-phys-bits=%u,"
                       "policy=0x%" PRIx64 ",kernel-hashes=%s",
                       t->cbitpos, t->reduced_phys_bits, t->policy,
                       t->kernel_hashes ? "on" : "off");
    if (vm->has_initdata) {
        _cleanup_free_ char *hd =
            vmm_initdata_host_data(vm->initdata_digest, vmm_digest_size(vm->initdata_alg));
        vmm_strbuf_append(&b, ",host-data=");
        vmm_strbuf_append_qemu_opt(&b, hd ? hd : "");
    }
    if (t->snp_id_block) {
        vmm_strbuf_append(&b, ",id-block=");
        vmm_strbuf_append_qemu_opt(&b, t->snp_id_block);
        vmm_strbuf_append(&b, ",id-auth=");
        vmm_strbuf_append_qemu_opt(&b, t->snp_id_auth);
    }
    vmm_argv_add(a, "-object");
    if (vmm_strbuf_finish(&b, &s, NULL) < 0)
        vmm_argv_fail(a, -ENOMEM, "build sev-snp-guest");
    vmm_argv_add_take(a, s);
}

static void
add_tdx(vmm_argv *a, const vmm_vm *vm)
{
    const vmm_tee *t = &vm->config->tee;
    vmm_strbuf b = {0};
    char *s = NULL;

    vmm_strbuf_append(&b, "{\"qom-type\":\"tdx-guest\",\"id\":\"tdx0\"");
    if ((t->tdx_attributes & ~TDX_ATTR_SEPT_VE_DISABLE) == 0)
        vmm_strbuf_appendf(&b, ",\"sept-ve-disable\":%s",
                           t->tdx_attributes & TDX_ATTR_SEPT_VE_DISABLE ? "true" : "false");
    else
        vmm_strbuf_appendf(&b, ",\"attributes\":%" PRIu64, t->tdx_attributes);
    if (vm->has_initdata) {
        _cleanup_free_ char *mr =
            vmm_initdata_mrconfigid(vm->initdata_digest, vmm_digest_size(vm->initdata_alg));
        vmm_strbuf_append(&b, ",\"mrconfigid\":");
        vmm_strbuf_append_json(&b, mr ? mr : "");
    }
    if (t->tdx_qgs_socket) {
        vmm_strbuf_append(&b, ",\"quote-generation-socket\":{\"type\":\"unix\",\"path\":");
        vmm_strbuf_append_json(&b, t->tdx_qgs_socket);
        vmm_strbuf_append(&b, "}");
    }
    vmm_strbuf_append(&b, "}");
    vmm_argv_add(a, "-object");
    if (vmm_strbuf_finish(&b, &s, NULL) < 0)
        vmm_argv_fail(a, -ENOMEM, "build tdx-guest");
    vmm_argv_add_take(a, s);
}

static void
add_devices(vmm_argv *a, const vmm_vm *vm)
{
    if (vm->channel == VMM_CHANNEL_VSOCK) {
        _cleanup_free_ char *dev = cc_xasprintf("vhost-vsock-pci,guest-cid=%u", vm->vsock_cid);
        add_virtio_pci(a, vm, dev);
    } else {
        add_virtio_pci(a, vm, "virtio-serial-pci,id=vs0");
        vmm_argv_add(a, "-chardev");
        add_opt_path(a, "socket,id=agent,path=", vm->state_dir, "/agent.sock,server=on,wait=off");
        vmm_argv_add(a, "-device");
        vmm_argv_add(a, "virtserialport,bus=vs0.0,chardev=agent,name=" VMM_AGENT_SERIAL_NAME);
    }
    switch (vm->config->net) {
    case VMM_NET_NONE:
        break;
    case VMM_NET_USER:
        vmm_argv_add(a, "-netdev");
        vmm_argv_add(a, "user,id=net0");
        add_virtio_pci(a, vm, "virtio-net-pci,netdev=net0");
        break;
    case VMM_NET_TAP:
        vmm_argv_add(a, "-netdev");
        vmm_argv_add(a, "tap,id=net0,fd=3");
        add_virtio_pci(a, vm, "virtio-net-pci,netdev=net0");
        break;
    default:
        vmm_argv_fail(a, -EINVAL, "net: invalid value %d", (int)vm->config->net);
    }
}

int
vmm_qemu_argv(const vmm_vm *vm, char ***ret_argv, cc_error **err)
{
    vmm_argv a = {0};
    int r;

    add_skeleton(&a, vm);
    add_boot(&a, vm);
    switch (vm->config->profile) {
    case VMM_PROFILE_NONE:
        break;
    case VMM_PROFILE_SEV:
        add_sev(&a, vm);
        break;
    case VMM_PROFILE_SEV_SNP:
        add_sev_snp(&a, vm);
        break;
    case VMM_PROFILE_TDX:
        add_tdx(&a, vm);
        break;
    default:
        vmm_argv_fail(&a, -EINVAL, "profile: invalid value %d", (int)vm->config->profile);
    }
    add_devices(&a, vm);
    r = vmm_argv_finish(&a, ret_argv, err);
    if (r < 0)
        return cc_error_prefix(err, r, "QEMU argv for 'cloak-%s'", vm->id);
    return 0;
}
