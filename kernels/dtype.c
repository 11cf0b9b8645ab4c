/* kernels/dtype.c: the dtype table and the reference (de)quantizers of the base types. */
#include "kernels/dtype.h"

#include "kernels/quants.h"
#include "kernels/ggml_quants.h"
#include "kernels/iquants.h"

#include <math.h>
#include <strings.h>

static void f32_to_f32(const void *src, float *dst, int64_t n) { memcpy(dst, src, (size_t)n * 4); }
static void f32_from_f32(const float *src, void *dst, int64_t n) { memcpy(dst, src, (size_t)n * 4); }

static void f16_to_f32(const void *src, float *dst, int64_t n) {
    const lb_fp16 *s = src;
    for (int64_t i = 0; i < n; i++) dst[i] = lb_fp16_to_f32(s[i]);
}
static void f16_from_f32(const float *src, void *dst, int64_t n) {
    lb_fp16 *d = dst;
    for (int64_t i = 0; i < n; i++) d[i] = lb_f32_to_fp16(src[i]);
}
static void bf16_to_f32(const void *src, float *dst, int64_t n) {
    const lb_bf16 *s = src;
    for (int64_t i = 0; i < n; i++) dst[i] = lb_bf16_to_f32(s[i]);
}
static void bf16_from_f32(const float *src, void *dst, int64_t n) {
    lb_bf16 *d = dst;
    for (int64_t i = 0; i < n; i++) d[i] = lb_f32_to_bf16(src[i]);
}

/* Q8_0 (ggml quantize_row_q8_0_ref): d = amax/127, q = round(x/d) */
static void q8_0_from_f32(const float *src, void *dst, int64_t n) {
    struct block_q8_0 *b = dst;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        float amax = 0.0f;
        for (int j = 0; j < QK8_0; j++) amax = fmaxf(amax, fabsf(src[i * QK8_0 + j]));
        const float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f;
        b[i].d = lb_f32_to_fp16(d);
        for (int j = 0; j < QK8_0; j++) b[i].qs[j] = (int8_t)roundf(src[i * QK8_0 + j] * id);
    }
}
static void q8_0_to_f32(const void *src, float *dst, int64_t n) {
    const struct block_q8_0 *b = src;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        const float d = lb_fp16_to_f32(b[i].d);
        for (int j = 0; j < QK8_0; j++) dst[i * QK8_0 + j] = d * (float)b[i].qs[j];
    }
}

/* the i-quant and ternary types: their quantizers need the type (iquants.h) */
#define IQ_FROM(name, T)                                                                           \
    static void name##_from_f32(const float *src, void *dst, int64_t n) { iq_from_f32(T, src, dst, n); }
IQ_FROM(iq4_xs, DTYPE_IQ4_XS)
IQ_FROM(iq3_s, DTYPE_IQ3_S)
IQ_FROM(iq3_xxs, DTYPE_IQ3_XXS)
IQ_FROM(iq2_s, DTYPE_IQ2_S)
IQ_FROM(iq2_xs, DTYPE_IQ2_XS)
IQ_FROM(iq2_xxs, DTYPE_IQ2_XXS)
IQ_FROM(iq1_m, DTYPE_IQ1_M)
IQ_FROM(iq1_s, DTYPE_IQ1_S)
IQ_FROM(tq2_0, DTYPE_TQ2_0)
IQ_FROM(tq1_0, DTYPE_TQ1_0)
#undef IQ_FROM

/* parametric types: a row cannot be converted without its tensor (bits, group, side data) */
static void param_to_f32(const void *src, float *dst, int64_t n) {
    (void)src, (void)dst, (void)n;
    BUG("a parametric dtype row was converted without its tensor: use tensor_row_to_f32");
}
static void param_from_f32(const float *src, void *dst, int64_t n) {
    (void)src, (void)dst, (void)n;
    BUG("a parametric dtype cannot be quantized row by row: use quant/rtn.h or quant/bnb.h");
}

static const struct dtype_info dtypes[DTYPE_COUNT] = {
    [DTYPE_F32] = {"f32", 1, 4, 0, f32_to_f32, f32_from_f32},
    [DTYPE_F16] = {"f16", 1, 2, 1, f16_to_f32, f16_from_f32},
    [DTYPE_BF16] = {"bf16", 1, 2, 30, bf16_to_f32, bf16_from_f32},
    [DTYPE_Q8_0] = {"q8_0", QK8_0, sizeof(struct block_q8_0), 8, q8_0_to_f32, q8_0_from_f32},
    /* GGUF block types (kernels/quants.c, kernels/ggml_quants.c); from_f32 = ggml's reference
     * quantizer (IQ4_NL: quantize_iq4_nl, what llama.cpp's files hold); Q8_K is activations only */
    [DTYPE_Q4_0] = {"q4_0", QK4_0, sizeof(struct block_q4_0), 2, q4_0_to_f32, gq_q4_0_ref},
    [DTYPE_Q4_1] = {"q4_1", QK4_1, sizeof(struct block_q4_1), 3, q4_1_to_f32, gq_q4_1_ref},
    [DTYPE_Q5_0] = {"q5_0", QK5_0, sizeof(struct block_q5_0), 6, q5_0_to_f32, gq_q5_0_ref},
    [DTYPE_Q5_1] = {"q5_1", QK5_1, sizeof(struct block_q5_1), 7, q5_1_to_f32, gq_q5_1_ref},
    [DTYPE_IQ4_NL] = {"iq4_nl", QK4_NL, sizeof(struct block_iq4_nl), 20, iq4_nl_to_f32, gq_iq4_nl},
    [DTYPE_Q2_K] = {"q2_k", QK_K, sizeof(struct block_q2_k), 10, q2_k_to_f32, gq_q2_k_ref},
    [DTYPE_Q3_K] = {"q3_k", QK_K, sizeof(struct block_q3_k), 11, q3_k_to_f32, gq_q3_k_ref},
    [DTYPE_Q4_K] = {"q4_k", QK_K, sizeof(struct block_q4_k), 12, q4_k_to_f32, gq_q4_k_ref},
    [DTYPE_Q5_K] = {"q5_k", QK_K, sizeof(struct block_q5_k), 13, q5_k_to_f32, gq_q5_k_ref},
    [DTYPE_Q6_K] = {"q6_k", QK_K, sizeof(struct block_q6_k), 14, q6_k_to_f32, gq_q6_k_ref},
    [DTYPE_Q8_K] = {"q8_k", QK_K, sizeof(struct block_q8_k), 15, q8_k_to_f32, q8_k_from_f32},
    /* i-quants and ternary types (kernels/iquants.c): from_f32 = quantize_<type> without an
     * importance matrix (IQ2_XXS, IQ2_XS, IQ1_S: under a uniform one, see iq_from_f32) */
#define IQ_ROW(T, name, blk, id) [T] = {#name, QK_K, sizeof(struct blk), id, name##_to_f32, name##_from_f32}
    IQ_ROW(DTYPE_IQ4_XS, iq4_xs, block_iq4_xs, 23),
    IQ_ROW(DTYPE_IQ3_S, iq3_s, block_iq3_s, 21),
    IQ_ROW(DTYPE_IQ3_XXS, iq3_xxs, block_iq3_xxs, 18),
    IQ_ROW(DTYPE_IQ2_S, iq2_s, block_iq2_s, 22),
    IQ_ROW(DTYPE_IQ2_XS, iq2_xs, block_iq2_xs, 17),
    IQ_ROW(DTYPE_IQ2_XXS, iq2_xxs, block_iq2_xxs, 16),
    IQ_ROW(DTYPE_IQ1_M, iq1_m, block_iq1_m, 29),
    IQ_ROW(DTYPE_IQ1_S, iq1_s, block_iq1_s, 19),
    IQ_ROW(DTYPE_TQ2_0, tq2_0, block_tq2_0, 35),
    IQ_ROW(DTYPE_TQ1_0, tq1_0, block_tq1_0, 34),
#undef IQ_ROW
    /* parametric types: their rows need the tensor (tensor_row_to_f32, kernels/qint.c) */
    [DTYPE_QINT] = {"qint", 1, 0, -1, param_to_f32, param_from_f32},
    [DTYPE_NF4] = {"nf4", 1, 0, -1, param_to_f32, param_from_f32},
    [DTYPE_FP4] = {"fp4", 1, 0, -1, param_to_f32, param_from_f32},
    [DTYPE_I8ROW] = {"i8row", 1, 0, -1, param_to_f32, param_from_f32},
    [DTYPE_AQLM] = {"aqlm", 1, 0, -1, param_to_f32, param_from_f32},
};

const struct dtype_info *dtype_get(enum dtype t) {
    ASSERT((unsigned)t < DTYPE_COUNT);
    return &dtypes[t];
}

int dtype_from_name(const char *name) {
    for (int t = 0; t < DTYPE_COUNT; t++)
        if (!strcasecmp(name, dtypes[t].name)) return t;
    return -1;
}

int dtype_from_ggml(int ggml_type) {
    /* the parametric types have no GGML id (-1): a file's 0xFFFFFFFF must not name them */
    if (ggml_type < 0) return -1;
    for (int t = 0; t < DTYPE_COUNT; t++)
        if (dtypes[t].ggml_type == ggml_type) return t;
    return -1;
}

size_t dtype_row_size(enum dtype t, int64_t n) {
    const struct dtype_info *d = dtype_get(t);
    if (n < 0 || n % d->block) return 0;
    return (size_t)(n / d->block) * (size_t)d->block_bytes;
}
