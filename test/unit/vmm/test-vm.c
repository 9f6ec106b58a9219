/* SPDX-License-Identifier: Apache-2.0 */
/* vmm_vm_new and the argv/XML builders on configs built in code (error paths, escaping). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <string.h>

#include "util.h"
#include "vmm.h"

static vmm_config
base_config(vmm_profile profile)
{
    return (vmm_config){
        .profile = profile,
        .qemu_path = (char *)"/usr/bin/qemu-system-x86_64",
        .kernel = (char *)"/k/vmlinuz",
        .initrd = (char *)"/k/initrd.img",
        .firmware = profile == VMM_PROFILE_NONE ? NULL : (char *)"/fw/OVMF.fd",
        .machine = (char *)"q35",
        .vcpus = 2,
        .memory_mib = 1024,
        .tee = {.cbitpos = 51,
                .reduced_phys_bits = 1,
                .policy = 0x30000,
                .tdx_attributes = 0x10000000},
    };
}

static vmm_vm_params
base_params(void)
{
    return (vmm_vm_params){
        .id = "pod1",
        .state_dir = "/run/cloak/pod1",
        .host = {.has_kvm = true, .has_vhost_vsock = true},
    };
}

static bool
argv_has(char **argv, const char *s)
{
    for (; *argv; argv++)
        if (strcmp(*argv, s) == 0)
            return true;
    return false;
}

static void
test_refuses_bad_params(void **state)
{
    vmm_config c = base_config(VMM_PROFILE_NONE);
    vmm_vm_params p = base_params();
    _cleanup_error_ cc_error *err = NULL;
    vmm_vm *vm = NULL;

    p.id = "-bad";
    assert_int_equal(vmm_vm_new(&c, &p, &vm, &err), -EINVAL);
    assert_non_null(strstr(cc_error_message(err), "id '-bad'"));
    p = base_params();
    p.state_dir = "/run/a,b";
    assert_int_equal(vmm_vm_new(&c, &p, &vm, &err), -EINVAL);
    assert_non_null(strstr(cc_error_message(err), "state_dir '/run/a,b'"));
    p.state_dir = "relative";
    assert_int_equal(vmm_vm_new(&c, &p, &vm, &err), -EINVAL);
    p = base_params();
    p.uuid = "not-a-uuid";
    assert_int_equal(vmm_vm_new(&c, &p, &vm, &err), -EINVAL);
    assert_null(vm);
}

static void
test_tee_needs_kvm(void **state)
{
    vmm_config c = base_config(VMM_PROFILE_TDX);
    vmm_vm_params p = base_params();
    _cleanup_error_ cc_error *err = NULL;
    _cleanup_(vmm_vm_freep) vmm_vm *vm = NULL;

    c.accel = VMM_ACCEL_TCG;
    assert_int_equal(vmm_vm_new(&c, &p, &vm, &err), -EINVAL);
    assert_non_null(strstr(cc_error_message(err), "confidential guests need KVM"));
    /* auto resolves to KVM for a TEE even when the host lacks it (the launch fails later) */
    c.accel = VMM_ACCEL_AUTO;
    p.host.has_kvm = false;
    assert_int_equal(vmm_vm_new(&c, &p, &vm, &err), 0);
    assert_int_equal(vm->accel, VMM_ACCEL_KVM);
    assert_int_equal(vm->vsock_cid, 3);
}

static void
test_uuid_stable(void **state)
{
    vmm_config c = base_config(VMM_PROFILE_NONE);
    vmm_vm_params p = base_params();
    _cleanup_(vmm_vm_freep) vmm_vm *a = NULL;
    _cleanup_(vmm_vm_freep) vmm_vm *b = NULL;

    assert_int_equal(vmm_vm_new(&c, &p, &a, NULL), 0);
    assert_int_equal(vmm_vm_new(&c, &p, &b, NULL), 0);
    assert_string_equal(a->uuid, b->uuid);
    assert_int_equal(a->uuid[14], '5');
    b = vmm_vm_free(b);
    p.id = "pod2";
    assert_int_equal(vmm_vm_new(&c, &p, &b, NULL), 0);
    assert_string_not_equal(a->uuid, b->uuid);
}

static void
test_tap(void **state)
{
    vmm_config c = base_config(VMM_PROFILE_NONE);
    vmm_vm_params p = base_params();
    _cleanup_error_ cc_error *err = NULL;
    _cleanup_(vmm_vm_freep) vmm_vm *vm = NULL;
    char **argv = NULL, *xml = NULL;

    c.net = VMM_NET_TAP;
    assert_int_equal(vmm_vm_new(&c, &p, &vm, &err), 0);
    assert_int_equal(vmm_qemu_argv(vm, &argv, &err), 0);
    assert_true(argv_has(argv, "tap,id=net0,fd=3"));
    assert_null(strstr(vm->kernel_cmdline, "cloak.net="));
    vmm_strv_free(argv);
    assert_int_equal(vmm_libvirt_xml(vm, &xml, &err), -EOPNOTSUPP);
    assert_null(xml);
    assert_non_null(strstr(cc_error_message(err), "tap"));
}

static void
test_pod_net(void **state)
{
    vmm_config c = base_config(VMM_PROFILE_NONE);
    vmm_vm_params p = base_params();
    _cleanup_error_ cc_error *err = NULL;
    _cleanup_(vmm_vm_freep) vmm_vm *vm = NULL;

    c.net = VMM_NET_TAP;
    assert_int_equal(vmm_vm_new(&c, &p, &vm, &err), 0);
    assert_null(vm->netns_path);
    assert_string_equal(vm->pod_ifname, "eth0");
    vm = vmm_vm_free(vm);
    p.netns_path = "/var/run/netns/pod";
    p.pod_ifname = "veth_pod0";
    assert_int_equal(vmm_vm_new(&c, &p, &vm, &err), 0);
    assert_string_equal(vm->netns_path, "/var/run/netns/pod");
    assert_string_equal(vm->pod_ifname, "veth_pod0");
    vm = vmm_vm_free(vm);
    p.netns_path = "netns/pod";
    assert_int_equal(vmm_vm_new(&c, &p, &vm, &err), -EINVAL);
    assert_non_null(strstr(cc_error_message(err), "netns_path"));
    err = cc_error_free(err);
    p.netns_path = "/var/run/netns/pod";
    p.pod_ifname = "sixteen-bytes-ab";
    assert_int_equal(vmm_vm_new(&c, &p, &vm, &err), -EINVAL);
    assert_non_null(strstr(cc_error_message(err), "pod_ifname"));
    err = cc_error_free(err);
    p.pod_ifname = "a/b";
    assert_int_equal(vmm_vm_new(&c, &p, &vm, &err), -EINVAL);
    assert_null(vm);
}

static void
test_tee_serial_channel(void **state)
{
    vmm_config c = base_config(VMM_PROFILE_SEV_SNP);
    vmm_vm_params p = base_params();
    _cleanup_(vmm_vm_freep) vmm_vm *vm = NULL;
    _cleanup_free_ char *xml = NULL;
    char **argv = NULL;

    p.host.has_vhost_vsock = false;
    assert_int_equal(vmm_vm_new(&c, &p, &vm, NULL), 0);
    assert_int_equal(vm->channel, VMM_CHANNEL_SERIAL);
    assert_int_equal(vmm_qemu_argv(vm, &argv, NULL), 0);
    assert_true(argv_has(argv, "virtio-serial-pci,id=vs0,disable-legacy=on,iommu_platform=on,"
                               "romfile="));
    vmm_strv_free(argv);
    assert_int_equal(vmm_libvirt_xml(vm, &xml, NULL), 0);
    assert_non_null(strstr(xml, "<controller type='virtio-serial' index='0'>\n"
                                "      <driver iommu='on'/>"));
}

static void
test_first_error_wins(void **state)
{
    vmm_config c = base_config(VMM_PROFILE_SEV_SNP);
    vmm_vm_params p = base_params();
    _cleanup_error_ cc_error *err = NULL;
    _cleanup_(vmm_vm_freep) vmm_vm *vm = NULL;
    char **argv = NULL, *xml = NULL;

    c.firmware = NULL;
    c.kernel = NULL;
    c.tee.snp_id_block = (char *)"AAAA";
    assert_int_equal(vmm_vm_new(&c, &p, &vm, &err), 0);
    assert_int_equal(vmm_qemu_argv(vm, &argv, &err), -EINVAL);
    assert_null(argv);
    assert_string_equal(cc_error_message(err),
                        "QEMU argv for 'cloak-pod1': profile 'sev-snp' needs firmware (-bios)");
    assert_int_equal(vmm_libvirt_xml(vm, &xml, &err), -EINVAL);
    assert_null(xml);
    assert_non_null(strstr(cc_error_message(err), "needs firmware"));
}

static void
test_escaping(void **state)
{
    vmm_config c = base_config(VMM_PROFILE_TDX);
    vmm_vm_params p = base_params();
    _cleanup_(vmm_vm_freep) vmm_vm *vm = NULL;
    _cleanup_free_ char *xml = NULL;
    char **argv = NULL;

    c.kernel_params = (char *)"a=<b> & c='d' \"e\"";
    c.tee.tdx_qgs_socket = (char *)"/run/q\"s\\.sock";
    c.tee.tdx_attributes = 0x10000001;
    assert_int_equal(vmm_vm_new(&c, &p, &vm, NULL), 0);
    assert_int_equal(vmm_libvirt_xml(vm, &xml, NULL), 0);
    assert_non_null(strstr(xml, "a=&lt;b&gt; &amp; c=&apos;d&apos; &quot;e&quot;</cmdline>"));
    assert_non_null(strstr(xml, "<quoteGenerationService path='/run/q&quot;s\\.sock'/>"));
    assert_int_equal(vmm_qemu_argv(vm, &argv, NULL), 0);
    assert_true(argv_has(argv, "{\"qom-type\":\"tdx-guest\",\"id\":\"tdx0\",\"attributes\":"
                               "268435457,\"quote-generation-socket\":{\"type\":\"unix\","
                               "\"path\":\"/run/q\\\"s\\\\.sock\"}}"));
    vmm_strv_free(argv);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refuses_bad_params), cmocka_unit_test(test_tee_needs_kvm),
        cmocka_unit_test(test_uuid_stable),        cmocka_unit_test(test_tap),
        cmocka_unit_test(test_pod_net),
        cmocka_unit_test(test_tee_serial_channel), cmocka_unit_test(test_first_error_wins),
        cmocka_unit_test(test_escaping),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
