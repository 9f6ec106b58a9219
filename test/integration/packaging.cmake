# SPDX-License-Identifier: Apache-2.0
# packaging/install.sh: a staged (--destdir) and a real install into a temp --prefix and
# --sysconfdir (never /etc), the installed systemd unit (systemd-analyze verify), RuntimeClass
# YAML and containerd drop-in, reinstall and uninstall. Uses the guest image in <build>/guest
# (`ninja guest-image`), else builds one into <build>/test-packaging-guest (minutes, once).
# guest-argv: the shim's guest lookup (vmm_config_resolve_guest from its own directory), run
# from the installed bin dir.
if(TARGET containerd-shim-cloak-v2 AND TARGET cloak-snapshotter-bin AND TARGET nydus-overlayfs
   AND TARGET cloakctl AND TARGET cloak-vmm-libvirt AND TARGET cloak-agent AND TARGET cloak-pause)
    add_executable(packaging-guest-argv ${CMAKE_CURRENT_SOURCE_DIR}/integration/packaging/guest-argv.c)
    target_link_libraries(packaging-guest-argv PRIVATE cloak-vmm cloak-lib)
    add_test(NAME integration/packaging
             COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/integration/packaging/packaging.sh
                     ${CMAKE_BINARY_DIR} $<TARGET_FILE:containerd-shim-cloak-v2>
                     $<TARGET_FILE:cloak-snapshotter-bin> $<TARGET_FILE:nydus-overlayfs>
                     $<TARGET_FILE:cloakctl> $<TARGET_FILE:cloak-vmm-libvirt>
                     $<TARGET_FILE:packaging-guest-argv>)
    # <build>/guest: read here, built by the e2e suite when missing.
    set_tests_properties(integration/packaging PROPERTIES LABELS integration TIMEOUT 900
                         RESOURCE_LOCK guest-image)
endif()
