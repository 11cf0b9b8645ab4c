/* kernels/gram.c: H += XᵀX into a float64 upper triangle (see gram.h), reference and fast paths.
 *
 * Legend: T = rows of x (tokens), K = columns (features), C = GRAM_CHUNK, MR×NR = the microkernel
 * tile (rows i × columns j of H), Kp = K rounded up to NR, MB = the side of a unit (a square
 * block of H one thread owns), n = the tokens of one packing pass.
 *
 * Both operands of the product are x itself: H[i][j] += Σ_t x[t][i]·x[t][j]. A pass packs n rows
 * of x into column panels Xp[Kp/NR][n][NR] (panel p holds columns p·NR .. p·NR+NR-1 of every row,
 * columns at or past K zero), so that for any tile both operands stream through memory with
 * stride NR: the NR-wide panel of columns jb.. is loaded as NR/lanes vectors per token, and the
 * MR rows ib.. are broadcast from the panel that holds them (ib%NR is their offset; MR divides NR).
 *
 * Work: the upper triangle is cut into MB×MB units (I <= J; the diagonal units are half empty);
 * units go to threads one at a time (schedule dynamic: a triangle has unequal units), and a
 * unit's value does not depend on which thread runs it. Within a unit: for each chunk of C tokens,
 * for each NR-wide column block jb, for each MR-row block ib that reaches the triangle
 * (ib < jb + NR): the microkernel sums the chunk in fp32 registers (one FMA chain per element, t
 * in order, starting from 0), converts the MR×NR sums to double and adds them into H. Tiles that
 * cross the diagonal or K go through an MR×NR scratch and a scalar add of the elements with
 * i <= j < K. A unit's packed rows (MB·C floats of each operand) stay in L2 across its column
 * blocks, its H block across its chunks.
 *
 * Numerics: per element, chunks in order, each one fp32 chain of at most C products then one
 * double add: the bound of gram.h. Chunks are counted from the call's first row (a packing pass
 * holds whole chunks), so neither the pass size nor the thread count changes a bit.
 *
 * Blocking (changes speed, never results), measured on AMD EPYC Zen 4 (AVX-512 at one zmm FMA per
 * cycle, 32 KiB L1d, 1 MiB L2 per core), K = 4096, T = 2048, one thread, by CPU time: 8×32 about
 * 80% of the measured fp32 FMA peak; 8×48 and 4×64 within 2%, 16×16 5% slower; units of 128, 192
 * or 256 within 2% (384 slower: the unit's H block leaves L2); C = 128 costs 4% (the double
 * epilogue), C = 1024 would gain 4% for a 4× larger error bound.
 *
 * Dispatch: the path cpu_isa() names (kernels/cpu.h: probed once, lowered by LOWBIT_ISA), from a
 * table indexed by it; gram_acc_isa takes any path this CPU has. The avx512/avx2 kernels are
 * compiled with function-level target attributes, so the default build (no -march) runs on any
 * x86-64. */
#include "kernels/gram.h"

#include "kernels/common.h"
#include "kernels/cpu.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if LB_X86
#include <immintrin.h>
#endif

/* below this many multiply-adds (T·K²/2) a call runs on the calling thread alone */
#define GR_PAR_MIN_MAC ((int64_t)1 << 18)
#define GR_MR_MAX 8 /* the largest tile (edge-tile scratch) */
#define GR_NR_MAX 32

/* ===== reference ===== */

void gram_acc_ref(double *H, const float *x, int64_t T, int64_t K) {
    if (T <= 0 || K <= 0) return;
    for (int64_t t = 0; t < T; t++) {
        const float *xr = x + (size_t)t * (size_t)K;
        for (int64_t i = 0; i < K; i++) {
            const double xi = xr[i];
            double *hr = H + (size_t)i * (size_t)K;
            for (int64_t j = i; j < K; j++) hr[j] += xi * (double)xr[j];
        }
    }
}

/* ===== the per-ISA microkernels ===== */

/* s[r][j] = Σ_{t<n} a[t·NR + r]·b[t·NR + j] for r < MR, j < NR: one fp32 chain per element, t in
 * order, starting from 0 (b is 64-byte aligned, NR floats per token). Then h != NULL:
 * h[r·ldh + j] += (double)s[r][j]; else c[r·NR + j] = s[r][j]. */
typedef void (*gr_tile_fn)(int64_t n, const float *a, const float *b, double *h, int64_t ldh,
                           float *c);

struct gr_kern {
    const char *name;
    int mr, nr; /* the tile: MR rows × NR columns; NR is also the panel width */
    int mb;     /* the side of a unit, a multiple of NR */
    gr_tile_fn tile;
};

/* generic C: 4×16 */
#define MR_GEN 4
#define NR_GEN 16

static void tile_generic(int64_t n, const float *a, const float *b, double *h, int64_t ldh,
                         float *c) {
    float acc[MR_GEN][NR_GEN] = {{0}};
    for (int64_t t = 0; t < n; t++, a += NR_GEN, b += NR_GEN)
        for (int r = 0; r < MR_GEN; r++)
            for (int j = 0; j < NR_GEN; j++) acc[r][j] += a[r] * b[j];
    for (int r = 0; r < MR_GEN; r++)
        for (int j = 0; j < NR_GEN; j++) {
            if (h)
                h[r * ldh + j] += (double)acc[r][j];
            else
                c[r * NR_GEN + j] = acc[r][j];
        }
}

_Static_assert(MR_GEN * NR_GEN <= GR_MR_MAX * GR_NR_MAX && NR_GEN % MR_GEN == 0, "generic tile");
static const struct gr_kern gr_generic = {"generic", MR_GEN, NR_GEN, 8 * NR_GEN, tile_generic};

#if LB_X86
/* AVX-512: 8×32, 16 zmm accumulators; per token 2 loads and 8 broadcasts for 16 FMAs */
#define MR512 8
#define NV512 2 /* zmm per row: NR = 32 (8×48 measured within 2%) */
#define NR512 (16 * NV512)

LB_AVX512F static void tile_avx512(int64_t n, const float *restrict a, const float *restrict b,
                                  double *restrict h, int64_t ldh, float *restrict c) {
    __m512 acc[MR512][NV512];
#pragma GCC unroll 16
    for (int r = 0; r < MR512; r++)
#pragma GCC unroll 4
        for (int v = 0; v < NV512; v++) acc[r][v] = _mm512_setzero_ps();
#pragma GCC unroll 2
    for (int64_t t = 0; t < n; t++, a += NR512, b += NR512) {
        __m512 bv[NV512];
#pragma GCC unroll 4
        for (int v = 0; v < NV512; v++) bv[v] = _mm512_load_ps(b + 16 * v);
#pragma GCC unroll 16
        for (int r = 0; r < MR512; r++) {
            const __m512 ar = _mm512_set1_ps(a[r]);
#pragma GCC unroll 4
            for (int v = 0; v < NV512; v++) acc[r][v] = _mm512_fmadd_ps(ar, bv[v], acc[r][v]);
        }
    }
    if (!h) {
#pragma GCC unroll 16
        for (int r = 0; r < MR512; r++)
#pragma GCC unroll 4
            for (int v = 0; v < NV512; v++) _mm512_storeu_ps(c + r * NR512 + 16 * v, acc[r][v]);
        return;
    }
#pragma GCC unroll 16
    for (int r = 0; r < MR512; r++)
#pragma GCC unroll 4
        for (int v = 0; v < NV512; v++) {
            double *p = h + r * ldh + 16 * v;
            const __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(acc[r][v]));
            const __m512d hi = _mm512_cvtps_pd(
                _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc[r][v]), 1)));
            _mm512_storeu_pd(p, _mm512_add_pd(_mm512_loadu_pd(p), lo));
            _mm512_storeu_pd(p + 8, _mm512_add_pd(_mm512_loadu_pd(p + 8), hi));
        }
}

_Static_assert(MR512 * NR512 <= GR_MR_MAX * GR_NR_MAX && NR512 % MR512 == 0, "avx512 tile");
static const struct gr_kern gr_avx512 = {"avx512", MR512, NR512, 4 * NR512, tile_avx512};

/* AVX2: 4×24, 12 ymm accumulators; per token 3 loads and 4 broadcasts for 12 FMAs */
#define MR256 4
#define NR256 24

LB_AVX2F static void tile_avx2(int64_t n, const float *restrict a, const float *restrict b,
                              double *restrict h, int64_t ldh, float *restrict c) {
    __m256 acc[MR256][3];
#pragma GCC unroll 4
    for (int r = 0; r < MR256; r++) acc[r][0] = acc[r][1] = acc[r][2] = _mm256_setzero_ps();
#pragma GCC unroll 2
    for (int64_t t = 0; t < n; t++, a += NR256, b += NR256) {
        const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8),
                     b2 = _mm256_load_ps(b + 16);
#pragma GCC unroll 4
        for (int r = 0; r < MR256; r++) {
            const __m256 ar = _mm256_broadcast_ss(a + r);
            acc[r][0] = _mm256_fmadd_ps(ar, b0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(ar, b1, acc[r][1]);
            acc[r][2] = _mm256_fmadd_ps(ar, b2, acc[r][2]);
        }
    }
    if (!h) {
#pragma GCC unroll 4
        for (int r = 0; r < MR256; r++)
#pragma GCC unroll 3
            for (int v = 0; v < 3; v++) _mm256_storeu_ps(c + r * NR256 + 8 * v, acc[r][v]);
        return;
    }
#pragma GCC unroll 4
    for (int r = 0; r < MR256; r++)
#pragma GCC unroll 3
        for (int v = 0; v < 3; v++) {
            double *p = h + r * ldh + 8 * v;
            const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(acc[r][v]));
            const __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(acc[r][v], 1));
            _mm256_storeu_pd(p, _mm256_add_pd(_mm256_loadu_pd(p), lo));
            _mm256_storeu_pd(p + 4, _mm256_add_pd(_mm256_loadu_pd(p + 4), hi));
        }
}

_Static_assert(MR256 * NR256 <= GR_MR_MAX * GR_NR_MAX && NR256 % MR256 == 0, "avx2 tile");
static const struct gr_kern gr_avx2 = {"avx2", MR256, NR256, 8 * NR256, tile_avx2};
#endif /* LB_X86 */

_Static_assert(GRAM_CHUNK > 0, "chunks hold tokens");

/* the kernel of path i (enum cpu_isa; -1 = none), NULL where this build has none */
static const struct gr_kern *gr_kern_at(int i) {
    static const struct gr_kern *const by_isa[CPU_ISA_COUNT] = {
        [CPU_ISA_GENERIC] = &gr_generic,
#if LB_X86
        [CPU_ISA_AVX2] = &gr_avx2,
        [CPU_ISA_AVX512] = &gr_avx512,
#endif
    };
    return i >= 0 && i < CPU_ISA_COUNT ? by_isa[i] : NULL;
}

/* ===== the driver (ISA-independent) ===== */

struct gr_ctx {
    const struct gr_kern *kn;
    double *H;
    const float *x; /* the pass's first row */
    int64_t K, n;     /* n: rows in this pass */
    int64_t nb;       /* units per side: ceil(K / MB) */
    float *xp;        /* [Kp/NR][n][NR] */
};

/* panel p of the pass: Xp[p][t][0..NR) = x[t][p·NR ..], zero past K */
static void gr_pack_panel(const struct gr_ctx *g, int64_t p) {
    const int nr = g->kn->nr;
    const int64_t j0 = p * nr, cnt = LB_MIN((int64_t)nr, g->K - j0);
    float *dst = g->xp + (size_t)p * (size_t)g->n * (size_t)nr;
    for (int64_t t = 0; t < g->n; t++, dst += nr) {
        memcpy(dst, g->x + (size_t)t * (size_t)g->K + (size_t)j0, (size_t)cnt * sizeof(float));
        if (cnt < nr) memset(dst + cnt, 0, (size_t)(nr - cnt) * sizeof(float));
    }
}

/* unit u of the triangle, row by row: (0,0), (0,1) .. (0,nb-1), (1,1) .. */
static void gr_unit(const struct gr_ctx *g, int64_t u) {
    const struct gr_kern *kn = g->kn;
    const int mr = kn->mr, nr = kn->nr;
    const int64_t K = g->K, n = g->n, pstride = n * nr;
    int64_t I = 0;
    while (u >= g->nb - I) u -= g->nb - I++;
    const int64_t J = I + u;
    const int64_t i_lo = I * kn->mb, i_hi = LB_MIN(K, i_lo + kn->mb);
    const int64_t j_lo = J * kn->mb, j_hi = LB_MIN(K, j_lo + kn->mb);
    float c[GR_MR_MAX * GR_NR_MAX];
    for (int64_t c0 = 0; c0 < n; c0 += GRAM_CHUNK) {
        const int64_t m = LB_MIN((int64_t)GRAM_CHUNK, n - c0);
        for (int64_t jb = j_lo; jb < j_hi; jb += nr) {
            const float *b = g->xp + (jb / nr) * pstride + c0 * nr;
            const bool cols_in = jb + nr <= K;
            for (int64_t ib = i_lo; ib < i_hi && ib < jb + nr; ib += mr) {
                const float *a = g->xp + (ib / nr) * pstride + c0 * nr + ib % nr;
                if (cols_in && ib + mr - 1 <= jb) { /* every element of the tile has j >= i */
                    kn->tile(m, a, b, g->H + ib * K + jb, K, NULL);
                    continue;
                }
                kn->tile(m, a, b, NULL, 0, c);
                for (int r = 0; r < mr && ib + r < K; r++) {
                    const int64_t i = ib + r;
                    double *hr = g->H + i * K;
                    for (int64_t j = LB_MAX(jb, i); j < LB_MIN(jb + nr, K); j++)
                        hr[j] += (double)c[r * nr + (j - jb)];
                }
            }
        }
    }
}

static int gr_run(const struct gr_kern *kn, double *H, const float *x, int64_t T, int64_t K,
                  int64_t pack_bytes) {
    if (T <= 0 || K <= 0) return 0;
    const int64_t Kp = (K + kn->nr - 1) / kn->nr * kn->nr;
    /* rows per pass: whole chunks within GRAM_PACK_MAX_BYTES, at least one chunk */
    if (pack_bytes <= 0) pack_bytes = GRAM_PACK_MAX_BYTES;
    int64_t per = pack_bytes / (int64_t)sizeof(float) / Kp / GRAM_CHUNK * GRAM_CHUNK;
    per = LB_MIN(T, LB_MAX((int64_t)GRAM_CHUNK, per));
    size_t floats;
    if (mul_ok((size_t)Kp, (size_t)per, &floats) || floats > SIZE_MAX / sizeof(float) - 64)
        return err("gram: packed rows of %lld x %lld floats overflow", (long long)per,
                   (long long)Kp);
    char *buf = xmalloc(floats * sizeof(float) + 64, "the packed rows of a Gram matrix");
    if (!buf) return -1;
    float *xp = (float *)(buf + (64 - (uintptr_t)buf % 64) % 64);
    const int64_t nb = (K + kn->mb - 1) / kn->mb, n_units = nb * (nb + 1) / 2;
    const bool par = (double)T * (double)K * (double)K / 2 >= (double)GR_PAR_MIN_MAC;
    const int nth = par ? lb_threads() : 1;
    for (int64_t s0 = 0; s0 < T; s0 += per) {
        const struct gr_ctx g = {.kn = kn, .H = H, .x = x + (size_t)s0 * (size_t)K, .K = K,
                                 .n = LB_MIN(per, T - s0), .nb = nb, .xp = xp};
        const int64_t n_panels = Kp / kn->nr;
#ifdef _OPENMP
#pragma omp parallel num_threads(nth)
        {
#pragma omp for schedule(static)
            for (int64_t p = 0; p < n_panels; p++) gr_pack_panel(&g, p);
#pragma omp for schedule(dynamic, 1)
            for (int64_t u = 0; u < n_units; u++) gr_unit(&g, u);
        }
#else
        (void)nth;
        for (int64_t p = 0; p < n_panels; p++) gr_pack_panel(&g, p);
        for (int64_t u = 0; u < n_units; u++) gr_unit(&g, u);
#endif
    }
    free(buf);
    return 0;
}

int gram_acc_isa(double *H, const float *x, int64_t T, int64_t K, const char *isa,
                 int64_t pack_bytes) {
    const struct gr_kern *kn = gr_kern_at(cpu_isa_usable(isa));
    if (!kn) return err("gram: instruction set '%s' is unknown or this CPU lacks it", isa);
    return gr_run(kn, H, x, T, K, pack_bytes);
}

static const struct gr_kern *gr_current(void) {
    const struct gr_kern *kn = gr_kern_at(cpu_isa());
    return kn ? kn : &gr_generic;
}

const char *gram_path(void) { return gr_current()->name; }

int gram_acc(double *H, const float *x, int64_t T, int64_t K) {
    return gr_run(gr_current(), H, x, T, K, 0);
}
