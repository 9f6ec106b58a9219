/* SPDX-License-Identifier: Apache-2.0 */
/* The parts of guest/init.c that are safe to run outside a guest: the refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdlib.h>
#include <unistd.h>

#include "init.h"

static void
test_stage2_detection(void **state)
{
    unsetenv(AGENT_INIT_STAGE_ENV);
    assert_false(agent_init_is_stage2());
    setenv(AGENT_INIT_STAGE_ENV, "1", 1);
    assert_false(agent_init_is_stage2());
    setenv(AGENT_INIT_STAGE_ENV, AGENT_INIT_STAGE_2, 1);
    assert_true(agent_init_is_stage2());
    /* stage 2: nothing to do, returns at once */
    char *argv[] = {"init", NULL};
    assert_int_equal(agent_init_switch_root(argv, NULL), 0);
    unsetenv(AGENT_INIT_STAGE_ENV);
}

static void
test_refuses_outside_pid1(void **state)
{
    /* Never empties a real root: a test process is not PID 1 of an initramfs. */
    if (getpid() == 1)
        skip();
    _cleanup_error_ cc_error *err = NULL;
    char *argv[] = {"init", NULL};
    assert_int_equal(agent_init_switch_root(argv, &err), -EPERM);
    assert_string_equal(cc_error_message(err), "switch root: not PID 1");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stage2_detection),
        cmocka_unit_test(test_refuses_outside_pid1),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
