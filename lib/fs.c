/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <time.h>

#include "util.h"

#ifndef SYS_openat2
#define SYS_openat2 437
#endif

/* openat2 says EAGAIN when a rename raced with a ".." lookup; it is worth a few retries. */
#define OPENAT2_RETRIES 32
/* Nesting cc_rm_rf_at() follows before giving up (stack and fds grow with it). */
#define RM_RF_MAX_DEPTH 4096

/* Test knob and a cache of "the kernel has no openat2"; see fs.h for the threading rule. */
static bool force_fallback;
static bool openat2_missing;

void
cc_fs_force_fallback(bool force)
{
    force_fallback = force;
}

static bool
fallback_forced(void)
{
    return force_fallback || cc_streq(getenv("CLOAK_FORCE_OPENAT2_FALLBACK"), "1");
}

static int
openat2_in_root(int root_fd, const char *path, int flags, mode_t mode)
{
    struct open_how how = {
        .flags = (unsigned int)flags,
        .mode = mode,
        .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };

    for (int i = 0; i < OPENAT2_RETRIES; i++) {
        long fd = syscall(SYS_openat2, root_fd, path, &how, sizeof(how));
        if (fd >= 0)
            return (int)fd;
        if (errno != EAGAIN && errno != EINTR)
            return cc_negerrno();
    }
    return -EAGAIN;
}

/*
 * The userspace walk. dirs[] holds O_PATH fds of the directories between root (excluded,
 * borrowed as root_fd) and the current one (the top); ".." pops, an absolute symlink
 * empties the stack. What is left of the path starts at pos, inside todo, which is rebuilt
 * as target + rest when a symlink is followed.
 */
typedef struct walk {
    int root_fd;
    int *dirs;
    size_t n_dirs, cap_dirs;
    char *todo;
    const char *pos;
    unsigned links;
} walk;

static int
walk_cur(const walk *w)
{
    return w->n_dirs > 0 ? w->dirs[w->n_dirs - 1] : w->root_fd;
}

static void
walk_push(walk *w, int fd)
{
    if (w->n_dirs == w->cap_dirs) {
        w->cap_dirs = w->cap_dirs ? w->cap_dirs * 2 : 16;
        w->dirs = cc_xreallocarray(w->dirs, w->cap_dirs, sizeof(*w->dirs));
    }
    w->dirs[w->n_dirs++] = fd;
}

static void
walk_pop(walk *w)
{
    if (w->n_dirs > 0)
        cc_close(w->dirs[--w->n_dirs]);
}

static void
walk_done(walk *w)
{
    while (w->n_dirs > 0)
        walk_pop(w);
    free(w->dirs);
    free(w->todo);
}

/*
 * Best effort stand-in for RESOLVE_NO_MAGICLINKS: procfs magic links read as absolute paths
 * or as "type:[inode]"; ordinary procfs symlinks (self, thread-self, mounts) are relative.
 */
static bool
is_magic_link(int link_fd, const char *target)
{
    struct statfs sfs;
    if (fstatfs(link_fd, &sfs) < 0)
        return true; /* cannot tell: refuse */
    if (sfs.f_type != PROC_SUPER_MAGIC)
        return false;
    return target[0] == '/' || strchr(target, ':');
}

/*
 * Follows the symlink open as link_fd (O_PATH|O_NOFOLLOW), found in the current directory:
 * the rest of the walk becomes target + rest (rest starts at the '/' after the link's name,
 * or is empty).
 */
static int
walk_follow(walk *w, int link_fd, const char *rest)
{
    char target[PATH_MAX];

    if (++w->links > CC_FS_MAX_SYMLINKS)
        return -ELOOP;
    ssize_t n = readlinkat(link_fd, "", target, sizeof(target));
    if (n < 0)
        return cc_negerrno();
    if ((size_t)n >= sizeof(target))
        return -ENAMETOOLONG;
    if (n == 0)
        return -ENOENT;
    target[n] = '\0';
    if (is_magic_link(link_fd, target))
        return -ELOOP;

    char *todo = cc_xasprintf("%s%s", target, rest);
    free(w->todo);
    w->todo = todo;
    w->pos = todo;
    if (target[0] == '/')
        while (w->n_dirs > 0)
            walk_pop(w);
    return 0;
}

/*
 * Opens name in the current directory with O_PATH|O_NOFOLLOW. Returns 1 for a directory,
 * 0 for anything else (*ret_link tells symlinks apart), or a negative errno.
 */
static int
walk_open_path(walk *w, const char *name, int *ret_fd, bool *ret_link)
{
    struct stat st;

    int fd = openat(walk_cur(w), name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return cc_negerrno();
    if (fstat(fd, &st) < 0) {
        int r = cc_negerrno();
        cc_close(fd);
        return r;
    }
    *ret_fd = fd;
    *ret_link = S_ISLNK(st.st_mode);
    return S_ISDIR(st.st_mode) ? 1 : 0;
}

/* A component that must be a directory (rest follows it): enter it, following a symlink. */
static int
walk_enter(walk *w, const char *name, const char *rest)
{
    int fd;
    bool link;

    int r = walk_open_path(w, name, &fd, &link);
    if (r < 0)
        return r;
    if (link) {
        r = walk_follow(w, fd, rest);
        cc_close(fd);
        return r;
    }
    if (r == 0) {
        cc_close(fd);
        return -ENOTDIR;
    }
    walk_push(w, fd);
    w->pos = rest;
    return 0;
}

/*
 * The last component. Returns 1 with *ret_fd set when done, 0 when a symlink was followed
 * (or a race seen) and the walk goes on, or a negative errno.
 */
static int
walk_last(walk *w, const char *name, int flags, mode_t mode, int *ret_fd)
{
    bool follow = !(flags & O_NOFOLLOW) && (flags & (O_CREAT | O_EXCL)) != (O_CREAT | O_EXCL);

    if (follow) {
        int lfd;
        bool link;
        int r = walk_open_path(w, name, &lfd, &link);
        if (r < 0 && r != -ENOENT)
            return r;
        if (r >= 0 && link) {
            r = walk_follow(w, lfd, "");
            cc_close(lfd);
            return r;
        }
        if (r >= 0)
            cc_close(lfd);
    }

    int fd = openat(walk_cur(w), name, flags | O_NOFOLLOW, mode);
    if (fd < 0) {
        /* It became a symlink after we looked: look again (counted, so this ends). */
        if (errno == ELOOP && follow && ++w->links <= CC_FS_MAX_SYMLINKS)
            return 0;
        return cc_negerrno();
    }
    if (follow && (flags & O_PATH)) {
        struct stat st;
        if (fstat(fd, &st) < 0 || S_ISLNK(st.st_mode)) {
            cc_close(fd);
            return ++w->links > CC_FS_MAX_SYMLINKS ? -ELOOP : 0;
        }
    }
    *ret_fd = fd;
    return 1;
}

/* One component. Returns 1 with *ret_fd set when done, 0 to go on, or a negative errno. */
static int
walk_step(walk *w, int flags, mode_t mode, int *ret_fd)
{
    char name[NAME_MAX + 1];
    const char *p = w->pos;

    while (*p == '/')
        p++;
    if (*p == '\0') { /* "/", or a path that ended in "." or ".." */
        if (flags & O_CREAT)
            return -EISDIR;
        int fd = openat(walk_cur(w), ".", flags, mode);
        if (fd < 0)
            return cc_negerrno();
        *ret_fd = fd;
        return 1;
    }

    const char *end = strchrnul(p, '/');
    const char *q = end;
    while (*q == '/')
        q++;
    bool last = *q == '\0', trailing_slash = last && *end == '/';
    size_t len = (size_t)(end - p);
    if (len > NAME_MAX)
        return -ENAMETOOLONG;
    memcpy(name, p, len);
    name[len] = '\0';

    if (trailing_slash && (flags & O_CREAT))
        return -EISDIR; /* as the kernel: O_CREAT and a trailing slash never mix */
    if (cc_streq(name, ".") || cc_streq(name, "..")) {
        if (name[1] == '.')
            walk_pop(w);
        w->pos = end;
        return 0;
    }
    if (!last || trailing_slash)
        return walk_enter(w, name, end);
    return walk_last(w, name, flags, mode, ret_fd);
}

static int
openat_fallback(int root_fd, const char *path, int flags, mode_t mode)
{
    walk w = {
        .root_fd = root_fd,
        .todo = cc_xstrdup(path),
    };
    int r, fd = -EBADF;

    w.pos = w.todo;
    do
        r = walk_step(&w, flags, mode, &fd);
    while (r == 0);
    walk_done(&w);
    return r < 0 ? r : fd;
}

int
cc_openat_in_root(int root_fd, const char *path, int flags, mode_t mode, cc_error **err)
{
    if (!path || !*path)
        return cc_error_set(err, -ENOENT, "open '' in root");
    if (strlen(path) >= PATH_MAX)
        return cc_error_set(err, -ENAMETOOLONG, "open '%.64s…' in root", path);

    /* Same normalisation for both paths: openat2 rejects what openat(2) ignores. */
    flags |= O_CLOEXEC;
    if (flags & O_PATH)
        flags &= O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
    if ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE)
        mode &= 07777;
    else
        mode = 0;

    int fd = -ENOSYS;
    if (!openat2_missing && !fallback_forced()) {
        fd = openat2_in_root(root_fd, path, flags, mode);
        if (fd == -ENOSYS)
            openat2_missing = true;
    }
    if (fd == -ENOSYS)
        fd = openat_fallback(root_fd, path, flags, mode);
    if (fd < 0)
        return cc_error_set(err, fd, "open '%s' in root", path);
    return fd;
}

int
cc_mkdir_p_in_root(int root_fd, const char *path, mode_t mode, int *ret_fd, cc_error **err)
{
    const int dflags = O_PATH | O_DIRECTORY;

    if (!path || !*path)
        return cc_error_msg(err, -EINVAL, "mkdir: empty path");
    if (strlen(path) >= PATH_MAX)
        return cc_error_set(err, -ENAMETOOLONG, "mkdir '%.64s…'", path);

    _cleanup_close_ int parent = cc_openat_in_root(root_fd, "/", dflags, 0, err);
    if (parent < 0)
        return parent;

    _cleanup_free_ char *prefix = cc_xstrdup(path);
    size_t i = 0, n = strlen(path);
    for (;;) {
        char name[NAME_MAX + 1];

        while (i < n && path[i] == '/')
            i++;
        if (i == n)
            break;
        size_t start = i;
        while (i < n && path[i] != '/')
            i++;
        if (i - start > NAME_MAX)
            return cc_error_set(err, -ENAMETOOLONG, "mkdir '%s'", path);
        memcpy(name, path + start, i - start);
        name[i - start] = '\0';
        prefix[i] = '\0';

        int fd = cc_openat_in_root(root_fd, prefix, dflags, 0, NULL);
        if (fd == -ENOENT) {
            /* mkdirat never follows a symlink named name: EEXIST, then the reopen decides. */
            if (mkdirat(parent, name, mode) < 0 && errno != EEXIST)
                return cc_error_set(err, -errno, "mkdir '%s'", prefix);
            fd = cc_openat_in_root(root_fd, prefix, dflags, 0, NULL);
        }
        if (fd < 0)
            return cc_error_set(err, fd, "mkdir '%s'", prefix);
        prefix[i] = path[i];
        cc_close(parent);
        parent = fd;
    }
    if (ret_fd)
        *ret_fd = TAKE_FD(parent);
    return 0;
}

bool
cc_filename_is_valid(const char *name)
{
    if (!name || !*name || cc_streq(name, ".") || cc_streq(name, ".."))
        return false;
    return strlen(name) <= NAME_MAX && !strchr(name, '/');
}

bool
cc_path_is_safe_relative(const char *path)
{
    if (!path || !*path || path[0] == '/' || strlen(path) >= PATH_MAX)
        return false;
    for (const char *p = path;;) {
        const char *end = strchrnul(p, '/');
        size_t len = (size_t)(end - p);
        if (len == 0 || len > NAME_MAX)
            return false;
        if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
            return false;
        if (*end == '\0')
            return true;
        p = end + 1;
    }
}

int
cc_read_fd(int fd, size_t max, char **ret, size_t *ret_len, cc_error **err)
{
    struct stat st;
    size_t len = 0, cap = 4096;

    if (max > SSIZE_MAX - 2)
        max = SSIZE_MAX - 2;
    /* A size hint for regular files; procfs and sysfs say 0 or lie, so it is only a hint. */
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0)
        cap = (size_t)st.st_size < max ? (size_t)st.st_size + 1 : max + 1;
    if (cap > max + 1)
        cap = max + 1;
    _cleanup_free_ char *buf = cc_xmalloc(cap + 1);

    for (;;) {
        if (len == cap) {
            if (cap > max)
                return cc_error_msg(err, -EFBIG, "larger than %zu bytes", max);
            cap = cap > (max + 1) / 2 ? max + 1 : cap * 2;
            buf = cc_xrealloc(buf, cap + 1);
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return cc_error_set(err, -errno, "read");
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    if (len > max)
        return cc_error_msg(err, -EFBIG, "larger than %zu bytes", max);
    buf[len] = '\0';
    *ret = TAKE_PTR(buf);
    if (ret_len)
        *ret_len = len;
    return 0;
}

int
cc_read_file(const char *path, size_t max, char **ret, size_t *ret_len, cc_error **err)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return cc_error_set(err, -errno, "open '%s'", path);
    int r = cc_read_fd(fd, max, ret, ret_len, err);
    if (r < 0)
        return cc_error_prefix(err, r, "read '%s'", path);
    return 0;
}

int
cc_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;

    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return cc_negerrno();
        }
        if (n == 0)
            return -EIO;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int
fsync_dir(int dir_fd)
{
    _cleanup_close_ int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) < 0)
        return cc_negerrno();
    return 0;
}

int
cc_write_file_atomic(int dir_fd, const char *name, const void *buf, size_t len, mode_t mode,
                     cc_error **err)
{
    char tmp[NAME_MAX + 1];
    uint64_t rnd;
    int r;

    if (!cc_filename_is_valid(name))
        return cc_error_msg(err, -EINVAL, "write '%s': invalid file name", name ? name : "");
    if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != (ssize_t)sizeof(rnd))
        rnd = ((uint64_t)getpid() << 32) ^ (uint64_t)time(NULL) ^ (uintptr_t)&rnd;
    (void)snprintf(tmp, sizeof(tmp), ".#%.200s.%016llx", name, (unsigned long long)rnd);

    _cleanup_close_ int fd =
        openat(dir_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode & 07777);
    if (fd < 0)
        return cc_error_set(err, -errno, "write '%s': create '%s'", name, tmp);
    if (fchmod(fd, mode & 07777) < 0) {
        r = cc_error_set(err, -errno, "write '%s': chmod", name);
        goto out;
    }
    r = cc_write_all(fd, buf, len);
    if (r == 0 && fsync(fd) < 0)
        r = cc_negerrno();
    if (r == 0 && close(TAKE_FD(fd)) < 0)
        r = cc_negerrno();
    if (r < 0) {
        cc_error_set(err, r, "write '%s'", name);
        goto out;
    }
    if (renameat(dir_fd, tmp, dir_fd, name) < 0) {
        r = cc_error_set(err, -errno, "write '%s': rename", name);
        goto out;
    }
    r = fsync_dir(dir_fd);
    if (r < 0)
        return cc_error_set(err, r, "write '%s': sync directory", name);
    return 0;
out:
    (void)unlinkat(dir_fd, tmp, 0);
    return r;
}

/* -EXDEV when fd is the root of a mount or on another device than dev. */
static int
check_same_mount(int fd, dev_t dev)
{
    struct statx stx;

    if (statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_TYPE | STATX_INO, &stx) < 0)
        return cc_negerrno();
    if ((stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) &&
        (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT))
        return -EXDEV;
    if (makedev(stx.stx_dev_major, stx.stx_dev_minor) != dev)
        return -EXDEV;
    return 0;
}

static int rm_dir(int parent_fd, const char *name, dev_t dev, unsigned depth, cc_error **err);

static void
strv_freep(char ***p)
{
    if (*p)
        for (char **s = *p; *s; s++)
            free(*s);
    free(*p);
}

/*
 * Unlinks everything in dir_fd, collecting subdirectories first and removing them after the
 * listing is closed, so each level holds only its own fd.
 */
static int
rm_children(int dir_fd, dev_t dev, unsigned depth, cc_error **err)
{
    _cleanup_(strv_freep) char **subdirs = NULL;
    size_t n = 0;

    int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        int r = cc_error_set(err, cc_negerrno(), "list directory");
        cc_close(fd);
        return r;
    }
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (!de)
            break;
        if (cc_streq(de->d_name, ".") || cc_streq(de->d_name, ".."))
            continue;
        if (de->d_type != DT_DIR) {
            if (unlinkat(dir_fd, de->d_name, 0) == 0 || errno == ENOENT)
                continue;
            if (errno != EISDIR) { /* DT_UNKNOWN directories land in EISDIR */
                int r = cc_error_set(err, -errno, "remove '%s'", de->d_name);
                closedir(d);
                return r;
            }
        }
        subdirs = cc_xreallocarray(subdirs, n + 2, sizeof(*subdirs));
        subdirs[n++] = cc_xstrdup(de->d_name);
        subdirs[n] = NULL;
    }
    int r = errno > 0 ? -errno : 0;
    closedir(d);
    if (r < 0)
        return cc_error_set(err, r, "list directory");

    for (size_t i = 0; i < n; i++) {
        r = rm_dir(dir_fd, subdirs[i], dev, depth + 1, err);
        if (r < 0)
            return r;
    }
    return 0;
}

static int
rm_dir(int parent_fd, const char *name, dev_t dev, unsigned depth, cc_error **err)
{
    if (depth > RM_RF_MAX_DEPTH)
        return cc_error_set(err, -ELOOP, "remove '%s': nested too deep", name);

    /* O_NOFOLLOW: if name was swapped for a symlink since we looked, fail, do not follow. */
    _cleanup_close_ int fd =
        openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : cc_error_set(err, -errno, "remove '%s'", name);
    int r = check_same_mount(fd, dev);
    if (r < 0)
        return cc_error_set(err, r, "remove '%s': mount point", name);
    r = rm_children(fd, dev, depth, err);
    if (r < 0)
        return cc_error_prefix(err, r, "remove '%s'", name);
    if (unlinkat(parent_fd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        return cc_error_set(err, -errno, "remove '%s'", name);
    return 0;
}

static int
fd_dev(int fd, dev_t *ret)
{
    struct stat st;

    if (fstatat(fd, "", &st, AT_EMPTY_PATH) < 0)
        return cc_negerrno();
    *ret = st.st_dev;
    return 0;
}

int
cc_rm_rf_at(int dir_fd, const char *name, cc_error **err)
{
    struct stat st;

    if (!cc_filename_is_valid(name))
        return cc_error_msg(err, -EINVAL, "remove '%s': invalid file name", name ? name : "");
    if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : cc_error_set(err, -errno, "remove '%s'", name);
    if (!S_ISDIR(st.st_mode)) {
        if (unlinkat(dir_fd, name, 0) < 0 && errno != ENOENT)
            return cc_error_set(err, -errno, "remove '%s'", name);
        return 0;
    }
    /* The top directory must be on dir_fd's mount, like everything below it. */
    dev_t dev;
    int r = fd_dev(dir_fd, &dev);
    if (r < 0)
        return cc_error_set(err, r, "remove '%s'", name);
    return rm_dir(dir_fd, name, dev, 0, err);
}

int
cc_rm_rf_children(int dir_fd, cc_error **err)
{
    dev_t dev;

    int r = fd_dev(dir_fd, &dev);
    if (r < 0)
        return cc_error_set(err, r, "remove directory contents");
    return rm_children(dir_fd, dev, 0, err);
}

static int
fd_update_flags(int fd, int get, int set, int flag, bool on)
{
    int flags = fcntl(fd, get);
    if (flags < 0)
        return cc_negerrno();
    int nflags = on ? flags | flag : flags & ~flag;
    if (nflags != flags && fcntl(fd, set, nflags) < 0)
        return cc_negerrno();
    return 0;
}

int
cc_fd_set_nonblock(int fd, bool nonblock)
{
    return fd_update_flags(fd, F_GETFL, F_SETFL, O_NONBLOCK, nonblock);
}

int
cc_fd_set_cloexec(int fd, bool cloexec)
{
    return fd_update_flags(fd, F_GETFD, F_SETFD, FD_CLOEXEC, cloexec);
}
