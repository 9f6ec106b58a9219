/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
/*
 * Validation of host input that is not specific to one RPC: ids, guest paths, the OCI spec.
 * Every error names the request field ("OCI.Mounts[2].destination: ...").
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
#include "util.h"

#define SPEC_LIST_MAX 4096 /* entries of any list in the spec */

int
agent_validate_id(const char *id, const char *field, bool allow_empty, cc_error **err)
{
    size_t n = id ? strlen(id) : 0;

    if (n == 0) {
        if (allow_empty)
            return 0;
        return cc_error_set(err, -EINVAL, "%s: missing", field);
    }
    if (n > AGENT_ID_MAX)
        return cc_error_set(err, -EINVAL, "%s: longer than %d bytes", field, AGENT_ID_MAX);
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (alnum || (i > 0 && (c == '_' || c == '.' || c == '-')))
            continue;
        return cc_error_set(err, -EINVAL,
                            "%s: invalid id (allowed: a letter or digit, then letters, digits, "
                            "'_', '.', '-')",
                            field);
    }
    return 0;
}

/* Absolute, no empty, "." or ".." component, shorter than PATH_MAX. */
static bool
path_is_clean_absolute(const char *path)
{
    return path[0] == '/' && path[1] != '\0' && cc_path_is_safe_relative(path + 1);
}

int
agent_validate_guest_path(agent *a, const char *path, const char *field, const char **ret_rel,
                          cc_error **err)
{
    const char *rel;

    if (!path || !*path)
        return cc_error_set(err, -EINVAL, "%s: missing", field);
    if (!path_is_clean_absolute(path))
        return cc_error_set(err, -EINVAL,
                            "%s: must be an absolute path without empty, '.' or '..' components",
                            field);
    rel = cc_startswith(path, a->opts.base);
    if (!rel || rel[0] != '/' || rel[1] == '\0')
        return cc_error_set(err, -EINVAL, "%s: must be below %s", field, a->opts.base);
    if (ret_rel)
        *ret_rel = rel + 1;
    return 0;
}

int
agent_mkdir_nofollow(int dir_fd, const char *rel, mode_t mode, bool create, int *ret_fd,
                     cc_error **err)
{
    _cleanup_free_ char *copy = cc_xstrdup(rel);
    _cleanup_close_ int fd = -EBADF;
    char *save = NULL;

    if (!cc_path_is_safe_relative(rel))
        return cc_error_set(err, -EINVAL, "%s: not a clean relative path", rel);
    fd = openat(dir_fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return cc_error_set(err, -errno, "cannot open the base directory");
    for (char *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
        int next = openat(fd, c, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0 && errno == ENOENT && create) {
            if (mkdirat(fd, c, mode) < 0 && errno != EEXIST)
                return cc_error_set(err, -errno, "cannot create directory '%s'", c);
            next = openat(fd, c, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        }
        if (next < 0) {
            int r = -errno;
            struct stat st;
            if (fstatat(fd, c, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
                return cc_error_set(err, -EINVAL, "path component '%s' is a symbolic link", c);
            if (r == -ENOTDIR || r == -ELOOP)
                return cc_error_set(err, -ENOTDIR, "path component '%s' is not a directory", c);
            return cc_error_set(err, r, "cannot open directory '%s'", c);
        }
        cc_close(fd);
        fd = next;
    }
    *ret_fd = TAKE_FD(fd);
    return 0;
}

static int
check_strv(char **v, size_t n, const char *field, bool need_nonempty, cc_error **err)
{
    if (n > SPEC_LIST_MAX)
        return cc_error_set(err, -E2BIG, "%s: more than %d entries", field, SPEC_LIST_MAX);
    for (size_t i = 0; i < n; i++)
        if (!v[i] || (need_nonempty && !*v[i]))
            return cc_error_set(err, -EINVAL, "%s[%zu]: empty", field, i);
    return 0;
}

/*
 * Capabilities that reach beyond the container into the guest kernel or other containers
 * (load modules, raw I/O, mount and namespace tricks, ptrace, BPF, reboot): refused, since
 * the guest holds every container's secrets. A pod's usual ones (NET_ADMIN, NET_RAW, CHOWN,
 * ...) stay allowed.
 */
static int
validate_capabilities(const Grpc__LinuxCapabilities *caps, const char *field, cc_error **err)
{
    static const char *const denied[] = {
        "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_SYS_BOOT",
        "CAP_BPF",        "CAP_PERFMON",   "CAP_MAC_ADMIN", "CAP_MAC_OVERRIDE", "CAP_SYSLOG",
        "CAP_SYS_TIME",   "CAP_DAC_READ_SEARCH", NULL};
    if (!caps)
        return 0;
    struct {
        const char *name;
        char **v;
        size_t n;
    } sets[] = {
        {"Bounding", caps->bounding, caps->n_bounding},
        {"Effective", caps->effective, caps->n_effective},
        {"Inheritable", caps->inheritable, caps->n_inheritable},
        {"Permitted", caps->permitted, caps->n_permitted},
        {"Ambient", caps->ambient, caps->n_ambient},
    };
    for (size_t s = 0; s < sizeof(sets) / sizeof(sets[0]); s++) {
        if (sets[s].n > 64)
            return cc_error_set(err, -E2BIG, "%s.Capabilities.%s: too many", field, sets[s].name);
        for (size_t i = 0; i < sets[s].n; i++)
            for (size_t d = 0; denied[d]; d++)
                if (cc_streq(sets[s].v[i], denied[d]))
                    return cc_error_set(err, -EPERM,
                                        "%s.Capabilities.%s[%zu]: %s is not allowed in a "
                                        "confidential pod",
                                        field, sets[s].name, i, denied[d]);
    }
    return 0;
}

int
agent_validate_process(const Grpc__Process *p, const char *field, cc_error **err)
{
    int r;

    if (!p)
        return cc_error_set(err, -EINVAL, "%s: missing", field);
    if (p->n_args == 0 || !p->args[0] || !*p->args[0])
        return cc_error_set(err, -EINVAL, "%s.Args: missing (a process needs a program)", field);
    if ((r = check_strv(p->args, p->n_args, "Args", false, err)) < 0)
        return cc_error_prefix(err, r, "%s", field);
    if (p->n_env > SPEC_LIST_MAX)
        return cc_error_set(err, -E2BIG, "%s.Env: more than %d entries", field, SPEC_LIST_MAX);
    for (size_t i = 0; i < p->n_env; i++)
        if (!p->env[i] || !strchr(p->env[i], '=') || p->env[i][0] == '=')
            return cc_error_set(err, -EINVAL, "%s.Env[%zu]: not of the form NAME=VALUE", field, i);
    if (!p->cwd || p->cwd[0] != '/')
        return cc_error_set(err, -EINVAL, "%s.Cwd: must be an absolute path", field);
    if (strlen(p->cwd) >= PATH_MAX)
        return cc_error_set(err, -ENAMETOOLONG, "%s.Cwd: too long", field);
    if (p->user && p->user->username && *p->user->username)
        return cc_error_set(err, -EINVAL,
                            "%s.User.Username: user names are not resolved; give UID and GID",
                            field);
    if (p->user && p->user->n_additionalgids > SPEC_LIST_MAX)
        return cc_error_set(err, -E2BIG, "%s.User.AdditionalGids: too many", field);
    if (p->n_rlimits > 64)
        return cc_error_set(err, -E2BIG, "%s.Rlimits: too many", field);
    for (size_t i = 0; i < p->n_rlimits; i++)
        if (!p->rlimits[i]->type || !cc_startswith(p->rlimits[i]->type, "RLIMIT_"))
            return cc_error_set(err, -EINVAL, "%s.Rlimits[%zu].Type: not an RLIMIT_ name", field, i);
    if (p->oomscoreadj < -1000 || p->oomscoreadj > 1000)
        return cc_error_set(err, -EINVAL, "%s.OOMScoreAdj: out of range [-1000, 1000]", field);
    return validate_capabilities(p->capabilities, field, err);
}

static bool
mount_is_bind(const Grpc__Mount *m)
{
    if (cc_streq(m->type, "bind"))
        return true;
    for (size_t i = 0; i < m->n_options; i++)
        if (cc_streq(m->options[i], "bind") || cc_streq(m->options[i], "rbind"))
            return true;
    return false;
}

static int
validate_mounts(agent *a, const Grpc__Spec *spec, cc_error **err)
{
    static const char *const types[] = {"proc",   "tmpfs", "sysfs",   "devpts", "mqueue",
                                        "cgroup", "cgroup2", "bind", "",     NULL};
    if (spec->n_mounts > SPEC_LIST_MAX)
        return cc_error_set(err, -E2BIG, "OCI.Mounts: more than %d entries", SPEC_LIST_MAX);
    for (size_t i = 0; i < spec->n_mounts; i++) {
        const Grpc__Mount *m = spec->mounts[i];
        bool known = false;
        int r;

        if (!m->destination || !path_is_clean_absolute(m->destination))
            return cc_error_set(err, -EINVAL,
                                "OCI.Mounts[%zu].destination: must be an absolute path without "
                                "empty, '.' or '..' components",
                                i);
        for (size_t t = 0; types[t]; t++)
            known = known || cc_streq(m->type ? m->type : "", types[t]);
        if (!known)
            return cc_error_set(err, -EINVAL, "OCI.Mounts[%zu].type: '%s' is not allowed", i,
                                m->type);
        if ((r = check_strv(m->options, m->n_options, "options", false, err)) < 0)
            return cc_error_prefix(err, r, "OCI.Mounts[%zu]", i);
        if (mount_is_bind(m)) {
            /* Only what the host put in the guest through storages and CopyFile. */
            r = agent_validate_guest_path(a, m->source, "source", NULL, err);
            if (r < 0)
                return cc_error_prefix(err, r, "OCI.Mounts[%zu] (bind to %s)", i, m->destination);
        } else if (!m->type || !*m->type) {
            return cc_error_set(err, -EINVAL, "OCI.Mounts[%zu].type: missing", i);
        }
    }
    return 0;
}

static int
validate_linux(const Grpc__Linux *l, cc_error **err)
{
    static const char *const ns_types[] = {"pid", "network", "mount", "ipc", "uts",
                                           "user", "cgroup", "time", NULL};
    if (!l)
        return cc_error_set(err, -EINVAL, "OCI.Linux: missing");
    if (l->n_namespaces > 16)
        return cc_error_set(err, -E2BIG, "OCI.Linux.Namespaces: too many");
    for (size_t i = 0; i < l->n_namespaces; i++) {
        const Grpc__LinuxNamespace *ns = l->namespaces[i];
        bool known = false;
        for (size_t t = 0; ns_types[t]; t++)
            known = known || cc_streq(ns->type, ns_types[t]);
        if (!known)
            return cc_error_set(err, -EINVAL, "OCI.Linux.Namespaces[%zu].Type: unknown '%s'", i,
                                ns->type ? ns->type : "");
        if (ns->path && *ns->path)
            return cc_error_set(err, -EINVAL,
                                "OCI.Linux.Namespaces[%zu].Path: joining an existing namespace "
                                "is not allowed (use sandbox_pidns for the pod's PID namespace)",
                                i);
    }
    /* A container must not see the agent's processes or mounts (the guest is shared by the
     * pod's containers and holds their secrets): its own PID and mount namespaces. */
    static const char *const required[] = {"pid", "mount"};
    for (size_t k = 0; k < sizeof(required) / sizeof(required[0]); k++) {
        bool found = false;
        for (size_t i = 0; i < l->n_namespaces; i++)
            found = found || cc_streq(l->namespaces[i]->type, required[k]);
        if (!found)
            return cc_error_set(err, -EINVAL, "OCI.Linux.Namespaces: a %s namespace is required",
                                required[k]);
    }
    if (l->n_uidmappings > 340 || l->n_gidmappings > 340)
        return cc_error_set(err, -E2BIG, "OCI.Linux.UIDMappings/GIDMappings: too many");
    /* Device nodes of the guest (/dev/mem, the disks) are the guest's, not the host's to hand
     * out: none (crun still makes the default /dev/null, /dev/zero, ...). */
    if (l->n_devices > 0)
        return cc_error_set(err, -EINVAL,
                            "OCI.Linux.Devices[0] (%s): guest devices cannot be given to a "
                            "container",
                            l->devices[0]->path ? l->devices[0]->path : "");
    if (l->n_sysctl > SPEC_LIST_MAX)
        return cc_error_set(err, -E2BIG, "OCI.Linux.Sysctl: too many");
    for (size_t i = 0; i < l->n_sysctl; i++) {
        const char *k = l->sysctl[i]->key;
        if (!k || !*k || strstr(k, "..") || k[0] == '/' || k[0] == '.' ||
            strspn(k, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/") !=
                strlen(k))
            return cc_error_set(err, -EINVAL, "OCI.Linux.Sysctl: bad key '%s'", k ? k : "");
    }
    int r = check_strv(l->maskedpaths, l->n_maskedpaths, "OCI.Linux.MaskedPaths", true, err);
    if (r < 0)
        return r;
    return check_strv(l->readonlypaths, l->n_readonlypaths, "OCI.Linux.ReadonlyPaths", true, err);
}

int
agent_validate_spec(agent *a, const Grpc__Spec *spec, cc_error **err)
{
    int r;

    if (!spec)
        return cc_error_set(err, -EINVAL, "OCI: missing");
    r = agent_validate_process(spec->process, "OCI.Process", err);
    if (r < 0)
        return r;
    if (!spec->root)
        return cc_error_set(err, -EINVAL, "OCI.Root: missing");
    r = agent_validate_guest_path(a, spec->root->path, "OCI.Root.Path", NULL, err);
    if (r < 0)
        return r;
    if (spec->hostname && strlen(spec->hostname) > 64)
        return cc_error_set(err, -EINVAL, "OCI.Hostname: longer than 64 bytes");
    r = validate_mounts(a, spec, err);
    if (r < 0)
        return r;
    if (spec->hooks &&
        (spec->hooks->n_prestart || spec->hooks->n_poststart || spec->hooks->n_poststop ||
         spec->hooks->n_createruntime || spec->hooks->n_createcontainer ||
         spec->hooks->n_startcontainer))
        return cc_error_set(err, -EINVAL,
                            "OCI.Hooks: hooks are not allowed (the host may not choose programs "
                            "the guest runs outside a container)");
    if (spec->n_annotations > SPEC_LIST_MAX)
        return cc_error_set(err, -E2BIG, "OCI.Annotations: too many");
    return validate_linux(spec->linux, err);
}
