/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The libvirt backend (../shared/specs/confidential-vm-launch.md §3), built as the plugin
 * cloak-vmm-libvirt.so and exported as vmm_libvirt_backend.
 *
 * Threads: libvirt's default event implementation runs on a thread of its own (started once
 * per process, libvirt-util.c). Lifecycle and connection-close callbacks run there; they
 * never touch the instance, only a small refcounted "report" that posts the exit into the
 * caller's cc_loop (cc_loop_post), where exited() runs once. Everything else (start, stop,
 * kill, free) runs on the loop thread.
 *
 * Exit statuses handed to exited():
 *   0      "libvirt: shutdown"          the guest powered off
 *   137    "libvirt: destroyed"         virDomainDestroy (ours or anybody's): like SIGKILL
 *   137    "libvirt: crashed"           QEMU died or the guest crashed (on_crash=destroy)
 *   1      "libvirt: failed" / "libvirt: stopped (<detail>)"   startup failure, save...
 *   137    "libvirt: connection lost"   the daemon went away; with AUTODESTROY the domain
 *                                       is destroyed when libvirtd notices our connection dropped
 */
#include "libvirt-priv.h"
#include "loop.h"
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STATUS_KILLED (128 + 9)

/* What the event thread shares with the loop thread. */
typedef struct lv_report {
    atomic_int refs;
    pthread_mutex_t lock; /* guards reported, status, reason */
    bool reported;
    bool dead; /* loop thread only: the instance was freed, exited() must not run */
    int status;
    char reason[96];
    char *name; /* the domain's: events of other domains on the connection are ignored */
    cc_loop *loop;
    void (*exited)(int exit_status, const char *reason, void *ctx);
    void *ctx;
} lv_report;

struct vmm_backend_instance {
    virConnectPtr conn;
    virDomainPtr dom;
    char *name;
    int callback_id; /* -1: none */
    bool close_registered;
    lv_report *report;
};

static lv_report *
report_ref(lv_report *rep)
{
    atomic_fetch_add(&rep->refs, 1);
    return rep;
}

static void
report_unref(void *p)
{
    lv_report *rep = p;

    if (!rep || atomic_fetch_sub(&rep->refs, 1) != 1)
        return;
    pthread_mutex_destroy(&rep->lock);
    free(rep->name);
    free(rep);
}

/* Loop thread: the posted exit. */
static void
report_run(cc_loop *loop, void *userdata)
{
    lv_report *rep = userdata;

    if (!rep->dead)
        rep->exited(rep->status, rep->reason, rep->ctx);
    report_unref(rep);
}

/* Any thread: records the first exit and posts it into the loop. */
static void
report_exit(lv_report *rep, int status, const char *reason)
{
    pthread_mutex_lock(&rep->lock);
    if (rep->reported) {
        pthread_mutex_unlock(&rep->lock);
        return;
    }
    rep->reported = true;
    rep->status = status;
    snprintf(rep->reason, sizeof(rep->reason), "%s", reason);
    pthread_mutex_unlock(&rep->lock);
    if (cc_loop_post(rep->loop, report_run, report_ref(rep)) < 0)
        report_unref(rep);
}

/* Event thread. Registered for all domains of our own connection; filters by name. */
static int
on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque)
{
    lv_report *rep = opaque;
    char reason[64];

    if (event != VIR_DOMAIN_EVENT_STOPPED || !cc_streq(virDomainGetName(dom), rep->name))
        return 0;
    switch (detail) {
    case VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN:
        report_exit(rep, 0, "libvirt: shutdown");
        break;
    case VIR_DOMAIN_EVENT_STOPPED_DESTROYED:
        report_exit(rep, STATUS_KILLED, "libvirt: destroyed");
        break;
    case VIR_DOMAIN_EVENT_STOPPED_CRASHED:
        report_exit(rep, STATUS_KILLED, "libvirt: crashed");
        break;
    case VIR_DOMAIN_EVENT_STOPPED_FAILED:
        report_exit(rep, 1, "libvirt: failed");
        break;
    default:
        snprintf(reason, sizeof(reason), "libvirt: stopped (detail %d)", detail);
        report_exit(rep, 1, reason);
        break;
    }
    return 0;
}

/* Event thread. */
static void
on_close(virConnectPtr conn, int reason, void *opaque)
{
    if (reason != VIR_CONNECT_CLOSE_REASON_CLIENT)
        report_exit(opaque, STATUS_KILLED, "libvirt: connection lost");
}

/*
 * QEMU's pid from the driver's pidfile (system: /run/libvirt/qemu/<name>.pid, session:
 * $XDG_RUNTIME_DIR/libvirt/qemu/run/<name>.pid). Best effort: 0 when unknown.
 */
static int
read_qemu_pid(const char *uri, const char *name)
{
    _cleanup_free_ char *path = NULL;
    _cleanup_fclose_ FILE *f = NULL;
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    int pid = 0;

    if (strstr(uri, ":///system"))
        path = cc_xasprintf("/run/libvirt/qemu/%s.pid", name);
    else if (strstr(uri, ":///session") && xdg)
        path = cc_xasprintf("%s/libvirt/qemu/run/%s.pid", xdg, name);
    else
        return 0;
    f = fopen(path, "re");
    if (!f || fscanf(f, "%d", &pid) != 1 || pid <= 0)
        return 0;
    return pid;
}

static vmm_backend_instance *
instance_free(vmm_backend_instance *bi)
{
    if (!bi)
        return NULL;
    if (bi->conn && bi->callback_id >= 0)
        virConnectDomainEventDeregisterAny(bi->conn, bi->callback_id);
    if (bi->conn && bi->close_registered)
        virConnectUnregisterCloseCallback(bi->conn, on_close);
    if (bi->report)
        bi->report->dead = true;
    if (bi->dom)
        virDomainFree(bi->dom);
    if (bi->conn)
        virConnectClose(bi->conn); /* AUTODESTROY: a domain still running goes with it */
    report_unref(bi->report);
    free(bi->name);
    free(bi);
    return NULL;
}
CC_DEFINE_CLEANUP(vmm_backend_instance, instance_free)

static lv_report *
report_new(const char *name, cc_loop *loop, void (*exited)(int, const char *, void *), void *ctx)
{
    lv_report *rep = cc_xzalloc(sizeof(*rep));

    rep->name = cc_xstrdup(name);
    atomic_init(&rep->refs, 1);
    pthread_mutex_init(&rep->lock, NULL);
    rep->loop = loop;
    rep->exited = exited;
    rep->ctx = ctx;
    return rep;
}

/* Registers the lifecycle and close callbacks (before the domain exists: no event is lost). */
static int
register_callbacks(vmm_backend_instance *bi, cc_error **err)
{
    bi->callback_id = virConnectDomainEventRegisterAny(
        bi->conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE, VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle),
        report_ref(bi->report), report_unref);
    /* On failure libvirt may or may not have called the free callback: leak the reference
     * rather than risk a double free. */
    if (bi->callback_id < 0)
        return vmm_lv_error(err, -EIO, "virConnectDomainEventRegisterAny");
    if (virConnectRegisterCloseCallback(bi->conn, on_close, report_ref(bi->report),
                                        report_unref) < 0)
        return vmm_lv_error(err, -EIO, "virConnectRegisterCloseCallback");
    bi->close_registered = true;
    /*
     * No client keepalive (virConnectSetKeepAlive): over the local socket a dead daemon is an
     * EOF, which fires on_close anyway; a keepalive timeout on a merely slow daemon would
     * close our connection, and AUTODESTROY would then kill a healthy VM.
     */
    return 0;
}

static int
lv_start(cc_loop *loop, const vmm_vm *vm,
         void (*exited)(int exit_status, const char *reason, void *ctx), void *ctx,
         vmm_backend_instance **ret, int *ret_pid, cc_error **err)
{
    _cleanup_(instance_freep) vmm_backend_instance *bi = NULL;
    _cleanup_free_ char *xml = NULL;
    const char *uri = vmm_lv_uri(vm->config->libvirt_uri);
    int r;

    r = vmm_libvirt_xml(vm, &xml, err);
    if (r < 0)
        return r;
    r = vmm_lv_event_init(err);
    if (r < 0)
        return r;
    bi = cc_xzalloc(sizeof(*bi));
    bi->callback_id = -1;
    bi->name = cc_xasprintf("cloak-%s", vm->id);
    bi->report = report_new(bi->name, loop, exited, ctx);
    r = vmm_lv_open(uri, false, &bi->conn, err);
    if (r < 0)
        return r;
    r = register_callbacks(bi, err);
    if (r < 0)
        return r;
    bi->dom = virDomainCreateXML(bi->conn, xml, VIR_DOMAIN_START_AUTODESTROY);
    if (!bi->dom) {
        r = vmm_lv_error(err, -EIO, "virDomainCreateXML");
        return cc_error_prefix(err, r, "start '%s' on %s", bi->name, uri);
    }
    *ret_pid = read_qemu_pid(uri, bi->name);
    *ret = TAKE_PTR(bi);
    return 0;
}

/* True when the last error says the domain is already gone (or not running). */
static bool
domain_gone(void)
{
    int code = vmm_lv_last_code();

    return code == VIR_ERR_NO_DOMAIN || code == VIR_ERR_OPERATION_INVALID;
}

static int
lv_kill(vmm_backend_instance *bi, cc_error **err)
{
    if (virDomainDestroy(bi->dom) < 0 && !domain_gone())
        return vmm_lv_error(err, -EIO, "virDomainDestroy");
    return 0;
}

/*
 * virDomainShutdown (ACPI) is pointless for our minimal guests: SIGTERM QEMU (GRACEFUL waits
 * for it a few seconds), then the full destroy (SIGKILL) when that did not do it.
 */
static int
lv_stop(vmm_backend_instance *bi, cc_error **err)
{
    if (virDomainDestroyFlags(bi->dom, VIR_DOMAIN_DESTROY_GRACEFUL) == 0 || domain_gone())
        return 0;
    return lv_kill(bi, err);
}

static void
lv_free(vmm_backend_instance *bi)
{
    instance_free(bi);
}

__attribute__((visibility("default"))) const vmm_backend_ops vmm_libvirt_backend = {
    .name = "libvirt",
    .start = lv_start,
    .stop = lv_stop,
    .kill = lv_kill,
    .free = lv_free,
    .supports = vmm_lv_supports,
    .destroy_leftover = vmm_lv_destroy_leftover,
};
