/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
/*
 * The channel to the host.
 *
 * virtio-serial: the port named "agent.0" (/sys/class/virtio-ports/vportNpM/name) is opened
 * once and kept open. Whether the host side is connected shows in poll(): POLLHUP while it is
 * not (reads then return 0 at once, so watching the port then would spin). While connected,
 * a dup of the port is served as one ttrpc connection; when the host goes away the server
 * closes the dup (dropping the frame decoder's state) and we wait for the host again: the
 * port raises SIGIO (O_ASYNC) when the host opens it, and a 1 s timer re-checks in case a
 * signal was missed. Nothing spins.
 *
 * vsock: a listening socket on the port; every connection is served.
 * unix: the same on a unix socket (tests on the host).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

#include "agent.h"
#include "fs.h"
#include "log.h"
#include "util.h"

#define PORT_WAIT_USEC (20ull * 1000 * 1000)
#define RECHECK_USEC (1000ull * 1000)

static int serial_try_connect(agent *a);


/* /dev/<vportNpM> of the port called name, or -ENOENT. */
static int
find_port(const char *name, char **ret)
{
    _cleanup_(closedirp) DIR *d = opendir("/sys/class/virtio-ports");
    struct dirent *de;

    if (!d)
        return -errno;
    while ((de = readdir(d))) {
        char path[300];
        _cleanup_free_ char *text = NULL;
        size_t len;

        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "/sys/class/virtio-ports/%s/name", de->d_name);
        if (cc_read_file(path, 256, &text, &len, NULL) < 0)
            continue;
        while (len > 0 && text[len - 1] == '\n')
            text[--len] = '\0';
        if (cc_streq(text, name)) {
            *ret = cc_xasprintf("/dev/%s", de->d_name);
            return 0;
        }
    }
    return -ENOENT;
}

static void
on_serial_disconnect(cc_ttrpc_server *server, int error, void *userdata)
{
    agent *a = userdata;
    char stats[128];
    (void)server;
    agent_stats_string(stats, sizeof(stats));
    if (error < 0)
        cc_log_errno(CC_LOG_WARNING, error, "host connection failed; waiting for the host (%s)",
                     stats);
    else
        cc_log(CC_LOG_INFO, "host disconnected; waiting for the host (%s)", stats);
    (void)serial_try_connect(a);
}

/* Serves the port if the host is connected; otherwise leaves the wake-up sources armed. */
static int
serial_try_connect(agent *a)
{
    _cleanup_error_ cc_error *e = NULL;
    struct pollfd p = {.fd = a->serial_fd, .events = POLLIN};
    int fd, r;

    if (cc_ttrpc_server_get_n_connections(a->server) > 0)
        return 0; /* serving already */
    r = poll(&p, 1, 0);
    if (r < 0)
        return -errno;
    if (p.revents & POLLHUP)
        return 0; /* host not there: SIGIO or the timer brings us back */
    fd = fcntl(a->serial_fd, F_DUPFD_CLOEXEC, 3);
    if (fd < 0)
        return cc_log_errno(CC_LOG_ERROR, -errno, "dup");
    r = cc_ttrpc_server_serve_fd(a->server, fd, on_serial_disconnect, a, &e);
    if (r < 0) {
        close(fd);
        return cc_log_error(CC_LOG_ERROR, e, "cannot serve %s", a->serial_path);
    }
    char stats[128];
    cc_log(CC_LOG_INFO, "host connected on %s (%s)", a->serial_path,
           agent_stats_string(stats, sizeof(stats)));
    return 0;
}

static int
on_sigio(cc_loop_source *s, const struct signalfd_siginfo *si, void *userdata)
{
    (void)s;
    (void)si;
    (void)serial_try_connect(userdata);
    return 0;
}

static int
on_recheck(cc_loop_source *s, uint64_t deadline, void *userdata)
{
    (void)s;
    (void)deadline;
    (void)serial_try_connect(userdata);
    return 0;
}

int
agent_channel_serial(agent *a, const char *name, cc_error **err)
{
    uint64_t deadline = cc_loop_now() + PORT_WAIT_USEC;
    int r;

    /* the port shows up once the host's control messages are processed: wait for it */
    for (;;) {
        r = find_port(name, &a->serial_path);
        if (r == 0 && access(a->serial_path, F_OK) == 0)
            break;
        if (r == 0)
            a->serial_path = (free(a->serial_path), NULL);
        if (cc_loop_now() > deadline)
            return cc_error_set(err, -ENOENT, "no virtio-serial port named %s", name);
        usleep(20 * 1000);
    }
    a->serial_fd = open(a->serial_path, O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
    if (a->serial_fd < 0)
        return cc_error_set(err, -errno, "cannot open %s", a->serial_path);
    if (fcntl(a->serial_fd, F_SETOWN, getpid()) < 0 ||
        fcntl(a->serial_fd, F_SETFL, O_RDWR | O_NONBLOCK | O_ASYNC) < 0)
        return cc_error_set(err, -errno, "cannot enable SIGIO on %s", a->serial_path);
    r = cc_loop_add_signal(a->loop, SIGIO, on_sigio, a, &a->serial_wait, err);
    if (r < 0)
        return r;
    r = cc_loop_add_timer(a->loop, RECHECK_USEC, RECHECK_USEC, on_recheck, a, &a->serial_timer,
                          err);
    if (r < 0)
        return r;
    char stats[128];
    cc_log(CC_LOG_INFO, "agent ready: serving the host on %s (%s) %s", a->serial_path, name,
           agent_stats_string(stats, sizeof(stats)));
    return serial_try_connect(a);
}

static int
listen_on(agent *a, int fd, const struct sockaddr *sa, socklen_t len, const char *what,
          cc_error **err)
{
    int r;

    if (bind(fd, sa, len) < 0 || listen(fd, 16) < 0) {
        r = -errno;
        close(fd);
        return cc_error_set(err, r, "cannot listen on %s", what);
    }
    r = cc_ttrpc_server_listen_fd(a->server, fd, err);
    if (r < 0) {
        close(fd);
        return r;
    }
    char stats[128];
    cc_log(CC_LOG_INFO, "agent ready: serving the host on %s %s", what,
           agent_stats_string(stats, sizeof(stats)));
    return 0;
}

int
agent_channel_vsock(agent *a, unsigned port, cc_error **err)
{
    struct sockaddr_vm sa = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port};
    char what[32];
    int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return cc_error_set(err, -errno, "vsock socket");
    snprintf(what, sizeof(what), "vsock port %u", port);
    return listen_on(a, fd, (struct sockaddr *)&sa, sizeof(sa), what, err);
}

int
agent_channel_unix(agent *a, const char *path, cc_error **err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd;

    if (strlen(path) >= sizeof(sa.sun_path))
        return cc_error_set(err, -ENAMETOOLONG, "%s: too long for a unix socket", path);
    strcpy(sa.sun_path, path);
    (void)unlink(path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return cc_error_set(err, -errno, "unix socket");
    return listen_on(a, fd, (struct sockaddr *)&sa, sizeof(sa), path, err);
}
