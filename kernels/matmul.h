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

/* ---- scratch: planned by the caller, never an abort ----
 * The fast kernels need temporary memory that depends on their input (packed X and W panels,
 * dequantized rows, quantized activations, lookup tables, attention scores). A caller that runs
 * many calls (eval/forward.c) sizes one buffer up front with the *_scratch functions (the bytes a
 * call with that weight, token count and thread count takes; 0 = none) and passes it to the
 * *_ws calls: a call whose need fits allocates nothing. Without one (NULL, or the plain calls),
 * or when it is too small (more threads than planned), the call allocates for itself. Every
 * kernel reports a failed allocation the same way: -1 with a message (err_last()), y untouched
 * or partly written, never an abort and never a silent fallback to another summation order. */
struct kscratch {
    void *p; /* 64-byte aligned, `bytes` long; {NULL, 0}: none */
    size_t bytes;
};
/* an owned workspace of `bytes` (0: none); -1 with a message when out of memory */
int kscratch_init(struct kscratch *ws, size_t bytes);
void kscratch_release(struct kscratch *ws);
/* for the kernels: ws->p when it holds `bytes`, else a new 64-byte aligned block (*owned = it:
 * free() it after the call); NULL with a message naming `what` when out of memory */
void *kscratch_take(struct kscratch *ws, size_t bytes, void **owned, const char *what);
/* tests: after n more allocations by kscratch_take, every one fails (n < 0: never) */
void kscratch_fail_after(int n);

/* the fast path: 0, or -1 with a message when its scratch cannot be had */
int matmul(float *y, const float *x, const struct tensor *w, int n_tok);
int matmul_ws(float *y, const float *x, const struct tensor *w, int n_tok, struct kscratch *ws);
/* the scratch bytes matmul_ws(w, n_tok) takes on n_threads threads on the current path */
size_t matmul_scratch(const struct tensor *w, int n_tok, int n_threads);

/* kernels_isa(): the instruction set the fast paths use here (kernels/cpu.h) */

/* the machine's measured fp32 FMA peak in GFLOP/s on n_threads threads (a register-only FMA
 * loop of about `seconds`, the widest vector ISA the CPU has) */
double kernels_fma_peak_gflops(int n_threads, double seconds);
#endif
