/* SPDX-License-Identifier: Apache-2.0 */
/*
 * snapshotter/nydus-overlayfs.c: the option filter of the host mount helper (what reaches
 * the kernel overlay, which MS_* flags, what is refused). The file is included without its
 * main().
 */
#define SNAP_OVERLAYFS_NO_MAIN
#include "nydus-overlayfs.c"

/* cmocka.h needs these first. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

static void
test_parse_guest_pull_mount(void **state)
{
    (void)state;
    unsigned long flags = 1234;
    _cleanup_free_ char *data = NULL;
    /* What cloak-snapshotter returns above a guest-pull layer, plus mount.fuse3's words. */
    const char *opts = "workdir=/s/snapshots/5/work,upperdir=/s/snapshots/5/fs,"
                       "lowerdir=/s/snapshots/4/fs:/s/snapshots/3/fs,"
                       "io.katacontainers.volume=eyJ2b2x1bWVfdHlwZSI6ImltYWdlX2d1ZXN0X3B1bGwifQ==,"
                       "nosuid,nodev,relatime,rw";
    assert_int_equal(snap_overlayfs_parse(opts, &flags, &data, NULL), 0);
    assert_string_equal(data, "workdir=/s/snapshots/5/work,upperdir=/s/snapshots/5/fs,"
                              "lowerdir=/s/snapshots/4/fs:/s/snapshots/3/fs");
    assert_int_equal(flags, MS_NOSUID | MS_NODEV | MS_RELATIME);
}

static void
test_parse_flags(void **state)
{
    (void)state;
    unsigned long flags = 0;
    _cleanup_free_ char *data = NULL;
    assert_int_equal(snap_overlayfs_parse("ro,lowerdir=/a,noexec,nosuid,suid,extraoption=e30=,"
                                          "defaults,fsname=overlay,subtype=nydus-overlayfs,"
                                          "index=off",
                                          &flags, &data, NULL),
                     0);
    assert_string_equal(data, "lowerdir=/a,index=off");
    assert_int_equal(flags, MS_RDONLY | MS_NOEXEC);

    free(data);
    data = NULL;
    assert_int_equal(snap_overlayfs_parse("ro,rw,,lowerdir=/a:/b", &flags, &data, NULL), 0);
    assert_string_equal(data, "lowerdir=/a:/b");
    assert_int_equal(flags, 0);
}

static void
test_parse_refused(void **state)
{
    (void)state;
    unsigned long flags = 77;
    char *data = (char *)"untouched";
    _cleanup_error_ cc_error *err = NULL;

    assert_int_equal(snap_overlayfs_parse("upperdir=/u,workdir=/w,io.katacontainers.volume=x",
                                          &flags, &data, &err),
                     -EINVAL);
    assert_non_null(strstr(cc_error_message(err), "no lowerdir="));
    assert_int_equal(flags, 77);
    assert_string_equal(data, "untouched");

    assert_int_equal(snap_overlayfs_parse("lowerdir=", &flags, &data, NULL), -EINVAL);
    assert_int_equal(snap_overlayfs_parse("", &flags, &data, NULL), -EINVAL);
    assert_int_equal(snap_overlayfs_parse(NULL, &flags, &data, NULL), -EINVAL);

    /* More than a page of data: the kernel would cut it. */
    _cleanup_free_ char *big = cc_xmalloc(5000);
    memset(big, 'x', 4999);
    big[4999] = '\0';
    memcpy(big, "lowerdir=/", 10);
    err = cc_error_free(err);
    assert_int_equal(snap_overlayfs_parse(big, &flags, &data, &err), -EINVAL);
    assert_non_null(strstr(cc_error_message(err), "more than"));
    assert_string_equal(data, "untouched");
}

static void
test_bind_source(void **state)
{
    (void)state;
    _cleanup_free_ char *one = snap_overlayfs_bind_source("lowerdir=/s/snapshots/3/fs");
    assert_string_equal(one, "/s/snapshots/3/fs");
    assert_null(snap_overlayfs_bind_source("lowerdir=/a:/b"));
    assert_null(snap_overlayfs_bind_source("workdir=/w,upperdir=/u,lowerdir=/a"));
    assert_null(snap_overlayfs_bind_source("index=off"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_guest_pull_mount),
        cmocka_unit_test(test_parse_flags),
        cmocka_unit_test(test_parse_refused),
        cmocka_unit_test(test_bind_source),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
