/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* One record is at most this long; longer messages are cut (and say so). */
#define LOG_LINE_MAX 4096
#define TRUNCATED " truncated=true"

static struct {
    char component[32];
    int fd;
    cc_log_level level;
} log_settings = {
    .component = "cloak",
    .fd = STDERR_FILENO,
    .level = CC_LOG_INFO,
};

void
cc_log_setup(const char *component, int fd, cc_log_level level)
{
    if (component)
        snprintf(log_settings.component, sizeof(log_settings.component), "%s", component);
    log_settings.fd = fd;
    log_settings.level = level;
}

void
cc_log_set_level(cc_log_level level)
{
    log_settings.level = level;
}

cc_log_level
cc_log_get_level(void)
{
    return log_settings.level;
}

static const struct {
    const char *name;
    cc_log_level level;
} level_names[] = {
    {"error", CC_LOG_ERROR}, {"warning", CC_LOG_WARNING}, {"warn", CC_LOG_WARNING},
    {"info", CC_LOG_INFO},   {"debug", CC_LOG_DEBUG},
};

int
cc_log_level_from_string(const char *s)
{
    for (size_t i = 0; s && i < ELEMENTSOF(level_names); i++)
        if (strcasecmp(s, level_names[i].name) == 0)
            return level_names[i].level;
    return -EINVAL;
}

const char *
cc_log_level_to_string(cc_log_level level)
{
    for (size_t i = 0; i < ELEMENTSOF(level_names); i++)
        if (level_names[i].level == level)
            return level_names[i].name;
    return "unknown";
}

typedef struct {
    char buf[LOG_LINE_MAX];
    size_t len;
    bool cut;
} line_buf;

static void
put(line_buf *b, const char *s, size_t n)
{
    /* keep room for the truncation marker and the newline */
    size_t room = sizeof(b->buf) - sizeof(TRUNCATED) - 1 - b->len;
    if (n > room) {
        n = room;
        b->cut = true;
    }
    memcpy(b->buf + b->len, s, n);
    b->len += n;
}

static void
put_str(line_buf *b, const char *s)
{
    put(b, s, strlen(s));
}

static bool
needs_quotes(const char *v)
{
    if (!*v)
        return true;
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (*p <= ' ' || *p == '"' || *p == '=' || *p == '\\' || *p == 0x7f)
            return true;
    return false;
}

/* A logfmt value: bare when it can be, else quoted with \" \\ \n \t and \xHH escapes. */
static void
put_value(line_buf *b, const char *v)
{
    if (!needs_quotes(v)) {
        put_str(b, v);
        return;
    }
    put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            put(b, esc, 2);
        } else if (*p == '\n') {
            put(b, "\\n", 2);
        } else if (*p == '\t') {
            put(b, "\\t", 2);
        } else if (*p < ' ' || *p == 0x7f) {
            snprintf(esc, sizeof(esc), "\\x%02x", *p);
            put(b, esc, 4);
        } else {
            put(b, (const char *)p, 1);
        }
    }
    put(b, "\"", 1);
}

static void
put_field(line_buf *b, const char *key, const char *value)
{
    put(b, " ", 1);
    put_str(b, key);
    put(b, "=", 1);
    put_value(b, value);
}

static void
put_time(line_buf *b)
{
    struct timespec ts;
    struct tm tm;
    char t[64];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(t, sizeof(t), "time=%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(t + n, sizeof(t) - n, ".%06ldZ", ts.tv_nsec / 1000);
    put_str(b, t);
}

static _printf_(4, 0) void
log_emit(cc_log_level level, const char *err, const char *const *fields, const char *fmt,
         va_list ap)
{
    line_buf b = {.len = 0};
    char msg[LOG_LINE_MAX];

    vsnprintf(msg, sizeof(msg), fmt, ap);
    put_time(&b);
    put_field(&b, "level", cc_log_level_to_string(level));
    put_field(&b, "component", log_settings.component);
    put_field(&b, "msg", msg);
    if (err)
        put_field(&b, "err", err);
    /* Pairs end at a NULL key; CC_FIELDS() supplies it, so a NULL last value is safe. */
    for (size_t i = 0; fields && fields[i]; i += 2)
        if (fields[i + 1])
            put_field(&b, fields[i], fields[i + 1]);
    if (b.cut) {
        memcpy(b.buf + b.len, TRUNCATED, strlen(TRUNCATED));
        b.len += strlen(TRUNCATED);
    }
    b.buf[b.len++] = '\n';

    int saved = errno;
    (void)!write(log_settings.fd, b.buf, b.len);
    errno = saved;
}

int
cc_log_internal(cc_log_level level, int r, const char *const *fields, const char *fmt, ...)
{
    if (level > log_settings.level)
        return r;
    va_list ap;
    va_start(ap, fmt);
    log_emit(level, r < 0 ? strerror(-r) : NULL, fields, fmt, ap);
    va_end(ap);
    return r;
}

int
cc_log_error_internal(cc_log_level level, const cc_error *e, const char *const *fields,
                      const char *fmt, ...)
{
    int r = e ? e->code : -EIO;
    if (level > log_settings.level)
        return r;
    va_list ap;
    va_start(ap, fmt);
    log_emit(level, cc_error_message(e), fields, fmt, ap);
    va_end(ap);
    return r;
}
