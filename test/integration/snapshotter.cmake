# SPDX-License-Identifier: Apache-2.0
# cloak-snapshotter crash safety: crash.sh kills the snapshotter with SIGKILL at random moments
# under a create/commit/remove workload (30 times), restarts it on the same root and checks
# the store through the Snapshots API and on disk. Needs golang-go and
# golang-github-containerd-containerd-dev (skipped otherwise); no root, no mounts.
add_test(NAME integration/snapshotter-crash
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/integration/snapshotter/crash.sh
                 $<TARGET_FILE:cloak-snapshotter-bin>)
set_tests_properties(integration/snapshotter-crash PROPERTIES
                     LABELS integration TIMEOUT 300 SKIP_RETURN_CODE 77)
