/* kernels/aqlm.c: the AQLM tensor type and its matmul (layout, formula, paths and tolerance in
 * kernels/aqlm.h).
 *
 * Legend: T = n_tok, K = inputs, N = outputs, M codebooks of 2^B vectors of go×gi values,
 * O = N/go output groups, J = K/gi input groups. */
#include "kernels/aqlm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "kernels/matmul.h"
#include "kernels/matmul_impl.h"

#define AQ_PAR_MIN_MAC (1 << 17) /* below: one thread */

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

/* ===== geometry ===== */

int aqlm_check_layout(const char *what, int64_t K, int64_t N, int M, int B, int in_group,
                      int out_group) {
    if (M < 1 || M > AQLM_MAX_CODEBOOKS)
        return err("%s: %d codebooks (expected 1 to %d)", what, M, AQLM_MAX_CODEBOOKS);
    if (B < 1 || B > AQLM_MAX_NBITS)
        return err("%s: %d bits per codebook (expected 1 to %d)", what, B, AQLM_MAX_NBITS);
    if (in_group < 1 || in_group > AQLM_MAX_GROUP || out_group < 1 || out_group > AQLM_MAX_GROUP)
        return err("%s: in_group_size %d, out_group_size %d (expected 1 to %d)", what, in_group,
                   out_group, AQLM_MAX_GROUP);
    if (K <= 0 || N <= 0 || K % in_group || N % out_group)
        return err("%s: in_features %lld and out_features %lld must be positive multiples of "
                   "in_group_size %d and out_group_size %d", what, (long long)K, (long long)N,
                   in_group, out_group);
    if ((int64_t)M * ((int64_t)1 << B) * in_group * out_group > ((int64_t)1 << 28))
        return err("%s: %d codebooks of 2^%d vectors of %dx%d values are too large", what, M, B,
                   out_group, in_group);
    return 0;
}

int aqlm_tensor_init(struct tensor *t, const char *name, int64_t K, int64_t N, int M, int B,
                     int in_group, int out_group) {
    const int64_t ne[2] = {K, N};
    if (aqlm_check_layout(name, K, N, M, B, in_group, out_group) ||
        tensor_init(t, name, DTYPE_AQLM, 2, ne))
        return -1;
    t->q_bits = B;
    t->q_group = in_group;
    t->q_ncb = M;
    t->q_out_group = out_group;
    return 0;
}

size_t aqlm_row_bytes(const struct tensor *t) {
    return (size_t)aqlm_n_in_groups(t) * (size_t)t->q_ncb * (t->q_bits <= 8 ? 1u : 2u);
}

size_t aqlm_side_offset(const struct tensor *t) {
    return align64(aqlm_row_bytes(t) * (size_t)aqlm_n_out_groups(t));
}

size_t aqlm_side_bytes(const struct tensor *t) {
    const size_t cb = (size_t)t->q_ncb * (size_t)aqlm_codebook_size(t) * (size_t)t->q_out_group *
                      (size_t)t->q_group;
    return (cb + (size_t)aqlm_n_out_groups(t)) * sizeof(float);
}

/* ===== dequantization ===== */

/* whole groups of GI values from M codebook vectors: fixed-length loops the compiler vectorizes
 * (the same fp32 operations, in the same order, as the generic loop below) */
#define AQ_GROUPS(GI, MM)                                                                          \
    for (; j < j1; j++, d += (GI)) {                                                               \
        const float *v0 = cb + (wide ? q16[j * M] : q8[j * M]) * vec;                             \
        if ((MM) == 1) {                                                                           \
            for (int c = 0; c < (GI); c++) d[c] = v0[c] * s;                                       \
        } else {                                                                                   \
            const float *v1 = cb + book + (wide ? q16[j * M + 1] : q8[j * M + 1]) * vec;          \
            for (int c = 0; c < (GI); c++) d[c] = (v0[c] + v1[c]) * s;                             \
        }                                                                                          \
    }

/* fp32 weights of row n, columns [k0, k1), into dst[0 .. k1-k0): exactly aqlm.h's formula */
static void aq_deq_range(const struct tensor *t, int64_t n, int64_t k0, int64_t k1, float *dst) {
    const int go = t->q_out_group, gi = t->q_group, M = t->q_ncb;
    const int64_t o = n / go, i = n % go;
    const size_t vec = (size_t)go * (size_t)gi, book = (size_t)aqlm_codebook_size(t) * vec;
    const float *cb = aqlm_codebooks(t) + (size_t)i * (size_t)gi;
    const float s = aqlm_scales(t)[o];
    const size_t row = (size_t)o * (size_t)aqlm_n_in_groups(t) * (size_t)M;
    const uint8_t *q8 = (const uint8_t *)t->data + row;
    const uint16_t *q16 = (const uint16_t *)t->data + row;
    const bool wide = t->q_bits > 8;
    int64_t j = k0 / gi;
    for (int64_t k = k0; k < k1; j++) {
        const int64_t c0 = k - j * gi, c1 = LB_MIN((int64_t)gi, k1 - j * gi);
        if (c0 == 0 && c1 == gi && (M == 1 || M == 2) && (gi == 8 || gi == 4)) {
            /* a run of whole groups */
            const int64_t j1 = j + (k1 - k) / gi;
            float *d = dst + (k - k0);
            const int64_t nj = j1 - j;
            if (gi == 8 && M == 1) AQ_GROUPS(8, 1)
            else if (gi == 8) AQ_GROUPS(8, 2)
            else if (M == 1) AQ_GROUPS(4, 1)
            else AQ_GROUPS(4, 2)
            k += nj * gi;
            j--; /* the loop's j++ */
            continue;
        }
        const float *v[AQLM_MAX_CODEBOOKS];
        for (int m = 0; m < M; m++)
            v[m] = cb + (size_t)m * book + (wide ? q16[j * M + m] : q8[j * M + m]) * vec;
        float *d = dst + (k - k0) - c0;
        for (int64_t c = c0; c < c1; c++) {
            float acc = v[0][c];
            for (int m = 1; m < M; m++) acc += v[m][c];
            d[c] = acc * s;
        }
        k += c1 - c0;
    }
}
#undef AQ_GROUPS

void aqlm_row_to_f32(const struct tensor *t, int64_t n, float *dst) {
    aq_deq_range(t, n, 0, t->ne[0], dst);
}

/* the GEMM's panel dequantizer (matmul_impl.h): stored columns [k0, k0+kc), zero past K */
static void aq_deq(const struct tensor *w, int64_t n, int64_t k0, int64_t kc, float *dst) {
    const int64_t K = w->ne[0], k1 = LB_MIN(K, k0 + kc);
    if (k1 > k0) aq_deq_range(w, n, k0, k1, dst);
    for (int64_t k = LB_MAX(k0, k1); k < k0 + kc; k++) dst[k - k0] = 0.0f;
}

/* ===== reference ===== */

void aqlm_matmul_ref(float *y, const float *x, const struct tensor *w, int n_tok) {
    matmul_ref_rows(y, x, w, n_tok, aqlm_row_to_f32);
}

/* ===== lookup tables (B <= 8) ===== */

struct aq_lut_ctx {
    const struct tensor *w;
    const float *x;
    float *y, *lut; /* lut [T][J][M][2^B][go] */
    int T;
};

/* tables of input groups [j0, j1) for every token */
static void aq_lut_build(const struct aq_lut_ctx *c, int64_t j0, int64_t j1) {
    const struct tensor *w = c->w;
    const int go = w->q_out_group, gi = w->q_group, M = w->q_ncb;
    const int64_t K = w->ne[0], J = aqlm_n_in_groups(w), S = aqlm_codebook_size(w);
    const float *cb = aqlm_codebooks(w);
    const size_t per_j = (size_t)M * (size_t)S * (size_t)go;
    for (int t = 0; t < c->T; t++)
        for (int64_t j = j0; j < j1; j++) {
            const float *xj = c->x + (size_t)t * (size_t)K + (size_t)(j * gi);
            float *L = c->lut + ((size_t)t * (size_t)J + (size_t)j) * per_j;
            const float *v = cb;
            for (size_t e = 0; e < per_j; e++, v += gi) { /* e = (m·2^B + code)·go + i */
                float s = 0.0f;
                for (int k = 0; k < gi; k++) s += xj[k] * v[k];
                L[e] = s;
            }
        }
}

/* outputs of output groups [o0, o1): y = s·Σ_j Σ_m L[j][m][code] */
static void aq_lut_rows(const struct aq_lut_ctx *c, int64_t o0, int64_t o1) {
    const struct tensor *w = c->w;
    const int go = w->q_out_group, M = w->q_ncb;
    const int64_t N = tensor_nrows(w), J = aqlm_n_in_groups(w), S = aqlm_codebook_size(w);
    const size_t per_m = (size_t)S * (size_t)go, per_j = (size_t)M * per_m;
    const float *sc = aqlm_scales(w);
    const uint8_t *codes = w->data; /* B <= 8: one byte per code */
    const size_t row_codes = (size_t)J * (size_t)M;
    for (int t = 0; t < c->T; t++) {
        const float *L = c->lut + (size_t)t * (size_t)J * per_j;
        float *yt = c->y + (size_t)t * (size_t)N;
        int64_t o = o0;
        if (go == 1) /* four rows at a time: independent chains, each in (j, m) order */
            for (; o + 4 <= o1; o += 4) {
                const uint8_t *q0 = codes + (size_t)o * row_codes, *q1 = q0 + row_codes,
                              *q2 = q1 + row_codes, *q3 = q2 + row_codes;
                float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
                const float *Lj = L;
                for (size_t jm = 0; jm < row_codes; jm++, Lj += per_m) {
                    a0 += Lj[q0[jm]];
                    a1 += Lj[q1[jm]];
                    a2 += Lj[q2[jm]];
                    a3 += Lj[q3[jm]];
                }
                yt[o] = a0 * sc[o];
                yt[o + 1] = a1 * sc[o + 1];
                yt[o + 2] = a2 * sc[o + 2];
                yt[o + 3] = a3 * sc[o + 3];
            }
        for (; o < o1; o++) { /* leftovers, and every output group of go > 1 */
            const uint8_t *q = codes + (size_t)o * row_codes;
            float acc[AQLM_MAX_GROUP];
            for (int i = 0; i < go; i++) acc[i] = 0.0f;
            const float *Lj = L;
            for (size_t jm = 0; jm < row_codes; jm++, Lj += per_m) {
                const float *e = Lj + (size_t)q[jm] * (size_t)go;
                for (int i = 0; i < go; i++) acc[i] += e[i];
            }
            for (int i = 0; i < go; i++) yt[o * go + i] = acc[i] * sc[o];
        }
    }
}

static void aq_lut_thread(const struct aq_lut_ctx *c, int ith, int nth) {
    const int64_t J = aqlm_n_in_groups(c->w), O = aqlm_n_out_groups(c->w);
    aq_lut_build(c, J * ith / nth, J * (ith + 1) / nth);
#ifdef _OPENMP
#pragma omp barrier
#endif
    aq_lut_rows(c, O * ith / nth, O * (ith + 1) / nth);
}

/* the lookup tables' floats for n_tok tokens */
static size_t aq_lut_floats(const struct tensor *w, int n_tok) {
    return (size_t)n_tok * (size_t)aqlm_n_in_groups(w) * (size_t)w->q_ncb *
           (size_t)aqlm_codebook_size(w) * (size_t)w->q_out_group;
}

static int aq_matmul_lut(float *y, const float *x, const struct tensor *w, int n_tok,
                         struct kscratch *ws) {
    if (w->q_bits > 8) return err("aqlm: lookup tables need codes of at most 8 bits");
    const int64_t K = w->ne[0], N = tensor_nrows(w);
    if (n_tok <= 0) return 0;
    struct aq_lut_ctx c = {.w = w, .x = x, .y = y, .T = n_tok};
    void *owned = NULL;
    c.lut = kscratch_take(ws, align64(aq_lut_floats(w, n_tok) * sizeof(float)), &owned, w->name);
    if (!c.lut) return -1;
    const bool par = (double)n_tok * (double)K * (double)N >= AQ_PAR_MIN_MAC;
    const int nth_max = par ? lb_threads() : 1;
#ifdef _OPENMP
#pragma omp parallel num_threads(nth_max) if (nth_max > 1)
    aq_lut_thread(&c, omp_get_thread_num(), omp_get_num_threads());
#else
    (void)nth_max;
    aq_lut_thread(&c, 0, 1);
#endif
    free(owned);
    return 0;
}

int aqlm_matmul_lut(float *y, const float *x, const struct tensor *w, int n_tok) {
    return aq_matmul_lut(y, x, w, n_tok, NULL);
}

/* ===== dequantizing GEMM ===== */

int aqlm_matmul_gemm(float *y, const float *x, const struct tensor *w, int n_tok, const char *isa) {
    const int i = cpu_isa_usable(isa);
    if (i < 0) return -1; /* matmul_gemm_deq trusts its caller */
    return matmul_gemm_deq(y, x, NULL, w, n_tok, (enum cpu_isa)i, aq_deq, NULL);
}

/* the lookup tables are scalar C; the GEMM takes matmul.c's path */
const char *aqlm_matmul_path(void) { return kernels_isa(); }

/* ===== dispatch ===== */

/* tables pay when the M·2^B·go table entries per input group are fewer than the outputs that read
 * them */
static bool aq_use_lut(const struct tensor *w, int n_tok) {
    return n_tok <= AQLM_LUT_MAX_T && w->q_bits <= 8 &&
           (int64_t)w->q_ncb * aqlm_codebook_size(w) * w->q_out_group <= tensor_nrows(w);
}

size_t aqlm_matmul_scratch(const struct tensor *w, int n_tok, int n_threads) {
    if (n_tok <= 0 || tensor_nrows(w) <= 0) return 0;
    if (aq_use_lut(w, n_tok)) return align64(aq_lut_floats(w, n_tok) * sizeof(float));
    return matmul_gemm_deq_scratch(w, n_tok, cpu_isa(), n_threads);
}

int aqlm_matmul_ws(float *y, const float *x, const struct tensor *w, int n_tok,
                   struct kscratch *ws) {
    if (n_tok <= 0 || tensor_nrows(w) <= 0) return 0;
    if (aq_use_lut(w, n_tok)) return aq_matmul_lut(y, x, w, n_tok, ws);
    return matmul_gemm_deq(y, x, NULL, w, n_tok, cpu_isa(), aq_deq, ws);
}

int aqlm_matmul(float *y, const float *x, const struct tensor *w, int n_tok) {
    return aqlm_matmul_ws(y, x, w, n_tok, NULL);
}
