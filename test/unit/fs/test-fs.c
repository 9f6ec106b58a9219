/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "error.h"
#include "fs.h"
#include "util.h"

/*
 * The tree every resolution test runs in; "B" is a fresh mkdtemp directory:
 *
 *   B/outside/secret             a host file the container must never reach
 *   B/root/                      the container root
 *     etc/passwd                 "inside"; what every escape attempt must land on instead
 *     a/b/  a/x  x  outside/secret  newdir/  deep/
 *     abs_passwd -> /etc/passwd         abs_dir -> /a           dirlink -> a/b
 *     a/abs_x -> /x                     a/b/abs_passwd -> /etc/passwd
 *     rel/l1 -> l2   rel/l2 -> ../rel2/l3   rel2/l3 -> ../etc/passwd
 *     loop1 -> loop2   loop2 -> loop1   self -> self
 *     chain/c0 -> c1 … c38 -> c39, c39 -> ../etc/passwd (40 links)  chain/d0 -> c0 (41)
 *     updir -> ..   deep/esc -> ../../../..   esc -> ../outside
 *     dangling -> /newdir/created      dangling_out -> B/outside/evil (host path)
 *     dangling_rel_out -> ../../outside/newfile
 *     mkabs -> B/outside (host path)   mkrel -> ../../outside
 */
typedef struct fixture {
    char base[64];
    int base_fd;
    int root_fd;
    int outside_fd;
} fixture;

static void
make_file(int dir_fd, const char *path, const char *content)
{
    _cleanup_close_ int fd = openat(dir_fd, path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(cc_write_all(fd, content, strlen(content)), 0);
}

static void
make_link(int dir_fd, const char *target, const char *path)
{
    assert_int_equal(symlinkat(target, dir_fd, path), 0);
}

static void
make_dir(int dir_fd, const char *path)
{
    assert_int_equal(mkdirat(dir_fd, path, 0755), 0);
}

static void
build_root(fixture *f)
{
    int r = f->root_fd;
    char host[PATH_MAX];

    make_file(f->outside_fd, "secret", "outside");
    const char *dirs[] = {"etc", "a", "a/b", "outside", "newdir", "deep", "rel", "rel2", "chain"};
    for (size_t i = 0; i < ELEMENTSOF(dirs); i++)
        make_dir(r, dirs[i]);
    make_file(r, "etc/passwd", "inside");
    make_file(r, "a/x", "a-x");
    make_file(r, "x", "root-x");
    make_file(r, "outside/secret", "inside-outside");

    make_link(r, "/etc/passwd", "abs_passwd");
    make_link(r, "/a", "abs_dir");
    make_link(r, "/x", "a/abs_x");
    make_link(r, "/etc/passwd", "a/b/abs_passwd");
    make_link(r, "a/b", "dirlink");
    make_link(r, "l2", "rel/l1");
    make_link(r, "../rel2/l3", "rel/l2");
    make_link(r, "../etc/passwd", "rel2/l3");
    make_link(r, "loop2", "loop1");
    make_link(r, "loop1", "loop2");
    make_link(r, "self", "self");
    for (int i = 0; i < CC_FS_MAX_SYMLINKS; i++) {
        char name[32], target[32];
        (void)snprintf(name, sizeof(name), "chain/c%d", i);
        (void)snprintf(target, sizeof(target), "c%d", i + 1);
        make_link(r, i == CC_FS_MAX_SYMLINKS - 1 ? "../etc/passwd" : target, name);
    }
    make_link(r, "c0", "chain/d0");
    make_link(r, "..", "updir");
    make_link(r, "../../../..", "deep/esc");
    make_link(r, "../outside", "esc");
    make_link(r, "/newdir/created", "dangling");
    (void)snprintf(host, sizeof(host), "%s/outside/evil", f->base);
    make_link(r, host, "dangling_out");
    make_link(r, "../../outside/newfile", "dangling_rel_out");
    (void)snprintf(host, sizeof(host), "%s/outside", f->base);
    make_link(r, host, "mkabs");
    make_link(r, "../../outside", "mkrel");
}

static int
setup(void **state)
{
    fixture *f = cc_xzalloc(sizeof(*f));

    (void)snprintf(f->base, sizeof(f->base), "/tmp/cloak-test-fs-XXXXXX");
    assert_non_null(mkdtemp(f->base));
    f->base_fd = open(f->base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(f->base_fd >= 0);
    make_dir(f->base_fd, "root");
    make_dir(f->base_fd, "outside");
    f->root_fd = openat(f->base_fd, "root", O_PATH | O_DIRECTORY | O_CLOEXEC);
    f->outside_fd = openat(f->base_fd, "outside", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(f->root_fd >= 0 && f->outside_fd >= 0);
    build_root(f);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fixture *f = *state;

    cc_fs_force_fallback(false);
    cc_close(f->root_fd);
    cc_close(f->outside_fd);
    assert_int_equal(cc_rm_rf_children(f->base_fd, NULL), 0);
    cc_close(f->base_fd);
    assert_int_equal(rmdir(f->base), 0);
    free(f);
    return 0;
}

/* B/outside must still hold exactly "secret" with its original content. */
static void
assert_outside_untouched(const fixture *f)
{
    _cleanup_free_ char *buf = NULL;
    char path[PATH_MAX];
    size_t n = 0;

    int fd = openat(f->outside_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fdopendir(fd);
    assert_non_null(d);
    for (struct dirent *de; (de = readdir(d));) {
        if (!cc_streq(de->d_name, ".") && !cc_streq(de->d_name, "..")) {
            assert_string_equal(de->d_name, "secret");
            n++;
        }
    }
    closedir(d);
    assert_int_equal(n, 1);
    (void)snprintf(path, sizeof(path), "%s/outside/secret", f->base);
    assert_int_equal(cc_read_file(path, 64, &buf, NULL, NULL), 0);
    assert_string_equal(buf, "outside");
}

static bool
have_openat2(void)
{
    struct open_how how = {.flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT};
    long fd = syscall(SYS_openat2, AT_FDCWD, "/", &how, sizeof(how));
    if (fd < 0)
        return false;
    close((int)fd);
    return true;
}

/* What one open gave: an errno, or the file's identity. */
typedef struct result {
    int error;
    dev_t dev;
    ino_t ino;
} result;

static result
open_in_root(int root_fd, const char *path, int flags, bool fallback)
{
    _cleanup_error_ cc_error *err = NULL;
    result res = {0};
    struct stat st;

    cc_fs_force_fallback(fallback);
    int fd = cc_openat_in_root(root_fd, path, flags, 0644, &err);
    cc_fs_force_fallback(false);
    if (fd < 0) {
        assert_non_null(err);
        assert_int_equal(err->code, fd);
        res.error = fd;
        return res;
    }
    assert_null(err);
    assert_int_equal(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    assert_int_equal(fstat(fd, &st), 0);
    close(fd);
    res.dev = st.st_dev;
    res.ino = st.st_ino;
    return res;
}

typedef struct open_case {
    const char *path;
    int flags;
    const char *expect; /* path under root (not followed), or NULL when error is expected */
    int error;
    bool created; /* expect is created by the open: check, then remove it */
} open_case;

// clang-format off
#define OPENS(p, f, e) {.path = (p), .flags = (f), .expect = (e)}
#define FAILS(p, f, r) {.path = (p), .flags = (f), .error = (r)}
#define CREATES(p, f, e) {.path = (p), .flags = (f), .expect = (e), .created = true}

static const open_case open_cases[] = {
    OPENS("/etc/passwd", O_RDONLY, "etc/passwd"),
    OPENS("etc/passwd", O_RDONLY, "etc/passwd"),
    OPENS("abs_passwd", O_RDONLY, "etc/passwd"),
    OPENS("a/abs_x", O_RDONLY, "x"), /* not a/x: absolute targets restart at the root */
    OPENS("dirlink/abs_passwd", O_RDONLY, "etc/passwd"),
    OPENS("../../../../etc/passwd", O_RDONLY, "etc/passwd"),
    OPENS("/../.././etc/../etc/./passwd", O_RDONLY, "etc/passwd"),
    OPENS("//etc//passwd", O_RDONLY, "etc/passwd"),
    OPENS("rel/l1", O_RDONLY, "etc/passwd"),
    FAILS("loop1", O_RDONLY, -ELOOP),
    FAILS("self", O_RDONLY, -ELOOP),
    FAILS("self/x", O_RDONLY, -ELOOP),
    OPENS("chain/c0", O_RDONLY, "etc/passwd"), /* exactly 40 links: allowed */
    FAILS("chain/d0", O_RDONLY, -ELOOP), /* 41 */
    OPENS("dirlink/../x", O_RDONLY, "a/x"),    /* ".." after a symlink is the target's parent */
    OPENS("abs_dir/b/../x", O_RDONLY, "a/x"),
    OPENS("updir/etc/passwd", O_RDONLY, "etc/passwd"),
    OPENS("updir/updir/updir/x", O_RDONLY, "x"),
    OPENS("deep/esc/etc/passwd", O_RDONLY, "etc/passwd"),
    OPENS("esc/secret", O_RDONLY, "outside/secret"), /* "../outside" from root is root/outside */
    FAILS("abs_passwd", O_RDONLY | O_NOFOLLOW, -ELOOP),
    OPENS("abs_passwd", O_PATH | O_NOFOLLOW, "abs_passwd"),
    OPENS("dirlink", O_PATH, "a/b"),
    FAILS("dirlink", O_RDONLY | O_DIRECTORY | O_NOFOLLOW, -ENOTDIR),
    OPENS("dirlink/", O_RDONLY | O_DIRECTORY | O_NOFOLLOW, "a/b"), /* a trailing slash follows */
    FAILS("etc/passwd/x", O_RDONLY, -ENOTDIR),
    FAILS("etc/passwd/", O_RDONLY, -ENOTDIR),
    FAILS("x/.", O_RDONLY, -ENOTDIR),
    OPENS("a/", O_RDONLY | O_DIRECTORY, "a"),
    OPENS("a/.", O_RDONLY, "a"),
    OPENS("a/..", O_RDONLY, "."),
    OPENS("/", O_RDONLY | O_DIRECTORY, "."),
    OPENS(".", O_PATH, "."),
    OPENS("..", O_PATH, "."),
    FAILS("", O_RDONLY, -ENOENT),
    FAILS("missing", O_RDONLY, -ENOENT),
    FAILS("missing/x", O_RDONLY, -ENOENT),
    FAILS("a", O_WRONLY, -EISDIR),
    FAILS("a/", O_WRONLY | O_CREAT, -EISDIR),
    FAILS("newfile/", O_WRONLY | O_CREAT, -EISDIR),
    FAILS("/", O_WRONLY | O_CREAT, -EISDIR),
    FAILS("a/..", O_WRONLY | O_CREAT, -EISDIR),
    FAILS("abs_passwd", O_WRONLY | O_CREAT | O_EXCL, -EEXIST),
    OPENS("etc/passwd", O_RDONLY | O_CREAT, "etc/passwd"),
    OPENS("abs_passwd", O_RDONLY | O_CREAT, "etc/passwd"),
    CREATES("dangling", O_WRONLY | O_CREAT, "newdir/created"),
    CREATES("dangling_rel_out", O_WRONLY | O_CREAT, "outside/newfile"),
    FAILS("dangling_out", O_WRONLY | O_CREAT, -ENOENT),
    OPENS("esc/secret", O_WRONLY | O_CREAT | O_TRUNC, "outside/secret"),
};
// clang-format on

static void
check_open_case(const fixture *f, const open_case *c, bool fallback, result *ret)
{
    const char *mode = fallback ? "fallback" : "openat2";
    struct stat st;

    result res = open_in_root(f->root_fd, c->path, c->flags, fallback);
    if (!c->expect) {
        if (res.error != c->error)
            fail_msg("%s '%s' (flags %#x): got %d (%s), want %d", mode, c->path, c->flags,
                     res.error, strerror(-res.error), c->error);
    } else {
        if (res.error != 0)
            fail_msg("%s '%s' (flags %#x): got %d (%s), want '%s'", mode, c->path, c->flags,
                     res.error, strerror(-res.error), c->expect);
        assert_int_equal(fstatat(f->root_fd, c->expect, &st, AT_SYMLINK_NOFOLLOW), 0);
        if (res.dev != st.st_dev || res.ino != st.st_ino)
            fail_msg("%s '%s' (flags %#x): opened the wrong file, want '%s'", mode, c->path,
                     c->flags, c->expect);
        if (c->created)
            assert_int_equal(unlinkat(f->root_fd, c->expect, 0), 0);
    }
    *ret = res;
}

static void
test_openat_in_root_cases(void **state)
{
    const fixture *f = *state;

    if (!have_openat2())
        print_message("openat2 unavailable: both passes use the fallback\n");
    for (size_t i = 0; i < ELEMENTSOF(open_cases); i++) {
        result kernel, walk;
        check_open_case(f, &open_cases[i], false, &kernel);
        check_open_case(f, &open_cases[i], true, &walk);
        /* Created files are removed in between, so only errors and targets compare. */
        assert_int_equal(kernel.error, walk.error);
        if (!open_cases[i].created) {
            assert_true(kernel.dev == walk.dev);
            assert_true(kernel.ino == walk.ino);
        }
    }
    assert_outside_untouched(f);
}

static uint64_t
xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/*
 * Random paths over the tree's names, flags that create nothing: the kernel and the walk
 * must agree on every one (same errno, or same inode). Deterministic seed.
 */
static void
test_openat_in_root_differential(void **state)
{
    static const char *const parts[] = {
        "a",      "b",          "x",
        "etc",    "passwd",     "..",
        ".",      "",           "dirlink",
        "esc",    "abs_dir",    "updir",
        "deep",   "rel",        "l1",
        "self",   "abs_passwd", "chain",
        "c0",     "c39",        "d0",
        "loop1",  "missing",    "outside",
        "secret", "dangling",   "newdir",
        "rel2",   "l3",         "abs_x",
        "mkrel",  "mkabs",      "dangling_rel_out",
    };
    static const int flag_set[] = {
        O_RDONLY,
        O_PATH,
        O_PATH | O_NOFOLLOW,
        O_RDONLY | O_DIRECTORY,
        O_RDONLY | O_NOFOLLOW,
        O_WRONLY,
        O_PATH | O_DIRECTORY | O_NOFOLLOW,
    };
    const fixture *f = *state;
    uint64_t seed = 0x9e3779b97f4a7c15u;

    if (!have_openat2())
        skip();
    for (int i = 0; i < 4000; i++) {
        char path[512] = "";
        int n = 1 + (int)(xorshift(&seed) % 6);
        if ((seed >> 8) & 1)
            strcat(path, "/");
        for (int j = 0; j < n; j++) {
            strcat(path, parts[xorshift(&seed) % ELEMENTSOF(parts)]);
            if (j + 1 < n || ((seed >> 20) & 3) == 0)
                strcat(path, "/");
        }
        int flags = flag_set[(seed >> 32) % ELEMENTSOF(flag_set)];
        result kernel = open_in_root(f->root_fd, path, flags, false);
        result walk = open_in_root(f->root_fd, path, flags, true);
        if (kernel.error != walk.error || kernel.ino != walk.ino || kernel.dev != walk.dev)
            fail_msg("'%s' (flags %#x): openat2 gave %d/%lu, the walk %d/%lu", path, flags,
                     kernel.error, (unsigned long)kernel.ino, walk.error, (unsigned long)walk.ino);
    }
    assert_outside_untouched(f);
}

static void
test_openat_in_root_long_names(void **state)
{
    const fixture *f = *state;
    char name[NAME_MAX + 2];
    _cleanup_free_ char *path = cc_xmalloc(PATH_MAX + 1);

    memset(name, 'n', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    memset(path, 'p', PATH_MAX);
    path[PATH_MAX] = '\0';
    for (int fallback = 0; fallback <= 1; fallback++) {
        assert_int_equal(open_in_root(f->root_fd, name, O_RDONLY, fallback).error, -ENAMETOOLONG);
        assert_int_equal(open_in_root(f->root_fd, path, O_RDONLY, fallback).error, -ENAMETOOLONG);
    }
}

/* The same tree reached through AT_FDCWD as root: the fallback must cope with it too. */
static void
test_openat_in_root_cwd(void **state)
{
    const fixture *f = *state;
    char path[PATH_MAX];
    struct stat want;

    int cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    assert_true(cwd >= 0);
    (void)snprintf(path, sizeof(path), "%s/root", f->base);
    assert_int_equal(chdir(path), 0);
    assert_int_equal(fstatat(f->root_fd, "etc/passwd", &want, 0), 0);
    for (int fallback = 0; fallback <= 1; fallback++) {
        result res = open_in_root(AT_FDCWD, "../../abs_passwd", O_RDONLY, fallback);
        assert_int_equal(res.error, 0);
        assert_true(res.ino == want.st_ino);
    }
    assert_int_equal(fchdir(cwd), 0);
    close(cwd);
}

/* With the real "/" as root, procfs magic links are refused and ordinary ones followed. */
static void
test_openat_in_root_magic_links(void **state)
{
    struct statfs sfs;

    if (statfs("/proc/self", &sfs) < 0 || sfs.f_type != PROC_SUPER_MAGIC)
        skip();
    _cleanup_close_ int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    assert_true(root >= 0);
    for (int fallback = 0; fallback <= 1; fallback++) {
        assert_int_equal(open_in_root(root, "/proc/self/exe", O_PATH, fallback).error, -ELOOP);
        assert_int_equal(open_in_root(root, "/proc/self/cwd/x", O_PATH, fallback).error, -ELOOP);
        assert_int_equal(open_in_root(root, "/proc/self/ns/net", O_PATH, fallback).error, -ELOOP);
        assert_int_equal(open_in_root(root, "/proc/self/status", O_RDONLY, fallback).error, 0);
        assert_int_equal(open_in_root(root, "/proc/thread-self/comm", O_RDONLY, fallback).error, 0);
    }
}

/* The environment variable forces the fallback even when the function says otherwise. */
static void
test_force_fallback_env(void **state)
{
    const fixture *f = *state;

    assert_int_equal(setenv("CLOAK_FORCE_OPENAT2_FALLBACK", "1", 1), 0);
    result res = open_in_root(f->root_fd, "rel/l1", O_RDONLY, false);
    assert_int_equal(unsetenv("CLOAK_FORCE_OPENAT2_FALLBACK"), 0);
    assert_int_equal(res.error, 0);
}

static void
assert_dir_at(int dir_fd, const char *path, int fd)
{
    struct stat a, b;
    assert_int_equal(fstatat(dir_fd, path, &a, AT_SYMLINK_NOFOLLOW), 0);
    assert_int_equal(fstat(fd, &b), 0);
    assert_true(S_ISDIR(a.st_mode));
    assert_true(a.st_dev == b.st_dev && a.st_ino == b.st_ino);
}

static void
mkdir_p_pass(const fixture *f, bool fallback)
{
    _cleanup_error_ cc_error *err = NULL;
    int fd = -EBADF;

    cc_fs_force_fallback(fallback);
    assert_int_equal(cc_mkdir_p_in_root(f->root_fd, "/m/n//o/", 0755, &fd, &err), 0);
    assert_dir_at(f->root_fd, "m/n/o", fd);
    fd = cc_close(fd);
    /* Idempotent, and ret_fd may be NULL. */
    assert_int_equal(cc_mkdir_p_in_root(f->root_fd, "m/n/o", 0755, NULL, &err), 0);
    /* ".." clamps at the root. */
    assert_int_equal(cc_mkdir_p_in_root(f->root_fd, "../../../../up", 0755, &fd, &err), 0);
    assert_dir_at(f->root_fd, "up", fd);
    fd = cc_close(fd);
    /* A relative escape through a symlink lands in root/outside. */
    assert_int_equal(cc_mkdir_p_in_root(f->root_fd, "mkrel/x/y", 0755, &fd, &err), 0);
    assert_dir_at(f->root_fd, "outside/x/y", fd);
    fd = cc_close(fd);
    /* An absolute host path is missing inside root: refused, nothing created anywhere. */
    assert_int_equal(cc_mkdir_p_in_root(f->root_fd, "mkabs/x/y", 0755, &fd, &err), -ENOENT);
    assert_int_equal(fd, -EBADF);
    assert_non_null(err);
    assert_int_equal(cc_mkdir_p_in_root(f->root_fd, "etc/passwd/x", 0755, NULL, &err), -ENOTDIR);
    assert_int_equal(cc_mkdir_p_in_root(f->root_fd, "", 0755, NULL, &err), -EINVAL);
    cc_fs_force_fallback(false);

    assert_int_equal(cc_rm_rf_at(f->root_fd, "m", NULL), 0);
    assert_int_equal(cc_rm_rf_at(f->root_fd, "up", NULL), 0);
    int out = openat(f->root_fd, "outside", O_PATH | O_DIRECTORY | O_CLOEXEC);
    assert_int_equal(cc_rm_rf_at(out, "x", NULL), 0);
    close(out);
    assert_outside_untouched(f);
    assert_int_equal(faccessat(f->base_fd, "up", F_OK, AT_SYMLINK_NOFOLLOW), -1);
}

static void
test_mkdir_p_in_root(void **state)
{
    mkdir_p_pass(*state, false);
    mkdir_p_pass(*state, true);
}

static void
test_path_validators(void **state)
{
    assert_true(cc_filename_is_valid("abc"));
    assert_true(cc_filename_is_valid(".hidden"));
    assert_true(cc_filename_is_valid("..."));
    assert_false(cc_filename_is_valid(NULL));
    assert_false(cc_filename_is_valid(""));
    assert_false(cc_filename_is_valid("."));
    assert_false(cc_filename_is_valid(".."));
    assert_false(cc_filename_is_valid("a/b"));
    char long_name[NAME_MAX + 2];
    memset(long_name, 'x', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    assert_false(cc_filename_is_valid(long_name));
    long_name[NAME_MAX] = '\0';
    assert_true(cc_filename_is_valid(long_name));

    assert_true(cc_path_is_safe_relative("a"));
    assert_true(cc_path_is_safe_relative("a/b/c"));
    assert_true(cc_path_is_safe_relative("a/..b/c.."));
    assert_false(cc_path_is_safe_relative(NULL));
    assert_false(cc_path_is_safe_relative(""));
    assert_false(cc_path_is_safe_relative("/a"));
    assert_false(cc_path_is_safe_relative("a/"));
    assert_false(cc_path_is_safe_relative("a//b"));
    assert_false(cc_path_is_safe_relative("a/../b"));
    assert_false(cc_path_is_safe_relative(".."));
    assert_false(cc_path_is_safe_relative("a/.."));
    assert_false(cc_path_is_safe_relative("./a"));
    assert_false(cc_path_is_safe_relative("a/./b"));
}

static void
test_read_file(void **state)
{
    const fixture *f = *state;
    _cleanup_error_ cc_error *err = NULL;
    _cleanup_free_ char *big = cc_xmalloc(100001);
    char path[PATH_MAX];
    char *buf = NULL;
    size_t len = 0;

    for (size_t i = 0; i < 100000; i++)
        big[i] = (char)('a' + i % 26);
    big[100000] = '\0';
    make_file(f->base_fd, "big", big);
    (void)snprintf(path, sizeof(path), "%s/big", f->base);

    assert_int_equal(cc_read_file(path, 100000, &buf, &len, &err), 0);
    assert_int_equal(len, 100000);
    assert_int_equal(buf[len], '\0');
    assert_memory_equal(buf, big, len);
    free(buf);
    buf = NULL;

    assert_int_equal(cc_read_file(path, 99999, &buf, &len, &err), -EFBIG);
    assert_null(buf);
    assert_int_equal(len, 100000); /* untouched */
    char want[PATH_MAX + 64];
    (void)snprintf(want, sizeof(want), "read '%s': larger than 99999 bytes", path);
    assert_string_equal(cc_error_message(err), want);

    make_file(f->base_fd, "empty", "");
    (void)snprintf(path, sizeof(path), "%s/empty", f->base);
    assert_int_equal(cc_read_file(path, 0, &buf, &len, NULL), 0);
    assert_int_equal(len, 0);
    assert_string_equal(buf, "");
    free(buf);
    buf = NULL;

    /* procfs reports size 0: the size is only a hint. */
    assert_int_equal(cc_read_file("/proc/self/status", 1 << 20, &buf, NULL, NULL), 0);
    assert_non_null(strstr(buf, "Pid:"));
    free(buf);
    buf = NULL;
    assert_int_equal(cc_read_file("/proc/self/status", 10, &buf, NULL, NULL), -EFBIG);
    /* An endless source stops at the bound instead of eating memory. */
    assert_int_equal(cc_read_file("/dev/zero", 1 << 20, &buf, NULL, NULL), -EFBIG);
    assert_int_equal(cc_read_file("/nonexistent/x", 10, &buf, NULL, &err), -ENOENT);
    assert_string_equal(cc_error_message(err), "open '/nonexistent/x': No such file or directory");
    assert_int_equal(unlinkat(f->base_fd, "big", 0), 0);
    assert_int_equal(unlinkat(f->base_fd, "empty", 0), 0);
}

static void
assert_dir_holds_only(int dir_fd, const char *name)
{
    int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fdopendir(fd);
    assert_non_null(d);
    for (struct dirent *de; (de = readdir(d));)
        if (!cc_streq(de->d_name, ".") && !cc_streq(de->d_name, ".."))
            assert_string_equal(de->d_name, name);
    closedir(d);
}

static void
test_write_file_atomic(void **state)
{
    const fixture *f = *state;
    _cleanup_error_ cc_error *err = NULL;
    char *buf = NULL;
    struct stat st;
    char path[PATH_MAX], target[PATH_MAX];

    make_dir(f->base_fd, "w");
    int dir = openat(f->base_fd, "w", O_PATH | O_DIRECTORY | O_CLOEXEC); /* O_PATH is enough */
    assert_true(dir >= 0);
    (void)snprintf(path, sizeof(path), "%s/w/file", f->base);

    mode_t mask = umask(022);
    assert_int_equal(cc_write_file_atomic(dir, "file", "hello", 5, 0666, &err), 0);
    umask(mask);
    assert_int_equal(cc_read_file(path, 64, &buf, NULL, NULL), 0);
    assert_string_equal(buf, "hello");
    free(buf);
    assert_int_equal(fstatat(dir, "file", &st, 0), 0);
    assert_int_equal(st.st_mode & 07777, 0666); /* exactly, not umasked */

    assert_int_equal(cc_write_file_atomic(dir, "file", "bye", 3, 0600, &err), 0);
    assert_int_equal(cc_read_file(path, 64, &buf, NULL, NULL), 0);
    assert_string_equal(buf, "bye");
    free(buf);
    assert_int_equal(fstatat(dir, "file", &st, 0), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_dir_holds_only(dir, "file"); /* no temporary file left behind */

    /* A symlink named like the file is replaced, its target left alone. */
    (void)snprintf(target, sizeof(target), "%s/outside/secret", f->base);
    make_link(dir, target, "link");
    assert_int_equal(cc_write_file_atomic(dir, "link", "new", 3, 0644, &err), 0);
    assert_int_equal(fstatat(dir, "link", &st, AT_SYMLINK_NOFOLLOW), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_outside_untouched(f);

    assert_int_equal(cc_write_file_atomic(dir, "a/b", "x", 1, 0644, &err), -EINVAL);
    assert_string_equal(cc_error_message(err), "write 'a/b': invalid file name");
    assert_int_equal(cc_write_file_atomic(dir, "..", "x", 1, 0644, NULL), -EINVAL);
    make_dir(dir, "sub");
    assert_true(cc_write_file_atomic(dir, "sub", "x", 1, 0644, NULL) < 0);
    assert_int_equal(unlinkat(dir, "link", 0), 0);
    assert_int_equal(unlinkat(dir, "sub", AT_REMOVEDIR), 0);
    assert_dir_holds_only(dir, "file");
    close(dir);
    assert_int_equal(cc_rm_rf_at(f->base_fd, "w", NULL), 0);
}

static void
test_rm_rf(void **state)
{
    const fixture *f = *state;
    _cleanup_error_ cc_error *err = NULL;
    char target[PATH_MAX];
    struct stat st;

    make_dir(f->base_fd, "victim");
    int v = openat(f->base_fd, "victim", O_PATH | O_DIRECTORY | O_CLOEXEC);
    assert_true(v >= 0);
    make_dir(v, "a");
    make_dir(v, "a/b");
    make_dir(v, "a/b/c");
    make_file(v, "a/b/c/file", "x");
    make_file(v, "top", "x");
    (void)snprintf(target, sizeof(target), "%s/outside", f->base);
    make_link(v, target, "link_out");
    make_link(v, target, "a/b/link_out");
    (void)snprintf(target, sizeof(target), "%s/outside/secret", f->base);
    make_link(v, target, "a/link_secret");
    /* A deep chain, deeper than any default fd budget would allow with a DIR per level. */
    char deep[2 * 300 + 1] = "";
    for (int i = 0; i < 300; i++) {
        strcat(deep, i ? "/d" : "d");
        make_dir(v, deep);
    }
    close(v);

    assert_int_equal(cc_rm_rf_at(f->base_fd, "victim", &err), 0);
    assert_int_equal(fstatat(f->base_fd, "victim", &st, AT_SYMLINK_NOFOLLOW), -1);
    assert_int_equal(errno, ENOENT);
    assert_outside_untouched(f);

    /* Missing is fine; a symlink to a directory goes, its target stays. */
    assert_int_equal(cc_rm_rf_at(f->base_fd, "victim", &err), 0);
    (void)snprintf(target, sizeof(target), "%s/outside", f->base);
    make_link(f->base_fd, target, "dirlink");
    assert_int_equal(cc_rm_rf_at(f->base_fd, "dirlink", &err), 0);
    assert_outside_untouched(f);

    assert_int_equal(cc_rm_rf_at(f->base_fd, "../x", &err), -EINVAL);
    assert_string_equal(cc_error_message(err), "remove '../x': invalid file name");
    assert_int_equal(cc_rm_rf_at(f->base_fd, "", NULL), -EINVAL);

    /* cc_rm_rf_children keeps the directory itself. */
    make_dir(f->base_fd, "keep");
    int k = openat(f->base_fd, "keep", O_PATH | O_DIRECTORY | O_CLOEXEC);
    make_dir(k, "sub");
    make_file(k, "sub/f", "x");
    make_link(k, target, "out");
    assert_int_equal(cc_rm_rf_children(k, &err), 0);
    assert_int_equal(fstatat(f->base_fd, "keep", &st, 0), 0);
    assert_int_equal(faccessat(k, "sub", F_OK, AT_SYMLINK_NOFOLLOW), -1);
    assert_int_equal(faccessat(k, "out", F_OK, AT_SYMLINK_NOFOLLOW), -1);
    close(k);
    assert_int_equal(unlinkat(f->base_fd, "keep", AT_REMOVEDIR), 0);
    assert_outside_untouched(f);
}

/*
 * A mount inside the tree stops the removal (-EXDEV) and its content survives. Needs a
 * private mount namespace, so it runs in a child and only where that is allowed (root).
 */
static void
test_rm_rf_mount_point(void **state)
{
    const fixture *f = *state;

    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char path[PATH_MAX];
        if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
            _exit(77);
        /* fds from before unshare() still walk the old namespace: reopen by path. */
        int base = open(f->base, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (base < 0 || mkdirat(base, "mnt", 0755) < 0 || mkdirat(base, "mnt/m", 0755) < 0)
            _exit(1);
        (void)snprintf(path, sizeof(path), "%s/mnt/m", f->base);
        if (mount("tmpfs", path, "tmpfs", 0, NULL) < 0)
            _exit(77);
        int m = openat(base, "mnt/m", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (m < 0 || mknodat(m, "keep", S_IFREG | 0644, 0) < 0)
            _exit(2);
        if (cc_rm_rf_at(base, "mnt", NULL) != -EXDEV || faccessat(m, "keep", F_OK, 0) < 0)
            _exit(3);
        /* The top entry being the mount point is refused the same way. */
        int mnt = openat(base, "mnt", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (cc_rm_rf_at(mnt, "m", NULL) != -EXDEV || faccessat(m, "keep", F_OK, 0) < 0)
            _exit(4);
        if (umount2(path, MNT_DETACH) < 0)
            _exit(5);
        _exit(cc_rm_rf_at(base, "mnt", NULL) == 0 ? 0 : 6);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) == 77)
        skip();
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(faccessat(f->base_fd, "mnt", F_OK, 0), -1);
}

static void
test_fd_flags(void **state)
{
    int p[2];

    assert_int_equal(pipe2(p, 0), 0);
    assert_int_equal(cc_fd_set_nonblock(p[0], true), 0);
    assert_true(fcntl(p[0], F_GETFL) & O_NONBLOCK);
    assert_int_equal(cc_fd_set_nonblock(p[0], true), 0);
    assert_int_equal(cc_fd_set_nonblock(p[0], false), 0);
    assert_false(fcntl(p[0], F_GETFL) & O_NONBLOCK);
    assert_int_equal(cc_fd_set_cloexec(p[1], true), 0);
    assert_true(fcntl(p[1], F_GETFD) & FD_CLOEXEC);
    assert_int_equal(cc_fd_set_cloexec(p[1], false), 0);
    assert_false(fcntl(p[1], F_GETFD) & FD_CLOEXEC);
    close(p[0]);
    close(p[1]);
    assert_int_equal(cc_fd_set_nonblock(-1, true), -EBADF);
    assert_int_equal(cc_fd_set_cloexec(-1, true), -EBADF);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_openat_in_root_cases),
        cmocka_unit_test(test_openat_in_root_differential),
        cmocka_unit_test(test_openat_in_root_long_names),
        cmocka_unit_test(test_openat_in_root_cwd),
        cmocka_unit_test(test_openat_in_root_magic_links),
        cmocka_unit_test(test_force_fallback_env),
        cmocka_unit_test(test_mkdir_p_in_root),
        cmocka_unit_test(test_path_validators),
        cmocka_unit_test(test_read_file),
        cmocka_unit_test(test_write_file_atomic),
        cmocka_unit_test(test_rm_rf),
        cmocka_unit_test(test_rm_rf_mount_point),
        cmocka_unit_test(test_fd_flags),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
