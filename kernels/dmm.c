/* kernels/dmm.c: S ± A·B in float64, multiply then add, p in order (see dmm.h).
 *
 * Legend: m×n = S, k = the inner dimension p, MR×NR = the register tile, KC = the slice of p one
 * pass takes, MC = the rows of A packed at once, NC = the columns of B packed at once.
 *
 * Loop order: for each slice of KC values of p, for each MC rows of A (packed as [MC/MR][KC][MR]),
 * for each NC columns of B (packed as [NC/NR][KC][NR], each row of B read along its length: a
 * strided panel read in place thrashes L1 sets when the row stride is a multiple of 4 KiB), for
 * each NR-wide column tile, for each MR-row tile: the tile loads its S elements, runs the slice's p
 * in order (one multiply, one add per element and step) and stores them. Rows and columns past
 * the last whole tile take the scalar loop, in the same order per element. Nothing here depends on
 * the ISA but the speed. */
#include "kernels/dmm.h"

#include "kernels/common.h"
#include "kernels/cpu.h"

#include <string.h>
#if LB_X86
#include <immintrin.h>
#endif

#define DM_KC 128

/* ===== reference ===== */

void dmm_acc_ref(int64_t m, int64_t n, int64_t k, const double *a, int64_t lda, const double *b,
                 int64_t ldb, double *s, int64_t lds, bool sub) {
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double v = s[i * lds + j];
            for (int64_t p = 0; p < k; p++) {
                const double t = a[i * lda + p] * b[p * ldb + j];
                v = sub ? v - t : v + t;
            }
            s[i * lds + j] = v;
        }
}

/* ===== tiles ===== */

/* one MR×NR tile of S over k steps of p: ap [k][MR] and bp [k][NR] packed, s at the tile's
 * origin */
typedef void (*dm_tile_fn)(int64_t k, const double *ap, const double *bp, double *s, int64_t lds,
                           bool sub);

struct dm_kern {
    const char *name;
    int mr, nr;
    dm_tile_fn tile;
};

#define MR_GEN 4
#define NR_GEN 8
static void tile_generic(int64_t k, const double *restrict a, const double *restrict b,
                         double *restrict s, int64_t lds, bool sub) {
    double c[MR_GEN][NR_GEN];
    for (int r = 0; r < MR_GEN; r++) memcpy(c[r], s + r * lds, sizeof c[r]);
    for (int64_t p = 0; p < k; p++, b += NR_GEN) {
        for (int r = 0; r < MR_GEN; r++) {
            const double ar = a[MR_GEN * p + r];
            if (sub)
                for (int j = 0; j < NR_GEN; j++) c[r][j] -= ar * b[j];
            else
                for (int j = 0; j < NR_GEN; j++) c[r][j] += ar * b[j];
        }
    }
    for (int r = 0; r < MR_GEN; r++) memcpy(s + r * lds, c[r], sizeof c[r]);
}
static const struct dm_kern dm_generic = {"generic", MR_GEN, NR_GEN, tile_generic};

#if LB_X86
/* AVX-512: 4×16, 8 zmm accumulators; per p 2 loads, 4 broadcasts, 8 multiplies, 8 adds */
#define DM_TILE512(NAME, OP)                                                                     \
    LB_AVX512F static void NAME(int64_t k, const double *restrict a, const double *restrict b,  \
                               double *restrict s, int64_t lds) {                               \
        __m512d c0 = _mm512_loadu_pd(s), c1 = _mm512_loadu_pd(s + 8);                          \
        __m512d c2 = _mm512_loadu_pd(s + lds), c3 = _mm512_loadu_pd(s + lds + 8);              \
        __m512d c4 = _mm512_loadu_pd(s + 2 * lds), c5 = _mm512_loadu_pd(s + 2 * lds + 8);      \
        __m512d c6 = _mm512_loadu_pd(s + 3 * lds), c7 = _mm512_loadu_pd(s + 3 * lds + 8);      \
        for (int64_t p = 0; p < k; p++, b += 16) {                                      \
            const __m512d b0 = _mm512_loadu_pd(b), b1 = _mm512_loadu_pd(b + 8);               \
            __m512d x = _mm512_set1_pd(a[4 * p + 0]); \
            c0 = OP(c0, _mm512_mul_pd(x, b0));                                                  \
            c1 = OP(c1, _mm512_mul_pd(x, b1));                                                  \
            x = _mm512_set1_pd(a[4 * p + 1]); \
            c2 = OP(c2, _mm512_mul_pd(x, b0));                                                  \
            c3 = OP(c3, _mm512_mul_pd(x, b1));                                                  \
            x = _mm512_set1_pd(a[4 * p + 2]); \
            c4 = OP(c4, _mm512_mul_pd(x, b0));                                                  \
            c5 = OP(c5, _mm512_mul_pd(x, b1));                                                  \
            x = _mm512_set1_pd(a[4 * p + 3]); \
            c6 = OP(c6, _mm512_mul_pd(x, b0));                                                  \
            c7 = OP(c7, _mm512_mul_pd(x, b1));                                                  \
        }                                                                                       \
        _mm512_storeu_pd(s, c0), _mm512_storeu_pd(s + 8, c1);                                   \
        _mm512_storeu_pd(s + lds, c2), _mm512_storeu_pd(s + lds + 8, c3);                       \
        _mm512_storeu_pd(s + 2 * lds, c4), _mm512_storeu_pd(s + 2 * lds + 8, c5);               \
        _mm512_storeu_pd(s + 3 * lds, c6), _mm512_storeu_pd(s + 3 * lds + 8, c7);               \
    }
DM_TILE512(tile512_add, _mm512_add_pd)
DM_TILE512(tile512_sub, _mm512_sub_pd)

static void tile_avx512(int64_t k, const double *a, const double *b, double *s, int64_t lds,
                        bool sub) {
    (sub ? tile512_sub : tile512_add)(k, a, b, s, lds);
}
static const struct dm_kern dm_avx512 = {"avx512", 4, 16, tile_avx512};

/* AVX2: 4×8, 8 ymm accumulators */
#define DM_TILE256(NAME, OP)                                                                     \
    LB_AVX2F static void NAME(int64_t k, const double *restrict a, const double *restrict b,    \
                             double *restrict s, int64_t lds) {                                 \
        __m256d c0 = _mm256_loadu_pd(s), c1 = _mm256_loadu_pd(s + 4);                          \
        __m256d c2 = _mm256_loadu_pd(s + lds), c3 = _mm256_loadu_pd(s + lds + 4);              \
        __m256d c4 = _mm256_loadu_pd(s + 2 * lds), c5 = _mm256_loadu_pd(s + 2 * lds + 4);      \
        __m256d c6 = _mm256_loadu_pd(s + 3 * lds), c7 = _mm256_loadu_pd(s + 3 * lds + 4);      \
        for (int64_t p = 0; p < k; p++, b += 8) {                                       \
            const __m256d b0 = _mm256_loadu_pd(b), b1 = _mm256_loadu_pd(b + 4);               \
            __m256d x = _mm256_set1_pd(a[4 * p + 0]); \
            c0 = OP(c0, _mm256_mul_pd(x, b0));                                                  \
            c1 = OP(c1, _mm256_mul_pd(x, b1));                                                  \
            x = _mm256_set1_pd(a[4 * p + 1]); \
            c2 = OP(c2, _mm256_mul_pd(x, b0));                                                  \
            c3 = OP(c3, _mm256_mul_pd(x, b1));                                                  \
            x = _mm256_set1_pd(a[4 * p + 2]); \
            c4 = OP(c4, _mm256_mul_pd(x, b0));                                                  \
            c5 = OP(c5, _mm256_mul_pd(x, b1));                                                  \
            x = _mm256_set1_pd(a[4 * p + 3]); \
            c6 = OP(c6, _mm256_mul_pd(x, b0));                                                  \
            c7 = OP(c7, _mm256_mul_pd(x, b1));                                                  \
        }                                                                                       \
        _mm256_storeu_pd(s, c0), _mm256_storeu_pd(s + 4, c1);                                   \
        _mm256_storeu_pd(s + lds, c2), _mm256_storeu_pd(s + lds + 4, c3);                       \
        _mm256_storeu_pd(s + 2 * lds, c4), _mm256_storeu_pd(s + 2 * lds + 4, c5);               \
        _mm256_storeu_pd(s + 3 * lds, c6), _mm256_storeu_pd(s + 3 * lds + 4, c7);               \
    }
DM_TILE256(tile256_add, _mm256_add_pd)
DM_TILE256(tile256_sub, _mm256_sub_pd)

static void tile_avx2(int64_t k, const double *a, const double *b, double *s, int64_t lds,
                      bool sub) {
    (sub ? tile256_sub : tile256_add)(k, a, b, s, lds);
}
static const struct dm_kern dm_avx2 = {"avx2", 4, 8, tile_avx2};
#endif /* LB_X86 */

/* the kernel of path i (enum cpu_isa; -1 = none), NULL where this build has none */
static const struct dm_kern *dm_kern_at(int i) {
    static const struct dm_kern *const by_isa[CPU_ISA_COUNT] = {
        [CPU_ISA_GENERIC] = &dm_generic,
#if LB_X86
        [CPU_ISA_AVX2] = &dm_avx2,
        [CPU_ISA_AVX512] = &dm_avx512,
#endif
    };
    return i >= 0 && i < CPU_ISA_COUNT ? by_isa[i] : NULL;
}

/* ===== the driver ===== */

/* per thread: B's panel for one slice of p (DM_KC × DM_NC, 256 KiB), kept in L2 while the row
 * tiles run over it (A is read in place: four rows at a time, along p) */
#define DM_NC 256
#define DM_MC 64
static _Thread_local double dm_bp[DM_KC * DM_NC], dm_ap[DM_MC * DM_KC];

/* B's rows p0 .. p0+kc−1, columns j .. j+nc−1 (nc a multiple of nr) as [nc/nr][kc][nr], each row
 * read along its length */
static void dm_pack_b(const double *b, int64_t ldb, int64_t kc, int64_t nc, int nr, double *bp) {
    for (int64_t p = 0; p < kc; p++, b += ldb) {
        double *d = bp + p * nr;
        if (nr == 16)
            for (int64_t j0 = 0; j0 < nc; j0 += 16, d += 16 * kc) memcpy(d, b + j0, 16 * sizeof *d);
        else if (nr == 8)
            for (int64_t j0 = 0; j0 < nc; j0 += 8, d += 8 * kc) memcpy(d, b + j0, 8 * sizeof *d);
        else
            for (int64_t j0 = 0; j0 < nc; j0 += nr, d += nr * kc)
                memcpy(d, b + j0, (size_t)nr * sizeof *d);
    }
}

static void dm_run(const struct dm_kern *kn, int64_t m, int64_t n, int64_t k, const double *a,
                   int64_t lda, const double *b, int64_t ldb, double *s, int64_t lds, bool sub) {
    if (m <= 0 || n <= 0 || k <= 0) return;
    const int mr = kn->mr, nr = kn->nr;
    const int64_t mf = m / mr * mr, nf = n / nr * nr; /* rows and columns in whole tiles */
    double *bp = dm_bp, *ap = dm_ap;
    for (int64_t p0 = 0; p0 < k; p0 += DM_KC) {
        const int64_t kc = LB_MIN((int64_t)DM_KC, k - p0);
        const double *ak = a + p0, *bk = b + p0 * ldb;
        for (int64_t ic = 0; ic < mf; ic += DM_MC) {
            const int64_t mc = LB_MIN((int64_t)DM_MC, mf - ic);
            for (int64_t i0 = 0; i0 < mc; i0 += mr) { /* A's rows as [mc/mr][kc][mr] */
                const double *ar = ak + (ic + i0) * lda;
                double *d = ap + i0 * kc;
                for (int64_t p = 0; p < kc; p++, d += mr)
                    for (int r = 0; r < mr; r++) d[r] = ar[r * lda + p];
            }
            for (int64_t jc = 0; jc < nf; jc += DM_NC) {
                const int64_t nc = LB_MIN((int64_t)DM_NC, nf - jc);
                dm_pack_b(bk + jc, ldb, kc, nc, nr, bp);
                for (int64_t j0 = 0; j0 < nc; j0 += nr)
                    for (int64_t i0 = 0; i0 < mc; i0 += mr)
                        kn->tile(kc, ap + i0 * kc, bp + j0 * kc, s + (ic + i0) * lds + jc + j0, lds,
                                 sub);
            }
        }
        /* the right edge (rows in whole tiles), then the bottom rows (all columns) */
        if (nf < n) dmm_acc_ref(mf, n - nf, kc, ak, lda, bk + nf, ldb, s + nf, lds, sub);
        if (mf < m)
            dmm_acc_ref(m - mf, n, kc, ak + mf * lda, lda, bk, ldb, s + mf * lds, lds, sub);
    }
}

int dmm_acc_isa(int64_t m, int64_t n, int64_t k, const double *a, int64_t lda, const double *b,
                int64_t ldb, double *s, int64_t lds, bool sub, const char *isa) {
    const struct dm_kern *kn = dm_kern_at(cpu_isa_usable(isa));
    if (!kn) return err("dmm: instruction set '%s' is unknown or this CPU lacks it", isa);
    dm_run(kn, m, n, k, a, lda, b, ldb, s, lds, sub);
    return 0;
}

const char *dmm_path(void) {
    const struct dm_kern *kn = dm_kern_at(cpu_isa());
    return kn ? kn->name : dm_generic.name;
}

void dmm_acc(int64_t m, int64_t n, int64_t k, const double *a, int64_t lda, const double *b,
             int64_t ldb, double *s, int64_t lds, bool sub) {
    const struct dm_kern *kn = dm_kern_at(cpu_isa());
    dm_run(kn ? kn : &dm_generic, m, n, k, a, lda, b, ldb, s, lds, sub);
}
