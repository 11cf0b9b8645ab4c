/* kernels/hadamard.c: Hadamard matrices of order 2^k·m and the fast transform (kernels/hadamard.h).
 * The base matrices are built once (pthread_once) from their constructions or from the hex rows of
 * kernels/had_data.c. */
#include "kernels/hadamard.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/base/base.h"
#include "kernels/hadamard_impl.h"

#define HAD_MAX_BASE 172

enum had_kind { HAD_PALEY1, HAD_PALEY2, HAD_DATA };
static const struct {
    int m;
    enum had_kind kind;
    const char *source;
} bases[] = {
    {12, HAD_PALEY1, "Paley I, q = 11"},
    {20, HAD_PALEY1, "Paley I, q = 19"},
    {28, HAD_PALEY2, "Paley II, q = 13"},
    {36, HAD_PALEY2, "Paley II, q = 17"},
    {44, HAD_PALEY1, "Paley I, q = 43"},
    {52, HAD_DATA, "data: Sloane's had.52.will via QuaRot"},
    {60, HAD_PALEY1, "Paley I, q = 59"},
    {108, HAD_PALEY1, "Paley I, q = 107"},
    {140, HAD_PALEY1, "Paley I, q = 139"},
    {156, HAD_DATA, "data: Sloane's had.156.will via QuaRot"},
    {172, HAD_DATA, "data: Sloane's had.172.will via QuaRot"},
};
#define N_BASES ((int)LB_ARRAY_LEN(bases))

static int8_t *base_mat[N_BASES]; /* built once, never freed */
static float *base_matf[N_BASES];
static int base_orders[N_BASES];
static pthread_once_t built = PTHREAD_ONCE_INIT;

/* χ(a) mod prime q: 0, 1 for a nonzero square, −1 otherwise */
static int chi(int a, int q) {
    a = ((a % q) + q) % q;
    if (!a) return 0;
    for (int x = 1; x < q; x++)
        if (x * x % q == a) return 1;
    return -1;
}

static void paley1(int8_t *h, int m) {
    const int q = m - 1;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < m; j++) {
            int s; /* S = [[0, 1ᵀ], [−1, Q]] */
            if (i == 0) s = j == 0 ? 0 : 1;
            else if (j == 0) s = -1;
            else s = chi(j - i, q);
            h[i * m + j] = (int8_t)(s + (i == j));
        }
}

static void paley2(int8_t *h, int m) {
    const int n = m / 2, q = n - 1;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            int c; /* C = [[0, 1ᵀ], [1, Q]] */
            if (i == 0) c = j == 0 ? 0 : 1;
            else if (j == 0) c = 1;
            else c = chi(j - i, q);
            static const int8_t A[2][2] = {{1, 1}, {1, -1}}, B[2][2] = {{1, -1}, {-1, -1}};
            for (int a = 0; a < 2; a++)
                for (int b = 0; b < 2; b++)
                    h[(2 * i + a) * m + 2 * j + b] = (int8_t)(c ? c * A[a][b] : B[a][b]);
        }
}

static void from_hex(int8_t *h, int m, const char *const *rows) {
    for (int i = 0; i < m; i++)
        for (int j = 0; j < m; j++) {
            const char c = rows[i][j / 4];
            const int v = c <= '9' ? c - '0' : c - 'a' + 10;
            h[i * m + j] = (int8_t)((v >> (3 - j % 4)) & 1 ? -1 : 1);
        }
}

static void build(void) {
    for (int b = 0; b < N_BASES; b++) {
        const int m = bases[b].m;
        base_orders[b] = m;
        int8_t *h = malloc((size_t)m * m);
        float *f = malloc((size_t)m * m * sizeof *f);
        if (!h || !f) BUG("hadamard: out of memory for a %d×%d base matrix", m, m);
        if (bases[b].kind == HAD_PALEY1) paley1(h, m);
        else if (bases[b].kind == HAD_PALEY2) paley2(h, m);
        else
            for (int t = 0; t < HAD_N_TABLES; t++)
                if (had_tables[t].m == m) from_hex(h, m, had_tables[t].rows);
        for (int i = 0; i < m * m; i++) f[i] = h[i];
        base_mat[b] = h;
        base_matf[b] = f;
    }
}

static int base_index(int m) {
    for (int b = 0; b < N_BASES; b++)
        if (bases[b].m == m) return b;
    return -1;
}

int had_base(int n) {
    if (n <= 0) return 0;
    int odd = n;
    while (!(odd & 1)) odd >>= 1;
    if (odd == 1) return 1;
    for (int b = 0; b < N_BASES; b++)
        if (bases[b].m % odd == 0 && bases[b].m / odd == 4 && n % bases[b].m == 0)
            return bases[b].m;
    return 0;
}

const int *had_base_orders(int *n_orders) {
    pthread_once(&built, build);
    *n_orders = N_BASES;
    return base_orders;
}

const int8_t *had_base_matrix(int m) {
    pthread_once(&built, build);
    const int b = base_index(m);
    return b < 0 ? NULL : base_mat[b];
}

const char *had_base_source(int m) {
    const int b = base_index(m);
    return b < 0 ? NULL : bases[b].source;
}

int had_entry(int n, int i, int j) {
    const int m = had_base(n);
    ASSERT(m > 0 && i >= 0 && i < n && j >= 0 && j < n);
    const int a = i / m, a2 = j / m;
    const int s = __builtin_popcount((unsigned)(a & a2)) & 1 ? -1 : 1; /* Sylvester */
    return m == 1 ? s : s * had_base_matrix(m)[(i % m) * m + j % m];
}

static int check_n(int n) {
    if (had_base(n)) return 0;
    return err("hadamard: no Hadamard matrix of order %d (lowbit builds 2^k·m for m = 1, 12, 20, "
               "28, 36, 44, 52, 60, 108, 140, 156, 172)",
               n);
}

/* one row in place: base matrix per block, butterflies across blocks, scale */
static void had_row(float *x, int n, int m, const float *M, float scale) {
    if (m > 1) {
        float tmp[HAD_MAX_BASE];
        for (int a = 0; a < n; a += m) {
            float *v = x + a;
            for (int i = 0; i < m; i++) tmp[i] = 0;
            for (int j = 0; j < m; j++) { /* column order: tmp += M[:, j]·v[j] */
                const float vj = v[j];
                for (int i = 0; i < m; i++) tmp[i] += M[(size_t)i * m + j] * vj;
            }
            memcpy(v, tmp, (size_t)m * sizeof *v);
        }
    }
    for (int len = m; len < n; len <<= 1)
        for (int i = 0; i < n; i += 2 * len)
            for (int j = i; j < i + len; j++) {
                const float a = x[j], b = x[j + len];
                x[j] = a + b;
                x[j + len] = a - b;
            }
    for (int i = 0; i < n; i++) x[i] *= scale;
}

int had_rows(float *x, int64_t n_rows, int n) {
    if (check_n(n)) return -1;
    pthread_once(&built, build);
    const int m = had_base(n);
    const float *M = m > 1 ? base_matf[base_index(m)] : NULL;
    const float scale = (float)(1.0 / sqrt((double)n));
#pragma omp parallel for schedule(static) if (n_rows * (int64_t)n * (m + 8) >= (1 << 16))
    for (int64_t r = 0; r < n_rows; r++) had_row(x + r * n, n, m, M, scale);
    return 0;
}

int had_rows_ref(float *y, const float *x, int64_t n_rows, int n) {
    if (check_n(n)) return -1;
    const double scale = 1.0 / sqrt((double)n);
    for (int64_t r = 0; r < n_rows; r++)
        for (int i = 0; i < n; i++) {
            double s = 0;
            for (int j = 0; j < n; j++) s += had_entry(n, i, j) * (double)x[r * n + j];
            y[r * n + i] = (float)(s * scale);
        }
    return 0;
}
