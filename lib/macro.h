/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A small set of helpers used everywhere: cleanup attributes, ownership handoff,
 * array sizes. Kept deliberately short (see STYLE.md: about a dozen macros).
 */
#pragma once

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _noreturn_ __attribute__((noreturn))
#define _warn_unused_result_ __attribute__((warn_unused_result))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

/* Hand ownership of a pointer/fd to somebody else: returns it and clears the source. */
#define TAKE_PTR(p)                                                                                \
    ({                                                                                             \
        __typeof__(p) _take_ptr_ = (p);                                                            \
        (p) = NULL;                                                                                \
        _take_ptr_;                                                                                \
    })
#define TAKE_FD(fd)                                                                                \
    ({                                                                                             \
        int _take_fd_ = (fd);                                                                      \
        (fd) = -EBADF;                                                                             \
        _take_fd_;                                                                                 \
    })

/*
 * CC_DEFINE_CLEANUP(type, fn) defines fn##p(type **) that calls fn(*p) when *p is
 * non-NULL, for use as _cleanup_(fn##p). fn may return anything; the result is dropped.
 */
#define CC_DEFINE_CLEANUP(type, fn)                                                                \
    static inline void fn##p(type **p)                                                             \
    {                                                                                              \
        if (*p)                                                                                    \
            (void)fn(*p);                                                                          \
    }

static inline void
cc_freep(void *p)
{
    free(*(void **)p);
}

/* Closes a non-negative fd, keeping errno intact; returns -EBADF for "fd = cc_close(fd)". */
static inline int
cc_close(int fd)
{
    if (fd >= 0) {
        int saved = errno;
        (void)close(fd);
        errno = saved;
    }
    return -EBADF;
}

static inline void
cc_closep(int *fd)
{
    *fd = cc_close(*fd);
}

#include <stdio.h>
static inline void
cc_fclosep(FILE **f)
{
    if (*f)
        (void)fclose(*f);
}

#define _cleanup_free_ _cleanup_(cc_freep)
#define _cleanup_close_ _cleanup_(cc_closep)
#define _cleanup_fclose_ _cleanup_(cc_fclosep)

/* Negative errno from the current errno, never 0 (for calls that failed without setting it). */
static inline int
cc_negerrno(void)
{
    return errno > 0 ? -errno : -EIO;
}

#define CC_STRINGIFY_(x) #x
#define CC_STRINGIFY(x) CC_STRINGIFY_(x)
