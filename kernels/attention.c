/* kernels/attention.c: causal multi-head attention (see attention.h), reference and fast paths.
 *
 * The fast path cuts the work into units of (query head h, AQ consecutive queries) and runs each
 * on one thread, biggest (latest queries) first:
 *  1. scores: S[r][j] = scale · q[r]·k[j] for the unit's AQ queries and every key j < nk (the keys
 *     its last query sees), 2 vectors of keys × AQ queries per step, one FMA chain over i per
 *     score: a GEMM tile with the queries broadcast and the transposed keys loaded as vectors;
 *  2. softmax per row over j <= pos0+t (later keys of the tile are masked to zero);
 *  3. P·V: AQ rows × PV_NV vectors of output columns per tile, an FMA chain over j.
 * Rows past T in the last unit repeat its last query and are not stored. The ISA is the kernels'
 * path (kernels/cpu.h: cpu_isa, so LOWBIT_ISA lowers it). */
#include "kernels/attention.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "kernels/common.h"
#include "kernels/cpu.h"
#include "kernels/matmul.h"

#define AQ 6 /* queries per unit */

int64_t attn_ldk(int n_ctx) { return ((int64_t)n_ctx + 31) / 32 * 32; }
int64_t attn_ldv(int hd) { return ((int64_t)hd + 15) / 16 * 16; }

/* ===== reference ===== */

void attention_ref(float *out, const float *q, const float *kt, const float *v,
                   const struct attn_shape *s) {
    const int hd = s->head_dim, g = s->n_heads / s->n_kv_heads;
    const int64_t qd = (int64_t)s->n_heads * hd;
    const float scale = 1.0f / sqrtf((float)hd);
    float *p = xmalloc((size_t)(s->pos0 + s->T) * sizeof(float), "attention scores");
    for (int t = 0; t < s->T; t++)
        for (int h = 0; h < s->n_heads; h++) {
            const float *qr = q + t * qd + (int64_t)h * hd;
            const float *kh = kt + (h / g) * s->kt_head, *vh = v + (h / g) * s->v_head;
            const int n = s->pos0 + t + 1;
            float mx = -INFINITY;
            for (int j = 0; j < n; j++) {
                float d = 0;
                for (int i = 0; i < hd; i++) d += qr[i] * kh[i * s->ldk + j];
                p[j] = d * scale;
                mx = p[j] > mx ? p[j] : mx;
            }
            float sum = 0;
            for (int j = 0; j < n; j++) {
                p[j] = expf(p[j] - mx);
                sum += p[j];
            }
            float *o = out + t * qd + (int64_t)h * hd;
            for (int i = 0; i < hd; i++) {
                float a = 0;
                for (int j = 0; j < n; j++) a += p[j] * vh[j * s->ldv + i];
                o[i] = a / sum;
            }
        }
    free(p);
}

/* ===== exp for x <= 0: 2^n · P6(r), n = round(x·log2 e), r = x - n·ln 2 (two-part ln 2) ===== */

#define EXP_MIN (-87.3f) /* below: 0 (2^n would leave the normal range) */
#define LOG2E 1.44269504088896341f
#define LN2_HI 0.693145751953125f
#define LN2_LO 1.42860682030941723e-6f
#define C2 (1.0f / 2)
#define C3 (1.0f / 6)
#define C4 (1.0f / 24)
#define C5 (1.0f / 120)
#define C6 (1.0f / 720)

float attn_exp(float x) {
    if (x != x) return x;
    if (x < EXP_MIN) return 0;
    const float n = rintf(x * LOG2E);
    const float r = (x - n * LN2_HI) - n * LN2_LO;
    const float p = 1 + r * (1 + r * (C2 + r * (C3 + r * (C4 + r * (C5 + r * C6)))));
    union {
        uint32_t u;
        float f;
    } e = {.u = (uint32_t)((int32_t)n + 127) << 23};
    return p * e.f;
}

/* ===== generic C: 8-float "vectors" the compiler may vectorize ===== */

#define SFX(name) name##_generic
#define ATTR
#define VW 8
#define PV_NV 4
typedef struct {
    float x[VW];
} vf_g;
#define vf vf_g
static inline vf v_load(const float *p) {
    vf r;
    memcpy(r.x, p, sizeof r.x);
    return r;
}
static inline void v_store(float *p, vf a) { memcpy(p, a.x, sizeof a.x); }
static inline vf v_set1(float a) {
    vf r;
    for (int i = 0; i < VW; i++) r.x[i] = a;
    return r;
}
static inline vf v_zero(void) { return v_set1(0); }
#define V_BIN(name, expr)                                                                          \
    static inline vf name(vf a, vf b) {                                                            \
        vf r;                                                                                      \
        for (int i = 0; i < VW; i++) r.x[i] = (expr);                                              \
        return r;                                                                                  \
    }
V_BIN(v_mul, a.x[i] * b.x[i])
V_BIN(v_add, a.x[i] + b.x[i])
V_BIN(v_sub, a.x[i] - b.x[i])
V_BIN(v_max, a.x[i] > b.x[i] ? a.x[i] : b.x[i])
#undef V_BIN
static inline vf v_fma(vf a, vf b, vf c) {
    vf r;
    for (int i = 0; i < VW; i++) r.x[i] = a.x[i] * b.x[i] + c.x[i];
    return r;
}
static inline float v_hmax(vf a) {
    float m = a.x[0];
    for (int i = 1; i < VW; i++) m = a.x[i] > m ? a.x[i] : m;
    return m;
}
static inline float v_hsum(vf a) {
    return ((a.x[0] + a.x[4]) + (a.x[2] + a.x[6])) + ((a.x[1] + a.x[5]) + (a.x[3] + a.x[7]));
}
static inline vf v_exp(vf a) {
    vf r;
    for (int i = 0; i < VW; i++) r.x[i] = attn_exp(a.x[i]);
    return r;
}
#include "kernels/attention_impl.inc"
#undef SFX
#undef ATTR
#undef VW
#undef PV_NV
#undef vf

#if LB_X86
#include <immintrin.h>

/* ===== AVX-512: 6 queries × 32 keys (12 accumulators); P·V 6 × 64 columns (24) ===== */

#define SFX(name) name##_avx512
#define ATTR LB_AVX512F
#define VW 16
#define PV_NV 4
#define vf __m512
#define v_load _mm512_loadu_ps
#define v_store _mm512_storeu_ps
#define v_set1 _mm512_set1_ps
#define v_zero _mm512_setzero_ps
#define v_fma _mm512_fmadd_ps
#define v_mul _mm512_mul_ps
#define v_add _mm512_add_ps
#define v_sub _mm512_sub_ps
#define v_max _mm512_max_ps
#define v_hmax _mm512_reduce_max_ps
#define v_hsum _mm512_reduce_add_ps
ATTR static inline __m512 v_exp_avx512(__m512 x) {
    const __mmask16 lo = _mm512_cmp_ps_mask(x, _mm512_set1_ps(EXP_MIN), _CMP_LT_OQ);
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(LOG2E)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), r);
    __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(C6), r, _mm512_set1_ps(C5));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(C4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(C3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(C2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1));
    const __m512i e =
        _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_mask_blend_ps(lo, _mm512_mul_ps(p, _mm512_castsi512_ps(e)), _mm512_setzero_ps());
}
#define v_exp v_exp_avx512
#include "kernels/attention_impl.inc"
#undef SFX
#undef ATTR
#undef VW
#undef PV_NV
#undef vf
#undef v_load
#undef v_store
#undef v_set1
#undef v_zero
#undef v_fma
#undef v_mul
#undef v_add
#undef v_sub
#undef v_max
#undef v_hmax
#undef v_hsum
#undef v_exp

/* ===== AVX2: 6 queries × 16 keys (12 accumulators); P·V 6 × 16 columns (12) ===== */

#define SFX(name) name##_avx2
#define ATTR LB_AVX2F
#define VW 8
#define PV_NV 2
#define vf __m256
#define v_load _mm256_loadu_ps
#define v_store _mm256_storeu_ps
#define v_set1 _mm256_set1_ps
#define v_zero _mm256_setzero_ps
#define v_fma _mm256_fmadd_ps
#define v_mul _mm256_mul_ps
#define v_add _mm256_add_ps
#define v_sub _mm256_sub_ps
#define v_max _mm256_max_ps
ATTR static inline float v_hmax_avx2(__m256 a) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}
ATTR static inline float v_hsum_avx2(__m256 a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}
ATTR static inline __m256 v_exp_avx2(__m256 x) {
    const __m256 lo = _mm256_cmp_ps(x, _mm256_set1_ps(EXP_MIN), _CMP_LT_OQ);
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(LOG2E)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
    __m256 p = _mm256_fmadd_ps(_mm256_set1_ps(C6), r, _mm256_set1_ps(C5));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(C4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(C3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(C2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1));
    const __m256i e =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_andnot_ps(lo, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}
#define v_hmax v_hmax_avx2
#define v_hsum v_hsum_avx2
#define v_exp v_exp_avx2
#include "kernels/attention_impl.inc"
#undef SFX
#undef ATTR
#undef VW
#undef PV_NV
#undef vf
#endif

/* ===== the driver ===== */

typedef void attn_unit_fn(float *out, const float *q, const float *kt, const float *v,
                          const struct attn_shape *s, int h, int t0, int nr, float *qb, float *sc,
                          int64_t ldsc);

/* the unit of each path (kernels/cpu.h) */
static attn_unit_fn *const attn_units[CPU_ISA_COUNT] = {
    [CPU_ISA_GENERIC] = unit_generic,
#if LB_X86
    [CPU_ISA_AVX2] = unit_avx2,
    [CPU_ISA_AVX512] = unit_avx512,
#endif
};

static attn_unit_fn *pick_unit(void) { return attn_units[cpu_isa()]; }

const char *attention_path(void) { return cpu_isa_name(cpu_isa()); }

/* below this many multiply-adds a call runs on one thread (as in eval/forward.c) */
#define ATTN_PAR_MIN ((double)(1 << 16))

/* floats of one thread's scratch: a unit's queries and its scores over n_keys keys */
static size_t attn_per_thread(int head_dim, int n_keys) {
    return ((size_t)AQ * (size_t)head_dim + (size_t)AQ * (size_t)attn_ldk(n_keys) + 15) / 16 * 16;
}

size_t attention_scratch(int n_ctx, int head_dim, int n_threads) {
    return (size_t)LB_MAX(1, n_threads) * attn_per_thread(head_dim, n_ctx) * sizeof(float);
}

int attention(float *out, const float *q, const float *kt, const float *v,
              const struct attn_shape *s) {
    return attention_ws(out, q, kt, v, s, NULL);
}

int attention_ws(float *out, const float *q, const float *kt, const float *v,
                 const struct attn_shape *s, struct kscratch *ws) {
    attn_unit_fn *unit = pick_unit();
    const int nb = (s->T + AQ - 1) / AQ, n_units = nb * s->n_heads;
    const int64_t ldsc = attn_ldk(s->pos0 + s->T);
    const size_t per_thread = attn_per_thread(s->head_dim, s->pos0 + s->T);
    const int nt = lb_threads();
    void *owned = NULL;
    float *buf = kscratch_take(ws, (size_t)nt * per_thread * sizeof(float), &owned,
                               "the attention scores");
    if (!buf) return -1;
    const double work = (double)s->T * (s->pos0 + s->T) * s->n_heads * s->head_dim;
    (void)work; /* unused without OpenMP */
#pragma omp parallel if (work >= ATTN_PAR_MIN)
    {
#ifdef _OPENMP
        float *qb = buf + (size_t)omp_get_thread_num() * per_thread;
#else
        float *qb = buf;
#endif
        float *sc = qb + (size_t)AQ * s->head_dim;
#pragma omp for schedule(dynamic, 1)
        for (int u = 0; u < n_units; u++) {
            const int b = nb - 1 - u / s->n_heads, h = u % s->n_heads, t0 = b * AQ;
            unit(out, q, kt, v, s, h, t0, LB_MIN(AQ, s->T - t0), qb, sc, ldsc);
        }
    }
    free(owned);
    return 0;
}
