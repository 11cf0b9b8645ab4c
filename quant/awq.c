/* quant/awq.c: AWQ, the scale and clip searches and the block-by-block model pass (algorithm,
 * sources, what we changed and the tolerance we promise: quant/awq.h). */
#include "quant/awq.h"

#include <jansson.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "eval/forward.h"
#include "kernels/gram.h"
#include "kernels/matmul.h"
#include "quant/calib.h"
#include "quant/qformat.h"
#include "quant/quant.h"
#include "quant/resume.h"
#include "quant/rtn.h"

/* ===== statistics and the pseudo-quantizer ===== */

void awq_x_mean(const float *x, int64_t T, int64_t K, float *x_mean) {
    for (int64_t k = 0; k < K; k++) {
        double s = 0;
        for (int64_t t = 0; t < T; t++) s += fabs((double)x[t * K + k]);
        x_mean[k] = (float)(s / (double)T);
    }
}

void awq_w_mean(const float *const *w, const int64_t *n, int m, int64_t K, int64_t group,
                float *w_mean) {
    const int64_t g = group > 0 && group < K ? group : K;
    double rows = 0;
    for (int64_t k = 0; k < K; k++) w_mean[k] = 0;
    double *acc = calloc((size_t)K, sizeof *acc);
    if (!acc) return; /* w_mean stays 0: duo scaling then reduces to x_mean^r·1e4 */
    for (int i = 0; i < m; i++)
        for (int64_t r = 0; r < n[i]; r++, rows++) {
            const float *wr = w[i] + r * K;
            for (int64_t k0 = 0; k0 < K; k0 += g) {
                float amax = 0;
                for (int64_t k = k0; k < k0 + g && k < K; k++) amax = fmaxf(amax, fabsf(wr[k]));
                const double d = (double)amax + 1e-6;
                for (int64_t k = k0; k < k0 + g && k < K; k++) acc[k] += fabs((double)wr[k]) / d;
            }
        }
    for (int64_t k = 0; k < K; k++) w_mean[k] = (float)(acc[k] / rows);
    free(acc);
}

/* Q of one group in place (fp32, as rtn.c params_awq + q_gptq, scale not rounded to fp16); the
 * weights are finite (checked when loaded) */
static void pq_group(float *x, int64_t len, float maxq) {
    float mn = x[0], mx = x[0];
    for (int64_t i = 1; i < len; i++) {
        mn = lb_minf(mn, x[i]);
        mx = lb_maxf(mx, x[i]);
    }
    const float scale = lb_maxf(mx - mn, 1e-5f) / maxq;
    const float zero = lb_minf(lb_maxf(-rintf(mn / scale), 0.0f), maxq);
    for (int64_t i = 0; i < len; i++) {
        const float q = lb_minf(lb_maxf(rintf(x[i] / scale) + zero, 0.0f), maxq);
        x[i] = (q - zero) * scale;
    }
}

void awq_pseudo_quantize(float *w, int64_t K, int64_t N, int bits, int64_t group) {
    const int64_t g = group > 0 && group < K ? group : K;
    const float maxq = (float)((1 << bits) - 1);
#pragma omp parallel for schedule(static) if (N * K >= (1 << 18))
    for (int64_t n = 0; n < N; n++)
        for (int64_t k0 = 0; k0 < K; k0 += g) pq_group(w + n * K + k0, LB_MIN(g, K - k0), maxq);
}

/* ===== the scale search ===== */

/* the candidate scales of ratio r (awq.h step 2) into s */
static void candidate(const float *xm, const float *wm, int64_t K, double r, bool duo, float *s,
                      double *v) {
    double mx = -INFINITY, mn = INFINITY;
    for (int64_t k = 0; k < K; k++) {
        double x = pow((double)xm[k], r);
        if (duo) x /= pow((double)wm[k], 1 - r) + 1e-4;
        v[k] = fmax(x, 1e-4);
        mx = fmax(mx, v[k]);
        mn = fmin(mn, v[k]);
    }
    const double norm = sqrt(mx * mn);
    for (int64_t k = 0; k < K; k++) {
        const float f = (float)(v[k] / norm);
        s[k] = isfinite(f) ? f : 1.0f;
    }
}

#define LOSS_CHUNK 256

/* Σ_k a[k]·b[k] in double, eight running sums (the same bits on every ISA) */
LB_CLONES static double dot_f64(const float *a, const float *b, int64_t n) {
    double acc[8] = {0};
    int64_t k = 0;
    for (; k + 8 <= n; k += 8)
        for (int l = 0; l < 8; l++) acc[l] += (double)a[k + l] * b[k + l];
    double s = 0;
    for (int l = 0; l < 8; l++) s += acc[l];
    for (; k < n; k++) s += (double)a[k] * b[k];
    return s;
}

/* Σ_r dot(a_r, b_r) over cnt rows of n: the rows in parallel, their sums added in order */
static double rows_dot(const float *a, const float *b, int cnt, int64_t n) {
    double rs[LOSS_CHUNK];
#pragma omp parallel for schedule(static) if ((int64_t)cnt * n >= (1 << 16))
    for (int r = 0; r < cnt; r++) rs[r] = dot_f64(a + r * n, b + r * n, n);
    double s = 0;
    for (int r = 0; r < cnt; r++) s += rs[r];
    return s;
}

/* *e = Σ ‖X·Dᵀ‖² over the T rows, D [N][K] (fp32 products, double sums), rows in chunks into
 * y; -1 with a message when the product has no memory for its scratch */
static int out_sq(const float *x, int64_t T, int64_t K, const float *d, int64_t N, float *y,
                  double *e) {
    struct tensor wt = {.type = DTYPE_F32, .n_dims = 2, .ne = {K, N, 1, 1}, .data = (void *)d};
    double s = 0;
    for (int64_t t0 = 0; t0 < T; t0 += LOSS_CHUNK) {
        const int cnt = (int)LB_MIN(LOSS_CHUNK, T - t0);
        if (matmul(y, x + t0 * K, &wt, cnt)) return -1;
        s += rows_dot(y, y, cnt, N);
    }
    *e = s;
    return 0;
}

/* The Gram route's loss Σ_rows d·G·dᵀ uses G's symmetry: with K cut into blocks I of GRAM_BLOCK
 * columns, d·G·dᵀ = Σ_I (d_I·G_II·d_Iᵀ + 2·Σ_{J>I} d_I·G_IJ·d_Jᵀ), each block row's part one GEMM
 * of d_I against panel I = G[I0:K, I] (the rows from the block on): K²/2·(1 + GRAM_BLOCK/K)
 * products per row of D instead of K². */
#define GRAM_BLOCK 256
struct gram_panels {
    int64_t K, nb;
    float *p;       /* panel I at p + off[I]: [K − I0][bI] fp32 */
    int64_t *off;
};

static void gram_panels_free(struct gram_panels *gp) {
    free(gp->p);
    free(gp->off);
    memset(gp, 0, sizeof *gp);
}

/* G = XᵀX (the float64 Gram kernel, rounded to fp32 once) as panels; -1 with a message */
static int gram_panels_make(const float *x, int64_t T, int64_t K, struct gram_panels *gp) {
    memset(gp, 0, sizeof *gp);
    gp->K = K;
    gp->nb = (K + GRAM_BLOCK - 1) / GRAM_BLOCK;
    double *h = xcalloc((size_t)(K * K), sizeof *h, "AWQ Gram matrix");
    gp->off = xmalloc((size_t)gp->nb * sizeof *gp->off, "AWQ Gram panels");
    int64_t total = 0;
    for (int64_t I = 0; I < gp->nb; I++) {
        const int64_t i0 = I * GRAM_BLOCK, bi = LB_MIN(GRAM_BLOCK, K - i0);
        if (gp->off) gp->off[I] = total;
        total += (K - i0) * bi;
    }
    gp->p = h && gp->off ? xmalloc((size_t)total * sizeof *gp->p, "AWQ Gram panels") : NULL;
    if (!gp->p || gram_acc(h, x, T, K)) { /* h: the upper triangle, h[i][j] for j >= i */
        free(h);
        gram_panels_free(gp);
        return -1;
    }
    for (int64_t I = 0; I < gp->nb; I++) {
        const int64_t i0 = I * GRAM_BLOCK, bi = LB_MIN(GRAM_BLOCK, K - i0);
        float *pi = gp->p + gp->off[I];
        for (int64_t j = i0; j < K; j++)     /* panel row j - i0: G[j][i0 .. i0 + bi) */
            for (int64_t i = 0; i < bi; i++) {
                const int64_t r = LB_MIN(j, i0 + i), c = LB_MAX(j, i0 + i);
                pi[(j - i0) * bi + i] = (float)h[r * K + c];
            }
    }
    free(h);
    return 0;
}

/* *e = Σ_rows d·G·dᵀ of D [N][K] from the panels; xb [LOSS_CHUNK][GRAM_BLOCK] and
 * p [LOSS_CHUNK][K] scratch; the rows' sums in parallel, added in order */
static int gram_sq(const struct gram_panels *gp, const float *d, int64_t N, float *xb, float *p,
                   double *e) {
    const int64_t K = gp->K;
    double s = 0;
    for (int64_t r0 = 0; r0 < N; r0 += LOSS_CHUNK) {
        const int cnt = (int)LB_MIN(LOSS_CHUNK, N - r0);
        const float *dr = d + r0 * K;
        double rs[LOSS_CHUNK] = {0};
        for (int64_t I = 0; I < gp->nb; I++) {
            const int64_t i0 = I * GRAM_BLOCK, bi = LB_MIN(GRAM_BLOCK, K - i0), nj = K - i0;
            for (int r = 0; r < cnt; r++) memcpy(xb + r * bi, dr + r * K + i0, (size_t)bi * 4);
            const struct tensor pt = {.type = DTYPE_F32, .n_dims = 2, .ne = {bi, nj, 1, 1},
                                      .data = gp->p + gp->off[I]};
            if (matmul(p, xb, &pt, cnt)) return -1; /* p[r][j] = Σ_i d[r][i0 + i]·G[i0 + j][i0 + i] */
#pragma omp parallel for schedule(static) if ((int64_t)cnt * nj >= (1 << 16))
            for (int r = 0; r < cnt; r++)
                rs[r] += dot_f64(p + r * nj, dr + r * K + i0, bi) +
                         2 * dot_f64(p + r * nj + bi, dr + r * K + i0 + bi, nj - bi);
        }
        for (int r = 0; r < cnt; r++) s += rs[r];
    }
    *e = s;
    return 0;
}

/* D = W − Q(W·diag(s))·diag(s)⁻¹ of one linear [N][K], row by row in parallel (each row's bits
 * as the serial loop: W·s rounded to fp32, Q per group, the division) */
static void candidate_error(const float *w, int64_t N, int64_t K, const float *s,
                            const struct awq_opts *o, float *d) {
    const int64_t g = o->group > 0 && o->group < K ? o->group : K;
    const float maxq = (float)((1 << o->bits) - 1);
#pragma omp parallel for schedule(static) if (N * K >= (1 << 16))
    for (int64_t j = 0; j < N; j++) {
        const float *wj = w + j * K;
        float *dj = d + j * K;
        for (int64_t k = 0; k < K; k++) dj[k] = wj[k] * s[k];
        for (int64_t k0 = 0; k0 < K; k0 += g) pq_group(dj + k0, LB_MIN(g, K - k0), maxq);
        for (int64_t k = 0; k < K; k++) dj[k] = wj[k] - dj[k] / s[k];
    }
}

int awq_scale_losses(const float *x, int64_t T, int64_t K, const float *const *w, const int64_t *n,
                     int m, const float *xm, const float *wm, const struct awq_opts *o,
                     double *loss) {
    int64_t max_n = 0, sum_n = 0;
    for (int i = 0; i < m; i++) max_n = LB_MAX(max_n, n[i]), sum_n += n[i];
    /* the cheaper loss (awq.h): direct n_grid·2·T·ΣN·K, Gram T·K² (one triangle) +
     * n_grid·ΣN·K·(K + GRAM_BLOCK) (the panels) */
    const double Kd = (double)K, direct = o->n_grid * 2.0 * (double)T * (double)sum_n * Kd,
                 via_gram = (double)T * Kd * Kd + o->n_grid * (double)sum_n * Kd * (Kd + GRAM_BLOCK);
    const bool use_gram = !o->direct_loss && via_gram < direct;
    int ret = -1;
    float *cand = xmalloc((size_t)K * 4, "AWQ scales"), *d = xmalloc((size_t)(max_n * K) * 4, "AWQ");
    float *y = xmalloc((size_t)(LOSS_CHUNK * LB_MAX(max_n, K)) * 4, "AWQ outputs");
    float *xb = xmalloc((size_t)(LOSS_CHUNK * GRAM_BLOCK) * 4, "AWQ loss rows");
    double *v = xmalloc((size_t)K * sizeof *v, "AWQ scales");
    struct gram_panels gp = {0};
    if (!cand || !d || !y || !xb || !v || (use_gram && gram_panels_make(x, T, K, &gp))) goto out;
    for (int gi = 0; gi < o->n_grid; gi++) {
        candidate(xm, wm, K, (double)gi / o->n_grid, o->duo_scaling, cand, v);
        for (int i = 0; i < m; i++) {
            candidate_error(w[i], n[i], K, cand, o, d);
            double ei;
            if (use_gram ? gram_sq(&gp, d, n[i], xb, y, &ei) : out_sq(x, T, K, d, n[i], y, &ei))
                goto out;
            loss[gi] += ei;
        }
    }
    ret = 0;
out:
    free(cand);
    free(d);
    free(y);
    free(xb);
    free(v);
    gram_panels_free(&gp);
    return ret;
}

int awq_scale_pick(const double *loss, double denom, const float *xm, const float *wm, int64_t K,
                   const struct awq_opts *o, float *s, struct awq_search *res) {
    memset(res, 0, sizeof *res);
    res->best = -1;
    double best = INFINITY;
    for (int gi = 0; gi < o->n_grid; gi++) {
        res->loss[gi] = loss[gi] / denom;
        if (res->loss[gi] < best) best = res->loss[gi], res->best = gi;
    }
    if (res->best < 0)
        return err("AWQ: no finite loss at any ratio (non-finite activations or weights?)");
    res->ratio = (double)res->best / o->n_grid;
    double *v = xmalloc((size_t)K * sizeof *v, "AWQ scales");
    if (!v) return -1;
    candidate(xm, wm, K, res->ratio, o->duo_scaling, s, v);
    free(v);
    return 0;
}

int awq_search_scale(const float *x, int64_t T, int64_t K, const float *const *w, const int64_t *n,
                     int m, const struct awq_opts *o, float *s, struct awq_search *res) {
    memset(res, 0, sizeof *res);
    res->best = -1;
    if (o->n_grid < 1 || o->n_grid > AWQ_MAX_GRID)
        return err("AWQ: n_grid %d (expected 1..%d)", o->n_grid, AWQ_MAX_GRID);
    if (o->group <= 0 || K % o->group)
        return err("AWQ: group %lld does not divide %lld input channels", (long long)o->group,
                   (long long)K);
    if (T < 1 || m < 1)
        return err("AWQ: nothing to search (%lld tokens, %d linears)", (long long)T, m);
    int64_t sum_n = 0;
    for (int i = 0; i < m; i++) sum_n += n[i];
    double loss[AWQ_MAX_GRID] = {0};
    float *xm = xmalloc((size_t)K * sizeof *xm, "AWQ x_mean"), *wm = xmalloc((size_t)K * 4, "AWQ");
    int ret = -1;
    if (xm && wm) {
        awq_x_mean(x, T, K, xm);
        awq_w_mean(w, n, m, K, o->group, wm);
        ret = awq_scale_losses(x, T, K, w, n, m, xm, wm, o, loss) ||
                      awq_scale_pick(loss, (double)T * (double)sum_n, xm, wm, K, o, s, res)
                  ? -1
                  : 0;
    }
    free(xm);
    free(wm);
    return ret;
}

void awq_fold(float *prev, int64_t prev_cols, float *const *w, const int64_t *n, int m, int64_t K,
              const float *s) {
    for (int64_t k = 0; k < K; k++)
        for (int64_t c = 0; c < prev_cols; c++) prev[k * prev_cols + c] /= s[k];
    for (int i = 0; i < m; i++)
        for (int64_t r = 0; r < n[i]; r++)
            for (int64_t k = 0; k < K; k++) w[i][r * K + k] *= s[k];
}

/* ===== the clip search ===== */

/* a[t] = Σ_k xt[k][t]·c[k] for t < Ts, each t summed over k in order (a product, then an add:
 * the bits of the scalar loop); the vector lanes run over t */
LB_CLONES static void group_dots(const double *xt, int64_t Ts, int64_t g, const float *c,
                                 double *a) {
    for (int64_t t = 0; t < Ts; t++) a[t] = 0;
    for (int64_t k = 0; k < g; k++) {
        const double ck = c[k], *xk = xt + k * Ts;
#pragma omp simd
        for (int64_t t = 0; t < Ts; t++) a[t] += xk[t] * ck;
    }
}

/* G_j [g][g] = Σ_t x_t,j·x_t,jᵀ in double over the sampled tokens, for the g columns of group j;
 * each element summed over t in order (the same bits on every ISA and thread count) */
LB_CLONES static void group_gram(const float *x, int64_t step, int64_t Ts, int64_t K, int64_t k0,
                                 int64_t g, double *G) {
    for (int64_t i = 0; i < g * g; i++) G[i] = 0;
    for (int64_t t = 0; t < Ts; t++) {
        const float *xr = x + t * step * K + k0;
        for (int64_t k = 0; k < g; k++) {
            const double xk = xr[k];
            double *gk = G + k * g;
#pragma omp simd
            for (int64_t l = 0; l < g; l++) gk[l] += xk * (double)xr[l];
        }
    }
}

/* δᵀ·G·δ for the symmetric G [g][g]: u = G·δ (each u[l] over k in order), then δ·u in order */
LB_CLONES static double quad_form(const double *G, int64_t g, const double *dl, double *u) {
    for (int64_t l = 0; l < g; l++) u[l] = 0;
    for (int64_t k = 0; k < g; k++) {
        const double dk = dl[k], *gk = G + k * g;
#pragma omp simd
        for (int64_t l = 0; l < g; l++) u[l] += gk[l] * dk;
    }
    double e = 0;
    for (int64_t l = 0; l < g; l++) e += u[l] * dl[l];
    return e;
}

int awq_search_clip(const float *x, int64_t T, int64_t K, const float *w, int64_t N,
                    const struct awq_opts *o, float *max_val) {
    const int64_t g = o->group, ng = K / g;
    const int64_t step = LB_MAX(1, T / LB_MAX(1, o->n_sample_token)), Ts = (T + step - 1) / step;
    const int n_shrink = (int)(o->max_shrink * o->n_grid);
    /* the error of a candidate over the sampled tokens (awq.h): directly, Σ_t (x_t·(ŵ − w))², Ts·g
     * products per candidate; or from the group's Gram matrix, (ŵ − w)ᵀ·G·(ŵ − w), g² per candidate
     * after Ts·g² per group once: cheaper when g < Ts (AutoAWQ's defaults: 8x) */
    const bool use_gram = !o->direct_loss && g < Ts;
    const int64_t per = use_gram ? g : Ts;
    int nth = 1;
#ifdef _OPENMP
    nth = omp_get_max_threads();
#endif
    /* direct: the sampled tokens as double, one row of Ts per input column; Gram: G_j per group */
    double *xt = xmalloc((size_t)(use_gram ? ng * g * g : Ts * K) * sizeof *xt, "AWQ clip tokens");
    double *scratch = xmalloc((size_t)nth * 2 * (size_t)per * sizeof *scratch, "AWQ clip");
    float *cur = xmalloc((size_t)nth * (size_t)g * sizeof *cur, "AWQ clip");
    if (!xt || !scratch || !cur) {
        free(xt);
        free(scratch);
        free(cur);
        return -1;
    }
    if (use_gram) {
#pragma omp parallel for schedule(static)
        for (int64_t j = 0; j < ng; j++) group_gram(x, step, Ts, K, j * g, g, xt + j * g * g);
    } else {
        for (int64_t t = 0; t < Ts; t++)
            for (int64_t k = 0; k < K; k++) xt[k * Ts + t] = x[t * step * K + k];
    }
    const float maxq = (float)((1 << o->bits) - 1);
#pragma omp parallel
    {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        double *org = scratch + (size_t)tid * 2 * (size_t)per, *a = org + per;
        float *c = cur + (size_t)tid * (size_t)g;
#pragma omp for schedule(dynamic, 4)
        for (int64_t r = 0; r < N * ng; r++) {
            const int64_t nrow = r / ng, k0 = (r % ng) * g;
            const float *wg = w + nrow * K + k0;
            const double *xg = use_gram ? xt + (r % ng) * g * g : xt + k0 * Ts;
            float m0 = 0;
            for (int64_t k = 0; k < g; k++) m0 = lb_maxf(m0, fabsf(wg[k]));
            if (!use_gram) group_dots(xg, Ts, g, wg, org);
            float best = m0;
            double min_err = 1e9;
            for (int i = 0; i < n_shrink; i++) {
                const float mv = m0 * (float)(1.0 - (double)i / o->n_grid);
                for (int64_t k = 0; k < g; k++) c[k] = lb_minf(lb_maxf(wg[k], -mv), mv);
                pq_group(c, g, maxq);
                double e = 0;
                if (use_gram) {
                    for (int64_t k = 0; k < g; k++) org[k] = (double)c[k] - (double)wg[k];
                    e = quad_form(xg, g, org, a);
                } else {
                    group_dots(xg, Ts, g, c, a);
                    for (int64_t t = 0; t < Ts; t++) e += (a[t] - org[t]) * (a[t] - org[t]);
                }
                e /= (double)Ts;
                if (e < min_err) {
                    min_err = e;
                    best = mv;
                }
            }
            max_val[r] = best;
        }
    }
    free(xt);
    free(scratch);
    free(cur);
    return 0;
}

void awq_apply_clip(float *w, int64_t K, int64_t N, int64_t group, const float *max_val) {
    const int64_t ng = K / group;
    for (int64_t n = 0; n < N; n++)
        for (int64_t k = 0; k < K; k++) {
            const float mv = max_val[n * ng + k / group];
            w[n * K + k] = fminf(fmaxf(w[n * K + k], -mv), mv);
        }
}

/* ===== the model, block by block ===== */

/* the block linears are eval/model.h's enum lin; the four recorded inputs are their stages
 * (lin_info[].stage: FWD_QKV, FWD_O, FWD_GATE_UP, FWD_DOWN) */
#define N_LIN LIN_COUNT
#define N_IN LIN_N_INPUTS

/* the scaling groups of awq/models/llama.py get_layers_for_scaling; prev_lin < 0: an RMSNorm */
static const struct {
    const char *name;
    int lin[3], n_lin, input;
    int prev_lin;            /* the linear whose rows take 1/s, or -1 */
    const char *prev_norm;   /* the norm whose weight takes 1/s */
} groups[N_IN] = {
    {"qkv", {LIN_Q, LIN_K, LIN_V}, 3, FWD_QKV, -1, "attn_norm.weight"},
    {"o", {LIN_O}, 1, FWD_O, LIN_V, NULL},
    {"gate_up", {LIN_GATE, LIN_UP}, 2, FWD_GATE_UP, -1, "ffn_norm.weight"},
    {"down", {LIN_DOWN}, 1, FWD_DOWN, LIN_UP, NULL},
};

/* the hook: append the inputs of the anchor weights (and of a MoE block's experts) */
struct moe_cap;
static int moe_take(struct moe_cap *mc, const struct tensor *w, const float *x, int T);
struct capture {
    const struct tensor *anchor[N_IN];
    float *buf[N_IN];
    int64_t K[N_IN], rows[N_IN], cap_rows;
    struct moe_cap *moe; /* a MoE block's, or NULL */
};

static int capture_hook(void *ctx, const struct tensor *w, const float *x, int T) {
    struct capture *c = ctx;
    const int r = c->moe ? moe_take(c->moe, w, x, T) : 0;
    if (r) return r < 0 ? -1 : 0;
    for (int s = 0; s < N_IN; s++)
        if (w == c->anchor[s]) {
            if (w->ne[0] != c->K[s] || c->rows[s] + T > c->cap_rows)
                return err("AWQ: %s: input of %lld x %d does not fit the capture (%lld x %lld)",
                           w->name, (long long)w->ne[0], T, (long long)c->K[s],
                           (long long)c->cap_rows);
            memcpy(c->buf[s] + c->rows[s] * c->K[s], x, (size_t)T * (size_t)c->K[s] * sizeof *x);
            c->rows[s] += T;
        }
    return 0;
}

/* step 2 of a block: each scaling group's search (awq.h) on the block's float weights, the
 * scales into sc[g], done[g] set and the ratio into jr; groups with a float linear are skipped */
static int awq_block_search(const struct capture *cap, struct hfx_tensor *const *lt, const bool *q,
                            const struct awq_opts *o, int64_t T, float *const *sc, json_t *jr,
                            bool *done, struct awq_report *rep) {
    for (int g = 0; g < N_IN; g++) {
        bool ok = true;
        for (int j = 0; j < groups[g].n_lin; j++) ok &= q[groups[g].lin[j]];
        if (g == 1) /* AutoAWQ: v -> o only when v_proj.weight.shape == o_proj.weight.shape */
            ok &= lt[LIN_V]->N == lt[LIN_O]->N && lt[LIN_V]->K == lt[LIN_O]->K;
        if (!ok) {
            json_object_set_new(jr, groups[g].name, json_null());
            continue;
        }
        const float *w[3];
        int64_t n[3];
        for (int j = 0; j < groups[g].n_lin; j++)
            w[j] = lt[groups[g].lin[j]]->f32, n[j] = lt[groups[g].lin[j]]->N;
        struct awq_search res;
        if (awq_search_scale(cap->buf[groups[g].input], T, cap->K[groups[g].input], w, n,
                             groups[g].n_lin, o, sc[g], &res))
            return -1;
        done[g] = true;
        rep->n_groups++;
        rep->ratio_sum[g] += res.ratio;
        rep->ratio_n[g]++;
        json_object_set_new(jr, groups[g].name, json_real(res.ratio));
    }
    return 0;
}

/* block l's 1-D tensor `suffix` (a norm; qwen2moe's shared-expert gate) as fp32 (its export
 * tensor's f32, made once), which then takes its forward slot; NULL with a message when it is
 * absent or not K long */
static float *block_vec_f32(const struct model *m, struct hfx_model *hm, int l, const char *suffix,
                            int64_t K, struct tensor *slot) {
    char name[96];
    snprintf(name, sizeof name, "blk.%d.%s", l, suffix);
    const int x = hfx_find(hm, name);
    if (x < 0 || hm->t[x].K != K) {
        err("AWQ: %s: no norm %s of %lld channels", m->path, name, (long long)K);
        return NULL;
    }
    struct hfx_tensor *p = &hm->t[x];
    if (!p->f32) {
        if (!(p->f32 = xmalloc((size_t)K * sizeof *p->f32, name))) return NULL;
        tensor_row_to_f32(p->src, 0, p->f32);
    }
    slot->type = DTYPE_F32;
    slot->data = p->f32;
    return p->f32;
}

/* step 3 of block l: for each searched group, the previous op (a linear's rows or an RMSNorm,
 * whose fp32 copy then takes its slot in L) / s, the group's columns · s, its recorded
 * input / s */
static int awq_block_fold(const struct model *m, struct hfx_model *hm, int l, struct layer *L,
                          struct capture *cap, struct hfx_tensor *const *lt, float *const *sc,
                          const bool *done, int64_t T) {
    for (int g = 0; g < N_IN; g++) {
        if (!done[g]) continue;
        const float *s = sc[g];
        const int64_t K = cap->K[groups[g].input];
        float *prev;
        int64_t prev_cols = 1;
        if (groups[g].prev_lin >= 0) {
            struct hfx_tensor *p = lt[groups[g].prev_lin];
            if (p->N != K)
                return err("AWQ: %s has %lld rows, %s's scales %lld", p->module, (long long)p->N,
                           groups[g].name, (long long)K);
            prev = p->f32, prev_cols = p->K;
        } else {
            struct tensor *slot = g == 0 ? &L->attn_norm : &L->ffn_norm;
            if (!(prev = block_vec_f32(m, hm, l, groups[g].prev_norm, K, slot))) return -1;
        }
        float *w[3];
        int64_t n[3];
        for (int j = 0; j < groups[g].n_lin; j++)
            w[j] = lt[groups[g].lin[j]]->f32, n[j] = lt[groups[g].lin[j]]->N;
        awq_fold(prev, prev_cols, w, n, groups[g].n_lin, K, s);
        float *xb = cap->buf[groups[g].input];
        for (int64_t t = 0; t < T; t++)
            for (int64_t k = 0; k < K; k++) xb[t * K + k] /= s[k];
    }
    return 0;
}

/* steps 4 and 5 of a block: clip (not q, k), round, and swap each quantized linear into the
 * forward's layer slot; float ones whose rows a fold scaled (v, up) go in as fp32 */
static int awq_block_round(const struct model *m, struct layer *L, const struct capture *cap,
                           struct hfx_tensor *const *lt, const bool *q, const struct awq_opts *o,
                           int64_t T, float *mv) {
    for (int i = 0; i < N_LIN; i++) {
        struct hfx_tensor *t = lt[i];
        if (!t) continue; /* a MoE block's MLP slots */
        if (!q[i]) {
            /* v / up may have had rows scaled (prev op): rows in source order (not q/k) */
            if (i == LIN_V || i == LIN_UP) calib_f32_slot(&L->lin[i], t->f32, t->K, t->N);
            continue;
        }
        if (o->clip && i != LIN_Q && i != LIN_K) {
            if (awq_search_clip(cap->buf[lin_info[i].stage], T, t->K, t->f32, t->N, o, mv))
                return -1;
            awq_apply_clip(t->f32, t->K, t->N, o->group, mv);
        }
        const struct rtn_opts ro = {.bits = o->bits, .group = o->group, .style = RTN_AWQ};
        if (rtn_quantize(t->f32, t->K, t->N, &ro, t->module, &t->q, &t->qbuf)) return -1;
        t->quantized = true;
        calib_swap_in(m, t, lin_info[i].rope, &L->lin[i]);
    }
    return 0;
}

/* ===== MoE: the experts with the calibration tokens routed to them =====
 * A MoE block (Mixtral, qwen2moe; eval/model.h) has no gate/up/down of its own: its FFN input
 * (ffn_norm's output) feeds the router, every routed expert's gate and up (on the tokens routed to
 * it) and qwen2moe's shared expert (every token) and its sigmoid gate; each expert's down takes its
 * own intermediate activations. One probe of the float block through FWD_OUT with fs.hook_experts
 * (eval/forward.h) records, per routed row, the expert's input, its down input and the router
 * weight p the expert's output is multiplied by in the block's output (fs.hook_rw; the shared
 * expert: its sigmoid gate).
 * Scaling groups (AutoAWQ's Mixtral and Qwen3-MoE mappings, awq/models/mixtral.py,
 * qwen3_moe.py: (post_attention_layernorm -> every expert's w1 and w3), (w3_e -> w2_e) per expert):
 *  - (ffn_norm -> the gate and up of every expert and of the shared expert): the norm is shared,
 *    so one scale s for them all (AutoAWQ's; per-expert scales would need the inference code to
 *    divide each expert's input by its own, AutoAWQ PR 301, not merged). Folded: ffn_norm /= s,
 *    every gate/up column · s, and the router's and the shared-expert gate's columns · s too, so
 *    that the router sees the same input and routes as before (AutoAWQ leaves the router out of
 *    the fold and so changes its input; llm-compressor added it to the group, PR 2451). The router
 *    and the shared-expert gate stay in float. x_mean over every routed row and the shared
 *    expert's (each token counted n_expert_used (+1) times: the mean over all tokens), w_mean
 *    over all the group's rows; the loss at a ratio is Σ over the experts of the squared
 *    errors of its gate and up outputs over the tokens routed to it, each token's error weighted
 *    by p² (its rows times p): the expert's output reaches the block's output times p, and
 *    AutoAWQ measures this group on the whole MoE block's output (module2inspect), which has it.
 *  - (up_e -> down_e) for every expert e (and the shared one) on its own tokens: x_mean over its
 *    rows, the loss weighted by p² as above (AutoAWQ measures down on its own unweighted output:
 *    a deliberate difference, for the same reason).
 *  - clipping of every quantized expert linear on its own routed rows, weighted by p.
 * An expert that saw fewer than CALIB_MOE_MIN_SHARE (0.5%) of the calibration tokens (GPTQ's
 * rule, quant/gptq.c) enters no loss and no search: its down is not scaled, nothing of it is
 * clipped, and its linears are rounded to nearest at the recipe's bits and group (the same
 * rounding as every AWQ linear's last step); its gate and up still take the shared s (the block
 * must compute the same function). The shared expert sees every token. The report counts the
 * experts and those that fell back (provenance quant.awq_moe). */

/* the routed and shared experts' inputs of one block, as the forward shows them */
struct moe_cap {
    const struct fwd_state *fs;      /* its hook_rw */
    const struct tensor *ex, *shexp; /* the block's expert slots [E·3], the shared [3] or NULL */
    int E;
    int64_t D, He, Hs, cap; /* cap: the routed arenas' rows (n_expert_used·T) */
    float *gu, *dn, *rw;    /* routed: inputs [cap][D], down's [cap][He], p [cap] */
    int *tag;               /* each row's expert */
    int64_t n_gu, n_dn;
    float *sgu, *sdn, *srw; /* the shared expert: [T][D], [T][Hs], gates [T] */
    int64_t n_sgu, n_sdn, T;
};

static int moe_append(float *dst, int64_t *n, int64_t cap, int64_t K, const float *x, int T,
                      const char *what) {
    if (*n + T > cap)
        return err("AWQ: %s: %lld + %d rows exceed the capture's %lld", what, (long long)*n, T,
                   (long long)cap);
    memcpy(dst + *n * K, x, (size_t)T * (size_t)K * sizeof *x);
    *n += T;
    return 0;
}

/* the hook's MoE half: 1 when w is an expert's (recorded), 0 when not, -1 with a message */
static int moe_take(struct moe_cap *mc, const struct tensor *w, const float *x, int T) {
    const float *p = mc->fs->hook_rw;
    if (!p) return 0;
    for (int e = 0; e < mc->E; e++)
        if (w == &mc->ex[e * 3]) {
            const int64_t r0 = mc->n_gu;
            if (moe_append(mc->gu, &mc->n_gu, mc->cap, mc->D, x, T, w->name)) return -1;
            for (int t = 0; t < T; t++) mc->tag[r0 + t] = e, mc->rw[r0 + t] = p[t];
            return 1;
        } else if (w == &mc->ex[e * 3 + 2]) { /* right after its gate, the same rows */
            if (mc->n_dn + T != mc->n_gu) return err("AWQ: %s's rows are not its gate's", w->name);
            return moe_append(mc->dn, &mc->n_dn, mc->cap, mc->He, x, T, w->name) ? -1 : 1;
        }
    if (mc->shexp && w == &mc->shexp[0]) {
        memcpy(mc->srw + mc->n_sgu, p, (size_t)LB_MIN(T, mc->T - mc->n_sgu) * sizeof *p);
        return moe_append(mc->sgu, &mc->n_sgu, mc->T, mc->D, x, T, w->name) ? -1 : 1;
    }
    if (mc->shexp && w == &mc->shexp[2])
        return moe_append(mc->sdn, &mc->n_sdn, mc->T, mc->Hs, x, T, w->name) ? -1 : 1;
    return 0;
}

/* unit u's (u < E: routed expert u, u == E: the shared expert) input rows of gate/up or down,
 * each times its weight when `weighted`, into out (NULL: only counted); the count */
static int64_t moe_rows(const struct moe_cap *mc, int u, bool down, bool weighted, float *out) {
    const int64_t K = !down ? mc->D : u < mc->E ? mc->He : mc->Hs;
    const float *src = u < mc->E ? (down ? mc->dn : mc->gu) : (down ? mc->sdn : mc->sgu),
                *p = u < mc->E ? mc->rw : mc->srw;
    const int64_t rows = u < mc->E ? mc->n_gu : mc->n_sgu;
    int64_t n = 0;
    for (int64_t i = 0; i < rows; i++) {
        if (u < mc->E && mc->tag[i] != u) continue;
        if (out)
            for (int64_t k = 0; k < K; k++)
                out[n * K + k] = weighted ? src[i * K + k] * p[i] : src[i * K + k];
        n++;
    }
    return n;
}

/* unit u's rows of gate/up (or down) divided by s, after the fold */
static void moe_unscale(struct moe_cap *mc, int u, bool down, const float *s) {
    const int64_t K = !down ? mc->D : u < mc->E ? mc->He : mc->Hs;
    float *src = u < mc->E ? (down ? mc->dn : mc->gu) : (down ? mc->sdn : mc->sgu);
    const int64_t rows = u < mc->E ? mc->n_gu : mc->n_sgu;
    for (int64_t i = 0; i < rows; i++)
        if (u == mc->E || u < 0 || mc->tag[i] == u)
            for (int64_t k = 0; k < K; k++) src[i * K + k] /= s[k];
}

/* the MoE block's units: their gate, up, down export tensors, forward slots, and plan */
struct moe_unit {
    struct hfx_tensor *t[3];
    struct tensor *slot[3];
    bool q[3];
    int64_t tokens;
    bool few;
    bool down_done; /* up's rows scaled for down */
};

/* the scales of one group of unit linears over the units [0, U) that did not fall back; ok: 0
 * (found), 1 (no unit to search on), -1 (an error) */
static int moe_search(const struct moe_cap *mc, const struct moe_unit *un, int U, int only,
                      const struct awq_opts *o, float *tmp, float *xm, float *wm, float *s,
                      struct awq_search *res) {
    const bool down = only >= 0;
    const int u0 = down ? only : 0, u1 = down ? only + 1 : U;
    const int64_t K = !down ? mc->D : only < mc->E ? mc->He : mc->Hs;
    const float **w = xmalloc((size_t)(2 * U) * sizeof *w, "AWQ experts");
    int64_t *n = xmalloc((size_t)(2 * U) * sizeof *n, "AWQ experts");
    double *acc = xcalloc((size_t)K, sizeof *acc, "AWQ x_mean");
    int m = 0, ret = -1;
    if (!w || !n || !acc) goto out;
    for (int u = u0; u < u1; u++)
        for (int k = down ? 2 : 0; k < (down ? 3 : 2); k++)
            w[m] = un[u].t[k]->f32, n[m++] = un[u].t[k]->N;
    awq_w_mean(w, n, m, K, o->group, wm);
    /* x_mean over every row of the group (the routed arenas hold each token n_expert_used times,
     * the shared expert once more) */
    int64_t rows = 0;
    for (int u = u0; u < u1; u++) {
        const int64_t T = moe_rows(mc, u, down, false, tmp);
        for (int64_t t = 0; t < T; t++)
            for (int64_t k = 0; k < K; k++) acc[k] += fabs((double)tmp[t * K + k]);
        rows += T;
    }
    for (int64_t k = 0; k < K; k++) xm[k] = (float)(acc[k] / (double)LB_MAX(rows, 1));
    double loss[AWQ_MAX_GRID] = {0}, denom = 0;
    for (int u = u0; u < u1; u++) {
        if (un[u].few) continue;
        const int64_t T = moe_rows(mc, u, down, true, tmp);
        const int mm = down ? 1 : 2, i0 = down ? 0 : 2 * (u - u0);
        if (awq_scale_losses(tmp, T, K, w + i0, n + i0, mm, xm, wm, o, loss)) goto out;
        for (int i = 0; i < mm; i++) denom += (double)T * (double)n[i0 + i];
    }
    ret = denom <= 0 ? 1 : awq_scale_pick(loss, denom, xm, wm, K, o, s, res) ? -1 : 0;
out:
    free(w), free(n), free(acc);
    return ret;
}

/* what a MoE block's steps share (awq_quantize_model's per-run state) */
struct moe_run {
    struct moe_cap mc;
    struct moe_unit *un; /* [U] */
    int U;
    int *xidx;         /* [n_layers][U][3] the export tensor of each unit linear */
    bool *qx;          /* [n_layers][U][3] quantized (qformat_plan) */
    struct tensor *ex; /* the block's expert slots as the forward sees them [E·3] */
    float *tmp, *xm, *wm, *s_ffn, *s_dn; /* gathered rows [T][max K]; [max K] x3; [U][max H] */
    int64_t max_h;
};

/* steps 2 and 3 of a MoE block's FFN: the shared scale and the downs' (moe_search), folded: the
 * norm, router and shared-expert gate, the columns, the recorded rows */
static int moe_search_fold(const struct model *m, struct hfx_model *hm, int l, struct layer *L,
                           struct moe_run *mr, const struct awq_opts *o, json_t *jr,
                           struct awq_report *rep) {
    struct moe_cap *mc = &mr->mc;
    struct moe_unit *un = mr->un;
    const int U = mr->U;
    const int64_t D = mc->D;
    struct awq_search res;
    bool all = true;
    for (int u = 0; u < U; u++) all &= un[u].q[0] && un[u].q[1];
    const int rc = all ? moe_search(mc, un, U, -1, o, mr->tmp, mr->xm, mr->wm, mr->s_ffn, &res) : 1;
    if (rc < 0) return -1;
    json_object_set_new(jr, "gate_up", rc ? json_null() : json_real(res.ratio));
    if (!rc) {
        rep->n_groups++, rep->ratio_sum[2] += res.ratio, rep->ratio_n[2]++;
        const float *sv = mr->s_ffn;
        float *nw = block_vec_f32(m, hm, l, "ffn_norm.weight", D, &L->ffn_norm);
        char name[96];
        snprintf(name, sizeof name, "blk.%d.ffn_gate_inp.weight", l);
        const int ri = hfx_find(hm, name);
        if (!nw || ri < 0 || hfx_load(hm, ri)) return ri < 0 ? err("AWQ: no router %s", name) : -1;
        struct hfx_tensor *rt = &hm->t[ri];
        float **w = xmalloc((size_t)(2 * U + 1) * sizeof *w, "AWQ experts");
        int64_t *n = xmalloc((size_t)(2 * U + 1) * sizeof *n, "AWQ experts");
        if (!w || !n) {
            free(w), free(n);
            return -1;
        }
        int k = 0;
        for (int u = 0; u < U; u++)
            for (int j = 0; j < 2; j++) w[k] = un[u].t[j]->f32, n[k++] = un[u].t[j]->N;
        w[k] = rt->f32, n[k++] = rt->N; /* the router: its input / s, so its columns · s */
        awq_fold(nw, 1, w, n, k, D, sv);
        free(w), free(n);
        calib_f32_slot(&L->router, rt->f32, rt->K, rt->N);
        if (mc->shexp) {
            float *g = block_vec_f32(m, hm, l, "ffn_gate_inp_shexp.weight", D, &L->shexp_gate);
            if (!g) return -1;
            for (int64_t d = 0; d < D; d++) g[d] *= sv[d];
        }
        moe_unscale(mc, -1, false, sv);
        if (mc->shexp) moe_unscale(mc, mc->E, false, sv);
    }
    json_t *jd = json_array();
    json_object_set_new(jr, "down", jd);
    for (int u = 0; u < U; u++) {
        float *sv = mr->s_dn + (size_t)u * mr->max_h;
        const int r = un[u].q[2] && !un[u].few
                          ? moe_search(mc, un, U, u, o, mr->tmp, mr->xm, mr->wm, sv, &res)
                          : 1;
        if (r < 0) return -1;
        json_array_append_new(jd, r ? json_null() : json_real(res.ratio));
        if (r) continue;
        rep->n_groups++, rep->ratio_sum[3] += res.ratio, rep->ratio_n[3]++;
        struct hfx_tensor *up = un[u].t[1], *dn = un[u].t[2];
        awq_fold(up->f32, up->K, &dn->f32, &dn->N, 1, dn->K, sv);
        moe_unscale(mc, u, true, sv);
        un[u].down_done = true;
    }
    return 0;
}

/* steps 4 and 5 of a MoE block's FFN: every quantized unit linear clipped on its own rows
 * (weighted by p; not for an expert that fell back), rounded and swapped into the forward; a
 * float up whose rows down's fold scaled goes in as fp32 */
static int moe_round(const struct model *m, struct moe_run *mr, const struct awq_opts *o,
                     float *mv) {
    for (int u = 0; u < mr->U; u++)
        for (int k = 0; k < 3; k++) {
            struct moe_unit *un = &mr->un[u];
            struct hfx_tensor *t = un->t[k];
            if (!un->q[k]) {
                if (k == 1 && un->down_done) calib_f32_slot(un->slot[k], t->f32, t->K, t->N);
                continue;
            }
            if (o->clip && !un->few) {
                const int64_t T = moe_rows(&mr->mc, u, k == 2, true, mr->tmp);
                if (awq_search_clip(mr->tmp, T, t->K, t->f32, t->N, o, mv)) return -1;
                awq_apply_clip(t->f32, t->K, t->N, o->group, mv);
            }
            const struct rtn_opts ro = {.bits = o->bits, .group = o->group, .style = RTN_AWQ};
            if (rtn_quantize(t->f32, t->K, t->N, &ro, t->module, &t->q, &t->qbuf)) return -1;
            t->quantized = true;
            calib_swap_in(m, t, false, un->slot[k]);
        }
    return 0;
}

/* block l's units (export tensors, loaded; forward slots; token counts, the fallback) after the
 * probe; the report's counts */
static int moe_units(const struct model *m, struct hfx_model *hm, int l, struct layer *L,
                     struct moe_run *mr, int64_t T_all, bool quiet, struct awq_report *rep) {
    const int E = m->cfg.n_expert;
    for (int u = 0; u < mr->U; u++) {
        struct moe_unit *un = &mr->un[u];
        memset(un, 0, sizeof *un);
        for (int k = 0; k < 3; k++) {
            const int i = (l * mr->U + u) * 3 + k;
            un->t[k] = &hm->t[mr->xidx[i]];
            un->q[k] = mr->qx[i];
            un->slot[k] = u < E ? &mr->ex[u * 3 + k] : &L->shexp[k];
        }
        un->tokens = moe_rows(&mr->mc, u, false, false, NULL);
        if (u == E) continue;
        un->few = (double)un->tokens < CALIB_MOE_MIN_SHARE * (double)T_all;
        rep->moe_experts++;
        rep->moe_fallback += un->few;
        if (rep->moe_experts == 1 || un->tokens < rep->moe_min_tokens)
            rep->moe_min_tokens = un->tokens;
        rep->moe_max_tokens = LB_MAX(rep->moe_max_tokens, un->tokens);
        if (un->few && !quiet)
            fprintf(stderr,
                    "awq: %s: %lld routed tokens (< %.1f%% of %lld): round-to-nearest, "
                    "no search\n",
                    un->t[0]->module, (long long)un->tokens, 100 * CALIB_MOE_MIN_SHARE,
                    (long long)T_all);
    }
    return 0;
}

/* the MoE state of a run over m: each unit linear's export tensor and plan (max_k, max_n,
 * max_nk raised to theirs); 0 and nothing for a dense model */
static int moe_plan(const struct model *m, struct hfx_model *hm, const struct awq_opts *o,
                    bool quiet, struct moe_run *mr, int64_t *max_k, int64_t *max_n,
                    int64_t *max_nk) {
    const struct model_config *c = &m->cfg;
    memset(mr, 0, sizeof *mr);
    if (c->n_expert <= 0) return 0;
    mr->U = c->n_expert + (c->shared_hidden > 0);
    mr->max_h = LB_MAX(c->expert_hidden, c->shared_hidden);
    const size_t n = (size_t)c->n_layers * (size_t)mr->U * 3;
    mr->xidx = xmalloc(n * sizeof *mr->xidx, "experts");
    mr->qx = xcalloc(n, sizeof *mr->qx, "experts");
    if (!mr->xidx || !mr->qx) return -1;
    static const char *const kind[3] = {"gate", "up", "down"};
    for (size_t i = 0; i < n; i++) {
        const int l = (int)(i / (3 * (size_t)mr->U)), u = (int)(i / 3 % (size_t)mr->U),
                  k = (int)(i % 3);
        char name[96];
        if (u < c->n_expert)
            snprintf(name, sizeof name, "blk.%d.ffn_%s_exps.%d.weight", l, kind[k], u);
        else snprintf(name, sizeof name, "blk.%d.ffn_%s_shexp.weight", l, kind[k]);
        const int x = mr->xidx[i] = hfx_find(hm, name);
        if (x < 0 || !hm->t[x].linear) return err("AWQ: %s has no linear %s", m->path, name);
        struct hfx_tensor *t = &hm->t[x];
        mr->qx[i] = qformat_plan(!o->gptq_v2, t->K, t->N, o->bits, o->group, t->note,
                                 sizeof t->note) == QPLAN_GROUP;
        if (!mr->qx[i] && !quiet) fprintf(stderr, "awq: %s: %s\n", t->module, t->note);
        *max_k = LB_MAX(*max_k, t->K);
        *max_n = LB_MAX(*max_n, t->N);
        *max_nk = LB_MAX(*max_nk, t->K * t->N);
    }
    return 0;
}

/* the bytes moe_alloc takes for T calibration tokens: the routed arenas (n_expert_used rows a
 * token: inputs, down inputs, weights, tags), the shared expert's, one unit's gathered rows, the
 * scales */
static double moe_bytes(const struct model_config *c, int64_t T) {
    if (c->n_expert <= 0) return 0;
    const double Td = (double)T, D = c->dim, He = c->expert_hidden, Hs = c->shared_hidden,
                 U = c->n_expert + (Hs > 0);
    return 4.0 * c->n_expert_used * Td * (D + He + 2) + (Hs > 0 ? 4.0 * Td * (D + Hs + 1) : 0) +
           4.0 * Td * LB_MAX(D, LB_MAX(He, Hs)) + 4.0 * (4 * D + U * LB_MAX(He, Hs)) +
           (4.0 + sizeof(struct moe_unit)) * U * 3;
}

static int moe_alloc(const struct model *m, int64_t T, struct moe_run *mr) {
    const struct model_config *c = &m->cfg;
    if (c->n_expert <= 0) return 0;
    struct moe_cap *mc = &mr->mc;
    mc->E = c->n_expert, mc->D = c->dim, mc->He = c->expert_hidden, mc->Hs = c->shared_hidden;
    mc->cap = (int64_t)c->n_expert_used * T, mc->T = T;
    const int64_t mk = LB_MAX(mc->D, mr->max_h);
    mc->gu = xmalloc((size_t)(mc->cap * mc->D) * 4, "AWQ expert inputs");
    mc->dn = xmalloc((size_t)(mc->cap * mc->He) * 4, "AWQ expert inputs");
    mc->rw = xmalloc((size_t)mc->cap * 4, "AWQ router weights");
    mc->tag = xmalloc((size_t)mc->cap * sizeof *mc->tag, "AWQ expert rows");
    if (mc->Hs > 0) {
        mc->sgu = xmalloc((size_t)(T * mc->D) * 4, "AWQ shared expert inputs");
        mc->sdn = xmalloc((size_t)(T * mc->Hs) * 4, "AWQ shared expert inputs");
        mc->srw = xmalloc((size_t)T * 4, "AWQ shared expert gates");
        if (!mc->sgu || !mc->sdn || !mc->srw) return -1;
    }
    mr->un = xcalloc((size_t)mr->U, sizeof *mr->un, "experts");
    mr->ex = xcalloc((size_t)(3 * mc->E), sizeof *mr->ex, "experts");
    mr->tmp = xmalloc((size_t)(T * mk) * 4, "AWQ expert rows");
    mr->xm = xmalloc((size_t)mk * 4, "AWQ x_mean");
    mr->wm = xmalloc((size_t)mk * 4, "AWQ w_mean");
    mr->s_ffn = xmalloc((size_t)mc->D * 4, "AWQ scales");
    mr->s_dn = xmalloc((size_t)(mr->U * mr->max_h) * 4, "AWQ scales");
    return mc->gu && mc->dn && mc->rw && mc->tag && mr->un && mr->ex && mr->tmp && mr->xm &&
                   mr->wm && mr->s_ffn && mr->s_dn
               ? 0
               : -1;
}

static void moe_release(struct moe_run *mr) {
    struct moe_cap *mc = &mr->mc;
    free(mc->gu), free(mc->dn), free(mc->rw), free(mc->tag), free(mc->sgu), free(mc->sdn);
    free(mc->srw), free(mr->un), free(mr->xidx), free(mr->qx), free(mr->ex), free(mr->tmp);
    free(mr->xm), free(mr->wm), free(mr->s_ffn), free(mr->s_dn);
    memset(mr, 0, sizeof *mr);
}

/* a MoE block before its probe: its unit linears loaded, its expert slots the run's own (for
 * the swaps), the capture emptied and pointed at them */
static int moe_begin(const struct model *m, struct hfx_model *hm, int l, struct layer *L,
                     struct moe_run *mr, const struct fwd_state *fs) {
    struct moe_cap *mc = &mr->mc;
    for (int i = 0; i < 3 * mr->U; i++)
        if (hfx_load(hm, mr->xidx[l * 3 * mr->U + i])) return -1;
    memcpy(mr->ex, m->layers[l].ex, (size_t)(3 * mc->E) * sizeof *mr->ex);
    L->ex = mr->ex;
    mc->fs = fs;
    mc->ex = mr->ex;
    mc->shexp = mc->Hs > 0 ? L->shexp : NULL;
    mc->n_gu = mc->n_dn = mc->n_sgu = mc->n_sdn = 0;
    return 0;
}

/* the report's counters as a resume state's fields, and back */
static json_t *awq_fields(const struct awq_report *rep, const json_t *ratios) {
    json_t *f = json_pack("{s:f, s:f, s:f, s:i, s:i, s:[f,f,f,f], s:[i,i,i,i], s:O}",
                          "forward_seconds", rep->forward_seconds, "search_seconds",
                          rep->search_seconds, "clip_seconds", rep->clip_seconds, "n_forward",
                          rep->n_forward, "n_groups", rep->n_groups, "ratio_sum",
                          rep->ratio_sum[0], rep->ratio_sum[1], rep->ratio_sum[2],
                          rep->ratio_sum[3], "ratio_n", rep->ratio_n[0], rep->ratio_n[1],
                          rep->ratio_n[2], rep->ratio_n[3], "ratios", ratios);
    if (f && rep->moe_experts &&
        json_object_update_new(f, json_pack("{s:i, s:i, s:I, s:I}", "moe_experts", rep->moe_experts,
                                            "moe_fallback", rep->moe_fallback, "moe_min_tokens",
                                            (json_int_t)rep->moe_min_tokens, "moe_max_tokens",
                                            (json_int_t)rep->moe_max_tokens))) {
        json_decref(f);
        f = NULL;
    }
    if (!f) err("out of memory");
    return f;
}

static int awq_unfields(const json_t *f, struct awq_report *rep, json_t *ratios) {
    const json_t *rs = json_object_get(f, "ratio_sum"), *rn = json_object_get(f, "ratio_n"),
                 *ra = json_object_get(f, "ratios");
    if (json_array_size(rs) != 4 || json_array_size(rn) != 4 || !json_is_array(ra))
        return err("AWQ resume: the state's fields are not this version's");
    rep->forward_seconds = json_number_value(json_object_get(f, "forward_seconds"));
    rep->search_seconds = json_number_value(json_object_get(f, "search_seconds"));
    rep->clip_seconds = json_number_value(json_object_get(f, "clip_seconds"));
    rep->n_forward = (int)json_integer_value(json_object_get(f, "n_forward"));
    rep->n_groups = (int)json_integer_value(json_object_get(f, "n_groups"));
    rep->moe_experts = (int)json_integer_value(json_object_get(f, "moe_experts"));
    rep->moe_fallback = (int)json_integer_value(json_object_get(f, "moe_fallback"));
    rep->moe_min_tokens = json_integer_value(json_object_get(f, "moe_min_tokens"));
    rep->moe_max_tokens = json_integer_value(json_object_get(f, "moe_max_tokens"));
    for (int g = 0; g < 4; g++) {
        rep->ratio_sum[g] = json_number_value(json_array_get(rs, (size_t)g));
        rep->ratio_n[g] = (int)json_integer_value(json_array_get(rn, (size_t)g));
    }
    return json_array_extend(ratios, (json_t *)ra) ? err("out of memory") : 0;
}

/* resume (quant/resume.h): blocks 0..l_done re-written from their files, the stream and the
 * report as they were after block l_done; *l_start the first block to quantize */
static int awq_resume(struct qresume *rs, const struct model *m, const char *src_path,
                      const struct awq_opts *o, const struct calib_set *cs, bool quiet,
                      struct hfx_model *hm, struct calib_stream *cst, struct awq_report *rep,
                      json_t *ratios, int *l_start) {
    *l_start = 0;
    char *kt = xstrfmt("%d %lld %d %d %d %.17g %d %d|%s|%d x %d", o->bits, (long long)o->group,
                       o->n_grid, o->duo_scaling, o->clip, o->max_shrink, o->n_sample_token,
                       o->gptq_v2, cs->tokens_sha256, cs->n_samples, cs->seqlen);
    int l_done = -1;
    json_t *f = NULL;
    const int rc = !kt ? -1
                       : qresume_open(rs, o->resume_dir, "awq", src_path, kt, m->cfg.n_layers,
                                      quiet, &l_done, &f);
    free(kt);
    if (rc || l_done < 0) return rc;
    int ret = awq_unfields(f, rep, ratios);
    json_decref(f);
    for (int l = 0; !ret && l <= l_done; l++)
        ret = qresume_get_block(rs, l, hm) || hfx_emit_block(hm, l) ? -1 : 0;
    if (!ret) ret = calib_stream_restore(cst, rs, l_done);
    if (ret) {
        qresume_remove(rs); /* the next attempt starts anew */
        return -1;
    }
    *l_start = rep->resumed_blocks = l_done + 1;
    return 0;
}

/* the checkpoint after block l: its tensors (quantized linears, folded norms, scaled float
 * rows), the stream, then the commit */
static int awq_checkpoint(const struct qresume *rs, int l, const struct hfx_model *hm,
                          const struct calib_stream *cst, const struct awq_report *rep,
                          const json_t *ratios) {
    if (!rs->dir) return 0;
    json_t *f = awq_fields(rep, ratios);
    const int rc = !f || qresume_put_block(rs, l, hm) || calib_stream_save(cst, rs) ||
                   qresume_commit(rs, l, f);
    json_decref(f);
    return rc ? -1 : 0;
}

int awq_quantize_model(const struct model *m, const char *src_path, const struct awq_opts *o,
                       const struct calib_set *cs, const char *out, bool quiet,
                       struct hfx_stats *st, struct awq_report *rep) {
    memset(rep, 0, sizeof *rep);
    const double t0 = now_s();
    const int n_layers = m->cfg.n_layers;
    const int64_t T = (int64_t)cs->n_samples * cs->seqlen;
    struct hfx_model hm = {0};
    struct model fm = *m; /* the forward's view: m's tensors, with finished blocks swapped in */
    struct calib_stream cst;
    struct capture cap;
    struct qresume rs = {0};
    int *idx = NULL, ret = -1;
    bool *qz = NULL, fwd_ok = false;
    float *sc[N_IN] = {0}, *mv = NULL;
    json_t *ratios = json_array(), *extra = json_object();
    struct moe_run mr;
    memset(&cap, 0, sizeof cap);
    memset(&mr, 0, sizeof mr);
    fm.layers = NULL;
    if (o->bits != 4 && !o->gptq_v2) {
        err("AWQ: the GEMM layout holds 4-bit weights only (got %d; knob format gptq_v2 writes "
            "other widths)", o->bits);
        goto out;
    }
    if (hfx_collect(&hm, m, src_path, true)) goto out;
    fm.layers = xmalloc((size_t)n_layers * sizeof *fm.layers, "layers");
    idx = xmalloc((size_t)n_layers * N_LIN * sizeof *idx, "layers");
    qz = xcalloc((size_t)n_layers * N_LIN, sizeof *qz, "layers");
    if (!fm.layers || !idx || !qz || !ratios) goto out;
    memcpy(fm.layers, m->layers, (size_t)n_layers * sizeof *fm.layers);
    int64_t max_k = 1, max_n = 1, max_nk = 1;
    for (int l = 0; l < n_layers; l++)
        for (int i = 0; i < N_LIN; i++) {
            char name[96];
            if (m->cfg.n_expert > 0 && i >= LIN_GATE) { /* the experts instead (moe_plan) */
                idx[l * N_LIN + i] = -1;
                continue;
            }
            lin_name(name, sizeof name, l, (enum lin)i);
            const int x = idx[l * N_LIN + i] = hfx_find(&hm, name);
            if (x < 0 || !hm.t[x].linear) {
                err("AWQ: %s has no linear %s", m->path, name);
                goto out;
            }
            struct hfx_tensor *t = &hm.t[x];
            qz[l * N_LIN + i] = qformat_plan(!o->gptq_v2, t->K, t->N, o->bits, o->group, t->note,
                                             sizeof t->note) == QPLAN_GROUP;
            if (!qz[l * N_LIN + i] && !quiet) fprintf(stderr, "awq: %s: %s\n", t->module, t->note);
            max_k = LB_MAX(max_k, t->K);
            max_n = LB_MAX(max_n, t->N);
            max_nk = LB_MAX(max_nk, t->K * t->N);
        }
    if (moe_plan(m, &hm, o, quiet, &mr, &max_k, &max_n, &max_nk)) goto out;
    int64_t in_k[N_IN]; /* 0: not recorded (a MoE block's FFN: moe_cap) */
    for (int s = 0; s < N_IN; s++)
        in_k[s] = mr.U && s >= FWD_GATE_UP ? 0 : lin_dim(&m->cfg, lin_info[lin_anchor(s)].in);
    { /* the memory plan, refused before any work: the four recorded inputs of a block, the
       * scale search's scratch (the float64 Gram matrix beside its fp32 panels, a linear's D,
       * the loss rows), the clip search's, one block in fp32, the calibration stream (unless it
       * spills); a MoE block's expert inputs (moe_bytes) */
        double blk = 0, in = 0;
        for (int l = 0; l < n_layers; l++) blk = LB_MAX(blk, (double)hfx_block_bytes(&hm, l));
        for (int s = 0; s < N_IN; s++) in += (double)in_k[s];
        const double Kd = (double)max_k, Nd = (double)max_n,
                     search = 8.0 * Kd * Kd + 2.0 * Kd * (Kd + GRAM_BLOCK) + 4.0 * Nd * Kd +
                              4.0 * LOSS_CHUNK * LB_MAX(Nd, Kd),
                     clip = 8.0 * Kd * (double)LB_MAX(o->group, o->n_sample_token) +
                            4.0 * (double)max_nk;
        const double need = 4.0 * (double)T * in + LB_MAX(search, clip) + blk +
                            4.0 * N_IN * (double)max_k + (double)calib_stream_bytes(m, cs, false) +
                            moe_bytes(&m->cfg, T);
        char what[4300];
        snprintf(what, sizeof what, "AWQ on %s (a block's inputs, one block in fp32, %d x %d "
                 "calibration tokens)", m->path, cs->n_samples, cs->seqlen);
        if (need > (double)SIZE_MAX / 2 || mem_check((size_t)need, what)) goto out;
    }
    cap.cap_rows = T;
    for (int s = 0; s < N_IN; s++) {
        cap.K[s] = in_k[s];
        if ((in_k[s] &&
             !(cap.buf[s] = xmalloc((size_t)(T * in_k[s]) * sizeof(float), "AWQ inputs"))) ||
            !(sc[s] = xmalloc((size_t)max_k * sizeof(float), "AWQ scales")))
            goto out;
    }
    if (moe_alloc(m, T, &mr)) goto out;
    cap.moe = mr.U ? &mr.mc : NULL;
    mv = xmalloc((size_t)max_nk * sizeof *mv, "AWQ clip"); /* N·K/g <= N·K */
    if (!mv || calib_stream_init(&cst, &fm, cs, false, out)) goto out;
    fwd_ok = true;
    cst.fs.mm_hook_ctx = &cap;
    /* the checkpoint is written as the blocks are done: one block in fp32 at a time */
    const struct gptq_write_opts wo = {.bits = o->bits, .group = o->group, .sym = false,
                                       .v2 = true, .quantizer = "awq", .extra = extra};
    if (!extra || (o->gptq_v2 ? gptq_write_begin(&hm, &wo, out, st)
                              : awq_write_begin(&hm, o->group, out, st)))
        goto out;
    int l_start = 0;
    if (awq_resume(&rs, m, src_path, o, cs, quiet, &hm, &cst, rep, ratios, &l_start)) goto out;

    for (int l = l_start; l < n_layers; l++) {
        const double tl = now_s();
        const bool *q = qz + l * N_LIN;
        struct hfx_tensor *lt[N_LIN];
        for (int i = 0; i < N_LIN; i++)
            lt[i] = idx[l * N_LIN + i] >= 0 ? &hm.t[idx[l * N_LIN + i]] : NULL;
        json_t *jr = json_object();
        json_array_append_new(ratios, jr);
        bool any = false;
        for (int i = 0; i < N_LIN; i++) any |= q[i];
        for (int i = 0; i < 3 * mr.U; i++) any |= mr.qx[l * 3 * mr.U + i];
        if (!any) { /* nothing to quantize: the block's outputs as they are */
            cst.fs.mm_hook = NULL;
            if (calib_stream_finish(&cst, l) ||
                awq_checkpoint(&rs, l, &hm, &cst, rep, ratios) || hfx_emit_block(&hm, l))
                goto out;
            continue;
        }
        for (int i = 0; i < N_LIN; i++)
            if (lt[i] && hfx_load(&hm, idx[l * N_LIN + i])) goto out;
        /* 1. the inputs of block l (blocks < l already quantized and folded); a MoE block's
         * through FWD_OUT, its experts shown */
        struct layer *L = &fm.layers[l];
        if (mr.U && moe_begin(m, &hm, l, L, &mr, &cst.fs)) goto out;
        for (int s = 0; s < N_IN; s++) cap.anchor[s] = in_k[s] ? &L->lin[lin_anchor(s)] : NULL;
        for (int s = 0; s < N_IN; s++) cap.rows[s] = 0;
        const double tf = now_s();
        cst.fs.mm_hook = capture_hook;
        cst.fs.hook_experts = mr.U > 0;
        const int prc = calib_stream_probe(&cst, l, mr.U ? FWD_OUT : FWD_DOWN);
        cst.fs.hook_experts = false;
        if (prc || (mr.U && moe_units(m, &hm, l, L, &mr, T, quiet, rep))) goto out;
        rep->n_forward += cs->n_samples;
        rep->forward_seconds += now_s() - tf;
        /* 2. the scale searches, all on the block's float weights */
        bool done[N_IN] = {false};
        const double ts = now_s();
        if (awq_block_search(&cap, lt, q, o, T, sc, jr, done, rep)) goto out;
        rep->search_seconds += now_s() - ts;
        /* 3. fold: previous op / s, the group's columns · s, the recorded input / s */
        if (awq_block_fold(m, &hm, l, L, &cap, lt, sc, done, T) ||
            (mr.U && moe_search_fold(m, &hm, l, L, &mr, o, jr, rep)))
            goto out;
        /* 4. clip (not q, k), 5. round, and swap the block into the forward */
        const double tc = now_s();
        if (awq_block_round(m, L, &cap, lt, q, o, T, mv) || (mr.U && moe_round(m, &mr, o, mv)))
            goto out;
        rep->clip_seconds += now_s() - tc;
        /* the finished block's outputs: block l+1's inputs */
        const double tb = now_s();
        cst.fs.mm_hook = NULL;
        if (calib_stream_finish(&cst, l)) goto out;
        rep->forward_seconds += now_s() - tb;
        /* the resume state, then the block into the checkpoint; the forward will not run it
         * again */
        if (awq_checkpoint(&rs, l, &hm, &cst, rep, ratios) || hfx_emit_block(&hm, l)) goto out;
        fm.layers[l] = m->layers[l];
        if (!quiet) {
            fprintf(stderr, "awq: block %d/%d: ratio", l + 1, n_layers);
            for (int g = 0; g < N_IN; g++) {
                const json_t *r = json_object_get(jr, groups[g].name);
                if (json_is_real(r)) fprintf(stderr, " %s %.2f", groups[g].name, json_real_value(r));
                else fprintf(stderr, " %s -", groups[g].name);
            }
            fprintf(stderr, " (%.2f s)\n", now_s() - tl);
        }
    }
    rep->seconds = now_s() - t0;
    json_t *ex = json_pack("{s:s, s:s, s:s, s:i, s:i, s:I, s:b, s:i, s:b, s:b, s:f, s:i, s:O}",
                              "calib_set", cs->path, "calib_sha256", cs->file_sha256,
                              "calib_tokens_sha256", cs->tokens_sha256, "calib_nsamples",
                              cs->n_samples, "calib_seqlen", cs->seqlen, "seed",
                              (json_int_t)cs->seed, "calib_bos", cs->bos, "n_grid", o->n_grid,
                              "duo_scaling", o->duo_scaling, "clip", o->clip, "max_shrink",
                              o->max_shrink, "n_sample_token", o->n_sample_token, "ratios",
                              ratios);
    json_object_update(extra, ex);
    json_decref(ex);
    if (o->gptq_v2) ret = gptq_write(&hm, &wo, out, st);
    else ret = awq_write(&hm, o->group, "awq", extra, out, st);
    if (!ret) qresume_remove(&rs);
out:
    qresume_release(&rs);
    json_decref(extra);
    if (fwd_ok) calib_stream_release(&cst);
    for (int s = 0; s < N_IN; s++) {
        free(cap.buf[s]);
        free(sc[s]);
    }
    free(mv);
    moe_release(&mr);
    free(idx);
    free(qz);
    free(fm.layers);
    json_decref(ratios);
    hfx_release(&hm);
    return ret;
}

/* ===== the registry row ===== */

/* the knobs (awq.h) into o; -1 with a message naming the recipe and the knob */
static int awq_knobs(const struct recipe *r, struct awq_opts *o, uint64_t *seed) {
    const struct awq_opts d = AWQ_OPTS_DEFAULT;
    *o = d;
    *seed = 0;
    json_t *kn;
    if (recipe_knobs(r, &kn)) return -1;
    if (!kn) return 0;
    const char *key;
    json_t *v;
    int ret = 0;
    json_object_foreach(kn, key, v) {
        const double x = json_number_value(v);
        if (!strcmp(key, "duo_scaling") && json_is_boolean(v)) {
            o->duo_scaling = json_is_true(v);
        } else if (!strcmp(key, "clip") && json_is_boolean(v)) {
            o->clip = json_is_true(v);
        } else if (!strcmp(key, "n_grid") && json_is_integer(v) && x >= 1 && x <= AWQ_MAX_GRID) {
            o->n_grid = (int)x;
        } else if (!strcmp(key, "max_shrink") && json_is_number(v) && x > 0 && x < 1) {
            o->max_shrink = x;
        } else if (!strcmp(key, "n_sample_token") && json_is_integer(v) && x >= 1 && x <= 1e9) {
            o->n_sample_token = (int)x;
        } else if (!strcmp(key, "seed") && json_is_integer(v) && json_integer_value(v) >= 0) {
            *seed = (uint64_t)json_integer_value(v);
        } else if (!strcmp(key, "format") && json_is_string(v) &&
                   (!strcmp(json_string_value(v), "awq") ||
                    !strcmp(json_string_value(v), "gptq_v2"))) {
            o->gptq_v2 = !strcmp(json_string_value(v), "gptq_v2");
        } else {
            ret = err("recipe '%s': awq knob '%s' (awq knows n_grid: 1..%d, duo_scaling: bool, "
                      "clip: bool, max_shrink: (0, 1), n_sample_token: integer >= 1, seed: "
                      "integer >= 0, format: \"awq\" or \"gptq_v2\")", r->id, key, AWQ_MAX_GRID);
            break;
        }
    }
    json_decref(kn);
    return ret;
}

/* the bits of r's weight dtype (int2/int3/int4/int8), 0 for others */
static int awq_bits(const struct recipe *r) {
    static const char *const names[] = {"int2", "int3", "int4", "int8"};
    static const int bits[] = {2, 3, 4, 8};
    for (int i = 0; i < 4; i++)
        if (!strcmp(r->weight_dtype, names[i])) return bits[i];
    return 0;
}

int awq_recipe_check(const struct recipe *r) {
    struct awq_opts o;
    uint64_t seed;
    if (awq_knobs(r, &o, &seed)) return -1;
    const int b = awq_bits(r);
    if (!o.gptq_v2 && b != 4)
        return err("recipe '%s': algorithm awq writes the AWQ GEMM layout, which holds int4 only "
                   "(not %s; knob \"format\": \"gptq_v2\" writes int2/int3/int4/int8)",
                   r->id, r->weight_dtype);
    if (!b)
        return err("recipe '%s': awq weight_dtype %s (int2, int3, int4 or int8)", r->id,
                   r->weight_dtype);
    if (!isnan(r->bits) && r->bits != b)
        return err("recipe '%s': bits %g does not match weight_dtype %s", r->id, r->bits,
                   r->weight_dtype);
    if (r->sym == 1)
        return err("recipe '%s': AWQ is asymmetric (zero_point true, what the GEMM kernels "
                   "take): leave sym empty or 0", r->id);
    if (r->double_quant == 1)
        return err("recipe '%s': algorithm awq has no double quantization (that is bnb's)", r->id);
    if (!strcmp(r->compute_dtype, "int8"))
        return err("recipe '%s': compute_dtype int8 is not available for awq weights (fp32, fp16 "
                   "or bf16 activations)", r->id);
    const int64_t g = r->has_group_size ? r->group_size : 128;
    if (g != 32 && g != 64 && g != 128)
        return err("recipe '%s': group_size %lld (awq groups are 32, 64 or 128; AutoAWQ has no "
                   "per-channel mode)", r->id, (long long)g);
    if (!r->calib_set[0])
        return err("recipe '%s': algorithm awq needs calib_set (a file of "
                   "$LOWBIT_DATA/datasets/calibration/, e.g. groups_merged, or a path)", r->id);
    return 0;
}

int awq_recipe_quantize(const struct quant_job *j, struct quant_artifact *a) {
    const struct recipe *r = j->r;
    struct awq_opts o;
    uint64_t seed;
    if (awq_knobs(r, &o, &seed)) return -1;
    o.group = r->has_group_size ? r->group_size : 128;
    o.bits = awq_bits(r);
    o.resume_dir = j->resume_dir;
    struct calib_set cs;
    if (calib_load_job(&cs, "awq", j, seed)) return -1;
    snprintf(a->path, sizeof a->path, "%s/model", j->out_dir);
    struct hfx_stats st;
    struct awq_report rep;
    int ret = awq_quantize_model(j->m, j->src_path, &o, &cs, a->path, j->quiet, &st, &rep);
    if (!ret) {
        hf_recipe_artifact(j, a, o.gptq_v2 ? "gptq" : "awq", &st);
        quant_prov(a, "quant.awq", "%d-bit%s, group %lld, zero_point, n_grid %d, duo_scaling %s, "
                   "clip %s (max_shrink %g, n_sample_token %d), loss on the group's linear "
                   "outputs, true-sequential", o.bits,
                   o.gptq_v2 ? " (GPTQ v2 layout)" : " (AWQ GEMM)", (long long)o.group, o.n_grid,
                   o.duo_scaling ? "true" : "false", o.clip ? "true" : "false", o.max_shrink,
                   o.n_sample_token);
        quant_prov(a, "quant.knobs", "%s", r->knobs[0] ? r->knobs : "{}");
        quant_prov(a, "quant.calib_file", "%s (sha256 %s)", cs.path, cs.file_sha256);
        quant_prov(a, "quant.calib_windows", "%d x %d tokens, seed %llu, %s, splitmix64 offsets; "
                   "tokens sha256 %s", cs.n_samples, cs.seqlen, (unsigned long long)seed,
                   cs.bos ? "BOS + text" : "text only (no BOS)", cs.tokens_sha256);
        char sum[400];
        size_t n = 0;
        static const char *const kind[N_IN] = {"qkv", "o", "gate_up", "down"};
        for (int g = 0; g < N_IN && n < sizeof sum; g++)
            n += (size_t)(rep.ratio_n[g]
                              ? snprintf(sum + n, sizeof sum - n, "%s%s %.3f (%d)", g ? ", " : "",
                                         kind[g], rep.ratio_sum[g] / rep.ratio_n[g],
                                         rep.ratio_n[g])
                              : snprintf(sum + n, sizeof sum - n, "%s%s none", g ? ", " : "",
                                         kind[g]));
        quant_prov(a, "quant.awq_ratios", "mean chosen ratio (groups): %s; per block in "
                   "config.json quantization_config.lowbit.ratios", sum);
        quant_prov(a, "quant.awq_seconds", "%.3f (forward %.3f, %d window passes; scale search "
                   "%.3f; clip + round %.3f)", rep.seconds, rep.forward_seconds, rep.n_forward,
                   rep.search_seconds, rep.clip_seconds);
        quant_prov(a, "quant.awq_peak_rss_mb", "%.1f", calib_peak_rss_mb());
        if (rep.resumed_blocks)
            quant_prov(a, "quant.awq_resumed_blocks", "%d (from %s)", rep.resumed_blocks,
                       j->resume_dir);
        if (rep.moe_experts)
            quant_prov(a, "quant.awq_moe",
                       "each expert's scale and clip searches on the tokens "
                       "routed to it, weighted by the router's weight; one gate/up scale for all "
                       "experts folded into the shared norm, the router compensated (kept in "
                       "float); %d of %d experts (blocks x experts) saw < %.1f%% of the %lld "
                       "calibration tokens and were rounded to nearest (no search, no clip); "
                       "tokens per expert %lld..%lld",
                       rep.moe_fallback, rep.moe_experts, 100 * CALIB_MOE_MIN_SHARE,
                       (long long)cs.n_samples * cs.seqlen, (long long)rep.moe_min_tokens,
                       (long long)rep.moe_max_tokens);
    }
    calib_release(&cs);
    return ret;
}
