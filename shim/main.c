/* SPDX-License-Identifier: Apache-2.0 */
/*
 * containerd-shim-cloak-v2: containerd shim v2 that runs each pod in its own confidential VM.
 *   containerd-shim-cloak-v2 -namespace NS -address SOCK -publish-binary BIN -id ID start
 *   containerd-shim-cloak-v2 -namespace NS -address SOCK -publish-binary BIN -id ID -bundle B delete
 *   (no action: the daemon, exec'd by `start` with the socket on fd 3)
 */
#include "log.h"
#include "shim.h"

#include <stdio.h>
#include <string.h>

int
main(int argc, char **argv)
{
    shim_args a;
    _cleanup_error_ cc_error *err = NULL;

    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: containerd-shim-cloak-v2 -namespace NS -address ADDR -id ID "
               "[-publish-binary BIN] [-bundle DIR] [-debug] [start|delete]\n"
               "containerd shim v2 that runs each pod in its own confidential VM.\n");
        return 0;
    }
    if (shim_args_parse(argc, argv, &a, &err) < 0) {
        fprintf(stderr, "containerd-shim-cloak-v2: %s\n", cc_error_message(err));
        return 2;
    }
    if (a.version) {
        printf("containerd-shim-cloak-v2 %s\n", CLOAK_VERSION);
        return 0;
    }
    if (a.action && strcmp(a.action, "start") == 0)
        return shim_cmd_start(&a, "/proc/self/exe");
    if (a.action && strcmp(a.action, "delete") == 0)
        return shim_cmd_delete(&a);
    return shim_daemon_main(&a);
}
