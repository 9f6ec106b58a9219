/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloakctl vm-config: a pure dry run of what a config launches. Prints the QEMU argv (one
 * argument per line) or the libvirt domain XML. It never probes the host and never opens the
 * files the config names:
 * - host facts are those of a production host: KVM and vhost-vsock present;
 * - backend: --backend wins; else the config's; "auto" means what a launch would prefer
 *   without probing (spec §2.4 step 4): libvirt for none/sev, qemu for sev-snp/tdx, and qemu
 *   whenever the network is tap (libvirt cannot take a tap fd);
 * - the guest kernel/initrd are not resolved (vmm_config_resolve_guest stats files): when the
 *   config leaves them unset, the placeholders "$CLOAK_GUEST_DIR/vmlinuz" and
 *   "$CLOAK_GUEST_DIR/initrd.img" are printed;
 * - id defaults to "dry-run", state dir to "/run/cloak/<id>".
 */
#include "cloakctl.h"
#include "fs.h"
#include "util.h"
#include "vmm.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct vm_config_args {
    const char *config;
    const char *backend;
    const char *initdata;
    const char *id;
    const char *state_dir;
} vm_config_args;

static void
vm_config_usage(FILE *f)
{
    fprintf(f, "usage: cloakctl vm-config --config FILE [--backend libvirt|qemu] "
               "[--initdata FILE] [--id ID] [--state-dir DIR]\n");
}

static int
parse_args(int argc, char **argv, vm_config_args *a)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"backend", required_argument, NULL, 'b'},
        {"initdata", required_argument, NULL, 'i'},
        {"id", required_argument, NULL, 'n'},
        {"state-dir", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    int o;

    optind = 1;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'c':
            a->config = optarg;
            break;
        case 'b':
            a->backend = optarg;
            break;
        case 'i':
            a->initdata = optarg;
            break;
        case 'n':
            a->id = optarg;
            break;
        case 's':
            a->state_dir = optarg;
            break;
        case 'h':
            vm_config_usage(stdout);
            return 0;
        default:
            vm_config_usage(stderr);
            return 2;
        }
    }
    if (!a->config || optind < argc) {
        vm_config_usage(stderr);
        return 2;
    }
    return -1; /* go on */
}

static vmm_backend
pick_backend(const vmm_config *c, vmm_backend forced)
{
    vmm_backend b = forced != VMM_BACKEND_AUTO ? forced : c->backend;

    if (b != VMM_BACKEND_AUTO)
        return b;
    if (c->net == VMM_NET_TAP)
        return VMM_BACKEND_QEMU;
    if (c->profile == VMM_PROFILE_NONE || c->profile == VMM_PROFILE_SEV)
        return VMM_BACKEND_LIBVIRT;
    return VMM_BACKEND_QEMU;
}

static int
print_launch(const vmm_vm *vm, vmm_backend backend, cc_error **err)
{
    if (backend == VMM_BACKEND_LIBVIRT) {
        _cleanup_free_ char *xml = NULL;
        int r = vmm_libvirt_xml(vm, &xml, err);
        if (r < 0)
            return r;
        fputs(xml, stdout);
        return 0;
    }
    char **argv = NULL;
    int r = vmm_qemu_argv(vm, &argv, err);
    if (r < 0)
        return r;
    for (char **a = argv; *a; a++)
        printf("%s\n", *a);
    vmm_strv_free(argv);
    return 0;
}

static int
run(const vm_config_args *a, cc_error **err)
{
    _cleanup_(vmm_config_freep) vmm_config *c = NULL;
    _cleanup_(vmm_vm_freep) vmm_vm *vm = NULL;
    _cleanup_free_ char *initdata = NULL, *state_dir = NULL;
    size_t initdata_len = 0;
    vmm_backend forced = VMM_BACKEND_AUTO;
    const char *id = a->id ? a->id : "dry-run";
    int r;

    if (a->backend) {
        forced = vmm_backend_from_string(a->backend);
        if (forced != VMM_BACKEND_QEMU && forced != VMM_BACKEND_LIBVIRT)
            return cc_error_msg(err, -EINVAL, "--backend '%s': expected libvirt or qemu",
                                a->backend);
    }
    r = vmm_config_load(a->config, &c, err);
    if (r < 0)
        return r;
    if (!c->kernel)
        c->kernel = cc_xstrdup("$CLOAK_GUEST_DIR/vmlinuz");
    if (!c->initrd)
        c->initrd = cc_xstrdup("$CLOAK_GUEST_DIR/initrd.img");
    if (a->initdata) {
        r = cc_read_file(a->initdata, 1 << 20, &initdata, &initdata_len, err);
        if (r < 0)
            return cc_error_prefix(err, r, "initdata '%s'", a->initdata);
    }
    state_dir = a->state_dir ? cc_xstrdup(a->state_dir) : cc_xasprintf("/run/cloak/%s", id);
    vmm_vm_params p = {
        .id = id,
        .state_dir = state_dir,
        .initdata = initdata,
        .initdata_len = initdata_len,
        .host = {.has_kvm = true, .has_vhost_vsock = true},
    };
    r = vmm_vm_new(c, &p, &vm, err);
    if (r < 0)
        return r;
    return print_launch(vm, pick_backend(c, forced), err);
}

int
cloakctl_vm_config(int argc, char **argv)
{
    vm_config_args a = {0};
    _cleanup_error_ cc_error *err = NULL;
    int r = parse_args(argc, argv, &a);

    if (r >= 0)
        return r;
    if (run(&a, &err) < 0) {
        fprintf(stderr, "cloakctl vm-config: %s\n", cc_error_message(err));
        return 1;
    }
    return 0;
}
