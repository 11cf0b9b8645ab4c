/* tests/test_k8.c: llama.cpp's arithmetic for the Q8_K-paired GGUF types (kernels/matmul_k8.h),
 * reached through matmul_i8 (int8 compute).
 *
 * Legend: W [N][K] (ggml ne [K, N]), T tokens. Checks, for each of the 15 types:
 *  - k8_unpack against the type's dequantizer (ggml's dequantize_row_*, byte-checked elsewhere):
 *    D·sc·v − Dm·mn equals the dequantized weight up to the dequantizer's own fp32 roundings, on
 *    random blocks (every code) and on blocks quantized from random weights;
 *  - the oracle matmul_k8_ref against the plain dot product of the dequantized weights with the
 *    dequantized Q8_K activations (float64): the integer block arithmetic computes that sum;
 *  - the fast path equal to the oracle bit for bit on every ISA path the CPU has, at awkward
 *    sizes (N not a multiple of 16, T not a multiple of the tile), and the default path re-run
 *    with LOWBIT_ISA=generic|avx2 in a child (the dispatch);
 *  - 1 vs 2 threads identical; int8 compute against fp32 compute within 3% (relative Frobenius
 *    error of y; x with an 8σ outlier every 97 values sets the per-256 Q8_K scales: measured
 *    1.8-2.2%, K8_VERBOSE=1 prints them). */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/wait.h>

#include "kernels/iquants.h"
#include "kernels/matmul.h"
#include "kernels/matmul_i8.h"
#include "kernels/matmul_k8.h"
#include "kernels/quants.h"
#include "tests/t.h"
#include "tests/t_isa.h"

#include "tests/t_rng.h"
static float rng_normal(void) { return (rng_unif() + rng_unif() + rng_unif() + rng_unif()) * 0.5f; }

static const enum dtype types[] = {DTYPE_Q2_K,   DTYPE_Q3_K,    DTYPE_Q4_K,    DTYPE_Q5_K,
                                   DTYPE_Q6_K,   DTYPE_IQ4_XS,  DTYPE_IQ3_S,   DTYPE_IQ3_XXS,
                                   DTYPE_IQ2_S,  DTYPE_IQ2_XS,  DTYPE_IQ2_XXS, DTYPE_IQ1_M,
                                   DTYPE_IQ1_S,  DTYPE_TQ1_0,   DTYPE_TQ2_0};

struct owned {
    struct tensor t;
    void *buf;
};

/* a finite fp16 scale of random magnitude and sign */
static lb_fp16 rand_d(void) { return lb_f32_to_fp16(ldexpf(rng_unif(), -4 - (int)(rng_u32() % 6))); }

/* random bytes (every code), then the block's fp16 scales made finite */
static void fix_scales(enum dtype t, uint8_t *b) {
    lb_fp16 h = rand_d(), h2 = rand_d();
    switch (t) {
    case DTYPE_Q2_K: memcpy(b + offsetof(struct block_q2_k, d), &h, 2); memcpy(b + offsetof(struct block_q2_k, dmin), &h2, 2); break;
    case DTYPE_Q3_K: memcpy(b + offsetof(struct block_q3_k, d), &h, 2); break;
    case DTYPE_Q4_K: memcpy(b + offsetof(struct block_q4_k, d), &h, 2); memcpy(b + offsetof(struct block_q4_k, dmin), &h2, 2); break;
    case DTYPE_Q5_K: memcpy(b + offsetof(struct block_q5_k, d), &h, 2); memcpy(b + offsetof(struct block_q5_k, dmin), &h2, 2); break;
    case DTYPE_Q6_K: memcpy(b + offsetof(struct block_q6_k, d), &h, 2); break;
    case DTYPE_TQ1_0: memcpy(b + offsetof(struct block_tq1_0, d), &h, 2); break;
    case DTYPE_TQ2_0: memcpy(b + offsetof(struct block_tq2_0, d), &h, 2); break;
    case DTYPE_IQ1_M: { /* d in the top nibbles of the four u16 scale words */
        uint16_t s4[4];
        memcpy(s4, b + offsetof(struct block_iq1_m, scales), 8);
        for (int k = 0; k < 4; k++) s4[k] = (uint16_t)((s4[k] & 0x0fff) | ((h >> 4 * k) & 15) << 12);
        memcpy(b + offsetof(struct block_iq1_m, scales), s4, 8);
        break;
    }
    default: memcpy(b, &h, 2); break; /* the other i-quants start with d */
    }
}

static void make_raw(struct owned *o, enum dtype t, int64_t K, int64_t N) {
    const int64_t ne[2] = {K, N};
    T_OK(!tensor_init(&o->t, "wk", t, 2, ne));
    const size_t bytes = tensor_nbytes(&o->t), bsz = (size_t)dtype_get(t)->block_bytes;
    o->buf = malloc(bytes);
    for (size_t i = 0; i < bytes; i++) ((uint8_t *)o->buf)[i] = (uint8_t)rng_u32();
    for (size_t b = 0; b < bytes / bsz; b++) fix_scales(t, (uint8_t *)o->buf + b * bsz);
    o->t.data = o->buf;
}

static void make_quant(struct owned *o, enum dtype t, int64_t K, int64_t N) {
    const int64_t ne[2] = {K, N};
    T_OK(!tensor_init(&o->t, "wk", t, 2, ne));
    o->buf = malloc(tensor_nbytes(&o->t));
    float *row = malloc((size_t)K * sizeof *row);
    for (int64_t n = 0; n < N; n++) {
        for (int64_t k = 0; k < K; k++) row[k] = rng_normal() * 0.05f;
        dtype_get(t)->from_f32(row, (char *)o->buf + (size_t)n * tensor_row_bytes(&o->t), K);
    }
    free(row);
    o->t.data = o->buf;
}

static float *make_x(int T, int64_t K) {
    float *x = malloc((size_t)T * (size_t)K * sizeof *x);
    for (int64_t i = 0; i < T * K; i++) x[i] = rng_normal() * (i % 97 == 0 ? 8.0f : 1.0f);
    for (int64_t i = 0; i < K && T > 1; i++) x[K + i] = 0.0f; /* token 1: an all-zero row */
    return x;
}

static int64_t first_diff(const float *a, const float *b, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], 4)) return i;
    return -1;
}

/* ===== unpack vs dequantize ===== */

static void check_unpack(const struct tensor *w, const char *what) {
    const enum dtype t = w->type;
    const int64_t K = w->ne[0], N = tensor_nrows(w);
    const int LS = k8_sub_len(t);
    const size_t bsz = (size_t)dtype_get(t)->block_bytes;
    float *deq = malloc((size_t)K * sizeof *deq);
    int8_t v[QK_K];
    int32_t sc[16], mn[16];
    int bad = 0;
    for (int64_t n = 0; n < N && bad < 3; n++) {
        dtype_get(t)->to_f32(tensor_row(w, n), deq, K);
        for (int64_t sb = 0; sb < K / QK_K; sb++) {
            float D, Dm;
            k8_unpack(t, (const char *)tensor_row(w, n) + sb * bsz, v, sc, mn, &D, &Dm);
            for (int k = 0; k < QK_K; k++) {
                const int j = k / LS;
                const double a = (double)D * sc[j] * v[k], b = k8_has_min(t) ? (double)Dm * mn[j] : 0.0;
                const double e = a - b, g = deq[sb * QK_K + k];
                if (fabs(e - g) > 5e-7 * (fabs(a) + fabs(b)) + 1e-30) {
                    if (bad++ < 3)
                        T_FAIL_("%s %s row %lld weight %lld: unpacked %.9g, dequantized %.9g",
                                dtype_get(t)->name, what, (long long)n, (long long)(sb * QK_K + k), e, g);
                }
            }
        }
    }
    free(deq);
}

static void test_unpack(void) {
    for (size_t i = 0; i < LB_ARRAY_LEN(types); i++) {
        struct owned a, b;
        make_raw(&a, types[i], 512, 24);
        check_unpack(&a.t, "random blocks");
        make_quant(&b, types[i], 512, 8);
        check_unpack(&b.t, "quantized");
        free(a.buf);
        free(b.buf);
    }
}

/* ===== the oracle vs the float64 dot of the dequantized operands ===== */

static void test_ref_vs_dequant(void) {
    const int T = 3;
    const int64_t K = 768, N = 20;
    for (size_t i = 0; i < LB_ARRAY_LEN(types); i++) {
        struct owned o;
        make_raw(&o, types[i], K, N);
        float *x = make_x(T, K), *y = malloc((size_t)(T * N) * 4), *wr = malloc((size_t)K * 4),
              *xr = malloc((size_t)K * 4);
        struct block_q8_k *qb = malloc((size_t)(K / QK_K) * sizeof *qb);
        matmul_k8_ref(y, x, &o.t, T);
        int bad = 0;
        for (int t = 0; t < T; t++) {
            q8_k_from_f32(x + t * K, qb, K);
            q8_k_to_f32(qb, xr, K);
            for (int64_t n = 0; n < N; n++) {
                dtype_get(types[i])->to_f32(tensor_row(&o.t, n), wr, K);
                double s = 0, sa = 0;
                for (int64_t k = 0; k < K; k++) {
                    s += (double)wr[k] * xr[k];
                    sa += fabs((double)wr[k] * xr[k]);
                }
                const double e = y[t * N + n];
                if (fabs(e - s) > 2e-6 * sa + 1e-30 && bad++ < 3)
                    T_FAIL_("%s t %d n %lld: ref %.9g, float64 dot %.9g (Σ|·| %.3g)",
                            dtype_get(types[i])->name, t, (long long)n, e, s, sa);
            }
        }
        free(x), free(y), free(wr), free(xr), free(qb), free(o.buf);
    }
}

/* ===== fast path vs oracle ===== */

static const char *const isas[] = {"generic", "avx2", "avx512"};

static void check_fast(const struct tensor *w, const float *x, int T, bool all_paths) {
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
            T_FAIL_("%s %s K=%lld N=%lld T=%d: y[%lld] fast %.9g ref %.9g",
                    all_paths ? isas[i] : matmul_k8_path(), dtype_get(w->type)->name,
                    (long long)w->ne[0], (long long)N, T, (long long)d, yf[d], yr[d]);
    }
    free(yr);
    free(yf);
}

static void sweep(bool all_paths) {
    static const int64_t Ks[] = {256, 768};
    static const int64_t Ns[] = {1, 17, 40};
    static const int Ts[] = {1, 2, 5, 7};
    for (size_t i = 0; i < LB_ARRAY_LEN(types); i++)
        for (size_t ik = 0; ik < LB_ARRAY_LEN(Ks); ik++)
            for (size_t in = 0; in < LB_ARRAY_LEN(Ns); in++) {
                struct owned o;
                make_raw(&o, types[i], Ks[ik], Ns[in]);
                for (size_t it = 0; it < LB_ARRAY_LEN(Ts); it++) {
                    float *x = make_x(Ts[it], Ks[ik]);
                    check_fast(&o.t, x, Ts[it], all_paths);
                    free(x);
                }
                free(o.buf);
            }
}
static void test_sweep_all_paths(void) { sweep(true); }
static void test_sweep_default(void) { sweep(false); }

static void test_threads(void) {
    const int saved = lb_threads();
    static const enum dtype tt[] = {DTYPE_Q4_K, DTYPE_Q6_K, DTYPE_IQ2_XS};
    for (size_t i = 0; i < LB_ARRAY_LEN(tt); i++) {
        struct owned o;
        make_raw(&o, tt[i], 1024, 333);
        const int T = 37;
        const int64_t N = 333;
        float *x = make_x(T, 1024), *y1 = malloc((size_t)(T * N) * 4), *y2 = malloc((size_t)(T * N) * 4);
        lb_set_threads(1);
        T_EQ_INT(matmul_i8(y1, x, &o.t, T), 0);
        lb_set_threads(2);
        T_EQ_INT(matmul_i8(y2, x, &o.t, T), 0);
        const int64_t d = first_diff(y1, y2, T * N);
        if (d >= 0) T_FAIL_("%s: 1 vs 2 threads differ at %lld", dtype_get(tt[i])->name, (long long)d);
        free(x), free(y1), free(y2), free(o.buf);
    }
    lb_set_threads(saved);
}

/* int8 compute against fp32 compute on quantized random weights: the Q8_K rounding of x only */
static void test_vs_fp32(void) {
    const int T = 9;
    const int64_t K = 1024, N = 64;
    for (size_t i = 0; i < LB_ARRAY_LEN(types); i++) {
        struct owned o;
        make_quant(&o, types[i], K, N);
        float *x = make_x(T, K), *y8 = malloc((size_t)(T * N) * 4), *yf = malloc((size_t)(T * N) * 4);
        for (int64_t k = 0; k < K; k++) x[K + k] = rng_normal(); /* no all-zero row here */
        T_EQ_INT(matmul_i8(y8, x, &o.t, T), 0);
        matmul_ref(yf, x, &o.t, T);
        double num = 0, den = 0;
        for (int64_t j = 0; j < T * N; j++) {
            num += (double)(y8[j] - yf[j]) * (y8[j] - yf[j]);
            den += (double)yf[j] * yf[j];
        }
        const double rel = sqrt(num / den);
        if (getenv("K8_VERBOSE")) fprintf(stderr, "  %s: int8 vs fp32 %.4f\n", dtype_get(types[i])->name, rel);
        if (!(rel < 0.03)) T_FAIL_("%s: int8 vs fp32 relative error %.4f", dtype_get(types[i])->name, rel);
        free(x), free(y8), free(yf), free(o.buf);
    }
}

static void test_names(void) {
    for (size_t i = 0; i < LB_ARRAY_LEN(types); i++) {
        T_OK(k8_supported(types[i]) && matmul_i8_supported(types[i]));
        struct tensor w = {.type = types[i], .ne = {512, 4, 1, 1}};
        T_OK(matmul_i8_tensor_ok(&w));
    }
    T_OK(!k8_supported(DTYPE_Q8_K) && !k8_supported(DTYPE_Q4_0) && !k8_supported(DTYPE_F16));
    T_OK(matmul_i8_supported(DTYPE_IQ4_NL));
}

static void test_isa_children(void) {
    for (size_t i = 0; i < 2; i++) {
        if (strcmp(kernels_isa(), isas[i]) == 0 || cpu_isa_usable(isas[i]) < 0) continue;
        const int rc = t_isa_child(isas[i], isas[i], 0);
        if (rc) T_FAIL_("LOWBIT_ISA=%s: the sweep failed (exit %d, messages above)", isas[i], rc);
    }
}

int main(int argc, char **argv) {
    t_isa_init(argv[0]);
    if (argc == 3 && !strcmp(argv[1], "--isa-child")) {
        t_cur_name = "isa-child";
        const char *want = !strcmp(argv[2], "generic") ? "generic" : "avx2";
        if (strcmp(kernels_isa(), argv[2]) || strcmp(matmul_k8_path(), want)) {
            fprintf(stderr, "  FAIL: LOWBIT_ISA=%s gave %s (k8 %s)\n", argv[2], kernels_isa(),
                    matmul_k8_path());
            return 1;
        }
        T_RUN(test_sweep_default);
        return t_failed != 0;
    }
    fprintf(stderr, "test_k8: matmul_k8 path %s\n", matmul_k8_path());
    T_RUN(test_names);
    T_RUN(test_unpack);
    T_RUN(test_ref_vs_dequant);
    T_RUN(test_sweep_all_paths);
    T_RUN(test_sweep_default);
    T_RUN(test_threads);
    T_RUN(test_vs_fp32);
    T_RUN(test_isa_children);
    return T_DONE();
}
