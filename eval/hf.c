/* eval/hf.c: loading a Hugging Face model directory (llama, mistral, qwen2).
 *
 * Directory layout read:
 *   config.json                     the transformers config: sizes, eps, rope, tying, biases
 *   model.safetensors               all weights, or, when absent,
 *   model.safetensors.index.json    {"weight_map": {"tensor name": "shard file name", ...}} with
 *                                   each shard (e.g. model-00001-of-00002.safetensors) beside it.
 * Weights stay in the mapped files (zero copy) as F32/F16/BF16 tensors under their canonical GGUF
 * names (eval/model.h); a tensor whose data the file left misaligned for its element size is
 * copied into a model buffer instead. Shapes flip from PyTorch [out, in] to ggml ne [in, out];
 * q/k rows stay in HF's half-split rotary layout (ROPE_NEOX), nothing is permuted.
 * Tensors lowbit has no use for (rotary_emb.inv_freq, ...) are skipped, but tensors that would
 * change the math and that the model has no slot for (o_proj/MLP biases, q/k norms) are refused.
 * Like transformers: model.safetensors wins over an index, lm_head.weight is ignored when
 * tie_word_embeddings is true, and tensors a shard holds but the index does not attribute to it
 * are ignored. */
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "eval/model.h"
#include "eval/safetensors.h"

struct hf_load {
    struct model *m;
    const char *dir;
    char cfg_path[4200]; /* DIR/config.json, for messages */
    bool tie;            /* tie_word_embeddings */
};

static bool file_exists(const char *path) {
    struct stat sb;
    return !stat(path, &sb) && S_ISREG(sb.st_mode);
}

/* ===== config.json ===== */

/* key's value, or NULL when absent or null (transformers writes null for "use the default") */
static json_t *cfg_get(json_t *obj, const char *key) {
    json_t *v = json_object_get(obj, key);
    return json_is_null(v) ? NULL : v;
}

/* an integer in [lo, hi]; def when absent and not required */
static int cfg_int(const char *path, json_t *obj, const char *key, bool required, int def, int lo,
                   int hi, int *out) {
    json_t *v = cfg_get(obj, key);
    if (!v) {
        if (required) return err("%s: missing %s (expected an integer)", path, key);
        *out = def;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return err("%s: %s is not an integer from %d to %d", path, key, lo, hi);
    *out = (int)json_integer_value(v);
    return 0;
}

/* a finite number (integer or real); def when absent and not required */
static int cfg_num(const char *path, json_t *obj, const char *key, bool required, double def,
                   float *out) {
    json_t *v = cfg_get(obj, key);
    if (!v) {
        if (required) return err("%s: missing %s (expected a number)", path, key);
        *out = (float)def;
        return 0;
    }
    if (!json_is_number(v)) return err("%s: %s is not a number", path, key);
    *out = (float)json_number_value(v);
    return 0;
}

static int cfg_bool(const char *path, json_t *obj, const char *key, bool def, bool *out) {
    json_t *v = cfg_get(obj, key);
    if (!v) {
        *out = def;
        return 0;
    }
    if (!json_is_boolean(v)) return err("%s: %s is not true or false", path, key);
    *out = json_is_true(v);
    return 0;
}

/* model_type, or the architectures[0] class when model_type is absent */
static int cfg_arch(const char *path, json_t *root, char *arch, size_t size) {
    static const struct {
        const char *type, *cls;
    } archs[] = {
        {"llama", "LlamaForCausalLM"},
        {"mistral", "MistralForCausalLM"},
        {"qwen2", "Qwen2ForCausalLM"},
    };
    json_t *mt = cfg_get(root, "model_type"), *ar = cfg_get(root, "architectures");
    const char *name = NULL;
    if (mt) {
        if (!json_is_string(mt)) return err("%s: model_type is not a string", path);
        name = json_string_value(mt);
        for (size_t i = 0; i < LB_ARRAY_LEN(archs); i++)
            if (!strcmp(name, archs[i].type)) {
                snprintf(arch, size, "%s", archs[i].type);
                return 0;
            }
    } else if (json_is_array(ar) && json_is_string(json_array_get(ar, 0))) {
        name = json_string_value(json_array_get(ar, 0));
        for (size_t i = 0; i < LB_ARRAY_LEN(archs); i++)
            if (!strcmp(name, archs[i].cls)) {
                snprintf(arch, size, "%s", archs[i].type);
                return 0;
            }
    } else {
        return err("%s: no model_type or architectures (expected model_type llama, mistral or "
                   "qwen2)", path);
    }
    return err("unsupported architecture '%s' in %s (lowbit runs llama, mistral, qwen2)", name,
               path);
}

/* rope_scaling: absent/null/"default" = none; "llama3" fills cfg.rope_*; anything else refused */
static int cfg_rope_scaling(const char *path, json_t *root, struct model_config *c) {
    json_t *rs = cfg_get(root, "rope_scaling");
    c->rope_factor = 0;
    if (!rs) return 0;
    if (!json_is_object(rs)) return err("%s: rope_scaling is not an object", path);
    json_t *jt = cfg_get(rs, "rope_type");
    if (!jt) jt = cfg_get(rs, "type");
    const char *type = json_is_string(jt) ? json_string_value(jt) : NULL;
    if (!type) return err("%s: rope_scaling has no rope_type (expected \"llama3\")", path);
    if (!strcmp(type, "default")) return 0;
    if (strcmp(type, "llama3"))
        return err("%s: rope_scaling type '%s' is not supported (lowbit supports 'llama3')", path,
                   type);
    char key[64];
    /* messages name the keys as rope_scaling.X */
#define RS_NUM(field, name)                                                                        \
    do {                                                                                           \
        snprintf(key, sizeof key, "rope_scaling.%s", name);                                        \
        json_t *v_ = cfg_get(rs, name);                                                            \
        if (!json_is_number(v_)) return err("%s: missing or non-numeric %s", path, key);          \
        c->field = (float)json_number_value(v_);                                                   \
    } while (0)
    RS_NUM(rope_factor, "factor");
    RS_NUM(rope_low_freq_factor, "low_freq_factor");
    RS_NUM(rope_high_freq_factor, "high_freq_factor");
#undef RS_NUM
    if (cfg_int(path, rs, "original_max_position_embeddings", true, 0, 1, INT_MAX,
                &c->rope_orig_ctx))
        return -1;
    if (!(c->rope_factor >= 1) || !(c->rope_low_freq_factor > 0) ||
        !(c->rope_high_freq_factor > c->rope_low_freq_factor))
        return err("%s: llama3 rope_scaling factor %g, low_freq_factor %g, high_freq_factor %g "
                   "(expected factor >= 1 and 0 < low_freq_factor < high_freq_factor)", path,
                   (double)c->rope_factor, (double)c->rope_low_freq_factor,
                   (double)c->rope_high_freq_factor);
    return 0;
}

static int read_config(struct hf_load *h) {
    const char *p = h->cfg_path;
    struct model_config *c = &h->m->cfg;
    if (!file_exists(p))
        return err("%s: missing config.json (a Hugging Face model directory needs config.json and "
                   "model.safetensors)", h->dir);
    json_error_t je;
    json_t *root = json_load_file(p, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return err("%s: bad JSON at line %d, column %d: %s", p, je.line, je.column, je.text);
    int ret = -1;
    if (!json_is_object(root)) {
        err("%s: not a JSON object", p);
        goto out;
    }
    json_t *qc = cfg_get(root, "quantization_config");
    if (qc) {
        json_t *qm = json_object_get(qc, "quant_method");
        err("%s: quantized checkpoint (quant_method %s) not supported yet", p,
            json_is_string(qm) ? json_string_value(qm) : "unknown");
        goto out;
    }
    if (cfg_arch(p, root, c->arch, sizeof c->arch)) goto out;
    json_t *act = cfg_get(root, "hidden_act");
    if (act && (!json_is_string(act) || strcmp(json_string_value(act), "silu"))) {
        err("%s: hidden_act %s is not supported (lowbit runs silu)", p,
            json_is_string(act) ? json_string_value(act) : "(not a string)");
        goto out;
    }
    bool attn_bias, mlp_bias;
    if (cfg_int(p, root, "hidden_size", true, 0, 1, INT_MAX, &c->dim) ||
        cfg_int(p, root, "intermediate_size", true, 0, 1, INT_MAX, &c->hidden_dim) ||
        cfg_int(p, root, "num_hidden_layers", true, 0, 1, INT_MAX, &c->n_layers) ||
        cfg_int(p, root, "num_attention_heads", true, 0, 1, INT_MAX, &c->n_heads) ||
        cfg_int(p, root, "num_key_value_heads", false, c->n_heads, 1, INT_MAX, &c->n_kv_heads) ||
        cfg_int(p, root, "head_dim", false, c->dim / c->n_heads, 1, INT_MAX, &c->head_dim) ||
        cfg_int(p, root, "vocab_size", true, 0, 1, INT_MAX, &c->vocab_size) ||
        cfg_int(p, root, "max_position_embeddings", false, 0, 0, INT_MAX, &c->ctx_len) ||
        cfg_num(p, root, "rms_norm_eps", false, 1e-6, &c->norm_eps) || /* transformers' default */
        cfg_num(p, root, "rope_theta", false, 10000.0, &c->rope_theta) ||
        cfg_bool(p, root, "tie_word_embeddings", false, &h->tie) ||
        cfg_bool(p, root, "attention_bias", false, &attn_bias) ||
        cfg_bool(p, root, "mlp_bias", false, &mlp_bias) || cfg_rope_scaling(p, root, c))
        goto out;
    if (mlp_bias) {
        err("%s: mlp_bias true is not supported (lowbit's MLP has no biases)", p);
        goto out;
    }
    /* qwen2 always has q/k/v biases (and no o_proj bias); llama's attention_bias also adds an
     * o_proj bias, refused when its tensor shows up */
    c->qkv_bias = attn_bias || !strcmp(c->arch, "qwen2");
    /* sliding-window attention equals full attention up to the window: cap the usable context
     * there, since the forward pass attends to everything */
    json_t *sw = cfg_get(root, "sliding_window");
    bool sw_used = !strcmp(c->arch, "mistral");
    if (!strcmp(c->arch, "qwen2") && cfg_bool(p, root, "use_sliding_window", false, &sw_used))
        goto out;
    if (sw_used && sw) {
        if (!json_is_integer(sw) || json_integer_value(sw) <= 0) {
            err("%s: sliding_window is not a positive integer", p);
            goto out;
        }
        if (!c->ctx_len || json_integer_value(sw) < c->ctx_len)
            c->ctx_len = (int)LB_MIN(json_integer_value(sw), INT_MAX);
    }
    c->rope_style = ROPE_NEOX;
    ret = 0;
out:
    json_decref(root);
    return ret;
}

/* ===== tensor names ===== */

/* suffix after "model.layers.N." -> suffix after "blk.N." */
static const struct {
    const char *hf, *gguf;
} layer_names[] = {
    {"input_layernorm.weight", "attn_norm.weight"},
    {"self_attn.q_proj.weight", "attn_q.weight"},
    {"self_attn.k_proj.weight", "attn_k.weight"},
    {"self_attn.v_proj.weight", "attn_v.weight"},
    {"self_attn.o_proj.weight", "attn_output.weight"},
    {"self_attn.q_proj.bias", "attn_q.bias"},
    {"self_attn.k_proj.bias", "attn_k.bias"},
    {"self_attn.v_proj.bias", "attn_v.bias"},
    {"post_attention_layernorm.weight", "ffn_norm.weight"},
    {"mlp.gate_proj.weight", "ffn_gate.weight"},
    {"mlp.up_proj.weight", "ffn_up.weight"},
    {"mlp.down_proj.weight", "ffn_down.weight"},
};

/* tensors that change the result but have no slot in struct layer: refused, never skipped */
static const char *const layer_refused[] = {
    "self_attn.o_proj.bias", "mlp.gate_proj.bias",      "mlp.up_proj.bias",
    "mlp.down_proj.bias",    "self_attn.q_norm.weight", "self_attn.k_norm.weight",
};

/* canonical name of HF tensor `name` into out: 1 = mapped, 0 = not a weight lowbit uses (skip),
 * -1 = refused (message given; `where` names the file) */
static int map_name(const struct hf_load *h, const char *where, const char *name, char *out,
                    size_t size) {
    static const struct {
        const char *hf, *gguf;
    } top[] = {
        {"model.embed_tokens.weight", "token_embd.weight"},
        {"model.norm.weight", "output_norm.weight"},
        {"lm_head.weight", "output.weight"},
    };
    for (size_t i = 0; i < LB_ARRAY_LEN(top); i++)
        if (!strcmp(name, top[i].hf)) {
            if (h->tie && !strcmp(name, "lm_head.weight")) return 0; /* tied: embeddings win */
            snprintf(out, size, "%s", top[i].gguf);
            return 1;
        }
    static const char prefix[] = "model.layers.";
    if (strncmp(name, prefix, sizeof prefix - 1)) return 0;
    const char *s = name + sizeof prefix - 1;
    long layer = 0;
    if (*s < '0' || *s > '9') return 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        layer = layer * 10 + (*s - '0');
        if (layer > INT_MAX) return err("%s: tensor '%s': layer number out of range", where, name);
    }
    if (*s++ != '.') return 0;
    const struct model_config *c = &h->m->cfg;
    for (size_t i = 0; i < LB_ARRAY_LEN(layer_refused); i++)
        if (!strcmp(s, layer_refused[i]))
            return err("%s: tensor '%s' is not supported (lowbit's %s layers have no %s)", where,
                       name, c->arch, layer_refused[i]);
    for (size_t i = 0; i < LB_ARRAY_LEN(layer_names); i++) {
        if (strcmp(s, layer_names[i].hf)) continue;
        if (layer >= c->n_layers)
            return err("%s: tensor '%s' is beyond num_hidden_layers %d in %s", where, name,
                       c->n_layers, h->cfg_path);
        if (!c->qkv_bias && strstr(s, "_proj.bias"))
            return err("%s: tensor '%s' is an attention bias but %s does not set attention_bias",
                       where, name, h->cfg_path);
        snprintf(out, size, "blk.%ld.%s", layer, layer_names[i].gguf);
        return 1;
    }
    return 0;
}

/* ===== weights ===== */

/* add every tensor of one safetensors file (already parsed) that lowbit uses */
static int add_tensors(struct hf_load *h, const struct safetensors *st, json_t *weight_map,
                       const char *fname) {
    struct model *m = h->m;
    for (int i = 0; i < st->n_tensors; i++) {
        const struct safetensors_tensor *s = &st->tensors[i];
        if (weight_map) { /* the index decides which shard a tensor comes from */
            json_t *f = json_object_get(weight_map, s->name);
            if (!json_is_string(f) || strcmp(json_string_value(f), fname)) continue;
        }
        char name[TENSOR_NAME_MAX];
        int rc = map_name(h, st->path, s->name, name, sizeof name);
        if (rc < 0) return -1;
        if (!rc) continue;
        enum dtype type;
        switch (s->dtype) {
        case SAFETENSORS_F32: type = DTYPE_F32; break;
        case SAFETENSORS_F16: type = DTYPE_F16; break;
        case SAFETENSORS_BF16: type = DTYPE_BF16; break;
        default:
            return err("%s: tensor '%s' has dtype %s (lowbit reads F32, F16 or BF16 weights)",
                       st->path, s->name, safetensors_dtype_name(s->dtype));
        }
        if (s->n_dims < 1 || s->n_dims > TENSOR_MAX_DIMS)
            return err("%s: tensor '%s' has %d dimensions (expected 1 to %d)", st->path, s->name,
                       s->n_dims, TENSOR_MAX_DIMS);
        int64_t ne[TENSOR_MAX_DIMS];
        for (int d = 0; d < s->n_dims; d++) /* [out, in] -> ne [in, out] */
            ne[d] = s->shape[s->n_dims - 1 - d];
        struct tensor t;
        if (tensor_init(&t, name, type, s->n_dims, ne)) return -1;
        ASSERT(tensor_nbytes(&t) == s->nbytes); /* both follow from the checked shape */
        const size_t align = (size_t)dtype_get(type)->block_bytes;
        if ((uintptr_t)s->data % align) {
            void *buf = model_alloc(m, s->nbytes, name);
            if (!buf) return -1;
            memcpy(buf, s->data, s->nbytes);
            t.data = buf;
        } else {
            t.data = (void *)s->data; /* borrowed from the mapping the model owns */
        }
        if (model_add_tensor(m, &t)) return -1;
    }
    return 0;
}

/* map DIR/fname (kept by the model), parse it and add its tensors */
static int load_file(struct hf_load *h, const char *fname, json_t *weight_map) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", h->dir, fname);
    const uint8_t *map;
    size_t len;
    if (model_map_file(h->m, path, &map, &len)) return -1;
    struct safetensors st;
    if (safetensors_parse(&st, path, map, len)) return -1;
    int ret = add_tensors(h, &st, weight_map, fname);
    if (!ret && weight_map) { /* every tensor the index puts in this shard must be there */
        const char *key;
        json_t *v;
        json_object_foreach(weight_map, key, v) {
            if (strcmp(json_string_value(v), fname) || safetensors_find(&st, key)) continue;
            ret = err("%s: tensor '%s' is listed for this shard in model.safetensors.index.json "
                      "but the file does not hold it", path, key);
            break;
        }
    }
    safetensors_close(&st);
    return ret;
}

/* model.safetensors.index.json: check the weight_map, then load each shard once */
static int load_sharded(struct hf_load *h, const char *index_path) {
    json_error_t je;
    json_t *root = json_load_file(index_path, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return err("%s: bad JSON at line %d, column %d: %s", index_path, je.line, je.column,
                   je.text);
    int ret = -1;
    const char **files = NULL;
    size_t n_files = 0;
    json_t *wm = json_object_get(root, "weight_map");
    if (!json_is_object(wm)) {
        err("%s: no weight_map object (expected {\"weight_map\": {\"tensor\": \"file\", ...}})",
            index_path);
        goto out;
    }
    files = xcalloc(json_object_size(wm), sizeof *files, "shard list");
    if (!files) goto out;
    const char *key;
    json_t *v;
    json_object_foreach(wm, key, v) {
        const char *f = json_is_string(v) ? json_string_value(v) : NULL;
        if (!f || !*f || strchr(f, '/') || !strcmp(f, ".") || !strcmp(f, "..")) {
            err("%s: weight_map entry '%s' is not a file name in this directory", index_path, key);
            goto out;
        }
        size_t j = 0;
        while (j < n_files && strcmp(files[j], f)) j++;
        if (j == n_files) files[n_files++] = f;
    }
    for (size_t j = 0; j < n_files; j++) { /* all present before mapping any */
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", h->dir, files[j]);
        if (!file_exists(path)) {
            err("%s: shard %s listed in model.safetensors.index.json is missing", h->dir,
                files[j]);
            goto out;
        }
    }
    for (size_t j = 0; j < n_files; j++)
        if (load_file(h, files[j], wm)) goto out;
    ret = 0;
out:
    free(files);
    json_decref(root);
    return ret;
}

int model_load_hf(struct model *m, const char *dir) {
    struct hf_load h = {.m = m, .dir = dir};
    if (!m->path[0]) snprintf(m->path, sizeof m->path, "%s", dir);
    m->format = MODEL_FORMAT_HF;
    snprintf(h.cfg_path, sizeof h.cfg_path, "%s/config.json", dir);
    if (read_config(&h)) return -1;

    char single[4200], index[4200];
    snprintf(single, sizeof single, "%s/model.safetensors", dir);
    snprintf(index, sizeof index, "%s/model.safetensors.index.json", dir);
    if (file_exists(single)) {
        if (load_file(&h, "model.safetensors", NULL)) return -1;
    } else if (file_exists(index)) {
        if (load_sharded(&h, index)) return -1;
    } else {
        return err("%s: no weights: expected %s or %s (pytorch_model.bin is not read; convert it "
                   "to safetensors)", dir, single, index);
    }
    if (!h.tie && !model_find_tensor(m, "output.weight"))
        return err("%s: lm_head.weight is missing and tie_word_embeddings is false in %s", dir,
                   h.cfg_path);
    return model_bind(m);
}
