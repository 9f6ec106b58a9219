/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gRPC server: the completion queue thread and the hand-over of calls to the loop thread.
 *
 * A call's memory is reference counted (atomically: both threads drop references): one
 * reference per batch in flight (receive, close, send) and one for its owner, which is the
 * queue thread until the request arrived, then the hand-over queue, then the handler until it
 * completes the call. The grpc_call itself is unreferenced with the memory, except for calls
 * held by handlers when the server is freed: those are cancelled and their grpc_call
 * released at once (gRPC's shutdown waits for every call), the memory waits for the handler.
 */
#define _GNU_SOURCE
#include "grpc.h"
#include "log.h"
#include "util.h"

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/un.h>

/* Calls the server is ready to accept at once (requested from gRPC ahead of time). */
#define REQUESTS_AHEAD 32
#define STATUS_MESSAGE_MAX (64u << 10)

typedef enum tag_kind {
    TAG_NEW,
    TAG_RECV,
    TAG_CLOSE,
    TAG_SEND,
    TAG_STREAM,
    TAG_SHUTDOWN,
} tag_kind;

typedef struct call_tag {
    tag_kind kind;
    cc_grpc_call *call;
} call_tag;

struct cc_grpc_call {
    cc_grpc_server *server;    /* loop thread: set while held by a handler */
    cc_grpc_call *prev, *next; /* hand-over queue (under lock), then held list (loop) */
    atomic_int refs;
    atomic_bool cancelled;
    grpc_call *gcall;
    grpc_call_details details;
    grpc_metadata_array md;
    grpc_byte_buffer *recv;
    grpc_byte_buffer *send;
    grpc_slice status_details;
    bool has_status_details;
    int close_cancelled;
    char *method;
    char **metadata; /* key, value, key, value, ... */
    size_t n_metadata;
    call_tag tag_new, tag_recv, tag_close, tag_send, tag_stream;

    /*
     * Streamed messages (cc_grpc_call_send()): gRPC takes one GRPC_OP_SEND_MESSAGE at a time,
     * so the loop thread queues them and the queue thread starts the next one when the
     * previous one completed; the status waits for the last. Under stream_lock.
     */
    pthread_mutex_t stream_lock;
    bool streaming;                     /* initial metadata went with the first message */
    bool stream_in_flight;              /* a message batch is running (holds a reference) */
    bool stream_failed;                 /* a message batch failed: the call is dead */
    grpc_byte_buffer *stream_send;      /* the message in flight */
    grpc_byte_buffer **stream_queue;    /* waiting messages, oldest first */
    size_t n_stream_queue, stream_queue_head;
    bool final_pending;                 /* the status waits for the queue (holds a reference) */
    cc_ttrpc_code final_code;
    char *final_message;
};

typedef struct service {
    char *name;
    cc_grpc_method *methods; /* names owned */
    size_t n_methods;
    void *userdata;
} service;

struct cc_grpc_server {
    cc_loop *loop;
    grpc_server *server;
    grpc_completion_queue *cq;
    call_tag tag_shutdown;
    bool grpc_inited;
    bool started;
    bool thread_started;
    pthread_t thread;

    pthread_mutex_t lock;
    bool shutting_down;                    /* under lock */
    cc_grpc_call *queue_head, *queue_tail; /* under lock */
    int efd;                               /* owned by efd_source once that exists */
    cc_loop_source *efd_source;

    /* Loop thread only. */
    cc_grpc_call *held;
    size_t n_held;
    service *services;
    size_t n_services;
    unsigned dispatching;
    bool freed;
};

/* --- calls, any thread ----------------------------------------------------------------- */

static cc_grpc_call *
call_new(void)
{
    cc_grpc_call *call = cc_xzalloc(sizeof(*call));
    atomic_init(&call->refs, 1);
    atomic_init(&call->cancelled, false);
    grpc_call_details_init(&call->details);
    grpc_metadata_array_init(&call->md);
    call->tag_new = (call_tag){TAG_NEW, call};
    call->tag_recv = (call_tag){TAG_RECV, call};
    call->tag_close = (call_tag){TAG_CLOSE, call};
    call->tag_send = (call_tag){TAG_SEND, call};
    call->tag_stream = (call_tag){TAG_STREAM, call};
    pthread_mutex_init(&call->stream_lock, NULL);
    return call;
}

static void
call_unref(cc_grpc_call *call)
{
    if (atomic_fetch_sub(&call->refs, 1) != 1)
        return;
    if (call->gcall)
        grpc_call_unref(call->gcall);
    grpc_call_details_destroy(&call->details);
    grpc_metadata_array_destroy(&call->md);
    if (call->recv)
        grpc_byte_buffer_destroy(call->recv);
    if (call->send)
        grpc_byte_buffer_destroy(call->send);
    if (call->has_status_details)
        grpc_slice_unref(call->status_details);
    if (call->stream_send)
        grpc_byte_buffer_destroy(call->stream_send);
    for (size_t i = call->stream_queue_head; i < call->n_stream_queue; i++)
        grpc_byte_buffer_destroy(call->stream_queue[i]);
    free(call->stream_queue);
    free(call->final_message);
    pthread_mutex_destroy(&call->stream_lock);
    for (size_t i = 0; i < 2 * call->n_metadata; i++)
        free(call->metadata[i]);
    free(call->metadata);
    free(call->method);
    free(call);
}

static char *
slice_strdup(grpc_slice s)
{
    return cc_xstrndup((const char *)GRPC_SLICE_START_PTR(s), GRPC_SLICE_LENGTH(s));
}

/*
 * Starts the final batch: initial metadata, the message when payload is non-NULL (its
 * reference is taken), and the status. Owner's thread; the batch holds a reference.
 */
static int
call_send(cc_grpc_call *call, cc_ttrpc_code code, const char *message, grpc_slice *payload)
{
    grpc_op ops[3];
    size_t n = 0;

    memset(ops, 0, sizeof(ops));
    if (!call->streaming)
        ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    if (payload) {
        call->send = grpc_raw_byte_buffer_create(payload, 1);
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n++].data.send_message.send_message = call->send;
    }
    if (code <= CC_TTRPC_OK && !payload && !call->streaming)
        code = CC_TTRPC_UNKNOWN; /* a failure must not read as success */
    size_t len = strnlen(message, STATUS_MESSAGE_MAX);
    call->status_details = grpc_slice_from_copied_buffer(message, len);
    call->has_status_details = true;
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = (grpc_status_code)code;
    ops[n++].data.send_status_from_server.status_details = &call->status_details;

    atomic_fetch_add(&call->refs, 1);
    grpc_call_error e = grpc_call_start_batch(call->gcall, ops, n, &call->tag_send, NULL);
    if (e != GRPC_CALL_OK) {
        atomic_fetch_sub(&call->refs, 1); /* the owner still holds one */
        cc_log(CC_LOG_DEBUG, "grpc: sending the status of %s failed: %d", call->method, (int)e);
        return -EIO;
    }
    return 0;
}

/*
 * Starts the batch sending bb (taken), with the initial metadata the first time. Caller
 * holds stream_lock; the batch holds a reference. On failure the stream is dead.
 */
static int
stream_start_locked(cc_grpc_call *call, grpc_byte_buffer *bb)
{
    grpc_op ops[2];
    size_t n = 0;

    if (!call->gcall) {
        grpc_byte_buffer_destroy(bb);
        call->stream_failed = true;
        return -ECANCELED;
    }
    memset(ops, 0, sizeof(ops));
    if (!call->streaming)
        ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n++].data.send_message.send_message = bb;
    call->stream_send = bb;
    call->streaming = true;
    call->stream_in_flight = true;
    atomic_fetch_add(&call->refs, 1);
    grpc_call_error e = grpc_call_start_batch(call->gcall, ops, n, &call->tag_stream, NULL);
    if (e != GRPC_CALL_OK) {
        atomic_fetch_sub(&call->refs, 1);
        cc_log(CC_LOG_DEBUG, "grpc: streaming a message of %s failed: %d", call->method, (int)e);
        grpc_byte_buffer_destroy(bb);
        call->stream_send = NULL;
        call->stream_in_flight = false;
        call->stream_failed = true;
        return -EIO;
    }
    return 0;
}

/* A streamed message went out (or failed): start the next one, or the pending status. */
static void
on_stream(cc_grpc_call *call, bool success)
{
    bool drop_final = false;

    pthread_mutex_lock(&call->stream_lock);
    if (call->stream_send)
        grpc_byte_buffer_destroy(call->stream_send);
    call->stream_send = NULL;
    call->stream_in_flight = false;
    if (!success) {
        call->stream_failed = true;
        atomic_store(&call->cancelled, true);
    }
    if (!call->stream_failed && call->stream_queue_head < call->n_stream_queue)
        (void)stream_start_locked(call, call->stream_queue[call->stream_queue_head++]);
    if (!call->stream_in_flight && call->final_pending) {
        call->final_pending = false;
        drop_final = true;
        if (!call->stream_failed && call->gcall)
            (void)call_send(call, call->final_code, call->final_message, NULL);
    }
    pthread_mutex_unlock(&call->stream_lock);
    if (drop_final)
        call_unref(call);
    call_unref(call); /* the batch's */
}

/* --- the completion queue thread ---------------------------------------------------------- */

static bool
server_is_shutting_down(cc_grpc_server *s)
{
    pthread_mutex_lock(&s->lock);
    bool r = s->shutting_down;
    pthread_mutex_unlock(&s->lock);
    return r;
}

static void
request_call(cc_grpc_server *s)
{
    cc_grpc_call *call = call_new();
    grpc_call_error e = grpc_server_request_call(s->server, &call->gcall, &call->details, &call->md,
                                                 s->cq, s->cq, &call->tag_new);
    if (e != GRPC_CALL_OK) {
        cc_log(CC_LOG_ERROR, "grpc: requesting a call failed: %d", (int)e);
        call_unref(call);
    }
}

static void
on_new(cc_grpc_server *s, cc_grpc_call *call, bool success)
{
    if (!success) { /* shutting down */
        call_unref(call);
        return;
    }
    if (!server_is_shutting_down(s))
        request_call(s);

    call->method = slice_strdup(call->details.method);
    call->metadata = cc_xreallocarray(NULL, 2 * call->md.count + 1, sizeof(char *));
    for (size_t i = 0; i < call->md.count; i++) {
        call->metadata[2 * i] = slice_strdup(call->md.metadata[i].key);
        call->metadata[2 * i + 1] = slice_strdup(call->md.metadata[i].value);
    }
    call->n_metadata = call->md.count;
    grpc_metadata_array_destroy(&call->md);
    grpc_metadata_array_init(&call->md);

    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    op.data.recv_close_on_server.cancelled = &call->close_cancelled;
    atomic_fetch_add(&call->refs, 1);
    if (grpc_call_start_batch(call->gcall, &op, 1, &call->tag_close, NULL) != GRPC_CALL_OK)
        atomic_fetch_sub(&call->refs, 1);

    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &call->recv;
    atomic_fetch_add(&call->refs, 1);
    if (grpc_call_start_batch(call->gcall, &op, 1, &call->tag_recv, NULL) != GRPC_CALL_OK) {
        atomic_fetch_sub(&call->refs, 1);
        grpc_call_cancel(call->gcall, NULL);
        call_unref(call);
    }
}

static void
on_recv(cc_grpc_server *s, cc_grpc_call *call, bool success)
{
    call_unref(call); /* the receive batch's reference; the owner's remains */
    if (!success || !call->recv) {
        /* Cancelled, or the client closed without sending a message. */
        if (success)
            (void)call_send(call, CC_TTRPC_INTERNAL, "grpc: no request message", NULL);
        call_unref(call);
        return;
    }

    pthread_mutex_lock(&s->lock);
    if (s->shutting_down) {
        pthread_mutex_unlock(&s->lock);
        call_unref(call);
        return;
    }
    bool was_empty = !s->queue_head;
    call->next = NULL;
    if (s->queue_tail)
        s->queue_tail->next = call;
    else
        s->queue_head = call;
    s->queue_tail = call;
    pthread_mutex_unlock(&s->lock);

    if (was_empty) {
        uint64_t one = 1;
        if (write(s->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
            cc_log_errno(CC_LOG_ERROR, -errno, "grpc: waking the loop");
    }
}

/* Runs the completion queue until it is shut down (after the server's shutdown). */
static void
cq_run(cc_grpc_server *s)
{
    for (;;) {
        grpc_event ev =
            grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            return;
        if (ev.type != GRPC_OP_COMPLETE)
            continue;
        call_tag *t = ev.tag;
        switch (t->kind) {
        case TAG_SHUTDOWN:
            grpc_completion_queue_shutdown(s->cq);
            break;
        case TAG_NEW:
            on_new(s, t->call, ev.success);
            break;
        case TAG_RECV:
            on_recv(s, t->call, ev.success);
            break;
        case TAG_CLOSE:
            if (!ev.success || t->call->close_cancelled)
                atomic_store(&t->call->cancelled, true);
            call_unref(t->call);
            break;
        case TAG_SEND:
            call_unref(t->call);
            break;
        case TAG_STREAM:
            on_stream(t->call, ev.success);
            break;
        }
    }
}

static void *
cq_thread(void *userdata)
{
    cc_grpc_server *s = userdata;

    for (unsigned i = 0; i < REQUESTS_AHEAD; i++)
        request_call(s);
    cq_run(s);
    return NULL;
}

/* --- the loop thread ------------------------------------------------------------------------ */

static const service *
find_service(const cc_grpc_server *s, const char *name, size_t len)
{
    for (size_t i = 0; i < s->n_services; i++)
        if (strlen(s->services[i].name) == len && memcmp(s->services[i].name, name, len) == 0)
            return &s->services[i];
    return NULL;
}

static void
held_unlink(cc_grpc_call *call)
{
    cc_grpc_server *s = call->server;

    if (!s)
        return;
    if (call->prev)
        call->prev->next = call->next;
    else
        s->held = call->next;
    if (call->next)
        call->next->prev = call->prev;
    call->prev = call->next = NULL;
    call->server = NULL;
    s->n_held--;
}

static void
dispatch(cc_grpc_server *s, cc_grpc_call *call)
{
    call->server = s;
    call->prev = NULL;
    call->next = s->held;
    if (s->held)
        s->held->prev = call;
    s->held = call;
    s->n_held++;

    grpc_byte_buffer_reader reader;
    grpc_slice req = grpc_empty_slice();
    if (grpc_byte_buffer_reader_init(&reader, call->recv)) {
        req = grpc_byte_buffer_reader_readall(&reader);
        grpc_byte_buffer_reader_destroy(&reader);
    }
    grpc_byte_buffer_destroy(call->recv);
    call->recv = NULL;

    /* "/<service>/<method>" */
    const char *path = call->method, *slash = path[0] == '/' ? strchr(path + 1, '/') : NULL;
    if (!slash) {
        (void)cc_grpc_call_fail(call, CC_TTRPC_UNIMPLEMENTED, "malformed method name: \"%s\"",
                                path);
        goto out;
    }
    const service *svc = find_service(s, path + 1, (size_t)(slash - path - 1));
    if (!svc) {
        (void)cc_grpc_call_fail(call, CC_TTRPC_UNIMPLEMENTED, "unknown service %.*s",
                                (int)(slash - path - 1), path + 1);
        goto out;
    }
    for (size_t i = 0; i < svc->n_methods; i++)
        if (cc_streq(svc->methods[i].name, slash + 1)) {
            svc->methods[i].handler(call, GRPC_SLICE_START_PTR(req), GRPC_SLICE_LENGTH(req),
                                    svc->userdata);
            goto out;
        }
    (void)cc_grpc_call_fail(call, CC_TTRPC_UNIMPLEMENTED, "unknown method %s for service %s",
                            slash + 1, svc->name);
out:
    grpc_slice_unref(req);
}

static void
server_release(cc_grpc_server *s)
{
    for (size_t i = 0; i < s->n_services; i++) {
        for (size_t j = 0; j < s->services[i].n_methods; j++)
            free((char *)s->services[i].methods[j].name);
        free(s->services[i].methods);
        free(s->services[i].name);
    }
    free(s->services);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static int
on_queue(cc_loop_source *src, int fd, uint32_t revents, void *userdata)
{
    cc_grpc_server *s = userdata;
    uint64_t v;

    if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        return cc_log_errno(CC_LOG_ERROR, -errno, "grpc: reading the queue's eventfd");

    s->dispatching++;
    while (!s->freed) {
        pthread_mutex_lock(&s->lock);
        cc_grpc_call *call = s->queue_head;
        if (call) {
            s->queue_head = call->next;
            if (!s->queue_head)
                s->queue_tail = NULL;
        }
        pthread_mutex_unlock(&s->lock);
        if (!call)
            break;
        dispatch(s, call);
    }
    s->dispatching--;
    if (s->freed && s->dispatching == 0)
        server_release(s);
    return 0;
}

int
cc_grpc_server_new(cc_loop *loop, cc_grpc_server **ret, cc_error **err)
{
    int r;

    cc_grpc_server *s = cc_xzalloc(sizeof(*s));
    s->loop = loop;
    s->efd = -EBADF;
    s->tag_shutdown = (call_tag){TAG_SHUTDOWN, NULL};
    pthread_mutex_init(&s->lock, NULL);

    s->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->efd < 0) {
        r = cc_error_set(err, -errno, "eventfd");
        goto fail;
    }
    r = cc_loop_add_io(loop, s->efd, EPOLLIN, on_queue, s, &s->efd_source, err);
    if (r < 0)
        goto fail;
    cc_loop_source_set_io_fd_own(s->efd_source, true); /* s->efd stays, borrowed */
    cc_loop_source_set_description(s->efd_source, "grpc-server");

    grpc_init();
    s->grpc_inited = true;
    grpc_arg args[] = {
        {.type = GRPC_ARG_INTEGER,
         .key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
         .value.integer = CC_GRPC_MESSAGE_LENGTH_MAX},
    };
    grpc_channel_args cargs = {.num_args = ELEMENTSOF(args), .args = args};
    s->server = grpc_server_create(&cargs, NULL);
    s->cq = grpc_completion_queue_create_for_next(NULL);
    if (!s->server || !s->cq) {
        r = cc_error_msg(err, -ENOMEM, "creating the gRPC server");
        goto fail;
    }
    grpc_server_register_completion_queue(s->server, s->cq, NULL);
    *ret = s;
    return 0;

fail:
    (void)cc_grpc_server_free(s);
    return r;
}

int
cc_grpc_server_register(cc_grpc_server *s, const char *name, const cc_grpc_method *methods,
                        size_t n, void *userdata, cc_error **err)
{
    if (!name || !*name || strchr(name, '/') || n == 0)
        return cc_error_msg(err, -EINVAL, "invalid service \"%s\"", name ? name : "");
    if (find_service(s, name, strlen(name)))
        return cc_error_msg(err, -EEXIST, "service \"%s\" registered already", name);
    for (size_t i = 0; i < n; i++) {
        if (!methods[i].name || !*methods[i].name || !methods[i].handler)
            return cc_error_msg(err, -EINVAL, "service \"%s\": invalid method %zu", name, i);
        for (size_t j = 0; j < i; j++)
            if (cc_streq(methods[i].name, methods[j].name))
                return cc_error_msg(err, -EINVAL, "service \"%s\": duplicate method \"%s\"", name,
                                    methods[i].name);
    }

    s->services = cc_xreallocarray(s->services, s->n_services + 1, sizeof(*s->services));
    service *svc = &s->services[s->n_services++];
    svc->name = cc_xstrdup(name);
    svc->methods = cc_xreallocarray(NULL, n, sizeof(*svc->methods));
    for (size_t i = 0; i < n; i++)
        svc->methods[i] = (cc_grpc_method){cc_xstrdup(methods[i].name), methods[i].handler};
    svc->n_methods = n;
    svc->userdata = userdata;
    return 0;
}

int
cc_grpc_server_listen(cc_grpc_server *s, const char *path, unsigned mode, cc_error **err)
{
    if (s->started)
        return cc_error_msg(err, -EALREADY, "the gRPC server is listening already");
    if (!path || !*path || strlen(path) >= sizeof(((struct sockaddr_un *)NULL)->sun_path))
        return cc_error_msg(err, -EINVAL, "invalid socket path \"%s\"", path ? path : "");

    /*
     * Clients (containerd, test suites) connect as soon as the socket file exists, but gRPC
     * creates it before it listens: bind a temporary name, start, chmod, then rename it into
     * place, so that the path appears only once it accepts connections, with its final mode.
     * A path too long for the temporary name is bound directly.
     */
    _cleanup_free_ char *tmp = cc_xasprintf("%s.%d.tmp", path, (int)getpid());
    bool use_tmp = strlen(tmp) < sizeof(((struct sockaddr_un *)NULL)->sun_path);
    const char *bound = use_tmp ? tmp : path;
    if (use_tmp)
        (void)unlink(tmp);
    _cleanup_free_ char *addr = cc_xasprintf("unix:%s", bound);
    grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
    int port = grpc_server_add_http2_port(s->server, addr, creds);
    grpc_server_credentials_release(creds);
    if (port == 0)
        return cc_error_msg(err, -EADDRNOTAVAIL, "gRPC cannot listen on '%s'", bound);

    grpc_server_start(s->server);
    s->started = true;
    int r = -pthread_create(&s->thread, NULL, cq_thread, s);
    if (r < 0)
        return cc_error_set(err, r, "creating the gRPC completion queue thread");
    s->thread_started = true;
    if (chmod(bound, mode) < 0)
        return cc_error_set(err, -errno, "chmod '%s'", bound);
    if (use_tmp && rename(tmp, path) < 0)
        return cc_error_set(err, -errno, "rename '%s' to '%s'", tmp, path);
    return 0;
}

size_t
cc_grpc_server_get_n_calls(const cc_grpc_server *s)
{
    return s->n_held;
}

cc_grpc_server *
cc_grpc_server_free(cc_grpc_server *s)
{
    if (!s || s->freed)
        return NULL;

    pthread_mutex_lock(&s->lock);
    s->shutting_down = true;
    cc_grpc_call *queued = s->queue_head;
    s->queue_head = s->queue_tail = NULL;
    pthread_mutex_unlock(&s->lock);

    if (s->server && s->started) {
        grpc_server_shutdown_and_notify(s->server, s->cq, &s->tag_shutdown);
        grpc_server_cancel_all_calls(s->server);
    }
    while (queued) {
        cc_grpc_call *next = queued->next;
        call_unref(queued);
        queued = next;
    }
    /* gRPC's shutdown waits for every call: release those the handlers hold. */
    while (s->held) {
        cc_grpc_call *call = s->held;
        held_unlink(call);
        atomic_store(&call->cancelled, true);
        pthread_mutex_lock(&call->stream_lock);
        grpc_call_unref(call->gcall);
        call->gcall = NULL;
        pthread_mutex_unlock(&call->stream_lock);
    }

    if (s->cq) {
        if (s->thread_started)
            (void)pthread_join(s->thread, NULL);
        else {
            if (!s->started)
                grpc_completion_queue_shutdown(s->cq);
            cq_run(s);
        }
    }
    if (s->server)
        grpc_server_destroy(s->server);
    if (s->cq)
        grpc_completion_queue_destroy(s->cq);
    if (s->grpc_inited)
        grpc_shutdown();
    if (s->efd_source)
        s->efd_source = cc_loop_source_free(s->efd_source);
    else
        s->efd = cc_close(s->efd);

    if (s->dispatching > 0)
        s->freed = true; /* on_queue() releases it */
    else
        server_release(s);
    return NULL;
}

/* --- completing calls (loop thread) -------------------------------------------------------- */

const char *
cc_grpc_call_get_method(const cc_grpc_call *call)
{
    return call->method;
}

const char *
cc_grpc_call_get_metadata(const cc_grpc_call *call, const char *key)
{
    for (size_t i = 0; i < call->n_metadata; i++)
        if (strcasecmp(call->metadata[2 * i], key) == 0)
            return call->metadata[2 * i + 1];
    return NULL;
}

bool
cc_grpc_call_is_cancelled(const cc_grpc_call *call)
{
    return atomic_load(&call->cancelled) || !call->gcall;
}

static int
call_complete(cc_grpc_call *call, cc_ttrpc_code code, const char *message, grpc_slice *payload)
{
    int r = -ECANCELED;

    held_unlink(call);
    if (!cc_grpc_call_is_cancelled(call)) {
        pthread_mutex_lock(&call->stream_lock);
        if (!call->streaming)
            r = call_send(call, code, message, payload);
        else if (call->stream_failed)
            r = -ECANCELED;
        else if (call->stream_in_flight) {
            /* on_stream() sends the status after the last message. */
            call->final_pending = true;
            call->final_code = code;
            call->final_message = cc_xstrdup(message);
            atomic_fetch_add(&call->refs, 1);
            r = 0;
        } else
            r = call_send(call, code, message, NULL);
        pthread_mutex_unlock(&call->stream_lock);
    }
    call_unref(call);
    return r;
}

static bool
call_is_streaming(cc_grpc_call *call)
{
    pthread_mutex_lock(&call->stream_lock);
    bool r = call->streaming;
    pthread_mutex_unlock(&call->stream_lock);
    return r;
}

static grpc_byte_buffer *
pack_buffer(const ProtobufCMessage *msg)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    grpc_slice payload = grpc_slice_malloc(len);
    if (len > 0)
        (void)protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(payload));
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&payload, 1);
    grpc_slice_unref(payload);
    return bb;
}

static int
stream_push(cc_grpc_call *call, grpc_byte_buffer *bb)
{
    int r = 0;

    if (cc_grpc_call_is_cancelled(call)) {
        grpc_byte_buffer_destroy(bb);
        return -ECANCELED;
    }
    pthread_mutex_lock(&call->stream_lock);
    if (call->stream_failed) {
        grpc_byte_buffer_destroy(bb);
        r = -ECANCELED;
    } else if (!call->stream_in_flight)
        r = stream_start_locked(call, bb);
    else {
        if (call->stream_queue_head > 0 && call->stream_queue_head == call->n_stream_queue)
            call->stream_queue_head = call->n_stream_queue = 0;
        call->stream_queue = cc_xreallocarray(call->stream_queue, call->n_stream_queue + 1,
                                              sizeof(*call->stream_queue));
        call->stream_queue[call->n_stream_queue++] = bb;
    }
    pthread_mutex_unlock(&call->stream_lock);
    return r;
}

int
cc_grpc_call_send(cc_grpc_call *call, const ProtobufCMessage *msg)
{
    return stream_push(call, pack_buffer(msg));
}

int
cc_grpc_call_reply_raw(cc_grpc_call *call, const void *buf, size_t len)
{
    grpc_slice payload = grpc_slice_from_copied_buffer(buf ? buf : "", len);
    int r;
    if (call_is_streaming(call)) {
        if (buf && len > 0) {
            grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&payload, 1);
            (void)stream_push(call, bb);
        }
        r = call_complete(call, CC_TTRPC_OK, "", NULL);
    } else
        r = call_complete(call, CC_TTRPC_OK, "", &payload);
    grpc_slice_unref(payload);
    return r;
}

int
cc_grpc_call_reply(cc_grpc_call *call, const ProtobufCMessage *resp)
{
    if (call_is_streaming(call)) {
        if (resp)
            (void)cc_grpc_call_send(call, resp);
        return call_complete(call, CC_TTRPC_OK, "", NULL);
    }
    size_t len = resp ? protobuf_c_message_get_packed_size(resp) : 0;
    grpc_slice payload = grpc_slice_malloc(len);
    if (len > 0)
        (void)protobuf_c_message_pack(resp, GRPC_SLICE_START_PTR(payload));
    int r = call_complete(call, CC_TTRPC_OK, "", &payload);
    grpc_slice_unref(payload);
    return r;
}

int
cc_grpc_call_fail(cc_grpc_call *call, cc_ttrpc_code code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    _cleanup_free_ char *message = cc_xvasprintf(fmt, ap);
    va_end(ap);
    return call_complete(call, code, message, NULL);
}

int
cc_grpc_call_fail_error(cc_grpc_call *call, const cc_error *e)
{
    return call_complete(call, e ? cc_ttrpc_code_from_errno(e->code) : CC_TTRPC_INTERNAL,
                         cc_error_message(e), NULL);
}

ProtobufCMessage *
cc_grpc_call_unpack(cc_grpc_call *call, const ProtobufCMessageDescriptor *desc, const uint8_t *req,
                    size_t len)
{
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, len, req);
    if (!m)
        (void)cc_grpc_call_fail(call, CC_TTRPC_INTERNAL, "grpc: error unmarshalling request");
    return m;
}
