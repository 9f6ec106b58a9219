/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The interface between vmm/instance.c and a backend. The qemu backend is linked in; the
 * libvirt backend is a plugin (cloak-vmm-libvirt.so) loaded with dlopen only when used, so
 * a shim on the qemu backend never maps libvirt.
 */
#pragma once

#include "vmm.h"

/* What a backend tells instance.c; set by the backend, read by instance.c. */
typedef struct vmm_backend_instance vmm_backend_instance; /* the backend's own state */

typedef struct vmm_backend_ops {
    const char *name; /* "qemu", "libvirt" */
    /*
     * Starts vm; calls exited(exit_status, reason, ctx) once, on the loop thread, when the VM
     * is gone. ret_pid: QEMU's pid (0 if unknown).
     */
    int (*start)(cc_loop *loop, const vmm_vm *vm,
                 void (*exited)(int exit_status, const char *reason, void *ctx), void *ctx,
                 vmm_backend_instance **ret, int *ret_pid, cc_error **err);
    /* Asks the VM to go away (may return before it is gone; exited() follows). */
    int (*stop)(vmm_backend_instance *bi, cc_error **err);
    /* Hard stop now (SIGKILL / virDomainDestroy); exited() follows. */
    int (*kill)(vmm_backend_instance *bi, cc_error **err);
    /* Frees backend state; the VM must be gone. */
    void (*free)(vmm_backend_instance *bi);
    /*
     * libvirt only: whether this host's libvirt (at uri) can run the profile, and why not
     * (*ret_reason, owned by the caller). NULL for backends without a probe.
     */
    int (*supports)(const char *uri, vmm_profile profile, bool *ret_supported,
                    char **ret_reason, cc_error **err);
    /* libvirt only: destroy domain "name" at uri if it exists (crash cleanup). */
    int (*destroy_leftover)(const char *uri, const char *name, cc_error **err);
} vmm_backend_ops;

extern const vmm_backend_ops vmm_qemu_backend;

/* The symbol the libvirt plugin exports. */
#define VMM_LIBVIRT_PLUGIN_SYMBOL "vmm_libvirt_backend"
#define VMM_LIBVIRT_PLUGIN_NAME "cloak-vmm-libvirt.so"

/*
 * The libvirt backend's ops, loading the plugin on first use (plugin.c): looks in
 * $CLOAK_VMM_LIBVIRT_PLUGIN, then <exe dir>/../vmm/ (build tree), then <exe dir>/,
 * then <prefix>/lib/cloak/. -ENOENT/-ELIBBAD with the places tried.
 */
const vmm_backend_ops *vmm_libvirt_ops(cc_error **err);
