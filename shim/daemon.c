/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The daemon: what `start` execs with the pod's listening socket on fd 3
 * (specs/shim-v2-and-ttrpc.md §2.3). Logs go to <bundle>/log, the FIFO containerd copies
 * into its own log.
 */
#define _GNU_SOURCE
#include "fs.h"
#include "json.h"
#include "log.h"
#include "shim.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define LISTEN_FD 3

static int
on_signal(cc_loop_source *src, const struct signalfd_siginfo *si, void *userdata)
{
    shim *s = userdata;
    (void)src;
    cc_log(CC_LOG_INFO, "signal %u: stopping the pod's VM and exiting", si->ssi_signo);
    s->exiting = true;
    cc_loop_exit(s->loop, 0);
    return 0;
}

/* The socket file fd 3 is bound to, or NULL. */
static char *
listen_path(void)
{
    struct sockaddr_un sa;
    socklen_t len = sizeof(sa);
    if (getsockname(LISTEN_FD, (struct sockaddr *)&sa, &len) < 0 || sa.sun_family != AF_UNIX ||
        len <= offsetof(struct sockaddr_un, sun_path) || sa.sun_path[0] != '/')
        return NULL;
    return cc_xstrndup(sa.sun_path, len - offsetof(struct sockaddr_un, sun_path));
}

static char *
exe_dir(void)
{
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
    if (n <= 0)
        return cc_xstrdup("/usr/local/bin");
    buf[n] = 0;
    return cc_xstrdup(dirname(buf));
}

int
shim_daemon_main(const shim_args *a)
{
    /* stderr -> <bundle>/log (containerd holds it open O_RDWR: the open never blocks). */
    int logfd = open("log", O_WRONLY | O_CLOEXEC | O_NONBLOCK);
    if (logfd >= 0) {
        (void)cc_fd_set_nonblock(logfd, false);
        (void)dup2(logfd, STDERR_FILENO);
        cc_close(logfd);
    }
    cc_log_setup("cloak-shim", STDERR_FILENO, a->debug ? CC_LOG_DEBUG : CC_LOG_INFO);
    signal(SIGPIPE, SIG_IGN);
    (void)prctl(PR_SET_CHILD_SUBREAPER, 1);

    _cleanup_error_ cc_error *err = NULL;
    static const int sigs[] = {SIGTERM, SIGINT};
    if (cc_loop_block_signals(sigs, ELEMENTSOF(sigs), &err) < 0) {
        cc_log_error(CC_LOG_ERROR, err, "signals");
        return 1;
    }

    /* The pod's state dir holds shim.pid from the start: `delete` of the sandbox finds us
     * there even when no Create ever came. */
    {
        _cleanup_json_ json_t *config = NULL;
        (void)cc_json_load_file("config.json", 4u << 20, &config, NULL);
        _cleanup_free_ char *dir =
            shim_state_dir(a->address, a->namespace_, shim_group_id(config, a->id));
        if (shim_write_pid_file(dir, &err) < 0) {
            cc_log_error(CC_LOG_WARNING, err, "shim.pid");
            err = cc_error_free(err);
        }
    }

    shim s = {.args = a};
    char cwd[PATH_MAX];
    s.bundle = cc_xstrdup(getcwd(cwd, sizeof(cwd)) ? cwd : ".");
    s.exe_dir = exe_dir();
    _cleanup_free_ char *sock_path = listen_path();
    int r;

    const char *ttrpc_address = getenv("TTRPC_ADDRESS");
    _cleanup_free_ char *events_address =
        ttrpc_address && *ttrpc_address ? cc_xstrdup(ttrpc_address)
                                        : cc_xasprintf("%s.ttrpc", a->address);
    if ((r = cc_loop_new(&s.loop, &err)) < 0 ||
        (r = shim_events_new(s.loop, events_address, a->namespace_, &s.events, &err)) < 0 ||
        (r = cc_ttrpc_server_new(s.loop, &s.server, &err)) < 0 ||
        (r = shim_service_register(&s, &err)) < 0)
        goto out;
    cc_ttrpc_server_set_require_same_user(s.server, true);
    for (size_t i = 0; i < ELEMENTSOF(sigs); i++)
        if ((r = cc_loop_add_signal(s.loop, sigs[i], on_signal, &s, NULL, &err)) < 0)
            goto out;
    if ((r = cc_ttrpc_server_listen_fd(s.server, LISTEN_FD, &err)) < 0)
        goto out;
    cc_log(CC_LOG_INFO, "serving %s (namespace %s, first container %s)",
           sock_path ? sock_path : "fd 3", a->namespace_, a->id);
    r = cc_loop_run(s.loop, &err);

out:
    if (r < 0)
        cc_log_error(CC_LOG_ERROR, err, "shim");
    s.exiting = true;
    /* Containers left (containerd gone, a signal): their VM goes with us. */
    s.server = cc_ttrpc_server_free(s.server);
    s.agent = cc_ttrpc_client_free(s.agent);
    if (s.inst) {
        s.inst = vmm_instance_free(s.inst);
        shim_sandbox_cleanup(&s);
    }
    if (sock_path)
        (void)unlink(sock_path);
    /* Worker threads may still be blocked on the loop: exit without freeing it. */
    _exit(r < 0 ? 1 : 0);
}
