/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Logging in logfmt, one line per record, written with a single write(2):
 *
 *   time=2026-11-22T05:06:11.123456Z level=info component=shim msg="task started" container=abc
 *
 * Boundaries log; library code logs at debug only and otherwise returns errors.
 * The settings (component, fd, level) are the only mutable globals of a process, set once
 * at start-up from main(). Thread-safe: records are formatted on the stack and written
 * with one write(2), so lines from several threads do not interleave.
 */
#pragma once

#include "error.h"
#include "macro.h"

/* syslog(3) numbering, so a journald/syslog sink can take them as they are. */
typedef enum cc_log_level {
    CC_LOG_ERROR = 3,
    CC_LOG_WARNING = 4,
    CC_LOG_INFO = 6,
    CC_LOG_DEBUG = 7,
} cc_log_level;

/* component: copied; fd: where records go (not owned, default 2). level: most verbose kept. */
void cc_log_setup(const char *component, int fd, cc_log_level level);
void cc_log_set_level(cc_log_level level);
cc_log_level cc_log_get_level(void);
/* "error", "warning"/"warn", "info", "debug" (any case) -> level; -EINVAL otherwise. */
int cc_log_level_from_string(const char *s);
const char *cc_log_level_to_string(cc_log_level level);

/*
 * Writes one record. r: 0 or a negative errno, added as err="<strerror>". fields: NULL or a
 * NULL-terminated list of key, value pairs (a NULL value is skipped). Returns r, so
 * `return cc_log_errno(CC_LOG_ERROR, r, "...")` logs and propagates.
 */
int cc_log_internal(cc_log_level level, int r, const char *const *fields, const char *fmt, ...)
    _printf_(4, 5);
/* Like cc_log_internal, with err="<e's message chain>". Returns e's code (-EIO when e is NULL). */
int cc_log_error_internal(cc_log_level level, const cc_error *e, const char *const *fields,
                          const char *fmt, ...) _printf_(4, 5);

#define CC_FIELDS(...) ((const char *const[]){__VA_ARGS__, NULL})

#define cc_log(level, ...) cc_log_internal((level), 0, NULL, __VA_ARGS__)
#define cc_log_errno(level, r, ...) cc_log_internal((level), (r), NULL, __VA_ARGS__)
#define cc_log_fields(level, r, fields, ...) cc_log_internal((level), (r), (fields), __VA_ARGS__)
#define cc_log_error(level, e, ...) cc_log_error_internal((level), (e), NULL, __VA_ARGS__)

/* What to log in place of a secret: a constant, whatever the secret is (NULL included). */
static inline const char *
cc_redact(const char *secret)
{
    (void)secret;
    return "<redacted>";
}
