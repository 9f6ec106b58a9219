/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"
#include "vmm.h"

#define CONFIGS_DIR CLOAK_TEST_DATA_DIR "/../../configs"
#define DATA_DIR CLOAK_TEST_DATA_DIR "/vmm/config"
#define NAME "/etc/cloak/x.toml"

/* Loads text as NAME; asserts failure with code and returns the message (static copy). */
static const char *
load_fail(const char *text, int code)
{
    static char msg[1024];
    vmm_config *c = NULL;
    cc_error *err = NULL;
    int r = vmm_config_load_buffer(text, strlen(text), NAME, &c, &err);
    if (r >= 0)
        fail_msg("loaded: %s", text);
    assert_int_equal(r, code);
    assert_null(c);
    snprintf(msg, sizeof(msg), "%s", cc_error_message(err));
    cc_error_free(err);
    return msg;
}

static vmm_config *
load_ok(const char *text)
{
    vmm_config *c = NULL;
    cc_error *err = NULL;
    int r = vmm_config_load_buffer(text, strlen(text), NAME, &c, &err);
    if (r < 0)
        fail_msg("%s", cc_error_message(err));
    return c;
}

static void
test_shipped_configs(void **state)
{
    static const struct {
        const char *file;
        vmm_profile profile;
    } cases[] = {
        {"cloak-dev.toml", VMM_PROFILE_NONE},
        {"cloak-sev.toml", VMM_PROFILE_SEV},
        {"cloak-snp.toml", VMM_PROFILE_SEV_SNP},
        {"cloak-tdx.toml", VMM_PROFILE_TDX},
    };
    for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
        _cleanup_free_ char *path = cc_xasprintf("%s/%s", CONFIGS_DIR, cases[i].file);
        _cleanup_(vmm_config_freep) vmm_config *c = NULL;
        cc_error *err = NULL;
        if (vmm_config_load(path, &c, &err) < 0)
            fail_msg("%s", cc_error_message(err));
        assert_int_equal(c->profile, cases[i].profile);
        assert_string_equal(c->path, path);
        assert_string_equal(c->enable_annotations[0], "default_vcpus");
    }
}

static void
test_shipped_details(void **state)
{
    _cleanup_(vmm_config_freep) vmm_config *dev = NULL, *snp = NULL, *tdx = NULL, *sev = NULL;
    assert_int_equal(vmm_config_load(CONFIGS_DIR "/cloak-dev.toml", &dev, NULL), 0);
    assert_int_equal(dev->backend, VMM_BACKEND_QEMU);
    assert_int_equal(dev->accel, VMM_ACCEL_AUTO);
    assert_int_equal(dev->net, VMM_NET_USER);
    assert_null(dev->kernel);
    assert_null(dev->initrd);
    assert_null(dev->firmware);
    assert_null(dev->cpu_model);
    assert_int_equal(dev->memory_mib, 512);

    assert_int_equal(vmm_config_load(CONFIGS_DIR "/cloak-snp.toml", &snp, NULL), 0);
    assert_int_equal(snp->backend, VMM_BACKEND_AUTO);
    assert_string_equal(snp->firmware, "/usr/share/ovmf/AMDSEV.fd");
    assert_string_equal(snp->cpu_model, "EPYC-v4");
    assert_int_equal(snp->tee.cbitpos, 51);
    assert_int_equal(snp->tee.reduced_phys_bits, 1);
    assert_int_equal(snp->tee.policy, 0x30000);
    assert_true(snp->tee.kernel_hashes);
    assert_null(snp->tee.snp_id_block);

    assert_int_equal(vmm_config_load(CONFIGS_DIR "/cloak-tdx.toml", &tdx, NULL), 0);
    assert_string_equal(tdx->firmware, "/usr/share/ovmf/OVMF.inteltdx.fd");
    assert_int_equal(tdx->tee.tdx_attributes, 0x10000000);
    assert_string_equal(tdx->tee.tdx_qgs_socket, "/var/run/tdx-qgs/qgs.socket");
    assert_string_equal(tdx->cpu_model, "host");

    assert_int_equal(vmm_config_load(CONFIGS_DIR "/cloak-sev.toml", &sev, NULL), 0);
    assert_int_equal(sev->tee.policy, 0x3);
    assert_int_equal(sev->tee.cbitpos, 47);
}

static void
test_defaults(void **state)
{
    _cleanup_(vmm_config_freep) vmm_config *c = load_ok("");
    assert_int_equal(c->profile, VMM_PROFILE_NONE);
    assert_int_equal(c->backend, VMM_BACKEND_QEMU);
    assert_int_equal(c->accel, VMM_ACCEL_AUTO);
    assert_int_equal(c->channel, VMM_CHANNEL_AUTO);
    assert_int_equal(c->net, VMM_NET_USER);
    assert_string_equal(c->qemu_path, "/usr/bin/qemu-system-x86_64");
    assert_string_equal(c->libvirt_uri, "qemu:///system");
    assert_string_equal(c->machine, "q35");
    assert_string_equal(c->kernel_params, "");
    assert_null(c->cpu_model);
    assert_int_equal(c->vcpus, 1);
    assert_int_equal(c->memory_mib, 2048);
    assert_null(c->enable_annotations[0]);
    assert_string_equal(c->path, NAME);

    _cleanup_(vmm_config_freep) vmm_config *snp =
        load_ok("[hypervisor]\nprofile = \"sev-snp\"\nfirmware = \"/fw\"\ncpu_model = \"\"\n");
    assert_int_equal(snp->tee.cbitpos, 51);
    assert_int_equal(snp->tee.policy, 0x30000);
    assert_true(snp->tee.kernel_hashes);
    assert_null(snp->cpu_model);
}

static void
test_unknown_keys(void **state)
{
    /* From a file: the name is the path as given. */
    vmm_config *c = NULL;
    cc_error *err = NULL;
    assert_int_equal(vmm_config_load(DATA_DIR "/unknown-key.toml", &c, &err), -EINVAL);
    assert_string_equal(cc_error_message(err), DATA_DIR "/unknown-key.toml:3: key "
                                                        "'hypervisor.default_memroy': unknown key");
    cc_error_free(err);

    assert_string_equal(load_fail("[hypervisor]\n[runtim]\nx = 1\n", -EINVAL),
                        NAME ":2: key 'runtim': unknown table");
    assert_string_equal(load_fail("[runtime]\ncreate_timout = 1\n", -EINVAL),
                        NAME ":2: key 'runtime.create_timout': unknown key");
    assert_string_equal(load_fail("[runtime]\ncreate_timeout = 0\n", -EINVAL),
                        NAME ":2: key 'runtime.create_timeout': must be between 1 and 86400 s, got 0");
    assert_string_equal(load_fail("[hypervisor]\ndefault_vcpus = 4\ndefault_maxvcpus = 2\n", -EINVAL),
                        NAME ":3: key 'hypervisor.default_maxvcpus': must not be below "
                             "default_vcpus (4), got 2");
    assert_string_equal(load_fail("title = \"x\"\n", -EINVAL), NAME ":1: key 'title': unknown key");
    assert_string_equal(load_fail("[hypervisor.snp]\npolcy = 1\n", -EINVAL),
                        NAME ":2: key 'hypervisor.snp.polcy': unknown key");
    assert_string_equal(load_fail("[hypervisor.qemu]\n", -EINVAL),
                        NAME ":1: key 'hypervisor.qemu': unknown table");
}

static void
test_wrong_types(void **state)
{
    assert_string_equal(load_fail("[hypervisor]\n\ndefault_memory = \"2G\"\n", -EINVAL),
                        NAME ":3: key 'hypervisor.default_memory': expected integer, got string");
    assert_string_equal(load_fail("hypervisor = 1\n", -EINVAL),
                        NAME ":1: key 'hypervisor': expected table, got integer");
    assert_string_equal(load_fail("[hypervisor]\nprofile = 1\n", -EINVAL),
                        NAME ":2: key 'hypervisor.profile': expected string, got integer");
    assert_string_equal(load_fail("[hypervisor.sev]\nkernel_hashes = \"yes\"\n", -EINVAL),
                        NAME ":2: key 'hypervisor.sev.kernel_hashes': expected bool, got string");
    assert_string_equal(load_fail("[hypervisor]\nenable_annotations = \"x\"\n", -EINVAL),
                        NAME ":2: key 'hypervisor.enable_annotations': expected array, got string");
    assert_string_equal(load_fail("[hypervisor]\nenable_annotations = [1]\n", -EINVAL),
                        NAME ":2: key 'hypervisor.enable_annotations': expected string elements, "
                             "got integer");
    assert_string_equal(load_fail("[hypervisor]\nkernel = \"a\\u0000b\"\n", -EINVAL),
                        NAME ":2: key 'hypervisor.kernel': must not contain NUL");
}

static void
test_bad_values(void **state)
{
    assert_string_equal(load_fail("[hypervisor]\nprofile = \"snp\"\n", -EINVAL),
                        NAME ":2: key 'hypervisor.profile': must be one of none|sev|sev-snp|tdx, "
                             "got 'snp'");
    assert_string_equal(load_fail("[hypervisor]\nnetwork = \"bridge\"\n", -EINVAL),
                        NAME ":2: key 'hypervisor.network': must be one of none|user|tap, got "
                             "'bridge'");
    assert_string_equal(load_fail("[hypervisor]\nmachine_type = \"\"\n", -EINVAL),
                        NAME ":2: key 'hypervisor.machine_type': must not be empty");
    assert_string_equal(load_fail("[hypervisor]\npath = \"\"\n", -EINVAL),
                        NAME ":2: key 'hypervisor.path': must not be empty");
    assert_string_equal(load_fail("[hypervisor]\nlibvirt_uri = \"qemu:///system x\"\n", -EINVAL),
                        NAME ":2: key 'hypervisor.libvirt_uri': must not contain whitespace or "
                             "control characters");
    assert_string_equal(load_fail("[hypervisor]\nlibvirt_uri = \"\"\n", -EINVAL),
                        NAME ":2: key 'hypervisor.libvirt_uri': must not be empty");
    assert_string_equal(
        load_fail("[hypervisor]\nenable_annotations = [\"default_vcpus\", \"path\"]\n", -EINVAL),
        NAME ":2: key 'hypervisor.enable_annotations': unknown annotation key 'path' (known: "
             "default_vcpus, default_memory, kernel_params, cc_init_data)");
    assert_string_equal(
        load_fail("[hypervisor]\nenable_annotations = [\"kernel_params\", \"kernel_params\"]\n",
                  -EINVAL),
        NAME ":2: key 'hypervisor.enable_annotations': duplicate entry 'kernel_params'");
}

static void
test_ranges(void **state)
{
    assert_string_equal(load_fail("[hypervisor]\ndefault_memory = 64\n", -EINVAL),
                        NAME ":2: key 'hypervisor.default_memory': must be between 256 and "
                             "1048576 MiB, got 64");
    assert_string_equal(load_fail("[hypervisor]\ndefault_vcpus = 0\n", -EINVAL), NAME
                        ":2: key 'hypervisor.default_vcpus': must be between 1 and 512, got 0");
    assert_string_equal(load_fail("[hypervisor]\ndefault_vcpus = 513\n", -EINVAL),
                        NAME ":2: key 'hypervisor.default_vcpus': must be between 1 and 512, "
                             "got 513");
    assert_string_equal(load_fail("[hypervisor.snp]\ncbitpos = 64\n", -EINVAL),
                        NAME ":2: key 'hypervisor.snp.cbitpos': must be between 32 and 63, got 64");
    assert_string_equal(load_fail("[hypervisor.sev]\nreduced_phys_bits = -1\n", -EINVAL),
                        NAME ":2: key 'hypervisor.sev.reduced_phys_bits': must be between 0 and "
                             "63, got -1");
    assert_string_equal(load_fail("[hypervisor.sev]\npolicy = 0x1ffffffff\n", -EINVAL), NAME
                        ":2: key 'hypervisor.sev.policy': must fit in 32 bits, got 0x1ffffffff");
    assert_string_equal(load_fail("[hypervisor.snp]\npolicy = 0x10000\n", -EINVAL),
                        NAME ":2: key 'hypervisor.snp.policy': bit 17 (reserved, must be 1) is "
                             "clear in 0x10000");

    _cleanup_(vmm_config_freep) vmm_config *c =
        load_ok("[hypervisor]\ndefault_vcpus = 512\ndefault_memory = 1048576\n");
    assert_int_equal(c->vcpus, 512);
    assert_int_equal(c->memory_mib, 1048576);
}

static void
test_combinations(void **state)
{
    vmm_config *c = NULL;
    cc_error *err = NULL;
    assert_int_equal(vmm_config_load(DATA_DIR "/tdx-no-firmware.toml", &c, &err), -EINVAL);
    assert_string_equal(cc_error_message(err),
                        DATA_DIR "/tdx-no-firmware.toml:3: key "
                                 "'hypervisor.firmware': required for profile tdx");
    cc_error_free(err);

    assert_string_equal(
        load_fail("[hypervisor]\nprofile = \"sev-snp\"\nfirmware = \"\"\n", -EINVAL),
        NAME ":3: key 'hypervisor.firmware': required for profile sev-snp");
    assert_string_equal(
        load_fail("[hypervisor]\nprofile = \"tdx\"\nfirmware = \"/fw\"\naccel = \"tcg\"\n",
                  -EINVAL),
        NAME ":4: key 'hypervisor.accel': 'tcg' cannot run profile tdx (it needs kvm)");
    assert_string_equal(
        load_fail("[hypervisor]\nbackend = \"libvirt\"\nnetwork = \"tap\"\n", -EINVAL),
        NAME ":3: key 'hypervisor.network': 'tap' is not supported with backend "
             "libvirt");
    /* sev does not need firmware (pflash is possible); tcg is fine without a TEE. */
    _cleanup_(vmm_config_freep) vmm_config *sev = load_ok("[hypervisor]\nprofile = \"sev\"\n");
    assert_int_equal(sev->tee.policy, 0x3);
    _cleanup_(vmm_config_freep) vmm_config *tcg = load_ok("[hypervisor]\naccel = \"tcg\"\n"
                                                          "network = \"tap\"\n");
    assert_int_equal(tcg->accel, VMM_ACCEL_TCG);
    assert_int_equal(tcg->net, VMM_NET_TAP);
}

/* base64 of n zero bytes. */
static char *
zeros_base64(size_t n)
{
    char *s = cc_xzalloc((n + 2) / 3 * 4 + 1);
    size_t i = 0;
    for (; i < n / 3 * 4; i++)
        s[i] = 'A';
    if (n % 3 == 1)
        memcpy(s + i, "AA==", 4);
    else if (n % 3 == 2)
        memcpy(s + i, "AAA=", 4);
    return s;
}

static void
test_snp_id_block(void **state)
{
    _cleanup_free_ char *block = zeros_base64(96), *auth = zeros_base64(4096);
    _cleanup_free_ char *both = cc_xasprintf("[hypervisor]\nprofile = \"sev-snp\"\nfirmware = "
                                             "\"/fw\"\n[hypervisor.snp]\nid_block = \"%s\"\n"
                                             "id_auth = \"%s\"\n",
                                             block, auth);
    _cleanup_(vmm_config_freep) vmm_config *c = load_ok(both);
    assert_string_equal(c->tee.snp_id_block, block);
    assert_string_equal(c->tee.snp_id_auth, auth);

    _cleanup_free_ char *only = cc_xasprintf("[hypervisor.snp]\n\nid_block = \"%s\"\n", block);
    assert_string_equal(load_fail(only, -EINVAL),
                        NAME ":3: key 'hypervisor.snp.id_auth': required when id_block is set");
    _cleanup_free_ char *only_auth = cc_xasprintf("[hypervisor.snp]\nid_auth = \"%s\"\n", auth);
    assert_string_equal(load_fail(only_auth, -EINVAL),
                        NAME ":2: key 'hypervisor.snp.id_block': required when id_auth is set");
    _cleanup_free_ char *short_block =
        cc_xasprintf("[hypervisor.snp]\nid_block = \"AAAA\"\nid_auth = \"%s\"\n", auth);
    assert_string_equal(load_fail(short_block, -EINVAL),
                        NAME ":2: key 'hypervisor.snp.id_block': must be base64 of 96 bytes");
    block[5] = '*';
    _cleanup_free_ char *bad_char =
        cc_xasprintf("[hypervisor.snp]\nid_block = \"%s\"\nid_auth = \"%s\"\n", block, auth);
    assert_string_equal(load_fail(bad_char, -EINVAL),
                        NAME ":2: key 'hypervisor.snp.id_block': must be base64 of 96 bytes");
}

static void
test_relative_paths(void **state)
{
    vmm_config *c = NULL;
    cc_error *err = NULL;
    if (vmm_config_load(DATA_DIR "/relative.toml", &c, &err) < 0)
        fail_msg("%s", cc_error_message(err));
    assert_string_equal(c->qemu_path, DATA_DIR "/bin/qemu");
    assert_string_equal(c->kernel, DATA_DIR "/guest/vmlinuz");
    assert_string_equal(c->initrd, DATA_DIR "/../initrd.img");
    assert_string_equal(c->firmware, "/abs/fw.fd");
    vmm_config_free(c);

    /* A relative config path: relative to the cwd for the file, the file's dir for paths. */
    char cwd[PATH_MAX];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    const char *text = "[hypervisor]\nkernel = \"k\"\n";
    assert_int_equal(vmm_config_load_buffer(text, strlen(text), "sub/x.toml", &c, NULL), 0);
    _cleanup_free_ char *want = cc_xasprintf("%s/sub/k", cwd);
    _cleanup_free_ char *want_path = cc_xasprintf("%s/sub/x.toml", cwd);
    assert_string_equal(c->kernel, want);
    assert_string_equal(c->path, want_path);
    vmm_config_free(c);

    assert_int_equal(vmm_config_load_buffer(text, strlen(text), "/x.toml", &c, NULL), 0);
    assert_string_equal(c->kernel, "//k");
    vmm_config_free(c);

    /* Without a path there is nothing to resolve against. */
    assert_int_equal(vmm_config_load_buffer(text, strlen(text), NULL, &c, &err), -EINVAL);
    assert_string_equal(cc_error_message(err), "<buffer>:2: key 'hypervisor.kernel': relative "
                                               "path 'k' needs a config file to resolve against");
    cc_error_free(err);
}

static void
test_parse_and_io_errors(void **state)
{
    vmm_config *c = NULL;
    cc_error *err = NULL;
    assert_string_equal(load_fail("[hypervisor\n", -EINVAL), NAME
                        ": line 1, column 12: expected ']' to close the header, found a newline");
    assert_int_equal(vmm_config_load(DATA_DIR "/missing.toml", &c, &err), -ENOENT);
    assert_non_null(strstr(cc_error_message(err), "missing.toml"));
    cc_error_free(err);
}

/* ---- annotations ---------------------------------------------------------------------- */

#define A(k) "io.katacontainers.config.hypervisor." k

static vmm_config *
annotated_config(void)
{
    return load_ok("[hypervisor]\ndefault_vcpus = 2\ndefault_memory = 1024\n"
                   "kernel_params = \"quiet\"\n"
                   "enable_annotations = [\"default_vcpus\", \"default_memory\", "
                   "\"kernel_params\", \"cc_init_data\"]\n");
}

static void
test_annotations_allowed(void **state)
{
    _cleanup_(vmm_config_freep) vmm_config *c = annotated_config();
    const char *const ann[] = {
        "io.kubernetes.cri.sandbox-id",
        "abc",
        A("default_vcpus"),
        "4",
        A("default_memory"),
        "4096",
        A("kernel_params"),
        "debug loglevel=7",
        A("cc_init_data"),
        "H4sIAAAAAAAA",
        "unrelated",
        "x",
        NULL,
    };
    assert_int_equal(vmm_config_apply_annotations(c, ann, NULL), 0);
    assert_int_equal(c->vcpus, 4);
    assert_int_equal(c->memory_mib, 4096);
    assert_string_equal(c->kernel_params, "quiet debug loglevel=7");

    assert_int_equal(vmm_config_apply_annotations(c, NULL, NULL), 0);
    const char *const none[] = {NULL};
    assert_int_equal(vmm_config_apply_annotations(c, none, NULL), 0);
    assert_int_equal(c->vcpus, 4);
}

static void
test_annotations_denied(void **state)
{
    _cleanup_(vmm_config_freep) vmm_config *dflt = load_ok("");
    cc_error *err = NULL;
    const char *const vcpus[] = {A("default_vcpus"), "2", NULL};
    assert_int_equal(vmm_config_apply_annotations(dflt, vcpus, &err), -EPERM);
    assert_string_equal(cc_error_message(err), "annotation "
                                               "'io.katacontainers.config.hypervisor.default_"
                                               "vcpus': not allowed by enable_annotations");
    cc_error_free(err);
    err = NULL;
    assert_int_equal(dflt->vcpus, 1);

    _cleanup_(vmm_config_freep) vmm_config *c = annotated_config();
    const char *const path[] = {A("default_vcpus"), "3", A("path"), "/tmp/evil-qemu", NULL};
    assert_int_equal(vmm_config_apply_annotations(c, path, &err), -EPERM);
    assert_string_equal(cc_error_message(err), "annotation "
                                               "'io.katacontainers.config.hypervisor.path': not "
                                               "allowed by enable_annotations");
    cc_error_free(err);
    assert_int_equal(c->vcpus, 2); /* all or nothing */
}

static void
test_annotations_bad_values(void **state)
{
    static const struct {
        const char *key, *value, *msg;
    } cases[] = {
        {A("default_vcpus"), "0",
         "annotation 'io.katacontainers.config.hypervisor.default_vcpus': must be between 1 and "
         "512, got 0"},
        {A("default_vcpus"), "+2",
         "annotation 'io.katacontainers.config.hypervisor.default_vcpus': expected a decimal "
         "integer, got '+2'"},
        {A("default_vcpus"), " 2",
         "annotation 'io.katacontainers.config.hypervisor.default_vcpus': expected a decimal "
         "integer, got ' 2'"},
        {A("default_vcpus"), "0x2",
         "annotation 'io.katacontainers.config.hypervisor.default_vcpus': expected a decimal "
         "integer, got '0x2'"},
        {A("default_vcpus"), "",
         "annotation 'io.katacontainers.config.hypervisor.default_vcpus': expected a decimal "
         "integer, got ''"},
        {A("default_memory"), "99999999999999999999999",
         "annotation 'io.katacontainers.config.hypervisor.default_memory': must be between 256 "
         "and 1048576 MiB, got 99999999999999999999999"},
        {A("default_memory"), "128",
         "annotation 'io.katacontainers.config.hypervisor.default_memory': must be between 256 "
         "and 1048576 MiB, got 128"},
        {A("kernel_params"), "a\nb",
         "annotation 'io.katacontainers.config.hypervisor.kernel_params': contains a control "
         "character"},
    };
    for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
        _cleanup_(vmm_config_freep) vmm_config *c = annotated_config();
        cc_error *err = NULL;
        /* A valid one first: nothing of it may stick. */
        const char *const ann[] = {
            A("default_memory"), "2048", A("kernel_params"), "x", cases[i].key,
            cases[i].value,      NULL};
        assert_int_equal(vmm_config_apply_annotations(c, ann, &err), -EINVAL);
        assert_string_equal(cc_error_message(err), cases[i].msg);
        cc_error_free(err);
        assert_int_equal(c->vcpus, 2);
        assert_int_equal(c->memory_mib, 1024);
        assert_string_equal(c->kernel_params, "quiet");
    }
}

/* ---- resolve_guest -------------------------------------------------------------------- */

static void
touch(const char *dir, const char *name)
{
    _cleanup_free_ char *p = cc_xasprintf("%s/%s", dir, name);
    int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    close(fd);
}

static void
test_resolve_guest(void **state)
{
    char tmp[] = "/tmp/cloak-test-config-XXXXXX";
    assert_non_null(mkdtemp(tmp));
    _cleanup_free_ char *bin = cc_xasprintf("%s/bin", tmp);
    _cleanup_free_ char *guest = cc_xasprintf("%s/guest", tmp);
    _cleanup_free_ char *sguest = cc_xasprintf("%s/share/cloak/guest", tmp);
    _cleanup_free_ char *prefix = cc_xasprintf("%s/usr", tmp);
    _cleanup_free_ char *pguest = cc_xasprintf("%s/usr/share/cloak/guest", tmp);
    _cleanup_free_ char *cmd = cc_xasprintf("mkdir -p %s %s %s %s", bin, guest, sguest, pguest);
    assert_int_equal(system(cmd), 0);

    /* No place has both. */
    touch(guest, "vmlinuz");
    touch(sguest, "initrd.img");
    _cleanup_(vmm_config_freep) vmm_config *c = load_ok("");
    cc_error *err = NULL;
    assert_int_equal(vmm_config_resolve_guest(c, bin, prefix, &err), -ENOENT);
    _cleanup_free_ char *msg = cc_xasprintf(
        "guest vmlinuz and initrd.img not found in '%s/../guest', '%s/../share/cloak/guest' nor "
        "'%s/share/cloak/guest'",
        bin, bin, prefix);
    assert_string_equal(cc_error_message(err), msg);
    cc_error_free(err);
    assert_null(c->kernel);

    /* Without an exe dir or a prefix, the message says so. */
    err = NULL;
    assert_int_equal(vmm_config_resolve_guest(c, NULL, NULL, &err), -ENOENT);
    assert_string_equal(cc_error_message(err), "guest vmlinuz and initrd.img not found in "
                                               "'(no exe dir)', '(no exe dir)' nor '(no prefix)'");
    cc_error_free(err);

    /* Only the compiled prefix has both. */
    touch(pguest, "vmlinuz");
    touch(pguest, "initrd.img");
    assert_int_equal(vmm_config_resolve_guest(c, bin, prefix, NULL), 0);
    _cleanup_free_ char *pk = cc_xasprintf("%s/share/cloak/guest/vmlinuz", prefix);
    assert_string_equal(c->kernel, pk);

    /* An install under another prefix (<exe_dir>/../share/cloak/guest) wins over it. */
    touch(sguest, "vmlinuz");
    _cleanup_(vmm_config_freep) vmm_config *c1 = load_ok("");
    assert_int_equal(vmm_config_resolve_guest(c1, bin, prefix, NULL), 0);
    _cleanup_free_ char *sk = cc_xasprintf("%s/../share/cloak/guest/vmlinuz", bin);
    _cleanup_free_ char *si = cc_xasprintf("%s/../share/cloak/guest/initrd.img", bin);
    assert_string_equal(c1->kernel, sk);
    assert_string_equal(c1->initrd, si);

    /* Next to the binaries (the build tree) wins once it has both. */
    touch(guest, "initrd.img");
    _cleanup_(vmm_config_freep) vmm_config *c2 = load_ok("");
    assert_int_equal(vmm_config_resolve_guest(c2, bin, prefix, NULL), 0);
    _cleanup_free_ char *bk = cc_xasprintf("%s/../guest/vmlinuz", bin);
    _cleanup_free_ char *bi = cc_xasprintf("%s/../guest/initrd.img", bin);
    assert_string_equal(c2->kernel, bk);
    assert_string_equal(c2->initrd, bi);

    /* Set ones are kept: only initrd is looked up. */
    _cleanup_(vmm_config_freep) vmm_config *c3 = load_ok("[hypervisor]\nkernel = \"/k\"\n");
    assert_int_equal(vmm_config_resolve_guest(c3, bin, NULL, NULL), 0);
    assert_string_equal(c3->kernel, "/k");
    assert_string_equal(c3->initrd, bi);

    _cleanup_free_ char *rm = cc_xasprintf("rm -rf %s", tmp);
    assert_int_equal(system(rm), 0);
}

static void
test_enum_names(void **state)
{
    for (int i = 0; i < _VMM_BACKEND_MAX; i++)
        assert_int_equal(vmm_backend_from_string(vmm_backend_to_string((vmm_backend)i)), i);
    for (int i = 0; i < _VMM_ACCEL_MAX; i++)
        assert_int_equal(vmm_accel_from_string(vmm_accel_to_string((vmm_accel)i)), i);
    for (int i = 0; i < _VMM_CHANNEL_MAX; i++)
        assert_int_equal(vmm_channel_from_string(vmm_channel_to_string((vmm_channel)i)), i);
    for (int i = 0; i < _VMM_NET_MAX; i++)
        assert_int_equal(vmm_net_from_string(vmm_net_to_string((vmm_net)i)), i);
    assert_string_equal(vmm_backend_to_string(VMM_BACKEND_LIBVIRT), "libvirt");
    assert_string_equal(vmm_accel_to_string(VMM_ACCEL_TCG), "tcg");
    assert_string_equal(vmm_channel_to_string(VMM_CHANNEL_SERIAL), "serial");
    assert_string_equal(vmm_net_to_string(VMM_NET_TAP), "tap");
    assert_int_equal(vmm_backend_from_string("Qemu"), _VMM_BACKEND_INVALID);
    assert_int_equal(vmm_accel_from_string(NULL), _VMM_ACCEL_INVALID);
    assert_null(vmm_channel_to_string(_VMM_CHANNEL_INVALID));
    assert_null(vmm_net_to_string(_VMM_NET_MAX));

    char **v = cc_xzalloc(3 * sizeof(char *));
    v[0] = cc_xstrdup("a");
    v[1] = cc_xstrdup("b");
    assert_null(vmm_strv_free(v));
    assert_null(vmm_strv_free(NULL));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped_configs),
        cmocka_unit_test(test_shipped_details),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_ranges),
        cmocka_unit_test(test_combinations),
        cmocka_unit_test(test_snp_id_block),
        cmocka_unit_test(test_relative_paths),
        cmocka_unit_test(test_parse_and_io_errors),
        cmocka_unit_test(test_annotations_allowed),
        cmocka_unit_test(test_annotations_denied),
        cmocka_unit_test(test_annotations_bad_values),
        cmocka_unit_test(test_resolve_guest),
        cmocka_unit_test(test_enum_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
