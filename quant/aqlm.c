/* quant/aqlm.c: AQLM, one layer and the true-sequential model pass (algorithm, sources, what we
 * changed and why: quant/aqlm.h).
 *
 * Legend: W [N][K]; H [K][K]; M codebooks of S = 2^B vectors of d = go·gi values (layout
 * [M][S][go][gi]); O = N/go output groups, J = K/gi input groups; codes [O][J][M];
 * row n = o·go + i, column k = j·gi + c. */
#include "quant/aqlm.h"

#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "eval/forward.h"
#include "eval/grad.h"
#include "kernels/matmul.h"
#include "quant/calib.h"
#include "quant/qformat.h" /* hf_recipe_artifact */
#include "quant/quant.h"
#include "quant/resume.h"

/* loops with less work than this (multiply-adds) run on one thread: on a busy machine the
 * threads of a short parallel region spend longer waiting for each other than computing */
#define AQ_PAR_MIN ((int64_t)1 << 18)

/* ===== the solver's state ===== */

struct aq {
    int64_t K, N, O, J, S;
    int M, gi, go, d;
    const double *H; /* [K][K] */
    const double *g; /* [N][K]: H·w_r per row, the objective's linear term */
    double kappa;    /* Σ_r w_rᵀHw_r: L = Σ_r ŵᵀHŵ − 2ŵᵀg + κ */
    int32_t *codes;  /* [O][J][M] */
    double *cb;      /* [M][S][go][gi] */
    double *s;       /* [O] */
    double *V, *P;   /* [N][K] scratch: unscaled reconstruction, products */
    size_t n_cb;     /* M·S·d */
    float *Hf, *xf, *yf; /* H in fp32 and [N][K] scratch for the fp32 products (aq_mul_h32) */
    bool mm_failed;      /* an fp32 product had no memory for its scratch (reported at the end) */
};

static void aq_release(struct aq *a) {
    free(a->codes), free(a->cb), free(a->s), free(a->V), free(a->P);
    free(a->Hf), free(a->xf), free(a->yf);
    memset(a, 0, sizeof *a);
}

static int aq_alloc(struct aq *a, int64_t K, int64_t N, const struct aqlm_opts *o,
                    const char *name) {
    memset(a, 0, sizeof *a);
    a->K = K, a->N = N, a->M = o->num_codebooks, a->gi = o->in_group, a->go = o->out_group;
    a->d = a->gi * a->go;
    a->O = N / a->go, a->J = K / a->gi, a->S = (int64_t)1 << o->nbits;
    a->n_cb = (size_t)a->M * (size_t)a->S * (size_t)a->d;
    a->codes = xmalloc((size_t)(a->O * a->J) * (size_t)a->M * sizeof *a->codes, name);
    a->cb = xcalloc(a->n_cb, sizeof *a->cb, name);
    a->s = xmalloc((size_t)a->O * sizeof *a->s, name);
    a->V = xmalloc((size_t)(N * K) * sizeof *a->V, name);
    a->P = xmalloc((size_t)(N * K) * sizeof *a->P, name);
    if (!a->codes || !a->cb || !a->s || !a->V || !a->P) {
        aq_release(a);
        return -1;
    }
    return 0;
}

static inline const double *aq_vec(const struct aq *a, int m, int64_t c, int i) {
    return a->cb +
           (((size_t)m * (size_t)a->S + (size_t)c) * (size_t)a->go + (size_t)i) * (size_t)a->gi;
}
static inline int32_t *aq_code(const struct aq *a, int64_t o, int64_t j) {
    return a->codes + ((size_t)o * (size_t)a->J + (size_t)j) * (size_t)a->M;
}

/* V = the unscaled reconstruction Σ_m C_m[code] of every row (from codebooks cb, which may be a
 * search direction) */
static void aq_recon(const struct aq *a, const double *cb, double *V) {
    const struct aq *A = a;
#pragma omp parallel for schedule(static) if (A->N * A->K * A->M >= AQ_PAR_MIN)
    for (int64_t n = 0; n < A->N; n++) {
        const int64_t o = n / A->go, i = n % A->go;
        double *v = V + n * A->K;
        for (int64_t j = 0; j < A->J; j++) {
            const int32_t *q = aq_code(A, o, j);
            for (int c = 0; c < A->gi; c++) v[j * A->gi + c] = 0;
            for (int m = 0; m < A->M; m++) {
                const double *e = cb + (((size_t)m * (size_t)A->S + (size_t)q[m]) * (size_t)A->go +
                                        (size_t)i) * (size_t)A->gi;
                for (int c = 0; c < A->gi; c++) v[j * A->gi + c] += e[c];
            }
        }
    }
}

/* out[r] = H·in[r] for every row r (H symmetric) */
static void aq_mul_h(const struct aq *a, const double *in, double *out) {
    const int64_t K = a->K, N = a->N;
    const double *H = a->H;
#pragma omp parallel for schedule(static) if (N * K * K >= AQ_PAR_MIN)
    for (int64_t r = 0; r < N; r++) {
        const double *x = in + r * K;
        double *y = out + r * K;
        for (int64_t k = 0; k < K; k++) y[k] = 0;
        for (int64_t j = 0; j < K; j++) { /* y += x_j·H[j] (row j = column j): vectorizes */
            const double xj = x[j], *h = H + j * K;
            if (xj != 0)
                for (int64_t k = 0; k < K; k++) y[k] += xj * h[k];
        }
    }
}

/* the same through the fp32 GEMM (kernels/matmul.h) when a->Hf is set: the CG steps, the scale
 * fit and the beam search's start need no more (the loss the solver reports is aq_mul_h's) */
static void aq_mul_h32(struct aq *a, const double *in, double *out) {
    if (!a->Hf) {
        aq_mul_h(a, in, out);
        return;
    }
    const int64_t n = a->N * a->K;
    for (int64_t i = 0; i < n; i++) a->xf[i] = (float)in[i];
    const struct tensor ht = {.type = DTYPE_F32, .n_dims = 2, .ne = {a->K, a->K, 1, 1},
                              .data = a->Hf};
    /* yf[r][k] = Σ_j H[k][j]·x[r][j] */
    if (matmul(a->yf, a->xf, &ht, (int)a->N)) a->mm_failed = true;
    for (int64_t i = 0; i < n; i++) out[i] = a->yf[i];
}

/* Aᵀ: acc[m][c][i][:] += scale_o·Z[o·go + i][j·gi ..] over every (o, j) whose code m is c (in a
 * fixed order; acc zeroed first) */
static void aq_adjoint(const struct aq *a, const double *Z, double *acc) {
    memset(acc, 0, a->n_cb * sizeof *acc);
    for (int64_t o = 0; o < a->O; o++)
        for (int i = 0; i < a->go; i++) {
            const double *z = Z + (o * a->go + i) * a->K;
            const double so = a->s[o];
            for (int64_t j = 0; j < a->J; j++) {
                const int32_t *q = aq_code(a, o, j);
                for (int m = 0; m < a->M; m++) {
                    double *e = acc + (((size_t)m * (size_t)a->S + (size_t)q[m]) * (size_t)a->go +
                                       (size_t)i) * (size_t)a->gi;
                    for (int c = 0; c < a->gi; c++) e[c] += so * z[j * a->gi + c];
                }
            }
        }
}

static void aq_scale_rows(const struct aq *a, double *V) {
#pragma omp parallel for schedule(static) if (a->N * a->K >= AQ_PAR_MIN)
    for (int64_t n = 0; n < a->N; n++) {
        const double so = a->s[n / a->go];
        for (int64_t k = 0; k < a->K; k++) V[n * a->K + k] *= so;
    }
}

/* L = Σ_r ŵᵀHŵ − 2ŵᵀg + κ of the current state (V, P overwritten: V = Ŵ, P = H·Ŵ); exact: H·Ŵ
 * in double, else through the fp32 GEMM */
static double aq_loss(struct aq *a, bool exact) {
    aq_recon(a, a->cb, a->V);
    aq_scale_rows(a, a->V);
    if (exact) aq_mul_h(a, a->V, a->P);
    else aq_mul_h32(a, a->V, a->P);
    double L = a->kappa;
    for (int64_t n = 0; n < a->N; n++) { /* a fixed order */
        const double *w = a->V + n * a->K, *p = a->P + n * a->K, *g = a->g + n * a->K;
        double s = 0;
        for (int64_t k = 0; k < a->K; k++) s += w[k] * (p[k] - 2 * g[k]);
        L += s;
    }
    return L;
}

static double dot(const double *x, const double *y, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += x[i] * y[i];
    return s;
}

/* the codebooks, codes and scales fixed: `iters` steps of Jacobi-preconditioned CG on the normal
 * equations Aᵀ(A(C)·H) = Aᵀ(g) of the quadratic objective; -1 out of memory */
static int aq_cg_codebooks(struct aq *a, int iters) {
    const size_t n = a->n_cb;
    double *r = xmalloc(n * sizeof *r, "AQLM CG"), *z = xmalloc(n * sizeof *z, "AQLM CG");
    double *p = xmalloc(n * sizeof *p, "AQLM CG"), *q = xmalloc(n * sizeof *q, "AQLM CG");
    double *dg = xcalloc(n, sizeof *dg, "AQLM CG");
    int ret = -1;
    if (!r || !z || !p || !q || !dg) goto out;
    /* r = Aᵀ(g − H·Ŵ) */
    aq_recon(a, a->cb, a->V);
    aq_scale_rows(a, a->V);
    aq_mul_h32(a, a->V, a->P);
    for (int64_t i = 0; i < a->N * a->K; i++) a->P[i] = a->g[i] - a->P[i];
    aq_adjoint(a, a->P, r);
    /* the preconditioner: Σ s_o²·H_kk over the (o, j) that use each entry */
    for (int64_t o = 0; o < a->O; o++)
        for (int64_t j = 0; j < a->J; j++) {
            const int32_t *cq = aq_code(a, o, j);
            for (int m = 0; m < a->M; m++)
                for (int i = 0; i < a->go; i++) {
                    double *e = dg + (((size_t)m * (size_t)a->S + (size_t)cq[m]) * (size_t)a->go +
                                      (size_t)i) * (size_t)a->gi;
                    for (int c = 0; c < a->gi; c++) {
                        const int64_t k = j * a->gi + c;
                        e[c] += a->s[o] * a->s[o] * a->H[k * a->K + k];
                    }
                }
        }
    for (size_t i = 0; i < n; i++) dg[i] = dg[i] > 0 ? 1.0 / dg[i] : 0.0;
    for (size_t i = 0; i < n; i++) z[i] = r[i] * dg[i];
    memcpy(p, z, n * sizeof *p);
    double rz = dot(r, z, n);
    const double rz0 = rz;
    for (int it = 0; it < iters && rz > 1e-30 * rz0 && rz > 0; it++) {
        aq_recon(a, p, a->V);
        aq_scale_rows(a, a->V);
        aq_mul_h32(a, a->V, a->P);
        aq_adjoint(a, a->P, q);
        const double pq = dot(p, q, n);
        if (!(pq > 0)) break;
        const double alpha = rz / pq;
        for (size_t i = 0; i < n; i++) a->cb[i] += alpha * p[i], r[i] -= alpha * q[i];
        for (size_t i = 0; i < n; i++) z[i] = r[i] * dg[i];
        const double rz1 = dot(r, z, n), beta = rz1 / rz;
        for (size_t i = 0; i < n; i++) p[i] = z[i] + beta * p[i];
        rz = rz1;
    }
    ret = 0;
out:
    free(r), free(z), free(p), free(q), free(dg);
    return ret;
}

/* every output group's scale in closed form: s_o = Σ_i vᵢ·gᵢ / Σ_i vᵢᵀHvᵢ (v unscaled) */
static void aq_fit_scales(struct aq *a) {
    aq_recon(a, a->cb, a->V);
    aq_mul_h32(a, a->V, a->P);
#pragma omp parallel for schedule(static) if (2 * a->N * a->K >= AQ_PAR_MIN)
    for (int64_t o = 0; o < a->O; o++) {
        double num = 0, den = 0;
        for (int i = 0; i < a->go; i++) {
            const int64_t n = o * a->go + i;
            num += dot(a->V + n * a->K, a->g + n * a->K, (size_t)a->K);
            den += dot(a->V + n * a->K, a->P + n * a->K, (size_t)a->K);
        }
        if (den > 0 && isfinite(num / den)) a->s[o] = num / den;
    }
}

/* ===== residual k-means (init_aq_kmeans) ===== */

static uint64_t rng_below(uint64_t *st, uint64_t n) {
    const uint64_t lim = UINT64_MAX - UINT64_MAX % n;
    uint64_t v;
    do v = calib_rng_next(st);
    while (v >= lim);
    return v % n;
}

/* out[p] = the nearest of the k centroids C [k][d] to point X[idx[p]] (idx NULL: X[p]), p < np:
 * the distances ‖c‖² − 2x·c through the fp32 GEMM, a chunk of points at a time, then the argmin
 * (the lowest index on ties). Returns how many points changed centroid, -1 out of memory. */
static int64_t kmeans_assign(const double *X, const int64_t *idx, int64_t np, int d,
                             const double *C, int64_t k, int32_t *out) {
    const int64_t chunk = LB_MAX(1, LB_MIN(np, ((int64_t)1 << 20) / k));
    float *cf = xmalloc((size_t)(k * d) * sizeof *cf, "k-means");
    float *cn = xmalloc((size_t)k * sizeof *cn, "k-means");
    float *xf = xmalloc((size_t)(chunk * d) * sizeof *xf, "k-means");
    float *y = xmalloc((size_t)(chunk * k) * sizeof *y, "k-means");
    int64_t changed = -1;
    if (!cf || !cn || !xf || !y) goto out;
    for (int64_t c = 0; c < k; c++) {
        double s = 0;
        for (int e = 0; e < d; e++) {
            cf[c * d + e] = (float)C[c * d + e];
            s += (double)cf[c * d + e] * cf[c * d + e];
        }
        cn[c] = (float)s;
    }
    const struct tensor ct = {.type = DTYPE_F32, .n_dims = 2, .ne = {d, k, 1, 1}, .data = cf};
    changed = 0;
    for (int64_t p0 = 0; p0 < np; p0 += chunk) {
        const int64_t n = LB_MIN(chunk, np - p0);
        for (int64_t i = 0; i < n; i++)
            for (int e = 0; e < d; e++)
                xf[i * d + e] = (float)X[(idx ? idx[p0 + i] : p0 + i) * d + e];
        if (matmul(y, xf, &ct, (int)n)) { /* y[i][c] = c·x_i */
            changed = -1;
            goto out;
        }
        int64_t ch = 0;
#pragma omp parallel for schedule(static) reduction(+ : ch) if (n * k >= AQ_PAR_MIN)
        for (int64_t i = 0; i < n; i++) {
            const float *yi = y + i * k;
            int32_t best = 0;
            float bd = cn[0] - 2 * yi[0];
            for (int64_t c = 1; c < k; c++) {
                const float dc = cn[c] - 2 * yi[c];
                if (dc < bd) bd = dc, best = (int32_t)c;
            }
            ch += best != out[p0 + i];
            out[p0 + i] = best;
        }
        changed += ch;
    }
out:
    free(cf), free(cn), free(xf), free(y);
    return changed;
}

/* k-means of the P points X [P][d] into C [k][d], every point's centroid into assign [P]; -1 out
 * of memory */
static int kmeans(const double *X, int64_t P, int d, int64_t k, int iters, int max_pts,
                  uint64_t *rng, double *C, int32_t *assign) {
    int64_t nf = P;
    int64_t *idx = xmalloc((size_t)P * sizeof *idx, "k-means"), *cnt = NULL;
    double *sum = NULL;
    int32_t *fa = NULL;
    int ret = -1;
    if (!idx) goto out;
    for (int64_t p = 0; p < P; p++) idx[p] = p;
    if (max_pts > 0 && P > (int64_t)max_pts * k) nf = (int64_t)max_pts * k;
    /* the fitting set: nf distinct random points (a partial Fisher-Yates shuffle), in order */
    for (int64_t p = 0; p < nf && nf < P; p++) {
        const int64_t r = p + (int64_t)rng_below(rng, (uint64_t)(P - p)), t = idx[p];
        idx[p] = idx[r], idx[r] = t;
    }
    /* initial centroids: k distinct random fitting points (cycled when there are fewer) */
    int64_t *perm = xmalloc((size_t)nf * sizeof *perm, "k-means");
    if (!perm) goto out;
    for (int64_t p = 0; p < nf; p++) perm[p] = idx[p];
    for (int64_t c = 0; c < k && c < nf; c++) {
        const int64_t r = c + (int64_t)rng_below(rng, (uint64_t)(nf - c)), t = perm[c];
        perm[c] = perm[r], perm[r] = t;
    }
    for (int64_t c = 0; c < k; c++) memcpy(C + c * d, X + perm[c % nf] * d, (size_t)d * sizeof *C);
    free(perm);
    sum = xmalloc((size_t)k * (size_t)d * sizeof *sum, "k-means");
    cnt = xmalloc((size_t)k * sizeof *cnt, "k-means");
    fa = xmalloc((size_t)nf * sizeof *fa, "k-means");
    if (!sum || !cnt || !fa) goto out;
    for (int64_t p = 0; p < nf; p++) fa[p] = -1;
    for (int it = 0; it < iters && nf > k; it++) { /* nf <= k: every point is a centroid */
        const int64_t changed = kmeans_assign(X, idx, nf, d, C, k, fa);
        if (changed < 0) goto out;
        if (it > 0 && changed * 1000 <= nf) break; /* converged: at most 0.1% of points move */
        memset(sum, 0, (size_t)k * (size_t)d * sizeof *sum);
        memset(cnt, 0, (size_t)k * sizeof *cnt);
        for (int64_t p = 0; p < nf; p++) {
            cnt[fa[p]]++;
            for (int e = 0; e < d; e++) sum[fa[p] * d + e] += X[idx[p] * d + e];
        }
        for (int64_t c = 0; c < k; c++)
            if (cnt[c])
                for (int e = 0; e < d; e++) C[c * d + e] = sum[c * d + e] / (double)cnt[c];
    }
    for (int64_t p = 0; p < P; p++) assign[p] = -1;
    if (kmeans_assign(X, NULL, P, d, C, k, assign) < 0) goto out;
    ret = 0;
out:
    free(idx), free(sum), free(cnt), free(fa);
    return ret;
}

/* step 1 and 2 of aqlm.h: scales = group norms, codes and codebooks by residual k-means of W/s */
static int aq_init(struct aq *a, const float *w, const struct aqlm_opts *o, uint64_t *rng) {
    const int64_t P = a->O * a->J;
    const int d = a->d;
    double *X = xmalloc((size_t)P * (size_t)d * sizeof *X, "AQLM k-means points");
    int32_t *as = xmalloc((size_t)P * sizeof *as, "AQLM k-means");
    int ret = -1;
    if (!X || !as) goto out;
    for (int64_t og = 0; og < a->O; og++) {
        double s = 0;
        for (int i = 0; i < a->go; i++)
            for (int64_t k = 0; k < a->K; k++) {
                const double v = w[(og * a->go + i) * a->K + k];
                s += v * v;
            }
        a->s[og] = sqrt(s) + 1e-9;
    }
    for (int64_t og = 0; og < a->O; og++) /* point (o, j) = [i][c] of W/s */
        for (int64_t j = 0; j < a->J; j++)
            for (int i = 0; i < a->go; i++)
                for (int c = 0; c < a->gi; c++)
                    X[(og * a->J + j) * d + i * a->gi + c] =
                        w[(og * a->go + i) * a->K + j * a->gi + c] / a->s[og];
    for (int m = 0; m < a->M; m++) {
        double *C = a->cb + (size_t)m * (size_t)a->S * (size_t)d;
        if (kmeans(X, P, d, a->S, o->init_max_iter, o->init_max_points, rng, C, as)) goto out;
        for (int64_t p = 0; p < P; p++) {
            a->codes[p * a->M + m] = as[p];
            for (int e = 0; e < d; e++) X[p * d + e] -= C[(int64_t)as[p] * d + e];
        }
    }
    ret = 0;
out:
    free(X), free(as);
    return ret;
}

/* ===== beam search over codes (beam_search_optimal_codes) ===== */

struct cand {
    double loss;
    int h;
    int32_t code;
};
static bool cand_less(const struct cand *x, const struct cand *y) {
    if (x->loss != y->loss) return x->loss < y->loss;
    if (x->h != y->h) return x->h < y->h;
    return x->code < y->code;
}

/* one pass over every (input group, codebook), in an order shuffled with rng, for every output
 * group (in parallel); beam_size hypotheses per output group. -1 out of memory. */
static int aq_beam_search(struct aq *a, int beam, uint64_t *rng) {
    const int64_t K = a->K, O = a->O, J = a->J, S = a->S;
    const int M = a->M, gi = a->gi, go = a->go;
    const size_t hsz = (size_t)go * (size_t)K, csz = (size_t)J * (size_t)M;
    int nth = 1;
#ifdef _OPENMP
    nth = omp_get_max_threads();
#endif
    int ret = -1;
    /* hypotheses, double-buffered: E = g − H·ŵ per row [O][beam][go][K], codes [O][beam][J][M],
     * L (without κ) [O][beam]; nh [O] live hypotheses */
    const size_t ebytes = (size_t)O * (size_t)beam * hsz * sizeof(double);
    const size_t qbytes = (size_t)O * (size_t)beam * csz * sizeof(int32_t);
    double *E[2] = {xmalloc(ebytes, "AQLM beam"), beam > 1 ? xmalloc(ebytes, "AQLM beam") : NULL};
    int32_t *Q[2] = {xmalloc(qbytes, "AQLM beam"), beam > 1 ? xmalloc(qbytes, "AQLM beam") : NULL};
    double *Lh[2] = {xmalloc((size_t)O * (size_t)beam * sizeof(double), "AQLM beam"),
                     xmalloc((size_t)O * (size_t)beam * sizeof(double), "AQLM beam")};
    int *nh = xmalloc((size_t)O * sizeof *nh, "AQLM beam");
    double *nrm = xmalloc((size_t)S * sizeof *nrm, "AQLM beam");
    /* per thread: scores [S], u [go][gi], candidates [beam] */
    const size_t tsz = (size_t)S + (size_t)go * (size_t)gi;
    double *tmp = xmalloc((size_t)nth * tsz * sizeof *tmp, "AQLM beam");
    struct cand *tc = xmalloc((size_t)nth * (size_t)beam * sizeof *tc, "AQLM beam");
    int64_t *order = xmalloc((size_t)(J * M) * sizeof *order, "AQLM beam");
    if (!E[0] || (beam > 1 && (!E[1] || !Q[1])) || !Q[0] || !Lh[0] || !Lh[1] || !nh || !nrm ||
        !tmp || !tc || !order)
        goto out;
    /* start: one hypothesis, the current codes */
    aq_recon(a, a->cb, a->V);
    aq_scale_rows(a, a->V);
    aq_mul_h32(a, a->V, a->P);
    for (int64_t og = 0; og < O; og++) {
        nh[og] = 1;
        double L = 0;
        for (int i = 0; i < go; i++) {
            const int64_t n = og * go + i;
            double *e = E[0] + (size_t)og * (size_t)beam * hsz + (size_t)i * (size_t)K;
            for (int64_t k = 0; k < K; k++) {
                e[k] = a->g[n * K + k] - a->P[n * K + k];
                L += a->V[n * K + k] * (a->P[n * K + k] - 2 * a->g[n * K + k]);
            }
        }
        Lh[0][og * beam] = L;
        memcpy(Q[0] + (size_t)og * (size_t)beam * csz, aq_code(a, og, 0), csz * sizeof(int32_t));
    }
    /* the order: input groups shuffled, codebooks shuffled within each (dim_rng) */
    int64_t *jo = order; /* J entries first, reused below */
    for (int64_t j = 0; j < J; j++) jo[j] = j;
    for (int64_t j = J - 1; j > 0; j--) {
        const int64_t r = (int64_t)rng_below(rng, (uint64_t)(j + 1)), t = jo[j];
        jo[j] = jo[r], jo[r] = t;
    }
    int64_t *jm = xmalloc((size_t)(J * M) * sizeof *jm, "AQLM beam");
    if (!jm) goto out;
    for (int64_t x = 0; x < J; x++) {
        int mo[AQLM_MAX_CODEBOOKS];
        for (int m = 0; m < M; m++) mo[m] = m;
        for (int m = M - 1; m > 0; m--) {
            const int r = (int)rng_below(rng, (uint64_t)(m + 1)), t = mo[m];
            mo[m] = mo[r], mo[r] = t;
        }
        for (int m = 0; m < M; m++) jm[x * M + m] = jo[x] * M + mo[m];
    }
    int cur = 0;
    for (int64_t step = 0; step < J * M; step++) {
        const int64_t j = jm[step] / M;
        const int m = (int)(jm[step] % M);
        const double *Hjj = a->H + (j * gi) * K + j * gi; /* row stride K */
        /* nrm[c] = Σ_i C[c]ᵢᵀ H_jj C[c]ᵢ */
#pragma omp parallel for schedule(static) if (S * go * gi * gi >= AQ_PAR_MIN)
        for (int64_t c = 0; c < S; c++) {
            double s = 0;
            for (int i = 0; i < go; i++) {
                const double *v = aq_vec(a, m, c, i);
                for (int x = 0; x < gi; x++) {
                    double hv = 0;
                    for (int y = 0; y < gi; y++) hv += Hjj[x * K + y] * v[y];
                    s += v[x] * hv;
                }
            }
            nrm[c] = s;
        }
        const int nxt = beam > 1 ? 1 - cur : cur;
#pragma omp parallel for schedule(dynamic, 4) if (O * S * go * gi >= AQ_PAR_MIN)
        for (int64_t og = 0; og < O; og++) {
            int tid = 0;
#ifdef _OPENMP
            tid = omp_get_thread_num();
#endif
            double *sc = tmp + (size_t)tid * tsz, *u = sc + S;
            struct cand *best = tc + (size_t)tid * (size_t)beam;
            int nbest = 0;
            const double so = a->s[og];
            for (int h = 0; h < nh[og]; h++) {
                const double *e = E[cur] + ((size_t)og * (size_t)beam + (size_t)h) * hsz;
                const int32_t *q = Q[cur] + ((size_t)og * (size_t)beam + (size_t)h) * csz;
                const int32_t c0 = q[j * M + m];
                /* u_i = E_i[j] + H_jj·(s·C[c0]_i) */
                for (int i = 0; i < go; i++) {
                    const double *v = aq_vec(a, m, c0, i);
                    for (int x = 0; x < gi; x++) {
                        double hv = 0;
                        for (int y = 0; y < gi; y++) hv += Hjj[x * K + y] * v[y];
                        u[i * gi + x] = e[i * K + j * gi + x] + so * hv;
                    }
                }
                for (int64_t c = 0; c < S; c++) {
                    double s = 0;
                    for (int i = 0; i < go; i++)
                        s += dot(aq_vec(a, m, c, i), u + i * gi, (size_t)gi);
                    sc[c] = so * so * nrm[c] - 2 * so * s;
                }
                const double base = Lh[cur][og * beam + h] - sc[c0];
                for (int64_t c = 0; c < S; c++) {
                    /* the old code keeps its exact loss (no rounding drift towards a change) */
                    const struct cand cd = {c == c0 ? Lh[cur][og * beam + h] : base + sc[c], h,
                                            (int32_t)c};
                    if (nbest == beam && !cand_less(&cd, &best[nbest - 1])) continue;
                    int pos = nbest < beam ? nbest++ : beam - 1;
                    while (pos > 0 && cand_less(&cd, &best[pos - 1]))
                        best[pos] = best[pos - 1], pos--;
                    best[pos] = cd;
                }
            }
            /* the survivors: children of their parents with the new code */
            for (int b = 0; b < nbest; b++) {
                const int h = best[b].h;
                const double *pe = E[cur] + ((size_t)og * (size_t)beam + (size_t)h) * hsz;
                const int32_t *pq = Q[cur] + ((size_t)og * (size_t)beam + (size_t)h) * csz;
                double *ce = E[nxt] + ((size_t)og * (size_t)beam + (size_t)b) * hsz;
                int32_t *cq = Q[nxt] + ((size_t)og * (size_t)beam + (size_t)b) * csz;
                if (ce != pe) {
                    memcpy(ce, pe, hsz * sizeof *ce);
                    memcpy(cq, pq, csz * sizeof *cq);
                }
                const int32_t c0 = cq[j * M + m], c1 = best[b].code;
                Lh[nxt][og * beam + b] = best[b].loss;
                if (c1 == c0) continue;
                cq[j * M + m] = c1;
                for (int i = 0; i < go; i++) { /* E_i −= H[:, j]·δ_i, δ_i = s·(C[c1] − C[c0]) */
                    const double *v1 = aq_vec(a, m, c1, i), *v0 = aq_vec(a, m, c0, i);
                    double dl[AQLM_MAX_GROUP];
                    for (int x = 0; x < gi; x++) dl[x] = so * (v1[x] - v0[x]);
                    double *ei = ce + (size_t)i * (size_t)K;
                    for (int64_t k = 0; k < K; k++) {
                        const double *hk = a->H + k * K + j * gi;
                        double s = 0;
                        for (int x = 0; x < gi; x++) s += hk[x] * dl[x];
                        ei[k] -= s;
                    }
                }
            }
            nh[og] = nbest;
        }
        cur = nxt;
    }
    free(jm);
    /* the best hypothesis of each output group (the first on ties) */
    for (int64_t og = 0; og < O; og++) {
        int hb = 0;
        for (int h = 1; h < nh[og]; h++)
            if (Lh[cur][og * beam + h] < Lh[cur][og * beam + hb]) hb = h;
        memcpy(aq_code(a, og, 0), Q[cur] + ((size_t)og * (size_t)beam + (size_t)hb) * csz,
               csz * sizeof(int32_t));
    }
    ret = 0;
out:
    free(E[0]), free(E[1]), free(Q[0]), free(Q[1]), free(Lh[0]), free(Lh[1]);
    free(nh), free(nrm), free(tmp), free(tc), free(order);
    return ret;
}

/* ===== fp16 rounding and the tensor ===== */

static float round_fp16(double v) { return lb_fp16_to_f32(lb_f32_to_fp16((float)v)); }

/* step 4: codebooks to fp16, scales refit and rounded; -1 when a value is beyond fp16 */
static int aq_finalize(struct aq *a, const char *name) {
    for (size_t i = 0; i < a->n_cb; i++) {
        const float r = round_fp16(a->cb[i]);
        if (!isfinite(r)) return err("%s: codebook value %g is beyond fp16", name, a->cb[i]);
        a->cb[i] = r;
    }
    aq_fit_scales(a);
    for (int64_t o = 0; o < a->O; o++) {
        float r = round_fp16(a->s[o]);
        if (!isfinite(r)) return err("%s: scale %g is beyond fp16", name, a->s[o]);
        if (r == 0) r = a->s[o] < 0 ? -0x1p-24f : 0x1p-24f; /* keep the group alive */
        a->s[o] = r;
    }
    return 0;
}

static int aq_to_tensor(const struct aq *a, const char *name, int B, struct tensor *t, void **buf) {
    if (aqlm_tensor_init(t, name, a->K, a->N, a->M, B, a->gi, a->go)) return -1;
    void *b = xcalloc(1, tensor_nbytes(t), name);
    if (!b) return -1;
    t->data = b;
    for (int64_t o = 0; o < a->O; o++)
        for (int64_t j = 0; j < a->J; j++)
            for (int m = 0; m < a->M; m++) aqlm_code_set(t, o, j, m, (unsigned)aq_code(a, o, j)[m]);
    float *cb = aqlm_codebooks(t), *sc = aqlm_scales(t);
    for (size_t i = 0; i < a->n_cb; i++) cb[i] = (float)a->cb[i];
    for (int64_t o = 0; o < a->O; o++) sc[o] = (float)a->s[o];
    *buf = b;
    return 0;
}

/* ===== one layer ===== */

static int check_opts(const struct aqlm_opts *o, const char *name) {
    if (o->beam_size < 1 || o->beam_size > 64 || o->max_epochs < 0 || o->init_max_iter < 0 ||
        o->cg_iters < 1 || o->init_max_points < 0 || !(o->rel_tol >= 0 && o->rel_tol < 1))
        return err("%s: AQLM beam_size %d (1..64), max_epochs %d, init_max_iter %d, cg_iters %d "
                   "(>= 1), init_max_points %d, relative_mse_tolerance %g ([0, 1))", name,
                   o->beam_size, o->max_epochs, o->init_max_iter, o->cg_iters, o->init_max_points,
                   o->rel_tol);
    return 0;
}

int aqlm_quantize_layer(const float *w, int64_t K, int64_t N, const double *H,
                        const struct aqlm_opts *o, const char *name, struct tensor *t, void **buf,
                        struct aqlm_layer_stats *st) {
    *buf = NULL;
    memset(st, 0, sizeof *st);
    if (aqlm_check_layout(name, K, N, o->num_codebooks, o->nbits, o->in_group, o->out_group) ||
        check_opts(o, name))
        return -1;
    for (int64_t i = 0; i < N * K; i++)
        if (!isfinite(w[i]))
            return err("%s: weight [%lld][%lld] is not finite", name, (long long)(i / K),
                       (long long)(i % K));
    struct aq a;
    if (aq_alloc(&a, K, N, o, name)) return -1;
    double *g = xmalloc((size_t)(N * K) * sizeof *g, name);
    int ret = -1;
    if (!g) goto out;
    a.H = H;
    a.g = g;
    /* the plain objective: g = H·w, κ = Σ wᵀHw */
    for (int64_t i = 0; i < N * K; i++) a.V[i] = w[i];
    aq_mul_h(&a, a.V, g);
    a.kappa = 0;
    for (int64_t n = 0; n < N; n++) a.kappa += dot(a.V + n * K, g + n * K, (size_t)K);
    uint64_t rng = o->seed;
    if (aq_init(&a, w, o, &rng)) goto out;
    a.Hf = xmalloc((size_t)(K * K) * sizeof *a.Hf, name);
    a.xf = xmalloc((size_t)(N * K) * sizeof *a.xf, name);
    a.yf = xmalloc((size_t)(N * K) * sizeof *a.yf, name);
    if (!a.Hf || !a.xf || !a.yf) goto out;
    for (int64_t i = 0; i < K * K; i++) a.Hf[i] = (float)H[i];
    double L = aq_loss(&a, false), best = L;
    st->loss_init = L / (double)N;
    for (int e = 0; e < o->max_epochs; e++) {
        if (!isfinite(L)) {
            err("%s: the AQLM loss is %g (weights or calibration inputs out of range?)", name, L);
            goto out;
        }
        if (e > 0) { /* early stop (checked at an epoch's start, after the last beam search) */
            if (best > 0 && L / best > 1.0 - o->rel_tol) break;
            best = fmin(best, L);
        }
        if (aq_cg_codebooks(&a, o->cg_iters)) goto out;
        aq_fit_scales(&a);
        if (aq_beam_search(&a, o->beam_size, &rng) || a.mm_failed) goto out;
        st->epochs++;
        L = aq_loss(&a, false);
    }
    if (aq_cg_codebooks(&a, o->cg_iters)) goto out; /* the last codes' codebooks and scales */
    aq_fit_scales(&a);
    if (a.mm_failed || aq_finalize(&a, name)) goto out;
    L = aq_loss(&a, true);
    if (!isfinite(L)) {
        err("%s: the AQLM loss is %g", name, L);
        goto out;
    }
    st->loss = L / (double)N;
    st->rel_mse = a.kappa > 0 ? L / a.kappa : 0;
    ret = aq_to_tensor(&a, name, o->nbits, t, buf);
out:
    free(g);
    aq_release(&a);
    return ret;
}

/* ===== the block's linears ===== */

/* a block's linears are eval/model.h's enum lin; their four inputs (lin_info[].stage, FWD_QKV ..
 * FWD_DOWN) are the reference's (and AutoGPTQ's) true-sequential sub-groups, in its order */
#define SUB_COUNT LIN_N_INPUTS
#define N_BLOCK_LINEARS LIN_COUNT

/* ===== block fine-tuning (src/finetune.py finetune_groupwise) ===== */

/* one quantized linear of the block being fine-tuned */
struct ft_lin {
    struct hfx_tensor *t; /* t->q: codes fixed, codebooks and scales trained; t->f32: its
                           * dequantized weights in the source's row order (what the forward and
                           * the block read) */
    int slot;             /* 0..6: q k v o gate up down */
    struct aq a;          /* codebooks and scales in double (H, g unused) */
    double *gC, *mC, *vC, *ms, *vs; /* gradient of the codebooks, Adam moments */
    float *gw;            /* dL/dW [N][K] in source row order (grad_block_backward) */
    float *init, *best;   /* the codebooks + scales before and at the best epoch (fp32) */
};

static void ft_lin_release(struct ft_lin *f) {
    aq_release(&f->a);
    free(f->gC), free(f->mC), free(f->vC), free(f->ms), free(f->vs), free(f->gw), free(f->init),
        free(f->best);
    memset(f, 0, sizeof *f);
}

static size_t ft_params(const struct tensor *q) { /* floats of codebooks + scales */
    return aqlm_side_bytes(q) / sizeof(float);
}

static int ft_lin_init(struct ft_lin *f, struct hfx_tensor *t, int slot) {
    memset(f, 0, sizeof *f);
    const struct tensor *q = &t->q;
    const struct aqlm_opts o = {.num_codebooks = q->q_ncb, .nbits = q->q_bits,
                                .in_group = q->q_group, .out_group = q->q_out_group};
    f->t = t, f->slot = slot;
    if (aq_alloc(&f->a, t->K, t->N, &o, t->module)) return -1;
    struct aq *a = &f->a;
    for (int64_t og = 0; og < a->O; og++)
        for (int64_t j = 0; j < a->J; j++)
            for (int m = 0; m < a->M; m++)
                aq_code(a, og, j)[m] = (int32_t)aqlm_code_get(q, og, j, m);
    const float *cb = aqlm_codebooks(q), *sc = aqlm_scales(q);
    for (size_t i = 0; i < a->n_cb; i++) a->cb[i] = cb[i];
    for (int64_t og = 0; og < a->O; og++) a->s[og] = sc[og];
    const size_t np = ft_params(q);
    f->gC = xcalloc(a->n_cb, sizeof(double), t->module);
    f->mC = xcalloc(a->n_cb, sizeof(double), t->module);
    f->vC = xcalloc(a->n_cb, sizeof(double), t->module);
    f->ms = xcalloc((size_t)a->O, sizeof(double), t->module);
    f->vs = xcalloc((size_t)a->O, sizeof(double), t->module);
    f->gw = xmalloc((size_t)(t->N * t->K) * sizeof(float), t->module);
    f->init = xmalloc(np * sizeof(float), t->module);
    f->best = xmalloc(np * sizeof(float), t->module);
    if (!f->gC || !f->mC || !f->vC || !f->ms || !f->vs || !f->gw || !f->init || !f->best) return -1;
    memcpy(f->init, aqlm_codebooks(q), np * sizeof(float));
    memcpy(f->best, f->init, np * sizeof(float));
    return 0;
}

/* the tensor's codebooks and scales from the double copies (fp16-rounded when round16), and
 * t->f32 dequantized from them in the source's row order */
static void ft_store(struct ft_lin *f, const struct model *m, bool round16) {
    struct tensor *q = &f->t->q;
    float *cb = aqlm_codebooks(q), *sc = aqlm_scales(q);
    for (size_t i = 0; i < f->a.n_cb; i++)
        cb[i] = round16 ? round_fp16(f->a.cb[i]) : (float)f->a.cb[i];
    for (int64_t og = 0; og < f->a.O; og++)
        sc[og] = round16 ? round_fp16(f->a.s[og]) : (float)f->a.s[og];
    const bool qk = f->slot == 0 || f->slot == 1;
    for (int64_t r = 0; r < f->t->N; r++)
        aqlm_row_to_f32(q, r, f->t->f32 + calib_source_row(m, qk, r) * f->t->K);
}

/* the codebooks and scales from a snapshot (init or best), then stored */
static void ft_load(struct ft_lin *f, const struct model *m, const float *snap) {
    for (size_t i = 0; i < f->a.n_cb; i++) f->a.cb[i] = snap[i];
    for (int64_t og = 0; og < f->a.O; og++) f->a.s[og] = snap[f->a.n_cb + (size_t)og];
    ft_store(f, m, false);
}

/* one Adam step (betas 0.9, 0.95, eps 1e-8, the reference's finetune_adam_beta1/2) on the
 * codebooks and scales from f->gw: dC = Aᵀ(dW), ds_o = Σ dW ⊙ V over the output group */
static void ft_adam(struct ft_lin *f, const struct model *m, double lr, int step) {
    struct aq *a = &f->a;
    const bool qk = f->slot == 0 || f->slot == 1;
    const int64_t K = a->K;
    for (int64_t r = 0; r < a->N; r++) { /* the gradient in HF row order, as the codes are */
        const float *g = f->gw + calib_source_row(m, qk, r) * K;
        for (int64_t k = 0; k < K; k++) a->P[r * K + k] = g[k];
    }
    aq_adjoint(a, a->P, f->gC);
    aq_recon(a, a->cb, a->V);
    const double b1 = 0.9, b2 = 0.95, eps = 1e-8;
    const double c1 = 1 - pow(b1, step), c2 = 1 - pow(b2, step);
    for (size_t i = 0; i < a->n_cb; i++) {
        const double g = f->gC[i];
        f->mC[i] = b1 * f->mC[i] + (1 - b1) * g;
        f->vC[i] = b2 * f->vC[i] + (1 - b2) * g * g;
        a->cb[i] -= lr * (f->mC[i] / c1) / (sqrt(f->vC[i] / c2) + eps);
    }
    for (int64_t og = 0; og < a->O; og++) {
        double g = 0;
        for (int i = 0; i < a->go; i++)
            g += dot(a->P + (og * a->go + i) * K, a->V + (og * a->go + i) * K, (size_t)K);
        f->ms[og] = b1 * f->ms[og] + (1 - b1) * g;
        f->vs[og] = b2 * f->vs[og] + (1 - b2) * g * g;
        a->s[og] -= lr * (f->ms[og] / c1) / (sqrt(f->vs[og] / c2) + eps);
    }
    ft_store(f, m, false);
}

/* the block's weights: float ones from wf, the quantized linears' from their t->f32 */
static struct grad_weights ft_weights(const struct grad_weights *wf, struct ft_lin *lin, int nl) {
    struct grad_weights w = *wf;
    for (int i = 0; i < nl; i++) w.lin[lin[i].slot] = lin[i].t->f32;
    return w;
}

/* mean squared error of the block's output against ystar over all n windows of xq; -1 error */
static int ft_loss(struct grad_block *g, const struct grad_weights *w, const float *xq,
                   const float *ystar, int n, int T, int bs, float *yb, double *loss) {
    const int64_t W = (int64_t)T * g->D;
    double s = 0;
    for (int w0 = 0; w0 < n; w0 += bs) {
        const int cnt = LB_MIN(bs, n - w0);
        if (grad_block_forward(g, w, xq + w0 * W, cnt, T, yb)) return -1;
        for (int64_t i = 0; i < cnt * W; i++) {
            const double e = (double)yb[i] - ystar[w0 * W + i];
            s += e * e;
        }
    }
    *loss = s / ((double)n * (double)W);
    return 0;
}

/* fine-tune the codebooks and scales of the block's quantized linears lin[0..nl) so that the
 * block maps the quantized stream xq to ystar (the float block's output on xq): `epochs` passes
 * over the windows in a seeded random order, batches of bs, Adam with learning rate lr on the
 * mean squared error, the best epoch kept (finetune_keep_best) and never worse than no tuning;
 * the result rounded to fp16 (then kept only if still better). */
static int ft_block(struct grad_block *g, const struct model *m, const struct grad_weights *wf,
                    struct ft_lin *lin, int nl, const float *xq, const float *ystar, int n, int T,
                    int bs, int epochs, double lr, uint64_t *rng, double *loss0, double *loss1) {
    const int64_t W = (int64_t)T * g->D, rows = (int64_t)bs * T;
    float *xb = xmalloc((size_t)(rows * g->D) * sizeof(float), "AQLM fine-tuning");
    float *yb = xmalloc((size_t)(rows * g->D) * sizeof(float), "AQLM fine-tuning");
    int *order = xmalloc((size_t)n * sizeof *order, "AQLM fine-tuning");
    int ret = -1, step = 0;
    if (!xb || !yb || !order) goto out;
    struct grad_grads gr = {0};
    for (int i = 0; i < nl; i++) gr.lin[lin[i].slot] = lin[i].gw;
    const struct grad_weights wq = ft_weights(wf, lin, nl);
    double best;
    if (ft_loss(g, &wq, xq, ystar, n, T, bs, yb, &best)) goto out;
    *loss0 = best;
    for (int i = 0; i < n; i++) order[i] = i;
    for (int e = 0; e < epochs; e++) {
        for (int i = n - 1; i > 0; i--) {
            const int r = (int)rng_below(rng, (uint64_t)(i + 1)), t = order[i];
            order[i] = order[r], order[r] = t;
        }
        for (int w0 = 0; w0 < n; w0 += bs) {
            const int cnt = LB_MIN(bs, n - w0);
            for (int i = 0; i < cnt; i++)
                memcpy(xb + i * W, xq + (int64_t)order[w0 + i] * W, (size_t)W * sizeof(float));
            if (grad_block_forward(g, &wq, xb, cnt, T, yb)) goto out;
            const double scale = 2.0 / ((double)cnt * (double)W); /* d mean((y − y*)²) / dy */
            for (int i = 0; i < cnt; i++) {
                const float *ys = ystar + (int64_t)order[w0 + i] * W;
                float *y = yb + i * W;
                for (int64_t k = 0; k < W; k++) y[k] = (float)(scale * ((double)y[k] - ys[k]));
            }
            if (grad_block_backward(g, &wq, yb, NULL, &gr)) goto out;
            step++;
            for (int i = 0; i < nl; i++) ft_adam(&lin[i], m, lr, step);
        }
        double L;
        if (ft_loss(g, &wq, xq, ystar, n, T, bs, yb, &L)) goto out;
        if (L < best) {
            best = L;
            for (int i = 0; i < nl; i++)
                memcpy(lin[i].best, aqlm_codebooks(&lin[i].t->q),
                       ft_params(&lin[i].t->q) * sizeof(float));
        }
    }
    /* the best epoch, rounded to fp16 as the checkpoint stores it */
    for (int i = 0; i < nl; i++) {
        ft_load(&lin[i], m, lin[i].best);
        ft_store(&lin[i], m, true);
    }
    double L;
    if (ft_loss(g, &wq, xq, ystar, n, T, bs, yb, &L)) goto out;
    if (!(L < *loss0)) { /* rounding lost the gain: the untuned weights (fp16 already) */
        for (int i = 0; i < nl; i++) ft_load(&lin[i], m, lin[i].init);
        L = *loss0;
    }
    *loss1 = L;
    ret = 0;
out:
    free(xb), free(yb), free(order);
    return ret;
}

/* ===== the model, true-sequentially ===== */

/* the hook's state: which weight's input goes into which sum of x·xᵀ */
struct capture {
    const struct tensor *anchor[SUB_COUNT]; /* the weight whose input is sub-group s's input */
    double *H[SUB_COUNT];                   /* [K][K] sums; NULL: not collected in this pass */
    int64_t K[SUB_COUNT], n_tokens[SUB_COUNT];
    int T_max;
    float *xt, *prod;                       /* scratch: [K][T], [K][K] (K the largest) */
};

/* xt [K][T] = xᵀ */
static void transpose(const float *x, int T, int64_t K, float *xt) {
    for (int t = 0; t < T; t++)
        for (int64_t k = 0; k < K; k++) xt[k * T + t] = x[(size_t)t * (size_t)K + k];
}

static int capture_hook(void *ctx, const struct tensor *w, const float *x, int T) {
    struct capture *c = ctx;
    for (int s = 0; s < SUB_COUNT; s++) {
        if (!c->H[s] || w != c->anchor[s]) continue;
        const int64_t K = c->K[s];
        if (w->ne[0] != K || T > c->T_max)
            return err("AQLM: %s has %lld inputs and %d tokens (expected %lld, at most %d)",
                       w->name, (long long)w->ne[0], T, (long long)K, c->T_max);
        /* Σ_t x·xᵀ of the window through the fp32 GEMM (prod[a][b] = Σ_t xt[b][t]·xt[a][t]) */
        transpose(x, T, K, c->xt);
        const struct tensor xtt = {.type = DTYPE_F32, .n_dims = 2, .ne = {T, K, 1, 1},
                                   .data = c->xt};
        if (matmul(c->prod, c->xt, &xtt, (int)K)) return -1;
        for (int64_t i = 0; i < K * K; i++) c->H[s][i] += c->prod[i];
        c->n_tokens[s] += T;
    }
    return 0;
}

static uint64_t module_seed(uint64_t seed, int layer, int i) {
    uint64_t s = seed ^ (0x9e3779b97f4a7c15ull * (uint64_t)(layer * N_BLOCK_LINEARS + i + 1));
    return calib_rng_next(&s);
}

/* ys [n][T][D] = the block with weights w applied to xs, in batches of bs windows */
static int block_apply(struct grad_block *g, const struct grad_weights *w, const float *xs,
                       float *ys, int n, int T, int bs) {
    const int64_t W = (int64_t)T * g->D;
    for (int w0 = 0; w0 < n; w0 += bs)
        if (grad_block_forward(g, w, xs + w0 * W, LB_MIN(bs, n - w0), T, ys + w0 * W)) return -1;
    return 0;
}

/* the export tensor of each block linear into idx[l·N_BLOCK_LINEARS + i], or -1 when it stays in
 * float (not in the modules asked for, or group sizes that do not divide it) */
static int aqlm_plan(const struct model *m, struct hfx_model *hm, const struct aqlm_model_opts *o,
                     bool quiet, int *idx) {
    for (int l = 0; l < m->cfg.n_layers; l++)
        for (int i = 0; i < N_BLOCK_LINEARS; i++) {
            char name[96];
            lin_name(name, sizeof name, l, (enum lin)i);
            int *x = &idx[l * N_BLOCK_LINEARS + i];
            *x = hfx_find(hm, name);
            if (*x < 0 || !hm->t[*x].linear) return err("AQLM: %s has no tensor %s", m->path, name);
            struct hfx_tensor *t = &hm->t[*x];
            const bool want = o->modules == AQLM_MOD_ALL ||
                              (o->modules == AQLM_MOD_ATTENTION) == lin_info[i].attn;
            if (!want) {
                snprintf(t->note, sizeof t->note, "kept in float: not in modules");
                *x = -1;
            } else if (t->K % o->q.in_group || t->N % o->q.out_group) {
                snprintf(t->note, sizeof t->note, "kept in float: in_features %lld / out_features "
                         "%lld are not multiples of in_group_size %d / out_group_size %d",
                         (long long)t->K, (long long)t->N, o->q.in_group, o->q.out_group);
                if (!quiet && l == 0)
                    fprintf(stderr, "aqlm: %s (and every block's): %s\n", t->module, t->note);
                *x = -1;
            }
        }
    return 0;
}

/* a block's quantized linears so far, for its progress line */
struct aqlm_block_sum {
    double rel;
    int n, epochs;
};

/* the linears of block l whose input cap collected in this pass: quantized against their
 * H = Σxxᵀ/n (into Hd), swapped into fm's slots dequantized (fp32, source row order) */
static int aqlm_quantize_pass(const struct model *m, struct hfx_model *hm, struct model *fm,
                              const struct capture *cap, double *Hd,
                              const struct aqlm_model_opts *o, int l, const int *idx,
                              struct aqlm_report *rep, struct aqlm_block_sum *bs,
                              double *rel_sum) {
    for (int i = 0; i < N_BLOCK_LINEARS; i++) {
        const int x = idx[l * N_BLOCK_LINEARS + i], s = (int)lin_info[i].stage;
        if (x < 0 || !cap->H[s]) continue;
        struct hfx_tensor *t = &hm->t[x];
        const int64_t K = t->K, N = t->N;
        if (cap->n_tokens[s] < 1) return err("AQLM: no calibration input reached %s", t->module);
        const double inv = 1.0 / (double)cap->n_tokens[s];
        for (int64_t e = 0; e < K * K; e++) Hd[e] = cap->H[s][e] * inv;
        struct aqlm_opts q = o->q;
        q.seed = module_seed(o->q.seed, l, i);
        struct aqlm_layer_stats ls;
        if (aqlm_quantize_layer(t->f32, K, N, Hd, &q, t->module, &t->q, &t->qbuf, &ls)) return -1;
        t->quantized = true;
        /* swap in the dequantized weights, fp32 in the source's row order */
        for (int64_t r = 0; r < N; r++)
            aqlm_row_to_f32(&t->q, r, t->f32 + calib_source_row(m, lin_info[i].rope, r) * K);
        calib_f32_slot(&fm->layers[l].lin[i], t->f32, K, N);
        bs->rel += ls.rel_mse, bs->n++, bs->epochs += ls.epochs;
        *rel_sum += ls.rel_mse;
        rep->n_layers++;
        rep->epochs += ls.epochs;
        if (ls.rel_mse >= rep->rel_mse_max) {
            rep->rel_mse_max = ls.rel_mse;
            snprintf(rep->rel_mse_max_module, sizeof rep->rel_mse_max_module, "%s", t->module);
        }
    }
    return 0;
}

/* block l's fine-tuning (after its linears are quantized and its outputs computed): the
 * codebooks and scales of its quantized linears against the float block's outputs on the
 * quantized stream *xq (targets into *ys), then the stream advanced (*xq, *ys swapped) and, when
 * tuning changed the block, the calibration stream's outputs computed again; ftmsg the summary */
static int aqlm_finetune(const struct model *m, struct hfx_model *hm, struct calib_stream *cst,
                         struct grad_block *g, const struct aqlm_model_opts *o, int l,
                         const int *idx, struct ft_lin *lin, float **xq, float **ys, int n, int T,
                         int bs, uint64_t *ft_rng, struct aqlm_report *rep, char *ftmsg,
                         size_t ftmsg_size) {
    struct grad_weights wf;
    float *wown = NULL;
    int nl = 0, ret = -1;
    if (grad_weights_from_layer(m, l, &wf, &wown)) return -1;
    for (int i = 0; i < N_BLOCK_LINEARS; i++) {
        const int x = idx[l * N_BLOCK_LINEARS + i];
        if (x >= 0 && ft_lin_init(&lin[nl++], &hm->t[x], i)) goto out;
    }
    if (nl) {
        const double tt = now_s();
        double l0 = 0, l1 = 0;
        if (block_apply(g, &wf, *xq, *ys, n, T, bs) ||
            ft_block(g, m, &wf, lin, nl, *xq, *ys, n, T, bs, o->finetune_max_epochs,
                     o->finetune_lr, ft_rng, &l0, &l1))
            goto out;
        rep->ft_seconds += now_s() - tt;
        rep->ft_gain += l0 > 0 ? 1 - l1 / l0 : 0;
        rep->ft_blocks++;
        snprintf(ftmsg, ftmsg_size, ", fine-tuning: block output MSE %.4g -> %.4g", l0, l1);
    }
    /* the next block's input: this block's output with its final weights */
    const struct grad_weights wq = ft_weights(&wf, lin, nl);
    if (block_apply(g, &wq, *xq, *ys, n, T, bs)) goto out;
    if (nl) { /* fine-tuning changed the block: its outputs again, in the forward's way */
        const double tr = now_s();
        if (calib_stream_redo(cst, l)) goto out;
        rep->forward_seconds += now_s() - tr;
    }
    float *sw = *xq;
    *xq = *ys, *ys = sw;
    ret = 0;
out:
    for (int i = 0; i < nl; i++) ft_lin_release(&lin[i]);
    free(wown);
    return ret;
}

/* ===== resume (quant/resume.h) =====
 * After block l: its quantized linears (codes, and the codebooks and scales fine-tuning left),
 * the calibration stream, the fine-tuning stream, the fine-tuning sampler and the report. */
static int aqlm_resume_open(struct qresume *rs, const struct model *m, const char *src_path,
                            const struct aqlm_model_opts *o, const struct calib_set *cs, bool quiet,
                            int *l_done, json_t **f) {
    const struct aqlm_opts *q = &o->q;
    char *kt = xstrfmt("%d %d %d %d %d %d %d %d %d %.17g %llu|%d %d %d %.17g %d %d|%s|%d x %d",
                       q->num_codebooks, q->nbits, q->in_group, q->out_group, q->beam_size,
                       q->max_epochs, q->init_max_iter, q->init_max_points, q->cg_iters,
                       q->rel_tol, (unsigned long long)q->seed, o->true_sequential, o->finetune,
                       o->finetune_max_epochs, o->finetune_lr, o->finetune_batch_size,
                       (int)o->modules, cs->tokens_sha256, cs->n_samples, cs->seqlen);
    const int rc = !kt ? -1
                       : qresume_open(rs, o->resume_dir, "aqlm", src_path, kt, m->cfg.n_layers,
                                      quiet, l_done, f);
    free(kt);
    return rc;
}

static json_t *aqlm_fields(const struct aqlm_report *rep, double rel_sum, uint64_t ft_rng) {
    char rs[24];
    snprintf(rs, sizeof rs, "%016" PRIx64, ft_rng);
    json_t *f = json_pack("{s:f, s:i, s:i, s:i, s:f, s:s, s:f, s:f, s:i, s:f, s:s}",
                          "forward_seconds", rep->forward_seconds, "n_forward", rep->n_forward,
                          "n_layers", rep->n_layers, "epochs", rep->epochs, "rel_mse_max",
                          rep->rel_mse_max, "rel_mse_max_module", rep->rel_mse_max_module,
                          "ft_seconds", rep->ft_seconds, "ft_gain", rep->ft_gain, "ft_blocks",
                          rep->ft_blocks, "rel_sum", rel_sum, "ft_rng", rs);
    if (!f) err("out of memory");
    return f;
}

static int aqlm_unfields(const json_t *f, struct aqlm_report *rep, double *rel_sum,
                         uint64_t *ft_rng) {
    const char *rs = json_string_value(json_object_get(f, "ft_rng"));
    const char *mx = json_string_value(json_object_get(f, "rel_mse_max_module"));
    if (!rs || !mx || sscanf(rs, "%" SCNx64, ft_rng) != 1)
        return err("AQLM resume: the state's fields are not this version's");
    rep->forward_seconds = json_number_value(json_object_get(f, "forward_seconds"));
    rep->n_forward = (int)json_integer_value(json_object_get(f, "n_forward"));
    rep->n_layers = (int)json_integer_value(json_object_get(f, "n_layers"));
    rep->epochs = (int)json_integer_value(json_object_get(f, "epochs"));
    rep->rel_mse_max = json_number_value(json_object_get(f, "rel_mse_max"));
    snprintf(rep->rel_mse_max_module, sizeof rep->rel_mse_max_module, "%s", mx);
    rep->ft_seconds = json_number_value(json_object_get(f, "ft_seconds"));
    rep->ft_gain = json_number_value(json_object_get(f, "ft_gain"));
    rep->ft_blocks = (int)json_integer_value(json_object_get(f, "ft_blocks"));
    *rel_sum = json_number_value(json_object_get(f, "rel_sum"));
    return 0;
}

int aqlm_quantize_model(const struct model *m, const char *src_path,
                        const struct aqlm_model_opts *o, const struct calib_set *cs,
                        const char *out, bool quiet, struct hfx_stats *st,
                        struct aqlm_report *rep) {
    memset(rep, 0, sizeof *rep);
    const double t0 = now_s();
    const int n_layers = m->cfg.n_layers, T = cs->seqlen, n = cs->n_samples, D = m->cfg.dim;
    int64_t dims[SUB_COUNT];
    for (int s = 0; s < SUB_COUNT; s++) dims[s] = lin_dim(&m->cfg, lin_info[lin_anchor(s)].in);
    const bool ft = o->finetune && o->finetune_max_epochs > 0;
    const int bs = LB_MAX(1, LB_MIN(o->finetune_batch_size, n));
    const int64_t W = (int64_t)T * D;
    struct hfx_model hm = {0};
    struct model fm = *m; /* the forward's view: m's tensors, with quantized layers swapped in */
    struct calib_stream cst;
    struct capture cap;
    struct grad_block g;
    struct ft_lin lin[N_BLOCK_LINEARS];
    double *Hd = NULL, *Hbuf[SUB_COUNT] = {NULL};
    float *xq = NULL, *ys = NULL;
    int *idx = NULL, ret = -1;
    bool fwd_ok = false, g_ok = false;
    double rel_sum = 0;
    uint64_t ft_rng = o->q.seed ^ 0x5851f42d4c957f2dull;
    struct qresume rs = {0};
    memset(&cap, 0, sizeof cap);
    memset(&g, 0, sizeof g);
    memset(lin, 0, sizeof lin);
    fm.layers = NULL;
    if (check_opts(&o->q, "AQLM") || hfx_collect(&hm, m, src_path, true)) goto out;
    fm.layers = xmalloc((size_t)n_layers * sizeof *fm.layers, "layers");
    idx = xmalloc((size_t)n_layers * N_BLOCK_LINEARS * sizeof *idx, "layers");
    if (!fm.layers || !idx) goto out;
    memcpy(fm.layers, m->layers, (size_t)n_layers * sizeof *fm.layers);
    /* the export tensor of each block linear, or -1 when it stays in float */
    int64_t max_k = 1;
    for (int s = 0; s < SUB_COUNT; s++) max_k = LB_MAX(max_k, dims[s]);
    if (aqlm_plan(m, &hm, o, quiet, idx)) goto out;
    /* one sum of x·xᵀ per sub-group (true-sequential passes collect one at a time: one buffer) */
    for (int s = 0; s < (o->true_sequential ? 1 : SUB_COUNT); s++)
        if (!(Hbuf[s] = xmalloc((size_t)(max_k * max_k) * sizeof(double), "AQLM statistics")))
            goto out;
    for (int s = 1; o->true_sequential && s < SUB_COUNT; s++) Hbuf[s] = Hbuf[0];
    cap.T_max = T;
    cap.xt = xmalloc((size_t)T * (size_t)max_k * sizeof *cap.xt, "AQLM statistics");
    cap.prod = xmalloc((size_t)(max_k * max_k) * sizeof *cap.prod, "AQLM statistics");
    Hd = xmalloc((size_t)(max_k * max_k) * sizeof *Hd, "AQLM Hessian");
    if (!cap.xt || !cap.prod || !Hd || calib_stream_init(&cst, &fm, cs, ft, out)) goto out;
    fwd_ok = true;
    cst.fs.mm_hook = capture_hook;
    cst.fs.mm_hook_ctx = &cap;
    if (ft) { /* the quantized stream through the blocks, and the float block's targets */
        xq = xmalloc((size_t)(n * W) * sizeof(float), "AQLM fine-tuning stream");
        ys = xmalloc((size_t)(n * W) * sizeof(float), "AQLM fine-tuning targets");
        if (!xq || !ys || grad_block_init(&g, m, T, (int64_t)bs * T)) goto out;
        g_ok = true;
        for (int w = 0; w < n; w++) /* block 0's input: the embeddings as forward() has them */
            for (int t = 0; t < T; t++)
                fwd_embed(m, cs->tokens[(size_t)w * T + t], xq + w * W + t * D);
    }

    /* the checkpoint is written as the blocks are done: one block in fp32 at a time */
    if (aqlm_write_begin(&hm, &o->q, out, st)) goto out;
    int l_start = 0, l_done = -1;
    json_t *rf = NULL;
    const size_t sbytes = (size_t)(n * W) * sizeof(float);
    if (aqlm_resume_open(&rs, m, src_path, o, cs, quiet, &l_done, &rf)) goto out;
    if (l_done >= 0) { /* blocks 0..l_done from their files, the streams as they were after it */
        int rrc = aqlm_unfields(rf, rep, &rel_sum, &ft_rng);
        json_decref(rf);
        for (int l = 0; !rrc && l <= l_done; l++)
            rrc = qresume_get_block(&rs, l, &hm) || hfx_emit_block(&hm, l) ? -1 : 0;
        if (!rrc) rrc = calib_stream_restore(&cst, &rs, l_done);
        if (!rrc && ft) rrc = qresume_get(&rs, "xq.bin", xq, sbytes);
        if (rrc) {
            qresume_remove(&rs); /* the next attempt starts anew */
            goto out;
        }
        l_start = rep->resumed_blocks = l_done + 1;
    }
    for (int l = l_start; l < n_layers; l++) {
        const double tl = now_s();
        struct aqlm_block_sum bs_l = {0};
        for (int i = 0; i < N_BLOCK_LINEARS; i++)
            if (idx[l * N_BLOCK_LINEARS + i] >= 0 && hfx_load(&hm, idx[l * N_BLOCK_LINEARS + i]))
                goto out;
        const int n_pass = o->true_sequential ? SUB_COUNT : 1;
        for (int p = 0; p < n_pass; p++) {
            for (int s = 0; s < SUB_COUNT; s++) {
                cap.H[s] = NULL;
                if (o->true_sequential && s != p) continue;
                bool has = false;
                for (int i = 0; i < N_BLOCK_LINEARS; i++)
                    has |= (int)lin_info[i].stage == s && idx[l * N_BLOCK_LINEARS + i] >= 0;
                if (!has) continue;
                cap.H[s] = Hbuf[s];
                cap.anchor[s] = &fm.layers[l].lin[lin_anchor(s)];
                cap.K[s] = dims[s];
                cap.n_tokens[s] = 0;
                memset(cap.H[s], 0, (size_t)(dims[s] * dims[s]) * sizeof(double));
            }
            const double tf = now_s();
            /* true_sequential: stage p collects sub-group p's input (the earlier sub-groups
             * already quantized); else one probe collects the four in float */
            if (o->true_sequential ? calib_stream_stage(&cst, l, (enum fwd_stage)p)
                                   : calib_stream_probe(&cst, l, FWD_DOWN))
                goto out;
            rep->forward_seconds += now_s() - tf;
            if (aqlm_quantize_pass(m, &hm, &fm, &cap, Hd, o, l, idx, rep, &bs_l, &rel_sum))
                goto out;
        }
        /* the block's outputs (block l+1's inputs); run again below after fine-tuning */
        const double tf = now_s();
        for (int s = 0; s < SUB_COUNT; s++) cap.H[s] = NULL;
        if (calib_stream_finish(&cst, l)) goto out;
        rep->n_forward += n;
        rep->forward_seconds += now_s() - tf;
        char ftmsg[96] = "";
        if (ft && aqlm_finetune(m, &hm, &cst, &g, o, l, idx, lin, &xq, &ys, n, T, bs, &ft_rng, rep,
                                ftmsg, sizeof ftmsg))
            goto out;
        /* the resume state, then the block into the checkpoint; the forward will not run it
         * again */
        if (rs.dir) {
            json_t *f = aqlm_fields(rep, rel_sum, ft_rng);
            const int crc = !f || qresume_put_block(&rs, l, &hm) || calib_stream_save(&cst, &rs) ||
                            (ft && qresume_put(&rs, "xq.bin", xq, sbytes)) ||
                            qresume_commit(&rs, l, f);
            json_decref(f);
            if (crc) goto out;
        }
        if (hfx_emit_block(&hm, l)) goto out;
        fm.layers[l] = m->layers[l];
        if (!quiet && bs_l.n)
            fprintf(stderr, "aqlm: block %d/%d: %d linears, relative output MSE %.4g (mean), %d "
                    "epochs%s (%.2f s)\n", l + 1, n_layers, bs_l.n, bs_l.rel / bs_l.n, bs_l.epochs,
                    ftmsg, now_s() - tl);
    }
    rep->rel_mse_mean = rep->n_layers ? rel_sum / rep->n_layers : 0;
    rep->seconds = now_s() - t0;
    json_t *extra = json_pack(
        "{s:s, s:s, s:s, s:i, s:i, s:I, s:b, s:i, s:i, s:i, s:f, s:b, s:i, s:b, s:f, s:f}",
        "calib_set", cs->path, "calib_sha256", cs->file_sha256, "calib_tokens_sha256",
        cs->tokens_sha256, "calib_nsamples", cs->n_samples, "calib_seqlen", cs->seqlen, "seed",
        (json_int_t)o->q.seed, "calib_bos", cs->bos, "beam_size", o->q.beam_size, "max_epochs",
        o->q.max_epochs, "init_max_iter", o->q.init_max_iter, "relative_mse_tolerance",
        o->q.rel_tol, "finetune", ft, "finetune_max_epochs", o->finetune_max_epochs,
        "true_sequential", o->true_sequential, "relative_mse_mean", rep->rel_mse_mean,
        "relative_mse_max", rep->rel_mse_max);
    json_object_set_new(extra, "cg_iters", json_integer(o->q.cg_iters));
    json_object_set_new(extra, "epochs", json_integer(rep->epochs));
    if (ft) {
        json_object_set_new(extra, "finetune_lr", json_real(o->finetune_lr));
        json_object_set_new(extra, "finetune_batch_size", json_integer(bs));
    }
    ret = aqlm_write(&hm, &o->q, extra, out, st);
    json_decref(extra);
    if (!ret) qresume_remove(&rs);
out:
    qresume_release(&rs);
    if (fwd_ok) calib_stream_release(&cst);
    if (g_ok) grad_block_release(&g);
    for (int i = 0; i < N_BLOCK_LINEARS; i++) ft_lin_release(&lin[i]);
    for (int s = 0; s < (o->true_sequential ? 1 : SUB_COUNT); s++) free(Hbuf[s]);
    free(cap.xt), free(cap.prod);
    free(Hd), free(idx), free(fm.layers), free(xq), free(ys);
    hfx_release(&hm);
    return ret;
}

/* ===== the registry row ===== */

/* the knobs (aqlm.h) into o; -1 with a message naming the recipe and the knob */
static int aqlm_knobs(const struct recipe *r, struct aqlm_model_opts *o) {
    const struct aqlm_model_opts def = {.q = AQLM_OPTS_DEFAULT, .true_sequential = true,
                                        .finetune = true, .finetune_max_epochs = 5,
                                        .finetune_lr = 1e-3, .finetune_batch_size = 8,
                                        .modules = AQLM_MOD_ALL};
    *o = def;
    bool has_gi = false;
    json_t *kn;
    if (recipe_knobs(r, &kn)) return -1;
    const char *key;
    json_t *v;
    int ret = 0;
    json_object_foreach(kn, key, v) {
        const bool is_int = json_is_integer(v);
        const long long iv = is_int ? json_integer_value(v) : 0;
#define INT_KNOB(k, lo, hi, field)                                                                 \
    if (!strcmp(key, k) && is_int && iv >= (lo) && iv <= (hi)) {                                   \
        field = (int)iv;                                                                           \
        continue;                                                                                  \
    }
        INT_KNOB("num_codebooks", 1, AQLM_MAX_CODEBOOKS, o->q.num_codebooks)
        INT_KNOB("nbits_per_codebook", 1, AQLM_MAX_NBITS, o->q.nbits)
        INT_KNOB("out_group_size", 1, AQLM_MAX_GROUP, o->q.out_group)
        INT_KNOB("beam_size", 1, 64, o->q.beam_size)
        INT_KNOB("max_epochs", 0, 1000, o->q.max_epochs)
        INT_KNOB("init_max_iter", 1, 1000, o->q.init_max_iter)
        INT_KNOB("init_max_points_per_centroid", 0, 1 << 20, o->q.init_max_points)
        INT_KNOB("cg_iters", 1, 1000, o->q.cg_iters)
        INT_KNOB("finetune_max_epochs", 0, 100, o->finetune_max_epochs)
        INT_KNOB("finetune_batch_size", 1, 1024, o->finetune_batch_size)
#undef INT_KNOB
        if (!strcmp(key, "in_group_size") && is_int && iv >= 1 && iv <= AQLM_MAX_GROUP) {
            o->q.in_group = (int)iv;
            has_gi = true;
        } else if (!strcmp(key, "relative_mse_tolerance") && json_is_number(v) &&
                   json_number_value(v) >= 0 && json_number_value(v) < 1) {
            o->q.rel_tol = json_number_value(v);
        } else if (!strcmp(key, "finetune_lr") && json_is_number(v) &&
                   json_number_value(v) > 0 && json_number_value(v) < 1) {
            o->finetune_lr = json_number_value(v);
        } else if (!strcmp(key, "finetune") && json_is_boolean(v)) {
            o->finetune = json_is_true(v);
        } else if (!strcmp(key, "true_sequential") && json_is_boolean(v)) {
            o->true_sequential = json_is_true(v);
        } else if (!strcmp(key, "seed") && is_int && iv >= 0) {
            o->q.seed = (uint64_t)iv;
        } else if (!strcmp(key, "modules") && json_is_string(v) &&
                   (!strcmp(json_string_value(v), "all") ||
                    !strcmp(json_string_value(v), "attention") ||
                    !strcmp(json_string_value(v), "mlp"))) {
            const char *s = json_string_value(v);
            o->modules = !strcmp(s, "all") ? AQLM_MOD_ALL
                         : !strcmp(s, "attention") ? AQLM_MOD_ATTENTION : AQLM_MOD_MLP;
        } else {
            ret = err("recipe '%s': aqlm knob '%s' (aqlm knows num_codebooks 1..16, "
                      "nbits_per_codebook 1..16, in_group_size 1..64, out_group_size 1..64, "
                      "beam_size 1..64, max_epochs 0..1000, init_max_iter 1..1000, "
                      "init_max_points_per_centroid 0..2^20, cg_iters 1..1000, "
                      "relative_mse_tolerance [0, 1), finetune: bool, finetune_max_epochs 0..100, "
                      "finetune_lr (0, 1), finetune_batch_size 1..1024, "
                      "true_sequential: bool, modules: all|attention|mlp, seed >= 0)", r->id, key);
            break;
        }
    }
    json_decref(kn);
    if (ret) return -1;
    /* group_size is the in_group_size when given */
    if (r->has_group_size && r->group_size != -1) {
        if (has_gi && r->group_size != o->q.in_group)
            return err("recipe '%s': group_size %d differs from the in_group_size knob %d", r->id,
                       r->group_size, o->q.in_group);
        if (r->group_size > AQLM_MAX_GROUP)
            return err("recipe '%s': group_size %d (aqlm's in_group_size is 1..%d)", r->id,
                       r->group_size, AQLM_MAX_GROUP);
        o->q.in_group = r->group_size;
    }
    if ((int64_t)o->q.num_codebooks * ((int64_t)1 << o->q.nbits) * o->q.in_group *
            o->q.out_group > ((int64_t)1 << 28))
        return err("recipe '%s': %d codebooks of 2^%d vectors of %dx%d values are too large",
                   r->id, o->q.num_codebooks, o->q.nbits, o->q.out_group, o->q.in_group);
    const double code_bits = (double)o->q.num_codebooks * o->q.nbits /
                             ((double)o->q.in_group * o->q.out_group);
    if (!isnan(r->bits) && fabs(r->bits - code_bits) > 1e-9)
        return err("recipe '%s': bits %g does not match the scheme: %dx%d over %dx%d groups codes "
                   "%g bits per weight", r->id, r->bits, o->q.num_codebooks, o->q.nbits,
                   o->q.out_group, o->q.in_group, code_bits);
    return 0;
}

int aqlm_recipe_check(const struct recipe *r) {
    if (strcmp(r->weight_dtype, "aqlm"))
        return err("recipe '%s': algorithm aqlm writes weight_dtype aqlm, not '%s' (the scheme is "
                   "in the knobs: num_codebooks, nbits_per_codebook, in_group_size)", r->id,
                   r->weight_dtype);
    if (r->sym != -1)
        return err("recipe '%s': algorithm aqlm has no symmetry setting (sym must be empty)",
                   r->id);
    if (r->double_quant == 1)
        return err("recipe '%s': algorithm aqlm has no double quantization", r->id);
    if (!strcmp(r->compute_dtype, "int8"))
        return err("recipe '%s': compute_dtype int8 is not available for aqlm weights (fp32, fp16 "
                   "or bf16 activations)", r->id);
    if (r->has_group_size && r->group_size == -1)
        return err("recipe '%s': aqlm has no per-channel mode (group_size is in_group_size)",
                   r->id);
    if (!r->calib_set[0])
        return err("recipe '%s': algorithm aqlm needs calib_set (a file of "
                   "$LOWBIT_DATA/datasets/calibration/, e.g. groups_merged, or a path)", r->id);
    struct aqlm_model_opts o;
    return aqlm_knobs(r, &o);
}

int aqlm_recipe_quantize(const struct quant_job *j, struct quant_artifact *a) {
    const struct recipe *r = j->r;
    struct aqlm_model_opts o;
    if (aqlm_recipe_check(r) || aqlm_knobs(r, &o)) return -1;
    struct calib_set cs;
    if (calib_load_job(&cs, "aqlm", j, o.q.seed)) return -1;
    o.resume_dir = j->resume_dir;
    snprintf(a->path, sizeof a->path, "%s/model", j->out_dir);
    struct hfx_stats st;
    struct aqlm_report rep;
    int ret = aqlm_quantize_model(j->m, j->src_path, &o, &cs, a->path, j->quiet, &st, &rep);
    if (!ret) {
        static const char *const mods[] = {"all", "attention", "mlp"};
        hf_recipe_artifact(j, a, "aqlm", &st);
        quant_prov(a, "quant.aqlm", "%dx%d, in_group %d, out_group %d (codes %g bits/weight), "
                   "beam %d, max_epochs %d, init_max_iter %d, cg_iters %d, tolerance %g, "
                   "finetune %s (%d epochs, lr %g, batch %d), true_sequential %s, modules %s",
                   o.q.num_codebooks, o.q.nbits, o.q.in_group, o.q.out_group,
                   (double)o.q.num_codebooks * o.q.nbits / (o.q.in_group * o.q.out_group),
                   o.q.beam_size, o.q.max_epochs, o.q.init_max_iter, o.q.cg_iters, o.q.rel_tol,
                   o.finetune ? "true" : "false", o.finetune_max_epochs, o.finetune_lr,
                   o.finetune_batch_size,
                   o.true_sequential ? "true" : "false", mods[o.modules]);
        quant_prov(a, "quant.knobs", "%s", r->knobs[0] ? r->knobs : "{}");
        quant_prov(a, "quant.calib_file", "%s (sha256 %s)", cs.path, cs.file_sha256);
        quant_prov(a, "quant.calib_windows", "%d x %d tokens, seed %llu, %s, splitmix64 offsets; "
                   "tokens sha256 %s", cs.n_samples, cs.seqlen, (unsigned long long)o.q.seed,
                   cs.bos ? "BOS + text" : "text only (no BOS)", cs.tokens_sha256);
        quant_prov(a, "quant.aqlm_seconds", "%.3f (forward %.3f, %d window passes)", rep.seconds,
                   rep.forward_seconds, rep.n_forward);
        quant_prov(a, "quant.aqlm_peak_rss_mb", "%.1f", calib_peak_rss_mb());
        quant_prov(a, "quant.aqlm_epochs", "%d over %d linears", rep.epochs, rep.n_layers);
        if (rep.resumed_blocks)
            quant_prov(a, "quant.aqlm_resumed_blocks", "%d (from %s)", rep.resumed_blocks,
                       j->resume_dir);
        if (rep.ft_blocks)
            quant_prov(a, "quant.aqlm_rel_mse", "mean %.4g, max %.4g (%s) before fine-tuning; "
                       "fine-tuning (%.2f s) lowered the block output MSE by %.1f%% on average",
                       rep.rel_mse_mean, rep.rel_mse_max, rep.rel_mse_max_module, rep.ft_seconds,
                       100 * rep.ft_gain / rep.ft_blocks);
        else
            quant_prov(a, "quant.aqlm_rel_mse", "mean %.4g, max %.4g (%s)", rep.rel_mse_mean,
                       rep.rel_mse_max, rep.rel_mse_max_module);
        quant_prov(a, "quant.aqlm_deviations", "codebooks by conjugate gradients + closed-form "
                   "scales instead of Adam steps%s", rep.ft_blocks ? "; block fine-tuning once "
                   "per block, norms not tuned, best epoch judged on the calibration windows" : "");
    }
    calib_release(&cs);
    return ret;
}
