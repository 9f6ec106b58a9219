/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzzes the TOML parser: parses the input, walks the whole tree through every accessor
 * and checks invariants the API promises (traps on violation), then frees it.
 */
#include "error.h"
#include "toml.h"
#include "util.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

static void
check_scalar(const cc_toml *v)
{
    size_t len = 0;
    const char *s = cc_toml_as_string(v, &len);
    CHECK((s != NULL) == (cc_toml_type_of(v) == CC_TOML_STRING));
    if (s)
        CHECK(s[len] == '\0' && strlen(s) <= len);
    (void)cc_toml_as_int(v);
    (void)cc_toml_as_bool(v);
    double d = cc_toml_as_float(v);
    CHECK(cc_toml_type_of(v) == CC_TOML_FLOAT || d == 0.0);
    const cc_toml_datetime *dt = cc_toml_as_datetime(v);
    if (dt) {
        char buf[CC_TOML_DATETIME_MAX];
        size_t n = cc_toml_datetime_format(dt, buf);
        CHECK(n == strlen(buf) && n > 0);
        CHECK(dt->month >= 0 && dt->month <= 12 && dt->day >= 0 && dt->day <= 31);
        CHECK(dt->hour <= 23 && dt->minute <= 59 && dt->second <= 60);
        CHECK(dt->nanosecond >= 0 && dt->nanosecond <= 999999999);
    }
}

/* Exercises the typed lookups for one key of table t. */
static void
check_typed(const cc_toml *t, const char *key)
{
    const char *s;
    int64_t i;
    double d;
    bool b;
    const cc_toml *sub = NULL;
    const cc_toml_datetime *dt;
    cc_error *err = NULL;
    int r[] = {
        cc_toml_get_string(t, key, &s, &err),    cc_toml_get_int(t, key, &i, &err),
        cc_toml_get_float(t, key, &d, &err),     cc_toml_get_bool(t, key, &b, &err),
        cc_toml_get_datetime(t, key, &dt, &err), cc_toml_get_table(t, key, &sub, &err),
        cc_toml_get_array(t, key, &sub, &err),
    };
    for (size_t k = 0; k < ELEMENTSOF(r); k++)
        CHECK(r[k] == 0 || r[k] == -EINVAL || r[k] == -ENOENT);
    if (err)
        CHECK(strlen(cc_error_message(err)) > 0);
    cc_error_free(err);
}

static void
walk(const cc_toml *v, unsigned depth)
{
    CHECK(cc_toml_line(v) >= 1 && cc_toml_column(v) >= 1);
    cc_toml_type type = cc_toml_type_of(v);
    /* containers nest at most CC_TOML_MAX_DEPTH deep below the root (depth 0) */
    CHECK(depth <= CC_TOML_MAX_DEPTH || (type != CC_TOML_TABLE && type != CC_TOML_ARRAY));
    CHECK(type >= 0 && type < _CC_TOML_TYPE_MAX);
    CHECK(strcmp(cc_toml_type_name(type), "invalid") != 0);
    if (type == CC_TOML_TABLE) {
        size_t n = cc_toml_table_len(v);
        for (size_t i = 0; i < n; i++) {
            size_t len = 0;
            const char *key = cc_toml_table_key_at(v, i, &len);
            const cc_toml *child = cc_toml_table_value_at(v, i);
            CHECK(key && child && key[len] == '\0');
            CHECK(cc_toml_table_getn(v, key, len) == child); /* keys are unique */
            if (strlen(key) == len)
                check_typed(v, key);
            walk(child, depth + 1);
        }
        CHECK(cc_toml_table_key_at(v, n, NULL) == NULL && cc_toml_table_value_at(v, n) == NULL);
    } else if (type == CC_TOML_ARRAY) {
        size_t n = cc_toml_array_len(v);
        for (size_t i = 0; i < n; i++)
            walk(cc_toml_array_at(v, i), depth + 1);
        CHECK(cc_toml_array_at(v, n) == NULL);
    } else {
        check_scalar(v);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cc_error *err = NULL;
    cc_toml *root = cc_toml_parse((const char *)data, size, &err);
    if (!root) {
        CHECK(err && err->code == -EINVAL);
        CHECK(cc_startswith(cc_error_message(err), "line ") != NULL);
        cc_error_free(err);
        return 0;
    }
    CHECK(!err);
    CHECK(cc_toml_type_of(root) == CC_TOML_TABLE);
    walk(root, 0);
    cc_toml_free(root);
    return 0;
}
