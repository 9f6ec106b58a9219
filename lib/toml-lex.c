/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TOML scalars: strings (four forms), integers, floats, booleans and dates/times, plus the
 * position bookkeeping and UTF-8 check the whole parser shares.
 */
#include "toml-priv.h"
#include "util.h"

#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void
toml_position(toml_parser *p, size_t pos, unsigned *ret_line, unsigned *ret_column)
{
    if (pos > p->len)
        pos = p->len;
    if (pos < p->lc_pos) {
        /* Going backwards is rare (error paths): restart from the line or the document. */
        if (pos < p->lc_line_start) {
            p->lc_line_start = 0;
            p->lc_line = 1;
        }
        p->lc_pos = p->lc_line_start;
        p->lc_column = 1;
    }
    for (size_t i = p->lc_pos; i < pos; i++) {
        unsigned char c = (unsigned char)p->buf[i];
        if (c == '\n') {
            p->lc_line++;
            p->lc_line_start = i + 1;
            p->lc_column = 1;
        } else if ((c & 0xC0) != 0x80) {
            p->lc_column++;
        }
    }
    p->lc_pos = pos;
    *ret_line = p->lc_line;
    *ret_column = p->lc_column;
}

int
toml_fail(toml_parser *p, size_t pos, const char *fmt, ...)
{
    if (!p->err)
        return -EINVAL;
    unsigned line, column;
    toml_position(p, pos, &line, &column);
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *what = cc_xvasprintf(fmt, ap);
    va_end(ap);
    return cc_error_msg(p->err, -EINVAL, "line %u, column %u: %s", line, column, what);
}

const char *
toml_describe(const toml_parser *p, size_t pos, char buf[static 32])
{
    if (pos >= p->len)
        return "end of input";
    unsigned char c = (unsigned char)p->buf[pos];
    if (c == '\n')
        return "a newline";
    if (c == '\r')
        return "a carriage return";
    if (c == '\t')
        return "a tab";
    if (c < 0x20 || c == 0x7F)
        snprintf(buf, 32, "control character U+%04X", c);
    else if (c >= 0x80)
        snprintf(buf, 32, "non-ASCII character");
    else
        snprintf(buf, 32, "'%c'", c);
    return buf;
}

cc_toml *
toml_new_at(toml_parser *p, cc_toml_type type, size_t pos)
{
    unsigned line, column;
    toml_position(p, pos, &line, &column);
    return toml_node_new(type, line, column);
}

/* Length of the UTF-8 sequence at s[0..n), or 0 when it is not valid UTF-8. */
static size_t
utf8_valid_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t need;
    uint32_t cp, min;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1, cp = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2, cp = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3, cp = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n - 1 < need)
        return 0;
    for (size_t k = 1; k <= need; k++) {
        if ((s[k] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return need + 1;
}

int
toml_check_utf8(toml_parser *p)
{
    const unsigned char *s = (const unsigned char *)p->buf;
    for (size_t i = 0; i < p->len;) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t n = utf8_valid_len(s + i, p->len - i);
        if (n == 0)
            return toml_fail(p, i, "invalid UTF-8 byte 0x%02X", s[i]);
        i += n;
    }
    return 0;
}

/* Growable output buffer for string values. */
typedef struct strbuf {
    char *data;
    size_t len;
    size_t cap;
} strbuf;

static void
strbuf_add(strbuf *b, const char *s, size_t n)
{
    if (b->cap - b->len <= n) {
        while (b->cap - b->len <= n)
            b->cap = b->cap ? b->cap * 2 : 32;
        b->data = cc_xrealloc(b->data, b->cap);
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void
strbuf_done(strbuf *b)
{
    free(b->data);
}

static bool
is_control(unsigned char c)
{
    return (c < 0x20 && c != '\t') || c == 0x7F;
}

static int
hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static size_t
utf8_encode(uint32_t cp, char out[static 4])
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* \uXXXX or \UXXXXXXXX at p->pos (the backslash); digits = 4 or 8. */
static int
lex_unicode_escape(toml_parser *p, int digits, strbuf *b)
{
    size_t start = p->pos;
    uint32_t cp = 0;
    for (int i = 0; i < digits; i++) {
        size_t at = start + 2 + (size_t)i;
        int h = at < p->len ? hex_value(p->buf[at]) : -1;
        if (h < 0)
            return toml_fail(p, start, "escape '\\%c' needs %d hexadecimal digits",
                             p->buf[start + 1], digits);
        cp = (cp << 4) | (uint32_t)h;
    }
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return toml_fail(p, start, "escape '\\%c' is not a Unicode scalar value",
                         p->buf[start + 1]);
    char out[4];
    strbuf_add(b, out, utf8_encode(cp, out));
    p->pos = start + 2 + (size_t)digits;
    return 0;
}

/* One escape sequence at p->pos (the backslash) in a basic string. */
static int
lex_escape(toml_parser *p, strbuf *b)
{
    size_t at = p->pos + 1;
    if (at >= p->len)
        return toml_fail(p, p->pos, "unterminated string");
    char c = p->buf[at], out;
    switch (c) {
    case 'b':
        out = '\b';
        break;
    case 't':
        out = '\t';
        break;
    case 'n':
        out = '\n';
        break;
    case 'f':
        out = '\f';
        break;
    case 'r':
        out = '\r';
        break;
    case '"':
    case '\\':
        out = c;
        break;
    case 'u':
        return lex_unicode_escape(p, 4, b);
    case 'U':
        return lex_unicode_escape(p, 8, b);
    default:
        if ((unsigned char)c > 0x20 && (unsigned char)c < 0x7F)
            return toml_fail(p, p->pos, "invalid escape sequence '\\%c'", c);
        return toml_fail(p, p->pos, "invalid escape sequence");
    }
    strbuf_add(b, &out, 1);
    p->pos = at + 1;
    return 0;
}

/*
 * Line-ending backslash at p->pos in a multi-line basic string: when only whitespace
 * follows up to the newline, skips it and all whitespace/newlines after, returns true.
 */
static bool
skip_line_ending_backslash(toml_parser *p)
{
    size_t i = p->pos + 1;
    while (i < p->len && (p->buf[i] == ' ' || p->buf[i] == '\t'))
        i++;
    if (i < p->len && p->buf[i] == '\n')
        i++;
    else if (i + 1 < p->len && p->buf[i] == '\r' && p->buf[i + 1] == '\n')
        i += 2;
    else
        return false;
    for (;;) {
        if (i < p->len && (p->buf[i] == ' ' || p->buf[i] == '\t' || p->buf[i] == '\n'))
            i++;
        else if (i + 1 < p->len && p->buf[i] == '\r' && p->buf[i + 1] == '\n')
            i += 2;
        else
            break;
    }
    p->pos = i;
    return true;
}

/*
 * A run of quote characters at p->pos inside a string delimited by q (repeated 1 or 3
 * times). Returns 1 when it closes the string (after adding up to two quotes that belong
 * to a multi-line string's content), 0 when the quotes are content, <0 on error.
 */
static int
lex_quotes(toml_parser *p, char q, bool multiline, strbuf *b)
{
    if (!multiline) {
        p->pos++;
        return 1;
    }
    size_t n = 0;
    while (p->pos + n < p->len && p->buf[p->pos + n] == q)
        n++;
    if (n < 3) {
        strbuf_add(b, p->buf + p->pos, n);
        p->pos += n;
        return 0;
    }
    if (n > 5)
        return toml_fail(p, p->pos, "too many quotes at the end of a multi-line string");
    strbuf_add(b, p->buf + p->pos, n - 3);
    p->pos += n;
    return 1;
}

/* One character (or CRLF) of string content at p->pos that is not a quote or escape. */
static int
lex_plain(toml_parser *p, bool multiline, strbuf *b)
{
    size_t start = p->pos;
    unsigned char c = (unsigned char)p->buf[start];
    if (multiline && c == '\n') {
        strbuf_add(b, "\n", 1);
        p->pos++;
        return 0;
    }
    if (multiline && c == '\r' && start + 1 < p->len && p->buf[start + 1] == '\n') {
        strbuf_add(b, "\n", 1); /* newlines are normalised to LF */
        p->pos += 2;
        return 0;
    }
    bool crlf = c == '\r' && start + 1 < p->len && p->buf[start + 1] == '\n';
    if (c == '\n' || crlf)
        return toml_fail(p, start, "newline in a single-line string");
    if (c == '\r')
        return toml_fail(p, start, "carriage return not followed by a newline");
    if (is_control(c))
        return toml_fail(p, start, "control character U+%04X in a string", c);
    /* Copy the run of ordinary characters in one go. */
    size_t end = start + 1;
    while (end < p->len) {
        unsigned char d = (unsigned char)p->buf[end];
        if (d == '"' || d == '\'' || d == '\\' || is_control(d))
            break;
        end++;
    }
    strbuf_add(b, p->buf + start, end - start);
    p->pos = end;
    return 0;
}

int
toml_lex_string(toml_parser *p, bool multiline, char **ret, size_t *ret_len)
{
    size_t start = p->pos;
    char q = p->buf[start];
    bool literal = q == '\'';
    multiline = multiline && start + 2 < p->len && p->buf[start + 1] == q && p->buf[start + 2] == q;
    _cleanup_(strbuf_done) strbuf b = {0};
    strbuf_add(&b, "", 0);
    p->pos += multiline ? 3 : 1;
    if (multiline) { /* a newline right after the opening delimiter is trimmed */
        if (p->pos < p->len && p->buf[p->pos] == '\n')
            p->pos++;
        else if (p->pos + 1 < p->len && p->buf[p->pos] == '\r' && p->buf[p->pos + 1] == '\n')
            p->pos += 2;
    }
    for (;;) {
        if (p->pos >= p->len)
            return toml_fail(p, start, "unterminated string");
        char c = p->buf[p->pos];
        int r;
        if (c == q) {
            r = lex_quotes(p, q, multiline, &b);
            if (r > 0)
                break;
        } else if (c == '\\' && !literal) {
            if (multiline && skip_line_ending_backslash(p))
                continue;
            r = lex_escape(p, &b);
        } else if (c == '\\' || (c == '"' && literal) || (c == '\'' && !literal)) {
            strbuf_add(&b, &c, 1);
            p->pos++;
            r = 0;
        } else {
            r = lex_plain(p, multiline, &b);
        }
        if (r < 0)
            return r;
    }
    *ret_len = b.len;
    *ret = TAKE_PTR(b.data);
    return 0;
}

/* n decimal digits at s[*i], exactly; advances *i. */
static bool
lex_fixed_digits(const char *s, size_t len, size_t *i, int n, int *ret)
{
    int v = 0;
    for (int k = 0; k < n; k++) {
        if (*i >= len || !toml_is_digit(s[*i]))
            return false;
        v = v * 10 + (s[(*i)++] - '0');
    }
    *ret = v;
    return true;
}

static bool
expect_char(const char *s, size_t len, size_t *i, char c)
{
    if (*i >= len || s[*i] != c)
        return false;
    (*i)++;
    return true;
}

static int
days_in_month(int year, int month)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    return month == 2 && leap ? 29 : days[month - 1];
}

/* YYYY-MM-DD at *i. Returns NULL or what is wrong. */
static const char *
lex_date(const char *s, size_t len, size_t *i, cc_toml_datetime *dt)
{
    if (!lex_fixed_digits(s, len, i, 4, &dt->year) || !expect_char(s, len, i, '-') ||
        !lex_fixed_digits(s, len, i, 2, &dt->month) || !expect_char(s, len, i, '-') ||
        !lex_fixed_digits(s, len, i, 2, &dt->day))
        return "malformed date (want YYYY-MM-DD)";
    if (dt->month < 1 || dt->month > 12)
        return "month out of range";
    if (dt->day < 1 || dt->day > days_in_month(dt->year, dt->month))
        return "day out of range for the month";
    dt->has_date = true;
    return NULL;
}

/* HH:MM:SS[.frac] at *i. */
static const char *
lex_time(const char *s, size_t len, size_t *i, cc_toml_datetime *dt)
{
    if (!lex_fixed_digits(s, len, i, 2, &dt->hour) || !expect_char(s, len, i, ':') ||
        !lex_fixed_digits(s, len, i, 2, &dt->minute) || !expect_char(s, len, i, ':') ||
        !lex_fixed_digits(s, len, i, 2, &dt->second))
        return "malformed time (want HH:MM:SS)";
    if (dt->hour > 23 || dt->minute > 59 || dt->second > 60)
        return "time out of range";
    dt->has_time = true;
    if (!expect_char(s, len, i, '.'))
        return NULL;
    if (*i >= len || !toml_is_digit(s[*i]))
        return "fractional seconds need digits after '.'";
    for (; *i < len && toml_is_digit(s[*i]); (*i)++) {
        if (dt->frac_digits < 9) { /* extra precision is truncated, as the spec asks */
            dt->nanosecond = dt->nanosecond * 10 + (s[*i] - '0');
            dt->frac_digits++;
        }
    }
    for (int k = dt->frac_digits; k < 9; k++)
        dt->nanosecond *= 10;
    return NULL;
}

/* Z or +HH:MM / -HH:MM at *i, if present. */
static const char *
lex_offset(const char *s, size_t len, size_t *i, cc_toml_datetime *dt)
{
    if (*i >= len)
        return NULL;
    char c = s[*i];
    if (c == 'Z' || c == 'z') {
        (*i)++;
        dt->has_offset = true;
        return NULL;
    }
    if (c != '+' && c != '-')
        return NULL;
    (*i)++;
    int h, m;
    if (!lex_fixed_digits(s, len, i, 2, &h) || !expect_char(s, len, i, ':') ||
        !lex_fixed_digits(s, len, i, 2, &m))
        return "malformed UTC offset (want +HH:MM)";
    if (h > 23 || m > 59)
        return "UTC offset out of range";
    dt->offset_minutes = (c == '-' ? -1 : 1) * (h * 60 + m);
    dt->has_offset = true;
    return NULL;
}

static bool
is_token_char(char c)
{
    return toml_is_bare_key_char(c) || c == '.' || c == '+' || c == ':';
}

static int
lex_datetime(toml_parser *p, cc_toml **ret)
{
    const char *s = p->buf;
    size_t start = p->pos, i = start;
    cc_toml_datetime dt = {0};
    const char *bad = NULL;
    if (i + 4 < p->len && s[i + 4] == '-') {
        bad = lex_date(s, p->len, &i, &dt);
        bool sep = i < p->len && (s[i] == 'T' || s[i] == 't');
        sep = sep || (i + 1 < p->len && s[i] == ' ' && toml_is_digit(s[i + 1]));
        if (!bad && sep) {
            i++;
            bad = lex_time(s, p->len, &i, &dt);
            if (!bad)
                bad = lex_offset(s, p->len, &i, &dt);
        }
    } else {
        bad = lex_time(s, p->len, &i, &dt);
    }
    if (!bad && i < p->len && is_token_char(s[i]))
        bad = "unexpected characters after date/time";
    if (bad)
        return toml_fail(p, start, "invalid date/time: %s", bad);
    cc_toml_type type = CC_TOML_TIME_LOCAL;
    if (dt.has_date)
        type = !dt.has_time    ? CC_TOML_DATE_LOCAL
               : dt.has_offset ? CC_TOML_DATETIME
                               : CC_TOML_DATETIME_LOCAL;
    cc_toml *v = toml_new_at(p, type, start);
    v->dt = dt;
    p->pos = i;
    *ret = v;
    return 0;
}

/*
 * Digits with single underscores between them at s[*i]. Returns the number of digits, or
 * -1 when the run is empty or an underscore is not between two digits.
 */
static long
lex_digit_run(const char *s, size_t len, size_t *i, int base)
{
    long digits = 0;
    for (;;) {
        if (*i >= len)
            return -1;
        int d = hex_value(s[*i]);
        if (d < 0 || d >= base)
            return -1;
        digits++;
        (*i)++;
        if (*i < len && s[*i] == '_')
            (*i)++;
        else if (*i < len && hex_value(s[*i]) >= 0 && hex_value(s[*i]) < base)
            continue;
        else
            return digits;
    }
}

/* Integer value of the digits in s[0..len) (underscores skipped); false on overflow. */
static bool
digits_value(const char *s, size_t len, int base, uint64_t limit, uint64_t *ret)
{
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '_')
            continue;
        uint64_t d = (uint64_t)hex_value(s[i]);
        if (v > (limit - d) / (uint64_t)base)
            return false;
        v = v * (uint64_t)base + d;
    }
    *ret = v;
    return true;
}

static int
lex_radix_int(toml_parser *p, const char *s, size_t len, cc_toml **ret)
{
    int base = s[1] == 'x' ? 16 : s[1] == 'o' ? 8 : 2;
    size_t i = 2;
    uint64_t v;
    if (lex_digit_run(s, len, &i, base) < 0 || i != len)
        return toml_fail(p, p->pos, "invalid %s integer '%.*s'",
                         base == 16  ? "hexadecimal"
                         : base == 8 ? "octal"
                                     : "binary",
                         (int)(len > 64 ? 64 : len), s);
    if (!digits_value(s + 2, len - 2, base, INT64_MAX, &v))
        return toml_fail(p, p->pos, "integer out of range");
    *ret = toml_new_at(p, CC_TOML_INTEGER, p->pos);
    (*ret)->i = (int64_t)v;
    return 0;
}

static int
lex_float_value(toml_parser *p, const char *s, size_t len, cc_toml **ret)
{
    /* strtod follows LC_NUMERIC: hand it the locale's decimal point, without underscores */
    const char *dp = localeconv()->decimal_point;
    size_t dplen = dp && *dp ? strlen(dp) : 1;
    _cleanup_free_ char *tmp = cc_xmalloc(len * dplen + 1);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '_')
            continue;
        if (s[i] == '.' && dp && *dp) {
            memcpy(tmp + n, dp, dplen);
            n += dplen;
        } else {
            tmp[n++] = s[i];
        }
    }
    tmp[n] = '\0';
    char *end;
    double d = strtod(tmp, &end);
    if (end != tmp + n)
        return toml_fail(p, p->pos, "invalid float '%.*s'", (int)(len > 64 ? 64 : len), s);
    if (isinf(d))
        return toml_fail(p, p->pos, "float out of range");
    *ret = toml_new_at(p, CC_TOML_FLOAT, p->pos);
    (*ret)->f = d;
    return 0;
}

static int
lex_special_float(toml_parser *p, const char *s, size_t len, cc_toml **ret)
{
    bool neg = s[0] == '-';
    const char *w = s + (s[0] == '-' || s[0] == '+');
    double d = w[0] == 'i' ? INFINITY : NAN;
    *ret = toml_new_at(p, CC_TOML_FLOAT, p->pos);
    (*ret)->f = neg ? -d : d;
    return 0;
}

/* Decimal integer or float in the token s[0..len): sign, int part, fraction, exponent. */
static int
lex_decimal(toml_parser *p, const char *s, size_t len, cc_toml **ret)
{
    size_t i = s[0] == '+' || s[0] == '-' ? 1 : 0, int_start = i;
    bool is_float = false;
    long int_digits = lex_digit_run(s, len, &i, 10);
    bool ok = int_digits > 0;
    if (ok && s[int_start] == '0' && int_digits > 1)
        return toml_fail(p, p->pos, "leading zeros are not allowed in '%.*s'",
                         (int)(len > 64 ? 64 : len), s);
    if (ok && i < len && s[i] == '.') {
        i++;
        ok = lex_digit_run(s, len, &i, 10) > 0;
        is_float = true;
    }
    if (ok && i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-'))
            i++;
        ok = lex_digit_run(s, len, &i, 10) > 0;
        is_float = true;
    }
    if (!ok || i != len)
        return toml_fail(p, p->pos, "invalid number '%.*s'", (int)(len > 64 ? 64 : len), s);
    if (is_float)
        return lex_float_value(p, s, len, ret);
    uint64_t v;
    bool neg = s[0] == '-';
    if (!digits_value(s + int_start, len - int_start, 10, neg ? (uint64_t)INT64_MAX + 1 : INT64_MAX,
                      &v))
        return toml_fail(p, p->pos, "integer out of range");
    *ret = toml_new_at(p, CC_TOML_INTEGER, p->pos);
    (*ret)->i = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

static int
lex_number(toml_parser *p, cc_toml **ret)
{
    const char *s = p->buf + p->pos;
    size_t len = 0;
    while (p->pos + len < p->len && is_token_char(s[len]) && s[len] != ':')
        len++;
    const char *w = s + (s[0] == '-' || s[0] == '+');
    size_t wlen = len - (size_t)(w - s);
    int r;
    if (wlen == 3 && (memcmp(w, "inf", 3) == 0 || memcmp(w, "nan", 3) == 0))
        r = lex_special_float(p, s, len, ret);
    else if (len > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'o' || s[1] == 'b'))
        r = lex_radix_int(p, s, len, ret);
    else
        r = lex_decimal(p, s, len, ret);
    if (r >= 0)
        p->pos += len;
    return r;
}

static bool
looks_like_datetime(const toml_parser *p)
{
    const char *s = p->buf + p->pos;
    size_t n = p->len - p->pos;
    if (n >= 5 && toml_is_digit(s[0]) && toml_is_digit(s[1]) && toml_is_digit(s[2]) &&
        toml_is_digit(s[3]) && s[4] == '-')
        return true;
    return n >= 3 && toml_is_digit(s[0]) && toml_is_digit(s[1]) && s[2] == ':';
}

static int
lex_bool(toml_parser *p, cc_toml **ret)
{
    size_t n = p->len - p->pos;
    const char *s = p->buf + p->pos;
    bool b;
    if (n >= 4 && memcmp(s, "true", 4) == 0)
        b = true;
    else if (n >= 5 && memcmp(s, "false", 5) == 0)
        b = false;
    else
        return -1;
    if (n > (b ? 4u : 5u) && is_token_char(s[b ? 4 : 5]))
        return -1;
    *ret = toml_new_at(p, CC_TOML_BOOL, p->pos);
    (*ret)->b = b;
    p->pos += b ? 4 : 5;
    return 0;
}

int
toml_lex_scalar(toml_parser *p, cc_toml **ret)
{
    size_t start = p->pos;
    char c = p->pos < p->len ? p->buf[p->pos] : '\0';
    if (c == '"' || c == '\'') {
        cc_toml *v = toml_new_at(p, CC_TOML_STRING, start);
        int r = toml_lex_string(p, true, &v->str.ptr, &v->str.len);
        if (r < 0) {
            toml_node_free(v);
            return r;
        }
        *ret = v;
        return 0;
    }
    if ((c == 't' || c == 'f') && lex_bool(p, ret) == 0)
        return 0;
    if (looks_like_datetime(p))
        return lex_datetime(p, ret);
    if (toml_is_digit(c) || c == '+' || c == '-' || c == 'i' || c == 'n')
        return lex_number(p, ret);
    char what[32];
    return toml_fail(p, start, "expected a value, found %s", toml_describe(p, start, what));
}
