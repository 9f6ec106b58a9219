# SPDX-License-Identifier: Apache-2.0
# The end-to-end suite (test/e2e/run.sh): pods through a private containerd 1.6's CRI with
# runtime handler `cloak`, images built with umoci and pushed with skopeo to a loopback
# docker-registry, pulled inside each pod's VM. Uses <build>/guest (`ninja guest-image`;
# run.sh builds it when missing).
if(TARGET containerd-shim-cloak-v2 AND TARGET cloakctl AND TARGET cloak-snapshotter-bin
   AND TARGET nydus-overlayfs AND TARGET cloak-pause AND TARGET cloak-agent)
    add_test(NAME e2e/cri COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/e2e/run.sh)
    set_tests_properties(e2e/cri PROPERTIES
                         ENVIRONMENT "CLOAK_BUILD_DIR=${CMAKE_BINARY_DIR}"
                         LABELS e2e TIMEOUT 1800
                         # containerd's CRI, QEMU's CPU time and <build>/guest: one at a time
                         # with the other CRI and VM tests and the packaging test.
                         RESOURCE_LOCK "cri-containerd;vmm-qemu;guest-image")
endif()
