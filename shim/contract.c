/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The shim v2 binary contract of containerd 1.6.20 (specs/shim-v2-and-ttrpc.md §2): Go-style
 * argv parsing, the socket address and state directory of a pod, and the `start` and `delete`
 * subcommands. Everything here runs in the short-lived `start`/`delete` processes, which are
 * single-threaded, so changing the umask around bind() is safe.
 */
#define _GNU_SOURCE
#include "contract.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "containerd/task/v2/shim.pb-c.h"
#include "digest.h"
#include "fs.h"
#include "json.h"
#include "util.h"
#include "vmm.h"

#define SHIM_BINARY_NAME "containerd-shim-cloak-v2"
#define SHIM_ANNOTATION_SANDBOX_ID "io.kubernetes.cri.sandbox-id"
#define SHIM_ANNOTATION_CONTAINER_TYPE "io.kubernetes.cri.container-type"
/* Runtime options are one small Any (runtimeoptions.v1.Options{config_path}). */
#define SHIM_OPTIONS_MAX (1u << 20)
/* How long delete waits for a SIGKILLed daemon to be gone (containerd allows 5 s in all). */
#define SHIM_KILL_WAIT_MSEC 2000
/* How long start waits for the daemon's exec (the CLOEXEC status pipe). */
#define SHIM_EXEC_WAIT_MSEC 5000

/* ---- argv ------------------------------------------------------------------------------- */

typedef enum flag_kind {
    FLAG_STRING,
    FLAG_BOOL,
} flag_kind;

typedef struct flag_def {
    const char *name;
    flag_kind kind;
    size_t offset; /* of the const char * or bool in shim_args */
} flag_def;

static const flag_def flag_defs[] = {
    {"namespace", FLAG_STRING, offsetof(shim_args, namespace_)},
    {"address", FLAG_STRING, offsetof(shim_args, address)},
    {"publish-binary", FLAG_STRING, offsetof(shim_args, publish_binary)},
    {"id", FLAG_STRING, offsetof(shim_args, id)},
    {"bundle", FLAG_STRING, offsetof(shim_args, bundle)},
    {"socket", FLAG_STRING, offsetof(shim_args, socket)},
    {"debug", FLAG_BOOL, offsetof(shim_args, debug)},
    {"v", FLAG_BOOL, offsetof(shim_args, version)},
    {"version", FLAG_BOOL, offsetof(shim_args, version)},
};

/* Go's strconv.ParseBool. */
static int
parse_go_bool(const char *s, bool *ret)
{
    static const char *const yes[] = {"1", "t", "T", "true", "TRUE", "True"};
    static const char *const no[] = {"0", "f", "F", "false", "FALSE", "False"};

    for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
        if (strcmp(s, yes[i]) == 0) {
            *ret = true;
            return 0;
        }
        if (strcmp(s, no[i]) == 0) {
            *ret = false;
            return 0;
        }
    }
    return -EINVAL;
}

/* One flag argument (s starts with '-' and is longer than "-"); may consume argv[*i + 1]. */
static int
parse_one_flag(int argc, char **argv, int *i, shim_args *a, cc_error **err)
{
    const char *s = argv[*i];
    const char *name = s + (s[1] == '-' ? 2 : 1);
    const char *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);

    if (len == 0 || name[0] == '-' || name[0] == '=')
        return cc_error_msg(err, -EINVAL, "bad flag syntax: '%s'", s);
    for (size_t k = 0; k < ELEMENTSOF(flag_defs); k++) {
        const flag_def *f = &flag_defs[k];
        if (strlen(f->name) != len || strncmp(f->name, name, len) != 0)
            continue;
        if (f->kind == FLAG_BOOL) {
            bool *b = (bool *)((char *)a + f->offset);
            if (!eq) {
                *b = true;
                return 0;
            }
            if (parse_go_bool(eq + 1, b) < 0)
                return cc_error_msg(err, -EINVAL, "invalid boolean value '%s' for flag -%s",
                                    eq + 1, f->name);
            return 0;
        }
        const char **str = (const char **)(void *)((char *)a + f->offset);
        if (eq) {
            *str = eq + 1;
            return 0;
        }
        if (*i + 1 >= argc)
            return cc_error_msg(err, -EINVAL, "flag needs an argument: -%s", f->name);
        *str = argv[++*i];
        return 0;
    }
    return cc_error_msg(err, -EINVAL, "flag provided but not defined: -%.*s", (int)len, name);
}

int
shim_args_parse(int argc, char **argv, shim_args *ret, cc_error **err)
{
    shim_args a = {0};
    int i, r;

    for (i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (s[0] != '-' || s[1] == '\0')
            break; /* the first non-flag argument: the action */
        if (strcmp(s, "--") == 0) {
            i++;
            break;
        }
        r = parse_one_flag(argc, argv, &i, &a, err);
        if (r < 0)
            return r;
    }
    if (i < argc) {
        if (!cc_streq(argv[i], "start") && !cc_streq(argv[i], "delete"))
            return cc_error_msg(err, -EINVAL, "unknown action '%s'", argv[i]);
        a.action = argv[i];
    }
    if (!a.version) {
        if (!a.namespace_ || !*a.namespace_)
            return cc_error_msg(err, -EINVAL, "missing -namespace");
        if (!a.id || !*a.id)
            return cc_error_msg(err, -EINVAL, "missing -id");
        if (!a.address || !*a.address)
            return cc_error_msg(err, -EINVAL, "missing -address");
    }
    *ret = a;
    return 0;
}

/* ---- addresses -------------------------------------------------------------------------- */

/* Go's filepath.Clean on Unix, in place (the result is never longer than the input). */
static void
path_clean(char *path)
{
    size_t n = strlen(path), r = 0, w = 0, dotdot = 0;
    bool rooted = path[0] == '/';

    if (n == 0) {
        strcpy(path, ".");
        return;
    }
    if (rooted) {
        path[w++] = '/';
        r = dotdot = 1;
    }
    while (r < n) {
        if (path[r] == '/') {
            r++;
        } else if (path[r] == '.' && (r + 1 == n || path[r + 1] == '/')) {
            r++;
        } else if (path[r] == '.' && path[r + 1] == '.' && (r + 2 == n || path[r + 2] == '/')) {
            r += 2;
            if (w > dotdot) {
                w--;
                while (w > dotdot && path[w] != '/')
                    w--;
            } else if (!rooted) {
                if (w > 0)
                    path[w++] = '/';
                path[w++] = '.';
                path[w++] = '.';
                dotdot = w;
            }
        } else {
            if ((rooted && w != 1) || (!rooted && w != 0))
                path[w++] = '/';
            while (r < n && path[r] != '/')
                path[w++] = path[r++];
        }
    }
    if (w == 0)
        path[w++] = '.';
    path[w] = '\0';
}

/* Go's filepath.Join(a, b, c): the non-empty elements joined with '/', cleaned ("" if none). */
static char *
path_join3(const char *a, const char *b, const char *c)
{
    const char *parts[] = {a, b, c};
    size_t len = 0;

    for (size_t k = 0; k < ELEMENTSOF(parts); k++)
        len += strlen(parts[k]) + 1;
    char *p = cc_xmalloc(len + 1), *w = p;
    for (size_t k = 0; k < ELEMENTSOF(parts); k++) {
        if (!*parts[k])
            continue;
        if (w != p)
            *w++ = '/';
        size_t l = strlen(parts[k]);
        memcpy(w, parts[k], l);
        w += l;
    }
    *w = '\0';
    if (w != p)
        path_clean(p);
    return p;
}

/* Lowercase hex SHA-256 of the joined, cleaned path, into hex[65]. */
static void
sha256_join_hex(const char *a, const char *b, const char *c, char hex[static 65])
{
    _cleanup_free_ char *joined = path_join3(a, b, c);
    uint8_t md[CC_SHA256_SIZE];

    cc_sha256(joined, strlen(joined), md);
    for (size_t k = 0; k < sizeof(md); k++)
        snprintf(hex + 2 * k, 3, "%02x", md[k]);
}

char *
shim_socket_address(const char *containerd_address, const char *ns, const char *group)
{
    char hex[65];

    sha256_join_hex(containerd_address, ns, group, hex);
    return cc_xasprintf("unix://" SHIM_SOCKET_DIR "/%s", hex);
}

const char *
shim_group_id(const json_t *config, const char *id)
{
    const char *sandbox = NULL;

    if (config &&
        cc_json_get_string(config, "annotations[\"" SHIM_ANNOTATION_SANDBOX_ID "\"]", &sandbox,
                           NULL) == 0 &&
        *sandbox)
        return sandbox;
    return id;
}

char *
shim_state_dir(const char *containerd_address, const char *ns, const char *sandbox_id)
{
    char hex[65];

    sha256_join_hex(containerd_address, ns, sandbox_id, hex);
    return cc_xasprintf(SHIM_STATE_ROOT "/%.32s", hex);
}

int
shim_state_dir_remove(const char *state_dir, cc_error **err)
{
    _cleanup_close_ int root_fd = open(SHIM_STATE_ROOT, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root_fd < 0)
        return errno == ENOENT ? 0 : cc_error_set(err, -errno, "open '%s'", SHIM_STATE_ROOT);
    _cleanup_error_ cc_error *e = NULL;
    int r = cc_rm_rf_at(root_fd, strrchr(state_dir, '/') + 1, &e);
    if (r >= 0 || r == -ENOENT)
        return 0;
    if (err) {
        cc_error_free(*err);
        *err = TAKE_PTR(e);
    }
    return cc_error_prefix(err, r, "remove '%s'", state_dir);
}

/* ---- shared by start and delete --------------------------------------------------------- */

/* -bundle, or the cwd (containerd runs both subcommands in the bundle). */
static int
bundle_path(const shim_args *a, char **ret, cc_error **err)
{
    if (a->bundle && *a->bundle) {
        *ret = cc_xstrdup(a->bundle);
        return 0;
    }
    char *cwd = getcwd(NULL, 0);
    if (!cwd)
        return cc_error_set(err, cc_negerrno(), "getcwd");
    *ret = cwd;
    return 0;
}

/* <bundle>/config.json; *ret = NULL when it does not exist. */
static int
load_config(const char *bundle, json_t **ret, cc_error **err)
{
    _cleanup_free_ char *path = cc_xasprintf("%s/config.json", bundle);
    int r;

    if (access(path, F_OK) < 0 && errno == ENOENT) {
        *ret = NULL;
        return 0;
    }
    r = cc_json_load_file(path, CC_JSON_MAX_SIZE, ret, err);
    if (r < 0)
        return cc_error_prefix(err, r, "load '%s'", path);
    return 0;
}

static int
socket_path_of(const char *address, struct sockaddr_un *ret, cc_error **err)
{
    const char *path = cc_startswith(address, "unix://");

    if (!path || strlen(path) >= sizeof(ret->sun_path))
        return cc_error_msg(err, -EINVAL, "bad socket address '%s'", address);
    *ret = (struct sockaddr_un){.sun_family = AF_UNIX};
    memcpy(ret->sun_path, path, strlen(path) + 1);
    return 0;
}

/* ---- start ------------------------------------------------------------------------------ */

/* stdin to EOF (a closed stdin reads as empty). */
static int
read_options(char **ret, size_t *ret_len, cc_error **err)
{
    int r;

    if (fcntl(STDIN_FILENO, F_GETFD) < 0) {
        *ret = cc_xstrdup("");
        *ret_len = 0;
        return 0;
    }
    r = cc_read_fd(STDIN_FILENO, SHIM_OPTIONS_MAX, ret, ret_len, err);
    if (r < 0)
        return cc_error_prefix(err, r, "read runtime options from stdin");
    return 0;
}

static int
mkdir_if_missing(const char *path, mode_t mode, cc_error **err)
{
    if (mkdir(path, mode) < 0 && errno != EEXIST)
        return cc_error_set(err, -errno, "mkdir '%s'", path);
    return 0;
}

/* A socket at addr that accepts a connection (or whose backlog is full) is a live shim. */
static bool
socket_is_alive(const struct sockaddr_un *addr)
{
    _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

    if (fd < 0)
        return false;
    if (connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) == 0)
        return true;
    return errno == EAGAIN || errno == EINPROGRESS;
}

/*
 * Binds and listens on addr with mode 0600. *ret_fd = -EBADF (and 0 returned) when a live
 * shim already listens there; a stale socket file is unlinked and the bind retried.
 */
static int
listen_or_reuse(const struct sockaddr_un *addr, int *ret_fd, cc_error **err)
{
    int r;

    r = mkdir_if_missing("/run/containerd", 0711, err);
    if (r < 0)
        return r;
    r = mkdir_if_missing(SHIM_SOCKET_DIR, 0711, err);
    if (r < 0)
        return r;
    for (int attempt = 0; attempt < 3; attempt++) {
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return cc_error_set(err, -errno, "socket");
        /* No window in which the socket has looser permissions than 0600. */
        mode_t old = umask(0177);
        r = bind(fd, (const struct sockaddr *)addr, sizeof(*addr)) < 0 ? -errno : 0;
        umask(old);
        if (r == -EADDRINUSE) {
            if (socket_is_alive(addr)) {
                *ret_fd = -EBADF;
                return 0;
            }
            if (unlink(addr->sun_path) < 0 && errno != ENOENT)
                return cc_error_set(err, -errno, "remove stale socket '%s'", addr->sun_path);
            continue;
        }
        if (r < 0)
            return cc_error_set(err, r, "bind '%s'", addr->sun_path);
        if (chmod(addr->sun_path, 0600) < 0 || listen(fd, SOMAXCONN) < 0) {
            r = cc_error_set(err, -errno, "listen on '%s'", addr->sun_path);
            (void)unlink(addr->sun_path);
            return r;
        }
        *ret_fd = TAKE_FD(fd);
        return 0;
    }
    return cc_error_msg(err, -EADDRINUSE, "bind '%s': address kept being taken",
                        addr->sun_path);
}

/* An fd >= 4 (so the child's dup2 onto 0-3 never clobbers it), CLOEXEC. Consumes fd. */
static int
fd_move_above_stdio(int fd, cc_error **err)
{
    if (fd >= 4)
        return fd;
    int n = fcntl(fd, F_DUPFD_CLOEXEC, 4);
    int saved = errno;
    cc_close(fd);
    if (n < 0)
        return cc_error_set(err, -saved, "fcntl F_DUPFD_CLOEXEC");
    return n;
}

/* In the child between fork and exec: only async-signal-safe calls. Never returns. */
static _noreturn_ void
daemon_child(const char *exe, char **argv, const char *bundle, int listen_fd, int null_fd,
             int status_fd)
{
    sigset_t none;
    int e;

    sigemptyset(&none);
    (void)sigprocmask(SIG_SETMASK, &none, NULL);
    if (setpgid(0, 0) < 0 || chdir(bundle) < 0)
        goto fail;
    for (int k = 0; k < 3; k++)
        if (dup2(null_fd, k) < 0)
            goto fail;
    /* listen_fd >= 4, so this is a real dup, which leaves FD_CLOEXEC off on 3. */
    if (dup2(listen_fd, 3) < 0)
        goto fail;
    /* Whatever else we inherited without O_CLOEXEC stays out of the daemon (best effort:
     * Linux >= 5.11); status_fd stays usable until the exec. */
    (void)close_range(4, ~0U, CLOSE_RANGE_CLOEXEC);
    execv(exe, argv);
fail:
    e = errno;
    (void)!write(status_fd, &e, sizeof(e));
    _exit(127);
}

/* Best effort: the daemon's oom_score_adj = ours + 1 (at most 1000). */
static void
adjust_oom_score(pid_t pid)
{
    _cleanup_free_ char *data = NULL;
    char path[64], buf[16];

    if (cc_read_file("/proc/self/oom_score_adj", 32, &data, NULL, NULL) < 0)
        return;
    long v = strtol(data, NULL, 10);
    if (v < -1000 || v >= 1000)
        return;
    snprintf(path, sizeof(path), "/proc/%d/oom_score_adj", (int)pid);
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    int n = snprintf(buf, sizeof(buf), "%ld", v + 1);
    (void)cc_write_all(fd, buf, (size_t)n);
}

/* Forks and execs the daemon with listen_fd as its fd 3; returns its pid (not waited for). */
static int
spawn_daemon(const shim_args *a, const char *self_exe, const char *bundle, int listen_fd,
             pid_t *ret_pid, cc_error **err)
{
    _cleanup_free_ char *argv0 = NULL;
    _cleanup_close_ int null_fd = -EBADF;
    const char *exe = self_exe ? self_exe : "/proc/self/exe";
    int pipefd[2], e = 0, r;

    /*
     * Exec through /proc/self/exe works even when the binary was replaced on disk, but the
     * daemon's argv[0] is the real path: `delete` recognises the daemon by its name.
     */
    if (cc_startswith(exe, "/proc/")) {
        char buf[PATH_MAX];
        ssize_t n = readlink(exe, buf, sizeof(buf) - 1);
        if (n < 0)
            return cc_error_set(err, -errno, "readlink '%s'", exe);
        argv0 = cc_xstrndup(buf, (size_t)n);
    } else {
        argv0 = cc_xstrdup(exe);
    }
    char *argv[12];
    size_t k = 0;
    argv[k++] = argv0;
    argv[k++] = (char *)"-namespace";
    argv[k++] = (char *)a->namespace_;
    argv[k++] = (char *)"-id";
    argv[k++] = (char *)a->id;
    argv[k++] = (char *)"-address";
    argv[k++] = (char *)a->address;
    if (a->publish_binary && *a->publish_binary) {
        argv[k++] = (char *)"-publish-binary";
        argv[k++] = (char *)a->publish_binary;
    }
    if (a->debug)
        argv[k++] = (char *)"-debug";
    argv[k] = NULL;

    null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null_fd < 0)
        return cc_error_set(err, -errno, "open /dev/null");
    null_fd = fd_move_above_stdio(null_fd, err);
    if (null_fd < 0)
        return null_fd;
    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return cc_error_set(err, -errno, "pipe");
    _cleanup_close_ int status_r = pipefd[0];
    _cleanup_close_ int status_w = fd_move_above_stdio(pipefd[1], err);
    if (status_w < 0)
        return status_w;

    pid_t pid = fork();
    if (pid < 0)
        return cc_error_set(err, -errno, "fork");
    if (pid == 0)
        daemon_child(exe, argv, bundle, listen_fd, null_fd, status_w);
    status_w = cc_close(status_w);

    /* EOF: the exec happened (the pipe is CLOEXEC); an errno: it did not. */
    struct pollfd p = {.fd = status_r, .events = POLLIN};
    r = poll(&p, 1, SHIM_EXEC_WAIT_MSEC);
    if (r == 1) {
        ssize_t n = read(status_r, &e, sizeof(e));
        if (n == (ssize_t)sizeof(e))
            return cc_error_set(err, -e, "start daemon '%s'", exe);
    } else if (r == 0) {
        (void)kill(pid, SIGKILL);
        return cc_error_msg(err, -ETIMEDOUT, "start daemon '%s': exec timed out", exe);
    }
    adjust_oom_score(pid);
    *ret_pid = pid;
    return 0;
}

static int
do_start(const shim_args *a, const char *self_exe, char **ret_address, cc_error **err)
{
    _cleanup_free_ char *bundle = NULL, *options = NULL, *address = NULL;
    _cleanup_json_ json_t *config = NULL;
    _cleanup_close_ int bundle_fd = -EBADF, listen_fd = -EBADF;
    struct sockaddr_un sa;
    size_t options_len = 0;
    bool bound;
    pid_t pid;
    int r;

    r = read_options(&options, &options_len, err);
    if (r < 0)
        return r;
    r = bundle_path(a, &bundle, err);
    if (r < 0)
        return r;
    bundle_fd = open(bundle, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (bundle_fd < 0)
        return cc_error_set(err, -errno, "open bundle '%s'", bundle);
    r = cc_write_file_atomic(bundle_fd, "cloak-options", options, options_len, 0600, err);
    if (r < 0)
        return cc_error_prefix(err, r, "bundle '%s'", bundle);
    r = load_config(bundle, &config, err);
    if (r < 0)
        return r;

    address = shim_socket_address(a->address, a->namespace_, shim_group_id(config, a->id));
    r = socket_path_of(address, &sa, err);
    if (r < 0)
        return r;
    r = listen_or_reuse(&sa, &listen_fd, err);
    if (r < 0)
        return r;
    bound = listen_fd >= 0;
    r = cc_write_file_atomic(bundle_fd, "address", address, strlen(address), 0644, err);
    if (r < 0) {
        r = cc_error_prefix(err, r, "bundle '%s'", bundle);
        goto fail;
    }
    if (listen_fd >= 0) {
        listen_fd = fd_move_above_stdio(TAKE_FD(listen_fd), err);
        if (listen_fd < 0) {
            r = listen_fd;
            goto fail;
        }
        r = spawn_daemon(a, self_exe, bundle, listen_fd, &pid, err);
        if (r < 0)
            goto fail;
    }
    *ret_address = TAKE_PTR(address);
    return 0;
fail:
    if (bound) /* ours, and nobody was told about it */
        (void)unlink(sa.sun_path);
    return r;
}

int
shim_cmd_start(const shim_args *a, const char *self_exe)
{
    _cleanup_error_ cc_error *err = NULL;
    _cleanup_free_ char *address = NULL;
    int r;

    r = do_start(a, self_exe, &address, &err);
    if (r < 0) {
        dprintf(STDERR_FILENO, "start '%s': %s\n", a->id, cc_error_message(err));
        return 1;
    }
    /* Only the address: containerd reads stdout and stderr together. */
    r = cc_write_all(STDOUT_FILENO, address, strlen(address));
    if (r < 0) {
        dprintf(STDERR_FILENO, "start '%s': write address: %s\n", a->id, strerror(-r));
        return 1;
    }
    return 0;
}

/* ---- delete ----------------------------------------------------------------------------- */

/*
 * /proc/<pid>/cmdline is this binary's daemon for ns and id: argv[0] names the binary, and the
 * arguments parse (as we parse ours) with no action, this -namespace and this -id. A `start`
 * or `delete` of the same id (this process included) has an action, so it never matches.
 */
static bool
pid_is_our_daemon(pid_t pid, const char *ns, const char *id)
{
    _cleanup_free_ char *cmdline = NULL;
    _cleanup_free_ char **argv = NULL;
    char path[64];
    size_t len, argc = 0;
    shim_args a;

    if (pid == getpid())
        return false;
    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    if (cc_read_file(path, 1u << 20, &cmdline, &len, NULL) < 0 || len == 0)
        return false;
    /* cc_read_fd NUL-terminates at len, so the last argument ends in any case. */
    for (size_t k = 0; k < len; k += strlen(cmdline + k) + 1)
        argc++;
    argv = cc_xreallocarray(NULL, argc + 1, sizeof(*argv));
    argc = 0;
    for (size_t k = 0; k < len; k += strlen(cmdline + k) + 1)
        argv[argc++] = cmdline + k;
    argv[argc] = NULL;

    const char *base = strrchr(argv[0], '/');
    base = base ? base + 1 : argv[0];
    if (!strstr(base, SHIM_BINARY_NAME))
        return false;
    if (argc > INT_MAX || shim_args_parse((int)argc, argv, &a, NULL) < 0)
        return false;
    return !a.action && !a.version && cc_streq(a.id, id) && cc_streq(a.namespace_, ns);
}

/* SIGKILLs the daemon recorded in <state_dir>/shim.pid if it is still the pod's daemon. */
static int
kill_daemon(const char *state_dir, const char *ns, const char *id, cc_error **err)
{
    _cleanup_free_ char *path = cc_xasprintf("%s/shim.pid", state_dir);
    _cleanup_free_ char *data = NULL;
    _cleanup_close_ int pidfd = -EBADF;
    char *end;
    int r;

    r = cc_read_file(path, 64, &data, NULL, err);
    if (r == -ENOENT)
        return 0;
    if (r < 0)
        return r;
    errno = 0;
    long pid = strtol(data, &end, 10);
    if (errno != 0 || end == data || pid <= 1 || pid > INT32_MAX ||
        (*end && strcmp(end, "\n") != 0)) {
        dprintf(STDERR_FILENO, "warning: '%s' holds no pid; ignoring it\n", path);
        return 0;
    }
    pidfd = pidfd_open((pid_t)pid, 0);
    if (pidfd < 0)
        return errno == ESRCH ? 0 : cc_error_set(err, -errno, "pidfd_open %ld", pid);
    /* Checked after pidfd_open: the pidfd pins the process the cmdline belongs to. */
    if (!pid_is_our_daemon((pid_t)pid, ns, id))
        return 0;
    if (pidfd_send_signal(pidfd, SIGKILL, NULL, 0) < 0 && errno != ESRCH)
        return cc_error_set(err, -errno, "kill shim daemon %ld", pid);
    struct pollfd p = {.fd = pidfd, .events = POLLIN};
    if (poll(&p, 1, SHIM_KILL_WAIT_MSEC) <= 0)
        return cc_error_msg(err, -ETIMEDOUT, "shim daemon %ld did not die after SIGKILL", pid);
    return 0;
}

/* Everything the pod's sandbox leaves on the host: daemon, VM, state dir, socket. */
static int
cleanup_pod(const shim_args *a, const char *sandbox_id, cc_error **err)
{
    _cleanup_free_ char *state_dir = shim_state_dir(a->address, a->namespace_, sandbox_id);
    _cleanup_free_ char *address = shim_socket_address(a->address, a->namespace_, sandbox_id);
    struct sockaddr_un sa;
    int r;

    r = kill_daemon(state_dir, a->namespace_, sandbox_id, err);
    if (r < 0)
        return cc_error_prefix(err, r, "stop the pod's shim");
    r = vmm_cleanup(state_dir, err);
    if (r < 0)
        return r;
    r = shim_state_dir_remove(state_dir, err);
    if (r < 0)
        return r;
    r = socket_path_of(address, &sa, err);
    if (r < 0)
        return r;
    if (unlink(sa.sun_path) < 0 && errno != ENOENT)
        return cc_error_set(err, -errno, "remove socket '%s'", sa.sun_path);
    return 0;
}

static int
write_delete_response(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    ts.seconds = now.tv_sec;
    ts.nanos = (int32_t)now.tv_nsec;
    Containerd__Task__V2__DeleteResponse resp = CONTAINERD__TASK__V2__DELETE_RESPONSE__INIT;
    resp.pid = 0;
    resp.exit_status = 128 + SIGKILL;
    resp.exited_at = &ts;

    size_t len = containerd__task__v2__delete_response__get_packed_size(&resp);
    _cleanup_free_ uint8_t *buf = cc_xmalloc(len ? len : 1);
    containerd__task__v2__delete_response__pack(&resp, buf);
    return cc_write_all(STDOUT_FILENO, buf, len);
}

int
shim_cmd_delete(const shim_args *a)
{
    _cleanup_error_ cc_error *err = NULL;
    _cleanup_free_ char *bundle = NULL;
    _cleanup_json_ json_t *config = NULL;
    const char *type = NULL;
    int r;

    r = bundle_path(a, &bundle, &err);
    if (r >= 0)
        r = load_config(bundle, &config, &err);
    if (r < 0) {
        /* Without the config, treat -id as its own pod: its state dir is keyed by it. */
        dprintf(STDERR_FILENO, "warning: delete '%s': %s\n", a->id, cc_error_message(err));
        err = cc_error_free(err);
    }
    const char *group = shim_group_id(config, a->id);
    if (config)
        (void)cc_json_get_string(config, "annotations[\"" SHIM_ANNOTATION_CONTAINER_TYPE "\"]",
                                 &type, NULL);
    if (cc_streq(type, "sandbox") || strcmp(group, a->id) == 0) {
        r = cleanup_pod(a, group, &err);
        if (r < 0) {
            dprintf(STDERR_FILENO, "delete '%s': %s\n", a->id, cc_error_message(err));
            return 1;
        }
    }
    r = write_delete_response();
    if (r < 0) {
        dprintf(STDERR_FILENO, "delete '%s': write response: %s\n", a->id, strerror(-r));
        return 1;
    }
    return 0;
}
