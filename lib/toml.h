/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TOML 1.0.0 parser producing an immutable tree (https://toml.io/en/v1.0.0).
 *
 * Ownership: cc_toml_parse() and cc_toml_parse_file() return the root table, which owns
 * every value below it. All other cc_toml pointers and every string the accessors return
 * are borrowed from that root and stay valid until cc_toml_free(root). Only the root may
 * be freed. The tree is never modified after parsing, so one tree may be read from several
 * threads at once; parsing itself keeps no global state and never blocks (except for the
 * read(2) in cc_toml_parse_file()).
 *
 * Input: (buf, len) need not be NUL-terminated and is never read past len. It must be
 * UTF-8 (an optional leading BOM is skipped); overlong forms, surrogates, code points above
 * U+10FFFF, NUL and the other control characters TOML forbids are rejected wherever they
 * appear. Arrays, inline tables and tables may nest at most CC_TOML_MAX_DEPTH levels deep
 * (the root table is level 0), so walking the tree recursively is safe.
 *
 * Errors: parse errors are -EINVAL with the message "line L, column C: <what>". Lines and
 * columns are 1-based; columns count characters (Unicode code points), not bytes. A tab
 * counts as one column.
 *
 * Dates and times: fractional seconds beyond nanoseconds are truncated, as the spec asks.
 * Seconds may be 60 (leap second); no check is made that the leap second really existed.
 */
#pragma once

#include "error.h"
#include "macro.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CC_TOML_MAX_DEPTH 128

typedef struct cc_toml cc_toml;

typedef enum cc_toml_type {
    CC_TOML_TABLE,
    CC_TOML_ARRAY,
    CC_TOML_STRING,
    CC_TOML_INTEGER,
    CC_TOML_FLOAT,
    CC_TOML_BOOL,
    CC_TOML_DATETIME,       /* offset date-time: date, time and offset */
    CC_TOML_DATETIME_LOCAL, /* date and time, no offset */
    CC_TOML_DATE_LOCAL,     /* date only */
    CC_TOML_TIME_LOCAL,     /* time only */
    _CC_TOML_TYPE_MAX,
    _CC_TOML_TYPE_INVALID = -EINVAL,
} cc_toml_type;

/* Any of the four date/time types. Fields a type does not have are 0. */
typedef struct cc_toml_datetime {
    int year;           /* 0..9999 */
    int month;          /* 1..12 */
    int day;            /* 1..31, valid for the month and year */
    int hour;           /* 0..23 */
    int minute;         /* 0..59 */
    int second;         /* 0..60 */
    int nanosecond;     /* 0..999999999 */
    int frac_digits;    /* digits after the '.' in the document, at most 9; 0 when none */
    int offset_minutes; /* UTC offset, -1439..1439; 0 for 'Z' */
    bool has_date;
    bool has_time;
    bool has_offset;
} cc_toml_datetime;

/* Longest text cc_toml_datetime_format() writes, with the NUL. */
#define CC_TOML_DATETIME_MAX sizeof("9999-12-31T23:59:60.999999999+23:59")

/*
 * Parses a whole document. Returns the root table (free with cc_toml_free()), or NULL with
 * -EINVAL in *err ("line L, column C: <what>").
 */
cc_toml *cc_toml_parse(const char *buf, size_t len, cc_error **err);
/*
 * Reads and parses the file at path (at most 64 MiB). Parse errors read
 * "PATH: line L, column C: <what>"; open/read errors carry errno ("open 'PATH': ...").
 * Blocks on the read.
 */
cc_toml *cc_toml_parse_file(const char *path, cc_error **err);
/* Frees a root returned by cc_toml_parse*(). NULL-safe; returns NULL. */
cc_toml *cc_toml_free(cc_toml *root);
CC_DEFINE_CLEANUP(cc_toml, cc_toml_free)

/* "table", "array", "string", "integer", "float", "bool", "datetime", "datetime-local",
 * "date-local", "time-local" (the toml-test names), or "invalid". Static. */
const char *cc_toml_type_name(cc_toml_type type);

/* The type of v, or _CC_TOML_TYPE_INVALID for NULL. */
cc_toml_type cc_toml_type_of(const cc_toml *v);
/*
 * Where v was defined, 1-based (0 for NULL): the first character of the value for
 * key/value pairs and array elements, the '[' of the header for tables defined by [a] or
 * [[a]], the key for tables created implicitly by dotted keys or headers, 1:1 for the root.
 */
unsigned cc_toml_line(const cc_toml *v);
unsigned cc_toml_column(const cc_toml *v);

/*
 * Tables keep document order. Keys are NUL-terminated but may also contain NULs (from
 * "\u0000" in quoted keys); ret_len (may be NULL) gets the full length. Index/len accessors
 * return 0/NULL when t is not a table or i is out of range. cc_toml_table_get() is a hash
 * lookup (constant time) for the whole key string; use cc_toml_table_getn() for keys with
 * NULs.
 */
size_t cc_toml_table_len(const cc_toml *t);
const char *cc_toml_table_key_at(const cc_toml *t, size_t i, size_t *ret_len);
cc_toml *cc_toml_table_value_at(const cc_toml *t, size_t i);
cc_toml *cc_toml_table_get(const cc_toml *t, const char *key);
cc_toml *cc_toml_table_getn(const cc_toml *t, const char *key, size_t key_len);

/* Arrays: 0/NULL when a is not an array or i is out of range. Elements may mix types. */
size_t cc_toml_array_len(const cc_toml *a);
cc_toml *cc_toml_array_at(const cc_toml *a, size_t i);

/*
 * Scalar values. Each returns a neutral value when v is NULL or of another type: NULL,
 * 0, 0.0, false. Strings are NUL-terminated UTF-8 and may contain NULs; ret_len (may be
 * NULL) gets the length. cc_toml_as_datetime() accepts all four date/time types.
 */
const char *cc_toml_as_string(const cc_toml *v, size_t *ret_len);
int64_t cc_toml_as_int(const cc_toml *v);
double cc_toml_as_float(const cc_toml *v);
bool cc_toml_as_bool(const cc_toml *v);
const cc_toml_datetime *cc_toml_as_datetime(const cc_toml *v);

/*
 * Writes dt as RFC 3339 / TOML text ("1979-05-27T07:32:00.5-07:00", "07:32:00", ...) with
 * the document's fraction digits and 'Z' for a zero offset. Returns the length.
 */
size_t cc_toml_datetime_format(const cc_toml_datetime *dt, char buf[static CC_TOML_DATETIME_MAX]);

/*
 * Typed lookups for configuration code. table must be a table (else -EINVAL). On success
 * return 0 and set *ret (borrowed from the tree). When key is absent return -ENOENT and
 * leave *err alone. When the value has another type return -EINVAL with
 * "line L: key 'KEY': expected TYPE, got TYPE" in *err; callers usually prefix the file
 * name. *ret is only written on success. cc_toml_get_float() also accepts an integer.
 * cc_toml_get_string() rejects strings containing NUL (-EINVAL), since callers use them
 * as C strings; use cc_toml_table_get() + cc_toml_as_string() to read those.
 */
int cc_toml_get_string(const cc_toml *table, const char *key, const char **ret, cc_error **err);
int cc_toml_get_int(const cc_toml *table, const char *key, int64_t *ret, cc_error **err);
int cc_toml_get_float(const cc_toml *table, const char *key, double *ret, cc_error **err);
int cc_toml_get_bool(const cc_toml *table, const char *key, bool *ret, cc_error **err);
int cc_toml_get_datetime(const cc_toml *table, const char *key, const cc_toml_datetime **ret,
                         cc_error **err);
int cc_toml_get_table(const cc_toml *table, const char *key, const cc_toml **ret, cc_error **err);
int cc_toml_get_array(const cc_toml *table, const char *key, const cc_toml **ret, cc_error **err);
