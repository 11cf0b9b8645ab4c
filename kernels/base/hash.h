/* kernels/base/hash.h: a 64-bit non-cryptographic hash (FNV-1a) and a set of 64-bit keys (open
 * addressing, linear probing), for duplicate checks in linear time. For hashes that are stored or
 * compared across runs (job keys, provenance) use kernels/base/sha256.h.
 *
 *   struct u64set s = U64SET_INIT;
 *   if (u64set_add(&s, fnv1a64(FNV1A64_INIT, text, n))) return -1;   out of memory, reported
 *   if (u64set_has(&s, k)) ...
 *   u64set_release(&s); */
#ifndef KERNELS_BASE_HASH_H
#define KERNELS_BASE_HASH_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* FNV-1a over n bytes, continuing from h (FNV1A64_INIT to start). The start value is the one the
 * tree has always used, 1469598103934665603: FNV's offset basis is 14695981039346656037, a digit
 * longer. Kept: lowbit train's run keys (checkpoints, resume) are hashed with it, and any start
 * value hashes as well. */
#define FNV1A64_INIT 1469598103934665603ull
static inline uint64_t fnv1a64(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

/* a set of 64-bit keys; the key 0 is stored as 1 (so 0 and 1 are one key) */
struct u64set {
    uint64_t *k;  /* mask + 1 slots, 0 = empty; NULL until the first add */
    size_t mask, n;
};
#define U64SET_INIT {NULL, 0, 0}
/* add k (a no-op when present); -1 with "out of memory (hash set)" */
int u64set_add(struct u64set *s, uint64_t k);
bool u64set_has(const struct u64set *s, uint64_t k);
void u64set_release(struct u64set *s);
#endif
