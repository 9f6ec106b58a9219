# SPDX-License-Identifier: Apache-2.0
# agent integration (issue 5): agent-vm.sh builds the real guest image (cloak-agent as PID 1),
# boots it with vmm-run under QEMU and drives the Kata agent API over agent.sock with
# agent-test; the containers run ctr-prog, copied into the guest with CopyFile.

# The container's process: static and without sanitizers, whatever the build (the container
# rootfs holds nothing else, no sanitizer runtime nor shared libraries).
add_executable(ctr-prog ${CMAKE_CURRENT_SOURCE_DIR}/integration/agent/ctr-prog.c)
target_compile_options(ctr-prog PRIVATE -fno-sanitize=all)
target_link_options(ctr-prog PRIVATE -static -fno-sanitize=all)

# agent-test-rest.c checks ReadStdout/ReadStdio output with OpenSSL's sha256.
find_package(OpenSSL REQUIRED)
add_executable(agent-test ${CMAKE_CURRENT_SOURCE_DIR}/integration/agent/agent-test.c
                          ${CMAKE_CURRENT_SOURCE_DIR}/integration/agent/agent-test-rest.c
                          ${CMAKE_CURRENT_SOURCE_DIR}/integration/agent/agent-test-pull.c)
target_link_libraries(agent-test PRIVATE cloak-lib OpenSSL::Crypto)

# cloak-agent and cloak-pause are in ALL; build-guest.sh picks them up from the build dir.
add_test(NAME integration/agent-vm
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/integration/agent/agent-vm.sh
                 ${CMAKE_BINARY_DIR} $<TARGET_FILE:vmm-run> ${CMAKE_SOURCE_DIR}/configs/cloak-dev.toml
                 $<TARGET_FILE:agent-test> $<TARGET_FILE:ctr-prog>)
set_tests_properties(integration/agent-vm PROPERTIES
                     LABELS integration TIMEOUT 600 RESOURCE_LOCK vmm-qemu)
