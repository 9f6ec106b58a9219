/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloakctl: the cloak command-line tool. A subcommand dispatcher; subcommands live in
 * cli/<name>.c. Exit codes: 0 ok, 1 the command failed, 2 usage error.
 */
#include "cloakctl.h"
#include "cri.h"
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
    {"pull", cloakctl_pull, "pull an image through the CRI runtime (containerd)"},
    {"run", cloakctl_run, "run IMAGE [CMD...] in a new pod (or --pod POD); its output and exit code"},
    {"exec", cloakctl_exec, "run CMD in a running container"},
    {"ps", cloakctl_ps, "list the CRI runtime's containers (-a: exited ones too)"},
    {"rm", cloakctl_rm, "stop and remove pods and containers (unique id prefixes)"},
};

static void
usage(FILE *f)
{
    fprintf(f, "usage: cloakctl [--version|--help]\n"
               "       cloakctl [--address SOCK] COMMAND [ARGS...]\n\n"
               "the cloak command-line tool. --address: the CRI socket of pull, run, exec,\n"
               "ps and rm (default " CRI_DEFAULT_ADDRESS ").\n\ncommands:\n");
    for (size_t i = 0; i < ELEMENTSOF(commands); i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].help);
}

int
main(int argc, char **argv)
{
    cc_log_setup("cloakctl", 2, CC_LOG_INFO);
    /* The global option: --address SOCK or --address=SOCK, before the command. */
    while (argc >= 2 && cc_startswith(argv[1], "--address")) {
        if (cc_startswith(argv[1], "--address=")) {
            cri_set_address(argv[1] + strlen("--address="));
            argc--, argv++;
        } else if (cc_streq(argv[1], "--address") && argc >= 3) {
            cri_set_address(argv[2]);
            argc -= 2, argv += 2;
        } else {
            break;
        }
    }
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
