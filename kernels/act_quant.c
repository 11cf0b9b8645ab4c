/* kernels/act_quant.c: per-token activation quantization and its integer dot products
 * (kernels/act_quant.h). */
#include "kernels/act_quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu.h"
#include "kernels/matmul_i8.h"
#if LB_X86
#include <immintrin.h>
#endif

#define AQ_PAR_MIN ((int64_t)1 << 16)
#define AQ_GEMM_MIN_T 8

/* max_k |x_k| of a row, NaN skipped (fmaxf's result): eight running maxima as compares (never
 * NaN, and the max of exact values is exact in any order), so no calls and no chain of 4-cycle
 * dependencies */
static float row_amax(const float *xr, int64_t K) {
    float m[8] = {0};
    int64_t k = 0;
    for (; k + 8 <= K; k += 8)
        for (int u = 0; u < 8; u++) {
            const float a = fabsf(xr[k + u]);
            m[u] = a > m[u] ? a : m[u];
        }
    for (; k < K; k++) {
        const float a = fabsf(xr[k]);
        m[0] = a > m[0] ? a : m[0];
    }
    float amax = 0;
    for (int u = 0; u < 8; u++) amax = m[u] > amax ? m[u] : amax;
    return amax;
}

/* x·(1/d) rounded (roundf: half away from zero) and clamped to [−qmax − 1, qmax] */
static inline float code_of(float x, float id, int qmax) {
    const float v = roundf(x * id);
    return v > qmax ? (float)qmax : v < -qmax - 1 ? (float)(-qmax - 1) : v;
}

/* the same when |x·id| < 2^23 or NaN, without branches or calls (vectorizable): the truncation
 * (float)(int)v and the remainder v − trunc are exact, ±1 when it reaches ±0.5; copysignf keeps
 * roundf's −0 for a small negative v; NaN passes as roundf passes it */
static inline float code_fast(float x, float id, float qf) {
    const float v = x * id, t = (float)(int32_t)v, f = v - t;
    const float r = t + (f >= 0.5f ? 1.0f : 0.0f) - (f <= -0.5f ? 1.0f : 0.0f);
    const float c = r > qf ? qf : r < -qf - 1 ? -qf - 1 : copysignf(r, v);
    return v != v ? v : c;
}

#if LB_X86
/* code_fast on 8 lanes: the same operations in the same order (min/max are the ternary clamps for
 * a non-NaN r; a clamped value keeps v's sign, so copysign after the clamp is the same) */
LB_AVX2F static void codes_avx2(const float *xr, int64_t K, float id, float qf, float dt, int8_t *q,
                                float *y) {
    const __m256 vid = _mm256_set1_ps(id), hi = _mm256_set1_ps(qf), lo = _mm256_set1_ps(-qf - 1);
    const __m256 half = _mm256_set1_ps(0.5f), mhalf = _mm256_set1_ps(-0.5f);
    const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f), vdt = _mm256_set1_ps(dt);
    int64_t k = 0;
    for (; k + 8 <= K; k += 8) {
        const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(xr + k), vid);
        const __m256 t = _mm256_cvtepi32_ps(_mm256_cvttps_epi32(v)), f = _mm256_sub_ps(v, t);
        const __m256 up = _mm256_and_ps(_mm256_cmp_ps(f, half, _CMP_GE_OQ), one);
        const __m256 dn = _mm256_and_ps(_mm256_cmp_ps(f, mhalf, _CMP_LE_OQ), one);
        const __m256 r = _mm256_sub_ps(_mm256_add_ps(t, up), dn);
        const __m256 cl = _mm256_min_ps(_mm256_max_ps(r, lo), hi);
        __m256 c = _mm256_or_ps(_mm256_andnot_ps(sign, cl), _mm256_and_ps(sign, v));
        c = _mm256_blendv_ps(c, v, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
        if (q) {
            const __m256i i = _mm256_cvttps_epi32(c);
            const __m128i p16 = _mm_packs_epi32(_mm256_castsi256_si128(i),
                                                _mm256_extracti128_si256(i, 1));
            _mm_storel_epi64((__m128i *)(void *)(q + k), _mm_packs_epi16(p16, p16));
        } else {
            _mm256_storeu_ps(y + k, _mm256_mul_ps(vdt, c));
        }
    }
    for (; k < K; k++) {
        const float c = code_fast(xr[k], id, qf);
        if (q) q[k] = (int8_t)c;
        else y[k] = dt * c;
    }
}
#endif

/* one row: its scale into *d, and the codes into q, or d·code into y (the other NULL) */
static void quant_row(const float *xr, int64_t K, int qmax, float clip, int8_t *q, float *y,
                      float *d) {
    const float amax = row_amax(xr, K), dt = clip * amax / (float)qmax;
    const float id = dt > 0 ? 1.0f / dt : 0.0f, qf = (float)qmax;
    *d = dt;
    if (amax * id < 8388608.0f) { /* every non-NaN |x·id| <= amax·id: code_fast is roundf's */
#if LB_X86
        if (cpu_isa() >= CPU_ISA_AVX2) {
            codes_avx2(xr, K, id, qf, dt, q, y);
            return;
        }
#endif
        for (int64_t k = 0; k < K; k++) {
            const float c = code_fast(xr[k], id, qf);
            if (q) q[k] = (int8_t)c;
            else y[k] = dt * c;
        }
    } else if (q) { /* subnormal d (1/d huge or infinite), inf in the row */
        for (int64_t k = 0; k < K; k++) q[k] = (int8_t)code_of(xr[k], id, qmax);
    } else {
        for (int64_t k = 0; k < K; k++) y[k] = dt * code_of(xr[k], id, qmax);
    }
}

void act_quant_rows(int8_t *q, float *d, const float *x, int64_t T, int64_t K, int bits,
                    float clip) {
    const int qmax = (1 << (bits - 1)) - 1;
#pragma omp parallel for schedule(static) if (T * K >= AQ_PAR_MIN)
    for (int64_t t = 0; t < T; t++) quant_row(x + t * K, K, qmax, clip, q + t * K, NULL, d + t);
}

void act_fake_quant_rows(float *y, const float *x, int64_t T, int64_t K, int bits, float clip) {
    const int qmax = (1 << (bits - 1)) - 1;
#pragma omp parallel for schedule(static) if (T * K >= AQ_PAR_MIN)
    for (int64_t t = 0; t < T; t++) {
        float dt;
        quant_row(x + t * K, K, qmax, clip, NULL, y + t * K, &dt);
    }
}

int32_t act_dot_i8_ref(const int8_t *a, const int8_t *b, int64_t n) {
    int32_t s = 0;
    for (int64_t k = 0; k < n; k++) s += (int32_t)a[k] * b[k];
    return s;
}

#if defined(__x86_64__)
__attribute__((target("avx2"))) static int32_t dot_i8_avx2(const int8_t *a, const int8_t *b,
                                                           int64_t n) {
    __m256i acc = _mm256_setzero_si256();
    int64_t k = 0;
    for (; k + 16 <= n; k += 16) {
        const __m256i va = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(a + k)));
        const __m256i vb = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(b + k)));
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(va, vb));
    }
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
    s = _mm_hadd_epi32(s, s);
    s = _mm_hadd_epi32(s, s);
    int32_t r = _mm_cvtsi128_si32(s);
    for (; k < n; k++) r += (int32_t)a[k] * b[k]; /* leftovers */
    return r;
}
#endif

static int32_t (*dot_i8_fn(void))(const int8_t *, const int8_t *, int64_t) {
#if defined(__x86_64__)
    if (cpu_isa() >= CPU_ISA_AVX2) return dot_i8_avx2;
#endif
    return act_dot_i8_ref;
}

const char *act_dot_path(void) { return dot_i8_fn() == act_dot_i8_ref ? "generic" : "avx2"; }

const char *act_matmul_path(int64_t T, bool i4) {
    return i4 || T >= AQ_GEMM_MIN_T ? matmul_i8_path() : act_dot_path();
}

int32_t act_dot_i8(const int8_t *a, const int8_t *b, int64_t n) { return dot_i8_fn()(a, b, n); }

void act_pack_i4(uint8_t *p, const int8_t *q, int64_t n) {
    for (int64_t k = 0; k + 1 < n; k += 2)
        p[k / 2] = (uint8_t)((q[k] & 0xf) | ((q[k + 1] & 0xf) << 4));
}

static inline int8_t lo4(uint8_t v) { return (int8_t)((int8_t)(v << 4) >> 4); }
static inline int8_t hi4(uint8_t v) { return (int8_t)((int8_t)v >> 4); }

int32_t act_dot_i4_ref(const uint8_t *a, const uint8_t *b, int64_t n) {
    int32_t s = 0;
    for (int64_t k = 0; k < n / 2; k++) s += lo4(a[k]) * lo4(b[k]) + hi4(a[k]) * hi4(b[k]);
    return s;
}

/* unpack 4-bit codes to int8 in pieces of 256, then the int8 dot product */
int32_t act_dot_i4(const uint8_t *a, const uint8_t *b, int64_t n) {
    int8_t ua[256], ub[256];
    int32_t (*dot)(const int8_t *, const int8_t *, int64_t) = dot_i8_fn();
    int32_t s = 0;
    for (int64_t k0 = 0; k0 < n; k0 += 256) {
        const int64_t m = n - k0 < 256 ? n - k0 : 256;
        for (int64_t k = 0; k < m / 2; k++) {
            ua[2 * k] = lo4(a[k0 / 2 + k]), ua[2 * k + 1] = hi4(a[k0 / 2 + k]);
            ub[2 * k] = lo4(b[k0 / 2 + k]), ub[2 * k + 1] = hi4(b[k0 / 2 + k]);
        }
        s += dot(ua, ub, m);
    }
    return s;
}

void act_matmul_ref(float *y, const int8_t *qx, const float *dx, const int8_t *qw, const float *dw,
                    int64_t T, int64_t N, int64_t K) {
    for (int64_t t = 0; t < T; t++)
        for (int64_t j = 0; j < N; j++)
            y[t * N + j] = (dx[t] * dw[j]) * (float)act_dot_i8_ref(qx + t * K, qw + j * K, K);
}

/* the matmul_i8 tiles on the codes (kernels/matmul_i8.h); per-dot products for fewer than
 * AQ_GEMM_MIN_T tokens (packing the weight panels per call costs more than the tiles save there:
 * 1 thread, 110M block, GOP/s per CPU-second by tiles / by dots: T = 1 7 / 34, T = 4 27 / ~36,
 * T = 8 47 / ~36) or when its scratch cannot be had. The packed 4-bit codes always take the
 * tiles (per-dot unpacking is slower still: T = 1 0.6 against 4.2). */
void act_matmul(float *y, const int8_t *qx, const float *dx, const int8_t *qw, const float *dw,
                int64_t T, int64_t N, int64_t K) {
    if (T >= AQ_GEMM_MIN_T && !matmul_i8_codes(y, qx, dx, qw, dw, T, N, K, false, NULL)) return;
    int32_t (*dot)(const int8_t *, const int8_t *, int64_t) = dot_i8_fn();
#pragma omp parallel for schedule(static) if (T * N * K >= AQ_PAR_MIN)
    for (int64_t j = 0; j < N; j++)
        for (int64_t t = 0; t < T; t++)
            y[t * N + j] = (dx[t] * dw[j]) * (float)dot(qx + t * K, qw + j * K, K);
}

void act_matmul_i4(float *y, const uint8_t *qx, const float *dx, const uint8_t *qw, const float *dw,
                   int64_t T, int64_t N, int64_t K) {
    if (!matmul_i8_codes(y, qx, dx, qw, dw, T, N, K, true, NULL)) return;
#pragma omp parallel for schedule(static) if (T * N * K >= AQ_PAR_MIN)
    for (int64_t j = 0; j < N; j++)
        for (int64_t t = 0; t < T; t++)
            y[t * N + j] = (dx[t] * dw[j]) * (float)act_dot_i4(qx + t * K / 2, qw + j * K / 2, K);
}
