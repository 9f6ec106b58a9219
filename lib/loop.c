/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The event loop. Kernel objects: one epoll fd; one signalfd whose mask is the set of
 * enabled signal sources; one timerfd armed at the earliest enabled timer deadline (timers
 * live on a plain list: a process has a handful); one eventfd for cc_loop_post() and
 * cc_loop_wakeup(); one pidfd per child source; the caller's fd per io source.
 *
 * Lifetime: a source freed while the loop is dispatching is unlinked and disarmed at once
 * but its memory is only released by gc() at the end of the iteration, so pointers held in
 * the current epoll batch or in a dispatch snapshot stay valid; dispatch skips dead ones.
 */
#define _GNU_SOURCE
#include "loop.h"

#include "util.h"

#include <assert.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>

#define LOOP_MAX_EVENTS 64
#define LOOP_MAX_SIGNALS 64 /* signalfd reads per iteration, so signals cannot starve io */
#define IO_EVENTS_ALLOWED                                                                          \
    (EPOLLIN | EPOLLOUT | EPOLLPRI | EPOLLRDHUP | EPOLLET | EPOLLERR | EPOLLHUP)

typedef enum source_kind {
    SOURCE_IO,
    SOURCE_SIGNAL,
    SOURCE_TIMER,
    SOURCE_CHILD,
    SOURCE_DEFER,
    SOURCE_POST,
    SOURCE_EXIT,
    _SOURCE_KIND_MAX,
    _SOURCE_KIND_INVALID = -EINVAL,
} source_kind;

struct cc_loop_source {
    cc_loop *loop; /* NULL once detached by cc_loop_free() */
    source_kind kind;
    bool enabled;
    bool floating;
    bool dead;     /* freed; memory waits for gc() */
    bool in_epoll; /* io and child: registered with the epoll fd */
    uint64_t seq;  /* creation order, to break ties */
    char *description;
    void *userdata;
    cc_loop_source *prev, *next; /* the loop's list for this kind */
    cc_loop_source *gc_next;
    union {
        cc_loop_io_fn io;
        cc_loop_signal_fn signal;
        cc_loop_timer_fn timer;
        cc_loop_child_fn child;
        cc_loop_handler_fn handler;
    } fn;
    int fd;                      /* io: the watched fd; child: the pidfd; else -EBADF */
    bool fd_own;                 /* close fd with the source (always for child) */
    uint32_t events;             /* io */
    int signo;                   /* signal */
    uint64_t deadline, interval; /* timer; deadline >= 1 */
    pid_t pid;                   /* child */
    bool reaped;                 /* child */
};

typedef struct loop_work loop_work;
struct loop_work {
    loop_work *next;
    cc_loop_work_fn fn;
    void *userdata;
};

struct cc_loop {
    int epoll_fd;
    int signal_fd;
    int timer_fd;
    int event_fd;
    cc_loop_source *head[_SOURCE_KIND_MAX];
    cc_loop_source *tail[_SOURCE_KIND_MAX];
    cc_loop_source *signals[_NSIG];
    cc_loop_source *gc;
    cc_loop_source **scratch; /* dispatch snapshot */
    size_t n_scratch;
    uint64_t next_seq;
    uint64_t timer_armed; /* deadline the timerfd is armed at; UINT64_MAX: disarmed, 0: stale */
    unsigned n_dispatched;
    bool dispatching;
    bool exiting;
    bool finished;
    int exit_code;
    /* The only state other threads touch (with event_fd). */
    pthread_mutex_t work_lock;
    loop_work *work_head;
    loop_work **work_tail;
    bool work_closed;
};

uint64_t
cc_loop_now(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int
cc_loop_block_signals(const int *signals, size_t n, cc_error **err)
{
    sigset_t set;
    sigemptyset(&set);
    for (size_t i = 0; i < n; i++)
        if (sigaddset(&set, signals[i]) < 0)
            return cc_error_set(err, -EINVAL, "block signal %d", signals[i]);
    int r = pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (r != 0)
        return cc_error_set(err, -r, "pthread_sigmask");
    return 0;
}

static int
epoll_add(cc_loop *loop, int fd, uint32_t events, void *ptr, cc_error **err)
{
    struct epoll_event ev = {.events = events, .data.ptr = ptr};
    if (epoll_ctl(loop->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0)
        return cc_error_set(err, -errno, "epoll_ctl(EPOLL_CTL_ADD, %d)", fd);
    return 0;
}

static int
loop_open_fds(cc_loop *loop, cc_error **err)
{
    sigset_t empty;
    sigemptyset(&empty);

    loop->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epoll_fd < 0)
        return cc_error_set(err, -errno, "epoll_create1");
    loop->signal_fd = signalfd(-1, &empty, SFD_CLOEXEC | SFD_NONBLOCK);
    if (loop->signal_fd < 0)
        return cc_error_set(err, -errno, "signalfd");
    loop->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (loop->timer_fd < 0)
        return cc_error_set(err, -errno, "timerfd_create");
    loop->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (loop->event_fd < 0)
        return cc_error_set(err, -errno, "eventfd");
    /* The internal fds are told apart from sources by the address of their field. */
    int r = epoll_add(loop, loop->signal_fd, EPOLLIN, &loop->signal_fd, err);
    if (r >= 0)
        r = epoll_add(loop, loop->timer_fd, EPOLLIN, &loop->timer_fd, err);
    if (r >= 0)
        r = epoll_add(loop, loop->event_fd, EPOLLIN, &loop->event_fd, err);
    return r;
}

int
cc_loop_new(cc_loop **ret, cc_error **err)
{
    _cleanup_(cc_loop_freep) cc_loop *loop = cc_xzalloc(sizeof(*loop));
    loop->epoll_fd = loop->signal_fd = loop->timer_fd = loop->event_fd = -EBADF;
    loop->timer_armed = UINT64_MAX;
    loop->work_tail = &loop->work_head;
    int r = pthread_mutex_init(&loop->work_lock, NULL);
    if (r != 0) {
        free(TAKE_PTR(loop));
        return cc_error_set(err, -r, "pthread_mutex_init");
    }
    r = loop_open_fds(loop, err);
    if (r < 0)
        return cc_error_prefix(err, r, "create event loop");
    *ret = TAKE_PTR(loop);
    return 0;
}

static void
list_append(cc_loop *loop, cc_loop_source *s)
{
    s->prev = loop->tail[s->kind];
    s->next = NULL;
    if (s->prev)
        s->prev->next = s;
    else
        loop->head[s->kind] = s;
    loop->tail[s->kind] = s;
}

static void
list_remove(cc_loop *loop, cc_loop_source *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        loop->head[s->kind] = s->next;
    if (s->next)
        s->next->prev = s->prev;
    else
        loop->tail[s->kind] = s->prev;
    s->prev = s->next = NULL;
}

/* Releases what the source itself owns; the loop side must already be torn down. */
static void
source_release(cc_loop_source *s)
{
    if (s->fd_own)
        s->fd = cc_close(s->fd);
    free(s->description);
    free(s);
}

static void
gc(cc_loop *loop)
{
    while (loop->gc) {
        cc_loop_source *s = loop->gc;
        loop->gc = s->gc_next;
        source_release(s);
    }
}

cc_loop *
cc_loop_free(cc_loop *loop)
{
    if (!loop)
        return NULL;
    assert(!loop->dispatching);
    for (int k = 0; k < _SOURCE_KIND_MAX; k++) {
        cc_loop_source *next;
        for (cc_loop_source *s = loop->head[k]; s; s = next) {
            next = s->next;
            if (s->floating) {
                source_release(s);
                continue;
            }
            s->loop = NULL; /* detached: the owner frees it */
            s->prev = s->next = NULL;
            s->in_epoll = false;
        }
        loop->head[k] = loop->tail[k] = NULL;
    }
    gc(loop);
    while (loop->work_head) {
        loop_work *w = loop->work_head;
        loop->work_head = w->next;
        free(w);
    }
    cc_close(loop->epoll_fd);
    cc_close(loop->signal_fd);
    cc_close(loop->timer_fd);
    cc_close(loop->event_fd);
    (void)pthread_mutex_destroy(&loop->work_lock);
    free(loop->scratch);
    free(loop);
    return NULL;
}

/* --- arming ------------------------------------------------------------------------------- */

static int
update_sigmask(cc_loop *loop, cc_error **err)
{
    sigset_t mask;
    sigemptyset(&mask);
    for (int sig = 1; sig < _NSIG; sig++)
        if (loop->signals[sig] && loop->signals[sig]->enabled)
            sigaddset(&mask, sig);
    if (signalfd(loop->signal_fd, &mask, SFD_CLOEXEC | SFD_NONBLOCK) < 0)
        return cc_error_set(err, -errno, "signalfd");
    return 0;
}

/* Registers an enabled source with the kernel. */
static int
source_arm(cc_loop_source *s, cc_error **err)
{
    switch (s->kind) {
    case SOURCE_IO:
    case SOURCE_CHILD: {
        uint32_t events = s->kind == SOURCE_IO ? s->events : EPOLLIN;
        int r = epoll_add(s->loop, s->fd, events, s, err);
        if (r < 0)
            return r;
        s->in_epoll = true;
        return 0;
    }
    case SOURCE_SIGNAL:
        return update_sigmask(s->loop, err);
    default:
        return 0; /* timers are armed before each poll; the rest need no kernel object */
    }
}

static void
source_disarm(cc_loop_source *s)
{
    if (s->in_epoll) {
        /* Fails harmlessly when the caller already closed the fd. */
        (void)epoll_ctl(s->loop->epoll_fd, EPOLL_CTL_DEL, s->fd, NULL);
        s->in_epoll = false;
    }
    if (s->kind == SOURCE_SIGNAL)
        (void)update_sigmask(s->loop, NULL); /* shrinking the mask cannot fail */
}

static int
source_check(const cc_loop_source *s, source_kind kind, cc_error **err)
{
    if (kind != _SOURCE_KIND_INVALID && s->kind != kind)
        return cc_error_msg(err, -EINVAL, "event source '%s' has the wrong type",
                            s->description ?: "?");
    if (!s->loop)
        return cc_error_msg(err, -ESTALE, "event source '%s' outlived its loop",
                            s->description ?: "?");
    return 0;
}

int
cc_loop_source_set_enabled(cc_loop_source *s, bool enabled, cc_error **err)
{
    int r = source_check(s, _SOURCE_KIND_INVALID, err);
    if (r < 0)
        return r;
    assert(!s->dead);
    if (s->enabled == enabled)
        return 0;
    if (!enabled) {
        s->enabled = false;
        source_disarm(s);
        return 0;
    }
    if (s->kind == SOURCE_CHILD && s->reaped)
        return cc_error_msg(err, -ECHILD, "child %d was already reaped", (int)s->pid);
    s->enabled = true;
    r = source_arm(s, err);
    if (r < 0) {
        s->enabled = false;
        source_disarm(s);
    }
    return r;
}

bool
cc_loop_source_get_enabled(const cc_loop_source *s)
{
    return s->enabled;
}

cc_loop_source *
cc_loop_source_free(cc_loop_source *s)
{
    if (!s)
        return NULL;
    assert(!s->dead);
    cc_loop *loop = s->loop;
    if (!loop) {
        source_release(s);
        return NULL;
    }
    if (s->kind == SOURCE_SIGNAL)
        loop->signals[s->signo] = NULL;
    s->enabled = false;
    source_disarm(s);
    list_remove(loop, s);
    s->dead = true;
    if (s->fd_own)
        s->fd = cc_close(s->fd); /* at once, as documented; only the memory may wait */
    if (loop->dispatching) {
        s->gc_next = loop->gc;
        loop->gc = s;
    } else {
        source_release(s);
    }
    return NULL;
}

/* --- adding sources ------------------------------------------------------------------------- */

static cc_loop_source *
source_new(cc_loop *loop, source_kind kind, void *userdata)
{
    cc_loop_source *s = cc_xzalloc(sizeof(*s));
    s->loop = loop;
    s->kind = kind;
    s->userdata = userdata;
    s->seq = loop->next_seq++;
    s->fd = -EBADF;
    return s;
}

/* Links s into its loop, enables it and hands it out; frees it on failure. */
static int
source_attach(cc_loop_source *s, cc_loop_source **ret, cc_error **err)
{
    list_append(s->loop, s);
    if (s->kind == SOURCE_SIGNAL)
        s->loop->signals[s->signo] = s;
    s->enabled = true;
    int r = source_arm(s, err);
    if (r < 0) {
        cc_loop_source_free(s);
        return r;
    }
    s->floating = !ret;
    if (ret)
        *ret = s;
    return 0;
}

static int
check_io_events(uint32_t events, cc_error **err)
{
    if (events & ~(uint32_t)IO_EVENTS_ALLOWED)
        return cc_error_msg(err, -EINVAL, "unsupported epoll events 0x%x", (unsigned)events);
    return 0;
}

int
cc_loop_add_io(cc_loop *loop, int fd, uint32_t events, cc_loop_io_fn fn, void *userdata,
               cc_loop_source **ret, cc_error **err)
{
    assert(fn);
    if (fd < 0)
        return cc_error_msg(err, -EINVAL, "add io source: invalid fd %d", fd);
    int r = check_io_events(events, err);
    if (r < 0)
        return cc_error_prefix(err, r, "add io source for fd %d", fd);
    cc_loop_source *s = source_new(loop, SOURCE_IO, userdata);
    s->fn.io = fn;
    s->fd = fd;
    s->events = events;
    return source_attach(s, ret, err);
}

int
cc_loop_add_signal(cc_loop *loop, int signo, cc_loop_signal_fn fn, void *userdata,
                   cc_loop_source **ret, cc_error **err)
{
    assert(fn);
    if (signo <= 0 || signo >= _NSIG)
        return cc_error_msg(err, -EINVAL, "add signal source: invalid signal %d", signo);
    if (loop->signals[signo])
        return cc_error_msg(err, -EBUSY, "add signal source: signal %d already has one", signo);
    sigset_t blocked;
    if (pthread_sigmask(SIG_BLOCK, NULL, &blocked) != 0 || !sigismember(&blocked, signo))
        return cc_error_msg(err, -EINVAL, "add signal source: signal %d is not blocked", signo);
    cc_loop_source *s = source_new(loop, SOURCE_SIGNAL, userdata);
    s->fn.signal = fn;
    s->signo = signo;
    return source_attach(s, ret, err);
}

static uint64_t
add_saturating(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

int
cc_loop_add_timer(cc_loop *loop, uint64_t usec, uint64_t interval_usec, cc_loop_timer_fn fn,
                  void *userdata, cc_loop_source **ret, cc_error **err)
{
    assert(fn);
    cc_loop_source *s = source_new(loop, SOURCE_TIMER, userdata);
    s->fn.timer = fn;
    s->deadline = add_saturating(cc_loop_now(), usec);
    s->interval = interval_usec;
    return source_attach(s, ret, err);
}

int
cc_loop_add_child(cc_loop *loop, pid_t pid, cc_loop_child_fn fn, void *userdata,
                  cc_loop_source **ret, cc_error **err)
{
    assert(fn);
    if (pid <= 0)
        return cc_error_msg(err, -EINVAL, "add child source: invalid pid %d", (int)pid);
    /* pidfds are always close-on-exec. */
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pidfd < 0)
        return cc_error_set(err, -errno, "pidfd_open %d", (int)pid);
    cc_loop_source *s = source_new(loop, SOURCE_CHILD, userdata);
    s->fn.child = fn;
    s->pid = pid;
    s->fd = pidfd;
    s->fd_own = true;
    return source_attach(s, ret, err);
}

static int
add_handler(cc_loop *loop, source_kind kind, cc_loop_handler_fn fn, void *userdata,
            cc_loop_source **ret, cc_error **err)
{
    assert(fn);
    cc_loop_source *s = source_new(loop, kind, userdata);
    s->fn.handler = fn;
    return source_attach(s, ret, err);
}

int
cc_loop_add_defer(cc_loop *loop, cc_loop_handler_fn fn, void *userdata, cc_loop_source **ret,
                  cc_error **err)
{
    return add_handler(loop, SOURCE_DEFER, fn, userdata, ret, err);
}

int
cc_loop_add_post(cc_loop *loop, cc_loop_handler_fn fn, void *userdata, cc_loop_source **ret,
                 cc_error **err)
{
    return add_handler(loop, SOURCE_POST, fn, userdata, ret, err);
}

int
cc_loop_add_exit(cc_loop *loop, cc_loop_handler_fn fn, void *userdata, cc_loop_source **ret,
                 cc_error **err)
{
    return add_handler(loop, SOURCE_EXIT, fn, userdata, ret, err);
}

/* --- source properties ----------------------------------------------------------------------- */

void
cc_loop_source_set_floating(cc_loop_source *s, bool floating)
{
    s->floating = floating;
}

int
cc_loop_source_set_io_events(cc_loop_source *s, uint32_t events, cc_error **err)
{
    int r = source_check(s, SOURCE_IO, err);
    if (r < 0)
        return r;
    r = check_io_events(events, err);
    if (r < 0)
        return r;
    if (s->in_epoll && events != s->events) {
        struct epoll_event ev = {.events = events, .data.ptr = s};
        if (epoll_ctl(s->loop->epoll_fd, EPOLL_CTL_MOD, s->fd, &ev) < 0)
            return cc_error_set(err, -errno, "epoll_ctl(EPOLL_CTL_MOD, %d)", s->fd);
    }
    s->events = events;
    return 0;
}

void
cc_loop_source_set_io_fd_own(cc_loop_source *s, bool own)
{
    assert(s->kind == SOURCE_IO);
    s->fd_own = own;
}

int
cc_loop_source_get_fd(const cc_loop_source *s)
{
    return s->fd;
}

int
cc_loop_source_set_timer(cc_loop_source *s, uint64_t deadline_usec, uint64_t interval_usec,
                         cc_error **err)
{
    int r = source_check(s, SOURCE_TIMER, err);
    if (r < 0)
        return r;
    s->deadline = deadline_usec ? deadline_usec : 1; /* 1: long past, like 0 */
    s->interval = interval_usec;
    return cc_loop_source_set_enabled(s, true, err);
}

int
cc_loop_source_set_timer_relative(cc_loop_source *s, uint64_t usec, uint64_t interval_usec,
                                  cc_error **err)
{
    return cc_loop_source_set_timer(s, add_saturating(cc_loop_now(), usec), interval_usec, err);
}

void
cc_loop_source_set_description(cc_loop_source *s, const char *desc)
{
    free(s->description);
    s->description = desc ? cc_xstrdup(desc) : NULL;
}

const char *
cc_loop_source_get_description(const cc_loop_source *s)
{
    return s->description;
}

void *
cc_loop_source_get_userdata(const cc_loop_source *s)
{
    return s->userdata;
}

void
cc_loop_source_set_userdata(cc_loop_source *s, void *userdata)
{
    s->userdata = userdata;
}

cc_loop *
cc_loop_source_get_loop(const cc_loop_source *s)
{
    return s->loop;
}

/* --- dispatch ------------------------------------------------------------------------------ */

static bool
source_ready(const cc_loop_source *s)
{
    return !s->dead && s->enabled;
}

/* Applies the documented policy to a handler's return value. */
static void
source_handled(cc_loop_source *s, int r)
{
    if (r < 0 && !s->dead && s->kind != SOURCE_EXIT)
        (void)cc_loop_source_set_enabled(s, false, NULL);
}

static void
scratch_push(cc_loop *loop, size_t *n, cc_loop_source *s)
{
    if (*n == loop->n_scratch) {
        loop->n_scratch = loop->n_scratch ? loop->n_scratch * 2 : 16;
        loop->scratch = cc_xreallocarray(loop->scratch, loop->n_scratch, sizeof(*loop->scratch));
    }
    loop->scratch[(*n)++] = s;
}

/* Snapshots the ready sources of kind, so handlers may add and free sources meanwhile. */
static size_t
snapshot(cc_loop *loop, source_kind kind)
{
    size_t n = 0;
    for (cc_loop_source *s = loop->head[kind]; s; s = s->next)
        if (source_ready(s))
            scratch_push(loop, &n, s);
    return n;
}

/* Runs every ready defer, post or exit source once. */
static void
dispatch_handlers(cc_loop *loop, source_kind kind, bool reverse)
{
    size_t n = snapshot(loop, kind);
    for (size_t i = 0; i < n; i++) {
        cc_loop_source *s = loop->scratch[reverse ? n - 1 - i : i];
        if (!source_ready(s))
            continue;
        loop->n_dispatched++;
        source_handled(s, s->fn.handler(s, s->userdata));
    }
}

static int
dispatch_signals(cc_loop *loop, cc_error **err)
{
    for (unsigned i = 0; i < LOOP_MAX_SIGNALS; i++) {
        struct signalfd_siginfo si;
        ssize_t l = read(loop->signal_fd, &si, sizeof(si));
        if (l < 0 && errno == EINTR)
            continue;
        if (l < 0 && errno == EAGAIN)
            return 0;
        if (l < 0)
            return cc_error_set(err, -errno, "read signalfd");
        if ((size_t)l != sizeof(si))
            return cc_error_msg(err, -EIO, "read signalfd: short read");
        /* The mask only holds enabled sources' signals; others stay pending in the kernel. */
        cc_loop_source *s = si.ssi_signo < _NSIG ? loop->signals[si.ssi_signo] : NULL;
        if (!s || !source_ready(s))
            continue;
        loop->n_dispatched++;
        source_handled(s, s->fn.signal(s, &si, s->userdata));
    }
    return 0;
}

static void
dispatch_child(cc_loop_source *s)
{
    siginfo_t si;
    int r;
    memset(&si, 0, sizeof(si));
    do
        r = waitid((idtype_t)P_PIDFD, (id_t)s->fd, &si, WEXITED | WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r < 0) {
        /* Reaped by somebody else (ECHILD): report it without a status. */
        memset(&si, 0, sizeof(si));
        si.si_signo = SIGCHLD;
        si.si_pid = s->pid;
    } else if (si.si_pid == 0) {
        return; /* not exited after all */
    }
    s->reaped = true;
    (void)cc_loop_source_set_enabled(s, false, NULL);
    s->loop->n_dispatched++;
    source_handled(s, s->fn.child(s, &si, s->userdata));
}

/* io and child sources of one kind, in the order epoll reported them. */
static void
dispatch_fds(cc_loop *loop, const struct epoll_event *events, int n, source_kind kind)
{
    for (int i = 0; i < n; i++) {
        void *p = events[i].data.ptr;
        if (p == &loop->signal_fd || p == &loop->timer_fd || p == &loop->event_fd)
            continue;
        cc_loop_source *s = p;
        if (s->kind != kind || !source_ready(s))
            continue;
        if (kind == SOURCE_CHILD) {
            dispatch_child(s);
            continue;
        }
        /* The handler of an earlier event may have changed the watched set. */
        uint32_t revents = events[i].events & (s->events | EPOLLERR | EPOLLHUP);
        if (!revents)
            continue;
        loop->n_dispatched++;
        source_handled(s, s->fn.io(s, s->fd, revents, s->userdata));
    }
}

static int
timer_cmp(const void *a, const void *b)
{
    const cc_loop_source *x = *(cc_loop_source *const *)a, *y = *(cc_loop_source *const *)b;
    if (x->deadline != y->deadline)
        return x->deadline < y->deadline ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void
dispatch_timers(cc_loop *loop)
{
    uint64_t now = cc_loop_now();
    size_t n = 0;
    for (cc_loop_source *s = loop->head[SOURCE_TIMER]; s; s = s->next)
        if (source_ready(s) && s->deadline <= now)
            scratch_push(loop, &n, s);
    if (n > 1)
        qsort(loop->scratch, n, sizeof(*loop->scratch), timer_cmp);
    for (size_t i = 0; i < n; i++) {
        cc_loop_source *s = loop->scratch[i];
        /* An earlier handler may have freed, disabled or re-armed it. */
        if (!source_ready(s) || s->deadline > now)
            continue;
        uint64_t deadline = s->deadline;
        if (s->interval > 0) {
            uint64_t periods = (now - deadline) / s->interval + 1;
            uint64_t step = periods > UINT64_MAX / s->interval ? UINT64_MAX : periods * s->interval;
            s->deadline = add_saturating(deadline, step);
        } else {
            s->enabled = false; /* one-shot; set_timer*() enables it again */
        }
        loop->n_dispatched++;
        source_handled(s, s->fn.timer(s, deadline, s->userdata));
    }
}

/* Points the timerfd at the earliest enabled deadline, when that changed. */
static int
timer_arm(cc_loop *loop, cc_error **err)
{
    uint64_t next = UINT64_MAX;
    for (cc_loop_source *s = loop->head[SOURCE_TIMER]; s; s = s->next)
        if (s->enabled && s->deadline < next)
            next = s->deadline;
    if (next == loop->timer_armed)
        return 0;
    struct itimerspec its = {0};
    if (next != UINT64_MAX) {
        its.it_value.tv_sec = (time_t)(next / 1000000u);
        its.it_value.tv_nsec = (long)(next % 1000000u) * 1000;
    }
    if (timerfd_settime(loop->timer_fd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
        return cc_error_set(err, -errno, "timerfd_settime");
    loop->timer_armed = next;
    return 0;
}

/* Drains an internal counter fd (eventfd, timerfd); it is non-blocking. */
static void
drain_fd(int fd)
{
    uint64_t value;
    while (read(fd, &value, sizeof(value)) < 0 && errno == EINTR)
        ;
}

static loop_work *
work_take(cc_loop *loop, bool final)
{
    pthread_mutex_lock(&loop->work_lock);
    loop_work *w = loop->work_head;
    loop->work_head = NULL;
    loop->work_tail = &loop->work_head;
    if (final)
        loop->work_closed = true;
    pthread_mutex_unlock(&loop->work_lock);
    return w;
}

/* Runs the work queued so far; final: refuse more (the exit phase). */
static void
dispatch_work(cc_loop *loop, bool final)
{
    loop_work *w = work_take(loop, final);
    while (w) {
        loop_work *next = w->next;
        cc_loop_work_fn fn = w->fn;
        void *userdata = w->userdata;
        free(w);
        loop->n_dispatched++;
        fn(loop, userdata);
        w = next;
    }
}

static int
usec_to_ms(uint64_t usec)
{
    if (usec == CC_LOOP_INFINITY)
        return -1;
    if (usec >= (uint64_t)INT_MAX * 1000u)
        return INT_MAX;
    return (int)((usec + 999u) / 1000u);
}

static int
iterate(cc_loop *loop, uint64_t timeout_usec, cc_error **err)
{
    struct epoll_event events[LOOP_MAX_EVENTS];

    dispatch_handlers(loop, SOURCE_DEFER, false);
    bool busy = loop->exiting;
    for (cc_loop_source *s = loop->head[SOURCE_DEFER]; s && !busy; s = s->next)
        busy = s->enabled;
    int r = timer_arm(loop, err);
    if (r < 0)
        return r;

    int n =
        epoll_wait(loop->epoll_fd, events, LOOP_MAX_EVENTS, busy ? 0 : usec_to_ms(timeout_usec));
    if (n < 0 && errno != EINTR)
        return cc_error_set(err, -errno, "epoll_wait");
    n = n < 0 ? 0 : n; /* EINTR: nothing ready, but timers may be due */
    bool signals = false, timer = false, work = false;
    for (int i = 0; i < n; i++) {
        signals |= events[i].data.ptr == &loop->signal_fd;
        timer |= events[i].data.ptr == &loop->timer_fd;
        work |= events[i].data.ptr == &loop->event_fd;
    }

    if (signals) {
        r = dispatch_signals(loop, err);
        if (r < 0)
            return r;
    }
    dispatch_fds(loop, events, n, SOURCE_IO);
    dispatch_fds(loop, events, n, SOURCE_CHILD);
    if (timer) {
        drain_fd(loop->timer_fd);
        loop->timer_armed = 0; /* expired: re-arm even at the same deadline */
    }
    dispatch_timers(loop);
    if (work) {
        drain_fd(loop->event_fd);
        dispatch_work(loop, false);
    }
    if (loop->n_dispatched > 0)
        dispatch_handlers(loop, SOURCE_POST, false);
    return 0;
}

int
cc_loop_run_once(cc_loop *loop, uint64_t timeout_usec, cc_error **err)
{
    if (loop->dispatching)
        return cc_error_msg(err, -EBUSY, "run event loop: called from inside a handler");
    if (loop->finished)
        return cc_error_msg(err, -ESTALE, "run event loop: it has finished");
    loop->dispatching = true;
    loop->n_dispatched = 0;
    int r = 0;
    if (!loop->exiting)
        r = iterate(loop, timeout_usec, err);
    if (r >= 0 && loop->exiting) {
        /* Exit phase: run what was posted so far, refuse the rest, then exit sources. */
        dispatch_work(loop, true);
        dispatch_handlers(loop, SOURCE_EXIT, true);
        loop->finished = true;
    }
    loop->dispatching = false;
    gc(loop);
    if (r < 0)
        return cc_error_prefix(err, r, "run event loop");
    return loop->n_dispatched > 0;
}

int
cc_loop_run(cc_loop *loop, cc_error **err)
{
    do {
        int r = cc_loop_run_once(loop, CC_LOOP_INFINITY, err);
        if (r < 0)
            return r;
    } while (!loop->finished);
    return loop->exit_code;
}

void
cc_loop_exit(cc_loop *loop, int code)
{
    if (loop->exiting)
        return;
    loop->exiting = true;
    loop->exit_code = code;
}

bool
cc_loop_is_exiting(const cc_loop *loop)
{
    return loop->exiting;
}

int
cc_loop_wakeup(cc_loop *loop)
{
    uint64_t one = 1;
    ssize_t l;
    do
        l = write(loop->event_fd, &one, sizeof(one));
    while (l < 0 && errno == EINTR);
    /* EAGAIN: the counter is saturated, so the loop is woken already. */
    if (l < 0 && errno != EAGAIN)
        return -errno;
    return 0;
}

int
cc_loop_post(cc_loop *loop, cc_loop_work_fn fn, void *userdata)
{
    assert(fn);
    loop_work *w = cc_xmalloc(sizeof(*w));
    *w = (loop_work){.fn = fn, .userdata = userdata};
    pthread_mutex_lock(&loop->work_lock);
    bool closed = loop->work_closed;
    if (!closed) {
        *loop->work_tail = w;
        loop->work_tail = &w->next;
    }
    pthread_mutex_unlock(&loop->work_lock);
    if (closed) {
        free(w);
        return -ESHUTDOWN;
    }
    /* Cannot fail for a valid eventfd (EAGAIN means the loop is woken already). */
    (void)cc_loop_wakeup(loop);
    return 0;
}
