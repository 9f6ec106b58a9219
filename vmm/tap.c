/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
/*
 * net=tap: the tap device and the tc mirred filters (see tap.h).
 *
 * The tap is created by a dedicated thread: setns(CLONE_NEWNET) changes only the calling
 * thread's namespace, so the thread enters the pod's namespace, opens /dev/net/tun, names
 * the device (TUNSETIFF creates it in the thread's namespace), copies the pod interface's
 * MTU and sets the tap up, then exits. The fd keeps pointing at the tap in the pod's
 * namespace from any thread.
 *
 * tc runs as iproute2's binary in a forked child that setns()es into the namespace and
 * execv()s it (tc -n only knows named namespaces under /var/run/netns; setns takes any
 * path, e.g. a CNI's /proc/<pid>/ns/net). The child does only async-signal-safe calls;
 * its stderr comes back through a pipe for error messages.
 */
#include "tap.h"

#include "log.h"
#include "macro.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define TAP_TC_STDERR_MAX 512

static const char *const tc_paths[] = {"/usr/sbin/tc", "/sbin/tc", "/usr/bin/tc", "/bin/tc"};

typedef struct tap_job {
    int nsfd;               /* in */
    const char *pod_ifname; /* in */
    const char *tap_name;   /* in */
    int fd;                 /* out: the tap fd */
    int error;              /* out: negative errno */
    const char *step;       /* out: what failed */
} tap_job;

static int
ifreq_set_name(struct ifreq *ifr, const char *name)
{
    if (strlen(name) >= sizeof(ifr->ifr_name))
        return -ENAMETOOLONG;
    memset(ifr, 0, sizeof(*ifr));
    memcpy(ifr->ifr_name, name, strlen(name));
    return 0;
}

/* The thread body; fills job->fd or job->error/step. */
static void *
tap_thread(void *userdata)
{
    tap_job *job = userdata;
    _cleanup_close_ int tun = -EBADF;
    _cleanup_close_ int sock = -EBADF;
    struct ifreq ifr;
    int mtu;

#define FAIL(what)                                                                                 \
    do {                                                                                           \
        job->error = -errno;                                                                       \
        job->step = (what);                                                                        \
        return NULL;                                                                               \
    } while (0)

    if (setns(job->nsfd, CLONE_NEWNET) < 0)
        FAIL("enter network namespace");
    sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0)
        FAIL("socket");
    if (ifreq_set_name(&ifr, job->pod_ifname) < 0 || ioctl(sock, SIOCGIFMTU, &ifr) < 0)
        FAIL("read the pod interface's MTU (SIOCGIFMTU)");
    mtu = ifr.ifr_mtu;
    tun = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (tun < 0)
        FAIL("open '/dev/net/tun'");
    if (ifreq_set_name(&ifr, job->tap_name) < 0)
        FAIL("tap name");
    /* No IFF_VNET_HDR: QEMU probes a passed fd (TUNGETIFF) and runs without the header. */
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
    if (ioctl(tun, TUNSETIFF, &ifr) < 0)
        FAIL("create the tap (TUNSETIFF)");
    (void)ifreq_set_name(&ifr, job->tap_name);
    ifr.ifr_mtu = mtu;
    if (ioctl(sock, SIOCSIFMTU, &ifr) < 0)
        FAIL("set the tap's MTU (SIOCSIFMTU)");
    (void)ifreq_set_name(&ifr, job->tap_name);
    if (ioctl(sock, SIOCGIFFLAGS, &ifr) < 0)
        FAIL("read the tap's flags (SIOCGIFFLAGS)");
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(sock, SIOCSIFFLAGS, &ifr) < 0)
        FAIL("set the tap up (SIOCSIFFLAGS)");
#undef FAIL
    job->fd = TAKE_FD(tun);
    return NULL;
}

static int
create_tap(int nsfd, const char *pod_ifname, const char *tap_name, int *ret_fd, cc_error **err)
{
    tap_job job = {.nsfd = nsfd, .pod_ifname = pod_ifname, .tap_name = tap_name, .fd = -EBADF};
    pthread_t t;
    int r;

    r = pthread_create(&t, NULL, tap_thread, &job);
    if (r != 0)
        return cc_error_set(err, -r, "start the tap thread");
    (void)pthread_join(t, NULL);
    if (job.fd < 0) {
        if (job.error == -ENODEV && strstr(job.step, "MTU"))
            return cc_error_msg(err, -ENOENT, "%s: no interface '%s' in the namespace", job.step,
                                pod_ifname);
        return cc_error_set(err, job.error, "%s", job.step);
    }
    *ret_fd = job.fd;
    return 0;
}

static const char *
tc_path(void)
{
    for (size_t i = 0; i < ELEMENTSOF(tc_paths); i++)
        if (access(tc_paths[i], X_OK) == 0)
            return tc_paths[i];
    return NULL;
}

/* Runs tc (argv without argv[0], NULL-terminated) in the namespace nsfd; -EIO with tc's
 * stderr when it exits non-zero. */
static int
run_tc(int nsfd, const char *const *args, cc_error **err)
{
    const char *tc = tc_path();
    const char *argv[24];
    char out[TAP_TC_STDERR_MAX];
    size_t n = 0, len = 0;
    int pipefd[2], status = 0;
    ssize_t k;
    pid_t pid;

    if (!tc)
        return cc_error_msg(err, -ENOENT, "tc not found (install iproute2)");
    argv[n++] = tc;
    for (; *args && n < ELEMENTSOF(argv) - 1; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return cc_error_set(err, -errno, "pipe");
    pid = fork();
    if (pid < 0) {
        int e = -errno;
        cc_close(pipefd[0]);
        cc_close(pipefd[1]);
        return cc_error_set(err, e, "fork");
    }
    if (pid == 0) {
        /* async-signal-safe only: we may have forked a multi-threaded process */
        int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(pipefd[1], 1) < 0 ||
            dup2(pipefd[1], 2) < 0 || setns(nsfd, CLONE_NEWNET) < 0)
            _exit(126);
        execv(tc, (char *const *)argv);
        _exit(127);
    }
    cc_close(pipefd[1]);
    for (;;) {
        k = read(pipefd[0], out + len, sizeof(out) - 1 - len);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        len += (size_t)k;
        if (len == sizeof(out) - 1) { /* drain the rest */
            char sink[256];
            while (read(pipefd[0], sink, sizeof(sink)) > 0)
                ;
            break;
        }
    }
    cc_close(pipefd[0]);
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return cc_error_set(err, -errno, "wait for tc");
    while (len > 0 && (out[len - 1] == '\n' || out[len - 1] == ' '))
        len--;
    out[len] = '\0';
    for (char *p = out; *p; p++)
        if (*p == '\n')
            *p = ' ';
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 126)
        return cc_error_msg(err, -EIO, "tc: could not enter the network namespace");
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
        return cc_error_msg(err, -EIO, "exec '%s' failed", tc);
    return cc_error_msg(err, -EIO, "tc exited with status %d: %s",
                        WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status),
                        len ? out : "(no output)");
}

/* Ingress qdisc on from and a filter redirecting everything it receives out of to. */
static int del_ingress(int nsfd, const char *dev, cc_error **err);

static int
add_redirect(int nsfd, const char *from, const char *to, cc_error **err)
{
    const char *qdisc[] = {"qdisc", "add", "dev", from, "handle", "ffff:", "ingress", NULL};
    const char *filter[] = {"filter", "add",    "dev",      from,  "parent", "ffff:", "protocol",
                            "all",    "u32",    "match",    "u8",  "0",      "0",     "action",
                            "mirred", "egress", "redirect", "dev", to,       NULL};
    int r;

    r = run_tc(nsfd, qdisc, err);
    if (r < 0)
        return cc_error_prefix(err, r, "add ingress qdisc on '%s'", from);
    r = run_tc(nsfd, filter, err);
    if (r < 0) {
        (void)del_ingress(nsfd, from, NULL); /* nothing is left behind on failure */
        return cc_error_prefix(err, r, "add mirred redirect '%s' -> '%s'", from, to);
    }
    return 0;
}

static int
del_ingress(int nsfd, const char *dev, cc_error **err)
{
    const char *args[] = {"qdisc", "del", "dev", dev, "handle", "ffff:", "ingress", NULL};
    int r = run_tc(nsfd, args, err);

    if (r < 0)
        return cc_error_prefix(err, r, "delete ingress qdisc on '%s'", dev);
    return 0;
}

static int
open_netns(const char *netns_path, int *ret_fd, cc_error **err)
{
    int fd;

    if (!netns_path || netns_path[0] != '/')
        return cc_error_msg(err, -EINVAL, "netns_path '%s': must be an absolute path",
                            netns_path ? netns_path : "(null)");
    fd = open(netns_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return cc_error_set(err, -errno, "open network namespace '%s'", netns_path);
    *ret_fd = fd;
    return 0;
}

int
vmm_tap_setup(const char *netns_path, const char *pod_ifname, const char *tap_name, int *ret_fd,
              cc_error **err)
{
    _cleanup_close_ int nsfd = -EBADF;
    _cleanup_close_ int tap = -EBADF;
    int r;

    r = open_netns(netns_path, &nsfd, err);
    if (r < 0)
        return cc_error_prefix(err, r, "set up tap '%s'", tap_name);
    r = create_tap(nsfd, pod_ifname, tap_name, &tap, err);
    if (r < 0)
        return cc_error_prefix(err, r, "set up tap '%s' in '%s'", tap_name, netns_path);
    r = add_redirect(nsfd, pod_ifname, tap_name, err);
    if (r >= 0) {
        r = add_redirect(nsfd, tap_name, pod_ifname, err);
        if (r < 0)
            (void)del_ingress(nsfd, pod_ifname, NULL);
    }
    if (r < 0)
        return cc_error_prefix(err, r, "set up tap '%s' in '%s'", tap_name, netns_path);
    cc_log(CC_LOG_DEBUG, "tap '%s' <-> '%s' in '%s'", tap_name, pod_ifname, netns_path);
    *ret_fd = TAKE_FD(tap);
    return 0;
}

int
vmm_tap_teardown(const char *netns_path, const char *pod_ifname, const char *tap_name,
                 cc_error **err)
{
    _cleanup_close_ int nsfd = -EBADF;
    int r;

    r = open_netns(netns_path, &nsfd, err);
    if (r < 0)
        return cc_error_prefix(err, r, "tear down tap '%s'", tap_name);
    /* The tap, and its qdisc with it, is usually gone already (QEMU exited). */
    (void)del_ingress(nsfd, tap_name, NULL);
    r = del_ingress(nsfd, pod_ifname, err);
    if (r < 0)
        return cc_error_prefix(err, r, "tear down tap '%s' in '%s'", tap_name, netns_path);
    return 0;
}
