/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloakctl's CRI client: the subcommands pull, run, exec, ps and rm talk to a CRI runtime
 * (containerd's CRI plugin) over gRPC (lib/grpc.h), fully synchronously: no loop, no signal
 * masks; gRPC's own threads are never forked from. cri.c holds the client, the id
 * resolution and the small commands; cri-run.c the run command and its log follower.
 */
#pragma once

#include "cri/runtime/v1/api.pb-c.h"
#include "error.h"
#include "grpc.h"
#include "macro.h"

#include <stdint.h>

#define CRI_DEFAULT_ADDRESS "/run/containerd/containerd.sock"

#define CRI_USEC_PER_SEC UINT64_C(1000000)
#define CRI_TIMEOUT_DEFAULT (10 * CRI_USEC_PER_SEC)
#define CRI_TIMEOUT_PULL (600 * CRI_USEC_PER_SEC)
#define CRI_TIMEOUT_RUN_POD (300 * CRI_USEC_PER_SEC)

/* Sets the address every CRI command uses (cloakctl --address SOCK); borrowed, read-only
 * after startup. NULL: CRI_DEFAULT_ADDRESS. */
void cri_set_address(const char *address);

/* A client of the configured address. Prints the error and returns NULL on failure. */
cc_grpc_client *cri_connect(const char *cmd);

/*
 * Calls "/runtime.v1.<method>" ("RuntimeService/RunPodSandbox") with req and unpacks the
 * response as resp_desc into *ret_resp. A non-OK status becomes an error naming the method
 * and carrying the runtime's message, with errno from cc_ttrpc_code_to_errno().
 */
int cri_call(cc_grpc_client *c, const char *method, const ProtobufCMessage *req,
             const ProtobufCMessageDescriptor *resp_desc, uint64_t timeout_usec,
             ProtobufCMessage **ret_resp, cc_error **err);

/* Frees a response unpacked by cri_call() (any message type); NULL-safe. */
static inline void
cri_msg_freep(void *p)
{
    ProtobufCMessage **m = p;
    if (*m)
        protobuf_c_message_free_unpacked(*m, NULL);
}
#define _cleanup_msg_ _cleanup_(cri_msg_freep)

/* Stops (timeout_sec grace) and removes a pod sandbox / a container. */
int cri_pod_remove(cc_grpc_client *c, const char *id, cc_error **err);
int cri_container_remove(cc_grpc_client *c, const char *id, int64_t timeout_sec, cc_error **err);

/* Resolves a pod's full id, a unique id prefix or its exact name (as rm does) into the full id;
 * *ret_id owned. Errors: -ENOENT (no such pod, or a container), -EINVAL (ambiguous), call
 * errors. */
int cri_resolve_pod(cc_grpc_client *c, const char *what, char **ret_id, cc_error **err);

/* Subcommands (cli/cloakctl.h conventions: argv[0] is the command name, exit code back). */
int cloakctl_pull(int argc, char **argv);
int cloakctl_run(int argc, char **argv);
int cloakctl_exec(int argc, char **argv);
int cloakctl_ps(int argc, char **argv);
int cloakctl_rm(int argc, char **argv);
