/* SPDX-License-Identifier: Apache-2.0 */
/*
 * toml-test decoder: reads TOML on stdin and prints toml-test's tagged JSON on stdout
 * (tables become objects, arrays become arrays, every scalar {"type": T, "value": "text"}).
 * Exits 0 on success; on invalid TOML prints the error on stderr and exits 1.
 * The JSON is written by hand so that tables keep document order.
 */
#include "error.h"
#include "toml.h"
#include "util.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
put_json_string(FILE *out, const char *s, size_t len)
{
    fputc('"', out);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"':
            fputs("\\\"", out);
            break;
        case '\\':
            fputs("\\\\", out);
            break;
        case '\n':
            fputs("\\n", out);
            break;
        case '\r':
            fputs("\\r", out);
            break;
        case '\t':
            fputs("\\t", out);
            break;
        case '\b':
            fputs("\\b", out);
            break;
        case '\f':
            fputs("\\f", out);
            break;
        default:
            if (c < 0x20 || c == 0x7F)
                fprintf(out, "\\u%04x", c);
            else
                fputc(c, out); /* UTF-8 passes through: the parser validated it */
        }
    }
    fputc('"', out);
}

/* Shortest text that reads back as the same double. */
static void
format_float(double d, char *buf, size_t size)
{
    if (isnan(d)) {
        snprintf(buf, size, "nan");
        return;
    }
    if (isinf(d)) {
        snprintf(buf, size, d < 0 ? "-inf" : "inf");
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, size, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            return;
    }
}

static void
put_scalar(FILE *out, const cc_toml *v)
{
    char text[64];
    switch (cc_toml_type_of(v)) {
    case CC_TOML_STRING: {
        size_t len;
        const char *s = cc_toml_as_string(v, &len);
        fputs("{\"type\": \"string\", \"value\": ", out);
        put_json_string(out, s, len);
        fputs("}", out);
        return;
    }
    case CC_TOML_INTEGER:
        snprintf(text, sizeof(text), "%" PRId64, cc_toml_as_int(v));
        break;
    case CC_TOML_FLOAT:
        format_float(cc_toml_as_float(v), text, sizeof(text));
        break;
    case CC_TOML_BOOL:
        snprintf(text, sizeof(text), "%s", cc_toml_as_bool(v) ? "true" : "false");
        break;
    default:
        cc_toml_datetime_format(cc_toml_as_datetime(v), text);
        break;
    }
    fprintf(out, "{\"type\": \"%s\", \"value\": \"%s\"}", cc_toml_type_name(cc_toml_type_of(v)),
            text);
}

/* Recursion is bounded by CC_TOML_MAX_DEPTH. */
static void
put_value(FILE *out, const cc_toml *v)
{
    switch (cc_toml_type_of(v)) {
    case CC_TOML_TABLE:
        fputc('{', out);
        for (size_t i = 0; i < cc_toml_table_len(v); i++) {
            size_t len;
            const char *key = cc_toml_table_key_at(v, i, &len);
            if (i > 0)
                fputs(", ", out);
            put_json_string(out, key, len);
            fputs(": ", out);
            put_value(out, cc_toml_table_value_at(v, i));
        }
        fputc('}', out);
        break;
    case CC_TOML_ARRAY:
        fputc('[', out);
        for (size_t i = 0; i < cc_toml_array_len(v); i++) {
            if (i > 0)
                fputs(", ", out);
            put_value(out, cc_toml_array_at(v, i));
        }
        fputc(']', out);
        break;
    default:
        put_scalar(out, v);
        break;
    }
}

int
main(void)
{
    size_t cap = 65536, len = 0;
    _cleanup_free_ char *buf = cc_xmalloc(cap);
    for (;;) {
        if (len == cap)
            buf = cc_xrealloc(buf, cap *= 2);
        size_t n = fread(buf + len, 1, cap - len, stdin);
        if (n == 0)
            break;
        len += n;
    }
    if (ferror(stdin)) {
        fprintf(stderr, "toml-test-decoder: read error\n");
        return 1;
    }
    _cleanup_error_ cc_error *err = NULL;
    _cleanup_(cc_toml_freep) cc_toml *root = cc_toml_parse(buf, len, &err);
    if (!root) {
        fprintf(stderr, "toml-test-decoder: %s\n", cc_error_message(err));
        return 1;
    }
    put_value(stdout, root);
    fputc('\n', stdout);
    return fflush(stdout) == 0 ? 0 : 1;
}
