/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A process's stdio between containerd's FIFOs (or file:// logs) and the guest agent: see io.h.
 *
 * Output has one state machine for both streams: RUNNING (reads in flight, bytes appended to
 * per-stream buffers and written as the fds take them), DRAINING (no more reads: the rest of
 * the buffers goes out, bounded by a 5 s deadline), DONE (fds closed; a zero timer then runs
 * done_fn, so it never runs from inside shim_io_start() or an agent callback's caller).
 * Every agent call lives in an io_call slot inside the shim_io, so shim_io_free() can cancel
 * whatever is in flight and no callback ever sees freed memory.
 */
#define _GNU_SOURCE
#include "io.h"

#include "cloak/agent.pb-c.h"
#include "kata/agent.pb-c.h"
#include "log.h"
#include "util.h"

#include <assert.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#define AGENT_SERVICE "cloak.agent.v1.Agent"
#define KATA_SERVICE "grpc.AgentService"
#define DRAIN_TIMEOUT_USEC (5u * 1000000u)

enum { OUT_STDOUT, OUT_STDERR, _OUT_MAX };

typedef enum out_mode {
    OUT_READ_STDIO, /* cloak.agent.v1.Agent/ReadStdio, SHIM_IO_READS in flight */
    OUT_KATA,       /* grpc.AgentService/ReadStdout + ReadStderr, one each */
} out_mode;

typedef enum out_state {
    OUT_IDLE,     /* not started */
    OUT_RUNNING,  /* reading from the agent */
    OUT_DRAINING, /* no more input: writing out what is buffered */
    OUT_DONE,     /* fds closed */
} out_state;

/* One agent call: pending while its callback may still run (then cancelled by free). */
typedef struct io_call {
    shim_io *io;
    uint32_t id;
    bool pending;
} io_call;

typedef struct io_out {
    shim_io *io;
    const char *name;    /* "stdout", "stderr" */
    int fd;              /* -EBADF: none (output discarded) */
    cc_loop_source *src; /* EPOLLOUT, added at the first short write */
    uint8_t *buf;        /* bytes [start, end) wait for the reader */
    size_t start, end, cap;
    bool eof;     /* the agent sends no more */
    io_call read; /* OUT_KATA: ReadStdout/ReadStderr */
} io_out;

struct shim_io {
    cc_loop *loop;
    char *container_id;
    char *exec_id;
    cc_ttrpc_client *agent; /* borrowed; NULL until started */
    bool agent_gone;        /* closed (UNAVAILABLE, ENOTCONN): never call it again */
    shim_io_done_fn done_fn;
    void *userdata;

    io_out out[_OUT_MAX];
    out_mode mode;
    out_state state;
    bool out_failed; /* the agent failed: output ends without EOF */
    io_call reads[SHIM_IO_READS];
    cc_loop_source *timer; /* drain deadline, then the done notification */
    bool notified;

    bool has_stdin;
    int in_fd;
    cc_loop_source *in_src;
    bool in_closing;    /* shim_io_close_stdin() was called */
    bool in_close_sent; /* CloseStdin went out (or never will) */
    uint8_t *in_buf;    /* SHIM_IO_STDIN_CHUNK; bytes [in_off, in_len) not yet acknowledged */
    size_t in_off, in_len;
    io_call in_write;
    io_call in_close;
};

static void out_update(shim_io *io);
static void in_pump(shim_io *io);

/* --- opening -------------------------------------------------------------------------------- */

/*
 * Opens spec for stream name into *ret_fd (-EBADF for ""). Output FIFOs and stdin are opened
 * O_RDWR|O_NONBLOCK (see io.h), file:// logs O_WRONLY|O_CREAT|O_APPEND.
 */
static int
stream_open(const char *name, const char *spec, bool output, int *ret_fd, cc_error **err)
{
    const char *path = NULL;
    const char *sep;
    int flags = O_RDWR | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
    int fd;

    if (!spec || !*spec) {
        *ret_fd = -EBADF;
        return 0;
    }
    if (spec[0] == '/') {
        path = spec;
    } else if ((path = cc_startswith(spec, "fifo://"))) {
        /* a FIFO, as a bare path */
    } else if ((path = cc_startswith(spec, "file://"))) {
        if (!output)
            return cc_error_msg(err, -EOPNOTSUPP, "%s '%s': log URI scheme 'file' is not supported",
                                name, spec);
        flags = O_WRONLY | O_CREAT | O_APPEND | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
    } else if ((sep = strstr(spec, "://")) && sep > spec) {
        return cc_error_msg(err, -EOPNOTSUPP, "%s '%s': log URI scheme '%.*s' is not supported",
                            name, spec, (int)(sep - spec), spec);
    } else {
        return cc_error_msg(err, -EINVAL, "%s '%s': not an absolute path or a URI", name, spec);
    }
    if (path[0] != '/')
        return cc_error_msg(err, -EINVAL, "%s '%s': the path must be absolute", name, spec);

    fd = open(path, flags, 0640);
    if (fd < 0)
        return cc_error_set(err, cc_negerrno(), "%s '%s'", name, spec);
    *ret_fd = fd;
    return 0;
}

int
shim_io_new(cc_loop *loop, const shim_io_params *p, shim_io **ret, cc_error **err)
{
    _cleanup_(shim_io_freep) shim_io *io = NULL;
    int r;

    assert(loop && p && p->container_id && ret);

    io = cc_xzalloc(sizeof(*io));
    io->loop = loop;
    io->container_id = cc_xstrdup(p->container_id);
    io->exec_id = cc_xstrdup(p->exec_id ? p->exec_id : p->container_id);
    io->in_fd = -EBADF;
    io->in_write.io = io->in_close.io = io;
    for (size_t i = 0; i < SHIM_IO_READS; i++)
        io->reads[i].io = io;
    for (size_t i = 0; i < _OUT_MAX; i++) {
        io->out[i].io = io;
        io->out[i].read.io = io;
        io->out[i].fd = -EBADF;
        io->out[i].name = i == OUT_STDOUT ? "stdout" : "stderr";
    }

    r = stream_open("stdin", p->stdin_path, false, &io->in_fd, err);
    if (r < 0)
        return r;
    r = stream_open("stdout", p->stdout_path, true, &io->out[OUT_STDOUT].fd, err);
    if (r < 0)
        return r;
    /* A terminal merges the streams in the guest; containerd still sends a stderr path. */
    if (p->terminal)
        io->out[OUT_STDERR].eof = true;
    else {
        r = stream_open("stderr", p->stderr_path, true, &io->out[OUT_STDERR].fd, err);
        if (r < 0)
            return r;
    }

    if (io->in_fd >= 0) {
        io->has_stdin = true;
        io->in_buf = cc_xmalloc(SHIM_IO_STDIN_CHUNK);
    }
    *ret = TAKE_PTR(io);
    return 0;
}

/* --- agent calls ---------------------------------------------------------------------------- */

static int
call_start(shim_io *io, io_call *c, const char *service, const char *method,
           const ProtobufCMessage *msg, cc_ttrpc_reply_fn fn)
{
    _cleanup_error_ cc_error *e = NULL;
    cc_ttrpc_request req = {.service = service, .method = method, .msg = msg};
    int r;

    assert(!c->pending);
    if (io->agent_gone)
        return -ENOTCONN;
    r = cc_ttrpc_client_call_request(io->agent, &req, fn, c, &c->id, &e);
    if (r < 0) {
        if (r == -ENOTCONN)
            io->agent_gone = true;
        cc_log_error(CC_LOG_DEBUG, e, "%s/%s for container %s exec %s", service, method,
                     io->container_id, io->exec_id);
        return r;
    }
    c->pending = true;
    return 0;
}

static void
call_cancel(shim_io *io, io_call *c)
{
    if (!c->pending)
        return;
    (void)cc_ttrpc_client_cancel_call(io->agent, c->id);
    c->pending = false;
}

/* A failed answer: remembers a closed connection, logs anything unexpected. */
static void
call_failed(shim_io *io, const char *method, cc_ttrpc_code code, const char *message)
{
    bool closed = code == CC_TTRPC_UNAVAILABLE;

    if (closed)
        io->agent_gone = true;
    cc_log_fields(closed ? CC_LOG_DEBUG : CC_LOG_WARNING, 0,
                  CC_FIELDS("container", io->container_id, "exec", io->exec_id),
                  "agent %s failed: %s: %s", method, cc_ttrpc_code_to_string(code), message);
}

/* --- output --------------------------------------------------------------------------------- */

static size_t
out_pending(const io_out *o)
{
    return o->end - o->start;
}

static size_t
out_buffered(const shim_io *io)
{
    return out_pending(&io->out[OUT_STDOUT]) + out_pending(&io->out[OUT_STDERR]);
}

static void
out_close(io_out *o)
{
    o->src = cc_loop_source_free(o->src);
    o->fd = cc_close(o->fd);
    free(o->buf);
    o->buf = NULL;
    o->start = o->end = o->cap = 0;
}

static int on_out_writable(cc_loop_source *s, int fd, uint32_t revents, void *userdata);

/*
 * Writes what the fd takes now and returns the count. A hard error (not EAGAIN) drops the
 * stream: its fd is closed and everything is discarded from then on (returns len).
 */
static size_t
out_write_now(io_out *o, const uint8_t *p, size_t len)
{
    size_t done = 0;

    while (done < len) {
        ssize_t n = write(o->fd, p + done, len - done > SSIZE_MAX ? SSIZE_MAX : len - done);
        if (n > 0) {
            done += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        cc_log_fields(CC_LOG_WARNING, n < 0 ? cc_negerrno() : -EIO,
                      CC_FIELDS("container", o->io->container_id, "exec", o->io->exec_id),
                      "writing %s failed, discarding the rest of it", o->name);
        out_close(o);
        return len;
    }
    return done;
}

/* Watches for EPOLLOUT while bytes wait, stops watching once they are out. */
static void
out_watch(io_out *o)
{
    bool want = o->fd >= 0 && out_pending(o) > 0;
    int r;

    if (!o->src) {
        if (!want)
            return;
        r = cc_loop_add_io(o->io->loop, o->fd, EPOLLOUT, on_out_writable, o, &o->src, NULL);
        if (r < 0) {
            /* Not pollable (a regular file never gets here: it never says EAGAIN). */
            cc_log_errno(CC_LOG_WARNING, r, "watching %s failed, discarding the rest of it",
                         o->name);
            out_close(o);
        }
        return;
    }
    if (cc_loop_source_get_enabled(o->src) != want)
        (void)cc_loop_source_set_enabled(o->src, want, NULL);
}

/* Writes as much of the buffer as the fd takes. */
static void
out_flush(io_out *o)
{
    if (o->fd >= 0 && out_pending(o) > 0) {
        size_t n = out_write_now(o, o->buf + o->start, out_pending(o));
        if (o->fd < 0)
            return; /* dropped */
        o->start += n;
    }
    if (o->start == o->end) {
        o->start = o->end = 0;
        /* Give back the memory a burst took. */
        if (o->cap > SHIM_IO_READ_MAX) {
            free(o->buf);
            o->buf = NULL;
            o->cap = 0;
        }
    }
    out_watch(o);
}

/* Appends what the agent sent: written at once when possible, else buffered. */
static void
out_append(io_out *o, const uint8_t *p, size_t len)
{
    if (o->fd < 0 || len == 0)
        return; /* discarded */
    if (out_pending(o) == 0) {
        size_t n = out_write_now(o, p, len);
        p += n;
        len -= n;
        if (len == 0 || o->fd < 0)
            return;
    }
    if (o->cap - o->end < len) {
        if (o->start > 0) {
            memmove(o->buf, o->buf + o->start, out_pending(o));
            o->end -= o->start;
            o->start = 0;
        }
        if (o->cap - o->end < len) {
            size_t cap = o->cap ? o->cap : 64u << 10;
            while (cap - o->end < len)
                cap *= 2;
            o->buf = cc_xrealloc(o->buf, cap);
            o->cap = cap;
        }
    }
    memcpy(o->buf + o->end, p, len);
    o->end += len;
    out_watch(o);
}

static int
on_out_writable(cc_loop_source *s, int fd, uint32_t revents, void *userdata)
{
    io_out *o = userdata;

    out_flush(o);
    out_update(o->io);
    return 0;
}

static void on_read_stdio(cc_ttrpc_code code, const char *message, const uint8_t *payload,
                          size_t len, void *userdata);
static void on_read_stream(cc_ttrpc_code code, const char *message, const uint8_t *payload,
                           size_t len, void *userdata);

/* Issues the reads the bounds allow. A call that cannot be made ends the output. */
static void
out_pump(shim_io *io)
{
    if (io->mode == OUT_READ_STDIO) {
        Cloak__Agent__V1__ReadStdioRequest req = CLOAK__AGENT__V1__READ_STDIO_REQUEST__INIT;

        req.container_id = io->container_id;
        req.exec_id = io->exec_id;
        req.max_bytes = SHIM_IO_READ_MAX;
        for (size_t i = 0; i < SHIM_IO_READS && !io->out_failed; i++) {
            if (io->reads[i].pending)
                continue;
            if (out_buffered(io) > SHIM_IO_BUFFER_HIGH)
                break;
            if (call_start(io, &io->reads[i], AGENT_SERVICE, "ReadStdio", &req.base,
                           on_read_stdio) < 0)
                io->out_failed = true;
        }
        return;
    }

    for (size_t i = 0; i < _OUT_MAX; i++) {
        io_out *o = &io->out[i];
        Grpc__ReadStreamRequest req = GRPC__READ_STREAM_REQUEST__INIT;

        if (o->eof || o->read.pending || out_pending(o) > SHIM_IO_BUFFER_HIGH)
            continue;
        req.container_id = io->container_id;
        req.exec_id = io->exec_id;
        req.len = SHIM_IO_READ_MAX;
        if (call_start(io, &o->read, KATA_SERVICE, i == OUT_STDOUT ? "ReadStdout" : "ReadStderr",
                       &req.base, on_read_stream) < 0)
            o->eof = true;
    }
}

static int
on_timer(cc_loop_source *s, uint64_t deadline_usec, void *userdata)
{
    shim_io *io = userdata;

    if (io->state == OUT_DRAINING) {
        cc_log_fields(
            CC_LOG_WARNING, 0, CC_FIELDS("container", io->container_id, "exec", io->exec_id),
            "nobody read the last %zu bytes of output in 5 s, dropping them", out_buffered(io));
        for (size_t i = 0; i < _OUT_MAX; i++)
            out_close(&io->out[i]);
        out_update(io); /* -> OUT_DONE, timer re-armed at once */
        return 0;
    }
    if (io->state == OUT_DONE && !io->notified) {
        io->notified = true;
        if (io->done_fn)
            io->done_fn(io, io->userdata); /* may free io */
    }
    return 0;
}

/*
 * The output state machine, run after every event: issue reads; once both streams are at
 * EOF or the agent failed, cancel the reads left and drain; once drained, close and notify.
 */
static void
out_update(shim_io *io)
{
    if (io->state == OUT_RUNNING) {
        if (!io->out_failed && !(io->out[OUT_STDOUT].eof && io->out[OUT_STDERR].eof))
            out_pump(io);
        if (io->out_failed || (io->out[OUT_STDOUT].eof && io->out[OUT_STDERR].eof)) {
            for (size_t i = 0; i < SHIM_IO_READS; i++)
                call_cancel(io, &io->reads[i]);
            for (size_t i = 0; i < _OUT_MAX; i++)
                call_cancel(io, &io->out[i].read);
            io->state = OUT_DRAINING;
            (void)cc_loop_add_timer(io->loop, DRAIN_TIMEOUT_USEC, 0, on_timer, io, &io->timer,
                                    NULL);
        }
    }
    if (io->state == OUT_DRAINING) {
        for (size_t i = 0; i < _OUT_MAX; i++)
            if (io->out[i].fd >= 0 && out_pending(&io->out[i]) > 0)
                return;
        for (size_t i = 0; i < _OUT_MAX; i++)
            out_close(&io->out[i]);
        io->state = OUT_DONE;
        (void)cc_loop_source_set_timer(io->timer, 0, 0, NULL);
    }
}

static void
on_read_stdio(cc_ttrpc_code code, const char *message, const uint8_t *payload, size_t len,
              void *userdata)
{
    io_call *c = userdata;
    shim_io *io = c->io;

    c->pending = false;
    if (code == CC_TTRPC_OK) {
        Cloak__Agent__V1__ReadStdioResponse *resp =
            cloak__agent__v1__read_stdio_response__unpack(NULL, len, payload);
        if (!resp) {
            call_failed(io, "ReadStdio", CC_TTRPC_UNKNOWN, "undecodable response");
            io->out_failed = true;
        } else {
            out_append(&io->out[OUT_STDOUT], resp->stdout.data, resp->stdout.len);
            out_append(&io->out[OUT_STDERR], resp->stderr.data, resp->stderr.len);
            if (resp->stdout_eof)
                io->out[OUT_STDOUT].eof = true;
            if (resp->stderr_eof)
                io->out[OUT_STDERR].eof = true;
            cloak__agent__v1__read_stdio_response__free_unpacked(resp, NULL);
        }
    } else if (code == CC_TTRPC_UNIMPLEMENTED && io->mode == OUT_READ_STDIO) {
        /* A Kata agent: its long polls instead (the other ReadStdio calls fail alike). */
        cc_log_fields(CC_LOG_DEBUG, 0,
                      CC_FIELDS("container", io->container_id, "exec", io->exec_id),
                      "agent has no ReadStdio, using ReadStdout/ReadStderr");
        for (size_t i = 0; i < SHIM_IO_READS; i++)
            call_cancel(io, &io->reads[i]);
        io->mode = OUT_KATA;
    } else {
        call_failed(io, "ReadStdio", code, message);
        io->out_failed = true;
    }
    out_update(io);
}

static void
on_read_stream(cc_ttrpc_code code, const char *message, const uint8_t *payload, size_t len,
               void *userdata)
{
    io_call *c = userdata;
    shim_io *io = c->io;
    io_out *o = c == &io->out[OUT_STDOUT].read ? &io->out[OUT_STDOUT] : &io->out[OUT_STDERR];

    c->pending = false;
    if (code == CC_TTRPC_OK) {
        Grpc__ReadStreamResponse *resp = grpc__read_stream_response__unpack(NULL, len, payload);
        if (!resp) {
            call_failed(io, o == &io->out[OUT_STDOUT] ? "ReadStdout" : "ReadStderr",
                        CC_TTRPC_UNKNOWN, "undecodable response");
            o->eof = true;
        } else {
            out_append(o, resp->data.data, resp->data.len);
            grpc__read_stream_response__free_unpacked(resp, NULL);
        }
    } else {
        /* Kata's EOF is INTERNAL "EOF"; any other failure ends the stream too. */
        if (!(code == CC_TTRPC_INTERNAL && cc_streq(message, "EOF")))
            call_failed(io, o == &io->out[OUT_STDOUT] ? "ReadStdout" : "ReadStderr", code, message);
        o->eof = true;
    }
    out_update(io);
}

/* --- input ---------------------------------------------------------------------------------- */

static void
in_stop(shim_io *io)
{
    io->in_src = cc_loop_source_free(io->in_src);
    io->in_fd = cc_close(io->in_fd);
    io->in_off = io->in_len = 0;
}

static int
on_in_readable(cc_loop_source *s, int fd, uint32_t revents, void *userdata)
{
    in_pump(userdata);
    return 0;
}

static void
on_write_stdin(cc_ttrpc_code code, const char *message, const uint8_t *payload, size_t len,
               void *userdata)
{
    io_call *c = userdata;
    shim_io *io = c->io;

    c->pending = false;
    if (code == CC_TTRPC_OK) {
        Grpc__WriteStreamResponse *resp = grpc__write_stream_response__unpack(NULL, len, payload);
        size_t sent = io->in_len - io->in_off;
        /* A short count (never seen: agents write everything) sends the rest again. */
        if (resp && resp->len > 0 && resp->len < sent)
            io->in_off += resp->len;
        else
            io->in_off = io->in_len = 0;
        if (resp)
            grpc__write_stream_response__free_unpacked(resp, NULL);
    } else {
        call_failed(io, "WriteStdin", code, message);
        in_stop(io); /* containerd's writer gets EPIPE rather than blocking forever */
    }
    in_pump(io);
}

static void
on_close_stdin(cc_ttrpc_code code, const char *message, const uint8_t *payload, size_t len,
               void *userdata)
{
    io_call *c = userdata;

    c->pending = false;
    if (code != CC_TTRPC_OK)
        call_failed(c->io, "CloseStdin", code, message);
}

/* Sends the next piece of input (one WriteStdin in flight), then CloseStdin when asked. */
static int
in_send(shim_io *io)
{
    Grpc__WriteStreamRequest req = GRPC__WRITE_STREAM_REQUEST__INIT;

    req.container_id = io->container_id;
    req.exec_id = io->exec_id;
    req.data.data = io->in_buf + io->in_off;
    req.data.len = io->in_len - io->in_off;
    return call_start(io, &io->in_write, KATA_SERVICE, "WriteStdin", &req.base, on_write_stdin);
}

static void
in_pump(shim_io *io)
{
    if (!io->agent || io->in_write.pending || io->in_close_sent)
        return;
    if (io->agent_gone) {
        in_stop(io);
        return;
    }

    if (io->in_fd >= 0) {
        ssize_t n;

        if (io->in_off == io->in_len) {
            io->in_off = io->in_len = 0;
            n = read(io->in_fd, io->in_buf, SHIM_IO_STDIN_CHUNK);
            if (n > 0)
                io->in_len = (size_t)n;
        } else {
            n = (ssize_t)(io->in_len - io->in_off); /* the rest of a short write */
        }
        if (n > 0) {
            if (in_send(io) < 0) {
                in_stop(io);
                return;
            }
            /* The answer reads on (that is the backpressure). */
            if (io->in_src)
                (void)cc_loop_source_set_enabled(io->in_src, false, NULL);
            return;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR) && !io->in_closing) {
            if (!io->in_src) {
                int r = cc_loop_add_io(io->loop, io->in_fd, EPOLLIN, on_in_readable, io,
                                       &io->in_src, NULL);
                if (r < 0) {
                    cc_log_errno(CC_LOG_WARNING, r, "watching stdin failed");
                    in_stop(io);
                }
            } else
                (void)cc_loop_source_set_enabled(io->in_src, true, NULL);
            return;
        }
        if (n < 0 && errno != EAGAIN)
            cc_log_errno(CC_LOG_WARNING, cc_negerrno(), "reading stdin failed");
        /* End of input: closing and drained, EOF, or an error. */
        in_stop(io);
    }

    if (io->in_closing && io->has_stdin) {
        Grpc__CloseStdinRequest req = GRPC__CLOSE_STDIN_REQUEST__INIT;

        req.container_id = io->container_id;
        req.exec_id = io->exec_id;
        io->in_close_sent = true;
        (void)call_start(io, &io->in_close, KATA_SERVICE, "CloseStdin", &req.base, on_close_stdin);
    }
}

/* --- public --------------------------------------------------------------------------------- */

void
shim_io_start(shim_io *io, cc_ttrpc_client *agent, shim_io_done_fn fn, void *userdata)
{
    assert(io && agent && io->state == OUT_IDLE);

    io->agent = agent;
    io->done_fn = fn;
    io->userdata = userdata;
    io->state = OUT_RUNNING;
    out_update(io);
    in_pump(io);
}

void
shim_io_close_stdin(shim_io *io)
{
    if (!io || io->in_closing)
        return;
    io->in_closing = true;
    in_pump(io);
}

void
shim_io_agent_closed(shim_io *io)
{
    if (io)
        io->agent_gone = true;
}

bool
shim_io_is_done(const shim_io *io)
{
    return io && io->state == OUT_DONE;
}

shim_io *
shim_io_free(shim_io *io)
{
    if (!io)
        return NULL;

    for (size_t i = 0; i < SHIM_IO_READS; i++)
        call_cancel(io, &io->reads[i]);
    for (size_t i = 0; i < _OUT_MAX; i++) {
        call_cancel(io, &io->out[i].read);
        out_close(&io->out[i]);
    }
    call_cancel(io, &io->in_write);
    call_cancel(io, &io->in_close);
    in_stop(io);
    free(io->in_buf);
    cc_loop_source_free(io->timer);
    free(io->container_id);
    free(io->exec_id);
    free(io);
    return NULL;
}
