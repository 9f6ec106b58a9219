/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

static int
error_store(cc_error **err, int r, char *message)
{
    if (r >= 0)
        r = -EIO; /* an error is never success; callers that pass 0 have a bug */
    if (!err) {
        free(message);
        return r;
    }
    cc_error_free(*err);
    cc_error *e = cc_xmalloc(sizeof(*e));
    e->code = r;
    e->message = message;
    *err = e;
    return r;
}

int
cc_error_set(cc_error **err, int r, const char *fmt, ...)
{
    if (!err)
        return r < 0 ? r : -EIO;
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *head = cc_xvasprintf(fmt, ap);
    va_end(ap);
    return error_store(err, r, cc_xasprintf("%s: %s", head, strerror(r < 0 ? -r : EIO)));
}

int
cc_error_msg(cc_error **err, int r, const char *fmt, ...)
{
    if (!err)
        return r < 0 ? r : -EIO;
    va_list ap;
    va_start(ap, fmt);
    char *msg = cc_xvasprintf(fmt, ap);
    va_end(ap);
    return error_store(err, r, msg);
}

int
cc_error_prefix(cc_error **err, int r, const char *fmt, ...)
{
    if (!err)
        return r < 0 ? r : -EIO;
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *head = cc_xvasprintf(fmt, ap);
    va_end(ap);
    if (!*err)
        return error_store(err, r, cc_xasprintf("%s: %s", head, strerror(r < 0 ? -r : EIO)));
    char *msg = cc_xasprintf("%s: %s", head, (*err)->message);
    free((*err)->message);
    (*err)->message = msg;
    (*err)->code = r < 0 ? r : -EIO;
    return (*err)->code;
}

cc_error *
cc_error_free(cc_error *e)
{
    if (e) {
        free(e->message);
        free(e);
    }
    return NULL;
}

const char *
cc_error_message(const cc_error *e)
{
    return e && e->message ? e->message : "unknown error";
}
