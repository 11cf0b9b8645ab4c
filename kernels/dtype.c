/* kernels/dtype.c: the dtype table and the reference (de)quantizers of the base types. */
#include "kernels/dtype.h"

#include "kernels/quants.h"
#include "kernels/ggml_quants.h"

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
