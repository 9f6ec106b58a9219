/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloakctl check [--config FILE]: which profiles this host can run, and why not, as a
 * table. Exit status 0 when the configured profile can run, 1 when it cannot, 2 on usage.
 */
#include <getopt.h>
#include <stdio.h>

#include "check.h"
#include "cloakctl.h"
#include "util.h"

#define DEFAULT_CONFIG_NAME "cloak-dev.toml"

static int
load_config(const char *path, vmm_config **ret)
{
    _cleanup_error_ cc_error *e = NULL;
    if (path) {
        if (vmm_config_load(path, ret, &e) < 0) {
            fprintf(stderr, "cloakctl check: %s\n", cc_error_message(e));
            return -1;
        }
        return 0;
    }
    /* No config: the defaults (profile none, qemu backend), as a fresh install has. */
    if (vmm_config_load_buffer("", 0, NULL, ret, &e) < 0) {
        fprintf(stderr, "cloakctl check: %s\n", cc_error_message(e));
        return -1;
    }
    return 0;
}

int
cloakctl_check(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {},
    };
    const char *config = NULL;
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "c:h", opts, NULL)) >= 0) {
        switch (o) {
        case 'c':
            config = optarg;
            break;
        case 'h':
            printf("usage: cloakctl check [--config FILE]\n");
            return 0;
        default:
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "cloakctl check: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }

    _cleanup_(vmm_config_freep) vmm_config *c = NULL;
    if (load_config(config, &c) < 0)
        return 1;
    _cleanup_(vmm_check_report_freep) vmm_check_report *r = NULL;
    _cleanup_error_ cc_error *e = NULL;
    bool ask_libvirt = c->backend != VMM_BACKEND_QEMU;
    if (vmm_check_host(c, "/", ask_libvirt, &r, &e) < 0) {
        fprintf(stderr, "cloakctl check: %s\n", cc_error_message(e));
        return 1;
    }

    printf("qemu:        %s\n", r->qemu);
    printf("kvm:         %s%s\n", r->has_kvm ? "yes (/dev/kvm)" : "no, TCG only: ",
           r->has_kvm ? "" : r->kvm_unusable);
    printf("agent:       %s\n", r->has_vhost_vsock ? "vsock (/dev/vhost-vsock)"
                                                   : "virtio-serial (no /dev/vhost-vsock)");
    if (r->libvirt)
        printf("libvirt:     %s\n", r->libvirt);
    printf("\n%-9s %-5s %s\n", "PROFILE", "RUNS", "DETAIL");
    for (int p = 0; p < _VMM_PROFILE_MAX; p++) {
        const vmm_check_item *it = &r->items[p];
        printf("%-9s %-5s %s%s%s%s\n", vmm_profile_to_string((vmm_profile)p),
               it->runs ? "yes" : "no", it->detail, it->libvirt ? " [libvirt: " : "",
               it->libvirt ? it->libvirt : "", it->libvirt ? "]" : "");
    }
    bool ok = r->items[r->configured].runs;
    printf("\nconfigured profile %s: %s\n", vmm_profile_to_string(r->configured),
           ok ? "can run here" : "cannot run here");
    return ok ? 0 : 1;
}
