/* tests/test_bf16.c: the bf16 matmul (kernels/matmul_bf16.h) and --compute bf16.
 *
 * Checks: the scalar step against an independent evaluation of the VDPBF16PS operation in double
 * (the exact products, one rounding per step, the flushes); every path the CPU has (VDPBF16PS,
 * the AVX-512F / AVX2 emulations, generic C) equal to matmul_bf16_ref bit for bit at awkward
 * sizes (K odd and not a multiple of 32, T = 1, 3, 17, 40, N odd) with f32, f16 and bf16 weights
 * and values in the denormal range; the default path re-run with LOWBIT_ISA=generic in a child;
 * 1 vs 2 threads identical; the error against the fp64 dot product of the bf16-rounded inputs
 * within (K+1)·2⁻²⁴·Σ|x·w| (plus the flushes); and a stories260K forward pass in bf16 against
 * fp32: mean NLL within 0.02 nats (LOWBIT_DATA). */
#include <math.h>
#include <stdint.h>
#include <sys/wait.h>

#include "eval/forward.h"
#include "eval/model.h"
#include "kernels/matmul_bf16.h"
#include "tests/t.h"
#include "tests/t_isa.h"

#include "tests/t_rng.h"

/* mostly N(0,1)-ish values; 1 in 16 tiny (products and sums in the flush range), 1 in 64 zero */
static float rng_val(bool tiny) {
    const uint32_t r = rng_u32() % 64;
    if (r == 0) return 0.0f;
    if (tiny && r < 5) return rng_unif() * 1e-38f;
    if (tiny && r < 8) return rng_unif() * 1e-19f;
    return (rng_unif() + rng_unif() + rng_unif()) * 0.6f;
}

struct owned {
    struct tensor t;
    void *buf;
};

static void make_w(struct owned *o, enum dtype type, int64_t K, int64_t N, bool tiny) {
    const int64_t ne[2] = {K, N};
    T_OK(!tensor_init(&o->t, "wb", type, 2, ne));
    o->buf = malloc(tensor_nbytes(&o->t));
    for (int64_t i = 0; i < K * N; i++) {
        const float v = rng_val(tiny);
        if (type == DTYPE_F32) ((float *)o->buf)[i] = v;
        else if (type == DTYPE_F16) ((lb_fp16 *)o->buf)[i] = lb_f32_to_fp16(v);
        else ((lb_bf16 *)o->buf)[i] = lb_f32_to_bf16(v);
    }
    o->t.data = o->buf;
}

static float *make_x(int T, int64_t K, bool tiny) {
    float *x = malloc((size_t)T * (size_t)K * sizeof *x);
    for (int64_t i = 0; i < T * K; i++) x[i] = rng_val(tiny);
    return x;
}

static const char *const paths[] = {"generic", "avx2", "avx512", "avx512bf16"};
static const enum dtype wtypes[] = {DTYPE_F32, DTYPE_F16, DTYPE_BF16};
static long n_equal, n_compared;

/* y of every path the CPU has (and the default) equal to the oracle bit for bit */
static void check_paths(const struct tensor *w, const float *x, int T, bool all) {
    const int64_t N = tensor_nrows(w);
    const size_t ny = (size_t)T * (size_t)N;
    float *ref = malloc(ny * sizeof *ref), *y = malloc(ny * sizeof *y);
    matmul_bf16_ref(ref, x, w, T);
    for (int p = all ? 0 : 4; p < 5; p++) {
        const char *name = p < 4 ? paths[p] : "default";
        memset(y, 0xff, ny * sizeof *y);
        const int rc = p < 4 ? matmul_bf16_isa(y, x, w, T, name) : matmul_bf16(y, x, w, T);
        if (rc == -2) continue;
        T_EQ_INT(rc, 0);
        size_t eq = 0;
        for (size_t i = 0; i < ny; i++) eq += !memcmp(&y[i], &ref[i], sizeof(float));
        n_equal += (long)eq, n_compared += (long)ny;
        if (eq != ny)
            T_FAIL_("%s: %zu of %zu outputs differ from the ref (%s K=%lld N=%lld T=%d)", name,
                    ny - eq, ny, dtype_get(w->type)->name, (long long)w->ne[0], (long long)N, T);
    }
    free(ref);
    free(y);
}

static void sweep(bool all) {
    static const int64_t ks[] = {1, 2, 7, 33, 64, 95, 301};
    static const int64_t ns[] = {1, 17, 45};
    static const int toks[] = {1, 3, 17, 40};
    for (size_t it = 0; it < LB_ARRAY_LEN(wtypes); it++)
        for (size_t ik = 0; ik < LB_ARRAY_LEN(ks); ik++)
            for (size_t in = 0; in < LB_ARRAY_LEN(ns); in++) {
                const bool tiny = (ik + in) % 2;
                struct owned o;
                make_w(&o, wtypes[it], ks[ik], ns[in], tiny);
                for (size_t t = 0; t < LB_ARRAY_LEN(toks); t++) {
                    float *x = make_x(toks[t], ks[ik], tiny);
                    check_paths(&o.t, x, toks[t], all);
                    free(x);
                }
                free(o.buf);
            }
}

static void test_paths_vs_ref(void) {
    n_equal = n_compared = 0;
    sweep(true);
    fprintf(stderr, "  bf16 paths vs ref: %ld of %ld outputs bit-equal (path %s)\n", n_equal,
            n_compared, matmul_bf16_path());
    T_OK(n_compared > 0 && n_equal == n_compared);
}

/* the oracle's step against the operation evaluated independently: the product of two bf16 is
 * exact in double, so rounding the double sum of the accumulator and one product to float is the
 * fused step (up to a double rounding onto a float tie, which these values do not produce) */
static void test_ref_vs_double(void) {
    enum { K = 64 };
    int bad = 0;
    for (int rep = 0; rep < 200; rep++) {
        float x[K], wv[K];
        for (int k = 0; k < K; k++) x[k] = rng_val(false), wv[k] = rng_val(false);
        struct tensor w;
        const int64_t ne[2] = {K, 1};
        T_OK(!tensor_init(&w, "w", DTYPE_F32, 2, ne));
        w.data = wv;
        float y;
        matmul_bf16_ref(&y, x, &w, 1);
        float acc = 0.0f;
        for (int p = 0; p < K / 2; p++)
            for (int h = 1; h >= 0; h--) {
                const int k = 2 * p + h;
                const double prod = (double)lb_bf16_to_f32(lb_f32_to_bf16(x[k])) *
                                    (double)lb_bf16_to_f32(lb_f32_to_bf16(wv[k]));
                acc = (float)((double)acc + prod);
            }
        bad += memcmp(&acc, &y, sizeof y) != 0;
    }
    T_EQ_INT(bad, 0);
}

/* |y − Σ b(x)·b(w)| (fp64) <= (K+1)·2⁻²⁴·Σ|b(x)·b(w)| + K·2⁻¹²⁶, and the measured worst ratio */
static void test_error_bound(void) {
    enum { T = 17, N = 33 };
    static const int64_t ks[] = {95, 768, 2049};
    double worst = 0.0;
    for (size_t ik = 0; ik < LB_ARRAY_LEN(ks); ik++) {
        const int64_t K = ks[ik];
        struct owned o;
        make_w(&o, DTYPE_F32, K, N, false);
        float *x = make_x(T, K, false), *y = malloc(T * N * sizeof *y);
        T_EQ_INT(matmul_bf16(y, x, &o.t, T), 0);
        for (int t = 0; t < T; t++)
            for (int n = 0; n < N; n++) {
                double s = 0.0, sa = 0.0;
                for (int64_t k = 0; k < K; k++) {
                    const double p =
                        (double)lb_bf16_to_f32(lb_f32_to_bf16(x[t * K + k])) *
                        (double)lb_bf16_to_f32(lb_f32_to_bf16(((float *)o.buf)[n * K + k]));
                    s += p, sa += fabs(p);
                }
                const double e = fabs((double)y[t * N + n] - s), u = ldexp(1.0, -24);
                T_OK(e <= (double)(K + 1) * u * sa + (double)K * ldexp(1.0, -126));
                if (sa > 0 && e / (u * sa) > worst) worst = e / (u * sa);
            }
        free(x);
        free(y);
        free(o.buf);
    }
    fprintf(stderr, "  bf16 error vs fp64 of the rounded inputs: worst %.2f·2^-24·Σ|xw|\n", worst);
}

static void test_threads(void) {
    enum { T = 40, K = 301, N = 77 };
    const int saved = lb_threads();
    for (size_t it = 0; it < LB_ARRAY_LEN(wtypes); it++) {
        struct owned o;
        make_w(&o, wtypes[it], K, N, false);
        float *x = make_x(T, K, false), *y1 = malloc(T * N * sizeof *y1),
              *y2 = malloc(T * N * sizeof *y2);
        lb_set_threads(1);
        T_EQ_INT(matmul_bf16(y1, x, &o.t, T), 0);
        lb_set_threads(2);
        T_EQ_INT(matmul_bf16(y2, x, &o.t, T), 0);
        T_OK(!memcmp(y1, y2, T * N * sizeof *y1));
        free(x);
        free(y1);
        free(y2);
        free(o.buf);
    }
    lb_set_threads(saved);
}

/* stories260K: a forward pass over fixed tokens in bf16 compute against fp32 compute */
static double mean_nll(const struct model *m, const int *tok, int n, enum compute_dtype c) {
    struct fwd_state s;
    T_OK(!fwd_init(&s, m, n, n));
    s.compute = c;
    const int V = m->cfg.vocab_size;
    float *logits = malloc((size_t)n * (size_t)V * sizeof *logits);
    T_OK(!forward(&s, tok, n, logits, false));
    double nll = 0.0;
    for (int t = 0; t + 1 < n; t++) nll -= logprob_of(logits + (size_t)t * V, V, tok[t + 1], NULL);
    free(logits);
    fwd_release(&s);
    return nll / (n - 1);
}

static void test_forward(void) {
    const char *mp = T_DATA("models/stories260K.gguf");
    if (!mp) return;
    struct model m = MODEL_INIT;
    T_OK(!model_load(&m, mp));
    enum { n = 96 };
    int tok[n];
    /* a greedy continuation under fp32 would favour fp32; the tokens are a fixed pseudo-random
     * mix of common (low id) and rare ids */
    for (int i = 0; i < n; i++)
        tok[i] = (int)(rng_u32() % (uint32_t)(i % 3 ? 64 : m.cfg.vocab_size));
    const double f32 = mean_nll(&m, tok, n, COMPUTE_FP32), b16 = mean_nll(&m, tok, n, COMPUTE_BF16);
    fprintf(stderr, "  stories260K mean NLL over %d tokens: fp32 %.5f, bf16 %.5f\n", n, f32, b16);
    T_NEAR(b16, f32, 0.02);
    model_release(&m);
}

static void test_isa_child(void) {
    if (!strcmp(matmul_bf16_path(), "generic")) return; /* the default is the generic path */
    const int rc = t_isa_child("generic", "generic", 0);
    if (rc) T_FAIL_("LOWBIT_ISA=generic: the sweep failed (exit %d, messages above)", rc);
}

static void test_supported(void) {
    T_OK(matmul_bf16_supported(DTYPE_F32) && matmul_bf16_supported(DTYPE_F16) &&
         matmul_bf16_supported(DTYPE_BF16) && !matmul_bf16_supported(DTYPE_Q8_0));
    struct owned o;
    make_w(&o, DTYPE_F32, 8, 3, false);
    T_EQ_INT(matmul_bf16_isa(NULL, NULL, &o.t, 1, "sse9"), -2);
    free(o.buf);
}

int main(int argc, char **argv) {
    t_isa_init(argv[0]);
    if (argc == 3 && !strcmp(argv[1], "--isa-child")) {
        t_cur_name = "isa-child";
        if (strcmp(matmul_bf16_path(), argv[2])) {
            fprintf(stderr, "  FAIL: LOWBIT_ISA=%s gave bf16 path %s\n", argv[2],
                    matmul_bf16_path());
            return 1;
        }
        sweep(false);
        return t_failed != 0 || t_cur_failed != 0;
    }
    fprintf(stderr, "test_bf16: matmul_bf16 path %s\n", matmul_bf16_path());
    T_RUN(test_supported);
    T_RUN(test_ref_vs_double);
    T_RUN(test_paths_vs_ref);
    T_RUN(test_threads);
    T_RUN(test_error_bound);
    T_RUN(test_isa_child);
    T_RUN(test_forward);
    return T_DONE();
}
