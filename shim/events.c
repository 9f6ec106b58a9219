/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Events back to containerd (events.h): a FIFO of serialised ForwardRequests, sent one at a
 * time over a ttrpc client that is (re)connected on demand. One one-shot timer drives
 * everything: armed "at once" to start sending after a publish or a success, armed at
 * attempts * backoff after a failure.
 *
 * The request is serialised when the event is published, timestamp included, so what goes
 * out later (perhaps after retries) is what happened at publish time, as with the Go shim.
 */
#define _GNU_SOURCE
#include "events.h"

#include "containerd/services/ttrpc/events/v1/events.pb-c.h"
#include "google/protobuf/any.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "log.h"
#include "ttrpc.h"
#include "util.h"

#include <assert.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#define EVENTS_SERVICE "containerd.services.events.ttrpc.v1.Events"
#define EVENTS_METHOD "Forward"
#define EVENTS_BACKOFF_USEC 1000000ull

typedef struct event_entry event_entry;
struct event_entry {
    event_entry *next;
    char *topic;           /* for logs */
    const char *type_name; /* descriptor->name, static */
    uint8_t *req;          /* the serialised ForwardRequest */
    size_t len;
    unsigned attempts; /* failed so far */
};

struct shim_events {
    cc_loop *loop;
    char *path; /* the socket path, without "unix://" */
    char *ns;
    cc_ttrpc_client *client; /* NULL: not connected */
    cc_loop_source *timer;   /* one-shot: send the head (now, or after a back-off) */
    event_entry *head, *tail;
    size_t n;
    bool in_flight; /* the head's Forward awaits its answer */
    uint32_t call_id;
    uint64_t backoff_usec; /* the base: attempt n waits n * this */
};

static event_entry *
entry_free(event_entry *e)
{
    if (e) {
        free(e->topic);
        free(e->req);
        free(e);
    }
    return NULL;
}

/* Unlinks e (the head, or the head's successor) and frees it. */
static void
queue_remove(shim_events *ev, event_entry *e)
{
    event_entry *prev = NULL;
    if (ev->head == e) {
        ev->head = e->next;
    } else {
        prev = ev->head;
        assert(prev && prev->next == e);
        prev->next = e->next;
    }
    if (ev->tail == e)
        ev->tail = prev;
    ev->n--;
    entry_free(e);
}

static void
drop_entry(shim_events *ev, event_entry *e, const char *why)
{
    cc_log_fields(CC_LOG_WARNING, 0,
                  CC_FIELDS("topic", e->topic, "type", e->type_name, "namespace", ev->ns),
                  "dropping event: %s", why);
    queue_remove(ev, e);
}

/* Schedules sending the head at once, unless a Forward is in flight or a back-off runs. */
static void
kick(shim_events *ev)
{
    if (!ev->head || ev->in_flight || cc_loop_source_get_enabled(ev->timer))
        return;
    (void)cc_loop_source_set_timer(ev->timer, 0, 0, NULL);
}

/* The head's attempt failed: retry after attempts * backoff, or drop it past the limit. */
static void
head_failed(shim_events *ev, const char *why)
{
    event_entry *e = ev->head;
    if (++e->attempts > SHIM_EVENTS_RETRIES) {
        _cleanup_free_ char *msg =
            cc_xasprintf("%u attempts failed, the last with: %s", e->attempts, why);
        drop_entry(ev, e, msg);
        kick(ev);
        return;
    }
    cc_log_fields(CC_LOG_DEBUG, 0, CC_FIELDS("topic", e->topic, "namespace", ev->ns),
                  "forwarding event failed (attempt %u), retrying: %s", e->attempts, why);
    (void)cc_loop_source_set_timer_relative(ev->timer, e->attempts * ev->backoff_usec, 0, NULL);
}

static void
disconnect(shim_events *ev)
{
    ev->client = cc_ttrpc_client_free(ev->client);
}

/* The connection ended while idle (containerd restarting?): reconnect on the next send. */
static void
on_close(cc_ttrpc_client *c, int error, void *userdata)
{
    shim_events *ev = userdata;
    cc_log_errno(CC_LOG_DEBUG, error, "events: connection to '%s' closed", ev->path);
    if (ev->client == c)
        disconnect(ev);
}

static int
connect_client(shim_events *ev, cc_error **err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int r;

    strcpy(sa.sun_path, ev->path); /* length checked in shim_events_new() */
    _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return cc_error_set(err, -errno, "socket");
    /* A unix stream connect completes at once, or fails with EAGAIN on a full backlog,
     * which is retried like any other failure. */
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        return cc_error_set(err, -errno, "connect '%s'", ev->path);
    r = cc_ttrpc_client_new(ev->loop, fd, &ev->client, err);
    if (r < 0)
        return r;
    TAKE_FD(fd);
    cc_ttrpc_client_set_close_callback(ev->client, on_close, ev);
    cc_log(CC_LOG_DEBUG, "events: connected to '%s'", ev->path);
    return 0;
}

static void
on_reply(cc_ttrpc_code code, const char *message, const uint8_t *payload, size_t len,
         void *userdata)
{
    shim_events *ev = userdata;
    ev->in_flight = false;
    if (code == CC_TTRPC_OK) {
        cc_log_fields(CC_LOG_DEBUG, 0, CC_FIELDS("topic", ev->head->topic, "namespace", ev->ns),
                      "event forwarded");
        queue_remove(ev, ev->head);
        kick(ev);
        return;
    }
    if (ev->client && cc_ttrpc_client_is_closed(ev->client))
        disconnect(ev); /* safe in its own callback; its close callback is not called then */
    _cleanup_free_ char *why =
        cc_xasprintf("%s: %s", cc_ttrpc_code_to_string(code), message ? message : "");
    head_failed(ev, why);
}

static void
send_head(shim_events *ev)
{
    _cleanup_error_ cc_error *e = NULL;
    event_entry *head = ev->head;
    cc_ttrpc_request req = {.service = EVENTS_SERVICE,
                            .method = EVENTS_METHOD,
                            .payload = head->req,
                            .len = head->len,
                            .timeout_usec = SHIM_EVENTS_CALL_TIMEOUT_USEC};
    int r;

    if (ev->client && cc_ttrpc_client_is_closed(ev->client))
        disconnect(ev);
    if (!ev->client && connect_client(ev, &e) < 0) {
        head_failed(ev, cc_error_message(e));
        return;
    }
    r = cc_ttrpc_client_call_request(ev->client, &req, on_reply, ev, &ev->call_id, &e);
    if (r == -EMSGSIZE) { /* never going to fit: no point retrying */
        drop_entry(ev, head, cc_error_message(e));
        kick(ev);
        return;
    }
    if (r < 0) {
        disconnect(ev);
        head_failed(ev, cc_error_message(e));
        return;
    }
    ev->in_flight = true;
}

static int
on_timer(cc_loop_source *s, uint64_t deadline, void *userdata)
{
    shim_events *ev = userdata;
    if (ev->head && !ev->in_flight)
        send_head(ev);
    return 0;
}

int
shim_events_new(cc_loop *loop, const char *address, const char *ns, shim_events **ret,
                cc_error **err)
{
    struct sockaddr_un sa;
    const char *path = address ? address : "";
    const char *p = cc_startswith(path, "unix://");
    int r;

    if (p)
        path = p;
    if (!*path)
        return cc_error_msg(err, -EINVAL, "events: no ttrpc address");
    if (strlen(path) >= sizeof(sa.sun_path))
        return cc_error_msg(err, -ENAMETOOLONG, "events: ttrpc address '%s' too long", path);
    if (!ns || !*ns)
        return cc_error_msg(err, -EINVAL, "events: no namespace");

    shim_events *ev = cc_xzalloc(sizeof(*ev));
    *ev = (shim_events){.loop = loop, .backoff_usec = EVENTS_BACKOFF_USEC};
    r = cc_loop_add_timer(loop, UINT64_MAX, 0, on_timer, ev, &ev->timer, err);
    if (r < 0) {
        free(ev);
        return cc_error_prefix(err, r, "events");
    }
    (void)cc_loop_source_set_enabled(ev->timer, false, NULL);
    cc_loop_source_set_description(ev->timer, "shim-events");
    ev->path = cc_xstrdup(path);
    ev->ns = cc_xstrdup(ns);
    *ret = ev;
    return 0;
}

/* Packs msg into a new buffer. */
static uint8_t *
pack_message(const ProtobufCMessage *msg, size_t *ret_len)
{
    size_t n = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = cc_xmalloc(n ? n : 1);
    *ret_len = protobuf_c_message_pack(msg, buf);
    assert(*ret_len == n);
    return buf;
}

void
shim_events_publish(shim_events *ev, const char *topic, const ProtobufCMessage *event)
{
    Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
    Containerd__Services__Events__Ttrpc__V1__Envelope env =
        CONTAINERD__SERVICES__EVENTS__TTRPC__V1__ENVELOPE__INIT;
    Containerd__Services__Events__Ttrpc__V1__ForwardRequest fr =
        CONTAINERD__SERVICES__EVENTS__TTRPC__V1__FORWARD_REQUEST__INIT;
    struct timespec now;

    assert(ev && topic && event);
    (void)clock_gettime(CLOCK_REALTIME, &now);
    ts.seconds = now.tv_sec;
    ts.nanos = (int32_t)now.tv_nsec;
    if (ts.seconds == 0 && ts.nanos == 0)
        ts.nanos = 1; /* containerd rejects a zero timestamp */

    _cleanup_free_ uint8_t *value = pack_message(event, &any.value.len);
    any.value.data = value;
    any.type_url = (char *)event->descriptor->name; /* bare name: typeurl v1's fallback */
    env.timestamp = &ts;
    env.namespace_ = ev->ns;
    env.topic = (char *)topic;
    env.event = &any;
    fr.envelope = &env;

    event_entry *e = cc_xzalloc(sizeof(*e));
    e->topic = cc_xstrdup(topic);
    e->type_name = event->descriptor->name;
    e->req = pack_message(&fr.base, &e->len);

    if (ev->n >= SHIM_EVENTS_QUEUE_MAX) /* the head may be on the wire: drop the next one */
        drop_entry(ev, ev->in_flight ? ev->head->next : ev->head, "queue full");
    if (ev->tail)
        ev->tail->next = e;
    else
        ev->head = e;
    ev->tail = e;
    ev->n++;
    kick(ev);
}

size_t
shim_events_pending(const shim_events *ev)
{
    return ev->n;
}

/* For test/unit/shim/test-events.c only (declared there): the back-off base, default 1 s. */
void shim_events_set_backoff_for_tests(shim_events *ev, uint64_t base_usec);
void
shim_events_set_backoff_for_tests(shim_events *ev, uint64_t base_usec)
{
    ev->backoff_usec = base_usec;
}

shim_events *
shim_events_free(shim_events *ev)
{
    if (!ev)
        return NULL;
    if (ev->in_flight && ev->client)
        (void)cc_ttrpc_client_cancel_call(ev->client, ev->call_id); /* no callback into ev */
    ev->in_flight = false;
    disconnect(ev);
    ev->timer = cc_loop_source_free(ev->timer);
    if (ev->n > 0)
        cc_log(CC_LOG_DEBUG, "events: dropping %zu unsent event(s)", ev->n);
    while (ev->head) {
        event_entry *e = ev->head;
        ev->head = e->next;
        entry_free(e);
    }
    free(ev->path);
    free(ev->ns);
    free(ev);
    return NULL;
}
