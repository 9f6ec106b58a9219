/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzzes what the agent parses from a registry (guest/registry.h): every input goes to
 * oci_index_select, oci_manifest_parse and oci_config_diff_ids. Each call must either succeed
 * with well-formed results (digests valid, sizes >= 0, at most 1024 layers) or fail with an
 * error carrying the same code and a message; anything else traps.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "registry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

static void
check_error(int r, cc_error *err)
{
    CHECK(r < 0);
    CHECK(err && err->code == r && err->message && *err->message);
}

static void
check_descriptor(const oci_descriptor *d)
{
    CHECK(d->media_type && *d->media_type);
    CHECK(oci_digest_is_valid(d->digest));
    CHECK(d->size >= 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body = (const char *)data;
    int r;

    {
        oci_descriptor d = {0};
        cc_error *err = NULL;
        r = oci_index_select(body, size, "linux", "amd64", &d, &err);
        if (r < 0) {
            check_error(r, err);
            CHECK(!d.digest && !d.media_type);
        } else {
            CHECK(!err);
            check_descriptor(&d);
        }
        oci_descriptor_clear(&d);
        cc_error_free(err);
    }
    {
        oci_manifest m = {0};
        cc_error *err = NULL;
        r = oci_manifest_parse(body, size, &m, &err);
        if (r < 0) {
            check_error(r, err);
            CHECK(!m.layers && m.n_layers == 0);
        } else {
            CHECK(!err);
            check_descriptor(&m.config);
            CHECK(m.n_layers <= 1024);
            for (size_t i = 0; i < m.n_layers; i++)
                check_descriptor(&m.layers[i]);
        }
        oci_manifest_clear(&m);
        cc_error_free(err);
    }
    {
        char **ids = NULL;
        size_t n = 0;
        cc_error *err = NULL;
        r = oci_config_diff_ids(body, size, &ids, &n, &err);
        if (r < 0) {
            check_error(r, err);
            CHECK(!ids);
        } else {
            CHECK(!err && ids && n <= 1024 && !ids[n]);
            for (size_t i = 0; i < n; i++)
                CHECK(oci_digest_is_valid(ids[i]));
        }
        cc_json_strv_free(ids);
        cc_error_free(err);
    }
    return 0;
}
