/* tests/test_moe.c: GPTQ and AWQ on mixture-of-experts blocks, each expert with the calibration
 * tokens routed to it (quant/gptq.c and quant/awq.c, "MoE").
 *
 *  (a) every expert's Hessians of block 0 (gate/up: the post-norm inputs of the tokens the router
 *      sends it; down: its own intermediate activations on those tokens; qwen2moe's shared
 *      expert: every token) equal a direct recomputation here: the block's FFN input taken from
 *      the float forward at the router (eval/forward.c hands the router's input to mm_hook), the
 *      router's top-k and the expert MLP recomputed in double from the weights, H = 2/n·Σ xᵀx
 *      with n the windows that sent the expert a token. Relative difference <= 1e-4 and the
 *      same token counts, for the Mixtral fixture (4 experts, top 2, renormalized) of
 *      tests/ref/arch_ref.py and a random qwen2moe of its random-gguf (6 experts, top 2, not
 *      renormalized, a shared expert); without true_sequential against the float model, with it
 *      against the reloaded checkpoint (whose quantized attention feeds the experts' gate/up and
 *      whose quantized gate/up feed down, as in the true-sequential passes);
 *  (b) calibration windows of one repeated token route every token to the same two experts: the
 *      others see none and take the documented fallback (an identity Hessian, reported as such):
 *      their reloaded weights are round-to-nearest (every weight within half a step of its
 *      group's min-max grid), while an expert that saw tokens is not (GPTQ's error feedback
 *      moves some weight further than that);
 *  (c) AWQ (quant/awq.c, "MoE") on the Mixtral fixture and the qwen2moe of (a), their norms given
 *      outlier channels: the reloaded checkpoint's KLD to the float model on held-out windows is
 *      below round-to-nearest's at the same bits and groups (GPTQ's printed beside them), the
 *      checkpoint has the same bytes at 1 and 2 threads, every expert counted; with one repeated
 *      token two of four experts per block fall back, counted, and exactly their downs are
 *      round-to-nearest of the float weights;
 *  (d) GPTQ's memory plan counts the attention's Hessians and one expert's per pass: a limit
 *      below it is refused before any work with that figure, a limit of it runs;
 *  (e) the block forward of the backward (eval/grad.c, AutoRound's and AQLM's fine-tuning) on
 *      every block of the Mixtral fixtures (4 experts f32, 8 bf16) and the qwen2moe ones (6
 *      experts not renormalized, 4 renormalized in bf16, the random one of 6 with a shared
 *      expert of 64) equals eval/forward.c's block output: max |diff| <= 1e-5 · max |y| and the
 *      same experts chosen for every token;
 *  (f) AutoRound (quant/autoround.c) on the Mixtral fixture with windows of one repeated token
 *      (and another last token, which AutoRound's padding mask leaves out of the loss): the
 *      experts no token is routed to (counted here from the float blocks' routing) are reported
 *      idle, get no gradient from the block loss, and their reloaded weights equal an untuned
 *      run's (iters 0: AutoRound's round-to-nearest) exactly; the experts with tokens in the loss
 *      differ from it. */
#include <math.h>
#include <omp.h>
#include <stdbool.h>
#include <stdint.h>
#include <unistd.h>

#include "eval/forward.h"
#include "eval/grad.h"
#include "eval/model.h"
#include "kernels/base/err.h"
#include "kernels/base/fs.h"
#include "kernels/qint.h"
#include "quant/autoround.h"
#include "quant/awq.h"
#include "quant/calib.h"
#include "quant/gptq.h"
#include "quant/hf_export.h"
#include "quant/qformat.h"
#include "quant/rtn.h"
#include "tests/t.h"

#define PYTHON "/usr/bin/python3"
#define REF_SCRIPT "tests/ref/arch_ref.py"
#define N_WIN 4
#define WIN_T 24
#define MAX_UNITS 9 /* experts + the shared expert */

static char fx_dir[600];

/* the fixtures (tests/ref/arch_ref.py make-fixtures), once; the GGUF of `name` into path */
static bool fixture(const char *name, char *path, size_t n) {
    static int made = -1;
    if (made < 0) {
        snprintf(fx_dir, sizeof fx_dir, "%s/fx", t_tmpdir());
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "%s %s make-fixtures '%s' >/dev/null", PYTHON, REF_SCRIPT, fx_dir);
        made = !system(cmd);
        if (!made) T_FAIL_("could not make the fixtures: %s", cmd);
    }
    snprintf(path, n, "%s/%s.gguf", fx_dir, name);
    return made == 1;
}

/* ---- what GPTQ reported, per module of block 0 ---- */
struct seen {
    int n;
    char module[2 * MAX_UNITS][192];
    double *H[2 * MAX_UNITS];
    int64_t K[2 * MAX_UNITS], n_tokens[2 * MAX_UNITS];
    bool fallback[2 * MAX_UNITS];
};

static int on_hessian(void *ctx, const char *module, const double *H, int64_t K, int64_t n_tokens,
                      bool fallback) {
    struct seen *s = ctx;
    if (strncmp(module, "model.layers.0.", 15) || s->n >= 2 * MAX_UNITS) return 0;
    const int i = s->n++;
    snprintf(s->module[i], sizeof s->module[i], "%s", module);
    s->H[i] = malloc((size_t)(K * K) * sizeof(double));
    if (s->H[i]) memcpy(s->H[i], H, (size_t)(K * K) * sizeof(double));
    s->K[i] = K, s->n_tokens[i] = n_tokens, s->fallback[i] = fallback;
    return 0;
}

static void seen_release(struct seen *s) {
    for (int i = 0; i < s->n; i++) free(s->H[i]);
    memset(s, 0, sizeof *s);
}

/* the module names of unit u (u < E: routed expert u, else the shared expert): gate/up's and
 * down's */
static void unit_modules(const struct model *m, int u, char *gu, char *dn, size_t n) {
    const bool q2 = m->cfg.shared_hidden > 0;
    if (u == m->cfg.n_expert) {
        snprintf(gu, n, "model.layers.0.mlp.shared_expert.gate_proj");
        snprintf(dn, n, "model.layers.0.mlp.shared_expert.down_proj");
    } else if (q2) {
        snprintf(gu, n, "model.layers.0.mlp.experts.%d.gate_proj", u);
        snprintf(dn, n, "model.layers.0.mlp.experts.%d.down_proj", u);
    } else {
        snprintf(gu, n, "model.layers.0.block_sparse_moe.experts.%d.w1", u);
        snprintf(dn, n, "model.layers.0.block_sparse_moe.experts.%d.w2", u);
    }
}

static int find_seen(const struct seen *s, const char *module) {
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->module[i], module)) return i;
    return -1;
}

/* ---- the direct recomputation ---- */

/* the FFN input of block 0 (rmsnorm(x)·w_ffn_norm after attention) of one window: the input
 * the float forward hands the router's matmul */
struct grab {
    const struct tensor *router;
    float *xn;
    int T;
};
static int grab_hook(void *ctx, const struct tensor *w, const float *x, int T) {
    struct grab *g = ctx;
    if (w == g->router) memcpy(g->xn, x, (size_t)T * (size_t)w->ne[0] * sizeof(float)), g->T = T;
    return 0;
}

static double *row_f64(const struct tensor *t, int64_t r) {
    float *f = malloc((size_t)t->ne[0] * sizeof(float));
    double *d = malloc((size_t)t->ne[0] * sizeof(double));
    if (f && d) {
        tensor_row_to_f32(t, r, f);
        for (int64_t i = 0; i < t->ne[0]; i++) d[i] = f[i];
    }
    free(f);
    return d;
}

static double dot(const double *a, const float *b, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += a[i] * (double)b[i];
    return s;
}

/* H_gu[u], H_dn[u] (sums, [K][K] calloc'd) and the tokens and windows of every unit of block 0 */
struct direct {
    double *gu[MAX_UNITS], *dn[MAX_UNITS];
    int64_t tokens[MAX_UNITS];
    int windows[MAX_UNITS];
};

static int direct_hessians(const struct model *m, const struct calib_set *cs, struct direct *d) {
    const struct model_config *c = &m->cfg;
    const int D = c->dim, E = c->n_expert, K = c->n_expert_used, U = E + (c->shared_hidden > 0);
    const struct layer *L = &m->layers[0];
    struct fwd_state s = {0};
    struct grab g = {.router = &L->router, .xn = malloc((size_t)cs->seqlen * D * sizeof(float))};
    double *act = malloc((size_t)LB_MAX(c->expert_hidden, c->shared_hidden) * sizeof(double));
    int ret = -1;
    if (!g.xn || !act || fwd_init(&s, m, cs->seqlen, cs->seqlen)) goto out;
    s.mm_hook = grab_hook, s.mm_hook_ctx = &g;
    s.layer_limit = 1;
    for (int u = 0; u < U; u++) {
        const int64_t H = u < E ? c->expert_hidden : c->shared_hidden;
        d->gu[u] = calloc((size_t)D * D, sizeof(double));
        d->dn[u] = calloc((size_t)(H * H), sizeof(double));
        if (!d->gu[u] || !d->dn[u]) goto out;
    }
    for (int w = 0; w < cs->n_samples; w++) {
        fwd_truncate(&s, 0);
        g.T = 0;
        if (forward(&s, cs->tokens + (size_t)w * cs->seqlen, cs->seqlen, NULL, false) ||
            g.T != cs->seqlen)
            goto out;
        bool hit[MAX_UNITS] = {0};
        for (int t = 0; t < cs->seqlen; t++) {
            const float *x = g.xn + (size_t)t * D;
            /* the router: softmax over all experts, the K most probable (lower index on ties) */
            double lg[MAX_UNITS];
            bool chosen[MAX_UNITS] = {0};
            for (int e = 0; e < E; e++) {
                double *r = row_f64(&L->router, e);
                lg[e] = r ? dot(r, x, D) : NAN;
                free(r);
            }
            for (int j = 0; j < K; j++) {
                int best = -1;
                for (int e = 0; e < E; e++)
                    if (!chosen[e] && (best < 0 || lg[e] > lg[best])) best = e;
                chosen[best] = true;
            }
            for (int u = 0; u < U; u++) {
                if (u < E && !chosen[u]) continue;
                hit[u] = true;
                d->tokens[u]++;
                const struct tensor *wg = u < E ? model_expert(L, u, LIN_GATE) : &L->shexp[0],
                                    *wu = u < E ? model_expert(L, u, LIN_UP) : &L->shexp[1];
                const int64_t H = wg->ne[1];
                for (int64_t h = 0; h < H; h++) {
                    double *a = row_f64(wg, h), *b = row_f64(wu, h);
                    const double gv = a ? dot(a, x, D) : NAN, uv = b ? dot(b, x, D) : NAN;
                    act[h] = gv / (1 + exp(-gv)) * uv;
                    free(a), free(b);
                }
                for (int i = 0; i < D; i++)
                    for (int j = 0; j < D; j++) d->gu[u][i * D + j] += (double)x[i] * x[j];
                for (int64_t i = 0; i < H; i++)
                    for (int64_t j = 0; j < H; j++) d->dn[u][i * H + j] += act[i] * act[j];
            }
        }
        for (int u = 0; u < U; u++) d->windows[u] += hit[u];
    }
    ret = 0;
out:
    fwd_release(&s);
    free(g.xn), free(act);
    return ret;
}

static void direct_release(struct direct *d) {
    for (int u = 0; u < MAX_UNITS; u++) free(d->gu[u]), free(d->dn[u]);
}

/* max |a − 2/n·b| / max |2/n·b| */
static double rel_diff(const double *a, const double *b, int64_t n_el, int n) {
    double mx = 0, den = 0;
    for (int64_t i = 0; i < n_el; i++) {
        const double r = 2.0 / n * b[i];
        mx = LB_MAX(mx, fabs(a[i] - r));
        den = LB_MAX(den, fabs(r));
    }
    return den > 0 ? mx / den : INFINITY;
}

static void make_windows(struct calib_set *cs, bool constant) {
    memset(cs, 0, sizeof *cs);
    cs->n_samples = N_WIN, cs->seqlen = WIN_T;
    cs->tokens = malloc(sizeof(int) * N_WIN * WIN_T);
    uint32_t st = 4242;
    for (int i = 0; cs->tokens && i < N_WIN * WIN_T; i++) {
        st = st * 1664525u + 1013904223u;
        cs->tokens[i] = constant ? 17 : 3 + (int)((st >> 8) % 250);
    }
}

/* GPTQ (4 bits, groups of `group`, true_sequential ts) of the fixture with cs into dir */
static int run_gptq(const struct model *m, const char *path, const struct calib_set *cs,
                    int64_t group, bool ts, const char *dir, struct seen *seen) {
    struct gptq_model_opts o = {.q = GPTQ_OPTS_DEFAULT};
    o.q.group = group;
    o.q.sym = false;
    o.true_sequential = ts;
    o.on_moe_hessian = on_hessian, o.on_moe_hessian_ctx = seen;
    struct hfx_stats st;
    struct gptq_report rep;
    if (gptq_quantize_model(m, path, &o, cs, dir, true, &st, &rep)) return -1;
    printf("  %s: %d experts quantized, %d by the fallback, tokens per expert %lld..%lld\n",
           path + strlen(fx_dir) + 1, rep.moe_experts, rep.moe_fallback,
           (long long)rep.moe_min_tokens, (long long)rep.moe_max_tokens);
    return 0;
}

static void check_hessians(const char *name, bool ts) {
    char path[700], dir[700], gu[192], dn[192];
    if (!fixture(name, path, sizeof path)) return;
    if (!strcmp(name, "qwen2moe")) {
        /* the fixtures' qwen2moe shared experts (80, 64 x 24) are no multiples of 32, which GPTQ
         * keeps in float: a random qwen2moe of 6 experts of 32 and a shared expert of 64 */
        char cmd[1400];
        snprintf(path, sizeof path, "%s/qwen2moe_s64.gguf", fx_dir);
        snprintf(cmd, sizeof cmd, "%s %s random-gguf qwen2_moe --dim 64 --layers 2 --vocab 300 "
                 "--std 0.05 --theta 10000 --extra '{\"num_experts\": 6, \"num_experts_per_tok\": "
                 "2, \"moe_intermediate_size\": 32, \"shared_expert_intermediate_size\": 64, "
                 "\"norm_topk_prob\": false}' -o '%s' >/dev/null", PYTHON, REF_SCRIPT, path);
        if (system(cmd)) {
            T_FAIL_("%s failed", cmd);
            return;
        }
    }
    struct model m = MODEL_INIT, qm = MODEL_INIT;
    struct calib_set cs;
    struct seen seen = {0};
    struct direct d = {0};
    make_windows(&cs, false);
    snprintf(dir, sizeof dir, "%s/gptq-%s%s", t_tmpdir(), name, ts ? "-ts" : "");
    if (model_load(&m, path)) {
        T_FAIL_("model_load(%s)", path);
        goto out;
    }
    const int E = m.cfg.n_expert, U = E + (m.cfg.shared_hidden > 0);
    T_OK(U <= MAX_UNITS && (m.cfg.shared_hidden > 0) == !strcmp(name, "qwen2moe"));
    if (U > MAX_UNITS) goto out;
    /* per channel: every module of both fixtures quantized (groups of 32 keep qwen2moe_e6's
     * shared expert, 80 wide, in float) */
    /* without true_sequential every input comes from the float block: the float model's;
     * true-sequentially the experts' inputs follow the quantized attention and the down inputs
     * the quantized gate and up: the reloaded checkpoint's (its router is float) */
    if (run_gptq(&m, path, &cs, -1, ts, dir, &seen) || (ts && model_load(&qm, dir)) ||
        direct_hessians(ts ? &qm : &m, &cs, &d)) {
        T_FAIL_("%s: GPTQ or the recomputation failed", name);
        goto out;
    }
    double worst = 0;
    for (int u = 0; u < U; u++) {
        unit_modules(&m, u, gu, dn, sizeof gu);
        const int a = find_seen(&seen, gu), b = find_seen(&seen, dn);
        /* none only for a module GPTQ keeps in float */
        const struct tensor *wg = u < E ? model_expert(&m.layers[0], u, LIN_GATE)
                                        : &m.layers[0].shexp[0],
                            *wd = u < E ? model_expert(&m.layers[0], u, LIN_DOWN)
                                        : &m.layers[0].shexp[2];
        char note[160];
        T_OK(a >= 0 || qformat_plan(false, wg->ne[0], wg->ne[1], 4, -1, note, sizeof note) ==
                           QPLAN_FLOAT);
        T_OK(b >= 0 || qformat_plan(false, wd->ne[0], wd->ne[1], 4, -1, note, sizeof note) ==
                           QPLAN_FLOAT);
        T_OK(u < E || (a >= 0 && b >= 0)); /* the shared expert is checked */
        if (a < 0 && b < 0) continue;
        /* the shared expert sees every token; a routed one its share (none here falls back:
         * random windows reach every expert) */
        if (u == E) T_EQ_INT((int)d.tokens[u], N_WIN * WIN_T);
        for (int i = 0; i < 2; i++) {
            const int x = i ? b : a;
            if (x < 0) continue;
            T_EQ_INT((int)seen.n_tokens[x], (int)d.tokens[u]);
            T_OK(!seen.fallback[x]);
        }
        if (!d.windows[u]) continue;
        const double ra = a < 0 ? 0 : rel_diff(seen.H[a], d.gu[u], seen.K[a] * seen.K[a], d.windows[u]),
                     rb = b < 0 ? 0 : rel_diff(seen.H[b], d.dn[u], seen.K[b] * seen.K[b], d.windows[u]);
        printf("    %-52s %4lld tokens: gate/up H rel. diff %.2g, down H %s%.2g\n", gu,
               (long long)d.tokens[u], ra, b < 0 ? "(float) " : "", rb);
        worst = LB_MAX(worst, LB_MAX(ra, rb));
    }
    if (!(worst <= 1e-4)) T_FAIL_("%s: an expert's Hessian differs by %.3g (relative)", name, worst);
out:
    direct_release(&d);
    seen_release(&seen);
    calib_release(&cs);
    model_release(&qm);
    model_release(&m);
}

static void test_moe_hessians_mixtral(void) { check_hessians("mixtral_e4", false); }
static void test_moe_hessians_qwen2moe(void) { check_hessians("qwen2moe", false); }
static void test_moe_hessians_true_sequential(void) {
    check_hessians("mixtral_e4", true);
    check_hessians("qwen2moe", true);
}

/* ---- (b) ---- */

/* the largest |w − dequantized w| over a row in units of its group's min-max step (4 bits,
 * asymmetric, the grid including 0: GPTQ's find_params) */
static double worst_steps(const float *w, const float *q, int64_t K, int64_t group) {
    double worst = 0;
    for (int64_t g0 = 0; g0 < K; g0 += group) {
        double lo = 0, hi = 0;
        for (int64_t k = g0; k < g0 + group && k < K; k++) lo = LB_MIN(lo, w[k]), hi = LB_MAX(hi, w[k]);
        const double step = (hi - lo) / 15;
        for (int64_t k = g0; k < g0 + group && k < K; k++)
            worst = LB_MAX(worst, fabs((double)w[k] - q[k]) / step);
    }
    return worst;
}

static void test_moe_unrouted_fallback(void) {
    char path[700], dir[700], gu[192], dn[192];
    if (!fixture("mixtral_e4", path, sizeof path)) return;
    struct model m = MODEL_INIT, qm = MODEL_INIT;
    struct calib_set cs;
    struct seen seen = {0};
    make_windows(&cs, true);
    snprintf(dir, sizeof dir, "%s/gptq-unrouted", t_tmpdir());
    if (model_load(&m, path) || run_gptq(&m, path, &cs, 32, false, dir, &seen) || model_load(&qm, dir)) {
        T_FAIL_("GPTQ of %s with one repeated token, or its reload, failed", path);
        goto out;
    }
    const int E = m.cfg.n_expert;
    int n_fb = 0, n_gptq = 0;
    float *w = malloc(sizeof(float) * 256), *q = malloc(sizeof(float) * 256);
    for (int u = 0; u < E && w && q; u++) {
        unit_modules(&m, u, gu, dn, sizeof gu);
        const int a = find_seen(&seen, gu);
        if (a < 0) {
            T_FAIL_("no Hessian reported for %s", gu);
            continue;
        }
        /* one token repeated: the same two experts for every position, none for the rest */
        const bool none = seen.n_tokens[a] == 0;
        T_OK(none || seen.n_tokens[a] == N_WIN * WIN_T);
        T_OK(seen.fallback[a] == none);
        if (none) { /* the identity was solved with */
            bool id = true;
            for (int64_t i = 0; i < seen.K[a]; i++)
                for (int64_t j = 0; j < seen.K[a]; j++)
                    id &= seen.H[a][i * seen.K[a] + j] == (i == j);
            T_OK(id);
        }
        double worst = 0;
        for (int k = 0; k < 3; k++) {
            const struct tensor *src = model_expert(&m.layers[0], u, (enum lin)(LIN_GATE + k)),
                                *dst = model_expert(&qm.layers[0], u, (enum lin)(LIN_GATE + k));
            T_OK(dst->ne[0] == src->ne[0] && dst->ne[1] == src->ne[1] && src->ne[0] <= 256);
            for (int64_t r = 0; r < src->ne[1]; r++) {
                tensor_row_to_f32(src, r, w);
                tensor_row_to_f32(dst, r, q);
                worst = LB_MAX(worst, worst_steps(w, q, src->ne[0], 32));
            }
        }
        printf("    expert %d: %lld tokens%s, largest error %.3f steps\n", u,
               (long long)seen.n_tokens[a], none ? " (round-to-nearest)" : "", worst);
        if (none) {
            n_fb++;
            /* half a step, and the fp16 rounding of the scale */
            if (!(worst <= 0.5 + 1e-3)) T_FAIL_("expert %d: %.4f steps from RTN", u, worst);
        } else {
            n_gptq++;
            if (!(worst > 0.5 + 1e-3)) T_FAIL_("expert %d: GPTQ left every weight at RTN", u);
        }
    }
    free(w), free(q);
    T_EQ_INT(n_fb, E - m.cfg.n_expert_used);
    T_EQ_INT(n_gptq, m.cfg.n_expert_used);
out:
    seen_release(&seen);
    calib_release(&cs);
    model_release(&qm);
    model_release(&m);
}

/* ---- (c) AWQ ---- */

/* the qwen2moe of (a): 6 experts of 32, a shared expert of 64 that GPTQ and AWQ can group */
static bool qwen2moe_s64(char *path, size_t n) {
    char dummy[700];
    if (!fixture("mixtral_e4", dummy, sizeof dummy)) return false;
    snprintf(path, n, "%s/qwen2moe_s64.gguf", fx_dir);
    if (!access(path, F_OK)) return true;
    char cmd[1400];
    snprintf(cmd, sizeof cmd,
             "%s %s random-gguf qwen2_moe --dim 64 --layers 2 --vocab 300 "
             "--std 0.05 --theta 10000 --extra '{\"num_experts\": 6, \"num_experts_per_tok\": "
             "2, \"moe_intermediate_size\": 32, \"shared_expert_intermediate_size\": 64, "
             "\"norm_topk_prob\": false}' -o '%s' >/dev/null",
             PYTHON, REF_SCRIPT, path);
    if (system(cmd)) T_FAIL_("%s failed", cmd);
    return !access(path, F_OK);
}

/* AWQ exists for activations with salient channels, which random Gaussian weights lack: every
 * 16th channel of each block's two norms times 8 (outlier features, as trained LLMs have them
 * at their norms' outputs); the norms as fp32 buffers of the test's own */
static float *outlier_norms(struct model *m) {
    const int D = m->cfg.dim, L = m->cfg.n_layers;
    float *buf = malloc(sizeof(float) * (size_t)(2 * L * D));
    for (int l = 0; buf && l < L; l++)
        for (int j = 0; j < 2; j++) {
            struct tensor *t = j ? &m->layers[l].ffn_norm : &m->layers[l].attn_norm;
            float *b = buf + (size_t)(2 * l + j) * D;
            for (int k = 0; k < D; k++) b[k] = ((const float *)t->data)[k] * (k % 16 == 5 ? 8 : 1);
            char name[64];
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, j ? "ffn_norm" : "attn_norm");
            for (int i = 0; i < m->n_tensors; i++)
                if (!strcmp(m->tensors[i].name, name)) m->tensors[i].data = b;
            t->data = b;
        }
    return buf;
}

/* log-softmax of m's logits over the windows of ev: [n][T][V] (malloc'd), NULL on failure */
static float *logprobs(const struct model *m, const struct calib_set *ev) {
    const int V = m->cfg.vocab_size, T = ev->seqlen;
    struct fwd_state s = {0};
    float *lp = malloc(sizeof(float) * (size_t)ev->n_samples * T * V);
    if (!lp || fwd_init(&s, m, T, T)) {
        free(lp);
        return NULL;
    }
    for (int w = 0; w < ev->n_samples; w++) {
        float *o = lp + (size_t)w * T * V;
        fwd_truncate(&s, 0);
        if (forward(&s, ev->tokens + (size_t)w * T, T, o, false)) {
            free(lp), lp = NULL;
            break;
        }
        for (int t = 0; t < T; t++) {
            float *r = o + (size_t)t * V;
            double mx = r[0], z = 0;
            for (int v = 1; v < V; v++) mx = LB_MAX(mx, r[v]);
            for (int v = 0; v < V; v++) z += exp(r[v] - mx);
            for (int v = 0; v < V; v++) r[v] = (float)(r[v] - mx - log(z));
        }
    }
    fwd_release(&s);
    return lp;
}

/* mean over positions of KL(p || q) */
static double mean_kld(const float *p, const float *q, size_t n_pos, int V) {
    double s = 0;
    for (size_t i = 0; i < n_pos * (size_t)V; i++) s += exp(p[i]) * (p[i] - q[i]);
    return s / (double)n_pos;
}

/* w rounded to nearest as AWQ's last step rounds (RTN_AWQ: asymmetric min-max groups of 32,
 * fp16 scales) into its own fp32 buffer; slot an fp32 view of it. Kept (untouched) where the AWQ
 * layout cannot hold it, as AWQ keeps it */
static int rtn_slot(struct tensor *slot, float **own) {
    const int64_t K = slot->ne[0], N = slot->ne[1];
    char note[160];
    *own = NULL;
    if (qformat_plan(true, K, N, 4, 32, note, sizeof note) != QPLAN_GROUP) return 0;
    float *w = malloc(sizeof(float) * (size_t)(K * N));
    struct tensor q;
    void *qb = NULL;
    const struct rtn_opts ro = {.bits = 4, .group = 32, .style = RTN_AWQ};
    int rc = -1;
    if (w) {
        for (int64_t r = 0; r < N; r++) tensor_row_to_f32(slot, r, w + r * K);
        rc = rtn_quantize(w, K, N, &ro, slot->name, &q, &qb);
        for (int64_t r = 0; !rc && r < N; r++) qint_row_to_f32(&q, r, w + r * K);
    }
    free(qb);
    if (rc) {
        free(w);
        return -1;
    }
    calib_f32_slot(slot, w, K, N);
    *own = w;
    return 0;
}

/* rm: m with every block linear and expert AWQ would quantize rounded to nearest instead */
struct rtn_model {
    struct model m;
    float **own;
    struct tensor *ex;
    int n_own;
};
static int rtn_model(const struct model *m, struct rtn_model *r) {
    const struct model_config *c = &m->cfg;
    const int L = c->n_layers, E = c->n_expert;
    memset(r, 0, sizeof *r);
    r->m = *m;
    r->m.layers = malloc(sizeof *r->m.layers * (size_t)L);
    r->ex = malloc(sizeof *r->ex * (size_t)(3 * E * L + 1));
    r->own = calloc((size_t)(L * (LIN_COUNT + 3 * E + 3)), sizeof *r->own);
    if (!r->m.layers || !r->ex || !r->own) return -1;
    memcpy(r->m.layers, m->layers, sizeof *r->m.layers * (size_t)L);
    for (int l = 0; l < L; l++) {
        struct layer *ly = &r->m.layers[l];
        if (E)
            memcpy(r->ex + 3 * E * l, ly->ex, sizeof *r->ex * (size_t)(3 * E)),
                ly->ex = r->ex + 3 * E * l;
        for (int i = 0; i < LIN_COUNT; i++)
            if (ly->lin[i].data && rtn_slot(&ly->lin[i], &r->own[r->n_own++])) return -1;
        for (int i = 0; i < 3 * E; i++)
            if (rtn_slot(&ly->ex[i], &r->own[r->n_own++])) return -1;
        for (int i = 0; c->shared_hidden > 0 && i < 3; i++)
            if (rtn_slot(&ly->shexp[i], &r->own[r->n_own++])) return -1;
    }
    return 0;
}
static void rtn_model_release(struct rtn_model *r) {
    for (int i = 0; i < r->n_own && r->own; i++) free(r->own[i]);
    free(r->own), free(r->ex), free(r->m.layers);
}

static int run_awq(const struct model *m, const char *path, const struct calib_set *cs,
                   const char *dir, struct awq_report *rep) {
    struct awq_opts o = AWQ_OPTS_DEFAULT;
    o.group = 32;
    struct hfx_stats st;
    return awq_quantize_model(m, path, &o, cs, dir, true, &st, rep);
}

/* AWQ, RTN and GPTQ of the fixture (its norms given outlier channels) against the float model on
 * held-out windows: AWQ's KLD below RTN's; AWQ's checkpoint the same bytes at 1 and 2 threads */
static void check_awq(const char *name) {
    char path[700], dir[3][700];
    if (strcmp(name, "qwen2moe") ? !fixture(name, path, sizeof path)
                                 : !qwen2moe_s64(path, sizeof path))
        return;
    struct model m = MODEL_INIT, qa = MODEL_INIT, qg = MODEL_INIT;
    struct rtn_model rm = {0};
    struct calib_set cs, ev;
    struct awq_report rep[2];
    make_windows(&cs, false);
    make_windows(&ev, false);
    for (int i = 0; ev.tokens && i < N_WIN * WIN_T; i++)
        ev.tokens[i] = 3 + (ev.tokens[i] * 7 + 11) % 250;
    float *norms = NULL, *pf = NULL, *pa = NULL, *pr = NULL, *pg = NULL;
    char *b0 = NULL, *b1 = NULL;
    size_t n0 = 0, n1 = 0;
    static const char *const tag[3] = {"awq1", "awq2", "gptq"};
    for (int i = 0; i < 3; i++)
        snprintf(dir[i], sizeof dir[i], "%s/%s-%s", t_tmpdir(), tag[i], name);
    if (model_load(&m, path) || !(norms = outlier_norms(&m))) {
        T_FAIL_("model_load(%s)", path);
        goto out;
    }
    struct seen seen = {0};
    omp_set_num_threads(1);
    const int rc1 = run_awq(&m, path, &cs, dir[0], &rep[0]);
    omp_set_num_threads(2);
    const int rc2 = run_awq(&m, path, &cs, dir[1], &rep[1]);
    if (rc1 || rc2 || run_gptq(&m, path, &cs, 32, true, dir[2], &seen) || model_load(&qa, dir[0]) ||
        model_load(&qg, dir[2]) || rtn_model(&m, &rm)) {
        T_FAIL_("%s: AWQ, GPTQ, RTN or a reload failed", name);
        seen_release(&seen);
        goto out;
    }
    seen_release(&seen);
    char f0[800], f1[800];
    snprintf(f0, sizeof f0, "%s/model.safetensors", dir[0]);
    snprintf(f1, sizeof f1, "%s/model.safetensors", dir[1]);
    T_OK(!read_file_all(f0, "AWQ checkpoint", &b0, &n0) &&
         !read_file_all(f1, "AWQ checkpoint", &b1, &n1));
    if (!b0 || !b1 || n0 != n1 || memcmp(b0, b1, n0))
        T_FAIL_("%s: AWQ at 1 and 2 threads differ", name);
    const int E = m.cfg.n_expert;
    T_EQ_INT(rep[0].moe_experts, E * m.cfg.n_layers);
    T_EQ_INT(rep[0].moe_fallback, 0); /* random windows reach every expert */
    T_EQ_INT(rep[1].moe_experts, rep[0].moe_experts);
    const size_t n_pos = (size_t)N_WIN * WIN_T;
    const int V = m.cfg.vocab_size;
    pf = logprobs(&m, &ev), pa = logprobs(&qa, &ev), pr = logprobs(&rm.m, &ev),
    pg = logprobs(&qg, &ev);
    if (!pf || !pa || !pr || !pg) {
        T_FAIL_("%s: a forward failed", name);
        goto out;
    }
    const double ka = mean_kld(pf, pa, n_pos, V), kr = mean_kld(pf, pr, n_pos, V),
                 kg = mean_kld(pf, pg, n_pos, V);
    printf("    %s, 4 bits groups of 32, KLD to the float model: AWQ %.4g, RTN %.4g, GPTQ %.4g "
           "(%d experts, %d fell back, tokens per expert %lld..%lld)\n",
           name, ka, kr, kg, rep[0].moe_experts, rep[0].moe_fallback,
           (long long)rep[0].moe_min_tokens, (long long)rep[0].moe_max_tokens);
    if (!(ka < kr)) T_FAIL_("%s: AWQ's KLD %.4g is not below RTN's %.4g", name, ka, kr);
out:
    free(pf), free(pa), free(pr), free(pg), free(b0), free(b1);
    rtn_model_release(&rm);
    calib_release(&cs);
    calib_release(&ev);
    model_release(&qa);
    model_release(&qg);
    model_release(&m);
    free(norms);
}

/* windows of one repeated token (b): two of four experts unrouted in both blocks, counted as
 * fallen back; a fallen-back expert's down (no search scales it, nothing clips it) is exactly the
 * round-to-nearest of its float weights, a routed one's is not */
static void test_moe_awq_fallback(void) {
    char path[700], dir[700];
    if (!fixture("mixtral_e4", path, sizeof path)) return;
    struct model m = MODEL_INIT, qm = MODEL_INIT;
    struct calib_set cs;
    struct awq_report rep;
    make_windows(&cs, true);
    snprintf(dir, sizeof dir, "%s/awq-unrouted", t_tmpdir());
    if (model_load(&m, path) || run_awq(&m, path, &cs, dir, &rep) || model_load(&qm, dir)) {
        T_FAIL_("AWQ of %s with one repeated token, or its reload, failed", path);
        goto out;
    }
    const int E = m.cfg.n_expert, L = m.cfg.n_layers, k = m.cfg.n_expert_used;
    printf("    %d experts, %d fell back, tokens per expert %lld..%lld\n", rep.moe_experts,
           rep.moe_fallback, (long long)rep.moe_min_tokens, (long long)rep.moe_max_tokens);
    T_EQ_INT(rep.moe_experts, E * L);
    T_EQ_INT(rep.moe_fallback, (E - k) * L);
    T_EQ_INT((int)rep.moe_min_tokens, 0);
    T_EQ_INT((int)rep.moe_max_tokens, N_WIN * WIN_T);
    int n_rtn = 0;
    for (int l = 0; l < L; l++)
        for (int e = 0; e < E; e++) {
            struct tensor src = *model_expert(&m.layers[l], e, LIN_DOWN);
            const struct tensor *dst = model_expert(&qm.layers[l], e, LIN_DOWN);
            float *own = NULL, *q = malloc(sizeof(float) * (size_t)src.ne[0]);
            if (!q || rtn_slot(&src, &own) || !own) {
                T_FAIL_("RTN of expert %d", e);
                free(q), free(own);
                continue;
            }
            bool same = true;
            for (int64_t r = 0; r < src.ne[1]; r++) {
                tensor_row_to_f32(dst, r, q);
                same &= !memcmp(q, own + r * src.ne[0], sizeof(float) * (size_t)src.ne[0]);
            }
            n_rtn += same;
            free(q), free(own);
        }
    T_EQ_INT(n_rtn, (E - k) * L); /* exactly the fallen-back ones */
out:
    calib_release(&cs);
    model_release(&qm);
    model_release(&m);
}

/* ---- (d) GPTQ's memory plan ---- */

static double rss_mb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %lf", &kb) == 1) break;
    if (f) fclose(f);
    return kb / 1024;
}

/* a Mixtral block whose experts are wide (H 1024: each down Hessian 8 MiB, its factorization
 * 16 MiB, where the attention's are 32 KiB): a limit below the plan is refused before any work
 * with a figure that holds the attention's Hessians, one expert's (the passes over the routed
 * tokens hold at least one) and its factorization, and writes nothing; a limit of the figure
 * runs, its passes holding fewer experts, to the same bytes as a run without a limit */
static void test_moe_gptq_memory_plan(void) {
    char path[700], dir[2][700], dummy[700];
    if (!fixture("mixtral_e4", dummy, sizeof dummy)) return;
    snprintf(path, sizeof path, "%s/mixtral_h1024.gguf", fx_dir);
    char cmd[1400];
    snprintf(cmd, sizeof cmd,
             "%s %s random-gguf mixtral --dim 64 --hidden 1024 --layers 1 --vocab "
             "300 --heads 2 --kv-heads 1 --head-dim 32 --std 0.05 --extra '{\"num_local_experts\": "
             "4, \"num_experts_per_tok\": 2}' -o '%s' >/dev/null",
             PYTHON, REF_SCRIPT, path);
    struct model m = MODEL_INIT;
    struct calib_set cs;
    struct seen seen = {0};
    char *b0 = NULL, *b1 = NULL;
    size_t n0 = 0, n1 = 0;
    make_windows(&cs, false);
    if (system(cmd) || model_load(&m, path)) {
        T_FAIL_("%s, or its load, failed", cmd);
        goto out;
    }
    const struct model_config *c = &m.cfg;
    const double D = c->dim, qd = c->n_heads * c->head_dim, H = c->expert_hidden, MiB = 1048576;
    /* what the passes cannot do without: the attention's two Hessians, one expert's down
     * Hessian and its factorization (two more H x H), the block's experts in fp32 */
    const double floor = (8 * (D * D + qd * qd) + 8 * H * H + 16 * H * H +
                          4.0 * 3 * c->n_expert * D * H) /
                         MiB;
    for (int i = 0; i < 2; i++) snprintf(dir[i], sizeof dir[i], "%s/gptq-mem%d", t_tmpdir(), i);
    char lim[32];
    snprintf(lim, sizeof lim, "%.1f", rss_mb() + 1);
    setenv("LOWBIT_MEM_LIMIT_MB", lim, 1);
    err_set_quiet(true);
    const int rc = run_gptq(&m, path, &cs, 32, true, dir[0], &seen);
    err_set_quiet(false);
    seen_release(&seen);
    const char *msg = err_last(), *at = msg ? strstr(msg, " needs ") : NULL;
    double need = 0;
    T_OK(rc != 0);
    T_OK(at && sscanf(at, " needs %lf MiB", &need) == 1);
    printf("    refused: %s\n", msg ? msg : "(no message)");
    T_CONTAINS(msg ? msg : "", "GPTQ on");
    T_CONTAINS(msg ? msg : "", "of one expert per pass");
    T_CONTAINS(msg ? msg : "", "(LOWBIT_MEM_LIMIT_MB)");
    if (!(need >= floor))
        T_FAIL_("the plan's %.1f MiB is below the experts' need %.1f MiB", need, floor);
    char f[800];
    snprintf(f, sizeof f, "%s/model.safetensors", dir[0]);
    T_OK(access(f, F_OK) != 0);
    /* the figure is enough: the run under it, and one without a limit, the same bytes */
    snprintf(lim, sizeof lim, "%.1f", rss_mb() + need + 4);
    setenv("LOWBIT_MEM_LIMIT_MB", lim, 1);
    printf("    runs under a limit of %s MiB (the plan %.1f MiB, the experts' floor %.1f MiB)\n",
           lim, need, floor);
    const int rc1 = run_gptq(&m, path, &cs, 32, true, dir[0], &seen);
    seen_release(&seen);
    unsetenv("LOWBIT_MEM_LIMIT_MB");
    const int rc2 = run_gptq(&m, path, &cs, 32, true, dir[1], &seen);
    seen_release(&seen);
    T_OK(rc1 == 0 && rc2 == 0);
    char f1[800];
    snprintf(f1, sizeof f1, "%s/model.safetensors", dir[1]);
    T_OK(!read_file_all(f, "GPTQ checkpoint", &b0, &n0) &&
         !read_file_all(f1, "GPTQ checkpoint", &b1, &n1));
    if (!b0 || !b1 || n0 != n1 || memcmp(b0, b1, n0))
        T_FAIL_("the limited and unlimited runs differ");
out:
    unsetenv("LOWBIT_MEM_LIMIT_MB");
    free(b0), free(b1);
    calib_release(&cs);
    model_release(&m);
}

/* the float input of block l (xin) and its output (yref) for the windows of cs, [R][D] each, by
 * the eval forward */
static void block_io(struct fwd_state *fs, const struct model *m, const struct calib_set *cs,
                     int l, float *xin, float *yref) {
    const int D = m->cfg.dim, T = cs->seqlen;
    for (int b = 0; b < cs->n_samples; b++) {
        const int *tk = cs->tokens + b * T;
        if (l == 0) {
            for (int t = 0; t < T; t++) fwd_embed(m, tk[t], xin + (b * T + t) * D);
        } else {
            fs->layer_limit = l;
            fwd_truncate(fs, 0);
            T_OK(!forward(fs, tk, T, NULL, false));
            memcpy(xin + b * T * D, fs->x, sizeof(float) * T * D);
        }
        fs->layer_limit = l + 1;
        fwd_truncate(fs, 0);
        T_OK(!forward(fs, tk, T, NULL, false));
        memcpy(yref + b * T * D, fs->x, sizeof(float) * T * D);
    }
}

/* (e) grad_block_forward of every block of the fixture at path against the eval forward */
static void check_grad_forward(const char *path) {
    struct model m = MODEL_INIT;
    if (model_load(&m, path)) {
        T_FAIL_("model_load(%s)", path);
        return;
    }
    struct calib_set cs;
    make_windows(&cs, false);
    const int D = m.cfg.dim, T = WIN_T, R = N_WIN * WIN_T, K = m.cfg.n_expert_used;
    struct fwd_state fs;
    struct grad_block g;
    float *xin = malloc(sizeof(float) * R * D), *yref = malloc(sizeof(float) * R * D);
    float *y = malloc(sizeof(float) * R * D);
    T_OK(!fwd_init(&fs, &m, T, T));
    T_OK(!grad_block_init(&g, &m, T, R));
    double worst = 0;
    int moved = 0;
    for (int l = 0; l < m.cfg.n_layers; l++) {
        block_io(&fs, &m, &cs, l, xin, yref);
        struct grad_weights w;
        float *own = NULL;
        T_OK(!grad_weights_from_layer(&m, l, &w, &own));
        T_OK(!grad_block_forward(&g, &w, xin, N_WIN, T, y));
        double md = 0, mx = 0;
        for (int i = 0; i < R * D; i++) {
            md = fmax(md, fabs((double)y[i] - yref[i]));
            mx = fmax(mx, fabs((double)yref[i]));
        }
        worst = fmax(worst, md / mx);
        if (!(md <= 1e-5 * mx)) T_FAIL_("%s block %d: max diff %.3g of %.3g", path, l, md, mx);
        /* the choices again, from the eval forward's router on the grad forward's own input */
        for (int t = 0; t < R; t++) {
            int sel[8];
            float wt[8];
            fwd_moe_route(m.cfg.n_expert, K, m.cfg.expert_norm, g.mlog + (size_t)t * m.cfg.n_expert,
                          sel, wt);
            moved += memcmp(sel, g.msel + (size_t)t * K, sizeof(int) * K) != 0;
        }
        free(own);
    }
    T_EQ_INT(moved, 0);
    printf("  %s: the grad forward vs eval's, %d blocks: worst max |diff| / max |y| %.2g\n",
           path + strlen(fx_dir) + 1, m.cfg.n_layers, worst);
    grad_block_release(&g);
    fwd_release(&fs);
    free(xin), free(yref), free(y);
    calib_release(&cs);
    model_release(&m);
}

static void test_moe_grad_forward(void) {
    char path[700];
    static const char *const fx[] = {"mixtral_e4", "mixtral_e8_bf16", "qwen2moe_e6",
                                     "qwen2moe_norm_bf16"};
    for (size_t i = 0; i < LB_ARRAY_LEN(fx); i++)
        if (fixture(fx[i], path, sizeof path)) check_grad_forward(path);
    if (qwen2moe_s64(path, sizeof path)) check_grad_forward(path);
}

/* (f) AutoRound of the fixture at path with windows cs, `iters` iterations, into dir (reloaded
 * into qm); its report into rep */
static int run_autoround(const struct model *m, const char *path, const struct calib_set *cs,
                         int iters, const char *dir, struct model *qm,
                         struct autoround_report *rep) {
    struct autoround_opts o = AUTOROUND_OPTS_DEFAULT;
    o.group = 32, o.iters = iters;
    o.lr = o.minmax_lr = autoround_auto_lr(iters, o.bits);
    if (autoround_quantize_model(m, path, &o, cs, AUTOROUND_GPTQ, dir, "moe", true, false, rep))
        return -1;
    return model_load(qm, dir);
}

/* tokens [l·E + e] of the windows cs routed to expert e of block l (the float model) */
static void routed_tokens(const struct model *m, const struct calib_set *cs, int *tokens) {
    const int D = m->cfg.dim, T = cs->seqlen, R = cs->n_samples * T, E = m->cfg.n_expert;
    struct fwd_state fs;
    struct grad_block g;
    float *xin = malloc(sizeof(float) * R * D), *y = malloc(sizeof(float) * R * D);
    T_OK(!fwd_init(&fs, m, T, T));
    T_OK(!grad_block_init(&g, m, T, R));
    for (int l = 0; l < m->cfg.n_layers; l++) {
        struct grad_weights w;
        float *own = NULL;
        block_io(&fs, m, cs, l, xin, y);
        T_OK(!grad_weights_from_layer(m, l, &w, &own));
        T_OK(!grad_block_forward(&g, &w, xin, cs->n_samples, T, y));
        for (int e = 0; e < E; e++) tokens[l * E + e] = g.eoff[e + 1] - g.eoff[e];
        free(own);
    }
    grad_block_release(&g);
    fwd_release(&fs);
    free(xin), free(y);
}

static void test_moe_autoround_unrouted(void) {
    char path[700], dir[2][700];
    if (!fixture("mixtral_e4", path, sizeof path)) return;
    struct model m = MODEL_INIT, qm0 = MODEL_INIT, qm1 = MODEL_INIT;
    struct model *qm[2] = {&qm0, &qm1};
    struct autoround_report rep[2];
    memset(rep, 0, sizeof rep);
    struct calib_set cs;
    make_windows(&cs, true);
    /* AutoRound's loss masks a window's trailing repeats of its last token (its padding): a
     * different last token keeps the rest of the window in the loss */
    for (int b = 0; b < N_WIN; b++) cs.tokens[b * WIN_T + WIN_T - 1] = 18;
    snprintf(cs.path, sizeof cs.path, "one repeated token");
    const int iters[2] = {0, 20};
    bool ok = !model_load(&m, path);
    for (int r = 0; r < 2 && ok; r++) {
        snprintf(dir[r], sizeof dir[r], "%s/autoround-unrouted-%d", t_tmpdir(), iters[r]);
        ok = !run_autoround(&m, path, &cs, iters[r], dir[r], qm[r], &rep[r]);
    }
    if (!ok) {
        T_FAIL_("AutoRound of %s with one repeated token, or its reload, failed", path);
        goto out;
    }
    const int E = m.cfg.n_expert, NL = m.cfg.n_layers;
    int tokens[4 * 8] = {0}, idle = 0, n_same = 0;
    T_OK(E * NL <= 32);
    if (E * NL > 32) goto out;
    routed_tokens(&m, &cs, tokens);
    for (int i = 0; i < E * NL; i++) idle += !tokens[i];
    T_EQ_INT(rep[1].moe_experts, E * NL);
    T_EQ_INT(rep[1].moe_idle, idle);
    T_OK(idle > 0); /* the point of the windows */
    float *a = malloc(sizeof(float) * 256), *b = malloc(sizeof(float) * 256);
    for (int l = 0; l < NL && a && b; l++)
        for (int u = 0; u < E; u++) {
            bool same = true;
            for (int k = 0; k < 3; k++) {
                const struct tensor *t0 = model_expert(&qm0.layers[l], u, (enum lin)(LIN_GATE + k)),
                                    *t1 = model_expert(&qm1.layers[l], u, (enum lin)(LIN_GATE + k));
                T_OK(t0->ne[0] <= 256 && t0->ne[1] == t1->ne[1]);
                for (int64_t r = 0; r < t0->ne[1] && t0->ne[0] <= 256; r++) {
                    tensor_row_to_f32(t0, r, a);
                    tensor_row_to_f32(t1, r, b);
                    same &= !memcmp(a, b, sizeof(float) * t0->ne[0]);
                }
            }
            n_same += same;
            printf("    block %d expert %d: %d tokens, %s\n", l, u, tokens[l * E + u],
                   same ? "as the untuned quantizer" : "tuned");
            /* no token: no gradient, round to nearest; routed tokens in the loss: tuned (an
             * expert with only the windows' last tokens, which the loss masks, may be either:
             * the quantized stream may route differently) */
            if (!tokens[l * E + u] && !same)
                T_FAIL_("block %d expert %d: no token but tuned", l, u);
            if (tokens[l * E + u] > N_WIN && same)
                T_FAIL_("block %d expert %d: %d tokens but untuned", l, u, tokens[l * E + u]);
        }
    free(a), free(b);
    T_OK(n_same >= idle);
out:
    calib_release(&cs);
    model_release(&qm0), model_release(&qm1);
    model_release(&m);
}

static void test_moe_awq_mixtral(void) { check_awq("mixtral_e4"); }
static void test_moe_awq_qwen2moe(void) { check_awq("qwen2moe"); }

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    T_RUN(test_moe_hessians_mixtral);
    T_RUN(test_moe_hessians_qwen2moe);
    T_RUN(test_moe_hessians_true_sequential);
    T_RUN(test_moe_unrouted_fallback);
    T_RUN(test_moe_awq_fallback);
    T_RUN(test_moe_gptq_memory_plan);
    T_RUN(test_moe_grad_forward);
    T_RUN(test_moe_autoround_unrouted);
    T_RUN(test_moe_awq_mixtral);
    T_RUN(test_moe_awq_qwen2moe);
    t_tmpdir_cleanup();
    return T_DONE();
}
