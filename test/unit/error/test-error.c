/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <string.h>

#include "error.h"
#include "util.h"

static int
open_missing(const char *path, cc_error **err)
{
    errno = ENOENT;
    return cc_error_set(err, -errno, "open '%s'", path);
}

static int
load_bundle(const char *id, cc_error **err)
{
    int r = open_missing("config.json", err);
    if (r < 0)
        return cc_error_prefix(err, r, "load bundle '%s'", id);
    return 0;
}

static void
test_chain(void **state)
{
    _cleanup_error_ cc_error *err = NULL;
    assert_int_equal(load_bundle("x", &err), -ENOENT);
    assert_non_null(err);
    assert_int_equal(err->code, -ENOENT);
    assert_string_equal(cc_error_message(err),
                        "load bundle 'x': open 'config.json': No such file or directory");
}

static void
test_null_err_returns_code(void **state)
{
    assert_int_equal(load_bundle("x", NULL), -ENOENT);
    assert_int_equal(cc_error_msg(NULL, -EINVAL, "bad"), -EINVAL);
    /* 0 is never an error code: it becomes -EIO so callers cannot mistake it for success */
    assert_int_equal(cc_error_msg(NULL, 0, "bad"), -EIO);
}

static void
test_msg_has_no_strerror(void **state)
{
    _cleanup_error_ cc_error *err = NULL;
    assert_int_equal(cc_error_msg(&err, -EINVAL, "line %d, column %d: expected '='", 3, 5),
                     -EINVAL);
    assert_string_equal(err->message, "line 3, column 5: expected '='");
    assert_int_equal(cc_error_prefix(&err, -EINVAL, "config '%s'", "a.toml"), -EINVAL);
    assert_string_equal(err->message, "config 'a.toml': line 3, column 5: expected '='");
}

static void
test_set_replaces(void **state)
{
    _cleanup_error_ cc_error *err = NULL;
    cc_error_msg(&err, -EINVAL, "first");
    cc_error_set(&err, -EPERM, "second");
    assert_int_equal(err->code, -EPERM);
    assert_string_equal(err->message, "second: Operation not permitted");
}

static void
test_prefix_without_inner_message(void **state)
{
    _cleanup_error_ cc_error *err = NULL;
    assert_int_equal(cc_error_prefix(&err, -EACCES, "read '%s'", "k"), -EACCES);
    assert_string_equal(err->message, "read 'k': Permission denied");
    assert_null(cc_error_free(NULL));
    assert_string_equal(cc_error_message(NULL), "unknown error");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chain),
        cmocka_unit_test(test_null_err_returns_code),
        cmocka_unit_test(test_msg_has_no_strerror),
        cmocka_unit_test(test_set_replaces),
        cmocka_unit_test(test_prefix_without_inner_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
