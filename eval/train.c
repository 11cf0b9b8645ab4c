/* eval/train.c: whole-model training math around eval/grad.c's block (see train.h). */
#include "eval/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/gguf.h"
#include "eval/tok_impl.h"
#include "kernels/matmul.h"

#define PAR_MIN_WORK ((size_t)1 << 16)
#define CLIP_CHUNK ((size_t)1 << 16)

/* ===== small kernels ===== */

/* y [R][N] = x [R][K]·Wᵀ, W [N][K] (fp32, kernels/matmul.h) */
/* 0, or -1 with a message when the kernel has no memory for its scratch */
static int mm(float *y, const float *x, const float *w, int64_t K, int64_t N, int64_t R) {
    struct tensor t = {.type = DTYPE_F32, .n_dims = 2, .ne = {K, N, 1, 1}, .data = (void *)w};
    return matmul(y, x, &t, (int)R);
}

/* dst [C][R] = srcᵀ for src [R][C] */
static void transpose(float *dst, const float *src, int64_t R, int64_t C) {
#pragma omp parallel for schedule(static) if ((size_t)(R * C) >= PAR_MIN_WORK)
    for (int64_t c0 = 0; c0 < C; c0 += 16) {
        const int64_t c1 = LB_MIN(C, c0 + 16);
        for (int64_t r0 = 0; r0 < R; r0 += 64) {
            const int64_t r1 = LB_MIN(R, r0 + 64);
            for (int64_t c = c0; c < c1; c++)
                for (int64_t r = r0; r < r1; r++) dst[c * R + r] = src[r * C + c];
        }
    }
}

/* ===== model layout ===== */

/* a layer's parameters in file order: attn_norm, the attention linears, ffn_norm, the FFN linears
 * (each in enum lin order); the index of linear i and of ffn_norm among them */
#define LAYER_PARAMS (2 + LIN_COUNT) /* the two norms and the linears */
static int lin_param(int i) { return 1 + i + !lin_info[i].attn; }
static int ffn_norm_param(void) {
    int i = 0;
    while (i < LIN_COUNT && lin_info[i].attn) i++;
    return 1 + i;
}

static int add_param(struct train_model *tm, const char *name, int n_dims, int64_t ne0, int64_t ne1,
                     bool decay) {
    struct train_param *p = &tm->pt[tm->n_pt++];
    snprintf(p->name, sizeof p->name, "%s", name);
    p->n_dims = n_dims, p->ne[0] = ne0, p->ne[1] = ne1;
    p->off = tm->n, p->n = (size_t)(ne0 * ne1), p->decay = decay;
    tm->n += p->n;
    return 0;
}

void train_model_release(struct train_model *tm) {
    if (tm->blk)
        for (int l = 0; l < tm->c.n_layers; l++) grad_block_release(&tm->blk[l]);
    void *bufs[] = {tm->pt, tm->w,  tm->g,    tm->m,    tm->v,    tm->lw,  tm->blk,     tm->xa,
                    tm->xb, tm->xf, tm->sf,   tm->logits, tm->tr_a, tm->tr_b, tm->wt, tm->gl,
                    tm->row_nll, tm->partial};
    for (size_t i = 0; i < LB_ARRAY_LEN(bufs); i++) free(bufs[i]);
    memset(tm, 0, sizeof *tm);
}

int train_model_init(struct train_model *tm, const struct train_config *c, int max_win) {
    memset(tm, 0, sizeof *tm);
    if (c->dim < 2 || c->hidden_dim < 1 || c->n_layers < 1 || c->n_heads < 1 || c->n_kv_heads < 1 ||
        c->n_heads % c->n_kv_heads || c->dim % c->n_heads || (c->dim / c->n_heads) % 2 ||
        c->vocab < 2 || c->ctx < 2 || max_win < 1)
        return err("train: bad model shape (dim %d, hidden %d, layers %d, heads %d/%d, vocab %d, "
                   "ctx %d): heads must divide dim into an even head_dim, kv heads divide heads",
                   c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->vocab, c->ctx);
    tm->c = *c;
    tm->max_win = max_win;
    struct model_config *mc = &tm->shape.cfg;
    snprintf(mc->arch, sizeof mc->arch, "llama");
    mc->dim = c->dim, mc->hidden_dim = c->hidden_dim, mc->n_layers = c->n_layers;
    mc->n_heads = c->n_heads, mc->n_kv_heads = c->n_kv_heads, mc->head_dim = c->dim / c->n_heads;
    mc->vocab_size = c->vocab, mc->ctx_len = c->ctx;
    mc->norm_eps = c->norm_eps, mc->rope_theta = c->rope_theta, mc->rope_style = ROPE_NORM;
    tm->shape.format = MODEL_FORMAT_GGUF;

    const int64_t D = c->dim, V = c->vocab, L = c->n_layers;
    tm->pt = xcalloc((size_t)(3 + LAYER_PARAMS * L), sizeof *tm->pt, "parameter table");
    if (!tm->pt) goto fail;
    add_param(tm, "token_embd.weight", 2, D, V, true);
    if (!c->tied) add_param(tm, "output.weight", 2, D, V, true);
    add_param(tm, "output_norm.weight", 1, D, 1, false);
    tm->layer_off0 = tm->n;
    for (int l = 0; l < L; l++) {
        char nm[64];
#define P(suffix, nd, a, b, dec)                                                                   \
    snprintf(nm, sizeof nm, "blk.%d." suffix, l);                                                  \
    add_param(tm, nm, nd, a, b, dec)
        P("attn_norm.weight", 1, D, 1, false);
        for (int i = 0; i < LIN_COUNT; i++) {
            if (lin_param(i) == ffn_norm_param() + 1) {
                P("ffn_norm.weight", 1, D, 1, false);
            }
            lin_name(nm, sizeof nm, l, (enum lin)i);
            add_param(tm, nm, 2, lin_dim(mc, lin_info[i].in),
                      lin_dim(mc, lin_info[i].out), true);
        }
#undef P
        if (l == 0) tm->layer_n = tm->n - tm->layer_off0;
    }
    const size_t n = tm->n, R = (size_t)max_win * (size_t)c->ctx;
    const size_t wide = (size_t)LB_MAX(V, D);
    struct {
        float **p;
        size_t n;
    } a[] = {{&tm->w, n},          {&tm->g, n},          {&tm->m, n},
             {&tm->v, n},          {&tm->xa, R * D},     {&tm->xb, R * D},
             {&tm->xf, R * D},     {&tm->sf, R},         {&tm->logits, R * V},
             {&tm->tr_a, wide * R}, {&tm->tr_b, R * D},  {&tm->wt, (size_t)(D * V)},
             {&tm->gl, tm->layer_n}};
    for (size_t i = 0; i < LB_ARRAY_LEN(a); i++)
        if (!(*a[i].p = xcalloc(a[i].n, sizeof(float), "training buffers"))) goto fail;
    tm->row_nll = xcalloc(R, sizeof(double), "training buffers");
    tm->partial = xcalloc(n / CLIP_CHUNK + 1, sizeof(double), "training buffers");
    tm->lw = xcalloc((size_t)L, sizeof *tm->lw, "layer views");
    tm->blk = xcalloc((size_t)L, sizeof *tm->blk, "layer activations");
    if (!tm->row_nll || !tm->partial || !tm->lw || !tm->blk) goto fail;
    tm->tok_embd = tm->w + tm->pt[0].off;
    tm->output = c->tied ? tm->tok_embd : tm->w + tm->pt[1].off;
    tm->out_norm = tm->w + tm->pt[c->tied ? 1 : 2].off;
    for (int l = 0; l < L; l++) {
        const struct train_param *p = &tm->pt[(c->tied ? 2 : 3) + LAYER_PARAMS * l];
        struct grad_weights *w = &tm->lw[l];
        w->attn_norm = tm->w + p[0].off, w->ffn_norm = tm->w + p[ffn_norm_param()].off;
        for (int i = 0; i < LIN_COUNT; i++) w->lin[i] = tm->w + p[lin_param(i)].off;
        if (grad_block_init(&tm->blk[l], &tm->shape, c->ctx, (int64_t)R)) goto fail;
    }
    return 0;
fail:
    train_model_release(tm);
    return -1;
}

int64_t train_n_params(const struct train_model *tm) { return (int64_t)tm->n; }

double train_flops_per_token(const struct train_model *tm, int T) {
    double mat = 0;
    for (int i = 0; i < tm->n_pt; i++)
        if (tm->pt[i].n_dims == 2 && strcmp(tm->pt[i].name, "token_embd.weight"))
            mat += (double)tm->pt[i].n;
    if (tm->c.tied) mat += (double)tm->c.vocab * tm->c.dim; /* the output product */
    return 6 * mat + 6.0 * tm->c.n_layers * T * tm->c.dim;
}

/* splitmix64 */
static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double rng_unit(uint64_t *s) { return ((rng_next(s) >> 11) + 0.5) * 0x1.0p-53; }

void train_model_randomize(struct train_model *tm, uint64_t seed) {
    uint64_t s = seed;
    const double out_scale = 1.0 / sqrt(2.0 * tm->c.n_layers);
    for (int i = 0; i < tm->n_pt; i++) {
        const struct train_param *p = &tm->pt[i];
        float *w = tm->w + p->off;
        if (p->n_dims == 1) {
            for (size_t j = 0; j < p->n; j++) w[j] = 1.0f;
            continue;
        }
        double sd = 0.02;
        const int li = lin_of_tensor(p->name); /* the linears that write the residual stream */
        if (li >= 0 && lin_info[li].out == LIN_DIM_D) sd *= out_scale;
        for (size_t j = 0; j < p->n; j += 2) { /* Box-Muller, two normals per draw */
            const double u1 = rng_unit(&s), u2 = rng_unit(&s), r = sqrt(-2 * log(u1));
            w[j] = (float)(sd * r * cos(2 * M_PI * u2));
            if (j + 1 < p->n) w[j + 1] = (float)(sd * r * sin(2 * M_PI * u2));
        }
    }
    memset(tm->g, 0, tm->n * sizeof(float));
    memset(tm->m, 0, tm->n * sizeof(float));
    memset(tm->v, 0, tm->n * sizeof(float));
}

void train_zero_grad(struct train_model *tm) { memset(tm->g, 0, tm->n * sizeof(float)); }

/* ===== forward ===== */

static int check_win(const struct train_model *tm, int n_win, int T) {
    if (n_win < 1 || n_win > tm->max_win || T < 1 || T > tm->c.ctx)
        return err("train: %d windows of %d tokens (at most %d windows of %d)", n_win, T,
                   tm->max_win, tm->c.ctx);
    return 0;
}

/* x0 = E[tok], through every block and the final norm: xf, sf; logits [R][V]. The input tokens
 * of window b are tok[b·ld .. b·ld + T). */
static int forward_rows(struct train_model *tm, const int *tok, int64_t ld, int n_win, int T) {
    const int D = tm->c.dim, V = tm->c.vocab;
    const int64_t R = (int64_t)n_win * T;
    for (int b = 0; b < n_win; b++)
        for (int t = 0; t < T; t++) {
            const int id = tok[b * ld + t];
            if (id < 0 || id >= V) return err("train: token %d out of the vocabulary (%d)", id, V);
            memcpy(tm->xa + ((int64_t)b * T + t) * D, tm->tok_embd + (int64_t)id * D,
                   (size_t)D * sizeof(float));
        }
    float *x = tm->xa, *y = tm->xb;
    for (int l = 0; l < tm->c.n_layers; l++) {
        if (grad_block_forward(&tm->blk[l], &tm->lw[l], x, n_win, T, y)) return -1;
        float *s = x;
        x = y, y = s;
    }
    /* final RMSNorm of x (the last block's output), as eval/forward.c (sum of squares in double) */
    const float *w = tm->out_norm;
    const float eps = tm->c.norm_eps;
#pragma omp parallel for schedule(static) if ((size_t)R * D >= PAR_MIN_WORK)
    for (int64_t t = 0; t < R; t++) {
        const float *xr = x + t * D;
        float *o = tm->xf + t * D;
        double ss = 0;
        for (int i = 0; i < D; i++) ss += (double)xr[i] * xr[i];
        const float scale = (float)(1.0 / sqrt(ss / D + eps));
        tm->sf[t] = scale;
        for (int i = 0; i < D; i++) o[i] = xr[i] * scale * w[i];
    }
    return mm(tm->logits, tm->xf, tm->output, D, V, R);
}

/* the last block's output (x_L) after forward_rows */
static float *last_x(struct train_model *tm) { return tm->c.n_layers % 2 ? tm->xb : tm->xa; }

/* row_nll[r] = −log softmax(logits[r])[target]; with grad, logits[r] becomes
 * scale·(softmax − onehot) */
static void cross_entropy(struct train_model *tm, const int *tok, int64_t ld, int n_win, int T,
                          bool grad, double scale) {
    const int V = tm->c.vocab;
    const int64_t R = (int64_t)n_win * T;
#pragma omp parallel for schedule(static) if ((size_t)R * V >= PAR_MIN_WORK)
    for (int64_t r = 0; r < R; r++) {
        const int b = (int)(r / T), t = (int)(r % T), target = tok[b * ld + t + 1];
        float *lg = tm->logits + r * V;
        float mx = lg[0];
        for (int i = 1; i < V; i++) mx = lg[i] > mx ? lg[i] : mx;
        double sum = 0;
        for (int i = 0; i < V; i++) sum += exp((double)lg[i] - mx);
        const double lse = mx + log(sum);
        tm->row_nll[r] = lse - lg[target];
        if (grad) {
            for (int i = 0; i < V; i++) lg[i] = (float)(scale * exp((double)lg[i] - lse));
            lg[target] -= (float)scale;
        }
    }
}

static double sum_rows(const struct train_model *tm, int64_t R) {
    double s = 0;
    for (int64_t r = 0; r < R; r++) s += tm->row_nll[r];
    return s;
}

int train_nll(struct train_model *tm, const int *tok, int n_win, int T, double *nll_sum) {
    if (check_win(tm, n_win, T)) return -1;
    for (int b = 0; b < n_win; b++)
        if (tok[(int64_t)b * (T + 1) + T] < 0 || tok[(int64_t)b * (T + 1) + T] >= tm->c.vocab)
            return err("train: target token out of the vocabulary");
    if (forward_rows(tm, tok, T + 1, n_win, T)) return -1;
    cross_entropy(tm, tok, T + 1, n_win, T, false, 0);
    *nll_sum = sum_rows(tm, (int64_t)n_win * T);
    return 0;
}

int train_logits(struct train_model *tm, const int *tok, int T, float *logits) {
    if (check_win(tm, 1, T) || forward_rows(tm, tok, T, 1, T)) return -1;
    memcpy(logits, tm->logits, (size_t)T * tm->c.vocab * sizeof(float));
    return 0;
}

/* ===== backward ===== */

/* g_dst [N][K] += dYᵀ·X for dY [R][N], X [R][K] (through transposes in tr_a, tr_b; the product
 * lands in wt first) */
static int add_grad_w(struct train_model *tm, float *g_dst, const float *dy, int64_t N,
                      const float *x, int64_t K, int64_t R) {
    transpose(tm->tr_a, dy, R, N);
    transpose(tm->tr_b, x, R, K);
    if (mm(tm->wt, tm->tr_a, tm->tr_b, R, K, N)) return -1;
    const int64_t n = N * K;
    const float *src = tm->wt;
#pragma omp parallel for schedule(static) if ((size_t)n >= PAR_MIN_WORK)
    for (int64_t i = 0; i < n; i++) g_dst[i] += src[i];
    return 0;
}

int train_fwd_bwd(struct train_model *tm, const int *tok, int n_win, int T, double scale,
                  double *nll_sum) {
    if (check_win(tm, n_win, T)) return -1;
    for (int b = 0; b < n_win; b++) {
        const int id = tok[(int64_t)b * (T + 1) + T];
        if (id < 0 || id >= tm->c.vocab) return err("train: target token %d out of the vocabulary", id);
    }
    if (forward_rows(tm, tok, T + 1, n_win, T)) return -1;
    const int D = tm->c.dim, V = tm->c.vocab, L = tm->c.n_layers;
    const int64_t R = (int64_t)n_win * T;
    cross_entropy(tm, tok, T + 1, n_win, T, true, scale);
    *nll_sum = sum_rows(tm, R);
    const float *dlog = tm->logits;
    float *g_out = tm->g + (tm->output - tm->w);
    /* output projection: dWout += dlogitsᵀ·xf; dxf = dlogits·Wout (Woutᵀ [D][V] into wt after
     * add_grad_w is done with it) */
    if (add_grad_w(tm, g_out, dlog, V, tm->xf, D, R)) return -1;
    transpose(tm->wt, tm->output, V, D);
    float *xL = last_x(tm), *dy = xL == tm->xa ? tm->xb : tm->xa; /* dy: the free buffer */
    float *dxf = tm->tr_b; /* [R][D] */
    if (mm(dxf, dlog, tm->wt, V, D, R)) return -1;
    /* final RMSNorm: dw += Σ_t dxf·x·s; dx = s·(w⊙dxf) − x·s³/D·Σ w⊙dxf⊙x */
    float *g_norm = tm->g + (tm->out_norm - tm->w);
    const float *wn = tm->out_norm, *sf = tm->sf;
#pragma omp parallel for schedule(static) if ((size_t)R * D >= PAR_MIN_WORK)
    for (int i = 0; i < D; i++) {
        double acc = 0;
        for (int64_t t = 0; t < R; t++) acc += (double)dxf[t * D + i] * xL[t * D + i] * sf[t];
        g_norm[i] += (float)acc;
    }
#pragma omp parallel for schedule(static) if ((size_t)R * D >= PAR_MIN_WORK)
    for (int64_t t = 0; t < R; t++) {
        const float *xr = xL + t * D, *dr = dxf + t * D;
        float *o = dy + t * D;
        double dot = 0;
        for (int i = 0; i < D; i++) dot += (double)wn[i] * dr[i] * xr[i];
        const double st = sf[t], c = dot * st * st * st / D;
        for (int i = 0; i < D; i++) o[i] = (float)(st * wn[i] * dr[i] - xr[i] * c);
    }
    /* the blocks, last to first; dy and xL swap roles (xL is free once the norm is done) */
    float *dx = xL;
    for (int l = L - 1; l >= 0; l--) {
        float *gl = tm->gl;
        const struct train_param *p = &tm->pt[(tm->c.tied ? 2 : 3) + LAYER_PARAMS * l];
        const size_t base = p[0].off;
        struct grad_grads gr = {.attn_norm = gl + (p[0].off - base),
                                .ffn_norm = gl + (p[ffn_norm_param()].off - base)};
        for (int i = 0; i < LIN_COUNT; i++) gr.lin[i] = gl + (p[lin_param(i)].off - base);
        if (grad_block_backward(&tm->blk[l], &tm->lw[l], dy, dx, &gr)) return -1;
        float *gdst = tm->g + base;
        const int64_t n = (int64_t)tm->layer_n;
#pragma omp parallel for schedule(static) if ((size_t)n >= PAR_MIN_WORK)
        for (int64_t i = 0; i < n; i++) gdst[i] += gl[i];
        float *s = dy;
        dy = dx, dx = s;
    }
    /* embedding: gE[tok[r]] += dx0[r], columns in parallel, rows in order */
    float *gE = tm->g + tm->pt[0].off;
    const float *dx0 = dy;
#pragma omp parallel for schedule(static) if ((size_t)R * D >= PAR_MIN_WORK)
    for (int c0 = 0; c0 < D; c0 += 16) {
        const int c1 = LB_MIN(D, c0 + 16);
        for (int64_t r = 0; r < R; r++) {
            const int id = tok[(r / T) * (T + 1) + r % T];
            for (int c = c0; c < c1; c++) gE[(int64_t)id * D + c] += dx0[r * D + c];
        }
    }
    return 0;
}

/* ===== optimizer ===== */

float train_lr(const struct train_opt *o, int step) {
    if (o->warmup > 0 && step < o->warmup) return o->lr * (float)(step + 1) / (float)o->warmup;
    const int span = o->steps - o->warmup;
    if (span <= 0) return o->lr;
    double frac = (double)(step - o->warmup) / span;
    frac = frac < 0 ? 0 : frac > 1 ? 1 : frac;
    return (float)(o->min_lr + 0.5 * (1 + cos(M_PI * frac)) * (o->lr - o->min_lr));
}

double train_clip_grad(struct train_model *tm, float clip) {
    const size_t n = tm->n, n_chunk = (n + CLIP_CHUNK - 1) / CLIP_CHUNK;
    const float *g = tm->g;
    double *part = tm->partial;
#pragma omp parallel for schedule(static) if (n >= PAR_MIN_WORK)
    for (size_t c = 0; c < n_chunk; c++) {
        double s = 0;
        for (size_t i = c * CLIP_CHUNK; i < LB_MIN(n, (c + 1) * CLIP_CHUNK); i++)
            s += (double)g[i] * g[i];
        part[c] = s;
    }
    double ss = 0;
    for (size_t c = 0; c < n_chunk; c++) ss += part[c];
    const double norm = sqrt(ss);
    if (clip > 0 && norm > clip) {
        const float f = (float)(clip / norm);
        float *gw = tm->g;
#pragma omp parallel for schedule(static) if (n >= PAR_MIN_WORK)
        for (size_t i = 0; i < n; i++) gw[i] *= f;
    }
    return norm;
}

void train_adamw(struct train_model *tm, const struct train_opt *o, int t, float lr) {
    const float b1 = o->beta1, b2 = o->beta2, eps = o->eps;
    const float c1 = (float)(1 - pow(b1, t)), c2 = (float)(1 - pow(b2, t));
    for (int k = 0; k < tm->n_pt; k++) {
        const struct train_param *p = &tm->pt[k];
        const float wd = p->decay ? o->weight_decay : 0;
        float *w = tm->w + p->off, *m = tm->m + p->off, *v = tm->v + p->off;
        const float *g = tm->g + p->off;
        const int64_t n = (int64_t)p->n;
#pragma omp parallel for schedule(static) if ((size_t)n >= PAR_MIN_WORK)
        for (int64_t i = 0; i < n; i++) {
            m[i] = b1 * m[i] + (1 - b1) * g[i];
            v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
            const float mh = m[i] / c1, vh = v[i] / c2;
            w[i] -= lr * (mh / (sqrtf(vh) + eps) + wd * w[i]);
        }
    }
}

/* ===== export ===== */

int train_to_model(const struct train_model *tm, struct model *m) {
    memset(m, 0, sizeof *m);
    m->cfg = tm->shape.cfg;
    m->format = MODEL_FORMAT_GGUF;
    snprintf(m->path, sizeof m->path, "(training)");
    for (int i = 0; i < tm->n_pt; i++) {
        const struct train_param *p = &tm->pt[i];
        struct tensor t;
        const int64_t ne[2] = {p->ne[0], p->ne[1]};
        if (tensor_init(&t, p->name, DTYPE_F32, p->n_dims, ne)) goto fail;
        t.data = tm->w + p->off;
        if (model_add_tensor(m, &t)) goto fail;
    }
    if (model_bind(m)) goto fail;
    return 0;
fail:
    model_release(m);
    return -1;
}

int train_gguf_put_vocab(struct gguf_writer *w, const struct tokenizer *tok) {
    const int n = tok->n_vocab;
    char **pieces = xcalloc((size_t)n, sizeof *pieces, "vocabulary");
    int32_t *types = xcalloc((size_t)n, sizeof *types, "vocabulary");
    int ret = -1;
    if (!pieces || !types) goto out;
    for (int i = 0; i < n; i++) {
        const char *s = tok_piece(tok, i);
        const int len = tok->len[i] < 0 ? 0 : tok->len[i];
        size_t nsp = 0;
        for (int j = 0; j < len; j++) nsp += s[j] == ' ';
        char *d = pieces[i] = xmalloc((size_t)len + 2 * nsp + 1, "vocabulary");
        if (!d) goto out;
        for (int j = 0; j < len; j++) {
            if (s[j] == ' ') { /* U+2581 LOWER ONE EIGHTH BLOCK, SentencePiece's space */
                *d++ = (char)0xE2, *d++ = (char)0x96, *d++ = (char)0x81;
            } else {
                *d++ = s[j];
            }
        }
        *d = 0;
        types[i] = tok->type[i] ? tok->type[i] : TOK_TYPE_NORMAL;
    }
    if (gguf_writer_str(w, "tokenizer.ggml.model", "llama") ||
        gguf_writer_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)pieces, (uint64_t)n) ||
        gguf_writer_arr(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, tok->score, (uint64_t)n) ||
        gguf_writer_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, (uint64_t)n) ||
        (tok->bos >= 0 && gguf_writer_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)tok->bos)) ||
        (tok->eos >= 0 && gguf_writer_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)tok->eos)) ||
        (tok->unk >= 0 && gguf_writer_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)tok->unk)))
        goto out;
    ret = 0;
out:
    for (int i = 0; pieces && i < n; i++) free(pieces[i]);
    free(pieces);
    free(types);
    return ret;
}
