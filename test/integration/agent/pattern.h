/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The byte stream `ctr-prog spew` writes and agent-test checks: xorshift64 (13, 7, 17) seeded
 * with 1, each state written as 8 little-endian bytes. Shared by both, header-only.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define PATTERN_SEED 1u

/* Fills buf (len a multiple of 8) with the next len bytes of the stream in *state. */
static inline void
pattern_fill(uint64_t *state, uint8_t *buf, size_t len)
{
    uint64_t x = *state;
    for (size_t i = 0; i + 8 <= len; i += 8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        for (unsigned b = 0; b < 8; b++)
            buf[i + b] = (uint8_t)(x >> (8 * b));
    }
    *state = x;
}
