/* SPDX-License-Identifier: Apache-2.0 */
/*
 * containerd's config.json + the task's rootfs mounts -> what CreateContainer and
 * CreateSandbox send the agent (spec.h). The OCI document is constrained as JSON (a deep copy,
 * so indexes in error messages are containerd's) and only then converted with lib/oci.c.
 */
#define _GNU_SOURCE
#include "spec.h"

#include "json.h"
#include "oci.h"
#include "util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VOLUME_OPTION "io.katacontainers.volume="
#define VOLUME_GUEST_PULL "image_guest_pull"
#define ROOTFS_MOUNT_TYPE "fuse.nydus-overlayfs"
#define VOLUME_BASE64_MAX (1u << 20) /* the snapshotter's option is a few hundred bytes */
#define REF_MAX 4096
#define TAG_MAX 128
#define CONTAINER_ID_MAX 76 /* containerd's identifiers.Validate */
#define MIB (UINT64_C(1) << 20)

/* Mount destinations whose host file is copied into the guest (CRI's and kubelet's). */
static const char *const copied_destinations[] = {
    "/etc/hosts",
    "/etc/hostname",
    "/etc/resolv.conf",
    "/dev/termination-log",
};

/* Kernel filesystems the guest mounts itself; nothing of the host is shared. */
static const char *const kept_types[] = {
    "proc", "sysfs", "tmpfs", "devpts", "mqueue", "cgroup", "cgroup2",
};

static bool
str_in(const char *s, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (cc_streq(s, list[i]))
            return true;
    return false;
}

/* ---- base64 (RFC 4648 standard alphabet, padded, as Go's StdEncoding writes it) ---------- */

static int
base64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Strict: length a multiple of 4, '=' only as the last one or two characters, no other
 * characters, unused bits zero. *ret is NUL-terminated (not counted in *ret_len). */
static int
base64_decode(const char *s, unsigned char **ret, size_t *ret_len, cc_error **err)
{
    size_t len = strlen(s), pad = 0, n = 0;

    if (len == 0)
        return cc_error_msg(err, -EINVAL, "empty value");
    if (len % 4 != 0)
        return cc_error_msg(err, -EINVAL, "invalid base64: length %zu is not a multiple of 4",
                            len);
    if (s[len - 1] == '=')
        pad = s[len - 2] == '=' ? 2 : 1;

    _cleanup_free_ unsigned char *out = cc_xmalloc(len / 4 * 3 + 1);
    for (size_t i = 0; i < len; i += 4) {
        uint32_t quad = 0;
        bool last = i + 4 == len;
        for (size_t k = 0; k < 4; k++) {
            int v;
            if (last && k >= 4 - pad)
                v = 0;
            else if ((v = base64_value((unsigned char)s[i + k])) < 0)
                return cc_error_msg(err, -EINVAL, "invalid base64: character %zu is not allowed",
                                    i + k);
            quad = quad << 6 | (uint32_t)v;
        }
        if (last && ((pad == 1 && (quad & 0xff)) || (pad == 2 && (quad & 0xffff))))
            return cc_error_msg(err, -EINVAL, "invalid base64: non-zero padding bits");
        out[n++] = (unsigned char)(quad >> 16);
        if (!last || pad < 2)
            out[n++] = (unsigned char)(quad >> 8);
        if (!last || pad < 1)
            out[n++] = (unsigned char)quad;
    }
    out[n] = '\0';
    *ret = TAKE_PTR(out);
    *ret_len = n;
    return 0;
}

int
shim_volume_decode(const char *base64, json_t **ret, cc_error **err)
{
    _cleanup_free_ unsigned char *text = NULL;
    _cleanup_json_ json_t *v = NULL;
    const char *type = NULL;
    size_t len = 0;
    int r;

    if (!base64)
        return cc_error_msg(err, -EINVAL, "io.katacontainers.volume: missing value");
    if (strlen(base64) > VOLUME_BASE64_MAX)
        return cc_error_msg(err, -E2BIG, "io.katacontainers.volume: more than %u bytes",
                            VOLUME_BASE64_MAX);
    r = base64_decode(base64, &text, &len, err);
    if (r < 0)
        return cc_error_prefix(err, r, "io.katacontainers.volume");
    r = cc_json_load_buffer((const char *)text, len, "io.katacontainers.volume", VOLUME_BASE64_MAX,
                            &v, err);
    if (r < 0)
        return r;
    if (!json_is_object(v))
        return cc_error_msg(err, -EINVAL, "io.katacontainers.volume: expected a JSON object, got %s",
                            cc_json_type_name(v));
    r = cc_json_get_string(v, "volume_type", &type, err);
    if (r == -ENOENT || (r >= 0 && !*type))
        return cc_error_msg(err, -EINVAL, "io.katacontainers.volume: no volume_type");
    if (r < 0)
        return cc_error_prefix(err, r, "io.katacontainers.volume");
    *ret = TAKE_PTR(v);
    return 0;
}

/* ---- image references --------------------------------------------------------------------- */

static bool
digest_is_valid(const char *d)
{
    const char *hex = cc_startswith(d, "sha256:");
    return hex && strlen(hex) == 64 && strspn(hex, "0123456789abcdef") == 64;
}

static bool
tag_is_valid(const char *t, size_t n)
{
    static const char word[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_";
    if (n == 0 || n > TAG_MAX || !strchr(word, t[0]))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!strchr(word, t[i]) && t[i] != '.' && t[i] != '-')
            return false;
    return true;
}

/* host[:port]/path/components, or path/components (docker.io style): no tag, no digest. */
static bool
repository_is_valid(const char *r, size_t n)
{
    static const char chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/:";
    const char *slash = memchr(r, '/', n);
    size_t first = slash ? (size_t)(slash - r) : n;

    if (n == 0 || r[0] == '/' || r[n - 1] == '/')
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!r[i] || !strchr(chars, r[i]))
            return false;
        if (r[i] == '/' && r[i + 1] == '/')
            return false;
        /* a ':' only as the registry's port, which is digits */
        if (r[i] == ':' && (!slash || i >= first || i + 1 == first ||
                            strspn(r + i + 1, "0123456789") != first - i - 1))
            return false;
    }
    return true;
}

/*
 * Splits "repo[:tag][@sha256:...]" into a new *ret_repo and a new *ret_digest (NULL when
 * none). name is what errors call the ref.
 */
static int
ref_parse(const char *ref, const char *name, char **ret_repo, char **ret_digest, cc_error **err)
{
    size_t len = strlen(ref), n;
    const char *at = strchr(ref, '@'), *slash, *colon;

    if (len == 0 || len > REF_MAX)
        return cc_error_msg(err, -EINVAL, "%s: '%s' is not an image reference", name, ref);
    if (at && !digest_is_valid(at + 1))
        return cc_error_msg(err, -EINVAL, "%s: '%s': the digest is not sha256:<64 lowercase hex>",
                            name, ref);
    n = at ? (size_t)(at - ref) : len;
    slash = memrchr(ref, '/', n);
    colon = memrchr(ref, ':', n);
    if (colon && (!slash || colon > slash)) {
        if (!tag_is_valid(colon + 1, n - (size_t)(colon + 1 - ref)))
            return cc_error_msg(err, -EINVAL, "%s: '%s' has an invalid tag", name, ref);
        n = (size_t)(colon - ref);
    }
    if (!repository_is_valid(ref, n))
        return cc_error_msg(err, -EINVAL, "%s: '%s' is not an image reference", name, ref);
    *ret_repo = cc_xstrndup(ref, n);
    *ret_digest = at ? cc_xstrdup(at + 1) : NULL;
    return 0;
}

/* ---- config.json helpers ------------------------------------------------------------------ */

const char *
shim_config_annotation(const json_t *config, const char *key)
{
    json_t *a = json_object_get(config, "annotations");
    return json_is_object(a) ? json_string_value(json_object_get(a, key)) : NULL;
}

/* Like shim_config_annotation but a present non-string (or a non-object annotations) is an
 * error. *ret is NULL when absent. */
static int
annotation_get(const json_t *config, const char *key, const char **ret, cc_error **err)
{
    _cleanup_free_ char *path = cc_xasprintf("annotations[\"%s\"]", key);
    const char *v = NULL;
    int r = cc_json_get_string(config, path, &v, err);
    if (r < 0 && r != -ENOENT)
        return r;
    *ret = v;
    return 0;
}

/* The object member key of parent (a top-level key: errors name it), created ({}) when absent
 * or null. */
static int
object_member(json_t *parent, const char *key, json_t **ret, cc_error **err)
{
    json_t *v = NULL;
    int r = cc_json_get_object(parent, key, &v, err);
    if (r == -ENOENT) {
        v = json_object();
        if (!v || json_object_set_new(parent, key, v) < 0)
            abort();
    } else if (r < 0) {
        return r;
    }
    *ret = v;
    return 0;
}

static void
json_set_string(json_t *obj, const char *key, const char *value)
{
    if (json_object_set_new(obj, key, json_string(value)) < 0)
        abort();
}

bool
shim_id_is_valid(const char *id, size_t max)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > max || !strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTU"
                                                  "VWXYZ0123456789",
                                                  id[0]))
        return false;
    return strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

/* ---- mounts and namespaces ---------------------------------------------------------------- */

static bool
is_bind(const char *type, char *const *options)
{
    if (cc_streq(type, "bind") || cc_streq(type, "rbind"))
        return true;
    for (size_t i = 0; options && options[i]; i++)
        if (cc_streq(options[i], "bind") || cc_streq(options[i], "rbind"))
            return true;
    return false;
}

static void
copy_add(shim_container_spec *s, const char *host_path, char *guest_path /* taken */)
{
    s->copies = cc_xreallocarray(s->copies, s->n_copies + 1, sizeof(*s->copies));
    s->copies[s->n_copies++] = (shim_copy_file){
        .host_path = cc_xstrdup(host_path),
        .guest_path = guest_path,
    };
}

/* One entry of mounts[]: kept, rewritten (copies, /dev/shm) or refused. */
static int
mount_constrain(json_t *cfg, size_t i, const char *cid, shim_container_spec *s, cc_error **err)
{
    _cleanup_free_ char *p_dest = cc_xasprintf("mounts[%zu].destination", i);
    _cleanup_free_ char *p_type = cc_xasprintf("mounts[%zu].type", i);
    _cleanup_free_ char *p_source = cc_xasprintf("mounts[%zu].source", i);
    _cleanup_free_ char *p_options = cc_xasprintf("mounts[%zu].options", i);
    _cleanup_json_strv_ char **options = NULL;
    const char *dest = NULL, *type = NULL, *source = NULL;
    json_t *m = json_array_get(json_object_get(cfg, "mounts"), i);
    int r;

    r = cc_json_get_string(cfg, p_dest, &dest, err);
    if (r == -ENOENT)
        return cc_error_msg(err, -EINVAL, "field '%s': missing", p_dest);
    if (r < 0)
        return r;
    r = cc_json_get_string(cfg, p_type, &type, err);
    if (r < 0 && r != -ENOENT)
        return r;
    r = cc_json_get_string(cfg, p_source, &source, err);
    if (r < 0 && r != -ENOENT)
        return r;
    r = cc_json_get_strv(cfg, p_options, CC_OCI_MAX_ELEMENTS, &options, err);
    if (r < 0 && r != -ENOENT)
        return r;

    if (!is_bind(type, options)) {
        if (str_in(type, kept_types, ELEMENTSOF(kept_types)))
            return 0;
        return cc_error_msg(err, -EOPNOTSUPP,
                            "mounts[%zu] (destination '%s'): mount type '%s' is not supported in "
                            "the guest (only proc, sysfs, tmpfs, devpts, mqueue, cgroup)",
                            i, dest, type ? type : "");
    }
    if (cc_streq(dest, "/dev/shm")) {
        json_set_string(m, "source", SHIM_GUEST_SHM);
        return 0;
    }
    if (!str_in(dest, copied_destinations, ELEMENTSOF(copied_destinations)))
        return cc_error_msg(err, -EPERM,
                            "mounts[%zu] (destination '%s'): host bind mounts are not shared with "
                            "the guest (source '%s')",
                            i, dest, source ? source : "");
    if (!source || source[0] != '/')
        return cc_error_msg(err, -EINVAL,
                            "mounts[%zu] (destination '%s'): source '%s' is not an absolute path",
                            i, dest, source ? source : "");
    _cleanup_free_ char *guest = cc_xasprintf(SHIM_GUEST_SHARED "/%s-%s", cid,
                                              strrchr(dest, '/') + 1);
    for (size_t k = 0; k < s->n_copies; k++)
        if (cc_streq(s->copies[k].guest_path, guest))
            return cc_error_msg(err, -EINVAL, "mounts[%zu] (destination '%s'): given twice", i,
                                dest);
    copy_add(s, source, cc_xstrdup(guest));
    json_set_string(m, "source", guest); /* source is borrowed from m: copied first */
    return 0;
}

static int
mounts_constrain(json_t *cfg, const char *cid, shim_container_spec *s, cc_error **err)
{
    json_t *mounts = NULL;
    int r = cc_json_get_array(cfg, "mounts", &mounts, err);
    if (r == -ENOENT)
        return 0;
    if (r < 0)
        return r;
    if (json_array_size(mounts) > CC_OCI_MAX_ELEMENTS)
        return cc_error_msg(err, -E2BIG, "field 'mounts': more than %d elements",
                            CC_OCI_MAX_ELEMENTS);
    for (size_t i = 0; i < json_array_size(mounts); i++) {
        _cleanup_free_ char *name = cc_xasprintf("mounts[%zu]", i);
        json_t *m = NULL;
        r = cc_json_as_object(json_array_get(mounts, i), name, &m, err);
        if (r == -ENOENT)
            return cc_error_msg(err, -EINVAL, "field '%s': expected object, got null", name);
        if (r < 0)
            return r;
        r = mount_constrain(cfg, i, cid, s, err);
        if (r < 0)
            return r;
    }
    return 0;
}

/* network dropped (the VM is the pod's network), every other namespace's path dropped. */
static int
namespaces_constrain(json_t *cfg, json_t *linux_obj, cc_error **err)
{
    json_t *ns = NULL;
    int r = cc_json_get_array(cfg, "linux.namespaces", &ns, err);
    if (r == -ENOENT)
        return 0;
    if (r < 0)
        return r;
    if (json_array_size(ns) > CC_OCI_MAX_ELEMENTS)
        return cc_error_msg(err, -E2BIG, "field 'linux.namespaces': more than %d elements",
                            CC_OCI_MAX_ELEMENTS);

    _cleanup_json_ json_t *out = json_array();
    if (!out)
        abort();
    for (size_t i = 0; i < json_array_size(ns); i++) {
        _cleanup_free_ char *p_type = cc_xasprintf("linux.namespaces[%zu].type", i);
        const char *type = NULL;
        r = cc_json_get_string(cfg, p_type, &type, err);
        if (r == -ENOENT)
            return cc_error_msg(err, -EINVAL, "field '%s': missing", p_type);
        if (r < 0)
            return r;
        if (cc_streq(type, "network"))
            continue;
        json_t *n = json_array_get(ns, i);
        (void)json_object_del(n, "path");
        if (json_array_append(out, n) < 0)
            abort();
    }
    if (json_object_set(linux_obj, "namespaces", out) < 0)
        abort();
    return 0;
}

/* Everything but mounts: namespaces, host-only fields, cgroupsPath, root.path. */
static int
config_constrain(json_t *cfg, const char *cid, const char *mount_point, cc_error **err)
{
    json_t *linux_obj = NULL, *process = NULL, *root = NULL, *resources = NULL;
    int r;

    (void)json_object_del(cfg, "hooks");
    r = object_member(cfg, "linux", &linux_obj, err);
    if (r < 0)
        return r;
    r = namespaces_constrain(cfg, linux_obj, err);
    if (r < 0)
        return r;
    (void)json_object_del(linux_obj, "devices");
    (void)json_object_del(linux_obj, "seccomp");
    (void)json_object_del(linux_obj, "mountLabel");
    r = cc_json_get_object(cfg, "linux.resources", &resources, err);
    if (r >= 0)
        (void)json_object_del(resources, "devices");
    else if (r != -ENOENT)
        return r;
    _cleanup_free_ char *cgroups = cc_xasprintf("/cloak/%s", cid);
    json_set_string(linux_obj, "cgroupsPath", cgroups);

    r = cc_json_get_object(cfg, "process", &process, err);
    if (r >= 0) {
        (void)json_object_del(process, "apparmorProfile");
        (void)json_object_del(process, "selinuxLabel");
    } else if (r != -ENOENT) {
        return r;
    }
    r = object_member(cfg, "root", &root, err);
    if (r < 0)
        return r;
    json_set_string(root, "path", mount_point);
    return 0;
}

/* ---- rootfs ------------------------------------------------------------------------------- */

/* The decoded guest-pull volume of the task's only rootfs mount. */
static int
rootfs_volume(const shim_spec_input *in, json_t **ret, cc_error **err)
{
    const Containerd__Types__Mount *m;
    const char *b64 = NULL;
    const char *lowerdir = NULL;
    _cleanup_json_ json_t *v = NULL;
    const char *vtype = NULL;
    int r;

    if (in->n_rootfs == 0) {
        const char *root = NULL;
        (void)cc_json_get_string(in->config, "root.path", &root, NULL);
        return cc_error_msg(err, -EPERM,
                            "rootfs: no rootfs mount: the root is the host directory '%s', which "
                            "is not shared with the guest (run an image through cloak-snapshotter)",
                            root ? root : "");
    }
    if (in->n_rootfs > 1)
        return cc_error_msg(err, -EINVAL,
                            "rootfs: %zu mounts, expected exactly one guest-pull mount from "
                            "cloak-snapshotter",
                            in->n_rootfs);
    m = in->rootfs[0];
    if (!m)
        return cc_error_msg(err, -EINVAL, "rootfs: missing mount");
    for (size_t i = 0; i < m->n_options; i++) {
        const char *o = m->options[i], *v_ = NULL;
        if (!o)
            continue;
        if (!lowerdir && cc_startswith(o, "lowerdir="))
            lowerdir = o;
        if ((v_ = cc_startswith(o, VOLUME_OPTION))) {
            if (b64)
                return cc_error_msg(err, -EINVAL, "rootfs: option %s given twice",
                                    "io.katacontainers.volume");
            b64 = v_;
        }
    }
    if (!b64)
        return cc_error_msg(err, -EOPNOTSUPP,
                            "rootfs: a '%s' mount%s%s%s is not a guest-pull mount: cloak-snapshotter "
                            "must be containerd's snapshotter (plugins.\"io.containerd.grpc.v1.cri\""
                            ".containerd snapshotter = \"cloak\"), so that the image is pulled in "
                            "the guest, never shared from the host",
                            m->type ? m->type : "", lowerdir ? " (" : "", lowerdir ? lowerdir : "",
                            lowerdir ? ")" : "");
    if (!cc_streq(m->type, ROOTFS_MOUNT_TYPE))
        return cc_error_msg(err, -EINVAL, "rootfs: mount type '%s', expected '%s'",
                            m->type ? m->type : "", ROOTFS_MOUNT_TYPE);
    r = shim_volume_decode(b64, &v, err);
    if (r < 0)
        return cc_error_prefix(err, r, "rootfs");
    (void)cc_json_get_string(v, "volume_type", &vtype, NULL);
    if (!cc_streq(vtype, VOLUME_GUEST_PULL))
        return cc_error_msg(err, -EOPNOTSUPP,
                            "rootfs: io.katacontainers.volume: volume_type '%s' is not supported "
                            "(only '%s')",
                            vtype, VOLUME_GUEST_PULL);
    *ret = TAKE_PTR(v);
    return 0;
}

/* A copy of the volume's image_pull.metadata ({} when absent), every value a string. */
static int
volume_metadata(const json_t *vol, json_t **ret, cc_error **err)
{
    json_t *meta = NULL;
    const char *key;
    json_t *value;
    int r = cc_json_get_object(vol, "image_pull.metadata", &meta, err);
    if (r < 0 && r != -ENOENT)
        return cc_error_prefix(err, r, "rootfs: io.katacontainers.volume");
    if (r == -ENOENT) {
        *ret = json_object();
        if (!*ret)
            abort();
        return 0;
    }
    json_object_foreach(meta, key, value) {
        if (!json_is_string(value))
            return cc_error_msg(err, -EINVAL,
                                "rootfs: io.katacontainers.volume: field "
                                "'image_pull.metadata[\"%s\"]': expected string, got %s",
                                key, cc_json_type_name(value));
    }
    /* checked for the sandbox too, although its pause bundle ignores it */
    const char *digest = json_string_value(json_object_get(meta, SHIM_LABEL_MANIFEST_DIGEST));
    if (digest && !digest_is_valid(digest))
        return cc_error_msg(err, -EINVAL,
                            "rootfs: io.katacontainers.volume: metadata %s: '%s' is not "
                            "sha256:<64 lowercase hex>",
                            SHIM_LABEL_MANIFEST_DIGEST, digest);
    *ret = json_deep_copy(meta);
    if (!*ret)
        abort();
    return 0;
}

/*
 * What an application container pulls. Pinned: the metadata's own ref and digest. Otherwise
 * the image-name annotation, with a warning, and the orphan digest (if any) removed from the
 * metadata so the agent cannot pin the annotation's repository to another image's digest.
 */
static int
image_ref_choose(const json_t *config, json_t *meta, char **ret_ref, char **ret_warning,
                 cc_error **err)
{
    _cleanup_free_ char *repo = NULL, *ref_digest = NULL;
    const char *ref = json_string_value(json_object_get(meta, SHIM_LABEL_IMAGE_REF));
    const char *digest = json_string_value(json_object_get(meta, SHIM_LABEL_MANIFEST_DIGEST));
    const char *name = NULL;
    int r;

    if (ref && digest) {
        r = ref_parse(ref, "rootfs: io.katacontainers.volume: metadata " SHIM_LABEL_IMAGE_REF,
                      &repo, &ref_digest, err);
        if (r < 0)
            return r;
        if (ref_digest && !cc_streq(ref_digest, digest))
            return cc_error_msg(err, -EINVAL,
                                "rootfs: io.katacontainers.volume: metadata %s '%s' does not "
                                "match %s '%s'",
                                SHIM_LABEL_IMAGE_REF, ref, SHIM_LABEL_MANIFEST_DIGEST, digest);
        *ret_ref = cc_xasprintf("%s@%s", repo, digest);
        *ret_warning = NULL;
        return 0;
    }

    r = annotation_get(config, SHIM_ANN_IMAGE_NAME, &name, err);
    if (r < 0)
        return r;
    if (!name)
        return cc_error_msg(err, -EINVAL,
                            "rootfs: the guest-pull volume has no %s and annotation %s is absent: "
                            "no image to pull",
                            digest ? SHIM_LABEL_IMAGE_REF : SHIM_LABEL_MANIFEST_DIGEST,
                            SHIM_ANN_IMAGE_NAME);
    r = ref_parse(name, "annotations[\"" SHIM_ANN_IMAGE_NAME "\"]", &repo, &ref_digest, err);
    if (r < 0)
        return r;
    (void)json_object_del(meta, SHIM_LABEL_MANIFEST_DIGEST);
    *ret_ref = cc_xstrdup(name);
    *ret_warning = cc_xasprintf("the guest-pull volume has no %s: pulling '%s' (annotation %s) "
                                "unpinned",
                                digest ? SHIM_LABEL_IMAGE_REF " for its manifest digest"
                                       : SHIM_LABEL_MANIFEST_DIGEST,
                                name, SHIM_ANN_IMAGE_NAME);
    return 0;
}

static Grpc__Storage *
storage_new(void)
{
    Grpc__Storage *st = cc_xmalloc(sizeof(*st));
    grpc__storage__init(st);
    return st;
}

static void
strv_add(char ***v, size_t *n, char *s /* taken */)
{
    *v = cc_xreallocarray(*v, *n + 1, sizeof(**v));
    (*v)[(*n)++] = s;
}

static int
rootfs_storage(const shim_spec_input *in, shim_container_spec *s, cc_error **err)
{
    _cleanup_json_ json_t *vol = NULL, *meta = NULL, *image_pull = NULL;
    _cleanup_free_ char *text = NULL;
    int r;

    r = rootfs_volume(in, &vol, err);
    if (r < 0)
        return r;
    r = volume_metadata(vol, &meta, err);
    if (r < 0)
        return r;
    if (s->is_sandbox) {
        s->image_ref = cc_xstrdup("pause");
    } else {
        r = image_ref_choose(in->config, meta, &s->image_ref, &s->warning, err);
        if (r < 0)
            return r;
    }
    json_set_string(meta, SHIM_ANN_CONTAINER_TYPE, s->is_sandbox ? "sandbox" : "container");
    image_pull = json_pack("{s:O}", "metadata", meta);
    if (!image_pull)
        abort();
    text = json_dumps(image_pull, JSON_COMPACT | JSON_SORT_KEYS);
    if (!text)
        return cc_error_msg(err, -EINVAL, "rootfs: cannot encode the image_guest_pull metadata");

    Grpc__Storage *st = storage_new();
    st->driver = cc_xstrdup(VOLUME_GUEST_PULL);
    strv_add(&st->driver_options, &st->n_driver_options,
             cc_xasprintf(VOLUME_GUEST_PULL "=%s", text));
    st->source = cc_xstrdup(s->image_ref);
    st->fstype = cc_xstrdup("overlay");
    st->mount_point = cc_xasprintf(SHIM_GUEST_BASE "/%s/rootfs", in->container_id);
    s->storages = cc_xreallocarray(NULL, 1, sizeof(*s->storages));
    s->storages[0] = st;
    s->n_storages = 1;
    return 0;
}

/* ---- public ------------------------------------------------------------------------------- */

shim_container_spec *
shim_container_spec_free(shim_container_spec *s)
{
    if (!s)
        return NULL;
    free(s->sandbox_id);
    if (s->spec)
        protobuf_c_message_free_unpacked(&s->spec->base, NULL);
    for (size_t i = 0; i < s->n_storages; i++)
        protobuf_c_message_free_unpacked(&s->storages[i]->base, NULL);
    free(s->storages);
    for (size_t i = 0; i < s->n_copies; i++) {
        free(s->copies[i].host_path);
        free(s->copies[i].guest_path);
    }
    free(s->copies);
    free(s->image_ref);
    free(s->warning);
    free(s);
    return NULL;
}

int
shim_spec_build(const shim_spec_input *in, shim_container_spec **ret, cc_error **err)
{
    _cleanup_(shim_container_spec_freep) shim_container_spec *s = NULL;
    _cleanup_json_ json_t *cfg = NULL;
    const char *type = NULL, *sandbox_id = NULL;
    int r;

    if (!in || !shim_id_is_valid(in->container_id, CONTAINER_ID_MAX))
        return cc_error_msg(err, -EINVAL, "container id '%s' is not valid",
                            in && in->container_id ? in->container_id : "");
    if (!json_is_object(in->config))
        return cc_error_msg(err, -EINVAL, "config.json: expected object, got %s",
                            cc_json_type_name(in->config));
    r = annotation_get(in->config, SHIM_ANN_CONTAINER_TYPE, &type, err);
    if (r < 0)
        return r;
    if (type && !cc_streq(type, "sandbox") && !cc_streq(type, "container"))
        return cc_error_msg(err, -EINVAL,
                            "annotations[\"%s\"]: '%s' is neither 'sandbox' nor 'container'",
                            SHIM_ANN_CONTAINER_TYPE, type);
    r = annotation_get(in->config, SHIM_ANN_SANDBOX_ID, &sandbox_id, err);
    if (r < 0)
        return r;

    s = cc_xzalloc(sizeof(*s));
    s->is_sandbox = cc_streq(type, "sandbox");
    s->sandbox_id = cc_xstrdup(sandbox_id && *sandbox_id ? sandbox_id : in->container_id);

    r = rootfs_storage(in, s, err);
    if (r < 0)
        return r;

    cfg = json_deep_copy(in->config);
    if (!cfg)
        abort();
    r = mounts_constrain(cfg, in->container_id, s, err);
    if (r < 0)
        return r;
    r = config_constrain(cfg, in->container_id, s->storages[0]->mount_point, err);
    if (r < 0)
        return r;
    r = cc_oci_spec_from_json(cfg, &s->spec, err);
    if (r < 0)
        return r;
    *ret = TAKE_PTR(s);
    return 0;
}

int
shim_sandbox_request(const shim_container_spec *s, const json_t *config, size_t shm_size,
                     Grpc__CreateSandboxRequest **ret, cc_error **err)
{
    const char *hostname = NULL;
    int r;

    if (!s || !s->is_sandbox)
        return cc_error_msg(err, -EINVAL, "CreateSandbox needs the pod's sandbox container");
    r = cc_json_get_string(config, "hostname", &hostname, err);
    if (r < 0 && r != -ENOENT)
        return r;

    Grpc__Storage *shm = storage_new();
    shm->driver = cc_xstrdup("ephemeral");
    shm->source = cc_xstrdup("shm");
    shm->fstype = cc_xstrdup("tmpfs");
    shm->mount_point = cc_xstrdup(SHIM_GUEST_SHM);
    strv_add(&shm->options, &shm->n_options, cc_xstrdup("noexec"));
    strv_add(&shm->options, &shm->n_options, cc_xstrdup("nosuid"));
    strv_add(&shm->options, &shm->n_options, cc_xstrdup("nodev"));
    strv_add(&shm->options, &shm->n_options, cc_xstrdup("mode=1777"));
    strv_add(&shm->options, &shm->n_options,
             cc_xasprintf("size=%zu", shm_size ? shm_size : (size_t)SHIM_SHM_SIZE_DEFAULT));

    Grpc__CreateSandboxRequest *req = cc_xmalloc(sizeof(*req));
    grpc__create_sandbox_request__init(req);
    req->hostname = cc_xstrdup(hostname ? hostname : "");
    req->sandbox_id = cc_xstrdup(s->sandbox_id);
    req->storages = cc_xreallocarray(NULL, 1, sizeof(*req->storages));
    req->storages[0] = shm;
    req->n_storages = 1;
    *ret = req;
    return 0;
}

/* An annotation holding a decimal int64 (CRI writes strconv.FormatInt); absent: *ret = 0. */
static int
annotation_int64(const json_t *config, const char *key, int64_t *ret, cc_error **err)
{
    const char *v = NULL;
    char *end = NULL;
    long long n;
    int r = annotation_get(config, key, &v, err);
    if (r < 0)
        return r;
    if (!v) {
        *ret = 0;
        return 0;
    }
    errno = 0;
    n = strtoll(v, &end, 10);
    if (!*v || *end || errno == ERANGE || !strchr("-0123456789", v[0]))
        return cc_error_msg(err, -EINVAL, "annotations[\"%s\"]: '%s' is not an integer", key, v);
    *ret = n;
    return 0;
}

int
shim_sandbox_sizing(const json_t *config, unsigned base_vcpus, unsigned max_vcpus,
                    unsigned base_memory_mib, unsigned max_memory_mib, unsigned *ret_vcpus,
                    unsigned *ret_memory_mib, cc_error **err)
{
    int64_t quota = 0, period = 0, memory = 0;
    uint64_t vcpus = base_vcpus, mem = base_memory_mib;
    int r;

    r = annotation_int64(config, SHIM_ANN_SANDBOX_CPU_QUOTA, &quota, err);
    if (r < 0)
        return r;
    r = annotation_int64(config, SHIM_ANN_SANDBOX_CPU_PERIOD, &period, err);
    if (r < 0)
        return r;
    r = annotation_int64(config, SHIM_ANN_SANDBOX_MEMORY, &memory, err);
    if (r < 0)
        return r;
    /* int64 operands: the sums below cannot wrap a uint64 */
    if (quota > 0 && period > 0)
        vcpus += ((uint64_t)quota + (uint64_t)period - 1) / (uint64_t)period;
    if (memory > 0)
        mem += ((uint64_t)memory + MIB - 1) / MIB;
    *ret_vcpus = (unsigned)(vcpus < max_vcpus ? vcpus : max_vcpus);
    *ret_memory_mib = (unsigned)(mem < max_memory_mib ? mem : max_memory_mib);
    return 0;
}
