/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libvirt plumbing shared by the plugin: the process-wide event thread, opening a
 * connection, and turning libvirt's per-thread last error into a cc_error.
 */
#include "libvirt-priv.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>

/* Written once by pthread_once, read-only afterwards. */
static pthread_once_t event_once = PTHREAD_ONCE_INIT;
static int event_init_result;

const char *
vmm_lv_uri(const char *uri)
{
    return uri && uri[0] ? uri : VMM_LIBVIRT_DEFAULT_URI;
}

int
vmm_lv_last_code(void)
{
    virErrorPtr e = virGetLastError();

    return e ? e->code : 0;
}

int
vmm_lv_error(cc_error **err, int r, const char *what)
{
    virErrorPtr e = virGetLastError();

    if (r == 0)
        r = -EIO;
    return cc_error_msg(err, r, "libvirt: %s: %s", what,
                        e && e->message ? e->message : "unknown error");
}

/* libvirt prints every error to stderr by default; ours are reported through cc_error. */
static void
quiet_errors(void *userdata, virErrorPtr e)
{
    cc_log(CC_LOG_DEBUG, "libvirt: %s", e && e->message ? e->message : "error");
}

static void *
event_thread(void *userdata)
{
    for (;;) {
        if (virEventRunDefaultImpl() < 0)
            cc_log(CC_LOG_DEBUG, "libvirt: virEventRunDefaultImpl failed");
    }
    return NULL;
}

static void
event_init_once(void)
{
    sigset_t all, old;
    pthread_attr_t attr;
    pthread_t t;

    virSetErrorFunc(NULL, quiet_errors);
    if (virInitialize() < 0 || virEventRegisterDefaultImpl() < 0) {
        event_init_result = -EIO;
        return;
    }
    /* The thread must not take the process's signals (the loop reads them from a signalfd). */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    event_init_result = -pthread_create(&t, &attr, event_thread, NULL);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

int
vmm_lv_event_init(cc_error **err)
{
    pthread_once(&event_once, event_init_once);
    if (event_init_result == -EIO)
        return vmm_lv_error(err, -EIO, "virEventRegisterDefaultImpl");
    if (event_init_result < 0)
        return cc_error_set(err, event_init_result, "libvirt: event thread");
    return 0;
}

int
vmm_lv_open(const char *uri, bool read_only, virConnectPtr *ret, cc_error **err)
{
    virConnectPtr c;
    int r;

    r = vmm_lv_event_init(err);
    if (r < 0)
        return r;
    uri = vmm_lv_uri(uri);
    c = read_only ? virConnectOpenReadOnly(uri) : virConnectOpen(uri);
    if (!c) {
        r = vmm_lv_error(err, -ECONNREFUSED, "virConnectOpen");
        return cc_error_prefix(err, r, "open '%s'", uri);
    }
    *ret = c;
    return 0;
}
