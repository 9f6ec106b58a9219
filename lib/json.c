/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "json.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>

#include "fs.h"
#include "util.h"

/* Builds "field '<name>': <fmt>", or just "<fmt>" for an unnamed value. Returns -EINVAL. */
static int field_error(cc_error **err, const char *name, const char *fmt, ...) _printf_(3, 4);

static int
field_error(cc_error **err, const char *name, const char *fmt, ...)
{
    if (!err)
        return -EINVAL;
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *msg = cc_xvasprintf(fmt, ap);
    va_end(ap);
    if (!name || !*name)
        return cc_error_msg(err, -EINVAL, "%s", msg);
    return cc_error_msg(err, -EINVAL, "field '%s': %s", name, msg);
}

static int
type_error(cc_error **err, const char *name, const char *want, const json_t *v)
{
    return field_error(err, name, "expected %s, got %s", want, cc_json_type_name(v));
}

const char *
cc_json_type_name(const json_t *v)
{
    if (!v)
        return "nothing";
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
        return "integer";
    case JSON_REAL:
        return "real";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    case JSON_NULL:
        return "null";
    }
    return "nothing";
}

int
cc_json_load_buffer(const char *buf, size_t len, const char *name, size_t max, json_t **ret,
                    cc_error **err)
{
    json_error_t e;

    if (!name)
        name = "JSON";
    if (len > max)
        return cc_error_msg(err, -EFBIG, "%s: larger than %zu bytes", name, max);
    json_t *v = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &e);
    if (!v) {
        int r = json_error_code(&e) == json_error_out_of_memory ? -ENOMEM : -EINVAL;
        return cc_error_msg(err, r, "%s: line %d, column %d: %s", name, e.line, e.column, e.text);
    }
    *ret = v;
    return 0;
}

int
cc_json_load_fd(int fd, const char *name, size_t max, json_t **ret, cc_error **err)
{
    _cleanup_free_ char *buf = NULL;
    size_t len;

    if (!name)
        name = "JSON";
    int r = cc_read_fd(fd, max, &buf, &len, err);
    if (r < 0)
        return cc_error_prefix(err, r, "%s", name);
    return cc_json_load_buffer(buf, len, name, max, ret, err);
}

int
cc_json_load_file(const char *path, size_t max, json_t **ret, cc_error **err)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return cc_error_set(err, -errno, "open '%s'", path);
    return cc_json_load_fd(fd, path, max, ret, err);
}

int
cc_json_dump(const json_t *v, char **ret, cc_error **err)
{
    char *s = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    if (!s)
        return cc_error_msg(err, -EINVAL, "cannot encode %s as JSON", cc_json_type_name(v));
    *ret = s;
    return 0;
}

/*
 * Parses the segment of path at *p into a key (new string) or an index. Returns 1 for a key,
 * 0 for an index, -EINVAL when malformed. *p moves past the segment and its '.' if any.
 */
static int
path_segment(const char **p, bool first, char **ret_key, size_t *ret_index)
{
    const char *s = *p;

    if (*s == '[' && s[1] == '"') { /* ["quoted key"] */
        _cleanup_free_ char *key = cc_xmalloc(strlen(s));
        size_t n = 0;
        for (s += 2; *s != '"'; s++) {
            if (*s == '\\' && (s[1] == '"' || s[1] == '\\'))
                s++;
            else if (*s == '\0' || *s == '\\')
                return -EINVAL;
            key[n++] = *s;
        }
        if (s[1] != ']')
            return -EINVAL;
        key[n] = '\0';
        *ret_key = TAKE_PTR(key);
        s += 2;
    } else if (*s == '[') { /* [index] */
        char *end;
        errno = 0;
        if (s[1] < '0' || s[1] > '9')
            return -EINVAL;
        unsigned long long i = strtoull(s + 1, &end, 10);
        if (errno != 0 || *end != ']' || i > SIZE_MAX)
            return -EINVAL;
        *ret_index = (size_t)i;
        s = end + 1;
    } else { /* key, after a '.' unless it is the first segment */
        if (!first) {
            if (*s != '.')
                return -EINVAL;
            s++;
        }
        size_t n = strcspn(s, ".[]\"");
        if (n == 0)
            return -EINVAL;
        *ret_key = cc_xstrndup(s, n);
        s += n;
    }
    if (*s != '\0' && *s != '.' && *s != '[')
        return -EINVAL;
    *p = s;
    return *ret_key ? 1 : 0;
}

static int
prefix_type_error(cc_error **err, const char *path, size_t len, const char *want, const json_t *v)
{
    _cleanup_free_ char *name = cc_xstrndup(path, len);
    return type_error(err, name, want, v);
}

int
cc_json_get_path(const json_t *root, const char *path, json_t **ret, cc_error **err)
{
    json_t *cur = (json_t *)root; /* jansson's getters hand out non-const children */
    const char *p = path;

    for (bool first = true; *p; first = false) {
        _cleanup_free_ char *key = NULL;
        size_t index = 0, done = (size_t)(p - path);

        if (path_segment(&p, first, &key, &index) < 0)
            return cc_error_msg(err, -EINVAL, "invalid JSON path '%s'", path);
        if (!cur || json_is_null(cur))
            return -ENOENT;
        if (key) {
            if (!json_is_object(cur))
                return prefix_type_error(err, path, done, "object", cur);
            cur = json_object_get(cur, key);
        } else {
            if (!json_is_array(cur))
                return prefix_type_error(err, path, done, "array", cur);
            cur = json_array_get(cur, index);
        }
    }
    if (!cur || json_is_null(cur))
        return -ENOENT;
    *ret = cur;
    return 0;
}

int
cc_json_as_string(const json_t *v, const char *name, const char **ret, cc_error **err)
{
    if (!v || json_is_null(v))
        return -ENOENT;
    if (!json_is_string(v))
        return type_error(err, name, "string", v);
    const char *s = json_string_value(v);
    if (strlen(s) != json_string_length(v))
        return field_error(err, name, "string contains a NUL byte");
    *ret = s;
    return 0;
}

static int
as_integer(const json_t *v, const char *name, int64_t min, int64_t max, int64_t *ret,
           cc_error **err)
{
    if (!v || json_is_null(v))
        return -ENOENT;
    if (!json_is_integer(v))
        return type_error(err, name, "integer", v);
    int64_t i = json_integer_value(v);
    if (i < min || i > max)
        return field_error(err, name, "%" PRId64 " out of range [%" PRId64 ", %" PRId64 "]", i, min,
                           max);
    *ret = i;
    return 0;
}

int
cc_json_as_int64(const json_t *v, const char *name, int64_t *ret, cc_error **err)
{
    return as_integer(v, name, INT64_MIN, INT64_MAX, ret, err);
}

int
cc_json_as_uint64(const json_t *v, const char *name, uint64_t *ret, cc_error **err)
{
    int64_t i = 0;
    int r = as_integer(v, name, 0, INT64_MAX, &i, err);
    if (r < 0)
        return r;
    *ret = (uint64_t)i;
    return 0;
}

int
cc_json_as_int32(const json_t *v, const char *name, int32_t *ret, cc_error **err)
{
    int64_t i = 0;
    int r = as_integer(v, name, INT32_MIN, INT32_MAX, &i, err);
    if (r < 0)
        return r;
    *ret = (int32_t)i;
    return 0;
}

int
cc_json_as_uint32(const json_t *v, const char *name, uint32_t *ret, cc_error **err)
{
    int64_t i = 0;
    int r = as_integer(v, name, 0, UINT32_MAX, &i, err);
    if (r < 0)
        return r;
    *ret = (uint32_t)i;
    return 0;
}

int
cc_json_as_bool(const json_t *v, const char *name, bool *ret, cc_error **err)
{
    if (!v || json_is_null(v))
        return -ENOENT;
    if (!json_is_boolean(v))
        return type_error(err, name, "boolean", v);
    *ret = json_is_true(v);
    return 0;
}

int
cc_json_as_object(const json_t *v, const char *name, json_t **ret, cc_error **err)
{
    if (!v || json_is_null(v))
        return -ENOENT;
    if (!json_is_object(v))
        return type_error(err, name, "object", v);
    *ret = (json_t *)v;
    return 0;
}

int
cc_json_as_array(const json_t *v, const char *name, json_t **ret, cc_error **err)
{
    if (!v || json_is_null(v))
        return -ENOENT;
    if (!json_is_array(v))
        return type_error(err, name, "array", v);
    *ret = (json_t *)v;
    return 0;
}

char **
cc_json_strv_free(char **v)
{
    if (v)
        for (char **s = v; *s; s++)
            free(*s);
    free(v);
    return NULL;
}

int
cc_json_as_strv(const json_t *v, const char *name, size_t max, char ***ret, cc_error **err)
{
    json_t *array = NULL;

    int r = cc_json_as_array(v, name, &array, err);
    if (r < 0)
        return r;
    size_t n = json_array_size(array);
    if (n > max)
        return field_error(err, name, "more than %zu elements", max);

    _cleanup_json_strv_ char **strv = cc_xzalloc((n + 1) * sizeof(*strv));
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(array, i);
        if (!json_is_string(e) || strlen(json_string_value(e)) != json_string_length(e)) {
            _cleanup_free_ char *ename = cc_xasprintf("%s[%zu]", name ? name : "", i);
            if (!json_is_string(e))
                return type_error(err, ename, "string", e);
            return field_error(err, ename, "string contains a NUL byte");
        }
        strv[i] = cc_xstrdup(json_string_value(e));
    }
    *ret = TAKE_PTR(strv);
    return 0;
}

/* cc_json_get_path() then check: the getters below differ only in the check. */
#define GET_THEN(as, ...)                                                                          \
    ({                                                                                             \
        json_t *_v = NULL;                                                                         \
        int _r = cc_json_get_path(obj, path, &_v, err);                                            \
        _r < 0 ? _r : as(_v, path, __VA_ARGS__);                                                   \
    })

int
cc_json_get_string(const json_t *obj, const char *path, const char **ret, cc_error **err)
{
    return GET_THEN(cc_json_as_string, ret, err);
}

int
cc_json_get_int64(const json_t *obj, const char *path, int64_t *ret, cc_error **err)
{
    return GET_THEN(cc_json_as_int64, ret, err);
}

int
cc_json_get_uint64(const json_t *obj, const char *path, uint64_t *ret, cc_error **err)
{
    return GET_THEN(cc_json_as_uint64, ret, err);
}

int
cc_json_get_int32(const json_t *obj, const char *path, int32_t *ret, cc_error **err)
{
    return GET_THEN(cc_json_as_int32, ret, err);
}

int
cc_json_get_uint32(const json_t *obj, const char *path, uint32_t *ret, cc_error **err)
{
    return GET_THEN(cc_json_as_uint32, ret, err);
}

int
cc_json_get_bool(const json_t *obj, const char *path, bool *ret, cc_error **err)
{
    return GET_THEN(cc_json_as_bool, ret, err);
}

int
cc_json_get_object(const json_t *obj, const char *path, json_t **ret, cc_error **err)
{
    return GET_THEN(cc_json_as_object, ret, err);
}

int
cc_json_get_array(const json_t *obj, const char *path, json_t **ret, cc_error **err)
{
    return GET_THEN(cc_json_as_array, ret, err);
}

int
cc_json_get_strv(const json_t *obj, const char *path, size_t max, char ***ret, cc_error **err)
{
    return GET_THEN(cc_json_as_strv, max, ret, err);
}
