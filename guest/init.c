/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "init.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "fs.h"
#include "log.h"
#include "netlink.h"
#include "util.h"

#ifndef STATX_ATTR_MOUNT_ROOT
#define STATX_ATTR_MOUNT_ROOT 0x00002000
#endif

/* The tmpfs stage 1 copies the initramfs into, below the old root. */
#define NEW_ROOT_NAME ".cloak-root"
#define NEW_ROOT "/" NEW_ROOT_NAME


bool
agent_init_is_stage2(void)
{
    return cc_streq(getenv(AGENT_INIT_STAGE_ENV), AGENT_INIT_STAGE_2);
}

/* True when path is the root of a mount (statx's flag; st_dev against the parent before 5.8). */
static bool
is_mountpoint(const char *path)
{
    struct statx sx;
    if (statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &sx) == 0 &&
        (sx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT))
        return sx.stx_attributes & STATX_ATTR_MOUNT_ROOT;
    _cleanup_free_ char *parent = cc_xasprintf("%s/..", path);
    struct stat a, b;
    if (lstat(path, &a) < 0 || stat(parent, &b) < 0)
        return false;
    return a.st_dev != b.st_dev || a.st_ino == b.st_ino;
}

/* mkdir -p-less "mount TYPE on WHERE unless something is mounted there already". */
static int
mount_once(const char *what, const char *where, const char *type, unsigned long flags,
           const char *data, mode_t dir_mode, cc_error **err)
{
    if (mkdir(where, dir_mode) < 0 && errno != EEXIST)
        return cc_error_set(err, cc_negerrno(), "mkdir '%s'", where);
    if (is_mountpoint(where)) {
        cc_log(CC_LOG_DEBUG, "'%s' is already mounted", where);
        return 0;
    }
    if (mount(what, where, type, flags, data) < 0)
        return cc_error_set(err, cc_negerrno(), "mount %s on '%s'", type, where);
    return 0;
}

/* fds 0, 1, 2 on /dev/console (the kernel may have opened the initramfs's node, or none). */
static int
reopen_console(cc_error **err)
{
    int fd = open("/dev/console", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return cc_error_set(err, cc_negerrno(), "open '/dev/console'");
    for (int i = 0; i <= 2; i++) {
        if (fd != i && dup2(fd, i) < 0) {
            int r = cc_negerrno();
            if (fd > 2)
                cc_close(fd);
            return cc_error_set(err, r, "dup2 console to fd %d", i);
        }
        (void)fcntl(i, F_SETFD, 0); /* dup2(fd, fd) would keep fd's CLOEXEC */
    }
    if (fd > 2)
        cc_close(fd);
    return 0;
}

/* --- stage 1: copy the initramfs into a tmpfs ------------------------------------------- */

static int
copy_data(int src, int dst, const char *path, cc_error **err)
{
    bool use_sendfile = true;
    for (;;) {
        ssize_t n;
        if (use_sendfile) {
            n = sendfile(dst, src, NULL, 1 << 20);
            if (n < 0 && (errno == EINVAL || errno == ENOSYS)) {
                use_sendfile = false;
                continue;
            }
        } else {
            char buf[64 * 1024];
            n = read(src, buf, sizeof(buf));
            if (n > 0) {
                int r = cc_write_all(dst, buf, (size_t)n);
                if (r < 0)
                    return cc_error_set(err, r, "write '%s'", path);
            }
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return cc_error_set(err, cc_negerrno(), "copy '%s'", path);
        if (n == 0)
            return 0;
    }
}

static int
copy_file(int sdir, int ddir, const char *name, const struct stat *st, const char *path,
          cc_error **err)
{
    _cleanup_close_ int src = openat(sdir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
    if (src < 0)
        return cc_error_set(err, cc_negerrno(), "open '%s'", path);
    _cleanup_close_ int dst =
        openat(ddir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (dst < 0)
        return cc_error_set(err, cc_negerrno(), "create '%s' in the new root", path);
    int r = copy_data(src, dst, path, err);
    if (r < 0)
        return r;
    /* chown first: it clears set-id bits that fchmod then puts back */
    if (fchown(dst, st->st_uid, st->st_gid) < 0 || fchmod(dst, st->st_mode & 07777) < 0)
        return cc_error_set(err, cc_negerrno(), "set owner/mode of '%s'", path);
    struct timespec ts[2] = {st->st_atim, st->st_mtim};
    (void)futimens(dst, ts);
    return 0;
}

static int
copy_symlink(int sdir, int ddir, const char *name, const struct stat *st, const char *path,
             cc_error **err)
{
    size_t size = st->st_size > 0 ? (size_t)st->st_size + 1 : PATH_MAX;
    if (size > PATH_MAX)
        size = PATH_MAX;
    _cleanup_free_ char *target = cc_xmalloc(size);
    ssize_t n = readlinkat(sdir, name, target, size);
    if (n < 0)
        return cc_error_set(err, cc_negerrno(), "readlink '%s'", path);
    if ((size_t)n >= size)
        return cc_error_msg(err, -ENAMETOOLONG, "readlink '%s': target too long", path);
    target[n] = '\0';
    if (symlinkat(target, ddir, name) < 0)
        return cc_error_set(err, cc_negerrno(), "symlink '%s' in the new root", path);
    if (fchownat(ddir, name, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW) < 0)
        return cc_error_set(err, cc_negerrno(), "chown symlink '%s' in the new root", path);
    struct timespec ts[2] = {st->st_atim, st->st_mtim};
    (void)utimensat(ddir, name, ts, AT_SYMLINK_NOFOLLOW);
    return 0;
}

/*
 * Copies the directory sdir (on device dev) into ddir, recursively. Entries on another
 * device (mount points: /dev /proc /sys) become empty directories; top-level NEW_ROOT_NAME
 * is skipped. path: sdir's path, for messages ("" for /).
 */
static int
copy_tree(int sdir, int ddir, dev_t dev, const char *path, cc_error **err)
{
    int fd = openat(sdir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return cc_error_set(err, cc_negerrno(), "open '%s/'", path);
    _cleanup_(closedirp) DIR *d = fdopendir(fd);
    if (!d) {
        int r = cc_negerrno();
        cc_close(fd);
        return cc_error_set(err, r, "opendir '%s/'", path);
    }

    struct dirent *de;
    while ((errno = 0, de = readdir(d))) {
        const char *name = de->d_name;
        if (cc_streq(name, ".") || cc_streq(name, ".."))
            continue;
        if (path[0] == '\0' && cc_streq(name, NEW_ROOT_NAME))
            continue;
        _cleanup_free_ char *p = cc_xasprintf("%s/%s", path, name);
        struct stat st;
        if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            return cc_error_set(err, cc_negerrno(), "stat '%s'", p);

        int r = 0;
        switch (st.st_mode & S_IFMT) {
        case S_IFDIR: {
            if (mkdirat(ddir, name, 0700) < 0)
                return cc_error_set(err, cc_negerrno(), "mkdir '%s' in the new root", p);
            _cleanup_close_ int dsub =
                openat(ddir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (dsub < 0)
                return cc_error_set(err, cc_negerrno(), "open '%s' in the new root", p);
            if (st.st_dev == dev) {
                _cleanup_close_ int ssub =
                    openat(dirfd(d), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (ssub < 0)
                    return cc_error_set(err, cc_negerrno(), "open '%s'", p);
                r = copy_tree(ssub, dsub, dev, p, err);
                if (r < 0)
                    return r;
            }
            if (fchown(dsub, st.st_uid, st.st_gid) < 0 || fchmod(dsub, st.st_mode & 07777) < 0)
                return cc_error_set(err, cc_negerrno(), "set owner/mode of '%s'", p);
            struct timespec ts[2] = {st.st_atim, st.st_mtim};
            (void)futimens(dsub, ts);
            break;
        }
        case S_IFREG:
            r = copy_file(dirfd(d), ddir, name, &st, p, err);
            break;
        case S_IFLNK:
            r = copy_symlink(dirfd(d), ddir, name, &st, p, err);
            break;
        default: /* device nodes, fifos, sockets */
            if (mknodat(ddir, name, st.st_mode, st.st_rdev) < 0)
                return cc_error_set(err, cc_negerrno(), "mknod '%s' in the new root", p);
            if (fchownat(ddir, name, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0 ||
                fchmodat(ddir, name, st.st_mode & 07777, 0) < 0)
                return cc_error_set(err, cc_negerrno(), "chown/chmod '%s' in the new root", p);
            break;
        }
        if (r < 0)
            return r;
    }
    if (errno != 0)
        return cc_error_set(err, cc_negerrno(), "readdir '%s/'", path);
    return 0;
}

/* Best effort "rm -rf" of dir's contents on device dev (never crossing mounts). */
static unsigned
delete_tree(int dir, dev_t dev)
{
    unsigned failed = 0;
    int fd = openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return 1;
    _cleanup_(closedirp) DIR *d = fdopendir(fd);
    if (!d) {
        cc_close(fd);
        return 1;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *name = de->d_name;
        struct stat st;
        if (cc_streq(name, ".") || cc_streq(name, ".."))
            continue;
        if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) < 0 || st.st_dev != dev)
            continue;
        if (S_ISDIR(st.st_mode)) {
            _cleanup_close_ int sub =
                openat(dirfd(d), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0)
                failed += delete_tree(sub, dev);
        }
        if (unlinkat(dirfd(d), name, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) < 0)
            failed++;
    }
    return failed;
}

/* Copies / into the tmpfs NEW_ROOT (mounted by the caller), moves the API mounts there. */
static int
populate_new_root(cc_error **err)
{
    struct stat root_st;
    if (stat("/", &root_st) < 0)
        return cc_error_set(err, cc_negerrno(), "stat '/'");
    _cleanup_close_ int src = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (src < 0)
        return cc_error_set(err, cc_negerrno(), "open '/'");
    _cleanup_close_ int dst = open(NEW_ROOT, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dst < 0)
        return cc_error_set(err, cc_negerrno(), "open '%s'", NEW_ROOT);

    mode_t old_umask = umask(0);
    int r = copy_tree(src, dst, root_st.st_dev, "", err);
    umask(old_umask);
    if (r < 0)
        return cc_error_prefix(err, r, "copy the initramfs into '%s'", NEW_ROOT);

    static const char *const api[] = {"/dev", "/proc", "/sys"};
    for (size_t i = 0; i < ELEMENTSOF(api); i++) {
        _cleanup_free_ char *to = cc_xasprintf("%s%s", NEW_ROOT, api[i]);
        if (mkdir(to, 0755) < 0 && errno != EEXIST)
            return cc_error_set(err, cc_negerrno(), "mkdir '%s'", to);
        if (mount(api[i], to, NULL, MS_MOVE, NULL) < 0)
            return cc_error_set(err, cc_negerrno(), "move mount '%s' to '%s'", api[i], to);
    }

    unsigned failed = delete_tree(src, root_st.st_dev);
    if (failed > 0)
        cc_log(CC_LOG_DEBUG, "could not delete %u entries of the old root", failed);
    return 0;
}

int
agent_init_switch_root(char **argv, cc_error **err)
{
    if (agent_init_is_stage2())
        return 0;
    if (getpid() != 1)
        return cc_error_msg(err, -EPERM, "switch root: not PID 1");
    struct statfs sfs;
    if (statfs("/", &sfs) < 0)
        return cc_error_set(err, cc_negerrno(), "switch root: statfs '/'");
    if (sfs.f_type != RAMFS_MAGIC && sfs.f_type != TMPFS_MAGIC)
        return cc_error_msg(err, -EPERM, "switch root: '/' is not an initramfs (type 0x%lx)",
                            (unsigned long)sfs.f_type);

    int r = mount_once("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755", 0755, err);
    if (r >= 0)
        r = reopen_console(err);
    if (r >= 0)
        r = mount_once("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, 0555, err);
    if (r >= 0)
        r = mount_once("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, 0555, err);
    if (r >= 0)
        r = mount_once("tmpfs", NEW_ROOT, "tmpfs", 0, "mode=0755", 0755, err);
    if (r >= 0)
        r = populate_new_root(err);
    if (r < 0)
        return cc_error_prefix(err, r, "switch root");

    if (chdir(NEW_ROOT) < 0)
        return cc_error_set(err, cc_negerrno(), "switch root: chdir '%s'", NEW_ROOT);
    if (mount(".", "/", NULL, MS_MOVE, NULL) < 0)
        return cc_error_set(err, cc_negerrno(), "switch root: move '%s' to '/'", NEW_ROOT);
    if (chroot(".") < 0 || chdir("/") < 0)
        return cc_error_set(err, cc_negerrno(), "switch root: chroot '%s'", NEW_ROOT);
    if (setenv(AGENT_INIT_STAGE_ENV, AGENT_INIT_STAGE_2, 1) < 0)
        return cc_error_set(err, cc_negerrno(), "switch root: setenv");
    execv("/init", argv);
    return cc_error_set(err, cc_negerrno(), "switch root: exec '/init'");
}

/* --- stage 2 ---------------------------------------------------------------------------- */

typedef struct api_mount {
    const char *what, *where, *type;
    unsigned long flags;
    const char *data;
    mode_t mode;
} api_mount;

static const api_mount api_mounts[] = {
    {"devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755", 0755},
    {"proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, 0555},
    {"sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, 0555},
    {"devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620",
     0755},
    {"shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", 01777},
    {"cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, 0755},
    {"tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755", 0755},
    {"tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", 01777},
};

static int
symlink_once(const char *target, const char *link, cc_error **err)
{
    if (symlink(target, link) < 0 && errno != EEXIST)
        return cc_error_set(err, cc_negerrno(), "symlink '%s' -> '%s'", link, target);
    return 0;
}

static int
setup_dev(cc_error **err)
{
    struct stat st;
    /* devtmpfs has a /dev/ptmx node for the initial devpts instance; ours is newinstance */
    if (lstat("/dev/ptmx", &st) < 0 || !S_ISLNK(st.st_mode)) {
        if (unlink("/dev/ptmx") < 0 && errno != ENOENT)
            return cc_error_set(err, cc_negerrno(), "unlink '/dev/ptmx'");
        if (symlink("pts/ptmx", "/dev/ptmx") < 0)
            return cc_error_set(err, cc_negerrno(), "symlink '/dev/ptmx'");
    }
    static const char *const links[][2] = {
        {"/proc/self/fd", "/dev/fd"},
        {"/proc/self/fd/0", "/dev/stdin"},
        {"/proc/self/fd/1", "/dev/stdout"},
        {"/proc/self/fd/2", "/dev/stderr"},
    };
    for (size_t i = 0; i < ELEMENTSOF(links); i++) {
        int r = symlink_once(links[i][0], links[i][1], err);
        if (r < 0)
            return r;
    }
    return 0;
}

/* True when word is one of the space-separated words of list. */
static bool
word_in_list(const char *list, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = list; (p = strstr(p, word)); p += n) {
        bool start = p == list || p[-1] == ' ' || p[-1] == '\n';
        bool end = p[n] == '\0' || p[n] == ' ' || p[n] == '\n';
        if (start && end)
            return true;
    }
    return false;
}

/* +cpu +cpuset +memory +pids +io for the children of the root cgroup; each one best effort. */
static void
cgroup_enable_controllers(void)
{
    static const char *const wanted[] = {"cpu", "cpuset", "memory", "pids", "io"};
    _cleanup_free_ char *avail = NULL;
    _cleanup_error_ cc_error *e = NULL;
    if (cc_read_file("/sys/fs/cgroup/cgroup.controllers", 4096, &avail, NULL, &e) < 0) {
        cc_log_error(CC_LOG_DEBUG, e, "no cgroup controllers");
        return;
    }
    for (size_t i = 0; i < ELEMENTSOF(wanted); i++) {
        if (!word_in_list(avail, wanted[i])) {
            cc_log(CC_LOG_DEBUG, "cgroup controller '%s' unavailable", wanted[i]);
            continue;
        }
        _cleanup_close_ int fd = open("/sys/fs/cgroup/cgroup.subtree_control",
                                      O_WRONLY | O_CLOEXEC | O_NOCTTY);
        _cleanup_free_ char *s = cc_xasprintf("+%s", wanted[i]);
        int r = fd < 0 ? cc_negerrno() : cc_write_all(fd, s, strlen(s));
        if (r < 0)
            cc_log_errno(CC_LOG_DEBUG, r, "cannot enable cgroup controller '%s'", wanted[i]);
    }
}

static int
load_modules(const char *list, cc_error **err)
{
    _cleanup_free_ char *text = NULL;
    int r = cc_read_file(list, 1 << 20, &text, NULL, err);
    if (r < 0)
        return cc_error_prefix(err, r, "load modules");
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        line += strspn(line, " \t");
        line[strcspn(line, " \t\r")] = '\0';
        if (line[0] == '\0' || line[0] == '#')
            continue;
        _cleanup_close_ int fd = open(line, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
            return cc_error_set(err, cc_negerrno(), "load module '%s'", line);
        if (syscall(SYS_finit_module, fd, "", 0) < 0) {
            if (errno != EEXIST)
                return cc_error_set(err, cc_negerrno(), "load module '%s'", line);
            cc_log(CC_LOG_DEBUG, "module '%s' already loaded", line);
        } else {
            cc_log(CC_LOG_DEBUG, "loaded module '%s'", line);
        }
    }
    return 0;
}

static int
setup_hostname(cc_error **err)
{
    char name[HOST_NAME_MAX + 1] = "";
    if (gethostname(name, sizeof(name)) < 0)
        return cc_error_set(err, cc_negerrno(), "gethostname");
    if (name[0] != '\0' && !cc_streq(name, "(none)"))
        return 0;
    if (sethostname("cloak", strlen("cloak")) < 0)
        return cc_error_set(err, cc_negerrno(), "sethostname 'cloak'");
    return 0;
}

static uint64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The smallest name in /sys/class/net, other than lo, that is backed by a device. */
static bool
find_interface(char *ret, size_t size)
{
    _cleanup_(closedirp) DIR *d = opendir("/sys/class/net");
    if (!d)
        return false;
    bool found = false;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.' || cc_streq(de->d_name, "lo") || strlen(de->d_name) >= size)
            continue;
        _cleanup_free_ char *dev = cc_xasprintf("%s/device", de->d_name);
        if (faccessat(dirfd(d), dev, F_OK, 0) < 0)
            continue;
        if (!found || strcmp(de->d_name, ret) < 0) {
            strcpy(ret, de->d_name);
            found = true;
        }
    }
    return found;
}

static int
setup_network(const agent_boot_config *cfg, cc_error **err)
{
    int r = nl_link_set_up("lo", err);
    if (r < 0)
        return r;
    if (!cfg->net)
        return 0;

    char ifname[IF_NAMESIZE];
    uint64_t deadline = now_ms() + AGENT_INIT_NET_WAIT_MS;
    while (!find_interface(ifname, sizeof(ifname))) {
        if (now_ms() >= deadline)
            return cc_error_msg(err, -ETIMEDOUT, "no network interface after %d ms",
                                AGENT_INIT_NET_WAIT_MS);
        struct timespec ts = {.tv_nsec = 50 * 1000 * 1000};
        (void)nanosleep(&ts, NULL);
    }
    r = nl_link_set_up(ifname, err);
    if (r >= 0)
        r = nl_addr_add(ifname, cfg->net_addr, cfg->net_prefix, err);
    if (r >= 0 && cfg->net_gateway.s_addr != htonl(INADDR_ANY))
        r = nl_route_add_default(ifname, cfg->net_gateway, err);
    if (r < 0)
        return r;
    cc_log(CC_LOG_DEBUG, "network interface '%s' configured", ifname);
    return 0;
}

int
agent_init_system(agent_boot_config *cfg, cc_error **err)
{
    int r;
    for (size_t i = 0; i < ELEMENTSOF(api_mounts); i++) {
        const api_mount *m = &api_mounts[i];
        r = mount_once(m->what, m->where, m->type, m->flags, m->data, m->mode, err);
        if (r < 0)
            return r;
    }
    r = setup_dev(err);
    if (r < 0)
        return r;
    cgroup_enable_controllers();

    r = load_modules(AGENT_INIT_MODULE_LIST, err);
    if (r < 0)
        return r;
    r = setup_hostname(err);
    if (r < 0)
        return r;

    _cleanup_free_ char *cmdline = NULL;
    r = cc_read_file("/proc/cmdline", 64 * 1024, &cmdline, NULL, err);
    if (r < 0)
        return r;
    agent_boot_config c;
    r = agent_cmdline_parse(cmdline, &c, err);
    if (r < 0)
        return cc_error_prefix(err, r, "kernel command line");

    r = setup_network(&c, err);
    if (r < 0)
        return cc_error_prefix(err, r, "network");
    *cfg = c;
    return 0;
}

_noreturn_ void
agent_init_fatal(const char *what, const cc_error *e)
{
    cc_log_error(CC_LOG_ERROR, e, "%s", what ? what : "fatal error");
    sync();
    (void)reboot(RB_POWER_OFF);
    for (;;)
        pause();
}
