/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The shim daemon: one per pod, serving containerd.task.v2.Task on ttrpc and driving the
 * pod's VM (vmm/) and its agent (Kata's agent API over ttrpc).
 *
 * Threads. Everything that touches the daemon's state runs on the loop thread: the Task
 * handlers, the agent client, stdio copies (io.c), events (events.c), the VM's exit. A Task
 * call that needs a sequence of agent calls (Create, Start, Delete, Kill, ...) runs on a
 * short-lived worker thread (shim_spawn) written as plain sequential code: it calls the agent
 * with shim_agent_call() and reads or changes state only inside shim_on_loop(), which runs a
 * function on the loop thread and waits for it. So there is no lock: the loop thread owns the
 * state, workers only ever borrow it through the loop.
 *
 * Processes. One state machine per process (the init process of each container, and each
 * exec): CREATING -> CREATED -> RUNNING (<-> PAUSED) -> STOPPED, then deleted. The exit
 * pipeline is strictly ordered (specs/shim-v2-and-ttrpc.md §6): the agent's WaitProcess
 * answers -> the output is drained and containerd's FIFOs closed (shim_io done) -> STOPPED
 * with status and time -> every parked Wait answered -> one /tasks/exit published. A VM that
 * dies or an agent that stops answering closes the agent connection: every WaitProcess then
 * fails, and each process exits with status 255 the same way. Every pid reported is QEMU's.
 */
#pragma once

#include "contract.h"
#include "error.h"
#include "events.h"
#include "io.h"
#include "loop.h"
#include "macro.h"
#include "spec.h"
#include "ttrpc.h"
#include "vmm.h"

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define SHIM_USEC_PER_SEC UINT64_C(1000000)
#define SHIM_AGENT_CALL_TIMEOUT (60 * SHIM_USEC_PER_SEC) /* ordinary agent calls */
#define SHIM_HEALTH_INTERVAL (10 * SHIM_USEC_PER_SEC)     /* liveness probe of the agent */
#define SHIM_HEALTH_TIMEOUT (20 * SHIM_USEC_PER_SEC)
#define SHIM_HEALTH_FAILURES 3       /* consecutive failed probes: the VM is stopped */
#define SHIM_IO_AFTER_EXIT_USEC (10 * SHIM_USEC_PER_SEC) /* output still open after the exit */
#define SHIM_VM_STOP_TIMEOUT (5 * SHIM_USEC_PER_SEC)
#define SHIM_EXIT_UNKNOWN 255

typedef enum shim_proc_state {
    SHIM_PROC_CREATING,
    SHIM_PROC_CREATED,
    SHIM_PROC_RUNNING,
    SHIM_PROC_PAUSED,
    SHIM_PROC_STOPPED,
} shim_proc_state;

typedef struct shim shim;
typedef struct shim_container shim_container;
typedef struct shim_process shim_process;

struct shim_process {
    shim_container *c;
    char *exec_id; /* "" for the init process */
    shim_proc_state state;
    bool busy;     /* a worker is starting, signalling or deleting it */
    bool terminal;
    char *stdin_path, *stdout_path, *stderr_path;
    Grpc__Process *exec_spec; /* an exec's process until its Start */
    shim_io *io;
    bool io_done;
    bool agent_exited; /* WaitProcess answered (or failed) */
    bool waiting;      /* WaitProcess in flight */
    uint32_t wait_call;
    int agent_status;
    int exit_status;
    struct timespec exited_at;
    cc_ttrpc_call **waits; /* parked Task.Wait calls */
    size_t n_waits;
    cc_loop_source *io_timer;
    shim_process *next; /* the container's execs */
};

struct shim_container {
    shim *s;
    char *id;
    char *bundle;
    bool is_sandbox;
    shim_process init;
    shim_process *execs;
    shim_container *next;
};

struct shim {
    cc_loop *loop;
    cc_ttrpc_server *server;
    shim_events *events;
    const shim_args *args;
    char *bundle; /* the first container's bundle (the daemon's cwd) */
    char *exe_dir;
    shim_container *containers;

    /* The VM, once the sandbox's Create started it. */
    vmm_config *config;
    vmm_vm *vm;
    vmm_instance *inst;
    char *state_dir;
    char *sandbox_id;
    int vm_pid;      /* QEMU's pid; kept after it exits (State still reports it) */
    bool vm_started; /* vmm_start succeeded once */
    bool vm_gone;
    bool vm_stopping; /* we asked it to stop */
    cc_ttrpc_client *agent;
    bool agent_ready;

    /* Monitors (loop). */
    cc_loop_source *health_timer;
    unsigned health_failures;
    bool health_inflight;
    bool oom_inflight;

    unsigned workers;  /* worker threads alive */
    unsigned creating; /* Creates between their Task call and their answer */
    bool sandbox_starting; /* the sandbox's Create is on its way */
    bool exiting;
};

/* Seconds on the loop's clock (cc_loop_now), for deadlines and the timings the shim logs. */
static inline double
shim_now_sec(void)
{
    return (double)cc_loop_now() / (double)SHIM_USEC_PER_SEC;
}

/* Moves src into *dst (replacing it; dst may be NULL: src is freed). Returns r. */
static inline int
shim_error_move(cc_error **dst, cc_error *src, int r)
{
    if (dst) {
        cc_error_free(*dst);
        *dst = src;
    } else
        cc_error_free(src);
    return r;
}

/* Frees an unpacked (or malloc-built) protobuf message; NULL-safe. */
static inline void
shim_msg_freep(void *p)
{
    ProtobufCMessage **m = p;
    if (*m)
        protobuf_c_message_free_unpacked(*m, NULL);
}
#define _cleanup_msg_ _cleanup_(shim_msg_freep)

/* --- service.c: the Task service ----------------------------------------------------------- */

int shim_service_register(shim *s, cc_error **err);
/* The daemon's main: serves the listening socket on fd 3 until Shutdown of an empty pod. */
int shim_daemon_main(const shim_args *a);

/* --- worker threads and the loop (worker.c) ------------------------------------------------ */

typedef void (*shim_work_fn)(shim *s, void *arg);
/* Runs fn(s, arg) on a new detached thread (small stack). Loop thread. Aborts on failure to
 * create a thread (like an allocation failure). */
void shim_spawn(shim *s, shim_work_fn fn, void *arg);
/* From a worker: runs fn(s, arg) on the loop thread and returns once it ran; -ESHUTDOWN when
 * the loop is gone (fn did not run). */
int shim_on_loop(shim *s, shim_work_fn fn, void *arg);
/*
 * From a worker: one agent call, waited for. OK: 0 and *ret_resp (NULL when resp_desc is
 * NULL) unpacked. A status: the errno of cc_ttrpc_code_to_errno() and err says "agent
 * <Method>: <status message>"; *ret_code (may be NULL) gets the status code either way.
 */
int shim_agent_call(shim *s, const char *service, const char *method, const ProtobufCMessage *req,
                    const ProtobufCMessageDescriptor *resp_desc, uint64_t timeout_usec,
                    ProtobufCMessage **ret_resp, int *ret_code, cc_error **err);

#define SHIM_AGENT_SERVICE "grpc.AgentService"
#define SHIM_HEALTH_SERVICE "grpc.Health"
#define SHIM_CLOAK_SERVICE "cloak.agent.v1.Agent"

/* --- sandbox.c: the VM and the agent ------------------------------------------------------- */

/*
 * From a worker, for the sandbox's Create: loads the config (options' ConfigPath, else
 * $CLOAK_CONFIG, else /etc/cloak/cloak.toml, else <prefix>/share/cloak/configs/cloak.toml),
 * sizes the VM from the pod's annotations, starts it, connects to the agent and waits until
 * Health.Check answers SERVING (boot_timeout), then CreateSandbox. Logs the time of each step.
 * On failure the VM is stopped and nothing is left.
 */
int shim_sandbox_start(shim *s, const char *config_path, const json_t *config_json,
                       const shim_container_spec *spec, cc_error **err);
/* Writes <state_dir>/shim.pid (our pid), making the state dir (0711) and its parents: how
 * `delete` finds a live daemon of the pod. */
int shim_write_pid_file(const char *state_dir, cc_error **err);
/* Loop thread: stops the VM (asynchronously when it must), frees the agent connection. */
void shim_sandbox_stop(shim *s, const char *why);
/* The same as a shim_on_loop() job: why is the const char * reason. */
void shim_sandbox_stop_job(shim *s, void *why);
/* Loop thread: the state dir and its files are removed once the VM is gone. */
void shim_sandbox_cleanup(shim *s);
/* Loop thread: starts the liveness probe and the OOM event long poll. */
void shim_sandbox_monitor(shim *s);
