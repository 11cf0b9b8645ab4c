/* tests/test_model.c: GGUF and llama2.c files: round trips and every kind of bad input.
 * Fixtures are tiny random models written here at run time. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/forward.h"
#include "eval/gguf.h"
#include "eval/model.h"
#include "t.h"

/* ---- fixture: a tiny llama as GGUF ---- */

enum { D = 32, HID = 48, NL = 2, NH = 4, NKV = 2, HD = 8, VOC = 40 };

struct fx_opts {
    const char *arch;
    const char *omit;     /* tensor name to leave out */
    const char *poison;   /* tensor name whose element 3 becomes NaN (or Inf with poison_inf) */
    bool poison_inf;
    int bad_dim;          /* non-zero: token_embd gets this many rows instead of VOC */
};

static uint32_t rng = 1234567;
static float frand(void) {
    rng = rng * 1664525u + 1013904223u;
    return ((rng >> 8) / 16777216.0f - 0.5f) * 0.2f;
}

static float *rand_buf(int64_t n, float base) {
    float *p = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) p[i] = base + frand();
    return p;
}

#define MAX_T 64
struct fx {
    float *bufs[MAX_T];
    int n;
};

static void fx_add(struct gguf_writer *w, struct fx *fx, const struct fx_opts *o, const char *name,
                   int64_t ne0, int64_t ne1, float base) {
    if (o->omit && !strcmp(o->omit, name)) return;
    int64_t ne[2] = {ne0, ne1 ? ne1 : 1};
    float *b = rand_buf(ne0 * ne[1], base);
    if (o->poison && !strcmp(o->poison, name)) b[3] = o->poison_inf ? INFINITY : NAN;
    fx->bufs[fx->n++] = b;
    gguf_writer_tensor(w, name, 0, ne1 ? 2 : 1, ne, b, (uint64_t)(ne0 * ne[1]) * 4);
}

static int write_fixture(const char *path, const struct fx_opts *o) {
    struct gguf_writer *w = gguf_writer_new();
    struct fx fx = {0};
    gguf_writer_str(w, "general.architecture", o->arch ? o->arch : "llama");
    gguf_writer_u32(w, "llama.embedding_length", D);
    gguf_writer_u32(w, "llama.block_count", NL);
    gguf_writer_u32(w, "llama.feed_forward_length", HID);
    gguf_writer_u32(w, "llama.attention.head_count", NH);
    gguf_writer_u32(w, "llama.attention.head_count_kv", NKV);
    gguf_writer_u32(w, "llama.context_length", 64);
    gguf_writer_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    fx_add(w, &fx, o, "token_embd.weight", D, o->bad_dim ? o->bad_dim : VOC, 0);
    fx_add(w, &fx, o, "output_norm.weight", D, 0, 1);
    fx_add(w, &fx, o, "output.weight", D, VOC, 0);
    char name[64];
    for (int l = 0; l < NL; l++) {
#define T2(suffix, a, b, base)                                                                     \
    snprintf(name, sizeof name, "blk.%d." suffix, l);                                              \
    fx_add(w, &fx, o, name, a, b, base)
        T2("attn_norm.weight", D, 0, 1);
        T2("attn_q.weight", D, NH * HD, 0);
        T2("attn_k.weight", D, NKV * HD, 0);
        T2("attn_v.weight", D, NKV * HD, 0);
        T2("attn_output.weight", NH * HD, D, 0);
        T2("ffn_norm.weight", D, 0, 1);
        T2("ffn_gate.weight", D, HID, 0);
        T2("ffn_up.weight", D, HID, 0);
        T2("ffn_down.weight", HID, D, 0);
#undef T2
    }
    int rc = gguf_writer_write(w, path);
    gguf_writer_free(w);
    for (int i = 0; i < fx.n; i++) free(fx.bufs[i]);
    return rc;
}

static char *path_in_tmp(const char *name) {
    static char buf[8][512];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 512, "%s/%s", t_tmpdir(), name);
    return p;
}

static long file_size(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return n;
}

static unsigned char *slurp(const char *path, long *n) {
    *n = file_size(path);
    FILE *f = fopen(path, "rb");
    unsigned char *b = malloc((size_t)*n + 1);
    if (fread(b, 1, (size_t)*n, f) != (size_t)*n) *n = -1;
    fclose(f);
    return b;
}

static void spit(const char *path, const void *b, long n) {
    FILE *f = fopen(path, "wb");
    fwrite(b, 1, (size_t)n, f);
    fclose(f);
}

/* model_load must fail with a message containing `want` */
static void expect_load_error(const char *path, const char *want) {
    struct model m;
    err_set_quiet(true);
    int rc = model_load(&m, path);
    err_set_quiet(false);
    T_ERR(rc);
    T_CONTAINS(err_last(), want);
}

/* ---- tests ---- */

static void test_gguf_kv_round_trip(void) {
    const char *p = path_in_tmp("kv.gguf");
    struct gguf_writer *w = gguf_writer_new();
    const char *strs[] = {"a", "", "héllo"};
    int32_t ints[] = {-1, 0, 7};
    double f64[] = {0.5, -2};
    gguf_writer_str(w, "s", "value");
    gguf_writer_u32(w, "u", 4000000000u);
    gguf_writer_i32(w, "i", -5);
    gguf_writer_f32(w, "f", 1.5f);
    gguf_writer_bool(w, "b", true);
    gguf_writer_arr_str(w, "as", strs, 3);
    gguf_writer_arr(w, "ai", GGUF_TYPE_INT32, ints, 3);
    gguf_writer_arr(w, "ad", GGUF_TYPE_FLOAT64, f64, 2);
    uint8_t data[100];
    for (int i = 0; i < 100; i++) data[i] = (uint8_t)i;
    int64_t ne[2] = {5, 4};
    gguf_writer_tensor(w, "t0", 0, 2, ne, data, 80);
    int64_t ne1[1] = {10};
    gguf_writer_tensor(w, "t1", 1, 1, ne1, data + 80, 20);
    T_EQ_INT(gguf_writer_write(w, p), 0);
    gguf_writer_free(w);

    struct gguf_file g;
    T_EQ_INT(gguf_open(&g, p), 0);
    T_EQ_INT(g.version, 3);
    T_EQ_INT(g.n_kv, 8);
    T_EQ_INT(g.n_tensors, 2);
    char buf[32];
    int64_t iv;
    double fv;
    bool bv;
    T_EQ_INT(gguf_get_str(&g, "s", buf, sizeof buf), 0);
    T_EQ_STR(buf, "value");
    T_EQ_INT(gguf_get_int(&g, "u", &iv), 0);
    T_EQ_INT(iv, 4000000000LL);
    T_EQ_INT(gguf_get_int(&g, "i", &iv), 0);
    T_EQ_INT(iv, -5);
    T_EQ_INT(gguf_get_float(&g, "f", &fv), 0);
    T_NEAR(fv, 1.5, 0);
    T_EQ_INT(gguf_get_bool(&g, "b", &bv), 0);
    T_OK(bv);
    T_EQ_INT(gguf_get_int(&g, "absent", &iv), 1);
    err_set_quiet(true);
    T_ERR(gguf_get_int(&g, "s", &iv)); /* a string is not an integer */
    err_set_quiet(false);
    const struct gguf_kv *as = gguf_find(&g, "as");
    T_OK(as && as->v.arr.n == 3 && as->v.arr.strs[2].len == strlen("héllo"));
    const struct gguf_kv *ai = gguf_find(&g, "ai");
    T_OK(ai && gguf_arr_int(ai, 0) == -1 && gguf_arr_int(ai, 2) == 7);
    const struct gguf_kv *ad = gguf_find(&g, "ad");
    T_OK(ad && gguf_arr_float(ad, 1) == -2.0);
    T_EQ_INT(g.ti[0].ne[0], 5);
    T_EQ_INT(g.ti[0].ne[1], 4);
    T_EQ_INT(g.ti[1].ggml_type, 1);
    T_EQ_INT(g.ti[1].offset % 32, 0);
    T_OK(!memcmp(g.map + g.data_offset + g.ti[0].offset, data, 80));
    T_OK(!memcmp(g.map + g.data_offset + g.ti[1].offset, data + 80, 20));
    gguf_close(&g);
}

static void test_fixture_loads_and_runs(void) {
    const char *p = path_in_tmp("tiny.gguf");
    struct fx_opts o = {0};
    T_EQ_INT(write_fixture(p, &o), 0);
    struct model m;
    T_EQ_INT(model_load(&m, p), 0);
    T_EQ_INT(m.cfg.n_kv_heads, NKV);
    T_EQ_INT(m.cfg.head_dim, HD);
    T_EQ_INT(m.cfg.vocab_size, VOC);
    T_OK(!m.tied_output);
    T_EQ_INT(model_n_params(&m), (int64_t)2 * D * VOC + D + NL * (2 * D + D * NH * HD * 2 +
                                                                   2 * D * NKV * HD + 3 * D * HID));
    struct fwd_state s;
    T_EQ_INT(fwd_init(&s, &m, 16, 4), 0);
    int toks[10] = {1, 5, 9, 3, 39, 0, 2, 7, 7, 11};
    float *lg = malloc(sizeof(float) * 10 * VOC);
    T_EQ_INT(forward(&s, toks, 10, lg, false), 0); /* 3 pieces of max_batch 4 */
    bool finite = true;
    for (int i = 0; i < 10 * VOC; i++) finite &= isfinite(lg[i]) != 0;
    T_OK(finite);
    /* bad calls: out-of-vocab id, context overflow */
    err_set_quiet(true);
    int bad = VOC;
    T_ERR(forward(&s, &bad, 1, lg, false));
    T_CONTAINS(err_last(), "outside the vocabulary");
    T_ERR(forward(&s, toks, 10, lg, false));
    T_CONTAINS(err_last(), "exceed the context");
    err_set_quiet(false);
    free(lg);
    fwd_release(&s);
    model_release(&m);
}

/* every prefix of a valid file is refused cleanly (no crash, an error) */
static void test_gguf_every_truncation(void) {
    const char *p = path_in_tmp("trunc_src.gguf"), *q = path_in_tmp("trunc.gguf");
    struct fx_opts o = {0};
    T_EQ_INT(write_fixture(p, &o), 0);
    long n;
    unsigned char *b = slurp(p, &n);
    int accepted = 0, tried = 0;
    err_set_quiet(true);
    for (long cut = 0; cut < n; cut += (cut < 2000 ? 1 : 97)) {
        spit(q, b, cut);
        struct model m;
        tried++;
        if (model_load(&m, q) == 0) {
            accepted++;
            model_release(&m);
        }
    }
    err_set_quiet(false);
    T_EQ_INT(accepted, 0);
    T_OK(tried > 1000);
    free(b);
}

static void test_gguf_lies(void) {
    const char *p = path_in_tmp("lie_src.gguf"), *q = path_in_tmp("lie.gguf");
    struct fx_opts o = {0};
    T_EQ_INT(write_fixture(p, &o), 0);
    long n;
    unsigned char *b = slurp(p, &n);
    unsigned char *c = malloc((size_t)n);

    memcpy(c, b, (size_t)n);
    memcpy(c, "GGUG", 4);
    spit(q, c, n);
    expect_load_error(q, "not a GGUF file"); /* named .gguf: said so, not "not a llama2.c
                                               * checkpoint" (issue 18) */
    struct gguf_file g;
    err_set_quiet(true);
    T_ERR(gguf_open(&g, q));
    T_CONTAINS(err_last(), "bad magic");

    memcpy(c, b, (size_t)n);
    c[4] = 9; /* version 9 */
    spit(q, c, n);
    T_ERR(gguf_open(&g, q));
    T_CONTAINS(err_last(), "version 9");

    memcpy(c, b, (size_t)n);
    uint64_t huge = (uint64_t)1 << 60;
    memcpy(c + 16, &huge, 8); /* n_kv */
    spit(q, c, n);
    T_ERR(gguf_open(&g, q));
    T_CONTAINS(err_last(), "more than");

    /* tensor data past the end: the file without its last 64 bytes of data */
    spit(q, b, n - 64);
    T_ERR(gguf_open(&g, q));
    T_CONTAINS(err_last(), "past the end");

    /* absurd dimension: find token_embd's info and set ne[1] = 2^50 */
    memcpy(c, b, (size_t)n);
    unsigned char *at = memmem(c, (size_t)n, "token_embd.weight", 17);
    T_OK(at != NULL);
    if (at) {
        uint64_t big = (uint64_t)1 << 50;
        memcpy(at + 17 + 4 + 8, &big, 8);
        spit(q, c, n);
        T_ERR(gguf_open(&g, q));
        T_CONTAINS(err_last(), "absurd dimension");
    }
    /* a string length that runs past the end */
    memcpy(c, b, (size_t)n);
    uint64_t biglen = (uint64_t)1 << 40;
    memcpy(c + 24, &biglen, 8); /* first key's length */
    spit(q, c, n);
    T_ERR(gguf_open(&g, q));
    T_CONTAINS(err_last(), "past the end");
    err_set_quiet(false);
    free(b);
    free(c);
}

static void test_model_semantic_errors(void) {
    const char *q = path_in_tmp("sem.gguf");
    struct fx_opts o = {0};
    o.omit = "blk.1.ffn_up.weight";
    write_fixture(q, &o);
    expect_load_error(q, "missing tensor blk.1.ffn_up.weight");

    memset(&o, 0, sizeof o);
    o.poison = "blk.0.attn_k.weight";
    write_fixture(q, &o);
    expect_load_error(q, "NaN at row 0, column 3");

    o.poison_inf = true;
    o.poison = "output_norm.weight";
    write_fixture(q, &o);
    expect_load_error(q, "Inf");

    memset(&o, 0, sizeof o);
    o.arch = "gpt-neox";
    write_fixture(q, &o);
    expect_load_error(q, "unsupported architecture 'gpt-neox'");

    memset(&o, 0, sizeof o);
    o.bad_dim = VOC + 1; /* embedding rows disagree with output rows */
    write_fixture(q, &o);
    expect_load_error(q, "output.weight has shape");

    expect_load_error(path_in_tmp("does-not-exist.gguf"), "cannot open");
}

/* ---- llama2.c ---- */

static void write_l2c_legacy(const char *path, int32_t vocab, long drop_bytes, bool nan) {
    int32_t hdr[7] = {D, HID, NL, NH, NKV, vocab, 16};
    int64_t nv = abs(vocab);
    int64_t n = nv * D + NL * D + NL * (D * D * 2 + 2 * D * NKV * HD) + NL * D + NL * 3 * D * HID +
                D + 16 * HD + (vocab < 0 ? nv * D : 0);
    float *w = rand_buf(n, 0);
    for (int64_t i = nv * D; i < nv * D + NL * D; i++) w[i] = 1; /* attention norms */
    if (nan) w[5] = NAN;
    FILE *f = fopen(path, "wb");
    fwrite(hdr, 4, 7, f);
    fwrite(w, 4, (size_t)n, f);
    fclose(f);
    free(w);
    if (drop_bytes > 0) {
        long sz;
        unsigned char *b = slurp(path, &sz);
        spit(path, b, sz - drop_bytes);
        free(b);
    } else if (drop_bytes < 0) { /* append -drop_bytes zero bytes */
        f = fopen(path, "ab");
        for (long i = 0; i < -drop_bytes; i++) fputc(0, f);
        fclose(f);
    }
}

static void test_llama2c(void) {
    const char *p = path_in_tmp("l2c.bin");
    write_l2c_legacy(p, VOC, 0, false);
    struct model m;
    T_EQ_INT(model_load(&m, p), 0);
    T_OK(m.tied_output);
    T_EQ_INT(m.format, MODEL_FORMAT_LLAMA2C);
    model_release(&m);
    write_l2c_legacy(p, -VOC, 0, false);
    T_EQ_INT(model_load(&m, p), 0);
    T_OK(!m.tied_output);
    model_release(&m);

    write_l2c_legacy(p, VOC, 4, false);
    expect_load_error(p, "truncated llama2.c checkpoint");
    write_l2c_legacy(p, VOC, -8, false); /* 8 extra bytes */
    expect_load_error(p, "header implies");
    write_l2c_legacy(p, VOC, 0, true);
    expect_load_error(p, "NaN");
    int32_t absurd[7] = {1 << 30, 1, 1, 1, 1, 1, 1};
    spit(p, absurd, sizeof absurd);
    expect_load_error(p, "absurd header");
    spit(p, "short", 5);
    expect_load_error(p, "too short");
    /* ak42 with an unknown version */
    unsigned char h[256] = {0x32, 0x34, 0x6b, 0x61, 7};
    spit(p, h, 256);
    expect_load_error(p, "version 7");
}

/* the real stories260K files, through every container: same weights -> same log-probs */
static void test_stories260k_formats_agree(void) {
    const char *files[3] = {"models/stories260K.bin", "models/stories260K.gguf",
                            "models/tinystories_260k/checkpoint_v1.bin"};
    int toks[24] = {1, 403, 407, 261, 378, 430, 271, 280, 372, 261, 3, 5, 99, 100, 300, 500,
                    1, 2, 17, 18, 19, 20, 255, 256};
    float *lp[3] = {0};
    for (int f = 0; f < 3; f++) {
        const char *path = T_DATA(files[f]);
        if (!path) return;
        struct model m;
        T_EQ_INT(model_load(&m, path), 0);
        struct fwd_state s;
        T_EQ_INT(fwd_init(&s, &m, 64, 64), 0);
        lp[f] = malloc(sizeof(float) * 24 * 512);
        T_EQ_INT(forward(&s, toks, 24, lp[f], false), 0);
        for (int t = 0; t < 24; t++) log_softmax(lp[f] + t * 512, 512, lp[f] + t * 512);
        fwd_release(&s);
        model_release(&m);
    }
    double md = 0;
    for (int f = 1; f < 3; f++)
        for (int i = 0; i < 24 * 512; i++) md = fmax(md, fabs(lp[f][i] - lp[0][i]));
    printf("stories260K .bin/.gguf/v1: max abs log-prob diff %.3g\n", md);
    T_OK(md <= 1e-5);
    for (int f = 0; f < 3; f++) free(lp[f]);
}

/* fwd_init plans every kernel's scratch: with every later allocation failing, a forward (a
 * prefill long enough for the GEMMs, then one generated token) still runs in fp32, fp16 and int8
 * and gives the same logits bit for bit; when a call must allocate (a plan that falls short), the
 * failure is -1 with a message, never an abort */
static void test_forward_planned_scratch(void) {
    const char *path = T_DATA("models/stories260K.gguf");
    if (!path) return;
    struct model m;
    T_EQ_INT(model_load(&m, path), 0);
    enum { NT = 48, V = 512 };
    int toks[NT + 1];
    for (int i = 0; i <= NT; i++) toks[i] = (i * 37 + 1) % V;
    float *ref = malloc(sizeof(float) * (NT + 1) * V), *got = malloc(sizeof(float) * (NT + 1) * V);
    const enum compute_dtype cs[3] = {COMPUTE_FP32, COMPUTE_FP16, COMPUTE_INT8};
    const bool quiet = err_quiet();
    for (int ci = 0; ci < 3; ci++) {
        struct fwd_state s;
        T_EQ_INT(fwd_init(&s, &m, 64, 64), 0);
        s.compute = cs[ci];
        T_EQ_INT(forward(&s, toks, NT, ref, false), 0);
        T_EQ_INT(forward(&s, toks + NT, 1, ref + NT * V, true), 0);
        fwd_truncate(&s, 0);
        kscratch_fail_after(0);
        T_EQ_INT(forward(&s, toks, NT, got, false), 0);
        T_EQ_INT(forward(&s, toks + NT, 1, got + NT * V, true), 0);
        kscratch_fail_after(-1);
        T_OK(!memcmp(ref, got, sizeof(float) * (NT + 1) * V));
        /* a plan that falls short (as with more threads than planned): the kernels must
         * allocate, and when that fails the forward says so and returns -1 */
        const size_t planned = s.ws.bytes;
        s.ws.bytes = 0;
        fwd_truncate(&s, 0);
        err_set_quiet(true);
        kscratch_fail_after(0);
        T_EQ_INT(forward(&s, toks, NT, got, false), -1);
        kscratch_fail_after(-1);
        err_set_quiet(quiet);
        T_CONTAINS(err_last(), "out of memory");
        s.ws.bytes = planned;
        fwd_release(&s);
    }
    free(ref), free(got);
    model_release(&m);
}

/* ===== inputs the fuzzers (tests/fuzz) found ===== */

/* an empty file: the parser made a cursor from a NULL mapping before checking the size (UBSan:
 * "applying zero offset to null pointer"); now "too short" */
static void test_fuzz_gguf_empty(void) {
    const char *p = path_in_tmp("empty.gguf");
    spit(p, (const unsigned char *)"", 0);
    struct gguf_file g;
    err_set_quiet(true);
    T_ERR(gguf_open(&g, p));
    err_set_quiet(false);
    T_CONTAINS(err_last(), "too short for a GGUF header");
}

/* a tensor whose GGUF type is 0xFFFFFFFF: the parametric dtypes' "no GGML id" (-1) matched it,
 * so the file was taken for packed integer groups with group 0 (UBSan: division by zero) */
static void test_fuzz_gguf_type_minus_one(void) {
    const char *p = path_in_tmp("type_src.gguf"), *q = path_in_tmp("type.gguf");
    struct fx_opts o = {0};
    T_EQ_INT(write_fixture(p, &o), 0);
    long n;
    unsigned char *c = slurp(p, &n);
    unsigned char *at = c ? memmem(c, (size_t)n, "token_embd.weight", 17) : NULL;
    T_OK(at != NULL);
    if (at) {
        const uint32_t bad = 0xFFFFFFFFu;
        memcpy(at + 17 + 4 + 16, &bad, 4); /* after the name, n_dims and ne[0..1]: the type */
        spit(q, c, n);
        expect_load_error(q, "GGUF type 4294967295");
    }
    T_EQ_INT(dtype_from_ggml(-1), -1);
    free(c);
}

int main(void) {
    T_RUN(test_gguf_kv_round_trip);
    T_RUN(test_fixture_loads_and_runs);
    T_RUN(test_gguf_every_truncation);
    T_RUN(test_gguf_lies);
    T_RUN(test_model_semantic_errors);
    T_RUN(test_llama2c);
    T_RUN(test_stories260k_formats_agree);
    T_RUN(test_forward_planned_scratch);
    T_RUN(test_fuzz_gguf_empty);
    T_RUN(test_fuzz_gguf_type_minus_one);
    return T_DONE();
}
