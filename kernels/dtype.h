/* kernels/dtype.h: weight element types, their on-disk blocks and fp16/bf16 conversion.
 *
 * A row of n elements of type t takes dtype_row_size(t, n) bytes; n must be a multiple of the
 * type's block length. Every block is a struct with a size check and the dequantization formula.
 * The table is indexed by enum dtype (ggml type_traits style): adding a type is one enum value, one
 * block struct, one row in kernels/dtype.c and its kernels. */
#ifndef KERNELS_DTYPE_H
#define KERNELS_DTYPE_H
#include <stdint.h>
#include <string.h>

#include "kernels/common.h"

enum dtype {
    DTYPE_F32,
    DTYPE_F16,
    DTYPE_BF16,
    DTYPE_Q8_0,
    /* GGUF (ggml) block types: layouts in kernels/quants.h, quantizers in kernels/ggml_quants.h */
    DTYPE_Q4_0,
    DTYPE_Q4_1,
    DTYPE_Q5_0,
    DTYPE_Q5_1,
    DTYPE_IQ4_NL,
    DTYPE_Q2_K,
    DTYPE_Q3_K,
    DTYPE_Q4_K,
    DTYPE_Q5_K,
    DTYPE_Q6_K,
    DTYPE_Q8_K,
    /* i-quants and ternary types: layouts and quantizers in kernels/iquants.h */
    DTYPE_IQ4_XS,
    DTYPE_IQ3_S,
    DTYPE_IQ3_XXS,
    DTYPE_IQ2_S,
    DTYPE_IQ2_XS,
    DTYPE_IQ2_XXS,
    DTYPE_IQ1_M,
    DTYPE_IQ1_S,
    DTYPE_TQ2_0,
    DTYPE_TQ1_0,
    /* end of the GGUF block types */
    /* parametric types (block 1, block_bytes 0): bits, group and layout live in the tensor
     * (struct tensor q_bits/q_group/q_perm); layouts in kernels/qint.h and kernels/nf4.h. Rows go
     * through tensor_row_bytes() and tensor_row_to_f32(), never dtype_row_size()/to_f32. */
    DTYPE_QINT,  /* integer groups, 2/3/4/8 bits (GPTQ, AWQ, AutoRound, RTN): w = d·(q − z) */
    DTYPE_NF4,   /* bitsandbytes NF4, fp32 absmax per block flat over the tensor */
    DTYPE_FP4,   /* bitsandbytes FP4 (e2m1), same layout as NF4 */
    DTYPE_I8ROW, /* bitsandbytes LLM.int8 weight: int8 rows, w = q·SCB/127 */
    DTYPE_AQLM,  /* AQLM additive codebooks: w = s·Σ_m C_m[code] (kernels/aqlm.h) */
    /* end of the parametric types */
    DTYPE_COUNT
};

typedef uint16_t lb_fp16; /* IEEE binary16 bits */
typedef uint16_t lb_bf16; /* bfloat16 bits (top half of a binary32) */

/* Q8_0: 32 weights, x = d*q; fp16 d + 32 int8 = 34 bytes, 8.5 bits/weight (ggml block_q8_0) */
#define QK8_0 32
struct block_q8_0 {
    lb_fp16 d;
    int8_t qs[QK8_0];
};
_Static_assert(sizeof(struct block_q8_0) == 2 + QK8_0, "block_q8_0 size");

/* dequantize n elements (a multiple of the block length) of one row to fp32 */
typedef void (*dtype_to_f32_fn)(const void *src, float *dst, int64_t n);
/* quantize n fp32 elements (a multiple of the block length) into one row; reference, deterministic */
typedef void (*dtype_from_f32_fn)(const float *src, void *dst, int64_t n);

struct dtype_info {
    const char *name;      /* "f32", "q8_0": as in GGUF/llama.cpp file types, lower case */
    int block;             /* elements per block */
    int block_bytes;       /* bytes per block */
    int ggml_type;         /* GGUF tensor type id, -1 if GGUF has none */
    dtype_to_f32_fn to_f32;
    dtype_from_f32_fn from_f32;
};

const struct dtype_info *dtype_get(enum dtype t);
/* by name (case-insensitive) or by GGUF type id; -1 when unknown */
int dtype_from_name(const char *name);
int dtype_from_ggml(int ggml_type);
/* bytes for a row of n elements; 0 when n is not a multiple of the block length */
size_t dtype_row_size(enum dtype t, int64_t n);
static inline double dtype_bits_per_weight(enum dtype t) {
    const struct dtype_info *d = dtype_get(t);
    return 8.0 * d->block_bytes / d->block;
}
/* parametric types (DTYPE_QINT, DTYPE_NF4, DTYPE_FP4, DTYPE_I8ROW, DTYPE_AQLM) have block_bytes 0: their
 * row size and bits/weight depend on the tensor (tensor_row_bytes, tensor_nbytes) */
static inline bool dtype_is_parametric(enum dtype t) { return dtype_get(t)->block_bytes == 0; }

/* ---- fp16 / bf16 scalar conversion (exact, round-to-nearest-even) ---- */
static inline float lb_fp16_to_f32(lb_fp16 h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13); /* inf / nan */
    } else if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: normalize */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400));
            bits = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ff) << 13);
        }
    } else {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static inline lb_fp16 lb_f32_to_fp16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000, ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) return (lb_fp16)(sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 : 0));
    if (ax >= 0x477ff000u) return (lb_fp16)(sign | 0x7c00); /* rounds to >= 65520: inf */
    if (ax < 0x38800000u) {                                 /* below 2^-14: subnormal or zero */
        if (ax < 0x33000000u) return (lb_fp16)sign;          /* < 2^-25 rounds to 0 */
        uint32_t man = (ax & 0x7fffff) | 0x800000;
        int shift = 113 - (int)(ax >> 23) + 13;              /* 14..24 */
        uint32_t h = man >> shift, rem = man & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1))) h++;
        return (lb_fp16)(sign | h);
    }
    uint32_t h = ((ax >> 13) - (112u << 10)), rem = ax & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
    return (lb_fp16)(sign | h);
}

static inline float lb_bf16_to_f32(lb_bf16 h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static inline lb_bf16 lb_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (lb_bf16)((x >> 16) | 0x40); /* quiet nan */
    x += 0x7fff + ((x >> 16) & 1);
    return (lb_bf16)(x >> 16);
}
#endif
