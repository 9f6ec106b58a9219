/* SPDX-License-Identifier: Apache-2.0 */
/*
 * File-system helpers for code that handles untrusted trees (container rootfs, bundles):
 * path resolution confined to a root directory, bounded reads, atomic writes, recursive
 * removal that never follows symlinks, and a few fd utilities.
 *
 * Confinement: cc_openat_in_root() resolves a path as if root_fd were "/" (chroot
 * semantics). It uses openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS) and, where the
 * kernel lacks openat2 (< 5.6), an equivalent userspace walk. Both give the same answers;
 * the walk is also race-free with respect to escaping the root (".." pops a stack of fds
 * opened below the root instead of looking ".." up), but unlike the kernel it cannot tell
 * procfs magic links apart reliably: it rejects, with ELOOP, every procfs symlink whose
 * target is absolute or contains ':' ("pipe:[…]", "/proc/…/exe"), which covers the magic
 * ones and lets ordinary ones such as /proc/self through.
 *
 * Everything here blocks on the file system (no network file systems are expected) and may
 * be called from any thread, except cc_fs_force_fallback() (tests only, before threads).
 * Every fd returned is O_CLOEXEC.
 */
#pragma once

#include <dirent.h>

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "error.h"

/* Kernel limit on symlinks followed during one lookup (MAXSYMLINKS); the walk uses it too. */
#define CC_FS_MAX_SYMLINKS 40

/*
 * Opens path inside the tree rooted at root_fd, as open(2) would after chroot(root):
 * absolute paths and absolute symlink targets start at root, ".." never climbs above it,
 * relative targets resolve from the symlink's directory, more than CC_FS_MAX_SYMLINKS
 * symlinks give -ELOOP, procfs magic links give -ELOOP. The last component is followed
 * unless flags has O_NOFOLLOW (then a symlink gives -ELOOP, or the link itself with O_PATH)
 * or O_CREAT|O_EXCL; O_CREAT through a dangling symlink creates the target inside root.
 * flags are open(2) flags (O_CLOEXEC is always added; with O_PATH only O_DIRECTORY and
 * O_NOFOLLOW are kept); mode is used only with O_CREAT/O_TMPFILE. root_fd may be O_PATH or
 * AT_FDCWD and is borrowed.
 * Returns a new fd owned by the caller, or a negative errno: what open(2) would return,
 * -ENOENT for an empty path, -ENAMETOOLONG when path is PATH_MAX or longer, -EAGAIN when
 * openat2 kept seeing concurrent renames (retried a few times first). Blocks on the fs.
 */
int cc_openat_in_root(int root_fd, const char *path, int flags, mode_t mode, cc_error **err);

/*
 * Tests and CI: when force is true, cc_openat_in_root() uses the userspace walk instead of
 * openat2. The environment variable CLOAK_FORCE_OPENAT2_FALLBACK=1 forces it too, whatever
 * this says. Not thread-safe; call before starting threads.
 */
void cc_fs_force_fallback(bool force);

/*
 * Creates path and its missing parents inside root_fd (like "mkdir -p" after chroot), each
 * new directory with mode (minus umask). Existing components, symlinks included, are
 * resolved with cc_openat_in_root(), so nothing is ever created outside root: a symlink
 * whose target is missing inside root fails with -ENOENT rather than being created through.
 * ret_fd (may be NULL) receives an O_PATH|O_DIRECTORY fd of the final directory, owned by
 * the caller, only on success. Returns 0, -EINVAL for an empty path, -ENOTDIR when a
 * component is not a directory, or the mkdirat/openat error. Blocks on the fs.
 */
int cc_mkdir_p_in_root(int root_fd, const char *path, mode_t mode, int *ret_fd, cc_error **err);

/*
 * True when name is a single path component usable with *at() calls: non-empty, at most
 * NAME_MAX bytes, no '/', not "." or "..". For untrusted ids used as file names.
 */
bool cc_filename_is_valid(const char *name);

/*
 * True when path is a non-empty relative path shorter than PATH_MAX whose components are all
 * cc_filename_is_valid() (so no "..", no ".", no empty components: no leading, doubled or
 * trailing '/'). Such a path stays below the directory it is resolved from unless a
 * component is a symlink: resolve it with cc_openat_in_root() anyway.
 */
bool cc_path_is_safe_relative(const char *path);

/*
 * Reads the whole of fd (from its current offset to EOF) into a new NUL-terminated buffer.
 * *ret (caller frees) and *ret_len (bytes, without the NUL) are set only on success; ret_len
 * may be NULL. Returns 0, -EFBIG when there is more than max bytes, or the read error.
 * Blocks until EOF: use on regular files, not on pipes an untrusted peer controls.
 */
int cc_read_fd(int fd, size_t max, char **ret, size_t *ret_len, cc_error **err);

/* cc_read_fd() on path, opened O_RDONLY|O_NOCTTY|O_CLOEXEC (symlinks followed). */
int cc_read_file(const char *path, size_t max, char **ret, size_t *ret_len, cc_error **err);

/*
 * Writes all len bytes of buf to fd, retrying short writes and EINTR. Returns 0 or a
 * negative errno (-EAGAIN on a non-blocking fd that is full: part may have been written).
 * Blocks unless fd is non-blocking.
 */
int cc_write_all(int fd, const void *buf, size_t len);

/*
 * Replaces dir_fd/name atomically with buf: writes a temporary file in dir_fd with mode
 * (exactly, fchmod'ed, not umasked), fsyncs it, renames it over name (replacing a symlink
 * named name, never following it) and fsyncs the directory. name must be
 * cc_filename_is_valid() (-EINVAL otherwise); dir_fd is borrowed and may be O_PATH or
 * AT_FDCWD. On failure the old file is untouched and the temporary file removed, except
 * when only the final directory fsync failed (the new content is then in place). Returns 0
 * or a negative errno. Blocks (fsync).
 */
int cc_write_file_atomic(int dir_fd, const char *name, const void *buf, size_t len, mode_t mode,
                         cc_error **err);

/*
 * Removes dir_fd/name and, if it is a directory, everything below it, like "rm -rf" but
 * never following symlinks (a symlink is removed, not its target) and never descending into
 * a mount point or another file system (-EXDEV, nothing on the other side is touched; the
 * top entry itself may not be a mount point either). name must be cc_filename_is_valid()
 * (-EINVAL otherwise). A missing name is success. Stops at the first error; nesting deeper
 * than 4096 directories gives -ELOOP and each level holds one fd (-EMFILE is possible).
 * Returns 0 or a negative errno. Blocks on the fs.
 */
int cc_rm_rf_at(int dir_fd, const char *name, cc_error **err);

/* Same, for everything inside dir_fd (which stays, as does dir_fd; it may be O_PATH). */
int cc_rm_rf_children(int dir_fd, cc_error **err);

/* _cleanup_(closedirp) DIR *d = opendir(...): closedir() at scope exit. */
CC_DEFINE_CLEANUP(DIR, closedir)

/* Sets or clears O_NONBLOCK on fd. Returns 0 or a negative errno (-EBADF). Never blocks. */
int cc_fd_set_nonblock(int fd, bool nonblock);

/* Sets or clears FD_CLOEXEC on fd. Returns 0 or a negative errno (-EBADF). Never blocks. */
int cc_fd_set_cloexec(int fd, bool cloexec);
