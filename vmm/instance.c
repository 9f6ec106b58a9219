/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
/*
 * Running VMs: backend choice, the instance object, stopping, and crash cleanup.
 *
 * <state_dir>/backend records which backend runs the VM ("qemu", or "libvirt <uri> <domain>")
 * so vmm_cleanup() knows what to destroy after a controller crash.
 *
 * vmm_instance_stop() and vmm_instance_free() re-enter the loop (cc_loop_run_once) to wait
 * for the VM to go; other sources are dispatched meanwhile. From inside a loop handler that
 * is impossible: stop then only sends the request, arms a timer that kills the VM when it
 * is not gone by the deadline, and returns -EBUSY (on_exit follows later); free kills the VM
 * synchronously.
 */
#include "backend.h"
#include "fs.h"
#include "log.h"
#include "loop.h"
#include "util.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <unistd.h>

#define VMM_KILL_WAIT_USEC (5ULL * 1000 * 1000)

struct vmm_instance {
    cc_loop *loop;
    const vmm_backend_ops *ops;
    vmm_backend_instance *bi;
    vmm_backend backend;
    int pid;
    bool gone;
    vmm_exit_fn on_exit;
    void *userdata;
    char *state_dir;
    char *agent_address;
    char *console_path;
    cc_loop_source *kill_timer; /* a stop requested from a handler: SIGKILL at its deadline */
};

static const char *const state_files[] = {"qmp.sock", "agent.sock", "qemu.pid", "backend"};
static const char *const log_files[] = {"console.log", "qemu.log"};

static void
backend_exited(int exit_status, const char *reason, void *ctx)
{
    vmm_instance *inst = ctx;

    if (inst->gone)
        return;
    inst->gone = true;
    inst->pid = 0;
    if (inst->on_exit)
        inst->on_exit(inst, exit_status, reason, inst->userdata);
}

/* AUTO: libvirt when its plugin loads and supports the profile at the config's URI. */
static const vmm_backend_ops *
choose_auto(const vmm_vm *vm)
{
    _cleanup_error_ cc_error *e = NULL;
    _cleanup_free_ char *why = NULL;
    const vmm_backend_ops *ops = vmm_libvirt_ops(&e);
    const char *uri = vm->config->libvirt_uri;
    bool ok = false;

    if (vm->config->net == VMM_NET_TAP) {
        cc_log(CC_LOG_INFO, "backend auto: using qemu: tap networking needs the qemu backend");
        return &vmm_qemu_backend;
    }
    if (!ops) {
        cc_log(CC_LOG_INFO, "backend auto: using qemu: libvirt plugin unavailable: %s",
               cc_error_message(e));
        return &vmm_qemu_backend;
    }
    if (!ops->supports || ops->supports(uri, vm->config->profile, &ok, &why, &e) < 0) {
        cc_log(CC_LOG_INFO, "backend auto: using qemu: libvirt probe at '%s' failed: %s",
               uri ? uri : "(default)", e ? cc_error_message(e) : "no probe");
        return &vmm_qemu_backend;
    }
    if (!ok) {
        cc_log(CC_LOG_INFO, "backend auto: using qemu: libvirt at '%s' cannot run profile %s: %s",
               uri ? uri : "(default)", vmm_profile_to_string(vm->config->profile),
               why ? why : "unsupported");
        return &vmm_qemu_backend;
    }
    cc_log(CC_LOG_INFO, "backend auto: using libvirt at '%s': it supports profile %s",
           uri ? uri : "(default)", vmm_profile_to_string(vm->config->profile));
    return ops;
}

static int
choose_backend(const vmm_vm *vm, vmm_backend backend, const vmm_backend_ops **ret,
               cc_error **err)
{
    switch (backend) {
    case VMM_BACKEND_QEMU:
        *ret = &vmm_qemu_backend;
        return 0;
    case VMM_BACKEND_LIBVIRT:
        *ret = vmm_libvirt_ops(err);
        return *ret ? 0 : (err && *err ? (*err)->code : -ENOENT);
    case VMM_BACKEND_AUTO:
        *ret = choose_auto(vm);
        return 0;
    default:
        return cc_error_msg(err, -EINVAL, "backend %d: invalid", (int)backend);
    }
}

static int
write_backend_file(const vmm_vm *vm, const vmm_backend_ops *ops, cc_error **err)
{
    _cleanup_close_ int dfd = open(vm->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    _cleanup_free_ char *text = NULL;

    if (dfd < 0)
        return cc_error_set(err, -errno, "open '%s'", vm->state_dir);
    if (ops == &vmm_qemu_backend)
        text = cc_xstrdup("qemu\n");
    else
        text = cc_xasprintf("libvirt %s cloak-%s\n",
                            vm->config->libvirt_uri ? vm->config->libvirt_uri : "qemu:///system",
                            vm->id);
    return cc_write_file_atomic(dfd, "backend", text, strlen(text), 0640, err);
}

static char *
agent_address(const vmm_vm *vm)
{
    if (vm->channel == VMM_CHANNEL_VSOCK)
        return cc_xasprintf("vsock:%u:%u", vm->vsock_cid, VMM_AGENT_VSOCK_PORT);
    return cc_xasprintf("unix:%s/agent.sock", vm->state_dir);
}

int
vmm_start(cc_loop *loop, const vmm_vm *vm, vmm_backend backend, vmm_exit_fn on_exit,
          void *userdata, vmm_instance **ret, cc_error **err)
{
    const vmm_backend_ops *ops = NULL;
    vmm_instance *inst;
    int r;

    if (mkdir(vm->state_dir, 0711) < 0 && errno != EEXIST)
        return cc_error_set(err, -errno, "start vm '%s': mkdir '%s'", vm->id, vm->state_dir);
    r = choose_backend(vm, backend, &ops, err);
    if (r < 0)
        return cc_error_prefix(err, r, "start vm '%s'", vm->id);
    r = write_backend_file(vm, ops, err);
    if (r < 0)
        return cc_error_prefix(err, r, "start vm '%s'", vm->id);

    inst = cc_xzalloc(sizeof(*inst));
    inst->loop = loop;
    inst->ops = ops;
    inst->backend = ops == &vmm_qemu_backend ? VMM_BACKEND_QEMU : VMM_BACKEND_LIBVIRT;
    inst->on_exit = on_exit;
    inst->userdata = userdata;
    inst->state_dir = cc_xstrdup(vm->state_dir);
    inst->agent_address = agent_address(vm);
    inst->console_path = cc_xasprintf("%s/console.log", vm->state_dir);
    r = ops->start(loop, vm, backend_exited, inst, &inst->bi, &inst->pid, err);
    if (r < 0) {
        inst->gone = true;
        vmm_instance_free(inst);
        return cc_error_prefix(err, r, "start vm '%s'", vm->id);
    }
    cc_log(CC_LOG_DEBUG, "vm '%s' started on %s, pid %d", vm->id, ops->name, inst->pid);
    *ret = inst;
    return 0;
}

static int
kill_timer_fired(cc_loop_source *s, uint64_t deadline_usec, void *userdata)
{
    vmm_instance *inst = userdata;
    (void)s;
    (void)deadline_usec;
    if (!inst->gone) {
        cc_log(CC_LOG_DEBUG, "vm in '%s' did not stop in time; killing it", inst->state_dir);
        (void)inst->ops->kill(inst->bi, NULL);
    }
    return 0;
}

int
vmm_instance_kill(vmm_instance *inst, cc_error **err)
{
    if (inst->gone)
        return 0;
    int r = inst->ops->kill(inst->bi, err);
    return r < 0 ? cc_error_prefix(err, r, "kill vm in '%s'", inst->state_dir) : 0;
}

/* Runs the loop until the VM is gone or deadline passes: 0, -ETIMEDOUT, -EBUSY, ... */
static int
run_until_gone(vmm_instance *inst, uint64_t deadline, cc_error **err)
{
    while (!inst->gone) {
        uint64_t now = cc_loop_now();
        if (now >= deadline)
            return -ETIMEDOUT;
        int r = cc_loop_run_once(inst->loop, deadline - now, err);
        if (r < 0)
            return r;
    }
    return 0;
}

int
vmm_instance_stop(vmm_instance *inst, uint64_t timeout_usec, cc_error **err)
{
    _cleanup_error_ cc_error *e = NULL;
    int r;

    if (inst->gone)
        return 0;
    r = inst->ops->stop(inst->bi, &e);
    if (r < 0)
        cc_log_error(CC_LOG_DEBUG, e, "stop vm in '%s'; killing it", inst->state_dir);
    else {
        uint64_t now = cc_loop_now(); /* saturate: UINT64_MAX means no deadline */
        uint64_t deadline = timeout_usec > UINT64_MAX - now ? UINT64_MAX : now + timeout_usec;
        r = run_until_gone(inst, deadline, NULL);
    }
    if (r == -EBUSY) {
        if (!inst->kill_timer &&
            cc_loop_add_timer(inst->loop, timeout_usec, 0, kill_timer_fired, inst,
                              &inst->kill_timer, NULL) < 0)
            (void)inst->ops->kill(inst->bi, NULL);
        return cc_error_msg(err, r, "stop vm in '%s': called from inside a loop handler; "
                                    "the stop was requested, on_exit follows",
                            inst->state_dir);
    }
    if (inst->gone)
        return 0;
    cc_log(CC_LOG_DEBUG, "vm in '%s' did not stop in time; killing it", inst->state_dir);
    r = inst->ops->kill(inst->bi, err);
    if (r < 0)
        return cc_error_prefix(err, r, "stop vm in '%s'", inst->state_dir);
    r = run_until_gone(inst, cc_loop_now() + VMM_KILL_WAIT_USEC, err);
    if (r < 0)
        return cc_error_prefix(err, r, "stop vm in '%s': wait after kill", inst->state_dir);
    return 0;
}

static void
remove_files(const char *dir, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        _cleanup_free_ char *p = cc_xasprintf("%s/%s", dir, names[i]);
        if (unlink(p) < 0 && errno != ENOENT)
            cc_log_errno(CC_LOG_DEBUG, -errno, "remove '%s'", p);
    }
}

vmm_instance *
vmm_instance_free(vmm_instance *inst)
{
    if (!inst)
        return NULL;
    inst->kill_timer = cc_loop_source_free(inst->kill_timer);
    if (!inst->gone && inst->bi) {
        /* No callback from here on: the owner is going away. */
        inst->on_exit = NULL;
        if (inst->ops->kill(inst->bi, NULL) >= 0)
            (void)run_until_gone(inst, cc_loop_now() + VMM_KILL_WAIT_USEC, NULL);
    }
    if (inst->bi)
        inst->ops->free(inst->bi);
    remove_files(inst->state_dir, state_files, ELEMENTSOF(state_files));
    free(inst->state_dir);
    free(inst->agent_address);
    free(inst->console_path);
    free(inst);
    return NULL;
}

int
vmm_instance_pid(const vmm_instance *inst)
{
    return inst->gone ? 0 : inst->pid;
}

vmm_backend
vmm_instance_backend(const vmm_instance *inst)
{
    return inst->backend;
}

const char *
vmm_instance_agent_address(const vmm_instance *inst)
{
    return inst->agent_address;
}

const char *
vmm_instance_console_path(const vmm_instance *inst)
{
    return inst->console_path;
}

/* ---- crash cleanup ------------------------------------------------------------------------ */

/* Whether /proc/<pid>/cmdline has an argument containing state_dir. */
static bool
pid_is_our_qemu(pid_t pid, const char *state_dir)
{
    _cleanup_free_ char *path = cc_xasprintf("/proc/%d/cmdline", (int)pid);
    _cleanup_free_ char *pidfile = cc_xasprintf("%s/qemu.pid", state_dir);
    _cleanup_free_ char *data = NULL;
    size_t len = 0;

    /* The recorded pid is stale after a crash (QEMU died by PDEATHSIG and left its pidfile),
     * so it may belong to anything now: only a process given exactly our -pidfile is ours. */
    if (cc_read_file(path, 1 << 20, &data, &len, NULL) < 0)
        return false;
    for (size_t off = 0; off < len; off += strlen(data + off) + 1)
        if (strcmp(data + off, pidfile) == 0)
            return true;
    return false;
}

static int
kill_recorded_qemu(const char *state_dir, cc_error **err)
{
    _cleanup_free_ char *path = cc_xasprintf("%s/qemu.pid", state_dir);
    _cleanup_free_ char *data = NULL;
    _cleanup_close_ int pidfd = -EBADF;
    char *end;
    int r;

    r = cc_read_file(path, 64, &data, NULL, err);
    if (r == -ENOENT)
        return 0;
    if (r < 0)
        return r;
    long pid = strtol(data, &end, 10);
    if (pid <= 0 || pid > INT32_MAX || (*end && *end != '\n')) {
        cc_log(CC_LOG_DEBUG, "cleanup: '%s' holds no pid; ignoring it", path);
        return 0;
    }
    pidfd = pidfd_open((pid_t)pid, 0);
    if (pidfd < 0) /* ESRCH: gone already */
        return errno == ESRCH ? 0 : cc_error_set(err, -errno, "pidfd_open %ld", pid);
    /* Checked after pidfd_open: the pidfd pins the process the cmdline belongs to. */
    if (!pid_is_our_qemu((pid_t)pid, state_dir))
        return 0;
    cc_log(CC_LOG_INFO, "cleanup: killing leftover qemu %ld of '%s'", pid, state_dir);
    if (pidfd_send_signal(pidfd, SIGKILL, NULL, 0) < 0 && errno != ESRCH)
        return cc_error_set(err, -errno, "kill qemu %ld", pid);
    struct pollfd p = {.fd = pidfd, .events = POLLIN};
    if (poll(&p, 1, (int)(VMM_KILL_WAIT_USEC / 1000)) <= 0)
        return cc_error_msg(err, -ETIMEDOUT, "qemu %ld did not die after SIGKILL", pid);
    return 0;
}

static int
destroy_recorded_domain(const char *state_dir, cc_error **err)
{
    _cleanup_free_ char *path = cc_xasprintf("%s/backend", state_dir);
    _cleanup_free_ char *data = NULL;
    char uri[512], name[256];
    int r;

    r = cc_read_file(path, 4096, &data, NULL, err);
    if (r == -ENOENT)
        return 0;
    if (r < 0)
        return r;
    if (!cc_startswith(data, "libvirt "))
        return 0;
    if (sscanf(data, "libvirt %511s %255s", uri, name) != 2)
        return cc_error_msg(err, -EINVAL, "'%s': malformed", path);
    const vmm_backend_ops *ops = vmm_libvirt_ops(err);
    if (!ops)
        return err && *err ? (*err)->code : -ENOENT;
    return ops->destroy_leftover(uri, name, err);
}

int
vmm_cleanup(const char *state_dir, cc_error **err)
{
    struct stat st;
    int r;

    if (stat(state_dir, &st) < 0) {
        if (errno == ENOENT)
            return 0;
        return cc_error_set(err, -errno, "cleanup '%s': stat", state_dir);
    }
    r = kill_recorded_qemu(state_dir, err);
    if (r < 0)
        return cc_error_prefix(err, r, "cleanup '%s'", state_dir);
    r = destroy_recorded_domain(state_dir, err);
    if (r < 0)
        return cc_error_prefix(err, r, "cleanup '%s'", state_dir);
    remove_files(state_dir, state_files, ELEMENTSOF(state_files));
    remove_files(state_dir, log_files, ELEMENTSOF(log_files));
    if (rmdir(state_dir) < 0 && errno != ENOENT && errno != ENOTEMPTY && errno != EEXIST)
        return cc_error_set(err, -errno, "cleanup '%s': rmdir", state_dir);
    return 0;
}
