/* kernels/matmul_i8.h: Y = X·Wᵀ with int8 activations ("int8 compute"): each row of X is quantized
 * on the fly, integer codes are multiplied exactly, and the scales are applied per block.
 *
 *   x: fp32 [n_tok][K], w: [N][K] of a supported dtype, y: fp32 [n_tok][N] (as kernels/matmul.h)
 *
 * Semantics per weight type (the oracle, matmul_i8_ref):
 *  - Q8_0, Q4_0, Q5_0 (llama.cpp's CPU vec_dot with Q8_0 activations): each row of x is cut into
 *    blocks of 32 and quantized as ggml's quantize_row_q8_0_ref (d = amax/127 stored as fp16,
 *    q = roundf(x·(1/d)), i8_quantize_q8_0 below); per block b, sumi = Σ q_w·q_x with q_w the
 *    signed weight code (Q4_0: nibble − 8, Q5_0: 5-bit − 16) and
 *        y = Σ_b (fp16(d_w)·fp16(d_x))·sumi          (fp32, blocks in order, no FMA)
 *  - Q4_1, Q5_1 (llama.cpp pairs them with Q8_1: the same q and d plus s = fp16(d·Σq)):
 *        y = Σ_b ((d_w·d_x)·sumi + m_w·s_x)          (q_w the unsigned code)
 *  - I8ROW (LLM.int8 W8A8): x quantized per token, d_x = amax/127 over the row, q = roundf(x/d_x);
 *        y = (d_w·d_x)·Σ_k q_w·q_x  with d_w = SCB[n]·(1/127) (BNB_INT8_RECIP)
 *  - QINT (GPTQ-style groups, bits 2..8, zeros): x gathered through q_perm into stored order,
 *    quantized per token as I8ROW; per group g, sumi_g = Σ q·q_x − z_g·Σ q_x and
 *        y = Σ_g (d_g·d_x)·sumi_g                    (= d_x·Σ_g d_g·sumi_g up to rounding)
 * Integer sums are exact (K <= 65536 for I8ROW and per-channel QINT: matmul_i8_tensor_ok), and the
 * fast path applies the same fp32 operations in the same order per output, so matmul_i8 ==
 * matmul_i8_ref bit for bit on every ISA and thread count (tests/test_i8.c).
 * Differences from llama.cpp: ggml's SIMD quantize_row_q8_0 uses 127/amax and round-half-even
 * (the _ref we follow uses 1/d and roundf), and its SIMD dot products sum blocks in vector lanes;
 * both change the last bits only. */
#ifndef KERNELS_MATMUL_I8_H
#define KERNELS_MATMUL_I8_H
#include "kernels/tensor.h"

/* the arithmetic of the model's matmuls (struct fwd_state.compute, --compute) */
enum compute_dtype {
    COMPUTE_FP32, /* fp32 activations, weights dequantized exactly (the default) */
    COMPUTE_FP16, /* matmul inputs and outputs rounded to fp16 (RNE), fp32 accumulation */
    COMPUTE_BF16, /* the same with bf16 */
    COMPUTE_INT8, /* matmul_i8 where the weight type allows it, else fp32 */
    COMPUTE_A8, /* per-token symmetric int8 activations of the block linears (kernels/act_quant.h) */
    COMPUTE_A4, /* the same at int4 (W4A4 / W8A4) */
    COMPUTE_COUNT
};
/* "fp32", "fp16", "bf16", "int8", "a8", "a4" */
const char *compute_name(enum compute_dtype c);
/* by name (case-insensitive); -1 when unknown (no message) */
int compute_from_name(const char *name);

/* Q8_1 (ggml block_q8_1): Q8_0 plus s = fp16(d·Σq), the activations of Q4_1/Q5_1 dot products */
struct block_q8_1 {
    lb_fp16 d, s;
    int8_t qs[QK8_0];
};
_Static_assert(sizeof(struct block_q8_1) == 4 + QK8_0, "block_q8_1 size");

/* ggml quantize_row_q8_0_ref / quantize_row_q8_1_ref: k a multiple of 32 */
void i8_quantize_q8_0(const float *x, struct block_q8_0 *y, int64_t k);
void i8_quantize_q8_1(const float *x, struct block_q8_1 *y, int64_t k);

/* Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, I8ROW, QINT */
bool matmul_i8_supported(enum dtype t);
/* supported type and, for I8ROW / per-channel QINT, K <= 65536 (exact int32 sums) */
bool matmul_i8_tensor_ok(const struct tensor *w);

/* scalar oracle (the semantics above); w must pass matmul_i8_tensor_ok */
void matmul_i8_ref(float *y, const float *x, const struct tensor *w, int n_tok);
/* fast path (AVX-512 VNNI / AVX2 / generic by kernels_isa(), OpenMP over outputs); 0, or -1 with
 * a message when scratch memory cannot be had. Call from outside any parallel region. */
int matmul_i8(float *y, const float *x, const struct tensor *w, int n_tok);
/* the same with the caller's planned scratch (kernels/matmul.h), and the bytes it takes (0 for a
 * weight matmul_i8 does not take) */
struct kscratch;
int matmul_i8_ws(float *y, const float *x, const struct tensor *w, int n_tok,
                 struct kscratch *ws);
size_t matmul_i8_scratch(const struct tensor *w, int n_tok, int n_threads);
/* the same on a named path ("generic", "avx2", "avx512"); -2 when the CPU lacks it (tests) */
int matmul_i8_isa(float *y, const float *x, const struct tensor *w, int n_tok, const char *isa);
/* y [T][N] = (dx[t]·dw[j])·Σ_k qx[t][k]·qw[j][k] from codes the caller quantized (kernels/
 * act_quant.h: act_matmul, act_matmul_i4): int8 rows of K, or with i4 4-bit codes packed two per
 * byte (rows of K/2 bytes, K even); 0 < K <= 65536. The I8ROW path with one segment: the same
 * tiles, panels and thread split; equal to act_matmul_ref bit for bit. isa NULL: the current
 * path (AVX2 with an int8 activation code of −128: the generic tile). 0, -1 with a message when scratch cannot be had, -2 when the CPU lacks isa. */
int matmul_i8_codes(float *y, const void *qx, const float *dx, const void *qw, const float *dw,
                    int64_t T, int64_t N, int64_t K, bool i4, const char *isa);
/* the path matmul_i8 takes: "avx512-vnni", "avx2" or "generic" */
const char *matmul_i8_path(void);
#endif
