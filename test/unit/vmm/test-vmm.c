/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "vmm.h"

static void
test_profile_names_round_trip(void **state)
{
    for (int i = 0; i < _VMM_PROFILE_MAX; i++) {
        const char *name = vmm_profile_to_string((vmm_profile)i);
        assert_non_null(name);
        assert_int_equal(vmm_profile_from_string(name), i);
    }
    assert_string_equal(vmm_profile_to_string(VMM_PROFILE_SEV_SNP), "sev-snp");
}

static void
test_profile_invalid(void **state)
{
    assert_int_equal(vmm_profile_from_string("snp"), _VMM_PROFILE_INVALID);
    assert_int_equal(vmm_profile_from_string(NULL), -EINVAL);
    assert_null(vmm_profile_to_string(_VMM_PROFILE_MAX));
    assert_null(vmm_profile_to_string(_VMM_PROFILE_INVALID));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_profile_names_round_trip),
        cmocka_unit_test(test_profile_invalid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
