/* eval/grad.c: one decoder block forward (saving activations) and its backward (eval/grad.h). */
#include "eval/grad.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/forward.h"
#include "kernels/matmul.h"

/* below this many element-operations a loop runs on one thread (as eval/forward.c) */
#define PAR_MIN_WORK ((size_t)1 << 16)

void grad_block_release(struct grad_block *g) {
    float *bufs[] = {
        g->rope_cos, g->rope_sin, g->x,   g->s1,  g->xn1,          g->q,           g->k,
        g->v,        g->att,      g->lse, g->h1,  g->s2,           g->xn2,         g->gate,
        g->up,       g->act,      g->dh1, g->dgu, g->dxn,          g->datt,        g->dqkv,
        g->yt,       g->xt,       g->wt,  g->q0,  g->k0,           g->sq,          g->sk,
        g->po,       g->fo,       g->sp1, g->sp2, g->rope_cos_swa, g->rope_sin_swa,
        g->mlog,     g->mw,       g->eg,  g->eu,  g->ea,           g->ey,          g->sg,
        g->sy,       g->mdy,      g->mdx, g->dmw};
    for (size_t i = 0; i < LB_ARRAY_LEN(bufs); i++) free(bufs[i]);
    free(g->msel), free(g->mpos), free(g->arow), free(g->eoff);
    memset(g, 0, sizeof *g);
}

int grad_block_init(struct grad_block *g, const struct model *m, int n_ctx, int64_t max_rows) {
    memset(g, 0, sizeof *g);
    const struct model_config *c = &m->cfg;
    if (n_ctx < 1 || max_rows < 1 || c->dim < 1 || (c->n_expert < 1 && c->hidden_dim < 1) ||
        c->head_dim < 2 ||
        c->head_dim % 2 || c->n_kv_heads < 1 || c->n_heads % c->n_kv_heads)
        return err("grad: bad block shape (n_ctx %d, rows %lld, dim %d, hidden %d, head_dim %d, "
                   "heads %d/%d)", n_ctx, (long long)max_rows, c->dim, c->hidden_dim, c->head_dim,
                   c->n_heads, c->n_kv_heads);
    if (c->online_had || (c->n_expert > 0 && (c->post_norms || c->gelu)))
        return err("grad: the block backward (AutoRound, AQLM fine-tuning) covers llama, mistral, "
                   "qwen2, qwen3, phi3, gemma2, gemma3, mixtral and qwen2moe blocks; %s blocks "
                   "with %s are not supported yet", c->arch,
                   c->online_had ? "online Hadamard rotations"
                                 : "mixture-of-experts MLPs and post-norms or gelu");
    const bool moe = c->n_expert > 0;
    if (moe && (c->n_expert_used < 1 || c->n_expert_used > c->n_expert || c->expert_hidden < 1 ||
                c->shared_hidden < 0))
        return err("grad: bad mixture-of-experts shape (%d experts, %d per token, hidden %d, "
                   "shared %d)", c->n_expert, c->n_expert_used, c->expert_hidden,
                   c->shared_hidden);
    g->D = c->dim, g->H = moe ? c->shared_hidden : c->hidden_dim, g->n_heads = c->n_heads;
    g->n_kv_heads = c->n_kv_heads;
    g->E = moe ? c->n_expert : 0, g->K = moe ? c->n_expert_used : 0;
    g->He = moe ? c->expert_hidden : 0, g->expert_norm = c->expert_norm;
    g->hd = c->head_dim, g->qd = c->n_heads * c->head_dim, g->kvd = c->n_kv_heads * c->head_dim;
    g->eps = c->norm_eps;
    g->rope_style = c->rope_style;
    g->post_norms = c->post_norms, g->gelu = c->gelu;
    g->attn_mul = c->attn_scale > 0 ? c->attn_scale * sqrtf((float)c->head_dim) : 0;
    g->softcap = c->attn_softcap, g->swa_window = c->swa_window;
    g->n_ctx = n_ctx;
    g->max_rows = max_rows;
    const size_t R = (size_t)max_rows, D = (size_t)g->D, H = (size_t)g->H, qd = (size_t)g->qd,
                 kvd = (size_t)g->kvd, qkv = qd + 2 * kvd, half = (size_t)g->hd / 2;
    const size_t He = (size_t)g->He, E = (size_t)g->E, RK = R * (size_t)g->K;
    const size_t wide = LB_MAX(LB_MAX(LB_MAX(D, 2 * H), LB_MAX(qkv, qd)), LB_MAX(2 * He, E));
    g->wt_floats = LB_MAX(LB_MAX(LB_MAX(2 * H * D, qkv * D), qd * D), LB_MAX(2 * He * D, E * D));
    struct {
        float **p;
        size_t n;
    } a[] = {
        {&g->rope_cos, (size_t)n_ctx * half}, {&g->rope_sin, (size_t)n_ctx * half},
        {&g->x, R * D}, {&g->s1, R}, {&g->xn1, R * D}, {&g->q, R * qd}, {&g->k, R * kvd},
        {&g->v, R * kvd}, {&g->att, R * qd}, {&g->lse, R * (size_t)g->n_heads}, {&g->h1, R * D},
        {&g->s2, R}, {&g->xn2, R * D}, {&g->gate, R * H}, {&g->up, R * H}, {&g->act, R * H},
        {&g->dh1, R * D}, {&g->dgu, R * 2 * LB_MAX(H, He)}, {&g->dxn, R * D}, {&g->datt, R * qd},
        {&g->dqkv, R * qkv}, {&g->yt, R * wide}, {&g->xt, R * wide}, {&g->wt, g->wt_floats},
        {&g->q0, c->qk_norm ? R * qd : 1}, {&g->k0, c->qk_norm ? R * kvd : 1},
        {&g->sq, c->qk_norm ? R * (size_t)g->n_heads : 1},
        {&g->sk, c->qk_norm ? R * (size_t)g->n_kv_heads : 1},
        {&g->po, c->post_norms ? R * D : 1}, {&g->fo, c->post_norms ? R * D : 1},
        {&g->sp1, c->post_norms ? R : 1}, {&g->sp2, c->post_norms ? R : 1},
        {&g->rope_cos_swa, fwd_rope_swa_differs(c) ? (size_t)n_ctx * half : 0},
        {&g->rope_sin_swa, fwd_rope_swa_differs(c) ? (size_t)n_ctx * half : 0},
        {&g->mlog, R * E}, {&g->mw, RK}, {&g->eg, RK * He}, {&g->eu, RK * He},
        {&g->ea, RK * He}, {&g->ey, RK * D}, {&g->sg, H ? R : 0}, {&g->sy, H ? R * D : 0},
        {&g->mdy, moe ? R * LB_MAX(D, E) : 0}, {&g->mdx, moe ? R * D : 0}, {&g->dmw, RK},
    };
    struct {
        int **p;
        size_t n;
    } ai[] = {{&g->msel, RK}, {&g->mpos, RK}, {&g->arow, RK}, {&g->eoff, moe ? E + 1 : 0}};
    for (size_t i = 0; i < LB_ARRAY_LEN(a); i++)
        if (a[i].n && !(*a[i].p = xmalloc(a[i].n * sizeof(float), "block gradient buffers"))) {
            grad_block_release(g);
            return -1;
        }
    for (size_t i = 0; i < LB_ARRAY_LEN(ai); i++)
        if (ai[i].n && !(*ai[i].p = xmalloc(ai[i].n * sizeof(int), "block gradient buffers"))) {
            grad_block_release(g);
            return -1;
        }
    fwd_rope_table(m, n_ctx, g->rope_cos, g->rope_sin);
    if (g->rope_cos_swa) fwd_rope_table_swa(m, n_ctx, g->rope_cos_swa, g->rope_sin_swa);
    return 0;
}

/* ===== small kernels ===== */

/* y [R][N] = x [R][K]·Wᵀ, W [N][K]; a failure (out of memory for the kernel's scratch) is kept in
 * g->mm_failed, which the forward and backward report */
static void mm(struct grad_block *g, float *y, const float *x, const float *w, int64_t K, int64_t N,
               int64_t R) {
    struct tensor t = {.type = DTYPE_F32, .n_dims = 2, .ne = {K, N, 1, 1}, .data = (void *)w};
    if (!g->mm_failed && matmul(y, x, &t, (int)R)) g->mm_failed = true;
}

/* dst[c·ldd + r] = src[r·lds + c] for r < R, c < C (srcᵀ, in tiles) */
static void transpose(float *dst, int64_t ldd, const float *src, int64_t R, int64_t C,
                      int64_t lds) {
#pragma omp parallel for schedule(static) if ((size_t)(R * C) >= PAR_MIN_WORK)
    for (int64_t c0 = 0; c0 < C; c0 += 16) {
        const int64_t c1 = LB_MIN(C, c0 + 16);
        for (int64_t r0 = 0; r0 < R; r0 += 64) {
            const int64_t r1 = LB_MIN(R, r0 + 64);
            for (int64_t c = c0; c < c1; c++)
                for (int64_t r = r0; r < r1; r++) dst[c * ldd + r] = src[r * lds + c];
        }
    }
}

/* out = x·(1/rms)·w per row, s[t] = 1/rms (eval/forward.c rmsnorm, plus the saved scale) */
static void rmsnorm_fwd(float *out, float *s, const float *x, const float *w, int64_t R, int n,
                        float eps) {
#pragma omp parallel for schedule(static) if ((size_t)R * n >= PAR_MIN_WORK)
    for (int64_t t = 0; t < R; t++) {
        const float *xr = x + t * n;
        float *o = out + t * n;
        double ss = 0;
        for (int i = 0; i < n; i++) ss += (double)xr[i] * xr[i];
        const float scale = (float)(1.0 / sqrt(ss / n + eps));
        s[t] = scale;
        for (int i = 0; i < n; i++) o[i] = xr[i] * scale * w[i];
    }
}

/* dx (+)= RMSNorm backward of dy for rows x with saved 1/rms s: dx = s·(w⊙dy) − x·s³/n·Σ w⊙dy⊙x.
 * accumulate: dx += (the residual path's gradient is already in dx) */
static void rmsnorm_bwd(float *dx, const float *dy, const float *x, const float *s, const float *w,
                        int64_t R, int n) {
#pragma omp parallel for schedule(static) if ((size_t)R * n >= PAR_MIN_WORK)
    for (int64_t t = 0; t < R; t++) {
        const float *xr = x + t * n, *dr = dy + t * n;
        float *o = dx + t * n;
        double dot = 0;
        for (int i = 0; i < n; i++) dot += (double)w[i] * dr[i] * xr[i];
        const double st = s[t], c = dot * st * st * st / n;
        for (int i = 0; i < n; i++) o[i] += (float)(st * w[i] * dr[i] - xr[i] * c);
    }
}

/* dw[i] = Σ_t dy[t][i]·x[t][i]·s[t] (columns in parallel, rows summed in order) */
static void rmsnorm_dw(float *dw, const float *dy, const float *x, const float *s, int64_t R,
                       int n) {
#pragma omp parallel for schedule(static) if ((size_t)R * n >= PAR_MIN_WORK)
    for (int i = 0; i < n; i++) {
        double acc = 0;
        for (int64_t t = 0; t < R; t++) acc += (double)dy[t * n + i] * x[t * n + i] * s[t];
        dw[i] = (float)acc;
    }
}

/* the RMSNorm backward of every head (hd wide) of rows [R][n_heads·hd] of stride ld, in place:
 * d holds the gradient of the normalized heads and gets that of x0 (the heads before the norm,
 * saved 1/rms s [R][n_heads]) */
static void head_norm_bwd(float *d, int64_t ld, const float *x0, const float *s, const float *w,
                          int64_t R, int n_heads, int hd) {
#pragma omp parallel for schedule(static) if ((size_t)R * n_heads * hd >= PAR_MIN_WORK)
    for (int64_t t = 0; t < R; t++)
        for (int h = 0; h < n_heads; h++) {
            float *dr = d + t * ld + (int64_t)h * hd;
            const float *xr = x0 + (t * n_heads + h) * hd;
            double dot = 0;
            for (int i = 0; i < hd; i++) dot += (double)w[i] * dr[i] * xr[i];
            const double st = s[t * n_heads + h], c = dot * st * st * st / hd;
            for (int i = 0; i < hd; i++) dr[i] = (float)(st * w[i] * dr[i] - xr[i] * c);
        }
}

/* column sums of a [R][ld] (first n columns), in row order */
static void col_sum(float *out, const float *a, int64_t R, int n, int64_t ld) {
    for (int i = 0; i < n; i++) {
        double acc = 0;
        for (int64_t t = 0; t < R; t++) acc += a[t * ld + i];
        out[i] = (float)acc;
    }
}

/* out[i] = Σ_t a[t][i]·s[t] for a [R][n] (columns in parallel, rows summed in order) */
static void col_sum_scaled(float *out, const float *a, const float *s, int64_t R, int n) {
#pragma omp parallel for schedule(static) if ((size_t)R * n >= PAR_MIN_WORK)
    for (int i = 0; i < n; i++) {
        double acc = 0;
        for (int64_t t = 0; t < R; t++) acc += (double)a[t * n + i] * s[t];
        out[i] = (float)acc;
    }
}

/* rotate (inverse = false) or un-rotate every head of rows [R][n_heads·hd] (row stride ld) in
 * place; row t of window b is at position t % T */
static void rope_apply(const struct grad_block *g, float *x, int64_t R, int T, int n_heads,
                       int64_t ld, bool inverse) {
    const int hd = g->hd, half = hd / 2;
    const bool norm = g->rope_style == ROPE_NORM;
#pragma omp parallel for schedule(static) if ((size_t)R * n_heads * hd >= PAR_MIN_WORK)
    for (int64_t r = 0; r < R; r++) {
        const int p = (int)(r % T);
        const float *cs = g->rc + (size_t)p * half, *sn = g->rs + (size_t)p * half;
        for (int h = 0; h < n_heads; h++) {
            float *v = x + r * ld + (int64_t)h * hd;
            for (int i = 0; i < half; i++) {
                const int a = norm ? 2 * i : i, b = norm ? 2 * i + 1 : i + half;
                const float x0 = v[a], x1 = v[b], sgn = inverse ? -1.0f : 1.0f;
                v[a] = x0 * cs[i] - x1 * (sgn * sn[i]);
                v[b] = x0 * (sgn * sn[i]) + x1 * cs[i];
            }
        }
    }
}

static inline float dotf(const float *a, const float *b, int n) {
    float s = 0;
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* ----- attention: one task = (window b, kv head g) with every query head reading g -----
 * The task gathers its keys and values transposed (Kt, Vt [hd][T]), so every inner loop runs
 * along the keys j and vectorizes (omp simd); the body is compiled for AVX-512, AVX2 and generic
 * x86-64 (the kernels' path, kernels/cpu.h: cpu_isa()). Scores are Σ_i q_i·k_ij in i order,
 * times 1/√hd, as attention_ref; exp is exp_neg below in the forward and the backward alike. */

/* e^x for x <= ~0 (Cody-Waite reduction, Cephes' degree-6 polynomial; about 2 ulp; x < −87
 * gives e^−87 ≈ 1.6e−38, 0 next to any probability that matters) */
static inline float exp_neg(float x) {
    x = x > -87.0f ? x : -87.0f;
    const float fn = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* round(x/ln2) */
    const float r = (x - fn * 0.693359375f) - fn * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    const int32_t e = ((int32_t)fn + 127) << 23;
    float sc;
    memcpy(&sc, &e, sizeof sc);
    return p * sc;
}

#define ATTN_INLINE static LB_INLINE

/* Kt/Vt of task (b, kg) from the [R][kvd] rows */
ATTN_INLINE void attn_gather(const struct grad_block *g, const float *src, int64_t r0, int T,
                             int kg, float *dst) {
    const int hd = g->hd, kvd = g->kvd;
    for (int j = 0; j < T; j++)
        for (int i = 0; i < hd; i++)
            dst[(int64_t)i * T + j] = src[(r0 + j) * kvd + (int64_t)kg * hd + i];
}

/* queries per step: each key/value row loaded once serves QB queries (the last step of a
 * window repeats its last query in the unused rows, whose results are dropped) */
#define QB 4

/* s_q[j] = scale·Σ_i q_q,i·Kt[i][j] for the QB queries q[], j < n (rows of s QB·T apart) */
ATTN_INLINE void attn_scores(const float *const *q, const float *kt, int hd, int T, int n,
                             float scale, float *s) {
    float *s0 = s, *s1 = s + T, *s2 = s + 2 * T, *s3 = s + 3 * T;
#pragma omp simd
    for (int j = 0; j < n; j++) s0[j] = s1[j] = s2[j] = s3[j] = 0;
    for (int i = 0; i < hd; i++) {
        const float a0 = q[0][i], a1 = q[1][i], a2 = q[2][i], a3 = q[3][i];
        const float *kr = kt + (int64_t)i * T;
#pragma omp simd
        for (int j = 0; j < n; j++) {
            s0[j] += a0 * kr[j];
            s1[j] += a1 * kr[j];
            s2[j] += a2 * kr[j];
            s3[j] += a3 * kr[j];
        }
    }
#pragma omp simd
    for (int j = 0; j < n; j++) {
        s0[j] *= scale;
        s1[j] *= scale;
        s2[j] *= scale;
        s3[j] *= scale;
    }
}

/* the first key query position t sees: t − window + 1 in a sliding layer, else 0 */
ATTN_INLINE int attn_first_key(const struct grad_block *g, int t) {
    return g->window > 0 && t - g->window + 1 > 0 ? t - g->window + 1 : 0;
}

/* gemma2: the QB rows of scores s (T apart, the first n of each) → cap·tanh(s/cap), as
 * eval/forward.c caps them; dcap (or NULL) gets the derivative 1 − tanh²(s/cap) */
ATTN_INLINE void attn_softcap(float *s, float *dcap, int T, int n, float cap) {
    for (int c = 0; c < QB; c++)
        for (int j = 0; j < n; j++) {
            const float t = tanhf(s[(int64_t)c * T + j] / cap);
            s[(int64_t)c * T + j] = cap * t;
            if (dcap) dcap[(int64_t)c * T + j] = 1.0f - t * t;
        }
}

ATTN_INLINE void attn_fwd_task(struct grad_block *g, int b, int kg, int T, float *buf) {
    const int nh = g->n_heads, hd = g->hd, qd = g->qd, rep = nh / g->n_kv_heads;
    const float scale = 1.0f / sqrtf((float)hd);
    const int64_t r0 = (int64_t)b * T;
    float *kt = buf, *vt = buf + (int64_t)hd * T, *s = buf + 2 * (int64_t)hd * T;
    attn_gather(g, g->k, r0, T, kg, kt);
    attn_gather(g, g->v, r0, T, kg, vt);
    for (int h = kg * rep; h < (kg + 1) * rep; h++)
        for (int t0 = 0; t0 < T; t0 += QB) {
            const int nq = LB_MIN(QB, T - t0), n = t0 + nq;
            const float *q[QB];
            float inv[QB];
            for (int c = 0; c < QB; c++)
                q[c] = g->q + (r0 + t0 + LB_MIN(c, nq - 1)) * qd + (int64_t)h * hd;
            attn_scores(q, kt, hd, T, n, scale, s);
            if (g->softcap > 0) attn_softcap(s, NULL, T, n, g->softcap);
            for (int c = 0; c < QB; c++) { /* softmax of query t0 + c over j0 <= j <= its
                                            * position */
                const int tq = t0 + LB_MIN(c, nq - 1), j0 = attn_first_key(g, tq), nw = tq + 1 - j0;
                float *sc = s + (int64_t)c * T, *sw = sc + j0, mx = -INFINITY, sum = 0;
#pragma omp simd reduction(max : mx)
                for (int j = 0; j < nw; j++) mx = sw[j] > mx ? sw[j] : mx;
#pragma omp simd reduction(+ : sum)
                for (int j = 0; j < nw; j++) {
                    sw[j] = exp_neg(sw[j] - mx);
                    sum += sw[j];
                }
                for (int j = 0; j < j0; j++) sc[j] = 0;
                for (int j = tq + 1; j < n; j++) sc[j] = 0;
                inv[c] = 1.0f / sum;
                if (c < nq) g->lse[(r0 + t0 + c) * nh + h] = mx + logf(sum);
            }
            const float *p0 = s, *p1 = s + T, *p2 = s + 2 * T, *p3 = s + 3 * T;
            for (int i = 0; i < hd; i++) {
                const float *vr = vt + (int64_t)i * T;
                float a0 = 0, a1 = 0, a2 = 0, a3 = 0;
#pragma omp simd reduction(+ : a0, a1, a2, a3)
                for (int j = 0; j < n; j++) {
                    a0 += p0[j] * vr[j];
                    a1 += p1[j] * vr[j];
                    a2 += p2[j] * vr[j];
                    a3 += p3[j] * vr[j];
                }
                const float a[QB] = {a0, a1, a2, a3};
                for (int c = 0; c < nq; c++)
                    g->att[(r0 + t0 + c) * qd + (int64_t)h * hd + i] = a[c] * inv[c];
            }
        }
}

/* the backward of task (b, kg): dq (rotated) of its query heads, dk (rotated) and dv of kv head
 * kg, into dqkv; buf holds (4·hd + 3·QB)·T floats (the last QB·T: the soft-cap's derivative) */
ATTN_INLINE void attn_bwd_task(struct grad_block *g, int b, int kg, int T, float *buf) {
    const int nh = g->n_heads, hd = g->hd, qd = g->qd, kvd = g->kvd, rep = nh / g->n_kv_heads;
    const int64_t ld = qd + 2 * kvd, HT = (int64_t)hd * T, r0 = (int64_t)b * T;
    const float scale = 1.0f / sqrtf((float)hd);
    float *kt = buf, *vt = buf + HT, *dkt = buf + 2 * HT, *dvt = buf + 3 * HT;
    float *p = buf + 4 * HT, *ds = p + QB * (int64_t)T, *dcap = ds + QB * (int64_t)T;
    attn_gather(g, g->k, r0, T, kg, kt);
    attn_gather(g, g->v, r0, T, kg, vt);
    memset(dkt, 0, (size_t)(2 * HT) * sizeof *dkt);
    for (int h = kg * rep; h < (kg + 1) * rep; h++)
        for (int t0 = 0; t0 < T; t0 += QB) {
            const int nq = LB_MIN(QB, T - t0), n = t0 + nq;
            const float *q[QB], *dor[QB];
            float dsum[QB];
            for (int c = 0; c < QB; c++) {
                const int64_t rt = r0 + t0 + LB_MIN(c, nq - 1);
                q[c] = g->q + rt * qd + (int64_t)h * hd;
                dor[c] = g->datt + rt * qd + (int64_t)h * hd;
                dsum[c] = dotf(dor[c], g->att + rt * qd + (int64_t)h * hd, hd);
            }
            attn_scores(q, kt, hd, T, n, scale, p);
            if (g->softcap > 0) attn_softcap(p, dcap, T, n, g->softcap);
            for (int c = 0; c < QB; c++) { /* P from the saved log-sum-exp; 0 outside the keys
                                            * the query sees and on repeated rows */
                float *pc = p + (int64_t)c * T;
                const int nn = c < nq ? t0 + c + 1 : 0, j0 = c < nq ? attn_first_key(g, t0 + c) : 0;
                const float lse = c < nq ? g->lse[(r0 + t0 + c) * nh + h] : 0;
                for (int j = 0; j < j0; j++) pc[j] = 0;
#pragma omp simd
                for (int j = j0; j < nn; j++) pc[j] = exp_neg(pc[j] - lse);
                for (int j = nn; j < n; j++) pc[j] = 0;
            }
            float *d0 = ds, *d1 = ds + T, *d2 = ds + 2 * T, *d3 = ds + 3 * T;
            const float *p0 = p, *p1 = p + T, *p2 = p + 2 * T, *p3 = p + 3 * T;
#pragma omp simd
            for (int j = 0; j < n; j++) d0[j] = d1[j] = d2[j] = d3[j] = 0;
            for (int i = 0; i < hd; i++) { /* dP = dO·vᵀ */
                const float e0 = dor[0][i], e1 = dor[1][i], e2 = dor[2][i], e3 = dor[3][i];
                const float *vr = vt + (int64_t)i * T;
#pragma omp simd
                for (int j = 0; j < n; j++) {
                    d0[j] += e0 * vr[j];
                    d1[j] += e1 * vr[j];
                    d2[j] += e2 * vr[j];
                    d3[j] += e3 * vr[j];
                }
            }
#pragma omp simd
            for (int j = 0; j < n; j++) { /* dS = P⊙(dP − rowsum(dO⊙O)) */
                d0[j] = p0[j] * (d0[j] - dsum[0]);
                d1[j] = p1[j] * (d1[j] - dsum[1]);
                d2[j] = p2[j] * (d2[j] - dsum[2]);
                d3[j] = p3[j] * (d3[j] - dsum[3]);
            }
            if (g->softcap > 0) /* through cap·tanh(s/cap) */
                for (int c = 0; c < QB; c++)
                    for (int j = 0; j < n; j++) ds[(int64_t)c * T + j] *= dcap[(int64_t)c * T + j];
            for (int i = 0; i < hd; i++) {
                const float *kr = kt + (int64_t)i * T;
                float *dk = dkt + (int64_t)i * T, *dv = dvt + (int64_t)i * T;
                const float c0 = q[0][i] * scale, c1 = q[1][i] * scale, c2 = q[2][i] * scale,
                            c3 = q[3][i] * scale;
                const float e0 = dor[0][i], e1 = dor[1][i], e2 = dor[2][i], e3 = dor[3][i];
                float a0 = 0, a1 = 0, a2 = 0, a3 = 0;
#pragma omp simd reduction(+ : a0, a1, a2, a3)
                for (int j = 0; j < n; j++) {
                    a0 += d0[j] * kr[j];
                    a1 += d1[j] * kr[j];
                    a2 += d2[j] * kr[j];
                    a3 += d3[j] * kr[j];
                    dk[j] += c0 * d0[j] + c1 * d1[j] + c2 * d2[j] + c3 * d3[j];
                    dv[j] += e0 * p0[j] + e1 * p1[j] + e2 * p2[j] + e3 * p3[j];
                }
                const float a[QB] = {a0, a1, a2, a3};
                for (int c = 0; c < nq; c++)
                    g->dqkv[(r0 + t0 + c) * ld + (int64_t)h * hd + i] = a[c] * scale;
            }
        }
    for (int j = 0; j < T; j++)
        for (int i = 0; i < hd; i++) {
            float *d = g->dqkv + (r0 + j) * ld + qd + (int64_t)kg * hd + i;
            d[0] = dkt[(int64_t)i * T + j];
            d[kvd] = dvt[(int64_t)i * T + j];
        }
}

#if LB_X86
LB_AVX512F static void attn_fwd_avx512(struct grad_block *g, int b, int kg, int T, float *buf) {
    attn_fwd_task(g, b, kg, T, buf);
}
LB_AVX2F static void attn_fwd_avx2(struct grad_block *g, int b, int kg, int T, float *buf) {
    attn_fwd_task(g, b, kg, T, buf);
}
LB_AVX512F static void attn_bwd_avx512(struct grad_block *g, int b, int kg, int T, float *buf) {
    attn_bwd_task(g, b, kg, T, buf);
}
LB_AVX2F static void attn_bwd_avx2(struct grad_block *g, int b, int kg, int T, float *buf) {
    attn_bwd_task(g, b, kg, T, buf);
}
#endif
static void attn_fwd_generic(struct grad_block *g, int b, int kg, int T, float *buf) {
    attn_fwd_task(g, b, kg, T, buf);
}
static void attn_bwd_generic(struct grad_block *g, int b, int kg, int T, float *buf) {
    attn_bwd_task(g, b, kg, T, buf);
}

typedef void (*attn_task_fn)(struct grad_block *g, int b, int kg, int T, float *buf);

/* the forward [0] and backward [1] task of each path (kernels/cpu.h) */
static const attn_task_fn attn_tasks[CPU_ISA_COUNT][2] = {
    [CPU_ISA_GENERIC] = {attn_fwd_generic, attn_bwd_generic},
#if LB_X86
    [CPU_ISA_AVX2] = {attn_fwd_avx2, attn_bwd_avx2},
    [CPU_ISA_AVX512] = {attn_fwd_avx512, attn_bwd_avx512},
#endif
};

/* run fn over every (window, kv head) task, each thread with a buffer of n_buf floats */
static int attn_run(struct grad_block *g, int n_win, int T, bool bwd) {
    const attn_task_fn fn = attn_tasks[cpu_isa()][bwd];
    const int nkv = g->n_kv_heads, n_task = n_win * nkv;
    const size_t n_buf = (size_t)(4 * g->hd + 3 * QB) * (size_t)T;
    int bad = 0;
#pragma omp parallel if ((size_t)n_win * T * T * g->qd >= PAR_MIN_WORK)
    {
        float *buf = malloc(n_buf * sizeof *buf);
        if (!buf) {
#pragma omp atomic write
            bad = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (int task = 0; task < n_task; task++)
            if (buf) fn(g, task / nkv, task % nkv, T, buf);
        free(buf);
    }
    return bad ? err("out of memory in the attention (%zu floats per thread)", n_buf) : 0;
}

/* ===== the MoE MLP (grad.h) ===== */

/* act [n] = silu(gate)·up, as eval/forward.c computes it */
static void swiglu(float *act, const float *gate, const float *up, int64_t n) {
#pragma omp parallel for schedule(static) if ((size_t)n >= PAR_MIN_WORK)
    for (int64_t i = 0; i < n; i++) act[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

/* dst [n][D] = the rows rows[0..n) of src [.][D] */
static void gather_rows(float *dst, const float *src, const int *rows, int n, int D) {
#pragma omp parallel for schedule(static) if ((size_t)n * D >= PAR_MIN_WORK)
    for (int i = 0; i < n; i++)
        memcpy(dst + (int64_t)i * D, src + (int64_t)rows[i] * D, (size_t)D * sizeof *dst);
}

/* the choice j of row t with the smallest expert index above prev */
static int next_choice(const struct grad_block *g, int64_t t, int prev) {
    const int *sel = g->msel + t * g->K;
    int jm = -1;
    for (int j = 0; j < g->K; j++)
        if (sel[j] > prev && (jm < 0 || sel[j] < sel[jm])) jm = j;
    return jm;
}

/* f [R][D] = the MoE MLP of xn2 (grad.h), saving the routing and each expert's activations */
static void moe_fwd(struct grad_block *g, const struct grad_weights *w, int64_t R, float *f) {
    const int D = g->D, E = g->E, K = g->K, He = g->He, H = g->H;
    mm(g, g->mlog, g->xn2, w->router, D, E, R);
#pragma omp parallel for schedule(static) if ((size_t)R * E * K >= PAR_MIN_WORK)
    for (int64_t t = 0; t < R; t++)
        fwd_moe_route(E, K, g->expert_norm, g->mlog + t * E, g->msel + t * K, g->mw + t * K);
    int n = 0; /* the assignments, by expert ascending, rows ascending (as eval/forward.c) */
    for (int e = 0; e < E; e++) {
        g->eoff[e] = n;
        for (int64_t t = 0; t < R; t++)
            for (int j = 0; j < K; j++)
                if (g->msel[t * K + j] == e) g->arow[n] = (int)t, g->mpos[t * K + j] = n++;
    }
    g->eoff[E] = n;
    for (int e = 0; e < E; e++) {
        const int a0 = g->eoff[e], ne = g->eoff[e + 1] - a0;
        if (!ne) continue;
        float *eg = g->eg + (int64_t)a0 * He, *eu = g->eu + (int64_t)a0 * He,
              *ea = g->ea + (int64_t)a0 * He;
        gather_rows(g->mdx, g->xn2, g->arow + a0, ne, D);
        mm(g, eg, g->mdx, w->ex[3 * e], D, He, ne);
        mm(g, eu, g->mdx, w->ex[3 * e + 1], D, He, ne);
        swiglu(ea, eg, eu, (int64_t)ne * He);
        mm(g, g->ey + (int64_t)a0 * D, ea, w->ex[3 * e + 2], He, D, ne);
    }
#pragma omp parallel for schedule(static) if ((size_t)R * D * K >= PAR_MIN_WORK)
    for (int64_t t = 0; t < R; t++) { /* Σ w·y in ascending expert order, as eval/forward.c */
        float *o = f + t * D;
        memset(o, 0, (size_t)D * sizeof *o);
        for (int i = 0, prev = -1; i < K; i++) {
            const int j = next_choice(g, t, prev);
            const float wt = g->mw[t * K + j], *y = g->ey + (int64_t)g->mpos[t * K + j] * D;
            for (int d = 0; d < D; d++) o[d] += wt * y[d];
            prev = g->msel[t * K + j];
        }
    }
    if (!H) return;
    /* qwen2moe's shared expert, times sigmoid(xn2·w_sg) */
#pragma omp parallel for schedule(static) if ((size_t)R * D >= PAR_MIN_WORK)
    for (int64_t t = 0; t < R; t++) {
        double z = 0;
        for (int d = 0; d < D; d++) z += (double)g->xn2[t * D + d] * w->shexp_gate[d];
        g->sg[t] = (float)(1.0 / (1.0 + exp(-z)));
    }
    mm(g, g->gate, g->xn2, w->shexp[0], D, H, R);
    mm(g, g->up, g->xn2, w->shexp[1], D, H, R);
    swiglu(g->act, g->gate, g->up, R * H);
    mm(g, g->sy, g->act, w->shexp[2], H, D, R);
#pragma omp parallel for schedule(static) if ((size_t)R * D >= PAR_MIN_WORK)
    for (int64_t t = 0; t < R; t++)
        for (int d = 0; d < D; d++) f[t * D + d] += g->sg[t] * g->sy[t * D + d];
}

/* ===== forward ===== */

int grad_block_forward(struct grad_block *g, const struct grad_weights *w, const float *x,
                       int n_win, int T, float *y) {
    const int64_t R = (int64_t)n_win * T;
    if (n_win < 1 || T < 1 || T > g->n_ctx || R > g->max_rows)
        return err("grad: %d windows of %d tokens (the buffers hold windows of <= %d tokens, %lld "
                   "rows)", n_win, T, g->n_ctx, (long long)g->max_rows);
    if ((w->attn_post_norm != NULL) != g->post_norms || (w->ffn_post_norm != NULL) != g->post_norms)
        return err("grad: the block's post-norm weights %s the configuration's post_norms",
                   g->post_norms ? "lack" : "are not in");
    if (g->E > 0 && (!w->router || !w->ex || (g->H > 0) != (w->shexp[0] && w->shexp[1] &&
                                                            w->shexp[2] && w->shexp_gate)))
        return err("grad: the MoE block's weights lack its router, experts or shared expert");
    const int D = g->D, H = g->H, qd = g->qd, kvd = g->kvd;
    g->n_win = 0;
    g->mm_failed = false;
    g->window = w->swa ? g->swa_window : 0;
    g->rc = w->swa && g->rope_cos_swa ? g->rope_cos_swa : g->rope_cos;
    g->rs = w->swa && g->rope_sin_swa ? g->rope_sin_swa : g->rope_sin;
    g->has_bias = false;
    for (int i = 0; i < LIN_COUNT; i++) g->has_bias |= w->bias[i] != NULL;
    memcpy(g->x, x, (size_t)(R * D) * sizeof *x);
    rmsnorm_fwd(g->xn1, g->s1, x, w->attn_norm, R, D, g->eps);
    mm(g, g->q, g->xn1, w->lin[LIN_Q], D, qd, R);
    mm(g, g->k, g->xn1, w->lin[LIN_K], D, kvd, R);
    mm(g, g->v, g->xn1, w->lin[LIN_V], D, kvd, R);
    const struct {
        float *y;
        const float *b;
        int n;
    } bias[3] = {{g->q, w->bias[LIN_Q], qd},
                 {g->k, w->bias[LIN_K], kvd},
                 {g->v, w->bias[LIN_V], kvd}};
    for (int i = 0; i < 3; i++)
        if (bias[i].b)
            for (int64_t t = 0; t < R; t++)
                for (int c = 0; c < bias[i].n; c++) bias[i].y[t * bias[i].n + c] += bias[i].b[c];
    g->qk_normed = w->q_norm && w->k_norm;
    if (g->qk_normed) { /* qwen3: each head normalized on its own (rows of hd) */
        memcpy(g->q0, g->q, (size_t)(R * qd) * sizeof *g->q);
        memcpy(g->k0, g->k, (size_t)(R * kvd) * sizeof *g->k);
        rmsnorm_fwd(g->q, g->sq, g->q0, w->q_norm, R * g->n_heads, g->hd, g->eps);
        rmsnorm_fwd(g->k, g->sk, g->k0, w->k_norm, R * g->n_kv_heads, g->hd, g->eps);
    }
    rope_apply(g, g->q, R, T, g->n_heads, qd, false);
    rope_apply(g, g->k, R, T, g->n_kv_heads, kvd, false);
    if (g->attn_mul > 0) /* gemma: q carries query_pre_attn_scalar^−½·√hd */
        for (int64_t i = 0; i < R * qd; i++) g->q[i] *= g->attn_mul;
    if (attn_run(g, n_win, T, false)) return -1;
    /* y holds o·Woᵀ (post-norms: its norm) until the residual */
    mm(g, g->post_norms ? g->po : y, g->att, w->lin[LIN_O], qd, D, R);
    if (g->post_norms) rmsnorm_fwd(y, g->sp1, g->po, w->attn_post_norm, R, D, g->eps);
#pragma omp parallel for schedule(static) if ((size_t)R * D >= PAR_MIN_WORK)
    for (int64_t i = 0; i < R * D; i++) g->h1[i] = x[i] + y[i];
    rmsnorm_fwd(g->xn2, g->s2, g->h1, w->ffn_norm, R, D, g->eps);
    if (g->E > 0) {
        moe_fwd(g, w, R, y); /* no post-norms (grad_block_init) */
    } else {
        mm(g, g->gate, g->xn2, w->lin[LIN_GATE], D, H, R);
        mm(g, g->up, g->xn2, w->lin[LIN_UP], D, H, R);
#pragma omp parallel for schedule(static) if ((size_t)R * H >= PAR_MIN_WORK)
        for (int64_t i = 0; i < R * H; i++) {
            const float gv = g->gate[i];
            if (g->gelu) g->act[i] = fwd_gelu_tanh(gv) * g->up[i];
            else g->act[i] = gv / (1.0f + expf(-gv)) * g->up[i];
        }
        mm(g, g->post_norms ? g->fo : y, g->act, w->lin[LIN_DOWN], H, D, R);
    }
    if (g->post_norms) rmsnorm_fwd(y, g->sp2, g->fo, w->ffn_post_norm, R, D, g->eps);
#pragma omp parallel for schedule(static) if ((size_t)R * D >= PAR_MIN_WORK)
    for (int64_t i = 0; i < R * D; i++) y[i] += g->h1[i];
    if (g->mm_failed) return -1; /* no backward of a failed forward */
    g->n_win = n_win, g->T = T;
    return 0;
}

/* ===== backward ===== */

/* dW [N][K] = dYᵀ·X with dY [R][N] (row stride ldy) and X [R][K] given as Xᵀ in g->xt (linears
 * that share an input share its transpose) */
static void grad_w_t(struct grad_block *g, float *dw, const float *dy, int64_t ldy, int64_t N,
                     int64_t K, int64_t R) {
    transpose(g->yt, R, dy, R, N, ldy);
    mm(g, dw, g->yt, g->xt, R, K, N);
}

/* the same from X [R][K] */
static void grad_w(struct grad_block *g, float *dw, const float *dy, int64_t ldy, int64_t N,
                   const float *x, int64_t K, int64_t R) {
    transpose(g->xt, R, x, R, K, K);
    grad_w_t(g, dw, dy, ldy, N, K, R);
}

/* the derivative of fwd_gelu_tanh, in double: ½(1 + tanh u) + ½x(1 − tanh² u)·u′,
 * u = √(2/π)(x + 0.044715x³) */
static double gelu_tanh_grad(float x) {
    const double xd = x, k = 0.7978845608028654, u = k * (xd + 0.044715 * xd * xd * xd);
    const double th = tanh(u);
    return 0.5 * (1.0 + th) + 0.5 * xd * (1.0 - th * th) * k * (1.0 + 3 * 0.044715 * xd * xd);
}

/* the gradient of a post-norm's input: dy when the block has no post-norms; else the RMSNorm
 * backward of dy (input x, saved 1/rms s, weight w) into g->dxn, and w's gradient into dw when
 * asked */
static const float *post_norm_bwd(struct grad_block *g, const float *dy, const float *x,
                                  const float *s, const float *w, float *dw) {
    if (!g->post_norms) return dy;
    const int64_t R = (int64_t)g->n_win * g->T;
    if (dw) rmsnorm_dw(dw, dy, x, s, R, g->D);
    memset(g->dxn, 0, (size_t)(R * g->D) * sizeof *g->dxn);
    rmsnorm_bwd(g->dxn, dy, x, s, w, R, g->D);
    return g->dxn;
}

/* [dgate | dup] rows dgu [R][2H] of act = silu(gate)·up (gelu: gelu(gate)·up) from dact [R][H] */
static void act_bwd(bool gelu, float *dgu, const float *dact, const float *gate, const float *up,
                    int64_t R, int H) {
#pragma omp parallel for schedule(static) if ((size_t)R * H >= PAR_MIN_WORK)
    for (int64_t t = 0; t < R; t++)
        for (int i = 0; i < H; i++) {
            const float gv = gate[t * H + i], da = dact[t * H + i];
            if (gelu) {
                dgu[t * 2 * H + i] = da * up[t * H + i] * (float)gelu_tanh_grad(gv);
                dgu[t * 2 * H + H + i] = da * fwd_gelu_tanh(gv);
                continue;
            }
            const float sg = 1.0f / (1.0f + expf(-gv));
            dgu[t * 2 * H + i] = da * up[t * H + i] * sg * (1.0f + gv * (1.0f - sg));
            dgu[t * 2 * H + H + i] = da * gv * sg;
        }
}

/* a SwiGLU MLP's backward on n rows: dy [n][D] (the output's gradient), x [n][D] its input, gate,
 * up, act [n][Hh] its activations, wg, wu [Hh][D] and wd [D][Hh]; the weights' gradients into dwg,
 * dwu, dwd (each may be NULL), the input's into g->mdx [n][D] */
static void swiglu_bwd(struct grad_block *g, const float *dy, const float *x, const float *gate,
                       const float *up, const float *act, const float *wg, const float *wu,
                       const float *wd, float *dwg, float *dwu, float *dwd, int64_t n, int Hh) {
    const int D = g->D;
    if (dwd) grad_w(g, dwd, dy, D, D, act, Hh, n);
    transpose(g->wt, D, wd, D, Hh, Hh); /* Wdᵀ [Hh][D] */
    mm(g, g->xt, dy, g->wt, D, Hh, n);
    act_bwd(false, g->dgu, g->xt, gate, up, n, Hh);
    if (dwg || dwu) transpose(g->xt, n, x, n, D, D);
    if (dwg) grad_w_t(g, dwg, g->dgu, 2 * Hh, Hh, D, n);
    if (dwu) grad_w_t(g, dwu, g->dgu + Hh, 2 * Hh, Hh, D, n);
    transpose(g->wt, 2 * Hh, wg, Hh, D, D);
    transpose(g->wt + Hh, 2 * Hh, wu, Hh, D, D);
    mm(g, g->mdx, g->dgu, g->wt, 2 * Hh, D, n);
}

/* the gradient of the routing weights' logits [R][E] into g->mdy from dmw (grad.h) */
static void route_bwd(struct grad_block *g, int64_t R) {
    const int E = g->E, K = g->K;
#pragma omp parallel for schedule(static) if ((size_t)R * E * K >= PAR_MIN_WORK)
    for (int64_t t = 0; t < R; t++) {
        const float *lg = g->mlog + t * E, *wt = g->mw + t * K, *dw = g->dmw + t * K;
        const int *sel = g->msel + t * K;
        float *dl = g->mdy + t * E;
        memset(dl, 0, (size_t)E * sizeof *dl);
        if (g->expert_norm) { /* w = softmax over the chosen logits */
            double c = 0;
            for (int j = 0; j < K; j++) c += (double)wt[j] * dw[j];
            for (int j = 0; j < K; j++) dl[sel[j]] = (float)(wt[j] * (dw[j] - c));
            continue;
        }
        double mx = lg[0], sum = 0, c = 0; /* w = softmax over all E, as fwd_moe_route */
        for (int e = 1; e < E; e++) mx = lg[e] > mx ? lg[e] : mx;
        for (int e = 0; e < E; e++) sum += exp((double)lg[e] - mx);
        for (int j = 0; j < K; j++) c += exp((double)lg[sel[j]] - mx) / sum * dw[j];
        for (int e = 0; e < E; e++) dl[e] = (float)(-exp((double)lg[e] - mx) / sum * c);
        for (int j = 0; j < K; j++)
            dl[sel[j]] += (float)(exp((double)lg[sel[j]] - mx) / sum * dw[j]);
    }
}

/* g->dxn [R][D] = the gradient of the MoE MLP's input xn2 from df [R][D], its output's; the
 * weights' gradients gr asks for */
static void moe_bwd(struct grad_block *g, const struct grad_weights *w, const float *df,
                    const struct grad_grads *gr) {
    const int64_t R = (int64_t)g->n_win * g->T;
    const int D = g->D, E = g->E, K = g->K, He = g->He, H = g->H;
    memset(g->dxn, 0, (size_t)(R * D) * sizeof *g->dxn);
#pragma omp parallel for schedule(static) if ((size_t)R * D * K >= PAR_MIN_WORK)
    for (int64_t t = 0; t < R; t++) /* dw_j = dfᵀ·y of choice j */
        for (int j = 0; j < K; j++) {
            const float *y = g->ey + (int64_t)g->mpos[t * K + j] * D, *d = df + t * D;
            double acc = 0;
            for (int i = 0; i < D; i++) acc += (double)d[i] * y[i];
            g->dmw[t * K + j] = (float)acc;
        }
    for (int e = 0; e < E; e++) {
        const int a0 = g->eoff[e], ne = g->eoff[e + 1] - a0;
        float *dw[3] = {NULL, NULL, NULL};
        for (int i = 0; i < 3 && gr->ex; i++) dw[i] = gr->ex[3 * e + i];
        if (!ne) { /* chosen by no row: no gradient */
            const size_t n = (size_t)He * D;
            for (int i = 0; i < 3; i++)
                if (dw[i]) memset(dw[i], 0, n * sizeof *dw[i]);
            continue;
        }
#pragma omp parallel for schedule(static) if ((size_t)ne * D >= PAR_MIN_WORK)
        for (int i = 0; i < ne; i++) { /* the expert output's gradient: w·df, gathered */
            const int64_t t = g->arow[a0 + i];
            int j = 0;
            while (g->mpos[t * K + j] != a0 + i) j++;
            const float wt = g->mw[t * K + j];
            for (int d = 0; d < D; d++) g->mdy[(int64_t)i * D + d] = wt * df[t * D + d];
        }
        gather_rows(g->mdx, g->xn2, g->arow + a0, ne, D);
        const int64_t o = (int64_t)a0 * He; /* swiglu_bwd reads x before it writes mdx */
        swiglu_bwd(g, g->mdy, g->mdx, g->eg + o, g->eu + o, g->ea + o, w->ex[3 * e],
                   w->ex[3 * e + 1], w->ex[3 * e + 2], dw[0], dw[1], dw[2], ne, He);
#pragma omp parallel for schedule(static) if ((size_t)ne * D >= PAR_MIN_WORK)
        for (int i = 0; i < ne; i++) /* a row chooses an expert once: no two i share a row */
            for (int d = 0; d < D; d++)
                g->dxn[(int64_t)g->arow[a0 + i] * D + d] += g->mdx[(int64_t)i * D + d];
    }
    route_bwd(g, R);
    if (gr->router) grad_w(g, gr->router, g->mdy, E, E, g->xn2, D, R);
    transpose(g->wt, E, w->router, E, D, D); /* Wrᵀ [D][E] */
    mm(g, g->mdx, g->mdy, g->wt, E, D, R);
#pragma omp parallel for schedule(static) if ((size_t)R * D >= PAR_MIN_WORK)
    for (int64_t i = 0; i < R * D; i++) g->dxn[i] += g->mdx[i];
    if (!H) return;
    /* the shared expert: f += s·y_s, s = sigmoid(z), z = xn2·w_sg; dz = s(1 − s)·dfᵀ·y_s (into
     * dmw) */
#pragma omp parallel for schedule(static) if ((size_t)R * D >= PAR_MIN_WORK)
    for (int64_t t = 0; t < R; t++) {
        double acc = 0;
        const float sg = g->sg[t];
        for (int d = 0; d < D; d++) acc += (double)df[t * D + d] * g->sy[t * D + d];
        g->dmw[t] = (float)(acc * sg * (1.0 - sg));
        for (int d = 0; d < D; d++) g->mdy[t * D + d] = sg * df[t * D + d];
    }
    swiglu_bwd(g, g->mdy, g->xn2, g->gate, g->up, g->act, w->shexp[0], w->shexp[1], w->shexp[2],
               gr->shexp[0], gr->shexp[1], gr->shexp[2], R, H);
#pragma omp parallel for schedule(static) if ((size_t)R * D >= PAR_MIN_WORK)
    for (int64_t t = 0; t < R; t++)
        for (int d = 0; d < D; d++)
            g->dxn[t * D + d] += g->mdx[t * D + d] + g->dmw[t] * w->shexp_gate[d];
    if (gr->shexp_gate) col_sum_scaled(gr->shexp_gate, g->xn2, g->dmw, R, D);
}

/* steps 1 and 2 of the dense MLP's backward (grad_block_backward): g->dxn [R][D] = the gradient
 * of xn2 from dy [R][D], the block output's */
static void dense_ffn_bwd(struct grad_block *g, const struct grad_weights *w, const float *dy,
                          const struct grad_grads *gr) {
    const int64_t R = (int64_t)g->n_win * g->T;
    const int D = g->D, H = g->H;
    /* 1. y = h1 + f, f = act·Wdᵀ (post-norms: rmsnorm(fo)·w, fo = act·Wdᵀ):
     * dfo = df (or the norm's backward, in dxn); dact = dfo·Wd (into xt); dWd = dfoᵀ·act */
    const float *dfo = post_norm_bwd(g, dy, g->fo, g->sp2, w->ffn_post_norm, gr->ffn_post_norm);
    if (gr->lin[LIN_DOWN]) grad_w(g, gr->lin[LIN_DOWN], dfo, D, D, g->act, H, R);
    transpose(g->wt, D, w->lin[LIN_DOWN], D, H, H); /* Wdᵀ [H][D] */
    mm(g, g->xt, dfo, g->wt, D, H, R);
    /* 2. act = silu(gate)·up or gelu(gate)·up: [dgate | dup] into dgu [R][2H] */
    act_bwd(g->gelu, g->dgu, g->xt, g->gate, g->up, R, H);
    if (gr->lin[LIN_GATE] || gr->lin[LIN_UP]) transpose(g->xt, R, g->xn2, R, D, D);
    if (gr->lin[LIN_GATE]) grad_w_t(g, gr->lin[LIN_GATE], g->dgu, 2 * H, H, D, R);
    if (gr->lin[LIN_UP]) grad_w_t(g, gr->lin[LIN_UP], g->dgu + H, 2 * H, H, D, R);
    /* dxn2 = [dgate dup]·[Wg; Wu]: wt = [Wgᵀ | Wuᵀ] [D][2H] */
    transpose(g->wt, 2 * H, w->lin[LIN_GATE], H, D, D);
    transpose(g->wt + H, 2 * H, w->lin[LIN_UP], H, D, D);
    mm(g, g->dxn, g->dgu, g->wt, 2 * H, D, R);
}

int grad_block_backward(struct grad_block *g, const struct grad_weights *w, const float *dy,
                        float *dx, const struct grad_grads *gr) {
    if (g->n_win < 1) return err("grad: backward without a forward");
    g->mm_failed = false;
    const int64_t R = (int64_t)g->n_win * g->T;
    const int D = g->D, qd = g->qd, kvd = g->kvd, qkv = qd + 2 * kvd;
    /* 1, 2: y = h1 + f: dh1 = dy; the MLP f's backward gives dxn2 */
    memcpy(g->dh1, dy, (size_t)(R * D) * sizeof *dy);
    if (g->E > 0) moe_bwd(g, w, dy, gr);
    else dense_ffn_bwd(g, w, dy, gr);
    /* 3. xn2 = rmsnorm(h1)·w_ffn: dh1 += its backward */
    if (gr->ffn_norm) rmsnorm_dw(gr->ffn_norm, g->dxn, g->h1, g->s2, R, D);
    rmsnorm_bwd(g->dh1, g->dxn, g->h1, g->s2, w->ffn_norm, R, D);
    /* 4. h1 = x + att·Woᵀ (post-norms: x + rmsnorm(po)·w, po = att·Woᵀ): dpo = dh1 (or the
     * norm's backward, in dxn); datt = dpo·Wo; dWo = dpoᵀ·att */
    const float *dpo = post_norm_bwd(g, g->dh1, g->po, g->sp1, w->attn_post_norm,
                                     gr->attn_post_norm);
    if (gr->lin[LIN_O]) grad_w(g, gr->lin[LIN_O], dpo, D, D, g->att, qd, R);
    transpose(g->wt, D, w->lin[LIN_O], D, qd, qd); /* Woᵀ [qd][D] */
    mm(g, g->datt, dpo, g->wt, D, qd, R);
    /* 5. attention, then q's scale and un-rotate dq and dk */
    if (attn_run(g, g->n_win, g->T, true)) return -1;
    if (g->attn_mul > 0)
        for (int64_t t = 0; t < R; t++)
            for (int i = 0; i < qd; i++) g->dqkv[t * qkv + i] *= g->attn_mul;
    rope_apply(g, g->dqkv, R, g->T, g->n_heads, qkv, true);
    rope_apply(g, g->dqkv + qd, R, g->T, g->n_kv_heads, qkv, true);
    if (g->qk_normed) {
        head_norm_bwd(g->dqkv, qkv, g->q0, g->sq, w->q_norm, R, g->n_heads, g->hd);
        head_norm_bwd(g->dqkv + qd, qkv, g->k0, g->sk, w->k_norm, R, g->n_kv_heads, g->hd);
    }
    /* dqkv [R][qkv] holds dq | dk | dv side by side */
    const int64_t off[3] = {0, qd, qd + kvd}, width[3] = {qd, kvd, kvd};
    for (int i = LIN_Q; i <= LIN_V; i++)
        if (gr->bias[i]) col_sum(gr->bias[i], g->dqkv + off[i - LIN_Q], R, width[i - LIN_Q], qkv);
    if (gr->lin[LIN_Q] || gr->lin[LIN_K] || gr->lin[LIN_V]) transpose(g->xt, R, g->xn1, R, D, D);
    for (int i = LIN_Q; i <= LIN_V; i++)
        if (gr->lin[i])
            grad_w_t(g, gr->lin[i], g->dqkv + off[i - LIN_Q], qkv, width[i - LIN_Q], D, R);
    if (!dx && !gr->attn_norm) return g->mm_failed ? -1 : 0;
    /* 6. dxn1 = [dq dk dv]·[Wq; Wk; Wv] (wt = [Wqᵀ | Wkᵀ | Wvᵀ] [D][qkv]); then the RMSNorm
     * backward plus the residual */
    for (int i = LIN_Q; i <= LIN_V; i++)
        transpose(g->wt + off[i - LIN_Q], qkv, w->lin[i], width[i - LIN_Q], D, D);
    mm(g, g->dxn, g->dqkv, g->wt, qkv, D, R);
    if (gr->attn_norm) rmsnorm_dw(gr->attn_norm, g->dxn, g->x, g->s1, R, D);
    if (dx) {
        memcpy(dx, g->dh1, (size_t)(R * D) * sizeof *dx);
        rmsnorm_bwd(dx, g->dxn, g->x, g->s1, w->attn_norm, R, D);
    }
    return g->mm_failed ? -1 : 0;
}

/* a tensor as fp32 rows at p; the floats written */
static size_t tensor_to_f32(const struct tensor *t, float *p) {
    for (int64_t r = 0; r < tensor_nrows(t); r++) tensor_row_to_f32(t, r, p + r * t->ne[0]);
    return (size_t)tensor_nelements(t);
}

int grad_weights_from_layer(const struct model *m, int l, struct grad_weights *w,
                            float **w_owned) {
    *w_owned = NULL;
    memset(w, 0, sizeof *w);
    if (l < 0 || l >= m->cfg.n_layers) return err("grad: layer %d of %d", l, m->cfg.n_layers);
    const struct layer *L = &m->layers[l];
    const int E = m->cfg.n_expert, n_lin = E > 0 ? LIN_GATE : LIN_COUNT;
    const int n_sh = E > 0 && m->cfg.shared_hidden > 0 ? 3 : 0;
    size_t total = 0;
    for (int i = 0; i < n_lin; i++) total += (size_t)tensor_nelements(&L->lin[i]);
    if (E > 0) {
        total += (size_t)tensor_nelements(&L->router);
        for (int e = 0; e < 3 * E; e++) total += (size_t)tensor_nelements(&L->ex[e]);
        for (int i = 0; i < n_sh; i++) total += (size_t)tensor_nelements(&L->shexp[i]);
        if (n_sh) total += (size_t)tensor_nelements(&L->shexp_gate);
    }
    /* MoE: the 3E expert pointers first, then the floats */
    const size_t n_ptr = (size_t)3 * E;
    char *buf = xmalloc(n_ptr * sizeof(float *) + total * sizeof(float), "block weights");
    if (!buf) return -1;
    const float **ex = (const float **)(void *)buf;
    float *p = (float *)(void *)(buf + n_ptr * sizeof(float *));
    for (int i = 0; i < n_lin; i++) {
        w->lin[i] = p;
        p += tensor_to_f32(&L->lin[i], p);
        w->bias[i] = L->bias[i].data;
    }
    if (E > 0) {
        w->router = p;
        p += tensor_to_f32(&L->router, p);
        for (int e = 0; e < 3 * E; e++) {
            ex[e] = p;
            p += tensor_to_f32(&L->ex[e], p);
        }
        w->ex = ex;
        for (int i = 0; i < n_sh; i++) {
            w->shexp[i] = p;
            p += tensor_to_f32(&L->shexp[i], p);
        }
        if (n_sh) {
            w->shexp_gate = p;
            p += tensor_to_f32(&L->shexp_gate, p);
        }
    }
    w->attn_norm = L->attn_norm.data;
    w->ffn_norm = L->ffn_norm.data;
    w->q_norm = L->q_norm.data;
    w->k_norm = L->k_norm.data;
    w->attn_post_norm = L->attn_post_norm.data;
    w->ffn_post_norm = L->ffn_post_norm.data;
    w->swa = model_layer_swa(&m->cfg, l);
    *w_owned = (float *)(void *)buf;
    return 0;
}
