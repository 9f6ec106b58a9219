/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Golden files for every profile × backend: the shipped configs/cloak-*.toml, fixed pod facts,
 * the QEMU argv (one argument per line) and the libvirt domain XML compared byte for byte with
 * test/data/vmm/golden/<case>.{argv,xml}. CC_TEST_REGENERATE=1 rewrites them instead (review the
 * diff against ../shared/specs/confidential-vm-launch.md before committing).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "vmm.h"

#define GOLDEN_DIR CLOAK_TEST_DATA_DIR "/vmm/golden"
#define CONFIG_DIR CLOAK_TEST_DATA_DIR "/../../configs"

typedef struct golden_case {
    const char *name;
    const char *config; /* file name in configs/ */
    bool has_kvm;
    bool has_vsock;
    bool initdata;
} golden_case;

static const golden_case cases[] = {
    {"dev", "cloak-dev.toml", true, true, false},
    {"dev-tcg-serial", "cloak-dev.toml", false, false, false},
    {"sev", "cloak-sev.toml", true, true, false},
    {"snp", "cloak-snp.toml", true, true, false},
    {"snp-initdata", "cloak-snp.toml", true, true, true},
    {"tdx", "cloak-tdx.toml", true, true, false},
    {"tdx-initdata", "cloak-tdx.toml", true, true, true},
};

static char *
read_file(const char *path, size_t *ret_len)
{
    _cleanup_fclose_ FILE *f = fopen(path, "re");
    char *buf = NULL;
    size_t len = 0;

    if (!f)
        return NULL;
    buf = cc_xmalloc(1 << 20);
    len = fread(buf, 1, (1 << 20) - 1, f);
    buf[len] = '\0';
    if (ret_len)
        *ret_len = len;
    return buf;
}

static void
check_golden(const char *name, const char *ext, const char *got)
{
    _cleanup_free_ char *path = cc_xasprintf("%s/%s.%s", GOLDEN_DIR, name, ext);
    const char *regen = getenv("CC_TEST_REGENERATE");

    if (regen && strcmp(regen, "1") == 0) {
        FILE *f = fopen(path, "we");
        assert_non_null(f);
        assert_int_equal(fputs(got, f) >= 0, 1);
        assert_int_equal(fclose(f), 0);
        return;
    }
    _cleanup_free_ char *want = read_file(path, NULL);
    if (!want)
        fail_msg("missing golden file %s (run with CC_TEST_REGENERATE=1)", path);
    if (strcmp(want, got) != 0) {
        print_error("--- %s\n+++ got\n%s", path, got);
        fail_msg("%s differs from the golden file (CC_TEST_REGENERATE=1 to rewrite)", path);
    }
}

static char *
join_argv(char **argv)
{
    size_t n = 1;
    for (char **a = argv; *a; a++)
        n += strlen(*a) + 1;
    char *s = cc_xzalloc(n);
    for (char **a = argv; *a; a++) {
        strcat(s, *a);
        strcat(s, "\n");
    }
    return s;
}

static void
load_case(const golden_case *gc, vmm_config **ret)
{
    _cleanup_free_ char *path = cc_xasprintf("%s/%s", CONFIG_DIR, gc->config);
    _cleanup_error_ cc_error *err = NULL;
    vmm_config *c = NULL;

    if (vmm_config_load(path, &c, &err) < 0)
        fail_msg("load %s: %s", path, cc_error_message(err));
    /* Fixed guest paths: the golden files must not depend on where the tree is. */
    if (!c->kernel)
        c->kernel = cc_xstrdup("/opt/cloak/guest/vmlinuz");
    if (!c->initrd)
        c->initrd = cc_xstrdup("/opt/cloak/guest/initrd.img");
    *ret = c;
}

static void
run_case(const golden_case *gc)
{
    _cleanup_(vmm_config_freep) vmm_config *c = NULL;
    _cleanup_(vmm_vm_freep) vmm_vm *vm = NULL;
    _cleanup_error_ cc_error *err = NULL;
    _cleanup_free_ char *initdata = NULL, *argv_text = NULL, *xml = NULL;
    char **argv = NULL;
    size_t initdata_len = 0;

    load_case(gc, &c);
    if (gc->initdata) {
        initdata = read_file(GOLDEN_DIR "/initdata.toml", &initdata_len);
        assert_non_null(initdata);
    }
    vmm_vm_params p = {
        .id = "golden",
        .state_dir = "/run/cloak/golden",
        .initdata = initdata,
        .initdata_len = initdata_len,
        .host = {.has_kvm = gc->has_kvm, .has_vhost_vsock = gc->has_vsock},
    };
    if (vmm_vm_new(c, &p, &vm, &err) < 0)
        fail_msg("%s: vmm_vm_new: %s", gc->name, cc_error_message(err));
    if (vmm_qemu_argv(vm, &argv, &err) < 0)
        fail_msg("%s: vmm_qemu_argv: %s", gc->name, cc_error_message(err));
    argv_text = join_argv(argv);
    vmm_strv_free(argv);
    check_golden(gc->name, "argv", argv_text);
    if (vmm_libvirt_xml(vm, &xml, &err) < 0)
        fail_msg("%s: vmm_libvirt_xml: %s", gc->name, cc_error_message(err));
    check_golden(gc->name, "xml", xml);
}

static void
test_golden(void **state)
{
    run_case(*state);
}

int
main(void)
{
    struct CMUnitTest tests[ELEMENTSOF(cases)];

    for (size_t i = 0; i < ELEMENTSOF(cases); i++)
        tests[i] = (struct CMUnitTest){
            .name = cases[i].name,
            .test_func = test_golden,
            .initial_state = (void *)&cases[i],
        };
    return _cmocka_run_group_tests("golden", tests, ELEMENTSOF(cases), NULL, NULL);
}
