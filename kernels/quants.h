/* kernels/quants.h: the GGUF (ggml) quantized blocks beyond Q8_0, and their reference
 * dequantizers.
 *
 * Every block is ggml's on-disk layout byte for byte (ggml/src/ggml-common.h at llama.cpp
 * de3ff81), little-endian, fp16 scales as IEEE binary16 bits (lb_fp16). Legend: x = the weight,
 * q = its stored integer, d/dmin/m = fp16 scales, sc/mn = the 4/6/8-bit sub-block scale and min.
 * "Legacy" blocks hold 32 weights; "K-quants" hold a super-block of QK_K = 256 weights in 16
 * sub-blocks of 16 or 8 of 32. Bits per weight (bpw) = 8 * sizeof(block) / weights per block.
 *
 * The dequantizers (x_to_f32: n weights, a multiple of the block length, from one row) evaluate
 * ggml's dequantize_row_* formulas in the same order, so they return the same fp32 values as
 * ggml's to_float bit for bit (fp32 products of exactly representable operands, no FMA: see the
 * note on contraction in quants.c). A NaN/Inf scale yields NaN/Inf weights, which model_bind's
 * finiteness check then refuses. The quantizers are in kernels/ggml_quants.h. */
#ifndef KERNELS_QUANTS_H
#define KERNELS_QUANTS_H
#include "kernels/dtype.h"

#define QK4_0 32
#define QK4_1 32
#define QK5_0 32
#define QK5_1 32
#define QK4_NL 32
#define QK_K 256
#define K_SCALE_SIZE 12

/* ---- legacy blocks (32 weights) ---- */

/* Q4_0: x = (q - 8)·d, q in 0..15; qs[j] holds weight j in the low nibble and weight j+16 in the
 * high nibble. 2 + 16 = 18 bytes, 4.5 bpw. */
struct block_q4_0 {
    lb_fp16 d;
    uint8_t qs[QK4_0 / 2];
};
_Static_assert(sizeof(struct block_q4_0) == 2 + QK4_0 / 2, "block_q4_0 size");

/* Q4_1: x = q·d + m, q in 0..15; nibbles as Q4_0. 2 + 2 + 16 = 20 bytes, 5.0 bpw. */
struct block_q4_1 {
    lb_fp16 d, m;
    uint8_t qs[QK4_1 / 2];
};
_Static_assert(sizeof(struct block_q4_1) == 4 + QK4_1 / 2, "block_q4_1 size");

/* Q5_0: x = (q - 16)·d, q in 0..31; low 4 bits as Q4_0, bit 4 of weight j is bit j of the
 * little-endian u32 qh. 2 + 4 + 16 = 22 bytes, 5.5 bpw. */
struct block_q5_0 {
    lb_fp16 d;
    uint8_t qh[4];
    uint8_t qs[QK5_0 / 2];
};
_Static_assert(sizeof(struct block_q5_0) == 2 + 4 + QK5_0 / 2, "block_q5_0 size");

/* Q5_1: x = q·d + m, q in 0..31; bits as Q5_0. 2 + 2 + 4 + 16 = 24 bytes, 6.0 bpw. */
struct block_q5_1 {
    lb_fp16 d, m;
    uint8_t qh[4];
    uint8_t qs[QK5_1 / 2];
};
_Static_assert(sizeof(struct block_q5_1) == 4 + 4 + QK5_1 / 2, "block_q5_1 size");

/* IQ4_NL: x = d·kvalues_iq4nl[q], q in 0..15 (a non-uniform 4-bit codebook); nibbles as Q4_0.
 * 2 + 16 = 18 bytes, 4.5 bpw. */
struct block_iq4_nl {
    lb_fp16 d;
    uint8_t qs[QK4_NL / 2];
};
_Static_assert(sizeof(struct block_iq4_nl) == 2 + QK4_NL / 2, "block_iq4_nl size");
extern const int8_t kvalues_iq4nl[16];

/* ---- K-quants (super-blocks of 256) ---- */

/* Q2_K: 16 sub-blocks of 16; x = d·sc·q - dmin·mn, q in 0..3, sc = scales[j] & 15,
 * mn = scales[j] >> 4. qs: in each half (128 weights, 32 bytes) byte l holds weights l, l+32,
 * l+64, l+96 in bits 0-1, 2-3, 4-5, 6-7. 16 + 64 + 2 + 2 = 84 bytes, 2.625 bpw. */
struct block_q2_k {
    uint8_t scales[QK_K / 16];
    uint8_t qs[QK_K / 4];
    lb_fp16 d, dmin;
};
_Static_assert(sizeof(struct block_q2_k) == QK_K / 16 + QK_K / 4 + 4, "block_q2_k size");

/* Q3_K: 16 sub-blocks of 16; x = d·(sc - 32)·(q - 4), q in 0..7: low 2 bits in qs as Q2_K, the
 * high bit of weight j in bit j/32 of hmask[j % 32] (set = +4). sc: 16 six-bit values; the low
 * nibbles of 0-7 and 8-15 in the low/high nibbles of scales[0..7], the top 2 bits of scale j in
 * bits 2·(j/4) of scales[8 + j%4]. 32 + 64 + 12 + 2 = 110 bytes, 3.4375 bpw. */
struct block_q3_k {
    uint8_t hmask[QK_K / 8];
    uint8_t qs[QK_K / 4];
    uint8_t scales[12];
    lb_fp16 d;
};
_Static_assert(sizeof(struct block_q3_k) == QK_K / 8 + QK_K / 4 + 12 + 2, "block_q3_k size");

/* Q4_K: 8 sub-blocks of 32; x = d·sc·q - dmin·mn, q in 0..15, sc/mn six-bit (k4 packing: sub-block
 * j < 4 in the low 6 bits of scales[j] / scales[j+4]; j >= 4: low nibbles of scales[j+4] and the
 * top 2 bits of scales[j-4] / scales[j]). qs: per 64 weights, 32 bytes, low nibbles = the first
 * 32, high nibbles = the next 32. 2 + 2 + 12 + 128 = 144 bytes, 4.5 bpw. */
struct block_q4_k {
    lb_fp16 d, dmin;
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qs[QK_K / 2];
};
_Static_assert(sizeof(struct block_q4_k) == 4 + K_SCALE_SIZE + QK_K / 2, "block_q4_k size");

/* Q5_K: Q4_K plus a fifth bit: x = d·sc·q - dmin·mn, q in 0..31; bit 4 of weight 64·c + l
 * (l < 32) in bit 2c of qh[l], of weight 64·c + 32 + l in bit 2c+1. 2 + 2 + 12 + 32 + 128 =
 * 176 bytes, 5.5 bpw. */
struct block_q5_k {
    lb_fp16 d, dmin;
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qh[QK_K / 8];
    uint8_t qs[QK_K / 2];
};
_Static_assert(sizeof(struct block_q5_k) == 4 + K_SCALE_SIZE + QK_K / 8 + QK_K / 2,
               "block_q5_k size");

/* Q6_K: 16 sub-blocks of 16; x = d·sc·(q - 32), q in 0..63, sc int8. Per 128 weights: ql 64
 * bytes (byte l: low nibble = weight l, high = weight l+64; byte 32+l: weights l+32, l+96), qh
 * 32 bytes (byte l: top 2 bits of weights l, l+32, l+64, l+96). 128 + 64 + 16 + 2 = 210 bytes,
 * 6.5625 bpw. */
struct block_q6_k {
    uint8_t ql[QK_K / 2];
    uint8_t qh[QK_K / 4];
    int8_t scales[QK_K / 16];
    lb_fp16 d;
};
_Static_assert(sizeof(struct block_q6_k) == QK_K / 2 + QK_K / 4 + QK_K / 16 + 2, "block_q6_k size");

/* Q8_K: activations for K-quant dot products (never a weight in llama.cpp's files): x = d·q,
 * d fp32, q int8; bsums[j] = Σ of the 16 q of sub-block j. 4 + 256 + 32 = 292 bytes, 9.125 bpw. */
struct block_q8_k {
    float d;
    int8_t qs[QK_K];
    int16_t bsums[QK_K / 16];
};
_Static_assert(sizeof(struct block_q8_k) == 4 + QK_K + 2 * (QK_K / 16), "block_q8_k size");

/* sub-block j (0..7) of a Q4_K/Q5_K block's 12 packed scale bytes: 6-bit scale and min */
static inline void quants_k4_scale_min(int j, const uint8_t *q, uint8_t *sc, uint8_t *mn) {
    if (j < 4) {
        *sc = q[j] & 63;
        *mn = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *mn = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* nearest integer to f, ties to even, for |f| <= 2^22 (ggml's nearest_int: adding 1.5·2^23 puts
 * the rounded value in the low mantissa bits); outside that range it returns the same garbage as
 * ggml's, which quantizers need to stay byte-identical on degenerate input */
static inline int lb_nearest_int(float f) {
    float v = f + 12582912.0f;
    int32_t i;
    memcpy(&i, &v, 4);
    return (i & 0x007fffff) - 0x00400000;
}

/* ---- reference dequantizers (dtype to_f32): n weights of one row, n a multiple of the block */
void q4_0_to_f32(const void *src, float *dst, int64_t n);
void q4_1_to_f32(const void *src, float *dst, int64_t n);
void q5_0_to_f32(const void *src, float *dst, int64_t n);
void q5_1_to_f32(const void *src, float *dst, int64_t n);
void iq4_nl_to_f32(const void *src, float *dst, int64_t n);
void q2_k_to_f32(const void *src, float *dst, int64_t n);
void q3_k_to_f32(const void *src, float *dst, int64_t n);
void q4_k_to_f32(const void *src, float *dst, int64_t n);
void q5_k_to_f32(const void *src, float *dst, int64_t n);
void q6_k_to_f32(const void *src, float *dst, int64_t n);
void q8_k_to_f32(const void *src, float *dst, int64_t n);

/* Q8_K activation quantizer (ggml quantize_row_q8_K_ref): per 256, d = -max/127 where max is the
 * signed value of largest |x|, q = min(127, nearest(x/d)), bsums filled. An all-zero block gets
 * d = 0, q = 0, bsums = 0 (ggml leaves its bsums unwritten there). */
void q8_k_from_f32(const float *src, void *dst, int64_t n);
#endif
