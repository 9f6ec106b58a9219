# SPDX-License-Identifier: Apache-2.0
# vmm integration: vmm-run boots the tiny test guest (test/integration/guest) under QEMU
# (TCG when there is no /dev/kvm). Label integration; each test kills its QEMU by pid.
add_executable(vmm-run ${CMAKE_CURRENT_SOURCE_DIR}/integration/vmm-run.c)
target_link_libraries(vmm-run PRIVATE cloak-vmm cloak-lib)

set(CLOAK_TEST_GUEST_DIR ${CMAKE_CURRENT_BINARY_DIR}/test-guest)
add_test(NAME integration/vmm-guest-build
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/integration/guest/build.sh ${CLOAK_TEST_GUEST_DIR})
set_tests_properties(integration/vmm-guest-build PROPERTIES
                     LABELS integration FIXTURES_SETUP vmm-guest TIMEOUT 600)

foreach(case qemu-boot qemu-poweroff qemu-sigkill qemu-start-fail
             qemu-stop-timeout qemu-cleanup-live qemu-tap)
  add_test(NAME integration/vmm-${case}
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/integration/vmm/${case}.sh
                   $<TARGET_FILE:vmm-run> ${CMAKE_SOURCE_DIR}/configs/cloak-dev.toml
                   ${CLOAK_TEST_GUEST_DIR})
  set_tests_properties(integration/vmm-${case} PROPERTIES
                       LABELS integration FIXTURES_REQUIRED vmm-guest TIMEOUT 180
                       RESOURCE_LOCK vmm-qemu)
endforeach()
