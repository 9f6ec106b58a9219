/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
/*
 * The agent object: the reaper (PID 1 reaps every orphan in the guest), the commands it runs
 * (crun), and shutdown.
 *
 * Reaping. SIGCHLD arrives through the loop; the handler reaps everything with
 * waitpid(-1, WNOHANG) and hands each exit to whoever owns the pid: a command started with
 * agent_cmd_start(), a container process (its init is an orphan of `crun create`, reparented
 * to us), or nobody. Exits nobody owns yet are kept in a small list because a container's
 * pid is only learned after `crun create` exits, and agent_process_exited() is asked again
 * then (see claim in container.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"
#include "fs.h"
#include "log.h"
#include "util.h"

extern char **environ;

#define UNCLAIMED_MAX 256
#define CMD_OUTPUT_MAX 4096

struct agent_child {
    struct agent_child *next;
    pid_t pid;
    int log_fd;             /* the command's stderr file, unlinked; -1 if stderr was given */
    agent_cmd_fn fn;
    void *userdata;
};

struct agent_exit {
    struct agent_exit *next;
    pid_t pid;
    int status;
};

const char *
agent_wait_status_to_string(int status, char *buf, size_t size)
{
    if (WIFEXITED(status))
        snprintf(buf, size, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, size, "killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    else
        snprintf(buf, size, "wait status 0x%x", (unsigned)status);
    return buf;
}

int
agent_wait_status_to_exit_code(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return 255;
}

static void
child_finish(agent *a, struct agent_child *c, int status)
{
    char out[CMD_OUTPUT_MAX + 1] = "";

    if (c->log_fd >= 0) {
        ssize_t n = pread(c->log_fd, out, CMD_OUTPUT_MAX, 0);
        if (n > 0) {
            out[n] = '\0';
            /* one line for logs and error messages: trailing newlines go */
            while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r'))
                out[--n] = '\0';
        }
        c->log_fd = cc_close(c->log_fd);
    }
    c->fn(a, status, out, c->userdata);
    free(c);
}

static void
remember_unclaimed(agent *a, pid_t pid, int status)
{
    struct agent_exit *e = cc_xzalloc(sizeof(*e));
    e->pid = pid;
    e->status = status;
    e->next = a->unclaimed;
    a->unclaimed = e;
    if (++a->n_unclaimed > UNCLAIMED_MAX) {
        /* drop the oldest (the list's tail) */
        struct agent_exit **pp = &a->unclaimed;
        while ((*pp)->next)
            pp = &(*pp)->next;
        free(*pp);
        *pp = NULL;
        a->n_unclaimed--;
    }
}

bool
agent_take_unclaimed(agent *a, pid_t pid, int *ret_status)
{
    for (struct agent_exit **pp = &a->unclaimed; *pp; pp = &(*pp)->next) {
        if ((*pp)->pid == pid) {
            struct agent_exit *e = *pp;
            *ret_status = e->status;
            *pp = e->next;
            free(e);
            a->n_unclaimed--;
            return true;
        }
    }
    return false;
}

static int
on_sigchld(cc_loop_source *s, const struct signalfd_siginfo *si, void *userdata)
{
    agent *a = userdata;
    (void)s;
    (void)si;

    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid < 0 && errno == EINTR)
            continue;
        if (pid <= 0)
            break;

        struct agent_child **pp = &a->children;
        while (*pp && (*pp)->pid != pid)
            pp = &(*pp)->next;
        if (*pp) {
            struct agent_child *c = *pp;
            *pp = c->next;
            child_finish(a, c, status);
            continue;
        }
        if (agent_process_exited(a, pid, status))
            continue;
        remember_unclaimed(a, pid, status);
    }
    return 0;
}

int
agent_cmd_start(agent *a, char *const argv[], const int stdio[3], agent_cmd_fn fn, void *userdata,
                cc_error **err)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, all;
    _cleanup_close_ int log_fd = -EBADF;
    pid_t pid;
    int r;

    if (stdio[2] < 0) {
        log_fd = open(a->opts.state_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (log_fd < 0)
            return cc_error_set(err, -errno, "%s: cannot create a log file for %s",
                                a->opts.state_dir, argv[0]);
    }

    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    for (int i = 0; i < 3; i++) {
        if (stdio[i] >= 0)
            posix_spawn_file_actions_adddup2(&fa, stdio[i], i);
        else if (i == 2)
            posix_spawn_file_actions_adddup2(&fa, log_fd, 2);
        else
            posix_spawn_file_actions_addopen(&fa, i, "/dev/null", i == 0 ? O_RDONLY : O_WRONLY, 0);
    }
    r = posix_spawn(&pid, argv[0], &fa, &attr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (r != 0)
        return cc_error_set(err, -r, "cannot run %s", argv[0]);

    struct agent_child *c = cc_xzalloc(sizeof(*c));
    c->pid = pid;
    c->log_fd = TAKE_FD(log_fd);
    c->fn = fn;
    c->userdata = userdata;
    c->next = a->children;
    a->children = c;
    cc_log(CC_LOG_DEBUG, "started %s %s (pid %d)", argv[0], argv[1] ? argv[1] : "", (int)pid);
    return 0;
}

static int
open_dir(const char *path, int *ret, cc_error **err)
{
    int fd;

    if (mkdir(path, 0700) < 0 && errno != EEXIST)
        return cc_error_set(err, -errno, "cannot create %s", path);
    fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return cc_error_set(err, -errno, "cannot open %s", path);
    *ret = fd;
    return 0;
}

int
agent_new(cc_loop *loop, const agent_options *opts, const agent_boot_config *boot, agent **ret,
          cc_error **err)
{
    _cleanup_(agent_freep) agent *a = cc_xzalloc(sizeof(*a));
    int r;

    a->loop = loop;
    a->opts = *opts;
    if (!a->opts.crun)
        a->opts.crun = "/usr/bin/crun";
    if (!a->opts.base)
        a->opts.base = AGENT_GUEST_BASE;
    if (!a->opts.state_dir)
        a->opts.state_dir = AGENT_STATE_DIR;
    if (!a->opts.pause_bundle)
        a->opts.pause_bundle = AGENT_PAUSE_BUNDLE;
    if (boot)
        a->boot = *boot;
    a->base_fd = -EBADF;
    a->state_fd = -EBADF;
    a->serial_fd = -EBADF;

    /* Not PID 1 (tests): become the reaper of crun's orphans all the same. */
    if (!a->opts.init && prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
        return cc_error_set(err, -errno, "PR_SET_CHILD_SUBREAPER");

    r = open_dir(a->opts.base, &a->base_fd, err);
    if (r < 0)
        return r;
    r = open_dir(a->opts.state_dir, &a->state_fd, err);
    if (r < 0)
        return r;
    if (mkdirat(a->state_fd, "bundles", 0700) < 0 && errno != EEXIST)
        return cc_error_set(err, -errno, "cannot create %s/bundles", a->opts.state_dir);

    r = cc_loop_add_signal(loop, SIGCHLD, on_sigchld, a, &a->sigchld, err);
    if (r < 0)
        return r;
    r = cc_ttrpc_server_new(loop, &a->server, err);
    if (r < 0)
        return r;
    r = agent_rpc_register(a, err);
    if (r < 0)
        return r;

    *ret = TAKE_PTR(a);
    return 0;
}

agent *
agent_free(agent *a)
{
    if (!a)
        return NULL;
    a->server = cc_ttrpc_server_free(a->server);
    agent_oom_free(a);
    while (a->containers) {
        agent_container *c = a->containers;
        a->containers = c->next;
        agent_container_free(c);
    }
    while (a->children) {
        struct agent_child *c = a->children;
        a->children = c->next;
        cc_close(c->log_fd);
        free(c);
    }
    while (a->unclaimed) {
        struct agent_exit *e = a->unclaimed;
        a->unclaimed = e->next;
        free(e);
    }
    for (size_t i = 0; i < a->n_sandbox_mounts; i++)
        free(a->sandbox_mounts[i]);
    free(a->sandbox_mounts);
    free(a->sandbox_id);
    cc_loop_source_free(a->sigchld);
    cc_loop_source_free(a->serial_wait);
    cc_loop_source_free(a->serial_timer);
    free(a->serial_path);
    cc_close(a->serial_fd);
    cc_close(a->base_fd);
    cc_close(a->state_fd);
    free(a);
    return NULL;
}

const char *
agent_stats_string(char *buf, size_t size)
{
    _cleanup_free_ char *up = NULL, *status = NULL;
    long rss = -1, hwm = -1;

    (void)cc_read_file("/proc/uptime", 256, &up, NULL, NULL);
    if (cc_read_file("/proc/self/status", 1u << 16, &status, NULL, NULL) == 0) {
        const char *p;
        if ((p = strstr(status, "VmRSS:")))
            rss = strtol(p + 6, NULL, 10);
        if ((p = strstr(status, "VmHWM:")))
            hwm = strtol(p + 6, NULL, 10);
    }
    /* CPU time used so far (utime + stime, fields 14 and 15 of /proc/self/stat) */
    _cleanup_free_ char *stat = NULL;
    unsigned long long ut = 0, st = 0;
    if (cc_read_file("/proc/self/stat", 4096, &stat, NULL, NULL) == 0) {
        const char *p = strrchr(stat, ')');
        if (p)
            (void)sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st);
    }
    long hz = sysconf(_SC_CLK_TCK);
    snprintf(buf, size, "uptime=%.2fs cpu=%llums rss=%ldKiB hwm=%ldKiB",
             up ? strtod(up, NULL) : -1.0, hz > 0 ? (ut + st) * 1000 / (unsigned long long)hz : 0,
             rss, hwm);
    return buf;
}

static int
on_shutdown_timer(cc_loop_source *s, uint64_t deadline, void *userdata)
{
    agent *a = userdata;
    (void)deadline;

    cc_loop_source_free(s);
    if (a->opts.init) {
        char stats[128];
        cc_log(CC_LOG_INFO, "sandbox destroyed: powering off (%s)",
               agent_stats_string(stats, sizeof(stats)));
        sync();
        reboot(RB_POWER_OFF);
        cc_log_errno(CC_LOG_ERROR, -errno, "reboot(RB_POWER_OFF)");
        return 0;
    }
    cc_log(CC_LOG_INFO, "sandbox destroyed: exiting");
    cc_loop_exit(a->loop, 0);
    return 0;
}

void
agent_shutdown_later(agent *a)
{
    _cleanup_error_ cc_error *e = NULL;

    /* Give the loop time to write the last answer to the host before the VM goes away. */
    if (cc_loop_add_timer(a->loop, 200 * 1000, 0, on_shutdown_timer, a, NULL, &e) < 0) {
        cc_log_error(CC_LOG_ERROR, e, "cannot schedule the shutdown");
        on_shutdown_timer(NULL, 0, a);
    }
}
