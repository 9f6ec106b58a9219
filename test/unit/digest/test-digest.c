/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lib/digest.c against the FIPS 180-4 example vectors and against OpenSSL's EVP (digests of
 * random messages, one-shot and streamed in random chunks; base64 against EVP_EncodeBlock).
 * The random inputs come from a seed printed on each run; CC_TEST_SEED=<n> replays one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "digest.h"
#include "util.h"

#define MAX_LEN 1000

typedef union any_ctx {
    cc_sha1_ctx sha1;
    cc_sha256_ctx sha256;
    cc_sha512_ctx sha512;
} any_ctx;

/* Each algorithm behind one interface, so every test runs over all four. */
#define WRAP(alg, field)                                                                           \
    static void alg##_init(any_ctx *c)                                                             \
    {                                                                                              \
        cc_##alg##_init(&c->field);                                                                \
    }                                                                                              \
    static void alg##_update(any_ctx *c, const void *p, size_t n)                                  \
    {                                                                                              \
        cc_##alg##_update(&c->field, p, n);                                                        \
    }                                                                                              \
    static void alg##_final(any_ctx *c, uint8_t *ret)                                              \
    {                                                                                              \
        cc_##alg##_final(&c->field, ret);                                                          \
    }
WRAP(sha1, sha1)
WRAP(sha256, sha256)
WRAP(sha384, sha512)
WRAP(sha512, sha512)

typedef struct alg {
    const char *name;
    size_t size;
    const EVP_MD *(*md)(void);
    void (*oneshot)(const void *p, size_t n, uint8_t *ret);
    void (*init)(any_ctx *c);
    void (*update)(any_ctx *c, const void *p, size_t n);
    void (*final)(any_ctx *c, uint8_t *ret);
    /* FIPS 180-4 examples: "abc", the 448-bit and 896-bit messages, 10^6 'a', "". */
    const char *vectors[5];
} alg;

static const char msg448[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
static const char msg896[] = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
                             "ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";

static const alg algs[] = {
    {"sha1",
     CC_SHA1_SIZE,
     EVP_sha1,
     cc_sha1,
     sha1_init,
     sha1_update,
     sha1_final,
     {"a9993e364706816aba3e25717850c26c9cd0d89d", "84983e441c3bd26ebaae4aa1f95129e5e54670f1",
      "a49b2446a02c645bf419f995b67091253a04a259", "34aa973cd4c4daa4f61eeb2bdbad27316534016f",
      "da39a3ee5e6b4b0d3255bfef95601890afd80709"}},
    {"sha256",
     CC_SHA256_SIZE,
     EVP_sha256,
     cc_sha256,
     sha256_init,
     sha256_update,
     sha256_final,
     {"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
      "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1",
      "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}},
    {"sha384",
     CC_SHA384_SIZE,
     EVP_sha384,
     cc_sha384,
     sha384_init,
     sha384_update,
     sha384_final,
     {"cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed"
      "8086072ba1e7cc2358baeca134c825a7",
      "3391fdddfc8dc7393707a65b1b4709397cf8b1d162af05abfe8f450de5f36bc6"
      "b0455a8520bc4e6f5fe95b1fe3c8452b",
      "09330c33f71147e83d192fc782cd1b4753111b173b3b05d22fa08086e3b0f712"
      "fcc7c71a557e2db966c3e9fa91746039",
      "9d0e1809716474cb086e834e310a4a1ced149e9c00f248527972cec5704c2a5b"
      "07b8b3dc38ecc4ebae97ddd87f3d8985",
      "38b060a751ac96384cd9327eb1b1e36a21fdb71114be07434c0cc7bf63f6e1da"
      "274edebfe76f65fbd51ad2f14898b95b"}},
    {"sha512",
     CC_SHA512_SIZE,
     EVP_sha512,
     cc_sha512,
     sha512_init,
     sha512_update,
     sha512_final,
     {"ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
      "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
      "204a8fc6dda82f0a0ced7beb8e08a41657c16ef468b228a8279be331a703c335"
      "96fd15c13b1b07f9aa1d3bea57789ca031ad85c7a71dd70354ec631238ca3445",
      "8e959b75dae313da8cf4f72814fc143f8f7779c6eb9f7fa17299aeadb6889018"
      "501d289e4900f7e4331b99dec4b5433ac7d329eeb6dd26545e96e55b874be909",
      "e718483d0ce769644e2e42c7bc15b4638e1f98b13b2044285632a803afa973eb"
      "de0ff244877ea60a4cb0432ce577c31beb009c5c2c49aa2e4eadb217ad8cc09b",
      "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
      "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"}},
};

static uint64_t rng_state;

/* splitmix64: reproducible from the printed seed, unlike rand() across libcs. */
static uint64_t
rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static size_t
rng_below(size_t n)
{
    return (size_t)(rng_next() % n);
}

static void
rng_fill(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)rng_next();
}

static int
setup_seed(void **state)
{
    const char *env = getenv("CC_TEST_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL) ^ (uint64_t)getpid();

    print_message("digest: CC_TEST_SEED=%" PRIu64 "\n", seed);
    rng_state = seed;
    return 0;
}

static void
hex(const uint8_t *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", p[i]);
}

static void
evp_digest(const alg *a, const void *p, size_t n, uint8_t *ret)
{
    unsigned len = 0;

    assert_int_equal(EVP_Digest(p, n, ret, &len, a->md(), NULL), 1);
    assert_int_equal(len, a->size);
}

/* Compares as hex, so a failure shows both digests. */
static void
assert_digest_equal(const alg *a, const uint8_t *got, const uint8_t *want, size_t msg_len)
{
    char got_hex[2 * CC_DIGEST_MAX_SIZE + 1], want_hex[2 * CC_DIGEST_MAX_SIZE + 1];

    hex(got, a->size, got_hex);
    hex(want, a->size, want_hex);
    if (strcmp(got_hex, want_hex) != 0)
        print_error("%s of %zu bytes\n", a->name, msg_len);
    assert_string_equal(got_hex, want_hex);
}

static void
test_fips_vectors(void **state)
{
    _cleanup_free_ char *million = cc_xmalloc(1000000);
    memset(million, 'a', 1000000);
    const struct {
        const char *p;
        size_t n;
    } msgs[] = {
        {"abc", 3}, {msg448, sizeof(msg448) - 1}, {msg896, sizeof(msg896) - 1}, {million, 1000000},
        {"", 0},
    };

    assert_int_equal(strlen(msg448) * 8, 448);
    assert_int_equal(strlen(msg896) * 8, 896);
    for (size_t i = 0; i < ELEMENTSOF(algs); i++) {
        const alg *a = &algs[i];
        for (size_t m = 0; m < ELEMENTSOF(msgs); m++) {
            uint8_t md[CC_DIGEST_MAX_SIZE];
            char got[2 * CC_DIGEST_MAX_SIZE + 1];
            any_ctx c;

            a->oneshot(msgs[m].p, msgs[m].n, md);
            hex(md, a->size, got);
            assert_string_equal(got, a->vectors[m]);

            /* The same streamed: 10^6 'a' as in the NIST example, in 1000-byte updates. */
            a->init(&c);
            for (size_t off = 0; off < msgs[m].n; off += 1000)
                a->update(&c, msgs[m].p + off, msgs[m].n - off < 1000 ? msgs[m].n - off : 1000);
            a->final(&c, md);
            hex(md, a->size, got);
            assert_string_equal(got, a->vectors[m]);
        }
    }
}

static void
test_empty_and_null(void **state)
{
    for (size_t i = 0; i < ELEMENTSOF(algs); i++) {
        const alg *a = &algs[i];
        uint8_t md[CC_DIGEST_MAX_SIZE], want[CC_DIGEST_MAX_SIZE];
        any_ctx c;

        evp_digest(a, "", 0, want);
        a->oneshot(NULL, 0, md);
        assert_digest_equal(a, md, want, 0);
        a->init(&c);
        a->update(&c, NULL, 0);
        a->update(&c, "", 0);
        a->final(&c, md);
        assert_digest_equal(a, md, want, 0);
    }
}

/* Every length 0..MAX_LEN (all padding cases of both block sizes), random content. */
static void
test_random_lengths(void **state)
{
    uint8_t buf[MAX_LEN];

    for (size_t n = 0; n <= MAX_LEN; n++) {
        rng_fill(buf, n);
        for (size_t i = 0; i < ELEMENTSOF(algs); i++) {
            uint8_t md[CC_DIGEST_MAX_SIZE], want[CC_DIGEST_MAX_SIZE];

            evp_digest(&algs[i], buf, n, want);
            algs[i].oneshot(buf, n, md);
            assert_digest_equal(&algs[i], md, want, n);
        }
    }
}

/* Random messages fed in random chunks (empty ones too), and a context reused after final. */
static void
test_streaming(void **state)
{
    uint8_t buf[MAX_LEN];

    for (int round = 0; round < 500; round++) {
        size_t n = rng_below(MAX_LEN + 1);
        size_t max_chunk = 1 + rng_below(300);
        rng_fill(buf, n);
        for (size_t i = 0; i < ELEMENTSOF(algs); i++) {
            const alg *a = &algs[i];
            uint8_t md[CC_DIGEST_MAX_SIZE], want[CC_DIGEST_MAX_SIZE];
            any_ctx c;

            evp_digest(a, buf, n, want);
            for (int reuse = 0; reuse < 2; reuse++) {
                a->init(&c);
                for (size_t off = 0; off < n;) {
                    size_t k = rng_below(max_chunk + 1);
                    if (k > n - off)
                        k = n - off;
                    a->update(&c, buf + off, k);
                    off += k;
                }
                a->final(&c, md);
                assert_digest_equal(a, md, want, n);
            }
        }
    }
}

static void
test_base64(void **state)
{
    uint8_t buf[100];
    char want[(sizeof(buf) + 2) / 3 * 4 + 1];

    for (size_t n = 0; n <= sizeof(buf); n++) {
        for (int round = 0; round < 20; round++) {
            rng_fill(buf, n);
            int len = EVP_EncodeBlock((unsigned char *)want, buf, (int)n);
            _cleanup_free_ char *got = cc_base64_encode(buf, n);
            assert_int_equal(strlen(got), (size_t)len);
            assert_string_equal(got, want);
        }
    }

    /* RFC 4648 §10. */
    static const char *const rfc[][2] = {
        {"", ""},
        {"f", "Zg=="},
        {"fo", "Zm8="},
        {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="},
        {"fooba", "Zm9vYmE="},
        {"foobar", "Zm9vYmFy"},
    };
    for (size_t i = 0; i < ELEMENTSOF(rfc); i++) {
        _cleanup_free_ char *got = cc_base64_encode(rfc[i][0], strlen(rfc[i][0]));
        assert_string_equal(got, rfc[i][1]);
    }
    _cleanup_free_ char *empty = cc_base64_encode(NULL, 0);
    assert_string_equal(empty, "");
    static const uint8_t all_ones[] = {0xfb, 0xff, 0xbf};
    _cleanup_free_ char *ones = cc_base64_encode(all_ones, sizeof(all_ones));
    assert_string_equal(ones, "+/+/");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fips_vectors),   cmocka_unit_test(test_empty_and_null),
        cmocka_unit_test(test_random_lengths), cmocka_unit_test(test_streaming),
        cmocka_unit_test(test_base64),
    };
    return cmocka_run_group_tests(tests, setup_seed, NULL);
}
