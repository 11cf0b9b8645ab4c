/* kernels/matmul.h: Y = X·Wᵀ for every weight type, fp32 activations.
 *
 *   x: fp32 [n_tok][K], row-major      (K = w->ne[0], the weight's row length)
 *   w: [N][K] of any dtype              (N = w->ne[1] * ne[2] * ne[3], the output features)
 *   y: fp32 [n_tok][N], row-major; y[t][n] = Σ_k w[n][k] · x[t][k]
 *
 * matmul_ref is the scalar oracle: dequantize a row of W to fp32, then a plain dot product in
 * fp32 accumulated in index order. matmul is the fast path (runtime-dispatched AVX-512 / AVX2 /
 * generic, OpenMP across the output), which agrees with matmul_ref to a per-type tolerance.
 * Results do not depend on the thread count: each output element is computed by one thread with a
 * fixed summation order. They may differ in the last bits between n_tok <= 32 (a GEMV path
 * vectorized along K) and larger n_tok (a blocked GEMM), and between ISAs, so a sequence run in
 * pieces (prefix sharing, generation) agrees with one prefill to about 1e-5 in log-probabilities,
 * not bit for bit. Error bound against matmul_ref: 2·(K+4)·2^-24·Σ|w·x| per output.
 * y must not alias x. Call from outside any OpenMP parallel region. */
#ifndef KERNELS_MATMUL_H
#define KERNELS_MATMUL_H
#include "kernels/cpu.h"
#include "kernels/tensor.h"

void matmul_ref(float *y, const float *x, const struct tensor *w, int n_tok);
/* the same oracle with the row decoder given (matmul_q_ref, aqlm_matmul_ref use theirs) */
void matmul_ref_rows(float *y, const float *x, const struct tensor *w, int n_tok,
                     void (*row_to_f32)(const struct tensor *, int64_t, float *));
void matmul(float *y, const float *x, const struct tensor *w, int n_tok);

/* kernels_isa(): the instruction set the fast paths use here (kernels/cpu.h) */

/* the machine's measured fp32 FMA peak in GFLOP/s on n_threads threads (a register-only FMA
 * loop of about `seconds`, the widest vector ISA the CPU has) */
double kernels_fma_peak_gflops(int n_threads, double seconds);
#endif
