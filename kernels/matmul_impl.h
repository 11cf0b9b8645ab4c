/* kernels/matmul_impl.h: the internal interface between matmul.c's GEMM and the fused kernels of
 * the parametric types (kernels/matmul_q.c). Not for use outside kernels/.
 *
 * matmul_q's prefill reuses matmul.c's GEMM whole (packed X micro-panels, per-unit NR-wide W
 * micro-panels, the MR×NR tile, edge tiles, thread split): the only difference is where a W
 * micro-panel's fp32 values come from. For a parametric type the driver asks the caller's row
 * dequantizer for the panel's rows (one K block of each, into a per-thread L1/L2-resident
 * buffer) and transposes them into the panel as it does f32 rows. Each weight is dequantized once
 * per unit of MT tokens (all of a 512-token prefill), not once per token tile. */
#ifndef KERNELS_MATMUL_IMPL_H
#define KERNELS_MATMUL_IMPL_H
#include "kernels/cpu.h"
#include "kernels/matmul.h"
#include "kernels/tensor.h"

/* dst[0 .. kc) = fp32 weights of stored columns [k0, k0+kc) of row n, exactly as the type's
 * row_to_f32 gives them; k0 and kc are multiples of 32; columns at or past K come out 0 */
typedef void (*mm_deq_fn)(const struct tensor *w, int64_t n, int64_t k0, int64_t kc, float *dst);

/* y [n_tok][N] = X·Wᵀ through matmul()'s blocked GEMM on path isa (the caller has checked that
 * the CPU has it: cpu_has), whatever n_tok (no GEMV switch). W's rows
 * come from deq; x is read through perm (stored column k is input column perm[k]; NULL: the
 * identity). Each y[t][n] is one fp32 FMA chain over stored columns in order, so the result does
 * not depend on the thread count. -1 with a message when isa has no kernel or the scratch cannot
 * be had (y untouched), else 0. ws: the caller's planned scratch (kernels/matmul.h), or NULL. */
int matmul_gemm_deq(float *y, const float *x, const int32_t *perm, const struct tensor *w,
                    int n_tok, enum cpu_isa isa, mm_deq_fn deq, struct kscratch *ws);
/* the scratch bytes matmul_gemm_deq takes for w and n_tok on n_threads */
size_t matmul_gemm_deq_scratch(const struct tensor *w, int n_tok, enum cpu_isa isa, int n_threads);
#endif
