/* tests/test_hadamard.c: the Hadamard matrices and the fast transform (kernels/hadamard.h).
 *
 * - every base order: H·Hᵀ = m·I exactly, and the stored ones (52, 156, 172) have the sha256
 *   their provenance records (kernels/had_data.c), recomputed from the rows;
 * - H_n = H_{2^k} ⊗ H_m: H_n·H_nᵀ = n·I for every order up to 512 that has a base, and the
 *   factorisations the model shapes need (64, 288, 768, 1536, 2048, 4096, 5632, 11008, 14336);
 * - had_rows against had_rows_ref (the explicit product in double) on random rows at awkward and
 *   real sizes, within the bound hadamard.h states; norms preserved; 1 vs 2 threads bit for bit;
 * - orders without a base (6, 10, 14, 0, 172·3) refused with a message. */
#include <stdbool.h>
#include <stdint.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "kernels/base/sha256.h"
#include "kernels/hadamard.h"
#include "kernels/hadamard_impl.h"
#include "t.h"

static uint64_t rng = 0x243f6a8885a308d3ull;
static float rnd(void) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)(rng >> 40) * (2.0f / 16777216.0f) - 1.0f;
}

static void test_bases(void) {
    int nb;
    const int *orders = had_base_orders(&nb);
    T_EQ_INT(nb, 11);
    for (int b = 0; b < nb; b++) {
        const int m = orders[b];
        const int8_t *h = had_base_matrix(m);
        T_OK(h != NULL);
        if (!h) continue;
        T_EQ_INT(had_base(m), m);
        long bad = 0;
        for (int i = 0; i < m; i++)
            for (int j = 0; j < m; j++) {
                long s = 0;
                for (int k = 0; k < m; k++) s += h[i * m + k] * h[j * m + k];
                bad += s != (i == j ? m : 0);
                if (h[i * m + j] != 1 && h[i * m + j] != -1) bad++;
            }
        if (bad)
            T_FAIL_("order %d (%s): H·Hᵀ = m·I fails at %ld entries", m, had_base_source(m), bad);
    }
    for (int t = 0; t < HAD_N_TABLES; t++) {
        const int m = had_tables[t].m;
        const int8_t *h = had_base_matrix(m);
        struct sha256 s;
        sha256_init(&s);
        char line[200];
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < m; j++) line[j] = h[i * m + j] > 0 ? '+' : '-';
            line[m] = '\n';
            sha256_update(&s, line, (size_t)m + 1);
        }
        char hex[65];
        sha256_hex(&s, hex);
        T_EQ_STR(hex, had_tables[t].sha256);
    }
}

/* H_n·H_nᵀ = n·I through had_entry */
static bool orthogonal(int n) {
    int8_t *h = malloc((size_t)n * n);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) h[(size_t)i * n + j] = (int8_t)had_entry(n, i, j);
    bool ok = true;
    for (int i = 0; i < n && ok; i++)
        for (int j = i; j < n && ok; j++) {
            long s = 0;
            for (int k = 0; k < n; k++) s += h[(size_t)i * n + k] * h[(size_t)j * n + k];
            ok = s == (i == j ? n : 0);
        }
    free(h);
    return ok;
}

static void test_orders(void) {
    int n_ok = 0;
    for (int n = 1; n <= 512; n++) {
        if (!had_base(n)) continue;
        if (!orthogonal(n)) T_FAIL_("H_%d·H_%dᵀ != %d·I", n, n, n);
        n_ok++;
    }
    T_EQ_INT(n_ok, 51); /* 10 powers of two and the 41 2^k multiples of the 11 bases up to 512 */
    /* the model shapes: (n, base) */
    static const int shapes[][2] = {{64, 1},      {288, 36},   {512, 1},     {768, 12},
                                    {1536, 12},   {2048, 1},   {4096, 1},    {5632, 44},
                                    {11008, 172}, {14336, 28}, {13824, 108}, {172, 172}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        T_EQ_INT(had_base(shapes[i][0]), shapes[i][1]);
    T_OK(orthogonal(1536));
    static const int none[] = {0, -4, 6, 10, 14, 18, 172 * 3, 11 * 12};
    for (size_t i = 0; i < sizeof none / sizeof none[0]; i++) T_EQ_INT(had_base(none[i]), 0);
    float x[10] = {0};
    T_ERR(had_rows(x, 1, 10));
    T_ERR(had_rows_ref(x, x, 1, 6));
}

static void test_fast_vs_ref(void) {
    static const int sizes[] = {1,   2,   4,   12,  20,   24,   28,   36,   40,
                                44,  52,  56,  60,  64,   72,   108,  140,  156,
                                172, 288, 344, 768, 1536, 2048, 4096, 5632, 11008};
    double worst = 0;
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        const int n = sizes[s], rows = n > 2048 ? 1 : 3;
        float *x = malloc((size_t)n * rows * sizeof *x), *y = malloc((size_t)n * rows * sizeof *y),
              *r = malloc((size_t)n * rows * sizeof *r);
        for (int i = 0; i < n * rows; i++) x[i] = rnd() * (i % 7 == 0 ? 30.0f : 1.0f);
        memcpy(y, x, (size_t)n * rows * sizeof *x);
        T_EQ_INT(had_rows(y, rows, n), 0);
        T_EQ_INT(had_rows_ref(r, x, rows, n), 0);
        const int m = had_base(n);
        int k = 0;
        while ((m << k) < n) k++;
        for (int q = 0; q < rows; q++) {
            double l1 = 0, n2x = 0, n2y = 0, maxd = 0;
            int at = 0;
            for (int i = 0; i < n; i++) {
                l1 += fabs(x[q * n + i]);
                n2x += (double)x[q * n + i] * x[q * n + i];
                n2y += (double)y[q * n + i] * y[q * n + i];
                const double d = fabs((double)y[q * n + i] - r[q * n + i]);
                if (d > maxd) maxd = d, at = i;
            }
            const double bound = (m + k + 2) * ldexp(1, -24) * l1 / sqrt(n);
            if (!(maxd <= bound))
                T_FAIL_("n=%d row %d: maxdiff %.3g at %d > bound %.3g", n, q, maxd, at, bound);
            worst = fmax(worst, maxd / bound);
            T_NEAR(sqrt(n2y), sqrt(n2x), 1e-5 * sqrt(n2x)); /* R is orthogonal */
        }
        free(x), free(y), free(r);
    }
    fprintf(stderr, "  hadamard: fast vs ref, worst maxdiff / bound = %.3f\n", worst);
}

static void test_threads(void) {
#ifdef _OPENMP
    const int n = 1536, rows = 64;
    float *a = malloc((size_t)n * rows * sizeof *a), *b = malloc((size_t)n * rows * sizeof *b);
    for (int i = 0; i < n * rows; i++) a[i] = b[i] = rnd();
    omp_set_num_threads(1);
    T_EQ_INT(had_rows(a, rows, n), 0);
    omp_set_num_threads(2);
    T_EQ_INT(had_rows(b, rows, n), 0);
    T_OK(!memcmp(a, b, (size_t)n * rows * sizeof *a));
    free(a), free(b);
#endif
}

int main(void) {
    T_RUN(test_bases);
    T_RUN(test_orders);
    T_RUN(test_fast_vs_ref);
    T_RUN(test_threads);
    return T_DONE();
}
