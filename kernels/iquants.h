/* kernels/iquants.h: ggml's i-quant and ternary blocks (IQ4_XS, IQ3_S, IQ3_XXS, IQ2_S, IQ2_XS,
 * IQ2_XXS, IQ1_S, IQ1_M, TQ1_0, TQ2_0): layouts, dequantizers and the quantizers
 * ggml_quantize_chunk runs for them, byte-identical with ggml's.
 *
 * Source: ggml/src/ggml-quants.c and ggml-common.h of llama.cpp de3ff81 (Kawrakow's i-quants,
 * PR #4773 IQ2_XXS, #4897 IQ2_XS, #5020 IQ3_XXS, #5231 IQ1_S, #5590 IQ4_XS, #5676 IQ3_S, #5999
 * IQ1_M, #8151 TQ1_0/TQ2_0 by compilade). Every block holds a super-block of QK_K = 256 weights;
 * fp16 scales as IEEE binary16 bits, little-endian. Layouts and formulas (x = the weight):
 *  - TQ1_0: x = d·(t - 1), t in {0,1,2}; 240 trits 5 per byte (qs) and 16 trits 4 per byte (qh),
 *    each byte the trits' base-3 number scaled to 0..255 (q·256/243 rounded up). 54 bytes.
 *  - TQ2_0: x = d·(q - 1), q in 0..3 (3 unused); 2 bits per weight as Q2_K packs them. 66 bytes.
 *  - IQ4_XS: x = d·(ls - 32)·kvalues_iq4nl[q]; 8 sub-blocks of 32 with 6-bit ls (low 4 bits in
 *    scales_l, high 2 in scales_h), nibbles as IQ4_NL. 136 bytes, 4.25 bpw.
 *  - IQ2_XXS / IQ2_XS / IQ2_S: groups of 8 weights = a point of an 8-D grid of magnitudes
 *    (256 / 512 / 1024 points) times 8 signs; XXS/XS store 7 sign bits (the 8th makes the parity
 *    even, ksigns), S all 8. Scales: 4 bits per 32 (XXS: x = d·(0.5 + s)·0.25·grid·sign) or per
 *    16 (XS, S). 66 / 74 / 82 bytes.
 *  - IQ3_XXS / IQ3_S: groups of 4 = a point of a 4-D grid (256 / 512 points); XXS: 7-bit signs
 *    and a 4-bit scale per 32 in one u32 (x = d·(0.5 + s)·0.5·grid·sign); S: 8 sign bits, 4-bit
 *    scales per 32 (x = d·(1 + 2s)·grid·sign). 98 / 110 bytes.
 *  - IQ1_S / IQ1_M: groups of 8 = a point of an 8-D grid over {-1, 0, 1} (2048 points) plus a
 *    shift ±1/8 (IQ1S_DELTA) per 32 (S) or per 8 (M); 3-bit scales, x = d·(2s + 1)·(g + δ).
 *    IQ1_M has no d field: its fp16 d is spread over the top nibbles of the four u16 scale
 *    words. 50 / 56 bytes.
 * The dequantizers evaluate ggml's dequantize_row_* formulas in the same order (same fp32
 * values). The grids are data with their provenance in kernels/iq_grids.c; everything ggml
 * derives from them (search grids, index maps, neighbour lists, dequantization grids) is derived
 * here the same way, once, on first use (thread-safe). */
#ifndef KERNELS_IQUANTS_H
#define KERNELS_IQUANTS_H
#include "kernels/quants.h"

struct block_tq1_0 {
    uint8_t qs[(QK_K - 4 * QK_K / 64) / 5];
    uint8_t qh[QK_K / 64];
    lb_fp16 d;
};
_Static_assert(sizeof(struct block_tq1_0) == 54, "block_tq1_0 size");

struct block_tq2_0 {
    uint8_t qs[QK_K / 4];
    lb_fp16 d;
};
_Static_assert(sizeof(struct block_tq2_0) == 66, "block_tq2_0 size");

struct block_iq4_xs {
    lb_fp16 d;
    uint16_t scales_h;
    uint8_t scales_l[QK_K / 64];
    uint8_t qs[QK_K / 2];
};
_Static_assert(sizeof(struct block_iq4_xs) == 136, "block_iq4_xs size");

struct block_iq2_xxs {
    lb_fp16 d;
    uint16_t qs[QK_K / 8];
};
_Static_assert(sizeof(struct block_iq2_xxs) == 66, "block_iq2_xxs size");

struct block_iq2_xs {
    lb_fp16 d;
    uint16_t qs[QK_K / 8];
    uint8_t scales[QK_K / 32];
};
_Static_assert(sizeof(struct block_iq2_xs) == 74, "block_iq2_xs size");

struct block_iq2_s {
    lb_fp16 d;
    uint8_t qs[QK_K / 4]; /* 32 grid index low bytes, then 32 sign bytes */
    uint8_t qh[QK_K / 32];
    uint8_t scales[QK_K / 32];
};
_Static_assert(sizeof(struct block_iq2_s) == 82, "block_iq2_s size");

struct block_iq3_xxs {
    lb_fp16 d;
    uint8_t qs[3 * QK_K / 8]; /* 64 grid indices, then 8 u32 of signs and scale */
};
_Static_assert(sizeof(struct block_iq3_xxs) == 98, "block_iq3_xxs size");

struct block_iq3_s {
    lb_fp16 d;
    uint8_t qs[QK_K / 4];
    uint8_t qh[QK_K / 32];
    uint8_t signs[QK_K / 8];
    uint8_t scales[QK_K / 64];
};
_Static_assert(sizeof(struct block_iq3_s) == 110, "block_iq3_s size");

struct block_iq1_s {
    lb_fp16 d;
    uint8_t qs[QK_K / 8];
    uint16_t qh[QK_K / 32];
};
_Static_assert(sizeof(struct block_iq1_s) == 50, "block_iq1_s size");

struct block_iq1_m {
    uint8_t qs[QK_K / 8];
    uint8_t qh[QK_K / 16];
    uint8_t scales[QK_K / 32];
};
_Static_assert(sizeof(struct block_iq1_m) == 56, "block_iq1_m size");

/* the grid data of kernels/iq_grids.c (level indices per coordinate, see there) */
extern const uint16_t iq_kgrid_2bit_256[256], iq_kgrid_2bit_512[512], iq_kgrid_2bit_1024[1024],
    iq_kgrid_1bit_2048[2048], iq_kgrid_3bit_256[256], iq_kgrid_3bit_512[512];

/* the dequantization grids as ggml-common.h holds them (bytes of its uint64/uint32 tables, in
 * order): 0 iq2xxs_grid, 1 iq2xs_grid, 2 iq2s_grid, 3 iq3xxs_grid, 4 iq3s_grid, 5 iq1s_grid,
 * 6 ksigns_iq2xs. *bytes = the table's size. For tests. */
const uint8_t *iq_dequant_table(int which, size_t *bytes);

/* dequantize n weights (a multiple of 256) of one row */
void tq1_0_to_f32(const void *src, float *dst, int64_t n);
void tq2_0_to_f32(const void *src, float *dst, int64_t n);
void iq4_xs_to_f32(const void *src, float *dst, int64_t n);
void iq2_xxs_to_f32(const void *src, float *dst, int64_t n);
void iq2_xs_to_f32(const void *src, float *dst, int64_t n);
void iq2_s_to_f32(const void *src, float *dst, int64_t n);
void iq3_xxs_to_f32(const void *src, float *dst, int64_t n);
void iq3_s_to_f32(const void *src, float *dst, int64_t n);
void iq1_s_to_f32(const void *src, float *dst, int64_t n);
void iq1_m_to_f32(const void *src, float *dst, int64_t n);

/* true for the types of this file */
bool iq_is_type(enum dtype t);
/* ggml_quantize_requires_imatrix: IQ2_XXS, IQ2_XS, IQ1_S */
bool iq_requires_imatrix(enum dtype t);
/* ggml_quantize_chunk for a type of this file: n_rows rows of n_per_row (a multiple of 256)
 * weights; imatrix[n_per_row] or NULL (then the data-free search, x² or σ²-based weights as
 * ggml; BUG() for the types that require one: callers check iq_requires_imatrix). Returns the
 * bytes written. */
size_t iq_quantize(enum dtype t, const float *src, void *dst, int64_t n_rows, int64_t n_per_row,
                   const float *imatrix);
/* the dtype table's from_f32 (one row of n): the data-free quantizer; for the three types that
 * need an importance matrix, the same search under a uniform one (imatrix_j = 1), which ggml
 * has no equivalent of; llama.cpp files always come from iq_quantize with a real imatrix */
void iq_from_f32(enum dtype t, const float *src, void *dst, int64_t n);
#endif
