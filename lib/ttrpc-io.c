/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The byte plumbing of a ttrpc connection: a read buffer split into frames in place (one
 * read(2) of up to 64 KiB per wake-up, however many frames it holds), a write buffer that
 * collects every frame produced in an iteration for one send(2), and the deadline heap.
 */
#define _GNU_SOURCE
#include "ttrpc-priv.h"
#include "util.h"

#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* --- read buffer ---------------------------------------------------------------------------- */

ttrpc_frame_kind
ttrpc_rbuf_next(ttrpc_rbuf *r, ttrpc_header *ret_h, const uint8_t **ret_data)
{
    for (;;) {
        size_t avail = r->end - r->start;
        if (r->discard > 0) {
            size_t n = avail < r->discard ? avail : (size_t)r->discard;
            r->start += n;
            r->discard -= n;
            if (r->discard > 0)
                return TTRPC_FRAME_NONE;
            *ret_h = r->oversized;
            return TTRPC_FRAME_OVERSIZED;
        }
        if (avail < CC_TTRPC_HEADER_LENGTH)
            return TTRPC_FRAME_NONE;
        ttrpc_header h = ttrpc_header_get(r->buf + r->start);
        if (h.length > CC_TTRPC_MESSAGE_LENGTH_MAX) {
            /* Go (channel.go recv) discards the data, then reports ResourceExhausted. */
            r->start += CC_TTRPC_HEADER_LENGTH;
            r->oversized = h;
            r->discard = h.length;
            continue;
        }
        if (avail - CC_TTRPC_HEADER_LENGTH < h.length)
            return TTRPC_FRAME_NONE;
        *ret_h = h;
        *ret_data = r->buf + r->start + CC_TTRPC_HEADER_LENGTH;
        r->start += CC_TTRPC_HEADER_LENGTH + h.length;
        return TTRPC_FRAME_COMPLETE;
    }
}

/* Bytes the buffer must hold contiguously from start for the next step. */
static size_t
rbuf_need(const ttrpc_rbuf *r)
{
    if (r->discard == 0 && r->end - r->start >= CC_TTRPC_HEADER_LENGTH) {
        uint32_t len = ttrpc_header_get(r->buf + r->start).length;
        if (len <= CC_TTRPC_MESSAGE_LENGTH_MAX)
            return CC_TTRPC_HEADER_LENGTH + len;
    }
    return CC_TTRPC_HEADER_LENGTH;
}

/* Makes room for at least one more byte and enough to complete the current frame. */
static void
rbuf_prepare(ttrpc_rbuf *r)
{
    if (r->start == r->end) {
        r->start = r->end = 0;
        if (r->cap > TTRPC_BUF_SHRINK) {
            free(r->buf);
            r->buf = NULL;
            r->cap = 0;
        }
    }
    size_t need = rbuf_need(r);
    /* Compact when the frame would not fit from start, or little room is left at the end. */
    if (r->start > 0 && (r->cap - r->start < need || r->cap - r->end < TTRPC_READ_CHUNK / 4)) {
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->end -= r->start;
        r->start = 0;
    }
    size_t want = need > TTRPC_READ_CHUNK ? need : TTRPC_READ_CHUNK;
    if (r->cap < want || r->cap == r->end) {
        size_t cap = r->cap < want ? want : r->cap + TTRPC_READ_CHUNK;
        r->buf = cc_xrealloc(r->buf, cap);
        r->cap = cap;
    }
}

ssize_t
ttrpc_rbuf_fill(ttrpc_rbuf *r, int fd)
{
    rbuf_prepare(r);
    for (;;) {
        ssize_t n = read(fd, r->buf + r->end, r->cap - r->end);
        if (n >= 0) {
            r->end += (size_t)n;
            return n;
        }
        if (errno != EINTR)
            return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}

size_t
ttrpc_rbuf_feed(ttrpc_rbuf *r, const void *p, size_t n)
{
    rbuf_prepare(r);
    size_t room = r->cap - r->end;
    if (n > room)
        n = room;
    memcpy(r->buf + r->end, p, n);
    r->end += n;
    return n;
}

bool
ttrpc_rbuf_partial(const ttrpc_rbuf *r)
{
    return r->discard > 0 || r->end > r->start;
}

void
ttrpc_rbuf_done(ttrpc_rbuf *r)
{
    free(r->buf);
    *r = (ttrpc_rbuf){0};
}

/* --- write buffer --------------------------------------------------------------------------- */

uint8_t *
ttrpc_wbuf_append(ttrpc_wbuf *w, size_t n)
{
    if (w->cap - w->end < n) {
        if (w->start > 0) {
            memmove(w->buf, w->buf + w->start, w->end - w->start);
            w->end -= w->start;
            w->start = 0;
        }
        if (w->cap - w->end < n) {
            size_t cap = w->cap ? w->cap : TTRPC_READ_CHUNK;
            while (cap - w->end < n)
                cap *= 2;
            w->buf = cc_xrealloc(w->buf, cap);
            w->cap = cap;
        }
    }
    uint8_t *p = w->buf + w->end;
    w->end += n;
    return p;
}

uint8_t *
ttrpc_wbuf_frame(ttrpc_wbuf *w, uint32_t stream_id, uint8_t type, size_t len)
{
    uint8_t *p = ttrpc_wbuf_append(w, CC_TTRPC_HEADER_LENGTH + len);
    ttrpc_header h = {.length = (uint32_t)len, .stream_id = stream_id, .type = type};
    ttrpc_header_put(p, &h);
    return p + CC_TTRPC_HEADER_LENGTH;
}

static ssize_t
wbuf_write(ttrpc_wbuf *w, int fd)
{
    const void *p = w->buf + w->start;
    size_t n = w->end - w->start;
    if (!w->not_socket) {
        ssize_t l = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (l >= 0 || errno != ENOTSOCK)
            return l;
        w->not_socket = true; /* a virtio-serial port, a pipe */
    }
    return write(fd, p, n);
}

int
ttrpc_wbuf_flush(ttrpc_wbuf *w, int fd)
{
    while (w->start < w->end) {
        ssize_t l = wbuf_write(w, fd);
        if (l < 0) {
            if (errno == EINTR)
                continue;
            return errno == EWOULDBLOCK ? -EAGAIN : -errno;
        }
        w->start += (size_t)l;
    }
    w->start = w->end = 0;
    if (w->cap > TTRPC_BUF_SHRINK) {
        free(w->buf);
        w->buf = NULL;
        w->cap = 0;
    }
    return 0;
}

void
ttrpc_wbuf_done(ttrpc_wbuf *w)
{
    free(w->buf);
    *w = (ttrpc_wbuf){0};
}

/* --- deadline heap -------------------------------------------------------------------------- */

static void
heap_set(ttrpc_heap *h, size_t i, ttrpc_heap_node *node)
{
    h->v[i] = node;
    node->idx = i;
}

static void
heap_up(ttrpc_heap *h, size_t i)
{
    ttrpc_heap_node *node = h->v[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (h->v[parent]->deadline <= node->deadline)
            break;
        heap_set(h, i, h->v[parent]);
        i = parent;
    }
    heap_set(h, i, node);
}

static void
heap_down(ttrpc_heap *h, size_t i)
{
    ttrpc_heap_node *node = h->v[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && h->v[c + 1]->deadline < h->v[c]->deadline)
            c++;
        if (node->deadline <= h->v[c]->deadline)
            break;
        heap_set(h, i, h->v[c]);
        i = c;
    }
    heap_set(h, i, node);
}

void
ttrpc_heap_push(ttrpc_heap *h, ttrpc_heap_node *node)
{
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 16;
        h->v = cc_xreallocarray(h->v, h->cap, sizeof(*h->v));
    }
    h->v[h->n] = node;
    heap_up(h, h->n++);
}

void
ttrpc_heap_remove(ttrpc_heap *h, ttrpc_heap_node *node)
{
    size_t i = node->idx;
    if (i == TTRPC_HEAP_NONE)
        return;
    node->idx = TTRPC_HEAP_NONE;
    ttrpc_heap_node *last = h->v[--h->n];
    if (i == h->n)
        return;
    heap_set(h, i, last);
    if (i > 0 && h->v[(i - 1) / 2]->deadline > last->deadline)
        heap_up(h, i);
    else
        heap_down(h, i);
}

void
ttrpc_heap_done(ttrpc_heap *h)
{
    free(h->v);
    *h = (ttrpc_heap){0};
}

void
ttrpc_heap_arm(const ttrpc_heap *h, cc_loop_source *timer)
{
    const ttrpc_heap_node *top = ttrpc_heap_top(h);
    if (!timer)
        return;
    /* Neither call makes a syscall or can fail on a live timer source. */
    if (top)
        (void)cc_loop_source_set_timer(timer, top->deadline, 0, NULL);
    else
        (void)cc_loop_source_set_enabled(timer, false, NULL);
}

uint64_t
ttrpc_deadline_from_nano(uint64_t now_usec, int64_t nano)
{
    uint64_t usec = nano <= 0 ? 0 : ((uint64_t)nano + 999u) / 1000u;
    uint64_t d = now_usec + usec;
    if (d < now_usec)
        d = UINT64_MAX - 1;
    return d ? d : 1;
}
