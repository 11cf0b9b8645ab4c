/* tests/test_matmul.c: matmul (every dtype, every ISA path this CPU has) against matmul_ref, thread
 * determinism, and the fp16/bf16/q8_0 conversions of kernels/dtype.h.
 *
 * Tolerances. matmul and matmul_ref multiply the same dequantized weights (f16/bf16 → f32 exact,
 * q8_0 = d*q rounded once) by the same x and differ only in summation order and FMA, so each
 * y[t][n] obeys the fp32 summation bound |fast - ref| <= 2·(K+4)·2⁻²⁴·S, S = Σ_k |w[n][k]·x[t][k]|
 * (each side is within (K+4)·u·S of the exact sum; +4 covers the lane-reduction tree): one
 * tolerance for every dtype, because the dtypes differ only in the weights both sides share. The
 * same bound, one-sided, checks matmul_ref against a double-precision sum. With integer-valued
 * data every partial sum is exact, so there fast == ref bit for bit, whatever the dtype.
 *
 * ISA paths: this binary runs the sweep on the default path, then re-runs itself with
 * LOWBIT_ISA=<isa> ("--isa-child" argument) for every other path the CPU supports. The other
 * dtypes (converted to f32 rows, then the f32 kernels every path's sweep covers) run on the
 * default path only. */
#include <float.h>
#include <stdint.h>
#include <sys/wait.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>
#define T_X86 1
#else
#define T_X86 0
#endif

#include "kernels/attention.h"
#include "kernels/matmul.h"
#include "kernels/qint.h"
#include "t.h"
#include "t_isa.h"

/* ---- data ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rng_u32(void) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng_state >> 32);
}
/* uniform in [-1, 1) */
static float rng_f(void) { return (float)(rng_u32() >> 8) * (2.0f / 16777216.0f) - 1.0f; }
/* integer in [-8, 8] */
static float rng_int(void) { return (float)((int)(rng_u32() % 17) - 8); }

enum fill { FILL_RANDOM, FILL_INT };

/* w: [N][K] of type t (data owned, free w->data); wf: the dequantized [N][K] (caller frees) */
static float *make_weight(struct tensor *w, enum dtype t, int64_t K, int64_t N, enum fill fill) {
    const int64_t ne[2] = {K, N};
    if (tensor_init(w, "w", t, 2, ne)) return NULL;
    w->data = malloc(tensor_nbytes(w));
    float *wf = malloc((size_t)(N * K) * sizeof(float));
    float *src = malloc((size_t)K * sizeof(float));
    for (int64_t n = 0; n < N; n++) {
        void *row = (char *)w->data + (size_t)n * tensor_row_bytes(w);
        if (fill == FILL_INT && t == DTYPE_Q8_0) { /* d = 1, q in [-8, 8]: exact values */
            struct block_q8_0 *b = row;
            for (int64_t i = 0; i < K / QK8_0; i++) {
                b[i].d = lb_f32_to_fp16(1.0f);
                for (int j = 0; j < QK8_0; j++) b[i].qs[j] = (int8_t)rng_int();
            }
        } else {
            /* rows of different scales, so q8_0 gets varied d */
            const float scale = fill == FILL_INT ? 1.0f : 0.05f * (float)(1 + n % 7);
            for (int64_t k = 0; k < K; k++)
                src[k] = (fill == FILL_INT ? rng_int() : rng_f()) * scale;
            dtype_get(t)->from_f32(src, row, K);
        }
        tensor_row_to_f32(w, n, wf + n * K);
    }
    free(src);
    return wf;
}

static float *make_x(int n_tok, int64_t K, enum fill fill) {
    float *x = malloc((size_t)(n_tok * K) * sizeof(float));
    for (int64_t i = 0; i < n_tok * K; i++) x[i] = fill == FILL_INT ? rng_int() : rng_f();
    return x;
}

/* ---- matmul vs matmul_ref ---- */

static int n_reported; /* failures printed so far (the sweep stops printing after a few) */

/* matmul vs matmul_ref for one weight (wf: its rows dequantized, [N][K]); 0 when within
 * tolerance */
static int check_w(const struct tensor *w, const float *wf, int n_tok, enum fill fill) {
    const int64_t K = w->ne[0], N = tensor_nrows(w);
    float *x = make_x(n_tok, K, fill);
    float *y = malloc((size_t)(n_tok * N) * sizeof(float));
    float *yr = malloc((size_t)(n_tok * N) * sizeof(float));
    for (int64_t i = 0; i < n_tok * N; i++) y[i] = yr[i] = NAN; /* catch unwritten outputs */
    matmul(y, x, w, n_tok);
    matmul_ref(yr, x, w, n_tok);
    const double u = 1.0 / 16777216.0;  /* 2^-24 */
    const int exact = fill == FILL_INT; /* integer data: every partial sum is exact */
    double maxdiff = 0.0;
    int64_t first_bad = -1, first_bad_ref = -1;
    for (int tk = 0; tk < n_tok; tk++) {
        for (int64_t n = 0; n < N; n++) {
            const int64_t i = tk * N + n;
            const double diff = fabs((double)y[i] - (double)yr[i]);
            if (!(diff <= maxdiff)) maxdiff = diff; /* NaN propagates */
            if (exact) {
                if (diff != 0.0 && first_bad < 0) first_bad = i;
                continue;
            }
            double s = 0.0, sabs = 0.0;
            for (int64_t k = 0; k < K; k++) {
                const double p = (double)wf[n * K + k] * (double)x[tk * K + k];
                s += p;
                sabs += fabs(p);
            }
            const double bound = (double)(K + 4) * u * sabs + FLT_MIN;
            if (!(diff <= 2.0 * bound) && first_bad < 0) first_bad = i;
            if (!(fabs((double)yr[i] - s) <= bound) && first_bad_ref < 0) first_bad_ref = i;
        }
    }
    const int bad = first_bad >= 0 || first_bad_ref >= 0;
    if (bad && n_reported++ < 8) {
        const int64_t i = first_bad >= 0 ? first_bad : first_bad_ref;
        T_FAIL_("%s %s %s T=%d K=%lld N=%lld: maxdiff %.3g, first bad index [%lld][%lld]: fast "
                "%.9g ref %.9g%s",
                kernels_isa(), dtype_get(w->type)->name, fill == FILL_INT ? "int" : "random", n_tok,
                (long long)K, (long long)N, maxdiff, (long long)(i / N), (long long)(i % N),
                (double)y[i], (double)yr[i], first_bad < 0 ? " (ref vs double sum)" : "");
    } else if (bad) {
        t_cur_failed = 1;
    }
    free(x);
    free(y);
    free(yr);
    return bad;
}

static int check_shape(enum dtype t, int n_tok, int64_t K, int64_t N, enum fill fill) {
    struct tensor w;
    float *wf = make_weight(&w, t, K, N, fill);
    const int bad = check_w(&w, wf, n_tok, fill);
    free(w.data);
    free(wf);
    return bad;
}

/* the dtypes with their own kernels in matmul.c; the others go through tensor_row_to_f32 */
static const enum dtype native[] = {DTYPE_F32, DTYPE_F16, DTYPE_BF16, DTYPE_Q8_0};

/* every dtype at awkward sizes: T crosses the GEMV/GEMM switch and the MR tile, K crosses the
 * 16/8-lane vectors and the K block (256), N crosses the NR panel and the unit size. One thread:
 * thousands of small calls, where waking a team costs more than the work on a busy machine (the
 * thread split is covered by test_threads_deterministic and test_big_shapes). */
static void sweep(enum fill fill) {
    const int saved = lb_threads();
    lb_set_threads(1);
    static const int toks[] = {1, 2, 3, 5, 7, 8, 15, 17, 33, 64};
    static const int64_t ks[] = {32, 64, 96, 288, 800, 1, 3, 17, 31, 65};
    static const int64_t ns[] = {1, 3, 7, 31, 33, 100, 257};
    for (size_t idt = 0; idt < LB_ARRAY_LEN(native); idt++) {
        const enum dtype t = native[idt];
        const int block = dtype_get(t)->block;
        for (size_t ik = 0; ik < LB_ARRAY_LEN(ks); ik++) {
            if (ks[ik] % block) continue; /* q8_0: K in {32, 64, 96, 288, 800} */
            for (size_t it = 0; it < LB_ARRAY_LEN(toks); it++)
                for (size_t in = 0; in < LB_ARRAY_LEN(ns); in++)
                    check_shape(t, toks[it], ks[ik], ns[in], fill);
        }
    }
    lb_set_threads(saved);
}

static void test_sweep_random(void) { sweep(FILL_RANDOM); }
static void test_sweep_int_exact(void) { sweep(FILL_INT); }

/* larger shapes: several units in N and in T (T > 576 tokens per unit), K over 3 blocks, and a
 * 3-d weight (N = ne[1]·ne[2]) */
static void test_big_shapes(void) {
    for (size_t i = 0; i < LB_ARRAY_LEN(native); i++) {
        const enum dtype t = native[i];
        check_shape(t, 600, 64, 40, FILL_RANDOM);
        check_shape(t, 100, 800, 300, FILL_RANDOM);
        check_shape(t, 1, 2048, 300, FILL_RANDOM);
    }
    struct tensor w;
    const int64_t ne[3] = {96, 5, 3};
    T_OK(!tensor_init(&w, "w3", DTYPE_F16, 3, ne));
    w.data = calloc(1, tensor_nbytes(&w));
    lb_fp16 *h = w.data;
    for (int64_t i = 0; i < tensor_nelements(&w); i++) h[i] = lb_f32_to_fp16(rng_int());
    float *x = make_x(40, 96, FILL_INT), y[40 * 15], yr[40 * 15];
    matmul(y, x, &w, 40);
    matmul_ref(yr, x, &w, 40);
    T_OK(!memcmp(y, yr, sizeof y));
    free(x);
    free(w.data);
}

/* the same call on 1, 2 and 3 threads gives bit-identical output */
static void check_threads(const struct tensor *w, int n_tok) {
#ifdef _OPENMP
    const int64_t K = w->ne[0], N = tensor_nrows(w);
    const int saved = lb_threads();
    float *x = make_x(n_tok, K, FILL_RANDOM);
    const size_t bytes = (size_t)(n_tok * N) * sizeof(float);
    float *y1 = malloc(bytes), *y2 = malloc(bytes);
    lb_set_threads(1);
    matmul(y1, x, w, n_tok);
    for (int nth = 2; nth <= 3; nth++) {
        lb_set_threads(nth);
        memset(y2, 0, bytes);
        matmul(y2, x, w, n_tok);
        if (memcmp(y1, y2, bytes)) {
            int64_t i = 0;
            while (!memcmp(&y1[i], &y2[i], sizeof(float))) i++;
            T_FAIL_("%s %s T=%d K=%lld N=%lld: 1 vs %d threads differ first at [%lld][%lld] "
                    "(%.9g vs %.9g)",
                    kernels_isa(), dtype_get(w->type)->name, n_tok, (long long)K, (long long)N, nth,
                    (long long)(i / N), (long long)(i % N), (double)y1[i], (double)y2[i]);
        }
    }
    lb_set_threads(saved);
    free(x);
    free(y1);
    free(y2);
#else
    (void)w, (void)n_tok;
#endif
}

/* GEMV and GEMM paths; every shape is above matmul's size for going parallel */
static void test_threads_deterministic(void) {
    static const int shapes[][3] = {{1, 800, 257}, {5, 65, 1000}, {33, 800, 257}, {100, 288, 1000}};
    for (size_t it = 0; it < LB_ARRAY_LEN(native); it++) {
        const enum dtype t = native[it];
        for (size_t s = 0; s < LB_ARRAY_LEN(shapes); s++) {
            const int64_t K = t == DTYPE_Q8_0 ? 800 : shapes[s][1], N = shapes[s][2];
            struct tensor w;
            float *wf = make_weight(&w, t, K, N, FILL_RANDOM);
            check_threads(&w, shapes[s][0]);
            free(w.data);
            free(wf);
        }
    }
}

/* every other dtype goes through tensor_row_to_f32 (or, for the parametric ones, whatever matmul
 * forwards to): the GGUF block types quantized by their dtype.c quantizers, and a 4-bit qint
 * tensor with groups of 32; same tolerance, same thread determinism */
static void test_other_dtypes(void) {
    static const int toks[] = {1, 3, 5, 33, 64};
    static const int64_t ns[] = {1, 7, 33, 100};
    const int saved = lb_threads();
    lb_set_threads(1);
    for (int t = 0; t < DTYPE_COUNT; t++) {
        int is_native = 0;
        for (size_t i = 0; i < LB_ARRAY_LEN(native); i++) is_native |= native[i] == (enum dtype)t;
        if (is_native || dtype_is_parametric(t)) continue;
        const int64_t block = dtype_get(t)->block;
        const int64_t ks[] = {block, 3 * block, block == 32 ? 800 : 768};
        for (size_t ik = 0; ik < LB_ARRAY_LEN(ks); ik++) {
            /* quantized once (the ggml quantizers are slow), the first N rows of it per shape */
            struct tensor w;
            float *wf = make_weight(&w, t, ks[ik], ns[LB_ARRAY_LEN(ns) - 1], FILL_RANDOM);
            for (size_t in = 0; in < LB_ARRAY_LEN(ns); in++) {
                w.ne[1] = ns[in];
                for (size_t it = 0; it < LB_ARRAY_LEN(toks); it++)
                    check_w(&w, wf, toks[it], FILL_RANDOM);
            }
            free(w.data);
            free(wf);
        }
    }
    lb_set_threads(saved);
    struct tensor w;
    float *wf = make_weight(&w, DTYPE_Q4_K, 768, 300, FILL_RANDOM);
    check_threads(&w, 1);
    check_threads(&w, 64);
    free(w.data);
    free(wf);

    /* qint: w = d·(q − z), q in 0..15, z = 8, d in [-0.1, 0.1) per group of 32 */
    const int64_t K = 96, N = 333;
    T_OK(!qint_tensor_init(&w, "qint", K, N, 4, 32, false));
    void *buf = calloc(1, qint_tensor_bytes(K, N, 4, 32, false));
    qint_tensor_attach(&w, buf, false);
    struct qint_param *par = qint_params(&w);
    for (int64_t i = 0; i < N * qint_n_groups(32, K); i++)
        par[i] = (struct qint_param){0.1f * rng_f(), 8};
    for (int64_t n = 0; n < N; n++)
        for (int64_t k = 0; k < K; k++)
            qint_code_set((uint8_t *)tensor_row(&w, n), 4, k, rng_u32() % 16);
    wf = malloc((size_t)(N * K) * sizeof(float));
    for (int64_t n = 0; n < N; n++) tensor_row_to_f32(&w, n, wf + n * K);
    for (size_t it = 0; it < LB_ARRAY_LEN(toks); it++) check_w(&w, wf, toks[it], FILL_RANDOM);
    check_threads(&w, 1);
    check_threads(&w, 64);
    free(wf);
    free(buf);
}

/* ---- attention (kernels/attention.c) ---- */

static uint64_t att_rng = 88172645463325252ull;
static float att_uniform(void) { /* [-1, 1) */
    att_rng ^= att_rng << 13, att_rng ^= att_rng >> 7, att_rng ^= att_rng << 17;
    return (float)((att_rng >> 40) * (2.0 / 16777216.0) - 1.0);
}

struct att_case {
    int nh, nkv, hd, T, pos0;
};

/* a cache of pos0 + T + 3 positions; keys past the last one and value rows past it are NaN (the
 * fast path must mask or never read them); out has a canary row after T */
static double att_run(const struct att_case *c, int check_threads) {
    const int n_ctx = c->pos0 + c->T + 3, nk = c->pos0 + c->T;
    const int64_t ldk = attn_ldk(n_ctx), ldv = attn_ldv(c->hd), qd = (int64_t)c->nh * c->hd;
    const struct attn_shape s = {.T = c->T, .pos0 = c->pos0, .n_heads = c->nh,
                                 .n_kv_heads = c->nkv, .head_dim = c->hd, .ldk = ldk, .ldv = ldv,
                                 .kt_head = c->hd * ldk, .v_head = n_ctx * ldv};
    float *q = malloc(sizeof(float) * (size_t)(c->T * qd));
    float *kt = malloc(sizeof(float) * (size_t)(c->nkv * s.kt_head));
    float *v = malloc(sizeof(float) * (size_t)(c->nkv * s.v_head));
    float *o_ref = malloc(sizeof(float) * (size_t)(c->T * qd));
    float *o = malloc(sizeof(float) * (size_t)((c->T + 1) * qd));
    float *o2 = malloc(sizeof(float) * (size_t)((c->T + 1) * qd));
    for (int64_t i = 0; i < c->T * qd; i++) q[i] = 3 * att_uniform();
    for (int g = 0; g < c->nkv; g++)
        for (int i = 0; i < c->hd; i++)
            for (int64_t j = 0; j < ldk; j++)
                kt[g * s.kt_head + i * ldk + j] = j < nk ? att_uniform() : NAN;
    for (int g = 0; g < c->nkv; g++)
        for (int j = 0; j < n_ctx; j++)
            for (int64_t i = 0; i < ldv; i++)
                v[g * s.v_head + j * ldv + i] = j >= nk ? NAN : i < c->hd ? att_uniform() : 0;
    for (int64_t i = 0; i < (c->T + 1) * qd; i++) o[i] = o2[i] = -7.0f;
    attention_ref(o_ref, q, kt, v, &s);
    const int saved = lb_threads();
    lb_set_threads(1);
    T_EQ_INT(attention(o, q, kt, v, &s), 0);
    double md = 0;
    for (int64_t i = 0; i < c->T * qd; i++) {
        const double d = fabs((double)o[i] - o_ref[i]);
        md = d > md || d != d ? d : md;
    }
    for (int64_t i = c->T * qd; i < (c->T + 1) * qd; i++) T_OK(o[i] == -7.0f);
    if (check_threads) {
        lb_set_threads(2);
        T_EQ_INT(attention(o2, q, kt, v, &s), 0);
        T_OK(!memcmp(o, o2, sizeof(float) * (size_t)(c->T * qd)));
    }
    lb_set_threads(saved);
    free(q), free(kt), free(v), free(o_ref), free(o), free(o2);
    return md;
}

/* the fast path against attention_ref: head sizes that are and are not whole vectors, GQA, single
 * tokens (decode), partial query blocks, continuations after a cached prefix; 1 and 2 threads
 * give the same bits */
static void test_attention_sweep(void) {
    static const int heads[][3] = {{1, 1, 8}, {4, 2, 16}, {3, 1, 24}, {6, 2, 64}, {2, 2, 80},
                                   {2, 1, 128}};
    static const int tp[][2] = {{1, 0}, {1, 37}, {5, 0}, {6, 0}, {7, 3}, {13, 31}, {37, 33},
                                {64, 0}};
    double worst = 0;
    for (size_t a = 0; a < LB_ARRAY_LEN(heads); a++)
        for (size_t b = 0; b < LB_ARRAY_LEN(tp); b++) {
            const struct att_case c = {heads[a][0], heads[a][1], heads[a][2], tp[b][0], tp[b][1]};
            const double md = att_run(&c, b % 2);
            if (!(md <= 2e-6))
                T_FAIL_("attention %s nh %d nkv %d hd %d T %d pos0 %d: max|fast - ref| %.3g",
                        kernels_isa(), c.nh, c.nkv, c.hd, c.T, c.pos0, md);
            worst = md > worst ? md : worst;
        }
    printf("  attention (%s) vs attention_ref: max|diff| %.3g over %zu shapes\n", kernels_isa(),
           worst, LB_ARRAY_LEN(heads) * LB_ARRAY_LEN(tp));
}

/* attn_exp against exp in double over [-100, 0]: within 3e-7 relative (about 2 ulp) above -87.3, 0 below, NaN stays */
static void test_attn_exp(void) {
    double worst = 0;
    for (int i = 0; i <= 1000000; i++) {
        const float x = -100.0f * (float)i / 1000000;
        const double want = x < -87.3f ? 0 : exp((double)x), got = attn_exp(x);
        const double rel = want ? fabs(got - want) / want : fabs(got);
        worst = rel > worst ? rel : worst;
    }
    T_OK(worst < 3e-7);
    T_OK(attn_exp(0) == 1.0f);
    T_OK(attn_exp(-INFINITY) == 0);
    T_OK(isnan(attn_exp(NAN)));
    printf("  attn_exp vs exp: max relative error %.3g\n", worst);
}

/* ---- ISA paths ---- */

static const char *const isa_names[] = {"generic", "avx2", "avx512"};

#if T_X86
/* F16C from CPUID leaf 1 (ECX bit 29) plus OS-enabled AVX state (clang's __builtin_cpu_supports
 * does not know "f16c") */
static int has_f16c(void) {
    unsigned a, b, c, d;
    __builtin_cpu_init();
    return __get_cpuid(1, &a, &b, &c, &d) && (c >> 29 & 1) && __builtin_cpu_supports("avx");
}
#endif

/* the paths this CPU can run, checked here independently of kernels/matmul.c */
static int isa_supported(int i) {
    if (i == 0) return 1;
#if T_X86
    const int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c();
    if (i == 1) return avx2;
    return avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl");
#else
    return 0;
#endif
}

/* the default path is the widest the CPU has; every other supported path passes the whole sweep
 * (in a child with LOWBIT_ISA set); an unknown LOWBIT_ISA keeps the widest */
static void test_isa_paths(void) {
    int best = 0;
    for (int i = 0; i < (int)LB_ARRAY_LEN(isa_names); i++)
        if (isa_supported(i)) best = i;
    const char *env = getenv("LOWBIT_ISA");
    if (!env || !*env) T_EQ_STR(kernels_isa(), isa_names[best]);
    for (int i = 0; i < (int)LB_ARRAY_LEN(isa_names); i++) {
        if (!isa_supported(i) || !strcmp(isa_names[i], kernels_isa())) continue;
        const int rc = t_isa_child(isa_names[i], isa_names[i], 0);
        if (rc)
            T_FAIL_("LOWBIT_ISA=%s: the sweep failed (exit %d, messages above)", isa_names[i], rc);
    }
    T_EQ_INT(t_isa_child("bogus", isa_names[best], 1), 0);
}

static void test_fma_peak(void) {
    const double g = kernels_fma_peak_gflops(1, 0.02);
    T_OK(g > 0.1 && g < 1e5);
}

/* ---- fp16 / bf16 / q8_0 conversions ---- */

static float f32_of(uint32_t bits) {
    float f;
    memcpy(&f, &bits, 4);
    return f;
}
static uint32_t bits_of(float f) {
    uint32_t b;
    memcpy(&b, &f, 4);
    return b;
}
static int fp16_is_nan(lb_fp16 h) { return (h & 0x7c00) == 0x7c00 && (h & 0x3ff); }

/* every fp16 pattern: f16 → f32 → f16 is the identity, NaN stays NaN; the f32 value is exact
 * (checked against sign·mantissa·2^exp in double) */
static void test_fp16_roundtrip(void) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        const float f = lb_fp16_to_f32((lb_fp16)h);
        const int e = (h >> 10) & 0x1f, m = h & 0x3ff;
        const double mag = e == 31  ? (m ? NAN : INFINITY)
                           : e == 0 ? ldexp(m, -24)
                                    : ldexp(1024 + m, e - 25);
        const double v = h & 0x8000 ? -mag : mag;
        const lb_fp16 back = lb_f32_to_fp16(f);
        const int ok = fp16_is_nan((lb_fp16)h)
                           ? isnan(f) && fp16_is_nan(back) && (back & 0x8000) == (h & 0x8000)
                           : back == h && (double)f == v && !!signbit(f) == !!(h & 0x8000);
        if (!ok && bad++ < 5) T_FAIL_("fp16 0x%04x -> %.9g -> 0x%04x", h, (double)f, back);
    }
}

/* every bf16 pattern round-trips (NaN stays NaN) */
static void test_bf16_roundtrip(void) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        const float f = lb_bf16_to_f32((lb_bf16)h);
        const lb_bf16 back = lb_f32_to_bf16(f);
        const int is_nan = (h & 0x7f80) == 0x7f80 && (h & 0x7f);
        const int ok = is_nan ? isnan(f) && (back & 0x7f80) == 0x7f80 && (back & 0x7f)
                              : back == h && bits_of(f) == h << 16;
        if (!ok && bad++ < 5) T_FAIL_("bf16 0x%04x -> %.9g -> 0x%04x", h, (double)f, back);
    }
}

/* f32 inputs that probe rounding: every fp16/bf16 value, the ties between neighbours and one f32
 * ulp either side, then random bit patterns */
static float probe(uint32_t i, int bf16) {
    if (i < 4 * 65536) {
        const uint32_t h = i >> 2, kind = i & 3;
        uint32_t b = bf16 ? h << 16 : bits_of(lb_fp16_to_f32((lb_fp16)h));
        if (kind == 0 || (h & 0x7fff) >= (bf16 ? 0x7f80u : 0x7c00u)) return f32_of(b);
        /* the midpoint between h and the next magnitude, computed in double (exact) */
        const double lo = fabs((double)f32_of(b));
        const double hi = bf16 ? fabs((double)lb_bf16_to_f32((lb_bf16)(h + 1)))
                               : fabs((double)lb_fp16_to_f32((lb_fp16)(h + 1)));
        const double hi_fin = isinf(hi) ? (bf16 ? ldexp(1.0, 128) : 65536.0) : hi;
        float mid = (float)((lo + hi_fin) / 2);
        if (h & 0x8000) mid = -mid;
        b = bits_of(mid);
        return f32_of(kind == 1 ? b : kind == 2 ? b + 1 : b - 1);
    }
    return f32_of(rng_u32());
}
#define N_PROBES (4 * 65536 + 400000)

/* the nearest representable value, ties to even, by direct comparison in double: an oracle
 * independent of the bit tricks in dtype.h. lo/hi are the two candidates (magnitude bits). */
static int rne_ok(float f, double vlo, double vhi, uint32_t lo_bits, uint32_t got_mag) {
    const double a = fabs((double)f), dlo = a - vlo, dhi = vhi - a;
    uint32_t want = dlo < dhi   ? lo_bits
                    : dhi < dlo ? lo_bits + 1
                                : (lo_bits & 1 ? lo_bits + 1 : lo_bits);
    return got_mag == want;
}

static void test_fp16_rounding(void) {
    int bad = 0;
    for (uint32_t i = 0; i < N_PROBES; i++) {
        const float f = probe(i, 0);
        const lb_fp16 h = lb_f32_to_fp16(f);
        int ok;
        if (isnan(f)) {
            ok = fp16_is_nan(h);
        } else {
            /* lo: the largest fp16 magnitude <= |f| (65504 + one more step counts as inf) */
            const double a = fabs((double)f);
            uint32_t lo = 0;
            for (uint32_t step = 0x4000; step; step >>= 1)
                if (lo + step <= 0x7c00 &&
                    (lo + step == 0x7c00 ? 65536.0
                                         : (double)lb_fp16_to_f32((lb_fp16)(lo + step))) <= a)
                    lo += step;
            if (lo >= 0x7c00) {
                ok = (h & 0x7fff) == 0x7c00;
            } else {
                const double vlo = lb_fp16_to_f32((lb_fp16)lo);
                const double vhi = lo + 1 == 0x7c00 ? 65536.0 : lb_fp16_to_f32((lb_fp16)(lo + 1));
                ok = rne_ok(f, vlo, vhi, lo, h & 0x7fff);
            }
            ok = ok && (h >> 15) == (bits_of(f) >> 31);
        }
        if (!ok && bad++ < 5) T_FAIL_("f32 %.9g (0x%08x) -> fp16 0x%04x", (double)f, bits_of(f), h);
    }
}

static void test_bf16_rounding(void) {
    int bad = 0;
    for (uint32_t i = 0; i < N_PROBES; i++) {
        const float f = probe(i, 1);
        const lb_bf16 b = lb_f32_to_bf16(f);
        int ok;
        if (isnan(f)) {
            ok = (b & 0x7f80) == 0x7f80 && (b & 0x7f);
        } else if (isinf(f)) {
            ok = b == bits_of(f) >> 16;
        } else {
            const uint32_t lo = (bits_of(f) & 0x7fffffff) >> 16; /* truncation */
            const double vlo = lb_bf16_to_f32((lb_bf16)lo);
            const double vhi =
                lo + 1 == 0x7f80 ? ldexp(1.0, 128) : lb_bf16_to_f32((lb_bf16)(lo + 1));
            ok = rne_ok(f, vlo, vhi, lo, b & 0x7fff) && (b >> 15) == (bits_of(f) >> 31);
        }
        if (!ok && bad++ < 5) T_FAIL_("f32 %.9g (0x%08x) -> bf16 0x%04x", (double)f, bits_of(f), b);
    }
}

#if T_X86
__attribute__((target("f16c"))) static void f16c_to_f32_matches(int *n_bad) {
    for (uint32_t h = 0; h < 65536; h++) {
        const float hw = _cvtsh_ss((unsigned short)h), sw = lb_fp16_to_f32((lb_fp16)h);
        const int ok =
            fp16_is_nan((lb_fp16)h) ? isnan(hw) && isnan(sw) : bits_of(hw) == bits_of(sw);
        if (!ok && (*n_bad)++ < 5)
            T_FAIL_("fp16 0x%04x: F16C %.9g, lb_fp16_to_f32 %.9g", h, (double)hw, (double)sw);
    }
}
__attribute__((target("f16c"))) static void f16c_from_f32_matches(int *n_bad) {
    for (uint32_t i = 0; i < N_PROBES; i++) {
        const float f = probe(i, 0);
        const lb_fp16 hw = (lb_fp16)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT), sw = lb_f32_to_fp16(f);
        const int ok = isnan(f) ? fp16_is_nan(hw) && fp16_is_nan(sw) : hw == sw;
        if (!ok && (*n_bad)++ < 5)
            T_FAIL_("f32 %.9g (0x%08x): F16C 0x%04x, lb_f32_to_fp16 0x%04x", (double)f, bits_of(f),
                    hw, sw);
    }
}
#endif

/* lb_fp16 conversions agree with the F16C instructions (when the CPU has them) */
static void test_fp16_vs_f16c(void) {
#if T_X86
    if (!has_f16c()) return;
    int bad = 0;
    f16c_to_f32_matches(&bad);
    f16c_from_f32_matches(&bad);
#endif
}

/* q8_0 quantize → dequantize: |x - d'q| <= d/2 + |q|·|d - d'| per element, where d = amax/127 and
 * d' is d rounded to fp16 (the stored scale): q = round(x/d) is within d/2 before that rounding,
 * plus 1e-4·d for the fp32 rounding of x·(1/d) and of d'·q */
static void test_q8_0_roundtrip(void) {
    enum { K = 32 * 64 };
    static float src[K], back[K];
    static struct block_q8_0 blk[K / QK8_0];
    int bad = 0;
    for (int rep = 0; rep < 8; rep++) {
        const float scale = rep == 7 ? 0.0f : powf(10.0f, (float)(rep - 3)); /* 1e-3 .. 1e3, 0 */
        for (int i = 0; i < K; i++) src[i] = rng_f() * scale * (i % 64 < 32 ? 1.0f : 0.01f);
        dtype_get(DTYPE_Q8_0)->from_f32(src, blk, K);
        dtype_get(DTYPE_Q8_0)->to_f32(blk, back, K);
        for (int b = 0; b < K / QK8_0; b++) {
            float amax = 0.0f;
            for (int j = 0; j < QK8_0; j++) amax = fmaxf(amax, fabsf(src[b * QK8_0 + j]));
            const double d = amax / 127.0f, ds = lb_fp16_to_f32(blk[b].d);
            for (int j = 0; j < QK8_0; j++) {
                const int i = b * QK8_0 + j;
                const double tol = d * (0.5 + 1e-4) + abs(blk[b].qs[j]) * fabs(d - ds);
                if (!(fabs((double)src[i] - (double)back[i]) <= tol) && bad++ < 5)
                    T_FAIL_("q8_0 element %d: %.9g -> %.9g (d %.6g, tol %.3g)", i, (double)src[i],
                            (double)back[i], d, tol);
            }
        }
    }
}

/* ---- out of memory: an error the caller reports, never an abort (matmul.h: kscratch) ---- */

static void test_scratch_oom(void) {
    enum { K = 96, N = 80, T = 70 }; /* T above every path's GEMV limit: the GEMM needs scratch */
    float *x = malloc(sizeof(float) * T * K), *wd = malloc(sizeof(float) * N * K);
    float *y = malloc(sizeof(float) * T * N), *y2 = malloc(sizeof(float) * T * N);
    for (int i = 0; i < T * K; i++) x[i] = att_uniform();
    for (int i = 0; i < N * K; i++) wd[i] = att_uniform();
    const struct tensor w = {.name = "w", .type = DTYPE_F32, .n_dims = 2, .ne = {K, N, 1, 1},
                             .data = wd};
    T_EQ_INT(matmul(y, x, &w, T), 0);
    /* every allocation fails: the call says so and returns -1 */
    const bool quiet = err_quiet();
    err_set_quiet(true);
    kscratch_fail_after(0);
    T_EQ_INT(matmul(y2, x, &w, T), -1);
    T_CONTAINS(err_last(), "out of memory");
    /* a planned workspace: the same call allocates nothing and gives the same numbers */
    struct kscratch ws;
    kscratch_fail_after(-1);
    T_EQ_INT(kscratch_init(&ws, matmul_scratch(&w, T, lb_threads())), 0);
    T_OK(ws.bytes > 0);
    kscratch_fail_after(0);
    T_EQ_INT(matmul_ws(y2, x, &w, T, &ws), 0);
    T_OK(!memcmp(y, y2, sizeof(float) * T * N));
    /* one byte short of the plan: the call must allocate, and that fails cleanly */
    struct kscratch small = {.p = ws.p, .bytes = ws.bytes - 1};
    T_EQ_INT(matmul_ws(y2, x, &w, T, &small), -1);
    /* the attention's scratch, the same way */
    const struct att_case c = {.nh = 4, .nkv = 2, .hd = 16, .T = 9, .pos0 = 5};
    const int n_ctx = c.pos0 + c.T;
    const int64_t ldk = attn_ldk(n_ctx), ldv = attn_ldv(c.hd);
    const struct attn_shape as = {.T = c.T, .pos0 = c.pos0, .n_heads = c.nh, .n_kv_heads = c.nkv,
                                  .head_dim = c.hd, .ldk = ldk, .ldv = ldv,
                                  .kt_head = c.hd * ldk, .v_head = n_ctx * ldv};
    float *q = calloc((size_t)(c.T * c.nh * c.hd), sizeof(float));
    float *kt = calloc((size_t)(c.nkv * as.kt_head), sizeof(float));
    float *v = calloc((size_t)(c.nkv * as.v_head), sizeof(float));
    float *o = calloc((size_t)(c.T * c.nh * c.hd), sizeof(float));
    T_EQ_INT(attention(o, q, kt, v, &as), -1);
    T_CONTAINS(err_last(), "out of memory");
    struct kscratch wa;
    kscratch_fail_after(-1);
    T_EQ_INT(kscratch_init(&wa, attention_scratch(n_ctx, c.hd, lb_threads())), 0);
    kscratch_fail_after(0);
    T_EQ_INT(attention_ws(o, q, kt, v, &as, &wa), 0);
    kscratch_fail_after(-1);
    err_set_quiet(quiet);
    kscratch_release(&ws);
    kscratch_release(&wa);
    free(q), free(kt), free(v), free(o);
    free(x), free(wd), free(y), free(y2);
}

int main(int argc, char **argv) {
    t_isa_init(argv[0]);
    if (argc == 3 && !strcmp(argv[1], "--isa-child")) {
        /* a path forced by LOWBIT_ISA: the sweep and determinism only; exit status = failures */
        t_cur_name = "isa-child";
        if (strcmp(kernels_isa(), argv[2])) {
            fprintf(stderr, "  FAIL: LOWBIT_ISA=%s gave path %s (expected %s)\n",
                    getenv("LOWBIT_ISA"), kernels_isa(), argv[2]);
            return 1;
        }
        if (!strcmp(getenv("LOWBIT_ISA"), "bogus")) return 0;
        T_RUN(test_sweep_random);
        T_RUN(test_sweep_int_exact);
        T_RUN(test_big_shapes);
        T_RUN(test_threads_deterministic);
        T_RUN(test_attention_sweep);
        return t_failed != 0;
    }
    T_RUN(test_fp16_roundtrip);
    T_RUN(test_bf16_roundtrip);
    T_RUN(test_fp16_rounding);
    T_RUN(test_bf16_rounding);
    T_RUN(test_fp16_vs_f16c);
    T_RUN(test_q8_0_roundtrip);
    T_RUN(test_sweep_random);
    T_RUN(test_sweep_int_exact);
    T_RUN(test_big_shapes);
    T_RUN(test_threads_deterministic);
    T_RUN(test_other_dtypes);
    T_RUN(test_attention_sweep);
    T_RUN(test_attn_exp);
    T_RUN(test_isa_paths);
    T_RUN(test_scratch_oom);
    T_RUN(test_fma_peak);
    return T_DONE();
}
