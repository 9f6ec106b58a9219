/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <string.h>
#include <sys/mman.h>

#include "log.h"
#include "util.h"

/* Logs go to a memfd; each test reads back what was written. */
static int
setup(void **state)
{
    int fd = memfd_create("log", MFD_CLOEXEC);
    assert_true(fd >= 0);
    cc_log_setup("test", fd, CC_LOG_INFO);
    *state = (void *)(intptr_t)fd;
    return 0;
}

static int
teardown(void **state)
{
    close((int)(intptr_t)*state);
    cc_log_setup("cloak", STDERR_FILENO, CC_LOG_INFO);
    return 0;
}

static char *
read_back(void **state)
{
    int fd = (int)(intptr_t)*state;
    static char buf[8192];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    assert_true(n >= 0);
    buf[n] = 0;
    return buf;
}

/* The record without its time= field, which changes. */
static const char *
after_time(const char *line)
{
    assert_memory_equal(line, "time=", 5);
    const char *sp = strchr(line, ' ');
    assert_non_null(sp);
    return sp + 1;
}

static void
test_format(void **state)
{
    cc_log_fields(CC_LOG_INFO, 0, CC_FIELDS("sandbox", "s1", "container", NULL, "rpc", "Create"),
                  "task %s", "started");
    assert_string_equal(after_time(read_back(state)),
                        "level=info component=test msg=\"task started\" sandbox=s1 rpc=Create\n");
}

static void
test_quoting(void **state)
{
    cc_log(CC_LOG_WARNING, "a \"b\" c\\d\ne=f\x01");
    assert_string_equal(after_time(read_back(state)),
                        "level=warning component=test msg=\"a \\\"b\\\" c\\\\d\\ne=f\\x01\"\n");
}

static void
test_errno_returns_r(void **state)
{
    assert_int_equal(cc_log_errno(CC_LOG_ERROR, -ENOENT, "open"), -ENOENT);
    assert_string_equal(after_time(read_back(state)),
                        "level=error component=test msg=open err=\"No such file or directory\"\n");
}

static void
test_error_chain(void **state)
{
    _cleanup_error_ cc_error *err = NULL;
    cc_error_msg(&err, -EINVAL, "config 'x': bad");
    assert_int_equal(cc_log_error(CC_LOG_ERROR, err, "load"), -EINVAL);
    assert_string_equal(after_time(read_back(state)),
                        "level=error component=test msg=load err=\"config 'x': bad\"\n");
}

static void
test_level_filter(void **state)
{
    cc_log(CC_LOG_DEBUG, "hidden");
    assert_string_equal(read_back(state), "");
    cc_log_set_level(CC_LOG_DEBUG);
    cc_log(CC_LOG_DEBUG, "shown");
    assert_non_null(strstr(read_back(state), "msg=shown"));
}

static void
test_long_line_is_cut(void **state)
{
    char big[10000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    cc_log(CC_LOG_INFO, "%s", big);
    const char *out = read_back(state);
    size_t n = strlen(out);
    assert_true(n <= 4096);
    assert_int_equal(out[n - 1], '\n');
    assert_non_null(strstr(out, " truncated=true\n"));
}

static void
test_levels(void **state)
{
    assert_int_equal(cc_log_level_from_string("DEBUG"), CC_LOG_DEBUG);
    assert_int_equal(cc_log_level_from_string("warn"), CC_LOG_WARNING);
    assert_int_equal(cc_log_level_from_string("loud"), -EINVAL);
    assert_int_equal(cc_log_level_from_string(NULL), -EINVAL);
    assert_string_equal(cc_log_level_to_string(CC_LOG_ERROR), "error");
    assert_string_equal(cc_redact("hunter2"), "<redacted>");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quoting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errno_returns_r, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_level_filter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_line_is_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(test_levels, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
