/* eval/forward.c: the Llama decoder forward pass over a batch of positions (see forward.h).
 *
 * Legend: T = tokens in this piece, D = dim, H = hidden_dim, hd = head_dim, nh/nkv = query/kv
 * heads, qd = nh*hd, kvd = nkv*hd, V = vocab. Per layer:
 *   xn = rmsnorm(x)·w_attn_norm; q,k,v = xn·Wq,Wk,Wv (+ bias); (qwen3: q,k per head ←
 *   rmsnorm(head)·w_q_norm, w_k_norm); rope(q,k); cache ← k,v
 *   o[t,h] = Σ_j softmax_j(q[t,h]·k[j,h/g]/√hd) v[j,h/g], j ≤ pos(t)   (g = nh/nkv)
 *   x += o·Wo;  xn = rmsnorm(x)·w_ffn_norm;  x += (silu(xn·Wgate) ⊙ xn·Wup)·Wdown
 * then logits = rmsnorm(x)·w_out_norm · Wout. RMSNorm sums squares in double; the RoPE angles are
 * computed in double and stored as fp32 cos/sin; softmax is fp32 with the max subtracted.
 * Every parallel loop gives each output to one thread with a fixed summation order, so results do
 * not depend on the thread count. The weight matmuls (layers and output) run in s->compute: fp32
 * (matmul), bf16 (matmul_bf16 for f32/f16/bf16 weights: bf16 products, fp32 sums and output;
 * other weight types: inputs rounded to bf16, fp32 matmul), fp16 (inputs and outputs rounded
 * around matmul), int8 (matmul_i8, with an fp32 fallback for weight types it lacks, counted in
 * n_mm - n_mm_int8), a8/a4 (the block linears' inputs quantized per token, kernels/act_quant.h;
 * the output layer stays fp32). A rotated model (quant/rotate.h) has the inputs of o and/or down
 * rotated by an online Hadamard transform (cfg.online_had) where its stage produces them, so the
 * calibration hooks see them rotated. */
#include "eval/forward.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "kernels/act_quant.h"
#include "kernels/attention.h"
#include "kernels/hadamard.h"
#include "kernels/matmul.h"
#include "kernels/matmul_bf16.h"

/* below this many element-operations a loop runs on one thread: waking a team costs more, and on a
 * loaded machine a barrier waiting for a descheduled thread costs milliseconds */
#define PAR_MIN_WORK ((size_t)1 << 16)

void fwd_release(struct fwd_state *s) {
    free(s->k_cache);
    free(s->v_cache);
    free(s->x);
    free(s->xn);
    free(s->q);
    free(s->k);
    free(s->v);
    free(s->carry);
    free(s->up);
    free(s->rope_cos);
    free(s->rope_sin);
    free(s->rope_cos_swa);
    free(s->rope_sin_swa);
    free(s->xh);
    free(s->moe_logits), free(s->moe_w), free(s->moe_wt), free(s->moe_x), free(s->moe_g);
    free(s->moe_u), free(s->moe_y), free(s->moe_o), free(s->moe_sel), free(s->moe_rows);
    kscratch_release(&s->ws);
    memset(s, 0, sizeof *s);
}

bool fwd_rope_swa_differs(const struct model_config *c) {
    return c->swa_window > 0 && ((c->rope_theta_swa > 0 && c->rope_theta_swa != c->rope_theta) ||
                                 (c->rope_linear > 0 && c->rope_linear != 1));
}

/* phi3's longrope divisors for a context of n_ctx positions (model.h), or NULL */
static const float *rope_longrope(const struct model *m, int n_ctx) {
    if (!m->rope_long && !m->rope_short) return NULL;
    return n_ctx > m->cfg.rope_orig_ctx && m->rope_long ? m->rope_long : m->rope_short;
}

/* inverse frequency of rotary pair i (0 <= i < hd/2), with Llama-3 scaling and GGUF factors; swa:
 * of a sliding layer (base rope_theta_swa, no linear scaling); n_ctx picks phi3's divisors */
static double rope_inv_freq(const struct model *m, int i, bool swa, int n_ctx) {
    const struct model_config *c = &m->cfg;
    const double theta = swa && c->rope_theta_swa > 0 ? c->rope_theta_swa : c->rope_theta;
    double f = pow(theta, -2.0 * i / c->head_dim);
    if (!swa && c->rope_linear > 0) f /= c->rope_linear;
    if (c->rope_factor > 0) {
        /* Llama-3.1: keep high frequencies, divide low ones by factor, blend in between */
        const double lo_wl = c->rope_orig_ctx / c->rope_low_freq_factor;
        const double hi_wl = c->rope_orig_ctx / c->rope_high_freq_factor;
        const double wl = 2 * M_PI / f;
        if (wl > lo_wl) {
            f /= c->rope_factor;
        } else if (wl >= hi_wl) {
            double smooth = (c->rope_orig_ctx / wl - c->rope_low_freq_factor) /
                            (c->rope_high_freq_factor - c->rope_low_freq_factor);
            f = (1 - smooth) * f / c->rope_factor + smooth * f;
        }
    }
    if (m->rope_freq_factors) f /= m->rope_freq_factors[i];
    const float *lr = rope_longrope(m, n_ctx);
    if (lr) f /= lr[i];
    return f;
}

static int init_cache(struct fwd_state *s, const struct model *m, int n_ctx, int max_batch,
                      int n_cache_layers);
static void rope_table(const struct model *m, int n_ctx, float *cos_t, float *sin_t, bool swa);

/* the kernels' scratch for every call a forward over m makes (windows of up to max_batch
 * tokens, positions below n_ctx) on n_threads threads: the largest need of any weight matmul at
 * any piece length, in fp32/fp16/bf16 and in int8, and of the attention. The calls run one after
 * another, so one buffer of the largest serves them all. */
static size_t plan_scratch(const struct model *m, int n_ctx, int max_batch, int n_threads) {
    const struct model_config *c = &m->cfg;
    size_t need = attention_scratch(n_ctx, c->head_dim, n_threads);
    /* router, experts, the shared expert's three */
    const int n_moe = c->n_expert > 0 ? 1 + 3 * c->n_expert + (c->shared_hidden > 0 ? 3 : 0) : 0;
    for (int l = 0; l <= c->n_layers; l++)
        for (int i = 0; i < (l < c->n_layers ? LIN_COUNT + n_moe : 1); i++) {
            const struct layer *L = l < c->n_layers ? &m->layers[l] : NULL;
            const struct tensor *w = !L                ? &m->output
                                     : i < LIN_COUNT   ? &L->lin[i]
                                     : i == LIN_COUNT ? &L->router
                                     : i <= LIN_COUNT + 3 * c->n_expert
                                         ? &L->ex[i - LIN_COUNT - 1]
                                         : &L->shexp[i - LIN_COUNT - 1 - 3 * c->n_expert];
            if (!w->data) continue; /* a MoE layer's MLP slots */
            for (int T = 1; T <= max_batch; T++) {
                need = LB_MAX(need, matmul_scratch(w, T, n_threads));
                need = LB_MAX(need, matmul_i8_scratch(w, T, n_threads));
                need = LB_MAX(need, matmul_bf16_scratch(w, T, n_threads));
            }
        }
    return need;
}

int fwd_init(struct fwd_state *s, const struct model *m, int n_ctx, int max_batch) {
    return init_cache(s, m, n_ctx, max_batch, m->cfg.n_layers);
}

int fwd_init_block(struct fwd_state *s, const struct model *m, int n_ctx) {
    return init_cache(s, m, n_ctx, n_ctx, 1);
}

static int init_cache(struct fwd_state *s, const struct model *m, int n_ctx, int max_batch,
                      int n_cache_layers) {
    memset(s, 0, sizeof *s);
    const struct model_config *c = &m->cfg;
    if (n_ctx <= 0 || n_ctx > (1 << 22)) return err("context length %d (expected 1..2^22)", n_ctx);
    if (max_batch <= 0) max_batch = 1;
    if (max_batch > n_ctx) max_batch = n_ctx;
    s->m = m;
    s->n_ctx = n_ctx;
    s->max_batch = max_batch;
    const size_t B = (size_t)max_batch, D = (size_t)c->dim, H = (size_t)c->hidden_dim;
    const size_t qd = (size_t)c->n_heads * c->head_dim, kvd = (size_t)c->n_kv_heads * c->head_dim;
    const size_t half = (size_t)c->head_dim / 2;
    const size_t He = (size_t)LB_MAX(LB_MAX(c->expert_hidden, c->shared_hidden), 1),
                 E = (size_t)LB_MAX(c->n_expert, 1);
    const size_t kmax = LB_MAX(LB_MAX(D, qd), LB_MAX(H, He)); /* the widest matmul input */
    const size_t ws_bytes = plan_scratch(m, n_ctx, max_batch, lb_threads());
    s->ldk = attn_ldk(n_ctx);
    s->ldv = attn_ldv(c->head_dim);
    s->kt_head = (int64_t)c->head_dim * s->ldk;
    s->v_head = (int64_t)n_ctx * s->ldv;
    s->n_cache_layers = n_cache_layers;
    const size_t heads = (size_t)n_cache_layers * (size_t)c->n_kv_heads;
    /* the cache, the activations and the kernels' scratch together: refused at once, before the
     * first allocation */
    const double floats = (double)heads * (double)(s->kt_head + s->v_head) +
                          (double)B * (double)(D + LB_MAX(D, qd) + qd + 2 * kvd + LB_MAX(qd, H) + H) +
                          2.0 * (double)n_ctx * (double)half + (double)B * (double)kmax +
                          (double)ws_bytes / 4 +
                          (c->n_expert > 0 ? (double)B * (double)(E + 2 * c->n_expert_used + 2 +
                                                                   3 * D + 2 * He)
                                           : 0);
    char what[96];
    snprintf(what, sizeof what, "the KV cache and activations of a %d-token context", n_ctx);
    if (floats * 4 > (double)SIZE_MAX / 2 || mem_check((size_t)(floats * 4), what)) return -1;
    s->k_cache = xcalloc(heads * (size_t)s->kt_head, sizeof(float), "the key cache");
    s->v_cache = xcalloc(heads * (size_t)s->v_head, sizeof(float), "the value cache");
    s->x = xcalloc(B * D, sizeof(float), "activations");
    s->xn = xcalloc(B * LB_MAX(D, qd), sizeof(float), "activations");
    s->q = xcalloc(B * qd, sizeof(float), "queries");
    s->k = xcalloc(B * kvd, sizeof(float), "keys");
    s->v = xcalloc(B * kvd, sizeof(float), "values");
    s->carry = xcalloc(B * LB_MAX(qd, H), sizeof(float), "attention and ffn activations");
    s->up = xcalloc(B * H, sizeof(float), "ffn activations");
    s->rope_cos = xcalloc((size_t)n_ctx * half, sizeof(float), "rope table");
    s->rope_sin = xcalloc((size_t)n_ctx * half, sizeof(float), "rope table");
    s->xh = xmalloc(B * kmax * sizeof(float), "the rounded matmul input");
    s->xh_floats = s->xh ? B * kmax : 0;
    if (!s->k_cache || !s->v_cache || !s->x || !s->xn || !s->q || !s->k || !s->v || !s->carry ||
        !s->up || !s->rope_cos || !s->rope_sin || !s->xh || kscratch_init(&s->ws, ws_bytes)) {
        fwd_release(s);
        return -1;
    }
    if (c->n_expert > 0) {
        const size_t K = (size_t)c->n_expert_used;
        s->moe_logits = xmalloc(B * E * sizeof(float), "router logits");
        s->moe_w = xmalloc(B * K * sizeof(float), "expert weights");
        s->moe_sel = xmalloc(B * K * sizeof(int), "expert choices");
        s->moe_wt = xmalloc(B * sizeof(float), "expert weights");
        s->moe_rows = xmalloc(B * sizeof(int), "expert rows");
        s->moe_x = xmalloc(B * D * sizeof(float), "expert inputs");
        s->moe_y = xmalloc(B * D * sizeof(float), "expert outputs");
        s->moe_o = xmalloc(B * D * sizeof(float), "expert outputs");
        s->moe_g = xmalloc(B * He * sizeof(float), "expert activations");
        s->moe_u = xmalloc(B * He * sizeof(float), "expert activations");
        if (!s->moe_logits || !s->moe_w || !s->moe_sel || !s->moe_wt || !s->moe_rows ||
            !s->moe_x || !s->moe_y || !s->moe_o || !s->moe_g || !s->moe_u) {
            fwd_release(s);
            return -1;
        }
    }
    fwd_rope_table(m, n_ctx, s->rope_cos, s->rope_sin);
    if (fwd_rope_swa_differs(c)) {
        s->rope_cos_swa = xcalloc((size_t)n_ctx * half, sizeof(float), "rope table");
        s->rope_sin_swa = xcalloc((size_t)n_ctx * half, sizeof(float), "rope table");
        if (!s->rope_cos_swa || !s->rope_sin_swa) {
            fwd_release(s);
            return -1;
        }
        rope_table(m, n_ctx, s->rope_cos_swa, s->rope_sin_swa, true);
    }
    return 0;
}

static void rope_table(const struct model *m, int n_ctx, float *cos_t, float *sin_t, bool swa) {
    const size_t half = (size_t)m->cfg.head_dim / 2;
    const float af = m->cfg.rope_attn_factor; /* phi3 longrope: cos and sin scaled */
    for (size_t i = 0; i < half; i++) {
        const double f = rope_inv_freq(m, (int)i, swa, n_ctx);
        for (int p = 0; p < n_ctx; p++) {
            const double a = p * f;
            cos_t[(size_t)p * half + i] = (float)cos(a);
            sin_t[(size_t)p * half + i] = (float)sin(a);
            if (af > 0) {
                cos_t[(size_t)p * half + i] *= af;
                sin_t[(size_t)p * half + i] *= af;
            }
        }
    }
}

void fwd_rope_table(const struct model *m, int n_ctx, float *cos_t, float *sin_t) {
    rope_table(m, n_ctx, cos_t, sin_t, false);
}

void fwd_rope_table_swa(const struct model *m, int n_ctx, float *cos_t, float *sin_t) {
    rope_table(m, n_ctx, cos_t, sin_t, true);
}

void fwd_embed(const struct model *m, int token, float *x) {
    tensor_row_to_f32(&m->tok_embd, token, x);
    if (m->cfg.embd_scale > 0) /* gemma: √dim */
        for (int i = 0; i < m->cfg.dim; i++) x[i] *= m->cfg.embd_scale;
}

void fwd_truncate(struct fwd_state *s, int n_past) {
    ASSERT(n_past >= 0 && n_past <= s->n_past);
    s->n_past = n_past;
}

/* ---- small kernels (scalar; the compiler vectorizes the inner loops) ---- */

/* out[t] = x[t] / sqrt(mean(x[t]^2) + eps) * w, for T rows of n */
static void rmsnorm(float *out, const float *x, const float *w, int T, int n, float eps) {
#pragma omp parallel for schedule(static) if ((size_t)T * n >= PAR_MIN_WORK)
    for (int t = 0; t < T; t++) {
        const float *xr = x + (size_t)t * n;
        float *o = out + (size_t)t * n;
        double ss = 0;
        for (int i = 0; i < n; i++) ss += (double)xr[i] * xr[i];
        const float scale = (float)(1.0 / sqrt(ss / n + eps));
        for (int i = 0; i < n; i++) o[i] = xr[i] * scale * w[i];
    }
}

/* x += y over n floats */
static void residual_add(float *x, const float *y, size_t n) {
#pragma omp parallel for schedule(static) if (n >= PAR_MIN_WORK)
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

static void add_bias(float *y, const float *b, int T, int n) {
    if (!b) return;
    for (int t = 0; t < T; t++)
        for (int i = 0; i < n; i++) y[(size_t)t * n + i] += b[i];
}

/* rotate each head of each row in place; row t is at position pos0+t */
static void rope(float *x, int T, int n_heads, int hd, int pos0, const float *cosv,
                 const float *sinv, enum rope_style style) {
    const int half = hd / 2;
#pragma omp parallel for schedule(static) if ((size_t)T * n_heads * hd >= PAR_MIN_WORK)
    for (int t = 0; t < T; t++) {
        const float *cs = cosv + (size_t)(pos0 + t) * half, *sn = sinv + (size_t)(pos0 + t) * half;
        for (int h = 0; h < n_heads; h++) {
            float *v = x + ((size_t)t * n_heads + h) * hd;
            for (int i = 0; i < half; i++) {
                const int a = style == ROPE_NORM ? 2 * i : i;
                const int b = style == ROPE_NORM ? 2 * i + 1 : i + half;
                const float x0 = v[a], x1 = v[b];
                v[a] = x0 * cs[i] - x1 * sn[i];
                v[b] = x0 * sn[i] + x1 * cs[i];
            }
        }
    }
}

/* append the T new keys and values to layer l's cache in the attention kernel's layout
 * (kernels/attention.h): keys transposed per kv head, values in rows of ldv */
static void cache_store(struct fwd_state *s, int l, int T, int pos0) {
    const struct model_config *c = &s->m->cfg;
    const int hd = c->head_dim, nkv = c->n_kv_heads;
    const int64_t kvd = (int64_t)nkv * hd;
#pragma omp parallel for schedule(static) if ((size_t)T * kvd >= PAR_MIN_WORK)
    for (int g = 0; g < nkv; g++) {
        float *kt = s->k_cache + ((int64_t)l * nkv + g) * s->kt_head;
        float *vc = s->v_cache + ((int64_t)l * nkv + g) * s->v_head;
        /* blocks of 64 positions: contiguous stores, the 64 source rows stay in L1 across i */
        for (int t0 = 0; t0 < T; t0 += 64) {
            const int t1 = LB_MIN(T, t0 + 64);
            for (int i = 0; i < hd; i++) {
                const float *kr = s->k + (int64_t)g * hd + i;
                float *dst = kt + i * s->ldk + pos0;
                for (int t = t0; t < t1; t++) dst[t] = kr[t * kvd];
            }
        }
        for (int t = 0; t < T; t++)
            memcpy(vc + (int64_t)(pos0 + t) * s->ldv, s->v + t * kvd + (int64_t)g * hd,
                   (size_t)hd * sizeof(float));
    }
}

void fwd_int8_coverage(const struct model *m, int *n_int8, int *n_total) {
    int ok = 0, all = 0;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const struct layer *L = &m->layers[l];
        for (int i = 0; i < LIN_COUNT; i++)
            if (L->lin[i].data) ok += matmul_i8_tensor_ok(&L->lin[i]), all++;
        for (int e = 0; e < 3 * m->cfg.n_expert; e++, all++) ok += matmul_i8_tensor_ok(&L->ex[e]);
        for (int k = 0; k < 3 && m->cfg.shared_hidden > 0; k++, all++)
            ok += matmul_i8_tensor_ok(&L->shexp[k]);
        if (m->cfg.n_expert > 0) ok += matmul_i8_tensor_ok(&L->router), all++;
    }
    ok += matmul_i8_tensor_ok(&m->output);
    *n_int8 = ok;
    *n_total = all + 1;
}

/* v rounded to fp16 / bf16 (RNE) and back, n floats */
static void round_half(float *dst, const float *src, size_t n, enum compute_dtype c) {
#pragma omp parallel for schedule(static) if (n >= PAR_MIN_WORK)
    for (size_t i = 0; i < n; i++)
        dst[i] = c == COMPUTE_FP16 ? lb_fp16_to_f32(lb_f32_to_fp16(src[i]))
                                   : lb_bf16_to_f32(lb_f32_to_bf16(src[i]));
}

/* s->xh holds n floats (grown when a call needs more than planned); sets mm_failed on failure */
static int xh_reserve(struct fwd_state *s, size_t n) {
    if (s->xh_floats >= n) return 0;
    free(s->xh);
    s->xh_floats = 0;
    s->xh = xmalloc(n * sizeof(float), "the rounded matmul input");
    if (!s->xh) {
        s->mm_failed = true;
        return -1;
    }
    s->xh_floats = n;
    return 0;
}

/* a rotated model's online Hadamard on linear i's input x [T][n] (quant/rotate.h), in place */
static void online_had(struct fwd_state *s, enum lin i, float *x, int T, int n) {
    if (s->m->cfg.online_had & (1u << i) && had_rows(x, T, n)) s->mm_failed = true;
}

/* y = x·Wᵀ in the state's compute dtype, with the planned scratch (fwd_init); a failure (out of
 * memory: more threads than planned, and no room for their scratch) sets s->mm_failed */
static void mm_out(struct fwd_state *s, float *y, const float *x, const struct tensor *w, int T) {
    const size_t K = (size_t)w->ne[0], N = (size_t)tensor_nrows(w);
    s->n_mm++;
    s->flops += 2.0 * T * (double)K * (double)N;
    switch (s->compute) {
    case COMPUTE_A8:
    case COMPUTE_A4: /* the block linears' inputs quantized per token (kernels/act_quant.h) */
        if (w == &s->m->output) break;
        if (xh_reserve(s, (size_t)T * K)) return;
        act_fake_quant_rows(s->xh, x, T, (int64_t)K, s->compute == COMPUTE_A8 ? 8 : 4,
                            s->m->cfg.act_clip > 0 ? s->m->cfg.act_clip : 1.0f);
        if (matmul_ws(y, s->xh, w, T, &s->ws)) s->mm_failed = true;
        return;
    case COMPUTE_INT8:
        if (matmul_i8_tensor_ok(w)) {
            s->n_mm_int8++;
            if (matmul_i8_ws(y, x, w, T, &s->ws)) s->mm_failed = true;
            return;
        }
        break;
    case COMPUTE_BF16:
        /* f32/f16/bf16 weights: bf16 products accumulated in fp32 (kernels/matmul_bf16.h, VDPBF16PS
         * where the CPU has it), the output fp32 as it comes (as the hardware gives it); the other
         * types (quantized: no bf16 form of their weights is exact) round the input to bf16 and
         * run the fp32 matmul of their exact weights, the output fp32 likewise (fp16 compute
         * still rounds its output) */
        if (matmul_bf16_supported(w->type)) {
            s->n_mm_bf16++;
            if (matmul_bf16_ws(y, x, w, T, &s->ws)) s->mm_failed = true;
            return;
        }
        /* fall through */
    case COMPUTE_FP16:
        if (xh_reserve(s, (size_t)T * K)) return;
        round_half(s->xh, x, (size_t)T * K, s->compute);
        if (matmul_ws(y, s->xh, w, T, &s->ws)) s->mm_failed = true;
        else if (s->compute == COMPUTE_FP16) round_half(y, y, (size_t)T * N, s->compute);
        return;
    default: break;
    }
    if (matmul_ws(y, x, w, T, &s->ws)) s->mm_failed = true;
}

/* the attention of layers the fast kernel does not cover (kernels/attention.h): scores soft-capped
 * (cap > 0: cap·tanh(s/cap)) and/or keys limited to pos − j < window (window > 0). The same cache
 * layout; per (query, head) the scores in key order, the softmax in double, the output in key
 * order: one thread per output, so the result does not depend on the thread count. */
static void attention_capped(float *out, const float *q, const float *kt, const float *v,
                             const struct attn_shape *a, float cap, int window, float *sc_all) {
    const int hd = a->head_dim, nh = a->n_heads, rep = nh / a->n_kv_heads;
    const float scale = 1.0f / sqrtf((float)hd);
    const int n_keys = a->pos0 + a->T;
#pragma omp parallel for schedule(static) if ((size_t)a->T * nh * n_keys * hd >= PAR_MIN_WORK)
    for (int th = 0; th < a->T * nh; th++) {
        const int t = th / nh, h = th % nh, g = h / rep, pos = a->pos0 + t;
        const float *qr = q + ((size_t)t * nh + h) * hd;
        const float *k = kt + (int64_t)g * a->kt_head, *vv = v + (int64_t)g * a->v_head;
        float *sc = sc_all + (size_t)th * n_keys;
        const int j0 = window > 0 && pos - window + 1 > 0 ? pos - window + 1 : 0;
        float mx = -INFINITY;
        for (int j = j0; j <= pos; j++) {
            float d = 0;
            for (int i = 0; i < hd; i++) d += qr[i] * k[(int64_t)i * a->ldk + j];
            d *= scale;
            if (cap > 0) d = cap * tanhf(d / cap);
            sc[j] = d;
            mx = d > mx ? d : mx;
        }
        double sum = 0;
        for (int j = j0; j <= pos; j++) {
            sc[j] = expf(sc[j] - mx);
            sum += sc[j];
        }
        float *o = out + ((size_t)t * nh + h) * hd;
        for (int i = 0; i < hd; i++) o[i] = 0;
        for (int j = j0; j <= pos; j++) {
            const float p = (float)(sc[j] / sum);
            const float *vr = vv + (int64_t)j * a->ldv;
            for (int i = 0; i < hd; i++) o[i] += p * vr[i];
        }
    }
}

/* x = cap·tanh(x/cap) over n floats */
static void softcap(float *x, size_t n, float cap) {
#pragma omp parallel for schedule(static) if (n >= PAR_MIN_WORK)
    for (size_t i = 0; i < n; i++) x[i] = cap * tanhf(x[i] / cap);
}

/* a layer matmul: the hook sees its input */
static void mm(struct fwd_state *s, float *y, const float *x, const struct tensor *w, int T) {
    if (s->mm_hook && !s->in_stage && !s->hook_failed && s->mm_hook(s->mm_hook_ctx, w, x, T))
        s->hook_failed = true;
    mm_out(s, y, x, w, T);
}

/* an expert's matmul inside a stage: the hook sees its input when hook_experts asks for it */
static void mm_ex(struct fwd_state *s, float *y, const float *x, const struct tensor *w, int T,
                  bool show) {
    if (show && s->in_stage && s->hook_experts && s->mm_hook && !s->hook_failed &&
        s->mm_hook(s->mm_hook_ctx, w, x, T))
        s->hook_failed = true;
    mm(s, y, x, w, T);
}

void fwd_moe_route(int E, int K, bool expert_norm, const float *lg, int *sel, float *w) {
    double mx = lg[0], sum = 0, top = 0;
    for (int e = 1; e < E; e++) mx = lg[e] > mx ? lg[e] : mx;
    for (int e = 0; e < E; e++) sum += exp((double)lg[e] - mx);
    for (int j = 0; j < K; j++) { /* selection by logit = by probability */
        int best = -1;
        for (int e = 0; e < E; e++) {
            bool taken = false;
            for (int i = 0; i < j; i++) taken |= sel[i] == e;
            if (!taken && (best < 0 || lg[e] > lg[best])) best = e;
        }
        sel[j] = best;
        top += exp((double)lg[best] - mx) / sum;
    }
    for (int j = 0; j < K; j++) {
        const double p = exp((double)lg[sel[j]] - mx) / sum;
        w[j] = (float)(expert_norm ? p / top : p);
    }
}

/* a MoE layer's MLP on xn [T][D] into out [T][D] (model.h: Mixtral's sparse block): router
 * logits, softmax over all experts (double), the n_expert_used most probable (the lower index on
 * ties), their probabilities renormalized to sum 1 when cfg.expert_norm; then expert by expert
 * (ascending) the tokens routed to it, gathered: down(silu(gate x) ⊙ up x), added to each token's
 * output times its weight. The hook sees each expert's matmuls with only its tokens. */
static void moe_ffn(struct fwd_state *s, const struct layer *L, const float *xn, float *out, int T) {
    const struct model_config *c = &s->m->cfg;
    const int D = c->dim, E = c->n_expert, K = c->n_expert_used, He = c->expert_hidden;
    mm(s, s->moe_logits, xn, &L->router, T);
    for (int t = 0; t < T; t++)
        fwd_moe_route(E, K, c->expert_norm, s->moe_logits + (size_t)t * E,
                      s->moe_sel + (size_t)t * K, s->moe_w + (size_t)t * K);
    memset(out, 0, (size_t)T * D * sizeof *out);
    for (int e = 0; e < E; e++) {
        int n = 0;
        for (int t = 0; t < T; t++)
            for (int j = 0; j < K; j++)
                if (s->moe_sel[(size_t)t * K + j] == e) {
                    s->moe_rows[n] = t;
                    s->moe_wt[n++] = s->moe_w[(size_t)t * K + j];
                }
        if (!n) continue;
        for (int i = 0; i < n; i++)
            memcpy(s->moe_x + (size_t)i * D, xn + (size_t)s->moe_rows[i] * D, (size_t)D * sizeof(float));
        s->hook_rw = s->moe_wt;
        mm_ex(s, s->moe_g, s->moe_x, model_expert(L, e, LIN_GATE), n, true);
        mm_ex(s, s->moe_u, s->moe_x, model_expert(L, e, LIN_UP), n, false);
        for (size_t i = 0; i < (size_t)n * He; i++) {
            const float gv = s->moe_g[i];
            s->moe_g[i] = gv / (1.0f + expf(-gv)) * s->moe_u[i];
        }
        mm_ex(s, s->moe_y, s->moe_g, model_expert(L, e, LIN_DOWN), n, true);
        s->hook_rw = NULL;
        for (int i = 0; i < n; i++) {
            float *o = out + (size_t)s->moe_rows[i] * D;
            const float *y = s->moe_y + (size_t)i * D, w = s->moe_wt[i];
            for (int d = 0; d < D; d++) o[d] += w * y[d];
        }
    }
    const int Hs = c->shared_hidden;
    if (Hs <= 0) return;
    /* qwen2moe: every token through the shared expert, times sigmoid(xn·w_gate) (the gates in
     * moe_wt, free after the routed experts) */
    const float *wg = L->shexp_gate.data;
    for (int t = 0; t < T; t++) {
        double z = 0;
        for (int d = 0; d < D; d++) z += (double)xn[(size_t)t * D + d] * wg[d];
        s->moe_wt[t] = (float)(1.0 / (1.0 + exp(-z)));
    }
    s->hook_rw = s->moe_wt;
    mm_ex(s, s->moe_g, xn, &L->shexp[0], T, true);
    mm_ex(s, s->moe_u, xn, &L->shexp[1], T, false);
    for (size_t i = 0; i < (size_t)T * Hs; i++) {
        const float gv = s->moe_g[i];
        s->moe_g[i] = gv / (1.0f + expf(-gv)) * s->moe_u[i];
    }
    mm_ex(s, s->moe_y, s->moe_g, &L->shexp[2], T, true);
    s->hook_rw = NULL;
    for (int t = 0; t < T; t++) {
        const float g = s->moe_wt[t];
        float *o = out + (size_t)t * D;
        const float *y = s->moe_y + (size_t)t * D;
        for (int d = 0; d < D; d++) o[d] += g * y[d];
    }
}

/* ---- one decoder block in five stages (forward.h: enum fwd_stage) ----
 * x [T][D] is the residual stream, carry [T][max(qd, H)] what one stage leaves for the next: the
 * attention output after FWD_O, the FFN activation silu(gate)·up after FWD_DOWN. Each stage
 * recomputes the RMSNorm it starts from (cheap), so the stages in order are exactly one block. The
 * KV cache slot is `slot` (l in a full model's cache, 0 in a one-block state). */
static void stage_run(struct fwd_state *s, int l, enum fwd_stage st, float *x, float *carry, int T,
                      int pos0, int slot) {
    const struct model_config *c = &s->m->cfg;
    const struct layer *L = &s->m->layers[l];
    const int D = c->dim, H = c->hidden_dim, hd = c->head_dim;
    const size_t qd = (size_t)c->n_heads * hd, kvd = (size_t)c->n_kv_heads * hd;
    switch (st) {
    case FWD_QKV: /* the input of q, k, v */
        rmsnorm(s->xn, x, L->attn_norm.data, T, D, c->norm_eps);
        break;
    case FWD_O: { /* q, k, v, RoPE, the cache, attention -> carry (the input of o) */
        rmsnorm(s->xn, x, L->attn_norm.data, T, D, c->norm_eps);
        mm(s, s->q, s->xn, &L->lin[LIN_Q], T);
        mm(s, s->k, s->xn, &L->lin[LIN_K], T);
        mm(s, s->v, s->xn, &L->lin[LIN_V], T);
        add_bias(s->q, L->bias[LIN_Q].data, T, (int)qd);
        add_bias(s->k, L->bias[LIN_K].data, T, (int)kvd);
        add_bias(s->v, L->bias[LIN_V].data, T, (int)kvd);
        if (c->qk_norm) { /* qwen3, gemma3: every head of q and k RMS-normalized on its own */
            rmsnorm(s->q, s->q, L->q_norm.data, T * c->n_heads, hd, c->norm_eps);
            rmsnorm(s->k, s->k, L->k_norm.data, T * c->n_kv_heads, hd, c->norm_eps);
        }
        const bool swa = model_layer_swa(c, l);
        const float *rc = swa && s->rope_cos_swa ? s->rope_cos_swa : s->rope_cos;
        const float *rs = swa && s->rope_sin_swa ? s->rope_sin_swa : s->rope_sin;
        rope(s->q, T, c->n_heads, hd, pos0, rc, rs, c->rope_style);
        rope(s->k, T, c->n_kv_heads, hd, pos0, rc, rs, c->rope_style);
        if (c->attn_scale > 0) { /* the kernels scale by 1/√hd: q carries the rest */
            const float f = c->attn_scale * sqrtf((float)hd);
            for (size_t i = 0; i < (size_t)T * qd; i++) s->q[i] *= f;
        }
        cache_store(s, slot, T, pos0);
        const struct attn_shape as = {.T = T,
                                      .pos0 = pos0,
                                      .n_heads = c->n_heads,
                                      .n_kv_heads = c->n_kv_heads,
                                      .head_dim = hd,
                                      .ldk = s->ldk,
                                      .ldv = s->ldv,
                                      .kt_head = s->kt_head,
                                      .v_head = s->v_head};
        const int64_t lo = (int64_t)slot * c->n_kv_heads;
        const float *kt = s->k_cache + lo * s->kt_head, *vc = s->v_cache + lo * s->v_head;
        const int window = swa && pos0 + T > c->swa_window ? c->swa_window : 0;
        if (c->attn_softcap > 0 || window) {
            float *sc = xmalloc((size_t)T * c->n_heads * (size_t)(pos0 + T) * sizeof(float),
                                "attention scores");
            if (!sc) s->mm_failed = true;
            else attention_capped(carry, s->q, kt, vc, &as, c->attn_softcap, window, sc);
            free(sc);
        } else if (attention_ws(carry, s->q, kt, vc, &as, &s->ws)) {
            s->mm_failed = true;
        }
        s->flops += 4.0 * hd * c->n_heads * ((double)T * pos0 + (double)T * (T + 1) / 2);
        online_had(s, LIN_O, carry, T, (int)qd);
        break;
    }
    case FWD_GATE_UP: /* x += attention·Wo; the input of gate and up */
        mm(s, s->xn, carry, &L->lin[LIN_O], T);
        if (c->post_norms) rmsnorm(s->xn, s->xn, L->attn_post_norm.data, T, D, c->norm_eps);
        residual_add(x, s->xn, (size_t)T * D);
        rmsnorm(s->xn, x, L->ffn_norm.data, T, D, c->norm_eps);
        break;
    case FWD_DOWN: /* silu(gate) ⊙ up -> carry (the input of down) */
        rmsnorm(s->xn, x, L->ffn_norm.data, T, D, c->norm_eps);
        if (c->n_expert > 0) break; /* MoE: the whole MLP in FWD_OUT */
        mm(s, carry, s->xn, &L->lin[LIN_GATE], T);
        mm(s, s->up, s->xn, &L->lin[LIN_UP], T);
#pragma omp parallel for schedule(static) if ((size_t)T * H >= PAR_MIN_WORK)
        for (int t = 0; t < T; t++)
            for (int i = 0; i < H; i++) {
                const size_t j = (size_t)t * H + i;
                const float gv = carry[j];
                carry[j] = (c->gelu ? fwd_gelu_tanh(gv) : gv / (1.0f + expf(-gv))) * s->up[j];
            }
        online_had(s, LIN_DOWN, carry, T, H);
        break;
    case FWD_OUT: /* x += act·Wdown: the block's output */
        if (c->n_expert > 0) {
            rmsnorm(s->xn, x, L->ffn_norm.data, T, D, c->norm_eps);
            moe_ffn(s, L, s->xn, s->moe_o, T);
            memcpy(s->xn, s->moe_o, (size_t)T * D * sizeof(float));
        } else {
            mm(s, s->xn, carry, &L->lin[LIN_DOWN], T);
        }
        if (c->post_norms) rmsnorm(s->xn, s->xn, L->ffn_post_norm.data, T, D, c->norm_eps);
        residual_add(x, s->xn, (size_t)T * D);
        break;
    default: break;
    }
}

/* the weight whose input a stage ends at (the anchor the hooks know), NULL for FWD_OUT */
static const struct tensor *stage_anchor(const struct layer *L, enum fwd_stage st) {
    return st < LIN_N_INPUTS && L->lin[lin_anchor(st)].data ? &L->lin[lin_anchor(st)] : NULL;
}

int fwd_block_stage(struct fwd_state *s, int l, enum fwd_stage st, float *x, float *carry, int T) {
    const struct model_config *c = &s->m->cfg;
    if (l < 0 || l >= c->n_layers || st < 0 || st >= FWD_N_STAGES)
        return err("forward: block %d stage %d (expected block < %d, stage < %d)", l, (int)st,
                   c->n_layers, FWD_N_STAGES);
    if (T <= 0 || T > s->max_batch)
        return err("forward: a block window of %d tokens (expected 1..%d)", T, s->max_batch);
    s->hook_failed = s->mm_failed = false;
    s->in_stage = true; /* the matmuls do not call the hook: the stage hands its input below */
    stage_run(s, l, st, x, carry, T, 0, s->n_cache_layers == 1 ? 0 : l);
    s->in_stage = false;
    if (s->mm_failed || s->hook_failed) return -1;
    const struct layer *L = &s->m->layers[l];
    const struct tensor *a = stage_anchor(L, st);
    if (a && s->mm_hook) {
        const float *in = st == FWD_O || st == FWD_DOWN ? carry : s->xn;
        if (s->mm_hook(s->mm_hook_ctx, a, in, T)) return -1;
    }
    return 0;
}

/* one piece of at most max_batch tokens at pos0 = s->n_past */
static int forward_piece(struct fwd_state *s, const int *tokens, int T, float *logits,
                         bool last_only) {
    const struct model *m = s->m;
    const struct model_config *c = &m->cfg;
    const int D = c->dim;
    const int pos0 = s->n_past;
    s->hook_failed = s->mm_failed = false;

    for (int t = 0; t < T; t++) fwd_embed(m, tokens[t], s->x + (size_t)t * D);

    const int n_layers = s->layer_limit > 0 ? LB_MIN(s->layer_limit, c->n_layers) : c->n_layers;
    for (int l = 0; l < n_layers; l++)
        for (int st = 0; st < FWD_N_STAGES && !s->mm_failed; st++)
            if (st != FWD_QKV) /* FWD_O starts from the same RMSNorm */
                stage_run(s, l, (enum fwd_stage)st, s->x, s->carry, T, pos0, l);
    if (s->hook_failed || s->mm_failed) return -1;
    s->n_past += T;
    if (!logits) return 0;
    const int n_out = last_only ? 1 : T;
    rmsnorm(s->xn, s->x + (size_t)(T - n_out) * D, m->out_norm.data, n_out, D, c->norm_eps);
    mm_out(s, logits, s->xn, &m->output, n_out);
    if (c->final_softcap > 0) softcap(logits, (size_t)n_out * c->vocab_size, c->final_softcap);
    return s->mm_failed ? -1 : 0;
}

int forward(struct fwd_state *s, const int *tokens, int n_tok, float *logits, bool last_only) {
    const int V = s->m->cfg.vocab_size;
    if (n_tok <= 0) return err("forward: %d tokens (expected at least 1)", n_tok);
    if (s->n_cache_layers != s->m->cfg.n_layers)
        return err("forward: a one-block state (fwd_init_block) runs fwd_block_stage only");
    if (s->layer_limit > 0 && logits)
        return err("forward: no logits when only %d layers run (layer_limit)", s->layer_limit);
    if (s->n_past + n_tok > s->n_ctx)
        return err("forward: %d cached + %d new tokens exceed the context of %d", s->n_past, n_tok,
                   s->n_ctx);
    for (int i = 0; i < n_tok; i++)
        if (tokens[i] < 0 || tokens[i] >= V)
            return err("forward: token id %d at position %d is outside the vocabulary [0, %d)",
                       tokens[i], i, V);
    for (int i = 0; i < n_tok; i += s->max_batch) {
        const int T = LB_MIN(s->max_batch, n_tok - i);
        const bool last_piece = i + T == n_tok;
        float *lg = NULL;
        if (logits && !last_only) lg = logits + (size_t)i * V;
        if (logits && last_only && last_piece) lg = logits;
        if (forward_piece(s, tokens + i, T, lg, last_only)) return -1;
    }
    return 0;
}

double logprob_of(const float *logits, int vocab, int target, int *argmax) {
    float mx = logits[0];
    int am = 0;
    for (int i = 1; i < vocab; i++)
        if (logits[i] > mx) {
            mx = logits[i];
            am = i;
        }
    double sum = 0;
    for (int i = 0; i < vocab; i++) sum += exp((double)logits[i] - mx);
    if (argmax) *argmax = am;
    return (double)logits[target] - mx - log(sum);
}

void log_softmax(const float *logits, int vocab, float *out) {
    float mx = logits[0];
    for (int i = 1; i < vocab; i++) mx = logits[i] > mx ? logits[i] : mx;
    double sum = 0;
    for (int i = 0; i < vocab; i++) sum += exp((double)logits[i] - mx);
    const double lse = mx + log(sum);
    for (int i = 0; i < vocab; i++) out[i] = (float)((double)logits[i] - lse);
}
