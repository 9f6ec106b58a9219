/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
/*
 * cloak-agent: the guest agent.
 *
 * As PID 1 of the guest initramfs (the normal case): moves the root into a tmpfs
 * (init.c), brings the system up, then serves the Kata agent API on the virtio-serial port
 * agent.0 or on vsock port 1024, as the kernel command line says (cmdline.c). A fatal error
 * powers the VM off. After DestroySandbox the VM powers off.
 *
 * As an ordinary process (tests and development on a host): serves the same API on a unix
 * socket, with its base, state and pause-bundle directories given on the command line.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "cmdline.h"
#include "init.h"
#include "log.h"
#include "util.h"

#define AGENT_SERIAL_NAME "agent.0"
#define AGENT_VSOCK_PORT 1024

static void
usage(void)
{
    printf("usage: cloak-agent                     (as PID 1 of the guest)\n"
           "       cloak-agent --listen SOCKET [--base DIR] [--state-dir DIR]\n"
           "                   [--pause-bundle DIR] [--crun PATH] [--log-level LEVEL]\n"
           "The guest agent of cloak: serves the Kata agent API (grpc.AgentService,\n"
           "grpc.Health) over ttrpc.\n");
}

static int
on_exit_signal(cc_loop_source *s, const struct signalfd_siginfo *si, void *userdata)
{
    (void)userdata;
    cc_log(CC_LOG_INFO, "signal %u: exiting", si->ssi_signo);
    cc_loop_exit(cc_loop_source_get_loop(s), 0);
    return 0;
}

static int
run(agent_options *opts, const agent_boot_config *boot, const char *listen_path)
{
    _cleanup_error_ cc_error *e = NULL;
    cc_loop *loop = NULL;
    agent *a = NULL;
    static const int sigs[] = {SIGCHLD, SIGIO, SIGTERM, SIGINT};
    int r;

    signal(SIGPIPE, SIG_IGN);
    r = cc_loop_block_signals(sigs, opts->init ? 2 : 4, &e);
    if (r >= 0)
        r = cc_loop_new(&loop, &e);
    if (r >= 0)
        r = agent_new(loop, opts, boot, &a, &e);
    if (r >= 0) {
        if (listen_path)
            r = agent_channel_unix(a, listen_path, &e);
        else if (boot->channel == AGENT_CHANNEL_VSOCK)
            r = agent_channel_vsock(a, AGENT_VSOCK_PORT, &e);
        else
            r = agent_channel_serial(a, AGENT_SERIAL_NAME, &e);
    }
    if (r >= 0 && !opts->init) {
        /* SIGTERM/SIGINT end a test agent (PID 1 gets neither) */
        r = cc_loop_add_signal(loop, SIGTERM, on_exit_signal, NULL, NULL, &e);
        if (r >= 0)
            r = cc_loop_add_signal(loop, SIGINT, on_exit_signal, NULL, NULL, &e);
    }
    if (r >= 0)
        r = cc_loop_run(loop, &e);
    if (r < 0) {
        if (opts->init)
            agent_init_fatal("agent", e);
        cc_log_error(CC_LOG_ERROR, e, "cloak-agent");
    }
    agent_free(a);
    cc_loop_free(loop);
    return r < 0 ? 1 : 0;
}

static int
run_test_mode(int argc, char **argv)
{
    static const struct option options[] = {
        {"listen", required_argument, NULL, 'l'},     {"base", required_argument, NULL, 'b'},
        {"state-dir", required_argument, NULL, 's'},  {"pause-bundle", required_argument, NULL, 'p'},
        {"crun", required_argument, NULL, 'c'},       {"log-level", required_argument, NULL, 'L'},
        {"help", no_argument, NULL, 'h'},             {"version", no_argument, NULL, 'V'},
        {},
    };
    agent_options opts = {0};
    agent_boot_config boot = {0};
    const char *listen_path = NULL;
    int level = CC_LOG_INFO, c;

    while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
        switch (c) {
        case 'l': listen_path = optarg; break;
        case 'b': opts.base = optarg; break;
        case 's': opts.state_dir = optarg; break;
        case 'p': opts.pause_bundle = optarg; break;
        case 'c': opts.crun = optarg; break;
        case 'L':
            level = cc_log_level_from_string(optarg);
            if (level < 0) {
                fprintf(stderr, "cloak-agent: --log-level: unknown level '%s'\n", optarg);
                return 2;
            }
            break;
        case 'h': usage(); return 0;
        case 'V': printf("cloak-agent %s\n", CLOAK_VERSION); return 0;
        default: return 2;
        }
    }
    if (optind < argc || !listen_path) {
        fprintf(stderr, "cloak-agent: not PID 1: --listen SOCKET is required (see --help)\n");
        return 2;
    }
    cc_log_setup("agent", 2, (cc_log_level)level);
    return run(&opts, &boot, listen_path);
}

int
main(int argc, char **argv)
{
    _cleanup_error_ cc_error *e = NULL;
    agent_options opts = {.init = true};
    agent_boot_config boot;

    if (getpid() != 1)
        return run_test_mode(argc, argv);

    cc_log_setup("agent", 2, CC_LOG_INFO);
    if (!getenv("CLOAK_AGENT_STAGE")) {
        agent_init_switch_root(argv, &e); /* returns only on failure */
        agent_init_fatal("switch_root", e);
    }
    if (agent_init_system(&boot, &e) < 0)
        agent_init_fatal("system setup", e);
    cc_log_set_level((cc_log_level)boot.log_level);
    return run(&opts, &boot, NULL);
}
