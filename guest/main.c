/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloak-agent: the guest agent, PID 1 inside the confidential VM.
 * Placeholder until its issue lands: answers --version and --help, and refuses to run.
 */
#include <stdio.h>
#include <string.h>

#include "log.h"

int
main(int argc, char **argv)
{
    cc_log_setup("agent", 2, CC_LOG_INFO);
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("cloak-agent %s\n", CLOAK_VERSION);
        return 0;
    }
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: cloak-agent [--version|--help]\nthe guest agent, PID 1 inside the confidential VM.\n");
        return 0;
    }
    cc_log(CC_LOG_ERROR, "cloak-agent is not implemented yet");
    return 1;
}
