/* tests/test_gram.c: the Gram kernel (kernels/gram.h) against its oracle, on every ISA path this
 * CPU has (gram_acc_isa), and gram_acc itself.
 *
 * Bound. Each element is checked against gram_acc_ref with the bound gram.h states:
 *   |fast − ref| <= (GRAM_CHUNK + 2)·2⁻²⁴·S + 2·(T + 2)·2⁻⁵³·(|H0| + S) + T·2⁻¹⁴⁸,
 * S = Σ_t |x_ti·x_tj| (computed as gram_acc_ref of |x| from zero), H0 the element before the call.
 * With integer-valued x and H0 every fp32 chunk sum and every double sum is exact, so there the
 * fast path equals the oracle bit for bit (an indexing slip shows as a wrong integer, not as
 * rounding). The strict lower triangle holds a sentinel that must come back bit for bit.
 * Determinism: 1 vs 2 threads, and one packing pass vs several, bit for bit. */
#include <float.h>
#include <stdint.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "kernels/common.h"
#include "kernels/gram.h"
#include "kernels/matmul.h"
#include "t.h"

static const char *const isas[] = {"generic", "avx2", "avx512"};
static bool isa_ok[3];

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rng_u32(void) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng_state >> 32);
}
/* uniform in [-1, 1) */
static float rng_f(void) { return (float)(rng_u32() >> 8) * (2.0f / 16777216.0f) - 1.0f; }

static const double SENTINEL = -12345.678;

enum fill { F_RANDOM, F_INT, F_ZEROS, F_LARGE, F_TINY, F_UNDERFLOW, F_MIXED, F_COUNT };
static const char *const fill_name[] = {"random", "int",       "zeros", "large(1e3)",
                                        "tiny(1e-18)", "underflow(1e-23)", "mixed(1e-4..1e4)"};

static void fill_x(float *x, int64_t T, int64_t K, enum fill f) {
    for (int64_t t = 0; t < T; t++)
        for (int64_t k = 0; k < K; k++) {
            float v = rng_f();
            switch (f) {
            case F_INT: v = (float)((int)(rng_u32() % 7) - 3); break;
            case F_ZEROS: /* half the values, row 1 and column 2 (when there) zero */
                if (rng_u32() % 2 || t == 1 || k == 2) v = 0.0f;
                break;
            case F_LARGE: v *= 1e3f; break;
            case F_TINY: v *= 1e-18f; break;
            case F_UNDERFLOW: v *= 1e-23f; break; /* products ~1e-46: below fp32's subnormals */
            case F_MIXED: v *= powf(10.0f, (float)(k % 9) - 4.0f); break;
            default: break;
            }
            x[t * K + k] = v;
        }
}

/* H0: the upper triangle random (integers for F_INT), the lower triangle SENTINEL */
static void fill_h(double *H, int64_t K, enum fill f, double scale) {
    for (int64_t i = 0; i < K; i++)
        for (int64_t j = 0; j < K; j++)
            H[i * K + j] = j < i        ? SENTINEL
                           : f == F_INT ? (double)((int)(rng_u32() % 201) - 100)
                                        : scale * (double)rng_f();
}

static double fill_scale(enum fill f) {
    switch (f) {
    case F_LARGE: return 1e6;
    case F_TINY: return 1e-36;
    case F_UNDERFLOW: return 1e-46;
    case F_MIXED: return 1e4;
    default: return 1.0;
    }
}

static double bound(double S, double h0, int64_t T) {
    return (GRAM_CHUNK + 2) * ldexp(1.0, -24) * S + 2.0 * (double)(T + 2) * ldexp(1.0, -53) *
           (fabs(h0) + S) + (double)T * ldexp(1.0, -148);
}

/* every element of got against ref: the bound (bit for bit when exact), the lower triangle
 * untouched; the first mismatch is reported. Returns the worst |got − ref| / bound. */
static double check_h(const double *got, const double *ref, const double *S, const double *H0,
                      int64_t T, int64_t K, bool exact, const char *what) {
    double worst = 0.0;
    for (int64_t i = 0; i < K; i++)
        for (int64_t j = 0; j < K; j++) {
            const int64_t e = i * K + j;
            if (j < i) {
                if (memcmp(&got[e], &SENTINEL, sizeof(double))) {
                    T_FAIL_("%s: lower triangle written at (%lld, %lld): %.17g", what,
                            (long long)i, (long long)j, got[e]);
                    return INFINITY;
                }
                continue;
            }
            if (exact && memcmp(&got[e], &ref[e], sizeof(double))) {
                T_FAIL_("%s: (%lld, %lld) = %.17g, oracle %.17g (exact data)", what, (long long)i,
                        (long long)j, got[e], ref[e]);
                return INFINITY;
            }
            const double b = bound(S[e], H0[e], T), d = fabs(got[e] - ref[e]);
            if (!(d <= b)) {
                T_FAIL_("%s: (%lld, %lld) = %.17g, oracle %.17g, |diff| %.3g > bound %.3g (S %.3g)",
                        what, (long long)i, (long long)j, got[e], ref[e], d, b, S[e]);
                return INFINITY;
            }
            if (b > 0 && d / b > worst) worst = d / b;
        }
    return worst;
}

/* S = Σ_t |x_ti x_tj| (upper triangle) */
static void abs_sum(double *S, const float *x, int64_t T, int64_t K) {
    float *ax = malloc((size_t)(T * K) * sizeof(float));
    for (int64_t i = 0; i < T * K; i++) ax[i] = fabsf(x[i]);
    memset(S, 0, (size_t)(K * K) * sizeof(double));
    gram_acc_ref(S, ax, T, K);
    free(ax);
}

/* ---- tests ---- */

static void test_ref_by_hand(void) {
    const float x[2 * 3] = {1, 2, 3, 4, 5, -6};
    double H[9] = {0.5, 0, 0, SENTINEL, 0, 0, SENTINEL, SENTINEL, 0};
    gram_acc_ref(H, x, 2, 3);
    const double want[9] = {17.5, 22, -21, SENTINEL, 29, -24, SENTINEL, SENTINEL, 45};
    for (int e = 0; e < 9; e++) T_OK(H[e] == want[e]);
    gram_acc_ref(H, x, 0, 3); /* nothing */
    for (int e = 0; e < 9; e++) T_OK(H[e] == want[e]);
}

static void test_isas(void) {
    err_set_quiet(true);
    for (int a = 0; a < 3; a++) isa_ok[a] = gram_acc_isa(NULL, NULL, 0, 0, isas[a], 0) == 0;
    T_ERR(gram_acc_isa(NULL, NULL, 1, 1, "sse9", 0));
    T_CONTAINS(err_last(), "sse9");
    err_set_quiet(false);
    T_OK(isa_ok[0]); /* generic is always there */
    bool dflt = false;
    for (int a = 0; a < 3; a++) dflt |= isa_ok[a] && !strcmp(isas[a], kernels_isa());
    T_OK(dflt); /* gram_acc's path is one of them */
}

/* every (K, T, fill) on every path against the oracle */
static void test_sizes(void) {
    static const int64_t Ks[] = {1, 3, 17, 31, 33, 127, 129, 255, 1000};
    static const int64_t Ts[] = {1, 5, 64, 65, 300};
    double worst = 0.0;
    for (size_t ki = 0; ki < LB_ARRAY_LEN(Ks); ki++)
        for (size_t ti = 0; ti < LB_ARRAY_LEN(Ts); ti++)
            for (int f = 0; f < F_COUNT; f++) {
                const int64_t K = Ks[ki], T = Ts[ti];
                /* the big K on two fills (and fewer T under the sanitizers): the oracle is O(T·K²) */
                if (K >= 1000 && f != F_RANDOM && f != F_INT) continue;
                if (K >= 1000 && T_SANITIZED && T > 65) continue;
                float *x = malloc((size_t)(T * K) * sizeof(float));
                double *H0 = malloc((size_t)(K * K) * sizeof(double));
                double *ref = malloc((size_t)(K * K) * sizeof(double));
                double *got = malloc((size_t)(K * K) * sizeof(double));
                double *S = malloc((size_t)(K * K) * sizeof(double));
                fill_x(x, T, K, (enum fill)f);
                fill_h(H0, K, (enum fill)f, fill_scale((enum fill)f));
                memcpy(ref, H0, (size_t)(K * K) * sizeof(double));
                gram_acc_ref(ref, x, T, K);
                abs_sum(S, x, T, K);
                for (int a = 0; a < 3; a++) {
                    if (!isa_ok[a]) continue;
                    char what[128];
                    snprintf(what, sizeof what, "%s K=%lld T=%lld %s", isas[a], (long long)K,
                             (long long)T, fill_name[f]);
                    memcpy(got, H0, (size_t)(K * K) * sizeof(double));
                    T_EQ_INT(gram_acc_isa(got, x, T, K, isas[a], 0), 0);
                    const double w = check_h(got, ref, S, H0, T, K, f == F_INT, what);
                    if (w > worst) worst = w;
                }
                memcpy(got, H0, (size_t)(K * K) * sizeof(double));
                T_EQ_INT(gram_acc(got, x, T, K), 0);
                check_h(got, ref, S, H0, T, K, f == F_INT, "gram_acc");
                free(x), free(H0), free(ref), free(got), free(S);
            }
    if (getenv("T_VERBOSE")) fprintf(stderr, "  worst |fast - ref| / bound: %.3g\n", worst);
}

/* nothing to do: H untouched */
static void test_empty(void) {
    double H[4] = {1, 2, SENTINEL, 4};
    const float x[2] = {1, 1};
    T_EQ_INT(gram_acc(H, x, 0, 2), 0);
    T_EQ_INT(gram_acc(H, x, 1, 0), 0);
    T_EQ_INT(gram_acc(H, x, -3, 2), 0);
    T_OK(H[0] == 1 && H[1] == 2 && H[2] == SENTINEL && H[3] == 4);
}

/* identical H for 1 and 2 threads, and for one packing pass or several, on every path */
static void test_deterministic(void) {
    const int64_t K = T_SANITIZED ? 300 : 700, T = T_SANITIZED ? 530 : 600; /* 3 chunks */
    float *x = malloc((size_t)(T * K) * sizeof(float));
    double *H0 = malloc((size_t)(K * K) * sizeof(double));
    double *h1 = malloc((size_t)(K * K) * sizeof(double));
    double *h2 = malloc((size_t)(K * K) * sizeof(double));
    double *h3 = malloc((size_t)(K * K) * sizeof(double));
    fill_x(x, T, K, F_MIXED);
    fill_h(H0, K, F_MIXED, 1.0);
    const int saved = lb_threads();
    for (int a = 0; a < 3; a++) {
        if (!isa_ok[a]) continue;
        memcpy(h1, H0, (size_t)(K * K) * sizeof(double));
        memcpy(h2, H0, (size_t)(K * K) * sizeof(double));
        memcpy(h3, H0, (size_t)(K * K) * sizeof(double));
        lb_set_threads(1);
        T_EQ_INT(gram_acc_isa(h1, x, T, K, isas[a], 0), 0);
        lb_set_threads(2);
#ifdef _OPENMP
        T_EQ_INT(omp_get_max_threads(), 2);
#endif
        T_EQ_INT(gram_acc_isa(h2, x, T, K, isas[a], 0), 0);
        T_EQ_INT(gram_acc_isa(h3, x, T, K, isas[a], 1), 0); /* passes of one chunk */
        if (memcmp(h1, h2, (size_t)(K * K) * sizeof(double)))
            T_FAIL_("%s: 1 and 2 threads differ", isas[a]);
        if (memcmp(h1, h3, (size_t)(K * K) * sizeof(double)))
            T_FAIL_("%s: one packing pass and passes of one chunk differ", isas[a]);
        T_OK(memcmp(h1, H0, (size_t)(K * K) * sizeof(double))); /* something was added */
    }
    lb_set_threads(saved);
    free(x), free(H0), free(h1), free(h2), free(h3);
}

/* calls over pieces of the rows agree with one call over all of them (and both with the oracle)
 * within the bound; the lower triangle stays untouched */
static void test_accumulate(void) {
    const int64_t K = 129, T = 600;
    static const int64_t pieces[] = {100, 1, 300, 199};
    float *x = malloc((size_t)(T * K) * sizeof(float));
    double *H0 = malloc((size_t)(K * K) * sizeof(double));
    double *ref = malloc((size_t)(K * K) * sizeof(double));
    double *one = malloc((size_t)(K * K) * sizeof(double));
    double *many = malloc((size_t)(K * K) * sizeof(double));
    double *S = malloc((size_t)(K * K) * sizeof(double));
    fill_x(x, T, K, F_RANDOM);
    fill_h(H0, K, F_RANDOM, 10.0);
    memcpy(ref, H0, (size_t)(K * K) * sizeof(double));
    gram_acc_ref(ref, x, T, K);
    abs_sum(S, x, T, K);
    memcpy(one, H0, (size_t)(K * K) * sizeof(double));
    T_EQ_INT(gram_acc(one, x, T, K), 0);
    memcpy(many, H0, (size_t)(K * K) * sizeof(double));
    int64_t t0 = 0;
    for (size_t p = 0; p < LB_ARRAY_LEN(pieces); t0 += pieces[p++])
        T_EQ_INT(gram_acc(many, x + t0 * K, pieces[p], K), 0);
    T_EQ_INT(t0, T);
    check_h(one, ref, S, H0, T, K, false, "one call");
    check_h(many, ref, S, H0, T, K, false, "four calls");
    /* one against the other: each is within the bound of the oracle */
    for (int64_t i = 0; i < K; i++)
        for (int64_t j = i; j < K; j++) {
            const int64_t e = i * K + j;
            if (!(fabs(one[e] - many[e]) <= 2 * bound(S[e], H0[e], T))) {
                T_FAIL_("(%lld, %lld): one call %.17g, four calls %.17g", (long long)i,
                        (long long)j, one[e], many[e]);
                i = K;
                break;
            }
        }
    free(x), free(H0), free(ref), free(one), free(many), free(S);
}

/* a packed copy that does not fit the memory budget: -1 with a message, H untouched */
static void test_no_memory(void) {
    const int64_t K = 4096, T = 4096; /* one pass of 4096 rows: 64 MiB, the size xmalloc checks */
    float *x = calloc((size_t)(T * K), sizeof(float));
    double *H = calloc((size_t)(K * K), sizeof(double));
    if (!x || !H) {
        T_FAIL_("no memory for the test's own arrays");
        free(x), free(H);
        return;
    }
    H[0] = 1.5;
    H[K * K - 1] = 2.5;
    setenv("LOWBIT_MEM_LIMIT_MB", "1", 1);
    err_set_quiet(true);
    T_ERR(gram_acc_isa(H, x, T, K, kernels_isa(), INT64_MAX));
    T_CONTAINS(err_last(), "packed rows of a Gram matrix");
    err_set_quiet(false);
    unsetenv("LOWBIT_MEM_LIMIT_MB");
    T_OK(H[0] == 1.5 && H[1] == 0 && H[K * K - 1] == 2.5);
    free(x), free(H);
}

int main(void) {
    T_RUN(test_ref_by_hand);
    T_RUN(test_isas);
    T_RUN(test_empty);
    T_RUN(test_sizes);
    T_RUN(test_deterministic);
    T_RUN(test_accumulate);
    T_RUN(test_no_memory);
    return T_DONE();
}
