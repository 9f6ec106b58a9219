/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzzes ttrpc frames. The input, after a first control byte, is the byte stream a client
 * sends to a real server (lib/ttrpc on a cc_loop, one service with one method) over a
 * socketpair, cut into pieces whose size the control byte picks. Every frame the server
 * sends back must be a well-formed Response (decodable by our decoder and by protobuf-c,
 * within the 4 MiB limit, with a valid UTF-8 status message). The method answers at once,
 * fails, holds the call (answered later or cancelled) or unpacks the payload, depending on
 * the request payload; at the end the peer hangs up (possibly mid-frame) and everything is
 * freed, so leaks and use-after-free show up under ASan.
 *
 * The same input is also decoded directly as a Request and as a Response, and compared with
 * protobuf-c's generated decoder: when protobuf-c accepts it, so must we, with equal fields.
 *
 * Control byte: bits 0-2 piece size (1, 3, 10, 64, 512, 4096, 65536, whole); bit 3: hang up
 * without reading the answers.
 */
#define _GNU_SOURCE
#include "loop.h"
#include "ttrpc-priv.h"
#include "ttrpc.h"
#include "ttrpc/ttrpc.pb-c.h"
#include "util.h"

#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

#define MAX_HELD 32

static struct {
    cc_loop *loop;
    cc_ttrpc_call *held[MAX_HELD];
    size_t n_held;
    int n_disconnect;
} S;

static bool
bytes_eq(ttrpc_bytes b, const void *p, size_t n)
{
    return b.n == n && (n == 0 || memcmp(b.p, p, n) == 0);
}

static void
differential_request(const uint8_t *data, size_t size)
{
    ttrpc_request_view v;
    const char *reason = NULL;
    int r = ttrpc_request_decode(data, size, &v, &reason);
    CHECK(r == 0 || ((r == -EBADMSG || r == -EOVERFLOW || r == -EILSEQ) && reason));
    Ttrpc__Request *m = ttrpc__request__unpack(NULL, size, data);
    if (!m)
        return;
    /* We accept what protobuf-c accepts, except what Go refuses and protobuf-c does not check
     * (UTF-8, overlong 10-byte varints), and decode it the same. */
    if (r < 0) {
        CHECK(r == -EILSEQ || r == -EOVERFLOW);
    } else {
        CHECK(bytes_eq(v.service, m->service, strlen(m->service)) ||
              memchr(v.service.p, 0, v.service.n));
        CHECK(bytes_eq(v.method, m->method, strlen(m->method)) ||
              memchr(v.method.p, 0, v.method.n));
        CHECK(bytes_eq(v.payload, m->payload.data, m->payload.len));
        CHECK(v.timeout_nano == m->timeout_nano);
        CHECK(v.n_metadata == m->n_metadata);
    }
    ttrpc__request__free_unpacked(m, NULL);
}

static void
differential_response(const uint8_t *data, size_t size)
{
    ttrpc_response_view v;
    int r = ttrpc_response_decode(data, size, &v, NULL);
    Ttrpc__Response *m = ttrpc__response__unpack(NULL, size, data);
    if (!m)
        return;
    CHECK(r == 0 || r == -EILSEQ || r == -EOVERFLOW);
    if (r == 0) {
        CHECK(v.code == (m->status ? m->status->code : 0));
        CHECK(bytes_eq(v.payload, m->payload.data, m->payload.len));
    }
    ttrpc__response__free_unpacked(m, NULL);
}

/* --- the server side ---------------------------------------------------------------------- */

static void
on_cancel(cc_ttrpc_call *call, cc_ttrpc_code reason, void *userdata)
{
    cc_ttrpc_call **slot = userdata;
    CHECK(*slot == call);
    CHECK(reason == CC_TTRPC_CANCELLED || reason == CC_TTRPC_DEADLINE_EXCEEDED);
    *slot = NULL;
    CHECK(cc_ttrpc_call_fail(call, reason, "cancelled") == -ECANCELED);
}

static void
handler(cc_ttrpc_call *call, const uint8_t *req, size_t len, void *userdata)
{
    CHECK(userdata == &S);
    switch (len ? req[0] % 4 : 0) {
    case 0:
        (void)cc_ttrpc_call_reply_raw(call, req, len);
        return;
    case 1:
        (void)cc_ttrpc_call_fail(call, len > 1 ? (cc_ttrpc_code)req[1] : CC_TTRPC_OK, "%.*s",
                                 (int)(len > 2 ? len - 2 : 0), (const char *)req + 2);
        return;
    case 2:
        if (S.n_held < MAX_HELD) {
            S.held[S.n_held] = call;
            cc_ttrpc_call_set_cancel(call, on_cancel, &S.held[S.n_held]);
            S.n_held++;
            return;
        }
        (void)cc_ttrpc_call_reply(call, NULL);
        return;
    default: {
        ProtobufCMessage *m =
            cc_ttrpc_call_unpack(call, &ttrpc__key_value__descriptor, req + 1, len - 1);
        if (m) {
            CHECK(cc_ttrpc_call_reply(call, m) == 0);
            protobuf_c_message_free_unpacked(m, NULL);
        }
        return;
    }
    }
}

static void
on_disconnect(cc_ttrpc_server *s, int error, void *userdata)
{
    S.n_disconnect++;
}

/* Answers the oldest call still held (a late reply, possibly dropped). */
static void
release_one(void)
{
    for (size_t i = 0; i < S.n_held; i++) {
        if (!S.held[i])
            continue;
        cc_ttrpc_call *call = TAKE_PTR(S.held[i]);
        int r = cc_ttrpc_call_reply_raw(call, "late", 4);
        CHECK(r == 0 || r == -ECANCELED);
        return;
    }
}

/* Reads and checks whatever the server sent. */
static void
drain(int fd, ttrpc_rbuf *rb)
{
    for (;;) {
        ttrpc_header h;
        const uint8_t *frame;
        ttrpc_frame_kind k;
        while ((k = ttrpc_rbuf_next(rb, &h, &frame)) != TTRPC_FRAME_NONE) {
            CHECK(k == TTRPC_FRAME_COMPLETE);
            CHECK(h.type == TTRPC_TYPE_RESPONSE && h.flags == 0);
            ttrpc_response_view v;
            CHECK(ttrpc_response_decode(frame, h.length, &v, NULL) == 0);
            CHECK(ttrpc_utf8_valid(v.message.p, v.message.n));
            CHECK(v.code >= 0);
            Ttrpc__Response *m = ttrpc__response__unpack(NULL, h.length, frame);
            CHECK(m);
            CHECK(v.code == (m->status ? m->status->code : 0));
            ttrpc__response__free_unpacked(m, NULL);
        }
        if (ttrpc_rbuf_fill(rb, fd) <= 0)
            return;
    }
}

static void
spin(int n)
{
    for (int i = 0; i < n; i++)
        CHECK(cc_loop_run_once(S.loop, 0, NULL) >= 0);
}

static void
serve(const uint8_t *data, size_t size, size_t piece, bool hang_up)
{
    int sv[2];
    cc_ttrpc_server *server = NULL;
    ttrpc_rbuf rb = {0};
    static const cc_ttrpc_method methods[] = {{"M", handler}};

    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) == 0);
    CHECK(cc_ttrpc_server_new(S.loop, &server, NULL) == 0);
    CHECK(cc_ttrpc_server_register(server, "f.S", methods, 1, &S, NULL) == 0);
    CHECK(cc_ttrpc_server_serve_fd(server, sv[0], on_disconnect, NULL, NULL) == 0);
    for (size_t off = 0; off < size;) {
        size_t n = size - off < piece ? size - off : piece;
        ssize_t l = send(sv[1], data + off, n, MSG_NOSIGNAL);
        if (l < 0) {
            CHECK(errno == EAGAIN || errno == EPIPE || errno == ECONNRESET);
            if (errno != EAGAIN)
                break;
            l = 0;
        }
        off += (size_t)l;
        spin(2);
        if (!hang_up)
            drain(sv[1], &rb);
        release_one();
    }
    spin(3);
    if (!hang_up)
        drain(sv[1], &rb);
    close(sv[1]);
    for (int i = 0; i < 10 && S.n_disconnect == 0; i++)
        spin(1);
    CHECK(S.n_disconnect == 1);
    CHECK(cc_ttrpc_server_get_n_connections(server) == 0);
    /* Calls stay the handler's after their connection went: complete them now. */
    for (size_t i = 0; i < S.n_held; i++)
        CHECK(!S.held[i]); /* all were cancelled, and completed by the cancel callback */
    cc_ttrpc_server_free(server);
    ttrpc_rbuf_done(&rb);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t pieces[] = {1, 3, 10, 64, 512, 4096, 65536, SIZE_MAX};
    differential_request(data, size);
    differential_response(data, size);
    if (size < 1)
        return 0;
    signal(SIGPIPE, SIG_IGN);
    S = (typeof(S)){0};
    CHECK(cc_loop_new(&S.loop, NULL) == 0);
    serve(data + 1, size - 1, pieces[data[0] & 7], data[0] & 8);
    S.loop = cc_loop_free(S.loop);
    return 0;
}
