/* tests/test_autoround.c: the block backward (eval/grad.c) and AutoRound (quant/autoround.c).
 *
 *  (a) gradient check: random blocks (llama: D 16, H 24, 4 query heads on 2 kv heads of 4, q/k/v
 *      bias, 2 windows of 5 tokens, both RoPE layouts; gemma2 and gemma3 blocks at other odd
 *      shapes, a sliding and a full layer each: post-norms, gelu, query_pre_attn_scalar, gemma2's
 *      score soft-cap, gemma3's q/k norms and local RoPE base): every gradient
 *      grad_block_backward gives (x, the seven weights, the biases, two or four norms) against
 *      central differences (h = 1e-5) of an independent float64 block written here (its RoPE
 *      angles in float64 from the bases), loss Σ y·R for a fixed random R; per-tensor relative
 *      error ‖g − g_fd‖/‖g_fd‖ <= 1e-4 (fp32 analytic vs float64 numeric: measured below 1e-6),
 *      and the fp32 forward within 1e-5 of the float64 one. MoE blocks too (Mixtral: 5 experts,
 *      top 2 renormalized; qwen2moe: 6 experts, top 3 not renormalized, a shared expert, and one
 *      with norm_topk_prob that leaves experts idle): the router, every expert's and the shared
 *      expert's weights and its gate, x; the choice of experts is the same in the fp32 block and
 *      in every perturbed float64 one (margin printed), idle experts get exactly zero gradients;
 *      a larger qwen2moe block's output and gradients are bit-identical on 1 and 2 threads. What
 *      the block does not cover (online Hadamard rotations, MoE with post-norms or gelu) is
 *      refused by grad_block_init with a message naming it.
 *  (a') the fake quantizer's STE chain (autoround_chain: ∂L/∂V, ∂L/∂min_scale, ∂L/∂max_scale)
 *      against float64 central differences of its surrogate (round() = argument + a residual
 *      held fixed, as round_ste), sym 4/2-bit and asym 4/3-bit, groups where either side sets
 *      the range: relative error <= 1e-4 (measured ~1e-7).
 *  (b) the grad forward equals eval/forward.c's block output on stories260K (every block, two
 *      calibration windows of 64 tokens): max |diff| <= 1e-5 · max |y|.
 *  (c) one stories260K block (block 2, all seven linears, 16 windows of 64 tokens), 100
 *      iterations: the block output MSE on the calibration inputs is below 0.9× RTN's (quant/rtn.c,
 *      AutoGPTQ's quantizer at the same bits / group / symmetry) and below 0.9× AutoRound's own
 *      untuned quantizer (iters 0), at 4/3/2 bits sym and 3/2 bits asym.
 *  (d) autoround_tune_block and grad_block_backward give bit-identical results on 1 and 2
 *      threads.
 *  (e) checkpoints reload with what was tuned: GPTQ (4-bit g128 sym, 3-bit g32 asym, 2-bit g64
 *      sym) and GGUF (Q4_0, Q8_0) dequantize to exactly the in-memory ŵ, Q4_1 within its fp16
 *      min; the logits of the reloaded model match the in-memory one (1e-4 relative; Q4_1 1e-2);
 *      config.json is AutoRound's auto_gptq quantization_config. Also from an HF llama source,
 *      whose q/k rows the GGUF must permute to interleaved pairs.
 *  (f) recipe checks: good and bad knobs, with the message naming what is wrong.
 *  (g) the CLI on stories260K: provenance lines (calibration hash, iterations, seconds, peak
 *      memory, per-block losses), a GGUF Q4_0 export that loads, and the published ordering at
 *      2 bits: AutoRound's held-out PPL far below RTN's (< 0.6×) even with 50 iterations.
 */
#include <jansson.h>
#include <stdint.h>
#include <sys/wait.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "eval/forward.h"
#include "eval/grad.h"
#include "eval/model.h"
#include "eval/safetensors.h"
#include "eval/tokenizer.h"
#include "kernels/qint.h"
#include "quant/autoround.h"
#include "quant/calib.h"
#include "quant/quant.h"
#include "quant/rtn.h"
#include "tests/t.h"
#include "tests/t_cli.h"

static uint32_t rng = 12345;
static float frand(void) { /* [-1, 1) */
    rng = rng * 1664525u + 1013904223u;
    return (float)((rng >> 8) / 8388608.0 - 1.0);
}

/* ------------------------------------------------------------------ (a) the gradient check */

/* a block's shape and features; the gemma ones as eval/grad.h lists them */
struct gshape {
    const char *name;
    int D, H, nh, nkv, hd, B, T;
    bool neox, bias, post, gelu, qk_norm, swa;
    double qpas;    /* query_pre_attn_scalar (scores · qpas^−½), 0 = head_dim */
    double softcap; /* 0 = none */
    int window;     /* the sliding layers' window, 0 = none */
    double theta, theta_swa, linear; /* RoPE bases (swa: the sliding layers'), linear scaling */
    /* MoE (E > 0, H then 0): E experts of hidden He, K per token, weights renormalized over the
     * K (norm: Mixtral, qwen2moe's norm_topk_prob), a shared expert of hidden Hs (0 = none) */
    int E, K, He, Hs;
    bool norm, idle_expected; /* the random router leaves an expert without rows */
};

/* the parameters as a list of flat vectors, so the finite differences can walk every element;
 * q_norm and k_norm get no gradient (grad.h: nothing tunes them) */
enum { P_X, P_AN, P_WQ, P_WK, P_WV, P_BQ, P_BK, P_BV, P_WO, P_FN, P_WG, P_WU, P_WD, P_APN, P_FPN,
       P_RT, P_EG, P_EU, P_ED, P_SHG, P_SHU, P_SHD, P_SGT, P_QN, P_KN, P_COUNT };
static const char *const p_name[P_COUNT] = {
    "x",        "attn_norm", "wq",       "wk",       "wv",       "bq",       "bk",
    "bv",       "wo",        "ffn_norm", "w_gate",   "w_up",     "w_down",   "attn_post",
    "ffn_post", "router",    "exp_gate", "exp_up",   "exp_down", "sh_gate",  "sh_up",
    "sh_down",  "sh_sigmoid", "q_norm",  "k_norm"};

static int p_size(const struct gshape *s, int i) {
    const int R = s->B * s->T, qd = s->nh * s->hd, kvd = s->nkv * s->hd;
    const int n[P_COUNT] = {R * s->D, s->D, qd * s->D, kvd * s->D, kvd * s->D, s->bias ? qd : 0,
                            s->bias ? kvd : 0, s->bias ? kvd : 0, s->D * qd, s->D, s->H * s->D,
                            s->H * s->D, s->D * s->H, s->post ? s->D : 0, s->post ? s->D : 0,
                            s->E * s->D, s->E * s->He * s->D, s->E * s->He * s->D,
                            s->E * s->D * s->He, s->Hs * s->D, s->Hs * s->D, s->D * s->Hs,
                            s->Hs ? s->D : 0, s->qk_norm ? s->hd : 0, s->qk_norm ? s->hd : 0};
    return n[i];
}

/* rows [n][w] of x → rms(row)·g in place (float64) */
static void ref_rms(double *x, int n, int w, const double *g, double eps) {
    for (int t = 0; t < n; t++) {
        double ss = 0;
        for (int i = 0; i < w; i++) ss += x[t * w + i] * x[t * w + i];
        const double sc = 1 / sqrt(ss / w + eps);
        for (int i = 0; i < w; i++) x[t * w + i] *= sc * g[i];
    }
}

/* y [R][N] = x [R][K]·Wᵀ (+ b) */
static void ref_mm(double *y, const double *x, const double *w, const double *b, int R, int K,
                   int N) {
    for (int t = 0; t < R; t++)
        for (int n = 0; n < N; n++) {
            double s = b ? b[n] : 0;
            for (int i = 0; i < K; i++) s += x[t * K + i] * w[n * K + i];
            y[t * N + n] = s;
        }
}

/* rotate every head of rows [R][nh·hd] at position t % T, angles in float64 from the base */
static void ref_rope(const struct gshape *s, double *x, int nh) {
    const int hd = s->hd, R = s->B * s->T;
    const double base = s->swa && s->theta_swa > 0 ? s->theta_swa : s->theta;
    const double div = s->swa || s->linear <= 0 ? 1 : s->linear;
    for (int t = 0; t < R; t++)
        for (int h = 0; h < nh; h++)
            for (int i = 0; i < hd / 2; i++) {
                double *r = x + (t * nh + h) * hd;
                const int ia = s->neox ? i : 2 * i, ib = s->neox ? i + hd / 2 : 2 * i + 1;
                const double a = (t % s->T) * pow(base, -2.0 * i / hd) / div;
                const double x0 = r[ia], x1 = r[ib];
                r[ia] = x0 * cos(a) - x1 * sin(a);
                r[ib] = x0 * sin(a) + x1 * cos(a);
            }
}

/* y [R][D] (+)= the SwiGLU MLP of x [R][D]: wg, wu [H][D], wd [D][H], row t scaled by sc[t] */
static void ref_swiglu(double *y, const double *x, const double *wg, const double *wu,
                       const double *wd, const double *sc, int R, int D, int H) {
    double *gt = malloc(sizeof(double) * H), *up = malloc(sizeof(double) * H);
    for (int t = 0; t < R; t++) {
        ref_mm(gt, x + t * D, wg, NULL, 1, D, H);
        ref_mm(up, x + t * D, wu, NULL, 1, D, H);
        for (int i = 0; i < H; i++) gt[i] = gt[i] / (1 + exp(-gt[i])) * up[i];
        for (int d = 0; d < D; d++) {
            double a = 0;
            for (int i = 0; i < H; i++) a += gt[i] * wd[d * H + i];
            y[t * D + d] += sc[t] * a;
        }
    }
    free(gt), free(up);
}

/* the experts the last ref_moe chose, [R][K] in descending order of probability, and the
 * smallest gap between the K-th and the (K+1)-th logit of any row */
static int ref_sel[64 * 8];
static double ref_gap;

/* f [R][D] = the MoE MLP of xn [R][D] as transformers' MixtralSparseMoeBlock and
 * Qwen2MoeSparseMoeBlock compute it: softmax of the router logits over all experts, the top K,
 * renormalized over them when norm; each chosen expert's SwiGLU times its weight; the shared
 * expert times sigmoid(xn·w) */
static void ref_moe(const struct gshape *s, const double *const *p, const double *xn, double *f) {
    const int R = s->B * s->T, D = s->D, E = s->E, K = s->K;
    double lg[16], pr[16];
    memset(f, 0, sizeof(double) * R * D);
    ref_gap = INFINITY;
    for (int t = 0; t < R; t++) {
        ref_mm(lg, xn + t * D, p[P_RT], NULL, 1, D, E);
        double mx = -INFINITY, sum = 0, top = 0;
        for (int e = 0; e < E; e++) mx = fmax(mx, lg[e]);
        for (int e = 0; e < E; e++) sum += pr[e] = exp(lg[e] - mx);
        bool used[16] = {0};
        for (int j = 0; j < K; j++) {
            int b = -1;
            for (int e = 0; e < E; e++)
                if (!used[e] && (b < 0 || lg[e] > lg[b])) b = e;
            used[b] = true, ref_sel[t * K + j] = b, top += pr[b] / sum;
        }
        for (int e = 0; e < E; e++) /* the margin of the choice */
            if (!used[e]) ref_gap = fmin(ref_gap, lg[ref_sel[t * K + K - 1]] - lg[e]);
        for (int j = 0; j < K; j++) {
            const int e = ref_sel[t * K + j];
            const double wt = pr[e] / sum / (s->norm ? top : 1);
            ref_swiglu(f + t * D, xn + t * D, p[P_EG] + e * s->He * D, p[P_EU] + e * s->He * D,
                       p[P_ED] + e * D * s->He, &wt, 1, D, s->He);
        }
    }
    if (!s->Hs) return;
    double *sg = malloc(sizeof(double) * R);
    ref_mm(sg, xn, p[P_SGT], NULL, R, D, 1);
    for (int t = 0; t < R; t++) sg[t] = 1 / (1 + exp(-sg[t]));
    ref_swiglu(f, xn, p[P_SHG], p[P_SHU], p[P_SHD], sg, R, D, s->Hs);
    free(sg);
}

/* the block in float64, written from the formulas of eval/grad.h (not its code) */
static void ref_block(const struct gshape *s, const double *const *p, double eps, double *y) {
    const int R = s->B * s->T, D = s->D, H = s->H, hd = s->hd, qd = s->nh * hd, kvd = s->nkv * hd;
    double *xn = malloc(sizeof(double) * R * D), *q = malloc(sizeof(double) * R * qd),
           *k = malloc(sizeof(double) * R * kvd), *v = malloc(sizeof(double) * R * kvd),
           *o = malloc(sizeof(double) * R * qd), *h1 = malloc(sizeof(double) * R * D),
           *f = malloc(sizeof(double) * R * D), *gt = malloc(sizeof(double) * R * LB_MAX(H, 1)),
           *up = malloc(sizeof(double) * R * LB_MAX(H, 1)), *sc = malloc(sizeof(double) * s->T);
    const double *x = p[P_X];
    memcpy(xn, x, sizeof(double) * R * D);
    ref_rms(xn, R, D, p[P_AN], eps);
    ref_mm(q, xn, p[P_WQ], s->bias ? p[P_BQ] : NULL, R, D, qd);
    ref_mm(k, xn, p[P_WK], s->bias ? p[P_BK] : NULL, R, D, kvd);
    ref_mm(v, xn, p[P_WV], s->bias ? p[P_BV] : NULL, R, D, kvd);
    if (s->qk_norm) {
        ref_rms(q, R * s->nh, hd, p[P_QN], eps);
        ref_rms(k, R * s->nkv, hd, p[P_KN], eps);
    }
    ref_rope(s, q, s->nh);
    ref_rope(s, k, s->nkv);
    const double scale = 1 / sqrt(s->qpas > 0 ? s->qpas : hd);
    for (int t = 0; t < R; t++)
        for (int h = 0; h < s->nh; h++) {
            const int g = h / (s->nh / s->nkv), b = t / s->T, pos = t % s->T;
            double mx = -INFINITY, sum = 0;
            for (int j = 0; j <= pos; j++) {
                const double *kr = k + (b * s->T + j) * kvd + g * hd;
                double d = 0;
                for (int i = 0; i < hd; i++) d += q[t * qd + h * hd + i] * kr[i];
                d *= scale;
                if (s->softcap > 0) d = s->softcap * tanh(d / s->softcap);
                sc[j] = s->swa && s->window > 0 && pos - j >= s->window ? -INFINITY : d;
                mx = fmax(mx, sc[j]);
            }
            for (int j = 0; j <= pos; j++) sum += sc[j] = exp(sc[j] - mx);
            for (int i = 0; i < hd; i++) {
                double a = 0;
                for (int j = 0; j <= pos; j++) a += sc[j] * v[(b * s->T + j) * kvd + g * hd + i];
                o[t * qd + h * hd + i] = a / sum;
            }
        }
    ref_mm(f, o, p[P_WO], NULL, R, qd, D);
    if (s->post) ref_rms(f, R, D, p[P_APN], eps);
    for (int i = 0; i < R * D; i++) h1[i] = x[i] + f[i];
    memcpy(xn, h1, sizeof(double) * R * D);
    ref_rms(xn, R, D, p[P_FN], eps);
    if (s->E) {
        ref_moe(s, p, xn, f);
        for (int i = 0; i < R * D; i++) y[i] = h1[i] + f[i];
        free(xn), free(q), free(k), free(v), free(o), free(h1), free(f), free(gt), free(up);
        free(sc);
        return;
    }
    ref_mm(gt, xn, p[P_WG], NULL, R, D, H);
    ref_mm(up, xn, p[P_WU], NULL, R, D, H);
    for (int i = 0; i < R * H; i++) {
        const double z = gt[i];
        const double act = s->gelu
                               ? 0.5 * z * (1 + tanh(sqrt(2 / M_PI) * (z + 0.044715 * z * z * z)))
                               : z / (1 + exp(-z));
        gt[i] = act * up[i];
    }
    ref_mm(f, gt, p[P_WD], NULL, R, H, D);
    if (s->post) ref_rms(f, R, D, p[P_FPN], eps);
    for (int i = 0; i < R * D; i++) y[i] = h1[i] + f[i];
    free(xn), free(q), free(k), free(v), free(o), free(h1), free(f), free(gt), free(up), free(sc);
}

static struct model shape_model(const struct gshape *s) {
    struct model m = MODEL_INIT;
    snprintf(m.cfg.arch, sizeof m.cfg.arch, "%s", s->post ? "gemma" : "llama");
    m.cfg.dim = s->D, m.cfg.hidden_dim = s->H, m.cfg.n_layers = 1, m.cfg.n_heads = s->nh;
    m.cfg.n_kv_heads = s->nkv, m.cfg.head_dim = s->hd, m.cfg.vocab_size = 8;
    m.cfg.norm_eps = 1e-5f, m.cfg.rope_theta = (float)s->theta;
    m.cfg.rope_style = s->neox ? ROPE_NEOX : ROPE_NORM;
    m.cfg.qkv_bias = s->bias, m.cfg.qk_norm = s->qk_norm;
    m.cfg.post_norms = s->post, m.cfg.gelu = s->gelu;
    if (s->post) m.cfg.embd_scale = sqrtf((float)s->D); /* acts before the block: no effect */
    m.cfg.attn_scale = s->qpas > 0 ? 1.0f / sqrtf((float)s->qpas) : 0;
    m.cfg.attn_softcap = (float)s->softcap, m.cfg.swa_window = s->window;
    m.cfg.rope_theta_swa = (float)s->theta_swa, m.cfg.rope_linear = (float)s->linear;
    m.cfg.n_expert = s->E, m.cfg.n_expert_used = s->K, m.cfg.expert_hidden = s->He;
    m.cfg.shared_hidden = s->Hs, m.cfg.expert_norm = s->norm;
    if (s->E) snprintf(m.cfg.arch, sizeof m.cfg.arch, "%s", s->Hs ? "qwen2moe" : "llama");
    return m;
}

/* every gradient grad_block_backward gives against central differences of ref_block */
static void check_gradients(const struct gshape *s) {
    const struct model m = shape_model(s);
    const int R = s->B * s->T, D = s->D;
    struct grad_block g;
    if (grad_block_init(&g, &m, s->T, R)) {
        T_FAIL_("%s: grad_block_init", s->name);
        return;
    }
    float *pf[P_COUNT], *an[P_COUNT];
    double *pd[P_COUNT], *fd[P_COUNT];
    for (int i = 0; i < P_COUNT; i++) {
        const int n = LB_MAX(p_size(s, i), 1);
        pf[i] = malloc(sizeof(float) * n), an[i] = malloc(sizeof(float) * n);
        pd[i] = malloc(sizeof(double) * n), fd[i] = malloc(sizeof(double) * n);
        for (int j = 0; j < p_size(s, i); j++) {
            float v = frand();
            if (i == P_AN || i == P_FN || i == P_APN || i == P_FPN || i == P_QN || i == P_KN)
                v = 1.0f + 0.3f * v;
            else if (i == P_X) v *= 1.5f;
            else if (i == P_WQ || i == P_WK) v *= 0.9f; /* scores of a few units: a real softmax */
            else if (i == P_WD || i == P_ED || i == P_SHD) v *= 0.4f;
            else if (i == P_RT) v *= 1.2f; /* router logits of a few units */
            else v *= 0.5f;
            pf[i][j] = v;
            pd[i][j] = v;
        }
    }
    float *rr = malloc(sizeof(float) * R * D), *y = malloc(sizeof(float) * R * D);
    double *yd = malloc(sizeof(double) * R * D);
    for (int j = 0; j < R * D; j++) rr[j] = frand();
    /* expert e's gate, up, down: slices of the stacked P_EG, P_EU, P_ED */
    const float *exw[3 * 16];
    float *exg[3 * 16];
    const int EHD = s->He * D;
    for (int e = 0; e < s->E; e++)
        for (int i = 0; i < 3; i++) {
            exw[3 * e + i] = pf[P_EG + i] + e * EHD;
            exg[3 * e + i] = an[P_EG + i] + e * EHD;
        }
#define OPT(a, i) (p_size(s, i) ? a[i] : NULL)
    const struct grad_weights w = {
        .attn_norm = pf[P_AN], .ffn_norm = pf[P_FN],
        .lin = {[LIN_Q] = pf[P_WQ], [LIN_K] = pf[P_WK], [LIN_V] = pf[P_WV], [LIN_O] = pf[P_WO],
                [LIN_GATE] = OPT(pf, P_WG), [LIN_UP] = OPT(pf, P_WU), [LIN_DOWN] = OPT(pf, P_WD)},
        .bias = {[LIN_Q] = OPT(pf, P_BQ), [LIN_K] = OPT(pf, P_BK), [LIN_V] = OPT(pf, P_BV)},
        .q_norm = OPT(pf, P_QN), .k_norm = OPT(pf, P_KN),
        .attn_post_norm = OPT(pf, P_APN), .ffn_post_norm = OPT(pf, P_FPN), .swa = s->swa,
        .router = OPT(pf, P_RT), .ex = s->E ? exw : NULL,
        .shexp = {OPT(pf, P_SHG), OPT(pf, P_SHU), OPT(pf, P_SHD)}, .shexp_gate = OPT(pf, P_SGT)};
    const struct grad_grads gr = {
        .attn_norm = an[P_AN], .ffn_norm = an[P_FN],
        .lin = {[LIN_Q] = an[P_WQ], [LIN_K] = an[P_WK], [LIN_V] = an[P_WV], [LIN_O] = an[P_WO],
                [LIN_GATE] = OPT(an, P_WG), [LIN_UP] = OPT(an, P_WU), [LIN_DOWN] = OPT(an, P_WD)},
        .bias = {[LIN_Q] = OPT(an, P_BQ), [LIN_K] = OPT(an, P_BK), [LIN_V] = OPT(an, P_BV)},
        .attn_post_norm = OPT(an, P_APN), .ffn_post_norm = OPT(an, P_FPN),
        .router = OPT(an, P_RT), .ex = s->E ? exg : NULL,
        .shexp = {OPT(an, P_SHG), OPT(an, P_SHU), OPT(an, P_SHD)}, .shexp_gate = OPT(an, P_SGT)};
#undef OPT
    T_OK(!grad_block_forward(&g, &w, pf[P_X], s->B, s->T, y));
    T_OK(!grad_block_backward(&g, &w, rr, an[P_X], &gr));
    const double *pp[P_COUNT];
    for (int i = 0; i < P_COUNT; i++) pp[i] = pd[i];
    ref_block(s, pp, 1e-5f, yd);
    /* MoE: the fp32 block chose what the float64 one did; the margin of the choice; the experts
     * no row chose get exactly zero gradients */
    int sel0[64 * 8], idle = 0, moved = 0;
    const double gap = ref_gap;
    memcpy(sel0, ref_sel, sizeof sel0);
    if (s->E && memcmp(g.msel, sel0, sizeof(int) * R * s->K))
        T_FAIL_("%s: the fp32 router chose other experts than the float64 one", s->name);
    for (int e = 0; e < s->E; e++) {
        bool chosen = false;
        for (int j = 0; j < R * s->K; j++) chosen |= sel0[j] == e;
        if (chosen) continue;
        idle++;
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < EHD; j++)
                if (exg[3 * e + i][j] != 0) {
                    T_FAIL_("%s: idle expert %d has a gradient", s->name, e);
                    i = 3;
                    break;
                }
    }
    double md = 0, mx = 0, worst = 0;
    for (int j = 0; j < R * D; j++) {
        md = fmax(md, fabs(y[j] - yd[j]));
        mx = fmax(mx, fabs(yd[j]));
    }
    if (!(md <= 1e-5 * mx))
        T_FAIL_("%s: fp32 forward vs float64: max diff %.3g of %.3g", s->name, md, mx);
    const double h = 1e-5;
    for (int i = 0; i < P_QN; i++)
        for (int j = 0; j < p_size(s, i); j++) {
            const double keep = pd[i][j];
            double lp = 0, lm = 0;
            pd[i][j] = keep + h;
            ref_block(s, pp, 1e-5f, yd);
            for (int e = 0; e < R * D; e++) lp += yd[e] * rr[e];
            moved += s->E && memcmp(ref_sel, sel0, sizeof(int) * R * s->K);
            pd[i][j] = keep - h;
            ref_block(s, pp, 1e-5f, yd);
            for (int e = 0; e < R * D; e++) lm += yd[e] * rr[e];
            moved += s->E && memcmp(ref_sel, sel0, sizeof(int) * R * s->K);
            pd[i][j] = keep;
            fd[i][j] = (lp - lm) / (2 * h);
        }
    for (int i = 0; i < P_QN; i++) {
        if (!p_size(s, i)) continue;
        double num = 0, den = 0;
        for (int j = 0; j < p_size(s, i); j++) {
            num += (an[i][j] - fd[i][j]) * (an[i][j] - fd[i][j]);
            den += fd[i][j] * fd[i][j];
        }
        const double rel = den > 0 ? sqrt(num / den) : num > 0 ? INFINITY : 0;
        worst = fmax(worst, rel);
        if (getenv("T_VERBOSE"))
            fprintf(stderr, "  %-8s %-9s |g| %.4g, relative error %.3g\n", s->name, p_name[i],
                    sqrt(den), rel);
        if (!(rel <= 1e-4)) T_FAIL_("%s %s: relative error %.3g", s->name, p_name[i], rel);
    }
    printf("  %-14s forward vs float64 %.2g of %.2g; gradients vs finite differences: worst "
           "relative error %.3g\n", s->name, md, mx, worst);
    if (s->E) { /* a perturbation that changed the choice would make the differences meaningless */
        printf("  %-14s top-%d margin %.3g (perturbations %.0e), idle experts %d\n", s->name, s->K,
               gap, h, idle);
        if (moved) T_FAIL_("%s: %d perturbations changed the experts chosen", s->name, moved);
        T_OK(gap > 100 * h);
        if (s->idle_expected) T_OK(idle > 0);
    }
    for (int i = 0; i < P_COUNT; i++) free(pf[i]), free(an[i]), free(pd[i]), free(fd[i]);
    free(rr), free(y), free(yd);
    grad_block_release(&g);
}

static void test_gradient_check(void) {
    /* llama: 4 query heads on 2 kv heads of 4, q/k/v bias, 2 windows of 5, both RoPE layouts;
     * gemma2: post-norms, gelu, query_pre_attn_scalar 10, scores capped at 2, a sliding layer of
     * window 3 in windows of 7 (T % 4 != 0: the attention's last query step is partial), 6 heads
     * of 6 on 2; gemma3: per-head q/k norms, no cap, window 4 in windows of 9, 3 heads of 8 on
     * one, its sliding layer on the local base 10000 and its full layer on 1e6 with positions
     * halved (linear scaling) */
    static const struct gshape shapes[] = {
        {.name = "llama/norm", .D = 16, .H = 24, .nh = 4, .nkv = 2, .hd = 4, .B = 2, .T = 5,
         .bias = true, .theta = 10000},
        {.name = "llama/neox", .D = 16, .H = 24, .nh = 4, .nkv = 2, .hd = 4, .B = 2, .T = 5,
         .neox = true, .bias = true, .theta = 10000},
        {.name = "gemma2/swa", .D = 20, .H = 28, .nh = 6, .nkv = 2, .hd = 6, .B = 2, .T = 7,
         .neox = true, .post = true, .gelu = true, .swa = true, .qpas = 10, .softcap = 2,
         .window = 3, .theta = 10000},
        {.name = "gemma2/full", .D = 20, .H = 28, .nh = 6, .nkv = 2, .hd = 6, .B = 2, .T = 7,
         .neox = true, .post = true, .gelu = true, .qpas = 10, .softcap = 2, .window = 3,
         .theta = 10000},
        {.name = "gemma3/swa", .D = 18, .H = 30, .nh = 3, .nkv = 1, .hd = 8, .B = 2, .T = 9,
         .neox = true, .post = true, .gelu = true, .qk_norm = true, .swa = true, .qpas = 12,
         .window = 4, .theta = 1e6, .theta_swa = 10000, .linear = 2},
        {.name = "gemma3/full", .D = 18, .H = 30, .nh = 3, .nkv = 1, .hd = 8, .B = 2, .T = 9,
         .neox = true, .post = true, .gelu = true, .qk_norm = true, .qpas = 12, .window = 4,
         .theta = 1e6, .theta_swa = 10000, .linear = 2},
        /* MoE: Mixtral (5 experts of 10, 2 per token, softmax over the chosen); qwen2moe with
         * q/k/v bias, 6 experts of 6, 3 per token, weights not renormalized, a shared expert of
         * 9; qwen2moe with norm_topk_prob, 8 experts, 2 per token on 6 rows (one left idle) */
        {.name = "mixtral", .D = 12, .nh = 3, .nkv = 1, .hd = 4, .B = 2, .T = 5, .theta = 1e6,
         .E = 5, .K = 2, .He = 10, .norm = true},
        {.name = "qwen2moe", .D = 14, .nh = 4, .nkv = 2, .hd = 4, .B = 2, .T = 6, .neox = true,
         .bias = true, .theta = 1e6, .E = 6, .K = 3, .He = 6, .Hs = 9},
        {.name = "qwen2moe/norm", .D = 10, .nh = 2, .nkv = 1, .hd = 6, .B = 2, .T = 3,
         .neox = true, .bias = true, .theta = 1e6, .E = 8, .K = 2, .He = 5, .Hs = 7, .norm = true,
         .idle_expected = true},
    };
    for (size_t i = 0; i < LB_ARRAY_LEN(shapes); i++) check_gradients(&shapes[i]);
}

/* a qwen2moe block large enough that every loop of grad.c's MoE path and its matmuls run on both
 * threads (R·D = 2^16): its output, input gradient and every weight gradient bit-identical on 1
 * and 2 threads */
static void test_moe_threads(void) {
    const struct gshape s = {.name = "qwen2moe", .D = 128, .nh = 4, .nkv = 2, .hd = 32, .B = 4,
                             .T = 128, .neox = true, .bias = true, .theta = 1e6, .E = 6, .K = 2,
                             .He = 96, .Hs = 160};
    const struct model m = shape_model(&s);
    const int R = s.B * s.T, D = s.D;
    struct grad_block g;
    if (grad_block_init(&g, &m, s.T, R)) {
        T_FAIL_("grad_block_init");
        return;
    }
    float *pf[P_COUNT], *an[2][P_COUNT];
    for (int i = 0; i < P_COUNT; i++) {
        const int n = LB_MAX(p_size(&s, i), 1);
        pf[i] = malloc(sizeof(float) * n);
        an[0][i] = calloc(n, sizeof(float)), an[1][i] = calloc(n, sizeof(float));
        for (int j = 0; j < n; j++)
            pf[i][j] = i == P_AN || i == P_FN ? 1.0f + 0.3f * frand() : 0.3f * frand();
    }
    float *y[2], *dy = malloc(sizeof(float) * R * D);
    for (int j = 0; j < R * D; j++) dy[j] = frand();
    const float *exw[3 * 6];
    float *exg[2][3 * 6];
    for (int e = 0; e < 3 * s.E; e++) {
        exw[e] = pf[P_EG + e % 3] + e / 3 * s.He * D;
        for (int r = 0; r < 2; r++) exg[r][e] = an[r][P_EG + e % 3] + e / 3 * s.He * D;
    }
    const struct grad_weights w = {
        .attn_norm = pf[P_AN], .ffn_norm = pf[P_FN],
        .lin = {[LIN_Q] = pf[P_WQ], [LIN_K] = pf[P_WK], [LIN_V] = pf[P_WV], [LIN_O] = pf[P_WO]},
        .bias = {[LIN_Q] = pf[P_BQ], [LIN_K] = pf[P_BK], [LIN_V] = pf[P_BV]},
        .router = pf[P_RT], .ex = exw, .shexp = {pf[P_SHG], pf[P_SHU], pf[P_SHD]},
        .shexp_gate = pf[P_SGT]};
    for (int run = 0; run < 2; run++) {
        lb_set_threads(run + 1);
        float *const *a = an[run];
        const struct grad_grads gr = {
            .attn_norm = a[P_AN], .ffn_norm = a[P_FN],
            .lin = {[LIN_Q] = a[P_WQ], [LIN_K] = a[P_WK], [LIN_V] = a[P_WV], [LIN_O] = a[P_WO]},
            .bias = {[LIN_Q] = a[P_BQ], [LIN_K] = a[P_BK], [LIN_V] = a[P_BV]},
            .router = a[P_RT], .ex = exg[run], .shexp = {a[P_SHG], a[P_SHU], a[P_SHD]},
            .shexp_gate = a[P_SGT]};
        y[run] = malloc(sizeof(float) * R * D);
        T_OK(!grad_block_forward(&g, &w, pf[P_X], s.B, s.T, y[run]));
        T_OK(!grad_block_backward(&g, &w, dy, a[P_X], &gr));
    }
    lb_set_threads(1);
    T_OK(!memcmp(y[0], y[1], sizeof(float) * R * D));
    int differ = 0, n_grad = 0;
    for (int i = 0; i < P_QN; i++) n_grad += p_size(&s, i) > 0;
    for (int i = 0; i < P_COUNT; i++)
        if (p_size(&s, i) && memcmp(an[0][i], an[1][i], sizeof(float) * p_size(&s, i))) {
            T_FAIL_("%s differs between 1 and 2 threads", p_name[i]);
            differ++;
        }
    printf("  qwen2moe block (%d rows, D %d, 6 experts, shared 160): y and %d gradients on 1 and "
           "2 threads: %s\n", R, D, n_grad, differ ? "differ" : "bit-identical");
    for (int i = 0; i < P_COUNT; i++) free(pf[i]), free(an[0][i]), free(an[1][i]);
    free(y[0]), free(y[1]), free(dy);
    grad_block_release(&g);
}

/* what the block backward does not cover is refused with a message naming it; a post-norm
 * configuration without its weights too */
static void test_grad_refusals(void) {
    const struct gshape gm = {.D = 16, .H = 24, .nh = 4, .nkv = 2, .hd = 4, .B = 1, .T = 4,
                              .post = true, .gelu = true, .theta = 10000};
    struct model m = shape_model(&gm);
    struct grad_block g;
    err_set_quiet(true);
    m.cfg.n_expert = 4, m.cfg.n_expert_used = 2;
    T_OK(grad_block_init(&g, &m, 4, 4) == -1);
    T_CONTAINS(err_last(), "mixture-of-experts MLPs and post-norms or gelu are not supported yet");
    m.cfg.n_expert = m.cfg.n_expert_used = 0, m.cfg.online_had = 1u << LIN_DOWN;
    T_OK(grad_block_init(&g, &m, 4, 4) == -1);
    T_CONTAINS(err_last(), "online Hadamard rotations are not supported yet");
    m.cfg.online_had = 0;
    static float zero[4 * 24 * 16], y[4 * 16];
    const struct grad_weights w = {
        .attn_norm = zero, .ffn_norm = zero,
        .lin = {[LIN_Q] = zero, [LIN_K] = zero, [LIN_V] = zero, [LIN_O] = zero,
                [LIN_GATE] = zero, [LIN_UP] = zero, [LIN_DOWN] = zero}};
    T_OK(!grad_block_init(&g, &m, 4, 4));
    T_OK(grad_block_forward(&g, &w, zero, 1, 4, y) == -1);
    T_CONTAINS(err_last(), "post-norm weights lack");
    grad_block_release(&g);
    err_set_quiet(false);
}

/* ---------------------------------------------------------- (b) grad forward == eval forward */

static void test_forward_matches_eval(void) {
    const char *p = T_DATA("models/stories260K.gguf");
    if (!p) return;
    struct model m = MODEL_INIT;
    if (model_load(&m, p)) {
        T_FAIL_("model_load %s", p);
        return;
    }
    struct tokenizer *tok = NULL;
    T_OK(!tokenizer_load(&tok, p));
    struct calib_set cs;
    const int T = 64, NW = 2, D = m.cfg.dim;
    if (!tok || calib_load(&cs, "groups_merged", tok, NW, T, 0)) {
        T_FAIL_("calibration windows");
        tokenizer_free(tok);
        model_release(&m);
        return;
    }
    struct fwd_state fs;
    struct grad_block g;
    float *xin = malloc(sizeof(float) * NW * T * D), *yref = malloc(sizeof(float) * NW * T * D);
    float *y = malloc(sizeof(float) * NW * T * D);
    T_OK(!fwd_init(&fs, &m, T, T));
    T_OK(!grad_block_init(&g, &m, T, NW * T));
    for (int l = 0; l < m.cfg.n_layers; l++) {
        for (int b = 0; b < NW; b++) {
            const int *tk = cs.tokens + b * T;
            if (l == 0) {
                for (int t = 0; t < T; t++)
                    tensor_row_to_f32(&m.tok_embd, tk[t], xin + (b * T + t) * D);
            } else {
                fs.layer_limit = l;
                fwd_truncate(&fs, 0);
                T_OK(!forward(&fs, tk, T, NULL, false));
                memcpy(xin + b * T * D, fs.x, sizeof(float) * T * D);
            }
            fs.layer_limit = l + 1;
            fwd_truncate(&fs, 0);
            T_OK(!forward(&fs, tk, T, NULL, false));
            memcpy(yref + b * T * D, fs.x, sizeof(float) * T * D);
        }
        struct grad_weights w;
        float *own = NULL;
        T_OK(!grad_weights_from_layer(&m, l, &w, &own));
        T_OK(!grad_block_forward(&g, &w, xin, NW, T, y));
        double md = 0, mx = 0;
        for (int i = 0; i < NW * T * D; i++) {
            md = fmax(md, fabs((double)y[i] - yref[i]));
            mx = fmax(mx, fabs((double)yref[i]));
        }
        if (getenv("T_VERBOSE"))
            fprintf(stderr, "  block %d: max |grad fwd - eval fwd| %.3g of %.3g\n", l, md, mx);
        if (!(md <= 1e-5 * mx)) T_FAIL_("block %d: max diff %.3g of %.3g", l, md, mx);
        free(own);
    }
    grad_block_release(&g);
    fwd_release(&fs);
    free(xin);
    free(yref);
    free(y);
    calib_release(&cs);
    tokenizer_free(tok);
    model_release(&m);
}

/* ------------------------------------------- (a') the fake quantizer's STE chain */

/* The STE gradient is the exact derivative of a surrogate in which every round() result is its
 * argument plus a residual held fixed at the base point (round_ste's (round(x) − x).detach()),
 * the fp16 cast of the scale likewise, and the clamp decisions fixed. Its float64 central
 * differences must match autoround_chain. One group of row n: L = Σ_k gq_k·ŵ_k. */
struct sur_base {
    double cs, cz;          /* fp16 residual of s; rounding residual of zp */
    double cr[64], qc[64];  /* rounding residuals; clamped values */
    bool in[64], s_cl, z_cl;
    int dom;
};

static double sur_loss(const float *w, const double *v, double mins, double maxs, double wmin,
                       double wmax, const float *gq, int K, const struct autoround_opts *o,
                       const struct sur_base *b) {
    double sc, zp = 0, Lo = 0;
    if (o->sym) {
        const double maxq = 1 << (o->bits - 1), a = -(wmin * mins), c = wmax * maxs;
        const double mv = b->dom == 1 ? a : b->dom == 0 ? -c : -0.5 * (a + c);
        sc = b->s_cl ? b->cs : mv / maxq + b->cs;
    } else {
        const double maxq = (1 << o->bits) - 1, wn = wmin * mins, wx = wmax * maxs;
        sc = b->s_cl ? b->cs : (wx - wn) / maxq + b->cs;
        zp = b->z_cl ? b->cz : -wn / sc + b->cz;
    }
    for (int k = 0; k < K; k++) {
        const double x = w[k] / sc + v[k];
        double what;
        if (o->sym) what = sc * (b->in[k] ? x + b->cr[k] : b->qc[k]);
        else what = sc * (b->in[k] ? x + b->cr[k] : b->qc[k] - zp);
        Lo += gq[k] * what;
    }
    return Lo;
}

static void check_chain(int bits, bool sym) {
    enum { CN = 3, CK = 64, CG = 32 };
    static float w[CN * CK], gq[CN * CK];
    struct autoround_opts o = AUTOROUND_OPTS_DEFAULT;
    o.bits = bits, o.sym = sym, o.zero_min = 0;
    for (int i = 0; i < CN * CK; i++) /* outliers of both signs: either side sets max_v */
        w[i] = 0.1f * frand() + (i % 29 == 0 ? (i % 2 ? -0.2f : 0.2f) : 0.0f);
    for (int i = 0; i < CN * CK; i++) gq[i] = frand();
    struct autoround_linear L;
    T_OK(!autoround_linear_init(&L, w, CK, CN, CG));
    for (int i = 0; i < CN * CK; i++) L.v[i] = 0.45f * frand();
    for (int j = 0; j < CN * L.ng; j++) {
        L.min_scale[j] = 0.85f + 0.1f * frand();
        L.max_scale[j] = 0.85f + 0.1f * frand();
    }
    autoround_qdq(&L, &o);
    memcpy(L.gwq, gq, sizeof gq);
    autoround_chain(&L, &o);
    double num[3] = {0}, den[3] = {0};
    for (int n = 0; n < CN; n++)
        for (int gi = 0; gi < L.ng; gi++) {
            const int j = n * L.ng + gi, k0 = gi * CG;
            const float *wg = w + n * CK + k0;
            const double wmin = L.wmin[j], wmax = L.wmax[j], mins = L.min_scale[j],
                         maxs = L.max_scale[j];
            /* the base point, recomputed as the implementation does (float) */
            struct sur_base b;
            memset(&b, 0, sizeof b);
            const float thresh = lb_fp16_to_f32(lb_f32_to_fp16(1e-5f));
            float s32, sf, zf = 0;
            if (sym) {
                const float maxq = (float)(1 << (bits - 1)), a = -(L.wmin[j] * L.min_scale[j]),
                            c = L.wmax[j] * L.max_scale[j];
                b.dom = c < a ? 1 : c == a ? 2 : 0;
                s32 = (b.dom == 1 ? a : -c) / maxq;
                sf = lb_fp16_to_f32(lb_f32_to_fp16(s32));
                b.s_cl = fabsf(sf) < thresh;
                const double a64 = -(wmin * mins), c64 = wmax * maxs;
                b.cs = b.s_cl ? sf : sf - (b.dom == 1 ? a64 : -c64) / maxq;
            } else {
                const float maxq = (float)((1 << bits) - 1), wn = L.wmin[j] * L.min_scale[j],
                            wx = L.wmax[j] * L.max_scale[j];
                s32 = (wx - wn) / maxq;
                sf = lb_fp16_to_f32(lb_f32_to_fp16(s32));
                b.s_cl = sf < thresh;
                b.cs = b.s_cl ? sf : sf - (wmax * maxs - wmin * mins) / maxq;
                const float zr = -wn / sf;
                zf = rintf(zr);
                b.z_cl = zf < 0 || zf > maxq;
                b.cz = b.z_cl ? fminf(fmaxf(zf, 0), maxq) : (double)zf - (-(wmin * mins) / sf);
            }
            double v[CG];
            for (int k = 0; k < CG; k++) {
                v[k] = L.v[n * CK + k0 + k];
                const float x = wg[k] / sf + L.v[n * CK + k0 + k];
                const float r = rintf(x);
                if (sym) {
                    const float lo = -(float)(1 << (bits - 1)), hi = -lo - 1;
                    b.in[k] = r >= lo && r <= hi;
                    b.qc[k] = fminf(fmaxf(r, lo), hi);
                } else {
                    const float hi = (float)((1 << bits) - 1);
                    b.in[k] = r + zf >= 0 && r + zf <= hi;
                    b.qc[k] = fminf(fmaxf(r + zf, 0), hi);
                }
                b.cr[k] = (double)r - ((double)wg[k] / sf + v[k]);
            }
            const float *gg = gq + n * CK + k0;
            const double h = 1e-6;
            for (int k = 0; k < CG; k++) { /* ∂/∂V */
                const double keep = v[k];
                v[k] = keep + h;
                const double lp = sur_loss(wg, v, mins, maxs, wmin, wmax, gg, CG, &o, &b);
                v[k] = keep - h;
                const double lm = sur_loss(wg, v, mins, maxs, wmin, wmax, gg, CG, &o, &b);
                v[k] = keep;
                const double fd = (lp - lm) / (2 * h), an = L.gv[n * CK + k0 + k];
                num[0] += (fd - an) * (fd - an), den[0] += fd * fd;
            }
            const double fmin = (sur_loss(wg, v, mins + h, maxs, wmin, wmax, gg, CG, &o, &b) -
                                 sur_loss(wg, v, mins - h, maxs, wmin, wmax, gg, CG, &o, &b)) /
                                (2 * h);
            const double fmax = (sur_loss(wg, v, mins, maxs + h, wmin, wmax, gg, CG, &o, &b) -
                                 sur_loss(wg, v, mins, maxs - h, wmin, wmax, gg, CG, &o, &b)) /
                                (2 * h);
            num[1] += (fmin - L.gmin[j]) * (fmin - L.gmin[j]), den[1] += fmin * fmin;
            num[2] += (fmax - L.gmax[j]) * (fmax - L.gmax[j]), den[2] += fmax * fmax;
        }
    static const char *const what[3] = {"V", "min_scale", "max_scale"};
    for (int i = 0; i < 3; i++) {
        const double rel = den[i] > 0 ? sqrt(num[i] / den[i]) : sqrt(num[i]);
        if (getenv("T_VERBOSE"))
            fprintf(stderr, "  chain %d-bit %s %-9s |g| %.4g, relative error %.3g\n", bits,
                    sym ? "sym" : "asym", what[i], sqrt(den[i]), rel);
        if (!(rel <= 1e-4)) T_FAIL_("chain %d-bit %s %s: relative error %.3g", bits,
                                    sym ? "sym" : "asym", what[i], rel);
    }
    autoround_linear_release(&L);
}

static void test_chain(void) {
    check_chain(4, true);
    check_chain(2, true);
    check_chain(4, false);
    check_chain(3, false);
}

/* ------------------------------------------------------ shared: stories260K and its windows */

struct fixture {
    struct model m;
    struct tokenizer *tok;
    struct calib_set cs;
    bool ok;
};

static void fixture_load(struct fixture *f, int n_win, int T, uint64_t seed) {
    memset(f, 0, sizeof *f);
    f->m = (struct model)MODEL_INIT;
    const char *p = T_DATA("models/stories260K.gguf");
    if (!p) return;
    if (model_load(&f->m, p) || tokenizer_load(&f->tok, p) ||
        calib_load(&f->cs, "groups_merged", f->tok, n_win, T, seed)) {
        T_FAIL_("stories260K fixture");
        return;
    }
    f->ok = true;
}

static void fixture_release(struct fixture *f) {
    calib_release(&f->cs);
    tokenizer_free(f->tok);
    model_release(&f->m);
}

/* the float input of block l for every window (embeddings through blocks 0..l−1) */
static float *block_input(struct fixture *f, struct grad_block *g, int l) {
    const int D = f->m.cfg.dim, T = f->cs.seqlen, n = f->cs.n_samples;
    float *x = malloc(sizeof(float) * n * T * D), *y = malloc(sizeof(float) * n * T * D);
    for (int i = 0; i < n * T; i++) tensor_row_to_f32(&f->m.tok_embd, f->cs.tokens[i], x + i * D);
    for (int b = 0; b < l; b++) {
        struct grad_weights w;
        float *own = NULL;
        T_OK(!grad_weights_from_layer(&f->m, b, &w, &own));
        for (int i = 0; i < n; i++)
            T_OK(!grad_block_forward(g, &w, x + i * T * D, 1, T, y + i * T * D));
        memcpy(x, y, sizeof(float) * n * T * D);
        free(own);
    }
    free(y);
    return x;
}

/* mean squared difference of the block output with weights w from y_ref, over every window */
static double block_mse(struct grad_block *g, const struct grad_weights *w, const float *x,
                        const float *yref, int n, int T, int D) {
    float *y = malloc(sizeof(float) * T * D);
    double e = 0;
    for (int i = 0; i < n; i++) {
        T_OK(!grad_block_forward(g, w, x + (size_t)i * T * D, 1, T, y));
        for (int j = 0; j < T * D; j++) {
            const double d = (double)y[j] - yref[(size_t)i * T * D + j];
            e += d * d;
        }
    }
    free(y);
    return e / ((double)n * T * D);
}

/* ------------------------------------ (c) one block: AutoRound's output error is below RTN's */

static void test_block_beats_rtn(void) {
    struct fixture f;
    const int NW = 16, T = 64, L = 2;
    fixture_load(&f, NW, T, 3);
    if (!f.ok) {
        fixture_release(&f);
        return;
    }
    const int D = f.m.cfg.dim;
    struct grad_block g;
    T_OK(!grad_block_init(&g, &f.m, T, 8 * T));
    float *x = block_input(&f, &g, L), *yref = malloc(sizeof(float) * NW * T * D);
    struct grad_weights wf;
    float *own = NULL;
    T_OK(!grad_weights_from_layer(&f.m, L, &wf, &own));
    for (int i = 0; i < NW; i++)
        T_OK(!grad_block_forward(&g, &wf, x + i * T * D, 1, T, yref + i * T * D));
    static const struct {
        int bits, group, sym;
    } cfg[] = {{4, 32, 1}, {3, 32, 1}, {2, 32, 1}, {3, 64, 0}, {2, -1, 0}};
    for (size_t c = 0; c < LB_ARRAY_LEN(cfg); c++) {
        struct autoround_opts o = AUTOROUND_OPTS_DEFAULT;
        o.bits = cfg[c].bits, o.group = cfg[c].group, o.sym = cfg[c].sym, o.iters = 100;
        o.lr = o.minmax_lr = autoround_auto_lr(o.iters, o.bits);
        const float *const *src = wf.lin;
        const struct tensor *lt[LIN_COUNT];
        for (int i = 0; i < LIN_COUNT; i++) lt[i] = &f.m.layers[L].lin[i];
        struct autoround_linear lin[7];
        struct autoround_linear *lp[7];
        float *rtn_w[7];
        void *rtn_buf[7];
        for (int i = 0; i < 7; i++) {
            const int64_t K = lt[i]->ne[0], N = tensor_nrows(lt[i]);
            /* groups that do not divide K (ffn_down: 172) become one group per row */
            const int64_t gr = cfg[c].group > 0 && K % cfg[c].group ? -1 : cfg[c].group;
            T_OK(!autoround_linear_init(&lin[i], src[i], K, N, gr));
            lp[i] = &lin[i];
            /* the project's RTN (AutoGPTQ's quantizer, same bits / group / symmetry) */
            const struct rtn_opts ro = {.bits = o.bits, .group = gr, .sym = o.sym,
                                        .style = RTN_GPTQ, .zero_min = 0};
            struct tensor t;
            rtn_buf[i] = NULL;
            rtn_w[i] = malloc(sizeof(float) * K * N);
            T_OK(!rtn_quantize(src[i], K, N, &ro, "rtn", &t, &rtn_buf[i]));
            for (int64_t r = 0; rtn_buf[i] && r < N; r++) qint_row_to_f32(&t, r, rtn_w[i] + r * K);
        }
        struct grad_weights wr = wf;
        for (int i = 0; i < LIN_COUNT; i++) wr.lin[i] = rtn_w[i];
        const double e_rtn = block_mse(&g, &wr, x, yref, NW, T, D);
        /* AutoRound's own untuned quantizer (iters 0: its "rtn" recipe) */
        struct autoround_block_stat st;
        uint64_t srng = 1;
        struct autoround_opts o0 = o;
        o0.iters = 0;
        T_OK(!autoround_tune_block(&g, &wf, lp, x, yref, NULL, NW, T, &o0, &srng, &st));
        struct grad_weights wq = wf;
        for (int i = 0; i < LIN_COUNT; i++) wq.lin[i] = lin[i].wq;
        const double e_ar0 = block_mse(&g, &wq, x, yref, NW, T, D);
        T_OK(!autoround_tune_block(&g, &wf, lp, x, yref, NULL, NW, T, &o, &srng, &st));
        const double e_ar = block_mse(&g, &wq, x, yref, NW, T, D);
        if (getenv("T_VERBOSE"))
            fprintf(stderr, "  %d-bit g%d %s: block output MSE rtn %.4g, autoround untuned %.4g, "
                    "tuned %.4g (batch loss %.4g -> %.4g at iter %d)\n", cfg[c].bits, cfg[c].group,
                    cfg[c].sym ? "sym" : "asym", e_rtn, e_ar0, e_ar, st.loss_init, st.loss_best,
                    st.best_iter);
        if (!(e_ar < 0.9 * e_rtn && e_ar < 0.9 * e_ar0))
            T_FAIL_("%d-bit g%d: AutoRound MSE %.4g is not below RTN's %.4g / untuned %.4g",
                    cfg[c].bits, cfg[c].group, e_ar, e_rtn, e_ar0);
        for (int i = 0; i < 7; i++) {
            autoround_linear_release(&lin[i]);
            free(rtn_w[i]);
            free(rtn_buf[i]);
        }
    }
    free(own);
    free(x);
    free(yref);
    grad_block_release(&g);
    fixture_release(&f);
}

/* ------------------------------------------- (d) the same bits for 1 and 2 threads */

static void test_threads(void) {
    struct fixture f;
    const int NW = 8, T = 128, L = 1;
    fixture_load(&f, NW, T, 5);
    if (!f.ok) {
        fixture_release(&f);
        return;
    }
    const int D = f.m.cfg.dim;
    struct grad_block g;
    T_OK(!grad_block_init(&g, &f.m, T, NW * T));
    float *x = block_input(&f, &g, L), *yref = malloc(sizeof(float) * NW * T * D);
    struct grad_weights wf;
    float *own = NULL;
    T_OK(!grad_weights_from_layer(&f.m, L, &wf, &own));
    T_OK(!grad_block_forward(&g, &wf, x, NW, T, yref));
    struct autoround_opts o = AUTOROUND_OPTS_DEFAULT;
    o.bits = 3, o.group = 32, o.iters = 12, o.lr = o.minmax_lr = 0.05;
    float *res[2][4];
    for (int run = 0; run < 2; run++) {
        lb_set_threads(run + 1);
        struct autoround_linear lq, lk;
        T_OK(!autoround_linear_init(&lq, wf.lin[LIN_Q], D, D, 32));
        T_OK(!autoround_linear_init(&lk, wf.lin[LIN_UP], D, f.m.cfg.hidden_dim, 32));
        struct autoround_linear *lp[7] = {&lq, NULL, NULL, NULL, NULL, &lk, NULL};
        struct autoround_block_stat st;
        uint64_t srng = 9;
        uint8_t valid[8 * 128];
        autoround_valid_mask(f.cs.tokens, NW, T, valid);
        T_EQ_INT(valid[T - 1], 0);
        T_EQ_INT(valid[0], 1);
        T_OK(!autoround_tune_block(&g, &wf, lp, x, yref, valid, NW, T, &o, &srng, &st));
        res[run][0] = malloc(sizeof(float) * D * D);
        memcpy(res[run][0], lq.v, sizeof(float) * D * D);
        res[run][1] = malloc(sizeof(float) * D * f.m.cfg.hidden_dim);
        memcpy(res[run][1], lk.wq, sizeof(float) * D * f.m.cfg.hidden_dim);
        res[run][2] = malloc(sizeof(float) * lq.N * lq.ng);
        memcpy(res[run][2], lq.max_scale, sizeof(float) * lq.N * lq.ng);
        /* and the block backward itself, every gradient */
        static float dx[8 * 128 * 64];
        float *gr = calloc((size_t)(3 * D * D + 3 * D * f.m.cfg.hidden_dim + 4 * D), sizeof(float));
        const int HD = D * f.m.cfg.hidden_dim;
        const struct grad_grads gg = {
            .lin = {[LIN_Q] = gr, [LIN_K] = gr + D * D, [LIN_O] = gr + 2 * D * D,
                    [LIN_GATE] = gr + 3 * D * D, [LIN_UP] = gr + 3 * D * D + HD,
                    [LIN_DOWN] = gr + 3 * D * D + 2 * HD},
            .attn_norm = gr + 3 * D * D + 3 * HD, .ffn_norm = gr + 3 * D * D + 3 * HD + D};
        T_OK(!grad_block_forward(&g, &wf, x, NW, T, dx));
        T_OK(!grad_block_backward(&g, &wf, yref, dx, &gg));
        res[run][3] = gr;
        if (run) {
            T_OK(!memcmp(res[0][0], res[1][0], sizeof(float) * D * D));
            T_OK(!memcmp(res[0][1], res[1][1], sizeof(float) * D * f.m.cfg.hidden_dim));
            T_OK(!memcmp(res[0][2], res[1][2], sizeof(float) * lq.N * lq.ng));
            T_OK(!memcmp(res[0][3], res[1][3],
                         sizeof(float) * (3 * D * D + 3 * D * f.m.cfg.hidden_dim + 2 * D)));
        }
        autoround_linear_release(&lq);
        autoround_linear_release(&lk);
    }
    lb_set_threads(1);
    for (int run = 0; run < 2; run++)
        for (int i = 0; i < 4; i++) free(res[run][i]);
    free(own);
    free(x);
    free(yref);
    grad_block_release(&g);
    fixture_release(&f);
}

/* ---------------------------- (e) checkpoints reload with the weights and outputs we tuned */

/* the source row of GGUF row r (quant/quant.c's fp rule: HF llama q/k rows are permuted to
 * interleaved pairs, GGUF row h·hd + 2i + s <- HF row h·hd + s·hd/2 + i) */
static int64_t gguf_row(const struct model *m, bool qk, int64_t r) {
    if (!qk || m->cfg.rope_style != ROPE_NEOX) return r;
    const int64_t hd = m->cfg.head_dim, h = r / hd, in = r % hd;
    return h * hd + (in % 2) * (hd / 2) + in / 2;
}

/* the logits of window 0 of cs under model m */
static float *logits_of(const struct model *m, const struct calib_set *cs) {
    struct fwd_state fs;
    float *lg = malloc(sizeof(float) * cs->seqlen * m->cfg.vocab_size);
    if (fwd_init(&fs, m, cs->seqlen, cs->seqlen)) return lg;
    T_OK(!forward(&fs, cs->tokens, cs->seqlen, lg, false));
    fwd_release(&fs);
    return lg;
}

static void check_roundtrip(struct fixture *f, enum autoround_format fmt, int bits, int group,
                            bool sym) {
    char tag[64], out[400];
    snprintf(tag, sizeof tag, "%s %d-bit g%d %s", fmt == AUTOROUND_GGUF ? "gguf" : "gptq", bits,
             group, sym ? "sym" : "asym");
    snprintf(out, sizeof out, "%s/rt-%d-%d-%d-%d%s", t_tmpdir(), fmt, bits, group, sym,
             fmt == AUTOROUND_GGUF ? ".gguf" : "");
    struct autoround_opts o = AUTOROUND_OPTS_DEFAULT;
    o.bits = bits, o.group = group, o.sym = sym, o.iters = 10, o.lr = o.minmax_lr = 0.05;
    o.zero_min = fmt == AUTOROUND_GPTQ ? 1 : 0;
    struct autoround_report rep;
    const struct model *m = &f->m;
    if (autoround_quantize_model(m, m->path, &o, &f->cs, fmt, out, "rt", true, true, &rep)) {
        T_FAIL_("%s: autoround_quantize_model", tag);
        autoround_report_release(&rep, m->cfg.n_layers);
        return;
    }
    /* the in-memory model: the source with the tuned ŵ swapped in */
    struct model fm = *m;
    fm.layers = malloc(sizeof *fm.layers * m->cfg.n_layers);
    memcpy(fm.layers, m->layers, sizeof *fm.layers * m->cfg.n_layers);
    struct model q = MODEL_INIT;
    T_OK(!model_load(&q, out));
    int n_checked = 0, n_diff = 0;
    double worst = 0;
    for (int l = 0; l < m->cfg.n_layers && q.layers; l++) {
        struct tensor *ms[LIN_COUNT];
        const struct tensor *qs[LIN_COUNT];
        for (int i = 0; i < LIN_COUNT; i++) {
            ms[i] = &fm.layers[l].lin[i];
            qs[i] = &q.layers[l].lin[i];
        }
        for (int i = 0; i < 7; i++) {
            const float *dq = rep.deq[l * 7 + i];
            if (!dq) continue;
            const int64_t K = ms[i]->ne[0], N = tensor_nrows(ms[i]);
            calib_f32_slot(ms[i], (float *)dq, K, N);
            float row[256];
            for (int64_t r = 0; r < N; r++) {
                /* GPTQ (HF) rows of q/k in HF order, GGUF rows in interleaved-pair order */
                const int64_t sr = fmt == AUTOROUND_GPTQ ? calib_source_row(m, i < 2, r)
                                                         : gguf_row(m, i < 2, r);
                tensor_row_to_f32(qs[i], r, row);
                for (int64_t k = 0; k < K; k++) {
                    const double a = row[k], b = dq[sr * K + k];
                    if (a != b) n_diff++;
                    /* Q4_1 stores m = −zp·d rounded to fp16: within half an fp16 ulp of it */
                    worst = fmax(worst, fabs(a - b));
                }
            }
            n_checked++;
        }
    }
    if (getenv("T_VERBOSE"))
        fprintf(stderr, "  %s: %d linears reloaded, %d weights differ (max %.3g)\n", tag,
                n_checked, n_diff, worst);
    T_OK(n_checked > 0);
    if (!(fmt == AUTOROUND_GGUF && !sym)) {
        if (n_diff) T_FAIL_("%s: %d reloaded weights differ from the tuned ones (max %.3g)", tag,
                            n_diff, worst);
    } else if (!(worst <= 1e-3)) {
        T_FAIL_("%s: reloaded weights differ by %.3g", tag, worst);
    }
    if (q.layers) { /* and the outputs */
        float *a = logits_of(&fm, &f->cs), *b = logits_of(&q, &f->cs);
        double md = 0, mx = 0;
        for (int i = 0; i < f->cs.seqlen * m->cfg.vocab_size; i++) {
            md = fmax(md, fabs((double)a[i] - b[i]));
            mx = fmax(mx, fabs((double)a[i]));
        }
        if (getenv("T_VERBOSE"))
            fprintf(stderr, "  %s: logits max |in-memory - reloaded| %.3g of %.3g\n", tag, md, mx);
        const double tol = fmt == AUTOROUND_GGUF && !sym ? 1e-2 : 1e-4;
        if (!(md <= tol * mx)) T_FAIL_("%s: logits differ by %.3g of %.3g", tag, md, mx);
        free(a);
        free(b);
    }
    if (fmt == AUTOROUND_GPTQ) { /* config.json as AutoRound's auto_gptq export writes it */
        char cp[500];
        snprintf(cp, sizeof cp, "%s/config.json", out);
        json_error_t je;
        json_t *cfg = json_load_file(cp, 0, &je), *qc = json_object_get(cfg, "quantization_config");
        T_OK(qc != NULL);
        T_EQ_STR(json_string_value(json_object_get(qc, "quant_method")), "gptq");
        T_EQ_STR(json_string_value(json_object_get(qc, "provider")), "auto-round");
        T_EQ_STR(json_string_value(json_object_get(qc, "checkpoint_format")), "gptq");
        T_EQ_INT(json_integer_value(json_object_get(qc, "bits")), bits);
        T_EQ_INT(json_integer_value(json_object_get(qc, "group_size")), group);
        T_OK(json_is_boolean(json_object_get(qc, "sym")) &&
             json_is_true(json_object_get(qc, "sym")) == sym);
        T_OK(json_is_false(json_object_get(qc, "desc_act")));
        T_OK(json_is_false(json_object_get(qc, "true_sequential")));
        T_OK(json_is_false(json_object_get(qc, "lm_head")));
        T_EQ_INT(json_integer_value(json_object_get(qc, "iters")), 10);
        T_EQ_STR(json_string_value(json_object_get(json_object_get(qc, "lowbit"), "algorithm")),
                 "autoround");
        json_decref(cfg);
    }
    model_release(&q);
    free(fm.layers);
    autoround_report_release(&rep, m->cfg.n_layers);
}

static void test_roundtrip(void) {
    struct fixture f;
    fixture_load(&f, 8, 64, 11);
    if (!f.ok) {
        fixture_release(&f);
        return;
    }
    check_roundtrip(&f, AUTOROUND_GPTQ, 4, 128, true);
    check_roundtrip(&f, AUTOROUND_GPTQ, 3, 32, false);
    check_roundtrip(&f, AUTOROUND_GPTQ, 2, 64, true);
    check_roundtrip(&f, AUTOROUND_GGUF, 4, 32, true);
    check_roundtrip(&f, AUTOROUND_GGUF, 4, 32, false);
    check_roundtrip(&f, AUTOROUND_GGUF, 8, 32, true);
    fixture_release(&f);
}

/* a small random HF llama (NEOX rotary rows, widths that GGUF blocks of 32 divide): GGUF rows of
 * q/k must come out permuted to interleaved pairs, the GPTQ rows as they are */
static void test_roundtrip_hf_source(void) {
    enum { HD = 64, HH = 96, HL = 2, HN = 4, HKV = 2, HV = 40, HT = 32, HW = 8 };
    char dir[400], path[500];
    snprintf(dir, sizeof dir, "%s/hf-src", t_tmpdir());
    snprintf(path, sizeof path, "mkdir -p %s", dir);
    T_EQ_INT(system(path), 0);
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) {
        T_FAIL_("cannot write %s", path);
        return;
    }
    fprintf(f, "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", "
            "\"hidden_size\": %d, \"intermediate_size\": %d, \"num_hidden_layers\": %d, "
            "\"num_attention_heads\": %d, \"num_key_value_heads\": %d, \"vocab_size\": %d, "
            "\"rms_norm_eps\": 1e-05, \"rope_theta\": 10000.0, \"max_position_embeddings\": 128, "
            "\"hidden_act\": \"silu\", \"torch_dtype\": \"float32\", "
            "\"tie_word_embeddings\": false}\n", HD, HH, HL, HN, HKV, HV);
    fclose(f);
    struct safetensors_writer w = SAFETENSORS_WRITER_INIT;
    float *bufs[64];
    int nb = 0;
    char name[128];
#define ADD_T(nm, rows, cols, norm)                                                                \
    do {                                                                                           \
        const int64_t sh_[2] = {(rows), (cols)};                                                   \
        float *b_ = bufs[nb++] = malloc(sizeof(float) * (rows) * (cols));                          \
        for (int64_t i_ = 0; i_ < (int64_t)(rows) * (cols); i_++)                                  \
            b_[i_] = (norm) ? 1.0f + 0.2f * frand() : 0.15f * frand();                             \
        T_OK(!safetensors_writer_add(&w, nm, "F32", (cols) == 1 ? 1 : 2, sh_, b_,                  \
                                     sizeof(float) * (rows) * (cols)));                            \
    } while (0)
    ADD_T("model.embed_tokens.weight", HV, HD, false);
    ADD_T("model.norm.weight", HD, 1, true);
    ADD_T("lm_head.weight", HV, HD, false);
    static const char *const lin[7] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                       "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                       "mlp.down_proj"};
    const int rows[7] = {HD, HKV * HD / HN, HKV * HD / HN, HD, HH, HH, HD};
    const int cols[7] = {HD, HD, HD, HD, HD, HD, HH};
    for (int l = 0; l < HL; l++) {
        for (int i = 0; i < 7; i++) {
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, lin[i]);
            ADD_T(name, rows[i], cols[i], false);
        }
        snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", l);
        ADD_T(name, HD, 1, true);
        snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", l);
        ADD_T(name, HD, 1, true);
    }
#undef ADD_T
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    T_OK(!safetensors_writer_set_meta(&w, "format", "pt"));
    T_OK(!safetensors_writer_write(&w, path));
    safetensors_writer_release(&w);
    for (int i = 0; i < nb; i++) free(bufs[i]);
    struct fixture fx;
    memset(&fx, 0, sizeof fx);
    if (model_load(&fx.m, dir)) {
        T_FAIL_("cannot load the HF fixture %s", dir);
        return;
    }
    T_EQ_INT(fx.m.cfg.rope_style, ROPE_NEOX);
    /* windows of random tokens (no tokenizer needed) */
    fx.cs.n_samples = HW, fx.cs.seqlen = HT;
    fx.cs.tokens = malloc(sizeof(int) * HW * HT);
    for (int i = 0; i < HW * HT; i++) fx.cs.tokens[i] = (int)((frand() + 1) * 0.5f * (HV - 1));
    snprintf(fx.cs.path, sizeof fx.cs.path, "random tokens");
    check_roundtrip(&fx, AUTOROUND_GGUF, 4, 32, true);
    check_roundtrip(&fx, AUTOROUND_GPTQ, 3, 32, true);
    fixture_release(&fx);
}

/* ---------------------------------------------------------------- (f) recipes and knobs */

static void test_recipe_check(void) {
    struct recipe r;
    recipe_init(&r);
    snprintf(r.id, sizeof r.id, "ar");
    r.method = QMETHOD_AUTOROUND;
    snprintf(r.weight_dtype, sizeof r.weight_dtype, "int4");
    snprintf(r.compute_dtype, sizeof r.compute_dtype, "fp32");
    err_set_quiet(true);
    T_ERR(recipe_check(&r)); /* no calib_set */
    T_CONTAINS(err_last(), "calib_set");
    snprintf(r.calib_set, sizeof r.calib_set, "groups_merged");
    T_OK(!recipe_check(&r));
    static const struct {
        const char *knobs, *msg; /* msg NULL: accepted */
    } k[] = {
        {"{\"recipe\":\"light\"}", NULL},
        {"{\"recipe\":\"best\",\"iters\":20,\"lr\":0.01,\"minmax_lr\":0.02,\"batch_size\":4}",
         NULL},
        {"{\"enable_minmax_tuning\":false,\"enable_quanted_input\":false,\"not_use_best_mse\":true,"
         "\"seed\":7,\"format\":\"gptq\"}", NULL},
        {"{\"recipe\":\"fast\"}", "\"default\", \"light\" or \"best\""},
        {"{\"iters\":-1}", "knob 'iters'"},
        {"{\"iters\":1.5}", "knob 'iters'"},
        {"{\"lr\":0}", "knob 'lr'"},
        {"{\"batch_size\":0}", "knob 'batch_size'"},
        {"{\"format\":\"awq\"}", "knob 'format'"},
        {"{\"bogus\":1}", "autoround knows recipe"},
        {"{\"format\":\"gguf\"}", "group_size must be 32"},
        {"[1,2]", "not a JSON object"},
    };
    for (size_t i = 0; i < LB_ARRAY_LEN(k); i++) {
        snprintf(r.knobs, sizeof r.knobs, "%s", k[i].knobs);
        if (!k[i].msg) {
            if (recipe_check(&r)) T_FAIL_("knobs %s refused: %s", k[i].knobs, err_last());
        } else {
            T_ERR(recipe_check(&r));
            T_CONTAINS(err_last(), k[i].msg);
        }
    }
    snprintf(r.knobs, sizeof r.knobs, "{\"nsamples\":16}");
    T_OK(!recipe_check(&r));
    r.calib_nsamples = 32;
    T_ERR(recipe_check(&r));
    T_CONTAINS(err_last(), "calib_nsamples");
    r.calib_nsamples = 0;
    snprintf(r.knobs, sizeof r.knobs, "{\"format\":\"gguf\"}");
    r.group_size = 32, r.has_group_size = true;
    T_OK(!recipe_check(&r));
    snprintf(r.weight_dtype, sizeof r.weight_dtype, "int3");
    T_ERR(recipe_check(&r)); /* GGUF has no 3-bit block we write */
    r.knobs[0] = 0;
    T_OK(!recipe_check(&r));
    r.group_size = 96;
    T_ERR(recipe_check(&r));
    T_CONTAINS(err_last(), "group_size 96");
    r.group_size = 128;
    snprintf(r.weight_dtype, sizeof r.weight_dtype, "int5");
    T_ERR(recipe_check(&r));
    T_CONTAINS(err_last(), "int2, int3, int4 or int8");
    snprintf(r.weight_dtype, sizeof r.weight_dtype, "int4");
    r.bits = 3;
    T_ERR(recipe_check(&r));
    r.bits = 4;
    r.double_quant = 1;
    T_ERR(recipe_check(&r));
    err_set_quiet(false);
}

/* ------------------------------------------------------- (g) stories260K through the CLI */

/* a shell command on one thread, stdout+stderr into buf; its exit status */
static void test_stories260k_cli(void) {
    const char *bin = t_bin();
    char mp[4096], text[4096], cmd[8192], csv[600], dir_a[600], dir_r[600], dir_g[600];
    static char out[65536];
    if (!t_stories260k(mp, text)) return;
    snprintf(csv, sizeof csv, "%s/ar-recipes.csv", t_tmpdir());
    snprintf(dir_a, sizeof dir_a, "%s/ar-w2g64", t_tmpdir());
    snprintf(dir_r, sizeof dir_r, "%s/rtn-w2g64", t_tmpdir());
    snprintf(dir_g, sizeof dir_g, "%s/ar-q4_0.gguf", t_tmpdir()); /* -o names the GGUF file */
    FILE *f = fopen(csv, "wb");
    if (f) { /* the autoround-w2g64 row made cheaper (50 iterations on 32 windows of 128) */
        fprintf(f, "id,algorithm,weight_dtype,bits,group_size,sym,double_quant,compute_dtype,"
                "calib_set,calib_nsamples,calib_seqlen,knobs\n"
                "ar-w2g64,autoround,int2,2,64,1,,fp32,groups_merged,32,128,\"{\"\"iters\"\":50}\"\n"
                "rtn-w2g64,rtn,int2,2,64,1,,fp32,,,,\n"
                "ar-q4_0,autoround,int4,4,32,1,,fp32,groups_merged,16,64,"
                "\"{\"\"format\"\":\"\"gguf\"\",\"\"recipe\"\":\"\"light\"\","
                "\"\"iters\"\":10}\"\n");
        fclose(f);
    }
    snprintf(cmd, sizeof cmd, "%s quant --model %s --recipe ar-w2g64 --recipes %s -o %s", bin, mp,
             csv, dir_a);
    if (t_sh(cmd, out, sizeof out)) {
        T_FAIL_("%s failed:\n%s", cmd, out);
        return;
    }
    T_CONTAINS(out, "quant.autoround: 2-bit, group 64, sym (full range), recipe default: iters 50, "
                    "lr 0.02, minmax_lr 0.02, batch_size 8");
    T_CONTAINS(out, "55e9a15c5f33566725577a55f6782843b0126c0807a61ff26c6d0768894cc2b7");
    T_CONTAINS(out, "32 x 128 tokens, seed 0, BOS + text");
    T_CONTAINS(out, "20 of 35 block linears quantized"); /* the 172-wide MLP cannot be packed */
    T_CONTAINS(out, "quant.autoround_seconds: ");
    T_CONTAINS(out, "quant.autoround_peak_rss_mb: ");
    T_CONTAINS(out, "quant.autoround_loss: block 1 ");
    { /* killed after block 3, run again: the same bytes (both formats; GGUF below) */
        char dir_k[700], args[9000];
        snprintf(dir_k, sizeof dir_k, "%s/ar-killed", t_tmpdir());
        snprintf(args, sizeof args, "quant --model %s --recipe ar-w2g64 --recipes %s", mp, csv);
        static const char *const says[] = {"autoround: resuming after block 3/5",
                                           "quant.autoround_resumed_blocks: 3", NULL};
        static const char *const same[] = {"model.safetensors", "config.json", NULL};
        t_resume_same(args, dir_k, 3, says, "autoround: block", dir_a, same);
    }
    snprintf(cmd, sizeof cmd, "%s quant --model %s --recipe rtn-w2g64 --recipes %s -o %s --quiet",
             bin, mp, csv, dir_r);
    T_EQ_INT(t_sh(cmd, out, sizeof out), 0);
    snprintf(cmd, sizeof cmd, "%s quant --model %s --recipe ar-q4_0 --recipes %s -o %s", bin, mp,
             csv, dir_g);
    T_EQ_INT(t_sh(cmd, out, sizeof out), 0);
    T_CONTAINS(out, "q4_0 for the tuned linears");
    T_CONTAINS(out, "30 of 35 block linears quantized");
    {
        char file_k[700], args[9000];
        snprintf(file_k, sizeof file_k, "%s/ar-q4_0-killed.gguf", t_tmpdir());
        snprintf(args, sizeof args, "quant --model %s --recipe ar-q4_0 --recipes %s", mp, csv);
        static const char *const says[] = {"autoround: resuming after block 2/5", NULL};
        t_resume_same(args, file_k, 2, says, "autoround: block", dir_g, NULL);
    }
    const char *gp = dir_g;
    struct model m = MODEL_INIT;
    T_OK(!model_load(&m, gp));
    if (m.layers) {
        T_EQ_INT(m.layers[0].lin[LIN_Q].type, DTYPE_Q4_0);
        T_EQ_INT(m.layers[0].lin[LIN_GATE].type, DTYPE_Q4_0);
        T_EQ_INT(m.layers[0].lin[LIN_DOWN].type, DTYPE_F32); /* 172 columns: no whole Q4_0 blocks */
    }
    model_release(&m);
    /* held-out perplexity: at 2 bits AutoRound loses far less than RTN (same bits, group, sym) */
    const double pa = t_ppl(bin, dir_a, text), pr = t_ppl(bin, dir_r, text);
    const double pg = t_ppl(bin, gp, text);
    if (getenv("T_VERBOSE"))
        fprintf(stderr, "  stories260K PPL: autoround w2g64 (50 iters, 32x128) %.4f, rtn w2g64 "
                "%.4f; autoround q4_0 gguf (10 iters) %.4f\n", pa, pr, pg);
    T_OK(isfinite(pg) && pg > 1 && pg < 20);
    if (!(pa < 0.6 * pr)) T_FAIL_("autoround w2g64 PPL %.4f is not far below rtn's %.4f", pa, pr);
}

/* T_RUN with the seconds it took under T_VERBOSE */
#define T_RUN_TIMED(fn)                                                                            \
    do {                                                                                           \
        const double t0_ = now_s();                                                                \
        T_RUN(fn);                                                                                 \
        if (getenv("T_VERBOSE")) fprintf(stderr, "  (%s: %.2f s)\n", #fn, now_s() - t0_);          \
    } while (0)

int main(void) {
    lb_set_threads(1); /* (test_threads sets its own) */
    T_RUN_TIMED(test_gradient_check);
    T_RUN(test_grad_refusals);
    T_RUN_TIMED(test_moe_threads);
    T_RUN_TIMED(test_chain);
    T_RUN_TIMED(test_forward_matches_eval);
    T_RUN_TIMED(test_block_beats_rtn);
    T_RUN_TIMED(test_threads);
    T_RUN_TIMED(test_roundtrip);
    T_RUN_TIMED(test_roundtrip_hf_source);
    T_RUN_TIMED(test_recipe_check);
    T_RUN_TIMED(test_stories260k_cli);
    t_tmpdir_cleanup();
    return T_DONE();
}
