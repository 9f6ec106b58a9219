/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The mounts handed to containerd. Ordinary snapshots: exactly those of containerd 1.6's
 * overlay snapshotter (snapshots/overlay/overlay.go mounts()). Snapshots above a guest-pull
 * layer: one fuse.nydus-overlayfs mount whose io.katacontainers.volume option tells the
 * shim to pull the image in the guest (specs/guest-pull-snapshotter.md §4.3, §8 rule 3).
 */
#define _GNU_SOURCE
#include "store-priv.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include <openssl/evp.h>
#include "util.h"

#define VOLUME_OPTION "io.katacontainers.volume="

char *
snap_base64_encode(const void *buf, size_t len)
{
    char *out = cc_xmalloc((len + 2) / 3 * 4 + 1);
    (void)EVP_EncodeBlock((unsigned char *)out, buf, (int)len); /* standard, padded, no newlines */
    return out;
}

static void
add_option(snap_mount *m, char *opt /* taken */)
{
    m->options = cc_xreallocarray(m->options, m->n_options + 1, sizeof(*m->options));
    m->options[m->n_options++] = opt;
}

static char *
fs_path(const snap_store *s, uint64_t id)
{
    return cc_xasprintf("%s/snapshots/%" PRIu64 "/fs", s->root, id);
}

/* "lowerdir=<nearest parent fs>:...:<root fs>" of the chain above info. */
static char *
lowerdir_option(const snap_store *s, const snap_info *const *chain, size_t n)
{
    size_t len = strlen("lowerdir=") + 1;
    char **paths = cc_xreallocarray(NULL, n, sizeof(*paths));
    for (size_t i = 0; i < n; i++) {
        paths[i] = fs_path(s, chain[i]->id);
        len += strlen(paths[i]) + 1;
    }
    char *opt = cc_xmalloc(len), *o = stpcpy(opt, "lowerdir=");
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            *o++ = ':';
        o = stpcpy(o, paths[i]);
        free(paths[i]);
    }
    free(paths);
    return opt;
}

/* The KataVirtualVolume option, from the nearest ancestor that names the image. */
static int
volume_option(const snap_info *const *chain, size_t n, char **ret, cc_error **err)
{
    const char *ref = NULL, *digest = NULL;
    for (size_t i = 0; i < n && !ref; i++) {
        ref = json_string_value(json_object_get(chain[i]->labels, SNAP_LABEL_IMAGE_REF));
        if (ref)
            digest = json_string_value(json_object_get(chain[i]->labels,
                                                       SNAP_LABEL_MANIFEST_DIGEST));
    }
    _cleanup_json_ json_t *metadata = json_object();
    if (ref)
        json_object_set_new(metadata, SNAP_LABEL_IMAGE_REF, json_string(ref));
    if (digest)
        json_object_set_new(metadata, SNAP_LABEL_MANIFEST_DIGEST, json_string(digest));
    _cleanup_json_ json_t *v = json_pack("{s:s, s:s, s:{s:O}}", "volume_type",
                                         "image_guest_pull", "source",
                                         ref ? ref : SNAP_DUMMY_IMAGE_REF, "image_pull",
                                         "metadata", metadata);
    if (!v)
        return cc_error_msg(err, -EINVAL, "cannot encode the guest-pull volume");
    _cleanup_free_ char *text = NULL;
    int r = cc_json_dump(v, &text, err);
    if (r < 0)
        return r;
    _cleanup_free_ char *b64 = snap_base64_encode(text, strlen(text));
    *ret = cc_xasprintf(VOLUME_OPTION "%s", b64);
    return 0;
}

static bool
is_guest_pull(const snap_info *info)
{
    const char *v = json_string_value(json_object_get(info->labels, SNAP_LABEL_GUESTPULL));
    return v && cc_streq(v, "true");
}

int
snap_mount_build(const snap_store *s, const snap_info *info, snap_mount *ret, cc_error **err)
{
    /* The parents, nearest first. */
    _cleanup_free_ const snap_info **chain = NULL;
    size_t n = 0;
    bool guest_pull = false;
    for (const char *p = info->parent; p;) {
        const snap_info *pi = snap_store_find(s, p);
        if (!pi)
            return cc_error_msg(err, -ENOENT, "parent snapshot %s of %s does not exist: not found",
                                p, info->name);
        if (n >= s->n_infos)
            return cc_error_msg(err, -ELOOP, "snapshot %s: parent loop", info->name);
        chain = cc_xreallocarray(chain, n + 1, sizeof(*chain));
        chain[n++] = pi;
        guest_pull = guest_pull || is_guest_pull(pi);
        p = pi->parent;
    }

    snap_mount m = {0};
    if (guest_pull) {
        m.type = cc_xstrdup("fuse.nydus-overlayfs");
        m.source = cc_xstrdup("overlay");
        if (info->kind == SNAP_KIND_ACTIVE) {
            add_option(&m, cc_xasprintf("workdir=%s/snapshots/%" PRIu64 "/work", s->root,
                                        info->id));
            _cleanup_free_ char *fs = fs_path(s, info->id);
            add_option(&m, cc_xasprintf("upperdir=%s", fs));
        }
        add_option(&m, lowerdir_option(s, chain, n));
        char *vol = NULL;
        int r = volume_option(chain, n, &vol, err);
        if (r < 0) {
            snap_mount_clear(&m);
            return r;
        }
        add_option(&m, vol);
    } else if (n == 0 || (info->kind == SNAP_KIND_VIEW && n == 1)) {
        /* A bind mount: overlay needs at least one lower dir. */
        m.type = cc_xstrdup("bind");
        m.source = fs_path(s, n == 0 ? info->id : chain[0]->id);
        add_option(&m, cc_xstrdup(info->kind == SNAP_KIND_VIEW ? "ro" : "rw"));
        add_option(&m, cc_xstrdup("rbind"));
    } else {
        m.type = cc_xstrdup("overlay");
        m.source = cc_xstrdup("overlay");
        if (info->kind == SNAP_KIND_ACTIVE) {
            add_option(&m, cc_xasprintf("workdir=%s/snapshots/%" PRIu64 "/work", s->root,
                                        info->id));
            _cleanup_free_ char *fs = fs_path(s, info->id);
            add_option(&m, cc_xasprintf("upperdir=%s", fs));
        }
        add_option(&m, lowerdir_option(s, chain, n));
    }
    *ret = m;
    return 0;
}
