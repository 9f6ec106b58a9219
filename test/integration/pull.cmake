# SPDX-License-Identifier: Apache-2.0
# Image pull inside the guest: pull-vm.sh starts a local registry (Debian's docker-registry,
# 127.0.0.1 only), pushes hand-made test images (make-images.py), boots the guest like
# agent-vm and runs `agent-test --images ... pull` (agent-test-pull.c), then checks from the
# registry's access log that each layer blob was fetched once per sandbox. Builds on the
# targets of agent.cmake (agent-test, ctr-prog).
if(TARGET agent-test AND TARGET ctr-prog)
    add_test(NAME integration/agent-pull
             COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/integration/pull/pull-vm.sh
                     ${CMAKE_BINARY_DIR} $<TARGET_FILE:vmm-run>
                     ${CMAKE_SOURCE_DIR}/configs/cloak-dev.toml
                     $<TARGET_FILE:agent-test> $<TARGET_FILE:ctr-prog>)
    set_tests_properties(integration/agent-pull PROPERTIES
                         LABELS integration TIMEOUT 600 RESOURCE_LOCK vmm-qemu)
endif()
