/* kernels/act_quant.c: per-token activation quantization and its integer dot products
 * (kernels/act_quant.h). */
#include "kernels/act_quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "kernels/cpu.h"
#include "kernels/matmul_i8.h"

#define AQ_PAR_MIN ((int64_t)1 << 16)
#define AQ_GEMM_MIN_T 8

/* row xr's scale clip·max|x|/qmax (0 for a zero row). The max as a compare (fmaxf's result:
 * amax is never NaN and a NaN |x| is skipped either way) so it compiles without calls. */
static float row_scale(const float *xr, int64_t K, int qmax, float clip) {
    float amax = 0;
    for (int64_t k = 0; k < K; k++) {
        const float a = fabsf(xr[k]);
        amax = a > amax ? a : amax;
    }
    return clip * amax / (float)qmax;
}

/* x·(1/d) rounded (roundf: half away from zero) and clamped to [−qmax − 1, qmax]. roundf is done
 * in integers when |v| < 2^23: (int)v truncates, the remainder v − (int)v is exact, ±1 when it
 * reaches ±0.5; copysignf keeps roundf's −0 for a small negative v (beyond 2^23, inf, NaN:
 * roundf itself). */
static inline float code_of(float x, float id, int qmax) {
    const float v = x * id;
    if (!(fabsf(v) < 8388608.0f)) {
        const float r = roundf(v);
        return r > qmax ? (float)qmax : r < -qmax - 1 ? (float)(-qmax - 1) : r;
    }
    const int32_t i = (int32_t)v;
    const float f = v - (float)i;
    const int32_t r = i + (f >= 0.5f) - (f <= -0.5f);
    return r > qmax ? (float)qmax : r < -qmax - 1 ? (float)(-qmax - 1) : copysignf((float)r, v);
}

void act_quant_rows(int8_t *q, float *d, const float *x, int64_t T, int64_t K, int bits,
                    float clip) {
    const int qmax = (1 << (bits - 1)) - 1;
#pragma omp parallel for schedule(static) if (T * K >= AQ_PAR_MIN)
    for (int64_t t = 0; t < T; t++) {
        const float *xr = x + t * K;
        const float dt = row_scale(xr, K, qmax, clip), id = dt > 0 ? 1.0f / dt : 0.0f;
        d[t] = dt;
        for (int64_t k = 0; k < K; k++) q[t * K + k] = (int8_t)code_of(xr[k], id, qmax);
    }
}

void act_fake_quant_rows(float *y, const float *x, int64_t T, int64_t K, int bits, float clip) {
    const int qmax = (1 << (bits - 1)) - 1;
#pragma omp parallel for schedule(static) if (T * K >= AQ_PAR_MIN)
    for (int64_t t = 0; t < T; t++) {
        const float *xr = x + t * K;
        const float dt = row_scale(xr, K, qmax, clip), id = dt > 0 ? 1.0f / dt : 0.0f;
        for (int64_t k = 0; k < K; k++) y[t * K + k] = dt * code_of(xr[k], id, qmax);
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
