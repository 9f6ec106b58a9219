/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The shim v2 binary contract of containerd 1.6.20 (specs/shim-v2-and-ttrpc.md §2): argv,
 * the `start` and `delete` subcommands, the socket address and the per-pod state directory.
 * The daemon itself (no subcommand) is shim/service.c.
 */
#pragma once

#include "error.h"
#include "macro.h"

#include <jansson.h>
#include <stdbool.h>

/* Where each pod's state lives: <root>/<32 hex>/ (VM files: qmp.sock, agent.sock,
 * console.log, qemu.pid; shim.pid). Short, so unix socket paths below it fit. */
#define SHIM_STATE_ROOT "/run/cloak/shim"
#define SHIM_SOCKET_DIR "/run/containerd/s"

typedef struct shim_args {
    const char *namespace_;     /* -namespace (required) */
    const char *address;        /* -address: containerd's gRPC socket (required) */
    const char *publish_binary; /* -publish-binary */
    const char *id;             /* -id (required) */
    const char *bundle;         /* -bundle; default: the cwd */
    const char *socket;         /* -socket (unused by containerd 1.6) */
    bool debug;                 /* -debug */
    bool version;               /* -v / --version */
    const char *action;         /* "start", "delete", or NULL: the daemon */
} shim_args;

/*
 * Go `flag` syntax: -name value, -name=value, --name value, --name=value; booleans -debug,
 * -debug=true|false, -v; "--" ends the flags; the first non-flag argument is the action
 * (anything after it is ignored, as Go's shim does). Unknown flags, a missing value, an
 * unknown action, and (unless version) a missing -namespace/-id/-address are -EINVAL naming
 * the flag. Strings point into argv.
 */
int shim_args_parse(int argc, char **argv, shim_args *ret, cc_error **err);

/* "unix:///run/containerd/s/<sha256 hex of the path join address/ns/group>" (containerd's
 * shim.SocketAddress: filepath.Join, i.e. cleaned). */
char *shim_socket_address(const char *containerd_address, const char *ns, const char *group);

/* The pod's group: the io.kubernetes.cri.sandbox-id annotation when present and non-empty,
 * else id. */
const char *shim_group_id(const json_t *config, const char *id);

/* SHIM_STATE_ROOT "/<first 32 hex of sha256(address/ns/sandbox id)>" */
char *shim_state_dir(const char *containerd_address, const char *ns, const char *sandbox_id);

/* Removes a state dir made by shim_state_dir() (it must be one), whole; a missing one is
 * success. */
int shim_state_dir_remove(const char *state_dir, cc_error **err);

/*
 * `start` (§2.2, §2.3): reads runtime options from stdin to EOF (kept in
 * <bundle>/cloak-options: the daemon reads the ConfigPath from Create's options anyway),
 * reads <bundle>/config.json for the group, binds and listens on the group's socket (mode
 * 0600; an address in use that answers a connect is the pod's live shim: reuse it; a stale one
 * is unlinked), writes <bundle>/address atomically, forks and execs itself (argv[0] resolved
 * through /proc/self/exe) as the daemon with the socket as fd 3, its own process group,
 * stdio on /dev/null, cwd = bundle; sets the daemon's oom_score_adj to ours + 1 (best effort:
 * containerd's restrict_oom_score_adj machines cannot lower it), prints only the address
 * (nothing on stderr on success) and returns 0. On failure prints the error (containerd shows
 * it) and returns 1.
 */
int shim_cmd_start(const shim_args *a, const char *self_exe);

/*
 * `delete` (§2.4): idempotent, fast, limited to -id. For an app container: nothing on the
 * host (rootfs and files live in the guest). For the pod's sandbox (config.json's
 * container-type, or -id equal to the group): if the pod's daemon still runs
 * (<state>/shim.pid, checked by /proc/<pid>/cmdline naming this binary and -id), SIGKILL it
 * (its QEMU dies with it, PR_SET_PDEATHSIG), then vmm_cleanup() of the state dir, remove it
 * and the group's socket. Prints a serialised containerd.task.v2.DeleteResponse{pid 0,
 * exit_status 137, exited_at now} on stdout and returns 0; warnings go to stderr.
 */
int shim_cmd_delete(const shim_args *a);
