/* tests/test_rotate.c: QuaRot's rotation and SmoothQuant's migration (quant/rotate.h), the
 * activation quantizer and its integer kernels (kernels/act_quant.h).
 *
 * Equivalence: a rotated (or smoothed) fp32 model computes the same function, so its log-probs
 * over a 96-token sequence must match the original's within 1e-4 (max |Δ log p| over every
 * position and vocabulary entry): stories260K (dim 64, MLP 172: the 172-point Hadamard from data),
 * a random zoo-15m-shape model (dim 512, MLP 1536 = 128·12, tied embeddings, norm weights ≠ 1),
 * with the o_proj rotation and another seed, and through the file (GGUF written by the fp recipe
 * with "rotate": true, reloaded with its online rotations from the metadata).
 * Kernels: the integer dot products (int8, packed int4) and the per-token matmul against their
 * _ref bit for bit at awkward lengths; the quantizer against its definition; the knobs. */
#include <stdbool.h>
#include <stdint.h>

#include "eval/forward.h"
#include "eval/gguf.h"
#include "kernels/act_quant.h"
#include "kernels/matmul_i8.h"
#include "quant/quant.h"
#include "quant/rotate.h"
#include "t.h"

static uint64_t rng = 0x853c49e6748fea9bull;
static float frand(void) { /* uniform [-1, 1) */
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)(rng >> 40) * (2.0f / 16777216.0f) - 1.0f;
}

#define SEQ 96

/* log-softmax of every position of tokens through m in compute c; owned */
static float *logprobs(const struct model *m, const int *tok, int n, enum compute_dtype c) {
    struct fwd_state s;
    const int V = m->cfg.vocab_size;
    float *lg = malloc((size_t)n * V * sizeof *lg);
    if (fwd_init(&s, m, n, 32)) return NULL;
    s.compute = c;
    if (forward(&s, tok, n, lg, false)) {
        fwd_release(&s);
        free(lg);
        return NULL;
    }
    fwd_release(&s);
    for (int t = 0; t < n; t++) log_softmax(lg + (size_t)t * V, V, lg + (size_t)t * V);
    return lg;
}

static void tokens(int *tok, int n, int V) {
    tok[0] = 1;
    for (int i = 1; i < n; i++) tok[i] = (int)((uint64_t)(i * 7919 + 13) % (uint64_t)V);
}

/* max |Δ log p| between m and its transform by o */
static double max_diff(const struct model *m, const struct rot_opts *o, const float *amax) {
    struct model r;
    if (rot_model(&r, m, o, amax)) return INFINITY;
    int tok[SEQ];
    tokens(tok, SEQ, m->cfg.vocab_size);
    float *a = logprobs(m, tok, SEQ, COMPUTE_FP32), *b = logprobs(&r, tok, SEQ, COMPUTE_FP32);
    double d = a && b ? 0 : INFINITY;
    for (size_t i = 0; a && b && i < (size_t)SEQ * m->cfg.vocab_size; i++)
        d = fmax(d, fabs((double)a[i] - b[i]));
    if (o->rotate) {
        T_OK(!r.tied_output);
        T_EQ_INT(r.cfg.online_had & (1u << LIN_DOWN), 1u << LIN_DOWN);
        T_EQ_INT(!!(r.cfg.online_had & (1u << LIN_O)), o->rotate_o);
    }
    free(a);
    free(b);
    rot_model_release(&r);
    return d;
}

static void test_stories260k(void) {
    const char *p = T_DATA("models/stories260K.gguf");
    struct model m;
    if (!p || model_load(&m, p)) return;
    struct rot_opts o = ROT_OPTS_INIT;
    o.rotate = true;
    double d = max_diff(&m, &o, NULL);
    fprintf(stderr, "  stories260K rotated: max |Δ log p| = %.3g\n", d);
    T_OK(d <= 1e-4);
    o.rotate_o = true;
    o.seed = 7;
    d = max_diff(&m, &o, NULL);
    fprintf(stderr, "  stories260K rotated (+o_proj, seed 7): max |Δ log p| = %.3g\n", d);
    T_OK(d <= 1e-4);
    /* the rotation moves the weights: the rotated model is not the original by accident */
    struct model r;
    T_EQ_INT(rot_model(&r, &m, &o, NULL), 0);
    float w0[64], w1[64];
    tensor_row_to_f32(&m.layers[0].lin[LIN_Q], 0, w0);
    tensor_row_to_f32(&r.layers[0].lin[LIN_Q], 0, w1);
    double dw = 0;
    for (int k = 0; k < 64; k++) dw += fabs(w0[k] - w1[k]);
    T_OK(dw > 0.1);
    rot_model_release(&r);
    model_release(&m);
}

/* a random llama GGUF: dim D, MLP H, NL blocks, 8 heads, 4 kv heads, vocab 512, tied embeddings,
 * norm weights 1 ± 0.3 */
static int write_random(const char *path, int D, int H, int NL, float outlier) {
    const int NH = 8, NKV = 4, HD = D / NH, V = 512;
    struct gguf_writer *w = gguf_writer_new();
    float *bufs[128];
    int nb = 0;
    gguf_writer_str(w, "general.architecture", "llama");
    gguf_writer_u32(w, "llama.embedding_length", (uint32_t)D);
    gguf_writer_u32(w, "llama.block_count", (uint32_t)NL);
    gguf_writer_u32(w, "llama.feed_forward_length", (uint32_t)H);
    gguf_writer_u32(w, "llama.attention.head_count", (uint32_t)NH);
    gguf_writer_u32(w, "llama.attention.head_count_kv", (uint32_t)NKV);
    gguf_writer_u32(w, "llama.context_length", 256);
    gguf_writer_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
#define ADD(name, a, b, base, scale)                                                               \
    do {                                                                                           \
        const int64_t ne_[2] = {a, (b) != 0 ? (b) : 1};                                            \
        float *p_ = malloc((size_t)(a) * (size_t)ne_[1] * sizeof *p_);                             \
        for (int64_t i_ = 0; i_ < (int64_t)(a)*ne_[1]; i_++) p_[i_] = base + scale * frand();      \
        bufs[nb++] = p_;                                                                           \
        gguf_writer_tensor(w, name, 0, (b) != 0 ? 2 : 1, ne_, p_, (uint64_t)((a)*ne_[1]) * 4);     \
    } while (0)
    ADD("token_embd.weight", D, V, 0.0f, 0.2f); /* logits of a few units, as trained models have */
    if (outlier > 0)                            /* a few residual channels scaled up */
        for (int v = 0; v < V; v++)
            for (int c = 0; c < 4; c++) bufs[0][(size_t)v * D + (size_t)c * 37 % D] *= outlier;
    ADD("output_norm.weight", D, 0, 1.0f, 0.3f);
    char name[64];
    const float s = 1.0f / sqrtf((float)D);
    for (int l = 0; l < NL; l++) {
#define L2(sfx, a, b, base, scale)                                                                 \
    snprintf(name, sizeof name, "blk.%d." sfx, l);                                                 \
    ADD(name, a, b, base, scale)
        L2("attn_norm.weight", D, 0, 1.0f, 0.3f);
        L2("attn_q.weight", D, NH * HD, 0.0f, 2 * s);
        L2("attn_k.weight", D, NKV * HD, 0.0f, 2 * s);
        L2("attn_v.weight", D, NKV * HD, 0.0f, s);
        L2("attn_output.weight", NH * HD, D, 0.0f, s);
        L2("ffn_norm.weight", D, 0, 1.0f, 0.3f);
        L2("ffn_gate.weight", D, H, 0.0f, s);
        L2("ffn_up.weight", D, H, 0.0f, s);
        L2("ffn_down.weight", H, D, 0.0f, s);
#undef L2
    }
#undef ADD
    const int rc = gguf_writer_write(w, path);
    gguf_writer_free(w);
    for (int i = 0; i < nb; i++) free(bufs[i]);
    return rc;
}

static void test_random_zoo_shape(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/zoo15m-shape.gguf", t_tmpdir());
    T_EQ_INT(write_random(path, 512, 1536, 2, 0), 0);
    struct model m;
    if (model_load(&m, path)) return;
    T_OK(m.tied_output);
    struct rot_opts o = ROT_OPTS_INIT;
    o.rotate = true;
    o.rotate_o = true;
    o.seed = 3;
    const double d = max_diff(&m, &o, NULL);
    fprintf(stderr, "  random dim 512 / MLP 1536 rotated: max |Δ log p| = %.3g\n", d);
    T_OK(d <= 1e-4);
    /* SmoothQuant's migration is exact too, whatever the statistics */
    const int64_t n = (int64_t)m.cfg.n_layers * (2 * 512 + 1536);
    float *amax = malloc((size_t)n * sizeof *amax);
    for (int64_t i = 0; i < n; i++) amax[i] = 0.05f + 3 * fabsf(frand());
    struct rot_opts so = ROT_OPTS_INIT;
    so.smooth_alpha = 0.5;
    const double ds = max_diff(&m, &so, amax);
    fprintf(stderr, "  random dim 512 / MLP 1536 smoothed (α 0.5): max |Δ log p| = %.3g\n", ds);
    T_OK(ds <= 1e-4);
    free(amax);
    model_release(&m);
}

/* the fp recipe with "rotate": a GGUF whose metadata carries the online rotation */
static void test_file_roundtrip(void) {
    const char *p = T_DATA("models/stories260K.gguf");
    struct model m, q;
    if (!p || model_load(&m, p)) return;
    struct recipe r;
    recipe_init(&r);
    snprintf(r.id, sizeof r.id, "quarot-fp32");
    snprintf(r.algorithm, sizeof r.algorithm, "fp");
    r.method = QMETHOD_FP;
    snprintf(r.weight_dtype, sizeof r.weight_dtype, "float32");
    r.bits = 32;
    snprintf(r.compute_dtype, sizeof r.compute_dtype, "fp32");
    snprintf(r.knobs, sizeof r.knobs, "{\"act_clip\":0.9,\"rotate\":true}");
    char dir[600];
    snprintf(dir, sizeof dir, "%s/rot", t_tmpdir());
    char cmd[700];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", dir);
    T_EQ_INT(system(cmd), 0);
    struct quant_job j = {
        .r = &r, .m = &m, .src_path = p, .out_dir = dir, .threads = 1, .quiet = true};
    struct quant_artifact a;
    T_EQ_INT(quant_model(&j, &a), 0);
    if (model_load(&q, a.path)) {
        T_FAIL_("reload %s", a.path);
        model_release(&m);
        return;
    }
    T_EQ_INT(q.cfg.online_had, 1u << LIN_DOWN);
    T_NEAR(q.cfg.act_clip, 0.9, 1e-7);
    T_OK(!q.tied_output);
    int tok[SEQ];
    tokens(tok, SEQ, 512);
    float *x = logprobs(&m, tok, SEQ, COMPUTE_FP32), *y = logprobs(&q, tok, SEQ, COMPUTE_FP32);
    double d = 0;
    for (size_t i = 0; x && y && i < (size_t)SEQ * 512; i++) d = fmax(d, fabs((double)x[i] - y[i]));
    fprintf(stderr, "  stories260K rotated, written and reloaded: max |Δ log p| = %.3g\n", d);
    T_OK(x && y && d <= 1e-4);
    /* a4 / a8 compute run and move the log-probs, a8 much less than a4 */
    float *y8 = logprobs(&q, tok, SEQ, COMPUTE_A8), *y4 = logprobs(&q, tok, SEQ, COMPUTE_A4);
    double d8 = 0, d4 = 0;
    for (size_t i = 0; y8 && y4 && i < (size_t)SEQ * 512; i++) {
        d8 += fabs((double)y8[i] - y[i]) / (SEQ * 512);
        d4 += fabs((double)y4[i] - y[i]) / (SEQ * 512);
    }
    fprintf(stderr, "  a8: mean |Δ log p| = %.3g, a4: %.3g\n", d8, d4);
    T_OK(y8 && y4 && d8 > 0 && d4 > 2 * d8 && isfinite(d4));
    free(x), free(y), free(y8), free(y4);
    model_release(&q);
    model_release(&m);
}

/* ---- kernels ---- */

static void test_act_quant(void) {
    /* the quantizer's definition, by hand: amax 3, 4 bits, clip 1 → d = 3/7 */
    const float x[6] = {3.0f, -3.0f, 0.2f, -0.22f, 1.5f, 0.0f};
    int8_t q[6];
    float d;
    act_quant_rows(q, &d, x, 1, 6, 4, 1.0f);
    T_NEAR(d, 3.0 / 7, 1e-7);
    const int want[6] = {7, -7, 0, -1, 4, 0}; /* 1.5·7/3 = 3.5 → 4 (half away from zero) */
    for (int k = 0; k < 6; k++) T_EQ_INT(q[k], want[k]);
    act_quant_rows(q, &d, x, 1, 6, 4, 0.5f); /* clipped: d = 1.5/7, ±3 saturate at 7 / −8 */
    T_EQ_INT(q[0], 7);
    T_EQ_INT(q[1], -8);
    float y[6];
    act_fake_quant_rows(y, x, 1, 6, 8, 1.0f);
    for (int k = 0; k < 6; k++) T_NEAR(y[k], x[k], 3.0 / 127 / 2 + 1e-7);
    float z[4] = {0};
    act_quant_rows(q, &d, z, 1, 4, 8, 1.0f);
    T_EQ_INT(d == 0 && q[0] == 0, 1);
    /* the definition with roundf and fmaxf, bit for bit (halves, −0, clipping, a NaN, 2..8 bits) */
    enum { KR = 333 };
    float xr[KR], yr[KR];
    int8_t qr[KR];
    for (int bits = 2; bits <= 8; bits++)
        for (int c = 0; c < 2; c++) {
            const float clip = c ? 0.9f : 1.0f;
            const int qmax = (1 << (bits - 1)) - 1;
            for (int k = 0; k < KR; k++)
                xr[k] = k % 7 == 0 ? (float)(k % 15 - 7) * 0.5f : k % 11 == 0 ? -1e-9f : 3 * frand();
            xr[5] = NAN;
            float amax = 0;
            for (int k = 0; k < KR; k++) amax = fmaxf(amax, fabsf(xr[k]));
            const float dr = clip * amax / (float)qmax, id = 1.0f / dr;
            act_quant_rows(qr, &d, xr, 1, KR, bits, clip);
            act_fake_quant_rows(yr, xr, 1, KR, bits, clip);
            T_OK(!memcmp(&d, &dr, sizeof d));
            int bad = 0;
            for (int k = 0; k < KR; k++) {
                const float r = roundf(xr[k] * id);
                const float cr = r > qmax ? (float)qmax : r < -qmax - 1 ? (float)(-qmax - 1) : r;
                const float wy = dr * cr;
                bad += (!isnan(cr) && qr[k] != (int8_t)cr) || memcmp(&yr[k], &wy, sizeof wy) != 0;
            }
            T_EQ_INT(bad, 0);
        }
}

static void test_int_kernels(void) {
    static const int lens[] = {1, 2, 3, 15, 16, 17, 31, 32, 33, 100, 255, 256, 257, 1000, 4096};
    int8_t *a = malloc(65536), *b = malloc(65536);
    uint8_t *pa = malloc(32768), *pb = malloc(32768);
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        const int n = lens[i];
        for (int k = 0; k < n; k++) a[k] = (int8_t)(frand() * 128), b[k] = (int8_t)(frand() * 128);
        T_EQ_INT(act_dot_i8(a, b, n), act_dot_i8_ref(a, b, n));
        const int n2 = n & ~1;
        for (int k = 0; k < n2; k++) a[k] = (int8_t)(frand() * 8), b[k] = (int8_t)(frand() * 8);
        act_pack_i4(pa, a, n2);
        act_pack_i4(pb, b, n2);
        T_EQ_INT(act_dot_i4(pa, pb, n2), act_dot_i8_ref(a, b, n2));
        T_EQ_INT(act_dot_i4_ref(pa, pb, n2), act_dot_i8_ref(a, b, n2));
    }
    /* the extreme: 65536 products of −128·−128 = 2^30 */
    memset(a, 0x80, 65536), memset(b, 0x80, 65536);
    T_EQ_INT(act_dot_i8(a, b, 65536), 1 << 30);
    /* the per-token matmul, fast vs ref bit for bit */
    const int T = 5, N = 33, K = 200;
    int8_t *qx = malloc((size_t)T * K), *qw = malloc((size_t)N * K);
    float dx[5], dw[33], y0[5 * 33], y1[5 * 33];
    for (int i = 0; i < T * K; i++) qx[i] = (int8_t)(frand() * 128);
    for (int i = 0; i < N * K; i++) qw[i] = (int8_t)(frand() * 128);
    for (int i = 0; i < T; i++) dx[i] = fabsf(frand());
    for (int i = 0; i < N; i++) dw[i] = fabsf(frand());
    act_matmul_ref(y0, qx, dx, qw, dw, T, N, K);
    act_matmul(y1, qx, dx, qw, dw, T, N, K);
    T_OK(!memcmp(y0, y1, sizeof y0));
    /* 4-bit codes packed: the same as the int8 oracle on the unpacked codes */
    uint8_t *px = malloc((size_t)T * K / 2), *pw = malloc((size_t)N * K / 2);
    for (int i = 0; i < T * K; i++) qx[i] = (int8_t)(frand() * 8);
    for (int i = 0; i < N * K; i++) qw[i] = (int8_t)(frand() * 8);
    for (int t = 0; t < T; t++) act_pack_i4(px + t * K / 2, qx + t * K, K);
    for (int j = 0; j < N; j++) act_pack_i4(pw + j * K / 2, qw + j * K, K);
    act_matmul_ref(y0, qx, dx, qw, dw, T, N, K);
    act_matmul_i4(y1, px, dx, pw, dw, T, N, K);
    T_OK(!memcmp(y0, y1, sizeof y0));
    free(px), free(pw);
    fprintf(stderr, "  act_quant path: %s\n", act_matmul_path(128, false));
    free(a), free(b), free(pa), free(pb), free(qx), free(qw);
}

/* codes drawn over the whole range (int8 −128..127, or −127..127 without m128, or 4-bit −8..7;
 * a tenth of them at the extremes); every (dx, dw) sign mix and zero rows, so the sign of a zero output is checked */
static void act_codes(int8_t *q, int64_t n, bool i4, bool m128) {
    const int lo = i4 ? -8 : m128 ? -128 : -127, hi = i4 ? 7 : 127;
    for (int64_t i = 0; i < n; i++) {
        const float r = frand();
        q[i] = (int8_t)(fabsf(r) > 0.9f ? (r < 0 ? lo : hi) : (int)lroundf(r * (float)hi));
    }
}

/* act_matmul / act_matmul_i4 on every path the CPU has (matmul_i8_codes by name) and through the
 * default dispatch, 1 and 2 threads, awkward sizes: bit for bit act_matmul_ref */
static void test_act_matmul_paths(void) {
    static const int64_t Ts[] = {1, 3, 17, 128}, Ns[] = {1, 33, 65}, Ks[] = {2, 30, 200, 770};
    static const char *const isas[] = {"generic", "avx2", "avx512"};
    const int saved = lb_threads();
    const int64_t TM = 128, NM = 65, KM = 770;
    int8_t *qx = malloc((size_t)(TM * KM)), *qw = malloc((size_t)(NM * KM));
    uint8_t *px = malloc((size_t)(TM * KM / 2)), *pw = malloc((size_t)(NM * KM / 2));
    float *dx = malloc(TM * sizeof *dx), *dw = malloc(NM * sizeof *dw);
    float *y0 = malloc((size_t)(TM * NM) * sizeof *y0), *y1 = malloc((size_t)(TM * NM) * sizeof *y1);
    int runs = 0;
    for (int i4 = 0; i4 < 2; i4++)
        for (size_t it = 0; it < LB_ARRAY_LEN(Ts); it++)
            for (size_t in = 0; in < LB_ARRAY_LEN(Ns); in++)
                for (size_t ik = 0; ik < LB_ARRAY_LEN(Ks); ik++) {
                    const int64_t T = Ts[it], N = Ns[in], K = Ks[ik];
                    act_codes(qx, T * K, i4, ik % 2); /* −128 (AVX2: the generic tile) */
                    act_codes(qw, N * K, i4, true);
                    if (T > 2) memset(qx + K, 0, (size_t)K); /* a zero token */
                    for (int64_t t = 0; t < T; t++) dx[t] = fabsf(frand());
                    for (int64_t j = 0; j < N; j++) dw[j] = frand(); /* negative too: −0 outputs */
                    for (int64_t t = 0; t < T; t++) act_pack_i4(px + t * K / 2, qx + t * K, K);
                    for (int64_t j = 0; j < N; j++) act_pack_i4(pw + j * K / 2, qw + j * K, K);
                    act_matmul_ref(y0, qx, dx, qw, dw, T, N, K);
                    const size_t yb = (size_t)(T * N) * sizeof *y0;
                    for (int th = 1; th <= 2; th++) {
                        lb_set_threads(th);
                        for (size_t ii = 0; ii <= LB_ARRAY_LEN(isas); ii++) {
                            memset(y1, 0x7f, yb);
                            if (ii == LB_ARRAY_LEN(isas)) { /* the default dispatch */
                                if (i4) act_matmul_i4(y1, px, dx, pw, dw, T, N, K);
                                else act_matmul(y1, qx, dx, qw, dw, T, N, K);
                            } else if (matmul_i8_codes(y1, i4 ? (const void *)px : qx, dx,
                                                       i4 ? (const void *)pw : qw, dw, T, N, K,
                                                       i4, isas[ii]) == -2) {
                                continue; /* the CPU lacks it */
                            }
                            runs++;
                            if (memcmp(y0, y1, yb))
                                T_FAIL_("%s %s T=%lld N=%lld K=%lld %d thread(s): differs from "
                                        "act_matmul_ref", i4 ? "W4A4" : "W8A8",
                                        ii < LB_ARRAY_LEN(isas) ? isas[ii] : "default",
                                        (long long)T, (long long)N, (long long)K, th);
                        }
                    }
                }
    lb_set_threads(saved);
    T_OK(runs >= 2 * 48 * 2 * 2); /* at least generic and the default, both kinds, 2 thread counts */
    fprintf(stderr, "  act_matmul path %s: %d runs bit for bit\n", act_matmul_path(128, false), runs);
    free(qx), free(qw), free(px), free(pw), free(dx), free(dw), free(y0), free(y1);
}

static void test_knobs(void) {
    struct rot_opts o;
    char rest[256];
    T_EQ_INT(rot_knobs("x", "{\"act_clip\":0.9,\"desc_act\":true,\"rotate\":true}", &o, rest,
                       sizeof rest),
             0);
    T_OK(o.rotate && !o.rotate_o && o.seed == 0 && o.smooth_alpha < 0);
    T_NEAR(o.act_clip, 0.9, 1e-7);
    T_EQ_STR(rest, "{\"desc_act\":true}");
    T_EQ_INT(rot_knobs("x", "{\"desc_act\": true}", &o, rest, sizeof rest), 0);
    T_EQ_STR(rest, "{\"desc_act\": true}"); /* none of ours: passed on as written */
    T_OK(!rot_wanted(&o));
    err_set_quiet(true);
    T_ERR(rot_knobs("x", "{\"act_clip\":1.5}", &o, rest, sizeof rest));
    T_ERR(rot_knobs("x", "{\"rotate_o\":true}", &o, rest, sizeof rest));
    T_ERR(rot_knobs("x", "{\"rotate\":true,\"smooth_alpha\":0.5}", &o, rest, sizeof rest));
    struct recipe r;
    recipe_init(&r);
    snprintf(r.id, sizeof r.id, "awq-rot");
    snprintf(r.algorithm, sizeof r.algorithm, "awq");
    r.method = QMETHOD_AWQ;
    snprintf(r.weight_dtype, sizeof r.weight_dtype, "int4");
    snprintf(r.compute_dtype, sizeof r.compute_dtype, "a4");
    snprintf(r.knobs, sizeof r.knobs, "{\"rotate\":true}");
    T_ERR(recipe_check(&r));
    T_CONTAINS(err_last(), "rotate");
    r.method = QMETHOD_RTN;
    snprintf(r.algorithm, sizeof r.algorithm, "rtn");
    snprintf(r.knobs, sizeof r.knobs, "{\"smooth_alpha\":0.5}");
    T_ERR(recipe_check(&r)); /* no calib_set */
    T_CONTAINS(err_last(), "calib_set");
    err_set_quiet(false);
    snprintf(r.knobs, sizeof r.knobs, "{\"rotate\":true}");
    T_EQ_INT(recipe_check(&r), 0);
    T_EQ_STR(recipe_compute_dtype_canon("A4"), "a4");
}

int main(void) {
    T_RUN(test_act_quant);
    T_RUN(test_act_matmul_paths);
    T_RUN(test_int_kernels);
    T_RUN(test_knobs);
    T_RUN(test_stories260k);
    T_RUN(test_random_zoo_shape);
    T_RUN(test_file_roundtrip);
    t_tmpdir_cleanup();
    return T_DONE();
}
