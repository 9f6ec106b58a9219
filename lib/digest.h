/* SPDX-License-Identifier: Apache-2.0 */
/*
 * SHA-1, SHA-256, SHA-384 and SHA-512 (FIPS 180-4) and base64 (RFC 4648 §4), so that the
 * shim does not link libcrypto (3.4 MiB of RSS) for a handful of digests.
 *
 * None of this is constant-time beyond what the algorithms give for free, and nothing here
 * is a MAC or a KDF: use it for naming, fingerprints and measurements, not for secrets.
 * Pure computation: no I/O, no allocation except cc_base64_encode(), no global state, so
 * every function is safe from any thread on distinct contexts. Nothing can fail.
 *
 * Incremental use: *_init(), any number of *_update() (n may be 0, p may then be NULL),
 * one *_final(), which writes the digest and wipes the context; call *_init() again to reuse
 * it. Messages are limited to 2^61 - 1 bytes (the 64-bit bit count of SHA-1/SHA-256).
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define CC_SHA1_SIZE 20
#define CC_SHA256_SIZE 32
#define CC_SHA384_SIZE 48
#define CC_SHA512_SIZE 64
#define CC_DIGEST_MAX_SIZE CC_SHA512_SIZE

typedef struct cc_sha1_ctx {
    uint32_t h[5];
    uint64_t len; /* bytes so far; len % 64 of them wait in buf */
    uint8_t buf[64];
} cc_sha1_ctx;

typedef struct cc_sha256_ctx {
    uint32_t h[8];
    uint64_t len;
    uint8_t buf[64];
} cc_sha256_ctx;

/* SHA-384 is SHA-512 with other initial values, truncated: both use this context. */
typedef struct cc_sha512_ctx {
    uint64_t h[8];
    uint64_t len;
    uint8_t buf[128];
} cc_sha512_ctx;

void cc_sha1_init(cc_sha1_ctx *c);
void cc_sha1_update(cc_sha1_ctx *c, const void *p, size_t n);
void cc_sha1_final(cc_sha1_ctx *c, uint8_t ret[CC_SHA1_SIZE]);

void cc_sha256_init(cc_sha256_ctx *c);
void cc_sha256_update(cc_sha256_ctx *c, const void *p, size_t n);
void cc_sha256_final(cc_sha256_ctx *c, uint8_t ret[CC_SHA256_SIZE]);

void cc_sha384_init(cc_sha512_ctx *c);
void cc_sha384_update(cc_sha512_ctx *c, const void *p, size_t n);
void cc_sha384_final(cc_sha512_ctx *c, uint8_t ret[CC_SHA384_SIZE]);

void cc_sha512_init(cc_sha512_ctx *c);
void cc_sha512_update(cc_sha512_ctx *c, const void *p, size_t n);
void cc_sha512_final(cc_sha512_ctx *c, uint8_t ret[CC_SHA512_SIZE]);

/* One-shot: the digest of the n bytes at p (p may be NULL when n is 0) into ret. */
void cc_sha1(const void *p, size_t n, uint8_t ret[CC_SHA1_SIZE]);
void cc_sha256(const void *p, size_t n, uint8_t ret[CC_SHA256_SIZE]);
void cc_sha384(const void *p, size_t n, uint8_t ret[CC_SHA384_SIZE]);
void cc_sha512(const void *p, size_t n, uint8_t ret[CC_SHA512_SIZE]);

/*
 * Standard base64 (RFC 4648 §4 alphabet, '=' padding, no line breaks) of the n bytes at p,
 * as a NUL-terminated string the caller frees; "" for n == 0. Same output as OpenSSL's
 * EVP_EncodeBlock(). Aborts on OOM.
 */
char *cc_base64_encode(const void *p, size_t n);
