# SPDX-License-Identifier: Apache-2.0
# libvirt backend integration (label integration): the plugin against a real libvirtd on
# qemu:///system. A fixture starts virtlogd/libvirtd when they do not run (no systemd on CI)
# and stops only what it started, by PID. The guest is the vmm tests' fixture (vmm.cmake)
# when it exists, else built here.
add_executable(vmm-libvirt-probe ${CMAKE_CURRENT_SOURCE_DIR}/integration/libvirt/vmm-libvirt-probe.c)
target_link_libraries(vmm-libvirt-probe PRIVATE cloak-vmm cloak-lib)
# <exe dir>/../vmm/ is where plugin.c finds the plugin in the build tree.
set_target_properties(vmm-libvirt-probe PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/test)
add_dependencies(vmm-libvirt-probe cloak-vmm-libvirt)

set(CLOAK_LV_DIR ${CMAKE_CURRENT_SOURCE_DIR}/integration/libvirt)
set(CLOAK_LV_STATE ${CMAKE_CURRENT_BINARY_DIR}/libvirt-daemons.started)
add_test(NAME integration/libvirt-daemons-start
         COMMAND bash ${CLOAK_LV_DIR}/daemons.sh start ${CLOAK_LV_STATE})
add_test(NAME integration/libvirt-daemons-stop
         COMMAND bash ${CLOAK_LV_DIR}/daemons.sh stop ${CLOAK_LV_STATE})
set_tests_properties(integration/libvirt-daemons-start PROPERTIES
                     LABELS integration FIXTURES_SETUP libvirt-daemons TIMEOUT 60)
set_tests_properties(integration/libvirt-daemons-stop PROPERTIES
                     LABELS integration FIXTURES_CLEANUP libvirt-daemons TIMEOUT 60)

add_test(NAME integration/libvirt-supports
         COMMAND bash ${CLOAK_LV_DIR}/probe.sh $<TARGET_FILE:vmm-libvirt-probe>)
set_tests_properties(integration/libvirt-supports PROPERTIES
                     LABELS integration FIXTURES_REQUIRED libvirt-daemons TIMEOUT 60)

if(TARGET vmm-run)
  if(DEFINED CLOAK_TEST_GUEST_DIR)
    set(CLOAK_LV_GUEST_DIR ${CLOAK_TEST_GUEST_DIR})
    set(CLOAK_LV_GUEST_FIXTURE vmm-guest)
  else()
    set(CLOAK_LV_GUEST_DIR ${CMAKE_CURRENT_BINARY_DIR}/test-guest-libvirt)
    set(CLOAK_LV_GUEST_FIXTURE libvirt-guest)
    add_test(NAME integration/libvirt-guest-build
             COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/integration/guest/build.sh ${CLOAK_LV_GUEST_DIR})
    set_tests_properties(integration/libvirt-guest-build PROPERTIES
                         LABELS integration FIXTURES_SETUP libvirt-guest TIMEOUT 600)
  endif()
  add_dependencies(vmm-run cloak-vmm-libvirt)
  foreach(mode term sigkill)
    set(name integration/libvirt-boot-${mode})
    if(mode STREQUAL sigkill)
      set(name integration/libvirt-sigkill)
    endif()
    add_test(NAME ${name}
             COMMAND bash ${CLOAK_LV_DIR}/boot.sh ${mode} $<TARGET_FILE:vmm-run>
                     ${CMAKE_SOURCE_DIR}/configs/cloak-dev.toml ${CLOAK_LV_GUEST_DIR})
    # One VM at a time with the vmm tests: the box has 2 cores and boots under TCG.
    set_tests_properties(${name} PROPERTIES
                         LABELS integration TIMEOUT 180 RESOURCE_LOCK vmm-qemu
                         FIXTURES_REQUIRED "libvirt-daemons;${CLOAK_LV_GUEST_FIXTURE}")
  endforeach()
  # A controller on the qemu backend never maps libvirt (no VM boot wait: only the maps).
  add_test(NAME integration/libvirt-not-mapped-on-qemu
           COMMAND bash ${CLOAK_LV_DIR}/qemu-maps.sh $<TARGET_FILE:vmm-run>
                   ${CMAKE_SOURCE_DIR}/configs/cloak-dev.toml ${CLOAK_LV_GUEST_DIR})
  set_tests_properties(integration/libvirt-not-mapped-on-qemu PROPERTIES
                       LABELS integration TIMEOUT 180 RESOURCE_LOCK vmm-qemu
                       FIXTURES_REQUIRED ${CLOAK_LV_GUEST_FIXTURE})
else()
  message(STATUS "vmm-run not built: libvirt boot tests skipped")
endif()
