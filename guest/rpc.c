/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
/*
 * grpc.AgentService and grpc.Health: one handler per RPC, each decode -> validate -> act, so
 * that a request failing validation changes nothing (and a policy check can later sit between
 * validate and act). Methods not registered here are answered UNIMPLEMENTED by the server.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "fs.h"
#include "log.h"
#include "util.h"

#include "google/protobuf/empty.pb-c.h"
#include "kata/health.pb-c.h"

#define AGENT_API_VERSION "0.0.1"

void
agent_msg_freep(void *p)
{
    ProtobufCMessage **m = p;
    if (*m)
        protobuf_c_message_free_unpacked(*m, NULL);
}



void
agent_rpc_fail(cc_ttrpc_call *call, const char *method, const cc_error *e)
{
    cc_log(CC_LOG_WARNING, "%s: %s", method, cc_error_message(e));
    cc_ttrpc_call_fail_error(call, e);
}

/* Container RPCs need a sandbox that is not being torn down. */
static bool
need_sandbox(agent *a, cc_ttrpc_call *call)
{
    if (!a->sandbox_created) {
        cc_ttrpc_call_fail(call, CC_TTRPC_FAILED_PRECONDITION,
                           "no sandbox: call CreateSandbox first");
        return false;
    }
    if (a->destroying) {
        cc_ttrpc_call_fail(call, CC_TTRPC_FAILED_PRECONDITION, "the sandbox is being destroyed");
        return false;
    }
    return true;
}

/* Looks up container_id (validated) and its process exec_id; answers the call on failure. */
bool
agent_find_process(agent *a, cc_ttrpc_call *call, const char *cid, const char *eid,
             agent_container **ret_c, agent_process **ret_p)
{
    _cleanup_error_ cc_error *e = NULL;
    agent_container *c;
    agent_process *p;

    if (agent_validate_id(cid, "container_id", false, &e) < 0 ||
        agent_validate_id(eid, "exec_id", true, &e) < 0) {
        cc_ttrpc_call_fail_error(call, e);
        return false;
    }
    c = agent_container_find(a, cid);
    if (!c) {
        cc_ttrpc_call_fail(call, CC_TTRPC_NOT_FOUND, "container %s: not found", cid);
        return false;
    }
    p = agent_process_find(c, eid);
    if (!p) {
        cc_ttrpc_call_fail(call, CC_TTRPC_NOT_FOUND, "container %s: process %s not found", cid,
                           eid);
        return false;
    }
    *ret_c = c;
    if (ret_p)
        *ret_p = p;
    return true;
}

/* --- grpc.Health --------------------------------------------------------------------------- */

static void
rpc_check(cc_ttrpc_call *call, const uint8_t *buf, size_t len, void *userdata)
{
    _cleanup_msg_ Grpc__CheckRequest *req = UNPACK(Grpc__CheckRequest, grpc__check_request__descriptor);
    Grpc__HealthCheckResponse resp = GRPC__HEALTH_CHECK_RESPONSE__INIT;
    (void)userdata;
    if (!req)
        return;
    resp.status = GRPC__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
    cc_ttrpc_call_reply(call, &resp.base);
}

static void
rpc_version(cc_ttrpc_call *call, const uint8_t *buf, size_t len, void *userdata)
{
    _cleanup_msg_ Grpc__CheckRequest *req = UNPACK(Grpc__CheckRequest, grpc__check_request__descriptor);
    Grpc__VersionCheckResponse resp = GRPC__VERSION_CHECK_RESPONSE__INIT;
    (void)userdata;
    if (!req)
        return;
    resp.grpc_version = (char *)AGENT_API_VERSION;
    resp.agent_version = (char *)CLOAK_VERSION;
    cc_ttrpc_call_reply(call, &resp.base);
}

/* --- sandbox ------------------------------------------------------------------------------- */

static int
validate_hostname(const char *h, cc_error **err)
{
    size_t n = strlen(h);
    if (n > 64)
        return cc_error_set(err, -EINVAL, "hostname: longer than 64 bytes");
    if (strspn(h, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") != n ||
        h[0] == '-' || h[0] == '.')
        return cc_error_set(err, -EINVAL, "hostname: invalid");
    return 0;
}

static int
write_resolv_conf(char **dns, size_t n, cc_error **err)
{
    _cleanup_free_ char *text = cc_xzalloc(1);
    size_t len = 0;

    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(dns[i]);
        text = cc_xrealloc(text, len + l + 2);
        memcpy(text + len, dns[i], l);
        len += l;
        text[len++] = '\n';
        text[len] = '\0';
    }
    _cleanup_close_ int etc = open("/etc", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (etc < 0)
        return cc_error_set(err, -errno, "/etc");
    return cc_write_file_atomic(etc, "resolv.conf", text, len, 0644, err);
}

static void
rpc_create_sandbox(cc_ttrpc_call *call, const uint8_t *buf, size_t len, void *userdata)
{
    agent *a = userdata;
    _cleanup_msg_ Grpc__CreateSandboxRequest *req =
        UNPACK(Grpc__CreateSandboxRequest, grpc__create_sandbox_request__descriptor);
    _cleanup_error_ cc_error *e = NULL;
    int r;

    if (!req)
        return;
    /* validate */
    if (a->sandbox_created) {
        cc_ttrpc_call_fail(call, CC_TTRPC_ALREADY_EXISTS, "sandbox %s: already created",
                           a->sandbox_id);
        return;
    }
    if (a->destroying) {
        cc_ttrpc_call_fail(call, CC_TTRPC_FAILED_PRECONDITION, "the sandbox is being destroyed");
        return;
    }
    if ((r = agent_validate_id(req->sandbox_id, "sandbox_id", false, &e)) < 0 ||
        (r = validate_hostname(req->hostname, &e)) < 0 ||
        (r = agent_storages_validate(a, req->storages, req->n_storages, "storages", &e)) < 0)
        return agent_rpc_fail(call, "CreateSandbox", e);
    if (req->n_dns > 16) {
        cc_error_set(&e, -E2BIG, "dns: more than 16 lines");
        return agent_rpc_fail(call, "CreateSandbox", e);
    }
    for (size_t i = 0; i < req->n_dns; i++) {
        const char *d = req->dns[i];
        bool ok = strlen(d) <= 256;
        for (const char *p = d; ok && *p; p++)
            ok = *p >= 0x20 && *p < 0x7f;
        if (!ok) {
            cc_error_set(&e, -EINVAL, "dns[%zu]: not one printable line of at most 256 bytes", i);
            return agent_rpc_fail(call, "CreateSandbox", e);
        }
    }
    if (req->guest_hook_path && *req->guest_hook_path) {
        cc_error_set(&e, -EINVAL, "guest_hook_path: guest hooks are not supported");
        return agent_rpc_fail(call, "CreateSandbox", e);
    }
    if (req->n_kernel_modules > 0) {
        cc_error_set(&e, -EINVAL, "kernel_modules: the host may not load guest kernel modules");
        return agent_rpc_fail(call, "CreateSandbox", e);
    }
    for (size_t i = 0; i < req->n_storages; i++)
        if (cc_streq(req->storages[i]->driver, "image_guest_pull")) {
            cc_error_set(&e, -EINVAL, "storages[%zu].driver: image_guest_pull belongs to a container",
                         i);
            return agent_rpc_fail(call, "CreateSandbox", e);
        }

    /* act */
    r = agent_storages_mount(a, req->storages, req->n_storages, NULL, NULL, &a->sandbox_mounts,
                             &a->n_sandbox_mounts, NULL, &e);
    if (r < 0)
        return agent_rpc_fail(call, "CreateSandbox", e);
    if (a->opts.init) {
        if (*req->hostname && sethostname(req->hostname, strlen(req->hostname)) < 0)
            cc_log_errno(CC_LOG_WARNING, -errno, "sethostname");
        if (req->n_dns > 0 && write_resolv_conf(req->dns, req->n_dns, &e) < 0) {
            cc_log_error(CC_LOG_WARNING, e, "cannot write /etc/resolv.conf");
            e = cc_error_free(e);
        }
    }
    a->sandbox_created = true;
    a->sandbox_id = cc_xstrdup(req->sandbox_id);
    cc_log(CC_LOG_INFO, "sandbox %s created (%zu storages)", a->sandbox_id, req->n_storages);
    cc_ttrpc_call_reply(call, NULL);
}

typedef struct destroy_op {
    agent *agent;
    cc_ttrpc_call *call;
    size_t pending;
} destroy_op;

static void
destroy_finish(destroy_op *op)
{
    agent *a = op->agent;

    agent_storages_unmount(a, TAKE_PTR(a->sandbox_mounts), a->n_sandbox_mounts);
    a->n_sandbox_mounts = 0;
    cc_log(CC_LOG_INFO, "sandbox %s destroyed", a->sandbox_id ? a->sandbox_id : "(none)");
    cc_ttrpc_call_reply(op->call, NULL);
    free(op);
    agent_shutdown_later(a);
}

static void
on_destroy_removed(agent_container *c, int r, void *userdata)
{
    destroy_op *op = userdata;
    (void)c;
    (void)r;
    if (--op->pending == 0)
        destroy_finish(op);
}

static void
rpc_destroy_sandbox(cc_ttrpc_call *call, const uint8_t *buf, size_t len, void *userdata)
{
    agent *a = userdata;
    _cleanup_msg_ Grpc__DestroySandboxRequest *req =
        UNPACK(Grpc__DestroySandboxRequest, grpc__destroy_sandbox_request__descriptor);
    destroy_op *op;

    if (!req)
        return;
    if (a->destroying) {
        cc_ttrpc_call_fail(call, CC_TTRPC_FAILED_PRECONDITION, "the sandbox is being destroyed");
        return;
    }
    a->destroying = true;
    op = cc_xzalloc(sizeof(*op));
    op->agent = a;
    op->call = call;
    /* pending counts one extra so that synchronous completions cannot finish early */
    op->pending = 1;
    for (agent_container *c = a->containers, *next; c; c = next) {
        next = c->next;
        if (c->state == AGENT_CONTAINER_REMOVING || c->remove_requested)
            continue; /* a RemoveContainer is at it already */
        op->pending++;
        agent_container_remove(c, 0, on_destroy_removed, op);
    }
    on_destroy_removed(NULL, 0, op);
}

/* --- containers ---------------------------------------------------------------------------- */

static void
rpc_create_container(cc_ttrpc_call *call, const uint8_t *buf, size_t len, void *userdata)
{
    agent *a = userdata;
    _cleanup_msg_ Grpc__CreateContainerRequest *req =
        UNPACK(Grpc__CreateContainerRequest, grpc__create_container_request__descriptor);
    _cleanup_error_ cc_error *e = NULL;
    int r;

    if (!req || !need_sandbox(a, call))
        return;
    if ((r = agent_validate_id(req->container_id, "container_id", false, &e)) < 0 ||
        (r = agent_validate_id(req->exec_id, "exec_id", true, &e)) < 0)
        return agent_rpc_fail(call, "CreateContainer", e);
    if (*req->exec_id && !cc_streq(req->exec_id, req->container_id)) {
        cc_error_set(&e, -EINVAL, "exec_id: must be empty or the container id");
        return agent_rpc_fail(call, "CreateContainer", e);
    }
    if (agent_container_find(a, req->container_id) ||
        agent_container_pending(a, req->container_id)) {
        cc_ttrpc_call_fail(call, CC_TTRPC_ALREADY_EXISTS, "container %s: already exists",
                           req->container_id);
        return;
    }
    if (req->n_devices > 0) {
        cc_error_set(&e, -EOPNOTSUPP, "devices: device passthrough is not supported");
        return agent_rpc_fail(call, "CreateContainer", e);
    }
    if (req->n_shared_mounts > 0) {
        cc_error_set(&e, -EOPNOTSUPP, "shared_mounts: not supported");
        return agent_rpc_fail(call, "CreateContainer", e);
    }
    if (req->stdin_port || req->stdout_port || req->stderr_port) {
        cc_error_set(&e, -EOPNOTSUPP, "std*_port: vsock stdio is not supported");
        return agent_rpc_fail(call, "CreateContainer", e);
    }
    if (req->string_user && ((req->string_user->uid && *req->string_user->uid) ||
                             (req->string_user->gid && *req->string_user->gid))) {
        cc_error_set(&e, -EINVAL, "string_user: user names are not resolved; use OCI.Process.User");
        return agent_rpc_fail(call, "CreateContainer", e);
    }
    if ((r = agent_storages_validate(a, req->storages, req->n_storages, "storages", &e)) < 0 ||
        (r = agent_validate_spec(a, req->oci, &e)) < 0)
        return agent_rpc_fail(call, "CreateContainer", e);

    agent_container_create(a, call, req);
}

static void
rpc_start_container(cc_ttrpc_call *call, const uint8_t *buf, size_t len, void *userdata)
{
    agent *a = userdata;
    _cleanup_msg_ Grpc__StartContainerRequest *req =
        UNPACK(Grpc__StartContainerRequest, grpc__start_container_request__descriptor);
    agent_container *c;

    if (!req || !need_sandbox(a, call) || !agent_find_process(a, call, req->container_id, "", &c, NULL))
        return;
    agent_container_start(c, call);
}

static void
on_container_removed(agent_container *c, int r, void *userdata)
{
    cc_ttrpc_call *call = userdata;
    (void)c;
    if (r < 0)
        cc_ttrpc_call_fail(call, cc_ttrpc_code_from_errno(r), "cannot remove the container");
    else
        cc_ttrpc_call_reply(call, NULL);
}

static void
rpc_remove_container(cc_ttrpc_call *call, const uint8_t *buf, size_t len, void *userdata)
{
    agent *a = userdata;
    _cleanup_msg_ Grpc__RemoveContainerRequest *req =
        UNPACK(Grpc__RemoveContainerRequest, grpc__remove_container_request__descriptor);
    agent_container *c;

    if (!req || !need_sandbox(a, call) || !agent_find_process(a, call, req->container_id, "", &c, NULL))
        return;
    if (c->state == AGENT_CONTAINER_CREATING || c->state == AGENT_CONTAINER_STARTING ||
        c->state == AGENT_CONTAINER_REMOVING || c->remove_requested) {
        cc_ttrpc_call_fail(call, CC_TTRPC_FAILED_PRECONDITION, "container %s is %s", c->id,
                           agent_container_state_to_string(c->state));
        return;
    }
    agent_container_remove(c, req->timeout, on_container_removed, call);
}

/* --- processes ----------------------------------------------------------------------------- */

static void
rpc_wait_process(cc_ttrpc_call *call, const uint8_t *buf, size_t len, void *userdata)
{
    agent *a = userdata;
    _cleanup_msg_ Grpc__WaitProcessRequest *req =
        UNPACK(Grpc__WaitProcessRequest, grpc__wait_process_request__descriptor);
    agent_container *c;
    agent_process *p;

    if (!req || !agent_find_process(a, call, req->container_id, req->exec_id, &c, &p))
        return;
    agent_process_wait(p, call);
}

/* True when pid has a handler for sig (SigCgt of /proc/<pid>/status). */
static bool
signal_is_caught(pid_t pid, int sig)
{
    char path[64], line[256];
    _cleanup_fclose_ FILE *f = NULL;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    f = fopen(path, "re");
    if (!f)
        return true; /* unknown: leave the signal alone */
    while (fgets(line, sizeof(line), f)) {
        const char *v = cc_startswith(line, "SigCgt:");
        if (v)
            return (strtoull(v, NULL, 16) >> (sig - 1)) & 1;
    }
    return true;
}

static void
rpc_signal_process(cc_ttrpc_call *call, const uint8_t *buf, size_t len, void *userdata)
{
    agent *a = userdata;
    _cleanup_msg_ Grpc__SignalProcessRequest *req =
        UNPACK(Grpc__SignalProcessRequest, grpc__signal_process_request__descriptor);
    agent_container *c;
    agent_process *p;
    int sig;

    if (!req || !agent_find_process(a, call, req->container_id, req->exec_id, &c, &p))
        return;
    if (req->signal > (uint32_t)SIGRTMAX) {
        cc_ttrpc_call_fail(call, CC_TTRPC_INVALID_ARGUMENT, "signal: %u is not a signal",
                           req->signal);
        return;
    }
    if (p->pid <= 0) {
        cc_ttrpc_call_fail(call, CC_TTRPC_FAILED_PRECONDITION, "container %s is %s", c->id,
                           agent_container_state_to_string(c->state));
        return;
    }
    if (p->exited) {
        cc_ttrpc_call_fail(call, CC_TTRPC_NOT_FOUND, "container %s: process already exited",
                           c->id);
        return;
    }
    sig = (int)req->signal;
    /* As Kata: an init process that does not handle SIGTERM would ignore it (it is PID 1 of
     * its namespace), so it gets SIGKILL. */
    if (sig == SIGTERM && p == c->init && !signal_is_caught(p->pid, SIGTERM))
        sig = SIGKILL;
    if (kill(p->pid, sig) < 0) {
        cc_ttrpc_call_fail(call, cc_ttrpc_code_from_errno(errno), "container %s: kill: %s",
                           c->id, strerror(errno));
        return;
    }
    cc_log(CC_LOG_INFO, "container %s: sent signal %d to %d", c->id, sig, (int)p->pid);
    cc_ttrpc_call_reply(call, NULL);
}

static void
rpc_write_stdin(cc_ttrpc_call *call, const uint8_t *buf, size_t len, void *userdata)
{
    agent *a = userdata;
    _cleanup_msg_ Grpc__WriteStreamRequest *req =
        UNPACK(Grpc__WriteStreamRequest, grpc__write_stream_request__descriptor);
    agent_container *c;
    agent_process *p;

    if (!req || !agent_find_process(a, call, req->container_id, req->exec_id, &c, &p))
        return;
    agent_stream_write(&p->in, call, req->data.data, req->data.len);
}

static void
read_stream(cc_ttrpc_call *call, const uint8_t *buf, size_t len, agent *a, bool out)
{
    _cleanup_msg_ Grpc__ReadStreamRequest *req =
        UNPACK(Grpc__ReadStreamRequest, grpc__read_stream_request__descriptor);
    agent_container *c;
    agent_process *p;

    if (!req || !agent_find_process(a, call, req->container_id, req->exec_id, &c, &p))
        return;
    agent_stream_read(out ? &p->out : &p->err, call, req->len);
}

static void
rpc_read_stdout(cc_ttrpc_call *call, const uint8_t *buf, size_t len, void *userdata)
{
    read_stream(call, buf, len, userdata, true);
}

static void
rpc_read_stderr(cc_ttrpc_call *call, const uint8_t *buf, size_t len, void *userdata)
{
    read_stream(call, buf, len, userdata, false);
}

static void
rpc_close_stdin(cc_ttrpc_call *call, const uint8_t *buf, size_t len, void *userdata)
{
    agent *a = userdata;
    _cleanup_msg_ Grpc__CloseStdinRequest *req =
        UNPACK(Grpc__CloseStdinRequest, grpc__close_stdin_request__descriptor);
    agent_container *c;
    agent_process *p;

    if (!req || !agent_find_process(a, call, req->container_id, req->exec_id, &c, &p))
        return;
    agent_stream_close(&p->in);
    cc_ttrpc_call_reply(call, NULL);
}

/* --- guest --------------------------------------------------------------------------------- */

static void
rpc_copy_file(cc_ttrpc_call *call, const uint8_t *buf, size_t len, void *userdata)
{
    agent *a = userdata;
    _cleanup_msg_ Grpc__CopyFileRequest *req =
        UNPACK(Grpc__CopyFileRequest, grpc__copy_file_request__descriptor);
    _cleanup_error_ cc_error *e = NULL;

    if (!req)
        return;
    if (agent_copy_file(a, req, &e) < 0)
        return agent_rpc_fail(call, "CopyFile", e);
    cc_ttrpc_call_reply(call, NULL);
}

static void
rpc_set_guest_date_time(cc_ttrpc_call *call, const uint8_t *buf, size_t len, void *userdata)
{
    agent *a = userdata;
    _cleanup_msg_ Grpc__SetGuestDateTimeRequest *req =
        UNPACK(Grpc__SetGuestDateTimeRequest, grpc__set_guest_date_time_request__descriptor);
    struct timespec ts;

    if (!req)
        return;
    if (req->sec < 0 || req->usec < 0 || req->usec >= 1000000) {
        cc_ttrpc_call_fail(call, CC_TTRPC_INVALID_ARGUMENT, "Sec/Usec: out of range");
        return;
    }
    if (!a->opts.init) {
        cc_ttrpc_call_fail(call, CC_TTRPC_FAILED_PRECONDITION,
                           "the agent is not the guest's init: not setting the clock");
        return;
    }
    ts.tv_sec = (time_t)req->sec;
    ts.tv_nsec = (long)req->usec * 1000;
    if (clock_settime(CLOCK_REALTIME, &ts) < 0) {
        cc_ttrpc_call_fail(call, cc_ttrpc_code_from_errno(errno), "clock_settime: %s",
                           strerror(errno));
        return;
    }
    cc_ttrpc_call_reply(call, NULL);
}

static void
rpc_get_guest_details(cc_ttrpc_call *call, const uint8_t *buf, size_t len, void *userdata)
{
    agent *a = userdata;
    _cleanup_msg_ Grpc__GuestDetailsRequest *req =
        UNPACK(Grpc__GuestDetailsRequest, grpc__guest_details_request__descriptor);
    Grpc__GuestDetailsResponse resp = GRPC__GUEST_DETAILS_RESPONSE__INIT;
    Grpc__AgentDetails details = GRPC__AGENT_DETAILS__INIT;
    static char *storage_handlers[] = {"ephemeral", "local", "image_guest_pull"};

    if (!req)
        return;
    if (req->mem_block_size) {
        _cleanup_free_ char *text = NULL;
        if (cc_read_file("/sys/devices/system/memory/block_size_bytes", 64, &text, NULL, NULL) == 0)
            resp.mem_block_size_bytes = strtoull(text, NULL, 16);
    }
    details.version = (char *)CLOAK_VERSION;
    details.init_daemon = a->opts.init;
    details.storage_handlers = storage_handlers;
    details.n_storage_handlers = sizeof(storage_handlers) / sizeof(storage_handlers[0]);
    details.supports_seccomp = true;
    resp.agent_details = &details;
    cc_ttrpc_call_reply(call, &resp.base);
}

int
agent_rpc_register(agent *a, cc_error **err)
{
    static const cc_ttrpc_method health[] = {
        {"Check", rpc_check},
        {"Version", rpc_version},
    };
    static const cc_ttrpc_method service[] = {
        {"CreateSandbox", rpc_create_sandbox},
        {"DestroySandbox", rpc_destroy_sandbox},
        {"CreateContainer", rpc_create_container},
        {"StartContainer", rpc_start_container},
        {"RemoveContainer", rpc_remove_container},
        {"WaitProcess", rpc_wait_process},
        {"SignalProcess", rpc_signal_process},
        {"WriteStdin", rpc_write_stdin},
        {"ReadStdout", rpc_read_stdout},
        {"ReadStderr", rpc_read_stderr},
        {"CloseStdin", rpc_close_stdin},
        {"CopyFile", rpc_copy_file},
        {"SetGuestDateTime", rpc_set_guest_date_time},
        {"GetGuestDetails", rpc_get_guest_details},
        {"StatsContainer", agent_rpc_stats_container},
        {"PauseContainer", agent_rpc_pause_container},
        {"ResumeContainer", agent_rpc_resume_container},
        {"UpdateContainer", agent_rpc_update_container},
        {"GetOOMEvent", agent_rpc_get_oom_event},
        {"OnlineCPUMem", agent_rpc_online_cpu_mem},
        {"UpdateInterface", agent_rpc_update_interface},
        {"UpdateRoutes", agent_rpc_update_routes},
        {"ListInterfaces", agent_rpc_list_interfaces},
        {"ListRoutes", agent_rpc_list_routes},
        {"ExecProcess", agent_rpc_exec_process},
        {"TtyWinResize", agent_rpc_tty_win_resize},
    };
    static const cc_ttrpc_method own[] = {
        {"ListProcesses", agent_rpc_list_processes},
        {"ReadStdio", agent_rpc_read_stdio},
    };
    int r;

    r = cc_ttrpc_server_register(a->server, "grpc.Health", health,
                                 sizeof(health) / sizeof(health[0]), a, err);
    if (r < 0)
        return r;
    r = cc_ttrpc_server_register(a->server, "grpc.AgentService", service,
                                 sizeof(service) / sizeof(service[0]), a, err);
    if (r < 0)
        return r;
    return cc_ttrpc_server_register(a->server, "cloak.agent.v1.Agent", own,
                                    sizeof(own) / sizeof(own[0]), a, err);
}
