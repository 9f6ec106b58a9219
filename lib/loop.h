/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cc_loop: the one single-threaded epoll event loop of a process, shaped like systemd's
 * sd-event but much smaller.
 *
 * Threads: everything here must be called from the thread that runs the loop (the "loop
 * thread"), except cc_loop_post() and cc_loop_wakeup(), which any thread may call while
 * the loop exists. To stop the loop from another thread, post a function that calls
 * cc_loop_exit().
 *
 * Handlers never block: they run on the loop thread and everything else waits for them.
 *
 * Sources and ownership. cc_loop_add_*() creates a source and, when `ret` is non-NULL,
 * hands the caller the only reference: the caller frees it with cc_loop_source_free().
 * When `ret` is NULL the source is "floating": the loop owns it and frees it in
 * cc_loop_free(); anybody (typically its own handler) may still free it earlier with
 * cc_loop_source_free(). cc_loop_source_set_floating() moves ownership either way.
 * When the loop is freed first, a caller-owned source is detached: it stays allocated,
 * inert, and must still be freed by its owner; calls on it that need the loop return
 * -ESTALE.
 *
 * cc_loop_source_free() is safe anywhere on the loop thread, including inside any handler:
 * a handler may free its own source, or another source whose event is pending in the same
 * iteration (that event is then dropped). The kernel side (epoll registration, signal
 * mask, owned fd) is torn down at once; the memory is released by a GC pass at the end of
 * the iteration.
 *
 * Handler return values: a negative return (an errno) disables the source; it stays
 * allocated and its owner may enable it again. 0 or positive means "keep going". The loop
 * does not log: a handler reports its own failures. Return values of exit handlers are
 * ignored.
 *
 * Dispatch order of one iteration (cc_loop_run_once): defer sources; poll; signals; io;
 * children; expired timers in deadline order; work posted by cc_loop_post(); then post
 * sources when anything was dispatched; then GC. Every ready source is dispatched at most
 * once per iteration (a signal source once per queued signal) and all ready sources are
 * dispatched in every iteration (past 64 ready fds, epoll hands out the rest in turns), so
 * no source can starve another (there are no priorities). A source added or enabled by a handler
 * can run no earlier than the next phase of that order (a due timer added by an io
 * handler fires in the same iteration; an io source added by a timer, in the next one).
 */
#pragma once

#include "error.h"
#include "macro.h"

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/types.h>
#include <sys/wait.h>

typedef struct cc_loop cc_loop;
typedef struct cc_loop_source cc_loop_source;

/* A timeout meaning "wait forever" for cc_loop_run_once(). */
#define CC_LOOP_INFINITY UINT64_MAX

/* fd is the watched fd; revents the EPOLL* bits that are ready (EPOLLERR/EPOLLHUP included). */
typedef int (*cc_loop_io_fn)(cc_loop_source *s, int fd, uint32_t revents, void *userdata);
/* si is the record read from the loop's signalfd; borrowed for the call. */
typedef int (*cc_loop_signal_fn)(cc_loop_source *s, const struct signalfd_siginfo *si,
                                 void *userdata);
/* deadline_usec is the CLOCK_MONOTONIC deadline that elapsed (see cc_loop_now()). */
typedef int (*cc_loop_timer_fn)(cc_loop_source *s, uint64_t deadline_usec, void *userdata);
/* si is from waitid(WEXITED): si_code CLD_EXITED/KILLED/DUMPED and si_status. Borrowed. */
typedef int (*cc_loop_child_fn)(cc_loop_source *s, const siginfo_t *si, void *userdata);
/* For defer, post and exit sources. */
typedef int (*cc_loop_handler_fn)(cc_loop_source *s, void *userdata);
/* Work posted with cc_loop_post(); runs on the loop thread. */
typedef void (*cc_loop_work_fn)(cc_loop *loop, void *userdata);

/* --- the loop ------------------------------------------------------------------------------- */

/*
 * Creates a loop (epoll, signalfd, timerfd and eventfd, all CLOEXEC) and stores it in *ret,
 * owned by the caller. Errors: negative errno from the syscalls (EMFILE, ENOMEM...).
 * Does not block. The calling thread becomes the loop thread.
 */
int cc_loop_new(cc_loop **ret, cc_error **err);

/*
 * Frees the loop, its floating sources and its fds; detaches caller-owned sources (see
 * above). Work still queued by cc_loop_post() is dropped without running (its userdata is
 * not freed). NULL-safe, returns NULL. Loop thread only; never from inside a handler, and
 * only once no other thread can call cc_loop_post()/cc_loop_wakeup() any more.
 */
cc_loop *cc_loop_free(cc_loop *loop);
CC_DEFINE_CLEANUP(cc_loop, cc_loop_free)

/*
 * Runs iterations until cc_loop_exit() was called and the exit phase (remaining posted
 * work, then exit sources) is done. Returns the code given to cc_loop_exit() (use
 * non-negative codes: a negative one is indistinguishable from a failure), or a negative
 * errno when the loop itself fails (epoll_wait, reading an internal fd), with *err set.
 * Blocks; loop thread only; not from inside a handler (-EBUSY). -ESTALE once finished.
 */
int cc_loop_run(cc_loop *loop, cc_error **err);

/*
 * Runs one iteration, waiting at most timeout_usec (CC_LOOP_INFINITY: no limit, 0: do not
 * sleep) for events; does not sleep while a defer source is enabled. When an exit was
 * requested before or during the iteration, also runs the exit phase, after which the
 * loop is finished. Returns 1 when anything was dispatched, 0 when nothing was (timeout,
 * signal, bare wakeup), -EBUSY from inside a handler, -ESTALE once finished, or another
 * negative errno with *err set. Loop thread only.
 */
int cc_loop_run_once(cc_loop *loop, uint64_t timeout_usec, cc_error **err);

/*
 * Requests the loop to finish: the current iteration completes (events already reported
 * are still dispatched), then the exit phase runs. The first code passed wins; later calls
 * are ignored. Does not block. Loop thread only (other threads: post a function that calls
 * this).
 */
void cc_loop_exit(cc_loop *loop, int code);

/* True once cc_loop_exit() was called. Loop thread only. */
bool cc_loop_is_exiting(const cc_loop *loop);

/*
 * Queues fn(loop, userdata) to run on the loop thread in a later iteration, in FIFO order,
 * and wakes the loop. Any thread. Work posted during an iteration's drain runs in the next
 * iteration. Returns 0, or -ESHUTDOWN once the exit phase has drained the queue (fn will
 * never run: the caller keeps userdata). Aborts on OOM like cc_xmalloc. Does not block
 * beyond a short mutex.
 */
int cc_loop_post(cc_loop *loop, cc_loop_work_fn fn, void *userdata);

/*
 * Makes a blocking cc_loop_run_once() return soon (one eventfd write). Any thread; never
 * blocks. Returns 0 or a negative errno from write(2).
 */
int cc_loop_wakeup(cc_loop *loop);

/* CLOCK_MONOTONIC now, in microseconds: the clock of timer sources. Any thread. */
uint64_t cc_loop_now(void);

/*
 * Blocks signals[0..n) in the calling thread (pthread_sigmask). Signal sources need their
 * signal blocked; call this early in main(), before creating threads, so every thread
 * inherits the mask and the signal can only be consumed through the loop's signalfd.
 * Errors: -EINVAL for an invalid signal number. Any thread; does not block.
 */
int cc_loop_block_signals(const int *signals, size_t n, cc_error **err);

/* --- adding sources --------------------------------------------------------------------------
 * Common to all: fn is required; userdata is passed to it untouched and never freed by
 * the loop; ret (may be NULL: floating) receives the source, enabled, owned as described
 * at the top. Loop thread only; allowed inside handlers; never block.
 */

/*
 * Watches fd for events (EPOLLIN, EPOLLOUT, EPOLLPRI, EPOLLRDHUP, optionally EPOLLET;
 * EPOLLERR/EPOLLHUP are always reported). The fd is borrowed (see
 * cc_loop_source_set_io_fd_own()): free the source before closing it. One source per fd.
 * Errors: -EINVAL (bad fd or events), -EEXIST (fd already watched), epoll_ctl errors.
 */
int cc_loop_add_io(cc_loop *loop, int fd, uint32_t events, cc_loop_io_fn fn, void *userdata,
                   cc_loop_source **ret, cc_error **err);

/*
 * Delivers signal signo through the loop's signalfd. The signal must already be blocked in
 * the calling thread (cc_loop_block_signals()), else -EINVAL. One source per signal
 * (-EBUSY). While the source is disabled, the signal stays pending in the kernel.
 */
int cc_loop_add_signal(cc_loop *loop, int signo, cc_loop_signal_fn fn, void *userdata,
                       cc_loop_source **ret, cc_error **err);

/*
 * Fires usec microseconds from now (CLOCK_MONOTONIC); then every interval_usec when that
 * is non-zero (missed periods are coalesced into one call), else only once: a one-shot
 * timer disables itself before its handler runs, and cc_loop_source_set_timer*() re-arm
 * and enable it again (also from inside its handler). Makes no syscall; returns 0.
 */
int cc_loop_add_timer(cc_loop *loop, uint64_t usec, uint64_t interval_usec, cc_loop_timer_fn fn,
                      void *userdata, cc_loop_source **ret, cc_error **err);

/*
 * Watches child process pid through a pidfd (pidfd_open(2), owned by the source). When it
 * exits, the loop reaps it with waitid(P_PIDFD, WEXITED), disables the source and calls fn
 * once with the siginfo_t. If somebody else reaped it first, fn gets si_code 0 and
 * si_pid == pid. Freeing the source first neither kills nor reaps the child.
 * Errors: -ESRCH (no such process), other pidfd_open errors.
 */
int cc_loop_add_child(cc_loop *loop, pid_t pid, cc_loop_child_fn fn, void *userdata,
                      cc_loop_source **ret, cc_error **err);

/*
 * Runs fn once per iteration, before polling, while enabled; the loop does not sleep while
 * a defer source is enabled, so disable or free it when its work is done.
 */
int cc_loop_add_defer(cc_loop *loop, cc_loop_handler_fn fn, void *userdata, cc_loop_source **ret,
                      cc_error **err);

/*
 * Runs fn at the end of every iteration in which some other handler was dispatched (for
 * example to flush buffered output). Not to be confused with cc_loop_post().
 */
int cc_loop_add_post(cc_loop *loop, cc_loop_handler_fn fn, void *userdata, cc_loop_source **ret,
                     cc_error **err);

/*
 * Runs fn once in the exit phase, after the remaining posted work; exit sources run in
 * reverse order of addition (like atexit). Exit sources added during the exit phase do not
 * run.
 */
int cc_loop_add_exit(cc_loop *loop, cc_loop_handler_fn fn, void *userdata, cc_loop_source **ret,
                     cc_error **err);

/* --- sources ------------------------------------------------------------------------------- */

/*
 * Frees s: disarms it at once (epoll, signal mask, owned fd closed), releases its memory
 * now or at the end of the current iteration. Call only by its owner (the holder of the
 * reference, or anybody for a floating source), at most once. Safe inside any handler,
 * including s's own. Works on detached sources. NULL-safe, returns NULL. Loop thread only.
 */
cc_loop_source *cc_loop_source_free(cc_loop_source *s);
CC_DEFINE_CLEANUP(cc_loop_source, cc_loop_source_free)

/*
 * Enables or disables s. Enabling a fired one-shot timer makes it fire at its old deadline
 * (i.e. at once when that passed); enabling a reaped child source fails with -ECHILD.
 * Errors: -ESTALE (detached), epoll_ctl/signalfd errors. Loop thread only.
 */
int cc_loop_source_set_enabled(cc_loop_source *s, bool enabled, cc_error **err);
bool cc_loop_source_get_enabled(const cc_loop_source *s);

/*
 * floating=true hands the caller's reference to the loop (do not free it any more);
 * false hands the loop's reference to the caller. Loop thread only.
 */
void cc_loop_source_set_floating(cc_loop_source *s, bool floating);

/* Changes the watched events of an io source (same set as cc_loop_add_io). -EINVAL for
 * other kinds, -ESTALE (detached), epoll_ctl errors. Loop thread only. */
int cc_loop_source_set_io_events(cc_loop_source *s, uint32_t events, cc_error **err);

/* When own is true the io source closes its fd when freed. Loop thread only. */
void cc_loop_source_set_io_fd_own(cc_loop_source *s, bool own);

/* The io fd, or the child's pidfd (borrowed: e.g. for pidfd_send_signal), else -EBADF. */
int cc_loop_source_get_fd(const cc_loop_source *s);

/*
 * Re-arms a timer source at the absolute CLOCK_MONOTONIC deadline deadline_usec (0 means
 * "at once"), with interval_usec (0: one-shot), and enables it. Errors: -EINVAL (not a
 * timer), -ESTALE (detached). Loop thread only; allowed in the timer's own handler.
 */
int cc_loop_source_set_timer(cc_loop_source *s, uint64_t deadline_usec, uint64_t interval_usec,
                             cc_error **err);
/* Same, relative to now. */
int cc_loop_source_set_timer_relative(cc_loop_source *s, uint64_t usec, uint64_t interval_usec,
                                      cc_error **err);

/* A copy of desc (NULL clears it), for debugging. The getter's result is borrowed or NULL. */
void cc_loop_source_set_description(cc_loop_source *s, const char *desc);
const char *cc_loop_source_get_description(const cc_loop_source *s);

void *cc_loop_source_get_userdata(const cc_loop_source *s);
void cc_loop_source_set_userdata(cc_loop_source *s, void *userdata);
/* The loop, or NULL for a detached source. Borrowed. */
cc_loop *cc_loop_source_get_loop(const cc_loop_source *s);
