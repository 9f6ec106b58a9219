/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The pod's VM and the connection to its agent: start (config, sizing, vmm_start, agent
 * readiness, CreateSandbox), the liveness probe, OOM events, stop and cleanup.
 */
#define _GNU_SOURCE
#include "containerd/events/task.pb-c.h"
#include "fs.h"
#include "kata/agent.pb-c.h"
#include "kata/health.pb-c.h"
#include "log.h"
#include "shim.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#ifndef CLOAK_PREFIX
#define CLOAK_PREFIX "/usr/local"
#endif

#define HEALTH_TRY_TIMEOUT (3 * SHIM_USEC_PER_SEC)
#define OOM_RETRY_USEC (1 * SHIM_USEC_PER_SEC)

/* --- configuration --------------------------------------------------------------------------- */

static int
find_config(const char *config_path, char **ret)
{
    const char *env = getenv("CLOAK_CONFIG");
    if (config_path && *config_path) {
        *ret = cc_xstrdup(config_path);
        return 0;
    }
    if (env && *env) {
        *ret = cc_xstrdup(env);
        return 0;
    }
    static const char *const candidates[] = {
        "/etc/cloak/cloak.toml",
        CLOAK_PREFIX "/share/cloak/configs/cloak.toml",
    };
    for (size_t i = 0; i < ELEMENTSOF(candidates); i++)
        if (access(candidates[i], R_OK) == 0) {
            *ret = cc_xstrdup(candidates[i]);
            return 0;
        }
    return -ENOENT;
}

/* config.json's annotations as a NULL-terminated key, value list (borrowed strings). */
static const char **
annotation_pairs(const json_t *config)
{
    json_t *ann = json_object_get(config, "annotations");
    size_t n = json_is_object(ann) ? json_object_size(ann) : 0, i = 0;
    const char **v = cc_xreallocarray(NULL, 2 * n + 2, sizeof(*v));
    const char *key;
    json_t *val;
    if (n > 0)
        json_object_foreach(ann, key, val) {
            if (!json_is_string(val))
                continue;
            v[i++] = key;
            v[i++] = json_string_value(val);
        }
    v[i] = v[i + 1] = NULL;
    return v;
}

static int
load_config(shim *s, const char *config_path, const json_t *config_json, vmm_config **ret,
            cc_error **err)
{
    _cleanup_free_ char *path = NULL;
    if (find_config(config_path, &path) < 0)
        return cc_error_msg(err, -ENOENT,
                            "no configuration: set the runtime's options.ConfigPath in "
                            "containerd's config, or CLOAK_CONFIG, or install "
                            "/etc/cloak/cloak.toml");
    _cleanup_(vmm_config_freep) vmm_config *c = NULL;
    int r = vmm_config_load(path, &c, err);
    if (r < 0)
        return r;
    r = vmm_config_resolve_guest(c, s->exe_dir, CLOAK_PREFIX, err);
    if (r < 0)
        return cc_error_prefix(err, r, "%s", path);
    _cleanup_free_ const char **pairs = annotation_pairs(config_json);
    r = vmm_config_apply_annotations(c, pairs, err);
    if (r < 0)
        return r;
    unsigned vcpus, memory;
    r = shim_sandbox_sizing(config_json, c->vcpus, c->max_vcpus, c->memory_mib,
                            c->max_memory_mib, &vcpus, &memory, err);
    if (r < 0)
        return r;
    c->vcpus = vcpus;
    c->memory_mib = memory;
    cc_log(CC_LOG_INFO, "config %s: profile %s, %u vCPUs, %u MiB", path,
           vmm_profile_to_string(c->profile), vcpus, memory);
    *ret = TAKE_PTR(c);
    return 0;
}

/* The network namespace CNI made for the pod (config.json linux.namespaces), or NULL. */
static const char *
netns_path(const json_t *config)
{
    json_t *ns = json_object_get(json_object_get(config, "linux"), "namespaces");
    size_t i;
    json_t *v;
    json_array_foreach(ns, i, v) {
        const char *type = json_string_value(json_object_get(v, "type"));
        const char *path = json_string_value(json_object_get(v, "path"));
        if (cc_streq(type, "network") && path && *path)
            return path;
    }
    return NULL;
}

/* --- the agent connection ---------------------------------------------------------------------- */

static int
connect_address(const char *address, int *ret_fd, cc_error **err)
{
    const char *p;
    _cleanup_close_ int fd = -EBADF;
    if ((p = cc_startswith(address, "unix:"))) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        if (strlen(p) >= sizeof(sa.sun_path))
            return cc_error_set(err, -ENAMETOOLONG, "agent address '%s': path too long", address);
        strcpy(sa.sun_path, p);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
            return cc_error_set(err, -errno, "connect to the agent at '%s'", p);
    } else if ((p = cc_startswith(address, "vsock:"))) {
        unsigned cid, port;
        if (sscanf(p, "%u:%u", &cid, &port) != 2)
            return cc_error_msg(err, -EINVAL, "agent address '%s'", address);
        struct sockaddr_vm sa = {.svm_family = AF_VSOCK, .svm_cid = cid, .svm_port = port};
        fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
            return cc_error_set(err, -errno, "connect to the agent at '%s'", address);
    } else
        return cc_error_msg(err, -EINVAL, "agent address '%s': unknown scheme", address);
    *ret_fd = TAKE_FD(fd);
    return 0;
}

typedef struct connect_job {
    int r;
    cc_error *err;
} connect_job;

/* Loop: (re)connects s->agent unless it is open. */
static void
agent_connect_on_loop(shim *s, void *arg)
{
    connect_job *j = arg;
    if (s->agent && !cc_ttrpc_client_is_closed(s->agent)) {
        j->r = 0;
        return;
    }
    s->agent = cc_ttrpc_client_free(s->agent);
    if (!s->inst || s->vm_gone) {
        j->r = cc_error_msg(&j->err, -ESRCH, "the VM is gone");
        return;
    }
    int fd = -EBADF;
    j->r = connect_address(vmm_instance_agent_address(s->inst), &fd, &j->err);
    if (j->r < 0)
        return;
    j->r = cc_ttrpc_client_new(s->loop, fd, &s->agent, &j->err);
    if (j->r < 0)
        cc_close(fd);
}

/*
 * Polls Health.Check until SERVING. QEMU's end of the virtio-serial port exists from the
 * start, but the guest opens it only once the agent runs: requests wait in QEMU until then,
 * so each try has a short timeout (late answers to forgotten calls are dropped).
 */
static int
wait_agent_ready(shim *s, double deadline, cc_error **err)
{
    _cleanup_free_ char *last = cc_xstrdup("nothing tried");
    while (shim_now_sec() < deadline) {
        connect_job j = {0};
        if (shim_on_loop(s, agent_connect_on_loop, &j) < 0)
            return cc_error_msg(err, -ESHUTDOWN, "shim shutting down");
        if (j.r < 0) {
            free(last);
            last = cc_xstrdup(cc_error_message(j.err));
            cc_error_free(j.err);
            if (j.r == -ESRCH)
                break;
            usleep(200 * 1000);
            continue;
        }
        Grpc__CheckRequest req = GRPC__CHECK_REQUEST__INIT;
        ProtobufCMessage *resp = NULL;
        _cleanup_error_ cc_error *e = NULL;
        int code;
        int r = shim_agent_call(s, SHIM_HEALTH_SERVICE, "Check", &req.base,
                                &grpc__health_check_response__descriptor, HEALTH_TRY_TIMEOUT,
                                &resp, &code, &e);
        if (r >= 0) {
            int status = ((Grpc__HealthCheckResponse *)resp)->status;
            protobuf_c_message_free_unpacked(resp, NULL);
            if (status == GRPC__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING)
                return 0;
            free(last);
            last = cc_xasprintf("Health.Check: status %d", status);
        } else {
            free(last);
            last = cc_xstrdup(cc_error_message(e));
        }
        if (code != CC_TTRPC_DEADLINE_EXCEEDED)
            usleep(200 * 1000);
    }
    return cc_error_msg(err, -ETIMEDOUT, "the agent did not answer within the boot timeout: %s",
                        last);
}

/* --- start ------------------------------------------------------------------------------------- */

static void
cleanup_if_empty(cc_loop *loop, void *userdata)
{
    shim *s = userdata;
    (void)loop;
    if (!s->containers && !s->sandbox_starting)
        shim_sandbox_cleanup(s);
}

static void
on_vm_exit(vmm_instance *inst, int exit_status, const char *reason, void *userdata)
{
    shim *s = userdata;
    (void)inst;
    cc_log(s->exiting || s->vm_stopping ? CC_LOG_INFO : CC_LOG_WARNING,
           "VM of pod %s exited (status %d): %s",
           s->sandbox_id ? s->sandbox_id : "?", exit_status, reason);
    s->vm_gone = true;
    s->agent_ready = false;
    s->health_timer = cc_loop_source_free(s->health_timer);
    /* Every call in flight (WaitProcess, stdio, OOM) completes UNAVAILABLE from here: each
     * process then exits with SHIM_EXIT_UNKNOWN (service.c). */
    for (shim_container *c = s->containers; c; c = c->next) {
        shim_io_agent_closed(c->init.io);
        for (shim_process *p = c->execs; p; p = p->next)
            shim_io_agent_closed(p->io);
    }
    s->agent = cc_ttrpc_client_free(s->agent);
    /* A pod with no container left (a failed sandbox Create): its state goes now. */
    (void)cc_loop_post(s->loop, cleanup_if_empty, s);
}

typedef struct start_job {
    const vmm_vm *vm;
    int r;
    cc_error *err;
} start_job;

static void
vm_start_on_loop(shim *s, void *arg)
{
    start_job *j = arg;
    j->r = vmm_start(s->loop, j->vm, s->config->backend, on_vm_exit, s, &s->inst, &j->err);
    if (j->r >= 0) {
        s->vm_started = true;
        s->vm_pid = vmm_instance_pid(s->inst);
    }
}

void
shim_sandbox_stop_job(shim *s, void *why)
{
    shim_sandbox_stop(s, why);
}

int
shim_write_pid_file(const char *state_dir, cc_error **err)
{
    if (mkdir("/run/cloak", 0711) < 0 && errno != EEXIST)
        return cc_error_set(err, -errno, "mkdir /run/cloak");
    if (mkdir(SHIM_STATE_ROOT, 0711) < 0 && errno != EEXIST)
        return cc_error_set(err, -errno, "mkdir %s", SHIM_STATE_ROOT);
    if (mkdir(state_dir, 0711) < 0 && errno != EEXIST)
        return cc_error_set(err, -errno, "mkdir %s", state_dir);
    _cleanup_close_ int dfd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (dfd < 0)
        return cc_error_set(err, -errno, "open %s", state_dir);
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
    return cc_write_file_atomic(dfd, "shim.pid", buf, (size_t)n, 0644, err);
}

/* Waits for the agent of the started VM, then CreateSandbox. */
static int
sandbox_enter(shim *s, double t_vm, const json_t *config_json, const shim_container_spec *spec,
              cc_error **err)
{
    int r = wait_agent_ready(s, t_vm + s->config->boot_timeout_sec, err);
    if (r < 0)
        return r;
    double t_ready = shim_now_sec();
    cc_log(CC_LOG_INFO, "pod %s: agent ready %.2f s after the VM started", s->sandbox_id,
           t_ready - t_vm);

    _cleanup_msg_ Grpc__CreateSandboxRequest *req = NULL;
    r = shim_sandbox_request(spec, config_json, 0, &req, err);
    if (r < 0)
        return r;
    r = shim_agent_call(s, SHIM_AGENT_SERVICE, "CreateSandbox", &req->base, NULL,
                        SHIM_AGENT_CALL_TIMEOUT, NULL, NULL, err);
    if (r < 0)
        return r;
    cc_log(CC_LOG_INFO, "pod %s: sandbox created in the guest in %.2f s", s->sandbox_id,
           shim_now_sec() - t_ready);
    return 0; /* agent_ready is set on the loop, by the sandbox's create_done */
}

int
shim_sandbox_start(shim *s, const char *config_path, const json_t *config_json,
                   const shim_container_spec *spec, cc_error **err)
{
    double t0 = shim_now_sec();
    _cleanup_(vmm_config_freep) vmm_config *c = NULL;
    int r = load_config(s, config_path, config_json, &c, err);
    if (r < 0)
        return r;
    s->config = TAKE_PTR(c);
    s->sandbox_id = cc_xstrdup(spec->sandbox_id);
    s->state_dir = shim_state_dir(s->args->address, s->args->namespace_, spec->sandbox_id);
    r = shim_write_pid_file(s->state_dir, err);
    if (r < 0)
        return r;

    vmm_vm_params p = {
        .id = spec->sandbox_id,
        .state_dir = s->state_dir,
        .netns_path = netns_path(config_json),
    };
    vmm_host_probe(&p.host);
    r = vmm_vm_new(s->config, &p, &s->vm, err);
    if (r < 0)
        return r;

    start_job sj = {.vm = s->vm};
    if (shim_on_loop(s, vm_start_on_loop, &sj) < 0)
        return cc_error_msg(err, -ESHUTDOWN, "shim shutting down");
    if (sj.r < 0)
        return shim_error_move(err, sj.err, sj.r);
    double t_vm = shim_now_sec();
    cc_log(CC_LOG_INFO, "pod %s: VM started (pid %d, %s, %u vCPUs, %u MiB) in %.2f s",
           s->sandbox_id, s->vm_pid, vmm_backend_to_string(vmm_instance_backend(s->inst)),
           s->vm->vcpus, s->vm->memory_mib, t_vm - t0);

    r = sandbox_enter(s, t_vm, config_json, spec, err);
    if (r < 0)
        (void)shim_on_loop(s, shim_sandbox_stop_job, (void *)"the sandbox's Create failed");
    return r;
}

/* --- stop and cleanup -------------------------------------------------------------------------- */

void
shim_sandbox_stop(shim *s, const char *why)
{
    if (!s->inst || s->vm_gone)
        return;
    cc_log(CC_LOG_INFO, "pod %s: stopping the VM: %s", s->sandbox_id, why);
    s->vm_stopping = true;
    _cleanup_error_ cc_error *e = NULL;
    int r = vmm_instance_stop(s->inst, SHIM_VM_STOP_TIMEOUT, &e);
    if (r < 0 && r != -EBUSY)
        cc_log_error(CC_LOG_WARNING, e, "pod %s: stop the VM", s->sandbox_id);
}

void
shim_sandbox_cleanup(shim *s)
{
    if (s->inst && s->vm_gone)
        s->inst = vmm_instance_free(s->inst);
    if (s->state_dir && !s->inst) {
        _cleanup_error_ cc_error *e = NULL;
        if (shim_state_dir_remove(s->state_dir, &e) < 0)
            cc_log_error(CC_LOG_WARNING, e, "remove %s", s->state_dir);
    }
}

/* --- monitors (loop) ----------------------------------------------------------------------------- */

static void
health_reply(cc_ttrpc_code code, const char *message, const uint8_t *payload, size_t len,
             void *userdata)
{
    shim *s = userdata;
    (void)payload;
    (void)len;
    s->health_inflight = false;
    if (code == CC_TTRPC_OK) {
        s->health_failures = 0;
        return;
    }
    if (s->vm_gone || s->exiting)
        return;
    s->health_failures++;
    cc_log(CC_LOG_WARNING, "pod %s: agent health check failed (%u of %u): %s", s->sandbox_id,
           s->health_failures, SHIM_HEALTH_FAILURES, message);
    if (s->health_failures >= SHIM_HEALTH_FAILURES)
        shim_sandbox_stop(s, "the agent stopped answering");
}

static int
health_tick(cc_loop_source *src, uint64_t deadline, void *userdata)
{
    shim *s = userdata;
    (void)src;
    (void)deadline;
    if (s->health_inflight || !s->agent || s->vm_gone)
        return 0;
    Grpc__CheckRequest req = GRPC__CHECK_REQUEST__INIT;
    if (cc_ttrpc_client_call(s->agent, SHIM_HEALTH_SERVICE, "Check", &req.base,
                             SHIM_HEALTH_TIMEOUT, health_reply, s, NULL) >= 0)
        s->health_inflight = true;
    return 0;
}

static void oom_poll(shim *s);

static int
oom_retry(cc_loop_source *src, uint64_t deadline, void *userdata)
{
    (void)deadline;
    cc_loop_source_free(src);
    oom_poll(userdata);
    return 0;
}

static void
oom_reply(cc_ttrpc_code code, const char *message, const uint8_t *payload, size_t len,
          void *userdata)
{
    shim *s = userdata;
    s->oom_inflight = false;
    if (code == CC_TTRPC_UNAVAILABLE || code == CC_TTRPC_UNIMPLEMENTED || s->vm_gone)
        return;
    if (code != CC_TTRPC_OK) {
        cc_log(CC_LOG_DEBUG, "GetOOMEvent: %s", message);
        (void)cc_loop_add_timer(s->loop, OOM_RETRY_USEC, 0, oom_retry, s, NULL, NULL);
        return;
    }
    Grpc__OOMEvent *ev = (Grpc__OOMEvent *)protobuf_c_message_unpack(&grpc__oomevent__descriptor,
                                                                      NULL, len, payload);
    if (ev && ev->container_id && *ev->container_id) {
        cc_log(CC_LOG_INFO, "container %s: OOM kill in the guest", ev->container_id);
        Containerd__Events__TaskOOM oom = CONTAINERD__EVENTS__TASK_OOM__INIT;
        oom.container_id = ev->container_id;
        shim_events_publish(s->events, "/tasks/oom", &oom.base);
    }
    if (ev)
        protobuf_c_message_free_unpacked(&ev->base, NULL);
    oom_poll(s);
}

static void
oom_poll(shim *s)
{
    if (s->oom_inflight || !s->agent || s->vm_gone || s->exiting)
        return;
    Grpc__GetOOMEventRequest req = GRPC__GET_OOMEVENT_REQUEST__INIT;
    if (cc_ttrpc_client_call(s->agent, SHIM_AGENT_SERVICE, "GetOOMEvent", &req.base, 0,
                             oom_reply, s, NULL) >= 0)
        s->oom_inflight = true;
}

static void
agent_closed(cc_ttrpc_client *c, int error, void *userdata)
{
    shim *s = userdata;
    (void)c;
    if (s->vm_gone || s->exiting)
        return;
    cc_log_errno(CC_LOG_ERROR, error, "pod %s: the agent connection closed", s->sandbox_id);
    shim_sandbox_stop(s, "the agent connection was lost");
}

void
shim_sandbox_monitor(shim *s)
{
    if (s->agent)
        cc_ttrpc_client_set_close_callback(s->agent, agent_closed, s);
    if (!s->health_timer)
        (void)cc_loop_add_timer(s->loop, SHIM_HEALTH_INTERVAL, SHIM_HEALTH_INTERVAL, health_tick,
                                s, &s->health_timer, NULL);
    oom_poll(s);
}
