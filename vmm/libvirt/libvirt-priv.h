/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internals of the libvirt backend plugin (cloak-vmm-libvirt.so): shared by the lifecycle
 * part (libvirt-backend.c) and the probes (libvirt-probe.c). Only vmm_libvirt_backend is
 * exported from the plugin (libvirt.map).
 */
#pragma once

#include "backend.h"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <stdbool.h>

#define VMM_LIBVIRT_DEFAULT_URI "qemu:///system"

/* uri, or the default when NULL/empty. */
const char *vmm_lv_uri(const char *uri);

/*
 * Sets *err to "libvirt: <what>: <libvirt's last error message>" and returns r, or -EIO when
 * r is 0. The last error is per thread, so call it right after the failing call.
 */
int vmm_lv_error(cc_error **err, int r, const char *what);
/* libvirt's last error code on this thread (VIR_ERR_*), 0 when none. */
int vmm_lv_last_code(void);

/*
 * Registers libvirt's default event implementation and starts the thread that runs it, once
 * per process (virEventRegisterDefaultImpl must precede the first virConnectOpen*). Any
 * thread; blocks only for the first call.
 */
int vmm_lv_event_init(cc_error **err);

/* Opens uri (default qemu:///system), read-only when asked. Blocks (a socket connect). */
int vmm_lv_open(const char *uri, bool read_only, virConnectPtr *ret, cc_error **err);

/* The ops' probes (libvirt-probe.c). */
int vmm_lv_supports(const char *uri, vmm_profile profile, bool *ret_supported, char **ret_reason,
                    cc_error **err);
int vmm_lv_destroy_leftover(const char *uri, const char *name, cc_error **err);

/* The plugin's export (libvirt-backend.c). */
extern const vmm_backend_ops vmm_libvirt_backend;
