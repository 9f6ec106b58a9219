/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internals of the TOML parser shared by toml.c (tree), toml-parse.c (document structure)
 * and toml-lex.c (scalars, positions, UTF-8). Not for use outside these files and tests.
 */
#pragma once

#include "toml.h"

#include <stdint.h>

/* Table and array flags: how a container came to exist, which decides what may extend it. */
enum {
    TOML_EXPLICIT = 1 << 0, /* table defined by its own [header] (or an [[array]] entry) */
    TOML_IMPLICIT = 1 << 1, /* created as the parent in a [a.b] header; [a] may define it once */
    TOML_DOTTED = 1 << 2,   /* created by a dotted key; only dotted keys may extend it */
    TOML_INLINE = 1 << 3,   /* inline table, closed: nothing may extend it */
    TOML_AOT = 1 << 4,      /* array created by [[header]]: only [[header]] may extend it */
};

/* Tables with more entries than this get a hash index; smaller ones are scanned. */
#define TOML_INDEX_MIN 8

typedef struct toml_entry {
    char *key; /* owned, NUL-terminated, may contain NULs */
    size_t key_len;
    uint64_t hash;
    cc_toml *value; /* owned */
} toml_entry;

struct cc_toml {
    cc_toml_type type;
    uint8_t flags;
    uint16_t depth; /* root table = 0 */
    unsigned line;
    unsigned column;
    union {
        struct {
            char *ptr; /* owned, NUL-terminated */
            size_t len;
        } str;
        int64_t i;
        double f;
        bool b;
        cc_toml_datetime dt;
        struct {
            cc_toml **items; /* owned */
            size_t len;
            size_t cap;
        } arr;
        struct {
            toml_entry *entries; /* document order */
            size_t len;
            size_t cap;
            uint32_t *slots; /* open addressing, entry index + 1, 0 = empty; NULL if small */
            size_t nslots;   /* power of two */
        } tab;
    };
};

typedef struct toml_parser {
    const char *buf;
    size_t len;
    size_t pos;
    cc_toml *root;
    cc_toml *section; /* table that key/value lines go to: the last [header] */
    cc_error **err;
    /* line/column cache, so that asking for increasing positions costs O(n) in total */
    size_t lc_pos;
    size_t lc_line_start;
    unsigned lc_line;
    unsigned lc_column;
} toml_parser;

/* toml.c: tree construction */
cc_toml *toml_node_new(cc_toml_type type, unsigned line, unsigned column);
void toml_node_free(cc_toml *v);
cc_toml *toml_table_find(const cc_toml *t, const char *key, size_t key_len);
/* Takes ownership of key (NUL-terminated at key_len) and value; key must be absent. */
void toml_table_add(cc_toml *t, char *key, size_t key_len, cc_toml *value);
void toml_array_push(cc_toml *a, cc_toml *value);

/* toml-lex.c: positions, errors, UTF-8, scalars */
void toml_position(toml_parser *p, size_t pos, unsigned *ret_line, unsigned *ret_column);
/* Sets *p->err to "line L, column C: <fmt>" for pos and returns -EINVAL. */
int toml_fail(toml_parser *p, size_t pos, const char *fmt, ...) _printf_(3, 4);
/* "end of input", "'x'", "a newline", "control character U+0000", ... for messages. */
const char *toml_describe(const toml_parser *p, size_t pos, char buf[static 32]);
/* New node of type for a value starting at pos. */
cc_toml *toml_new_at(toml_parser *p, cc_toml_type type, size_t pos);
int toml_check_utf8(toml_parser *p);
/*
 * Parses a string starting at the quote at p->pos (multi-line forms only when multiline).
 * On success *ret is an owned NUL-terminated buffer of *ret_len bytes.
 */
int toml_lex_string(toml_parser *p, bool multiline, char **ret, size_t *ret_len);
/*
 * Parses a string, number, boolean or date/time at p->pos into *ret (owned); fails with
 * "expected a value" when there is none.
 */
int toml_lex_scalar(toml_parser *p, cc_toml **ret);

static inline bool
toml_is_bare_key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

static inline bool
toml_is_digit(char c)
{
    return c >= '0' && c <= '9';
}
