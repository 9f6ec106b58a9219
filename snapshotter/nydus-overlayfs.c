/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nydus-overlayfs: the host mount helper for the fuse.nydus-overlayfs mounts that
 * cloak-snapshotter returns above guest-pull layers (specs/guest-pull-snapshotter.md §4.5).
 *
 * containerd 1.6 mounts a "fuse.<helper>" mount with
 *     mount.fuse <source> <target> -o <opt> ... -t <helper>      (mount/mount_linux.go)
 * and mount.fuse3 runs, from PATH,
 *     nydus-overlayfs <source> <target> -o <comma list>
 * This helper requires source "overlay", drops the options meant for the shim
 * (io.katacontainers.volume=, extraoption=) and the fuse/fstab words, turns the flag words
 * (ro, nosuid, ...) into MS_* flags and mounts kernel overlay with the rest as data (a
 * read-only bind of the directory when there is one lowerdir and no upperdir: a VIEW).
 * containerd unmounts it with umount2 (fusermount3 -u refuses a non-FUSE mount first).
 *
 * The option filter is snap_overlayfs_parse(); test/unit/snapshotter/test-nydus-overlayfs.c
 * includes this file with SNAP_OVERLAYFS_NO_MAIN defined.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>

#include "error.h"
#include "util.h"

/* The kernel copies at most a page of mount data. */
#define SNAP_OVERLAYFS_DATA_MAX 4095

typedef struct snap_overlayfs_flag {
    const char *word;
    bool clear;          /* the word clears the flag ("rw", "suid") */
    unsigned long flag;
} snap_overlayfs_flag;

static const snap_overlayfs_flag snap_overlayfs_flags[] = {
    {"ro", false, MS_RDONLY},          {"rw", true, MS_RDONLY},
    {"nosuid", false, MS_NOSUID},      {"suid", true, MS_NOSUID},
    {"nodev", false, MS_NODEV},        {"dev", true, MS_NODEV},
    {"noexec", false, MS_NOEXEC},      {"exec", true, MS_NOEXEC},
    {"sync", false, MS_SYNCHRONOUS},   {"async", true, MS_SYNCHRONOUS},
    {"dirsync", false, MS_DIRSYNC},    {"mand", false, MS_MANDLOCK},
    {"nomand", true, MS_MANDLOCK},     {"noatime", false, MS_NOATIME},
    {"atime", true, MS_NOATIME},       {"nodiratime", false, MS_NODIRATIME},
    {"diratime", true, MS_NODIRATIME}, {"relatime", false, MS_RELATIME},
    {"norelatime", true, MS_RELATIME}, {"strictatime", false, MS_STRICTATIME},
    {"lazytime", false, MS_LAZYTIME},  {"nolazytime", true, MS_LAZYTIME},
    {"silent", false, MS_SILENT},      {"loud", true, MS_SILENT},
};

/* Options for the shim or for mount(8)/fuse, never for the kernel overlay. */
static bool
snap_overlayfs_dropped(const char *opt)
{
    static const char *const prefixes[] = {"io.katacontainers.volume=", "extraoption=",
                                           "fsname=", "subtype="};
    static const char *const words[] = {"defaults", "auto", "noauto", "_netdev", "nofail",
                                        "user", "nouser", "users", "owner", "group",
                                        "allow_other", "default_permissions"};
    for (size_t i = 0; i < ELEMENTSOF(prefixes); i++)
        if (cc_startswith(opt, prefixes[i]))
            return true;
    for (size_t i = 0; i < ELEMENTSOF(words); i++)
        if (cc_streq(opt, words[i]))
            return true;
    return false;
}

static void
snap_overlayfs_append(char **data, size_t *len, const char *opt)
{
    size_t n = strlen(opt);
    *data = cc_xreallocarray(*data, *len + n + 2, 1);
    if (*len > 0)
        (*data)[(*len)++] = ',';
    memcpy(*data + *len, opt, n + 1);
    *len += n;
}

/*
 * opts: the comma list mount.fuse3 passes with -o. On success *ret_flags holds the MS_*
 * flags and *ret_data the overlay data ("lowerdir=...,upperdir=...,workdir=..."), owned.
 * -EINVAL for an empty option, a missing lowerdir= or data longer than a page.
 */
static int
snap_overlayfs_parse(const char *opts, unsigned long *ret_flags, char **ret_data, cc_error **err)
{
    _cleanup_free_ char *copy = cc_xstrdup(opts ? opts : "");
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    unsigned long flags = 0;
    bool lower = false;

    for (char *save = NULL, *opt = strtok_r(copy, ",", &save); opt;
         opt = strtok_r(NULL, ",", &save)) {
        if (snap_overlayfs_dropped(opt))
            continue;
        bool is_flag = false;
        for (size_t i = 0; i < ELEMENTSOF(snap_overlayfs_flags) && !is_flag; i++) {
            const snap_overlayfs_flag *f = &snap_overlayfs_flags[i];
            if (!cc_streq(opt, f->word))
                continue;
            flags = f->clear ? flags & ~f->flag : flags | f->flag;
            is_flag = true;
        }
        if (is_flag)
            continue;
        if (cc_startswith(opt, "lowerdir=") && opt[strlen("lowerdir=")])
            lower = true;
        snap_overlayfs_append(&data, &len, opt);
    }
    if (!lower)
        return cc_error_msg(err, -EINVAL, "no lowerdir= in the options '%s'", opts ? opts : "");
    if (len > SNAP_OVERLAYFS_DATA_MAX)
        return cc_error_msg(err, -EINVAL, "overlay options are %zu bytes, more than the %d "
                            "the kernel takes", len, SNAP_OVERLAYFS_DATA_MAX);
    *ret_flags = flags;
    *ret_data = TAKE_PTR(data);
    return 0;
}

/*
 * Kernel overlay refuses one lowerdir without an upperdir ("at least 2 lowerdir are needed
 * while upperdir nonexistent"): that is a read-only view of the directory, which a read-only
 * bind mount gives. Returns that directory (owned), or NULL when data needs overlay.
 */
static char *
snap_overlayfs_bind_source(const char *data)
{
    _cleanup_free_ char *copy = cc_xstrdup(data);
    const char *lower = NULL;
    for (char *save = NULL, *opt = strtok_r(copy, ",", &save); opt;
         opt = strtok_r(NULL, ",", &save)) {
        if (cc_startswith(opt, "upperdir="))
            return NULL;
        if (cc_startswith(opt, "lowerdir="))
            lower = opt + strlen("lowerdir=");
    }
    if (!lower || strchr(lower, ':'))
        return NULL;
    return cc_xstrdup(lower);
}

#ifndef SNAP_OVERLAYFS_NO_MAIN
#include <getopt.h>

static void
usage(FILE *f)
{
    fprintf(f, "usage: nydus-overlayfs overlay TARGET -o OPTIONS\n"
               "mount helper for fuse.nydus-overlayfs mounts (run by mount.fuse3): mounts "
               "kernel overlay on TARGET\nwithout the io.katacontainers.volume= and "
               "extraoption= options.\n");
}

static int
run(const char *source, const char *target, const char *opts, cc_error **err)
{
    unsigned long flags = 0;
    _cleanup_free_ char *data = NULL;

    if (!cc_streq(source, "overlay"))
        return cc_error_msg(err, -EINVAL, "source is '%s', want 'overlay'", source);
    int r = snap_overlayfs_parse(opts, &flags, &data, err);
    if (r < 0)
        return r;
    _cleanup_free_ char *bind = snap_overlayfs_bind_source(data);
    if (!bind) {
        if (mount("overlay", target, "overlay", flags, data) < 0)
            return cc_error_set(err, cc_negerrno(), "mount overlay on '%s' (%s)", target, data);
        return 0;
    }
    if (mount(bind, target, NULL, MS_BIND, NULL) < 0)
        return cc_error_set(err, cc_negerrno(), "bind mount '%s' on '%s'", bind, target);
    unsigned long ro = MS_REMOUNT | MS_BIND | MS_RDONLY |
                       (flags & (MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME |
                                 MS_RELATIME | MS_STRICTATIME));
    if (mount(NULL, target, NULL, ro, NULL) < 0) {
        r = cc_error_set(err, cc_negerrno(), "remount '%s' read-only", target);
        (void)umount2(target, MNT_DETACH);
        return r;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    _cleanup_free_ char *opts = NULL;
    size_t len = 0;
    int c;

    while ((c = getopt_long(argc, argv, "ho:", longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            usage(stdout);
            return 0;
        case 'o':
            snap_overlayfs_append(&opts, &len, optarg);
            break;
        default:
            usage(stderr);
            return 2;
        }
    }
    /* GNU getopt permutes: mount.fuse3 puts -o after the two operands. */
    if (argc - optind != 2) {
        usage(stderr);
        return 2;
    }

    _cleanup_error_ cc_error *err = NULL;
    if (run(argv[optind], argv[optind + 1], opts, &err) < 0) {
        fprintf(stderr, "nydus-overlayfs: %s\n", cc_error_message(err));
        return 1;
    }
    return 0;
}
#endif
