/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lib/grpc*.c: our server on a temporary unix socket, driven by our blocking client from
 * other threads while the test's main thread runs the loop. The test service speaks
 * google.rpc.Status both ways (it is in cloak-proto, which every test links).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* cmocka.h needs these first. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>

#include "google/rpc/status.pb-c.h"
#include "grpc.h"
#include "loop.h"
#include "util.h"

#define SECOND 1000000u
#define SERVICE "cloak.test.v1.Echo"

typedef struct fixture {
    char dir[64];
    char path[128];
    cc_loop *loop;
    cc_grpc_server *server;
    cc_grpc_client *client;
    cc_grpc_call *held[16]; /* calls of Hold, completed by the test */
    size_t n_held;
} fixture;

/* --- the test service ---------------------------------------------------------------------- */

static Google__Rpc__Status *
unpack(cc_grpc_call *call, const uint8_t *req, size_t len)
{
    return (Google__Rpc__Status *)cc_grpc_call_unpack(call, &google__rpc__status__descriptor, req,
                                                      len);
}

/* Echo: {code, message} -> {code: request length, message}. */
static void
on_echo(cc_grpc_call *call, const uint8_t *req, size_t len, void *userdata)
{
    Google__Rpc__Status *in = unpack(call, req, len);
    if (!in)
        return;
    Google__Rpc__Status out = GOOGLE__RPC__STATUS__INIT;
    out.code = (int32_t)len;
    out.message = in->message;
    assert_int_equal(cc_grpc_call_reply(call, &out.base), 0);
    protobuf_c_message_free_unpacked(&in->base, NULL);
}

/* Fail: answers the status it was sent. */
static void
on_fail(cc_grpc_call *call, const uint8_t *req, size_t len, void *userdata)
{
    Google__Rpc__Status *in = unpack(call, req, len);
    if (!in)
        return;
    assert_int_equal(cc_grpc_call_fail(call, in->code, "%s", in->message), 0);
    protobuf_c_message_free_unpacked(&in->base, NULL);
}

static int
on_later_timer(cc_loop_source *src, uint64_t deadline, void *userdata)
{
    Google__Rpc__Status out = GOOGLE__RPC__STATUS__INIT;
    out.message = (char *)"later";
    (void)cc_grpc_call_reply(userdata, &out.base);
    cc_loop_source_free(src);
    return 0;
}

/* Later: replies "later" after code milliseconds, from a loop timer. */
static void
on_later(cc_grpc_call *call, const uint8_t *req, size_t len, void *userdata)
{
    Google__Rpc__Status *in = unpack(call, req, len);
    if (!in)
        return;
    assert_int_equal(
        cc_loop_add_timer(userdata, (uint64_t)in->code * 1000, 0, on_later_timer, call, NULL, NULL),
        0);
    protobuf_c_message_free_unpacked(&in->base, NULL);
}

/* Metadata: answers the value of the metadata key named by message ("<none>" if absent). */
static void
on_metadata(cc_grpc_call *call, const uint8_t *req, size_t len, void *userdata)
{
    Google__Rpc__Status *in = unpack(call, req, len);
    if (!in)
        return;
    const char *v = cc_grpc_call_get_metadata(call, in->message);
    Google__Rpc__Status out = GOOGLE__RPC__STATUS__INIT;
    out.message = (char *)(v ? v : "<none>");
    assert_string_equal(cc_grpc_call_get_method(call), "/" SERVICE "/Metadata");
    assert_int_equal(cc_grpc_call_reply(call, &out.base), 0);
    protobuf_c_message_free_unpacked(&in->base, NULL);
}

/* Hold: keeps the call for the test to complete. */
static void
on_hold(cc_grpc_call *call, const uint8_t *req, size_t len, void *userdata)
{
    fixture *f = userdata;
    assert_true(f->n_held < ELEMENTSOF(f->held));
    f->held[f->n_held++] = call;
}

/*
 * Stream: streams code messages {code: i, message}, all queued at once (so most wait for the
 * previous one), then completes with OK, or with the status ABORTED when message is "fail".
 */
static void
on_stream(cc_grpc_call *call, const uint8_t *req, size_t len, void *userdata)
{
    Google__Rpc__Status *in = unpack(call, req, len);
    if (!in)
        return;
    for (int32_t i = 0; i < in->code; i++) {
        Google__Rpc__Status out = GOOGLE__RPC__STATUS__INIT;
        out.code = i;
        out.message = in->message;
        assert_int_equal(cc_grpc_call_send(call, &out.base), 0);
    }
    if (cc_streq(in->message, "fail"))
        assert_int_equal(cc_grpc_call_fail(call, CC_TTRPC_ABORTED, "failed after %d", in->code),
                         0);
    else
        assert_int_equal(cc_grpc_call_reply(call, NULL), 0);
    protobuf_c_message_free_unpacked(&in->base, NULL);
}

static const cc_grpc_method echo_methods[] = {
    {"Echo", on_echo},
    {"Stream", on_stream},
    {"Fail", on_fail},
    {"Metadata", on_metadata},
};

static int
setup(void **state)
{
    fixture *f = cc_xzalloc(sizeof(*f));

    snprintf(f->dir, sizeof(f->dir), "/tmp/test-grpc-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/grpc.sock", f->dir);
    assert_int_equal(cc_loop_new(&f->loop, NULL), 0);
    assert_int_equal(cc_grpc_server_new(f->loop, &f->server, NULL), 0);
    assert_int_equal(cc_grpc_server_register(f->server, SERVICE, echo_methods,
                                             ELEMENTSOF(echo_methods), NULL, NULL),
                     0);
    /* Separate services to pass other userdata. */
    assert_int_equal(cc_grpc_server_register(f->server, SERVICE ".Later",
                                             &(cc_grpc_method){"Later", on_later}, 1, f->loop,
                                             NULL),
                     0);
    assert_int_equal(cc_grpc_server_register(f->server, SERVICE ".Hold",
                                             &(cc_grpc_method){"Hold", on_hold}, 1, f, NULL),
                     0);
    assert_int_equal(cc_grpc_server_listen(f->server, f->path, 0660, NULL), 0);
    assert_int_equal(cc_grpc_client_new(f->path, &f->client, NULL), 0);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fixture *f = *state;

    f->client = cc_grpc_client_free(f->client);
    f->server = cc_grpc_server_free(f->server);
    for (size_t i = 0; i < f->n_held; i++)
        (void)cc_grpc_call_fail(f->held[i], CC_TTRPC_INTERNAL, "teardown");
    /* Deferred replies whose timers did not fire yet. */
    f->loop = cc_loop_free(f->loop);
    (void)unlink(f->path);
    (void)rmdir(f->dir);
    free(f);
    return 0;
}

/* --- client threads ------------------------------------------------------------------------ */

typedef struct job {
    fixture *f;
    void (*fn)(struct job *j);
    atomic_bool done;
    pthread_t thread;
    int index;
} job;

static void *
job_main(void *p)
{
    job *j = p;
    j->fn(j);
    atomic_store(&j->done, true);
    (void)cc_loop_wakeup(j->f->loop);
    return NULL;
}

static void
job_start(job *j, fixture *f, void (*fn)(job *j), int index)
{
    j->f = f;
    j->fn = fn;
    j->index = index;
    atomic_init(&j->done, false);
    assert_int_equal(pthread_create(&j->thread, NULL, job_main, j), 0);
}

/* Runs the loop until every job is done (10 s at most), then joins them. */
static void
jobs_run(fixture *f, job *jobs, size_t n)
{
    uint64_t end = cc_loop_now() + 10 * SECOND;
    for (;;) {
        size_t done = 0;
        for (size_t i = 0; i < n; i++)
            done += atomic_load(&jobs[i].done);
        if (done == n)
            break;
        assert_true(cc_loop_now() < end);
        assert_true(cc_loop_run_once(f->loop, 100000, NULL) >= 0);
    }
    for (size_t i = 0; i < n; i++)
        assert_int_equal(pthread_join(jobs[i].thread, NULL), 0);
}

/* One call of method with {code, message}; returns the reply (caller clears it). */
static cc_grpc_reply
call(fixture *f, const char *method, int32_t code, const char *message, uint64_t timeout_usec,
     const cc_ttrpc_kv *md, size_t n_md)
{
    Google__Rpc__Status in = GOOGLE__RPC__STATUS__INIT;
    in.code = code;
    in.message = (char *)message;
    cc_grpc_request req = {.method = method,
                           .msg = &in.base,
                           .timeout_usec = timeout_usec,
                           .metadata = md,
                           .n_metadata = n_md};
    cc_grpc_reply reply = {0};
    assert_int_equal(cc_grpc_client_call_raw(f->client, &req, &reply, NULL), 0);
    assert_non_null(reply.message);
    return reply;
}

static Google__Rpc__Status *
reply_status(const cc_grpc_reply *r)
{
    Google__Rpc__Status *s = google__rpc__status__unpack(NULL, r->len, r->payload);
    assert_non_null(s);
    return s;
}

/* --- tests --------------------------------------------------------------------------------- */

static void
job_echo(job *j)
{
    ProtobufCMessage *resp = NULL;
    cc_ttrpc_code code = -1;
    _cleanup_free_ char *message = NULL;
    Google__Rpc__Status in = GOOGLE__RPC__STATUS__INIT;
    in.message = (char *)"hello";

    assert_int_equal(cc_grpc_client_call_sync(j->f->client, "/" SERVICE "/Echo", &in.base,
                                              &google__rpc__status__descriptor, 5 * SECOND, &resp,
                                              &code, &message, NULL),
                     0);
    assert_int_equal(code, CC_TTRPC_OK);
    assert_string_equal(message, "");
    assert_non_null(resp);
    Google__Rpc__Status *out = (Google__Rpc__Status *)resp;
    assert_string_equal(out->message, "hello");
    assert_int_equal(out->code, 7); /* the request's length: field 2, 5 bytes */
    protobuf_c_message_free_unpacked(resp, NULL);
}

static void
test_echo(void **state)
{
    fixture *f = *state;
    job j;

    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0660);
    job_start(&j, f, job_echo, 0);
    jobs_run(f, &j, 1);
    assert_int_equal(cc_grpc_server_get_n_calls(f->server), 0);
}

static void
job_fail(job *j)
{
    cc_grpc_reply r = call(j->f, "/" SERVICE "/Fail", CC_TTRPC_NOT_FOUND,
                           "snapshot \"x\": not found", 0, NULL, 0);
    assert_int_equal(r.code, CC_TTRPC_NOT_FOUND);
    assert_string_equal(r.message, "snapshot \"x\": not found");
    assert_int_equal(r.len, 0);
    cc_grpc_reply_clear(&r);

    /* OK is no failure: sent as UNKNOWN. Non-ASCII messages survive. */
    r = call(j->f, "/" SERVICE "/Fail", CC_TTRPC_OK, "caf\xc3\xa9 %", 0, NULL, 0);
    assert_int_equal(r.code, CC_TTRPC_UNKNOWN);
    assert_string_equal(r.message, "caf\xc3\xa9 %");
    cc_grpc_reply_clear(&r);

    /* The sync form: status out, no response. */
    ProtobufCMessage *resp = (ProtobufCMessage *)1;
    cc_ttrpc_code code = -1;
    _cleanup_free_ char *message = NULL;
    Google__Rpc__Status in = GOOGLE__RPC__STATUS__INIT;
    in.code = CC_TTRPC_ALREADY_EXISTS;
    in.message = (char *)"exists";
    assert_int_equal(cc_grpc_client_call_sync(j->f->client, "/" SERVICE "/Fail", &in.base,
                                              &google__rpc__status__descriptor, 0, &resp, &code,
                                              &message, NULL),
                     0);
    assert_null(resp);
    assert_int_equal(code, CC_TTRPC_ALREADY_EXISTS);
    assert_string_equal(message, "exists");
}

static void
test_fail(void **state)
{
    fixture *f = *state;
    job j;

    job_start(&j, f, job_fail, 0);
    jobs_run(f, &j, 1);
}

static void
job_unimplemented(job *j)
{
    cc_grpc_reply r = call(j->f, "/" SERVICE "/Nope", 0, "", 0, NULL, 0);
    assert_int_equal(r.code, CC_TTRPC_UNIMPLEMENTED);
    assert_string_equal(r.message, "unknown method Nope for service " SERVICE);
    cc_grpc_reply_clear(&r);

    r = call(j->f, "/containerd.services.snapshots.v1.Snapshots/Prepare", 0, "", 0, NULL, 0);
    assert_int_equal(r.code, CC_TTRPC_UNIMPLEMENTED);
    assert_string_equal(r.message, "unknown service containerd.services.snapshots.v1.Snapshots");
    cc_grpc_reply_clear(&r);

    /* A request that does not unpack: INTERNAL from cc_grpc_call_unpack(). */
    static const uint8_t garbage[] = {0xff, 0xff, 0xff};
    cc_grpc_request req = {
        .method = "/" SERVICE "/Echo", .payload = garbage, .len = sizeof(garbage)};
    assert_int_equal(cc_grpc_client_call_raw(j->f->client, &req, &r, NULL), 0);
    assert_int_equal(r.code, CC_TTRPC_INTERNAL);
    assert_string_equal(r.message, "grpc: error unmarshalling request");
    cc_grpc_reply_clear(&r);
}

static void
test_unimplemented(void **state)
{
    fixture *f = *state;
    job j;

    job_start(&j, f, job_unimplemented, 0);
    jobs_run(f, &j, 1);
}

static void
job_deferred(job *j)
{
    uint64_t start = cc_loop_now();
    cc_grpc_reply r = call(j->f, "/" SERVICE ".Later/Later", 200, "", 0, NULL, 0);
    assert_true(cc_loop_now() - start >= 200000);
    assert_int_equal(r.code, CC_TTRPC_OK);
    Google__Rpc__Status *s = reply_status(&r);
    assert_string_equal(s->message, "later");
    protobuf_c_message_free_unpacked(&s->base, NULL);
    cc_grpc_reply_clear(&r);
}

static void
test_deferred(void **state)
{
    fixture *f = *state;
    job j;

    job_start(&j, f, job_deferred, 0);
    jobs_run(f, &j, 1);
}

static void
job_metadata(job *j)
{
    const cc_ttrpc_kv md[] = {{"containerd-namespace", "k8s.io"}, {"other", "x"}};
    cc_grpc_reply r = call(j->f, "/" SERVICE "/Metadata", 0, "containerd-namespace", 0, md, 2);
    assert_int_equal(r.code, CC_TTRPC_OK);
    Google__Rpc__Status *s = reply_status(&r);
    assert_string_equal(s->message, "k8s.io");
    protobuf_c_message_free_unpacked(&s->base, NULL);
    cc_grpc_reply_clear(&r);

    r = call(j->f, "/" SERVICE "/Metadata", 0, "containerd-namespace", 0, NULL, 0);
    s = reply_status(&r);
    assert_string_equal(s->message, "<none>");
    protobuf_c_message_free_unpacked(&s->base, NULL);
    cc_grpc_reply_clear(&r);
}

static void
test_metadata(void **state)
{
    fixture *f = *state;
    job j;

    job_start(&j, f, job_metadata, 0);
    jobs_run(f, &j, 1);
}

#define CONCURRENT_THREADS 4
#define CONCURRENT_CALLS 25

static void
job_concurrent(job *j)
{
    for (int i = 0; i < CONCURRENT_CALLS; i++) {
        char msg[32];
        snprintf(msg, sizeof(msg), "t%d-%d", j->index, i);
        cc_grpc_reply r = call(j->f, "/" SERVICE "/Echo", 0, msg, 0, NULL, 0);
        assert_int_equal(r.code, CC_TTRPC_OK);
        Google__Rpc__Status *s = reply_status(&r);
        assert_string_equal(s->message, msg);
        protobuf_c_message_free_unpacked(&s->base, NULL);
        cc_grpc_reply_clear(&r);

        /* Some deferred ones, so calls overlap on the server. */
        if (i % 5 == 0) {
            r = call(j->f, "/" SERVICE ".Later/Later", 10, "", 0, NULL, 0);
            assert_int_equal(r.code, CC_TTRPC_OK);
            cc_grpc_reply_clear(&r);
        }
    }
}

static void
test_concurrent(void **state)
{
    fixture *f = *state;
    job jobs[CONCURRENT_THREADS];

    for (int i = 0; i < CONCURRENT_THREADS; i++)
        job_start(&jobs[i], f, job_concurrent, i);
    jobs_run(f, jobs, CONCURRENT_THREADS);
    assert_int_equal(cc_grpc_server_get_n_calls(f->server), 0);
}

static void
job_deadline(job *j)
{
    cc_grpc_reply r = call(j->f, "/" SERVICE ".Hold/Hold", 0, "", 100000, NULL, 0);
    assert_int_equal(r.code, CC_TTRPC_DEADLINE_EXCEEDED);
    cc_grpc_reply_clear(&r);
}

static void
test_deadline(void **state)
{
    fixture *f = *state;
    job j;

    job_start(&j, f, job_deadline, 0);
    jobs_run(f, &j, 1);
    assert_int_equal(f->n_held, 1);
    /* The server learns of the cancellation shortly. */
    uint64_t end = cc_loop_now() + 5 * SECOND;
    while (!cc_grpc_call_is_cancelled(f->held[0]) && cc_loop_now() < end)
        assert_true(cc_loop_run_once(f->loop, 10000, NULL) >= 0);
    assert_true(cc_grpc_call_is_cancelled(f->held[0]));
    assert_int_equal(cc_grpc_call_reply(f->held[0], NULL), -ECANCELED);
    f->n_held = 0;
}

#define HOLD_CALLS 10

static void
job_hold(job *j)
{
    cc_grpc_reply r = call(j->f, "/" SERVICE ".Hold/Hold", 0, "", 0, NULL, 0);
    /* The server went away mid-call: gRPC reports UNAVAILABLE or CANCELLED. */
    assert_true(r.code == CC_TTRPC_UNAVAILABLE || r.code == CC_TTRPC_CANCELLED);
    cc_grpc_reply_clear(&r);
}

static void
test_free_in_flight(void **state)
{
    fixture *f = *state;
    job jobs[HOLD_CALLS];

    for (int i = 0; i < HOLD_CALLS; i++)
        job_start(&jobs[i], f, job_hold, i);
    uint64_t end = cc_loop_now() + 5 * SECOND;
    while (f->n_held < HOLD_CALLS && cc_loop_now() < end)
        assert_true(cc_loop_run_once(f->loop, 10000, NULL) >= 0);
    assert_int_equal(f->n_held, HOLD_CALLS);
    assert_int_equal(cc_grpc_server_get_n_calls(f->server), HOLD_CALLS);

    f->server = cc_grpc_server_free(f->server);
    jobs_run(f, jobs, HOLD_CALLS);
    /* The calls are still ours and cancelled. */
    for (size_t i = 0; i < f->n_held; i++) {
        assert_true(cc_grpc_call_is_cancelled(f->held[i]));
        assert_null(cc_grpc_call_get_metadata(f->held[i], "containerd-namespace"));
        assert_int_equal(cc_grpc_call_fail(f->held[i], CC_TTRPC_INTERNAL, "late"), -ECANCELED);
    }
    f->n_held = 0;

    /* A new server on the same path replaces the stale socket. */
    assert_int_equal(cc_grpc_server_new(f->loop, &f->server, NULL), 0);
    assert_int_equal(cc_grpc_server_register(f->server, SERVICE, echo_methods,
                                             ELEMENTSOF(echo_methods), NULL, NULL),
                     0);
    assert_int_equal(cc_grpc_server_listen(f->server, f->path, 0600, NULL), 0);
    job j;
    job_start(&j, f, job_echo, 0);
    jobs_run(f, &j, 1);
}

static void
job_too_big(job *j)
{
    size_t n = CC_GRPC_MESSAGE_LENGTH_MAX + 1;
    char *big = cc_xmalloc(n + 1);
    memset(big, 'a', n);
    big[n] = '\0';
    cc_grpc_reply r = call(j->f, "/" SERVICE "/Echo", 0, big, 0, NULL, 0);
    assert_int_equal(r.code, CC_TTRPC_RESOURCE_EXHAUSTED);
    cc_grpc_reply_clear(&r);

    /* Just under the limit passes. */
    big[CC_GRPC_MESSAGE_LENGTH_MAX - 16] = '\0';
    r = call(j->f, "/" SERVICE "/Echo", 0, big, 0, NULL, 0);
    assert_int_equal(r.code, CC_TTRPC_OK);
    cc_grpc_reply_clear(&r);
    free(big);
}

static void
test_too_big(void **state)
{
    fixture *f = *state;
    job j;

    job_start(&j, f, job_too_big, 0);
    jobs_run(f, &j, 1);
}

static void
test_register_errors(void **state)
{
    fixture *f = *state;
    _cleanup_error_ cc_error *e = NULL;

    assert_int_equal(cc_grpc_server_register(f->server, SERVICE, echo_methods, 1, NULL, &e),
                     -EEXIST);
    assert_int_equal(cc_grpc_server_register(f->server, "x", echo_methods, 0, NULL, NULL), -EINVAL);
    assert_int_equal(cc_grpc_server_register(f->server, "", echo_methods, 1, NULL, NULL), -EINVAL);
    const cc_grpc_method dup[] = {{"A", on_echo}, {"A", on_fail}};
    assert_int_equal(cc_grpc_server_register(f->server, "y", dup, 2, NULL, NULL), -EINVAL);
    assert_int_equal(
        cc_grpc_server_register(f->server, "z", &(cc_grpc_method){"A", NULL}, 1, NULL, NULL),
        -EINVAL);
    assert_int_equal(cc_grpc_server_listen(f->server, f->path, 0660, NULL), -EALREADY);
}

static void
job_no_server(job *j)
{
    _cleanup_(cc_grpc_client_freep) cc_grpc_client *c = NULL;
    char path[160];
    snprintf(path, sizeof(path), "%s/none.sock", j->f->dir);
    assert_int_equal(cc_grpc_client_new(path, &c, NULL), 0);
    cc_grpc_request req = {.method = "/" SERVICE "/Echo", .timeout_usec = 2 * SECOND};
    cc_grpc_reply r = {0};
    assert_int_equal(cc_grpc_client_call_raw(c, &req, &r, NULL), 0);
    assert_int_equal(r.code, CC_TTRPC_UNAVAILABLE);
    cc_grpc_reply_clear(&r);
    assert_int_equal(cc_grpc_client_call_raw(c, &(cc_grpc_request){.method = "Echo"}, &r, NULL),
                     -EINVAL);
}

static void
test_no_server(void **state)
{
    fixture *f = *state;
    job j;

    job_start(&j, f, job_no_server, 0);
    jobs_run(f, &j, 1);
}

/* Freeing the server from inside one of its own handlers. */
static void
on_free_self(cc_grpc_call *call, const uint8_t *req, size_t len, void *userdata)
{
    fixture *f = userdata;
    f->server = cc_grpc_server_free(f->server);
    assert_int_equal(cc_grpc_call_reply(call, NULL), -ECANCELED);
}

static void
job_free_self(job *j)
{
    cc_grpc_reply r = call(j->f, "/free.Self/Free", 0, "", 0, NULL, 0);
    assert_true(r.code == CC_TTRPC_UNAVAILABLE || r.code == CC_TTRPC_CANCELLED);
    cc_grpc_reply_clear(&r);
}

static void
test_free_in_handler(void **state)
{
    fixture *f = *state;
    job j;

    assert_int_equal(cc_grpc_server_register(f->server, "free.Self",
                                             &(cc_grpc_method){"Free", on_free_self}, 1, f, NULL),
                     0);
    job_start(&j, f, job_free_self, 0);
    jobs_run(f, &j, 1);
    assert_null(f->server);
}

/* A server that never listened frees cleanly. */
/*
 * A raw gRPC C core client of a server-streaming method: sends {n, message} and receives
 * every message until the end of the stream; returns how many, checking they come in
 * order, and the status in *ret_code and ret_details.
 */
static int32_t
stream_call(fixture *f, int32_t n, const char *message, grpc_status_code *ret_code,
            char *ret_details, size_t details_size)
{
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    _cleanup_free_ char *target = cc_xasprintf("unix:%s", f->path);
    grpc_channel *channel = grpc_channel_create(target, creds, NULL);
    grpc_channel_credentials_release(creds);
    grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
    grpc_slice method = grpc_slice_from_static_string("/" SERVICE "/Stream");
    grpc_call *gcall = grpc_channel_create_call(channel, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                                                method, NULL,
                                                gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
                                                             gpr_time_from_seconds(10, GPR_TIMESPAN)),
                                                NULL);
    assert_non_null(gcall);

    Google__Rpc__Status in = GOOGLE__RPC__STATUS__INIT;
    in.code = n;
    in.message = (char *)message;
    size_t len = protobuf_c_message_get_packed_size(&in.base);
    grpc_slice req = grpc_slice_malloc(len);
    (void)protobuf_c_message_pack(&in.base, GRPC_SLICE_START_PTR(req));
    grpc_byte_buffer *send = grpc_raw_byte_buffer_create(&req, 1);
    grpc_slice_unref(req);

    grpc_metadata_array initial_md, trailing_md;
    grpc_metadata_array_init(&initial_md);
    grpc_metadata_array_init(&trailing_md);
    grpc_status_code status = GRPC_STATUS_UNKNOWN;
    grpc_slice details = grpc_empty_slice();
    grpc_op ops[5];
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = send;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &initial_md;
    assert_int_equal(grpc_call_start_batch(gcall, ops, 4, (void *)1, NULL), GRPC_CALL_OK);
    grpc_event ev = grpc_completion_queue_pluck(cq, (void *)1, gpr_inf_future(GPR_CLOCK_REALTIME),
                                                NULL);
    assert_int_equal(ev.type, GRPC_OP_COMPLETE);

    int32_t received = 0;
    for (;;) {
        grpc_byte_buffer *recv = NULL;
        memset(ops, 0, sizeof(ops));
        ops[0].op = GRPC_OP_RECV_MESSAGE;
        ops[0].data.recv_message.recv_message = &recv;
        assert_int_equal(grpc_call_start_batch(gcall, ops, 1, (void *)2, NULL), GRPC_CALL_OK);
        ev = grpc_completion_queue_pluck(cq, (void *)2, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        assert_int_equal(ev.type, GRPC_OP_COMPLETE);
        if (!ev.success || !recv)
            break; /* end of stream */
        grpc_byte_buffer_reader reader;
        assert_true(grpc_byte_buffer_reader_init(&reader, recv));
        grpc_slice s = grpc_byte_buffer_reader_readall(&reader);
        grpc_byte_buffer_reader_destroy(&reader);
        grpc_byte_buffer_destroy(recv);
        Google__Rpc__Status *out =
            google__rpc__status__unpack(NULL, GRPC_SLICE_LENGTH(s), GRPC_SLICE_START_PTR(s));
        grpc_slice_unref(s);
        assert_non_null(out);
        assert_int_equal(out->code, received);
        assert_string_equal(out->message, message);
        protobuf_c_message_free_unpacked(&out->base, NULL);
        received++;
    }

    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[0].data.recv_status_on_client.trailing_metadata = &trailing_md;
    ops[0].data.recv_status_on_client.status = &status;
    ops[0].data.recv_status_on_client.status_details = &details;
    assert_int_equal(grpc_call_start_batch(gcall, ops, 1, (void *)3, NULL), GRPC_CALL_OK);
    ev = grpc_completion_queue_pluck(cq, (void *)3, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    assert_int_equal(ev.type, GRPC_OP_COMPLETE);
    *ret_code = status;
    snprintf(ret_details, details_size, "%.*s", (int)GRPC_SLICE_LENGTH(details),
             (const char *)GRPC_SLICE_START_PTR(details));

    grpc_slice_unref(details);
    grpc_metadata_array_destroy(&initial_md);
    grpc_metadata_array_destroy(&trailing_md);
    grpc_byte_buffer_destroy(send);
    grpc_call_unref(gcall);
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(cq);
    grpc_channel_destroy(channel);
    return received;
}

static void
job_stream(job *j)
{
    grpc_status_code code;
    char details[128];

    assert_int_equal(stream_call(j->f, 250, "hi", &code, details, sizeof(details)), 250);
    assert_int_equal(code, GRPC_STATUS_OK);
    assert_int_equal(stream_call(j->f, 1, "one", &code, details, sizeof(details)), 1);
    assert_int_equal(code, GRPC_STATUS_OK);
    assert_int_equal(stream_call(j->f, 3, "fail", &code, details, sizeof(details)), 3);
    assert_int_equal(code, GRPC_STATUS_ABORTED);
    assert_string_equal(details, "failed after 3");
}

static void
test_stream(void **state)
{
    fixture *f = *state;
    job j;

    job_start(&j, f, job_stream, 0);
    jobs_run(f, &j, 1);
    assert_int_equal(cc_grpc_server_get_n_calls(f->server), 0);
}

static void
test_never_listened(void **state)
{
    fixture *f = *state;
    _cleanup_(cc_grpc_server_freep) cc_grpc_server *s = NULL;

    assert_int_equal(cc_grpc_server_new(f->loop, &s, NULL), 0);
    assert_int_equal(cc_grpc_server_register(s, SERVICE, echo_methods, 1, NULL, NULL), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_echo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unimplemented, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deferred, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metadata, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_big, setup, teardown),
        cmocka_unit_test_setup_teardown(test_register_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_server, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_in_handler, setup, teardown),
        cmocka_unit_test_setup_teardown(test_never_listened, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
