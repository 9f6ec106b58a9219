# SPDX-License-Identifier: Apache-2.0
# `ninja guest-image`: the reproducible guest image (packaging/build-guest.sh) into
# <build>/guest/ — vmlinuz, initrd.img, SHA256SUMS — with cloak-agent from this build dir
# as /init. Not part of ALL: it downloads Debian packages (cached in <build>/guest-cache)
# and needs root for apt-get download.
add_custom_target(guest-image
  COMMAND ${CMAKE_COMMAND} -E env CLOAK_BUILD_DIR=${CMAKE_BINARY_DIR}
          CLOAK_CACHE_DIR=${CMAKE_BINARY_DIR}/guest-cache
          bash ${CMAKE_SOURCE_DIR}/packaging/build-guest.sh ${CMAKE_BINARY_DIR}/guest
  BYPRODUCTS ${CMAKE_BINARY_DIR}/guest/vmlinuz ${CMAKE_BINARY_DIR}/guest/initrd.img
             ${CMAKE_BINARY_DIR}/guest/SHA256SUMS
  COMMENT "Building the guest image into ${CMAKE_BINARY_DIR}/guest"
  USES_TERMINAL
  VERBATIM)
add_dependencies(guest-image cloak-agent cloak-pause)
