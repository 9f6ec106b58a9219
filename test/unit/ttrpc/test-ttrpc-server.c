/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lib/ttrpc-server.c and lib/ttrpc-call.c, driven by a raw peer that writes hand-built frames
 * (good and bad) and checks every byte that comes back.
 */
#define _GNU_SOURCE
#include "test-helpers.h"
#include "ttrpc/ttrpc.pb-c.h"

#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#define SVC "test.v1.Svc"
#define MAX_HELD 16

static struct fixture {
    cc_loop *loop;
    cc_ttrpc_server *server;
    peer p; /* served with cc_ttrpc_server_serve_fd() */
    int n_handled;
    int n_disconnect;
    int disconnect_error;
    cc_ttrpc_call *held[MAX_HELD];
    int n_held;
    int n_cancel;
    cc_ttrpc_code cancel_reason[MAX_HELD];
    bool complete_in_cancel;
    int last_reply;
    bool free_done;
} F;

/* --- handlers ------------------------------------------------------------------------------- */

static void
h_echo(cc_ttrpc_call *call, const uint8_t *req, size_t len, void *userdata)
{
    assert_ptr_equal(userdata, &F);
    F.n_handled++;
    F.last_reply = cc_ttrpc_call_reply_raw(call, req, len);
}

static void
h_empty(cc_ttrpc_call *call, const uint8_t *req, size_t len, void *userdata)
{
    F.n_handled++;
    F.last_reply = cc_ttrpc_call_reply(call, NULL);
}

static int
held_index(const cc_ttrpc_call *call)
{
    for (int i = 0; i < F.n_held; i++)
        if (F.held[i] == call)
            return i;
    return -1;
}

static int
complete_held(int i, const char *answer)
{
    cc_ttrpc_call *call = F.held[i];
    assert_non_null(call);
    F.held[i] = NULL;
    return cc_ttrpc_call_reply_raw(call, answer, strlen(answer));
}

static void
on_cancel(cc_ttrpc_call *call, cc_ttrpc_code reason, void *userdata)
{
    int i = held_index(call);
    assert_true(i >= 0);
    assert_ptr_equal(userdata, &F.held[i]);
    assert_true(cc_ttrpc_call_is_cancelled(call));
    F.cancel_reason[F.n_cancel++] = reason;
    if (F.complete_in_cancel) {
        assert_int_equal(complete_held(i, "late"), -ECANCELED);
        /* Also complete another held call of the same connection from in here. */
        for (int j = 0; j < F.n_held; j++)
            if (F.held[j]) {
                assert_int_equal(complete_held(j, "late"), -ECANCELED);
                break;
            }
    }
}

/* Keeps the call unanswered: a containerd Wait. */
static void
h_hold(cc_ttrpc_call *call, const uint8_t *req, size_t len, void *userdata)
{
    assert_true(F.n_held < MAX_HELD);
    F.n_handled++;
    F.held[F.n_held] = call;
    cc_ttrpc_call_set_cancel(call, on_cancel, &F.held[F.n_held]);
    F.n_held++;
    assert_false(cc_ttrpc_call_is_cancelled(call));
}

static void
h_fail(cc_ttrpc_call *call, const uint8_t *req, size_t len, void *userdata)
{
    F.n_handled++;
    cc_ttrpc_code code = len ? (cc_ttrpc_code)req[0] : CC_TTRPC_OK;
    F.last_reply = cc_ttrpc_call_fail(call, code, "failure %s", "\xff bad \xc3");
}

static void
h_errno(cc_ttrpc_call *call, const uint8_t *req, size_t len, void *userdata)
{
    cc_error *e = NULL;
    cc_error_msg(&e, -ENOENT, "no container '%s'", "x");
    F.n_handled++;
    F.last_reply = cc_ttrpc_call_fail_error(call, e);
    cc_error_free(e);
}

/* Replies with as many bytes as the decimal number in the request says. */
static void
h_big(cc_ttrpc_call *call, const uint8_t *req, size_t len, void *userdata)
{
    char num[32] = {0};
    memcpy(num, req, len < sizeof(num) - 1 ? len : sizeof(num) - 1);
    size_t n = strtoul(num, NULL, 10);
    uint8_t *buf = cc_xmalloc(n ? n : 1);
    for (size_t i = 0; i < n; i++)
        buf[i] = (uint8_t)(i % 251);
    F.n_handled++;
    F.last_reply = cc_ttrpc_call_reply_raw(call, buf, n);
    free(buf);
}

static int
on_later(cc_loop_source *s, uint64_t deadline, void *userdata)
{
    F.last_reply = cc_ttrpc_call_reply_raw(userdata, "later", 5);
    cc_loop_source_free(s);
    return 0;
}

static void
h_later(cc_ttrpc_call *call, const uint8_t *req, size_t len, void *userdata)
{
    F.n_handled++;
    assert_int_equal(cc_loop_add_timer(F.loop, 30000, 0, on_later, call, NULL, NULL), 0);
}

static void
h_meta(cc_ttrpc_call *call, const uint8_t *req, size_t len, void *userdata)
{
    const char *v = cc_ttrpc_call_get_metadata(call, "FOO");
    F.n_handled++;
    assert_null(cc_ttrpc_call_get_metadata(call, "missing"));
    F.last_reply = cc_ttrpc_call_reply_raw(call, v ?: "none", strlen(v ?: "none"));
}

static void
h_unpack(cc_ttrpc_call *call, const uint8_t *req, size_t len, void *userdata)
{
    F.n_handled++;
    ProtobufCMessage *m = cc_ttrpc_call_unpack(call, &ttrpc__key_value__descriptor, req, len);
    if (!m)
        return;
    F.last_reply = cc_ttrpc_call_reply(call, m);
    protobuf_c_message_free_unpacked(m, NULL);
}

/* Frees the server from inside a handler, then completes its own call. */
static void
h_free(cc_ttrpc_call *call, const uint8_t *req, size_t len, void *userdata)
{
    F.n_handled++;
    F.complete_in_cancel = true;
    F.server = cc_ttrpc_server_free(F.server);
    F.free_done = true;
    assert_true(cc_ttrpc_call_is_cancelled(call));
    assert_int_equal(cc_ttrpc_call_reply_raw(call, "x", 1), -ECANCELED);
}

static const cc_ttrpc_method methods[] = {
    {"Echo", h_echo},     {"Empty", h_empty}, {"Hold", h_hold},   {"Fail", h_fail},
    {"Errno", h_errno},   {"Big", h_big},     {"Later", h_later}, {"Meta", h_meta},
    {"Unpack", h_unpack}, {"Free", h_free},
};

static void
on_disconnect(cc_ttrpc_server *s, int error, void *userdata)
{
    assert_ptr_equal(userdata, &F);
    F.n_disconnect++;
    F.disconnect_error = error;
}

/* --- fixture -------------------------------------------------------------------------------- */

static int
setup(void **state)
{
    int sv[2];
    F = (struct fixture){0};
    assert_int_equal(cc_loop_new(&F.loop, NULL), 0);
    assert_int_equal(cc_ttrpc_server_new(F.loop, &F.server, NULL), 0);
    assert_int_equal(
        cc_ttrpc_server_register(F.server, SVC, methods, ELEMENTSOF(methods), &F, NULL), 0);
    make_socketpair(sv);
    assert_int_equal(cc_ttrpc_server_serve_fd(F.server, sv[0], on_disconnect, &F, NULL), 0);
    peer_init(&F.p, F.loop, sv[1]);
    return 0;
}

static int
teardown(void **state)
{
    F.complete_in_cancel = true;
    F.server = cc_ttrpc_server_free(F.server);
    for (int i = 0; i < F.n_held; i++)
        if (F.held[i])
            assert_int_equal(complete_held(i, "x"), -ECANCELED);
    peer_done(&F.p);
    F.loop = cc_loop_free(F.loop);
    return 0;
}

static void
echo_ok(peer *p, uint32_t id, const char *payload)
{
    got_frame f;
    peer_request(p, id, SVC, "Echo", payload, strlen(payload), 0);
    peer_read_frame(F.loop, p, &f);
    assert_int_equal(f.h.type, TTRPC_TYPE_RESPONSE);
    assert_int_equal(f.h.stream_id, id);
    assert_int_equal(f.resp.code, 0);
    assert_int_equal(f.resp.payload.n, strlen(payload));
    assert_memory_equal(f.resp.payload.p, payload, strlen(payload));
    got_frame_done(&f);
}

/* --- tests ---------------------------------------------------------------------------------- */

static void
test_echo_and_empty(void **state)
{
    got_frame f;
    echo_ok(&F.p, 1, "hello");
    assert_int_equal(F.last_reply, 0);
    peer_request(&F.p, 3, SVC, "Empty", NULL, 0, 0);
    peer_read_frame(F.loop, &F.p, &f);
    /* A success with an empty message is a zero-length Response, as Go sends it. */
    assert_int_equal(f.h.length, 0);
    assert_int_equal(f.h.type, TTRPC_TYPE_RESPONSE);
    assert_int_equal(f.h.stream_id, 3);
    assert_int_equal(f.h.flags, 0);
    got_frame_done(&f);
    assert_int_equal(F.n_handled, 2);
    assert_int_equal(cc_ttrpc_server_get_n_connections(F.server), 1);
}

static void
test_unknown_service_method(void **state)
{
    peer_request(&F.p, 1, "nope.v1.X", "Echo", NULL, 0, 0);
    peer_expect_status(F.loop, &F.p, 1, CC_TTRPC_UNIMPLEMENTED, "service nope.v1.X");
    peer_request(&F.p, 3, SVC, "Nope", NULL, 0, 0);
    peer_expect_status(F.loop, &F.p, 3, CC_TTRPC_UNIMPLEMENTED, "method Nope");
    peer_request(&F.p, 5, "", "", NULL, 0, 0);
    peer_expect_status(F.loop, &F.p, 5, CC_TTRPC_UNIMPLEMENTED, "service ");
    assert_int_equal(F.n_handled, 0);
    echo_ok(&F.p, 7, "still fine");
}

static void
test_even_stream_id(void **state)
{
    peer_request(&F.p, 2, SVC, "Echo", "x", 1, 0);
    peer_expect_status(F.loop, &F.p, 2, CC_TTRPC_INVALID_ARGUMENT,
                       "StreamID must be odd for client initiated streams");
    peer_request(&F.p, 0, SVC, "Echo", "x", 1, 0);
    peer_expect_status(F.loop, &F.p, 0, CC_TTRPC_INVALID_ARGUMENT, NULL);
    assert_int_equal(F.n_handled, 0);
    echo_ok(&F.p, 1, "odd");
}

static void
test_undecodable_request(void **state)
{
    got_frame f;
    peer_frame(&F.p, 9, TTRPC_TYPE_REQUEST,
               "\x0a\x05"
               "ab",
               4);
    peer_read_frame(F.loop, &F.p, &f);
    assert_int_equal(f.h.stream_id, 9);
    assert_int_equal(f.resp.code, CC_TTRPC_INVALID_ARGUMENT);
    assert_non_null(cc_startswith(f.message, "unmarshal request error: "));
    got_frame_done(&f);
    /* Undecodable beats an even id, as in Go (decoding comes first). */
    peer_frame(&F.p, 4, TTRPC_TYPE_REQUEST, "\x0f", 1);
    peer_read_frame(F.loop, &F.p, &f);
    assert_non_null(cc_startswith(f.message, "unmarshal request error: "));
    got_frame_done(&f);
    assert_int_equal(F.n_handled, 0);
    echo_ok(&F.p, 11, "connection kept");
}

static void
test_other_frame_types_ignored(void **state)
{
    peer_frame(&F.p, 1, TTRPC_TYPE_RESPONSE, "", 0);
    peer_frame(&F.p, 3, 3, "\x0a\x01x", 3); /* ttrpc 1.2 Data */
    peer_frame(&F.p, 5, 0x7f, "garbage", 7);
    peer_frame(&F.p, 7, 0, NULL, 0);
    echo_ok(&F.p, 9, "first answer is this one");
    assert_int_equal(F.n_handled, 1);
}

static void
test_oversized_request(void **state)
{
    size_t n = CC_TTRPC_MESSAGE_LENGTH_MAX + 1;
    uint8_t *junk = cc_xzalloc(n);
    uint8_t hdr[CC_TTRPC_HEADER_LENGTH];
    ttrpc_header h = {.length = (uint32_t)n, .stream_id = 5, .type = TTRPC_TYPE_REQUEST};
    ttrpc_header_put(hdr, &h);
    peer_write(&F.p, hdr, sizeof(hdr));
    peer_write(&F.p, junk, n);
    peer_expect_status(F.loop, &F.p, 5, CC_TTRPC_RESOURCE_EXHAUSTED,
                       "message length 4194305 exceed maximum message size of 4194304");
    /* A Request whose data is exactly 4 MiB is served. */
    size_t fixed = 2 + strlen(SVC) + 2 + strlen("Echo"),
           p = CC_TTRPC_MESSAGE_LENGTH_MAX - fixed - 5;
    size_t frame_len;
    uint8_t *frame = frame_request(7, SVC, "Echo", junk, p, 0, NULL, 0, &frame_len);
    assert_int_equal(frame_len, CC_TTRPC_HEADER_LENGTH + CC_TTRPC_MESSAGE_LENGTH_MAX);
    peer_write(&F.p, frame, frame_len);
    got_frame f;
    peer_read_frame(F.loop, &F.p, &f);
    assert_int_equal(f.h.stream_id, 7);
    assert_int_equal(f.resp.code, 0);
    assert_int_equal(f.resp.payload.n, p);
    got_frame_done(&f);
    free(frame);
    free(junk);
    echo_ok(&F.p, 9, "after");
}

static void
test_oversized_response(void **state)
{
    got_frame f;
    char num[32];
    snprintf(num, sizeof(num), "%u", CC_TTRPC_MESSAGE_LENGTH_MAX);
    peer_request(&F.p, 1, SVC, "Big", num, strlen(num), 0);
    peer_expect_status(F.loop, &F.p, 1, CC_TTRPC_RESOURCE_EXHAUSTED,
                       "message length 4194309 exceed maximum message size of 4194304");
    assert_int_equal(F.last_reply, -EMSGSIZE);
    /* Data of exactly 4 MiB (tag, 4-byte length, payload) is sent. */
    snprintf(num, sizeof(num), "%u", CC_TTRPC_MESSAGE_LENGTH_MAX - 5);
    peer_request(&F.p, 3, SVC, "Big", num, strlen(num), 0);
    peer_read_frame(F.loop, &F.p, &f);
    assert_int_equal(f.h.stream_id, 3);
    assert_int_equal(f.h.length, CC_TTRPC_MESSAGE_LENGTH_MAX);
    assert_int_equal(f.resp.code, 0);
    assert_int_equal(f.resp.payload.p[1000], 1000 % 251);
    got_frame_done(&f);
    assert_int_equal(F.last_reply, 0);
}

/* A held "Wait" does not block other calls on the same connection. */
static void
test_concurrent_calls(void **state)
{
    got_frame f;
    peer_request(&F.p, 1, SVC, "Hold", NULL, 0, 0);
    echo_ok(&F.p, 3, "three");
    peer_request(&F.p, 5, SVC, "Hold", NULL, 0, 0);
    echo_ok(&F.p, 7, "seven");
    assert_int_equal(F.n_held, 2);
    assert_int_equal(F.server->conns->n_calls, 2);
    /* Answer in the other order. */
    assert_int_equal(complete_held(1, "five"), 0);
    assert_int_equal(complete_held(0, "one"), 0);
    peer_read_frame(F.loop, &F.p, &f);
    assert_int_equal(f.h.stream_id, 5);
    assert_memory_equal(f.resp.payload.p, "five", 4);
    got_frame_done(&f);
    peer_read_frame(F.loop, &F.p, &f);
    assert_int_equal(f.h.stream_id, 1);
    assert_memory_equal(f.resp.payload.p, "one", 3);
    got_frame_done(&f);
    assert_int_equal(F.server->conns->n_calls, 0);
    assert_int_equal(F.n_cancel, 0);
}

static void
test_async_reply(void **state)
{
    got_frame f;
    uint64_t start = cc_loop_now();
    peer_request(&F.p, 1, SVC, "Later", NULL, 0, 0);
    peer_read_frame(F.loop, &F.p, &f);
    assert_true(cc_loop_now() - start >= 30000);
    assert_int_equal(f.h.stream_id, 1);
    assert_memory_equal(f.resp.payload.p, "later", 5);
    got_frame_done(&f);
    assert_int_equal(F.last_reply, 0);
}

static void
test_deadline(void **state)
{
    peer_request(&F.p, 1, SVC, "Hold", NULL, 0, 80 * 1000000LL);
    peer_request(&F.p, 3, SVC, "Hold", NULL, 0, 40 * 1000000LL);
    peer_request(&F.p, 5, SVC, "Hold", NULL, 0, 0);
    uint64_t start = cc_loop_now();
    peer_expect_status(F.loop, &F.p, 3, CC_TTRPC_DEADLINE_EXCEEDED, "context deadline exceeded");
    uint64_t took = cc_loop_now() - start;
    assert_true(took >= 35000 && took < 2 * SECOND);
    peer_expect_status(F.loop, &F.p, 1, CC_TTRPC_DEADLINE_EXCEEDED, "context deadline exceeded");
    assert_int_equal(F.n_cancel, 2);
    assert_int_equal(F.cancel_reason[0], CC_TTRPC_DEADLINE_EXCEEDED);
    assert_int_equal(F.cancel_reason[1], CC_TTRPC_DEADLINE_EXCEEDED);
    assert_true(cc_ttrpc_call_get_deadline(F.held[0]) > 0);
    assert_int_equal(cc_ttrpc_call_get_deadline(F.held[2]), 0);
    assert_false(cc_ttrpc_call_is_cancelled(F.held[2]));
    /* Late answers are dropped; the calls stayed valid until now. */
    assert_int_equal(complete_held(0, "late"), -ECANCELED);
    assert_int_equal(complete_held(1, "late"), -ECANCELED);
    assert_int_equal(complete_held(2, "on time"), 0);
    got_frame f;
    peer_read_frame(F.loop, &F.p, &f);
    assert_int_equal(f.h.stream_id, 5);
    got_frame_done(&f);
    echo_ok(&F.p, 7, "nothing stray before this");
    assert_false(cc_loop_source_get_enabled(F.server->timer));
    /* An already-expired deadline is answered without running the handler. */
    int handled = F.n_handled;
    peer_request(&F.p, 9, SVC, "Hold", NULL, 0, -1);
    peer_expect_status(F.loop, &F.p, 9, CC_TTRPC_DEADLINE_EXCEEDED, "context deadline exceeded");
    assert_int_equal(F.n_handled, handled);
}

static void
test_cancel_on_close(void **state)
{
    peer_request(&F.p, 1, SVC, "Hold", NULL, 0, 0);
    peer_request(&F.p, 3, SVC, "Hold", NULL, 0, 60 * SECOND * 1000LL);
    peer_request(&F.p, 5, SVC, "Hold", NULL, 0, 0);
    echo_ok(&F.p, 7, "sync");
    assert_int_equal(F.n_held, 3);
    peer_done(&F.p);
    bool gone = false;
    for (int i = 0; i < 50 && !gone; i++) {
        assert_true(cc_loop_run_once(F.loop, 100000, NULL) >= 0);
        gone = F.n_disconnect > 0;
    }
    assert_int_equal(F.n_disconnect, 1);
    assert_int_equal(F.disconnect_error, 0);
    assert_int_equal(F.n_cancel, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(F.cancel_reason[i], CC_TTRPC_CANCELLED);
    assert_int_equal(cc_ttrpc_server_get_n_connections(F.server), 0);
    assert_int_equal(F.server->deadlines.n, 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(complete_held(i, "late"), -ECANCELED);
    /* Nothing is watched any more: the loop has nothing to do. */
    assert_int_equal(cc_loop_run_once(F.loop, 0, NULL), 0);
}

/* Cancel callbacks may complete their own and other calls of the dying connection. */
static void
test_complete_in_cancel(void **state)
{
    for (uint32_t id = 1; id <= 9; id += 2)
        peer_request(&F.p, id, SVC, "Hold", NULL, 0, 0);
    echo_ok(&F.p, 11, "sync");
    F.complete_in_cancel = true;
    peer_done(&F.p);
    bool done = false;
    for (int i = 0; i < 50 && !done; i++) {
        assert_true(cc_loop_run_once(F.loop, 100000, NULL) >= 0);
        done = F.n_disconnect > 0;
    }
    assert_true(done);
    /* Five held; each callback completes itself and one more: three callbacks. */
    assert_int_equal(F.n_cancel, 3);
    for (int i = 0; i < F.n_held; i++)
        assert_null(F.held[i]);
}

/* A peer hanging up mid-frame affects nothing else. */
static void
test_hangup_mid_frame(void **state)
{
    int sv[2];
    peer other;
    make_socketpair(sv);
    assert_int_equal(cc_ttrpc_server_serve_fd(F.server, sv[0], NULL, NULL, NULL), 0);
    peer_init(&other, F.loop, sv[1]);
    assert_int_equal(cc_ttrpc_server_get_n_connections(F.server), 2);
    size_t n;
    uint8_t *frame = frame_request(1, SVC, "Echo", "abcdef", 6, 0, NULL, 0, &n);
    peer_write(&other, frame, n / 2);
    run_for(F.loop, 20000);
    peer_done(&other);
    run_for(F.loop, 20000);
    assert_int_equal(cc_ttrpc_server_get_n_connections(F.server), 1);
    assert_int_equal(F.n_handled, 0);
    echo_ok(&F.p, 1, "unaffected");
    free(frame);
}

static void
test_garbage(void **state)
{
    int sv[2];
    peer other;
    make_socketpair(sv);
    assert_int_equal(cc_ttrpc_server_serve_fd(F.server, sv[0], on_disconnect, &F, NULL), 0);
    peer_init(&other, F.loop, sv[1]);
    /* A small "frame" of random bytes: answered, connection kept. */
    static const uint8_t junk[] = {0, 0, 0,    6,    0,    0,    0,    1,
                                   1, 0, 0xde, 0xad, 0xbe, 0xef, 0x01, 0x02};
    peer_write(&other, junk, sizeof(junk));
    got_frame f;
    peer_read_frame(F.loop, &other, &f);
    assert_int_equal(f.h.stream_id, 1);
    assert_int_equal(f.resp.code, CC_TTRPC_INVALID_ARGUMENT);
    got_frame_done(&f);
    echo_ok(&other, 3, "kept");
    /* HTTP: its first bytes announce a 1.2 GB frame, which is drained until the peer leaves. */
    static const char http[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    peer_write(&other, http, strlen(http));
    assert_true(peer_quiet(F.loop, &other, 50000));
    echo_ok(&F.p, 1, "other connections fine");
    peer_done(&other);
    bool done = false;
    for (int i = 0; i < 50 && !done; i++) {
        assert_true(cc_loop_run_once(F.loop, 100000, NULL) >= 0);
        done = F.n_disconnect > 0;
    }
    assert_true(done);
    assert_int_equal(cc_ttrpc_server_get_n_connections(F.server), 1);
    echo_ok(&F.p, 3, "still fine");
}

/* Requests written all at once are all answered, from one read. */
static void
test_pipelined(void **state)
{
    enum { N = 100 };
    size_t total = 0;
    uint8_t *all = NULL;
    for (uint32_t i = 0; i < N; i++) {
        char payload[16];
        size_t n;
        snprintf(payload, sizeof(payload), "%u", i);
        uint8_t *frame =
            frame_request(2 * i + 1, SVC, "Echo", payload, strlen(payload), 0, NULL, 0, &n);
        all = cc_xrealloc(all, total + n);
        memcpy(all + total, frame, n);
        total += n;
        free(frame);
    }
    peer_write(&F.p, all, total);
    free(all);
    for (uint32_t i = 0; i < N; i++) {
        got_frame f;
        char want[16];
        snprintf(want, sizeof(want), "%u", i);
        peer_read_frame(F.loop, &F.p, &f);
        assert_int_equal(f.h.stream_id, 2 * i + 1);
        assert_int_equal(f.resp.payload.n, strlen(want));
        assert_memory_equal(f.resp.payload.p, want, strlen(want));
        got_frame_done(&f);
    }
    assert_int_equal(F.n_handled, N);
}

/* A peer that does not read makes the server stop reading its requests. */
static void
test_backpressure_output(void **state)
{
    enum { N = 30 };
    char num[16];
    snprintf(num, sizeof(num), "%u", 1u << 20);
    for (uint32_t i = 0; i < N; i++)
        peer_request(&F.p, 2 * i + 1, SVC, "Big", num, strlen(num), 0);
    run_for(F.loop, 100000);
    assert_true(F.n_handled < N);
    assert_true(F.n_handled >= 8);
    assert_true(F.server->conns->paused);
    for (uint32_t i = 0; i < N; i++) {
        got_frame f;
        peer_read_frame(F.loop, &F.p, &f);
        assert_int_equal(f.h.stream_id, 2 * i + 1);
        assert_int_equal(f.resp.payload.n, 1u << 20);
        got_frame_done(&f);
    }
    assert_int_equal(F.n_handled, N);
    assert_false(F.server->conns->paused);
}

static void
test_backpressure_inflight(void **state)
{
    cc_ttrpc_server_set_max_inflight(F.server, 2);
    for (uint32_t id = 1; id <= 7; id += 2)
        peer_request(&F.p, id, SVC, "Hold", NULL, 0, 0);
    run_for(F.loop, 50000);
    assert_int_equal(F.n_held, 2);
    assert_int_equal(complete_held(0, "a"), 0);
    run_for(F.loop, 50000);
    assert_int_equal(F.n_held, 3);
    assert_int_equal(complete_held(1, "b"), 0);
    assert_int_equal(complete_held(2, "c"), 0);
    run_for(F.loop, 50000);
    assert_int_equal(F.n_held, 4);
    assert_int_equal(complete_held(3, "d"), 0);
    for (uint32_t id = 1; id <= 7; id += 2) {
        got_frame f;
        peer_read_frame(F.loop, &F.p, &f);
        assert_int_equal(f.h.stream_id, id);
        got_frame_done(&f);
    }
}

static void
test_metadata(void **state)
{
    static const cc_ttrpc_kv md[] = {{"other", "1"}, {"foo", "bar"}, {"foo", "second"}};
    size_t n;
    uint8_t *frame = frame_request(1, SVC, "Meta", NULL, 0, 0, md, 3, &n);
    peer_write(&F.p, frame, n);
    free(frame);
    got_frame f;
    peer_read_frame(F.loop, &F.p, &f);
    assert_int_equal(f.resp.payload.n, 3);
    assert_memory_equal(f.resp.payload.p, "bar", 3); /* Go's MD.Get: lower-cased, first */
    got_frame_done(&f);
    peer_request(&F.p, 3, SVC, "Meta", NULL, 0, 0);
    peer_read_frame(F.loop, &F.p, &f);
    assert_memory_equal(f.resp.payload.p, "none", 4);
    got_frame_done(&f);
}

static void
test_fail_variants(void **state)
{
    peer_request(&F.p, 1, SVC, "Fail", "\x09", 1, 0);
    /* Invalid UTF-8 is replaced: Go's client would reject the whole Response otherwise. */
    peer_expect_status(F.loop, &F.p, 1, CC_TTRPC_FAILED_PRECONDITION, "failure ? bad ?");
    peer_request(&F.p, 3, SVC, "Fail", NULL, 0, 0);
    peer_expect_status(F.loop, &F.p, 3, CC_TTRPC_UNKNOWN, NULL); /* OK is no failure */
    peer_request(&F.p, 5, SVC, "Errno", NULL, 0, 0);
    peer_expect_status(F.loop, &F.p, 5, CC_TTRPC_NOT_FOUND, "no container 'x'");
    peer_request(&F.p, 7, SVC, "Unpack", "\x0a\x09", 2, 0);
    got_frame f;
    peer_read_frame(F.loop, &F.p, &f);
    assert_int_equal(f.resp.code, CC_TTRPC_INTERNAL);
    assert_non_null(cc_startswith(f.message, "ttrpc: error unmarshalling payload"));
    got_frame_done(&f);
    peer_request(&F.p, 9, SVC, "Unpack", "\x0a\x01k\x12\x01v", 6, 0);
    peer_read_frame(F.loop, &F.p, &f);
    assert_int_equal(f.resp.code, 0);
    assert_int_equal(f.resp.payload.n, 6);
    assert_memory_equal(f.resp.payload.p, "\x0a\x01k\x12\x01v", 6);
    got_frame_done(&f);
}

static void
test_free_in_handler(void **state)
{
    peer_request(&F.p, 1, SVC, "Hold", NULL, 0, 0);
    peer_request(&F.p, 3, SVC, "Hold", NULL, 0, 1000000000LL);
    peer_request(&F.p, 5, SVC, "Free", NULL, 0, 0);
    peer_request(&F.p, 7, SVC, "Echo", "never", 5, 0);
    bool *done = &F.free_done;
    run_until(F.loop, done);
    assert_null(F.server);
    assert_int_equal(F.n_handled, 3);
    assert_int_equal(F.n_cancel, 1);     /* the first callback completes both held calls */
    assert_int_equal(F.n_disconnect, 0); /* not called back from cc_ttrpc_server_free() */
    got_frame f;
    ttrpc_frame_kind k;
    assert_false(peer_read_frame_kind(F.loop, &F.p, &f, &k)); /* EOF, no answer */
    run_for(F.loop, 20000);
}

static void
test_register_errors(void **state)
{
    cc_error *err = NULL;
    assert_int_equal(cc_ttrpc_server_register(F.server, SVC, methods, 1, NULL, &err), -EEXIST);
    assert_non_null(strstr(cc_error_message(err), SVC));
    err = cc_error_free(err);
    static const cc_ttrpc_method dup[] = {{"A", h_echo}, {"A", h_echo}};
    assert_int_equal(cc_ttrpc_server_register(F.server, "x", dup, 2, NULL, &err), -EINVAL);
    err = cc_error_free(err);
    static const cc_ttrpc_method nul[] = {{"A", NULL}};
    assert_int_equal(cc_ttrpc_server_register(F.server, "x", nul, 1, NULL, NULL), -EINVAL);
    assert_int_equal(cc_ttrpc_server_register(F.server, "x", methods, 0, NULL, NULL), -EINVAL);
    assert_int_equal(cc_ttrpc_server_register(F.server, "", methods, 1, NULL, NULL), -EINVAL);
    /* Many services: the table grows and every method is still found. */
    for (int i = 0; i < 40; i++) {
        char name[32];
        snprintf(name, sizeof(name), "svc.%d", i);
        assert_int_equal(
            cc_ttrpc_server_register(F.server, name, methods, ELEMENTSOF(methods), &F, NULL), 0);
    }
    peer_request(&F.p, 1, "svc.39", "Echo", "x", 1, 0);
    got_frame f;
    peer_read_frame(F.loop, &F.p, &f);
    assert_int_equal(f.resp.code, 0);
    got_frame_done(&f);
    echo_ok(&F.p, 3, "and the first");
}

/* --- listening sockets ------------------------------------------------------------------------ */

static int
connect_to(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

/* As another user: connect and see whether an Echo is answered (exit 0) or the server hangs
 * up (exit 3). */
static int
child_try(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strcpy(sa.sun_path, path);
    if (setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0)
        return 2;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        return 2;
    size_t n;
    uint8_t *frame = frame_request(1, SVC, "Echo", "x", 1, 0, NULL, 0, &n);
    if (write(fd, frame, n) != (ssize_t)n)
        return 3;
    uint8_t buf[64];
    ssize_t l = read(fd, buf, sizeof(buf));
    return l > 0 ? 0 : 3;
}

static void
test_listen_and_peer_credentials(void **state)
{
    char dir[] = "/tmp/test-ttrpc-XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/s", dir);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strcpy(sa.sun_path, path);
    int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(chmod(dir, 0755) | chmod(path, 0777), 0);
    assert_int_equal(listen(lfd, 16), 0);
    assert_int_equal(cc_ttrpc_server_listen_fd(F.server, lfd, NULL), 0);
    cc_ttrpc_server_set_require_same_user(F.server, true);

    peer a;
    peer_init(&a, F.loop, connect_to(path));
    echo_ok(&a, 1, "same user");
    assert_int_equal(cc_ttrpc_server_get_n_connections(F.server), 2);

    if (geteuid() == 0) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
            _exit(child_try(path));
        int status = 0;
        while (waitpid(pid, &status, WNOHANG) == 0)
            assert_true(cc_loop_run_once(F.loop, 10000, NULL) >= 0);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 3); /* refused */
        /* Without the check the other user is served. */
        cc_ttrpc_server_set_require_same_user(F.server, false);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
            _exit(child_try(path));
        while (waitpid(pid, &status, WNOHANG) == 0)
            assert_true(cc_loop_run_once(F.loop, 10000, NULL) >= 0);
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    peer_done(&a);
    F.server = cc_ttrpc_server_free(F.server); /* closes the listening socket */
    assert_int_equal(fcntl(lfd, F_GETFD), -1);
    unlink(path);
    rmdir(dir);
}

int
main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_echo_and_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_service_method, setup, teardown),
        cmocka_unit_test_setup_teardown(test_even_stream_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_undecodable_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_frame_types_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized_response, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_calls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_async_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_on_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_complete_in_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hangup_mid_frame, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipelined, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backpressure_output, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backpressure_inflight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metadata, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fail_variants, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_in_handler, setup, teardown),
        cmocka_unit_test_setup_teardown(test_register_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listen_and_peer_credentials, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
