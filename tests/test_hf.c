/* tests/test_hf.c: the safetensors reader/writer and the Hugging Face directory loader.
 *
 * Fixtures are written at run time with the safetensors writer into t_tmpdir(): a tiny llama
 * (D=32 dim, F=48 hidden, L=2 layers, H=4 heads, KV=2 kv heads, V=40 vocab, hd=8) whose every
 * value is a hash of (tensor name, index), so a loaded tensor can be compared byte for byte
 * with a regenerated one. Corrupt inputs are written byte by byte. */
#include <jansson.h>
#include <stdint.h>
#include <sys/stat.h>

#include "eval/forward.h"
#include "eval/model.h"
#include "eval/safetensors.h"
#include "tests/t.h"

#define D 32
#define F 48
#define L 2
#define H 4
#define KV 2
#define V 40

/* ===== helpers ===== */

static const char *tmp_path(const char *rel) {
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", t_tmpdir(), rel);
    return buf[k];
}

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        T_FAIL_("cannot create %s", path);
        return;
    }
    if (n) fwrite(p, 1, n, f);
    fclose(f);
}

static void write_text(const char *path, const char *s) { write_bytes(path, s, strlen(s)); }

/* a safetensors file by hand: 8-byte length (n_override when >= 0, else strlen(json)), json,
 * then n data bytes */
static void write_raw(const char *path, int64_t n_override, const char *json, const void *data,
                      size_t n) {
    size_t jl = strlen(json), total = 8 + jl + n;
    uint8_t *b = calloc(1, total);
    uint64_t hl = n_override >= 0 ? (uint64_t)n_override : jl;
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(hl >> (8 * i));
    memcpy(b + 8, json, jl);
    if (n) memcpy(b + 8 + jl, data, n);
    write_bytes(path, b, total);
    free(b);
}

static uint8_t *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)len + 1);
    *n = fread(b, 1, (size_t)len, f);
    fclose(f);
    return b;
}

/* open path expecting failure with a message containing want */
static void expect_st_error(const char *path, const char *want) {
    struct safetensors st;
    err_set_quiet(true);
    T_ERR(safetensors_open(&st, path));
    err_set_quiet(false);
    T_CONTAINS(err_last(), want);
    if (getenv("T_VERBOSE")) fprintf(stderr, "    %s\n", err_last());
    T_OK(!st.map && !st.tensors && !st.json); /* closed on failure */
    safetensors_close(&st);                     /* and closing again is harmless */
}

/* ===== fixture values ===== */

/* deterministic value in [-1, 1] from (name, index) */
static float fx_value(const char *name, int64_t i) {
    uint32_t h = 2166136261u;
    for (const char *p = name; *p; p++) h = (h ^ (uint8_t)*p) * 16777619u;
    h ^= (uint32_t)i * 2654435761u;
    h ^= h >> 15;
    h *= 0x2c1b3c6du;
    h ^= h >> 12;
    return (float)((int)(h % 2001) - 1000) / 1000.0f;
}

static size_t dtype_bytes(const char *dtype) { return !strcmp(dtype, "F32") ? 4 : 2; }

/* n values of tensor `name` encoded as dtype ("F32", "F16", "BF16"); norms are 1 + v/10.
 * Returns owned memory (free). */
static void *fx_data(const char *name, const char *dtype, int64_t n, bool norm) {
    uint8_t *b = malloc((size_t)n * dtype_bytes(dtype) + 1);
    for (int64_t i = 0; i < n; i++) {
        float v = norm ? 1.0f + fx_value(name, i) / 10.0f : fx_value(name, i);
        if (!strcmp(dtype, "F32")) {
            memcpy(b + 4 * i, &v, 4);
        } else {
            uint16_t h = !strcmp(dtype, "F16") ? lb_f32_to_fp16(v) : lb_f32_to_bf16(v);
            memcpy(b + 2 * i, &h, 2);
        }
    }
    return b;
}

static float decode(const void *data, const char *dtype, int64_t i) {
    if (!strcmp(dtype, "F32")) {
        float f;
        memcpy(&f, (const uint8_t *)data + 4 * i, 4);
        return f;
    }
    uint16_t h;
    memcpy(&h, (const uint8_t *)data + 2 * i, 2);
    return !strcmp(dtype, "F16") ? lb_fp16_to_f32(h) : lb_bf16_to_f32(h);
}

/* ===== fixture: a tiny HF directory ===== */

struct fx {
    const char *model_type; /* NULL: omitted (architectures only) */
    const char *arch_class; /* architectures[0], NULL: omitted */
    const char *dtype;      /* "F32", "F16", "BF16" */
    int n_shards;           /* 0: model.safetensors; else an index and n shards */
    int head_dim;           /* 0: not in config.json (default D/H) */
    bool tie;               /* tie_word_embeddings true */
    bool lm_head;           /* write lm_head.weight (always when !tie) */
    bool bias;              /* write q/k/v biases (qwen2 style) */
    const char *config_extra;  /* extra members for config.json, e.g. "\"x\": 1," */
    const char *skip;          /* an HF tensor not to write */
    const char *extra_tensor;  /* an additional HF tensor to write, shape [D] */
    const char *extra_dtype;   /* its dtype (default the fixture's) */
    const char *nan_in;        /* an HF tensor whose element 5 is NaN */
    const char *act;           /* hidden_act (default "silu") */
};

struct fx_tensor {
    char hf[96], gg[64];
    int n_dims;
    int64_t shape[2]; /* PyTorch order: [out, in] */
    bool norm;
};

static int fx_head_dim(const struct fx *fx) { return fx->head_dim ? fx->head_dim : D / H; }

/* the tensors of the fixture, HF name -> canonical name (restated from the spec) */
static int fx_tensors(const struct fx *fx, struct fx_tensor *t) {
    const int hd = fx_head_dim(fx);
    int n = 0;
#define ADD(hfn, ggn, nd, s0, s1, isnorm)                                                          \
    do {                                                                                           \
        snprintf(t[n].hf, sizeof t[n].hf, "%s", hfn);                                              \
        snprintf(t[n].gg, sizeof t[n].gg, "%s", ggn);                                              \
        t[n].n_dims = nd, t[n].shape[0] = s0, t[n].shape[1] = s1, t[n].norm = isnorm;              \
        n++;                                                                                       \
    } while (0)
    ADD("model.embed_tokens.weight", "token_embd.weight", 2, V, D, false);
    ADD("model.norm.weight", "output_norm.weight", 1, D, 0, true);
    if (!fx->tie || fx->lm_head) ADD("lm_head.weight", "output.weight", 2, V, D, false);
    for (int l = 0; l < L; l++) {
        char a[96], b[64];
#define LAYER(hs, gs, nd, s0, s1, isnorm)                                                          \
    do {                                                                                           \
        snprintf(a, sizeof a, "model.layers.%d.%s", l, hs);                                        \
        snprintf(b, sizeof b, "blk.%d.%s", l, gs);                                                 \
        ADD(a, b, nd, s0, s1, isnorm);                                                             \
    } while (0)
        LAYER("input_layernorm.weight", "attn_norm.weight", 1, D, 0, true);
        LAYER("self_attn.q_proj.weight", "attn_q.weight", 2, H * hd, D, false);
        LAYER("self_attn.k_proj.weight", "attn_k.weight", 2, KV * hd, D, false);
        LAYER("self_attn.v_proj.weight", "attn_v.weight", 2, KV * hd, D, false);
        LAYER("self_attn.o_proj.weight", "attn_output.weight", 2, D, H * hd, false);
        if (fx->bias) {
            LAYER("self_attn.q_proj.bias", "attn_q.bias", 1, H * hd, 0, true);
            LAYER("self_attn.k_proj.bias", "attn_k.bias", 1, KV * hd, 0, true);
            LAYER("self_attn.v_proj.bias", "attn_v.bias", 1, KV * hd, 0, true);
        }
        LAYER("post_attention_layernorm.weight", "ffn_norm.weight", 1, D, 0, true);
        LAYER("mlp.gate_proj.weight", "ffn_gate.weight", 2, F, D, false);
        LAYER("mlp.up_proj.weight", "ffn_up.weight", 2, F, D, false);
        LAYER("mlp.down_proj.weight", "ffn_down.weight", 2, D, F, false);
#undef LAYER
    }
#undef ADD
    return n;
}

static int64_t fx_nelem(const struct fx_tensor *t) {
    return t->n_dims == 1 ? t->shape[0] : t->shape[0] * t->shape[1];
}

/* write the fixture into t_tmpdir()/name; returns the directory (static buffer) */
static const char *fx_write(const char *name, const struct fx *fx) {
    static char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", t_tmpdir(), name);
    mkdir(dir, 0755);
    char path[700];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "{\n");
    if (fx->model_type) fprintf(f, "  \"model_type\": \"%s\",\n", fx->model_type);
    if (fx->arch_class) fprintf(f, "  \"architectures\": [\"%s\"],\n", fx->arch_class);
    if (fx->head_dim) fprintf(f, "  \"head_dim\": %d,\n", fx->head_dim);
    fprintf(f, "  %s\n", fx->config_extra ? fx->config_extra : "");
    fprintf(f,
            "  \"hidden_size\": %d, \"intermediate_size\": %d, \"num_hidden_layers\": %d,\n"
            "  \"num_attention_heads\": %d, \"num_key_value_heads\": %d, \"vocab_size\": %d,\n"
            "  \"rms_norm_eps\": 1e-05, \"max_position_embeddings\": 256, \"hidden_act\": \"%s\",\n"
            "  \"torch_dtype\": \"float32\", \"tie_word_embeddings\": %s\n}\n",
            D, F, L, H, KV, V, fx->act ? fx->act : "silu", fx->tie ? "true" : "false");
    fclose(f);

    struct fx_tensor ts[64];
    int n = fx_tensors(fx, ts);
    if (fx->extra_tensor) {
        snprintf(ts[n].hf, sizeof ts[n].hf, "%s", fx->extra_tensor);
        ts[n].gg[0] = 0;
        ts[n].n_dims = 1, ts[n].shape[0] = D, ts[n].norm = false;
        n++;
    }
    int n_files = fx->n_shards ? fx->n_shards : 1;
    struct safetensors_writer w[4] = {SAFETENSORS_WRITER_INIT, SAFETENSORS_WRITER_INIT,
                                      SAFETENSORS_WRITER_INIT, SAFETENSORS_WRITER_INIT};
    void *bufs[64];
    int n_bufs = 0;
    json_t *wm = json_object();
    for (int i = 0; i < n; i++) {
        bool extra = fx->extra_tensor && i == n - 1;
        if (!extra && fx->skip && !strcmp(ts[i].hf, fx->skip)) continue;
        const char *dt = extra && fx->extra_dtype ? fx->extra_dtype : fx->dtype;
        int64_t ne = fx_nelem(&ts[i]);
        bool fp = !strcmp(dt, "F32") || !strcmp(dt, "F16") || !strcmp(dt, "BF16");
        size_t es = (size_t)(safetensors_dtype_bits(safetensors_dtype_from_name(dt)) / 8);
        void *data = fp ? fx_data(ts[i].hf, dt, ne, ts[i].norm) : calloc((size_t)ne, es);
        if (fx->nan_in && !strcmp(ts[i].hf, fx->nan_in)) {
            float nan = NAN;
            if (!strcmp(dt, "F32")) memcpy((uint8_t *)data + 4 * 5, &nan, 4);
            else ((uint16_t *)data)[5] = !strcmp(dt, "F16") ? 0x7e00 : 0x7fc0; /* quiet NaN */
        }
        bufs[n_bufs++] = data;
        int k = i % n_files;
        T_OK(!safetensors_writer_add(&w[k], ts[i].hf, dt, ts[i].n_dims, ts[i].shape, data,
                                     (size_t)ne * es));
        char fn[64];
        snprintf(fn, sizeof fn, "model-%05d-of-%05d.safetensors", k + 1, n_files);
        json_object_set_new(wm, ts[i].hf, json_string(fn));
    }
    for (int k = 0; k < n_files; k++) {
        char fn[64];
        if (fx->n_shards) snprintf(fn, sizeof fn, "model-%05d-of-%05d.safetensors", k + 1, n_files);
        else snprintf(fn, sizeof fn, "model.safetensors");
        snprintf(path, sizeof path, "%s/%s", dir, fn);
        safetensors_writer_set_meta(&w[k], "format", "pt");
        T_OK(!safetensors_writer_write(&w[k], path));
        safetensors_writer_release(&w[k]);
    }
    if (fx->n_shards) {
        json_t *idx = json_pack("{s:{s:i}, s:o}", "metadata", "total_size", 0, "weight_map", wm);
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
        T_OK(!json_dump_file(idx, path, JSON_INDENT(2)));
        json_decref(idx);
    } else {
        json_decref(wm);
    }
    for (int i = 0; i < n_bufs; i++) free(bufs[i]);
    return dir;
}

/* every fixture tensor is in m under its canonical name, with the written type, flipped shape
 * and bytes; bound norms/biases are fp32 with the written values */
static void fx_check(const struct model *m, const struct fx *fx) {
    struct fx_tensor ts[64];
    int n = fx_tensors(fx, ts);
    enum dtype want = !strcmp(fx->dtype, "F32")   ? DTYPE_F32
                      : !strcmp(fx->dtype, "F16") ? DTYPE_F16
                                                  : DTYPE_BF16;
    for (int i = 0; i < n; i++) {
        if (fx->tie && !strcmp(ts[i].hf, "lm_head.weight")) {
            T_OK(!model_find_tensor(m, "output.weight")); /* tied: the file's copy is ignored */
            continue;
        }
        const struct tensor *t = model_find_tensor(m, ts[i].gg);
        T_OK(t != NULL);
        if (!t) continue;
        T_EQ_INT(t->type, want);
        T_EQ_INT(t->n_dims, ts[i].n_dims);
        T_EQ_INT(t->ne[0], ts[i].n_dims == 1 ? ts[i].shape[0] : ts[i].shape[1]);
        T_EQ_INT(t->ne[1], ts[i].n_dims == 1 ? 1 : ts[i].shape[0]);
        int64_t ne = fx_nelem(&ts[i]);
        void *exp = fx_data(ts[i].hf, fx->dtype, ne, ts[i].norm);
        if (memcmp(t->data, exp, (size_t)ne * dtype_bytes(fx->dtype)))
            T_FAIL_("tensor %s: data differs from what was written", ts[i].gg);
        free(exp);
    }
    /* bound views: norms fp32 with the written values, matrices zero-copy */
    for (int l = 0; l < L; l++) {
        char hf[96];
        snprintf(hf, sizeof hf, "model.layers.%d.input_layernorm.weight", l);
        const struct tensor *an = &m->layers[l].attn_norm;
        T_EQ_INT(an->type, DTYPE_F32);
        void *exp = fx_data(hf, fx->dtype, D, true);
        for (int i = 0; i < D; i++)
            if (((const float *)an->data)[i] != decode(exp, fx->dtype, i)) {
                T_FAIL_("layer %d attn_norm[%d] %g != %g", l, i, ((const float *)an->data)[i],
                        decode(exp, fx->dtype, i));
                break;
            }
        free(exp);
        char gg[64];
        snprintf(gg, sizeof gg, "blk.%d.attn_q.weight", l);
        T_OK(m->layers[l].lin[LIN_Q].data == model_find_tensor(m, gg)->data);
        if (fx->bias) {
            T_EQ_INT(m->layers[l].bias[LIN_Q].type, DTYPE_F32);
            T_EQ_INT(m->layers[l].bias[LIN_K].ne[0], KV * fx_head_dim(fx));
        }
    }
    T_EQ_INT(m->tied_output, fx->tie);
    if (fx->tie) T_OK(m->output.data == m->tok_embd.data);
    else T_OK(m->output.data != m->tok_embd.data);
}

static void fx_check_cfg(const struct model *m, const char *arch) {
    const struct model_config *c = &m->cfg;
    T_EQ_STR(c->arch, arch);
    T_EQ_INT(c->dim, D);
    T_EQ_INT(c->hidden_dim, F);
    T_EQ_INT(c->n_layers, L);
    T_EQ_INT(c->n_heads, H);
    T_EQ_INT(c->n_kv_heads, KV);
    T_EQ_INT(c->vocab_size, V);
    T_NEAR(c->norm_eps, 1e-5, 1e-12);
    T_EQ_INT(c->rope_style, ROPE_NEOX);
    T_EQ_INT(m->format, MODEL_FORMAT_HF);
}

/* load dir expecting failure with want in the message (T_VERBOSE=1 prints the message) */
static void expect_hf_error(const char *dir, const char *want) {
    struct model m = MODEL_INIT;
    err_set_quiet(true);
    T_ERR(model_load_hf(&m, dir));
    err_set_quiet(false);
    T_CONTAINS(err_last(), want);
    if (getenv("T_VERBOSE")) fprintf(stderr, "    %s\n", err_last());
    model_release(&m);
}

/* ===== safetensors tests ===== */

static void test_st_roundtrip(void) {
    float f32[6] = {1.5f, -2.0f, 3.25f, 0.0f, -0.0f, 1e-30f};
    uint16_t f16[8], bf16[3];
    for (int i = 0; i < 8; i++) f16[i] = lb_f32_to_fp16((float)i - 3.5f);
    for (int i = 0; i < 3; i++) bf16[i] = lb_f32_to_bf16((float)i * 0.75f);
    int8_t i8[5] = {-128, -1, 0, 1, 127};
    uint8_t u8[3] = {0, 128, 255};
    int32_t i32[2] = {-7, 1 << 30};
    int64_t i64[1] = {-((int64_t)1 << 40)};
    double f64[2] = {3.141592653589793, -1e300};
    struct {
        const char *name, *dtype;
        int n_dims;
        int64_t shape[3];
        const void *data;
        size_t nbytes;
    } in[] = {
        {"w.f32", "F32", 2, {2, 3}, f32, sizeof f32},
        {"w.f16", "F16", 3, {2, 2, 2}, f16, sizeof f16},
        {"b.bf16", "BF16", 1, {3}, bf16, sizeof bf16},
        {"z.i8", "I8", 1, {5}, i8, sizeof i8},
        {"a.u8", "U8", 1, {3}, u8, sizeof u8},
        {"i.i32", "I32", 1, {2}, i32, sizeof i32},
        {"scalar.i64", "I64", 0, {0}, i64, sizeof i64},
        {"d.f64", "F64", 2, {1, 2}, f64, sizeof f64},
        {"empty", "F32", 2, {0, 3}, NULL, 0},
        {"ünïcode name", "U8", 1, {1}, u8, 1},
    };
    const int n = (int)LB_ARRAY_LEN(in);
    struct safetensors_writer w = SAFETENSORS_WRITER_INIT;
    for (int i = 0; i < n; i++)
        T_OK(!safetensors_writer_add(&w, in[i].name, in[i].dtype, in[i].n_dims, in[i].shape,
                                     in[i].data, in[i].nbytes));
    T_OK(!safetensors_writer_set_meta(&w, "format", "np"));
    T_OK(!safetensors_writer_set_meta(&w, "lowbit.recipe", "{\"bits\": 4}"));
    T_OK(!safetensors_writer_set_meta(&w, "format", "pt")); /* replaces */
    const char *path = tmp_path("roundtrip.safetensors");
    T_OK(!safetensors_writer_write(&w, path));
    T_OK(access(tmp_path("roundtrip.safetensors.tmp"), F_OK)); /* no temp file left */
    safetensors_writer_release(&w);
    T_EQ_INT(w.n_tensors, 0);

    struct safetensors st;
    T_OK(!safetensors_open(&st, path));
    T_EQ_INT(st.n_tensors, n);
    T_EQ_INT((8 + st.header_len) % 8, 0);
    T_EQ_INT(st.map[8], '{');
    T_EQ_INT(st.n_meta, 2);
    T_EQ_STR(safetensors_meta(&st, "format"), "pt");
    T_EQ_STR(safetensors_meta(&st, "lowbit.recipe"), "{\"bits\": 4}");
    T_OK(!safetensors_meta(&st, "absent"));
    T_OK(!safetensors_find(&st, "absent"));
    T_OK(!safetensors_find(&st, "__metadata__"));
    for (int i = 0; i < n; i++) {
        const struct safetensors_tensor *t = safetensors_find(&st, in[i].name);
        T_OK(t != NULL);
        if (!t) continue;
        T_EQ_STR(t->name, in[i].name);
        T_EQ_STR(safetensors_dtype_name(t->dtype), in[i].dtype);
        T_EQ_INT(t->n_dims, in[i].n_dims);
        for (int d = 0; d < in[i].n_dims; d++) T_EQ_INT(t->shape[d], in[i].shape[d]);
        T_EQ_INT(t->nbytes, in[i].nbytes);
        T_OK(!in[i].nbytes || !memcmp(t->data, in[i].data, in[i].nbytes));
        /* the writer's layout keeps every tensor aligned to its element size */
        int es = safetensors_dtype_bits(t->dtype) / 8;
        T_EQ_INT((uintptr_t)t->data % (uintptr_t)es, 0);
    }
    /* data order: element size descending, back to back from offset 8 + N */
    uint64_t off = 8 + st.header_len;
    for (int i = 0; i < st.n_tensors; i++) {
        T_EQ_INT(st.tensors[i].offset, off);
        off += st.tensors[i].nbytes;
        if (i) T_OK(safetensors_dtype_bits(st.tensors[i - 1].dtype) >=
                    safetensors_dtype_bits(st.tensors[i].dtype));
    }
    T_EQ_INT(off, st.size);
    T_EQ_STR(st.tensors[0].name, "d.f64");
    safetensors_close(&st);
    safetensors_close(&st);

    /* an empty writer writes a valid empty file: {} padded to 8 */
    T_OK(!safetensors_writer_write(&w, tmp_path("empty.safetensors")));
    T_OK(!safetensors_open(&st, tmp_path("empty.safetensors")));
    T_EQ_INT(st.n_tensors, 0);
    T_EQ_INT(st.header_len, 8);
    T_OK(!safetensors_find(&st, "x"));
    safetensors_close(&st);
}

/* a spooling writer (safetensors_writer_spool) writes the same bytes as one holding every tensor,
 * with the caller's buffers overwritten right after each add; no spool file is left behind */
static void test_st_writer_spool(void) {
    struct safetensors_writer a = SAFETENSORS_WRITER_INIT, b = SAFETENSORS_WRITER_INIT;
    char near[300];
    snprintf(near, sizeof near, "%s/spooled", t_tmpdir());
    T_OK(!safetensors_writer_spool(&b, near));
    enum { N = 5 };
    float *keep[N];
    uint32_t rng = 7;
    for (int i = 0; i < N; i++) {
        const int64_t n = 1 + (i * 977) % 3001, s[1] = {n};
        float *x = malloc((size_t)n * sizeof *x);
        keep[i] = malloc((size_t)n * sizeof *x);
        for (int64_t k = 0; k < n; k++) {
            rng = rng * 1664525u + 1013904223u;
            x[k] = (float)(rng >> 8) / 65536.0f - 128.0f;
        }
        memcpy(keep[i], x, (size_t)n * sizeof *x);
        char name[16];
        snprintf(name, sizeof name, "t%d", (N - i) % N);
        T_OK(!safetensors_writer_add(&a, name, i % 2 ? "F32" : "I32", 1, s, keep[i],
                                     (size_t)n * 4));
        T_OK(!safetensors_writer_add(&b, name, i % 2 ? "F32" : "I32", 1, s, x, (size_t)n * 4));
        memset(x, 0xab, (size_t)n * sizeof *x); /* the spool has its copy */
        free(x);
    }
    T_OK(!safetensors_writer_set_meta(&b, "format", "pt"));
    T_OK(!safetensors_writer_set_meta(&a, "format", "pt"));
    T_OK(!safetensors_writer_write(&a, tmp_path("plain.safetensors")));
    T_OK(!safetensors_writer_write(&b, tmp_path("spool.safetensors")));
    T_OK(!safetensors_writer_write(&b, tmp_path("spool2.safetensors"))); /* again, the same */
    size_t na, nb, nb2;
    uint8_t *pa = read_all(tmp_path("plain.safetensors"), &na);
    uint8_t *pb = read_all(tmp_path("spool.safetensors"), &nb);
    uint8_t *pb2 = read_all(tmp_path("spool2.safetensors"), &nb2);
    T_OK(pa && pb && pb2 && na == nb && nb == nb2 && !memcmp(pa, pb, na) && !memcmp(pb, pb2, nb));
    free(pa), free(pb), free(pb2);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "ls %s | grep -q spool-", t_tmpdir());
    T_OK(system(cmd) != 0); /* unlinked at creation */
    safetensors_writer_release(&a);
    safetensors_writer_release(&b);
    for (int i = 0; i < N; i++) free(keep[i]);
    /* a spool that cannot be created: one message naming it */
    struct safetensors_writer c = SAFETENSORS_WRITER_INIT;
    T_ERR(safetensors_writer_spool(&c, "/nonexistent-dir/x"));
    T_CONTAINS(err_last(), "spool file /nonexistent-dir/x.spool-");
}

/* the header our writer produces, byte for byte (the reference layout) */
static void test_st_writer_bytes(void) {
    struct safetensors_writer w = SAFETENSORS_WRITER_INIT;
    uint16_t h[2] = {0x3c00, 0x4000};
    float f = 2.0f;
    int64_t s2[1] = {2}, s1[1] = {1};
    T_OK(!safetensors_writer_add(&w, "a", "F16", 1, s2, h, 4));
    T_OK(!safetensors_writer_add(&w, "b", "F32", 1, s1, &f, 4));
    T_OK(!safetensors_writer_write(&w, tmp_path("bytes.safetensors")));
    safetensors_writer_release(&w);
    size_t n;
    uint8_t *b = read_all(tmp_path("bytes.safetensors"), &n);
    const char *want = "{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                       "\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[4,8]}}";
    size_t wl = strlen(want), pl = (wl + 7) / 8 * 8;
    T_EQ_INT(n, 8 + pl + 8);
    if (b && n == 8 + pl + 8) {
        T_EQ_INT(b[0] | b[1] << 8, pl);
        T_OK(!memcmp(b + 8, want, wl));
        for (size_t i = 8 + wl; i < 8 + pl; i++) T_EQ_INT(b[i], ' ');
        T_OK(!memcmp(b + 8 + pl, &f, 4));
        T_OK(!memcmp(b + 8 + pl + 4, h, 4));
    }
    free(b);
}

static void test_st_writer_errors(void) {
    struct safetensors_writer w = SAFETENSORS_WRITER_INIT;
    float x[4] = {0};
    int64_t s[2] = {2, 2}, neg[1] = {-1};
    err_set_quiet(true);
    T_OK(!safetensors_writer_add(&w, "x", "F32", 2, s, x, sizeof x));
    T_ERR(safetensors_writer_add(&w, "x", "F32", 2, s, x, sizeof x));
    T_CONTAINS(err_last(), "'x' added twice");
    T_ERR(safetensors_writer_add(&w, "__metadata__", "F32", 2, s, x, sizeof x));
    T_CONTAINS(err_last(), "reserved");
    T_ERR(safetensors_writer_add(&w, "y", "Q4_K", 2, s, x, sizeof x));
    T_CONTAINS(err_last(), "unknown dtype 'Q4_K'");
    T_ERR(safetensors_writer_add(&w, "y", "F32", 2, s, x, 12));
    T_CONTAINS(err_last(), "12 bytes given, shape [2, 2] of F32 needs 16");
    T_ERR(safetensors_writer_add(&w, "y", "F32", 1, neg, x, 0));
    T_CONTAINS(err_last(), "no valid byte size");
    T_ERR(safetensors_writer_add(&w, "y", "F32", 9, s, x, 0));
    T_CONTAINS(err_last(), "9 dimensions");
    T_ERR(safetensors_writer_write(&w, tmp_path("no/such/dir/x.safetensors")));
    T_CONTAINS(err_last(), "cannot create");
    T_CONTAINS(err_last(), "No such file");
    T_OK(!safetensors_writer_set_meta(&w, "bad", "\xff\xfe"));
    T_ERR(safetensors_writer_write(&w, tmp_path("badutf8.safetensors")));
    T_CONTAINS(err_last(), "not valid UTF-8");
    T_OK(access(tmp_path("badutf8.safetensors"), F_OK));
    err_set_quiet(false);
    T_EQ_INT(w.n_tensors, 1);
    safetensors_writer_release(&w);
}

static void test_st_corrupt(void) {
    float d[4] = {1, 2, 3, 4};
    const char *p = tmp_path("bad.safetensors");
    write_bytes(p, "", 0);
    expect_st_error(p, "0 bytes is too short");
    write_bytes(p, "\x10\0\0", 3);
    expect_st_error(p, "3 bytes is too short");
    write_raw(p, 1000, "{}", NULL, 0);
    expect_st_error(p, "header length 1000 is larger than the file (2 bytes");
    write_raw(p, 0x7fffffffffffffffLL, "{}", NULL, 0);
    expect_st_error(p, "larger than the file");
    write_raw(p, -1, "{\"a\": {\"dtype\": \"F32\",\n \"shape\": [4] \"data_offsets\": [0, 16]}}",
              d, 16);
    expect_st_error(p, "bad JSON header at line 2, column");
    write_raw(p, -1, "", NULL, 0);
    expect_st_error(p, "bad JSON header at line");
    write_raw(p, -1, "[1, 2]", NULL, 0);
    expect_st_error(p, "not an object");
    write_raw(p, -1, "{\"a\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}}", d,
              12);
    expect_st_error(p, "'a': data_offsets [0, 16] run past the end of the file (the data section "
                       "holds 12 bytes");
    write_raw(p, -1, "{\"a\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 12]}}", d,
              16);
    expect_st_error(p, "shape [4] of F32 is 16 bytes but data_offsets [0, 12] span 12");
    write_raw(p, -1, "{\"a\": {\"dtype\": \"F32\", \"shape\": [2, 3], \"data_offsets\": [0, 16]}}",
              d, 16);
    expect_st_error(p, "size and shape disagree");
    write_raw(p, -1, "{\"a\": {\"dtype\": \"Q4\", \"shape\": [4], \"data_offsets\": [0, 16]}}", d,
              16);
    expect_st_error(p, "'a': unknown dtype 'Q4'");
    write_raw(p, -1, "{\"a\": {\"dtype\": \"f32\", \"shape\": [4], \"data_offsets\": [0, 16]}}", d,
              16);
    expect_st_error(p, "unknown dtype 'f32'"); /* the format's names are case-sensitive */
    write_raw(p, -1, "{\"a\": {\"dtype\": \"F32\", \"shape\": [-4], \"data_offsets\": [0, 16]}}",
              d, 16);
    expect_st_error(p, "shape element 0 is not a non-negative integer");
    write_raw(p, -1, "{\"a\": {\"dtype\": \"F32\", \"shape\": [4.0], \"data_offsets\": [0, 16]}}",
              d, 16);
    expect_st_error(p, "shape element 0");
    write_raw(p, -1,
              "{\"a\": {\"dtype\": \"F64\", \"shape\": [4294967296, 4294967296], "
              "\"data_offsets\": [0, 16]}}",
              d, 16);
    expect_st_error(p, "no valid byte size");
    write_raw(p, -1, "{\"a\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [16, 0]}}", d,
              16);
    expect_st_error(p, "0 <= begin <= end");
    write_raw(p, -1, "{\"a\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0]}}", d, 16);
    expect_st_error(p, "expected [begin, end]");
    write_raw(p, -1, "{\"a\": {\"shape\": [4], \"data_offsets\": [0, 16]}}", d, 16);
    expect_st_error(p, "dtype is missing");
    write_raw(p, -1, "{\"a\": {\"dtype\": \"F32\", \"data_offsets\": [0, 16]}}", d, 16);
    expect_st_error(p, "shape is missing");
    write_raw(p, -1, "{\"a\": [1]}", d, 16);
    expect_st_error(p, "not an object");
    write_raw(p, -1,
              "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
              " \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}",
              d, 16);
    expect_st_error(p, "tensors 'a' and 'b' overlap");
    write_raw(p, -1,
              "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
              " \"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}",
              d, 16);
    expect_st_error(p, "duplicate object key");
    write_raw(p, -1, "{\"__metadata__\": {\"k\": 1}}", NULL, 0);
    expect_st_error(p, "__metadata__ 'k' is not a string");
    write_raw(p, -1, "{\"__metadata__\": [\"k\"]}", NULL, 0);
    expect_st_error(p, "__metadata__ is not an object");
    write_raw(p, -1, "{\"a\": {\"dtype\": \"F4\", \"shape\": [3], \"data_offsets\": [0, 2]}}", d,
              16);
    expect_st_error(p, "partial bytes");
    expect_st_error(tmp_path("does-not-exist.safetensors"), "cannot open");
    expect_st_error(t_tmpdir(), "not a regular file");

    /* accepted: gaps between tensors, zero-size tensors, padding, F4 in whole bytes */
    write_raw(p, -1,
              "{\"b\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [8, 12]},"
              " \"e\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [9, 9]},"
              " \"a\": {\"dtype\": \"F4\", \"shape\": [2, 2], \"data_offsets\": [0, 2]}}   ",
              d, 16);
    struct safetensors st;
    T_OK(!safetensors_open(&st, p));
    T_EQ_INT(st.n_tensors, 3);
    if (st.n_tensors == 3) {
        T_EQ_STR(st.tensors[0].name, "a"); /* data order */
        T_EQ_STR(st.tensors[1].name, "b");
        T_EQ_STR(st.tensors[2].name, "e");
        float b3;
        memcpy(&b3, safetensors_find(&st, "b")->data, 4); /* hand-made header: unaligned */
        T_NEAR(b3, 3.0, 0);
    }
    safetensors_close(&st);

    /* a valid file cut anywhere fails cleanly */
    struct safetensors_writer w = SAFETENSORS_WRITER_INIT;
    int64_t s[1] = {4};
    safetensors_writer_add(&w, "x", "F32", 1, s, d, sizeof d);
    safetensors_writer_write(&w, p);
    safetensors_writer_release(&w);
    size_t n;
    uint8_t *b = read_all(p, &n);
    for (size_t cut = 0; b && cut < n; cut++) {
        const char *q = tmp_path("cut.safetensors");
        write_bytes(q, b, cut);
        err_set_quiet(true);
        if (!safetensors_open(&st, q)) T_FAIL_("file cut at %zu of %zu bytes accepted", cut, n);
        err_set_quiet(false);
        safetensors_close(&st);
    }
    free(b);
}

/* mutated headers (fixed seed): parse never crashes, and whatever it accepts stays in bounds and
 * does not overlap. Digits are swapped for digits so mutations reach the offset/shape checks. */
static void test_st_mutations(void) {
    struct safetensors_writer w = SAFETENSORS_WRITER_INIT;
    float a[6] = {1, 2, 3, 4, 5, 6};
    uint16_t b[5] = {1, 2, 3, 4, 5};
    int64_t sa[2] = {2, 3}, sb[1] = {5};
    safetensors_writer_add(&w, "a", "F32", 2, sa, a, sizeof a);
    safetensors_writer_add(&w, "b", "BF16", 1, sb, b, sizeof b);
    safetensors_writer_set_meta(&w, "k", "v");
    safetensors_writer_write(&w, tmp_path("mut.safetensors"));
    safetensors_writer_release(&w);
    size_t n;
    uint8_t *base = read_all(tmp_path("mut.safetensors"), &n);
    if (!base) {
        T_FAIL_("cannot read the mutation seed file");
        return;
    }
    uint8_t *buf = malloc(n);
    uint32_t rng = 12345;
    int accepted = 0;
    err_set_quiet(true);
    for (int it = 0; it < 4000; it++) {
        memcpy(buf, base, n);
        for (int k = 0; k < 1 + it % 3; k++) {
            rng = rng * 1664525u + 1013904223u;
            size_t pos = (rng >> 8) % n;
            rng = rng * 1664525u + 1013904223u;
            if (it % 2 && buf[pos] >= '0' && buf[pos] <= '9')
                buf[pos] = (uint8_t)('0' + (rng >> 8) % 10);
            else if (!(it % 2))
                buf[pos] = (uint8_t)(rng >> 16);
        }
        struct safetensors st;
        if (safetensors_parse(&st, "mut", buf, n)) continue;
        accepted++;
        for (int i = 0; i < st.n_tensors; i++) {
            const struct safetensors_tensor *t = &st.tensors[i];
            if (t->offset < 8 + st.header_len || t->offset + t->nbytes > n)
                T_FAIL_("iteration %d: tensor %s out of bounds", it, t->name);
            if (i && t->nbytes && t->offset < st.tensors[i - 1].offset + st.tensors[i - 1].nbytes)
                T_FAIL_("iteration %d: tensor %s overlaps", it, t->name);
        }
        safetensors_close(&st);
    }
    err_set_quiet(false);
    T_OK(accepted > 0); /* some mutations (data bytes, metadata) are harmless */
    free(buf);
    free(base);
}

/* safetensors_parse on a caller's buffer borrows it (nothing is freed or unmapped) */
static void test_st_parse_borrowed(void) {
    struct safetensors_writer w = SAFETENSORS_WRITER_INIT;
    int32_t v[3] = {1, 2, 3};
    int64_t s[1] = {3};
    safetensors_writer_add(&w, "v", "I32", 1, s, v, sizeof v);
    safetensors_writer_write(&w, tmp_path("borrow.safetensors"));
    safetensors_writer_release(&w);
    size_t n;
    uint8_t *b = read_all(tmp_path("borrow.safetensors"), &n);
    struct safetensors st;
    T_OK(!safetensors_parse(&st, "mem", b, n));
    T_OK(!st.owns_map);
    const struct safetensors_tensor *t = safetensors_find(&st, "v");
    T_OK(t && t->data == b + t->offset && !memcmp(t->data, v, sizeof v));
    safetensors_close(&st);
    err_set_quiet(true);
    T_ERR(safetensors_parse(&st, "mem", b, 7));
    err_set_quiet(false);
    T_CONTAINS(err_last(), "mem: 7 bytes is too short");
    free(b);
}

/* ===== HF loader tests ===== */

static void load_and_check(const char *name, const struct fx *fx, const char *arch) {
    const char *dir = fx_write(name, fx);
    struct model m = MODEL_INIT;
    int rc = model_load_hf(&m, dir);
    T_EQ_INT(rc, 0);
    if (rc) {
        fprintf(stderr, "  (%s: %s)\n", name, err_last());
    } else {
        fx_check_cfg(&m, arch);
        fx_check(&m, fx);
    }
    model_release(&m);
}

static void test_hf_llama_f32(void) {
    struct fx fx = {.model_type = "llama", .dtype = "F32"};
    load_and_check("llama_f32", &fx, "llama");
    struct model m = MODEL_INIT;
    T_OK(!model_load_hf(&m, tmp_path("llama_f32")));
    T_NEAR(m.cfg.rope_theta, 10000, 0);
    T_EQ_INT(m.cfg.head_dim, D / H);
    T_EQ_INT(m.cfg.ctx_len, 256);
    T_EQ_INT(m.cfg.qkv_bias, 0);
    T_NEAR(m.cfg.rope_factor, 0, 0);
    T_EQ_INT(m.n_tensors, 3 + 9 * L);
    T_EQ_INT(model_n_params(&m),
             2 * V * D + D + L * (2 * D + 2 * D * D + 2 * D * (KV * 8) + 3 * D * F));
    /* zero copy: the weight points into the mapping */
    const struct tensor *t = model_find_tensor(&m, "blk.1.ffn_down.weight");
    bool in_map = false;
    for (int i = 0; i < m.n_maps; i++)
        in_map |= (const uint8_t *)t->data >= (const uint8_t *)m.maps[i].addr &&
                  (const uint8_t *)t->data < (const uint8_t *)m.maps[i].addr + m.maps[i].len;
    T_OK(in_map);
    T_EQ_INT(t->ne[0], F);
    T_EQ_INT(t->ne[1], D);
    model_release(&m);
    /* model_load dispatches a directory to the HF loader */
    T_OK(!model_load(&m, tmp_path("llama_f32")));
    T_EQ_INT(m.format, MODEL_FORMAT_HF);
    model_release(&m);
}

static void test_hf_llama_f16(void) {
    struct fx fx = {.model_type = "llama", .dtype = "F16"};
    load_and_check("llama_f16", &fx, "llama");
}

static void test_hf_llama_bf16(void) {
    struct fx fx = {.model_type = "llama", .dtype = "BF16"};
    load_and_check("llama_bf16", &fx, "llama");
}

static void test_hf_sharded(void) {
    struct fx fx = {.model_type = "llama", .dtype = "BF16", .n_shards = 3};
    load_and_check("llama_sharded", &fx, "llama");
    struct model m = MODEL_INIT;
    T_OK(!model_load_hf(&m, tmp_path("llama_sharded")));
    T_EQ_INT(m.n_maps, 3); /* each shard mapped once */
    model_release(&m);
    struct fx fx2 = {.model_type = "llama", .dtype = "F32", .n_shards = 2, .tie = true};
    load_and_check("llama_sharded_tied", &fx2, "llama");
}

static void test_hf_tied(void) {
    struct fx fx = {.model_type = "llama", .dtype = "F16", .tie = true};
    load_and_check("llama_tied", &fx, "llama");
    /* tied but the file also holds lm_head.weight: ignored, as transformers does */
    struct fx fx2 = {.model_type = "llama", .dtype = "F16", .tie = true, .lm_head = true};
    load_and_check("llama_tied_lm_head", &fx2, "llama");
}

static void test_hf_qwen2(void) {
    struct fx fx = {.model_type = "qwen2", .dtype = "BF16", .tie = true, .bias = true,
                    .config_extra = "\"rope_theta\": 1000000.0, \"use_sliding_window\": false, "
                                    "\"sliding_window\": 32, \"attention_dropout\": 0.0,"};
    load_and_check("qwen2", &fx, "qwen2");
    struct model m = MODEL_INIT;
    T_OK(!model_load_hf(&m, tmp_path("qwen2")));
    T_EQ_INT(m.cfg.qkv_bias, 1);
    T_NEAR(m.cfg.rope_theta, 1e6, 0);
    T_EQ_INT(m.cfg.ctx_len, 256); /* sliding window off */
    /* biases are bound as fp32 with the written bf16 values */
    void *exp = fx_data("model.layers.1.self_attn.k_proj.bias", "BF16", KV * 8, true);
    for (int i = 0; i < KV * 8; i++)
        T_NEAR(((const float *)m.layers[1].bias[LIN_K].data)[i], decode(exp, "BF16", i), 0);
    free(exp);
    model_release(&m);
    /* qwen2 without its biases: model_bind names the missing one */
    struct fx fx2 = {.model_type = "qwen2", .dtype = "F32", .tie = true};
    expect_hf_error(fx_write("qwen2_nobias", &fx2), "missing tensor blk.0.attn_q.bias");
}

static void test_hf_llama3_rope(void) {
    struct fx fx = {.model_type = "llama", .dtype = "BF16", .tie = true, .head_dim = 16,
                    .config_extra =
                        "\"rope_theta\": 500000.0, \"rope_scaling\": {\"factor\": 32.0, "
                        "\"high_freq_factor\": 4.0, \"low_freq_factor\": 1.0, "
                        "\"original_max_position_embeddings\": 8192, \"rope_type\": \"llama3\"},"};
    load_and_check("llama3", &fx, "llama");
    struct model m = MODEL_INIT;
    T_OK(!model_load_hf(&m, tmp_path("llama3")));
    T_NEAR(m.cfg.rope_theta, 500000, 0);
    T_NEAR(m.cfg.rope_factor, 32, 0);
    T_NEAR(m.cfg.rope_low_freq_factor, 1, 0);
    T_NEAR(m.cfg.rope_high_freq_factor, 4, 0);
    T_EQ_INT(m.cfg.rope_orig_ctx, 8192);
    T_EQ_INT(m.cfg.head_dim, 16); /* explicit head_dim != hidden_size / heads */
    T_EQ_INT(m.layers[0].lin[LIN_Q].ne[1], H * 16);
    model_release(&m);
    /* the older "type" spelling, and "default" meaning none */
    struct fx fx2 = {.model_type = "llama", .dtype = "F32",
                     .config_extra = "\"rope_scaling\": {\"type\": \"llama3\", \"factor\": 8, "
                                     "\"high_freq_factor\": 4, \"low_freq_factor\": 1, "
                                     "\"original_max_position_embeddings\": 8192},"};
    T_OK(!model_load_hf(&m, fx_write("llama3_type", &fx2)));
    T_NEAR(m.cfg.rope_factor, 8, 0);
    model_release(&m);
    fx2.config_extra = "\"rope_scaling\": {\"rope_type\": \"default\"},";
    T_OK(!model_load_hf(&m, fx_write("rope_default", &fx2)));
    T_NEAR(m.cfg.rope_factor, 0, 0);
    model_release(&m);
    fx2.config_extra = "\"rope_scaling\": null,";
    T_OK(!model_load_hf(&m, fx_write("rope_null", &fx2)));
    model_release(&m);
}

static void test_hf_mistral_and_classes(void) {
    struct fx fx = {.model_type = "mistral", .dtype = "F16",
                    .config_extra = "\"sliding_window\": 64,"};
    load_and_check("mistral", &fx, "mistral");
    struct model m = MODEL_INIT;
    T_OK(!model_load_hf(&m, tmp_path("mistral")));
    T_EQ_INT(m.cfg.ctx_len, 64); /* capped at the window */
    model_release(&m);
    /* no model_type: architectures names the class */
    struct fx fx2 = {.arch_class = "Qwen2ForCausalLM", .dtype = "F32", .bias = true};
    load_and_check("qwen2_class", &fx2, "qwen2");
    /* kv heads default to heads when absent: a config without num_key_value_heads */
    const char *dir = fx_write("llama_nokv", &(struct fx){.model_type = "llama", .dtype = "F32"});
    char cfg[700];
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    write_text(cfg, "{\"model_type\": \"llama\", \"hidden_size\": 32, \"intermediate_size\": 48, "
                    "\"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"vocab_size\": 40, "
                    "\"head_dim\": null}");
    expect_hf_error(dir, "tensor blk.0.attn_k.weight has shape [32, 16"); /* expects 4 kv heads */
}

/* a file whose header length is not a multiple of 4 leaves F32 data misaligned: copied, equal */
static void test_hf_misaligned(void) {
    struct fx fx = {.model_type = "llama", .dtype = "F32"};
    const char *dir = fx_write("misaligned", &fx);
    char path[700];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    size_t n;
    uint8_t *b = read_all(path, &n);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | b[i];
    uint8_t *c = malloc(n + 1);
    memcpy(c, b, 8 + hl);
    c[8 + hl] = ' ';
    memcpy(c + 9 + hl, b + 8 + hl, n - 8 - hl);
    c[0] = (uint8_t)(hl + 1);
    c[1] = (uint8_t)((hl + 1) >> 8);
    write_bytes(path, c, n + 1);
    free(b);
    free(c);
    struct model m = MODEL_INIT;
    T_OK(!model_load_hf(&m, dir));
    if (m.n_tensors) {
        fx_check(&m, &fx);
        T_EQ_INT((uintptr_t)model_find_tensor(&m, "token_embd.weight")->data % 4, 0);
    }
    model_release(&m);
}

static void test_hf_errors(void) {
    struct fx ok = {.model_type = "llama", .dtype = "F32"};
    char p[800];
    const char *dir;

    expect_hf_error(tmp_path("no-such-dir"), "missing config.json");

    dir = fx_write("err_noweights", &ok);
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    unlink(p);
    expect_hf_error(dir, "no weights: expected");
    expect_hf_error(dir, "/model.safetensors or ");

    dir = fx_write("err_badjson", &ok);
    snprintf(p, sizeof p, "%s/config.json", dir);
    write_text(p, "{\n  \"model_type\": \"llama\",\n  \"hidden_size\": 32,,\n}\n");
    expect_hf_error(dir, "config.json: bad JSON at line 3, column");

    struct fx gpt2 = ok;
    gpt2.model_type = "gpt2";
    dir = fx_write("err_gpt2", &gpt2);
    snprintf(p, sizeof p,
             "unsupported architecture 'gpt2' in %s/config.json (lowbit runs llama, mistral, qwen2, "
             "qwen3, gemma2, gemma3_text, phi3, mixtral, qwen2_moe)", dir);
    expect_hf_error(dir, p);
    struct fx cls = {.arch_class = "GPT2LMHeadModel", .dtype = "F32"};
    expect_hf_error(fx_write("err_gpt2_class", &cls), "unsupported architecture 'GPT2LMHeadModel'");

    struct fx q = ok;
    q.config_extra = "\"quantization_config\": {\"quant_method\": \"hqq\", \"bits\": 4},";
    expect_hf_error(fx_write("err_quant", &q), "quant_method 'hqq' is not supported");

    struct fx yarn = ok;
    yarn.config_extra = "\"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4.0},";
    expect_hf_error(fx_write("err_yarn", &yarn), "rope_scaling type 'yarn' is not supported");
    yarn.config_extra = "\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0},";
    expect_hf_error(fx_write("err_llama3_partial", &yarn), "rope_scaling.low_freq_factor");

    struct fx gelu = ok;
    gelu.act = "gelu_pytorch_tanh";
    expect_hf_error(fx_write("err_gelu", &gelu), "hidden_act gelu_pytorch_tanh is not supported");
    struct fx dup = ok;
    dup.config_extra = "\"vocab_size\": 40,";
    expect_hf_error(fx_write("err_dup", &dup), "duplicate object key");

    struct fx badint = ok;
    badint.config_extra = "\"head_dim\": \"8\",";
    expect_hf_error(fx_write("err_badint", &badint), "head_dim is not an integer");

    /* sharded: a shard gone, a tensor the index promises but the shard lacks */
    struct fx sh = ok;
    sh.n_shards = 3;
    dir = fx_write("err_shard", &sh);
    snprintf(p, sizeof p, "%s/model-00002-of-00003.safetensors", dir);
    unlink(p);
    expect_hf_error(dir, "shard model-00002-of-00003.safetensors listed in "
                         "model.safetensors.index.json is missing");
    dir = fx_write("err_shard_lies", &sh);
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    json_t *idx = json_load_file(p, 0, NULL);
    json_object_set_new(json_object_get(idx, "weight_map"), "model.layers.9.mlp.up_proj.weight",
                        json_string("model-00001-of-00003.safetensors"));
    json_dump_file(idx, p, 0);
    json_decref(idx);
    expect_hf_error(dir, "tensor 'model.layers.9.mlp.up_proj.weight' is listed for this shard");
    dir = fx_write("err_shard_badjson", &sh);
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    write_text(p, "{\"weight_map\": {\"a\": \"../x.safetensors\"}}");
    expect_hf_error(dir, "not a file name in this directory");
    write_text(p, "{\"weight_map\": ");
    expect_hf_error(dir, "model.safetensors.index.json: bad JSON at line 1");

    /* truncated weights: a tensor's data past the end of its file */
    dir = fx_write("err_trunc", &ok);
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    struct stat sb;
    if (stat(p, &sb) || truncate(p, sb.st_size - 100)) T_FAIL_("truncate %s", p);
    expect_hf_error(dir, "run past the end of the file");
    /* header length larger than the file */
    write_raw(p, 1 << 20, "{}", NULL, 0);
    expect_hf_error(dir, "header length 1048576 is larger than the file");

    /* a weight missing: model_bind names it */
    struct fx miss = ok;
    miss.skip = "model.layers.1.mlp.down_proj.weight";
    expect_hf_error(fx_write("err_missing", &miss), "missing tensor blk.1.ffn_down.weight");
    /* untied without lm_head */
    miss.skip = "lm_head.weight";
    expect_hf_error(fx_write("err_nolmhead", &miss),
                    "lm_head.weight is missing and tie_word_embeddings is false");

    /* wrong dtype for a weight; an ignored tensor may have any dtype */
    struct fx i8 = ok;
    i8.skip = "model.norm.weight";
    i8.extra_tensor = "model.norm.weight";
    i8.extra_dtype = "I8";
    expect_hf_error(fx_write("err_i8", &i8),
                    "tensor 'model.norm.weight' has dtype I8 (lowbit reads F32, F16 or BF16");
    struct fx inv = ok;
    inv.extra_tensor = "model.layers.0.self_attn.rotary_emb.inv_freq";
    inv.extra_dtype = "I16";
    struct model m = MODEL_INIT;
    T_OK(!model_load_hf(&m, fx_write("ok_inv_freq", &inv)));
    T_EQ_INT(m.n_tensors, 3 + 9 * L);
    model_release(&m);

    /* refused tensors, bias without attention_bias, layers beyond the config */
    struct fx ob = ok;
    ob.extra_tensor = "model.layers.0.self_attn.o_proj.bias";
    expect_hf_error(fx_write("err_obias", &ob), "'model.layers.0.self_attn.o_proj.bias' is not "
                                                "supported");
    ob.extra_tensor = "model.layers.1.self_attn.v_proj.bias";
    expect_hf_error(fx_write("err_vbias", &ob), "is an attention bias but");
    ob.extra_tensor = "model.layers.2.input_layernorm.weight";
    expect_hf_error(fx_write("err_layer2", &ob), "is beyond num_hidden_layers 2");
    /* llama with attention_bias: q/k/v biases accepted */
    struct fx ab = ok;
    ab.bias = true;
    ab.config_extra = "\"attention_bias\": true,";
    load_and_check("llama_attn_bias", &ab, "llama");

    /* NaN: model_bind refuses */
    struct fx nan = ok;
    nan.dtype = "BF16";
    nan.nan_in = "model.layers.0.mlp.up_proj.weight";
    expect_hf_error(fx_write("err_nan", &nan),
                    "tensor blk.0.ffn_up.weight has NaN at row 0, column 5");
    nan.nan_in = "model.layers.1.post_attention_layernorm.weight";
    expect_hf_error(fx_write("err_nan_norm", &nan), "tensor blk.1.ffn_norm.weight has NaN");

    /* config sizes that disagree with the tensors */
    struct fx wide = ok;
    wide.head_dim = 4; /* q rows 16 instead of 32 */
    dir = fx_write("err_shape", &wide);
    snprintf(p, sizeof p, "%s/config.json", dir);
    size_t n;
    char *cfg = (char *)read_all(p, &n);
    cfg[n] = 0;
    char *hd = strstr(cfg, "\"head_dim\": 4");
    if (hd) hd[12] = '6'; /* config now claims head_dim 6 while tensors were made for 4 */
    write_text(p, cfg);
    free(cfg);
    expect_hf_error(dir, "tensor blk.0.attn_q.weight has shape [32, 16");
}

/* The real stories260K GGUF (llama.cpp layout: q/k rows interleaved, ROPE_NORM) rewritten as an
 * HF directory (rows un-permuted to HF's half-split layout, shapes [out, in]) must give the same
 * logits through the forward pass: checks the name map, the shape flip and ROPE_NEOX together
 * against an independent file. GGUF row h*hd + 2j + s holds HF row h*hd + s*hd/2 + j. */
static void test_hf_matches_gguf(void) {
    const char *gguf = T_DATA("models/stories260K.gguf");
    if (!gguf) return;
    struct model g = MODEL_INIT, h = MODEL_INIT;
    if (model_load(&g, gguf)) {
        T_FAIL_("cannot load %s: %s", gguf, err_last());
        return;
    }
    const struct model_config *c = &g.cfg;
    T_EQ_INT(c->rope_style, ROPE_NORM);
    char dir[512], path[700];
    snprintf(dir, sizeof dir, "%s/stories260K_hf", t_tmpdir());
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", "
               "\"hidden_size\": %d, \"intermediate_size\": %d, \"num_hidden_layers\": %d, "
               "\"num_attention_heads\": %d, \"num_key_value_heads\": %d, \"vocab_size\": %d, "
               "\"rms_norm_eps\": %.9g, \"rope_theta\": %.9g, \"tie_word_embeddings\": %s}\n",
            c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->vocab_size,
            (double)c->norm_eps, (double)c->rope_theta, g.tied_output ? "true" : "false");
    fclose(f);
    static const struct {
        const char *gg, *hf;
    } names[] = {
        {"attn_norm.weight", "input_layernorm.weight"},
        {"attn_q.weight", "self_attn.q_proj.weight"},
        {"attn_k.weight", "self_attn.k_proj.weight"},
        {"attn_v.weight", "self_attn.v_proj.weight"},
        {"attn_output.weight", "self_attn.o_proj.weight"},
        {"ffn_norm.weight", "post_attention_layernorm.weight"},
        {"ffn_gate.weight", "mlp.gate_proj.weight"},    {"ffn_up.weight", "mlp.up_proj.weight"},
        {"ffn_down.weight", "mlp.down_proj.weight"},
    };
    struct safetensors_writer w = SAFETENSORS_WRITER_INIT;
    float *bufs[64];
    int n_bufs = 0;
    for (int i = 0; i < g.n_tensors && n_bufs < 64; i++) {
        const struct tensor *t = &g.tensors[i];
        char hf[128] = "";
        int l = -1, heads = 0;
        if (!strcmp(t->name, "token_embd.weight")) {
            snprintf(hf, sizeof hf, "model.embed_tokens.weight");
        } else if (!strcmp(t->name, "output_norm.weight")) {
            snprintf(hf, sizeof hf, "model.norm.weight");
        } else if (!strcmp(t->name, "output.weight")) {
            snprintf(hf, sizeof hf, "lm_head.weight");
        } else if (sscanf(t->name, "blk.%d.", &l) == 1) {
            const char *suffix = strchr(t->name + 4, '.') + 1;
            for (size_t k = 0; k < LB_ARRAY_LEN(names); k++)
                if (!strcmp(suffix, names[k].gg))
                    snprintf(hf, sizeof hf, "model.layers.%d.%s", l, names[k].hf);
            heads = !strcmp(suffix, "attn_q.weight")   ? c->n_heads
                    : !strcmp(suffix, "attn_k.weight") ? c->n_kv_heads
                                                       : 0;
        }
        if (!hf[0]) continue;
        T_EQ_INT(t->type, DTYPE_F32);
        const int64_t cols = t->ne[0], rows = tensor_nrows(t), hd = c->head_dim;
        float *d = malloc((size_t)(cols * rows) * sizeof(float));
        for (int64_t r = 0; r < rows; r++) {
            int64_t src = r;
            if (heads) { /* HF row r = head hh, half s, index j  <-  GGUF row hh*hd + 2j + s */
                int64_t hh = r / hd, s2 = (r % hd) / (hd / 2), j = r % (hd / 2);
                src = hh * hd + 2 * j + s2;
            }
            tensor_row_to_f32(t, src, d + r * cols);
        }
        bufs[n_bufs++] = d;
        int64_t shape[2] = {rows, cols};
        T_OK(!safetensors_writer_add(&w, hf, "F32", t->n_dims, t->n_dims == 1 ? &cols : shape, d,
                                     (size_t)(cols * rows) * sizeof(float)));
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    T_OK(!safetensors_writer_write(&w, path));
    safetensors_writer_release(&w);
    for (int i = 0; i < n_bufs; i++) free(bufs[i]);

    if (model_load(&h, dir)) {
        T_FAIL_("cannot load %s: %s", dir, err_last());
    } else {
        T_EQ_INT(h.cfg.rope_style, ROPE_NEOX);
        T_EQ_INT(model_n_params(&h), model_n_params(&g));
        const int toks[] = {1, 403, 24, 302, 9, 77, 511, 260, 13, 2};
        const int n = (int)LB_ARRAY_LEN(toks), V0 = c->vocab_size;
        float *lg = malloc((size_t)(n * V0) * sizeof(float));
        float *lh = malloc((size_t)(n * V0) * sizeof(float));
        struct fwd_state sg, sh;
        T_OK(!fwd_init(&sg, &g, 64, 16) && !fwd_init(&sh, &h, 64, 16));
        T_OK(!forward(&sg, toks, n, lg, false) && !forward(&sh, toks, n, lh, false));
        double maxdiff = 0;
        int at = 0;
        for (int i = 0; i < n * V0; i++)
            if (fabs(lg[i] - lh[i]) > maxdiff) maxdiff = fabs(lg[i] - lh[i]), at = i;
        if (maxdiff > 1e-4)
            T_FAIL_("HF vs GGUF logits: maxdiff %g at token %d, vocab %d", maxdiff, at / V0,
                    at % V0);
        fwd_release(&sg);
        fwd_release(&sh);
        free(lg);
        free(lh);
    }
    model_release(&h);
    model_release(&g);
}

int main(void) {
    T_RUN(test_st_roundtrip);
    T_RUN(test_st_writer_bytes);
    T_RUN(test_st_writer_spool);
    T_RUN(test_st_writer_errors);
    T_RUN(test_st_corrupt);
    T_RUN(test_st_parse_borrowed);
    T_RUN(test_st_mutations);
    T_RUN(test_hf_llama_f32);
    T_RUN(test_hf_llama_f16);
    T_RUN(test_hf_llama_bf16);
    T_RUN(test_hf_sharded);
    T_RUN(test_hf_tied);
    T_RUN(test_hf_qwen2);
    T_RUN(test_hf_llama3_rope);
    T_RUN(test_hf_mistral_and_classes);
    T_RUN(test_hf_misaligned);
    T_RUN(test_hf_errors);
    T_RUN(test_hf_matches_gguf);
    return T_DONE();
}
