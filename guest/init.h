/* SPDX-License-Identifier: Apache-2.0 */
/*
 * PID 1 bring-up of the guest (no udev, no systemd), in two stages:
 *
 *   1. agent_init_switch_root(): from the initramfs (rootfs, which crun cannot pivot_root
 *      away from), copy everything into a tmpfs, free the old rootfs and re-exec /init
 *      there with CLOAK_AGENT_STAGE=2 in the environment;
 *   2. agent_init_system(): the API file systems, cgroup2, the kernel modules of
 *      /lib/modules/cloak.list, the boot configuration from /proc/cmdline, the network.
 *
 * Both block (file system, module loading, waiting up to AGENT_INIT_NET_WAIT_MS for the
 * network interface) and are meant for PID 1 only.
 */
#pragma once

#include "cmdline.h"
#include "error.h"
#include "macro.h"

/* The environment variable set for stage 2, and its value. */
#define AGENT_INIT_STAGE_ENV "CLOAK_AGENT_STAGE"
#define AGENT_INIT_STAGE_2 "2"
/* Where the module list lives in the image (one absolute .ko path a line, in load order). */
#define AGENT_INIT_MODULE_LIST "/lib/modules/cloak.list"
/* How long stage 2 waits for the network interface to appear. */
#define AGENT_INIT_NET_WAIT_MS 5000

/* True when this process is stage 2 (CLOAK_AGENT_STAGE=2 in the environment). */
bool agent_init_is_stage2(void);

/*
 * Stage 1. Mounts devtmpfs on /dev and reopens fds 0, 1, 2 on /dev/console, mounts /proc
 * and /sys, copies the initramfs tree (modes, owners, times, symlinks, device nodes; hard
 * links become separate files) into a fresh tmpfs, deletes the old rootfs contents (like
 * busybox switch_root; failures to delete are only logged at debug), moves /dev /proc /sys
 * into the tmpfs, makes it / and execv()s "/init" with argv and CLOAK_AGENT_STAGE=2.
 * Returns 0 at once in stage 2 (nothing to do); otherwise returns only on error: -EPERM when
 * not PID 1 or / is not a ramfs/tmpfs (refuses to touch a real root), or the failing step's
 * error. After the old rootfs has been emptied a failure cannot be undone: treat it as fatal.
 */
int agent_init_switch_root(char **argv, cc_error **err);

/*
 * Stage 2. Makes sure /dev (devtmpfs), /proc and /sys are mounted (idempotent), then mounts
 * /dev/pts (devpts newinstance, ptmxmode=0666, with /dev/ptmx -> pts/ptmx), /dev/shm (tmpfs
 * 1777), /sys/fs/cgroup (cgroup2; +cpu +memory +pids +io in the root's subtree_control, an
 * unavailable one only logged at debug), /run (tmpfs 0755), /tmp (tmpfs 1777); creates the
 * /dev/fd, /dev/stdin, /dev/stdout, /dev/stderr symlinks; loads the modules of
 * AGENT_INIT_MODULE_LIST in order with finit_module (EEXIST is fine: built in or loaded; a
 * missing list or a failing module is an error naming it); sets the hostname to "cloak" when
 * it is "(none)"; parses /proc/cmdline into *cfg (written only on success); brings lo up and,
 * when cfg->net, waits for the first other interface (AGENT_INIT_NET_WAIT_MS, -ETIMEDOUT),
 * sets it up with the address and, when cfg->net_gateway is not 0.0.0.0, the default route.
 * The caller applies cfg->log_level (cc_log_set_level) and picks the channel.
 * Returns 0 or a negative errno.
 */
int agent_init_system(agent_boot_config *cfg, cc_error **err);

/*
 * For PID 1 on a fatal error: logs "what" and e's message at error level, sync()s and
 * powers off. Never returns: if reboot(2) fails it sleeps forever (PID 1 must not exit).
 */
_noreturn_ void agent_init_fatal(const char *what, const cc_error *e);
