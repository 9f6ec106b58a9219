/* SPDX-License-Identifier: Apache-2.0 */
/*
 * containerd-shim-cloak-v2: containerd shim v2 that runs each pod in its own confidential VM.
 * Placeholder until its issue lands: answers --version and --help, and refuses to run.
 */
#include <stdio.h>
#include <string.h>

#include "log.h"

int
main(int argc, char **argv)
{
    cc_log_setup("shim", 2, CC_LOG_INFO);
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("containerd-shim-cloak-v2 %s\n", CLOAK_VERSION);
        return 0;
    }
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: containerd-shim-cloak-v2 [--version|--help]\ncontainerd shim v2 that runs each pod in its own confidential VM.\n");
        return 0;
    }
    cc_log(CC_LOG_ERROR, "containerd-shim-cloak-v2 is not implemented yet");
    return 1;
}
