/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Helpers shared by the ttrpc unit tests: a raw peer on the other end of a socketpair that
 * writes hand-built frames and reads whole frames back while the loop runs.
 */
#pragma once

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* cmocka.h needs these first. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "loop.h"
#include "ttrpc-priv.h"
#include "ttrpc.h"
#include "util.h"

#define SECOND 1000000u

/* Runs iterations (100 ms each at most) until *done or about 5 s passed. */
static inline void
run_until(cc_loop *loop, const bool *done)
{
    uint64_t end = cc_loop_now() + 5 * SECOND;
    while (!*done && cc_loop_now() < end)
        assert_true(cc_loop_run_once(loop, 100000, NULL) >= 0);
    assert_true(*done);
}

/* Runs the loop for about usec. */
static inline void
run_for(cc_loop *loop, uint64_t usec)
{
    uint64_t end = cc_loop_now() + usec;
    while (cc_loop_now() < end)
        assert_true(cc_loop_run_once(loop, end - cc_loop_now(), NULL) >= 0);
}

static inline void
make_socketpair(int sv[2])
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
}

/* The test's end of a connection. */
typedef struct peer {
    cc_loop *loop; /* run while writing would block */
    int fd;
    ttrpc_rbuf rb;
} peer;

static inline void
peer_init(peer *p, cc_loop *loop, int fd)
{
    *p = (peer){.loop = loop, .fd = fd};
    assert_int_equal(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
}

static inline void
peer_done(peer *p)
{
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
    ttrpc_rbuf_done(&p->rb);
}

static inline void
peer_write(peer *p, const void *buf, size_t len)
{
    /* Runs the loop while the socket is full, so big frames reach a server in the loop. */
    const uint8_t *b = buf;
    uint64_t end = cc_loop_now() + 10 * SECOND;
    while (len > 0) {
        ssize_t n = send(p->fd, b, len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            b += n;
            len -= (size_t)n;
            continue;
        }
        assert_true(n < 0 && errno == EAGAIN);
        assert_true(cc_loop_now() < end);
        assert_true(cc_loop_run_once(p->loop, 10000, NULL) >= 0);
    }
}

/* A Request frame; caller frees. */
static inline uint8_t *
frame_request(uint32_t id, const char *service, const char *method, const void *payload, size_t len,
              int64_t timeout_nano, const cc_ttrpc_kv *md, size_t n_md, size_t *ret_len)
{
    cc_ttrpc_request r = {.service = service,
                          .method = method,
                          .payload = payload,
                          .len = len,
                          .metadata = md,
                          .n_metadata = n_md};
    ttrpc_payload pl;
    ttrpc_payload_init(&pl, NULL, payload, len);
    size_t n = ttrpc_request_size(&r, &pl);
    size_t extra = timeout_nano ? 11 : 0;
    uint8_t *buf = cc_xmalloc(CC_TTRPC_HEADER_LENGTH + n + extra);
    ttrpc_request_encode(buf + CC_TTRPC_HEADER_LENGTH, &r, &pl);
    if (timeout_nano) { /* field 4, as a varint, any value (negative ones too) */
        uint8_t *q = buf + CC_TTRPC_HEADER_LENGTH + n;
        uint64_t v = (uint64_t)timeout_nano;
        *q++ = 0x20;
        while (v >= 0x80) {
            *q++ = (uint8_t)(v | 0x80);
            v >>= 7;
        }
        *q++ = (uint8_t)v;
        n = (size_t)(q - buf) - CC_TTRPC_HEADER_LENGTH;
    }
    ttrpc_header h = {.length = (uint32_t)n, .stream_id = id, .type = TTRPC_TYPE_REQUEST};
    ttrpc_header_put(buf, &h);
    *ret_len = CC_TTRPC_HEADER_LENGTH + n;
    return buf;
}

static inline void
peer_request(peer *p, uint32_t id, const char *service, const char *method, const void *payload,
             size_t len, int64_t timeout_nano)
{
    size_t n;
    uint8_t *buf = frame_request(id, service, method, payload, len, timeout_nano, NULL, 0, &n);
    peer_write(p, buf, n);
    free(buf);
}

/* A raw frame of any type with the given data. */
static inline void
peer_frame(peer *p, uint32_t id, uint8_t type, const void *data, size_t len)
{
    uint8_t *buf = cc_xmalloc(CC_TTRPC_HEADER_LENGTH + len);
    ttrpc_header h = {.length = (uint32_t)len, .stream_id = id, .type = type};
    ttrpc_header_put(buf, &h);
    if (len)
        memcpy(buf + CC_TTRPC_HEADER_LENGTH, data, len);
    peer_write(p, buf, CC_TTRPC_HEADER_LENGTH + len);
    free(buf);
}

/* A frame received by the peer; data owned. */
typedef struct got_frame {
    ttrpc_header h;
    uint8_t *data;
    ttrpc_response_view resp; /* for Responses */
    char *message;            /* resp.message, NUL-terminated */
} got_frame;

static inline void
got_frame_done(got_frame *f)
{
    free(f->data);
    free(f->message);
    *f = (got_frame){0};
}

/*
 * Runs the loop until the peer has a whole frame (or hits EOF: returns false), at most 5 s.
 * Oversized frames are reported as such, with data NULL.
 */
static inline bool
peer_read_frame_kind(cc_loop *loop, peer *p, got_frame *ret, ttrpc_frame_kind *ret_kind)
{
    uint64_t end = cc_loop_now() + 5 * SECOND;
    *ret = (got_frame){0};
    for (;;) {
        const uint8_t *data = NULL;
        ttrpc_frame_kind k = ttrpc_rbuf_next(&p->rb, &ret->h, &data);
        if (k != TTRPC_FRAME_NONE) {
            if (ret_kind)
                *ret_kind = k;
            if (k == TTRPC_FRAME_COMPLETE) {
                ret->data = cc_xmalloc(ret->h.length + 1);
                memcpy(ret->data, data, ret->h.length);
                if (ret->h.type == TTRPC_TYPE_RESPONSE) {
                    assert_int_equal(
                        ttrpc_response_decode(ret->data, ret->h.length, &ret->resp, NULL), 0);
                    ret->message =
                        cc_xstrndup((const char *)ret->resp.message.p, ret->resp.message.n);
                }
            }
            return true;
        }
        ssize_t n = ttrpc_rbuf_fill(&p->rb, p->fd);
        if (n == 0)
            return false;
        if (n > 0)
            continue;
        assert_int_equal(n, -EAGAIN);
        assert_true(cc_loop_now() < end);
        assert_true(cc_loop_run_once(loop, 10000, NULL) >= 0);
    }
}

static inline void
peer_read_frame(cc_loop *loop, peer *p, got_frame *ret)
{
    ttrpc_frame_kind k;
    assert_true(peer_read_frame_kind(loop, p, ret, &k));
    assert_int_equal(k, TTRPC_FRAME_COMPLETE);
}

/* Expects a Response on id with the given code (and message, when not NULL). */
static inline void
peer_expect_status(cc_loop *loop, peer *p, uint32_t id, int32_t code, const char *message)
{
    got_frame f;
    peer_read_frame(loop, p, &f);
    assert_int_equal(f.h.type, TTRPC_TYPE_RESPONSE);
    assert_int_equal(f.h.stream_id, id);
    assert_int_equal(f.resp.code, code);
    if (message)
        assert_string_equal(f.message, message);
    got_frame_done(&f);
}

/* True when the peer can read nothing within usec while the loop runs (no EOF either). */
static inline bool
peer_quiet(cc_loop *loop, peer *p, uint64_t usec)
{
    run_for(loop, usec);
    uint8_t b;
    ssize_t n = recv(p->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && errno == EAGAIN && !ttrpc_rbuf_partial(&p->rb);
}
