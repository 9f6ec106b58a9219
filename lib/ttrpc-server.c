/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ttrpc server: services, listeners, connections and their I/O.
 *
 * Each connection has one io source. A wake-up reads once into the connection's buffer and
 * dispatches every complete frame in it; handlers queue their responses in the write
 * buffer, and a defer source flushes every connection with output at the start of the next
 * iteration (one send(2) for all the responses of an iteration). EPOLLOUT is watched only
 * after a short write. Reading stops while a connection's unsent output is above
 * CC_TTRPC_OUTPUT_HIGH or it has max_inflight calls (backpressure), and resumes below
 * TTRPC_OUTPUT_LOW.
 *
 * Lifetime: the server and its connections are reference-counted so that any callback may
 * free the server: a connection holds a server reference, and whoever runs user code on a
 * connection holds a connection reference until it returns.
 */
#define _GNU_SOURCE
#include "fs.h"
#include "log.h"
#include "ttrpc-priv.h"
#include "util.h"

#include <inttypes.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define ACCEPT_BATCH 32
#define ACCEPT_BACKOFF_USEC 100000

/* --- references ----------------------------------------------------------------------------- */

void
ttrpc_server_ref(cc_ttrpc_server *s)
{
    s->n_ref++;
}

void
ttrpc_server_unref(cc_ttrpc_server *s)
{
    if (--s->n_ref > 0)
        return;
    for (size_t i = 0; i < s->n_buckets; i++) {
        ttrpc_method_entry *e = s->buckets[i];
        while (e) {
            ttrpc_method_entry *next = e->next;
            free(e->service);
            free(e->method);
            free(e);
            e = next;
        }
    }
    free(s->buckets);
    ttrpc_heap_done(&s->deadlines);
    free(s);
}

void
ttrpc_conn_ref(ttrpc_conn *c)
{
    c->n_ref++;
}

void
ttrpc_conn_unref(ttrpc_conn *c)
{
    if (--c->n_ref > 0)
        return;
    ttrpc_rbuf_done(&c->rd);
    ttrpc_wbuf_done(&c->wr);
    cc_ttrpc_server *s = c->server;
    free(c);
    ttrpc_server_unref(s);
}

/* --- connections ----------------------------------------------------------------------------- */

static void
conn_set_events(ttrpc_conn *c)
{
    uint32_t events = (c->paused ? 0 : EPOLLIN) | (c->want_write ? EPOLLOUT : 0);
    if (c->closed || events == c->events)
        return;
    /* Only fails for a detached source or a bad fd; a dead fd shows up as an error event. */
    if (cc_loop_source_set_io_events(c->io, events, NULL) == 0)
        c->events = events;
}

void
ttrpc_conn_mark_dirty(ttrpc_conn *c)
{
    cc_ttrpc_server *s = c->server;
    if (c->dirty || c->closed || s->freed)
        return;
    c->dirty = true;
    ttrpc_conn_ref(c);
    c->dirty_next = s->dirty;
    s->dirty = c;
    (void)cc_loop_source_set_enabled(s->flush, true, NULL); /* cannot fail for a defer source */
}

void
ttrpc_conn_update_flow(ttrpc_conn *c)
{
    size_t out = ttrpc_wbuf_pending(&c->wr);
    if (c->closed)
        return;
    if (!c->paused && (out > CC_TTRPC_OUTPUT_HIGH || c->n_calls >= c->server->max_inflight)) {
        c->paused = true;
        conn_set_events(c);
    } else if (c->paused && out <= TTRPC_OUTPUT_LOW && c->n_calls < c->server->max_inflight) {
        c->paused = false;
        conn_set_events(c);
        ttrpc_conn_mark_dirty(c); /* frames may be waiting in the read buffer */
    }
}

/*
 * Closes c: stops watching and closes the fd, cancels its calls, tells the owner of a
 * served fd, and drops the server list's reference. Idempotent.
 */
static void
conn_close(ttrpc_conn *c, int error)
{
    if (c->closed)
        return;
    cc_ttrpc_server *s = c->server;
    c->closed = true;
    ttrpc_conn_ref(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->n_conns--;
    c->io = cc_loop_source_free(c->io); /* closes the fd */
    c->fd = -EBADF;
    ttrpc_conn_cancel_calls(c);
    if (c->disconnect && !s->freed)
        c->disconnect(s, error, c->disconnect_userdata);
    ttrpc_conn_unref(c); /* ours */
    ttrpc_conn_unref(c); /* the server list's */
}

/* Dispatches the complete frames buffered on c, until it is paused or closed. */
static void
conn_process(ttrpc_conn *c)
{
    ttrpc_header h;
    const uint8_t *data = NULL;
    ttrpc_conn_ref(c);
    while (!c->closed && !c->paused) {
        ttrpc_frame_kind k = ttrpc_rbuf_next(&c->rd, &h, &data);
        if (k == TTRPC_FRAME_NONE)
            break;
        if (k == TTRPC_FRAME_OVERSIZED)
            /* Go answers these whatever their type, on their stream id (channel.go). */
            ttrpc_conn_send_status(c, h.stream_id, CC_TTRPC_RESOURCE_EXHAUSTED,
                                   "message length %" PRIu32 " exceed maximum message size of %u",
                                   h.length, CC_TTRPC_MESSAGE_LENGTH_MAX);
        else
            ttrpc_conn_handle_frame(c, &h, data);
        ttrpc_conn_update_flow(c);
    }
    ttrpc_conn_unref(c);
}

static void
conn_flush(ttrpc_conn *c)
{
    int r = ttrpc_wbuf_flush(&c->wr, c->fd);
    if (r < 0 && r != -EAGAIN) {
        cc_log_errno(CC_LOG_DEBUG, r, "ttrpc: write failed, closing connection");
        conn_close(c, r);
        return;
    }
    c->want_write = r == -EAGAIN;
    conn_set_events(c);
    ttrpc_conn_update_flow(c);
}

static int
conn_on_io(cc_loop_source *src, int fd, uint32_t revents, void *userdata)
{
    ttrpc_conn *c = userdata;
    ttrpc_conn_ref(c);
    if (revents & EPOLLOUT)
        conn_flush(c);
    if (!c->closed && c->paused && (revents & (EPOLLHUP | EPOLLERR)))
        conn_close(c, revents & EPOLLERR ? -ECONNRESET : 0);
    if (!c->closed && !c->paused && (revents & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
        ssize_t n = ttrpc_rbuf_fill(&c->rd, fd);
        if (n > 0) {
            conn_process(c);
        } else if (n != -EAGAIN || (revents & (EPOLLHUP | EPOLLERR))) {
            /* Go drops the connection at EOF, even mid-frame; send what is ready first. */
            (void)ttrpc_wbuf_flush(&c->wr, fd);
            conn_close(c, n == -EAGAIN ? 0 : (int)n);
        }
    }
    ttrpc_conn_unref(c);
    return 0;
}

static int
conn_new(cc_ttrpc_server *s, int fd, cc_ttrpc_disconnect_fn fn, void *userdata, cc_error **err)
{
    ttrpc_conn *c = cc_xzalloc(sizeof(*c));
    *c = (ttrpc_conn){.server = s,
                      .n_ref = 1,
                      .fd = fd,
                      .events = EPOLLIN,
                      .disconnect = fn,
                      .disconnect_userdata = userdata};
    int r = cc_loop_add_io(s->loop, fd, EPOLLIN, conn_on_io, c, &c->io, err);
    if (r < 0) {
        free(c);
        return r;
    }
    cc_loop_source_set_io_fd_own(c->io, true);
    cc_loop_source_set_description(c->io, "ttrpc-server-conn");
    ttrpc_server_ref(s);
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->n_conns++;
    return 0;
}

int
cc_ttrpc_server_serve_fd(cc_ttrpc_server *s, int fd, cc_ttrpc_disconnect_fn fn, void *userdata,
                         cc_error **err)
{
    int r = cc_fd_set_nonblock(fd, true);
    if (r < 0)
        return cc_error_set(err, r, "ttrpc: serve fd %d", fd);
    return conn_new(s, fd, fn, userdata, err);
}

size_t
cc_ttrpc_server_get_n_connections(const cc_ttrpc_server *s)
{
    return s->n_conns;
}

/* The flush pass: writes queued output, resumes paused connections. */
static int
server_on_flush(cc_loop_source *src, void *userdata)
{
    cc_ttrpc_server *s = userdata;
    ttrpc_server_ref(s);
    ttrpc_conn *c;
    while ((c = s->dirty)) {
        s->dirty = c->dirty_next;
        c->dirty = false;
        if (!c->closed && ttrpc_wbuf_pending(&c->wr) > 0 && !c->want_write)
            conn_flush(c);
        if (!c->closed && !c->paused)
            conn_process(c); /* no-op unless frames were left by a pause */
        ttrpc_conn_unref(c);
    }
    if (!s->freed)
        (void)cc_loop_source_set_enabled(s->flush, false, NULL);
    ttrpc_server_unref(s);
    return 0;
}

/* --- listeners ------------------------------------------------------------------------------- */

static bool
peer_is_same_user(int fd)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
        return false;
    return cred.uid == geteuid() && cred.gid == getegid();
}

static int
listener_on_backoff(cc_loop_source *src, uint64_t deadline, void *userdata)
{
    ttrpc_listener *l = userdata;
    (void)cc_loop_source_set_enabled(l->io, true, NULL);
    return 0;
}

/* Stops accepting for a while instead of spinning on an error that does not go away. */
static void
listener_back_off(ttrpc_listener *l, int r)
{
    cc_log_errno(CC_LOG_DEBUG, r, "ttrpc: accept failed, pausing");
    (void)cc_loop_source_set_enabled(l->io, false, NULL);
    (void)cc_loop_source_set_timer_relative(l->backoff, ACCEPT_BACKOFF_USEC, 0, NULL);
}

static int
listener_on_io(cc_loop_source *src, int fd, uint32_t revents, void *userdata)
{
    ttrpc_listener *l = userdata;
    cc_ttrpc_server *s = l->server;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (cfd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                listener_back_off(l, -errno);
            break;
        }
        if (s->require_same_user && !peer_is_same_user(cfd)) {
            cc_log(CC_LOG_DEBUG, "ttrpc: refusing connection from another user");
            cc_close(cfd);
            continue;
        }
        if (conn_new(s, cfd, NULL, NULL, NULL) < 0)
            cc_close(cfd);
    }
    return 0;
}

int
cc_ttrpc_server_listen_fd(cc_ttrpc_server *s, int listen_fd, cc_error **err)
{
    int r = cc_fd_set_nonblock(listen_fd, true);
    if (r >= 0)
        r = cc_fd_set_cloexec(listen_fd, true);
    if (r < 0)
        return cc_error_set(err, r, "ttrpc: listen on fd %d", listen_fd);
    ttrpc_listener *l = cc_xzalloc(sizeof(*l));
    l->server = s;
    r = cc_loop_add_io(s->loop, listen_fd, EPOLLIN, listener_on_io, l, &l->io, err);
    if (r >= 0)
        r = cc_loop_add_timer(s->loop, UINT64_MAX, 0, listener_on_backoff, l, &l->backoff, err);
    if (r < 0) {
        cc_loop_source_free(l->io);
        free(l);
        return r;
    }
    (void)cc_loop_source_set_enabled(l->backoff, false, NULL);
    cc_loop_source_set_io_fd_own(l->io, true);
    cc_loop_source_set_description(l->io, "ttrpc-listener");
    l->next = s->listeners;
    s->listeners = l;
    return 0;
}

/* --- the server ------------------------------------------------------------------------------ */

int
cc_ttrpc_server_new(cc_loop *loop, cc_ttrpc_server **ret, cc_error **err)
{
    cc_ttrpc_server *s = cc_xzalloc(sizeof(*s));
    s->loop = loop;
    s->n_ref = 1;
    s->max_inflight = TTRPC_DEFAULT_MAX_INFLIGHT;
    int r = cc_loop_add_defer(loop, server_on_flush, s, &s->flush, err);
    if (r >= 0)
        r = cc_loop_add_timer(loop, UINT64_MAX, 0, ttrpc_server_on_timer, s, &s->timer, err);
    if (r < 0) {
        cc_loop_source_free(s->flush);
        free(s);
        return r;
    }
    (void)cc_loop_source_set_enabled(s->flush, false, NULL);
    (void)cc_loop_source_set_enabled(s->timer, false, NULL);
    cc_loop_source_set_description(s->flush, "ttrpc-server-flush");
    cc_loop_source_set_description(s->timer, "ttrpc-server-deadlines");
    *ret = s;
    return 0;
}

cc_ttrpc_server *
cc_ttrpc_server_free(cc_ttrpc_server *s)
{
    if (!s || s->freed)
        return NULL;
    s->freed = true;
    while (s->listeners) {
        ttrpc_listener *l = s->listeners;
        s->listeners = l->next;
        cc_loop_source_free(l->io);
        cc_loop_source_free(l->backoff);
        free(l);
    }
    while (s->conns)
        conn_close(s->conns, 0);
    while (s->dirty) {
        ttrpc_conn *c = s->dirty;
        s->dirty = c->dirty_next;
        c->dirty = false;
        ttrpc_conn_unref(c);
    }
    s->flush = cc_loop_source_free(s->flush);
    s->timer = cc_loop_source_free(s->timer);
    ttrpc_server_unref(s);
    return NULL;
}

void
cc_ttrpc_server_set_require_same_user(cc_ttrpc_server *s, bool require)
{
    s->require_same_user = require;
}

void
cc_ttrpc_server_set_max_inflight(cc_ttrpc_server *s, size_t max)
{
    s->max_inflight = max ? max : TTRPC_DEFAULT_MAX_INFLIGHT;
}

/* --- registration ---------------------------------------------------------------------------- */

static void
methods_rehash(cc_ttrpc_server *s, size_t n_buckets)
{
    ttrpc_method_entry **b = cc_xreallocarray(NULL, n_buckets, sizeof(*b));
    memset(b, 0, n_buckets * sizeof(*b));
    for (size_t i = 0; i < s->n_buckets; i++) {
        ttrpc_method_entry *e = s->buckets[i];
        while (e) {
            ttrpc_method_entry *next = e->next;
            e->next = b[e->hash & (n_buckets - 1)];
            b[e->hash & (n_buckets - 1)] = e;
            e = next;
        }
    }
    free(s->buckets);
    s->buckets = b;
    s->n_buckets = n_buckets;
}

static bool
service_exists(const cc_ttrpc_server *s, const char *service)
{
    for (size_t i = 0; i < s->n_buckets; i++)
        for (const ttrpc_method_entry *e = s->buckets[i]; e; e = e->next)
            if (strcmp(e->service, service) == 0)
                return true;
    return false;
}

static int
check_methods(const char *service, const cc_ttrpc_method *methods, size_t n, cc_error **err)
{
    for (size_t i = 0; i < n; i++) {
        if (!methods[i].name || !methods[i].name[0] || !methods[i].handler)
            return cc_error_msg(err, -EINVAL, "ttrpc: service '%s': method %zu: no name or handler",
                                service, i);
        for (size_t j = 0; j < i; j++)
            if (strcmp(methods[i].name, methods[j].name) == 0)
                return cc_error_msg(err, -EINVAL, "ttrpc: service '%s': duplicate method '%s'",
                                    service, methods[i].name);
    }
    return 0;
}

int
cc_ttrpc_server_register(cc_ttrpc_server *s, const char *service, const cc_ttrpc_method *methods,
                         size_t n, void *userdata, cc_error **err)
{
    if (!service || !service[0] || n == 0)
        return cc_error_msg(err, -EINVAL, "ttrpc: register: no service name or no methods");
    if (service_exists(s, service))
        return cc_error_msg(err, -EEXIST, "ttrpc: service '%s' is registered already", service);
    int r = check_methods(service, methods, n, err);
    if (r < 0)
        return r;
    size_t want = 16;
    while (want < 2 * (s->n_methods + n))
        want *= 2;
    if (want > s->n_buckets)
        methods_rehash(s, want);
    for (size_t i = 0; i < n; i++) {
        ttrpc_method_entry *e = cc_xzalloc(sizeof(*e));
        e->service = cc_xstrdup(service);
        e->method = cc_xstrdup(methods[i].name);
        e->service_len = strlen(service);
        e->method_len = strlen(methods[i].name);
        e->hash = ttrpc_method_hash((ttrpc_bytes){(const uint8_t *)e->service, e->service_len},
                                    (ttrpc_bytes){(const uint8_t *)e->method, e->method_len});
        e->handler = methods[i].handler;
        e->userdata = userdata;
        e->next = s->buckets[e->hash & (s->n_buckets - 1)];
        s->buckets[e->hash & (s->n_buckets - 1)] = e;
        s->n_methods++;
    }
    return 0;
}
