/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
/*
 * Storages: mounts the agent performs for CreateSandbox and CreateContainer (Kata's Storage
 * message). Drivers:
 *   ephemeral          tmpfs at mount_point (options: size=, nr_inodes=, mode=, uid=, gid=,
 *                      and the flags nosuid nodev noexec ro rw relatime noatime strictatime)
 *   local              an empty directory at mount_point (option mode=)
 *   image_guest_pull   the container's image, pulled inside the guest; for now only the pod's
 *                      pause container (metadata io.kubernetes.cri.container-type=sandbox),
 *                      which is the pause bundle baked into the guest image, mounted read-only
 * Mount points must be below the guest base and are created without following symlinks;
 * the mount goes onto the directory fd, never onto a path the host could swap.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "fs.h"
#include "image.h"
#include "json.h"
#include "log.h"
#include "util.h"

#define OPTIONS_MAX 64
#define OPTION_LEN_MAX 4096
#define GUEST_PULL_PREFIX "image_guest_pull="

typedef enum storage_kind { STORAGE_EPHEMERAL, STORAGE_LOCAL, STORAGE_PAUSE, STORAGE_IMAGE } storage_kind;

static bool
is_number(const char *s, bool allow_suffix)
{
    size_t n = strspn(s, "0123456789");
    if (n == 0)
        return false;
    if (s[n] == '\0')
        return true;
    return allow_suffix && s[n + 1] == '\0' && strchr("kKmMgG%", s[n]);
}

static int
ephemeral_options(const Grpc__Storage *st, unsigned long *ret_flags, char **ret_data,
                  cc_error **err)
{
    static const struct {
        const char *name;
        unsigned long flag;
    } flags[] = {
        {"nosuid", MS_NOSUID},   {"nodev", MS_NODEV},     {"noexec", MS_NOEXEC},
        {"ro", MS_RDONLY},       {"rw", 0},               {"relatime", MS_RELATIME},
        {"noatime", MS_NOATIME}, {"strictatime", MS_STRICTATIME},
    };
    static const char *const valued[] = {"size=", "nr_inodes=", "nr_blocks=", "mode=",
                                         "uid=",  "gid=",       NULL};
    unsigned long f = 0;
    size_t len = 0;
    _cleanup_free_ char *data = cc_xzalloc(1);

    for (size_t i = 0; i < st->n_options; i++) {
        const char *o = st->options[i];
        bool done = false;

        for (size_t k = 0; k < sizeof(flags) / sizeof(flags[0]) && !done; k++)
            if (cc_streq(o, flags[k].name)) {
                f |= flags[k].flag;
                done = true;
            }
        for (size_t k = 0; valued[k] && !done; k++) {
            const char *v = cc_startswith(o, valued[k]);
            if (!v)
                continue;
            if (!is_number(v, k <= 2))
                return cc_error_set(err, -EINVAL, "options[%zu]: bad value '%s'", i, o);
            size_t n = strlen(o);
            data = cc_xrealloc(data, len + n + 2);
            if (len)
                data[len++] = ',';
            memcpy(data + len, o, n + 1);
            len += n;
            done = true;
        }
        if (!done)
            return cc_error_set(err, -EINVAL, "options[%zu]: '%s' is not allowed for tmpfs", i, o);
    }
    if (ret_flags)
        *ret_flags = f;
    if (ret_data)
        *ret_data = TAKE_PTR(data);
    return 0;
}

/* image_guest_pull: true in *ret_sandbox when the metadata marks the pod's pause container. */
static int
guest_pull_options(const Grpc__Storage *st, bool *ret_sandbox, cc_error **err)
{
    _cleanup_json_ json_t *j = NULL;
    const char *json = NULL, *type = NULL;
    json_t *meta = NULL;
    int r;

    for (size_t i = 0; i < st->n_driver_options; i++) {
        const char *v = cc_startswith(st->driver_options[i], GUEST_PULL_PREFIX);
        if (v) {
            if (json)
                return cc_error_set(err, -EINVAL, "driver_options: '%s' given twice",
                                    GUEST_PULL_PREFIX);
            json = v;
        }
    }
    if (!json)
        return cc_error_set(err, -EINVAL, "driver_options: no '%s<json>'", GUEST_PULL_PREFIX);
    r = cc_json_load_buffer(json, strlen(json), "driver_options image_guest_pull", 1u << 20, &j,
                            err);
    if (r < 0)
        return r;
    if (!json_is_object(j))
        return cc_error_set(err, -EINVAL, "driver_options image_guest_pull: not a JSON object");
    meta = json_object_get(j, "metadata");
    if (meta && !json_is_object(meta) && !json_is_null(meta))
        return cc_error_set(err, -EINVAL,
                            "driver_options image_guest_pull: field 'metadata': expected object, "
                            "got %s",
                            cc_json_type_name(meta));
    if (json_is_object(meta)) {
        json_t *t = json_object_get(meta, "io.kubernetes.cri.container-type");
        if (!t)
            t = json_object_get(meta, "io.kubernetes.cri-o.ContainerType");
        if (t && !json_is_string(t))
            return cc_error_set(err, -EINVAL,
                                "driver_options image_guest_pull: metadata container-type is not "
                                "a string");
        type = t ? json_string_value(t) : NULL;
    }
    *ret_sandbox = cc_streq(type, "sandbox");
    if (*ret_sandbox)
        return 0;
    return agent_image_storage_check(st, err);
}

static int
storage_check(agent *a, const Grpc__Storage *st, storage_kind *ret_kind, cc_error **err)
{
    int r;

    if (st->n_options > OPTIONS_MAX || st->n_driver_options > OPTIONS_MAX)
        return cc_error_set(err, -E2BIG, "options: more than %d", OPTIONS_MAX);
    for (size_t i = 0; i < st->n_options; i++)
        if (strlen(st->options[i]) > OPTION_LEN_MAX)
            return cc_error_set(err, -E2BIG, "options[%zu]: too long", i);
    r = agent_validate_guest_path(a, st->mount_point, "mount_point", NULL, err);
    if (r < 0)
        return r;
    if (cc_streq(st->driver, "ephemeral")) {
        if (st->fstype && *st->fstype && !cc_streq(st->fstype, "tmpfs"))
            return cc_error_set(err, -EINVAL, "fstype: '%s' (ephemeral storage is tmpfs)",
                                st->fstype);
        *ret_kind = STORAGE_EPHEMERAL;
        return ephemeral_options(st, NULL, NULL, err);
    }
    if (cc_streq(st->driver, "local")) {
        for (size_t i = 0; i < st->n_options; i++) {
            const char *v = cc_startswith(st->options[i], "mode=");
            if (!v || strspn(v, "01234567") != strlen(v) || strlen(v) == 0 || strlen(v) > 4)
                return cc_error_set(err, -EINVAL, "options[%zu]: '%s' is not allowed", i,
                                    st->options[i]);
        }
        *ret_kind = STORAGE_LOCAL;
        return 0;
    }
    if (cc_streq(st->driver, "image_guest_pull")) {
        bool sandbox = false;
        r = guest_pull_options(st, &sandbox, err);
        if (r < 0)
            return r;
        *ret_kind = sandbox ? STORAGE_PAUSE : STORAGE_IMAGE;
        return 0;
    }
    return cc_error_set(err, -EOPNOTSUPP,
                        "driver: '%s' is not supported (ephemeral, local, image_guest_pull)",
                        st->driver ? st->driver : "");
}

int
agent_storages_validate(agent *a, Grpc__Storage *const *st, size_t n, const char *field,
                        cc_error **err)
{
    size_t images = 0;

    if (n > AGENT_STORAGES_MAX)
        return cc_error_set(err, -E2BIG, "%s: more than %d", field, AGENT_STORAGES_MAX);
    for (size_t i = 0; i < n; i++) {
        storage_kind kind;
        int r = storage_check(a, st[i], &kind, err);
        if (r < 0)
            return cc_error_prefix(err, r, "%s[%zu]", field, i);
        if ((kind == STORAGE_PAUSE || kind == STORAGE_IMAGE) && ++images > 1)
            return cc_error_set(err, -EINVAL, "%s[%zu]: a second image_guest_pull storage", field,
                                i);
        for (size_t j = 0; j < i; j++)
            if (cc_streq(st[j]->mount_point, st[i]->mount_point))
                return cc_error_set(err, -EINVAL, "%s[%zu].mount_point: same as %s[%zu]", field,
                                    i, field, j);
    }
    return 0;
}

static int
mount_on_fd(const char *source, int fd, const char *fstype, unsigned long flags,
            const char *data)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    return mount(source, path, fstype, flags, data) < 0 ? -errno : 0;
}

const Grpc__Storage *
agent_storages_find_image(Grpc__Storage *const *st, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        bool sandbox = false;
        if (cc_streq(st[i]->driver, "image_guest_pull") &&
            guest_pull_options(st[i], &sandbox, NULL) == 0 && !sandbox)
            return st[i];
    }
    return NULL;
}

/*
 * Unmounts everything stacked at base/rel, re-resolving the path each time without following
 * symlinks: a container with part of the base bind-mounted could have replaced a component
 * with a symlink, and a path string would then unmount something outside the base.
 */
static void
unmount_nofollow(agent *a, const char *rel)
{
    for (int i = 0; i < 16; i++) {
        _cleanup_close_ int fd = -EBADF;
        char path[64];

        if (agent_mkdir_nofollow(a->base_fd, rel, 0755, false, &fd, NULL) < 0)
            return;
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        if (umount2(path, MNT_DETACH) < 0)
            return;
    }
}

/* rmdir base/rel through its parent, resolved without following symlinks. */
static int
rmdir_nofollow(agent *a, const char *rel)
{
    _cleanup_free_ char *parent = cc_xstrdup(rel);
    _cleanup_close_ int pfd = -EBADF;
    char *slash = strrchr(parent, '/');
    const char *name = rel;

    if (slash) {
        *slash = '\0';
        name = rel + (slash - parent) + 1;
        if (agent_mkdir_nofollow(a->base_fd, parent, 0755, false, &pfd, NULL) < 0)
            return -ENOENT;
    } else {
        pfd = openat(a->base_fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    }
    return unlinkat(pfd, name, AT_REMOVEDIR) < 0 ? -errno : 0;
}

static int
storage_mount_one(agent *a, const Grpc__Storage *st, const agent_image_layers *layers,
                  const char *container_id, bool *ret_sandbox, cc_error **err)
{
    _cleanup_close_ int fd = -EBADF;
    storage_kind kind;
    const char *rel;
    mode_t mode = 0755;
    int r;

    r = storage_check(a, st, &kind, err);
    if (r < 0)
        return r;
    (void)agent_validate_guest_path(a, st->mount_point, "mount_point", &rel, NULL);
    if (kind == STORAGE_LOCAL && st->n_options == 1)
        mode = (mode_t)strtoul(st->options[0] + strlen("mode="), NULL, 8) & 07777;
    r = agent_mkdir_nofollow(a->base_fd, rel, 0755, true, &fd, err);
    if (r < 0)
        return cc_error_prefix(err, r, "mount_point %s", st->mount_point);

    switch (kind) {
    case STORAGE_EPHEMERAL: {
        _cleanup_free_ char *data = NULL;
        unsigned long flags = 0;
        (void)ephemeral_options(st, &flags, &data, NULL);
        r = mount_on_fd(st->source && *st->source ? st->source : "tmpfs", fd, "tmpfs",
                        flags | MS_NOSUID | MS_NODEV, data);
        if (r < 0)
            return cc_error_set(err, r, "cannot mount tmpfs on %s", st->mount_point);
        break;
    }
    case STORAGE_LOCAL: {
        char path[64];
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        if (chmod(path, mode) < 0)
            return cc_error_set(err, -errno, "cannot chmod %s", st->mount_point);
        break;
    }
    case STORAGE_PAUSE: {
        _cleanup_free_ char *src = cc_xasprintf("%s/rootfs", a->opts.pause_bundle);
        r = mount_on_fd(src, fd, NULL, MS_BIND, NULL);
        if (r < 0)
            return cc_error_set(err, r, "cannot bind the pause bundle %s on %s", src,
                                st->mount_point);
        /* fd is the directory under the new mount: the remount needs the mount's root */
        _cleanup_close_ int mfd = -EBADF;
        r = agent_mkdir_nofollow(a->base_fd, rel, 0755, false, &mfd, err);
        if (r >= 0)
            r = mount_on_fd(NULL, mfd, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV,
                            NULL);
        if (r < 0) {
            unmount_nofollow(a, rel);
            return cc_error_set(err, r, "cannot make %s read-only", st->mount_point);
        }
        *ret_sandbox = true;
        break;
    }
    case STORAGE_IMAGE:
        if (!layers || !container_id)
            return cc_error_set(err, -EINVAL, "the image of %s was not pulled", st->mount_point);
        r = agent_image_mount(a, layers, container_id, fd, err);
        if (r < 0)
            return r;
        break;
    }
    return 0;
}

int
agent_storages_mount(agent *a, Grpc__Storage *const *st, size_t n,
                     const agent_image_layers *layers, const char *container_id, char ***ret,
                     size_t *ret_n, bool *ret_sandbox, cc_error **err)
{
    char **mounts = cc_xreallocarray(NULL, n + 1, sizeof(char *));
    bool sandbox = false;
    size_t done = 0;

    for (; done < n; done++) {
        int r = storage_mount_one(a, st[done], layers, container_id, &sandbox, err);
        if (r < 0) {
            agent_storages_unmount(a, mounts, done);
            return cc_error_prefix(err, r, "storages[%zu]", done);
        }
        mounts[done] = cc_xstrdup(st[done]->mount_point);
        cc_log(CC_LOG_DEBUG, "mounted %s storage on %s", st[done]->driver, mounts[done]);
    }
    *ret = mounts;
    *ret_n = n;
    if (ret_sandbox)
        *ret_sandbox = sandbox;
    return 0;
}

void
agent_storages_unmount(agent *a, char **mounts, size_t n)
{
    for (size_t i = n; i-- > 0;) {
        const char *rel = NULL;
        if (agent_validate_guest_path(a, mounts[i], "mount_point", &rel, NULL) == 0) {
            /* Unmount every layer stacked there, then remove the (now empty) directory. */
            unmount_nofollow(a, rel);
            /* the mount point, then the parents mkdir -p made, as far as they are empty */
            _cleanup_free_ char *dir = cc_xstrdup(rel);
            for (char *slash;;) {
                int r = rmdir_nofollow(a, dir);
                if (r < 0) {
                    if (r != -ENOENT && r != -ENOTEMPTY && r != -EEXIST)
                        cc_log_errno(CC_LOG_DEBUG, r, "cannot remove %s/%s", a->opts.base, dir);
                    break;
                }
                slash = strrchr(dir, '/');
                if (!slash)
                    break;
                *slash = '\0';
            }
        }
        free(mounts[i]);
    }
    free(mounts);
}
