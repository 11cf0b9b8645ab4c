/* kernels/quants.c: reference dequantizers of the GGUF blocks in quants.h, and the Q8_K
 * activation quantizer.
 *
 * Source: ggml's dequantize_row_* and quantize_row_q8_K_ref (ggml/src/ggml-quants.c, llama.cpp
 * de3ff81), re-derived from the block layouts; each weight is computed with the same fp32
 * operations in the same order as there, so results equal ggml's to_float bit for bit (tests/
 * test_quants.c checks this against recorded hashes). That needs plain IEEE fp32 evaluation
 * without fused multiply-add: the Makefile's -std=c11 keeps GCC at -ffp-contract=off, and clang
 * is told so below. */
#include "kernels/quants.h"

#include <math.h>
#include <string.h>

#if defined(__clang__)
#pragma clang fp contract(off)
#endif

const int8_t kvalues_iq4nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                  1,    13,   25,  38,  53,  69,  89,  113};

/* ===== legacy blocks ===== */

void q4_0_to_f32(const void *src, float *dst, int64_t n) {
    const struct block_q4_0 *b = src;
    for (int64_t i = 0; i < n / QK4_0; i++, dst += QK4_0) {
        const float d = lb_fp16_to_f32(b[i].d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            dst[j] = (float)((b[i].qs[j] & 0xF) - 8) * d;
            dst[j + QK4_0 / 2] = (float)((b[i].qs[j] >> 4) - 8) * d;
        }
    }
}

void q4_1_to_f32(const void *src, float *dst, int64_t n) {
    const struct block_q4_1 *b = src;
    for (int64_t i = 0; i < n / QK4_1; i++, dst += QK4_1) {
        const float d = lb_fp16_to_f32(b[i].d), m = lb_fp16_to_f32(b[i].m);
        for (int j = 0; j < QK4_1 / 2; j++) {
            dst[j] = (float)(b[i].qs[j] & 0xF) * d + m;
            dst[j + QK4_1 / 2] = (float)(b[i].qs[j] >> 4) * d + m;
        }
    }
}

static inline uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void q5_0_to_f32(const void *src, float *dst, int64_t n) {
    const struct block_q5_0 *b = src;
    for (int64_t i = 0; i < n / QK5_0; i++, dst += QK5_0) {
        const float d = lb_fp16_to_f32(b[i].d);
        const uint32_t qh = le32(b[i].qh);
        for (int j = 0; j < QK5_0 / 2; j++) {
            const int lo = (b[i].qs[j] & 0xF) | (int)((qh >> j) & 1) << 4;
            const int hi = (b[i].qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
            dst[j] = (float)(lo - 16) * d;
            dst[j + QK5_0 / 2] = (float)(hi - 16) * d;
        }
    }
}

void q5_1_to_f32(const void *src, float *dst, int64_t n) {
    const struct block_q5_1 *b = src;
    for (int64_t i = 0; i < n / QK5_1; i++, dst += QK5_1) {
        const float d = lb_fp16_to_f32(b[i].d), m = lb_fp16_to_f32(b[i].m);
        const uint32_t qh = le32(b[i].qh);
        for (int j = 0; j < QK5_1 / 2; j++) {
            const int lo = (b[i].qs[j] & 0xF) | (int)((qh >> j) & 1) << 4;
            const int hi = (b[i].qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
            dst[j] = (float)lo * d + m;
            dst[j + QK5_1 / 2] = (float)hi * d + m;
        }
    }
}

void iq4_nl_to_f32(const void *src, float *dst, int64_t n) {
    const struct block_iq4_nl *b = src;
    for (int64_t i = 0; i < n / QK4_NL; i++, dst += QK4_NL) {
        const float d = lb_fp16_to_f32(b[i].d);
        for (int j = 0; j < QK4_NL / 2; j++) {
            dst[j] = d * (float)kvalues_iq4nl[b[i].qs[j] & 0xF];
            dst[j + QK4_NL / 2] = d * (float)kvalues_iq4nl[b[i].qs[j] >> 4];
        }
    }
}

/* ===== K-quants ===== */

void q2_k_to_f32(const void *src, float *dst, int64_t n) {
    const struct block_q2_k *b = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = lb_fp16_to_f32(b[i].d), dmin = lb_fp16_to_f32(b[i].dmin);
        const uint8_t *q = b[i].qs;
        int is = 0;
        for (int h = 0; h < QK_K / 128; h++, q += 32) {
            for (int shift = 0; shift < 8; shift += 2) {
                for (int half = 0; half < 2; half++) { /* sub-blocks of 16: q[0..15], q[16..31] */
                    const uint8_t sc = b[i].scales[is++];
                    const float dl = d * (float)(sc & 0xF), ml = dmin * (float)(sc >> 4);
                    for (int l = 0; l < 16; l++)
                        *dst++ = dl * (float)((q[16 * half + l] >> shift) & 3) - ml;
                }
            }
        }
    }
}

void q3_k_to_f32(const void *src, float *dst, int64_t n) {
    const struct block_q3_k *b = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d_all = lb_fp16_to_f32(b[i].d);
        int8_t sc[16];
        for (int j = 0; j < 16; j++) {
            const int lo = j < 8 ? b[i].scales[j] & 0xF : b[i].scales[j - 8] >> 4;
            const int hi = (b[i].scales[8 + j % 4] >> (2 * (j / 4))) & 3;
            sc[j] = (int8_t)((lo | hi << 4) - 32);
        }
        const uint8_t *q = b[i].qs, *hm = b[i].hmask;
        uint8_t m = 1;
        int is = 0;
        for (int h = 0; h < QK_K / 128; h++, q += 32) {
            for (int shift = 0; shift < 8; shift += 2, m <<= 1) {
                for (int half = 0; half < 2; half++) {
                    const float dl = d_all * (float)sc[is++];
                    for (int l = 16 * half; l < 16 * half + 16; l++)
                        *dst++ = dl * (float)(((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4));
                }
            }
        }
    }
}

void q4_k_to_f32(const void *src, float *dst, int64_t n) {
    const struct block_q4_k *b = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = lb_fp16_to_f32(b[i].d), dmin = lb_fp16_to_f32(b[i].dmin);
        const uint8_t *q = b[i].qs;
        for (int j = 0; j < QK_K / 64; j++, q += 32) {
            uint8_t sc, mn;
            quants_k4_scale_min(2 * j, b[i].scales, &sc, &mn);
            const float d1 = d * (float)sc, m1 = dmin * (float)mn;
            quants_k4_scale_min(2 * j + 1, b[i].scales, &sc, &mn);
            const float d2 = d * (float)sc, m2 = dmin * (float)mn;
            for (int l = 0; l < 32; l++) *dst++ = d1 * (float)(q[l] & 0xF) - m1;
            for (int l = 0; l < 32; l++) *dst++ = d2 * (float)(q[l] >> 4) - m2;
        }
    }
}

void q5_k_to_f32(const void *src, float *dst, int64_t n) {
    const struct block_q5_k *b = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = lb_fp16_to_f32(b[i].d), dmin = lb_fp16_to_f32(b[i].dmin);
        const uint8_t *ql = b[i].qs, *qh = b[i].qh;
        for (int j = 0; j < QK_K / 64; j++, ql += 32) {
            uint8_t sc, mn;
            quants_k4_scale_min(2 * j, b[i].scales, &sc, &mn);
            const float d1 = d * (float)sc, m1 = dmin * (float)mn;
            quants_k4_scale_min(2 * j + 1, b[i].scales, &sc, &mn);
            const float d2 = d * (float)sc, m2 = dmin * (float)mn;
            const uint8_t u1 = (uint8_t)(1u << (2 * j)), u2 = (uint8_t)(2u << (2 * j));
            for (int l = 0; l < 32; l++)
                *dst++ = d1 * (float)((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
            for (int l = 0; l < 32; l++)
                *dst++ = d2 * (float)((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
        }
    }
}

void q6_k_to_f32(const void *src, float *dst, int64_t n) {
    const struct block_q6_k *b = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = lb_fp16_to_f32(b[i].d);
        const uint8_t *ql = b[i].ql, *qh = b[i].qh;
        const int8_t *sc = b[i].scales;
        for (int h = 0; h < QK_K / 128; h++, dst += 128, ql += 64, qh += 32, sc += 8) {
            for (int l = 0; l < 32; l++) {
                const int is = l / 16;
                const int q1 = ((ql[l] & 0xF) | ((qh[l] >> 0) & 3) << 4) - 32;
                const int q2 = ((ql[l + 32] & 0xF) | ((qh[l] >> 2) & 3) << 4) - 32;
                const int q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
                const int q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
                dst[l] = d * (float)sc[is] * (float)q1;
                dst[l + 32] = d * (float)sc[is + 2] * (float)q2;
                dst[l + 64] = d * (float)sc[is + 4] * (float)q3;
                dst[l + 96] = d * (float)sc[is + 6] * (float)q4;
            }
        }
    }
}

void q8_k_to_f32(const void *src, float *dst, int64_t n) {
    const struct block_q8_k *b = src;
    for (int64_t i = 0; i < n / QK_K; i++)
        for (int j = 0; j < QK_K; j++) *dst++ = b[i].d * (float)b[i].qs[j];
}

void q8_k_from_f32(const float *x, void *dst, int64_t n) {
    struct block_q8_k *y = dst;
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        float max = 0.0f, amax = 0.0f;
        for (int j = 0; j < QK_K; j++)
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        if (amax == 0.0f) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        const float iscale = -127.0f / max;
        for (int j = 0; j < QK_K; j++) {
            const int v = lb_nearest_int(iscale * x[j]);
            y[i].qs[j] = (int8_t)(v < 127 ? v : 127);
        }
        for (int j = 0; j < QK_K / 16; j++) {
            int sum = 0;
            for (int l = 0; l < 16; l++) sum += y[i].qs[16 * j + l];
            y[i].bsums[j] = (int16_t)sum;
        }
        y[i].d = 1.0f / iscale;
    }
}
