/* SPDX-License-Identifier: Apache-2.0 */
/*
 * FIPS 180-4 hash functions, written from the standard: §4 (functions and constants),
 * §5 (padding, parsing, initial hash values), §6 (computation). Section numbers below refer
 * to it. The constants are the first bits of the fractional parts of the square roots
 * (initial values) and cube roots (round constants) of the first primes (§4.2, §5.3).
 */
#include "digest.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

typedef void (*compress_fn)(void *state, const uint8_t *block);

static inline uint32_t
rotl32(uint32_t x, unsigned n)
{
    return (x << n) | (x >> (32 - n));
}

static inline uint32_t
rotr32(uint32_t x, unsigned n)
{
    return (x >> n) | (x << (32 - n));
}

static inline uint64_t
rotr64(uint64_t x, unsigned n)
{
    return (x >> n) | (x << (64 - n));
}

static inline uint32_t
load_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t
load_be64(const uint8_t *p)
{
    return (uint64_t)load_be32(p) << 32 | load_be32(p + 4);
}

static inline void
store_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline void
store_be64(uint8_t *p, uint64_t v)
{
    store_be32(p, (uint32_t)(v >> 32));
    store_be32(p + 4, (uint32_t)v);
}

/* Buffers input and feeds whole blocks of bsize bytes to compress. */
static void
block_update(uint8_t *buf, size_t bsize, uint64_t *len, void *state, compress_fn compress,
             const uint8_t *p, size_t n)
{
    size_t fill = (size_t)(*len % bsize);

    if (n == 0)
        return;
    *len += n;
    if (fill > 0) {
        size_t take = bsize - fill < n ? bsize - fill : n;
        memcpy(buf + fill, p, take);
        p += take;
        n -= take;
        if (fill + take < bsize)
            return;
        compress(state, buf);
    }
    for (; n >= bsize; p += bsize, n -= bsize)
        compress(state, p);
    if (n > 0)
        memcpy(buf, p, n);
}

/*
 * §5.1: append a 1 bit, zeros up to the length field, and the message length in bits as a
 * big-endian integer of lsize bytes (8 for 512-bit blocks, 16 for 1024-bit blocks).
 */
static void
block_final(uint8_t *buf, size_t bsize, size_t lsize, uint64_t len, void *state,
            compress_fn compress)
{
    size_t fill = (size_t)(len % bsize);

    buf[fill++] = 0x80;
    if (fill > bsize - lsize) {
        memset(buf + fill, 0, bsize - fill);
        compress(state, buf);
        fill = 0;
    }
    memset(buf + fill, 0, bsize - fill);
    if (lsize == 16)
        store_be64(buf + bsize - 16, len >> 61);
    store_be64(buf + bsize - 8, len << 3);
    compress(state, buf);
}

/* --- SHA-1 (§6.1) ---------------------------------------------------------------------- */

static void
sha1_compress(void *state, const uint8_t *block)
{
    uint32_t *h = state;
    uint32_t w[80];

    for (int t = 0; t < 16; t++)
        w[t] = load_be32(block + 4 * t);
    for (int t = 16; t < 80; t++)
        w[t] = rotl32(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);

    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int t = 0; t < 80; t++) {
        uint32_t f, k;
        if (t < 20) {
            f = (b & c) ^ (~b & d); /* Ch */
            k = 0x5a827999;
        } else if (t < 40) {
            f = b ^ c ^ d; /* Parity */
            k = 0x6ed9eba1;
        } else if (t < 60) {
            f = (b & c) ^ (b & d) ^ (c & d); /* Maj */
            k = 0x8f1bbcdc;
        } else {
            f = b ^ c ^ d;
            k = 0xca62c1d6;
        }
        uint32_t tmp = rotl32(a, 5) + f + e + k + w[t];
        e = d;
        d = c;
        c = rotl32(b, 30);
        b = a;
        a = tmp;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

void
cc_sha1_init(cc_sha1_ctx *c)
{
    static const uint32_t h0[5] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0};

    memcpy(c->h, h0, sizeof(h0));
    c->len = 0;
}

void
cc_sha1_update(cc_sha1_ctx *c, const void *p, size_t n)
{
    block_update(c->buf, sizeof(c->buf), &c->len, c->h, sha1_compress, p, n);
}

void
cc_sha1_final(cc_sha1_ctx *c, uint8_t ret[CC_SHA1_SIZE])
{
    block_final(c->buf, sizeof(c->buf), 8, c->len, c->h, sha1_compress);
    for (int i = 0; i < 5; i++)
        store_be32(ret + 4 * i, c->h[i]);
    cc_explicit_bzero(c, sizeof(*c));
}

void
cc_sha1(const void *p, size_t n, uint8_t ret[CC_SHA1_SIZE])
{
    cc_sha1_ctx c;

    cc_sha1_init(&c);
    cc_sha1_update(&c, p, n);
    cc_sha1_final(&c, ret);
}

/* --- SHA-256 (§6.2) -------------------------------------------------------------------- */

static const uint32_t sha256_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static void
sha256_compress(void *state, const uint8_t *block)
{
    uint32_t *h = state;
    uint32_t w[64];

    for (int t = 0; t < 16; t++)
        w[t] = load_be32(block + 4 * t);
    for (int t = 16; t < 64; t++) {
        uint32_t s0 = rotr32(w[t - 15], 7) ^ rotr32(w[t - 15], 18) ^ (w[t - 15] >> 3);
        uint32_t s1 = rotr32(w[t - 2], 17) ^ rotr32(w[t - 2], 19) ^ (w[t - 2] >> 10);
        w[t] = s1 + w[t - 7] + s0 + w[t - 16];
    }

    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int t = 0; t < 64; t++) {
        uint32_t S1 = rotr32(e, 6) ^ rotr32(e, 11) ^ rotr32(e, 25);
        uint32_t ch = (e & f) ^ (~e & g);
        uint32_t t1 = hh + S1 + ch + sha256_k[t] + w[t];
        uint32_t S0 = rotr32(a, 2) ^ rotr32(a, 13) ^ rotr32(a, 22);
        uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
        uint32_t t2 = S0 + maj;
        hh = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += hh;
}

void
cc_sha256_init(cc_sha256_ctx *c)
{
    static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

    memcpy(c->h, h0, sizeof(h0));
    c->len = 0;
}

void
cc_sha256_update(cc_sha256_ctx *c, const void *p, size_t n)
{
    block_update(c->buf, sizeof(c->buf), &c->len, c->h, sha256_compress, p, n);
}

void
cc_sha256_final(cc_sha256_ctx *c, uint8_t ret[CC_SHA256_SIZE])
{
    block_final(c->buf, sizeof(c->buf), 8, c->len, c->h, sha256_compress);
    for (int i = 0; i < 8; i++)
        store_be32(ret + 4 * i, c->h[i]);
    cc_explicit_bzero(c, sizeof(*c));
}

void
cc_sha256(const void *p, size_t n, uint8_t ret[CC_SHA256_SIZE])
{
    cc_sha256_ctx c;

    cc_sha256_init(&c);
    cc_sha256_update(&c, p, n);
    cc_sha256_final(&c, ret);
}

/* --- SHA-512 (§6.4) and SHA-384 (§6.5) ------------------------------------------------- */

static const uint64_t sha512_k[80] = {
    0x428a2f98d728ae22ULL, 0x7137449123ef65cdULL, 0xb5c0fbcfec4d3b2fULL, 0xe9b5dba58189dbbcULL,
    0x3956c25bf348b538ULL, 0x59f111f1b605d019ULL, 0x923f82a4af194f9bULL, 0xab1c5ed5da6d8118ULL,
    0xd807aa98a3030242ULL, 0x12835b0145706fbeULL, 0x243185be4ee4b28cULL, 0x550c7dc3d5ffb4e2ULL,
    0x72be5d74f27b896fULL, 0x80deb1fe3b1696b1ULL, 0x9bdc06a725c71235ULL, 0xc19bf174cf692694ULL,
    0xe49b69c19ef14ad2ULL, 0xefbe4786384f25e3ULL, 0x0fc19dc68b8cd5b5ULL, 0x240ca1cc77ac9c65ULL,
    0x2de92c6f592b0275ULL, 0x4a7484aa6ea6e483ULL, 0x5cb0a9dcbd41fbd4ULL, 0x76f988da831153b5ULL,
    0x983e5152ee66dfabULL, 0xa831c66d2db43210ULL, 0xb00327c898fb213fULL, 0xbf597fc7beef0ee4ULL,
    0xc6e00bf33da88fc2ULL, 0xd5a79147930aa725ULL, 0x06ca6351e003826fULL, 0x142929670a0e6e70ULL,
    0x27b70a8546d22ffcULL, 0x2e1b21385c26c926ULL, 0x4d2c6dfc5ac42aedULL, 0x53380d139d95b3dfULL,
    0x650a73548baf63deULL, 0x766a0abb3c77b2a8ULL, 0x81c2c92e47edaee6ULL, 0x92722c851482353bULL,
    0xa2bfe8a14cf10364ULL, 0xa81a664bbc423001ULL, 0xc24b8b70d0f89791ULL, 0xc76c51a30654be30ULL,
    0xd192e819d6ef5218ULL, 0xd69906245565a910ULL, 0xf40e35855771202aULL, 0x106aa07032bbd1b8ULL,
    0x19a4c116b8d2d0c8ULL, 0x1e376c085141ab53ULL, 0x2748774cdf8eeb99ULL, 0x34b0bcb5e19b48a8ULL,
    0x391c0cb3c5c95a63ULL, 0x4ed8aa4ae3418acbULL, 0x5b9cca4f7763e373ULL, 0x682e6ff3d6b2b8a3ULL,
    0x748f82ee5defb2fcULL, 0x78a5636f43172f60ULL, 0x84c87814a1f0ab72ULL, 0x8cc702081a6439ecULL,
    0x90befffa23631e28ULL, 0xa4506cebde82bde9ULL, 0xbef9a3f7b2c67915ULL, 0xc67178f2e372532bULL,
    0xca273eceea26619cULL, 0xd186b8c721c0c207ULL, 0xeada7dd6cde0eb1eULL, 0xf57d4f7fee6ed178ULL,
    0x06f067aa72176fbaULL, 0x0a637dc5a2c898a6ULL, 0x113f9804bef90daeULL, 0x1b710b35131c471bULL,
    0x28db77f523047d84ULL, 0x32caab7b40c72493ULL, 0x3c9ebe0a15c9bebcULL, 0x431d67c49c100d4cULL,
    0x4cc5d4becb3e42b6ULL, 0x597f299cfc657e2aULL, 0x5fcb6fab3ad6faecULL, 0x6c44198c4a475817ULL,
};

static void
sha512_compress(void *state, const uint8_t *block)
{
    uint64_t *h = state;
    uint64_t w[80];

    for (int t = 0; t < 16; t++)
        w[t] = load_be64(block + 8 * t);
    for (int t = 16; t < 80; t++) {
        uint64_t s0 = rotr64(w[t - 15], 1) ^ rotr64(w[t - 15], 8) ^ (w[t - 15] >> 7);
        uint64_t s1 = rotr64(w[t - 2], 19) ^ rotr64(w[t - 2], 61) ^ (w[t - 2] >> 6);
        w[t] = s1 + w[t - 7] + s0 + w[t - 16];
    }

    uint64_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int t = 0; t < 80; t++) {
        uint64_t S1 = rotr64(e, 14) ^ rotr64(e, 18) ^ rotr64(e, 41);
        uint64_t ch = (e & f) ^ (~e & g);
        uint64_t t1 = hh + S1 + ch + sha512_k[t] + w[t];
        uint64_t S0 = rotr64(a, 28) ^ rotr64(a, 34) ^ rotr64(a, 39);
        uint64_t maj = (a & b) ^ (a & c) ^ (b & c);
        uint64_t t2 = S0 + maj;
        hh = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += hh;
}

static void
sha512_final_n(cc_sha512_ctx *c, uint8_t *ret, size_t words)
{
    block_final(c->buf, sizeof(c->buf), 16, c->len, c->h, sha512_compress);
    for (size_t i = 0; i < words; i++)
        store_be64(ret + 8 * i, c->h[i]);
    cc_explicit_bzero(c, sizeof(*c));
}

void
cc_sha384_init(cc_sha512_ctx *c)
{
    static const uint64_t h0[8] = {
        0xcbbb9d5dc1059ed8ULL, 0x629a292a367cd507ULL, 0x9159015a3070dd17ULL, 0x152fecd8f70e5939ULL,
        0x67332667ffc00b31ULL, 0x8eb44a8768581511ULL, 0xdb0c2e0d64f98fa7ULL, 0x47b5481dbefa4fa4ULL,
    };

    memcpy(c->h, h0, sizeof(h0));
    c->len = 0;
}

void
cc_sha384_update(cc_sha512_ctx *c, const void *p, size_t n)
{
    cc_sha512_update(c, p, n);
}

void
cc_sha384_final(cc_sha512_ctx *c, uint8_t ret[CC_SHA384_SIZE])
{
    sha512_final_n(c, ret, CC_SHA384_SIZE / 8);
}

void
cc_sha384(const void *p, size_t n, uint8_t ret[CC_SHA384_SIZE])
{
    cc_sha512_ctx c;

    cc_sha384_init(&c);
    cc_sha384_update(&c, p, n);
    cc_sha384_final(&c, ret);
}

void
cc_sha512_init(cc_sha512_ctx *c)
{
    static const uint64_t h0[8] = {
        0x6a09e667f3bcc908ULL, 0xbb67ae8584caa73bULL, 0x3c6ef372fe94f82bULL, 0xa54ff53a5f1d36f1ULL,
        0x510e527fade682d1ULL, 0x9b05688c2b3e6c1fULL, 0x1f83d9abfb41bd6bULL, 0x5be0cd19137e2179ULL,
    };

    memcpy(c->h, h0, sizeof(h0));
    c->len = 0;
}

void
cc_sha512_update(cc_sha512_ctx *c, const void *p, size_t n)
{
    block_update(c->buf, sizeof(c->buf), &c->len, c->h, sha512_compress, p, n);
}

void
cc_sha512_final(cc_sha512_ctx *c, uint8_t ret[CC_SHA512_SIZE])
{
    sha512_final_n(c, ret, CC_SHA512_SIZE / 8);
}

void
cc_sha512(const void *p, size_t n, uint8_t ret[CC_SHA512_SIZE])
{
    cc_sha512_ctx c;

    cc_sha512_init(&c);
    cc_sha512_update(&c, p, n);
    cc_sha512_final(&c, ret);
}

/* --- base64 (RFC 4648 §4) -------------------------------------------------------------- */

char *
cc_base64_encode(const void *p, size_t n)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const uint8_t *in = p;

    if (n / 3 >= (SIZE_MAX - 5) / 4)
        abort(); /* the output size overflows: as good as OOM */
    char *out = cc_xmalloc((n + 2) / 3 * 4 + 1);
    char *o = out;
    size_t i = 0;

    for (; n - i >= 3; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *o++ = alphabet[v >> 18];
        *o++ = alphabet[(v >> 12) & 0x3f];
        *o++ = alphabet[(v >> 6) & 0x3f];
        *o++ = alphabet[v & 0x3f];
    }
    if (n - i > 0) {
        uint32_t v = (uint32_t)in[i] << 16 | (n - i > 1 ? (uint32_t)in[i + 1] << 8 : 0);
        *o++ = alphabet[v >> 18];
        *o++ = alphabet[(v >> 12) & 0x3f];
        *o++ = n - i > 1 ? alphabet[(v >> 6) & 0x3f] : '=';
        *o++ = '=';
    }
    *o = '\0';
    return out;
}
