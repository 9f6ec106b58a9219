/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gRPC over unix sockets on top of the gRPC C core (Debian's libgrpc-dev 1.51), with
 * protobuf-c messages: a server whose unary handlers run on a cc_loop, shaped like the ttrpc
 * server (lib/ttrpc.h), and a blocking unary client. Built as its own static library,
 * cloak-grpc, so only the components that speak gRPC (the snapshotter, cloakctl) link libgrpc.
 *
 * Threads. gRPC C core runs threads of its own (executor, timer manager, resolver): create
 * servers and clients after cc_loop_block_signals(), so those threads inherit the mask.
 * A server owns one more thread, which drains its completion queue: it accepts calls,
 * receives their requests and hands each call to the loop thread through a queue and an
 * eventfd watched by the loop; handlers run on the loop thread and answer with
 * grpc_call_start_batch() (thread-safe) directly. Everything in the server API is loop
 * thread only. The client is thread-safe: any number of threads may call at once.
 *
 * Fork: gRPC is not fork-safe (GRPC_ENABLE_FORK_SUPPORT is off by default): a child of a
 * process that uses this module must only exec.
 *
 * Status codes are the gRPC ones, cc_ttrpc_code (same numbering), and errors map through the
 * one table cc_ttrpc_code_from_errno()/cc_ttrpc_code_to_errno().
 */
#pragma once

#include "error.h"
#include "loop.h"
#include "macro.h"
#include "ttrpc.h"

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest request the server accepts and largest response the client accepts. */
#define CC_GRPC_MESSAGE_LENGTH_MAX (16u << 20)

/* --- server ------------------------------------------------------------------------------- */

typedef struct cc_grpc_server cc_grpc_server;
typedef struct cc_grpc_call cc_grpc_call;

/*
 * A method handler, on the loop thread. req/len: the serialised request, borrowed for the
 * duration of this call only (cc_grpc_call_unpack() helps). userdata: as registered.
 *
 * Call lifetime: the handler owns `call` until it completes it with exactly one of
 * cc_grpc_call_reply(), _reply_raw(), _fail() or _fail_error(), now or later from any loop
 * callback; completing frees it. Nothing else frees a call: when the client cancels, the
 * deadline passes or the server is freed, the call stays valid (answers are then dropped)
 * and must still be completed.
 */
typedef void (*cc_grpc_handler_fn)(cc_grpc_call *call, const uint8_t *req, size_t len,
                                   void *userdata);

typedef struct cc_grpc_method {
    const char *name;           /* "Prepare" */
    cc_grpc_handler_fn handler; /* required */
} cc_grpc_method;

/*
 * Creates a server whose handlers run on loop (borrowed: free the server before the loop).
 * It serves nothing until cc_grpc_server_listen(). Errors: eventfd and loop errors, -ENOMEM
 * when gRPC cannot create the server. Loop thread.
 */
int cc_grpc_server_new(cc_loop *loop, cc_grpc_server **ret, cc_error **err);

/*
 * Shuts the server down: stops accepting, cancels every call in flight (calls held by
 * handlers stay valid until completed, see cc_grpc_handler_fn), waits for the completion
 * queue thread (briefly: nothing there blocks on handlers) and frees the server. Safe
 * anywhere on the loop thread, including inside this server's handlers. NULL-safe; returns
 * NULL.
 */
cc_grpc_server *cc_grpc_server_free(cc_grpc_server *s);
CC_DEFINE_CLEANUP(cc_grpc_server, cc_grpc_server_free)

/*
 * Registers service ("containerd.services.snapshots.v1.Snapshots") with n (> 0) methods,
 * served as "/<service>/<method>"; everything is copied. userdata goes to every handler of
 * this service. Other paths are answered UNIMPLEMENTED "unknown service <service>" or
 * "unknown method <method> for service <service>", as grpc-go does. Errors: -EEXIST (service
 * registered already), -EINVAL (empty name, no methods, NULL handler, duplicate method).
 * Loop thread; before or after cc_grpc_server_listen().
 */
int cc_grpc_server_register(cc_grpc_server *s, const char *service, const cc_grpc_method *methods,
                            size_t n, void *userdata, cc_error **err);

/*
 * Listens on the unix socket path (gRPC replaces a stale socket file there), sets its mode
 * to mode (e.g. 0660; containerd connects as root) and starts serving. Once per server.
 * Errors: -EALREADY (listening already), -EADDRNOTAVAIL (gRPC could not bind: the message
 * is in gRPC's own log on stderr), chmod errors, -EINVAL (path too long for sun_path).
 * Loop thread.
 */
int cc_grpc_server_listen(cc_grpc_server *s, const char *path, unsigned mode, cc_error **err);

/* Calls currently held by handlers. */
size_t cc_grpc_server_get_n_calls(const cc_grpc_server *s);

/* --- calls (server side) ------------------------------------------------------------------ */

/* The full method path, "/containerd.services.snapshots.v1.Snapshots/Prepare". Borrowed. */
const char *cc_grpc_call_get_method(const cc_grpc_call *call);

/*
 * The first value of request metadata key (lower case, as gRPC sends it: containerd sends
 * "containerd-namespace"), or NULL. Borrowed, valid until the call is completed.
 */
const char *cc_grpc_call_get_metadata(const cc_grpc_call *call, const char *key);

/* True once the client cancelled, the deadline passed or the server was freed. Any answer
 * is then dropped. */
bool cc_grpc_call_is_cancelled(const cc_grpc_call *call);

/*
 * Unpacks the request (req/len from the handler) as desc. On failure completes the call
 * with INTERNAL "grpc: error unmarshalling request" and returns NULL: the call is gone then.
 * Free the result with protobuf_c_message_free_unpacked().
 */
ProtobufCMessage *cc_grpc_call_unpack(cc_grpc_call *call, const ProtobufCMessageDescriptor *desc,
                                      const uint8_t *req, size_t len);

/*
 * Completes call with status OK and resp (borrowed; NULL gives an empty message) and frees
 * it. Returns 0, or -ECANCELED when the call was cancelled (the answer is dropped).
 */
int cc_grpc_call_reply(cc_grpc_call *call, const ProtobufCMessage *resp);

/*
 * Server streaming: sends msg (borrowed, packed at once) as one message of the response
 * stream, without completing the call; the initial metadata goes with the first one.
 * Messages are queued and go out in order, one at a time, as gRPC allows. Complete the
 * call afterwards as usual: cc_grpc_call_reply(call, NULL) then sends the status OK only,
 * after the last message (a non-NULL resp is streamed as one more message first), and the
 * fail functions send their error status after the messages already queued. Returns 0, or
 * -ECANCELED when the call was cancelled or an earlier message failed (the message is
 * dropped), -EIO when gRPC refused the batch. Loop thread.
 */
int cc_grpc_call_send(cc_grpc_call *call, const ProtobufCMessage *msg);

/* Same with an already serialised response (buf borrowed; len 0 allowed). */
int cc_grpc_call_reply_raw(cc_grpc_call *call, const void *buf, size_t len);

/*
 * Completes call with an error status (code != OK; OK is sent as UNKNOWN) and the formatted
 * message (at most 64 KiB), and frees it. Returns 0 or -ECANCELED.
 */
int cc_grpc_call_fail(cc_grpc_call *call, cc_ttrpc_code code, const char *fmt, ...) _printf_(3, 4);

/* Same with e's code mapped by cc_ttrpc_code_from_errno() and e's message (NULL: INTERNAL). */
int cc_grpc_call_fail_error(cc_grpc_call *call, const cc_error *e);

/* --- client ------------------------------------------------------------------------------- */

typedef struct cc_grpc_client cc_grpc_client;

/*
 * Creates a client of the gRPC server at the unix socket path (a path, or any gRPC target
 * such as "unix:/run/containerd/containerd.sock"). gRPC connects lazily, on the first call.
 * Errors: -ENOMEM when gRPC cannot create the channel. Any thread.
 */
int cc_grpc_client_new(const char *path, cc_grpc_client **ret, cc_error **err);

/* Closes the channel. No call may be running. NULL-safe; returns NULL. */
cc_grpc_client *cc_grpc_client_free(cc_grpc_client *c);
CC_DEFINE_CLEANUP(cc_grpc_client, cc_grpc_client_free)

/* Everything a call sends; all borrowed for the duration of the call. */
typedef struct cc_grpc_request {
    const char *method;          /* "/runtime.v1.RuntimeService/Version" */
    const ProtobufCMessage *msg; /* NULL: send payload/len as they are */
    const void *payload;
    size_t len;
    uint64_t timeout_usec;       /* 0: none */
    const cc_ttrpc_kv *metadata; /* keys lower case */
    size_t n_metadata;
} cc_grpc_request;

/* What a call received. */
typedef struct cc_grpc_reply {
    cc_ttrpc_code code;
    char *message;    /* owned, never NULL after a successful call */
    uint8_t *payload; /* owned, NULL when len is 0; the response on OK */
    size_t len;
} cc_grpc_reply;

/* Frees the members of r and zeroes it. */
void cc_grpc_reply_clear(cc_grpc_reply *r);

/*
 * Makes a unary call and blocks until its status arrives; *ret then receives it (whatever
 * the status: check ret->code) and 0 is returned. Locally produced statuses are gRPC's:
 * UNAVAILABLE (cannot connect), DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED (response over
 * CC_GRPC_MESSAGE_LENGTH_MAX). Errors: -EINVAL (no method, metadata without key or value),
 * -EIO (gRPC refused the batch). Any thread.
 */
int cc_grpc_client_call_raw(cc_grpc_client *c, const cc_grpc_request *req, cc_grpc_reply *ret,
                            cc_error **err);

/*
 * The same, unpacking the response: on status OK, *ret_resp receives the response unpacked
 * as resp_desc (free it with protobuf_c_message_free_unpacked()); otherwise *ret_resp is
 * NULL. *ret_code and *ret_message (owned; may be NULL to ignore) receive the status.
 * Returns 0 whenever a status arrived; -EBADMSG when an OK response does not unpack; else
 * as cc_grpc_client_call_raw(). Any thread.
 */
int cc_grpc_client_call_sync(cc_grpc_client *c, const char *method, const ProtobufCMessage *req,
                             const ProtobufCMessageDescriptor *resp_desc, uint64_t timeout_usec,
                             ProtobufCMessage **ret_resp, cc_ttrpc_code *ret_code,
                             char **ret_message, cc_error **err);
