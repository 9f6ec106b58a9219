/* SPDX-License-Identifier: Apache-2.0 */
/*
 * containerd.task.v2.Task: the handlers, the process state machine and its exit pipeline
 * (see shim.h). Handlers that only read or change state answer on the loop; those that need
 * the agent run on a worker thread (shim_spawn) and come back with shim_on_loop().
 */
#define _GNU_SOURCE
#include "containerd/cgroups/v2/metrics.pb-c.h"
#include "containerd/events/task.pb-c.h"
#include "containerd/runtimeoptions/v1/api.pb-c.h"
#include "containerd/task/v2/shim.pb-c.h"
#include "fs.h"
#include "json.h"
#include "kata/agent.pb-c.h"
#include "log.h"
#include "oci.h"
#include "shim.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TASK_SERVICE "containerd.task.v2.Task"
#define CONFIG_JSON_MAX (4u << 20)
#define COPY_FILE_MAX (1u << 20)
#define ID_MAX 128
#define SPEC_URL_PREFIX "types.containerd.io/opencontainers/runtime-spec/1/"
#define REMOVE_TIMEOUT_SEC 10
#define VM_GONE_WAIT_USEC (15 * SHIM_USEC_PER_SEC)
#define SHUTDOWN_FLUSH_USEC (2 * SHIM_USEC_PER_SEC)

/* --- lookups ---------------------------------------------------------------------------------- */

static shim_container *
container_find(shim *s, const char *id)
{
    for (shim_container *c = s->containers; c; c = c->next)
        if (cc_streq(c->id, id))
            return c;
    return NULL;
}

/* The process id/exec_id (exec_id "" = init), or NULL. */
static shim_process *
process_find(shim *s, const char *id, const char *exec_id, shim_container **ret_c)
{
    shim_container *c = container_find(s, id);
    if (!c)
        return NULL;
    if (ret_c)
        *ret_c = c;
    if (!exec_id || !*exec_id)
        return c->init.state == SHIM_PROC_CREATING ? NULL : &c->init;
    for (shim_process *p = c->execs; p; p = p->next)
        if (cc_streq(p->exec_id, exec_id))
            return p;
    return NULL;
}

/* process_find(), or the call failed with NOT_FOUND and NULL (loop handlers). */
static shim_process *
process_find_or_fail(shim *s, cc_ttrpc_call *call, const char *id, const char *exec_id,
                     shim_container **ret_c)
{
    shim_process *p = process_find(s, id, exec_id, ret_c);
    if (!p)
        (void)cc_ttrpc_call_fail(call, CC_TTRPC_NOT_FOUND, "process %s/%s: not found", id,
                                 exec_id);
    return p;
}

/* SIGKILL and SIGTERM of a process already gone succeed (Kata: repeated stops stay
 * idempotent; containerd's teardown sends them more than once). */
static bool
is_stop_signal(uint32_t signo)
{
    return signo == SIGKILL || signo == SIGTERM;
}

/* The exec id the agent knows the process by: the container id for the init. */
static const char *
agent_exec_id(const shim_process *p)
{
    return *p->exec_id ? p->exec_id : p->c->id;
}

static bool
is_init(const shim_process *p)
{
    return !*p->exec_id;
}

static Containerd__V1__Types__Status
proc_status(const shim_process *p)
{
    switch (p->state) {
    case SHIM_PROC_CREATED:
        return CONTAINERD__V1__TYPES__STATUS__CREATED;
    case SHIM_PROC_RUNNING:
        return CONTAINERD__V1__TYPES__STATUS__RUNNING;
    case SHIM_PROC_PAUSED:
        return CONTAINERD__V1__TYPES__STATUS__PAUSED;
    case SHIM_PROC_STOPPED:
        return CONTAINERD__V1__TYPES__STATUS__STOPPED;
    default:
        return CONTAINERD__V1__TYPES__STATUS__UNKNOWN;
    }
}

static Google__Protobuf__Timestamp
timestamp_of(const struct timespec *ts)
{
    Google__Protobuf__Timestamp t = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    t.seconds = ts->tv_sec;
    t.nanos = (int32_t)ts->tv_nsec;
    return t;
}

/* The project's errno table, plus what containerd needs that no errno says: -EBUSY is
 * FAILED_PRECONDITION (a running process, an already started one), -ENOTCONN UNAVAILABLE. */
static cc_ttrpc_code
code_from_errno(int r)
{
    if (r == -EBUSY)
        return CC_TTRPC_FAILED_PRECONDITION;
    if (r == -ENOTCONN || r == -ESHUTDOWN)
        return CC_TTRPC_UNAVAILABLE;
    return cc_ttrpc_code_from_errno(r);
}

static void
fail_error(cc_ttrpc_call *call, const cc_error *e, int r)
{
    if (e)
        (void)cc_ttrpc_call_fail(call, code_from_errno(e->code), "%s", e->message);
    else
        (void)cc_ttrpc_call_fail(call, code_from_errno(r), "%s", strerror(-r));
}

/* --- the exit pipeline ------------------------------------------------------------------------ */

static void proc_maybe_finish(shim_process *p);

static void
proc_answer_waits(shim_process *p)
{
    Containerd__Task__V2__WaitResponse resp = CONTAINERD__TASK__V2__WAIT_RESPONSE__INIT;
    Google__Protobuf__Timestamp at = timestamp_of(&p->exited_at);
    resp.exit_status = (uint32_t)p->exit_status;
    resp.exited_at = &at;
    cc_ttrpc_call **waits = p->waits;
    size_t n = p->n_waits;
    p->waits = NULL;
    p->n_waits = 0;
    for (size_t i = 0; i < n; i++) {
        cc_ttrpc_call_set_cancel(waits[i], NULL, NULL);
        (void)cc_ttrpc_call_reply(waits[i], &resp.base);
    }
    free(waits);
}

/* STOPPED with status: Waits answered, /tasks/exit published (once per process). */
static void
proc_finish(shim_process *p, int status)
{
    shim *s = p->c->s;
    if (p->state == SHIM_PROC_STOPPED)
        return;
    p->state = SHIM_PROC_STOPPED;
    p->exit_status = status;
    clock_gettime(CLOCK_REALTIME, &p->exited_at);
    p->io_timer = cc_loop_source_free(p->io_timer);
    cc_log(CC_LOG_INFO, "container %s%s%s: exited with status %d", p->c->id,
           *p->exec_id ? " exec " : "", p->exec_id, status);
    proc_answer_waits(p);
    Containerd__Events__TaskExit ev = CONTAINERD__EVENTS__TASK_EXIT__INIT;
    Google__Protobuf__Timestamp at = timestamp_of(&p->exited_at);
    ev.container_id = p->c->id;
    ev.id = (char *)(*p->exec_id ? p->exec_id : p->c->id);
    ev.pid = (uint32_t)s->vm_pid;
    ev.exit_status = (uint32_t)status;
    ev.exited_at = &at;
    shim_events_publish(s->events, "/tasks/exit", &ev.base);
}

static void
proc_maybe_finish(shim_process *p)
{
    /* An init that exits while its Start is in flight: /tasks/start goes out first. */
    if (p->busy && p->state == SHIM_PROC_CREATED)
        return;
    if (p->state != SHIM_PROC_STOPPED && p->agent_exited && p->io_done)
        proc_finish(p, p->agent_status);
}

/* STOPPED without an exit event: a process that never ran (a failed or never started exec). */
static void
proc_stop_silently(shim_process *p, int status)
{
    if (p->state == SHIM_PROC_STOPPED)
        return;
    p->io = shim_io_free(p->io);
    p->state = SHIM_PROC_STOPPED;
    p->exit_status = status;
    clock_gettime(CLOCK_REALTIME, &p->exited_at);
    proc_answer_waits(p);
}

static void
proc_io_done(shim_io *io, void *userdata)
{
    shim_process *p = userdata;
    (void)io;
    p->io_done = true;
    proc_maybe_finish(p);
}

static int
proc_io_timeout(cc_loop_source *src, uint64_t deadline, void *userdata)
{
    shim_process *p = userdata;
    (void)src;
    (void)deadline;
    if (!p->io_done) {
        cc_log(CC_LOG_WARNING,
               "container %s%s%s: output still open %llu s after the exit; closing it",
               p->c->id, *p->exec_id ? " exec " : "", p->exec_id,
               (unsigned long long)(SHIM_IO_AFTER_EXIT_USEC / SHIM_USEC_PER_SEC));
        p->io = shim_io_free(p->io);
        p->io_done = true;
        proc_maybe_finish(p);
    }
    return 0;
}

static void
proc_exited(shim_process *p, int status)
{
    p->waiting = false;
    p->agent_exited = true;
    p->agent_status = status;
    if (!p->io_done && !p->io_timer && !p->c->s->vm_gone)
        (void)cc_loop_add_timer(p->c->s->loop, SHIM_IO_AFTER_EXIT_USEC, 0, proc_io_timeout, p,
                                &p->io_timer, NULL);
    proc_maybe_finish(p);
}

static void
proc_wait_reply(cc_ttrpc_code code, const char *message, const uint8_t *payload, size_t len,
                void *userdata)
{
    shim_process *p = userdata;
    int status = SHIM_EXIT_UNKNOWN;
    if (code == CC_TTRPC_OK) {
        Grpc__WaitProcessResponse *r = (Grpc__WaitProcessResponse *)protobuf_c_message_unpack(
            &grpc__wait_process_response__descriptor, NULL, len, payload);
        if (r) {
            status = r->status;
            protobuf_c_message_free_unpacked(&r->base, NULL);
        }
    } else
        cc_log(CC_LOG_INFO, "container %s%s%s: WaitProcess: %s", p->c->id,
               *p->exec_id ? " exec " : "", p->exec_id, message);
    proc_exited(p, status);
}

/* Starts copying stdio and waiting for the exit of a process that exists in the guest. */
static void
proc_watch(shim_process *p)
{
    shim *s = p->c->s;
    if (p->io && s->agent)
        shim_io_start(p->io, s->agent, proc_io_done, p);
    else {
        p->io = shim_io_free(p->io);
        p->io_done = true;
    }
    Grpc__WaitProcessRequest req = GRPC__WAIT_PROCESS_REQUEST__INIT;
    req.container_id = p->c->id;
    req.exec_id = (char *)agent_exec_id(p);
    cc_ttrpc_request tr = {.service = SHIM_AGENT_SERVICE, .method = "WaitProcess",
                           .msg = &req.base};
    if (s->agent &&
        cc_ttrpc_client_call_request(s->agent, &tr, proc_wait_reply, p, &p->wait_call, NULL) >= 0)
        p->waiting = true;
    else
        proc_exited(p, SHIM_EXIT_UNKNOWN);
}

static void
proc_clear(shim_process *p)
{
    shim *s = p->c->s;
    if (p->waiting && s->agent)
        (void)cc_ttrpc_client_cancel_call(s->agent, p->wait_call);
    p->waiting = false;
    p->io = shim_io_free(p->io);
    p->io_timer = cc_loop_source_free(p->io_timer);
    for (size_t i = 0; i < p->n_waits; i++) {
        cc_ttrpc_call_set_cancel(p->waits[i], NULL, NULL);
        (void)cc_ttrpc_call_fail(p->waits[i], CC_TTRPC_NOT_FOUND, "process deleted");
    }
    free(p->waits);
    free(p->exec_id);
    free(p->stdin_path);
    free(p->stdout_path);
    free(p->stderr_path);
    if (p->exec_spec)
        protobuf_c_message_free_unpacked(&p->exec_spec->base, NULL);
}

static void
container_free(shim_container *c)
{
    shim_process *p, *next;
    for (p = c->execs; p; p = next) {
        next = p->next;
        proc_clear(p);
        free(p);
    }
    proc_clear(&c->init);
    free(c->id);
    free(c->bundle);
    free(c);
}

static void
container_unlink(shim *s, shim_container *c)
{
    for (shim_container **pp = &s->containers; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            return;
        }
}

static void
proc_set_paths(shim_process *p, const char *in, const char *out, const char *err, bool terminal)
{
    p->stdin_path = cc_xstrdup(in ? in : "");
    p->stdout_path = cc_xstrdup(out ? out : "");
    p->stderr_path = cc_xstrdup(err ? err : "");
    p->terminal = terminal;
}

/* Opens containerd's side of the process's stdio (loop). */
static int
proc_open_io(shim_process *p, cc_error **err)
{
    if (!*p->stdin_path && !*p->stdout_path && !*p->stderr_path && !p->terminal) {
        /* NullIO (the sandbox): nothing to copy; the guest's pipes are still drained. */
    }
    shim_io_params prm = {
        .container_id = p->c->id,
        .exec_id = agent_exec_id(p),
        .stdin_path = p->stdin_path,
        .stdout_path = p->stdout_path,
        .stderr_path = p->stderr_path,
        .terminal = p->terminal,
    };
    return shim_io_new(p->c->s->loop, &prm, &p->io, err);
}

/* --- worker plumbing ---------------------------------------------------------------------------- */

typedef struct task_req {
    cc_ttrpc_call *call;
    ProtobufCMessage *msg;
    /* filled by the worker / the loop steps */
    int r;
    cc_error *err;
    shim_container *c;
    shim_process *p;
    void *data;
} task_req;

static task_req *
task_req_new(cc_ttrpc_call *call, ProtobufCMessage *msg)
{
    task_req *t = cc_xzalloc(sizeof(*t));
    t->call = call;
    t->msg = msg;
    return t;
}

static void
task_req_free(task_req *t)
{
    if (t->msg)
        protobuf_c_message_free_unpacked(t->msg, NULL);
    cc_error_free(t->err);
    free(t);
}

/* Loop: answers t's call with its error and frees t. */
static void
task_fail_on_loop(shim *s, void *arg)
{
    task_req *t = arg;
    (void)s;
    fail_error(t->call, t->err, t->r);
    task_req_free(t);
}

static void
task_finish_fail(shim *s, task_req *t)
{
    if (shim_on_loop(s, task_fail_on_loop, t) < 0)
        task_req_free(t); /* the loop is gone; so is the call */
}

/* Unpacks the request and hands it to fn on a worker. */
static void
spawn_task(shim *s, cc_ttrpc_call *call, const ProtobufCMessageDescriptor *desc,
           const uint8_t *req, size_t len, shim_work_fn fn)
{
    ProtobufCMessage *m = cc_ttrpc_call_unpack(call, desc, req, len);
    if (!m)
        return;
    shim_spawn(s, fn, task_req_new(call, m));
}

/* --- Create --------------------------------------------------------------------------------------- */

typedef struct create_data {
    shim_container_spec *spec;
    json_t *config;
    double t0;
} create_data;

static void
create_register(shim *s, void *arg)
{
    task_req *t = arg;
    Containerd__Task__V2__CreateTaskRequest *r = (void *)t->msg;
    create_data *d = t->data;

    if (s->exiting) {
        t->r = cc_error_msg(&t->err, -ESHUTDOWN, "the shim is shutting down");
        return;
    }
    if (container_find(s, r->id)) {
        t->r = cc_error_msg(&t->err, -EEXIST, "container %s: already exists", r->id);
        return;
    }
    if (d->spec->is_sandbox && (s->vm_started || s->sandbox_starting)) {
        t->r = cc_error_msg(&t->err, -EEXIST,
                            "container %s: this pod's shim already runs sandbox %s", r->id,
                            s->sandbox_id);
        return;
    }
    if (!d->spec->is_sandbox && (!s->agent_ready || s->vm_gone)) {
        t->r = cc_error_msg(&t->err, -ENOTCONN,
                            "container %s: its pod's sandbox %s is not running in this shim",
                            r->id, d->spec->sandbox_id);
        return;
    }
    if (!d->spec->is_sandbox && !cc_streq(d->spec->sandbox_id, s->sandbox_id)) {
        t->r = cc_error_msg(&t->err, -EINVAL,
                            "container %s: annotation %s is '%s', but this shim runs pod %s",
                            r->id, SHIM_ANN_SANDBOX_ID, d->spec->sandbox_id, s->sandbox_id);
        return;
    }
    shim_container *c = cc_xzalloc(sizeof(*c));
    c->s = s;
    c->id = cc_xstrdup(r->id);
    c->bundle = cc_xstrdup(r->bundle);
    c->is_sandbox = d->spec->is_sandbox;
    c->init.c = c;
    c->init.exec_id = cc_xstrdup("");
    c->init.state = SHIM_PROC_CREATING;
    proc_set_paths(&c->init, r->stdin, r->stdout, r->stderr, r->terminal);
    t->r = proc_open_io(&c->init, &t->err);
    if (t->r < 0) {
        t->r = cc_error_prefix(&t->err, t->r, "container %s", r->id);
        container_free(c);
        return;
    }
    c->next = s->containers;
    s->containers = c;
    t->c = c;
    if (c->is_sandbox)
        s->sandbox_starting = true;
}

static void
create_done(shim *s, void *arg)
{
    task_req *t = arg;
    Containerd__Task__V2__CreateTaskRequest *r = (void *)t->msg;
    shim_container *c = t->c;

    s->creating--;
    if (c && c->is_sandbox)
        s->sandbox_starting = false;
    if (t->r >= 0 && c->is_sandbox && s->vm_gone)
        t->r = cc_error_msg(&t->err, -ENOTCONN, "the pod's VM exited during the sandbox's Create");
    if (t->r < 0) {
        bool sandbox = c ? c->is_sandbox : false;
        if (c) {
            container_unlink(s, c);
            container_free(c);
        }
        if (sandbox) {
            shim_sandbox_stop(s, "the sandbox's Create failed");
            shim_sandbox_cleanup(s);
        }
        cc_log_error(CC_LOG_ERROR, t->err, "create %s", r->id);
        fail_error(t->call, t->err, t->r);
        return;
    }
    c->init.state = SHIM_PROC_CREATED;
    if (c->is_sandbox) {
        s->agent_ready = true;
        shim_sandbox_monitor(s);
    }

    Containerd__Task__V2__CreateTaskResponse resp = CONTAINERD__TASK__V2__CREATE_TASK_RESPONSE__INIT;
    resp.pid = (uint32_t)s->vm_pid;
    (void)cc_ttrpc_call_reply(t->call, &resp.base);

    Containerd__Events__TaskIO tio = CONTAINERD__EVENTS__TASK_IO__INIT;
    tio.stdin = r->stdin;
    tio.stdout = r->stdout;
    tio.stderr = r->stderr;
    tio.terminal = r->terminal;
    Containerd__Events__TaskCreate ev = CONTAINERD__EVENTS__TASK_CREATE__INIT;
    ev.container_id = r->id;
    ev.bundle = r->bundle;
    ev.n_rootfs = r->n_rootfs;
    ev.rootfs = r->rootfs;
    ev.io = &tio;
    ev.pid = (uint32_t)s->vm_pid;
    shim_events_publish(s->events, "/tasks/create", &ev.base);
    /* Last: a VM already gone finishes the process at once, after /tasks/create. */
    proc_watch(&c->init);
}

/* The ConfigPath of runtimeoptions.v1.Options in Create's options, or NULL (owned). */
static char *
options_config_path(const Google__Protobuf__Any *any)
{
    if (!any || !any->type_url || !strstr(any->type_url, "runtimeoptions.v1.Options"))
        return NULL;
    Runtimeoptions__V1__Options *o = (Runtimeoptions__V1__Options *)protobuf_c_message_unpack(
        &runtimeoptions__v1__options__descriptor, NULL, any->value.len, any->value.data);
    if (!o)
        return NULL;
    char *path = o->config_path && *o->config_path ? cc_xstrdup(o->config_path) : NULL;
    protobuf_c_message_free_unpacked(&o->base, NULL);
    return path;
}

static int
copy_files(shim *s, const shim_container_spec *spec, cc_error **err)
{
    for (size_t i = 0; i < spec->n_copies; i++) {
        const shim_copy_file *f = &spec->copies[i];
        _cleanup_free_ char *buf = NULL;
        size_t len = 0;
        int r = cc_read_file(f->host_path, COPY_FILE_MAX, &buf, &len, err);
        if (r < 0)
            return cc_error_prefix(err, r, "copy '%s' into the guest", f->host_path);
        Grpc__CopyFileRequest req = GRPC__COPY_FILE_REQUEST__INIT;
        req.path = f->guest_path;
        req.file_size = (int64_t)len;
        req.file_mode = 0644;
        req.dir_mode = 0755;
        req.data.data = (uint8_t *)buf;
        req.data.len = len;
        r = shim_agent_call(s, SHIM_AGENT_SERVICE, "CopyFile", &req.base, NULL,
                            SHIM_AGENT_CALL_TIMEOUT, NULL, NULL, err);
        if (r < 0)
            return cc_error_prefix(err, r, "copy '%s' into the guest", f->host_path);
    }
    return 0;
}

static void
create_work(shim *s, void *arg)
{
    task_req *t = arg;
    Containerd__Task__V2__CreateTaskRequest *r = (void *)t->msg;
    create_data d = {.t0 = shim_now_sec()};
    t->data = &d;

    _cleanup_free_ char *config_file = cc_xasprintf("%s/config.json", r->bundle);
    if (r->checkpoint && *r->checkpoint) {
        t->r = cc_error_msg(&t->err, -EOPNOTSUPP, "checkpoint: restoring is not supported");
        goto done;
    }
    t->r = cc_json_load_file(config_file, CONFIG_JSON_MAX, &d.config, &t->err);
    if (t->r < 0)
        goto done;
    shim_spec_input in = {.container_id = r->id, .config = d.config, .rootfs = r->rootfs,
                          .n_rootfs = r->n_rootfs};
    t->r = shim_spec_build(&in, &d.spec, &t->err);
    if (t->r < 0) {
        t->r = cc_error_prefix(&t->err, t->r, "%s", config_file);
        goto done;
    }
    if (d.spec->warning)
        cc_log(CC_LOG_WARNING, "container %s: %s", r->id, d.spec->warning);
    if (shim_on_loop(s, create_register, t) < 0 || t->r < 0)
        goto done;

    if (d.spec->is_sandbox) {
        char *config_path = options_config_path(r->options);
        t->r = shim_sandbox_start(s, config_path, d.config, d.spec, &t->err);
        free(config_path);
        if (t->r < 0)
            goto done;
    }
    t->r = copy_files(s, d.spec, &t->err);
    if (t->r < 0)
        goto done;

    double t_pull = shim_now_sec();
    Grpc__CreateContainerRequest req = GRPC__CREATE_CONTAINER_REQUEST__INIT;
    req.container_id = r->id;
    req.exec_id = r->id;
    req.n_storages = d.spec->n_storages;
    req.storages = d.spec->storages;
    req.oci = d.spec->spec;
    uint64_t timeout = (uint64_t)(s->config ? s->config->create_timeout_sec : 300) *
                       SHIM_USEC_PER_SEC;
    t->r = shim_agent_call(s, SHIM_AGENT_SERVICE, "CreateContainer", &req.base, NULL, timeout,
                           NULL, NULL, &t->err);
    if (t->r < 0) {
        t->r = cc_error_prefix(&t->err, t->r, "container %s (image %s)", r->id,
                               d.spec->image_ref ? d.spec->image_ref : "?");
        goto done;
    }
    cc_log(CC_LOG_INFO, "container %s: created in the guest in %.2f s (image %s%s); Create took %.2f s",
           r->id, shim_now_sec() - t_pull, d.spec->image_ref ? d.spec->image_ref : "?",
           d.spec->is_sandbox ? ", baked pause" : ", pulled in the guest", shim_now_sec() - d.t0);
done:
    if (shim_on_loop(s, create_done, t) < 0)
        cc_log(CC_LOG_DEBUG, "create %s: the loop is gone", r->id);
    shim_container_spec_free(d.spec);
    json_decref(d.config);
    task_req_free(t);
}

static void
task_create(cc_ttrpc_call *call, const uint8_t *req, size_t len, void *userdata)
{
    shim *s = userdata;
    ProtobufCMessage *m = cc_ttrpc_call_unpack(
        call, &containerd__task__v2__create_task_request__descriptor, req, len);
    if (!m)
        return;
    s->creating++;
    shim_spawn(s, create_work, task_req_new(call, m));
}

/* --- Start -------------------------------------------------------------------------------------- */

static void
start_check(shim *s, void *arg)
{
    task_req *t = arg;
    Containerd__Task__V2__StartRequest *r = (void *)t->msg;
    shim_process *p = process_find(s, r->id, r->exec_id, NULL);
    if (!p) {
        t->r = cc_error_msg(&t->err, -ENOENT, "process %s/%s: not found", r->id, r->exec_id);
        return;
    }
    if (p->state != SHIM_PROC_CREATED || p->busy) {
        t->r = cc_error_msg(&t->err, -EBUSY, "process %s/%s: already started", r->id, r->exec_id);
        return;
    }
    if (!is_init(p) && p->c->init.state != SHIM_PROC_RUNNING) {
        t->r = cc_error_msg(&t->err, -EBUSY, "container %s is not running", r->id);
        return;
    }
    if (!is_init(p)) {
        t->r = proc_open_io(p, &t->err);
        if (t->r < 0)
            return;
    }
    p->busy = true;
    t->p = p;
}

static void
start_done(shim *s, void *arg)
{
    task_req *t = arg;
    shim_process *p = t->p;
    p->busy = false;
    if (t->r < 0) {
        if (!is_init(p))
            proc_stop_silently(p, SHIM_EXIT_UNKNOWN); /* never ran: no exit event */
        fail_error(t->call, t->err, t->r);
        proc_maybe_finish(p);
        return;
    }
    if (p->state == SHIM_PROC_CREATED)
        p->state = SHIM_PROC_RUNNING;
    Containerd__Task__V2__StartResponse resp = CONTAINERD__TASK__V2__START_RESPONSE__INIT;
    resp.pid = (uint32_t)s->vm_pid;
    (void)cc_ttrpc_call_reply(t->call, &resp.base);
    if (is_init(p)) {
        Containerd__Events__TaskStart ev = CONTAINERD__EVENTS__TASK_START__INIT;
        ev.container_id = p->c->id;
        ev.pid = (uint32_t)s->vm_pid;
        shim_events_publish(s->events, "/tasks/start", &ev.base);
    } else {
        Containerd__Events__TaskExecStarted ev = CONTAINERD__EVENTS__TASK_EXEC_STARTED__INIT;
        ev.container_id = p->c->id;
        ev.exec_id = p->exec_id;
        ev.pid = (uint32_t)s->vm_pid;
        shim_events_publish(s->events, "/tasks/exec-started", &ev.base);
        proc_watch(p);
    }
    proc_maybe_finish(p); /* an init that exited during its Start */
}

static void
start_work(shim *s, void *arg)
{
    task_req *t = arg;
    Containerd__Task__V2__StartRequest *r = (void *)t->msg;
    double t0 = shim_now_sec();
    if (shim_on_loop(s, start_check, t) < 0) {
        task_req_free(t);
        return;
    }
    if (t->r < 0) {
        task_finish_fail(s, t);
        return;
    }
    shim_process *p = t->p; /* busy: stays put until start_done */
    if (is_init(p)) {
        Grpc__StartContainerRequest req = GRPC__START_CONTAINER_REQUEST__INIT;
        req.container_id = r->id;
        t->r = shim_agent_call(s, SHIM_AGENT_SERVICE, "StartContainer", &req.base, NULL,
                               SHIM_AGENT_CALL_TIMEOUT, NULL, NULL, &t->err);
    } else {
        Grpc__ExecProcessRequest req = GRPC__EXEC_PROCESS_REQUEST__INIT;
        req.container_id = r->id;
        req.exec_id = r->exec_id;
        req.process = p->exec_spec;
        t->r = shim_agent_call(s, SHIM_AGENT_SERVICE, "ExecProcess", &req.base, NULL,
                               SHIM_AGENT_CALL_TIMEOUT, NULL, NULL, &t->err);
    }
    if (t->r >= 0)
        cc_log(CC_LOG_INFO, "container %s%s%s: started in %.2f s", r->id, *r->exec_id ? " exec " : "",
               r->exec_id, shim_now_sec() - t0);
    (void)shim_on_loop(s, start_done, t);
    task_req_free(t);
}

static void
task_start(cc_ttrpc_call *call, const uint8_t *req, size_t len, void *userdata)
{
    spawn_task(userdata, call, &containerd__task__v2__start_request__descriptor, req, len,
               start_work);
}

/* --- Delete ------------------------------------------------------------------------------------- */

static void
reply_delete(shim *s, cc_ttrpc_call *call, const shim_process *p)
{
    Containerd__Task__V2__DeleteResponse resp = CONTAINERD__TASK__V2__DELETE_RESPONSE__INIT;
    Google__Protobuf__Timestamp at = timestamp_of(&p->exited_at);
    resp.pid = (uint32_t)s->vm_pid;
    resp.exit_status = (uint32_t)p->exit_status;
    resp.exited_at = &at;
    (void)cc_ttrpc_call_reply(call, &resp.base);
}

static void
delete_check(shim *s, void *arg)
{
    task_req *t = arg;
    Containerd__Task__V2__DeleteRequest *r = (void *)t->msg;
    shim_container *c = NULL;
    shim_process *p = process_find(s, r->id, r->exec_id, &c);
    if (!p) {
        t->r = cc_error_msg(&t->err, -ENOENT, "process %s/%s: not found", r->id, r->exec_id);
        return;
    }
    if (p->busy || p->state == SHIM_PROC_RUNNING || p->state == SHIM_PROC_PAUSED) {
        t->r = cc_error_msg(&t->err, -EBUSY, "process %s%s%s: cannot delete a running process",
                            r->id, *r->exec_id ? "/" : "", r->exec_id);
        return;
    }
    if (is_init(p))
        for (shim_process *e = c->execs; e; e = e->next)
            if (e->busy) {
                t->r = cc_error_msg(&t->err, -EBUSY, "container %s: exec %s is starting",
                                    r->id, e->exec_id);
                return;
            }
    if (!is_init(p)) {
        /* An exec: the agent forgets it with its container; nothing to ask. */
        reply_delete(s, t->call, p);
        for (shim_process **pp = &c->execs; *pp; pp = &(*pp)->next)
            if (*pp == p) {
                *pp = p->next;
                break;
            }
        proc_clear(p);
        free(p);
        t->r = 1; /* answered */
        return;
    }
    p->busy = true;
    t->c = c;
    t->p = p;
}

static void
vm_gone_check(shim *s, void *arg)
{
    *(bool *)arg = !s->inst || s->vm_gone;
}

static void
delete_done(shim *s, void *arg)
{
    task_req *t = arg;
    shim_container *c = t->c;
    shim_process *p = t->p;
    p->busy = false;
    if (t->r < 0) {
        fail_error(t->call, t->err, t->r);
        return;
    }
    /* A process that never ran (or whose exit did not arrive yet) is over now. */
    for (shim_process *e = c->execs; e; e = e->next) {
        if (e->state == SHIM_PROC_CREATED)
            proc_stop_silently(e, 128 + SIGKILL);
        else if (e->state != SHIM_PROC_STOPPED)
            proc_finish(e, e->agent_exited ? e->agent_status : 128 + SIGKILL);
    }
    if (p->state != SHIM_PROC_STOPPED)
        proc_finish(p, p->agent_exited ? p->agent_status : 128 + SIGKILL);
    reply_delete(s, t->call, p);
    Containerd__Events__TaskDelete ev = CONTAINERD__EVENTS__TASK_DELETE__INIT;
    Google__Protobuf__Timestamp at = timestamp_of(&p->exited_at);
    ev.container_id = c->id;
    ev.id = c->id;
    ev.pid = (uint32_t)s->vm_pid;
    ev.exit_status = (uint32_t)p->exit_status;
    ev.exited_at = &at;
    shim_events_publish(s->events, "/tasks/delete", &ev.base);
    bool sandbox = c->is_sandbox;
    container_unlink(s, c);
    container_free(c);
    if (sandbox)
        shim_sandbox_cleanup(s);
}

static void
delete_work(shim *s, void *arg)
{
    task_req *t = arg;
    Containerd__Task__V2__DeleteRequest *r = (void *)t->msg;
    if (shim_on_loop(s, delete_check, t) < 0) {
        task_req_free(t);
        return;
    }
    if (t->r < 0) {
        task_finish_fail(s, t);
        return;
    }
    if (t->r > 0) {
        task_req_free(t);
        return;
    }
    int code = CC_TTRPC_OK;
    bool sandbox = t->c->is_sandbox;
    if (sandbox) {
        Grpc__DestroySandboxRequest req = GRPC__DESTROY_SANDBOX_REQUEST__INIT;
        t->r = shim_agent_call(s, SHIM_AGENT_SERVICE, "DestroySandbox", &req.base, NULL,
                               SHIM_AGENT_CALL_TIMEOUT, NULL, &code, &t->err);
    } else {
        Grpc__RemoveContainerRequest req = GRPC__REMOVE_CONTAINER_REQUEST__INIT;
        req.container_id = r->id;
        req.timeout = REMOVE_TIMEOUT_SEC;
        t->r = shim_agent_call(s, SHIM_AGENT_SERVICE, "RemoveContainer", &req.base, NULL,
                               (REMOVE_TIMEOUT_SEC + 20) * SHIM_USEC_PER_SEC, NULL, &code,
                               &t->err);
    }
    /* The VM gone, or the guest no longer knows it: nothing is left to remove there. */
    if (t->r < 0 && (code == CC_TTRPC_UNAVAILABLE || code == CC_TTRPC_NOT_FOUND)) {
        cc_log(CC_LOG_INFO, "delete %s: %s (nothing left in the guest)", r->id,
               cc_error_message(t->err));
        t->err = cc_error_free(t->err);
        t->r = 0;
    }
    if (sandbox) {
        /* Whatever the agent said, the pod is gone: stop the VM and wait for it. */
        (void)shim_on_loop(s, shim_sandbox_stop_job, (void *)"pod deleted");
        double deadline = shim_now_sec() + (double)VM_GONE_WAIT_USEC / 1e6;
        bool gone = false;
        while (!gone && shim_now_sec() < deadline) {
            if (shim_on_loop(s, vm_gone_check, &gone) < 0)
                break;
            if (!gone)
                usleep(50 * 1000);
        }
        if (!gone)
            cc_log(CC_LOG_WARNING, "pod %s: the VM did not stop", r->id);
        if (t->r < 0) {
            cc_log_error(CC_LOG_WARNING, t->err, "pod %s: DestroySandbox", r->id);
            t->err = cc_error_free(t->err);
            t->r = 0;
        }
    }
    (void)shim_on_loop(s, delete_done, t);
    task_req_free(t);
}

static void
task_delete(cc_ttrpc_call *call, const uint8_t *req, size_t len, void *userdata)
{
    spawn_task(userdata, call, &containerd__task__v2__delete_request__descriptor, req, len,
               delete_work);
}

/* --- Kill --------------------------------------------------------------------------------------- */

static void
kill_check(shim *s, void *arg)
{
    task_req *t = arg;
    Containerd__Task__V2__KillRequest *r = (void *)t->msg;
    shim_process *p = process_find(s, r->id, r->exec_id, NULL);
    if (!p) {
        t->r = cc_error_msg(&t->err, -ENOENT, "process %s/%s: not found", r->id, r->exec_id);
        return;
    }
    if (p->state == SHIM_PROC_STOPPED || (p->agent_exited && is_init(p))) {
        if (is_stop_signal(r->signal))
            t->r = 1;
        else
            t->r = cc_error_msg(&t->err, -ENOENT, "process already finished");
        return;
    }
    if (!is_init(p) && p->state == SHIM_PROC_CREATED && !p->busy) {
        /* An exec never started: nothing runs in the guest. */
        proc_stop_silently(p, 128 + (int)r->signal);
        t->r = 1;
        return;
    }
    if (s->vm_gone) {
        t->r = 1; /* every process exits with the VM */
        return;
    }
    t->p = p;
}

static void
reply_empty_on_loop(shim *s, void *arg)
{
    task_req *t = arg;
    (void)s;
    if (t->r < 0)
        fail_error(t->call, t->err, t->r);
    else
        (void)cc_ttrpc_call_reply(t->call, NULL);
}

static void
kill_work(shim *s, void *arg)
{
    task_req *t = arg;
    Containerd__Task__V2__KillRequest *r = (void *)t->msg;
    if (shim_on_loop(s, kill_check, t) < 0) {
        task_req_free(t);
        return;
    }
    if (t->r == 0) {
        Grpc__SignalProcessRequest req = GRPC__SIGNAL_PROCESS_REQUEST__INIT;
        req.container_id = r->id;
        req.exec_id = r->exec_id;
        req.signal = r->signal;
        int code = CC_TTRPC_OK;
        t->r = shim_agent_call(s, SHIM_AGENT_SERVICE, "SignalProcess", &req.base, NULL,
                               SHIM_AGENT_CALL_TIMEOUT, NULL, &code, &t->err);
        if (t->r < 0 && code == CC_TTRPC_UNAVAILABLE && is_stop_signal(r->signal)) {
            t->err = cc_error_free(t->err);
            t->r = 0;
        }
    }
    (void)shim_on_loop(s, reply_empty_on_loop, t);
    task_req_free(t);
}

static void
task_kill(cc_ttrpc_call *call, const uint8_t *req, size_t len, void *userdata)
{
    spawn_task(userdata, call, &containerd__task__v2__kill_request__descriptor, req, len,
               kill_work);
}

/* --- Exec, State, Wait, Connect, Pids, CloseIO (loop) ---------------------------------------------- */

static void
task_exec(cc_ttrpc_call *call, const uint8_t *req, size_t len, void *userdata)
{
    shim *s = userdata;
    _cleanup_msg_ Containerd__Task__V2__ExecProcessRequest *r = (void *)cc_ttrpc_call_unpack(
        call, &containerd__task__v2__exec_process_request__descriptor, req, len);
    if (!r)
        return;
    _cleanup_error_ cc_error *e = NULL;
    shim_container *c = container_find(s, r->id);
    if (!c || c->init.state == SHIM_PROC_CREATING) {
        (void)cc_ttrpc_call_fail(call, CC_TTRPC_NOT_FOUND, "container %s: not found", r->id);
        return;
    }
    if (!shim_id_is_valid(r->exec_id, ID_MAX) || cc_streq(r->exec_id, r->id)) {
        (void)cc_ttrpc_call_fail(call, CC_TTRPC_INVALID_ARGUMENT,
                                 "exec_id '%s': 1 to %d of [A-Za-z0-9._-], not starting with "
                                 "[._-], and not the container id",
                                 r->exec_id, ID_MAX);
        return;
    }
    if (process_find(s, r->id, r->exec_id, NULL)) {
        (void)cc_ttrpc_call_fail(call, CC_TTRPC_ALREADY_EXISTS, "exec %s: already exists in %s",
                                 r->exec_id, r->id);
        return;
    }
    if (c->init.state != SHIM_PROC_RUNNING) {
        (void)cc_ttrpc_call_fail(call, CC_TTRPC_FAILED_PRECONDITION,
                                 "container %s is not running", r->id);
        return;
    }
    if (!r->spec || !r->spec->type_url || !cc_startswith(r->spec->type_url, SPEC_URL_PREFIX)) {
        (void)cc_ttrpc_call_fail(call, CC_TTRPC_INVALID_ARGUMENT,
                                 "spec: expected an Any of %sProcess", SPEC_URL_PREFIX);
        return;
    }
    _cleanup_json_ json_t *j = NULL;
    Grpc__Process *proc = NULL;
    if (cc_json_load_buffer((const char *)r->spec->value.data, r->spec->value.len, "spec",
                            CONFIG_JSON_MAX, &j, &e) < 0 ||
        cc_oci_process_from_json(j, &proc, &e) < 0) {
        (void)cc_ttrpc_call_fail(call, CC_TTRPC_INVALID_ARGUMENT, "exec %s: spec: %s",
                                 r->exec_id, cc_error_message(e));
        return;
    }
    if (proc->terminal != r->terminal)
        proc->terminal = r->terminal;
    shim_process *p = cc_xzalloc(sizeof(*p));
    p->c = c;
    p->exec_id = cc_xstrdup(r->exec_id);
    p->state = SHIM_PROC_CREATED;
    p->exec_spec = proc;
    proc_set_paths(p, r->stdin, r->stdout, r->stderr, r->terminal);
    p->next = c->execs;
    c->execs = p;
    (void)cc_ttrpc_call_reply(call, NULL);
    Containerd__Events__TaskExecAdded ev = CONTAINERD__EVENTS__TASK_EXEC_ADDED__INIT;
    ev.container_id = r->id;
    ev.exec_id = r->exec_id;
    shim_events_publish(s->events, "/tasks/exec-added", &ev.base);
}

static void
task_state(cc_ttrpc_call *call, const uint8_t *req, size_t len, void *userdata)
{
    shim *s = userdata;
    _cleanup_msg_ Containerd__Task__V2__StateRequest *r = (void *)cc_ttrpc_call_unpack(
        call, &containerd__task__v2__state_request__descriptor, req, len);
    if (!r)
        return;
    shim_container *c = NULL;
    shim_process *p = process_find_or_fail(s, call, r->id, r->exec_id, &c);
    if (!p)
        return;
    Containerd__Task__V2__StateResponse resp = CONTAINERD__TASK__V2__STATE_RESPONSE__INIT;
    Google__Protobuf__Timestamp at = timestamp_of(&p->exited_at);
    resp.id = c->id;
    resp.bundle = c->bundle;
    resp.pid = (uint32_t)s->vm_pid;
    resp.status = proc_status(p);
    resp.stdin = p->stdin_path;
    resp.stdout = p->stdout_path;
    resp.stderr = p->stderr_path;
    resp.terminal = p->terminal;
    resp.exec_id = p->exec_id;
    if (p->state == SHIM_PROC_STOPPED) {
        resp.exit_status = (uint32_t)p->exit_status;
        resp.exited_at = &at;
    }
    (void)cc_ttrpc_call_reply(call, &resp.base);
}

static void
wait_cancelled(cc_ttrpc_call *call, cc_ttrpc_code reason, void *userdata)
{
    shim_process *p = userdata;
    (void)reason;
    for (size_t i = 0; i < p->n_waits; i++)
        if (p->waits[i] == call) {
            memmove(p->waits + i, p->waits + i + 1, (p->n_waits - i - 1) * sizeof(*p->waits));
            p->n_waits--;
            break;
        }
    (void)cc_ttrpc_call_fail(call, CC_TTRPC_CANCELLED, "cancelled");
}

static void
task_wait(cc_ttrpc_call *call, const uint8_t *req, size_t len, void *userdata)
{
    shim *s = userdata;
    _cleanup_msg_ Containerd__Task__V2__WaitRequest *r = (void *)cc_ttrpc_call_unpack(
        call, &containerd__task__v2__wait_request__descriptor, req, len);
    if (!r)
        return;
    shim_process *p = process_find_or_fail(s, call, r->id, r->exec_id, NULL);
    if (!p)
        return;
    if (p->state == SHIM_PROC_STOPPED) {
        Containerd__Task__V2__WaitResponse resp = CONTAINERD__TASK__V2__WAIT_RESPONSE__INIT;
        Google__Protobuf__Timestamp at = timestamp_of(&p->exited_at);
        resp.exit_status = (uint32_t)p->exit_status;
        resp.exited_at = &at;
        (void)cc_ttrpc_call_reply(call, &resp.base);
        return;
    }
    p->waits = cc_xreallocarray(p->waits, p->n_waits + 1, sizeof(*p->waits));
    p->waits[p->n_waits++] = call;
    cc_ttrpc_call_set_cancel(call, wait_cancelled, p);
}

static void
task_connect(cc_ttrpc_call *call, const uint8_t *req, size_t len, void *userdata)
{
    shim *s = userdata;
    _cleanup_msg_ ProtobufCMessage *r = cc_ttrpc_call_unpack(
        call, &containerd__task__v2__connect_request__descriptor, req, len);
    if (!r)
        return;
    Containerd__Task__V2__ConnectResponse resp = CONTAINERD__TASK__V2__CONNECT_RESPONSE__INIT;
    resp.shim_pid = (uint32_t)getpid();
    resp.task_pid = (uint32_t)s->vm_pid;
    (void)cc_ttrpc_call_reply(call, &resp.base);
}

static void
task_pids(cc_ttrpc_call *call, const uint8_t *req, size_t len, void *userdata)
{
    shim *s = userdata;
    _cleanup_msg_ Containerd__Task__V2__PidsRequest *r = (void *)cc_ttrpc_call_unpack(
        call, &containerd__task__v2__pids_request__descriptor, req, len);
    if (!r)
        return;
    if (!container_find(s, r->id)) {
        (void)cc_ttrpc_call_fail(call, CC_TTRPC_NOT_FOUND, "container %s: not found", r->id);
        return;
    }
    /* Processes in the guest have no host pid: the VM's stands for all of them (Kata). */
    Containerd__V1__Types__ProcessInfo info = CONTAINERD__V1__TYPES__PROCESS_INFO__INIT;
    info.pid = (uint32_t)s->vm_pid;
    Containerd__V1__Types__ProcessInfo *infos[] = {&info};
    Containerd__Task__V2__PidsResponse resp = CONTAINERD__TASK__V2__PIDS_RESPONSE__INIT;
    resp.n_processes = 1;
    resp.processes = infos;
    (void)cc_ttrpc_call_reply(call, &resp.base);
}

static void
task_close_io(cc_ttrpc_call *call, const uint8_t *req, size_t len, void *userdata)
{
    shim *s = userdata;
    _cleanup_msg_ Containerd__Task__V2__CloseIORequest *r = (void *)cc_ttrpc_call_unpack(
        call, &containerd__task__v2__close_iorequest__descriptor, req, len);
    if (!r)
        return;
    shim_process *p = process_find_or_fail(s, call, r->id, r->exec_id, NULL);
    if (!p)
        return;
    if (r->stdin && p->io)
        shim_io_close_stdin(p->io);
    (void)cc_ttrpc_call_reply(call, NULL);
}

static void
task_checkpoint(cc_ttrpc_call *call, const uint8_t *req, size_t len, void *userdata)
{
    (void)req;
    (void)len;
    (void)userdata;
    (void)cc_ttrpc_call_fail(call, CC_TTRPC_UNIMPLEMENTED,
                             "checkpoint: not supported for confidential VMs");
}

/* --- Pause, Resume, ResizePty, Update, Stats (workers) ----------------------------------------------- */

typedef struct simple_data {
    const char *method;
    ProtobufCMessage *agent_req;
    const ProtobufCMessageDescriptor *resp_desc;
    ProtobufCMessage *agent_resp;
} simple_data;

static void
pause_done(shim *s, void *arg)
{
    task_req *t = arg;
    Containerd__Task__V2__PauseRequest *r = (void *)t->msg;
    simple_data *d = t->data;
    if (t->r < 0) {
        fail_error(t->call, t->err, t->r);
        return;
    }
    bool pause = cc_streq(d->method, "PauseContainer");
    shim_container *c = container_find(s, r->id);
    if (c && (c->init.state == SHIM_PROC_RUNNING || c->init.state == SHIM_PROC_PAUSED))
        c->init.state = pause ? SHIM_PROC_PAUSED : SHIM_PROC_RUNNING;
    (void)cc_ttrpc_call_reply(t->call, NULL);
    if (pause) {
        Containerd__Events__TaskPaused ev = CONTAINERD__EVENTS__TASK_PAUSED__INIT;
        ev.container_id = r->id;
        shim_events_publish(s->events, "/tasks/paused", &ev.base);
    } else {
        Containerd__Events__TaskResumed ev = CONTAINERD__EVENTS__TASK_RESUMED__INIT;
        ev.container_id = r->id;
        shim_events_publish(s->events, "/tasks/resumed", &ev.base);
    }
}

static void
container_exists_check(shim *s, void *arg)
{
    task_req *t = arg;
    /* Every request below has `id` as its first field: PauseRequest's layout stands for all. */
    Containerd__Task__V2__PauseRequest *r = (void *)t->msg;
    shim_container *c = container_find(s, r->id);
    if (!c || c->init.state == SHIM_PROC_CREATING)
        t->r = cc_error_msg(&t->err, -ENOENT, "container %s: not found", r->id);
    else if (c->init.state == SHIM_PROC_STOPPED)
        t->r = cc_error_msg(&t->err, -EBUSY, "container %s: not running", r->id);
}

static void
pause_work(shim *s, void *arg)
{
    task_req *t = arg;
    Containerd__Task__V2__PauseRequest *r = (void *)t->msg;
    simple_data *d = t->data;
    if (shim_on_loop(s, container_exists_check, t) >= 0) {
        if (t->r >= 0) {
            Grpc__PauseContainerRequest req = GRPC__PAUSE_CONTAINER_REQUEST__INIT;
            req.container_id = r->id;
            t->r = shim_agent_call(s, SHIM_AGENT_SERVICE, d->method, &req.base, NULL,
                                   SHIM_AGENT_CALL_TIMEOUT, NULL, NULL, &t->err);
        }
        (void)shim_on_loop(s, pause_done, t);
    }
    free(d);
    task_req_free(t);
}

static void
spawn_pause(shim *s, cc_ttrpc_call *call, const uint8_t *req, size_t len, const char *method)
{
    /* PauseRequest and ResumeRequest are both {id = 1}. */
    ProtobufCMessage *m = cc_ttrpc_call_unpack(call, &containerd__task__v2__pause_request__descriptor,
                                               req, len);
    if (!m)
        return;
    task_req *t = task_req_new(call, m);
    simple_data *d = cc_xzalloc(sizeof(*d));
    d->method = method;
    t->data = d;
    shim_spawn(s, pause_work, t);
}

static void
task_pause(cc_ttrpc_call *call, const uint8_t *req, size_t len, void *userdata)
{
    spawn_pause(userdata, call, req, len, "PauseContainer");
}

static void
task_resume(cc_ttrpc_call *call, const uint8_t *req, size_t len, void *userdata)
{
    spawn_pause(userdata, call, req, len, "ResumeContainer");
}

static void
resize_check(shim *s, void *arg)
{
    task_req *t = arg;
    Containerd__Task__V2__ResizePtyRequest *r = (void *)t->msg;
    shim_process *p = process_find(s, r->id, r->exec_id, NULL);
    if (!p)
        t->r = cc_error_msg(&t->err, -ENOENT, "process %s/%s: not found", r->id, r->exec_id);
    else if (!p->terminal)
        t->r = cc_error_msg(&t->err, -EINVAL, "process %s/%s: has no terminal", r->id, r->exec_id);
    else if (p->state == SHIM_PROC_STOPPED)
        t->r = cc_error_msg(&t->err, -ENOENT, "process already finished");
}

static void
resize_work(shim *s, void *arg)
{
    task_req *t = arg;
    Containerd__Task__V2__ResizePtyRequest *r = (void *)t->msg;
    if (shim_on_loop(s, resize_check, t) < 0) {
        task_req_free(t);
        return;
    }
    if (t->r >= 0) {
        Grpc__TtyWinResizeRequest req = GRPC__TTY_WIN_RESIZE_REQUEST__INIT;
        req.container_id = r->id;
        req.exec_id = r->exec_id;
        req.row = r->height;
        req.column = r->width;
        t->r = shim_agent_call(s, SHIM_AGENT_SERVICE, "TtyWinResize", &req.base, NULL,
                               SHIM_AGENT_CALL_TIMEOUT, NULL, NULL, &t->err);
    }
    (void)shim_on_loop(s, reply_empty_on_loop, t);
    task_req_free(t);
}

static void
task_resize_pty(cc_ttrpc_call *call, const uint8_t *req, size_t len, void *userdata)
{
    spawn_task(userdata, call, &containerd__task__v2__resize_pty_request__descriptor, req, len,
               resize_work);
}

/* LinuxResources JSON (Update's Any) -> Kata's proto, through lib/oci.c's spec conversion. */
static int
resources_from_any(const Google__Protobuf__Any *any, Grpc__Spec **ret_spec, cc_error **err)
{
    if (!any || !any->type_url || !cc_startswith(any->type_url, SPEC_URL_PREFIX))
        return cc_error_msg(err, -EINVAL, "resources: expected an Any of %sLinuxResources",
                            SPEC_URL_PREFIX);
    _cleanup_json_ json_t *res = NULL;
    int r = cc_json_load_buffer((const char *)any->value.data, any->value.len, "resources",
                                CONFIG_JSON_MAX, &res, err);
    if (r < 0)
        return r;
    _cleanup_json_ json_t *spec = json_pack("{s:s, s:{s:O}}", "ociVersion", "1.0.2", "linux",
                                            "resources", res);
    if (!spec)
        return cc_error_msg(err, -EINVAL, "resources: not a JSON object");
    r = cc_oci_spec_from_json(spec, ret_spec, err);
    if (r < 0)
        return cc_error_prefix(err, r, "resources");
    return 0;
}

static void
update_work(shim *s, void *arg)
{
    task_req *t = arg;
    Containerd__Task__V2__UpdateTaskRequest *r = (void *)t->msg;
    if (shim_on_loop(s, container_exists_check, t) < 0) {
        task_req_free(t);
        return;
    }
    if (t->r >= 0) {
        _cleanup_msg_ Grpc__Spec *spec = NULL;
        t->r = resources_from_any(r->resources, &spec, &t->err);
        if (t->r >= 0) {
            Grpc__UpdateContainerRequest req = GRPC__UPDATE_CONTAINER_REQUEST__INIT;
            req.container_id = r->id;
            req.resources = spec->linux ? spec->linux->resources : NULL;
            t->r = shim_agent_call(s, SHIM_AGENT_SERVICE, "UpdateContainer", &req.base, NULL,
                                   SHIM_AGENT_CALL_TIMEOUT, NULL, NULL, &t->err);
        }
    }
    (void)shim_on_loop(s, reply_empty_on_loop, t);
    task_req_free(t);
}

static void
task_update(cc_ttrpc_call *call, const uint8_t *req, size_t len, void *userdata)
{
    spawn_task(userdata, call, &containerd__task__v2__update_task_request__descriptor, req, len,
               update_work);
}

static uint64_t
stats_value(const Grpc__MemoryStats *m, const char *key)
{
    for (size_t i = 0; m && i < m->n_stats; i++)
        if (cc_streq(m->stats[i]->key, key))
            return m->stats[i]->value;
    return 0;
}

/* Kata's CgroupStats -> containerd's cgroups v2 Metrics, serialised into *ret (malloc). */
static void
metrics_from_stats(const Grpc__StatsContainerResponse *st, uint8_t **ret, size_t *ret_len)
{
    Io__Containerd__Cgroups__V2__Metrics m = IO__CONTAINERD__CGROUPS__V2__METRICS__INIT;
    Io__Containerd__Cgroups__V2__PidsStat pids = IO__CONTAINERD__CGROUPS__V2__PIDS_STAT__INIT;
    Io__Containerd__Cgroups__V2__CPUStat cpu = IO__CONTAINERD__CGROUPS__V2__CPUSTAT__INIT;
    Io__Containerd__Cgroups__V2__MemoryStat mem = IO__CONTAINERD__CGROUPS__V2__MEMORY_STAT__INIT;
    const Grpc__CgroupStats *cg = st->cgroup_stats;
    if (cg && cg->pids_stats) {
        pids.current = cg->pids_stats->current;
        pids.limit = cg->pids_stats->limit;
        m.pids = &pids;
    }
    if (cg && cg->cpu_stats) {
        const Grpc__CpuUsage *u = cg->cpu_stats->cpu_usage;
        const Grpc__ThrottlingData *th = cg->cpu_stats->throttling_data;
        if (u) { /* Kata's usage is in nanoseconds */
            cpu.usage_usec = u->total_usage / 1000;
            cpu.user_usec = u->usage_in_usermode / 1000;
            cpu.system_usec = u->usage_in_kernelmode / 1000;
        }
        if (th) {
            cpu.nr_periods = th->periods;
            cpu.nr_throttled = th->throttled_periods;
            cpu.throttled_usec = th->throttled_time / 1000;
        }
        m.cpu = &cpu;
    }
    if (cg && cg->memory_stats) {
        const Grpc__MemoryStats *ms = cg->memory_stats;
        if (ms->usage) {
            mem.usage = ms->usage->usage;
            mem.usage_limit = ms->usage->limit;
        }
        if (ms->swap_usage) {
            mem.swap_usage = ms->swap_usage->usage;
            mem.swap_limit = ms->swap_usage->limit;
        }
        mem.anon = stats_value(ms, "anon");
        mem.file = stats_value(ms, "file");
        mem.kernel_stack = stats_value(ms, "kernel_stack");
        mem.slab = stats_value(ms, "slab");
        mem.sock = stats_value(ms, "sock");
        mem.shmem = stats_value(ms, "shmem");
        mem.file_mapped = stats_value(ms, "file_mapped");
        mem.file_dirty = stats_value(ms, "file_dirty");
        mem.file_writeback = stats_value(ms, "file_writeback");
        mem.inactive_anon = stats_value(ms, "inactive_anon");
        mem.active_anon = stats_value(ms, "active_anon");
        mem.inactive_file = stats_value(ms, "inactive_file");
        mem.active_file = stats_value(ms, "active_file");
        mem.unevictable = stats_value(ms, "unevictable");
        mem.pgfault = stats_value(ms, "pgfault");
        mem.pgmajfault = stats_value(ms, "pgmajfault");
        m.memory = &mem;
    }
    size_t n = protobuf_c_message_get_packed_size(&m.base);
    *ret = cc_xmalloc(n ? n : 1);
    *ret_len = protobuf_c_message_pack(&m.base, *ret);
}

static void
stats_done(shim *s, void *arg)
{
    task_req *t = arg;
    (void)s;
    simple_data *d = t->data;
    if (t->r < 0) {
        fail_error(t->call, t->err, t->r);
        return;
    }
    _cleanup_free_ uint8_t *buf = NULL;
    size_t len = 0;
    metrics_from_stats((Grpc__StatsContainerResponse *)d->agent_resp, &buf, &len);
    Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
    any.type_url = (char *)io__containerd__cgroups__v2__metrics__descriptor.name;
    any.value.data = buf;
    any.value.len = len;
    Containerd__Task__V2__StatsResponse resp = CONTAINERD__TASK__V2__STATS_RESPONSE__INIT;
    resp.stats = &any;
    (void)cc_ttrpc_call_reply(t->call, &resp.base);
}

static void
stats_work(shim *s, void *arg)
{
    task_req *t = arg;
    Containerd__Task__V2__StatsRequest *r = (void *)t->msg;
    simple_data d = {0};
    t->data = &d;
    if (shim_on_loop(s, container_exists_check, t) < 0) {
        task_req_free(t);
        return;
    }
    if (t->r >= 0) {
        Grpc__StatsContainerRequest req = GRPC__STATS_CONTAINER_REQUEST__INIT;
        req.container_id = r->id;
        t->r = shim_agent_call(s, SHIM_AGENT_SERVICE, "StatsContainer", &req.base,
                               &grpc__stats_container_response__descriptor,
                               SHIM_AGENT_CALL_TIMEOUT, &d.agent_resp, NULL, &t->err);
    }
    (void)shim_on_loop(s, stats_done, t);
    if (d.agent_resp)
        protobuf_c_message_free_unpacked(d.agent_resp, NULL);
    task_req_free(t);
}

static void
task_stats(cc_ttrpc_call *call, const uint8_t *req, size_t len, void *userdata)
{
    spawn_task(userdata, call, &containerd__task__v2__stats_request__descriptor, req, len,
               stats_work);
}

/* --- Shutdown ------------------------------------------------------------------------------------- */

static int
shutdown_tick(cc_loop_source *src, uint64_t deadline, void *userdata)
{
    shim *s = userdata;
    static uint64_t started;
    (void)deadline;
    if (!started)
        started = cc_loop_now();
    if (shim_events_pending(s->events) == 0 || cc_loop_now() - started > SHUTDOWN_FLUSH_USEC) {
        cc_loop_source_free(src);
        cc_loop_exit(s->loop, 0);
    }
    return 0;
}

static void
task_shutdown(cc_ttrpc_call *call, const uint8_t *req, size_t len, void *userdata)
{
    shim *s = userdata;
    _cleanup_msg_ ProtobufCMessage *r = cc_ttrpc_call_unpack(
        call, &containerd__task__v2__shutdown_request__descriptor, req, len);
    if (!r)
        return;
    (void)cc_ttrpc_call_reply(call, NULL);
    if (s->containers || s->creating > 0 || s->exiting)
        return; /* containers remain: containerd sends Shutdown after every Delete */
    cc_log(CC_LOG_INFO, "pod %s: no containers left, exiting", s->sandbox_id ? s->sandbox_id : "?");
    s->exiting = true;
    shim_sandbox_stop(s, "shim shutdown");
    (void)cc_loop_add_timer(s->loop, 0, 20 * 1000, shutdown_tick, s, NULL, NULL);
}

/* --- registration ---------------------------------------------------------------------------------- */

int
shim_service_register(shim *s, cc_error **err)
{
    static const cc_ttrpc_method methods[] = {
        {"State", task_state},       {"Create", task_create},   {"Start", task_start},
        {"Delete", task_delete},     {"Pids", task_pids},       {"Pause", task_pause},
        {"Resume", task_resume},     {"Checkpoint", task_checkpoint},
        {"Kill", task_kill},         {"Exec", task_exec},       {"ResizePty", task_resize_pty},
        {"CloseIO", task_close_io},  {"Update", task_update},   {"Wait", task_wait},
        {"Stats", task_stats},       {"Connect", task_connect}, {"Shutdown", task_shutdown},
    };
    return cc_ttrpc_server_register(s->server, TASK_SERVICE, methods, ELEMENTSOF(methods), s,
                                    err);
}
