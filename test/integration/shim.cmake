# SPDX-License-Identifier: Apache-2.0
# The shim (containerd-shim-cloak-v2) end to end: a private containerd 1.6 (cri/containerd.sh)
# with cloak-snapshotter as its proxy snapshotter and the `cloak` runtime handler exactly as
# packaging/containerd/cloak-snapshotter.toml documents it (ConfigPath: configs/cloak-dev.toml
# with the guest image built here, <build>/test-shim-guest); cloakctl run --runtime cloak runs
# each pod in its own QEMU VM (KVM or TCG) that pulls the image itself from a local registry
# (../pull/registry.sh, images of cri/make-images.py). shim/shim-cri.sh lists the checks.
if(TARGET containerd-shim-cloak-v2 AND TARGET cloakctl AND TARGET cloak-snapshotter-bin
   AND TARGET nydus-overlayfs AND TARGET ctr-prog AND TARGET cloak-pause AND TARGET cloak-agent)
    add_test(NAME integration/shim-cri
             COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/integration/shim/shim-cri.sh
                     ${CMAKE_BINARY_DIR} $<TARGET_FILE:cloakctl>
                     $<TARGET_FILE:containerd-shim-cloak-v2> $<TARGET_FILE:cloak-snapshotter-bin>
                     $<TARGET_FILE:nydus-overlayfs> $<TARGET_FILE:ctr-prog>
                     $<TARGET_FILE:cloak-pause> ${CMAKE_SOURCE_DIR}/configs/cloak-dev.toml)
    # containerd.sh's bridge and QEMU's CPU time: one run at a time with the other CRI and
    # VM tests.
    set_tests_properties(integration/shim-cri PROPERTIES
                         LABELS integration TIMEOUT 1200 RESOURCE_LOCK "cri-containerd;vmm-qemu")
endif()
