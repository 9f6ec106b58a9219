# SPDX-License-Identifier: Apache-2.0
# Guest pull against a real private containerd 1.6 (cri/containerd.sh) whose CRI uses
# cloak-snapshotter as its proxy snapshotter: a CRI pull (cloakctl pull) fetches no layer
# and unpacks nothing on the host, the placeholders carry the cri labels, a new snapshot's
# one fuse.nydus-overlayfs mount names the image, the host helper nydus-overlayfs mounts it
# (directly, through mount.fuse3, and in ctr run's temp mount) and a host-side unpack
# (ctr images pull) is refused. Images from ../pull/make-images.py (ctr-prog, agent.cmake).
if(TARGET ctr-prog AND TARGET cloakctl AND TARGET cloak-snapshotter-bin
   AND TARGET nydus-overlayfs)
    add_test(NAME integration/guestpull-containerd
             COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/integration/guestpull/guestpull.sh
                     $<TARGET_FILE:cloakctl> $<TARGET_FILE:cloak-snapshotter-bin>
                     $<TARGET_FILE:nydus-overlayfs> $<TARGET_FILE:ctr-prog>)
    # containerd.sh's one bridge name and subnet: one run at a time (with cloakctl-cri).
    set_tests_properties(integration/guestpull-containerd PROPERTIES
                         LABELS integration TIMEOUT 300 RESOURCE_LOCK cri-containerd)
endif()
