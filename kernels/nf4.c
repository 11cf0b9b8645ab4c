/* kernels/nf4.c: bitsandbytes NF4/FP4/LLM.int8 weights (layouts and formulas in nf4.h). */
#include "kernels/nf4.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* bitsandbytes functional.get_4bit_type("nf4"), the fp32 values printed in full there */
const float nf4_table[16] = {
    -1.0f,
    -0.6961928009986877f,
    -0.5250730514526367f,
    -0.39491748809814453f,
    -0.28444138169288635f,
    -0.18477343022823334f,
    -0.09105003625154495f,
    0.0f,
    0.07958029955625534f,
    0.16093020141124725f,
    0.24611230194568634f,
    0.33791524171829224f,
    0.44070982933044434f,
    0.5626170039176941f,
    0.7229568362236023f,
    1.0f,
};

/* get_4bit_type("fp4"): torch.tensor(data) (fp32) divided in place by its max |value| 12 */
const float fp4_table[16] = {
    0.0f / 12.0f,  0.0625f / 12.0f,  8.0f / 12.0f,  12.0f / 12.0f,
    4.0f / 12.0f,  6.0f / 12.0f,     2.0f / 12.0f,  3.0f / 12.0f,
    0.0f / 12.0f,  -0.0625f / 12.0f, -8.0f / 12.0f, -12.0f / 12.0f,
    -4.0f / 12.0f, -6.0f / 12.0f,    -2.0f / 12.0f, -3.0f / 12.0f,
};

bool nf4_blocksize_ok(int64_t bs) {
    for (int64_t b = 32; b <= 4096; b *= 2)
        if (bs == b) return true;
    return false;
}

int nf4_tensor_init(struct tensor *t, const char *name, enum dtype type, int64_t K, int64_t N,
                    int64_t bs) {
    ASSERT(type == DTYPE_NF4 || type == DTYPE_FP4);
    const int64_t ne[2] = {K, N};
    if (!nf4_blocksize_ok(bs))
        return err("%s: blocksize %lld (bitsandbytes 4-bit blocksizes are 32, 64, ..., 4096)",
                   name, (long long)bs);
    if (tensor_init(t, name, type, 2, ne)) return -1;
    t->q_bits = 4;
    t->q_group = (int)bs;
    return 0;
}

int i8row_tensor_init(struct tensor *t, const char *name, int64_t K, int64_t N) {
    const int64_t ne[2] = {K, N};
    if (tensor_init(t, name, DTYPE_I8ROW, 2, ne)) return -1;
    t->q_bits = 8;
    t->q_group = (int)LB_MIN(K, (int64_t)1 << 30);
    return 0;
}

void nf4_fill(struct tensor *t, void *buf, const uint8_t *stream, const float *absmax) {
    const int64_t K = t->ne[0], N = tensor_nrows(t);
    const size_t rb = tensor_row_bytes(t);
    t->data = buf;
    uint8_t *dst = buf;
    if (K % 2 == 0) {
        memcpy(dst, stream, rb * (size_t)N); /* rows end to end = the stream */
    } else {
        for (int64_t n = 0; n < N; n++) /* re-cut the stream so that each row starts on a byte */
            for (int64_t k = 0; k < K; k++) {
                const int64_t i = n * K + k;
                const unsigned q = i & 1 ? stream[i / 2] & 15u : stream[i / 2] >> 4;
                dst[(size_t)n * rb + (size_t)k / 2] |= (uint8_t)(k & 1 ? q : q << 4);
            }
    }
    memcpy(nf4_absmax(t), absmax, (size_t)nf4_n_blocks(N * K, t->q_group) * sizeof(float));
}

void i8row_fill(struct tensor *t, void *buf, const int8_t *q, const float *scb) {
    const int64_t K = t->ne[0], N = tensor_nrows(t);
    t->data = buf;
    memcpy(buf, q, (size_t)(N * K));
    memcpy(nf4_absmax(t), scb, (size_t)N * sizeof(float));
}

void nf4_row_to_f32(const struct tensor *t, int64_t n, float *dst) {
    const int64_t K = t->ne[0], bs = t->q_group;
    const float *table = t->type == DTYPE_NF4 ? nf4_table : fp4_table;
    const uint8_t *row = tensor_row(t, n);
    const float *absmax = nf4_absmax(t);
    for (int64_t k = 0; k < K; k++) dst[k] = table[nf4_code_get(row, k)] * absmax[(n * K + k) / bs];
}

void i8row_row_to_f32(const struct tensor *t, int64_t n, float *dst) {
    const int64_t K = t->ne[0];
    const int8_t *row = tensor_row(t, n);
    const float scb = nf4_absmax(t)[n];
    for (int64_t k = 0; k < K; k++) dst[k] = ((float)row[k] * scb) * BNB_INT8_RECIP;
}

/* ===== double quantization ===== */

/* torch.linspace(start, end, steps) in fp32, CPU scalar formula (RangeFactoriesKernel.cpp):
 * step = (end − start)/(steps − 1); j < steps/2: start + step·j, else end − step·(steps − j − 1) */
static void linspace_f32(float start, float end, int steps, float *out) {
    const float step = (end - start) / (float)(steps - 1);
    const int halfway = steps / 2;
    for (int j = 0; j < steps; j++)
        out[j] = j < halfway ? start + step * (float)j : end - step * (float)(steps - j - 1);
}

static int cmp_float(const void *a, const void *b) {
    const float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

void bnb_dynamic_map(float code[256]) {
    /* signed, max_exponent_bits 7, total_bits 8: non_sign_bits 7, additional_items 2^0 − 1 = 0,
     * fraction_items = 2^i + 1 */
    int n = 0;
    for (int i = 0; i < 7; i++) {
        const int items = (1 << i) + 1;
        float b[65];
        linspace_f32(0.1f, 1.0f, items, b);
        /* Python 10 ** (i − 6): an int for i = 6, else a double; the tensor op runs in fp32 */
        const float s = (float)pow(10.0, i - 6);
        for (int j = 0; j + 1 < items; j++) {
            const float mean = (b[j] + b[j + 1]) / 2.0f;
            code[n++] = s * mean;
        }
        for (int j = 0; j + 1 < items; j++) {
            const float mean = (b[j] + b[j + 1]) / 2.0f;
            code[n++] = -s * mean;
        }
    }
    code[n++] = 0.0f;
    code[n++] = 1.0f;
    ASSERT(n == 256);
    qsort(code, 256, sizeof *code, cmp_float);
}

void bnb_absmax_dequant(const uint8_t *q, int64_t n, const float *code, const float *absmax2,
                        int64_t nested_bs, float offset, float *absmax) {
    for (int64_t i = 0; i < n; i++) {
        const float v = code[q[i]] * absmax2[i / nested_bs];
        absmax[i] = v + offset;
    }
}
