/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloakctl: the cloak command-line tool. A subcommand dispatcher; subcommands live in
 * cli/<name>.c. Exit codes: 0 ok, 1 the command failed, 2 usage error.
 */
#include "cloakctl.h"
#include "log.h"
#include "util.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} commands[] = {
    {"check", cloakctl_check, "which profiles this host can run, and why not"},
    {"vm-config", cloakctl_vm_config, "print the QEMU argv or libvirt XML a config launches"},
};

static void
usage(FILE *f)
{
    fprintf(f, "usage: cloakctl [--version|--help]\n"
               "       cloakctl COMMAND [ARGS...]\n\n"
               "the cloak command-line tool.\n\ncommands:\n");
    for (size_t i = 0; i < ELEMENTSOF(commands); i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].help);
}

int
main(int argc, char **argv)
{
    cc_log_setup("cloakctl", 2, CC_LOG_INFO);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (cc_streq(argv[1], "--version")) {
        printf("cloakctl %s\n", CLOAK_VERSION);
        return 0;
    }
    if (cc_streq(argv[1], "--help") || cc_streq(argv[1], "-h")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < ELEMENTSOF(commands); i++)
        if (cc_streq(argv[1], commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "cloakctl: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
