/* quant/autoround.c: AutoRound / SignRound: the fake quantizer and its STE chain, block-wise
 * tuning with SignSGD, the model pass and the GPTQ / GGUF writers (algorithm, sources, what we
 * changed and the tolerance we promise: quant/autoround.h). */
#include "quant/autoround.h"

#include <float.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/gguf.h"
#include "kernels/quants.h"
#include "quant/calib.h"
#include "quant/qformat.h"
#include "quant/quant.h"
#include "quant/resume.h"

#define N_LIN LIN_COUNT /* a block's linears: eval/model.h's enum lin */

double autoround_auto_lr(int iters, int bits) {
    if (iters <= 0) return 5e-3;
    return iters >= 1000 && bits <= 3 ? 2.0 / iters : 1.0 / iters;
}

/* ===== the fake quantizer ===== */

static float fp16r(float x) { return lb_fp16_to_f32(lb_f32_to_fp16(x)); }

/* one group's quantizer parameters for the current min/max_scale */
struct gparam {
    float s;        /* the scale, an fp16 value (sym: signed) */
    float zp;       /* asym: the zero point; sym: 0 */
    float wn;       /* asym: wmin·min_scale */
    bool s_clamped; /* |s| raised to the threshold: no gradient to the scales through s */
    bool z_clamped; /* zp clamped to [zero_min, maxq]: none through zp */
    int dom;        /* sym: 1 the negative side sets max_v, 0 the positive, 2 a tie */
};

static void group_param(const struct autoround_opts *o, float wmin, float wmax, float mins,
                        float maxs, struct gparam *p) {
    const float thresh = fp16r(1e-5f);
    memset(p, 0, sizeof *p);
    if (o->sym) {
        const float maxq = (float)(1 << (o->bits - 1));
        const float a = -(wmin * mins), c = wmax * maxs;
        float mv;
        if (c < a) mv = a, p->dom = 1;
        else mv = -c, p->dom = c == a ? 2 : 0;
        float s = fp16r(mv / maxq);
        if (s < 0) {
            if (s > -thresh) s = -thresh, p->s_clamped = true;
        } else if (s < thresh) {
            s = thresh, p->s_clamped = true;
        }
        p->s = s;
        return;
    }
    const float maxq = (float)((1 << o->bits) - 1);
    const float wn = wmin * mins, wx = wmax * maxs;
    float s = fp16r((wx - wn) / maxq);
    if (s < thresh) s = thresh, p->s_clamped = true;
    float zp = rintf(-wn / s);
    if (zp < (float)o->zero_min) zp = (float)o->zero_min, p->z_clamped = true;
    if (zp > maxq) zp = maxq, p->z_clamped = true;
    p->s = s, p->zp = zp, p->wn = wn;
}

/* the group range of group gi in a row */
static inline int64_t g_end(const struct autoround_linear *L, int64_t gi) {
    return LB_MIN(L->K, (gi + 1) * L->g);
}

int autoround_linear_init(struct autoround_linear *L, const float *w, int64_t K, int64_t N,
                          int64_t group) {
    memset(L, 0, sizeof *L);
    L->w = w, L->K = K, L->N = N;
    L->g = group <= 0 || group >= K ? K : group;
    L->ng = (K + L->g - 1) / L->g;
    const size_t nk = (size_t)(N * K), ng = (size_t)(N * L->ng);
    float **big[] = {&L->v, &L->best_v, &L->wq, &L->gwq, &L->gv};
    float **small[] = {&L->min_scale, &L->max_scale, &L->wmin, &L->wmax, &L->best_min,
                       &L->best_max, &L->gmin, &L->gmax};
    for (size_t i = 0; i < LB_ARRAY_LEN(big); i++)
        if (!(*big[i] = xcalloc(nk, sizeof(float), "AutoRound rounding offsets"))) goto fail;
    for (size_t i = 0; i < LB_ARRAY_LEN(small); i++)
        if (!(*small[i] = xcalloc(ng, sizeof(float), "AutoRound scales"))) goto fail;
    for (int64_t n = 0; n < N; n++)
        for (int64_t gi = 0; gi < L->ng; gi++) {
            float mn = 0, mx = 0;
            for (int64_t k = gi * L->g; k < g_end(L, gi); k++) {
                mn = fminf(mn, w[n * K + k]);
                mx = fmaxf(mx, w[n * K + k]);
            }
            L->wmin[n * L->ng + gi] = mn, L->wmax[n * L->ng + gi] = mx;
            L->min_scale[n * L->ng + gi] = L->max_scale[n * L->ng + gi] = 1.0f;
        }
    return 0;
fail:
    autoround_linear_release(L);
    return -1;
}

void autoround_linear_release(struct autoround_linear *L) {
    float *b[] = {L->v, L->best_v, L->wq, L->gwq, L->gv, L->min_scale, L->max_scale, L->wmin,
                  L->wmax, L->best_min, L->best_max, L->gmin, L->gmax};
    for (size_t i = 0; i < LB_ARRAY_LEN(b); i++) free(b[i]);
    memset(L, 0, sizeof *L);
}

static inline float clamp01(float x) { return lb_minf(lb_maxf(x, 0.0f), 1.0f); }

/* ŵ of row n (into wq), and optionally its codes (code: the unsigned stored value, ŵ =
 * d·(code − z)) and group parameters d, z [N][ng]; autoround_chain repeats the element formula
 * with its clamp masks */
static void row_qdq(const struct autoround_linear *L, const struct autoround_opts *o, int64_t n,
                    float *wq, uint8_t *code, float *d, float *z) {
    const float *w = L->w + n * L->K, *v = L->v + n * L->K;
    for (int64_t gi = 0; gi < L->ng; gi++) {
        struct gparam p;
        const int64_t j = n * L->ng + gi;
        group_param(o, L->wmin[j], L->wmax[j], L->min_scale[j], L->max_scale[j], &p);
        if (d) d[j] = p.s, z[j] = o->sym ? (float)(1 << (o->bits - 1)) : p.zp;
        if (o->sym) {
            const float lo = -(float)(1 << (o->bits - 1)), hi = -lo - 1;
            for (int64_t k = gi * L->g; k < g_end(L, gi); k++) {
                const float q = lb_minf(lb_maxf(rintf(w[k] / p.s + v[k]), lo), hi);
                if (wq) wq[k] = p.s * q;
                if (code) code[k] = (uint8_t)(int)(q - lo);
            }
        } else {
            const float hi = (float)((1 << o->bits) - 1);
            for (int64_t k = gi * L->g; k < g_end(L, gi); k++) {
                const float q = lb_minf(lb_maxf(rintf(w[k] / p.s + v[k]) + p.zp, 0.0f), hi);
                if (wq) wq[k] = p.s * (q - p.zp);
                if (code) code[k] = (uint8_t)(int)q;
            }
        }
    }
}

void autoround_qdq(struct autoround_linear *L, const struct autoround_opts *o) {
    const int64_t nsc = L->N * L->ng;
    for (int64_t j = 0; j < nsc; j++) {
        L->min_scale[j] = clamp01(L->min_scale[j]);
        L->max_scale[j] = clamp01(L->max_scale[j]);
    }
#pragma omp parallel for schedule(static) if (L->N * L->K >= (1 << 16))
    for (int64_t n = 0; n < L->N; n++) row_qdq(L, o, n, L->wq + n * L->K, NULL, NULL, NULL);
}

void autoround_chain(struct autoround_linear *L, const struct autoround_opts *o) {
#pragma omp parallel for schedule(static) if (L->N * L->K >= (1 << 16))
    for (int64_t n = 0; n < L->N; n++) {
        const float *w = L->w + n * L->K, *v = L->v + n * L->K, *gq = L->gwq + n * L->K;
        float *gv = L->gv + n * L->K;
        for (int64_t gi = 0; gi < L->ng; gi++) {
            const int64_t j = n * L->ng + gi;
            struct gparam p;
            group_param(o, L->wmin[j], L->wmax[j], L->min_scale[j], L->max_scale[j], &p);
            double A = 0, Z = 0; /* ∂L/∂s holding zp; ∂L/∂zp */
            if (o->sym) {
                const float lo = -(float)(1 << (o->bits - 1)), hi = -lo - 1;
                for (int64_t k = gi * L->g; k < g_end(L, gi); k++) {
                    const float r = rintf(w[k] / p.s + v[k]);
                    const bool in = r >= lo && r <= hi;
                    const float q = lb_minf(lb_maxf(r, lo), hi);
                    gv[k] = in ? gq[k] * p.s : 0.0f;
                    A += (double)gq[k] * (q - (in ? w[k] / p.s : 0.0f));
                }
                double gmin = 0, gmax = 0;
                if (!p.s_clamped) {
                    const double dmv = A / -lo; /* ∂L/∂max_v */
                    const float wmin = L->wmin[j], wmax = L->wmax[j];
                    if (p.dom == 1) gmin = -dmv * wmin;
                    else if (p.dom == 0) gmax = -dmv * wmax;
                    else gmin = 0.5 * dmv * wmin, gmax = -0.5 * dmv * wmax;
                }
                L->gmin[j] = (float)gmin, L->gmax[j] = (float)gmax;
            } else {
                const float hi = (float)((1 << o->bits) - 1);
                for (int64_t k = gi * L->g; k < g_end(L, gi); k++) {
                    const float r = rintf(w[k] / p.s + v[k]) + p.zp;
                    const bool in = r >= 0 && r <= hi;
                    const float q = lb_minf(lb_maxf(r, 0.0f), hi);
                    gv[k] = in ? gq[k] * p.s : 0.0f;
                    A += (double)gq[k] * ((q - p.zp) - (in ? w[k] / p.s : 0.0f));
                    if (!in) Z -= (double)gq[k] * p.s;
                }
                const double s = p.s, maxq = hi;
                double ds = A, dwn = 0, dwx = 0;
                if (!p.z_clamped) { /* zp = round(−wn/s): ∂zp/∂wn = −1/s, ∂zp/∂s = wn/s² */
                    ds += Z * p.wn / (s * s);
                    dwn = -Z / s;
                }
                if (!p.s_clamped) { /* s = (wx − wn)/maxq */
                    dwn -= ds / maxq;
                    dwx = ds / maxq;
                }
                L->gmin[j] = (float)(dwn * L->wmin[j]);
                L->gmax[j] = (float)(dwx * L->wmax[j]);
            }
        }
    }
}

int autoround_codes(struct autoround_linear *L, const struct autoround_opts *o, uint8_t *codes,
                    float *d, float *z) {
    for (int64_t j = 0; j < L->N * L->ng; j++) {
        L->min_scale[j] = clamp01(L->min_scale[j]);
        L->max_scale[j] = clamp01(L->max_scale[j]);
    }
    for (int64_t n = 0; n < L->N; n++) {
        row_qdq(L, o, n, L->wq + n * L->K, codes + n * L->K, d, z);
        for (int64_t gi = 0; gi < L->ng; gi++)
            if (!isfinite(d[n * L->ng + gi]))
                return err("AutoRound: row %lld needs a scale beyond fp16 (weights must be "
                           "finite and below ~5e5)", (long long)n);
    }
    return 0;
}

/* ===== one block ===== */

static inline float signf(float x) { return (float)((x > 0) - (x < 0)); }

/* a cyclic shuffled sampler (auto-round IndexSampler) */
struct sampler {
    int *idx, n, bs, pos;
    uint64_t *rng;
};
static void sampler_shuffle(struct sampler *s) {
    for (int i = s->n - 1; i > 0; i--) { /* Fisher-Yates, j uniform in [0, i] by rejection */
        const uint64_t lim = UINT64_MAX - UINT64_MAX % (uint64_t)(i + 1);
        uint64_t r;
        do r = calib_rng_next(s->rng);
        while (r >= lim);
        const int j = (int)(r % (uint64_t)(i + 1)), t = s->idx[i];
        s->idx[i] = s->idx[j], s->idx[j] = t;
    }
    s->pos = 0;
}
static const int *sampler_next(struct sampler *s) {
    if (s->pos + s->bs > s->n) sampler_shuffle(s);
    const int *b = s->idx + s->pos;
    s->pos += s->bs;
    return b;
}

/* ===== a block's linears: "slots" =====
 * A dense block's seven (enum lin); a MoE block's q, k, v, o, then expert e's gate, up, down at
 * slot LIN_GATE + 3e + k and qwen2moe's shared expert's three after them (the router and the
 * shared expert's gate stay in float, as GPTQ and AWQ keep them). */
static int ar_n_slots(const struct model_config *c) {
    return c->n_expert > 0 ? LIN_GATE + 3 * c->n_expert + (c->shared_hidden > 0 ? 3 : 0) : N_LIN;
}

/* slot s of layer L's tensors */
static const struct tensor *ar_slot_tensor(const struct model *m, const struct layer *L, int s) {
    const int E = m->cfg.n_expert;
    if (E <= 0 || s < LIN_GATE) return &L->lin[s];
    const int u = (s - LIN_GATE) / 3, k = (s - LIN_GATE) % 3;
    return u < E ? &L->ex[3 * u + k] : &L->shexp[k];
}

/* the address of slot s's weights in w (MoE experts: in ex, which the caller owns) */
static const float **ar_slot_ptr(struct grad_weights *w, const float **ex, int E, int s) {
    if (E <= 0 || s < LIN_GATE) return &w->lin[s];
    const int u = (s - LIN_GATE) / 3, k = (s - LIN_GATE) % 3;
    return u < E ? &ex[3 * u + k] : &w->shexp[k];
}

/* the block weights with the tuned linears' ŵ in place of the float ones; a MoE block's expert
 * pointers in ex [3E] */
static struct grad_weights q_weights(const struct grad_weights *wf,
                                     struct autoround_linear *const *lin, int n_slot, int E,
                                     const float **ex) {
    struct grad_weights w = *wf;
    if (E > 0) {
        memcpy(ex, wf->ex, (size_t)(3 * E) * sizeof *ex);
        w.ex = ex;
    }
    for (int i = 0; i < n_slot; i++)
        if (lin[i]) *ar_slot_ptr(&w, ex, E, i) = lin[i]->wq;
    return w;
}

static void copy_params(struct autoround_linear *L, bool to_best) {
    const size_t nk = (size_t)(L->N * L->K) * sizeof(float);
    const size_t ng = (size_t)(L->N * L->ng) * sizeof(float);
    if (to_best) {
        memcpy(L->best_v, L->v, nk);
        memcpy(L->best_min, L->min_scale, ng);
        memcpy(L->best_max, L->max_scale, ng);
    } else {
        memcpy(L->v, L->best_v, nk);
        memcpy(L->min_scale, L->best_min, ng);
        memcpy(L->max_scale, L->best_max, ng);
    }
}

void autoround_valid_mask(const int *tokens, int n_win, int T, uint8_t *valid) {
    for (int w = 0; w < n_win; w++) {
        const int *tk = tokens + (size_t)w * T;
        uint8_t *v = valid + (size_t)w * T;
        memset(v, 1, (size_t)T);
        v[T - 1] = 0;
        for (int j = T - 2; j >= 0 && tk[j] == tk[T - 1]; j--) v[j] = 0;
    }
}

/* autoround_tune_block over the n_slot linears of a block (dense or MoE) */
static int tune_block(struct grad_block *g, const struct grad_weights *wf,
                      struct autoround_linear *const *lin, int n_slot, const float *xq,
                      const float *yfp, const uint8_t *valid, int n_win, int T,
                      const struct autoround_opts *o, uint64_t *rng,
                      struct autoround_block_stat *st) {
    memset(st, 0, sizeof *st);
    st->loss_init = st->loss_best = NAN;
    for (int i = 0; i < n_slot; i++) st->n_linears += lin[i] != NULL;
    for (int i = 0; i < n_slot; i++)
        if (lin[i]) autoround_qdq(lin[i], o);
    if (!st->n_linears || o->iters <= 0) return 0;
    const int bs = LB_MIN(o->batch_size, n_win), D = g->D;
    const int64_t rows = (int64_t)bs * T, W = (int64_t)T * D;
    if (rows > g->max_rows)
        return err("AutoRound: a batch of %lld rows exceeds the block buffers' %lld",
                   (long long)rows, (long long)g->max_rows);
    int ret = -1;
    const int E = g->E;
    const float **exq = xcalloc((size_t)(3 * E) + 1, sizeof *exq, "AutoRound experts");
    float **gex = xcalloc((size_t)(3 * E) + 1, sizeof *gex, "AutoRound experts");
    float *xb = xmalloc((size_t)(rows * D) * sizeof(float), "AutoRound batch");
    float *yb = xmalloc((size_t)(rows * D) * sizeof(float), "AutoRound batch");
    float *yp = xmalloc((size_t)(rows * D) * sizeof(float), "AutoRound batch");
    double *part = xmalloc((size_t)rows * sizeof(double), "AutoRound loss");
    uint8_t *vb = xmalloc((size_t)rows, "AutoRound loss mask");
    struct sampler sm = {.idx = xmalloc((size_t)n_win * sizeof(int), "AutoRound sampler"),
                         .n = n_win, .bs = bs, .rng = rng};
    if (!exq || !gex || !xb || !yb || !yp || !part || !vb || !sm.idx) goto out;
    for (int i = 0; i < n_win; i++) sm.idx[i] = i;
    sampler_shuffle(&sm);
    struct grad_grads gr = {0};
    if (E > 0) gr.ex = gex;
    for (int i = 0; i < n_slot; i++) /* (the slot's address, as ar_slot_ptr) */
        if (lin[i]) {
            const int u = (i - LIN_GATE) / 3, k = (i - LIN_GATE) % 3;
            if (E <= 0 || i < LIN_GATE) gr.lin[i] = lin[i]->gwq;
            else if (u < E) gex[3 * u + k] = lin[i]->gwq;
            else gr.shexp[k] = lin[i]->gwq;
        }
    double best = DBL_MAX;
    const double numel = (double)rows * D;
    for (int it = 0; it < o->iters; it++) {
        const int *b = sampler_next(&sm);
        int64_t n_valid = 0;
        for (int i = 0; i < bs; i++) {
            memcpy(xb + i * W, xq + (int64_t)b[i] * W, (size_t)W * sizeof(float));
            memcpy(yb + i * W, yfp + (int64_t)b[i] * W, (size_t)W * sizeof(float));
            for (int t = 0; t < T; t++) {
                vb[i * T + t] = valid ? valid[(int64_t)b[i] * T + t] : 1;
                n_valid += vb[i * T + t];
            }
        }
        if (it > 0)
            for (int i = 0; i < n_slot; i++)
                if (lin[i]) autoround_qdq(lin[i], o);
        const struct grad_weights wq = q_weights(wf, lin, n_slot, E, exq);
        if (grad_block_forward(g, &wq, xb, bs, T, yp)) goto out;
        /* loss = mean squared error over the valid rows; dy = 2(y − y_fp)/numel on them, 0 on
         * the masked ones (torch's MSELoss of the masked tensors); per-row partials summed in
         * order: the same value for any thread count */
#pragma omp parallel for schedule(static) if (rows * D >= (1 << 16))
        for (int64_t r = 0; r < rows; r++) {
            double s = 0;
            for (int c = 0; c < D; c++) {
                const float e = vb[r] ? yp[r * D + c] - yb[r * D + c] : 0.0f;
                s += (double)e * e;
                yp[r * D + c] = (float)(2.0 * e / numel);
            }
            part[r] = s;
        }
        double loss = 0;
        for (int64_t r = 0; r < rows; r++) loss += part[r];
        loss /= (double)(n_valid > 0 ? n_valid : 1) * D;
        if (it == 0) st->loss_init = loss;
        if (o->use_best ? loss < best : it == o->iters - 1) {
            best = loss;
            st->loss_best = loss;
            st->best_iter = it;
            for (int i = 0; i < n_slot; i++)
                if (lin[i]) copy_params(lin[i], true);
        }
        if (grad_block_backward(g, &wq, yp, NULL, &gr)) goto out;
        const float lr = (float)(o->lr * (1.0 - (double)it / o->iters));
        const float mlr = (float)(o->minmax_lr * (1.0 - (double)it / o->iters));
        for (int i = 0; i < n_slot; i++) {
            struct autoround_linear *L = lin[i];
            if (!L) continue;
            autoround_chain(L, o);
            const int64_t nk = L->N * L->K, nsc = L->N * L->ng;
            float *v = L->v;
            const float *gv = L->gv;
#pragma omp parallel for schedule(static) if (nk >= (1 << 16))
            for (int64_t k = 0; k < nk; k++) v[k] -= lr * signf(gv[k]);
            if (o->minmax_tuning)
                for (int64_t k = 0; k < nsc; k++) {
                    L->min_scale[k] -= mlr * signf(L->gmin[k]);
                    L->max_scale[k] -= mlr * signf(L->gmax[k]);
                }
        }
    }
    if (isnan(st->loss_best)) { /* every loss was NaN: non-finite inputs or weights */
        err("AutoRound: the block's loss is not finite (%g at iteration 0): non-finite "
            "activations or weights?", st->loss_init);
        goto out;
    }
    for (int i = 0; i < n_slot; i++)
        if (lin[i]) {
            copy_params(lin[i], false);
            autoround_qdq(lin[i], o);
        }
    ret = 0;
out:
    free(exq);
    free(gex);
    free(xb);
    free(yb);
    free(yp);
    free(part);
    free(vb);
    free(sm.idx);
    return ret;
}

int autoround_tune_block(struct grad_block *g, const struct grad_weights *wf,
                         struct autoround_linear *const lin[N_LIN], const float *xq,
                         const float *yfp, const uint8_t *valid, int n_win, int T,
                         const struct autoround_opts *o, uint64_t *rng,
                         struct autoround_block_stat *st) {
    if (g->E > 0) return err("AutoRound: autoround_tune_block takes a dense block");
    return tune_block(g, wf, lin, N_LIN, xq, yfp, valid, n_win, T, o, rng, st);
}

/* ===== the model ===== */

void autoround_report_release(struct autoround_report *rep, int n_layers) {
    for (int i = 0; rep->deq && i < n_layers * N_LIN; i++) free(rep->deq[i]);
    free(rep->deq);
    free(rep->blocks);
    memset(rep, 0, sizeof *rep);
}

static int find_tensor(const struct model *m, const char *name) {
    for (int i = 0; i < m->n_tensors; i++)
        if (!strcmp(m->tensors[i].name, name)) return i;
    return -1;
}

/* GGUF "llama" wants interleaved rotary pairs: HF llama/mistral q/k rows are permuted back (as
 * quant/quant.c's fp baselines and llama.cpp's convert do) */
static bool gguf_permute(const struct model *m) {
    return m->cfg.rope_style == ROPE_NEOX && !model_gguf_keeps_hf_rope(&m->cfg);
}
/* the source row of GGUF row r of a q/k tensor
 * (GGUF row h·hd + 2i + s <- HF row h·hd + s·hd/2 + i) */
static int64_t gguf_src_row(const struct model *m, bool qk, int64_t r) {
    if (!qk || !gguf_permute(m)) return r;
    const int64_t hd = m->cfg.head_dim, h = r / hd, in = r % hd, ii = in / 2, s = in % 2;
    return h * hd + s * (hd / 2) + ii;
}

/* the GPTQ tensor of a tuned linear: QINT in HF row order (calib.h: HF row r is source row
 * calib_source_row(r)) */
static int emit_gptq(const struct model *m, struct hfx_tensor *t, bool qk, int bits, int64_t g,
                     const uint8_t *codes, const float *d, const float *z, int64_t ng) {
    const int64_t K = t->K, N = t->N;
    if (qint_tensor_init(&t->q, t->module, K, N, bits, g >= K ? -1 : g, false)) return -1;
    t->qbuf = xcalloc(1, qint_tensor_bytes(K, N, bits, g >= K ? -1 : g, false), t->module);
    if (!t->qbuf) return -1;
    qint_tensor_attach(&t->q, t->qbuf, false);
    struct qint_param *par = qint_params(&t->q);
    for (int64_t r = 0; r < N; r++) {
        const int64_t sr = calib_source_row(m, qk, r);
        uint8_t *row = (uint8_t *)t->q.data + (size_t)r * tensor_row_bytes(&t->q);
        for (int64_t k = 0; k < K; k++) qint_code_set(row, bits, k, codes[sr * K + k]);
        for (int64_t gi = 0; gi < ng; gi++)
            par[r * ng + gi] = (struct qint_param){.d = d[sr * ng + gi], .z = z[sr * ng + gi]};
    }
    t->quantized = true;
    return 0;
}

/* the GGUF blocks of a tuned linear (group 32) in GGUF row order, into *out (owned) */
static int emit_gguf(const struct model *m, enum dtype type, bool qk, int64_t K, int64_t N,
                     const uint8_t *codes, const float *d, const float *z, void **out,
                     size_t *nbytes) {
    const size_t row_bytes = dtype_row_size(type, K);
    uint8_t *buf = xcalloc((size_t)N, row_bytes, "GGUF blocks");
    if (!buf) return -1;
    const int64_t nb = K / 32;
    for (int64_t r = 0; r < N; r++) {
        const int64_t sr = gguf_src_row(m, qk, r);
        const uint8_t *c = codes + sr * K;
        for (int64_t b = 0; b < nb; b++) {
            const float db = d[sr * nb + b], zb = z[sr * nb + b];
            uint8_t *dst = buf + (size_t)r * row_bytes;
            if (type == DTYPE_Q4_0) { /* x = (q − 8)·d; z = 8 */
                struct block_q4_0 *y = (struct block_q4_0 *)dst + b;
                y->d = lb_f32_to_fp16(db);
                for (int j = 0; j < 16; j++)
                    y->qs[j] = (uint8_t)(c[b * 32 + j] | c[b * 32 + j + 16] << 4);
            } else if (type == DTYPE_Q4_1) { /* x = q·d + m, m = −zp·d (fp32, then fp16) */
                struct block_q4_1 *y = (struct block_q4_1 *)dst + b;
                y->d = lb_f32_to_fp16(db);
                y->m = lb_f32_to_fp16(-zb * db);
                for (int j = 0; j < 16; j++)
                    y->qs[j] = (uint8_t)(c[b * 32 + j] | c[b * 32 + j + 16] << 4);
            } else { /* Q8_0: x = q·d, q = c − 128 */
                struct block_q8_0 *y = (struct block_q8_0 *)dst + b;
                y->d = lb_f32_to_fp16(db);
                for (int j = 0; j < 32; j++) y->qs[j] = (int8_t)((int)c[b * 32 + j] - 128);
            }
        }
    }
    *out = buf;
    *nbytes = row_bytes * (size_t)N;
    return 0;
}

/* the GGUF file: every tensor of m in its order, tuned linears from gbuf, the rest f32 */
static int write_gguf(const struct model *m, const char *path, const char *name, enum dtype type,
                      void **gbuf, const size_t *gbytes, struct autoround_report *rep,
                      bool *has_vocab) {
    struct gguf_writer *w = gguf_writer_new();
    float **fbuf = xcalloc((size_t)m->n_tensors + 1, sizeof *fbuf, "tensor buffers");
    float *rope = NULL;
    int ret = -1;
    if (!w || !fbuf) goto out;
    const int ftype = type == DTYPE_Q4_0 ? 2 : type == DTYPE_Q4_1 ? 3 : 7; /* llama_ftype */
    if (quant_gguf_put_model_kv(w, m, name, ftype) ||
        gguf_writer_u32(w, "general.quantization_version", 2))
        goto out;
    const int rc = quant_gguf_copy_tokenizer(w, m);
    if (rc < 0) goto out;
    *has_vocab = rc == 0;
    for (int i = 0; i < m->n_tensors; i++) {
        const struct tensor *t = &m->tensors[i];
        const int64_t n_rows = tensor_nrows(t), K = t->ne[0];
        rep->n_params += tensor_nelements(t);
        if (gbuf[i]) {
            rep->n_quantized += tensor_nelements(t);
            rep->tensor_bytes += gbytes[i];
            if (gguf_writer_tensor(w, t->name, (uint32_t)dtype_get(type)->ggml_type, t->n_dims,
                                   t->ne, gbuf[i], gbytes[i]))
                goto out;
            continue;
        }
        const int li = lin_of_tensor(t->name);
        const bool qk = li >= 0 && lin_info[li].rope;
        if (!(fbuf[i] = xmalloc((size_t)(n_rows * K) * sizeof(float), t->name))) goto out;
        for (int64_t r = 0; r < n_rows; r++)
            tensor_row_to_f32(t, gguf_src_row(m, qk, r), fbuf[i] + r * K);
        rep->tensor_bytes += (uint64_t)(n_rows * K) * 4;
        if (gguf_writer_tensor(w, t->name, 0, t->n_dims, t->ne, fbuf[i],
                               (uint64_t)(n_rows * K) * 4))
            goto out;
    }
    if (quant_gguf_put_rope_freqs(w, m, &rope) || quant_gguf_fuse(w, m)) goto out;
    ret = gguf_writer_write(w, path);
out:
    for (int i = 0; fbuf && i < m->n_tensors; i++) free(fbuf[i]);
    free(fbuf);
    free(rope);
    gguf_writer_free(w);
    return ret;
}

/* quantization_config keys AutoRound's auto_gptq export writes besides GPTQ's own: provider,
 * data_type, lm_head, and the tuning settings that differ from its defaults
 * (filter_quantization_config drops the defaults) */
static json_t *autoround_top_keys(const struct autoround_opts *o, const struct calib_set *cs) {
    json_t *t = json_pack("{s:s, s:s, s:b}", "provider", "auto-round", "data_type", "int",
                          "lm_head", false);
    const double lr_def = o->iters > 0 ? 1.0 / o->iters : 5e-3;
    if (o->iters != 200) json_object_set_new(t, "iters", json_integer(o->iters));
    if (o->lr != lr_def) json_object_set_new(t, "lr", json_real(o->lr));
    if (o->minmax_lr != lr_def) json_object_set_new(t, "minmax_lr", json_real(o->minmax_lr));
    if (cs->n_samples != 128) json_object_set_new(t, "nsamples", json_integer(cs->n_samples));
    if (cs->seqlen != 2048) json_object_set_new(t, "seqlen", json_integer(cs->seqlen));
    if (o->batch_size != 8) json_object_set_new(t, "batch_size", json_integer(o->batch_size));
    if (!o->minmax_tuning) json_object_set_new(t, "enable_minmax_tuning", json_false());
    if (!o->quanted_input) json_object_set_new(t, "enable_quanted_input", json_false());
    return t;
}

/* slot i of block l's tensor in m: ti its index in m->tensors and *slice the expert's slice of a
 * stacked one (a GGUF source's ffn_*_exps), else 0; -1 with a message when m has none */
static int ar_slot_find(const struct model *m, int l, int i, char *tn, size_t n, int *ti,
                        int *slice) {
    const int E = m->cfg.n_expert;
    *slice = 0;
    if (E <= 0 || i < LIN_GATE) lin_name(tn, n, l, (enum lin)i);
    else snprintf(tn, n, "%s", ar_slot_tensor(m, &m->layers[l], i)->name);
    if ((*ti = find_tensor(m, tn)) >= 0) return 0;
    const int u = (i - LIN_GATE) / 3, k = (i - LIN_GATE) % 3;
    if (E > 0 && i >= LIN_GATE && u < E) { /* the stacked experts */
        char sn[96];
        snprintf(sn, sizeof sn, "blk.%d.ffn_%s_exps.weight", l, (const char *[]){"gate", "up",
                                                                              "down"}[k]);
        *slice = u;
        if ((*ti = find_tensor(m, sn)) >= 0) return 0;
    }
    return err("AutoRound: %s has no tensor %s", m->path, tn);
}

/* the linears of block l the format holds, set up for tuning from the float weights wf: lp[i] =
 * &L[i], or NULL for a linear kept in float (a GPTQ layout that cannot hold it, hm != NULL; GGUF
 * rows that are not whole blocks of 32, hm NULL). xi[i] its export tensor (GPTQ) or m's tensor
 * (GGUF), ti[i] m's tensor and sl[i] its slice (ar_slot_find). n_slot slots (ar_n_slots). */
static int ar_block_linears(const struct model *m, struct hfx_model *hm,
                            const struct autoround_opts *o, bool quiet, int l,
                            const struct grad_weights *wf, struct autoround_linear *L,
                            struct autoround_linear **lp, int *xi, int *ti, int *sl, int n_slot) {
    const int E = m->cfg.n_expert;
    for (int i = 0; i < n_slot; i++) {
        char tn[160];
        lp[i] = NULL;
        if (ar_slot_find(m, l, i, tn, sizeof tn, &ti[i], &sl[i])) return -1;
        xi[i] = ti[i];
        const struct tensor *st = ar_slot_tensor(m, &m->layers[l], i);
        const int64_t K = st->ne[0], N = st->ne[1];
        /* the first expert speaks for every expert */
        const bool say = !quiet && l == 0 && (E <= 0 || i < LIN_GATE + 3 || i >= LIN_GATE + 3 * E);
        int64_t grp = o->group;
        if (hm) {
            if ((xi[i] = hfx_find(hm, tn)) < 0 || !hm->t[xi[i]].linear)
                return err("AutoRound: %s has no linear %s", m->path, tn);
            struct hfx_tensor *t = &hm->t[xi[i]];
            const enum qplan plan = qformat_plan(false, K, N, o->bits, o->group, t->note,
                                                 sizeof t->note);
            if (plan != QPLAN_GROUP && say)
                fprintf(stderr, "autoround: %s (and every block's): %s\n", t->module, t->note);
            if (plan == QPLAN_FLOAT) continue;
            if (plan == QPLAN_CHANNEL) grp = -1;
        } else if (K % 32) {
            if (say)
                fprintf(stderr, "autoround: %s (and every block's): kept in f32: %lld columns "
                        "are not whole blocks of 32\n", tn, (long long)K);
            continue;
        }
        struct grad_weights w = *wf;
        const float **src = ar_slot_ptr(&w, (const float **)wf->ex, E, i);
        if (autoround_linear_init(&L[i], *src, K, N, grp)) return -1;
        lp[i] = &L[i];
    }
    return 0;
}

/* expert slice sl's GGUF blocks (nb bytes, owned) into the stacked tensor ti's buffer of n_sl
 * slices, allocated at the first */
static int gguf_put_slice(void **gbuf, size_t *gbytes, int ti, int sl, int n_sl, void *blk,
                          size_t nb) {
    if (!gbuf[ti]) {
        if (!(gbuf[ti] = xcalloc((size_t)n_sl, nb, "GGUF experts"))) {
            free(blk);
            return -1;
        }
        gbytes[ti] = (size_t)n_sl * nb;
    }
    memcpy((uint8_t *)gbuf[ti] + (size_t)sl * nb, blk, nb);
    free(blk);
    return 0;
}

/* the tuned linears of block l (n_slot slots) into the output: the GPTQ export tensors (hm) or
 * GGUF blocks of gtype (gbuf, gbytes by m's tensor index; an expert's into its slice sl[i] of the
 * stacked tensor); a dense block's ŵ into deq[l·N_LIN + i] when deq */
static int ar_block_emit(const struct model *m, struct hfx_model *hm,
                         const struct autoround_opts *o, enum dtype gtype, int l,
                         struct autoround_linear *const *lp, const int *xi, const int *ti,
                         const int *sl, int n_slot, uint8_t *codes, float *dd, float *zz,
                         void **gbuf, size_t *gbytes, float **deq) {
    for (int i = 0; i < n_slot; i++) {
        if (!lp[i]) continue;
        struct autoround_linear *Li = lp[i];
        if (autoround_codes(Li, o, codes, dd, zz)) return -1;
        const bool qk = i < LIN_GATE && lin_info[i].rope;
        const bool sliced = !hm && m->tensors[ti[i]].n_dims == 3;
        void *blk = NULL;
        size_t blk_bytes = 0;
        if (hm) {
            if (emit_gptq(m, &hm->t[xi[i]], qk, o->bits, Li->g, codes, dd, zz, Li->ng))
                return -1;
        } else if (emit_gguf(m, gtype, qk, Li->K, Li->N, codes, dd, zz,
                             sliced ? &blk : &gbuf[ti[i]], sliced ? &blk_bytes : &gbytes[ti[i]]) ||
                   (sliced && gguf_put_slice(gbuf, gbytes, ti[i], sl[i], m->cfg.n_expert, blk,
                                             blk_bytes))) {
            return -1;
        }
        if (deq && m->cfg.n_expert <= 0) {
            const size_t nb = (size_t)(Li->N * Li->K) * sizeof(float);
            if (!(deq[l * N_LIN + i] = xmalloc(nb, "AutoRound weights"))) return -1;
            memcpy(deq[l * N_LIN + i], Li->wq, nb);
        }
    }
    return 0;
}

/* config.json's record of a block */
static json_t *ar_block_json(const struct autoround_block_stat *b) {
    return b->n_linears ? json_pack("{s:i, s:f, s:f, s:i}", "linears", b->n_linears, "loss_init",
                                    b->loss_init, "loss_best", b->loss_best, "best_iter",
                                    b->best_iter)
                        : json_pack("{s:i}", "linears", 0);
}

/* ===== resume (quant/resume.h) =====
 * After block l: the GPTQ export's tensors of the block (or, for GGUF, each tuned tensor's
 * blocks as an array "g-<tensor index>"), the float stream (and the quantized one), the sampler's
 * state, the per-block statistics and counters. */
struct ar_resume {
    struct qresume rs;
    json_t *gguf; /* [[tensor index, bytes], ...] of the GGUF tensors saved so far */
};

static int ar_resume_open(struct ar_resume *ar, const struct model *m, const char *src_path,
                          const struct autoround_opts *o, const struct calib_set *cs,
                          enum autoround_format fmt, bool quiet, int *l_done, json_t **f) {
    ar->gguf = json_array();
    char *kt = xstrfmt("%d %lld %d %d %.17g %.17g %d %d %d %d %d %llu %d|%s|%d x %d", o->bits,
                       (long long)o->group, o->sym, o->iters, o->lr, o->minmax_lr, o->batch_size,
                       o->minmax_tuning, o->quanted_input, o->use_best, o->zero_min,
                       (unsigned long long)o->seed, (int)fmt, cs->tokens_sha256, cs->n_samples,
                       cs->seqlen);
    const int rc = !kt || !ar->gguf ? err("out of memory")
                                    : qresume_open(&ar->rs, o->resume_dir, "autoround", src_path,
                                                   kt, m->cfg.n_layers, quiet, l_done, f);
    free(kt);
    return rc;
}

/* the report, the sampler and the GGUF tensors of a state's fields */
static int ar_unfields(struct ar_resume *ar, const json_t *f, int l_done,
                       struct autoround_report *rep, uint64_t *rng, void **gbuf, size_t *gbytes,
                       const struct model *m) {
    const json_t *bl = json_object_get(f, "blocks"), *gg = json_object_get(f, "gguf");
    const char *rs = json_string_value(json_object_get(f, "rng"));
    if (!json_is_array(bl) || json_array_size(bl) != (size_t)l_done + 1 || !rs ||
        !json_is_array(gg) || sscanf(rs, "%" SCNx64, rng) != 1)
        return err("AutoRound resume: the state's fields are not this version's");
    rep->tune_seconds = json_number_value(json_object_get(f, "tune_seconds"));
    rep->n_blocks = (int)json_integer_value(json_object_get(f, "n_blocks"));
    rep->n_linears = (int)json_integer_value(json_object_get(f, "n_linears"));
    rep->moe_experts = (int)json_integer_value(json_object_get(f, "moe_experts"));
    rep->moe_idle = (int)json_integer_value(json_object_get(f, "moe_idle"));
    rep->moe_min_tokens = json_integer_value(json_object_get(f, "moe_min_tokens"));
    rep->moe_max_tokens = json_integer_value(json_object_get(f, "moe_max_tokens"));
    for (int l = 0; l <= l_done; l++) {
        const json_t *b = json_array_get(bl, (size_t)l);
        struct autoround_block_stat *s = &rep->blocks[l];
        s->loss_init = json_number_value(json_array_get(b, 0));
        s->loss_best = json_number_value(json_array_get(b, 1));
        s->best_iter = (int)json_integer_value(json_array_get(b, 2));
        s->n_linears = (int)json_integer_value(json_array_get(b, 3));
    }
    size_t i;
    const json_t *e;
    json_array_foreach(gg, i, e) {
        const json_int_t ti = json_integer_value(json_array_get(e, 0));
        const json_int_t nb = json_integer_value(json_array_get(e, 1));
        char name[40];
        if (!gbuf || ti < 0 || ti >= m->n_tensors || nb <= 0)
            return err("AutoRound resume: the state names GGUF tensor %lld", (long long)ti);
        snprintf(name, sizeof name, "g-%lld", (long long)ti);
        free(gbuf[ti]);
        if (!(gbuf[ti] = xmalloc((size_t)nb, "an AutoRound GGUF tensor")) ||
            qresume_get(&ar->rs, name, gbuf[ti], (size_t)nb))
            return -1;
        gbytes[ti] = (size_t)nb;
        json_array_append(ar->gguf, (json_t *)e);
    }
    return 0;
}

/* the checkpoint after block l (ti: the block's n_slot GGUF tensor indexes, -1 none) */
static int ar_checkpoint(struct ar_resume *ar, int l, struct hfx_model *hm, const int *ti,
                         int n_slot, void **gbuf, const size_t *gbytes, const float *xfp,
                         const float *xq, size_t stream_bytes, uint64_t rng,
                         const struct autoround_report *rep) {
    if (!ar->rs.dir) return 0;
    if (hm && qresume_put_block(&ar->rs, l, hm)) return -1;
    for (int i = 0; !hm && i < n_slot; i++) {
        bool seen = false; /* a stacked tensor of experts once */
        for (int j = 0; j < i; j++) seen |= ti[j] == ti[i];
        if (seen || ti[i] < 0 || !gbuf[ti[i]]) continue;
        char name[40];
        snprintf(name, sizeof name, "g-%d", ti[i]);
        if (qresume_put(&ar->rs, name, gbuf[ti[i]], gbytes[ti[i]]) ||
            json_array_append_new(ar->gguf, json_pack("[i, I]", ti[i], (json_int_t)gbytes[ti[i]])))
            return -1;
    }
    if (qresume_put(&ar->rs, "x.bin", xfp, stream_bytes) ||
        (xq != xfp && qresume_put(&ar->rs, "xq.bin", xq, stream_bytes)))
        return -1;
    json_t *bl = json_array();
    for (int k = 0; bl && k <= l; k++) {
        const struct autoround_block_stat *s = &rep->blocks[k];
        json_array_append_new(bl, json_pack("[f, f, i, i]", s->loss_init, s->loss_best,
                                            s->best_iter, s->n_linears));
    }
    char rs[24];
    snprintf(rs, sizeof rs, "%016" PRIx64, rng);
    json_t *f = bl ? json_pack("{s:f, s:i, s:i, s:s, s:o, s:O, s:i, s:i, s:I, s:I}",
                               "tune_seconds", rep->tune_seconds, "n_blocks", rep->n_blocks,
                               "n_linears", rep->n_linears, "rng", rs, "blocks", bl, "gguf",
                               ar->gguf, "moe_experts", rep->moe_experts, "moe_idle",
                               rep->moe_idle, "moe_min_tokens", (json_int_t)rep->moe_min_tokens,
                               "moe_max_tokens", (json_int_t)rep->moe_max_tokens)
                   : NULL;
    const int rc = !f ? err("out of memory") : qresume_commit(&ar->rs, l, f);
    json_decref(f);
    return rc;
}

int autoround_quantize_model(const struct model *m, const char *src_path,
                             const struct autoround_opts *o, const struct calib_set *cs,
                             enum autoround_format fmt, const char *out, const char *name,
                             bool quiet, bool keep_weights, struct autoround_report *rep) {
    memset(rep, 0, sizeof *rep);
    const double t0 = now_s();
    const struct model_config *c = &m->cfg;
    const int n_layers = c->n_layers, D = c->dim, T = cs->seqlen, n = cs->n_samples;
    const int bs = LB_MIN(o->batch_size, n);
    const int64_t W = (int64_t)T * D;
    const bool gptq = fmt == AUTOROUND_GPTQ;
    enum dtype gtype = DTYPE_Q4_0;
    if (!gptq) {
        if (o->group != 32 || !((o->bits == 4) || (o->bits == 8 && o->sym)))
            return err("AutoRound: GGUF holds group 32 at 4 bits (Q4_0 sym, Q4_1 asym) or 8 bits "
                       "sym (Q8_0), not %d-bit group %lld %s", o->bits, (long long)o->group,
                       o->sym ? "sym" : "asym");
        gtype = o->bits == 8 ? DTYPE_Q8_0 : o->sym ? DTYPE_Q4_0 : DTYPE_Q4_1;
        rep->gguf_type = dtype_get(gtype)->name;
    }
    if (o->bits != 2 && o->bits != 3 && o->bits != 4 && o->bits != 8)
        return err("AutoRound: %d bits (2, 3, 4 or 8)", o->bits);
    struct hfx_model hm = {0};
    struct grad_block g;
    const int n_slot = ar_n_slots(c), E = c->n_expert;
    struct autoround_linear *L = xcalloc((size_t)n_slot, sizeof *L, "AutoRound linears");
    struct autoround_linear **lp = xcalloc((size_t)n_slot, sizeof *lp, "AutoRound linears");
    int *xi = xcalloc((size_t)n_slot * 3, sizeof *xi, "AutoRound linears"), *ti = xi + n_slot,
        *sl = ti + n_slot;
    int64_t *routed = xcalloc((size_t)LB_MAX(E, 1), sizeof *routed, "AutoRound experts");
    bool hm_ok = false, g_ok = false;
    float *xfp = NULL, *yfp = NULL, *xq = NULL, *tmp = NULL, *wown = NULL, *dd = NULL, *zz = NULL;
    uint8_t *codes = NULL, *valid = NULL;
    void **gbuf = NULL;
    size_t *gbytes = NULL;
    json_t *blocks = json_array();
    int ret = -1;
    uint64_t rng = o->seed;
    struct ar_resume ar = {0};
    memset(&g, 0, sizeof g);
    rep->blocks = xcalloc((size_t)n_layers, sizeof *rep->blocks, "AutoRound report");
    if (keep_weights)
        rep->deq = xcalloc((size_t)n_layers * N_LIN, sizeof *rep->deq, "AutoRound weights");
    if (!rep->blocks || (keep_weights && !rep->deq) || !blocks || !L || !lp || !xi || !routed)
        goto out;
    /* GPTQ: the checkpoint is written as the blocks are done (extra and top set at the end) */
    struct gptq_write_opts go = {.bits = o->bits, .group = o->group, .sym = o->sym,
                                 .desc_act = false, .v2 = false, .damp_percent = 0.01,
                                 .true_sequential = false, .static_groups = false,
                                 .quantizer = "autoround"};
    if (gptq) {
        if (hfx_collect(&hm, m, src_path, true)) goto out;
        hm_ok = true;
        if (gptq_write_begin(&hm, &go, out, &rep->st)) goto out;
    } else {
        gbuf = xcalloc((size_t)m->n_tensors + 1, sizeof *gbuf, "GGUF tensors");
        gbytes = xcalloc((size_t)m->n_tensors + 1, sizeof *gbytes, "GGUF tensors");
        if (!gbuf || !gbytes) goto out;
    }
    int64_t max_nk = 1;
    for (int i = 0; i < m->n_tensors; i++)
        max_nk = LB_MAX(max_nk, tensor_nelements(&m->tensors[i]));
    xfp = xmalloc((size_t)(n * W) * sizeof(float), "AutoRound float stream");
    yfp = xmalloc((size_t)(n * W) * sizeof(float), "AutoRound float stream");
    xq = o->quanted_input ? xmalloc((size_t)(n * W) * sizeof(float), "AutoRound quantized stream")
                          : xfp;
    tmp = xmalloc((size_t)(bs * W) * sizeof(float), "AutoRound batch");
    codes = xmalloc((size_t)max_nk, "AutoRound codes");
    valid = xmalloc((size_t)n * T, "AutoRound loss mask");
    dd = xmalloc((size_t)max_nk * sizeof(float), "AutoRound scales");
    zz = xmalloc((size_t)max_nk * sizeof(float), "AutoRound zeros");
    if (!xfp || !yfp || !xq || !tmp || !codes || !valid || !dd || !zz) goto out;
    autoround_valid_mask(cs->tokens, n, T, valid);
    if (grad_block_init(&g, m, T, (int64_t)bs * T)) goto out;
    g_ok = true;
    for (int w = 0; w < n; w++) /* block 0's input: the embeddings as forward() has them */
        for (int t = 0; t < T; t++)
            fwd_embed(m, cs->tokens[(size_t)w * T + t], xfp + w * W + t * D);
    if (o->quanted_input) memcpy(xq, xfp, (size_t)(n * W) * sizeof(float));
    /* resume: blocks 0..l_done from their files, the streams as they were after block l_done
     * (not with keep_weights: the tests' ŵ are not in the checkpoint) */
    int l_start = 0, l_done = -1;
    json_t *rf = NULL;
    const size_t sbytes = (size_t)(n * W) * sizeof(float);
    struct autoround_opts orx = *o;
    if (keep_weights) orx.resume_dir = NULL;
    if (ar_resume_open(&ar, m, src_path, &orx, cs, fmt, quiet, &l_done, &rf)) goto out;
    if (l_done >= 0) {
        int rrc = ar_unfields(&ar, rf, l_done, rep, &rng, gbuf, gbytes, m);
        for (int l = 0; !rrc && gptq && l <= l_done; l++)
            rrc = qresume_get_block(&ar.rs, l, &hm) || hfx_emit_block(&hm, l) ? -1 : 0;
        if (!rrc) rrc = qresume_get(&ar.rs, "x.bin", xfp, sbytes);
        if (!rrc && o->quanted_input) rrc = qresume_get(&ar.rs, "xq.bin", xq, sbytes);
        json_decref(rf);
        if (rrc) {
            qresume_remove(&ar.rs); /* the next attempt starts anew */
            goto out;
        }
        for (int l = 0; l <= l_done; l++) json_array_append_new(blocks, ar_block_json(&rep->blocks[l]));
        l_start = rep->resumed_blocks = l_done + 1;
    }

    for (int l = l_start; l < n_layers; l++) {
        const double tl = now_s();
        struct grad_weights wf;
        if (grad_weights_from_layer(m, l, &wf, &wown)) goto out;
        /* the float block's outputs: this block's targets and the next block's float input; MoE:
         * the calibration tokens routed to each expert */
        memset(routed, 0, (size_t)LB_MAX(E, 1) * sizeof *routed);
        for (int w0 = 0; w0 < n; w0 += bs) {
            if (grad_block_forward(&g, &wf, xfp + w0 * W, LB_MIN(bs, n - w0), T, yfp + w0 * W))
                goto out;
            for (int e = 0; e < E; e++) routed[e] += g.eoff[e + 1] - g.eoff[e];
        }
        for (int e = 0; e < E; e++) {
            rep->moe_experts++;
            rep->moe_idle += !routed[e];
            rep->moe_min_tokens = rep->moe_experts == 1 ? routed[e]
                                                        : LB_MIN(rep->moe_min_tokens, routed[e]);
            rep->moe_max_tokens = LB_MAX(rep->moe_max_tokens, routed[e]);
        }
        /* the linears the format holds */
        if (ar_block_linears(m, gptq ? &hm : NULL, o, quiet, l, &wf, L, lp, xi, ti, sl, n_slot))
            goto out;
        /* tune */
        const double tt = now_s();
        struct autoround_block_stat *bst = &rep->blocks[l];
        if (tune_block(&g, &wf, lp, n_slot, xq, yfp, valid, n, T, o, &rng, bst)) goto out;
        rep->tune_seconds += now_s() - tt;
        if (bst->n_linears) rep->n_blocks++;
        rep->n_linears += bst->n_linears;
        /* the results */
        if (ar_block_emit(m, gptq ? &hm : NULL, o, gtype, l, lp, xi, ti, sl, n_slot, codes, dd,
                          zz, gbuf, gbytes, keep_weights ? rep->deq : NULL))
            goto out;
        /* the quantized stream: this block's outputs with the kept weights */
        if (o->quanted_input) {
            const float *exq[3 * LB_MAX(E, 1)];
            const struct grad_weights wq = q_weights(&wf, lp, n_slot, E, exq);
            for (int w0 = 0; w0 < n; w0 += bs) {
                const int cnt = LB_MIN(bs, n - w0);
                if (grad_block_forward(&g, &wq, xq + w0 * W, cnt, T, tmp)) goto out;
                memcpy(xq + w0 * W, tmp, (size_t)(cnt * W) * sizeof(float));
            }
        }
        float *sw = xfp; /* the float stream moves on */
        xfp = yfp, yfp = sw;
        if (!o->quanted_input) xq = xfp;
        if (ar_checkpoint(&ar, l, gptq ? &hm : NULL, ti, n_slot, gbuf, gbytes, xfp, xq, sbytes,
                          rng, rep) ||
            (gptq && hfx_emit_block(&hm, l)))
            goto out;
        json_array_append_new(blocks, ar_block_json(bst));
        if (!quiet) {
            if (bst->n_linears && o->iters > 0)
                fprintf(stderr, "autoround: block %d/%d: %d linears, loss %.6g -> %.6g (iter %d) "
                        "(%.2f s)\n", l + 1, n_layers, bst->n_linears, bst->loss_init,
                        bst->loss_best, bst->best_iter, now_s() - tl);
            else
                fprintf(stderr, "autoround: block %d/%d: %d linears (%.2f s)\n", l + 1, n_layers,
                        bst->n_linears, now_s() - tl);
        }
        for (int i = 0; i < n_slot; i++) autoround_linear_release(&L[i]);
        free(wown);
        wown = NULL;
    }
    rep->seconds = now_s() - t0;
    if (gptq) {
        json_t *extra = json_pack(
            "{s:s, s:s, s:s, s:i, s:i, s:I, s:b, s:i, s:f, s:f, s:i, s:b, s:b, s:b, s:s, s:O}",
            "calib_set", cs->path, "calib_sha256", cs->file_sha256, "calib_tokens_sha256",
            cs->tokens_sha256, "calib_nsamples", cs->n_samples, "calib_seqlen", cs->seqlen,
            "seed", (json_int_t)cs->seed, "calib_bos", cs->bos, "iters", o->iters, "lr", o->lr,
            "minmax_lr", o->minmax_lr, "batch_size", bs, "enable_minmax_tuning",
            o->minmax_tuning, "enable_quanted_input", o->quanted_input, "best_iteration_kept",
            o->use_best, "sym_range", o->sym ? "full (-2^(b-1) .. 2^(b-1)-1)" : "asym",
            "blocks", blocks);
        json_t *top = autoround_top_keys(o, cs);
        go.extra = extra, go.top = top;
        ret = gptq_write(&hm, &go, out, &rep->st);
        json_decref(extra);
        json_decref(top);
    } else {
        ret = write_gguf(m, out, name, gtype, gbuf, gbytes, rep, &rep->has_vocab);
    }
    if (!ret) qresume_remove(&ar.rs);
out:
    qresume_release(&ar.rs);
    json_decref(ar.gguf);
    for (int i = 0; L && i < n_slot; i++) autoround_linear_release(&L[i]);
    free(L);
    free(lp);
    free(xi);
    free(routed);
    if (g_ok) grad_block_release(&g);
    if (hm_ok) hfx_release(&hm);
    for (int i = 0; gbuf && i < m->n_tensors; i++) free(gbuf[i]);
    free(gbuf);
    free(gbytes);
    if (xq != xfp && xq != yfp) free(xq);
    free(xfp);
    free(yfp);
    free(tmp);
    free(wown);
    free(codes);
    free(valid);
    free(dd);
    free(zz);
    json_decref(blocks);
    return ret;
}

/* ===== the registry row ===== */

static int ar_bits(const struct recipe *r) {
    int bits = 0;
    if (sscanf(r->weight_dtype, "int%d", &bits) != 1 ||
        (bits != 2 && bits != 3 && bits != 4 && bits != 8))
        return err("recipe '%s': algorithm autoround quantizes to int2, int3, int4 or int8, not %s",
                   r->id, r->weight_dtype);
    if (!isnan(r->bits) && r->bits != bits)
        return err("recipe '%s': bits %g does not match weight_dtype %s", r->id, r->bits,
                   r->weight_dtype);
    return bits;
}

/* everything a recipe decides */
struct ar_plan {
    struct autoround_opts o;
    enum autoround_format fmt;
    char recipe[16];
    int n_samples, seqlen; /* 0: calib.h's defaults */
};

#define AR_KNOBS                                                                                   \
    "autoround knows recipe: default|light|best, iters: 0..100000, lr: (0, 10], minmax_lr: "    \
    "(0, 10], "                                                                                    \
    "batch_size: 1..4096, nsamples / seqlen: integers >= 1 (when calib_nsamples / calib_seqlen "  \
    "are empty), enable_minmax_tuning: bool, enable_quanted_input: bool, not_use_best_mse: "      \
    "bool, seed: integer >= 0, format: gptq|gguf"

/* the recipe (auto-round cli RECIPES), then the knobs over it (autoround.h); -1 with a message
 * naming the recipe and the knob */
static int ar_knobs(const struct recipe *r, int bits, struct ar_plan *p) {
    const struct autoround_opts d = AUTOROUND_OPTS_DEFAULT;
    memset(p, 0, sizeof *p);
    p->o = d;
    p->o.bits = bits;
    p->o.group = r->has_group_size ? r->group_size : 128;
    p->o.sym = r->sym != 0;
    p->fmt = AUTOROUND_GPTQ;
    snprintf(p->recipe, sizeof p->recipe, "default");
    json_t *kn;
    if (recipe_knobs(r, &kn)) return -1;
    int preset_n = 128, ret = 0, k_n = 0, k_seq = 0;
    double lr = 0, mlr = 0;
    int iters = 200;
    const json_t *rv = kn ? json_object_get(kn, "recipe") : NULL;
    if (rv) {
        const char *s = json_string_value(rv);
        if (s && !strcmp(s, "default")) {
        } else if (s && !strcmp(s, "light")) {
            iters = 50, lr = 5e-3;
        } else if (s && !strcmp(s, "best")) {
            iters = 1000, preset_n = 512;
        } else {
            json_decref(kn);
            return err("recipe '%s': autoround knob 'recipe' must be \"default\", \"light\" or "
                       "\"best\" (auto-round's recipes)", r->id);
        }
        snprintf(p->recipe, sizeof p->recipe, "%s", s);
    }
    const char *key;
    json_t *v;
    json_object_foreach(kn, key, v) {
        const double x = json_number_value(v);
        const bool is_int = json_is_integer(v);
        if (!strcmp(key, "recipe")) {
        } else if (!strcmp(key, "iters") && is_int && x >= 0 && x <= 100000) {
            iters = (int)x;
        } else if (!strcmp(key, "lr") && json_is_number(v) && x > 0 && x <= 10) {
            lr = x;
        } else if (!strcmp(key, "minmax_lr") && json_is_number(v) && x > 0 && x <= 10) {
            mlr = x;
        } else if (!strcmp(key, "batch_size") && is_int && x >= 1 && x <= 4096) {
            p->o.batch_size = (int)x;
        } else if (!strcmp(key, "nsamples") && is_int && x >= 1 && x <= 1e6) {
            k_n = (int)x;
        } else if (!strcmp(key, "seqlen") && is_int && x >= 2 && x <= 1e6) {
            k_seq = (int)x;
        } else if (!strcmp(key, "enable_minmax_tuning") && json_is_boolean(v)) {
            p->o.minmax_tuning = json_is_true(v);
        } else if (!strcmp(key, "enable_quanted_input") && json_is_boolean(v)) {
            p->o.quanted_input = json_is_true(v);
        } else if (!strcmp(key, "not_use_best_mse") && json_is_boolean(v)) {
            p->o.use_best = !json_is_true(v);
        } else if (!strcmp(key, "seed") && is_int && json_integer_value(v) >= 0) {
            p->o.seed = (uint64_t)json_integer_value(v);
        } else if (!strcmp(key, "format") && json_is_string(v) &&
                   (!strcmp(json_string_value(v), "gptq") ||
                    !strcmp(json_string_value(v), "gguf"))) {
            p->fmt = strcmp(json_string_value(v), "gguf") ? AUTOROUND_GPTQ : AUTOROUND_GGUF;
        } else {
            ret = err("recipe '%s': autoround knob '%s' (%s)", r->id, key, AR_KNOBS);
            break;
        }
    }
    json_decref(kn);
    if (ret) return ret;
    if ((k_n && r->calib_nsamples > 0) || (k_seq && r->calib_seqlen > 0))
        return err("recipe '%s': give the calibration size once: knob '%s' and column %s are "
                   "both set", r->id, k_n && r->calib_nsamples > 0 ? "nsamples" : "seqlen",
                   k_n && r->calib_nsamples > 0 ? "calib_nsamples" : "calib_seqlen");
    p->n_samples = r->calib_nsamples > 0 ? r->calib_nsamples : k_n ? k_n : preset_n;
    p->seqlen = r->calib_seqlen > 0 ? r->calib_seqlen : k_seq ? k_seq : 2048;
    p->o.iters = iters;
    p->o.lr = lr > 0 ? lr : autoround_auto_lr(iters, bits);
    p->o.minmax_lr = mlr > 0 ? mlr : p->o.lr;
    p->o.zero_min = p->fmt == AUTOROUND_GPTQ ? 1 : 0;
    return 0;
}

int autoround_recipe_check(const struct recipe *r) {
    const int bits = ar_bits(r);
    if (bits < 0) return -1;
    if (r->double_quant == 1)
        return err("recipe '%s': algorithm autoround has no double quantization (that is bnb's)",
                   r->id);
    if (!strcmp(r->compute_dtype, "int8"))
        return err("recipe '%s': compute_dtype int8 is not available for autoround weights (fp32, "
                   "fp16 or bf16 activations)", r->id);
    const int64_t g = r->has_group_size ? r->group_size : 128;
    if (g != -1 && g != 32 && g != 64 && g != 128)
        return err("recipe '%s': group_size %lld (autoround groups are 32, 64, 128, or -1 per "
                   "channel)", r->id, (long long)g);
    if (!r->calib_set[0])
        return err("recipe '%s': algorithm autoround needs calib_set (a file of "
                   "$LOWBIT_DATA/datasets/calibration/, e.g. groups_merged, or a path)", r->id);
    struct ar_plan p;
    if (ar_knobs(r, bits, &p)) return -1;
    if (p.fmt == AUTOROUND_GGUF && (g != 32 || !(bits == 4 || (bits == 8 && p.o.sym))))
        return err("recipe '%s': autoround format gguf writes Q4_0 (int4 sym), Q4_1 (int4 asym) or "
                   "Q8_0 (int8 sym) blocks: group_size must be 32 (got %lld, %d-bit %s)", r->id,
                   (long long)g, bits, p.o.sym ? "sym" : "asym");
    return 0;
}

/* the tokenizer eval needs for a GGUF without one (quant/quant.c's fp rule) */
static void ar_tokenizer_path(const struct quant_job *j, char *out, size_t size) {
    if (j->src_tokenizer && *j->src_tokenizer) {
        snprintf(out, size, "%s", j->src_tokenizer);
    } else if (j->m->format == MODEL_FORMAT_HF) {
        snprintf(out, size, "%s/tokenizer.json", j->src_path);
    } else {
        const char *slash = strrchr(j->src_path, '/');
        const int dir = slash ? (int)(slash - j->src_path) : 0;
        snprintf(out, size, "%.*s%stokenizer.bin", dir, j->src_path, slash ? "/" : "");
    }
}

int autoround_recipe_quantize(const struct quant_job *j, struct quant_artifact *a) {
    const struct recipe *r = j->r;
    const int bits = ar_bits(r);
    if (bits < 0) return -1;
    struct ar_plan p;
    if (ar_knobs(r, bits, &p)) return -1;
    struct recipe rc = *r; /* the calibration size (the preset's when the cells are empty) */
    rc.calib_nsamples = p.n_samples, rc.calib_seqlen = p.seqlen;
    struct quant_job jc = *j;
    jc.r = &rc;
    struct calib_set cs;
    if (calib_load_job(&cs, "autoround", &jc, p.o.seed)) return -1;
    const bool gguf = p.fmt == AUTOROUND_GGUF;
    snprintf(a->path, sizeof a->path, gguf ? "%s/model.gguf" : "%s/model", j->out_dir);
    struct autoround_report rep;
    p.o.resume_dir = j->resume_dir;
    int ret = autoround_quantize_model(j->m, j->src_path, &p.o, &cs, p.fmt, a->path, r->id,
                                       j->quiet, false, &rep);
    if (!ret) {
        if (gguf) {
            snprintf(a->format, sizeof a->format, "gguf");
            if (!rep.has_vocab) ar_tokenizer_path(j, a->tokenizer, sizeof a->tokenizer);
            quant_prov(a, "quant.format", "gguf");
            quant_prov(a, "quant.gguf_types", "%s for the tuned linears, f32 for the rest",
                       rep.gguf_type);
            quant_prov(a, "quant.bits_per_weight", "%.4f",
                       rep.n_params ? 8.0 * (double)rep.tensor_bytes / (double)rep.n_params : 0);
            quant_prov(a, "quant.modules", "%d of %d block linears quantized (%lld of %lld "
                       "weights)", rep.n_linears, 7 * j->m->cfg.n_layers,
                       (long long)rep.n_quantized, (long long)rep.n_params);
        } else {
            hf_recipe_artifact(j, a, "gptq", &rep.st);
        }
        quant_prov(a, "quant.autoround", "%d-bit, group %lld, %s, recipe %s: iters %d, lr %g, "
                   "minmax_lr %g, batch_size %d, minmax tuning %s, quantized input %s, %s "
                   "iteration kept; %s", bits, (long long)p.o.group,
                   p.o.sym ? "sym (full range)" : "asym", p.recipe, p.o.iters, p.o.lr,
                   p.o.minmax_lr, LB_MIN(p.o.batch_size, cs.n_samples),
                   p.o.minmax_tuning ? "on" : "off", p.o.quanted_input ? "on" : "off",
                   p.o.use_best ? "best-loss" : "last", gguf ? "GGUF" : "GPTQ v1 layout");
        if (rep.resumed_blocks)
            quant_prov(a, "quant.autoround_resumed_blocks", "%d (from %s)", rep.resumed_blocks,
                       j->resume_dir);
        quant_prov(a, "quant.knobs", "%s", r->knobs[0] ? r->knobs : "{}");
        quant_prov(a, "quant.calib_file", "%s (sha256 %s)", cs.path, cs.file_sha256);
        quant_prov(a, "quant.calib_windows", "%d x %d tokens, seed %llu, %s, splitmix64 offsets; "
                   "tokens sha256 %s", cs.n_samples, cs.seqlen, (unsigned long long)p.o.seed,
                   cs.bos ? "BOS + text" : "text only (no BOS)", cs.tokens_sha256);
        quant_prov(a, "quant.autoround_seconds", "%.3f (tuning %.3f; %d linears in %d blocks)",
                   rep.seconds, rep.tune_seconds, rep.n_linears, rep.n_blocks);
        quant_prov(a, "quant.autoround_peak_rss_mb", "%.1f", calib_peak_rss_mb());
        if (rep.moe_experts)
            quant_prov(a, "quant.autoround_moe", "every expert tuned on the block loss through "
                       "the router's top-%d (the router and shared-expert gate in float); %d of "
                       "%d experts (blocks x experts) had no calibration token routed to them, so "
                       "no gradient, and were rounded to nearest; tokens per expert %lld..%lld",
                       j->m->cfg.n_expert_used, rep.moe_idle, rep.moe_experts,
                       (long long)rep.moe_min_tokens, (long long)rep.moe_max_tokens);
        char loss[512];
        size_t n = 0;
        loss[0] = 0;
        for (int l = 0; l < j->m->cfg.n_layers && n < sizeof loss; l++) {
            const struct autoround_block_stat *b = &rep.blocks[l];
            if (!b->n_linears || p.o.iters <= 0) continue;
            n += (size_t)snprintf(loss + n, sizeof loss - n, "%sblock %d %.4g -> %.4g (iter %d)",
                                  n ? ", " : "", l + 1, b->loss_init, b->loss_best, b->best_iter);
        }
        quant_prov(a, "quant.autoround_loss", "%s", n ? loss : "no tuning (iters 0 or nothing to "
                   "quantize)");
    }
    autoround_report_release(&rep, j->m->cfg.n_layers);
    calib_release(&cs);
    return ret;
}
