/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lib/ttrpc-io.c: splitting a byte stream into frames however it is cut (byte by byte
 * included), dropping oversized frames, the write buffer over full and closed sockets, and
 * the deadline heap.
 */
#define _GNU_SOURCE
#include "test-helpers.h"

#include <signal.h>

/* A stream of n frames with ids 1, 3, ... and data lengths len(i); caller frees. */
static uint8_t *
make_stream(size_t n, size_t (*len)(size_t), size_t *ret_len)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += CC_TTRPC_HEADER_LENGTH + len(i);
    uint8_t *buf = cc_xmalloc(total), *p = buf;
    for (size_t i = 0; i < n; i++) {
        ttrpc_header h = {.length = (uint32_t)len(i),
                          .stream_id = (uint32_t)(2 * i + 1),
                          .type = (uint8_t)(1 + i % 3),
                          .flags = (uint8_t)i};
        ttrpc_header_put(p, &h);
        p += CC_TTRPC_HEADER_LENGTH;
        for (size_t j = 0; j < len(i); j++)
            *p++ = (uint8_t)(i + j);
    }
    *ret_len = total;
    return buf;
}

static size_t
small_len(size_t i)
{
    return (i * 37) % 300;
}

static size_t
mixed_len(size_t i)
{
    return i % 4 == 3 ? 200000 + i : i % 5;
}

static void
check_frame(size_t i, const ttrpc_header *h, const uint8_t *data, size_t (*len)(size_t))
{
    assert_int_equal(h->stream_id, 2 * i + 1);
    assert_int_equal(h->length, len(i));
    assert_int_equal(h->type, 1 + i % 3);
    assert_int_equal(h->flags, (uint8_t)i);
    for (size_t j = 0; j < len(i); j++)
        if (data[j] != (uint8_t)(i + j))
            fail_msg("frame %zu byte %zu", i, j);
}

/* Feeds the stream in pieces of `step` bytes, collecting frames after each piece. */
static void
split_reads(size_t n, size_t (*len)(size_t), size_t step)
{
    size_t total, off = 0, got = 0;
    uint8_t *buf = make_stream(n, len, &total);
    ttrpc_rbuf rb = {0};
    while (off < total || got < n) {
        ttrpc_header h;
        const uint8_t *data;
        ttrpc_frame_kind k;
        while ((k = ttrpc_rbuf_next(&rb, &h, &data)) != TTRPC_FRAME_NONE) {
            assert_int_equal(k, TTRPC_FRAME_COMPLETE);
            check_frame(got++, &h, data, len);
        }
        assert_true(off < total || got == n);
        size_t piece = total - off < step ? total - off : step;
        off += ttrpc_rbuf_feed(&rb, buf + off, piece);
        assert_true(ttrpc_rbuf_partial(&rb) || off == total);
    }
    assert_false(ttrpc_rbuf_partial(&rb));
    ttrpc_rbuf_done(&rb);
    free(buf);
}

static void
test_byte_by_byte(void **state)
{
    split_reads(50, small_len, 1);
}

static void
test_odd_pieces(void **state)
{
    split_reads(50, small_len, 7);
    split_reads(50, small_len, 4096);
    split_reads(20, mixed_len, 1000);
    split_reads(20, mixed_len, 65536 + 3);
    split_reads(20, mixed_len, 1 << 20);
}

/* Exactly 4 MiB is accepted; one byte more is dropped whole and reported. */
static void
test_limit_and_oversized(void **state)
{
    ttrpc_rbuf rb = {0};
    ttrpc_header h = {.length = CC_TTRPC_MESSAGE_LENGTH_MAX + 1, .stream_id = 7, .type = 1};
    uint8_t hdr[CC_TTRPC_HEADER_LENGTH];
    const uint8_t *data;
    size_t chunk_len = 100000;
    uint8_t *chunk = cc_xzalloc(chunk_len);

    ttrpc_header_put(hdr, &h);
    assert_int_equal(ttrpc_rbuf_feed(&rb, hdr, sizeof(hdr)), sizeof(hdr));
    ttrpc_header got;
    size_t left = h.length;
    while (left > 0) {
        assert_int_equal(ttrpc_rbuf_next(&rb, &got, &data), TTRPC_FRAME_NONE);
        assert_true(ttrpc_rbuf_partial(&rb));
        size_t n = ttrpc_rbuf_feed(&rb, chunk, left < chunk_len ? left : chunk_len);
        assert_true(n > 0);
        left -= n;
        /* Discarding does not keep the frame around: the buffer stays small. */
        assert_true(rb.cap <= TTRPC_BUF_SHRINK);
    }
    h = (ttrpc_header){.length = CC_TTRPC_MESSAGE_LENGTH_MAX, .stream_id = 9, .type = 1};
    ttrpc_header_put(hdr, &h);
    assert_int_equal(ttrpc_rbuf_feed(&rb, hdr, sizeof(hdr)), sizeof(hdr));
    assert_int_equal(ttrpc_rbuf_next(&rb, &got, &data), TTRPC_FRAME_OVERSIZED);
    assert_int_equal(got.stream_id, 7);
    assert_int_equal(got.length, CC_TTRPC_MESSAGE_LENGTH_MAX + 1);
    left = h.length;
    while (left > 0) {
        assert_int_equal(ttrpc_rbuf_next(&rb, &got, &data), TTRPC_FRAME_NONE);
        size_t n = ttrpc_rbuf_feed(&rb, chunk, left < chunk_len ? left : chunk_len);
        assert_true(n > 0);
        left -= n;
    }
    assert_int_equal(ttrpc_rbuf_next(&rb, &got, &data), TTRPC_FRAME_COMPLETE);
    assert_int_equal(got.stream_id, 9);
    assert_int_equal(got.length, CC_TTRPC_MESSAGE_LENGTH_MAX);
    assert_false(ttrpc_rbuf_partial(&rb));
    /* The big buffer is released once empty. */
    assert_int_equal(ttrpc_rbuf_feed(&rb, hdr, 1), 1);
    assert_true(rb.cap <= TTRPC_BUF_SHRINK);
    ttrpc_rbuf_done(&rb);
    free(chunk);
}

static void
test_fill_eof_eagain(void **state)
{
    int sv[2];
    make_socketpair(sv);
    assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
    ttrpc_rbuf rb = {0};
    assert_int_equal(ttrpc_rbuf_fill(&rb, sv[0]), -EAGAIN);
    assert_int_equal(write(sv[1], "0123456789", 10), 10);
    assert_int_equal(ttrpc_rbuf_fill(&rb, sv[0]), 10);
    close(sv[1]);
    assert_int_equal(ttrpc_rbuf_fill(&rb, sv[0]), 0);
    assert_int_equal(ttrpc_rbuf_fill(&rb, -1), -EBADF);
    ttrpc_rbuf_done(&rb);
    close(sv[0]);
}

static void
test_wbuf_full_socket(void **state)
{
    int sv[2];
    make_socketpair(sv);
    assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
    ttrpc_wbuf wb = {0};
    size_t total = 0;
    /* Write frames until the socket is full. */
    for (uint32_t i = 0; i < 200; i++) {
        uint8_t *p = ttrpc_wbuf_frame(&wb, 2 * i + 1, TTRPC_TYPE_RESPONSE, 10000);
        memset(p, (int)i, 10000);
        total += CC_TTRPC_HEADER_LENGTH + 10000;
    }
    assert_int_equal(ttrpc_wbuf_flush(&wb, sv[0]), -EAGAIN);
    assert_true(ttrpc_wbuf_pending(&wb) > 0);
    /* Drain the other end while flushing; everything arrives intact and in order. */
    ttrpc_rbuf rb = {0};
    size_t frames = 0;
    assert_int_equal(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
    while (frames < 200) {
        (void)ttrpc_wbuf_flush(&wb, sv[0]);
        ssize_t n = ttrpc_rbuf_fill(&rb, sv[1]);
        assert_true(n > 0 || n == -EAGAIN);
        ttrpc_header h;
        const uint8_t *data;
        while (ttrpc_rbuf_next(&rb, &h, &data) == TTRPC_FRAME_COMPLETE) {
            assert_int_equal(h.stream_id, 2 * frames + 1);
            assert_int_equal(h.length, 10000);
            assert_int_equal(data[9999], (uint8_t)frames);
            frames++;
        }
    }
    assert_int_equal(ttrpc_wbuf_pending(&wb), 0);
    assert_int_equal(ttrpc_wbuf_flush(&wb, sv[0]), 0);
    assert_true(wb.cap <= TTRPC_BUF_SHRINK); /* released when empty */
    /* A closed peer: EPIPE, and no SIGPIPE kills us. */
    close(sv[1]);
    memset(ttrpc_wbuf_append(&wb, 10), 0, 10);
    assert_int_equal(ttrpc_wbuf_flush(&wb, sv[0]), -EPIPE);
    ttrpc_wbuf_done(&wb);
    ttrpc_rbuf_done(&rb);
    close(sv[0]);
    (void)total;
}

/* Not a socket (a pipe, a virtio-serial port): falls back to write(2). */
static void
test_wbuf_pipe(void **state)
{
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
    ttrpc_wbuf wb = {0};
    memcpy(ttrpc_wbuf_append(&wb, 5), "hello", 5);
    assert_int_equal(ttrpc_wbuf_flush(&wb, p[1]), 0);
    assert_true(wb.not_socket);
    char buf[8];
    assert_int_equal(read(p[0], buf, sizeof(buf)), 5);
    assert_memory_equal(buf, "hello", 5);
    ttrpc_wbuf_done(&wb);
    close(p[0]);
    close(p[1]);
}

static void
test_heap(void **state)
{
    enum { N = 500 };
    ttrpc_heap h = {0};
    ttrpc_heap_node nodes[N];
    bool removed[N] = {0};
    srand(1);
    for (size_t i = 0; i < N; i++) {
        nodes[i] =
            (ttrpc_heap_node){.deadline = (uint64_t)(rand() % 1000) + 1, .idx = TTRPC_HEAP_NONE};
        ttrpc_heap_push(&h, &nodes[i]);
    }
    /* Remove a third at random positions. */
    for (size_t i = 0; i < N; i += 3) {
        ttrpc_heap_remove(&h, &nodes[i]);
        removed[i] = true;
        assert_int_equal(nodes[i].idx, TTRPC_HEAP_NONE);
        ttrpc_heap_remove(&h, &nodes[i]); /* twice is harmless */
    }
    uint64_t last = 0;
    size_t popped = 0;
    ttrpc_heap_node *top;
    while ((top = ttrpc_heap_top(&h))) {
        assert_true(top->deadline >= last);
        assert_false(removed[top - nodes]);
        last = top->deadline;
        ttrpc_heap_remove(&h, top);
        popped++;
    }
    assert_int_equal(popped, N - (N + 2) / 3);
    ttrpc_heap_done(&h);
}

static void
test_deadline_from_nano(void **state)
{
    assert_int_equal(ttrpc_deadline_from_nano(1000, 1), 1001); /* rounds up */
    assert_int_equal(ttrpc_deadline_from_nano(1000, 1000), 1001);
    assert_int_equal(ttrpc_deadline_from_nano(1000, 1001), 1002);
    assert_int_equal(ttrpc_deadline_from_nano(1000, 3000000000LL), 3001000);
    assert_int_equal(ttrpc_deadline_from_nano(UINT64_MAX - 5, INT64_MAX), UINT64_MAX - 1);
    assert_int_equal(ttrpc_deadline_from_nano(0, 0), 1);
}

int
main(void)
{
    signal(SIGPIPE, SIG_DFL); /* prove that flushing to a closed socket raises none */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_byte_by_byte),
        cmocka_unit_test(test_odd_pieces),
        cmocka_unit_test(test_limit_and_oversized),
        cmocka_unit_test(test_fill_eof_eagain),
        cmocka_unit_test(test_wbuf_full_socket),
        cmocka_unit_test(test_wbuf_pipe),
        cmocka_unit_test(test_heap),
        cmocka_unit_test(test_deadline_from_nano),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
