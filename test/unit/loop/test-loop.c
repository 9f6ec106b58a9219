/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* cmocka.h needs these first. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "loop.h"

/* Runs iterations (100 ms each at most) until *done or about 5 s passed. */
static void
run_until(cc_loop *loop, const bool *done)
{
    for (int i = 0; i < 50 && !*done; i++)
        assert_true(cc_loop_run_once(loop, 100000, NULL) >= 0);
    assert_true(*done);
}

static void
make_pipe(int fds[2])
{
    assert_int_equal(pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
}

static void
write_byte(int fd)
{
    assert_int_equal(write(fd, "x", 1), 1);
}

/* --- loop basics -------------------------------------------------------------------------- */

/* Marks open fds in fds[] (fds > 2 below 1024); returns how many. */
static int
list_fds(bool fds[1024])
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    memset(fds, 0, 1024 * sizeof(bool));
    while ((de = readdir(d))) {
        int fd = atoi(de->d_name);
        if (de->d_name[0] == '.' || fd == dirfd(d) || fd <= 2 || fd >= 1024)
            continue;
        fds[fd] = true;
        n++;
    }
    closedir(d);
    return n;
}

static void
test_new_free(void **state)
{
    bool before[1024], after[1024];
    int n_before = list_fds(before);
    cc_loop *loop = NULL;
    assert_int_equal(cc_loop_new(&loop, NULL), 0);
    assert_non_null(loop);
    /* epoll, signalfd, timerfd, eventfd: all close-on-exec. */
    assert_int_equal(list_fds(after), n_before + 4);
    for (int fd = 0; fd < 1024; fd++)
        if (after[fd] && !before[fd])
            assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    assert_false(cc_loop_is_exiting(loop));
    assert_null(cc_loop_free(loop));
    assert_int_equal(list_fds(after), n_before);
    assert_null(cc_loop_free(NULL));
    assert_null(cc_loop_source_free(NULL));
    {
        _cleanup_(cc_loop_freep) cc_loop *scoped = NULL;
        assert_int_equal(cc_loop_new(&scoped, NULL), 0);
    }
    assert_int_equal(list_fds(after), n_before);
}

static void
test_run_once_timeout(void **state)
{
    _cleanup_(cc_loop_freep) cc_loop *loop = NULL;
    assert_int_equal(cc_loop_new(&loop, NULL), 0);
    uint64_t start = cc_loop_now();
    assert_int_equal(cc_loop_run_once(loop, 20000, NULL), 0);
    assert_true(cc_loop_now() - start >= 19000);
    assert_int_equal(cc_loop_run_once(loop, 0, NULL), 0);
}

/* --- io ------------------------------------------------------------------------------------ */

typedef struct io_state {
    int calls;
    int fd;
    uint32_t revents;
    int ret; /* what the handler returns */
    cc_loop_source *other;
    cc_loop_source **self;
} io_state;

static int
on_io_read(cc_loop_source *s, int fd, uint32_t revents, void *userdata)
{
    io_state *st = userdata;
    char c;
    st->calls++;
    st->fd = fd;
    st->revents = revents;
    (void)!read(fd, &c, 1);
    return st->ret;
}

static void
test_io_pipe(void **state)
{
    _cleanup_(cc_loop_freep) cc_loop *loop = NULL;
    _cleanup_(cc_loop_source_freep) cc_loop_source *s = NULL;
    int p[2];
    io_state st = {0};
    make_pipe(p);
    assert_int_equal(cc_loop_new(&loop, NULL), 0);
    assert_int_equal(cc_loop_add_io(loop, p[0], EPOLLIN, on_io_read, &st, &s, NULL), 0);
    cc_loop_source_set_description(s, "pipe reader");
    assert_string_equal(cc_loop_source_get_description(s), "pipe reader");
    assert_ptr_equal(cc_loop_source_get_userdata(s), &st);
    assert_ptr_equal(cc_loop_source_get_loop(s), loop);
    assert_int_equal(cc_loop_source_get_fd(s), p[0]);

    assert_int_equal(cc_loop_run_once(loop, 0, NULL), 0);
    assert_int_equal(st.calls, 0);
    write_byte(p[1]);
    assert_int_equal(cc_loop_run_once(loop, 1000000, NULL), 1);
    assert_int_equal(st.calls, 1);
    assert_int_equal(st.fd, p[0]);
    assert_int_equal(st.revents, EPOLLIN);
    assert_int_equal(cc_loop_run_once(loop, 0, NULL), 0); /* drained: level-triggered, quiet */
    assert_int_equal(st.calls, 1);

    /* Disabled: not dispatched; enabled again: the pending byte is seen. */
    assert_int_equal(cc_loop_source_set_enabled(s, false, NULL), 0);
    assert_false(cc_loop_source_get_enabled(s));
    write_byte(p[1]);
    assert_int_equal(cc_loop_run_once(loop, 0, NULL), 0);
    assert_int_equal(st.calls, 1);
    assert_int_equal(cc_loop_source_set_enabled(s, true, NULL), 0);
    assert_int_equal(cc_loop_run_once(loop, 0, NULL), 1);
    assert_int_equal(st.calls, 2);

    /* Closing the writer: EPOLLHUP is always reported. */
    close(p[1]);
    assert_int_equal(cc_loop_run_once(loop, 0, NULL), 1);
    assert_true(st.revents & EPOLLHUP);
    s = cc_loop_source_free(s);
    close(p[0]);
}

static void
test_io_events_and_errors(void **state)
{
    _cleanup_(cc_loop_freep) cc_loop *loop = NULL;
    _cleanup_(cc_loop_source_freep) cc_loop_source *s = NULL;
    _cleanup_error_ cc_error *err = NULL;
    int p[2];
    io_state st = {0};
    make_pipe(p);
    assert_int_equal(cc_loop_new(&loop, NULL), 0);
    /* The write end is writable at once once EPOLLOUT is asked for. */
    assert_int_equal(cc_loop_add_io(loop, p[1], 0, on_io_read, &st, &s, NULL), 0);
    assert_int_equal(cc_loop_run_once(loop, 0, NULL), 0);
    assert_int_equal(cc_loop_source_set_io_events(s, EPOLLOUT, NULL), 0);
    assert_int_equal(cc_loop_run_once(loop, 0, NULL), 1);
    assert_int_equal(st.revents, EPOLLOUT);

    assert_int_equal(cc_loop_source_set_io_events(s, EPOLLONESHOT, &err), -EINVAL);
    assert_non_null(err);
    assert_int_equal(cc_loop_add_io(loop, p[1], EPOLLIN, on_io_read, &st, NULL, &err), -EEXIST);
    assert_non_null(strstr(cc_error_message(err), "epoll_ctl"));
    assert_int_equal(cc_loop_add_io(loop, -1, EPOLLIN, on_io_read, &st, NULL, &err), -EINVAL);
    assert_int_equal(cc_loop_add_io(loop, p[0], EPOLLEXCLUSIVE, on_io_read, &st, NULL, &err),
                     -EINVAL);
    s = cc_loop_source_free(s);
    close(p[0]);
    close(p[1]);
}

static void
test_io_fd_own(void **state)
{
    _cleanup_(cc_loop_freep) cc_loop *loop = NULL;
    cc_loop_source *s = NULL;
    int p[2];
    io_state st = {0};
    make_pipe(p);
    assert_int_equal(cc_loop_new(&loop, NULL), 0);
    assert_int_equal(cc_loop_add_io(loop, p[0], EPOLLIN, on_io_read, &st, &s, NULL), 0);
    cc_loop_source_set_io_fd_own(s, true);
    s = cc_loop_source_free(s);
    assert_int_equal(fcntl(p[0], F_GETFD), -1);
    assert_int_equal(errno, EBADF);
    close(p[1]);
}

static void
test_handler_error_disables(void **state)
{
    _cleanup_(cc_loop_freep) cc_loop *loop = NULL;
    _cleanup_(cc_loop_source_freep) cc_loop_source *s = NULL;
    int p[2];
    io_state st = {.ret = -EIO};
    make_pipe(p);
    assert_int_equal(cc_loop_new(&loop, NULL), 0);
    assert_int_equal(cc_loop_add_io(loop, p[0], EPOLLIN, on_io_read, &st, &s, NULL), 0);
    write_byte(p[1]);
    write_byte(p[1]);
    assert_int_equal(cc_loop_run_once(loop, 0, NULL), 1);
    assert_int_equal(st.calls, 1);
    assert_false(cc_loop_source_get_enabled(s));
    assert_int_equal(cc_loop_run_once(loop, 0, NULL), 0); /* a byte is left, but disabled */
    assert_int_equal(st.calls, 1);
    st.ret = 0;
    assert_int_equal(cc_loop_source_set_enabled(s, true, NULL), 0);
    assert_int_equal(cc_loop_run_once(loop, 0, NULL), 1);
    assert_int_equal(st.calls, 2);
    s = cc_loop_source_free(s);
    close(p[0]);
    close(p[1]);
}

/* --- freeing inside handlers ---------------------------------------------------------------- */

static int
on_io_free_self(cc_loop_source *s, int fd, uint32_t revents, void *userdata)
{
    io_state *st = userdata;
    st->calls++;
    *st->self = cc_loop_source_free(s);
    /* Still safe to use the loop and add sources after freeing ourselves. */
    return 0;
}

static void
test_free_self_in_handler(void **state)
{
    _cleanup_(cc_loop_freep) cc_loop *loop = NULL;
    cc_loop_source *s = NULL, *floating_self = NULL;
    int p[2];
    io_state st = {.self = &s}, st2 = {.self = &floating_self};
    make_pipe(p);
    assert_int_equal(cc_loop_new(&loop, NULL), 0);
    assert_int_equal(cc_loop_add_io(loop, p[0], EPOLLIN, on_io_free_self, &st, &s, NULL), 0);
    write_byte(p[1]);
    assert_int_equal(cc_loop_run_once(loop, 0, NULL), 1);
    assert_int_equal(st.calls, 1);
    assert_null(s);
    assert_int_equal(cc_loop_run_once(loop, 0, NULL), 0); /* byte still there, source gone */

    /* A floating source freeing itself (the loop would otherwise own it). */
    assert_int_equal(cc_loop_add_io(loop, p[0], EPOLLIN, on_io_free_self, &st2, NULL, NULL), 0);
    assert_int_equal(cc_loop_run_once(loop, 0, NULL), 1);
    assert_int_equal(st2.calls, 1);
    assert_int_equal(cc_loop_run_once(loop, 0, NULL), 0);
    close(p[0]);
    close(p[1]);
}

typedef struct pair_state {
    cc_loop_source *src[2];
    int calls[2];
} pair_state;

static int
on_io_free_other(cc_loop_source *s, int fd, uint32_t revents, void *userdata)
{
    pair_state *ps = userdata;
    int me = s == ps->src[0] ? 0 : 1;
    assert_ptr_equal(s, ps->src[me]);
    ps->calls[me]++;
    /* The other one is ready in this same epoll batch: free it (and its fd) under its feet. */
    ps->src[!me] = cc_loop_source_free(ps->src[!me]);
    return 0;
}

static void
test_free_other_pending(void **state)
{
    _cleanup_(cc_loop_freep) cc_loop *loop = NULL;
    pair_state ps;
    memset(&ps, 0, sizeof(ps));
    int a[2], b[2];
    make_pipe(a);
    make_pipe(b);
    assert_int_equal(cc_loop_new(&loop, NULL), 0);
    assert_int_equal(cc_loop_add_io(loop, a[0], EPOLLIN, on_io_free_other, &ps, &ps.src[0], NULL),
                     0);
    assert_int_equal(cc_loop_add_io(loop, b[0], EPOLLIN, on_io_free_other, &ps, &ps.src[1], NULL),
                     0);
    cc_loop_source_set_io_fd_own(ps.src[0], true);
    cc_loop_source_set_io_fd_own(ps.src[1], true);
    write_byte(a[1]);
    write_byte(b[1]);
    assert_int_equal(cc_loop_run_once(loop, 0, NULL), 1);
    /* Exactly one ran; the other was freed while pending and never dispatched. */
    assert_int_equal(ps.calls[0] + ps.calls[1], 1);
    int survivor = ps.calls[0] ? 0 : 1;
    assert_non_null(ps.src[survivor]);
    assert_null(ps.src[!survivor]);
    ps.src[survivor] = cc_loop_source_free(ps.src[survivor]);
    close(a[1]);
    close(b[1]);
}

/* --- timers -------------------------------------------------------------------------------- */

typedef struct timer_state {
    int order[8];
    int n;
    int rearm; /* re-arm 1 ms later this many times */
    uint64_t last_deadline;
} timer_state;

static int
on_timer(cc_loop_source *s, uint64_t deadline, void *userdata)
{
    timer_state *ts = userdata;
    const char *d = cc_loop_source_get_description(s);
    assert_true(ts->n < (int)ELEMENTSOF(ts->order));
    ts->order[ts->n++] = d ? atoi(d) : 0;
    assert_true(deadline <= cc_loop_now());
    ts->last_deadline = deadline;
    if (ts->rearm > 0) {
        ts->rearm--;
        assert_int_equal(cc_loop_source_set_timer_relative(s, 1000, 0, NULL), 0);
    }
    return 0;
}

static void
test_timer_order(void **state)
{
    _cleanup_(cc_loop_freep) cc_loop *loop = NULL;
    timer_state ts = {0};
    static const uint64_t delays[] = {30000, 10000, 20000};
    assert_int_equal(cc_loop_new(&loop, NULL), 0);
    for (size_t i = 0; i < ELEMENTSOF(delays); i++) {
        cc_loop_source *s;
        char desc[8];
        assert_int_equal(cc_loop_add_timer(loop, delays[i], 0, on_timer, &ts, &s, NULL), 0);
        snprintf(desc, sizeof(desc), "%d", (int)(delays[i] / 10000));
        cc_loop_source_set_description(s, desc);
        cc_loop_source_set_floating(s, true); /* the loop frees it */
    }
    uint64_t start = cc_loop_now();
    for (int i = 0; i < 50 && ts.n < 3; i++)
        assert_true(cc_loop_run_once(loop, CC_LOOP_INFINITY, NULL) >= 0);
    assert_int_equal(ts.n, 3);
    assert_true(cc_loop_now() - start >= 29000);
    assert_int_equal(ts.order[0], 1);
    assert_int_equal(ts.order[1], 2);
    assert_int_equal(ts.order[2], 3);
}

static void
test_timer_same_batch_order(void **state)
{
    _cleanup_(cc_loop_freep) cc_loop *loop = NULL;
    cc_loop_source *s[3];
    timer_state ts = {0};
    assert_int_equal(cc_loop_new(&loop, NULL), 0);
    uint64_t now = cc_loop_now();
    /* All three are due already: they must still fire in deadline order, in one iteration. */
    static const uint64_t ago[] = {1000, 3000, 2000};
    for (int i = 0; i < 3; i++) {
        char desc[8];
        assert_int_equal(cc_loop_add_timer(loop, 3600000000u, 0, on_timer, &ts, &s[i], NULL), 0);
        assert_int_equal(cc_loop_source_set_timer(s[i], now - ago[i], 0, NULL), 0);
        snprintf(desc, sizeof(desc), "%d", (int)(ago[i] / 1000));
        cc_loop_source_set_description(s[i], desc);
    }
    assert_int_equal(cc_loop_run_once(loop, 0, NULL), 1);
    assert_int_equal(ts.n, 3);
    assert_int_equal(ts.order[0], 3);
    assert_int_equal(ts.order[1], 2);
    assert_int_equal(ts.order[2], 1);
    assert_int_equal(ts.last_deadline, now - 1000);
    for (int i = 0; i < 3; i++) {
        assert_false(cc_loop_source_get_enabled(s[i])); /* one-shot */
        s[i] = cc_loop_source_free(s[i]);
    }
}

static void
test_timer_rearm(void **state)
{
    _cleanup_(cc_loop_freep) cc_loop *loop = NULL;
    _cleanup_(cc_loop_source_freep) cc_loop_source *s = NULL;
    timer_state ts = {.rearm = 2};
    assert_int_equal(cc_loop_new(&loop, NULL), 0);
    assert_int_equal(cc_loop_add_timer(loop, 1000, 0, on_timer, &ts, &s, NULL), 0);
    /* Re-armed from its own handler twice: three calls, then it stays off. */
    for (int i = 0; i < 50 && ts.n < 3; i++)
        assert_true(cc_loop_run_once(loop, 100000, NULL) >= 0);
    assert_int_equal(ts.n, 3);
    assert_false(cc_loop_source_get_enabled(s));
    assert_int_equal(cc_loop_run_once(loop, 5000, NULL), 0);
    assert_int_equal(ts.n, 3);
    /* Enabling a fired one-shot timer fires it at once (its deadline passed). */
    assert_int_equal(cc_loop_source_set_enabled(s, true, NULL), 0);
    assert_int_equal(cc_loop_run_once(loop, 100000, NULL), 1);
    assert_int_equal(ts.n, 4);
    /* Re-armed from outside, in the future, then disabled: does not fire. */
    assert_int_equal(cc_loop_source_set_timer_relative(s, 2000, 0, NULL), 0);
    assert_int_equal(cc_loop_source_set_enabled(s, false, NULL), 0);
    assert_int_equal(cc_loop_run_once(loop, 10000, NULL), 0);
    assert_int_equal(ts.n, 4);
}

static void
test_timer_periodic(void **state)
{
    _cleanup_(cc_loop_freep) cc_loop *loop = NULL;
    _cleanup_(cc_loop_source_freep) cc_loop_source *s = NULL;
    _cleanup_error_ cc_error *err = NULL;
    timer_state ts = {0};
    assert_int_equal(cc_loop_new(&loop, NULL), 0);
    assert_int_equal(cc_loop_add_timer(loop, 1000, 2000, on_timer, &ts, &s, NULL), 0);
    for (int i = 0; i < 50 && ts.n < 4; i++)
        assert_true(cc_loop_run_once(loop, 100000, NULL) >= 0);
    assert_int_equal(ts.n, 4);
    assert_true(cc_loop_source_get_enabled(s));
    assert_int_equal(cc_loop_source_set_io_events(s, EPOLLIN, &err), -EINVAL); /* not io */
}

/* --- signals ------------------------------------------------------------------------------- */

typedef struct signal_state {
    int calls;
    uint32_t signo;
    uint32_t pid;
} signal_state;

static int
on_signal(cc_loop_source *s, const struct signalfd_siginfo *si, void *userdata)
{
    signal_state *ss = userdata;
    ss->calls++;
    ss->signo = si->ssi_signo;
    ss->pid = si->ssi_pid;
    return 0;
}

static void
test_signal(void **state)
{
    _cleanup_(cc_loop_freep) cc_loop *loop = NULL;
    _cleanup_(cc_loop_source_freep) cc_loop_source *s = NULL;
    _cleanup_error_ cc_error *err = NULL;
    signal_state ss = {0};
    const int sigs[] = {SIGUSR1};
    assert_int_equal(cc_loop_new(&loop, NULL), 0);

    /* Not blocked yet: refused. */
    assert_int_equal(cc_loop_add_signal(loop, SIGUSR2, on_signal, &ss, NULL, &err), -EINVAL);
    assert_non_null(strstr(cc_error_message(err), "not blocked"));
    assert_int_equal(cc_loop_add_signal(loop, 0, on_signal, &ss, NULL, NULL), -EINVAL);

    assert_int_equal(cc_loop_block_signals(sigs, ELEMENTSOF(sigs), NULL), 0);
    assert_int_equal(cc_loop_add_signal(loop, SIGUSR1, on_signal, &ss, &s, NULL), 0);
    assert_int_equal(cc_loop_add_signal(loop, SIGUSR1, on_signal, &ss, NULL, NULL), -EBUSY);
    assert_int_equal(raise(SIGUSR1), 0);
    assert_int_equal(cc_loop_run_once(loop, 1000000, NULL), 1);
    assert_int_equal(ss.calls, 1);
    assert_int_equal(ss.signo, SIGUSR1);
    assert_int_equal(ss.pid, getpid());

    /* Disabled: the signal stays pending and arrives once enabled again. */
    assert_int_equal(cc_loop_source_set_enabled(s, false, NULL), 0);
    assert_int_equal(raise(SIGUSR1), 0);
    assert_int_equal(cc_loop_run_once(loop, 0, NULL), 0);
    assert_int_equal(ss.calls, 1);
    assert_int_equal(cc_loop_source_set_enabled(s, true, NULL), 0);
    assert_int_equal(cc_loop_run_once(loop, 1000000, NULL), 1);
    assert_int_equal(ss.calls, 2);

    /* Freed: the signal can get a new source. */
    s = cc_loop_source_free(s);
    assert_int_equal(cc_loop_add_signal(loop, SIGUSR1, on_signal, &ss, &s, NULL), 0);
}

/* --- children ------------------------------------------------------------------------------ */

typedef struct child_state {
    bool done;
    siginfo_t si;
} child_state;

static int
on_child(cc_loop_source *s, const siginfo_t *si, void *userdata)
{
    child_state *cs = userdata;
    cs->done = true;
    cs->si = *si;
    return 0;
}

static pid_t
fork_exit(int status)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(status);
    return pid;
}

static void
test_child(void **state)
{
    _cleanup_(cc_loop_freep) cc_loop *loop = NULL;
    _cleanup_(cc_loop_source_freep) cc_loop_source *s = NULL;
    _cleanup_error_ cc_error *err = NULL;
    child_state cs = {0};
    assert_int_equal(cc_loop_new(&loop, NULL), 0);
    pid_t pid = fork_exit(7);
    assert_int_equal(cc_loop_add_child(loop, pid, on_child, &cs, &s, NULL), 0);
    assert_true(cc_loop_source_get_fd(s) >= 0);
    run_until(loop, &cs.done);
    assert_int_equal(cs.si.si_pid, pid);
    assert_int_equal(cs.si.si_code, CLD_EXITED);
    assert_int_equal(cs.si.si_status, 7);
    /* The loop reaped it. */
    assert_int_equal(waitpid(pid, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
    assert_false(cc_loop_source_get_enabled(s));
    assert_int_equal(cc_loop_source_set_enabled(s, true, &err), -ECHILD);
}

static void
test_child_reaped_elsewhere(void **state)
{
    _cleanup_(cc_loop_freep) cc_loop *loop = NULL;
    _cleanup_error_ cc_error *err = NULL;
    child_state cs = {0};
    assert_int_equal(cc_loop_new(&loop, NULL), 0);
    pid_t pid = fork_exit(3);
    assert_int_equal(cc_loop_add_child(loop, pid, on_child, &cs, NULL, NULL), 0);
    assert_int_equal(waitpid(pid, NULL, 0), pid);
    run_until(loop, &cs.done);
    assert_int_equal(cs.si.si_pid, pid);
    assert_int_equal(cs.si.si_code, 0);

    /* A reaped pid has no pidfd. */
    assert_int_equal(cc_loop_add_child(loop, pid, on_child, &cs, NULL, &err), -ESRCH);
    assert_non_null(strstr(cc_error_message(err), "pidfd_open"));
}

/* --- defer, post, exit --------------------------------------------------------------------- */

typedef struct count_state {
    int calls;
    int ret;
    int *order; /* shared log of ids, for ordering checks */
    int *n_order;
    int id;
    int exit_code; /* when non-zero, cc_loop_exit() with it */
} count_state;

static int
on_count(cc_loop_source *s, void *userdata)
{
    count_state *cs = userdata;
    cs->calls++;
    if (cs->order)
        cs->order[(*cs->n_order)++] = cs->id;
    if (cs->exit_code)
        cc_loop_exit(cc_loop_source_get_loop(s), cs->exit_code);
    return cs->ret;
}

static void
test_defer(void **state)
{
    _cleanup_(cc_loop_freep) cc_loop *loop = NULL;
    _cleanup_(cc_loop_source_freep) cc_loop_source *s = NULL;
    count_state cs = {0};
    assert_int_equal(cc_loop_new(&loop, NULL), 0);
    assert_int_equal(cc_loop_add_defer(loop, on_count, &cs, &s, NULL), 0);
    /* Once per iteration; and an enabled defer source keeps the loop from sleeping. */
    uint64_t start = cc_loop_now();
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(cc_loop_run_once(loop, CC_LOOP_INFINITY, NULL), 1);
        assert_int_equal(cs.calls, i);
    }
    assert_true(cc_loop_now() - start < 1000000);
    assert_int_equal(cc_loop_source_set_enabled(s, false, NULL), 0);
    assert_int_equal(cc_loop_run_once(loop, 0, NULL), 0);
    assert_int_equal(cs.calls, 3);
    /* A negative return disables it too. */
    cs.ret = -EAGAIN;
    assert_int_equal(cc_loop_source_set_enabled(s, true, NULL), 0);
    assert_int_equal(cc_loop_run_once(loop, 0, NULL), 1);
    assert_int_equal(cc_loop_run_once(loop, 0, NULL), 0);
    assert_int_equal(cs.calls, 4);
    assert_false(cc_loop_source_get_enabled(s));
}

static void
test_post_source(void **state)
{
    _cleanup_(cc_loop_freep) cc_loop *loop = NULL;
    count_state post = {0};
    io_state st = {0};
    int p[2];
    make_pipe(p);
    assert_int_equal(cc_loop_new(&loop, NULL), 0);
    assert_int_equal(cc_loop_add_post(loop, on_count, &post, NULL, NULL), 0);
    assert_int_equal(cc_loop_add_io(loop, p[0], EPOLLIN, on_io_read, &st, NULL, NULL), 0);
    /* Nothing dispatched: post sources stay quiet. */
    assert_int_equal(cc_loop_run_once(loop, 0, NULL), 0);
    assert_int_equal(post.calls, 0);
    write_byte(p[1]);
    assert_int_equal(cc_loop_run_once(loop, 0, NULL), 1);
    assert_int_equal(st.calls, 1);
    assert_int_equal(post.calls, 1);
    close(p[1]);
    cc_loop_free(TAKE_PTR(loop)); /* frees the floating sources before the fd goes */
    close(p[0]);
}

static void
test_exit(void **state)
{
    _cleanup_(cc_loop_freep) cc_loop *loop = NULL;
    int order[4], n = 0;
    count_state trigger = {.exit_code = 3};
    count_state late = {.exit_code = 9};
    count_state e1 = {.order = order, .n_order = &n, .id = 1};
    count_state e2 = {.order = order, .n_order = &n, .id = 2};
    assert_int_equal(cc_loop_new(&loop, NULL), 0);
    assert_int_equal(cc_loop_add_exit(loop, on_count, &e1, NULL, NULL), 0);
    assert_int_equal(cc_loop_add_exit(loop, on_count, &e2, NULL, NULL), 0);
    assert_int_equal(cc_loop_add_defer(loop, on_count, &trigger, NULL, NULL), 0);
    assert_int_equal(cc_loop_add_defer(loop, on_count, &late, NULL, NULL), 0);
    assert_int_equal(e1.calls, 0);
    /* The first code wins; exit sources run once, last added first. */
    assert_int_equal(cc_loop_run(loop, NULL), 3);
    assert_true(cc_loop_is_exiting(loop));
    assert_int_equal(trigger.calls, 1);
    assert_int_equal(late.calls, 1); /* the iteration still completes */
    assert_int_equal(n, 2);
    assert_int_equal(order[0], 2);
    assert_int_equal(order[1], 1);
    assert_int_equal(cc_loop_run_once(loop, 0, NULL), -ESTALE);
    assert_int_equal(cc_loop_run(loop, NULL), -ESTALE);
    assert_int_equal(e1.calls, 1);
}

static void
test_exit_before_run(void **state)
{
    _cleanup_(cc_loop_freep) cc_loop *loop = NULL;
    count_state e = {0}, d = {0};
    assert_int_equal(cc_loop_new(&loop, NULL), 0);
    assert_int_equal(cc_loop_add_exit(loop, on_count, &e, NULL, NULL), 0);
    assert_int_equal(cc_loop_add_defer(loop, on_count, &d, NULL, NULL), 0);
    cc_loop_exit(loop, 0);
    assert_int_equal(cc_loop_run(loop, NULL), 0);
    assert_int_equal(e.calls, 1);
    assert_int_equal(d.calls, 0); /* no iteration ran */
}

/* --- cross-thread post and wakeup -------------------------------------------------------- */

typedef struct thread_state {
    cc_loop *loop;
    pthread_t loop_thread;
    int seen[16];
    int n;
    bool ran_on_loop_thread;
    bool woke;
} thread_state;

typedef struct work_item {
    thread_state *ts;
    int id;
} work_item;

static void
on_work(cc_loop *loop, void *userdata)
{
    work_item *w = userdata;
    thread_state *ts = w->ts;
    assert_ptr_equal(loop, ts->loop);
    ts->ran_on_loop_thread = pthread_equal(pthread_self(), ts->loop_thread);
    ts->seen[ts->n++] = w->id;
    if (w->id == 9)
        cc_loop_exit(loop, 42);
}

static void *
poster_main(void *userdata)
{
    static work_item items[10];
    thread_state *ts = userdata;
    usleep(20000); /* let the loop block in epoll_wait first */
    for (int i = 0; i < 10; i++) {
        items[i] = (work_item){ts, i};
        if (cc_loop_post(ts->loop, on_work, &items[i]) < 0)
            return NULL;
    }
    return NULL;
}

static void
test_post_from_thread(void **state)
{
    _cleanup_(cc_loop_freep) cc_loop *loop = NULL;
    thread_state ts = {0};
    pthread_t t;
    assert_int_equal(cc_loop_new(&loop, NULL), 0);
    ts.loop = loop;
    ts.loop_thread = pthread_self();
    assert_int_equal(pthread_create(&t, NULL, poster_main, &ts), 0);
    /* Blocks without timeout: only the posts can wake it, and the last one exits. */
    assert_int_equal(cc_loop_run(loop, NULL), 42);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_true(ts.ran_on_loop_thread);
    assert_int_equal(ts.n, 10);
    for (int i = 0; i < 10; i++)
        assert_int_equal(ts.seen[i], i); /* FIFO */
    /* Finished: further posts are refused. */
    work_item w = {&ts, 0};
    assert_int_equal(cc_loop_post(loop, on_work, &w), -ESHUTDOWN);
}

static void *
waker_main(void *userdata)
{
    usleep(20000);
    (void)cc_loop_wakeup(userdata);
    return NULL;
}

static void
test_wakeup_from_thread(void **state)
{
    _cleanup_(cc_loop_freep) cc_loop *loop = NULL;
    pthread_t t;
    assert_int_equal(cc_loop_new(&loop, NULL), 0);
    assert_int_equal(pthread_create(&t, NULL, waker_main, loop), 0);
    assert_int_equal(cc_loop_run_once(loop, CC_LOOP_INFINITY, NULL), 0); /* returns: woken */
    assert_int_equal(pthread_join(t, NULL), 0);
}

static void
test_posted_work_runs_at_exit(void **state)
{
    _cleanup_(cc_loop_freep) cc_loop *loop = NULL;
    thread_state ts = {.loop_thread = pthread_self()};
    work_item w = {&ts, 5};
    assert_int_equal(cc_loop_new(&loop, NULL), 0);
    ts.loop = loop;
    assert_int_equal(cc_loop_post(loop, on_work, &w), 0);
    cc_loop_exit(loop, 1);
    assert_int_equal(cc_loop_run(loop, NULL), 1);
    assert_int_equal(ts.n, 1);
    assert_int_equal(ts.seen[0], 5);
}

/* --- misuse and ownership ------------------------------------------------------------------ */

static int
on_io_nested(cc_loop_source *s, int fd, uint32_t revents, void *userdata)
{
    io_state *st = userdata;
    _cleanup_error_ cc_error *err = NULL;
    st->calls++;
    st->ret = cc_loop_run_once(cc_loop_source_get_loop(s), 0, &err);
    return 0;
}

static void
test_nested_run_refused(void **state)
{
    _cleanup_(cc_loop_freep) cc_loop *loop = NULL;
    cc_loop_source *s = NULL;
    io_state st = {0};
    int p[2];
    make_pipe(p);
    assert_int_equal(cc_loop_new(&loop, NULL), 0);
    assert_int_equal(cc_loop_add_io(loop, p[1], EPOLLOUT, on_io_nested, &st, &s, NULL), 0);
    cc_loop_source_set_io_fd_own(s, true);
    cc_loop_source_set_floating(s, true);
    assert_int_equal(cc_loop_run_once(loop, 0, NULL), 1);
    assert_int_equal(st.calls, 1);
    assert_int_equal(st.ret, -EBUSY);
    close(p[0]);
}

static void
test_detached_source(void **state)
{
    cc_loop *loop = NULL;
    cc_loop_source *s = NULL;
    _cleanup_error_ cc_error *err = NULL;
    count_state cs = {0};
    assert_int_equal(cc_loop_new(&loop, NULL), 0);
    assert_int_equal(cc_loop_add_defer(loop, on_count, &cs, &s, NULL), 0);
    cc_loop_source_set_description(s, "orphan");
    loop = cc_loop_free(loop);
    assert_null(cc_loop_source_get_loop(s));
    assert_int_equal(cc_loop_source_set_enabled(s, false, &err), -ESTALE);
    assert_non_null(strstr(cc_error_message(err), "orphan"));
    s = cc_loop_source_free(s);
    assert_int_equal(cs.calls, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_free),
        cmocka_unit_test(test_run_once_timeout),
        cmocka_unit_test(test_io_pipe),
        cmocka_unit_test(test_io_events_and_errors),
        cmocka_unit_test(test_io_fd_own),
        cmocka_unit_test(test_handler_error_disables),
        cmocka_unit_test(test_free_self_in_handler),
        cmocka_unit_test(test_free_other_pending),
        cmocka_unit_test(test_timer_order),
        cmocka_unit_test(test_timer_same_batch_order),
        cmocka_unit_test(test_timer_rearm),
        cmocka_unit_test(test_timer_periodic),
        cmocka_unit_test(test_signal),
        cmocka_unit_test(test_child),
        cmocka_unit_test(test_child_reaped_elsewhere),
        cmocka_unit_test(test_defer),
        cmocka_unit_test(test_post_source),
        cmocka_unit_test(test_exit),
        cmocka_unit_test(test_exit_before_run),
        cmocka_unit_test(test_post_from_thread),
        cmocka_unit_test(test_wakeup_from_thread),
        cmocka_unit_test(test_posted_work_runs_at_exit),
        cmocka_unit_test(test_nested_run_refused),
        cmocka_unit_test(test_detached_source),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
