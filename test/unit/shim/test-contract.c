/* SPDX-License-Identifier: Apache-2.0 */
/*
 * shim/contract.c: Go-style argv, the socket address (golden values computed with Go's
 * filepath.Join and crypto/sha256), the group and state dir, and `start`/`delete` end to end.
 *
 * The end-to-end tests run start and delete in a forked child with stdin/stdout/stderr on
 * pipes, as containerd does. The daemon start execs is this very binary through a symlink
 * named containerd-shim-cloak-v2: main() sees that name and plays a fake daemon that reports
 * what it inherited (argv, fd 3, stdio, cwd, process group) and writes <state>/shim.pid, as
 * the real daemon does. This process is a child subreaper, so the orphaned fake daemons are
 * reparented to it and the tests can tell how they died. Needs root: the sockets live in
 * /run/containerd/s (hard-coded by containerd) and the state in /run/cloak/shim; everything
 * created there is removed again.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "containerd/task/v2/shim.pb-c.h"
#include "contract.h"
#include "fs.h"
#include "json.h"
#include "util.h"

#define FAKE_NAME "containerd-shim-cloak-v2"
/* Also plays the fake daemon, under a name that is not the shim's. */
#define NOT_THE_SHIM "not-the-shim"
#define TEST_NS "cloak-test"
#define TEST_ADDRESS "/run/containerd/containerd.sock"
#define TEST_PUBLISH "/usr/bin/containerd"

static char tmp[] = "/tmp/cloak-test-contract-XXXXXX";
static char *self_exe; /* tmp/containerd-shim-cloak-v2 -> this binary */
static bool state_root_existed, cloak_run_existed;

/* ---- the fake daemon ---------------------------------------------------------------------- */

static bool
fd_is_devnull(int fd)
{
    char buf[64];
    char path[32];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(path, buf, sizeof(buf) - 1);
    if (n < 0)
        return false;
    buf[n] = 0;
    return strcmp(buf, "/dev/null") == 0;
}

/* Open fds other than 0-3 (and the one reading the directory), and what they are. */
static int
count_extra_fds(char **ret_list)
{
    _cleanup_(closedirp) DIR *d = opendir("/proc/self/fd");
    char *list = cc_xstrdup("");
    int n = 0;
    if (!d)
        return -1;
    for (struct dirent *de; (de = readdir(d));) {
        int fd = atoi(de->d_name);
        if (de->d_name[0] != '.' && fd > 3 && fd != dirfd(d)) {
            char target[PATH_MAX] = "";
            char path[64];
            snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
            (void)!readlink(path, target, sizeof(target) - 1);
            char *l = cc_xasprintf("%s %d:%s", list, fd, target);
            free(list);
            list = l;
            n++;
        }
    }
    *ret_list = list;
    return n;
}

static int
fake_daemon(int argc, char **argv)
{
    const char *out = getenv("CLOAK_TEST_FAKE_OUT");
    char cwd[PATH_MAX] = "";
    struct stat st;
    int listening = 0;
    socklen_t optlen = sizeof(listening);
    struct sockaddr_un sa = {0};
    socklen_t salen = sizeof(sa);
    shim_args a;

    alarm(60); /* never outlive a crashed test run for long */
    char *report = cc_xstrdup("\n");
    for (int i = 0; i < argc; i++) {
        char *n = cc_xasprintf("%sargv[%d]=%s\n", report, i, argv[i]);
        free(report);
        report = n;
    }
    bool sock = fstat(3, &st) == 0 && S_ISSOCK(st.st_mode);
    (void)getsockopt(3, SOL_SOCKET, SO_ACCEPTCONN, &listening, &optlen);
    (void)getsockname(3, (struct sockaddr *)&sa, &salen);
    (void)!getcwd(cwd, sizeof(cwd));
    _cleanup_free_ char *fds = NULL;
    int extra = count_extra_fds(&fds);
    char *n = cc_xasprintf("%sfd3_socket=%d\nfd3_listening=%d\nfd3_path=%s\nfd3_cloexec=%d\n"
                           "stdio_devnull=%d\ncwd=%s\npgid_is_pid=%d\nextra_fds=%d\nfds=%s\n"
                           "pid=%d\n",
                           report, sock, listening, sa.sun_path, fcntl(3, F_GETFD) & FD_CLOEXEC,
                           fd_is_devnull(0) && fd_is_devnull(1) && fd_is_devnull(2), cwd,
                           getpgid(0) == getpid(), extra, fds ? fds : "", (int)getpid());
    free(report);
    report = n;

    /* What the real daemon does: record its pid in the pod's state dir. */
    if (shim_args_parse(argc, argv, &a, NULL) == 0 && !getenv("CLOAK_TEST_FAKE_NO_PIDFILE")) {
        _cleanup_free_ char *dir = shim_state_dir(a.address, a.namespace_, a.id);
        _cleanup_free_ char *pid = cc_xasprintf("%d\n", (int)getpid());
        (void)mkdir("/run/cloak", 0711);
        (void)mkdir(SHIM_STATE_ROOT, 0711);
        (void)mkdir(dir, 0700);
        _cleanup_close_ int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        (void)cc_write_file_atomic(dfd, "shim.pid", pid, strlen(pid), 0644, NULL);
    }
    if (out) {
        _cleanup_free_ char *dir = cc_xstrdup(out);
        *strrchr(dir, '/') = 0;
        _cleanup_close_ int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        (void)cc_write_file_atomic(dfd, strrchr(out, '/') + 1, report, strlen(report), 0644,
                                   NULL);
    }
    free(report);
    while (pause() < 0 && errno == EINTR)
        ;
    return 0;
}

/* ---- helpers ------------------------------------------------------------------------------ */

static char *
test_id(const char *what)
{
    return cc_xasprintf("cloak-test-%d-%s", (int)getpid(), what);
}

static char *
read_text(const char *path)
{
    char *s = NULL;
    if (cc_read_file(path, 1 << 20, &s, NULL, NULL) < 0)
        return NULL;
    return s;
}

/* A bundle dir with a config.json carrying the CRI annotations (NULL: none). */
static char *
make_bundle(const char *name, const char *sandbox_id, const char *type)
{
    char *dir = cc_xasprintf("%s/%s", tmp, name);
    assert_int_equal(mkdir(dir, 0700), 0);
    _cleanup_json_ json_t *ann = json_object();
    if (sandbox_id)
        json_object_set_new(ann, "io.kubernetes.cri.sandbox-id", json_string(sandbox_id));
    if (type)
        json_object_set_new(ann, "io.kubernetes.cri.container-type", json_string(type));
    _cleanup_json_ json_t *cfg = json_pack("{s:s, s:O}", "ociVersion", "1.0.2", "annotations", ann);
    _cleanup_free_ char *text = NULL;
    assert_int_equal(cc_json_dump(cfg, &text, NULL), 0);
    _cleanup_close_ int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    assert_int_equal(cc_write_file_atomic(dfd, "config.json", text, strlen(text), 0644, NULL), 0);
    return dir;
}

typedef struct run_result {
    int status; /* exit code of the subcommand */
    char *out;
    size_t out_len;
    char *err;
    double seconds;
} run_result;

static void
run_result_done(run_result *r)
{
    free(r->out);
    free(r->err);
    *r = (run_result){0};
}

static void
drain(int fd, char **buf, size_t *len, bool *eof)
{
    char chunk[4096];
    ssize_t n = read(fd, chunk, sizeof(chunk));
    if (n <= 0) {
        *eof = true;
        return;
    }
    *buf = cc_xrealloc(*buf, *len + (size_t)n + 1);
    memcpy(*buf + *len, chunk, (size_t)n);
    *len += (size_t)n;
    (*buf)[*len] = 0;
}

/*
 * Runs the shim as containerd would: argv (as containerd passes it) parsed by
 * shim_args_parse and dispatched, in a child with cwd = bundle and stdio on pipes. Returns
 * when the child has exited and both output pipes are at EOF: a daemon holding on to them
 * would make this time out, which the test reports.
 */
static void
run_shim(const char *bundle, char **argv, const char *input, const char *fake_out,
         run_result *ret)
{
    int in[2], out[2], err[2];
    struct timespec t0, t1;

    *ret = (run_result){0};
    assert_int_equal(pipe2(in, O_CLOEXEC), 0);
    assert_int_equal(pipe2(out, O_CLOEXEC), 0);
    assert_int_equal(pipe2(err, O_CLOEXEC), 0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        shim_args a;
        int argc = 0;
        while (argv[argc])
            argc++;
        if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0 || dup2(err[1], 2) < 0 ||
            chdir(bundle) < 0)
            _exit(99);
        /* Only stdio: the write end of stdin must go, or stdin never reaches EOF. */
        int fds[] = {in[0], in[1], out[0], out[1], err[0], err[1]};
        for (size_t k = 0; k < ELEMENTSOF(fds); k++)
            if (fds[k] > 2)
                close(fds[k]);
        if (fake_out)
            setenv("CLOAK_TEST_FAKE_OUT", fake_out, 1);
        if (shim_args_parse(argc, argv, &a, NULL) < 0)
            _exit(98);
        if (cc_streq(a.action, "start"))
            _exit(shim_cmd_start(&a, self_exe));
        if (cc_streq(a.action, "delete"))
            _exit(shim_cmd_delete(&a));
        _exit(97);
    }
    close(in[0]);
    close(out[1]);
    close(err[1]);
    if (input)
        assert_int_equal(cc_write_all(in[1], input, strlen(input)), 0);
    close(in[1]);

    bool out_eof = false, err_eof = false;
    while (!out_eof || !err_eof) {
        struct pollfd p[2] = {{.fd = out_eof ? -1 : out[0], .events = POLLIN},
                              {.fd = err_eof ? -1 : err[0], .events = POLLIN}};
        int r = poll(p, 2, 10000);
        if (r <= 0)
            fail_msg("the shim's stdout/stderr did not reach EOF within 10 s");
        if (p[0].revents)
            drain(out[0], &ret->out, &ret->out_len, &out_eof);
        if (p[1].revents) {
            size_t len = ret->err ? strlen(ret->err) : 0;
            drain(err[0], &ret->err, &len, &err_eof);
        }
    }
    close(out[0]);
    close(err[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_true(WIFEXITED(status));
    ret->status = WEXITSTATUS(status);
    ret->seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    if (!ret->out)
        ret->out = cc_xstrdup("");
    if (!ret->err)
        ret->err = cc_xstrdup("");
}

static void
run_start(const char *bundle, const char *id, const char *input, const char *fake_out,
          run_result *ret)
{
    char *argv[] = {(char *)"containerd-shim-cloak-v2",
                    (char *)"-namespace",
                    (char *)TEST_NS,
                    (char *)"-address",
                    (char *)TEST_ADDRESS,
                    (char *)"-publish-binary",
                    (char *)TEST_PUBLISH,
                    (char *)"-id",
                    (char *)id,
                    (char *)"-debug",
                    (char *)"start",
                    NULL};
    run_shim(bundle, argv, input, fake_out, ret);
}

static void
run_delete(const char *bundle, const char *id, run_result *ret)
{
    char *argv[] = {(char *)"containerd-shim-cloak-v2",
                    (char *)"-namespace",
                    (char *)TEST_NS,
                    (char *)"-address",
                    (char *)TEST_ADDRESS,
                    (char *)"-publish-binary",
                    (char *)TEST_PUBLISH,
                    (char *)"-id",
                    (char *)id,
                    (char *)"-bundle",
                    (char *)bundle,
                    (char *)"delete",
                    NULL};
    run_shim(bundle, argv, NULL, NULL, ret);
}

/* The report the fake daemon wrote to path, waiting up to 5 s for it. */
static char *
wait_report(const char *path)
{
    for (int i = 0; i < 500; i++) {
        char *s = read_text(path);
        if (s)
            return s;
        usleep(10000);
    }
    fail_msg("the fake daemon wrote no report to '%s'", path);
    return NULL;
}

static void
assert_report_has(const char *report, const char *key, const char *value)
{
    _cleanup_free_ char *line = cc_xasprintf("\n%s=%s\n", key, value);
    if (!strstr(report, line))
        fail_msg("report lacks '%s=%s':%s", key, value, report);
}

static pid_t
report_pid(const char *report)
{
    const char *p = strstr(report, "\npid=");
    assert_non_null(p);
    return (pid_t)atoi(p + 5);
}

static char *
socket_path(const char *address)
{
    const char *p = cc_startswith(address, "unix://");
    assert_non_null(p);
    return cc_xstrdup(p);
}

static bool
socket_listens(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    return connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
}

/* Reaps pid (our child, or reparented to us as the subreaper) and returns its wait status. */
static int
reap(pid_t pid)
{
    int status = 0;
    for (int i = 0; i < 500; i++) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return status;
        assert_int_equal(r, 0);
        usleep(10000);
    }
    fail_msg("process %d did not exit", (int)pid);
    return 0;
}

static bool
process_alive(pid_t pid)
{
    int status;
    return waitpid(pid, &status, WNOHANG) == 0;
}

static void
assert_delete_response(const run_result *r)
{
    assert_int_equal(r->status, 0);
    Containerd__Task__V2__DeleteResponse *resp =
        containerd__task__v2__delete_response__unpack(NULL, r->out_len, (const uint8_t *)r->out);
    assert_non_null(resp);
    assert_int_equal(resp->pid, 0);
    assert_int_equal(resp->exit_status, 137);
    assert_non_null(resp->exited_at);
    time_t now = time(NULL);
    assert_true(resp->exited_at->seconds >= now - 10 && resp->exited_at->seconds <= now + 1);
    assert_true(resp->exited_at->nanos >= 0 && resp->exited_at->nanos < 1000000000);
    containerd__task__v2__delete_response__free_unpacked(resp, NULL);
}

/*
 * Removes what a test may have left behind for group: its daemon (when it is our child, as
 * the subreaper), socket and state dir.
 */
static void
cleanup_group(const char *group)
{
    _cleanup_free_ char *address = shim_socket_address(TEST_ADDRESS, TEST_NS, group);
    _cleanup_free_ char *state = shim_state_dir(TEST_ADDRESS, TEST_NS, group);
    _cleanup_free_ char *pidfile = cc_xasprintf("%s/shim.pid", state);
    _cleanup_free_ char *pid_text = read_text(pidfile);
    int status;

    if (pid_text) {
        pid_t pid = (pid_t)atoi(pid_text);
        if (pid > 0 && waitpid(pid, &status, WNOHANG) == 0) {
            kill(pid, SIGKILL);
            (void)waitpid(pid, &status, 0);
        }
    }
    (void)unlink(address + strlen("unix://"));
    _cleanup_close_ int root = open(SHIM_STATE_ROOT, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root >= 0)
        (void)cc_rm_rf_at(root, strrchr(state, '/') + 1, NULL);
}

/* After each end-to-end test, even a failed one. */
static int
cleanup_all(void **state)
{
    static const char *const names[] = {"pod", "app", "stale", "fail", "strangers", "other",
                                        "nobundle"};
    for (size_t k = 0; k < ELEMENTSOF(names); k++) {
        _cleanup_free_ char *id = test_id(names[k]);
        cleanup_group(id);
    }
    return 0;
}

/* ---- argv --------------------------------------------------------------------------------- */

#define ARGV(...) ((char *[]){(char *)"containerd-shim-cloak-v2", __VA_ARGS__, NULL})

/* shim_args_parse on a NULL-terminated argv; *msg gets the error message. */
static int
parse(char **argv, shim_args *a, char **msg)
{
    _cleanup_error_ cc_error *err = NULL;
    int argc = 0;
    while (argv[argc])
        argc++;
    int r = shim_args_parse(argc, argv, a, &err);
    if (msg)
        *msg = r < 0 ? cc_xstrdup(cc_error_message(err)) : NULL;
    return r;
}

static void
test_args_containerd_start(void **state)
{
    /* Exactly what containerd 1.6.20 runs (§2.2). */
    char **v = ARGV("-namespace", "k8s.io", "-address", "/run/containerd/containerd.sock",
                    "-publish-binary", "/usr/bin/containerd", "-id", "abc", "-debug", "start");
    shim_args a;
    assert_int_equal(parse(v, &a, NULL), 0);
    assert_string_equal(a.namespace_, "k8s.io");
    assert_string_equal(a.address, "/run/containerd/containerd.sock");
    assert_string_equal(a.publish_binary, "/usr/bin/containerd");
    assert_string_equal(a.id, "abc");
    assert_true(a.debug);
    assert_false(a.version);
    assert_null(a.bundle);
    assert_null(a.socket);
    assert_string_equal(a.action, "start");
    assert_ptr_equal(a.id, v[8]); /* points into argv */

    /* Without -debug. */
    char **w = ARGV("-namespace", "default", "-address", "/a.sock", "-publish-binary", "/c",
                    "-id", "x", "start");
    assert_int_equal(parse(w, &a, NULL), 0);
    assert_false(a.debug);
    assert_string_equal(a.action, "start");
}

static void
test_args_containerd_delete(void **state)
{
    /* Exactly what containerd 1.6.20 runs (§2.4). */
    char **v = ARGV("-namespace", "k8s.io", "-address", "/run/containerd/containerd.sock",
                    "-publish-binary", "/usr/bin/containerd", "-id", "abc", "-bundle",
                    "/run/containerd/io.containerd.runtime.v2.task/k8s.io/abc", "delete");
    shim_args a;
    assert_int_equal(parse(v, &a, NULL), 0);
    assert_string_equal(a.action, "delete");
    assert_string_equal(a.bundle, "/run/containerd/io.containerd.runtime.v2.task/k8s.io/abc");
    assert_string_equal(a.id, "abc");
    assert_false(a.debug);
}

static void
test_args_daemon_shapes(void **state)
{
    shim_args a;

    /* The daemon: no action; -f=v, --f v, --f=v mixed. */
    char **v = ARGV("--namespace=ns", "-id=i", "--address", "/x", "-publish-binary=/p",
                    "--socket", "unix:///s", "--bundle=/b", "--debug");
    assert_int_equal(parse(v, &a, NULL), 0);
    assert_null(a.action);
    assert_string_equal(a.namespace_, "ns");
    assert_string_equal(a.id, "i");
    assert_string_equal(a.address, "/x");
    assert_string_equal(a.publish_binary, "/p");
    assert_string_equal(a.socket, "unix:///s");
    assert_string_equal(a.bundle, "/b");
    assert_true(a.debug);

    /* Boolean values, last one wins; values may start with '-' and contain '='. */
    char **w = ARGV("-debug=true", "-debug=0", "-namespace", "-weird", "-id", "a=b", "-address",
                    "");
    /* -address "" is given but empty: missing. */
    assert_int_equal(parse(w, &a, NULL), -EINVAL);
    char **w2 = ARGV("-debug=true", "-debug=0", "-namespace", "-weird", "-id", "a=b", "-address",
                     "x", "-debug=T", "-debug=False");
    assert_int_equal(parse(w2, &a, NULL), 0);
    assert_false(a.debug);
    assert_string_equal(a.namespace_, "-weird");
    assert_string_equal(a.id, "a=b");
    char **w3 = ARGV("-namespace", "n", "-id", "i", "-address", "x", "-debug=1");
    assert_int_equal(parse(w3, &a, NULL), 0);
    assert_true(a.debug);

    /* "--" ends the flags; what follows is the action, and anything after it is ignored. */
    char **x = ARGV("-namespace", "n", "-id", "i", "-address", "x", "--", "delete", "-zzz",
                    "extra");
    assert_int_equal(parse(x, &a, NULL), 0);
    assert_string_equal(a.action, "delete");
    char **x2 = ARGV("-namespace", "n", "-id", "i", "-address", "x", "--");
    assert_int_equal(parse(x2, &a, NULL), 0);
    assert_null(a.action);
    char **x3 = ARGV("-namespace", "n", "-id", "i", "-address", "x", "start", "-debug");
    assert_int_equal(parse(x3, &a, NULL), 0);
    assert_string_equal(a.action, "start");
    assert_false(a.debug);

    /* Version: nothing else required. */
    char **y = ARGV("-v");
    assert_int_equal(parse(y, &a, NULL), 0);
    assert_true(a.version);
    char **y2 = ARGV("--version");
    assert_int_equal(parse(y2, &a, NULL), 0);
    assert_true(a.version);
    char **y3 = ARGV("-v=false");
    assert_int_equal(parse(y3, &a, NULL), -EINVAL);

    /* Untouched on failure. */
    shim_args keep = {.id = "keep"};
    char **z = ARGV("-bogus");
    assert_int_equal(parse(z, &keep, NULL), -EINVAL);
    assert_string_equal(keep.id, "keep");
}

static void
expect_einval(char **argv, const char *needle)
{
    shim_args a;
    _cleanup_free_ char *msg = NULL;
    assert_int_equal(parse(argv, &a, &msg), -EINVAL);
    if (!strstr(msg, needle))
        fail_msg("error '%s' does not mention '%s'", msg, needle);
}

static void
test_args_errors(void **state)
{
    expect_einval(ARGV("-namespace", "n", "-id", "i"), "-address");
    expect_einval(ARGV("-namespace", "n", "-address", "a"), "-id");
    expect_einval(ARGV("-id", "i", "-address", "a"), "-namespace");
    expect_einval(ARGV("-namespace", "", "-id", "i", "-address=a"), "-namespace");
    expect_einval(ARGV("-namespace", "n", "-id", "i", "-address", "a", "-nope"), "-nope");
    expect_einval(ARGV("-namespace", "n", "-id", "i", "-address", "a", "-nope=1"), "-nope");
    expect_einval(ARGV("-namespace", "n", "-address", "a", "-publish-binary", "-id"), "-id");
    expect_einval(ARGV("-namespace", "n", "-id", "i", "-address"), "needs an argument: -address");
    expect_einval(ARGV("-namespace", "n", "-id", "i", "-address", "a", "-debug=maybe"),
                  "maybe");
    expect_einval(ARGV("-namespace", "n", "-id", "i", "-address", "a", "stop"), "stop");
    expect_einval(ARGV("-namespace", "n", "-id", "i", "-address", "a", "-"), "'-'");
    expect_einval(ARGV("-namespace", "n", "-id", "i", "-address", "a", "---x"), "syntax");
    expect_einval(ARGV("-namespace", "n", "-id", "i", "-address", "a", "-=x"), "syntax");
    /* A bool does not take the next argument: "false" becomes the (unknown) action. */
    expect_einval(ARGV("-namespace", "n", "-id", "i", "-address", "a", "-debug", "false"),
                  "false");
    /* The help flags are not ours. */
    expect_einval(ARGV("-namespace", "n", "-id", "i", "-address", "a", "-h"), "-h");
}

/* ---- addresses ---------------------------------------------------------------------------- */

static void
expect_address(const char *addr, const char *ns, const char *group, const char *hex)
{
    _cleanup_free_ char *got = shim_socket_address(addr, ns, group);
    _cleanup_free_ char *want = cc_xasprintf("unix:///run/containerd/s/%s", hex);
    assert_string_equal(got, want);
}

static void
test_socket_address(void **state)
{
    /* Golden values from Go 1.19: sha256.Sum256([]byte(filepath.Join(a, ns, group))). */
    expect_address("/run/containerd/containerd.sock", "default", "abc",
                   "8cb244a719603fe00870d5ce1d8e1f1db43a654cb993d107df1f1ae23ddffa59");
    expect_address("/run/containerd/containerd.sock", "k8s.io",
                   "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                   "428e2faf0a8621e508bdf59b20b756691d7b9e23d6f777125dc830568aeab725");
    /* Cleaned: "/run/containerd/containerd.sock/k8s.io/x". */
    expect_address("/run/containerd//containerd.sock/", "./k8s.io", "../k8s.io/x",
                   "f4387a886804a7f6b2a0bdfb71552d9a9ebe98742a803b1b2ef60583547245f0");
    /* "../x", "/x", "default/abc" */
    expect_address("relative/sock", "..", "../../x",
                   "d6b96a97d147daaae49eb87a5ca7bfbc280e79551016df8aa5edc5920d21c274");
    expect_address("/", "..", "x",
                   "b3d1db318671a024a7e4b433389f8820d6ca466e2cf700afc29f37ed64f2fa0d");
    expect_address("", "default", "abc",
                   "0531dfd4f71e7d2a923fd36fc57ffa0e9941aeaa852ec967d2987d93d881347a");

    /* A 76-character namespace (containerd's maximum) and a 64-character id still fit. */
    const char *ns = "n123456789n123456789n123456789n123456789n123456789n123456789n123456789n12345";
    const char *id = "f123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    assert_int_equal(strlen(ns), 76);
    assert_int_equal(strlen(id), 64);
    expect_address("/run/containerd/containerd.sock", ns, id,
                   "cfb7095689bcc52749ed54533c9226c286aa277699a9d72c06572fc6b94d2ad3");
    _cleanup_free_ char *a = shim_socket_address("/run/containerd/containerd.sock", ns, id);
    struct sockaddr_un sa;
    assert_true(strlen(a) - strlen("unix://") < 106);
    assert_true(strlen(a) - strlen("unix://") < sizeof(sa.sun_path));
}

static void
test_state_dir(void **state)
{
    _cleanup_free_ char *d = shim_state_dir("/run/containerd/containerd.sock", "default", "abc");
    assert_string_equal(d, "/run/cloak/shim/8cb244a719603fe00870d5ce1d8e1f1d");
    _cleanup_free_ char *e = shim_state_dir("/run/containerd/containerd.sock", "default", "abd");
    assert_string_not_equal(d, e);
    /* Short enough for <state>/agent.sock and qmp.sock. */
    assert_true(strlen(d) + strlen("/agent.sock") < 60);
}

static void
test_group_id(void **state)
{
    _cleanup_json_ json_t *none = json_pack("{s:s}", "ociVersion", "1.0.2");
    _cleanup_json_ json_t *empty_ann = json_pack("{s:{}}", "annotations");
    _cleanup_json_ json_t *sandbox =
        json_pack("{s:{s:s}}", "annotations", "io.kubernetes.cri.sandbox-id", "pod1");
    _cleanup_json_ json_t *blank =
        json_pack("{s:{s:s}}", "annotations", "io.kubernetes.cri.sandbox-id", "");
    _cleanup_json_ json_t *wrong_type =
        json_pack("{s:{s:i}}", "annotations", "io.kubernetes.cri.sandbox-id", 3);
    _cleanup_json_ json_t *ann_not_object = json_pack("{s:[]}", "annotations");

    assert_string_equal(shim_group_id(NULL, "c1"), "c1");
    assert_string_equal(shim_group_id(none, "c1"), "c1");
    assert_string_equal(shim_group_id(empty_ann, "c1"), "c1");
    assert_string_equal(shim_group_id(sandbox, "c1"), "pod1");
    assert_string_equal(shim_group_id(blank, "c1"), "c1");
    assert_string_equal(shim_group_id(wrong_type, "c1"), "c1");
    assert_string_equal(shim_group_id(ann_not_object, "c1"), "c1");
}

/* ---- start and delete end to end ---------------------------------------------------------- */

static void
test_start_and_delete_pod(void **state)
{
    _cleanup_free_ char *sid = test_id("pod");
    _cleanup_free_ char *cid = test_id("app");
    _cleanup_free_ char *sbundle = make_bundle("pod", sid, "sandbox");
    _cleanup_free_ char *cbundle = make_bundle("app", sid, "container");
    _cleanup_free_ char *report1 = cc_xasprintf("%s/report-pod", tmp);
    _cleanup_free_ char *report2 = cc_xasprintf("%s/report-app", tmp);
    _cleanup_free_ char *address = shim_socket_address(TEST_ADDRESS, TEST_NS, sid);
    _cleanup_free_ char *sock = socket_path(address);
    _cleanup_free_ char *state_dir = shim_state_dir(TEST_ADDRESS, TEST_NS, sid);
    run_result r;
    struct stat st;

    /* The sandbox: a new daemon. */
    run_start(sbundle, sid, "options-any-bytes", report1, &r);
    if (r.status != 0)
        fail_msg("start failed (%d): %s", r.status, r.err);
    assert_string_equal(r.out, address); /* only the address, no newline */
    assert_string_equal(r.err, "");      /* nothing on stderr */
    assert_true(r.seconds < 5);
    run_result_done(&r);

    _cleanup_free_ char *afile = cc_xasprintf("%s/address", sbundle);
    _cleanup_free_ char *acontent = read_text(afile);
    assert_non_null(acontent);
    assert_string_equal(acontent, address);
    _cleanup_free_ char *ofile = cc_xasprintf("%s/cloak-options", sbundle);
    _cleanup_free_ char *ocontent = read_text(ofile);
    assert_non_null(ocontent);
    assert_string_equal(ocontent, "options-any-bytes");

    assert_int_equal(lstat(sock, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_true(socket_listens(sock));

    _cleanup_free_ char *rep = wait_report(report1);
    pid_t daemon = report_pid(rep);
    assert_report_has(rep, "argv[0]", self_exe);
    assert_report_has(rep, "argv[1]", "-namespace");
    assert_report_has(rep, "argv[2]", TEST_NS);
    assert_report_has(rep, "argv[3]", "-id");
    assert_report_has(rep, "argv[4]", sid);
    assert_report_has(rep, "argv[5]", "-address");
    assert_report_has(rep, "argv[6]", TEST_ADDRESS);
    assert_report_has(rep, "argv[7]", "-publish-binary");
    assert_report_has(rep, "argv[8]", TEST_PUBLISH);
    assert_report_has(rep, "argv[9]", "-debug");
    assert_null(strstr(rep, "argv[10]="));
    assert_report_has(rep, "fd3_socket", "1");
    assert_report_has(rep, "fd3_listening", "1");
    assert_report_has(rep, "fd3_path", sock);
    assert_report_has(rep, "fd3_cloexec", "0");
    assert_report_has(rep, "stdio_devnull", "1");
    assert_report_has(rep, "cwd", sbundle);
    assert_report_has(rep, "pgid_is_pid", "1");
    assert_report_has(rep, "extra_fds", "0");
    assert_true(process_alive(daemon)); /* reparented to us, the subreaper */

    /* oom_score_adj = ours + 1 (start sets it before printing the address). */
    _cleanup_free_ char *ours = read_text("/proc/self/oom_score_adj");
    _cleanup_free_ char *opath = cc_xasprintf("/proc/%d/oom_score_adj", (int)daemon);
    _cleanup_free_ char *theirs = read_text(opath);
    assert_non_null(ours);
    assert_non_null(theirs);
    if (atoi(ours) < 1000)
        assert_int_equal(atoi(theirs), atoi(ours) + 1);

    /* An app container of the same pod: the same address, no second daemon. */
    run_start(cbundle, cid, "", report2, &r);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, address);
    assert_string_equal(r.err, "");
    run_result_done(&r);
    _cleanup_free_ char *afile2 = cc_xasprintf("%s/address", cbundle);
    _cleanup_free_ char *acontent2 = read_text(afile2);
    assert_non_null(acontent2);
    assert_string_equal(acontent2, address);
    usleep(200000);
    assert_int_equal(access(report2, F_OK), -1);
    assert_true(process_alive(daemon));
    assert_true(socket_listens(sock));

    /* Deleting the app container touches nothing on the host. */
    run_delete(cbundle, cid, &r);
    assert_delete_response(&r);
    assert_string_equal(r.err, "");
    run_result_done(&r);
    assert_true(process_alive(daemon));
    assert_int_equal(lstat(sock, &st), 0);
    assert_int_equal(access(state_dir, F_OK), 0);

    /* Deleting the sandbox kills the daemon and removes its state dir and socket, fast. */
    run_delete(sbundle, sid, &r);
    assert_delete_response(&r);
    assert_string_equal(r.err, "");
    assert_true(r.seconds < 5);
    run_result_done(&r);
    int status = reap(daemon);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);
    assert_int_equal(access(state_dir, F_OK), -1);
    assert_int_equal(lstat(sock, &st), -1);

    /* Idempotent. */
    run_delete(sbundle, sid, &r);
    assert_delete_response(&r);
    assert_true(r.seconds < 5);
    run_result_done(&r);

}

static void
test_start_stale_socket(void **state)
{
    _cleanup_free_ char *id = test_id("stale");
    _cleanup_free_ char *bundle = make_bundle("stale", NULL, NULL);
    _cleanup_free_ char *report = cc_xasprintf("%s/report-stale", tmp);
    _cleanup_free_ char *address = shim_socket_address(TEST_ADDRESS, TEST_NS, id);
    _cleanup_free_ char *sock = socket_path(address);
    run_result r;
    struct stat st;

    /* A socket file nobody listens on, as a crashed shim leaves behind. */
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(fd);
    assert_false(socket_listens(sock));

    run_start(bundle, id, NULL, report, &r);
    if (r.status != 0)
        fail_msg("start failed (%d): %s", r.status, r.err);
    assert_string_equal(r.out, address);
    assert_string_equal(r.err, "");
    run_result_done(&r);
    _cleanup_free_ char *rep = wait_report(report);
    pid_t daemon = report_pid(rep);
    assert_true(socket_listens(sock));
    assert_int_equal(lstat(sock, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_report_has(rep, "fd3_listening", "1");

    /* No annotations: a standalone container is its own pod; delete takes all down. */
    run_delete(bundle, id, &r);
    assert_delete_response(&r);
    run_result_done(&r);
    int status = reap(daemon);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(lstat(sock, &st), -1);
}

static void
test_start_failure(void **state)
{
    _cleanup_free_ char *id = test_id("fail");
    _cleanup_free_ char *bundle = make_bundle("fail", NULL, NULL);
    _cleanup_free_ char *report = cc_xasprintf("%s/report-fail", tmp);
    _cleanup_free_ char *address = shim_socket_address(TEST_ADDRESS, TEST_NS, id);
    _cleanup_free_ char *sock = socket_path(address);
    _cleanup_free_ char *cfg = cc_xasprintf("%s/config.json", bundle);
    run_result r;
    struct stat st;

    /* A broken config.json: exit 1 with a message, no socket left behind, no daemon. */
    _cleanup_close_ int dfd = open(bundle, O_PATH | O_DIRECTORY | O_CLOEXEC);
    assert_int_equal(cc_write_file_atomic(dfd, "config.json", "{", 1, 0644, NULL), 0);
    run_start(bundle, id, NULL, report, &r);
    assert_int_equal(r.status, 1);
    assert_true(strlen(r.out) + strlen(r.err) > 0);
    assert_non_null(strstr(r.err, "config.json"));
    run_result_done(&r);
    assert_int_equal(lstat(sock, &st), -1);

    /* A daemon binary that cannot be executed: the error is reported, the socket removed. */
    assert_int_equal(unlink(cfg), 0);
    char *saved = self_exe;
    self_exe = cc_xasprintf("%s/no-such-binary", tmp);
    run_start(bundle, id, NULL, report, &r);
    free(self_exe);
    self_exe = saved;
    assert_int_equal(r.status, 1);
    assert_string_equal(r.out, "");
    assert_non_null(strstr(r.err, "no-such-binary"));
    run_result_done(&r);
    assert_int_equal(lstat(sock, &st), -1);
}

/* Spawns the fake daemon by hand with the given -id (pidfile off), as a decoy. */
static pid_t
spawn_decoy(const char *exe, const char *ns, const char *id, const char *action)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setenv("CLOAK_TEST_FAKE_NO_PIDFILE", "1", 1);
        unsetenv("CLOAK_TEST_FAKE_OUT");
        execl(exe, exe, "-namespace", ns, "-id", id, "-address", TEST_ADDRESS, action,
              (char *)NULL);
        _exit(127);
    }
    usleep(100000); /* exec'd: the cmdline is the new one */
    return pid;
}

static void
write_pidfile(const char *state_dir, pid_t pid)
{
    _cleanup_free_ char *text = cc_xasprintf("%d\n", (int)pid);
    (void)mkdir("/run/cloak", 0711);
    (void)mkdir(SHIM_STATE_ROOT, 0711);
    (void)mkdir(state_dir, 0700);
    _cleanup_close_ int dfd = open(state_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    assert_true(dfd >= 0);
    assert_int_equal(cc_write_file_atomic(dfd, "shim.pid", text, strlen(text), 0644, NULL), 0);
}

static void
test_delete_never_kills_strangers(void **state)
{
    _cleanup_free_ char *id = test_id("strangers");
    _cleanup_free_ char *other = test_id("other");
    _cleanup_free_ char *bundle = make_bundle("strangers", id, "sandbox");
    _cleanup_free_ char *state_dir = shim_state_dir(TEST_ADDRESS, TEST_NS, id);
    _cleanup_free_ char *not_shim = cc_xasprintf("%s/" NOT_THE_SHIM, tmp);
    run_result r;

    assert_int_equal(symlink(self_exe, not_shim), 0);
    /* The fake daemon binary, but for another id, another namespace, or with an action. */
    pid_t decoys[] = {
        spawn_decoy(self_exe, TEST_NS, other, NULL),
        spawn_decoy(self_exe, "other-ns", id, NULL),
        spawn_decoy(self_exe, TEST_NS, id, "delete"),
        spawn_decoy(self_exe, TEST_NS, id, "start"),
    };
    /* The right flags, but not our binary's name (it is a cmocka run of this test). */
    pid_t plain = spawn_decoy(not_shim, TEST_NS, id, NULL);

    for (size_t k = 0; k < ELEMENTSOF(decoys); k++) {
        write_pidfile(state_dir, decoys[k]);
        run_delete(bundle, id, &r);
        assert_delete_response(&r);
        run_result_done(&r);
        assert_true(process_alive(decoys[k]));
    }
    write_pidfile(state_dir, plain);
    run_delete(bundle, id, &r);
    assert_delete_response(&r);
    run_result_done(&r);
    assert_true(process_alive(plain));
    kill(plain, SIGKILL);
    (void)reap(plain);

    /* Garbage and a dead pid are ignored (with a warning for garbage). */
    _cleanup_close_ int dfd = -EBADF;
    (void)mkdir(state_dir, 0700);
    dfd = open(state_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    assert_int_equal(cc_write_file_atomic(dfd, "shim.pid", "garbage", 7, 0644, NULL), 0);
    run_delete(bundle, id, &r);
    assert_delete_response(&r);
    assert_non_null(strstr(r.err, "warning"));
    run_result_done(&r);
    assert_int_equal(access(state_dir, F_OK), -1);

    for (size_t k = 0; k < ELEMENTSOF(decoys); k++) {
        assert_true(process_alive(decoys[k]));
        kill(decoys[k], SIGKILL);
        (void)reap(decoys[k]);
    }
}

static void
test_delete_without_bundle(void **state)
{
    _cleanup_free_ char *id = test_id("nobundle");
    _cleanup_free_ char *bundle = cc_xasprintf("%s/nobundle", tmp);
    run_result r;

    /* containerd removed the bundle already: still a clean response. */
    assert_int_equal(mkdir(bundle, 0700), 0);
    run_delete(bundle, id, &r);
    assert_delete_response(&r);
    assert_string_equal(r.err, "");
    run_result_done(&r);
}

/* ---- main --------------------------------------------------------------------------------- */

static int
setup(void **state)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n < 0 || !mkdtemp(tmp))
        return -1;
    exe[n] = 0;
    self_exe = cc_xasprintf("%s/%s", tmp, FAKE_NAME);
    return symlink(exe, self_exe);
}

static int
teardown(void **state)
{
    _cleanup_free_ char *cmd = cc_xasprintf("rm -rf '%s'", tmp);
    free(self_exe);
    if (!state_root_existed)
        (void)rmdir(SHIM_STATE_ROOT);
    if (!cloak_run_existed)
        (void)rmdir("/run/cloak");
    return system(cmd);
}

int
main(int argc, char **argv)
{
    const char *base = strrchr(argv[0], '/');
    base = base ? base + 1 : argv[0];
    if (strcmp(base, FAKE_NAME) == 0 || strcmp(base, NOT_THE_SHIM) == 0)
        return fake_daemon(argc, argv);

    const struct CMUnitTest unit[] = {
        cmocka_unit_test(test_args_containerd_start),
        cmocka_unit_test(test_args_containerd_delete),
        cmocka_unit_test(test_args_daemon_shapes),
        cmocka_unit_test(test_args_errors),
        cmocka_unit_test(test_socket_address),
        cmocka_unit_test(test_state_dir),
        cmocka_unit_test(test_group_id),
    };
    const struct CMUnitTest e2e[] = {
        cmocka_unit_test_teardown(test_start_and_delete_pod, cleanup_all),
        cmocka_unit_test_teardown(test_start_stale_socket, cleanup_all),
        cmocka_unit_test_teardown(test_start_failure, cleanup_all),
        cmocka_unit_test_teardown(test_delete_never_kills_strangers, cleanup_all),
        cmocka_unit_test_teardown(test_delete_without_bundle, cleanup_all),
    };
    int r = cmocka_run_group_tests_name("contract", unit, NULL, NULL);
    if (geteuid() != 0) {
        fprintf(stderr, "# start/delete end to end need root (/run/containerd/s): skipped\n");
        return r ? r : 77;
    }
    state_root_existed = access(SHIM_STATE_ROOT, F_OK) == 0;
    cloak_run_existed = access("/run/cloak", F_OK) == 0;
    /* Orphaned fake daemons come back to us, so the tests can see how they died. */
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
        return 1;
    return r + cmocka_run_group_tests_name("contract-e2e", e2e, setup, teardown);
}
