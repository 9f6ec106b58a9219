/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloak-snapshotter: containerd proxy snapshotter that keeps image layers off the host
 * (guest pull). Serves containerd.services.snapshots.v1.Snapshots on a unix socket.
 *
 *     cloak-snapshotter --root DIR --address SOCK [--config FILE] [--debug]
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "snapshotter.h"
#include "util.h"

static void
usage(FILE *f)
{
    fprintf(f, "usage: cloak-snapshotter --root DIR --address SOCK [--config FILE] [--debug]\n"
               "       cloak-snapshotter --version|--help\n"
               "containerd proxy snapshotter that keeps image layers off the host (guest "
               "pull).\n");
}

static int
on_signal(cc_loop_source *src, const struct signalfd_siginfo *si, void *userdata)
{
    cc_log(CC_LOG_INFO, "signal %u: exiting", si->ssi_signo);
    cc_loop_exit(cc_loop_source_get_loop(src), 0);
    return 0;
}

/* mkdir -p of path's parent directories. */
static int
mkdir_parents(const char *path, cc_error **err)
{
    _cleanup_free_ char *p = cc_xstrdup(path);
    for (char *slash = strchr(p + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        if (mkdir(p, 0711) < 0 && errno != EEXIST)
            return cc_error_set(err, -errno, "mkdir '%s'", p);
        *slash = '/';
    }
    return 0;
}

static int
run(const char *root, const char *address, cc_error **err)
{
    snap_ctx ctx = {0};
    static const int signals[] = {SIGINT, SIGTERM, SIGPIPE};
    int r;

    r = cc_loop_block_signals(signals, ELEMENTSOF(signals), err);
    if (r < 0)
        return r;
    r = cc_loop_new(&ctx.loop, err);
    if (r < 0)
        return r;
    for (size_t i = 0; i < 2; i++) {
        r = cc_loop_add_signal(ctx.loop, signals[i], on_signal, NULL, NULL, err);
        if (r < 0)
            goto out;
    }
    r = snap_store_open(root, &ctx.store, err);
    if (r < 0)
        goto out;

    r = mkdir_parents(address, err);
    if (r < 0)
        goto out;
    r = cc_grpc_server_new(ctx.loop, &ctx.server, err);
    if (r < 0)
        goto out;
    r = snap_rpc_register(&ctx, ctx.server, err);
    if (r < 0)
        goto out;
    r = cc_grpc_server_listen(ctx.server, address, 0660, err);
    if (r < 0)
        goto out;
    cc_log(CC_LOG_INFO, "serving snapshots of '%s' on '%s' (%zu snapshots)", root, address,
           snap_store_count(ctx.store));
    r = cc_loop_run(ctx.loop, err);
    (void)unlink(address);
out:
    ctx.server = cc_grpc_server_free(ctx.server);
    ctx.store = snap_store_free(ctx.store);
    ctx.loop = cc_loop_free(ctx.loop);
    return r;
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"root", required_argument, NULL, 'r'},  {"address", required_argument, NULL, 'a'},
        {"config", required_argument, NULL, 'c'}, {"debug", no_argument, NULL, 'd'},
        {"version", no_argument, NULL, 'V'},      {"help", no_argument, NULL, 'h'},
        {0},
    };
    const char *root = NULL, *address = NULL, *config = NULL;
    int c;

    cc_log_setup("snapshotter", 2, CC_LOG_INFO);
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'r': root = optarg; break;
        case 'a': address = optarg; break;
        case 'c': config = optarg; break;
        case 'd': cc_log_set_level(CC_LOG_DEBUG); break;
        case 'V': printf("cloak-snapshotter %s\n", CLOAK_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc || !root || !address) {
        usage(stderr);
        return 2;
    }
    if (config && access(config, R_OK) < 0) {
        cc_log_errno(CC_LOG_ERROR, -errno, "config '%s'", config);
        return 1;
    }
    /* No settings are read from the config file yet: it is accepted for forward compat. */

    /* containerd needs absolute paths in the mounts. */
    if (mkdir(root, 0711) < 0 && errno != EEXIST) {
        cc_log_errno(CC_LOG_ERROR, -errno, "mkdir '%s'", root);
        return 1;
    }
    _cleanup_free_ char *abs_root = realpath(root, NULL);
    if (!abs_root) {
        cc_log_errno(CC_LOG_ERROR, -errno, "resolve '%s'", root);
        return 1;
    }
    _cleanup_error_ cc_error *e = NULL;
    if (run(abs_root, address, &e) < 0) {
        cc_log(CC_LOG_ERROR, "%s", cc_error_message(e));
        return 1;
    }
    return 0;
}
