/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
/*
 * QMP client: see qmp.h. The receive buffer grows up to VMM_QMP_LINE_MAX; replies are
 * matched to a FIFO of pending commands.
 */
#include "qmp.h"

#include "json.h"
#include "loop.h"
#include "util.h"

#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

typedef enum qmp_state {
    QMP_WAIT_GREETING,
    QMP_WAIT_CAPS,
    QMP_READY,
    QMP_CLOSED,
} qmp_state;

typedef struct qmp_pending {
    vmm_qmp_reply_fn fn;
    void *userdata;
} qmp_pending;

struct vmm_qmp {
    int fd;
    qmp_state state;
    cc_loop_source *io;
    char *buf;
    size_t len, cap;
    qmp_pending pending[VMM_QMP_PENDING_MAX];
    size_t n_pending, head;
    vmm_qmp_event_fn on_event;
    vmm_qmp_closed_fn on_closed;
    void *userdata;
};

void
vmm_qmp_msg_done(vmm_qmp_msg *m)
{
    json_decref(m->root);
    m->root = NULL;
}

static int
parse_error(json_t *e, vmm_qmp_msg *m, cc_error **err)
{
    const char *cls = NULL, *desc = NULL;

    if (!json_is_object(e))
        return cc_error_msg(err, -EINVAL, "qmp: 'error' is not an object");
    (void)cc_json_get_string(e, "class", &cls, NULL);
    (void)cc_json_get_string(e, "desc", &desc, NULL);
    snprintf(m->desc_buf, sizeof(m->desc_buf), "%s: %s", cls ? cls : "Error",
             desc ? desc : "(no description)");
    m->error_desc = m->desc_buf;
    m->type = VMM_QMP_MSG_ERROR;
    return 0;
}

int
vmm_qmp_parse(const char *line, size_t len, vmm_qmp_msg *ret, cc_error **err)
{
    _cleanup_json_ json_t *root = NULL;
    vmm_qmp_msg m = {.type = _VMM_QMP_MSG_INVALID};
    json_t *v;
    int r;

    r = cc_json_load_buffer(line, len, "qmp", VMM_QMP_LINE_MAX, &root, err);
    if (r < 0)
        return r;
    if (!json_is_object(root))
        return cc_error_msg(err, -EINVAL, "qmp: message is a %s, not an object",
                            cc_json_type_name(root));
    if ((v = json_object_get(root, "QMP"))) {
        m.type = VMM_QMP_MSG_GREETING;
        m.data = v;
    } else if ((v = json_object_get(root, "return"))) {
        m.type = VMM_QMP_MSG_RETURN;
        m.data = v;
    } else if ((v = json_object_get(root, "error"))) {
        r = parse_error(v, &m, err);
        if (r < 0)
            return r;
    } else if ((v = json_object_get(root, "event"))) {
        if (!json_is_string(v))
            return cc_error_msg(err, -EINVAL, "qmp: 'event' is not a string");
        m.type = VMM_QMP_MSG_EVENT;
        m.event = json_string_value(v);
        m.data = json_object_get(root, "data");
    } else {
        return cc_error_msg(err, -EINVAL, "qmp: unknown message (no QMP/return/error/event)");
    }
    m.root = TAKE_PTR(root);
    *ret = m;
    if (m.error_desc)
        ret->error_desc = ret->desc_buf;
    return 0;
}

vmm_qmp *
vmm_qmp_new(int fd, vmm_qmp_event_fn on_event, vmm_qmp_closed_fn on_closed, void *userdata)
{
    vmm_qmp *q = cc_xzalloc(sizeof(*q));

    q->fd = fd;
    q->on_event = on_event;
    q->on_closed = on_closed;
    q->userdata = userdata;
    return q;
}

/* Fails every pending reply (the connection is gone). */
static void
fail_pending(vmm_qmp *q)
{
    while (q->n_pending > 0) {
        qmp_pending p = q->pending[q->head];
        q->head = (q->head + 1) % VMM_QMP_PENDING_MAX;
        q->n_pending--;
        if (p.fn)
            p.fn(q, -ECONNRESET, NULL, "qmp: connection closed", p.userdata);
    }
}

vmm_qmp *
vmm_qmp_free(vmm_qmp *q)
{
    if (!q)
        return NULL;
    q->on_closed = NULL;
    q->state = QMP_CLOSED;
    fail_pending(q);
    cc_loop_source_free(q->io);
    cc_close(q->fd);
    free(q->buf);
    free(q);
    return NULL;
}

bool
vmm_qmp_is_ready(const vmm_qmp *q)
{
    return q->state == QMP_READY;
}

/* Marks the client closed (stops watching the fd) and tells the owner once. */
static void
qmp_close(vmm_qmp *q, int r, const char *msg)
{
    vmm_qmp_closed_fn fn = q->on_closed;

    if (q->state == QMP_CLOSED)
        return;
    q->state = QMP_CLOSED;
    q->io = cc_loop_source_free(q->io);
    fail_pending(q);
    q->on_closed = NULL;
    if (fn)
        fn(q, r, msg, q->userdata);
}

static int
send_line(vmm_qmp *q, const char *command, json_t *args, cc_error **err)
{
    _cleanup_json_ json_t *cmd = json_object();
    _cleanup_free_ char *text = NULL;
    ssize_t n;
    int r;

    json_object_set_new(cmd, "execute", json_string(command));
    if (args)
        json_object_set(cmd, "arguments", args);
    r = cc_json_dump(cmd, &text, err);
    if (r < 0)
        return r;
    size_t len = strlen(text);
    text = cc_xrealloc(text, len + 2);
    text[len++] = '\n';
    text[len] = '\0';
    n = send(q->fd, text, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0)
        return cc_error_set(err, -errno, "qmp: send '%s'", command);
    if ((size_t)n != len) {
        /* Half a command is on the wire: the stream is unusable. Shut it down so the read
         * side sees EOF and closes the client on the normal path (no re-entry from here). */
        (void)shutdown(q->fd, SHUT_RDWR);
        return cc_error_msg(err, -EPIPE, "qmp: send '%s': short write", command);
    }
    return 0;
}

static void
dispatch_reply(vmm_qmp *q, const vmm_qmp_msg *m)
{
    if (q->n_pending == 0)
        return; /* an unsolicited reply: ignore it */
    qmp_pending p = q->pending[q->head];
    q->head = (q->head + 1) % VMM_QMP_PENDING_MAX;
    q->n_pending--;
    if (!p.fn)
        return;
    if (m->type == VMM_QMP_MSG_RETURN)
        p.fn(q, 0, m->data, NULL, p.userdata);
    else
        p.fn(q, -EIO, NULL, m->error_desc, p.userdata);
}

static int
dispatch(vmm_qmp *q, const vmm_qmp_msg *m, cc_error **err)
{
    if (m->type == VMM_QMP_MSG_EVENT) {
        if (q->on_event)
            q->on_event(q, m->event, m->data, q->userdata);
        return 0;
    }
    switch (q->state) {
    case QMP_WAIT_GREETING:
        if (m->type != VMM_QMP_MSG_GREETING)
            return cc_error_msg(err, -EPROTO, "qmp: expected the greeting");
        q->state = QMP_WAIT_CAPS;
        return q->fd >= 0 ? send_line(q, "qmp_capabilities", NULL, err) : 0;
    case QMP_WAIT_CAPS:
        if (m->type == VMM_QMP_MSG_ERROR)
            return cc_error_msg(err, -EPROTO, "qmp: qmp_capabilities: %s", m->error_desc);
        if (m->type != VMM_QMP_MSG_RETURN)
            return cc_error_msg(err, -EPROTO, "qmp: unexpected greeting");
        q->state = QMP_READY;
        return 0;
    case QMP_READY:
        if (m->type == VMM_QMP_MSG_GREETING)
            return cc_error_msg(err, -EPROTO, "qmp: unexpected greeting");
        dispatch_reply(q, m);
        return 0;
    default:
        return 0;
    }
}

int
vmm_qmp_feed(vmm_qmp *q, const char *data, size_t len, cc_error **err)
{
    int r;

    if (q->len + len > q->cap) {
        q->cap = q->len + len + 4096;
        q->buf = cc_xrealloc(q->buf, q->cap);
    }
    memcpy(q->buf + q->len, data, len);
    q->len += len;

    size_t start = 0;
    char *nl;
    while (q->state != QMP_CLOSED && (nl = memchr(q->buf + start, '\n', q->len - start))) {
        size_t n = (size_t)(nl - (q->buf + start));
        if (n > VMM_QMP_LINE_MAX)
            return cc_error_msg(err, -EMSGSIZE, "qmp: line longer than %u bytes",
                                VMM_QMP_LINE_MAX);
        if (n > 0 && !(n == 1 && q->buf[start] == '\r')) {
            vmm_qmp_msg m;
            r = vmm_qmp_parse(q->buf + start, n, &m, err);
            if (r < 0)
                return r;
            r = dispatch(q, &m, err);
            vmm_qmp_msg_done(&m);
            if (r < 0)
                return r;
        }
        start += n + 1;
    }
    memmove(q->buf, q->buf + start, q->len - start);
    q->len -= start;
    if (q->len > VMM_QMP_LINE_MAX)
        return cc_error_msg(err, -EMSGSIZE, "qmp: line longer than %u bytes", VMM_QMP_LINE_MAX);
    return 0;
}

/* Reads what is available; 0 = EOF, 1 = more may come, negative errno on failure. */
static int
read_some(vmm_qmp *q, cc_error **err)
{
    char chunk[16384];
    ssize_t n = recv(q->fd, chunk, sizeof(chunk), MSG_DONTWAIT);

    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return 1;
        return cc_error_set(err, -errno, "qmp: recv");
    }
    if (n == 0)
        return 0;
    int r = vmm_qmp_feed(q, chunk, (size_t)n, err);
    return r < 0 ? r : 1;
}

static int
on_io(cc_loop_source *s, int fd, uint32_t revents, void *userdata)
{
    vmm_qmp *q = userdata;
    _cleanup_error_ cc_error *e = NULL;
    int r;

    (void)s, (void)fd, (void)revents;
    r = read_some(q, &e);
    if (r <= 0)
        qmp_close(q, r, r < 0 ? cc_error_message(e) : "qmp: connection closed by QEMU");
    return 0;
}

static int
remaining_ms(uint64_t deadline_usec)
{
    uint64_t now = cc_loop_now();
    if (now >= deadline_usec)
        return 0;
    uint64_t ms = (deadline_usec - now + 999) / 1000;
    return ms > 1000 ? 1000 : (int)ms;
}

/* Waits for fd readable; 1 ready, -ETIMEDOUT, -ECHILD (abort_fd fired), or -errno. */
static int
wait_readable(int fd, int abort_fd, uint64_t deadline_usec)
{
    for (;;) {
        struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = abort_fd, .events = POLLIN}};
        int ms = remaining_ms(deadline_usec);
        if (ms == 0)
            return -ETIMEDOUT;
        int n = poll(p, abort_fd >= 0 ? 2 : 1, ms);
        if (n < 0 && errno != EINTR)
            return -errno;
        if (n <= 0)
            continue;
        if (abort_fd >= 0 && p[1].revents)
            return -ECHILD;
        if (p[0].revents)
            return 1;
    }
}

int
vmm_qmp_handshake(vmm_qmp *q, cc_loop *loop, uint64_t deadline_usec, int abort_fd,
                  cc_error **err)
{
    int r;

    while (q->state != QMP_READY) {
        r = wait_readable(q->fd, abort_fd, deadline_usec);
        if (r == -ETIMEDOUT)
            return cc_error_msg(err, r, "qmp: no handshake before the deadline");
        if (r == -ECHILD)
            return cc_error_msg(err, r, "qmp: QEMU exited during the handshake");
        if (r < 0)
            return cc_error_set(err, r, "qmp: poll");
        r = read_some(q, err);
        if (r == 0)
            return cc_error_msg(err, -ECONNRESET, "qmp: QEMU closed the connection");
        if (r < 0)
            return r;
    }
    r = cc_loop_add_io(loop, q->fd, EPOLLIN, on_io, q, &q->io, err);
    if (r < 0)
        return cc_error_prefix(err, r, "qmp: watch");
    cc_loop_source_set_description(q->io, "qmp");
    return 0;
}

int
vmm_qmp_connect_unix(const char *path, uint64_t deadline_usec, int abort_fd, int *ret_fd,
                     cc_error **err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int r;

    if (strlen(path) >= sizeof(sa.sun_path))
        return cc_error_msg(err, -ENAMETOOLONG, "qmp: connect '%s': path too long", path);
    strcpy(sa.sun_path, path);
    for (;;) {
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
            return cc_error_set(err, -errno, "qmp: socket");
        /* A unix stream connect to a listening socket completes at once (or EAGAIN when
         * the backlog is full, which we treat like "not yet"). */
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            *ret_fd = TAKE_FD(fd);
            return 0;
        }
        r = -errno;
        if (r != -ENOENT && r != -ECONNREFUSED && r != -EAGAIN)
            return cc_error_set(err, r, "qmp: connect '%s'", path);
        struct pollfd p = {.fd = abort_fd, .events = POLLIN};
        int ms = remaining_ms(deadline_usec);
        if (ms == 0)
            return cc_error_set(err, r, "qmp: connect '%s': gave up after the deadline", path);
        if (poll(&p, abort_fd >= 0 ? 1 : 0, ms < 20 ? ms : 20) > 0)
            return cc_error_msg(err, -ECHILD, "qmp: connect '%s': QEMU exited", path);
    }
}

int
vmm_qmp_execute(vmm_qmp *q, const char *command, json_t *args, vmm_qmp_reply_fn on_reply,
                void *userdata, cc_error **err)
{
    int r;

    if (q->state != QMP_READY)
        return cc_error_msg(err, -ENOTCONN, "qmp: %s: not connected", command);
    if (q->n_pending == VMM_QMP_PENDING_MAX)
        return cc_error_msg(err, -ENOBUFS, "qmp: %s: too many commands in flight", command);
    r = send_line(q, command, args, err);
    if (r < 0)
        return r;
    size_t slot = (q->head + q->n_pending) % VMM_QMP_PENDING_MAX;
    q->pending[slot] = (qmp_pending){.fn = on_reply, .userdata = userdata};
    q->n_pending++;
    return 0;
}
