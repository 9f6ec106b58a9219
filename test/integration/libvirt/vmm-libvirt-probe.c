/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test helper for the libvirt plugin (test/integration/libvirt.cmake):
 *   vmm-libvirt-probe [--uri URI] PROFILE...
 * Loads cloak-vmm-libvirt.so through vmm_libvirt_ops() and prints one line per profile:
 *   profile=<p> supported=yes|no reason="<why not>"
 * Also checks that libvirt is mapped only once the plugin is loaded (cloak-vmm must not link
 * it): "maps before=no after=yes". Exit 0 when everything ran, 1 on errors, 2 on usage.
 */
#include "backend.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool
libvirt_mapped(void)
{
    FILE *f = fopen("/proc/self/maps", "re");
    char line[4096];
    bool found = false;

    if (!f)
        return false;
    while (!found && fgets(line, sizeof(line), f))
        found = strstr(line, "libvirt.so") != NULL;
    fclose(f);
    return found;
}

static int
probe_one(const vmm_backend_ops *ops, const char *uri, const char *name)
{
    _cleanup_error_ cc_error *e = NULL;
    _cleanup_free_ char *reason = NULL;
    vmm_profile p = vmm_profile_from_string(name);
    bool ok = false;

    if (p < 0) {
        fprintf(stderr, "vmm-libvirt-probe: unknown profile '%s'\n", name);
        return 2;
    }
    if (ops->supports(uri, p, &ok, &reason, &e) < 0) {
        fprintf(stderr, "vmm-libvirt-probe: %s\n", cc_error_message(e));
        return 1;
    }
    printf("profile=%s supported=%s reason=\"%s\"\n", name, ok ? "yes" : "no",
           reason ? reason : "");
    return 0;
}

int
main(int argc, char **argv)
{
    _cleanup_error_ cc_error *e = NULL;
    const vmm_backend_ops *ops;
    const char *uri = "qemu:///system";
    bool before, after;
    int i = 1, rc = 0;

    if (argc > 2 && strcmp(argv[1], "--uri") == 0) {
        uri = argv[2];
        i = 3;
    }
    if (i >= argc) {
        fprintf(stderr, "usage: vmm-libvirt-probe [--uri URI] PROFILE...\n");
        return 2;
    }
    before = libvirt_mapped();
    ops = vmm_libvirt_ops(&e);
    if (!ops) {
        fprintf(stderr, "vmm-libvirt-probe: %s\n", cc_error_message(e));
        return 1;
    }
    after = libvirt_mapped();
    printf("maps before=%s after=%s\n", before ? "yes" : "no", after ? "yes" : "no");
    if (vmm_libvirt_ops(NULL) != ops) {
        fprintf(stderr, "vmm-libvirt-probe: the ops are not cached\n");
        rc = 1;
    }
    for (; i < argc; i++) {
        int r = probe_one(ops, uri, argv[i]);
        if (r > rc)
            rc = r;
    }
    return rc;
}
