/* tests/test_quants.c: the GGUF block types, llama.cpp's quantizers, mixes and files.
 *
 * The expected hashes below are derived data: they were produced by ggml's own code (the
 * prebuilt libggml-base.so / libllama.v0.5.0.so of @node-llama-cpp/linux-x64 3.22.1 = llama.cpp
 * de3ff81) on the inputs generated here, and lowbit's output was verified byte-identical to it on
 * 2026-11-22 (a harness outside the repository linked both). Inputs use integer arithmetic only,
 * so they are the same bits on every platform. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/forward.h"
#include "eval/gguf.h"
#include "eval/model.h"
#include "kernels/base/sha256.h"
#include "eval/tokenizer.h"
#include "kernels/matmul.h"
#include "kernels/ggml_quants.h"
#include "quant/gguf_mix.h"
#include "quant/imatrix.h"
#include "t.h"

/* ---- inputs ---- */

static uint64_t rs;
static uint64_t rnext(void) {
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return rs;
}
static int32_t r24(void) { return (int32_t)(rnext() >> 40); } /* 0 .. 2^24-1 */

enum { DIST_NORMAL, DIST_OUTLIERS, DIST_ZERO, DIST_TINY, DIST_SUBEPS, DIST_MIXED, DIST_GRID,
       DIST_POSITIVE, DIST_COUNT };

/* n values of distribution d, exact binary fractions (the same bits everywhere) */
static void gen(int d, float *x, int64_t n, uint64_t seed) {
    rs = 0x9E3779B97F4A7C15ull ^ (seed * 0x100000001B3ull + (uint64_t)d);
    for (int64_t i = 0; i < n; i++) {
        /* Irwin-Hall(4), centred: roughly N(0, 0.58), one rounding in the int -> float step */
        const int32_t s = r24() + r24() + r24() + r24() - (2 << 24);
        float v = (float)s * 0x1p-24f;
        switch (d) {
        case DIST_OUTLIERS: v *= (rnext() & 63) ? 1.0f : 32.0f; break;
        case DIST_ZERO: v = 0.0f; break;
        case DIST_TINY: v *= 0x1p-20f; break;
        case DIST_SUBEPS: v *= 0x1p-60f; break;
        case DIST_MIXED: v = (i / 32) % 3 == 1 ? 0.0f : v; break;
        case DIST_GRID: v = (float)((int)(r24() % 17) - 8) * 0.125f; break;
        case DIST_POSITIVE: v = fabsf(v) + 0.5f; break;
        default: break;
        }
        x[i] = v;
    }
}

/* positive importance values with some zeros, n of them */
static void gen_imatrix(float *w, int64_t n, uint64_t seed) {
    rs = 0xD1B54A32D192ED03ull ^ seed;
    for (int64_t i = 0; i < n; i++)
        w[i] = (r24() % 29 == 0) ? 0.0f : (float)(r24() % 4096 + 1) * 0x1p-8f;
}

static const enum dtype gguf_types[] = {DTYPE_Q4_0, DTYPE_Q4_1, DTYPE_Q5_0, DTYPE_Q5_1,
                                        DTYPE_Q8_0, DTYPE_Q2_K, DTYPE_Q3_K, DTYPE_Q4_K,
                                        DTYPE_Q5_K, DTYPE_Q6_K, DTYPE_IQ4_NL};

/* ggml's quantize_row_*_ref */
static void quantize_ref(enum dtype t, const float *x, void *y, int64_t n) {
    switch (t) {
    case DTYPE_Q4_0: gq_q4_0_ref(x, y, n); break;
    case DTYPE_Q4_1: gq_q4_1_ref(x, y, n); break;
    case DTYPE_Q5_0: gq_q5_0_ref(x, y, n); break;
    case DTYPE_Q5_1: gq_q5_1_ref(x, y, n); break;
    case DTYPE_Q8_0: gq_q8_0_ref(x, y, n); break;
    case DTYPE_Q2_K: gq_q2_k_ref(x, y, n); break;
    case DTYPE_Q3_K: gq_q3_k_ref(x, y, n); break;
    case DTYPE_Q4_K: gq_q4_k_ref(x, y, n); break;
    case DTYPE_Q5_K: gq_q5_k_ref(x, y, n); break;
    case DTYPE_Q6_K: gq_q6_k_ref(x, y, n); break;
    case DTYPE_IQ4_NL: gq_iq4_nl_ref(x, y, n); break;
    case DTYPE_Q8_K: q8_k_from_f32(x, y, n); break;
    default: BUG("quantize_ref %d", (int)t);
    }
}

/* ggml leaves some bytes unwritten: IQ4_NL _ref codes of blocks with max|x| < 1e-15, Q8_K bsums
 * of all-zero blocks; those inputs are not hashed in that mode */
static bool hash_skips(enum dtype t, int mode, int d) {
    if (mode == 0 && t == DTYPE_IQ4_NL) return d == DIST_ZERO || d == DIST_SUBEPS;
    if (t == DTYPE_Q8_K) return d == DIST_ZERO;
    return false;
}

enum { HK = 512, HR = 4 }; /* row length and rows per distribution */

/* sha256 over every distribution of: mode 0 quantize_row_*_ref, 1 ggml_quantize_chunk without
 * imatrix, 2 with one, 3 the fp32 dequantization of mode 1's blocks */
static void type_hash(enum dtype t, int mode, char hex[65]) {
    const size_t rb = dtype_row_size(t, HK);
    float *x = malloc(sizeof(float) * HK * HR), *y = malloc(sizeof(float) * HK * HR);
    float *im = malloc(sizeof(float) * HK);
    uint8_t *q = malloc(rb * HR);
    struct sha256 h;
    sha256_init(&h);
    for (int d = 0; d < DIST_COUNT; d++) {
        if (hash_skips(t, mode, d)) continue;
        gen(d, x, HK * HR, (uint64_t)t);
        gen_imatrix(im, HK, (uint64_t)d);
        if (mode == 0 || t == DTYPE_Q8_K) /* Q8_K: activations only, no chunk quantizer */
            quantize_ref(t, x, q, HK * HR);
        else
            gq_quantize(t, x, q, HR, HK, mode == 2 ? im : NULL);
        if (mode == 3) {
            dtype_get(t)->to_f32(q, y, HK * HR);
            sha256_update(&h, y, sizeof(float) * HK * HR);
        } else {
            sha256_update(&h, q, rb * HR);
        }
    }
    sha256_hex(&h, hex);
    free(x);
    free(y);
    free(im);
    free(q);
}

/* ---- block layout and the dtype table ---- */

static void test_block_table(void) {
    static const struct {
        enum dtype t;
        const char *name;
        int block, bytes, ggml;
        double bpw;
    } want[] = {
        {DTYPE_Q4_0, "q4_0", 32, 18, 2, 4.5},      {DTYPE_Q4_1, "q4_1", 32, 20, 3, 5.0},
        {DTYPE_Q5_0, "q5_0", 32, 22, 6, 5.5},      {DTYPE_Q5_1, "q5_1", 32, 24, 7, 6.0},
        {DTYPE_Q8_0, "q8_0", 32, 34, 8, 8.5},      {DTYPE_IQ4_NL, "iq4_nl", 32, 18, 20, 4.5},
        {DTYPE_Q2_K, "q2_k", 256, 84, 10, 2.625},  {DTYPE_Q3_K, "q3_k", 256, 110, 11, 3.4375},
        {DTYPE_Q4_K, "q4_k", 256, 144, 12, 4.5},   {DTYPE_Q5_K, "q5_k", 256, 176, 13, 5.5},
        {DTYPE_Q6_K, "q6_k", 256, 210, 14, 6.5625}, {DTYPE_Q8_K, "q8_k", 256, 292, 15, 9.125},
    };
    for (size_t i = 0; i < LB_ARRAY_LEN(want); i++) {
        const struct dtype_info *d = dtype_get(want[i].t);
        T_EQ_STR(d->name, want[i].name);
        T_EQ_INT(d->block, want[i].block);
        T_EQ_INT(d->block_bytes, want[i].bytes);
        T_EQ_INT(d->ggml_type, want[i].ggml);
        T_NEAR(dtype_bits_per_weight(want[i].t), want[i].bpw, 0);
        T_EQ_INT(dtype_from_ggml(want[i].ggml), want[i].t);
        T_EQ_INT(dtype_from_name(want[i].name), want[i].t);
        T_OK(d->to_f32 && d->from_f32);
        T_EQ_INT(dtype_row_size(want[i].t, want[i].block * 3), want[i].bytes * 3);
        T_EQ_INT(dtype_row_size(want[i].t, want[i].block + 16), 0);
    }
    T_EQ_INT(dtype_from_name("Q4_K"), DTYPE_Q4_K);
}

/* ---- byte-exact with ggml (recorded hashes) ---- */

static void test_ggml_hashes(void) {
    /* [type][mode]: 0 = quantize_row_*_ref, 1 = ggml_quantize_chunk, 2 = with imatrix,
     * 3 = dequantized fp32; verified against libggml-base.so (de3ff81) on 2026-11-22 */
    static const struct {
        enum dtype t;
        const char *h[4];
    } want[] = {
        {DTYPE_Q4_0,
         {"b497dd5ec5e23246e6438aff403d5965894b97be57fdf3b2cbd60ad04a249412",
          "b497dd5ec5e23246e6438aff403d5965894b97be57fdf3b2cbd60ad04a249412",
          "61bb36832f5784edf0f09d167eaa9015ff0f8c77b0b4f133d2aad79b96c92d1f",
          "0540ca404e3c4582ce62f0062b73a6f7be17388a17e6dbf402bbd0aa94b44c81"}},
        {DTYPE_Q4_1,
         {"34806dea16e2c6b306e673e8786e43683eeb61115c5fc92eed8e8142e4c61e6c",
          "34806dea16e2c6b306e673e8786e43683eeb61115c5fc92eed8e8142e4c61e6c",
          "128ce9be81e8d25b5d068743df555eafd7397a94daad5ffe6f7adda34ef4d49a",
          "866ceb31309f2e3be1d9ee3e7b599cb7037590f46d524461918869a30f7b41d0"}},
        {DTYPE_Q5_0,
         {"631a519c451efb7a2b46893472492ba8c9ba00ff3cf34e5722227cbe0776f8d1",
          "631a519c451efb7a2b46893472492ba8c9ba00ff3cf34e5722227cbe0776f8d1",
          "6b641df004db2979f6fd20cac80fd58c061ff03418d97261d1be033269310833",
          "be008ea6736e24c95a336e412be3d553d6742cfce1fd9b41767a5587956564a3"}},
        {DTYPE_Q5_1,
         {"c578f4724b5f767fd1a64e4d11a17a344b7c9c65357ce96ee201c55cea9f29e3",
          "c578f4724b5f767fd1a64e4d11a17a344b7c9c65357ce96ee201c55cea9f29e3",
          "ccd1bc907b0ab5f8b3ec8c49185881706b15ae65d511a072fa429d1d0dd59e24",
          "bac1554fdc29d1db067e510fbff3a527943d5414ca28e1e5e4dafcd18d0f6734"}},
        {DTYPE_Q8_0,
         {"19a120bb81ed86dac126ffc1db7303fbccc1732b1ab2ef072a54fe2a1de6c59d",
          "19a120bb81ed86dac126ffc1db7303fbccc1732b1ab2ef072a54fe2a1de6c59d",
          "19a120bb81ed86dac126ffc1db7303fbccc1732b1ab2ef072a54fe2a1de6c59d",
          "a21f38ea1d9a38f461f615759744f81de8e1113edcfb6bade161eee5fc94660b"}},
        {DTYPE_Q2_K,
         {"350b92f6946bdf94ea9b85ba478abc7968566f97651ec73bcd3dcd91b876981d",
          "350b92f6946bdf94ea9b85ba478abc7968566f97651ec73bcd3dcd91b876981d",
          "b66e4d44665e41b0322d691ae55af2f1cce12dd25f0948b820f1f70154dd53a1",
          "53611e149ecc618325b73124d31bcb8adf2d871f38e9253d098dd6105613ca96"}},
        {DTYPE_Q3_K,
         {"efcf5b1188beab8e613930787b3be911625fb54a527afa2ee2de2193f199dde9",
          "efcf5b1188beab8e613930787b3be911625fb54a527afa2ee2de2193f199dde9",
          "120dab2c7656805be6ab1cc38696844c8cb7c98c7a7d3692cb1b1292ba06e13c",
          "de08a163bbcda5cc3ea66d9513b612f1c1d63700888b05eef33395c289f7561b"}},
        {DTYPE_Q4_K,
         {"410f1528b2441e2ec7d87f19968da1d08e485b5f951f47f153a073a786c0d0ff",
          "410f1528b2441e2ec7d87f19968da1d08e485b5f951f47f153a073a786c0d0ff",
          "9b6510f8e8300a85dcd9a2df82561964fb9aabde87658cdeed1276849c6326f2",
          "04393c103a4858ab191b14280e897d2e31924c151348b6e9c9b51168092b72ee"}},
        {DTYPE_Q5_K,
         {"c909e97cdcbc0e1a177438f401ec1d6865a9cdfdbca2525029df0659a184c919",
          "c909e97cdcbc0e1a177438f401ec1d6865a9cdfdbca2525029df0659a184c919",
          "e4af52765e0d3ef61de9ad5cef3a8433690d6d43bdbc3ec2049590fe60fec28f",
          "33fd6df19c5fb48f34e67859f86dc3c0ec595ff83d31a28500bbbf06cdb5b9eb"}},
        {DTYPE_Q6_K,
         {"24b2d7c44a285c3782029d963a4bb158f8163857080f50b2e8fac7a6c3da613d",
          "24b2d7c44a285c3782029d963a4bb158f8163857080f50b2e8fac7a6c3da613d",
          "8a684f185111760688c4105f0864ffccf9ae4fdc4768b6b481c6f9e74ce653e5",
          "411f956004f8c56809f81aa4168f83010964a0b46b2a7ef58169ffe423ac9117"}},
        {DTYPE_IQ4_NL,
         {"29e78d338c875322b00f43524c8810fbe9ac980f54d4c0b99b2de36dbc278cc9",
          "69752c31041df41c2ccf5d2da1c59a47e4b5094d7b25d49b46f5d2cdd16b8025",
          "ea32b2eeb6446c18ea6e12fb00764972363f73579beedbec2b47b1e78b1800ea",
          "cb74e2e09922c3c40fa78426ae2771643d3fe51683f4a17e6daf07dc0b3505b8"}},
        {DTYPE_Q8_K,
         {"74e0c670f459dfbed25371576f75d7ba92c8e0df16b3e3b746b0cc7925694950",
          "74e0c670f459dfbed25371576f75d7ba92c8e0df16b3e3b746b0cc7925694950",
          "74e0c670f459dfbed25371576f75d7ba92c8e0df16b3e3b746b0cc7925694950",
          "6b2b1d7ebd146b10e7f4a12393a8ae56c89ed01e29b4b64d3907e57d1b14af64"}},
    };
    for (size_t i = 0; i < LB_ARRAY_LEN(want); i++)
        for (int mode = 0; mode < 4; mode++) {
            char hex[65];
            type_hash(want[i].t, mode, hex);
            if (strcmp(hex, want[i].h[mode]))
                T_FAIL_("%s mode %d: sha256 %s, expected %s (ggml's bytes)",
                        dtype_get(want[i].t)->name, mode, hex, want[i].h[mode]);
        }
}

/* ---- round-trip error within ggml's budgets (tests/test-quantize-fns.cpp) ---- */

static void test_rmse_budgets(void) {
    /* MAX_QUANTIZATION_TOTAL_ERROR 0.002, _2BITS 0.0075 (Q2_K), _3BITS 0.0040 (Q3_K); the data is
     * its generate_data(0.0, 4096): 0.1 + 2·cos(i); the metric its array_rmse: sqrt(Σd²)/n */
    enum { N = 32 * 128 };
    float *x = malloc(sizeof(float) * N), *y = malloc(sizeof(float) * N);
    void *q = malloc(N * 2);
    for (int i = 0; i < N; i++) x[i] = 0.1f + 2.0f * cosf((float)i);
    for (size_t k = 0; k < LB_ARRAY_LEN(gguf_types); k++) {
        const enum dtype t = gguf_types[k];
        dtype_get(t)->from_f32(x, q, N);
        dtype_get(t)->to_f32(q, y, N);
        double s = 0;
        for (int i = 0; i < N; i++) s += (double)(x[i] - y[i]) * (x[i] - y[i]);
        const double err = sqrt(s) / N;
        const double budget = t == DTYPE_Q2_K ? 0.0075 : t == DTYPE_Q3_K ? 0.0040 : 0.002;
        if (getenv("T_VERBOSE"))
            fprintf(stderr, "  %-6s total error %.6f (budget %.4f), rmse %.5f\n",
                    dtype_get(t)->name, err, budget, sqrt(s / N));
        if (!(err < budget))
            T_FAIL_("%s: error %.6f over ggml's budget %.4f", dtype_get(t)->name, err, budget);
    }
    free(x);
    free(y);
    free(q);
}

/* every type at several row lengths: dequantized values stay within a per-type fraction of the
 * block's range, all-zero rows give zeros, and the Q8_K bsums add up */
static void test_round_trip_sizes(void) {
    static const int blocks[] = {1, 2, 3, 5, 8};
    for (size_t k = 0; k < LB_ARRAY_LEN(gguf_types); k++) {
        const enum dtype t = gguf_types[k];
        const int bl = dtype_get(t)->block;
        /* worst-case |error| / max|x| of the block: half a step of the grid, with slack */
        const double bits = dtype_bits_per_weight(t) - (bl == 32 ? 0.5 : 0.0);
        const double tol = t == DTYPE_Q2_K   ? 0.6
                           : t == DTYPE_Q3_K ? 0.3
                                             : 2.0 / pow(2, floor(bits));
        for (size_t b = 0; b < LB_ARRAY_LEN(blocks); b++) {
            const int64_t n = (int64_t)bl * blocks[b];
            float *x = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n);
            void *q = malloc(dtype_row_size(t, n));
            gen(DIST_NORMAL, x, n, (uint64_t)(n + t));
            dtype_get(t)->from_f32(x, q, n);
            dtype_get(t)->to_f32(q, y, n);
            double worst = 0;
            for (int64_t i = 0; i < n; i += bl) {
                float amax = 0;
                for (int j = 0; j < bl; j++) amax = fmaxf(amax, fabsf(x[i + j]));
                for (int j = 0; j < bl; j++) worst = fmax(worst, fabs(x[i + j] - y[i + j]) / amax);
            }
            if (!(worst <= tol))
                T_FAIL_("%s n=%lld: max |error|/max|x| %.4f > %.4f", dtype_get(t)->name,
                        (long long)n, worst, tol);
            memset(x, 0, sizeof(float) * n);
            dtype_get(t)->from_f32(x, q, n);
            dtype_get(t)->to_f32(q, y, n);
            for (int64_t i = 0; i < n; i++)
                if (y[i] != 0.0f) {
                    T_FAIL_("%s: zero row dequantizes to %g at %lld", dtype_get(t)->name, y[i],
                            (long long)i);
                    break;
                }
            free(x);
            free(y);
            free(q);
        }
    }
    float x[QK_K], y[QK_K];
    struct block_q8_k b;
    gen(DIST_OUTLIERS, x, QK_K, 7);
    q8_k_from_f32(x, &b, QK_K);
    q8_k_to_f32(&b, y, QK_K);
    for (int j = 0; j < QK_K / 16; j++) {
        int s = 0;
        for (int l = 0; l < 16; l++) s += b.qs[16 * j + l];
        T_EQ_INT(b.bsums[j], s);
    }
    for (int i = 0; i < QK_K; i++) T_NEAR(y[i], x[i], fabsf(b.d) * 0.5f + 1e-7f);
}

/* ---- matmul computes with every type (the generic convert-through path) ---- */

static void test_matmul_types(void) {
    enum { K = 512, N = 24, TOK = 5 };
    float *x = malloc(sizeof(float) * K * TOK), *wf = malloc(sizeof(float) * K * N);
    float y[TOK * N], yr[TOK * N];
    gen(DIST_NORMAL, x, K * TOK, 99);
    for (size_t k = 0; k < LB_ARRAY_LEN(gguf_types); k++) {
        struct tensor w;
        const int64_t ne[2] = {K, N};
        T_OK(!tensor_init(&w, "w", gguf_types[k], 2, ne));
        w.data = malloc(tensor_nbytes(&w));
        gen(DIST_OUTLIERS, wf, K * N, 5 + k);
        for (int r = 0; r < N; r++)
            dtype_get(w.type)->from_f32(wf + r * K, (char *)w.data + r * tensor_row_bytes(&w), K);
        for (int r = 0; r < N; r++) tensor_row_to_f32(&w, r, wf + r * K);
        matmul(y, x, &w, TOK);
        matmul_ref(yr, x, &w, TOK);
        for (int t = 0; t < TOK; t++)
            for (int n = 0; n < N; n++) {
                double s = 0, a = 0;
                for (int i = 0; i < K; i++) {
                    s += (double)wf[n * K + i] * x[t * K + i];
                    a += fabs((double)wf[n * K + i] * x[t * K + i]);
                }
                T_NEAR(y[t * N + n], s, 2.0 * (K + 4) * 0x1p-24 * a);
                T_NEAR(yr[t * N + n], s, 2.0 * (K + 4) * 0x1p-24 * a);
            }
        free(w.data);
    }
    free(x);
    free(wf);
}

/* ---- mixes ---- */

static void add_tensor(struct gguf_mix_tensor *t, char (*names)[64], int *n, const char *nm,
                       int64_t a, int64_t b) {
    snprintf(names[*n], 64, "%s", nm);
    t[*n] = (struct gguf_mix_tensor){names[*n], b ? 2 : 1, {a, b ? b : 1, 1, 1}, DTYPE_F32};
    (*n)++;
}

/* the tensor list of a llama GGUF (names and ggml shapes), in file order */
static int llama_tensors(struct gguf_mix_tensor *t, char (*names)[64], int n_layer, int D, int H,
                         int kvd, int V, bool with_output) {
    int n = 0;
    char nm[64];
    add_tensor(t, names, &n, "token_embd.weight", D, V);
    add_tensor(t, names, &n, "output_norm.weight", D, 0);
    if (with_output) add_tensor(t, names, &n, "output.weight", D, V);
    static const struct {
        const char *s;
        int a, b; /* 0 = D, 1 = H, 2 = kvd, 3 = none */
    } per_layer[] = {{"attn_q", 0, 0},   {"attn_k", 0, 2},   {"attn_v", 0, 2},
                     {"attn_output", 0, 0}, {"attn_norm", 0, 3}, {"ffn_gate", 0, 1},
                     {"ffn_down", 1, 0}, {"ffn_up", 0, 1},   {"ffn_norm", 0, 3}};
    const int dims[4] = {D, H, kvd, 0};
    for (int l = 0; l < n_layer; l++)
        for (size_t k = 0; k < LB_ARRAY_LEN(per_layer); k++) {
            snprintf(nm, sizeof nm, "blk.%d.%s.weight", l, per_layer[k].s);
            add_tensor(t, names, &n, nm, dims[per_layer[k].a], dims[per_layer[k].b]);
        }
    return n;
}

/* types of one mix in llama.cpp's order as a string "name=type ..." (2-D tensors only) */
static void mix_string(const char *ftype, bool pure, bool imatrix, int n_layer, int D, int H,
                       int n_head, int n_kv, int V, char *out, size_t size) {
    static struct gguf_mix_tensor t[600], o[600];
    static char names[600][64];
    int idx[600];
    enum dtype ty[600];
    const int n = llama_tensors(t, names, n_layer, D, H, D / n_head * n_kv, V, true);
    gguf_mix_order(t, n, idx);
    for (int i = 0; i < n; i++) o[i] = t[idx[i]];
    enum gguf_ftype ft = GGUF_FTYPE_ALL_F32;
    T_OK(!gguf_ftype_from_name(ftype, &ft));
    const struct gguf_mix_model mm = {"llama", n_layer, n_head, n_kv, 0};
    const struct gguf_mix_opts opt = {ft, pure, false, imatrix};
    gguf_mix_types(&mm, &opt, o, n, ty, NULL, true);
    size_t len = 0;
    out[0] = 0;
    for (int i = 0; i < n && len < size; i++)
        if (o[i].n_dims >= 2)
            len += (size_t)snprintf(out + len, size - len, "%s%s", len ? " " : "",
                                    dtype_get(ty[i])->name);
}

/* count of tensors of type t in a mix string */
static int count_type(const char *s, const char *type) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, type)); p += strlen(type))
        if ((p == s || p[-1] == ' ') && (p[strlen(type)] == ' ' || !p[strlen(type)])) n++;
    return n;
}

static void test_mix_rules(void) {
    static char s[8192];
    /* stories110M shape (12 layers, 768/2048, 12 heads): what llama-quantize wrote for
     * rand-110m-f32.gguf (checked on the files, 2026-11-22) */
    mix_string("Q4_K_M", false, false, 12, 768, 2048, 12, 12, 32000, s, sizeof s);
    T_EQ_INT(count_type(s, "q6_k"), 13); /* output + 6 attn_v + 6 ffn_down (use_more_bits) */
    T_EQ_INT(count_type(s, "q4_k"), 86 - 13);
    mix_string("Q4_0", false, false, 12, 768, 2048, 12, 12, 32000, s, sizeof s);
    T_EQ_INT(count_type(s, "q6_k"), 1);
    mix_string("Q4_0", true, false, 12, 768, 2048, 12, 12, 32000, s, sizeof s);
    T_EQ_INT(count_type(s, "q4_0"), 86);
    mix_string("Q4_0", false, true, 12, 768, 2048, 12, 12, 32000, s, sizeof s);
    T_EQ_INT(count_type(s, "q4_1"), 1); /* ffn_down of layer 0 (< 12/8) with an imatrix */
    mix_string("Q3_K_M", false, false, 12, 768, 2048, 12, 12, 32000, s, sizeof s);
    T_EQ_INT(count_type(s, "q5_k"), 2); /* attn_v of layers 0-1; ffn_down i < 12/16 = 0: none */
    mix_string("Q2_K", false, false, 12, 768, 2048, 12, 12, 32000, s, sizeof s);
    T_EQ_INT(count_type(s, "q3_k"), 36); /* attn_v, attn_output, ffn_down */
    T_EQ_INT(count_type(s, "q6_k"), 1);
    mix_string("Q2_K", false, false, 12, 768, 2048, 12, 3, 32000, s, sizeof s);
    T_EQ_INT(count_type(s, "q4_k"), 12); /* GQA 4: attn_v -> Q4_K */
    mix_string("Q8_0", false, false, 12, 768, 2048, 12, 12, 32000, s, sizeof s);
    T_EQ_INT(count_type(s, "q8_0"), 86);
    /* stories260K (5 layers, 64/172, 8 heads / 4 kv): row length 64 and 172 do not take 256
     * blocks; 172 takes no 32-block either: F16 (llama-quantize's output, checked) */
    mix_string("Q4_K_M", false, false, 5, 64, 172, 8, 4, 512, s, sizeof s);
    /* output, token_embd, then per layer attn_k attn_output attn_q attn_v ffn_down ffn_gate
     * ffn_up: attn_v of layers 2 and 4 (use_more_bits) want Q6_K and get Q8_0 */
    T_EQ_STR(s, "q8_0 q5_0 q5_0 q5_0 q5_0 q5_0 f16 q5_0 q5_0 q5_0 q5_0 q5_0 q5_0 f16 q5_0 q5_0 "
                "q5_0 q5_0 q5_0 q8_0 f16 q5_0 q5_0 q5_0 q5_0 q5_0 q5_0 f16 q5_0 q5_0 q5_0 q5_0 "
                "q5_0 q8_0 f16 q5_0 q5_0");
    mix_string("Q2_K", false, false, 5, 64, 172, 8, 4, 512, s, sizeof s);
    T_EQ_INT(count_type(s, "f16"), 5);
    T_EQ_INT(count_type(s, "q4_0"), 31); /* Q2_K and Q3_K fall back to Q4_0 */
    enum gguf_ftype ft;
    err_set_quiet(true);
    T_ERR(gguf_ftype_from_name("Q9_K", &ft));
    err_set_quiet(false);
    T_CONTAINS(err_last(), "Q4_K_M");
}

/* ---- whole files: the same bytes as llama-quantize ---- */

static char *tmp_path(const char *name) {
    static char buf[8][512];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 512, "%s/%s", t_tmpdir(), name);
    return p;
}

static void file_sha(const char *path, char hex[65]) {
    FILE *f = fopen(path, "rb");
    struct sha256 h;
    sha256_init(&h);
    char buf[65536];
    size_t n;
    while (f && (n = fread(buf, 1, sizeof buf, f)) > 0) sha256_update(&h, buf, n);
    if (f) fclose(f);
    sha256_hex(&h, hex);
}

/* im is recorded in the file under the name "imatrix.gguf" (the file the hashes were made from) */
static int quantize_file(const char *src, const char *ftype, bool pure, const struct imatrix *im,
                         const char *out) {
    struct model m;
    if (model_load(&m, src)) return -1;
    struct gguf_quant_opts o = {.ftype = ftype, .pure = pure, .imatrix = im,
                                .imatrix_file = "imatrix.gguf", .quiet = true};
    int rc = gguf_quantize_model(&m, &o, out, NULL);
    model_release(&m);
    return rc;
}

/* sha256 of llama-quantize's own output (libllama.v0.5.0.so) from stories260K.gguf */
static const struct {
    const char *ftype;
    bool pure;
    const char *sha;
} llama_files[] = {
    {"F32", false, "f18837d06914bcc627d8b93c818b453823493a057041a85a8484819de8938664"},
    {"F16", false, "4cd29bbe9cb3b735750837816a43c3dd4b473dbd658e8612816f7c4d3926ac21"},
    {"BF16", false, "633551c4cd934c2090c88fd56a8e7b1263b1bc6e91b22e41f398a16f4245ebb0"},
    {"Q8_0", false, "ff8701a45da28293b7af11a695ab33575b692e9b109a2eae6238c906c31415da"},
    {"Q4_0", false, "fd93abd9957992763c863e7e3f30934baf1e7a2e31b6c911a720cd109daed40d"},
    {"Q4_1", false, "2ddb634a1e71dffd234b5fa3ecb0608b43e9a913b19012e4fbc616c29d9a3c66"},
    {"Q5_0", false, "749e10e0a33dbef8df92045c6add0d807dc5d1105667c96ad3f81ae3deb64ac7"},
    {"Q5_1", false, "c36497248a0a883836c36c96bf707bd176b94911d34af9bf7681df98cd22025d"},
    {"IQ4_NL", false, "c0ff391eb9d8865fc9a9e71f13ce5d6f6a59203eb2a8f22775215b51ce2f2a61"},
    {"Q2_K", false, "94967a2bf35ea5fc57aedcc8fe06e2b94454323b4899a260927830860274267b"},
    {"Q3_K_S", false, "c9d3191472266bf63362214aa05e48a6ab226dd38cc39faa843d78bb3c171768"},
    {"Q3_K_M", false, "1b8cf84b50f0676d7580c30d76ab0f80f337f782824b7f312de674c521bcf79d"},
    {"Q3_K_L", false, "0b715a6c2598aac375ef30f200ac19d157a1431eb40a57041c5243c994fdfb42"},
    {"Q4_K_S", false, "ec7a769903d8b4cb18e5ed29b288c60f9d8a15437321c67ac319ddb6191125b6"},
    {"Q4_K_M", false, "7f61512f1889080c73b2afd3ac7fdfe55a368e83570b20e5019829adfa734a2a"},
    {"Q5_K_S", false, "66ed769a4df768d67b88ea4395e9dab273b717de9f64980b9cd5cfe832108b6f"},
    {"Q5_K_M", false, "017253a152346d29609472739647c6c1136557abaad67c24e6966fccd07eafda"},
    {"Q6_K", false, "137d1fbe834a43bc20cc1e04a9459af61953a7579baeedba17590faacfb13104"},
    {"Q8_0", true, "ff8701a45da28293b7af11a695ab33575b692e9b109a2eae6238c906c31415da"},
    {"Q4_0", true, "d6eafc51d502a0fb7c2a30f0cf17395302502196b0ac3bd4df1ee90a6b56480c"},
    {"Q4_1", true, "e8e90a16935a7d056dcd8ff26696566d1a5d2ed9f6b37ae899d8e9a0e7c9ac69"},
    {"Q5_1", true, "da5ac956498eb73d8460660d5a5cf51aaadf88024cd6a261e618e1560da4c81d"},
    {"IQ4_NL", true, "347a4f6ec62d53f7708a6602e4602094063da70937b2cf03262cd0aba5a0ec8b"},
    {"Q4_K_S", true, "819c9060e273fa3918c043d7d8beaab64d507ad41c8725ca90f7dc63ea8f1aca"},
    {"Q6_K", true, "137d1fbe834a43bc20cc1e04a9459af61953a7579baeedba17590faacfb13104"},
};

static void test_files_equal_llama_cpp(void) {
    const char *src = T_DATA("models/stories260K.gguf");
    if (!src) return;
    char srcb[4096];
    snprintf(srcb, sizeof srcb, "%s", src);
    for (size_t i = 0; i < LB_ARRAY_LEN(llama_files); i++) {
        const char *out = tmp_path("q.gguf");
        char hex[65];
        T_OK(!quantize_file(srcb, llama_files[i].ftype, llama_files[i].pure, NULL, out));
        file_sha(out, hex);
        if (strcmp(hex, llama_files[i].sha))
            T_FAIL_("stories260K %s%s: sha256 %s differs from llama-quantize's %s",
                    llama_files[i].ftype, llama_files[i].pure ? " --pure" : "", hex,
                    llama_files[i].sha);
    }
}

/* the synthetic importance matrix of the imatrix-file test: for every blk.* weight of
 * stories260K, Σx² over 512 rows = 512·(1 + (7j + layer) mod 13) for column j */
static void synthetic_imatrix(struct imatrix *im, const struct model *m) {
    for (int i = 0; i < m->n_tensors; i++) {
        const struct tensor *t = &m->tensors[i];
        if (strncmp(t->name, "blk.", 4) || t->n_dims < 2) continue;
        float *zero = calloc((size_t)t->ne[0], sizeof(float));
        imatrix_accumulate(im, t->name, zero, 1, t->ne[0]); /* creates the entry */
        free(zero);
    }
    for (int i = 0; i < im->n; i++) {
        const int layer = atoi(im->e[i].name + 4);
        for (int64_t j = 0; j < im->e[i].n_cols; j++)
            im->e[i].sum2[j] = 512.0 * (double)(1 + (j * 7 + layer) % 13);
        im->e[i].count[0] = 512;
    }
    im->chunk_count = 1;
    im->chunk_size = 512;
}

static void test_imatrix_files(void) {
    const char *src = T_DATA("models/stories260K.gguf");
    if (!src) return;
    char srcb[4096];
    snprintf(srcb, sizeof srcb, "%s", src);
    struct model m;
    T_OK(!model_load(&m, srcb));
    struct imatrix im = IMATRIX_INIT, back = IMATRIX_INIT;
    synthetic_imatrix(&im, &m);
    T_EQ_INT(im.n, 5 * 7);
    const char *ip = tmp_path("im.gguf");
    T_OK(!imatrix_save(&im, ip));
    T_OK(!imatrix_load(&back, ip));
    T_EQ_INT(back.n, im.n);
    T_EQ_INT(back.chunk_size, 512);
    float *w = NULL;
    T_EQ_INT(imatrix_weights(&back, "blk.2.ffn_down.weight", 172, 1, &w), 1);
    if (w) T_NEAR(w[3], (float)(1 + (3 * 7 + 2) % 13), 0);
    free(w);
    err_set_quiet(true);
    T_ERR(imatrix_weights(&back, "blk.2.ffn_down.weight", 64, 1, &w));
    err_set_quiet(false);
    T_EQ_INT(imatrix_weights(&back, "output.weight", 64, 1, &w), 0);
    model_release(&m);
    /* imatrix-weighted files: llama.cpp's llama_model_quantize with this matrix (normalized and
     * recorded as llama-quantize --imatrix imatrix.gguf does) wrote these */
    static const struct {
        const char *ftype;
        const char *sha;
    } want[] = {
        {"Q4_K_M", "47cc97d3f0d910ee023bb2cd773c55e012bd5afa8ca6973304a10c4dc18cfc98"},
        {"Q4_0", "a72a443207c58aba22415a9f68438151dc6c5871be0a6a3a1f2fb3c7a39c2657"},
        {"Q4_1", "248970c65a83d90a67068e7140e6a75c248d561ad61e58aef202c910889584d3"},
        {"Q5_0", "aeb382e2bb4e4eb8c8059c89b6deda597b363ec5ae411d46f26e94d2273e2c41"},
        {"Q5_1", "a0534f4e85d9a76bf3db4c3bf168a4d45bf74d3667e7d25701d68a4faa64442e"},
        {"Q2_K", "0cad7d1652a10dadb13394e00e1dadf6c2bf2dc36ba8a2f107f66b6dd7b7f01b"},
        {"Q3_K_M", "9895f6a8479d83a2a78de7b4d7b78eb06cdfde9163b593800b0d72be05957196"},
        {"Q6_K", "6122e1a5b8872e73874135bf766ee32cf4a0cfab6ea8d0505af4790056eecfc6"},
        {"IQ4_NL", "60555e017d26c028062af132f413c2c2705d09c4c7f534001ee402a6fc1ff84f"},
        {"Q8_0", "9a609a77d74a84d9d9868ef15792660ec1440d2e69ea693b1f826e4b3858c8e8"},
    };
    for (size_t i = 0; i < LB_ARRAY_LEN(want); i++) {
        const char *out = tmp_path("qi.gguf");
        char hex[65];
        T_OK(!quantize_file(srcb, want[i].ftype, false, &back, out));
        file_sha(out, hex);
        if (strcmp(hex, want[i].sha))
            T_FAIL_("stories260K %s --imatrix: sha256 %s differs from llama-quantize's %s",
                    want[i].ftype, hex, want[i].sha);
    }
    imatrix_release(&im);
    imatrix_release(&back);
}

/* collection through forward()'s hook: every layer matmul's input, counted per token; layer 0's
 * attention input is rmsnorm(embedding)·attn_norm, computed here directly in double */
static void test_imatrix_collect(void) {
    const char *src = T_DATA("models/stories260K.gguf");
    if (!src) return;
    struct model m;
    T_OK(!model_load(&m, src));
    enum { T = 64 };
    int tok[T];
    for (int i = 0; i < T; i++) tok[i] = (i * 37 + 1) % m.cfg.vocab_size;
    struct imatrix im = IMATRIX_INIT;
    T_OK(!imatrix_collect(&im, &m, tok, T, 32, 1, "test", true));
    T_EQ_INT(im.n, 5 * 7);
    T_EQ_INT(im.chunk_count, 2);
    const struct imatrix_entry *e = imatrix_find(&im, "blk.0.attn_q.weight");
    const struct imatrix_entry *ek = imatrix_find(&im, "blk.0.attn_k.weight");
    const struct imatrix_entry *ed = imatrix_find(&im, "blk.4.ffn_down.weight");
    T_OK(e && ek && ed && !imatrix_find(&im, "output.weight"));
    if (e && ek && ed) {
        T_OK(e->count[0] == T && ed->count[0] == T && ed->n_cols == m.cfg.hidden_dim);
        const int D = m.cfg.dim;
        double *want = calloc((size_t)D, sizeof *want);
        float *row = malloc(sizeof(float) * (size_t)D);
        for (int t = 0; t < T; t++) { /* chunks of 32 start with BOS (1) */
            tensor_row_to_f32(&m.tok_embd, t % 32 ? tok[t] : 1, row);
            double ss = 0;
            for (int i = 0; i < D; i++) ss += (double)row[i] * row[i];
            const double sc = 1 / sqrt(ss / D + m.cfg.norm_eps);
            for (int i = 0; i < D; i++) {
                const double x = row[i] * sc * ((const float *)m.layers[0].attn_norm.data)[i];
                want[i] += x * x;
            }
        }
        double md = 0;
        for (int i = 0; i < D; i++) {
            md = fmax(md, fabs(e->sum2[i] - want[i]) / fmax(want[i], 1e-30));
            T_OK(e->sum2[i] == ek->sum2[i]);
        }
        T_NEAR(md, 0, 1e-5);
        free(want);
        free(row);
    }
    imatrix_release(&im);
    model_release(&m);
}

/* ---- quantized files load, compute, and refuse corruption ---- */

static void test_quantized_model_runs(void) {
    const char *src = T_DATA("models/stories260K.gguf");
    if (!src) return;
    char srcb[4096];
    snprintf(srcb, sizeof srcb, "%s", src);
    struct model m0;
    T_OK(!model_load(&m0, srcb));
    enum { T = 24 };
    int tok[T];
    for (int i = 0; i < T; i++) tok[i] = (i * 53 + 1) % 512;
    float *ref = malloc(sizeof(float) * T * 512), *lg = malloc(sizeof(float) * T * 512);
    struct fwd_state s;
    T_OK(!fwd_init(&s, &m0, T, T));
    T_OK(!forward(&s, tok, T, ref, false));
    fwd_release(&s);
    /* --pure on 260K: K-types fall back to Q5_0/Q5_1/Q8_0/Q4_0 (64 columns), ffn_down to F16 */
    static const char *const ft[] = {"Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0", "IQ4_NL",
                                     "Q3_K_M", "Q2_K"};
    static const double kl_max[] = {0.002, 0.002, 0.05, 0.1, 0.3, 0.3, 0.3, 0.3};
    for (size_t i = 0; i < LB_ARRAY_LEN(ft); i++) {
        const char *out = tmp_path("run.gguf");
        T_OK(!quantize_file(srcb, ft[i], true, NULL, out));
        struct model m;
        if (model_load(&m, out)) {
            T_FAIL_("%s: our file does not load", ft[i]);
            continue;
        }
        T_OK(!fwd_init(&s, &m, T, T));
        T_OK(!forward(&s, tok, T, lg, false));
        /* mean KL(f32 || quantized) of the next-token distributions */
        double kl = 0;
        float *lp = malloc(sizeof(float) * 512), *lq = malloc(sizeof(float) * 512);
        for (int t = 0; t < T; t++) {
            log_softmax(ref + t * 512, 512, lp);
            log_softmax(lg + t * 512, 512, lq);
            for (int v = 0; v < 512; v++) kl += exp(lp[v]) * (lp[v] - lq[v]);
        }
        kl /= T;
        free(lp);
        free(lq);
        if (getenv("T_VERBOSE")) fprintf(stderr, "  %s: mean KL vs f32 %.5f\n", ft[i], kl);
        T_OK(kl > 0 && kl < kl_max[i]);
        fwd_release(&s);
        model_release(&m);
    }
    free(ref);
    free(lg);
    model_release(&m0);
}

static void expect_load_error(const char *path, const char *want) {
    struct model m;
    err_set_quiet(true);
    const int rc = model_load(&m, path);
    err_set_quiet(false);
    T_ERR(rc);
    T_CONTAINS(err_last(), want);
}

/* a non-finite fp16 scale inside a block is refused by model_bind (via the dequantizer); a
 * truncated data section is refused by gguf_open */
static void test_corrupt_blocks(void) {
    const char *src = T_DATA("models/stories260K.gguf");
    if (!src) return;
    char srcb[4096];
    snprintf(srcb, sizeof srcb, "%s", src);
    static const struct {
        const char *ftype, *tensor;
        size_t scale_off; /* byte offset of an fp16 scale inside the first block */
    } cases[] = {
        {"Q4_0", "blk.1.attn_q.weight", 0},  {"Q5_1", "blk.1.attn_q.weight", 2},
        {"Q8_0", "blk.1.attn_q.weight", 0},  {"IQ4_NL", "blk.1.attn_q.weight", 0},
        {"Q6_K", "output.weight", 0},        {"Q2_K", "blk.0.attn_k.weight", 0},
    };
    for (size_t i = 0; i < LB_ARRAY_LEN(cases); i++) {
        const char *out = tmp_path("bad.gguf");
        T_OK(!quantize_file(srcb, cases[i].ftype, true, NULL, out));
        struct gguf_file g;
        T_OK(!gguf_open(&g, out));
        uint64_t off = 0;
        for (uint64_t k = 0; k < g.n_tensors; k++)
            if (g.ti[k].name.len == strlen(cases[i].tensor) &&
                !memcmp(g.ti[k].name.p, cases[i].tensor, g.ti[k].name.len))
                off = g.data_offset + g.ti[k].offset;
        const size_t size = g.size;
        gguf_close(&g);
        T_OK(off > 0);
        FILE *f = fopen(out, "r+b");
        for (int bad = 0; bad < 2; bad++) {
            const uint16_t h = bad ? 0x7C00 : 0x7E00; /* +Inf, NaN */
            fseek(f, (long)(off + cases[i].scale_off), SEEK_SET);
            fwrite(&h, 2, 1, f);
            fflush(f);
            expect_load_error(out, "weights must be finite");
        }
        fclose(f);
        T_OK(!truncate(out, (off_t)(size - 100)));
        expect_load_error(out, "runs past the end");
    }
    /* a K-quant tensor whose rows are not whole super-blocks: refused at open */
    struct gguf_writer *w = gguf_writer_new();
    static uint8_t blk[144 * 2];
    const int64_t ne[2] = {64, 8};
    gguf_writer_str(w, "general.architecture", "llama");
    gguf_writer_tensor(w, "x.weight", 12, 2, ne, blk, sizeof blk);
    const char *p = tmp_path("rows.gguf");
    T_OK(!gguf_writer_write(w, p));
    gguf_writer_free(w);
    struct gguf_file g;
    err_set_quiet(true);
    T_ERR(gguf_open(&g, p));
    err_set_quiet(false);
    T_CONTAINS(err_last(), "not a multiple of the q4_k block (256)");
}

/* a random llama GGUF with 256-wide rows (K-quants apply) */
static int write_wide_fixture(const char *path) {
    enum { D = 256, H = 512, V = 64, NL = 2 };
    struct gguf_writer *w = gguf_writer_new();
    float *buf[32];
    int nb = 0;
    gguf_writer_str(w, "general.architecture", "llama");
    gguf_writer_u32(w, "llama.embedding_length", D);
    gguf_writer_u32(w, "llama.block_count", NL);
    gguf_writer_u32(w, "llama.feed_forward_length", H);
    gguf_writer_u32(w, "llama.attention.head_count", 4);
    gguf_writer_u32(w, "llama.context_length", 64);
    struct {
        char name[64];
        int64_t a, b;
    } t[32];
    int n = 0;
#define T_ADD(nm, x, y)                                                                            \
    (snprintf(t[n].name, 64, "%s", nm), t[n].a = (x), t[n].b = (y), n++)
    T_ADD("token_embd.weight", D, V);
    T_ADD("output_norm.weight", D, 0);
    char nm[64];
    for (int l = 0; l < NL; l++) {
        static const char *const sq[] = {"attn_q", "attn_k", "attn_v", "attn_output"};
        for (int k = 0; k < 4; k++) {
            snprintf(nm, sizeof nm, "blk.%d.%s.weight", l, sq[k]);
            T_ADD(nm, D, D);
        }
        snprintf(nm, sizeof nm, "blk.%d.attn_norm.weight", l);
        T_ADD(nm, D, 0);
        snprintf(nm, sizeof nm, "blk.%d.ffn_norm.weight", l);
        T_ADD(nm, D, 0);
        snprintf(nm, sizeof nm, "blk.%d.ffn_gate.weight", l);
        T_ADD(nm, D, H);
        snprintf(nm, sizeof nm, "blk.%d.ffn_up.weight", l);
        T_ADD(nm, D, H);
        snprintf(nm, sizeof nm, "blk.%d.ffn_down.weight", l);
        T_ADD(nm, H, D);
    }
#undef T_ADD
    for (int i = 0; i < n; i++) {
        const int64_t ne[2] = {t[i].a, t[i].b ? t[i].b : 1}, cnt = ne[0] * ne[1];
        float *b = buf[nb++] = malloc(sizeof(float) * (size_t)cnt);
        gen(DIST_NORMAL, b, cnt, (uint64_t)i);
        if (!t[i].b)
            for (int64_t j = 0; j < cnt; j++) b[j] = 1.0f;
        gguf_writer_tensor(w, t[i].name, 0, t[i].b ? 2 : 1, ne, b, (uint64_t)cnt * 4);
    }
    const int rc = gguf_writer_write(w, path);
    gguf_writer_free(w);
    for (int i = 0; i < nb; i++) free(buf[i]);
    return rc;
}

/* llama.cpp's refusals, and what it accepts */
static void test_refusals(void) {
    const char *fx = tmp_path("wide.gguf"), *out = tmp_path("r.gguf"), *out2 = tmp_path("r2.gguf");
    T_OK(!write_wide_fixture(fx));
    err_set_quiet(true);
    T_ERR(quantize_file(fx, "Q2_K_S", false, NULL, out)); /* Q2_K tensors need an imatrix */
    err_set_quiet(false);
    T_CONTAINS(err_last(), "needs an importance matrix");
    T_OK(!quantize_file(fx, "Q2_K", false, NULL, out)); /* plain Q2_K does not */
    T_OK(!quantize_file(fx, "Q8_0", true, NULL, out));
    err_set_quiet(true);
    T_ERR(quantize_file(out, "Q4_0", true, NULL, out2)); /* no re-quantization */
    err_set_quiet(false);
    T_CONTAINS(err_last(), "requantizing");
    T_OK(!quantize_file(out, "Q8_0", true, NULL, out2)); /* same type: copied */
    /* stories260K has no 256-wide row: every Q2_K falls back to Q4_0, so Q2_K_S needs nothing */
    const char *src = T_DATA("models/stories260K.gguf");
    if (src) T_OK(!quantize_file(src, "Q2_K_S", false, NULL, out));
}

/* tensors present in both files have the same type and bytes; returns the number compared */
static int same_tensors(const char *pa, const char *pb) {
    struct gguf_file a, b;
    if (gguf_open(&a, pa)) return -1;
    if (gguf_open(&b, pb)) {
        gguf_close(&a);
        return -1;
    }
    int n = 0;
    for (uint64_t i = 0; i < a.n_tensors; i++) {
        const struct gguf_tensor_info *x = &a.ti[i];
        for (uint64_t j = 0; j < b.n_tensors; j++) {
            const struct gguf_tensor_info *y = &b.ti[j];
            if (x->name.len != y->name.len || memcmp(x->name.p, y->name.p, x->name.len)) continue;
            n++;
            if (x->ggml_type != y->ggml_type || x->nbytes != y->nbytes ||
                memcmp(a.map + a.data_offset + x->offset, b.map + b.data_offset + y->offset,
                       x->nbytes))
                T_FAIL_("%s vs %s: tensor %.*s differs", pa, pb, (int)x->name.len, x->name.p);
        }
    }
    gguf_close(&a);
    gguf_close(&b);
    return n;
}

/* HF sources: q/k rows permuted back to GGUF pairs, 1-D tensors F32; the reference's GGUF twins
 * (tests/ref/llama_ref.py, written as llama.cpp's converter does) quantize to the same bytes */
static void test_hf_source(void) {
    char dir[512], cmd[1024], man[600];
    snprintf(dir, sizeof dir, "%s/fx", t_tmpdir());
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 tests/ref/llama_ref.py make-fixtures '%s' >/dev/null", dir);
    if (system(cmd)) {
        T_FAIL_("could not make the fixtures: %s", cmd);
        return;
    }
    snprintf(man, sizeof man, "%s/manifest.txt", dir);
    FILE *f = fopen(man, "r");
    char name[64], hf[1024], gg[1024];
    int vocab, n_models = 0;
    while (f && fscanf(f, "%63s %d %1023s %1023s", name, &vocab, hf, gg) == 4) {
        if (!strcmp(hf, "-")) continue;
        static const char *const fts[] = {"F32", "Q8_0", "Q4_K_M"};
        for (size_t k = 0; k < LB_ARRAY_LEN(fts); k++) {
            const char *a = tmp_path("hf_a.gguf"), *b = tmp_path("hf_b.gguf");
            struct model m;
            struct gguf_quant_opts o = {.ftype = fts[k], .pure = true, .vocab_optional = true,
                                        .quiet = true};
            T_OK(!model_load(&m, hf));
            T_OK(!gguf_quantize_model(&m, &o, a, NULL));
            model_release(&m);
            T_OK(!quantize_file(gg, fts[k], true, NULL, b));
            const int n = same_tensors(a, b);
            if (n < 20) T_FAIL_("%s %s: %d tensors in common", name, fts[k], n);
        }
        n_models++;
    }
    if (f) fclose(f);
    T_EQ_INT(n_models, 4);
}

/* llama2.c sources: the vocabulary of tokenizer.bin becomes llama.cpp's (the one its
 * convert-llama2c wrote into stories260K.gguf), the weights are the same */
static void test_llama2c_source(void) {
    char bin[4096], gg[4096], tokp[4096];
    const char *p = T_DATA("models/stories260K.bin");
    if (!p) return;
    snprintf(bin, sizeof bin, "%s", p);
    if (!(p = T_DATA("models/stories260K.gguf"))) return;
    snprintf(gg, sizeof gg, "%s", p);
    if (!(p = T_DATA("tokenizers/tok512.bin"))) return;
    snprintf(tokp, sizeof tokp, "%s", p);
    struct model m;
    struct tokenizer *tok = NULL;
    T_OK(!model_load(&m, bin));
    T_OK(!tokenizer_load(&tok, tokp));
    const char *out = tmp_path("l2c.gguf");
    struct gguf_quant_opts o = {.ftype = "F32", .tok = tok, .quiet = true};
    struct gguf_quant_result res;
    T_OK(!gguf_quantize_model(&m, &o, out, &res));
    T_OK(res.has_vocab);
    model_release(&m);
    tokenizer_free(tok);
    T_OK(same_tensors(out, gg) >= 40);
    struct gguf_file a, b;
    T_OK(!gguf_open(&a, out));
    T_OK(!gguf_open(&b, gg));
    static const char *const keys[] = {"tokenizer.ggml.tokens", "tokenizer.ggml.scores",
                                       "tokenizer.ggml.token_type"};
    for (size_t k = 0; k < LB_ARRAY_LEN(keys); k++) {
        const struct gguf_kv *x = gguf_find(&a, keys[k]), *y = gguf_find(&b, keys[k]);
        if (!x || !y || x->v.arr.n != y->v.arr.n || x->v.arr.type != y->v.arr.type) {
            T_FAIL_("%s: missing or of another shape", keys[k]);
            continue;
        }
        for (uint64_t i = 0; i < x->v.arr.n; i++) {
            const bool same =
                x->v.arr.type == GGUF_TYPE_STRING
                    ? x->v.arr.strs[i].len == y->v.arr.strs[i].len &&
                          !memcmp(x->v.arr.strs[i].p, y->v.arr.strs[i].p, x->v.arr.strs[i].len)
                    : gguf_arr_float(x, i) == gguf_arr_float(y, i);
            if (!same) {
                T_FAIL_("%s[%llu] differs from llama.cpp's conversion", keys[k],
                        (unsigned long long)i);
                break;
            }
        }
    }
    gguf_close(&a);
    gguf_close(&b);
}

/* ---- our Q8_0 against llama2.c's own Q8_0 export of the same weights ---- */

/* stories260K_q80.bin (llama2.c export.py version 2, group size 32): a 256-byte header, the fp32
 * norms, then per weight matrix (tok_embeddings, then wq, wk, wv, wo, w1, w2, w3 of every layer
 * in turn) its int8 values and its fp32 group scales. Q8_0 blocks of 32 overlap it exactly: the
 * scale (ours is fp16: the same max|w|/127 rounded) and the int8 values (ours: roundf(w·(1/d));
 * llama2.c: torch.round(w/d), half to even: they may differ at exact or near ties only). */
static void test_q8_0_vs_llama2c_export(void) {
    const char *p = T_DATA("models/stories260K.bin");
    if (!p) return;
    char mp[4096];
    snprintf(mp, sizeof mp, "%s", p);
    if (!(p = T_DATA("models/stories260K_q80.bin"))) return;
    FILE *f = fopen(p, "rb");
    T_OK(f != NULL);
    if (!f) return;
    fseek(f, 0, SEEK_END);
    const long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)size);
    T_OK(buf && fread(buf, 1, (size_t)size, f) == (size_t)size);
    fclose(f);
    struct model m;
    T_OK(!model_load(&m, mp));
    const struct model_config *c = &m.cfg;
    int32_t gs;
    memcpy(&gs, buf + 37, 4);
    T_EQ_INT(gs, 32);
    size_t off = 256;
    /* the fp32 norms are the same floats */
    int norm_diff = 0;
    for (int which = 0; which < 2; which++)
        for (int l = 0; l < c->n_layers; l++) {
            const struct tensor *t = which ? &m.layers[l].ffn_norm : &m.layers[l].attn_norm;
            norm_diff += memcmp(buf + off, t->data, (size_t)c->dim * 4) != 0;
            off += (size_t)c->dim * 4;
        }
    norm_diff += memcmp(buf + off, m.out_norm.data, (size_t)c->dim * 4) != 0;
    off += (size_t)c->dim * 4;
    T_EQ_INT(norm_diff, 0);
    const struct tensor *mats[1 + 7 * 16];
    int n = 0;
    mats[n++] = &m.tok_embd;
    for (int k = 0; k < 7; k++)
        for (int l = 0; l < c->n_layers && l < 16; l++) {
            const struct layer *L = &m.layers[l];
            const struct tensor *order[7] = {&L->lin[LIN_Q],    &L->lin[LIN_K], &L->lin[LIN_V],
                                             &L->lin[LIN_O],    &L->lin[LIN_GATE],
                                             &L->lin[LIN_DOWN], &L->lin[LIN_UP]};
            mats[n++] = order[k];
        }
    long n_vals = 0, q_diff = 0, q_diff_gt1 = 0, n_scales = 0, s_diff = 0;
    for (int i = 0; i < n && off <= (size_t)size; i++) {
        const struct tensor *t = mats[i];
        const int64_t numel = tensor_nrows(t) * t->ne[0];
        T_OK(t->type == DTYPE_F32 && numel % 32 == 0);
        if (off + (size_t)numel + (size_t)numel / 8 > (size_t)size) {
            T_FAIL_("%s: the export ends early", t->name);
            break;
        }
        const int8_t *q = (const int8_t *)(buf + off);
        const unsigned char *sp = buf + off + numel;
        struct block_q8_0 *b = malloc(sizeof *b * (size_t)(numel / 32));
        gq_q8_0_ref(t->data, b, numel);
        for (int64_t g = 0; g < numel / 32; g++) {
            float sc;
            memcpy(&sc, sp + 4 * g, 4);
            n_scales++;
            s_diff += b[g].d != lb_f32_to_fp16(sc);
            for (int j = 0; j < 32; j++) {
                const int d = b[g].qs[j] - q[g * 32 + j];
                n_vals++;
                q_diff += d != 0;
                q_diff_gt1 += d > 1 || d < -1;
            }
        }
        free(b);
        off += (size_t)numel + (size_t)numel / 8;
    }
    T_EQ_INT(off, size); /* every byte of the export accounted for */
    T_EQ_INT(s_diff, 0);
    T_EQ_INT(q_diff_gt1, 0);
    T_EQ_INT(q_diff, 0); /* this file has no tie where the two roundings part */
    printf("  stories260K Q8_0 vs llama2.c's export: %ld scales, %ld differ (after fp16); %ld int8 "
           "values, %ld differ\n", n_scales, s_diff, n_vals,
           q_diff);
    model_release(&m);
    free(buf);
}

int main(void) {
    T_RUN(test_block_table);
    T_RUN(test_ggml_hashes);
    T_RUN(test_rmse_budgets);
    T_RUN(test_round_trip_sizes);
    T_RUN(test_matmul_types);
    T_RUN(test_mix_rules);
    T_RUN(test_files_equal_llama_cpp);
    T_RUN(test_imatrix_files);
    T_RUN(test_imatrix_collect);
    T_RUN(test_quantized_model_runs);
    T_RUN(test_corrupt_blocks);
    T_RUN(test_refusals);
    T_RUN(test_hf_source);
    T_RUN(test_llama2c_source);
    T_RUN(test_q8_0_vs_llama2c_export);
    return T_DONE();
}
