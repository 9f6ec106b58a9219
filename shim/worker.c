/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Worker threads and their two ways back to the loop thread: shim_on_loop() (run a function
 * there and wait) and shim_agent_call() (an agent call made on the loop, waited for).
 */
#define _GNU_SOURCE
#include "log.h"
#include "shim.h"
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define WORKER_STACK_SIZE (256u << 10)

typedef struct worker {
    shim *s;
    shim_work_fn fn;
    void *arg;
} worker;

static void
worker_done(shim *s, void *arg)
{
    (void)arg;
    s->workers--;
}

static void *
worker_main(void *p)
{
    worker *w = p;
    w->fn(w->s, w->arg);
    (void)shim_on_loop(w->s, worker_done, NULL);
    free(w);
    return NULL;
}

void
shim_spawn(shim *s, shim_work_fn fn, void *arg)
{
    worker *w = cc_xmalloc(sizeof(*w));
    *w = (worker){.s = s, .fn = fn, .arg = arg};
    pthread_attr_t attr;
    pthread_t t;
    if (pthread_attr_init(&attr) != 0 ||
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) != 0 ||
        pthread_attr_setstacksize(&attr, WORKER_STACK_SIZE) != 0)
        abort();
    int r = pthread_create(&t, &attr, worker_main, w);
    pthread_attr_destroy(&attr);
    if (r != 0) {
        cc_log_errno(CC_LOG_ERROR, -r, "cannot create a worker thread");
        abort();
    }
    s->workers++;
}

/* --- shim_on_loop ---------------------------------------------------------------------------- */

typedef struct loop_job {
    shim *s;
    shim_work_fn fn;
    void *arg;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
} loop_job;

static void
job_signal(loop_job *j)
{
    pthread_mutex_lock(&j->lock);
    j->done = true;
    pthread_cond_signal(&j->cond);
    pthread_mutex_unlock(&j->lock);
}

static void
job_wait(loop_job *j)
{
    pthread_mutex_lock(&j->lock);
    while (!j->done)
        pthread_cond_wait(&j->cond, &j->lock);
    pthread_mutex_unlock(&j->lock);
}

static void
job_run(cc_loop *loop, void *p)
{
    loop_job *j = p;
    (void)loop;
    j->fn(j->s, j->arg);
    job_signal(j);
}

int
shim_on_loop(shim *s, shim_work_fn fn, void *arg)
{
    loop_job j = {.s = s, .fn = fn, .arg = arg};
    pthread_mutex_init(&j.lock, NULL);
    pthread_cond_init(&j.cond, NULL);
    int r = cc_loop_post(s->loop, job_run, &j);
    if (r >= 0)
        job_wait(&j);
    pthread_cond_destroy(&j.cond);
    pthread_mutex_destroy(&j.lock);
    return r < 0 ? r : 0;
}

/* --- shim_agent_call ------------------------------------------------------------------------- */

typedef struct agent_job {
    loop_job job;
    const char *service, *method;
    const ProtobufCMessage *req;
    uint64_t timeout_usec;
    int code;
    char *message;
    uint8_t *payload;
    size_t len;
} agent_job;

static void
agent_reply(cc_ttrpc_code code, const char *message, const uint8_t *payload, size_t len,
            void *userdata)
{
    agent_job *a = userdata;
    a->code = code;
    a->message = cc_xstrdup(message ? message : "");
    if (len > 0) {
        a->payload = cc_xmalloc(len);
        memcpy(a->payload, payload, len);
        a->len = len;
    }
    job_signal(&a->job);
}

static void
agent_start(cc_loop *loop, void *p)
{
    agent_job *a = p;
    shim *s = a->job.s;
    (void)loop;
    if (!s->agent || cc_ttrpc_client_is_closed(s->agent)) {
        agent_reply(CC_TTRPC_UNAVAILABLE,
                    s->vm_gone ? "the VM is gone" : "not connected to the agent", NULL, 0, a);
        return;
    }
    _cleanup_error_ cc_error *e = NULL;
    if (cc_ttrpc_client_call(s->agent, a->service, a->method, a->req, a->timeout_usec,
                             agent_reply, a, &e) < 0)
        agent_reply(CC_TTRPC_UNAVAILABLE, cc_error_message(e), NULL, 0, a);
}

int
shim_agent_call(shim *s, const char *service, const char *method, const ProtobufCMessage *req,
                const ProtobufCMessageDescriptor *resp_desc, uint64_t timeout_usec,
                ProtobufCMessage **ret_resp, int *ret_code, cc_error **err)
{
    agent_job a = {.job = {.s = s}, .service = service, .method = method, .req = req,
                   .timeout_usec = timeout_usec};
    pthread_mutex_init(&a.job.lock, NULL);
    pthread_cond_init(&a.job.cond, NULL);
    int r = cc_loop_post(s->loop, agent_start, &a);
    if (r >= 0)
        job_wait(&a.job);
    pthread_cond_destroy(&a.job.cond);
    pthread_mutex_destroy(&a.job.lock);
    if (r < 0) {
        if (ret_code)
            *ret_code = CC_TTRPC_UNAVAILABLE;
        return cc_error_msg(err, r, "agent %s: the shim is shutting down", method);
    }
    _cleanup_free_ char *message = a.message;
    _cleanup_free_ uint8_t *payload = a.payload;
    if (ret_code)
        *ret_code = a.code;
    if (a.code != CC_TTRPC_OK)
        return cc_error_msg(err, cc_ttrpc_code_to_errno(a.code), "agent %s: %s", method,
                            message);
    if (resp_desc && ret_resp) {
        ProtobufCMessage *m = protobuf_c_message_unpack(resp_desc, NULL, a.len, payload);
        if (!m)
            return cc_error_msg(err, -EBADMSG, "agent %s: undecodable response", method);
        *ret_resp = m;
    }
    return 0;
}
