/* kernels/base/hash.c: see hash.h */
#include "kernels/base/hash.h"

#include <stdlib.h>

#include "kernels/base/err.h"

int u64set_add(struct u64set *s, uint64_t k) {
    if (!k) k = 1;
    if (!s->k || 2 * (s->n + 1) > s->mask + 1) { /* at most half full */
        const size_t cap = s->k ? 2 * (s->mask + 1) : 4096;
        uint64_t *nk = calloc(cap, sizeof *nk);
        if (!nk) return err("out of memory (hash set)");
        for (size_t i = 0; s->k && i <= s->mask; i++)
            if (s->k[i]) {
                size_t j = s->k[i] & (cap - 1);
                while (nk[j]) j = (j + 1) & (cap - 1);
                nk[j] = s->k[i];
            }
        free(s->k);
        s->k = nk, s->mask = cap - 1;
    }
    size_t j = k & s->mask;
    while (s->k[j] && s->k[j] != k) j = (j + 1) & s->mask;
    if (!s->k[j]) s->k[j] = k, s->n++;
    return 0;
}

bool u64set_has(const struct u64set *s, uint64_t k) {
    if (!k) k = 1;
    if (!s->k) return false;
    size_t j = k & s->mask;
    while (s->k[j]) {
        if (s->k[j] == k) return true;
        j = (j + 1) & s->mask;
    }
    return false;
}

void u64set_release(struct u64set *s) {
    free(s->k);
    *s = (struct u64set)U64SET_INIT;
}
