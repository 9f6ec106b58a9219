/* SPDX-License-Identifier: Apache-2.0 */
/*
 * snapshotter/store.c, mount.c, filter.c: the on-disk store in a temporary root (crash
 * safety, containerd's rules), the mounts, label filters and the guest-pull protocol.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* cmocka.h needs these first. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "fs.h"
#include "json.h"
#include "store-priv.h"
#include "util.h"

typedef struct fixture {
    char root[64];
    snap_store *store;
} fixture;

static int
setup(void **state)
{
    fixture *f = cc_xzalloc(sizeof(*f));
    snprintf(f->root, sizeof(f->root), "/tmp/test-store-XXXXXX");
    assert_non_null(mkdtemp(f->root));
    assert_int_equal(snap_store_open(f->root, &f->store, NULL), 0);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fixture *f = *state;
    f->store = snap_store_free(f->store);
    int tmp = open("/tmp", O_PATH | O_DIRECTORY | O_CLOEXEC);
    assert_true(tmp >= 0);
    assert_int_equal(cc_rm_rf_at(tmp, f->root + strlen("/tmp/"), NULL), 0);
    close(tmp);
    free(f);
    return 0;
}

static void
reopen(fixture *f)
{
    f->store = snap_store_free(f->store);
    assert_int_equal(snap_store_open(f->root, &f->store, NULL), 0);
}

/* Prepare (or View) expecting r; the mount is returned (cleared on failure). */
static snap_mount
prepare(fixture *f, snap_kind kind, const char *key, const char *parent, const char *labels_json,
        int expect)
{
    _cleanup_json_ json_t *labels = labels_json ? json_loads(labels_json, 0, NULL) : NULL;
    _cleanup_error_ cc_error *e = NULL;
    snap_mount m = {0};
    int r = snap_store_prepare(f->store, kind, key, parent, labels, &m, &e);
    if (r != expect)
        fail_msg("prepare %s: %d (%s), expected %d", key, r, cc_error_message(e), expect);
    return m;
}

static void
commit(fixture *f, const char *name, const char *key, int expect)
{
    assert_int_equal(snap_store_commit(f->store, name, key, NULL, NULL), expect);
}

/* Prepare key on parent, then commit it as name. */
static void
layer(fixture *f, const char *name, const char *parent)
{
    _cleanup_free_ char *key = cc_xasprintf("%s-tmp", name);
    snap_mount m = prepare(f, SNAP_KIND_ACTIVE, key, parent, NULL, 0);
    snap_mount_clear(&m);
    commit(f, name, key, 0);
}

static const snap_info *
stat_ok(fixture *f, const char *name)
{
    const snap_info *info = NULL;
    assert_int_equal(snap_store_stat(f->store, name, &info, NULL), 0);
    return info;
}

static bool
exists_at(fixture *f, const char *rel)
{
    _cleanup_free_ char *p = cc_xasprintf("%s/snapshots/%s", f->root, rel);
    struct stat st;
    return lstat(p, &st) == 0;
}

/* --- tests ------------------------------------------------------------------------------------ */

static void
test_crash_safety(void **state)
{
    fixture *f = *state;

    layer(f, "base", NULL);
    const snap_info *info = stat_ok(f, "base");
    assert_int_equal(info->id, 1);

    /* A half-made snapshot (no info.json), an interrupted remove, a stray file, and a
     * temporary file left by an interrupted info.json rewrite. */
    _cleanup_free_ char *half = cc_xasprintf("%s/snapshots/7", f->root);
    assert_int_equal(mkdir(half, 0700), 0);
    _cleanup_free_ char *half_fs = cc_xasprintf("%s/fs", half);
    assert_int_equal(mkdir(half_fs, 0755), 0);
    _cleanup_free_ char *rm = cc_xasprintf("%s/snapshots/.rm-3", f->root);
    assert_int_equal(mkdir(rm, 0700), 0);
    _cleanup_free_ char *tmp = cc_xasprintf("%s/snapshots/1/.#info.json.0123456789abcdef",
                                            f->root);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "{garbage", 8), 8);
    close(fd);

    reopen(f);
    assert_false(exists_at(f, "7"));
    assert_false(exists_at(f, ".rm-3"));
    assert_true(exists_at(f, "1/info.json"));
    assert_int_equal(snap_store_count(f->store), 1);
    info = stat_ok(f, "base");
    assert_int_equal(info->kind, SNAP_KIND_COMMITTED);

    /* ids keep growing past anything seen on disk. */
    layer(f, "next", "base");
    assert_true(stat_ok(f, "next")->id > 7);
    assert_string_equal(stat_ok(f, "next")->parent, "base");

    /* Orphans found later go with Cleanup. */
    assert_int_equal(mkdir(half, 0700), 0);
    assert_int_equal(snap_store_cleanup(f->store, NULL), 0);
    assert_false(exists_at(f, "7"));
    assert_int_equal(snap_store_count(f->store), 2);
}

static void
test_rules(void **state)
{
    fixture *f = *state;
    snap_mount m;

    layer(f, "base", NULL);
    m = prepare(f, SNAP_KIND_ACTIVE, "a", "base", NULL, 0);
    snap_mount_clear(&m);

    m = prepare(f, SNAP_KIND_ACTIVE, "a", "base", NULL, -EEXIST);
    m = prepare(f, SNAP_KIND_ACTIVE, "b", "missing", NULL, -ENOENT);
    m = prepare(f, SNAP_KIND_ACTIVE, "b", "a", NULL, -EINVAL); /* parent not committed */
    m = prepare(f, SNAP_KIND_VIEW, "", NULL, NULL, -EINVAL);

    commit(f, "x", "base", -EBUSY); /* not active */
    commit(f, "x", "missing", -ENOENT);
    commit(f, "base", "a", -EEXIST);
    assert_int_equal(snap_store_mounts(f->store, "base", &m, NULL), -EBUSY);
    assert_int_equal(snap_store_mounts(f->store, "nope", &m, NULL), -ENOENT);

    /* Remove: children first. */
    assert_int_equal(snap_store_remove(f->store, "base", NULL), -EBUSY);
    assert_int_equal(snap_store_remove(f->store, "a", NULL), 0);
    assert_int_equal(snap_store_remove(f->store, "a", NULL), -ENOENT);
    assert_int_equal(snap_store_remove(f->store, "base", NULL), 0);
    assert_int_equal(snap_store_count(f->store), 0);
    assert_false(exists_at(f, "1"));

    /* Commit keeps the id, renames, resets the labels to the commit's. */
    m = prepare(f, SNAP_KIND_ACTIVE, "k", NULL, "{\"l\": \"1\"}", 0);
    snap_mount_clear(&m);
    uint64_t id = stat_ok(f, "k")->id;
    _cleanup_json_ json_t *labels = json_pack("{s:s}", "c", "2");
    assert_int_equal(snap_store_commit(f->store, "n", "k", labels, NULL), 0);
    assert_int_equal(snap_store_stat(f->store, "k", &(const snap_info *){NULL}, NULL), -ENOENT);
    reopen(f);
    const snap_info *info = stat_ok(f, "n");
    assert_int_equal(info->id, id);
    assert_int_equal(info->kind, SNAP_KIND_COMMITTED);
    assert_null(json_object_get(info->labels, "l"));
    assert_string_equal(json_string_value(json_object_get(info->labels, "c")), "2");

    /* Update: field paths. */
    _cleanup_json_ json_t *upd = json_pack("{s:s, s:s}", "c", "3", "d", "4");
    char *paths[] = {(char *)"labels.c"};
    assert_int_equal(snap_store_update(f->store, "n", upd, paths, 1, &info, NULL), 0);
    assert_string_equal(json_string_value(json_object_get(info->labels, "c")), "3");
    assert_null(json_object_get(info->labels, "d"));
    char *bad[] = {(char *)"parent"};
    assert_int_equal(snap_store_update(f->store, "n", upd, bad, 1, &info, NULL), -EINVAL);
    assert_int_equal(snap_store_update(f->store, "n", upd, NULL, 0, &info, NULL), 0);
    assert_int_equal(json_object_size(info->labels), 2);

    /* Labels too long. */
    _cleanup_free_ char *big = cc_xmalloc(5000);
    memset(big, 'x', 4999);
    big[4999] = '\0';
    _cleanup_json_ json_t *huge = json_pack("{s:s}", "k", big);
    assert_int_equal(snap_store_prepare(f->store, SNAP_KIND_ACTIVE, "h", NULL, huge, &m, NULL),
                     -EINVAL);
}

static void
test_mounts(void **state)
{
    fixture *f = *state;
    snap_mount m;

    m = prepare(f, SNAP_KIND_ACTIVE, "a", NULL, NULL, 0);
    assert_string_equal(m.type, "bind");
    _cleanup_free_ char *fs1 = cc_xasprintf("%s/snapshots/1/fs", f->root);
    assert_string_equal(m.source, fs1);
    assert_int_equal(m.n_options, 2);
    assert_string_equal(m.options[0], "rw");
    assert_string_equal(m.options[1], "rbind");
    snap_mount_clear(&m);
    commit(f, "c1", "a", 0);
    layer(f, "c2", "c1"); /* id 2 */

    /* View on one parent: that parent's fs, read-only. */
    m = prepare(f, SNAP_KIND_VIEW, "v1", "c1", NULL, 0);
    assert_string_equal(m.type, "bind");
    assert_string_equal(m.source, fs1);
    assert_string_equal(m.options[0], "ro");
    snap_mount_clear(&m);

    m = prepare(f, SNAP_KIND_ACTIVE, "a2", "c2", NULL, 0);
    uint64_t id = stat_ok(f, "a2")->id;
    assert_string_equal(m.type, "overlay");
    assert_string_equal(m.source, "overlay");
    assert_int_equal(m.n_options, 3);
    _cleanup_free_ char *work = cc_xasprintf("workdir=%s/snapshots/%lu/work", f->root,
                                             (unsigned long)id);
    _cleanup_free_ char *upper = cc_xasprintf("upperdir=%s/snapshots/%lu/fs", f->root,
                                              (unsigned long)id);
    _cleanup_free_ char *lower = cc_xasprintf("lowerdir=%s/snapshots/2/fs:%s", f->root, fs1);
    assert_string_equal(m.options[0], work);
    assert_string_equal(m.options[1], upper);
    assert_string_equal(m.options[2], lower);
    snap_mount_clear(&m);
    /* Mounts is deterministic. */
    assert_int_equal(snap_store_mounts(f->store, "a2", &m, NULL), 0);
    assert_string_equal(m.options[2], lower);
    snap_mount_clear(&m);

    m = prepare(f, SNAP_KIND_VIEW, "v2", "c2", NULL, 0);
    assert_string_equal(m.type, "overlay");
    assert_int_equal(m.n_options, 1);
    assert_string_equal(m.options[0], lower);
    snap_mount_clear(&m);

    int64_t size = -1, inodes = -1;
    assert_int_equal(snap_store_usage(f->store, "a2", &size, &inodes, NULL), 0);
    assert_int_equal(inodes, 0);
}

static bool
matches(const snap_info *info, const char *filter)
{
    bool m = false;
    _cleanup_error_ cc_error *e = NULL;
    if (snap_filter_match(info, filter, &m, &e) < 0)
        fail_msg("filter %s: %s", filter, cc_error_message(e));
    return m;
}

static void
test_filters(void **state)
{
    fixture *f = *state;

    layer(f, "p", NULL);
    snap_mount m = prepare(f, SNAP_KIND_ACTIVE, "a", "p",
                           "{\"containerd.io/gc.root\": \"x\", \"l\": \"2\"}", 0);
    snap_mount_clear(&m);
    const snap_info *a = stat_ok(f, "a"), *p = stat_ok(f, "p");

    assert_true(matches(a, "labels.\"containerd.io/gc.root\"==x"));
    assert_false(matches(p, "labels.\"containerd.io/gc.root\"==x"));
    assert_true(matches(a, "kind==active,labels.l"));
    assert_false(matches(a, "kind==committed,labels.l"));
    assert_true(matches(a, "parent==p"));
    assert_true(matches(a, "parent==\"p\""));
    assert_true(matches(a, "parent!=\"\""));
    assert_false(matches(p, "parent!=\"\""));
    assert_true(matches(p, "name==p"));
    assert_true(matches(a, "labels.l==2"));
    assert_false(matches(a, "labels.l==3"));
    assert_true(matches(a, "labels.l!=3"));
    assert_true(matches(a, "name~=^a$"));
    assert_true(matches(a, ""));
    bool r;
    assert_int_equal(snap_filter_match(a, "name==\"a", &r, NULL), -EINVAL);
    assert_int_equal(snap_filter_match(a, "name=a", &r, NULL), -EINVAL);
}

/* Standard base64 decoding (test side). */
static char *
b64_decode(const char *s)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t len = strlen(s), n = 0;
    assert_int_equal(len % 4, 0);
    char *out = cc_xmalloc(len / 4 * 3 + 1);
    for (size_t i = 0; i < len; i += 4) {
        uint32_t v = 0;
        int pad = 0;
        for (int j = 0; j < 4; j++) {
            v <<= 6;
            if (s[i + j] == '=')
                pad++;
            else {
                const char *c = strchr(tab, s[i + j]);
                assert_non_null(c);
                v |= (uint32_t)(c - tab);
            }
        }
        out[n++] = (char)(v >> 16);
        if (pad < 2)
            out[n++] = (char)(v >> 8);
        if (pad < 1)
            out[n++] = (char)v;
    }
    out[n] = '\0';
    return out;
}

static void
test_base64(void **state)
{
    static const char *const cases[][2] = {
        {"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"}, {"foob", "Zm9vYg=="},
    };
    for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
        _cleanup_free_ char *e = snap_base64_encode(cases[i][0], strlen(cases[i][0]));
        assert_string_equal(e, cases[i][1]);
    }
}

#define LAYER_LABELS(target, ref)                                                                  \
    "{\"containerd.io/snapshot.ref\": \"" target "\", "                                           \
    "\"containerd.io/snapshot/cri.image-ref\": \"" ref "\", "                                     \
    "\"containerd.io/snapshot/cri.manifest-digest\": \"sha256:m\", "                              \
    "\"containerd.io/snapshot/cri.layer-digest\": \"sha256:l\"}"

static void
check_volume(const char *opt, const char *source, bool metadata)
{
    assert_true(cc_startswith(opt, "io.katacontainers.volume="));
    _cleanup_free_ char *text = b64_decode(opt + strlen("io.katacontainers.volume="));
    _cleanup_json_ json_t *v = json_loads(text, 0, NULL);
    assert_non_null(v);
    assert_string_equal(json_string_value(json_object_get(v, "volume_type")), "image_guest_pull");
    assert_string_equal(json_string_value(json_object_get(v, "source")), source);
    json_t *md = json_object_get(json_object_get(v, "image_pull"), "metadata");
    assert_non_null(md);
    if (metadata) {
        assert_string_equal(
            json_string_value(json_object_get(md, "containerd.io/snapshot/cri.image-ref")),
            source);
        assert_string_equal(
            json_string_value(json_object_get(md, "containerd.io/snapshot/cri.manifest-digest")),
            "sha256:m");
    } else
        assert_int_equal(json_object_size(md), 0);
}

static void
test_guest_pull(void **state)
{
    fixture *f = *state;
    _cleanup_error_ cc_error *e = NULL;
    snap_mount m = {0};

    /* Layer 1: committed internally, answered ALREADY_EXISTS. */
    _cleanup_json_ json_t *l1 = json_loads(LAYER_LABELS("sha256:c1", "docker.io/library/a:1"), 0,
                                           NULL);
    assert_int_equal(snap_store_prepare(f->store, SNAP_KIND_ACTIVE, "k8s.io/1/extract-1 sha256:c1",
                                        NULL, l1, &m, &e),
                     -EEXIST);
    assert_string_equal(cc_error_message(e), "target snapshot \"sha256:c1\": already exists");
    const snap_info *c1 = stat_ok(f, "sha256:c1");
    assert_int_equal(c1->kind, SNAP_KIND_COMMITTED);
    assert_null(c1->parent);
    assert_string_equal(json_string_value(json_object_get(c1->labels, SNAP_LABEL_GUESTPULL)),
                        "true");
    assert_string_equal(json_string_value(json_object_get(c1->labels, SNAP_LABEL_TARGET)),
                        "sha256:c1");
    assert_int_equal(snap_store_count(f->store), 1);
    /* Again: nothing new. */
    assert_int_equal(snap_store_prepare(f->store, SNAP_KIND_ACTIVE, "k8s.io/2/extract-2 sha256:c1",
                                        NULL, l1, &m, NULL),
                     -EEXIST);
    assert_int_equal(snap_store_count(f->store), 1);

    /* Layer 2 on layer 1. */
    _cleanup_json_ json_t *l2 = json_loads(LAYER_LABELS("sha256:c2", "docker.io/library/a:1"), 0,
                                           NULL);
    assert_int_equal(snap_store_prepare(f->store, SNAP_KIND_ACTIVE, "k8s.io/3/extract-3 sha256:c2",
                                        "sha256:c1", l2, &m, NULL),
                     -EEXIST);
    assert_string_equal(stat_ok(f, "sha256:c2")->parent, "sha256:c1");

    /* The same target on another parent gets a derived name. */
    layer(f, "other", NULL);
    assert_int_equal(snap_store_prepare(f->store, SNAP_KIND_ACTIVE, "k8s.io/4/extract-4 sha256:c2",
                                        "other", l2, &m, NULL),
                     -EEXIST);
    assert_int_equal(snap_store_count(f->store), 4);
    const snap_info *derived = snap_store_get(f->store, 3);
    assert_string_equal(derived->parent, "other");
    assert_true(cc_startswith(derived->name, "sha256:c2@"));

    /* The container's rw layer: the guest-pull mount. */
    m = prepare(f, SNAP_KIND_ACTIVE, "k8s.io/5/ctr", "sha256:c2", NULL, 0);
    uint64_t id = stat_ok(f, "k8s.io/5/ctr")->id;
    assert_string_equal(m.type, "fuse.nydus-overlayfs");
    assert_string_equal(m.source, "overlay");
    assert_int_equal(m.n_options, 4);
    _cleanup_free_ char *work = cc_xasprintf("workdir=%s/snapshots/%lu/work", f->root,
                                             (unsigned long)id);
    _cleanup_free_ char *upper = cc_xasprintf("upperdir=%s/snapshots/%lu/fs", f->root,
                                              (unsigned long)id);
    _cleanup_free_ char *lower = cc_xasprintf("lowerdir=%s/snapshots/%lu/fs:%s/snapshots/%lu/fs",
                                              f->root, (unsigned long)stat_ok(f, "sha256:c2")->id,
                                              f->root, (unsigned long)c1->id);
    assert_string_equal(m.options[0], work);
    assert_string_equal(m.options[1], upper);
    assert_string_equal(m.options[2], lower);
    check_volume(m.options[3], "docker.io/library/a:1", true);
    snap_mount_clear(&m);

    /* A view: lowerdir and the volume only. */
    m = prepare(f, SNAP_KIND_VIEW, "k8s.io/6/view", "sha256:c2", NULL, 0);
    assert_string_equal(m.type, "fuse.nydus-overlayfs");
    assert_int_equal(m.n_options, 2);
    assert_string_equal(m.options[0], lower);
    snap_mount_clear(&m);

    /* Without cri.* labels: the placeholder source. */
    _cleanup_json_ json_t *bare = json_pack("{s:s}", SNAP_LABEL_TARGET, "sha256:bare");
    assert_int_equal(snap_store_prepare(f->store, SNAP_KIND_ACTIVE, "default/7/extract-7 x", NULL,
                                        bare, &m, NULL),
                     -EEXIST);
    m = prepare(f, SNAP_KIND_ACTIVE, "default/8/ctr", "sha256:bare", NULL, 0);
    check_volume(m.options[m.n_options - 1], SNAP_DUMMY_IMAGE_REF, false);
    snap_mount_clear(&m);

    /* Survives a restart. */
    reopen(f);
    assert_int_equal(snap_store_mounts(f->store, "k8s.io/5/ctr", &m, NULL), 0);
    assert_string_equal(m.type, "fuse.nydus-overlayfs");
    snap_mount_clear(&m);
}

static void
test_extract_refused(void **state)
{
    fixture *f = *state;
    _cleanup_error_ cc_error *e = NULL;
    snap_mount m = {0};

    assert_int_equal(snap_store_prepare(f->store, SNAP_KIND_ACTIVE,
                                        "default/3/extract-123-abc sha256:x", NULL, NULL, &m, &e),
                     -EBUSY);
    assert_non_null(strstr(cc_error_message(e), "host-side image unpack (ctr images pull) is "
                                                "not supported"));
    m = prepare(f, SNAP_KIND_ACTIVE, "extract-1 sha256:y", NULL, NULL, -EBUSY);
    assert_int_equal(snap_store_count(f->store), 0);

    /* Ordinary keys keep full semantics; so do views. */
    m = prepare(f, SNAP_KIND_ACTIVE, "default/4/mykey", NULL, NULL, 0);
    assert_string_equal(m.type, "bind");
    snap_mount_clear(&m);
    m = prepare(f, SNAP_KIND_VIEW, "default/5/extract-9 z", NULL, NULL, 0);
    snap_mount_clear(&m);

    /* Above a guest-pull layer an extract- key is allowed. */
    _cleanup_json_ json_t *l = json_pack("{s:s}", SNAP_LABEL_TARGET, "sha256:t");
    assert_int_equal(snap_store_prepare(f->store, SNAP_KIND_ACTIVE, "k/1/extract-1 t", NULL, l,
                                        &m, NULL),
                     -EEXIST);
    m = prepare(f, SNAP_KIND_ACTIVE, "k/2/extract-2 u", "sha256:t", NULL, 0);
    assert_string_equal(m.type, "fuse.nydus-overlayfs");
    snap_mount_clear(&m);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_crash_safety, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mounts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filters, setup, teardown),
        cmocka_unit_test(test_base64),
        cmocka_unit_test_setup_teardown(test_guest_pull, setup, teardown),
        cmocka_unit_test_setup_teardown(test_extract_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
