/* tests/t_rng.h: the kernel tests' deterministic data: xorshift64 (13, 7, 17), 32 bits from its
 * top, uniforms in [-1, 1) from 24 of them. A test defines T_RNG_SEED before including this for
 * another stream. */
#ifndef T_RNG_H
#define T_RNG_H
#include <stdint.h>

#ifndef T_RNG_SEED
#define T_RNG_SEED 0x9e3779b97f4a7c15ull
#endif
static uint64_t rng_state = T_RNG_SEED;
static inline uint32_t rng_u32(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}
static inline float rng_unif(void) { return (float)(rng_u32() >> 8) / 16777216.0f * 2.0f - 1.0f; }
#endif
