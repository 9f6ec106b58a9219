/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ttrpc: containerd's RPC protocol (github.com/containerd/ttrpc v1.1, what containerd 1.6
 * speaks), client and server, on a cc_loop.
 *
 * Wire format: each message is a 10-byte big-endian header {data length u32, stream id u32,
 * type u8 (1 Request, 2 Response), flags u8} and at most 4 MiB of data, a protobuf
 * ttrpc.Request or ttrpc.Response. Clients use odd stream ids; one request gets exactly one
 * response with the same id; many calls are in flight on a connection and complete in any
 * order. Behaviour on errors follows containerd/ttrpc v1.1.1 (see the notes at each function).
 *
 * Threads: everything here runs on the thread of the cc_loop it was created with; nothing is
 * thread-safe. Other threads hand work over with cc_loop_post(). Nothing blocks, except
 * cc_ttrpc_client_call_sync(), which runs the loop.
 *
 * Logging: debug level only; failures are returned (or reported to the peer as a status).
 */
#pragma once

#include "error.h"
#include "loop.h"
#include "macro.h"

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest frame data (header excluded) either side sends or accepts. */
#define CC_TTRPC_MESSAGE_LENGTH_MAX (4u << 20)
#define CC_TTRPC_HEADER_LENGTH 10u

/* gRPC status codes, as carried in google.rpc.Status.code. */
typedef enum cc_ttrpc_code {
    CC_TTRPC_OK = 0,
    CC_TTRPC_CANCELLED = 1,
    CC_TTRPC_UNKNOWN = 2,
    CC_TTRPC_INVALID_ARGUMENT = 3,
    CC_TTRPC_DEADLINE_EXCEEDED = 4,
    CC_TTRPC_NOT_FOUND = 5,
    CC_TTRPC_ALREADY_EXISTS = 6,
    CC_TTRPC_PERMISSION_DENIED = 7,
    CC_TTRPC_RESOURCE_EXHAUSTED = 8,
    CC_TTRPC_FAILED_PRECONDITION = 9,
    CC_TTRPC_ABORTED = 10,
    CC_TTRPC_OUT_OF_RANGE = 11,
    CC_TTRPC_UNIMPLEMENTED = 12,
    CC_TTRPC_INTERNAL = 13,
    CC_TTRPC_UNAVAILABLE = 14,
    CC_TTRPC_DATA_LOSS = 15,
    CC_TTRPC_UNAUTHENTICATED = 16,
    _CC_TTRPC_CODE_MAX,
    _CC_TTRPC_CODE_INVALID = -EINVAL,
} cc_ttrpc_code;

/* Go's name of code ("NotFound"); "invalid" for values out of range. */
const char *cc_ttrpc_code_to_string(cc_ttrpc_code code);

/*
 * The project's one errno -> status table (STYLE.md): ENOENT NOT_FOUND, EEXIST
 * ALREADY_EXISTS, EINVAL INVALID_ARGUMENT, EOPNOTSUPP UNIMPLEMENTED, ETIMEDOUT
 * DEADLINE_EXCEEDED, EPERM and EACCES PERMISSION_DENIED, 0 OK, anything else INTERNAL.
 * r may be negative (our convention) or positive.
 */
cc_ttrpc_code cc_ttrpc_code_from_errno(int r);

/*
 * The reverse, for clients: OK 0, NOT_FOUND -ENOENT, ALREADY_EXISTS -EEXIST,
 * INVALID_ARGUMENT -EINVAL, UNIMPLEMENTED -EOPNOTSUPP, DEADLINE_EXCEEDED -ETIMEDOUT,
 * PERMISSION_DENIED -EPERM; and, with no errno mapping to them: CANCELLED -ECANCELED,
 * RESOURCE_EXHAUSTED -EMSGSIZE (the frame limit), UNAVAILABLE -ENOTCONN; else -EIO.
 */
int cc_ttrpc_code_to_errno(cc_ttrpc_code code);

/* --- server ------------------------------------------------------------------------------- */

typedef struct cc_ttrpc_server cc_ttrpc_server;
typedef struct cc_ttrpc_call cc_ttrpc_call;

/*
 * A method handler. req/len: the serialised request message, borrowed for the duration of
 * this call only (unpack it here; cc_ttrpc_call_unpack() helps). userdata: as registered.
 *
 * Call lifetime: the handler owns `call` from this moment until it completes it with exactly
 * one of cc_ttrpc_call_reply(), _reply_raw(), _fail() or _fail_error(), now or later from
 * any loop callback; completing frees it. Nothing else ever frees a call: when the deadline
 * passes or the connection closes first, the server answers (or drops) on its own and calls
 * the cancel callback, but the call stays valid and must still be completed; the late answer
 * is then dropped. Completing inside the cancel callback is fine.
 */
typedef void (*cc_ttrpc_handler_fn)(cc_ttrpc_call *call, const uint8_t *req, size_t len,
                                    void *userdata);

/*
 * Tells a handler its call no longer needs an answer. reason: CC_TTRPC_DEADLINE_EXCEEDED
 * (the server already answered DEADLINE_EXCEEDED) or CC_TTRPC_CANCELLED (connection closed or
 * server freed). Called at most once per call, on the loop thread: from the loop, or from
 * inside cc_ttrpc_server_free() wherever that is called. See cc_ttrpc_handler_fn for the
 * lifetime.
 */
typedef void (*cc_ttrpc_cancel_fn)(cc_ttrpc_call *call, cc_ttrpc_code reason, void *userdata);

/*
 * A connection given with cc_ttrpc_server_serve_fd() ended: error is 0 for end of file or
 * hang-up (a virtio-serial port whose host side went away reads EOF/HUP), else a negative
 * errno. The fd is already closed and the connection's calls cancelled; the server stops
 * watching it, so nothing spins: reopen (perhaps after a delay) and serve the new fd.
 * Not called from cc_ttrpc_server_free().
 */
typedef void (*cc_ttrpc_disconnect_fn)(cc_ttrpc_server *server, int error, void *userdata);

typedef struct cc_ttrpc_method {
    const char *name;            /* "Create" */
    cc_ttrpc_handler_fn handler; /* required */
} cc_ttrpc_method;

/*
 * Creates a server on loop (borrowed: free the server before the loop). *ret is owned by
 * the caller. Errors: loop errors when adding its sources. Loop thread; does not block.
 */
int cc_ttrpc_server_new(cc_loop *loop, cc_ttrpc_server **ret, cc_error **err);

/*
 * Closes listeners and connections (their fds), cancels every call in flight (cancel
 * callbacks run from here; calls stay valid until their handlers complete them, see
 * cc_ttrpc_handler_fn) and frees the server. Safe anywhere on the loop thread, including
 * inside this server's own handlers and callbacks. NULL-safe; returns NULL.
 */
cc_ttrpc_server *cc_ttrpc_server_free(cc_ttrpc_server *s);
CC_DEFINE_CLEANUP(cc_ttrpc_server, cc_ttrpc_server_free)

/*
 * Registers service (e.g. "containerd.task.v2.Task") with n (> 0) methods; service, method
 * names and the table are copied; lookups are by hash. userdata is passed to every handler of
 * this service. Unknown services and methods are answered UNIMPLEMENTED "service <name>" /
 * "method <name>", as Go does. Errors: -EEXIST (service registered already), -EINVAL (empty
 * name, no methods, NULL handler, duplicate method). Loop thread.
 */
int cc_ttrpc_server_register(cc_ttrpc_server *s, const char *service,
                             const cc_ttrpc_method *methods, size_t n, void *userdata,
                             cc_error **err);

/*
 * When true, connections accepted afterwards from AF_UNIX listeners are closed unless the
 * peer's SO_PEERCRED uid and gid both equal our effective uid and gid (containerd's
 * UnixSocketRequireSameUser). Default false. Does not apply to cc_ttrpc_server_serve_fd().
 */
void cc_ttrpc_server_set_require_same_user(cc_ttrpc_server *s, bool require);

/*
 * Backpressure: the server stops reading requests from a connection while its unsent output
 * exceeds CC_TTRPC_OUTPUT_HIGH bytes or it has max calls in flight (default 4096), and
 * resumes once output is under 1 MiB and calls under max (Go has no such bounds; a paused
 * peer is merely slowed down). 0 restores the default.
 */
#define CC_TTRPC_OUTPUT_HIGH (8u << 20)
void cc_ttrpc_server_set_max_inflight(cc_ttrpc_server *s, size_t max);

/*
 * Accepts connections on listen_fd (a listening stream socket, e.g. the shim's fd 3), whose
 * ownership moves to the server on success (it is made non-blocking and close-on-exec and
 * closed by cc_ttrpc_server_free()). Transient accept errors (EMFILE, ENOBUFS, ...) pause
 * accepting for a short back-off rather than spin. Errors: loop errors. Loop thread.
 */
int cc_ttrpc_server_listen_fd(cc_ttrpc_server *s, int listen_fd, cc_error **err);

/*
 * Serves one already-connected stream fd (a socket, a virtio-serial port): ownership moves
 * to the server on success (made non-blocking). When the peer hangs up or the fd fails, the
 * server closes it and calls fn (may be NULL; see cc_ttrpc_disconnect_fn). Sockets are
 * written with MSG_NOSIGNAL; other fds with write(2), so a process serving a pipe must ignore
 * SIGPIPE. Errors: -EBADF, loop errors (the fd stays the caller's). Loop thread.
 */
int cc_ttrpc_server_serve_fd(cc_ttrpc_server *s, int fd, cc_ttrpc_disconnect_fn fn, void *userdata,
                             cc_error **err);

/* Connections currently open. */
size_t cc_ttrpc_server_get_n_connections(const cc_ttrpc_server *s);

/* --- calls (server side) ------------------------------------------------------------------ */

/*
 * Sets (or with fn NULL clears) the cancel callback of call. Calls whose deadline already
 * passed or whose connection closed are not called back again.
 */
void cc_ttrpc_call_set_cancel(cc_ttrpc_call *call, cc_ttrpc_cancel_fn fn, void *userdata);

/* True once the call was cancelled (deadline or closed connection): answers are dropped. */
bool cc_ttrpc_call_is_cancelled(const cc_ttrpc_call *call);

/* The call's CLOCK_MONOTONIC deadline in usec (cc_loop_now() clock) from timeout_nano, 0: none. */
uint64_t cc_ttrpc_call_get_deadline(const cc_ttrpc_call *call);

/*
 * The first value of request metadata key, or NULL. Borrowed, valid until the call is
 * completed. containerd 1.6 sends no metadata on shim calls.
 */
const char *cc_ttrpc_call_get_metadata(const cc_ttrpc_call *call, const char *key);

/*
 * Unpacks the request (req/len from the handler) as desc. On failure, completes the call with
 * INTERNAL "ttrpc: error unmarshalling payload" (what Go's generated code answers) and returns
 * NULL: the call is gone then. Free the result with protobuf_c_message_free_unpacked().
 */
ProtobufCMessage *cc_ttrpc_call_unpack(cc_ttrpc_call *call, const ProtobufCMessageDescriptor *desc,
                                       const uint8_t *req, size_t len);

/*
 * Completes call with a success response carrying resp (borrowed; NULL or an all-default
 * message gives a zero-length response) and frees it. The response is queued and written
 * by the loop. Returns 0; -ECANCELED when the call was cancelled (answer dropped);
 * -EMSGSIZE when the response exceeds CC_TTRPC_MESSAGE_LENGTH_MAX: the client gets
 * RESOURCE_EXHAUSTED instead (Go 1.1 would send the frame and make its clients discard it).
 */
int cc_ttrpc_call_reply(cc_ttrpc_call *call, const ProtobufCMessage *resp);

/* Same with an already serialised response (buf borrowed; len 0 allowed). */
int cc_ttrpc_call_reply_raw(cc_ttrpc_call *call, const void *buf, size_t len);

/*
 * Completes call with an error status (code != OK; OK is sent as UNKNOWN) and the formatted
 * message (made valid UTF-8, at most 64 KiB), and frees it. Returns 0 or -ECANCELED.
 */
int cc_ttrpc_call_fail(cc_ttrpc_call *call, cc_ttrpc_code code, const char *fmt, ...)
    _printf_(3, 4);

/* Same with e's code mapped by cc_ttrpc_code_from_errno() and e's message (e NULL: INTERNAL). */
int cc_ttrpc_call_fail_error(cc_ttrpc_call *call, const cc_error *e);

/* --- client ------------------------------------------------------------------------------- */

typedef struct cc_ttrpc_client cc_ttrpc_client;

/*
 * The answer to a call, exactly once per accepted call, on the loop thread (never from inside
 * cc_ttrpc_client_call*()). code: the status (CC_TTRPC_OK on success); message: the status
 * message, "" on success; payload/len: the response message (empty on errors). All borrowed
 * for the callback. Locally produced codes: DEADLINE_EXCEEDED "context deadline exceeded"
 * (timeout), UNAVAILABLE "ttrpc: closed" (connection lost or client freed),
 * RESOURCE_EXHAUSTED (response frame over 4 MiB, discarded), UNKNOWN (undecodable response).
 */
typedef void (*cc_ttrpc_reply_fn)(cc_ttrpc_code code, const char *message, const uint8_t *payload,
                                  size_t len, void *userdata);

/* The client's connection ended (error: 0 on EOF, else negative errno); after the calls'
 * callbacks. Not called from cc_ttrpc_client_free(). */
typedef void (*cc_ttrpc_client_close_fn)(cc_ttrpc_client *c, int error, void *userdata);

typedef struct cc_ttrpc_kv {
    const char *key;
    const char *value;
} cc_ttrpc_kv;

/* Everything a call sends; all borrowed for the duration of cc_ttrpc_client_call_request(). */
typedef struct cc_ttrpc_request {
    const char *service;
    const char *method;
    const ProtobufCMessage *msg; /* the request; NULL: send payload/len as they are */
    const void *payload;
    size_t len;
    uint64_t timeout_usec; /* 0: none; else sent as timeout_nano and enforced locally */
    const cc_ttrpc_kv *metadata;
    size_t n_metadata;
} cc_ttrpc_request;

/*
 * Creates a client over fd, a connected stream fd whose ownership moves to the client on
 * success (made non-blocking; closed by cc_ttrpc_client_free()). Errors: -EBADF, loop errors
 * (fd stays the caller's). Loop thread.
 */
int cc_ttrpc_client_new(cc_loop *loop, int fd, cc_ttrpc_client **ret, cc_error **err);

/*
 * Closes the fd and completes every pending call with UNAVAILABLE "ttrpc: closed" (from
 * here: those callbacks must not use the client) and frees it. Safe anywhere on the loop
 * thread, including the client's own callbacks. NULL-safe; returns NULL.
 */
cc_ttrpc_client *cc_ttrpc_client_free(cc_ttrpc_client *c);
CC_DEFINE_CLEANUP(cc_ttrpc_client, cc_ttrpc_client_free)

void cc_ttrpc_client_set_close_callback(cc_ttrpc_client *c, cc_ttrpc_client_close_fn fn,
                                        void *userdata);

/* True once the connection ended: further calls fail with -ENOTCONN. */
bool cc_ttrpc_client_is_closed(const cc_ttrpc_client *c);

/*
 * Starts a call: queues the request (stream ids 1, 3, 5, ...) for the loop to write and
 * returns; fn gets the answer later. ret_id (may be NULL) receives the stream id, for
 * cc_ttrpc_client_cancel_call(). Errors (fn is then never called): -EMSGSIZE "message length
 * N exceed maximum message size of 4194304" (nothing sent, the connection is unaffected),
 * -ENOTCONN "ttrpc: closed", -EINVAL (no service, method or fn; metadata without key or
 * value). The client does not bound its unsent output: the caller bounds its calls.
 * Loop thread; does not block.
 */
int cc_ttrpc_client_call_request(cc_ttrpc_client *c, const cc_ttrpc_request *req,
                                 cc_ttrpc_reply_fn fn, void *userdata, uint32_t *ret_id,
                                 cc_error **err);

/* Shorthands for cc_ttrpc_client_call_request() without metadata. */
int cc_ttrpc_client_call(cc_ttrpc_client *c, const char *service, const char *method,
                         const ProtobufCMessage *msg, uint64_t timeout_usec, cc_ttrpc_reply_fn fn,
                         void *userdata, cc_error **err);
int cc_ttrpc_client_call_raw(cc_ttrpc_client *c, const char *service, const char *method,
                             const void *payload, size_t len, uint64_t timeout_usec,
                             cc_ttrpc_reply_fn fn, void *userdata, cc_error **err);

/*
 * Forgets the pending call id: its callback will not run and a late response is ignored
 * (ttrpc 1.1 cannot cancel on the wire; the server still runs it). Use it before freeing
 * what the callback's userdata points at. Returns 0 or -ENOENT (not pending).
 */
int cc_ttrpc_client_cancel_call(cc_ttrpc_client *c, uint32_t id);

/* A response copied out for cc_ttrpc_client_call_sync(). */
typedef struct cc_ttrpc_reply {
    cc_ttrpc_code code;
    char *message;    /* owned, never NULL after a successful call_sync */
    uint8_t *payload; /* owned, NULL when len is 0 */
    size_t len;
} cc_ttrpc_reply;

/* Frees the members of r and zeroes it. */
void cc_ttrpc_reply_clear(cc_ttrpc_reply *r);

/*
 * Makes a call and runs the loop (cc_loop_run_once(), dispatching every other source too)
 * until its answer arrives; *ret then receives it (whatever the status: check ret->code)
 * and 0 is returned. Errors: those of cc_ttrpc_client_call_request(); -EBUSY when called
 * from inside a loop handler (the loop cannot be re-entered: use the asynchronous call
 * there; the request may already be queued, its answer is ignored); loop errors, and
 * -ESTALE when the loop finished first. Blocks; loop thread, outside handlers. If the client
 * is freed meanwhile, the answer is UNAVAILABLE.
 */
int cc_ttrpc_client_call_sync(cc_ttrpc_client *c, const cc_ttrpc_request *req, cc_ttrpc_reply *ret,
                              cc_error **err);
