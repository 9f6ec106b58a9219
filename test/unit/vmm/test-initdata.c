/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"
#include "util.h"
#include "vmm.h"

#define DATA_DIR CLOAK_TEST_DATA_DIR "/vmm/config"

static const char doc_fmt[] = "version = \"0.1.0\"\n"
                              "algorithm = \"%s\"\n"
                              "\n"
                              "[data]\n"
                              "\"aa.toml\" = '''\n"
                              "[token_configs]\n"
                              "'''\n";

static void
test_digest_each_algorithm(void **state)
{
    static const struct {
        const char *name;
        vmm_digest alg;
        const EVP_MD *(*md)(void);
    } cases[] = {
        {"sha256", VMM_DIGEST_SHA256, EVP_sha256},
        {"sha384", VMM_DIGEST_SHA384, EVP_sha384},
        {"sha512", VMM_DIGEST_SHA512, EVP_sha512},
    };
    for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
        _cleanup_free_ char *doc = cc_xasprintf(doc_fmt, cases[i].name);
        uint8_t digest[64], want[EVP_MAX_MD_SIZE];
        unsigned want_len = 0;
        vmm_digest alg = _VMM_DIGEST_INVALID;
        cc_error *err = NULL;

        if (vmm_initdata_digest(doc, strlen(doc), &alg, digest, &err) < 0)
            fail_msg("%s", cc_error_message(err));
        assert_int_equal(alg, cases[i].alg);
        assert_int_equal(EVP_Digest(doc, strlen(doc), want, &want_len, cases[i].md(), NULL), 1);
        assert_int_equal(want_len, vmm_digest_size(alg));
        assert_memory_equal(digest, want, want_len);
    }
}

static void
test_digest_sha256_known(void **state)
{
    /* sha256sum of the sha256 document above. */
    static const uint8_t want[32] = {
        0x00, 0xcb, 0xc5, 0xd2, 0xd2, 0xd2, 0x5d, 0xa9, 0xd8, 0xb3, 0xf4,
        0x73, 0x47, 0x66, 0x84, 0x85, 0x44, 0x27, 0x76, 0x7f, 0xa8, 0x9b,
        0x8d, 0xd6, 0xd1, 0xf3, 0x86, 0x3c, 0x9f, 0x18, 0x4d, 0xa1,
    };
    _cleanup_free_ char *doc = cc_xasprintf(doc_fmt, "sha256");
    uint8_t digest[64];
    vmm_digest alg;
    assert_int_equal(vmm_initdata_digest(doc, strlen(doc), &alg, digest, NULL), 0);
    assert_memory_equal(digest, want, sizeof(want));

    /* HOST_DATA is the digest itself; MRCONFIGID pads it with 16 zero bytes. */
    _cleanup_free_ char *host_data = vmm_initdata_host_data(digest, 32);
    _cleanup_free_ char *mrconfigid = vmm_initdata_mrconfigid(digest, 32);
    assert_string_equal(host_data, "AMvF0tLSXanYs/RzR2aEhUQndn+om43W0fOGPJ8YTaE=");
    assert_string_equal(mrconfigid,
                        "AMvF0tLSXanYs/RzR2aEhUQndn+om43W0fOGPJ8YTaEAAAAAAAAAAAAAAAAAAAAA");
}

static void
test_digest_file_sha384(void **state)
{
    /* sha384sum test/data/vmm/config/initdata-sha384.toml */
    static const uint8_t want[48] = {
        0x83, 0xcc, 0x1b, 0x3b, 0x2f, 0x25, 0x1e, 0x98, 0x18, 0x95, 0x81, 0x49,
        0x4a, 0xcb, 0xb1, 0xae, 0x3f, 0xfe, 0x86, 0x28, 0x26, 0xa0, 0x11, 0x42,
        0xdb, 0xad, 0x42, 0xdb, 0x10, 0x17, 0xb1, 0xe3, 0xf0, 0xdb, 0x6c, 0x88,
        0x3d, 0x71, 0xc9, 0x1d, 0x8d, 0x5b, 0x2e, 0xc1, 0xbd, 0x6c, 0x5e, 0xf6,
    };
    _cleanup_free_ char *buf = NULL;
    size_t len;
    uint8_t digest[64];
    vmm_digest alg;
    assert_int_equal(cc_read_file(DATA_DIR "/initdata-sha384.toml", 65536, &buf, &len, NULL), 0);
    assert_int_equal(vmm_initdata_digest(buf, len, &alg, digest, NULL), 0);
    assert_int_equal(alg, VMM_DIGEST_SHA384);
    assert_memory_equal(digest, want, sizeof(want));

    /* HOST_DATA keeps the first 32 bytes; MRCONFIGID is exactly the 48. */
    _cleanup_free_ char *host_data = vmm_initdata_host_data(digest, 48);
    _cleanup_free_ char *mrconfigid = vmm_initdata_mrconfigid(digest, 48);
    assert_string_equal(host_data, "g8wbOy8lHpgYlYFJSsuxrj/+higmoBFC261C2xAXseM=");
    assert_string_equal(mrconfigid,
                        "g8wbOy8lHpgYlYFJSsuxrj/+higmoBFC261C2xAXsePw22yIPXHJHY1bLsG9bF72");
}

static void
test_fit_sha512(void **state)
{
    uint8_t d[64];
    for (size_t i = 0; i < sizeof(d); i++)
        d[i] = (uint8_t)i;
    _cleanup_free_ char *host_data = vmm_initdata_host_data(d, 64);
    _cleanup_free_ char *mrconfigid = vmm_initdata_mrconfigid(d, 64);
    assert_string_equal(host_data, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=");
    assert_string_equal(mrconfigid,
                        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4v");
    /* Shorter than 32: zero-padded for HOST_DATA too. */
    _cleanup_free_ char *short_hd = vmm_initdata_host_data(d, 1);
    assert_string_equal(short_hd, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
}

static void
test_digest_errors(void **state)
{
    static const struct {
        const char *doc, *msg;
    } cases[] = {
        {"version = \"0.2.0\"\nalgorithm = \"sha256\"\n",
         "initdata: line 1: key 'version': unsupported version '0.2.0' (want 0.1.0)"},
        {"version = \"0.1.0\"\nalgorithm = \"sha-384\"\n",
         "initdata: line 2: key 'algorithm': must be one of sha256|sha384|sha512, got 'sha-384'"},
        {"version = \"0.1.0\"\nalgorithm = \"sm3\"\n",
         "initdata: line 2: key 'algorithm': must be one of sha256|sha384|sha512, got 'sm3'"},
        {"algorithm = \"sha256\"\n", "initdata: missing key 'version'"},
        {"version = \"0.1.0\"\n", "initdata: missing key 'algorithm'"},
        {"version = 1\nalgorithm = \"sha256\"\n",
         "initdata: line 1: key 'version': expected string, got integer"},
        {"version = \"0.1.0\"\nalgorithm = \"sha256\"\ndata = 3\n",
         "initdata: line 3: key 'data': expected table, got integer"},
        {"version = \"0.1.0\"\nalgorithm = \"sha256\"\n[data]\n\"aa.toml\" = 1\n",
         "initdata: line 4: key 'data.aa.toml': expected string, got integer"},
        {"version = \"0.1.0\"\nalgorithm = \n",
         "initdata: line 2, column 13: expected a value, found a newline"},
    };
    for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
        uint8_t digest[64];
        vmm_digest alg = VMM_DIGEST_SHA512;
        cc_error *err = NULL;
        assert_int_equal(
            vmm_initdata_digest(cases[i].doc, strlen(cases[i].doc), &alg, digest, &err), -EINVAL);
        assert_string_equal(cc_error_message(err), cases[i].msg);
        assert_int_equal(alg, VMM_DIGEST_SHA512); /* untouched */
        cc_error_free(err);
    }
}

static void
test_digest_names(void **state)
{
    assert_int_equal(vmm_digest_size(VMM_DIGEST_SHA256), 32);
    assert_int_equal(vmm_digest_size(VMM_DIGEST_SHA384), 48);
    assert_int_equal(vmm_digest_size(VMM_DIGEST_SHA512), 64);
    assert_int_equal(vmm_digest_size(_VMM_DIGEST_MAX), 0);
    assert_int_equal(vmm_digest_size(_VMM_DIGEST_INVALID), 0);
    assert_string_equal(vmm_digest_to_string(VMM_DIGEST_SHA384), "sha384");
    assert_int_equal(vmm_digest_from_string("sha512"), VMM_DIGEST_SHA512);
    assert_int_equal(vmm_digest_from_string("SHA512"), _VMM_DIGEST_INVALID);
    assert_null(vmm_digest_to_string(_VMM_DIGEST_MAX));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_digest_each_algorithm), cmocka_unit_test(test_digest_sha256_known),
        cmocka_unit_test(test_digest_file_sha384),    cmocka_unit_test(test_fit_sha512),
        cmocka_unit_test(test_digest_errors),         cmocka_unit_test(test_digest_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
