/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzzes guest/layer.c's unpacking: the input is a layer (an uncompressed tar, or gzip /
 * zstd when it starts with their magic), pulled in uneven chunks and unpacked for real into
 * a fresh directory "root" inside a temporary base that also holds "outside/victim". The
 * input's own sha256 is passed as the digest (and as the diff_id, which therefore matches
 * for uncompressed inputs), so the whole unpack path runs. After every input the base must
 * hold exactly "outside root", outside/ exactly "victim" with its original content (traps
 * otherwise), and a failure must come with an error of the same code. Then root is removed.
 * FUZZ_LAYER_VERBOSE=1 prints each result.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "fs.h"
#include "layer.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

static char base[64];
static int base_fd = -EBADF;

static void
cleanup_base(void)
{
    if (base_fd >= 0) {
        (void)cc_rm_rf_children(base_fd, NULL);
        base_fd = cc_close(base_fd);
        (void)rmdir(base);
    }
}

static void
init_base(void)
{
    if (base_fd >= 0)
        return;
    umask(022);
    snprintf(base, sizeof(base), "/tmp/cloak-fuzz-layer-XXXXXX");
    CHECK(mkdtemp(base));
    base_fd = open(base, O_PATH | O_DIRECTORY | O_CLOEXEC);
    CHECK(base_fd >= 0);
    CHECK(mkdirat(base_fd, "outside", 0755) == 0);
    _cleanup_close_ int out = openat(base_fd, "outside", O_PATH | O_DIRECTORY | O_CLOEXEC);
    CHECK(out >= 0);
    CHECK(cc_write_file_atomic(out, "victim", "original", 8, 0644, NULL) == 0);
    atexit(cleanup_base);
}

/* The sorted names in base/sub, space-separated, into buf. */
static void
list(const char *sub, char *buf, size_t len)
{
    _cleanup_free_ char *p = cc_xasprintf("%s/%s", base, sub);
    struct dirent **ents;
    int n = scandir(p, &ents, NULL, alphasort);
    CHECK(n >= 0);
    buf[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (strcmp(ents[i]->d_name, ".") && strcmp(ents[i]->d_name, "..")) {
            strncat(buf, ents[i]->d_name, len - strlen(buf) - 1);
            strncat(buf, " ", len - strlen(buf) - 1);
        }
        free(ents[i]);
    }
    free(ents);
}

typedef struct reader {
    const uint8_t *p;
    size_t len, pos;
} reader;

static ssize_t
read_chunks(void *userdata, void *buf, size_t len, cc_error **err)
{
    reader *r = userdata;
    /* uneven chunk sizes, derived from the position, so tar blocks straddle reads */
    size_t n = 1 + (r->pos * 7919) % 3001;
    if (n > r->len - r->pos)
        n = r->len - r->pos;
    if (n > len)
        n = len;
    memcpy(buf, r->p + r->pos, n);
    r->pos += n;
    return (ssize_t)n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_base();

    unsigned char h[EVP_MAX_MD_SIZE];
    unsigned hlen = 0;
    CHECK(EVP_Digest(data, size, h, &hlen, EVP_sha256(), NULL) == 1 && hlen == 32);
    char digest[8 + 64] = "sha256:";
    for (unsigned i = 0; i < hlen; i++)
        snprintf(digest + 7 + 2 * i, 3, "%02x", h[i]);

    layer_compression c = LAYER_COMPRESSION_NONE;
    if (size >= 2 && data[0] == 0x1f && data[1] == 0x8b)
        c = LAYER_COMPRESSION_GZIP;
    else if (size >= 4 && data[0] == 0x28 && data[1] == 0xb5 && data[2] == 0x2f &&
             data[3] == 0xfd)
        c = LAYER_COMPRESSION_ZSTD;

    CHECK(mkdirat(base_fd, "root", 0755) == 0);
    int root = openat(base_fd, "root", O_PATH | O_DIRECTORY | O_CLOEXEC);
    CHECK(root >= 0);
    reader r = {.p = data, .len = size};
    layer_stats stats = {0};
    cc_error *err = NULL;
    int ret = layer_unpack(read_chunks, &r, c, digest, digest, root, &stats, &err);
    if (ret < 0) {
        CHECK(err && err->code == ret);
        CHECK(strlen(cc_error_message(err)) > 0);
    } else {
        CHECK(!err);
        CHECK(c != LAYER_COMPRESSION_NONE || stats.uncompressed_bytes == size);
        CHECK(stats.compressed_bytes == size);
    }
    if (getenv("FUZZ_LAYER_VERBOSE"))
        fprintf(stderr, "layer_unpack: %d %s (%u entries)\n", ret,
                ret < 0 ? cc_error_message(err) : "ok", stats.entries);
    cc_error_free(err);
    cc_close(root);

    char buf[256];
    list(".", buf, sizeof(buf));
    CHECK(strcmp(buf, "outside root ") == 0);
    list("outside", buf, sizeof(buf));
    CHECK(strcmp(buf, "victim ") == 0);
    _cleanup_free_ char *victim = cc_xasprintf("%s/outside/victim", base);
    _cleanup_free_ char *content = NULL;
    CHECK(cc_read_file(victim, 64, &content, NULL, NULL) == 0);
    CHECK(strcmp(content, "original") == 0);

    CHECK(cc_rm_rf_at(base_fd, "root", NULL) == 0);
    return 0;
}
