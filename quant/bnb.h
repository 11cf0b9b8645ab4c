/* quant/bnb.h: bitsandbytes quantization, reproduced from the library's reference (torch)
 * kernels: bitsandbytes @95f9af30 backends/default/ops.py quantize_4bit / quantize_blockwise,
 * functional.py quantize_4bit (compress_statistics) and Int8Params._quantize +
 * int8_vectorwise_quant (REFERENCE.md C4).
 *
 * 4-bit (NF4/FP4), over the flattened tensor (n = N·K elements, row-major):
 *   blocks of bs (64); absmax_b = max |x| over block b; full blocks scale by the fp32 reciprocal
 *   x·(1/max(absmax_b, 1e-38)), a trailing partial block divides x/max(absmax, 1e-38) and stores
 *   the clamped absmax (as the reference does); clamp to [−1, 1]; code = bucketize(value,
 *   midpoints) with right=False (a value equal to a midpoint takes the lower code), midpoints
 *   (c_i + c_{i+1})/2 in fp32 of the SORTED table; FP4 maps the sorted index back to its bit
 *   pattern through argsort(fp4_table) (stable order, so +0 (code 0) precedes the second zero,
 *   code 8: values in (−0.0026, 0] get code 0, values in (0, 0.0026] get code 8; both are 0.0).
 *   Packing: element 2j in the high nibble of byte j, an odd count padded with code(0).
 * Double quant (compress_statistics): offset = mean(absmax) (fp32; we sum in double, torch in its
 *   fp32 cascade: the offset may differ in the last bit, the file stores ours); then
 *   quantize_blockwise(absmax − offset, blocksize 256, code = create_dynamic_map()) by the same
 *   bucketize rule, giving uint8 codes and fp32 nested_absmax per 256 absmax values. The weights
 *   are then used with absmax rebuilt from those codes (kernels/nf4.h bnb_absmax_dequant), as
 *   bitsandbytes does at every matmul. The native CPU library quantizes the absmax with a
 *   65536-bin lookup table and CUDA with a binary search: they can differ from the reference
 *   when a value lies within 2⁻¹⁵ of a midpoint.
 * LLM.int8 rows (Int8Params): the weight is cast to fp16 first; SCB_n = max_k |w16[n][k]| (fp32);
 *   q = round(w16 · (127/SCB_n)) as int8 (an all-zero row gives q = 0). No outlier columns: the
 *   0.0 threshold Int8Params uses for weights (the 6.0 threshold applies to activations). */
#ifndef QUANT_BNB_H
#define QUANT_BNB_H
#include "kernels/nf4.h"

#define BNB_NESTED_BLOCKSIZE 256

/* one 4-bit tensor as bitsandbytes holds it (what a checkpoint stores) */
struct bnb_state {
    enum dtype type; /* DTYPE_NF4 or DTYPE_FP4 */
    int64_t K, N, bs;
    int64_t n_blocks;   /* ceil(N·K / bs) */
    uint8_t *packed;    /* [(N·K + 1)/2] the flat stream */
    float *absmax;      /* [n_blocks] the fp32 absmax the weights use (rebuilt when nested) */
    bool nested;
    uint8_t *qabsmax;   /* nested: [n_blocks] codes of absmax − offset */
    float *absmax2;     /* nested: [ceil(n_blocks / 256)] */
    float offset;       /* nested: mean of the absmax */
    float code2[256];   /* nested: the dynamic map */
};

#define BNB_STATE_INIT {0}

/* quantize w [N][K] (row-major fp32) with blocksize bs (64 is bitsandbytes' default), with or
 * without double quant. -1 with a message on a bad blocksize or no memory. */
int bnb_quantize_4bit(const float *w, int64_t K, int64_t N, enum dtype type, int64_t bs,
                      bool double_quant, struct bnb_state *st);
void bnb_state_release(struct bnb_state *st);
/* the in-memory DTYPE_NF4/FP4 tensor of a state: *buf owned by the caller (free()) */
int bnb_state_tensor(const struct bnb_state *st, const char *name, struct tensor *t, void **buf);

/* LLM.int8 rows: q [N][K] and scb [N] (caller-allocated) */
void bnb_quantize_int8(const float *w, int64_t K, int64_t N, int8_t *q, float *scb);

/* the reference blockwise quantizer: n values of x in blocks of bs against the sorted table
 * code[n_code] (with order[] mapping sorted index -> stored code, NULL = identity); codes into
 * q[n] (one per byte), absmax[ceil(n/bs)]. Exposed for tests. */
void bnb_quantize_blocks(const float *x, int64_t n, int64_t bs, const float *sorted_code,
                         int n_code, const uint8_t *order, uint8_t *q, float *absmax);
#endif
