/* kernels/aqlm.h: AQLM additive multi-codebook weights (DTYPE_AQLM) and their matmul.
 *
 * AQLM (Egiazarian et al., "Extreme Compression of Large Language Models via Additive
 * Quantization", ICML 2024, arXiv 2401.06118; REFERENCE.md C6; Vahe1994/AQLM
 * inference_lib/src/aqlm: QuantizedLinear, utils._dequantize_weight).
 *
 * Legend: W is [N rows = outputs][K columns = inputs] (ggml ne = [K, N]); M = num_codebooks;
 * B = nbits_per_codebook (2^B vectors per codebook); gi = in_group_size, go = out_group_size;
 * O = N/go output groups; J = K/gi input groups; d = go·gi values per codebook vector.
 *
 * Value of a weight, row n = o·go + i, column k = j·gi + c:
 *   w[n][k] = s[o] · (C[0][q[o][j][0]][i][c] + C[1][q[o][j][1]][i][c] + ... + C[M−1][...][i][c])
 * summed in fp32 in codebook order, then one fp32 multiply by the scale (the embedding-bag sum,
 * then .mul(scales), of _dequantize_weight). Every fast path dequantizes with exactly these
 * operations, so only the order of the dot-product sums differs from aqlm_matmul_ref.
 *
 * In-memory layout of a DTYPE_AQLM tensor (one buffer t->data, tensor_nbytes() long; struct
 * tensor: q_bits = B, q_group = gi, q_ncb = M, q_out_group = go):
 *  1. codes [O][J][M], unsigned, one byte each when B <= 8, else uint16 (the checkpoint's int8 /
 *     int16 choice, without its wrap to negative values). tensor_row(t, o) is output group o's
 *     codes (tensor_row_bytes() = J·M·(1 or 2) bytes).
 *  2. at qtensor_side_offset(t) (a multiple of 64): codebooks fp32 [M][2^B][go][gi], then
 *     scales fp32 [O].
 * Checkpoints (eval/hf.c, quant/aqlm.c) store the codebooks and scales as fp16, which fp32 holds
 * exactly, so a file and the tensor it loads into dequantize to the same weights.
 * Bits per weight of the file: M·B/(go·gi) for the codes, plus 16·M·2^B·d/(N·K) for the codebooks
 * and 16/(go·K) for the scales (1x16 g8: 2 + 2^23/(N·K) + 16/K).
 *
 * Matmul (aqlm_matmul), y [T][N] = x [T][K] · Wᵀ:
 *  - decoding (T <= AQLM_LUT_MAX_T) with B <= 8 and M·2^B·go <= N ("2x8", "1x8", small
 *    codebooks): per-token lookup tables L[t][j][m][c][i] = Σ_c' x[t][j·gi + c']·C[m][c][i][c'],
 *    then y[t][o·go + i] = s[o]·Σ_j Σ_m L[t][j][m][q[o][j][m]][i] (j, then m, ascending): M·K/gi
 *    table reads per output instead of K multiply-adds, and the weights are never expanded.
 *  - otherwise ("1x16", prefill): matmul.c's blocked GEMM, whose per-panel dequantizer
 *    (kernels/matmul_impl.h) expands one K block of each panel row with the exact formula above.
 * Speed, one core (AVX-512 machine shared with other jobs), a 2048×2048 weight, milliseconds
 * per call (fp32 weights in brackets):
 *   T = 1:   2x8g8 0.65, 1x8g4 0.49, 1x16g8 4.2  (0.41)
 *   T = 4:   2x8g8 2.6,  1x8g4 2.0,  1x16g8 4.3  (0.53)   the GEMM path: 3.1 and 2.4 at T <= 4
 *   T = 64:  2x8g8 5.6,  1x8g4 4.8,  1x16g8 6.8  (4.2)
 *   T = 512: 2x8g8 26.4, 1x8g4 24.1, 1x16g8 27.4 (25.8)
 * 1x16 dequantizes from random reads of a 2 MiB codebook (the reason the reference's CPU kernel
 * covers Kx8 only); at large T the dequantization is amortised over the tokens.
 * Numerics: |aqlm_matmul − aqlm_matmul_ref| <= 2·(K + M·K/gi + gi + 4)·2⁻²⁴·|s|·Σ_m Σ_k |C_m·x|
 * per output (the table path sums per group and codebook before scaling, the GEMM only reorders
 * the k sum); tests/test_aqlm.c checks it.
 * Threads split output groups (and the table build splits input groups): every value is computed
 * by one thread in a fixed order, so results do not depend on the thread count. */
#ifndef KERNELS_AQLM_H
#define KERNELS_AQLM_H
#include "kernels/tensor.h"

#define AQLM_MAX_CODEBOOKS 16
#define AQLM_MAX_NBITS 16
#define AQLM_MAX_GROUP 64    /* in_group_size and out_group_size */
#define AQLM_LUT_MAX_T 4     /* tokens at or below: the lookup-table path (when it applies) */

/* ===== geometry ===== */

/* 0 when the scheme can hold an N×K weight: 1 <= M <= 16, 1 <= B <= 16, 1 <= gi, go <= 64,
 * gi | K, go | N, and the codebooks (M·2^B·go·gi floats) below 2^28 values; -1 with a message
 * naming `what` otherwise */
int aqlm_check_layout(const char *what, int64_t K, int64_t N, int M, int B, int in_group,
                      int out_group);
/* fill t as an N×K AQLM tensor (ne = [K, N]), data NULL; -1 with a message on a bad layout */
int aqlm_tensor_init(struct tensor *t, const char *name, int64_t K, int64_t N, int M, int B,
                     int in_group, int out_group);
/* bytes of codes, offset of the codebooks, bytes of codebooks + scales (the qtensor_* hooks) */
size_t aqlm_row_bytes(const struct tensor *t);
size_t aqlm_side_offset(const struct tensor *t);
size_t aqlm_side_bytes(const struct tensor *t);

static inline int64_t aqlm_n_out_groups(const struct tensor *t) {
    return tensor_nrows(t) / t->q_out_group;
}
static inline int64_t aqlm_n_in_groups(const struct tensor *t) { return t->ne[0] / t->q_group; }
static inline int64_t aqlm_codebook_size(const struct tensor *t) { return (int64_t)1 << t->q_bits; }
/* the codebooks [M][2^B][go][gi] and scales [O] of t */
static inline float *aqlm_codebooks(const struct tensor *t) {
    return (float *)((char *)t->data + aqlm_side_offset(t));
}
static inline float *aqlm_scales(const struct tensor *t) {
    return aqlm_codebooks(t) + (size_t)t->q_ncb * (size_t)aqlm_codebook_size(t) *
                                   (size_t)t->q_out_group * (size_t)t->q_group;
}
/* code of output group o, input group j, codebook m (layout 1.) */
static inline unsigned aqlm_code_get(const struct tensor *t, int64_t o, int64_t j, int m) {
    const size_t i =
        ((size_t)o * (size_t)aqlm_n_in_groups(t) + (size_t)j) * (size_t)t->q_ncb + (size_t)m;
    return t->q_bits <= 8 ? ((const uint8_t *)t->data)[i] : ((const uint16_t *)t->data)[i];
}
static inline void aqlm_code_set(const struct tensor *t, int64_t o, int64_t j, int m, unsigned q) {
    const size_t i =
        ((size_t)o * (size_t)aqlm_n_in_groups(t) + (size_t)j) * (size_t)t->q_ncb + (size_t)m;
    if (t->q_bits <= 8) ((uint8_t *)t->data)[i] = (uint8_t)q;
    else ((uint16_t *)t->data)[i] = (uint16_t)q;
}

/* row n dequantized (the oracle's formula above) */
void aqlm_row_to_f32(const struct tensor *t, int64_t n, float *dst);

/* ===== matmul ===== */

/* y [n_tok][N] = x [n_tok][K]·Wᵀ (the contract of kernels/matmul.h; matmul() forwards here) */
int aqlm_matmul(float *y, const float *x, const struct tensor *w, int n_tok);
/* the same with the caller's planned scratch (kernels/matmul.h), and the bytes it takes; 0, or -1
 * with a message when scratch cannot be had */
struct kscratch;
int aqlm_matmul_ws(float *y, const float *x, const struct tensor *w, int n_tok,
                   struct kscratch *ws);
size_t aqlm_matmul_scratch(const struct tensor *w, int n_tok, int n_threads);
/* scalar oracle: each row dequantized by aqlm_row_to_f32, then a plain fp32 dot in k order */
void aqlm_matmul_ref(float *y, const float *x, const struct tensor *w, int n_tok);
/* the two fast paths, whatever n_tok (tests, benchmarks): the lookup tables (-1 when B > 8 or out
 * of memory), and
 * the dequantizing GEMM on a named ISA ("generic", "avx2", "avx512"; -1 when unknown or out of
 * memory) */
int aqlm_matmul_lut(float *y, const float *x, const struct tensor *w, int n_tok);
int aqlm_matmul_gemm(float *y, const float *x, const struct tensor *w, int n_tok, const char *isa);
/* the path aqlm_matmul's GEMM takes (kernels/cpu.h; its lookup tables are plain C) */
const char *aqlm_matmul_path(void);
#endif
