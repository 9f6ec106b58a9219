/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent-test's shared helpers: agent-test.c (connection, specs, the first steps, main),
 * agent-test-rest.c (exec, tty, stats, pause, update, OOM events, fast stdio) and
 * agent-test-pull.c (scenario "pull": image pull inside the guest).
 */
#pragma once

#include "loop.h"
#include "macro.h"
#include "ttrpc.h"

#include "kata/oci.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define USEC_PER_SEC 1000000ull
#define CALL_TIMEOUT (30 * USEC_PER_SEC)     /* per call */
#define EOF_READ_TIMEOUT (10 * USEC_PER_SEC) /* ReadStdout after the process exited */
#define COPY_CHUNK (1u << 20)                /* CopyFile data per request, as Kata's runtime */

#define AGENT_SERVICE "grpc.AgentService"
#define HEALTH_SERVICE "grpc.Health"
#define CLOAK_SERVICE "cloak.agent.v1.Agent"

#define EPHEMERAL "/run/kata-containers/sandbox/ephemeral/rootfs1"
#define ROOTFS EPHEMERAL "/rootfs"
#define PAUSE_ROOTFS "/run/kata-containers/sb1/rootfs"

#define STRV(a) ((char **)(a)) /* protobuf-c's repeated strings are char **, never written */

typedef struct test_ctx {
    cc_loop *loop;
    cc_ttrpc_client *client;
    const char *socket_path;
    const char *prog_path;
    const char *images_path; /* --images: make-images.py's images.json (scenario "pull") */
    unsigned ready_timeout_sec;
    unsigned passed, failed;
    bool pause_running; /* sb1 started, not yet stopped */
    char *out[2]; /* stdout/stderr read but not yet matched, per container (c1 only) */
} test_ctx;

/* The outcome of one call: a gRPC status code, or -1 when nothing came back (local error). */
typedef struct rpc_result {
    int code;
    char *message;          /* owned: status message, or the local error */
    ProtobufCMessage *resp; /* owned: the unpacked response (OK and a descriptor given) */
} rpc_result;

void rpc_result_clear(rpc_result *r);
double now_sec(void);
const char *code_name(int code);

/* "ok ..." (counted as passed); "FAIL STEP: ..." (counted as failed, returns -1); "# ...". */
void ok(test_ctx *t, const char *fmt, ...) _printf_(2, 3);
int fail(test_ctx *t, const char *step, const char *fmt, ...) _printf_(3, 4);
void info(const char *fmt, ...) _printf_(1, 2);

/* One synchronous call; on OK unpacks the response as resp_desc (may be NULL). r->code. */
int rpc(test_ctx *t, const char *service, const char *method, const ProtobufCMessage *req,
        const ProtobufCMessageDescriptor *resp_desc, uint64_t timeout_usec, rpc_result *r);
/* An AgentService call that must succeed / fail (with want, or any error for -1; field: a
 * word the message must contain, may be NULL). 0 or -1, step reported either way. */
int expect_ok(test_ctx *t, const char *step, const char *method, const ProtobufCMessage *req);
int expect_error(test_ctx *t, const char *step, const char *method, const ProtobufCMessage *req,
                 int want, const char *field);
/* (Re)connects and polls Health.Check until SERVING, up to timeout_sec. 0 or -1. */
int connect_agent(test_ctx *t, unsigned timeout_sec, double *ret_elapsed);
/* Health.Check answers SERVING (reported only when not). */
int check_health(test_ctx *t, const char *after);

/* --- OCI specs ---------------------------------------------------------------------------- */

#define SPEC_N_MOUNTS 4 /* the standard mounts spec_init fills in */

/* A Grpc__Spec with every sub-message in one place, so pointers stay valid. */
typedef struct spec_buf {
    Grpc__Spec spec;
    Grpc__Process process;
    Grpc__User user;
    Grpc__LinuxCapabilities caps;
    Grpc__Root root;
    Grpc__Linux lnx;
    Grpc__Mount mounts[SPEC_N_MOUNTS + 1]; /* mount_table, and one more a step may add */
    Grpc__Mount *mount_ptrs[SPEC_N_MOUNTS + 1];
    Grpc__LinuxNamespace ns[4];
    Grpc__LinuxNamespace *ns_ptrs[4];
    Grpc__LinuxResources resources; /* spec_set_memory_limit() links them in */
    Grpc__LinuxMemory memory;
} spec_buf;

/* Fills b: root_path, args (n_args), hostname; n_mounts of mount_table (2 for the pause). */
void spec_init(spec_buf *b, const char *root_path, const char *const *args, size_t n_args,
               const char *hostname, size_t n_mounts);

/* CreateContainer of id on the copied rootfs running args, no storages. */
int create_container(test_ctx *t, const char *step, const char *id, const char *const *args,
                     size_t n_args);
/* StartContainer or RemoveContainer of id. */
int container_call(test_ctx *t, const char *step, const char *method, const char *id);

/* --- processes: exec_id "" or the container id is its init ---------------------------------- */

int signal_exec(test_ctx *t, const char *step, const char *id, const char *exec_id,
                unsigned signo);
int wait_exec(test_ctx *t, const char *step, const char *id, const char *exec_id, int want);
/*
 * Read{Stdout,Stderr} (which 0 or 1) of id/exec_id until buf (the data read so far, not yet
 * matched) contains want; consumes buf through it. 0, or -1 after 30 s or an error.
 */
int read_until_buf(test_ctx *t, int which, const char *id, const char *exec_id, char **buf,
                   const char *want);
int write_stdin_exec(test_ctx *t, const char *id, const char *exec_id, const char *data);

/* --- agent-test-rest.c -------------------------------------------------------------------- */

/* Exec, tty, ListProcesses, stats, pause/resume, update, OOM events, 64 MiB of stdout
 * through ReadStdout and ReadStdio, OnlineCPUMem: containers r1, o1, s1, s2, all removed. */
void step_rest(test_ctx *t);

/* --- agent-test-pull.c -------------------------------------------------------------------- */

/* Scenario "pull": containers on images the agent pulls (t->images_path), the failures
 * (wrong manifest digest, missing manifest, tampered layer), DestroySandbox. */
int scenario_pull(test_ctx *t);
