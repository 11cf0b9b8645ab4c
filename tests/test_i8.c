/* tests/test_i8.c: the int8-activation matmul (kernels/matmul_i8.h).
 *
 * Legend: W [N][K] (ggml ne [K, N]), T tokens. Checks: the activation quantizers against ggml's
 * quantize_row_q8_0_ref / _q8_1_ref written out here; matmul_i8_ref against an independent
 * evaluation of llama.cpp's generic vec_dot formulas (dequantize nothing: codes and fp16 scales);
 * the fast path equal to the oracle bit for bit on every ISA path the CPU has (in-process by name,
 * and the default path re-run with LOWBIT_ISA=generic|avx2 in a child), at awkward sizes; 1 vs 2
 * threads identical; act_matmul / act_matmul_i4 (matmul_i8_codes) through the default dispatch,
 * in the children too; and int8 compute against fp32 compute (matmul_ref) on random data with
 * outliers: relative Frobenius error of y below 1.5% for the 32-blocks (measured 0.85-0.9%) and
 * 4% for per-token scales, I8ROW and QINT (measured 2.4-2.6%). */
#include <math.h>
#include <stdint.h>
#include <sys/wait.h>

#include "kernels/act_quant.h"
#include "kernels/matmul.h"
#include "kernels/matmul_i8.h"
#include "kernels/nf4.h"
#include "kernels/qint.h"
#include "kernels/quants.h"
#include "tests/t.h"
#include "tests/t_isa.h"

/* ===== helpers ===== */

#define T_RNG_SEED 0x2545f4914f6cdd1dull
#include "tests/t_rng.h"
static float rng_normal(void) {
    return (rng_unif() + rng_unif() + rng_unif() + rng_unif()) * 0.5f;
}

struct owned {
    struct tensor t;
    void *buf;
};

static const enum dtype gguf_types[] = {DTYPE_Q8_0, DTYPE_Q4_0, DTYPE_Q4_1, DTYPE_Q5_0, DTYPE_Q5_1,
                                        DTYPE_IQ4_NL};

/* a GGUF tensor: random bytes (every code, Q8_0's -128 included), then finite fp16 d (and m) */
static void make_gguf_raw(struct owned *o, enum dtype t, int64_t K, int64_t N) {
    const int64_t ne[2] = {K, N};
    T_OK(!tensor_init(&o->t, "wg", t, 2, ne));
    const size_t bytes = tensor_nbytes(&o->t), bsz = (size_t)dtype_get(t)->block_bytes;
    o->buf = malloc(bytes);
    for (size_t i = 0; i < bytes; i++) ((uint8_t *)o->buf)[i] = (uint8_t)rng_u32();
    for (size_t b = 0; b < bytes / bsz; b++) {
        lb_fp16 *h = (lb_fp16 *)((char *)o->buf + b * bsz);
        h[0] = lb_f32_to_fp16(ldexpf(rng_unif(), -(int)(rng_u32() % 8)));
        if (t == DTYPE_Q4_1 || t == DTYPE_Q5_1) h[1] = lb_f32_to_fp16(rng_unif() * 0.1f);
    }
    o->t.data = o->buf;
}

/* a GGUF tensor quantized from random weights by the type's reference quantizer */
static void make_gguf_quant(struct owned *o, enum dtype t, int64_t K, int64_t N) {
    const int64_t ne[2] = {K, N};
    T_OK(!tensor_init(&o->t, "wg", t, 2, ne));
    o->buf = malloc(tensor_nbytes(&o->t));
    float *row = malloc((size_t)K * sizeof *row);
    for (int64_t n = 0; n < N; n++) {
        for (int64_t k = 0; k < K; k++) row[k] = rng_normal() * 0.05f;
        dtype_get(t)->from_f32(row, (char *)o->buf + (size_t)n * tensor_row_bytes(&o->t), K);
    }
    free(row);
    o->t.data = o->buf;
}

/* random qint (as tests/test_qformats.c): codes uniform, d fp16, z integer in [0, 2^b] */
static void make_qint(struct owned *o, int64_t K, int64_t N, int bits, int64_t group, bool perm) {
    T_OK(!qint_tensor_init(&o->t, "wq", K, N, bits, group, perm));
    o->buf = calloc(1, qint_tensor_bytes(K, N, bits, group, perm));
    qint_tensor_attach(&o->t, o->buf, perm);
    const int64_t g = o->t.q_group, ng = qint_n_groups(g, K);
    for (int64_t n = 0; n < N; n++) {
        uint8_t *row = (uint8_t *)o->t.data + (size_t)n * tensor_row_bytes(&o->t);
        for (int64_t k = 0; k < K; k++) qint_code_set(row, bits, k, rng_u32() & ((1u << bits) - 1));
        for (int64_t gi = 0; gi < ng; gi++) {
            const float d = ldexpf(1.0f + (float)(rng_u32() % 1024) / 1024.0f,
                                   -6 - (int)(rng_u32() % 4)) * (rng_u32() & 1 ? 1.0f : -1.0f);
            qint_params(&o->t)[n * ng + gi] = (struct qint_param){
                lb_fp16_to_f32(lb_f32_to_fp16(d)), (float)(rng_u32() % ((1u << bits) + 1))};
        }
    }
    if (perm) { /* a random order with groups contiguous in stored order */
        int32_t *p = qint_perm_mut(&o->t);
        for (int64_t k = 0; k < K; k++) p[k] = (int32_t)k;
        for (int64_t k = K - 1; k > 0; k--) {
            const int64_t j = rng_u32() % (uint32_t)(k + 1);
            const int32_t tmp = p[k];
            p[k] = p[j], p[j] = tmp;
        }
    }
}

static void make_i8(struct owned *o, int64_t K, int64_t N) {
    T_OK(!i8row_tensor_init(&o->t, "w8", K, N));
    int8_t *q = malloc((size_t)(N * K));
    float *scb = malloc((size_t)N * sizeof *scb);
    for (int64_t i = 0; i < N * K; i++) q[i] = (int8_t)((int)(rng_u32() % 255) - 127);
    for (int64_t i = 0; i < N; i++) scb[i] = fabsf(rng_unif()) * 0.05f;
    o->buf = calloc(1, tensor_nbytes(&o->t));
    i8row_fill(&o->t, o->buf, q, scb);
    free(q);
    free(scb);
}

static float *make_x(int T, int64_t K) {
    float *x = malloc((size_t)T * (size_t)K * sizeof *x);
    for (int64_t i = 0; i < T * K; i++) x[i] = rng_normal() * (i % 97 == 0 ? 8.0f : 1.0f);
    return x;
}

/* index of the first differing float (bitwise), -1 when equal */
static int64_t first_diff(const float *a, const float *b, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], 4)) return i;
    return -1;
}

static const char *const isas[] = {"generic", "avx2", "avx512"};

/* fast (every path, or the default only) vs ref on x [T][K], bitwise */
static void check_fast_x(const struct tensor *w, const float *x, int T, bool all_paths) {
    const int64_t N = tensor_nrows(w);
    float *yr = malloc((size_t)(T * N) * 4), *yf = malloc((size_t)(T * N) * 4);
    matmul_i8_ref(yr, x, w, T);
    for (size_t i = 0; i < (all_paths ? LB_ARRAY_LEN(isas) : 1); i++) {
        memset(yf, 0xff, (size_t)(T * N) * 4);
        const int rc = all_paths ? matmul_i8_isa(yf, x, w, T, isas[i]) : matmul_i8(yf, x, w, T);
        if (rc == -2) continue;
        T_EQ_INT(rc, 0);
        const int64_t d = first_diff(yr, yf, T * N);
        if (d >= 0)
            T_FAIL_("%s %s b%d g%d K=%lld N=%lld T=%d: y[%lld] fast %.9g ref %.9g",
                    all_paths ? isas[i] : matmul_i8_path(), dtype_get(w->type)->name, w->q_bits,
                    w->q_group, (long long)w->ne[0], (long long)N, T, (long long)d, yf[d], yr[d]);
    }
    free(yr);
    free(yf);
}

static void check_fast(const struct tensor *w, int T, bool all_paths) {
    float *x = make_x(T, w->ne[0]);
    check_fast_x(w, x, T, all_paths);
    free(x);
}

/* ===== tests ===== */

/* ggml quantize_row_q8_0_ref, transcribed */
static void ggml_q8_0(const float *x, struct block_q8_0 *y, int k) {
    for (int i = 0; i < k / 32; i++) {
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[i * 32 + j]));
        const float d = amax / ((1 << 7) - 1);
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = lb_f32_to_fp16(d);
        for (int j = 0; j < 32; ++j) y[i].qs[j] = (int8_t)roundf(x[i * 32 + j] * id);
    }
}

static void test_quantize_edges(void) {
    enum { K = 32 * 6 };
    float x[K];
    for (int i = 0; i < K; i++) x[i] = rng_normal();
    for (int j = 0; j < 32; j++) x[j] = 0.0f;              /* block 0: all zeros */
    x[32 + 5] = 3e38f;                                     /* block 1: one huge value (fp16 d = inf) */
    x[64 + 7] = -1e6f;                                     /* block 2: large negative */
    for (int j = 0; j < 32; j++) x[96 + j] = 1e-30f * (j - 16); /* block 3: tiny (fp16 d = 0) */
    for (int j = 0; j < 32; j++) x[128 + j] = (float)(j - 16) + 0.5f; /* block 4: halves */
    struct block_q8_0 a[K / 32], b[K / 32], c[K / 32];
    struct block_q8_1 s[K / 32];
    i8_quantize_q8_0(x, a, K);
    ggml_q8_0(x, b, K);
    dtype_get(DTYPE_Q8_0)->from_f32(x, c, K);
    i8_quantize_q8_1(x, s, K);
    T_OK(!memcmp(a, b, sizeof a));
    T_OK(!memcmp(a, c, sizeof a));
    for (int i = 0; i < K / 32; i++) {
        T_EQ_INT(s[i].d, a[i].d);
        T_OK(!memcmp(s[i].qs, a[i].qs, 32));
        int sum = 0;
        for (int j = 0; j < 32; j++) sum += a[i].qs[j];
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[i * 32 + j]));
        T_EQ_INT(s[i].s, lb_f32_to_fp16((float)sum * (amax / 127.0f)));
    }
    T_EQ_INT(a[0].d, 0);
    for (int j = 0; j < 32; j++) T_EQ_INT(a[0].qs[j], 0);
    T_EQ_INT(a[1].qs[5], 127);
    T_EQ_INT(a[2].qs[7], -127);
    /* no NaN anywhere: the quantized blocks dequantize to finite values except an fp16-inf d */
    for (int i = 0; i < K / 32; i++)
        for (int j = 0; j < 32; j++) T_OK(a[i].qs[j] >= -127 && a[i].qs[j] <= 127);
}

/* ggml_vec_dot_q4_0_q8_0 etc. (generic C) written out: the oracle must agree */
static void test_ref_vs_ggml_formula(void) {
    for (size_t it = 0; it < LB_ARRAY_LEN(gguf_types); it++) {
        const enum dtype t = gguf_types[it];
        struct owned o;
        make_gguf_raw(&o, t, 96, 5);
        float *x = make_x(3, 96), y[15];
        matmul_i8_ref(y, x, &o.t, 3);
        const size_t bsz = (size_t)dtype_get(t)->block_bytes;
        for (int tk = 0; tk < 3; tk++) {
            struct block_q8_0 q0[3];
            struct block_q8_1 q1[3];
            i8_quantize_q8_0(x + tk * 96, q0, 96);
            i8_quantize_q8_1(x + tk * 96, q1, 96);
            for (int n = 0; n < 5; n++) {
                float sumf = 0.0f;
                for (int ib = 0; ib < 3; ib++) {
                    const uint8_t *blk = (const uint8_t *)o.buf + (size_t)(n * 3 + ib) * bsz;
                    int sumi0 = 0, sumi1 = 0;
                    if (t == DTYPE_Q8_0) {
                        const struct block_q8_0 *b = (const void *)blk;
                        for (int j = 0; j < 32; j++) sumi0 += b->qs[j] * q0[ib].qs[j];
                    } else if (t == DTYPE_Q4_0 || t == DTYPE_Q4_1) {
                        const uint8_t *qs = blk + (t == DTYPE_Q4_0 ? 2 : 4);
                        const int off = t == DTYPE_Q4_0 ? 8 : 0;
                        for (int j = 0; j < 16; j++) {
                            sumi0 += ((qs[j] & 0x0F) - off) * q0[ib].qs[j];
                            sumi1 += ((qs[j] >> 4) - off) * q0[ib].qs[j + 16];
                        }
                    } else if (t == DTYPE_IQ4_NL) { /* ggml_vec_dot_iq4_nl_q8_0 */
                        const uint8_t *qs = blk + 2;
                        for (int j = 0; j < 16; j++) {
                            sumi0 += kvalues_iq4nl[qs[j] & 0x0F] * q0[ib].qs[j];
                            sumi1 += kvalues_iq4nl[qs[j] >> 4] * q0[ib].qs[j + 16];
                        }
                    } else { /* Q5_0 / Q5_1 */
                        const int h = t == DTYPE_Q5_0 ? 2 : 4;
                        uint32_t qh;
                        memcpy(&qh, blk + h, 4);
                        const uint8_t *qs = blk + h + 4;
                        for (int j = 0; j < 16; j++) {
                            const uint8_t xh_0 = ((qh & (1u << (j + 0))) >> (j + 0)) << 4;
                            const uint8_t xh_1 = ((qh & (1u << (j + 16))) >> (j + 12));
                            const int off = t == DTYPE_Q5_0 ? 16 : 0;
                            sumi0 += (((qs[j] & 0x0F) | xh_0) - off) * q0[ib].qs[j];
                            sumi1 += (((qs[j] >> 4) | xh_1) - off) * q0[ib].qs[j + 16];
                        }
                    }
                    const int sumi = sumi0 + sumi1;
                    const float dw = lb_fp16_to_f32(((const lb_fp16 *)blk)[0]);
                    if (t == DTYPE_Q4_1 || t == DTYPE_Q5_1) {
                        const float mw = lb_fp16_to_f32(((const lb_fp16 *)blk)[1]);
                        sumf += (dw * lb_fp16_to_f32(q1[ib].d)) * (float)sumi +
                                mw * lb_fp16_to_f32(q1[ib].s);
                    } else {
                        sumf += (dw * lb_fp16_to_f32(q0[ib].d)) * (float)sumi;
                    }
                }
                if (memcmp(&sumf, &y[tk * 5 + n], 4))
                    T_FAIL_("%s t%d n%d: ref %.9g, ggml formula %.9g", dtype_get(t)->name, tk, n,
                            y[tk * 5 + n], sumf);
            }
        }
        free(x);
        free(o.buf);
    }
}

/* awkward sizes on every path: fast == ref bitwise. all: every ISA by name, else the default */
static void sweep(bool all) {
    const int saved = lb_threads();
    lb_set_threads(1);
    static const int toks[] = {1, 3, 7, 33, 100};
    static const int64_t ks_g[] = {32, 96, 800, 1088};
    /* rows: 16-row SIMD unpack groups (Q8_0/Q4_0/Q4_1) plus scalar leftovers, panels 16 or 32 */
    static const int64_t ns[] = {1, 7, 20, 33, 48};
    for (size_t it = 0; it < LB_ARRAY_LEN(gguf_types); it++)
        for (size_t ik = 0; ik < LB_ARRAY_LEN(ks_g); ik++)
            for (size_t in = 0; in < LB_ARRAY_LEN(ns); in++) {
                struct owned o;
                if (ik % 2) make_gguf_quant(&o, gguf_types[it], ks_g[ik], ns[in]);
                else make_gguf_raw(&o, gguf_types[it], ks_g[ik], ns[in]);
                for (size_t t = 0; t < LB_ARRAY_LEN(toks); t++) check_fast(&o.t, toks[t], all);
                free(o.buf);
            }
    static const int64_t ks_p[] = {37, 100, 800};
    for (size_t ik = 0; ik < LB_ARRAY_LEN(ks_p); ik++)
        for (size_t in = 0; in < LB_ARRAY_LEN(ns); in++) {
            struct owned o;
            make_i8(&o, ks_p[ik], ns[in]);
            for (size_t t = 0; t < LB_ARRAY_LEN(toks); t++) check_fast(&o.t, toks[t], all);
            free(o.buf);
        }
    static const int bits[] = {2, 3, 4, 8};
    static const int64_t groups[] = {32, 64, 0};
    static const int64_t ks_q[] = {100, 256, 800};
    for (size_t ib = 0; ib < LB_ARRAY_LEN(bits); ib++)
        for (size_t ig = 0; ig < LB_ARRAY_LEN(groups); ig++)
            for (size_t ik = 0; ik < LB_ARRAY_LEN(ks_q); ik++) {
                struct owned o;
                make_qint(&o, ks_q[ik], 7 + 26 * (ik % 2), bits[ib], groups[ig], (ib + ik) % 2);
                for (size_t t = 0; t < LB_ARRAY_LEN(toks); t++) check_fast(&o.t, toks[t], all);
                free(o.buf);
            }
    lb_set_threads(saved);
}

/* activation blocks at the edges of the SIMD quantizers: zeros, fp16-inf d, a subnormal d
 * (the roundf fallback), exact .5 ties (d = 1), and a last group of fewer than 16 blocks */
static void test_fast_quant_edges(void) {
    enum { T = 3, K = 32 * 23 };
    float *x = malloc((size_t)T * K * sizeof *x);
    for (int i = 0; i < T * K; i++) x[i] = rng_normal();
    for (int t = 0; t < T; t++) {
        float *xt = x + t * K + 32 * (t * 5 % 17);
        for (int j = 0; j < 32; j++) xt[j] = 0.0f;
        xt[32 + 5] = t == 1 ? 3e38f : -1e6f;
        for (int j = 0; j < 32; j++) xt[64 + j] = 1e-30f * (float)(j - 16);
        for (int j = 0; j < 32; j++) xt[96 + j] = (float)(j - 16) + 0.5f;
        xt[96 + 3] = 127.0f;
        for (int j = 0; j < 32; j++) xt[128 + j] = -((float)j + 0.5f) * (j % 2 ? 1.0f : 0.25f);
        xt[128] = -127.0f;
    }
    for (size_t it = 0; it < LB_ARRAY_LEN(gguf_types); it++) {
        struct owned o;
        make_gguf_raw(&o, gguf_types[it], K, 40);
        check_fast_x(&o.t, x, T, true);
        free(o.buf);
    }
    free(x);
}

static void test_sweep_all_paths(void) { sweep(true); }
static void test_sweep_default(void) { sweep(false); }

/* 1 vs 2 threads, shapes large enough to split */
static void test_threads(void) {
    const int saved = lb_threads();
    struct owned os[3];
    make_gguf_quant(&os[0], DTYPE_Q4_0, 768, 1001);
    make_gguf_quant(&os[1], DTYPE_Q8_0, 800, 515);
    make_qint(&os[2], 800, 515, 4, 128, true);
    static const int toks[] = {5, 100, 300};
    for (int i = 0; i < 3; i++)
        for (size_t it = 0; it < LB_ARRAY_LEN(toks); it++) {
            const int T = toks[it];
            const int64_t K = os[i].t.ne[0], N = tensor_nrows(&os[i].t);
            float *x = make_x(T, K), *y1 = malloc((size_t)(T * N) * 4), *y2 = malloc((size_t)(T * N) * 4);
            lb_set_threads(1);
            T_EQ_INT(matmul_i8(y1, x, &os[i].t, T), 0);
            lb_set_threads(2);
            T_EQ_INT(matmul_i8(y2, x, &os[i].t, T), 0);
            const int64_t d = first_diff(y1, y2, T * N);
            if (d >= 0) T_FAIL_("%s T=%d: 1 vs 2 threads differ at %lld", os[i].t.name, T, (long long)d);
            free(x);
            free(y1);
            free(y2);
        }
    for (int i = 0; i < 3; i++) free(os[i].buf);
    lb_set_threads(saved);
}

/* int8 compute vs fp32 compute: relative Frobenius error of y */
static void test_vs_fp32(void) {
    enum { T = 33 };
    struct owned os[5];
    make_gguf_quant(&os[0], DTYPE_Q8_0, 800, 64);
    make_gguf_quant(&os[1], DTYPE_Q4_0, 800, 64);
    make_gguf_quant(&os[2], DTYPE_Q5_1, 800, 64);
    make_i8(&os[3], 800, 64);
    make_qint(&os[4], 800, 64, 4, 128, true);
    for (int i = 0; i < 5; i++) {
        const int64_t K = os[i].t.ne[0], N = tensor_nrows(&os[i].t);
        float *x = make_x(T, K), *yi = malloc((size_t)(T * N) * 4), *yf = malloc((size_t)(T * N) * 4);
        T_EQ_INT(matmul_i8(yi, x, &os[i].t, T), 0);
        matmul_ref(yf, x, &os[i].t, T);
        double num = 0, den = 0;
        for (int64_t j = 0; j < T * N; j++) {
            num += ((double)yi[j] - yf[j]) * ((double)yi[j] - yf[j]);
            den += (double)yf[j] * yf[j];
        }
        const double rel = sqrt(num / den);
        if (getenv("T_VERBOSE"))
            fprintf(stderr, "  %s: int8 vs fp32 relative error %.3g\n",
                    dtype_get(os[i].t.type)->name, rel);
        /* x has an 8σ outlier every 97 elements: per-token scales (i8row, qint) pay for it */
        const bool per_token = os[i].t.type == DTYPE_I8ROW || os[i].t.type == DTYPE_QINT;
        if (!(rel < (per_token ? 0.04 : 0.015)))
            T_FAIL_("%s: int8 vs fp32 relative error %.3g (bound %g)", dtype_get(os[i].t.type)->name,
                    rel, per_token ? 0.04 : 0.015);
        free(x);
        free(yi);
        free(yf);
        free(os[i].buf);
    }
}

static void test_names(void) {
    T_EQ_INT(compute_from_name("int8"), COMPUTE_INT8);
    T_EQ_INT(compute_from_name("FP16"), COMPUTE_FP16);
    T_EQ_INT(compute_from_name("fp8"), -1);
    T_EQ_STR(compute_name(COMPUTE_BF16), "bf16");
    T_OK(matmul_i8_supported(DTYPE_Q4_0) && matmul_i8_supported(DTYPE_Q4_K) &&
         !matmul_i8_supported(DTYPE_F16) && !matmul_i8_supported(DTYPE_NF4));
}

/* act_matmul / act_matmul_i4 (kernels/act_quant.h: matmul_i8_codes on the current path) ==
 * act_matmul_ref bit for bit, and the path it names is matmul_i8's: run here and in the
 * LOWBIT_ISA children, so the dispatch is checked on every lowered path */
static void test_act_default(void) {
    static const int64_t shapes[][3] = {{1, 33, 30}, {3, 65, 200}, {17, 31, 770}, {128, 33, 96}};
    const int saved = lb_threads();
    int8_t *qx = malloc(128 * 770), *qw = malloc(65 * 770);
    uint8_t *px = malloc(128 * 385), *pw = malloc(65 * 385);
    float dx[128], dw[65], *y0 = malloc(128 * 65 * sizeof *y0), *y1 = malloc(128 * 65 * sizeof *y1);
    for (size_t i = 0; i < LB_ARRAY_LEN(shapes); i++) {
        const int64_t T = shapes[i][0], N = shapes[i][1], K = shapes[i][2];
        const size_t yb = (size_t)(T * N) * sizeof *y0;
        for (int i4 = 0; i4 < 2; i4++) {
            for (int64_t k = 0; k < T * K; k++) qx[k] = (int8_t)(i4 ? rng_u32() % 16 - 8 : rng_u32());
            for (int64_t k = 0; k < N * K; k++) qw[k] = (int8_t)(i4 ? rng_u32() % 16 - 8 : rng_u32());
            for (int64_t t = 0; t < T; t++) dx[t] = fabsf(rng_unif());
            for (int64_t j = 0; j < N; j++) dw[j] = rng_unif();
            for (int64_t t = 0; t < T; t++) act_pack_i4(px + t * K / 2, qx + t * K, K);
            for (int64_t j = 0; j < N; j++) act_pack_i4(pw + j * K / 2, qw + j * K, K);
            act_matmul_ref(y0, qx, dx, qw, dw, T, N, K);
            for (int th = 1; th <= 2; th++) {
                lb_set_threads(th);
                memset(y1, 0x7f, yb);
                if (i4) act_matmul_i4(y1, px, dx, pw, dw, T, N, K);
                else act_matmul(y1, qx, dx, qw, dw, T, N, K);
                if (memcmp(y0, y1, yb))
                    T_FAIL_("%s T=%lld N=%lld K=%lld, %d thread(s), path %s: differs from "
                            "act_matmul_ref", i4 ? "act_matmul_i4" : "act_matmul", (long long)T,
                            (long long)N, (long long)K, th, act_matmul_path(T, i4));
            }
        }
    }
    lb_set_threads(saved);
    T_OK(!strcmp(act_matmul_path(8, false), matmul_i8_path()) &&
         !strcmp(act_matmul_path(1, true), matmul_i8_path()));
    free(qx), free(qw), free(px), free(pw), free(y0), free(y1);
}

/* the default path re-run with LOWBIT_ISA lowered (what matmul_i8() dispatches on) */
static void test_isa_children(void) {
    for (size_t i = 0; i < 2; i++) { /* generic, avx2 (avx512 is the default when present) */
        if (strcmp(kernels_isa(), isas[i]) == 0) continue;
        if (i == 1 && matmul_i8_isa(NULL, NULL, &(struct tensor){.type = DTYPE_Q8_0, .ne = {32, 0, 1, 1}},
                                    1, "avx2") == -2)
            continue;
        const int rc = t_isa_child(isas[i], isas[i], 0);
        if (rc) T_FAIL_("LOWBIT_ISA=%s: the sweep failed (exit %d, messages above)", isas[i], rc);
    }
}

int main(int argc, char **argv) {
    t_isa_init(argv[0]);
    if (argc == 3 && !strcmp(argv[1], "--isa-child")) {
        t_cur_name = "isa-child";
        if (strcmp(kernels_isa(), argv[2])) {
            fprintf(stderr, "  FAIL: LOWBIT_ISA=%s gave %s\n", argv[2], kernels_isa());
            return 1;
        }
        T_RUN(test_sweep_default);
        T_RUN(test_act_default);
        return t_failed != 0;
    }
    fprintf(stderr, "test_i8: matmul_i8 path %s\n", matmul_i8_path());
    T_RUN(test_names);
    T_RUN(test_quantize_edges);
    T_RUN(test_ref_vs_ggml_formula);
    T_RUN(test_fast_quant_edges);
    T_RUN(test_sweep_all_paths);
    T_RUN(test_sweep_default);
    T_RUN(test_act_default);
    T_RUN(test_threads);
    T_RUN(test_vs_fp32);
    T_RUN(test_isa_children);
    return T_DONE();
}
