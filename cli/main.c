/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloakctl: the cloak command-line tool (CRI client, host check, VM config dry run).
 * Placeholder until its issue lands: answers --version and --help, and refuses to run.
 */
#include <stdio.h>
#include <string.h>

#include "log.h"

int
main(int argc, char **argv)
{
    cc_log_setup("cloakctl", 2, CC_LOG_INFO);
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("cloakctl %s\n", CLOAK_VERSION);
        return 0;
    }
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: cloakctl [--version|--help]\nthe cloak command-line tool (CRI client, host check, VM config dry run).\n");
        return 0;
    }
    cc_log(CC_LOG_ERROR, "cloakctl is not implemented yet");
    return 1;
}
