/* kernels/ggml_quants.c: the GGUF quantizers of ggml_quants.h (in kernels/, below the dtype table
 * whose from_f32 they are: ggml keeps its reference quantizers in its own bottom layer too).
 *
 * Source: ggml/src/ggml-quants.c of llama.cpp de3ff81 (the release node-llama-cpp 3.22.1 ships;
 * k-quants by Kawrakow, PR #1684; imatrix variants, PR #4861 and #4930). Re-written from the
 * algorithms, not copied; nothing simplified: the aim is the same bytes. What that takes:
 *  - the same fp32 operations in the same order (a·b·c is (a·b)·c, ints converted where ggml
 *    converts them), no fused multiply-add (GCC under -std=c11 does not contract; clang is told
 *    below), so the searches take the same branches;
 *  - ggml's nearest_int (lb_nearest_int) and its integer truncations (a value stored to uint8_t or
 *    int8_t wraps; a float cast to an 8-bit int goes through x86's cvttss2si, see f2i8), which
 *    only matter on degenerate input but keep even that identical;
 *  - the same "largest |x|" tie rule (the first one wins) and the same early exits.
 * Tolerance promised: none; tests/test_quants.c compares hashes recorded from ggml.
 *
 * Search helpers (ggml names in brackets):
 *  - qx_search [make_qx_quants]: symmetric, L in [-nmax, nmax), scale = least squares of the
 *    rounded grid, 18 perturbed inverse scales -(nmax + 0.1·is)/max tried, weighted by x², 1, |x|,
 *    sqrt|x| or the imatrix weights;
 *  - q3_search [make_q3_quants]: symmetric, then coordinate descent on each L (5 sweeps);
 *  - qkx2_search / qkx3_search [make_qkx2/3_quants]: asymmetric scale + min by weighted least
 *    squares over nstep+1 inverse scales (qkx3: x² weights when none are given, max <= min test);
 *  - qp_search [make_qp_quants]: non-negative values (the sub-block scales), 8 perturbed scales,
 *    then coordinate descent; used to quantize the scales themselves under an imatrix. */
#include "kernels/ggml_quants.h"
#include "kernels/iquants.h"

#include <float.h>
#include <math.h>
#include <string.h>

#if defined(__clang__)
#pragma clang fp contract(off)
#endif

#define GROUP_MAX_EPS 1e-15f

static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }
static inline int clampi(int v, int lo, int hi) { return imax(lo, imin(hi, v)); }

/* (int8_t)f as x86-64 compilers emit it for ggml: cvttss2si to int32 (INT32_MIN on NaN or
 * overflow), then the low byte */
static inline int8_t f2i8(float f) {
    int32_t v = (f > -2147483904.0f && f < 2147483648.0f) ? (int32_t)f : INT32_MIN;
    return (int8_t)(uint8_t)(uint32_t)v;
}
static inline uint8_t f2u8(float f) { return (uint8_t)f2i8(f); }

/* weight of element i in make_qx_quants: imatrix-derived when given, else by rmse_type */
static inline float qx_weight(const float *qw, int rmse_type, float x, int i) {
    if (qw) return qw[i];
    switch (rmse_type) {
    case 1: return x * x;
    case 2: return 1.0f;
    case 3: return fabsf(x);
    default: return sqrtf(fabsf(x));
    }
}

/* ===== search helpers ===== */

/* L[i] in [0, 2·nmax) (offset by nmax); returns the scale: x ≈ scale·(L - nmax) */
static float qx_search(int n, int nmax, const float *x, int8_t *L, int rmse_type,
                       const float *qw) {
    float max = 0.0f, amax = 0.0f;
    for (int i = 0; i < n; i++)
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float iscale = (float)-nmax / max;
    if (rmse_type == 0) {
        for (int i = 0; i < n; i++)
            L[i] = (int8_t)(nmax + clampi(lb_nearest_int(iscale * x[i]), -nmax, nmax - 1));
        return 1.0f / iscale;
    }
    const bool early = rmse_type < 0;
    if (early) rmse_type = -rmse_type;
    float sumlx = 0.0f, suml2 = 0.0f;
    for (int i = 0; i < n; i++) {
        const int l = clampi(lb_nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)(l + nmax);
        const float w = qx_weight(qw, rmse_type, x[i], i);
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
    if (early) return suml2 > 0 ? 0.5f * (scale + 1.0f / iscale) : 1.0f / iscale;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (!is) continue;
        iscale = -((float)nmax + 0.1f * (float)is) / max;
        sumlx = suml2 = 0.0f;
        for (int i = 0; i < n; i++) {
            const int l = clampi(lb_nearest_int(iscale * x[i]), -nmax, nmax - 1);
            const float w = qx_weight(qw, rmse_type, x[i], i);
            sumlx += w * x[i] * (float)l;
            suml2 += w * (float)l * (float)l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++)
                L[i] = (int8_t)(nmax + clampi(lb_nearest_int(iscale * x[i]), -nmax, nmax - 1));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* symmetric with x² weights, then up to 5 sweeps of single-element moves that raise
 * (Σ w·x·l)² / Σ w·l² (do_rmse); L offset by nmax */
static float q3_search(int n, int nmax, const float *x, int8_t *L, bool do_rmse) {
    float max = 0.0f, amax = 0.0f;
    for (int i = 0; i < n; i++)
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    const float iscale = (float)-nmax / max;
    if (!do_rmse) {
        for (int i = 0; i < n; i++)
            L[i] = (int8_t)(clampi(lb_nearest_int(iscale * x[i]), -nmax, nmax - 1) + nmax);
        return 1.0f / iscale;
    }
    float sumlx = 0.0f, suml2 = 0.0f;
    for (int i = 0; i < n; i++) {
        const int l = clampi(lb_nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)l;
        const float w = x[i] * x[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    for (int sweep = 0; sweep < 5; sweep++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            const float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * (float)L[i];
            if (!(slx > 0)) continue;
            float sl2 = suml2 - w * (float)L[i] * (float)L[i];
            const int nl = clampi(lb_nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
            if (nl == L[i]) continue;
            slx += w * x[i] * (float)nl;
            sl2 += w * (float)nl * (float)nl;
            if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                L[i] = (int8_t)nl;
                sumlx = slx;
                suml2 = sl2;
                changed++;
            }
        }
        if (!changed) break;
    }
    for (int i = 0; i < n; i++) L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* asymmetric: x ≈ scale·L - *the_min, L in [0, nmax]; weighted squared (or absolute, use_mad)
 * error; qkx3 semantics when x2_default (weights may be NULL = x², and max <= min exits) */
static float qkx_search(int n, int nmax, const float *x, const float *weights, uint8_t *L,
                        float *the_min, uint8_t *Laux, float rmin, float rdelta, int nstep,
                        bool use_mad, bool x2_default) {
#define QKX_W(i) (weights ? weights[i] : x[i] * x[i])
    float min = x[0], max = x[0];
    float sum_w = QKX_W(0);
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        const float w = QKX_W(i);
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0) min = 0;
    if (x2_default ? max <= min : max == min) {
        memset(L, 0, (size_t)n);
        *the_min = -min;
        return 0.0f;
    }
    float iscale = (float)nmax / (max - min);
    float scale = 1.0f / iscale;
    float best = 0.0f;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)clampi(lb_nearest_int(iscale * (x[i] - min)), 0, nmax);
        float diff = scale * (float)L[i] + min - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        best += QKX_W(i) * diff;
    }
    if (nstep < 1) {
        *the_min = -min;
        return scale;
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * (float)is + (float)nmax) / (max - min);
        float sum_l = 0.0f, sum_l2 = 0.0f, sum_xl = 0.0f;
        for (int i = 0; i < n; i++) {
            const int l = clampi(lb_nearest_int(iscale * (x[i] - min)), 0, nmax);
            Laux[i] = (uint8_t)l;
            const float w = QKX_W(i);
            sum_l += w * (float)l;
            sum_l2 += w * (float)l * (float)l;
            sum_xl += w * (float)l * x[i];
        }
        const float D = sum_w * sum_l2 - sum_l * sum_l;
        if (!(D > 0)) continue;
        float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
        float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
        if (this_min > 0) {
            this_min = 0;
            this_scale = sum_xl / sum_l2;
        }
        float err = 0.0f;
        for (int i = 0; i < n; i++) {
            float diff = this_scale * (float)Laux[i] + this_min - x[i];
            diff = use_mad ? fabsf(diff) : diff * diff;
            err += QKX_W(i) * diff;
        }
        if (err < best) {
            memcpy(L, Laux, (size_t)n);
            best = err;
            scale = this_scale;
            min = this_min;
        }
    }
    *the_min = -min;
    return scale;
#undef QKX_W
}

/* non-negative x (sub-block scales or mins) to L in [0, nmax] under weights qw; returns the
 * scale. L is uint8: a negative x wraps, as in ggml. */
static float qp_search(int n, int nmax, const float *x, uint8_t *L, const float *qw) {
    float max = 0.0f;
    for (int i = 0; i < n; i++) max = max > x[i] ? max : x[i];
    if (max < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float iscale = (float)nmax / max;
    for (int i = 0; i < n; i++) L[i] = (uint8_t)lb_nearest_int(iscale * x[i]);
    const float scale = 1.0f / iscale;
    float best = 0.0f;
    for (int i = 0; i < n; i++) {
        const float diff = x[i] - scale * (float)L[i];
        best += qw[i] * diff * diff;
    }
    for (int is = -4; is <= 4; is++) {
        if (!is) continue;
        const float iscale_is = (0.1f * (float)is + (float)nmax) / max;
        const float scale_is = 1.0f / iscale_is;
        float mse = 0.0f;
        for (int i = 0; i < n; i++) {
            const int l = imin(nmax, lb_nearest_int(iscale_is * x[i]));
            const float diff = x[i] - scale_is * (float)l;
            mse += qw[i] * diff * diff;
        }
        if (mse < best) {
            best = mse;
            iscale = iscale_is;
        }
    }
    float sumlx = 0.0f, suml2 = 0.0f;
    for (int i = 0; i < n; i++) {
        const int l = imin(nmax, lb_nearest_int(iscale * x[i]));
        L[i] = (uint8_t)l;
        sumlx += qw[i] * x[i] * (float)l;
        suml2 += qw[i] * (float)l * (float)l;
    }
    for (int sweep = 0; sweep < 5; sweep++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            const float w = qw[i];
            float slx = sumlx - w * x[i] * (float)L[i];
            float sl2 = suml2 - w * (float)L[i] * (float)L[i];
            if (!(slx > 0 && sl2 > 0)) continue;
            const int nl = imin(nmax, lb_nearest_int(x[i] * sl2 / slx));
            if (nl == L[i]) continue;
            slx += w * x[i] * (float)nl;
            sl2 += w * (float)nl * (float)nl;
            if (slx * slx * suml2 > sumlx * sumlx * sl2) {
                L[i] = (uint8_t)nl;
                sumlx = slx;
                suml2 = sl2;
                changed++;
            }
        }
        if (!changed) break;
    }
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

float gq_make_qp_quants(int n, int nmax, const float *x, uint8_t *L, const float *qw) {
    return qp_search(n, nmax, x, L, qw);
}

/* ===== legacy blocks, reference ===== */

/* the signed value of largest |x| (the first on ties) */
static float signed_absmax(const float *x, int n, float *amax_out) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++)
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    if (amax_out) *amax_out = amax;
    return max;
}

static void min_max(const float *x, int n, float *mn, float *mx) {
    float lo = FLT_MAX, hi = -FLT_MAX;
    for (int j = 0; j < n; j++) {
        if (x[j] < lo) lo = x[j];
        if (x[j] > hi) hi = x[j];
    }
    *mn = lo;
    *mx = hi;
}

/* Q4_0: d = max/-8, q = min(15, trunc(x/d + 8.5)) */
void gq_q4_0_ref(const float *x, void *vy, int64_t n) {
    struct block_q4_0 *y = vy;
    for (int64_t i = 0; i < n / QK4_0; i++, x += QK4_0) {
        const float d = signed_absmax(x, QK4_0, NULL) / -8;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = lb_f32_to_fp16(d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            const uint8_t lo = (uint8_t)imin(15, f2i8(x[j] * id + 8.5f));
            const uint8_t hi = (uint8_t)imin(15, f2i8(x[j + QK4_0 / 2] * id + 8.5f));
            y[i].qs[j] = (uint8_t)(lo | hi << 4);
        }
    }
}

/* Q4_1: d = (max-min)/15, m = min, q = min(15, trunc((x-min)/d + 0.5)) */
void gq_q4_1_ref(const float *x, void *vy, int64_t n) {
    struct block_q4_1 *y = vy;
    for (int64_t i = 0; i < n / QK4_1; i++, x += QK4_1) {
        float mn, mx;
        min_max(x, QK4_1, &mn, &mx);
        const float d = (mx - mn) / 15;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = lb_f32_to_fp16(d);
        y[i].m = lb_f32_to_fp16(mn);
        for (int j = 0; j < QK4_1 / 2; j++) {
            const uint8_t lo = (uint8_t)imin(15, f2i8((x[j] - mn) * id + 0.5f));
            const uint8_t hi = (uint8_t)imin(15, f2i8((x[j + QK4_1 / 2] - mn) * id + 0.5f));
            y[i].qs[j] = (uint8_t)(lo | hi << 4);
        }
    }
}

/* 5-bit codes q[32] into nibbles and the qh bit field */
static void pack5(const uint8_t *q, uint8_t *qs, uint8_t qh_out[4]) {
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((q[j] & 0xF) | (q[j + 16] & 0xF) << 4);
        qh |= (uint32_t)((q[j] & 0x10u) >> 4) << j;
        qh |= (uint32_t)((q[j + 16] & 0x10u) >> 4) << (j + 16);
    }
    for (int b = 0; b < 4; b++) qh_out[b] = (uint8_t)(qh >> (8 * b));
}

/* Q5_0: d = max/-16, q = min(31, trunc(x/d + 16.5)) */
void gq_q5_0_ref(const float *x, void *vy, int64_t n) {
    struct block_q5_0 *y = vy;
    for (int64_t i = 0; i < n / QK5_0; i++, x += QK5_0) {
        const float d = signed_absmax(x, QK5_0, NULL) / -16;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = lb_f32_to_fp16(d);
        uint8_t q[QK5_0];
        for (int j = 0; j < QK5_0; j++) q[j] = (uint8_t)imin(31, f2i8(x[j] * id + 16.5f));
        pack5(q, y[i].qs, y[i].qh);
    }
}

/* Q5_1: d = (max-min)/31, m = min, q = trunc((x-min)/d + 0.5) */
void gq_q5_1_ref(const float *x, void *vy, int64_t n) {
    struct block_q5_1 *y = vy;
    for (int64_t i = 0; i < n / QK5_1; i++, x += QK5_1) {
        float mn, mx;
        min_max(x, QK5_1, &mn, &mx);
        const float d = (mx - mn) / 31;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = lb_f32_to_fp16(d);
        y[i].m = lb_f32_to_fp16(mn);
        uint8_t q[QK5_1];
        for (int j = 0; j < QK5_1; j++) q[j] = f2u8((x[j] - mn) * id + 0.5f);
        pack5(q, y[i].qs, y[i].qh);
    }
}

/* Q8_0: d = amax/127, q = round(x/d) */
void gq_q8_0_ref(const float *x, void *vy, int64_t n) {
    struct block_q8_0 *y = vy;
    for (int64_t i = 0; i < n / QK8_0; i++, x += QK8_0) {
        float amax = 0.0f;
        for (int j = 0; j < QK8_0; j++) amax = amax > fabsf(x[j]) ? amax : fabsf(x[j]);
        const float d = amax / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = lb_f32_to_fp16(d);
        for (int j = 0; j < QK8_0; j++) y[i].qs[j] = f2i8(roundf(x[j] * id));
    }
}

/* ===== legacy blocks with an importance matrix (quantize_q4_0 etc. with quant_weights) ===== */

/* Σx²/n over the whole row */
static float row_sigma2(const float *x, int64_t n) {
    float s = 0.0f;
    for (int64_t j = 0; j < n; j++) s += x[j] * x[j];
    return s / (float)n;
}

/* w_j = imatrix_j·sqrt(σ² + x_j²) */
static void imatrix_weights(const float *qw, const float *x, float sigma2, int n, float *w) {
    for (int j = 0; j < n; j++) w[j] = qw[j] * sqrtf(sigma2 + x[j] * x[j]);
}

static void q4_0_imatrix_row(const float *x, struct block_q4_0 *y, int64_t n, const float *qw) {
    const float sigma2 = row_sigma2(x, n);
    float w[QK4_0];
    int8_t L[QK4_0];
    for (int64_t ib = 0; ib < n / QK4_0; ib++) {
        const float *xb = x + QK4_0 * ib;
        imatrix_weights(qw + QK4_0 * ib, xb, sigma2, QK4_0, w);
        y[ib].d = lb_f32_to_fp16(qx_search(QK4_0, 8, xb, L, 1, w));
        for (int j = 0; j < 16; j++) y[ib].qs[j] = (uint8_t)(L[j] | L[j + 16] << 4);
    }
}

static void q4_1_imatrix_row(const float *x, struct block_q4_1 *y, int64_t n, const float *qw) {
    const float sigma2 = row_sigma2(x, n);
    float w[QK4_1], the_min;
    uint8_t L[QK4_1], Laux[QK4_1];
    for (int64_t ib = 0; ib < n / QK4_1; ib++) {
        const float *xb = x + QK4_1 * ib;
        imatrix_weights(qw + QK4_1 * ib, xb, sigma2, QK4_1, w);
        const float d =
            qkx_search(QK4_1, 15, xb, w, L, &the_min, Laux, -0.9f, 0.05f, 36, false, true);
        y[ib].d = lb_f32_to_fp16(d);
        y[ib].m = lb_f32_to_fp16(-the_min);
        for (int j = 0; j < 16; j++) y[ib].qs[j] = (uint8_t)(L[j] | L[j + 16] << 4);
    }
}

static void q5_0_imatrix_row(const float *x, struct block_q5_0 *y, int64_t n, const float *qw) {
    const float sigma2 = row_sigma2(x, n);
    float w[QK5_0];
    int8_t L[QK5_0];
    for (int64_t ib = 0; ib < n / QK5_0; ib++) {
        const float *xb = x + QK5_0 * ib;
        imatrix_weights(qw + QK5_0 * ib, xb, sigma2, QK5_0, w);
        y[ib].d = lb_f32_to_fp16(qx_search(QK5_0, 16, xb, L, 1, w));
        pack5((const uint8_t *)L, y[ib].qs, y[ib].qh);
    }
}

static void q5_1_imatrix_row(const float *x, struct block_q5_1 *y, int64_t n, const float *qw) {
    const float sigma2 = row_sigma2(x, n);
    float w[QK5_1], the_min;
    uint8_t L[QK5_1], Laux[QK5_1];
    for (int64_t ib = 0; ib < n / QK5_1; ib++) {
        const float *xb = x + QK5_1 * ib;
        imatrix_weights(qw + QK5_1 * ib, xb, sigma2, QK5_1, w);
        const float d =
            qkx_search(QK5_1, 31, xb, w, L, &the_min, Laux, -0.9f, 0.05f, 36, false, true);
        y[ib].d = lb_f32_to_fp16(d);
        y[ib].m = lb_f32_to_fp16(-the_min);
        pack5(L, y[ib].qs, y[ib].qh);
    }
}

/* ===== IQ4_NL ===== */

/* index of the codebook value nearest to x (ties to the upper one), values ascending */
static int iq4_best_index(const int8_t *val, float x) {
    if (x <= (float)val[0]) return 0;
    if (x >= (float)val[15]) return 15;
    int lo = 0, hi = 15;
    while (hi - lo > 1) {
        const int mid = (lo + hi) / 2;
        if (x < (float)val[mid])
            hi = mid;
        else
            lo = mid;
    }
    return x - (float)val[hi - 1] < (float)val[hi] - x ? hi - 1 : hi;
}

/* one 32-weight block [quantize_row_iq4_nl_impl with super_block = block = 32]: ntry = -1 for
 * the _ref (first guess only), 7 for quantize_iq4_nl (15 inverse scales, then a re-assignment of
 * every code under the final scale). L keeps its contents when the block is all zero. */
static void iq4_nl_block(const float *x, struct block_iq4_nl *y, const float *qw, int ntry,
                         uint8_t L[QK4_NL]) {
    const int8_t *val = kvalues_iq4nl;
    float sigma2 = 0.0f, w[QK4_NL];
    for (int j = 0; j < QK4_NL; j++) sigma2 += x[j] * x[j];
    sigma2 *= 2.0f / QK4_NL;
    for (int j = 0; j < QK4_NL; j++) w[j] = qw ? qw[j] * sqrtf(sigma2 + x[j] * x[j]) : x[j] * x[j];
    float amax = 0.0f, max = 0.0f, d = 0.0f;
    for (int j = 0; j < QK4_NL; j++)
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    if (amax >= GROUP_MAX_EPS) {
        d = ntry > 0 ? -max / (float)val[0] : max / (float)val[0];
        float id = 1.0f / d, sumqx = 0.0f, sumq2 = 0.0f;
        for (int j = 0; j < QK4_NL; j++) {
            L[j] = (uint8_t)iq4_best_index(val, id * x[j]);
            const float q = (float)val[L[j]];
            sumqx += w[j] * q * x[j];
            sumq2 += w[j] * q * q;
        }
        d = sumq2 > 0 ? sumqx / sumq2 : 0.0f;
        float best = d * sumqx;
        for (int itry = -ntry; itry <= ntry; itry++) {
            id = (float)(itry + val[0]) / max;
            sumqx = sumq2 = 0.0f;
            for (int j = 0; j < QK4_NL; j++) {
                const float q = (float)val[iq4_best_index(val, id * x[j])];
                sumqx += w[j] * q * x[j];
                sumq2 += w[j] * q * q;
            }
            if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
                d = sumqx / sumq2;
                best = d * sumqx;
            }
        }
    }
    y->d = lb_f32_to_fp16(d);
    if (ntry > 0) {
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        for (int j = 0; j < QK4_NL; j++) L[j] = (uint8_t)iq4_best_index(val, id * x[j]);
    }
    for (int j = 0; j < 16; j++) y->qs[j] = (uint8_t)(L[j] | L[j + 16] << 4);
}

void gq_iq4_nl_ref(const float *x, void *vy, int64_t n) {
    uint8_t L[QK4_NL] = {0};
    for (int64_t i = 0; i < n / QK4_NL; i++)
        iq4_nl_block(x + QK4_NL * i, (struct block_iq4_nl *)vy + i, NULL, -1, L);
}

/* quantize_iq4_nl over rows of n_per_row (L carries over blocks and rows, as there) */
static void iq4_nl_rows(const float *x, void *vy, int64_t n_rows, int64_t n_per_row,
                        const float *qw) {
    uint8_t L[QK4_NL] = {0};
    struct block_iq4_nl *y = vy;
    const int64_t nb = n_per_row / QK4_NL;
    for (int64_t r = 0; r < n_rows; r++)
        for (int64_t i = 0; i < nb; i++)
            iq4_nl_block(x + r * n_per_row + QK4_NL * i, y + r * nb + i,
                         qw ? qw + QK4_NL * i : NULL, 7, L);
}

void gq_iq4_nl(const float *x, void *vy, int64_t n) { iq4_nl_rows(x, vy, 1, n, NULL); }

/* ===== K-quant packing shared by Q2_K/Q3_K and Q4_K/Q5_K ===== */

/* 2-bit codes L[256] into qs[64]: byte l of half h holds weights 128h + l + 32k in bits 2k */
static void pack2(const uint8_t *L, uint8_t *qs) {
    for (int j = 0; j < QK_K; j += 128)
        for (int l = 0; l < 32; l++)
            qs[j / 4 + l] = (uint8_t)(L[j + l] | L[j + l + 32] << 2 | L[j + l + 64] << 4 |
                                      L[j + l + 96] << 6);
}

/* six-bit scale ls and min lm of sub-block j into the 12-byte k4 layout (j ascending) */
static void k4_put(uint8_t *s, int j, uint8_t ls, uint8_t lm) {
    if (j < 4) {
        s[j] = ls;
        s[j + 4] = lm;
    } else {
        s[j + 4] = (uint8_t)((ls & 0xF) | (lm & 0xF) << 4);
        s[j - 4] |= (uint8_t)((ls >> 4) << 6);
        s[j] |= (uint8_t)((lm >> 4) << 6);
    }
}

/* ===== Q2_K ===== */

/* requantize with the stored scales: L = clamp(nearest((x + dmin·mn)/(d·sc)), 0..3) */
static void q2_k_finish(const float *x, struct block_q2_k *y, uint8_t *L) {
    const float dd = lb_fp16_to_f32(y->d), dm = lb_fp16_to_f32(y->dmin);
    for (int j = 0; j < QK_K / 16; j++) {
        const float d = dd * (float)(y->scales[j] & 0xF);
        if (d == 0.0f) continue;
        const float m = dm * (float)(y->scales[j] >> 4);
        for (int ii = 0; ii < 16; ii++)
            L[16 * j + ii] = (uint8_t)clampi(lb_nearest_int((x[16 * j + ii] + m) / d), 0, 3);
    }
    pack2(L, y->qs);
}

void gq_q2_k_ref(const float *x, void *vy, int64_t n) {
    struct block_q2_k *y = vy;
    uint8_t L[QK_K], Laux[16];
    float w[16], mins[QK_K / 16], scales[QK_K / 16];
    const float q4scale = 15.0f;
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        float max_scale = 0.0f, max_min = 0.0f;
        for (int j = 0; j < QK_K / 16; j++) {
            for (int l = 0; l < 16; l++) w[l] = fabsf(x[16 * j + l]);
            scales[j] = qkx_search(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f,
                                   15, true, false);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        if (max_scale > 0) {
            const float iscale = q4scale / max_scale;
            for (int j = 0; j < QK_K / 16; j++)
                y[i].scales[j] = (uint8_t)lb_nearest_int(iscale * scales[j]);
            y[i].d = lb_f32_to_fp16(max_scale / q4scale);
        } else {
            memset(y[i].scales, 0, sizeof y[i].scales);
            y[i].d = lb_f32_to_fp16(0.0f);
        }
        if (max_min > 0) {
            const float iscale = q4scale / max_min;
            for (int j = 0; j < QK_K / 16; j++)
                y[i].scales[j] =
                    (uint8_t)(y[i].scales[j] | lb_nearest_int(iscale * mins[j]) << 4);
            y[i].dmin = lb_f32_to_fp16(max_min / q4scale);
        } else {
            y[i].dmin = lb_f32_to_fp16(0.0f);
        }
        q2_k_finish(x, &y[i], L);
    }
}

static void q2_k_imatrix_row(const float *x, struct block_q2_k *y, int64_t n, const float *qw) {
    uint8_t L[QK_K], Laux[16], Ls[QK_K / 16], Lm[QK_K / 16];
    float mins[QK_K / 16], scales[QK_K / 16], sw[QK_K / 16], w[16];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        float sumx2 = 0.0f;
        for (int j = 0; j < QK_K; j++) sumx2 += x[j] * x[j];
        const float sigma2 = sumx2 / QK_K;
        for (int j = 0; j < QK_K / 16; j++) {
            imatrix_weights(qw + QK_K * i + 16 * j, x + 16 * j, sigma2, 16, w);
            sw[j] = 0.0f;
            for (int l = 0; l < 16; l++) sw[j] += w[l];
            scales[j] = qkx_search(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], Laux, -0.9f, 0.05f,
                                   36, false, true);
        }
        const float dm = qp_search(QK_K / 16, 15, scales, Ls, sw);
        const float mm = qp_search(QK_K / 16, 15, mins, Lm, sw);
        y[i].d = lb_f32_to_fp16(dm);
        y[i].dmin = lb_f32_to_fp16(mm);
        for (int j = 0; j < QK_K / 16; j++) y[i].scales[j] = (uint8_t)(Ls[j] | Lm[j] << 4);
        q2_k_finish(x, &y[i], L);
    }
}

/* ===== Q3_K ===== */

/* the stored scale j of a Q3_K block, minus 32 */
static int q3_k_scale(const uint8_t *s, int j) {
    const int lo = j < 8 ? s[j] & 0xF : s[j - 8] >> 4;
    return (int8_t)((lo | ((s[8 + j % 4] >> (2 * (j / 4))) & 3) << 4) - 32);
}

/* six-bit l (0..63) of sub-block j into the 12 scale bytes (zeroed first, j ascending) */
static void q3_k_put_scale(uint8_t *s, int j, int l) {
    if (j < 8)
        s[j] = (uint8_t)(l & 0xF);
    else
        s[j - 8] |= (uint8_t)((l & 0xF) << 4);
    s[j % 4 + 8] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
}

/* requantize with the stored scales, then split off the high bit into hmask */
static void q3_k_finish(const float *x, struct block_q3_k *y, int8_t *L) {
    for (int j = 0; j < QK_K / 16; j++) {
        const float d = lb_fp16_to_f32(y->d) * (float)(int8_t)q3_k_scale(y->scales, j);
        if (d == 0.0f) continue;
        for (int ii = 0; ii < 16; ii++)
            L[16 * j + ii] = (int8_t)(clampi(lb_nearest_int(x[16 * j + ii] / d), -4, 3) + 4);
    }
    memset(y->hmask, 0, sizeof y->hmask);
    for (int j = 0; j < QK_K; j++)
        if (L[j] > 3) {
            y->hmask[j % 32] |= (uint8_t)(1u << (j / 32));
            L[j] = (int8_t)(L[j] - 4);
        }
    pack2((const uint8_t *)L, y->qs);
}

void gq_q3_k_ref(const float *x, void *vy, int64_t n) {
    struct block_q3_k *y = vy;
    int8_t L[QK_K];
    float scales[QK_K / 16];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        float max_scale = 0.0f, amax = 0.0f;
        for (int j = 0; j < QK_K / 16; j++) {
            scales[j] = q3_search(16, 4, x + 16 * j, L + 16 * j, true);
            if (fabsf(scales[j]) > amax) {
                amax = fabsf(scales[j]);
                max_scale = scales[j];
            }
        }
        memset(y[i].scales, 0, sizeof y[i].scales);
        if (max_scale != 0.0f) {
            const float iscale = -32.0f / max_scale;
            for (int j = 0; j < QK_K / 16; j++) {
                const int8_t l = (int8_t)lb_nearest_int(iscale * scales[j]);
                q3_k_put_scale(y[i].scales, j, clampi(l, -32, 31) + 32);
            }
            y[i].d = lb_f32_to_fp16(1.0f / iscale);
        } else {
            y[i].d = lb_f32_to_fp16(0.0f);
        }
        q3_k_finish(x, &y[i], L);
    }
}

static void q3_k_imatrix_row(const float *x, struct block_q3_k *y, int64_t n, const float *qw) {
    int8_t L[QK_K], Ls[QK_K / 16];
    float scales[QK_K / 16], w[16], sw[QK_K / 16];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        float sumx2 = 0.0f;
        for (int j = 0; j < QK_K; j++) sumx2 += x[j] * x[j];
        const float sigma2 = 2 * sumx2 / QK_K;
        for (int j = 0; j < QK_K / 16; j++) {
            if (qw)
                imatrix_weights(qw + QK_K * i + 16 * j, x + 16 * j, sigma2, 16, w);
            else
                for (int l = 0; l < 16; l++) w[l] = x[16 * j + l] * x[16 * j + l];
            float sumw = 0.0f;
            for (int l = 0; l < 16; l++) sumw += w[l];
            sw[j] = sumw;
            scales[j] = qx_search(16, 4, x + 16 * j, L + 16 * j, 1, w);
        }
        memset(y[i].scales, 0, sizeof y[i].scales);
        const float d_block = qx_search(QK_K / 16, 32, scales, Ls, 1, sw);
        for (int j = 0; j < QK_K / 16; j++) q3_k_put_scale(y[i].scales, j, Ls[j]);
        y[i].d = lb_f32_to_fp16(d_block);
        q3_k_finish(x, &y[i], L);
    }
}

/* ===== Q4_K and Q5_K ===== */

/* requantize with the stored k4 scales: L = clamp(nearest((x + dmin·mn)/(d·sc)), 0..nmax) */
static void k4_requantize(const float *x, const uint8_t *s, lb_fp16 dh, lb_fp16 mh, int nmax,
                          uint8_t *L) {
    for (int j = 0; j < QK_K / 32; j++) {
        uint8_t sc, mn;
        quants_k4_scale_min(j, s, &sc, &mn);
        const float d = lb_fp16_to_f32(dh) * (float)sc;
        if (d == 0.0f) continue;
        const float dm = lb_fp16_to_f32(mh) * (float)mn;
        for (int ii = 0; ii < 32; ii++)
            L[32 * j + ii] = (uint8_t)clampi(lb_nearest_int((x[32 * j + ii] + dm) / d), 0, nmax);
    }
}

/* the data-free sub-block search shared by the Q4_K and Q5_K references: weights
 * sqrt(mean x²) + |x| per 32, then the six-bit scales and mins relative to their maxima */
static void k4_ref_scales(const float *x, int nmax, float rmin, float rdelta, int nstep,
                          uint8_t *L, uint8_t *s, lb_fp16 *dh, lb_fp16 *mh) {
    float w[32], mins[QK_K / 32], scales[QK_K / 32], max_scale = 0.0f, max_min = 0.0f;
    uint8_t Laux[32];
    for (int j = 0; j < QK_K / 32; j++) {
        float sum_x2 = 0.0f;
        for (int l = 0; l < 32; l++) sum_x2 += x[32 * j + l] * x[32 * j + l];
        const float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++) w[l] = av_x + fabsf(x[32 * j + l]);
        scales[j] = qkx_search(32, nmax, x + 32 * j, w, L + 32 * j, &mins[j], Laux, rmin, rdelta,
                               nstep, false, false);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
    const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
    for (int j = 0; j < QK_K / 32; j++) {
        uint8_t ls = (uint8_t)lb_nearest_int(inv_scale * scales[j]);
        uint8_t lm = (uint8_t)lb_nearest_int(inv_min * mins[j]);
        k4_put(s, j, ls < 63 ? ls : 63, lm < 63 ? lm : 63);
    }
    *dh = lb_f32_to_fp16(max_scale / 63.0f);
    *mh = lb_f32_to_fp16(max_min / 63.0f);
}

/* the imatrix sub-block search shared by quantize_q4_K/q5_K: weights imatrix·sqrt(σ² + x²)
 * (or sqrt(σ²) + |x| without), qkx3 per 32, then qp_search on the 8 scales and 8 mins */
static void k4_imatrix_scales(const float *x, const float *qw, int nmax, bool clamp63,
                              uint8_t *L, uint8_t *s, lb_fp16 *dh, lb_fp16 *mh) {
    float w[32], sw[QK_K / 32], mins[QK_K / 32], scales[QK_K / 32];
    uint8_t Laux[32], Ls[QK_K / 32], Lm[QK_K / 32];
    float sum_x2 = 0.0f;
    for (int l = 0; l < QK_K; l++) sum_x2 += x[l] * x[l];
    const float sigma2 = 2 * sum_x2 / QK_K, av_x = sqrtf(sigma2);
    for (int j = 0; j < QK_K / 32; j++) {
        if (qw)
            imatrix_weights(qw + 32 * j, x + 32 * j, sigma2, 32, w);
        else
            for (int l = 0; l < 32; l++) w[l] = av_x + fabsf(x[32 * j + l]);
        float sumw = 0.0f;
        for (int l = 0; l < 32; l++) sumw += w[l];
        sw[j] = sumw;
        scales[j] = qkx_search(32, nmax, x + 32 * j, w, L + 32 * j, &mins[j], Laux, -0.9f, 0.05f,
                               36, false, true);
    }
    const float d_block = qp_search(QK_K / 32, 63, scales, Ls, sw);
    const float m_block = qp_search(QK_K / 32, 63, mins, Lm, sw);
    for (int j = 0; j < QK_K / 32; j++) {
        uint8_t ls = Ls[j], lm = Lm[j];
        if (clamp63) {
            ls = ls < 63 ? ls : 63;
            lm = lm < 63 ? lm : 63;
        }
        k4_put(s, j, ls, lm);
    }
    *dh = lb_f32_to_fp16(d_block);
    *mh = lb_f32_to_fp16(m_block);
}

static void q4_k_pack(const uint8_t *L, uint8_t *qs) {
    for (int j = 0; j < QK_K; j += 64, qs += 32)
        for (int l = 0; l < 32; l++) qs[l] = (uint8_t)(L[j + l] | L[j + l + 32] << 4);
}

static void q5_k_pack(const uint8_t *L, uint8_t *qs, uint8_t *qh) {
    memset(qh, 0, QK_K / 8);
    uint8_t m1 = 1, m2 = 2;
    for (int n = 0; n < QK_K; n += 64, qs += 32, m1 = (uint8_t)(m1 << 2), m2 = (uint8_t)(m2 << 2))
        for (int j = 0; j < 32; j++) {
            int l1 = L[n + j], l2 = L[n + j + 32];
            if (l1 > 15) {
                l1 -= 16;
                qh[j] |= m1;
            }
            if (l2 > 15) {
                l2 -= 16;
                qh[j] |= m2;
            }
            qs[j] = (uint8_t)(l1 | l2 << 4);
        }
}

void gq_q4_k_ref(const float *x, void *vy, int64_t n) {
    struct block_q4_k *y = vy;
    uint8_t L[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        k4_ref_scales(x, 15, -1.0f, 0.1f, 20, L, y[i].scales, &y[i].d, &y[i].dmin);
        k4_requantize(x, y[i].scales, y[i].d, y[i].dmin, 15, L);
        q4_k_pack(L, y[i].qs);
    }
}

static void q4_k_imatrix_row(const float *x, struct block_q4_k *y, int64_t n, const float *qw) {
    uint8_t L[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        k4_imatrix_scales(x, qw ? qw + QK_K * i : NULL, 15, false, L, y[i].scales, &y[i].d,
                          &y[i].dmin);
        k4_requantize(x, y[i].scales, y[i].d, y[i].dmin, 15, L);
        q4_k_pack(L, y[i].qs);
    }
}

void gq_q5_k_ref(const float *x, void *vy, int64_t n) {
    struct block_q5_k *y = vy;
    uint8_t L[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        k4_ref_scales(x, 31, -0.5f, 0.1f, 15, L, y[i].scales, &y[i].d, &y[i].dmin);
        k4_requantize(x, y[i].scales, y[i].d, y[i].dmin, 31, L);
        q5_k_pack(L, y[i].qs, y[i].qh);
    }
}

static void q5_k_imatrix_row(const float *x, struct block_q5_k *y, int64_t n, const float *qw) {
    uint8_t L[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        k4_imatrix_scales(x, qw ? qw + QK_K * i : NULL, 31, true, L, y[i].scales, &y[i].d,
                          &y[i].dmin);
        k4_requantize(x, y[i].scales, y[i].d, y[i].dmin, 31, L);
        q5_k_pack(L, y[i].qs, y[i].qh);
    }
}

/* ===== Q6_K ===== */

/* qw = NULL: the reference (x² weights); else the imatrix slice of this super-block */
static void q6_k_block(const float *x, struct block_q6_k *y, const float *qw) {
    int8_t L[QK_K];
    float scales[QK_K / 16], max_scale = 0.0f, max_abs = 0.0f;
    for (int ib = 0; ib < QK_K / 16; ib++) {
        scales[ib] = qx_search(16, 32, x + 16 * ib, L + 16 * ib, 1, qw ? qw + 16 * ib : NULL);
        if (fabsf(scales[ib]) > max_abs) {
            max_abs = fabsf(scales[ib]);
            max_scale = scales[ib];
        }
    }
    if (max_abs < GROUP_MAX_EPS) {
        memset(y, 0, sizeof *y);
        return;
    }
    const float iscale = -128.0f / max_scale;
    y->d = lb_f32_to_fp16(1.0f / iscale);
    for (int ib = 0; ib < QK_K / 16; ib++)
        y->scales[ib] = (int8_t)imin(127, lb_nearest_int(iscale * scales[ib]));
    for (int j = 0; j < QK_K / 16; j++) {
        const float d = lb_fp16_to_f32(y->d) * (float)y->scales[j];
        if (d == 0.0f) continue;
        for (int ii = 0; ii < 16; ii++)
            L[16 * j + ii] = (int8_t)(clampi(lb_nearest_int(x[16 * j + ii] / d), -32, 31) + 32);
    }
    uint8_t *ql = y->ql, *qh = y->qh;
    for (int j = 0; j < QK_K; j += 128, ql += 64, qh += 32)
        for (int l = 0; l < 32; l++) {
            const int a = L[j + l], b = L[j + l + 32], c = L[j + l + 64], e = L[j + l + 96];
            ql[l] = (uint8_t)((a & 0xF) | (c & 0xF) << 4);
            ql[l + 32] = (uint8_t)((b & 0xF) | (e & 0xF) << 4);
            qh[l] = (uint8_t)(a >> 4 | (b >> 4) << 2 | (c >> 4) << 4 | (e >> 4) << 6);
        }
}

void gq_q6_k_ref(const float *x, void *vy, int64_t n) {
    for (int64_t i = 0; i < n / QK_K; i++)
        q6_k_block(x + QK_K * i, (struct block_q6_k *)vy + i, NULL);
}

/* ===== ggml_quantize_chunk ===== */

bool gq_can_quantize(enum dtype t) {
    switch (t) {
    case DTYPE_F32: case DTYPE_F16: case DTYPE_BF16: case DTYPE_Q8_0:
    case DTYPE_Q4_0: case DTYPE_Q4_1: case DTYPE_Q5_0: case DTYPE_Q5_1: case DTYPE_IQ4_NL:
    case DTYPE_Q2_K: case DTYPE_Q3_K: case DTYPE_Q4_K: case DTYPE_Q5_K: case DTYPE_Q6_K:
        return true;
    default:
        return iq_is_type(t);
    }
}

typedef void (*gq_row_fn)(const float *x, void *y, int64_t n, const float *qw);

#define GQ_ROW(name, fn, blk)                                                                      \
    static void name(const float *x, void *y, int64_t n, const float *qw) {                        \
        fn(x, (struct blk *)y, n, qw);                                                             \
    }
GQ_ROW(row_q4_0, q4_0_imatrix_row, block_q4_0)
GQ_ROW(row_q4_1, q4_1_imatrix_row, block_q4_1)
GQ_ROW(row_q5_0, q5_0_imatrix_row, block_q5_0)
GQ_ROW(row_q5_1, q5_1_imatrix_row, block_q5_1)
GQ_ROW(row_q2_k, q2_k_imatrix_row, block_q2_k)
GQ_ROW(row_q3_k, q3_k_imatrix_row, block_q3_k)
GQ_ROW(row_q4_k, q4_k_imatrix_row, block_q4_k)
GQ_ROW(row_q5_k, q5_k_imatrix_row, block_q5_k)
#undef GQ_ROW

static void row_q6_k(const float *x, void *y, int64_t n, const float *qw) {
    for (int64_t i = 0; i < n / QK_K; i++)
        q6_k_block(x + QK_K * i, (struct block_q6_k *)y + i, qw + QK_K * i);
}

size_t gq_quantize(enum dtype t, const float *src, void *dst, int64_t n_rows, int64_t n_per_row,
                   const float *imatrix) {
    const size_t row_bytes = dtype_row_size(t, n_per_row);
    if (!gq_can_quantize(t) || !row_bytes)
        BUG("gq_quantize: cannot quantize %lld columns to %s", (long long)n_per_row,
            dtype_get(t)->name);
    const int64_t n = n_rows * n_per_row;
    void (*ref)(const float *, void *, int64_t) = NULL;
    gq_row_fn weighted = NULL;
    switch (t) {
    case DTYPE_F32: memcpy(dst, src, (size_t)n * sizeof(float)); break;
    case DTYPE_F16:
    case DTYPE_BF16: dtype_get(t)->from_f32(src, dst, n); break;
    case DTYPE_Q8_0: gq_q8_0_ref(src, dst, n); break;
    case DTYPE_IQ4_NL: iq4_nl_rows(src, dst, n_rows, n_per_row, imatrix); break;
    case DTYPE_Q4_0: ref = gq_q4_0_ref, weighted = row_q4_0; break;
    case DTYPE_Q4_1: ref = gq_q4_1_ref, weighted = row_q4_1; break;
    case DTYPE_Q5_0: ref = gq_q5_0_ref, weighted = row_q5_0; break;
    case DTYPE_Q5_1: ref = gq_q5_1_ref, weighted = row_q5_1; break;
    case DTYPE_Q2_K: ref = gq_q2_k_ref, weighted = row_q2_k; break;
    case DTYPE_Q3_K: ref = gq_q3_k_ref, weighted = row_q3_k; break;
    case DTYPE_Q4_K: ref = gq_q4_k_ref, weighted = row_q4_k; break;
    case DTYPE_Q5_K: ref = gq_q5_k_ref, weighted = row_q5_k; break;
    case DTYPE_Q6_K: ref = gq_q6_k_ref, weighted = row_q6_k; break;
    default:
        if (iq_is_type(t)) return iq_quantize(t, src, dst, n_rows, n_per_row, imatrix);
        BUG("gq_quantize: %s", dtype_get(t)->name);
    }
    if (ref && !imatrix) ref(src, dst, n);
    if (ref && imatrix)
        for (int64_t r = 0; r < n_rows; r++)
            weighted(src + r * n_per_row, (char *)dst + (size_t)r * row_bytes, n_per_row, imatrix);
    return row_bytes * (size_t)n_rows;
}
