/* kernels/matmul.c: Y = X·Wᵀ for every weight type (see matmul.h), reference and fast paths.
 *
 * Legend: T = n_tok (rows of X and Y), K = w->ne[0] (row length), N = rows of W (outputs),
 * MR×NR = the microkernel tile (tokens × outputs).
 *
 * The fast path has two shapes of work, chosen by T and the ISA alone (never the thread count):
 *  - GEMM (T above the ISA's gemv_max_tok: 32 for avx512, 16 avx2, 8 generic), BLIS style. X is
 *    packed once per call into MR-row micro-panels Ap[T/MR][K][MR] (rows past T are zero; 16×16
 *    or 8×8 in-register transposes, pack_a). The
 *    output is cut into units of NT outputs × MT tokens; per K block of KC, a thread packs its
 *    unit's NT rows of W, converted to fp32 (f16/bf16/q8_0 on the fly, 16×16 in-register
 *    transposes), into NR-wide micro-panels Bp[NT/NR][KC][NR] in a per-thread buffer (the matrix
 *    is never expanded whole), then runs the MR×NR microkernel: broadcast one x, FMA into NR/16
 *    vectors of accumulators. Edge tiles go through an MR×NR scratch tile.
 *  - GEMV (T up to gemv_max_tok; T = 1 is token generation, memory bound): dot products
 *    vectorized along K, W converted in registers, up to 4 rows × 4 tokens per pass (x loads
 *    shared by the rows, W loads by the tokens), over blocks of MM_GEMV_NB rows that stay in L2
 *    while every group of 4 tokens passes.
 *
 * Numerics. Both paths multiply exactly the weights matmul_ref sees (f16/bf16 → f32 is exact,
 * q8_0 is d*q rounded once, as in dtype.c). The GEMM computes each y[t][n] as one fp32 FMA chain
 * over k = 0..K-1 in index order (the C tile is reloaded between K blocks), so its value does not
 * depend on tiling, K blocking or threads. The GEMV keeps one 16-lane (avx2, generic: 8)
 * accumulator per output, lane l summing k ≡ l in k order, reduced in a fixed tree; its value
 * depends only on (row, x, K). Either way, with S = Σ_k |w[n][k]·x[t][k]|,
 * |matmul - matmul_ref| <= 2·(K+4)·2⁻²⁴·S, and results are bit-identical for any thread count
 * (tests/test_matmul.c checks both).
 *
 * Dispatch: one table per ISA (struct mm_kern), indexed by kernels/cpu.h's path (the CPU probed
 * once, lowered by LOWBIT_ISA=generic|avx2|avx512). The avx2/avx512 variants are
 * compiled with target attributes, so the default build (no -march) runs on any x86-64; non-x86
 * builds get the generic C path only.
 *
 * Dtypes: f32, f16, bf16 and q8_0 have their own loads and packers here. The parametric types
 * (qint, nf4, fp4, i8row) go to matmul_q (kernels/matmul_q.c), whose prefill comes back to this
 * GEMM through matmul_gemm_deq (kernels/matmul_impl.h): its dequantizer fills a per-thread block
 * of NR fp32 rows that pack_b transposes like f32 rows, and X is gathered through the act-order
 * permutation while packed. Every other dtype (the GGUF legacy
 * and k-quant blocks) is "converted through": a few rows at a time (a unit's NT rows, a GEMV
 * block's 32) are dequantized by tensor_row_to_f32 into per-thread fp32 rows and run as f32.
 *
 * Scratch: one allocation per call (packed X, a W panel per thread, the converted-through or
 * dequantized rows);
 * none in the loops, none for a native-dtype GEMV. */
#include "kernels/matmul.h"
#include "kernels/matmul_impl.h" /* matmul_gemm_deq: matmul_q's prefill */
#include "kernels/qint.h" /* matmul_q: the parametric types (kernels/matmul_q.c) */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "kernels/cpu.h"
#if LB_X86
#include <immintrin.h>
#endif

/* Blocking (changes speed, never results). Measured on Zen 5 (48 KiB L1d, 1 MiB L2 per core). */
#define MM_KC 256        /* K block: an NR×KC micro-panel of W (32 KiB at NR = 32) stays in L1 */
#define MM_NT_MAX 256    /* outputs per unit: the packed W block NT×KC (256 KiB) stays in L2 */
#define MM_MT_MAX 576    /* tokens per unit: the X block MT×KC (up to 576 KiB) stays in L2 */
#define MM_GEMV_NB 32    /* GEMV: rows of W per block, reused from L2 by every group of 4 tokens */
#define MM_GEMV_CHUNK 16 /* GEMV: outputs per unit of the thread split */
#define MM_TILE_MAX (16 * 64) /* MR*NR of the largest microkernel (edge-tile scratch) */
/* below this many multiply-adds a call runs on the calling thread alone: waking the team costs
 * more (microseconds when idle, milliseconds on a loaded machine) */
#define MM_PAR_MIN_MAC (1 << 17)
_Static_assert(MM_KC % QK8_0 == 0, "K blocks hold whole q8_0 blocks");
_Static_assert(MM_KC % 16 == 0, "K blocks hold whole 16-wide transposes");

/* ===== reference ===== */

void matmul_ref_rows(float *y, const float *x, const struct tensor *w, int n_tok,
                     void (*row_to_f32)(const struct tensor *, int64_t, float *)) {
    const int64_t K = w->ne[0], N = tensor_nrows(w);
    float *row = xmalloc((size_t)K * sizeof(float), "a reference matmul row");
    if (!row) BUG("matmul_ref: no memory for one row of %lld floats", (long long)K);
    for (int64_t n = 0; n < N; n++) {
        row_to_f32(w, n, row);
        for (int t = 0; t < n_tok; t++) {
            const float *xt = x + (size_t)t * (size_t)K;
            float s = 0.0f;
            for (int64_t k = 0; k < K; k++) s += row[k] * xt[k];
            y[(size_t)t * (size_t)N + (size_t)n] = s;
        }
    }
    free(row);
}

void matmul_ref(float *y, const float *x, const struct tensor *w, int n_tok) {
    matmul_ref_rows(y, x, w, n_tok, tensor_row_to_f32);
}

/* ===== the per-ISA table ===== */

/* c[MR][NR] (row stride ldc) = (first ? 0 : c) + a·b over kc steps, one FMA chain per element in
 * k order; a is an MR-row micro-panel [kc][MR], b an NR-wide micro-panel [kc][NR] (64-byte
 * aligned) */
typedef void (*mm_tile_fn)(int64_t kc, const float *a, const float *b, float *c, int64_t ldc,
                           int first);
/* dst[kc][NR] = W[n0 + j][k0 + k] as fp32 for j < n_valid, 0 for n_valid <= j < NR; k0 is a
 * multiple of MM_KC */
typedef void (*mm_pack_b_fn)(float *dst, const struct tensor *w, int64_t n0, int n_valid,
                             int64_t k0, int64_t kc);
/* y[t][n] (row stride ldy) for t < n_tok, n0 <= n < n1: dot products over all of K */
typedef void (*mm_gemv_fn)(float *y, int64_t ldy, const float *x, int n_tok, const struct tensor *w,
                           int64_t n0, int64_t n1);
/* flops done by a register-only FMA loop of iters iterations; *sink keeps it alive */
typedef double (*mm_fma_fn)(int64_t iters, float *sink);
/* dst[K][MR] = x[i][perm ? perm[k] : k] for the first `rows` (<= MR) rows of x (row stride K),
 * 0 for rows <= i < MR: one MR-row micro-panel of packed X */
typedef void (*mm_pack_a_fn)(float *dst, const float *x, const int32_t *perm, int64_t K, int rows);

struct mm_kern {
    const char *name;
    int mr, nr;       /* microkernel tile: MR tokens × NR outputs */
    int gemv_max_tok; /* T at or below this takes the GEMV path (the faster one there) */
    mm_tile_fn tile;
    mm_pack_b_fn pack_b;
    mm_gemv_fn gemv;
    mm_fma_fn fma_loop;
    mm_pack_a_fn pack_a;
};

/* ===== generic C (always compiled) ===== */

#define MR_GEN 4
#define NR_GEN 16

static void tile_generic(int64_t kc, const float *a, const float *b, float *c, int64_t ldc,
                         int first) {
    float acc[MR_GEN][NR_GEN];
    for (int i = 0; i < MR_GEN; i++)
        for (int j = 0; j < NR_GEN; j++) acc[i][j] = first ? 0.0f : c[i * ldc + j];
    for (int64_t k = 0; k < kc; k++, a += MR_GEN, b += NR_GEN)
        for (int i = 0; i < MR_GEN; i++)
            for (int j = 0; j < NR_GEN; j++) acc[i][j] += a[i] * b[j];
    for (int i = 0; i < MR_GEN; i++)
        for (int j = 0; j < NR_GEN; j++) c[i * ldc + j] = acc[i][j];
}

static void pack_a_generic(float *dst, const float *x, const int32_t *perm, int64_t K, int rows) {
    for (int i = 0; i < MR_GEN; i++) {
        const float *src = x + (size_t)i * (size_t)K;
        if (i >= rows)
            for (int64_t k = 0; k < K; k++) dst[k * MR_GEN + i] = 0.0f;
        else if (perm)
            for (int64_t k = 0; k < K; k++) dst[k * MR_GEN + i] = src[perm[k]];
        else
            for (int64_t k = 0; k < K; k++) dst[k * MR_GEN + i] = src[k];
    }
}

/* convert a chunk of each row, scatter it into column j */
static void pack_b_generic(float *dst, const struct tensor *w, int64_t n0, int n_valid, int64_t k0,
                           int64_t kc) {
    float tmp[MM_KC];
    const dtype_to_f32_fn to_f32 = dtype_get(w->type)->to_f32;
    const size_t off = dtype_row_size(w->type, k0);
    for (int j = 0; j < NR_GEN; j++) {
        if (j < n_valid) {
            to_f32((const char *)tensor_row(w, n0 + j) + off, tmp, kc);
            for (int64_t k = 0; k < kc; k++) dst[k * NR_GEN + j] = tmp[k];
        } else {
            for (int64_t k = 0; k < kc; k++) dst[k * NR_GEN + j] = 0.0f;
        }
    }
}

/* 8 partial sums per token, chunks of MM_KC converted to fp32 on the stack */
static void gemv_generic(float *y, int64_t ldy, const float *x, int n_tok, const struct tensor *w,
                         int64_t n0, int64_t n1) {
    const int64_t K = w->ne[0];
    const dtype_to_f32_fn to_f32 = dtype_get(w->type)->to_f32;
    float tmp[MM_KC];
    for (int t0 = 0; t0 < n_tok; t0 += 4) {
        const int nt = LB_MIN(4, n_tok - t0);
        for (int64_t n = n0; n < n1; n++) {
            float p[4][8] = {{0}};
            const char *row = tensor_row(w, n);
            for (int64_t k0 = 0; k0 < K; k0 += MM_KC) {
                const int64_t kc = LB_MIN(MM_KC, K - k0);
                to_f32(row + dtype_row_size(w->type, k0), tmp, kc);
                for (int t = 0; t < nt; t++) {
                    const float *xt = x + (size_t)(t0 + t) * (size_t)K + k0;
                    float *pt = p[t];
                    int64_t k = 0;
                    for (; k + 8 <= kc; k += 8)
                        for (int j = 0; j < 8; j++) pt[j] += tmp[k + j] * xt[k + j];
                    for (; k < kc; k++) pt[k & 7] += tmp[k] * xt[k];
                }
            }
            for (int t = 0; t < nt; t++)
                y[(t0 + t) * ldy + n] = ((p[t][0] + p[t][4]) + (p[t][1] + p[t][5])) +
                                        ((p[t][2] + p[t][6]) + (p[t][3] + p[t][7]));
        }
    }
}

static double fma_loop_generic(int64_t iters, float *sink) {
    float acc[8][8];
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 8; j++) acc[i][j] = (float)(i + j);
    for (int64_t it = 0; it < iters; it++)
        for (int i = 0; i < 8; i++)
            for (int j = 0; j < 8; j++) acc[i][j] = acc[i][j] * 0.999999f + 1e-6f;
    float s = 0.0f;
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 8; j++) s += acc[i][j];
    *sink += s;
    return (double)iters * 64 * 2;
}

/* GEMV up to T = 8 (a guess: this path is the portable fallback) */
static const struct mm_kern kern_generic = {
    "generic", MR_GEN, NR_GEN, 8, tile_generic, pack_b_generic, gemv_generic, fma_loop_generic,
    pack_a_generic};

#if LB_X86
/* one weight as fp32, the same value dtype_get(t)->to_f32 gives */
static inline float w_get(enum dtype t, const void *row, int64_t k) {
    switch (t) {
    case DTYPE_F32: return ((const float *)row)[k];
    case DTYPE_F16: return lb_fp16_to_f32(((const lb_fp16 *)row)[k]);
    case DTYPE_BF16: return lb_bf16_to_f32(((const lb_bf16 *)row)[k]);
    case DTYPE_Q8_0: {
        const struct block_q8_0 *b = (const struct block_q8_0 *)row + k / QK8_0;
        return lb_fp16_to_f32(b->d) * (float)b->qs[k % QK8_0];
    }
    default: BUG("matmul: dtype %d has no kernel", (int)t);
    }
}

/* ===== AVX-512 (avx512f/bw/vl + fma + f16c) ===== */

/* 12×32 tile: 24 zmm accumulators + 2 for W + 1 broadcast; 12×32, 14×32, 8×48 and 6×64 measured
 * within 2% of each other, and NR = 32 divides the usual N */
#define MR512 12
#define NV512 2 /* zmm per row: NR = 32 */
#define NR512 (16 * NV512)
_Static_assert(MR512 * NR512 <= MM_TILE_MAX, "edge-tile scratch");

/* 16 weights W[row][k..k+15] as fp32; k is a multiple of 16; m masks a K tail (f32/f16/bf16
 * only: q8_0 rows are whole blocks) */
LB_AVX512 static LB_INLINE __m512 ld16_avx512(enum dtype t, const void *row, int64_t k,
                                              __mmask16 m) {
    switch (t) {
    case DTYPE_F32: return _mm512_maskz_loadu_ps(m, (const float *)row + k);
    case DTYPE_F16: return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const lb_fp16 *)row + k));
    case DTYPE_BF16:
        return _mm512_castsi512_ps(_mm512_slli_epi32(
            _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, (const lb_bf16 *)row + k)), 16));
    default: { /* DTYPE_Q8_0 */
        const struct block_q8_0 *b = (const struct block_q8_0 *)row + k / QK8_0;
        const __m128i q = _mm_loadu_si128((const __m128i *)(b->qs + (k % QK8_0)));
        return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)),
                             _mm512_set1_ps(_cvtsh_ss(b->d)));
    }
    }
}

/* unmasked variant for the GEMV's main loop */
LB_AVX512 static LB_INLINE __m512 ld16f_avx512(enum dtype t, const void *row, int64_t k) {
    switch (t) {
    case DTYPE_F32: return _mm512_loadu_ps((const float *)row + k);
    case DTYPE_F16:
        return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const lb_fp16 *)row + k)));
    case DTYPE_BF16:
        return _mm512_castsi512_ps(_mm512_slli_epi32(
            _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)((const lb_bf16 *)row + k))),
            16));
    default: return ld16_avx512(t, row, k, 0xffff);
    }
}

/* in-register 16×16 transpose: r[i][j] -> r[j][i] */
LB_AVX512 static LB_INLINE void tr16_avx512(__m512 r[16]) {
    __m512 t[16], u[16];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    /* u[4g + j], 128-bit lane L: rows 4g..4g+3 of column 4L + j */
#pragma GCC unroll 4
    for (int g = 0; g < 4; g++) {
        u[4 * g + 0] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
        u[4 * g + 1] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0xee);
        u[4 * g + 2] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
        u[4 * g + 3] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xee);
    }
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        const __m512 v0 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x88);
        const __m512 w0 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0x88);
        const __m512 v1 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xdd);
        const __m512 w1 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0xdd);
        r[j] = _mm512_shuffle_f32x4(v0, w0, 0x88);
        r[8 + j] = _mm512_shuffle_f32x4(v0, w0, 0xdd);
        r[4 + j] = _mm512_shuffle_f32x4(v1, w1, 0x88);
        r[12 + j] = _mm512_shuffle_f32x4(v1, w1, 0xdd);
    }
}

LB_AVX512 static void tile_avx512(int64_t kc, const float *restrict a, const float *restrict b,
                                  float *restrict c, int64_t ldc, int first) {
    __m512 acc[MR512][NV512];
#pragma GCC unroll 16
    for (int i = 0; i < MR512; i++)
#pragma GCC unroll 4
        for (int v = 0; v < NV512; v++)
            acc[i][v] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(c + i * ldc + 16 * v);
#pragma GCC unroll 2
    for (int64_t k = 0; k < kc; k++, a += MR512, b += NR512) {
        __m512 bv[NV512];
#pragma GCC unroll 4
        for (int v = 0; v < NV512; v++) bv[v] = _mm512_load_ps(b + 16 * v);
#pragma GCC unroll 16
        for (int i = 0; i < MR512; i++) {
            const __m512 ai = _mm512_set1_ps(a[i]);
#pragma GCC unroll 4
            for (int v = 0; v < NV512; v++) acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
        }
    }
#pragma GCC unroll 16
    for (int i = 0; i < MR512; i++)
#pragma GCC unroll 4
        for (int v = 0; v < NV512; v++) _mm512_storeu_ps(c + i * ldc + 16 * v, acc[i][v]);
}

/* 16 rows × 16 k per transpose; rows past n_valid are zero, the K tail is masked */
LB_AVX512 static LB_INLINE void pack_b_avx512_t(enum dtype t, float *dst, const struct tensor *w,
                                                int64_t n0, int n_valid, int64_t k0, int64_t kc) {
    const size_t rb = tensor_row_bytes(w);
    const char *base = (const char *)w->data + (size_t)n0 * rb;
    for (int h = 0; h < NV512; h++) {
        for (int64_t k = 0; k < kc; k += 16) {
            const int len = (int)LB_MIN(16, kc - k);
            const __mmask16 m = (__mmask16)((1u << len) - 1);
            __m512 r[16];
#pragma GCC unroll 16
            for (int i = 0; i < 16; i++)
                r[i] = 16 * h + i < n_valid
                           ? ld16_avx512(t, base + (size_t)(16 * h + i) * rb, k0 + k, m)
                           : _mm512_setzero_ps();
            tr16_avx512(r);
            float *d = dst + k * NR512 + 16 * h;
#pragma GCC unroll 16
            for (int i = 0; i < 16; i++)
                if (i < len) _mm512_store_ps(d + i * NR512, r[i]);
        }
    }
}

LB_AVX512 static void pack_b_avx512(float *dst, const struct tensor *w, int64_t n0, int n_valid,
                                    int64_t k0, int64_t kc) {
    switch (w->type) {
    case DTYPE_F32: pack_b_avx512_t(DTYPE_F32, dst, w, n0, n_valid, k0, kc); break;
    case DTYPE_F16: pack_b_avx512_t(DTYPE_F16, dst, w, n0, n_valid, k0, kc); break;
    case DTYPE_BF16: pack_b_avx512_t(DTYPE_BF16, dst, w, n0, n_valid, k0, kc); break;
    case DTYPE_Q8_0: pack_b_avx512_t(DTYPE_Q8_0, dst, w, n0, n_valid, k0, kc); break;
    default: BUG("matmul: dtype %d has no kernel", (int)w->type);
    }
}

/* 16 k × MR512 tokens per 16×16 transpose (rows past `rows` and the 4 spare rows zero, the K tail
 * masked), stored as 16 masked 12-float rows */
LB_AVX512 static void pack_a_avx512(float *dst, const float *x, const int32_t *perm, int64_t K,
                                    int rows) {
    for (int64_t k = 0; k < K; k += 16) {
        const int len = (int)LB_MIN(16, K - k);
        const __mmask16 m = (__mmask16)((1u << len) - 1);
        const __m512i idx = perm ? _mm512_maskz_loadu_epi32(m, perm + k) : _mm512_setzero_si512();
        __m512 r[16];
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++) {
            const float *src = x + (size_t)i * (size_t)K;
            r[i] = i >= rows ? _mm512_setzero_ps()
                   : perm    ? _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, idx, src, 4)
                             : _mm512_maskz_loadu_ps(m, src + k);
        }
        tr16_avx512(r);
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++)
            if (i < len) _mm512_mask_storeu_ps(dst + (k + i) * MR512, (1u << MR512) - 1, r[i]);
    }
}

/* NT tokens × R rows of W per pass (x loads shared by R rows, W loads by NT tokens); one 16-lane
 * accumulator per (token, row) sums k ≡ lane (mod 16) in k order, the K tail masked, then
 * _mm512_reduce_add_ps. y[t][n] depends only on row n, x[t] and K (not on NT, R or threads). */
LB_AVX512 static LB_INLINE void gemv_avx512_rows(enum dtype t, const int NT, const int R, float *y,
                                                 int64_t ldy, const float *x,
                                                 const struct tensor *w, int64_t n) {
    const int64_t K = w->ne[0];
    const void *row[4];
    __m512 acc[4][4];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) row[r] = tensor_row(w, n + r);
#pragma GCC unroll 4
    for (int i = 0; i < NT; i++)
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) acc[i][r] = _mm512_setzero_ps();
    int64_t k = 0;
    if (t == DTYPE_Q8_0) { /* a block per step: one scale, the same k order as below */
        for (; k < K; k += QK8_0) {
            __m512 xv[4][2];
#pragma GCC unroll 4
            for (int i = 0; i < NT; i++) {
                xv[i][0] = _mm512_loadu_ps(x + i * K + k);
                xv[i][1] = _mm512_loadu_ps(x + i * K + k + 16);
            }
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                const struct block_q8_0 *b = (const struct block_q8_0 *)row[r] + k / QK8_0;
                const __m512 d = _mm512_set1_ps(_cvtsh_ss(b->d));
#pragma GCC unroll 2
                for (int h = 0; h < 2; h++) {
                    const __m128i q = _mm_loadu_si128((const __m128i *)(b->qs + 16 * h));
                    const __m512 wv = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)), d);
#pragma GCC unroll 4
                    for (int i = 0; i < NT; i++)
                        acc[i][r] = _mm512_fmadd_ps(wv, xv[i][h], acc[i][r]);
                }
            }
        }
    }
    for (; k + 16 <= K; k += 16) {
        __m512 xv[4];
#pragma GCC unroll 4
        for (int i = 0; i < NT; i++) xv[i] = _mm512_loadu_ps(x + i * K + k);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const __m512 wv = ld16f_avx512(t, row[r], k);
#pragma GCC unroll 4
            for (int i = 0; i < NT; i++) acc[i][r] = _mm512_fmadd_ps(wv, xv[i], acc[i][r]);
        }
    }
    if (k < K) {
        const __mmask16 m = (__mmask16)((1u << (K - k)) - 1);
        __m512 xv[4];
#pragma GCC unroll 4
        for (int i = 0; i < NT; i++) xv[i] = _mm512_maskz_loadu_ps(m, x + i * K + k);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const __m512 wv = ld16_avx512(t, row[r], k, m);
#pragma GCC unroll 4
            for (int i = 0; i < NT; i++) acc[i][r] = _mm512_fmadd_ps(wv, xv[i], acc[i][r]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < NT; i++)
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) y[i * ldy + n + r] = _mm512_reduce_add_ps(acc[i][r]);
}

LB_AVX512 static LB_INLINE void gemv_avx512_t(enum dtype t, const int NT, float *y, int64_t ldy,
                                              const float *x, const struct tensor *w, int64_t n0,
                                              int64_t n1) {
    int64_t n = n0;
    for (; n + 4 <= n1; n += 4) gemv_avx512_rows(t, NT, 4, y, ldy, x, w, n);
    for (; n < n1; n++) gemv_avx512_rows(t, NT, 1, y, ldy, x, w, n);
}

#define GEMV_CASES(ISA, T)                                                                         \
    switch (nt) {                                                                                  \
    case 1: gemv_##ISA##_t(T, 1, y, ldy, x, w, n0, n1); break;                                     \
    case 2: gemv_##ISA##_t(T, 2, y, ldy, x, w, n0, n1); break;                                     \
    case 3: gemv_##ISA##_t(T, 3, y, ldy, x, w, n0, n1); break;                                     \
    default: gemv_##ISA##_t(T, 4, y, ldy, x, w, n0, n1); break;                                    \
    }

LB_AVX512 static void gemv_avx512(float *y, int64_t ldy, const float *x, int n_tok,
                                  const struct tensor *w, int64_t n0, int64_t n1) {
    for (int t0 = 0; t0 < n_tok; t0 += 4, y += 4 * ldy, x += 4 * w->ne[0]) {
        const int nt = LB_MIN(4, n_tok - t0);
        switch (w->type) {
        case DTYPE_F32: GEMV_CASES(avx512, DTYPE_F32) break;
        case DTYPE_F16: GEMV_CASES(avx512, DTYPE_F16) break;
        case DTYPE_BF16: GEMV_CASES(avx512, DTYPE_BF16) break;
        case DTYPE_Q8_0: GEMV_CASES(avx512, DTYPE_Q8_0) break;
        default: BUG("matmul: dtype %d has no kernel", (int)w->type);
        }
    }
}

/* 12 independent zmm FMA chains: enough to cover 4-cycle latency on 2 FMA pipes */
LB_AVX512 static double fma_loop_avx512(int64_t iters, float *sink) {
    __m512 acc[12];
    const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-6f);
#pragma GCC unroll 12
    for (int j = 0; j < 12; j++) acc[j] = _mm512_set1_ps((float)j);
    for (int64_t it = 0; it < iters; it++) {
#pragma GCC unroll 12
        for (int j = 0; j < 12; j++) acc[j] = _mm512_fmadd_ps(acc[j], m, c);
    }
#pragma GCC unroll 12
    for (int j = 1; j < 12; j++) acc[0] = _mm512_add_ps(acc[0], acc[j]);
    *sink += _mm512_reduce_add_ps(acc[0]);
    return (double)iters * 12 * 16 * 2;
}

/* GEMV up to T = 32: measured crossover with the 12×32 GEMM (f32 and q8_0, L3- and DRAM-sized W) */
static const struct mm_kern kern_avx512 = {
    "avx512", MR512, NR512, 32, tile_avx512, pack_b_avx512, gemv_avx512, fma_loop_avx512,
    pack_a_avx512};

/* ===== AVX2 (avx2 + fma + f16c) ===== */

/* 6×16 tile: 12 ymm accumulators + 2 for W + 1 broadcast (of 16) */
#define MR256 6
#define NV256 2 /* ymm per row: NR = 16 */
#define NR256 (8 * NV256)
_Static_assert(MR256 * NR256 <= MM_TILE_MAX, "edge-tile scratch");

/* 8 weights W[row][k..k+7] as fp32; k is a multiple of 8 and k + 8 <= K */
LB_AVX2 static LB_INLINE __m256 ld8_avx2(enum dtype t, const void *row, int64_t k) {
    switch (t) {
    case DTYPE_F32: return _mm256_loadu_ps((const float *)row + k);
    case DTYPE_F16:
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const lb_fp16 *)row + k)));
    case DTYPE_BF16:
        return _mm256_castsi256_ps(_mm256_slli_epi32(
            _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const lb_bf16 *)row + k))),
            16));
    default: { /* DTYPE_Q8_0 */
        const struct block_q8_0 *b = (const struct block_q8_0 *)row + k / QK8_0;
        const __m128i q = _mm_loadl_epi64((const __m128i *)(b->qs + (k % QK8_0)));
        return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)),
                             _mm256_set1_ps(_cvtsh_ss(b->d)));
    }
    }
}

/* the first len (< 8) weights from k, zero-filled */
LB_AVX2 static LB_INLINE __m256 ld8_tail_avx2(enum dtype t, const void *row, int64_t k, int len) {
    float tmp[8] = {0};
    for (int i = 0; i < len; i++) tmp[i] = w_get(t, row, k + i);
    return _mm256_loadu_ps(tmp);
}

LB_AVX2 static LB_INLINE void tr8_avx2(__m256 r[8]) {
    __m256 t[8], u[8];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
#pragma GCC unroll 2
    for (int g = 0; g < 2; g++) {
        u[4 * g + 0] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
        u[4 * g + 1] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0xee);
        u[4 * g + 2] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
        u[4 * g + 3] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xee);
    }
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        r[j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x20);
        r[4 + j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x31);
    }
}

LB_AVX2 static void tile_avx2(int64_t kc, const float *restrict a, const float *restrict b,
                              float *restrict c, int64_t ldc, int first) {
    __m256 acc[MR256][NV256];
#pragma GCC unroll 8
    for (int i = 0; i < MR256; i++)
#pragma GCC unroll 4
        for (int v = 0; v < NV256; v++)
            acc[i][v] = first ? _mm256_setzero_ps() : _mm256_loadu_ps(c + i * ldc + 8 * v);
#pragma GCC unroll 2
    for (int64_t k = 0; k < kc; k++, a += MR256, b += NR256) {
        __m256 bv[NV256];
#pragma GCC unroll 4
        for (int v = 0; v < NV256; v++) bv[v] = _mm256_load_ps(b + 8 * v);
#pragma GCC unroll 8
        for (int i = 0; i < MR256; i++) {
            const __m256 ai = _mm256_broadcast_ss(a + i);
#pragma GCC unroll 4
            for (int v = 0; v < NV256; v++) acc[i][v] = _mm256_fmadd_ps(ai, bv[v], acc[i][v]);
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < MR256; i++)
#pragma GCC unroll 4
        for (int v = 0; v < NV256; v++) _mm256_storeu_ps(c + i * ldc + 8 * v, acc[i][v]);
}

LB_AVX2 static LB_INLINE void pack_b_avx2_t(enum dtype t, float *dst, const struct tensor *w,
                                            int64_t n0, int n_valid, int64_t k0, int64_t kc) {
    const size_t rb = tensor_row_bytes(w);
    const char *base = (const char *)w->data + (size_t)n0 * rb;
    for (int h = 0; h < NV256; h++) {
        for (int64_t k = 0; k < kc; k += 8) {
            const int len = (int)LB_MIN(8, kc - k);
            __m256 r[8];
#pragma GCC unroll 8
            for (int i = 0; i < 8; i++) {
                const void *row = base + (size_t)(8 * h + i) * rb;
                r[i] = 8 * h + i >= n_valid ? _mm256_setzero_ps()
                       : len == 8           ? ld8_avx2(t, row, k0 + k)
                                            : ld8_tail_avx2(t, row, k0 + k, len);
            }
            tr8_avx2(r);
            float *d = dst + k * NR256 + 8 * h;
#pragma GCC unroll 8
            for (int i = 0; i < 8; i++)
                if (i < len) _mm256_store_ps(d + i * NR256, r[i]);
        }
    }
}

LB_AVX2 static void pack_b_avx2(float *dst, const struct tensor *w, int64_t n0, int n_valid,
                                int64_t k0, int64_t kc) {
    switch (w->type) {
    case DTYPE_F32: pack_b_avx2_t(DTYPE_F32, dst, w, n0, n_valid, k0, kc); break;
    case DTYPE_F16: pack_b_avx2_t(DTYPE_F16, dst, w, n0, n_valid, k0, kc); break;
    case DTYPE_BF16: pack_b_avx2_t(DTYPE_BF16, dst, w, n0, n_valid, k0, kc); break;
    case DTYPE_Q8_0: pack_b_avx2_t(DTYPE_Q8_0, dst, w, n0, n_valid, k0, kc); break;
    default: BUG("matmul: dtype %d has no kernel", (int)w->type);
    }
}

/* 8 k × MR256 tokens per 8×8 transpose (rows past `rows` and the 2 spare rows zero), stored as 8
 * masked 6-float rows; the K tail (< 8) in scalar */
LB_AVX2 static void pack_a_avx2(float *dst, const float *x, const int32_t *perm, int64_t K,
                                int rows) {
    const __m256i keep = _mm256_setr_epi32(-1, -1, -1, -1, -1, -1, 0, 0); /* MR256 = 6 lanes */
    int64_t k = 0;
    for (; k + 8 <= K; k += 8) {
        const __m256i idx =
            perm ? _mm256_loadu_si256((const __m256i *)(perm + k)) : _mm256_setzero_si256();
        __m256 r[8];
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++) {
            const float *src = x + (size_t)i * (size_t)K;
            r[i] = i >= rows ? _mm256_setzero_ps()
                   : perm    ? _mm256_i32gather_ps(src, idx, 4)
                             : _mm256_loadu_ps(src + k);
        }
        tr8_avx2(r);
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++) _mm256_maskstore_ps(dst + (k + i) * MR256, keep, r[i]);
    }
    for (; k < K; k++)
        for (int i = 0; i < MR256; i++)
            dst[k * MR256 + i] =
                i < rows ? x[(size_t)i * (size_t)K + (size_t)(perm ? perm[k] : k)] : 0.0f;
}

/* fixed-order sum of the 8 lanes */
LB_AVX2 static LB_INLINE float hsum_avx2(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* as gemv_avx512_rows with 8 lanes, R = 4 rows for NT <= 2 and 2 rows above (16 ymm registers),
 * the K tail (< 8) summed in scalar and added after the lanes */
LB_AVX2 static LB_INLINE void gemv_avx2_rows(enum dtype t, const int NT, const int R, float *y,
                                             int64_t ldy, const float *x, const struct tensor *w,
                                             int64_t n) {
    const int64_t K = w->ne[0];
    const void *row[4];
    __m256 acc[4][4];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) row[r] = tensor_row(w, n + r);
#pragma GCC unroll 4
    for (int i = 0; i < NT; i++)
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) acc[i][r] = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 8 <= K; k += 8) {
        __m256 xv[4];
#pragma GCC unroll 4
        for (int i = 0; i < NT; i++) xv[i] = _mm256_loadu_ps(x + i * K + k);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const __m256 wv = ld8_avx2(t, row[r], k);
#pragma GCC unroll 4
            for (int i = 0; i < NT; i++) acc[i][r] = _mm256_fmadd_ps(wv, xv[i], acc[i][r]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < NT; i++)
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            float tail = 0.0f;
            for (int64_t j = k; j < K; j++) tail += w_get(t, row[r], j) * x[i * K + j];
            y[i * ldy + n + r] = hsum_avx2(acc[i][r]) + tail;
        }
}

LB_AVX2 static LB_INLINE void gemv_avx2_t(enum dtype t, const int NT, float *y, int64_t ldy,
                                          const float *x, const struct tensor *w, int64_t n0,
                                          int64_t n1) {
    const int R = NT <= 2 ? 4 : 2;
    int64_t n = n0;
    for (; n + R <= n1; n += R) gemv_avx2_rows(t, NT, R, y, ldy, x, w, n);
    for (; n < n1; n++) gemv_avx2_rows(t, NT, 1, y, ldy, x, w, n);
}

LB_AVX2 static void gemv_avx2(float *y, int64_t ldy, const float *x, int n_tok,
                              const struct tensor *w, int64_t n0, int64_t n1) {
    for (int t0 = 0; t0 < n_tok; t0 += 4, y += 4 * ldy, x += 4 * w->ne[0]) {
        const int nt = LB_MIN(4, n_tok - t0);
        switch (w->type) {
        case DTYPE_F32: GEMV_CASES(avx2, DTYPE_F32) break;
        case DTYPE_F16: GEMV_CASES(avx2, DTYPE_F16) break;
        case DTYPE_BF16: GEMV_CASES(avx2, DTYPE_BF16) break;
        case DTYPE_Q8_0: GEMV_CASES(avx2, DTYPE_Q8_0) break;
        default: BUG("matmul: dtype %d has no kernel", (int)w->type);
        }
    }
}

LB_AVX2 static double fma_loop_avx2(int64_t iters, float *sink) {
    __m256 acc[12];
    const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-6f);
#pragma GCC unroll 12
    for (int j = 0; j < 12; j++) acc[j] = _mm256_set1_ps((float)j);
    for (int64_t it = 0; it < iters; it++) {
#pragma GCC unroll 12
        for (int j = 0; j < 12; j++) acc[j] = _mm256_fmadd_ps(acc[j], m, c);
    }
#pragma GCC unroll 12
    for (int j = 1; j < 12; j++) acc[0] = _mm256_add_ps(acc[0], acc[j]);
    *sink += hsum_avx2(acc[0]);
    return (double)iters * 12 * 8 * 2;
}

/* GEMV up to T = 16: measured crossover with the 6×16 GEMM */
static const struct mm_kern kern_avx2 = {
    "avx2", MR256, NR256, 16, tile_avx2, pack_b_avx2, gemv_avx2, fma_loop_avx2, pack_a_avx2};
#endif /* LB_X86 */

/* ===== dispatch ===== */

/* the path of each ISA (kernels/cpu.h); NULL where this build has none */
static const struct mm_kern *const mm_kerns[CPU_ISA_COUNT] = {
    [CPU_ISA_GENERIC] = &kern_generic,
#if LB_X86
    [CPU_ISA_AVX2] = &kern_avx2,
    [CPU_ISA_AVX512] = &kern_avx512,
#endif
};

/* the path matmul uses (cpu_isa(): the widest this CPU has, LOWBIT_ISA may lower it) */
static const struct mm_kern *mm_kern(void) { return mm_kerns[cpu_isa()]; }

/* ===== the driver (ISA-independent) ===== */

struct gemm_ctx {
    const struct mm_kern *kern;
    float *y;
    const float *x;
    const struct tensor *w;
    int64_t T, K, N;
    int64_t nt, mt; /* unit size in outputs and tokens (multiples of NR and MR) */
    int64_t n_units_n, n_units;
    float *ap; /* Ap[ceil(T/MR)][K][MR] */
    float *bp; /* per thread: Bp[NT/NR][KC][NR] */
    size_t bp_floats;
    float *wf; /* other dtypes, per thread: the unit's NT rows of W in fp32, [NT][K] */
    size_t wf_floats;
    const int32_t *perm; /* X column gather (matmul_gemm_deq), NULL: identity */
    mm_deq_fn deq;       /* parametric types: W rows come from here (matmul_gemm_deq) */
    float *wd;           /* with deq, per thread: one micro-panel's rows, [NR][MM_KC] */
    int nth_max;         /* threads planned for */
    size_t ap_floats, bytes; /* the scratch: Ap, then Bp (and wf) per thread, then wd */
};

static int64_t div_up(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* [i0, i1) of n items for thread ith of nth */
static void split(int64_t n, int ith, int nth, int64_t *i0, int64_t *i1) {
    *i0 = n * ith / nth;
    *i1 = n * (ith + 1) / nth;
}

/* the dtypes with their own kernels; every other non-parametric one (GGUF legacy and k-quant
 * blocks) goes through tensor_row_to_f32 into an fp32 view of a few rows ("convert-through") */
static bool mm_native(enum dtype t) {
    return t == DTYPE_F32 || t == DTYPE_F16 || t == DTYPE_BF16 || t == DTYPE_Q8_0;
}

/* *v = rows [n0, n1) of w dequantized into buf ([n1 - n0][K] floats), as an f32 tensor */
static void mm_rows_f32(struct tensor *v, const struct tensor *w, int64_t n0, int64_t n1,
                        float *buf) {
    const int64_t K = w->ne[0];
    for (int64_t n = n0; n < n1; n++) tensor_row_to_f32(w, n, buf + (n - n0) * K);
    *v = (struct tensor){.type = DTYPE_F32, .n_dims = 2, .ne = {K, n1 - n0, 1, 1}, .data = buf};
}

static void gemm_pack_a(const struct gemm_ctx *g, int ith, int nth) {
    const int mr = g->kern->mr;
    int64_t g0, g1;
    split(div_up(g->T, mr), ith, nth, &g0, &g1);
    for (int64_t gi = g0; gi < g1; gi++)
        g->kern->pack_a(g->ap + (size_t)(gi * g->K * mr), g->x + (size_t)(gi * mr * g->K), g->perm,
                        g->K, (int)LB_MIN(mr, g->T - gi * mr));
}

static void gemm_units(const struct gemm_ctx *g, int ith, int nth) {
    const struct mm_kern *kn = g->kern;
    const int mr = kn->mr, nr = kn->nr;
    float *bp = g->bp + (size_t)ith * g->bp_floats;
    _Alignas(64) float tmp[MM_TILE_MAX] = {0}; /* edge tiles; padding lanes stay finite */
    int64_t u0, u1;
    split(g->n_units, ith, nth, &u0, &u1);
    for (int64_t u = u0; u < u1; u++) {
        const int64_t n0 = (u % g->n_units_n) * g->nt, n1 = LB_MIN(g->N, n0 + g->nt);
        const int64_t t0 = (u / g->n_units_n) * g->mt, t1 = LB_MIN(g->T, t0 + g->mt);
        const struct tensor *w = g->w;
        int64_t wn0 = n0; /* row n of W is row n - wn0 of w */
        struct tensor view;
        if (g->wf) {
            mm_rows_f32(&view, g->w, n0, n1, g->wf + (size_t)ith * g->wf_floats);
            w = &view;
            wn0 = 0;
        }
        for (int64_t k0 = 0; k0 < g->K; k0 += MM_KC) {
            const int64_t kc = LB_MIN(MM_KC, g->K - k0);
            const int first = k0 == 0;
            for (int64_t p = n0; p < n1; p += nr) {
                const int n_valid = (int)LB_MIN(nr, n1 - p);
                if (!g->deq) {
                    kn->pack_b(bp + (p - n0) * kc, w, p - n0 + wn0, n_valid, k0, kc);
                    continue;
                }
                /* parametric: the panel's rows dequantized (whole 32-column chunks), then packed
                 * as f32 rows */
                float *wd = g->wd + (size_t)ith * (size_t)nr * MM_KC;
                for (int j = 0; j < n_valid; j++)
                    g->deq(w, p + j, k0, (kc + 31) / 32 * 32, wd + (size_t)j * MM_KC);
                const struct tensor rows = {
                    .type = DTYPE_F32, .n_dims = 2, .ne = {MM_KC, nr, 1, 1}, .data = wd};
                kn->pack_b(bp + (p - n0) * kc, &rows, 0, n_valid, 0, kc);
            }
            for (int64_t p = n0; p < n1; p += nr) {
                const float *b = bp + (p - n0) * kc;
                const int cols = (int)LB_MIN(nr, n1 - p);
                for (int64_t t = t0; t < t1; t += mr) {
                    const float *a = g->ap + (size_t)(t * g->K + k0 * mr);
                    float *c = g->y + (size_t)(t * g->N + p);
                    const int rows = (int)LB_MIN(mr, t1 - t);
                    if (rows == mr && cols == nr) {
                        kn->tile(kc, a, b, c, g->N, first);
                        continue;
                    }
                    /* edge tile: through tmp[MR][NR] */
                    if (!first)
                        for (int i = 0; i < rows; i++)
                            memcpy(tmp + i * nr, c + i * g->N, (size_t)cols * sizeof(float));
                    kn->tile(kc, a, b, tmp, nr, first);
                    for (int i = 0; i < rows; i++)
                        memcpy(c + i * g->N, tmp + i * nr, (size_t)cols * sizeof(float));
                }
            }
        }
    }
}

/* wf: NULL for the native dtypes, else MM_GEMV_NB·K floats per thread for convert-through */
static void gemv_thread(const struct mm_kern *kn, float *y, const float *x, const struct tensor *w,
                        int n_tok, float *wf, int ith, int nth) {
    const int64_t N = tensor_nrows(w);
    int64_t c0, c1;
    split(div_up(N, MM_GEMV_CHUNK), ith, nth, &c0, &c1);
    const int64_t n0 = c0 * MM_GEMV_CHUNK, n1 = LB_MIN(N, c1 * MM_GEMV_CHUNK);
    if (wf) wf += (size_t)ith * MM_GEMV_NB * (size_t)w->ne[0];
    /* blocks of rows small enough to stay in L2 while every group of 4 tokens passes over them */
    for (int64_t nb = n0; nb < n1; nb += MM_GEMV_NB) {
        const int64_t ne = LB_MIN(n1, nb + MM_GEMV_NB);
        if (!wf) {
            kn->gemv(y, N, x, n_tok, w, nb, ne);
        } else {
            struct tensor view;
            mm_rows_f32(&view, w, nb, ne, wf);
            kn->gemv(y + nb, N, x, n_tok, &view, 0, ne - nb);
        }
    }
}

static bool mm_parallel(int n_tok, const struct tensor *w) {
    return (double)n_tok * (double)w->ne[0] * (double)tensor_nrows(w) >= MM_PAR_MIN_MAC;
}

/* the GEMV's scratch: none for the native dtypes, else MM_GEMV_NB rows of fp32 per thread */
static size_t gemv_bytes(const struct tensor *w, int nth_max) {
    return mm_native(w->type) ? 0 : (size_t)nth_max * MM_GEMV_NB * (size_t)w->ne[0] * sizeof(float);
}

static int matmul_gemv(const struct mm_kern *kn, float *y, const float *x, const struct tensor *w,
                       int n_tok, struct kscratch *ws) {
    const int nth_max = mm_parallel(n_tok, w) ? lb_threads() : 1;
    float *wf = NULL;
    void *owned = NULL;
    const size_t bytes = gemv_bytes(w, nth_max);
    if (bytes && !(wf = kscratch_take(ws, bytes, &owned, w->name))) return -1;
#ifdef _OPENMP
#pragma omp parallel num_threads(nth_max)
    gemv_thread(kn, y, x, w, n_tok, wf, omp_get_thread_num(), omp_get_num_threads());
#else
    gemv_thread(kn, y, x, w, n_tok, wf, 0, 1);
#endif
    free(owned);
    return 0;
}

/* the blocked GEMM's units and scratch for n_tok tokens on nth_max threads (into g) */
static void gemm_plan(struct gemm_ctx *g, const struct mm_kern *kn, const struct tensor *w,
                      int n_tok, bool deq, int nth_max) {
    const int64_t K = w->ne[0], N = tensor_nrows(w);
    const bool through = !deq && !mm_native(w->type); /* convert-through */
    *g = (struct gemm_ctx){.kern = kn, .w = w, .T = n_tok, .K = K, .N = N, .nth_max = nth_max};
    /* units: enough of them (about 4 per thread) for balance, at most MM_NT_MAX × MM_MT_MAX */
    const int64_t panels = div_up(N, kn->nr);
    const int64_t n_units_m = div_up(n_tok, MM_MT_MAX);
    g->mt = div_up(div_up(n_tok, n_units_m), kn->mr) * kn->mr;
    const int64_t want_n = div_up(4 * (int64_t)nth_max, n_units_m);
    g->nt = LB_MIN(MM_NT_MAX / kn->nr, LB_MAX(1, panels / want_n)) * kn->nr;
    if (through) /* convert-through: at most ~4 MiB of fp32 rows per thread */
        g->nt = LB_MAX(1, LB_MIN(g->nt, ((int64_t)1 << 20) / K) / kn->nr) * kn->nr;
    g->n_units_n = div_up(N, g->nt);
    g->n_units = g->n_units_n * n_units_m;
    g->bp_floats = (size_t)g->nt * MM_KC;
    g->wf_floats = through ? (size_t)g->nt * (size_t)K : 0;
    const size_t wd_floats = deq ? (size_t)kn->nr * MM_KC * (size_t)nth_max : 0;
    /* rounded up to 16 floats so that every Bp is 64-byte aligned */
    g->ap_floats = ((size_t)(div_up(n_tok, kn->mr) * kn->mr) * (size_t)K + 15) / 16 * 16;
    g->bytes = (g->ap_floats + (g->bp_floats + g->wf_floats) * (size_t)nth_max + wd_floats) *
               sizeof(float);
}

/* the blocked GEMM for any n_tok; deq and perm: see matmul_gemm_deq (NULL for matmul's own
 * dtypes). -1 with a message when its scratch cannot be had (y untouched). */
static int mm_gemm(const struct mm_kern *kn, float *y, const float *x, const int32_t *perm,
                   const struct tensor *w, int n_tok, mm_deq_fn deq, struct kscratch *ws) {
    struct gemm_ctx g;
    gemm_plan(&g, kn, w, n_tok, deq != NULL, mm_parallel(n_tok, w) ? lb_threads() : 1);
    g.y = y, g.x = x, g.perm = perm, g.deq = deq;
    void *owned = NULL;
    float *buf = kscratch_take(ws, g.bytes, &owned, w->name);
    if (!buf) return -1;
    g.ap = buf;
    g.bp = buf + g.ap_floats;
    g.wf = g.wf_floats ? g.bp + g.bp_floats * (size_t)g.nth_max : NULL;
    g.wd = deq ? g.bp + (g.bp_floats + g.wf_floats) * (size_t)g.nth_max : NULL;
#ifdef _OPENMP
#pragma omp parallel num_threads(g.nth_max)
    {
        const int ith = omp_get_thread_num(), nth = omp_get_num_threads();
        gemm_pack_a(&g, ith, nth);
#pragma omp barrier
        gemm_units(&g, ith, nth);
    }
#else
    gemm_pack_a(&g, 0, 1);
    gemm_units(&g, 0, 1);
#endif
    free(owned);
    return 0;
}

size_t matmul_gemm_deq_scratch(const struct tensor *w, int n_tok, enum cpu_isa isa, int n_threads) {
    const struct mm_kern *kn = (unsigned)isa < CPU_ISA_COUNT ? mm_kerns[isa] : NULL;
    if (!kn || n_tok <= 0 || tensor_nrows(w) <= 0) return 0;
    struct gemm_ctx g;
    gemm_plan(&g, kn, w, n_tok, true, mm_parallel(n_tok, w) ? n_threads : 1);
    return g.bytes;
}

size_t matmul_scratch(const struct tensor *w, int n_tok, int n_threads) {
    if (dtype_is_parametric(w->type)) return matmul_q_scratch(w, n_tok, n_threads);
    const struct mm_kern *kn = mm_kern();
    if (n_tok <= 0 || tensor_nrows(w) <= 0) return 0;
    const int nth = mm_parallel(n_tok, w) ? n_threads : 1;
    if (n_tok <= kn->gemv_max_tok) return gemv_bytes(w, nth);
    struct gemm_ctx g;
    gemm_plan(&g, kn, w, n_tok, false, nth);
    return g.bytes;
}

int matmul_ws(float *y, const float *x, const struct tensor *w, int n_tok, struct kscratch *ws) {
    if (dtype_is_parametric(w->type)) /* qint/nf4/fp4/i8row: fused kernels, kernels/matmul_q.c */
        return matmul_q_ws(y, x, w, n_tok, ws);
    const struct mm_kern *kn = mm_kern();
    if (n_tok <= 0 || tensor_nrows(w) <= 0) return 0;
    /* GEMV for few tokens (the faster path there) */
    if (n_tok <= kn->gemv_max_tok) return matmul_gemv(kn, y, x, w, n_tok, ws);
    return mm_gemm(kn, y, x, NULL, w, n_tok, NULL, ws);
}

int matmul(float *y, const float *x, const struct tensor *w, int n_tok) {
    return matmul_ws(y, x, w, n_tok, NULL);
}

int matmul_gemm_deq(float *y, const float *x, const int32_t *perm, const struct tensor *w,
                    int n_tok, enum cpu_isa isa, mm_deq_fn deq, struct kscratch *ws) {
    const struct mm_kern *kn = (unsigned)isa < CPU_ISA_COUNT ? mm_kerns[isa] : NULL;
    if (!kn) return err("matmul: instruction set %d has no kernel", (int)isa);
    if (n_tok <= 0 || tensor_nrows(w) <= 0) return 0;
    return mm_gemm(kn, y, x, perm, w, n_tok, deq, ws);
}

/* ===== scratch (matmul.h) ===== */

static int ks_fail_after = -1; /* kscratch_fail_after(): allocations left before failing */

void kscratch_fail_after(int n) { ks_fail_after = n; }

void *kscratch_take(struct kscratch *ws, size_t bytes, void **owned, const char *what) {
    *owned = NULL;
    if (ws && ws->p && ws->bytes >= bytes) return ws->p;
    void *p = NULL;
    if (ks_fail_after != 0) p = aligned_alloc(64, (LB_MAX(bytes, 1) + 63) / 64 * 64);
    if (ks_fail_after > 0) ks_fail_after--;
    if (!p) {
        err("out of memory: %zu bytes of kernel scratch for %s", bytes, what ? what : "a kernel");
        return NULL;
    }
    *owned = p;
    return p;
}

int kscratch_init(struct kscratch *ws, size_t bytes) {
    memset(ws, 0, sizeof *ws);
    if (!bytes) return 0;
    void *owned;
    ws->p = kscratch_take(NULL, bytes, &owned, "the planned workspace");
    if (!ws->p) return -1;
    ws->bytes = bytes;
    return 0;
}

void kscratch_release(struct kscratch *ws) {
    free(ws->p);
    memset(ws, 0, sizeof *ws);
}

/* ===== FMA peak ===== */

/* Every thread runs rounds of a fixed FMA count for `seconds`, all threads at once, and keeps its
 * best round's rate; the result is the sum over threads. Best-of-rounds measures the machine, not
 * its load: a round where the OS ran something else on our core does not count (and there are no
 * barriers per round, whose wake-ups cost milliseconds on a busy machine). Uses the CPU's widest
 * ISA whatever LOWBIT_ISA says. */
double kernels_fma_peak_gflops(int n_threads, double seconds) {
    const mm_fma_fn loop = mm_kerns[cpu_isa_best()]->fma_loop;
    const int64_t iters = 1 << 15; /* about 50 us per round at avx512 speed */
    double sum = 0.0;
    float sink = 0.0f;
#ifdef _OPENMP
#pragma omp parallel num_threads(LB_MAX(1, n_threads)) reduction(+ : sum, sink)
#else
    (void)n_threads;
#endif
    {
        double best = 0.0;
        loop(iters, &sink); /* warm up the vector unit */
        const double t_start = now_s();
        double t0 = t_start, t1;
        do {
            const double f = loop(iters, &sink);
            t1 = now_s();
            if (t1 > t0 && f / (t1 - t0) > best) best = f / (t1 - t0);
            t0 = t1;
        } while (t1 - t_start < seconds);
        sum += best;
    }
    if (sink == 12345.678f) fprintf(stderr, "%g\n", (double)sink); /* keeps the loops alive */
    return sum * 1e-9;
}
