/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Allocation that aborts on OOM (bound untrusted sizes before calling these) and a few
 * string helpers.
 */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "macro.h"

void *cc_xmalloc(size_t n);
void *cc_xzalloc(size_t n);
void *cc_xrealloc(void *p, size_t n);
/* n * size, aborting on overflow as on OOM. */
void *cc_xreallocarray(void *p, size_t n, size_t size);
char *cc_xstrdup(const char *s);
char *cc_xstrndup(const char *s, size_t n);
char *cc_xasprintf(const char *fmt, ...) _printf_(1, 2);
char *cc_xvasprintf(const char *fmt, va_list ap) _printf_(1, 0);

static inline bool
cc_streq(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

/* Returns the rest of s after prefix, or NULL when s does not start with it. */
static inline const char *
cc_startswith(const char *s, const char *prefix)
{
    size_t n = strlen(prefix);
    return strncmp(s, prefix, n) == 0 ? s + n : NULL;
}

/* Overwrites n bytes in a way the compiler may not elide (for secrets). */
void cc_explicit_bzero(void *p, size_t n);
