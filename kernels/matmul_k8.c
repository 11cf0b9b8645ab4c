/* kernels/matmul_k8.c: the Q8_K-activation matmul (contract and semantics in kernels/matmul_k8.h).
 *
 * Legend: T = n_tok, K = w->ne[0] (a multiple of 256), N = rows of W, LS = sub-block length,
 * nsb = K/256 super-blocks, nsub = K/LS sub-blocks per row, NW = 16 weight rows per panel,
 * RT = tokens per tile.
 *
 * Fast path: x is quantized once per call (codes [T][K], d_x [T][nsb], sub-block sums of the
 * codes [T][nsub]); per panel of 16 rows the weights are unpacked once (k8_unpack) into codes
 * [K/4][16][4] (4 consecutive k of one row: a dword; 16 rows: one vector), scales and mins
 * [nsub][16] (int32) and D, Dm [nsb][16], and reused by every RT-token tile. The tile keeps one
 * output per lane: per sub-block the integer dot product of the 16 rows with a token's 4 codes
 * broadcast, times the rows' scales into the super-block's integer sum; per super-block the fp32
 * epilogue of the oracle. AVX-512 VNNI: vpdpbusd takes u8 × s8, so codes are stored v + 128 and
 * each sub-block's sum starts at −128·Σq. AVX2: maddubs(|v|, sign(q, v)) (|v|, |q| <= 127: no
 * saturation) and madd with ones. Generic: the same data in C loops. */
#include "kernels/matmul_k8.h"

#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "kernels/cpu.h"
#include "kernels/iquants.h"
#include "kernels/matmul.h"
#include "kernels/quants.h"
#if LB_X86
#include <immintrin.h>
#endif

#define K8_NW 16
#define K8_RT_MAX 4
#define K8_PAR_MIN_MAC (1 << 17)

bool k8_supported(enum dtype t) {
    switch (t) {
    case DTYPE_Q2_K:
    case DTYPE_Q3_K:
    case DTYPE_Q4_K:
    case DTYPE_Q5_K:
    case DTYPE_Q6_K: return true;
    default: return iq_is_type(t); /* every i-quant and ternary type pairs with Q8_K */
    }
}

int k8_sub_len(enum dtype t) {
    switch (t) {
    case DTYPE_Q2_K:
    case DTYPE_Q3_K:
    case DTYPE_Q6_K:
    case DTYPE_IQ2_XS:
    case DTYPE_IQ2_S:
    case DTYPE_IQ1_M: return 16;
    default: return 32;
    }
}

bool k8_has_min(enum dtype t) { return t == DTYPE_Q2_K || t == DTYPE_Q4_K || t == DTYPE_Q5_K; }

/* ===== the weights as integers (ggml's dequantize_row_* read without the fp32 products) ===== */

static const uint8_t *grid8(int which) { /* iq_dequant_table: 0 iq2xxs, 1 iq2xs, 2 iq2s */
    size_t n;
    return iq_dequant_table(which, &n);
}

static void unpack_q2_k(const struct block_q2_k *b, int8_t *v, int32_t *sc, int32_t *mn) {
    const uint8_t *q = b->qs;
    int is = 0;
    for (int h = 0; h < 2; h++, q += 32)
        for (int shift = 0; shift < 8; shift += 2)
            for (int half = 0; half < 2; half++, is++) {
                sc[is] = b->scales[is] & 0xF, mn[is] = b->scales[is] >> 4;
                for (int l = 0; l < 16; l++) v[16 * is + l] = (int8_t)((q[16 * half + l] >> shift) & 3);
            }
}

static void unpack_q3_k(const struct block_q3_k *b, int8_t *v, int32_t *sc) {
    for (int j = 0; j < 16; j++) {
        const int lo = j < 8 ? b->scales[j] & 0xF : b->scales[j - 8] >> 4;
        const int hi = (b->scales[8 + j % 4] >> (2 * (j / 4))) & 3;
        sc[j] = (lo | hi << 4) - 32;
    }
    const uint8_t *q = b->qs;
    uint8_t m = 1;
    int is = 0;
    for (int h = 0; h < 2; h++, q += 32)
        for (int shift = 0; shift < 8; shift += 2, m <<= 1)
            for (int half = 0; half < 2; half++, is++)
                for (int l = 0; l < 16; l++) {
                    const int i = 16 * half + l;
                    v[16 * is + l] = (int8_t)(((q[i] >> shift) & 3) - ((b->hmask[i] & m) ? 0 : 4));
                }
}

/* Q4_K (qh NULL) and Q5_K */
static void unpack_q45_k(const uint8_t *scales, const uint8_t *ql, const uint8_t *qh, int8_t *v,
                         int32_t *sc, int32_t *mn) {
    for (int j = 0; j < 8; j++) {
        uint8_t s, m;
        quants_k4_scale_min(j, scales, &s, &m);
        sc[j] = s, mn[j] = m;
    }
    for (int j = 0; j < 4; j++, ql += 32) {
        const uint8_t u1 = (uint8_t)(1u << (2 * j)), u2 = (uint8_t)(2u << (2 * j));
        for (int l = 0; l < 32; l++) {
            v[64 * j + l] = (int8_t)((ql[l] & 0xF) + (qh && (qh[l] & u1) ? 16 : 0));
            v[64 * j + 32 + l] = (int8_t)((ql[l] >> 4) + (qh && (qh[l] & u2) ? 16 : 0));
        }
    }
}

static void unpack_q6_k(const struct block_q6_k *b, int8_t *v, int32_t *sc) {
    for (int j = 0; j < 16; j++) sc[j] = b->scales[j];
    const uint8_t *ql = b->ql, *qh = b->qh;
    for (int h = 0; h < 2; h++, v += 128, ql += 64, qh += 32)
        for (int l = 0; l < 32; l++) {
            v[l] = (int8_t)(((ql[l] & 0xF) | ((qh[l] >> 0) & 3) << 4) - 32);
            v[l + 32] = (int8_t)(((ql[l + 32] & 0xF) | ((qh[l] >> 2) & 3) << 4) - 32);
            v[l + 64] = (int8_t)(((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32);
            v[l + 96] = (int8_t)(((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32);
        }
}

/* 8 grid magnitudes g with sign bits s (bit j set: negative) */
static inline void signed8(int8_t *v, const uint8_t *g, uint8_t s) {
    for (int j = 0; j < 8; j++) v[j] = (int8_t)(s & (1u << j) ? -(int)g[j] : (int)g[j]);
}

void k8_unpack(enum dtype t, const void *blk, int8_t *v, int32_t *sc, int32_t *mn, float *D,
               float *Dm) {
    *Dm = 0.0f;
    switch (t) {
    case DTYPE_Q2_K: {
        const struct block_q2_k *b = blk;
        unpack_q2_k(b, v, sc, mn);
        *D = lb_fp16_to_f32(b->d), *Dm = lb_fp16_to_f32(b->dmin);
        return;
    }
    case DTYPE_Q3_K: {
        const struct block_q3_k *b = blk;
        unpack_q3_k(b, v, sc);
        *D = lb_fp16_to_f32(b->d);
        return;
    }
    case DTYPE_Q4_K: {
        const struct block_q4_k *b = blk;
        unpack_q45_k(b->scales, b->qs, NULL, v, sc, mn);
        *D = lb_fp16_to_f32(b->d), *Dm = lb_fp16_to_f32(b->dmin);
        return;
    }
    case DTYPE_Q5_K: {
        const struct block_q5_k *b = blk;
        unpack_q45_k(b->scales, b->qs, b->qh, v, sc, mn);
        *D = lb_fp16_to_f32(b->d), *Dm = lb_fp16_to_f32(b->dmin);
        return;
    }
    case DTYPE_Q6_K: {
        const struct block_q6_k *b = blk;
        unpack_q6_k(b, v, sc);
        *D = lb_fp16_to_f32(b->d);
        return;
    }
    case DTYPE_IQ4_XS: {
        const struct block_iq4_xs *b = blk;
        const uint8_t *qs = b->qs;
        for (int ib = 0; ib < 8; ib++, qs += 16, v += 32) {
            sc[ib] = (((b->scales_l[ib / 2] >> 4 * (ib % 2)) & 0xf) | (((b->scales_h >> 2 * ib) & 3) << 4)) - 32;
            for (int j = 0; j < 16; j++) {
                v[j] = kvalues_iq4nl[qs[j] & 0xf];
                v[j + 16] = kvalues_iq4nl[qs[j] >> 4];
            }
        }
        *D = lb_fp16_to_f32(b->d);
        return;
    }
    case DTYPE_IQ2_XXS: {
        const struct block_iq2_xxs *b = blk;
        const uint8_t *g = grid8(0), *ks = grid8(6);
        for (int ib = 0; ib < 8; ib++) {
            uint32_t a[2];
            memcpy(a, b->qs + 4 * ib, 8);
            sc[ib] = 2 * (int32_t)(a[1] >> 28) + 1;
            for (int l = 0; l < 4; l++, v += 8)
                signed8(v, g + 8 * ((a[0] >> 8 * l) & 255), ks[(a[1] >> 7 * l) & 127]);
        }
        *D = lb_fp16_to_f32(b->d) * 0.125f;
        return;
    }
    case DTYPE_IQ2_XS: {
        const struct block_iq2_xs *b = blk;
        const uint8_t *g = grid8(1), *ks = grid8(6);
        for (int ib = 0; ib < 8; ib++) {
            sc[2 * ib] = 2 * (b->scales[ib] & 0xf) + 1, sc[2 * ib + 1] = 2 * (b->scales[ib] >> 4) + 1;
            for (int l = 0; l < 4; l++, v += 8) {
                const uint16_t q = b->qs[4 * ib + l];
                signed8(v, g + 8 * (q & 511), ks[q >> 9]);
            }
        }
        *D = lb_fp16_to_f32(b->d) * 0.125f;
        return;
    }
    case DTYPE_IQ2_S: {
        const struct block_iq2_s *b = blk;
        const uint8_t *g = grid8(2), *qs = b->qs, *signs = b->qs + QK_K / 8;
        for (int ib = 0; ib < 8; ib++, qs += 4, signs += 4) {
            sc[2 * ib] = 2 * (b->scales[ib] & 0xf) + 1, sc[2 * ib + 1] = 2 * (b->scales[ib] >> 4) + 1;
            for (int l = 0; l < 4; l++, v += 8)
                signed8(v, g + 8 * (qs[l] | ((b->qh[ib] << (8 - 2 * l)) & 0x300)), signs[l]);
        }
        *D = lb_fp16_to_f32(b->d) * 0.125f;
        return;
    }
    case DTYPE_IQ3_XXS: {
        const struct block_iq3_xxs *b = blk;
        const uint8_t *g = grid8(3), *ks = grid8(6), *qs = b->qs, *sas = b->qs + QK_K / 4;
        for (int ib = 0; ib < 8; ib++, qs += 8) {
            uint32_t a;
            memcpy(&a, sas + 4 * ib, 4);
            sc[ib] = 2 * (int32_t)(a >> 28) + 1;
            for (int l = 0; l < 4; l++, v += 8) {
                uint8_t m[8];
                memcpy(m, g + 4 * qs[2 * l], 4);
                memcpy(m + 4, g + 4 * qs[2 * l + 1], 4);
                signed8(v, m, ks[(a >> 7 * l) & 127]);
            }
        }
        *D = lb_fp16_to_f32(b->d) * 0.25f;
        return;
    }
    case DTYPE_IQ3_S: {
        const struct block_iq3_s *b = blk;
        const uint8_t *g = grid8(4), *qs = b->qs, *qh = b->qh, *signs = b->signs;
        for (int ib = 0; ib < 8; ib += 2, qh += 2) {
            sc[ib] = 1 + 2 * (b->scales[ib / 2] & 0xf), sc[ib + 1] = 1 + 2 * (b->scales[ib / 2] >> 4);
            for (int h = 0; h < 2; h++, qs += 8, signs += 4)
                for (int l = 0; l < 4; l++, v += 8) {
                    uint8_t m[8];
                    memcpy(m, g + 4 * (qs[2 * l] | ((qh[h] << (8 - 2 * l)) & 256)), 4);
                    memcpy(m + 4, g + 4 * (qs[2 * l + 1] | ((qh[h] << (7 - 2 * l)) & 256)), 4);
                    signed8(v, m, signs[l]);
                }
        }
        *D = lb_fp16_to_f32(b->d);
        return;
    }
    case DTYPE_IQ1_S: {
        const struct block_iq1_s *b = blk;
        const int8_t *g = (const int8_t *)grid8(5);
        const uint8_t *qs = b->qs;
        for (int ib = 0; ib < 8; ib++, qs += 4) {
            const uint16_t qh = b->qh[ib];
            sc[ib] = 2 * ((qh >> 12) & 7) + 1;
            const int delta = qh & 0x8000 ? -1 : 1;
            for (int l = 0; l < 4; l++, v += 8) {
                const int8_t *gp = g + 8 * (qs[l] | (((qh >> 3 * l) & 7) << 8));
                for (int j = 0; j < 8; j++) v[j] = (int8_t)(8 * gp[j] + delta);
            }
        }
        *D = lb_fp16_to_f32(b->d) * 0.125f;
        return;
    }
    case DTYPE_IQ1_M: {
        const struct block_iq1_m *b = blk;
        const int8_t *g = (const int8_t *)grid8(5);
        uint16_t s4[4];
        memcpy(s4, b->scales, sizeof s4);
        const lb_fp16 dh = (lb_fp16)((s4[0] >> 12) | ((s4[1] >> 8) & 0x00f0) |
                                     ((s4[2] >> 4) & 0x0f00) | (s4[3] & 0xf000));
        const uint8_t *qs = b->qs, *qh = b->qh;
        for (int ib = 0; ib < 8; ib++, qs += 4, qh += 2) {
            sc[2 * ib] = 2 * ((s4[ib / 2] >> (6 * (ib % 2) + 0)) & 7) + 1;
            sc[2 * ib + 1] = 2 * ((s4[ib / 2] >> (6 * (ib % 2) + 3)) & 7) + 1;
            const int idx[4] = {qs[0] | ((qh[0] << 8) & 0x700), qs[1] | ((qh[0] << 4) & 0x700),
                                qs[2] | ((qh[1] << 8) & 0x700), qs[3] | ((qh[1] << 4) & 0x700)};
            const int delta[4] = {qh[0] & 0x08 ? -1 : 1, qh[0] & 0x80 ? -1 : 1,
                                  qh[1] & 0x08 ? -1 : 1, qh[1] & 0x80 ? -1 : 1};
            for (int l = 0; l < 4; l++, v += 8)
                for (int j = 0; j < 8; j++) v[j] = (int8_t)(8 * g[8 * idx[l] + j] + delta[l]);
        }
        *D = lb_fp16_to_f32(dh) * 0.125f;
        return;
    }
    case DTYPE_TQ1_0: {
        static const uint8_t pow3[6] = {1, 3, 9, 27, 81, 243};
        const struct block_tq1_0 *b = blk;
        for (int k = 0; k < 5; k++)
            for (int m = 0; m < 32; m++)
                *v++ = (int8_t)((((uint16_t)(uint8_t)(b->qs[m] * pow3[k]) * 3) >> 8) - 1);
        for (int k = 0; k < 5; k++)
            for (int m = 0; m < 16; m++)
                *v++ = (int8_t)((((uint16_t)(uint8_t)(b->qs[32 + m] * pow3[k]) * 3) >> 8) - 1);
        for (int k = 0; k < 4; k++)
            for (int j = 0; j < 4; j++)
                *v++ = (int8_t)((((uint16_t)(uint8_t)(b->qh[j] * pow3[k]) * 3) >> 8) - 1);
        for (int j = 0; j < 8; j++) sc[j] = 1;
        *D = lb_fp16_to_f32(b->d);
        return;
    }
    case DTYPE_TQ2_0: {
        const struct block_tq2_0 *b = blk;
        for (int j = 0; j < QK_K / 4; j += 32)
            for (int l = 0; l < 4; l++)
                for (int m = 0; m < 32; m++) *v++ = (int8_t)(((b->qs[j + m] >> (2 * l)) & 3) - 1);
        for (int j = 0; j < 8; j++) sc[j] = 1;
        *D = lb_fp16_to_f32(b->d);
        return;
    }
    default: BUG("k8_unpack: %s is not a Q8_K-paired type", dtype_get(t)->name);
    }
}

/* ===== activations: q8_k_from_f32 per token, kept as codes, d_x and sub-block sums ===== */

struct k8_act {
    int8_t *q;   /* [T][K] */
    float *d;    /* [T][nsb] */
    int32_t *s;  /* [T][nsub]: Σ q over the sub-block (from ggml's bsums) */
};

static void quant_token(const float *x, int64_t K, int LS, int8_t *q, float *d, int32_t *s) {
    struct block_q8_k b;
    for (int64_t sb = 0; sb < K / QK_K; sb++) {
        q8_k_from_f32(x + sb * QK_K, &b, QK_K);
        memcpy(q + sb * QK_K, b.qs, QK_K);
        d[sb] = b.d;
        for (int j = 0; j < QK_K / LS; j++)
            s[sb * (QK_K / LS) + j] = LS == 16 ? b.bsums[j] : b.bsums[2 * j] + b.bsums[2 * j + 1];
    }
}

/* ===== reference ===== */

void matmul_k8_ref(float *y, const float *x, const struct tensor *w, int n_tok) {
    const enum dtype t = w->type;
    ASSERT(k8_supported(t) && w->ne[0] % QK_K == 0);
    const int64_t K = w->ne[0], N = tensor_nrows(w), nsb = K / QK_K;
    const int LS = k8_sub_len(t), ns = QK_K / LS;
    const bool min = k8_has_min(t);
    const size_t bsz = (size_t)dtype_get(t)->block_bytes;
    int8_t *q = xmalloc((size_t)K, "matmul_k8_ref codes");
    float *dx = xmalloc((size_t)nsb * sizeof(float), "matmul_k8_ref scales");
    int32_t *sx = xmalloc((size_t)(K / LS) * sizeof(int32_t), "matmul_k8_ref sums");
    if (!q || !dx || !sx) BUG("matmul_k8_ref: no memory for a row of %lld", (long long)K);
    int8_t v[QK_K];
    int32_t sc[16], mn[16];
    for (int tk = 0; tk < n_tok; tk++) {
        quant_token(x + (size_t)tk * (size_t)K, K, LS, q, dx, sx);
        for (int64_t n = 0; n < N; n++) {
            const char *row = tensor_row(w, n);
            float s = 0.0f;
            for (int64_t sb = 0; sb < nsb; sb++) {
                float D, Dm;
                k8_unpack(t, row + (size_t)sb * bsz, v, sc, mn, &D, &Dm);
                int32_t isum = 0, imin = 0;
                for (int j = 0; j < ns; j++) {
                    int32_t dot = 0;
                    for (int l = 0; l < LS; l++) dot += v[j * LS + l] * q[sb * QK_K + j * LS + l];
                    isum += sc[j] * dot;
                    if (min) imin += mn[j] * sx[sb * ns + j];
                }
                float val = (D * dx[sb]) * (float)isum;
                if (min) val = val - (Dm * dx[sb]) * (float)imin;
                s = s + val;
            }
            y[(size_t)tk * (size_t)N + n] = s;
        }
    }
    free(q);
    free(dx);
    free(sx);
}

/* ===== panels and tiles ===== */

struct k8_panel {
    uint8_t *wq;      /* [K/4][NW][4]: v + bias */
    int32_t *sc, *mn; /* [nsub][NW] */
    float *D, *Dm;    /* [nsb][NW] */
};

/* rows n0.. (rows past N: zero codes and scales) into the panel; v: 256 bytes of scratch */
static void pack_panel(const struct tensor *w, int64_t n0, int bias, const struct k8_panel *P) {
    const enum dtype t = w->type;
    const int64_t K = w->ne[0], N = tensor_nrows(w), nsb = K / QK_K;
    const int LS = k8_sub_len(t), ns = QK_K / LS;
    const size_t bsz = (size_t)dtype_get(t)->block_bytes;
    int8_t v[QK_K];
    int32_t sc[16], mn[16];
    for (int r = 0; r < K8_NW; r++) {
        const int64_t n = n0 + r;
        const char *row = n < N ? tensor_row(w, n) : NULL;
        for (int64_t sb = 0; sb < nsb; sb++) {
            float D = 0.0f, Dm = 0.0f;
            if (row) {
                k8_unpack(t, row + (size_t)sb * bsz, v, sc, mn, &D, &Dm);
            } else {
                memset(v, 0, sizeof v);
                memset(sc, 0, sizeof sc);
                memset(mn, 0, sizeof mn);
            }
            if (!k8_has_min(t)) memset(mn, 0, sizeof mn);
            P->D[sb * K8_NW + r] = D, P->Dm[sb * K8_NW + r] = Dm;
            for (int j = 0; j < ns; j++) {
                P->sc[(sb * ns + j) * K8_NW + r] = sc[j];
                P->mn[(sb * ns + j) * K8_NW + r] = mn[j];
            }
            uint8_t *dst = P->wq + (size_t)sb * QK_K * K8_NW + 4 * (size_t)r;
            for (int k = 0; k < QK_K; k += 4) {
                uint32_t u;
                memcpy(&u, v + k, 4);
                if (bias) u ^= 0x80808080u; /* v + 128 per byte */
                memcpy(dst + (size_t)k * K8_NW, &u, 4);
            }
        }
    }
}

struct k8_tile_args {
    const struct k8_panel *P;
    const int8_t *xq;   /* [nt][K] */
    const float *xd;    /* [nt][nsb] */
    const int32_t *xs;  /* [nt][nsub] */
    int64_t K, nsb, nsub;
    int LS, nt;
    bool min;
    float *y;
    int64_t ldy;
};
typedef void (*k8_tile_fn)(const struct k8_tile_args *a);

static void tile_generic(const struct k8_tile_args *a) {
    const struct k8_panel *P = a->P;
    const int nt = a->nt, LS = a->LS, ns = QK_K / LS;
    float s[K8_RT_MAX][K8_NW] = {{0}};
    for (int64_t sb = 0; sb < a->nsb; sb++) {
        int32_t is[K8_RT_MAX][K8_NW] = {{0}}, im[K8_RT_MAX][K8_NW] = {{0}};
        for (int j = 0; j < ns; j++) {
            const int64_t g = sb * ns + j, k0 = g * LS;
            for (int t = 0; t < nt; t++) {
                const int8_t *xk = a->xq + t * a->K;
                const int32_t S = a->xs[t * a->nsub + g];
                for (int i = 0; i < K8_NW; i++) {
                    int32_t acc = 0;
                    for (int64_t k = k0; k < k0 + LS; k += 4) {
                        const int8_t *wk = (const int8_t *)P->wq + k * K8_NW + 4 * i;
                        acc += wk[0] * xk[k] + wk[1] * xk[k + 1] + wk[2] * xk[k + 2] + wk[3] * xk[k + 3];
                    }
                    is[t][i] += acc * P->sc[g * K8_NW + i];
                    im[t][i] += P->mn[g * K8_NW + i] * S;
                }
            }
        }
        for (int t = 0; t < nt; t++)
            for (int i = 0; i < K8_NW; i++) {
                const float dx = a->xd[t * a->nsb + sb];
                float val = (P->D[sb * K8_NW + i] * dx) * (float)is[t][i];
                if (a->min) val = val - (P->Dm[sb * K8_NW + i] * dx) * (float)im[t][i];
                s[t][i] = s[t][i] + val;
            }
    }
    for (int t = 0; t < nt; t++)
        for (int i = 0; i < K8_NW; i++) a->y[t * a->ldy + i] = s[t][i];
}

#if LB_X86
/* ===== AVX-512 VNNI: RT tokens × 16 rows, vpdpbusd ===== */

LB_VNNI static LB_INLINE void tile_vnni_t(const int RT, const bool MIN, const int LS,
                                          const struct k8_tile_args *a) {
    const struct k8_panel *P = a->P;
    const int ns = QK_K / LS;
    __m512 s[K8_RT_MAX];
#pragma GCC unroll 4
    for (int t = 0; t < RT; t++) s[t] = _mm512_setzero_ps();
    for (int64_t sb = 0; sb < a->nsb; sb++) {
        __m512i is[K8_RT_MAX], im[K8_RT_MAX];
#pragma GCC unroll 4
        for (int t = 0; t < RT; t++) is[t] = im[t] = _mm512_setzero_si512();
        for (int j = 0; j < ns; j++) {
            const int64_t g = sb * ns + j, k0 = g * LS;
            __m512i acc[K8_RT_MAX];
#pragma GCC unroll 4
            for (int t = 0; t < RT; t++) acc[t] = _mm512_set1_epi32(-128 * a->xs[t * a->nsub + g]);
            const uint8_t *wk = P->wq + k0 * K8_NW;
            const int8_t *xk = a->xq + k0;
#pragma GCC unroll 8
            for (int k = 0; k < LS; k += 4) {
                const __m512i wv = _mm512_loadu_si512((const void *)(wk + k * K8_NW));
#pragma GCC unroll 4
                for (int t = 0; t < RT; t++) {
                    int32_t x4;
                    memcpy(&x4, xk + t * a->K + k, 4);
                    acc[t] = _mm512_dpbusd_epi32(acc[t], wv, _mm512_set1_epi32(x4));
                }
            }
            const __m512i scv = _mm512_loadu_si512((const void *)(P->sc + g * K8_NW));
#pragma GCC unroll 4
            for (int t = 0; t < RT; t++) is[t] = _mm512_add_epi32(is[t], _mm512_mullo_epi32(acc[t], scv));
            if (MIN) {
                const __m512i mnv = _mm512_loadu_si512((const void *)(P->mn + g * K8_NW));
#pragma GCC unroll 4
                for (int t = 0; t < RT; t++)
                    im[t] = _mm512_add_epi32(
                        im[t], _mm512_mullo_epi32(mnv, _mm512_set1_epi32(a->xs[t * a->nsub + g])));
            }
        }
        const __m512 D = _mm512_loadu_ps(P->D + sb * K8_NW);
        const __m512 Dm = MIN ? _mm512_loadu_ps(P->Dm + sb * K8_NW) : D;
#pragma GCC unroll 4
        for (int t = 0; t < RT; t++) {
            const __m512 dx = _mm512_set1_ps(a->xd[t * a->nsb + sb]);
            __m512 val = _mm512_mul_ps(_mm512_mul_ps(D, dx), _mm512_cvtepi32_ps(is[t]));
            if (MIN) val = _mm512_sub_ps(val, _mm512_mul_ps(_mm512_mul_ps(Dm, dx), _mm512_cvtepi32_ps(im[t])));
            s[t] = _mm512_add_ps(s[t], val);
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < RT; t++) _mm512_storeu_ps(a->y + t * a->ldy, s[t]);
}

#define VNNI_CASE(RT)                                                                              \
    case RT:                                                                                       \
        if (a->LS == 16) {                                                                         \
            if (a->min) tile_vnni_t(RT, true, 16, a);                                              \
            else tile_vnni_t(RT, false, 16, a);                                                    \
        } else {                                                                                   \
            if (a->min) tile_vnni_t(RT, true, 32, a);                                              \
            else tile_vnni_t(RT, false, 32, a);                                                    \
        }                                                                                          \
        return;
LB_VNNI static void tile_vnni(const struct k8_tile_args *a) {
    switch (a->nt) {
        VNNI_CASE(1)
        VNNI_CASE(2)
        VNNI_CASE(3)
    default: VNNI_CASE(4)
    }
}

/* ===== AVX2: RT tokens × 16 rows (two vectors of 8), the sign trick ===== */

#define K8_RT_AVX2 2
LB_AVX2 static LB_INLINE void tile_avx2_t(const int RT, const bool MIN, const int LS,
                                          const struct k8_tile_args *a) {
    const struct k8_panel *P = a->P;
    const int ns = QK_K / LS;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 s[K8_RT_AVX2][2];
#pragma GCC unroll 2
    for (int t = 0; t < RT; t++) s[t][0] = s[t][1] = _mm256_setzero_ps();
    for (int64_t sb = 0; sb < a->nsb; sb++) {
        __m256i is[K8_RT_AVX2][2], im[K8_RT_AVX2][2];
#pragma GCC unroll 2
        for (int t = 0; t < RT; t++)
            is[t][0] = is[t][1] = im[t][0] = im[t][1] = _mm256_setzero_si256();
        for (int j = 0; j < ns; j++) {
            const int64_t g = sb * ns + j, k0 = g * LS;
            __m256i acc[K8_RT_AVX2][2];
#pragma GCC unroll 2
            for (int t = 0; t < RT; t++) acc[t][0] = acc[t][1] = _mm256_setzero_si256();
            const uint8_t *wk = P->wq + k0 * K8_NW;
            const int8_t *xk = a->xq + k0;
#pragma GCC unroll 8
            for (int k = 0; k < LS; k += 4) {
                __m256i wv[2], wa[2];
#pragma GCC unroll 2
                for (int h = 0; h < 2; h++) {
                    wv[h] = _mm256_loadu_si256((const __m256i *)(const void *)(wk + k * K8_NW + 32 * h));
                    wa[h] = _mm256_abs_epi8(wv[h]);
                }
#pragma GCC unroll 2
                for (int t = 0; t < RT; t++) {
                    int32_t x4;
                    memcpy(&x4, xk + t * a->K + k, 4);
                    const __m256i xb = _mm256_set1_epi32(x4);
#pragma GCC unroll 2
                    for (int h = 0; h < 2; h++) {
                        const __m256i p = _mm256_maddubs_epi16(wa[h], _mm256_sign_epi8(xb, wv[h]));
                        acc[t][h] = _mm256_add_epi32(acc[t][h], _mm256_madd_epi16(p, ones));
                    }
                }
            }
#pragma GCC unroll 2
            for (int h = 0; h < 2; h++) {
                const __m256i scv = _mm256_loadu_si256((const __m256i *)(const void *)(P->sc + g * K8_NW + 8 * h));
                const __m256i mnv = _mm256_loadu_si256((const __m256i *)(const void *)(P->mn + g * K8_NW + 8 * h));
#pragma GCC unroll 2
                for (int t = 0; t < RT; t++) {
                    is[t][h] = _mm256_add_epi32(is[t][h], _mm256_mullo_epi32(acc[t][h], scv));
                    if (MIN)
                        im[t][h] = _mm256_add_epi32(
                            im[t][h], _mm256_mullo_epi32(mnv, _mm256_set1_epi32(a->xs[t * a->nsub + g])));
                }
            }
        }
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            const __m256 D = _mm256_loadu_ps(P->D + sb * K8_NW + 8 * h);
            const __m256 Dm = _mm256_loadu_ps(P->Dm + sb * K8_NW + 8 * h);
#pragma GCC unroll 2
            for (int t = 0; t < RT; t++) {
                const __m256 dx = _mm256_set1_ps(a->xd[t * a->nsb + sb]);
                __m256 val = _mm256_mul_ps(_mm256_mul_ps(D, dx), _mm256_cvtepi32_ps(is[t][h]));
                if (MIN)
                    val = _mm256_sub_ps(val, _mm256_mul_ps(_mm256_mul_ps(Dm, dx), _mm256_cvtepi32_ps(im[t][h])));
                s[t][h] = _mm256_add_ps(s[t][h], val);
            }
        }
    }
#pragma GCC unroll 2
    for (int t = 0; t < RT; t++)
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) _mm256_storeu_ps(a->y + t * a->ldy + 8 * h, s[t][h]);
}

#define AVX2_CASE(RT)                                                                              \
    case RT:                                                                                       \
        if (a->LS == 16) {                                                                         \
            if (a->min) tile_avx2_t(RT, true, 16, a);                                              \
            else tile_avx2_t(RT, false, 16, a);                                                    \
        } else {                                                                                   \
            if (a->min) tile_avx2_t(RT, true, 32, a);                                              \
            else tile_avx2_t(RT, false, 32, a);                                                    \
        }                                                                                          \
        return;
LB_AVX2 static void tile_avx2(const struct k8_tile_args *a) {
    switch (a->nt) {
        AVX2_CASE(1)
    default: AVX2_CASE(2)
    }
}
#endif /* LB_X86 */

/* ===== dispatch ===== */

struct k8_kern {
    const char *name;
    int RT, bias;
    k8_tile_fn tile;
};
static const struct k8_kern kern_generic = {"generic", K8_RT_MAX, 0, tile_generic};
#if LB_X86
static const struct k8_kern kern_vnni = {"avx512-vnni", 4, 128, tile_vnni};
static const struct k8_kern kern_avx2 = {"avx2", K8_RT_AVX2, 0, tile_avx2};
#endif

static const struct k8_kern *k8_kern_for(enum cpu_isa isa) {
    if (!cpu_has(isa)) return NULL;
    switch (isa) {
    case CPU_ISA_GENERIC: return &kern_generic;
#if LB_X86
    case CPU_ISA_AVX2: return &kern_avx2;
    case CPU_ISA_AVX512: return cpu_features()->avx512vnni ? &kern_vnni : &kern_avx2;
#endif
    default: return NULL;
    }
}

const char *matmul_k8_path(void) { return k8_kern_for(cpu_isa())->name; }

/* ===== the driver ===== */

static size_t al64(size_t n) { return (n + 63) / 64 * 64; }

struct k8_ctx {
    const struct k8_kern *kn;
    const struct tensor *w;
    const float *x;
    float *y;
    int64_t K, N, nsb, nsub;
    int T, LS;
    struct k8_act act;
    char *scratch; /* per thread: a panel and an edge tile */
    size_t scratch_bytes;
};

static size_t panel_bytes(int64_t K, int LS) {
    const int64_t nsb = K / QK_K, nsub = K / LS;
    return al64((size_t)K * K8_NW) + 2 * al64((size_t)(nsub * K8_NW) * 4) +
           2 * al64((size_t)(nsb * K8_NW) * 4) + al64((size_t)(K8_RT_MAX * K8_NW) * sizeof(float));
}

static size_t act_bytes(int64_t K, int LS, int T) {
    return al64((size_t)T * (size_t)K) + al64((size_t)T * (size_t)(K / QK_K) * 4) +
           al64((size_t)T * (size_t)(K / LS) * 4);
}

static void k8_thread(const struct k8_ctx *c, int ith, int nth) {
    const struct k8_kern *kn = c->kn;
    for (int64_t t = c->T * ith / nth; t < c->T * (ith + 1) / nth; t++)
        quant_token(c->x + (size_t)t * (size_t)c->K, c->K, c->LS, c->act.q + (size_t)t * (size_t)c->K,
                    c->act.d + t * c->nsb, c->act.s + t * c->nsub);
#ifdef _OPENMP
    if (nth > 1) {
#pragma omp barrier
    }
#endif
    char *base = c->scratch + (size_t)ith * c->scratch_bytes;
    struct k8_panel P;
    P.wq = (uint8_t *)base;
    P.sc = (int32_t *)(base + al64((size_t)c->K * K8_NW));
    P.mn = (int32_t *)((char *)P.sc + al64((size_t)(c->nsub * K8_NW) * 4));
    P.D = (float *)((char *)P.mn + al64((size_t)(c->nsub * K8_NW) * 4));
    P.Dm = (float *)((char *)P.D + al64((size_t)(c->nsb * K8_NW) * 4));
    float *edge = (float *)((char *)P.Dm + al64((size_t)(c->nsb * K8_NW) * 4));
    const int64_t n_panels = (c->N + K8_NW - 1) / K8_NW;
    const int64_t p0 = n_panels * ith / nth, p1 = n_panels * (ith + 1) / nth;
    struct k8_tile_args a = {.P = &P, .K = c->K, .nsb = c->nsb, .nsub = c->nsub, .LS = c->LS,
                             .min = k8_has_min(c->w->type)};
    for (int64_t p = p0; p < p1; p++) {
        const int64_t n0 = p * K8_NW;
        pack_panel(c->w, n0, kn->bias, &P);
        const bool full = n0 + K8_NW <= c->N;
        for (int t0 = 0; t0 < c->T; t0 += kn->RT) {
            a.nt = LB_MIN(kn->RT, c->T - t0);
            a.xq = c->act.q + (size_t)t0 * (size_t)c->K;
            a.xd = c->act.d + t0 * c->nsb;
            a.xs = c->act.s + t0 * c->nsub;
            a.y = full ? c->y + (size_t)t0 * (size_t)c->N + n0 : edge;
            a.ldy = full ? c->N : K8_NW;
            kn->tile(&a);
            if (!full)
                for (int t = 0; t < a.nt; t++)
                    memcpy(c->y + (size_t)(t0 + t) * (size_t)c->N + n0, edge + t * K8_NW,
                           (size_t)(c->N - n0) * sizeof(float));
        }
    }
}

static bool k8_parallel(const struct tensor *w, int n_tok) {
    return (double)n_tok * (double)w->ne[0] * (double)tensor_nrows(w) >= K8_PAR_MIN_MAC;
}

static int k8_run(const struct k8_kern *kn, float *y, const float *x, const struct tensor *w,
                  int n_tok, struct kscratch *ws) {
    ASSERT(k8_supported(w->type) && w->ne[0] % QK_K == 0);
    const int64_t K = w->ne[0], N = tensor_nrows(w);
    if (n_tok <= 0 || N <= 0) return 0;
    const int LS = k8_sub_len(w->type);
    struct k8_ctx c = {.kn = kn, .w = w, .x = x, .y = y, .K = K, .N = N, .nsb = K / QK_K,
                       .nsub = K / LS, .T = n_tok, .LS = LS};
    const int nth_max = k8_parallel(w, n_tok) ? lb_threads() : 1;
    c.scratch_bytes = panel_bytes(K, LS);
    const size_t ab = act_bytes(K, LS, n_tok);
    void *owned = NULL;
    char *buf = kscratch_take(ws, ab + c.scratch_bytes * (size_t)nth_max, &owned, w->name);
    if (!buf) return -1;
    c.act.q = (int8_t *)buf;
    c.act.d = (float *)(buf + al64((size_t)n_tok * (size_t)K));
    c.act.s = (int32_t *)((char *)c.act.d + al64((size_t)n_tok * (size_t)c.nsb * 4));
    c.scratch = buf + ab;
#ifdef _OPENMP
#pragma omp parallel num_threads(nth_max) if (nth_max > 1)
    k8_thread(&c, omp_get_thread_num(), omp_get_num_threads());
#else
    k8_thread(&c, 0, 1);
#endif
    free(owned);
    return 0;
}

int matmul_k8_ws(float *y, const float *x, const struct tensor *w, int n_tok, struct kscratch *ws) {
    return k8_run(k8_kern_for(cpu_isa()), y, x, w, n_tok, ws);
}

size_t matmul_k8_scratch(const struct tensor *w, int n_tok, int n_threads) {
    if (n_tok <= 0 || tensor_nrows(w) <= 0 || !k8_supported(w->type) || w->ne[0] % QK_K) return 0;
    const int LS = k8_sub_len(w->type);
    return act_bytes(w->ne[0], LS, n_tok) +
           panel_bytes(w->ne[0], LS) * (size_t)(k8_parallel(w, n_tok) ? n_threads : 1);
}

int matmul_k8_isa(float *y, const float *x, const struct tensor *w, int n_tok, const char *isa) {
    const int i = cpu_isa_from_name(isa);
    const struct k8_kern *kn = i < 0 ? NULL : k8_kern_for((enum cpu_isa)i);
    if (!kn) return -2;
    return k8_run(kn, y, x, w, n_tok, NULL);
}
