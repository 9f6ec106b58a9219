/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TOML document structure: key/value lines, [table] and [[array]] headers, dotted keys,
 * arrays and inline tables, and the rules about which tables may be defined or extended.
 *
 * How a table came to exist decides who may add to it (flags in toml-priv.h):
 *   - [a.b] defines b (EXPLICIT) and creates a if needed (IMPLICIT). An IMPLICIT table may
 *     be defined by its own header once; an EXPLICIT one never again.
 *   - a.b = 1 creates a (DOTTED). Only dotted keys may add to a DOTTED table, and no
 *     header may define it, though headers may create sub-tables inside it. Dotted keys
 *     may not add to tables that headers defined; an IMPLICIT table they add to becomes
 *     DOTTED (defined), as TOML 1.0 only forbids redefining tables "defined in [table]
 *     form".
 *   - Inline tables (INLINE) and static arrays are closed once written.
 *   - [[a]] appends to an array of tables (AOT); headers below a descend into its last
 *     element.
 */
#include "toml-priv.h"
#include "util.h"

#include <string.h>

typedef struct key_part {
    char *name; /* owned until moved into a table */
    size_t len;
    size_t pos;
} key_part;

typedef struct key_path {
    key_part *parts;
    size_t n;
    size_t cap;
} key_path;

static void
key_path_done(key_path *k)
{
    for (size_t i = 0; i < k->n; i++)
        free(k->parts[i].name);
    free(k->parts);
}

static int parse_value(toml_parser *p, unsigned depth, cc_toml **ret);

static void
skip_ws(toml_parser *p)
{
    while (p->pos < p->len && (p->buf[p->pos] == ' ' || p->buf[p->pos] == '\t'))
        p->pos++;
}

static bool
at_char(const toml_parser *p, char c)
{
    return p->pos < p->len && p->buf[p->pos] == c;
}

/* A comment at p->pos, if any, up to (not including) the end of the line. */
static int
skip_comment(toml_parser *p)
{
    if (!at_char(p, '#'))
        return 0;
    for (p->pos++; p->pos < p->len; p->pos++) {
        unsigned char c = (unsigned char)p->buf[p->pos];
        if (c == '\n' || (c == '\r' && p->pos + 1 < p->len && p->buf[p->pos + 1] == '\n'))
            return 0;
        if ((c < 0x20 && c != '\t') || c == 0x7F)
            return toml_fail(p, p->pos, "control character U+%04X in a comment", c);
    }
    return 0;
}

/* A newline (LF or CRLF) at p->pos: consumes it and returns true. */
static bool
skip_newline(toml_parser *p)
{
    if (at_char(p, '\n')) {
        p->pos++;
        return true;
    }
    if (at_char(p, '\r') && p->pos + 1 < p->len && p->buf[p->pos + 1] == '\n') {
        p->pos += 2;
        return true;
    }
    return false;
}

/* Whitespace and comment up to the end of the line, then the newline (or end of input). */
static int
expect_eol(toml_parser *p, const char *after)
{
    skip_ws(p);
    int r = skip_comment(p);
    if (r < 0)
        return r;
    if (p->pos >= p->len || skip_newline(p))
        return 0;
    char what[32];
    return toml_fail(p, p->pos, "expected the end of the line%s, found %s", after,
                     toml_describe(p, p->pos, what));
}

/* Whitespace, newlines and comments, as allowed inside arrays. */
static int
skip_ws_comments_newlines(toml_parser *p)
{
    for (;;) {
        skip_ws(p);
        int r = skip_comment(p);
        if (r < 0)
            return r;
        if (!skip_newline(p))
            return 0;
    }
}

/* Human-readable key path up to and including part last, for messages. Owned. */
static char *
key_display(const key_path *k, size_t last)
{
    size_t size = 1;
    for (size_t i = 0; i <= last; i++)
        size += k->parts[i].len + 3;
    char *s = cc_xmalloc(size), *o = s;
    for (size_t i = 0; i <= last; i++) {
        const key_part *kp = &k->parts[i];
        bool bare = kp->len > 0;
        for (size_t j = 0; j < kp->len; j++)
            bare = bare && toml_is_bare_key_char(kp->name[j]);
        if (i > 0)
            *o++ = '.';
        if (!bare)
            *o++ = '"';
        for (size_t j = 0; j < kp->len; j++) {
            unsigned char c = (unsigned char)kp->name[j];
            *o++ = c < 0x20 || c == 0x7F ? '?' : (char)c;
        }
        if (!bare)
            *o++ = '"';
    }
    *o = '\0';
    return s;
}

static int
parse_simple_key(toml_parser *p, key_part *ret)
{
    size_t start = p->pos;
    char c = start < p->len ? p->buf[start] : '\0';
    if (c == '"' || c == '\'') {
        if (start + 2 < p->len && p->buf[start + 1] == c && p->buf[start + 2] == c)
            return toml_fail(p, start, "multi-line strings cannot be keys");
        int r = toml_lex_string(p, false, &ret->name, &ret->len);
        if (r < 0)
            return r;
    } else {
        while (p->pos < p->len && toml_is_bare_key_char(p->buf[p->pos]))
            p->pos++;
        if (p->pos == start) {
            char what[32];
            return toml_fail(p, start, "expected a key, found %s", toml_describe(p, start, what));
        }
        ret->len = p->pos - start;
        ret->name = cc_xstrndup(p->buf + start, ret->len);
    }
    ret->pos = start;
    return 0;
}

/* key = simple-key *( ws "." ws simple-key ), with leading and trailing whitespace. */
static int
parse_key(toml_parser *p, key_path *k)
{
    for (;;) {
        skip_ws(p);
        if (k->n == k->cap) {
            k->cap = k->cap ? k->cap * 2 : 4;
            k->parts = cc_xreallocarray(k->parts, k->cap, sizeof(*k->parts));
        }
        key_part part = {0};
        int r = parse_simple_key(p, &part);
        if (r < 0)
            return r;
        k->parts[k->n++] = part;
        skip_ws(p);
        if (!at_char(p, '.'))
            return 0;
        p->pos++;
    }
}

/* New table or array below parent, checking the depth limit. */
static int
new_container(toml_parser *p, const cc_toml *parent, cc_toml_type type, uint8_t flags, size_t pos,
              cc_toml **ret)
{
    if (parent->depth + 1u > CC_TOML_MAX_DEPTH)
        return toml_fail(p, pos, "nested more than %d levels deep", CC_TOML_MAX_DEPTH);
    cc_toml *t = toml_new_at(p, type, pos);
    t->depth = (uint16_t)(parent->depth + 1);
    t->flags = flags;
    *ret = t;
    return 0;
}

/* Adds a new child container under key part kp of parent (which moves kp->name). */
static int
add_container(toml_parser *p, cc_toml *parent, key_part *kp, cc_toml_type type, uint8_t flags,
              size_t pos, cc_toml **ret)
{
    cc_toml *t = NULL;
    int r = new_container(p, parent, type, flags, pos, &t);
    if (r < 0)
        return r;
    toml_table_add(parent, TAKE_PTR(kp->name), kp->len, t);
    *ret = t;
    return 0;
}

static int
fail_defined(toml_parser *p, const key_path *k, size_t i, const cc_toml *v, const char *what)
{
    _cleanup_free_ char *name = key_display(k, i);
    const char *how = v->type != CC_TOML_TABLE ? cc_toml_type_name(v->type)
                      : v->flags & TOML_INLINE ? "inline table"
                      : v->flags & TOML_DOTTED ? "table (by dotted keys)"
                                               : "table (by a [header])";
    return toml_fail(p, k->parts[i].pos, "%s '%s': already defined as %s at line %u", what, name,
                     how, v->line);
}

/* Walks the dotted key's parents below t, creating them; *ret gets the last parent. */
static int
walk_dotted(toml_parser *p, cc_toml *t, key_path *k, cc_toml **ret)
{
    for (size_t i = 0; i + 1 < k->n; i++) {
        key_part *kp = &k->parts[i];
        cc_toml *child = toml_table_find(t, kp->name, kp->len);
        int r = 0;
        if (!child)
            r = add_container(p, t, kp, CC_TOML_TABLE, TOML_DOTTED, kp->pos, &child);
        else if (child->type == CC_TOML_TABLE && child->flags == TOML_IMPLICIT)
            child->flags = TOML_DOTTED; /* now defined, by dotted keys */
        else if (child->type != CC_TOML_TABLE || !(child->flags & TOML_DOTTED))
            r = fail_defined(p, k, i, child, "cannot add to key");
        if (r < 0)
            return r;
        t = child;
    }
    *ret = t;
    return 0;
}

/* key = value, into table t (the current section or an inline table). */
static int
parse_keyval(toml_parser *p, cc_toml *t)
{
    _cleanup_(key_path_done) key_path k = {0};
    int r = parse_key(p, &k);
    if (r < 0)
        return r;
    if (!at_char(p, '=')) {
        char what[32];
        return toml_fail(p, p->pos, "expected '=' after the key, found %s",
                         toml_describe(p, p->pos, what));
    }
    p->pos++;
    skip_ws(p);
    cc_toml *parent = NULL, *value = NULL;
    r = walk_dotted(p, t, &k, &parent);
    if (r < 0)
        return r;
    key_part *last = &k.parts[k.n - 1];
    const cc_toml *old = toml_table_find(parent, last->name, last->len);
    if (old)
        return fail_defined(p, &k, k.n - 1, old, "duplicate key");
    r = parse_value(p, parent->depth + 1u, &value);
    if (r < 0)
        return r;
    toml_table_add(parent, TAKE_PTR(last->name), last->len, value);
    return 0;
}

static int
check_depth(toml_parser *p, unsigned depth)
{
    if (depth > CC_TOML_MAX_DEPTH)
        return toml_fail(p, p->pos, "nested more than %d levels deep", CC_TOML_MAX_DEPTH);
    return 0;
}

static int
parse_array_items(toml_parser *p, cc_toml *a, size_t start)
{
    for (;;) {
        int r = skip_ws_comments_newlines(p);
        if (r < 0)
            return r;
        if (at_char(p, ']')) {
            p->pos++;
            return 0;
        }
        if (p->pos >= p->len)
            return toml_fail(p, start, "unterminated array");
        cc_toml *v = NULL;
        r = parse_value(p, a->depth + 1u, &v);
        if (r < 0)
            return r;
        toml_array_push(a, v);
        r = skip_ws_comments_newlines(p);
        if (r < 0)
            return r;
        if (at_char(p, ',')) {
            p->pos++;
            continue;
        }
        if (at_char(p, ']')) {
            p->pos++;
            return 0;
        }
        if (p->pos >= p->len)
            return toml_fail(p, start, "unterminated array");
        char what[32];
        return toml_fail(p, p->pos, "expected ',' or ']' in the array, found %s",
                         toml_describe(p, p->pos, what));
    }
}

static int
parse_array(toml_parser *p, unsigned depth, cc_toml **ret)
{
    int r = check_depth(p, depth);
    if (r < 0)
        return r;
    size_t start = p->pos++;
    _cleanup_(cc_toml_freep) cc_toml *a = toml_new_at(p, CC_TOML_ARRAY, start);
    a->depth = (uint16_t)depth;
    r = parse_array_items(p, a, start);
    if (r < 0)
        return r;
    *ret = TAKE_PTR(a);
    return 0;
}

static int
parse_inline_items(toml_parser *p, cc_toml *t, size_t start)
{
    skip_ws(p);
    if (at_char(p, '}')) {
        p->pos++;
        return 0;
    }
    for (;;) {
        int r = parse_keyval(p, t);
        if (r < 0)
            return r;
        skip_ws(p);
        if (at_char(p, '}')) {
            p->pos++;
            return 0;
        }
        if (!at_char(p, ',')) {
            char what[32];
            if (p->pos >= p->len)
                return toml_fail(p, start, "unterminated inline table");
            return toml_fail(p, p->pos,
                             "expected ',' or '}' in the inline table (which must be on "
                             "one line), found %s",
                             toml_describe(p, p->pos, what));
        }
        p->pos++;
        skip_ws(p);
        if (at_char(p, '}'))
            return toml_fail(p, p->pos, "trailing comma in an inline table");
    }
}

static int
parse_inline_table(toml_parser *p, unsigned depth, cc_toml **ret)
{
    int r = check_depth(p, depth);
    if (r < 0)
        return r;
    size_t start = p->pos++;
    _cleanup_(cc_toml_freep) cc_toml *t = toml_new_at(p, CC_TOML_TABLE, start);
    t->depth = (uint16_t)depth;
    r = parse_inline_items(p, t, start);
    if (r < 0)
        return r;
    t->flags |= TOML_INLINE;
    *ret = TAKE_PTR(t);
    return 0;
}

/* A value at p->pos, which sits at depth in the tree (for the nesting limit). */
static int
parse_value(toml_parser *p, unsigned depth, cc_toml **ret)
{
    if (at_char(p, '['))
        return parse_array(p, depth, ret);
    if (at_char(p, '{'))
        return parse_inline_table(p, depth, ret);
    return toml_lex_scalar(p, ret);
}

/* Walks a header's parents from the root, creating IMPLICIT tables; *ret = last parent. */
static int
walk_header(toml_parser *p, key_path *k, cc_toml **ret)
{
    cc_toml *t = p->root;
    for (size_t i = 0; i + 1 < k->n; i++) {
        key_part *kp = &k->parts[i];
        cc_toml *child = toml_table_find(t, kp->name, kp->len);
        int r = 0;
        if (!child)
            r = add_container(p, t, kp, CC_TOML_TABLE, TOML_IMPLICIT, kp->pos, &child);
        else if (child->type == CC_TOML_ARRAY && (child->flags & TOML_AOT))
            child = child->arr.items[child->arr.len - 1];
        else if (child->type != CC_TOML_TABLE || (child->flags & TOML_INLINE))
            r = fail_defined(p, k, i, child, "cannot add to key");
        if (r < 0)
            return r;
        t = child;
    }
    *ret = t;
    return 0;
}

/* [[a.b]]: appends a table to the array of tables a.b. */
static int
define_array_table(toml_parser *p, key_path *k, cc_toml *parent, size_t start)
{
    key_part *last = &k->parts[k->n - 1];
    cc_toml *a = toml_table_find(parent, last->name, last->len), *t = NULL;
    int r = 0;
    if (!a)
        r = add_container(p, parent, last, CC_TOML_ARRAY, TOML_AOT, start, &a);
    else if (a->type != CC_TOML_ARRAY || !(a->flags & TOML_AOT))
        r = fail_defined(p, k, k->n - 1, a, "cannot define array of tables");
    if (r < 0)
        return r;
    r = new_container(p, a, CC_TOML_TABLE, TOML_EXPLICIT, start, &t);
    if (r < 0)
        return r;
    toml_array_push(a, t);
    p->section = t;
    return 0;
}

/* [a.b]: defines table a.b, which may exist only as an IMPLICIT parent. */
static int
define_table(toml_parser *p, key_path *k, cc_toml *parent, size_t start)
{
    key_part *last = &k->parts[k->n - 1];
    cc_toml *t = toml_table_find(parent, last->name, last->len);
    if (!t) {
        int r = add_container(p, parent, last, CC_TOML_TABLE, TOML_EXPLICIT, start, &t);
        if (r < 0)
            return r;
    } else if (t->type == CC_TOML_TABLE && t->flags == TOML_IMPLICIT) {
        t->flags = TOML_EXPLICIT;
        toml_position(p, start, &t->line, &t->column);
    } else {
        return fail_defined(p, k, k->n - 1, t, "cannot define table");
    }
    p->section = t;
    return 0;
}

/* [key] or [[key]] at p->pos. */
static int
parse_header(toml_parser *p)
{
    size_t start = p->pos;
    bool aot = p->pos + 1 < p->len && p->buf[p->pos + 1] == '[';
    p->pos += aot ? 2 : 1;
    _cleanup_(key_path_done) key_path k = {0};
    int r = parse_key(p, &k);
    if (r < 0)
        return r;
    if (!at_char(p, ']') || (aot && (p->pos + 1 >= p->len || p->buf[p->pos + 1] != ']'))) {
        char what[32];
        return toml_fail(p, p->pos, "expected '%s' to close the header, found %s", aot ? "]]" : "]",
                         toml_describe(p, p->pos, what));
    }
    p->pos += aot ? 2 : 1;
    cc_toml *parent = NULL;
    r = walk_header(p, &k, &parent);
    if (r < 0)
        return r;
    return aot ? define_array_table(p, &k, parent, start) : define_table(p, &k, parent, start);
}

static int
parse_document(toml_parser *p)
{
    for (;;) {
        skip_ws(p);
        if (p->pos >= p->len)
            return 0;
        int r;
        char c = p->buf[p->pos];
        if (c == '[') {
            r = parse_header(p);
            if (r >= 0)
                r = expect_eol(p, " after the table header");
        } else if (c == '#' || c == '\n' || c == '\r') {
            r = expect_eol(p, "");
        } else {
            r = parse_keyval(p, p->section);
            if (r >= 0)
                r = expect_eol(p, " after the value");
        }
        if (r < 0)
            return r;
    }
}

cc_toml *
cc_toml_parse(const char *buf, size_t len, cc_error **err)
{
    if (!buf)
        len = 0;
    /* A UTF-8 byte order mark is not part of the document. */
    if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0) {
        buf += 3;
        len -= 3;
    }
    toml_parser p = {
        .buf = buf,
        .len = len,
        .err = err,
        .lc_line = 1,
        .lc_column = 1,
    };
    if (toml_check_utf8(&p) < 0)
        return NULL;
    _cleanup_(cc_toml_freep) cc_toml *root = toml_node_new(CC_TOML_TABLE, 1, 1);
    root->flags = TOML_EXPLICIT;
    p.root = p.section = root;
    if (parse_document(&p) < 0)
        return NULL;
    return TAKE_PTR(root);
}
