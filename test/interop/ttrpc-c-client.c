/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ttrpc-c-client --socket PATH CASE
 *
 * Runs one interop case with lib/ttrpc's client against whatever Echo server listens at PATH
 * (ttrpc-c-server or ttrpc-go-server) and prints "ok CASE" (exit 0) or "FAIL CASE: reason"
 * (exit 1). Cases:
 *   echo           round trips of several sizes, the empty payload (zero-length response) too
 *   concurrent     64 calls in flight on one connection, sleeps 0..200 ms in shuffled order
 *   near-limit     request frame and response frame just under 4 MiB
 *   over-limit     request over 4 MiB refused locally; reply_size over 4 MiB gives an error
 *                  status (both servers: RESOURCE_EXHAUSTED); the connection keeps working
 *   unimplemented  unknown service and unknown method: UNIMPLEMENTED
 *   deadline       100 ms timeout on a 3 s sleep: DEADLINE_EXCEEDED quickly; still usable
 *   status         fail_code 5 "no such thing" comes back exactly
 *   server-hangup  the peer answers half a frame and hangs up: every pending call gets
 *                  UNAVAILABLE "ttrpc: closed" once. Done against an in-process fake, then
 *                  against PATH, which must be such a peer (ttrpc-go-rawpeer --mode
 *                  half-response); a well-behaved Echo server fails it
 *   client-hangup  (extra) we send half a frame to PATH and hang up; a new connection works
 */
#define _GNU_SOURCE
#include "echo.pb-c.h"
#include "loop.h"
#include "ttrpc.h"
#include "util.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define SERVICE "cloak.test.v1.Echo"
#define MAX CC_TTRPC_MESSAGE_LENGTH_MAX

static cc_loop *loop;
static const char *socket_path;
static char failure[512];

static int _printf_(1, 2) fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (!failure[0])
        vsnprintf(failure, sizeof(failure), fmt, ap);
    va_end(ap);
    return -1;
}

static int
connect_unix(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int r = -errno;
        close(fd);
        return r;
    }
    return fd;
}

static cc_ttrpc_client *
client_open(void)
{
    cc_ttrpc_client *c = NULL;
    int fd = connect_unix(socket_path);
    if (fd < 0) {
        fail("connect '%s': %s", socket_path, strerror(-fd));
        return NULL;
    }
    if (cc_ttrpc_client_new(loop, fd, &c, NULL) < 0) {
        close(fd);
        fail("cc_ttrpc_client_new failed");
        return NULL;
    }
    return c;
}

/* One synchronous Echo call; returns the status code or -1 (local failure, *r_err set). */
static int
echo_call(cc_ttrpc_client *c, const char *service, const char *method,
          const Cloak__Test__V1__EchoRequest *req, uint64_t timeout_usec, cc_ttrpc_reply *ret,
          int *r_err)
{
    cc_ttrpc_request r = {
        .service = service, .method = method, .msg = &req->base, .timeout_usec = timeout_usec};
    cc_error *err = NULL;
    int rr = cc_ttrpc_client_call_sync(c, &r, ret, &err);
    cc_error_free(err);
    if (r_err)
        *r_err = rr;
    return rr < 0 ? -1 : (int)ret->code;
}

/* Echoes len bytes and checks they come back. */
static int
check_echo(cc_ttrpc_client *c, size_t len)
{
    Cloak__Test__V1__EchoRequest req = CLOAK__TEST__V1__ECHO_REQUEST__INIT;
    cc_ttrpc_reply reply = {0};
    uint8_t *buf = cc_xmalloc(len ? len : 1);
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(i * 7 + 3);
    req.payload = (ProtobufCBinaryData){len, buf};
    int rr = 0, code = echo_call(c, SERVICE, "Echo", &req, 0, &reply, &rr);
    int ret = 0;
    if (code != CC_TTRPC_OK) {
        ret = fail("echo of %zu bytes: code %d (%s) r=%d", len, code, reply.message ?: "", rr);
    } else {
        Cloak__Test__V1__EchoResponse *resp =
            cloak__test__v1__echo_response__unpack(NULL, reply.len, reply.payload);
        if (!resp)
            ret = fail("echo of %zu bytes: undecodable response", len);
        else if (resp->payload.len != len || (len && memcmp(resp->payload.data, buf, len) != 0))
            ret = fail("echo of %zu bytes: got %zu different bytes", len, resp->payload.len);
        if (len == 0 && reply.len != 0)
            ret = fail("empty echo: response payload of %zu bytes, want 0", reply.len);
        if (resp)
            cloak__test__v1__echo_response__free_unpacked(resp, NULL);
    }
    cc_ttrpc_reply_clear(&reply);
    free(buf);
    return ret;
}

static int
case_echo(cc_ttrpc_client *c)
{
    static const size_t sizes[] = {0, 1, 100, 4096, 65536, 1u << 20, 0};
    for (size_t i = 0; i < ELEMENTSOF(sizes); i++)
        if (check_echo(c, sizes[i]) < 0)
            return -1;
    return 0;
}

/* --- concurrent ------------------------------------------------------------------------------ */

#define N_CONCURRENT 64

typedef struct slot {
    int index;
    int *n_done;
    bool done;
} slot;

static void
on_concurrent_reply(cc_ttrpc_code code, const char *message, const uint8_t *payload, size_t len,
                    void *userdata)
{
    slot *s = userdata;
    char want[32];
    snprintf(want, sizeof(want), "call-%d", s->index);
    (*s->n_done)++;
    if (s->done)
        fail("call %d answered twice", s->index);
    s->done = true;
    if (code != CC_TTRPC_OK) {
        fail("call %d: code %d (%s)", s->index, code, message);
        return;
    }
    Cloak__Test__V1__EchoResponse *resp =
        cloak__test__v1__echo_response__unpack(NULL, len, payload);
    if (!resp || resp->payload.len != strlen(want) ||
        memcmp(resp->payload.data, want, strlen(want)) != 0)
        fail("call %d: got the answer of another call", s->index);
    if (resp)
        cloak__test__v1__echo_response__free_unpacked(resp, NULL);
}

static int
run_until(const int *n_done, int want, uint64_t timeout_usec)
{
    uint64_t end = cc_loop_now() + timeout_usec;
    while (*n_done < want && cc_loop_now() < end)
        if (cc_loop_run_once(loop, 100000, NULL) < 0)
            return fail("loop failed");
    return *n_done == want ? 0 : fail("%d of %d answers after the timeout", *n_done, want);
}

static int
case_concurrent(cc_ttrpc_client *c)
{
    slot slots[N_CONCURRENT];
    int order[N_CONCURRENT], n_done = 0;
    srand(12345);
    for (int i = 0; i < N_CONCURRENT; i++)
        order[i] = i;
    for (int i = N_CONCURRENT - 1; i > 0; i--) {
        int j = rand() % (i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (int i = 0; i < N_CONCURRENT; i++) {
        char payload[32];
        snprintf(payload, sizeof(payload), "call-%d", i);
        Cloak__Test__V1__EchoRequest req = CLOAK__TEST__V1__ECHO_REQUEST__INIT;
        req.payload = (ProtobufCBinaryData){strlen(payload), (uint8_t *)payload};
        req.sleep_ms = (uint32_t)(order[i] * 200 / (N_CONCURRENT - 1));
        slots[i] = (slot){.index = i, .n_done = &n_done};
        if (cc_ttrpc_client_call(c, SERVICE, "Echo", &req.base, 0, on_concurrent_reply, &slots[i],
                                 NULL) < 0)
            return fail("call %d not sent", i);
    }
    uint64_t start = cc_loop_now();
    if (run_until(&n_done, N_CONCURRENT, 10000000) < 0 || failure[0])
        return -1;
    /* In parallel: the whole lot takes about the longest sleep, not the sum (6.4 s). */
    uint64_t took = cc_loop_now() - start;
    return took < 2000000 ? 0 : fail("64 calls took %llu ms", (unsigned long long)took / 1000);
}

/* --- limits ---------------------------------------------------------------------------------- */

static size_t
varint_size(size_t v)
{
    size_t n = 1;
    for (; v >= 0x80; v >>= 7)
        n++;
    return n;
}

/* Size of a length-delimited field holding n bytes. */
static size_t
ld(size_t n)
{
    return 1 + varint_size(n) + n;
}

/* Largest payload whose Request frame data is at most limit bytes. */
static size_t
request_payload_for(size_t limit)
{
    size_t fixed = ld(strlen(SERVICE)) + ld(strlen("Echo"));
    size_t n = limit;
    while (fixed + ld(ld(n)) > limit)
        n--;
    return n;
}

static int
case_near_limit(cc_ttrpc_client *c)
{
    size_t n = request_payload_for(MAX - 8);
    if (check_echo(c, n) < 0)
        return -1;
    /* reply_size k: Response = ld(EchoResponse = ld(k)), just under the limit. */
    size_t k = MAX - 8;
    while (ld(ld(k)) > MAX - 8)
        k--;
    Cloak__Test__V1__EchoRequest req = CLOAK__TEST__V1__ECHO_REQUEST__INIT;
    req.reply_size = (uint32_t)k;
    cc_ttrpc_reply reply = {0};
    int code = echo_call(c, SERVICE, "Echo", &req, 0, &reply, NULL);
    int ret = 0;
    if (code != CC_TTRPC_OK)
        ret = fail("reply_size %zu: code %d (%s)", k, code, reply.message ?: "");
    else if (reply.len != ld(k))
        ret = fail("reply_size %zu: response payload of %zu bytes", k, reply.len);
    else
        for (size_t i = 0; i < k && ret == 0; i++)
            if (reply.payload[ld(k) - k + i] != (uint8_t)(i % 251))
                ret = fail("reply_size %zu: byte %zu differs", k, i);
    cc_ttrpc_reply_clear(&reply);
    return ret;
}

static int
case_over_limit(cc_ttrpc_client *c)
{
    size_t n = MAX + 1;
    uint8_t *big = cc_xzalloc(n);
    Cloak__Test__V1__EchoRequest req = CLOAK__TEST__V1__ECHO_REQUEST__INIT;
    req.payload = (ProtobufCBinaryData){n, big};
    cc_ttrpc_reply reply = {0};
    int rr = 0;
    int code = echo_call(c, SERVICE, "Echo", &req, 0, &reply, &rr);
    free(big);
    if (code != -1 || rr != -EMSGSIZE)
        return fail("request of %zu bytes: want -EMSGSIZE locally, got code %d r=%d", n, code, rr);
    if (check_echo(c, 10) < 0)
        return -1;
    Cloak__Test__V1__EchoRequest big_reply = CLOAK__TEST__V1__ECHO_REQUEST__INIT;
    big_reply.reply_size = MAX + 1024;
    code = echo_call(c, SERVICE, "Echo", &big_reply, 0, &reply, &rr);
    fprintf(stderr, "over-limit: reply_size %u answered code %d (%s) \"%s\"\n",
            big_reply.reply_size, code, code >= 0 ? cc_ttrpc_code_to_string(code) : "-",
            reply.message ?: "");
    cc_ttrpc_reply_clear(&reply);
    if (code == CC_TTRPC_OK || code < 0)
        return fail("reply_size over the limit: code %d r=%d, want an error status", code, rr);
    if (cc_ttrpc_client_is_closed(c)) {
        fprintf(stderr, "over-limit: the connection was closed cleanly\n");
        return 0;
    }
    return check_echo(c, 10);
}

/* --- statuses -------------------------------------------------------------------------------- */

static int
expect_status(cc_ttrpc_client *c, const char *service, const char *method,
              const Cloak__Test__V1__EchoRequest *req, uint64_t timeout, int want_code,
              const char *want_msg)
{
    cc_ttrpc_reply reply = {0};
    int code = echo_call(c, service, method, req, timeout, &reply, NULL);
    int ret = 0;
    if (code != want_code)
        ret = fail("%s/%s: code %d (%s), want %d", service, method, code, reply.message ?: "",
                   want_code);
    else if (want_msg && strcmp(reply.message, want_msg) != 0)
        ret = fail("%s/%s: message \"%s\", want \"%s\"", service, method, reply.message, want_msg);
    cc_ttrpc_reply_clear(&reply);
    return ret;
}

static int
case_unimplemented(cc_ttrpc_client *c)
{
    Cloak__Test__V1__EchoRequest req = CLOAK__TEST__V1__ECHO_REQUEST__INIT;
    if (expect_status(c, "cloak.test.v1.Nope", "Echo", &req, 0, CC_TTRPC_UNIMPLEMENTED, NULL) < 0)
        return -1;
    if (expect_status(c, SERVICE, "Nope", &req, 0, CC_TTRPC_UNIMPLEMENTED, NULL) < 0)
        return -1;
    return check_echo(c, 5);
}

static int
case_deadline(cc_ttrpc_client *c)
{
    Cloak__Test__V1__EchoRequest req = CLOAK__TEST__V1__ECHO_REQUEST__INIT;
    req.sleep_ms = 3000;
    uint64_t start = cc_loop_now();
    if (expect_status(c, SERVICE, "Echo", &req, 100000, CC_TTRPC_DEADLINE_EXCEEDED, NULL) < 0)
        return -1;
    uint64_t took = cc_loop_now() - start;
    if (took > 1000000)
        return fail("DEADLINE_EXCEEDED after %llu ms", (unsigned long long)took / 1000);
    return check_echo(c, 5);
}

static int
case_status(cc_ttrpc_client *c)
{
    Cloak__Test__V1__EchoRequest req = CLOAK__TEST__V1__ECHO_REQUEST__INIT;
    req.fail_code = 5;
    req.fail_message = "no such thing";
    return expect_status(c, SERVICE, "Echo", &req, 0, 5, "no such thing");
}

/* --- hang-ups -------------------------------------------------------------------------------- */

typedef struct hangup_slot {
    int n_calls;
    cc_ttrpc_code code;
} hangup_slot;

static void
on_hangup_reply(cc_ttrpc_code code, const char *message, const uint8_t *payload, size_t len,
                void *userdata)
{
    hangup_slot *s = userdata;
    s->n_calls++;
    s->code = code;
    if (code != CC_TTRPC_UNAVAILABLE || strcmp(message, "ttrpc: closed") != 0)
        fail("after hang-up: code %d \"%s\", want UNAVAILABLE \"ttrpc: closed\"", code, message);
}

/* Makes 3 calls on c, waits for the peer to hang up, checks each got UNAVAILABLE once. */
static int
expect_hangup(cc_ttrpc_client *c, int (*peer)(void *), void *peer_data)
{
    hangup_slot slots[3] = {0};
    for (int i = 0; i < 3; i++) {
        Cloak__Test__V1__EchoRequest req = CLOAK__TEST__V1__ECHO_REQUEST__INIT;
        req.sleep_ms = 50;
        if (cc_ttrpc_client_call(c, SERVICE, "Echo", &req.base, 0, on_hangup_reply, &slots[i],
                                 NULL) < 0)
            return fail("call %d not sent", i);
    }
    if (peer && peer(peer_data) < 0)
        return -1;
    uint64_t end = cc_loop_now() + 5000000;
    while (cc_loop_now() < end && !cc_ttrpc_client_is_closed(c))
        (void)cc_loop_run_once(loop, 100000, NULL);
    if (!cc_ttrpc_client_is_closed(c))
        return fail("the peer did not hang up within 5 s");
    for (int i = 0; i < 3; i++)
        if (slots[i].n_calls != 1)
            return fail("call %d answered %d times after the hang-up", i, slots[i].n_calls);
    return failure[0] ? -1 : 0;
}

/* The in-process fake server: reads the requests, writes half a Response, hangs up. */
static int
fake_half_response(void *userdata)
{
    int fd = *(int *)userdata;
    uint8_t buf[4096];
    for (int i = 0; i < 5; i++)
        (void)cc_loop_run_once(loop, 0, NULL); /* flush the requests */
    if (read(fd, buf, sizeof(buf)) <= 0)
        return fail("fake server read nothing");
    /* Response to stream 3: 20 bytes announced, 5 sent. */
    static const uint8_t half[] = {0, 0, 0, 20, 0, 0, 0, 3, 2, 0, 0x0a, 0x12, 0x0a, 0x10, 'x'};
    if (write(fd, half, sizeof(half)) != (ssize_t)sizeof(half))
        return fail("fake server write");
    close(fd);
    return 0;
}

/*
 * First against an in-process fake peer, then against PATH, which must be a peer that hangs
 * up mid-frame (ttrpc-go-rawpeer --mode half-response): a real Echo server fails this case.
 */
static int
case_server_hangup(void)
{
    int sv[2];
    cc_ttrpc_client *c = NULL;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 ||
        cc_ttrpc_client_new(loop, sv[0], &c, NULL) < 0)
        return fail("socketpair/client");
    int r = expect_hangup(c, fake_half_response, &sv[1]);
    c = cc_ttrpc_client_free(c);
    if (r < 0)
        return r;
    c = client_open();
    r = c ? expect_hangup(c, NULL, NULL) : -1;
    cc_ttrpc_client_free(c);
    return r;
}

static int
case_client_hangup(void)
{
    int fd = connect_unix(socket_path);
    if (fd < 0)
        return fail("connect: %s", strerror(-fd));
    /* A Request header announcing 100 bytes, then 3 of them. */
    static const uint8_t half[] = {0, 0, 0, 100, 0, 0, 0, 1, 1, 0, 0x0a, 0x05, 'c'};
    ssize_t l = write(fd, half, sizeof(half));
    close(fd);
    if (l != (ssize_t)sizeof(half))
        return fail("write");
    usleep(100000);
    return 0;
}

/* ------------------------------------------------------------------------------------------- */

int
main(int argc, char **argv)
{
    if (argc != 4 || strcmp(argv[1], "--socket") != 0) {
        fprintf(stderr, "usage: %s --socket PATH CASE\n", argv[0]);
        return 2;
    }
    socket_path = argv[2];
    const char *name = argv[3];
    signal(SIGPIPE, SIG_IGN);
    if (cc_loop_new(&loop, NULL) < 0) {
        printf("FAIL %s: cannot create loop\n", name);
        return 1;
    }
    int r;
    if (strcmp(name, "server-hangup") == 0) {
        r = case_server_hangup();
    } else if (strcmp(name, "client-hangup") == 0) {
        r = case_client_hangup();
        cc_ttrpc_client *c = r == 0 ? client_open() : NULL; /* PATH still serves */
        if (r == 0)
            r = c ? check_echo(c, 3) : -1;
        cc_ttrpc_client_free(c);
    } else {
        static const struct {
            const char *name;
            int (*fn)(cc_ttrpc_client *c);
        } cases[] = {
            {"echo", case_echo},
            {"concurrent", case_concurrent},
            {"near-limit", case_near_limit},
            {"over-limit", case_over_limit},
            {"unimplemented", case_unimplemented},
            {"deadline", case_deadline},
            {"status", case_status},
        };
        r = fail("unknown case");
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
            if (strcmp(cases[i].name, name) != 0)
                continue;
            failure[0] = '\0';
            cc_ttrpc_client *c = client_open();
            r = c ? cases[i].fn(c) : -1;
            if (r == 0 && failure[0])
                r = -1;
            cc_ttrpc_client_free(c);
        }
    }
    cc_loop_free(loop);
    if (r < 0) {
        printf("FAIL %s: %s\n", name, failure[0] ? failure : "failed");
        return 1;
    }
    printf("ok %s\n", name);
    return 0;
}
