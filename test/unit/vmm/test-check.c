/* SPDX-License-Identifier: Apache-2.0 */
/* vmm_check_host against a fake host tree: /dev, /sys/module parameters, firmware, and a
 * fake QEMU that prints a version and an object list. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "fs.h"
#include "util.h"

static char root[] = "/tmp/cloak-test-check-XXXXXX";

static void
put(const char *rel, const char *content, mode_t mode)
{
    _cleanup_free_ char *p = cc_xasprintf("%s%s", root, rel);
    _cleanup_free_ char *dir = cc_xstrdup(p);
    *strrchr(dir, '/') = 0;
    _cleanup_free_ char *cmd = cc_xasprintf("mkdir -p '%s'", dir);
    assert_int_equal(system(cmd), 0);
    FILE *f = fopen(p, "we");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
    chmod(p, mode);
}

/* A host with KVM, SNP enabled in kvm_amd, /dev/sev, the AMDSEV firmware and a QEMU 9.2. */
static int
setup(void **state)
{
    assert_non_null(mkdtemp(root));
    put("/dev/kvm", "", 0600);
    put("/dev/sev", "", 0600);
    put("/sys/module/kvm_amd/parameters/sev", "Y\n", 0444);
    put("/sys/module/kvm_amd/parameters/sev_snp", "Y\n", 0444);
    put("/sys/module/kvm_intel/parameters/tdx", "N\n", 0444);
    put("/usr/share/ovmf/AMDSEV.fd", "fw", 0644);
    put("/usr/bin/qemu-system-x86_64",
        "#!/bin/sh\n"
        "if [ \"$1\" = -version ]; then echo 'QEMU emulator version 9.2.0 (fake)'; exit 0; fi\n"
        "printf 'List of user creatable objects:\\n  sev-guest\\n  sev-snp-guest\\n'\n",
        0755);
    return 0;
}

static int
teardown(void **state)
{
    _cleanup_free_ char *cmd = cc_xasprintf("rm -rf '%s'", root);
    return system(cmd);
}

static vmm_check_report *
check(const char *toml)
{
    _cleanup_(vmm_config_freep) vmm_config *c = NULL;
    _cleanup_error_ cc_error *e = NULL;
    vmm_check_report *r = NULL;
    assert_int_equal(vmm_config_load_buffer(toml, strlen(toml), NULL, &c, &e), 0);
    assert_int_equal(vmm_check_host(c, root, false, &r, &e), 0);
    return r;
}

static void
test_snp_host(void **state)
{
    _cleanup_(vmm_check_report_freep) vmm_check_report *r = check(
        "[hypervisor]\nprofile = \"sev-snp\"\nfirmware = \"/usr/share/ovmf/AMDSEV.fd\"\n");
    _cleanup_free_ char *want = cc_xasprintf("QEMU 9.2.0 (%s/usr/bin/qemu-system-x86_64)", root);
    assert_string_equal(r->qemu, want);
    assert_true(r->has_kvm);
    assert_int_equal(r->configured, VMM_PROFILE_SEV_SNP);
    assert_true(r->items[VMM_PROFILE_NONE].runs);
    assert_string_equal(r->items[VMM_PROFILE_NONE].detail, "KVM");
    assert_true(r->items[VMM_PROFILE_SEV].runs);
    assert_true(r->items[VMM_PROFILE_SEV_SNP].runs);
    assert_false(r->items[VMM_PROFILE_TDX].runs);
    assert_string_equal(r->items[VMM_PROFILE_TDX].detail,
                        "tdx not enabled (/sys/module/kvm_intel/parameters/tdx); QEMU 9.2.0 has "
                        "no tdx-guest (needs QEMU >= 10.1); firmware "
                        "'/usr/share/ovmf/OVMF.inteltdx.fd' missing");
}

static void
test_no_kvm_means_tcg(void **state)
{
    _cleanup_free_ char *kvm = cc_xasprintf("%s/dev/kvm", root);
    assert_int_equal(unlink(kvm), 0);
    _cleanup_(vmm_check_report_freep) vmm_check_report *r = check("");
    assert_false(r->has_kvm);
    assert_string_equal(r->kvm_unusable, "/dev/kvm missing");
    assert_true(r->items[VMM_PROFILE_NONE].runs);
    assert_string_equal(r->items[VMM_PROFILE_NONE].detail, "TCG (no usable KVM)");
    assert_false(r->items[VMM_PROFILE_SEV_SNP].runs);
    assert_non_null(strstr(r->items[VMM_PROFILE_SEV_SNP].detail, "no usable KVM"));
    put("/dev/kvm", "", 0600);
}

static void
test_qemu_missing(void **state)
{
    _cleanup_(vmm_check_report_freep) vmm_check_report *r =
        check("[hypervisor]\npath = \"/nonexistent/qemu\"\n");
    assert_false(r->items[VMM_PROFILE_NONE].runs);
    assert_non_null(strstr(r->qemu, "/nonexistent/qemu"));
    assert_non_null(strstr(r->items[VMM_PROFILE_NONE].detail, "QEMU does not run"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_snp_host),
        cmocka_unit_test(test_no_kvm_means_tcg),
        cmocka_unit_test(test_qemu_missing),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
