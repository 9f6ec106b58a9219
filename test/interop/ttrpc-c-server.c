/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ttrpc-c-server --socket PATH
 *
 * Serves cloak.test.v1.Echo/Echo (test/interop/echo.proto) with lib/ttrpc on a unix socket
 * at PATH (a stale file is replaced; the socket is removed at exit), prints "ready" once
 * listening, exits 0 on SIGTERM or SIGINT. The peer of ttrpc-go-server in the interop tests
 * and benchmarks: same command line, same behaviour.
 */
#define _GNU_SOURCE
#include "echo.pb-c.h"
#include "loop.h"
#include "ttrpc.h"
#include "util.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define REPLY_SIZE_MAX (64u << 20)

typedef struct sleeper {
    cc_ttrpc_call *call;
    Cloak__Test__V1__EchoRequest *req;
    cc_loop_source *timer;
} sleeper;

static cc_loop *loop;

static void
answer(cc_ttrpc_call *call, const Cloak__Test__V1__EchoRequest *req)
{
    Cloak__Test__V1__EchoResponse resp = CLOAK__TEST__V1__ECHO_RESPONSE__INIT;
    if (req->fail_code != 0) {
        (void)cc_ttrpc_call_fail(call, (cc_ttrpc_code)req->fail_code, "%s", req->fail_message);
        return;
    }
    if (req->reply_size == 0) {
        resp.payload = req->payload;
        (void)cc_ttrpc_call_reply(call, &resp.base);
        return;
    }
    if (req->reply_size > REPLY_SIZE_MAX) {
        (void)cc_ttrpc_call_fail(call, CC_TTRPC_RESOURCE_EXHAUSTED, "reply_size %u too big",
                                 req->reply_size);
        return;
    }
    uint8_t *buf = cc_xmalloc(req->reply_size);
    for (uint32_t i = 0; i < req->reply_size; i++)
        buf[i] = (uint8_t)(i % 251);
    resp.payload.data = buf;
    resp.payload.len = req->reply_size;
    (void)cc_ttrpc_call_reply(call, &resp.base); /* over 4 MiB: RESOURCE_EXHAUSTED */
    free(buf);
}

static void
sleeper_free(sleeper *s)
{
    cc_loop_source_free(s->timer);
    protobuf_c_message_free_unpacked(&s->req->base, NULL);
    free(s);
}

static int
on_sleep_done(cc_loop_source *src, uint64_t deadline, void *userdata)
{
    sleeper *s = userdata;
    answer(s->call, s->req);
    sleeper_free(s);
    return 0;
}

/* Deadline passed (the library answered DEADLINE_EXCEEDED) or connection gone. */
static void
on_cancel(cc_ttrpc_call *call, cc_ttrpc_code reason, void *userdata)
{
    sleeper *s = userdata;
    (void)cc_ttrpc_call_fail(call, reason, "cancelled"); /* dropped; ends our ownership */
    sleeper_free(s);
}

static void
echo(cc_ttrpc_call *call, const uint8_t *data, size_t len, void *userdata)
{
    Cloak__Test__V1__EchoRequest *req = (Cloak__Test__V1__EchoRequest *)cc_ttrpc_call_unpack(
        call, &cloak__test__v1__echo_request__descriptor, data, len);
    if (!req)
        return;
    if (req->sleep_ms == 0) {
        answer(call, req);
        protobuf_c_message_free_unpacked(&req->base, NULL);
        return;
    }
    sleeper *s = cc_xzalloc(sizeof(*s));
    s->call = call;
    s->req = req;
    if (cc_loop_add_timer(loop, (uint64_t)req->sleep_ms * 1000, 0, on_sleep_done, s, &s->timer,
                          NULL) < 0) {
        (void)cc_ttrpc_call_fail(call, CC_TTRPC_INTERNAL, "cannot add timer");
        sleeper_free(s);
        return;
    }
    cc_ttrpc_call_set_cancel(call, on_cancel, s);
}

static int
on_signal(cc_loop_source *src, const struct signalfd_siginfo *si, void *userdata)
{
    cc_loop_exit(loop, 0);
    return 0;
}

static int
listen_unix(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path)) {
        fprintf(stderr, "ttrpc-c-server: socket path too long\n");
        return -1;
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    (void)unlink(path);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1024) < 0) {
        fprintf(stderr, "ttrpc-c-server: bind/listen '%s': %s\n", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

int
main(int argc, char **argv)
{
    if (argc != 3 || strcmp(argv[1], "--socket") != 0) {
        fprintf(stderr, "usage: %s --socket PATH\n", argv[0]);
        return 2;
    }
    const char *path = argv[2];
    static const int sigs[] = {SIGTERM, SIGINT};
    cc_error *err = NULL;
    cc_ttrpc_server *server = NULL;
    static const cc_ttrpc_method methods[] = {{"Echo", echo}};
    signal(SIGPIPE, SIG_IGN);
    int r = cc_loop_block_signals(sigs, ELEMENTSOF(sigs), &err);
    if (r >= 0)
        r = cc_loop_new(&loop, &err);
    for (size_t i = 0; r >= 0 && i < ELEMENTSOF(sigs); i++)
        r = cc_loop_add_signal(loop, sigs[i], on_signal, NULL, NULL, &err);
    if (r >= 0)
        r = cc_ttrpc_server_new(loop, &server, &err);
    if (r >= 0)
        r = cc_ttrpc_server_register(server, "cloak.test.v1.Echo", methods, 1, NULL, &err);
    int fd = r >= 0 ? listen_unix(path) : -1;
    if (r >= 0 && fd < 0)
        r = -EIO;
    if (r >= 0 && (r = cc_ttrpc_server_listen_fd(server, fd, &err)) < 0)
        close(fd);
    if (r >= 0) {
        printf("ready\n");
        fflush(stdout);
        r = cc_loop_run(loop, &err);
    }
    if (r < 0 && err)
        fprintf(stderr, "ttrpc-c-server: %s\n", cc_error_message(err));
    cc_ttrpc_server_free(server);
    cc_loop_free(loop);
    cc_error_free(err);
    if (fd >= 0)
        (void)unlink(path);
    return r < 0 ? 1 : 0;
}
