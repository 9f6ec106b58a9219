/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
/*
 * CopyFile, with Kata's semantics: one directory, symlink or (chunk of a) regular file per
 * call, below the guest base. Missing parent directories are created with dir_mode; no
 * component of the path may be a symlink (the host created those links itself, and following
 * them would let it write outside the base). A regular file is written at offset into
 * "<name>.cloak-tmp" and renamed over <name> once it holds file_size bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "fs.h"
#include "log.h"
#include "util.h"

#define TMP_SUFFIX ".cloak-tmp"

static int
set_owner(int dir_fd, const char *name, int32_t uid, int32_t gid)
{
    if (uid < 0 && gid < 0)
        return 0;
    if (fchownat(dir_fd, name, (uid_t)uid, (gid_t)gid, AT_SYMLINK_NOFOLLOW) < 0)
        return -errno;
    return 0;
}

int
agent_copy_file(agent *a, const Grpc__CopyFileRequest *req, cc_error **err)
{
    _cleanup_free_ char *parent = NULL, *tmp = NULL;
    _cleanup_close_ int dir_fd = -EBADF, fd = -EBADF;
    const char *rel, *name;
    mode_t type = req->file_mode & S_IFMT;
    mode_t perm = req->file_mode & 07777;
    struct stat st;
    int r;

    r = agent_validate_guest_path(a, req->path, "path", &rel, err);
    if (r < 0)
        return r;
    if (req->file_mode & ~(S_IFMT | 07777))
        return cc_error_set(err, -EINVAL, "file_mode: unknown bits 0%o", req->file_mode);
    if (req->dir_mode & ~07777u)
        return cc_error_set(err, -EINVAL, "dir_mode: only permission bits are allowed");
    if (type != 0 && type != S_IFREG && type != S_IFDIR && type != S_IFLNK)
        return cc_error_set(err, -EINVAL,
                            "file_mode: only regular files, directories and symlinks are copied");
    if (req->uid < -1 || req->gid < -1)
        return cc_error_set(err, -EINVAL, "uid/gid: negative");
    if (type == S_IFREG || type == 0) {
        if (req->file_size < 0 || (uint64_t)req->file_size > AGENT_COPY_FILE_MAX)
            return cc_error_set(err, -EFBIG, "file_size: %lld out of range [0, %llu]",
                                (long long)req->file_size, (unsigned long long)AGENT_COPY_FILE_MAX);
        if (req->offset < 0 || req->offset > req->file_size ||
            req->data.len > (uint64_t)(req->file_size - req->offset))
            return cc_error_set(err, -EINVAL,
                                "offset: %lld + %zu bytes of data exceed file_size %lld",
                                (long long)req->offset, req->data.len, (long long)req->file_size);
    }

    /* parent directory (created) and the last component */
    name = strrchr(rel, '/');
    if (name) {
        parent = cc_xstrndup(rel, (size_t)(name - rel));
        name++;
        r = agent_mkdir_nofollow(a->base_fd, parent, req->dir_mode ? req->dir_mode : 0755, true,
                                 &dir_fd, err);
    } else {
        name = rel;
        dir_fd = openat(a->base_fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
        r = dir_fd < 0 ? cc_error_set(err, -errno, "cannot open %s", a->opts.base) : 0;
    }
    if (r < 0)
        return cc_error_prefix(err, r, "path %s", req->path);
    /* O_PATH fds cannot be used with *at() that write: reopen the directory for real */
    {
        int d = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (d < 0)
            return cc_error_set(err, -errno, "path %s: cannot open its directory", req->path);
        cc_close(dir_fd);
        dir_fd = d;
    }
    if (strlen(name) + strlen(TMP_SUFFIX) > NAME_MAX)
        return cc_error_set(err, -ENAMETOOLONG, "path: last component too long");

    if (type == S_IFDIR) {
        if (mkdirat(dir_fd, name, perm) < 0 && errno != EEXIST)
            return cc_error_set(err, -errno, "cannot create directory %s", req->path);
        /* chmod/chown what was checked: the directory itself, never a symlink put there */
        fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            return cc_error_set(err, errno == ENOTDIR || errno == ELOOP ? -EEXIST : -errno,
                                "%s exists and is not a directory", req->path);
        if (fchmod(fd, perm) < 0)
            return cc_error_set(err, -errno, "cannot chmod %s", req->path);
        if ((req->uid >= 0 || req->gid >= 0) && fchown(fd, (uid_t)req->uid, (gid_t)req->gid) < 0)
            return cc_error_set(err, -errno, "cannot chown %s", req->path);
        return 0;
    }

    tmp = cc_xasprintf("%s" TMP_SUFFIX, name);
    if (type == S_IFLNK) {
        _cleanup_free_ char *target = NULL;
        if (req->data.len == 0 || req->data.len >= PATH_MAX ||
            memchr(req->data.data, '\0', req->data.len))
            return cc_error_set(err, -EINVAL, "data: not a symlink target");
        target = cc_xstrndup((const char *)req->data.data, req->data.len);
        (void)unlinkat(dir_fd, tmp, 0);
        if (symlinkat(target, dir_fd, tmp) < 0)
            return cc_error_set(err, -errno, "cannot create symlink %s", req->path);
        r = set_owner(dir_fd, tmp, req->uid, req->gid);
        if (r >= 0 && renameat(dir_fd, tmp, dir_fd, name) < 0)
            r = -errno;
        if (r < 0) {
            (void)unlinkat(dir_fd, tmp, 0);
            return cc_error_set(err, r, "cannot create symlink %s", req->path);
        }
        return 0;
    }

    /* a regular file, or a chunk of one */
    fd = openat(dir_fd, tmp,
                O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY |
                    (req->offset == 0 ? O_TRUNC : 0),
                0600);
    if (fd < 0)
        return cc_error_set(err, -errno, "cannot open %s" TMP_SUFFIX, req->path);
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
        return cc_error_set(err, -EINVAL, "%s" TMP_SUFFIX " is not a regular file", req->path);
    for (size_t done = 0; done < req->data.len;) {
        ssize_t n = pwrite(fd, req->data.data + done, req->data.len - done,
                           (off_t)(req->offset + (int64_t)done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            r = n < 0 ? -errno : -EIO;
            (void)unlinkat(dir_fd, tmp, 0);
            return cc_error_set(err, r, "cannot write %s", req->path);
        }
        done += (size_t)n;
    }
    if (fstat(fd, &st) < 0)
        return cc_error_set(err, -errno, "cannot stat %s", req->path);
    if (st.st_size < req->file_size)
        return 0; /* more chunks to come */
    if (st.st_size > req->file_size) {
        (void)unlinkat(dir_fd, tmp, 0);
        return cc_error_set(err, -EINVAL, "%s: chunks add up to more than file_size", req->path);
    }
    if (fchmod(fd, perm) < 0)
        return cc_error_set(err, -errno, "cannot chmod %s", req->path);
    if ((req->uid >= 0 || req->gid >= 0) && fchown(fd, (uid_t)req->uid, (gid_t)req->gid) < 0)
        return cc_error_set(err, -errno, "cannot chown %s", req->path);
    if (renameat(dir_fd, tmp, dir_fd, name) < 0) {
        r = -errno;
        (void)unlinkat(dir_fd, tmp, 0);
        return cc_error_set(err, r, "cannot rename into %s", req->path);
    }
    return 0;
}
