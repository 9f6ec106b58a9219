/* SPDX-License-Identifier: Apache-2.0 */
/*
 * containerd's filter syntax (github.com/containerd/containerd/filters) on snapshot infos,
 * with the field adaptor of containerd's metadata layer (adaptSnapshot): name, parent
 * (always present, "" without one), kind, labels.<key> (the rest of the path joined by '.').
 */
#define _GNU_SOURCE
#include "store.h"

#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

typedef enum op {
    OP_PRESENT,
    OP_EQ,
    OP_NE,
    OP_MATCH,
} op;

typedef struct parser {
    const char *p;
    const char *filter;
} parser;

static void
skip_space(parser *ps)
{
    while (*ps->p == ' ' || *ps->p == '\t')
        ps->p++;
}

/* A quoted string ("..." or `...`) at ps->p, unescaped, into *ret. */
static int
parse_quoted(parser *ps, char **ret, cc_error **err)
{
    char q = *ps->p++;
    size_t cap = strlen(ps->p) + 1, n = 0;
    char *out = cc_xmalloc(cap);
    while (*ps->p && *ps->p != q) {
        if (q == '"' && *ps->p == '\\' && ps->p[1]) {
            ps->p++;
            switch (*ps->p) {
            case 'n': out[n++] = '\n'; break;
            case 't': out[n++] = '\t'; break;
            default: out[n++] = *ps->p; break;
            }
            ps->p++;
        } else
            out[n++] = *ps->p++;
    }
    if (*ps->p != q) {
        free(out);
        return cc_error_msg(err, -EINVAL, "filter \"%s\": unterminated quoted string", ps->filter);
    }
    ps->p++;
    out[n] = '\0';
    *ret = out;
    return 0;
}

/* One field path component: quoted, or a run of characters that are no syntax. */
static int
parse_field(parser *ps, char **ret, cc_error **err)
{
    skip_space(ps);
    if (*ps->p == '"' || *ps->p == '`')
        return parse_quoted(ps, ret, err);
    size_t n = strcspn(ps->p, ".,=!~\"` \t");
    if (n == 0)
        return cc_error_msg(err, -EINVAL, "filter \"%s\": expected a field at offset %zu",
                            ps->filter, (size_t)(ps->p - ps->filter));
    *ret = cc_xstrndup(ps->p, n);
    ps->p += n;
    return 0;
}

static int
parse_value(parser *ps, char **ret, cc_error **err)
{
    skip_space(ps);
    if (*ps->p == '"' || *ps->p == '`')
        return parse_quoted(ps, ret, err);
    size_t n = strcspn(ps->p, ",");
    while (n > 0 && (ps->p[n - 1] == ' ' || ps->p[n - 1] == '\t'))
        n--;
    *ret = cc_xstrndup(ps->p, n);
    ps->p += n;
    return 0;
}

/* The value of the field path (components joined by '.') of info; NULL when absent. */
static const char *
field_value(const snap_info *info, const char *path)
{
    if (cc_streq(path, "name"))
        return info->name;
    if (cc_streq(path, "parent"))
        return info->parent ? info->parent : "";
    if (cc_streq(path, "kind"))
        return snap_kind_to_string(info->kind);
    if (cc_startswith(path, "labels.") && path[7])
        return json_string_value(json_object_get(info->labels, path + 7));
    return NULL;
}

static bool
selector_match(const snap_info *info, const char *path, op o, const char *value)
{
    const char *v = field_value(info, path);
    switch (o) {
    case OP_PRESENT:
        return v != NULL;
    case OP_EQ:
        return v && cc_streq(v, value);
    case OP_NE:
        return !v || !cc_streq(v, value);
    case OP_MATCH: {
        regex_t re;
        if (regcomp(&re, value, REG_EXTENDED | REG_NOSUB) != 0)
            return false;
        bool m = regexec(&re, v ? v : "", 0, NULL, 0) == 0;
        regfree(&re);
        return m;
    }
    }
    return false;
}

/* Parses one selector at ps->p and tells whether info matches it. */
static int
selector(parser *ps, const snap_info *info, bool *ret, cc_error **err)
{
    _cleanup_free_ char *path = NULL, *value = NULL;
    int r;

    for (;;) {
        _cleanup_free_ char *field = NULL;
        r = parse_field(ps, &field, err);
        if (r < 0)
            return r;
        char *joined = path ? cc_xasprintf("%s.%s", path, field) : TAKE_PTR(field);
        free(path);
        path = joined;
        skip_space(ps);
        if (*ps->p != '.')
            break;
        ps->p++;
    }

    op o = OP_PRESENT;
    if (cc_startswith(ps->p, "==")) {
        o = OP_EQ;
        ps->p += 2;
    } else if (cc_startswith(ps->p, "!=")) {
        o = OP_NE;
        ps->p += 2;
    } else if (cc_startswith(ps->p, "~=")) {
        o = OP_MATCH;
        ps->p += 2;
    } else if (*ps->p && *ps->p != ',')
        return cc_error_msg(err, -EINVAL, "filter \"%s\": unexpected '%c' at offset %zu",
                            ps->filter, *ps->p, (size_t)(ps->p - ps->filter));
    if (o != OP_PRESENT) {
        r = parse_value(ps, &value, err);
        if (r < 0)
            return r;
    }
    skip_space(ps);
    *ret = selector_match(info, path, o, value);
    return 0;
}

int
snap_filter_match(const snap_info *info, const char *filter, bool *ret, cc_error **err)
{
    parser ps = {.p = filter, .filter = filter};
    bool all = true;

    skip_space(&ps);
    if (!*ps.p) {
        *ret = true;
        return 0;
    }
    for (;;) {
        bool m = false;
        int r = selector(&ps, info, &m, err);
        if (r < 0)
            return r;
        all = all && m;
        if (!*ps.p)
            break;
        if (*ps.p != ',')
            return cc_error_msg(err, -EINVAL, "filter \"%s\": expected ',' at offset %zu", filter,
                                (size_t)(ps.p - filter));
        ps.p++;
    }
    *ret = all;
    return 0;
}
