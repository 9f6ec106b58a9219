/* SPDX-License-Identifier: Apache-2.0 */
/*
 * shim/events.c against a fake containerd: our ttrpc server on a unix socket in a temp dir,
 * serving containerd.services.events.ttrpc.v1.Events/Forward and recording what arrives.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* cmocka.h needs these first. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "containerd/events/task.pb-c.h"
#include "containerd/services/ttrpc/events/v1/events.pb-c.h"
#include "events.h"
#include "loop.h"
#include "ttrpc.h"
#include "util.h"

#define MS 1000ull
#define SECOND 1000000ull
#define NS "k8s.io"

typedef Containerd__Services__Events__Ttrpc__V1__ForwardRequest ForwardRequest;

/* In shim/events.c, for tests only. */
void shim_events_set_backoff_for_tests(shim_events *ev, uint64_t base_usec);

typedef enum mode {
    MODE_OK,   /* record and answer OK */
    MODE_FAIL, /* answer INTERNAL */
    MODE_HOLD, /* record and keep the call unanswered (F.held) */
} mode;

static struct fixture {
    cc_loop *loop;
    char dir[64];
    char path[128];
    cc_ttrpc_server *server;
    shim_events *ev;
    mode mode;
    unsigned n_calls;     /* Forward calls seen, whatever the mode */
    ForwardRequest **got; /* recorded requests (MODE_OK and MODE_HOLD) */
    size_t n_got;
    cc_ttrpc_call *held;
} F;

/* --- the fake containerd ----------------------------------------------------------------- */

static void
on_cancel(cc_ttrpc_call *call, cc_ttrpc_code reason, void *userdata)
{
    if (F.held == call)
        F.held = NULL;
    (void)cc_ttrpc_call_fail(call, CC_TTRPC_CANCELLED, "cancelled"); /* completes (frees) it */
}

static void
on_forward(cc_ttrpc_call *call, const uint8_t *req, size_t len, void *userdata)
{
    assert_ptr_equal(userdata, &F);
    F.n_calls++;
    ForwardRequest *m = (ForwardRequest *)cc_ttrpc_call_unpack(
        call, &containerd__services__events__ttrpc__v1__forward_request__descriptor, req, len);
    assert_non_null(m);
    if (F.mode == MODE_FAIL) {
        protobuf_c_message_free_unpacked(&m->base, NULL);
        assert_int_equal(cc_ttrpc_call_fail(call, CC_TTRPC_INTERNAL, "not today"), 0);
        return;
    }
    F.got = cc_xreallocarray(F.got, F.n_got + 1, sizeof(*F.got));
    F.got[F.n_got++] = m;
    if (F.mode == MODE_HOLD) {
        assert_null(F.held);
        F.held = call;
        cc_ttrpc_call_set_cancel(call, on_cancel, NULL);
        return;
    }
    assert_int_equal(cc_ttrpc_call_reply(call, NULL), 0);
}

static void
server_start(void)
{
    static const cc_ttrpc_method methods[] = {{"Forward", on_forward}};
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd;

    assert_null(F.server);
    (void)unlink(F.path);
    strcpy(sa.sun_path, F.path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 16), 0);
    assert_int_equal(cc_ttrpc_server_new(F.loop, &F.server, NULL), 0);
    assert_int_equal(cc_ttrpc_server_register(F.server,
                                              "containerd.services.events.ttrpc.v1.Events", methods,
                                              ELEMENTSOF(methods), &F, NULL),
                     0);
    assert_int_equal(cc_ttrpc_server_listen_fd(F.server, fd, NULL), 0);
}

/* Closes the listener and every connection (a held call is cancelled, hence completed). */
static void
server_stop(void)
{
    F.server = cc_ttrpc_server_free(F.server);
    (void)unlink(F.path);
}

/* --- helpers ------------------------------------------------------------------------------ */

static void
run_for(uint64_t usec)
{
    uint64_t end = cc_loop_now() + usec;
    while (cc_loop_now() < end)
        assert_true(cc_loop_run_once(F.loop, end - cc_loop_now(), NULL) >= 0);
}

/* Runs the loop until F.n_got reaches n (at most 10 s). */
static void
run_until_got(size_t n)
{
    uint64_t end = cc_loop_now() + 10 * SECOND;
    while (F.n_got < n && cc_loop_now() < end)
        assert_true(cc_loop_run_once(F.loop, 100 * MS, NULL) >= 0);
    assert_int_equal(F.n_got, n);
}

static void
run_until_idle(void)
{
    uint64_t end = cc_loop_now() + 10 * SECOND;
    while (shim_events_pending(F.ev) > 0 && cc_loop_now() < end)
        assert_true(cc_loop_run_once(F.loop, 100 * MS, NULL) >= 0);
    assert_int_equal(shim_events_pending(F.ev), 0);
}

static void
publish_exit(const char *id, uint32_t pid, uint32_t status)
{
    Google__Protobuf__Timestamp at = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    Containerd__Events__TaskExit ex = CONTAINERD__EVENTS__TASK_EXIT__INIT;
    at.seconds = 1700000000;
    at.nanos = 42;
    ex.container_id = (char *)id;
    ex.id = (char *)id;
    ex.pid = pid;
    ex.exit_status = status;
    ex.exited_at = &at;
    shim_events_publish(F.ev, "/tasks/exit", &ex.base);
}

static void
publish_start(const char *id, uint32_t pid)
{
    Containerd__Events__TaskStart st = CONTAINERD__EVENTS__TASK_START__INIT;
    st.container_id = (char *)id;
    st.pid = pid;
    shim_events_publish(F.ev, "/tasks/start", &st.base);
}

/* A generic event whose topic carries a number, for ordering tests. */
static void
publish_numbered(unsigned i)
{
    char topic[32];
    Containerd__Events__TaskOOM oom = CONTAINERD__EVENTS__TASK_OOM__INIT;
    oom.container_id = (char *)"c";
    snprintf(topic, sizeof(topic), "/tasks/n%u", i);
    shim_events_publish(F.ev, topic, &oom.base);
}

static unsigned
got_number(size_t i)
{
    unsigned n;
    assert_true(i < F.n_got);
    assert_int_equal(sscanf(F.got[i]->envelope->topic, "/tasks/n%u", &n), 1);
    return n;
}

/* Checks the common envelope fields of F.got[i]. */
static const Google__Protobuf__Any *
check_envelope(size_t i, const char *topic, const char *type_url)
{
    struct timespec now;
    assert_true(i < F.n_got);
    const Containerd__Services__Events__Ttrpc__V1__Envelope *env = F.got[i]->envelope;
    assert_non_null(env);
    assert_string_equal(env->namespace_, NS);
    assert_string_equal(env->topic, topic);
    assert_non_null(env->timestamp);
    assert_true(env->timestamp->seconds != 0 || env->timestamp->nanos != 0);
    assert_int_equal(clock_gettime(CLOCK_REALTIME, &now), 0);
    assert_true(env->timestamp->seconds <= now.tv_sec);
    assert_true(env->timestamp->seconds >= now.tv_sec - 60);
    assert_true(env->timestamp->nanos >= 0 && env->timestamp->nanos < 1000000000);
    assert_non_null(env->event);
    assert_string_equal(env->event->type_url, type_url);
    return env->event;
}

/* --- fixture -------------------------------------------------------------------------------- */

static int
setup(void **state)
{
    F = (struct fixture){0};
    assert_int_equal(cc_loop_new(&F.loop, NULL), 0);
    strcpy(F.dir, "/tmp/test-events-XXXXXX");
    assert_non_null(mkdtemp(F.dir));
    snprintf(F.path, sizeof(F.path), "%s/containerd.sock.ttrpc", F.dir);
    assert_int_equal(shim_events_new(F.loop, F.path, NS, &F.ev, NULL), 0);
    return 0;
}

static int
teardown(void **state)
{
    F.ev = shim_events_free(F.ev);
    server_stop();
    if (F.held) /* not reached: freeing the server cancels (completes) held calls */
        (void)cc_ttrpc_call_fail(F.held, CC_TTRPC_CANCELLED, "teardown");
    for (size_t i = 0; i < F.n_got; i++)
        protobuf_c_message_free_unpacked(&F.got[i]->base, NULL);
    free(F.got);
    F.loop = cc_loop_free(F.loop);
    (void)rmdir(F.dir);
    return 0;
}

/* --- tests ---------------------------------------------------------------------------------- */

static void
test_new_errors(void **state)
{
    shim_events *ev = NULL;
    char long_path[200];
    cc_error *e = NULL;

    memset(long_path, 'a', sizeof(long_path) - 1);
    long_path[sizeof(long_path) - 1] = '\0';
    assert_int_equal(shim_events_new(F.loop, "", NS, &ev, NULL), -EINVAL);
    assert_int_equal(shim_events_new(F.loop, "unix://", NS, &ev, NULL), -EINVAL);
    assert_int_equal(shim_events_new(F.loop, F.path, "", &ev, NULL), -EINVAL);
    assert_int_equal(shim_events_new(F.loop, long_path, NS, &ev, &e), -ENAMETOOLONG);
    assert_non_null(e);
    e = cc_error_free(e);
    assert_null(ev);
    assert_null(shim_events_free(NULL));
}

/* Events arrive in publish order with namespace, topic, type_url, timestamp and value. */
static void
test_order_and_envelope(void **state)
{
    server_start();
    publish_exit("c1", 100, 137);
    publish_start("c2", 200);
    publish_exit("c3", 300, 0);
    assert_int_equal(shim_events_pending(F.ev), 3);
    run_until_got(3);
    run_until_idle();

    const Google__Protobuf__Any *any =
        check_envelope(0, "/tasks/exit", "containerd.events.TaskExit");
    Containerd__Events__TaskExit *ex =
        containerd__events__task_exit__unpack(NULL, any->value.len, any->value.data);
    assert_non_null(ex);
    assert_string_equal(ex->container_id, "c1");
    assert_string_equal(ex->id, "c1");
    assert_int_equal(ex->pid, 100);
    assert_int_equal(ex->exit_status, 137);
    assert_non_null(ex->exited_at);
    assert_int_equal(ex->exited_at->seconds, 1700000000);
    assert_int_equal(ex->exited_at->nanos, 42);
    containerd__events__task_exit__free_unpacked(ex, NULL);

    any = check_envelope(1, "/tasks/start", "containerd.events.TaskStart");
    Containerd__Events__TaskStart *st =
        containerd__events__task_start__unpack(NULL, any->value.len, any->value.data);
    assert_non_null(st);
    assert_string_equal(st->container_id, "c2");
    assert_int_equal(st->pid, 200);
    containerd__events__task_start__free_unpacked(st, NULL);

    any = check_envelope(2, "/tasks/exit", "containerd.events.TaskExit");
    ex = containerd__events__task_exit__unpack(NULL, any->value.len, any->value.data);
    assert_non_null(ex);
    assert_string_equal(ex->container_id, "c3");
    assert_int_equal(ex->exit_status, 0);
    containerd__events__task_exit__free_unpacked(ex, NULL);
    assert_int_equal(F.n_calls, 3);

    /* The connection is reused: one connection, later events go out on it. */
    assert_int_equal(cc_ttrpc_server_get_n_connections(F.server), 1);
    publish_start("c4", 400);
    run_until_got(4);
    assert_int_equal(cc_ttrpc_server_get_n_connections(F.server), 1);
}

/* "unix://" is accepted and dropped. */
static void
test_unix_prefix(void **state)
{
    char addr[160];
    F.ev = shim_events_free(F.ev);
    snprintf(addr, sizeof(addr), "unix://%s", F.path);
    assert_int_equal(shim_events_new(F.loop, addr, NS, &F.ev, NULL), 0);
    server_start();
    publish_start("c", 1);
    run_until_got(1);
    check_envelope(0, "/tasks/start", "containerd.events.TaskStart");
}

/* No server at publish time: retried with back-off, delivered once it appears. */
static void
test_server_late(void **state)
{
    shim_events_set_backoff_for_tests(F.ev, 100 * MS);
    publish_exit("c1", 1, 2);
    publish_start("c2", 3);
    run_for(150 * MS); /* attempts at 0 and 100 ms failed; next at 300 ms */
    assert_int_equal(F.n_calls, 0);
    assert_int_equal(shim_events_pending(F.ev), 2);
    server_start();
    run_until_got(2);
    run_until_idle();
    check_envelope(0, "/tasks/exit", "containerd.events.TaskExit");
    check_envelope(1, "/tasks/start", "containerd.events.TaskStart");
}

/* The real back-off base is 1 s: nothing is retried much sooner. */
static void
test_default_backoff(void **state)
{
    publish_start("c", 1);
    run_for(100 * MS); /* the first attempt fails: no server */
    server_start();
    run_for(500 * MS);
    assert_int_equal(F.n_got, 0);
    assert_int_equal(shim_events_pending(F.ev), 1);
    run_until_got(1); /* about 1 s after the first attempt */
    run_until_idle();
}

/* Error status: retried SHIM_EVENTS_RETRIES times, then dropped; the queue moves on. */
static void
test_error_status_dropped(void **state)
{
    shim_events_set_backoff_for_tests(F.ev, 10 * MS);
    server_start();
    F.mode = MODE_FAIL;
    publish_exit("c1", 1, 1);
    publish_start("c2", 2);
    uint64_t end = cc_loop_now() + 10 * SECOND;
    while (F.n_calls < 1 + SHIM_EVENTS_RETRIES && cc_loop_now() < end)
        assert_true(cc_loop_run_once(F.loop, 100 * MS, NULL) >= 0);
    assert_int_equal(F.n_calls, 1 + SHIM_EVENTS_RETRIES);
    /* The first is dropped and the second goes out at once: let it through. */
    F.mode = MODE_OK;
    run_until_got(1);
    run_until_idle();
    assert_int_equal(F.n_calls, 2 + SHIM_EVENTS_RETRIES);
    check_envelope(0, "/tasks/start", "containerd.events.TaskStart");
    run_for(200 * MS);
    assert_int_equal(F.n_calls, 2 + SHIM_EVENTS_RETRIES);
}

/* No server at all: dropped after the retries too. */
static void
test_no_server_dropped(void **state)
{
    shim_events_set_backoff_for_tests(F.ev, 5 * MS);
    publish_start("c", 1);
    uint64_t end = cc_loop_now() + 5 * SECOND;
    while (shim_events_pending(F.ev) > 0 && cc_loop_now() < end)
        assert_true(cc_loop_run_once(F.loop, 100 * MS, NULL) >= 0);
    assert_int_equal(shim_events_pending(F.ev), 0);
}

/* The server closes the connection while idle: the next event reconnects. */
static void
test_reconnect_idle(void **state)
{
    shim_events_set_backoff_for_tests(F.ev, 20 * MS);
    server_start();
    publish_start("c1", 1);
    run_until_got(1);
    run_until_idle();
    server_stop(); /* containerd restarts */
    run_for(20 * MS);
    server_start();
    publish_start("c2", 2);
    run_until_got(2);
    run_until_idle();
    check_envelope(1, "/tasks/start", "containerd.events.TaskStart");
    assert_int_equal(F.n_calls, 2);
}

/* The server closes the connection with the call in flight: retried on a new connection. */
static void
test_reconnect_in_flight(void **state)
{
    shim_events_set_backoff_for_tests(F.ev, 20 * MS);
    server_start();
    F.mode = MODE_HOLD;
    publish_exit("c1", 1, 9);
    publish_start("c2", 2);
    run_until_got(1);
    assert_non_null(F.held);
    assert_int_equal(shim_events_pending(F.ev), 2);
    server_stop(); /* cancels the held call: the client sees "ttrpc: closed" */
    assert_null(F.held);
    F.mode = MODE_OK;
    run_for(5 * MS);
    server_start();
    run_until_got(3);
    run_until_idle();
    check_envelope(1, "/tasks/exit", "containerd.events.TaskExit");
    check_envelope(2, "/tasks/start", "containerd.events.TaskStart");
    /* Same envelope as the first, unanswered, attempt: serialised once, at publish time. */
    assert_int_equal(F.got[0]->envelope->timestamp->seconds,
                     F.got[1]->envelope->timestamp->seconds);
    assert_int_equal(F.got[0]->envelope->timestamp->nanos, F.got[1]->envelope->timestamp->nanos);
}

/* Past SHIM_EVENTS_QUEUE_MAX the oldest is dropped. */
static void
test_overflow_drops_oldest(void **state)
{
    for (unsigned i = 0; i < SHIM_EVENTS_QUEUE_MAX + 3; i++)
        publish_numbered(i);
    assert_int_equal(shim_events_pending(F.ev), SHIM_EVENTS_QUEUE_MAX);
    server_start();
    run_until_got(SHIM_EVENTS_QUEUE_MAX);
    run_until_idle();
    for (size_t i = 0; i < F.n_got; i++)
        assert_int_equal(got_number(i), i + 3);
}

/* With the head on the wire, the oldest queued one goes instead. */
static void
test_overflow_keeps_in_flight(void **state)
{
    server_start();
    F.mode = MODE_HOLD;
    publish_numbered(0);
    run_until_got(1);
    assert_non_null(F.held);
    for (unsigned i = 1; i <= SHIM_EVENTS_QUEUE_MAX; i++)
        publish_numbered(i);
    assert_int_equal(shim_events_pending(F.ev), SHIM_EVENTS_QUEUE_MAX);
    F.mode = MODE_OK;
    cc_ttrpc_call *call = F.held;
    F.held = NULL;
    assert_int_equal(cc_ttrpc_call_reply(call, NULL), 0);
    run_until_got(SHIM_EVENTS_QUEUE_MAX);
    run_until_idle();
    assert_int_equal(got_number(0), 0);
    for (size_t i = 1; i < F.n_got; i++)
        assert_int_equal(got_number(i), i + 1); /* 1 was dropped */
}

/* Freeing with a call in flight and more queued: nothing leaks, no callback into freed memory. */
static void
test_free_in_flight(void **state)
{
    server_start();
    F.mode = MODE_HOLD;
    publish_exit("c1", 1, 1);
    publish_start("c2", 2);
    publish_start("c3", 3);
    run_until_got(1);
    assert_int_equal(shim_events_pending(F.ev), 3);
    F.ev = shim_events_free(F.ev);
    run_for(50 * MS); /* the server sees the connection close and cancels the held call */
    assert_null(F.held);
    assert_int_equal(cc_ttrpc_server_get_n_connections(F.server), 0);
}

/* Freeing during a back-off and with a start pending. */
static void
test_free_pending(void **state)
{
    shim_events_set_backoff_for_tests(F.ev, 50 * MS);
    publish_start("c1", 1);
    run_for(10 * MS); /* first attempt failed; back-off armed */
    publish_start("c2", 2);
    assert_int_equal(shim_events_pending(F.ev), 2);
    F.ev = shim_events_free(F.ev);
    run_for(100 * MS);

    assert_int_equal(shim_events_new(F.loop, F.path, NS, &F.ev, NULL), 0);
    publish_start("c3", 3); /* never sent: the timer is armed, not yet fired */
    F.ev = shim_events_free(F.ev);
    run_for(10 * MS);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_new_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_order_and_envelope, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unix_prefix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_late, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_backoff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_status_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_server_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconnect_idle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconnect_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overflow_drops_oldest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overflow_keeps_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_pending, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
