/* kernels/matmul_bf16.c: bf16 matmul (contract and semantics in kernels/matmul_bf16.h).
 *
 * Legend: T = n_tok, K = w->ne[0], N = rows of W, P = ceil(K/2) (bf16 pairs), NU = 32 outputs per
 * unit, MR = tokens per tile (8 on the AVX-512 paths, 2 on AVX2, 4 generic).
 *
 * A bf16 pair is one dword: element 2p in the low half, 2p+1 in the high half (the memory order of
 * two bf16, and VDPBF16PS's pair). X is converted once per call into rows of P dwords (tokens
 * split over the threads, then a barrier). The output is cut into units of NU outputs; per unit a
 * thread converts the unit's rows of W into a panel [P][NU] (rows past N are zero): on AVX-512,
 * 16 rows × 32 columns are loaded, converted (f32 and F16C'd f16 by the RNE bit formula, bf16 by a
 * masked flush) and transposed in registers (unpacks and 128-bit shuffles), the pairs past the
 * last whole 32 columns element by element; elsewhere row by row, then transposed. Then every
 * token tile of the call runs against the panel: per pair p, two 16-lane weight vectors and MR
 * broadcast x pairs, one VDPBF16PS per accumulator, so lane j of accumulator (r, h) is output
 * n0 + 16h + j of token t0 + r, one chain over p in order: the oracle's. The emulated paths do the
 * same step as fma(odd), flush, fma(even), flush on the two halves shifted into fp32. The token
 * tail runs tiles of MR/2, MR/4, ... 1 tokens (fully unrolled variants), so T = 1 computes one.
 * Measured (Xeon family 6 model 207 = Emerald Rapids under a VM, 1 thread, loaded machine): the
 * VDPBF16PS zmm instruction issues at ~1.3 G/s here against ~5.4 G/s for FMA, so its peak is
 * ~85 GFLOP/s against ~175 for fp32 FMA; the tile runs at ~94% of it (T=512 K=768 N=2048: 80
 * GFLOP/s, matmul()'s fp32 GEMM 128). The AVX-512F emulation reaches 35, AVX2 9, generic C 0.6
 * (fmaf through libm without -mfma). At T = 1 the panel conversion dominates: 0.54 ms against
 * 0.25 ms for the fp32 GEMV at that shape.
 * W is converted per call, not at load time: the model keeps one copy of its weights (an f32
 * model would otherwise grow by half), the conversion costs O(N·K) against O(T·N·K) for the
 * products (a few per cent of a 512-token prefill), and the panel stays in L2 while every token
 * tile of the call uses it. Token generation (T = 1) pays the conversion per token; a stored bf16
 * copy in the panel layout would halve its weight traffic (not done).
 * Scratch: one allocation per call (X pairs, a rows buffer, a panel and a tile per thread). */
#include "kernels/matmul_bf16.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "kernels/common.h"
#include "kernels/cpu.h"
#if LB_X86
#include <immintrin.h>
#endif

#define BF_NU 32
#define BF_MR_MAX 8
#define BF_PAR_MIN_MAC (1 << 17)
/* the tiles' loops over tokens and vectors fully unrolled, so the accumulators live in registers
 * (GCC otherwise keeps them in memory and every step waits on a store) */
#define BF_UNROLL _Pragma("GCC unroll 8")

bool matmul_bf16_supported(enum dtype t) {
    return t == DTYPE_F32 || t == DTYPE_F16 || t == DTYPE_BF16;
}

/* ===== the scalar operation (the oracle's, and the generic path's) ===== */

/* a bf16 denormal becomes a zero of its sign (VDPBF16PS's DAZ) */
static inline uint32_t bf_daz(uint32_t h) { return (h & 0x7f80u) ? h : (h & 0x8000u); }
static inline uint32_t bf_of(float v) { return bf_daz(lb_f32_to_bf16(v)); }
static inline float bf_val(uint32_t h) { return lb_bf16_to_f32((lb_bf16)h); }

/* a result below 2^-126 in magnitude becomes a zero of its sign (VDPBF16PS's FTZ) */
static inline float bf_ftz(float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    if ((u & 0x7fffffffu) < 0x00800000u) u &= 0x80000000u;
    memcpy(&v, &u, 4);
    return v;
}

/* one VDPBF16PS lane: the high (odd) products first, each fused and flushed */
static inline float bf_step(float acc, uint32_t xp, uint32_t wp) {
    acc = bf_ftz(fmaf(bf_val(xp >> 16), bf_val(wp >> 16), acc));
    return bf_ftz(fmaf(bf_val(xp & 0xffffu), bf_val(wp & 0xffffu), acc));
}

/* b(w[n][k]) for a supported weight */
static uint32_t w_elem(const struct tensor *w, int64_t n, int64_t k) {
    const void *row = tensor_row(w, n);
    switch (w->type) {
    case DTYPE_F32: return bf_of(((const float *)row)[k]);
    case DTYPE_F16: return bf_of(lb_fp16_to_f32(((const lb_fp16 *)row)[k]));
    default: return bf_daz(((const lb_bf16 *)row)[k]);
    }
}

void matmul_bf16_ref(float *y, const float *x, const struct tensor *w, int n_tok) {
    ASSERT(matmul_bf16_supported(w->type));
    const int64_t K = w->ne[0], N = tensor_nrows(w);
    for (int t = 0; t < n_tok; t++)
        for (int64_t n = 0; n < N; n++) {
            const float *xr = x + (size_t)t * (size_t)K;
            float acc = 0.0f;
            for (int64_t k = 0; k < K; k += 2) {
                const uint32_t hi = k + 1 < K;
                const uint32_t xp = bf_of(xr[k]) | (hi ? bf_of(xr[k + 1]) << 16 : 0);
                const uint32_t wp = w_elem(w, n, k) | (hi ? w_elem(w, n, k + 1) << 16 : 0);
                acc = bf_step(acc, xp, wp);
            }
            y[(size_t)t * (size_t)N + (size_t)n] = acc;
        }
}

/* ===== conversion into pairs ===== */

/* dst[0 .. P) = pairs of b(src[0 .. K)) (a zero partner for an odd K) */
static void pairs_f32_c(const float *src, int64_t K, uint32_t *dst) {
    for (int64_t k = 0; k < K; k += 2)
        dst[k / 2] = bf_of(src[k]) | (k + 1 < K ? bf_of(src[k + 1]) << 16 : 0);
}

static void pairs_row_c(const struct tensor *w, int64_t n, uint32_t *dst) {
    const int64_t K = w->ne[0];
    if (w->type == DTYPE_F32) {
        pairs_f32_c(tensor_row(w, n), K, dst);
        return;
    }
    for (int64_t k = 0; k < K; k += 2)
        dst[k / 2] = w_elem(w, n, k) | (k + 1 < K ? w_elem(w, n, k + 1) << 16 : 0);
}

/* panel[p][j] for pairs p0 <= p < P of rows n0 + j (0 past nw), element by element */
static void pack_tail(const struct tensor *w, int64_t n0, int64_t nw, int64_t p0, int64_t P,
                      uint32_t *panel) {
    const int64_t K = w->ne[0];
    for (int64_t p = p0; p < P; p++)
        for (int j = 0; j < BF_NU; j++) {
            const int64_t k = 2 * p, n = n0 + j;
            panel[p * BF_NU + j] =
                j < nw ? w_elem(w, n, k) | (k + 1 < K ? w_elem(w, n, k + 1) << 16 : 0) : 0;
        }
}

/* the panel of rows n0 .. n0+nw: each row converted into rows[j], then transposed */
static void pack_c(const struct tensor *w, int64_t n0, int64_t nw, int64_t P, uint32_t *rows,
                   uint32_t *panel) {
    for (int j = 0; j < BF_NU; j++)
        if (j < nw) pairs_row_c(w, n0 + j, rows + j * P);
        else memset(rows + j * P, 0, (size_t)P * 4);
    for (int64_t p = 0; p < P; p++)
        for (int j = 0; j < BF_NU; j++) panel[p * BF_NU + j] = rows[j * P + p];
}

/* ===== tiles: c[r][0 .. NU) = the chains of tokens xr[r] against the panel ===== */

static void tile_c(const uint32_t *const *xr, int64_t P, const uint32_t *wp, float *c, int m) {
    for (int r = 0; r < m; r++)
        for (int j = 0; j < BF_NU; j++) {
            float acc = 0.0f;
            for (int64_t p = 0; p < P; p++) acc = bf_step(acc, xr[r][p], wp[p * BF_NU + j]);
            c[r * BF_NU + j] = acc;
        }
}

#if LB_X86
/* 16 floats → 16 dwords of b(v) */
LB_AVX512 static inline __m512i cvt16(__m512 v) {
    const __m512i u = _mm512_castps_si512(v);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_srli_epi32(
        _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
    const __mmask16 nan = _mm512_cmpgt_epu32_mask(
        _mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
    r = _mm512_mask_or_epi32(r, nan, _mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
    const __mmask16 den = _mm512_testn_epi32_mask(r, _mm512_set1_epi32(0x7f80));
    return _mm512_mask_and_epi32(r, den, r, _mm512_set1_epi32(0x8000));
}

/* 32 floats → 16 pairs */
LB_AVX512 static inline void cvt32_store(__m512 a, __m512 b, uint32_t *dst) {
    const __m256i lo = _mm512_cvtepi32_epi16(cvt16(a)), hi = _mm512_cvtepi32_epi16(cvt16(b));
    _mm512_storeu_si512(dst, _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1));
}

LB_AVX512 static void pairs_f32_512(const float *src, int64_t K, uint32_t *dst) {
    int64_t k = 0;
    for (; k + 32 <= K; k += 32)
        cvt32_store(_mm512_loadu_ps(src + k), _mm512_loadu_ps(src + k + 16), dst + k / 2);
    pairs_f32_c(src + k, K - k, dst + k / 2);
}

/* 16 pairs (32 weights from column k) of a row as 16 dwords */
LB_AVX512 static inline __m512i row16_512(enum dtype t, const void *row, int64_t k) {
    if (t == DTYPE_F32) {
        const float *f = (const float *)row + k;
        const __m256i lo = _mm512_cvtepi32_epi16(cvt16(_mm512_loadu_ps(f)));
        const __m256i hi = _mm512_cvtepi32_epi16(cvt16(_mm512_loadu_ps(f + 16)));
        return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
    }
    if (t == DTYPE_F16) {
        const __m256i *h = (const __m256i *)((const lb_fp16 *)row + k);
        const __m256i lo = _mm512_cvtepi32_epi16(cvt16(_mm512_cvtph_ps(_mm256_loadu_si256(h))));
        const __m256i hi = _mm512_cvtepi32_epi16(cvt16(_mm512_cvtph_ps(_mm256_loadu_si256(h + 1))));
        return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
    }
    const __m512i v = _mm512_loadu_si512((const lb_bf16 *)row + k);
    const __mmask32 den = _mm512_testn_epi16_mask(v, _mm512_set1_epi16(0x7f80));
    return _mm512_mask_blend_epi16(den, v, _mm512_and_si512(v, _mm512_set1_epi16((short)0x8000)));
}

/* r[i] ← column i of the 16×16 dword matrix whose rows are r[0..16) */
LB_AVX512 static inline void transpose16_512(__m512i r[16]) {
    __m512i t[16];
    BF_UNROLL
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    BF_UNROLL
    for (int g = 0; g < 4; g++) { /* u[4g + c], 128-bit lane L: rows 4g..4g+3 of column 4L + c */
        r[4 * g] = _mm512_unpacklo_epi64(t[4 * g], t[4 * g + 2]);
        r[4 * g + 1] = _mm512_unpackhi_epi64(t[4 * g], t[4 * g + 2]);
        r[4 * g + 2] = _mm512_unpacklo_epi64(t[4 * g + 1], t[4 * g + 3]);
        r[4 * g + 3] = _mm512_unpackhi_epi64(t[4 * g + 1], t[4 * g + 3]);
    }
    BF_UNROLL
    for (int c = 0; c < 4; c++) {
        const __m512i s0 = _mm512_shuffle_i32x4(r[c], r[4 + c], _MM_SHUFFLE(1, 0, 1, 0));
        const __m512i s1 = _mm512_shuffle_i32x4(r[c], r[4 + c], _MM_SHUFFLE(3, 2, 3, 2));
        const __m512i s2 = _mm512_shuffle_i32x4(r[8 + c], r[12 + c], _MM_SHUFFLE(1, 0, 1, 0));
        const __m512i s3 = _mm512_shuffle_i32x4(r[8 + c], r[12 + c], _MM_SHUFFLE(3, 2, 3, 2));
        t[c] = _mm512_shuffle_i32x4(s0, s2, _MM_SHUFFLE(2, 0, 2, 0));
        t[4 + c] = _mm512_shuffle_i32x4(s0, s2, _MM_SHUFFLE(3, 1, 3, 1));
        t[8 + c] = _mm512_shuffle_i32x4(s1, s3, _MM_SHUFFLE(2, 0, 2, 0));
        t[12 + c] = _mm512_shuffle_i32x4(s1, s3, _MM_SHUFFLE(3, 1, 3, 1));
    }
    BF_UNROLL
    for (int i = 0; i < 16; i++) r[i] = t[i];
}

/* the panel of rows n0 .. n0+nw converted and transposed in registers, 16 rows × 16 pairs at a
 * time; the pairs past the last whole 32 columns by pack_tail */
LB_AVX512 static void pack_512(const struct tensor *w, int64_t n0, int64_t nw, int64_t P,
                               uint32_t *rows, uint32_t *panel) {
    (void)rows;
    const int64_t kfull = w->ne[0] / 32 * 32;
    for (int h = 0; h < 2; h++) {
        const void *rp[16];
        for (int j = 0; j < 16; j++)
            rp[j] = 16 * h + j < nw ? tensor_row(w, n0 + 16 * h + j) : NULL;
        for (int64_t k = 0; k < kfull; k += 32) {
            __m512i r[16];
            for (int j = 0; j < 16; j++)
                r[j] = rp[j] ? row16_512(w->type, rp[j], k) : _mm512_setzero_si512();
            transpose16_512(r);
            for (int i = 0; i < 16; i++)
                _mm512_storeu_si512(panel + (k / 2 + i) * BF_NU + 16 * h, r[i]);
        }
    }
    pack_tail(w, n0, nw, kfull / 2, P, panel);
}

LB_BF16 static LB_INLINE void tile_bf16_n(const uint32_t *const *xr, int64_t P,
                                          const uint32_t *wp, float *c, const int mr) {
    __m512 a[mr][2];
    BF_UNROLL
    for (int r = 0; r < mr; r++) a[r][0] = a[r][1] = _mm512_setzero_ps();
    for (int64_t p = 0; p < P; p++) {
        const __m512bh w0 = (__m512bh)_mm512_loadu_si512(wp + p * BF_NU);
        const __m512bh w1 = (__m512bh)_mm512_loadu_si512(wp + p * BF_NU + 16);
        BF_UNROLL
        for (int r = 0; r < mr; r++) {
            const __m512bh xb = (__m512bh)_mm512_set1_epi32((int)xr[r][p]);
            a[r][0] = _mm512_dpbf16_ps(a[r][0], xb, w0);
            a[r][1] = _mm512_dpbf16_ps(a[r][1], xb, w1);
        }
    }
    BF_UNROLL
    for (int r = 0; r < mr; r++) {
        _mm512_storeu_ps(c + r * BF_NU, a[r][0]);
        _mm512_storeu_ps(c + r * BF_NU + 16, a[r][1]);
    }
}

LB_BF16 static void tile_bf16(const uint32_t *const *xr, int64_t P, const uint32_t *wp, float *c,
                      int m) {
    if (m == 8) tile_bf16_n(xr, P, wp, c, 8);
    else if (m == 4) tile_bf16_n(xr, P, wp, c, 4);
    else if (m == 2) tile_bf16_n(xr, P, wp, c, 2);
    else tile_bf16_n(xr, P, wp, c, 1);
}

LB_AVX512 static inline __m512 ftz512(__m512 v) {
    const __m512i u = _mm512_castps_si512(v);
    const __mmask16 tiny = _mm512_cmplt_epu32_mask(
        _mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x00800000));
    return _mm512_castsi512_ps(_mm512_mask_and_epi32(u, tiny, u, _mm512_set1_epi32(INT32_MIN)));
}

LB_AVX512 static LB_INLINE void tile_512_n(const uint32_t *const *xr, int64_t P,
                                          const uint32_t *wp, float *c, const int mr) {
    const __m512i himask = _mm512_set1_epi32((int)0xffff0000u);
    __m512 a[mr][2];
    BF_UNROLL
    for (int r = 0; r < mr; r++) a[r][0] = a[r][1] = _mm512_setzero_ps();
    for (int64_t p = 0; p < P; p++) {
        __m512 wh[2], wl[2];
        BF_UNROLL
        for (int h = 0; h < 2; h++) {
            const __m512i v = _mm512_loadu_si512(wp + p * BF_NU + 16 * h);
            wh[h] = _mm512_castsi512_ps(_mm512_and_si512(v, himask));
            wl[h] = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
        }
        BF_UNROLL
        for (int r = 0; r < mr; r++) {
            const __m512i xb = _mm512_set1_epi32((int)xr[r][p]);
            const __m512 xh = _mm512_castsi512_ps(_mm512_and_si512(xb, himask));
            const __m512 xl = _mm512_castsi512_ps(_mm512_slli_epi32(xb, 16));
            BF_UNROLL
            for (int h = 0; h < 2; h++)
                a[r][h] = ftz512(
                    _mm512_fmadd_ps(xl, wl[h], ftz512(_mm512_fmadd_ps(xh, wh[h], a[r][h]))));
        }
    }
    BF_UNROLL
    for (int r = 0; r < mr; r++) {
        _mm512_storeu_ps(c + r * BF_NU, a[r][0]);
        _mm512_storeu_ps(c + r * BF_NU + 16, a[r][1]);
    }
}

LB_AVX512 static void tile_512(const uint32_t *const *xr, int64_t P, const uint32_t *wp, float *c,
                      int m) {
    if (m == 8) tile_512_n(xr, P, wp, c, 8);
    else if (m == 4) tile_512_n(xr, P, wp, c, 4);
    else if (m == 2) tile_512_n(xr, P, wp, c, 2);
    else tile_512_n(xr, P, wp, c, 1);
}

LB_AVX2 static inline __m256 ftz256(__m256 v) {
    const __m256i u = _mm256_castps_si256(v);
    const __m256i tiny = _mm256_cmpgt_epi32(
        _mm256_set1_epi32(0x00800000), _mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)));
    const __m256i z = _mm256_and_si256(u, _mm256_set1_epi32(INT32_MIN));
    return _mm256_castsi256_ps(_mm256_blendv_epi8(u, z, tiny));
}

LB_AVX2 static LB_INLINE void tile_256_n(const uint32_t *const *xr, int64_t P, const uint32_t *wp,
                                          float *c, const int mr) {
    const __m256i himask = _mm256_set1_epi32((int)0xffff0000u);
    __m256 a[2][4];
    BF_UNROLL
    for (int r = 0; r < mr; r++)
        BF_UNROLL
        for (int h = 0; h < 4; h++) a[r][h] = _mm256_setzero_ps();
    for (int64_t p = 0; p < P; p++)
        BF_UNROLL
        for (int r = 0; r < mr; r++) {
            const __m256i xb = _mm256_set1_epi32((int)xr[r][p]);
            const __m256 xh = _mm256_castsi256_ps(_mm256_and_si256(xb, himask));
            const __m256 xl = _mm256_castsi256_ps(_mm256_slli_epi32(xb, 16));
            BF_UNROLL
            for (int h = 0; h < 4; h++) {
                const __m256i v = _mm256_loadu_si256((const __m256i *)(wp + p * BF_NU + 8 * h));
                const __m256 wh = _mm256_castsi256_ps(_mm256_and_si256(v, himask));
                const __m256 wl = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
                a[r][h] = ftz256(_mm256_fmadd_ps(xl, wl, ftz256(_mm256_fmadd_ps(xh, wh, a[r][h]))));
            }
        }
    BF_UNROLL
    for (int r = 0; r < mr; r++)
        BF_UNROLL
        for (int h = 0; h < 4; h++) _mm256_storeu_ps(c + r * BF_NU + 8 * h, a[r][h]);
}

LB_AVX2 static void tile_256(const uint32_t *const *xr, int64_t P, const uint32_t *wp, float *c,
                      int m) {
    if (m == 2) tile_256_n(xr, P, wp, c, 2);
    else tile_256_n(xr, P, wp, c, 1);
}
#endif

/* ===== dispatch ===== */

enum bf_path { BF_GENERIC, BF_AVX2, BF_AVX512, BF_AVX512BF16, BF_PATH_COUNT };

struct bf_kern {
    const char *name;
    int mr;
    void (*pairs_f32)(const float *src, int64_t K, uint32_t *dst);
    void (*pack)(const struct tensor *w, int64_t n0, int64_t nw, int64_t P, uint32_t *rows,
                 uint32_t *panel);
    /* m of the xr tokens, m a power of two <= mr */
    void (*tile)(const uint32_t *const *xr, int64_t P, const uint32_t *wp, float *c, int m);
};

static const struct bf_kern bf_kerns[BF_PATH_COUNT] = {
    [BF_GENERIC] = {"generic", 4, pairs_f32_c, pack_c, tile_c},
#if LB_X86
    [BF_AVX2] = {"avx2", 2, pairs_f32_c, pack_c, tile_256},
    [BF_AVX512] = {"avx512", 8, pairs_f32_512, pack_512, tile_512},
    [BF_AVX512BF16] = {"avx512bf16", 8, pairs_f32_512, pack_512, tile_bf16},
#endif
};

static enum bf_path bf_current(void) {
    if (cpu_bf16()) return BF_AVX512BF16;
    switch (cpu_isa()) {
    case CPU_ISA_AVX512: return BF_AVX512;
    case CPU_ISA_AVX2: return BF_AVX2;
    default: return BF_GENERIC;
    }
}

const char *matmul_bf16_path(void) { return bf_kerns[bf_current()].name; }

/* ===== the driver ===== */

struct bf_ctx {
    const struct bf_kern *kn;
    const struct tensor *w;
    const float *x;
    float *y;
    uint32_t *xp; /* [T][P] */
    char *thr;    /* per thread: rows [NU][P], panel [P][NU], tile [MR_MAX][NU] */
    size_t thr_bytes;
    int64_t K, P, N;
    int T;
};

static size_t al64(size_t b) { return (b + 63) & ~(size_t)63; }

static size_t bf_thr_bytes(int64_t P) {
    return 2 * al64((size_t)P * BF_NU * 4) + al64(BF_MR_MAX * BF_NU * sizeof(float));
}

static void bf_unit(const struct bf_ctx *c, int64_t n0, uint32_t *rows, uint32_t *panel,
                    float *ct) {
    const struct bf_kern *kn = c->kn;
    const int64_t nw = c->N - n0 < BF_NU ? c->N - n0 : BF_NU, P = c->P;
    kn->pack(c->w, n0, nw, P, rows, panel);
    for (int t0 = 0, m; t0 < c->T; t0 += m) {
        for (m = kn->mr; m > c->T - t0; m /= 2) {}
        const uint32_t *xr[BF_MR_MAX];
        for (int r = 0; r < m; r++) xr[r] = c->xp + (size_t)(t0 + r) * P;
        kn->tile(xr, P, panel, ct, m);
        for (int r = 0; r < m; r++)
            memcpy(c->y + (size_t)(t0 + r) * (size_t)c->N + n0, ct + r * BF_NU,
                   (size_t)nw * sizeof(float));
    }
}

static void bf_thread(const struct bf_ctx *c, int ith, int nth) {
    for (int t = ith; t < c->T; t += nth)
        c->kn->pairs_f32(c->x + (size_t)t * (size_t)c->K, c->K, c->xp + (size_t)t * c->P);
#pragma omp barrier
    char *mine = c->thr + (size_t)ith * c->thr_bytes;
    uint32_t *rows = (uint32_t *)mine, *panel = (uint32_t *)(mine + al64((size_t)c->P * BF_NU * 4));
    float *ct = (float *)(mine + 2 * al64((size_t)c->P * BF_NU * 4));
    const int64_t nu = (c->N + BF_NU - 1) / BF_NU, u0 = nu * ith / nth, u1 = nu * (ith + 1) / nth;
    for (int64_t u = u0; u < u1; u++) bf_unit(c, u * BF_NU, rows, panel, ct);
}

static int bf_threads(const struct tensor *w, int n_tok) {
    const double mac = (double)n_tok * (double)w->ne[0] * (double)tensor_nrows(w);
    return mac >= BF_PAR_MIN_MAC ? lb_threads() : 1;
}

static size_t bf_bytes(const struct tensor *w, int n_tok, int nth) {
    const int64_t P = (w->ne[0] + 1) / 2;
    return al64((size_t)n_tok * (size_t)P * 4) + bf_thr_bytes(P) * (size_t)nth;
}

static int bf_run(const struct bf_kern *kn, float *y, const float *x, const struct tensor *w,
                  int n_tok, struct kscratch *ws) {
    ASSERT(matmul_bf16_supported(w->type));
    const int64_t K = w->ne[0], N = tensor_nrows(w), P = (K + 1) / 2;
    if (n_tok <= 0 || N <= 0) return 0;
    const int nth = bf_threads(w, n_tok);
    void *owned = NULL;
    char *buf = kscratch_take(ws, bf_bytes(w, n_tok, nth), &owned, w->name);
    if (!buf) return -1;
    const struct bf_ctx c = {.kn = kn, .w = w, .x = x, .y = y, .xp = (uint32_t *)buf,
                             .thr = buf + al64((size_t)n_tok * (size_t)P * 4),
                             .thr_bytes = bf_thr_bytes(P), .K = K, .P = P, .N = N, .T = n_tok};
#ifdef _OPENMP
#pragma omp parallel num_threads(nth) if (nth > 1)
    bf_thread(&c, omp_get_thread_num(), omp_get_num_threads());
#else
    bf_thread(&c, 0, 1);
#endif
    free(owned);
    return 0;
}

int matmul_bf16(float *y, const float *x, const struct tensor *w, int n_tok) {
    return bf_run(&bf_kerns[bf_current()], y, x, w, n_tok, NULL);
}

int matmul_bf16_ws(float *y, const float *x, const struct tensor *w, int n_tok,
                   struct kscratch *ws) {
    return bf_run(&bf_kerns[bf_current()], y, x, w, n_tok, ws);
}

size_t matmul_bf16_scratch(const struct tensor *w, int n_tok, int n_threads) {
    if (n_tok <= 0 || tensor_nrows(w) <= 0 || !matmul_bf16_supported(w->type)) return 0;
    return bf_bytes(w, n_tok, bf_threads(w, n_tok) > 1 ? n_threads : 1);
}

int matmul_bf16_isa(float *y, const float *x, const struct tensor *w, int n_tok, const char *isa) {
    for (int i = 0; i < BF_PATH_COUNT; i++) {
        if (!bf_kerns[i].name || strcmp(isa, bf_kerns[i].name)) continue;
        const bool ok = i == BF_AVX512BF16 ? cpu_features()->avx512bf16
                                           : cpu_has(i == BF_AVX512 ? CPU_ISA_AVX512
                                                     : i == BF_AVX2 ? CPU_ISA_AVX2
                                                                    : CPU_ISA_GENERIC);
        return ok ? bf_run(&bf_kerns[i], y, x, w, n_tok, NULL) : -2;
    }
    return -2;
}
