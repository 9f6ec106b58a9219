/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cc_error: a negative errno plus a human message built as a chain of context,
 * outermost first: "load bundle 'x': open 'config.json': No such file or directory".
 *
 * Functions that can fail return a negative errno (or NULL) and take `cc_error **err`
 * last. err may be NULL when the caller only wants the code. The helpers below return
 * the code they were given so a failure path is one line:
 *
 *     return cc_error_set(err, -errno, "open '%s'", path);
 *     return cc_error_prefix(err, r, "load bundle '%s'", id);
 */
#pragma once

#include "macro.h"

typedef struct cc_error cc_error;

struct cc_error {
    int code;      /* negative errno, never 0 */
    char *message; /* the whole chain, owned */
};

/* Sets *err (replacing an earlier one) to "<fmt>: <strerror(-r)>". Returns r. */
int cc_error_set(cc_error **err, int r, const char *fmt, ...) _printf_(3, 4);
/* Same, without the strerror suffix: for errors errno does not describe (parse errors). */
int cc_error_msg(cc_error **err, int r, const char *fmt, ...) _printf_(3, 4);
/*
 * Prepends "<fmt>: " to *err's message. When *err is NULL (the callee did not build a
 * message) it behaves as cc_error_set. Returns r.
 */
int cc_error_prefix(cc_error **err, int r, const char *fmt, ...) _printf_(3, 4);

/* NULL-safe; returns NULL. */
cc_error *cc_error_free(cc_error *e);
CC_DEFINE_CLEANUP(cc_error, cc_error_free)
#define _cleanup_error_ _cleanup_(cc_error_freep)

/* The message, or "unknown error" for NULL. Borrowed. */
const char *cc_error_message(const cc_error *e);
