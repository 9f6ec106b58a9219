/* SPDX-License-Identifier: Apache-2.0 */
/*
 * guest/validate.c and agent_storages_validate() (guest/storage.c): what host input the agent
 * refuses before touching anything. A real agent on a temporary base; nothing mounts.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
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
    cc_loop *loop;
    agent *a;
} fixture;

static int
setup(void **state)
{
    static const int sigs[] = {SIGCHLD};
    fixture *f = cc_xzalloc(sizeof(*f));

    umask(022);
    snprintf(f->tmp, sizeof(f->tmp), "/tmp/cloak-test-validate-XXXXXX");
    if (!mkdtemp(f->tmp))
        return -1;
    snprintf(f->base, sizeof(f->base), "%s/base", f->tmp);
    snprintf(f->state_dir, sizeof(f->state_dir), "%s/state", f->tmp);
    snprintf(f->pause, sizeof(f->pause), "%s/pause", f->tmp);
    /* agent_new keeps these pointers: they live in the fixture */
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

static int
teardown(void **state)
{
    fixture *f = *state;
    agent_free(f->a);
    cc_loop_free(f->loop);
    _cleanup_close_ int tmp_fd = open("/tmp", O_PATH | O_DIRECTORY | O_CLOEXEC);
    int r = cc_rm_rf_at(tmp_fd, f->tmp + strlen("/tmp/"), NULL);
    free(f);
    return r;
}

static char *
base_path(const fixture *f, const char *rel)
{
    return cc_xasprintf("%s%s", f->base, rel);
}

/* r is code, and the error names `needle` (and carries the same code). */
#define assert_error(r, err, want, needle)                                                         \
    do {                                                                                           \
        int _r = (r);                                                                              \
        if (_r != (want) || !(err) || (err)->code != _r ||                                         \
            !strstr(cc_error_message(err), (needle)))                                              \
            fail_msg("expected %d naming '%s', got %d (err code %d): %s", (want), (needle), _r,    \
                     (err) ? (err)->code : 0, cc_error_message(err));                              \
        (err) = cc_error_free(err);                                                                \
    } while (0)

/* --- agent_validate_id ------------------------------------------------------------------------ */

static void
test_id(void **state)
{
    (void)state;
    cc_error *err = NULL;
    char id[AGENT_ID_MAX + 2];

    assert_int_equal(agent_validate_id("abc", "container_id", false, NULL), 0);
    assert_int_equal(agent_validate_id("0", "container_id", false, NULL), 0);
    assert_int_equal(agent_validate_id("A1_b.c-d", "container_id", false, NULL), 0);
    assert_int_equal(
        agent_validate_id("3f2a0c7d9e8b4a1f6c5d2e3b4a5f6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b", "id",
                          false, NULL),
        0);
    memset(id, 'a', AGENT_ID_MAX);
    id[AGENT_ID_MAX] = '\0';
    assert_int_equal(agent_validate_id(id, "id", false, NULL), 0);

    /* empty */
    assert_int_equal(agent_validate_id("", "exec_id", true, NULL), 0);
    assert_int_equal(agent_validate_id(NULL, "exec_id", true, NULL), 0);
    assert_error(agent_validate_id("", "container_id", false, &err), err, -EINVAL,
                 "container_id: missing");
    assert_error(agent_validate_id(NULL, "container_id", false, &err), err, -EINVAL,
                 "container_id: missing");

    /* too long */
    id[AGENT_ID_MAX] = 'a';
    id[AGENT_ID_MAX + 1] = '\0';
    assert_error(agent_validate_id(id, "container_id", false, &err), err, -EINVAL,
                 "container_id: longer than 128");

    static const char *const bad[] = {
        "a/b", "/a", "..", ".", "-a", ".a", "_a", "a b", "a\tb", "a:b", "a\\b",
        "\xc3\xa9", "a\xc3\xa9", "a\xff", "a\n", "a*", "a$b",
    };
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        int r = agent_validate_id(bad[i], "exec_id", true, &err);
        if (r != -EINVAL || !strstr(cc_error_message(err), "exec_id: invalid id"))
            fail_msg("id '%s': %d %s", bad[i], r, cc_error_message(err));
        err = cc_error_free(err);
    }
}

/* --- agent_validate_guest_path ------------------------------------------------------------------ */

static void
test_guest_path(void **state)
{
    fixture *f = *state;
    cc_error *err = NULL;
    const char *rel = NULL;

    _cleanup_free_ char *ok = base_path(f, "/a/b");
    assert_int_equal(agent_validate_guest_path(f->a, ok, "path", &rel, &err), 0);
    assert_null(err);
    assert_string_equal(rel, "a/b");
    assert_ptr_equal(rel, ok + strlen(f->base) + 1); /* points into path */
    _cleanup_free_ char *one = base_path(f, "/x");
    assert_int_equal(agent_validate_guest_path(f->a, one, "path", &rel, NULL), 0);
    assert_string_equal(rel, "x");
    assert_int_equal(agent_validate_guest_path(f->a, one, "path", NULL, NULL), 0);

    /* refused, with *ret_rel untouched */
    _cleanup_free_ char *sibling = base_path(f, "x/y");
    _cleanup_free_ char *sibling2 = base_path(f, "x");
    _cleanup_free_ char *base_slash = base_path(f, "/");
    _cleanup_free_ char *dotdot = base_path(f, "/a/../b");
    _cleanup_free_ char *dotdot_end = base_path(f, "/..");
    _cleanup_free_ char *escape = base_path(f, "/../state/x");
    _cleanup_free_ char *dot = base_path(f, "/./a");
    _cleanup_free_ char *dot_end = base_path(f, "/a/.");
    _cleanup_free_ char *dslash = base_path(f, "//a");
    _cleanup_free_ char *dslash2 = base_path(f, "/a//b");
    _cleanup_free_ char *trailing = base_path(f, "/a/");
    const struct {
        const char *path;
        const char *needle;
    } bad[] = {
        {f->base, "must be below"},
        {sibling, "must be below"},
        {sibling2, "must be below"},
        {base_slash, "absolute path without empty"},
        {dotdot, "absolute path without empty"},
        {dotdot_end, "absolute path without empty"},
        {escape, "absolute path without empty"},
        {dot, "absolute path without empty"},
        {dot_end, "absolute path without empty"},
        {dslash, "absolute path without empty"},
        {dslash2, "absolute path without empty"},
        {trailing, "absolute path without empty"},
        {"run/kata-containers/a", "absolute path without empty"},
        {f->base + 1, "absolute path without empty"},
        {"/", "absolute path without empty"},
        {"/etc/passwd", "must be below"},
        {"", "missing"},
        {NULL, "missing"},
    };
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        rel = "untouched";
        int r = agent_validate_guest_path(f->a, bad[i].path, "OCI.Root.Path", &rel, &err);
        if (r != -EINVAL || !strstr(cc_error_message(err), "OCI.Root.Path: ") ||
            !strstr(cc_error_message(err), bad[i].needle))
            fail_msg("path '%s': %d %s", bad[i].path ? bad[i].path : "(null)", r,
                     cc_error_message(err));
        assert_string_equal(rel, "untouched");
        err = cc_error_free(err);
    }
}

/* --- agent_mkdir_nofollow ------------------------------------------------------------------------ */

static void
test_mkdir_nofollow(void **state)
{
    fixture *f = *state;
    cc_error *err = NULL;
    int fd = -EBADF;
    struct stat st;

    /* nested directories, created */
    assert_int_equal(agent_mkdir_nofollow(f->a->base_fd, "a/b/c", 0750, true, &fd, &err), 0);
    assert_null(err);
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_true((fcntl(fd, F_GETFL) & O_PATH) != 0);
    fd = cc_close(fd);
    assert_int_equal(fstatat(f->a->base_fd, "a/b/c", &st, AT_SYMLINK_NOFOLLOW), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0750);
    assert_int_equal(fstatat(f->a->base_fd, "a", &st, AT_SYMLINK_NOFOLLOW), 0);
    assert_int_equal(st.st_mode & 07777, 0750);

    /* existing, create=false */
    assert_int_equal(agent_mkdir_nofollow(f->a->base_fd, "a/b", 0700, false, &fd, &err), 0);
    fd = cc_close(fd);

    /* a symlink component (to / inside the tree): refused, naming it; nothing made in / */
    _cleanup_free_ char *victim = cc_xasprintf("cloak-test-must-not-exist-%d", (int)getpid());
    _cleanup_free_ char *via_link = cc_xasprintf("a/evil/%s", victim);
    _cleanup_free_ char *in_root = cc_xasprintf("/%s", victim);
    assert_int_equal(symlinkat("/", f->a->base_fd, "a/evil"), 0);
    fd = -1234;
    int r = agent_mkdir_nofollow(f->a->base_fd, via_link, 0755, true, &fd, &err);
    /* agent.h documents -ELOOP; validate.c returns -EINVAL: either way refused */
    if ((r != -EINVAL && r != -ELOOP) || !strstr(cc_error_message(err), "'evil'"))
        fail_msg("symlink component: %d %s", r, cc_error_message(err));
    err = cc_error_free(err);
    assert_int_equal(fd, -1234);
    assert_int_equal(access(in_root, F_OK), -1);
    /* even the last component */
    r = agent_mkdir_nofollow(f->a->base_fd, "a/evil", 0755, false, &fd, &err);
    assert_true(r == -EINVAL || r == -ELOOP);
    assert_non_null(strstr(cc_error_message(err), "'evil'"));
    err = cc_error_free(err);

    /* a file component: ENOTDIR naming it */
    _cleanup_close_ int file = openat(f->a->base_fd, "a/file", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    assert_true(file >= 0);
    assert_error(agent_mkdir_nofollow(f->a->base_fd, "a/file/x", 0755, true, &fd, &err), err,
                 -ENOTDIR, "'file'");
    assert_error(agent_mkdir_nofollow(f->a->base_fd, "a/file", 0755, false, &fd, &err), err,
                 -ENOTDIR, "'file'");

    /* missing, create=false */
    assert_error(agent_mkdir_nofollow(f->a->base_fd, "a/b/missing/x", 0755, false, &fd, &err), err,
                 -ENOENT, "'missing'");
    assert_int_equal(fstatat(f->a->base_fd, "a/b/missing", &st, 0), -1);

    /* not a clean relative path */
    static const char *const bad[] = {"../x", "a/../b", "/a", "a//b", "a/", ".", ""};
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        r = agent_mkdir_nofollow(f->a->base_fd, bad[i], 0755, true, &fd, &err);
        if (r != -EINVAL)
            fail_msg("rel '%s': %d %s", bad[i], r, cc_error_message(err));
        err = cc_error_free(err);
    }
    assert_int_equal(fd, -1234);
}

/* --- agent_validate_spec ----------------------------------------------------------------------- */

/* A valid spec, every part in one struct so a case can break one field. */
typedef struct spec_parts {
    Grpc__Spec spec;
    Grpc__Process process;
    Grpc__User user;
    char *args[2];
    char *env[2];
    Grpc__Root root;
    char *root_path;
    Grpc__Mount proc, bind;
    Grpc__Mount *mounts[2];
    char *bind_options[2];
    char *bind_source;
    Grpc__Hooks hooks;
    Grpc__Hook hook;
    Grpc__Hook *hook_list[1];
    Grpc__Linux linux_;
    Grpc__LinuxNamespace ns[2];
    Grpc__LinuxNamespace *ns_list[2];
    Grpc__LinuxDevice dev;
    Grpc__LinuxDevice *devs[1];
    Grpc__Linux__SysctlEntry sysctl;
    Grpc__Linux__SysctlEntry *sysctls[1];
} spec_parts;

static void
spec_parts_init(spec_parts *p, const fixture *f)
{
    *p = (spec_parts){
        .spec = GRPC__SPEC__INIT,
        .process = GRPC__PROCESS__INIT,
        .user = GRPC__USER__INIT,
        .root = GRPC__ROOT__INIT,
        .proc = GRPC__MOUNT__INIT,
        .bind = GRPC__MOUNT__INIT,
        .hooks = GRPC__HOOKS__INIT,
        .hook = GRPC__HOOK__INIT,
        .linux_ = GRPC__LINUX__INIT,
        .ns = {GRPC__LINUX_NAMESPACE__INIT, GRPC__LINUX_NAMESPACE__INIT},
        .dev = GRPC__LINUX_DEVICE__INIT,
        .sysctl = GRPC__LINUX__SYSCTL_ENTRY__INIT,
    };
    p->root_path = base_path(f, "/c1/rootfs");
    p->bind_source = base_path(f, "/shared/c1-hosts");

    p->args[0] = "/bin/sh";
    p->args[1] = "-c";
    p->env[0] = "PATH=/usr/bin:/bin";
    p->env[1] = "EMPTY=";
    p->process.args = p->args;
    p->process.n_args = 2;
    p->process.env = p->env;
    p->process.n_env = 2;
    p->process.cwd = "/";
    p->process.user = &p->user;
    p->process.oomscoreadj = 1000;
    p->spec.process = &p->process;

    p->root.path = p->root_path;
    p->spec.root = &p->root;
    p->spec.hostname = "pod";

    p->proc.destination = "/proc";
    p->proc.source = "proc";
    p->proc.type = "proc";
    p->bind.destination = "/etc/hosts";
    p->bind.source = p->bind_source;
    p->bind.type = "bind";
    p->bind_options[0] = "rbind";
    p->bind_options[1] = "ro";
    p->bind.options = p->bind_options;
    p->bind.n_options = 2;
    p->mounts[0] = &p->proc;
    p->mounts[1] = &p->bind;
    p->spec.mounts = p->mounts;
    p->spec.n_mounts = 2;

    p->hook.path = "/usr/bin/true";
    p->hook_list[0] = &p->hook;

    p->ns[0].type = "pid";
    p->ns[1].type = "mount";
    p->ns_list[0] = &p->ns[0];
    p->ns_list[1] = &p->ns[1];
    p->linux_.namespaces = p->ns_list;
    p->linux_.n_namespaces = 2;
    p->dev.path = "/dev/fuse";
    p->dev.type = "c";
    p->dev.major = 10;
    p->dev.minor = 229;
    p->devs[0] = &p->dev;
    p->linux_.devices = p->devs;
    p->linux_.n_devices = 0; /* guest devices are refused (see "device" below) */
    p->sysctl.key = "net.ipv4.ip_unprivileged_port_start";
    p->sysctl.value = "0";
    p->sysctls[0] = &p->sysctl;
    p->linux_.sysctl = p->sysctls;
    p->linux_.n_sysctl = 1;
    p->spec.linux = &p->linux_;
}

static void
spec_parts_done(spec_parts *p)
{
    free(p->root_path);
    free(p->bind_source);
}

typedef struct spec_case {
    const char *name;
    void (*mutate)(spec_parts *p, const fixture *f);
    int code;
    const char *needle;
} spec_case;

static void
no_process(spec_parts *p, const fixture *f)
{
    (void)f;
    p->spec.process = NULL;
}

static void
no_args(spec_parts *p, const fixture *f)
{
    (void)f;
    p->process.n_args = 0;
}

static void
empty_arg0(spec_parts *p, const fixture *f)
{
    (void)f;
    p->args[0] = "";
}

static void
relative_cwd(spec_parts *p, const fixture *f)
{
    (void)f;
    p->process.cwd = "tmp";
}

static void
empty_cwd(spec_parts *p, const fixture *f)
{
    (void)f;
    p->process.cwd = "";
}

static void
env_no_equals(spec_parts *p, const fixture *f)
{
    (void)f;
    p->env[1] = "JUSTANAME";
}

static void
env_empty_name(spec_parts *p, const fixture *f)
{
    (void)f;
    p->env[0] = "=value";
}

static void
username(spec_parts *p, const fixture *f)
{
    (void)f;
    p->user.username = "root";
}

static void
no_root(spec_parts *p, const fixture *f)
{
    (void)f;
    p->spec.root = NULL;
}

static void
root_outside(spec_parts *p, const fixture *f)
{
    (void)f;
    p->root.path = "/";
}

static void
root_is_base(spec_parts *p, const fixture *f)
{
    p->root.path = (char *)f->base;
}

static void
root_dotdot(spec_parts *p, const fixture *f)
{
    free(p->root_path);
    p->root_path = base_path(f, "/c1/../../state");
    p->root.path = p->root_path;
}

static void
mount_relative(spec_parts *p, const fixture *f)
{
    (void)f;
    p->bind.destination = "etc/hosts";
}

static void
mount_dotdot(spec_parts *p, const fixture *f)
{
    (void)f;
    p->bind.destination = "/etc/../../proc/sys";
}

static void
mount_ext4(spec_parts *p, const fixture *f)
{
    (void)f;
    p->bind.type = "ext4";
    p->bind.n_options = 0;
}

static void
mount_no_type(spec_parts *p, const fixture *f)
{
    (void)f;
    p->bind.type = "";
    p->bind.n_options = 0;
}

static void
bind_outside(spec_parts *p, const fixture *f)
{
    (void)f;
    p->bind.source = "/etc";
}

static void
rbind_option_outside(spec_parts *p, const fixture *f)
{
    /* a tmpfs "type" does not hide a bind in the options */
    (void)f;
    p->bind.type = "tmpfs";
    p->bind.source = "/";
}

static void
bind_sibling(spec_parts *p, const fixture *f)
{
    free(p->bind_source);
    p->bind_source = cc_xasprintf("%s-other/x", f->base);
    p->bind.source = p->bind_source;
}

static void
prestart_hook(spec_parts *p, const fixture *f)
{
    (void)f;
    p->hooks.prestart = p->hook_list;
    p->hooks.n_prestart = 1;
    p->spec.hooks = &p->hooks;
}

static void
createruntime_hook(spec_parts *p, const fixture *f)
{
    (void)f;
    p->hooks.createruntime = p->hook_list;
    p->hooks.n_createruntime = 1;
    p->spec.hooks = &p->hooks;
}

static void
no_linux(spec_parts *p, const fixture *f)
{
    (void)f;
    p->spec.linux = NULL;
}

static void
ns_path(spec_parts *p, const fixture *f)
{
    (void)f;
    p->ns[1].path = "/proc/1/ns/mnt";
}

static void
ns_unknown(spec_parts *p, const fixture *f)
{
    (void)f;
    p->ns[1].type = "container";
}

static void
no_pid_ns(spec_parts *p, const fixture *f)
{
    (void)f;
    for (size_t i = 0; i < p->linux_.n_namespaces; i++)
        if (strcmp(p->linux_.namespaces[i]->type, "pid") == 0)
            p->linux_.namespaces[i]->type = "uts";
}

static void
no_mount_ns(spec_parts *p, const fixture *f)
{
    (void)f;
    for (size_t i = 0; i < p->linux_.n_namespaces; i++)
        if (strcmp(p->linux_.namespaces[i]->type, "mount") == 0)
            p->linux_.namespaces[i]->type = "uts";
}

static char *cap_module[] = {"CAP_SYS_MODULE"};
static char *cap_admin[] = {"CAP_SYS_ADMIN"};

static void
cap_sys_module(spec_parts *p, const fixture *f)
{
    (void)f;
    static Grpc__LinuxCapabilities caps = GRPC__LINUX_CAPABILITIES__INIT;
    caps.bounding = cap_module;
    caps.n_bounding = 1;
    p->process.capabilities = &caps;
}

static void
cap_sys_admin_ambient(spec_parts *p, const fixture *f)
{
    (void)f;
    static Grpc__LinuxCapabilities caps = GRPC__LINUX_CAPABILITIES__INIT;
    caps.ambient = cap_admin;
    caps.n_ambient = 1;
    p->process.capabilities = &caps;
}

static void
device_outside_dev(spec_parts *p, const fixture *f)
{
    (void)f;
    p->dev.path = "/etc/fuse";
    p->linux_.n_devices = 1;
}

static void
device_dotdot(spec_parts *p, const fixture *f)
{
    (void)f;
    p->dev.path = "/dev/../etc/shadow";
    p->linux_.n_devices = 1;
}

static void
sysctl_dotdot(spec_parts *p, const fixture *f)
{
    (void)f;
    p->sysctl.key = "net/../../kernel/core_pattern";
}

static void
sysctl_absolute(spec_parts *p, const fixture *f)
{
    (void)f;
    p->sysctl.key = "/proc/sys/kernel/core_pattern";
}

static void
oom_5000(spec_parts *p, const fixture *f)
{
    (void)f;
    p->process.oomscoreadj = 5000;
}

static void
oom_minus_5000(spec_parts *p, const fixture *f)
{
    (void)f;
    p->process.oomscoreadj = -5000;
}

static void
long_hostname(spec_parts *p, const fixture *f)
{
    (void)f;
    p->spec.hostname = "0123456789012345678901234567890123456789012345678901234567890123456789";
}

static void
test_spec_valid(void **state)
{
    fixture *f = *state;
    _cleanup_error_ cc_error *err = NULL;
    spec_parts p;

    spec_parts_init(&p, f);
    int r = agent_validate_spec(f->a, &p.spec, &err);
    if (r != 0)
        fail_msg("valid spec refused: %s", cc_error_message(err));

    /* the minimal one: a process, a root, linux with its own PID and mount namespaces */
    p.spec.n_mounts = 0;
    p.linux_.n_devices = 0;
    p.linux_.n_sysctl = 0;
    p.process.n_env = 0;
    p.process.n_args = 1;
    p.process.user = NULL;
    assert_int_equal(agent_validate_spec(f->a, &p.spec, &err), 0);
    /* empty hooks are fine */
    p.spec.hooks = &p.hooks;
    assert_int_equal(agent_validate_spec(f->a, &p.spec, &err), 0);
    spec_parts_done(&p);

    assert_int_equal(agent_validate_spec(f->a, NULL, &err), -EINVAL);
    assert_non_null(strstr(cc_error_message(err), "OCI: missing"));
}

static void
test_spec_refused(void **state)
{
    fixture *f = *state;
    static const spec_case cases[] = {
        {"no process", no_process, -EINVAL, "OCI.Process: missing"},
        {"no args", no_args, -EINVAL, "OCI.Process.Args: missing"},
        {"empty args[0]", empty_arg0, -EINVAL, "OCI.Process.Args: missing"},
        {"relative cwd", relative_cwd, -EINVAL, "OCI.Process.Cwd"},
        {"empty cwd", empty_cwd, -EINVAL, "OCI.Process.Cwd"},
        {"env without =", env_no_equals, -EINVAL, "OCI.Process.Env[1]"},
        {"env empty name", env_empty_name, -EINVAL, "OCI.Process.Env[0]"},
        {"username", username, -EINVAL, "OCI.Process.User.Username"},
        {"oom 5000", oom_5000, -EINVAL, "OCI.Process.OOMScoreAdj"},
        {"oom -5000", oom_minus_5000, -EINVAL, "OCI.Process.OOMScoreAdj"},
        {"no root", no_root, -EINVAL, "OCI.Root: missing"},
        {"root outside", root_outside, -EINVAL, "OCI.Root.Path"},
        {"root is the base", root_is_base, -EINVAL, "OCI.Root.Path: must be below"},
        {"root ..", root_dotdot, -EINVAL, "OCI.Root.Path"},
        {"hostname", long_hostname, -EINVAL, "OCI.Hostname"},
        {"mount relative", mount_relative, -EINVAL, "OCI.Mounts[1].destination"},
        {"mount ..", mount_dotdot, -EINVAL, "OCI.Mounts[1].destination"},
        {"mount ext4", mount_ext4, -EINVAL, "OCI.Mounts[1].type: 'ext4'"},
        {"mount no type", mount_no_type, -EINVAL, "OCI.Mounts[1].type: missing"},
        {"bind outside", bind_outside, -EINVAL, "OCI.Mounts[1] (bind to /etc/hosts): source"},
        {"rbind option", rbind_option_outside, -EINVAL, "OCI.Mounts[1] (bind to /etc/hosts)"},
        {"bind sibling", bind_sibling, -EINVAL, "source: must be below"},
        {"prestart hook", prestart_hook, -EINVAL, "OCI.Hooks"},
        {"createRuntime hook", createruntime_hook, -EINVAL, "OCI.Hooks"},
        {"no linux", no_linux, -EINVAL, "OCI.Linux: missing"},
        {"namespace path", ns_path, -EINVAL, "OCI.Linux.Namespaces[1].Path"},
        {"namespace type", ns_unknown, -EINVAL, "OCI.Linux.Namespaces[1].Type: unknown 'container'"},
        {"device outside /dev", device_outside_dev, -EINVAL, "OCI.Linux.Devices[0]"},
        {"device ..", device_dotdot, -EINVAL, "OCI.Linux.Devices[0]"},
        {"no pid namespace", no_pid_ns, -EINVAL, "a pid namespace is required"},
        {"no mount namespace", no_mount_ns, -EINVAL, "a mount namespace is required"},
        {"CAP_SYS_MODULE", cap_sys_module, -EPERM, "OCI.Process.Capabilities.Bounding[0]: CAP_SYS_MODULE"},
        {"CAP_SYS_ADMIN ambient", cap_sys_admin_ambient, -EPERM, "OCI.Process.Capabilities.Ambient[0]: CAP_SYS_ADMIN"},
        {"sysctl ..", sysctl_dotdot, -EINVAL, "OCI.Linux.Sysctl"},
        {"sysctl /", sysctl_absolute, -EINVAL, "OCI.Linux.Sysctl"},
    };

    for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
        cc_error *err = NULL;
        spec_parts p;
        spec_parts_init(&p, f);
        cases[i].mutate(&p, f);
        int r = agent_validate_spec(f->a, &p.spec, &err);
        if (r != cases[i].code || !err || err->code != r ||
            !strstr(cc_error_message(err), cases[i].needle))
            fail_msg("case '%s': expected %d naming '%s', got %d: %s", cases[i].name,
                     cases[i].code, cases[i].needle, r, cc_error_message(err));
        cc_error_free(err);
        spec_parts_done(&p);
    }
}

/* --- agent_storages_validate ------------------------------------------------------------------ */

typedef struct storage_parts {
    Grpc__Storage st;
    char *options[4];
    char *driver_options[2];
    char *mount_point;
} storage_parts;

static void
storage_init(storage_parts *s, const fixture *f, const char *driver, const char *mount_rel)
{
    *s = (storage_parts){.st = GRPC__STORAGE__INIT};
    s->mount_point = base_path(f, mount_rel);
    s->st.driver = (char *)driver;
    s->st.mount_point = s->mount_point;
    s->st.options = s->options;
    s->st.driver_options = s->driver_options;
}

static void
storage_done(storage_parts *s)
{
    free(s->mount_point);
}

static int
validate_one(const fixture *f, storage_parts *s, cc_error **err)
{
    Grpc__Storage *list[] = {&s->st};
    return agent_storages_validate(f->a, list, 1, "storages", err);
}

static void
test_storages_ephemeral(void **state)
{
    fixture *f = *state;
    cc_error *err = NULL;
    storage_parts s;

    storage_init(&s, f, "ephemeral", "/sandbox/shm");
    s.st.source = "shm";
    s.st.fstype = "tmpfs";
    s.options[0] = "size=64m";
    s.options[1] = "nosuid";
    s.options[2] = "mode=1777";
    s.st.n_options = 3;
    assert_int_equal(validate_one(f, &s, &err), 0);
    assert_null(err);
    s.st.fstype = "";
    assert_int_equal(validate_one(f, &s, &err), 0);

    /* unknown or dangerous tmpfs options */
    static const char *const bad[] = {"exec", "suid", "dev", "size=abc", "size=64mm", "size=",
                                      "mode=07 77", "uid=-1", "mpol=bind", "huge=always"};
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        s.options[1] = (char *)bad[i];
        int r = validate_one(f, &s, &err);
        if (r != -EINVAL || !strstr(cc_error_message(err), "storages[0]: options[1]"))
            fail_msg("option '%s': %d %s", bad[i], r, cc_error_message(err));
        err = cc_error_free(err);
    }
    s.options[1] = "nodev";

    s.st.fstype = "ext4";
    assert_error(validate_one(f, &s, &err), err, -EINVAL, "storages[0]: fstype: 'ext4'");
    s.st.fstype = "tmpfs";

    /* mount point outside the base, or the base itself */
    s.st.mount_point = "/dev/shm";
    assert_error(validate_one(f, &s, &err), err, -EINVAL, "storages[0]: mount_point: must be below");
    s.st.mount_point = (char *)f->base;
    assert_error(validate_one(f, &s, &err), err, -EINVAL, "storages[0]: mount_point");
    s.st.mount_point = "";
    assert_error(validate_one(f, &s, &err), err, -EINVAL, "storages[0]: mount_point: missing");
    storage_done(&s);
}

static void
test_storages_drivers(void **state)
{
    fixture *f = *state;
    cc_error *err = NULL;
    storage_parts s;

    /* local: an empty directory, only mode= */
    storage_init(&s, f, "local", "/local/vol");
    s.options[0] = "mode=0777";
    s.st.n_options = 1;
    assert_int_equal(validate_one(f, &s, &err), 0);
    s.options[0] = "mode=0999";
    assert_error(validate_one(f, &s, &err), err, -EINVAL, "storages[0]: options[0]");
    s.options[0] = "rw";
    assert_error(validate_one(f, &s, &err), err, -EINVAL, "storages[0]: options[0]");
    storage_done(&s);

    /* unknown drivers */
    static const char *const drivers[] = {"blk", "virtio-fs", "9p", "overlayfs", "nvdimm", ""};
    for (size_t i = 0; i < ELEMENTSOF(drivers); i++) {
        storage_init(&s, f, drivers[i], "/x");
        int r = validate_one(f, &s, &err);
        if (r != -EOPNOTSUPP || !strstr(cc_error_message(err), "storages[0]: driver: "))
            fail_msg("driver '%s': %d %s", drivers[i], r, cc_error_message(err));
        err = cc_error_free(err);
        storage_done(&s);
    }
    storage_init(&s, f, NULL, "/x");
    assert_error(validate_one(f, &s, &err), err, -EOPNOTSUPP, "driver");
    storage_done(&s);
}

static void
test_storages_guest_pull(void **state)
{
    fixture *f = *state;
    cc_error *err = NULL;
    storage_parts s;

    storage_init(&s, f, "image_guest_pull", "/sandbox/rootfs");
    s.st.source = "registry.k8s.io/pause:3.9";
    s.st.fstype = "overlay";
    s.driver_options[0] = "image_guest_pull={\"metadata\":{\"io.kubernetes.cri.container-type\":"
                          "\"sandbox\",\"io.kubernetes.cri.sandbox-name\":\"p\"}}";
    s.st.n_driver_options = 1;
    assert_int_equal(validate_one(f, &s, &err), 0);
    assert_null(err);
    s.driver_options[0] =
        "image_guest_pull={\"metadata\":{\"io.kubernetes.cri-o.ContainerType\":\"sandbox\"}}";
    assert_int_equal(validate_one(f, &s, &err), 0);

    /* a real image: pulled in the guest; the ref and the pinned digest are checked here */
    const char *images[] = {
        "image_guest_pull={}",
        "image_guest_pull={\"metadata\":null}",
        "image_guest_pull={\"metadata\":{}}",
        "image_guest_pull={\"metadata\":{\"io.kubernetes.cri.container-type\":\"container\"}}",
        ("image_guest_pull={\"metadata\":{\"containerd.io/snapshot/cri.manifest-digest\":"
         "\"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"}}"),
    };
    for (size_t i = 0; i < ELEMENTSOF(images); i++) {
        s.driver_options[0] = (char *)images[i];
        int r = validate_one(f, &s, &err);
        if (r != 0)
            fail_msg("'%s': %d %s", images[i], r, cc_error_message(err));
        err = cc_error_free(err);
    }
    const char *bad_images[] = {
        ("image_guest_pull={\"metadata\":{\"containerd.io/snapshot/cri.manifest-digest\":"
         "\"sha256:nothex\"}}"),
        "image_guest_pull={\"metadata\":{\"containerd.io/snapshot/cri.manifest-digest\":1}}",
    };
    for (size_t i = 0; i < ELEMENTSOF(bad_images); i++) {
        s.driver_options[0] = (char *)bad_images[i];
        int r = validate_one(f, &s, &err);
        if (r != -EINVAL || !strstr(cc_error_message(err), "cri.manifest-digest"))
            fail_msg("'%s': %d %s", bad_images[i], r, cc_error_message(err));
        err = cc_error_free(err);
    }
    s.driver_options[0] = (char *)images[0];
    s.st.source = "UPPER/case";
    assert_int_equal(validate_one(f, &s, &err), -EINVAL);
    assert_non_null(strstr(cc_error_message(err), "source"));
    err = cc_error_free(err);
    s.st.source = "registry.k8s.io/pause:3.9";

    const char *malformed[] = {
        "image_guest_pull={\"metadata\":",
        "image_guest_pull=",
        "image_guest_pull=[]",
        "image_guest_pull={\"metadata\":[]}",
        "image_guest_pull={\"metadata\":{\"io.kubernetes.cri.container-type\":1}}",
        "something_else=1",
    };
    for (size_t i = 0; i < ELEMENTSOF(malformed); i++) {
        s.driver_options[0] = (char *)malformed[i];
        int r = validate_one(f, &s, &err);
        if (r != -EINVAL || !strstr(cc_error_message(err), "storages[0]: driver_options"))
            fail_msg("'%s': %d %s", malformed[i], r, cc_error_message(err));
        err = cc_error_free(err);
    }
    /* given twice */
    s.driver_options[0] = "image_guest_pull={}";
    s.driver_options[1] = "image_guest_pull={}";
    s.st.n_driver_options = 2;
    assert_error(validate_one(f, &s, &err), err, -EINVAL, "given twice");
    storage_done(&s);
}

static void
test_storages_list(void **state)
{
    fixture *f = *state;
    cc_error *err = NULL;
    storage_parts s[AGENT_STORAGES_MAX + 1];
    Grpc__Storage *list[AGENT_STORAGES_MAX + 1];

    for (size_t i = 0; i < ELEMENTSOF(s); i++) {
        char rel[32];
        snprintf(rel, sizeof(rel), "/s%zu", i);
        storage_init(&s[i], f, "local", rel);
        list[i] = &s[i].st;
    }
    assert_int_equal(agent_storages_validate(f->a, list, AGENT_STORAGES_MAX, "storages", &err), 0);
    assert_int_equal(agent_storages_validate(f->a, list, 0, "storages", &err), 0);
    assert_error(agent_storages_validate(f->a, list, AGENT_STORAGES_MAX + 1, "storages", &err), err,
                 -E2BIG, "storages: more than 64");

    /* duplicate mount points */
    s[3].st.mount_point = s[1].st.mount_point;
    assert_error(agent_storages_validate(f->a, list, 4, "storages", &err), err, -EINVAL,
                 "storages[3].mount_point: same as storages[1]");
    for (size_t i = 0; i < ELEMENTSOF(s); i++)
        storage_done(&s[i]);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_id),
        cmocka_unit_test_setup_teardown(test_guest_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mkdir_nofollow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spec_valid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spec_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_storages_ephemeral, setup, teardown),
        cmocka_unit_test_setup_teardown(test_storages_drivers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_storages_guest_pull, setup, teardown),
        cmocka_unit_test_setup_teardown(test_storages_list, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
