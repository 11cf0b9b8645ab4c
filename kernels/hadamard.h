/* kernels/hadamard.h: Hadamard matrices of order n = 2^k·m and the fast Walsh–Hadamard transform
 * over them (QuaRot's online and fused rotations, quant/rotate.h).
 *
 * H_n = H_{2^k} ⊗ H_m: Sylvester's matrix of order 2^k (H_1 = [1], H_2j = [[H_j, H_j], [H_j,
 * −H_j]]) times a base matrix of order m, m = 1 or one of the orders below; entry (a·m + b,
 * a'·m + b') = S[a][a']·M[b][b']. So H_n·H_nᵀ = n·I and R = H_n/√n is orthogonal. The base orders,
 * each a multiple of 4 with its own odd part (so the base of n, when there is one, is unique):
 *   12, 20, 44, 60, 108, 140   Paley I on the prime q = m − 1 (q ≡ 3 mod 4): H = I + [[0, 1ᵀ], [−1, Q]]
 *   28, 36                     Paley II on the prime q = m/2 − 1 (q ≡ 1 mod 4): from the conference
 *                              matrix C = [[0, 1ᵀ], [1, Q]], H = C ⊗ [[1,1],[1,−1]] + I ⊗ [[1,−1],[−1,−1]]
 *   52, 156, 172               data (kernels/had_data.c: Sloane's library through QuaRot, sha256)
 * Q is the Jacobsthal matrix Q[i][j] = χ(j − i), χ the quadratic character mod q. Shapes this
 * covers: every power of two, 288 = 8·36, 768 = 64·12, 1536 = 128·12, 5632 = 128·44 (TinyLlama's
 * MLP), 11008 = 64·172 (Llama-2-7B's), 172 (stories260K's), 13824 = 128·108, 14336 = 512·28
 * (Llama-3-8B's). Orders with another odd part (6, 10, 24·7 …) have no base: had_base is 0.
 *
 * had_rows (the fast path) computes, for each row x of n floats, y = H_n·x/√n in place: the base
 * matrix on every block of m consecutive values (fp32 sums in column order), then the 2^k-point
 * butterflies across blocks, then the scale; O(n·(m + log2 n)) per row, OpenMP over rows, each row
 * on one thread, so the result does not depend on the thread count. had_rows_ref is the oracle: the
 * explicit product Σ_j H[i][j]·x[j] in double. Each output of the fast path is m − 1 fp32 additions
 * then log2(n/m) butterflies over terms ±x_j, so |fast − ref| ≤ (m + log2(n/m) + 2)·2⁻²⁴·‖x‖₁/√n
 * (tests/test_hadamard.c checks that bound). */
#ifndef KERNELS_HADAMARD_H
#define KERNELS_HADAMARD_H
#include <stdint.h>

/* the base order m of n = 2^k·m (1 when n is a power of two), or 0 when lowbit has none */
int had_base(int n);
/* the base orders (1 excluded), ascending; *n_orders set */
const int *had_base_orders(int *n_orders);
/* the ±1 entries of base order m (row-major m×m), or NULL when m is not a base order */
const int8_t *had_base_matrix(int m);
/* how base order m is obtained ("Paley I, q = 11", "data: ... sha256 ..."), or NULL */
const char *had_base_source(int m);
/* entry (i, j) of H_n (±1); n must have a base */
int had_entry(int n, int i, int j);
/* x [n_rows][n] ← rows times H_nᵀ/√n (each row y = H_n·x/√n); -1 with a message when n has no
 * base */
int had_rows(float *x, int64_t n_rows, int n);
/* the same through the explicit matrix in double (y and x may not overlap) */
int had_rows_ref(float *y, const float *x, int64_t n_rows, int n);
#endif
