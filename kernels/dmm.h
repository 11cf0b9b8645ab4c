/* kernels/dmm.h: the float64 multiply-accumulate tile of the dense solvers (quant/gptq.c's Cholesky
 * factor, triangular inverse and lazy-batch update):
 *
 *   S[i][j] ← S[i][j] + A[i][p]·B[p][j]   (or − with sub), for p = 0, 1 .. k−1 in order,
 *   for 0 <= i < m, 0 <= j < n;  A [m][k] (row stride lda), B [k][n] (ldb), S (lds).
 *
 * Each step is one double multiply rounded, then one add (subtract) rounded: no fused
 * multiply-add. So every path (avx512, avx2, generic) and the scalar oracle dmm_acc_ref give the
 * same bits, and a caller's loop written as `s += a * b` (the tree builds with -ffp-contract=off)
 * gives the same bits as this kernel doing it. Splitting p into consecutive calls does not change a
 * bit either (the running value is S itself).
 *
 * Speed: the avx512 path holds a 4×16 tile of S in 8 zmm registers (per p: 2 loads of B, 4
 * broadcasts of A, 8 multiplies, 8 adds), the avx2 path a 4×8 tile; B is packed in slices of 128
 * values of p by 256 columns (L2), A's rows in 4-row strips. A separate multiply and add run at
 * about 60% of the FMA rate on AMD EPYC (Zen 4: 35 of 57 GFLOP/s per thread in a tile loop, about
 * 30 in dmm_acc with its packing); a fused multiply-add would be faster and change the bits.
 *
 * Single-threaded, no allocation; A, B and S must not overlap S's written elements. m, n or k <= 0
 * do nothing. */
#ifndef KERNELS_DMM_H
#define KERNELS_DMM_H
#include <stdbool.h>
#include <stdint.h>

/* the scalar oracle: element by element, p in order */
void dmm_acc_ref(int64_t m, int64_t n, int64_t k, const double *a, int64_t lda, const double *b,
                 int64_t ldb, double *s, int64_t lds, bool sub);

/* the fast path on the ISA cpu_isa() names (kernels/cpu.h; generic when this file has none) */
void dmm_acc(int64_t m, int64_t n, int64_t k, const double *a, int64_t lda, const double *b,
             int64_t ldb, double *s, int64_t lds, bool sub);

/* the path dmm_acc takes here ("avx512", "avx2", "generic") */
const char *dmm_path(void);

/* dmm_acc on the path named isa ("generic", "avx2", "avx512"), for tests and benchmarks; -1 with
 * a message when isa is unknown or this CPU lacks it (S untouched) */
int dmm_acc_isa(int64_t m, int64_t n, int64_t k, const double *a, int64_t lda, const double *b,
                int64_t ldb, double *s, int64_t lds, bool sub, const char *isa);

#endif
