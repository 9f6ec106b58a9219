/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"
#include "fs.h"
#include "json.h"
#include "util.h"

/* An OCI-shaped document with a mistake or two in it. */
static const char doc_text[] =
    "{\n"
    "  \"ociVersion\": \"1.0.2\",\n"
    "  \"process\": {\n"
    "    \"terminal\": true,\n"
    "    \"user\": {\"uid\": 0, \"gid\": 4294967296,\n"
    "             \"additionalGids\": [1, -1]},\n"
    "    \"args\": [\"sh\", \"-c\", 3],\n"
    "    \"env\": [\"PATH=/bin\", \"HOME=/\"],\n"
    "    \"cwd\": null,\n"
    "    \"oomScoreAdj\": -2147483649,\n"
    "    \"rlimit\": 1.5\n"
    "  },\n"
    "  \"mounts\": [{\"destination\": \"/proc\"}, {\"destination\": 5}],\n"
    "  \"annotations\": {\"io.kubernetes.cri.sandbox-id\": \"abc\",\n"
    "                  \"a\\\"b\": \"quoted\"}\n"
    "}\n";

static int
setup(void **state)
{
    json_t *doc = NULL;
    assert_int_equal(cc_json_load_buffer(doc_text, strlen(doc_text), "config.json",
                                         CC_JSON_MAX_SIZE, &doc, NULL),
                     0);
    *state = doc;
    return 0;
}

static int
teardown(void **state)
{
    json_decref(*state);
    return 0;
}

/* Loads text expecting failure r with exactly message; *ret must stay untouched. */
static void
assert_load_fails(const char *text, size_t max, int r, const char *message)
{
    _cleanup_error_ cc_error *err = NULL;
    json_t *v = (json_t *)0x1;

    assert_int_equal(cc_json_load_buffer(text, strlen(text), "config.json", max, &v, &err), r);
    assert_ptr_equal(v, (json_t *)0x1);
    assert_non_null(err);
    assert_int_equal(err->code, r);
    assert_string_equal(err->message, message);
}

static void
test_load_errors(void **state)
{
    assert_load_fails("{\n  \"a\": 1,\n  \"b\": }", 100, -EINVAL,
                      "config.json: line 3, column 8: unexpected token near '}'");
    assert_load_fails("{\"a\": 1, \"a\": 2}", 100, -EINVAL,
                      "config.json: line 1, column 12: duplicate object key near '\"a\"'");
    assert_load_fails("{\"a\": \"x\\u0000y\"}", 100, -EINVAL,
                      "config.json: line 1, column 16: \\u0000 is not allowed without "
                      "JSON_ALLOW_NUL near '\"x\\u0000y\"'");
    assert_load_fails("{} {}", 100, -EINVAL,
                      "config.json: line 1, column 4: end of file expected near '{'");
    assert_load_fails("", 100, -EINVAL,
                      "config.json: line 1, column 0: unexpected token near end of file");
    assert_load_fails("{\"a\": 1}", 7, -EFBIG, "config.json: larger than 7 bytes");

    _cleanup_error_ cc_error *err = NULL;
    json_t *v = NULL;
    assert_int_equal(cc_json_load_buffer("[1", 2, NULL, 100, &v, &err), -EINVAL);
    assert_string_equal(err->message, "JSON: line 1, column 2: ']' expected near end of file");
}

static void
test_load_any_type(void **state)
{
    _cleanup_json_ json_t *v = NULL;
    const char *s;

    assert_int_equal(cc_json_load_buffer("\"hi\"", 4, NULL, 10, &v, NULL), 0);
    assert_int_equal(cc_json_as_string(v, NULL, &s, NULL), 0);
    assert_string_equal(s, "hi");
}

static void
test_load_file(void **state)
{
    _cleanup_error_ cc_error *err = NULL;
    char dir[] = "/tmp/cloak-test-json-XXXXXX";
    char path[64];

    assert_non_null(mkdtemp(dir));
    _cleanup_close_ int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    assert_true(dfd >= 0);
    assert_int_equal(
        cc_write_file_atomic(dfd, "config.json", doc_text, strlen(doc_text), 0644, NULL), 0);
    (void)snprintf(path, sizeof(path), "%s/config.json", dir);

    _cleanup_json_ json_t *v = NULL;
    const char *s;
    assert_int_equal(cc_json_load_file(path, CC_JSON_MAX_SIZE, &v, &err), 0);
    assert_int_equal(cc_json_get_string(v, "ociVersion", &s, &err), 0);
    assert_string_equal(s, "1.0.2");

    json_t *w = NULL;
    char want[128];
    assert_int_equal(cc_json_load_file(path, 16, &w, &err), -EFBIG);
    assert_null(w);
    (void)snprintf(want, sizeof(want), "%s: larger than 16 bytes", path);
    assert_string_equal(err->message, want);

    assert_int_equal(cc_write_file_atomic(dfd, "bad.json", "{\n\n  x", 6, 0644, NULL), 0);
    (void)snprintf(path, sizeof(path), "%s/bad.json", dir);
    assert_int_equal(cc_json_load_file(path, 100, &w, &err), -EINVAL);
    (void)snprintf(want, sizeof(want), "%s: line 3, column 3: string or '}' expected near 'x'",
                   path);
    assert_string_equal(err->message, want);

    (void)snprintf(path, sizeof(path), "%s/missing.json", dir);
    assert_int_equal(cc_json_load_file(path, 100, &w, &err), -ENOENT);
    (void)snprintf(want, sizeof(want), "open '%s': No such file or directory", path);
    assert_string_equal(err->message, want);

    _cleanup_close_ int tmp = open("/tmp", O_PATH | O_DIRECTORY | O_CLOEXEC);
    assert_int_equal(cc_rm_rf_at(tmp, dir + strlen("/tmp/"), NULL), 0);
}

/* Runs a getter expected to fail with -EINVAL and exactly message. */
#define ASSERT_GET_FAILS(call, want_msg)                                                           \
    do {                                                                                           \
        _cleanup_error_ cc_error *err_ = NULL;                                                     \
        cc_error **err = &err_;                                                                    \
        assert_int_equal((call), -EINVAL);                                                         \
        assert_non_null(err_);                                                                     \
        assert_int_equal(err_->code, -EINVAL);                                                     \
        assert_string_equal(err_->message, (want_msg));                                            \
    } while (0)

static void
test_getter_errors_name_the_field(void **state)
{
    const json_t *doc = *state;
    const char *s = "untouched";
    char **strv = NULL;
    uint32_t u32 = 7;
    int32_t i32 = 7;
    int64_t i64 = 7;

    ASSERT_GET_FAILS(cc_json_get_strv(doc, "process.args", 16, &strv, err),
                     "field 'process.args[2]': expected string, got integer");
    assert_null(strv);
    ASSERT_GET_FAILS(cc_json_get_uint32(doc, "process.user.gid", &u32, err),
                     "field 'process.user.gid': 4294967296 out of range [0, 4294967295]");
    ASSERT_GET_FAILS(cc_json_get_uint32(doc, "process.user.additionalGids[1]", &u32, err),
                     "field 'process.user.additionalGids[1]': -1 out of range [0, 4294967295]");
    assert_int_equal(u32, 7);
    ASSERT_GET_FAILS(cc_json_get_int32(doc, "process.oomScoreAdj", &i32, err),
                     "field 'process.oomScoreAdj': -2147483649 out of range "
                     "[-2147483648, 2147483647]");
    assert_int_equal(i32, 7);
    ASSERT_GET_FAILS(cc_json_get_string(doc, "process.user.uid", &s, err),
                     "field 'process.user.uid': expected string, got integer");
    ASSERT_GET_FAILS(cc_json_get_string(doc, "ociVersion.major", &s, err),
                     "field 'ociVersion': expected object, got string");
    ASSERT_GET_FAILS(cc_json_get_string(doc, "process[0]", &s, err),
                     "field 'process': expected array, got object");
    ASSERT_GET_FAILS(cc_json_get_string(doc, "mounts[1].destination", &s, err),
                     "field 'mounts[1].destination': expected string, got integer");
    ASSERT_GET_FAILS(cc_json_get_int64(doc, "process.rlimit", &i64, err),
                     "field 'process.rlimit': expected integer, got real");
    assert_int_equal(i64, 7);
    ASSERT_GET_FAILS(cc_json_get_bool(doc, "process.args", &(bool){false}, err),
                     "field 'process.args': expected boolean, got array");
    ASSERT_GET_FAILS(cc_json_get_object(doc, "process.env", &(json_t *){NULL}, err),
                     "field 'process.env': expected object, got array");
    ASSERT_GET_FAILS(cc_json_get_array(doc, "process.terminal", &(json_t *){NULL}, err),
                     "field 'process.terminal': expected array, got boolean");
    ASSERT_GET_FAILS(cc_json_get_strv(doc, "process.env", 1, &strv, err),
                     "field 'process.env': more than 1 elements");
    ASSERT_GET_FAILS(cc_json_get_string(doc, "", &s, err), "expected string, got object");
    assert_string_equal(s, "untouched");
}

static void
test_getters(void **state)
{
    const json_t *doc = *state;
    _cleanup_json_strv_ char **env = NULL;
    json_t *v;
    const char *s;
    uint32_t u32;
    uint64_t u64;
    int64_t i64;
    bool b;

    assert_int_equal(cc_json_get_string(doc, "mounts[0].destination", &s, NULL), 0);
    assert_string_equal(s, "/proc");
    assert_int_equal(cc_json_get_uint32(doc, "process.user.uid", &u32, NULL), 0);
    assert_int_equal(u32, 0);
    assert_int_equal(cc_json_get_uint64(doc, "process.user.gid", &u64, NULL), 0);
    assert_int_equal(u64, 4294967296u);
    assert_int_equal(cc_json_get_int64(doc, "process.oomScoreAdj", &i64, NULL), 0);
    assert_int_equal(i64, -2147483649);
    assert_int_equal(cc_json_get_bool(doc, "process.terminal", &b, NULL), 0);
    assert_true(b);
    assert_int_equal(cc_json_get_strv(doc, "process.env", 2, &env, NULL), 0);
    assert_string_equal(env[0], "PATH=/bin");
    assert_string_equal(env[1], "HOME=/");
    assert_null(env[2]);
    assert_int_equal(cc_json_get_object(doc, "process.user", &v, NULL), 0);
    assert_int_equal(cc_json_get_array(v, "additionalGids", &v, NULL), 0);
    assert_int_equal(json_array_size(v), 2);
    assert_int_equal(cc_json_get_path(doc, "", &v, NULL), 0);
    assert_ptr_equal(v, doc);

    /* Quoted keys for names with dots and quotes in them. */
    assert_int_equal(
        cc_json_get_string(doc, "annotations[\"io.kubernetes.cri.sandbox-id\"]", &s, NULL), 0);
    assert_string_equal(s, "abc");
    assert_int_equal(cc_json_get_string(doc, "annotations[\"a\\\"b\"]", &s, NULL), 0);
    assert_string_equal(s, "quoted");
    assert_int_equal(cc_json_get_object(doc, "annotations", &v, NULL), 0);
    assert_int_equal(cc_json_get_string(v, "[\"io.kubernetes.cri.sandbox-id\"]", &s, NULL), 0);
    assert_string_equal(s, "abc");
}

/* Absent, past the end and null: -ENOENT, no message, outputs untouched. */
static void
test_absent(void **state)
{
    const json_t *doc = *state;
    _cleanup_error_ cc_error *err = NULL;
    const char *s = "untouched";
    json_t *v = NULL;

    assert_int_equal(cc_json_get_string(doc, "hostname", &s, &err), -ENOENT);
    assert_int_equal(cc_json_get_string(doc, "process.cwd", &s, &err), -ENOENT);
    assert_int_equal(cc_json_get_string(doc, "process.cwd.x", &s, &err), -ENOENT);
    assert_int_equal(cc_json_get_string(doc, "mounts[2].destination", &s, &err), -ENOENT);
    assert_int_equal(cc_json_get_string(doc, "mounts[0].type", &s, &err), -ENOENT);
    assert_int_equal(cc_json_get_string(doc, "linux.namespaces[0].type", &s, &err), -ENOENT);
    assert_int_equal(cc_json_get_path(doc, "annotations[\"nope\"]", &v, &err), -ENOENT);
    assert_int_equal(cc_json_get_string(NULL, "x", &s, &err), -ENOENT);
    assert_int_equal(cc_json_as_bool(NULL, "x", &(bool){false}, &err), -ENOENT);
    assert_null(err);
    assert_null(v);
    assert_string_equal(s, "untouched");
}

static void
test_invalid_paths(void **state)
{
    const json_t *doc = *state;
    static const char *const bad[] = {
        "a..b", ".a",    "a.",      "[x]",    "a[1",        "a[-1]",
        "a]",   "a[1]b", "[\"open", "[\"a\"", "[\"a\\x\"]", "a[99999999999999999999999]",
        "a\"b",
    };

    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        char want[128];
        (void)snprintf(want, sizeof(want), "invalid JSON path '%s'", bad[i]);
        ASSERT_GET_FAILS(cc_json_get_path(doc, bad[i], &(json_t *){NULL}, err), want);
    }
}

static void
test_as_helpers(void **state)
{
    _cleanup_json_ json_t *nul = json_stringn("a\0b", 3);
    _cleanup_json_ json_t *num = json_integer(3);
    _cleanup_json_ json_t *arr = json_pack("[s, i]", "x", 1);
    const char *s;
    char **strv = NULL;

    ASSERT_GET_FAILS(cc_json_as_string(nul, "hostname", &s, err),
                     "field 'hostname': string contains a NUL byte");
    ASSERT_GET_FAILS(cc_json_as_string(num, NULL, &s, err), "expected string, got integer");
    ASSERT_GET_FAILS(cc_json_as_strv(arr, NULL, 8, &strv, err),
                     "field '[1]': expected string, got integer");
    assert_int_equal(json_array_set_new(arr, 1, json_stringn("a\0b", 3)), 0);
    ASSERT_GET_FAILS(cc_json_as_strv(arr, "args", 8, &strv, err),
                     "field 'args[1]': string contains a NUL byte");
    assert_null(strv);

    _cleanup_json_ json_t *empty = json_array();
    assert_int_equal(cc_json_as_strv(empty, "args", 0, &strv, NULL), 0);
    assert_null(strv[0]);
    strv = cc_json_strv_free(strv);
    assert_null(cc_json_strv_free(NULL));
}

static void
test_type_names(void **state)
{
    _cleanup_json_ json_t *v = json_pack("[{}, [], s, i, f, b, b, n]", "x", 1, 1.5, 1, 0);
    static const char *const names[] = {"object", "array",   "string",  "integer",
                                        "real",   "boolean", "boolean", "null"};

    for (size_t i = 0; i < ELEMENTSOF(names); i++)
        assert_string_equal(cc_json_type_name(json_array_get(v, i)), names[i]);
    assert_string_equal(cc_json_type_name(NULL), "nothing");
}

static void
test_dump(void **state)
{
    _cleanup_json_ json_t *v = json_pack("{s: [i, s], s: n, s: b}", "b", 1, "x\"y", "a", "t", 1);
    _cleanup_json_ json_t *str = json_string("é");
    _cleanup_error_ cc_error *err = NULL;
    _cleanup_free_ char *out = NULL;
    _cleanup_free_ char *out2 = NULL;

    assert_int_equal(cc_json_dump(v, &out, &err), 0);
    assert_string_equal(out, "{\"b\":[1,\"x\\\"y\"],\"a\":null,\"t\":true}"); /* key order kept */
    assert_int_equal(cc_json_dump(str, &out2, &err), 0);
    assert_string_equal(out2, "\"é\"");

    char *none = NULL;
    assert_int_equal(cc_json_dump(NULL, &none, &err), -EINVAL);
    assert_null(none);
    assert_string_equal(err->message, "cannot encode nothing as JSON");

    /* What we dump loads back to an equal value. */
    _cleanup_json_ json_t *back = NULL;
    assert_int_equal(cc_json_load_buffer(out, strlen(out), NULL, 100, &back, NULL), 0);
    assert_true(json_equal(back, v));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_errors),   cmocka_unit_test(test_load_any_type),
        cmocka_unit_test(test_load_file),     cmocka_unit_test(test_getter_errors_name_the_field),
        cmocka_unit_test(test_getters),       cmocka_unit_test(test_absent),
        cmocka_unit_test(test_invalid_paths), cmocka_unit_test(test_as_helpers),
        cmocka_unit_test(test_type_names),    cmocka_unit_test(test_dump),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
