/* SPDX-License-Identifier: Apache-2.0 */
/*
 * shim/io.c against a fake agent in the same loop: a cc_ttrpc_server on a socketpair serving
 * cloak.agent.v1.Agent/ReadStdio and grpc.AgentService/{WriteStdin,CloseStdin,ReadStdout,
 * ReadStderr} from scripted data, and real FIFOs whose other ends the test holds.
 *
 * The fake agent parks every read and answers from a zero timer, so the number of parked
 * ReadStdio calls is the number the shim has in flight.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* cmocka.h needs these first. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "cloak/agent.pb-c.h"
#include "fs.h"
#include "io.h"
#include "kata/agent.pb-c.h"
#include "loop.h"
#include "ttrpc.h"
#include "util.h"

#define SECOND 1000000u
#define MIB (1u << 20)

/* --- the fake agent -------------------------------------------------------------------------- */

typedef enum call_kind { K_READ_STDIO, K_READ_STDOUT, K_READ_STDERR, K_WRITE_STDIN } call_kind;

typedef struct parked {
    struct parked *next;
    cc_ttrpc_call *call;
    call_kind kind;
    uint32_t max;
    size_t wlen; /* K_WRITE_STDIN: bytes to acknowledge */
} parked;

typedef struct bytes {
    uint8_t *data;
    size_t len, cap;
} bytes;

static void
bytes_add(bytes *b, const void *p, size_t n)
{
    if (b->cap - b->len < n) {
        b->cap = (b->len + n) * 2;
        b->data = cc_xrealloc(b->data, b->cap);
    }
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
}

static void
bytes_clear(bytes *b)
{
    free(b->data);
    *b = (bytes){0};
}

static struct agent {
    cc_ttrpc_server *server;
    cc_loop_source *serve_timer;
    parked *head;
    bytes out[2]; /* everything the process wrote */
    size_t served[2];
    bool eof[2];          /* the process closed the stream (after out[]) */
    bool eof_reported[2]; /* ReadStdio told the shim */
    size_t chunk;         /* largest answer (0: what the shim asked for) */
    int n_parked_read_stdio, max_parked_read_stdio, n_read_stdio, n_read_stream;
    bytes in;         /* what WriteStdin brought */
    bool hold_writes; /* park WriteStdin answers until released */
    int n_write_inflight, max_write_inflight, n_write_stdin;
    int n_close_stdin;
    size_t in_len_at_close;
} A;

static void
agent_kick(void)
{
    if (A.serve_timer)
        assert_int_equal(cc_loop_source_set_timer(A.serve_timer, 0, 0, NULL), 0);
}

static size_t
avail(int s)
{
    return A.out[s].len - A.served[s];
}

/* Answers p when there is something to say; returns false to keep it parked. */
static bool
serve_one(parked *p)
{
    if (p->kind == K_READ_STDIO) {
        Cloak__Agent__V1__ReadStdioResponse resp = CLOAK__AGENT__V1__READ_STDIO_RESPONSE__INIT;
        size_t lim = p->max ? p->max : MIB, n0, n1;
        bool neweof[2];

        if (A.chunk && A.chunk < lim)
            lim = A.chunk;
        n0 = avail(0) < lim ? avail(0) : lim;
        n1 = avail(1) < lim - n0 ? avail(1) : lim - n0;
        for (int s = 0; s < 2; s++)
            neweof[s] = A.eof[s] && avail(s) == (s ? n1 : n0);
        if (n0 + n1 == 0 && !(neweof[0] && !A.eof_reported[0]) &&
            !(neweof[1] && !A.eof_reported[1]) && !(A.eof_reported[0] && A.eof_reported[1]))
            return false;
        if (n0)
            resp.stdout = (ProtobufCBinaryData){n0, A.out[0].data + A.served[0]};
        if (n1)
            resp.stderr = (ProtobufCBinaryData){n1, A.out[1].data + A.served[1]};
        resp.stdout_eof = neweof[0];
        resp.stderr_eof = neweof[1];
        A.served[0] += n0;
        A.served[1] += n1;
        A.eof_reported[0] |= neweof[0];
        A.eof_reported[1] |= neweof[1];
        A.n_parked_read_stdio--;
        (void)cc_ttrpc_call_reply(p->call, &resp.base);
        return true;
    }
    if (p->kind == K_READ_STDOUT || p->kind == K_READ_STDERR) {
        int s = p->kind == K_READ_STDERR;
        Grpc__ReadStreamResponse resp = GRPC__READ_STREAM_RESPONSE__INIT;
        size_t lim = p->max ? p->max : 32768, n;

        if (A.chunk && A.chunk < lim)
            lim = A.chunk;
        n = avail(s) < lim ? avail(s) : lim;
        if (n == 0 && !A.eof[s])
            return false;
        if (n == 0) {
            (void)cc_ttrpc_call_fail(p->call, CC_TTRPC_INTERNAL, "EOF");
            return true;
        }
        resp.data.data = A.out[s].data + A.served[s];
        resp.data.len = n;
        A.served[s] += n;
        (void)cc_ttrpc_call_reply(p->call, &resp.base);
        return true;
    }
    if (A.hold_writes)
        return false;
    Grpc__WriteStreamResponse resp = GRPC__WRITE_STREAM_RESPONSE__INIT;
    resp.len = (uint32_t)p->wlen;
    A.n_write_inflight--;
    (void)cc_ttrpc_call_reply(p->call, &resp.base);
    return true;
}

static int
on_serve(cc_loop_source *s, uint64_t deadline, void *userdata)
{
    parked **pp = &A.head;
    while (*pp) {
        parked *p = *pp;
        if (serve_one(p)) {
            *pp = p->next;
            free(p);
        } else
            pp = &p->next;
    }
    return 0;
}

/* The connection closed or the server is going: complete and forget the call. */
static void
on_call_cancel(cc_ttrpc_call *call, cc_ttrpc_code reason, void *userdata)
{
    parked *p = userdata;
    for (parked **pp = &A.head; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    if (p->kind == K_READ_STDIO)
        A.n_parked_read_stdio--;
    if (p->kind == K_WRITE_STDIN)
        A.n_write_inflight--;
    (void)cc_ttrpc_call_fail(call, CC_TTRPC_CANCELLED, "cancelled");
    free(p);
}

static void
park(cc_ttrpc_call *call, call_kind kind, uint32_t max, size_t wlen)
{
    parked *p = cc_xzalloc(sizeof(*p)), **pp = &A.head;
    p->call = call;
    p->kind = kind;
    p->max = max;
    p->wlen = wlen;
    while (*pp)
        pp = &(*pp)->next;
    *pp = p;
    cc_ttrpc_call_set_cancel(call, on_call_cancel, p);
    agent_kick();
}

static void
check_ids(const char *container_id, const char *exec_id)
{
    assert_string_equal(container_id, "ctr");
    assert_string_equal(exec_id, "exec");
}

static void
h_read_stdio(cc_ttrpc_call *call, const uint8_t *req, size_t len, void *userdata)
{
    Cloak__Agent__V1__ReadStdioRequest *r =
        (Cloak__Agent__V1__ReadStdioRequest *)cc_ttrpc_call_unpack(
            call, &cloak__agent__v1__read_stdio_request__descriptor, req, len);
    assert_non_null(r);
    check_ids(r->container_id, r->exec_id);
    assert_int_equal(r->max_bytes, SHIM_IO_READ_MAX);
    A.n_read_stdio++;
    A.n_parked_read_stdio++;
    if (A.n_parked_read_stdio > A.max_parked_read_stdio)
        A.max_parked_read_stdio = A.n_parked_read_stdio;
    park(call, K_READ_STDIO, r->max_bytes, 0);
    protobuf_c_message_free_unpacked(&r->base, NULL);
}

static void
h_read_stream(cc_ttrpc_call *call, const uint8_t *req, size_t len, call_kind kind)
{
    Grpc__ReadStreamRequest *r = (Grpc__ReadStreamRequest *)cc_ttrpc_call_unpack(
        call, &grpc__read_stream_request__descriptor, req, len);
    assert_non_null(r);
    check_ids(r->container_id, r->exec_id);
    A.n_read_stream++;
    park(call, kind, r->len, 0);
    protobuf_c_message_free_unpacked(&r->base, NULL);
}

static void
h_read_stdout(cc_ttrpc_call *call, const uint8_t *req, size_t len, void *userdata)
{
    h_read_stream(call, req, len, K_READ_STDOUT);
}

static void
h_read_stderr(cc_ttrpc_call *call, const uint8_t *req, size_t len, void *userdata)
{
    h_read_stream(call, req, len, K_READ_STDERR);
}

static void
h_write_stdin(cc_ttrpc_call *call, const uint8_t *req, size_t len, void *userdata)
{
    Grpc__WriteStreamRequest *r = (Grpc__WriteStreamRequest *)cc_ttrpc_call_unpack(
        call, &grpc__write_stream_request__descriptor, req, len);
    assert_non_null(r);
    check_ids(r->container_id, r->exec_id);
    assert_true(r->data.len > 0 && r->data.len <= SHIM_IO_STDIN_CHUNK);
    assert_int_equal(A.n_close_stdin, 0);
    bytes_add(&A.in, r->data.data, r->data.len);
    A.n_write_stdin++;
    A.n_write_inflight++;
    if (A.n_write_inflight > A.max_write_inflight)
        A.max_write_inflight = A.n_write_inflight;
    park(call, K_WRITE_STDIN, 0, r->data.len);
    protobuf_c_message_free_unpacked(&r->base, NULL);
}

static void
h_close_stdin(cc_ttrpc_call *call, const uint8_t *req, size_t len, void *userdata)
{
    Grpc__CloseStdinRequest *r = (Grpc__CloseStdinRequest *)cc_ttrpc_call_unpack(
        call, &grpc__close_stdin_request__descriptor, req, len);
    assert_non_null(r);
    check_ids(r->container_id, r->exec_id);
    A.n_close_stdin++;
    A.in_len_at_close = A.in.len;
    assert_int_equal(A.n_write_inflight, 0);
    (void)cc_ttrpc_call_reply(call, NULL);
    protobuf_c_message_free_unpacked(&r->base, NULL);
}

/* The process writes to stream s (0 stdout, 1 stderr). */
static void
agent_write(int s, const void *p, size_t n)
{
    bytes_add(&A.out[s], p, n);
    agent_kick();
}

static void
agent_eof(int s)
{
    A.eof[s] = true;
    agent_kick();
}

/* --- the test's ends of the FIFOs ------------------------------------------------------------ */

typedef struct reader {
    int fd;
    bytes got;
    bool eof;
    size_t per_tick; /* 0: read whatever comes; else this much every millisecond */
    cc_loop_source *src;
} reader;

/* Reads what is there (at most max); true at EOF. */
static bool
reader_read(reader *r, size_t max)
{
    uint8_t buf[65536];
    while (r->fd >= 0 && !r->eof && max > 0) {
        ssize_t n = read(r->fd, buf, max < sizeof(buf) ? max : sizeof(buf));
        if (n < 0) {
            assert_int_equal(errno, EAGAIN);
            break;
        }
        if (n == 0)
            r->eof = true;
        bytes_add(&r->got, buf, (size_t)n);
        max -= (size_t)n;
    }
    return r->eof;
}

static struct fixture {
    cc_loop *loop;
    cc_ttrpc_client *client;
    shim_io *io;
    char dir[64];
    char path[3][128]; /* stdin, stdout, stderr FIFOs */
    reader r[2];       /* stdout, stderr */
    int in_w;          /* stdin FIFO's write end */
    int n_done;
    bool free_in_done;
    size_t bound_seen; /* largest served - read during the slow-reader test */
} F;

static int
on_reader_io(cc_loop_source *s, int fd, uint32_t revents, void *userdata)
{
    reader *r = userdata;
    if (reader_read(r, SIZE_MAX))
        r->src = cc_loop_source_free(r->src);
    return 0;
}

static int
on_reader_tick(cc_loop_source *s, uint64_t deadline, void *userdata)
{
    reader *r = userdata;
    int s_idx = r == &F.r[1];
    size_t outstanding;

    if (reader_read(r, r->per_tick))
        r->src = cc_loop_source_free(r->src);
    outstanding = A.served[s_idx] - r->got.len;
    if (outstanding > F.bound_seen)
        F.bound_seen = outstanding;
    return 0;
}

static void
reader_open(int s, size_t per_tick)
{
    reader *r = &F.r[s];
    r->fd = open(F.path[1 + s], O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    assert_true(r->fd >= 0);
    r->per_tick = per_tick;
    if (per_tick)
        assert_int_equal(cc_loop_add_timer(F.loop, 1000, 1000, on_reader_tick, r, &r->src, NULL),
                         0);
    else
        assert_int_equal(cc_loop_add_io(F.loop, r->fd, EPOLLIN, on_reader_io, r, &r->src, NULL), 0);
}

static void
on_done(shim_io *io, void *userdata)
{
    assert_ptr_equal(io, F.io);
    assert_ptr_equal(userdata, &F);
    assert_true(shim_io_is_done(io));
    F.n_done++;
    /* Every byte is in the FIFOs and the shim closed them: readers reach EOF now. */
    for (int s = 0; s < 2; s++)
        if (F.r[s].fd >= 0)
            assert_true(reader_read(&F.r[s], SIZE_MAX));
    if (F.free_in_done)
        F.io = shim_io_free(F.io);
}

static void
run_for(uint64_t usec)
{
    uint64_t end = cc_loop_now() + usec;
    uint64_t now;
    while ((now = cc_loop_now()) < end)
        assert_true(cc_loop_run_once(F.loop, end - now, NULL) >= 0);
}

static void
run_until_done(uint64_t usec)
{
    uint64_t end = cc_loop_now() + usec;
    while (F.n_done == 0 && cc_loop_now() < end)
        assert_true(cc_loop_run_once(F.loop, 100000, NULL) >= 0);
    assert_int_equal(F.n_done, 1);
}

static const cc_ttrpc_method agent_methods[] = {{"ReadStdio", h_read_stdio}};
static const cc_ttrpc_method kata_methods[] = {
    {"WriteStdin", h_write_stdin},
    {"CloseStdin", h_close_stdin},
    {"ReadStdout", h_read_stdout},
    {"ReadStderr", h_read_stderr},
};

static int
setup_common(bool kata_only)
{
    int sv[2];

    F = (struct fixture){.in_w = -1, .r = {{.fd = -1}, {.fd = -1}}};
    A = (struct agent){0};
    assert_int_equal(cc_loop_new(&F.loop, NULL), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(cc_ttrpc_server_new(F.loop, &A.server, NULL), 0);
    if (!kata_only)
        assert_int_equal(cc_ttrpc_server_register(A.server, "cloak.agent.v1.Agent", agent_methods,
                                                  ELEMENTSOF(agent_methods), NULL, NULL),
                         0);
    assert_int_equal(cc_ttrpc_server_register(A.server, "grpc.AgentService", kata_methods,
                                              ELEMENTSOF(kata_methods), NULL, NULL),
                     0);
    assert_int_equal(cc_ttrpc_server_serve_fd(A.server, sv[0], NULL, NULL, NULL), 0);
    assert_int_equal(cc_ttrpc_client_new(F.loop, sv[1], &F.client, NULL), 0);
    assert_int_equal(cc_loop_add_timer(F.loop, 0, 0, on_serve, NULL, &A.serve_timer, NULL), 0);

    strcpy(F.dir, "/tmp/test-io-XXXXXX");
    assert_non_null(mkdtemp(F.dir));
    static const char *const names[] = {"stdin", "stdout", "stderr"};
    for (int i = 0; i < 3; i++) {
        snprintf(F.path[i], sizeof(F.path[i]), "%s/%s", F.dir, names[i]);
        assert_int_equal(mkfifo(F.path[i], 0600), 0);
    }
    return 0;
}

static int
setup(void **state)
{
    return setup_common(false);
}

static int
setup_kata(void **state)
{
    return setup_common(true);
}

static int
teardown(void **state)
{
    F.io = shim_io_free(F.io);
    for (int s = 0; s < 2; s++) {
        F.r[s].src = cc_loop_source_free(F.r[s].src);
        F.r[s].fd = cc_close(F.r[s].fd);
        bytes_clear(&F.r[s].got);
    }
    F.in_w = cc_close(F.in_w);
    F.client = cc_ttrpc_client_free(F.client);
    A.server = cc_ttrpc_server_free(A.server);
    A.serve_timer = cc_loop_source_free(A.serve_timer);
    assert_null(A.head);
    for (int s = 0; s < 2; s++)
        bytes_clear(&A.out[s]);
    bytes_clear(&A.in);
    F.loop = cc_loop_free(F.loop);
    int tmp = open("/tmp", O_PATH | O_DIRECTORY | O_CLOEXEC);
    assert_true(tmp >= 0);
    assert_int_equal(cc_rm_rf_at(tmp, F.dir + strlen("/tmp/"), NULL), 0);
    close(tmp);
    return 0;
}

/* --- helpers ------------------------------------------------------------------------------- */

static shim_io_params
params(const char *in, const char *out, const char *err)
{
    return (shim_io_params){
        .container_id = "ctr",
        .exec_id = "exec",
        .stdin_path = in,
        .stdout_path = out,
        .stderr_path = err,
    };
}

static void
start(const shim_io_params *p)
{
    cc_error *e = NULL;
    int r = shim_io_new(F.loop, p, &F.io, &e);
    if (r < 0)
        fail_msg("shim_io_new: %s", cc_error_message(e));
    shim_io_start(F.io, F.client, on_done, &F);
    assert_int_equal(F.n_done, 0); /* never from inside start */
}

/* Pseudo-random bytes, so that a lost or repeated piece shows. */
static uint8_t *
pattern(size_t n, uint32_t seed)
{
    uint8_t *p = cc_xmalloc(n);
    uint32_t x = seed | 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (uint8_t)x;
    }
    return p;
}

static void
assert_bytes(const bytes *b, const void *p, size_t n)
{
    assert_int_equal(b->len, n);
    if (n)
        assert_memory_equal(b->data, p, n);
}

static void
assert_stream(int s)
{
    assert_true(F.r[s].eof);
    assert_bytes(&F.r[s].got, A.out[s].data, A.out[s].len);
}

/* --- tests --------------------------------------------------------------------------------- */

/* Interleaved output in small answers lands on the right FIFO, in order. */
static void
test_order(void **state)
{
    shim_io_params p = params("", F.path[1], F.path[2]);
    char buf[64];

    A.chunk = 7;
    start(&p);
    reader_open(0, 0);
    reader_open(1, 0);
    for (int i = 0; i < 50; i++) {
        int n = snprintf(buf, sizeof(buf), "out line %d\n", i);
        agent_write(0, buf, (size_t)n);
        n = snprintf(buf, sizeof(buf), "err line %d\n", i);
        agent_write(1, buf, (size_t)n);
        if (i % 7 == 0)
            run_for(2000);
    }
    run_for(20000);
    assert_int_equal(F.n_done, 0);
    assert_false(shim_io_is_done(F.io));
    agent_eof(0);
    run_for(20000);
    assert_int_equal(F.n_done, 0); /* stderr still open */
    agent_eof(1);
    run_until_done(5 * SECOND);
    assert_true(shim_io_is_done(F.io));
    assert_stream(0);
    assert_stream(1);
    assert_true(A.max_parked_read_stdio <= SHIM_IO_READS);
    run_for(50000);
    assert_int_equal(F.n_done, 1);
}

/* 20 MiB through a slow reader: nothing lost, reads and buffering bounded. */
static void
test_large_slow_reader(void **state)
{
    shim_io_params p = params("", F.path[1], F.path[2]);
    size_t n = 20 * MIB;
    uint8_t *data = pattern(n, 42), *edata = pattern(MIB + 17, 7);
    int pipe_sz;

    start(&p);
    reader_open(0, 64 << 10);
    reader_open(1, 0);
    pipe_sz = fcntl(F.r[0].fd, F_GETPIPE_SZ);
    assert_true(pipe_sz > 0);
    agent_write(0, data, n);
    agent_write(1, edata, MIB + 17);
    agent_eof(0);
    agent_eof(1);
    run_until_done(120 * SECOND);
    assert_stream(0);
    assert_stream(1);
    assert_int_equal(A.max_parked_read_stdio, SHIM_IO_READS);
    print_message("ReadStdio calls: %d, most bytes served but unread: %zu\n", A.n_read_stdio,
                  F.bound_seen);
    /* served but not yet read: the shim's buffer (HIGH, plus what the reads in flight bring)
     * and the pipe */
    assert_true(F.bound_seen > SHIM_IO_BUFFER_HIGH / 2); /* the reader really was slow */
    assert_true(F.bound_seen <=
                SHIM_IO_BUFFER_HIGH + SHIM_IO_READS * SHIM_IO_READ_MAX + (size_t)pipe_sz);
    free(data);
    free(edata);
}

/* No output at all: EOF on both streams ends it, once; readers see EOF. */
static void
test_eof_done_once(void **state)
{
    shim_io_params p = params("", F.path[1], F.path[2]);

    start(&p);
    reader_open(0, 0);
    reader_open(1, 0);
    run_for(20000);
    assert_int_equal(F.n_done, 0);
    assert_false(F.r[0].eof);
    agent_eof(0);
    agent_eof(1);
    run_until_done(5 * SECOND);
    run_for(100000);
    assert_int_equal(F.n_done, 1);
    assert_stream(0);
    assert_stream(1);
    assert_null(A.head); /* the reads left in flight were answered (and ignored) */
}

/* The agent's connection closes mid-stream: what was received still reaches the reader. */
static void
test_agent_closed(void **state)
{
    shim_io_params p = params("", F.path[1], F.path[2]);
    size_t n = 2 * MIB;
    uint8_t *data = pattern(n, 3);
    bool served = false;

    start(&p);
    agent_write(0, data, n);
    agent_write(1, "partial", 7);
    for (uint64_t end = cc_loop_now() + 5 * SECOND; !served && cc_loop_now() < end;) {
        assert_true(cc_loop_run_once(F.loop, 100000, NULL) >= 0);
        served = A.served[0] == n && A.served[1] == 7;
    }
    assert_true(served);
    run_for(100000); /* the answers reach the shim; nobody reads the FIFOs yet */
    A.server = cc_ttrpc_server_free(A.server);
    run_for(100000);
    assert_true(cc_ttrpc_client_is_closed(F.client));
    assert_int_equal(F.n_done, 0); /* bytes still wait for a reader */
    reader_open(0, 0);
    reader_open(1, 0);
    run_until_done(5 * SECOND);
    assert_stream(0);
    assert_stream(1);
    free(data);
}

static void
stdin_write(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t end = cc_loop_now() + 10 * SECOND;
    while (n > 0) {
        ssize_t k = write(F.in_w, b, n);
        if (k < 0) {
            assert_int_equal(errno, EAGAIN);
            assert_true(cc_loop_now() < end);
            assert_true(cc_loop_run_once(F.loop, 100000, NULL) >= 0);
            continue;
        }
        b += k;
        n -= (size_t)k;
    }
}

static bool
stdin_has(size_t n)
{
    return A.in.len >= n;
}

/* Input reaches WriteStdin in order, one call at a time; CloseStdin follows the last byte. */
static void
test_stdin(void **state)
{
    shim_io_params p = params(F.path[0], "", "");
    size_t big = 300 << 10;
    uint8_t *data = pattern(big, 9);
    bytes want = {0};
    bool ok;

    start(&p);
    F.in_w = open(F.path[0], O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    assert_true(F.in_w >= 0);

    A.hold_writes = true;
    stdin_write("abc", 3);
    bytes_add(&want, "abc", 3);
    ok = false;
    while (!ok) {
        assert_true(cc_loop_run_once(F.loop, 100000, NULL) >= 0);
        ok = stdin_has(3);
    }
    stdin_write("def", 3);
    stdin_write("ghi", 3);
    bytes_add(&want, "defghi", 6);
    run_for(50000);
    assert_int_equal(A.n_write_stdin, 1); /* the next read waits for the answer */
    A.hold_writes = false;
    agent_kick();

    stdin_write(data, big);
    bytes_add(&want, data, big);
    for (uint64_t end = cc_loop_now() + 10 * SECOND; A.in.len < want.len && cc_loop_now() < end;)
        assert_true(cc_loop_run_once(F.loop, 100000, NULL) >= 0);
    assert_bytes(&A.in, want.data, want.len);
    assert_int_equal(A.max_write_inflight, 1);

    /* Written just before CloseIO, not read yet: still goes out before CloseStdin. */
    A.hold_writes = true;
    stdin_write("tail", 4);
    bytes_add(&want, "tail", 4);
    shim_io_close_stdin(F.io);
    shim_io_close_stdin(F.io);
    run_for(50000);
    assert_int_equal(A.n_close_stdin, 0);
    A.hold_writes = false;
    agent_kick();
    for (uint64_t end = cc_loop_now() + 5 * SECOND; !A.n_close_stdin && cc_loop_now() < end;)
        assert_true(cc_loop_run_once(F.loop, 100000, NULL) >= 0);
    run_for(50000);
    assert_int_equal(A.n_close_stdin, 1);
    assert_int_equal(A.in_len_at_close, want.len);
    assert_bytes(&A.in, want.data, want.len);
    /* The shim let go of the FIFO: containerd's writer sees that. */
    assert_int_equal(write(F.in_w, "x", 1), -1);
    assert_int_equal(errno, EPIPE);

    agent_eof(0);
    agent_eof(1);
    run_until_done(5 * SECOND);
    bytes_clear(&want);
    free(data);
}

/* A terminal merges the streams: the stderr path is ignored (even a bad one), and so is
 * stderr's EOF. */
static void
test_terminal(void **state)
{
    shim_io_params p = params("", F.path[1], "/nonexistent/dir/stderr");

    p.terminal = true;
    start(&p);
    reader_open(0, 0);
    agent_write(0, "hello\r\n", 7);
    agent_write(1, "nobody", 6);
    agent_eof(0);
    run_until_done(5 * SECOND);
    assert_stream(0);
}

/* "" paths: nothing is opened, output is read and dropped so the guest never blocks. */
static void
test_null_io(void **state)
{
    shim_io_params p = params("", "", "");
    size_t n = 9 * MIB;
    uint8_t *data = pattern(n, 5);

    start(&p);
    agent_write(0, data, n);
    agent_write(1, data, 100000);
    agent_eof(0);
    agent_eof(1);
    run_until_done(10 * SECOND);
    assert_int_equal(A.served[0], n);
    assert_int_equal(A.served[1], 100000);
    shim_io_close_stdin(F.io); /* no stdin: nothing to close */
    run_for(20000);
    assert_int_equal(A.n_close_stdin, 0);
    free(data);
}

/* file:// appends to a file (created 0640). */
static void
test_file_uri(void **state)
{
    char out_uri[200], err_uri[200], out_path[150], err_path[150];
    shim_io_params p;
    char *got = NULL;
    size_t len;
    struct stat st;
    mode_t old = umask(022);
    int fd;

    snprintf(out_path, sizeof(out_path), "%s/out.log", F.dir);
    snprintf(err_path, sizeof(err_path), "%s/err.log", F.dir);
    snprintf(out_uri, sizeof(out_uri), "file://%s", out_path);
    snprintf(err_uri, sizeof(err_uri), "file://%s", err_path);
    fd = open(out_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "old\n", 4), 4);
    close(fd);

    p = params("", out_uri, err_uri);
    start(&p);
    agent_write(0, "new\n", 4);
    agent_write(1, "oops\n", 5);
    agent_eof(0);
    agent_eof(1);
    run_until_done(5 * SECOND);

    assert_int_equal(cc_read_file(out_path, 1024, &got, &len, NULL), 0);
    assert_string_equal(got, "old\nnew\n");
    free(got);
    assert_int_equal(cc_read_file(err_path, 1024, &got, &len, NULL), 0);
    assert_string_equal(got, "oops\n");
    free(got);
    assert_int_equal(stat(err_path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0640);
    umask(old);
}

static void
expect_new_error(const shim_io_params *p, int code, const char *what1, const char *what2)
{
    cc_error *e = NULL;
    shim_io *io = NULL;

    assert_int_equal(shim_io_new(F.loop, p, &io, &e), code);
    assert_null(io);
    assert_non_null(e);
    if (!strstr(e->message, what1) || !strstr(e->message, what2))
        fail_msg("unexpected message '%s'", e->message);
    cc_error_free(e);
}

/* binary:// and other schemes are refused, naming the stream; so are bad paths. */
static void
test_unsupported(void **state)
{
    shim_io_params p;
    char missing[150];

    p = params("", "binary:///usr/bin/logger?x=1", "");
    expect_new_error(&p, -EOPNOTSUPP, "stdout 'binary:///usr/bin/logger?x=1'",
                     "log URI scheme 'binary' is not supported");
    p = params("", F.path[1], "binary:///x");
    expect_new_error(&p, -EOPNOTSUPP, "stderr 'binary:///x'", "'binary'");
    p = params("", "", "http://x/y");
    expect_new_error(&p, -EOPNOTSUPP, "stderr", "'http'");
    p = params("file:///tmp/in", "", "");
    expect_new_error(&p, -EOPNOTSUPP, "stdin", "'file'");
    p = params("", "relative/path", "");
    expect_new_error(&p, -EINVAL, "stdout", "relative/path");
    p = params("", "fifo://relative", "");
    expect_new_error(&p, -EINVAL, "stdout", "absolute");
    snprintf(missing, sizeof(missing), "%s/missing", F.dir);
    p = params("", "", missing);
    expect_new_error(&p, -ENOENT, "stderr", "No such file");

    /* fifo:// works like a bare path. */
    char uri[200];
    snprintf(uri, sizeof(uri), "fifo://%s", F.path[1]);
    p = params("", uri, "");
    start(&p);
    reader_open(0, 0);
    agent_write(0, "via fifo://", 11);
    agent_eof(0);
    agent_eof(1);
    run_until_done(5 * SECOND);
    assert_stream(0);
}

/* A Kata agent (no ReadStdio): ReadStdout/ReadStderr until their "EOF". */
static void
test_kata_fallback(void **state)
{
    shim_io_params p = params(F.path[0], F.path[1], F.path[2]);
    size_t n = 3 * MIB + 5;
    uint8_t *data = pattern(n, 11);

    start(&p);
    reader_open(0, 0);
    reader_open(1, 0);
    F.in_w = open(F.path[0], O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    assert_true(F.in_w >= 0);
    run_for(50000);
    assert_true(A.n_read_stream >= 2);
    agent_write(0, "first\n", 6);
    run_for(20000);
    agent_write(1, "err\n", 4);
    agent_write(0, data, n);
    stdin_write("in", 2);
    run_for(20000);
    agent_eof(0);
    run_for(20000);
    assert_int_equal(F.n_done, 0);
    agent_eof(1);
    run_until_done(10 * SECOND);
    assert_int_equal(A.n_read_stdio, 0); /* unknown service: never reached a handler */
    assert_stream(0);
    assert_stream(1);
    assert_bytes(&A.in, "in", 2);
    free(data);
}

/* Freed with reads (and a write) in flight: late answers must not reach freed memory. */
static void
test_free_in_flight(void **state)
{
    shim_io_params p = params(F.path[0], F.path[1], F.path[2]);

    start(&p);
    F.in_w = open(F.path[0], O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    assert_true(F.in_w >= 0);
    A.hold_writes = true;
    stdin_write("held", 4);
    run_for(50000);
    assert_int_equal(A.n_parked_read_stdio, SHIM_IO_READS);
    assert_int_equal(A.n_write_inflight, 1);
    F.io = shim_io_free(F.io);
    /* The agent answers now: the client drops the answers. */
    A.hold_writes = false;
    agent_write(0, "late", 4);
    agent_kick();
    run_for(50000);
    assert_int_equal(F.n_done, 0);
    assert_false(cc_ttrpc_client_is_closed(F.client));
}

/* Freed while draining (a reader that does not read), and freed inside done_fn. */
static void
test_free_draining_and_in_done(void **state)
{
    shim_io_params p = params("", F.path[1], "");
    uint8_t *data = pattern(MIB, 1);

    start(&p);
    agent_write(0, data, MIB);
    agent_eof(0);
    agent_eof(1);
    run_for(100000);
    assert_int_equal(F.n_done, 0);
    F.io = shim_io_free(F.io);
    run_for(50000);
    assert_int_equal(F.n_done, 0);

    /* Again, with done_fn freeing the io, on a closed connection. */
    A.server = cc_ttrpc_server_free(A.server);
    run_for(50000);
    assert_true(cc_ttrpc_client_is_closed(F.client));
    F.free_in_done = true;
    start(&p);
    run_until_done(5 * SECOND);
    assert_null(F.io);
    run_for(50000);
    assert_int_equal(F.n_done, 1);
    free(data);
}

/* The client closed before start: done still comes, later, once. */
static void
test_closed_before_start(void **state)
{
    shim_io_params p = params(F.path[0], F.path[1], "");

    A.server = cc_ttrpc_server_free(A.server);
    run_for(50000);
    assert_true(cc_ttrpc_client_is_closed(F.client));
    start(&p);
    reader_open(0, 0);
    run_until_done(5 * SECOND);
    assert_stream(0);
    shim_io_close_stdin(F.io);
    run_for(20000);
    assert_int_equal(F.n_done, 1);
}

/* A reader that never reads: done after about 5 s anyway. */
static void
test_drain_timeout(void **state)
{
    shim_io_params p = params("", F.path[1], "");
    uint8_t *data = pattern(MIB, 2);
    uint64_t t0;

    start(&p);
    reader_open(0, 0);
    F.r[0].src = cc_loop_source_free(F.r[0].src); /* open, but never read */
    agent_write(0, data, MIB);
    agent_eof(0);
    agent_eof(1);
    run_for(100000);
    t0 = cc_loop_now();
    assert_int_equal(F.n_done, 0);
    run_until_done(8 * SECOND);
    assert_true(cc_loop_now() - t0 >= 4 * SECOND);
    /* What the pipe held is readable, then EOF. */
    assert_true(F.r[0].eof);
    assert_true(F.r[0].got.len > 0 && F.r[0].got.len < MIB);
    assert_memory_equal(F.r[0].got.data, data, F.r[0].got.len);
    free(data);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_slow_reader, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eof_done_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stdin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_terminal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_null_io, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_uri, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unsupported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kata_fallback, setup_kata, teardown),
        cmocka_unit_test_setup_teardown(test_free_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_draining_and_in_done, setup, teardown),
        cmocka_unit_test_setup_teardown(test_closed_before_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drain_timeout, setup, teardown),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
