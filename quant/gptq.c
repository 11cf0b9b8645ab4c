/* quant/gptq.c: GPTQ, one layer and the true-sequential model pass (algorithm, sources, what we
 * changed and the tolerance we promise: quant/gptq.h). */
#include "quant/gptq.h"

#include <jansson.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "eval/forward.h"
#include "kernels/base/sha256.h"
#include "kernels/dmm.h"
#include "kernels/gram.h"
#include "quant/calib.h"
#include "quant/qformat.h"
#include "quant/quant.h"
#include "quant/resume.h"

/* ===== the Hessian ===== */

int gptq_hessian_init(struct gptq_hessian *h, int64_t K) {
    memset(h, 0, sizeof *h);
    h->K = K;
    h->sum = xcalloc((size_t)(K * K), sizeof *h->sum, "a GPTQ Hessian");
    return h->sum ? 0 : -1;
}

void gptq_hessian_reset(struct gptq_hessian *h) {
    memset(h->sum, 0, (size_t)(h->K * h->K) * sizeof *h->sum);
    h->n_samples = 0;
    h->n_tokens = 0;
}

void gptq_hessian_release(struct gptq_hessian *h) {
    free(h->sum);
    memset(h, 0, sizeof *h);
}

int gptq_hessian_add(struct gptq_hessian *h, const float *x, int T) {
    /* the upper triangle: Σ_t x_ti·x_tj for j >= i (mirrored in _get), kernels/gram.h */
    if (gram_acc(h->sum, x, T, h->K)) return -1;
    h->n_samples++;
    h->n_tokens += T;
    return 0;
}

int gptq_hessian_get(const struct gptq_hessian *h, double *out) {
    if (h->n_samples < 1) return err("GPTQ: no calibration input reached this layer");
    const int64_t K = h->K;
    const double s = 2.0 / (double)h->n_samples;
    for (int64_t i = 0; i < K; i++)
        for (int64_t j = i; j < K; j++) out[i * K + j] = out[j * K + i] = s * h->sum[i * K + j];
    return 0;
}

/* rows solved together (gptq_quantize_layer): U's rows are read once per tile */
#define GPTQ_ROW_TILE 64

/* ===== dense linear algebra (double, row-major [K][K]) ===== */

/* rows i0 .. i0+ni−1 (ni <= CHOL_RB) of the trailing update of chol_lower: a_ij −= Σ_k a_ik·a_jk
 * over the panel's columns k0 .. k0+nb−1, for j in [j0, i]; pt [nb][ld] is the panel transposed
 * (pt[k][j − j0] = a[j][k0 + k]). Each element's sum starts from 0 and runs in the order of k
 * (dmm_acc: multiply, then add), then is subtracted: the same bits on every ISA. */
#define CHOL_RB 64
#define CHOL_JC 256
static void chol_rows(double *a, int64_t K, int64_t i0, int ni, int64_t k0, int64_t nb,
                      int64_t j0, const double *pt, int64_t ld) {
    double s[CHOL_RB * CHOL_JC];
    const int64_t jend = i0 + ni; /* j < jend */
    for (int64_t jc = j0; jc < jend; jc += CHOL_JC) {
        const int64_t jl = LB_MIN(CHOL_JC, jend - jc);
        for (int r = 0; r < ni; r++) memset(s + r * CHOL_JC, 0, (size_t)jl * sizeof(double));
        dmm_acc(ni, jl, nb, a + i0 * K + k0, K, pt + (jc - j0), ld, s, CHOL_JC, false);
        for (int r = 0; r < ni; r++) {
            double *ai = a + (i0 + r) * K + jc;
            const double *sr = s + r * CHOL_JC;
            const int64_t n = LB_MIN(jl, i0 + r + 1 - jc); /* j <= i */
            for (int64_t j = 0; j < n; j++) ai[j] -= sr[j];
        }
    }
}

/* lower Cholesky factor of a in place (a = L·Lᵀ; the upper triangle is zeroed); -1 at the first
 * non-positive pivot, or out of memory (with a message). Blocked (right-looking, panels of
 * CHOL_NB columns): the bulk is the trailing update (chol_rows), four rows at a time, parallel
 * over the rows; each element is computed by one thread in a fixed order, so the factor has the
 * same bits for any thread count and on every ISA. */
#define CHOL_NB 64
static int chol_lower(double *a, int64_t K) {
    double *pt = xmalloc((size_t)CHOL_NB * (size_t)K * sizeof *pt, "a Cholesky panel");
    if (!pt) return -1;
    for (int64_t k0 = 0; k0 < K; k0 += CHOL_NB) {
        const int64_t k1 = LB_MIN(k0 + CHOL_NB, K), nb = k1 - k0;
        /* the diagonal block (its earlier panels already subtracted) */
        for (int64_t j = k0; j < k1; j++) {
            double s = a[j * K + j];
            for (int64_t k = k0; k < j; k++) s -= a[j * K + k] * a[j * K + k];
            if (!(s > 0)) {
                free(pt);
                return -1;
            }
            const double d = sqrt(s);
            a[j * K + j] = d;
            for (int64_t i = j + 1; i < k1; i++) {
                double v = a[i * K + j];
                for (int64_t k = k0; k < j; k++) v -= a[i * K + k] * a[j * K + k];
                a[i * K + j] = v / d;
            }
        }
        if (k1 == K) break;
        /* the panel below it: rows i >= k1 solved against the diagonal block, then transposed */
        const int64_t ld = K - k1;
#pragma omp parallel for schedule(static) if ((K - k1) * CHOL_NB >= (1 << 14))
        for (int64_t i = k1; i < K; i++) {
            for (int64_t j = k0; j < k1; j++) {
                double v = a[i * K + j];
                for (int64_t k = k0; k < j; k++) v -= a[i * K + k] * a[j * K + k];
                a[i * K + j] = v / a[j * K + j];
            }
            for (int64_t k = 0; k < nb; k++) pt[k * ld + (i - k1)] = a[i * K + k0 + k];
        }
        /* the trailing lower triangle */
#pragma omp parallel for schedule(dynamic, 1) if ((K - k1) * (K - k1) >= (1 << 14))
        for (int64_t i0 = k1; i0 < K; i0 += CHOL_RB)
            chol_rows(a, K, i0, (int)LB_MIN(CHOL_RB, K - i0), k0, nb, k1, pt, ld);
    }
    for (int64_t i = 0; i < K; i++)
        for (int64_t j = i + 1; j < K; j++) a[i * K + j] = 0;
    free(pt);
    return 0;
}

/* columns c0 .. c1−1 (at most CHOL_NB) of x = L⁻¹, rows in blocks of TRI_RB: each element is
 * t = [i == c], then t −= L_ik·x_kc for k = c0 .. i−1 in order (the earlier blocks through dmm_acc,
 * then within the block), then x_ic = t / L_ii: the same bits whatever TRI_RB and the ISA */
#define TRI_RB 64
static void tri_strip(const double *l, double *x, int64_t K, int64_t c0, int64_t c1) {
    const int64_t w = c1 - c0;
    double t[TRI_RB][CHOL_NB];
    for (int64_t i = 0; i < c0; i++) memset(x + i * K + c0, 0, (size_t)w * sizeof *x);
    for (int64_t i0 = c0; i0 < K; i0 += TRI_RB) {
        const int64_t ni = LB_MIN(TRI_RB, K - i0);
        for (int64_t r = 0; r < ni; r++)
            for (int64_t c = 0; c < w; c++) t[r][c] = c0 + c == i0 + r ? 1.0 : 0.0;
        dmm_acc(ni, w, i0 - c0, l + i0 * K + c0, K, x + c0 * K + c0, K, &t[0][0], CHOL_NB, true);
        for (int64_t r = 0; r < ni; r++) {
            const int64_t i = i0 + r;
            for (int64_t q = 0; q < r; q++) {
                const double lik = l[i * K + i0 + q];
                const double *xk = x + (i0 + q) * K + c0;
                for (int64_t c = 0; c < w; c++) t[r][c] -= lik * xk[c];
            }
            const double inv = 1.0 / l[i * K + i];
            double *xi = x + i * K + c0;
            for (int64_t c = 0; c < w; c++) xi[c] = c0 + c <= i ? t[r][c] * inv : 0.0;
        }
    }
}

/* x = L⁻¹ (lower; x's upper triangle zeroed) for the lower factor in l. Columns are independent
 * (x_ic depends only on column c of earlier rows): strips of CHOL_NB columns in parallel. */
static void tri_inverse_lower(const double *l, double *x, int64_t K) {
    const int64_t n_strips = (K + CHOL_NB - 1) / CHOL_NB;
#pragma omp parallel for schedule(dynamic, 1) if (K >= 256)
    for (int64_t sidx = 0; sidx < n_strips; sidx++)
        tri_strip(l, x, K, sidx * CHOL_NB, LB_MIN(sidx * CHOL_NB + CHOL_NB, K));
}

/* U, the upper Cholesky factor of H⁻¹ (H⁻¹ = Uᵀ·U), into u; h is destroyed. With P the reversal
 * permutation: if P·H·P = L·Lᵀ then H⁻¹ = (P·L⁻¹·P)ᵀ·(P·L⁻¹·P) and P·L⁻¹·P is upper triangular
 * with a positive diagonal, so it is U (the Cholesky factor is unique): one Cholesky and one
 * triangular inverse (⅔K³ flops), where AutoGPTQ's cholesky, cholesky_inverse, cholesky(upper)
 * take about 4/3·K³; the same U up to rounding. -1 when H is not positive definite. */
static int chol_inverse_upper(double *h, double *u, int64_t K) {
#pragma omp parallel for schedule(static) if (K >= 256)
    for (int64_t i = 0; i < K; i++)
        for (int64_t j = 0; j < K; j++) u[i * K + j] = h[(K - 1 - i) * K + (K - 1 - j)];
    if (chol_lower(u, K)) return -1;
    tri_inverse_lower(u, h, K);
#pragma omp parallel for schedule(static) if (K >= 256)
    for (int64_t i = 0; i < K; i++)
        for (int64_t j = 0; j < K; j++) u[i * K + j] = h[(K - 1 - i) * K + (K - 1 - j)];
    return 0;
}

/* ===== one layer ===== */

/* Quantizer.find_params on one row's group x[0..n): the fp16-rounded scale and the clamped zero
 * (gptq.h); -1 when the scale is beyond fp16 */
static int find_params(const double *x, int64_t n, const struct gptq_opts *o, double *scale,
                       double *zero) {
    const double maxq = (double)((1 << o->bits) - 1);
    double xmin = 0, xmax = 0;
    for (int64_t i = 0; i < n; i++) {
        xmin = fmin(xmin, x[i]);
        xmax = fmax(xmax, x[i]);
    }
    if (o->sym) {
        xmax = fmax(fabs(xmin), xmax);
        if (xmin < 0) xmin = -xmax;
    }
    if (xmin == 0 && xmax == 0) xmin = -1, xmax = 1;
    const double s = (xmax - xmin) / maxq;
    double z = o->sym ? (maxq + 1) / 2 : rint(-xmin / s);
    const float s32 = (float)s;
    if (!(fabsf(s32) <= 65504.0f)) return -1;
    float s16 = lb_fp16_to_f32(lb_f32_to_fp16(s32));
    if (s16 == 0) s16 = 0x1p-24f; /* the smallest fp16 subnormal */
    *scale = s16;
    *zero = fmin(fmax(z, (double)o->zero_min), maxq);
    return 0;
}

/* columns by diag descending, lower index first on ties (qsort has no context argument in C11:
 * the diagonal is passed through this file-scope pointer; layers are solved one at a time) */
static const double *sort_diag;
static int cmp_diag_desc(const void *a, const void *b) {
    const int32_t i = *(const int32_t *)a, j = *(const int32_t *)b;
    const double di = sort_diag[i], dj = sort_diag[j];
    if (di != dj) return di > dj ? -1 : 1;
    return (i > j) - (i < j);
}

/* what the tiles of one solve share (gptq_quantize_prepared) */
struct solve_ctx {
    const float *w;
    int64_t K;
    const struct gptq_opts *o;
    const double *u;
    const int32_t *perm;
    const bool *dead;
    struct tensor *t;
    struct qint_param *par;
    int64_t g, ng;
    bool params_first, has_perm;
    int bs;
    double maxq;
    size_t row_floats; /* a row's scratch in tile: 2K + 2bs doubles */
};

/* rows n0 .. n0+nr−1 (6./7.): codes and parameters into c->t, each row's loss into rl, bad[r]
 * when row r needs a scale beyond fp16. The loops vectorize (LB_CLONES); the lazy batch update,
 * acc = Σ_i e1[i]·U[i1+i, i2:] in the order of i, reads each row of U once for the tile. */
LB_CLONES static void solve_tile(const struct solve_ctx *c, int64_t n0, int nr, double *tile,
                                 double *rl, bool *bad) {
    const int64_t K = c->K, g = c->g, ng = c->ng;
    const int bs = c->bs;
    const double *u = c->u, maxq = c->maxq;
    const struct gptq_opts *o = c->o;
    double scale[GPTQ_ROW_TILE], zero[GPTQ_ROW_TILE];
    /* row r's W row wc [K], its update acc [K], the block's working copy w1 [bs], errors e1 [bs] */
#define WC(r) (tile + (size_t)(r) * c->row_floats)
#define ACC(r) (WC(r) + K)
#define W1(r) (WC(r) + 2 * K)
#define E1(r) (WC(r) + 2 * K + bs)
    for (int r = 0; r < nr; r++) {
        const int64_t n = n0 + r;
        const float *wr = c->w + (size_t)(n * K);
        double *wc = WC(r);
        scale[r] = zero[r] = rl[r] = 0;
        bad[r] = false;
        if (c->params_first) { /* 2. from the original row */
            for (int64_t k = 0; k < K; k++) wc[k] = wr[k];
            if (find_params(wc, K, o, &scale[r], &zero[r])) {
                bad[r] = true;
                continue;
            }
            c->par[n * ng] = (struct qint_param){(float)scale[r], (float)zero[r]};
        }
        for (int64_t j = 0; j < K; j++)
            wc[j] = c->dead[c->perm[j]] ? 0.0 : (double)wr[c->perm[j]];
    }
    for (int64_t i1 = 0; i1 < K; i1 += bs) {
        const int64_t i2 = LB_MIN(i1 + bs, K), cnt = i2 - i1;
        int live = 0;
        for (int r = 0; r < nr; r++) {
            if (bad[r]) continue;
            const int64_t n = n0 + r;
            uint8_t *row = (uint8_t *)c->t->data + (size_t)n * tensor_row_bytes(c->t);
            struct qint_param *pr = c->par + n * ng;
            double *wc = WC(r), *w1 = W1(r), *e1 = E1(r);
            memcpy(w1, wc + i1, (size_t)cnt * sizeof *w1);
            for (int64_t i = 0; i < cnt; i++) {
                const int64_t col = i1 + i;
                if (!c->params_first && col % g == 0) { /* from W as of the block's start */
                    if (find_params(wc + col, LB_MIN(g, K - col), o, &scale[r], &zero[r])) {
                        bad[r] = true;
                        break;
                    }
                    pr[col / g] = (struct qint_param){(float)scale[r], (float)zero[r]};
                }
                const double x = w1[i], sc = scale[r], z = zero[r];
                const double q = fmin(fmax(rint(x / sc) + z, 0.0), maxq);
                const double dq = sc * (q - z), d = u[col * K + col];
                qint_code_set(row, o->bits, c->has_perm ? col : c->perm[col], (unsigned)q);
                const double e = (x - dq) / d;
                rl[r] += (x - dq) * (x - dq) / (d * d);
                const double *ur = u + col * K + i1;
#pragma omp simd
                for (int64_t j = i; j < cnt; j++) w1[j] -= e * ur[j];
                e1[i] = e;
            }
            live += !bad[r];
        }
        if (!live || i2 == K) continue;
        /* acc = E1·U[i1:i2, i2:] (a bad row's result is computed and unused) */
        for (int r = 0; r < nr; r++) memset(ACC(r) + i2, 0, (size_t)(K - i2) * sizeof(double));
        dmm_acc(nr, K - i2, cnt, E1(0), (int64_t)c->row_floats, u + i1 * K + i2, K, ACC(0) + i2,
                (int64_t)c->row_floats, false);
        for (int r = 0; r < nr; r++) {
            if (bad[r]) continue;
            double *wc = WC(r);
            const double *acc = ACC(r);
#pragma omp simd
            for (int64_t j = i2; j < K; j++) wc[j] -= acc[j];
        }
    }
#undef WC
#undef ACC
#undef W1
#undef E1
}

void gptq_prep_release(struct gptq_prep *p) {
    free(p->u);
    free(p->perm);
    free(p->dead);
    memset(p, 0, sizeof *p);
}

int gptq_prepare(const double *H, int64_t K, const struct gptq_opts *o, const char *name,
                 struct gptq_prep *p) {
    memset(p, 0, sizeof *p);
    if (!(o->damp_percent > 0 && o->damp_percent <= 1))
        return err("%s: GPTQ damp_percent %g (expected in (0, 1])", name, o->damp_percent);
    p->K = K;
    p->desc_act = o->desc_act;
    p->damp_percent = o->damp_percent;
    const size_t KK = (size_t)(K * K);
    double *hp = xmalloc(KK * sizeof *hp, name), *diag = xmalloc((size_t)K * sizeof *diag, name);
    p->u = xmalloc(KK * sizeof *p->u, name);
    p->perm = xmalloc((size_t)K * sizeof *p->perm, name);
    p->dead = xcalloc((size_t)K, sizeof *p->dead, name);
    int ret = -1;
    if (!hp || !diag || !p->u || !p->perm || !p->dead) goto out;
    /* 3. dead columns, 4. act-order, 5. dampening and U */
    for (int64_t k = 0; k < K; k++) {
        if (H[k * K + k] == 0) {
            p->dead[k] = true;
            p->n_dead++;
        }
        diag[k] = p->dead[k] ? 1 : H[k * K + k];
        p->perm[k] = (int32_t)k;
    }
    if (o->desc_act) {
        sort_diag = diag;
        qsort(p->perm, (size_t)K, sizeof *p->perm, cmp_diag_desc);
    }
    double mean = 0;
    for (int64_t i = 0; i < K; i++) { /* H permuted, a dead column's diagonal 1 */
        const double *hr = H + (int64_t)p->perm[i] * K;
        for (int64_t j = 0; j < K; j++) hp[i * K + j] = hr[p->perm[j]];
        if (p->dead[p->perm[i]]) hp[i * K + i] = 1;
        mean += hp[i * K + i];
    }
    p->damp = o->damp_percent * (mean / (double)K);
    for (int64_t i = 0; i < K; i++) hp[i * K + i] += p->damp;
    if (chol_inverse_upper(hp, p->u, K)) {
        err("%s: the Hessian is not positive definite after dampening %g (damp_percent %g); "
            "raise damp_percent or use more calibration samples", name, p->damp, o->damp_percent);
        goto out;
    }
    ret = 0;
out:
    free(hp);
    free(diag);
    if (ret) gptq_prep_release(p);
    return ret;
}

int gptq_quantize_layer(const float *w, int64_t K, int64_t N, const double *H,
                        const struct gptq_opts *o, const char *name, struct tensor *t, void **buf,
                        struct gptq_layer_stats *st) {
    struct gptq_prep p;
    *buf = NULL;
    memset(st, 0, sizeof *st);
    if (gptq_prepare(H, K, o, name, &p)) return -1;
    const int ret = gptq_quantize_prepared(w, N, &p, o, name, t, buf, st);
    gptq_prep_release(&p);
    return ret;
}

int gptq_quantize_prepared(const float *w, int64_t N, const struct gptq_prep *p,
                           const struct gptq_opts *o, const char *name, struct tensor *t,
                           void **buf, struct gptq_layer_stats *st) {
    *buf = NULL;
    memset(st, 0, sizeof *st);
    const int64_t K = p->K;
    if (o->bits != 2 && o->bits != 3 && o->bits != 4 && o->bits != 8)
        return err("%s: GPTQ quantizes to 2, 3, 4 or 8 bits, not %d", name, o->bits);
    if (o->blocksize < 1 || !(o->damp_percent > 0 && o->damp_percent <= 1))
        return err("%s: GPTQ blocksize %d / damp_percent %g (expected >= 1 / in (0, 1])", name,
                   o->blocksize, o->damp_percent);
    if (p->desc_act != o->desc_act || p->damp_percent != o->damp_percent)
        return err("%s: GPTQ solved with desc_act %d damp_percent %g, prepared with %d %g", name,
                   o->desc_act, o->damp_percent, p->desc_act, p->damp_percent);
    st->n_dead = p->n_dead;
    st->damp = p->damp;
    const double *u = p->u;
    const int32_t *perm = p->perm;
    const bool *dead = p->dead;
    /* per_row: one group holds the row (stored without q_perm); params_first: -1 = AutoGPTQ's
     * per-channel mode, params from the original W; a group >= K takes the group path (params at
     * column 0 from the dead-zeroed W), as AutoGPTQ does */
    const bool per_row = o->group <= 0 || o->group >= K, params_first = o->group <= 0;
    const int64_t g = per_row ? K : o->group, ng = qint_n_groups(g, K);
    const bool has_perm = o->desc_act && !per_row;
    const int bs = o->blocksize;
    if (qint_tensor_init(t, name, K, N, o->bits, g, has_perm)) return -1;

    int ret = -1, nth = 1;
#ifdef _OPENMP
    nth = omp_get_max_threads();
#endif
    double *row_loss = NULL;
    double *scratch = xcalloc((size_t)nth * GPTQ_ROW_TILE * (size_t)(2 * K + 2 * bs),
                              sizeof *scratch, name);
    void *b = xcalloc(1, qint_tensor_bytes(K, N, o->bits, g, has_perm), name);
    if (!scratch || !b) goto out;
    qint_tensor_attach(t, b, has_perm);

    /* 6./7. the columns, row by row (rows are independent). Rows go in tiles of GPTQ_ROW_TILE so
     * that the lazy batch update reads each row of U once per tile, not once per row (the solve
     * is otherwise bound by reading U); each row's arithmetic is the same in any tile. */
    struct qint_param *par = qint_params(t);
    const double maxq = (double)((1 << o->bits) - 1);
    long bad_row = -1;
    /* each row's loss, summed in row order below: the same total for any thread count */
    if (!(row_loss = xcalloc((size_t)N, sizeof *row_loss, name))) goto out;
    const struct solve_ctx sc = {.w = w, .K = K, .o = o, .u = u, .perm = perm, .dead = dead,
                                 .t = t, .par = par, .g = g, .ng = ng, .params_first = params_first,
                                 .has_perm = has_perm, .bs = bs, .maxq = maxq,
                                 .row_floats = (size_t)(2 * K + 2 * bs)};
#pragma omp parallel
    {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        double *tile = scratch + (size_t)tid * GPTQ_ROW_TILE * sc.row_floats;
#pragma omp for schedule(dynamic, 1)
        for (int64_t n0 = 0; n0 < N; n0 += GPTQ_ROW_TILE) {
            const int nr = (int)LB_MIN(GPTQ_ROW_TILE, N - n0);
            double rl[GPTQ_ROW_TILE];
            bool bad[GPTQ_ROW_TILE];
            solve_tile(&sc, n0, nr, tile, rl, bad);
            for (int r = 0; r < nr; r++) {
                row_loss[n0 + r] = rl[r];
                if (bad[r]) {
#pragma omp critical
                    if (bad_row < 0 || n0 + r < bad_row) bad_row = (long)(n0 + r);
                }
            }
        }
    }
    double loss = 0;
    for (int64_t n = 0; n < N; n++) loss += row_loss[n];
    if (bad_row >= 0) {
        err("%s: row %ld needs a scale beyond fp16 (weights must be finite and below 1e6)", name,
            bad_row);
        goto out;
    }
    st->loss = loss / 2;
    if (has_perm) memcpy(qint_perm_mut(t), perm, (size_t)K * sizeof *perm);
    *buf = b;
    b = NULL;
    ret = 0;
out:
    free(row_loss);
    free(scratch);
    free(b);
    return ret;
}

/* ===== the model, true-sequentially ===== */

/* a block's linears are eval/model.h's enum lin; their four inputs (lin_info[].stage, FWD_QKV ..
 * FWD_DOWN) are AutoGPTQ's true_sequential sub-groups, in its order */
#define SUB_COUNT LIN_N_INPUTS

/* the hook's state: which weights' inputs go into which Hessian */
struct capture {
    double seconds; /* in gptq_hessian_add */
    const struct tensor *anchor[SUB_COUNT]; /* the weight whose input is sub-group s's input */
    struct gptq_hessian *h[SUB_COUNT];      /* NULL: not collected in this pass */
    /* MoE (fs.hook_experts): expert linears (gate for gate and up, down) and their Hessians */
    int n_x;
    const struct tensor **x_anchor;
    struct gptq_hessian *x_h;
};

static int capture_hook(void *ctx, const struct tensor *w, const float *x, int T) {
    struct capture *c = ctx;
    for (int i = 0; i < c->n_x; i++)
        if (w == c->x_anchor[i]) {
            const double t0 = now_s();
            if (gptq_hessian_add(&c->x_h[i], x, T)) return -1;
            c->seconds += now_s() - t0;
            return 0;
        }
    for (int s = 0; s < SUB_COUNT; s++)
        if (c->h[s] && w == c->anchor[s]) {
            if (w->ne[0] != c->h[s]->K) return err("GPTQ: %s has %lld inputs, the Hessian %lld",
                                                   w->name, (long long)w->ne[0],
                                                   (long long)c->h[s]->K);
            const double t0 = now_s();
            if (gptq_hessian_add(c->h[s], x, T)) return -1;
            c->seconds += now_s() - t0;
        }
    return 0;
}

/* one GPTQ run over a model (gptq_quantize_model's state, shared by its steps) */
struct gq_run {
    const struct model *m;
    const struct gptq_model_opts *o;
    const struct calib_set *cs;
    bool quiet;
    struct hfx_model hm;
    struct model fm; /* the forward's view: m's tensors, with quantized layers swapped in */
    struct calib_stream cst;
    bool cst_ok;
    struct gptq_hessian hs[SUB_COUNT];
    struct gptq_prep prep;
    struct capture cap;
    int *idx; /* [n_layers][LIN_COUNT]: the export tensor of each block linear, -1 kept in float */
    /* MoE: units u < E are the routed experts, u = E the shared expert (qwen2moe); each has its
     * gate, up, down (k = 0, 1, 2); xidx [n_layers][n_units·3] their export tensors (-1: float).
     * ex: block l's expert slots as the forward sees them (fm.layers[l].ex points here). */
    int n_units, *xidx;
    struct tensor *ex;
    const struct tensor **x_anchor;
    struct gptq_hessian *x_h;
    struct gptq_report *rep;
    struct qresume rs; /* the checkpoint after each block (quant/resume.h) */
    double fwd_base;   /* block-pass seconds of the resumed blocks */
};

/* the export tensor of each block linear, and its plan */
static int gq_plan(struct gq_run *g) {
    const int n_layers = g->m->cfg.n_layers;
    for (int l = 0; l < n_layers; l++)
        for (int i = 0; i < LIN_COUNT + 3 * g->n_units; i++) {
            char name[96];
            const int u = (i - LIN_COUNT) / 3, k = (i - LIN_COUNT) % 3;
            static const char *const kind[3] = {"gate", "up", "down"};
            if (g->n_units && i >= LIN_GATE && i < LIN_COUNT) { /* the MoE block's MLP slots */
                g->idx[l * LIN_COUNT + i] = -1;
                continue;
            }
            if (i < LIN_COUNT) lin_name(name, sizeof name, l, (enum lin)i);
            else if (u < g->m->cfg.n_expert)
                snprintf(name, sizeof name, "blk.%d.ffn_%s_exps.%d.weight", l, kind[k], u);
            else snprintf(name, sizeof name, "blk.%d.ffn_%s_shexp.weight", l, kind[k]);
            int *x = i < LIN_COUNT ? &g->idx[l * LIN_COUNT + i]
                                   : &g->xidx[(l * g->n_units + u) * 3 + k];
            *x = hfx_find(&g->hm, name);
            if (*x < 0 || !g->hm.t[*x].linear)
                return err("GPTQ: %s has no tensor %s", g->m->path, name);
            struct hfx_tensor *t = &g->hm.t[*x];
            const enum qplan plan = qformat_plan(false, t->K, t->N, g->o->q.bits, g->o->q.group,
                                                 t->note, sizeof t->note);
            if (plan != QPLAN_GROUP && !g->quiet)
                fprintf(stderr, "gptq: %s: %s\n", t->module, t->note);
            if (plan == QPLAN_FLOAT) *x = -1;
        }
    return 0;
}

/* the Hessians one MoE unit (a routed expert or the shared one, the larger) holds in a pass
 * collecting kinds `mask` (1: gate/up's input, 2: down's, 3: both) */
static double gq_moe_unit_bytes(const struct model_config *c, int mask) {
    const double D = c->dim, H = LB_MAX(c->expert_hidden, c->shared_hidden);
    return 8.0 * ((mask & 1 ? D * D : 0) + (mask & 2 ? H * H : 0));
}

/* the memory plan, refused before any work: the Hessians (a dense block's four; a MoE block's
 * two of the attention and, per pass over the routed tokens, one unit's: gq_moe holds as many
 * units as half the memory then available holds, at least one), a factorization (two K x K
 * while it is formed), one block's linears in fp32 (every expert's), the calibration stream
 * (unless it spills), the solve's row tiles, the one-block forward state */
static int gq_memory_plan(const struct gq_run *g) {
    const struct model *m = g->m;
    const struct model_config *c = &m->cfg;
    const double D = c->dim, qd = c->n_heads * c->head_dim,
                 Hd = g->n_units ? LB_MAX(c->expert_hidden, c->shared_hidden) : c->hidden_dim;
    const double kmax = LB_MAX(LB_MAX(D, Hd), qd);
    const double moe = g->o->true_sequential
                           ? LB_MAX(gq_moe_unit_bytes(c, 1), gq_moe_unit_bytes(c, 2))
                           : gq_moe_unit_bytes(c, 3),
                 hess = g->n_units ? 8.0 * (D * D + qd * qd) + moe
                                   : 8.0 * (2 * D * D + qd * qd + Hd * Hd);
    double blk = 0;
    for (int l = 0; l < m->cfg.n_layers; l++)
        blk = LB_MAX(blk, (double)hfx_block_bytes(&g->hm, l));
    int nth = 1;
#ifdef _OPENMP
    nth = omp_get_max_threads();
#endif
    const double need = hess + 16.0 * kmax * kmax + blk +
                        (double)calib_stream_bytes(m, g->cs, false) +
                        8.0 * nth * GPTQ_ROW_TILE * (2 * kmax + 2 * g->o->q.blocksize) +
                        4.0 * g->cs->seqlen * (2 * D + 4 * qd + 2 * Hd) +
                        8.0 * m->cfg.n_kv_heads * m->cfg.head_dim * 2.0 * g->cs->seqlen;
    char what[4300];
    const char *hs = g->n_units ? " of the attention and of one expert per pass" : "";
    snprintf(what, sizeof what, "GPTQ on %s (Hessians%s, one block in fp32, %d x %d calibration "
             "tokens)", m->path, hs, g->cs->n_samples, g->cs->seqlen);
    return need > (double)SIZE_MAX / 2 || mem_check((size_t)need, what) ? -1 : 0;
}

/* resume (quant/resume.h): the blocks a killed run finished, re-written from their files, and
 * the stream as it was after the last of them; *l_start: the first block to quantize */
static int gq_resume(struct gq_run *g, const char *src_path, int *l_start) {
    const struct gptq_model_opts *o = g->o;
    const struct calib_set *cs = g->cs;
    const int n_layers = g->m->cfg.n_layers;
    struct gptq_report *rep = g->rep;
    *l_start = 0;
    char *kt = xstrfmt("%d %lld %d %d %.17g %d %d %d|%s|%d x %d", o->q.bits, (long long)o->q.group,
                       o->q.sym, o->q.desc_act, o->q.damp_percent, o->q.blocksize, o->v2,
                       o->true_sequential, cs->tokens_sha256, cs->n_samples, cs->seqlen);
    int l_done = -1;
    json_t *f = NULL;
    if (!kt || qresume_open(&g->rs, o->resume_dir, "gptq", src_path, kt, n_layers, g->quiet,
                            &l_done, &f)) {
        free(kt);
        return -1;
    }
    free(kt);
    if (l_done < 0) return 0;
    rep->loss = json_number_value(json_object_get(f, "loss"));
    rep->forward_seconds = json_number_value(json_object_get(f, "forward_seconds"));
    rep->hessian_seconds = json_number_value(json_object_get(f, "hessian_seconds"));
    rep->solve_seconds = json_number_value(json_object_get(f, "solve_seconds"));
    rep->moe_experts = (int)json_integer_value(json_object_get(f, "moe_experts"));
    rep->moe_fallback = (int)json_integer_value(json_object_get(f, "moe_fallback"));
    rep->moe_min_tokens = json_integer_value(json_object_get(f, "moe_min_tokens"));
    rep->moe_max_tokens = json_integer_value(json_object_get(f, "moe_max_tokens"));
    json_decref(f);
    for (int l = 0; l <= l_done; l++)
        if (qresume_get_block(&g->rs, l, &g->hm) || hfx_emit_block(&g->hm, l)) goto bad;
    if (calib_stream_restore(&g->cst, &g->rs, l_done)) goto bad;
    *l_start = l_done + 1;
    rep->resumed_blocks = *l_start;
    rep->n_forward = (int)g->cst.n_block_passes;
    g->fwd_base = rep->forward_seconds;
    return 0;
bad:
    qresume_remove(&g->rs); /* the next attempt starts anew */
    return -1;
}

/* the checkpoint after block l: its linears, the stream, then the commit */
static int gq_checkpoint(const struct gq_run *g, int l) {
    const struct gptq_report *rep = g->rep;
    if (!g->rs.dir) return 0;
    json_t *f = json_pack("{s:f, s:f, s:f, s:f, s:i, s:i, s:I, s:I}", "loss", rep->loss,
                          "forward_seconds", rep->forward_seconds, "hessian_seconds",
                          rep->hessian_seconds, "solve_seconds", rep->solve_seconds,
                          "moe_experts", rep->moe_experts, "moe_fallback", rep->moe_fallback,
                          "moe_min_tokens", (json_int_t)rep->moe_min_tokens, "moe_max_tokens",
                          (json_int_t)rep->moe_max_tokens);
    const int rc = !f ? err("out of memory")
                      : qresume_put_block(&g->rs, l, &g->hm) || calib_stream_save(&g->cst, &g->rs) ||
                                qresume_commit(&g->rs, l, f)
                            ? -1
                            : 0;
    json_decref(f);
    return rc;
}

/* ===== MoE: each expert with the calibration tokens routed to it =====
 * The router (ffn_gate_inp) and qwen2moe's shared-expert gate stay in float, as GPTQModel keeps
 * them. The block's FWD_OUT runs the router exactly as the forward does (eval/forward.c moe_ffn:
 * the same top-k, the same weight normalisation) and, with fs.hook_experts, shows each expert's
 * gate its routed tokens' post-norm rows and each expert's down that expert's intermediate
 * activations on the same rows: expert e's Hessians are 2/n·Σ xᵀx over exactly those rows. The
 * shared expert sees every token. True-sequentially (GPTQModel's Mixtral order: attention, then
 * every expert's gate and up, then every down): a pass for the gate/up Hessians, the gate and up
 * quantized and swapped in, a pass for the down Hessians; without true_sequential one probe of
 * the float block gives both. An expert that saw fewer than GPTQ_MOE_MIN_SHARE of the calibration
 * tokens (GPTQModel's Fallback default: 0.5%, RTN) is rounded with an identity Hessian: no error
 * feedback, so exactly round-to-nearest with GPTQ's own group scales and zeros. The Hessians of
 * as many experts as half the available memory holds are collected per pass. */
#define GPTQ_MOE_MIN_SHARE CALIB_MOE_MIN_SHARE

/* export tensor and forward slot of unit u's linear k in block l */
static int gq_unit_idx(const struct gq_run *g, int l, int u, int k) {
    return g->xidx[(l * g->n_units + u) * 3 + k];
}
static struct tensor *gq_unit_slot(struct gq_run *g, int l, int u, int k) {
    return u < g->m->cfg.n_expert ? &g->ex[u * 3 + k] : &g->fm.layers[l].shexp[k];
}
static int64_t gq_unit_K(const struct gq_run *g, int u, int k) {
    const struct model_config *c = &g->m->cfg;
    return k < 2 ? c->dim : u < c->n_expert ? c->expert_hidden : c->shared_hidden;
}

/* one pass over units [u0, u1): the Hessians of kinds `mask` (1: gate/up's input, 2: down's),
 * then those linears quantized and swapped in; the stream stands before FWD_OUT
 * (true-sequential) or at the block's start (one float probe) */
/* quantize linear t with the prepared inverse Hessian g->prep: the recipe's group, or per channel
 * where the layout cannot hold it (qformat_plan); the solve's time is counted */
static int gq_solve(struct gq_run *g, struct hfx_tensor *t, struct gptq_layer_stats *ls) {
    struct gptq_opts q = g->o->q;
    if (qformat_plan(false, t->K, t->N, q.bits, q.group, t->note, sizeof t->note) == QPLAN_CHANNEL)
        q.group = -1;
    const double ts = now_s();
    if (gptq_quantize_prepared(t->f32, t->N, &g->prep, &q, t->module, &t->q, &t->qbuf, ls))
        return -1;
    g->rep->solve_seconds += now_s() - ts;
    t->quantized = true;
    return 0;
}

static int gq_moe_pass(struct gq_run *g, int l, int u0, int u1, int mask, double *loss_l) {
    const struct gptq_model_opts *o = g->o;
    struct gptq_report *rep = g->rep;
    struct capture *cap = &g->cap;
    const int64_t total = (int64_t)g->cs->n_samples * g->cs->seqlen;
    int n = 0, ret = -1;
    for (int u = u0; u < u1; u++)
        for (int b = 0; b < 2; b++) {
            const int k = b ? 2 : 0;
            if (!(mask >> b & 1) || (gq_unit_idx(g, l, u, k) < 0 &&
                                     (b || gq_unit_idx(g, l, u, 1) < 0)))
                continue;
            if (gptq_hessian_init(&g->x_h[n], gq_unit_K(g, u, k))) goto out;
            g->x_anchor[n++] = gq_unit_slot(g, l, u, k);
        }
    if (!n) return 0;
    rep->hessian_seconds += cap->seconds;
    memset(cap, 0, sizeof *cap);
    cap->n_x = n, cap->x_anchor = g->x_anchor, cap->x_h = g->x_h;
    g->cst.fs.hook_experts = true;
    const int rc = o->true_sequential ? calib_stream_probe_out(&g->cst, l)
                                      : calib_stream_probe(&g->cst, l, FWD_OUT);
    g->cst.fs.hook_experts = false;
    rep->hessian_seconds += cap->seconds;
    memset(cap, 0, sizeof *cap);
    if (rc) goto out;
    for (int i = 0; i < n; i++) {
        struct gptq_hessian *h = &g->x_h[i];
        int u = -1, k = -1;
        for (int v = u0; v < u1 && u < 0; v++)
            for (int kk = 0; kk < 3; kk += 2)
                if (g->x_anchor[i] == gq_unit_slot(g, l, v, kk)) u = v, k = kk;
        const bool routed = u < g->m->cfg.n_expert;
        const bool few = routed && (double)h->n_tokens < GPTQ_MOE_MIN_SHARE * (double)total;
        if (routed && k == 0) { /* once per expert */
            rep->moe_experts++;
            if (few) rep->moe_fallback++;
            if (rep->moe_experts == 1 || h->n_tokens < rep->moe_min_tokens)
                rep->moe_min_tokens = h->n_tokens;
            rep->moe_max_tokens = LB_MAX(rep->moe_max_tokens, h->n_tokens);
        }
        const double ts = now_s();
        if (few) { /* an identity Hessian: round-to-nearest */
            memset(h->sum, 0, (size_t)(h->K * h->K) * sizeof *h->sum);
            for (int64_t c = 0; c < h->K; c++) h->sum[c * h->K + c] = 1;
        } else if (gptq_hessian_get(h, h->sum)) {
            goto out;
        }
        gptq_prep_release(&g->prep);
        const int first = gq_unit_idx(g, l, u, k) >= 0 ? k : 1;
        if (o->on_moe_hessian &&
            o->on_moe_hessian(o->on_moe_hessian_ctx, g->hm.t[gq_unit_idx(g, l, u, first)].module,
                              h->sum, h->K, h->n_tokens, few))
            goto out;
        if (gptq_prepare(h->sum, h->K, &o->q, g->hm.t[gq_unit_idx(g, l, u, first)].module,
                         &g->prep))
            goto out;
        rep->solve_seconds += now_s() - ts;
        for (int kk = k; kk < (k ? 3 : 2); kk++) {
            const int x = gq_unit_idx(g, l, u, kk);
            if (x < 0) continue;
            struct hfx_tensor *t = &g->hm.t[x];
            struct gptq_layer_stats ls;
            if (gq_solve(g, t, &ls)) goto out;
            if (!few) *loss_l += ls.loss;
            if (few && !g->quiet)
                fprintf(stderr, "gptq: %s: %lld routed tokens (< %.1f%% of %lld): round-to-nearest "
                        "(identity Hessian)\n", t->module, (long long)h->n_tokens,
                        100 * GPTQ_MOE_MIN_SHARE, (long long)total);
            calib_swap_in(g->m, t, false, gq_unit_slot(g, l, u, kk));
        }
        gptq_prep_release(&g->prep);
    }
    ret = 0;
out:
    for (int i = 0; i < n; i++) gptq_hessian_release(&g->x_h[i]);
    return ret;
}

/* every unit of block l's MoE MLP, in passes of as many units as half the available memory
 * holds the Hessians of */
static int gq_moe(struct gq_run *g, int l, int mask, double *loss_l) {
    const double per = gq_moe_unit_bytes(&g->m->cfg, mask), room = (double)mem_available() / 2;
    const int chunk = (int)LB_MAX(1.0, LB_MIN((double)g->n_units, room / per));
    for (int u0 = 0; u0 < g->n_units; u0 += chunk)
        if (gq_moe_pass(g, l, u0, LB_MIN(u0 + chunk, g->n_units), mask, loss_l)) return -1;
    return 0;
}

/* block l: its Hessians (true-sequentially, or in one probe), its linears quantized and swapped
 * in, the quantized block's outputs as block l+1's inputs, the resume state, then the block into
 * the checkpoint */
static int gq_block(struct gq_run *g, int l) {
    const struct gptq_model_opts *o = g->o;
    struct gptq_report *rep = g->rep;
    struct capture *cap = &g->cap;
    const int *idx = g->idx + l * LIN_COUNT;
    const double tl = now_s();
    double loss_l = 0;
    for (int i = 0; i < LIN_COUNT; i++)
        if (idx[i] >= 0 && hfx_load(&g->hm, idx[i])) return -1;
    if (g->n_units) { /* the block's experts: loaded, and slots of the forward's own */
        for (int i = 0; i < 3 * g->n_units; i++)
            if (g->xidx[l * 3 * g->n_units + i] >= 0 &&
                hfx_load(&g->hm, g->xidx[l * 3 * g->n_units + i]))
                return -1;
        memcpy(g->ex, g->m->layers[l].ex, (size_t)(3 * g->m->cfg.n_expert) * sizeof *g->ex);
        g->fm.layers[l].ex = g->ex;
        /* without true_sequential every input is collected in float: the experts first (the
         * attention before them is not changed by it) */
        if (!o->true_sequential && gq_moe(g, l, 3, &loss_l)) return -1;
    }
    /* true_sequential: stage s of the block collects sub-group s's input with the sub-groups
     * before it already quantized; else one probe collects all four in float */
    const int n_pass = o->true_sequential ? SUB_COUNT : 1;
    for (int p = 0; p < n_pass; p++) {
        rep->hessian_seconds += cap->seconds;
        memset(cap, 0, sizeof *cap);
        for (int s = 0; s < SUB_COUNT; s++) {
            if (o->true_sequential && s != p) continue;
            for (int i = 0; i < LIN_COUNT; i++)
                if ((int)lin_info[i].stage == s && idx[i] >= 0) cap->h[s] = &g->hs[s];
            cap->anchor[s] = &g->fm.layers[l].lin[lin_anchor((enum fwd_stage)s)];
            if (cap->h[s]) gptq_hessian_reset(cap->h[s]);
        }
        if (o->true_sequential ? calib_stream_stage(&g->cst, l, (enum fwd_stage)p)
                               : calib_stream_probe(&g->cst, l, FWD_DOWN))
            return -1;
        /* one factorization per input, shared by the sub-group's linears */
        int prep_s = -1;
        for (int i = 0; i < LIN_COUNT; i++) {
            const int s = (int)lin_info[i].stage;
            if (idx[i] < 0 || !cap->h[s]) continue;
            struct hfx_tensor *t = &g->hm.t[idx[i]];
            if (prep_s != s) {
                const double ts = now_s();
                gptq_prep_release(&g->prep);
                /* H = 2/n·Σxᵀx in the accumulator's own buffer (reset before the next) */
                if (gptq_hessian_get(cap->h[s], cap->h[s]->sum) ||
                    gptq_prepare(cap->h[s]->sum, t->K, &o->q, t->module, &g->prep))
                    return -1;
                prep_s = s;
                rep->solve_seconds += now_s() - ts;
            }
            struct gptq_layer_stats ls;
            if (gq_solve(g, t, &ls)) return -1;
            loss_l += ls.loss;
            /* swap in the quantized weights (calib.h), fp32 in source row order */
            calib_swap_in(g->m, t, lin_info[i].rope, &g->fm.layers[l].lin[i]);
            if (!g->quiet && ls.n_dead)
                fprintf(stderr, "gptq: %s: %d dead input columns (zeroed)\n", t->module,
                        ls.n_dead);
        }
        gptq_prep_release(&g->prep);
    }
    /* true-sequential MoE: the stream stands before FWD_OUT; gate and up, then down */
    if (g->n_units && o->true_sequential && (gq_moe(g, l, 1, &loss_l) || gq_moe(g, l, 2, &loss_l)))
        return -1;
    /* the quantized block's outputs: block l+1's inputs */
    rep->hessian_seconds += cap->seconds;
    memset(cap, 0, sizeof *cap);
    if (calib_stream_finish(&g->cst, l)) return -1;
    rep->loss += loss_l;
    rep->forward_seconds = g->fwd_base + g->cst.seconds;
    rep->n_forward = (int)g->cst.n_block_passes;
    /* the progress, for a run after a kill: this block's linears, then the stream */
    if (gq_checkpoint(g, l)) return -1;
    /* the block into the checkpoint; the forward will not run it again */
    if (hfx_emit_block(&g->hm, l)) return -1;
    g->fm.layers[l] = g->m->layers[l];
    if (!g->quiet)
        fprintf(stderr, "gptq: block %d/%d: loss %.6g (%.2f s; so far: block passes %.1f s, of "
                "which Hessians %.1f s; solves %.1f s)\n", l + 1, g->m->cfg.n_layers, loss_l,
                now_s() - tl, g->cst.seconds, rep->hessian_seconds, rep->solve_seconds);
    return 0;
}

int gptq_quantize_model(const struct model *m, const char *src_path,
                        const struct gptq_model_opts *o, const struct calib_set *cs,
                        const char *out, bool quiet, struct hfx_stats *st, struct gptq_report *rep) {
    memset(rep, 0, sizeof *rep);
    const double t0 = now_s();
    const int n_layers = m->cfg.n_layers;
    struct gq_run g = {.m = m, .o = o, .cs = cs, .quiet = quiet, .fm = *m, .rep = rep};
    g.fm.layers = NULL;
    json_t *extra = json_pack("{s:s, s:s, s:s, s:i, s:i, s:I, s:b, s:i}", "calib_set", cs->path,
                              "calib_sha256", cs->file_sha256, "calib_tokens_sha256",
                              cs->tokens_sha256, "calib_nsamples", cs->n_samples, "calib_seqlen",
                              cs->seqlen, "seed", (json_int_t)cs->seed, "calib_bos", cs->bos,
                              "blocksize", o->q.blocksize);
    int ret = -1;
    if (!extra || hfx_collect(&g.hm, m, src_path, true)) goto out;
    g.fm.layers = xmalloc((size_t)n_layers * sizeof *g.fm.layers, "layers");
    g.idx = xmalloc((size_t)n_layers * LIN_COUNT * sizeof *g.idx, "layers");
    if (!g.fm.layers || !g.idx) goto out;
    if (m->cfg.n_expert > 0) {
        g.n_units = m->cfg.n_expert + (m->cfg.shared_hidden > 0);
        g.xidx = xmalloc((size_t)n_layers * 3 * g.n_units * sizeof *g.xidx, "experts");
        g.ex = xcalloc((size_t)(3 * m->cfg.n_expert), sizeof *g.ex, "experts");
        g.x_anchor = xcalloc((size_t)(2 * g.n_units), sizeof *g.x_anchor, "experts");
        g.x_h = xcalloc((size_t)(2 * g.n_units), sizeof *g.x_h, "experts");
        if (!g.xidx || !g.ex || !g.x_anchor || !g.x_h) goto out;
    }
    memcpy(g.fm.layers, m->layers, (size_t)n_layers * sizeof *g.fm.layers);
    if (gq_plan(&g) || gq_memory_plan(&g)) goto out;
    for (int s = 0; s < SUB_COUNT; s++)
        if ((!g.n_units || s < FWD_GATE_UP) &&
            gptq_hessian_init(&g.hs[s], lin_dim(&m->cfg, lin_info[lin_anchor(s)].in)))
            goto out;
    if (calib_stream_init(&g.cst, &g.fm, cs, false, out)) goto out;
    g.cst_ok = true;
    g.cst.fs.mm_hook = capture_hook;
    g.cst.fs.mm_hook_ctx = &g.cap;

    /* the checkpoint is written as the blocks are done: one block in fp32 at a time */
    const struct gptq_write_opts go = {.bits = o->q.bits, .group = o->q.group, .sym = o->q.sym,
                                       .desc_act = o->q.desc_act, .v2 = o->v2,
                                       .damp_percent = o->q.damp_percent,
                                       .true_sequential = o->true_sequential,
                                       .static_groups = false, .quantizer = "gptq",
                                       .extra = extra};
    if (gptq_write_begin(&g.hm, &go, out, st)) goto out;
    int l_start = 0;
    if (gq_resume(&g, src_path, &l_start)) goto out;
    for (int l = l_start; l < n_layers; l++)
        if (gq_block(&g, l)) goto out;
    rep->seconds = now_s() - t0;
    json_object_set_new(extra, "loss", json_real(rep->loss));
    ret = gptq_write(&g.hm, &go, out, st);
    if (!ret) qresume_remove(&g.rs);
out:
    qresume_release(&g.rs);
    json_decref(extra);
    if (g.cst_ok) calib_stream_release(&g.cst);
    for (int s = 0; s < SUB_COUNT; s++) gptq_hessian_release(&g.hs[s]);
    gptq_prep_release(&g.prep);
    free(g.idx);
    free(g.xidx), free(g.ex), free(g.x_anchor), free(g.x_h);
    free(g.fm.layers);
    hfx_release(&g.hm);
    return ret;
}

/* ===== the registry row ===== */

static int gptq_bits(const struct recipe *r) {
    int bits = 0;
    if (sscanf(r->weight_dtype, "int%d", &bits) != 1 ||
        (bits != 2 && bits != 3 && bits != 4 && bits != 8))
        return err("recipe '%s': algorithm gptq quantizes to int2, int3, int4 or int8, not %s",
                   r->id, r->weight_dtype);
    if (!isnan(r->bits) && r->bits != bits)
        return err("recipe '%s': bits %g does not match weight_dtype %s", r->id, r->bits,
                   r->weight_dtype);
    return bits;
}

/* the knobs (gptq.h) into o; -1 with a message naming the recipe and the knob */
static int gptq_knobs(const struct recipe *r, struct gptq_model_opts *o, uint64_t *seed) {
    *seed = 0;
    o->q.desc_act = true;
    o->q.damp_percent = 0.01;
    o->q.blocksize = 128;
    o->true_sequential = true;
    o->v2 = false;
    json_t *kn;
    if (recipe_knobs(r, &kn)) return -1;
    if (!kn) return 0;
    const char *key;
    json_t *v;
    int ret = 0;
    json_object_foreach(kn, key, v) {
        if (!strcmp(key, "desc_act") && json_is_boolean(v)) {
            o->q.desc_act = json_is_true(v);
        } else if (!strcmp(key, "true_sequential") && json_is_boolean(v)) {
            o->true_sequential = json_is_true(v);
        } else if (!strcmp(key, "static_groups") && json_is_false(v)) {
        } else if (!strcmp(key, "damp_percent") && json_is_number(v) &&
                   json_number_value(v) > 0 && json_number_value(v) <= 1) {
            o->q.damp_percent = json_number_value(v);
        } else if (!strcmp(key, "blocksize") && json_is_integer(v) &&
                   json_integer_value(v) >= 1 && json_integer_value(v) <= 4096) {
            o->q.blocksize = (int)json_integer_value(v);
        } else if (!strcmp(key, "seed") && json_is_integer(v) && json_integer_value(v) >= 0) {
            *seed = (uint64_t)json_integer_value(v);
        } else if (!strcmp(key, "format") && json_is_string(v) &&
                   (!strcmp(json_string_value(v), "gptq") ||
                    !strcmp(json_string_value(v), "gptq_v2"))) {
            o->v2 = !strcmp(json_string_value(v), "gptq_v2");
        } else {
            ret = err("recipe '%s': gptq knob '%s' (gptq knows desc_act: bool, damp_percent: "
                      "(0, 1], true_sequential: bool, static_groups: false (true is not "
                      "implemented), blocksize: 1..4096, seed: integer >= 0, format: "
                      "gptq|gptq_v2)", r->id, key);
            break;
        }
    }
    json_decref(kn);
    return ret;
}

int gptq_recipe_check(const struct recipe *r) {
    const int bits = gptq_bits(r);
    if (bits < 0) return -1;
    if (r->double_quant == 1)
        return err("recipe '%s': algorithm gptq has no double quantization (that is bnb's)", r->id);
    if (!strcmp(r->compute_dtype, "int8"))
        return err("recipe '%s': compute_dtype int8 is not available for gptq weights (fp32, fp16 "
                   "or bf16 activations)", r->id);
    const int64_t g = r->has_group_size ? r->group_size : 128;
    if (g != -1 && g != 32 && g != 64 && g != 128)
        return err("recipe '%s': group_size %lld (gptq groups are 32, 64, 128, or -1 per channel)",
                   r->id, (long long)g);
    if (!r->calib_set[0])
        return err("recipe '%s': algorithm gptq needs calib_set (a file of "
                   "$LOWBIT_DATA/datasets/calibration/, e.g. groups_merged, or a path)", r->id);
    struct gptq_model_opts o = {0};
    uint64_t seed;
    return gptq_knobs(r, &o, &seed);
}

int gptq_recipe_quantize(const struct quant_job *j, struct quant_artifact *a) {
    const struct recipe *r = j->r;
    const int bits = gptq_bits(r);
    if (bits < 0) return -1;
    struct gptq_model_opts o = {0};
    uint64_t seed;
    if (gptq_knobs(r, &o, &seed)) return -1;
    o.q.bits = bits;
    o.q.group = r->has_group_size ? r->group_size : 128;
    o.q.sym = r->sym != 0;
    o.q.zero_min = o.v2 ? 0 : 1;
    o.resume_dir = j->resume_dir;
    struct calib_set cs;
    if (calib_load_job(&cs, "gptq", j, seed)) return -1;
    snprintf(a->path, sizeof a->path, "%s/model", j->out_dir);
    struct hfx_stats st;
    struct gptq_report rep;
    int ret = gptq_quantize_model(j->m, j->src_path, &o, &cs, a->path, j->quiet, &st, &rep);
    if (!ret) {
        hf_recipe_artifact(j, a, "gptq", &st);
        quant_prov(a, "quant.gptq", "%d-bit, group %lld, %s, desc_act %s, damp_percent %g, "
                   "true_sequential %s, static_groups false, blocksize %d, %s", bits,
                   (long long)o.q.group, o.q.sym ? "sym" : "asym", o.q.desc_act ? "true" : "false",
                   o.q.damp_percent, o.true_sequential ? "true" : "false", o.q.blocksize,
                   o.v2 ? "gptq_v2" : "gptq v1");
        quant_prov(a, "quant.knobs", "%s", r->knobs[0] ? r->knobs : "{}");
        quant_prov(a, "quant.calib_file", "%s (sha256 %s)", cs.path, cs.file_sha256);
        quant_prov(a, "quant.calib_windows", "%d x %d tokens, seed %llu, %s, splitmix64 offsets; "
                   "tokens sha256 %s", cs.n_samples, cs.seqlen, (unsigned long long)seed,
                   cs.bos ? "BOS + text" : "text only (no BOS)", cs.tokens_sha256);
        quant_prov(a, "quant.gptq_seconds", "%.3f (block passes %.3f, of which Hessians %.3f; "
                   "solves %.3f; %d window-blocks)", rep.seconds, rep.forward_seconds,
                   rep.hessian_seconds, rep.solve_seconds, rep.n_forward);
        quant_prov(a, "quant.gptq_peak_rss_mb", "%.1f", calib_peak_rss_mb());
        if (rep.resumed_blocks)
            quant_prov(a, "quant.gptq_resumed_blocks", "%d (from %s)", rep.resumed_blocks,
                       j->resume_dir);
        quant_prov(a, "quant.gptq_loss", "%.6g", rep.loss);
        if (rep.moe_experts)
            quant_prov(a, "quant.gptq_moe", "each expert's Hessian from the tokens routed to it "
                       "(the router and shared-expert gate in float); %d of %d experts (blocks x "
                       "experts) saw < %.1f%% of the %lld calibration tokens and were rounded to "
                       "nearest (identity Hessian); tokens per expert %lld..%lld",
                       rep.moe_fallback, rep.moe_experts, 100 * GPTQ_MOE_MIN_SHARE,
                       (long long)cs.n_samples * cs.seqlen, (long long)rep.moe_min_tokens,
                       (long long)rep.moe_max_tokens);
    }
    calib_release(&cs);
    return ret;
}
