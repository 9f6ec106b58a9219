# SPDX-License-Identifier: Apache-2.0
# Go peers for the ttrpc interop tests and the benchmark, written against containerd's own
# ttrpc v1.1.1 (the version containerd 1.6 vendors), and the ctest registrations.
#
# Built offline from Debian packages in GOPATH mode: no go.mod, no module proxy.
#   apt-get install golang-go golang-github-containerd-ttrpc-dev
# GOPATH = <build>/test/go-interop/gopath (src/cloak/interop -> test/interop/go) followed by
# /usr/share/gocode, where Debian puts ttrpc and its dependencies (gogo/protobuf, grpc's
# status and codes, genproto, logrus, x/sys). GOCACHE and HOME live in the build tree too, so
# the build needs no home directory and leaves nothing outside the build tree.
#
# Included from test/CMakeLists.txt after c.cmake, so the tests against our C peers are
# registered only when c.cmake defined them.

option(CLOAK_GO_INTEROP "Build the Go ttrpc peers and register the interop tests" ON)
if(NOT CLOAK_GO_INTEROP)
  return()
endif()
find_program(CLOAK_GO go)
set(CLOAK_GOCODE /usr/share/gocode CACHE PATH "Debian's GOPATH with containerd/ttrpc 1.1.1 and its dependencies")
if(NOT CLOAK_GO OR NOT EXISTS ${CLOAK_GOCODE}/src/github.com/containerd/ttrpc/client.go)
  # Tests never skip silently: without the Go peers the build stops here.
  message(FATAL_ERROR "ttrpc interop: need golang-go and golang-github-containerd-ttrpc-dev "
                      "(${CLOAK_GOCODE}); run packaging/install-deps.sh, or configure with "
                      "-DCLOAK_GO_INTEROP=OFF to build without the interop tests")
endif()

set(cloak_go_dir ${CMAKE_CURRENT_BINARY_DIR}/go-interop)
file(MAKE_DIRECTORY ${cloak_go_dir}/gopath/src/cloak ${cloak_go_dir}/home)
file(CREATE_LINK ${CMAKE_CURRENT_SOURCE_DIR}/interop/go ${cloak_go_dir}/gopath/src/cloak/interop SYMBOLIC)

set(cloak_go_bins ttrpc-go-server ttrpc-go-client ttrpc-go-rawpeer ttrpc-go-bench)
list(TRANSFORM cloak_go_bins PREPEND ${CMAKE_CURRENT_BINARY_DIR}/ OUTPUT_VARIABLE cloak_go_outputs)
list(TRANSFORM cloak_go_bins PREPEND cloak/interop/ OUTPUT_VARIABLE cloak_go_packages)
file(GLOB_RECURSE cloak_go_sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/interop/go/*.go)

add_custom_command(
  OUTPUT ${cloak_go_outputs}
  COMMAND ${CMAKE_COMMAND} -E env
          GO111MODULE=off GOPATH=${cloak_go_dir}/gopath:${CLOAK_GOCODE}
          GOCACHE=${cloak_go_dir}/cache HOME=${cloak_go_dir}/home
          GOFLAGS= GOENV=off GOPROXY=off GOTOOLCHAIN=local CGO_ENABLED=0
          ${CLOAK_GO} build -p 2 -buildvcs=false -trimpath -o ${CMAKE_CURRENT_BINARY_DIR}/
          ${cloak_go_packages}
  # go build leaves an up-to-date binary untouched; touch it so ninja sees it as current.
  COMMAND ${CMAKE_COMMAND} -E touch ${cloak_go_outputs}
  DEPENDS ${cloak_go_sources}
  COMMENT "Building the Go ttrpc peers (GOPATH mode, Debian's containerd/ttrpc)"
  VERBATIM)
add_custom_target(ttrpc-go-peers ALL DEPENDS ${cloak_go_outputs})

# --- interop tests -----------------------------------------------------------------------
# interop/<client>-client-<server>-server/<case>: run-interop.sh starts the server, waits for
# "ready", runs the client case, stops the server and checks it exits 0.
set(cloak_interop_driver ${CMAKE_CURRENT_SOURCE_DIR}/interop/run-interop.sh)
set(cloak_go_server ${CMAKE_CURRENT_BINARY_DIR}/ttrpc-go-server)
set(cloak_go_client ${CMAKE_CURRENT_BINARY_DIR}/ttrpc-go-client)
set(cloak_go_rawpeer ${CMAKE_CURRENT_BINARY_DIR}/ttrpc-go-rawpeer)
set(cloak_go_client_cases echo concurrent near-limit over-limit unimplemented deadline status client-hangup
                           framing)
set(cloak_c_client_cases echo concurrent near-limit over-limit unimplemented deadline status client-hangup)

function(cloak_interop_test name case)
  add_test(NAME interop/${name}/${case} COMMAND ${cloak_interop_driver} ${case} ${ARGN})
  set_tests_properties(interop/${name}/${case} PROPERTIES LABELS integration TIMEOUT 120)
endfunction()

foreach(case IN LISTS cloak_go_client_cases)
  # The control: Go against Go proves the cases themselves. Go's server sends a reply over
  # the 4 MiB limit as is (which Go's own client cannot survive); only here is that accepted.
  cloak_interop_test(go-client-go-server ${case} ${cloak_go_server} -- ${cloak_go_client})
  set_tests_properties(interop/go-client-go-server/${case} PROPERTIES
                       ENVIRONMENT TTRPC_INTEROP_ACCEPT_OVERSIZE_REPLY=1)
  if(TARGET ttrpc-c-server)
    cloak_interop_test(go-client-c-server ${case} $<TARGET_FILE:ttrpc-c-server> -- ${cloak_go_client})
  endif()
endforeach()

if(TARGET ttrpc-c-client)
  foreach(case IN LISTS cloak_c_client_cases)
    cloak_interop_test(c-client-go-server ${case} ${cloak_go_server} -- $<TARGET_FILE:ttrpc-c-client>)
  endforeach()
  cloak_interop_test(c-client-go-rawpeer server-hangup
                     ${cloak_go_rawpeer} --mode half-response -- $<TARGET_FILE:ttrpc-c-client>)
endif()

# --- bench smoke: the benchmark script works end to end (timings are not checked) ---------
if(TARGET ttrpc-c-server)
  add_test(NAME bench/ttrpc-smoke
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/bench/ttrpc/run.sh
                   --build-dir ${CMAKE_BINARY_DIR} --c-server $<TARGET_FILE:ttrpc-c-server>
                   --duration 0.3 --rounds 1)
  set_tests_properties(bench/ttrpc-smoke PROPERTIES LABELS bench TIMEOUT 30)
endif()
