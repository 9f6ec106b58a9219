/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Events back to containerd (specs/shim-v2-and-ttrpc.md §2.6): a ttrpc client to
 * $TTRPC_ADDRESS calling containerd.services.events.ttrpc.v1.Events/Forward with
 * ForwardRequest{Envelope{timestamp (now, non-zero), namespace, topic, event: Any}}, where
 * Any.type_url is the bare proto name (descriptor->name, e.g. "containerd.events.TaskExit")
 * and Any.value the serialised event.
 *
 * Events go out in the order published, one Forward in flight at a time, from a queue on the
 * loop; publishing never blocks or fails. A failed Forward (no socket, connection closed,
 * error status) is retried up to SHIM_EVENTS_RETRIES times with 1 s, 2 s, 3 s ... back-off,
 * reconnecting as needed (containerd may be restarting), then dropped with a warning. The
 * queue holds at most SHIM_EVENTS_QUEUE_MAX events; past that the oldest is dropped (logged).
 * Loop thread only.
 */
#pragma once

#include "error.h"
#include "loop.h"
#include "macro.h"

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

#define SHIM_EVENTS_RETRIES 5
#define SHIM_EVENTS_QUEUE_MAX 1024
#define SHIM_EVENTS_CALL_TIMEOUT_USEC (5 * 1000000ull)

typedef struct shim_events shim_events;

/* address: a unix socket path (TTRPC_ADDRESS, without "unix://"; a "unix://" prefix is
 * accepted and dropped); ns: the containerd namespace. Does not connect yet. */
int shim_events_new(cc_loop *loop, const char *address, const char *ns, shim_events **ret,
                    cc_error **err);

/* Queues event under topic ("/tasks/exit"): the message is serialised now (borrowed). */
void shim_events_publish(shim_events *ev, const char *topic, const ProtobufCMessage *event);

/* Events queued or in flight. */
size_t shim_events_pending(const shim_events *ev);

/* Drops what is queued (logged at debug), closes the connection. NULL-safe. */
shim_events *shim_events_free(shim_events *ev);
CC_DEFINE_CLEANUP(shim_events, shim_events_free)
