/* kernels/nf4.h: bitsandbytes weights: 4-bit NF4 / FP4 blockwise (DTYPE_NF4, DTYPE_FP4) and
 * LLM.int8 rows (DTYPE_I8ROW), plus the pieces of bitsandbytes' double quantization a loader needs.
 * Source: bitsandbytes-foundation/bitsandbytes @95f9af30, functional.py (get_4bit_type,
 * create_dynamic_map, quantize_4bit, dequantize_4bit), backends/default/ops.py (the torch
 * reference kernels), _ops.py (int8_vectorwise_dequant); REFERENCE.md C4.
 *
 * Legend: W is [N rows][K columns] (ggml ne = [K, N]); bs = blocksize (t->q_group, 64 by default;
 * bitsandbytes allows 32..4096, powers of two); the tensor is flattened row-major, n = N·K.
 *
 * NF4 / FP4 value: w[n][k] = table[code] · absmax[(n·K + k) / bs]   (one fp32 multiply)
 *   Blocks run over the FLATTENED tensor, so a block may straddle two rows (K = 172: most do).
 *   table = nf4_table or fp4_table below (bitsandbytes' own arrays, indexed by the 4-bit code).
 *   absmax is fp32; with double quantization the file stores it as 8-bit codes and the loader
 *   rebuilds it once (bnb_absmax_dequant): absmax[i] = nested_code[q[i]] · nested_absmax[i / 256]
 *   + offset, in fp32, in that order (functional.dequantize_4bit + dequantize_blockwise).
 *   bitsandbytes then rounds w to quant_state.dtype (fp16/bf16) before its matmul; we keep the fp32
 *   product (identical for fp32 models; else within 2⁻⁹ relative of it).
 * LLM.int8 value: w[n][k] = (q[n][k] · SCB[n]) · 7.874015718698502e-3f   (two fp32 multiplies,
 *   _ops.py int8_vectorwise_dequant: A * stats * 7.874015718698502e-3; q ∈ [−127, 127])
 *
 * In-memory layout (one buffer, t->data):
 *  DTYPE_NF4 / DTYPE_FP4:
 *   1. codes: N rows of ceil(K/2) bytes; byte i of row n holds column 2i in its HIGH nibble and
 *      column 2i+1 in its low nibble (bitsandbytes' order: element 2j high, 2j+1 low). For even K
 *      the rows laid end to end are exactly the checkpoint's packed stream (uint8 [(n+1)/2, 1]); for
 *      odd K each row starts on a byte (the loader re-cuts the stream; a pad nibble is 0).
 *   2. at qtensor_side_offset(t) (a multiple of 8): fp32 absmax[ceil(n / bs)].
 *   Bits per weight: 4 + 32/bs (4.5 at bs = 64) in memory; the file with double quant holds
 *   4 + 8/bs + 32/(256·bs) (≈ 4.127 at bs = 64).
 *  DTYPE_I8ROW:
 *   1. codes: N rows of K int8;  2. at qtensor_side_offset(t): fp32 SCB[N] (the row absmax). */
#ifndef KERNELS_NF4_H
#define KERNELS_NF4_H
#include "kernels/tensor.h"

/* bitsandbytes get_4bit_type("nf4"): create_normal_map(0.9677083), as fp32 */
extern const float nf4_table[16];
/* get_4bit_type("fp4") in bit-pattern order: [0, 0.0625, 8, 12, 4, 6, 2, 3] / 12 for codes 0..7,
 * the negatives for 8..15 (bit 3 = sign), computed in fp32. Code 8 is +0.0: the Python list holds
 * the integer -0. */
extern const float fp4_table[16];
/* the LLM.int8 dequantization constant 1/127 as bitsandbytes writes it (_ops.py) */
#define BNB_INT8_RECIP 7.874015718698502e-3f

/* blocks over n flattened elements */
static inline int64_t nf4_n_blocks(int64_t n, int64_t bs) { return (n + bs - 1) / bs; }
/* 1 when bs is a blocksize bitsandbytes accepts for 4-bit (32, 64, ..., 4096) */
bool nf4_blocksize_ok(int64_t bs);

/* fill t as an N×K NF4/FP4 tensor (type DTYPE_NF4 or DTYPE_FP4) with blocksize bs, data NULL;
 * -1 with a message when bs is not a valid blocksize */
int nf4_tensor_init(struct tensor *t, const char *name, enum dtype type, int64_t K, int64_t N,
                    int64_t bs);
/* fill t as an N×K LLM.int8 tensor, data NULL */
int i8row_tensor_init(struct tensor *t, const char *name, int64_t K, int64_t N);
/* side data: NF4/FP4 absmax [nblocks], I8ROW SCB [N] */
static inline float *nf4_absmax(const struct tensor *t) {
    return (float *)((char *)t->data + qtensor_side_offset(t));
}

/* code of column k of a packed NF4/FP4 row */
static inline unsigned nf4_code_get(const uint8_t *row, int64_t k) {
    return k & 1 ? row[k / 2] & 15u : row[k / 2] >> 4;
}

/* after nf4_tensor_init: give t a zeroed buffer of tensor_nbytes(t) (owned by the caller) and
 * fill it from bitsandbytes' flat packed stream (element 2j in the high nibble of byte j,
 * ceil(N·K/2) bytes) and the fp32 absmax [nf4_n_blocks(N·K, bs)] */
void nf4_fill(struct tensor *t, void *buf, const uint8_t *stream, const float *absmax);
/* after i8row_tensor_init: the same from int8 [N][K] and SCB [N] */
void i8row_fill(struct tensor *t, void *buf, const int8_t *q, const float *scb);

void nf4_row_to_f32(const struct tensor *t, int64_t n, float *dst);
void i8row_row_to_f32(const struct tensor *t, int64_t n, float *dst);

/* ===== double quantization (bitsandbytes quantize_blockwise with the dynamic map) ===== */

/* create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8), derived from the Python
 * definition with its fp32 arithmetic: for i = 0..6, the 2^i midpoints of torch.linspace(0.1, 1,
 * 2^i + 1) (fp32, torch's CPU formula start + step·j below the halfway index, end − step·(steps −
 * j − 1) from it), each times ±fl32(10^(i−6)); then 0 and 1.0; sorted ascending. 256 entries. */
void bnb_dynamic_map(float code[256]);

/* absmax[i] = code[q[i]] · absmax2[i / nested_bs] + offset, fp32 (dequantize_blockwise then
 * `absmax += offset`), for i < n */
void bnb_absmax_dequant(const uint8_t *q, int64_t n, const float *code, const float *absmax2,
                        int64_t nested_bs, float offset, float *absmax);
#endif
