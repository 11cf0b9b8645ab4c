/* kernels/dtype.c: the dtype table and the reference (de)quantizers of the base types. */
#include "kernels/dtype.h"

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

static const struct dtype_info dtypes[DTYPE_COUNT] = {
    [DTYPE_F32] = {"f32", 1, 4, 0, f32_to_f32, f32_from_f32},
    [DTYPE_F16] = {"f16", 1, 2, 1, f16_to_f32, f16_from_f32},
    [DTYPE_BF16] = {"bf16", 1, 2, 30, bf16_to_f32, bf16_from_f32},
    [DTYPE_Q8_0] = {"q8_0", QK8_0, sizeof(struct block_q8_0), 8, q8_0_to_f32, q8_0_from_f32},
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
    for (int t = 0; t < DTYPE_COUNT; t++)
        if (dtypes[t].ggml_type == ggml_type) return t;
    return -1;
}

size_t dtype_row_size(enum dtype t, int64_t n) {
    const struct dtype_info *d = dtype_get(t);
    if (n < 0 || n % d->block) return 0;
    return (size_t)(n / d->block) * (size_t)d->block_bytes;
}
