/* SPDX-License-Identifier: Apache-2.0 */
/*
 * snap_store: the on-disk store and containerd's snapshot rules. The mounts (ordinary and
 * guest-pull) are built in mount.c.
 */
#define _GNU_SOURCE
#include "store-priv.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs.h"
#include "json.h"
#include "log.h"
#include "util.h"

#define INFO_FILE "info.json"
#define INFO_SIZE_MAX (1u << 20)
#define REMOVING_PREFIX ".rm-"

static const char *const kind_names[_SNAP_KIND_MAX] = {
    [SNAP_KIND_VIEW] = "view",
    [SNAP_KIND_ACTIVE] = "active",
    [SNAP_KIND_COMMITTED] = "committed",
};

const char *
snap_kind_to_string(snap_kind k)
{
    return k > 0 && k < _SNAP_KIND_MAX ? kind_names[k] : "unknown";
}

static snap_kind
kind_from_string(const char *s)
{
    for (int k = 1; k < _SNAP_KIND_MAX; k++)
        if (cc_streq(kind_names[k], s))
            return (snap_kind)k;
    return _SNAP_KIND_INVALID;
}

void
snap_mount_clear(snap_mount *m)
{
    free(m->type);
    free(m->source);
    for (size_t i = 0; i < m->n_options; i++)
        free(m->options[i]);
    free(m->options);
    *m = (snap_mount){0};
}

static snap_info *
info_free(snap_info *info)
{
    if (!info)
        return NULL;
    free(info->name);
    free(info->parent);
    json_decref(info->labels);
    free(info);
    return NULL;
}
CC_DEFINE_CLEANUP(snap_info, info_free)

static struct timespec
now(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_REALTIME, &ts);
    return ts;
}

/* --- info.json ------------------------------------------------------------------------------ */

static int
info_write(snap_store *s, const snap_info *info, cc_error **err)
{
    _cleanup_json_ json_t *o = json_pack(
        "{s:s, s:s?, s:s, s:I, s:I, s:I, s:I, s:O}", "name", info->name, "parent", info->parent,
        "kind", snap_kind_to_string(info->kind), "created_sec", (json_int_t)info->created.tv_sec,
        "created_nsec", (json_int_t)info->created.tv_nsec, "updated_sec",
        (json_int_t)info->updated.tv_sec, "updated_nsec", (json_int_t)info->updated.tv_nsec,
        "labels", info->labels);
    if (!o)
        return cc_error_msg(err, -EINVAL, "snapshot %" PRIu64 ": cannot encode its info", info->id);
    _cleanup_free_ char *text = NULL;
    int r = cc_json_dump(o, &text, err);
    if (r < 0)
        return r;
    char dir[32];
    snprintf(dir, sizeof(dir), "%" PRIu64, info->id);
    _cleanup_close_ int fd = openat(s->dir_fd, dir, O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return cc_error_set(err, -errno, "open snapshot dir '%s'", dir);
    r = cc_write_file_atomic(fd, INFO_FILE, text, strlen(text), 0600, err);
    if (r < 0)
        return cc_error_prefix(err, r, "snapshot %" PRIu64, info->id);
    return 0;
}

static int
info_load(snap_store *s, uint64_t id, snap_info **ret, cc_error **err)
{
    char path[64];
    snprintf(path, sizeof(path), "%" PRIu64 "/" INFO_FILE, id);
    _cleanup_close_ int fd = openat(s->dir_fd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return cc_error_set(err, -errno, "open '%s'", path);
    _cleanup_json_ json_t *o = NULL;
    int r = cc_json_load_fd(fd, path, INFO_SIZE_MAX, &o, err);
    if (r < 0)
        return r;

    _cleanup_(info_freep) snap_info *info = cc_xzalloc(sizeof(*info));
    const char *name, *parent = NULL, *kind;
    int64_t cs, cn, us, un;
    json_t *labels;
    if ((r = cc_json_get_string(o, "name", &name, err)) < 0 ||
        (r = cc_json_get_string(o, "kind", &kind, err)) < 0 ||
        (r = cc_json_get_int64(o, "created_sec", &cs, err)) < 0 ||
        (r = cc_json_get_int64(o, "created_nsec", &cn, err)) < 0 ||
        (r = cc_json_get_int64(o, "updated_sec", &us, err)) < 0 ||
        (r = cc_json_get_int64(o, "updated_nsec", &un, err)) < 0 ||
        (r = cc_json_get_object(o, "labels", &labels, err)) < 0)
        return cc_error_prefix(err, r == -ENOENT ? -EINVAL : r, "%s", path);
    r = cc_json_get_string(o, "parent", &parent, err);
    if (r < 0 && r != -ENOENT)
        return cc_error_prefix(err, r, "%s", path);
    info->id = id;
    info->name = cc_xstrdup(name);
    info->parent = parent && *parent ? cc_xstrdup(parent) : NULL;
    info->kind = kind_from_string(kind);
    if (info->kind < 0)
        return cc_error_msg(err, -EINVAL, "%s: invalid kind \"%s\"", path, kind);
    info->created = (struct timespec){.tv_sec = cs, .tv_nsec = cn};
    info->updated = (struct timespec){.tv_sec = us, .tv_nsec = un};
    info->labels = json_incref(labels);
    *ret = TAKE_PTR(info);
    return 0;
}

/* --- the index -------------------------------------------------------------------------------- */

snap_info *
snap_store_find(const snap_store *s, const char *name)
{
    for (size_t i = 0; i < s->n_infos; i++)
        if (cc_streq(s->infos[i]->name, name))
            return s->infos[i];
    return NULL;
}

static bool
has_children(const snap_store *s, const char *name)
{
    for (size_t i = 0; i < s->n_infos; i++)
        if (s->infos[i]->parent && cc_streq(s->infos[i]->parent, name))
            return true;
    return false;
}

static void
index_add(snap_store *s, snap_info *info)
{
    s->infos = cc_xreallocarray(s->infos, s->n_infos + 1, sizeof(*s->infos));
    /* Keep id order (infos come in id order except at open). */
    size_t i = s->n_infos;
    while (i > 0 && s->infos[i - 1]->id > info->id) {
        s->infos[i] = s->infos[i - 1];
        i--;
    }
    s->infos[i] = info;
    s->n_infos++;
    if (info->id >= s->next_id)
        s->next_id = info->id + 1;
}

static void
index_remove(snap_store *s, snap_info *info)
{
    for (size_t i = 0; i < s->n_infos; i++)
        if (s->infos[i] == info) {
            memmove(&s->infos[i], &s->infos[i + 1], (s->n_infos - i - 1) * sizeof(*s->infos));
            s->n_infos--;
            break;
        }
    info_free(info);
}

size_t
snap_store_count(const snap_store *s)
{
    return s->n_infos;
}

const snap_info *
snap_store_get(const snap_store *s, size_t i)
{
    return i < s->n_infos ? s->infos[i] : NULL;
}

/* --- open, reconcile ---------------------------------------------------------------------- */

static bool
parse_id(const char *name, uint64_t *ret)
{
    if (!*name || name[0] == '0' || strspn(name, "0123456789") != strlen(name) ||
        strlen(name) > 19)
        return false;
    *ret = strtoull(name, NULL, 10);
    return true;
}

/*
 * Removes every entry of snapshots/ that is not an indexed snapshot; with load, first loads
 * the snapshots whose info.json reads well.
 */
static int
reconcile(snap_store *s, bool load, cc_error **err)
{
    int dfd = openat(s->dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return cc_error_set(err, -errno, "open '%s/snapshots'", s->root);
    DIR *d = fdopendir(dfd);
    if (!d) {
        int r = -errno;
        (void)close(dfd);
        return cc_error_set(err, r, "open '%s/snapshots'", s->root);
    }
    char **doomed = NULL;
    size_t n_doomed = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (cc_streq(de->d_name, ".") || cc_streq(de->d_name, ".."))
            continue;
        uint64_t id;
        bool keep = false;
        if (parse_id(de->d_name, &id)) {
            if (load) {
                _cleanup_error_ cc_error *e = NULL;
                snap_info *info = NULL;
                if (info_load(s, id, &info, &e) >= 0) {
                    index_add(s, info);
                    keep = true;
                } else if (e->code != -ENOENT)
                    cc_log(CC_LOG_WARNING, "removing unreadable snapshot %s: %s", de->d_name,
                           cc_error_message(e));
            } else
                for (size_t i = 0; i < s->n_infos && !keep; i++)
                    keep = s->infos[i]->id == id;
            if (id >= s->next_id)
                s->next_id = id + 1; /* never reuse an id still on disk */
        }
        if (!keep) {
            doomed = cc_xreallocarray(doomed, n_doomed + 1, sizeof(*doomed));
            doomed[n_doomed++] = cc_xstrdup(de->d_name);
        }
    }
    closedir(d);

    int r = 0;
    for (size_t i = 0; i < n_doomed; i++) {
        cc_log(CC_LOG_INFO, "removing half-made or orphan snapshot dir '%s'", doomed[i]);
        _cleanup_error_ cc_error *e = NULL;
        int q = cc_rm_rf_at(s->dir_fd, doomed[i], &e);
        if (q < 0) {
            cc_log(CC_LOG_WARNING, "remove '%s': %s", doomed[i], cc_error_message(e));
            if (r == 0)
                r = cc_error_prefix(err, q, "remove '%s'", doomed[i]);
        }
        free(doomed[i]);
    }
    free(doomed);
    return r;
}

int
snap_store_open(const char *root, snap_store **ret, cc_error **err)
{
    _cleanup_(snap_store_freep) snap_store *s = cc_xzalloc(sizeof(*s));
    s->dir_fd = -EBADF;
    s->root = cc_xstrdup(root);
    s->next_id = 1;

    int r;
    if (mkdir(root, 0711) < 0 && errno != EEXIST)
        return cc_error_set(err, -errno, "mkdir '%s'", root);
    _cleanup_free_ char *dir = cc_xasprintf("%s/snapshots", root);
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        return cc_error_set(err, -errno, "mkdir '%s'", dir);
    s->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->dir_fd < 0)
        return cc_error_set(err, -errno, "open '%s'", dir);
    r = reconcile(s, true, NULL); /* failures to remove leftovers are not fatal */
    (void)r;
    /* ids of removed snapshots are gone from the disk: the reserved high-water mark keeps
     * them from being handed out again */
    _cleanup_free_ char *mark_path = cc_xasprintf("%s/id-mark", root);
    _cleanup_free_ char *mark = NULL;
    if (cc_read_file(mark_path, 64, &mark, NULL, NULL) == 0) {
        uint64_t m = strtoull(mark, NULL, 10);
        if (m > s->next_id)
            s->next_id = m;
    }
    s->id_mark = s->next_id;
    *ret = TAKE_PTR(s);
    return 0;
}

snap_store *
snap_store_free(snap_store *s)
{
    if (!s)
        return NULL;
    for (size_t i = 0; i < s->n_infos; i++)
        info_free(s->infos[i]);
    free(s->infos);
    s->dir_fd = cc_close(s->dir_fd);
    free(s->root);
    free(s);
    return NULL;
}

int
snap_store_cleanup(snap_store *s, cc_error **err)
{
    return reconcile(s, false, err);
}

/* --- labels ---------------------------------------------------------------------------------- */

static int
labels_validate(const json_t *labels, cc_error **err)
{
    const char *k;
    json_t *v;

    if (!labels)
        return 0;
    json_object_foreach((json_t *)labels, k, v) {
        if (!json_is_string(v))
            return cc_error_msg(err, -EINVAL, "label \"%s\": not a string", k);
        if (strlen(k) + json_string_length(v) > SNAP_LABEL_LENGTH_MAX)
            return cc_error_msg(err, -EINVAL, "label key and value length (%zu bytes) greater "
                                "than maximum size (%d bytes): invalid argument",
                                strlen(k) + json_string_length(v), SNAP_LABEL_LENGTH_MAX);
    }
    return 0;
}

static json_t *
labels_copy(const json_t *labels)
{
    return labels ? json_deep_copy(labels) : json_object();
}

/* --- creation ---------------------------------------------------------------------------------- */

/* Makes <id>/{fs,work}; fs owned like parent_fs's (when given) and mode 0755. */
static int
make_dirs(snap_store *s, uint64_t id, const snap_info *parent, cc_error **err)
{
    char dir[32], sub[48];
    snprintf(dir, sizeof(dir), "%" PRIu64, id);
    if (mkdirat(s->dir_fd, dir, 0700) < 0)
        return cc_error_set(err, -errno, "mkdir snapshot dir '%s'", dir);
    snprintf(sub, sizeof(sub), "%s/work", dir);
    if (mkdirat(s->dir_fd, sub, 0711) < 0)
        return cc_error_set(err, -errno, "mkdir '%s'", sub);
    snprintf(sub, sizeof(sub), "%s/fs", dir);
    if (mkdirat(s->dir_fd, sub, 0755) < 0)
        return cc_error_set(err, -errno, "mkdir '%s'", sub);
    if (fchmodat(s->dir_fd, sub, 0755, 0) < 0)
        return cc_error_set(err, -errno, "chmod '%s'", sub);
    if (parent) {
        char pfs[48];
        struct stat st;
        snprintf(pfs, sizeof(pfs), "%" PRIu64 "/fs", parent->id);
        if (fstatat(s->dir_fd, pfs, &st, AT_SYMLINK_NOFOLLOW) < 0)
            return cc_error_set(err, -errno, "stat '%s'", pfs);
        if (fchownat(s->dir_fd, sub, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0)
            return cc_error_set(err, -errno, "chown '%s'", sub);
    }
    return 0;
}

/* Creates and indexes a snapshot; *ret (may be NULL) borrows it. */
static int
create(snap_store *s, snap_kind kind, const char *name, const snap_info *parent,
       json_t *labels /* taken */, snap_info **ret, cc_error **err)
{
    if (s->next_id >= s->id_mark) {
        /* reserve the next 64 ids first (write + rename: a kill -9 leaves the old or the new
         * mark, both above every id handed out) */
        char buf[32];
        int len = snprintf(buf, sizeof(buf), "%" PRIu64 "\n", s->next_id + 64);
        _cleanup_close_ int root_fd = open(s->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
        int q = root_fd < 0 ? -errno
                            : cc_write_file_atomic(root_fd, "id-mark", buf, (size_t)len, 0600, err);
        if (q < 0)
            return cc_error_prefix(err, q, "reserve snapshot ids");
        s->id_mark = s->next_id + 64;
    }
    _cleanup_(info_freep) snap_info *info = cc_xzalloc(sizeof(*info));
    info->id = s->next_id++;
    info->name = cc_xstrdup(name);
    info->parent = parent ? cc_xstrdup(parent->name) : NULL;
    info->kind = kind;
    info->created = info->updated = now();
    info->labels = labels;

    int r = make_dirs(s, info->id, parent, err);
    if (r >= 0)
        r = info_write(s, info, err);
    if (r < 0) {
        char dir[32];
        snprintf(dir, sizeof(dir), "%" PRIu64, info->id);
        (void)cc_rm_rf_at(s->dir_fd, dir, NULL);
        return r;
    }
    if (ret)
        *ret = info;
    index_add(s, TAKE_PTR(info));
    return 0;
}

static bool
chain_has_marker(const snap_store *s, const snap_info *info)
{
    for (size_t depth = 0; info && depth <= s->n_infos; depth++) {
        const char *v = json_string_value(json_object_get(info->labels, SNAP_LABEL_GUESTPULL));
        if (v && cc_streq(v, "true"))
            return true;
        info = info->parent ? snap_store_find(s, info->parent) : NULL;
    }
    return false;
}

static bool
is_extract_key(const char *key)
{
    return cc_startswith(key, "extract-") || strstr(key, "/extract-");
}

/*
 * The guest-pull Prepare (§3.2, §8 rule 1): commits a placeholder for (target, parent)
 * unless one exists, then answers -EEXIST.
 */
static bool
remote_exists(const snap_store *s, const char *target, const char *pname)
{
    for (size_t i = 0; i < s->n_infos; i++) {
        const snap_info *o = s->infos[i];
        const char *ref = json_string_value(json_object_get(o->labels, SNAP_LABEL_TARGET));
        if (o->kind == SNAP_KIND_COMMITTED && ref && cc_streq(ref, target) &&
            (o->parent && pname ? cc_streq(o->parent, pname) : o->parent == pname))
            return true;
    }
    return false;
}

static int
prepare_remote(snap_store *s, const char *target, const snap_info *parent, const json_t *labels,
               cc_error **err)
{
    const char *pname = parent ? parent->name : NULL;

    if (!remote_exists(s, target, pname)) {
        _cleanup_free_ char *name = NULL;
        if (!snap_store_find(s, target))
            name = cc_xstrdup(target);
        else
            name = cc_xasprintf("%s@guestpull-%" PRIu64, target, s->next_id);
        json_t *l = labels_copy(labels);
        json_object_set_new(l, SNAP_LABEL_GUESTPULL, json_string("true"));
        int r = create(s, SNAP_KIND_COMMITTED, name, parent, l, NULL, err);
        if (r < 0)
            return cc_error_prefix(err, r, "commit guest-pull snapshot \"%s\"", target);
        cc_log(CC_LOG_INFO, "guest pull: committed \"%s\" (parent \"%s\")", name,
               pname ? pname : "");
    }
    return cc_error_msg(err, -EEXIST, "target snapshot \"%s\": already exists", target);
}

int
snap_store_prepare(snap_store *s, snap_kind kind, const char *key, const char *parent,
                   const json_t *labels, snap_mount *ret_mount, cc_error **err)
{
    int r;

    if (kind != SNAP_KIND_ACTIVE && kind != SNAP_KIND_VIEW)
        return cc_error_msg(err, -EINVAL, "invalid kind %d", (int)kind);
    if (!key || !*key)
        return cc_error_msg(err, -EINVAL, "snapshot key must not be empty: invalid argument");
    r = labels_validate(labels, err);
    if (r < 0)
        return r;

    const snap_info *pinfo = NULL;
    if (parent && *parent) {
        pinfo = snap_store_find(s, parent);
        if (!pinfo)
            return cc_error_msg(err, -ENOENT, "parent snapshot %s does not exist: not found",
                                parent);
        if (pinfo->kind != SNAP_KIND_COMMITTED)
            return cc_error_msg(err, -EINVAL, "parent %s is not committed snapshot: invalid "
                                "argument", parent);
    }

    const char *target = json_string_value(json_object_get(labels, SNAP_LABEL_TARGET));
    if (kind == SNAP_KIND_ACTIVE && target && *target)
        return prepare_remote(s, target, pinfo, labels, err);

    if (snap_store_find(s, key))
        return cc_error_msg(err, -EEXIST, "snapshot %s: already exists", key);
    if (kind == SNAP_KIND_ACTIVE && is_extract_key(key) && !chain_has_marker(s, pinfo))
        return cc_error_msg(err, -EBUSY,
                            "cloak-snapshotter: host-side image unpack (ctr images pull) is "
                            "not supported: pull through CRI (cloakctl pull) so that layers "
                            "are fetched inside the guest");

    snap_info *info;
    r = create(s, kind, key, pinfo, labels_copy(labels), &info, err);
    if (r < 0)
        return r;
    return snap_mount_build(s, info, ret_mount, err);
}

/* --- the other methods ------------------------------------------------------------------ */

int
snap_store_stat(snap_store *s, const char *key, const snap_info **ret, cc_error **err)
{
    const snap_info *info = snap_store_find(s, key);
    if (!info)
        return cc_error_msg(err, -ENOENT, "snapshot %s does not exist: not found", key);
    *ret = info;
    return 0;
}

int
snap_store_mounts(snap_store *s, const char *key, snap_mount *ret_mount, cc_error **err)
{
    const snap_info *info = snap_store_find(s, key);
    if (!info)
        return cc_error_msg(err, -ENOENT, "snapshot %s does not exist: not found", key);
    if (info->kind == SNAP_KIND_COMMITTED)
        return cc_error_msg(err, -EBUSY, "snapshot %s is not active or view: failed precondition",
                            key);
    return snap_mount_build(s, info, ret_mount, err);
}

int
snap_store_commit(snap_store *s, const char *name, const char *key, const json_t *labels,
                  cc_error **err)
{
    if (!name || !*name)
        return cc_error_msg(err, -EINVAL, "snapshot name must not be empty: invalid argument");
    int r = labels_validate(labels, err);
    if (r < 0)
        return r;
    snap_info *info = snap_store_find(s, key);
    if (!info)
        return cc_error_msg(err, -ENOENT, "snapshot %s does not exist: not found", key);
    if (info->kind != SNAP_KIND_ACTIVE)
        return cc_error_msg(err, -EBUSY, "snapshot %s is not active: failed precondition", key);
    if (snap_store_find(s, name))
        return cc_error_msg(err, -EEXIST, "snapshot %s: already exists", name);

    snap_info next = *info;
    next.name = (char *)name;
    next.kind = SNAP_KIND_COMMITTED;
    next.created = next.updated = now();
    next.labels = labels_copy(labels);
    r = info_write(s, &next, err);
    if (r < 0) {
        json_decref(next.labels);
        return cc_error_prefix(err, r, "commit %s", key);
    }
    free(info->name);
    info->name = cc_xstrdup(name);
    info->kind = SNAP_KIND_COMMITTED;
    info->created = next.created;
    info->updated = next.updated;
    json_decref(info->labels);
    info->labels = next.labels;
    return 0;
}

int
snap_store_remove(snap_store *s, const char *key, cc_error **err)
{
    snap_info *info = snap_store_find(s, key);
    if (!info)
        return cc_error_msg(err, -ENOENT, "snapshot %s does not exist: not found", key);
    if (has_children(s, info->name))
        return cc_error_msg(err, -EBUSY, "cannot remove snapshot %s with child: failed "
                            "precondition", key);

    char dir[32], doomed[48];
    snprintf(dir, sizeof(dir), "%" PRIu64, info->id);
    snprintf(doomed, sizeof(doomed), REMOVING_PREFIX "%" PRIu64, info->id);
    if (renameat(s->dir_fd, dir, s->dir_fd, doomed) < 0)
        return cc_error_set(err, -errno, "remove snapshot %s: rename '%s'", key, dir);
    if (fsync(s->dir_fd) < 0)
        cc_log_errno(CC_LOG_WARNING, -errno, "fsync '%s/snapshots'", s->root);
    index_remove(s, info);
    _cleanup_error_ cc_error *e = NULL;
    if (cc_rm_rf_at(s->dir_fd, doomed, &e) < 0)
        cc_log(CC_LOG_WARNING, "remove '%s' (left for Cleanup): %s", doomed, cc_error_message(e));
    return 0;
}

int
snap_store_update(snap_store *s, const char *name, const json_t *labels, char *const *paths,
                  size_t n_paths, const snap_info **ret, cc_error **err)
{
    snap_info *info = snap_store_find(s, name);
    if (!info)
        return cc_error_msg(err, -ENOENT, "snapshot %s does not exist: not found", name);
    int r = labels_validate(labels, err);
    if (r < 0)
        return r;

    _cleanup_json_ json_t *next = NULL;
    if (n_paths == 0)
        next = labels_copy(labels);
    else {
        next = json_deep_copy(info->labels);
        for (size_t i = 0; i < n_paths; i++) {
            const char *p = paths[i];
            if (cc_streq(p, "labels")) {
                json_decref(next);
                next = labels_copy(labels);
            } else if (cc_startswith(p, "labels.") && p[7]) {
                json_t *v = json_object_get(labels, p + 7);
                if (v)
                    json_object_set_new(next, p + 7, json_deep_copy(v));
                else
                    json_object_del(next, p + 7);
            } else
                return cc_error_msg(err, -EINVAL, "cannot update %s field on snapshot %s: "
                                    "invalid argument", p, name);
        }
    }
    r = labels_validate(next, err);
    if (r < 0)
        return r;

    snap_info updated = *info;
    updated.labels = next;
    updated.updated = now();
    r = info_write(s, &updated, err);
    if (r < 0)
        return cc_error_prefix(err, r, "update %s", name);
    json_decref(info->labels);
    info->labels = TAKE_PTR(next);
    info->updated = updated.updated;
    *ret = info;
    return 0;
}

/* --- usage ------------------------------------------------------------------------------------ */

/* Adds up the allocated bytes and the inodes below dir_fd (taken), not crossing devices. */
static int
du_dir(int dir_fd, dev_t dev, unsigned depth, int64_t *size, int64_t *inodes)
{
    if (depth > 4096) {
        (void)close(dir_fd);
        return -ELOOP;
    }
    DIR *d = fdopendir(dir_fd);
    if (!d) {
        int r = -errno;
        (void)close(dir_fd);
        return r;
    }
    int r = 0;
    struct dirent *de;
    while (r >= 0 && (de = readdir(d))) {
        if (cc_streq(de->d_name, ".") || cc_streq(de->d_name, ".."))
            continue;
        struct stat st;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno == ENOENT)
                continue;
            r = -errno;
            break;
        }
        (*inodes)++;
        *size += (int64_t)st.st_blocks * 512;
        if (S_ISDIR(st.st_mode) && st.st_dev == dev) {
            int fd = openat(dirfd(d), de->d_name,
                            O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (fd >= 0)
                r = du_dir(fd, dev, depth + 1, size, inodes);
        }
    }
    closedir(d);
    return r;
}

int
snap_store_usage(snap_store *s, const char *key, int64_t *ret_size, int64_t *ret_inodes,
                 cc_error **err)
{
    const snap_info *info = snap_store_find(s, key);
    if (!info)
        return cc_error_msg(err, -ENOENT, "snapshot %s does not exist: not found", key);
    char path[48];
    snprintf(path, sizeof(path), "%" PRIu64 "/fs", info->id);
    int fd = openat(s->dir_fd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return cc_error_set(err, -errno, "usage of %s: open '%s'", key, path);
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int r = -errno;
        (void)close(fd);
        return cc_error_set(err, r, "usage of %s: stat '%s'", key, path);
    }
    int64_t size = 0, inodes = 0;
    int r = du_dir(fd, st.st_dev, 0, &size, &inodes);
    if (r < 0)
        return cc_error_set(err, r, "usage of %s", key);
    *ret_size = size;
    *ret_inodes = inodes;
    return 0;
}
