# SPDX-License-Identifier: Apache-2.0
# cloakctl's CRI client (cli/cri.c, cli/cri-run.c) against a real private containerd 1.6 with
# runc (cri/containerd.sh: every path under a temp dir, gRPC on a unix socket, an isolated
# CNI bridge), the sandbox and test images served by a local registry (../pull/registry.sh).
# The test image runs ctr-prog (agent.cmake); the sandbox image cloak-pause.
if(TARGET cloak-pause AND TARGET ctr-prog)
    add_test(NAME integration/cloakctl-cri
             COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/integration/cri/cloakctl.sh
                     $<TARGET_FILE:cloakctl> $<TARGET_FILE:cloak-pause> $<TARGET_FILE:ctr-prog>)
    # One bridge name and subnet for all runs: one run at a time.
    set_tests_properties(integration/cloakctl-cri PROPERTIES
                         LABELS integration TIMEOUT 300 RESOURCE_LOCK cri-containerd)
endif()
