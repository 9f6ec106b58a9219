/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Helpers on jansson for untrusted JSON (OCI config.json, agent requests): bounded loading
 * with "name: line L, column C: what" errors, and typed getters whose errors name the field
 * path, so a converter can say exactly what is wrong:
 *
 *     field 'process.args[2]': expected string, got integer
 *     field 'process.user.uid': 4294967296 out of range [0, 4294967295]
 *
 * Paths. The cc_json_get_*() getters take a path relative to the value they are given:
 * keys separated by '.', array indexes as "[N]", and keys that contain '.', '[', ']' or '"'
 * (annotation names) quoted as ["io.kubernetes.cri.sandbox-id"] with \" and \\ escapes:
 *
 *     process.user.uid      mounts[3].destination      annotations["io.katacontainers.x"]
 *
 * The error names the path exactly as the caller wrote it, so nested converters either
 * look up from the document root with full paths ("mounts[%zu].type") or check values they
 * already hold with cc_json_as_*(), which take the display name for errors.
 *
 * Absent fields. A missing key, an index past the end, and JSON null (which Go's
 * encoding/json, behind most OCI producers, treats as absent) all give -ENOENT and leave
 * *err alone, so optional fields are `if (r == -ENOENT) use the default`. Every other
 * failure is -EINVAL with a message (or -ENOMEM/-EFBIG where said).
 *
 * Returned json_t and const char * are borrowed from the document unless said otherwise.
 * Nothing here blocks except loading from an fd or file. jansson values are not
 * thread-safe: one thread per document.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

/*
 * jansson >= 2.9 already ships json_decrefp() (NULL-safe, clears the pointer), so this is
 * the CC_DEFINE_CLEANUP(json_t, json_decref) equivalent; defining ours would clash.
 */
#define _cleanup_json_ _cleanup_(json_decrefp)

/* A default bound for documents from the host (an OCI config.json is a few KiB). */
#define CC_JSON_MAX_SIZE (4u << 20)

/*
 * Parses len bytes of buf as one JSON value (any type; duplicate keys and "\u0000" are
 * rejected). name (NULL: "JSON") starts the error: "config.json: line 3, column 5: ...".
 * *ret gets a new reference (caller decrefs) only on success. Returns 0, -EFBIG when
 * len > max, -ENOMEM, or -EINVAL on a syntax error. Never blocks.
 */
int cc_json_load_buffer(const char *buf, size_t len, const char *name, size_t max, json_t **ret,
                        cc_error **err);

/* Same, reading fd to EOF first (bounded by max: -EFBIG). Blocks on the read. */
int cc_json_load_fd(int fd, const char *name, size_t max, json_t **ret, cc_error **err);

/* Same, on the file at path (symlinks followed; path names the errors). Blocks. */
int cc_json_load_file(const char *path, size_t max, json_t **ret, cc_error **err);

/*
 * Compact encoding of v (any type, keys in insertion order) into a new string the caller
 * frees with free(). Returns 0, or -EINVAL when jansson cannot encode it (out of memory,
 * strings built without UTF-8 checks). Never blocks.
 */
int cc_json_dump(const json_t *v, char **ret, cc_error **err);

/* "object", "array", "string", "integer", "real", "boolean", "null"; "nothing" for NULL. */
const char *cc_json_type_name(const json_t *v);

/*
 * The value at path below root ("" is root itself), borrowed, in *ret. Returns 0, -ENOENT
 * (absent or null, no message), or -EINVAL when the path is malformed or goes through a
 * value of the wrong type ("field 'process.user': expected object, got string").
 */
int cc_json_get_path(const json_t *root, const char *path, json_t **ret, cc_error **err);

/*
 * Type checks of a value already in hand; name is what errors call it (NULL or "": no
 * "field '…': " prefix). v may be NULL or json null: -ENOENT, no message.
 * Strings must not contain NUL bytes; integers must be JSON integers (not 1.0) within the
 * target type's range.
 */
int cc_json_as_string(const json_t *v, const char *name, const char **ret, cc_error **err);
int cc_json_as_int64(const json_t *v, const char *name, int64_t *ret, cc_error **err);
/* jansson stores int64, so values above INT64_MAX never parse in the first place. */
int cc_json_as_uint64(const json_t *v, const char *name, uint64_t *ret, cc_error **err);
int cc_json_as_int32(const json_t *v, const char *name, int32_t *ret, cc_error **err);
int cc_json_as_uint32(const json_t *v, const char *name, uint32_t *ret, cc_error **err);
int cc_json_as_bool(const json_t *v, const char *name, bool *ret, cc_error **err);
int cc_json_as_object(const json_t *v, const char *name, json_t **ret, cc_error **err);
int cc_json_as_array(const json_t *v, const char *name, json_t **ret, cc_error **err);
/*
 * An array of at most max strings as a new NULL-terminated vector of copies (free with
 * cc_json_strv_free()). Errors name the element: "field 'process.args[2]': expected
 * string, got integer"; more than max elements is "field 'process.args': more than 1024
 * elements". An empty array gives a vector holding only NULL.
 */
int cc_json_as_strv(const json_t *v, const char *name, size_t max, char ***ret, cc_error **err);

/* cc_json_get_path() then cc_json_as_*(), with path as the name. Same returns. */
int cc_json_get_string(const json_t *obj, const char *path, const char **ret, cc_error **err);
int cc_json_get_int64(const json_t *obj, const char *path, int64_t *ret, cc_error **err);
int cc_json_get_uint64(const json_t *obj, const char *path, uint64_t *ret, cc_error **err);
int cc_json_get_int32(const json_t *obj, const char *path, int32_t *ret, cc_error **err);
int cc_json_get_uint32(const json_t *obj, const char *path, uint32_t *ret, cc_error **err);
int cc_json_get_bool(const json_t *obj, const char *path, bool *ret, cc_error **err);
int cc_json_get_object(const json_t *obj, const char *path, json_t **ret, cc_error **err);
int cc_json_get_array(const json_t *obj, const char *path, json_t **ret, cc_error **err);
int cc_json_get_strv(const json_t *obj, const char *path, size_t max, char ***ret, cc_error **err);

/* Frees a vector from cc_json_as_strv() and its strings. NULL-safe; returns NULL. */
char **cc_json_strv_free(char **v);
CC_DEFINE_CLEANUP(char *, cc_json_strv_free)
#define _cleanup_json_strv_ _cleanup_(cc_json_strv_freep)
