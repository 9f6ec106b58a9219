/* SPDX-License-Identifier: Apache-2.0 */
/* cloak-snapshotter: the process context and the gRPC service on top of snap_store. */
#pragma once

#include "grpc.h"
#include "loop.h"
#include "store.h"

typedef struct snap_ctx {
    cc_loop *loop;
    snap_store *store;
    cc_grpc_server *server;
} snap_ctx;

/* Registers containerd.services.snapshots.v1.Snapshots on server, handlers using ctx. */
int snap_rpc_register(snap_ctx *ctx, cc_grpc_server *server, cc_error **err);
