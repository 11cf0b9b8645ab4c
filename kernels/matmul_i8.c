/* kernels/matmul_i8.c: int8-activation matmul (contract and semantics in kernels/matmul_i8.h).
 *
 * Legend: T = n_tok, K = w->ne[0], N = rows of W, Kp = K padded to 32, L = segment length (the
 * run of k whose integer sum gets one scale: 32 for the GGUF blocks, the group for QINT, Kp for
 * I8ROW and per-channel QINT), ns = segments per row, R×TW = tile (weight rows × tokens).
 *
 * Every type is reduced to one form. Weight row n: signed codes v[k] in [-128, 127] (Q4_0:
 * nibble − 8, QINT b = 8: q − 128, ...), and per segment s a scale dw, an integer c and (Q4_1/Q5_1)
 * a min m, such that the true integer sum of the segment is Σ v·q_x + c·Σ q_x (QINT: c = −z, or
 * 128 − z at b = 8; else 0). Token t: codes q_x, per segment dx, Σ q_x and (Q8_1) s_x. Then
 *     y[t][n] = Σ_s (dw·dx)·float(sumi_s) [+ m·s_x]      in s order, as matmul_i8_ref.
 * Fast path (prefill shaped): x is quantized once per call into token micro-panels
 * [Tp/TW][Kp/4][TW][4] (4 consecutive k of TW tokens: one vector), so a weight's 4 codes are
 * broadcast and multiplied with TW tokens in the lanes, and each lane accumulates exactly one
 * output's segment sum: no horizontal sums, and the fp32 epilogue per segment is the ref's.
 * Per R-row panel the weights are unpacked once per call (whole K, R·Kp bytes: L1 for K <= 1024)
 * and reused by every TW-token tile of the call. Q8_0/Q4_0/Q4_1 panels are unpacked 16 rows at
 * a time in SIMD (a 4×4 dword transpose per 16-byte run of qs, nibble split, bias add; the fp16
 * scales by gather + F16C), the other types row by row (pack_row). The GGUF activations are
 * quantized in SIMD too (quant_block lane-wise, F16C for the fp16 round trips), tokens split
 * over the threads before a barrier. AVX-512 VNNI: vpdpbusd takes u8 × s8, so weight codes
 * are stored v + 128 and c lowered by 128 (Σ(v+128)q = Σvq + 128Σq). AVX2: the sign trick,
 * maddubs(|v|, sign(q_x, v)) (|v| <= 128, |q_x| <= 127: no saturation) and madd with ones.
 * Generic: the same data in C loops. Results are bit-identical to matmul_i8_ref on every path,
 * and independent of the thread count (each output is one tile's, with a fixed order).
 * Scratch: one aligned_alloc per call.
 * matmul_i8_codes (act_quant.h's W8A8/W4A4 matmul) feeds the same driver and tiles with codes the
 * caller quantized: one segment (L = Kp, c = −bias, dw and dx the caller's scales), tokens copied
 * (4-bit: unpacked by a byte → code pair table) into the micro-panels, weight rows by codes_row
 * (AVX-512: 16 rows at a time by tr16_512, the 4-bit ones split into nibbles first: codes16_vnni).
 * Profile (stories110M shape, pp512, 1 thread, Zen 5): before the SIMD quantizer and unpacker,
 * scalar activation quantization took ~1/3 of the matmul time and the weight unpacking ~1/6;
 * now the tile is ~85% of it. The tile runs at ~70% of the vpdpbusd peak: per segment and
 * 16 outputs it is 8 vpdpbusd against 4 fp32 ops (dw·dx, cvt, ·, +) that the bit-exact
 * epilogue needs. */
#include "kernels/matmul_i8.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "kernels/matmul.h"
#include "kernels/matmul_k8.h"
#include "kernels/nf4.h"
#include "kernels/qint.h"
#include "kernels/quants.h"

#include "kernels/cpu.h"
#if LB_X86
#include <immintrin.h>
#endif

#define I8_RT_MAX 6 /* largest tile token count */
#define I8_PAR_MIN_MAC (1 << 17)
#define I8_K_MAX 65536 /* longest segment with exact int32 sums even with the +128 offset */

static const char *const compute_names[COMPUTE_COUNT] = {
    [COMPUTE_FP32] = "fp32", [COMPUTE_FP16] = "fp16", [COMPUTE_BF16] = "bf16",
    [COMPUTE_INT8] = "int8", [COMPUTE_A8] = "a8",     [COMPUTE_A4] = "a4"};

const char *compute_name(enum compute_dtype c) {
    return (unsigned)c < COMPUTE_COUNT ? compute_names[c] : "?";
}

int compute_from_name(const char *name) {
    for (int c = 0; c < COMPUTE_COUNT; c++)
        if (name && !strcasecmp(name, compute_names[c])) return c;
    return -1;
}

/* ===== activation quantizers (ggml quantize_row_q8_0_ref / _q8_1_ref) ===== */

void i8_quantize_q8_0(const float *x, struct block_q8_0 *y, int64_t k) {
    for (int64_t i = 0; i < k / QK8_0; i++) {
        float amax = 0.0f;
        for (int j = 0; j < QK8_0; j++) amax = fmaxf(amax, fabsf(x[i * QK8_0 + j]));
        const float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f;
        y[i].d = lb_f32_to_fp16(d);
        for (int j = 0; j < QK8_0; j++) y[i].qs[j] = (int8_t)roundf(x[i * QK8_0 + j] * id);
    }
}

void i8_quantize_q8_1(const float *x, struct block_q8_1 *y, int64_t k) {
    for (int64_t i = 0; i < k / QK8_0; i++) {
        float amax = 0.0f;
        for (int j = 0; j < QK8_0; j++) amax = fmaxf(amax, fabsf(x[i * QK8_0 + j]));
        const float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f;
        y[i].d = lb_f32_to_fp16(d);
        int sum = 0;
        for (int j = 0; j < QK8_0; j++) {
            y[i].qs[j] = (int8_t)roundf(x[i * QK8_0 + j] * id);
            sum += y[i].qs[j];
        }
        y[i].s = lb_f32_to_fp16((float)sum * d);
    }
}

/* per-token quantization of a whole row (I8ROW, QINT): the Q8_0 formula with one block */
static float quantize_row_tok(const float *x, int8_t *q, int64_t k) {
    float amax = 0.0f;
    for (int64_t j = 0; j < k; j++) amax = fmaxf(amax, fabsf(x[j]));
    const float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f;
    for (int64_t j = 0; j < k; j++) q[j] = (int8_t)roundf(x[j] * id);
    return d;
}

bool matmul_i8_supported(enum dtype t) {
    switch (t) {
    case DTYPE_Q8_0:
    case DTYPE_Q4_0:
    case DTYPE_Q4_1:
    case DTYPE_Q5_0:
    case DTYPE_Q5_1:
    case DTYPE_IQ4_NL:
    case DTYPE_I8ROW:
    case DTYPE_QINT: return true;
    default: return k8_supported(t);
    }
}

static bool has_min(enum dtype t) { return t == DTYPE_Q4_1 || t == DTYPE_Q5_1; }
/* the legacy 32-weight blocks with Q8_0/Q8_1 activations (Q8_0 .. IQ4_NL in enum dtype) */
static bool is_gguf(enum dtype t) { return t >= DTYPE_Q8_0 && t <= DTYPE_IQ4_NL; }
static int64_t pad32(int64_t k) { return (k + 31) & ~(int64_t)31; }

/* segment length (see the legend) */
static int64_t seg_len(const struct tensor *w) {
    if (is_gguf(w->type)) return QK8_0;
    if (w->type == DTYPE_QINT && w->q_group < w->ne[0]) return w->q_group;
    return pad32(w->ne[0]);
}

bool matmul_i8_tensor_ok(const struct tensor *w) {
    if (k8_supported(w->type)) return w->ne[0] % QK_K == 0;
    return matmul_i8_supported(w->type) && seg_len(w) <= I8_K_MAX;
}

/* ===== reference ===== */

/* the signed code of weight j (0..31) of a GGUF block, ggml's dequantize formulas */
static int gguf_code(enum dtype t, const void *blk, int j) {
    switch (t) {
    case DTYPE_Q8_0: return ((const struct block_q8_0 *)blk)->qs[j];
    case DTYPE_Q4_0: {
        const uint8_t b = ((const struct block_q4_0 *)blk)->qs[j & 15];
        return (j < 16 ? b & 15 : b >> 4) - 8;
    }
    case DTYPE_Q4_1: {
        const uint8_t b = ((const struct block_q4_1 *)blk)->qs[j & 15];
        return j < 16 ? b & 15 : b >> 4;
    }
    case DTYPE_IQ4_NL: {
        const uint8_t b = ((const struct block_iq4_nl *)blk)->qs[j & 15];
        return kvalues_iq4nl[j < 16 ? b & 15 : b >> 4];
    }
    case DTYPE_Q5_0: {
        const struct block_q5_0 *b = blk;
        uint32_t qh;
        memcpy(&qh, b->qh, 4);
        const int lo = j < 16 ? b->qs[j] & 15 : b->qs[j - 16] >> 4;
        return (lo | (int)((qh >> j) & 1) << 4) - 16;
    }
    default: { /* DTYPE_Q5_1 */
        const struct block_q5_1 *b = blk;
        uint32_t qh;
        memcpy(&qh, b->qh, 4);
        const int lo = j < 16 ? b->qs[j] & 15 : b->qs[j - 16] >> 4;
        return lo | (int)((qh >> j) & 1) << 4;
    }
    }
}

/* fp16 d (and m) of a GGUF block: every legacy block starts with d, Q4_1/Q5_1 follow with m */
static float gguf_d(const void *blk) { return lb_fp16_to_f32(*(const lb_fp16 *)blk); }
static float gguf_m(const void *blk) { return lb_fp16_to_f32(((const lb_fp16 *)blk)[1]); }

void matmul_i8_ref(float *y, const float *x, const struct tensor *w, int n_tok) {
    if (k8_supported(w->type)) {
        matmul_k8_ref(y, x, w, n_tok);
        return;
    }
    const int64_t K = w->ne[0], N = tensor_nrows(w), Kp = pad32(K);
    ASSERT(matmul_i8_tensor_ok(w));
    int8_t *q = xmalloc((size_t)Kp, "matmul_i8_ref codes");
    float *xs = xmalloc((size_t)Kp * sizeof(float), "matmul_i8_ref row");
    struct block_q8_1 *b8 = xmalloc((size_t)(Kp / QK8_0) * sizeof *b8, "matmul_i8_ref blocks");
    if (!q || !xs || !b8) BUG("matmul_i8_ref: no memory for a row of %lld", (long long)K);
    for (int t = 0; t < n_tok; t++) {
        const float *xt = x + (size_t)t * (size_t)K;
        float *yt = y + (size_t)t * (size_t)N;
        if (is_gguf(w->type)) {
            const int64_t nb = K / QK8_0;
            const size_t bsz = (size_t)dtype_get(w->type)->block_bytes;
            if (has_min(w->type)) {
                i8_quantize_q8_1(xt, b8, K);
            } else { /* Q8_0 activations: the same d and qs, no s */
                struct block_q8_0 *b0 = (struct block_q8_0 *)xs; /* 34 B per 32 floats fits */
                i8_quantize_q8_0(xt, b0, K);
                for (int64_t b = nb - 1; b >= 0; b--) { /* widen in place, back to front */
                    const struct block_q8_0 tmp = b0[b];
                    b8[b].d = tmp.d, b8[b].s = 0;
                    memcpy(b8[b].qs, tmp.qs, QK8_0);
                }
            }
            for (int64_t n = 0; n < N; n++) {
                const char *row = tensor_row(w, n);
                float s = -0.0f; /* the first term exactly (0 + −0 would be +0) */
                for (int64_t b = 0; b < nb; b++) {
                    const void *blk = row + (size_t)b * bsz;
                    int sumi = 0;
                    for (int j = 0; j < QK8_0; j++) sumi += gguf_code(w->type, blk, j) * b8[b].qs[j];
                    float v = (gguf_d(blk) * lb_fp16_to_f32(b8[b].d)) * (float)sumi;
                    if (has_min(w->type)) v = v + gguf_m(blk) * lb_fp16_to_f32(b8[b].s);
                    s = s + v;
                }
                yt[n] = s;
            }
            continue;
        }
        /* I8ROW, QINT: stored column order, one scale per token */
        const int32_t *perm = w->type == DTYPE_QINT ? w->q_perm : NULL;
        for (int64_t j = 0; j < K; j++) xs[j] = xt[perm ? perm[j] : j];
        const float dx = quantize_row_tok(xs, q, K);
        for (int64_t n = 0; n < N; n++) {
            if (w->type == DTYPE_I8ROW) {
                const int8_t *row = tensor_row(w, n);
                const float dw = nf4_absmax(w)[n] * BNB_INT8_RECIP;
                int32_t sumi = 0;
                for (int64_t k = 0; k < K; k++) sumi += row[k] * q[k];
                yt[n] = (dw * dx) * (float)sumi;
                continue;
            }
            const uint8_t *row = tensor_row(w, n);
            const int64_t g = w->q_group, ng = qint_n_groups(g, K);
            const struct qint_param *p = qint_params(w) + n * ng;
            float s = -0.0f;
            for (int64_t gi = 0; gi < ng; gi++) {
                int32_t sq = 0, sx = 0;
                for (int64_t k = gi * g; k < LB_MIN(K, (gi + 1) * g); k++) {
                    sq += (int32_t)qint_code_get(row, w->q_bits, k) * q[k];
                    sx += q[k];
                }
                const int32_t sumi = sq - (int32_t)p[gi].z * sx;
                s = s + (p[gi].d * dx) * (float)sumi;
            }
            yt[n] = s;
        }
    }
    free(q);
    free(xs);
    free(b8);
}

/* ===== packing ===== */

/* i8_quantize_q8_0's arithmetic on one block of n into q; returns d (fp32). roundf (half away
 * from zero) is done branch-free in integers: (int)v truncates, then ±1 when the exact remainder
 * reaches ±0.5 (|v| <= 127 here unless d is subnormal; beyond 2^23 roundf itself) */
static float quant_block(const float *x, int8_t *q, int64_t n) {
    float amax = 0.0f;
    for (int64_t j = 0; j < n; j++) {
        const float a = fabsf(x[j]);
        amax = a > amax ? a : amax; /* x is NaN-free: fmaxf's result */
    }
    const float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f;
    if (!(amax * id < 8388608.0f)) { /* subnormal d: 1/d huge or infinite */
        for (int64_t j = 0; j < n; j++) q[j] = (int8_t)roundf(x[j] * id);
        return d;
    }
    for (int64_t j = 0; j < n; j++) {
        const float v = x[j] * id;
        const int32_t i = (int32_t)v;
        const float f = v - (float)i;
        q[j] = (int8_t)(i + (f >= 0.5f) - (f <= -0.5f));
    }
    return d;
}

/* the 32 signed codes of a GGUF block (gguf_code for j = 0..31) */
static void gguf_block_codes(enum dtype t, const void *blk, int8_t *v) {
    switch (t) {
    case DTYPE_Q8_0: memcpy(v, ((const struct block_q8_0 *)blk)->qs, QK8_0); break;
    case DTYPE_Q4_0:
    case DTYPE_Q4_1: {
        const uint8_t *qs = t == DTYPE_Q4_0 ? ((const struct block_q4_0 *)blk)->qs
                                            : ((const struct block_q4_1 *)blk)->qs;
        const int off = t == DTYPE_Q4_0 ? 8 : 0;
        for (int j = 0; j < 16; j++) {
            v[j] = (int8_t)((qs[j] & 15) - off);
            v[j + 16] = (int8_t)((qs[j] >> 4) - off);
        }
        break;
    }
    case DTYPE_IQ4_NL: {
        const uint8_t *qs = ((const struct block_iq4_nl *)blk)->qs;
        for (int j = 0; j < 16; j++) {
            v[j] = kvalues_iq4nl[qs[j] & 15];
            v[j + 16] = kvalues_iq4nl[qs[j] >> 4];
        }
        break;
    }
    default: { /* Q5_0, Q5_1 */
        const uint8_t *qs, *qhp;
        int off;
        if (t == DTYPE_Q5_0) {
            qs = ((const struct block_q5_0 *)blk)->qs, qhp = ((const struct block_q5_0 *)blk)->qh;
            off = 16;
        } else {
            qs = ((const struct block_q5_1 *)blk)->qs, qhp = ((const struct block_q5_1 *)blk)->qh;
            off = 0;
        }
        uint32_t qh;
        memcpy(&qh, qhp, 4);
        for (int j = 0; j < 16; j++) {
            v[j] = (int8_t)(((qs[j] & 15) | (int)((qh >> j) & 1) << 4) - off);
            v[j + 16] = (int8_t)(((qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4) - off);
        }
        break;
    }
    }
}

/* one weight panel of NW rows, lanes = rows: codes [Kp/4][NW][4] (v + bias, as bytes); per
 * segment [ns][NW]: scale, integer c (minus bias), min. Rows past N are zero. */
struct i8_panel {
    uint8_t *wq;
    float *wd, *wm;
    int32_t *wc;
};

/* Kp signed codes v into lane r of the panel, as bytes v + bias */
static void store_row(const int8_t *v, int r, int NW, int64_t Kp, int bias,
                      const struct i8_panel *P) {
    uint8_t *dst = P->wq + 4 * r;
    for (int64_t k = 0; k < Kp; k += 4) {
        uint32_t u;
        memcpy(&u, v + k, 4);
        if (bias) u ^= 0x80808080u; /* v + 128 per byte */
        memcpy(dst + k * NW, &u, 4);
    }
}

/* unpack row n into lane r of the panel; v: scratch of Kp bytes */
static void pack_row(const struct tensor *w, int64_t n, int r, int NW, int64_t Kp, int64_t ns,
                     int bias, int8_t *v, const struct i8_panel *P) {
    const int64_t K = w->ne[0];
    if (n >= tensor_nrows(w)) {
        memset(v, 0, (size_t)Kp);
        for (int64_t s = 0; s < ns; s++)
            P->wd[s * NW + r] = 0.0f, P->wm[s * NW + r] = 0.0f, P->wc[s * NW + r] = -bias;
    } else if (is_gguf(w->type)) {
        const char *row = tensor_row(w, n);
        const size_t bsz = (size_t)dtype_get(w->type)->block_bytes;
        for (int64_t b = 0; b < K / QK8_0; b++) {
            const void *blk = row + (size_t)b * bsz;
            gguf_block_codes(w->type, blk, v + b * QK8_0);
            P->wd[b * NW + r] = gguf_d(blk);
            P->wm[b * NW + r] = has_min(w->type) ? gguf_m(blk) : 0.0f;
            P->wc[b * NW + r] = -bias;
        }
    } else if (w->type == DTYPE_I8ROW) {
        memcpy(v, tensor_row(w, n), (size_t)K);
        memset(v + K, 0, (size_t)(Kp - K));
        P->wd[r] = nf4_absmax(w)[n] * BNB_INT8_RECIP;
        P->wm[r] = 0.0f;
        P->wc[r] = -bias;
    } else { /* QINT: v = q (b < 8) or q − 128 (b = 8), c = −z (+128) */
        const uint8_t *row = tensor_row(w, n);
        const int bits = w->q_bits, off = bits == 8 ? 128 : 0;
        for (int64_t k = 0; k < Kp; k++) v[k] = (int8_t)((int)qint_code_get(row, bits, k) - off);
        const struct qint_param *p = qint_params(w) + n * ns;
        for (int64_t s = 0; s < ns; s++) {
            P->wd[s * NW + r] = p[s].d;
            P->wm[s * NW + r] = 0.0f;
            P->wc[s * NW + r] = off - (int32_t)p[s].z - bias;
        }
    }
    store_row(v, r, NW, Kp, bias, P);
}

/* quantized activations, row-major: q [T][Kp]; per segment [T][ns]: dx, Σq_x, s_x (Q8_1) */
struct i8_act {
    int8_t *q;
    float *d, *m;
    int32_t *sx;
};

/* nb GGUF blocks of one token: codes q [nb·32], per block d (fp16-rounded), m (Q8_1's s,
 * fp16-rounded) and Σq. The SIMD versions do quant_block's arithmetic lane-wise. */
typedef void (*i8_quant_fn)(const float *x, int64_t nb, int8_t *q, float *d, float *m,
                            int32_t *sx);

static void quant_gguf_generic(const float *x, int64_t nb, int8_t *q, float *dd, float *mm,
                               int32_t *sx) {
    for (int64_t b = 0; b < nb; b++) {
        const float d = quant_block(x + b * QK8_0, q + b * QK8_0, QK8_0);
        int sum = 0;
        for (int i = 0; i < QK8_0; i++) sum += q[b * QK8_0 + i];
        dd[b] = lb_fp16_to_f32(lb_f32_to_fp16(d));
        mm[b] = lb_fp16_to_f32(lb_f32_to_fp16((float)sum * d)); /* Q8_1's s */
        sx[b] = sum;
    }
}

/* quantize token t; tmp: Kp floats of scratch */
static void pack_token(const struct tensor *w, const float *x, int64_t t, int64_t Kp, int64_t L,
                       int64_t ns, float *tmp, const struct i8_act *A, i8_quant_fn quant) {
    const int64_t K = w->ne[0];
    const float *xt = x + (size_t)t * (size_t)K;
    int8_t *q = A->q + (size_t)t * (size_t)Kp;
    float *dd = A->d + t * ns, *mm = A->m + t * ns;
    int32_t *sx = A->sx + t * ns;
    if (is_gguf(w->type)) {
        quant(xt, K / QK8_0, q, dd, mm, sx);
        return;
    }
    const int32_t *perm = w->type == DTYPE_QINT ? w->q_perm : NULL;
    if (perm)
        for (int64_t k = 0; k < K; k++) tmp[k] = xt[perm[k]];
    const float d = quant_block(perm ? tmp : xt, q, K);
    memset(q + K, 0, (size_t)(Kp - K));
    for (int64_t s = 0; s < ns; s++) {
        int32_t sum = 0;
        for (int64_t k = s * L; k < LB_MIN(Kp, (s + 1) * L); k++) sum += q[k];
        dd[s] = d, mm[s] = 0.0f, sx[s] = sum;
    }
}

/* ===== the caller's codes (matmul_i8_codes: kernels/act_quant.h's W8A8 / W4A4 matmul) ===== */

struct i8_codes {
    const void *qx, *qw; /* int8 codes [T][K] and [N][K], or (i4) 4-bit packed rows of K/2 bytes */
    const float *dx, *dw;
    int64_t K, N;
    bool i4;
};

/* byte b of packed 4-bit codes → its two int8 codes (low nibble first: ((n ^ 8) − 8) as a byte)
 * as a little-endian pair */
#define NIB(n) ((unsigned)((((n) & 15) ^ 8) - 8) & 0xffu)
#define NP1(b) (uint16_t)(NIB(b) | NIB((b) >> 4) << 8)
#define NP4(b) NP1(b), NP1((b) + 1), NP1((b) + 2), NP1((b) + 3)
#define NP16(b) NP4(b), NP4((b) + 4), NP4((b) + 8), NP4((b) + 12)
#define NP64(b) NP16(b), NP16((b) + 16), NP16((b) + 32), NP16((b) + 48)
static const uint16_t nib_pairs[256] = {NP64(0), NP64(64), NP64(128), NP64(192)};

/* row i of codes q (int8, or nibbles low first, two's complement) into v [Kp], zero padded */
static void codes_get(const void *q, int64_t i, int64_t K, int64_t Kp, bool i4, int8_t *v) {
    if (i4) {
        const uint8_t *p = (const uint8_t *)q + i * (K / 2);
        for (int64_t k = 0; k < K / 2; k++) memcpy(v + 2 * k, &nib_pairs[p[k]], 2);
    } else {
        memcpy(v, (const int8_t *)q + i * K, (size_t)K);
    }
    memset(v + K, 0, (size_t)(Kp - K));
}

/* token t as pack_token stores it (one segment: ns = 1) */
static void codes_token(const struct i8_codes *cd, int64_t t, int64_t Kp, const struct i8_act *A) {
    int8_t *q = A->q + (size_t)t * (size_t)Kp;
    codes_get(cd->qx, t, cd->K, Kp, cd->i4, q);
    int32_t sum = 0;
    for (int64_t k = 0; k < cd->K; k++) sum += q[k];
    A->d[t] = cd->dx[t], A->m[t] = 0.0f, A->sx[t] = sum;
}

/* weight row n into lane r of the panel, as pack_row (rows past N are zero) */
static void codes_row(const struct i8_codes *cd, int64_t n, int r, int NW, int64_t Kp, int bias,
                      int8_t *v, const struct i8_panel *P) {
    if (n < cd->N) codes_get(cd->qw, n, cd->K, Kp, cd->i4, v);
    else memset(v, 0, (size_t)Kp);
    P->wd[r] = n < cd->N ? cd->dw[n] : 0.0f, P->wm[r] = 0.0f, P->wc[r] = -bias;
    store_row(v, r, NW, Kp, bias, P);
}

/* ===== tiles: y[t][n0 + i] (row stride ldy) for nt tokens × NW panel rows ===== */

struct i8_tile_args {
    const uint8_t *wq; /* [Kp/4][NW][4] */
    const float *wd, *wm;
    const int32_t *wc; /* [ns][NW] */
    const int8_t *xq;  /* [nt][Kp] */
    const float *xd, *xm;
    const int32_t *xs; /* [nt][ns] */
    int64_t Kp, L, ns;
    int nt;            /* tokens, 1..RT */
    float *y;
    int64_t ldy;
};
typedef void (*i8_tile_fn)(const struct i8_tile_args *a, bool per_row_c, bool min);

#define RT_GEN 4
#define NW_GEN 16
static void tile_generic(const struct i8_tile_args *a, bool per_row_c, bool min) {
    (void)per_row_c;
    float s[RT_GEN][NW_GEN];
    const int nt = a->nt;
    for (int t = 0; t < RT_GEN; t++)
        for (int i = 0; i < NW_GEN; i++) s[t][i] = -0.0f;
    for (int64_t sg = 0; sg < a->ns; sg++) {
        const int64_t k0 = sg * a->L, k1 = LB_MIN(a->Kp, k0 + a->L);
        int32_t acc[RT_GEN][NW_GEN];
        for (int t = 0; t < nt; t++)
            for (int i = 0; i < NW_GEN; i++) acc[t][i] = a->wc[sg * NW_GEN + i] * a->xs[t * a->ns + sg];
        for (int64_t k = k0; k < k1; k += 4) {
            const int8_t *wk = (const int8_t *)a->wq + k * NW_GEN;
            for (int t = 0; t < nt; t++) {
                const int8_t *xk = a->xq + t * a->Kp + k;
                for (int i = 0; i < NW_GEN; i++)
                    acc[t][i] += wk[4 * i] * xk[0] + wk[4 * i + 1] * xk[1] + wk[4 * i + 2] * xk[2] +
                                 wk[4 * i + 3] * xk[3];
            }
        }
        for (int t = 0; t < nt; t++)
            for (int i = 0; i < NW_GEN; i++) {
                float v = (a->wd[sg * NW_GEN + i] * a->xd[t * a->ns + sg]) * (float)acc[t][i];
                if (min) v = v + a->wm[sg * NW_GEN + i] * a->xm[t * a->ns + sg];
                s[t][i] = s[t][i] + v;
            }
    }
    for (int t = 0; t < nt; t++)
        for (int i = 0; i < NW_GEN; i++) a->y[t * a->ldy + i] = s[t][i];
}

/* rows n..n+15 (all < N) of a Q8_0/Q4_0/Q4_1 tensor into panel lanes r0..r0+15: what pack_row
 * stores for them, with the kernel's bias */
typedef void (*i8_unpack_fn)(const struct tensor *w, int64_t n, int r0, int NW,
                             const struct i8_panel *P);

/* rows n..n+15 (all < N) of codes (int8 or 4-bit) into panel lanes r0..r0+15: what codes_row stores */
typedef void (*i8_codes16_fn)(const struct i8_codes *cd, int64_t n, int r0, int NW, int64_t Kp,
                              const struct i8_panel *P);

struct i8_kern {
    const char *name;
    int RT, NW, bias; /* tile: up to RT tokens × NW weight rows; weight codes stored v + bias */
    i8_tile_fn tile;
    i8_quant_fn quant;   /* GGUF activations */
    i8_unpack_fn unpack; /* 16 GGUF rows at a time (Q8_0, Q4_0, Q4_1); NULL: pack_row only */
    i8_codes16_fn codes16; /* 16 rows of codes (matmul_i8_codes); NULL: codes_row only */
};

static const struct i8_kern kern_generic = {"generic", RT_GEN, NW_GEN, 0, tile_generic,
                                            quant_gguf_generic, NULL, NULL};

/* the unpackers' share: types, and row offsets r·row_bytes that fit gather indices */
static bool unpack16_ok(const struct tensor *w) {
    return (w->type == DTYPE_Q8_0 || w->type == DTYPE_Q4_0 || w->type == DTYPE_Q4_1) &&
           tensor_row_bytes(w) <= (size_t)(INT32_MAX / 16);
}

#if LB_X86
/* ===== AVX-512: activation quantization and weight unpacking ===== */

/* fp16 round trip of 16 floats (F16C: RNE, as lb_f32_to_fp16; NaN lanes redone in scalar) */
LB_VNNI static LB_INLINE __m512 fp16_round_512(__m512 v) {
    const __m512 r = _mm512_cvtph_ps(_mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
    if (!_mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q)) return r;
    float a[16];
    _mm512_storeu_ps(a, v);
    for (int i = 0; i < 16; i++) a[i] = lb_fp16_to_f32(lb_f32_to_fp16(a[i]));
    return _mm512_loadu_ps(a);
}

/* quant_block on 16 floats with 1/d = vid: the int32 codes */
LB_VNNI static LB_INLINE __m512i round16_512(__m512 x, __m512 vid) {
    const __m512 v = _mm512_mul_ps(x, vid);
    const __m512i i = _mm512_cvttps_epi32(v);
    const __m512 f = _mm512_sub_ps(v, _mm512_cvtepi32_ps(i));
    const __m512i one = _mm512_set1_epi32(1);
    const __m512i up =
        _mm512_mask_add_epi32(i, _mm512_cmp_ps_mask(f, _mm512_set1_ps(0.5f), _CMP_GE_OQ), i, one);
    return _mm512_mask_sub_epi32(up, _mm512_cmp_ps_mask(f, _mm512_set1_ps(-0.5f), _CMP_LE_OQ), up,
                                 one);
}

LB_VNNI static void quant_gguf_avx512(const float *x, int64_t nb, int8_t *q, float *dd, float *mm,
                                      int32_t *sx) {
    for (int64_t b0 = 0; b0 < nb; b0 += 16) {
        const int n = (int)LB_MIN(16, nb - b0);
        float d[16] = {0}, s[16] = {0};
        for (int i = 0; i < n; i++) {
            const int64_t b = b0 + i;
            const __m512 x0 = _mm512_loadu_ps(x + b * QK8_0),
                         x1 = _mm512_loadu_ps(x + b * QK8_0 + 16);
            const float amax =
                _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(x0), _mm512_abs_ps(x1)));
            const float db = amax / 127.0f, id = db ? 1.0f / db : 0.0f;
            int sum = 0;
            if (!(amax * id < 8388608.0f)) { /* quant_block's roundf case */
                quant_block(x + b * QK8_0, q + b * QK8_0, QK8_0);
                for (int j = 0; j < QK8_0; j++) sum += q[b * QK8_0 + j];
            } else {
                const __m512 vid = _mm512_set1_ps(id);
                const __m512i i0 = round16_512(x0, vid), i1 = round16_512(x1, vid);
                _mm_storeu_si128((__m128i *)(q + b * QK8_0), _mm512_cvtepi32_epi8(i0));
                _mm_storeu_si128((__m128i *)(q + b * QK8_0 + 16), _mm512_cvtepi32_epi8(i1));
                sum = _mm512_reduce_add_epi32(_mm512_add_epi32(i0, i1));
            }
            d[i] = db, s[i] = (float)sum * db, sx[b] = sum;
        }
        const __mmask16 m = (__mmask16)((1u << n) - 1);
        _mm512_mask_storeu_ps(dd + b0, m, fp16_round_512(_mm512_loadu_ps(d)));
        _mm512_mask_storeu_ps(mm + b0, m, fp16_round_512(_mm512_loadu_ps(s)));
    }
}

/* 16 rows × 16 bytes at p + r·rb → 4 vectors, o[j] dword r = dword j of row r (a 4×4 dword
 * transpose in each 128-bit lane of rows {g, 4+g, 8+g, 12+g}) */
LB_VNNI static LB_INLINE void tr16_512(const char *p, size_t rb, __m512i o[4]) {
    __m512i a[4];
#pragma GCC unroll 4
    for (int g = 0; g < 4; g++) {
        a[g] = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(p + (size_t)g * rb)));
        a[g] = _mm512_inserti32x4(a[g],
                                  _mm_loadu_si128((const __m128i *)(p + (size_t)(4 + g) * rb)), 1);
        a[g] = _mm512_inserti32x4(a[g],
                                  _mm_loadu_si128((const __m128i *)(p + (size_t)(8 + g) * rb)), 2);
        a[g] = _mm512_inserti32x4(a[g],
                                  _mm_loadu_si128((const __m128i *)(p + (size_t)(12 + g) * rb)), 3);
    }
    const __m512i t0 = _mm512_unpacklo_epi32(a[0], a[1]), t1 = _mm512_unpackhi_epi32(a[0], a[1]);
    const __m512i t2 = _mm512_unpacklo_epi32(a[2], a[3]), t3 = _mm512_unpackhi_epi32(a[2], a[3]);
    o[0] = _mm512_unpacklo_epi64(t0, t2), o[1] = _mm512_unpackhi_epi64(t0, t2);
    o[2] = _mm512_unpacklo_epi64(t1, t3), o[3] = _mm512_unpackhi_epi64(t1, t3);
}

/* the fp32 values of 16 fp16 at byte offset off of p + r·rb (weights: NaN lanes in scalar) */
LB_VNNI static LB_INLINE __m512 scales16_512(const char *p, __m512i idx) {
    const __m512i g = _mm512_i32gather_epi32(idx, (const void *)p, 1);
    const __m256i h = _mm512_cvtepi32_epi16(g);
    const __m512 f = _mm512_cvtph_ps(h);
    if (!_mm512_cmp_ps_mask(f, f, _CMP_UNORD_Q)) return f;
    uint16_t hs[16];
    float a[16];
    _mm256_storeu_si256((__m256i *)hs, h);
    for (int i = 0; i < 16; i++) a[i] = lb_fp16_to_f32(hs[i]);
    return _mm512_loadu_ps(a);
}

LB_VNNI static void unpack_vnni(const struct tensor *w, int64_t n, int r0, int NW,
                                const struct i8_panel *P) {
    const enum dtype t = w->type;
    const size_t rb = tensor_row_bytes(w), bsz = (size_t)dtype_get(t)->block_bytes;
    const int64_t nb = w->ne[0] / QK8_0;
    const char *base = tensor_row(w, n);
    const __m512i idx =
        _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                           _mm512_set1_epi32((int)rb));
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    const __m512i add = _mm512_set1_epi8((char)(t == DTYPE_Q4_0 ? 120 : 128)); /* v + 128 */
    const size_t qstride = (size_t)4 * (size_t)NW;
    for (int64_t b = 0; b < nb; b++) {
        const char *blk = base + (size_t)b * bsz;
        uint8_t *dst = P->wq + (size_t)b * 8 * qstride + 4 * (size_t)r0;
        __m512i o[4];
        if (t == DTYPE_Q8_0) {
            for (int h = 0; h < 2; h++) {
                tr16_512(blk + 2 + 16 * h, rb, o);
#pragma GCC unroll 4
                for (int j = 0; j < 4; j++)
                    _mm512_storeu_si512(dst + (4 * h + j) * qstride, _mm512_xor_si512(o[j], add));
            }
        } else {
            tr16_512(blk + (t == DTYPE_Q4_1 ? 4 : 2), rb, o);
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) {
                const __m512i lo = _mm512_and_si512(o[j], m4);
                const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(o[j], 4), m4);
                _mm512_storeu_si512(dst + j * qstride, _mm512_add_epi8(lo, add));
                _mm512_storeu_si512(dst + (4 + j) * qstride, _mm512_add_epi8(hi, add));
            }
        }
        _mm512_storeu_ps(P->wd + b * NW + r0, scales16_512(blk, idx));
        _mm512_storeu_ps(P->wm + b * NW + r0,
                         t == DTYPE_Q4_1 ? scales16_512(blk + 2, idx) : _mm512_setzero_ps());
        _mm512_storeu_si512(P->wc + b * NW + r0, _mm512_set1_epi32(-128));
    }
}

/* ===== AVX-512 VNNI: RT tokens × 32 rows, vpdpbusd(u8 weights + 128, s8 broadcast x) ===== */

#define RT_VNNI 6
#define NV_VNNI 2
LB_VNNI static LB_INLINE void tile_vnni_t(const int RT, const bool PRC, const bool MIN,
                                          const struct i8_tile_args *a) {
    const int NV = NV_VNNI, NW = 16 * NV_VNNI;
    const int64_t Kp = a->Kp, ns = a->ns;
    __m512 s[RT_VNNI][NV_VNNI];
#pragma GCC unroll 6
    for (int t = 0; t < RT; t++)
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++) s[t][v] = _mm512_set1_ps(-0.0f);
    for (int64_t sg = 0; sg < ns; sg++) {
        const int64_t k0 = sg * a->L, k1 = LB_MIN(Kp, k0 + a->L);
        __m512i acc[RT_VNNI][NV_VNNI];
        if (PRC) {
            __m512i c[NV_VNNI];
#pragma GCC unroll 2
            for (int v = 0; v < NV; v++) c[v] = _mm512_loadu_si512(a->wc + sg * NW + 16 * v);
#pragma GCC unroll 6
            for (int t = 0; t < RT; t++)
#pragma GCC unroll 2
                for (int v = 0; v < NV; v++)
                    acc[t][v] = _mm512_mullo_epi32(c[v], _mm512_set1_epi32(a->xs[t * ns + sg]));
        } else { /* c = −128 on every row */
#pragma GCC unroll 6
            for (int t = 0; t < RT; t++)
#pragma GCC unroll 2
                for (int v = 0; v < NV; v++) acc[t][v] = _mm512_set1_epi32(-128 * a->xs[t * ns + sg]);
        }
        const uint8_t *wk = a->wq + k0 * NW;
        const int8_t *xk = a->xq + k0;
#pragma GCC unroll 8
        for (int64_t k = k0; k < k1; k += 4, wk += 4 * NW, xk += 4) {
            __m512i wv[NV_VNNI];
#pragma GCC unroll 2
            for (int v = 0; v < NV; v++) wv[v] = _mm512_loadu_si512(wk + 64 * v);
#pragma GCC unroll 6
            for (int t = 0; t < RT; t++) {
                int32_t x4;
                memcpy(&x4, xk + t * Kp, 4);
                const __m512i xb = _mm512_set1_epi32(x4);
#pragma GCC unroll 2
                for (int v = 0; v < NV; v++) acc[t][v] = _mm512_dpbusd_epi32(acc[t][v], wv[v], xb);
            }
        }
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++) {
            const __m512 dw = _mm512_loadu_ps(a->wd + sg * NW + 16 * v);
            const __m512 mw = MIN ? _mm512_loadu_ps(a->wm + sg * NW + 16 * v) : dw;
#pragma GCC unroll 6
            for (int t = 0; t < RT; t++) {
                __m512 val = _mm512_mul_ps(_mm512_mul_ps(dw, _mm512_set1_ps(a->xd[t * ns + sg])),
                                           _mm512_cvtepi32_ps(acc[t][v]));
                if (MIN)
                    val = _mm512_add_ps(val, _mm512_mul_ps(mw, _mm512_set1_ps(a->xm[t * ns + sg])));
                s[t][v] = _mm512_add_ps(s[t][v], val);
            }
        }
    }
#pragma GCC unroll 6
    for (int t = 0; t < RT; t++)
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++) _mm512_storeu_ps(a->y + t * a->ldy + 16 * v, s[t][v]);
}

/* the same for L = 32 and c = −128 (the GGUF blocks): 8 quads per segment, fully unrolled */
LB_VNNI static LB_INLINE void tile_vnni_g(const int RT, const bool MIN,
                                          const struct i8_tile_args *a) {
    const int NV = NV_VNNI, NW = 16 * NV_VNNI;
    const int64_t Kp = a->Kp, ns = a->ns;
    __m512 s[RT_VNNI][NV_VNNI];
#pragma GCC unroll 6
    for (int t = 0; t < RT; t++)
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++) s[t][v] = _mm512_set1_ps(-0.0f);
    const uint8_t *wk = a->wq;
    const int8_t *xk = a->xq;
    for (int64_t sg = 0; sg < ns; sg++, wk += 32 * NW, xk += 32) {
        __m512i acc[RT_VNNI][NV_VNNI];
#pragma GCC unroll 6
        for (int t = 0; t < RT; t++) {
            const __m512i c = _mm512_set1_epi32(-128 * a->xs[t * ns + sg]);
#pragma GCC unroll 2
            for (int v = 0; v < NV; v++) acc[t][v] = c;
        }
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            __m512i wv[NV_VNNI];
#pragma GCC unroll 2
            for (int v = 0; v < NV; v++) wv[v] = _mm512_loadu_si512(wk + 4 * NW * j + 64 * v);
#pragma GCC unroll 6
            for (int t = 0; t < RT; t++) {
                int32_t x4;
                memcpy(&x4, xk + t * Kp + 4 * j, 4);
                const __m512i xb = _mm512_set1_epi32(x4);
#pragma GCC unroll 2
                for (int v = 0; v < NV; v++) acc[t][v] = _mm512_dpbusd_epi32(acc[t][v], wv[v], xb);
            }
        }
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++) {
            const __m512 dw = _mm512_loadu_ps(a->wd + sg * NW + 16 * v);
            const __m512 mw = MIN ? _mm512_loadu_ps(a->wm + sg * NW + 16 * v) : dw;
#pragma GCC unroll 6
            for (int t = 0; t < RT; t++) {
                __m512 val = _mm512_mul_ps(_mm512_mul_ps(dw, _mm512_set1_ps(a->xd[t * ns + sg])),
                                           _mm512_cvtepi32_ps(acc[t][v]));
                if (MIN)
                    val = _mm512_add_ps(val, _mm512_mul_ps(mw, _mm512_set1_ps(a->xm[t * ns + sg])));
                s[t][v] = _mm512_add_ps(s[t][v], val);
            }
        }
    }
#pragma GCC unroll 6
    for (int t = 0; t < RT; t++)
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++) _mm512_storeu_ps(a->y + t * a->ldy + 16 * v, s[t][v]);
}

#define VNNI_RT(RT)                                                                                \
    LB_VNNI static void tile_vnni_##RT(const struct i8_tile_args *a, bool prc, bool min) {         \
        if (prc) tile_vnni_t(RT, true, false, a);                                                  \
        else if (a->L == 32 && min) tile_vnni_g(RT, true, a);                                      \
        else if (a->L == 32) tile_vnni_g(RT, false, a);                                            \
        else if (min) tile_vnni_t(RT, false, true, a);                                             \
        else tile_vnni_t(RT, false, false, a);                                                     \
    }
VNNI_RT(1)
VNNI_RT(2)
VNNI_RT(3)
VNNI_RT(4)
VNNI_RT(5)
VNNI_RT(6)
static void tile_vnni(const struct i8_tile_args *a, bool prc, bool min) {
    static const i8_tile_fn by_rt[RT_VNNI + 1] = {NULL,      tile_vnni_1, tile_vnni_2, tile_vnni_3,
                                                  tile_vnni_4, tile_vnni_5, tile_vnni_6};
    by_rt[a->nt](a, prc, min);
}

/* codes16 on AVX-512: runs of 16 codes of 16 rows by tr16_512 (one 64-byte quad row per dword),
 * + 128 as a xor; 4-bit rows: 8 bytes a row split into nibbles and interleaved (low first) into
 * a 16 × 16-byte buffer first, + 128 as (n ^ 8) + 120. The last codes (K % 16) and the zero
 * padding row by row as codes_row. */
LB_VNNI static void codes16_vnni(const struct i8_codes *cd, int64_t n, int r0, int NW, int64_t Kp,
                                 const struct i8_panel *P) {
    const int64_t K = cd->K, rb = cd->i4 ? K / 2 : K;
    const char *base = (const char *)cd->qw + n * rb;
    const size_t qstride = (size_t)4 * (size_t)NW;
    const __m512i add = _mm512_set1_epi8((char)0x80);
    const __m128i m4 = _mm_set1_epi8(0x0f), x8 = _mm_set1_epi8(8), b120 = _mm_set1_epi8(120);
    int64_t k = 0;
    for (; k + 16 <= K; k += 16) {
        __m512i o[4];
        if (cd->i4) {
            uint8_t buf[16 * 16];
            for (int r = 0; r < 16; r++) {
                const __m128i b = _mm_loadl_epi64((const __m128i *)(const void *)(base + r * rb + k / 2));
                const __m128i lo = _mm_and_si128(b, m4), hi = _mm_and_si128(_mm_srli_epi16(b, 4), m4);
                const __m128i nib = _mm_unpacklo_epi8(lo, hi);
                _mm_storeu_si128((__m128i *)(void *)(buf + 16 * r),
                                 _mm_add_epi8(_mm_xor_si128(nib, x8), b120));
            }
            tr16_512((const char *)buf, 16, o);
        } else {
            tr16_512(base + k, (size_t)K, o);
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) o[j] = _mm512_xor_si512(o[j], add);
        }
        uint8_t *dst = P->wq + (size_t)k * (size_t)NW + 4 * (size_t)r0;
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) _mm512_storeu_si512(dst + j * qstride, o[j]);
    }
    for (int r = 0; r < 16; r++) {
        int8_t v[16]; /* codes k .. Kp (< 16 + 31 after k; at most 47, done in pieces of 16) */
        for (int64_t k0 = k; k0 < Kp; k0 += 16) {
            for (int i = 0; i < 16; i++) {
                const int64_t kk = k0 + i;
                if (kk >= K) v[i] = 0;
                else if (cd->i4) {
                    const uint8_t b = (uint8_t)base[r * rb + kk / 2];
                    v[i] = (int8_t)(kk % 2 ? (int8_t)b >> 4 : (int8_t)(uint8_t)(b << 4) >> 4);
                } else v[i] = (int8_t)base[r * rb + kk];
            }
            for (int64_t kq = k0; kq < LB_MIN(Kp, k0 + 16); kq += 4) {
                uint32_t u;
                memcpy(&u, v + (kq - k0), 4);
                u ^= 0x80808080u;
                memcpy(P->wq + (size_t)kq * (size_t)NW + 4 * (size_t)(r0 + r), &u, 4);
            }
        }
        P->wd[r0 + r] = cd->dw[n + r], P->wm[r0 + r] = 0.0f, P->wc[r0 + r] = -128;
    }
}

static const struct i8_kern kern_vnni = {"avx512-vnni", RT_VNNI, 16 * NV_VNNI, 128, tile_vnni,
                                         quant_gguf_avx512, unpack_vnni, codes16_vnni};

/* ===== AVX2: activation quantization and weight unpacking (as the AVX-512 ones) ===== */

LB_AVX2 static LB_INLINE __m256 fp16_round_256(__m256 v) {
    const __m256 r = _mm256_cvtph_ps(_mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
    if (!_mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q))) return r;
    float a[8];
    _mm256_storeu_ps(a, v);
    for (int i = 0; i < 8; i++) a[i] = lb_fp16_to_f32(lb_f32_to_fp16(a[i]));
    return _mm256_loadu_ps(a);
}

LB_AVX2 static LB_INLINE __m256i round8_256(__m256 x, __m256 vid) {
    const __m256 v = _mm256_mul_ps(x, vid);
    const __m256i i = _mm256_cvttps_epi32(v);
    const __m256 f = _mm256_sub_ps(v, _mm256_cvtepi32_ps(i));
    /* compare masks are −1 where true: i − (f >= .5) + (f <= −.5) */
    const __m256i ge = _mm256_castps_si256(_mm256_cmp_ps(f, _mm256_set1_ps(0.5f), _CMP_GE_OQ));
    const __m256i le = _mm256_castps_si256(_mm256_cmp_ps(f, _mm256_set1_ps(-0.5f), _CMP_LE_OQ));
    return _mm256_add_epi32(_mm256_sub_epi32(i, ge), le);
}

LB_AVX2 static void quant_gguf_avx2(const float *x, int64_t nb, int8_t *q, float *dd, float *mm,
                                    int32_t *sx) {
    const __m256 absm = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    for (int64_t b0 = 0; b0 < nb; b0 += 8) {
        const int n = (int)LB_MIN(8, nb - b0);
        float d[8] = {0}, s[8] = {0};
        for (int i = 0; i < n; i++) {
            const int64_t b = b0 + i;
            __m256 xv[4];
            for (int u = 0; u < 4; u++) xv[u] = _mm256_loadu_ps(x + b * QK8_0 + 8 * u);
            __m256 mx = _mm256_max_ps(
                _mm256_max_ps(_mm256_and_ps(xv[0], absm), _mm256_and_ps(xv[1], absm)),
                _mm256_max_ps(_mm256_and_ps(xv[2], absm), _mm256_and_ps(xv[3], absm)));
            __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
            m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
            m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
            const float amax = _mm_cvtss_f32(m4);
            const float db = amax / 127.0f, id = db ? 1.0f / db : 0.0f;
            int sum = 0;
            if (!(amax * id < 8388608.0f)) {
                quant_block(x + b * QK8_0, q + b * QK8_0, QK8_0);
                for (int j = 0; j < QK8_0; j++) sum += q[b * QK8_0 + j];
            } else {
                const __m256 vid = _mm256_set1_ps(id);
                __m256i iv[4];
                for (int u = 0; u < 4; u++) iv[u] = round8_256(xv[u], vid);
                /* int32 → int8 (|v| <= 127: no saturation), packs interleave the lanes */
                const __m256i p16 = _mm256_packs_epi32(iv[0], iv[1]),
                              p16b = _mm256_packs_epi32(iv[2], iv[3]);
                const __m256i p8 = _mm256_packs_epi16(p16, p16b);
                const __m256i ord =
                    _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
                _mm256_storeu_si256((__m256i *)(q + b * QK8_0), ord);
                const __m256i s4 = _mm256_add_epi32(_mm256_add_epi32(iv[0], iv[1]),
                                                    _mm256_add_epi32(iv[2], iv[3]));
                __m128i s1 =
                    _mm_add_epi32(_mm256_castsi256_si128(s4), _mm256_extracti128_si256(s4, 1));
                s1 = _mm_add_epi32(s1, _mm_shuffle_epi32(s1, 0x4e));
                s1 = _mm_add_epi32(s1, _mm_shuffle_epi32(s1, 0xb1));
                sum = _mm_cvtsi128_si32(s1);
            }
            d[i] = db, s[i] = (float)sum * db, sx[b] = sum;
        }
        float rd[8], rm[8];
        _mm256_storeu_ps(rd, fp16_round_256(_mm256_loadu_ps(d)));
        _mm256_storeu_ps(rm, fp16_round_256(_mm256_loadu_ps(s)));
        memcpy(dd + b0, rd, (size_t)n * 4);
        memcpy(mm + b0, rm, (size_t)n * 4);
    }
}

/* 8 rows × 16 bytes at p + r·rb → o[j] dword r = dword j of row r */
LB_AVX2 static LB_INLINE void tr8_256(const char *p, size_t rb, __m256i o[4]) {
    __m256i a[4];
#pragma GCC unroll 4
    for (int g = 0; g < 4; g++)
        a[g] = _mm256_inserti128_si256(
            _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(p + (size_t)g * rb))),
            _mm_loadu_si128((const __m128i *)(p + (size_t)(4 + g) * rb)), 1);
    const __m256i t0 = _mm256_unpacklo_epi32(a[0], a[1]), t1 = _mm256_unpackhi_epi32(a[0], a[1]);
    const __m256i t2 = _mm256_unpacklo_epi32(a[2], a[3]), t3 = _mm256_unpackhi_epi32(a[2], a[3]);
    o[0] = _mm256_unpacklo_epi64(t0, t2), o[1] = _mm256_unpackhi_epi64(t0, t2);
    o[2] = _mm256_unpacklo_epi64(t1, t3), o[3] = _mm256_unpackhi_epi64(t1, t3);
}

LB_AVX2 static LB_INLINE __m256 scales8_256(const char *p, __m256i idx) {
    const __m256i g = _mm256_and_si256(_mm256_i32gather_epi32((const int *)(const void *)p, idx, 1),
                                       _mm256_set1_epi32(0xffff));
    const __m256i pk = _mm256_permute4x64_epi64(_mm256_packus_epi32(g, g), 0x08);
    const __m128i h = _mm256_castsi256_si128(pk);
    const __m256 f = _mm256_cvtph_ps(h);
    if (!_mm256_movemask_ps(_mm256_cmp_ps(f, f, _CMP_UNORD_Q))) return f;
    uint16_t hs[8];
    float a[8];
    _mm_storeu_si128((__m128i *)hs, h);
    for (int i = 0; i < 8; i++) a[i] = lb_fp16_to_f32(hs[i]);
    return _mm256_loadu_ps(a);
}

LB_AVX2 static void unpack_avx2(const struct tensor *w, int64_t n, int r0, int NW,
                                const struct i8_panel *P) {
    const enum dtype t = w->type;
    const size_t rb = tensor_row_bytes(w), bsz = (size_t)dtype_get(t)->block_bytes;
    const int64_t nb = w->ne[0] / QK8_0;
    const __m256i idx =
        _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32((int)rb));
    const __m256i m4 = _mm256_set1_epi8(0x0f), add = _mm256_set1_epi8(t == DTYPE_Q4_0 ? -8 : 0);
    const size_t qstride = (size_t)4 * (size_t)NW;
    for (int h8 = 0; h8 < 2; h8++) {
        const char *base = tensor_row(w, n + 8 * h8);
        const int r = r0 + 8 * h8;
        for (int64_t b = 0; b < nb; b++) {
            const char *blk = base + (size_t)b * bsz;
            uint8_t *dst = P->wq + (size_t)b * 8 * qstride + 4 * (size_t)r;
            __m256i o[4];
            if (t == DTYPE_Q8_0) {
                for (int h = 0; h < 2; h++) {
                    tr8_256(blk + 2 + 16 * h, rb, o);
                    for (int j = 0; j < 4; j++)
                        _mm256_storeu_si256((__m256i *)(dst + (4 * h + j) * qstride), o[j]);
                }
            } else {
                tr8_256(blk + (t == DTYPE_Q4_1 ? 4 : 2), rb, o);
                for (int j = 0; j < 4; j++) {
                    const __m256i lo = _mm256_and_si256(o[j], m4);
                    const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(o[j], 4), m4);
                    _mm256_storeu_si256((__m256i *)(dst + j * qstride), _mm256_add_epi8(lo, add));
                    _mm256_storeu_si256((__m256i *)(dst + (4 + j) * qstride),
                                        _mm256_add_epi8(hi, add));
                }
            }
            _mm256_storeu_ps(P->wd + b * NW + r, scales8_256(blk, idx));
            _mm256_storeu_ps(P->wm + b * NW + r,
                             t == DTYPE_Q4_1 ? scales8_256(blk + 2, idx) : _mm256_setzero_ps());
            _mm256_storeu_si256((__m256i *)(P->wc + b * NW + r), _mm256_setzero_si256());
        }
    }
}

/* ===== AVX2: RT tokens × 16 rows, sign trick ===== */

#define RT_AVX2 2
LB_AVX2 static LB_INLINE void tile_avx2_t(const int RT, const bool MIN,
                                          const struct i8_tile_args *a) {
    const int NW = 16;
    const int64_t Kp = a->Kp, ns = a->ns;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 s[RT_AVX2][2];
#pragma GCC unroll 2
    for (int t = 0; t < RT; t++) s[t][0] = s[t][1] = _mm256_set1_ps(-0.0f);
    for (int64_t sg = 0; sg < ns; sg++) {
        const int64_t k0 = sg * a->L, k1 = LB_MIN(Kp, k0 + a->L);
        __m256i acc[RT_AVX2][2];
#pragma GCC unroll 2
        for (int t = 0; t < RT; t++)
#pragma GCC unroll 2
            for (int v = 0; v < 2; v++)
                acc[t][v] = _mm256_mullo_epi32(_mm256_loadu_si256((const __m256i *)(a->wc + sg * NW + 8 * v)),
                                               _mm256_set1_epi32(a->xs[t * ns + sg]));
        const uint8_t *wk = a->wq + k0 * NW;
        const int8_t *xk = a->xq + k0;
#pragma GCC unroll 4
        for (int64_t k = k0; k < k1; k += 4, wk += 4 * NW, xk += 4) {
            __m256i wv[2], wa[2];
#pragma GCC unroll 2
            for (int v = 0; v < 2; v++) {
                wv[v] = _mm256_loadu_si256((const __m256i *)(wk + 32 * v));
                wa[v] = _mm256_abs_epi8(wv[v]);
            }
#pragma GCC unroll 2
            for (int t = 0; t < RT; t++) {
                int32_t x4;
                memcpy(&x4, xk + t * Kp, 4);
                const __m256i xb = _mm256_set1_epi32(x4);
#pragma GCC unroll 2
                for (int v = 0; v < 2; v++) {
                    const __m256i p = _mm256_maddubs_epi16(wa[v], _mm256_sign_epi8(xb, wv[v]));
                    acc[t][v] = _mm256_add_epi32(acc[t][v], _mm256_madd_epi16(p, ones));
                }
            }
        }
#pragma GCC unroll 2
        for (int v = 0; v < 2; v++) {
            const __m256 dw = _mm256_loadu_ps(a->wd + sg * NW + 8 * v);
            const __m256 mw = MIN ? _mm256_loadu_ps(a->wm + sg * NW + 8 * v) : dw;
#pragma GCC unroll 2
            for (int t = 0; t < RT; t++) {
                __m256 val = _mm256_mul_ps(_mm256_mul_ps(dw, _mm256_set1_ps(a->xd[t * ns + sg])),
                                           _mm256_cvtepi32_ps(acc[t][v]));
                if (MIN)
                    val = _mm256_add_ps(val, _mm256_mul_ps(mw, _mm256_set1_ps(a->xm[t * ns + sg])));
                s[t][v] = _mm256_add_ps(s[t][v], val);
            }
        }
    }
#pragma GCC unroll 2
    for (int t = 0; t < RT; t++)
#pragma GCC unroll 2
        for (int v = 0; v < 2; v++) _mm256_storeu_ps(a->y + t * a->ldy + 8 * v, s[t][v]);
}

LB_AVX2 static void tile_avx2(const struct i8_tile_args *a, bool prc, bool min) {
    (void)prc;
    if (a->nt == 1) {
        if (min) tile_avx2_t(1, true, a);
        else tile_avx2_t(1, false, a);
    } else {
        if (min) tile_avx2_t(2, true, a);
        else tile_avx2_t(2, false, a);
    }
}

static const struct i8_kern kern_avx2 = {"avx2", RT_AVX2, 16, 0, tile_avx2, quant_gguf_avx2,
                                         unpack_avx2, NULL};
#endif /* LB_X86 */

#define I8_NW_MAX 32
_Static_assert(NW_GEN <= I8_NW_MAX && RT_GEN <= I8_RT_MAX, "tile bounds");

/* ===== dispatch ===== */

/* the kernel of path isa (kernels/cpu.h), NULL when the CPU lacks it */
static const struct i8_kern *i8_kern_for(enum cpu_isa isa) {
    if (!cpu_has(isa)) return NULL;
    switch (isa) {
    case CPU_ISA_GENERIC: return &kern_generic;
#if LB_X86
    case CPU_ISA_AVX2: return &kern_avx2;
    /* AVX-512 without VNNI: the AVX2 tile */
    case CPU_ISA_AVX512: return cpu_features()->avx512vnni ? &kern_vnni : &kern_avx2;
#endif
    default: return NULL;
    }
}

static const struct i8_kern *i8_current(void) { return i8_kern_for(cpu_isa()); }

const char *matmul_i8_path(void) { return i8_current()->name; }

/* ===== the driver ===== */

struct i8_ctx {
    const struct i8_kern *kn;
    const struct tensor *w;    /* NULL: the codes of cd */
    const struct i8_codes *cd;
    float *y;
    int64_t K, Kp, N, L, ns;
    int T;
    bool prc, min;
    i8_unpack_fn unpack; /* NULL: pack_row */
    const float *x;
    float *tmp; /* per thread: Kp floats for pack_token */
    struct i8_act act;
    char *scratch; /* per thread: a panel, a row of codes, an edge tile */
    size_t scratch_bytes;
};

static size_t al64(size_t n) { return (n + 63) / 64 * 64; }

/* panels [p0, p1) of NW rows each: pack, then every group of RT tokens over the whole K, the
 * results straight into y (an edge panel through a scratch tile) */
static void i8_thread(const struct i8_ctx *c, int ith, int nth) {
    const struct i8_kern *kn = c->kn;
    for (int64_t t = c->T * ith / nth; t < c->T * (ith + 1) / nth; t++)
        if (c->cd) codes_token(c->cd, t, c->Kp, &c->act);
        else pack_token(c->w, c->x, t, c->Kp, c->L, c->ns, c->tmp + (size_t)ith * (size_t)c->Kp,
                        &c->act, kn->quant);
#ifdef _OPENMP
    if (nth > 1) {
#pragma omp barrier
    }
#endif
    const int NW = kn->NW, RT = kn->RT;
    char *base = c->scratch + (size_t)ith * c->scratch_bytes;
    const size_t seg_b = al64((size_t)(c->ns * NW) * 4);
    struct i8_panel P;
    P.wq = (uint8_t *)base;
    P.wd = (float *)(base + al64((size_t)NW * (size_t)c->Kp));
    P.wm = (float *)((char *)P.wd + seg_b);
    P.wc = (int32_t *)((char *)P.wm + seg_b);
    int8_t *v = (int8_t *)((char *)P.wc + seg_b);
    float *edge = (float *)((char *)v + al64((size_t)c->Kp));
    const int64_t n_panels = (c->N + NW - 1) / NW;
    const int64_t p0 = n_panels * ith / nth, p1 = n_panels * (ith + 1) / nth;
    struct i8_tile_args a = {.wq = P.wq, .wd = P.wd, .wm = P.wm, .wc = P.wc, .Kp = c->Kp,
                             .L = c->L, .ns = c->ns};
    for (int64_t p = p0; p < p1; p++) {
        const int64_t n0 = p * NW;
        int r = 0;
        if (c->unpack)
            for (; r + 16 <= NW && n0 + r + 16 <= c->N; r += 16) c->unpack(c->w, n0 + r, r, NW, &P);
        if (c->cd && kn->codes16)
            for (; r + 16 <= NW && n0 + r + 16 <= c->N; r += 16)
                kn->codes16(c->cd, n0 + r, r, NW, c->Kp, &P);
        for (; r < NW; r++)
            if (c->cd) codes_row(c->cd, n0 + r, r, NW, c->Kp, kn->bias, v, &P);
            else pack_row(c->w, n0 + r, r, NW, c->Kp, c->ns, kn->bias, v, &P);
        const bool full = n0 + NW <= c->N;
        for (int t0 = 0; t0 < c->T; t0 += RT) {
            a.nt = LB_MIN(RT, c->T - t0);
            a.xq = c->act.q + (size_t)t0 * (size_t)c->Kp;
            a.xd = c->act.d + t0 * c->ns;
            a.xm = c->act.m + t0 * c->ns;
            a.xs = c->act.sx + t0 * c->ns;
            a.y = full ? c->y + (size_t)t0 * (size_t)c->N + n0 : edge;
            a.ldy = full ? c->N : NW;
            kn->tile(&a, c->prc, c->min);
            if (!full)
                for (int t = 0; t < a.nt; t++)
                    memcpy(c->y + (size_t)(t0 + t) * (size_t)c->N + n0, edge + t * NW,
                           (size_t)(c->N - n0) * sizeof(float));
        }
    }
}

/* the scratch of i8_run: activations (codes, d, m, sums), one row of fp32 per thread, a panel
 * per thread; *panel_bytes the per-thread panel share */
static size_t i8_bytes(const struct i8_kern *kn, int64_t Kp, int64_t ns, int n_tok, int nth_max,
                       size_t *panel_bytes) {
    const int NW = kn->NW;
    const size_t seg_b = al64((size_t)(ns * NW) * 4);
    *panel_bytes = al64((size_t)NW * (size_t)Kp) + 3 * seg_b + al64((size_t)Kp) +
                   al64((size_t)(I8_RT_MAX * NW) * sizeof(float));
    const size_t q_b = al64((size_t)n_tok * (size_t)Kp), a_b = al64((size_t)n_tok * (size_t)ns * 4);
    const size_t tmp_b = al64((size_t)Kp * sizeof(float) * (size_t)nth_max);
    return q_b + 3 * a_b + tmp_b + *panel_bytes * (size_t)nth_max;
}

static bool i8_parallel(const struct tensor *w, int n_tok) {
    return (double)n_tok * (double)w->ne[0] * (double)tensor_nrows(w) >= I8_PAR_MIN_MAC;
}

/* c's scratch (from ws, else its own), then i8_thread on nth_max threads */
static int i8_exec(struct i8_ctx *c, int nth_max, struct kscratch *ws, const char *what) {
    const int64_t Kp = c->Kp, n_tok = c->T;
    const size_t bytes = i8_bytes(c->kn, Kp, c->ns, c->T, nth_max, &c->scratch_bytes);
    const size_t q_b = al64((size_t)n_tok * (size_t)Kp), a_b = al64((size_t)n_tok * (size_t)c->ns * 4);
    const size_t tmp_b = al64((size_t)Kp * sizeof(float) * (size_t)nth_max);
    void *owned = NULL;
    char *buf = kscratch_take(ws, bytes, &owned, what);
    if (!buf) return -1;
    c->act.q = (int8_t *)buf;
    c->act.d = (float *)(buf + q_b);
    c->act.m = (float *)(buf + q_b + a_b);
    c->act.sx = (int32_t *)(buf + q_b + 2 * a_b);
    c->tmp = (float *)(buf + q_b + 3 * a_b);
    c->scratch = buf + q_b + 3 * a_b + tmp_b;
#ifdef _OPENMP
#pragma omp parallel num_threads(nth_max) if (nth_max > 1)
    i8_thread(c, omp_get_thread_num(), omp_get_num_threads());
#else
    i8_thread(c, 0, 1);
#endif
    free(owned);
    return 0;
}

static int i8_run(const struct i8_kern *kn, float *y, const float *x, const struct tensor *w,
                  int n_tok, struct kscratch *ws) {
    ASSERT(matmul_i8_tensor_ok(w));
    const int64_t K = w->ne[0], N = tensor_nrows(w), Kp = pad32(K), L = seg_len(w);
    if (n_tok <= 0 || N <= 0) return 0;
    struct i8_ctx c = {.kn = kn, .w = w, .y = y, .K = K, .Kp = Kp, .N = N, .L = L,
                       .ns = (Kp + L - 1) / L, .T = n_tok, .prc = w->type == DTYPE_QINT,
                       .min = has_min(w->type), .x = x};
    c.unpack = kn->unpack && unpack16_ok(w) ? kn->unpack : NULL;
    return i8_exec(&c, i8_parallel(w, n_tok) ? lb_threads() : 1, ws, w->name);
}

int matmul_i8_codes(float *y, const void *qx, const float *dx, const void *qw, const float *dw,
                    int64_t T, int64_t N, int64_t K, bool i4, const char *isa) {
    const int i = isa ? cpu_isa_from_name(isa) : (int)cpu_isa();
    const struct i8_kern *kn = i < 0 ? NULL : i8_kern_for((enum cpu_isa)i);
    if (!kn) return -2;
    ASSERT(K > 0 && K <= I8_K_MAX && T <= INT32_MAX && !(i4 && K % 2));
    if (T <= 0 || N <= 0) return 0;
#if LB_X86
    /* AVX2's sign trick negates the activation code: −128 (act_quant_rows' clamp at clip < 1)
     * has no negative in int8, so such codes take the generic tile */
    if (kn == &kern_avx2 && !i4 && memchr(qx, 0x80, (size_t)(T * K))) kn = &kern_generic;
#endif
    const struct i8_codes cd = {.qx = qx, .qw = qw, .dx = dx, .dw = dw, .K = K, .N = N, .i4 = i4};
    const int64_t Kp = pad32(K);
    struct i8_ctx c = {.kn = kn, .cd = &cd, .y = y, .K = K, .Kp = Kp, .N = N, .L = Kp, .ns = 1,
                       .T = (int)T};
    const bool par = (double)T * (double)N * (double)K >= I8_PAR_MIN_MAC;
    return i8_exec(&c, par ? lb_threads() : 1, NULL, i4 ? "W4A4 codes" : "W8A8 codes");
}

int matmul_i8(float *y, const float *x, const struct tensor *w, int n_tok) {
    if (k8_supported(w->type)) return matmul_k8_ws(y, x, w, n_tok, NULL);
    return i8_run(i8_current(), y, x, w, n_tok, NULL);
}

int matmul_i8_ws(float *y, const float *x, const struct tensor *w, int n_tok,
                 struct kscratch *ws) {
    if (k8_supported(w->type)) return matmul_k8_ws(y, x, w, n_tok, ws);
    return i8_run(i8_current(), y, x, w, n_tok, ws);
}

size_t matmul_i8_scratch(const struct tensor *w, int n_tok, int n_threads) {
    if (n_tok <= 0 || tensor_nrows(w) <= 0 || !matmul_i8_tensor_ok(w)) return 0;
    if (k8_supported(w->type)) return matmul_k8_scratch(w, n_tok, n_threads);
    size_t panel;
    const int64_t Kp = pad32(w->ne[0]), L = seg_len(w);
    return i8_bytes(i8_current(), Kp, (Kp + L - 1) / L, n_tok,
                    i8_parallel(w, n_tok) ? n_threads : 1, &panel);
}

int matmul_i8_isa(float *y, const float *x, const struct tensor *w, int n_tok, const char *isa) {
    if (k8_supported(w->type)) return matmul_k8_isa(y, x, w, n_tok, isa);
    const int i = cpu_isa_from_name(isa);
    const struct i8_kern *kn = i < 0 ? NULL : i8_kern_for((enum cpu_isa)i);
    if (!kn) return -2;
    return i8_run(kn, y, x, w, n_tok, NULL);
}
