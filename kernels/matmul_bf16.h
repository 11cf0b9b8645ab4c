/* kernels/matmul_bf16.h: Y = X·Wᵀ in bf16 arithmetic ("--compute bf16"): bf16 inputs, fp32
 * accumulation, the operation of the AVX512-BF16 instruction VDPBF16PS.
 *
 *   x: fp32 [n_tok][K], w: [N][K] f32, f16 or bf16, y: fp32 [n_tok][N] (as kernels/matmul.h)
 *
 * Semantics (the oracle, matmul_bf16_ref). Every input value v becomes b(v) = daz(rne(v)): rounded
 * to bf16 to nearest even (kernels/dtype.h's lb_f32_to_bf16; a bf16 weight is taken as stored, an
 * f16 one through its exact fp32 value), then a bf16 denormal is replaced by a zero of its sign
 * (VDPBF16PS treats denormal inputs as zero). With P = ceil(K/2) pairs (an odd K gets a zero
 * pair partner), per output
 *     acc = +0;  for p = 0 .. P-1:
 *         acc = ftz(fma(b(x[2p+1]), b(w[2p+1]), acc));   acc = ftz(fma(b(x[2p]), b(w[2p]), acc))
 *     y = acc
 * fma rounds once to fp32 (nearest even) and ftz replaces a result below 2^-126 in magnitude by a
 * zero of its sign: the order (odd element of the pair first), the single rounding per product and
 * the flushes are Intel's SDM pseudocode of VDPBF16PS ("srcdest.fp32[i] += src1.bf16[2i+1] ·
 * src2.bf16[2i+1]; srcdest.fp32[i] += src1.bf16[2i] · src2.bf16[2i]", DAZ in, FTZ out, RNE,
 * MXCSR ignored), checked on a Xeon with avx512_bf16 (family 6 model 207) against 2 × 32M lanes
 * of random operands, one run in the denormal range (the other order, a pair sum or no flush
 * between the two steps differ in 1-10% of lanes); AMD's implementation (Zen 4) is not checked
 * here: tests/test_bf16.c compares the instruction with the ref on any machine it runs on. One
 * chain per output over k in pair order: no horizontal sum, so y does not depend on n_tok, the
 * tiling or the thread count. The output stays fp32 (not rounded to bf16).
 * Not probed: an exact result just below 2^-126 that rounds up to it (the ref and the emulations
 * round with fp32 denormals, then flush, giving 2^-126; the instruction could flush it): no such
 * value arises at model scales, and the random check above met none that differed.
 *
 * Paths (kernels/cpu.h): AVX512-BF16 (VDPBF16PS, when cpu_bf16()), AVX-512F and AVX2 (the same
 * operation emulated with two FMAs and explicit flushes), generic C (fmaf). All give the bits of
 * matmul_bf16_ref, so results do not depend on the machine (tests/test_bf16.c). */
#ifndef KERNELS_MATMUL_BF16_H
#define KERNELS_MATMUL_BF16_H
#include "kernels/matmul.h"
#include "kernels/tensor.h"

/* f32, f16 and bf16 weights (the others stay on matmul's fp32 path under --compute bf16) */
bool matmul_bf16_supported(enum dtype t);

/* the oracle (semantics above), one thread */
void matmul_bf16_ref(float *y, const float *x, const struct tensor *w, int n_tok);
/* the fast path on the current path; 0, or -1 with a message when its scratch cannot be had.
 * Call from outside any parallel region. */
int matmul_bf16(float *y, const float *x, const struct tensor *w, int n_tok);
/* the same with the caller's planned scratch (kernels/matmul.h), and the bytes it takes (0 for an
 * unsupported weight) */
int matmul_bf16_ws(float *y, const float *x, const struct tensor *w, int n_tok,
                   struct kscratch *ws);
size_t matmul_bf16_scratch(const struct tensor *w, int n_tok, int n_threads);
/* the same on a named path ("generic", "avx2", "avx512", "avx512bf16"); -2 when the CPU lacks it */
int matmul_bf16_isa(float *y, const float *x, const struct tensor *w, int n_tok, const char *isa);
/* the path matmul_bf16 takes: "avx512bf16", "avx512", "avx2" or "generic" */
const char *matmul_bf16_path(void);
#endif
