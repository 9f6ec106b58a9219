# SPDX-License-Identifier: Apache-2.0
# Our side of the ttrpc interop tests (included from test/CMakeLists.txt before go.cmake, so
# the binaries land in <build>/test/): an Echo server and a case-driven client on lib/ttrpc.
# The Go peers (go.cmake) follow the same command lines:
#   ttrpc-c-server --socket PATH          prints "ready", serves until SIGTERM/SIGINT
#   ttrpc-c-client --socket PATH CASE     prints "ok CASE" or "FAIL CASE: reason"
# go.cmake registers the Go pairings; here only our client against our server, with the same
# driver and naming (interop/<client>-client-<server>-server/<case>). server-hangup needs a
# misbehaving peer (go.cmake runs it against ttrpc-go-rawpeer); client-hangup is our extra.
foreach(prog ttrpc-c-server ttrpc-c-client)
  add_executable(${prog} ${CMAKE_CURRENT_SOURCE_DIR}/interop/${prog}.c)
  target_link_libraries(${prog} PRIVATE cloak-lib cloak-test-proto)
endforeach()

set(cloak_c_interop_driver ${CMAKE_CURRENT_SOURCE_DIR}/interop/run-interop.sh)
if(EXISTS ${cloak_c_interop_driver})
  foreach(case echo concurrent near-limit over-limit unimplemented deadline status client-hangup)
    add_test(NAME interop/c-client-c-server/${case}
             COMMAND ${cloak_c_interop_driver} ${case} $<TARGET_FILE:ttrpc-c-server>
                     -- $<TARGET_FILE:ttrpc-c-client>)
    set_tests_properties(interop/c-client-c-server/${case} PROPERTIES LABELS integration
                         TIMEOUT 120)
  endforeach()
endif()
