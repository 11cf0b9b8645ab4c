/* tests/test_qformats.c: the integer-group and bitsandbytes weight types, their fused kernels,
 * quantizers and checkpoint formats (GPTQ v1/v2, AWQ GEMM, bitsandbytes 4-bit and 8-bit).
 *
 * Legend: W [N][K] (ggml ne [K, N]), T tokens. Fixtures are random with a fixed seed, written at
 * run time into t_tmpdir(). Expected values come from the dequantize-then-fp32 oracle
 * (matmul_ref over the dequantized rows), from hand derivations of bitsandbytes' rules written out
 * in the test, and from the published tables (REFERENCE.md C4). */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <sys/stat.h>

#include "eval/model.h"
#include "eval/safetensors.h"
#include "eval/tokenizer.h"
#include "kernels/matmul.h"
#include "kernels/nf4.h"
#include "kernels/qint.h"
#include "quant/bnb.h"
#include "quant/qformat.h"
#include "quant/rtn.h"
#include "tests/t.h"

/* ===== helpers ===== */

#include "tests/t_rng.h"
static float rng_normal(void) { /* sum of 4 uniforms: roughly normal, heavier than uniform */
    return (rng_unif() + rng_unif() + rng_unif() + rng_unif()) * 0.5f;
}

/* a tensor owning its buffer */
struct owned {
    struct tensor t;
    void *buf;
};

/* random qint: codes uniform, d fp16 in ±[2⁻¹², 2⁻²], z integer in [0, 2^b]; act-order from a
 * random g_idx when perm */
static void make_qint(struct owned *o, int64_t K, int64_t N, int bits, int64_t group, bool perm) {
    T_OK(!qint_tensor_init(&o->t, "wq", K, N, bits, group, perm));
    o->buf = calloc(1, qint_tensor_bytes(K, N, bits, group, perm));
    qint_tensor_attach(&o->t, o->buf, perm);
    const int64_t g = o->t.q_group, ng = qint_n_groups(g, K);
    for (int64_t n = 0; n < N; n++) {
        uint8_t *row = (uint8_t *)o->t.data + (size_t)n * tensor_row_bytes(&o->t);
        for (int64_t k = 0; k < K; k++) qint_code_set(row, bits, k, rng_u32() & ((1u << bits) - 1));
        for (int64_t gi = 0; gi < ng; gi++) {
            const float d = ldexpf(1.0f + (float)(rng_u32() % 1024) / 1024.0f,
                                   -2 - (int)(rng_u32() % 10)) * (rng_u32() & 1 ? 1.0f : -1.0f);
            qint_params(&o->t)[n * ng + gi] =
                (struct qint_param){lb_fp16_to_f32(lb_f32_to_fp16(d)),
                                    (float)(rng_u32() % ((1u << bits) + 1))};
        }
    }
    if (perm) { /* g_idx = act-order position / g for a random order */
        int32_t *order = malloc((size_t)K * sizeof *order), *gidx = malloc((size_t)K * sizeof *gidx);
        for (int64_t k = 0; k < K; k++) order[k] = (int32_t)k;
        for (int64_t k = K - 1; k > 0; k--) {
            const int64_t j = rng_u32() % (uint32_t)(k + 1);
            const int32_t tmp = order[k];
            order[k] = order[j], order[j] = tmp;
        }
        for (int64_t j = 0; j < K; j++) gidx[order[j]] = (int32_t)(j / g);
        bool trivial;
        T_OK(!qint_perm_from_gidx("test", gidx, K, g, qint_perm_mut(&o->t), &trivial));
        T_OK(!trivial || K <= g);
        free(order);
        free(gidx);
    }
}

static void make_nf4(struct owned *o, int64_t K, int64_t N, enum dtype type, int64_t bs) {
    T_OK(!nf4_tensor_init(&o->t, "wn", type, K, N, bs));
    const int64_t n = N * K, nb = nf4_n_blocks(n, bs);
    uint8_t *stream = malloc((size_t)(n + 1) / 2);
    float *am = malloc((size_t)nb * sizeof *am);
    for (int64_t i = 0; i < (n + 1) / 2; i++) stream[i] = (uint8_t)rng_u32();
    if (n % 2) stream[n / 2] &= 0xf0;
    for (int64_t b = 0; b < nb; b++) am[b] = 0.01f + fabsf(rng_unif());
    o->buf = calloc(1, tensor_nbytes(&o->t));
    nf4_fill(&o->t, o->buf, stream, am);
    free(stream);
    free(am);
}

static void make_i8(struct owned *o, int64_t K, int64_t N) {
    T_OK(!i8row_tensor_init(&o->t, "w8", K, N));
    int8_t *q = malloc((size_t)(N * K));
    float *scb = malloc((size_t)N * sizeof *scb);
    for (int64_t i = 0; i < N * K; i++) q[i] = (int8_t)((int)(rng_u32() % 255) - 127);
    for (int64_t i = 0; i < N; i++) scb[i] = fabsf(rng_unif()) * 3;
    o->buf = calloc(1, tensor_nbytes(&o->t));
    i8row_fill(&o->t, o->buf, q, scb);
    free(q);
    free(scb);
}

/* the dequantized weights as an f32 tensor (owned buffer) */
static float *dequant_all(const struct tensor *w) {
    const int64_t K = w->ne[0], N = tensor_nrows(w);
    float *f = malloc((size_t)(N * K) * sizeof *f);
    for (int64_t n = 0; n < N; n++) tensor_row_to_f32(w, n, f + n * K);
    return f;
}

static const char *const isas[] = {"generic", "avx2", "avx512"};

/* matmul_q on every ISA the CPU has vs matmul_ref over the dequantized weights:
 * |y − y_ref| <= 2·(K+4)·2⁻²⁴·Σ_k|w·x| per output. Returns the worst ratio |diff|/bound. */
static double check_kernel(const struct tensor *w, int T, double *worst_abs) {
    const int64_t K = w->ne[0], N = tensor_nrows(w);
    float *wf = dequant_all(w), *x = malloc((size_t)(T * K) * sizeof *x);
    for (int64_t i = 0; i < T * K; i++) x[i] = rng_normal();
    struct tensor wt;
    const int64_t ne[2] = {K, N};
    T_OK(!tensor_init(&wt, "wf", DTYPE_F32, 2, ne));
    wt.data = wf;
    float *yr = malloc((size_t)(T * N) * sizeof *yr), *y = malloc((size_t)(T * N) * sizeof *y);
    float *yq = malloc((size_t)(T * N) * sizeof *yq);
    matmul_ref(yr, x, &wt, T);
    matmul_q_ref(yq, x, w, T);
    T_OK(!memcmp(yr, yq, (size_t)(T * N) * sizeof *yr)); /* the oracle is matmul_ref, bitwise */
    double worst = 0;
    for (size_t ii = 0; ii < LB_ARRAY_LEN(isas); ii++) {
        if (matmul_q_isa(y, x, w, T, isas[ii])) continue; /* the CPU lacks it */
        for (int t = 0; t < T; t++)
            for (int64_t n = 0; n < N; n++) {
                double s = 0;
                for (int64_t k = 0; k < K; k++) s += fabs((double)wf[n * K + k] * x[t * K + k]);
                const double bound = 2.0 * (double)(K + 4) * ldexp(1, -24) * s + 1e-30;
                const double d = fabs((double)y[t * N + n] - yr[t * N + n]);
                if (d / bound > worst) worst = d / bound;
                if (d > *worst_abs) *worst_abs = d;
                if (!(d <= bound))
                    T_FAIL_("%s %s K=%lld N=%lld T=%d: y[%d][%lld] = %.9g vs ref %.9g (bound %.3g)",
                            isas[ii], dtype_get(w->type)->name, (long long)K, (long long)N, T, t,
                            (long long)n, (double)y[t * N + n], (double)yr[t * N + n], bound);
            }
    }
    free(wf), free(x), free(yr), free(y), free(yq);
    return worst;
}

/* one-hot activations: y[t][n] = w[n][t] exactly, so the fused dequantization of every ISA must be
 * bit-identical to tensor_row_to_f32 */
static void check_dequant_exact(const struct tensor *w) {
    const int64_t K = w->ne[0], N = tensor_nrows(w);
    const int T = (int)K;
    float *x = calloc((size_t)(T * K), sizeof *x), *y = malloc((size_t)(T * N) * sizeof *y);
    float *wf = dequant_all(w);
    for (int t = 0; t < T; t++) x[t * K + t] = 1.0f;
    for (size_t ii = 0; ii < LB_ARRAY_LEN(isas); ii++) {
        if (matmul_q_isa(y, x, w, T, isas[ii])) continue;
        for (int t = 0; t < T; t++)
            for (int64_t n = 0; n < N; n++)
                if (y[t * N + n] != wf[n * K + t] && !(wf[n * K + t] == 0 && y[t * N + n] == 0)) {
                    T_FAIL_("%s %s: fused dequant of w[%lld][%d] = %.9g, reference %.9g", isas[ii],
                            dtype_get(w->type)->name, (long long)n, t, (double)y[t * N + n],
                            (double)wf[n * K + t]);
                    goto out;
                }
    }
out:
    free(x), free(y), free(wf);
}

/* ===== 1. fused kernels vs dequantize-then-matmul ===== */

static const int toks[] = {1, 2, 3, 7, 17, 33};
static const int64_t ks[] = {64, 96, 128, 172, 256, 288, 768};
static const int64_t ns[] = {1, 3, 31, 65};

static void kernel_sweep(const char *label, int kind, int bits, int64_t group, bool perm) {
    double worst = 0, worst_abs = 0;
    int n_cases = 0;
    for (size_t ik = 0; ik < LB_ARRAY_LEN(ks); ik++)
        for (size_t in = 0; in < LB_ARRAY_LEN(ns); in++) {
            struct owned o = {0};
            const int64_t K = ks[ik], N = ns[in];
            if (kind == 0) make_qint(&o, K, N, bits, group, perm);
            else if (kind == 1) make_nf4(&o, K, N, DTYPE_NF4, group);
            else if (kind == 2) make_nf4(&o, K, N, DTYPE_FP4, group);
            else make_i8(&o, K, N);
            for (size_t it = 0; it < LB_ARRAY_LEN(toks); it++) {
                const double r = check_kernel(&o.t, toks[it], &worst_abs);
                if (r > worst) worst = r;
                n_cases++;
            }
            if (K <= 172 && N <= 31) check_dequant_exact(&o.t);
            free(o.buf);
        }
    if (getenv("T_VERBOSE"))
        fprintf(stderr, "  kernels %-22s %3d shapes (each on every ISA), worst |diff|/bound %.3f, max |diff| %.2e\n",
                label, n_cases, worst, worst_abs);
}

static void test_kernels_qint(void) {
    kernel_sweep("qint4 g32", 0, 4, 32, false);
    kernel_sweep("qint4 g128 act-order", 0, 4, 128, true);
    kernel_sweep("qint3 g128 act-order", 0, 3, 128, true);
    kernel_sweep("qint2 g64", 0, 2, 64, false);
    kernel_sweep("qint8 per-channel", 0, 8, -1, false);
    kernel_sweep("qint8 g32 act-order", 0, 8, 32, true);
}

static void test_kernels_bnb(void) {
    kernel_sweep("nf4 bs64", 1, 4, 64, false);
    kernel_sweep("fp4 bs64", 2, 4, 64, false);
    kernel_sweep("nf4 bs32", 1, 4, 32, false);
    kernel_sweep("i8row", 3, 8, 0, false);
}

/* the prefill GEMM (matmul.c's, W panels from the dequantizers) past its blocking: several K
 * blocks with a tail that is not a multiple of 16, more outputs than one unit holds (256), more
 * tokens than one unit (576), edge tiles in both directions; act-order gathers x */
static void test_kernels_gemm_blocking(void) {
    double worst_abs = 0;
    struct owned o = {0};
    make_qint(&o, 556, 300, 4, 128, true);
    check_kernel(&o.t, 601, &worst_abs);
    free(o.buf);
    o = (struct owned){0};
    make_nf4(&o, 556, 270, DTYPE_NF4, 64);
    check_kernel(&o.t, 589, &worst_abs);
    check_kernel(&o.t, 13, &worst_abs);
    free(o.buf);
}

/* every qint setting at two shapes, and the parallel path is thread-count independent */
static void test_kernels_all_settings(void) {
    static const int bits[] = {2, 3, 4, 8};
    static const int64_t groups[] = {32, 64, 128, -1};
    double worst_abs = 0;
    for (size_t b = 0; b < 4; b++)
        for (size_t g = 0; g < 4; g++)
            for (int p = 0; p < 2; p++) {
                struct owned o = {0};
                make_qint(&o, 288, 65, bits[b], groups[g], p);
                check_kernel(&o.t, 5, &worst_abs);
                check_kernel(&o.t, 1, &worst_abs);
                free(o.buf);
            }
#ifdef _OPENMP
    struct owned o = {0};
    make_qint(&o, 768, 300, 4, 128, true);
    static const int ts[] = {1, 40, 600}; /* GEMV, GEMM, GEMM over two token units */
    for (size_t it = 0; it < LB_ARRAY_LEN(ts); it++) {
        const int T = ts[it];
        float *x = malloc((size_t)(T * 768) * sizeof *x), *y1 = malloc((size_t)(T * 300) * 4),
              *y2 = malloc((size_t)(T * 300) * 4);
        for (int i = 0; i < T * 768; i++) x[i] = rng_normal();
        const int saved = lb_threads();
        lb_set_threads(1);
        matmul(y1, x, &o.t, T);
        lb_set_threads(3);
        matmul(y2, x, &o.t, T);
        lb_set_threads(saved);
        T_OK(!memcmp(y1, y2, (size_t)(T * 300) * 4));
        free(x), free(y1), free(y2);
    }
    free(o.buf);
#endif
}

/* ===== RTN rules by hand ===== */

static void test_rtn_rules(void) {
    /* GPTQ sym 4-bit, one group of 32: x = (-1, 0.5, 0, ...): xmax = 1, scale = 2/15 -> fp16
     * 0.13330078, zero = (15+1)/2 = 8; q(0.5) = round(3.7509) + 8 = 12, q(-1) = round(-7.5018) + 8
     * = 0 (-7.5018 rounds to -8), q(0) = 8 */
    float x[32] = {-1.0f, 0.5f};
    struct tensor t;
    void *buf;
    struct rtn_opts o = {.bits = 4, .group = 32, .sym = true, .style = RTN_GPTQ};
    T_OK(!rtn_quantize(x, 32, 1, &o, "sym", &t, &buf));
    const uint8_t *row = t.data;
    T_NEAR(qint_params(&t)[0].d, 0.13330078125, 0);
    T_NEAR(qint_params(&t)[0].z, 8, 0);
    T_EQ_INT(qint_code_get(row, 4, 0), 0);
    T_EQ_INT(qint_code_get(row, 4, 1), 12);
    T_EQ_INT(qint_code_get(row, 4, 2), 8);
    free(buf);
    /* GPTQ asym: x in [-0.3, 0.9]: scale = 1.2/15 = 0.08 -> fp16 0.0800170898, zero =
     * round(0.3/0.08) = round(3.75) = 4; q(0.9) = round(11.2476) + 4 = 15 */
    float xa[32] = {-0.3f, 0.9f};
    o.sym = false;
    T_OK(!rtn_quantize(xa, 32, 1, &o, "asym", &t, &buf));
    T_NEAR(qint_params(&t)[0].d, 0.0800170898, 1e-10);
    T_NEAR(qint_params(&t)[0].z, 4, 0);
    T_EQ_INT(qint_code_get(t.data, 4, 1), 15);
    T_EQ_INT(qint_code_get(t.data, 4, 0), 0);
    free(buf);
    /* AWQ (no 0 in the range): x in [0.1, 0.9]: scale = 0.8/15 -> fp16 0.05334473, zero =
     * clamp(-round(1.8746), 0, 15) = 0; q(0.1) = round(1.8746) = 2 */
    float xw[32];
    for (int i = 0; i < 32; i++) xw[i] = 0.1f + 0.8f * (float)i / 31.0f;
    struct rtn_opts ow = {.bits = 4, .group = 32, .style = RTN_AWQ};
    T_OK(!rtn_quantize(xw, 32, 1, &ow, "awq", &t, &buf));
    T_NEAR(qint_params(&t)[0].d, 0.0533447265625, 0);
    T_NEAR(qint_params(&t)[0].z, 0, 0);
    T_EQ_INT(qint_code_get(t.data, 4, 0), 2);
    free(buf);
    /* the mse grid never does worse on its own criterion, Σ|Q(x) − x|^2.4 per group */
    const int64_t K = 256, N = 16;
    float *w = malloc((size_t)(K * N) * sizeof *w), *a = malloc((size_t)K * 4), *b = malloc((size_t)K * 4);
    for (int64_t i = 0; i < K * N; i++) w[i] = rng_normal() * (i % 97 == 0 ? 8.0f : 1.0f);
    struct tensor t1, t2;
    void *b1, *b2;
    struct rtn_opts om = {.bits = 3, .group = 64, .sym = false, .style = RTN_GPTQ};
    T_OK(!rtn_quantize(w, K, N, &om, "minmax", &t1, &b1));
    om.mse = true;
    T_OK(!rtn_quantize(w, K, N, &om, "mse", &t2, &b2));
    double e1 = 0, e2 = 0;
    for (int64_t n = 0; n < N; n++) {
        tensor_row_to_f32(&t1, n, a);
        tensor_row_to_f32(&t2, n, b);
        for (int64_t k = 0; k < K; k++) {
            e1 += pow(fabs(a[k] - w[n * K + k]), 2.4);
            e2 += pow(fabs(b[k] - w[n * K + k]), 2.4);
        }
    }
    T_OK(e2 < e1);
    if (getenv("T_VERBOSE"))
        fprintf(stderr, "  rtn 3-bit g64 asym: sum |err|^2.4 min-max %.4g, mse grid %.4g\n", e1, e2);
    free(w), free(a), free(b), free(b1), free(b2);
}

/* ===== fixtures: tiny fp32 llama directories ===== */

struct fx {
    int D, H, L, nh, nkv, hd, V;
};
static const struct fx FX_A = {64, 128, 2, 4, 2, 16, 48}; /* every shape packs at every width */
static const struct fx FX_B = {64, 96, 2, 4, 2, 16, 48};  /* K = 96: group 64 falls back */
static const struct fx FX_C = {63, 87, 1, 4, 2, 16, 40};  /* odd K and odd N·K (bitsandbytes) */

/* dir/rel in a ring of 8 buffers: callers that keep a path copy it (fixture paths do) */
static const char *tmp_path(const char *rel) {
    static char buf[8][512];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", t_tmpdir(), rel);
    return buf[k];
}

static void add_rand(struct safetensors_writer *w, float **keep, int *n_keep, const char *name,
                     int64_t d0, int64_t d1, float scale, float base) {
    const int64_t n = d0 * (d1 > 0 ? d1 : 1);
    float *f = malloc((size_t)n * sizeof *f);
    for (int64_t i = 0; i < n; i++) f[i] = base + scale * rng_normal();
    const int64_t shape[2] = {d0, d1};
    T_OK(!safetensors_writer_add(w, name, "F32", d1 > 0 ? 2 : 1, shape, f, (size_t)n * 4));
    keep[(*n_keep)++] = f;
}

static void write_fixture(const char *dir, const struct fx *x) {
    mkdir(dir, 0777);
    char p[600], cfg[1024];
    snprintf(p, sizeof p, "%s/config.json", dir);
    snprintf(cfg, sizeof cfg,
             "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", "
             "\"hidden_size\": %d, \"intermediate_size\": %d, \"num_hidden_layers\": %d, "
             "\"num_attention_heads\": %d, \"num_key_value_heads\": %d, \"head_dim\": %d, "
             "\"vocab_size\": %d, \"rms_norm_eps\": 1e-05, \"tie_word_embeddings\": false}",
             x->D, x->H, x->L, x->nh, x->nkv, x->hd, x->V);
    FILE *f = fopen(p, "w");
    fputs(cfg, f);
    fclose(f);
    struct safetensors_writer w = SAFETENSORS_WRITER_INIT;
    float *keep[64];
    int n_keep = 0;
    add_rand(&w, keep, &n_keep, "model.embed_tokens.weight", x->V, x->D, 0.5f, 0);
    add_rand(&w, keep, &n_keep, "model.norm.weight", x->D, 0, 0.05f, 1);
    add_rand(&w, keep, &n_keep, "lm_head.weight", x->V, x->D, 0.1f, 0);
    const int qd = x->nh * x->hd, kvd = x->nkv * x->hd;
    for (int l = 0; l < x->L; l++) {
        char n[128];
#define L_(suffix, d0, d1, sc, base)                                                               \
    snprintf(n, sizeof n, "model.layers.%d.%s", l, suffix);                                        \
    add_rand(&w, keep, &n_keep, n, d0, d1, sc, base)
        L_("input_layernorm.weight", x->D, 0, 0.05f, 1);
        L_("post_attention_layernorm.weight", x->D, 0, 0.05f, 1);
        L_("self_attn.q_proj.weight", qd, x->D, 0.1f, 0);
        L_("self_attn.k_proj.weight", kvd, x->D, 0.1f, 0);
        L_("self_attn.v_proj.weight", kvd, x->D, 0.1f, 0);
        L_("self_attn.o_proj.weight", x->D, qd, 0.1f, 0);
        L_("mlp.gate_proj.weight", x->H, x->D, 0.1f, 0.01f);
        L_("mlp.up_proj.weight", x->H, x->D, 0.1f, 0);
        L_("mlp.down_proj.weight", x->D, x->H, 0.1f, -0.01f);
#undef L_
    }
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    T_OK(!safetensors_writer_write(&w, p));
    safetensors_writer_release(&w);
    for (int i = 0; i < n_keep; i++) free(keep[i]);
}

/* every block linear of `out` (loaded) dequantizes bit for bit as the export held it in memory;
 * the float tensors are the source's. Returns the number of quantized modules checked. */
static int compare_export(const struct hfx_model *hm, const char *out, enum dtype want) {
    struct model m2;
    if (model_load(&m2, out)) {
        T_FAIL_("%s does not load: %s", out, err_last());
        return 0;
    }
    int n_q = 0;
    for (int i = 0; i < hm->n; i++) {
        const struct hfx_tensor *t = &hm->t[i];
        const struct tensor *lt = model_find_tensor(&m2, t->src->name);
        if (!lt) {
            T_FAIL_("%s: %s missing after reload", out, t->src->name);
            continue;
        }
        const int64_t K = t->K, N = t->N;
        float *a = malloc((size_t)K * sizeof *a), *b = malloc((size_t)K * sizeof *b);
        for (int64_t r = 0; r < N; r++) {
            if (t->quantized) tensor_row_to_f32(&t->q, r, a);
            else if (t->f32) memcpy(a, t->f32 + r * K, (size_t)K * 4);
            else tensor_row_to_f32(t->src, r, a);
            tensor_row_to_f32(lt, r, b);
            if (memcmp(a, b, (size_t)K * 4)) {
                T_FAIL_("%s: %s row %lld differs after the round trip", out, t->src->name, (long long)r);
                break;
            }
        }
        if (t->quantized) {
            n_q++;
            if (lt->type != want)
                T_FAIL_("%s: %s reloads as %s (expected %s)", out, t->src->name,
                        dtype_get(lt->type)->name, dtype_get(want)->name);
        }
        free(a), free(b);
    }
    model_release(&m2);
    return n_q;
}

/* an act-order copy of an RTN tensor: columns quantized in a random order, q_perm = that order */
static void act_order_quantize(struct hfx_tensor *t, const struct rtn_opts *o) {
    const int64_t K = t->K, N = t->N;
    int32_t *order = malloc((size_t)K * sizeof *order);
    for (int64_t k = 0; k < K; k++) order[k] = (int32_t)k;
    for (int64_t k = K - 1; k > 0; k--) {
        const int64_t j = rng_u32() % (uint32_t)(k + 1);
        const int32_t tmp = order[k];
        order[k] = order[j], order[j] = tmp;
    }
    float *wp = malloc((size_t)(N * K) * sizeof *wp);
    for (int64_t n = 0; n < N; n++)
        for (int64_t j = 0; j < K; j++) wp[n * K + j] = t->f32[n * K + order[j]];
    struct tensor tmp;
    void *tb;
    T_OK(!rtn_quantize(wp, K, N, o, t->module, &tmp, &tb));
    T_OK(!qint_tensor_init(&t->q, t->module, K, N, o->bits, o->group, true));
    t->qbuf = calloc(1, qint_tensor_bytes(K, N, o->bits, o->group, true));
    qint_tensor_attach(&t->q, t->qbuf, true);
    memcpy(t->q.data, tmp.data, qtensor_side_offset(&tmp) + qtensor_side_bytes(&tmp));
    memcpy(qint_perm_mut(&t->q), order, (size_t)K * sizeof *order);
    free(tb), free(wp), free(order);
}

/* a GPTQ round trip; returns the count of exact quantized modules (-1 on a setup failure) */
static int gptq_case(const char *src, const char *out, int bits, int64_t group, bool sym, bool v2,
                     bool act_order, struct hfx_stats *st) {
    struct model m;
    struct hfx_model hm;
    if (model_load(&m, src) || hfx_collect(&hm, &m, src, false)) {
        T_FAIL_("fixture %s: %s", src, err_last());
        return -1;
    }
    for (int i = 0; i < hm.n; i++) {
        struct hfx_tensor *t = &hm.t[i];
        if (!t->linear) continue;
        const enum qplan plan = qformat_plan(false, t->K, t->N, bits, group, t->note, sizeof t->note);
        if (plan == QPLAN_FLOAT) continue;
        const struct rtn_opts o = {.bits = bits, .group = plan == QPLAN_CHANNEL ? -1 : group,
                                   .sym = sym, .style = RTN_GPTQ, .zero_min = v2 ? 0 : 1};
        if (act_order && plan == QPLAN_GROUP && group > 0 && group < t->K) act_order_quantize(t, &o);
        else T_OK(!rtn_quantize(t->f32, t->K, t->N, &o, t->module, &t->q, &t->qbuf));
        t->quantized = true;
    }
    const struct gptq_write_opts go = {.bits = bits, .group = group, .sym = sym, .v2 = v2,
                                       .desc_act = act_order, .quantizer = "test"};
    int n = -1;
    if (gptq_write(&hm, &go, out, st)) T_FAIL_("gptq_write %s: %s", out, err_last());
    else n = compare_export(&hm, out, DTYPE_QINT);
    hfx_release(&hm);
    model_release(&m);
    return n;
}

/* true when the g_idx of the first module of `out` decreases somewhere */
static bool gidx_nonmonotonic(const char *out, const char *module) {
    char p[600], name[300];
    snprintf(p, sizeof p, "%s/model.safetensors", out);
    snprintf(name, sizeof name, "%s.g_idx", module);
    struct safetensors st = SAFETENSORS_INIT;
    bool dec = false;
    if (safetensors_open(&st, p)) return false;
    const struct safetensors_tensor *g = safetensors_find(&st, name);
    for (int64_t k = 1; g && k < g->shape[0]; k++)
        dec |= ((const int32_t *)g->data)[k] < ((const int32_t *)g->data)[k - 1];
    safetensors_close(&st);
    return dec;
}

/* ===== 2. round trips: quantize -> write -> read -> dequantize, bit-identical ===== */

static void test_roundtrip_gptq(void) {
    char a[512], b[512];
    snprintf(a, sizeof a, "%s", tmp_path("fxA"));
    snprintf(b, sizeof b, "%s", tmp_path("fxB"));
    write_fixture(a, &FX_A);
    write_fixture(b, &FX_B);
    static const int bits[] = {2, 3, 4, 8};
    static const int64_t groups[] = {32, 64, 128, -1};
    int cases = 0, modules = 0;
    struct hfx_stats st;
    for (int bi = 0; bi < 4; bi++)
        for (int gi = 0; gi < 4; gi++)
            for (int sym = 0; sym < 2; sym++)
                for (int v2 = 0; v2 < 2; v2++) {
                    const char *out = tmp_path("gptq");
                    const int n = gptq_case(a, out, bits[bi], groups[gi], sym, v2, false, &st);
                    T_EQ_INT(n, 2 * 7);
                    modules += n, cases++;
                    /* the recipe's path (one module in fp32 at a time, each written as soon as it
                     * is quantized, through a spool) writes the same bytes as this all-at-once one */
                    struct model m;
                    const struct hf_recipe r = {.algorithm = "rtn", .bits = bits[bi],
                                                .group_size = groups[gi], .sym = sym,
                                                .knobs = v2 ? "{\"format\":\"gptq_v2\"}" : NULL};
                    const char *out2 = tmp_path("gptq_stream");
                    struct hfx_stats st2;
                    T_OK(!model_load(&m, a) && !rtn_quantize_model(&m, a, &r, out2, true, &st2));
                    model_release(&m);
                    char pa[600], pb[600];
                    snprintf(pa, sizeof pa, "%s/model.safetensors", out);
                    snprintf(pb, sizeof pb, "%s/model.safetensors", out2);
                    size_t na = 0, nb = 0;
                    char *da = NULL, *db = NULL;
                    T_OK(!read_file_all(pa, "a", &da, &na) && !read_file_all(pb, "b", &db, &nb));
                    if (!da || !db || na != nb || memcmp(da, db, na))
                        T_FAIL_("%d-bit g%lld sym %d v2 %d: the streamed file differs", bits[bi],
                                (long long)groups[gi], sym, v2);
                    T_EQ_INT(st2.n_lin_q, st.n_lin_q);
                    T_EQ_INT(st2.file_bytes, st.file_bytes);
                    free(da), free(db);
                }
    /* act-order: non-monotonic g_idx */
    for (int bi = 0; bi < 4; bi++)
        for (int gi = 0; gi < 2; gi++)
            for (int v2 = 0; v2 < 2; v2++) {
                const char *out = tmp_path("gptq_act");
                const int n = gptq_case(a, out, bits[bi], groups[gi], bi % 2, v2, true, &st);
                T_EQ_INT(n, 2 * 7);
                T_OK(gidx_nonmonotonic(out, "model.layers.0.mlp.down_proj")); /* K = 128 */
                modules += n, cases++;
            }
    /* fixture B: K = 96 under group 64 -> per-channel, written as identical rows */
    const int n = gptq_case(b, tmp_path("gptq_b"), 4, 64, false, false, false, &st);
    T_EQ_INT(n, 2 * 7);
    T_EQ_INT(st.n_per_channel, 2);
    modules += n, cases++;
    if (getenv("T_VERBOSE"))
        fprintf(stderr, "  gptq round trips: %d checkpoints, %d modules bit-identical\n", cases, modules);
}

static void test_roundtrip_awq(void) {
    char a[512], b[512];
    snprintf(a, sizeof a, "%s", tmp_path("fxA2"));
    snprintf(b, sizeof b, "%s", tmp_path("fxB2"));
    write_fixture(a, &FX_A);
    write_fixture(b, &FX_B);
    int modules = 0;
    for (int fxi = 0; fxi < 2; fxi++)
        for (int64_t g = 32; g <= 64; g *= 2) {
            const char *src = fxi ? b : a, *out = tmp_path("awq");
            struct model m;
            struct hfx_model hm;
            T_OK(!model_load(&m, src) && !hfx_collect(&hm, &m, src, false));
            int n_float = 0;
            for (int i = 0; i < hm.n; i++) {
                struct hfx_tensor *t = &hm.t[i];
                if (!t->linear) continue;
                if (qformat_plan(true, t->K, t->N, 4, g, t->note, sizeof t->note) == QPLAN_FLOAT) {
                    n_float++;
                    continue;
                }
                const struct rtn_opts o = {.bits = 4, .group = g, .style = RTN_AWQ};
                T_OK(!rtn_quantize(t->f32, t->K, t->N, &o, t->module, &t->q, &t->qbuf));
                t->quantized = true;
            }
            struct hfx_stats st;
            T_OK(!awq_write(&hm, g, "test", NULL, out, &st));
            const int n = compare_export(&hm, out, DTYPE_QINT);
            T_EQ_INT(n + n_float, 14);
            T_EQ_INT(n_float, fxi && g == 64 ? 2 : 0); /* down_proj K = 96 with group 64 */
            modules += n;
            hfx_release(&hm);
            model_release(&m);
        }
    if (getenv("T_VERBOSE")) fprintf(stderr, "  awq round trips: %d modules bit-identical\n", modules);
}

static int bnb_case(const char *src, const char *out, const char *wd, bool dq, enum dtype want) {
    struct model m;
    if (model_load(&m, src)) {
        T_FAIL_("%s: %s", src, err_last());
        return 0;
    }
    const struct hf_recipe r = {.algorithm = "bnb", .weight_dtype = wd, .double_quant = dq};
    struct hfx_stats st;
    int n = 0;
    /* quantize through the recipe, then compare against an independent in-memory quantization */
    if (bnb_quantize_model(&m, src, &r, out, true, &st)) {
        T_FAIL_("bnb %s: %s", wd, err_last());
    } else {
        struct hfx_model hm;
        T_OK(!hfx_collect(&hm, &m, src, false));
        for (int i = 0; i < hm.n; i++) {
            struct hfx_tensor *t = &hm.t[i];
            if (!t->linear) continue;
            if (want == DTYPE_I8ROW) {
                int8_t *q = malloc((size_t)(t->N * t->K));
                float *scb = malloc((size_t)t->N * 4);
                bnb_quantize_int8(t->f32, t->K, t->N, q, scb);
                T_OK(!i8row_tensor_init(&t->q, t->module, t->K, t->N));
                t->qbuf = calloc(1, tensor_nbytes(&t->q));
                i8row_fill(&t->q, t->qbuf, q, scb);
                free(q), free(scb);
            } else {
                T_OK(!bnb_quantize_4bit(t->f32, t->K, t->N, want, 64, dq, &t->bnb));
                T_OK(!bnb_state_tensor(&t->bnb, t->module, &t->q, &t->qbuf));
            }
            t->quantized = true;
        }
        n = compare_export(&hm, out, want);
        hfx_release(&hm);
    }
    model_release(&m);
    return n;
}

static void test_roundtrip_bnb(void) {
    char b[512], c[512];
    snprintf(b, sizeof b, "%s", tmp_path("fxB3"));
    snprintf(c, sizeof c, "%s", tmp_path("fxC3"));
    write_fixture(b, &FX_B);
    write_fixture(c, &FX_C);
    int modules = 0;
    for (int fxi = 0; fxi < 2; fxi++) {
        const char *src = fxi ? c : b;
        const int want_n = 7 * (fxi ? FX_C.L : FX_B.L);
        for (int dq = 0; dq < 2; dq++) {
            int n = bnb_case(src, tmp_path("nf4"), "nf4", dq, DTYPE_NF4);
            T_EQ_INT(n, want_n);
            modules += n;
            n = bnb_case(src, tmp_path("fp4"), "fp4", dq, DTYPE_FP4);
            T_EQ_INT(n, want_n);
            modules += n;
        }
        const int n = bnb_case(src, tmp_path("int8"), "int8", false, DTYPE_I8ROW);
        T_EQ_INT(n, want_n);
        modules += n;
    }
    if (getenv("T_VERBOSE"))
        fprintf(stderr, "  bnb round trips (nf4/fp4 +-double quant, int8; K = 63, 87, 96): %d "
                        "modules bit-identical\n", modules);
}

/* ===== 3. bitsandbytes numerics by hand ===== */

static void test_bnb_tables(void) {
    /* REFERENCE.md C4, to the 7 decimals given there */
    static const double nf4_ref[16] = {-1.0,       -0.6961928, -0.5250731, -0.3949175,
                                       -0.2844414, -0.1847734, -0.0910500, 0.0,
                                       0.0795803,  0.1609302,  0.2461123,  0.3379152,
                                       0.4407098,  0.5626170,  0.7229568,  1.0};
    for (int i = 0; i < 16; i++) T_NEAR(nf4_table[i], nf4_ref[i], 5.1e-8);
    static const double fp4_mag[8] = {0, 0.0625, 8, 12, 4, 6, 2, 3};
    for (int i = 0; i < 8; i++) {
        T_NEAR(fp4_table[i], fp4_mag[i] / 12, 1e-7);
        T_NEAR(fp4_table[8 + i], -fp4_mag[i] / 12, 1e-7); /* bit 3 is the sign */
    }
    /* the dynamic map: 127 negatives, 0, 127 positives, 1.0, sorted; the smallest positive is
     * 1e-6·(0.1 + 1)/2, the largest below 1 is (linspace(0.1,1,65)[63] + 1)/2 */
    float code[256];
    bnb_dynamic_map(code);
    for (int i = 1; i < 256; i++) T_OK(code[i - 1] < code[i]);
    T_EQ_INT(code[127] == 0.0f, 1);
    T_EQ_INT(code[255] == 1.0f, 1);
    T_NEAR(code[128], 5.5e-7, 1e-13);
    T_NEAR(code[254], (0.1 + 0.9 * 63 / 64 + 1.0) / 2, 1e-7);
    T_NEAR(code[0], -code[254], 0);
}

static void test_bnb_hand_blocks(void) {
    /* one NF4 block of 64 with absmax 2: x/2 = 1, -0.5, 0.05, 0, -1, 0.6, then zeros.
     * Nearest NF4 codes by the midpoints: 1 -> 15; -0.5 between -0.5251 (2) and -0.3949 (3),
     * midpoint -0.4600 -> 2; 0.05 above the 0.0398 midpoint -> 8; 0 -> 7; -1 -> 0;
     * 0.6 below the 0.6428 midpoint -> 13. Packed high nibble first: F2 87 0D 77 ... */
    float x[64] = {2.0f, -1.0f, 0.1f, 0.0f, -2.0f, 1.2f};
    struct bnb_state s;
    T_OK(!bnb_quantize_4bit(x, 64, 1, DTYPE_NF4, 64, false, &s));
    T_EQ_INT(s.packed[0], 0xF2);
    T_EQ_INT(s.packed[1], 0x87);
    T_EQ_INT(s.packed[2], 0x0D);
    T_EQ_INT(s.packed[3], 0x77);
    T_NEAR(s.absmax[0], 2.0, 0);
    struct tensor t;
    void *buf;
    T_OK(!bnb_state_tensor(&s, "hand", &t, &buf));
    float y[64];
    tensor_row_to_f32(&t, 0, y);
    T_NEAR(y[1], -0.5250730514526367 * 2, 0);
    T_NEAR(y[5], 0.5626170039176941 * 2, 0);
    free(buf);
    bnb_state_release(&s);
    /* FP4, absmax 1: 0.6 -> between 0.5 (code 5) and 0.6667 (code 2), midpoint 0.5833 -> 2;
     * -0.3 -> between -0.3333 (12) and -0.25 (15), midpoint -0.2917 -> 12; 0.001 -> the upper zero
     * (code 8, argsort puts +0 of code 0 first); -0.001 and 0 -> code 0; 1 -> 3 */
    float xf[64] = {0.6f, -0.3f, 0.001f, -0.001f, 0.0f, 1.0f};
    T_OK(!bnb_quantize_4bit(xf, 64, 1, DTYPE_FP4, 64, false, &s));
    T_EQ_INT(s.packed[0], 0x2C);
    T_EQ_INT(s.packed[1], 0x80);
    T_EQ_INT(s.packed[2], 0x03);
    bnb_state_release(&s);
    /* blocks straddle rows: K = 172, row 1 starts at flat 172, inside block 2 (128..191) */
    float *w = malloc(2 * 172 * sizeof *w);
    for (int i = 0; i < 344; i++) w[i] = (float)(i % 7) - 3.0f + (i >= 128 && i < 192 ? 0.5f : 0);
    T_OK(!bnb_quantize_4bit(w, 172, 2, DTYPE_NF4, 64, false, &s));
    T_EQ_INT(s.n_blocks, 6);
    T_NEAR(s.absmax[2], 3.5, 0);
    T_OK(!bnb_state_tensor(&s, "straddle", &t, &buf));
    /* w[1][0] = flat 172: (172 % 7) - 3 + 0.5 = 1.5; 1.5/3.5 = 0.4286 lies between 0.3379 (code
     * 11) and 0.4407 (code 12), above their 0.3893 midpoint: code 12, in the high nibble of byte
     * 86 of the stream */
    float y2[172];
    tensor_row_to_f32(&t, 1, y2);
    T_NEAR(y2[0], nf4_table[12] * 3.5f, 0);
    T_EQ_INT(s.packed[86] >> 4, 12);
    free(buf), free(w);
    bnb_state_release(&s);
    /* double quant of 300 absmax values: offset = their mean, nested blocks of 256 (+ a partial
     * block of 44); each code is the dynamic-map value nearest (absmax - offset)/nested_absmax */
    const int64_t nb = 300;
    float *big = malloc((size_t)nb * 64 * sizeof *big);
    for (int64_t b = 0; b < nb; b++)
        for (int j = 0; j < 64; j++) big[b * 64 + j] = j == 5 ? 0.1f + 0.01f * (float)(b % 37) : 0.01f;
    T_OK(!bnb_quantize_4bit(big, 64, nb, DTYPE_NF4, 64, true, &s));
    double mean = 0;
    for (int64_t b = 0; b < nb; b++) mean += 0.1f + 0.01f * (float)(b % 37);
    mean /= (double)nb;
    T_NEAR(s.offset, mean, 1e-7);
    float code[256], am2[2] = {0, 0};
    bnb_dynamic_map(code);
    for (int64_t b = 0; b < nb; b++) {
        const float c = (0.1f + 0.01f * (float)(b % 37)) - s.offset;
        am2[b / 256] = fmaxf(am2[b / 256], fabsf(c));
    }
    T_NEAR(s.absmax2[0], am2[0], 0);
    T_NEAR(s.absmax2[1], am2[1], 0);
    int bad = 0;
    for (int64_t b = 0; b < nb; b++) {
        const float c = (0.1f + 0.01f * (float)(b % 37)) - s.offset;
        const float v = b < 256 ? c * (1.0f / am2[0]) : c / am2[1];
        int best = 0;
        for (int i = 1; i < 256; i++)
            if (fabsf(code[i] - v) < fabsf(code[best] - v)) best = i;
        bad += s.qabsmax[b] != best;
        /* the weights use the rebuilt absmax */
        bad += s.absmax[b] != code[s.qabsmax[b]] * s.absmax2[b / 256] + s.offset;
    }
    T_EQ_INT(bad, 0);
    free(big);
    bnb_state_release(&s);
    /* LLM.int8: row (1, -0.5, 0.25) -> SCB 1, q = round(127, -63.5, 31.75) = (127, -64, 32)
     * (half to even) */
    float r8[3] = {1.0f, -0.5f, 0.25f}, scb;
    int8_t q8[3];
    bnb_quantize_int8(r8, 3, 1, q8, &scb);
    T_NEAR(scb, 1.0, 0);
    T_EQ_INT(q8[0], 127);
    T_EQ_INT(q8[1], -64);
    T_EQ_INT(q8[2], 32);
}

/* the quant_state JSON is Python's json.dumps of the dict bitsandbytes packs */
static void test_bnb_quant_state_json(void) {
    char buf[64];
    hfx_py_float(buf, sizeof buf, 0.1f);
    T_EQ_STR(buf, "0.10000000149011612"); /* repr(float(torch.tensor(0.1))) */
    hfx_py_float(buf, sizeof buf, 2.0f);
    T_EQ_STR(buf, "2.0");
    hfx_py_float(buf, sizeof buf, 0.5f);
    T_EQ_STR(buf, "0.5");
    char src[512], out[512];
    snprintf(src, sizeof src, "%s", tmp_path("fxB4"));
    snprintf(out, sizeof out, "%s", tmp_path("nf4dq"));
    write_fixture(src, &FX_B);
    struct model m;
    T_OK(!model_load(&m, src));
    const struct hf_recipe r = {.algorithm = "bnb", .weight_dtype = "nf4", .double_quant = true};
    struct hfx_stats st;
    T_OK(!bnb_quantize_model(&m, src, &r, out, true, &st));
    model_release(&m);
    char p[600];
    snprintf(p, sizeof p, "%s/model.safetensors", out);
    struct safetensors sf = SAFETENSORS_INIT;
    T_OK(!safetensors_open(&sf, p));
    const struct safetensors_tensor *q =
        safetensors_find(&sf, "model.layers.0.mlp.down_proj.weight.quant_state.bitsandbytes__nf4");
    T_OK(q != NULL);
    if (q) {
        char js[512];
        snprintf(js, sizeof js, "%.*s", (int)q->nbytes, (const char *)q->data);
        static const char want[] =
            "{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": \"float32\", \"shape\": "
            "[64, 96], \"nested_blocksize\": 256, \"nested_dtype\": \"float32\", "
            "\"nested_offset\": ";
        T_OK(!strncmp(js, want, sizeof want - 1));
        /* the offset is the float32 mean, written as Python's repr of its double */
        float off = strtof(js + sizeof want - 1, NULL);
        char rep[64];
        hfx_py_float(rep, sizeof rep, off);
        T_OK(!strncmp(js + sizeof want - 1, rep, strlen(rep)) && js[sizeof want - 1 + strlen(rep)] == '}');
    }
    const struct safetensors_tensor *w = safetensors_find(&sf, "model.layers.0.mlp.down_proj.weight");
    T_OK(w && w->dtype == SAFETENSORS_U8 && w->n_dims == 2 && w->shape[0] == 64 * 96 / 2 && w->shape[1] == 1);
    safetensors_close(&sf);
}

/* ===== 4. corrupt or inconsistent checkpoints ===== */

/* rewrite dir/model.safetensors with tensor `name` replaced (dtype NULL: keep it) */
static void st_replace(const char *dir, const char *name, const char *dtype, int nd,
                       const int64_t *shape, const void *data, size_t nb) {
    char p[600];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    struct safetensors st = SAFETENSORS_INIT;
    T_OK(!safetensors_open(&st, p));
    struct safetensors_writer w = SAFETENSORS_WRITER_INIT;
    for (int i = 0; i < st.n_tensors; i++) {
        const struct safetensors_tensor *t = &st.tensors[i];
        if (!strcmp(t->name, name))
            T_OK(!safetensors_writer_add(&w, name, dtype ? dtype : safetensors_dtype_name(t->dtype),
                                         nd, shape, data, nb));
        else
            T_OK(!safetensors_writer_add(&w, t->name, safetensors_dtype_name(t->dtype), t->n_dims,
                                         t->shape, t->data, t->nbytes));
    }
    T_OK(!safetensors_writer_write(&w, p));
    safetensors_writer_release(&w);
    safetensors_close(&st);
}

/* copy a tensor's bytes out (owned) */
static void *st_get(const char *dir, const char *name, size_t *nb, int64_t *shape) {
    char p[600];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    struct safetensors st = SAFETENSORS_INIT;
    T_OK(!safetensors_open(&st, p));
    const struct safetensors_tensor *t = safetensors_find(&st, name);
    void *d = NULL;
    if (t) {
        d = malloc(t->nbytes + 1);
        memcpy(d, t->data, t->nbytes);
        *nb = t->nbytes;
        for (int i = 0; i < t->n_dims; i++) shape[i] = t->shape[i];
    } else {
        T_FAIL_("%s has no %s", dir, name);
    }
    safetensors_close(&st);
    return d;
}

static void cfg_set(const char *dir, const char *key, json_t *v) {
    char p[600];
    snprintf(p, sizeof p, "%s/config.json", dir);
    json_t *j = json_load_file(p, 0, NULL);
    json_object_set_new(json_object_get(j, "quantization_config"), key, v);
    json_dump_file(j, p, 0);
    json_decref(j);
}

/* model_load(dir) fails with a message containing `want` */
static void expect_refused(const char *dir, const char *want, const char *what) {
    struct model m;
    if (!model_load(&m, dir)) {
        T_FAIL_("%s: loaded a checkpoint with %s", dir, what);
        model_release(&m);
        return;
    }
    T_CONTAINS(err_last(), want);
    if (getenv("T_VERBOSE")) fprintf(stderr, "  refused (%s): %s\n", what, err_last());
}

static void fresh_export(const char *src, const char *out, const char *alg, const char *wd,
                         int bits, int64_t group, bool dq, const char *knobs) {
    struct model m;
    T_OK(!model_load(&m, src));
    const struct hf_recipe r = {.algorithm = alg, .weight_dtype = wd, .bits = bits,
                                .group_size = group, .double_quant = dq, .knobs = knobs};
    struct hfx_stats st;
    T_OK(!(strcmp(alg, "rtn") ? bnb_quantize_model(&m, src, &r, out, true, &st)
                              : rtn_quantize_model(&m, src, &r, out, true, &st)));
    model_release(&m);
}

static void test_corrupt(void) {
    char src[512];
    snprintf(src, sizeof src, "%s", tmp_path("fxA5"));
    write_fixture(src, &FX_A);
    const char *mod = "model.layers.1.self_attn.q_proj";
    char name[300];
    size_t nb;
    int64_t shape[4];
    /* qweight shape inconsistent with bits / in_features */
    const char *d = tmp_path("bad_qw");
    fresh_export(src, d, "rtn", NULL, 4, 32, false, NULL);
    snprintf(name, sizeof name, "%s.qweight", mod);
    void *qw = st_get(d, name, &nb, shape);
    const int64_t s_bad[2] = {shape[0] - 1, shape[1]};
    st_replace(d, name, NULL, 2, s_bad, qw, nb - (size_t)shape[1] * 4);
    expect_refused(d, "qweight is [7, 64] (expected [8, 64]: GPTQ 4-bit, in_features 64", "a short qweight");
    free(qw);
    /* scales NaN */
    d = tmp_path("bad_nan");
    fresh_export(src, d, "rtn", NULL, 4, 32, false, NULL);
    snprintf(name, sizeof name, "%s.scales", mod);
    uint16_t *sc = st_get(d, name, &nb, shape);
    sc[3] = 0x7e00;
    st_replace(d, name, NULL, 2, shape, sc, nb);
    expect_refused(d, "scales[0][3] is NaN", "a NaN scale");
    free(sc);
    /* g_idx out of range */
    d = tmp_path("bad_gidx");
    fresh_export(src, d, "rtn", NULL, 4, 32, false, NULL);
    snprintf(name, sizeof name, "%s.g_idx", mod);
    int32_t *gi = st_get(d, name, &nb, shape);
    gi[5] = 7;
    st_replace(d, name, NULL, 1, shape, gi, nb);
    expect_refused(d, "g_idx[5] = 7 is out of range (expected 0 to 1", "g_idx out of range");
    /* g_idx in range but not group_size per group */
    gi[5] = 1;
    st_replace(d, name, NULL, 1, shape, gi, nb);
    expect_refused(d, "g_idx puts 31 input features in group 0 (expected 32", "uneven g_idx groups");
    free(gi);
    /* config bits 5 */
    d = tmp_path("bad_bits");
    fresh_export(src, d, "rtn", NULL, 4, 32, false, NULL);
    cfg_set(d, "bits", json_integer(5));
    expect_refused(d, "GPTQ bits 5 is not supported", "bits 5");
    /* AWQ gemv */
    d = tmp_path("bad_gemv");
    fresh_export(src, d, "rtn", NULL, 4, 32, false, "{\"format\": \"awq\"}");
    cfg_set(d, "version", json_string("gemv"));
    expect_refused(d, "AWQ version 'gemv' is not supported", "awq gemv");
    /* bnb quant_state JSON missing a field, and a blocksize that disagrees with absmax */
    d = tmp_path("bad_qs");
    fresh_export(src, d, "bnb", "nf4", 0, 0, true, NULL);
    snprintf(name, sizeof name, "%s.weight.quant_state.bitsandbytes__nf4", mod);
    const char *js = "{\"quant_type\": \"nf4\", \"dtype\": \"float32\", \"shape\": [64, 64]}";
    int64_t s_js[1] = {(int64_t)strlen(js)};
    st_replace(d, name, NULL, 1, s_js, js, strlen(js));
    expect_refused(d, "lacks 'blocksize'", "quant_state without blocksize");
    js = "{\"quant_type\": \"nf4\", \"blocksize\": 128, \"dtype\": \"float32\", \"shape\": [64, "
         "64], \"nested_blocksize\": 256, \"nested_dtype\": \"float32\", \"nested_offset\": 0.5}";
    s_js[0] = (int64_t)strlen(js);
    st_replace(d, name, NULL, 1, s_js, js, strlen(js));
    expect_refused(d, "absmax is U8 [64] (expected U8 [32]: 4096 weights in blocks of 128; "
                      "blocksize mismatch?)", "blocksize mismatch");
    js = "{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": \"float32\", \"shape\": [64, 64]}";
    s_js[0] = (int64_t)strlen(js);
    st_replace(d, name, NULL, 1, s_js, js, strlen(js));
    expect_refused(d, "lacks 'nested_blocksize'", "double quant without nested fields");
    /* an unknown quant_method */
    d = tmp_path("bad_method");
    fresh_export(src, d, "rtn", NULL, 8, 32, false, NULL);
    cfg_set(d, "quant_method", json_string("hqq"));
    expect_refused(d, "quant_method 'hqq' is not supported", "an unknown quant_method");
}

/* ===== real model: stories260K (GGUF, interleaved rotary rows) -> GPTQ int8 directory ===== */

static void test_stories260k_export(void) {
    const char *g = T_DATA("models/stories260K.gguf");
    if (!g) return;
    char gp[512], out[512];
    snprintf(gp, sizeof gp, "%s", g);
    snprintf(out, sizeof out, "%s", tmp_path("s260k_int8"));
    struct model m, m2;
    T_OK(!model_load(&m, gp));
    const struct hf_recipe r = {.algorithm = "rtn", .weight_dtype = "int8", .group_size = 32, .sym = true};
    struct hfx_stats st;
    T_OK(!rtn_quantize_model(&m, gp, &r, out, true, &st));
    /* q, k, v, o of 5 layers; the MLP (172 wide: AutoGPTQ holds multiples of 32) stays float */
    T_EQ_INT(st.n_modules_q, 20);
    T_EQ_INT(st.n_per_channel, 0);
    char cfgp[600];
    snprintf(cfgp, sizeof cfgp, "%s/config.json", out);
    json_t *cfg = json_load_file(cfgp, 0, NULL);
    json_t *qc = json_object_get(cfg, "quantization_config");
    T_EQ_STR(json_string_value(json_object_get(qc, "format")), "gptq");
    T_EQ_STR(json_string_value(json_object_get(qc, "checkpoint_format")), "gptq");
    json_decref(cfg);
    T_OK(!model_load(&m2, out));
    /* q/k rows: HF row h·hd + s·hd/2 + i is GGUF row h·hd + 2i + s */
    const struct tensor *src = model_find_tensor(&m, "blk.2.attn_q.weight"),
                        *dst = model_find_tensor(&m2, "blk.2.attn_q.weight");
    T_OK(src && dst && dst->type == DTYPE_QINT);
    if (src && dst) {
        const int64_t K = src->ne[0], N = tensor_nrows(src), hd = m.cfg.head_dim;
        float a[64], b[64];
        double e_ok = 0, e_id = 0, amax = 0;
        for (int64_t rr = 0; rr < N; rr++) {
            const int64_t h = rr / hd, w = rr % hd, sx = w / (hd / 2), i = w % (hd / 2);
            tensor_row_to_f32(dst, rr, b);
            tensor_row_to_f32(src, h * hd + 2 * i + sx, a);
            for (int64_t k = 0; k < K; k++) e_ok = fmax(e_ok, fabs((double)a[k] - b[k]));
            for (int64_t k = 0; k < K; k++) amax = fmax(amax, fabs((double)a[k]));
            tensor_row_to_f32(src, rr, a);
            for (int64_t k = 0; k < K; k++) e_id = fmax(e_id, fabs((double)a[k] - b[k]));
        }
        T_OK(e_ok <= amax / 127); /* 8-bit sym groups: at most half a step of 2·amax/255 */
        T_OK(e_id > 10 * e_ok);   /* and the rows really moved */
    }
    /* the tokenizer.json made from the GGUF vocab encodes as the GGUF tokenizer does */
    const char *tx = T_DATA("datasets/tinystories/tinystories-valid.txt.1000");
    struct tokenizer *t1 = NULL, *t2 = NULL;
    char tj[600];
    snprintf(tj, sizeof tj, "%s/tokenizer.json", out);
    T_OK(!tokenizer_from_gguf(&t1, m.gguf) && !tokenizer_load(&t2, tj));
    FILE *f = tx ? fopen(tx, "rb") : NULL;
    if (f && t1 && t2) {
        static char text[40000];
        const size_t n = fread(text, 1, sizeof text, f);
        int *i1, *i2, n1, n2;
        T_OK(!tokenizer_encode(t1, text, n, true, &i1, &n1) && !tokenizer_encode(t2, text, n, true, &i2, &n2));
        T_EQ_INT(n1, n2);
        T_OK(n1 == n2 && !memcmp(i1, i2, (size_t)n1 * sizeof *i1));
        free(i1), free(i2);
    }
    if (f) fclose(f);
    tokenizer_free(t1), tokenizer_free(t2);
    model_release(&m2);
    model_release(&m);
}

int main(void) {
    err_set_quiet(true);
    T_RUN(test_kernels_qint);
    T_RUN(test_kernels_bnb);
    T_RUN(test_kernels_all_settings);
    T_RUN(test_kernels_gemm_blocking);
    T_RUN(test_rtn_rules);
    T_RUN(test_roundtrip_gptq);
    T_RUN(test_roundtrip_awq);
    T_RUN(test_roundtrip_bnb);
    T_RUN(test_bnb_tables);
    T_RUN(test_bnb_hand_blocks);
    T_RUN(test_bnb_quant_state_json);
    T_RUN(test_corrupt);
    T_RUN(test_stories260k_export);
    return T_DONE();
}
