/* kernels/ggml_quants.h: llama.cpp's deterministic quantizers for the GGUF block types ("gq" =
 * ggml-compatible quantizer), byte-identical with ggml's.
 *
 * Two entry points per type, as in ggml (llama.cpp de3ff81, ggml/src/ggml-quants.c):
 *  - gq_<type>_ref(x, y, n): quantize_row_<type>_ref, the data-free reference (n weights, a
 *    multiple of the block length; rows are independent, so any number of whole rows);
 *  - gq_quantize(type, src, dst, n_rows, n_per_row, imatrix): ggml_quantize_chunk, which
 *    llama.cpp's file quantizer calls. With imatrix = NULL it is the _ref result for every type
 *    except IQ4_NL (quantize_iq4_nl searches 15 scales; its _ref searches none). With an
 *    importance matrix (imatrix[n_per_row]: llama.cpp's per-column mean of x², see quant/imatrix.h)
 *    the weighted searches run instead: error Σ_j imatrix_j·sqrt(σ² + x_j²)·(x_j - x̂_j)² (Q6_K:
 *    Σ imatrix_j·(x_j - x̂_j)²), as quantize_q4_K and friends do.
 * Q8_0 ignores the imatrix (as ggml). Tested byte for byte against the prebuilt ggml of that
 * release (tests/test_quants.c holds the hashes). */
#ifndef KERNELS_GGML_QUANTS_H
#define KERNELS_GGML_QUANTS_H
#include "kernels/quants.h"

void gq_q4_0_ref(const float *x, void *y, int64_t n);
void gq_q4_1_ref(const float *x, void *y, int64_t n);
void gq_q5_0_ref(const float *x, void *y, int64_t n);
void gq_q5_1_ref(const float *x, void *y, int64_t n);
void gq_q8_0_ref(const float *x, void *y, int64_t n);
void gq_q2_k_ref(const float *x, void *y, int64_t n);
void gq_q3_k_ref(const float *x, void *y, int64_t n);
void gq_q4_k_ref(const float *x, void *y, int64_t n);
void gq_q5_k_ref(const float *x, void *y, int64_t n);
void gq_q6_k_ref(const float *x, void *y, int64_t n);
/* quantize_row_iq4_nl_ref: one scale guess per block, no search. ggml leaves the codes of an
 * all-zero block as the previous block's (uninitialized stack for the first); here they are the
 * previous block's within this call, 0 for the first (d is 0 either way, so the weights are 0). */
void gq_iq4_nl_ref(const float *x, void *y, int64_t n);
/* quantize_iq4_nl without imatrix: the scale search llama.cpp's files get (the dtype from_f32) */
void gq_iq4_nl(const float *x, void *y, int64_t n);

/* make_qp_quants (non-negative x to L in [0, nmax] under weights qw; returns the scale), shared
 * with the i-quants (kernels/iquants.c) */
float gq_make_qp_quants(int n, int nmax, const float *x, uint8_t *L, const float *qw);

/* true when gq_quantize handles type t (f32, f16, bf16, every GGUF type above and the i-quant
 * and ternary types of kernels/iquants.h, whose quantizers gq_quantize calls) */
bool gq_can_quantize(enum dtype t);
/* ggml_quantize_chunk: n_rows rows of n_per_row weights into dst (n_rows rows of
 * dtype_row_size(t, n_per_row) bytes); imatrix[n_per_row] or NULL. Returns the bytes written;
 * BUG() if t cannot be quantized or n_per_row is not a multiple of its block (callers check with
 * gq_can_quantize and dtype_row_size first). */
size_t gq_quantize(enum dtype t, const float *src, void *dst, int64_t n_rows, int64_t n_per_row,
                   const float *imatrix);
#endif
