/* SPDX-License-Identifier: Apache-2.0 */
/*
 * guest/copyfile.c: CopyFile with a real agent on a temporary base. Next to the base lies
 * "outside/" with one file; after every case, the temporary directory and outside/ must hold
 * exactly what they held before (nothing escapes the base).
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "error.h"
#include "fs.h"
#include "loop.h"
#include "util.h"

typedef struct fixture {
    char tmp[PATH_MAX];
    char base[PATH_MAX + 8];
    char state_dir[PATH_MAX + 8];
    char pause[PATH_MAX + 8];
    char outside[PATH_MAX + 8];
    cc_loop *loop;
    agent *a;
} fixture;

static int
setup(void **state)
{
    static const int sigs[] = {SIGCHLD};
    fixture *f = cc_xzalloc(sizeof(*f));

    umask(022);
    snprintf(f->tmp, sizeof(f->tmp), "/tmp/cloak-test-copyfile-XXXXXX");
    if (!mkdtemp(f->tmp))
        return -1;
    snprintf(f->base, sizeof(f->base), "%s/base", f->tmp);
    snprintf(f->state_dir, sizeof(f->state_dir), "%s/state", f->tmp);
    snprintf(f->pause, sizeof(f->pause), "%s/pause", f->tmp);
    snprintf(f->outside, sizeof(f->outside), "%s/outside", f->tmp);
    if (mkdir(f->outside, 0755) < 0 || mkdir(f->pause, 0755) < 0)
        return -1;
    _cleanup_free_ char *victim = cc_xasprintf("%s/victim", f->outside);
    _cleanup_close_ int vfd = open(victim, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (vfd < 0 || write(vfd, "original", 8) != 8)
        return -1;
    agent_options opts = {.init = false,
                          .base = f->base,
                          .state_dir = f->state_dir,
                          .pause_bundle = f->pause,
                          .crun = "/bin/false"};
    if (cc_loop_block_signals(sigs, ELEMENTSOF(sigs), NULL) < 0 || cc_loop_new(&f->loop, NULL) < 0)
        return -1;
    _cleanup_error_ cc_error *err = NULL;
    if (agent_new(f->loop, &opts, NULL, &f->a, &err) < 0) {
        print_error("agent_new: %s\n", cc_error_message(err));
        return -1;
    }
    *state = f;
    return 0;
}

/* The names in dir, sorted, joined by ' '. */
static char *
list_dir(const char *dir)
{
    struct dirent **ents;
    int n = scandir(dir, &ents, NULL, alphasort);
    char *s = cc_xstrdup("");
    assert_true(n >= 0);
    for (int i = 0; i < n; i++) {
        if (strcmp(ents[i]->d_name, ".") && strcmp(ents[i]->d_name, "..")) {
            char *t = cc_xasprintf("%s%s%s", s, *s ? " " : "", ents[i]->d_name);
            free(s);
            s = t;
        }
        free(ents[i]);
    }
    free(ents);
    return s;
}

static void
assert_nothing_outside(const fixture *f)
{
    _cleanup_free_ char *top = list_dir(f->tmp);
    _cleanup_free_ char *out = list_dir(f->outside);
    _cleanup_free_ char *victim = cc_xasprintf("%s/victim", f->outside);
    _cleanup_free_ char *data = NULL;
    assert_string_equal(top, "base outside pause state");
    assert_string_equal(out, "victim");
    assert_int_equal(cc_read_file(victim, 64, &data, NULL, NULL), 0);
    assert_string_equal(data, "original");
}

static int
teardown(void **state)
{
    fixture *f = *state;
    assert_nothing_outside(f);
    agent_free(f->a);
    cc_loop_free(f->loop);
    _cleanup_close_ int tmp_fd = open("/tmp", O_PATH | O_DIRECTORY | O_CLOEXEC);
    int r = cc_rm_rf_at(tmp_fd, f->tmp + strlen("/tmp/"), NULL);
    free(f);
    return r;
}

/* A request for base + rel. Owns the path string (req_done). */
static Grpc__CopyFileRequest
req_new(const fixture *f, const char *rel, uint32_t file_mode, const char *data)
{
    Grpc__CopyFileRequest req = GRPC__COPY_FILE_REQUEST__INIT;
    req.path = cc_xasprintf("%s%s", f->base, rel);
    req.file_mode = file_mode;
    req.uid = -1;
    req.gid = -1;
    if (data) {
        req.data.data = (uint8_t *)data;
        req.data.len = strlen(data);
        req.file_size = (int64_t)req.data.len;
    }
    return req;
}

static void
req_done(Grpc__CopyFileRequest *req)
{
    free(req->path);
}

static void
copy_ok(const fixture *f, const Grpc__CopyFileRequest *req)
{
    _cleanup_error_ cc_error *err = NULL;
    int r = agent_copy_file(f->a, req, &err);
    if (r != 0)
        fail_msg("copy %s: %d %s", req->path, r, cc_error_message(err));
    assert_null(err);
}

static void
copy_refused(const fixture *f, const Grpc__CopyFileRequest *req, int code, const char *needle)
{
    _cleanup_error_ cc_error *err = NULL;
    int r = agent_copy_file(f->a, req, &err);
    if (r != code || !err || err->code != r || !strstr(cc_error_message(err), needle))
        fail_msg("copy %s: expected %d naming '%s', got %d: %s", req->path, code, needle, r,
                 cc_error_message(err));
}

static void
test_directory(void **state)
{
    fixture *f = *state;
    struct stat st;

    Grpc__CopyFileRequest req = req_new(f, "/shared/d1", S_IFDIR | 0750, NULL);
    req.dir_mode = 0711;
    copy_ok(f, &req);
    assert_int_equal(fstatat(f->a->base_fd, "shared/d1", &st, AT_SYMLINK_NOFOLLOW), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0750);
    assert_int_equal(fstatat(f->a->base_fd, "shared", &st, AT_SYMLINK_NOFOLLOW), 0);
    assert_int_equal(st.st_mode & 07777, 0711); /* the parent, created with dir_mode */

    /* again, with another mode: applied to the existing directory */
    req.file_mode = S_IFDIR | 01777;
    copy_ok(f, &req);
    assert_int_equal(fstatat(f->a->base_fd, "shared/d1", &st, AT_SYMLINK_NOFOLLOW), 0);
    assert_int_equal(st.st_mode & 07777, 01777);

    /* a directory over a file: refused */
    Grpc__CopyFileRequest file = req_new(f, "/shared/file", S_IFREG | 0644, "x");
    copy_ok(f, &file);
    file.file_mode = S_IFDIR | 0755;
    copy_refused(f, &file, -EEXIST, "not a directory");
    req_done(&file);
    req_done(&req);
}

static void
test_file_chunks(void **state)
{
    fixture *f = *state;
    _cleanup_free_ char *content = NULL;
    struct stat st;

    Grpc__CopyFileRequest req = req_new(f, "/sub/dir/f.txt", S_IFREG | 0640, NULL);
    req.file_size = 9;
    req.dir_mode = 0700;
    static const char *const chunks[] = {"abc", "def", "ghi"};
    for (size_t i = 0; i < 3; i++) {
        req.offset = (int64_t)(3 * i);
        req.data.data = (uint8_t *)chunks[i];
        req.data.len = 3;
        copy_ok(f, &req);
        int exists = fstatat(f->a->base_fd, "sub/dir/f.txt", &st, AT_SYMLINK_NOFOLLOW);
        int tmp_exists = fstatat(f->a->base_fd, "sub/dir/f.txt.cloak-tmp", &st, AT_SYMLINK_NOFOLLOW);
        if (i < 2) {
            /* not visible under its name before the last chunk */
            assert_int_equal(exists, -1);
            assert_int_equal(tmp_exists, 0);
        } else {
            assert_int_equal(exists, 0);
            assert_int_equal(tmp_exists, -1);
        }
    }
    assert_int_equal(fstatat(f->a->base_fd, "sub/dir/f.txt", &st, AT_SYMLINK_NOFOLLOW), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0640);
    assert_int_equal(st.st_size, 9);
    _cleanup_free_ char *path = cc_xasprintf("%s/sub/dir/f.txt", f->base);
    assert_int_equal(cc_read_file(path, 64, &content, NULL, NULL), 0);
    assert_string_equal(content, "abcdefghi");
    assert_int_equal(fstatat(f->a->base_fd, "sub", &st, AT_SYMLINK_NOFOLLOW), 0);
    assert_int_equal(st.st_mode & 07777, 0700);
    _cleanup_free_ char *dir = cc_xasprintf("%s/sub/dir", f->base);
    _cleanup_free_ char *names = list_dir(dir);
    assert_string_equal(names, "f.txt");

    /* an empty file, in one call; and file_mode without a type is a regular file */
    Grpc__CopyFileRequest empty = req_new(f, "/empty", 0604, "");
    copy_ok(f, &empty);
    assert_int_equal(fstatat(f->a->base_fd, "empty", &st, AT_SYMLINK_NOFOLLOW), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_size, 0);
    assert_int_equal(st.st_mode & 07777, 0604);
    req_done(&empty);
    req_done(&req);
}

static void
test_symlinks(void **state)
{
    fixture *f = *state;
    char buf[PATH_MAX];
    ssize_t n;

    Grpc__CopyFileRequest req = req_new(f, "/l", S_IFLNK | 0777, "target/x");
    copy_ok(f, &req);
    n = readlinkat(f->a->base_fd, "l", buf, sizeof(buf));
    assert_int_equal(n, 8);
    assert_memory_equal(buf, "target/x", 8);

    /* replacing an existing symlink (to a file outside the base) */
    _cleanup_free_ char *victim = cc_xasprintf("%s/victim", f->outside);
    req.data.data = (uint8_t *)victim;
    req.data.len = strlen(victim);
    copy_ok(f, &req);
    n = readlinkat(f->a->base_fd, "l", buf, sizeof(buf));
    assert_int_equal(n, (ssize_t)strlen(victim));
    assert_memory_equal(buf, victim, (size_t)n);

    /* a regular file over that symlink replaces the link, never writes through it */
    Grpc__CopyFileRequest file = req_new(f, "/l", S_IFREG | 0644, "overwritten");
    copy_ok(f, &file);
    struct stat st;
    assert_int_equal(fstatat(f->a->base_fd, "l", &st, AT_SYMLINK_NOFOLLOW), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_nothing_outside(f);

    /* and a symlink over a regular file */
    copy_ok(f, &req);
    assert_int_equal(fstatat(f->a->base_fd, "l", &st, AT_SYMLINK_NOFOLLOW), 0);
    assert_true(S_ISLNK(st.st_mode));

    /* empty, NUL-containing targets: refused */
    req.data.len = 0;
    copy_refused(f, &req, -EINVAL, "symlink target");
    req.data.data = (uint8_t *)"a\0b";
    req.data.len = 3;
    copy_refused(f, &req, -EINVAL, "symlink target");
    req_done(&file);
    req_done(&req);
}

static void
test_escapes(void **state)
{
    fixture *f = *state;

    /* outside the base, by name */
    Grpc__CopyFileRequest req = req_new(f, "/../outside/new", S_IFREG | 0644, "x");
    copy_refused(f, &req, -EINVAL, "path: ");
    req_done(&req);
    req = req_new(f, "-x/y", S_IFREG | 0644, "x");
    copy_refused(f, &req, -EINVAL, "path: must be below");
    req_done(&req);
    req = req_new(f, "", S_IFDIR | 0755, NULL);
    copy_refused(f, &req, -EINVAL, "path: must be below");
    free(req.path);
    req.path = cc_xasprintf("%s/victim", f->outside);
    copy_refused(f, &req, -EINVAL, "path: must be below");
    req_done(&req);

    /* a parent component that is a symlink (to outside/, and to /) */
    Grpc__CopyFileRequest link = req_new(f, "/a/evil", S_IFLNK | 0777, f->outside);
    copy_ok(f, &link);
    static const char *const through[] = {"/a/evil/new", "/a/evil/victim", "/a/evil/d/new"};
    static const uint32_t modes[] = {S_IFREG | 0644, S_IFDIR | 0755, S_IFLNK | 0777};
    for (size_t i = 0; i < ELEMENTSOF(through); i++)
        for (size_t m = 0; m < ELEMENTSOF(modes); m++) {
            req = req_new(f, through[i], modes[m], "pwned");
            copy_refused(f, &req, -EINVAL, "'evil' is a symbolic link");
            req_done(&req);
            assert_nothing_outside(f);
        }
    req_done(&link);
    link = req_new(f, "/root", S_IFLNK | 0777, "/");
    copy_ok(f, &link);
    _cleanup_free_ char *name = cc_xasprintf("/root/cloak-test-must-not-exist-%d", (int)getpid());
    req = req_new(f, name, S_IFREG | 0644, "x");
    copy_refused(f, &req, -EINVAL, "'root' is a symbolic link");
    assert_int_equal(access(name + strlen("/root"), F_OK), -1);
    req_done(&req);
    req_done(&link);

    /* a parent component that is a file */
    Grpc__CopyFileRequest file = req_new(f, "/file", S_IFREG | 0644, "x");
    copy_ok(f, &file);
    req = req_new(f, "/file/x", S_IFREG | 0644, "x");
    copy_refused(f, &req, -ENOTDIR, "'file' is not a directory");
    req_done(&req);
    req_done(&file);
}

static void
test_refused(void **state)
{
    fixture *f = *state;
    Grpc__CopyFileRequest req = req_new(f, "/f", S_IFREG | 0644, "0123456789");

    /* offset + len > file_size */
    req.file_size = 9;
    copy_refused(f, &req, -EINVAL, "exceed file_size");
    req.file_size = 10;
    req.offset = 1;
    copy_refused(f, &req, -EINVAL, "exceed file_size");
    req.offset = 11;
    req.data.len = 0;
    copy_refused(f, &req, -EINVAL, "exceed file_size");
    req.offset = -1;
    copy_refused(f, &req, -EINVAL, "exceed file_size");
    req.offset = INT64_MAX;
    req.file_size = INT64_MAX;
    copy_refused(f, &req, -EFBIG, "file_size");
    req.offset = 0;
    req.data.len = 10;

    /* negative or huge file_size */
    req.file_size = -1;
    copy_refused(f, &req, -EFBIG, "file_size");
    req.file_size = INT64_MIN;
    copy_refused(f, &req, -EFBIG, "file_size");
    req.file_size = (int64_t)AGENT_COPY_FILE_MAX + 1;
    copy_refused(f, &req, -EFBIG, "file_size");
    req.file_size = 10;

    /* file types that are not copied, unknown mode bits */
    static const uint32_t types[] = {S_IFIFO, S_IFCHR, S_IFBLK, S_IFSOCK};
    for (size_t i = 0; i < ELEMENTSOF(types); i++) {
        req.file_mode = types[i] | 0644;
        copy_refused(f, &req, -EINVAL, "file_mode");
    }
    req.file_mode = 0x10000 | 0644;
    copy_refused(f, &req, -EINVAL, "file_mode: unknown bits");
    req.file_mode = S_IFREG | 0644;

    /* dir_mode with type bits */
    req.dir_mode = S_IFDIR | 0755;
    copy_refused(f, &req, -EINVAL, "dir_mode");
    req.dir_mode = 0;

    /* uid/gid below -1 */
    req.uid = -2;
    copy_refused(f, &req, -EINVAL, "uid/gid");
    req.uid = -1;
    req.gid = INT32_MIN;
    copy_refused(f, &req, -EINVAL, "uid/gid");
    req.gid = -1;

    /* a last component too long for the temporary name */
    char longname[NAME_MAX + 2] = "/";
    memset(longname + 1, 'n', NAME_MAX - 4);
    Grpc__CopyFileRequest lng = req_new(f, longname, S_IFREG | 0644, "x");
    copy_refused(f, &lng, -ENAMETOOLONG, "too long");
    req_done(&lng);

    /* nothing of the above created anything */
    _cleanup_free_ char *names = list_dir(f->base);
    assert_string_equal(names, "");

    /* chunks that add up to more than file_size (a first chunk at 0 then a longer tail) */
    req.file_size = 10;
    req.data.len = 5;
    copy_ok(f, &req);
    req.offset = 5;
    req.data.len = 5;
    copy_ok(f, &req);
    struct stat st;
    assert_int_equal(fstatat(f->a->base_fd, "f", &st, AT_SYMLINK_NOFOLLOW), 0);
    assert_int_equal(st.st_size, 10);
    req_done(&req);
}

static void
test_owner(void **state)
{
    fixture *f = *state;
    struct stat st;

    /* -1: leave as is (the agent's own) */
    Grpc__CopyFileRequest req = req_new(f, "/owned", S_IFREG | 0644, "x");
    copy_ok(f, &req);
    assert_int_equal(fstatat(f->a->base_fd, "owned", &st, AT_SYMLINK_NOFOLLOW), 0);
    assert_int_equal(st.st_uid, getuid());
    assert_int_equal(st.st_gid, getgid());

    if (geteuid() != 0) {
        req_done(&req);
        skip();
    }
    req.uid = 1234;
    req.gid = -1;
    copy_ok(f, &req);
    assert_int_equal(fstatat(f->a->base_fd, "owned", &st, AT_SYMLINK_NOFOLLOW), 0);
    assert_int_equal(st.st_uid, 1234);
    assert_int_equal(st.st_gid, getgid());

    Grpc__CopyFileRequest dir = req_new(f, "/odir", S_IFDIR | 0755, NULL);
    dir.uid = 1000;
    dir.gid = 2000;
    copy_ok(f, &dir);
    assert_int_equal(fstatat(f->a->base_fd, "odir", &st, AT_SYMLINK_NOFOLLOW), 0);
    assert_int_equal(st.st_uid, 1000);
    assert_int_equal(st.st_gid, 2000);

    Grpc__CopyFileRequest link = req_new(f, "/olink", S_IFLNK | 0777, "owned");
    link.uid = 1000;
    link.gid = 2000;
    copy_ok(f, &link);
    assert_int_equal(fstatat(f->a->base_fd, "olink", &st, AT_SYMLINK_NOFOLLOW), 0);
    assert_int_equal(st.st_uid, 1000);
    assert_int_equal(fstatat(f->a->base_fd, "owned", &st, AT_SYMLINK_NOFOLLOW), 0);
    assert_int_equal(st.st_uid, 1234); /* the link, not its target */
    req_done(&link);
    req_done(&dir);
    req_done(&req);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_chunks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_symlinks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_escapes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_owner, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
