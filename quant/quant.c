/* quant/quant.c: the quantizer registry, recipe validation, and the fp baselines.
 *
 * The fp algorithm writes the unquantized model as a GGUF at fp32, fp16 or bf16: every 2-D weight
 * at that dtype, 1-D tensors (norms, biases) at f32, as llama.cpp's convert writes "--outtype
 * f16". Values are converted with round-to-nearest-even (kernels/dtype.h); an fp16 conversion
 * that overflows (|w| > 65504) is refused naming the tensor, rather than silently writing Inf. A
 * GGUF source keeps its tokenizer.* metadata; llama2.c and HF sources record their tokenizer file
 * for the evaluation instead. HF llama/mistral q/k rows are permuted back to GGUF's interleaved
 * rotary pairs (llama.cpp convert_hf_to_gguf.py permute: GGUF row h·hd + 2i + s = HF row
 * h·hd + s·hd/2 + i), and Llama-3.1 rope scaling becomes rope_freqs.weight, as llama.cpp does. */
#include "quant/quant.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "eval/gguf.h"
#include "kernels/common.h"
#include "quant/aqlm.h"     /* the aqlm row */
#include "quant/autoround.h" /* the autoround row */
#include "quant/awq.h"      /* the awq row */
#include "quant/gguf_mix.h" /* the gguf row */
#include "quant/gptq.h"     /* the gptq row */
#include "quant/qformat.h"  /* the rtn and bnb rows */
#include "quant/rotate.h"   /* rotation and smoothing before any row */

static int fp_check(const struct recipe *r);
static int fp_quantize(const struct quant_job *j, struct quant_artifact *a);

/* ===== registry: one row per algorithm (ggml type_traits style) ===== */

static const struct qmethod_info qmethods[QMETHOD_COUNT] = {
    [QMETHOD_FP] = {.name = "fp", .check = fp_check, .quantize = fp_quantize},
    [QMETHOD_RTN] = {.name = "rtn", .check = rtn_recipe_check, .quantize = rtn_recipe_quantize},
    [QMETHOD_GPTQ] = {.name = "gptq", .check = gptq_recipe_check, .quantize = gptq_recipe_quantize,
                      .needs_calib = true},
    [QMETHOD_AWQ] = {.name = "awq", .check = awq_recipe_check, .quantize = awq_recipe_quantize,
                     .needs_calib = true},
    [QMETHOD_AUTOROUND] = {.name = "autoround", .check = autoround_recipe_check,
                           .quantize = autoround_recipe_quantize, .needs_calib = true},
    [QMETHOD_BNB] = {.name = "bnb", .check = bnb_recipe_check, .quantize = bnb_recipe_quantize},
    [QMETHOD_GGUF] = {.name = "gguf", .check = gguf_recipe_check, .quantize = gguf_recipe_quantize},
    [QMETHOD_AQLM] = {.name = "aqlm", .check = aqlm_recipe_check, .quantize = aqlm_recipe_quantize,
                      .needs_calib = true},
};

const struct qmethod_info *qmethod_get(enum qmethod m) {
    return (unsigned)m < QMETHOD_COUNT ? &qmethods[m] : NULL;
}

int qmethod_from_name(const char *name) {
    for (int i = 0; name && i < QMETHOD_COUNT; i++)
        if (!strcasecmp(name, qmethods[i].name)) return i;
    return -1;
}

const char *qmethod_names(char *buf, size_t size) {
    size_t n = 0;
    buf[0] = 0;
    for (int i = 0; i < QMETHOD_COUNT && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, "%s%s", i ? ", " : "", qmethods[i].name);
    return buf;
}

/* ===== recipes ===== */

void recipe_init(struct recipe *r) {
    memset(r, 0, sizeof *r);
    r->method = QMETHOD_COUNT;
    r->bits = NAN;
    r->group_size = -1;
    r->sym = -1;
    r->double_quant = -1;
}

static const struct {
    const char *alias, *canon;
} wdt_alias[] = {
    {"float32", "float32"}, {"fp32", "float32"},  {"f32", "float32"},   {"float", "float32"},
    {"float16", "float16"}, {"fp16", "float16"},  {"f16", "float16"},   {"half", "float16"},
    {"bfloat16", "bfloat16"}, {"bf16", "bfloat16"}, {"int2", "int2"}, {"int3", "int3"},
    {"int4", "int4"},       {"int8", "int8"},     {"nf4", "nf4"},       {"fp4", "fp4"},
};

const char *recipe_weight_dtype_canon(const char *name, char *buf, size_t size) {
    if (!name || !*name) return NULL;
    for (size_t i = 0; i < LB_ARRAY_LEN(wdt_alias); i++)
        if (!strcasecmp(name, wdt_alias[i].alias)) return wdt_alias[i].canon;
    /* anything else must look like a type name (GGUF mixes: q4_k_m, iq4_nl, ...) */
    size_t n = strlen(name);
    if (n >= size || n > 24) return NULL;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return NULL;
        buf[i] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    }
    buf[n] = 0;
    return buf;
}

const char *recipe_compute_dtype_canon(const char *name) {
    static const struct {
        const char *alias, *canon;
    } t[] = {{"fp32", "fp32"},     {"float32", "fp32"}, {"f32", "fp32"},  {"fp16", "fp16"},
             {"float16", "fp16"},  {"f16", "fp16"},     {"half", "fp16"}, {"bf16", "bf16"},
             {"bfloat16", "bf16"}, {"int8", "int8"},    {"a8", "a8"},     {"a4", "a4"}};
    for (size_t i = 0; name && i < LB_ARRAY_LEN(t); i++)
        if (!strcasecmp(name, t[i].alias)) return t[i].canon;
    return NULL;
}

int recipe_check(const struct recipe *r) {
    char names[256];
    if ((unsigned)r->method >= QMETHOD_COUNT)
        return err("recipe '%s': algorithm '%s' is unknown (known: %s)", r->id, r->algorithm,
                   qmethod_names(names, sizeof names));
    const struct qmethod_info *q = &qmethods[r->method];
    if (!r->weight_dtype[0]) return err("recipe '%s': weight_dtype is empty", r->id);
    if (!recipe_compute_dtype_canon(r->compute_dtype))
        return err("recipe '%s': compute_dtype '%s' (expected fp32, fp16, bf16, int8, a8 or a4)",
                   r->id, r->compute_dtype);
    if (!isnan(r->bits) && !(r->bits > 0 && r->bits <= 32))
        return err("recipe '%s': bits %g (expected 0 < bits <= 32)", r->id, r->bits);
    if (r->has_group_size && r->group_size != -1 && r->group_size < 1)
        return err("recipe '%s': group_size %d (expected -1 = per channel, or >= 1)", r->id,
                   r->group_size);
    /* the knobs of quant/rotate.h are ours: the algorithm checks the others */
    struct rot_opts ro;
    struct recipe *r2 = xmalloc(sizeof *r2, "a recipe");
    if (!r2) return -1;
    *r2 = *r;
    int rc = rot_knobs(r->id, r->knobs, &ro, r2->knobs, sizeof r2->knobs);
    if (!rc && (ro.rotate || ro.smooth_alpha >= 0) && r->method != QMETHOD_FP &&
        r->method != QMETHOD_RTN && r->method != QMETHOD_GPTQ && r->method != QMETHOD_GGUF &&
        r->method != QMETHOD_BNB)
        rc = err("recipe '%s': rotate and smooth_alpha go with fp, rtn, gptq, gguf and bnb (the "
                 "block-wise backward of %s does not apply online rotations)",
                 r->id, q->name);
    if (!rc && ro.smooth_alpha >= 0 && !r->calib_set[0])
        rc = err("recipe '%s': smooth_alpha needs a calib_set (SmoothQuant's activation "
                 "statistics)",
                 r->id);
    if (!rc && q->check) rc = q->check(r2);
    free(r2);
    return rc;
}

void quant_prov(struct quant_artifact *a, const char *key, const char *fmt, ...) {
    if (a->n_prov >= QUANT_MAX_PROV) return;
    snprintf(a->prov[a->n_prov].key, sizeof a->prov[0].key, "%s", key);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->prov[a->n_prov].value, sizeof a->prov[0].value, fmt, ap);
    va_end(ap);
    a->n_prov++;
}

int quant_model(const struct quant_job *j, struct quant_artifact *a) {
    memset(a, 0, sizeof *a);
    if (recipe_check(j->r)) return -1;
    const struct qmethod_info *q = &qmethods[j->r->method];
    if (!q->quantize)
        return err("recipe '%s': algorithm '%s' is not implemented yet", j->r->id, q->name);
    struct stat st;
    if (stat(j->out_dir, &st) || !S_ISDIR(st.st_mode))
        return err("quant: output directory %s does not exist", j->out_dir);
    const enum qmethod me = j->r->method;
    if (j->m->cfg.n_expert > 0 && me == QMETHOD_AQLM)
        return err("recipe '%s': %s does not quantize mixture-of-experts models yet (its "
                   "codebooks and block fine-tuning are not wired to the routed experts); gptq, "
                   "awq and autoround calibrate each expert with the tokens routed to it, and fp, "
                   "rtn, bnb and gguf recipes quantize MoE models",
                   j->r->id, q->name);
    struct rot_opts ro;
    struct recipe *r2 = xmalloc(sizeof *r2, "a recipe");
    if (!r2) return -1;
    *r2 = *j->r;
    int rc = rot_knobs(j->r->id, j->r->knobs, &ro, r2->knobs, sizeof r2->knobs);
    if (rc || !rot_wanted(&ro)) {
        if (!rc) rc = q->quantize(j, a);
        free(r2);
        return rc;
    }
    /* rotation / smoothing / the activation clip: the algorithm quantizes the transformed model */
    float *amax = NULL;
    struct model tm = MODEL_INIT;
    struct quant_job j2 = *j;
    j2.r = r2;
    j2.m = &tm;
    rc = -1;
    if (ro.smooth_alpha >= 0 && rot_act_stats(j, &amax)) goto out;
    if (rot_model(&tm, j->m, &ro, amax)) goto out;
    rc = q->quantize(&j2, a);
    if (!rc && ro.rotate)
        quant_prov(a, "quant.rotate",
                   "randomized Hadamard (seed %llu) on the residual stream, "
                   "online Hadamard on the input of %s",
                   (unsigned long long)ro.seed, ro.rotate_o ? "o_proj and down_proj" : "down_proj");
    if (!rc && ro.smooth_alpha >= 0) quant_prov(a, "quant.smooth_alpha", "%g", ro.smooth_alpha);
    if (!rc && ro.act_clip > 0) quant_prov(a, "quant.act_clip", "%g", (double)ro.act_clip);
    rot_model_release(&tm);
out:
    free(amax);
    free(r2);
    return rc;
}

/* ===== GGUF helpers ===== */

int quant_gguf_put_model_kv(struct gguf_writer *w, const struct model *m, const char *name,
                            int file_type) {
    const struct model_config *c = &m->cfg;
    char k[96];
    int rc = gguf_writer_str(w, "general.architecture", c->arch);
    if (!rc && name) rc = gguf_writer_str(w, "general.name", name);
    if (!rc) rc = gguf_writer_u32(w, "general.file_type", (uint32_t)file_type);
#define KV_U32(key, v)                                                                             \
    if (!rc) {                                                                                     \
        snprintf(k, sizeof k, "%s." key, c->arch);                                                 \
        rc = gguf_writer_u32(w, k, (uint32_t)(v));                                                 \
    }
#define KV_F32(key, v)                                                                             \
    if (!rc) {                                                                                     \
        snprintf(k, sizeof k, "%s." key, c->arch);                                                 \
        rc = gguf_writer_f32(w, k, (float)(v));                                                    \
    }
    if (c->ctx_len > 0) KV_U32("context_length", c->ctx_len);
    KV_U32("embedding_length", c->dim);
    KV_U32("block_count", c->n_layers);
    KV_U32("feed_forward_length", c->hidden_dim);
    KV_U32("attention.head_count", c->n_heads);
    KV_U32("attention.head_count_kv", c->n_kv_heads);
    KV_U32("attention.key_length", c->head_dim);
    KV_U32("attention.value_length", c->head_dim);
    KV_F32("attention.layer_norm_rms_epsilon", c->norm_eps);
    KV_F32("rope.freq_base", c->rope_theta);
    KV_U32("rope.dimension_count", c->head_dim);
    KV_U32("vocab_size", c->vocab_size);
    if (!rc && c->online_had) { /* a rotated model (quant/rotate.h) */
        char oh[128];
        model_online_had_name(c->online_had, oh, sizeof oh);
        rc = gguf_writer_str(w, "lowbit.online_hadamard", oh);
    }
    if (!rc && c->act_clip > 0) rc = gguf_writer_f32(w, "lowbit.act_clip", c->act_clip);
    if (c->post_norms) { /* gemma2 / gemma3: the keys llama.cpp reads (eval/gguf_model.c) */
        KV_U32("attention.sliding_window", c->swa_window);
        KV_U32("attention.sliding_window_pattern", c->swa_pattern);
        KV_F32("attn_logit_softcapping", c->attn_softcap);
        KV_F32("final_logit_softcapping", c->final_softcap);
        KV_F32("rope.freq_base_swa", c->rope_theta_swa > 0 ? c->rope_theta_swa : c->rope_theta);
        if (c->rope_linear > 0) KV_F32("rope.scaling.factor", c->rope_linear);
    }
    if (c->n_expert > 0) { /* Mixtral */
        KV_U32("expert_count", c->n_expert);
        KV_U32("expert_used_count", c->n_expert_used);
    }
    if (c->shared_hidden > 0) { /* qwen2moe */
        KV_U32("expert_feed_forward_length", c->expert_hidden);
        KV_U32("expert_shared_feed_forward_length", c->shared_hidden);
        if (!rc && c->expert_norm) { /* norm_topk_prob: read by lowbit, ignored by llama.cpp */
            snprintf(k, sizeof k, "%s.expert_weights_norm", c->arch);
            rc = gguf_writer_bool(w, k, true);
        }
    }
    if (model_fused_qkv(c)) { /* phi3's longrope keys (eval/gguf_model.c) */
        if (c->rope_orig_ctx > 0) KV_U32("rope.scaling.original_context_length", c->rope_orig_ctx);
        if (c->rope_attn_factor > 0) KV_F32("rope.scaling.attn_factor", c->rope_attn_factor);
    }
#undef KV_U32
#undef KV_F32
    return rc;
}

/* a NUL-terminated copy of a GGUF string */
static char *gstr(struct gguf_str s) {
    char *p = xmalloc(s.len + 1, "a GGUF string");
    if (p) {
        memcpy(p, s.p, s.len);
        p[s.len] = 0;
    }
    return p;
}

static int copy_kv(struct gguf_writer *w, const struct gguf_kv *kv, const char *key) {
    switch (kv->type) {
    case GGUF_TYPE_UINT8:
    case GGUF_TYPE_UINT16:
    case GGUF_TYPE_UINT32: return gguf_writer_u32(w, key, (uint32_t)kv->v.u);
    case GGUF_TYPE_UINT64:
        if (kv->v.u > UINT32_MAX) return err("quant: GGUF key %s = %llu does not fit u32", key,
                                             (unsigned long long)kv->v.u);
        return gguf_writer_u32(w, key, (uint32_t)kv->v.u);
    case GGUF_TYPE_INT8:
    case GGUF_TYPE_INT16:
    case GGUF_TYPE_INT32: return gguf_writer_i32(w, key, (int32_t)kv->v.i);
    case GGUF_TYPE_INT64:
        if (kv->v.i > INT32_MAX || kv->v.i < INT32_MIN)
            return err("quant: GGUF key %s = %lld does not fit i32", key, (long long)kv->v.i);
        return gguf_writer_i32(w, key, (int32_t)kv->v.i);
    case GGUF_TYPE_FLOAT32:
    case GGUF_TYPE_FLOAT64: return gguf_writer_f32(w, key, (float)kv->v.f);
    case GGUF_TYPE_BOOL: return gguf_writer_bool(w, key, kv->v.u != 0);
    case GGUF_TYPE_STRING: {
        char *s = gstr(kv->v.str);
        int rc = s ? gguf_writer_str(w, key, s) : -1;
        free(s);
        return rc;
    }
    case GGUF_TYPE_ARRAY: {
        if (kv->v.arr.type == GGUF_TYPE_ARRAY)
            return err("quant: GGUF key %s is a nested array, which lowbit does not copy", key);
        if (kv->v.arr.type != GGUF_TYPE_STRING)
            return gguf_writer_arr(w, key, kv->v.arr.type, kv->v.arr.data, kv->v.arr.n);
        const uint64_t n = kv->v.arr.n;
        char **strs = xcalloc(n ? n : 1, sizeof *strs, "a GGUF string array");
        int rc = strs ? 0 : -1;
        for (uint64_t i = 0; !rc && i < n; i++)
            if (!(strs[i] = gstr(kv->v.arr.strs[i]))) rc = -1;
        if (!rc) rc = gguf_writer_arr_str(w, key, (const char *const *)strs, n);
        for (uint64_t i = 0; strs && i < n; i++) free(strs[i]);
        free(strs);
        return rc;
    }
    case GGUF_TYPE_COUNT: break;
    }
    return err("quant: GGUF key %s has type %d, which lowbit does not copy", key, (int)kv->type);
}

int quant_gguf_copy_tokenizer(struct gguf_writer *w, const struct model *m) {
    if (!m->gguf) return 1;
    const struct gguf_file *g = m->gguf;
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const struct gguf_kv *kv = &g->kv[i];
        if (kv->key.len < 10 || memcmp(kv->key.p, "tokenizer.", 10)) continue;
        char *key = gstr(kv->key);
        int rc = key ? copy_kv(w, kv, key) : -1;
        free(key);
        if (rc) return -1;
    }
    return 0;
}

/* the rotary inverse frequency of pair i, as eval/forward.c computes it from cfg (Llama-3.1
 * scaling), without the GGUF factors */
static double rope_scaled(const struct model_config *c, int i) {
    double f = pow((double)c->rope_theta, -2.0 * i / c->head_dim);
    if (c->rope_factor > 0) {
        const double lo_wl = c->rope_orig_ctx / c->rope_low_freq_factor;
        const double hi_wl = c->rope_orig_ctx / c->rope_high_freq_factor;
        const double wl = 2 * M_PI / f;
        if (wl > lo_wl) {
            f /= c->rope_factor;
        } else if (wl >= hi_wl) {
            double smooth = (c->rope_orig_ctx / wl - c->rope_low_freq_factor) /
                            (c->rope_high_freq_factor - c->rope_low_freq_factor);
            f = (1 - smooth) * f / c->rope_factor + smooth * f;
        }
    }
    return f;
}

int quant_gguf_fuse(struct gguf_writer *w, const struct model *m) {
    const struct model_config *c = &m->cfg;
    if (!model_fused_qkv(c)) return 0;
    for (int l = 0; l < c->n_layers; l++) {
        char nm[3][TENSOR_NAME_MAX], fused[TENSOR_NAME_MAX];
        const char *names[3] = {nm[0], nm[1], nm[2]};
        const int64_t kvd = (int64_t)c->n_kv_heads * c->head_dim;
        for (int k = 0; k < 3; k++) lin_name(nm[k], sizeof nm[k], l, (enum lin)(LIN_Q + k));
        snprintf(fused, sizeof fused, "blk.%d.attn_qkv.weight", l);
        const int64_t ne_qkv[2] = {c->dim, (int64_t)c->n_heads * c->head_dim + 2 * kvd};
        if (gguf_writer_merge(w, names, 3, fused, 2, ne_qkv) < 0) return -1;
        lin_name(nm[0], sizeof nm[0], l, LIN_GATE);
        lin_name(nm[1], sizeof nm[1], l, LIN_UP);
        snprintf(fused, sizeof fused, "blk.%d.ffn_up.weight", l);
        const int64_t ne_up[2] = {c->dim, 2 * (int64_t)c->hidden_dim};
        if (gguf_writer_merge(w, names, 2, fused, 2, ne_up) < 0) return -1;
    }
    return 0;
}

int quant_gguf_put_rope_freqs(struct gguf_writer *w, const struct model *m, float **buf) {
    const struct model_config *c = &m->cfg;
    *buf = NULL;
    const int64_t ne_lr[1] = {c->head_dim / 2};
    if (m->rope_long &&
        gguf_writer_tensor(w, "rope_factors_long.weight", 0, 1, ne_lr, m->rope_long,
                           (uint64_t)ne_lr[0] * 4))
        return -1;
    if (m->rope_short &&
        gguf_writer_tensor(w, "rope_factors_short.weight", 0, 1, ne_lr, m->rope_short,
                           (uint64_t)ne_lr[0] * 4))
        return -1;
    if (!(c->rope_factor > 0) && !m->rope_freq_factors) return 0;
    const int half = c->head_dim / 2;
    float *f = xcalloc((size_t)half, sizeof *f, "rope_freqs");
    if (!f) return -1;
    for (int i = 0; i < half; i++) {
        /* forward divides the base frequency by this factor */
        double factor = pow((double)c->rope_theta, -2.0 * i / c->head_dim) / rope_scaled(c, i);
        if (m->rope_freq_factors) factor *= m->rope_freq_factors[i];
        f[i] = (float)factor;
    }
    *buf = f;
    const int64_t ne[1] = {half};
    return gguf_writer_tensor(w, "rope_freqs.weight", 0, 1, ne, f, (uint64_t)half * 4);
}

/* ===== fp: fp32 / fp16 / bf16 baselines ===== */

static int fp_target(const char *wdt, enum dtype *t, int *ftype) {
    if (!strcmp(wdt, "float32")) *t = DTYPE_F32, *ftype = 0;
    else if (!strcmp(wdt, "float16")) *t = DTYPE_F16, *ftype = 1;
    else if (!strcmp(wdt, "bfloat16")) *t = DTYPE_BF16, *ftype = 32;
    else return -1;
    return 0;
}

static int fp_check(const struct recipe *r) {
    enum dtype t;
    int ft;
    if (fp_target(r->weight_dtype, &t, &ft))
        return err("recipe '%s': algorithm fp writes float32, float16 or bfloat16 weights, not "
                   "'%s'", r->id, r->weight_dtype);
    const double want = t == DTYPE_F32 ? 32 : 16;
    if (!isnan(r->bits) && r->bits != want)
        return err("recipe '%s': bits %g does not match weight_dtype %s (%g bits)", r->id,
                   r->bits, r->weight_dtype, want);
    if (r->has_group_size && r->group_size != -1)
        return err("recipe '%s': algorithm fp has no groups (group_size must be empty)", r->id);
    return 0;
}

/* a tensor kept at f32 whatever the recipe: 1-D (norms, biases, rope factors) */
static bool keep_f32(const struct tensor *t) { return t->n_dims < 2 || t->ne[1] == 1; }

/* the tokenizer eval needs for an artifact without one: the explicit one, else the file the
 * engine would look for beside the source (cli_load_tokenizer's rule) */
static void fp_tokenizer_path(const struct quant_job *j, char *out, size_t size) {
    if (j->src_tokenizer && *j->src_tokenizer) {
        snprintf(out, size, "%s", j->src_tokenizer);
    } else if (j->m->format == MODEL_FORMAT_HF) {
        snprintf(out, size, "%s/tokenizer.json", j->src_path);
    } else {
        const char *slash = strrchr(j->src_path, '/');
        int dir = slash ? (int)(slash - j->src_path) : 0;
        snprintf(out, size, "%.*s%stokenizer.bin", dir, j->src_path, slash ? "/" : "");
    }
}

static int fp_quantize(const struct quant_job *j, struct quant_artifact *a) {
    const struct model *m = j->m;
    enum dtype target;
    int ftype, ret = -1;
    if (fp_target(j->r->weight_dtype, &target, &ftype)) return fp_check(j->r);
    const struct dtype_info *ti = dtype_get(target);
    struct gguf_writer *w = gguf_writer_new();
    void **bufs = xcalloc((size_t)m->n_tensors + 1, sizeof *bufs, "tensor buffers");
    int64_t max_cols = 1;
    for (int i = 0; i < m->n_tensors; i++) max_cols = LB_MAX(max_cols, m->tensors[i].ne[0]);
    float *row = xcalloc((size_t)max_cols, sizeof *row, "a row");
    float *rope = NULL;
    if (!w || !bufs || !row) goto out;
    snprintf(a->path, sizeof a->path, "%s/model.gguf", j->out_dir);
    snprintf(a->format, sizeof a->format, "gguf");
    if (quant_gguf_put_model_kv(w, m, j->r->id, ftype)) goto out;
    int rc = quant_gguf_copy_tokenizer(w, m);
    if (rc < 0) goto out;
    if (rc == 1) fp_tokenizer_path(j, a->tokenizer, sizeof a->tokenizer);
    /* HF llama/mistral keep q/k in the half-split rotary layout; GGUF "llama" wants pairs */
    const bool permute = m->cfg.rope_style == ROPE_NEOX && !model_gguf_keeps_hf_rope(&m->cfg);
    for (int i = 0; i < m->n_tensors; i++) {
        const struct tensor *t = &m->tensors[i];
        const int64_t n_cols = t->ne[0], n_rows = tensor_nrows(t);
        const enum dtype dt = keep_f32(t) ? DTYPE_F32 : target;
        const struct dtype_info *di = dtype_get(dt);
        const size_t row_bytes = dtype_row_size(dt, n_cols);
        if (!row_bytes) {
            err("quant: tensor %s: %lld columns are not whole %s blocks", t->name,
                (long long)n_cols, di->name);
            goto out;
        }
        uint8_t *dst = xmalloc(row_bytes * (size_t)n_rows, t->name);
        if (!dst) goto out;
        bufs[i] = dst;
        /* q (n_heads) and k (n_kv_heads) rows come in heads of head_dim */
        const int heads = permute ? lin_rope_heads(&m->cfg, lin_of_tensor(t->name)) : 0;
        const int64_t hd = m->cfg.head_dim;
        if (heads && n_rows != heads * hd) {
            err("quant: tensor %s has %lld rows, expected %d heads of %lld", t->name,
                (long long)n_rows, heads, (long long)hd);
            goto out;
        }
        for (int64_t r = 0; r < n_rows; r++) {
            int64_t src = r;
            if (heads) { /* GGUF row h·hd + 2i + s <- HF row h·hd + s·hd/2 + i */
                const int64_t h = r / hd, in = r % hd, ii = in / 2, s = in % 2;
                src = h * hd + s * (hd / 2) + ii;
            }
            tensor_row_to_f32(t, src, row);
            void *d = dst + (size_t)r * row_bytes;
            di->from_f32(row, d, n_cols);
            if (dt == DTYPE_F16) {
                const lb_fp16 *h = d;
                for (int64_t c = 0; c < n_cols; c++)
                    if (isinf(lb_fp16_to_f32(h[c])) && isfinite(row[c])) {
                        err("recipe '%s': tensor %s row %lld column %lld is %g, beyond float16's "
                            "range (max 65504); use bf16 or fp32 for this model", j->r->id,
                            t->name, (long long)r, (long long)c, (double)row[c]);
                        goto out;
                    }
            }
        }
        if (gguf_writer_tensor(w, t->name, (uint32_t)di->ggml_type, t->n_dims, t->ne, dst,
                               row_bytes * (size_t)n_rows))
            goto out;
    }
    if (quant_gguf_put_rope_freqs(w, m, &rope) || quant_gguf_fuse(w, m)) goto out;
    if (gguf_writer_write(w, a->path)) goto out;
    quant_prov(a, "quant.weight_type", "%s (1-D tensors f32)", ti->name);
    if (permute) quant_prov(a, "quant.rope_permute", "HF q/k rows permuted to GGUF pairs");
    ret = 0;
out:
    for (int i = 0; bufs && i < m->n_tensors; i++) free(bufs[i]);
    free(bufs);
    free(row);
    free(rope);
    gguf_writer_free(w);
    return ret;
}

int recipe_knobs(const struct recipe *r, json_t **out) {
    *out = NULL;
    if (!r->knobs[0]) return 0;
    json_error_t je;
    json_t *kn = json_loads(r->knobs, 0, &je);
    if (!json_is_object(kn)) {
        json_decref(kn);
        return err("recipe '%s': knobs '%s' are not a JSON object (%s)", r->id, r->knobs,
                   kn ? "not an object" : je.text);
    }
    *out = kn;
    return 0;
}
