/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lib/ttrpc-client.c against a fake server (a raw peer that reads the requests and writes
 * whatever frames a test wants) and against our own server in the same loop.
 */
#define _GNU_SOURCE
#include "test-helpers.h"
#include "ttrpc/ttrpc.pb-c.h"

#include <signal.h>
#include <stdio.h>
#include <sys/ioctl.h>

typedef struct answer {
    int n;
    cc_ttrpc_code code;
    char *message;
    uint8_t *payload;
    size_t len;
    uint64_t at;
} answer;

static struct fixture {
    cc_loop *loop;
    cc_ttrpc_client *client;
    peer p; /* the fake server */
    int n_close;
    int close_error;
    bool free_in_callback;
    answer a[64]; /* callbacks' targets, outliving each test (teardown frees the client) */
} F;

static void
on_answer(cc_ttrpc_code code, const char *message, const uint8_t *payload, size_t len,
          void *userdata)
{
    answer *a = userdata;
    assert_non_null(message);
    a->n++;
    a->code = code;
    a->at = cc_loop_now();
    free(a->message);
    free(a->payload);
    a->message = cc_xstrdup(message);
    a->payload = cc_xmalloc(len + 1);
    if (len)
        memcpy(a->payload, payload, len);
    a->len = len;
    if (F.free_in_callback) {
        F.free_in_callback = false;
        F.client = cc_ttrpc_client_free(F.client);
    }
}

static void
answer_done(answer *a, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(a[i].message);
        free(a[i].payload);
        a[i] = (answer){0};
    }
}

static void
on_close(cc_ttrpc_client *c, int error, void *userdata)
{
    assert_ptr_equal(c, F.client);
    assert_ptr_equal(userdata, &F);
    F.n_close++;
    F.close_error = error;
}

static int
setup(void **state)
{
    int sv[2];
    F = (struct fixture){0};
    assert_int_equal(cc_loop_new(&F.loop, NULL), 0);
    make_socketpair(sv);
    assert_int_equal(cc_ttrpc_client_new(F.loop, sv[0], &F.client, NULL), 0);
    cc_ttrpc_client_set_close_callback(F.client, on_close, &F);
    peer_init(&F.p, F.loop, sv[1]);
    return 0;
}

static int
teardown(void **state)
{
    F.client = cc_ttrpc_client_free(F.client);
    answer_done(F.a, ELEMENTSOF(F.a));
    peer_done(&F.p);
    F.loop = cc_loop_free(F.loop);
    return 0;
}

static void
call(const char *method, const char *payload, uint64_t timeout, answer *a)
{
    assert_int_equal(cc_ttrpc_client_call_raw(F.client, "svc", method, payload,
                                              payload ? strlen(payload) : 0, timeout, on_answer, a,
                                              NULL),
                     0);
}

/* The fake server reads one Request and checks it. */
static void
expect_request(uint32_t id, const char *method, const char *payload, ttrpc_request_view *ret)
{
    got_frame f;
    ttrpc_request_view v;
    peer_read_frame(F.loop, &F.p, &f);
    assert_int_equal(f.h.type, TTRPC_TYPE_REQUEST);
    assert_int_equal(f.h.stream_id, id);
    assert_int_equal(f.h.flags, 0);
    assert_int_equal(ttrpc_request_decode(f.data, f.h.length, &v, NULL), 0);
    assert_int_equal(v.service.n, 3);
    assert_memory_equal(v.service.p, "svc", 3);
    assert_int_equal(v.method.n, strlen(method));
    assert_memory_equal(v.method.p, method, strlen(method));
    if (payload) {
        assert_int_equal(v.payload.n, strlen(payload));
        assert_memory_equal(v.payload.p, payload, strlen(payload));
    }
    if (ret)
        *ret = (ttrpc_request_view){.timeout_nano = v.timeout_nano, .n_metadata = v.n_metadata};
    got_frame_done(&f);
}

static void
respond_ok(uint32_t id, const char *payload)
{
    ttrpc_payload pl;
    ttrpc_payload_init(&pl, NULL, payload, strlen(payload));
    uint8_t buf[256];
    size_t n = ttrpc_response_ok_size(&pl);
    ttrpc_response_ok_encode(buf, &pl);
    peer_frame(&F.p, id, TTRPC_TYPE_RESPONSE, buf, n);
}

static void
respond_status(uint32_t id, int32_t code, const char *msg)
{
    uint8_t buf[256];
    size_t n = ttrpc_response_status_size(code, strlen(msg));
    ttrpc_response_status_encode(buf, code, msg, strlen(msg));
    peer_frame(&F.p, id, TTRPC_TYPE_RESPONSE, buf, n);
}

static void
run_until_answers(answer *a, size_t n)
{
    uint64_t end = cc_loop_now() + 5 * SECOND;
    for (;;) {
        bool all = true;
        for (size_t i = 0; i < n; i++)
            all = all && a[i].n > 0;
        if (all)
            return;
        assert_true(cc_loop_now() < end);
        assert_true(cc_loop_run_once(F.loop, 100000, NULL) >= 0);
    }
}

/* --- tests ---------------------------------------------------------------------------------- */

static void
test_ids_and_out_of_order(void **state)
{
    answer *a = F.a;
    call("A", "a", 0, &a[0]);
    call("B", "b", 0, &a[1]);
    call("C", "", 0, &a[2]);
    expect_request(1, "A", "a", NULL);
    expect_request(3, "B", "b", NULL);
    expect_request(5, "C", "", NULL);
    respond_ok(5, "");
    respond_status(3, 5, "no such thing");
    respond_ok(1, "\x0a\x01z");
    run_until_answers(a, 3);
    assert_int_equal(a[0].code, CC_TTRPC_OK);
    assert_string_equal(a[0].message, "");
    assert_int_equal(a[0].len, 3);
    assert_memory_equal(a[0].payload, "\x0a\x01z", 3);
    assert_int_equal(a[1].code, CC_TTRPC_NOT_FOUND);
    assert_string_equal(a[1].message, "no such thing");
    assert_int_equal(a[1].len, 0);
    assert_int_equal(a[2].code, CC_TTRPC_OK);
    assert_int_equal(a[2].len, 0);
    run_for(F.loop, 10000);
    for (int i = 0; i < 3; i++)
        assert_int_equal(a[i].n, 1);
    answer_done(a, 3);
}

/* Calls made in one iteration leave in one batch, before the loop sleeps. */
static void
test_batched_writes(void **state)
{
    enum { N = 50 };
    answer *a = F.a;
    for (int i = 0; i < N; i++)
        call("M", "payload", 0, &a[i]);
    int pending = 0;
    assert_int_equal(ioctl(F.p.fd, FIONREAD, &pending), 0);
    assert_int_equal(pending, 0); /* nothing written yet */
    assert_true(cc_loop_run_once(F.loop, 0, NULL) >= 0);
    size_t one = CC_TTRPC_HEADER_LENGTH + 5 + 3 + 9;
    assert_int_equal(ioctl(F.p.fd, FIONREAD, &pending), 0);
    assert_int_equal(pending, N * one);
    for (int i = 0; i < N; i++)
        expect_request(2 * i + 1, "M", "payload", NULL);
    assert_int_equal(F.n_close, 0);
    answer_done(a, N);
}

static void
test_timeout(void **state)
{
    answer *a = &F.a[0], *b = &F.a[1];
    ttrpc_request_view v;
    uint64_t start = cc_loop_now();
    call("Slow", "x", 50000, a);
    expect_request(1, "Slow", "x", &v);
    assert_int_equal(v.timeout_nano, 50000000);
    run_until_answers(a, 1);
    assert_true(a->at - start >= 50000);
    assert_true(a->at - start < SECOND);
    assert_int_equal(a->code, CC_TTRPC_DEADLINE_EXCEEDED);
    assert_string_equal(a->message, "context deadline exceeded");
    /* The late answer is dropped; the connection goes on. */
    respond_ok(1, "late");
    call("Next", "y", 0, b);
    expect_request(3, "Next", "y", &v);
    assert_int_equal(v.timeout_nano, 0);
    respond_ok(3, "ok");
    run_until_answers(b, 1);
    assert_int_equal(b->code, CC_TTRPC_OK);
    assert_int_equal(a->n, 1);
    answer_done(a, 1);
    answer_done(b, 1);
}

static void
test_request_too_big(void **state)
{
    answer *a = &F.a[0];
    cc_error *err = NULL;
    size_t n = CC_TTRPC_MESSAGE_LENGTH_MAX;
    uint8_t *big = cc_xzalloc(n);
    assert_int_equal(
        cc_ttrpc_client_call_raw(F.client, "svc", "Big", big, n - 10, 0, on_answer, a, &err),
        -EMSGSIZE);
    assert_string_equal(cc_error_message(err),
                        "message length 4194309 exceed maximum message size of 4194304");
    err = cc_error_free(err);
    run_for(F.loop, 10000);
    int pending = -1;
    assert_int_equal(ioctl(F.p.fd, FIONREAD, &pending), 0);
    assert_int_equal(pending, 0); /* nothing was sent */
    assert_int_equal(a->n, 0);
    /* Exactly at the limit is fine: svc (5) + Big (5) + payload (1 + 4 + p) = 4 MiB. */
    assert_int_equal(
        cc_ttrpc_client_call_raw(F.client, "svc", "Big", big, n - 15, 0, on_answer, a, NULL), 0);
    got_frame f;
    peer_read_frame(F.loop, &F.p, &f);
    assert_int_equal(f.h.stream_id, 1);
    assert_int_equal(f.h.length, CC_TTRPC_MESSAGE_LENGTH_MAX);
    got_frame_done(&f);
    respond_ok(1, "");
    run_until_answers(a, 1);
    assert_int_equal(a->code, CC_TTRPC_OK);
    free(big);
    answer_done(a, 1);
}

/* The server hangs up in the middle of a Response frame. */
static void
test_hangup_mid_frame(void **state)
{
    answer *a = F.a;
    call("A", "", 0, &a[0]);
    call("B", "", 0, &a[1]);
    call("C", "", 0, &a[2]);
    for (uint32_t id = 1; id <= 5; id += 2)
        expect_request(id, id == 1 ? "A" : id == 3 ? "B" : "C", "", NULL);
    static const uint8_t half[] = {0, 0, 0, 20, 0, 0, 0, 3, 2, 0, 0x12, 0x12, 0x0a};
    peer_write(&F.p, half, sizeof(half));
    run_for(F.loop, 10000);
    assert_int_equal(a[1].n, 0);
    peer_done(&F.p);
    run_until_answers(a, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(a[i].n, 1);
        assert_int_equal(a[i].code, CC_TTRPC_UNAVAILABLE);
        assert_string_equal(a[i].message, "ttrpc: closed");
    }
    assert_int_equal(F.n_close, 1);
    assert_int_equal(F.close_error, 0);
    assert_true(cc_ttrpc_client_is_closed(F.client));
    cc_error *err = NULL;
    assert_int_equal(
        cc_ttrpc_client_call_raw(F.client, "svc", "D", "", 0, 0, on_answer, &a[0], &err),
        -ENOTCONN);
    assert_string_equal(cc_error_message(err), "ttrpc: closed");
    cc_error_free(err);
    run_for(F.loop, 10000);
    for (int i = 0; i < 3; i++)
        assert_int_equal(a[i].n, 1);
    F.client = cc_ttrpc_client_free(F.client);
    assert_int_equal(F.n_close, 1);
    answer_done(a, 3);
}

/* Go's server sends replies over 4 MiB; the client drops them and fails just that call. */
static void
test_oversized_response(void **state)
{
    answer *a = F.a;
    call("Big", "", 0, &a[0]);
    call("Small", "", 0, &a[1]);
    expect_request(1, "Big", "", NULL);
    expect_request(3, "Small", "", NULL);
    size_t n = CC_TTRPC_MESSAGE_LENGTH_MAX + 1;
    uint8_t *junk = cc_xzalloc(n);
    uint8_t hdr[CC_TTRPC_HEADER_LENGTH];
    ttrpc_header h = {.length = (uint32_t)n, .stream_id = 1, .type = TTRPC_TYPE_RESPONSE};
    ttrpc_header_put(hdr, &h);
    peer_write(&F.p, hdr, sizeof(hdr));
    peer_write(&F.p, junk, n);
    respond_ok(3, "fine");
    run_until_answers(a, 2);
    assert_int_equal(a[0].code, CC_TTRPC_RESOURCE_EXHAUSTED);
    assert_string_equal(a[0].message,
                        "message length 4194305 exceed maximum message size of 4194304");
    assert_int_equal(a[1].code, CC_TTRPC_OK);
    assert_int_equal(a[1].len, 4);
    assert_false(cc_ttrpc_client_is_closed(F.client));
    free(junk);
    answer_done(a, 2);
}

static void
test_odd_frames(void **state)
{
    answer *a = F.a;
    call("A", "", 0, &a[0]);
    call("B", "", 0, &a[1]);
    expect_request(1, "A", "", NULL);
    expect_request(3, "B", "", NULL);
    respond_ok(99, "nobody's");                              /* unknown id: dropped */
    peer_frame(&F.p, 3, TTRPC_TYPE_REQUEST, "", 0);          /* not a Response: ignored */
    peer_frame(&F.p, 3, 3, "\x0a\x01x", 3);                  /* ttrpc 1.2 Data: ignored */
    peer_frame(&F.p, 1, TTRPC_TYPE_RESPONSE, "\x0a\x05", 2); /* undecodable */
    respond_ok(3, "b");
    run_until_answers(a, 2);
    assert_int_equal(a[0].code, CC_TTRPC_UNKNOWN);
    assert_string_equal(a[0].message, "unexpected EOF");
    assert_int_equal(a[1].code, CC_TTRPC_OK);
    assert_int_equal(a[1].len, 1);
    assert_memory_equal(a[1].payload, "b", 1);
    answer_done(a, 2);
}

static void
test_cancel_call(void **state)
{
    answer *a = &F.a[0], *b = &F.a[1];
    cc_ttrpc_request req = {.service = "svc", .method = "A"};
    uint32_t id = 0;
    assert_int_equal(cc_ttrpc_client_call_request(F.client, &req, on_answer, a, &id, NULL), 0);
    assert_int_equal(id, 1);
    assert_int_equal(cc_ttrpc_client_cancel_call(F.client, id), 0);
    assert_int_equal(cc_ttrpc_client_cancel_call(F.client, id), -ENOENT);
    call("B", "", 0, b);
    expect_request(1, "A", "", NULL);
    expect_request(3, "B", "", NULL);
    respond_ok(1, "x");
    respond_ok(3, "y");
    run_until_answers(b, 1);
    run_for(F.loop, 10000);
    assert_int_equal(a->n, 0);
    answer_done(b, 1);
}

static void
test_free_with_pending(void **state)
{
    answer *a = F.a;
    call("A", "", 1000000, &a[0]);
    call("B", "", 0, &a[1]);
    F.client = cc_ttrpc_client_free(F.client);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(a[i].n, 1);
        assert_int_equal(a[i].code, CC_TTRPC_UNAVAILABLE);
    }
    assert_int_equal(F.n_close, 0); /* not from cc_ttrpc_client_free() */
    run_for(F.loop, 20000);
    answer_done(a, 2);
}

/* A callback frees the client while more responses wait in the same read. */
static void
test_free_in_callback(void **state)
{
    answer *a = F.a;
    call("A", "", 0, &a[0]);
    call("B", "", 0, &a[1]);
    call("C", "", 0, &a[2]);
    for (uint32_t id = 1; id <= 5; id += 2)
        expect_request(id, id == 1 ? "A" : id == 3 ? "B" : "C", "", NULL);
    uint8_t three[3 * CC_TTRPC_HEADER_LENGTH];
    for (uint32_t i = 0; i < 3; i++) {
        ttrpc_header h = {.stream_id = 2 * i + 1, .type = TTRPC_TYPE_RESPONSE};
        ttrpc_header_put(three + i * CC_TTRPC_HEADER_LENGTH, &h);
    }
    F.free_in_callback = true;
    peer_write(&F.p, three, sizeof(three));
    run_until_answers(a, 3);
    assert_null(F.client);
    assert_int_equal(a[0].code, CC_TTRPC_OK);
    assert_int_equal(a[1].code, CC_TTRPC_UNAVAILABLE);
    assert_int_equal(a[2].code, CC_TTRPC_UNAVAILABLE);
    run_for(F.loop, 10000);
    for (int i = 0; i < 3; i++)
        assert_int_equal(a[i].n, 1);
    answer_done(a, 3);
}

/* The loop finishing under a synchronous call: -ESTALE, and the call is forgotten. */
static int
on_exit_timer(cc_loop_source *s, uint64_t deadline, void *userdata)
{
    cc_loop_exit(F.loop, 0);
    return 0;
}

static void
test_sync_loop_exits(void **state)
{
    cc_ttrpc_request req = {.service = "svc", .method = "Never"};
    cc_ttrpc_reply reply = {0};
    cc_error *err = NULL;
    assert_int_equal(cc_loop_add_timer(F.loop, 20000, 0, on_exit_timer, NULL, NULL, NULL), 0);
    assert_int_equal(cc_ttrpc_client_call_sync(F.client, &req, &reply, &err), -ESTALE);
    assert_null(reply.message);
    cc_error_free(err);
    assert_int_equal(cc_ttrpc_client_cancel_call(F.client, 1), -ENOENT);
}

/* --- against our server ----------------------------------------------------------------------- */

static struct {
    cc_ttrpc_server *server;
    int sync_result;
    bool sync_tried;
    cc_ttrpc_call *held;
} S;

static void
h_kv(cc_ttrpc_call *call, const uint8_t *req, size_t len, void *userdata)
{
    Ttrpc__KeyValue *kv =
        (Ttrpc__KeyValue *)cc_ttrpc_call_unpack(call, &ttrpc__key_value__descriptor, req, len);
    if (!kv)
        return;
    const char *trace = cc_ttrpc_call_get_metadata(call, "trace");
    if (strcmp(kv->key, "fail") == 0) {
        cc_ttrpc_call_fail(call, CC_TTRPC_ALREADY_EXISTS, "exists: %s", kv->value);
    } else {
        Ttrpc__KeyValue out = TTRPC__KEY_VALUE__INIT;
        out.key = kv->value;
        out.value = (char *)(trace ?: "");
        assert_int_equal(cc_ttrpc_call_reply(call, &out.base), 0);
    }
    protobuf_c_message_free_unpacked(&kv->base, NULL);
}

/* A handler may not re-enter the loop with a synchronous call. */
static void
h_sync_inside(cc_ttrpc_call *call, const uint8_t *req, size_t len, void *userdata)
{
    cc_ttrpc_request r = {.service = "kv", .method = "Get"};
    cc_ttrpc_reply reply = {0};
    S.sync_result = cc_ttrpc_client_call_sync(F.client, &r, &reply, NULL);
    S.sync_tried = true;
    cc_ttrpc_call_reply(call, NULL);
}

static void
h_hold(cc_ttrpc_call *call, const uint8_t *req, size_t len, void *userdata)
{
    S.held = call;
}

static void
test_end_to_end(void **state)
{
    static const cc_ttrpc_method methods[] = {
        {"Get", h_kv}, {"SyncInside", h_sync_inside}, {"Hold", h_hold}};
    int sv[2];
    cc_ttrpc_client *c = NULL;
    S = (typeof(S)){0};
    make_socketpair(sv);
    assert_int_equal(cc_ttrpc_server_new(F.loop, &S.server, NULL), 0);
    assert_int_equal(cc_ttrpc_server_register(S.server, "kv", methods, 3, NULL, NULL), 0);
    assert_int_equal(cc_ttrpc_server_serve_fd(S.server, sv[0], NULL, NULL, NULL), 0);
    assert_int_equal(cc_ttrpc_client_new(F.loop, sv[1], &c, NULL), 0);
    F.client = cc_ttrpc_client_free(F.client);
    F.client = c;

    /* A message with metadata, synchronously. */
    Ttrpc__KeyValue kv = TTRPC__KEY_VALUE__INIT;
    kv.key = "k";
    kv.value = "hello";
    static const cc_ttrpc_kv md[] = {{"trace", "abc"}};
    cc_ttrpc_request req = {.service = "kv",
                            .method = "Get",
                            .msg = &kv.base,
                            .metadata = md,
                            .n_metadata = 1,
                            .timeout_usec = 5 * SECOND};
    cc_ttrpc_reply reply = {0};
    assert_int_equal(cc_ttrpc_client_call_sync(c, &req, &reply, NULL), 0);
    assert_int_equal(reply.code, CC_TTRPC_OK);
    assert_string_equal(reply.message, "");
    Ttrpc__KeyValue *got = ttrpc__key_value__unpack(NULL, reply.len, reply.payload);
    assert_non_null(got);
    assert_string_equal(got->key, "hello");
    assert_string_equal(got->value, "abc");
    ttrpc__key_value__free_unpacked(got, NULL);
    cc_ttrpc_reply_clear(&reply);

    /* An error status. */
    kv.key = "fail";
    req.n_metadata = 0;
    assert_int_equal(cc_ttrpc_client_call_sync(c, &req, &reply, NULL), 0);
    assert_int_equal(reply.code, CC_TTRPC_ALREADY_EXISTS);
    assert_string_equal(reply.message, "exists: hello");
    assert_int_equal(cc_ttrpc_code_to_errno(reply.code), -EEXIST);
    cc_ttrpc_reply_clear(&reply);

    /* Unknown method, through the server's own answer. */
    req.method = "Nope";
    assert_int_equal(cc_ttrpc_client_call_sync(c, &req, &reply, NULL), 0);
    assert_int_equal(reply.code, CC_TTRPC_UNIMPLEMENTED);
    assert_string_equal(reply.message, "method Nope");
    cc_ttrpc_reply_clear(&reply);

    /* call_sync inside a handler: refused with -EBUSY; the handler still answers. */
    req = (cc_ttrpc_request){.service = "kv", .method = "SyncInside"};
    assert_int_equal(cc_ttrpc_client_call_sync(c, &req, &reply, NULL), 0);
    assert_true(S.sync_tried);
    assert_int_equal(S.sync_result, -EBUSY);
    assert_int_equal(reply.code, CC_TTRPC_OK);
    assert_int_equal(reply.len, 0);
    cc_ttrpc_reply_clear(&reply);

    /* A timeout: the client gives up on its own; the server's answer comes late, ignored. */
    req = (cc_ttrpc_request){.service = "kv", .method = "Hold", .timeout_usec = 30000};
    assert_int_equal(cc_ttrpc_client_call_sync(c, &req, &reply, NULL), 0);
    assert_int_equal(reply.code, CC_TTRPC_DEADLINE_EXCEEDED);
    cc_ttrpc_reply_clear(&reply);
    assert_non_null(S.held);
    run_for(F.loop, 30000);
    assert_true(cc_ttrpc_call_is_cancelled(S.held));
    assert_int_equal(cc_ttrpc_call_reply(S.held, NULL), -ECANCELED);

    S.server = cc_ttrpc_server_free(S.server);
    run_for(F.loop, 20000);
    assert_true(cc_ttrpc_client_is_closed(c));
}

int
main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ids_and_out_of_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batched_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_too_big, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hangup_mid_frame, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized_response, setup, teardown),
        cmocka_unit_test_setup_teardown(test_odd_frames, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_with_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_in_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_loop_exits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_end_to_end, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
