/* SPDX-License-Identifier: Apache-2.0 */
/*
 * guest/layer.c: tar layers built in memory with libarchive's writer, compressed here with
 * zlib / libzstd, unpacked into <tmp>/root. Next to root lies outside/ with one file: after
 * every case <tmp> and outside/ must hold exactly what they held before.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <archive.h>
#include <archive_entry.h>
#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "error.h"
#include "fs.h"
#include "layer.h"
#include "util.h"

/* ---- growable byte buffer ---------------------------------------------------------------- */

typedef struct bytes {
    uint8_t *p;
    size_t len, cap;
} bytes;

static void
bytes_append(bytes *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 4096;
        b->p = cc_xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

/* ---- tar builder ------------------------------------------------------------------------- */

typedef struct tarb {
    struct archive *a;
    bytes out;
} tarb;

static la_ssize_t
tar_write_cb(struct archive *a, void *userdata, const void *buf, size_t len)
{
    bytes_append(userdata, buf, len);
    return (la_ssize_t)len;
}

enum { TAR_PAX_RESTRICTED, TAR_GNU, TAR_PAX };

static tarb *
tb_new(int format)
{
    tarb *t = cc_xzalloc(sizeof(*t));
    t->a = archive_write_new();
    assert_non_null(t->a);
    assert_int_equal(format == TAR_GNU   ? archive_write_set_format_gnutar(t->a)
                     : format == TAR_PAX ? archive_write_set_format_pax(t->a)
                                         : archive_write_set_format_pax_restricted(t->a),
                     ARCHIVE_OK);
    assert_int_equal(archive_write_open(t->a, &t->out, NULL, tar_write_cb, NULL), ARCHIVE_OK);
    return t;
}

static struct archive_entry *
tb_entry(const char *path, mode_t type, mode_t perm)
{
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, path);
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, perm);
    archive_entry_set_mtime(e, 1600000000, 5);
    archive_entry_set_uid(e, 0);
    archive_entry_set_gid(e, 0);
    return e;
}

static void
tb_add(tarb *t, struct archive_entry *e, const void *data, size_t len)
{
    assert_int_equal(archive_write_header(t->a, e), ARCHIVE_OK);
    if (len)
        assert_int_equal(archive_write_data(t->a, data, len), (la_ssize_t)len);
    archive_entry_free(e);
}

static void
tb_file(tarb *t, const char *path, const char *data, mode_t perm)
{
    struct archive_entry *e = tb_entry(path, AE_IFREG, perm);
    archive_entry_set_size(e, (la_int64_t)strlen(data));
    tb_add(t, e, data, strlen(data));
}

static void
tb_dir(tarb *t, const char *path, mode_t perm)
{
    tb_add(t, tb_entry(path, AE_IFDIR, perm), NULL, 0);
}

static void
tb_symlink(tarb *t, const char *path, const char *target)
{
    struct archive_entry *e = tb_entry(path, AE_IFLNK, 0777);
    archive_entry_set_symlink(e, target);
    tb_add(t, e, NULL, 0);
}

static void
tb_hardlink(tarb *t, const char *path, const char *target)
{
    struct archive_entry *e = tb_entry(path, AE_IFREG, 0644);
    archive_entry_set_hardlink(e, target);
    archive_entry_set_size(e, 0);
    tb_add(t, e, NULL, 0);
}

static bytes
tb_finish(tarb *t)
{
    assert_int_equal(archive_write_close(t->a), ARCHIVE_OK);
    archive_write_free(t->a);
    bytes b = t->out;
    free(t);
    return b;
}

/* ---- compression and digests -------------------------------------------------------------- */

static void
gzip_member(bytes *out, const uint8_t *p, size_t len)
{
    z_stream z = {0};
    assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY),
                     Z_OK);
    size_t cap = deflateBound(&z, len) + 64;
    uint8_t *buf = cc_xmalloc(cap);
    z.next_in = (uint8_t *)p;
    z.avail_in = (uInt)len;
    z.next_out = buf;
    z.avail_out = (uInt)cap;
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    bytes_append(out, buf, z.total_out);
    deflateEnd(&z);
    free(buf);
}

static bytes
gzip(const bytes *in, bool two_members)
{
    bytes out = {0};
    size_t half = two_members ? in->len / 2 : in->len;
    gzip_member(&out, in->p, half);
    if (two_members)
        gzip_member(&out, in->p + half, in->len - half);
    return out;
}

static bytes
zstd(const bytes *in)
{
    bytes out = {0};
    size_t cap = ZSTD_compressBound(in->len);
    out.p = cc_xmalloc(cap);
    out.cap = cap;
    out.len = ZSTD_compress(out.p, cap, in->p, in->len, 3);
    assert_false(ZSTD_isError(out.len));
    return out;
}

static char *
sha256(const void *p, size_t len)
{
    unsigned char h[32];
    unsigned n = 0;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestInit_ex(md, EVP_sha256(), NULL), 1);
    assert_int_equal(EVP_DigestUpdate(md, p, len), 1);
    assert_int_equal(EVP_DigestFinal_ex(md, h, &n), 1);
    EVP_MD_CTX_free(md);
    char *s = cc_xmalloc(8 + 64);
    strcpy(s, "sha256:");
    for (unsigned i = 0; i < n; i++)
        sprintf(s + 7 + 2 * i, "%02x", h[i]);
    return s;
}

/* ---- reader ------------------------------------------------------------------------------- */

typedef struct reader {
    const uint8_t *p;
    size_t len, pos;
    size_t chunk;     /* at most this per call (0: all requested) */
    size_t fail_at;   /* fail once pos reaches it (0: never) */
} reader;

static ssize_t
read_mem(void *userdata, void *buf, size_t len, cc_error **err)
{
    reader *r = userdata;
    if (r->fail_at && r->pos >= r->fail_at)
        return cc_error_msg(err, -ECONNRESET, "boom from the reader");
    size_t n = r->len - r->pos;
    if (n > len)
        n = len;
    if (r->chunk && n > r->chunk)
        n = r->chunk;
    if (r->fail_at && r->pos + n > r->fail_at)
        n = r->fail_at - r->pos;
    memcpy(buf, r->p + r->pos, n);
    r->pos += n;
    return (ssize_t)n;
}

/* ---- fixture ------------------------------------------------------------------------------ */

typedef struct fixture {
    char tmp[PATH_MAX];
    char root[PATH_MAX + 8];
    int root_fd;
    char *before;
    layer_stats stats;
    cc_error *err;
} fixture;

static char *
list_dir(const char *dir)
{
    struct dirent **ents;
    int n = scandir(dir, &ents, NULL, alphasort);
    if (n < 0)
        return cc_xstrdup("<error>");
    bytes b = {0};
    for (int i = 0; i < n; i++) {
        bytes_append(&b, ents[i]->d_name, strlen(ents[i]->d_name));
        bytes_append(&b, " ", 1);
        free(ents[i]);
    }
    free(ents);
    bytes_append(&b, "", 1);
    return (char *)b.p;
}

/* The tmp dir, outside/, and the parent of tmp: what must never change. */
static char *
snapshot(const fixture *f)
{
    _cleanup_free_ char *outside = cc_xasprintf("%s/outside", f->tmp);
    _cleanup_free_ char *a = list_dir(f->tmp);
    _cleanup_free_ char *b = list_dir(outside);
    _cleanup_free_ char *victim = cc_xasprintf("%s/victim", outside);
    _cleanup_free_ char *content = NULL;
    if (cc_read_file(victim, 100, &content, NULL, NULL) < 0)
        content = cc_xstrdup("<missing>");
    return cc_xasprintf("%s| %s| %s", a, b, content);
}

static int
setup(void **state)
{
    fixture *f = cc_xzalloc(sizeof(*f));
    umask(022);
    snprintf(f->tmp, sizeof(f->tmp), "/tmp/cloak-test-layer-XXXXXX");
    if (!mkdtemp(f->tmp))
        return -1;
    snprintf(f->root, sizeof(f->root), "%s/root", f->tmp);
    _cleanup_free_ char *outside = cc_xasprintf("%s/outside", f->tmp);
    _cleanup_free_ char *victim = cc_xasprintf("%s/victim", outside);
    if (mkdir(f->root, 0755) < 0 || mkdir(outside, 0755) < 0)
        return -1;
    _cleanup_close_ int vfd = open(victim, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (vfd < 0 || write(vfd, "original", 8) != 8)
        return -1;
    f->root_fd = open(f->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (f->root_fd < 0)
        return -1;
    f->before = snapshot(f);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fixture *f = *state;
    _cleanup_free_ char *after = snapshot(f);
    assert_string_equal(after, f->before);
    cc_close(f->root_fd);
    _cleanup_close_ int tfd = open(f->tmp, O_PATH | O_DIRECTORY | O_CLOEXEC);
    cc_rm_rf_children(tfd, NULL);
    rmdir(f->tmp);
    free(f->before);
    cc_error_free(f->err);
    free(f);
    return 0;
}

/* Unpacks data (already compressed as c) with the given digests, or the right ones. */
static int
unpack_with(fixture *f, const bytes *data, layer_compression c, const char *digest,
            const char *diff_id, size_t chunk)
{
    reader r = {.p = data->p, .len = data->len, .chunk = chunk};
    f->err = cc_error_free(f->err);
    memset(&f->stats, 0, sizeof(f->stats));
    int ret = layer_unpack(read_mem, &r, c, digest, diff_id, f->root_fd, &f->stats, &f->err);
    if (ret < 0)
        print_message("layer_unpack: %d %s\n", ret, cc_error_message(f->err));
    else
        assert_null(f->err);
    return ret;
}

/* Compresses tar with c and unpacks it with the right digests. */
static int
unpack_tar(fixture *f, const bytes *tar, layer_compression c)
{
    bytes z = c == LAYER_COMPRESSION_GZIP   ? gzip(tar, false)
              : c == LAYER_COMPRESSION_ZSTD ? zstd(tar)
                                            : (bytes){.p = tar->p, .len = tar->len};
    _cleanup_free_ char *digest = sha256(z.p, z.len);
    _cleanup_free_ char *diff_id = sha256(tar->p, tar->len);
    int r = unpack_with(f, &z, c, digest, diff_id, 0);
    if (z.p != tar->p)
        free(z.p);
    return r;
}

static char *
read_in(fixture *f, const char *path)
{
    char *s = NULL;
    _cleanup_free_ char *p = cc_xasprintf("%s/%s", f->root, path);
    if (cc_read_file(p, 1 << 24, &s, NULL, NULL) < 0)
        return NULL;
    return s;
}

static int
lstat_in(fixture *f, const char *path, struct stat *st)
{
    _cleanup_free_ char *p = cc_xasprintf("%s/%s", f->root, path);
    return lstat(p, st);
}

static bool
error_has(fixture *f, const char *needle)
{
    const char *m = cc_error_message(f->err);
    if (strstr(m, needle))
        return true;
    print_message("error '%s' lacks '%s'\n", m, needle);
    return false;
}

/* ---- cases -------------------------------------------------------------------------------- */

/* A small tree used by the compression cases. */
static bytes
sample_tar(void)
{
    tarb *t = tb_new(TAR_PAX_RESTRICTED);
    tb_dir(t, "./", 0755);
    tb_dir(t, "etc/", 0755);
    tb_file(t, "etc/hostname", "box\n", 0644);
    tb_file(t, "./etc/motd", "hello\n", 0600);
    uint8_t *big = cc_xmalloc(3 << 20);
    uint32_t x = 12345;
    for (size_t i = 0; i < (3u << 20); i++) {
        x = x * 1103515245 + 12345;
        big[i] = i % 3 ? (uint8_t)(x >> 16) : 'a';
    }
    struct archive_entry *e = tb_entry("usr/lib/big.bin", AE_IFREG, 0755);
    archive_entry_set_size(e, 3 << 20);
    tb_add(t, e, big, 3 << 20);
    free(big);
    tb_symlink(t, "bin", "usr/bin");
    return tb_finish(t);
}

static void
check_sample(fixture *f)
{
    _cleanup_free_ char *h = read_in(f, "etc/hostname");
    _cleanup_free_ char *m = read_in(f, "etc/motd");
    assert_string_equal(h, "box\n");
    assert_string_equal(m, "hello\n");
    struct stat st;
    assert_int_equal(lstat_in(f, "usr/lib/big.bin", &st), 0);
    assert_int_equal(st.st_size, 3 << 20);
    assert_int_equal(st.st_mode & 07777, 0755);
    assert_int_equal(st.st_mtim.tv_sec, 1600000000);
    assert_int_equal(lstat_in(f, "etc/motd", &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(lstat_in(f, "bin", &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    assert_int_equal(lstat_in(f, "etc", &st), 0);
    assert_int_equal(st.st_mtim.tv_sec, 1600000000); /* applied after the children */
    assert_int_equal(f->stats.entries, 6);
    assert_true(f->stats.uncompressed_bytes >= (3u << 20));
}

static void
test_gzip(void **state)
{
    fixture *f = *state;
    bytes tar = sample_tar();
    assert_int_equal(unpack_tar(f, &tar, LAYER_COMPRESSION_GZIP), 0);
    check_sample(f);
    assert_int_equal(f->stats.uncompressed_bytes, tar.len);
    free(tar.p);
}

static void
test_gzip_two_members_small_reads(void **state)
{
    fixture *f = *state;
    bytes tar = sample_tar();
    bytes z = gzip(&tar, true);
    _cleanup_free_ char *digest = sha256(z.p, z.len);
    _cleanup_free_ char *diff_id = sha256(tar.p, tar.len);
    assert_int_equal(unpack_with(f, &z, LAYER_COMPRESSION_GZIP, digest, diff_id, 999), 0);
    check_sample(f);
    assert_int_equal(f->stats.compressed_bytes, z.len);
    free(z.p);
    free(tar.p);
}

static void
test_zstd(void **state)
{
    fixture *f = *state;
    bytes tar = sample_tar();
    assert_int_equal(unpack_tar(f, &tar, LAYER_COMPRESSION_ZSTD), 0);
    check_sample(f);
    free(tar.p);
}

static void
test_zstd_two_frames(void **state)
{
    fixture *f = *state;
    bytes tar = sample_tar();
    bytes a = {.p = tar.p, .len = tar.len / 3}, b = {.p = tar.p + a.len, .len = tar.len - a.len};
    bytes za = zstd(&a), zb = zstd(&b);
    bytes_append(&za, zb.p, zb.len);
    _cleanup_free_ char *digest = sha256(za.p, za.len);
    _cleanup_free_ char *diff_id = sha256(tar.p, tar.len);
    assert_int_equal(unpack_with(f, &za, LAYER_COMPRESSION_ZSTD, digest, diff_id, 4096), 0);
    check_sample(f);
    free(za.p);
    free(zb.p);
    free(tar.p);
}

static void
test_none(void **state)
{
    fixture *f = *state;
    bytes tar = sample_tar();
    assert_int_equal(unpack_tar(f, &tar, LAYER_COMPRESSION_NONE), 0);
    check_sample(f);
    free(tar.p);
}

static void
test_digest_mismatch(void **state)
{
    fixture *f = *state;
    bytes tar = sample_tar();
    bytes z = gzip(&tar, false);
    _cleanup_free_ char *digest = sha256(z.p, z.len);
    _cleanup_free_ char *diff_id = sha256(tar.p, tar.len);

    /* a tampered compressed byte, in the middle of the big file */
    z.p[z.len / 2] ^= 0x55;
    assert_int_equal(unpack_with(f, &z, LAYER_COMPRESSION_GZIP, digest, diff_id, 0), -EBADMSG);
    assert_true(error_has(f, "digest mismatch (got sha256:"));
    assert_true(error_has(f, digest));
    z.p[z.len / 2] ^= 0x55;

    /* the right bytes, a wrong diff_id */
    char wrong[80];
    snprintf(wrong, sizeof(wrong), "sha256:%064d", 0);
    assert_int_equal(unpack_with(f, &z, LAYER_COMPRESSION_GZIP, digest, wrong, 0), -EBADMSG);
    assert_true(error_has(f, "diff_id mismatch"));
    assert_true(error_has(f, diff_id));

    /* a wrong digest */
    assert_int_equal(unpack_with(f, &z, LAYER_COMPRESSION_GZIP, wrong, diff_id, 0), -EBADMSG);
    assert_true(error_has(f, "digest mismatch (got sha256:"));

    /* digests that are not sha256:<64 hex> */
    assert_int_equal(unpack_with(f, &z, LAYER_COMPRESSION_GZIP, "sha512:00", diff_id, 0), -EINVAL);
    assert_int_equal(unpack_with(f, &z, LAYER_COMPRESSION_GZIP, digest, "sha256:ABC", 0), -EINVAL);
    free(z.p);
    free(tar.p);
}

static void
test_truncated_and_trailing(void **state)
{
    fixture *f = *state;
    bytes tar = sample_tar();
    _cleanup_free_ char *diff_id = sha256(tar.p, tar.len);
    layer_compression cs[] = {LAYER_COMPRESSION_GZIP, LAYER_COMPRESSION_ZSTD,
                              LAYER_COMPRESSION_NONE};
    for (size_t i = 0; i < ELEMENTSOF(cs); i++) {
        bytes z = cs[i] == LAYER_COMPRESSION_GZIP   ? gzip(&tar, false)
                  : cs[i] == LAYER_COMPRESSION_ZSTD ? zstd(&tar)
                                                    : (bytes){0};
        if (cs[i] == LAYER_COMPRESSION_NONE)
            bytes_append(&z, tar.p, tar.len);
        /* truncated, with the digest of the truncated bytes (so only the format complains) */
        bytes cut = {.p = z.p, .len = z.len / 2};
        _cleanup_free_ char *d1 = sha256(cut.p, cut.len);
        int r = unpack_with(f, &cut, cs[i], d1, diff_id, 0);
        assert_true(r < 0 && r != -EBADMSG);
        assert_int_equal(cc_rm_rf_children(f->root_fd, NULL), 0);
        /* truncated, with the digest of the whole: the digest is what is reported */
        _cleanup_free_ char *d2 = sha256(z.p, z.len);
        assert_int_equal(unpack_with(f, &cut, cs[i], d2, diff_id, 0), -EBADMSG);
        assert_int_equal(cc_rm_rf_children(f->root_fd, NULL), 0);
        if (cs[i] != LAYER_COMPRESSION_NONE) {
            /* trailing garbage after the compressed stream */
            bytes_append(&z, "garbage!", 8);
            _cleanup_free_ char *d3 = sha256(z.p, z.len);
            r = unpack_with(f, &z, cs[i], d3, diff_id, 0);
            assert_int_equal(r, -EINVAL);
            assert_true(error_has(f, cs[i] == LAYER_COMPRESSION_GZIP ? "gzip: " : "zstd: "));
            assert_int_equal(cc_rm_rf_children(f->root_fd, NULL), 0);
        }
        free(z.p);
    }
    free(tar.p);
}

static void
test_reader_error(void **state)
{
    fixture *f = *state;
    bytes tar = sample_tar();
    bytes z = gzip(&tar, false);
    _cleanup_free_ char *digest = sha256(z.p, z.len);
    _cleanup_free_ char *diff_id = sha256(tar.p, tar.len);
    size_t fails[] = {1, 100, z.len / 2, z.len};
    for (size_t i = 0; i < ELEMENTSOF(fails); i++) {
        reader r = {.p = z.p, .len = z.len, .fail_at = fails[i], .chunk = 1000};
        f->err = cc_error_free(f->err);
        assert_int_equal(layer_unpack(read_mem, &r, LAYER_COMPRESSION_GZIP, digest, diff_id,
                                      f->root_fd, NULL, &f->err),
                         -ECONNRESET);
        assert_true(error_has(f, "boom from the reader"));
        assert_true(error_has(f, digest));
        assert_int_equal(cc_rm_rf_children(f->root_fd, NULL), 0);
    }
    free(z.p);
    free(tar.p);
}

static void
test_not_a_tar(void **state)
{
    fixture *f = *state;
    bytes junk = {0};
    for (int i = 0; i < 300; i++)
        bytes_append(&junk, "this is not a tar archive ", 26);
    _cleanup_free_ char *d = sha256(junk.p, junk.len);
    assert_int_equal(unpack_with(f, &junk, LAYER_COMPRESSION_NONE, d, d, 0), -EINVAL);
    assert_true(error_has(f, "tar: "));
    free(junk.p);
}

/* One hostile entry after a harmless one: must fail naming it, nothing outside changes. */
static void
expect_hostile(fixture *f, void (*add)(tarb *), int want, const char *needle)
{
    tarb *t = tb_new(TAR_PAX_RESTRICTED);
    tb_file(t, "ok", "fine", 0644);
    add(t);
    bytes tar = tb_finish(t);
    int r = unpack_tar(f, &tar, LAYER_COMPRESSION_GZIP);
    assert_int_equal(r, want);
    assert_true(error_has(f, needle));
    free(tar.p);
    assert_int_equal(cc_rm_rf_children(f->root_fd, NULL), 0);
}

static void
add_dotdot(tarb *t)
{
    tb_file(t, "../escape", "x", 0644);
}
static void
add_dotdot_mid(tarb *t)
{
    tb_file(t, "a/../../x", "x", 0644);
}
static void
add_link_root(tarb *t)
{
    tb_symlink(t, "link", "/");
    tb_file(t, "link/owned", "x", 0644);
}
static void
add_link_up(tarb *t)
{
    tb_symlink(t, "d", "../..");
    tb_file(t, "d/x", "x", 0644);
}
static void
add_link_outside_dir(tarb *t)
{
    tb_symlink(t, "o", "../outside");
    tb_file(t, "o/victim", "pwned", 0644);
}
static void
add_hardlink_dotdot(tarb *t)
{
    tb_hardlink(t, "h", "../outside/victim");
}
static void
add_hardlink_abs(tarb *t)
{
    tb_hardlink(t, "h", "/etc/passwd");
}
static void
add_hardlink_symlink(tarb *t)
{
    tb_symlink(t, "s", "/etc/passwd");
    tb_hardlink(t, "h", "s");
}
static void
add_hardlink_via_symlink_dir(tarb *t)
{
    tb_symlink(t, "e", "/etc");
    tb_hardlink(t, "h", "e/passwd");
}
static void
add_hardlink_dir(tarb *t)
{
    tb_dir(t, "dir", 0755);
    tb_hardlink(t, "h", "dir");
}
static void
add_empty_name(tarb *t)
{
    tb_file(t, ".", "x", 0644);
}

static void
test_hostile(void **state)
{
    fixture *f = *state;
    expect_hostile(f, add_dotdot, -EINVAL, "tar entry '../escape': '..' in name");
    expect_hostile(f, add_dotdot_mid, -EINVAL, "tar entry 'a/../../x'");
    expect_hostile(f, add_link_root, -ENOTDIR, "tar entry 'link/owned'");
    expect_hostile(f, add_link_up, -ENOTDIR, "tar entry 'd/x'");
    expect_hostile(f, add_link_outside_dir, -ENOTDIR, "tar entry 'o/victim'");
    expect_hostile(f, add_hardlink_dotdot, -EINVAL, "hard link target '../outside/victim'");
    expect_hostile(f, add_hardlink_abs, -ENOENT, "hard link target '/etc/passwd'");
    expect_hostile(f, add_hardlink_symlink, -EINVAL, "is not a regular file");
    expect_hostile(f, add_hardlink_via_symlink_dir, -ENOTDIR, "hard link target 'e/passwd'");
    expect_hostile(f, add_hardlink_dir, -EINVAL, "is not a regular file");
    expect_hostile(f, add_empty_name, -EINVAL, "names the root");
}

static void
test_absolute_and_odd_paths(void **state)
{
    fixture *f = *state;
    tarb *t = tb_new(TAR_GNU);
    tb_file(t, "/abs/path", "inside", 0644);
    tb_file(t, "./a//b/./c", "c", 0644);
    tb_file(t, "caf\xc3\xa9", "utf8", 0644);
    /* deeper than the parent cache */
    char deep[PATH_MAX] = "";
    for (int i = 0; i < 50; i++)
        strcat(deep, "d/");
    strcat(deep, "leaf");
    tb_file(t, deep, "deep", 0644);
    tb_file(t, "a/b/sibling", "s", 0644);
    bytes tar = tb_finish(t);
    assert_int_equal(unpack_tar(f, &tar, LAYER_COMPRESSION_GZIP), 0);
    _cleanup_free_ char *a = read_in(f, "abs/path");
    _cleanup_free_ char *c = read_in(f, "a/b/c");
    _cleanup_free_ char *u = read_in(f, "caf\xc3\xa9");
    _cleanup_free_ char *d = read_in(f, deep);
    _cleanup_free_ char *s = read_in(f, "a/b/sibling");
    assert_string_equal(a, "inside");
    assert_string_equal(c, "c");
    assert_string_equal(u, "utf8");
    assert_string_equal(d, "deep");
    assert_string_equal(s, "s");
    free(tar.p);
}

static void
test_long_name(void **state)
{
    fixture *f = *state;
    char name[PATH_MAX + 10];
    memset(name, 'n', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    for (size_t i = 100; i < sizeof(name) - 1; i += 100)
        name[i] = '/';
    tarb *t = tb_new(TAR_PAX_RESTRICTED);
    tb_file(t, name, "x", 0644);
    bytes tar = tb_finish(t);
    assert_int_equal(unpack_tar(f, &tar, LAYER_COMPRESSION_NONE), -ENAMETOOLONG);
    assert_true(error_has(f, "tar entry '"));
    free(tar.p);
}

static void
test_special_files(void **state)
{
    fixture *f = *state;
    tarb *t = tb_new(TAR_PAX_RESTRICTED);
    struct archive_entry *e = tb_entry("dev/null", AE_IFCHR, 0666);
    archive_entry_set_rdev(e, makedev(1, 3));
    tb_add(t, e, NULL, 0);
    e = tb_entry("dev/sda", AE_IFBLK, 0660);
    archive_entry_set_rdev(e, makedev(8, 0));
    tb_add(t, e, NULL, 0);
    tb_add(t, tb_entry("run/fifo", AE_IFIFO, 0640), NULL, 0);
    e = tb_entry("usr/bin/su", AE_IFREG, 04755);
    archive_entry_set_uid(e, 1000);
    archive_entry_set_gid(e, 1001);
    archive_entry_set_size(e, 2);
    archive_entry_xattr_add_entry(e, "user.note", "hi", 2);
    archive_entry_xattr_add_entry(e, "trusted.evil", "no", 2);
    tb_add(t, e, "su", 2);
    e = tb_entry("tmp", AE_IFDIR, 01777);
    archive_entry_set_uid(e, 7);
    tb_add(t, e, NULL, 0);
    tb_hardlink(t, "usr/bin/su2", "usr/bin/su");
    bytes tar = tb_finish(t);
    assert_int_equal(unpack_tar(f, &tar, LAYER_COMPRESSION_GZIP), 0);
    assert_int_equal(f->stats.devices_skipped, 2);
    struct stat st, st2;
    assert_int_equal(lstat_in(f, "dev/null", &st), -1);
    assert_int_equal(lstat_in(f, "dev/sda", &st), -1);
    assert_int_equal(lstat_in(f, "run/fifo", &st), 0);
    assert_true(S_ISFIFO(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0640);
    assert_int_equal(lstat_in(f, "usr/bin/su", &st), 0);
    assert_int_equal(st.st_mode & 07777, 04755);
    assert_int_equal(st.st_uid, 1000);
    assert_int_equal(st.st_gid, 1001);
    assert_int_equal(st.st_nlink, 2);
    assert_int_equal(lstat_in(f, "usr/bin/su2", &st2), 0);
    assert_int_equal(st.st_ino, st2.st_ino);
    assert_int_equal(lstat_in(f, "tmp", &st), 0);
    assert_int_equal(st.st_mode & 07777, 01777);
    assert_int_equal(st.st_uid, 7);
    _cleanup_free_ char *su = cc_xasprintf("%s/usr/bin/su", f->root);
    char val[16];
    ssize_t n = lgetxattr(su, "user.note", val, sizeof(val));
    if (n < 0 && errno == ENOTSUP) {
        print_message("no user xattrs on this file system\n");
    } else {
        assert_int_equal(n, 2);
        assert_memory_equal(val, "hi", 2);
    }
    assert_true(lgetxattr(su, "trusted.evil", val, sizeof(val)) < 0);
    free(tar.p);
}

static void
test_whiteouts(void **state)
{
    fixture *f = *state;
    tarb *t = tb_new(TAR_PAX_RESTRICTED);
    tb_dir(t, "dir", 0755);
    tb_file(t, "dir/file", "x", 0644); /* an earlier entry of the same layer, whited out */
    tb_add(t, tb_entry("dir/.wh.file", AE_IFREG, 0644), NULL, 0);
    tb_add(t, tb_entry("other/.wh.gone", AE_IFREG, 0644), NULL, 0);
    tb_dir(t, "opq", 0755);
    tb_add(t, tb_entry("opq/.wh..wh..opq", AE_IFREG, 0644), NULL, 0);
    tb_file(t, "opq/kept", "k", 0644);
    bytes tar = tb_finish(t);
    int r = unpack_tar(f, &tar, LAYER_COMPRESSION_GZIP);
    if (r == -EPERM || r == -ENOTSUP) {
        free(tar.p);
        skip(); /* trusted.* xattrs need CAP_SYS_ADMIN */
    }
    assert_int_equal(r, 0);
    assert_int_equal(f->stats.whiteouts, 3);
    struct stat st;
    assert_int_equal(lstat_in(f, "dir/file", &st), 0);
    assert_true(S_ISCHR(st.st_mode));
    assert_int_equal(st.st_rdev, makedev(0, 0));
    assert_int_equal(lstat_in(f, "other/gone", &st), 0);
    assert_true(S_ISCHR(st.st_mode));
    assert_int_equal(lstat_in(f, "dir/.wh.file", &st), -1);
    _cleanup_free_ char *opq = cc_xasprintf("%s/opq", f->root);
    char val[4];
    assert_int_equal(lgetxattr(opq, "trusted.overlay.opaque", val, sizeof(val)), 1);
    assert_int_equal(val[0], 'y');
    _cleanup_free_ char *kept = read_in(f, "opq/kept");
    assert_string_equal(kept, "k");
    free(tar.p);
}

static void
test_replace(void **state)
{
    fixture *f = *state;
    tarb *t = tb_new(TAR_PAX_RESTRICTED);
    tb_file(t, "f", "one", 0644);
    tb_file(t, "f", "two", 0600);
    tb_dir(t, "d", 0755);
    tb_file(t, "d/child", "c", 0644);
    tb_file(t, "d", "now a file", 0644); /* a directory replaced by a file */
    tb_file(t, "x", "file", 0644);
    tb_dir(t, "x", 0700); /* a file replaced by a directory */
    tb_symlink(t, "l", "/etc/passwd");
    tb_file(t, "l", "not a link", 0644); /* never written through the symlink */
    tb_file(t, "target", "t", 0644);
    tb_hardlink(t, "hl", "target");
    tb_file(t, "hl", "new", 0644); /* must not change target */
    tb_symlink(t, "s", "a");
    tb_symlink(t, "s", "b");
    tb_add(t, tb_entry("p", AE_IFIFO, 0644), NULL, 0);
    tb_file(t, "p", "no longer a fifo", 0644); /* opening the fifo would block */
    bytes tar = tb_finish(t);
    assert_int_equal(unpack_tar(f, &tar, LAYER_COMPRESSION_ZSTD), 0);
    _cleanup_free_ char *ff = read_in(f, "f");
    _cleanup_free_ char *d = read_in(f, "d");
    _cleanup_free_ char *l = read_in(f, "l");
    _cleanup_free_ char *tg = read_in(f, "target");
    _cleanup_free_ char *hl = read_in(f, "hl");
    _cleanup_free_ char *p = read_in(f, "p");
    assert_string_equal(ff, "two");
    assert_string_equal(d, "now a file");
    assert_string_equal(l, "not a link");
    assert_string_equal(tg, "t");
    assert_string_equal(hl, "new");
    assert_string_equal(p, "no longer a fifo");
    struct stat st;
    assert_int_equal(lstat_in(f, "x", &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0700);
    assert_int_equal(lstat_in(f, "l", &st), 0);
    assert_true(S_ISREG(st.st_mode));
    char buf[8] = "";
    _cleanup_free_ char *s = cc_xasprintf("%s/s", f->root);
    assert_int_equal(readlink(s, buf, sizeof(buf)), 1);
    assert_int_equal(buf[0], 'b');
    free(tar.p);
}

static void
test_sparse(void **state)
{
    fixture *f = *state;
    tarb *t = tb_new(TAR_PAX);
    struct archive_entry *e = tb_entry("sparse", AE_IFREG, 0644);
    archive_entry_set_size(e, 1 << 20);
    archive_entry_sparse_add_entry(e, 4096, 4);
    archive_entry_sparse_add_entry(e, 65536, 4);
    assert_int_equal(archive_write_header(t->a, e), ARCHIVE_OK);
    /* the writer takes the logical content and drops the holes */
    char *logical = cc_xzalloc(1 << 20);
    memcpy(logical + 4096, "AAAA", 4);
    memcpy(logical + 65536, "BBBB", 4);
    assert_int_equal(archive_write_data(t->a, logical, 1 << 20), 1 << 20);
    free(logical);
    archive_entry_free(e);
    bytes tar = tb_finish(t);
    assert_true(tar.len < 65536); /* really sparse in the archive */
    assert_int_equal(unpack_tar(f, &tar, LAYER_COMPRESSION_GZIP), 0);
    _cleanup_free_ char *p = cc_xasprintf("%s/sparse", f->root);
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    assert_int_equal(cc_read_file(p, 1 << 21, &data, &len, NULL), 0);
    assert_int_equal(len, 1 << 20);
    assert_memory_equal(data + 4096, "AAAA", 4);
    assert_memory_equal(data + 65536, "BBBB", 4);
    assert_int_equal(data[0], 0);
    assert_int_equal(data[(1 << 20) - 1], 0);
    free(tar.p);
}

static void
test_media_types(void **state)
{
    static const struct {
        const char *type;
        int r;
        layer_compression c;
    } cases[] = {
        {"application/vnd.oci.image.layer.v1.tar", 0, LAYER_COMPRESSION_NONE},
        {"application/vnd.oci.image.layer.v1.tar+gzip", 0, LAYER_COMPRESSION_GZIP},
        {"application/vnd.oci.image.layer.v1.tar+zstd", 0, LAYER_COMPRESSION_ZSTD},
        {"application/vnd.docker.image.rootfs.diff.tar.gzip", 0, LAYER_COMPRESSION_GZIP},
        {"application/vnd.oci.image.layer.v1.tar+encrypted", -EOPNOTSUPP, 0},
        {"application/vnd.oci.image.layer.v1.tar+gzip+encrypted", -EOPNOTSUPP, 0},
        {"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", -EOPNOTSUPP, 0},
        {"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", -EOPNOTSUPP, 0},
        {"text/plain", -EOPNOTSUPP, 0},
    };
    for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
        _cleanup_error_ cc_error *err = NULL;
        layer_compression c = (layer_compression)99;
        assert_int_equal(layer_compression_from_media_type(cases[i].type, &c, &err), cases[i].r);
        if (cases[i].r == 0) {
            assert_int_equal(c, cases[i].c);
        } else {
            assert_int_equal(c, 99);
            assert_non_null(strstr(cc_error_message(err), cases[i].type));
        }
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_gzip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gzip_two_members_small_reads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_zstd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_zstd_two_frames, setup, teardown),
        cmocka_unit_test_setup_teardown(test_none, setup, teardown),
        cmocka_unit_test_setup_teardown(test_digest_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_and_trailing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reader_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_a_tar, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile, setup, teardown),
        cmocka_unit_test_setup_teardown(test_absolute_and_odd_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_special_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_whiteouts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sparse, setup, teardown),
        cmocka_unit_test(test_media_types),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
