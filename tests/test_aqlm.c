/* tests/test_aqlm.c: AQLM (kernels/aqlm.c, quant/aqlm.c, the eval/hf.c loader).
 *
 *  (a) kernel: the lookup-table path and the dequantizing GEMM (every ISA the CPU has) against
 *      the scalar oracle at awkward sizes (N, K not multiples of any tile; T = 1, 3, 17; M = 1, 2,
 *      3; B = 4, 8, 16; in groups 4, 8, 6; out groups 1, 2), within the bound of kernels/aqlm.h;
 *      matmul() reaches the same code; results are bit-identical for 1 and 2 threads.
 *  (b) one layer: AQLM's output error ‖X·Wᵀ − X·Ŵᵀ‖ on its calibration inputs is below RTN
 *      int2's (GPTQ layout, group 32, the usual 2-bit baseline) at the same code bits (2 bits
 *      per weight: 2x4 g4, 1x8 g4, 2x8 g8), and the solver is deterministic for 1 and 2 threads.
 *  (c) format: a layer written by aqlm_write reloads through eval/hf.c (model_load) into a
 *      DTYPE_AQLM tensor whose matmul output is identical to the written tensor's; corrupt files
 *      (codes out of range, wrong codebook shape, missing scales, truncated) each give one clear
 *      error.
 *  (d) recipes: bad knobs and settings are refused with a message naming them.
 *  (e) stories260K (LOWBIT_DATA): `lowbit quant --recipe` with a small AQLM recipe (1x8 g4, 16
 *      windows of 128 tokens, block fine-tuning on) writes a checkpoint whose config.json is
 *      transformers' AqlmConfig and records the calibration and solver provenance, reloads packed
 *      (DTYPE_AQLM), and scores a finite held-out perplexity (measured 19.77; fp32 8.225). */
#include <jansson.h>
#include <stdint.h>
#include <sys/wait.h>

#include "eval/model.h"
#include "eval/safetensors.h"
#include "kernels/aqlm.h"
#include "kernels/matmul.h"
#include "kernels/qint.h"
#include "quant/aqlm.h"
#include "quant/quant.h"
#include "quant/rtn.h"
#include "tests/t.h"
#include "tests/t_cli.h"

/* a fixed LCG in [-1, 1) */
static uint32_t rng = 2024;
static float frand(void) {
    rng = rng * 1664525u + 1013904223u;
    return (float)((rng >> 8) / 8388608.0 - 1.0);
}
static unsigned urand(unsigned n) {
    rng = rng * 1664525u + 1013904223u;
    return (unsigned)(((uint64_t)(rng >> 4) * n) >> 28);
}

/* ===================================================================== (a) the kernel */

/* a random AQLM tensor: codebooks and scales fp16 values (as a checkpoint holds them) */
static void *make_aqlm(struct tensor *t, int64_t K, int64_t N, int M, int B, int gi, int go) {
    if (aqlm_tensor_init(t, "w", K, N, M, B, gi, go)) return NULL;
    void *buf = calloc(1, tensor_nbytes(t));
    if (!buf) return NULL;
    t->data = buf;
    const int64_t O = N / go, J = K / gi, S = (int64_t)1 << B;
    for (int64_t o = 0; o < O; o++)
        for (int64_t j = 0; j < J; j++)
            for (int m = 0; m < M; m++) aqlm_code_set(t, o, j, m, urand((unsigned)S));
    float *cb = aqlm_codebooks(t), *sc = aqlm_scales(t);
    for (int64_t e = 0; e < M * S * go * gi; e++) cb[e] = lb_fp16_to_f32(lb_f32_to_fp16(frand()));
    for (int64_t o = 0; o < O; o++)
        sc[o] = lb_fp16_to_f32(lb_f32_to_fp16(0.05f + frand() * frand()));
    return buf;
}

/* |y − ref| within aqlm.h's bound, per output; returns the number of violations */
static int check_bound(const char *tag, const struct tensor *w, const float *x, const float *y,
                       const float *ref, int T) {
    const int64_t K = w->ne[0], N = tensor_nrows(w);
    const int M = w->q_ncb, gi = w->q_group, go = w->q_out_group;
    const int64_t S = aqlm_codebook_size(w);
    const float *cb = aqlm_codebooks(w), *sc = aqlm_scales(w);
    const double gamma = 2.0 * (double)(K + M * K / gi + gi + 4) * 0x1p-24;
    int bad = 0;
    for (int t = 0; t < T; t++)
        for (int64_t n = 0; n < N; n++) {
            const int64_t o = n / go, i = n % go;
            double mag = 0;
            for (int64_t k = 0; k < K; k++)
                for (int m = 0; m < M; m++) {
                    const unsigned q = aqlm_code_get(w, o, k / gi, m);
                    mag += fabs((double)cb[((m * S + q) * go + i) * gi + k % gi] * x[t * K + k]);
                }
            const double tol = gamma * fabs((double)sc[o]) * mag + 1e-30;
            const double d = fabs((double)y[t * N + n] - ref[t * N + n]);
            if (!(d <= tol)) {
                if (!bad)
                    T_FAIL_("%s: y[%d][%lld] = %.9g, reference %.9g (diff %.3g > bound %.3g)", tag,
                            t, (long long)n, (double)y[t * N + n], (double)ref[t * N + n], d, tol);
                bad++;
            }
        }
    return bad;
}

struct kcase {
    int64_t K, N;
    int M, B, gi, go;
};

static void test_kernel(void) {
    static const struct kcase cases[] = {
        {72, 37, 2, 8, 8, 1},  {40, 33, 1, 8, 8, 1},   {64, 300, 2, 8, 8, 1},
        {96, 70, 1, 16, 8, 1}, {48, 9, 2, 16, 8, 1},   {36, 50, 2, 4, 4, 1},
        {60, 34, 3, 6, 6, 2},  {200, 64, 1, 8, 4, 2},  {172, 64, 2, 4, 4, 1},
        {8, 5, 1, 1, 8, 1},
    };
    static const int toks[] = {1, 3, 17};
    static const char *const isas[] = {"generic", "avx2", "avx512"};
    for (size_t ci = 0; ci < LB_ARRAY_LEN(cases); ci++) {
        const struct kcase *c = &cases[ci];
        struct tensor w;
        void *buf = make_aqlm(&w, c->K, c->N, c->M, c->B, c->gi, c->go);
        T_OK(buf != NULL);
        if (!buf) continue;
        const int Tm = 17;
        float *x = malloc(sizeof(float) * (size_t)(Tm * c->K));
        float *ref = malloc(sizeof(float) * (size_t)(Tm * c->N)),
              *y = malloc(sizeof(float) * (size_t)(Tm * c->N)),
              *y2 = malloc(sizeof(float) * (size_t)(Tm * c->N));
        for (int64_t i = 0; i < Tm * c->K; i++) x[i] = frand() * (i % 13 == 0 ? 8.0f : 1.0f);
        for (size_t ti = 0; ti < LB_ARRAY_LEN(toks); ti++) {
            const int T = toks[ti];
            char tag[160];
            aqlm_matmul_ref(ref, x, &w, T);
            /* the oracle is matmul_ref's value (tensor_row_to_f32 reaches aqlm_row_to_f32) */
            matmul_ref(y, x, &w, T);
            T_OK(!memcmp(y, ref, sizeof(float) * (size_t)(T * c->N)));
            snprintf(tag, sizeof tag, "K%lld N%lld %dx%d g%d og%d T%d", (long long)c->K,
                     (long long)c->N, c->M, c->B, c->gi, c->go, T);
            if (c->B <= 8) {
                char t2[200];
                snprintf(t2, sizeof t2, "%s lut", tag);
                T_OK(!aqlm_matmul_lut(y, x, &w, T));
                check_bound(t2, &w, x, y, ref, T);
            } else {
                T_ERR(aqlm_matmul_lut(y, x, &w, T));
            }
            for (size_t ii = 0; ii < LB_ARRAY_LEN(isas); ii++) {
                char t2[200];
                snprintf(t2, sizeof t2, "%s gemm %s", tag, isas[ii]);
                if (aqlm_matmul_gemm(y, x, &w, T, isas[ii])) {
                    T_OK(ii > 0); /* generic always runs */
                    continue;
                }
                check_bound(t2, &w, x, y, ref, T);
            }
            /* matmul() is the dispatch: same as its chosen path, identical for 1 and 2 threads */
            lb_set_threads(1);
            matmul(y, x, &w, T);
            lb_set_threads(2);
            matmul(y2, x, &w, T);
            check_bound(tag, &w, x, y, ref, T);
            T_OK(!memcmp(y, y2, sizeof(float) * (size_t)(T * c->N)));
        }
        free(x), free(ref), free(y), free(y2), free(buf);
    }
    /* big enough for the parallel paths: 1 vs 2 threads, both paths */
    struct tensor w;
    void *buf = make_aqlm(&w, 512, 1024, 2, 8, 8, 1);
    float *x = malloc(sizeof(float) * 4 * 512), *y1 = malloc(sizeof(float) * 4 * 1024),
          *y2 = malloc(sizeof(float) * 4 * 1024);
    for (int i = 0; i < 4 * 512; i++) x[i] = frand();
    lb_set_threads(1);
    T_OK(!aqlm_matmul_lut(y1, x, &w, 4));
    lb_set_threads(2);
    T_OK(!aqlm_matmul_lut(y2, x, &w, 4));
    T_OK(!memcmp(y1, y2, sizeof(float) * 4 * 1024));
    lb_set_threads(1);
    T_OK(!aqlm_matmul_gemm(y1, x, &w, 4, "generic"));
    lb_set_threads(2);
    T_OK(!aqlm_matmul_gemm(y2, x, &w, 4, "generic"));
    T_OK(!memcmp(y1, y2, sizeof(float) * 4 * 1024));
    lb_set_threads(1); /* the rest runs on one thread unless it says otherwise */
    /* layout errors */
    struct tensor bad;
    T_ERR(aqlm_tensor_init(&bad, "b", 60, 32, 2, 8, 8, 1)); /* 8 does not divide 60 */
    T_CONTAINS(err_last(), "in_group_size 8");
    T_ERR(aqlm_tensor_init(&bad, "b", 64, 33, 2, 8, 8, 2));
    T_ERR(aqlm_tensor_init(&bad, "b", 64, 32, 0, 8, 8, 1));
    T_ERR(aqlm_tensor_init(&bad, "b", 64, 32, 1, 17, 8, 1));
    free(x), free(y1), free(y2), free(buf);
}

/* ===================================================================== (b) one layer */

#define LK 256
#define LN 128
#define L_SAMPLES 4
#define L_TPER 64
#define L_T (L_SAMPLES * L_TPER)
static float lw[LN * LK], lx[L_T * LK];
static double lH[LK * LK];

/* W with a few large weights; X = Z·A (mixed columns) with unequal column scales, so H is far
 * from diagonal; H = XᵀX/T (the reference's XTX) */
static void make_layer(void) {
    static float a[LK * LK], z[L_T * LK];
    rng = 77;
    for (int i = 0; i < LN * LK; i++) lw[i] = 0.1f * frand() + (i % 37 == 0 ? 0.4f * frand() : 0);
    for (int i = 0; i < LK * LK; i++) a[i] = frand() + (i % (LK + 1) == 0 ? 2.0f : 0.0f);
    for (int i = 0; i < L_T * LK; i++) z[i] = frand();
    for (int t = 0; t < L_T; t++)
        for (int k = 0; k < LK; k++) {
            double s = 0;
            for (int j = 0; j < LK; j++) s += (double)z[t * LK + j] * a[j * LK + k];
            lx[t * LK + k] = (float)s * (0.1f + 3.0f * (float)((k * 7) % LK) / LK);
        }
    for (int i = 0; i < LK; i++)
        for (int j = 0; j < LK; j++) {
            double s = 0;
            for (int t = 0; t < L_T; t++) s += (double)lx[t * LK + i] * lx[t * LK + j];
            lH[i * LK + j] = s / L_T;
        }
}

/* ‖X·(W − Ŵ)ᵀ‖_F with Ŵ the dequantized t */
static double out_err(const struct tensor *t) {
    static float deq[LK];
    double e = 0;
    for (int n = 0; n < LN; n++) {
        tensor_row_to_f32(t, n, deq);
        for (int r = 0; r < L_T; r++) {
            double s = 0;
            for (int k = 0; k < LK; k++) s += (double)lx[r * LK + k] * (lw[n * LK + k] - deq[k]);
            e += s * s;
        }
    }
    return sqrt(e);
}

static void test_layer(void) {
    make_layer();
    const struct rtn_opts ro = {.bits = 2, .group = 32, .sym = false, .style = RTN_GPTQ,
                                .zero_min = 1};
    struct tensor rt;
    void *rbuf = NULL;
    T_OK(!rtn_quantize(lw, LK, LN, &ro, "rtn", &rt, &rbuf));
    const double e_rtn = rbuf ? out_err(&rt) : 0;
    free(rbuf);
    /* bits per weight in the files: GPTQ int2 g32 = 2 + (16 + 2)/32 + 32/N (qweight, scales,
     * qzeros, g_idx); AQLM = codes as stored (int8) + fp16 codebooks and scales */
    const double b_rtn = 2 + 18.0 / 32 + 32.0 / LN;
    /* 2-bit codes: 1x8 g4 (2.56 bits/weight in the file here), 2x8 g8 and 2x4 g4 (whose 4-bit
     * codes the file stores as int8), and 1x8 g4 with a beam of 3 */
    static const int schemes[][4] = {{1, 8, 4, 1}, {2, 4, 4, 1}, {2, 8, 8, 1}, {1, 8, 4, 3}};
    for (size_t i = 0; i < LB_ARRAY_LEN(schemes); i++) {
        struct aqlm_opts o = AQLM_OPTS_DEFAULT;
        o.num_codebooks = schemes[i][0], o.nbits = schemes[i][1], o.in_group = schemes[i][2];
        o.beam_size = schemes[i][3];
        o.max_epochs = 6;
        struct tensor t;
        void *buf = NULL;
        struct aqlm_layer_stats st;
        char tag[64];
        snprintf(tag, sizeof tag, "%dx%d g%d beam %d", o.num_codebooks, o.nbits, o.in_group,
                 o.beam_size);
        if (aqlm_quantize_layer(lw, LK, LN, lH, &o, "layer", &t, &buf, &st)) {
            T_FAIL_("%s: aqlm_quantize_layer failed: %s", tag, err_last());
            continue;
        }
        const double e = out_err(&t);
        const double b_aq = (8.0 * (double)o.num_codebooks * LN * LK / o.in_group +
                             16.0 * (double)(o.num_codebooks << o.nbits) * o.in_group + 16.0 * LN) /
                            (LN * LK);
        if (!(e < e_rtn))
            T_FAIL_("%s: AQLM output error %g is not below RTN int2's %g", tag, e, e_rtn);
        if (i == 0) T_OK(b_aq <= b_rtn); /* the same-bits comparison */
        /* the reported loss is the stored weights' ‖X(W − Ŵ)ᵀ‖²/T per row */
        T_NEAR(st.loss * LN, e * e / L_T, 1e-6 * e * e / L_T);
        T_OK(st.loss < st.loss_init && st.epochs >= 1);
        if (getenv("T_VERBOSE"))
            fprintf(stderr, "  %s: output error %.4g at %.3f bits/weight (RTN int2 g32 %.4g at "
                    "%.3f), relative MSE %.4g, %d epochs\n", tag, e, b_aq, e_rtn, b_rtn,
                    st.rel_mse, st.epochs);
        free(buf);
    }
    /* identical for 1 and 2 threads */
    struct aqlm_opts o = AQLM_OPTS_DEFAULT;
    o.num_codebooks = 2, o.nbits = 6, o.in_group = 4, o.out_group = 2, o.max_epochs = 3;
    o.beam_size = 2, o.seed = 9;
    struct tensor t1, t2;
    void *b1 = NULL, *b2 = NULL;
    struct aqlm_layer_stats s1, s2;
    lb_set_threads(1);
    T_OK(!aqlm_quantize_layer(lw, LK, LN, lH, &o, "t1", &t1, &b1, &s1));
    lb_set_threads(2);
    T_OK(!aqlm_quantize_layer(lw, LK, LN, lH, &o, "t2", &t2, &b2, &s2));
    lb_set_threads(1);
    if (b1 && b2) {
        T_EQ_INT(tensor_nbytes(&t1), tensor_nbytes(&t2));
        T_OK(!memcmp(b1, b2, tensor_nbytes(&t1)));
        T_OK(s1.loss == s2.loss);
        T_OK(out_err(&t1) < e_rtn);
    }
    free(b1), free(b2);
    /* bad settings */
    struct tensor t;
    void *buf = NULL;
    struct aqlm_layer_stats st;
    o = (struct aqlm_opts)AQLM_OPTS_DEFAULT;
    o.in_group = 5; /* 5 does not divide 128 */
    T_ERR(aqlm_quantize_layer(lw, LK, LN, lH, &o, "g5", &t, &buf, &st));
    T_CONTAINS(err_last(), "in_group_size 5");
    o.in_group = 8, o.beam_size = 0;
    T_ERR(aqlm_quantize_layer(lw, LK, LN, lH, &o, "beam0", &t, &buf, &st));
    T_OK(buf == NULL);
}

/* ===================================================================== (c) the checkpoint */

static int copy_file(const char *from, const char *to, long truncate_to) {
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    int rc = a && b ? 0 : -1;
    char buf[65536];
    long done = 0;
    size_t k;
    while (!rc && (k = fread(buf, 1, sizeof buf, a))) {
        if (truncate_to >= 0 && done + (long)k > truncate_to) k = (size_t)(truncate_to - done);
        if (fwrite(buf, 1, k, b) != k) rc = -1;
        done += (long)k;
        if (truncate_to >= 0 && done >= truncate_to) break;
    }
    if (a) fclose(a);
    if (b) fclose(b);
    return rc;
}

/* DIR/config.json with quantization_config.key = value (an integer) */
static int set_qc_int(const char *dir, const char *key, int value) {
    char p[600];
    snprintf(p, sizeof p, "%s/config.json", dir);
    json_t *c = json_load_file(p, 0, NULL);
    if (!c) return -1;
    json_object_set_new(json_object_get(c, "quantization_config"), key, json_integer(value));
    const int rc = json_dump_file(c, p, JSON_INDENT(2));
    json_decref(c);
    return rc;
}

/* a copy of dir's checkpoint: config.json, and model.safetensors without tensor `drop` (NULL:
 * all), truncated to `truncate_to` bytes (< 0: whole) */
static int copy_ckpt(const char *dir, const char *to, const char *drop, long truncate_to) {
    char a[600], b[600], cmd[1400];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", to);
    if (system(cmd)) return -1;
    snprintf(a, sizeof a, "%s/config.json", dir);
    snprintf(b, sizeof b, "%s/config.json", to);
    if (copy_file(a, b, -1)) return -1;
    snprintf(a, sizeof a, "%s/model.safetensors", dir);
    snprintf(b, sizeof b, "%s/model.safetensors", to);
    if (!drop) return copy_file(a, b, truncate_to);
    struct safetensors st = SAFETENSORS_INIT;
    struct safetensors_writer w = SAFETENSORS_WRITER_INIT;
    int rc = safetensors_open(&st, a);
    for (int i = 0; !rc && i < st.n_tensors; i++) {
        const struct safetensors_tensor *t = &st.tensors[i];
        if (strcmp(t->name, drop))
            rc = safetensors_writer_add(&w, t->name, safetensors_dtype_name(t->dtype), t->n_dims,
                                        t->shape, t->data, t->nbytes);
    }
    if (!rc) rc = safetensors_writer_write(&w, b);
    safetensors_writer_release(&w);
    safetensors_close(&st);
    return rc;
}

/* quantize blk.0 q, blk.1 down and blk.2 gate of m (identity H, a short solve) with scheme o and
 * write the checkpoint to dir; the export stays in *hm (release it) */
static int write_ckpt(const struct model *m, const char *src, const struct aqlm_opts *o,
                      const char *dir, struct hfx_model *hm) {
    static const char *const names[] = {"blk.0.attn_q.weight", "blk.1.ffn_down.weight",
                                        "blk.2.ffn_gate.weight"};
    if (hfx_collect(hm, m, src, false)) return -1;
    for (int i = 0; i < hm->n; i++) {
        struct hfx_tensor *t = &hm->t[i];
        bool want = false;
        for (size_t k = 0; k < LB_ARRAY_LEN(names); k++) want |= !strcmp(t->src->name, names[k]);
        if (!want) continue;
        double *H = calloc((size_t)(t->K * t->K), sizeof *H);
        for (int64_t k = 0; k < t->K; k++) H[k * t->K + k] = 1.0;
        struct aqlm_layer_stats st;
        const int rc =
            aqlm_quantize_layer(t->f32, t->K, t->N, H, o, t->module, &t->q, &t->qbuf, &st);
        free(H);
        if (rc) return -1;
        t->quantized = true;
    }
    struct hfx_stats hs;
    json_t *extra = json_pack("{s:s}", "note", "test");
    const int rc = aqlm_write(hm, o, extra, dir, &hs);
    json_decref(extra);
    return rc;
}

static void test_checkpoint(void) {
    const char *mp = T_DATA("models/stories260K.gguf");
    if (!mp) return;
    char src[4096];
    snprintf(src, sizeof src, "%s", mp);
    struct model m = MODEL_INIT;
    T_OK(!model_load(&m, src));
    if (!m.layers) return;
    /* 1x8 g4 (I8 codes), 2x6 g4 out 2 (I8, wrapped), 1x10 g4 (I16, wrapped) */
    static const int schemes[][4] = {{1, 8, 4, 1}, {2, 6, 4, 2}, {1, 10, 4, 1}};
    char dirs[3][400];
    for (size_t si = 0; si < LB_ARRAY_LEN(schemes); si++) {
        struct aqlm_opts o = AQLM_OPTS_DEFAULT;
        o.num_codebooks = schemes[si][0], o.nbits = schemes[si][1], o.in_group = schemes[si][2];
        o.out_group = schemes[si][3], o.max_epochs = 1, o.init_max_iter = 5;
        snprintf(dirs[si], sizeof dirs[si], "%s/ckpt%zu", t_tmpdir(), si);
        struct hfx_model hm;
        if (write_ckpt(&m, src, &o, dirs[si], &hm)) {
            T_FAIL_("scheme %zu: writing failed: %s", si, err_last());
            hfx_release(&hm);
            continue;
        }
        struct model q = MODEL_INIT;
        T_OK(!model_load(&q, dirs[si]));
        int n_aqlm = 0;
        for (int i = 0; q.layers && i < hm.n; i++) {
            const struct hfx_tensor *t = &hm.t[i];
            if (!t->quantized) continue;
            const struct tensor *l = model_find_tensor(&q, t->src->name);
            T_OK(l != NULL);
            if (!l) continue;
            n_aqlm++;
            T_EQ_INT(l->type, DTYPE_AQLM);
            T_EQ_INT(l->q_ncb, o.num_codebooks);
            T_EQ_INT(l->q_bits, o.nbits);
            T_EQ_INT(l->q_out_group, o.out_group);
            /* the same bytes, hence the same products */
            T_EQ_INT(tensor_nbytes(l), tensor_nbytes(&t->q));
            T_OK(!memcmp(l->data, t->q.data, tensor_nbytes(l)));
            const int T = 5;
            float *x = malloc(sizeof(float) * (size_t)(T * t->K));
            float *y1 = malloc(sizeof(float) * (size_t)(T * t->N));
            float *y2 = malloc(sizeof(float) * (size_t)(T * t->N));
            for (int64_t e = 0; e < T * t->K; e++) x[e] = frand();
            matmul(y1, x, l, T);
            matmul(y2, x, &t->q, T);
            T_OK(!memcmp(y1, y2, sizeof(float) * (size_t)(T * t->N)));
            free(x), free(y1), free(y2);
        }
        T_EQ_INT(n_aqlm, 3);
        if (q.layers) T_EQ_INT(q.layers[0].lin[LIN_K].type, DTYPE_F32); /* not quantized: float */
        model_release(&q);
        hfx_release(&hm);
        /* the config transformers' AqlmConfig reads */
        char cp[1300];
        snprintf(cp, sizeof cp, "%s/config.json", dirs[si]);
        json_t *cfg = json_load_file(cp, 0, NULL);
        json_t *qc = json_object_get(cfg, "quantization_config");
        T_OK(qc != NULL);
        if (qc) {
            T_EQ_STR(json_string_value(json_object_get(qc, "quant_method")), "aqlm");
            T_EQ_INT(json_integer_value(json_object_get(qc, "num_codebooks")), o.num_codebooks);
            T_EQ_INT(json_integer_value(json_object_get(qc, "nbits_per_codebook")), o.nbits);
            T_EQ_INT(json_integer_value(json_object_get(qc, "in_group_size")), o.in_group);
            T_EQ_INT(json_integer_value(json_object_get(qc, "out_group_size")), o.out_group);
            json_t *sk = json_object_get(qc, "linear_weights_not_to_quantize");
            bool lm = false, k0 = false, q0 = false;
            for (size_t i = 0; i < json_array_size(sk); i++) {
                const char *n = json_string_value(json_array_get(sk, i));
                lm |= !strcmp(n, "lm_head.weight");
                k0 |= !strcmp(n, "model.layers.0.self_attn.k_proj.weight");
                q0 |= !strcmp(n, "model.layers.0.self_attn.q_proj.weight");
            }
            T_OK(lm && k0 && !q0);
        }
        json_decref(cfg);
    }
    model_release(&m);
    /* the tensors as aqlm.QuantizedLinear names them, codes wrapped by pack_int_data */
    char p[600];
    snprintf(p, sizeof p, "%s/model.safetensors", dirs[1]);
    struct safetensors st = SAFETENSORS_INIT;
    T_OK(!safetensors_open(&st, p));
    const struct safetensors_tensor *c =
        safetensors_find(&st, "model.layers.1.mlp.down_proj.codes");
    const struct safetensors_tensor *b =
        safetensors_find(&st, "model.layers.1.mlp.down_proj.codebooks");
    const struct safetensors_tensor *s =
        safetensors_find(&st, "model.layers.1.mlp.down_proj.scales");
    T_OK(c && b && s);
    if (c && b && s) {
        T_EQ_INT(c->dtype, SAFETENSORS_I8);
        T_EQ_INT(c->n_dims, 3);
        T_EQ_INT(c->shape[0], 32);
        T_EQ_INT(c->shape[1], 43);
        T_EQ_INT(c->shape[2], 2);
        T_EQ_INT(b->dtype, SAFETENSORS_F16);
        T_EQ_INT(b->shape[0], 2);
        T_EQ_INT(b->shape[1], 64);
        T_EQ_INT(b->shape[2], 2);
        T_EQ_INT(b->shape[3], 4);
        T_EQ_INT(s->n_dims, 4);
        T_EQ_INT(s->shape[0], 32);
        T_EQ_INT(s->shape[3], 1);
        int lo = 0, hi = 0;
        for (size_t i = 0; i < c->nbytes; i++) {
            lo = LB_MIN(lo, ((const int8_t *)c->data)[i]);
            hi = LB_MAX(hi, ((const int8_t *)c->data)[i]);
        }
        T_OK(lo >= -32 && lo < 0 && hi <= 31); /* 6-bit codes >= 32 stored negative */
    }
    safetensors_close(&st);
    snprintf(p, sizeof p, "%s/model.safetensors", dirs[2]);
    T_OK(!safetensors_open(&st, p));
    c = safetensors_find(&st, "model.layers.0.self_attn.q_proj.codes");
    T_OK(c && c->dtype == SAFETENSORS_I16);
    safetensors_close(&st);

    /* corrupt checkpoints: one clear error each */
    struct model bad = MODEL_INIT;
    char d[500];
    snprintf(d, sizeof d, "%s/bad-shape", t_tmpdir()); /* config says 7 bits, file has 6 */
    T_OK(!copy_ckpt(dirs[1], d, NULL, -1) && !set_qc_int(d, "nbits_per_codebook", 7));
    T_ERR(model_load(&bad, d));
    T_CONTAINS(err_last(), "codebooks is [2, 64, 2, 4] (expected [2, 128, 2, 4]");
    model_release(&bad);
    snprintf(d, sizeof d, "%s/bad-dtype", t_tmpdir()); /* 12 bits want I16 codes */
    T_OK(!copy_ckpt(dirs[0], d, NULL, -1) && !set_qc_int(d, "nbits_per_codebook", 12));
    T_ERR(model_load(&bad, d));
    model_release(&bad);
    snprintf(d, sizeof d, "%s/bad-range", t_tmpdir()); /* 6-bit codes must be -32..63 */
    T_OK(!copy_ckpt(dirs[1], d, NULL, -1) && !set_qc_int(d, "nbits_per_codebook", 5) &&
         !set_qc_int(d, "num_codebooks", 2));
    T_ERR(model_load(&bad, d)); /* codebooks [2, 64] vs 5 bits: a shape error first */
    model_release(&bad);
    snprintf(d, sizeof d, "%s/bad-scales", t_tmpdir());
    T_OK(!copy_ckpt(dirs[0], d, "model.layers.1.mlp.down_proj.scales", -1));
    T_ERR(model_load(&bad, d));
    T_CONTAINS(err_last(), "down_proj.scales is missing");
    model_release(&bad);
    snprintf(d, sizeof d, "%s/bad-trunc", t_tmpdir());
    T_OK(!copy_ckpt(dirs[0], d, NULL, 300000));
    T_ERR(model_load(&bad, d));
    model_release(&bad);
    snprintf(d, sizeof d, "%s/bad-method", t_tmpdir()); /* a scheme the loader refuses */
    T_OK(!copy_ckpt(dirs[0], d, NULL, -1) && !set_qc_int(d, "in_group_size", 0));
    T_ERR(model_load(&bad, d));
    T_CONTAINS(err_last(), "in_group_size");
    model_release(&bad);
}

/* codes out of range: written through the writer from a tensor holding a 6-bit code of 164
 * (stored as int8 100, outside pack_int_data's -32..63) */
static void test_codes_range(void) {
    const char *mp = T_DATA("models/stories260K.gguf");
    if (!mp) return;
    char src[4096], d[500];
    snprintf(src, sizeof src, "%s", mp);
    struct model m = MODEL_INIT;
    T_OK(!model_load(&m, src));
    struct hfx_model hm;
    struct aqlm_opts o = AQLM_OPTS_DEFAULT;
    o.num_codebooks = 1, o.nbits = 6, o.in_group = 4, o.max_epochs = 0, o.init_max_iter = 2;
    snprintf(d, sizeof d, "%s/bad-codes", t_tmpdir());
    if (!write_ckpt(&m, src, &o, d, &hm)) {
        for (int i = 0; i < hm.n; i++)
            if (hm.t[i].quantized) aqlm_code_set(&hm.t[i].q, 3, 5, 0, 164);
        struct hfx_stats hs;
        T_OK(!aqlm_write(&hm, &o, NULL, d, &hs));
        struct model bad = MODEL_INIT;
        T_ERR(model_load(&bad, d));
        T_CONTAINS(err_last(), "codes[3][5][0] = 100 is out of range for 6-bit codes");
        model_release(&bad);
    } else {
        T_FAIL_("write_ckpt: %s", err_last());
    }
    hfx_release(&hm);
    model_release(&m);
}

/* ===================================================================== (d) recipes */

static void test_recipes(void) {
    struct recipe r;
    recipe_init(&r);
    snprintf(r.id, sizeof r.id, "a");
    r.method = QMETHOD_AQLM;
    snprintf(r.algorithm, sizeof r.algorithm, "aqlm");
    snprintf(r.weight_dtype, sizeof r.weight_dtype, "aqlm");
    snprintf(r.compute_dtype, sizeof r.compute_dtype, "fp32");
    T_ERR(recipe_check(&r));
    T_CONTAINS(err_last(), "calib_set");
    snprintf(r.calib_set, sizeof r.calib_set, "groups_merged");
    T_OK(!recipe_check(&r));
    struct {
        const char *knobs;
        int ok;
    } kc[] = {
        {"{\"num_codebooks\":2,\"nbits_per_codebook\":8,\"in_group_size\":8}", 1},
        {"{\"beam_size\":4,\"max_epochs\":3,\"init_max_iter\":10,\"seed\":5,\"cg_iters\":5}", 1},
        {"{\"finetune\":true,\"finetune_max_epochs\":2,\"modules\":\"attention\"}", 1},
        {"{\"finetune_lr\":0.001,\"finetune_batch_size\":4}", 1},
        {"{\"finetune_lr\":0}", 0},
        {"{\"relative_mse_tolerance\":0.001,\"true_sequential\":false,\"out_group_size\":2}", 1},
        {"{\"init_max_points_per_centroid\":64}", 1},
        {"{\"nbits_per_codebook\":17}", 0},
        {"{\"num_codebooks\":0}", 0},
        {"{\"beam_size\":0}", 0},
        {"{\"in_group_size\":\"8\"}", 0},
        {"{\"modules\":\"everything\"}", 0},
        {"{\"relative_mse_tolerance\":1.5}", 0},
        {"{\"lr\":0.0001}", 0},
        {"{\"num_codebooks\":16,\"nbits_per_codebook\":16,\"in_group_size\":64,"
         "\"out_group_size\":64}", 0},
        {"[1]", 0},
    };
    for (size_t i = 0; i < LB_ARRAY_LEN(kc); i++) {
        snprintf(r.knobs, sizeof r.knobs, "%s", kc[i].knobs);
        const int rc = recipe_check(&r);
        if ((rc == 0) != kc[i].ok)
            T_FAIL_("knobs %s: recipe_check %d (expected %s)", kc[i].knobs, rc,
                    kc[i].ok ? "ok" : "an error");
    }
    T_ERR(recipe_check(&r));
    snprintf(r.knobs, sizeof r.knobs, "{\"lr\":0.0001}");
    T_ERR(recipe_check(&r));
    T_CONTAINS(err_last(), "aqlm knob 'lr'");
    /* bits = the code bits; group_size = in_group_size */
    snprintf(r.knobs, sizeof r.knobs, "{\"num_codebooks\":2,\"nbits_per_codebook\":8}");
    r.bits = 2;
    T_OK(!recipe_check(&r));
    r.bits = 3;
    T_ERR(recipe_check(&r));
    T_CONTAINS(err_last(), "bits 3");
    r.bits = NAN;
    r.has_group_size = true, r.group_size = 4;
    T_OK(!recipe_check(&r)); /* 2x8 over groups of 4: 4 bits */
    r.bits = 4;
    T_OK(!recipe_check(&r));
    snprintf(r.knobs, sizeof r.knobs, "{\"in_group_size\":8}");
    T_ERR(recipe_check(&r));
    T_CONTAINS(err_last(), "differs from the in_group_size");
    r.knobs[0] = 0, r.bits = NAN;
    r.group_size = -1;
    T_ERR(recipe_check(&r));
    r.has_group_size = false;
    r.sym = 1;
    T_ERR(recipe_check(&r));
    r.sym = -1;
    snprintf(r.compute_dtype, sizeof r.compute_dtype, "int8");
    T_ERR(recipe_check(&r));
    snprintf(r.compute_dtype, sizeof r.compute_dtype, "fp32");
    snprintf(r.weight_dtype, sizeof r.weight_dtype, "int2");
    T_ERR(recipe_check(&r));
    T_CONTAINS(err_last(), "weight_dtype aqlm");
}

/* ===================================================================== (e) stories260K, the CLI */

static void test_stories260k(void) {
    const char *bin = t_bin();
    char mp[4096], text[4096], cmd[8192], dir[512], csv[512];
    static char out[65536];
    if (!t_stories260k(mp, text)) return;
    snprintf(csv, sizeof csv, "%s/aqlm-recipes.csv", t_tmpdir());
    snprintf(dir, sizeof dir, "%s/aqlm-1x8g4", t_tmpdir());
    FILE *f = fopen(csv, "wb");
    if (f) { /* a short calibration: 16 windows of 128 tokens */
        fprintf(f, "id,algorithm,weight_dtype,bits,group_size,sym,double_quant,compute_dtype,"
                "calib_set,calib_nsamples,calib_seqlen,knobs\n"
                "aqlm-t,aqlm,aqlm,2,4,,,fp32,groups_merged,16,128,\"{\"\"num_codebooks\"\":1,"
                "\"\"nbits_per_codebook\"\":8,\"\"max_epochs\"\":4,\"\"seed\"\":3}\"\n");
        fclose(f);
    }
    snprintf(cmd, sizeof cmd, "%s quant --model %s --recipe aqlm-t --recipes %s -o %s", bin, mp,
             csv, dir);
    if (t_sh(cmd, out, sizeof out)) {
        T_FAIL_("%s failed:\n%s", cmd, out);
        return;
    }
    T_CONTAINS(out, "35 of 35 block linears quantized");
    T_CONTAINS(out, "quant.aqlm: 1x8, in_group 4, out_group 1 (codes 2 bits/weight)");
    T_CONTAINS(out, "55e9a15c5f33566725577a55f6782843b0126c0807a61ff26c6d0768894cc2b7");
    T_CONTAINS(out, "16 x 128 tokens, seed 3, BOS + text");
    T_CONTAINS(out, "quant.aqlm_peak_rss_mb: ");
    T_CONTAINS(out, "quant.aqlm_rel_mse: mean ");
    T_CONTAINS(out, "before fine-tuning; fine-tuning ("); /* on by default, through eval/grad.h */
    { /* killed after block 2 (fine-tuned codebooks, both streams in the checkpoint), run again:
       * the same bytes */
        char dir_k[600], args[9000];
        snprintf(dir_k, sizeof dir_k, "%s/aqlm-killed", t_tmpdir());
        snprintf(args, sizeof args, "quant --model %s --recipe aqlm-t --recipes %s", mp, csv);
        static const char *const says[] = {"aqlm: resuming after block 2/5",
                                           "quant.aqlm_resumed_blocks: 2", NULL};
        static const char *const same[] = {"model.safetensors", "config.json", NULL};
        t_resume_same(args, dir_k, 2, says, "aqlm: block", dir, same);
    }
    char cp[600];
    snprintf(cp, sizeof cp, "%s/config.json", dir);
    json_t *cfg = json_load_file(cp, 0, NULL), *qc = json_object_get(cfg, "quantization_config");
    T_OK(qc != NULL);
    if (qc) {
        T_EQ_STR(json_string_value(json_object_get(qc, "quant_method")), "aqlm");
        json_t *lb = json_object_get(qc, "lowbit");
        T_EQ_STR(json_string_value(json_object_get(lb, "calib_sha256")),
                 "55e9a15c5f33566725577a55f6782843b0126c0807a61ff26c6d0768894cc2b7");
        T_EQ_INT(json_integer_value(json_object_get(lb, "calib_nsamples")), 16);
        T_OK(json_integer_value(json_object_get(lb, "epochs")) >= 35);
    }
    json_decref(cfg);
    struct model m = MODEL_INIT;
    T_OK(!model_load(&m, dir));
    if (m.layers) {
        T_EQ_INT(m.layers[0].lin[LIN_Q].type, DTYPE_AQLM);
        T_EQ_INT(m.layers[4].lin[LIN_DOWN].type, DTYPE_AQLM);
    }
    model_release(&m);
    snprintf(cmd, sizeof cmd, "%s ppl --model %s --text %s --protocol llamacpp", bin, dir, text);
    if (t_sh(cmd, out, sizeof out)) {
        T_FAIL_("%s failed:\n%s", cmd, out);
        return;
    }
    const char *pp = strstr(out, "PPL = ");
    const double ppl = pp ? atof(pp + 6) : NAN;
    if (getenv("T_VERBOSE"))
        fprintf(stderr, "  stories260K aqlm 1x8 g4 (short calibration): PPL %.4f\n", ppl);
    T_OK(isfinite(ppl) && ppl > 1 && ppl < 200);
}

int main(void) {
    err_set_quiet(true);
    T_RUN(test_kernel);
    T_RUN(test_layer);
    T_RUN(test_checkpoint);
    T_RUN(test_codes_range);
    T_RUN(test_recipes);
    T_RUN(test_stories260k);
    t_tmpdir_cleanup();
    return T_DONE();
}
