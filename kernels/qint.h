/* kernels/qint.h: integer-group quantized weights (DTYPE_QINT), the GPTQ / AWQ / AutoRound / RTN
 * family, and the fused matmul of every parametric type (kernels/matmul_q.c).
 *
 * Legend: W is [N rows = outputs][K columns = inputs] (ggml ne = [K, N]); b = bits ∈ {2, 3, 4, 8};
 * g = group length along K (a multiple of 32, or >= K for one group per row: "per-channel");
 * ng = ceil(K/g) groups per row; nc = ceil(K/32) chunks of 32 columns per row.
 *
 * Value of a weight:  w[n][k] = d[n][grp(k)] · (q[n][k] − z[n][grp(k)])
 * with q ∈ [0, 2^b), z an integer in [0, 2^b] (GPTQ v1 files can say 2^b, see below), d fp32
 * (an fp16 checkpoint scale converted exactly). (q − z) is a small integer, so the product is a
 * single rounding, and it is exact when d came from fp16 (11-bit significand × ≤ 9-bit integer
 * fits in fp32's 24 bits). This is the GPTQ/AWQ dequantization `scales·(q − zeros)` (AutoGPTQ
 * qlinear_cuda_old.py, AutoAWQ packing_utils.dequantize_gemm) carried out in fp32 instead of fp16.
 *
 * In-memory layout of a DTYPE_QINT tensor (one buffer, t->data; all little-endian):
 *  1. codes: N rows of qint_row_bytes(b, K) = nc·4b bytes. Row n is nc chunks of 32 columns in
 *     STORED order (see 3.); chunk c holds stored columns 32c .. 32c+31 (j = column in chunk):
 *       b = 8: 32 bytes, byte j = q_j
 *       b = 4: 16 bytes, byte i: low nibble q_i, high nibble q_{i+16}          (ggml Q4_0 order)
 *       b = 2:  8 bytes, byte i: bits 2m..2m+1 hold q_{i+8m}, m = 0..3
 *       b = 3: 12 bytes, the low two bits as for b = 2, then a u32 whose bit j is bit 2 of q_j
 *     so that 8 or 16 consecutive codes unpack with one load, shifts and masks (kernels/matmul_q.c).
 *     Columns past K in the last chunk hold 0 and are never part of a result.
 *  2. at qtensor_side_offset(t) (a multiple of 8): N·ng struct qint_param {d, z}, row-major [n][g].
 *  3. optional act-order permutation (t->q_perm points here): K int32, stored column j is input
 *     column q_perm[j]. A GPTQ desc_act checkpoint assigns columns to groups by g_idx in any order;
 *     the loader sorts the columns by group (stable), so groups are contiguous in stored order and
 *     the kernels gather x through q_perm once per call (exllama's approach). Without act-order
 *     (g_idx[k] = k / g) q_perm is NULL and stored order is input order.
 * Bits per weight in memory: b·nc·32/K + 64·ng/K (+ 32 with q_perm): 4-bit g128 = 4.5.
 *
 * Zero points in checkpoints (REFERENCE.md C1/C2): GPTQ v1 ("gptq") stores zero − 1, kernels add 1
 * back (AutoGPTQ qlinear_cuda_old "zeros -= 1" when packing); v1 zero 0 would be stored as −1 and
 * is not representable (AutoGPTQ's packer even ORs the sign bits into the neighbouring zeros), and a
 * stored 2^b − 1 reads as 2^b as the CUDA kernels read it (the torch fallback wraps it to 0: the
 * ecosystem disagrees, we follow the kernels). "gptq_v2" (GPTQModel) and AWQ store the true zero. */
#ifndef KERNELS_QINT_H
#define KERNELS_QINT_H
#include "kernels/tensor.h"

#define QINT_CHUNK 32 /* columns per packed chunk */

/* one group's parameters: w = d·(q − z); z is an integer value */
struct qint_param {
    float d;
    float z;
};
_Static_assert(sizeof(struct qint_param) == 8, "qint_param size");

/* ===== geometry ===== */

/* 0 when (bits, group, K) is a layout we hold: bits ∈ {2,3,4,8}, group a multiple of 32 or
 * group >= K; -1 with a message naming `what` otherwise */
int qint_check_layout(const char *what, int bits, int64_t group, int64_t K);
static inline int64_t qint_n_groups(int64_t group, int64_t K) { return (K + group - 1) / group; }
static inline int64_t qint_n_chunks(int64_t K) { return (K + QINT_CHUNK - 1) / QINT_CHUNK; }
static inline size_t qint_row_bytes(int bits, int64_t K) {
    return (size_t)qint_n_chunks(K) * 4u * (size_t)bits;
}

/* fill t as an N×K qint tensor (ne = [K, N]) with data NULL; group <= 0 or >= K means one group
 * per row (stored as q_group = K). has_perm: see qint_tensor_attach. -1 with a message on a bad
 * layout. */
int qint_tensor_init(struct tensor *t, const char *name, int64_t K, int64_t N, int bits,
                     int64_t group, bool has_perm);
/* bytes of the whole buffer a tensor set up by qint_tensor_init needs (its tensor_nbytes) */
size_t qint_tensor_bytes(int64_t K, int64_t N, int bits, int64_t group, bool has_perm);
/* attach a zeroed buffer of qint_tensor_bytes() bytes (caller-owned, must outlive t): sets
 * t->data and, when has_perm, t->q_perm (identity until written) */
void qint_tensor_attach(struct tensor *t, void *buf, bool has_perm);

/* the [N][ng] parameter array of t */
static inline struct qint_param *qint_params(const struct tensor *t) {
    return (struct qint_param *)((char *)t->data + qtensor_side_offset(t));
}
static inline int32_t *qint_perm_mut(const struct tensor *t) {
    return (int32_t *)(qint_params(t) + tensor_nrows(t) * qint_n_groups(t->q_group, t->ne[0]));
}

/* code of stored column j of a packed row (layout 1.) */
static inline unsigned qint_code_get(const uint8_t *row, int bits, int64_t j) {
    const uint8_t *c = row + (size_t)(j / QINT_CHUNK) * 4u * (unsigned)bits;
    const int i = (int)(j % QINT_CHUNK);
    switch (bits) {
    case 8: return c[i];
    case 4: return i < 16 ? c[i] & 15u : c[i - 16] >> 4;
    case 2: return (c[i & 7] >> (2 * (i >> 3))) & 3u;
    default: { /* 3 */
        const uint32_t hi = (uint32_t)c[8] | (uint32_t)c[9] << 8 | (uint32_t)c[10] << 16 |
                            (uint32_t)c[11] << 24;
        return ((c[i & 7] >> (2 * (i >> 3))) & 3u) | ((hi >> i) & 1u) << 2;
    }
    }
}
/* set stored column j (the row starts zeroed; each code is written once) */
static inline void qint_code_set(uint8_t *row, int bits, int64_t j, unsigned q) {
    uint8_t *c = row + (size_t)(j / QINT_CHUNK) * 4u * (unsigned)bits;
    const int i = (int)(j % QINT_CHUNK);
    switch (bits) {
    case 8: c[i] = (uint8_t)q; break;
    case 4:
        if (i < 16) c[i] = (uint8_t)((c[i] & 0xf0) | (q & 15));
        else c[i - 16] = (uint8_t)((c[i - 16] & 0x0f) | (q & 15) << 4);
        break;
    case 2: c[i & 7] = (uint8_t)((c[i & 7] & ~(3u << (2 * (i >> 3)))) | (q & 3) << (2 * (i >> 3))); break;
    default: /* 3 */
        c[i & 7] = (uint8_t)((c[i & 7] & ~(3u << (2 * (i >> 3)))) | (q & 3) << (2 * (i >> 3)));
        c[8 + i / 8] = (uint8_t)((c[8 + i / 8] & ~(1u << (i % 8))) | ((q >> 2) & 1) << (i % 8));
        break;
    }
}

/* row n dequantized in INPUT column order: dst[q_perm[j]] = d·(q_j − z) (the oracle) */
void qint_row_to_f32(const struct tensor *t, int64_t n, float *dst);

/* ===== checkpoint bit packing (AutoGPTQ / AutoAWQ), shared by eval/hf.c and quant/ ===== */

/* GPTQ packs a sequence of b-bit values LSB-first into 32-bit words: value j occupies bits
 * [j·b, j·b + b) of the stream. For b ∈ {2,4,8} that is 32/b values per word; for b = 3 it is
 * exactly AutoGPTQ's hand-written 3-bit packing (qlinear_cuda_old.py pack(): 32 values in 3 words,
 * value 10 split 2|1 bits and value 21 split 1|2 bits across the word boundaries). Word i of the
 * sequence is words[i·stride]: qweight [K·b/32][N] packs down the input rows of column n
 * (words = qweight + n, stride N); qzeros [ng][N·b/32] packs along the outputs (stride 1). */
static inline unsigned qint_stream_get(const int32_t *words, int64_t stride, int64_t j, int bits) {
    const int64_t p = j * bits, w = p / 32;
    const int s = (int)(p % 32);
    uint64_t v = (uint32_t)words[w * stride];
    if (s + bits > 32) v |= (uint64_t)(uint32_t)words[(w + 1) * stride] << 32;
    return (unsigned)(v >> s) & ((1u << bits) - 1);
}
static inline void qint_stream_set(int32_t *words, int64_t stride, int64_t j, int bits, unsigned q) {
    const int64_t p = j * bits, w = p / 32;
    const int s = (int)(p % 32);
    const uint64_t m = (uint64_t)((1u << bits) - 1) << s, v = (uint64_t)(q & ((1u << bits) - 1)) << s;
    uint32_t *lo = (uint32_t *)&words[w * stride];
    *lo = (uint32_t)((*lo & ~(uint32_t)m) | (uint32_t)v);
    if (s + bits > 32) {
        uint32_t *hi = (uint32_t *)&words[(w + 1) * stride];
        *hi = (uint32_t)((*hi & ~(uint32_t)(m >> 32)) | (uint32_t)(v >> 32));
    }
}

/* AWQ GEMM (AutoAWQ gemm.py from_linear): a 32-bit word holds 8 consecutive OUTPUT columns
 * 8c..8c+7 of one input row; nibble i holds column 8c + QINT_AWQ_ORDER[i]. Hence column 8c + j is
 * in nibble QINT_AWQ_REVERSE[j] (packing_utils.AWQ_REVERSE_ORDER). qzeros use the same order. */
extern const int QINT_AWQ_ORDER[8], QINT_AWQ_REVERSE[8];
static inline unsigned qint_awq_get(const int32_t *row, int64_t col) {
    return ((uint32_t)row[col / 8] >> (4 * QINT_AWQ_REVERSE[col % 8])) & 15u;
}
static inline void qint_awq_set(int32_t *row, int64_t col, unsigned q) {
    uint32_t *w = (uint32_t *)&row[col / 8];
    const int s = 4 * QINT_AWQ_REVERSE[col % 8];
    *w = (*w & ~(15u << s)) | (q & 15u) << s;
}

/* act-order: from a checkpoint's g_idx[K] (group of each input column, values checked in
 * [0, n_groups)), the stable sort of the columns by group into perm[K]. Each group must then hold
 * exactly `group` columns (the last K − (ng−1)·group), as GPTQ's g_idx = (position in act order) /
 * group gives; *trivial is set when g_idx[k] = k / group for all k (no permutation needed).
 * -1 with a message naming `what` otherwise. */
int qint_perm_from_gidx(const char *what, const int32_t *g_idx, int64_t K, int64_t group,
                        int32_t *perm, bool *trivial);

/* ===== fused matmul of the parametric types (kernels/matmul_q.c) ===== */

/* Y = X·Wᵀ for DTYPE_QINT/NF4/FP4/I8ROW weights, fp32 activations, same contract as matmul()
 * (kernels/matmul.h; matmul() forwards here): x [n_tok][K], y [n_tok][N]. Each output is one
 * thread's fixed-order sum of the exactly dequantized weights times x, so results do not depend
 * on the thread count, and |matmul_q − matmul_ref| <= 2·(K+4)·2⁻²⁴·Σ_k|w·x|. */
int matmul_q(float *y, const float *x, const struct tensor *w, int n_tok);
/* the same with the caller's planned scratch (kernels/matmul.h: struct kscratch), and the bytes it
 * takes; 0, or -1 with a message when scratch cannot be had */
struct kscratch;
int matmul_q_ws(float *y, const float *x, const struct tensor *w, int n_tok, struct kscratch *ws);
size_t matmul_q_scratch(const struct tensor *w, int n_tok, int n_threads);
/* the same on a named path: "generic", "avx2" or "avx512" (tests); -1 when the CPU lacks it (or,
 * with a message, when out of memory) */
int matmul_q_isa(float *y, const float *x, const struct tensor *w, int n_tok, const char *isa);
/* scalar oracle: each row dequantized in input order, then a plain fp32 dot in k order (the
 * value matmul_ref computes, bit for bit) */
void matmul_q_ref(float *y, const float *x, const struct tensor *w, int n_tok);
/* the fast path matmul_q takes here (follows LOWBIT_ISA like kernels_isa()) */
const char *matmul_q_path(void);
#endif
