# SPDX-License-Identifier: Apache-2.0
# layer-bench: guest/layer.c's pull pipeline against curl | sha256sum, gunzip | tar -x
# (test/bench/layer/run.sh). Built with everything else, never run by ctest.
if(TARGET cloak-guest)
  add_executable(layer-bench ${CMAKE_CURRENT_LIST_DIR}/layer-bench.c)
  target_link_libraries(layer-bench PRIVATE cloak-guest cloak-lib)
endif()
