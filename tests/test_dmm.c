/* tests/test_dmm.c: the float64 tile kernel (kernels/dmm.h) against its oracle on every ISA path
 * this CPU has, at awkward sizes.
 *
 * dmm.h promises the same bits as dmm_acc_ref (one multiply and one add per step, p in order), so
 * every check is exact (memcmp), with random values of mixed magnitude where rounding happens at
 * every step. Elements of the buffer outside S (its row padding) hold a sentinel that must
 * come back untouched, and the result must not depend on how p is split into calls. */
#include <stdint.h>

#include "kernels/common.h"
#include "kernels/dmm.h"
#include "t.h"

static const char *const isas[] = {"generic", "avx2", "avx512"};

static uint64_t rng_state = 0x2545f4914f6cdd1dull;
static double rng_d(void) { /* [-1, 1) times a power of ten in 1e-3 .. 1e3 */
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    const double u = (double)(rng_state >> 11) * 0x1p-53 * 2 - 1;
    static const double mag[] = {1e-3, 1e-1, 1, 10, 1e3};
    return u * mag[(rng_state >> 3) % 5];
}

static const double SENTINEL = -777.25;

/* S ± A·B on path isa vs the oracle: m×n of S inside rows of lds = n + pad, A and B with padding */
static void check(const char *isa, int64_t m, int64_t n, int64_t k, bool sub) {
    const int64_t lda = k + 3, ldb = n + 5, lds = n + 2;
    const size_t ns = (size_t)(m * lds + 1) * sizeof(double);
    double *a = malloc((size_t)(m * lda + 1) * sizeof *a);
    double *b = malloc((size_t)(k * ldb + 1) * sizeof *b);
    double *s0 = malloc(ns), *s1 = malloc(ns), *s2 = malloc(ns);
    for (int64_t i = 0; i < m * lda; i++) a[i] = rng_d();
    for (int64_t i = 0; i < k * ldb; i++) b[i] = rng_d();
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < lds; j++) s0[i * lds + j] = j < n ? rng_d() : SENTINEL;
    memcpy(s1, s0, (size_t)(m * lds) * sizeof *s0);
    memcpy(s2, s0, (size_t)(m * lds) * sizeof *s0);
    dmm_acc_ref(m, n, k, a, lda, b, ldb, s0, lds, sub);
    T_EQ_INT(dmm_acc_isa(m, n, k, a, lda, b, ldb, s1, lds, sub, isa), 0);
    if (memcmp(s0, s1, (size_t)(m * lds) * sizeof *s0))
        T_FAIL_("%s %s m %lld n %lld k %lld: differs from dmm_acc_ref", isa, sub ? "sub" : "add",
                (long long)m, (long long)n, (long long)k);
    /* p in two calls split at an awkward point: the same bits */
    const int64_t k1 = k / 3;
    T_EQ_INT(dmm_acc_isa(m, n, k1, a, lda, b, ldb, s2, lds, sub, isa), 0);
    T_EQ_INT(dmm_acc_isa(m, n, k - k1, a + k1, lda, b + k1 * ldb, ldb, s2, lds, sub, isa), 0);
    if (memcmp(s0, s2, (size_t)(m * lds) * sizeof *s0))
        T_FAIL_("%s m %lld n %lld k %lld: p split at %lld changes the result", isa, (long long)m,
                (long long)n, (long long)k, (long long)k1);
    free(a), free(b), free(s0), free(s1), free(s2);
}

static bool have(const char *isa) {
    double s = 0, a = 1, b = 1;
    err_set_quiet(true);
    const bool ok = dmm_acc_isa(1, 1, 1, &a, 1, &b, 1, &s, 1, false, isa) == 0;
    err_set_quiet(false);
    return ok;
}

static void test_ref_by_hand(void) {
    /* S = [1 2] + [3; 4]·... : 1×2 S, k = 2: s_j += a_0·b_0j + a_1·b_1j */
    const double a[2] = {3, 4}, b[4] = {1, 2, 10, 20};
    double s[2] = {1, 2};
    dmm_acc_ref(1, 2, 2, a, 2, b, 2, s, 2, false);
    T_OK(s[0] == 1 + 3 + 40 && s[1] == 2 + 6 + 80);
    dmm_acc_ref(1, 2, 2, a, 2, b, 2, s, 2, true);
    T_OK(s[0] == 1 && s[1] == 2);
    /* the order: p = 0 first, each step rounded (1 + 2⁻⁵³ is 1, twice) */
    const double a2[3] = {1, 0x1p-53, 0x1p-53}, b2[3] = {1, 1, 1};
    double s2 = 0;
    dmm_acc_ref(1, 1, 3, a2, 3, b2, 1, &s2, 1, false);
    T_OK(s2 == 1);
}

static void test_sizes(void) {
    static const int64_t ms[] = {1, 3, 4, 5, 31, 64, 67, 130};
    static const int64_t ns[] = {1, 7, 8, 15, 16, 17, 33, 257, 300};
    static const int64_t ks[] = {1, 2, 127, 128, 129, 300};
    int n_paths = 0;
    for (size_t ii = 0; ii < sizeof isas / sizeof *isas; ii++) {
        if (!have(isas[ii])) {
            printf("  (path %s: this CPU lacks it)\n", isas[ii]);
            continue;
        }
        n_paths++;
        for (size_t mi = 0; mi < sizeof ms / sizeof *ms; mi++)
            for (size_t ni = 0; ni < sizeof ns / sizeof *ns; ni++)
                for (size_t ki = 0; ki < sizeof ks / sizeof *ks; ki++)
                    if (ms[mi] * ns[ni] * ks[ki] <= (T_SANITIZED ? 200000 : 3000000))
                        check(isas[ii], ms[mi], ns[ni], ks[ki], (mi + ni + ki) % 2);
    }
    T_OK(n_paths >= 1);
}

static void test_empty(void) {
    double s = SENTINEL, a = 1, b = 1;
    dmm_acc(0, 1, 1, &a, 1, &b, 1, &s, 1, false);
    dmm_acc(1, 0, 1, &a, 1, &b, 1, &s, 1, false);
    dmm_acc(1, 1, 0, &a, 1, &b, 1, &s, 1, false);
    T_OK(s == SENTINEL);
    err_set_quiet(true);
    T_ERR(dmm_acc_isa(1, 1, 1, &a, 1, &b, 1, &s, 1, false, "sse9"));
    err_set_quiet(false);
    T_CONTAINS(err_last(), "sse9");
}

int main(void) {
    T_RUN(test_ref_by_hand);
    T_RUN(test_sizes);
    T_RUN(test_empty);
    return T_DONE();
}
