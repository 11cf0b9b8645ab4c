/* kernels/iquants.c: the i-quant and ternary types of kernels/iquants.h.
 *
 * Re-written from the algorithms of ggml/src/ggml-quants.c (llama.cpp de3ff81), not copied; the
 * aim is ggml's bytes, so the fp32 operations keep ggml's order (no contraction: -ffp-contract=off
 * in the Makefile, clang told below), its nearest_int, its tie rules, its early exits and its
 * quirks (named where they occur). tests/test_iquants.c compares against ggml itself.
 *
 * The quantizers of the grid types share one scheme (Kawrakow's): per group of 8 (IQ2, IQ1) or 4
 * (IQ3) weights, take magnitudes (the signs go into sign bits), try a set of inverse scales,
 * round each magnitude to the nearest level, and when that tuple is not a grid point, take the
 * best of its precomputed grid neighbours (the points at the nwant smallest squared distances);
 * keep the scale with the best weighted least-squares fit, then quantize the per-32 (or per-16)
 * scales to 4 (3 for IQ1) bits against the block maximum. IQ1_S/M instead split the sorted
 * weights of a block into three groups exhaustively.
 *
 * Lattices ("iq2xs_init_impl" / "iq3xs_init_impl" in ggml): from the data of kernels/iq_grids.c,
 * the search grid (coordinate level l -> 2l + 1), the map from every level tuple (2 or 3 bits per
 * coordinate) to its point, or to its neighbour list: the points sorted by (distance², index),
 * cut after the nwant-th distinct distance. ggml sorts all points per tuple; a bucket pass over
 * the few smallest distances gives the same list in O(points). */
#include "kernels/iquants.h"

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/ggml_quants.h"

#if defined(__clang__)
#pragma clang fp contract(off)
#endif

#define IQ1S_DELTA 0.125f
#define IQ1M_DELTA 0.125f
#define GROUP_MAX_EPS 1e-15f
#define GROUP_MAX_EPS_IQ3_XXS 1e-8f
#define GROUP_MAX_EPS_IQ2_S 1e-8f
#define GROUP_MAX_EPS_IQ1_M 1e-7f
#define GROUP_MAX_EPS_IQ1_S 1e-12f

static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }
static inline int clampi(int v, int lo, int hi) { return imax(lo, imin(hi, v)); }

/* ===== lattices ===== */

enum { LAT_IQ2XXS, LAT_IQ2XS, LAT_IQ2S, LAT_IQ1S, LAT_IQ3XXS, LAT_IQ3S, LAT_COUNT };

struct lattice {
    const uint16_t *kgrid; /* iq_grids.c */
    int n, dim, bits, nwant, map_size;
    int8_t *grid; /* n × dim coordinates 2l + 1 */
    int *map;     /* level tuple -> point, or -(offset + 1) of its neighbour list */
    uint16_t *nb; /* lists: count, then point indices */
};

static struct lattice lat[LAT_COUNT] = {
    [LAT_IQ2XXS] = {iq_kgrid_2bit_256, 256, 8, 2, 2, 43692, NULL, NULL, NULL},
    [LAT_IQ2XS] = {iq_kgrid_2bit_512, 512, 8, 2, 2, 43692, NULL, NULL, NULL},
    [LAT_IQ2S] = {iq_kgrid_2bit_1024, 1024, 8, 2, 1, 43692, NULL, NULL, NULL},
    [LAT_IQ1S] = {iq_kgrid_1bit_2048, 2048, 8, 2, 3, 43692, NULL, NULL, NULL},
    [LAT_IQ3XXS] = {iq_kgrid_3bit_256, 256, 4, 3, 2, 4096, NULL, NULL, NULL},
    [LAT_IQ3S] = {iq_kgrid_3bit_512, 512, 4, 3, 3, 4096, NULL, NULL, NULL},
};

/* the neighbour list of level tuple i into out (count first; out NULL: count only) */
static int lattice_neighbours(const struct lattice *lt, int i, int *d2, uint16_t *out) {
    int pos[8];
    const int mask = (1 << lt->bits) - 1;
    for (int k = 0; k < lt->dim; k++) pos[k] = 2 * ((i >> (lt->bits * k)) & mask) + 1;
    int best[3], nbest = 0;
    for (int j = 0; j < lt->n; j++) {
        const int8_t *pg = lt->grid + (size_t)j * lt->dim;
        int d = 0;
        for (int k = 0; k < lt->dim; k++) d += (pg[k] - pos[k]) * (pg[k] - pos[k]);
        d2[j] = d;
        int p = 0;
        while (p < nbest && best[p] < d) p++;
        if ((p < nbest && best[p] == d) || p >= lt->nwant) continue;
        for (int q = imin(nbest, lt->nwant - 1); q > p; q--) best[q] = best[q - 1];
        best[p] = d;
        nbest = imin(nbest + 1, lt->nwant);
    }
    int count = 0;
    for (int b = 0; b < nbest; b++)
        for (int j = 0; j < lt->n; j++)
            if (d2[j] == best[b]) {
                if (out) out[1 + count] = (uint16_t)j;
                count++;
            }
    if (out) out[0] = (uint16_t)count;
    return count;
}

/* a 2-bit tuple with a coordinate at level 3 (never produced by the quantizers) */
static bool unused_tuple(const struct lattice *lt, int i) {
    if (lt->bits != 2) return false;
    for (int k = 0; k < lt->dim; k++)
        if (((i >> (2 * k)) & 3) == 3) return true;
    return false;
}

static void lattice_build(struct lattice *lt) {
    lt->grid = malloc((size_t)lt->n * (size_t)lt->dim);
    lt->map = malloc(sizeof(int) * (size_t)lt->map_size);
    int *off = malloc(sizeof(int) * (size_t)lt->map_size);
    if (!lt->grid || !lt->map || !off) BUG("iquants: out of memory building the lattice tables");
    const int mask = (1 << lt->bits) - 1;
    for (int k = 0; k < lt->n; k++)
        for (int i = 0; i < lt->dim; i++)
            lt->grid[(size_t)k * lt->dim + i] = (int8_t)(2 * ((lt->kgrid[k] >> (lt->bits * i)) &
                                                              mask) +
                                                         1);
    for (int i = 0; i < lt->map_size; i++) lt->map[i] = -1;
    for (int k = 0; k < lt->n; k++) lt->map[lt->kgrid[k]] = k;
        /* pass 1: list lengths; pass 2 (after the prefix sum): the lists. The quantizers round to
     * levels 0..kmax-1, so for the IQ2/IQ1 grids (2-bit indices, levels 0..2 used) a tuple with
     * a level 3 is never looked up: it gets no list (map -1 - total, an empty slot) */
#pragma omp parallel
    {
        int *d2 = malloc(sizeof(int) * (size_t)lt->n);
        if (!d2) BUG("iquants: out of memory building the lattice tables");
#pragma omp for schedule(dynamic, 64)
        for (int i = 0; i < lt->map_size; i++)
            off[i] = lt->map[i] >= 0 || unused_tuple(lt, i) ? 0
                                                            : lattice_neighbours(lt, i, d2, NULL);
        free(d2);
    }
    size_t total = 0;
    for (int i = 0; i < lt->map_size; i++) {
        if (lt->map[i] >= 0) continue;
        const int len = off[i];
        off[i] = (int)total;
        total += 1 + (size_t)len;
    }
    lt->nb = malloc(sizeof(uint16_t) * (total ? total : 1));
    if (!lt->nb) BUG("iquants: out of memory building the lattice tables");
#pragma omp parallel
    {
        int *d2 = malloc(sizeof(int) * (size_t)lt->n);
        if (!d2) BUG("iquants: out of memory building the lattice tables");
#pragma omp for schedule(dynamic, 64)
        for (int i = 0; i < lt->map_size; i++) {
            if (lt->map[i] >= 0) continue;
            if (unused_tuple(lt, i)) lt->nb[off[i]] = 0;
            else lattice_neighbours(lt, i, d2, lt->nb + off[i]);
        }
        free(d2);
    }
    for (int i = 0; i < lt->map_size; i++)
        if (lt->map[i] < 0) lt->map[i] = -(off[i] + 1);
    free(off);
}

static pthread_once_t lat_once[LAT_COUNT] = {PTHREAD_ONCE_INIT, PTHREAD_ONCE_INIT,
                                             PTHREAD_ONCE_INIT, PTHREAD_ONCE_INIT,
                                             PTHREAD_ONCE_INIT, PTHREAD_ONCE_INIT};
#define LAT_INIT(i)                                                                                \
    static void lat_init_##i(void) { lattice_build(&lat[i]); }
LAT_INIT(0)
LAT_INIT(1)
LAT_INIT(2)
LAT_INIT(3)
LAT_INIT(4)
LAT_INIT(5)
#undef LAT_INIT
static void (*const lat_init_fn[LAT_COUNT])(void) = {lat_init_0, lat_init_1, lat_init_2,
                                                     lat_init_3, lat_init_4, lat_init_5};

static const struct lattice *lattice_get(int which) {
    if (pthread_once(&lat_once[which], lat_init_fn[which])) BUG("iquants: pthread_once failed");
    return &lat[which];
}

static inline const uint16_t *lattice_list(const struct lattice *lt, int u) {
    return lt->nb + (-lt->map[u] - 1);
}

/* iq2_find_best_neighbour / iq3_find_best_neighbour: the listed point nearest to xval/scale
 * under weights w; L gets its levels */
static int lattice_best(const struct lattice *lt, const uint16_t *list, const float *xval,
                        const float *w, float scale, int8_t *L) {
    const int n = list[0];
    float best_d2 = FLT_MAX;
    int gi = -1;
    for (int j = 1; j <= n; j++) {
        const int8_t *pg = lt->grid + (size_t)list[j] * lt->dim;
        float d2 = 0;
        for (int i = 0; i < lt->dim; i++) {
            const float q = pg[i];
            const float diff = scale * q - xval[i];
            d2 += w[i] * diff * diff;
        }
        if (d2 < best_d2) {
            best_d2 = d2;
            gi = list[j];
        }
    }
    if (gi < 0) BUG("iquants: no grid neighbour (NaN input?)");
    const int8_t *pg = lt->grid + (size_t)gi * lt->dim;
    for (int i = 0; i < lt->dim; i++) L[i] = (int8_t)((pg[i] - 1) / 2);
    return gi;
}

/* the tuple index of levels L[0..dim) */
static inline int lattice_u(const struct lattice *lt, const int8_t *L) {
    int u = 0;
    for (int i = 0; i < lt->dim; i++) u |= L[i] << (lt->bits * i);
    return u;
}

/* ===== dequantization tables (ggml-common.h), derived ===== */

static uint8_t dq_iq2xxs[256][8], dq_iq2xs[512][8], dq_iq2s[1024][8], dq_iq3xxs[256][4],
    dq_iq3s[512][4], ksigns[128];
static int8_t dq_iq1s[2048][8];
static pthread_once_t dq_once = PTHREAD_ONCE_INIT;

static void dq_build(void) {
    static const uint8_t lv2[4] = {8, 25, 43, 62}, lv3xxs[8] = {4, 12, 20, 28, 36, 44, 52, 62};
    static const int8_t lv1[4] = {-1, 0, 1, 2};
    for (int k = 0; k < 1024; k++)
        for (int i = 0; i < 8; i++) {
            if (k < 256) dq_iq2xxs[k][i] = lv2[(iq_kgrid_2bit_256[k] >> 2 * i) & 3];
            if (k < 512) dq_iq2xs[k][i] = lv2[(iq_kgrid_2bit_512[k] >> 2 * i) & 3];
            dq_iq2s[k][i] = lv2[(iq_kgrid_2bit_1024[k] >> 2 * i) & 3];
        }
    for (int k = 0; k < 2048; k++)
        for (int i = 0; i < 8; i++) dq_iq1s[k][i] = lv1[(iq_kgrid_1bit_2048[k] >> 2 * i) & 3];
    for (int k = 0; k < 512; k++)
        for (int i = 0; i < 4; i++) {
            if (k < 256) dq_iq3xxs[k][i] = lv3xxs[(iq_kgrid_3bit_256[k] >> 3 * i) & 7];
            dq_iq3s[k][i] = (uint8_t)(2 * ((iq_kgrid_3bit_512[k] >> 3 * i) & 7) + 1);
        }
    /* 7 sign bits plus the 8th that makes the count of set bits even */
    for (int i = 0; i < 128; i++)
        ksigns[i] = (uint8_t)(i | (__builtin_popcount((unsigned)i) & 1) << 7);
}

static inline void dq_init(void) {
    if (pthread_once(&dq_once, dq_build)) BUG("iquants: pthread_once failed");
}

const uint8_t *iq_dequant_table(int which, size_t *bytes) {
    dq_init();
    switch (which) {
    case 0: *bytes = sizeof dq_iq2xxs; return &dq_iq2xxs[0][0];
    case 1: *bytes = sizeof dq_iq2xs; return &dq_iq2xs[0][0];
    case 2: *bytes = sizeof dq_iq2s; return &dq_iq2s[0][0];
    case 3: *bytes = sizeof dq_iq3xxs; return &dq_iq3xxs[0][0];
    case 4: *bytes = sizeof dq_iq3s; return &dq_iq3s[0][0];
    case 5: *bytes = sizeof dq_iq1s; return (const uint8_t *)&dq_iq1s[0][0];
    case 6: *bytes = sizeof ksigns; return ksigns;
    default: *bytes = 0; return NULL;
    }
}

static inline float sgn(uint8_t signs, int j) { return signs & (1u << j) ? -1.f : 1.f; }

/* ===== dequantizers ===== */

void tq1_0_to_f32(const void *src, float *y, int64_t n) {
    static const uint8_t pow3[6] = {1, 3, 9, 27, 81, 243};
    const struct block_tq1_0 *x = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = lb_fp16_to_f32(x[i].d);
        for (int k = 0; k < 5; k++) /* bytes 0..31: 5 trits each, along 32 */
            for (int m = 0; m < 32; m++) {
                const uint8_t q = (uint8_t)(x[i].qs[m] * pow3[k]);
                *y++ = (float)((int16_t)(((uint16_t)q * 3) >> 8) - 1) * d;
            }
        for (int k = 0; k < 5; k++) /* bytes 32..47, along 16 */
            for (int m = 0; m < 16; m++) {
                const uint8_t q = (uint8_t)(x[i].qs[32 + m] * pow3[k]);
                *y++ = (float)((int16_t)(((uint16_t)q * 3) >> 8) - 1) * d;
            }
        for (int k = 0; k < 4; k++)
            for (int j = 0; j < 4; j++) {
                const uint8_t q = (uint8_t)(x[i].qh[j] * pow3[k]);
                *y++ = (float)((int16_t)(((uint16_t)q * 3) >> 8) - 1) * d;
            }
    }
}

void tq2_0_to_f32(const void *src, float *y, int64_t n) {
    const struct block_tq2_0 *x = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = lb_fp16_to_f32(x[i].d);
        for (int j = 0; j < QK_K / 4; j += 32)
            for (int l = 0; l < 4; l++)
                for (int m = 0; m < 32; m++)
                    *y++ = (float)(((x[i].qs[j + m] >> (2 * l)) & 3) - 1) * d;
    }
}

void iq4_xs_to_f32(const void *src, float *y, int64_t n) {
    const struct block_iq4_xs *x = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const uint8_t *qs = x[i].qs;
        const float d = lb_fp16_to_f32(x[i].d);
        for (int ib = 0; ib < QK_K / 32; ib++, y += 32, qs += 16) {
            const int ls = ((x[i].scales_l[ib / 2] >> 4 * (ib % 2)) & 0xf) |
                           (((x[i].scales_h >> 2 * ib) & 3) << 4);
            const float dl = d * (float)(ls - 32);
            for (int j = 0; j < 16; j++) {
                y[j] = dl * (float)kvalues_iq4nl[qs[j] & 0xf];
                y[j + 16] = dl * (float)kvalues_iq4nl[qs[j] >> 4];
            }
        }
    }
}

void iq2_xxs_to_f32(const void *src, float *y, int64_t n) {
    dq_init();
    const struct block_iq2_xxs *x = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = lb_fp16_to_f32(x[i].d);
        for (int ib = 0; ib < QK_K / 32; ib++) {
            uint32_t a[2];
            memcpy(a, x[i].qs + 4 * ib, 8);
            const float db = d * (0.5f + (float)(a[1] >> 28)) * 0.25f;
            for (int l = 0; l < 4; l++, y += 8) {
                const uint8_t *g = dq_iq2xxs[(a[0] >> 8 * l) & 255];
                const uint8_t s = ksigns[(a[1] >> 7 * l) & 127];
                for (int j = 0; j < 8; j++) y[j] = db * (float)g[j] * sgn(s, j);
            }
        }
    }
}

void iq2_xs_to_f32(const void *src, float *y, int64_t n) {
    dq_init();
    const struct block_iq2_xs *x = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = lb_fp16_to_f32(x[i].d);
        for (int ib = 0; ib < QK_K / 32; ib++) {
            const float db[2] = {d * (0.5f + (float)(x[i].scales[ib] & 0xf)) * 0.25f,
                                 d * (0.5f + (float)(x[i].scales[ib] >> 4)) * 0.25f};
            for (int l = 0; l < 4; l++, y += 8) {
                const uint16_t q = x[i].qs[4 * ib + l];
                const uint8_t *g = dq_iq2xs[q & 511];
                const uint8_t s = ksigns[q >> 9];
                for (int j = 0; j < 8; j++) y[j] = db[l / 2] * (float)g[j] * sgn(s, j);
            }
        }
    }
}

void iq2_s_to_f32(const void *src, float *y, int64_t n) {
    dq_init();
    const struct block_iq2_s *x = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = lb_fp16_to_f32(x[i].d);
        const uint8_t *qs = x[i].qs, *qh = x[i].qh, *signs = qs + QK_K / 8;
        for (int ib = 0; ib < QK_K / 32; ib++, qs += 4, signs += 4) {
            const float db[2] = {d * (0.5f + (float)(x[i].scales[ib] & 0xf)) * 0.25f,
                                 d * (0.5f + (float)(x[i].scales[ib] >> 4)) * 0.25f};
            for (int l = 0; l < 4; l++, y += 8) {
                const uint8_t *g = dq_iq2s[qs[l] | ((qh[ib] << (8 - 2 * l)) & 0x300)];
                for (int j = 0; j < 8; j++) y[j] = db[l / 2] * (float)g[j] * sgn(signs[l], j);
            }
        }
    }
}

void iq3_xxs_to_f32(const void *src, float *y, int64_t n) {
    dq_init();
    const struct block_iq3_xxs *x = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = lb_fp16_to_f32(x[i].d);
        const uint8_t *qs = x[i].qs, *sas = qs + QK_K / 4;
        for (int ib = 0; ib < QK_K / 32; ib++, qs += 8) {
            uint32_t a;
            memcpy(&a, sas + 4 * ib, 4);
            const float db = d * (0.5f + (float)(a >> 28)) * 0.5f;
            for (int l = 0; l < 4; l++, y += 8) {
                const uint8_t s = ksigns[(a >> 7 * l) & 127];
                const uint8_t *g1 = dq_iq3xxs[qs[2 * l]], *g2 = dq_iq3xxs[qs[2 * l + 1]];
                for (int j = 0; j < 4; j++) {
                    y[j] = db * (float)g1[j] * sgn(s, j);
                    y[j + 4] = db * (float)g2[j] * sgn(s, j + 4);
                }
            }
        }
    }
}

void iq3_s_to_f32(const void *src, float *y, int64_t n) {
    dq_init();
    const struct block_iq3_s *x = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = lb_fp16_to_f32(x[i].d);
        const uint8_t *qs = x[i].qs, *qh = x[i].qh, *signs = x[i].signs;
        for (int ib = 0; ib < QK_K / 32; ib += 2, qh += 2) {
            const float db[2] = {d * (float)(1 + 2 * (x[i].scales[ib / 2] & 0xf)),
                                 d * (float)(1 + 2 * (x[i].scales[ib / 2] >> 4))};
            for (int h = 0; h < 2; h++, qs += 8, signs += 4)
                for (int l = 0; l < 4; l++, y += 8) {
                    const uint8_t *g1 = dq_iq3s[qs[2 * l] | ((qh[h] << (8 - 2 * l)) & 256)];
                    const uint8_t *g2 = dq_iq3s[qs[2 * l + 1] | ((qh[h] << (7 - 2 * l)) & 256)];
                    for (int j = 0; j < 4; j++) {
                        y[j] = db[h] * (float)g1[j] * sgn(signs[l], j);
                        y[j + 4] = db[h] * (float)g2[j] * sgn(signs[l], j + 4);
                    }
                }
        }
    }
}

void iq1_s_to_f32(const void *src, float *y, int64_t n) {
    dq_init();
    const struct block_iq1_s *x = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = lb_fp16_to_f32(x[i].d);
        const uint8_t *qs = x[i].qs;
        for (int ib = 0; ib < QK_K / 32; ib++, qs += 4) {
            const uint16_t qh = x[i].qh[ib];
            const float dl = d * (float)(2 * ((qh >> 12) & 7) + 1);
            const float delta = qh & 0x8000 ? -IQ1S_DELTA : IQ1S_DELTA;
            for (int l = 0; l < 4; l++, y += 8) {
                const int8_t *g = dq_iq1s[qs[l] | (((qh >> 3 * l) & 7) << 8)];
                for (int j = 0; j < 8; j++) y[j] = dl * ((float)g[j] + delta);
            }
        }
    }
}

/* IQ1_M's fp16 super-block scale, spread over the top nibbles of the four u16 scale words */
static inline lb_fp16 iq1_m_d(const uint16_t sc[4]) {
    return (lb_fp16)((sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) |
                     (sc[3] & 0xf000));
}

void iq1_m_to_f32(const void *src, float *y, int64_t n) {
    dq_init();
    const struct block_iq1_m *x = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        uint16_t sc[4];
        memcpy(sc, x[i].scales, sizeof sc);
        const float d = lb_fp16_to_f32(iq1_m_d(sc));
        const uint8_t *qs = x[i].qs, *qh = x[i].qh;
        for (int ib = 0; ib < QK_K / 32; ib++, qs += 4, qh += 2) {
            const float dl1 = d * (float)(2 * ((sc[ib / 2] >> (6 * (ib % 2) + 0)) & 7) + 1);
            const float dl2 = d * (float)(2 * ((sc[ib / 2] >> (6 * (ib % 2) + 3)) & 7) + 1);
            const int idx[4] = {qs[0] | ((qh[0] << 8) & 0x700), qs[1] | ((qh[0] << 4) & 0x700),
                                qs[2] | ((qh[1] << 8) & 0x700), qs[3] | ((qh[1] << 4) & 0x700)};
            const float delta[4] = {
                qh[0] & 0x08 ? -IQ1M_DELTA : IQ1M_DELTA, qh[0] & 0x80 ? -IQ1M_DELTA : IQ1M_DELTA,
                qh[1] & 0x08 ? -IQ1M_DELTA : IQ1M_DELTA, qh[1] & 0x80 ? -IQ1M_DELTA : IQ1M_DELTA};
            for (int l = 0; l < 4; l++, y += 8) {
                const int8_t *g = dq_iq1s[idx[l]];
                const float dl = l < 2 ? dl1 : dl2;
                for (int j = 0; j < 8; j++) y[j] = dl * ((float)g[j] + delta[l]);
            }
        }
    }
}

/* ===== TQ1_0, TQ2_0 (quantize_row_tq*_ref; no importance matrix) ===== */

static inline int trit(float v) { return (int)lroundf(v) + 1; } /* -1, 0, 1 -> 0, 1, 2 */

static void tq1_0_rows(const float *x, struct block_tq1_0 *y, int64_t n) {
    for (int64_t i = 0; i < n / QK_K; i++) {
        float amax = 0.0f;
        for (int j = 0; j < QK_K; j++) amax = amax > fabsf(x[j]) ? amax : fabsf(x[j]);
        const float d = amax, id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = lb_f32_to_fp16(d);
        /* 5 trits per byte: bytes 0..31 over 160 weights, 32..47 over 80, then 4 per byte */
        for (int m = 0; m < 32; m++) {
            uint8_t q = 0;
            for (int k = 0; k < 5; k++) q = (uint8_t)(q * 3 + trit(x[m + 32 * k] * id));
            y[i].qs[m] = (uint8_t)(((uint16_t)q * 256 + (243 - 1)) / 243);
        }
        x += 160;
        for (int m = 0; m < 16; m++) {
            uint8_t q = 0;
            for (int k = 0; k < 5; k++) q = (uint8_t)(q * 3 + trit(x[m + 16 * k] * id));
            y[i].qs[32 + m] = (uint8_t)(((uint16_t)q * 256 + (243 - 1)) / 243);
        }
        x += 80;
        for (int j = 0; j < 4; j++) {
            uint8_t q = 0;
            for (int k = 0; k < 4; k++) q = (uint8_t)(q * 3 + trit(x[j + 4 * k] * id));
            q = (uint8_t)(q * 3); /* the first trit to the most significant place */
            y[i].qh[j] = (uint8_t)(((uint16_t)q * 256 + (243 - 1)) / 243);
        }
        x += 16;
    }
}

static void tq2_0_rows(const float *x, struct block_tq2_0 *y, int64_t n) {
    for (int64_t i = 0; i < n / QK_K; i++) {
        float amax = 0.0f;
        for (int j = 0; j < QK_K; j++) amax = amax > fabsf(x[j]) ? amax : fabsf(x[j]);
        const float d = amax, id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = lb_f32_to_fp16(d);
        for (int j = 0; j < QK_K / 4; j += 32, x += 128)
            for (int m = 0; m < 32; m++) {
                uint8_t q = 0;
                for (int k = 0; k < 4; k++)
                    q = (uint8_t)(q + ((trit(x[m + 32 * k] * id) & 3) << (2 * k)));
                y[i].qs[j + m] = q;
            }
    }
}

/* ===== IQ4_XS (quantize_row_iq4_nl_impl with super-block 256, block 32, ntry 7) ===== */

static int best_index_int8(const int8_t *val, float x) {
    if (x <= (float)val[0]) return 0;
    if (x >= (float)val[15]) return 15;
    int ml = 0, mu = 15;
    while (mu - ml > 1) {
        const int mav = (ml + mu) / 2;
        if (x < (float)val[mav]) mu = mav;
        else ml = mav;
    }
    return x - (float)val[mu - 1] < (float)val[mu] - x ? mu - 1 : mu;
}

static void iq4_xs_block(const float *x, struct block_iq4_xs *y, const float *qw) {
    const int8_t *val = kvalues_iq4nl;
    float sigma2 = 0.0f, weight[32], scales[QK_K / 32];
    uint8_t L[QK_K];
    for (int j = 0; j < QK_K; j++) sigma2 += x[j] * x[j];
    sigma2 *= 2.f / QK_K;
    memset(y->qs, 0, sizeof y->qs);
    y->d = lb_f32_to_fp16(0.f);
    float max_scale = 0.0f, amax_scale = 0.0f;
    for (int ib = 0; ib < QK_K / 32; ib++) {
        const float *xb = x + 32 * ib;
        uint8_t *Lb = L + 32 * ib;
        for (int j = 0; j < 32; j++)
            weight[j] = qw ? qw[32 * ib + j] * sqrtf(sigma2 + xb[j] * xb[j]) : xb[j] * xb[j];
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < 32; j++)
            if (fabsf(xb[j]) > amax) {
                amax = fabsf(xb[j]);
                max = xb[j];
            }
        if (amax < GROUP_MAX_EPS) {
            scales[ib] = 0;
            continue;
        }
        float d = -max / (float)val[0], id = 1 / d, sumqx = 0, sumq2 = 0;
        for (int j = 0; j < 32; j++) {
            Lb[j] = (uint8_t)best_index_int8(val, id * xb[j]);
            const float q = (float)val[Lb[j]];
            sumqx += weight[j] * q * xb[j];
            sumq2 += weight[j] * q * q;
        }
        d = sumq2 > 0 ? sumqx / sumq2 : 0.f;
        float best = d * sumqx;
        for (int itry = -7; itry <= 7; itry++) {
            id = (float)(itry + val[0]) / max;
            sumqx = sumq2 = 0;
            for (int j = 0; j < 32; j++) {
                const float q = (float)val[best_index_int8(val, id * xb[j])];
                sumqx += weight[j] * q * xb[j];
                sumq2 += weight[j] * q * q;
            }
            if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
                d = sumqx / sumq2;
                best = d * sumqx;
            }
        }
        scales[ib] = d;
        if (fabsf(d) > amax_scale) {
            amax_scale = fabsf(d);
            max_scale = d;
        }
    }
    y->scales_h = 0;
    const float d = -max_scale / 32;
    y->d = lb_f32_to_fp16(d);
    const float id = d != 0.0f ? 1 / d : 0.f;
    for (int ib = 0; ib < QK_K / 32; ib++) {
        int l = clampi(lb_nearest_int(id * scales[ib]), -32, 31);
        const float dl = d * (float)l, idl = dl != 0.0f ? 1 / dl : 0.f;
        for (int j = 0; j < 32; j++)
            L[32 * ib + j] = (uint8_t)best_index_int8(val, idl * x[32 * ib + j]);
        l += 32;
        if (ib % 2 == 0) y->scales_l[ib / 2] = (uint8_t)(l & 0xf);
        else y->scales_l[ib / 2] |= (uint8_t)((l & 0xf) << 4);
        y->scales_h |= (uint16_t)((l >> 4) << 2 * (ib % 8));
    }
    for (int i = 0; i < QK_K / 32; i++)
        for (int j = 0; j < 16; j++)
            y->qs[16 * i + j] = (uint8_t)(L[32 * i + j] | L[32 * i + 16 + j] << 4);
}

/* ===== shared pieces of the grid quantizers ===== */

/* magnitudes of 8 weights and their sign bits, with an even number of flips: when odd, the
 * weight of least w·x² takes the other sign (its magnitude is stored negated) */
static uint8_t even_signs(const float *xb, const float *w, float *xval) {
    int nflip = 0;
    uint8_t s = 0;
    for (int i = 0; i < 8; i++) {
        if (xb[i] >= 0) {
            xval[i] = xb[i];
        } else {
            xval[i] = -xb[i];
            nflip++;
            s |= (uint8_t)(1u << i);
        }
    }
    if (nflip % 2) {
        int im = 0;
        float min = w[0] * xb[0] * xb[0];
        for (int i = 1; i < 8; i++) {
            const float ax = w[i] * xb[i] * xb[i];
            if (ax < min) {
                min = ax;
                im = i;
            }
        }
        xval[im] = -xval[im];
        s ^= (uint8_t)(1u << im);
    }
    return s & 127;
}

/* all 8 signs, magnitudes positive (IQ2_S, IQ3_S) */
static uint8_t all_signs(const float *xb, float *xval) {
    uint8_t s = 0;
    for (int i = 0; i < 8; i++) {
        if (xb[i] >= 0) {
            xval[i] = xb[i];
        } else {
            xval[i] = -xb[i];
            s |= (uint8_t)(1u << i);
        }
    }
    return s;
}

/* levels of xval under inverse scale id: nearest_int(0.5·(id·x - 1)) in [0, kmax - 1] */
static inline int8_t level_of(float id, float x, int kmax) {
    return (int8_t)clampi(lb_nearest_int(0.5f * (id * x - 1)), 0, kmax - 1);
}

/* Σ w·x·q and Σ w·q² with q = 2L + 1 */
static void fit_sums(int n, const float *w, const float *xval, const int8_t *L, float *sumqx,
                     float *sumq2) {
    float a = 0, b = 0;
    for (int i = 0; i < n; i++) {
        const float q = (float)(2 * L[i] + 1);
        a += w[i] * xval[i] * q;
        b += w[i] * q * q;
    }
    *sumqx = a;
    *sumq2 = b;
}

/* the groups of one block at inverse scale id: levels, then grid points (off-grid ones replaced
 * by their best neighbour at scale 1/id); on_grid[k] whether group k was a grid point */
static void grid_round(const struct lattice *lt, int ngroups, float id, int kmax, const float *xval,
                       const float *waux, int8_t *L, bool *on_grid) {
    const int dim = lt->dim;
    const float this_scale = 1 / id;
    for (int k = 0; k < ngroups; k++) {
        for (int i = 0; i < dim; i++) L[dim * k + i] = level_of(id, xval[dim * k + i], kmax);
        const int u = lattice_u(lt, L + dim * k);
        on_grid[k] = lt->map[u] >= 0;
        if (!on_grid[k])
            lattice_best(lt, lattice_list(lt, u), xval + dim * k, waux + dim * k, this_scale,
                         L + dim * k);
    }
}

/* the grid index of group levels L (which must be a grid point) */
static int grid_index(const struct lattice *lt, const int8_t *L) {
    const int gi = lt->map[lattice_u(lt, L)];
    if (gi < 0) BUG("iquants: a quantized group is not on the grid");
    return gi;
}

/* the scale search shared by IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S (block of n = ngroups·dim): nis
 * steps of step around (2·kmax - 1)/max, then the off-grid groups re-rounded at the best scale
 * (all groups when refit_all, IQ3_S's quirk); L gets the levels, returns the scale */
static float grid_search(const struct lattice *lt, int ngroups, int kmax, int nis, float step,
                         float max, const float *xval, const float *weight, const float *waux,
                         bool refit_all, int8_t *L) {
    const int dim = lt->dim, n = ngroups * dim;
    int8_t Laux[32];
    bool on_grid[8], on_grid_aux[8];
    float best = 0, scale = max / (float)(2 * kmax - 1);
    for (int k = 0; k < ngroups; k++) on_grid[k] = !refit_all;
    for (int is = -nis; is <= nis; is++) {
        const float id = ((float)(2 * kmax - 1) + (float)is * step) / max;
        grid_round(lt, ngroups, id, kmax, xval, waux, Laux, on_grid_aux);
        float sumqx, sumq2;
        fit_sums(n, weight, xval, Laux, &sumqx, &sumq2);
        if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
            scale = sumqx / sumq2;
            best = scale * sumqx;
            memcpy(L, Laux, (size_t)n);
            memcpy(on_grid, on_grid_aux, sizeof on_grid);
        }
    }
    int n_off = 0;
    for (int k = 0; k < ngroups; k++) n_off += !on_grid[k];
    if (n_off > 0 && scale > 0) {
        const float id = 1 / scale;
        for (int k = 0; k < ngroups; k++) {
            if (on_grid[k] && !refit_all) continue;
            for (int i = 0; i < dim; i++) L[dim * k + i] = level_of(id, xval[dim * k + i], kmax);
            const int u = lattice_u(lt, L + dim * k);
            if (lt->map[u] < 0)
                lattice_best(lt, lattice_list(lt, u), xval + dim * k, waux + dim * k, scale,
                             L + dim * k);
        }
        float sumqx, sumq2;
        fit_sums(n, weight, xval, L, &sumqx, &sumq2);
        if (sumq2 > 0) scale = sumqx / sumq2;
    }
    return scale;
}

/* σ²-scaled imatrix weights: w_i = qw_i·sqrt(σ² + x_i²) */
static void im_weights(const float *qw, const float *x, float sigma2, int n, float *w) {
    for (int i = 0; i < n; i++) w[i] = qw[i] * sqrtf(sigma2 + x[i] * x[i]);
}

static float sum_sq(const float *x, int n) {
    float s = 0;
    for (int i = 0; i < n; i++) s += x[i] * x[i];
    return s;
}

/* ===== IQ2_XXS (imatrix required) ===== */

static void iq2_xxs_row(const float *x, struct block_iq2_xxs *y, int64_t n, const float *qw) {
    const struct lattice *lt = lattice_get(LAT_IQ2XXS);
    const int kMaxQ = 3;
    float scales[QK_K / 32], weight[32], xval[32], waux[32];
    int8_t L[32], Laux[32];
    uint8_t block_signs[4];
    uint32_t q2[2 * (QK_K / 32)];
    bool on_grid[4];
    for (int64_t ibl = 0; ibl < n / QK_K; ibl++) {
        const float *xbl = x + QK_K * ibl;
        y[ibl].d = lb_f32_to_fp16(0.f);
        memset(q2, 0, sizeof q2);
        float max_scale = 0;
        const float sigma2 = sum_sq(xbl, QK_K) / QK_K;
        for (int ib = 0; ib < QK_K / 32; ib++) {
            const float *xb = xbl + 32 * ib;
            im_weights(qw + QK_K * ibl + 32 * ib, xb, sigma2, 32, weight);
            for (int i = 0; i < 32; i++) waux[i] = sqrtf(weight[i]);
            for (int k = 0; k < 4; k++)
                block_signs[k] = even_signs(xb + 8 * k, weight + 8 * k, xval + 8 * k);
            float max = xval[0];
            for (int i = 1; i < 32; i++) max = max > xval[i] ? max : xval[i];
            if (max < GROUP_MAX_EPS) {
                scales[ib] = 0;
                memset(L, 0, 32);
                continue;
            }
            float scale = gq_make_qp_quants(32, kMaxQ + 1, xval, (uint8_t *)L, weight);
            const float eff_max = scale * (float)kMaxQ;
            if (eff_max <= 0) {
                scales[ib] = 0;
                memset(L, 0, 32);
                continue;
            }
            float best = 0;
            for (int is = -6; is <= 6; is++) {
                const float id = ((float)(2 * kMaxQ - 1) + (float)is * 0.1f) / eff_max;
                grid_round(lt, 4, id, kMaxQ, xval, waux, Laux, on_grid);
                float sumqx, sumq2;
                fit_sums(32, weight, xval, Laux, &sumqx, &sumq2);
                if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
                    scale = sumqx / sumq2;
                    best = scale * sumqx;
                    memcpy(L, Laux, 32);
                }
            }
            if (scale > 0) { /* every group re-rounded at the final scale */
                const float id = 1 / scale;
                for (int k = 0; k < 4; k++) {
                    int8_t Lk[8];
                    for (int i = 0; i < 8; i++) Lk[i] = level_of(id, xval[8 * k + i], kMaxQ);
                    const int u = lattice_u(lt, Lk);
                    int gi = lt->map[u];
                    if (gi < 0)
                        gi = lattice_best(lt, lattice_list(lt, u), xval + 8 * k, waux + 8 * k,
                                          scale, L + 8 * k);
                    const int8_t *pg = lt->grid + (size_t)gi * 8;
                    for (int i = 0; i < 8; i++) L[8 * k + i] = (int8_t)((pg[i] - 1) / 2);
                }
                float sumqx, sumq2;
                fit_sums(32, weight, xval, L, &sumqx, &sumq2);
                if (sumq2 > 0) scale = sumqx / sumq2;
            }
            if (scale < 0) { /* "should never happen": flip the scale and the signs */
                scale = -scale;
                for (int k = 0; k < 4; k++) block_signs[k] = (uint8_t)(~block_signs[k] & 127);
            }
            for (int k = 0; k < 4; k++) {
                q2[2 * ib] |= (uint32_t)grid_index(lt, L + 8 * k) << 8 * k;
                q2[2 * ib + 1] |= (uint32_t)block_signs[k] << 7 * k;
            }
            scales[ib] = scale;
            max_scale = max_scale > scale ? max_scale : scale;
        }
        if (!(max_scale != 0)) {
            memset(y[ibl].qs, 0, sizeof y[ibl].qs);
            continue;
        }
        const float d = max_scale / 31;
        y[ibl].d = lb_f32_to_fp16(d);
        const float id = 1 / d;
        for (int ib = 0; ib < QK_K / 32; ib++) {
            const int l = clampi(lb_nearest_int(0.5f * (id * scales[ib] - 1)), 0, 15);
            q2[2 * ib + 1] |= (uint32_t)l << 28;
        }
        memcpy(y[ibl].qs, q2, sizeof q2);
    }
}

/* ===== IQ2_XS (imatrix required) and IQ2_S ===== */

static void iq2_xs_row(const float *x, struct block_iq2_xs *y, int64_t n, const float *qw) {
    const struct lattice *lt = lattice_get(LAT_IQ2XS);
    const int kMaxQ = 3;
    float scales[QK_K / 16], weight[16], xval[16], waux[16];
    int8_t L[16];
    uint8_t block_signs[2];
    uint16_t q2[2 * (QK_K / 16)];
    for (int64_t ibl = 0; ibl < n / QK_K; ibl++) {
        const float *xbl = x + QK_K * ibl;
        y[ibl].d = lb_f32_to_fp16(0.f);
        memset(q2, 0, sizeof q2);
        memset(y[ibl].scales, 0, sizeof y[ibl].scales);
        float max_scale = 0;
        const float sigma2 = sum_sq(xbl, QK_K) / QK_K;
        for (int ib = 0; ib < QK_K / 16; ib++) {
            const float *xb = xbl + 16 * ib;
            im_weights(qw + QK_K * ibl + 16 * ib, xb, sigma2, 16, weight);
            for (int i = 0; i < 16; i++) waux[i] = sqrtf(weight[i]);
            for (int k = 0; k < 2; k++)
                block_signs[k] = even_signs(xb + 8 * k, weight + 8 * k, xval + 8 * k);
            float max = xval[0];
            for (int i = 1; i < 16; i++) max = max > xval[i] ? max : xval[i];
            memset(L, 0, 16);
            if (max < GROUP_MAX_EPS) {
                scales[ib] = 0;
                continue;
            }
            float scale = grid_search(lt, 2, kMaxQ, 9, 0.1f, max, xval, weight, waux, false, L);
            if (scale < 0) {
                scale = -scale;
                for (int k = 0; k < 2; k++) block_signs[k] = (uint8_t)(~block_signs[k] & 127);
            }
            for (int k = 0; k < 2; k++)
                q2[2 * ib + k] = (uint16_t)(grid_index(lt, L + 8 * k) | block_signs[k] << 9);
            scales[ib] = scale;
            max_scale = max_scale > scale ? max_scale : scale;
        }
        if (!(max_scale != 0)) {
            memset(y[ibl].qs, 0, sizeof y[ibl].qs);
            continue;
        }
        const float d = max_scale / 31;
        y[ibl].d = lb_f32_to_fp16(d);
        const float id = 1 / d;
        for (int ib = 0; ib < QK_K / 16; ib++) {
            const int l = clampi(lb_nearest_int(0.5f * (id * scales[ib] - 1)), 0, 15);
            if (ib % 2 == 0) y[ibl].scales[ib / 2] = (uint8_t)l;
            else y[ibl].scales[ib / 2] |= (uint8_t)(l << 4);
        }
        memcpy(y[ibl].qs, q2, sizeof q2);
    }
}

static void iq2_s_row(const float *x, struct block_iq2_s *y, int64_t n, const float *qw) {
    const struct lattice *lt = lattice_get(LAT_IQ2S);
    const int kMaxQ = 3;
    float scales[QK_K / 16], weight[16], xval[16], waux[16];
    int8_t L[16];
    uint8_t block_signs[2];
    for (int64_t ibl = 0; ibl < n / QK_K; ibl++) {
        const float *xbl = x + QK_K * ibl;
        memset(&y[ibl], 0, sizeof y[ibl]);
        float max_scale = 0;
        const float sigma2 = 2 * sum_sq(xbl, QK_K) / QK_K;
        for (int ib = 0; ib < QK_K / 16; ib++) {
            const float *xb = xbl + 16 * ib;
            if (qw) im_weights(qw + QK_K * ibl + 16 * ib, xb, sigma2, 16, weight);
            else
                for (int i = 0; i < 16; i++) weight[i] = 0.25f * sigma2 + xb[i] * xb[i];
            for (int i = 0; i < 16; i++) waux[i] = sqrtf(weight[i]);
            for (int k = 0; k < 2; k++) block_signs[k] = all_signs(xb + 8 * k, xval + 8 * k);
            float max = xval[0];
            for (int i = 1; i < 16; i++) max = max > xval[i] ? max : xval[i];
            memset(L, 0, 16);
            if (max < GROUP_MAX_EPS_IQ2_S) {
                scales[ib] = 0;
                continue;
            }
            float scale = grid_search(lt, 2, kMaxQ, 9, 0.1f, max, xval, weight, waux, false, L);
            if (scale < 0) {
                scale = -scale;
                for (int k = 0; k < 2; k++) block_signs[k] = (uint8_t)~block_signs[k];
            }
            for (int k = 0; k < 2; k++) {
                const int gi = grid_index(lt, L + 8 * k), i8 = 2 * ib + k;
                y[ibl].qs[i8] = (uint8_t)(gi & 255);
                y[ibl].qh[i8 / 4] |= (uint8_t)((gi >> 8) << 2 * (i8 % 4));
                y[ibl].qs[QK_K / 8 + i8] = block_signs[k];
            }
            scales[ib] = scale;
            max_scale = max_scale > scale ? max_scale : scale;
        }
        if (!(max_scale != 0)) continue;
        const float d = max_scale / 31;
        y[ibl].d = lb_f32_to_fp16(d * 0.9875f);
        const float id = 1 / d;
        for (int ib = 0; ib < QK_K / 16; ib++) {
            const int l = clampi(lb_nearest_int(0.5f * (id * scales[ib] - 1)), 0, 15);
            if (ib % 2 == 0) y[ibl].scales[ib / 2] = (uint8_t)l;
            else y[ibl].scales[ib / 2] |= (uint8_t)(l << 4);
        }
    }
}

/* ===== IQ3_XXS and IQ3_S ===== */

static void iq3_xxs_row(const float *x, struct block_iq3_xxs *y, int64_t n, const float *qw) {
    const struct lattice *lt = lattice_get(LAT_IQ3XXS);
    const int kMaxQ = 8;
    float scales[QK_K / 32], weight[32], xval[32], waux[32];
    int8_t L[32];
    uint8_t block_signs[8], q3[3 * (QK_K / 8)];
    uint32_t sas[QK_K / 32];
    for (int64_t ibl = 0; ibl < n / QK_K; ibl++) {
        const float *xbl = x + QK_K * ibl;
        y[ibl].d = lb_f32_to_fp16(0.f);
        memset(q3, 0, sizeof q3);
        memset(sas, 0, sizeof sas);
        float max_scale = 0;
        const float sigma2 = 2 * sum_sq(xbl, QK_K) / QK_K;
        for (int ib = 0; ib < QK_K / 32; ib++) {
            const float *xb = xbl + 32 * ib;
            if (qw) im_weights(qw + QK_K * ibl + 32 * ib, xb, sigma2, 32, weight);
            else
                for (int i = 0; i < 32; i++) weight[i] = xb[i] * xb[i];
            for (int i = 0; i < 32; i++) waux[i] = sqrtf(weight[i]);
            for (int k = 0; k < 4; k++)
                block_signs[k] = even_signs(xb + 8 * k, weight + 8 * k, xval + 8 * k);
            float max = xval[0];
            for (int i = 1; i < 32; i++) max = max > xval[i] ? max : xval[i];
            memset(L, 0, 32);
            if (max < GROUP_MAX_EPS_IQ3_XXS) {
                scales[ib] = 0;
                continue;
            }
            float scale = grid_search(lt, 8, kMaxQ, 15, 0.2f, max, xval, weight, waux, false, L);
            if (scale < 0) {
                scale = -scale;
                for (int k = 0; k < 4; k++) block_signs[k] = (uint8_t)(~block_signs[k] & 127);
            }
            for (int k = 0; k < 8; k++) q3[8 * ib + k] = (uint8_t)grid_index(lt, L + 4 * k);
            sas[ib] = (uint32_t)block_signs[0] | (uint32_t)block_signs[1] << 7 |
                      (uint32_t)block_signs[2] << 14 | (uint32_t)block_signs[3] << 21;
            scales[ib] = scale;
            max_scale = max_scale > scale ? max_scale : scale;
        }
        if (!(max_scale != 0)) {
            memset(y[ibl].qs, 0, sizeof y[ibl].qs);
            continue;
        }
        const float d = max_scale / 31;
        y[ibl].d = lb_f32_to_fp16(d * 1.0125f);
        const float id = 1 / d;
        for (int ib = 0; ib < QK_K / 32; ib++) {
            const int l = clampi(lb_nearest_int(0.5f * (id * scales[ib] - 1)), 0, 15);
            sas[ib] |= (uint32_t)l << 28;
        }
        memcpy(y[ibl].qs, q3, QK_K / 4);
        memcpy(y[ibl].qs + QK_K / 4, sas, sizeof sas);
    }
}

static void iq3_s_row(const float *x, struct block_iq3_s *y, int64_t n, const float *qw) {
    const struct lattice *lt = lattice_get(LAT_IQ3S);
    const int kMaxQ = 8, bs = 32;
    float scales[QK_K / 32], weight[32], xval[32], waux[32];
    int8_t L[32];
    uint8_t block_signs[4];
    for (int64_t ibl = 0; ibl < n / QK_K; ibl++) {
        const float *xbl = x + QK_K * ibl;
        memset(&y[ibl], 0, sizeof y[ibl]);
        uint8_t *qs = y[ibl].qs, *signs = y[ibl].signs;
        float max_scale = 0;
        const float sigma2 = 2 * sum_sq(xbl, QK_K) / QK_K;
        for (int ib = 0; ib < QK_K / bs; ib++) {
            const float *xb = xbl + bs * ib;
            if (qw) im_weights(qw + QK_K * ibl + bs * ib, xb, sigma2, bs, weight);
            else
                for (int i = 0; i < bs; i++) weight[i] = xb[i] * xb[i];
            for (int i = 0; i < bs; i++) waux[i] = sqrtf(weight[i]);
            for (int k = 0; k < bs / 8; k++) block_signs[k] = all_signs(xb + 8 * k, xval + 8 * k);
            float max = xval[0];
            for (int i = 1; i < bs; i++) max = max > xval[i] ? max : xval[i];
            memset(L, 0, (size_t)bs);
            if (!(max != 0)) {
                scales[ib] = 0;
                continue;
            }
            /* ggml re-rounds every group here, on the grid or not */
            float scale = grid_search(lt, bs / 4, kMaxQ, 9, 0.2f, max, xval, weight, waux, true, L);
            if (scale < 0) {
                scale = -scale;
                for (int k = 0; k < bs / 8; k++) block_signs[k] = (uint8_t)~block_signs[k];
            }
            for (int k = 0; k < bs / 4; k++) {
                const int gi = grid_index(lt, L + 4 * k), j = ib * (bs / 4) + k;
                qs[k] = (uint8_t)(gi & 255);
                y[ibl].qh[j / 8] |= (uint8_t)((gi >> 8) << (j % 8));
            }
            qs += bs / 4;
            memcpy(signs, block_signs, (size_t)(bs / 8));
            signs += bs / 8;
            scales[ib] = scale;
            max_scale = max_scale > scale ? max_scale : scale;
        }
        if (!(max_scale != 0)) continue;
        const float d = max_scale / 31;
        y[ibl].d = lb_f32_to_fp16(d * 1.033f);
        const float id = 1 / d;
        for (int ib = 0; ib < QK_K / bs; ib += 2) {
            const int l1 = clampi(lb_nearest_int(0.5f * (id * scales[ib] - 1)), 0, 15);
            const int l2 = clampi(lb_nearest_int(0.5f * (id * scales[ib + 1] - 1)), 0, 15);
            y[ibl].scales[ib / 2] = (uint8_t)(l1 | l2 << 4);
        }
    }
}

/* ===== IQ1_S (imatrix required) and IQ1_M ===== */

/* iq1_find_best_neighbour2: the listed point whose levels, as values xg, best fit xval at scale;
 * when the list gives none (only on NaN), every point, where ggml compares against xval[i] with
 * the point's index i (a slip kept for the same bytes) */
static int iq1_best(const struct lattice *lt, const uint16_t *list, const float *xval,
                    const float *w, float scale, const float *xg, int8_t *L) {
    const int n = list[0];
    float best = FLT_MAX;
    int gi = -1;
    for (int j = 1; j <= n; j++) {
        const int8_t *pg = lt->grid + (size_t)list[j] * 8;
        float d2 = 0;
        for (int i = 0; i < 8; i++) {
            const float q = xg[(pg[i] - 1) / 2];
            const float diff = scale * q - xval[i];
            d2 += w[i] * diff * diff;
        }
        if (d2 < best) {
            best = d2;
            gi = list[j];
        }
    }
    for (int i = 0; gi < 0 && i < lt->n; i++) {
        const int8_t *pg = lt->grid + (size_t)i * 8;
        float d2 = 0;
        for (int j = 0; j < 8; j++) {
            const float q = xg[(pg[j] - 1) / 2];
            const float diff = scale * q - xval[i < 8 ? i : 7];
            d2 += w[j] * diff * diff;
        }
        if (d2 < best) {
            best = d2;
            gi = i;
        }
    }
    if (gi < 0) BUG("iquants: no IQ1 grid point (NaN input?)");
    const int8_t *pg = lt->grid + (size_t)gi * 8;
    for (int i = 0; i < 8; i++) L[i] = (int8_t)((pg[i] - 1) / 2);
    return gi;
}

static int iq1_sort_cmp(const void *a, const void *b) {
    const float l = *(const float *)a, r = *(const float *)b;
    return l < r ? -1 : l > r ? 1 : 0;
}

/* the block's values sorted ascending with their positions, as ggml lays them out for qsort
 * (pairs of float value and int index, compared on the value; the C library's qsort, as ggml's,
 * decides the order of equal values) */
static void iq1_sort(const float *xb, int n, float *pairs, int *order) {
    for (int j = 0; j < n; j++) {
        pairs[2 * j] = xb[j];
        memcpy(&pairs[2 * j + 1], &j, sizeof j);
    }
    qsort(pairs, (size_t)n, 2 * sizeof(float), iq1_sort_cmp);
    for (int j = 0; j < n; j++) memcpy(&order[j], &pairs[2 * j + 1], sizeof(int));
}

static void iq1_s_row(const float *x, struct block_iq1_s *y, int64_t n, const float *qw) {
    const struct lattice *lt = lattice_get(LAT_IQ1S);
    enum { BS = 32 };
    const float x_p[3] = {-1 + IQ1S_DELTA, IQ1S_DELTA, 1 + IQ1S_DELTA};
    const float x_m[3] = {-1 - IQ1S_DELTA, -IQ1S_DELTA, 1 - IQ1S_DELTA};
    float scales[QK_K / BS], weight[BS], sumx[BS + 1], sumw[BS + 1], pairs[2 * BS];
    int order[BS];
    int8_t L[BS], shifts[QK_K / BS];
    uint16_t index[BS / 8];
    for (int64_t ibl = 0; ibl < n / QK_K; ibl++) {
        const float *xbl = x + QK_K * ibl;
        y[ibl].d = lb_f32_to_fp16(0.f);
        memset(y[ibl].qs, 0, sizeof y[ibl].qs);
        memset(y[ibl].qh, 0, sizeof y[ibl].qh);
        float max_scale = 0;
        const float sigma2 = 2 * sum_sq(xbl, QK_K) / QK_K;
        for (int ib = 0; ib < QK_K / BS; ib++) {
            const float *xb = xbl + BS * ib;
            im_weights(qw + QK_K * ibl + BS * ib, xb, sigma2, BS, weight);
            float max = fabsf(xb[0]);
            for (int i = 1; i < BS; i++) max = max > fabsf(xb[i]) ? max : fabsf(xb[i]);
            if (max < GROUP_MAX_EPS_IQ1_S) {
                scales[ib] = 0;
                shifts[ib] = 1;
                memset(L, 1, BS);
                continue;
            }
            /* the exact weighted least-squares split of the sorted values into 3 groups */
            iq1_sort(xb, BS, pairs, order);
            sumx[0] = sumw[0] = 0;
            for (int j = 0; j < BS; j++) {
                const int i = order[j];
                sumx[j + 1] = sumx[j] + weight[i] * xb[i];
                sumw[j + 1] = sumw[j] + weight[i];
            }
            float best_score = -FLT_MAX, scale = max;
            int besti1 = -1, besti2 = -1, best_shift = 0;
            for (int i1 = 0; i1 <= BS; i1++)
                for (int i2 = i1; i2 <= BS; i2++) {
                    for (int sh = 0; sh < 2; sh++) {
                        const float *v = sh == 0 ? x_p : x_m;
                        const float sumqx = (sumx[i1] - sumx[0]) * v[0] +
                                            (sumx[i2] - sumx[i1]) * v[1] +
                                            (sumx[BS] - sumx[i2]) * v[2];
                        const float sumq2 = (sumw[i1] - sumw[0]) * v[0] * v[0] +
                                            (sumw[i2] - sumw[i1]) * v[1] * v[1] +
                                            (sumw[BS] - sumw[i2]) * v[2] * v[2];
                        if (sumq2 > 0 && sumqx * sumqx > best_score * sumq2) {
                            scale = sumqx / sumq2;
                            best_score = scale * sumqx;
                            besti1 = i1;
                            besti2 = i2;
                            best_shift = sh == 0 ? 1 : -1;
                        }
                    }
                }
            if (besti1 < 0 || besti2 < 0 || best_shift == 0) {
                scales[ib] = 0;
                shifts[ib] = 1;
                memset(L, 1, BS);
                continue;
            }
            for (int j = 0; j < besti1; j++) L[order[j]] = 0;
            for (int j = besti1; j < besti2; j++) L[order[j]] = 1;
            for (int j = besti2; j < BS; j++) L[order[j]] = 2;
            if (scale < 0) {
                for (int j = 0; j < BS; j++) L[j] = (int8_t)(2 - L[j]);
                scale = -scale;
                best_shift = -best_shift;
            }
            bool all_on_grid = true;
            const float *xx = best_shift == 1 ? x_p : x_m;
            for (int k = 0; k < BS / 8; k++) {
                const int u = lattice_u(lt, L + 8 * k);
                int gi = lt->map[u];
                if (gi < 0) {
                    all_on_grid = false;
                    gi = iq1_best(lt, lattice_list(lt, u), xb + 8 * k, weight + 8 * k, scale, xx,
                                  L + 8 * k);
                }
                index[k] = (uint16_t)gi;
            }
            if (!all_on_grid) {
                float sumqx = 0, sumq2 = 0;
                for (int k = 0; k < BS / 8; k++) {
                    const int8_t *pg = lt->grid + (size_t)index[k] * 8;
                    for (int j = 0; j < 8; j++) {
                        const float w = weight[8 * k + j], q = xx[(pg[j] - 1) / 2];
                        sumqx += w * q * xb[8 * k + j];
                        sumq2 += w * q * q;
                    }
                }
                if (sumqx > 0 && sumq2 > 0) scale = sumqx / sumq2;
            }
            uint16_t h = 0;
            for (int k = 0; k < BS / 8; k++) {
                y[ibl].qs[(BS / 8) * ib + k] = (uint8_t)(index[k] & 255);
                h |= (uint16_t)((index[k] >> 8) << 3 * k);
            }
            y[ibl].qh[ib] = h;
            scales[ib] = scale;
            shifts[ib] = (int8_t)best_shift;
            max_scale = max_scale > scale ? max_scale : scale;
        }
        if (!(max_scale != 0)) continue;
        const float d = max_scale / 15;
        y[ibl].d = lb_f32_to_fp16(d * 1.125f);
        const float id = 1 / d;
        for (int ib = 0; ib < QK_K / BS; ib++) {
            int l = clampi(lb_nearest_int(0.5f * (id * scales[ib] - 1)), 0, 7);
            if (shifts[ib] == -1) l |= 8;
            y[ibl].qh[ib] |= (uint16_t)(l << 12);
        }
    }
}

static void iq1_m_row(const float *x, struct block_iq1_m *y, int64_t n, const float *qw) {
    const struct lattice *lt = lattice_get(LAT_IQ1S);
    enum { BS = 16 };
    const float x_p[3] = {-1 + IQ1M_DELTA, IQ1M_DELTA, 1 + IQ1M_DELTA};
    const float x_m[3] = {-1 - IQ1M_DELTA, -IQ1M_DELTA, 1 - IQ1M_DELTA};
    static const uint8_t masks[4] = {0x00, 0x80, 0x08, 0x88};
    float scales[QK_K / BS], weight[BS], pairs[2 * BS];
    int order[BS];
    int8_t L[BS], shifts[QK_K / BS];
    uint16_t index[BS / 8];
    for (int64_t ibl = 0; ibl < n / QK_K; ibl++) {
        const float *xbl = x + QK_K * ibl;
        memset(&y[ibl], 0, sizeof y[ibl]);
        float max_scale = 0;
        const float sigma2 = 2 * sum_sq(xbl, QK_K) / QK_K;
        for (int ib = 0; ib < QK_K / BS; ib++) {
            const float *xb = xbl + BS * ib;
            if (qw) im_weights(qw + QK_K * ibl + BS * ib, xb, sigma2, BS, weight);
            else
                for (int i = 0; i < BS; i++) weight[i] = xb[i] * xb[i];
            float max = fabsf(xb[0]);
            for (int i = 1; i < BS; i++) max = max > fabsf(xb[i]) ? max : fabsf(xb[i]);
            if (max < GROUP_MAX_EPS_IQ1_M) {
                scales[ib] = 0;
                shifts[ib] = 0;
                memset(L, 1, BS);
                continue;
            }
            iq1_sort(xb, BS, pairs, order);
            float best_score = -FLT_MAX, scale = max;
            int besti1 = -1, besti2 = -1, best_k = -1;
            /* k: shift of the first and second 8 (0 ++, 1 +-, 2 -+, 3 --); prefix sums per half,
             * the 3-group sums collapse to T·v2 - px[i1] - px[i2] (v0 - v1 = v1 - v2 = -1) */
            float px[2][BS + 1], pw[2][BS + 1];
            px[0][0] = px[1][0] = pw[0][0] = pw[1][0] = 0;
            for (int j = 0; j < BS; j++) {
                const int i = order[j], h = i < BS / 2 ? 0 : 1;
                px[h][j + 1] = px[h][j] + weight[i] * xb[i];
                px[1 - h][j + 1] = px[1 - h][j];
                pw[h][j + 1] = pw[h][j] + weight[i];
                pw[1 - h][j + 1] = pw[1 - h][j];
            }
            const float txs[2] = {px[0][BS], px[1][BS]}, tws[2] = {pw[0][BS], pw[1][BS]};
            const float p2 = x_p[2], m2 = x_m[2];
            const float cp1 = x_p[0] * x_p[0] - x_p[1] * x_p[1];
            const float cp2 = x_p[1] * x_p[1] - x_p[2] * x_p[2];
            const float cm1 = x_m[0] * x_m[0] - x_m[1] * x_m[1];
            const float cm2 = x_m[1] * x_m[1] - x_m[2] * x_m[2];
            for (int i1 = 0; i1 <= BS; i1++)
                for (int i2 = i1; i2 <= BS; i2++) {
                    float qx_p[2], qx_m[2], q2_p[2], q2_m[2], sumqx[4], sumq2[4];
                    for (int h = 0; h < 2; h++) {
                        const float sx = px[h][i1] + px[h][i2];
                        qx_p[h] = txs[h] * p2 - sx;
                        qx_m[h] = txs[h] * m2 - sx;
                        q2_p[h] = tws[h] * p2 * p2 + pw[h][i1] * cp1 + pw[h][i2] * cp2;
                        q2_m[h] = tws[h] * m2 * m2 + pw[h][i1] * cm1 + pw[h][i2] * cm2;
                    }
                    sumqx[0] = qx_p[0] + qx_p[1];
                    sumqx[1] = qx_p[0] + qx_m[1];
                    sumqx[2] = qx_m[0] + qx_p[1];
                    sumqx[3] = qx_m[0] + qx_m[1];
                    sumq2[0] = q2_p[0] + q2_p[1];
                    sumq2[1] = q2_p[0] + q2_m[1];
                    sumq2[2] = q2_m[0] + q2_p[1];
                    sumq2[3] = q2_m[0] + q2_m[1];
                    for (int k = 0; k < 4; k++)
                        if (sumq2[k] > 0 && sumqx[k] * sumqx[k] > best_score * sumq2[k]) {
                            scale = sumqx[k] / sumq2[k];
                            best_score = scale * sumqx[k];
                            besti1 = i1;
                            besti2 = i2;
                            best_k = k;
                        }
                }
            if (besti1 < 0 || besti2 < 0 || best_k < 0) {
                scales[ib] = 0;
                shifts[ib] = 0;
                memset(L, 1, BS);
                continue;
            }
            for (int j = 0; j < besti1; j++) L[order[j]] = 0;
            for (int j = besti1; j < besti2; j++) L[order[j]] = 1;
            for (int j = besti2; j < BS; j++) L[order[j]] = 2;
            if (scale < 0) {
                for (int j = 0; j < BS; j++) L[j] = (int8_t)(2 - L[j]);
                scale = -scale;
                best_k = 3 - best_k;
            }
            bool all_on_grid = true;
            for (int k = 0; k < BS / 8; k++) {
                const float *xx = (k == 0 ? best_k < 2 : best_k % 2 == 0) ? x_p : x_m;
                const int u = lattice_u(lt, L + 8 * k);
                int gi = lt->map[u];
                if (gi < 0) {
                    all_on_grid = false;
                    gi = iq1_best(lt, lattice_list(lt, u), xb + 8 * k, weight + 8 * k, scale, xx,
                                  L + 8 * k);
                }
                index[k] = (uint16_t)gi;
            }
            if (!all_on_grid) {
                float sqx = 0, sq2 = 0;
                for (int k = 0; k < BS / 8; k++) {
                    const float *xx = (k == 0 ? best_k < 2 : best_k % 2 == 0) ? x_p : x_m;
                    const int8_t *pg = lt->grid + (size_t)index[k] * 8;
                    for (int j = 0; j < 8; j++) {
                        const float w = weight[8 * k + j], q = xx[(pg[j] - 1) / 2];
                        sqx += w * q * xb[8 * k + j];
                        sq2 += w * q * q;
                    }
                }
                if (sqx > 0 && sq2 > 0) scale = sqx / sq2;
            }
            y[ibl].qs[2 * ib] = (uint8_t)(index[0] & 255);
            y[ibl].qs[2 * ib + 1] = (uint8_t)(index[1] & 255);
            y[ibl].qh[ib] = (uint8_t)((index[0] >> 8) | ((index[1] >> 8) << 4));
            scales[ib] = scale;
            shifts[ib] = (int8_t)best_k;
            max_scale = max_scale > scale ? max_scale : scale;
        }
        if (!(max_scale != 0)) continue;
        uint16_t sc[4] = {0, 0, 0, 0};
        float d = max_scale / 15;
        const float id = 1 / d;
        float sqx = 0, sq2 = 0;
        for (int ib = 0; ib < QK_K / BS; ib++) {
            const int l = clampi(lb_nearest_int(0.5f * (id * scales[ib] - 1)), 0, 7);
            sc[ib / 4] |= (uint16_t)(l << 3 * (ib % 4));
            y[ibl].qh[ib] |= masks[shifts[ib]];
            const float *xb = xbl + BS * ib;
            if (qw) im_weights(qw + QK_K * ibl + BS * ib, xb, sigma2, BS, weight);
            else
                for (int i = 0; i < BS; i++) weight[i] = xb[i] * xb[i];
            for (int k = 0; k < BS / 8; k++) {
                const float *xx = (k == 0 ? shifts[ib] < 2 : shifts[ib] % 2 == 0) ? x_p : x_m;
                const int8_t *pg = lt->grid + (size_t)(y[ibl].qs[2 * ib + k] +
                                                       ((y[ibl].qh[ib] << (8 - 4 * k)) & 0x700)) *
                                                  8;
                for (int j = 0; j < 8; j++) {
                    const float w = weight[8 * k + j];
                    const float q = xx[(pg[j] - 1) / 2] * (float)(2 * l + 1);
                    sqx += w * q * xb[8 * k + j];
                    sq2 += w * q * q;
                }
            }
        }
        if (sq2 > 0) d = sqx / sq2;
        const lb_fp16 s = lb_f32_to_fp16(d * 1.1125f);
        sc[0] |= (uint16_t)((s & 0x000f) << 12);
        sc[1] |= (uint16_t)((s & 0x00f0) << 8);
        sc[2] |= (uint16_t)((s & 0x0f00) << 4);
        sc[3] |= (uint16_t)(s & 0xf000);
        memcpy(y[ibl].scales, sc, sizeof sc);
    }
}

/* ===== ggml_quantize_chunk ===== */

bool iq_is_type(enum dtype t) {
    switch (t) {
    case DTYPE_IQ4_XS:
    case DTYPE_IQ3_S:
    case DTYPE_IQ3_XXS:
    case DTYPE_IQ2_S:
    case DTYPE_IQ2_XS:
    case DTYPE_IQ2_XXS:
    case DTYPE_IQ1_M:
    case DTYPE_IQ1_S:
    case DTYPE_TQ2_0:
    case DTYPE_TQ1_0: return true;
    default: return false;
    }
}

bool iq_requires_imatrix(enum dtype t) {
    return t == DTYPE_IQ2_XXS || t == DTYPE_IQ2_XS || t == DTYPE_IQ1_S;
}

size_t iq_quantize(enum dtype t, const float *src, void *dst, int64_t n_rows, int64_t n_per_row,
                   const float *qw) {
    const size_t rb = dtype_row_size(t, n_per_row);
    if (!iq_is_type(t) || !rb || (iq_requires_imatrix(t) && !qw))
        BUG("iq_quantize: %s, %lld columns%s", dtype_get(t)->name, (long long)n_per_row,
            qw ? "" : ", no importance matrix");
    for (int64_t r = 0; r < n_rows; r++) {
        const float *x = src + r * n_per_row;
        void *y = (char *)dst + (size_t)r * rb;
        switch (t) {
        case DTYPE_TQ1_0: tq1_0_rows(x, y, n_per_row); break;
        case DTYPE_TQ2_0: tq2_0_rows(x, y, n_per_row); break;
        case DTYPE_IQ4_XS:
            for (int64_t b = 0; b < n_per_row / QK_K; b++)
                iq4_xs_block(x + QK_K * b, (struct block_iq4_xs *)y + b, qw ? qw + QK_K * b : NULL);
            break;
        case DTYPE_IQ2_XXS: iq2_xxs_row(x, y, n_per_row, qw); break;
        case DTYPE_IQ2_XS: iq2_xs_row(x, y, n_per_row, qw); break;
        case DTYPE_IQ2_S: iq2_s_row(x, y, n_per_row, qw); break;
        case DTYPE_IQ3_XXS: iq3_xxs_row(x, y, n_per_row, qw); break;
        case DTYPE_IQ3_S: iq3_s_row(x, y, n_per_row, qw); break;
        case DTYPE_IQ1_S: iq1_s_row(x, y, n_per_row, qw); break;
        case DTYPE_IQ1_M: iq1_m_row(x, y, n_per_row, qw); break;
        default: break;
        }
    }
    return rb * (size_t)n_rows;
}

void iq_from_f32(enum dtype t, const float *src, void *dst, int64_t n) {
    float *ones = NULL;
    if (iq_requires_imatrix(t)) {
        ones = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
        if (!ones) BUG("iq_from_f32: out of memory");
        for (int64_t i = 0; i < n; i++) ones[i] = 1.0f;
    }
    iq_quantize(t, src, dst, 1, n, ones);
    free(ones);
}
