/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A small QMP client (QEMU Machine Protocol: one JSON object per line over a unix socket)
 * for the qemu backend. The handshake (greeting, qmp_capabilities) is synchronous and
 * bounded by a deadline; afterwards the client runs on a cc_loop: replies are matched to
 * commands in order (QMP answers in order when no out-of-band commands are used), events
 * ({"event": ...}) may arrive interleaved and go to the event handler.
 *
 * Lines are bounded (VMM_QMP_LINE_MAX); a longer line is a protocol error that closes the
 * client. Loop thread only; objects are not thread-safe.
 */
#pragma once

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "macro.h"

typedef struct cc_loop cc_loop;
typedef struct vmm_qmp vmm_qmp;

#define VMM_QMP_LINE_MAX (256u * 1024u)
#define VMM_QMP_PENDING_MAX 16

typedef enum vmm_qmp_msg_type {
    VMM_QMP_MSG_GREETING, /* {"QMP": {...}} */
    VMM_QMP_MSG_RETURN,   /* {"return": ...} */
    VMM_QMP_MSG_ERROR,    /* {"error": {"class": ..., "desc": ...}} */
    VMM_QMP_MSG_EVENT,    /* {"event": "NAME", "data": {...}, "timestamp": {...}} */
    _VMM_QMP_MSG_MAX,
    _VMM_QMP_MSG_INVALID = -EINVAL,
} vmm_qmp_msg_type;

/* One parsed message. root is owned; the rest is borrowed from it. */
typedef struct vmm_qmp_msg {
    vmm_qmp_msg_type type;
    json_t *root;
    const char *event;      /* EVENT: its name */
    json_t *data;           /* EVENT: "data" (NULL if absent); RETURN: the returned value */
    const char *error_desc; /* ERROR: "<class>: <desc>" lives in desc_buf */
    char desc_buf[512];
} vmm_qmp_msg;

/*
 * Parses one line (without the newline) into *ret. -EINVAL with a message for anything that
 * is not one of the four shapes above. Pure; never blocks.
 */
int vmm_qmp_parse(const char *line, size_t len, vmm_qmp_msg *ret, cc_error **err);
/* Releases m->root. */
void vmm_qmp_msg_done(vmm_qmp_msg *m);

/* Event handler: name and data (borrowed, may be NULL). */
typedef void (*vmm_qmp_event_fn)(vmm_qmp *q, const char *event, json_t *data, void *userdata);
/* The connection is gone (r = 0: EOF; else a negative errno, err_msg says why). */
typedef void (*vmm_qmp_closed_fn)(vmm_qmp *q, int r, const char *err_msg, void *userdata);
/* A command's reply: r = 0 and ret (borrowed) on success; -EIO and err_msg for a QMP error;
 * -ECONNRESET (ret NULL) when the connection closed before the reply. */
typedef void (*vmm_qmp_reply_fn)(vmm_qmp *q, int r, json_t *ret, const char *err_msg,
                                 void *userdata);

/*
 * A client on an already-connected fd (owned; -1 for tests that only feed bytes). Does not
 * start watching the fd: vmm_qmp_handshake() does. Never fails (aborts on OOM).
 */
vmm_qmp *vmm_qmp_new(int fd, vmm_qmp_event_fn on_event, vmm_qmp_closed_fn on_closed,
                     void *userdata);
vmm_qmp *vmm_qmp_free(vmm_qmp *q);
CC_DEFINE_CLEANUP(vmm_qmp, vmm_qmp_free)

/*
 * Connects to the unix socket at path, retrying while it does not exist or refuses
 * (QEMU creates it early in its start), until deadline_usec (CLOCK_MONOTONIC). When
 * abort_fd >= 0 (a pidfd) becomes readable, gives up with -ECHILD. Blocks (polls every
 * 20 ms). *ret_fd is a CLOEXEC, non-blocking socket.
 */
int vmm_qmp_connect_unix(const char *path, uint64_t deadline_usec, int abort_fd, int *ret_fd,
                         cc_error **err);

/*
 * Reads the greeting, negotiates capabilities and waits for their reply, blocking until
 * deadline_usec (-ETIMEDOUT) or abort_fd readable (-ECHILD); then watches the fd on loop.
 * Events that arrive meanwhile go to on_event.
 */
int vmm_qmp_handshake(vmm_qmp *q, cc_loop *loop, uint64_t deadline_usec, int abort_fd,
                      cc_error **err);

/*
 * Sends {"execute": command[, "arguments": args]} (args borrowed, may be NULL); on_reply
 * (may be NULL) runs later, on the loop thread. The write does not wait: a socket that
 * cannot take the whole command at once is -EAGAIN (QMP commands are tiny). -ENOTCONN once
 * closed, -ENOBUFS past VMM_QMP_PENDING_MAX commands in flight.
 */
int vmm_qmp_execute(vmm_qmp *q, const char *command, json_t *args, vmm_qmp_reply_fn on_reply,
                    void *userdata, cc_error **err);

/*
 * Feeds received bytes: splits lines, parses and dispatches them (handshake state, replies,
 * events). Returns 0 or a negative errno (line too long, malformed JSON). Exposed for tests.
 */
int vmm_qmp_feed(vmm_qmp *q, const char *data, size_t len, cc_error **err);
/* True once the capabilities negotiation succeeded. */
bool vmm_qmp_is_ready(const vmm_qmp *q);
