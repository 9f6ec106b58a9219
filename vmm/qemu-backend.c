/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
/*
 * The qemu backend: QEMU as our own child process, driven over QMP.
 *
 * QEMU must not outlive us: the child sets PR_SET_PDEATHSIG(SIGKILL) before exec. The
 * kernel delivers that signal when the *thread* that forked exits, not the process, so
 * vmm_start() must be called from the long-lived loop thread (it is "loop thread only"
 * anyway). The child re-checks getppid() after prctl() to close the race with a parent
 * that died before the prctl took effect.
 *
 * The child runs in its own session (setsid) so a terminal's signals meant for us do not
 * reach it, reads /dev/null, writes QEMU's own messages to <state>/qemu.log and keeps no
 * fd of ours (close_range) except, for net=tap, the tap fd as fd 3.
 *
 * net=tap (tap.c): before the fork we create the tap in vm->netns_path with tc mirred
 * redirection to and from vm->pod_ifname; after the fork only QEMU holds the tap fd, so the
 * tap disappears with QEMU. The tc rules on the pod interface are removed when QEMU is gone
 * (on_child) or when the instance is freed, whichever comes first; that runs tc briefly on
 * the loop thread.
 */
#include "backend.h"
#include "fs.h"
#include "json.h"
#include "log.h"
#include "loop.h"
#include "qmp.h"
#include "tap.h"
#include "util.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

CC_DEFINE_CLEANUP(char *, vmm_strv_free)

#define QEMU_QMP_TIMEOUT_USEC (15ULL * 1000 * 1000)
#define QEMU_LOG_TAIL 1024

struct vmm_backend_instance {
    cc_loop *loop;
    pid_t pid;
    cc_loop_source *child; /* owned; its pidfd signals QEMU */
    vmm_qmp *qmp;
    char *state_dir;
    char *shutdown_reason; /* from the SHUTDOWN event, if any */
    char *netns_path;      /* net=tap with tc rules still installed; else NULL */
    char *pod_ifname;
    bool gone;
    void (*exited)(int exit_status, const char *reason, void *ctx);
    void *ctx;
};

/* The last bytes of <state>/qemu.log, one line, for error messages; "" when empty. */
static char *
log_tail(const char *state_dir)
{
    _cleanup_free_ char *path = cc_xasprintf("%s/qemu.log", state_dir);
    _cleanup_free_ char *data = NULL;
    size_t len = 0;

    if (cc_read_file(path, 1 << 20, &data, &len, NULL) < 0 || len == 0)
        return cc_xstrdup("");
    while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r'))
        len--;
    size_t start = len > QEMU_LOG_TAIL ? len - QEMU_LOG_TAIL : 0;
    char *t = cc_xstrndup(data + start, len - start);
    for (char *p = t; *p; p++)
        if (*p == '\n')
            *p = ' ';
    return t;
}

static const char *
shutdown_text(const char *reason)
{
    if (cc_streq(reason, "guest-shutdown"))
        return "guest powered off";
    if (cc_streq(reason, "guest-reset"))
        return "guest reset (no-reboot)";
    if (cc_streq(reason, "guest-panic"))
        return "guest panicked";
    if (cc_streq(reason, "host-qmp-quit"))
        return "stopped by qmp quit";
    if (cc_streq(reason, "host-signal"))
        return "qemu stopped by a signal";
    return NULL;
}

/* Removes the tc rules of net=tap once (the tap itself went with QEMU's fd). */
static void
tap_teardown(vmm_backend_instance *bi)
{
    _cleanup_error_ cc_error *e = NULL;

    if (!bi->netns_path)
        return;
    if (vmm_tap_teardown(bi->netns_path, bi->pod_ifname, VMM_TAP_NAME, &e) < 0)
        cc_log_error(CC_LOG_DEBUG, e, "qemu for '%s'", bi->state_dir);
    free(bi->netns_path);
    free(bi->pod_ifname);
    bi->netns_path = bi->pod_ifname = NULL;
}

static int
on_child(cc_loop_source *s, const siginfo_t *si, void *userdata)
{
    vmm_backend_instance *bi = userdata;
    char buf[128];
    const char *reason;
    int status;

    (void)s;
    if (si->si_code == CLD_EXITED) {
        status = si->si_status;
        reason = bi->shutdown_reason ? shutdown_text(bi->shutdown_reason) : NULL;
        if (!reason) {
            snprintf(buf, sizeof(buf), "qemu exited with status %d", status);
            reason = buf;
        }
    } else if (si->si_code == CLD_KILLED || si->si_code == CLD_DUMPED) {
        status = 128 + si->si_status;
        snprintf(buf, sizeof(buf), "qemu killed by signal %d", si->si_status);
        reason = buf;
    } else {
        status = 255;
        reason = "qemu reaped elsewhere";
    }
    bi->gone = true;
    bi->pid = 0;
    bi->qmp = vmm_qmp_free(bi->qmp);
    tap_teardown(bi);
    cc_log(CC_LOG_DEBUG, "qemu for '%s' gone: %s", bi->state_dir, reason);
    bi->exited(status, reason, bi->ctx);
    return 0;
}

static void
on_qmp_event(vmm_qmp *q, const char *event, json_t *data, void *userdata)
{
    vmm_backend_instance *bi = userdata;
    const char *reason = NULL;

    (void)q;
    cc_log(CC_LOG_DEBUG, "qmp event %s for '%s'", event, bi->state_dir);
    if (!cc_streq(event, "SHUTDOWN") || !data)
        return;
    (void)cc_json_get_string(data, "reason", &reason, NULL);
    if (reason && !bi->shutdown_reason)
        bi->shutdown_reason = cc_xstrdup(reason);
}

static void
on_qmp_closed(vmm_qmp *q, int r, const char *msg, void *userdata)
{
    vmm_backend_instance *bi = userdata;

    (void)q;
    /* QEMU closes QMP as it exits; the child source reports the exit. */
    cc_log(CC_LOG_DEBUG, "qmp for '%s' closed (%d): %s", bi->state_dir, r, msg);
}

/* In the child: async-signal-safe calls only. Reports errno on err_fd and exits 127. */
static _noreturn_ void
child_exec(char **argv, pid_t parent, int null_fd, int log_fd, int tap_fd, int err_fd)
{
    sigset_t none;
    int e;

    /* The controller blocks the signals its loop reads; QEMU must get them normally. */
    sigemptyset(&none);
    if (sigprocmask(SIG_SETMASK, &none, NULL) < 0)
        goto fail;
    (void)signal(SIGPIPE, SIG_DFL);
    if (setsid() < 0 || prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
        goto fail;
    if (getppid() != parent)
        _exit(127); /* the parent died before the prctl took effect */
    /* Move what we keep above the fds we are about to fill, then place it. */
    err_fd = fcntl(err_fd, F_DUPFD_CLOEXEC, 10);
    if (err_fd < 0)
        goto fail;
    if (tap_fd >= 0 && (tap_fd = fcntl(tap_fd, F_DUPFD_CLOEXEC, 10)) < 0)
        goto fail;
    if (dup2(null_fd, 0) < 0 || dup2(log_fd, 1) < 0 || dup2(log_fd, 2) < 0)
        goto fail;
    if (tap_fd >= 0 && dup2(tap_fd, 3) < 0) /* dup2 clears FD_CLOEXEC on fd 3 */
        goto fail;
    if (dup3(err_fd, 4, O_CLOEXEC) < 0)
        goto fail;
    err_fd = 4;
    /* fd 3 (when unused) and everything above 4 go; fd 4 closes on exec. */
    if (tap_fd < 0)
        close(3);
    close_range(5, ~0U, 0);
    execv(argv[0], argv);
fail:
    e = errno;
    (void)!write(err_fd, &e, sizeof(e));
    _exit(127);
}

/* Forks and execs QEMU; returns once exec succeeded (or failed: negative errno). */
static int
spawn(const vmm_vm *vm, char **argv, int tap_fd, pid_t *ret_pid, cc_error **err)
{
    _cleanup_free_ char *log_path = cc_xasprintf("%s/qemu.log", vm->state_dir);
    _cleanup_close_ int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    _cleanup_close_ int log_fd = -EBADF;
    int pipefd[2];
    int e = 0;
    ssize_t n;

    if (null_fd < 0)
        return cc_error_set(err, -errno, "open '/dev/null'");
    log_fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW,
                  0640);
    if (log_fd < 0)
        return cc_error_set(err, -errno, "open '%s'", log_path);
    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return cc_error_set(err, -errno, "pipe");
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        e = -errno;
        cc_close(pipefd[0]);
        cc_close(pipefd[1]);
        return cc_error_set(err, e, "fork");
    }
    if (pid == 0) {
        close(pipefd[0]);
        child_exec(argv, parent, null_fd, log_fd, tap_fd, pipefd[1]);
    }
    cc_close(pipefd[1]);
    do {
        n = read(pipefd[0], &e, sizeof(e));
    } while (n < 0 && errno == EINTR);
    cc_close(pipefd[0]);
    if (n == sizeof(e)) {
        (void)waitpid(pid, NULL, 0);
        return cc_error_set(err, -e, "exec '%s'", argv[0]);
    }
    *ret_pid = pid;
    return 0;
}

static void
remove_stale(const char *state_dir)
{
    static const char *const names[] = {"qmp.sock", "agent.sock", "qemu.pid"};

    for (size_t i = 0; i < ELEMENTSOF(names); i++) {
        _cleanup_free_ char *p = cc_xasprintf("%s/%s", state_dir, names[i]);
        (void)unlink(p);
    }
}

/* Kills and reaps a QEMU whose start failed (blocking: SIGKILL is prompt). */
static void
abort_child(vmm_backend_instance *bi)
{
    /* bi->child is NULL when attaching the pidfd source itself failed */
    int pidfd = bi->child ? cc_loop_source_get_fd(bi->child) : -EBADF;

    if (pidfd >= 0)
        (void)pidfd_send_signal(pidfd, SIGKILL, NULL, 0);
    else
        (void)kill(bi->pid, SIGKILL);
    (void)waitpid(bi->pid, NULL, 0);
    bi->child = cc_loop_source_free(bi->child);
    bi->gone = true;
    bi->pid = 0;
}

static void
qemu_free(vmm_backend_instance *bi)
{
    if (!bi)
        return;
    bi->qmp = vmm_qmp_free(bi->qmp);
    if (!bi->gone && bi->pid > 0)
        abort_child(bi); /* the VM must be gone; make sure, without a callback */
    cc_loop_source_free(bi->child);
    tap_teardown(bi);
    free(bi->shutdown_reason);
    free(bi->state_dir);
    free(bi);
}

static int
connect_qmp(vmm_backend_instance *bi, cc_error **err)
{
    _cleanup_free_ char *path = cc_xasprintf("%s/qmp.sock", bi->state_dir);
    uint64_t deadline = cc_loop_now() + QEMU_QMP_TIMEOUT_USEC;
    int pidfd = cc_loop_source_get_fd(bi->child);
    int fd = -EBADF, r;

    r = vmm_qmp_connect_unix(path, deadline, pidfd, &fd, err);
    if (r < 0)
        return r;
    bi->qmp = vmm_qmp_new(fd, on_qmp_event, on_qmp_closed, bi);
    return vmm_qmp_handshake(bi->qmp, bi->loop, deadline, pidfd, err);
}

static int
qemu_start(cc_loop *loop, const vmm_vm *vm,
           void (*exited)(int exit_status, const char *reason, void *ctx), void *ctx,
           vmm_backend_instance **ret, int *ret_pid, cc_error **err)
{
    _cleanup_(vmm_strv_freep) char **argv = NULL;
    _cleanup_close_ int tap_fd = -EBADF;
    vmm_backend_instance *bi;
    int r;

    if (vm->config->net == VMM_NET_TAP && !vm->netns_path)
        return cc_error_msg(err, -EINVAL,
                            "start qemu: network 'tap' needs netns_path (the pod's network "
                            "namespace), which is not set");
    r = vmm_qemu_argv(vm, &argv, err);
    if (r < 0)
        return cc_error_prefix(err, r, "start qemu");
    remove_stale(vm->state_dir);

    bi = cc_xzalloc(sizeof(*bi));
    bi->loop = loop;
    bi->state_dir = cc_xstrdup(vm->state_dir);
    bi->exited = exited;
    bi->ctx = ctx;
    if (vm->config->net == VMM_NET_TAP) {
        const char *ifname = vm->pod_ifname ? vm->pod_ifname : "eth0";
        r = vmm_tap_setup(vm->netns_path, ifname, VMM_TAP_NAME, &tap_fd, err);
        if (r < 0) {
            bi->gone = true;
            qemu_free(bi);
            return cc_error_prefix(err, r, "start qemu");
        }
        bi->netns_path = cc_xstrdup(vm->netns_path);
        bi->pod_ifname = cc_xstrdup(ifname);
    }
    r = spawn(vm, argv, tap_fd, &bi->pid, err);
    tap_fd = cc_close(tap_fd); /* QEMU holds the tap now; it goes when QEMU exits */
    if (r < 0) {
        bi->gone = true;
        qemu_free(bi);
        return cc_error_prefix(err, r, "start qemu");
    }
    r = cc_loop_add_child(loop, bi->pid, on_child, bi, &bi->child, err);
    if (r >= 0)
        r = connect_qmp(bi, err);
    if (r < 0) {
        _cleanup_free_ char *tail = NULL;
        abort_child(bi);
        tail = log_tail(vm->state_dir);
        if (tail[0] && err && *err) {
            _cleanup_free_ char *msg = cc_xstrdup(cc_error_message(*err));
            cc_error_msg(err, r, "start qemu: %s (qemu.log: %s)", msg, tail);
        } else {
            cc_error_prefix(err, r, "start qemu");
        }
        qemu_free(bi);
        return r;
    }
    cc_loop_source_set_description(bi->child, "qemu");
    *ret_pid = bi->pid;
    *ret = bi;
    return 0;
}

static int
qemu_kill(vmm_backend_instance *bi, cc_error **err)
{
    if (bi->gone)
        return 0;
    if (pidfd_send_signal(cc_loop_source_get_fd(bi->child), SIGKILL, NULL, 0) < 0 &&
        errno != ESRCH)
        return cc_error_set(err, -errno, "kill qemu %d", (int)bi->pid);
    return 0;
}

static int
qemu_stop(vmm_backend_instance *bi, cc_error **err)
{
    _cleanup_error_ cc_error *e = NULL;
    int r;

    if (bi->gone)
        return 0;
    if (bi->qmp && vmm_qmp_is_ready(bi->qmp)) {
        r = vmm_qmp_execute(bi->qmp, "quit", NULL, NULL, NULL, &e);
        if (r >= 0)
            return 0;
        cc_log_error(CC_LOG_DEBUG, e, "qmp quit failed; killing qemu %d", (int)bi->pid);
    }
    return qemu_kill(bi, err);
}

const vmm_backend_ops vmm_qemu_backend = {
    .name = "qemu",
    .start = qemu_start,
    .stop = qemu_stop,
    .kill = qemu_kill,
    .free = qemu_free,
};
