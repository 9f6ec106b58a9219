/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The libvirt domain XML of a vmm_vm (../shared/specs/confidential-vm-launch.md §2), for
 * virDomainCreateXML. Mirrors qemu-argv.c's choices:
 * - <domain type='kvm'> with KVM, 'qemu' with TCG; name "cloak-<id>".
 * - <loader type='rom' readonly='yes'> (= -bios) whenever the config names firmware; required
 *   for sev-snp and tdx (explicit paths: measurements depend on the exact binary).
 * - <ioapic driver='qemu'/> (= kernel_irqchip=split) for sev-snp and tdx.
 * - cpu: config cpu_model → custom model ("host" → host-passthrough, "max" → maximum); else
 * sev/sev-snp → custom EPYC-v4; tdx and none with KVM → host-passthrough; none with TCG → mode
 * 'maximum' (= -cpu max).
 * - the agent vsock CID is fixed (<cid auto='no'>): the caller allocates it.
 * - TEE profiles put <driver iommu='on'/> on every virtio device, including the virtio-serial
 *   controller libvirt would otherwise add implicitly for the agent channel.
 * - tap networking is -EOPNOTSUPP (the qemu backend takes a tap fd; libvirt would need its
 *   own network setup).
 * Every value is XML-escaped.
 */
#include "builder.h"
#include "util.h"
#include "vmm.h"

#include <inttypes.h>
#include <stdlib.h>

static bool
is_tee(const vmm_vm *vm)
{
    return vm->config->profile != VMM_PROFILE_NONE;
}

static void
xml_os(vmm_strbuf *b, const vmm_vm *vm)
{
    const vmm_config *c = vm->config;
    vmm_profile p = c->profile;

    vmm_xml_open(b, "os");
    vmm_xml_indent(b);
    vmm_strbuf_append(b, "<type arch='x86_64' machine='");
    vmm_strbuf_append_xml(b, c->machine ? c->machine : "q35");
    vmm_strbuf_append(b, "'>hvm</type>\n");
    if (c->firmware) {
        vmm_xml_indent(b);
        vmm_strbuf_append(b, "<loader type='rom' readonly='yes'>");
        vmm_strbuf_append_xml(b, c->firmware);
        vmm_strbuf_append(b, "</loader>\n");
    } else if (p == VMM_PROFILE_SEV_SNP || p == VMM_PROFILE_TDX) {
        vmm_strbuf_fail(b, -EINVAL, "profile '%s' needs firmware (<loader>)",
                        vmm_profile_to_string(p));
    }
    if (c->kernel && c->initrd) {
        vmm_xml_text(b, "kernel", c->kernel);
        vmm_xml_text(b, "initrd", c->initrd);
    } else {
        vmm_strbuf_fail(b, -EINVAL, "no guest kernel/initrd (resolve them before building XML)");
    }
    vmm_xml_text(b, "cmdline", vm->kernel_cmdline);
    vmm_xml_close(b, "os");
}

static void
xml_features_cpu(vmm_strbuf *b, const vmm_vm *vm)
{
    const vmm_config *c = vm->config;
    vmm_profile p = c->profile;
    const char *model = c->cpu_model;

    vmm_xml_open(b, "features");
    vmm_xml_line(b, "<acpi/>");
    vmm_xml_line(b, "<apic/>");
    if (p == VMM_PROFILE_SEV_SNP || p == VMM_PROFILE_TDX)
        vmm_xml_line(b, "<ioapic driver='qemu'/>");
    vmm_xml_close(b, "features");
    if (!model && (p == VMM_PROFILE_SEV || p == VMM_PROFILE_SEV_SNP))
        model = "EPYC-v4";
    if (cc_streq(model, "host") || (!model && vm->accel == VMM_ACCEL_KVM)) {
        vmm_xml_line(b, "<cpu mode='host-passthrough' check='none'/>");
    } else if (cc_streq(model, "max") || !model) {
        vmm_xml_line(b, "<cpu mode='maximum' check='none'/>");
    } else {
        vmm_xml_open(b, "cpu mode='custom' match='exact' check='none'");
        vmm_xml_indent(b);
        vmm_strbuf_append(b, "<model fallback='forbid'>");
        vmm_strbuf_append_xml(b, model);
        vmm_strbuf_append(b, "</model>\n");
        vmm_xml_close(b, "cpu");
    }
    vmm_xml_open(b, "clock offset='utc'");
    vmm_xml_line(b, "<timer name='hpet' present='no'/>");
    vmm_xml_close(b, "clock");
    vmm_xml_text(b, "on_poweroff", "destroy");
    vmm_xml_text(b, "on_reboot", "destroy");
    vmm_xml_text(b, "on_crash", "destroy");
    vmm_xml_open(b, "pm");
    vmm_xml_line(b, "<suspend-to-mem enabled='no'/>");
    vmm_xml_line(b, "<suspend-to-disk enabled='no'/>");
    vmm_xml_close(b, "pm");
}

/* <tag ...><source ... path='<state_dir>/<file>'/> as one line. */
static void
xml_source_path(vmm_strbuf *b, const char *attrs, const vmm_vm *vm, const char *file)
{
    vmm_xml_indent(b);
    vmm_strbuf_appendf(b, "<source %s", attrs);
    vmm_strbuf_append(b, "path='");
    vmm_strbuf_append_xml(b, vm->state_dir);
    vmm_strbuf_appendf(b, "/%s'/>\n", file);
}

static void
xml_iommu(vmm_strbuf *b, const vmm_vm *vm)
{
    if (is_tee(vm))
        vmm_xml_line(b, "<driver iommu='on'/>");
}

static void
xml_devices(vmm_strbuf *b, const vmm_vm *vm)
{
    const vmm_config *c = vm->config;

    vmm_xml_open(b, "devices");
    vmm_xml_text(b, "emulator", c->qemu_path ? c->qemu_path : "/usr/bin/qemu-system-x86_64");
    vmm_xml_open(b, "serial type='file'");
    xml_source_path(b, "", vm, "console.log");
    vmm_xml_line(b, "<target port='0'/>");
    vmm_xml_close(b, "serial");
    if (vm->channel == VMM_CHANNEL_SERIAL) {
        if (is_tee(vm)) {
            vmm_xml_open(b, "controller type='virtio-serial' index='0'");
            xml_iommu(b, vm);
            vmm_xml_close(b, "controller");
        }
        vmm_xml_open(b, "channel type='unix'");
        xml_source_path(b, "mode='bind' ", vm, "agent.sock");
        vmm_xml_line(b, "<target type='virtio' name='%s'/>", VMM_AGENT_SERIAL_NAME);
        vmm_xml_close(b, "channel");
    } else {
        vmm_xml_open(b, "vsock model='virtio'");
        vmm_xml_line(b, "<cid auto='no' address='%u'/>", vm->vsock_cid);
        xml_iommu(b, vm);
        vmm_xml_close(b, "vsock");
    }
    if (c->net == VMM_NET_USER) {
        vmm_xml_open(b, "interface type='user'");
        vmm_xml_line(b, "<model type='virtio'/>");
        xml_iommu(b, vm);
        vmm_xml_line(b, "<rom enabled='no'/>");
        vmm_xml_close(b, "interface");
    } else if (c->net == VMM_NET_TAP) {
        vmm_strbuf_fail(b, -EOPNOTSUPP,
                        "net 'tap' is not supported by the libvirt backend (use backend 'qemu')");
    }
    vmm_xml_line(b, "<memballoon model='none'/>");
    vmm_xml_close(b, "devices");
}

static void
xml_b64(vmm_strbuf *b, const char *tag, char *value)
{
    if (value)
        vmm_xml_text(b, tag, value);
    else
        vmm_strbuf_fail(b, -ENOMEM, "encode <%s>", tag);
    free(value);
}

static void
xml_launch_sev(vmm_strbuf *b, const vmm_vm *vm, bool snp)
{
    const vmm_tee *t = &vm->config->tee;
    size_t dlen = vmm_digest_size(vm->initdata_alg);

    vmm_xml_line(b, "<launchSecurity type='%s' kernelHashes='%s'>", snp ? "sev-snp" : "sev",
                 t->kernel_hashes ? "yes" : "no");
    b->indent++;
    vmm_xml_line(b, "<cbitpos>%u</cbitpos>", t->cbitpos);
    vmm_xml_line(b, "<reducedPhysBits>%u</reducedPhysBits>", t->reduced_phys_bits);
    if (!snp) {
        vmm_xml_line(b, "<policy>0x%04" PRIx64 "</policy>", t->policy);
    } else {
        vmm_xml_line(b, "<policy>0x%016" PRIx64 "</policy>", t->policy);
        if (!t->snp_id_block != !t->snp_id_auth)
            vmm_strbuf_fail(b, -EINVAL, "sev-snp: idBlock and idAuth must be given together");
        if (t->snp_id_block && t->snp_id_auth) {
            vmm_xml_text(b, "idBlock", t->snp_id_block);
            vmm_xml_text(b, "idAuth", t->snp_id_auth);
        }
        if (vm->has_initdata)
            xml_b64(b, "hostData", vmm_initdata_host_data(vm->initdata_digest, dlen));
    }
    vmm_xml_close(b, "launchSecurity");
}

static void
xml_launch_tdx(vmm_strbuf *b, const vmm_vm *vm)
{
    const vmm_tee *t = &vm->config->tee;

    vmm_xml_open(b, "launchSecurity type='tdx'");
    vmm_xml_line(b, "<policy>0x%016" PRIx64 "</policy>", t->tdx_attributes);
    if (vm->has_initdata)
        xml_b64(b, "mrConfigId",
                vmm_initdata_mrconfigid(vm->initdata_digest, vmm_digest_size(vm->initdata_alg)));
    if (t->tdx_qgs_socket) {
        vmm_xml_indent(b);
        vmm_strbuf_append(b, "<quoteGenerationService path='");
        vmm_strbuf_append_xml(b, t->tdx_qgs_socket);
        vmm_strbuf_append(b, "'/>\n");
    }
    vmm_xml_close(b, "launchSecurity");
}

int
vmm_libvirt_xml(const vmm_vm *vm, char **ret_xml, cc_error **err)
{
    vmm_strbuf b = {0};
    int r;

    vmm_xml_open(&b, vm->accel == VMM_ACCEL_TCG ? "domain type='qemu'" : "domain type='kvm'");
    vmm_xml_indent(&b);
    vmm_strbuf_append(&b, "<name>cloak-");
    vmm_strbuf_append_xml(&b, vm->id);
    vmm_strbuf_append(&b, "</name>\n");
    vmm_xml_text(&b, "uuid", vm->uuid);
    vmm_xml_line(&b, "<memory unit='MiB'>%u</memory>", vm->memory_mib);
    vmm_xml_line(&b, "<vcpu placement='static'>%u</vcpu>", vm->vcpus);
    xml_os(&b, vm);
    xml_features_cpu(&b, vm);
    xml_devices(&b, vm);
    switch (vm->config->profile) {
    case VMM_PROFILE_NONE:
        break;
    case VMM_PROFILE_SEV:
    case VMM_PROFILE_SEV_SNP:
        xml_launch_sev(&b, vm, vm->config->profile == VMM_PROFILE_SEV_SNP);
        break;
    case VMM_PROFILE_TDX:
        xml_launch_tdx(&b, vm);
        break;
    default:
        vmm_strbuf_fail(&b, -EINVAL, "profile: invalid value %d", (int)vm->config->profile);
    }
    vmm_xml_close(&b, "domain");
    r = vmm_strbuf_finish(&b, ret_xml, err);
    if (r < 0)
        return cc_error_prefix(err, r, "libvirt XML for 'cloak-%s'", vm->id);
    return 0;
}
