/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
/*
 * agent-test, the rest of the agent API (step_rest, in scenario main after c1 and c2):
 *
 *   r1 (`prog sleep`, left running through the steps below, removed at the end):
 *     exec e1 without a terminal: stdio, CloseStdin, SIGTERM -> 42, r1 still runs;
 *       TtyWinResize of e1 -> FAILED_PRECONDITION
 *     exec e2 with a terminal (`prog winch`): isatty, ReadStderr at EOF at once, TtyWinResize
 *       40x100 seen by the process, exit 0
 *     cloak.agent.v1.Agent/ListProcesses: r1's init and a running exec e3 (SIGKILL -> 137),
 *       which is gone afterwards
 *     StatsContainer around exec e4 (`prog alloc 64`, left running): memory usage grows by at
 *       least 32 MiB, cpu total_usage > 0, pids current >= 2
 *     PauseContainer, again -> FAILED_PRECONDITION, no echo from exec e5 while paused,
 *       ResumeContainer, the echo arrives
 *     UpdateContainer memory limit 128 MiB -> StatsContainer limit 134217728
 *   o1 (memory limit 32 MiB, `prog oom`): GetOOMEvent (started before StartContainer) returns
 *     o1, WaitProcess 137, and a second GetOOMEvent gets nothing within 3 s
 *   s1, s2 (`prog spew 64`, "ready" on stderr, then started by "go" on stdin): 64 MiB of
 *     stdout read with ReadStdout (32 KiB, one call at a time, as Kata's shim) and with
 *     ReadStdio (2 MiB, 4 calls in flight); both sha256 must equal pattern.h's stream; the
 *     throughputs (from "go" to EOF) are printed, not asserted
 *   OnlineCPUMem -> UNIMPLEMENTED; RemoveContainer r1 with e4 still running.
 */
#include "error.h"
#include "loop.h"
#include "macro.h"
#include "ttrpc.h"
#include "util.h"

#include "agent-test.h"
#include "pattern.h"

#include "cloak/agent.pb-c.h"
#include "kata/agent.pb-c.h"
#include "kata/oci.pb-c.h"

#include <assert.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#define MIB (1u << 20)
#define SPEW_MIB 64
#define SPEW_BUDGET_SEC 120.0 /* per stdio path, under TCG */
#define READ_STDOUT_LEN 32768u
#define READ_STDIO_MAX (2u << 20)
#define READ_STDIO_INFLIGHT 4

static const char *const args_sleep[] = {"/bin/prog", "sleep"};
static const char *const args_echo[] = {"/bin/prog", "echo"};
static const char *const args_winch[] = {"/bin/prog", "winch", "40", "100"};
static const char *const args_alloc64[] = {"/bin/prog", "alloc", "64"};
static const char *const args_oom[] = {"/bin/prog", "oom"};
static const char *const args_spew[] = {"/bin/prog", "spew", "64"};

/* One process (a container's init: exec_id = container id) and its unmatched output. */
typedef struct proc {
    const char *cid, *eid;
    char *out[2];
} proc;

static void
proc_clear(proc *p)
{
    free(p->out[0]);
    free(p->out[1]);
    p->out[0] = p->out[1] = NULL;
}

static int
proc_read_until(test_ctx *t, proc *p, int which, const char *want)
{
    return read_until_buf(t, which, p->cid, p->eid, &p->out[which], want);
}

/* --- asynchronous calls ------------------------------------------------------------------- */

typedef struct async_call {
    test_ctx *t;
    const ProtobufCMessageDescriptor *desc;
    uint32_t id;
    bool pending;
    rpc_result r;
} async_call;

static void
async_reply(cc_ttrpc_code code, const char *message, const uint8_t *payload, size_t len,
            void *userdata)
{
    async_call *a = userdata;
    a->pending = false;
    a->r.code = (int)code;
    a->r.message = cc_xstrdup(message);
    if (code == CC_TTRPC_OK && a->desc) {
        a->r.resp = protobuf_c_message_unpack(a->desc, NULL, len, payload);
        if (!a->r.resp) {
            free(a->r.message);
            a->r.message = cc_xasprintf("undecodable %s (%zu bytes)", a->desc->name, len);
            a->r.code = -1;
        }
    }
}

/* Starts service/method; its answer lands in a->r (a must stay put until then). */
static int
async_start(test_ctx *t, async_call *a, const char *service, const char *method,
            const ProtobufCMessage *req, const ProtobufCMessageDescriptor *desc,
            uint64_t timeout_usec)
{
    _cleanup_error_ cc_error *err = NULL;
    *a = (async_call){.t = t, .desc = desc, .r = {.code = -1}};
    cc_ttrpc_request rq = {
        .service = service, .method = method, .msg = req, .timeout_usec = timeout_usec};
    if (!t->client || cc_ttrpc_client_call_request(t->client, &rq, async_reply, a, &a->id,
                                                   &err) < 0) {
        a->r.message = cc_xstrdup(err ? cc_error_message(err) : "not connected");
        return -1;
    }
    a->pending = true;
    return 0;
}

/* Runs the loop until a's answer arrived or timeout_sec passed. 0 or -ETIMEDOUT. */
static int
async_wait(test_ctx *t, async_call *a, double timeout_sec)
{
    double end = now_sec() + timeout_sec;
    while (a->pending && now_sec() < end)
        if (cc_loop_run_once(t->loop, 200 * 1000, NULL) < 0)
            break;
    return a->pending ? -ETIMEDOUT : 0;
}

/* Forgets a pending call and frees the result. */
static void
async_clear(async_call *a)
{
    if (a->pending && a->t->client)
        (void)cc_ttrpc_client_cancel_call(a->t->client, a->id);
    a->pending = false;
    rpc_result_clear(&a->r);
}

/* --- requests ----------------------------------------------------------------------------- */

/* ExecProcess eid in cid running args, with a 24x80 terminal when terminal. */
static int
exec_process(test_ctx *t, const char *cid, const char *eid, const char *const *args,
             size_t n_args, bool terminal)
{
    spec_buf b; /* for its Process with user, env and capabilities */
    spec_init(&b, ROOTFS, args, n_args, cid, SPEC_N_MOUNTS);
    Grpc__Box box = GRPC__BOX__INIT;
    box.height = 24;
    box.width = 80;
    b.process.terminal = terminal;
    if (terminal)
        b.process.consolesize = &box;
    Grpc__ExecProcessRequest req = GRPC__EXEC_PROCESS_REQUEST__INIT;
    req.container_id = (char *)cid;
    req.exec_id = (char *)eid;
    req.process = &b.process;
    _cleanup_free_ char *step = cc_xasprintf("ExecProcess %s/%s %s%s", cid, eid, args[1],
                                             terminal ? " (terminal)" : "");
    return expect_ok(t, step, "ExecProcess", &req.base);
}

static int
simple_call(test_ctx *t, const char *method, const char *cid, int want)
{
    _cleanup_free_ char *step = cc_xasprintf("%s %s", method, cid);
    Grpc__PauseContainerRequest preq = GRPC__PAUSE_CONTAINER_REQUEST__INIT;
    Grpc__ResumeContainerRequest rreq = GRPC__RESUME_CONTAINER_REQUEST__INIT;
    Grpc__RemoveContainerRequest dreq = GRPC__REMOVE_CONTAINER_REQUEST__INIT;
    const ProtobufCMessage *m;
    if (cc_streq(method, "PauseContainer")) {
        preq.container_id = (char *)cid;
        m = &preq.base;
    } else if (cc_streq(method, "ResumeContainer")) {
        rreq.container_id = (char *)cid;
        m = &rreq.base;
    } else {
        assert(cc_streq(method, "RemoveContainer"));
        dreq.container_id = (char *)cid;
        m = &dreq.base;
    }
    if (want == CC_TTRPC_OK)
        return expect_ok(t, step, method, m);
    return expect_error(t, step, method, m, want, NULL);
}

static int
tty_resize(test_ctx *t, const char *cid, const char *eid, uint32_t rows, uint32_t cols, int want)
{
    Grpc__TtyWinResizeRequest req = GRPC__TTY_WIN_RESIZE_REQUEST__INIT;
    req.container_id = (char *)cid;
    req.exec_id = (char *)eid;
    req.row = rows;
    req.column = cols;
    _cleanup_free_ char *step = cc_xasprintf("TtyWinResize %s/%s %ux%u", cid, eid, rows, cols);
    if (want == CC_TTRPC_OK)
        return expect_ok(t, step, "TtyWinResize", &req.base);
    return expect_error(t, step, "TtyWinResize", &req.base, want, NULL);
}

static int
close_stdin(test_ctx *t, const char *cid, const char *eid)
{
    Grpc__CloseStdinRequest req = GRPC__CLOSE_STDIN_REQUEST__INIT;
    req.container_id = (char *)cid;
    req.exec_id = (char *)eid;
    _cleanup_free_ char *step = cc_xasprintf("CloseStdin %s/%s", cid, eid);
    return expect_ok(t, step, "CloseStdin", &req.base);
}

/* method (ReadStdout or ReadStderr) must end with an error status (EOF) within 10 s. */
static int
expect_stream_eof(test_ctx *t, const char *cid, const char *eid, const char *method)
{
    _cleanup_free_ char *step = cc_xasprintf("%s %s/%s at EOF", method, cid, eid);
    Grpc__ReadStreamRequest req = GRPC__READ_STREAM_REQUEST__INIT;
    req.container_id = (char *)cid;
    req.exec_id = (char *)eid;
    req.len = 4096;
    rpc_result r;
    int code = rpc(t, AGENT_SERVICE, method, &req.base, &grpc__read_stream_response__descriptor,
                   EOF_READ_TIMEOUT, &r);
    int ret = 0;
    if (code == CC_TTRPC_OK)
        ret = fail(t, step, "data \"%.*s\", want EOF",
                   (int)((Grpc__ReadStreamResponse *)r.resp)->data.len,
                   (char *)((Grpc__ReadStreamResponse *)r.resp)->data.data);
    else if (code < 0 || code == CC_TTRPC_DEADLINE_EXCEEDED)
        ret = fail(t, step, "%s %s", code_name(code), r.message);
    else
        ok(t, "%s (%s \"%s\")", step, code_name(code), r.message);
    rpc_result_clear(&r);
    return ret;
}

/* --- stats -------------------------------------------------------------------------------- */

typedef struct stats {
    uint64_t cpu_ns, mem_usage, mem_limit, pids;
} stats;

static int
get_stats(test_ctx *t, const char *step, const char *cid, stats *ret)
{
    Grpc__StatsContainerRequest req = GRPC__STATS_CONTAINER_REQUEST__INIT;
    req.container_id = (char *)cid;
    rpc_result r;
    int code = rpc(t, AGENT_SERVICE, "StatsContainer", &req.base,
                   &grpc__stats_container_response__descriptor, CALL_TIMEOUT, &r);
    int ret_code = 0;
    if (code != CC_TTRPC_OK) {
        ret_code = fail(t, step, "StatsContainer: %s %s", code_name(code), r.message);
    } else {
        Grpc__CgroupStats *cg = ((Grpc__StatsContainerResponse *)r.resp)->cgroup_stats;
        if (!cg || !cg->cpu_stats || !cg->cpu_stats->cpu_usage || !cg->memory_stats ||
            !cg->memory_stats->usage || !cg->pids_stats) {
            ret_code = fail(t, step, "cgroup_stats lacks cpu_usage, memory usage or pids");
        } else {
            *ret = (stats){
                .cpu_ns = cg->cpu_stats->cpu_usage->total_usage,
                .mem_usage = cg->memory_stats->usage->usage,
                .mem_limit = cg->memory_stats->usage->limit,
                .pids = cg->pids_stats->current,
            };
            info("%s: cpu %.3f s, memory %.1f MiB (limit %" PRIu64 "), pids %" PRIu64, step,
                 (double)ret->cpu_ns / 1e9, (double)ret->mem_usage / MIB, ret->mem_limit,
                 ret->pids);
        }
    }
    rpc_result_clear(&r);
    return ret_code;
}

/* --- steps on r1 -------------------------------------------------------------------------- */

/* 1. An exec without a terminal: stdio, no TtyWinResize, SIGTERM -> 42; r1 keeps running. */
static void
rest_exec_echo(test_ctx *t)
{
    proc p = {.cid = "r1", .eid = "e1"};
    if (exec_process(t, "r1", "e1", args_echo, ELEMENTSOF(args_echo), false) < 0)
        return;
    if (proc_read_until(t, &p, 0, "hello from the container\n") == 0 &&
        proc_read_until(t, &p, 1, "hello stderr\n") == 0 &&
        write_stdin_exec(t, "r1", "e1", "ping e1\n") == 0 &&
        proc_read_until(t, &p, 0, "ping e1\n") == 0) {
        tty_resize(t, "r1", "e1", 40, 100, CC_TTRPC_FAILED_PRECONDITION);
        if (close_stdin(t, "r1", "e1") == 0)
            proc_read_until(t, &p, 0, "stdin closed\n");
    }
    if (signal_exec(t, "SignalProcess r1/e1 SIGTERM", "r1", "e1", SIGTERM) == 0)
        wait_exec(t, "WaitProcess r1/e1", "r1", "e1", 42);
    signal_exec(t, "SignalProcess r1 0 (r1 still runs after its exec ended)", "r1", "", 0);
    proc_clear(&p);
}

/* 2. An exec with a terminal: isatty, stderr at EOF, the resize reaches the process. */
static void
rest_exec_tty(test_ctx *t)
{
    proc p = {.cid = "r1", .eid = "e2"};
    if (exec_process(t, "r1", "e2", args_winch, ELEMENTSOF(args_winch), true) < 0)
        return;
    if (proc_read_until(t, &p, 0, "tty=1") == 0 && proc_read_until(t, &p, 0, "initial ") == 0) {
        /* the ConsoleSize given (24x80) as the process saw it: shown, not asserted */
        info("e2 terminal size at start: %.*s (ConsoleSize 24x80)",
             (int)strcspn(p.out[0], "\r\n"), p.out[0]);
        expect_stream_eof(t, "r1", "e2", "ReadStderr");
        if (tty_resize(t, "r1", "e2", 40, 100, CC_TTRPC_OK) == 0)
            proc_read_until(t, &p, 0, "size 40x100");
    }
    wait_exec(t, "WaitProcess r1/e2", "r1", "e2", 0);
    proc_clear(&p);
}

/* ListProcesses cid: the exec_id of each process and its args, as one line. */
static int
list_processes(test_ctx *t, const char *step, const char *cid, char **ret)
{
    Cloak__Agent__V1__ListProcessesRequest req = CLOAK__AGENT__V1__LIST_PROCESSES_REQUEST__INIT;
    req.container_id = (char *)cid;
    rpc_result r;
    int code = rpc(t, CLOAK_SERVICE, "ListProcesses", &req.base,
                   &cloak__agent__v1__list_processes_response__descriptor, CALL_TIMEOUT, &r);
    if (code != CC_TTRPC_OK) {
        fail(t, step, "ListProcesses: %s %s", code_name(code), r.message);
        rpc_result_clear(&r);
        return -1;
    }
    Cloak__Agent__V1__ListProcessesResponse *l = (Cloak__Agent__V1__ListProcessesResponse *)r.resp;
    char *s = cc_xstrdup("");
    for (size_t i = 0; i < l->n_processes; i++) {
        Cloak__Agent__V1__ProcessInfo *pi = l->processes[i];
        char *n = cc_xasprintf("%s [pid %d exec_id '%s':", s, pi->pid, pi->exec_id);
        free(s);
        s = n;
        for (size_t j = 0; j < pi->n_args; j++) {
            n = cc_xasprintf("%s %s", s, pi->args[j]);
            free(s);
            s = n;
        }
        n = cc_xasprintf("%s]", s);
        free(s);
        s = n;
    }
    info("%s: %zu processes:%s", step, l->n_processes, s);
    rpc_result_clear(&r);
    *ret = s;
    return 0;
}

/* 3. ListProcesses: the init (exec_id r1) and exec e3 while it runs; e3 gone after its end. */
static void
rest_list_processes(test_ctx *t)
{
    if (exec_process(t, "r1", "e3", args_sleep, ELEMENTSOF(args_sleep), false) < 0)
        return;
    _cleanup_free_ char *l = NULL;
    if (list_processes(t, "ListProcesses r1", "r1", &l) == 0) {
        if (!strstr(l, "exec_id 'r1': /bin/prog sleep]"))
            fail(t, "ListProcesses r1", "no init with exec_id r1 running /bin/prog sleep");
        else if (!strstr(l, "exec_id 'e3': /bin/prog sleep]"))
            fail(t, "ListProcesses r1", "no exec e3 running /bin/prog sleep");
        else
            ok(t, "ListProcesses r1 lists the init (exec_id r1) and exec e3");
    }
    if (signal_exec(t, "SignalProcess r1/e3 SIGKILL", "r1", "e3", SIGKILL) < 0 ||
        wait_exec(t, "WaitProcess r1/e3", "r1", "e3", 128 + SIGKILL) < 0)
        return;
    free(l);
    l = NULL;
    if (list_processes(t, "ListProcesses r1 after e3", "r1", &l) == 0) {
        if (strstr(l, "exec_id 'e3'"))
            fail(t, "ListProcesses r1 after e3", "e3 still listed after its exit");
        else if (!strstr(l, "exec_id 'r1'"))
            fail(t, "ListProcesses r1 after e3", "the init is not listed");
        else
            ok(t, "ListProcesses r1 after e3 ended: the init only");
    }
}

/* 4. StatsContainer before and after exec e4 allocated 64 MiB (e4 is left running). */
static void
rest_stats(test_ctx *t)
{
    stats before = {0}, after = {0};
    if (get_stats(t, "StatsContainer r1 before e4", "r1", &before) < 0 ||
        exec_process(t, "r1", "e4", args_alloc64, ELEMENTSOF(args_alloc64), false) < 0)
        return;
    proc p = {.cid = "r1", .eid = "e4"};
    int r = proc_read_until(t, &p, 0, "allocated\n");
    proc_clear(&p);
    if (r < 0 || get_stats(t, "StatsContainer r1 with e4", "r1", &after) < 0)
        return;
    double grown = ((double)after.mem_usage - (double)before.mem_usage) / MIB;
    if (after.mem_usage < before.mem_usage + 32 * MIB)
        fail(t, "StatsContainer r1 memory", "usage %.1f -> %.1f MiB: grew %.1f MiB, want >= 32",
             (double)before.mem_usage / MIB, (double)after.mem_usage / MIB, grown);
    else
        ok(t, "StatsContainer r1 memory usage %.1f -> %.1f MiB (+%.1f MiB for e4's 64 MiB)",
           (double)before.mem_usage / MIB, (double)after.mem_usage / MIB, grown);
    if (after.cpu_ns == 0)
        fail(t, "StatsContainer r1 cpu", "total_usage 0");
    else
        ok(t, "StatsContainer r1 cpu total_usage %" PRIu64 " ns", after.cpu_ns);
    if (after.pids < 2)
        fail(t, "StatsContainer r1 pids", "current %" PRIu64 ", want >= 2 (init and e4)",
             after.pids);
    else
        ok(t, "StatsContainer r1 pids current %" PRIu64, after.pids);
}

/* 5. Pause and resume; exec e5's echo does not come while r1 is frozen. */
static void
rest_pause(test_ctx *t)
{
    proc p = {.cid = "r1", .eid = "e5"};
    bool e5 = exec_process(t, "r1", "e5", args_echo, ELEMENTSOF(args_echo), false) == 0 &&
              proc_read_until(t, &p, 0, "hello from the container\n") == 0;
    if (simple_call(t, "PauseContainer", "r1", CC_TTRPC_OK) < 0) {
        proc_clear(&p);
        return;
    }
    simple_call(t, "PauseContainer", "r1", CC_TTRPC_FAILED_PRECONDITION);
    if (e5 && write_stdin_exec(t, "r1", "e5", "ping paused\n") == 0) {
        Grpc__ReadStreamRequest req = GRPC__READ_STREAM_REQUEST__INIT;
        req.container_id = (char *)"r1";
        req.exec_id = (char *)"e5";
        req.len = 4096;
        rpc_result r;
        int code = rpc(t, AGENT_SERVICE, "ReadStdout", &req.base,
                       &grpc__read_stream_response__descriptor, USEC_PER_SEC, &r);
        if (code == CC_TTRPC_DEADLINE_EXCEEDED)
            ok(t, "ReadStdout r1/e5 while paused: no echo within 1 s");
        else
            fail(t, "ReadStdout r1/e5 while paused", "%s %s, want DEADLINE_EXCEEDED",
                 code_name(code), r.message);
        rpc_result_clear(&r);
    }
    simple_call(t, "ResumeContainer", "r1", CC_TTRPC_OK);
    if (e5) {
        proc_read_until(t, &p, 0, "ping paused\n"); /* the echo comes after the resume */
        if (signal_exec(t, "SignalProcess r1/e5 SIGKILL", "r1", "e5", SIGKILL) == 0)
            wait_exec(t, "WaitProcess r1/e5", "r1", "e5", 128 + SIGKILL);
    }
    proc_clear(&p);
}

/* 6. UpdateContainer: memory.max 128 MiB, seen by StatsContainer. */
static void
rest_update(test_ctx *t)
{
    const int64_t limit = 128 * (int64_t)MIB;
    Grpc__LinuxMemory mem = GRPC__LINUX_MEMORY__INIT;
    mem.limit = limit;
    Grpc__LinuxResources res = GRPC__LINUX_RESOURCES__INIT;
    res.memory = &mem;
    Grpc__UpdateContainerRequest req = GRPC__UPDATE_CONTAINER_REQUEST__INIT;
    req.container_id = (char *)"r1";
    req.resources = &res;
    stats s = {0};
    if (expect_ok(t, "UpdateContainer r1 memory limit 128 MiB", "UpdateContainer", &req.base) < 0 ||
        get_stats(t, "StatsContainer r1 after the update", "r1", &s) < 0)
        return;
    if (s.mem_limit != (uint64_t)limit)
        fail(t, "StatsContainer r1 limit", "%" PRIu64 ", want %" PRId64, s.mem_limit, limit);
    else
        ok(t, "StatsContainer r1 memory limit %" PRIu64, s.mem_limit);
}

/* --- OOM ---------------------------------------------------------------------------------- */

/* 7. o1 (32 MiB) gets OOM-killed: exactly one OOMEvent naming it. */
static void
rest_oom(test_ctx *t)
{
    spec_buf b;
    spec_init(&b, ROOTFS, args_oom, ELEMENTSOF(args_oom), "o1", SPEC_N_MOUNTS);
    b.memory = (Grpc__LinuxMemory)GRPC__LINUX_MEMORY__INIT;
    b.memory.limit = 32 * (int64_t)MIB;
    b.resources = (Grpc__LinuxResources)GRPC__LINUX_RESOURCES__INIT;
    b.resources.memory = &b.memory;
    b.lnx.resources = &b.resources;
    Grpc__CreateContainerRequest creq = GRPC__CREATE_CONTAINER_REQUEST__INIT;
    creq.container_id = creq.exec_id = (char *)"o1";
    creq.oci = &b.spec;
    if (expect_ok(t, "CreateContainer o1 (memory limit 32 MiB)", "CreateContainer", &creq.base) < 0)
        return;

    Grpc__GetOOMEventRequest oreq = GRPC__GET_OOMEVENT_REQUEST__INIT;
    async_call a;
    bool started = async_start(t, &a, AGENT_SERVICE, "GetOOMEvent", &oreq.base,
                               &grpc__oomevent__descriptor, 120 * USEC_PER_SEC) == 0;
    if (!started)
        fail(t, "GetOOMEvent", "%s", a.r.message);
    if (container_call(t, "StartContainer o1", "StartContainer", "o1") == 0)
        wait_exec(t, "WaitProcess o1 (OOM-killed)", "o1", "", 128 + SIGKILL);
    if (started) {
        if (async_wait(t, &a, 30) < 0)
            fail(t, "GetOOMEvent", "no answer within 30 s of the OOM kill");
        else if (a.r.code != CC_TTRPC_OK)
            fail(t, "GetOOMEvent", "%s %s", code_name(a.r.code), a.r.message);
        else if (!cc_streq(((Grpc__OOMEvent *)a.r.resp)->container_id, "o1"))
            fail(t, "GetOOMEvent", "container_id '%s', want o1",
                 ((Grpc__OOMEvent *)a.r.resp)->container_id);
        else
            ok(t, "GetOOMEvent: o1");
    }
    async_clear(&a);

    rpc_result r;
    int code = rpc(t, AGENT_SERVICE, "GetOOMEvent", &oreq.base, &grpc__oomevent__descriptor,
                   3 * USEC_PER_SEC, &r);
    if (code == CC_TTRPC_DEADLINE_EXCEEDED)
        ok(t, "GetOOMEvent again: no second event within 3 s");
    else if (code == CC_TTRPC_OK)
        fail(t, "GetOOMEvent again", "another event for '%s', want none",
             ((Grpc__OOMEvent *)r.resp)->container_id);
    else
        fail(t, "GetOOMEvent again", "%s %s, want DEADLINE_EXCEEDED", code_name(code), r.message);
    rpc_result_clear(&r);
    simple_call(t, "RemoveContainer", "o1", CC_TTRPC_OK);
}

/* --- 64 MiB of stdout --------------------------------------------------------------------- */

typedef struct digest {
    EVP_MD_CTX *md;
    uint64_t bytes;
} digest;

/* OpenSSL failing on sha256 of memory is not a test outcome: give up. */
static void
digest_check(int r, const char *what)
{
    if (r != 1) {
        fprintf(stderr, "agent-test: %s failed\n", what);
        abort();
    }
}

static void
digest_init(digest *d)
{
    d->md = EVP_MD_CTX_new();
    digest_check(d->md ? 1 : 0, "EVP_MD_CTX_new");
    digest_check(EVP_DigestInit_ex(d->md, EVP_sha256(), NULL), "EVP_DigestInit_ex");
    d->bytes = 0;
}

static void
digest_update(digest *d, const void *buf, size_t len)
{
    digest_check(EVP_DigestUpdate(d->md, buf, len), "EVP_DigestUpdate");
    d->bytes += len;
}

/* The hex sha256 into hex (65 bytes); frees the context. */
static void
digest_final(digest *d, char hex[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    digest_check(EVP_DigestFinal_ex(d->md, md, &len) == 1 && len == 32, "EVP_DigestFinal_ex");
    for (unsigned i = 0; i < len; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    EVP_MD_CTX_free(d->md);
    d->md = NULL;
}

static void
expected_sha256(char hex[65])
{
    digest d;
    digest_init(&d);
    uint64_t state = PATTERN_SEED;
    _cleanup_free_ uint8_t *buf = cc_xmalloc(MIB);
    for (unsigned i = 0; i < SPEW_MIB; i++) {
        pattern_fill(&state, buf, MIB);
        digest_update(&d, buf, MIB);
    }
    digest_final(&d, hex);
}

/* All of cid's stdout with ReadStdout, one 32 KiB call at a time, until the EOF error. */
static int
spew_read_stdout(test_ctx *t, const char *step, const char *cid, digest *d)
{
    double end = now_sec() + SPEW_BUDGET_SEC;
    for (;;) {
        if (now_sec() > end)
            return fail(t, step, "not at EOF after %.0f s (%" PRIu64 " bytes)", SPEW_BUDGET_SEC,
                        d->bytes);
        Grpc__ReadStreamRequest req = GRPC__READ_STREAM_REQUEST__INIT;
        req.container_id = req.exec_id = (char *)cid;
        req.len = READ_STDOUT_LEN;
        rpc_result r;
        int code = rpc(t, AGENT_SERVICE, "ReadStdout", &req.base,
                       &grpc__read_stream_response__descriptor, CALL_TIMEOUT, &r);
        if (code == CC_TTRPC_OK) {
            ProtobufCBinaryData *data = &((Grpc__ReadStreamResponse *)r.resp)->data;
            digest_update(d, data->data, data->len);
            rpc_result_clear(&r);
            continue;
        }
        int ret = 0;
        if (code < 0 || code == CC_TTRPC_DEADLINE_EXCEEDED)
            ret = fail(t, step, "after %" PRIu64 " bytes: %s %s", d->bytes, code_name(code),
                       r.message);
        else
            info("%s: EOF as %s \"%s\" after %" PRIu64 " bytes", step, code_name(code),
                 r.message, d->bytes);
        rpc_result_clear(&r);
        return ret;
    }
}

/* ReadStdio with READ_STDIO_INFLIGHT calls in flight; each answer is hashed in arrival order. */
typedef struct stdio_reader {
    test_ctx *t;
    const char *cid;
    digest *d;
    unsigned inflight;
    unsigned calls;
    uint64_t stderr_bytes;
    bool eof;
    char *error; /* the first problem */
} stdio_reader;

static void stdio_reply(cc_ttrpc_code code, const char *message, const uint8_t *payload,
                        size_t len, void *userdata);

static void
stdio_issue(stdio_reader *s)
{
    _cleanup_error_ cc_error *err = NULL;
    Cloak__Agent__V1__ReadStdioRequest req = CLOAK__AGENT__V1__READ_STDIO_REQUEST__INIT;
    req.container_id = req.exec_id = (char *)s->cid;
    req.max_bytes = READ_STDIO_MAX;
    if (!s->t->client || cc_ttrpc_client_call(s->t->client, CLOAK_SERVICE, "ReadStdio", &req.base,
                                              CALL_TIMEOUT, stdio_reply, s, &err) < 0) {
        if (!s->error)
            s->error = cc_xasprintf("ReadStdio: %s", err ? cc_error_message(err) : "no client");
        return;
    }
    s->inflight++;
    s->calls++;
}

static void
stdio_reply(cc_ttrpc_code code, const char *message, const uint8_t *payload, size_t len,
            void *userdata)
{
    stdio_reader *s = userdata;
    s->inflight--;
    if (code != CC_TTRPC_OK) {
        if (!s->error)
            s->error = cc_xasprintf("ReadStdio after %" PRIu64 " bytes: %s %s", s->d->bytes,
                                    code_name((int)code), message);
        return;
    }
    Cloak__Agent__V1__ReadStdioResponse *resp =
        cloak__agent__v1__read_stdio_response__unpack(NULL, len, payload);
    if (!resp) {
        if (!s->error)
            s->error = cc_xasprintf("undecodable ReadStdioResponse (%zu bytes)", len);
        return;
    }
    if (s->eof && resp->stdout.len > 0 && !s->error)
        s->error = cc_xasprintf("%zu bytes of stdout after stdout_eof", resp->stdout.len);
    if (resp->stdout.len > READ_STDIO_MAX && !s->error)
        s->error = cc_xasprintf("%zu bytes of stdout, more than max_bytes %u", resp->stdout.len,
                                READ_STDIO_MAX);
    digest_update(s->d, resp->stdout.data, resp->stdout.len);
    s->stderr_bytes += resp->stderr.len;
    if (resp->stdout_eof)
        s->eof = true;
    cloak__agent__v1__read_stdio_response__free_unpacked(resp, NULL);
    if (!s->eof && !s->error)
        stdio_issue(s);
}

static int
spew_read_stdio(test_ctx *t, const char *step, const char *cid, digest *d)
{
    stdio_reader s = {.t = t, .cid = cid, .d = d};
    for (unsigned i = 0; i < READ_STDIO_INFLIGHT; i++)
        stdio_issue(&s);
    double end = now_sec() + SPEW_BUDGET_SEC;
    while (s.inflight > 0 && now_sec() < end)
        if (cc_loop_run_once(t->loop, 200 * 1000, NULL) < 0)
            break;
    int ret = 0;
    if (s.inflight > 0) {
        /* the callbacks point at s: tear down the connection's calls by reconnecting */
        ret = fail(t, step, "%u calls still in flight after %.0f s (%" PRIu64 " bytes)",
                   s.inflight, SPEW_BUDGET_SEC, d->bytes);
        t->client = cc_ttrpc_client_free(t->client);
    } else if (s.error) {
        ret = fail(t, step, "%s", s.error);
    } else if (!s.eof) {
        ret = fail(t, step, "no stdout_eof (%" PRIu64 " bytes)", d->bytes);
    } else {
        info("%s: %u calls, %" PRIu64 " bytes of stdout, %" PRIu64 " of stderr", step, s.calls,
             d->bytes, s.stderr_bytes);
    }
    free(s.error);
    return ret;
}

/* The spewer's "ready" on stderr, through ReadStderr. */
static int
spew_ready_stderr(test_ctx *t, const char *cid)
{
    _cleanup_free_ char *buf = NULL;
    return read_until_buf(t, 1, cid, cid, &buf, "ready\n");
}

/* The same through ReadStdio (a process read this way is not read otherwise): no stdout yet. */
static int
spew_ready_stdio(test_ctx *t, const char *cid)
{
    _cleanup_free_ char *step = cc_xasprintf("ReadStdio %s 'ready' on stderr", cid);
    _cleanup_free_ char *err = cc_xstrdup("");
    double end = now_sec() + CALL_TIMEOUT / USEC_PER_SEC;
    while (!strstr(err, "ready\n")) {
        if (now_sec() > end)
            return fail(t, step, "not within 30 s; got \"%s\"", err);
        Cloak__Agent__V1__ReadStdioRequest req = CLOAK__AGENT__V1__READ_STDIO_REQUEST__INIT;
        req.container_id = req.exec_id = (char *)cid;
        req.max_bytes = 4096;
        rpc_result r;
        int code = rpc(t, CLOAK_SERVICE, "ReadStdio", &req.base,
                       &cloak__agent__v1__read_stdio_response__descriptor, CALL_TIMEOUT, &r);
        if (code != CC_TTRPC_OK) {
            fail(t, step, "%s %s", code_name(code), r.message);
            rpc_result_clear(&r);
            return -1;
        }
        Cloak__Agent__V1__ReadStdioResponse *resp = (Cloak__Agent__V1__ReadStdioResponse *)r.resp;
        size_t n_out = resp->stdout.len;
        bool eof = resp->stderr_eof;
        char *joined =
            cc_xasprintf("%s%.*s", err, (int)resp->stderr.len, (char *)resp->stderr.data);
        free(err);
        err = joined;
        rpc_result_clear(&r);
        if (n_out > 0)
            return fail(t, step, "%zu bytes of stdout before \"go\"", n_out);
        if (eof && !strstr(err, "ready\n"))
            return fail(t, step, "stderr at EOF; got \"%s\"", err);
    }
    ok(t, "%s", step);
    return 0;
}

typedef int (*spew_ready_fn)(test_ctx *t, const char *cid);
typedef int (*spew_reader_fn)(test_ctx *t, const char *step, const char *cid, digest *d);

/*
 * Container cid spews SPEW_MIB MiB once ready_fn saw it ready and "go" is written, read with
 * fn: the checksum must be want. MiB/s, or < 0.
 */
static double
spew_path(test_ctx *t, const char *cid, const char *how, spew_ready_fn ready_fn,
          spew_reader_fn fn, const char *want)
{
    _cleanup_free_ char *create = cc_xasprintf("CreateContainer %s (spew %d)", cid, SPEW_MIB);
    _cleanup_free_ char *start = cc_xasprintf("StartContainer %s", cid);
    _cleanup_free_ char *step = cc_xasprintf("%s %s: %d MiB of stdout", how, cid, SPEW_MIB);
    _cleanup_free_ char *wait = cc_xasprintf("WaitProcess %s", cid);
    double mibs = -1;
    if (create_container(t, create, cid, args_spew, ELEMENTSOF(args_spew)) < 0)
        return -1;
    if (container_call(t, start, "StartContainer", cid) == 0 && ready_fn(t, cid) == 0 &&
        write_stdin_exec(t, cid, cid, "go\n") == 0) {
        /* the pattern is computed: the clock runs from here */
        digest d;
        digest_init(&d);
        double t0 = now_sec();
        int r = fn(t, step, cid, &d);
        double secs = now_sec() - t0;
        char hex[65];
        digest_final(&d, hex);
        if (r == 0) {
            if (d.bytes != (uint64_t)SPEW_MIB * MIB || !cc_streq(hex, want)) {
                fail(t, step, "%" PRIu64 " bytes, sha256 %s, want %u bytes, sha256 %s", d.bytes,
                     hex, SPEW_MIB * MIB, want);
            } else {
                mibs = (double)d.bytes / MIB / secs;
                ok(t, "%s, sha256 ok, %.1f s, %.1f MiB/s", step, secs, mibs);
            }
        }
        double elapsed = 0;
        if (!t->client && connect_agent(t, 60, &elapsed) < 0) {
            fail(t, step, "cannot reconnect");
            return -1;
        }
        wait_exec(t, wait, cid, "", 0);
    }
    simple_call(t, "RemoveContainer", cid, CC_TTRPC_OK);
    return mibs;
}

/* 8. 64 MiB through ReadStdout and through ReadStdio: both intact; the speeds compared. */
static void
rest_spew(test_ctx *t)
{
    char want[65];
    expected_sha256(want);
    info("expected sha256 of the %d MiB pattern: %s", SPEW_MIB, want);
    double x = spew_path(t, "s1", "ReadStdout", spew_ready_stderr, spew_read_stdout, want);
    double y = spew_path(t, "s2", "ReadStdio", spew_ready_stdio, spew_read_stdio, want);
    if (x > 0 && y > 0)
        printf("stdout throughput: ReadStdout %.1f MiB/s, ReadStdio %.1f MiB/s, ratio %.2f\n", x,
               y, y / x);
    else
        printf("stdout throughput: ReadStdout %.1f MiB/s, ReadStdio %.1f MiB/s (a path failed)\n",
               x, y);
    fflush(stdout);
}

/* --- the step ----------------------------------------------------------------------------- */

void
step_rest(test_ctx *t)
{
    bool r1 = create_container(t, "CreateContainer r1", "r1", args_sleep,
                               ELEMENTSOF(args_sleep)) == 0;
    if (r1 && container_call(t, "StartContainer r1", "StartContainer", "r1") == 0) {
        rest_exec_echo(t);
        rest_exec_tty(t);
        rest_list_processes(t);
        rest_stats(t);
        rest_pause(t);
        rest_update(t);
    }
    rest_oom(t);
    rest_spew(t);

    Grpc__OnlineCPUMemRequest creq = GRPC__ONLINE_CPUMEM_REQUEST__INIT;
    creq.nb_cpus = 1;
    expect_error(t, "OnlineCPUMem", "OnlineCPUMem", &creq.base, CC_TTRPC_UNIMPLEMENTED, NULL);

    if (r1 && simple_call(t, "RemoveContainer", "r1", CC_TTRPC_OK) == 0) {
        /* e4 (alloc) was still running: the removal ended it with the container */
        Grpc__StatsContainerRequest sreq = GRPC__STATS_CONTAINER_REQUEST__INIT;
        sreq.container_id = (char *)"r1";
        expect_error(t, "StatsContainer r1 after its removal", "StatsContainer", &sreq.base,
                     CC_TTRPC_NOT_FOUND, NULL);
    }
}
