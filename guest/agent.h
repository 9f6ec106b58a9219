/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloak-agent's state: one sandbox, its containers, their processes, the commands (crun) the
 * agent runs, and the RPC server. Everything runs on one cc_loop thread; handlers never
 * block on a child process: crun runs as a child whose exit the reaper reports back.
 *
 * Trust: every RPC field is attacker input. Each handler is decode -> validate -> act, and a
 * request that fails validation changes nothing. Paths the host names live below
 * AGENT_GUEST_BASE and are resolved component by component without following symlinks.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cmdline.h"
#include "error.h"
#include "loop.h"
#include "ttrpc.h"

#include "kata/agent.pb-c.h"
#include "kata/oci.pb-c.h"

/* Where the host may put files (CopyFile) and mount storages, as in Kata. */
#define AGENT_GUEST_BASE "/run/kata-containers"
/* Agent-private state: bundles, crun's state. Not reachable through any RPC path. */
#define AGENT_STATE_DIR "/run/cloak"
/* The pause bundle baked into the guest image. */
#define AGENT_PAUSE_BUNDLE "/pause_bundle"

/* Limits on host input. */
#define AGENT_ID_MAX 128             /* container, exec and sandbox ids */
#define AGENT_STORAGES_MAX 64        /* per request */
#define AGENT_READ_MAX (1u << 20)    /* ReadStdout/ReadStderr answer at most this much */
#define AGENT_READ_DEFAULT (32u << 10) /* ... and this much when len is 0 */
#define AGENT_COPY_FILE_MAX (1ull << 32) /* CopyFile file_size */
#define AGENT_STDIN_QUEUED_MAX (4u << 20) /* WriteStdin bytes waiting for a full pipe */
#define AGENT_PULLS_MAX 16           /* CreateContainer calls waiting for their image */

typedef struct agent agent;
typedef struct agent_container agent_container;
typedef struct agent_process agent_process;
typedef struct agent_stream agent_stream;

/* Options for the agent itself: PID 1 in a guest, or a plain process (tests on the host). */
typedef struct agent_options {
    bool init;              /* PID 1: power off after DestroySandbox, set the clock, ... */
    const char *crun;       /* crun binary; default "/usr/bin/crun" */
    const char *base;       /* AGENT_GUEST_BASE unless testing */
    const char *state_dir;  /* AGENT_STATE_DIR unless testing */
    const char *pause_bundle; /* AGENT_PAUSE_BUNDLE unless testing */
    const char *cgroup_root; /* NULL: "/sys/fs/cgroup" (tests: a fake cgroup tree) */
} agent_options;

/* --- commands (crun) ------------------------------------------------------------------------ */

/*
 * A command finished: status is the wait status (waitpid), output what it wrote to its
 * stderr file (at most 4 KiB, NUL-terminated, "" when none). Runs on the loop.
 */
typedef void (*agent_cmd_fn)(agent *a, int status, const char *output, void *userdata);

/*
 * Starts argv[0] (absolute) with stdio fds stdio[0..2] (-1: /dev/null; borrowed: dup'ed into
 * the child), default signal dispositions and an empty signal mask, no other fds. Its stderr
 * goes to a log file when stdio[2] is -1, which becomes `output`. fn is called exactly once,
 * when it exits (not when agent_free runs first).
 */
int agent_cmd_start(agent *a, char *const argv[], const int stdio[3], agent_cmd_fn fn,
                    void *userdata, cc_error **err);

/* An exit of pid that the reaper saw before anybody claimed pid: true and *ret_status. */
bool agent_take_unclaimed(agent *a, pid_t pid, int *ret_status);

/* Human-readable "exited with status 1" / "killed by signal 9" for a wait status. */
const char *agent_wait_status_to_string(int status, char *buf, size_t size);

/* The exit status Kata reports for a wait status: the exit code, or 128 + signal. */
int agent_wait_status_to_exit_code(int status);

/* --- processes and streams ---------------------------------------------------------------- */

struct agent_stream {
    agent_process *proc;
    int fd;                 /* the agent's end of the pipe; -1 once closed */
    bool input;             /* stdin: the agent writes */
    bool eof;               /* output: read returned 0 */
    size_t queued;          /* input: bytes of queued WriteStdin calls not written yet */
    cc_loop_source *source;
    /* queued calls: ReadStdout/ReadStderr waiting for data, or WriteStdin waiting for room */
    struct agent_stream_call *head, *tail;
};

struct agent_process {
    agent_container *container;
    agent_process *next;    /* in container->execs */
    char *exec_id;
    pid_t pid;              /* 0 until known */
    bool exited;
    int exit_code;          /* agent_wait_status_to_exit_code() */
    agent_stream in, out, err;
    int tty;                /* terminal master (also in.fd/out.fd), -1 without a terminal */
    struct agent_waiter *waiters; /* WaitProcess calls */
    struct agent_stdio_call *stdio_head; /* ReadStdio calls waiting */
};

typedef enum agent_container_state {
    AGENT_CONTAINER_CREATING, /* crun create running */
    AGENT_CONTAINER_CREATED,
    AGENT_CONTAINER_STARTING, /* crun start running */
    AGENT_CONTAINER_RUNNING,
    AGENT_CONTAINER_STOPPED,
    AGENT_CONTAINER_REMOVING,
} agent_container_state;

const char *agent_container_state_to_string(agent_container_state s);

struct agent_container {
    agent *agent;
    agent_container *next;
    char *id;
    agent_container_state state;
    bool sandbox;           /* the pause container */
    agent_process *init;
    agent_process *execs;   /* ExecProcess'ed processes, newest first */
    char *bundle;           /* <state_dir>/bundles/<id> */
    char **mounts;          /* storage mount points it owns, in mount order */
    size_t n_mounts;
    cc_ttrpc_call *pending_call;   /* StartContainer waiting for crun start */
    /* removal in progress: */
    void (*remove_done)(agent_container *c, int r, void *userdata);
    void *remove_userdata;
    cc_loop_source *remove_timer;
    bool delete_done;
    bool delete_running;    /* crun delete has not exited yet: it still points to us */
    bool removed;           /* unlinked and answered; freed once crun delete exits */
    bool remove_requested;  /* removal asked for while crun create/start ran */
    void *oom;              /* ops.c: the memory.events watch */
    bool paused;            /* ops.c: PauseContainer froze its cgroup (ResumeContainer thaws) */
    uint32_t remove_timeout;
    unsigned n_execs;       /* in execs */
};

/* --- the agent ------------------------------------------------------------------------------ */

struct agent {
    cc_loop *loop;
    cc_ttrpc_server *server;
    agent_options opts;
    agent_boot_config boot;
    int base_fd;            /* O_PATH|O_DIRECTORY of opts.base */
    int state_fd;           /* O_PATH|O_DIRECTORY of opts.state_dir */
    bool sandbox_created;
    char *sandbox_id;
    char **sandbox_mounts;
    size_t n_sandbox_mounts;
    bool destroying;
    agent_container *containers;
    struct agent_child *children;   /* commands running */
    struct agent_exit *unclaimed;   /* exits of pids nobody claimed yet (bounded) */
    size_t n_unclaimed;
    cc_loop_source *sigchld;
    unsigned console_seq;   /* names console sockets */
    void *oom_state;        /* ops.c: OOM events not yet fetched, GetOOMEvent calls waiting */
    void *images;           /* image.c: the sandbox's layer store */
    struct agent_pending *pending; /* CreateContainer calls waiting for their image */
    /* the channel to the host */
    char *serial_path;      /* /dev/vportNpM */
    int serial_fd;          /* kept open while waiting for the host; -1 if none */
    cc_loop_source *serial_wait; /* SIGIO/timer source while disconnected */
    cc_loop_source *serial_timer;
};

int agent_new(cc_loop *loop, const agent_options *opts, const agent_boot_config *boot,
              agent **ret, cc_error **err);
agent *agent_free(agent *a);
CC_DEFINE_CLEANUP(agent, agent_free)

/* Registers grpc.AgentService and grpc.Health on a->server (rpc.c). */
int agent_rpc_register(agent *a, cc_error **err);

/* The channel (channel.c): serve the virtio-serial port named name (reconnecting forever),
 * listen on vsock port, or listen on a unix socket path (tests). */
int agent_channel_serial(agent *a, const char *name, cc_error **err);
int agent_channel_vsock(agent *a, unsigned port, cc_error **err);
int agent_channel_unix(agent *a, const char *path, cc_error **err);

/* "uptime=1.23s cpu=40ms rss=456KiB hwm=789KiB": the guest's uptime and the agent's memory, for logs. */
const char *agent_stats_string(char *buf, size_t size);

/* After the last reply went out: power off (init) or leave the loop. */
void agent_shutdown_later(agent *a);

/* --- containers (container.c) ---------------------------------------------------------------- */

agent_container *agent_container_find(agent *a, const char *id);
/* True while a CreateContainer of id waits for its image. */
bool agent_container_pending(agent *a, const char *id);
/* Frees c without touching the system (agent_free). */
void agent_container_free(agent_container *c);
/* The process exec_id of container c ("" or the container id: its init process). */
agent_process *agent_process_find(agent_container *c, const char *exec_id);

/* A child pid exited (from the reaper): returns true when it was a container process. */
bool agent_process_exited(agent *a, pid_t pid, int status);

/*
 * Creates container id from a validated request: mounts its storages, writes the bundle,
 * runs crun create; completes call. On any failure, everything done is undone.
 */
void agent_container_create(agent *a, cc_ttrpc_call *call, const Grpc__CreateContainerRequest *req);
void agent_container_start(agent_container *c, cc_ttrpc_call *call);
/* Kills what runs, crun delete, unmounts, removes the bundle and frees c; then done(r). */
void agent_container_remove(agent_container *c, uint32_t timeout_sec,
                            void (*done)(agent_container *c, int r, void *userdata),
                            void *userdata);

/* Processes (container.c): new one of c (not linked anywhere), free (fails its calls). */
agent_process *agent_process_new(agent_container *c, const char *exec_id);
void agent_process_free(agent_process *p);
/* p exited with wait status status: answers its waiters. */
void agent_process_set_exited(agent_process *p, int status);
/* Takes in_fd (written by the agent), out_fd, err_fd (read; -1: none, at EOF). */
int agent_process_set_streams(agent *a, agent_process *p, int in_fd, int out_fd, int err_fd,
                              cc_error **err);
/* cloak.agent.v1 ReadStdio: up to max bytes of stdout and stderr (0: 1 MiB, at most 3 MiB). */
void agent_process_read_stdio(agent_process *p, cc_ttrpc_call *call, size_t max);
/* crun helpers: "<crun> --root=... --log=file:<bundle>/crun.log CMD [A1..A4] <id>" (truncates
 * the log; free it with cc_json_strv_free()); the last line of the log (or fallback). */
char **agent_crun_argv(agent_container *c, const char *cmd, const char *a1, const char *a2,
                       const char *a3, const char *a4);
char *agent_crun_log_message(agent_container *c, const char *fallback);
/* A removal was requested while crun ran for c (create, start, an exec): do it now if
 * nothing runs any more. */
void agent_container_remove_if_requested(agent_container *c);

/* Terminals (exec.c): a unix socket for crun's --console-socket (path below the state dir),
 * and the terminal master crun sent on it (call once crun has exited). Then
 * agent_process_attach_tty() makes the master the process's stdin and stdout. */
int agent_console_listen(agent *a, char **ret_path, int *ret_fd, cc_error **err);
int agent_console_receive(int listen_fd, int *ret_master, cc_error **err);
int agent_process_attach_tty(agent *a, agent_process *p, int master, cc_error **err);

/* Streams (container.c). */
void agent_stream_read(agent_stream *s, cc_ttrpc_call *call, size_t len);
void agent_stream_write(agent_stream *s, cc_ttrpc_call *call, const uint8_t *data, size_t len);
void agent_stream_close(agent_stream *s);
void agent_process_wait(agent_process *p, cc_ttrpc_call *call);

/* --- storages (storage.c) ------------------------------------------------------------------- */

/* Checks every storage of a request (driver, options, mount point) without touching anything.
 * field: "storages" (names "storages[2].mount_point" in errors). */
int agent_storages_validate(agent *a, Grpc__Storage *const *st, size_t n, const char *field,
                            cc_error **err);
/* Mounts them in order; on failure unmounts what it mounted. *ret: the mount points
 * (absolute), for agent_storages_unmount(). *ret_sandbox: a storage was the pause image. */
struct agent_image_layers;
int agent_storages_mount(agent *a, Grpc__Storage *const *st, size_t n,
                         const struct agent_image_layers *layers, const char *container_id,
                         char ***ret, size_t *ret_n, bool *ret_sandbox, cc_error **err);
/* The storage of a request that pulls an image (not the pause), or NULL. */
const Grpc__Storage *agent_storages_find_image(Grpc__Storage *const *st, size_t n);
/* Unmounts (lazily) and removes the mount point directories, in reverse order; frees mounts. */
void agent_storages_unmount(agent *a, char **mounts, size_t n);

/* --- validation (validate.c) --------------------------------------------------------------- */

/* A container, exec or sandbox id: [A-Za-z0-9][A-Za-z0-9_.-]*, at most AGENT_ID_MAX. */
int agent_validate_id(const char *id, const char *field, bool allow_empty, cc_error **err);
/*
 * path must be absolute, below a->opts.base, with no "", "." or ".." component. On success
 * *ret_rel points into path at the part below the base ("" for the base itself is refused).
 */
int agent_validate_guest_path(agent *a, const char *path, const char *field, const char **ret_rel,
                              cc_error **err);
/*
 * Opens (creating missing directories with mode) rel below dir_fd, one component at a time,
 * never following a symlink (-EINVAL naming the component). *ret_fd: O_PATH|O_DIRECTORY.
 */
int agent_mkdir_nofollow(int dir_fd, const char *rel, mode_t mode, bool create, int *ret_fd,
                         cc_error **err);
/* A process (the spec's, or ExecProcess's); field names it in errors ("process"). */
int agent_validate_process(const Grpc__Process *p, const char *field, cc_error **err);
/* The OCI spec of a CreateContainer: everything crun will be given. */
int agent_validate_spec(agent *a, const Grpc__Spec *spec, cc_error **err);

/* --- handlers outside rpc.c (all cc_ttrpc_handler_fn; userdata is the agent) ---------------- */

#define AGENT_HANDLER(name) void name(cc_ttrpc_call *call, const uint8_t *buf, size_t len, void *userdata)
/* ops.c: grpc.AgentService */
AGENT_HANDLER(agent_rpc_stats_container);
AGENT_HANDLER(agent_rpc_pause_container);
AGENT_HANDLER(agent_rpc_resume_container);
AGENT_HANDLER(agent_rpc_update_container);
AGENT_HANDLER(agent_rpc_get_oom_event);
AGENT_HANDLER(agent_rpc_online_cpu_mem);
/* ops.c: cloak.agent.v1.Agent */
AGENT_HANDLER(agent_rpc_list_processes);
/* network.c: grpc.AgentService */
AGENT_HANDLER(agent_rpc_update_interface);
AGENT_HANDLER(agent_rpc_update_routes);
AGENT_HANDLER(agent_rpc_list_interfaces);
AGENT_HANDLER(agent_rpc_list_routes);
/* exec.c: grpc.AgentService, and cloak.agent.v1.Agent ReadStdio */
AGENT_HANDLER(agent_rpc_exec_process);
AGENT_HANDLER(agent_rpc_tty_win_resize);
AGENT_HANDLER(agent_rpc_read_stdio);

/* ops.c: watch c's cgroup for OOM kills once crun created it (errors are logged), and stop. */
void agent_oom_watch(agent_container *c);
void agent_oom_unwatch(agent_container *c);
/* ops.c: frees a->oom_state, failing waiting calls. */
void agent_oom_free(agent *a);
/* The container's cgroup directory in the guest ("/sys/fs/cgroup/cloak/<id>", below
 * opts.cgroup_root when set); caller frees. */
char *agent_container_cgroup(agent_container *c);

/* ops.c internals, for the unit tests. dir_fd: the cgroup v2 directory (borrowed). */
/* Reads the cgroup's statistics into a new message (free: protobuf_c_message_free_unpacked).
 * Missing files count as 0 (memory.peak, memory.swap.*, io.stat ...). */
int agent_cgroup_stats(int dir_fd, Grpc__CgroupStats **ret, cc_error **err);
/* Checks r (errors name the field: "resources.Memory.Limit: ...") and writes the cgroup files it
 * sets; on a failed write restores what it wrote before. Ignored fields are logged (debug). */
int agent_cgroup_update(int dir_fd, const Grpc__LinuxResources *r, cc_error **err);
/* cpu.shares (2..262144) -> cpu.weight (1..10000) as runc and crun convert; 0 stays 0. */
uint64_t agent_cpu_shares_to_weight(uint64_t shares);
/* A cpuset list: "" or N[-M](,N[-M])* with N <= M < 8192. */
int agent_validate_cpuset(const char *s, const char *field, cc_error **err);
/* The value of key in a flat-keyed cgroup file ("oom_kill 3\n..."); -ENOENT when absent. */
int agent_cgroup_flat_key(const char *text, const char *key, uint64_t *ret);

/* rpc.c helpers for handlers elsewhere: unpack with cleanup, find a process. */
void agent_msg_freep(void *p);
#define _cleanup_msg_ _cleanup_(agent_msg_freep)
/* In a handler: unpacks the request (NULL: the call was answered already). */
#define UNPACK(type, desc) ((type *)cc_ttrpc_call_unpack(call, &(desc), buf, len))
/* Logs "<method>: <error>" and answers the call with e. */
void agent_rpc_fail(cc_ttrpc_call *call, const char *method, const cc_error *e);
bool agent_find_process(agent *a, cc_ttrpc_call *call, const char *cid, const char *eid,
                        agent_container **ret_c, agent_process **ret_p);

/* --- networking (network.c) ------------------------------------------------------------- */

#define AGENT_MTU_MIN 68u
#define AGENT_MTU_MAX 65535u
#define AGENT_IP_ADDRESSES_MAX 64u   /* per UpdateInterface */
#define AGENT_ROUTES_MAX 1024u       /* per UpdateRoutes */

/* Checks an UpdateInterface's interface without touching anything: hwAddr (MAC) or device or
 * name, mtu, the addresses. -EINVAL naming the field ("interface.IPAddresses[1].mask: ..."). */
int agent_interface_validate(const Types__Interface *iface, cc_error **err);
/* Checks an UpdateRoutes' routes ("routes.Routes[2].gateway: ..."). */
int agent_routes_validate(Types__Route *const *routes, size_t n, cc_error **err);
/*
 * The RPCs' actions on the calling thread's network namespace (blocking rtnetlink requests;
 * they validate first). Results are allocated; free them with
 * protobuf_c_message_free_unpacked(&x->base, NULL). A link not found: -ENOENT.
 */
int agent_interface_update(const Types__Interface *iface, Types__Interface **ret, cc_error **err);
int agent_routes_update(Types__Route *const *routes, size_t n, Grpc__Routes **ret,
                        cc_error **err);
int agent_interfaces_list(Grpc__Interfaces **ret, cc_error **err);
int agent_routes_list(Grpc__Routes **ret, cc_error **err);

/* --- CopyFile (copyfile.c) ------------------------------------------------------------------ */
int agent_copy_file(agent *a, const Grpc__CopyFileRequest *req, cc_error **err);
