/* SPDX-License-Identifier: Apache-2.0 */
/* Image pull inside the guest: see image.h. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fs.h"
#include "image.h"
#include "json.h"
#include "layer.h"
#include "log.h"
#include "registry.h"
#include "util.h"

#define GUEST_PULL_PREFIX "image_guest_pull="
#define PARALLEL_LAYERS 3
#define OVERLAY_OPTIONS_MAX 4000 /* a page, minus what the kernel adds */

/* --- the sandbox's layer store (shared by the pull threads) ---------------------------------- */

typedef enum layer_state { LAYER_PENDING, LAYER_READY } layer_state;

typedef struct layer_entry {
    struct layer_entry *next;
    char *key;          /* "<digest> <diff_id>" */
    char *dir;          /* <state>/layers/<digest hex> */
    layer_state state;
} layer_entry;

typedef struct layer_store {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    layer_entry *head;
    char *root;         /* <state>/layers */
} layer_store;

static layer_store *
store_get(agent *a)
{
    if (!a->images) {
        layer_store *s = cc_xzalloc(sizeof(*s));
        pthread_mutex_init(&s->mu, NULL);
        pthread_cond_init(&s->cv, NULL);
        s->root = cc_xasprintf("%s/layers", a->opts.state_dir);
        (void)mkdir(s->root, 0700);
        a->images = s;
    }
    return a->images;
}

/* Returns the entry for key; *ret_owner true when the caller must produce it (then it is
 * PENDING and the caller calls store_release()). Waits while another thread produces it. */
static layer_entry *
store_acquire(layer_store *s, const char *key, const char *digest, bool *ret_owner)
{
    layer_entry *e;

    pthread_mutex_lock(&s->mu);
    for (;;) {
        for (e = s->head; e; e = e->next)
            if (cc_streq(e->key, key))
                break;
        if (!e || e->state == LAYER_READY)
            break;
        pthread_cond_wait(&s->cv, &s->mu);
    }
    if (e) {
        *ret_owner = false;
    } else {
        e = cc_xzalloc(sizeof(*e));
        e->key = cc_xstrdup(key);
        e->dir = cc_xasprintf("%s/%s", s->root, digest + strlen("sha256:"));
        e->state = LAYER_PENDING;
        e->next = s->head;
        s->head = e;
        *ret_owner = true;
    }
    pthread_mutex_unlock(&s->mu);
    return e;
}

static void
store_release(layer_store *s, layer_entry *e, bool ok)
{
    pthread_mutex_lock(&s->mu);
    if (ok) {
        e->state = LAYER_READY;
    } else {
        for (layer_entry **pp = &s->head; *pp; pp = &(*pp)->next)
            if (*pp == e) {
                *pp = e->next;
                break;
            }
        free(e->key);
        free(e->dir);
        free(e);
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* --- a pull ------------------------------------------------------------------------------------ */

typedef struct pull_job {
    agent *agent;
    layer_store *store;
    char *ref_str;
    char *digest;           /* the pinned manifest digest, or NULL */
    registry_config cfg;
    char **insecure;
    char *gateway;
    agent_image_done_fn done;
    void *userdata;
    /* the layers' work, shared by the layer threads */
    registry_client *client;
    oci_manifest manifest;
    char **diff_ids;
    size_t n_diff_ids;
    atomic_size_t next_layer;
    pthread_mutex_t mu;     /* err */
    /* result */
    int r;
    cc_error *err;
    agent_image_layers *layers;
    uint64_t bytes;
    uint64_t start_usec;
} pull_job;

static void
job_free(pull_job *j)
{
    if (!j)
        return;
    registry_client_free(j->client);
    oci_manifest_clear(&j->manifest);
    for (size_t i = 0; i < j->n_diff_ids; i++)
        free(j->diff_ids[i]);
    free(j->diff_ids);
    for (size_t i = 0; j->insecure && j->insecure[i]; i++)
        free(j->insecure[i]);
    free(j->insecure);
    free(j->gateway);
    free(j->ref_str);
    free(j->digest);
    cc_error_free(j->err);
    agent_image_layers_free(j->layers);
    pthread_mutex_destroy(&j->mu);
    free(j);
}

void
agent_image_layers_free(agent_image_layers *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        free(l->dirs[i]);
    free(l->dirs);
    free(l);
}

/* Sets the job's error once (the first failure wins). */
static void
job_fail(pull_job *j, int r, cc_error *e)
{
    pthread_mutex_lock(&j->mu);
    if (j->r >= 0) {
        j->r = r;
        j->err = e;
        e = NULL;
    }
    pthread_mutex_unlock(&j->mu);
    cc_error_free(e);
}

static int
pull_layer(pull_job *j, size_t i)
{
    const oci_descriptor *d = &j->manifest.layers[i];
    _cleanup_free_ char *key = cc_xasprintf("%s %s", d->digest, j->diff_ids[i]);
    _cleanup_free_ char *tmp = NULL;
    _cleanup_close_ int dir_fd = -EBADF;
    _cleanup_error_ cc_error *e = NULL;
    registry_blob *blob = NULL;
    layer_compression comp;
    layer_stats stats = {0};
    bool owner, named = false;
    int r;

    layer_entry *le = store_acquire(j->store, key, d->digest, &owner);
    if (!owner) {
        j->layers->dirs[i] = cc_xstrdup(le->dir);
        return 0;
    }

    r = layer_compression_from_media_type(d->media_type, &comp, &e);
    if (r < 0)
        goto fail;
    static atomic_uint seq;
    tmp = cc_xasprintf("%s.tmp-%u", le->dir, atomic_fetch_add(&seq, 1));
    {
        _cleanup_close_ int root = open(j->store->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (root >= 0)
            (void)cc_rm_rf_at(root, strrchr(tmp, '/') + 1, NULL);
    }
    if (mkdir(tmp, 0755) < 0) {
        r = cc_error_set(&e, -errno, "cannot create %s", tmp);
        goto fail;
    }
    dir_fd = open(tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dir_fd < 0) {
        r = cc_error_set(&e, -errno, "cannot open %s", tmp);
        goto fail;
    }
    r = registry_blob_open(j->client, d->digest, d->size, &blob, &e);
    if (r >= 0) {
        r = layer_unpack(registry_blob_read, blob, comp, d->digest, j->diff_ids[i], dir_fd, &stats,
                         &e);
        registry_blob_close(blob);
        named = true; /* layer_unpack's errors name the layer already */
    }
    if (r < 0)
        goto fail;
    if (rename(tmp, le->dir) < 0) {
        r = cc_error_set(&e, -errno, "cannot rename %s", tmp);
        goto fail;
    }
    cc_log(CC_LOG_INFO, "image %s: layer %s: %llu bytes, %llu unpacked, %u entries", j->ref_str,
           d->digest, (unsigned long long)stats.compressed_bytes,
           (unsigned long long)stats.uncompressed_bytes, stats.entries);
    __atomic_add_fetch(&j->bytes, stats.compressed_bytes, __ATOMIC_RELAXED);
    j->layers->dirs[i] = cc_xstrdup(le->dir);
    store_release(j->store, le, true);
    return 0;

fail:
    /* nothing of a layer that failed is kept or used */
    if (tmp) {
        _cleanup_close_ int root = open(j->store->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (root >= 0)
            (void)cc_rm_rf_at(root, strrchr(tmp, '/') + 1, NULL);
    }
    store_release(j->store, le, false);
    if (named)
        cc_error_prefix(&e, r, "image %s", j->ref_str);
    else
        cc_error_prefix(&e, r, "image %s: layer %s", j->ref_str, d->digest);
    job_fail(j, r, TAKE_PTR(e));
    return r;
}

static void *
layer_thread(void *userdata)
{
    pull_job *j = userdata;
    for (;;) {
        size_t i = atomic_fetch_add(&j->next_layer, 1);
        if (i >= j->manifest.n_layers)
            break;
        pthread_mutex_lock(&j->mu);
        bool failed = j->r < 0;
        pthread_mutex_unlock(&j->mu);
        if (failed) /* another layer failed: the image is lost, stop downloading */
            break;
        if (pull_layer(j, i) < 0)
            break;
    }
    return NULL;
}

static int
pull_manifest(pull_job *j, const image_ref *ref, cc_error **err)
{
    _cleanup_free_ char *body = NULL, *media_type = NULL, *config = NULL;
    const char *reference = j->digest ? j->digest : ref->digest ? ref->digest
                                                   : ref->tag    ? ref->tag
                                                                 : "latest";
    const char *expect = j->digest ? j->digest : ref->digest;
    size_t len = 0, config_len = 0;
    int r;

    r = registry_get_manifest(j->client, reference, expect, &body, &len, &media_type, err);
    if (r < 0)
        return r;
    if (oci_media_type_is_index(media_type)) {
        oci_descriptor d = {0};
        r = oci_index_select(body, len, "linux", "amd64", &d, err);
        if (r < 0)
            return r;
        body = (free(body), NULL);
        media_type = (free(media_type), NULL);
        r = registry_get_manifest(j->client, d.digest, d.digest, &body, &len, &media_type, err);
        oci_descriptor_clear(&d);
        if (r < 0)
            return r;
    }
    r = oci_manifest_parse(body, len, &j->manifest, err);
    if (r < 0)
        return r;
    r = registry_get_blob(j->client, j->manifest.config.digest, REGISTRY_CONFIG_MAX, &config,
                          &config_len, err);
    if (r < 0)
        return r;
    r = oci_config_diff_ids(config, config_len, &j->diff_ids, &j->n_diff_ids, err);
    if (r < 0)
        return r;
    if (j->n_diff_ids != j->manifest.n_layers)
        return cc_error_set(err, -EBADMSG, "config has %zu diff_ids for %zu layers",
                            j->n_diff_ids, j->manifest.n_layers);
    return 0;
}

static void
on_pull_done(cc_loop *loop, void *userdata)
{
    pull_job *j = userdata;
    (void)loop;

    if (j->r < 0) {
        cc_log_error(CC_LOG_ERROR, j->err, "pull failed");
        j->done(j->agent, j->r, j->err, NULL, j->userdata);
    } else {
        cc_log(CC_LOG_INFO, "image %s pulled: %zu layers, %llu bytes downloaded in %.2f s",
               j->ref_str, j->layers->n, (unsigned long long)j->bytes,
               (double)(cc_loop_now() - j->start_usec) / 1e6);
        j->done(j->agent, 0, NULL, TAKE_PTR(j->layers), j->userdata);
    }
    job_free(j);
}

static void *
pull_thread(void *userdata)
{
    pull_job *j = userdata;
    _cleanup_error_ cc_error *e = NULL;
    image_ref ref = {0};
    pthread_t threads[PARALLEL_LAYERS];
    size_t n_threads = 0;
    int r;

    r = image_ref_parse(j->ref_str, &ref, &e);
    if (r >= 0)
        r = registry_client_new(&j->cfg, &ref, &j->client, &e);
    if (r >= 0)
        r = pull_manifest(j, &ref, &e);
    if (r < 0) {
        cc_error_prefix(&e, r, "image %s", j->ref_str);
        job_fail(j, r, TAKE_PTR(e));
        goto done;
    }
    j->layers = cc_xzalloc(sizeof(*j->layers));
    j->layers->n = j->manifest.n_layers;
    j->layers->dirs = cc_xreallocarray(NULL, j->layers->n + 1, sizeof(char *));
    memset(j->layers->dirs, 0, (j->layers->n + 1) * sizeof(char *));
    for (size_t i = 0; i < PARALLEL_LAYERS && i < j->manifest.n_layers; i++)
        if (pthread_create(&threads[n_threads], NULL, layer_thread, j) == 0)
            n_threads++;
    if (n_threads == 0)
        layer_thread(j);
    for (size_t i = 0; i < n_threads; i++)
        pthread_join(threads[i], NULL);
    for (size_t i = 0; j->r >= 0 && i < j->layers->n; i++)
        if (!j->layers->dirs[i])
            job_fail(j, -EIO, NULL);

done:
    image_ref_clear(&ref);
    if (cc_loop_post(j->agent->loop, on_pull_done, j) < 0)
        job_free(j); /* the loop is gone: nobody is waiting */
    return NULL;
}

/* The image_pull JSON of a storage: its metadata object (borrowed from *ret_json). */
static int
storage_metadata(const Grpc__Storage *st, json_t **ret_json, json_t **ret_meta, cc_error **err)
{
    _cleanup_json_ json_t *j = NULL;
    const char *text = NULL;
    int r;

    for (size_t i = 0; i < st->n_driver_options; i++) {
        const char *v = cc_startswith(st->driver_options[i], GUEST_PULL_PREFIX);
        if (v)
            text = v;
    }
    if (!text)
        return cc_error_set(err, -EINVAL, "driver_options: no '%s<json>'", GUEST_PULL_PREFIX);
    r = cc_json_load_buffer(text, strlen(text), "driver_options image_guest_pull", 1u << 20, &j, err);
    if (r < 0)
        return r;
    json_t *meta = json_object_get(j, "metadata");
    if (!json_is_object(meta))
        meta = NULL;
    *ret_meta = meta;
    *ret_json = TAKE_PTR(j);
    return 0;
}

/* The ref (storage source, else the metadata's) and the pinned digest (or NULL). */
static int
storage_image(const Grpc__Storage *st, char **ret_ref, char **ret_digest, cc_error **err)
{
    _cleanup_json_ json_t *j = NULL;
    json_t *meta = NULL;
    const char *ref = st->source && *st->source ? st->source : NULL;
    const char *digest = NULL;
    int r;

    r = storage_metadata(st, &j, &meta, err);
    if (r < 0)
        return r;
    if (meta) {
        json_t *v = json_object_get(meta, AGENT_IMAGE_REF_KEY);
        if (v && !json_is_string(v))
            return cc_error_set(err, -EINVAL, "metadata %s: not a string", AGENT_IMAGE_REF_KEY);
        if (!ref && v)
            ref = json_string_value(v);
        v = json_object_get(meta, AGENT_IMAGE_DIGEST_KEY);
        if (v && !json_is_string(v))
            return cc_error_set(err, -EINVAL, "metadata %s: not a string", AGENT_IMAGE_DIGEST_KEY);
        digest = v ? json_string_value(v) : NULL;
    }
    if (!ref || !*ref)
        return cc_error_set(err, -EINVAL, "source: no image reference");
    if (digest && !oci_digest_is_valid(digest))
        return cc_error_set(err, -EINVAL, "metadata %s: '%s' is not a sha256 digest",
                            AGENT_IMAGE_DIGEST_KEY, digest);
    image_ref parsed = {0};
    r = image_ref_parse(ref, &parsed, err);
    image_ref_clear(&parsed);
    if (r < 0)
        return cc_error_prefix(err, r, "source");
    *ret_ref = cc_xstrdup(ref);
    *ret_digest = digest ? cc_xstrdup(digest) : NULL;
    return 0;
}

int
agent_image_storage_check(const Grpc__Storage *st, cc_error **err)
{
    _cleanup_free_ char *ref = NULL, *digest = NULL;
    return storage_image(st, &ref, &digest, err);
}

int
agent_image_pull(agent *a, const Grpc__Storage *st, agent_image_done_fn done, void *userdata,
                 cc_error **err)
{
    pull_job *j = cc_xzalloc(sizeof(*j));
    pthread_attr_t attr;
    pthread_t t;
    int r;

    pthread_mutex_init(&j->mu, NULL);
    r = storage_image(st, &j->ref_str, &j->digest, err);
    if (r < 0) {
        job_free(j);
        return r;
    }
    j->agent = a;
    j->store = store_get(a);
    j->done = done;
    j->userdata = userdata;
    j->start_usec = cc_loop_now();
    /* registry settings from the kernel command line (copied: the thread owns them) */
    j->insecure = cc_xreallocarray(NULL, a->boot.n_registry_insecure + 1, sizeof(char *));
    for (size_t i = 0; i < a->boot.n_registry_insecure; i++)
        j->insecure[i] = cc_xstrdup(a->boot.registry_insecure[i]);
    j->insecure[a->boot.n_registry_insecure] = NULL;
    j->cfg.insecure = (const char *const *)j->insecure;
    j->cfg.n_insecure = a->boot.n_registry_insecure;
    if (a->boot.has_registry_loopback) {
        char buf[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &a->boot.registry_loopback, buf, sizeof(buf));
        j->gateway = cc_xstrdup(buf);
        j->cfg.loopback_gateway = j->gateway;
    }

    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    r = pthread_create(&t, &attr, pull_thread, j);
    pthread_attr_destroy(&attr);
    if (r != 0) {
        job_free(j);
        return cc_error_set(err, -r, "cannot start the pull thread");
    }
    cc_log(CC_LOG_INFO, "pulling %s%s%s", j->ref_str, j->digest ? "@" : "",
           j->digest ? j->digest : "");
    return 0;
}

int
agent_image_mount(agent *a, const agent_image_layers *layers, const char *container_id,
                  int mount_fd, cc_error **err)
{
    _cleanup_free_ char *ov = cc_xasprintf("%s/overlay", a->opts.state_dir);
    _cleanup_free_ char *dir = cc_xasprintf("%s/%s", ov, container_id);
    _cleanup_free_ char *upper = cc_xasprintf("%s/upper", dir);
    _cleanup_free_ char *work = cc_xasprintf("%s/work", dir);
    _cleanup_free_ char *opts = NULL;
    char target[64];
    size_t len;

    if (layers->n == 0)
        return cc_error_set(err, -EINVAL, "the image has no layers");
    (void)mkdir(ov, 0700);
    agent_image_cleanup_container(a, container_id);
    if (mkdir(dir, 0700) < 0 || mkdir(upper, 0755) < 0 || mkdir(work, 0700) < 0)
        return cc_error_set(err, -errno, "cannot create %s", dir);

    /* lowerdir: the top layer first */
    len = strlen("lowerdir=");
    for (size_t i = 0; i < layers->n; i++)
        len += strlen(layers->dirs[i]) + 1;
    len += strlen(",upperdir=") + strlen(upper) + strlen(",workdir=") + strlen(work) + 1;
    if (len > OVERLAY_OPTIONS_MAX)
        return cc_error_set(err, -E2BIG, "%zu layers are too many for one overlay mount",
                            layers->n);
    opts = cc_xzalloc(len + 1);
    strcpy(opts, "lowerdir=");
    for (size_t i = layers->n; i-- > 0;) {
        strcat(opts, layers->dirs[i]);
        if (i > 0)
            strcat(opts, ":");
    }
    strcat(opts, ",upperdir=");
    strcat(opts, upper);
    strcat(opts, ",workdir=");
    strcat(opts, work);
    snprintf(target, sizeof(target), "/proc/self/fd/%d", mount_fd);
    if (mount("overlay", target, "overlay", MS_NODEV, opts) < 0)
        return cc_error_set(err, -errno, "cannot mount the image's overlay");
    return 0;
}

void
agent_image_cleanup_container(agent *a, const char *container_id)
{
    _cleanup_free_ char *ov = cc_xasprintf("%s/overlay", a->opts.state_dir);
    _cleanup_close_ int fd = open(ov, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0)
        (void)cc_rm_rf_at(fd, container_id, NULL);
}
