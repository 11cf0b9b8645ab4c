/* kernels/act_quant.h: per-token symmetric activation quantization (compute a8 / a4: W8A8, W4A8,
 * W4A4 as QuaRot and SmoothQuant evaluate them) and the integer dot products it feeds.
 *
 * Quantizer (one row x of K values, b bits, clipping ratio c in (0, 1]):
 *     qmax = 2^(b−1) − 1,  d = c·max_k |x_k| / qmax,  q_k = clamp(roundf(x_k·(1/d)), −qmax − 1, qmax)
 * (d = 0 and q = 0 for an all-zero row; roundf rounds half away from zero). The value it stands
 * for is d·q_k; act_fake_quant_rows writes those (what the forward pass feeds the fp32 matmul with
 * the weights dequantized: the simulation QuaRot's and SmoothQuant's accuracy tables use). A
 * clipping ratio below 1 saturates the largest values (QuaRot's activation clip ratio 0.9).
 *
 * Integer dot products (the arithmetic of a real W4A4/W8A8 kernel): codes of 8 bits, or of 4 bits
 * packed two per byte (low nibble first, two's complement), multiplied exactly into int32:
 *     act_dot_i8(a, b, n) = Σ a_k·b_k          (|sum| ≤ n·2^14: exact for n ≤ 2^16)
 *     act_dot_i4(a, b, n) = Σ a_k·b_k over nibbles, through the int8 product (n even)
 * and the matmul of per-token codes with per-channel symmetric integer weights
 *     y[t][j] = (d_x[t]·d_w[j])·Σ_k qx[t][k]·qw[j][k]
 * Each has a scalar _ref and a fast path; integer sums are exact, so fast == ref bit for bit
 * (tests/test_rotate.c, tests/test_i8.c). The dot products: AVX2 _mm256_madd_epi16 on sign-extended
 * codes (generic otherwise). The matmuls run matmul_i8's integer GEMM on the codes
 * (matmul_i8_codes, kernels/matmul_i8.h: its I8ROW path with one segment): tokens in
 * micro-panels of 4 codes, weights packed per panel of 32 (AVX-512 VNNI: vpdpbusd on codes + 128
 * with the −128·Σq_x correction) or 16 rows (AVX2: the maddubs sign trick; generic: C loops),
 * OpenMP over weight panels, the 4-bit codes unpacked to int8 as the panels are filled (int8
 * codes with T < 8: one dot product per output, the panels would cost more than they save); the
 * epilogue per output is the ref's (dx·dw)·float(sum), so every path and thread count gives the
 * ref's bits. The forward pass uses the quantizer (fake-quant); the integer matmul is timed by
 * tests/bench_act_quant.c beside fp32 and is the kernel a per-channel integer weight layout would
 * run. */
#ifndef KERNELS_ACT_QUANT_H
#define KERNELS_ACT_QUANT_H
#include <stdbool.h>
#include <stdint.h>

/* q [T][K] codes and d [T] scales of x [T][K] at `bits` (2..8) with clipping ratio clip */
void act_quant_rows(int8_t *q, float *d, const float *x, int64_t T, int64_t K, int bits, float clip);
/* y [T][K] = d·q of the same quantizer (y may be x) */
void act_fake_quant_rows(float *y, const float *x, int64_t T, int64_t K, int bits, float clip);

int32_t act_dot_i8_ref(const int8_t *a, const int8_t *b, int64_t n);
int32_t act_dot_i8(const int8_t *a, const int8_t *b, int64_t n);
/* n codes (−8..7) into n/2 bytes, low nibble first; n even */
void act_pack_i4(uint8_t *p, const int8_t *q, int64_t n);
int32_t act_dot_i4_ref(const uint8_t *a, const uint8_t *b, int64_t n);
int32_t act_dot_i4(const uint8_t *a, const uint8_t *b, int64_t n);

/* y [T][N] = (dx[t]·dw[j])·Σ_k qx[t][k]·qw[j][k]; K ≤ 65536 */
void act_matmul_ref(float *y, const int8_t *qx, const float *dx, const int8_t *qw, const float *dw,
                    int64_t T, int64_t N, int64_t K);
void act_matmul(float *y, const int8_t *qx, const float *dx, const int8_t *qw, const float *dw,
                int64_t T, int64_t N, int64_t K);
/* the same with 4-bit codes packed two per byte (rows of K/2 bytes; K even) */
void act_matmul_i4(float *y, const uint8_t *qx, const float *dx, const uint8_t *qw, const float *dw,
                   int64_t T, int64_t N, int64_t K);
/* the path act_matmul (i4: act_matmul_i4) takes for T tokens: matmul_i8's ("avx512-vnni", "avx2",
 * "generic"), or for int8 codes and T < 8 the dot product's ("avx2", "generic": per (t, j)) */
const char *act_matmul_path(int64_t T, bool i4);
/* "avx2" or "generic": the path act_dot_i8 and act_dot_i4 take */
const char *act_dot_path(void);
#endif
