/* quant/hf_export.c: the shared part of HF directory writers (see hf_export.h). */
#include "quant/hf_export.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "eval/gguf.h"

/* ===== names ===== */

/* the norms of a block; its linears and their biases come from eval/model.h's lin_info */
static const struct {
    const char *canon, *hf;
} norm_map[] = {
    {"attn_norm.weight", "input_layernorm.weight"},
    {"ffn_norm.weight", "post_attention_layernorm.weight"},
    {"attn_q_norm.weight", "self_attn.q_norm.weight"}, /* qwen3 */
    {"attn_k_norm.weight", "self_attn.k_norm.weight"},
};

/* Gemma's four norms of a block (its post_attention_layernorm is the attention output's) */
static const struct {
    const char *canon, *hf;
} gemma_norm_map[] = {
    {"attn_norm.weight", "input_layernorm.weight"},
    {"post_attention_norm.weight", "post_attention_layernorm.weight"},
    {"ffn_norm.weight", "pre_feedforward_layernorm.weight"},
    {"post_ffw_norm.weight", "post_feedforward_layernorm.weight"},
};

/* the HF suffix of block suffix c into out: *linear for a linear's weight, *qk 1 = q rows
 * (n_heads), 2 = k rows (n_kv_heads): rotary rows to un-permute. false: c is no block tensor. */
static bool layer_hf(const struct model_config *mc, const char *c, char *out, size_t n,
                     bool *linear, int *qk) {
    for (size_t i = 0; mc->post_norms && i < LB_ARRAY_LEN(gemma_norm_map); i++)
        if (!strcmp(c, gemma_norm_map[i].canon))
            return snprintf(out, n, "%s", gemma_norm_map[i].hf), true;
    for (size_t i = 0; i < LB_ARRAY_LEN(norm_map); i++)
        if (!strcmp(c, norm_map[i].canon)) return snprintf(out, n, "%s", norm_map[i].hf), true;
    /* MoE: the router (kept in float, as GPTQModel and AutoAWQ keep it) and each expert, in
     * Mixtral's names (block_sparse_moe) or qwen2moe's (mlp, and the shared expert) */
    const bool q2 = mc->shared_hidden > 0;
    if (mc->n_expert > 0 && !strcmp(c, "ffn_gate_inp.weight"))
        return snprintf(out, n, q2 ? "mlp.gate.weight" : "block_sparse_moe.gate.weight"), true;
    int e, pos = 0;
    char kind[16];
    if (mc->n_expert > 0 && sscanf(c, "ffn_%15[a-z]_exps.%d.weight%n", kind, &e, &pos) == 2 &&
        !c[pos]) {
        if (q2) snprintf(out, n, "mlp.experts.%d.%s_proj.weight", e, kind);
        else snprintf(out, n, "block_sparse_moe.experts.%d.w%c.weight", e,
                      !strcmp(kind, "gate") ? '1' : !strcmp(kind, "up") ? '3' : '2');
        *linear = true;
        return true;
    }
    pos = 0;
    if (q2 && sscanf(c, "ffn_%15[a-z]_shexp.weight%n", kind, &pos) == 1 && !c[pos]) {
        snprintf(out, n, "mlp.shared_expert.%s_proj.weight", kind);
        *linear = true;
        return true;
    }
    if (q2 && !strcmp(c, "ffn_gate_inp_shexp.weight"))
        return snprintf(out, n, "mlp.shared_expert_gate.weight"), true;
    for (int i = 0; i < LIN_COUNT; i++) {
        const struct lin_info *li = &lin_info[i];
        const size_t k = strlen(li->gguf);
        if (strncmp(c, li->gguf, k)) continue;
        const bool w = !strcmp(c + k, ".weight"), b = li->bias && !strcmp(c + k, ".bias");
        if (!w && !b) continue;
        snprintf(out, n, "%s%s", li->hf, c + k);
        *linear = w;
        *qk = !li->rope ? 0 : li->out == LIN_DIM_QD ? 1 : 2;
        return true;
    }
    return false;
}

/* HF name of canonical `c`; *linear, *qk as in layer_hf. 0 ok, 1 = no HF tensor (skip), -1. */
static int hf_name(const struct model *m, const char *c, char *out, size_t n, bool *linear,
                   int *qk) {
    *linear = false;
    *qk = 0;
    if (!strcmp(c, "token_embd.weight")) return snprintf(out, n, "model.embed_tokens.weight"), 0;
    if (!strcmp(c, "output_norm.weight")) return snprintf(out, n, "model.norm.weight"), 0;
    if (!strcmp(c, "output.weight")) return snprintf(out, n, "lm_head.weight"), 0;
    if (!strcmp(c, "rope_freqs.weight") && m->cfg.rope_factor > 0) return 1; /* in rope_scaling */
    int layer, pos = 0;
    char sfx[128];
    if (sscanf(c, "blk.%d.%n", &layer, &pos) == 1 && pos > 0 &&
        layer_hf(&m->cfg, c + pos, sfx, sizeof sfx, linear, qk)) {
        snprintf(out, n, "model.layers.%d.%s", layer, sfx);
        return 0;
    }
    return err("%s: tensor %s has no Hugging Face name (lowbit exports llama, mistral, qwen2, qwen3, "
               "gemma2, gemma3, phi3)", m->path, c);
}

/* ===== collect ===== */

static void hfx_drop(struct hfx_tensor *t);

void hfx_release(struct hfx_model *hm) {
    hfx_end(hm);
    for (int i = 0; i < hm->n; i++) hfx_drop(&hm->t[i]);
    free(hm->t);
    memset(hm, 0, sizeof *hm);
}

/* rows [N] of t as fp32 [N][K], q/k rows un-permuted to HF's half-split order when needed */
static float *rows_f32(const struct model *m, const struct tensor *t, int qk) {
    const int64_t K = t->ne[0], N = tensor_nrows(t);
    float *f = xmalloc((size_t)(N * K) * sizeof *f, t->name);
    if (!f) return NULL;
    if (t->n_dims == 1) { /* a bias: one "row" of K values, each a rotary row */
        tensor_row_to_f32(t, 0, f);
    } else {
        for (int64_t r = 0; r < N; r++) tensor_row_to_f32(t, r, f + r * K);
    }
    if (!qk || m->cfg.rope_style != ROPE_NORM) return f;
    const int64_t hd = m->cfg.head_dim, rows = t->n_dims == 1 ? K : N, len = t->n_dims == 1 ? 1 : K;
    float *g = xmalloc((size_t)(N * K) * sizeof *g, t->name);
    if (!g) {
        free(f);
        return NULL;
    }
    for (int64_t r = 0; r < rows; r++) { /* HF row h·hd + s·hd/2 + i <- source h·hd + 2i + s */
        const int64_t h = r / hd, w = r % hd, s = w / (hd / 2), i = w % (hd / 2);
        memcpy(g + r * len, f + (h * hd + 2 * i + s) * len, (size_t)len * sizeof *g);
    }
    free(f);
    return g;
}

/* the tensor's buffers, once it is in the file */
static void hfx_drop(struct hfx_tensor *t) {
    free(t->f32);
    free(t->qbuf);
    bnb_state_release(&t->bnb);
    t->f32 = NULL, t->qbuf = NULL;
    t->q.data = NULL;
    t->dropped = true;
}

int hfx_collect(struct hfx_model *hm, const struct model *m, const char *src_path, bool lazy) {
    memset(hm, 0, sizeof *hm);
    hm->m = m;
    hm->src_path = src_path;
    if (!lazy) { /* the fp32 rows of every block linear held at once: refuse before the first */
        size_t need = 0;
        for (int i = 0; i < m->n_tensors; i++)
            need += (size_t)tensor_nelements(&m->tensors[i]) * 4;
        char what[4200];
        snprintf(what, sizeof what, "quantizing %s (its weights as fp32)", m->path);
        if (mem_check(need, what)) return -1;
    }
    const int n_ex = m->cfg.n_layers * 3 * LB_MAX(m->cfg.n_expert, 0);
    hm->t = xcalloc((size_t)(m->n_tensors + n_ex) + 1, sizeof *hm->t, "export tensors");
    if (!hm->t) return -1;
    for (int i = 0; i < m->n_tensors; i++) {
        const struct tensor *s = &m->tensors[i];
        int layer, pos = 0, kind = -1;
        if (m->cfg.n_expert > 0 && s->n_dims == 3 && sscanf(s->name, "blk.%d.%n", &layer, &pos) == 1)
            for (int j = 0; j < 3; j++)
                if (!strcmp(s->name + pos, (const char *const[]){"ffn_gate_exps.weight",
                                                                 "ffn_up_exps.weight",
                                                                 "ffn_down_exps.weight"}[j]))
                    kind = j;
        if (kind >= 0) { /* stacked experts: one HF module per expert, rows from its slice */
            for (int e = 0; e < m->cfg.n_expert; e++) {
                struct hfx_tensor *t = &hm->t[hm->n++];
                t->src = &m->layers[layer].ex[e * 3 + kind];
                bool lin;
                int qk;
                if (hf_name(m, t->src->name, t->hf, sizeof t->hf, &lin, &qk)) goto fail;
                t->linear = true;
                t->K = t->src->ne[0];
                t->N = t->src->ne[1];
                snprintf(t->module, sizeof t->module, "%.*s", (int)(strlen(t->hf) - 7), t->hf);
                if (!lazy && !(t->f32 = rows_f32(m, t->src, 0))) goto fail;
            }
            continue;
        }
        struct hfx_tensor *t = &hm->t[hm->n];
        bool linear;
        int qk;
        const int rc = hf_name(m, s->name, t->hf, sizeof t->hf, &linear, &qk);
        if (rc < 0) goto fail;
        if (rc) continue;
        t->src = s;
        t->linear = linear && s->n_dims == 2;
        t->K = s->ne[0];
        t->N = tensor_nrows(s);
        if (t->linear) snprintf(t->module, sizeof t->module, "%.*s", (int)(strlen(t->hf) - 7), t->hf);
        if (t->linear || (qk && m->cfg.rope_style == ROPE_NORM)) {
            if (qk && m->cfg.head_dim % 2) {
                err("%s: head_dim %d is odd: cannot reorder rotary rows", m->path, m->cfg.head_dim);
                goto fail;
            }
            t->qk = qk;
            /* a reordered bias now (small); a linear's rows when the quantizer asks (hfx_load) */
            if ((!t->linear || !lazy) && !(t->f32 = rows_f32(m, s, qk))) goto fail;
        }
        const size_t nl = strlen(s->name);
        if (m->cfg.post_norms && !t->linear && nl > 11 && !strcmp(s->name + nl - 11, "norm.weight")) {
            /* Gemma's checkpoints store w for a norm multiplying by 1 + w (eval/model.h) */
            if (!(t->f32 = rows_f32(m, s, 0))) goto fail;
            for (int64_t k = 0; k < t->N * t->K; k++) t->f32[k] -= 1.0f;
        }
        hm->n++;
    }
    return 0;
fail:
    hfx_release(hm);
    return -1;
}

int hfx_load(struct hfx_model *hm, int i) {
    struct hfx_tensor *t = &hm->t[i];
    if (t->f32) return 0;
    if (t->written) return err("%s: rows asked for after the tensor was written", t->hf);
    char what[300];
    snprintf(what, sizeof what, "%s as fp32", t->hf);
    if (mem_check((size_t)(t->N * t->K) * sizeof(float) * (t->qk ? 2 : 1), what)) return -1;
    return (t->f32 = rows_f32(hm->m, t->src, t->qk)) ? 0 : -1;
}

size_t hfx_block_bytes(const struct hfx_model *hm, int l) {
    char pre[32];
    const int n = snprintf(pre, sizeof pre, "blk.%d.", l);
    size_t b = 0;
    for (int i = 0; i < hm->n; i++)
        if (hm->t[i].linear && !strncmp(hm->t[i].src->name, pre, (size_t)n))
            b += (size_t)(hm->t[i].N * hm->t[i].K) * sizeof(float);
    return b;
}

/* ===== writing ===== */

int hfx_add_float(struct safetensors_writer *w, const struct hfx_tensor *t, void **owned) {
    *owned = NULL;
    int64_t shape[2];
    const int nd = t->src->n_dims == 1 ? 1 : 2;
    if (nd == 1) shape[0] = t->K;
    else shape[0] = t->N, shape[1] = t->K;
    const size_t n = (size_t)(t->N * t->K);
    const enum dtype dt = t->src->type;
    if (!t->f32 && (dt == DTYPE_F32 || dt == DTYPE_F16 || dt == DTYPE_BF16))
        return safetensors_writer_add(w, t->hf, dt == DTYPE_F32 ? "F32" : dt == DTYPE_F16 ? "F16" : "BF16",
                                      nd, shape, t->src->data, tensor_nbytes(t->src));
    /* reordered rows, or a source dtype HF has no float for: written in the source's float dtype
     * when it has one, else F32 */
    if (dt == DTYPE_F16 || dt == DTYPE_BF16) {
        uint16_t *h = xmalloc(n * 2, t->hf);
        if (!h) return -1;
        for (size_t i = 0; i < n; i++)
            h[i] = dt == DTYPE_F16 ? lb_f32_to_fp16(t->f32[i]) : lb_f32_to_bf16(t->f32[i]);
        *owned = h;
        return safetensors_writer_add(w, t->hf, dt == DTYPE_F16 ? "F16" : "BF16", nd, shape, h, n * 2);
    }
    if (t->f32) return safetensors_writer_add(w, t->hf, "F32", nd, shape, t->f32, n * 4);
    float *f = xmalloc(n * 4, t->hf);
    if (!f) return -1;
    for (int64_t r = 0; r < tensor_nrows(t->src); r++) tensor_row_to_f32(t->src, r, f + r * t->K);
    *owned = f;
    return safetensors_writer_add(w, t->hf, "F32", nd, shape, f, n * 4);
}

void hfx_count(struct hfx_stats *st, const struct hfx_tensor *t, size_t bytes) {
    if (!t->linear) return;
    st->lin_bytes += bytes;
    if (t->quantized) st->lin_q_bytes += bytes;
}

int hfx_find(const struct hfx_model *hm, const char *name) {
    for (int k = 0; k < hm->n; k++)
        if (!strcmp(hm->t[k].src->name, name)) return k;
    return -1;
}

int hfx_stream(struct hfx_model *hm, hfx_module_fn fn, void *ctx, void (*ctx_free)(void *),
               const char *near, struct hfx_stats *st) {
    memset(st, 0, sizeof *st);
    struct hfx_file *f = calloc(1, sizeof *f);
    if (!f || safetensors_writer_spool(&f->w, near)) {
        if (ctx_free) ctx_free(ctx);
        free(f);
        return f ? -1 : err("out of memory");
    }
    hm->out = f, hm->fn = fn, hm->fn_ctx = ctx, hm->ctx_free = ctx_free, hm->st = st;
    for (int i = 0; i < hm->n; i++) hm->t[i].written = false; /* a new file */
    return 0;
}

void hfx_end(struct hfx_model *hm) {
    if (hm->out) {
        hfx_file_release(hm->out);
        free(hm->out);
    }
    if (hm->ctx_free) hm->ctx_free(hm->fn_ctx);
    hm->out = NULL, hm->fn = NULL, hm->fn_ctx = NULL, hm->ctx_free = NULL, hm->st = NULL;
}

static int emit(struct hfx_model *hm, int i, bool drop) {
    struct hfx_tensor *t = &hm->t[i];
    if (t->written) return 0;
    if (!hm->out) return err("%s: written before the output was started", t->hf);
    if (t->dropped) return err("%s: written again after its buffers were freed", t->hf);
    struct hfx_file *f = hm->out;
    struct hfx_stats *st = hm->st;
    const int64_t n = t->N * t->K;
    /* room for this tensor's buffers (freed below when the writer spools) */
    if (f->n_bufs + HFX_MODULE_BUFS > f->cap_bufs) {
        const int cap = f->cap_bufs ? 2 * f->cap_bufs : 64;
        void **b = realloc(f->bufs, (size_t)cap * sizeof *b);
        if (!b) return err("out of memory");
        f->bufs = b, f->cap_bufs = cap;
    }
    const int b0 = f->n_bufs;
    if (t->linear) {
        st->n_modules++;
        st->n_lin += n;
    }
    if (t->linear && t->quantized) {
        st->n_modules_q++;
        st->n_lin_q += n;
        if (hm->fn(hm->fn_ctx, &f->w, t, f->bufs, &f->n_bufs, st)) return -1;
    } else {
        if (t->linear) st->n_float++;
        /* a linear kept in float is written from its fp32 rows (HF row order) */
        if (t->linear && hfx_load(hm, i)) return -1;
        void *own = NULL;
        if (hfx_add_float(&f->w, t, &own)) return -1;
        if (own) f->bufs[f->n_bufs++] = own;
        const enum dtype dt = t->src->type;
        hfx_count(st, t, (size_t)n * (dt == DTYPE_F16 || dt == DTYPE_BF16 ? 2 : 4));
    }
    t->written = true;
    if (f->w.spooling) { /* its bytes are in the spool: the format's buffers go at once */
        for (int k = b0; k < f->n_bufs; k++) free(f->bufs[k]);
        f->n_bufs = b0;
        if (drop) {
            hfx_drop(t);
            model_drop_pages(hm->m, t->src); /* the source's pages too, when mapped */
        }
    }
    return 0;
}

int hfx_emit(struct hfx_model *hm, int i) { return emit(hm, i, true); }

int hfx_emit_block(struct hfx_model *hm, int l) {
    char pre[32];
    const int n = snprintf(pre, sizeof pre, "blk.%d.", l);
    for (int i = 0; i < hm->n; i++)
        if (!strncmp(hm->t[i].src->name, pre, (size_t)n) && hfx_emit(hm, i)) return -1;
    return 0;
}

int hfx_add_tensors(struct hfx_model *hm, json_t *float_linears) {
    for (int i = 0; i < hm->n; i++)
        if (emit(hm, i, false)) return -1;
    for (int i = 0; i < hm->n && float_linears; i++)
        if (hm->t[i].linear && !hm->t[i].quantized)
            json_array_append_new(float_linears, json_string(hm->t[i].module));
    return 0;
}

void hfx_file_release(struct hfx_file *f) {
    for (int i = 0; i < f->n_bufs; i++) free(f->bufs[i]);
    free(f->bufs);
    f->bufs = NULL;
    f->n_bufs = 0;
    safetensors_writer_release(&f->w);
}

json_t *hfx_module_list(const struct hfx_model *hm, bool want) {
    json_t *a = json_array();
    for (int i = 0; i < hm->n; i++) {
        const struct hfx_tensor *t = &hm->t[i];
        if (!t->linear || t->quantized != want) continue;
        const char *s = t->module; /* model.layers.N.<suffix> */
        int pos = 0, layer;
        if (sscanf(s, "model.layers.%d.%n", &layer, &pos) != 1 || !pos) continue;
        bool seen = false;
        for (size_t j = 0; j < json_array_size(a); j++)
            seen |= !strcmp(json_string_value(json_array_get(a, j)), s + pos);
        if (!seen) json_array_append_new(a, json_string(s + pos));
    }
    return a;
}

void hfx_py_float(char *buf, size_t n, float v) {
    const double d = v;
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, n, "%.*g", p, d);
        if (strtod(buf, NULL) == d) break;
    }
    if (!strpbrk(buf, ".eninf")) snprintf(buf + strlen(buf), n - strlen(buf), ".0");
}

/* json to dir/name atomically */
static int write_json(const char *dir, const char *name, json_t *j) {
    char path[4300], tmp[4400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (json_dump_file(j, tmp, JSON_INDENT(2) | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(17)))
        return err("cannot write %s", tmp);
    if (rename(tmp, path)) {
        unlink(tmp);
        return err("cannot rename %s: %s", tmp, strerror(errno));
    }
    return 0;
}

static int copy_file(const char *from, const char *to) {
    FILE *a = fopen(from, "rb"), *b = NULL;
    if (!a) return 0; /* absent: nothing to copy */
    char tmp[4400], buf[65536];
    snprintf(tmp, sizeof tmp, "%s.tmp", to);
    int ret = -1;
    if (!(b = fopen(tmp, "wb"))) {
        err("cannot write %s: %s", tmp, strerror(errno));
        goto out;
    }
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, a)))
        if (fwrite(buf, 1, k, b) != k) {
            err("cannot write %s", tmp);
            goto out;
        }
    if (fclose(b)) {
        b = NULL;
        err("cannot write %s", tmp);
        goto out;
    }
    b = NULL;
    if (rename(tmp, to)) {
        err("cannot rename %s: %s", tmp, strerror(errno));
        goto out;
    }
    ret = 0;
out:
    if (b) fclose(b);
    fclose(a);
    if (ret) unlink(tmp);
    return ret;
}

static bool is_dir(const char *p) {
    struct stat sb;
    return !stat(p, &sb) && S_ISDIR(sb.st_mode);
}

static const char *torch_dtype(const struct hfx_model *hm) {
    for (int i = 0; i < hm->n; i++)
        if (!strcmp(hm->t[i].src->name, "token_embd.weight"))
            switch (hm->t[i].src->type) {
            case DTYPE_F16: return "float16";
            case DTYPE_BF16: return "bfloat16";
            default: return "float32";
            }
    return "float32";
}

/* config.json made from the model's config */
static json_t *make_config(const struct hfx_model *hm) {
    const struct model *m = hm->m;
    const struct model_config *c = &m->cfg;
    static const struct {
        const char *arch, *cls;
    } classes[] = {{"llama", "LlamaForCausalLM"}, {"mistral", "MistralForCausalLM"},
                   {"qwen2", "Qwen2ForCausalLM"}, {"qwen3", "Qwen3ForCausalLM"},
                   {"gemma2", "Gemma2ForCausalLM"}, {"gemma3", "Gemma3ForCausalLM"},
                   {"phi3", "Phi3ForCausalLM"}};
    const char *cls = "LlamaForCausalLM", *type = "llama";
    for (size_t i = 0; i < LB_ARRAY_LEN(classes); i++)
        if (!strcmp(c->arch, classes[i].arch)) cls = classes[i].cls, type = classes[i].arch;
    json_t *j = json_object();
    json_object_set_new(j, "architectures", json_pack("[s]", cls));
    json_object_set_new(j, "model_type", json_string(!strcmp(type, "gemma3") ? "gemma3_text" : type));
    json_object_set_new(j, "hidden_size", json_integer(c->dim));
    json_object_set_new(j, "intermediate_size", json_integer(c->hidden_dim));
    json_object_set_new(j, "num_hidden_layers", json_integer(c->n_layers));
    json_object_set_new(j, "num_attention_heads", json_integer(c->n_heads));
    json_object_set_new(j, "num_key_value_heads", json_integer(c->n_kv_heads));
    json_object_set_new(j, "head_dim", json_integer(c->head_dim));
    json_object_set_new(j, "vocab_size", json_integer(c->vocab_size));
    json_object_set_new(j, "max_position_embeddings", json_integer(c->ctx_len ? c->ctx_len : 2048));
    json_object_set_new(j, "rms_norm_eps", json_real(c->norm_eps));
    json_object_set_new(j, "rope_theta", json_real(c->rope_theta));
    json_object_set_new(j, "tie_word_embeddings", json_boolean(m->tied_output));
    json_object_set_new(j, "hidden_act", json_string(c->gelu ? "gelu_pytorch_tanh" : "silu"));
    if (c->post_norms) { /* gemma2 / gemma3 */
        json_object_set_new(j, "hidden_activation", json_string("gelu_pytorch_tanh"));
        const double qs = c->attn_scale > 0 ? 1.0 / ((double)c->attn_scale * c->attn_scale)
                                            : (double)c->head_dim;
        json_object_set_new(j, "query_pre_attn_scalar", json_integer((json_int_t)llround(qs)));
        json_object_set_new(j, "sliding_window", c->swa_window > 0 ? json_integer(c->swa_window)
                                                                   : json_null());
        json_t *lt = json_array();
        for (int l = 0; l < c->n_layers; l++)
            json_array_append_new(lt, json_string(model_layer_swa(c, l) ? "sliding_attention"
                                                                        : "full_attention"));
        json_object_set_new(j, "layer_types", lt);
        if (c->swa_pattern > 0) /* the reader checks layer_types against it (default 2 or 6) */
            json_object_set_new(j, "sliding_window_pattern", json_integer(c->swa_pattern));
        json_object_set_new(j, "final_logit_softcapping",
                            c->final_softcap > 0 ? json_real(c->final_softcap) : json_null());
        json_object_set_new(j, "attn_logit_softcapping",
                            c->attn_softcap > 0 ? json_real(c->attn_softcap) : json_null());
        if (!strcmp(type, "gemma3"))
            json_object_set_new(j, "rope_local_base_freq",
                                json_real(c->rope_theta_swa > 0 ? c->rope_theta_swa : c->rope_theta));
        if (c->rope_linear > 0 && c->rope_linear != 1)
            json_object_set_new(j, "rope_scaling", json_pack("{s:s, s:f}", "rope_type", "linear",
                                                             "factor", (double)c->rope_linear));
    }
    if (!strcmp(type, "llama") || !strcmp(type, "qwen3"))
        json_object_set_new(j, "attention_bias", json_boolean(c->qkv_bias));
    if (c->shared_hidden > 0) { /* qwen2moe */
        json_object_set_new(j, "architectures", json_pack("[s]", "Qwen2MoeForCausalLM"));
        json_object_set_new(j, "model_type", json_string("qwen2_moe"));
        json_object_set_new(j, "num_experts", json_integer(c->n_expert));
        json_object_set_new(j, "num_experts_per_tok", json_integer(c->n_expert_used));
        json_object_set_new(j, "moe_intermediate_size", json_integer(c->expert_hidden));
        json_object_set_new(j, "shared_expert_intermediate_size", json_integer(c->shared_hidden));
        json_object_set_new(j, "norm_topk_prob", json_boolean(c->expert_norm));
        json_object_set_new(j, "decoder_sparse_step", json_integer(1));
        json_object_set_new(j, "qkv_bias", json_true());
        json_object_del(j, "attention_bias");
    } else if (c->n_expert > 0) { /* Mixtral */
        json_object_set_new(j, "architectures", json_pack("[s]", "MixtralForCausalLM"));
        json_object_set_new(j, "model_type", json_string("mixtral"));
        json_object_set_new(j, "num_local_experts", json_integer(c->n_expert));
        json_object_set_new(j, "num_experts_per_tok", json_integer(c->n_expert_used));
        json_object_del(j, "attention_bias");
    }
    if (model_fused_qkv(c)) { /* phi3 */
        json_object_set_new(j, "sliding_window", c->swa_window > 0 ? json_integer(c->swa_window)
                                                                   : json_null());
        if (c->rope_orig_ctx > 0)
            json_object_set_new(j, "original_max_position_embeddings", json_integer(c->rope_orig_ctx));
        if (m->rope_long && m->rope_short) {
            json_t *lf = json_array(), *sf = json_array();
            for (int i = 0; i < c->head_dim / 2; i++) {
                json_array_append_new(lf, json_real(m->rope_long[i]));
                json_array_append_new(sf, json_real(m->rope_short[i]));
            }
            json_t *rs = json_pack("{s:s, s:o, s:o}", "rope_type", "longrope", "long_factor", lf,
                                   "short_factor", sf);
            if (c->rope_attn_factor > 0)
                json_object_set_new(rs, "attention_factor", json_real(c->rope_attn_factor));
            json_object_set_new(j, "rope_scaling", rs);
        }
    }
    json_object_set_new(j, "mlp_bias", json_false());
    if (c->rope_factor > 0)
        json_object_set_new(j, "rope_scaling",
                            json_pack("{s:s, s:f, s:f, s:f, s:i}", "rope_type", "llama3", "factor",
                                      (double)c->rope_factor, "low_freq_factor",
                                      (double)c->rope_low_freq_factor, "high_freq_factor",
                                      (double)c->rope_high_freq_factor,
                                      "original_max_position_embeddings", c->rope_orig_ctx));
    if (m->gguf) {
        int64_t v;
        if (gguf_get_int(m->gguf, "tokenizer.ggml.bos_token_id", &v) == 0)
            json_object_set_new(j, "bos_token_id", json_integer(v));
        if (gguf_get_int(m->gguf, "tokenizer.ggml.eos_token_id", &v) == 0)
            json_object_set_new(j, "eos_token_id", json_integer(v));
    }
    return j;
}

/* ---- tokenizer.json from a GGUF SentencePiece vocab ---- */

struct piece {
    const char *s;
    size_t len;
};

/* id of piece (s, n), or -1; linear probing table over the vocab */
struct vmap {
    int *slot;
    size_t mask;
    const struct piece *p;
};
static uint64_t fnv(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}
static int vmap_get(const struct vmap *v, const char *s, size_t n) {
    for (size_t i = fnv(s, n) & v->mask;; i = (i + 1) & v->mask) {
        const int id = v->slot[i];
        if (id < 0) return -1;
        if (v->p[id].len == n && !memcmp(v->p[id].s, s, n)) return id;
    }
}

struct merge {
    int l, r;
    float score;
    int64_t seq; /* order of generation: merged id, then (l, r) */
};
static int cmp_merge(const void *a, const void *b) {
    const struct merge *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1; /* descending, stable: */
    return (x->seq > y->seq) - (x->seq < y->seq);
}

static int write_gguf_tokenizer(const struct model *m, const char *dir) {
    const struct gguf_file *g = m->gguf;
    char model[32] = "";
    if (gguf_get_str(g, "tokenizer.ggml.model", model, sizeof model) || strcmp(model, "llama")) {
        fprintf(stderr, "lowbit: %s: tokenizer '%s' is not exported (only SentencePiece 'llama' "
                        "vocabs); evaluate with --tokenizer %s\n", m->path, model, m->path);
        return 0;
    }
    const struct gguf_kv *kt = gguf_find(g, "tokenizer.ggml.tokens"),
                         *ks = gguf_find(g, "tokenizer.ggml.scores"),
                         *ky = gguf_find(g, "tokenizer.ggml.token_type");
    if (!kt || kt->type != GGUF_TYPE_ARRAY || kt->v.arr.type != GGUF_TYPE_STRING || !ks ||
        ks->type != GGUF_TYPE_ARRAY || ks->v.arr.n != kt->v.arr.n)
        return err("%s: GGUF vocab without tokens and scores", m->path);
    const int n = (int)kt->v.arr.n;
    struct piece *p = xcalloc((size_t)n, sizeof *p, "vocab");
    struct vmap vm = {0};
    struct merge *mg = NULL;
    json_t *root = NULL;
    int ret = -1;
    size_t cap = 1;
    while (cap < 2 * (size_t)n + 2) cap <<= 1;
    vm.slot = xmalloc(cap * sizeof *vm.slot, "vocab map");
    if (!p || !vm.slot) goto out;
    vm.mask = cap - 1;
    vm.p = p;
    for (size_t i = 0; i < cap; i++) vm.slot[i] = -1;
    for (int i = 0; i < n; i++) {
        p[i].s = kt->v.arr.strs[i].p;
        p[i].len = kt->v.arr.strs[i].len;
        if (vmap_get(&vm, p[i].s, p[i].len) >= 0) continue; /* first id wins, as in a dict */
        size_t j = fnv(p[i].s, p[i].len) & vm.mask;
        while (vm.slot[j] >= 0) j = (j + 1) & vm.mask;
        vm.slot[j] = i;
    }
    /* merges: every split of every piece (at UTF-8 character boundaries) into two pieces */
    size_t n_mg = 0, cap_mg = 1024;
    mg = xmalloc(cap_mg * sizeof *mg, "merges");
    if (!mg) goto out;
    for (int i = 0; i < n; i++) {
        const size_t start = n_mg;
        for (size_t k = 1; k < p[i].len; k++) {
            if (((uint8_t)p[i].s[k] & 0xc0) == 0x80) continue; /* inside a character */
            const int l = vmap_get(&vm, p[i].s, k), r = vmap_get(&vm, p[i].s + k, p[i].len - k);
            if (l < 0 || r < 0) continue;
            if (n_mg == cap_mg) {
                struct merge *nm = realloc(mg, 2 * cap_mg * sizeof *mg);
                if (!nm) {
                    err("out of memory for merges");
                    goto out;
                }
                mg = nm, cap_mg *= 2;
            }
            mg[n_mg++] = (struct merge){l, r, (float)gguf_arr_float(ks, (uint64_t)i), 0};
        }
        for (size_t a = start; a < n_mg; a++) /* within a piece: by (id left, id right) */
            for (size_t b = a + 1; b < n_mg; b++)
                if (mg[b].l < mg[a].l || (mg[b].l == mg[a].l && mg[b].r < mg[a].r)) {
                    const struct merge t = mg[a];
                    mg[a] = mg[b], mg[b] = t;
                }
        for (size_t a = start; a < n_mg; a++) mg[a].seq = (int64_t)a;
    }
    qsort(mg, n_mg, sizeof *mg, cmp_merge);
    root = json_object();
    json_t *vocab = json_object(), *merges = json_array(), *added = json_array();
    for (int i = 0; i < n; i++) {
        char *s = strndup(p[i].s, p[i].len);
        if (!s) goto oom;
        if (!json_object_get(vocab, s)) json_object_set_new(vocab, s, json_integer(i));
        const int64_t type = ky ? gguf_arr_int(ky, (uint64_t)i) : 1;
        if (type == 2 || type == 3) /* unknown, control: special added tokens */
            json_array_append_new(added, json_pack("{s:i, s:s, s:b, s:b, s:b, s:b, s:b}", "id", i,
                                                   "content", s, "single_word", 0, "lstrip", 0,
                                                   "rstrip", 0, "normalized", 0, "special", 1));
        free(s);
    }
    for (size_t i = 0; i < n_mg; i++)
        json_array_append_new(merges, json_pack("[s%, s%]", p[mg[i].l].s, p[mg[i].l].len,
                                                p[mg[i].r].s, p[mg[i].r].len));
    int64_t bos = 1, unk = 0;
    gguf_get_int(g, "tokenizer.ggml.bos_token_id", &bos);
    gguf_get_int(g, "tokenizer.ggml.unknown_token_id", &unk);
    char *bos_s = bos >= 0 && bos < n ? strndup(p[bos].s, p[bos].len) : strdup("<s>");
    char *unk_s = unk >= 0 && unk < n ? strndup(p[unk].s, p[unk].len) : strdup("<unk>");
    if (!bos_s || !unk_s) {
        free(bos_s), free(unk_s);
        goto oom;
    }
    json_object_set_new(root, "version", json_string("1.0"));
    json_object_set_new(root, "truncation", json_null());
    json_object_set_new(root, "padding", json_null());
    json_object_set_new(root, "added_tokens", added);
    json_object_set_new(root, "normalizer",
                        json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:{s:s}, s:s}]}", "type", "Sequence",
                                  "normalizers", "type", "Prepend", "prepend", "\xe2\x96\x81",
                                  "type", "Replace", "pattern", "String", " ", "content",
                                  "\xe2\x96\x81"));
    json_object_set_new(root, "pre_tokenizer", json_null());
    json_object_set_new(
        root, "post_processor",
        json_pack("{s:s, s:[{s:{s:s, s:i}}, {s:{s:s, s:i}}], s:[{s:{s:s, s:i}}, {s:{s:s, s:i}}, "
                  "{s:{s:s, s:i}}, {s:{s:s, s:i}}], s:{s:{s:s, s:[I], s:[s]}}}",
                  "type", "TemplateProcessing", "single", "SpecialToken", "id", bos_s, "type_id", 0,
                  "Sequence", "id", "A", "type_id", 0, "pair", "SpecialToken", "id", bos_s,
                  "type_id", 0, "Sequence", "id", "A", "type_id", 0, "SpecialToken", "id", bos_s,
                  "type_id", 1, "Sequence", "id", "B", "type_id", 1, "special_tokens", bos_s, "id",
                  bos_s, "ids", (json_int_t)bos, "tokens", bos_s));
    json_object_set_new(
        root, "decoder",
        json_pack("{s:s, s:[{s:s, s:{s:s}, s:s}, {s:s}, {s:s}, {s:s, s:s, s:i, s:i}]}", "type",
                  "Sequence", "decoders", "type", "Replace", "pattern", "String", "\xe2\x96\x81",
                  "content", " ", "type", "ByteFallback", "type", "Fuse", "type", "Strip",
                  "content", " ", "start", 1, "stop", 0));
    json_object_set_new(root, "model",
                        json_pack("{s:s, s:n, s:s, s:n, s:n, s:b, s:b, s:b, s:o, s:o}", "type",
                                  "BPE", "dropout", "unk_token", unk_s, "continuing_subword_prefix",
                                  "end_of_word_suffix", "fuse_unk", 1, "byte_fallback", 1,
                                  "ignore_merges", 0, "vocab", vocab, "merges", merges));
    free(bos_s), free(unk_s);
    ret = write_json(dir, "tokenizer.json", root);
    goto out;
oom:
    err("out of memory writing tokenizer.json");
out:
    json_decref(root);
    free(p);
    free(vm.slot);
    free(mg);
    return ret;
}

int hfx_write_dir(const struct hfx_model *hm, const char *dir, struct safetensors_writer *w,
                  json_t *qc, struct hfx_stats *st) {
    if (mkdir_p(dir)) return -1;
    const int64_t max_shard = safetensors_max_shard_bytes();
    int64_t written = 0;
    if (max_shard < 0 || safetensors_writer_write_dir(w, dir, max_shard, &written)) return -1;
    st->file_bytes = (size_t)written;
    st->n_params = model_n_params(hm->m);
    /* config.json: the source's, or made */
    json_t *cfg = NULL;
    const bool hf_src = hm->src_path && is_dir(hm->src_path);
    if (hf_src) {
        char p[4300];
        json_error_t je;
        snprintf(p, sizeof p, "%s/config.json", hm->src_path);
        if (input_size_check(p, "the config")) return -1;
        cfg = json_load_file(p, 0, &je);
        if (!json_is_object(cfg)) {
            json_decref(cfg);
            return err("%s: cannot read: %s", p, je.text);
        }
    } else {
        cfg = make_config(hm);
    }
    if (hm->m->cfg.online_had || hm->m->cfg.act_clip > 0) { /* quant/rotate.h */
        char oh[128];
        model_online_had_name(hm->m->cfg.online_had, oh, sizeof oh);
        json_object_set_new(cfg, "tie_word_embeddings", json_boolean(hm->m->tied_output));
        if (oh[0]) json_object_set_new(cfg, "lowbit_online_hadamard", json_string(oh));
        if (hm->m->cfg.act_clip > 0)
            json_object_set_new(cfg, "lowbit_act_clip", json_real(hm->m->cfg.act_clip));
    }
    json_object_set_new(cfg, "torch_dtype", json_string(torch_dtype(hm)));
    json_object_set(cfg, "quantization_config", qc);
    int rc = write_json(dir, "config.json", cfg);
    json_decref(cfg);
    if (rc) return -1;
    if (hf_src) {
        static const char *const files[] = {"tokenizer.json", "tokenizer_config.json",
                                            "special_tokens_map.json", "tokenizer.model",
                                            "generation_config.json"};
        for (size_t i = 0; i < LB_ARRAY_LEN(files); i++) {
            char a[4300], b[4300];
            snprintf(a, sizeof a, "%s/%s", hm->src_path, files[i]);
            snprintf(b, sizeof b, "%s/%s", dir, files[i]);
            if (copy_file(a, b)) return -1;
        }
        return 0;
    }
    if (hm->m->gguf) return write_gguf_tokenizer(hm->m, dir);
    fprintf(stderr, "lowbit: %s: no tokenizer.json written (the source is not an HF directory or "
                    "GGUF); evaluate with --tokenizer\n", dir);
    return 0;
}
