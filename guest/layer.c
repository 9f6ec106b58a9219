/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One image layer in one pass (see layer.h):
 *
 *   read_fn -> in[] --sha256(digest)--> inflate / ZSTD_decompressStream -> out[]
 *           --sha256(diff_id)--> libarchive's tar reader (pulls out[] directly) -> unpack
 *
 * libarchive only parses: every file is written by our own *at() code below dir_fd, parents
 * opened one component at a time with O_NOFOLLOW, so nothing an entry says can reach outside.
 * Open parent directories are kept in a small stack of fds (dir_cache) so consecutive
 * entries of one directory cost no path walk. Invariant: after walking to an entry's parent
 * the stack holds only that parent's ancestors, and an entry only ever removes or replaces
 * parent/name, so no cached fd ever refers to something an entry removed.
 *
 * Directory mtimes are applied after the last entry (creating children changes them).
 * When decompression, tar parsing or the unpack policy fails, the rest of the compressed
 * stream is still read and hashed: if the digest does not match, the bytes were not the
 * pinned ones and the error is -EBADMSG (digest mismatch) rather than whatever garbage
 * tripped first.
 */
#define _GNU_SOURCE
#include "layer.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "fs.h"
#include "util.h"

#define LAYER_BUF_SIZE (256 * 1024)
#define RING_SLOTS 8
#define DIR_CACHE_MAX 32
#define SHA256_PREFIX "sha256:"
#define SHA256_HEX_LEN 64
#define WHITEOUT_PREFIX ".wh."
#define WHITEOUT_META_PREFIX ".wh..wh."
#define WHITEOUT_OPAQUE ".wh..wh..opq"

/* An entry path split into components (pointers into buf). */
typedef struct split_path {
    char buf[PATH_MAX];
    const char *comps[PATH_MAX / 2 + 1];
    size_t n;
} split_path;

typedef struct dir_mtime {
    char *path;
    struct timespec ts[2];
} dir_mtime;

typedef struct layer_ctx {
    layer_read_fn read_fn;
    void *userdata;
    layer_compression compression;
    int dir_fd;
    bool root;

    EVP_MD_CTX *md_c; /* compressed stream */
    EVP_MD_CTX *md_u; /* uncompressed stream (unused for NONE: same bytes) */

    uint8_t *in;
    size_t in_len; /* valid bytes in in[] (for NONE: handed out directly) */
    size_t in_pos; /* zstd: consumed bytes of in[] (gzip keeps them in z) */
    bool in_eof;
    uint8_t *out;
    z_stream z;
    bool z_ready;
    bool z_member_end; /* a gzip member ended and no input follows yet */
    ZSTD_DStream *zd;
    size_t zd_hint; /* last ZSTD_decompressStream result: 0 when a frame is complete */
    bool out_eof;

    /* The decompressor's failure, seen from inside libarchive's read callback. */
    int cb_r;
    cc_error *cb_err;
    bool read_failed; /* cb_r came from read_fn: no point reading on */

    struct {
        unsigned depth;
        int fds[DIR_CACHE_MAX];
        char *names[DIR_CACHE_MAX];
    } cache;

    dir_mtime *mtimes;
    size_t n_mtimes, cap_mtimes;

    split_path path, target;
    layer_stats stats;

    /*
     * Two threads: a producer runs produce() (read, sha256, decompress, sha256) ahead into a
     * ring of chunks while this thread parses the tar and writes files; everything above
     * this comment up to `stats` but the unpack state belongs to the producer until joined.
     */
    struct {
        pthread_mutex_t mu;
        pthread_cond_t cv;
        uint8_t *slot[RING_SLOTS];
        size_t len[RING_SLOTS];
        size_t head, count;
        bool done;      /* the producer finished: r, err */
        int r;
        cc_error *err;
        bool running;   /* a producer thread exists (join it) */
        pthread_t thread;
        uint8_t *chunk; /* the consumer's current chunk (a copy of a slot) */
    } ring;
} layer_ctx;

int
layer_compression_from_media_type(const char *media_type, layer_compression *ret, cc_error **err)
{
    static const struct {
        const char *type;
        layer_compression c;
    } table[] = {
        {"application/vnd.oci.image.layer.v1.tar", LAYER_COMPRESSION_NONE},
        {"application/vnd.oci.image.layer.v1.tar+gzip", LAYER_COMPRESSION_GZIP},
        {"application/vnd.oci.image.layer.v1.tar+zstd", LAYER_COMPRESSION_ZSTD},
        {"application/vnd.docker.image.rootfs.diff.tar.gzip", LAYER_COMPRESSION_GZIP},
        {"application/vnd.docker.image.rootfs.diff.tar", LAYER_COMPRESSION_NONE},
    };

    if (!media_type)
        return cc_error_msg(err, -EINVAL, "layer media type missing");
    for (size_t i = 0; i < ELEMENTSOF(table); i++)
        if (strcmp(media_type, table[i].type) == 0) {
            *ret = table[i].c;
            return 0;
        }
    if (strstr(media_type, "encrypted"))
        return cc_error_msg(err, -EOPNOTSUPP, "encrypted layer media type '%s' not supported",
                            media_type);
    if (strstr(media_type, "nondistributable") || strstr(media_type, "foreign"))
        return cc_error_msg(err, -EOPNOTSUPP, "foreign layer media type '%s' not supported",
                            media_type);
    return cc_error_msg(err, -EOPNOTSUPP, "layer media type '%s' not supported", media_type);
}

static bool
digest_is_valid(const char *d)
{
    const char *hex = d ? cc_startswith(d, SHA256_PREFIX) : NULL;
    if (!hex || strlen(hex) != SHA256_HEX_LEN)
        return false;
    for (const char *p = hex; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

/* "sha256:<hex>" of md (finalised) into buf. */
static void
digest_final(EVP_MD_CTX *md, char buf[sizeof(SHA256_PREFIX) + SHA256_HEX_LEN])
{
    unsigned char h[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    (void)EVP_DigestFinal_ex(md, h, &len);
    char *p = buf + strlen(SHA256_PREFIX);
    memcpy(buf, SHA256_PREFIX, strlen(SHA256_PREFIX));
    for (unsigned i = 0; i < len && i < SHA256_HEX_LEN / 2; i++, p += 2)
        snprintf(p, 3, "%02x", h[i]);
    *p = '\0';
}

/* ---- compressed input and decompression ---------------------------------------------- */

/* Refills in[] from read_fn (hashing it). Returns bytes read, 0 at the end, or < 0. */
static int
input_refill(layer_ctx *c, cc_error **err)
{
    if (c->in_eof)
        return 0;
    ssize_t n = c->read_fn(c->userdata, c->in, LAYER_BUF_SIZE, err);
    if (n < 0) {
        c->read_failed = true;
        return cc_error_prefix(err, (int)n, "read");
    }
    if (n > LAYER_BUF_SIZE) {
        c->read_failed = true;
        return cc_error_msg(err, -EIO, "read: callback returned too much");
    }
    c->in_len = (size_t)n;
    if (n == 0) {
        c->in_eof = true;
        return 0;
    }
    (void)EVP_DigestUpdate(c->md_c, c->in, (size_t)n);
    c->stats.compressed_bytes += (uint64_t)n;
    return (int)n;
}

static int
gzip_produce(layer_ctx *c, const void **ret, size_t *ret_len, cc_error **err)
{
    c->z.next_out = c->out;
    c->z.avail_out = LAYER_BUF_SIZE;
    while (c->z.avail_out > 0) {
        if (c->z.avail_in == 0) {
            int r = input_refill(c, err);
            if (r < 0)
                return r;
            if (r == 0) {
                if (c->z_member_end || c->stats.compressed_bytes == 0)
                    break; /* the end (an empty stream is left to the tar reader) */
                return cc_error_msg(err, -EINVAL, "gzip: unexpected end of stream");
            }
            c->z.next_in = c->in;
            c->z.avail_in = (uInt)c->in_len;
        }
        if (c->z_member_end) {
            /* more input after a complete member: the next member (or garbage) */
            if (inflateReset(&c->z) != Z_OK)
                return cc_error_msg(err, -EINVAL, "gzip: reset failed");
            c->z_member_end = false;
        }
        int zr = inflate(&c->z, Z_NO_FLUSH);
        if (zr == Z_STREAM_END)
            c->z_member_end = true;
        else if (zr == Z_MEM_ERROR)
            return cc_error_msg(err, -ENOMEM, "gzip: out of memory");
        else if (zr != Z_OK && zr != Z_BUF_ERROR)
            return cc_error_msg(err, -EINVAL, "gzip: %s",
                                c->z.msg ? c->z.msg : "invalid compressed data");
    }
    *ret = c->out;
    *ret_len = LAYER_BUF_SIZE - c->z.avail_out;
    return 0;
}

static int
zstd_produce(layer_ctx *c, const void **ret, size_t *ret_len, cc_error **err)
{
    ZSTD_outBuffer out = {.dst = c->out, .size = LAYER_BUF_SIZE, .pos = 0};

    while (out.pos < out.size) {
        if (c->in_pos == c->in_len && !c->in_eof) {
            int r = input_refill(c, err);
            if (r < 0)
                return r;
            c->in_pos = 0;
            if (r == 0)
                c->in_len = 0;
        }
        ZSTD_inBuffer in = {.src = c->in, .size = c->in_len, .pos = c->in_pos};
        if (in.pos == in.size) {
            /* the end of the input: a complete frame, or output still held by the decoder */
            if (c->zd_hint == 0)
                break;
            size_t before = out.pos;
            size_t zr = ZSTD_decompressStream(c->zd, &out, &in);
            if (ZSTD_isError(zr))
                return cc_error_msg(err, -EINVAL, "zstd: %s", ZSTD_getErrorName(zr));
            c->zd_hint = zr;
            if (zr != 0 && out.pos == before)
                return cc_error_msg(err, -EINVAL, "zstd: unexpected end of stream");
            continue;
        }
        size_t zr = ZSTD_decompressStream(c->zd, &out, &in);
        if (ZSTD_isError(zr))
            return cc_error_msg(err, -EINVAL, "zstd: %s", ZSTD_getErrorName(zr));
        c->zd_hint = zr;
        c->in_pos = in.pos;
    }
    *ret = c->out;
    *ret_len = out.pos;
    return 0;
}

/*
 * The next chunk of the uncompressed stream, hashed: *ret points into our buffers and stays
 * valid until the next call. Returns the length (0 at the end) or a negative errno.
 */
static ssize_t
produce(layer_ctx *c, const void **ret, cc_error **err)
{
    size_t len = 0;
    int r;

    if (c->out_eof)
        return 0;
    switch (c->compression) {
    case LAYER_COMPRESSION_NONE:
        r = input_refill(c, err);
        *ret = c->in;
        len = r > 0 ? c->in_len : 0;
        break;
    case LAYER_COMPRESSION_GZIP:
        r = gzip_produce(c, ret, &len, err);
        break;
    case LAYER_COMPRESSION_ZSTD:
        r = zstd_produce(c, ret, &len, err);
        break;
    default:
        r = cc_error_msg(err, -EINVAL, "unknown compression %d", (int)c->compression);
    }
    if (r < 0)
        return r;
    if (len == 0) {
        c->out_eof = true;
        return 0;
    }
    if (c->compression != LAYER_COMPRESSION_NONE)
        (void)EVP_DigestUpdate(c->md_u, *ret, len);
    c->stats.uncompressed_bytes += len;
    return (ssize_t)len;
}

/* --- the producer thread and its ring ------------------------------------------------------- */

static void *
producer_thread(void *userdata)
{
    layer_ctx *c = userdata;
    cc_error *e = NULL;

    for (;;) {
        const void *p = NULL;
        ssize_t n = produce(c, &p, &e);
        pthread_mutex_lock(&c->ring.mu);
        while (n > 0 && c->ring.count == RING_SLOTS)
            pthread_cond_wait(&c->ring.cv, &c->ring.mu);
        if (n <= 0) {
            c->ring.done = true;
            c->ring.r = (int)n;
            c->ring.err = e;
            pthread_cond_broadcast(&c->ring.cv);
            pthread_mutex_unlock(&c->ring.mu);
            return NULL;
        }
        size_t tail = (c->ring.head + c->ring.count) % RING_SLOTS;
        memcpy(c->ring.slot[tail], p, (size_t)n);
        c->ring.len[tail] = (size_t)n;
        c->ring.count++;
        pthread_cond_broadcast(&c->ring.cv);
        pthread_mutex_unlock(&c->ring.mu);
    }
}

/* The next uncompressed chunk from the producer (valid until the next call): its length, 0 at
 * the end, or the producer's error (*err set). */
static ssize_t
consume(layer_ctx *c, const void **ret, cc_error **err)
{
    ssize_t n;

    pthread_mutex_lock(&c->ring.mu);
    while (c->ring.count == 0 && !c->ring.done)
        pthread_cond_wait(&c->ring.cv, &c->ring.mu);
    if (c->ring.count > 0) {
        size_t h = c->ring.head;
        n = (ssize_t)c->ring.len[h];
        memcpy(c->ring.chunk, c->ring.slot[h], (size_t)n);
        c->ring.head = (h + 1) % RING_SLOTS;
        c->ring.count--;
        pthread_cond_broadcast(&c->ring.cv);
        *ret = c->ring.chunk;
    } else {
        n = c->ring.r;
        if (n < 0 && err && c->ring.err) {
            *err = c->ring.err;
            c->ring.err = NULL;
        } else if (n < 0 && err && !*err) {
            cc_error_msg(err, (int)n, "decompression failed");
        }
    }
    pthread_mutex_unlock(&c->ring.mu);
    return n;
}

/* Waits for the producer to finish, discarding what it still makes. */
static void
producer_join(layer_ctx *c)
{
    if (!c->ring.running)
        return;
    const void *p;
    while (consume(c, &p, NULL) > 0)
        ;
    pthread_join(c->ring.thread, NULL);
    c->ring.running = false;
}

static la_ssize_t
archive_read_cb(struct archive *a, void *userdata, const void **buf)
{
    layer_ctx *c = userdata;
    ssize_t n = consume(c, buf, &c->cb_err);
    if (n < 0) {
        c->cb_r = (int)n;
        archive_set_error(a, (int)-n, "%s", cc_error_message(c->cb_err));
        return -1;
    }
    return n;
}

/* Everything after the tar end marker: hashed, not unpacked. */
static int
drain_uncompressed(layer_ctx *c, cc_error **err)
{
    const void *buf;
    ssize_t n;
    while ((n = consume(c, &buf, err)) > 0)
        ;
    return (int)n;
}

/* Hashes the rest of the compressed input only (after a content error). */
static int
drain_compressed(layer_ctx *c, cc_error **err)
{
    int r;
    if (c->read_failed)
        return -EIO;
    while ((r = input_refill(c, err)) > 0)
        ;
    return r;
}

/* ---- directories ---------------------------------------------------------------------- */

static void
cache_truncate(layer_ctx *c, unsigned depth)
{
    while (c->cache.depth > depth) {
        c->cache.depth--;
        c->cache.fds[c->cache.depth] = cc_close(c->cache.fds[c->cache.depth]);
        free(c->cache.names[c->cache.depth]);
        c->cache.names[c->cache.depth] = NULL;
    }
}

/* Splits and sanitizes an entry name (policy in layer.h). n == 0 means the root itself. */
static int
path_split(const char *name, split_path *sp, cc_error **err)
{
    size_t len = strlen(name);
    if (len == 0)
        return cc_error_msg(err, -EINVAL, "empty name");
    if (len >= PATH_MAX)
        return cc_error_msg(err, -ENAMETOOLONG, "name longer than %d bytes", PATH_MAX - 1);
    memcpy(sp->buf, name, len + 1);
    sp->n = 0;
    char *save = NULL;
    for (char *t = strtok_r(sp->buf, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
        if (strcmp(t, ".") == 0)
            continue;
        if (strcmp(t, "..") == 0)
            return cc_error_msg(err, -EINVAL, "'..' in name");
        if (strlen(t) > NAME_MAX)
            return cc_error_msg(err, -ENAMETOOLONG, "component longer than %d bytes", NAME_MAX);
        sp->comps[sp->n++] = t;
    }
    return 0;
}

static int
open_child_dir(int parent, const char *name, bool create, cc_error **err)
{
    for (int attempt = 0;; attempt++) {
        int fd = openat(parent, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0)
            return fd;
        if (errno == ELOOP || errno == ENOTDIR)
            return cc_error_msg(err, -ENOTDIR, "'%s' is a symlink or not a directory", name);
        if (errno != ENOENT || !create || attempt > 0)
            return cc_error_set(err, -errno, "open directory '%s'", name);
        if (mkdirat(parent, name, 0755) < 0 && errno != EEXIST)
            return cc_error_set(err, -errno, "mkdir '%s'", name);
    }
}

/*
 * Opens the directory made of the first n components of sp, never following a symlink and
 * creating missing directories when create. *ret_fd is borrowed (dir_fd or a cached fd) or,
 * when *ret_owned >= 0, the same fd owned by the caller.
 */
static int
walk(layer_ctx *c, const split_path *sp, size_t n, bool create, bool use_cache, int *ret_fd,
     int *ret_owned, cc_error **err)
{
    size_t m = 0;
    int cur = c->dir_fd;
    _cleanup_close_ int owned = -EBADF;

    if (use_cache) {
        while (m < c->cache.depth && m < n && strcmp(c->cache.names[m], sp->comps[m]) == 0)
            m++;
        cache_truncate(c, (unsigned)m);
        if (m > 0)
            cur = c->cache.fds[m - 1];
    }
    for (size_t i = m; i < n; i++) {
        int fd = open_child_dir(cur, sp->comps[i], create, err);
        if (fd < 0)
            return fd;
        if (use_cache && i < DIR_CACHE_MAX && i == c->cache.depth) {
            c->cache.fds[i] = fd;
            c->cache.names[i] = cc_xstrdup(sp->comps[i]);
            c->cache.depth++;
        } else {
            cc_close(owned);
            owned = fd;
        }
        cur = fd;
    }
    *ret_fd = cur;
    *ret_owned = TAKE_FD(owned);
    return 0;
}

/* Removes parent/name whatever it is (a directory recursively); missing is fine. */
static int
remove_existing(int parent, const char *name, cc_error **err)
{
    struct stat st;
    if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : cc_error_set(err, -errno, "stat existing");
    if (S_ISDIR(st.st_mode))
        return cc_rm_rf_at(parent, name, err);
    if (unlinkat(parent, name, 0) < 0 && errno != ENOENT)
        return cc_error_set(err, -errno, "remove existing");
    return 0;
}

/* ---- entries -------------------------------------------------------------------------- */

static void
entry_times(struct archive_entry *e, struct timespec ts[2])
{
    ts[1] = (struct timespec){.tv_sec = archive_entry_mtime(e),
                              .tv_nsec = archive_entry_mtime_nsec(e)};
    if (archive_entry_atime_is_set(e))
        ts[0] = (struct timespec){.tv_sec = archive_entry_atime(e),
                                  .tv_nsec = archive_entry_atime_nsec(e)};
    else
        ts[0] = ts[1];
    for (int i = 0; i < 2; i++)
        if (ts[i].tv_nsec < 0 || ts[i].tv_nsec > 999999999)
            ts[i].tv_nsec = 0;
}

static int
entry_owner(struct archive_entry *e, uid_t *uid, gid_t *gid, cc_error **err)
{
    la_int64_t u = archive_entry_uid(e), g = archive_entry_gid(e);
    if (u < 0 || u >= (la_int64_t)UINT32_MAX || g < 0 || g >= (la_int64_t)UINT32_MAX)
        return cc_error_msg(err, -EINVAL, "owner %lld:%lld out of range", (long long)u,
                            (long long)g);
    *uid = (uid_t)u;
    *gid = (gid_t)g;
    return 0;
}

/* Owner, mode, xattrs (and mtime unless dir) on an open file or directory. */
static int
apply_metadata(layer_ctx *c, int fd, struct archive_entry *e, bool times, cc_error **err)
{
    uid_t uid;
    gid_t gid;
    int r = entry_owner(e, &uid, &gid, err);
    if (r < 0)
        return r;
    /* chown first: it clears setuid/setgid, which the chmod then sets */
    if (fchown(fd, uid, gid) < 0 && (c->root || errno != EPERM))
        return cc_error_set(err, -errno, "chown %u:%u", (unsigned)uid, (unsigned)gid);
    if (fchmod(fd, archive_entry_mode(e) & 07777) < 0)
        return cc_error_set(err, -errno, "chmod");
    const char *name;
    const void *value;
    size_t size;
    archive_entry_xattr_reset(e);
    while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
        if (!name || !(cc_startswith(name, "user.") || strcmp(name, "security.capability") == 0))
            continue;
        if (fsetxattr(fd, name, value, size, 0) < 0)
            return cc_error_set(err, -errno, "set xattr '%s'", name);
    }
    if (times) {
        struct timespec ts[2];
        entry_times(e, ts);
        if (futimens(fd, ts) < 0)
            return cc_error_set(err, -errno, "set times");
    }
    return 0;
}

static int
write_all_at(int fd, const uint8_t *buf, size_t len, off_t off)
{
    while (len > 0) {
        ssize_t n = pwrite(fd, buf, len, off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return cc_negerrno();
        }
        buf += n;
        len -= (size_t)n;
        off += n;
    }
    return 0;
}

static int
unpack_file(layer_ctx *c, struct archive *a, struct archive_entry *e, int parent,
            const char *name, cc_error **err)
{
    const int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY;
    _cleanup_close_ int fd = openat(parent, name, flags, 0600);
    if (fd < 0 && errno == EEXIST) {
        int r = remove_existing(parent, name, err);
        if (r < 0)
            return r;
        fd = openat(parent, name, flags, 0600);
    }
    if (fd < 0)
        return cc_error_set(err, -errno, "create");

    off_t end = 0;
    for (;;) {
        const void *buf;
        size_t size;
        la_int64_t off;
        int ar = archive_read_data_block(a, &buf, &size, &off);
        if (ar == ARCHIVE_EOF)
            break;
        if (ar < ARCHIVE_WARN) {
            if (c->cb_r < 0)
                return c->cb_r;
            return cc_error_msg(err, -EINVAL, "read data: %s", archive_error_string(a));
        }
        if (off < 0)
            return cc_error_msg(err, -EINVAL, "bad data offset");
        int r = write_all_at(fd, buf, size, (off_t)off);
        if (r < 0)
            return cc_error_set(err, r, "write");
        if ((off_t)(off + size) > end)
            end = (off_t)(off + size);
    }
    la_int64_t size = archive_entry_size_is_set(e) ? archive_entry_size(e) : 0;
    if (size > end && ftruncate(fd, (off_t)size) < 0)
        return cc_error_set(err, -errno, "truncate");
    return apply_metadata(c, fd, e, true, err);
}

static int
unpack_dir(layer_ctx *c, struct archive_entry *e, int parent, const char *name, cc_error **err)
{
    struct stat st;
    if (mkdirat(parent, name, 0700) < 0) {
        if (errno != EEXIST)
            return cc_error_set(err, -errno, "mkdir");
        if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            return cc_error_set(err, -errno, "stat existing");
        if (!S_ISDIR(st.st_mode)) {
            int r = remove_existing(parent, name, err);
            if (r < 0)
                return r;
            if (mkdirat(parent, name, 0700) < 0)
                return cc_error_set(err, -errno, "mkdir");
        }
    }
    _cleanup_close_ int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return cc_error_set(err, -errno, "open directory");
    int r = apply_metadata(c, fd, e, false, err);
    if (r < 0)
        return r;
    /* mtime later, when no child will change it any more */
    if (c->n_mtimes == c->cap_mtimes) {
        c->cap_mtimes = c->cap_mtimes ? c->cap_mtimes * 2 : 64;
        c->mtimes = cc_xreallocarray(c->mtimes, c->cap_mtimes, sizeof(*c->mtimes));
    }
    dir_mtime *m = &c->mtimes[c->n_mtimes++];
    m->path = cc_xstrdup(archive_entry_pathname(e) ? archive_entry_pathname(e)
                                                   : archive_entry_pathname_utf8(e));
    entry_times(e, m->ts);
    return 0;
}

/* Owner and times of something just created at parent/name that we cannot open. */
static int
apply_metadata_at(layer_ctx *c, int parent, const char *name, struct archive_entry *e,
                  bool chmod, cc_error **err)
{
    uid_t uid;
    gid_t gid;
    int r = entry_owner(e, &uid, &gid, err);
    if (r < 0)
        return r;
    if (fchownat(parent, name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0 && (c->root || errno != EPERM))
        return cc_error_set(err, -errno, "chown %u:%u", (unsigned)uid, (unsigned)gid);
    /* only for FIFOs, which this very entry created (fchmodat follows symlinks) */
    if (chmod && fchmodat(parent, name, archive_entry_mode(e) & 07777, 0) < 0)
        return cc_error_set(err, -errno, "chmod");
    struct timespec ts[2];
    entry_times(e, ts);
    if (utimensat(parent, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
        return cc_error_set(err, -errno, "set times");
    return 0;
}

static int
unpack_symlink(layer_ctx *c, struct archive_entry *e, int parent, const char *name,
               cc_error **err)
{
    const char *target = archive_entry_symlink(e);
    if (!target)
        target = archive_entry_symlink_utf8(e);
    if (!target || !*target)
        return cc_error_msg(err, -EINVAL, "symlink without a target");
    if (symlinkat(target, parent, name) < 0) {
        if (errno != EEXIST)
            return cc_error_set(err, -errno, "symlink");
        int r = remove_existing(parent, name, err);
        if (r < 0)
            return r;
        if (symlinkat(target, parent, name) < 0)
            return cc_error_set(err, -errno, "symlink");
    }
    return apply_metadata_at(c, parent, name, e, false, err);
}

static int
unpack_fifo(layer_ctx *c, struct archive_entry *e, int parent, const char *name, cc_error **err)
{
    int r = remove_existing(parent, name, err);
    if (r < 0)
        return r;
    if (mknodat(parent, name, S_IFIFO | 0600, 0) < 0)
        return cc_error_set(err, -errno, "mkfifo");
    return apply_metadata_at(c, parent, name, e, true, err);
}

static int
unpack_hardlink(layer_ctx *c, const char *link, int parent, const char *name, cc_error **err)
{
    int r = path_split(link, &c->target, err);
    if (r < 0)
        return cc_error_prefix(err, r, "hard link target '%s'", link);
    if (c->target.n == 0)
        return cc_error_msg(err, -EINVAL, "hard link to the root");
    int tparent;
    _cleanup_close_ int towned = -EBADF;
    r = walk(c, &c->target, c->target.n - 1, false, false, &tparent, &towned, err);
    if (r < 0)
        return cc_error_prefix(err, r, "hard link target '%s'", link);
    const char *tname = c->target.comps[c->target.n - 1];
    struct stat st, dst;
    if (fstatat(tparent, tname, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return cc_error_set(err, -errno, "hard link target '%s'", link);
    if (!S_ISREG(st.st_mode))
        return cc_error_msg(err, -EINVAL, "hard link target '%s' is not a regular file", link);
    if (fstatat(parent, name, &dst, AT_SYMLINK_NOFOLLOW) == 0) {
        if (dst.st_dev == st.st_dev && dst.st_ino == st.st_ino)
            return 0; /* already that file */
        r = remove_existing(parent, name, err);
        if (r < 0)
            return r;
    }
    if (linkat(tparent, tname, parent, name, 0) < 0)
        return cc_error_set(err, -errno, "link to '%s'", link);
    return 0;
}

static int
unpack_whiteout(layer_ctx *c, int parent, const char *name, cc_error **err)
{
    if (strcmp(name, WHITEOUT_OPAQUE) == 0) {
        _cleanup_close_ int fd = openat(parent, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
            return cc_error_set(err, -errno, "open directory");
        if (fsetxattr(fd, "trusted.overlay.opaque", "y", 1, 0) < 0)
            return cc_error_set(err, -errno, "set trusted.overlay.opaque");
        c->stats.whiteouts++;
        return 0;
    }
    if (cc_startswith(name, WHITEOUT_META_PREFIX))
        return 0; /* other AUFS metadata (.wh..wh.plnk, ...): meaningless to overlayfs */
    const char *victim = name + strlen(WHITEOUT_PREFIX);
    if (!cc_filename_is_valid(victim))
        return cc_error_msg(err, -EINVAL, "invalid whiteout");
    int r = cc_rm_rf_at(parent, victim, err);
    if (r < 0)
        return r;
    if (mknodat(parent, victim, S_IFCHR | 0000, makedev(0, 0)) < 0)
        return cc_error_set(err, -errno, "mknod whiteout '%s'", victim);
    c->stats.whiteouts++;
    return 0;
}

static int
unpack_entry(layer_ctx *c, struct archive *a, struct archive_entry *e, const char *path,
             cc_error **err)
{
    int r = path_split(path, &c->path, err);
    if (r < 0)
        return r;
    mode_t type = archive_entry_filetype(e);
    const char *link = archive_entry_hardlink(e);
    if (!link)
        link = archive_entry_hardlink_utf8(e);
    if (c->path.n == 0) {
        if (type == AE_IFDIR && !link)
            return 0; /* "./": the caller's directory, left as it is */
        return cc_error_msg(err, -EINVAL, "names the root directory");
    }
    if (!link && (type == AE_IFCHR || type == AE_IFBLK)) {
        c->stats.devices_skipped++;
        return 0;
    }
    int parent;
    _cleanup_close_ int owned = -EBADF;
    r = walk(c, &c->path, c->path.n - 1, true, true, &parent, &owned, err);
    if (r < 0)
        return r;
    const char *name = c->path.comps[c->path.n - 1];
    if (cc_startswith(name, WHITEOUT_PREFIX))
        return unpack_whiteout(c, parent, name, err);
    if (link)
        return unpack_hardlink(c, link, parent, name, err);
    switch (type) {
    case AE_IFREG:
        return unpack_file(c, a, e, parent, name, err);
    case AE_IFDIR:
        return unpack_dir(c, e, parent, name, err);
    case AE_IFLNK:
        return unpack_symlink(c, e, parent, name, err);
    case AE_IFIFO:
        return unpack_fifo(c, e, parent, name, err);
    default:
        return cc_error_msg(err, -EINVAL, "unsupported file type 0%o", (unsigned)type);
    }
}

static int
apply_dir_mtimes(layer_ctx *c, cc_error **err)
{
    for (size_t i = 0; i < c->n_mtimes; i++) {
        dir_mtime *m = &c->mtimes[i];
        if (path_split(m->path, &c->path, NULL) < 0 || c->path.n == 0)
            continue;
        int parent;
        _cleanup_close_ int owned = -EBADF;
        if (walk(c, &c->path, c->path.n - 1, false, true, &parent, &owned, NULL) < 0)
            continue; /* replaced or whited out by a later entry */
        const char *name = c->path.comps[c->path.n - 1];
        struct stat st;
        if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
            continue;
        if (utimensat(parent, name, m->ts, AT_SYMLINK_NOFOLLOW) < 0)
            return cc_error_set(err, -errno, "tar entry '%s': set times", m->path);
    }
    return 0;
}

/* Errors the layer's bytes cannot cause: no point reading the rest to check the digest. */
static bool
error_is_environmental(int r)
{
    return r == -ENOSPC || r == -EDQUOT || r == -EIO || r == -ENOMEM || r == -EMFILE ||
           r == -ENFILE || r == -EROFS;
}

static int
unpack_all(layer_ctx *c, cc_error **err)
{
    struct archive *a = archive_read_new();
    if (!a)
        return cc_error_msg(err, -ENOMEM, "archive_read_new failed");
    int r = 0;
    if (archive_read_support_format_tar(a) != ARCHIVE_OK ||
        archive_read_support_format_gnutar(a) != ARCHIVE_OK) {
        r = cc_error_msg(err, -EINVAL, "tar: %s", archive_error_string(a));
        goto out;
    }
    if (archive_read_open(a, c, NULL, archive_read_cb, NULL) != ARCHIVE_OK) {
        r = c->cb_r < 0 ? c->cb_r : cc_error_msg(err, -EINVAL, "tar: %s", archive_error_string(a));
        goto out;
    }
    for (;;) {
        struct archive_entry *e;
        int ar = archive_read_next_header(a, &e);
        if (ar == ARCHIVE_EOF)
            break;
        if (ar != ARCHIVE_OK && ar != ARCHIVE_WARN) {
            r = c->cb_r < 0 ? c->cb_r
                            : cc_error_msg(err, -EINVAL, "tar: %s", archive_error_string(a));
            goto out;
        }
        c->stats.entries++;
        const char *path = archive_entry_pathname(e);
        if (!path)
            path = archive_entry_pathname_utf8(e);
        if (!path) {
            r = cc_error_msg(err, -EINVAL, "tar entry %u: no name", c->stats.entries);
            goto out;
        }
        r = unpack_entry(c, a, e, path, err);
        if (r < 0) {
            if (c->cb_r < 0)
                goto out;
            r = cc_error_prefix(err, r, "tar entry '%s'", path);
            goto out;
        }
    }
out:
    archive_read_free(a);
    if (c->cb_r < 0) {
        /* the decompressor failed below libarchive: its error is the one to report */
        if (err) {
            cc_error_free(*err);
            *err = TAKE_PTR(c->cb_err);
        }
        return c->cb_r;
    }
    return r;
}

/*
 * The end of the pass: r is its result so far. Checks both digests; after a content error,
 * reads the rest of the input first so that corrupted bytes are reported as such.
 */
static int
verify(layer_ctx *c, int r, const char *digest, const char *diff_id, cc_error **err)
{
    char got[sizeof(SHA256_PREFIX) + SHA256_HEX_LEN];
    if (r < 0) {
        if (!c->read_failed && !error_is_environmental(r) && drain_compressed(c, NULL) == 0) {
            digest_final(c->md_c, got);
            if (strcmp(got, digest) != 0)
                return cc_error_prefix(err, -EBADMSG, "layer %s: digest mismatch (got %s)",
                                       digest, got);
        }
        return cc_error_prefix(err, r, "layer %s", digest);
    }
    digest_final(c->md_c, got);
    if (strcmp(got, digest) != 0)
        return cc_error_msg(err, -EBADMSG, "layer %s: digest mismatch (got %s)", digest, got);
    if (c->compression != LAYER_COMPRESSION_NONE)
        digest_final(c->md_u, got);
    if (strcmp(got, diff_id) != 0)
        return cc_error_msg(err, -EBADMSG, "layer %s: diff_id mismatch (got %s, want %s)", digest,
                            got, diff_id);
    return 0;
}

static void
ctx_done(layer_ctx *c)
{
    producer_join(c);
    for (size_t i = 0; i < RING_SLOTS; i++)
        free(c->ring.slot[i]);
    free(c->ring.chunk);
    cc_error_free(c->ring.err);
    if (c->ring.slot[0]) {
        pthread_mutex_destroy(&c->ring.mu);
        pthread_cond_destroy(&c->ring.cv);
    }
    cache_truncate(c, 0);
    for (size_t i = 0; i < c->n_mtimes; i++)
        free(c->mtimes[i].path);
    free(c->mtimes);
    EVP_MD_CTX_free(c->md_c);
    EVP_MD_CTX_free(c->md_u);
    if (c->z_ready)
        inflateEnd(&c->z);
    ZSTD_freeDStream(c->zd);
    free(c->in);
    free(c->out);
    cc_error_free(c->cb_err);
    free(c);
}

int
layer_unpack(layer_read_fn read_fn, void *userdata, layer_compression compression,
             const char *digest, const char *diff_id, int dir_fd, layer_stats *stats,
             cc_error **err)
{
    if (!digest_is_valid(digest))
        return cc_error_msg(err, -EINVAL, "layer digest '%s' is not sha256:<64 hex>",
                            digest ? digest : "");
    if (!digest_is_valid(diff_id))
        return cc_error_msg(err, -EINVAL, "layer %s: diff_id '%s' is not sha256:<64 hex>",
                            digest, diff_id ? diff_id : "");
    if (compression != LAYER_COMPRESSION_NONE && compression != LAYER_COMPRESSION_GZIP &&
        compression != LAYER_COMPRESSION_ZSTD)
        return cc_error_msg(err, -EINVAL, "layer %s: unknown compression %d", digest,
                            (int)compression);

    layer_ctx *c = cc_xzalloc(sizeof(*c));
    c->read_fn = read_fn;
    c->userdata = userdata;
    c->compression = compression;
    c->dir_fd = dir_fd;
    c->root = geteuid() == 0;
    c->in = cc_xmalloc(LAYER_BUF_SIZE);
    c->out = cc_xmalloc(LAYER_BUF_SIZE);
    c->md_c = EVP_MD_CTX_new();
    c->md_u = EVP_MD_CTX_new();
    int r;
    if (!c->md_c || !c->md_u || EVP_DigestInit_ex(c->md_c, EVP_sha256(), NULL) != 1 ||
        EVP_DigestInit_ex(c->md_u, EVP_sha256(), NULL) != 1) {
        r = cc_error_msg(err, -ENOMEM, "layer %s: sha256 init failed", digest);
        goto out;
    }
    if (compression == LAYER_COMPRESSION_GZIP) {
        if (inflateInit2(&c->z, 16 + MAX_WBITS) != Z_OK) {
            r = cc_error_msg(err, -ENOMEM, "layer %s: inflateInit2 failed", digest);
            goto out;
        }
        c->z_ready = true;
    } else if (compression == LAYER_COMPRESSION_ZSTD) {
        c->zd = ZSTD_createDStream();
        if (!c->zd || ZSTD_isError(ZSTD_initDStream(c->zd))) {
            r = cc_error_msg(err, -ENOMEM, "layer %s: ZSTD_createDStream failed", digest);
            goto out;
        }
    }

    pthread_mutex_init(&c->ring.mu, NULL);
    pthread_cond_init(&c->ring.cv, NULL);
    for (size_t i = 0; i < RING_SLOTS; i++)
        c->ring.slot[i] = cc_xmalloc(LAYER_BUF_SIZE);
    c->ring.chunk = cc_xmalloc(LAYER_BUF_SIZE);
    if (pthread_create(&c->ring.thread, NULL, producer_thread, c) != 0) {
        r = cc_error_msg(err, -EAGAIN, "layer %s: cannot start a thread", digest);
        goto out;
    }
    c->ring.running = true;

    r = unpack_all(c, err);
    if (r >= 0)
        r = drain_uncompressed(c, err);
    if (r >= 0)
        r = apply_dir_mtimes(c, err);
    /* from here on the producer's state is ours again */
    producer_join(c);

    r = verify(c, r, digest, diff_id, err);
    if (r < 0)
        goto out;
    if (stats)
        *stats = c->stats;
    r = 0;
out:
    ctx_done(c);
    return r;
}
