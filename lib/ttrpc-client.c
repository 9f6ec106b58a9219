/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ttrpc client: requests are encoded straight into the write buffer (flushed by a defer
 * source before the loop next sleeps, so calls made in one iteration share one send(2));
 * pending calls sit in a hash table keyed by stream id and, when they have a timeout, in a
 * deadline heap served by one timer source. Responses are matched by id in any order.
 *
 * Like the server, the client is reference-counted while it runs user callbacks, so any
 * callback may free it.
 */
#define _GNU_SOURCE
#include "fs.h"
#include "log.h"
#include "ttrpc-priv.h"
#include "util.h"

#include <inttypes.h>
#include <string.h>

typedef struct ttrpc_pending ttrpc_pending;
struct ttrpc_pending {
    uint32_t id;
    cc_ttrpc_reply_fn fn;
    void *userdata;
    ttrpc_heap_node deadline;
    ttrpc_pending *next; /* hash chain */
};

struct cc_ttrpc_client {
    cc_loop *loop;
    unsigned n_ref; /* the owner's, plus one per running dispatch */
    bool freed;
    bool closed;
    bool want_write;
    int fd;
    cc_loop_source *io; /* owns fd */
    cc_loop_source *flush;
    cc_loop_source *timer;
    ttrpc_rbuf rd;
    ttrpc_wbuf wr;
    uint32_t next_id;
    ttrpc_pending **buckets;
    size_t n_buckets, n_pending;
    ttrpc_heap deadlines;
    cc_ttrpc_client_close_fn close_fn;
    void *close_userdata;
};

static const char closed_message[] = "ttrpc: closed";

static void
client_ref(cc_ttrpc_client *c)
{
    c->n_ref++;
}

static void
client_unref(cc_ttrpc_client *c)
{
    if (--c->n_ref > 0)
        return;
    ttrpc_rbuf_done(&c->rd);
    ttrpc_wbuf_done(&c->wr);
    ttrpc_heap_done(&c->deadlines);
    free(c->buckets);
    free(c);
}

/* --- pending calls --------------------------------------------------------------------------- */

static size_t
bucket_of(const cc_ttrpc_client *c, uint32_t id)
{
    return (id >> 1) & (c->n_buckets - 1); /* ids are consecutive odd numbers */
}

static void
pending_grow(cc_ttrpc_client *c)
{
    size_t n = c->n_buckets ? c->n_buckets * 2 : 64;
    ttrpc_pending **old = c->buckets;
    size_t n_old = c->n_buckets;
    c->buckets = cc_xreallocarray(NULL, n, sizeof(*c->buckets));
    memset(c->buckets, 0, n * sizeof(*c->buckets));
    c->n_buckets = n;
    for (size_t i = 0; i < n_old; i++) {
        ttrpc_pending *p = old[i];
        while (p) {
            ttrpc_pending *next = p->next;
            p->next = c->buckets[bucket_of(c, p->id)];
            c->buckets[bucket_of(c, p->id)] = p;
            p = next;
        }
    }
    free(old);
}

static ttrpc_pending **
pending_slot(cc_ttrpc_client *c, uint32_t id)
{
    if (c->n_buckets == 0)
        return NULL;
    ttrpc_pending **pp = &c->buckets[bucket_of(c, id)];
    while (*pp && (*pp)->id != id)
        pp = &(*pp)->next;
    return *pp ? pp : NULL;
}

/* Removes the pending call id from the table and the heap; NULL when there is none. */
static ttrpc_pending *
pending_take(cc_ttrpc_client *c, uint32_t id)
{
    ttrpc_pending **pp = pending_slot(c, id);
    if (!pp)
        return NULL;
    ttrpc_pending *p = *pp;
    *pp = p->next;
    c->n_pending--;
    if (p->deadline.idx != TTRPC_HEAP_NONE) {
        ttrpc_heap_remove(&c->deadlines, &p->deadline);
        ttrpc_heap_arm(&c->deadlines, c->timer);
    }
    return p;
}

/* Calls p's callback and frees p. The callback may free the client. */
static void
pending_complete(ttrpc_pending *p, cc_ttrpc_code code, const char *message, const uint8_t *payload,
                 size_t len)
{
    cc_ttrpc_reply_fn fn = p->fn;
    void *userdata = p->userdata;
    free(p);
    fn(code, message, payload, len, userdata);
}

static uint32_t
next_stream_id(cc_ttrpc_client *c)
{
    /* Odd ids from 1 (Go's client); after 2^31 calls skip ids still pending. */
    uint32_t id;
    do {
        id = c->next_id;
        c->next_id += 2;
    } while (pending_slot(c, id));
    return id;
}

/* --- connection ----------------------------------------------------------------------------- */

static void
client_set_events(cc_ttrpc_client *c)
{
    if (!c->closed)
        (void)cc_loop_source_set_io_events(c->io, EPOLLIN | (c->want_write ? EPOLLOUT : 0), NULL);
}

/* Fails every pending call with UNAVAILABLE "ttrpc: closed", as Go's client does. */
static void
client_close(cc_ttrpc_client *c, int error)
{
    if (c->closed)
        return;
    c->closed = true;
    client_ref(c);
    c->io = cc_loop_source_free(c->io); /* closes the fd */
    c->fd = -EBADF;
    (void)cc_loop_source_set_enabled(c->flush, false, NULL);
    (void)cc_loop_source_set_enabled(c->timer, false, NULL);
    /* No call can be added now, so the table only shrinks; re-read each bucket head. */
    for (size_t i = 0; i < c->n_buckets; i++) {
        ttrpc_pending *p;
        while ((p = c->buckets[i]))
            pending_complete(pending_take(c, p->id), CC_TTRPC_UNAVAILABLE, closed_message, NULL, 0);
    }
    if (c->close_fn && !c->freed)
        c->close_fn(c, error, c->close_userdata);
    client_unref(c);
}

static void
client_flush(cc_ttrpc_client *c)
{
    int r = ttrpc_wbuf_flush(&c->wr, c->fd);
    if (r < 0 && r != -EAGAIN) {
        cc_log_errno(CC_LOG_DEBUG, r, "ttrpc: client write failed");
        client_close(c, r);
        return;
    }
    if (c->want_write != (r == -EAGAIN)) {
        c->want_write = r == -EAGAIN;
        client_set_events(c);
    }
}

static int
client_on_flush(cc_loop_source *src, void *userdata)
{
    cc_ttrpc_client *c = userdata;
    (void)cc_loop_source_set_enabled(src, false, NULL);
    if (!c->want_write)
        client_flush(c);
    return 0;
}

static void
handle_response(cc_ttrpc_client *c, const ttrpc_header *h, const uint8_t *data)
{
    ttrpc_response_view v;
    const char *reason = NULL;
    if (h->type != TTRPC_TYPE_RESPONSE)
        return; /* nothing else is meant for a unary client */
    ttrpc_pending *p = pending_take(c, h->stream_id);
    if (!p)
        return; /* timed out, cancelled, or never ours: Go logs and drops these too */
    if (ttrpc_response_decode(data, h->length, &v, &reason) < 0) {
        pending_complete(p, CC_TTRPC_UNKNOWN, reason, NULL, 0);
        return;
    }
    if (v.code == 0) {
        pending_complete(p, CC_TTRPC_OK, "", v.payload.p, v.payload.n);
        return;
    }
    _cleanup_free_ char *msg = cc_xstrndup((const char *)v.message.p, v.message.n);
    pending_complete(p, (cc_ttrpc_code)v.code, msg, v.payload.p, v.payload.n);
}

static void
client_process(cc_ttrpc_client *c)
{
    ttrpc_header h;
    const uint8_t *data = NULL;
    while (!c->closed) {
        ttrpc_frame_kind k = ttrpc_rbuf_next(&c->rd, &h, &data);
        if (k == TTRPC_FRAME_NONE)
            break;
        if (k == TTRPC_FRAME_COMPLETE) {
            handle_response(c, &h, data);
            continue;
        }
        /* Go's client discards an oversized frame and fails its call (channel.go recv). */
        ttrpc_pending *p = pending_take(c, h.stream_id);
        if (!p)
            continue;
        _cleanup_free_ char *msg =
            cc_xasprintf("message length %" PRIu32 " exceed maximum message size of %u", h.length,
                         CC_TTRPC_MESSAGE_LENGTH_MAX);
        pending_complete(p, CC_TTRPC_RESOURCE_EXHAUSTED, msg, NULL, 0);
    }
}

static int
client_on_io(cc_loop_source *src, int fd, uint32_t revents, void *userdata)
{
    cc_ttrpc_client *c = userdata;
    client_ref(c);
    if (revents & EPOLLOUT)
        client_flush(c);
    if (!c->closed && (revents & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
        ssize_t n = ttrpc_rbuf_fill(&c->rd, fd);
        if (n > 0)
            client_process(c);
        else if (n != -EAGAIN || (revents & (EPOLLHUP | EPOLLERR)))
            client_close(c, n == -EAGAIN ? 0 : (int)n); /* EOF, even mid-frame */
    }
    client_unref(c);
    return 0;
}

static int
client_on_timer(cc_loop_source *src, uint64_t deadline, void *userdata)
{
    cc_ttrpc_client *c = userdata;
    uint64_t now = cc_loop_now();
    ttrpc_heap_node *top;
    client_ref(c);
    while (!c->closed && (top = ttrpc_heap_top(&c->deadlines)) && top->deadline <= now) {
        ttrpc_pending *p = TTRPC_CONTAINER_OF(top, ttrpc_pending, deadline);
        pending_complete(pending_take(c, p->id), CC_TTRPC_DEADLINE_EXCEEDED,
                         "context deadline exceeded", NULL, 0);
    }
    if (!c->closed)
        ttrpc_heap_arm(&c->deadlines, c->timer);
    client_unref(c);
    return 0;
}

/* --- public API ---------------------------------------------------------------------------- */

int
cc_ttrpc_client_new(cc_loop *loop, int fd, cc_ttrpc_client **ret, cc_error **err)
{
    int r = cc_fd_set_nonblock(fd, true);
    if (r < 0)
        return cc_error_set(err, r, "ttrpc: client on fd %d", fd);
    cc_ttrpc_client *c = cc_xzalloc(sizeof(*c));
    *c = (cc_ttrpc_client){.loop = loop, .n_ref = 1, .fd = fd, .next_id = 1};
    r = cc_loop_add_io(loop, fd, EPOLLIN, client_on_io, c, &c->io, err);
    if (r >= 0)
        r = cc_loop_add_defer(loop, client_on_flush, c, &c->flush, err);
    if (r >= 0)
        r = cc_loop_add_timer(loop, UINT64_MAX, 0, client_on_timer, c, &c->timer, err);
    if (r < 0) {
        cc_loop_source_free(c->io);
        cc_loop_source_free(c->flush);
        free(c);
        return r;
    }
    (void)cc_loop_source_set_enabled(c->flush, false, NULL);
    (void)cc_loop_source_set_enabled(c->timer, false, NULL);
    cc_loop_source_set_io_fd_own(c->io, true);
    cc_loop_source_set_description(c->io, "ttrpc-client");
    cc_loop_source_set_description(c->flush, "ttrpc-client-flush");
    cc_loop_source_set_description(c->timer, "ttrpc-client-deadlines");
    *ret = c;
    return 0;
}

cc_ttrpc_client *
cc_ttrpc_client_free(cc_ttrpc_client *c)
{
    if (!c || c->freed)
        return NULL;
    c->freed = true;
    client_close(c, 0); /* the owner's reference keeps c alive through the callbacks */
    c->flush = cc_loop_source_free(c->flush);
    c->timer = cc_loop_source_free(c->timer);
    client_unref(c);
    return NULL;
}

void
cc_ttrpc_client_set_close_callback(cc_ttrpc_client *c, cc_ttrpc_client_close_fn fn, void *userdata)
{
    c->close_fn = fn;
    c->close_userdata = userdata;
}

bool
cc_ttrpc_client_is_closed(const cc_ttrpc_client *c)
{
    return c->closed;
}

static void
pending_add(cc_ttrpc_client *c, uint32_t id, uint64_t timeout_usec, cc_ttrpc_reply_fn fn,
            void *userdata)
{
    ttrpc_pending *p = cc_xzalloc(sizeof(*p));
    *p = (ttrpc_pending){.id = id, .fn = fn, .userdata = userdata};
    p->deadline.idx = TTRPC_HEAP_NONE;
    if (c->n_pending >= c->n_buckets)
        pending_grow(c);
    p->next = c->buckets[bucket_of(c, id)];
    c->buckets[bucket_of(c, id)] = p;
    c->n_pending++;
    if (timeout_usec > 0) {
        uint64_t now = cc_loop_now();
        p->deadline.deadline = now + timeout_usec < now ? UINT64_MAX - 1 : now + timeout_usec;
        ttrpc_heap_push(&c->deadlines, &p->deadline);
        if (ttrpc_heap_top(&c->deadlines) == &p->deadline)
            ttrpc_heap_arm(&c->deadlines, c->timer);
    }
}

int
cc_ttrpc_client_call_request(cc_ttrpc_client *c, const cc_ttrpc_request *req, cc_ttrpc_reply_fn fn,
                             void *userdata, uint32_t *ret_id, cc_error **err)
{
    if (c->closed)
        return cc_error_msg(err, -ENOTCONN, "%s", closed_message);
    if (!req->service || !req->method || !fn)
        return cc_error_msg(err, -EINVAL, "ttrpc: call without service, method or callback");
    for (size_t i = 0; i < req->n_metadata; i++)
        if (!req->metadata[i].key || !req->metadata[i].value)
            return cc_error_msg(err, -EINVAL, "ttrpc: metadata %zu without key or value", i);
    ttrpc_payload pl;
    ttrpc_payload_init(&pl, req->msg, req->payload, req->len);
    size_t n = ttrpc_request_size(req, &pl);
    if (n > CC_TTRPC_MESSAGE_LENGTH_MAX)
        return cc_error_msg(err, -EMSGSIZE, "message length %zu exceed maximum message size of %u",
                            n, CC_TTRPC_MESSAGE_LENGTH_MAX);
    uint32_t id = next_stream_id(c);
    ttrpc_request_encode(ttrpc_wbuf_frame(&c->wr, id, TTRPC_TYPE_REQUEST, n), req, &pl);
    pending_add(c, id, req->timeout_usec, fn, userdata);
    if (!c->want_write)
        (void)cc_loop_source_set_enabled(c->flush, true, NULL);
    if (ret_id)
        *ret_id = id;
    return 0;
}

int
cc_ttrpc_client_call(cc_ttrpc_client *c, const char *service, const char *method,
                     const ProtobufCMessage *msg, uint64_t timeout_usec, cc_ttrpc_reply_fn fn,
                     void *userdata, cc_error **err)
{
    cc_ttrpc_request req = {
        .service = service, .method = method, .msg = msg, .timeout_usec = timeout_usec};
    return cc_ttrpc_client_call_request(c, &req, fn, userdata, NULL, err);
}

int
cc_ttrpc_client_call_raw(cc_ttrpc_client *c, const char *service, const char *method,
                         const void *payload, size_t len, uint64_t timeout_usec,
                         cc_ttrpc_reply_fn fn, void *userdata, cc_error **err)
{
    cc_ttrpc_request req = {.service = service,
                            .method = method,
                            .payload = payload,
                            .len = len,
                            .timeout_usec = timeout_usec};
    return cc_ttrpc_client_call_request(c, &req, fn, userdata, NULL, err);
}

int
cc_ttrpc_client_cancel_call(cc_ttrpc_client *c, uint32_t id)
{
    ttrpc_pending *p = pending_take(c, id);
    if (!p)
        return -ENOENT;
    free(p);
    return 0;
}

void
cc_ttrpc_reply_clear(cc_ttrpc_reply *r)
{
    free(r->message);
    free(r->payload);
    *r = (cc_ttrpc_reply){0};
}

typedef struct sync_state {
    bool done;
    cc_ttrpc_reply reply;
} sync_state;

static void
sync_on_reply(cc_ttrpc_code code, const char *message, const uint8_t *payload, size_t len,
              void *userdata)
{
    sync_state *st = userdata;
    st->done = true;
    st->reply.code = code;
    st->reply.message = cc_xstrdup(message);
    st->reply.len = len;
    if (len > 0) {
        st->reply.payload = cc_xmalloc(len);
        memcpy(st->reply.payload, payload, len);
    }
}

int
cc_ttrpc_client_call_sync(cc_ttrpc_client *c, const cc_ttrpc_request *req, cc_ttrpc_reply *ret,
                          cc_error **err)
{
    cc_loop *loop = c->loop;
    sync_state st = {0};
    uint32_t id;
    int r = cc_ttrpc_client_call_request(c, req, sync_on_reply, &st, &id, err);
    if (r < 0)
        return r;
    /* While st.done is false the call is pending, so the client is still alive. */
    while (!st.done) {
        r = cc_loop_run_once(loop, CC_LOOP_INFINITY, err);
        if (r < 0) {
            if (!st.done)
                (void)cc_ttrpc_client_cancel_call(c, id);
            cc_ttrpc_reply_clear(&st.reply);
            return r;
        }
    }
    *ret = st.reply;
    return 0;
}
