/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Initdata (../shared/specs/attestation-kbs-initdata-images.md §5): a TOML document whose
 * exact bytes are hashed with the algorithm it names; the digest is bound to the TEE through
 * SNP HOST_DATA (32 bytes) or TDX MRCONFIGID (48 bytes), truncated or zero-padded.
 */
#include "digest.h"
#include "toml.h"
#include "util.h"
#include "vmm.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#define INITDATA_VERSION "0.1.0"
#define SNP_HOST_DATA_SIZE 32
#define TDX_MRCONFIGID_SIZE 48

/* The digest of len bytes at buf with alg (one of VMM_DIGEST_*), into ret. */
static void
digest_compute(vmm_digest alg, const void *buf, size_t len, uint8_t ret[CC_DIGEST_MAX_SIZE])
{
    switch (alg) {
    case VMM_DIGEST_SHA256:
        cc_sha256(buf, len, ret);
        break;
    case VMM_DIGEST_SHA384:
        cc_sha384(buf, len, ret);
        break;
    case VMM_DIGEST_SHA512:
        cc_sha512(buf, len, ret);
        break;
    default:
        assert(!"unknown vmm_digest");
        abort();
    }
}

/* A required top-level string; errors carry the line like cc_toml_get_string's. */
static int
initdata_string(const cc_toml *root, const char *key, const char **ret, cc_error **err)
{
    int r = cc_toml_get_string(root, key, ret, err);
    if (r == -ENOENT)
        return cc_error_msg(err, -EINVAL, "missing key '%s'", key);
    return r;
}

/* [data], when present, maps names to strings (aa.toml, cdh.toml, policy.rego, ...). */
static int
initdata_check_data(const cc_toml *root, cc_error **err)
{
    const cc_toml *data = NULL;
    int r = cc_toml_get_table(root, "data", &data, err);
    if (r == -ENOENT)
        return 0;
    if (r < 0)
        return r;
    for (size_t i = 0; i < cc_toml_table_len(data); i++) {
        const cc_toml *v = cc_toml_table_value_at(data, i);
        if (cc_toml_type_of(v) != CC_TOML_STRING)
            return cc_error_msg(err, -EINVAL, "line %u: key 'data.%s': expected string, got %s",
                                cc_toml_line(v), cc_toml_table_key_at(data, i, NULL),
                                cc_toml_type_name(cc_toml_type_of(v)));
    }
    return 0;
}

static int
initdata_parse(const char *buf, size_t len, vmm_digest *ret_alg, cc_error **err)
{
    _cleanup_(cc_toml_freep) cc_toml *root = cc_toml_parse(buf, len, err);
    const char *version, *algorithm;
    int r;

    if (!root)
        return -EINVAL;
    if ((r = initdata_string(root, "version", &version, err)) < 0 ||
        (r = initdata_string(root, "algorithm", &algorithm, err)) < 0)
        return r;
    if (strcmp(version, INITDATA_VERSION) != 0)
        return cc_error_msg(
            err, -EINVAL,
            "line %u: key 'version': unsupported version '%s' (want " INITDATA_VERSION ")",
            cc_toml_line(cc_toml_table_get(root, "version")), version);
    vmm_digest alg = vmm_digest_from_string(algorithm);
    if (alg < 0)
        return cc_error_msg(
            err, -EINVAL, "line %u: key 'algorithm': must be one of sha256|sha384|sha512, got '%s'",
            cc_toml_line(cc_toml_table_get(root, "algorithm")), algorithm);
    r = initdata_check_data(root, err);
    if (r < 0)
        return r;
    *ret_alg = alg;
    return 0;
}

int
vmm_initdata_digest(const char *buf, size_t len, vmm_digest *ret_alg, uint8_t ret_digest[64],
                    cc_error **err)
{
    vmm_digest alg = VMM_DIGEST_SHA256;
    uint8_t md[CC_DIGEST_MAX_SIZE];

    int r = initdata_parse(buf, len, &alg, err);
    if (r < 0)
        return cc_error_prefix(err, r, "initdata");
    digest_compute(alg, buf, len, md);
    memcpy(ret_digest, md, vmm_digest_size(alg));
    *ret_alg = alg;
    return 0;
}

/* base64 (standard, padded, one line) of digest fitted to size bytes. */
static char *
fit_base64(const uint8_t *digest, size_t len, size_t size)
{
    uint8_t field[TDX_MRCONFIGID_SIZE] = {0};

    assert(size <= sizeof(field));
    memcpy(field, digest, len < size ? len : size);
    return cc_base64_encode(field, size);
}

char *
vmm_initdata_host_data(const uint8_t *digest, size_t len)
{
    return fit_base64(digest, len, SNP_HOST_DATA_SIZE);
}

char *
vmm_initdata_mrconfigid(const uint8_t *digest, size_t len)
{
    return fit_base64(digest, len, TDX_MRCONFIGID_SIZE);
}
