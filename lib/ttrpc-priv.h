/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ttrpc internals shared by ttrpc-*.c and the tests: frame headers, the envelope codec
 * (ttrpc.Request / ttrpc.Response encoded and decoded by hand, zero-copy: decoded fields
 * point into the frame), the per-connection read and write buffers and a deadline heap.
 */
#pragma once

#include "ttrpc.h"

#include <sys/types.h>

#define TTRPC_TYPE_REQUEST 1u
#define TTRPC_TYPE_RESPONSE 2u
#define TTRPC_READ_CHUNK (64u << 10)  /* read(2) size and the buffers' resting size */
#define TTRPC_BUF_SHRINK (256u << 10) /* an empty buffer bigger than this is released */
#define TTRPC_STATUS_MESSAGE_MAX (64u << 10)
#define TTRPC_OUTPUT_LOW (1u << 20) /* paused connections resume below this */
#define TTRPC_DEFAULT_MAX_INFLIGHT 4096u

/* --- frames -------------------------------------------------------------------------------- */

typedef struct ttrpc_header {
    uint32_t length;
    uint32_t stream_id;
    uint8_t type;
    uint8_t flags;
} ttrpc_header;

void ttrpc_header_put(uint8_t p[CC_TTRPC_HEADER_LENGTH], const ttrpc_header *h);
ttrpc_header ttrpc_header_get(const uint8_t p[CC_TTRPC_HEADER_LENGTH]);

/* --- envelope codec ------------------------------------------------------------------------ */

typedef struct ttrpc_bytes {
    const uint8_t *p;
    size_t n;
} ttrpc_bytes;

/* A decoded ttrpc.Request; every slice points into the frame data. */
typedef struct ttrpc_request_view {
    ttrpc_bytes service;
    ttrpc_bytes method;
    ttrpc_bytes payload;
    int64_t timeout_nano;
    size_t n_metadata;
} ttrpc_request_view;

/* A decoded ttrpc.Response (status merged as protobuf merges repeated sub-messages). */
typedef struct ttrpc_response_view {
    int32_t code;
    ttrpc_bytes message;
    ttrpc_bytes payload;
} ttrpc_response_view;

/*
 * Decodes data as Go's gogo/protobuf does for ttrpc's Request: proto3, last value wins,
 * unknown fields and fields with an unexpected wire type are skipped (groups included),
 * strings must be valid UTF-8. Returns 0, or with *ret_reason (static text, Go's): -EBADMSG
 * (truncated, bad wire type), -EOVERFLOW (a 10-byte varint whose last byte is over 1: Go
 * refuses it, protobuf-c accepts it) or -EILSEQ (invalid UTF-8; protobuf-c does not check).
 */
int ttrpc_request_decode(const uint8_t *data, size_t len, ttrpc_request_view *ret,
                         const char **ret_reason);
/* Fills up to max metadata pairs of an already decoded request; returns how many. */
size_t ttrpc_request_metadata(const uint8_t *data, size_t len, ttrpc_bytes *keys,
                              ttrpc_bytes *values, size_t max);
/* Same rules for a Response. */
int ttrpc_response_decode(const uint8_t *data, size_t len, ttrpc_response_view *ret,
                          const char **ret_reason);

/* What goes into a payload field: a protobuf-c message or raw bytes (len precomputed). */
typedef struct ttrpc_payload {
    const ProtobufCMessage *msg;
    const void *raw;
    size_t len;
} ttrpc_payload;

void ttrpc_payload_init(ttrpc_payload *p, const ProtobufCMessage *msg, const void *raw, size_t len);

/* Encoded size of a Request, and the encoder (writes exactly that many bytes). */
size_t ttrpc_request_size(const cc_ttrpc_request *r, const ttrpc_payload *pl);
void ttrpc_request_encode(uint8_t *out, const cc_ttrpc_request *r, const ttrpc_payload *pl);

/* Success Response: zero bytes for an empty payload. */
size_t ttrpc_response_ok_size(const ttrpc_payload *pl);
void ttrpc_response_ok_encode(uint8_t *out, const ttrpc_payload *pl);

/* Error Response {status {code, message}}; msg must be valid UTF-8 (ttrpc_utf8_sanitize). */
size_t ttrpc_response_status_size(int32_t code, size_t msg_len);
void ttrpc_response_status_encode(uint8_t *out, int32_t code, const char *msg, size_t msg_len);

bool ttrpc_utf8_valid(const uint8_t *p, size_t n);
/* Replaces invalid UTF-8 sequences with '?' in place and cuts s to at most max bytes on a
 * character boundary; returns the new length. */
size_t ttrpc_utf8_sanitize(char *s, size_t n, size_t max);

/* --- buffers ------------------------------------------------------------------------------- */

/* Incoming bytes of one connection, split into frames in place. */
typedef struct ttrpc_rbuf {
    uint8_t *buf;
    size_t cap, start, end;
    uint64_t discard;       /* bytes of an oversized frame still to drop */
    ttrpc_header oversized; /* its header */
} ttrpc_rbuf;

typedef enum ttrpc_frame_kind {
    TTRPC_FRAME_NONE = 0,      /* need more bytes */
    TTRPC_FRAME_COMPLETE = 1,  /* *ret_h, *ret_data valid until the next rbuf call */
    TTRPC_FRAME_OVERSIZED = 2, /* a frame over the limit was dropped whole; *ret_h is its header */
} ttrpc_frame_kind;

ttrpc_frame_kind ttrpc_rbuf_next(ttrpc_rbuf *r, ttrpc_header *ret_h, const uint8_t **ret_data);
/* Makes room and reads once: bytes read, 0 at EOF, -EAGAIN, or -errno. */
ssize_t ttrpc_rbuf_fill(ttrpc_rbuf *r, int fd);
/* Appends up to n bytes from memory (tests, fuzzing); returns how many were taken. */
size_t ttrpc_rbuf_feed(ttrpc_rbuf *r, const void *p, size_t n);
/* True when part of a frame is buffered or being discarded. */
bool ttrpc_rbuf_partial(const ttrpc_rbuf *r);
void ttrpc_rbuf_done(ttrpc_rbuf *r);

/* Outgoing bytes of one connection. */
typedef struct ttrpc_wbuf {
    uint8_t *buf;
    size_t cap, start, end;
    bool not_socket; /* send(2) said ENOTSOCK: use write(2) */
} ttrpc_wbuf;

/* Appends n bytes of room at the end and returns it (aborts on OOM; n is bounded by callers). */
uint8_t *ttrpc_wbuf_append(ttrpc_wbuf *w, size_t n);
static inline size_t
ttrpc_wbuf_pending(const ttrpc_wbuf *w)
{
    return w->end - w->start;
}
/* Writes as much as possible without blocking (no SIGPIPE): 0 when all is out, -EAGAIN when
 * some is left, else -errno. */
int ttrpc_wbuf_flush(ttrpc_wbuf *w, int fd);
void ttrpc_wbuf_done(ttrpc_wbuf *w);

/* Appends one frame: header plus room for len bytes of data, returned. */
uint8_t *ttrpc_wbuf_frame(ttrpc_wbuf *w, uint32_t stream_id, uint8_t type, size_t len);

/* --- deadlines ----------------------------------------------------------------------------- */

#define TTRPC_HEAP_NONE SIZE_MAX

typedef struct ttrpc_heap_node {
    uint64_t deadline;
    size_t idx; /* TTRPC_HEAP_NONE when not in a heap */
} ttrpc_heap_node;

typedef struct ttrpc_heap {
    ttrpc_heap_node **v;
    size_t n, cap;
} ttrpc_heap;

void ttrpc_heap_push(ttrpc_heap *h, ttrpc_heap_node *node);
void ttrpc_heap_remove(ttrpc_heap *h, ttrpc_heap_node *node);
static inline ttrpc_heap_node *
ttrpc_heap_top(const ttrpc_heap *h)
{
    return h->n ? h->v[0] : NULL;
}
void ttrpc_heap_done(ttrpc_heap *h);

/* Re-arms (or disables, when h is empty) a timer source at h's earliest deadline. */
void ttrpc_heap_arm(const ttrpc_heap *h, cc_loop_source *timer);

/* Deadline in usec for a relative timeout in nanoseconds (> 0), saturating. */
uint64_t ttrpc_deadline_from_nano(uint64_t now_usec, int64_t nano);

#define TTRPC_CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* --- server internals (ttrpc-server.c, ttrpc-call.c) --------------------------------------- */

typedef struct ttrpc_method_entry ttrpc_method_entry;
struct ttrpc_method_entry {
    char *service;
    char *method;
    size_t service_len, method_len;
    uint32_t hash;
    cc_ttrpc_handler_fn handler;
    void *userdata;
    ttrpc_method_entry *next; /* bucket chain */
};

typedef struct ttrpc_listener ttrpc_listener;
struct ttrpc_listener {
    cc_ttrpc_server *server;
    cc_loop_source *io; /* owns the fd */
    cc_loop_source *backoff;
    ttrpc_listener *next;
};

typedef struct ttrpc_conn ttrpc_conn;

struct cc_ttrpc_call {
    ttrpc_conn *conn;           /* NULL once detached: answered by the server, or connection gone */
    cc_ttrpc_call *prev, *next; /* the connection's calls in flight */
    ttrpc_heap_node deadline;
    uint32_t stream_id;
    bool cancelled;
    cc_ttrpc_cancel_fn cancel;
    void *cancel_userdata;
    size_t n_metadata;
    char **metadata; /* key, value, key, value...; one allocation */
};

struct ttrpc_conn {
    cc_ttrpc_server *server; /* a reference */
    unsigned n_ref;          /* the server's list, running handlers, the dirty list */
    int fd;
    cc_loop_source *io; /* owns fd; NULL once closed */
    ttrpc_rbuf rd;
    ttrpc_wbuf wr;
    cc_ttrpc_call *calls;
    size_t n_calls;
    ttrpc_conn *prev, *next; /* server's connections */
    ttrpc_conn *dirty_next;
    uint32_t events; /* what the io source watches */
    bool dirty;      /* on the server's list for the flush pass */
    bool closed;
    bool paused;     /* not reading: backpressure */
    bool want_write; /* the socket was full */
    cc_ttrpc_disconnect_fn disconnect;
    void *disconnect_userdata;
};

struct cc_ttrpc_server {
    cc_loop *loop;
    unsigned n_ref; /* the owner's, one per connection, running handlers */
    bool freed;
    bool require_same_user;
    size_t max_inflight;
    ttrpc_method_entry **buckets;
    size_t n_buckets, n_methods;
    ttrpc_listener *listeners;
    ttrpc_conn *conns;
    size_t n_conns;
    ttrpc_conn *dirty;     /* connections with output to flush or input to resume */
    cc_loop_source *flush; /* defer source, enabled while dirty is non-empty */
    cc_loop_source *timer; /* fires at the earliest deadline */
    ttrpc_heap deadlines;
};

void ttrpc_server_ref(cc_ttrpc_server *s);
void ttrpc_server_unref(cc_ttrpc_server *s);
void ttrpc_conn_ref(ttrpc_conn *c);
void ttrpc_conn_unref(ttrpc_conn *c);
/* Queues c for the flush pass at the start of the next iteration. */
void ttrpc_conn_mark_dirty(ttrpc_conn *c);
/* Pauses or resumes reading after output or the number of calls changed. */
void ttrpc_conn_update_flow(ttrpc_conn *c);

/* ttrpc-call.c */
const ttrpc_method_entry *ttrpc_server_lookup(const cc_ttrpc_server *s, ttrpc_bytes service,
                                              ttrpc_bytes method);
uint32_t ttrpc_method_hash(ttrpc_bytes service, ttrpc_bytes method);
/* Handles one complete frame received on c. */
void ttrpc_conn_handle_frame(ttrpc_conn *c, const ttrpc_header *h, const uint8_t *data);
/* Queues an error Response (message formatted, made valid UTF-8). */
void ttrpc_conn_send_status(ttrpc_conn *c, uint32_t stream_id, cc_ttrpc_code code, const char *fmt,
                            ...) _printf_(4, 5);
/* Detaches every call of a closing connection and runs their cancel callbacks. */
void ttrpc_conn_cancel_calls(ttrpc_conn *c);
/* The server's timer handler: answers expired calls DEADLINE_EXCEEDED. */
int ttrpc_server_on_timer(cc_loop_source *src, uint64_t deadline, void *userdata);
