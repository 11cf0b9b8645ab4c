/* tests/test_awq.c: AWQ (quant/awq.c).
 *
 *  (a) one random scaling group (K = 128 inputs with 6 outlier channels 20-60x the others,
 *      q/k/v-like linears of 64, 32, 32 rows, 512 tokens, group 64): the output error
 *      ‖X·Wᵀ − X·Ŵᵀ‖ of AWQ (scale search, fold, clip, RTN) is below RTN's (quant/rtn.c RTN_AWQ,
 *      same bits/group), with and without the clip (the clip's Gram route chooses every group's
 *      maximum as the direct route does); the fold alone leaves the fp32 output of
 *      norm -> linears and of linear -> linear unchanged (max relative difference <= 1e-5).
 *  (b) the scale search against the numpy reference tests/ref/awq_ref.py on the same group and
 *      on one linear without duo scaling: the same ratio, scales within 1e-6 relative, losses
 *      within 1e-4 relative (lowbit's matmul accumulates in fp32, the reference in float64).
 *  (c) stories260K: `lowbit quant --recipe awq-w4g64` writes an AWQ GEMM directory (only the
 *      attention linears: the 172-wide MLP cannot be packed) whose quantization_config is
 *      transformers' AwqConfig (quant_method awq, bits 4, group_size, zero_point, version gemm,
 *      modules_to_not_convert) plus the knobs and ratios; it reloads (model_load, `lowbit info`)
 *      and its held-out perplexity (tinystories-valid.txt.1000, llama.cpp protocol) is finite and
 *      within 10% of RTN's in the same layout. awq-w4g128 holds nothing of stories260K (g ∤ 64)
 *      and must still write a valid (all-float) checkpoint. Recipes are checked. */
#include <jansson.h>
#include <stdint.h>
#include <sys/wait.h>

#include "eval/model.h"
#include "kernels/qint.h"
#include "quant/awq.h"
#include "quant/quant.h"
#include "quant/rtn.h"
#include "tests/t.h"
#include "tests/t_cli.h"

#define PYTHON "/usr/bin/python3"
#define REF_SCRIPT "tests/ref/awq_ref.py"
#define K 128
#define T_TOK 512
#define G 64
static const int64_t n_[3] = {64, 32, 32};
#define N_ALL 128

static float x_[T_TOK * K], w_[N_ALL * K];

static uint32_t rng = 77;
static float frand(void) { /* [-1, 1) */
    rng = rng * 1664525u + 1013904223u;
    return (float)((rng >> 8) / 8388608.0 - 1.0);
}

static int is_outlier(int k) { return k % 23 == 5; } /* 6 of 128 channels */

static void make_group(void) {
    for (int t = 0; t < T_TOK; t++)
        for (int k = 0; k < K; k++)
            x_[t * K + k] = frand() * (is_outlier(k) ? 20.0f + (float)(k % 5) * 10.0f : 1.0f);
    for (int i = 0; i < N_ALL * K; i++) w_[i] = 0.05f * frand();
}

/* ‖X·(W − Ŵ)ᵀ‖² with the rows of wq given for the inputs xq (AWQ: X/s and Ŵ of W·s) */
static double out_err(const float *xq, const float *wq, int64_t N, const float *w) {
    double e = 0;
    for (int t = 0; t < T_TOK; t++)
        for (int64_t n = 0; n < N; n++) {
            double a = 0, b = 0;
            for (int k = 0; k < K; k++) {
                a += (double)x_[t * K + k] * w[n * K + k];
                b += (double)xq[t * K + k] * wq[n * K + k];
            }
            e += (a - b) * (a - b);
        }
    return e;
}

/* w [N][K] rounded by quant/rtn.c's AWQ rule, dequantized into out */
static int rtn_deq(const float *w, int64_t N, float *out) {
    struct tensor t;
    void *buf = NULL;
    const struct rtn_opts o = {.bits = 4, .group = G, .style = RTN_AWQ};
    if (rtn_quantize(w, K, N, &o, "w", &t, &buf)) return -1;
    for (int64_t n = 0; n < N; n++) qint_row_to_f32(&t, n, out + n * K);
    free(buf);
    return 0;
}

/* ------------------------------------------------------------------ (a) error and the fold */

static void test_awq_beats_rtn(void) {
    make_group();
    struct awq_opts o = AWQ_OPTS_DEFAULT;
    o.group = G;
    const float *w[3] = {w_, w_ + 64 * K, w_ + 96 * K};
    static float s[K], ws[N_ALL * K], xs[T_TOK * K], deq[N_ALL * K], mv[N_ALL * K / G];
    struct awq_search res;
    T_OK(!awq_search_scale(x_, T_TOK, K, w, n_, 3, &o, s, &res));
    T_OK(res.best > 0); /* outliers: some activation awareness pays */
    memcpy(ws, w_, sizeof ws);
    float *wsp[3] = {ws, ws + 64 * K, ws + 96 * K};
    float prev[K];
    for (int k = 0; k < K; k++) prev[k] = 1;
    awq_fold(prev, 1, wsp, n_, 3, K, s);
    for (int t = 0; t < T_TOK; t++)
        for (int k = 0; k < K; k++) xs[t * K + k] = x_[t * K + k] * prev[k]; /* x/s as the norm */
    double e_rtn = 0, e_awq = 0, e_noclip = 0;
    for (int i = 0; i < 3; i++) {
        const int64_t off = (int64_t)(w[i] - w_);
        T_OK(!rtn_deq(w_ + off, n_[i], deq));
        e_rtn += out_err(x_, deq, n_[i], w_ + off);
        T_OK(!rtn_deq(ws + off, n_[i], deq));
        e_noclip += out_err(xs, deq, n_[i], w_ + off);
        static float wc[N_ALL * K];
        memcpy(wc, ws + off, (size_t)(n_[i] * K) * sizeof *wc);
        T_OK(!awq_search_clip(xs, T_TOK, K, wc, n_[i], &o, mv));
        /* the Gram route (G < 512 sampled tokens) picks what the direct one picks */
        static float mv_direct[N_ALL * K / G];
        struct awq_opts od = o;
        od.direct_loss = true;
        T_OK(!awq_search_clip(xs, T_TOK, K, wc, n_[i], &od, mv_direct));
        int same = 0, shrunk = 0;
        for (int64_t r = 0; r < n_[i] * (K / G); r++) {
            same += mv[r] == mv_direct[r];
            float m0 = 0;
            for (int k = 0; k < G; k++) m0 = fmaxf(m0, fabsf(wc[r / (K / G) * K + r % (K / G) * G + k]));
            shrunk += mv[r] < m0;
        }
        if (same != n_[i] * (K / G))
            T_FAIL_("linear %d: the clip's Gram route picks %d of %lld maxima as the direct one", i,
                    same, (long long)(n_[i] * (K / G)));
        if (getenv("T_VERBOSE"))
            fprintf(stderr, "  linear %d: clip Gram = direct on %d groups, %d shrunk\n", i, same,
                    shrunk);
        awq_apply_clip(wc, K, n_[i], G, mv);
        T_OK(!rtn_deq(wc, n_[i], deq));
        e_awq += out_err(xs, deq, n_[i], w_ + off);
    }
    if (getenv("T_VERBOSE"))
        fprintf(stderr, "  ratio %.2f; output error² rtn %.4g, awq scale only %.4g, awq + clip %.4g\n",
                res.ratio, e_rtn, e_noclip, e_awq);
    if (!(e_noclip < 0.9 * e_rtn)) T_FAIL_("AWQ scales %.6g vs RTN %.6g", e_noclip, e_rtn);
    if (!(e_awq < 0.9 * e_rtn)) T_FAIL_("AWQ + clip %.6g vs RTN %.6g", e_awq, e_rtn);
}

static void test_fold_equivalence(void) {
    make_group();
    static float s[K], ws[N_ALL * K], wp[K * K], wp0[K * K];
    struct awq_opts o = AWQ_OPTS_DEFAULT;
    o.group = G;
    const float *w[1] = {w_};
    struct awq_search res;
    T_OK(!awq_search_scale(x_, T_TOK, K, w, n_, 1, &o, s, &res));
    float norm[K], norm0[K];
    for (int k = 0; k < K; k++) norm[k] = norm0[k] = 0.5f + 0.01f * (float)k;
    for (int i = 0; i < K * K; i++) wp[i] = wp0[i] = 0.1f * frand();
    /* norm -> W: y = (x ⊙ norm)·Wᵀ */
    memcpy(ws, w_, sizeof ws);
    float *wsp[1] = {ws};
    awq_fold(norm, 1, wsp, n_, 1, K, s);
    double md = 0, mx = 0;
    for (int t = 0; t < 64; t++)
        for (int n = 0; n < 64; n++) {
            double a = 0, b = 0;
            for (int k = 0; k < K; k++) {
                a += (double)(x_[t * K + k] * norm0[k]) * w_[n * K + k];
                b += (double)(x_[t * K + k] * norm[k]) * ws[n * K + k];
            }
            md = fmax(md, fabs(a - b));
            mx = fmax(mx, fabs(a));
        }
    if (!(md <= 1e-5 * mx)) T_FAIL_("norm fold: max diff %.3g of max %.3g", md, mx);
    /* Wp -> W: y = (x·Wpᵀ)·Wᵀ, Wp [K][K] */
    memcpy(ws, w_, sizeof ws);
    awq_fold(wp, K, wsp, n_, 1, K, s);
    static float h0[64 * K], h1[64 * K];
    for (int t = 0; t < 64; t++)
        for (int j = 0; j < K; j++) {
            double a = 0, b = 0;
            for (int k = 0; k < K; k++) {
                a += (double)x_[t * K + k] * wp0[j * K + k];
                b += (double)x_[t * K + k] * wp[j * K + k];
            }
            h0[t * K + j] = (float)a, h1[t * K + j] = (float)b;
        }
    md = mx = 0;
    for (int t = 0; t < 64; t++)
        for (int n = 0; n < 64; n++) {
            double a = 0, b = 0;
            for (int k = 0; k < K; k++) {
                a += (double)h0[t * K + k] * w_[n * K + k];
                b += (double)h1[t * K + k] * ws[n * K + k];
            }
            md = fmax(md, fabs(a - b));
            mx = fmax(mx, fabs(a));
        }
    if (!(md <= 1e-5 * mx)) T_FAIL_("linear fold: max diff %.3g of max %.3g", md, mx);
}

/* ------------------------------------------------------------------ (b) the numpy reference */

static int write_f32(const char *path, const float *v, size_t n) {
    FILE *f = fopen(path, "wb");
    size_t put = f ? fwrite(v, sizeof *v, n, f) : 0;
    if (f) fclose(f);
    return put == n ? 0 : -1;
}

static void check_vs_ref(int m, bool duo, bool direct, const char *tag) {
    struct awq_opts o = AWQ_OPTS_DEFAULT;
    o.group = G;
    o.duo_scaling = duo;
    o.direct_loss = direct;
    const float *w[3] = {w_, w_ + 64 * K, w_ + 96 * K};
    static float s[K], rs[K];
    struct awq_search res;
    if (awq_search_scale(x_, T_TOK, K, w, n_, m, &o, s, &res)) {
        T_FAIL_("%s: search failed", tag);
        return;
    }
    int64_t rows = 0;
    char nl[64] = "";
    for (int i = 0; i < m; i++) {
        rows += n_[i];
        snprintf(nl + strlen(nl), sizeof nl - strlen(nl), "%s%lld", i ? "," : "", (long long)n_[i]);
    }
    char xp[300], wp[300], op[300], cmd[2048];
    snprintf(xp, sizeof xp, "%s/x.f32", t_tmpdir());
    snprintf(wp, sizeof wp, "%s/w.f32", t_tmpdir());
    snprintf(op, sizeof op, "%s/ref.bin", t_tmpdir());
    T_OK(!write_f32(xp, x_, T_TOK * K) && !write_f32(wp, w_, (size_t)(rows * K)));
    snprintf(cmd, sizeof cmd, "%s %s --x %s --w %s --T %d --K %d --n %s --group %d --n-grid %d "
             "--duo %d -o %s", PYTHON, REF_SCRIPT, xp, wp, T_TOK, K, nl, G, o.n_grid, duo, op);
    if (system(cmd)) {
        T_FAIL_("%s: reference failed: %s", tag, cmd);
        return;
    }
    int32_t best = -1;
    double loss[AWQ_MAX_GRID];
    FILE *f = fopen(op, "rb");
    const int ok = f && fread(&best, 4, 1, f) == 1 &&
                   fread(loss, 8, (size_t)o.n_grid, f) == (size_t)o.n_grid &&
                   fread(rs, 4, K, f) == K;
    if (f) fclose(f);
    if (!ok) {
        T_FAIL_("%s: short reference output %s", tag, op);
        return;
    }
    if (getenv("T_VERBOSE"))
        fprintf(stderr, "  %s: ratio %.2f (reference %.2f), loss %.6g (reference %.6g)\n", tag,
                res.ratio, best / (double)o.n_grid, res.loss[res.best], loss[best]);
    T_EQ_INT(res.best, best);
    for (int i = 0; i < o.n_grid; i++)
        if (!(fabs(res.loss[i] - loss[i]) <= 1e-4 * loss[i])) {
            T_FAIL_("%s: loss[%d] %.9g vs reference %.9g", tag, i, res.loss[i], loss[i]);
            break;
        }
    double md = 0;
    int at = -1;
    for (int k = 0; k < K; k++) {
        const double d = fabs((double)s[k] - rs[k]) / fabs((double)rs[k]);
        if (d > md) md = d, at = k;
    }
    if (!(md <= 1e-6)) T_FAIL_("%s: scale %d: %.9g vs %.9g (rel %.3g)", tag, at, s[at], rs[at], md);
}

static void test_search_vs_reference(void) {
    make_group();
    /* the loss both ways (awq.h): at T 512 > K 128 the search takes the Gram way by itself */
    check_vs_ref(3, true, false, "qkv duo, Gram loss");
    check_vs_ref(1, false, false, "one linear, x_mean only, Gram loss");
    check_vs_ref(3, true, true, "qkv duo, direct loss");
    check_vs_ref(1, false, true, "one linear, x_mean only, direct loss");
}

static void test_recipe_check(void) {
    struct recipe r;
    recipe_init(&r);
    snprintf(r.id, sizeof r.id, "a");
    r.method = QMETHOD_AWQ;
    snprintf(r.weight_dtype, sizeof r.weight_dtype, "int4");
    snprintf(r.compute_dtype, sizeof r.compute_dtype, "fp32");
    T_ERR(recipe_check(&r)); /* no calib_set */
    T_CONTAINS(err_last(), "calib_set");
    snprintf(r.calib_set, sizeof r.calib_set, "groups_merged");
    T_OK(!recipe_check(&r));
    r.sym = 1;
    T_ERR(recipe_check(&r));
    r.sym = 0;
    r.group_size = -1, r.has_group_size = true;
    T_ERR(recipe_check(&r));
    r.group_size = 64;
    T_OK(!recipe_check(&r));
    snprintf(r.knobs, sizeof r.knobs, "{\"n_grid\":10,\"duo_scaling\":false,\"max_shrink\":0.3,"
             "\"n_sample_token\":64,\"clip\":true,\"seed\":2}");
    T_OK(!recipe_check(&r));
    snprintf(r.knobs, sizeof r.knobs, "{\"max_shrink\":1.5}");
    T_ERR(recipe_check(&r));
    snprintf(r.knobs, sizeof r.knobs, "{\"w_bit\":4}");
    T_ERR(recipe_check(&r));
    r.knobs[0] = 0;
    snprintf(r.weight_dtype, sizeof r.weight_dtype, "int3");
    T_ERR(recipe_check(&r));
    T_CONTAINS(err_last(), "gptq_v2");
    /* other widths in the GPTQ v2 layout */
    snprintf(r.knobs, sizeof r.knobs, "{\"format\":\"gptq_v2\"}");
    T_OK(!recipe_check(&r));
    snprintf(r.weight_dtype, sizeof r.weight_dtype, "int2");
    T_OK(!recipe_check(&r));
    snprintf(r.weight_dtype, sizeof r.weight_dtype, "nf4");
    T_ERR(recipe_check(&r));
    snprintf(r.weight_dtype, sizeof r.weight_dtype, "int3");
    snprintf(r.knobs, sizeof r.knobs, "{\"format\":\"exl2\"}");
    T_ERR(recipe_check(&r));
}

/* ----------------------------------------------------------------------- (c) stories260K */

static void test_stories260k(void) {
    const char *bin = t_bin();
    char mp[4096], text[4096], cmd[8192], dir_a[512], dir_r[512], dir_128[512], csv[600];
    static char out[65536];
    if (!t_stories260k(mp, text)) return;
    snprintf(dir_a, sizeof dir_a, "%s/awq-w4g64", t_tmpdir());
    snprintf(dir_r, sizeof dir_r, "%s/rtn-awq-w4g64", t_tmpdir());
    snprintf(dir_128, sizeof dir_128, "%s/awq-w4g128", t_tmpdir());
    snprintf(cmd, sizeof cmd, "%s quant --model %s --recipe awq-w4g64 -o %s", bin, mp, dir_a);
    if (t_sh(cmd, out, sizeof out)) {
        T_FAIL_("%s failed:\n%s", cmd, out);
        return;
    }
    T_CONTAINS(out, "55e9a15c5f33566725577a55f6782843b0126c0807a61ff26c6d0768894cc2b7");
    T_CONTAINS(out, "128 x 256 tokens, seed 0, BOS + text");
    T_CONTAINS(out, "20 of 35 block linears quantized");
    T_CONTAINS(out, "quant.awq_ratios: mean chosen ratio (groups): qkv ");
    T_CONTAINS(out, "o none"); /* GQA: v_proj [32, 64] != o_proj [64, 64] */
    T_CONTAINS(out, "quant.awq_peak_rss_mb: ");
    { /* killed after block 2 (the folded norms and the ratios of blocks 1-2 in the checkpoint),
       * run again: the same bytes as the run above */
        char dir_k[600], args[4400];
        snprintf(dir_k, sizeof dir_k, "%s/awq-killed", t_tmpdir());
        snprintf(args, sizeof args, "quant --model %s --recipe awq-w4g64", mp);
        static const char *const says[] = {"awq: resuming after block 2/5",
                                           "quant.awq_resumed_blocks: 2", NULL};
        static const char *const same[] = {"model.safetensors", "config.json", NULL};
        t_resume_same(args, dir_k, 2, says, "awq: block", dir_a, same);
    }
    /* config.json: transformers' AwqConfig keys */
    char cp[600];
    snprintf(cp, sizeof cp, "%s/config.json", dir_a);
    json_error_t je;
    json_t *cfg = json_load_file(cp, 0, &je), *qc = json_object_get(cfg, "quantization_config");
    T_OK(qc != NULL);
    if (qc) {
        T_EQ_STR(json_string_value(json_object_get(qc, "quant_method")), "awq");
        T_EQ_INT(json_integer_value(json_object_get(qc, "bits")), 4);
        T_EQ_INT(json_integer_value(json_object_get(qc, "group_size")), 64);
        T_OK(json_is_true(json_object_get(qc, "zero_point")));
        T_EQ_STR(json_string_value(json_object_get(qc, "version")), "gemm");
        json_t *nc = json_object_get(qc, "modules_to_not_convert");
        T_OK(json_is_array(nc) && json_array_size(nc) == 3); /* mlp.gate_proj, up_proj, down_proj */
        json_t *lb = json_object_get(qc, "lowbit");
        T_EQ_STR(json_string_value(json_object_get(lb, "algorithm")), "awq");
        T_EQ_INT(json_integer_value(json_object_get(lb, "n_grid")), 20);
        T_OK(json_is_true(json_object_get(lb, "duo_scaling")));
        T_EQ_INT(json_integer_value(json_object_get(lb, "calib_nsamples")), 128);
        json_t *ra = json_object_get(lb, "ratios");
        T_OK(json_is_array(ra) && json_array_size(ra) == 5);
        T_OK(json_is_real(json_object_get(json_array_get(ra, 0), "qkv")));
        T_OK(json_is_null(json_object_get(json_array_get(ra, 0), "o")));
    }
    json_decref(cfg);
    struct model m = MODEL_INIT;
    T_OK(!model_load(&m, dir_a));
    if (m.layers) {
        T_EQ_INT(m.layers[0].lin[LIN_Q].type, DTYPE_QINT);
        T_EQ_INT(m.layers[0].lin[LIN_Q].q_group, 64);
        T_EQ_INT(m.layers[0].lin[LIN_UP].type, DTYPE_F32);
    }
    model_release(&m);
    snprintf(cmd, sizeof cmd, "%s info %s", bin, dir_a);
    T_EQ_INT(t_sh(cmd, out, sizeof out), 0);
    /* RTN in the same layout, and g128 (nothing of stories260K is holdable: all float) */
    snprintf(csv, sizeof csv, "%s/awq-recipes.csv", t_tmpdir());
    FILE *f = fopen(csv, "wb");
    if (f) {
        fprintf(f, "id,algorithm,weight_dtype,bits,group_size,sym,double_quant,compute_dtype,"
                "calib_set,calib_nsamples,calib_seqlen,knobs\n"
                "rtn-awq-w4g64,rtn,int4,4,64,0,,fp32,,,,\"{\"\"format\"\":\"\"awq\"\"}\"\n"
                "awq-w4g128,awq,int4,4,128,0,,fp32,groups_merged,128,256,\n");
        fclose(f);
    }
    snprintf(cmd, sizeof cmd, "%s quant --model %s --recipe rtn-awq-w4g64 --recipes %s -o %s "
             "--quiet", bin, mp, csv, dir_r);
    T_EQ_INT(t_sh(cmd, out, sizeof out), 0);
    snprintf(cmd, sizeof cmd, "%s quant --model %s --recipe awq-w4g128 --recipes %s -o %s", bin, mp,
             csv, dir_128);
    T_EQ_INT(t_sh(cmd, out, sizeof out), 0);
    T_CONTAINS(out, "0 of 35 block linears quantized");
    const double pa = t_ppl(bin, dir_a, text), pr = t_ppl(bin, dir_r, text);
    if (getenv("T_VERBOSE"))
        fprintf(stderr, "  stories260K PPL: awq-w4g64 %.4f, rtn (awq layout) w4g64 %.4f\n", pa, pr);
    T_OK(isfinite(pa) && pa > 1);
    T_OK(isfinite(pr) && pr > 1);
    if (!(pa <= pr * 1.10)) T_FAIL_("awq-w4g64 PPL %.4f is not within 10%% of rtn's %.4f", pa, pr);

    /* 3 bits (the default awq-w3g64 row: GPTQ v2 layout) against RTN at the same width and group */
    char dir_3[512], dir_r3[512];
    snprintf(dir_3, sizeof dir_3, "%s/awq-w3g64", t_tmpdir());
    snprintf(dir_r3, sizeof dir_r3, "%s/rtn-w3g64", t_tmpdir());
    snprintf(cmd, sizeof cmd, "%s quant --model %s --recipe awq-w3g64 -o %s --quiet", bin, mp, dir_3);
    T_EQ_INT(t_sh(cmd, out, sizeof out), 0);
    f = fopen(csv, "wb");
    if (f) {
        fprintf(f, "id,algorithm,weight_dtype,bits,group_size,sym,double_quant,compute_dtype,"
                "calib_set,calib_nsamples,calib_seqlen,knobs\n"
                "rtn-w3g64,rtn,int3,3,64,0,,fp32,,,,\n");
        fclose(f);
    }
    snprintf(cmd, sizeof cmd, "%s quant --model %s --recipe rtn-w3g64 --recipes %s -o %s --quiet",
             bin, mp, csv, dir_r3);
    T_EQ_INT(t_sh(cmd, out, sizeof out), 0);
    snprintf(cp, sizeof cp, "%s/config.json", dir_3);
    cfg = json_load_file(cp, 0, &je);
    qc = json_object_get(cfg, "quantization_config");
    T_EQ_STR(json_string_value(json_object_get(qc, "quant_method")), "gptq");
    T_EQ_STR(json_string_value(json_object_get(qc, "checkpoint_format")), "gptq_v2");
    T_EQ_INT(json_integer_value(json_object_get(qc, "bits")), 3);
    T_EQ_STR(json_string_value(json_object_get(json_object_get(qc, "lowbit"), "algorithm")), "awq");
    json_decref(cfg);
    T_OK(!model_load(&m, dir_3));
    if (m.layers) {
        T_EQ_INT(m.layers[0].lin[LIN_Q].type, DTYPE_QINT);
        T_EQ_INT(m.layers[0].lin[LIN_Q].q_bits, 3);
    }
    model_release(&m);
    const double p3 = t_ppl(bin, dir_3, text), pr3 = t_ppl(bin, dir_r3, text);
    if (getenv("T_VERBOSE"))
        fprintf(stderr, "  stories260K PPL: awq-w3g64 %.4f, rtn w3g64 %.4f\n", p3, pr3);
    if (!(p3 < pr3)) T_FAIL_("awq-w3g64 PPL %.4f is not below rtn-w3g64's %.4f", p3, pr3);
}

/* the Gram route over several blocks of 256 columns (K = 600: two whole blocks and a partial one)
 * gives the direct route's losses within 1e-5 relative and the same choice */
static void test_gram_blocks(void) {
    enum { KB = 600, TB = 4000, NB = 24 }; /* T large enough that the Gram route is the cheaper */
    static float xb[TB * KB], wb[NB * KB], s1[KB], s2[KB];
    uint32_t r = 1234567;
    for (int i = 0; i < TB * KB; i++) {
        r = r * 1664525u + 1013904223u;
        xb[i] = ((float)(r >> 8) / 16777216.0f - 0.5f) * ((i % KB) % 37 == 3 ? 30.0f : 1.0f);
    }
    for (int i = 0; i < NB * KB; i++) {
        r = r * 1664525u + 1013904223u;
        wb[i] = (float)(r >> 8) / 16777216.0f - 0.5f;
    }
    struct awq_opts o = AWQ_OPTS_DEFAULT;
    o.group = 40;
    const float *w[2] = {wb, wb + 16 * KB};
    const int64_t n[2] = {16, 8};
    struct awq_search g, d;
    T_OK(!awq_search_scale(xb, TB, KB, w, n, 2, &o, s1, &g));
    o.direct_loss = true;
    T_OK(!awq_search_scale(xb, TB, KB, w, n, 2, &o, s2, &d));
    double worst = 0;
    for (int i = 0; i < o.n_grid; i++) worst = fmax(worst, fabs(g.loss[i] - d.loss[i]) / d.loss[i]);
    if (getenv("T_VERBOSE"))
        fprintf(stderr, "  K %d: ratio Gram %.2f direct %.2f, max relative loss difference %.2g\n",
                KB, g.ratio, d.ratio, worst);
    T_OK(g.best == d.best);
    if (!(worst < 1e-5)) T_FAIL_("Gram route losses differ from direct by %.3g relative", worst);
}

int main(void) {
    T_RUN(test_awq_beats_rtn);
    T_RUN(test_fold_equivalence);
    T_RUN(test_search_vs_reference);
    T_RUN(test_gram_blocks);
    T_RUN(test_recipe_check);
    T_RUN(test_stories260k);
    t_tmpdir_cleanup();
    return T_DONE();
}
