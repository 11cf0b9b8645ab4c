/* kernels/gram.h: the Gram matrix (SYRK) H += XᵀX of fp32 rows into a float64 upper triangle, for
 * the GPTQ Hessian (quant/gptq.c accumulates Σ_t x_tᵀx_t over calibration tokens).
 *
 *   x: fp32 [T][K], row-major (T tokens of K features)
 *   H: float64 [K][K], row-major; only the upper triangle (j >= i) is read and written:
 *      H[i][j] += Σ_t x[t][i] · x[t][j]   for 0 <= i <= j < K
 *   The strict lower triangle (j < i) is never touched.
 *
 * gram_acc_ref is the scalar oracle: each product (double)x_ti·(double)x_tj (exact in double),
 * added to H[i][j] one token at a time in t order, in double.
 *
 * gram_acc is the fast path (runtime-dispatched AVX-512 / AVX2 / generic, the path kernels_isa()
 * names, OpenMP over tiles of the triangle). Tokens are taken in chunks of GRAM_CHUNK counted from
 * the first row of the call (the last one may be shorter); for each chunk and each element, the
 * chunk's sum s = Σ_{t in chunk} x_ti·x_tj is one fp32 FMA chain in t order (a multiply and an add
 * on the generic path), then converted to double (exactly) and added to H[i][j], chunks in order.
 *
 * Error bound. With S_ij = Σ_t |x_ti·x_tj| over the call's rows, H0 the value of H[i][j] before
 * the call, u = 2⁻²⁴, v = 2⁻⁵³:
 *   |gram_acc − gram_acc_ref| <= (GRAM_CHUNK + 2)·u·S_ij + 2·(T + 2)·v·(|H0| + S_ij) + T·2⁻¹⁴⁸
 * (the fp32 chain of at most GRAM_CHUNK terms; both sides' double sums; the last term counts fp32
 * products below 2⁻¹²⁶, i.e. |x| below about 1e-19, which underflow in fp32 but not in double).
 * For GRAM_CHUNK = 256 the first term is 1.5e-5 relative to S_ij. Valid for finite x with
 * |x| < 2^59 (a chunk's fp32 sum cannot overflow); NaN and Inf propagate as in the oracle.
 *
 * Determinism: each element's value depends only on (x, T, K, H0) and the path (avx512, avx2,
 * generic differ in the last bits of the fp32 chunk sums): never on the thread count or the
 * schedule (each tile of H is computed by one thread in a fixed order). A sequence of calls differs
 * from one call over the concatenated rows within the bound above (the chunks fall differently).
 *
 * Memory: one allocation per call, a packed copy of the rows: Kp floats per row (Kp = K rounded up
 * to the tile width: 32 on avx512, 24 avx2, 16 generic) for min(T, P) rows, where a pass of
 * P = max(GRAM_CHUNK, ⌊GRAM_PACK_MAX_BYTES / (4·Kp) / GRAM_CHUNK⌋·GRAM_CHUNK) rows is as many
 * whole chunks as fit in GRAM_PACK_MAX_BYTES (64 MiB), at least one; so at most
 * max(64 MiB, 1 KiB·Kp), e.g. 32 MiB for K = 4096, T = 2048 and 54 MiB for K = 11008 (passes of
 * 1280 rows). Nothing is allocated in the loops.
 *
 * H must not alias x. Call from outside any OpenMP parallel region. */
#ifndef KERNELS_GRAM_H
#define KERNELS_GRAM_H
#include <stdint.h>

/* tokens per fp32 chunk (the C of the error bound) */
#define GRAM_CHUNK 256
/* cap of the packed copy of x */
#define GRAM_PACK_MAX_BYTES ((int64_t)64 << 20)

/* the scalar oracle (no allocation, single thread); T <= 0 or K <= 0 does nothing */
void gram_acc_ref(double *H, const float *x, int64_t T, int64_t K);

/* the fast path on the ISA kernels_isa() names (generic when this file has no kernel for it).
 * 0 on success (T <= 0 or K <= 0: nothing to do); -1 with an err() message when the packed copy
 * of x cannot be allocated (H untouched). */
int gram_acc(double *H, const float *x, int64_t T, int64_t K);
/* the path gram_acc takes here ("avx512", "avx2", "generic") */
const char *gram_path(void);

/* gram_acc on the path named isa ("generic", "avx2", "avx512") with the packed copy of x capped at
 * pack_bytes (0: GRAM_PACK_MAX_BYTES; a pass still holds at least one chunk), for tests and
 * benchmarks. The result is the same bit for bit whatever pack_bytes. -1 with a message when isa
 * is unknown or this CPU lacks it, or the allocation fails (H untouched). */
int gram_acc_isa(double *H, const float *x, int64_t T, int64_t K, const char *isa,
                 int64_t pack_bytes);
#endif
