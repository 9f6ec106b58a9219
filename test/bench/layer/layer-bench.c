/* SPDX-License-Identifier: Apache-2.0 */
/*
 * layer-bench URL DIGEST DIFF_ID DIR [gzip|zstd|none]: downloads one layer with libcurl and
 * unpacks it into DIR (which must exist and be empty) through layer_unpack(), the way the
 * agent pulls: one thread, libcurl's multi interface driven from inside the pull callback
 * (bytes go straight into layer_unpack's buffer; only what does not fit waits in a spill
 * buffer). Prints the wall time and the stats; exits 1 on any failure. See run.sh.
 */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "layer.h"
#include "util.h"

typedef struct fetch {
    CURLM *multi;
    CURL *easy;
    uint8_t *dst; /* the caller's buffer during a read */
    size_t dst_len, dst_pos;
    uint8_t *spill; /* what did not fit */
    size_t spill_len, spill_pos, spill_cap;
    bool done;
    CURLcode result;
} fetch;

static size_t
write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    fetch *f = userdata;
    size_t n = size * nmemb, direct = 0;
    if (f->dst) {
        direct = f->dst_len - f->dst_pos;
        if (direct > n)
            direct = n;
        memcpy(f->dst + f->dst_pos, ptr, direct);
        f->dst_pos += direct;
    }
    if (direct < n) {
        size_t rest = n - direct;
        if (f->spill_pos == f->spill_len)
            f->spill_pos = f->spill_len = 0;
        if (f->spill_len + rest > f->spill_cap) {
            f->spill_cap = (f->spill_len + rest) * 2;
            f->spill = cc_xrealloc(f->spill, f->spill_cap);
        }
        memcpy(f->spill + f->spill_len, ptr + direct, rest);
        f->spill_len += rest;
    }
    return n;
}

static ssize_t
fetch_read(void *userdata, void *buf, size_t len, cc_error **err)
{
    fetch *f = userdata;
    if (f->spill_pos < f->spill_len) {
        size_t n = f->spill_len - f->spill_pos;
        if (n > len)
            n = len;
        memcpy(buf, f->spill + f->spill_pos, n);
        f->spill_pos += n;
        return (ssize_t)n;
    }
    f->dst = buf;
    f->dst_len = len;
    f->dst_pos = 0;
    while (f->dst_pos == 0 && !f->done) {
        int running = 0;
        CURLMcode mc = curl_multi_perform(f->multi, &running);
        if (mc != CURLM_OK) {
            f->dst = NULL;
            return cc_error_msg(err, -EIO, "curl: %s", curl_multi_strerror(mc));
        }
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(f->multi, &left)))
            if (msg->msg == CURLMSG_DONE) {
                f->done = true;
                f->result = msg->data.result;
            }
        if (f->dst_pos == 0 && !f->done)
            (void)curl_multi_poll(f->multi, NULL, 0, 1000, NULL);
    }
    f->dst = NULL;
    if (f->dst_pos == 0 && f->done && f->result != CURLE_OK)
        return cc_error_msg(err, -EIO, "curl: %s", curl_easy_strerror(f->result));
    return (ssize_t)f->dst_pos;
}

static double
now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
    if (argc < 5 || argc > 6) {
        fprintf(stderr, "usage: %s URL DIGEST DIFF_ID DIR [gzip|zstd|none]\n", argv[0]);
        return 2;
    }
    layer_compression c = LAYER_COMPRESSION_GZIP;
    if (argc == 6)
        c = strcmp(argv[5], "zstd") == 0   ? LAYER_COMPRESSION_ZSTD
            : strcmp(argv[5], "none") == 0 ? LAYER_COMPRESSION_NONE
                                           : LAYER_COMPRESSION_GZIP;
    _cleanup_close_ int dir = open(argv[4], O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) {
        perror(argv[4]);
        return 1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    fetch f = {.multi = curl_multi_init(), .easy = curl_easy_init()};
    curl_easy_setopt(f.easy, CURLOPT_URL, argv[1]);
    curl_easy_setopt(f.easy, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(f.easy, CURLOPT_WRITEDATA, &f);
    curl_easy_setopt(f.easy, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(f.easy, CURLOPT_BUFFERSIZE, 256L * 1024);
    curl_multi_add_handle(f.multi, f.easy);

    double t0 = now();
    layer_stats stats;
    _cleanup_error_ cc_error *err = NULL;
    int r = layer_unpack(fetch_read, &f, c, argv[2], argv[3], dir, &stats, &err);
    double t = now() - t0;

    curl_multi_remove_handle(f.multi, f.easy);
    curl_easy_cleanup(f.easy);
    curl_multi_cleanup(f.multi);
    free(f.spill);
    curl_global_cleanup();
    if (r < 0) {
        fprintf(stderr, "layer-bench: %s\n", cc_error_message(err));
        return 1;
    }
    printf("%.3f s, %llu compressed, %llu uncompressed bytes, %u entries\n", t,
           (unsigned long long)stats.compressed_bytes,
           (unsigned long long)stats.uncompressed_bytes, stats.entries);
    return 0;
}
