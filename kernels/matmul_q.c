/* kernels/matmul_q.c: Y = X·Wᵀ on packed parametric weights (qint, NF4, FP4, LLM.int8), the
 * fused path matmul() forwards to (contract in kernels/qint.h and kernels/matmul.h).
 *
 * Legend: T = n_tok, K = w->ne[0], N = rows of W, Kp = K rounded up to 32 (stored columns,
 * padded).
 *
 * Method: weights are never expanded whole; every path dequantizes with exactly the fp32
 * operations of qtensor_row_to_f32 (d·(q − z), table[code]·absmax, (q·SCB)·(1/127)), so only the
 * order of the sums differs from matmul_ref. x is read in stored column order (the act-order
 * permutation q_perm, if any).
 *  - GEMV (T <= MQ_GEMV_MAX = 4, decoding): x gathered into xs[T][Kp] (zero-padded); weights
 *    dequantized in registers, 4 rows × T tokens per pass so each x vector serves 4 rows and each
 *    weight vector T tokens; one FMA chain per output (two for T = 1), lanes reduced in a fixed
 *    tree. qint walks its groups with a 16-entry table t[q] = d·(q − z) per row and group
 *    (AVX-512: one vpermps per 16 weights, b <= 4); NF4/FP4: nibble split, table permute, times
 *    the absmax of each lane's block.
 *  - GEMM (prefill): matmul.c's blocked GEMM (kernels/matmul_impl.h), the f16 path's: X packed
 *    once per call into MR-token micro-panels (gathered through q_perm), per unit of up to 256
 *    outputs × 576 tokens and K block of 256 the type's SIMD dequantizer (deq_*) writes each
 *    row's block to an L1 buffer that the driver transposes into NR-output micro-panels, then
 *    the 12×32 (AVX-512) tile runs over every token of the unit: each weight is dequantized once
 *    per call for T <= 576, and each y[t][n] is one FMA chain in stored-column order. The
 *    dequantizers prefetch the same block MQ_PF_ROWS rows ahead (DRAM latency otherwise).
 * Speed measured on one Zen 5 core (thread CPU time): the 7 matmuls × 12 layers of a
 * stories110M-shaped model at T = 512, distinct weights per layer (so W streams from DRAM),
 * AVX-512: int4 g128 ~202 GF/s, NF4 ~200, the f16 path ~192 (the tile runs at ~96% of the FMA
 * peak; X packing ~3%, dequantize + transpose ~2%); GEMV int4 g128 82 GF/s at T = 1, f16 57.
 * Numerics: only the summation order differs from matmul_ref, so |matmul_q − matmul_ref| <=
 * 2·(K+4)·2⁻²⁴·Σ_k|w·x| (tests/test_qformats.c checks it at awkward sizes on every ISA the CPU
 * has). Threads split rows (GEMV) or units (GEMM); each output is computed by one thread: results
 * are independent of the thread count. Scratch: one aligned_alloc per call. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "kernels/aqlm.h"
#include "kernels/matmul.h"
#include "kernels/matmul_impl.h"
#include "kernels/nf4.h"
#include "kernels/qint.h"

#include "kernels/cpu.h"
#if LB_X86
#include <immintrin.h>
#endif

#define MQ_KC 512          /* GEMV: stored columns dequantized per block (multiple of 32) */
#define MQ_GEMV_MAX 4      /* T at or below: GEMV */
#define MQ_PAR_MIN_MAC (1 << 17)

static int64_t pad32(int64_t k) { return (k + 31) & ~(int64_t)31; }
static int64_t round_up(int64_t a, int64_t b) { return (a + b - 1) / b * b; }

/* ===== reference ===== */

void matmul_q_ref(float *y, const float *x, const struct tensor *w, int n_tok) {
    matmul_ref_rows(y, x, w, n_tok, qtensor_row_to_f32);
}

/* ===== generic C dequantizers (stored columns [k0, k0+kc) of row n; k0 % 32 == 0; columns
 * at or past K come out 0) ===== */

static void deq_generic(const struct tensor *w, int64_t n, int64_t k0, int64_t kc, float *dst) {
    const int64_t K = w->ne[0], k1 = LB_MIN(K, k0 + kc);
    switch (w->type) {
    case DTYPE_QINT: {
        const uint8_t *row = tensor_row(w, n);
        const int64_t g = w->q_group;
        const struct qint_param *p = qint_params(w) + n * qint_n_groups(g, K);
        for (int64_t k = k0; k < k1; k++)
            dst[k - k0] = p[k / g].d * ((float)qint_code_get(row, w->q_bits, k) - p[k / g].z);
        break;
    }
    case DTYPE_NF4:
    case DTYPE_FP4: {
        const float *tab = w->type == DTYPE_NF4 ? nf4_table : fp4_table, *am = nf4_absmax(w);
        const uint8_t *row = tensor_row(w, n);
        const int64_t bs = w->q_group;
        for (int64_t k = k0; k < k1; k++)
            dst[k - k0] = tab[nf4_code_get(row, k)] * am[(n * K + k) / bs];
        break;
    }
    case DTYPE_I8ROW: {
        const int8_t *row = tensor_row(w, n);
        const float scb = nf4_absmax(w)[n];
        for (int64_t k = k0; k < k1; k++) dst[k - k0] = ((float)row[k] * scb) * BNB_INT8_RECIP;
        break;
    }
    default: BUG("matmul_q: dtype %d is not parametric", (int)w->type);
    }
    for (int64_t k = k1; k < k0 + kc; k++) dst[k - k0] = 0.0f;
}

/* Prefetch of the packed bytes of row n, stored columns [k0, k0+kc), and their scales. The SIMD
 * dequantizers call it for MQ_PF_ROWS rows ahead: the GEMM dequantizes a unit's rows one after the
 * other, each a short run (128 bytes of 4-bit codes per 256 columns) at a row stride the hardware
 * prefetchers do not follow, so without it every run waits for DRAM. */
#define MQ_PF_ROWS 8
static LB_INLINE void mq_prefetch(const struct tensor *w, int64_t n, int64_t k0, int64_t kc) {
    if (n >= tensor_nrows(w)) return;
    const int64_t K = w->ne[0];
    const char *p;
    size_t len;
    switch (w->type) {
    case DTYPE_QINT: {
        const size_t cb = 4u * (unsigned)w->q_bits;
        p = (const char *)tensor_row(w, n) + (size_t)(k0 / QINT_CHUNK) * cb;
        len = (size_t)((kc + QINT_CHUNK - 1) / QINT_CHUNK) * cb;
        __builtin_prefetch(qint_params(w) + n * qint_n_groups(w->q_group, K) + k0 / w->q_group);
        break;
    }
    case DTYPE_NF4:
    case DTYPE_FP4:
        p = (const char *)w->data + (size_t)n * (size_t)((K + 1) / 2) + k0 / 2;
        len = (size_t)(LB_MIN(kc, K - k0) + 1) / 2;
        __builtin_prefetch(nf4_absmax(w) + (n * K + k0) / w->q_group);
        break;
    default: /* DTYPE_I8ROW */
        p = (const char *)tensor_row(w, n) + k0;
        len = (size_t)LB_MIN(kc, K - k0);
        break;
    }
    for (size_t o = 0; o < len; o += 64) __builtin_prefetch(p + o);
    if (len) __builtin_prefetch(p + len - 1);
}

/* ===== the per-ISA table ===== */

typedef mm_deq_fn mq_deq_fn; /* matmul_impl.h; also feeds matmul.c's GEMM (prefill) */
/* y[t][n] for t < T, n0 <= n < n1; xs [T][Kp] */
typedef void (*mq_gemv_fn)(mq_deq_fn deq, float *y, int64_t N, const float *xs, int64_t Kp, int T,
                           const struct tensor *w, int64_t n0, int64_t n1);

struct mq_kern {
    const char *name;
    enum cpu_isa isa;
    mq_deq_fn deq;
    mq_gemv_fn gemv;
};

static void gemv_generic(mq_deq_fn deq, float *y, int64_t N, const float *xs, int64_t Kp, int T,
                         const struct tensor *w, int64_t n0, int64_t n1) {
    float tmp[MQ_KC];
    for (int64_t n = n0; n < n1; n++) {
        float p[MQ_GEMV_MAX][8] = {{0}};
        for (int64_t k0 = 0; k0 < Kp; k0 += MQ_KC) {
            const int64_t kc = LB_MIN(MQ_KC, Kp - k0);
            deq(w, n, k0, kc, tmp);
            for (int t = 0; t < T; t++) {
                const float *xt = xs + t * Kp + k0;
                for (int64_t k = 0; k < kc; k++) p[t][k & 7] += tmp[k] * xt[k];
            }
        }
        for (int t = 0; t < T; t++)
            y[t * N + n] = ((p[t][0] + p[t][4]) + (p[t][1] + p[t][5])) +
                           ((p[t][2] + p[t][6]) + (p[t][3] + p[t][7]));
    }
}

static const struct mq_kern mq_generic = {"generic", CPU_ISA_GENERIC, deq_generic, gemv_generic};

#if LB_X86
/* ===== AVX-512 ===== */

/* 32 codes of one qint chunk (layout in qint.h) as two vectors of int32 */
LB_AVX512 static inline void qint_unpack_avx512(const uint8_t *c, int bits, __m512i *q0,
                                                __m512i *q1) {
    switch (bits) {
    case 8:
        *q0 = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)c));
        *q1 = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(c + 16)));
        break;
    case 4: {
        const __m128i v = _mm_loadu_si128((const __m128i *)c), m = _mm_set1_epi8(0x0f);
        *q0 = _mm512_cvtepu8_epi32(_mm_and_si128(v, m));
        *q1 = _mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(v, 4), m));
        break;
    }
    default: { /* 2 and 3: byte i, bits 2m..2m+1 = column i + 8m */
        int64_t lo8;
        memcpy(&lo8, c, 8);
        const __m512i e = _mm512_cvtepu8_epi32(_mm_set1_epi64x(lo8)); /* b0..b7, b0..b7 */
        const __m512i s0 = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2);
        const __m512i s1 = _mm512_setr_epi32(4, 4, 4, 4, 4, 4, 4, 4, 6, 6, 6, 6, 6, 6, 6, 6);
        const __m512i three = _mm512_set1_epi32(3);
        *q0 = _mm512_and_si512(_mm512_srlv_epi32(e, s0), three);
        *q1 = _mm512_and_si512(_mm512_srlv_epi32(e, s1), three);
        if (bits == 3) {
            uint32_t hb;
            memcpy(&hb, c + 8, 4);
            const __m512i h = _mm512_set1_epi32((int)hb), one = _mm512_set1_epi32(1);
            const __m512i i0 = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
            const __m512i i1 = _mm512_add_epi32(i0, _mm512_set1_epi32(16));
            *q0 = _mm512_or_si512(*q0, _mm512_slli_epi32(_mm512_and_si512(_mm512_srlv_epi32(h, i0), one), 2));
            *q1 = _mm512_or_si512(*q1, _mm512_slli_epi32(_mm512_and_si512(_mm512_srlv_epi32(h, i1), one), 2));
        }
        break;
    }
    }
}

/* absmax for 16 consecutive flat positions base..base+15 (bs >= 32: at most two blocks) */
LB_AVX512 static inline __m512 absmax16_avx512(const float *am, int64_t base, int64_t bs) {
    const int64_t b0 = base / bs, rem = bs - base % bs;
    if (rem >= 16) return _mm512_set1_ps(am[b0]);
    return _mm512_mask_blend_ps((__mmask16)(0xffffu << rem), _mm512_set1_ps(am[b0]),
                                _mm512_set1_ps(am[b0 + 1]));
}

LB_AVX512 static inline float hsum_avx512(__m512 v) {
    __m256 s = _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

/* the 32 weights of one qint chunk, exactly d·(q − z): for b <= 4 through a 16-entry table
 * t[q] = d·(q − z) (the same fp32 operation per entry) and one permute per 16 weights
 * (vpermps reads the low 4 bits of each index, so the nibbles need no masking); for b = 8 by
 * conversion */
LB_AVX512 static LB_INLINE void qint_w32_avx512(const uint8_t *c, const int bits,
                                                const struct qint_param *p, __m512 *w0,
                                                __m512 *w1) {
    const __m512 d = _mm512_set1_ps(p->d), z = _mm512_set1_ps(p->z);
    if (bits == 8) {
        *w0 = _mm512_mul_ps(d, _mm512_sub_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(
                                                 _mm_loadu_si128((const __m128i *)c))), z));
        *w1 = _mm512_mul_ps(d, _mm512_sub_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(
                                                 _mm_loadu_si128((const __m128i *)(c + 16)))), z));
        return;
    }
    const __m512 lut = _mm512_mul_ps(
        d, _mm512_sub_ps(_mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), z));
    __m512i q0, q1;
    if (bits == 4) {
        const __m128i v = _mm_loadu_si128((const __m128i *)c);
        q0 = _mm512_cvtepu8_epi32(v);
        q1 = _mm512_cvtepu8_epi32(_mm_srli_epi16(v, 4));
    } else {
        qint_unpack_avx512(c, bits, &q0, &q1);
    }
    *w0 = _mm512_permutexvar_ps(q0, lut);
    *w1 = _mm512_permutexvar_ps(q1, lut);
}

LB_AVX512 static void deq_avx512(const struct tensor *w, int64_t n, int64_t k0, int64_t kc,
                                 float *dst);

/* 32 NF4/FP4 weights of row n at columns [k, k+32) (k + 32 <= K): nibbles split high-first,
 * table permute, times the absmax of each flat position (blocks of 2^lg, at most two per 16) */
LB_AVX512 static LB_INLINE void nf4_w32_avx512(const struct tensor *w, const __m512 tab,
                                               const float *am, int lg, int64_t n, int64_t k,
                                               __m512 *w0, __m512 *w1) {
    const uint8_t *row = (const uint8_t *)w->data + (size_t)n * (size_t)((w->ne[0] + 1) / 2);
    const __m128i v = _mm_loadu_si128((const __m128i *)(row + k / 2)), m = _mm_set1_epi8(0x0f);
    const __m128i hi = _mm_and_si128(_mm_srli_epi16(v, 4), m), lo = _mm_and_si128(v, m);
    const int64_t base = n * w->ne[0] + k, bs = (int64_t)1 << lg;
    __m512 a[2];
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        const int64_t b = base + 16 * h, b0 = b >> lg, rem = bs - (b & (bs - 1));
        a[h] = rem >= 16 ? _mm512_set1_ps(am[b0])
                         : _mm512_mask_blend_ps((__mmask16)(0xffffu << rem), _mm512_set1_ps(am[b0]),
                                                _mm512_set1_ps(am[b0 + 1]));
    }
    *w0 = _mm512_mul_ps(_mm512_permutexvar_ps(_mm512_cvtepu8_epi32(_mm_unpacklo_epi8(hi, lo)), tab), a[0]);
    *w1 = _mm512_mul_ps(_mm512_permutexvar_ps(_mm512_cvtepu8_epi32(_mm_unpackhi_epi8(hi, lo)), tab), a[1]);
}

/* R rows (R = 4, or 1 for the leftovers) × NT tokens with the dequantization in registers: each
 * x vector is loaded once for the R rows, each weight vector used by the NT tokens; one FMA chain
 * per output in k order (two for a single token: latency, not throughput, bounds it). qint walks
 * its groups (one 16-entry table per row and group); NF4/FP4/int8 dequantize the full 32-column
 * chunks here and the last partial chunk through deq_avx512. */
LB_AVX512 static LB_INLINE void gemv_rows_avx512_t(const enum dtype type, const int bits,
                                                   const int NT, const int R, float *y, int64_t N,
                                                   const float *xs, int64_t Kp,
                                                   const struct tensor *w, int64_t n) {
    const int64_t K = w->ne[0];
    __m512 acc[MQ_GEMV_MAX][4], acc1[4];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        acc1[r] = _mm512_setzero_ps();
#pragma GCC unroll 4
        for (int t = 0; t < NT; t++) acc[t][r] = _mm512_setzero_ps();
    }
#define MQ_FMA_CHUNK(k, r, w0, w1)                                                                  \
    do {                                                                                            \
        if (NT == 1) {                                                                              \
            acc[0][r] = _mm512_fmadd_ps(w0, x0[0], acc[0][r]);                                      \
            acc1[r] = _mm512_fmadd_ps(w1, x1[0], acc1[r]);                                          \
        } else {                                                                                    \
            _Pragma("GCC unroll 4") for (int t = 0; t < NT; t++) acc[t][r] =                        \
                _mm512_fmadd_ps(w1, x1[t], _mm512_fmadd_ps(w0, x0[t], acc[t][r]));                  \
        }                                                                                           \
    } while (0)
#define MQ_LOAD_X(k)                                                                                \
    __m512 x0[MQ_GEMV_MAX], x1[MQ_GEMV_MAX];                                                        \
    _Pragma("GCC unroll 4") for (int t = 0; t < NT; t++) {                                          \
        x0[t] = _mm512_loadu_ps(xs + t * Kp + (k));                                                 \
        x1[t] = _mm512_loadu_ps(xs + t * Kp + (k) + 16);                                            \
    }
    if (type == DTYPE_QINT) {
        const int64_t g = w->q_group, ng = qint_n_groups(g, K);
        const size_t cb = 4u * (unsigned)bits, rb = tensor_row_bytes(w);
        const uint8_t *row = (const uint8_t *)w->data + (size_t)n * rb;
        const struct qint_param *p = qint_params(w) + n * ng;
        const __m512 iota = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        for (int64_t gi = 0; gi < ng; gi++) {
            __m512 lut[4], d[4], z[4];
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                d[r] = _mm512_set1_ps(p[r * ng + gi].d);
                z[r] = _mm512_set1_ps(p[r * ng + gi].z);
                lut[r] = _mm512_mul_ps(d[r], _mm512_sub_ps(iota, z[r])); /* t[q] = d·(q − z) */
            }
            const int64_t k1 = gi + 1 < ng ? (gi + 1) * g : Kp;
            for (int64_t k = gi * g; k < k1; k += QINT_CHUNK) {
                MQ_LOAD_X(k)
#pragma GCC unroll 4
                for (int r = 0; r < R; r++) {
                    const uint8_t *c = row + (size_t)r * rb + (size_t)(k / QINT_CHUNK) * cb;
                    __m512 w0, w1;
                    if (bits == 8) {
                        w0 = _mm512_mul_ps(d[r], _mm512_sub_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(
                                                                   _mm_loadu_si128((const __m128i *)c))), z[r]));
                        w1 = _mm512_mul_ps(d[r], _mm512_sub_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(
                                                                   _mm_loadu_si128((const __m128i *)(c + 16)))), z[r]));
                    } else {
                        __m512i q0, q1;
                        if (bits == 4) { /* vpermps reads the low 4 bits: no masking */
                            const __m128i v = _mm_loadu_si128((const __m128i *)c);
                            q0 = _mm512_cvtepu8_epi32(v);
                            q1 = _mm512_cvtepu8_epi32(_mm_srli_epi16(v, 4));
                        } else {
                            qint_unpack_avx512(c, bits, &q0, &q1);
                        }
                        w0 = _mm512_permutexvar_ps(q0, lut[r]);
                        w1 = _mm512_permutexvar_ps(q1, lut[r]);
                    }
                    MQ_FMA_CHUNK(k, r, w0, w1);
                }
            }
        }
    } else {
        const int64_t kfull = K / QINT_CHUNK * QINT_CHUNK;
        const float *am = nf4_absmax(w);
        if (type == DTYPE_I8ROW) {
            const __m512 rc = _mm512_set1_ps(BNB_INT8_RECIP);
            for (int64_t k = 0; k < kfull; k += QINT_CHUNK) {
                MQ_LOAD_X(k)
#pragma GCC unroll 4
                for (int r = 0; r < R; r++) {
                    const int8_t *c = (const int8_t *)w->data + (size_t)(n + r) * (size_t)K + k;
                    const __m512 sc = _mm512_set1_ps(am[n + r]);
                    const __m512 w0 = _mm512_mul_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(
                                                        _mm_loadu_si128((const __m128i *)c))), sc), rc);
                    const __m512 w1 = _mm512_mul_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(
                                                        _mm_loadu_si128((const __m128i *)(c + 16)))), sc), rc);
                    MQ_FMA_CHUNK(k, r, w0, w1);
                }
            }
        } else {
            const __m512 tab = _mm512_loadu_ps(type == DTYPE_NF4 ? nf4_table : fp4_table);
            const int lg = __builtin_ctz((unsigned)w->q_group);
            for (int64_t k = 0; k < kfull; k += QINT_CHUNK) {
                MQ_LOAD_X(k)
#pragma GCC unroll 4
                for (int r = 0; r < R; r++) {
                    __m512 w0, w1;
                    nf4_w32_avx512(w, tab, am, lg, n + r, k, &w0, &w1);
                    MQ_FMA_CHUNK(k, r, w0, w1);
                }
            }
        }
        if (kfull < Kp) { /* the last partial chunk: its padding dequantizes to 0 */
            _Alignas(64) float tmp[QINT_CHUNK];
            MQ_LOAD_X(kfull)
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                deq_avx512(w, n + r, kfull, QINT_CHUNK, tmp);
                MQ_FMA_CHUNK(kfull, r, _mm512_load_ps(tmp), _mm512_load_ps(tmp + 16));
            }
        }
    }
#undef MQ_FMA_CHUNK
#undef MQ_LOAD_X
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        if (NT == 1) acc[0][r] = _mm512_add_ps(acc[0][r], acc1[r]);
#pragma GCC unroll 4
        for (int t = 0; t < NT; t++) y[t * N + n + r] = hsum_avx512(acc[t][r]);
    }
}

LB_AVX512 static LB_INLINE void gemv_all_avx512_t(const enum dtype type, const int bits,
                                                  const int NT, float *y, int64_t N,
                                                  const float *xs, int64_t Kp,
                                                  const struct tensor *w, int64_t n0, int64_t n1) {
    int64_t n = n0;
    for (; n + 4 <= n1; n += 4) gemv_rows_avx512_t(type, bits, NT, 4, y, N, xs, Kp, w, n);
    for (; n < n1; n++) gemv_rows_avx512_t(type, bits, NT, 1, y, N, xs, Kp, w, n);
}

LB_AVX512 static void deq_avx512(const struct tensor *w, int64_t n, int64_t k0, int64_t kc,
                                 float *dst) {
    const int64_t K = w->ne[0];
    if (k0 < K) mq_prefetch(w, n + MQ_PF_ROWS, k0, kc);
    switch (w->type) {
    case DTYPE_QINT: {
        const int bits = w->q_bits;
        const uint8_t *row = tensor_row(w, n);
        const int64_t g = w->q_group;
        const struct qint_param *p = qint_params(w) + n * qint_n_groups(g, K);
        const size_t cb = 4u * (unsigned)bits;
        for (int64_t k = k0; k < k0 + kc; k += QINT_CHUNK) {
            __m512 w0, w1;
            qint_w32_avx512(row + (size_t)(k / QINT_CHUNK) * cb, bits, &p[k / g], &w0, &w1);
            _mm512_storeu_ps(dst + k - k0, w0);
            _mm512_storeu_ps(dst + k - k0 + 16, w1);
        }
        if (k0 + kc > K) /* the padded tail of the last chunk */
            for (int64_t k = K; k < k0 + kc; k++) dst[k - k0] = 0.0f;
        break;
    }
    case DTYPE_NF4:
    case DTYPE_FP4: {
        const __m512 tab = _mm512_loadu_ps(w->type == DTYPE_NF4 ? nf4_table : fp4_table);
        const float *am = nf4_absmax(w);
        const uint8_t *row = tensor_row(w, n);
        const int64_t bs = w->q_group, k1 = LB_MIN(K, k0 + kc);
        const __m128i m = _mm_set1_epi8(0x0f);
        int64_t k = k0;
        for (; k + 16 <= k1; k += 16) {
            const __m128i v = _mm_loadl_epi64((const __m128i *)(row + k / 2));
            const __m128i e = _mm_unpacklo_epi8(_mm_and_si128(_mm_srli_epi16(v, 4), m),
                                                _mm_and_si128(v, m)); /* high nibble first */
            const __m512 val = _mm512_permutexvar_ps(_mm512_cvtepu8_epi32(e), tab);
            _mm512_storeu_ps(dst + k - k0, _mm512_mul_ps(val, absmax16_avx512(am, n * K + k, bs)));
        }
        const float *tab_s = w->type == DTYPE_NF4 ? nf4_table : fp4_table;
        for (; k < k1; k++) dst[k - k0] = tab_s[nf4_code_get(row, k)] * am[(n * K + k) / bs];
        for (; k < k0 + kc; k++) dst[k - k0] = 0.0f;
        break;
    }
    case DTYPE_I8ROW: {
        const int8_t *row = tensor_row(w, n);
        const float scb_s = nf4_absmax(w)[n];
        const __m512 scb = _mm512_set1_ps(scb_s), rc = _mm512_set1_ps(BNB_INT8_RECIP);
        const int64_t k1 = LB_MIN(K, k0 + kc);
        int64_t k = k0;
        for (; k + 16 <= k1; k += 16) {
            const __m512 q = _mm512_cvtepi32_ps(
                _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(row + k))));
            _mm512_storeu_ps(dst + k - k0, _mm512_mul_ps(_mm512_mul_ps(q, scb), rc));
        }
        for (; k < k1; k++) dst[k - k0] = ((float)row[k] * scb_s) * BNB_INT8_RECIP;
        for (; k < k0 + kc; k++) dst[k - k0] = 0.0f;
        break;
    }
    default: BUG("matmul_q: dtype %d is not parametric", (int)w->type);
    }
}


#define GEMV_QINT_CASES(isa, B)                                                                     \
    switch (T) {                                                                                    \
    case 1: gemv_qint_##isa##_t(B, 1, y, N, xs, Kp, w, n0, n1); return;                             \
    case 2: gemv_qint_##isa##_t(B, 2, y, N, xs, Kp, w, n0, n1); return;                             \
    case 3: gemv_qint_##isa##_t(B, 3, y, N, xs, Kp, w, n0, n1); return;                             \
    default: gemv_qint_##isa##_t(B, 4, y, N, xs, Kp, w, n0, n1); return;                            \
    }
#define GEMV_QINT_DISPATCH(isa)                                                                     \
    if (w->type == DTYPE_QINT) {                                                                    \
        switch (w->q_bits) {                                                                        \
        case 2: GEMV_QINT_CASES(isa, 2)                                                             \
        case 3: GEMV_QINT_CASES(isa, 3)                                                             \
        case 4: GEMV_QINT_CASES(isa, 4)                                                             \
        default: GEMV_QINT_CASES(isa, 8)                                                            \
        }                                                                                           \
    }
_Static_assert(MQ_GEMV_MAX == 4, "GEMV_QINT_CASES covers 1..4 tokens");

LB_AVX512 static void gemv_avx512(mq_deq_fn deq, float *y, int64_t N, const float *xs, int64_t Kp,
                                  int T, const struct tensor *w, int64_t n0, int64_t n1) {
    (void)deq;
#define GEMV_NT(TYPE, B)                                                                            \
    switch (T) {                                                                                    \
    case 1: gemv_all_avx512_t(TYPE, B, 1, y, N, xs, Kp, w, n0, n1); return;                         \
    case 2: gemv_all_avx512_t(TYPE, B, 2, y, N, xs, Kp, w, n0, n1); return;                         \
    case 3: gemv_all_avx512_t(TYPE, B, 3, y, N, xs, Kp, w, n0, n1); return;                         \
    default: gemv_all_avx512_t(TYPE, B, 4, y, N, xs, Kp, w, n0, n1); return;                        \
    }
    switch (w->type) {
    case DTYPE_QINT:
        switch (w->q_bits) {
        case 2: GEMV_NT(DTYPE_QINT, 2)
        case 3: GEMV_NT(DTYPE_QINT, 3)
        case 4: GEMV_NT(DTYPE_QINT, 4)
        default: GEMV_NT(DTYPE_QINT, 8)
        }
    case DTYPE_NF4: GEMV_NT(DTYPE_NF4, 4)
    case DTYPE_FP4: GEMV_NT(DTYPE_FP4, 4)
    case DTYPE_I8ROW: GEMV_NT(DTYPE_I8ROW, 8)
    default: BUG("matmul_q: dtype %d is not parametric", (int)w->type);
    }
#undef GEMV_NT
}

static const struct mq_kern mq_avx512 = {"avx512", CPU_ISA_AVX512, deq_avx512, gemv_avx512};

/* ===== AVX2 ===== */

/* 8 codes (columns 8i..8i+7 of a qint chunk) as int32 */
LB_AVX2 static LB_INLINE __m256i qint_unpack8_avx2(const uint8_t *c, int bits, int i) {
    switch (bits) {
    case 8: return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(c + 8 * i)));
    case 4: {
        const __m128i v = _mm_loadl_epi64((const __m128i *)(c + 8 * (i & 1)));
        const __m128i m = _mm_set1_epi8(0x0f);
        return _mm256_cvtepu8_epi32(i < 2 ? _mm_and_si128(v, m)
                                          : _mm_and_si128(_mm_srli_epi16(v, 4), m));
    }
    default: { /* 2 and 3 */
        const __m256i e = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)c));
        __m256i q = _mm256_and_si256(_mm256_srlv_epi32(e, _mm256_set1_epi32(2 * i)),
                                     _mm256_set1_epi32(3));
        if (bits == 3) {
            uint32_t hb;
            memcpy(&hb, c + 8, 4);
            const __m256i sh = _mm256_add_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                                _mm256_set1_epi32(8 * i));
            q = _mm256_or_si256(q, _mm256_slli_epi32(_mm256_and_si256(
                                       _mm256_srlv_epi32(_mm256_set1_epi32((int)hb), sh),
                                       _mm256_set1_epi32(1)), 2));
        }
        return q;
    }
    }
}

LB_AVX2 static inline __m256 absmax8_avx2(const float *am, int64_t base, int64_t bs) {
    const int64_t b0 = base / bs, rem = bs - base % bs;
    if (rem >= 8) return _mm256_set1_ps(am[b0]);
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256 sel = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32((int)rem), lane));
    return _mm256_blendv_ps(_mm256_set1_ps(am[b0 + 1]), _mm256_set1_ps(am[b0]), sel);
}

LB_AVX2 static void deq_avx2(const struct tensor *w, int64_t n, int64_t k0, int64_t kc, float *dst) {
    const int64_t K = w->ne[0];
    if (k0 < K) mq_prefetch(w, n + MQ_PF_ROWS, k0, kc);
    switch (w->type) {
    case DTYPE_QINT: {
        const int bits = w->q_bits;
        const uint8_t *row = tensor_row(w, n);
        const int64_t g = w->q_group;
        const struct qint_param *p = qint_params(w) + n * qint_n_groups(g, K);
        const size_t cb = 4u * (unsigned)bits;
        for (int64_t k = k0; k < k0 + kc; k += QINT_CHUNK) {
            const uint8_t *c = row + (size_t)(k / QINT_CHUNK) * cb;
            const __m256 d = _mm256_set1_ps(p[k / g].d), z = _mm256_set1_ps(p[k / g].z);
            for (int i = 0; i < 4; i++)
                _mm256_storeu_ps(dst + k - k0 + 8 * i,
                                 _mm256_mul_ps(d, _mm256_sub_ps(_mm256_cvtepi32_ps(
                                                                    qint_unpack8_avx2(c, bits, i)), z)));
        }
        if (k0 + kc > K)
            for (int64_t k = K; k < k0 + kc; k++) dst[k - k0] = 0.0f;
        break;
    }
    case DTYPE_NF4:
    case DTYPE_FP4: {
        const float *tab_s = w->type == DTYPE_NF4 ? nf4_table : fp4_table;
        const __m256 t0 = _mm256_loadu_ps(tab_s), t1 = _mm256_loadu_ps(tab_s + 8);
        const float *am = nf4_absmax(w);
        const uint8_t *row = tensor_row(w, n);
        const int64_t bs = w->q_group, k1 = LB_MIN(K, k0 + kc);
        const __m128i m = _mm_set1_epi8(0x0f);
        int64_t k = k0;
        for (; k + 8 <= k1; k += 8) {
            int32_t b4;
            memcpy(&b4, row + k / 2, 4);
            const __m128i v = _mm_cvtsi32_si128(b4);
            const __m128i e = _mm_unpacklo_epi8(_mm_and_si128(_mm_srli_epi16(v, 4), m),
                                                _mm_and_si128(v, m));
            const __m256i idx = _mm256_cvtepu8_epi32(e);
            const __m256 val = _mm256_blendv_ps(_mm256_permutevar8x32_ps(t0, idx),
                                                _mm256_permutevar8x32_ps(t1, idx),
                                                _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)));
            _mm256_storeu_ps(dst + k - k0, _mm256_mul_ps(val, absmax8_avx2(am, n * K + k, bs)));
        }
        for (; k < k1; k++) dst[k - k0] = tab_s[nf4_code_get(row, k)] * am[(n * K + k) / bs];
        for (; k < k0 + kc; k++) dst[k - k0] = 0.0f;
        break;
    }
    case DTYPE_I8ROW: {
        const int8_t *row = tensor_row(w, n);
        const float scb_s = nf4_absmax(w)[n];
        const __m256 scb = _mm256_set1_ps(scb_s), rc = _mm256_set1_ps(BNB_INT8_RECIP);
        const int64_t k1 = LB_MIN(K, k0 + kc);
        int64_t k = k0;
        for (; k + 8 <= k1; k += 8) {
            const __m256 q = _mm256_cvtepi32_ps(
                _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(row + k))));
            _mm256_storeu_ps(dst + k - k0, _mm256_mul_ps(_mm256_mul_ps(q, scb), rc));
        }
        for (; k < k1; k++) dst[k - k0] = ((float)row[k] * scb_s) * BNB_INT8_RECIP;
        for (; k < k0 + kc; k++) dst[k - k0] = 0.0f;
        break;
    }
    default: BUG("matmul_q: dtype %d is not parametric", (int)w->type);
    }
}


LB_AVX2 static inline float hsum_avx2(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* qint GEMV on AVX2: R rows (4 for one or two tokens, 2 above, 1 for the leftovers; 16 ymm
 * registers) × NT tokens, dequantized in registers, one FMA chain per output (two for a single
 * token) */
LB_AVX2 static LB_INLINE void gemv_qrows_avx2_t(const int bits, const int NT, const int R,
                                                float *y, int64_t N, const float *xs, int64_t Kp,
                                                const struct tensor *w, int64_t n) {
    const int64_t K = w->ne[0], g = w->q_group, ng = qint_n_groups(g, K);
    const size_t cb = 4u * (unsigned)bits, rb = tensor_row_bytes(w);
    const uint8_t *row = (const uint8_t *)w->data + (size_t)n * rb;
    const struct qint_param *p = qint_params(w) + n * ng;
    __m256 acc[MQ_GEMV_MAX][4], acc1[4];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        acc1[r] = _mm256_setzero_ps();
#pragma GCC unroll 4
        for (int t = 0; t < NT; t++) acc[t][r] = _mm256_setzero_ps();
    }
    for (int64_t gi = 0; gi < ng; gi++) {
        const int64_t k1 = gi + 1 < ng ? (gi + 1) * g : Kp;
        for (int64_t k = gi * g; k < k1; k += QINT_CHUNK) {
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++) {
                __m256 xv[MQ_GEMV_MAX];
#pragma GCC unroll 4
                for (int t = 0; t < NT; t++) xv[t] = _mm256_loadu_ps(xs + t * Kp + k + 8 * i);
#pragma GCC unroll 4
                for (int r = 0; r < R; r++) {
                    const uint8_t *c = row + (size_t)r * rb + (size_t)(k / QINT_CHUNK) * cb;
                    const __m256 wv = _mm256_mul_ps(
                        _mm256_set1_ps(p[r * ng + gi].d),
                        _mm256_sub_ps(_mm256_cvtepi32_ps(qint_unpack8_avx2(c, bits, i)),
                                      _mm256_set1_ps(p[r * ng + gi].z)));
                    if (NT == 1 && (i & 1)) {
                        acc1[r] = _mm256_fmadd_ps(wv, xv[0], acc1[r]);
                        continue;
                    }
#pragma GCC unroll 4
                    for (int t = 0; t < NT; t++) acc[t][r] = _mm256_fmadd_ps(wv, xv[t], acc[t][r]);
                }
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        if (NT == 1) acc[0][r] = _mm256_add_ps(acc[0][r], acc1[r]);
#pragma GCC unroll 4
        for (int t = 0; t < NT; t++) y[t * N + n + r] = hsum_avx2(acc[t][r]);
    }
}

LB_AVX2 static LB_INLINE void gemv_qint_avx2_t(const int bits, const int NT, float *y, int64_t N,
                                               const float *xs, int64_t Kp,
                                               const struct tensor *w, int64_t n0, int64_t n1) {
    int64_t n = n0;
    if (NT <= 2)
        for (; n + 4 <= n1; n += 4) gemv_qrows_avx2_t(bits, NT, 4, y, N, xs, Kp, w, n);
    else
        for (; n + 2 <= n1; n += 2) gemv_qrows_avx2_t(bits, NT, 2, y, N, xs, Kp, w, n);
    for (; n < n1; n++) gemv_qrows_avx2_t(bits, NT, 1, y, N, xs, Kp, w, n);
}

LB_AVX2 static void gemv_avx2(mq_deq_fn deq, float *y, int64_t N, const float *xs, int64_t Kp,
                              int T, const struct tensor *w, int64_t n0, int64_t n1) {
    _Alignas(64) float tmp[MQ_KC];
    (void)deq;
    GEMV_QINT_DISPATCH(avx2)
    for (int64_t n = n0; n < n1; n++) {
        __m256 acc[MQ_GEMV_MAX][2];
        for (int t = 0; t < T; t++) acc[t][0] = acc[t][1] = _mm256_setzero_ps();
        for (int64_t k0 = 0; k0 < Kp; k0 += MQ_KC) {
            const int64_t kc = LB_MIN(MQ_KC, Kp - k0);
            deq_avx2(w, n, k0, kc, tmp);
            for (int t = 0; t < T; t++) {
                const float *xt = xs + t * Kp + k0;
                __m256 a0 = acc[t][0], a1 = acc[t][1];
                for (int64_t k = 0; k < kc; k += 16) {
                    a0 = _mm256_fmadd_ps(_mm256_load_ps(tmp + k), _mm256_loadu_ps(xt + k), a0);
                    a1 = _mm256_fmadd_ps(_mm256_load_ps(tmp + k + 8), _mm256_loadu_ps(xt + k + 8), a1);
                }
                acc[t][0] = a0, acc[t][1] = a1;
            }
        }
        for (int t = 0; t < T; t++) y[t * N + n] = hsum_avx2(_mm256_add_ps(acc[t][0], acc[t][1]));
    }
}

static const struct mq_kern mq_avx2 = {"avx2", CPU_ISA_AVX2, deq_avx2, gemv_avx2};
#endif /* LB_X86 */

/* ===== dispatch ===== */

/* the path of each ISA (kernels/cpu.h); NULL where this build has none */
static const struct mq_kern *const mq_kerns[CPU_ISA_COUNT] = {
    [CPU_ISA_GENERIC] = &mq_generic,
#if LB_X86
    [CPU_ISA_AVX2] = &mq_avx2,
    [CPU_ISA_AVX512] = &mq_avx512,
#endif
};

/* the path matmul() uses (cpu_isa(), which honours LOWBIT_ISA) */
static const struct mq_kern *mq_current(void) { return mq_kerns[cpu_isa()]; }

const char *matmul_q_path(void) { return mq_current()->name; }

/* ===== the driver ===== */

/* GEMV (T <= MQ_GEMV_MAX): x gathered into stored column order, zero-padded to Kp, [T][Kp]; rows
 * split between threads */
struct mq_ctx {
    const struct mq_kern *kn;
    const struct tensor *w;
    float *y;
    int64_t Kp, N;
    int T;
    float *xs;
};

static void split(int64_t n, int ith, int nth, int64_t *i0, int64_t *i1) {
    *i0 = n * ith / nth;
    *i1 = n * (ith + 1) / nth;
}

static void mq_gemv_thread(const struct mq_ctx *c, int ith, int nth) {
    int64_t n0, n1;
    split(c->N, ith, nth, &n0, &n1);
    if (n1 > n0) c->kn->gemv(c->kn->deq, c->y, c->N, c->xs, c->Kp, c->T, c->w, n0, n1);
}

/* the GEMV's scratch: x gathered and padded, [T][Kp] */
static size_t mq_gemv_bytes(const struct tensor *w, int n_tok) {
    return (size_t)round_up(pad32(w->ne[0]) * n_tok * (int64_t)sizeof(float), 64);
}

static int mq_run(const struct mq_kern *kn, float *y, const float *x, const struct tensor *w,
                  int n_tok, struct kscratch *ws) {
    const int64_t K = w->ne[0], N = tensor_nrows(w), Kp = pad32(K);
    if (n_tok <= 0 || N <= 0) return 0;
    const int32_t *perm = w->type == DTYPE_QINT ? w->q_perm : NULL;
    if (n_tok > MQ_GEMV_MAX) /* prefill: matmul.c's GEMM, W micro-panels from kn->deq */
        return matmul_gemm_deq(y, x, perm, w, n_tok, kn->isa, kn->deq, ws);
    struct mq_ctx c = {.kn = kn, .w = w, .y = y, .Kp = Kp, .N = N, .T = n_tok};
    const bool par = (double)n_tok * (double)K * (double)N >= MQ_PAR_MIN_MAC;
    const int nth_max = par ? lb_threads() : 1;
    void *owned = NULL;
    c.xs = kscratch_take(ws, mq_gemv_bytes(w, n_tok), &owned, w->name);
    if (!c.xs) return -1;
    for (int t = 0; t < n_tok; t++) {
        const float *xt = x + (size_t)t * (size_t)K;
        float *dst = c.xs + t * Kp;
        if (perm)
            for (int64_t j = 0; j < K; j++) dst[j] = xt[perm[j]];
        else
            memcpy(dst, xt, (size_t)K * sizeof(float));
        for (int64_t j = K; j < Kp; j++) dst[j] = 0.0f;
    }
#ifdef _OPENMP
#pragma omp parallel num_threads(nth_max) if (nth_max > 1)
    mq_gemv_thread(&c, omp_get_thread_num(), omp_get_num_threads());
#else
    (void)nth_max;
    mq_gemv_thread(&c, 0, 1);
#endif
    free(owned);
    return 0;
}

size_t matmul_q_scratch(const struct tensor *w, int n_tok, int n_threads) {
    if (w->type == DTYPE_AQLM) return aqlm_matmul_scratch(w, n_tok, n_threads);
    if (n_tok <= 0 || tensor_nrows(w) <= 0) return 0;
    if (n_tok > MQ_GEMV_MAX) return matmul_gemm_deq_scratch(w, n_tok, cpu_isa(), n_threads);
    return mq_gemv_bytes(w, n_tok);
}

int matmul_q_ws(float *y, const float *x, const struct tensor *w, int n_tok, struct kscratch *ws) {
    if (w->type == DTYPE_AQLM) /* codebook lookups: kernels/aqlm.c */
        return aqlm_matmul_ws(y, x, w, n_tok, ws);
    return mq_run(mq_current(), y, x, w, n_tok, ws);
}

int matmul_q(float *y, const float *x, const struct tensor *w, int n_tok) {
    return matmul_q_ws(y, x, w, n_tok, NULL);
}

int matmul_q_isa(float *y, const float *x, const struct tensor *w, int n_tok, const char *isa) {
    const int i = cpu_isa_usable(isa);
    if (i < 0 || !mq_kerns[i]) return -1;
    const struct mq_kern *kn = mq_kerns[i];
    if (w->type == DTYPE_AQLM) return aqlm_matmul_gemm(y, x, w, n_tok, isa);
    return mq_run(kn, y, x, w, n_tok, NULL);
}
