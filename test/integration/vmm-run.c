/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
/*
 * vmm-run: boots one VM through vmm_start() for the integration tests.
 *
 *   vmm-run --config FILE --state-dir DIR [--backend qemu|libvirt|auto] [--kernel K
 *           --initrd I] [--append-param P]... [--id ID] [--netns PATH [--pod-if NAME]] [-v]
 *   vmm-run --cleanup DIR
 *
 * --netns sets network "tap" for this run: a tap in that network namespace, mirrored to and
 * from --pod-if (default eth0) with tc, as Kata's tcfilter networking.
 *
 * Prints "started backend=<b> pid=<pid>" once the VM runs; SIGTERM/SIGINT stop it (exit 0);
 * when the VM goes by itself, prints "exited status=<n> reason=<...>" and exits 0.
 * --cleanup runs vmm_cleanup(DIR). Exit 1 on errors, 2 on usage errors.
 */
#include "log.h"
#include "loop.h"
#include "util.h"
#include "vmm.h"

#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct run_ctx {
    bool stop_requested;
    bool exited;
} run_ctx;

typedef struct run_args {
    const char *config, *state_dir, *kernel, *initrd, *id, *cleanup, *netns, *pod_if;
    vmm_backend backend;
    char *append; /* owned */
    bool verbose;
} run_args;

static void
on_exit_vm(vmm_instance *inst, int exit_status, const char *reason, void *userdata)
{
    run_ctx *ctx = userdata;

    (void)inst;
    ctx->exited = true;
    printf("exited status=%d reason=%s\n", exit_status, reason);
    fflush(stdout);
}

static int
on_signal(cc_loop_source *s, const struct signalfd_siginfo *si, void *userdata)
{
    run_ctx *ctx = userdata;

    (void)s, (void)si;
    ctx->stop_requested = true;
    return 0;
}

static int
usage(void)
{
    fprintf(stderr, "usage: vmm-run --config FILE --state-dir DIR [--backend qemu|libvirt|auto]"
                    " [--kernel K --initrd I] [--append-param P]... [--id ID]"
                    " [--netns PATH [--pod-if NAME]] [-v]\n"
                    "       vmm-run --cleanup DIR\n");
    return 2;
}

static int
parse_args(int argc, char **argv, run_args *a)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},  {"state-dir", required_argument, NULL, 's'},
        {"backend", required_argument, NULL, 'b'}, {"kernel", required_argument, NULL, 'k'},
        {"initrd", required_argument, NULL, 'i'},  {"append-param", required_argument, NULL, 'a'},
        {"id", required_argument, NULL, 'I'},      {"cleanup", required_argument, NULL, 'C'},
        {"verbose", no_argument, NULL, 'v'},       {"netns", required_argument, NULL, 'n'},
        {"pod-if", required_argument, NULL, 'p'},  {},
    };
    int c;

    a->backend = VMM_BACKEND_QEMU;
    a->id = "vmm-run";
    while ((c = getopt_long(argc, argv, "v", opts, NULL)) >= 0) {
        switch (c) {
        case 'c': a->config = optarg; break;
        case 's': a->state_dir = optarg; break;
        case 'k': a->kernel = optarg; break;
        case 'i': a->initrd = optarg; break;
        case 'I': a->id = optarg; break;
        case 'C': a->cleanup = optarg; break;
        case 'v': a->verbose = true; break;
        case 'n': a->netns = optarg; break;
        case 'p': a->pod_if = optarg; break;
        case 'b':
            a->backend = vmm_backend_from_string(optarg);
            if (a->backend < 0)
                return -EINVAL;
            break;
        case 'a': {
            char *n = a->append ? cc_xasprintf("%s %s", a->append, optarg) : cc_xstrdup(optarg);
            free(a->append);
            a->append = n;
            break;
        }
        default:
            return -EINVAL;
        }
    }
    if (optind != argc || (!a->cleanup && (!a->config || !a->state_dir)) ||
        (a->pod_if && !a->netns))
        return -EINVAL;
    return 0;
}

/* path made absolute against the cwd (libvirtd does not share our cwd); need not exist. */
static char *
absolute(const char *path)
{
    char cwd[PATH_MAX];

    if (path[0] == '/' || !getcwd(cwd, sizeof(cwd)))
        return cc_xstrdup(path);
    return cc_xasprintf("%s/%s", cwd, path);
}

/* Applies --kernel/--initrd/--append-param, else finds the guest next to the binary. */
static int
adjust_config(vmm_config *c, const run_args *a, cc_error **err)
{
    char exe[PATH_MAX];
    ssize_t n;

    if (a->kernel) {
        free(c->kernel);
        c->kernel = absolute(a->kernel);
    }
    if (a->initrd) {
        free(c->initrd);
        c->initrd = absolute(a->initrd);
    }
    if (a->append) {
        char *p = c->kernel_params ? cc_xasprintf("%s %s", c->kernel_params, a->append)
                                   : cc_xstrdup(a->append);
        free(c->kernel_params);
        c->kernel_params = p;
    }
    if (a->netns)
        c->net = VMM_NET_TAP;
    if (c->kernel && c->initrd)
        return 0;
    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n < 0)
        return cc_error_set(err, -errno, "readlink /proc/self/exe");
    exe[n] = '\0';
    return vmm_config_resolve_guest(c, dirname(exe), "/usr/local", err);
}

static int
run(const run_args *a, cc_error **err)
{
    _cleanup_(vmm_config_freep) vmm_config *c = NULL;
    _cleanup_(vmm_vm_freep) vmm_vm *vm = NULL;
    _cleanup_(cc_loop_freep) cc_loop *loop = NULL;
    run_ctx ctx = {};
    vmm_vm_params p = {.id = a->id, .state_dir = a->state_dir};
    vmm_instance *inst = NULL;
    int r;

    if ((r = vmm_config_load(a->config, &c, err)) < 0 || (r = adjust_config(c, a, err)) < 0)
        return r;
    p.netns_path = a->netns ? absolute(a->netns) : NULL; /* freed below */
    p.pod_ifname = a->pod_if;
    vmm_host_probe(&p.host);
    r = vmm_vm_new(c, &p, &vm, err);
    free((char *)p.netns_path);
    if (r < 0)
        return r;
    if ((r = cc_loop_new(&loop, err)) < 0)
        return r;
    if ((r = cc_loop_add_signal(loop, SIGTERM, on_signal, &ctx, NULL, err)) < 0 ||
        (r = cc_loop_add_signal(loop, SIGINT, on_signal, &ctx, NULL, err)) < 0)
        return r;
    r = vmm_start(loop, vm, a->backend, on_exit_vm, &ctx, &inst, err);
    if (r < 0)
        return r;
    printf("started backend=%s pid=%d\n", vmm_backend_to_string(vmm_instance_backend(inst)),
           vmm_instance_pid(inst));
    fflush(stdout);
    while (!ctx.stop_requested && !ctx.exited) {
        r = cc_loop_run_once(loop, CC_LOOP_INFINITY, err);
        if (r < 0)
            break;
    }
    if (r >= 0 && !ctx.exited)
        r = vmm_instance_stop(inst, 10ULL * 1000 * 1000, err);
    vmm_instance_free(inst);
    return r;
}

int
main(int argc, char **argv)
{
    _cleanup_error_ cc_error *err = NULL;
    static const int sigs[] = {SIGTERM, SIGINT};
    run_args a = {};
    int r;

    if (parse_args(argc, argv, &a) < 0) {
        free(a.append);
        return usage();
    }
    cc_log_setup("vmm-run", 2, a.verbose ? CC_LOG_DEBUG : CC_LOG_INFO);
    if (a.cleanup)
        r = vmm_cleanup(a.cleanup, &err);
    else if ((r = cc_loop_block_signals(sigs, ELEMENTSOF(sigs), &err)) >= 0)
        r = run(&a, &err);
    free(a.append);
    if (r < 0) {
        fprintf(stderr, "vmm-run: %s\n", cc_error_message(err));
        return 1;
    }
    return 0;
}
