/* tests/test_iquants.c: the i-quant and ternary GGUF types (kernels/iquants.h) against ggml.
 *
 *  - the grid data and every table derived from it, against the sha256 of ggml's own arrays
 *    (ggml-quants.c's kgrid_* and ggml-common.h's iq*_grid / ksigns_iq2xs of llama.cpp de3ff81,
 *    hashed as little-endian arrays by a script reading those files);
 *  - byte identity with ggml itself when its quantizer is at hand: tests/ggml_oracle.sh builds
 *    tests/ggml_oracle.c against the prebuilt libggml-base.so of that release into
 *    out/ggml-oracle/ (LOWBIT_GGML_ORACLE overrides the path); every type, eight input
 *    distributions, without and with an importance matrix, bytes and dequantized floats. Without
 *    the oracle that test says "skipped" in one line;
 *  - the same comparison through stored hashes, which need no oracle: EXPECT below are ggml's
 *    outputs on this file's inputs, printed by `IQ_PRINT_HASHES=1 out/build/tests/test_iquants`
 *    with the oracle present (the hashes of the oracle's bytes, not of ours);
 *  - properties: round trips within a per-type error bound, zero rows to zero, determinism over
 *    thread counts, the refusal of imatrix-less IQ2_XXS/XS and IQ1_S files, and corrupt blocks.
 * Inputs use integer arithmetic only (the same bits on every platform). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "eval/gguf.h"
#include "eval/model.h"
#include "kernels/base/err.h"
#include "kernels/base/sha256.h"
#include "kernels/ggml_quants.h"
#include "kernels/iquants.h"
#include "quant/gguf_mix.h"
#include "quant/imatrix.h"
#include "t.h"

static const struct {
    enum dtype t;
    const char *name;
    int ggml, bytes;
    double bpw;
} types[] = {
    {DTYPE_TQ1_0, "tq1_0", 34, 54, 1.6875},     {DTYPE_TQ2_0, "tq2_0", 35, 66, 2.0625},
    {DTYPE_IQ4_XS, "iq4_xs", 23, 136, 4.25},    {DTYPE_IQ3_S, "iq3_s", 21, 110, 3.4375},
    {DTYPE_IQ3_XXS, "iq3_xxs", 18, 98, 3.0625}, {DTYPE_IQ2_S, "iq2_s", 22, 82, 2.5625},
    {DTYPE_IQ2_XS, "iq2_xs", 17, 74, 2.3125},   {DTYPE_IQ2_XXS, "iq2_xxs", 16, 66, 2.0625},
    {DTYPE_IQ1_S, "iq1_s", 19, 50, 1.5625},     {DTYPE_IQ1_M, "iq1_m", 29, 56, 1.75},
};
#define N_TYPES (sizeof types / sizeof types[0])

/* ---- inputs ---- */

static uint64_t rs;
static uint64_t rnext(void) {
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return rs;
}
static int32_t r24(void) { return (int32_t)(rnext() >> 40); }

enum { D_NORMAL, D_OUTLIERS, D_ZERO, D_TINY, D_MIXED, D_GRID, D_POSITIVE, D_HEAVY, D_COUNT };

static void gen(int d, float *x, int64_t n, uint64_t seed) {
    rs = 0x9E3779B97F4A7C15ull ^ (seed * 0x100000001B3ull + (uint64_t)d);
    for (int64_t i = 0; i < n; i++) {
        const int32_t s = r24() + r24() + r24() + r24() - (2 << 24);
        float v = (float)s * 0x1p-24f;
        switch (d) {
        case D_OUTLIERS: v *= (rnext() & 63) ? 1.0f : 32.0f; break;
        case D_ZERO: v = 0.0f; break;
        case D_TINY: v *= 0x1p-20f; break;
        case D_MIXED: v = (i / 32) % 3 == 1 ? 0.0f : v; break;
        case D_GRID: v = (float)((int)(r24() % 17) - 8) * 0.125f; break;
        case D_POSITIVE: v = fabsf(v) + 0.5f; break;
        case D_HEAVY: v = v * v * v * 0.03f; break;
        default: v *= 0.03f; break; /* weight-like scale */
        }
        x[i] = v;
    }
}

static void gen_imatrix(float *w, int64_t n, uint64_t seed) {
    rs = 0xD1B54A32D192ED03ull ^ seed;
    for (int64_t i = 0; i < n; i++)
        w[i] = (r24() % 29 == 0) ? 0.0f : (float)(r24() % 4096 + 1) * 0x1p-8f;
}

enum { HK = 512, HR = 4, NR = HR * D_COUNT }; /* row length, rows per distribution, rows */

/* the comparison input: HR rows of each distribution (rows are independent in every quantizer,
 * so one call over all of them is the same as one per distribution) and one importance matrix */
static void inputs(float *x, float *im, size_t type_index) {
    (void)type_index; /* the same rows for every type */
    for (int d = 0; d < D_COUNT; d++) gen(d, x + (size_t)d * HK * HR, HK * HR, 7);
    gen_imatrix(im, HK, 0);
}

/* mode 0: no imatrix (only for the types that allow it), 1: with one */
static bool mode_ok(enum dtype t, int mode) { return mode == 1 || !iq_requires_imatrix(t); }

/* ---- tables ---- */

static void hex_of(const void *p, size_t n, char hex[65]) {
    struct sha256 h;
    sha256_init(&h);
    sha256_update(&h, p, n);
    sha256_hex(&h, hex);
}

static void test_grid_tables(void) {
    static const struct {
        const uint16_t *a;
        size_t n;
        const char *sha;
    } kg[] = {
        {iq_kgrid_2bit_256, 256, "915952ebc4af8ddba8113583ca1316fc818843f7b825bbf1a25ae1c39bf0e16d"},
        {iq_kgrid_2bit_512, 512, "f66435966ca8d64e9e4a6e3c91e64afcf9015e700ec85962f527283ebae207b9"},
        {iq_kgrid_2bit_1024, 1024,
         "e6e75e121b65e8afa5c1f92b71463cfbe217b83893f438acde22fd5db06a43f7"},
        {iq_kgrid_1bit_2048, 2048,
         "e9ffebfc997ad6023063a667c0bf4eedd8ebf7f56b3da399cbc7d1b1f7ea52c6"},
        {iq_kgrid_3bit_256, 256, "c9678803c61b2210fbd8cbbb3f965a835409cd7d88a04d086d236261bd221d11"},
        {iq_kgrid_3bit_512, 512, "353274c58dd7d8dc5ee960dc8fc54ff9164eaf2b49206b841cd49415cf393f81"},
    };
    char hex[65];
    for (size_t i = 0; i < sizeof kg / sizeof kg[0]; i++) {
        hex_of(kg[i].a, kg[i].n * 2, hex);
        T_EQ_STR(hex, kg[i].sha);
    }
    /* ggml-common.h's tables: iq2xxs_grid, iq2xs_grid, iq2s_grid, iq3xxs_grid, iq3s_grid,
     * iq1s_grid, ksigns_iq2xs */
    static const struct {
        size_t bytes;
        const char *sha;
    } dq[] = {
        {256 * 8, "05826b5d3e472a3a78f196be62ac78acf81df0f909626e12ab9fa2a5d490dd54"},
        {512 * 8, "06e47aaca60b4dc1d9b5a3f34540437058a6b142b4d7a59d5ded769b4d1bf1de"},
        {1024 * 8, "e1aa1473412b0552c2174c30ef22ab4073f6a181b85a17056e8249bd2932fd88"},
        {256 * 4, "46e35f5a997efdee6c99ce57854c8a0d4f0ff8ca57e5e8a60c0793ea580acf5d"},
        {512 * 4, "bd1af4945a1717c65610b0284e4628b9a1ba3b306fae3a06f6e5f597356e349f"},
        {2048 * 8, "07540ffc1aeaf6ad4d97e96b0fcc765aae39671d4ae4a27bbd0e796fde167c6a"},
        {128, NULL},
    };
    for (int i = 0; i < 7; i++) {
        size_t bytes = 0;
        const uint8_t *p = iq_dequant_table(i, &bytes);
        T_EQ_INT(bytes, dq[i].bytes);
        if (dq[i].sha) {
            hex_of(p, bytes, hex);
            T_EQ_STR(hex, dq[i].sha);
        } else { /* ksigns: 7 bits and an even parity bit */
            for (int k = 0; k < 128; k++)
                if (__builtin_popcount(p[k]) % 2 || (p[k] & 127) != k) T_FAIL_("ksigns[%d]", k);
        }
    }
}

static void test_block_table(void) {
    for (size_t i = 0; i < N_TYPES; i++) {
        const struct dtype_info *d = dtype_get(types[i].t);
        T_EQ_STR(d->name, types[i].name);
        T_EQ_INT(d->block, 256);
        T_EQ_INT(d->block_bytes, types[i].bytes);
        T_EQ_INT(d->ggml_type, types[i].ggml);
        T_NEAR(dtype_bits_per_weight(types[i].t), types[i].bpw, 1e-12);
        T_EQ_INT(dtype_from_ggml(types[i].ggml), types[i].t);
        T_EQ_INT(dtype_from_name(types[i].name), types[i].t);
        T_OK(gq_can_quantize(types[i].t));
    }
}

/* ---- against ggml ---- */

static const char *oracle_path(void) {
    const char *p = getenv("LOWBIT_GGML_ORACLE");
    if (!p || !*p) p = "out/ggml-oracle/ggml_oracle";
    return access(p, X_OK) ? NULL : p;
}

static int spill(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    const size_t put = fwrite(p, 1, n, f);
    return fclose(f) || put != n ? -1 : 0;
}

static int slurp(const char *path, void *p, size_t n) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    const size_t got = fread(p, 1, n, f);
    fclose(f);
    return got == n ? 0 : -1;
}

/* ggml's bytes and floats through the oracle; -1 when it failed */
static int theirs(const char *oracle, enum dtype t, const float *x, const float *im, uint8_t *q,
                  float *y) {
    const char *dir = t_tmpdir();
    char fx[300], fi[300], fq[300], fy[300], cmd[2000];
    snprintf(fx, sizeof fx, "%s/x.f32", dir);
    snprintf(fi, sizeof fi, "%s/im.f32", dir);
    snprintf(fq, sizeof fq, "%s/q.bin", dir);
    snprintf(fy, sizeof fy, "%s/y.f32", dir);
    if (spill(fx, x, sizeof(float) * HK * NR) || (im && spill(fi, im, sizeof(float) * HK)))
        return -1;
    snprintf(cmd, sizeof cmd, "'%s' %d %d %d %s %s %s %s", oracle, dtype_get(t)->ggml_type, NR, HK,
             fx, im ? fi : "-", fq, fy);
    if (system(cmd)) return -1;
    return slurp(fq, q, dtype_row_size(t, HK) * NR) || slurp(fy, y, sizeof(float) * HK * NR);
}

/* the byte-identity table: type | tensors compared | bytes identical without / with imatrix |
 * ggml's bytes dequantized by lowbit, floats identical to ggml's dequantization */
static void test_bytes_equal_ggml(void) {
    const char *oracle = oracle_path();
    if (!oracle) {
        printf("test_iquants: byte comparison with ggml skipped: no oracle (tests/ggml_oracle.sh "
               "builds out/ggml-oracle/ggml_oracle)\n");
        return;
    }
    const bool print = getenv("IQ_PRINT_HASHES") != NULL;
    float *x = malloc(sizeof(float) * HK * NR), *im = malloc(sizeof(float) * HK);
    float *y0 = malloc(sizeof(float) * HK * NR), *y1 = malloc(sizeof(float) * HK * NR);
    uint8_t *q0 = malloc(136 * 2 * NR), *q1 = malloc(136 * 2 * NR);
    printf("test_iquants: type | tensors (%d rows x %d) | bytes identical without imatrix | with "
           "imatrix | floats identical\n",
           NR, HK);
    for (size_t i = 0; i < N_TYPES; i++) {
        const enum dtype t = types[i].t;
        const size_t nb = dtype_row_size(t, HK) * NR;
        size_t same[2] = {0, 0}, total[2] = {0, 0}, fsame = 0, ftotal = 0;
        int tensors = 0;
        char hex[2][65] = {"", ""};
        inputs(x, im, i);
        for (int mode = 0; mode < 2; mode++) {
            if (!mode_ok(t, mode)) continue;
            if (theirs(oracle, t, x, mode ? im : NULL, q1, y1)) {
                T_FAIL_("%s: the oracle failed", types[i].name);
                continue;
            }
            gq_quantize(t, x, q0, NR, HK, mode ? im : NULL);
            dtype_get(t)->to_f32(q1, y0, HK * NR);
            tensors++;
            for (size_t b = 0; b < nb; b++) same[mode] += q0[b] == q1[b];
            total[mode] += nb;
            for (int k = 0; k < HK * NR; k++) fsame += !memcmp(&y0[k], &y1[k], 4);
            ftotal += HK * NR;
            hex_of(q1, nb, hex[mode]);
            if (memcmp(q0, q1, nb))
                T_FAIL_("%s mode %d: bytes differ from ggml's", types[i].name, mode);
            if (fsame != ftotal)
                T_FAIL_("%s: dequantized floats differ from ggml's", types[i].name);
        }
        printf("test_iquants: %-8s | %d | %zu/%zu | %zu/%zu | %zu/%zu\n", types[i].name, tensors,
               same[0], total[0], same[1], total[1], fsame, ftotal);
        if (print) printf("    {DTYPE_%s, {\"%s\", \"%s\"}},\n", types[i].name, hex[0], hex[1]);
    }
    free(x);
    free(im);
    free(y0);
    free(y1);
    free(q0);
    free(q1);
}

/* ---- ggml's bytes without the oracle: stored hashes ---- */

/* sha256 of ggml's bytes on inputs() for mode 0 (no imatrix; "" where the type requires one)
 * and mode 1. Recorded on 2026-12-07 as lowbit's bytes (IQ_PRINT_OURS=1 prints them) after the
 * oracle found lowbit's bytes identical to ggml's for every type and mode on these inputs;
 * test_bytes_equal_ggml with IQ_PRINT_HASHES=1 prints the hashes of ggml's own output, the same
 * rows when nothing has drifted. */
static const struct {
    enum dtype t;
    const char *sha[2];
} expect[] = {
    {DTYPE_TQ1_0,
     {"23ad3e60e053ddd1d852ebbd27804dd721cf75330eaea231e1340d7f62fae97c",
      "23ad3e60e053ddd1d852ebbd27804dd721cf75330eaea231e1340d7f62fae97c"}},
    {DTYPE_TQ2_0,
     {"448750fde2fea0f3d4bd7be5d3036b66b7db2ee1e3d42c0b7a26c35816659584",
      "448750fde2fea0f3d4bd7be5d3036b66b7db2ee1e3d42c0b7a26c35816659584"}},
    {DTYPE_IQ4_XS,
     {"410c7979d4b8a271636c8cc369d944526a1f1dec25c1fc0571fac285c25083e7",
      "db2def27e1f97265c9ea11ec0184aae6597baae6267e632eaf31b1396bf22a03"}},
    {DTYPE_IQ3_S,
     {"1b16ea55b5831a534963368bee69faaccd78b1efac60e1f8b4dcaf3fef63658a",
      "3bdb00044cbc7929c1b4b725d28562b3cb6b2377c532431991fb93acd05ba8ba"}},
    {DTYPE_IQ3_XXS,
     {"470c801025817f78986fcf4f86be27bdf401b731de66bb7d8825b44ee5084b53",
      "993e5a9183c888dcae90beaf3a8a452ab18217613fa2b5966ad503dad634a75a"}},
    {DTYPE_IQ2_S,
     {"6f014fbe22f01f042b79efc95a88a644d1db1a1ce4acd472d121a516b2e7ec70",
      "4c00dfb78a2af6759852b0203ae494f98c25abd9d58f4ac2ce17e94aa5da3cb1"}},
    {DTYPE_IQ2_XS, {"", "376e7ddbe989349993bb7a095c377e18b4ee4e6038268cf1d19428af84c6cc9f"}},
    {DTYPE_IQ2_XXS, {"", "9b1bcd41e4b7a9c1ce21d2b35803c2ac39915c95746c51ed99c639b8814a2879"}},
    {DTYPE_IQ1_S, {"", "fa5df06d9fab198e5962127e204eed5284c4c3af98765bf28d6a8a870aa9d506"}},
    {DTYPE_IQ1_M,
     {"1ee3e585d4d24d8ffacbff23d873f2e01e653e93e1f5ea222a72d70af835d14a",
      "f55b0032af7b4367a228b5cbd971611eb203c8bf6149a248c88d6e079bb96da7"}},
};

static void test_stored_hashes(void) {
    float *x = malloc(sizeof(float) * HK * NR), *im = malloc(sizeof(float) * HK);
    uint8_t *q = malloc(136 * 2 * NR);
    T_EQ_INT(sizeof expect / sizeof expect[0], N_TYPES);
    for (size_t k = 0; k < sizeof expect / sizeof expect[0]; k++) {
        size_t i = 0;
        while (i < N_TYPES && types[i].t != expect[k].t) i++;
        T_OK(i < N_TYPES);
        if (i == N_TYPES) continue;
        const enum dtype t = types[i].t;
        inputs(x, im, i);
        for (int mode = 0; mode < 2; mode++) {
            if (!mode_ok(t, mode)) continue;
            gq_quantize(t, x, q, NR, HK, mode ? im : NULL);
            char hex[65];
            hex_of(q, dtype_row_size(t, HK) * NR, hex);
            if (getenv("IQ_PRINT_OURS")) printf("    %s mode %d: %s\n", types[i].name, mode, hex);
            if (strcmp(hex, expect[k].sha[mode]))
                T_FAIL_("%s mode %d: sha256 %s, ggml's %s", types[i].name, mode, hex,
                        expect[k].sha[mode]);
        }
    }
    free(x);
    free(im);
    free(q);
}

/* ---- properties ---- */

/* relative RMS error of a round trip on weight-like rows (Irwin-Hall, no imatrix; a uniform
 * one for IQ2_XXS/XS, IQ1_S), under a per-type bound about 1.3x what the types reach (measured:
 * TQ 0.747, IQ4_XS 0.074, IQ3_S 0.162, IQ3_XXS 0.205, IQ2_S 0.253, IQ2_XS 0.291, IQ2_XXS 0.339,
 * IQ1_S 0.473, IQ1_M 0.565); ggml's test-quantize-fns has no bounds for these types */
static void test_round_trip(void) {
    static const struct {
        enum dtype t;
        double max_rel;
    } bound[] = {
        {DTYPE_TQ1_0, 0.85},   {DTYPE_TQ2_0, 0.85}, {DTYPE_IQ4_XS, 0.10}, {DTYPE_IQ3_S, 0.21},
        {DTYPE_IQ3_XXS, 0.27}, {DTYPE_IQ2_S, 0.33}, {DTYPE_IQ2_XS, 0.38}, {DTYPE_IQ2_XXS, 0.44},
        {DTYPE_IQ1_S, 0.62},   {DTYPE_IQ1_M, 0.72},
    };
    enum { N = 8 * QK_K };
    float *x = malloc(sizeof(float) * N), *y = malloc(sizeof(float) * N);
    float *im = malloc(sizeof(float) * N);
    uint8_t *q = malloc(136 * (N / 256)), *q2 = malloc(136 * (N / 256));
    for (size_t k = 0; k < sizeof bound / sizeof bound[0]; k++) {
        const enum dtype t = bound[k].t;
        gen(D_NORMAL, x, N, 99);
        for (int i = 0; i < N; i++) im[i] = 1.0f;
        const float *w = iq_requires_imatrix(t) ? im : NULL;
        gq_quantize(t, x, q, 1, N, w);
        dtype_get(t)->to_f32(q, y, N);
        double se = 0, sx = 0;
        for (int i = 0; i < N; i++) {
            se += (double)(x[i] - y[i]) * (x[i] - y[i]);
            sx += (double)x[i] * x[i];
        }
        const double rel = sqrt(se / sx);
        if (getenv("T_VERBOSE"))
            fprintf(stderr, "  %-8s relative rms error %.4f (bound %.2f)\n", dtype_get(t)->name,
                    rel, bound[k].max_rel);
        if (!(rel < bound[k].max_rel))
            T_FAIL_("%s: relative rms error %.4f over %.2f", dtype_get(t)->name, rel,
                    bound[k].max_rel);
        /* rows are independent: 8 rows of 256 at once = one by one (what the per-thread
         * slices of the file quantizer rely on) */
        gq_quantize(t, x, q2, 8, QK_K, w);
        T_OK(!memcmp(q, q2, dtype_row_size(t, N)));
        /* the dtype table's from_f32 is the same quantizer */
        dtype_get(t)->from_f32(x, q2, N);
        T_OK(!memcmp(q, q2, dtype_row_size(t, N)));
        /* zeros in, zeros out */
        memset(x, 0, sizeof(float) * N);
        gq_quantize(t, x, q, 1, N, w);
        dtype_get(t)->to_f32(q, y, N);
        for (int i = 0; i < N; i++)
            if (y[i] != 0.0f) {
                T_FAIL_("%s: zero row gave %g at %d", dtype_get(t)->name, (double)y[i], i);
                break;
            }
    }
    free(x);
    free(y);
    free(im);
    free(q);
    free(q2);
}

/* random bytes as blocks: dequantization reads only inside its tables (indices are masked to
 * the grid sizes; ASan in make check) and, with a finite scale, gives finite weights within
 * the type's largest magnitude */
static void test_corrupt_blocks(void) {
    enum { NB = 64 };
    uint8_t *q = malloc(136 * NB);
    float *y = malloc(sizeof(float) * QK_K * NB);
    for (size_t i = 0; i < N_TYPES; i++) {
        const enum dtype t = types[i].t;
        rs = 0x1234567ull + i;
        for (int b = 0; b < 136 * NB; b++) q[b] = (uint8_t)rnext();
        const int bb = types[i].bytes;
        for (int b = 0; b < NB; b++) { /* scale = 1.0 (fp16 0x3C00) where the block has a d */
            uint8_t *blk = q + (size_t)b * bb;
            const lb_fp16 one = 0x3C00;
            if (t == DTYPE_TQ1_0 || t == DTYPE_TQ2_0) memcpy(blk + bb - 2, &one, 2);
            else if (t == DTYPE_IQ1_M) { /* d in the top nibbles of the scale words */
                for (int w = 0; w < 4; w++) {
                    uint16_t sc;
                    memcpy(&sc, blk + 48 + 2 * w, 2);
                    sc = (uint16_t)((sc & 0x0fff) | ((one >> (4 * w)) & 0xf) << 12);
                    memcpy(blk + 48 + 2 * w, &sc, 2);
                }
            } else memcpy(blk, &one, 2);
        }
        dtype_get(t)->to_f32(q, y, QK_K * NB);
        for (int k = 0; k < QK_K * NB; k++)
            if (!isfinite(y[k]) || fabsf(y[k]) > 127.0f * 63.0f) {
                T_FAIL_("%s: weight %d = %g from a finite scale", types[i].name, k, (double)y[k]);
                break;
            }
        /* a NaN scale: NaN weights (model_bind refuses the file), no crash */
        const lb_fp16 nan = 0x7E00;
        if (t != DTYPE_IQ1_M) {
            memcpy(t == DTYPE_TQ1_0 || t == DTYPE_TQ2_0 ? q + bb - 2 : q, &nan, 2);
            dtype_get(t)->to_f32(q, y, QK_K);
            int n_nan = 0;
            for (int k = 0; k < QK_K; k++) n_nan += isnan(y[k]);
            T_OK(n_nan > 0);
        }
    }
    free(q);
    free(y);
    /* a tensor of these types whose rows are not whole super-blocks: refused at open */
    for (size_t i = 0; i < N_TYPES; i++) {
        struct gguf_writer *w = gguf_writer_new();
        static uint8_t blk[136 * 2];
        const int64_t ne[2] = {128, 4};
        gguf_writer_str(w, "general.architecture", "llama");
        gguf_writer_tensor(w, "x.weight", (uint32_t)types[i].ggml, 2, ne, blk,
                           (uint64_t)types[i].bytes * 2);
        char p[300];
        snprintf(p, sizeof p, "%s/rows-%s.gguf", t_tmpdir(), types[i].name);
        T_OK(!gguf_writer_write(w, p));
        gguf_writer_free(w);
        struct gguf_file g;
        err_set_quiet(true);
        const int rc = gguf_open(&g, p);
        err_set_quiet(false);
        T_ERR(rc);
        if (!rc) gguf_close(&g);
        char want[100];
        snprintf(want, sizeof want, "not a multiple of the %s block (256)", types[i].name);
        T_CONTAINS(err_last(), want);
    }
}

/* ---- llama-quantize's mixes ---- */

/* a llama model of NL layers, width 256 (K-quants and i-quants apply), hidden 512, vocab 512 */
enum { FX_D = 256, FX_H = 512, FX_V = 512, FX_NL = 8 };

static int mix_of(const char *ftype, bool pure, bool imatrix, int n_kv, const char *name, char *out,
                  size_t size) {
    static struct gguf_mix_tensor t[128], o[128];
    static char names[128][64];
    int n = 0;
#define ADD(nm, a, b)                                                                              \
    (snprintf(names[n], 64, "%s", nm), t[n].name = names[n], t[n].n_dims = 2, t[n].ne[0] = (a),    \
     t[n].ne[1] = (b), t[n].ne[2] = t[n].ne[3] = 1, t[n].type = DTYPE_F32, n++)
    ADD("token_embd.weight", FX_D, FX_V);
    ADD("output.weight", FX_D, FX_V);
    char nm[64];
    const int kv = FX_D / 4 * n_kv;
    for (int l = 0; l < FX_NL; l++) {
        static const char *const sq[] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                                         "ffn_gate", "ffn_up", "ffn_down"};
        for (int k = 0; k < 7; k++) {
            snprintf(nm, sizeof nm, "blk.%d.%s.weight", l, sq[k]);
            const int64_t a = k == 6 ? FX_H : FX_D;
            const int64_t b = k == 1 || k == 2 ? kv : k == 4 || k == 5 ? FX_H : FX_D;
            ADD(nm, a, b);
        }
    }
#undef ADD
    int idx[128];
    enum dtype ty[128];
    gguf_mix_order(t, n, idx);
    for (int i = 0; i < n; i++) o[i] = t[idx[i]];
    enum gguf_ftype ft = GGUF_FTYPE_ALL_F32;
    if (gguf_ftype_from_name(ftype, &ft)) return -1;
    const struct gguf_mix_model mm = {"llama", FX_NL, 4, n_kv, 0};
    const struct gguf_mix_opts opt = {ft, pure, false, imatrix};
    gguf_mix_types(&mm, &opt, o, n, ty, NULL, true);
    size_t len = 0;
    out[0] = 0;
    for (int i = 0; i < n && len < size; i++)
        if (!name || (name[0] == '=' ? !strcmp(o[i].name, name + 1) : !!strstr(o[i].name, name)))
            len += (size_t)snprintf(out + len, size - len, "%s%s", len ? " " : "",
                                    dtype_get(ty[i])->name);
    return 0;
}

/* per ftype: token_embd, output, then one tensor kind over the 8 layers (llama_tensor_get_type_impl
 * read branch by branch; the whole files are compared with llama-quantize's below) */
static void test_mix_rules(void) {
    static const struct {
        const char *ftype;
        bool imatrix;
        int n_kv;
        const char *name, *want;
    } cases[] = {
        {"IQ2_XXS", true, 4, "=token_embd.weight", "q2_k"},
        {"IQ2_XXS", true, 4, "=output.weight", "q5_k"},
        {"IQ2_XXS", true, 4, "attn_v", "q2_k q2_k q2_k q2_k q2_k q2_k q2_k q2_k"},
        {"IQ2_XXS", true, 1, "attn_v", "q4_k q4_k q4_k q4_k q4_k q4_k q4_k q4_k"},
        {"IQ2_XXS", true, 4, "ffn_down",
         "q2_k iq2_xxs iq2_xxs iq2_xxs iq2_xxs iq2_xxs iq2_xxs iq2_xxs"},
        {"IQ2_XXS", true, 4, "attn_output",
         "iq2_xxs iq2_xxs iq2_xxs iq2_xxs iq2_xxs iq2_xxs iq2_xxs iq2_xxs"},
        {"IQ1_S", true, 4, "attn_output",
         "iq2_xxs iq2_xxs iq2_xxs iq2_xxs iq2_xxs iq2_xxs iq2_xxs iq2_xxs"},
        {"IQ1_M", true, 4, "ffn_gate", "iq1_m iq1_m iq1_m iq1_m iq1_m iq1_m iq1_m iq1_m"},
        {"IQ2_S", true, 4, "=token_embd.weight", "iq3_s"},
        {"IQ2_S", true, 4, "attn_q", "iq2_xs iq2_xs iq2_xs iq2_xs iq2_xs iq2_xs iq2_xs iq2_xs"},
        {"IQ2_M", true, 4, "attn_v", "iq3_s iq3_s iq3_s iq3_s iq3_s iq3_s iq3_s iq3_s"},
        {"IQ2_M", true, 4, "ffn_down", "iq3_s iq2_s iq2_s iq2_s iq2_s iq2_s iq2_s iq2_s"},
        {"IQ3_XXS", true, 4, "attn_v",
         "iq3_xxs iq3_xxs iq3_xxs iq3_xxs iq3_xxs iq3_xxs iq3_xxs iq3_xxs"},
        {"IQ3_XXS", false, 4, "attn_v", "iq3_s iq3_s iq3_s iq3_s iq3_s iq3_s iq3_s iq3_s"},
        {"IQ3_XXS", false, 4, "ffn_down", "q4_k q3_k q3_k q3_k q3_k q3_k q3_k q3_k"},
        {"IQ3_XXS", true, 4, "attn_q", "iq2_s iq2_s iq2_s iq2_s iq2_s iq2_s iq2_s iq2_s"},
        {"IQ3_XXS", true, 4, "attn_output", "iq3_s iq3_s iq3_s iq3_s iq3_s iq3_s iq3_s iq3_s"},
        {"IQ3_XXS", true, 4, "=output.weight", "q5_k"},
        {"IQ3_XS", false, 4, "ffn_up",
         "iq3_s iq3_xxs iq3_xxs iq3_xxs iq3_xxs iq3_xxs iq3_xxs iq3_s"},
        {"IQ3_XS", false, 1, "attn_v", "q4_k q4_k q4_k q4_k q4_k q4_k q4_k q4_k"},
        {"IQ3_M", false, 4, "attn_v", "q4_k q4_k q4_k q4_k q4_k q4_k q4_k q4_k"},
        {"IQ3_M", false, 4, "ffn_down", "q4_k iq3_s iq3_s iq3_s iq3_s iq3_s iq3_s iq3_s"},
        {"IQ3_M", false, 4, "attn_output", "q4_k q4_k q4_k q4_k q4_k q4_k q4_k q4_k"},
        {"IQ3_M", false, 4, "=output.weight", "q6_k"},
        {"IQ4_XS", false, 4, "ffn_down", "q5_k iq4_xs iq4_xs iq4_xs iq4_xs iq4_xs iq4_xs iq4_xs"},
        {"IQ4_XS", true, 4, "ffn_down", "iq4_xs iq4_xs iq4_xs iq4_xs iq4_xs iq4_xs iq4_xs iq4_xs"},
        {"IQ4_XS", false, 1, "attn_v", "q5_k q5_k q5_k q5_k q5_k q5_k q5_k q5_k"},
        {"TQ2_0", false, 4, "=token_embd.weight", "q4_k"},
        {"TQ1_0", false, 4, "attn_k", "tq1_0 tq1_0 tq1_0 tq1_0 tq1_0 tq1_0 tq1_0 tq1_0"},
    };
    static char s[4096];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        T_EQ_INT(mix_of(cases[i].ftype, false, cases[i].imatrix, cases[i].n_kv, cases[i].name, s,
                        sizeof s),
                 0);
        if (strcmp(s, cases[i].want))
            T_FAIL_("%s%s n_kv %d %s: \"%s\", want \"%s\"", cases[i].ftype,
                    cases[i].imatrix ? " (imatrix)" : "", cases[i].n_kv, cases[i].name, s,
                    cases[i].want);
    }
    /* 128-wide rows fall back: i-quants to IQ4_NL, ternary to Q4_0 (tensor_type_fallback) */
    const struct gguf_mix_model mm = {"llama", 1, 4, 4, 0};
    struct gguf_mix_tensor t = {"blk.0.attn_q.weight", 2, {128, 128, 1, 1}, DTYPE_F32};
    static const char *const ft[] = {"IQ2_XS", "IQ4_XS", "TQ1_0"};
    static const enum dtype want[] = {DTYPE_IQ4_NL, DTYPE_IQ4_NL, DTYPE_Q4_0};
    for (int i = 0; i < 3; i++) {
        enum gguf_ftype f;
        T_OK(!gguf_ftype_from_name(ft[i], &f));
        const struct gguf_mix_opts o = {f, true, false, true};
        enum dtype got;
        int nf = 0;
        gguf_mix_types(&mm, &o, &t, 1, &got, &nf, true);
        T_EQ_INT(got, want[i]);
        T_EQ_INT(nf, 1);
    }
}

/* ---- whole files against llama-quantize ---- */

/* a llama GGUF (F32) of the mix fixture's shape, n_kv kv heads; random weight-like values */
static int write_fixture(const char *path, int n_kv) {
    struct gguf_writer *w = gguf_writer_new();
    gguf_writer_str(w, "general.architecture", "llama");
    gguf_writer_str(w, "general.name", "iq-fixture");
    gguf_writer_u32(w, "llama.context_length", 256);
    gguf_writer_u32(w, "llama.embedding_length", FX_D);
    gguf_writer_u32(w, "llama.block_count", FX_NL);
    gguf_writer_u32(w, "llama.feed_forward_length", FX_H);
    gguf_writer_u32(w, "llama.attention.head_count", 4);
    gguf_writer_u32(w, "llama.attention.head_count_kv", (uint32_t)n_kv);
    gguf_writer_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    float *bufs[128];
    int nb = 0;
    char nm[64];
    const int kv = FX_D / 4 * n_kv;
#define TW(name, a, b)                                                                             \
    do {                                                                                           \
        const int64_t ne[2] = {(a), (b)};                                                          \
        float *v = bufs[nb++] = malloc(sizeof(float) * (size_t)((a) * (b)));                       \
        if ((b) == 1)                                                                              \
            for (int64_t j = 0; j < (a); j++) v[j] = 1.0f;                                         \
        else gen(nb % 3 == 0 ? D_HEAVY : D_NORMAL, v, (a) * (b), (uint64_t)(1000 + nb));           \
        gguf_writer_tensor(w, name, 0, (b) == 1 ? 1 : 2, ne, v, (uint64_t)((a) * (b)) * 4);        \
    } while (0)
    TW("token_embd.weight", FX_D, FX_V);
    TW("output_norm.weight", FX_D, 1);
    TW("output.weight", FX_D, FX_V);
    for (int l = 0; l < FX_NL; l++) {
        static const char *const sq[] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                                         "ffn_gate", "ffn_up", "ffn_down"};
        for (int k = 0; k < 7; k++) {
            snprintf(nm, sizeof nm, "blk.%d.%s.weight", l, sq[k]);
            const int64_t a = k == 6 ? FX_H : FX_D;
            const int64_t b = k == 1 || k == 2 ? kv : k == 4 || k == 5 ? FX_H : FX_D;
            TW(nm, a, b);
        }
        snprintf(nm, sizeof nm, "blk.%d.attn_norm.weight", l);
        TW(nm, FX_D, 1);
        snprintf(nm, sizeof nm, "blk.%d.ffn_norm.weight", l);
        TW(nm, FX_D, 1);
    }
#undef TW
    const int rc = gguf_writer_write(w, path);
    gguf_writer_free(w);
    for (int i = 0; i < nb; i++) free(bufs[i]);
    return rc;
}

/* an importance matrix for every blk.* weight of the fixture: 64 random input rows each */
static int write_imatrix(const char *path, struct imatrix *im) {
    float *rows = malloc(sizeof(float) * 64 * FX_H);
    char nm[64];
    int rc = 0;
    for (int l = 0; l < FX_NL && !rc; l++) {
        static const char *const sq[] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                                         "ffn_gate", "ffn_up", "ffn_down"};
        for (int k = 0; k < 7 && !rc; k++) {
            const int64_t cols = k == 6 ? FX_H : FX_D;
            gen(D_OUTLIERS, rows, 64 * cols, (uint64_t)(7 * l + k));
            snprintf(nm, sizeof nm, "blk.%d.%s.weight", l, sq[k]);
            rc = imatrix_accumulate(im, nm, rows, 64, cols);
        }
    }
    free(rows);
    im->chunk_count = 1;
    im->chunk_size = 64;
    return rc ? rc : imatrix_save(im, path);
}

static const char *llama_quantize_path(void) {
    static char buf[4096];
    const char *p = getenv("LOWBIT_LLAMA_QUANTIZE");
    if (!p || !*p) p = "out/ggml-oracle/llama-quantize";
    if (access(p, X_OK)) return NULL;
    if (p[0] == '/') return p;
    char cwd[2048];
    if (!getcwd(cwd, sizeof cwd)) return NULL;
    snprintf(buf, sizeof buf, "%s/%s", cwd, p);
    return buf;
}

static bool files_equal(const char *a, const char *b, long *size) {
    FILE *f = fopen(a, "rb"), *g = fopen(b, "rb");
    bool eq = f && g;
    long n = 0;
    int c1 = 0, c2 = 0;
    while (eq && (c1 = getc(f)) != EOF) {
        c2 = getc(g);
        eq = c1 == c2;
        n++;
    }
    if (eq && g) eq = getc(g) == EOF;
    if (f) fclose(f);
    if (g) fclose(g);
    *size = n;
    return eq;
}

/* every i-quant and ternary file type on two fixtures (no GQA and GQA 4), with an importance
 * matrix and, where llama.cpp allows, without: lowbit's file and llama-quantize's, byte for byte */
static void test_files_equal_llama_quantize(void) {
    const char *lq = llama_quantize_path();
    if (!lq) {
        printf("test_iquants: file comparison with llama-quantize skipped: no "
               "out/ggml-oracle/llama-quantize (tests/ggml_oracle.sh builds it)\n");
        return;
    }
    static const struct {
        const char *ftype;
        bool needs_imatrix;
    } fts[] = {{"IQ4_XS", false}, {"IQ3_M", false}, {"IQ3_S", false},  {"IQ3_XS", true},
               {"TQ1_0", false},  {"TQ2_0", false}, {"IQ3_XXS", true}, {"IQ2_M", true},
               {"IQ2_S", true},   {"IQ2_XS", true}, {"IQ2_XXS", true}, {"IQ1_M", true},
               {"IQ1_S", true}};
    const char *dir = t_tmpdir();
    char fx[300], imp[300], a[300], b[300], cmd[5000];
    struct imatrix im = IMATRIX_INIT;
    snprintf(imp, sizeof imp, "%s/imatrix.gguf", dir);
    T_EQ_INT(write_imatrix(imp, &im), 0);
    int n_files = 0, n_same = 0;
    for (int kvi = 0; kvi < 2; kvi++) {
        const int n_kv = kvi ? 1 : 4;
        snprintf(fx, sizeof fx, "%s/fx%d.gguf", dir, n_kv);
        T_EQ_INT(write_fixture(fx, n_kv), 0);
        struct model m;
        T_EQ_INT(model_load(&m, fx), 0);
        for (size_t i = 0; i < sizeof fts / sizeof fts[0]; i++)
            for (int with = fts[i].needs_imatrix; with < 2; with++) {
                snprintf(a, sizeof a, "%s/lowbit-%s-%d-%d.gguf", dir, fts[i].ftype, n_kv, with);
                snprintf(b, sizeof b, "%s/llama-%s-%d-%d.gguf", dir, fts[i].ftype, n_kv, with);
                struct gguf_quant_opts o = {.ftype = fts[i].ftype,
                                            .imatrix = with ? &im : NULL,
                                            .imatrix_file = "imatrix.gguf",
                                            .quiet = true};
                T_EQ_INT(gguf_quantize_model(&m, &o, a, NULL), 0);
                snprintf(cmd, sizeof cmd,
                         "cd '%s' && '%s' %s fx%d.gguf llama-%s-%d-%d.gguf %s >lq.log 2>&1", dir,
                         lq, with ? "--imatrix imatrix.gguf" : "", n_kv, fts[i].ftype, n_kv, with,
                         fts[i].ftype);
                if (system(cmd)) {
                    T_FAIL_("llama-quantize %s failed (see %s/lq.log)", fts[i].ftype, dir);
                    continue;
                }
                long size = 0;
                const bool eq = files_equal(a, b, &size);
                n_files++;
                n_same += eq;
                printf("test_iquants: file %-7s gqa %d %-10s %8ld bytes: %s\n", fts[i].ftype,
                       4 / n_kv, with ? "imatrix" : "no imatrix", size,
                       eq ? "identical to llama-quantize's" : "DIFFERENT");
                if (!eq)
                    T_FAIL_("%s (gqa %d, imatrix %d) differs from llama-quantize's", fts[i].ftype,
                            4 / n_kv, with);
            }
        model_release(&m);
    }
    printf("test_iquants: %d of %d files identical to llama-quantize's\n", n_same, n_files);
    imatrix_release(&im);
}

/* llama.cpp's refusals without an importance matrix, ours */
static void test_refusal(void) {
    char fx[300], a[300];
    snprintf(fx, sizeof fx, "%s/fx-refuse.gguf", t_tmpdir());
    T_EQ_INT(write_fixture(fx, 4), 0);
    struct model m;
    T_EQ_INT(model_load(&m, fx), 0);
    static const char *const need[] = {"IQ2_XXS", "IQ2_XS", "IQ2_S",  "IQ2_M",
                                       "IQ1_S",   "IQ1_M",  "IQ3_XS", "IQ3_XXS"};
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++) {
        struct gguf_quant_opts o = {.ftype = need[i], .quiet = true};
        snprintf(a, sizeof a, "%s/refused.gguf", t_tmpdir());
        err_set_quiet(true);
        T_ERR(gguf_quantize_model(&m, &o, a, NULL));
        err_set_quiet(false);
        T_CONTAINS(err_last(), "needs an importance matrix");
    }
    /* --pure IQ2_XS with an importance matrix without output/token_embd entries: ggml aborts */
    struct imatrix im = IMATRIX_INIT;
    snprintf(a, sizeof a, "%s/im-refuse.gguf", t_tmpdir());
    T_EQ_INT(write_imatrix(a, &im), 0);
    struct gguf_quant_opts o = {.ftype = "IQ2_XS", .pure = true, .imatrix = &im, .quiet = true};
    snprintf(a, sizeof a, "%s/refused.gguf", t_tmpdir());
    err_set_quiet(true);
    T_ERR(gguf_quantize_model(&m, &o, a, NULL));
    err_set_quiet(false);
    T_CONTAINS(err_last(), "output.weight");
    T_CONTAINS(err_last(), "cannot make without an importance matrix");
    imatrix_release(&im);
    model_release(&m);
}

int main(void) {
    T_RUN(test_grid_tables);
    T_RUN(test_block_table);
    T_RUN(test_bytes_equal_ggml);
    T_RUN(test_stored_hashes);
    T_RUN(test_round_trip);
    T_RUN(test_corrupt_blocks);
    T_RUN(test_mix_rules);
    T_RUN(test_files_equal_llama_quantize);
    T_RUN(test_refusal);
    t_tmpdir_cleanup();
    return T_DONE();
}
