/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Server side of a call: method lookup, the checks Go's server makes on each request frame
 * (server.go: type, decoding, odd stream id, then services.go: service and method), call
 * objects, their completion, deadlines and cancellation.
 *
 * A call is linked into its connection's list of calls in flight (O(1) in and out) and, when
 * it has a deadline, into the server's deadline heap; no lookup by stream id is needed, as
 * replies come back through the call object. Detaching (deadline, closed connection)
 * unlinks it and clears call->conn; the object itself is freed only by its completion.
 */
#define _GNU_SOURCE
#include "ttrpc-priv.h"
#include "util.h"

#include <inttypes.h>
#include <stdarg.h>
#include <string.h>

#define TTRPC_MAX_METADATA 1024 /* pairs kept per call; more are ignored */

/* --- lookup -------------------------------------------------------------------------------- */

uint32_t
ttrpc_method_hash(ttrpc_bytes service, ttrpc_bytes method)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < service.n; i++)
        h = (h ^ service.p[i]) * 16777619u;
    h = (h ^ '/') * 16777619u;
    for (size_t i = 0; i < method.n; i++)
        h = (h ^ method.p[i]) * 16777619u;
    return h;
}

const ttrpc_method_entry *
ttrpc_server_lookup(const cc_ttrpc_server *s, ttrpc_bytes service, ttrpc_bytes method)
{
    if (s->n_buckets == 0)
        return NULL;
    uint32_t h = ttrpc_method_hash(service, method);
    for (const ttrpc_method_entry *e = s->buckets[h & (s->n_buckets - 1)]; e; e = e->next)
        if (e->hash == h && e->service_len == service.n && e->method_len == method.n &&
            memcmp(e->service, service.p, service.n) == 0 &&
            memcmp(e->method, method.p, method.n) == 0)
            return e;
    return NULL;
}

/* Only on the error path: is any method of this service registered? */
static bool
service_known(const cc_ttrpc_server *s, ttrpc_bytes service)
{
    for (size_t i = 0; i < s->n_buckets; i++)
        for (const ttrpc_method_entry *e = s->buckets[i]; e; e = e->next)
            if (e->service_len == service.n && memcmp(e->service, service.p, service.n) == 0)
                return true;
    return false;
}

/* --- responses ------------------------------------------------------------------------------ */

static void
status_queue(ttrpc_conn *c, uint32_t stream_id, cc_ttrpc_code code, char *msg)
{
    size_t len = ttrpc_utf8_sanitize(msg, strlen(msg), TTRPC_STATUS_MESSAGE_MAX);
    size_t n = ttrpc_response_status_size(code, len);
    uint8_t *out = ttrpc_wbuf_frame(&c->wr, stream_id, TTRPC_TYPE_RESPONSE, n);
    ttrpc_response_status_encode(out, code, msg, len);
    ttrpc_conn_mark_dirty(c);
}

void
ttrpc_conn_send_status(ttrpc_conn *c, uint32_t stream_id, cc_ttrpc_code code, const char *fmt, ...)
{
    if (c->closed)
        return;
    va_list ap;
    va_start(ap, fmt);
    char *msg = cc_xvasprintf(fmt, ap);
    va_end(ap);
    status_queue(c, stream_id, code, msg);
    free(msg);
}

/* --- call objects ----------------------------------------------------------------------------- */

static void
call_copy_metadata(cc_ttrpc_call *call, const uint8_t *data, size_t len, size_t n)
{
    if (n > TTRPC_MAX_METADATA)
        n = TTRPC_MAX_METADATA;
    _cleanup_free_ ttrpc_bytes *kv = cc_xreallocarray(NULL, 2 * n, sizeof(*kv));
    n = ttrpc_request_metadata(data, len, kv, kv + n, n);
    size_t total = 2 * n * sizeof(char *);
    for (size_t i = 0; i < 2 * n; i++)
        total += kv[i].n + 1;
    char **md = cc_xmalloc(total);
    char *p = (char *)(md + 2 * n);
    for (size_t i = 0; i < n; i++) {
        ttrpc_bytes pair[2] = {kv[i], kv[n + i]};
        for (size_t j = 0; j < 2; j++) {
            md[2 * i + j] = p;
            memcpy(p, pair[j].p, pair[j].n);
            p += pair[j].n;
            *p++ = '\0';
        }
    }
    call->metadata = md;
    call->n_metadata = n;
}

static cc_ttrpc_call *
call_new(ttrpc_conn *c, uint32_t stream_id, const ttrpc_request_view *v, const uint8_t *data,
         size_t len)
{
    cc_ttrpc_server *s = c->server;
    cc_ttrpc_call *call = cc_xzalloc(sizeof(*call));
    call->conn = c;
    call->stream_id = stream_id;
    call->deadline.idx = TTRPC_HEAP_NONE;
    call->next = c->calls;
    if (c->calls)
        c->calls->prev = call;
    c->calls = call;
    c->n_calls++;
    if (v->timeout_nano > 0) {
        call->deadline.deadline = ttrpc_deadline_from_nano(cc_loop_now(), v->timeout_nano);
        ttrpc_heap_push(&s->deadlines, &call->deadline);
        if (ttrpc_heap_top(&s->deadlines) == &call->deadline)
            ttrpc_heap_arm(&s->deadlines, s->timer);
    }
    if (v->n_metadata > 0)
        call_copy_metadata(call, data, len, v->n_metadata);
    return call;
}

/* Unlinks call from its connection and the deadline heap; the answer is then dropped. */
static void
call_detach(cc_ttrpc_call *call)
{
    ttrpc_conn *c = call->conn;
    if (!c)
        return;
    if (call->prev)
        call->prev->next = call->next;
    else
        c->calls = call->next;
    if (call->next)
        call->next->prev = call->prev;
    call->prev = call->next = NULL;
    c->n_calls--;
    if (call->deadline.idx != TTRPC_HEAP_NONE) {
        ttrpc_heap_remove(&c->server->deadlines, &call->deadline);
        ttrpc_heap_arm(&c->server->deadlines, c->server->timer);
    }
    call->conn = NULL;
}

/* Ends the handler's ownership: detaches and frees call; returns r. */
static int
call_finish(cc_ttrpc_call *call, int r)
{
    ttrpc_conn *c = call->conn;
    call_detach(call);
    free(call->metadata);
    free(call);
    if (c)
        ttrpc_conn_update_flow(c);
    return r;
}

static bool
call_live(const cc_ttrpc_call *call)
{
    return call->conn && !call->conn->closed;
}

void
ttrpc_conn_cancel_calls(ttrpc_conn *c)
{
    cc_ttrpc_call *call;
    /* Re-read the head each time: a cancel callback may complete other calls of c. */
    while ((call = c->calls)) {
        call_detach(call);
        call->cancelled = true;
        if (call->cancel)
            call->cancel(call, CC_TTRPC_CANCELLED, call->cancel_userdata);
    }
}

int
ttrpc_server_on_timer(cc_loop_source *src, uint64_t deadline, void *userdata)
{
    cc_ttrpc_server *s = userdata;
    uint64_t now = cc_loop_now();
    ttrpc_heap_node *top;
    ttrpc_server_ref(s);
    while (!s->freed && (top = ttrpc_heap_top(&s->deadlines)) && top->deadline <= now) {
        cc_ttrpc_call *call = TTRPC_CONTAINER_OF(top, cc_ttrpc_call, deadline);
        ttrpc_conn *c = call->conn;
        /* What Go's handlers answer when they honour their context. */
        ttrpc_conn_send_status(c, call->stream_id, CC_TTRPC_DEADLINE_EXCEEDED,
                               "context deadline exceeded");
        call_detach(call);
        call->cancelled = true;
        ttrpc_conn_update_flow(c);
        if (call->cancel)
            call->cancel(call, CC_TTRPC_DEADLINE_EXCEEDED, call->cancel_userdata);
    }
    if (!s->freed)
        ttrpc_heap_arm(&s->deadlines, s->timer);
    ttrpc_server_unref(s);
    return 0;
}

/* --- dispatch -------------------------------------------------------------------------------- */

void
ttrpc_conn_handle_frame(ttrpc_conn *c, const ttrpc_header *h, const uint8_t *data)
{
    ttrpc_request_view v;
    const char *reason = "";
    if (h->type != TTRPC_TYPE_REQUEST)
        return; /* Go ignores other types, for forward compatibility */
    if (ttrpc_request_decode(data, h->length, &v, &reason) < 0) {
        ttrpc_conn_send_status(c, h->stream_id, CC_TTRPC_INVALID_ARGUMENT,
                               "unmarshal request error: %s", reason);
        return;
    }
    if (h->stream_id % 2 != 1) {
        ttrpc_conn_send_status(c, h->stream_id, CC_TTRPC_INVALID_ARGUMENT,
                               "StreamID must be odd for client initiated streams");
        return;
    }
    const ttrpc_method_entry *e = ttrpc_server_lookup(c->server, v.service, v.method);
    if (!e) {
        bool known = service_known(c->server, v.service);
        ttrpc_bytes name = known ? v.method : v.service;
        ttrpc_conn_send_status(c, h->stream_id, CC_TTRPC_UNIMPLEMENTED, "%s %.*s",
                               known ? "method" : "service", (int)name.n, (const char *)name.p);
        return;
    }
    if (v.timeout_nano < 0) {
        ttrpc_conn_send_status(c, h->stream_id, CC_TTRPC_DEADLINE_EXCEEDED,
                               "context deadline exceeded");
        return;
    }
    cc_ttrpc_handler_fn handler = e->handler;
    void *userdata = e->userdata;
    cc_ttrpc_call *call = call_new(c, h->stream_id, &v, data, h->length);
    handler(call, v.payload.p, v.payload.n, userdata);
}

/* --- public call API ----------------------------------------------------------------------------
 */

void
cc_ttrpc_call_set_cancel(cc_ttrpc_call *call, cc_ttrpc_cancel_fn fn, void *userdata)
{
    call->cancel = fn;
    call->cancel_userdata = userdata;
}

bool
cc_ttrpc_call_is_cancelled(const cc_ttrpc_call *call)
{
    return call->cancelled || (call->conn && call->conn->closed);
}

uint64_t
cc_ttrpc_call_get_deadline(const cc_ttrpc_call *call)
{
    return call->deadline.deadline;
}

/* Go's MD.Get lower-cases the key it looks up and compares exactly. */
static bool
key_matches(const char *stored, const char *key)
{
    for (; *stored && *key; stored++, key++) {
        char k = *key >= 'A' && *key <= 'Z' ? (char)(*key - 'A' + 'a') : *key;
        if (*stored != k)
            return false;
    }
    return *stored == *key;
}

const char *
cc_ttrpc_call_get_metadata(const cc_ttrpc_call *call, const char *key)
{
    for (size_t i = 0; i < call->n_metadata; i++)
        if (key_matches(call->metadata[2 * i], key))
            return call->metadata[2 * i + 1];
    return NULL;
}

ProtobufCMessage *
cc_ttrpc_call_unpack(cc_ttrpc_call *call, const ProtobufCMessageDescriptor *desc,
                     const uint8_t *req, size_t len)
{
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, len, req);
    if (!m)
        (void)cc_ttrpc_call_fail(call, CC_TTRPC_INTERNAL,
                                 "ttrpc: error unmarshalling payload: invalid %s", desc->name);
    return m;
}

static int
call_reply(cc_ttrpc_call *call, const ttrpc_payload *pl)
{
    ttrpc_conn *c = call->conn;
    if (!call_live(call))
        return call_finish(call, -ECANCELED);
    size_t n = ttrpc_response_ok_size(pl);
    if (n > CC_TTRPC_MESSAGE_LENGTH_MAX) {
        ttrpc_conn_send_status(c, call->stream_id, CC_TTRPC_RESOURCE_EXHAUSTED,
                               "message length %zu exceed maximum message size of %u", n,
                               CC_TTRPC_MESSAGE_LENGTH_MAX);
        return call_finish(call, -EMSGSIZE);
    }
    uint8_t *out = ttrpc_wbuf_frame(&c->wr, call->stream_id, TTRPC_TYPE_RESPONSE, n);
    ttrpc_response_ok_encode(out, pl);
    ttrpc_conn_mark_dirty(c);
    return call_finish(call, 0);
}

int
cc_ttrpc_call_reply(cc_ttrpc_call *call, const ProtobufCMessage *resp)
{
    ttrpc_payload pl;
    ttrpc_payload_init(&pl, resp, NULL, 0);
    return call_reply(call, &pl);
}

int
cc_ttrpc_call_reply_raw(cc_ttrpc_call *call, const void *buf, size_t len)
{
    ttrpc_payload pl;
    ttrpc_payload_init(&pl, NULL, buf, len);
    return call_reply(call, &pl);
}

/* Takes msg. */
static int
call_fail_msg(cc_ttrpc_call *call, cc_ttrpc_code code, char *msg)
{
    if (!call_live(call)) {
        free(msg);
        return call_finish(call, -ECANCELED);
    }
    status_queue(call->conn, call->stream_id, code <= CC_TTRPC_OK ? CC_TTRPC_UNKNOWN : code, msg);
    free(msg);
    return call_finish(call, 0);
}

int
cc_ttrpc_call_fail(cc_ttrpc_call *call, cc_ttrpc_code code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = cc_xvasprintf(fmt, ap);
    va_end(ap);
    return call_fail_msg(call, code, msg);
}

int
cc_ttrpc_call_fail_error(cc_ttrpc_call *call, const cc_error *e)
{
    cc_ttrpc_code code = e ? cc_ttrpc_code_from_errno(e->code) : CC_TTRPC_INTERNAL;
    return call_fail_msg(call, code, cc_xstrdup(cc_error_message(e)));
}
