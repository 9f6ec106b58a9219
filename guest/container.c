/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
/*
 * Containers and their processes: crun create/start/delete run as children of the agent;
 * the container's init is an orphan of `crun create` that the agent (PID 1, or a subreaper
 * in tests) reaps. Stdio are pipes: the agent keeps one end of each, served by
 * ReadStdout/ReadStderr (long polls) and WriteStdin.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"
#include "fs.h"
#include "image.h"
#include "json.h"
#include "log.h"
#include "oci.h"
#include "cloak/agent.pb-c.h"
#include "util.h"


#define REMOVE_TIMEOUT_USEC (10ull * 1000 * 1000)

typedef struct agent_stream_call {
    struct agent_stream_call *next;
    agent_stream *stream;
    cc_ttrpc_call *call;
    size_t len;      /* read: at most this much */
    uint8_t *data;   /* write: what is left to write */
    size_t data_len, done;
} agent_stream_call;

typedef struct agent_waiter {
    struct agent_waiter *next;
    agent_process *proc;
    cc_ttrpc_call *call;
} agent_waiter;

const char *
agent_container_state_to_string(agent_container_state s)
{
    static const char *const names[] = {
        [AGENT_CONTAINER_CREATING] = "creating", [AGENT_CONTAINER_CREATED] = "created",
        [AGENT_CONTAINER_STARTING] = "starting", [AGENT_CONTAINER_RUNNING] = "running",
        [AGENT_CONTAINER_STOPPED] = "stopped",   [AGENT_CONTAINER_REMOVING] = "removing",
    };
    return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "invalid";
}

agent_container *
agent_container_find(agent *a, const char *id)
{
    for (agent_container *c = a->containers; c; c = c->next)
        if (cc_streq(c->id, id))
            return c;
    return NULL;
}

agent_process *
agent_process_find(agent_container *c, const char *exec_id)
{
    if (!exec_id || !*exec_id || cc_streq(exec_id, c->id))
        return c->init;
    for (agent_process *p = c->execs; p; p = p->next)
        if (cc_streq(p->exec_id, exec_id))
            return p;
    return NULL;
}

/* --- streams -------------------------------------------------------------------------------- */

static void stream_dispatch(agent_stream *s);

static void
stream_unlink(agent_stream *s, agent_stream_call *sc)
{
    for (agent_stream_call **pp = &s->head; *pp; pp = &(*pp)->next)
        if (*pp == sc) {
            *pp = sc->next;
            if (s->tail == sc) {
                s->tail = NULL;
                for (agent_stream_call *t = s->head; t; t = t->next)
                    s->tail = t;
            }
            return;
        }
}

static void
stream_call_free(agent_stream_call *sc)
{
    if (sc->data && sc->stream)
        sc->stream->queued -= sc->data_len - sc->done;
    free(sc->data);
    free(sc);
}

static void
on_stream_call_cancel(cc_ttrpc_call *call, cc_ttrpc_code reason, void *userdata)
{
    agent_stream_call *sc = userdata;
    stream_unlink(sc->stream, sc);
    cc_ttrpc_call_fail(call, reason, "cancelled");
    stream_call_free(sc);
}

static void
stream_fail_all(agent_stream *s, cc_ttrpc_code code, const char *msg)
{
    while (s->head) {
        agent_stream_call *sc = s->head;
        s->head = sc->next;
        cc_ttrpc_call_set_cancel(sc->call, NULL, NULL);
        cc_ttrpc_call_fail(sc->call, code, "%s", msg);
        stream_call_free(sc);
    }
    s->tail = NULL;
}

static void
stream_update_events(agent_stream *s)
{
    if (!s->source)
        return;
    bool want = s->head != NULL || (!s->input && s->proc && s->proc->stdio_head != NULL);
    (void)cc_loop_source_set_enabled(s->source, want, NULL);
}

static void stdio_dispatch(agent_process *p);

static int
on_stream_io(cc_loop_source *src, int fd, uint32_t revents, void *userdata)
{
    agent_stream *s = userdata;
    (void)src;
    (void)fd;
    (void)revents;
    if (s->head)
        stream_dispatch(s);
    else
        stdio_dispatch(s->proc);
    return 0;
}

void
agent_stream_close(agent_stream *s)
{
    s->source = cc_loop_source_free(s->source);
    s->fd = cc_close(s->fd);
    stream_fail_all(s, CC_TTRPC_INTERNAL, s->input ? "stdin closed" : "EOF");
}

/* Serves queued calls as far as the pipe allows. */
static void
stream_dispatch(agent_stream *s)
{
    while (s->head) {
        agent_stream_call *sc = s->head;

        if (s->input) {
            ssize_t n = write(s->fd, sc->data + sc->done, sc->data_len - sc->done);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && errno == EAGAIN)
                break;
            if (n < 0) {
                char msg[128];
                snprintf(msg, sizeof(msg), "cannot write to the process's stdin: %s",
                         strerror(errno));
                s->source = cc_loop_source_free(s->source);
                s->fd = cc_close(s->fd);
                stream_fail_all(s, CC_TTRPC_INTERNAL, msg);
                return;
            }
            sc->done += (size_t)n;
            s->queued -= (size_t)n;
            if (sc->done < sc->data_len)
                continue;
            Grpc__WriteStreamResponse resp = GRPC__WRITE_STREAM_RESPONSE__INIT;
            resp.len = (uint32_t)sc->data_len;
            s->head = sc->next;
            if (!s->head)
                s->tail = NULL;
            cc_ttrpc_call_set_cancel(sc->call, NULL, NULL);
            cc_ttrpc_call_reply(sc->call, &resp.base);
            stream_call_free(sc);
            continue;
        }

        _cleanup_free_ uint8_t *buf = cc_xmalloc(sc->len);
        ssize_t n = read(s->fd, buf, sc->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        if (n <= 0) {
            s->eof = true;
            s->source = cc_loop_source_free(s->source);
            s->fd = cc_close(s->fd);
            stream_fail_all(s, CC_TTRPC_INTERNAL, "EOF");
            return;
        }
        Grpc__ReadStreamResponse resp = GRPC__READ_STREAM_RESPONSE__INIT;
        resp.data.data = buf;
        resp.data.len = (size_t)n;
        s->head = sc->next;
        if (!s->head)
            s->tail = NULL;
        cc_ttrpc_call_set_cancel(sc->call, NULL, NULL);
        cc_ttrpc_call_reply(sc->call, &resp.base);
        stream_call_free(sc);
    }
    stream_update_events(s);
}

static void
stream_enqueue(agent_stream *s, agent_stream_call *sc)
{
    sc->stream = s;
    if (s->tail)
        s->tail->next = sc;
    else
        s->head = sc;
    s->tail = sc;
    cc_ttrpc_call_set_cancel(sc->call, on_stream_call_cancel, sc);
    stream_dispatch(s);
}

void
agent_stream_read(agent_stream *s, cc_ttrpc_call *call, size_t len)
{
    if (s->fd < 0) {
        cc_ttrpc_call_fail(call, CC_TTRPC_INTERNAL, "EOF");
        return;
    }
    agent_stream_call *sc = cc_xzalloc(sizeof(*sc));
    sc->call = call;
    sc->len = len == 0 ? AGENT_READ_DEFAULT : len > AGENT_READ_MAX ? AGENT_READ_MAX : len;
    stream_enqueue(s, sc);
}

void
agent_stream_write(agent_stream *s, cc_ttrpc_call *call, const uint8_t *data, size_t len)
{
    if (s->fd < 0) {
        cc_ttrpc_call_fail(call, CC_TTRPC_FAILED_PRECONDITION, "stdin is closed");
        return;
    }
    if (len == 0) {
        Grpc__WriteStreamResponse resp = GRPC__WRITE_STREAM_RESPONSE__INIT;
        cc_ttrpc_call_reply(call, &resp.base);
        return;
    }
    if (len > AGENT_STDIN_QUEUED_MAX - s->queued) {
        cc_ttrpc_call_fail(call, CC_TTRPC_RESOURCE_EXHAUSTED,
                           "stdin: %zu bytes already wait for the process to read", s->queued);
        return;
    }
    agent_stream_call *sc = cc_xzalloc(sizeof(*sc));
    sc->call = call;
    s->queued += len;
    sc->data = cc_xmalloc(len);
    memcpy(sc->data, data, len);
    sc->data_len = len;
    stream_enqueue(s, sc);
}

static int
stream_init(agent *a, agent_stream *s, agent_process *p, int fd, bool input, cc_error **err)
{
    int r;

    s->proc = p;
    s->fd = fd;
    s->input = input;
    if (fd < 0) { /* no such stream (stderr of a terminal): at EOF from the start */
        s->eof = true;
        return 0;
    }
    r = cc_fd_set_nonblock(fd, true);
    if (r < 0)
        return cc_error_set(err, r, "O_NONBLOCK");
    r = cc_loop_add_io(a->loop, fd, input ? EPOLLOUT : EPOLLIN, on_stream_io, s, &s->source, err);
    if (r < 0)
        return r;
    return cc_loop_source_set_enabled(s->source, false, err);
}

/* --- ReadStdio: both output streams of a process, batched (cloak.agent.v1) ----------------- */

typedef struct agent_stdio_call {
    struct agent_stdio_call *next;
    agent_process *proc;
    cc_ttrpc_call *call;
    size_t max;
} agent_stdio_call;

static void
stdio_unlink(agent_process *p, agent_stdio_call *sc)
{
    for (agent_stdio_call **pp = &p->stdio_head; *pp; pp = &(*pp)->next)
        if (*pp == sc) {
            *pp = sc->next;
            return;
        }
}

static void
on_stdio_cancel(cc_ttrpc_call *call, cc_ttrpc_code reason, void *userdata)
{
    agent_stdio_call *sc = userdata;
    stdio_unlink(sc->proc, sc);
    cc_ttrpc_call_fail(call, reason, "cancelled");
    free(sc);
}

/* Reads what s has now, up to max bytes, into buf; returns the count; sets s->eof at EOF. */
static size_t
stream_drain(agent_stream *s, uint8_t *buf, size_t max)
{
    size_t got = 0;

    while (s->fd >= 0 && got < max) {
        ssize_t n = read(s->fd, buf + got, max - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        if (n <= 0) { /* EOF, or EIO from a terminal whose other side is gone */
            s->eof = true;
            s->source = cc_loop_source_free(s->source);
            s->fd = cc_close(s->fd);
            break;
        }
        got += (size_t)n;
    }
    return got;
}

static void
stdio_dispatch(agent_process *p)
{
    while (p->stdio_head) {
        agent_stdio_call *sc = p->stdio_head;
        bool out_eof = p->out.eof, err_eof = p->err.eof;
        /* one buffer for all calls (the reply is serialised before the next read), kept:
         * a fresh multi-MiB allocation per call costs page faults, which TCG makes slow */
        static uint8_t *buf;
        if (!buf)
            buf = cc_xmalloc(3u << 20);
        size_t n_out = stream_drain(&p->out, buf, sc->max);
        size_t n_err = stream_drain(&p->err, buf + n_out, sc->max - n_out);

        if (n_out == 0 && n_err == 0 && out_eof == p->out.eof && err_eof == p->err.eof &&
            !(p->out.eof && p->err.eof))
            break; /* nothing new: wait */
        Cloak__Agent__V1__ReadStdioResponse resp = CLOAK__AGENT__V1__READ_STDIO_RESPONSE__INIT;
        resp.stdout.data = buf;
        resp.stdout.len = n_out;
        resp.stderr.data = buf + n_out;
        resp.stderr.len = n_err;
        resp.stdout_eof = p->out.eof;
        resp.stderr_eof = p->err.eof;
        p->stdio_head = sc->next;
        cc_ttrpc_call_set_cancel(sc->call, NULL, NULL);
        cc_ttrpc_call_reply(sc->call, &resp.base);
        free(sc);
    }
    stream_update_events(&p->out);
    stream_update_events(&p->err);
}

void
agent_process_read_stdio(agent_process *p, cc_ttrpc_call *call, size_t max)
{
    agent_stdio_call *sc = cc_xzalloc(sizeof(*sc)), **pp;

    sc->proc = p;
    sc->call = call;
    sc->max = max == 0 ? (1u << 20) : max > (3u << 20) ? (3u << 20) : max;
    for (pp = &p->stdio_head; *pp; pp = &(*pp)->next)
        ;
    *pp = sc;
    cc_ttrpc_call_set_cancel(call, on_stdio_cancel, sc);
    stdio_dispatch(p);
}

static void
stdio_fail_all(agent_process *p, const char *msg)
{
    while (p->stdio_head) {
        agent_stdio_call *sc = p->stdio_head;
        p->stdio_head = sc->next;
        cc_ttrpc_call_set_cancel(sc->call, NULL, NULL);
        cc_ttrpc_call_fail(sc->call, CC_TTRPC_NOT_FOUND, "%s", msg);
        free(sc);
    }
}

int
agent_process_set_streams(agent *a, agent_process *p, int in_fd, int out_fd, int err_fd,
                          cc_error **err)
{
    int r;

    /* bigger pipes: fewer wake-ups for a fast writer (best effort) */
    if (out_fd >= 0)
        (void)fcntl(out_fd, F_SETPIPE_SZ, 1 << 20);
    if (err_fd >= 0)
        (void)fcntl(err_fd, F_SETPIPE_SZ, 1 << 20);
    if ((r = stream_init(a, &p->in, p, in_fd, true, err)) < 0 ||
        (r = stream_init(a, &p->out, p, out_fd, false, err)) < 0 ||
        (r = stream_init(a, &p->err, p, err_fd, false, err)) < 0)
        return r;
    return 0;
}

/* --- processes -------------------------------------------------------------------------- */

static void
on_waiter_cancel(cc_ttrpc_call *call, cc_ttrpc_code reason, void *userdata)
{
    agent_waiter *w = userdata;
    for (agent_waiter **pp = &w->proc->waiters; *pp; pp = &(*pp)->next)
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    cc_ttrpc_call_fail(call, reason, "cancelled");
    free(w);
}

static void
process_complete_waiters(agent_process *p, bool removed)
{
    while (p->waiters) {
        agent_waiter *w = p->waiters;
        p->waiters = w->next;
        cc_ttrpc_call_set_cancel(w->call, NULL, NULL);
        if (p->exited) {
            Grpc__WaitProcessResponse resp = GRPC__WAIT_PROCESS_RESPONSE__INIT;
            resp.status = p->exit_code;
            cc_ttrpc_call_reply(w->call, &resp.base);
        } else {
            cc_ttrpc_call_fail(w->call, removed ? CC_TTRPC_NOT_FOUND : CC_TTRPC_INTERNAL,
                               "container %s was removed", p->container->id);
        }
        free(w);
    }
}

void
agent_process_wait(agent_process *p, cc_ttrpc_call *call)
{
    agent_waiter *w = cc_xzalloc(sizeof(*w));
    w->proc = p;
    w->call = call;
    w->next = p->waiters;
    p->waiters = w;
    if (p->exited) {
        process_complete_waiters(p, false);
        return;
    }
    cc_ttrpc_call_set_cancel(call, on_waiter_cancel, w);
}

agent_process *
agent_process_new(agent_container *c, const char *exec_id)
{
    agent_process *p = cc_xzalloc(sizeof(*p));
    p->container = c;
    p->exec_id = cc_xstrdup(exec_id);
    p->in.fd = p->out.fd = p->err.fd = -EBADF;
    p->tty = -1;
    return p;
}

void
agent_process_free(agent_process *p)
{
    if (!p)
        return;
    agent_stream_close(&p->in);
    agent_stream_close(&p->out);
    agent_stream_close(&p->err);
    stdio_fail_all(p, "the process was removed");
    process_complete_waiters(p, true);
    free(p->exec_id);
    free(p);
}

static void container_removal_progress(agent_container *c);
static void container_remove_now(agent_container *c);

void
agent_process_set_exited(agent_process *p, int status)
{
    char buf[96];
    agent_container *c = p->container;

    p->exited = true;
    p->exit_code = agent_wait_status_to_exit_code(status);
    cc_log(CC_LOG_INFO, "container %s: process %d %s", c->id, (int)p->pid,
           agent_wait_status_to_string(status, buf, sizeof(buf)));
    if (p == c->init &&
        (c->state == AGENT_CONTAINER_RUNNING || c->state == AGENT_CONTAINER_CREATED))
        c->state = AGENT_CONTAINER_STOPPED;
    process_complete_waiters(p, false);
    if (c->state == AGENT_CONTAINER_REMOVING)
        container_removal_progress(c);
}

bool
agent_process_exited(agent *a, pid_t pid, int status)
{
    for (agent_container *c = a->containers; c; c = c->next) {
        if (c->init && c->init->pid == pid && !c->init->exited) {
            agent_process_set_exited(c->init, status);
            return true;
        }
        for (agent_process *p = c->execs; p; p = p->next)
            if (p->pid == pid && !p->exited) {
                agent_process_set_exited(p, status);
                return true;
            }
    }
    return false;
}

/* --- containers ------------------------------------------------------------------------- */

void
agent_container_free(agent_container *c)
{
    if (!c)
        return;
    agent_oom_unwatch(c);
    while (c->execs) {
        agent_process *p = c->execs;
        c->execs = p->next;
        agent_process_free(p);
    }
    agent_process_free(c->init);
    cc_loop_source_free(c->remove_timer);
    for (size_t i = 0; i < c->n_mounts; i++)
        free(c->mounts[i]);
    free(c->mounts);
    free(c->bundle);
    free(c->id);
    free(c);
}

static void
container_unlink(agent_container *c)
{
    for (agent_container **pp = &c->agent->containers; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            return;
        }
}

/* Undoes what a container put on the system: its mounts and its bundle. */
static void
container_cleanup_system(agent_container *c)
{
    agent *a = c->agent;

    agent_storages_unmount(a, TAKE_PTR(c->mounts), c->n_mounts);
    c->n_mounts = 0;
    agent_image_cleanup_container(a, c->id);
    /* the private bind mounts in the bundle */
    _cleanup_free_ char *bpath = cc_xasprintf("%s/binds", c->bundle);
    _cleanup_(closedirp) DIR *d = opendir(bpath);
    for (struct dirent *de; d && (de = readdir(d));) {
        if (de->d_name[0] == '.')
            continue;
        _cleanup_free_ char *m = cc_xasprintf("%s/%s", bpath, de->d_name);
        while (umount2(m, MNT_DETACH | UMOUNT_NOFOLLOW) == 0)
            ;
    }

    /* the bundle, and crun's state should a failed create have left any */
    for (int i = 0; i < 2; i++) {
        _cleanup_close_ int dir = openat(a->state_fd, i == 0 ? "bundles" : "crun",
                                         O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        _cleanup_error_ cc_error *e = NULL;
        if (dir >= 0 && cc_rm_rf_at(dir, c->id, &e) < 0)
            cc_log_error(CC_LOG_WARNING, e, "cannot remove %s/%s/%s", a->opts.state_dir,
                         i == 0 ? "bundles" : "crun", c->id);
    }
}

char *
agent_crun_log_message(agent_container *c, const char *fallback)
{
    _cleanup_free_ char *path = cc_xasprintf("%s/crun.log", c->bundle);
    _cleanup_free_ char *text = NULL;
    size_t len = 0;

    if (cc_read_file(path, 1u << 20, &text, &len, NULL) < 0 || len == 0)
        return cc_xstrdup(fallback && *fallback ? fallback : "no message");
    /* the last non-empty line */
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        text[--len] = '\0';
    const char *line = strrchr(text, '\n');
    return cc_xstrdup(line ? line + 1 : text);
}

char **
agent_crun_argv(agent_container *c, const char *cmd, const char *a1, const char *a2, const char *a3,
          const char *a4)
{
    agent *a = c->agent;
    char **v = cc_xzalloc(12 * sizeof(char *));
    size_t n = 0;

    /* one log per command: the message of a failure is its last line */
    _cleanup_free_ char *log = cc_xasprintf("%s/crun.log", c->bundle);
    if (truncate(log, 0) < 0 && errno != ENOENT)
        cc_log_errno(CC_LOG_DEBUG, -errno, "cannot truncate %s", log);
    v[n++] = cc_xstrdup(a->opts.crun);
    v[n++] = cc_xasprintf("--root=%s/crun", a->opts.state_dir);
    v[n++] = cc_xasprintf("--log=file:%s/crun.log", c->bundle);
    v[n++] = cc_xstrdup(cmd);
    for (const char *x[] = {a1, a2, a3, a4}, **p = x; p < x + 4; p++)
        if (*p)
            v[n++] = cc_xstrdup(*p);
    v[n++] = cc_xstrdup(c->id);
    return v;
}


typedef struct create_op {
    agent_container *c;
    cc_ttrpc_call *call;
    int console;            /* listening console socket, -1 without a terminal */
    char *console_path;
} create_op;

static void
create_op_free(create_op *op)
{
    cc_close(op->console);
    if (op->console_path)
        (void)unlink(op->console_path);
    free(op->console_path);
    free(op);
}

static void
on_crun_create(agent *a, int status, const char *output, void *userdata)
{
    create_op *op = userdata;
    agent_container *c = op->c;
    _cleanup_free_ char *pidfile = cc_xasprintf("%s/pid", c->bundle);
    _cleanup_free_ char *text = NULL;
    char buf[96];
    int st;

    (void)output;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        _cleanup_free_ char *msg = agent_crun_log_message(c, NULL);
        cc_log(CC_LOG_ERROR, "container %s: crun create %s: %s", c->id,
               agent_wait_status_to_string(status, buf, sizeof(buf)), msg);
        cc_ttrpc_call_fail(op->call, CC_TTRPC_INTERNAL, "container %s: crun create failed: %s",
                           c->id, msg);
        goto fail;
    }
    if (cc_read_file(pidfile, 64, &text, NULL, NULL) < 0 || atoi(text) <= 0) {
        cc_ttrpc_call_fail(op->call, CC_TTRPC_INTERNAL, "container %s: crun wrote no pid file",
                           c->id);
        goto fail;
    }
    c->init->pid = atoi(text);
    if (op->console >= 0) {
        _cleanup_error_ cc_error *e = NULL;
        int master = -1;
        if (agent_console_receive(op->console, &master, &e) < 0 ||
            agent_process_attach_tty(a, c->init, master, &e) < 0) {
            cc_ttrpc_call_fail(op->call, CC_TTRPC_INTERNAL, "container %s: terminal: %s", c->id,
                               cc_error_message(e));
            (void)kill(c->init->pid, SIGKILL);
            goto fail;
        }
    }
    c->state = AGENT_CONTAINER_CREATED;
    cc_log(CC_LOG_INFO, "container %s created (pid %d)", c->id, (int)c->init->pid);
    agent_oom_watch(c);
    cc_ttrpc_call_reply(op->call, NULL);
    create_op_free(op);
    if (agent_take_unclaimed(a, c->init->pid, &st))
        agent_process_set_exited(c->init, st);
    agent_container_remove_if_requested(c);
    return;

fail:
    container_unlink(c);
    container_cleanup_system(c);
    if (c->remove_requested)
        c->remove_done(c, 0, c->remove_userdata);
    agent_container_free(c);
    create_op_free(op);
}

/*
 * Bind mounts: the host names a source below the guest base, which it can change with
 * CopyFile (a file can be replaced by a symlink at any time). So the source is opened now,
 * without following any symlink, and that very inode is bind-mounted into the agent-private
 * bundle (<bundle>/binds/<i>), which is what crun gets as the source.
 */
static int
private_binds(agent *a, agent_container *c, json_t *mounts, cc_error **err)
{
    _cleanup_close_ int binds = -EBADF;
    size_t i;
    json_t *m;

    json_array_foreach(mounts, i, m) {
        const char *type = json_string_value(json_object_get(m, "type"));
        const char *src = json_string_value(json_object_get(m, "source"));
        json_t *opts = json_object_get(m, "options"), *o;
        bool bind = cc_streq(type, "bind"), rec = false;
        size_t k;

        json_array_foreach(opts, k, o) {
            bind = bind || cc_streq(json_string_value(o), "bind") || cc_streq(json_string_value(o), "rbind");
            rec = rec || cc_streq(json_string_value(o), "rbind");
        }
        if (!bind)
            continue;

        _cleanup_free_ char *parent = NULL, *target = NULL;
        _cleanup_close_ int dir_fd = -EBADF, fd = -EBADF;
        const char *rel, *name;
        struct stat st;
        char fdpath[64];
        int r;

        r = agent_validate_guest_path(a, src, "source", &rel, err);
        if (r < 0)
            return cc_error_prefix(err, r, "OCI.Mounts[%zu]", i);
        name = strrchr(rel, '/');
        if (name) {
            parent = cc_xstrndup(rel, (size_t)(name - rel));
            name++;
            r = agent_mkdir_nofollow(a->base_fd, parent, 0755, false, &dir_fd, err);
            if (r < 0)
                return cc_error_prefix(err, r, "OCI.Mounts[%zu].source %s", i, src);
        } else {
            name = rel;
            dir_fd = openat(a->base_fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
        }
        fd = openat(dir_fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &st) < 0)
            return cc_error_set(err, -errno, "OCI.Mounts[%zu].source %s", i, src);
        if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
            return cc_error_set(err, -EINVAL,
                                "OCI.Mounts[%zu].source %s: not a directory or regular file "
                                "(symbolic links are not followed)",
                                i, src);

        if (binds < 0) {
            _cleanup_free_ char *path = cc_xasprintf("%s/binds", c->bundle);
            if (mkdir(path, 0700) < 0 && errno != EEXIST)
                return cc_error_set(err, -errno, "cannot create %s", path);
            binds = open(path, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (binds < 0)
                return cc_error_set(err, -errno, "cannot open %s", path);
        }
        char num[32];
        snprintf(num, sizeof(num), "%zu", i);
        if (S_ISDIR(st.st_mode) ? mkdirat(binds, num, 0700) < 0
                                : mknodat(binds, num, S_IFREG | 0600, 0) < 0)
            return cc_error_set(err, -errno, "cannot create %s/binds/%s", c->bundle, num);
        target = cc_xasprintf("%s/binds/%s", c->bundle, num);
        snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", fd);
        if (mount(fdpath, target, NULL, MS_BIND | (rec ? MS_REC : 0), NULL) < 0)
            return cc_error_set(err, -errno, "OCI.Mounts[%zu]: cannot bind %s", i, src);
        json_object_set_new(m, "source", json_string(target));
    }
    return 0;
}

/* Reads process.args of the pause bundle's config.json. */
static int
pause_args(agent *a, json_t **ret, cc_error **err)
{
    _cleanup_free_ char *path = cc_xasprintf("%s/config.json", a->opts.pause_bundle);
    _cleanup_json_ json_t *cfg = NULL;
    json_t *args = NULL;
    int r;

    r = cc_json_load_file(path, 1u << 20, &cfg, err);
    if (r < 0)
        return r;
    r = cc_json_get_array(cfg, "process.args", &args, err);
    if (r < 0)
        return cc_error_prefix(err, r, "%s", path);
    *ret = json_incref(args);
    return 0;
}

/* The spec crun gets: the host's, validated, with what the agent decides put in. */
static int
build_config(agent *a, agent_container *c, const Grpc__CreateContainerRequest *req, json_t **ret,
             cc_error **err)
{
    _cleanup_json_ json_t *j = NULL;
    json_t *linux_, *ns, *process, *root;
    int r;

    r = cc_oci_spec_to_json(req->oci, &j, err);
    if (r < 0)
        return cc_error_prefix(err, r, "OCI");
    process = json_object_get(j, "process");
    root = json_object_get(j, "root");
    linux_ = json_object_get(j, "linux");
    if (!json_is_object(process) || !json_is_object(root) || !json_is_object(linux_))
        return cc_error_set(err, -EINVAL, "OCI: process, root or linux missing");

    if (c->sandbox) {
        json_t *args = NULL;
        r = pause_args(a, &args, err);
        if (r < 0)
            return r;
        json_object_set_new(process, "args", args);
        json_object_set_new(process, "cwd", json_string("/"));
        json_object_set_new(process, "terminal", json_false());
        json_object_set_new(root, "readonly", json_true());
    }

    json_t *mounts = json_object_get(j, "mounts");
    if (json_is_array(mounts)) {
        r = private_binds(a, c, mounts, err);
        if (r < 0)
            return r;
    }

    /* cgroups: the agent's tree, whatever the host said */
    json_object_set_new(linux_, "cgroupsPath", json_sprintf("/cloak/%s", c->id));

    /* namespaces: the VM is the pod, so containers share its network; the pod's PID namespace
     * (sandbox_pidns) is the pause container's */
    ns = json_object_get(linux_, "namespaces");
    if (json_is_array(ns)) {
        for (size_t i = json_array_size(ns); i-- > 0;) {
            json_t *e = json_array_get(ns, i);
            const char *type = json_string_value(json_object_get(e, "type"));
            if (cc_streq(type, "network")) {
                json_array_remove(ns, i);
            } else if (cc_streq(type, "pid") && req->sandbox_pidns && !c->sandbox) {
                agent_container *sb = NULL;
                for (agent_container *x = a->containers; x; x = x->next)
                    if (x->sandbox && x->init && x->init->pid > 0 && !x->init->exited)
                        sb = x;
                if (!sb)
                    return cc_error_set(err, -ENOENT,
                                        "sandbox_pidns: the sandbox's pause container is not "
                                        "running");
                json_object_set_new(e, "path", json_sprintf("/proc/%d/ns/pid", (int)sb->init->pid));
            }
        }
    }
    *ret = TAKE_PTR(j);
    return 0;
}

static void container_create_pulled(agent *a, cc_ttrpc_call *call,
                                    const Grpc__CreateContainerRequest *req,
                                    const agent_image_layers *layers);

/* A CreateContainer waiting for its image: a copy of the request (the handler's is freed
 * when it returns). */
typedef struct agent_pending {
    struct agent_pending *next;
    char *id;
    cc_ttrpc_call *call;
    Grpc__CreateContainerRequest *req;
} agent_pending;

bool
agent_container_pending(agent *a, const char *id)
{
    for (agent_pending *p = a->pending; p; p = p->next)
        if (cc_streq(p->id, id))
            return true;
    return false;
}

static void
on_image_pulled(agent *a, int r, const cc_error *e, agent_image_layers *layers, void *userdata)
{
    agent_pending *p = userdata;

    for (agent_pending **pp = &a->pending; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    if (r < 0)
        cc_ttrpc_call_fail_error(p->call, e);
    else if (a->destroying)
        cc_ttrpc_call_fail(p->call, CC_TTRPC_FAILED_PRECONDITION, "the sandbox is being destroyed");
    else
        container_create_pulled(a, p->call, p->req, layers);
    agent_image_layers_free(layers);
    protobuf_c_message_free_unpacked(&p->req->base, NULL);
    free(p->id);
    free(p);
}

void
agent_container_create(agent *a, cc_ttrpc_call *call, const Grpc__CreateContainerRequest *req)
{
    _cleanup_error_ cc_error *e = NULL;
    const Grpc__Storage *image = agent_storages_find_image(req->storages, req->n_storages);

    if (!image) {
        container_create_pulled(a, call, req, NULL);
        return;
    }

    size_t n_pending = 0;
    for (agent_pending *q = a->pending; q; q = q->next)
        n_pending++;
    if (n_pending >= AGENT_PULLS_MAX) {
        cc_ttrpc_call_fail(call, CC_TTRPC_RESOURCE_EXHAUSTED,
                           "container %s: %zu image pulls are in progress already",
                           req->container_id, n_pending);
        return;
    }

    /* pull first (in threads), then create: keep a copy of the request until then */
    size_t len = protobuf_c_message_get_packed_size(&req->base);
    _cleanup_free_ uint8_t *buf = cc_xmalloc(len ? len : 1);
    protobuf_c_message_pack(&req->base, buf);
    agent_pending *p = cc_xzalloc(sizeof(*p));
    p->req = grpc__create_container_request__unpack(NULL, len, buf);
    if (!p->req) {
        free(p);
        cc_ttrpc_call_fail(call, CC_TTRPC_INTERNAL, "cannot copy the request");
        return;
    }
    p->id = cc_xstrdup(req->container_id);
    p->call = call;
    if (agent_image_pull(a, image, on_image_pulled, p, &e) < 0) {
        protobuf_c_message_free_unpacked(&p->req->base, NULL);
        free(p->id);
        free(p);
        cc_log_error(CC_LOG_WARNING, e, "container %s: pull", req->container_id);
        cc_ttrpc_call_fail_error(call, e);
        return;
    }
    p->next = a->pending;
    a->pending = p;
}

static void
container_create_pulled(agent *a, cc_ttrpc_call *call, const Grpc__CreateContainerRequest *req,
                        const agent_image_layers *layers)
{
    _cleanup_error_ cc_error *e = NULL;
    _cleanup_json_ json_t *config = NULL;
    _cleanup_free_ char *json = NULL;
    _cleanup_close_ int bundle_fd = -EBADF, root_fd = -EBADF;
    int fds[3][2] = {{-1, -1}, {-1, -1}, {-1, -1}};
    char **argv = NULL;
    const char *root_rel;
    int r;

    agent_container *c = cc_xzalloc(sizeof(*c));
    c->agent = a;
    c->id = cc_xstrdup(req->container_id);
    c->state = AGENT_CONTAINER_CREATING;
    c->bundle = cc_xasprintf("%s/bundles/%s", a->opts.state_dir, c->id);
    c->init = agent_process_new(c, c->id);

    r = agent_storages_mount(a, req->storages, req->n_storages, layers, c->id, &c->mounts,
                             &c->n_mounts, &c->sandbox, &e);
    if (r < 0)
        goto fail;

    /* the rootfs must be a directory the host put below the base, reached without symlinks */
    (void)agent_validate_guest_path(a, req->oci->root->path, "OCI.Root.Path", &root_rel, NULL);
    r = agent_mkdir_nofollow(a->base_fd, root_rel, 0755, false, &root_fd, &e);
    if (r < 0) {
        cc_error_prefix(&e, r, "OCI.Root.Path %s", req->oci->root->path);
        goto fail;
    }

    {
        _cleanup_close_ int bundles = openat(a->state_fd, "bundles", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (bundles < 0) {
            r = cc_error_set(&e, -errno, "cannot open %s/bundles", a->opts.state_dir);
            goto fail;
        }
        (void)cc_rm_rf_at(bundles, c->id, NULL);
        if (mkdirat(bundles, c->id, 0700) < 0) {
            r = cc_error_set(&e, -errno, "cannot create %s", c->bundle);
            goto fail;
        }
        bundle_fd = openat(bundles, c->id, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (bundle_fd < 0) {
            r = cc_error_set(&e, -errno, "cannot open %s", c->bundle);
            goto fail;
        }
    }
    r = build_config(a, c, req, &config, &e);
    if (r < 0)
        goto fail;
    r = cc_json_dump(config, &json, &e);
    if (r < 0)
        goto fail;
    r = cc_write_file_atomic(bundle_fd, "config.json", json, strlen(json), 0600, &e);
    if (r < 0)
        goto fail;

    create_op *op = cc_xzalloc(sizeof(*op));
    op->c = c;
    op->call = call;
    op->console = -1;
    if (req->oci->process->terminal) {
        /* crun makes the terminal and sends us its master; crun's own stdio is /dev/null */
        r = agent_console_listen(a, &op->console_path, &op->console, &e);
        if (r < 0) {
            create_op_free(op);
            goto fail;
        }
    } else {
        for (int i = 0; i < 3; i++)
            if (pipe2(fds[i], O_CLOEXEC) < 0) {
                r = cc_error_set(&e, -errno, "pipe");
                create_op_free(op);
                goto fail;
            }
        /* the agent keeps stdin's write end and the read ends of stdout and stderr */
        r = agent_process_set_streams(a, c->init, TAKE_FD(fds[0][1]), TAKE_FD(fds[1][0]),
                                      TAKE_FD(fds[2][0]), &e);
        if (r < 0) {
            create_op_free(op);
            goto fail;
        }
    }

    {
        _cleanup_free_ char *pidfile = cc_xasprintf("--pid-file=%s/pid", c->bundle);
        _cleanup_free_ char *bundle = cc_xasprintf("--bundle=%s", c->bundle);
        _cleanup_free_ char *console =
            op->console_path ? cc_xasprintf("--console-socket=%s", op->console_path) : NULL;
        argv = agent_crun_argv(c, "create", bundle, pidfile, console, NULL);
    }
    int stdio[3] = {fds[0][0], fds[1][1], fds[2][1]};
    c->next = a->containers;
    a->containers = c;
    r = agent_cmd_start(a, argv, stdio, on_crun_create, op, &e);
    cc_json_strv_free(argv);
    for (int i = 0; i < 3; i++) {
        cc_close(fds[i][0]);
        cc_close(fds[i][1]);
    }
    if (r < 0) {
        create_op_free(op);
        container_unlink(c);
        goto fail_closed;
    }
    cc_log(CC_LOG_INFO, "container %s: crun create%s", c->id, c->sandbox ? " (pause)" : "");
    return;

fail:
    for (int i = 0; i < 3; i++) {
        cc_close(fds[i][0]);
        cc_close(fds[i][1]);
    }
fail_closed:
    cc_log_error(CC_LOG_WARNING, e, "container %s: create failed", c->id);
    cc_ttrpc_call_fail_error(call, e);
    container_cleanup_system(c);
    agent_container_free(c);
}

static void
on_crun_start(agent *a, int status, const char *output, void *userdata)
{
    agent_container *c = userdata;
    cc_ttrpc_call *call = TAKE_PTR(c->pending_call); /* the pending StartContainer */
    char buf[96];

    (void)a;
    (void)output;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        _cleanup_free_ char *msg = agent_crun_log_message(c, output);
        c->state = c->init->exited ? AGENT_CONTAINER_STOPPED : AGENT_CONTAINER_CREATED;
        cc_log(CC_LOG_ERROR, "container %s: crun start %s: %s", c->id,
               agent_wait_status_to_string(status, buf, sizeof(buf)), msg);
        cc_ttrpc_call_fail(call, CC_TTRPC_INTERNAL, "container %s: crun start failed: %s", c->id,
                           msg);
    } else {
        c->state = c->init->exited ? AGENT_CONTAINER_STOPPED : AGENT_CONTAINER_RUNNING;
        cc_log(CC_LOG_INFO, "container %s started", c->id);
        cc_ttrpc_call_reply(call, NULL);
    }
    agent_container_remove_if_requested(c);
}

void
agent_container_start(agent_container *c, cc_ttrpc_call *call)
{
    _cleanup_error_ cc_error *e = NULL;
    int stdio[3] = {-1, -1, -1};
    char **argv;
    int r;

    if (c->state != AGENT_CONTAINER_CREATED) {
        cc_ttrpc_call_fail(call, CC_TTRPC_FAILED_PRECONDITION, "container %s is %s, not created",
                           c->id, agent_container_state_to_string(c->state));
        return;
    }
    argv = agent_crun_argv(c, "start", NULL, NULL, NULL, NULL);
    c->state = AGENT_CONTAINER_STARTING;
    c->pending_call = call;
    r = agent_cmd_start(c->agent, argv, stdio, on_crun_start, c, &e);
    cc_json_strv_free(argv);
    if (r < 0) {
        c->state = AGENT_CONTAINER_CREATED;
        c->pending_call = NULL;
        cc_ttrpc_call_fail_error(call, e);
    }
}

/* --- removal ---------------------------------------------------------------------------- */

static void
container_removal_progress(agent_container *c)
{
    bool init_gone = !c->init || c->init->pid <= 0 || c->init->exited;

    if (!c->delete_done || (!init_gone && c->remove_timer))
        return;
    if (!init_gone)
        cc_log(CC_LOG_WARNING, "container %s: process %d did not exit; removing anyway", c->id,
               (int)c->init->pid);
    container_unlink(c);
    container_cleanup_system(c);
    cc_log(CC_LOG_INFO, "container %s removed", c->id);
    void (*done)(agent_container *, int, void *) = c->remove_done;
    void *ud = c->remove_userdata;
    done(c, 0, ud);
    if (c->delete_running) {
        /* the removal timed out while crun delete runs: its callback frees us */
        c->removed = true;
        return;
    }
    agent_container_free(c);
}

static void
on_crun_delete(agent *a, int status, const char *output, void *userdata)
{
    agent_container *c = userdata;
    char buf[96];

    (void)a;
    (void)output;
    c->delete_running = false;
    if (c->removed) {
        cc_log(CC_LOG_INFO, "container %s: crun delete finished after the removal timed out",
               c->id);
        agent_container_free(c);
        return;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        _cleanup_free_ char *msg = agent_crun_log_message(c, output);
        cc_log(CC_LOG_WARNING, "container %s: crun delete %s: %s", c->id,
               agent_wait_status_to_string(status, buf, sizeof(buf)), msg);
    }
    c->delete_done = true;
    container_removal_progress(c);
}

static int
on_remove_timeout(cc_loop_source *s, uint64_t deadline, void *userdata)
{
    agent_container *c = userdata;
    (void)deadline;
    (void)s;
    c->remove_timer = cc_loop_source_free(c->remove_timer);
    c->delete_done = true; /* whatever crun is doing, stop waiting for it */
    container_removal_progress(c);
    return 0;
}

void
agent_container_remove(agent_container *c, uint32_t timeout_sec,
                       void (*done)(agent_container *c, int r, void *userdata), void *userdata)
{
    c->remove_done = done;
    c->remove_userdata = userdata;
    c->remove_timeout = timeout_sec;
    c->remove_requested = true;
    agent_container_remove_if_requested(c);
}

void
agent_container_remove_if_requested(agent_container *c)
{
    if (!c->remove_requested)
        return;
    /* crun create, start or an exec is running: remove once it is done (their callbacks
     * call this again) */
    if (c->state == AGENT_CONTAINER_CREATING || c->state == AGENT_CONTAINER_STARTING)
        return;
    for (agent_process *p = c->execs; p; p = p->next)
        if (p->pid == 0 && !p->exited)
            return;
    container_remove_now(c);
}

static void
container_remove_now(agent_container *c)
{
    _cleanup_error_ cc_error *e = NULL;
    int stdio[3] = {-1, -1, -1};
    uint64_t usec = c->remove_timeout ? (uint64_t)c->remove_timeout * 1000000 : REMOVE_TIMEOUT_USEC;
    char **argv;
    int r;

    c->remove_requested = false;
    c->state = AGENT_CONTAINER_REMOVING;
    if (c->init && c->init->pid > 0 && !c->init->exited)
        (void)kill(c->init->pid, SIGKILL);
    r = cc_loop_add_timer(c->agent->loop, usec, 0, on_remove_timeout, c, &c->remove_timer, &e);
    if (r < 0)
        cc_log_error(CC_LOG_WARNING, e, "container %s: no removal timer", c->id);
    argv = agent_crun_argv(c, "delete", "--force", NULL, NULL, NULL);
    r = agent_cmd_start(c->agent, argv, stdio, on_crun_delete, c, &e);
    cc_json_strv_free(argv);
    c->delete_running = r >= 0;
    if (r < 0) {
        cc_log_error(CC_LOG_WARNING, e, "container %s: cannot run crun delete", c->id);
        c->delete_done = true;
        container_removal_progress(c);
    }
}
