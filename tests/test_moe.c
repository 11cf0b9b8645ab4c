/* tests/test_moe.c: GPTQ on mixture-of-experts blocks, each expert with the calibration tokens
 * routed to it (quant/gptq.c, "MoE").
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
 *      moves some weight further than that). */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "eval/forward.h"
#include "eval/model.h"
#include "quant/calib.h"
#include "quant/gptq.h"
#include "quant/hf_export.h"
#include "quant/qformat.h"
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

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    T_RUN(test_moe_hessians_mixtral);
    T_RUN(test_moe_hessians_qwen2moe);
    T_RUN(test_moe_hessians_true_sequential);
    T_RUN(test_moe_unrouted_fallback);
    t_tmpdir_cleanup();
    return T_DONE();
}
