/* eval/hf.c: loading a Hugging Face model directory (llama, mistral, qwen2, qwen3, gemma2,
 * gemma3 text, phi3).
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
 * phi3's fused self_attn.qkv_proj and mlp.gate_up_proj are split into the canonical linears as
 * views (model_add_fused); Mixtral's block_sparse_moe.gate is the router, its float experts
 * block_sparse_moe.experts.E.w1/w3/w2 are copied into the stacked blk.N.ffn_{gate,up,down}_exps
 * tensors (add_expert), a quantized checkpoint's stay one module per expert.
 * Tensors lowbit has no use for (rotary_emb.inv_freq, ...) are skipped, but tensors that would
 * change the math and that the model has no slot for (o_proj/MLP biases, q/k norms outside qwen3)
 * are refused.
 * Like transformers: model.safetensors wins over an index, lm_head.weight is ignored when
 * tie_word_embeddings is true, and tensors a shard holds but the index does not attribute to it
 * are ignored. Quantized checkpoints (quantization_config: gptq, awq, auto-round, bitsandbytes,
 * aqlm) load into packed tensors; their layouts are described at "quantized checkpoints" below. */
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "eval/model.h"
#include "eval/safetensors.h"
#include "kernels/aqlm.h"
#include "kernels/nf4.h"
#include "kernels/qint.h"

struct hf_load {
    struct model *m;
    const char *dir;
    char cfg_path[4200]; /* DIR/config.json, for messages */
    bool tie;            /* tie_word_embeddings */
    /* quantization_config (method HFQ_NONE when absent); see "quantized checkpoints" below */
    struct {
        int method;  /* enum hf_qmethod */
        int bits;
        int64_t group; /* group_size, -1 = one group per row */
        bool v2;       /* GPTQ checkpoint_format gptq_v2 (true zeros) */
        int aq_m, aq_b, aq_gi, aq_go; /* AQLM: num_codebooks, nbits_per_codebook, in/out groups */
    } q;
    /* every safetensors file, parsed and kept open until the weights are added (a quantized
     * module's tensors may sit in different shards) */
    struct safetensors *files;
    const char **fnames;
    int n_files;
    json_t *weight_map; /* the index's, or NULL for a single file */
    /* Mixtral: experts seen [n_layers][3][E] (gate w1, up w3, down w2) and the stacked tensors
     * they are copied into (add_expert) */
    uint8_t *exp_seen;
    void **exp_buf;
};

static bool file_exists(const char *path) {
    struct stat sb;
    return !stat(path, &sb) && S_ISREG(sb.st_mode);
}

static int read_quant_config(struct hf_load *h, json_t *qc);

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
        const char *type, *cls, *arch;
    } archs[] = {
        {"llama", "LlamaForCausalLM", "llama"},     {"mistral", "MistralForCausalLM", "mistral"},
        {"qwen2", "Qwen2ForCausalLM", "qwen2"},     {"qwen3", "Qwen3ForCausalLM", "qwen3"},
        {"gemma2", "Gemma2ForCausalLM", "gemma2"},  {"gemma3_text", "Gemma3ForCausalLM", "gemma3"},
        {"phi3", "Phi3ForCausalLM", "phi3"},
        {"mixtral", "MixtralForCausalLM", "llama"}, /* llama with experts, as GGUF names it */
        {"qwen2_moe", "Qwen2MoeForCausalLM", "qwen2moe"},
    };
    json_t *mt = cfg_get(root, "model_type"), *ar = cfg_get(root, "architectures");
    const char *name = NULL;
    if (mt) {
        if (!json_is_string(mt)) return err("%s: model_type is not a string", path);
        name = json_string_value(mt);
        for (size_t i = 0; i < LB_ARRAY_LEN(archs); i++)
            if (!strcmp(name, archs[i].type)) {
                snprintf(arch, size, "%s", archs[i].arch);
                return 0;
            }
    } else if (json_is_array(ar) && json_is_string(json_array_get(ar, 0))) {
        name = json_string_value(json_array_get(ar, 0));
        for (size_t i = 0; i < LB_ARRAY_LEN(archs); i++)
            if (!strcmp(name, archs[i].cls)) {
                snprintf(arch, size, "%s", archs[i].arch);
                return 0;
            }
    } else {
        return err("%s: no model_type or architectures (expected model_type llama, mistral, "
                   "qwen2, qwen3, gemma2, gemma3_text, phi3, mixtral or qwen2_moe)", path);
    }
    return err("unsupported architecture '%s' in %s (lowbit runs llama, mistral, qwen2, qwen3, "
               "gemma2, gemma3_text, phi3, mixtral, qwen2_moe)", name, path);
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
    if (!strcmp(type, "longrope") || !strcmp(type, "su")) /* phi3: phi3_longrope() */
        return !strcmp(c->arch, "phi3") ? 0
                                        : err("%s: rope_scaling type '%s' is supported for phi3 "
                                              "only", path, type);
    if (!strcmp(type, "linear")) { /* positions divided by factor (gemma3: its full layers) */
        json_t *f = cfg_get(rs, "factor");
        if (!json_is_number(f) || !(json_number_value(f) >= 1))
            return err("%s: linear rope_scaling needs a factor >= 1", path);
        c->rope_linear = (float)json_number_value(f);
        return 0;
    }
    if (strcmp(type, "llama3"))
        return err("%s: rope_scaling type '%s' is not supported (lowbit supports 'llama3' and "
                   "'linear')", path, type);
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

/* Phi3Config: longrope (or "su") rope_scaling as transformers' _compute_longrope_parameters reads
 * it: long_factor and short_factor lists of head_dim/2 divisors, the original context
 * (original_max_position_embeddings, else max_position_embeddings), attention_factor (default
 * sqrt(1 + ln(max/orig)/ln(orig)) when max > orig, else 1); partial rotary is refused */
static int phi3_config(struct hf_load *h, json_t *root) {
    struct model *m = h->m;
    struct model_config *c = &m->cfg;
    const char *p = h->cfg_path;
    float prf;
    if (cfg_num(p, root, "partial_rotary_factor", false, 1.0, &prf)) return -1;
    if (prf != 1.0f)
        return err("%s: partial_rotary_factor %g is not supported (lowbit rotates whole heads)", p,
                   (double)prf);
    if (cfg_int(p, root, "original_max_position_embeddings", false, c->ctx_len, 0, INT_MAX,
                &c->rope_orig_ctx))
        return -1;
    json_t *sw = cfg_get(root, "sliding_window"); /* every layer (Phi3Attention) */
    if (sw && (!json_is_integer(sw) || json_integer_value(sw) <= 0))
        return err("%s: sliding_window is not a positive integer", p);
    if (sw) c->swa_window = (int)LB_MIN(json_integer_value(sw), INT_MAX), c->swa_pattern = 0;
    json_t *rs = cfg_get(root, "rope_scaling");
    json_t *jt = rs ? cfg_get(rs, "rope_type") : NULL;
    if (rs && !jt) jt = cfg_get(rs, "type");
    if (!json_is_string(jt) || !strcmp(json_string_value(jt), "default")) return 0;
    const int half = c->head_dim / 2;
    const char *keys[2] = {"long_factor", "short_factor"};
    for (int k = 0; k < 2; k++) {
        json_t *a = cfg_get(rs, keys[k]);
        if (!json_is_array(a) || (int)json_array_size(a) != half)
            return err("%s: rope_scaling.%s is not a list of %d numbers (head_dim / 2)", p,
                       keys[k], half);
        float *f = model_alloc(m, (size_t)half * sizeof *f, keys[k]);
        if (!f) return -1;
        for (int i = 0; i < half; i++) {
            json_t *v = json_array_get(a, (size_t)i);
            if (!json_is_number(v) || !(json_number_value(v) > 0) || !isfinite(json_number_value(v)))
                return err("%s: rope_scaling.%s[%d] is not a positive number", p, keys[k], i);
            f[i] = (float)json_number_value(v);
        }
        if (k == 0) m->rope_long = f;
        else m->rope_short = f;
    }
    if (!c->rope_orig_ctx)
        return err("%s: longrope rope_scaling needs original_max_position_embeddings or "
                   "max_position_embeddings", p);
    json_t *af = cfg_get(rs, "attention_factor");
    if (af) {
        if (!json_is_number(af) || !(json_number_value(af) > 0))
            return err("%s: rope_scaling.attention_factor is not a positive number", p);
        c->rope_attn_factor = (float)json_number_value(af);
    } else {
        const double factor = (double)c->ctx_len / c->rope_orig_ctx;
        c->rope_attn_factor =
            factor <= 1 ? 1.0f : (float)sqrt(1 + log(factor) / log((double)c->rope_orig_ctx));
    }
    return 0;
}

/* Gemma2Config / Gemma3TextConfig: the sliding layers (layer_types, else gemma2 every other,
 * gemma3 all but every sliding_window_pattern-th), the soft-caps, query_pre_attn_scalar, the local
 * RoPE base; transformers' defaults where a key is absent */
static int gemma_config(const char *p, json_t *root, struct model_config *c) {
    const bool g2 = !strcmp(c->arch, "gemma2");
    float qpas, acap, fcap;
    c->post_norms = c->gelu = true;
    c->embd_scale = sqrtf((float)c->dim);
    c->swa_pattern = g2 ? 2 : 6;
    json_t *ac = json_object_get(root, "attn_logit_softcapping"),
           *fc = json_object_get(root, "final_logit_softcapping");
    if (cfg_num(p, root, "query_pre_attn_scalar", false, 256, &qpas) ||
        cfg_num(p, root, "attn_logit_softcapping", false, g2 && !ac ? 50.0 : 0, &acap) ||
        cfg_num(p, root, "final_logit_softcapping", false, g2 && !fc ? 30.0 : 0, &fcap) ||
        cfg_int(p, root, "sliding_window", false, 4096, 1, INT_MAX, &c->swa_window) ||
        cfg_int(p, root, "sliding_window_pattern", false, c->swa_pattern, 1, 4096, &c->swa_pattern) ||
        cfg_num(p, root, "rope_local_base_freq", false, g2 ? c->rope_theta : 10000.0,
                &c->rope_theta_swa))
        return -1;
    if (!(qpas > 0)) return err("%s: query_pre_attn_scalar %g (expected > 0)", p, (double)qpas);
    c->attn_scale = 1.0f / sqrtf(qpas);
    c->attn_softcap = acap > 0 ? acap : 0;
    c->final_softcap = fcap > 0 ? fcap : 0;
    json_t *lt = cfg_get(root, "layer_types");
    if (lt) { /* only the patterns llama.cpp can express */
        if (!json_is_array(lt) || (int)json_array_size(lt) != c->n_layers)
            return err("%s: layer_types is not a list of num_hidden_layers entries", p);
        for (int l = 0; l < c->n_layers; l++) {
            const char *t = json_string_value(json_array_get(lt, (size_t)l));
            if (!t || (strcmp(t, "sliding_attention") && strcmp(t, "full_attention")))
                return err("%s: layer_types[%d] is not sliding_attention or full_attention", p, l);
            if (!strcmp(t, "sliding_attention") != model_layer_swa(c, l))
                return err("%s: layer_types[%d] is %s, but lowbit's sliding layers follow a "
                           "pattern of %d (layer l slides when l %% %d < %d)", p, l, t,
                           c->swa_pattern, c->swa_pattern, c->swa_pattern - 1);
        }
    }
    if (g2 && c->rope_linear > 0)
        return err("%s: rope_scaling is not supported for gemma2", p);
    return 0;
}

static int read_config(struct hf_load *h) {
    const char *p = h->cfg_path;
    struct model_config *c = &h->m->cfg;
    if (!file_exists(p))
        return err("%s: missing config.json (a Hugging Face model directory needs config.json and "
                   "model.safetensors)", h->dir);
    json_error_t je;
    if (input_size_check(p, "the config")) return -1;
    json_t *root = json_load_file(p, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return err("%s: bad JSON at line %d, column %d: %s", p, je.line, je.column, je.text);
    int ret = -1;
    if (!json_is_object(root)) {
        err("%s: not a JSON object", p);
        goto out;
    }
    json_t *qc = cfg_get(root, "quantization_config");
    if (qc && read_quant_config(h, qc)) goto out;
    if (cfg_arch(p, root, c->arch, sizeof c->arch)) goto out;
    const bool gemma = !strcmp(c->arch, "gemma2") || !strcmp(c->arch, "gemma3");
    json_t *act = cfg_get(root, gemma ? "hidden_activation" : "hidden_act");
    if (gemma && !act) act = cfg_get(root, "hidden_act");
    const char *want_act = gemma ? "gelu_pytorch_tanh" : "silu";
    if (act && (!json_is_string(act) || strcmp(json_string_value(act), want_act))) {
        err("%s: hidden_act %s is not supported (lowbit runs %s for %s)", p,
            json_is_string(act) ? json_string_value(act) : "(not a string)", want_act, c->arch);
        goto out;
    }
    bool attn_bias, mlp_bias;
    if (cfg_int(p, root, "hidden_size", true, 0, 1, INT_MAX, &c->dim) ||
        cfg_int(p, root, "intermediate_size", true, 0, 1, INT_MAX, &c->hidden_dim) ||
        cfg_int(p, root, "num_hidden_layers", true, 0, 1, INT_MAX, &c->n_layers) ||
        cfg_int(p, root, "num_attention_heads", true, 0, 1, INT_MAX, &c->n_heads) ||
        cfg_int(p, root, "num_key_value_heads", false, c->n_heads, 1, INT_MAX, &c->n_kv_heads) ||
        cfg_int(p, root, "head_dim", false, /* Qwen3Config's default is 128, Gemma's 256 */
                !strcmp(c->arch, "qwen3") ? 128 : gemma ? 256 : c->dim / c->n_heads, 1, INT_MAX,
                &c->head_dim) ||
        cfg_int(p, root, "vocab_size", true, 0, 1, INT_MAX, &c->vocab_size) ||
        cfg_int(p, root, "max_position_embeddings", false, 0, 0, INT_MAX, &c->ctx_len) ||
        cfg_num(p, root, "rms_norm_eps", false, 1e-6, &c->norm_eps) || /* transformers' default */
        cfg_num(p, root, "rope_theta", false, !strcmp(c->arch, "gemma3") ? 1e6 : 10000.0,
                &c->rope_theta) ||
        cfg_bool(p, root, "tie_word_embeddings", gemma, &h->tie) ||
        cfg_bool(p, root, "attention_bias", false, &attn_bias) ||
        cfg_bool(p, root, "mlp_bias", false, &mlp_bias) || cfg_rope_scaling(p, root, c))
        goto out;
    json_t *oh = cfg_get(root, "lowbit_online_hadamard"); /* quant/rotate.h */
    if (oh &&
        (!json_is_string(oh) || model_online_had_parse(json_string_value(oh), &c->online_had, p)))
        goto out;
    if (cfg_num(p, root, "lowbit_act_clip", false, 0, &c->act_clip)) goto out;
    if (mlp_bias) {
        err("%s: mlp_bias true is not supported (lowbit's MLP has no biases)", p);
        goto out;
    }
    /* qwen2 always has q/k/v biases (and no o_proj bias); llama's attention_bias also adds an
     * o_proj bias, refused when its tensor shows up */
    const bool qwen2moe = !strcmp(c->arch, "qwen2moe");
    c->qkv_bias = attn_bias || !strcmp(c->arch, "qwen2") || qwen2moe;
    c->qk_norm = !strcmp(c->arch, "qwen3") || !strcmp(c->arch, "gemma3"); /* q_norm, k_norm [head_dim] */
    /* sliding-window attention equals full attention up to the window: cap the usable context
     * there, since the forward pass attends to everything */
    /* MixtralConfig: num_local_experts, num_experts_per_tok (the chosen weights renormalized) */
    const char *mt = json_string_value(cfg_get(root, "model_type"));
    const bool mixtral = mt && !strcmp(mt, "mixtral");
    if (mixtral) {
        if (cfg_int(p, root, "num_local_experts", false, 8, 1, 1024, &c->n_expert) ||
            cfg_int(p, root, "num_experts_per_tok", false, 2, 1, 1024, &c->n_expert_used))
            goto out;
        c->expert_hidden = c->hidden_dim;
        c->expert_norm = true;
    }
    /* Qwen2MoeConfig: num_experts, num_experts_per_tok, moe_intermediate_size, the shared
     * expert's shared_expert_intermediate_size, norm_topk_prob (default false); every layer
     * sparse (decoder_sparse_step 1, no mlp_only_layers) */
    if (qwen2moe) {
        int step;
        json_t *mlp_only = cfg_get(root, "mlp_only_layers");
        if (cfg_int(p, root, "num_experts", false, 60, 1, 1024, &c->n_expert) ||
            cfg_int(p, root, "num_experts_per_tok", false, 4, 1, 1024, &c->n_expert_used) ||
            cfg_int(p, root, "moe_intermediate_size", false, 1408, 1, INT_MAX, &c->expert_hidden) ||
            cfg_int(p, root, "shared_expert_intermediate_size", false, 5632, 1, INT_MAX,
                    &c->shared_hidden) ||
            cfg_int(p, root, "decoder_sparse_step", false, 1, 0, INT_MAX, &step) ||
            cfg_bool(p, root, "norm_topk_prob", false, &c->expert_norm))
            goto out;
        if (step != 1 || (mlp_only && json_array_size(mlp_only) > 0)) {
            err("%s: decoder_sparse_step %d or mlp_only_layers leave dense layers among the "
                "sparse ones, which lowbit does not run", p, step);
            goto out;
        }
    }
    json_t *sw = cfg_get(root, "sliding_window");
    bool sw_used = !strcmp(c->arch, "mistral") || mixtral;
    if ((!strcmp(c->arch, "qwen2") || !strcmp(c->arch, "qwen3") || qwen2moe) &&
        cfg_bool(p, root, "use_sliding_window", false, &sw_used))
        goto out;
    if (sw_used && sw) {
        if (!json_is_integer(sw) || json_integer_value(sw) <= 0) {
            err("%s: sliding_window is not a positive integer", p);
            goto out;
        }
        if (!c->ctx_len || json_integer_value(sw) < c->ctx_len)
            c->ctx_len = (int)LB_MIN(json_integer_value(sw), INT_MAX);
    }
    if (gemma && gemma_config(p, root, c)) goto out;
    if (model_fused_qkv(c) && phi3_config(h, root)) goto out;
    c->rope_style = ROPE_NEOX;
    ret = 0;
out:
    json_decref(root);
    return ret;
}

/* ===== tensor names ===== */

/* suffix after "model.layers.N." -> suffix after "blk.N.": the norms here, the linears (and the
 * biases of those lin_info[].bias allows) from eval/model.h's table */
static const struct {
    const char *hf, *gguf;
} norm_names[] = {
    {"input_layernorm.weight", "attn_norm.weight"},
    {"post_attention_layernorm.weight", "ffn_norm.weight"},
};

/* the per-head q/k norms: mapped when cfg.qk_norm (qwen3), else refused (they change the result) */
static const struct {
    const char *hf, *gguf;
} qk_norm_names[] = {
    {"self_attn.q_norm.weight", "attn_q_norm.weight"},
    {"self_attn.k_norm.weight", "attn_k_norm.weight"},
};

/* layer suffix s names an expert's matrix (Mixtral block_sparse_moe.experts.E.w1|w3|w2.weight,
 * qwen2moe mlp.experts.E.gate_proj|up_proj|down_proj.weight): its kind 0 gate, 1 up, 2 down and
 * *e; -1 otherwise */
static int expert_name(const char *s, int *e) {
    int pos = 0, w;
    char p[16];
    if (sscanf(s, "block_sparse_moe.experts.%d.w%d.weight%n", e, &w, &pos) == 2 && !s[pos] &&
        *e >= 0 && w >= 1 && w <= 3)
        return w == 1 ? 0 : w == 3 ? 1 : 2;
    pos = 0;
    if (sscanf(s, "mlp.experts.%d.%15[a-z]_proj.weight%n", e, p, &pos) == 2 && !s[pos] && *e >= 0)
        return !strcmp(p, "gate") ? 0 : !strcmp(p, "up") ? 1 : !strcmp(p, "down") ? 2 : -1;
    return -1;
}

/* the canonical suffix of layer suffix s into out: 1 = found (*bias: a linear's bias), 0 = not a
 * tensor lowbit knows, -1 = a tensor that changes the result and has no slot (nothing printed) */
static int layer_suffix(const struct model_config *c, const char *s, char *out, size_t size,
                        bool *bias) {
    static const struct {
        const char *hf, *gguf;
    } gemma_norms[] = {
        {"input_layernorm.weight", "attn_norm.weight"},
        {"post_attention_layernorm.weight", "post_attention_norm.weight"},
        {"pre_feedforward_layernorm.weight", "ffn_norm.weight"},
        {"post_feedforward_layernorm.weight", "post_ffw_norm.weight"},
    };
    *bias = false;
    for (size_t i = 0; c->post_norms && i < LB_ARRAY_LEN(gemma_norms); i++)
        if (!strcmp(s, gemma_norms[i].hf)) {
            snprintf(out, size, "%s", gemma_norms[i].gguf);
            return 1;
        }
    for (size_t i = 0; i < LB_ARRAY_LEN(qk_norm_names); i++)
        if (!strcmp(s, qk_norm_names[i].hf)) {
            if (!c->qk_norm) return -1;
            snprintf(out, size, "%s", qk_norm_names[i].gguf);
            return 1;
        }
    for (size_t i = 0; i < LB_ARRAY_LEN(norm_names); i++)
        if (!strcmp(s, norm_names[i].hf)) {
            snprintf(out, size, "%s", norm_names[i].gguf);
            return 1;
        }
    /* Mixtral's and qwen2moe's router; float experts are stacked by add_expert */
    if (c->n_expert > 0 &&
        (!strcmp(s, "block_sparse_moe.gate.weight") || !strcmp(s, "mlp.gate.weight")))
        return snprintf(out, size, "ffn_gate_inp.weight"), 1;
    int e, kind; /* an expert of a quantized checkpoint: one tensor per expert */
    if (c->n_expert > 0 && (kind = expert_name(s, &e)) >= 0) {
        if (e >= c->n_expert) return -1;
        return snprintf(out, size, "%s_exps.%d.weight",
                        (const char *const[]){"ffn_gate", "ffn_up", "ffn_down"}[kind], e), 1;
    }
    static const struct {
        const char *hf, *gguf;
    } shexp[] = { /* qwen2moe's shared expert and its gate */
        {"mlp.shared_expert.gate_proj.weight", "ffn_gate_shexp.weight"},
        {"mlp.shared_expert.up_proj.weight", "ffn_up_shexp.weight"},
        {"mlp.shared_expert.down_proj.weight", "ffn_down_shexp.weight"},
        {"mlp.shared_expert_gate.weight", "ffn_gate_inp_shexp.weight"},
    };
    for (size_t i = 0; c->shared_hidden > 0 && i < LB_ARRAY_LEN(shexp); i++)
        if (!strcmp(s, shexp[i].hf)) return snprintf(out, size, "%s", shexp[i].gguf), 1;
    /* phi3's fused linears: split into their parts by model_add_fused */
    if (model_fused_qkv(c) && !strcmp(s, "self_attn.qkv_proj.weight"))
        return snprintf(out, size, "attn_qkv.weight"), 1;
    if (model_fused_qkv(c) && !strcmp(s, "mlp.gate_up_proj.weight"))
        return snprintf(out, size, "ffn_gate_up.weight"), 1;
    for (int i = 0; i < LIN_COUNT; i++) {
        const size_t n = strlen(lin_info[i].hf);
        if (strncmp(s, lin_info[i].hf, n)) continue;
        if (!strcmp(s + n, ".weight")) {
            snprintf(out, size, "%s.weight", lin_info[i].gguf);
            return 1;
        }
        if (!strcmp(s + n, ".bias")) {
            if (!lin_info[i].bias) return -1;
            snprintf(out, size, "%s.bias", lin_info[i].gguf);
            *bias = true;
            return 1;
        }
    }
    return 0;
}

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
    char sfx[64];
    bool bias;
    const int found = layer_suffix(c, s, sfx, sizeof sfx, &bias);
    if (found < 0)
        return err("%s: tensor '%s' is not supported (lowbit's %s layers have no %s)", where, name,
                   c->arch, s);
    if (!found) return 0;
    if (layer >= c->n_layers)
        return err("%s: tensor '%s' is beyond num_hidden_layers %d in %s", where, name, c->n_layers,
                   h->cfg_path);
    if (!c->qkv_bias && bias)
        return err("%s: tensor '%s' is an attention bias but %s does not set attention_bias", where,
                   name, h->cfg_path);
    snprintf(out, size, "blk.%ld.%s", layer, sfx);
    return 1;
}

/* ===== quantized checkpoints (GPTQ, AWQ, AutoRound, bitsandbytes) =====
 *
 * Layouts read (REFERENCE.md C1-C4; the packing helpers are in kernels/qint.h, kernels/nf4.h).
 * Per quantized Linear with module prefix P (e.g. model.layers.0.self_attn.q_proj), W [N out][K in]:
 *  GPTQ (AutoGPTQ/GPTQModel, AutoRound's GPTQ packing): P.qweight I32 [K·b/32, N] (input rows
 *    packed LSB-first down each column), P.qzeros I32 [ceil(K/g), N·b/32] (packed along outputs),
 *    P.scales F16/BF16/F32 [ceil(K/g), N], P.g_idx I32 [K] (optional; act-order when it is not
 *    k / g). Zero = stored + 1 for checkpoint_format "gptq" (v1), stored for "gptq_v2".
 *  AWQ GEMM (AutoAWQ): P.qweight I32 [K, N/8] (8 outputs per word, order [0,2,4,6,1,3,5,7]),
 *    P.qzeros I32 [K/g, N/8] (same order, true zeros), P.scales F16 [K/g, N]; 4-bit only.
 *  bitsandbytes 4-bit (Params4bit): P.weight U8 [ceil(N·K/2), 1] (or the same bytes viewed as
 *    bnb_4bit_quant_storage), P.weight.absmax F32 [nb] (U8 when double-quantized),
 *    P.weight.quant_map F32 [16], P.weight.nested_absmax F32, P.weight.nested_quant_map F32 [256],
 *    P.weight.quant_state.bitsandbytes__{nf4,fp4} U8: JSON {quant_type, blocksize, dtype, shape,
 *    nested_blocksize, nested_dtype, nested_offset}.
 *  bitsandbytes 8-bit (Int8Params): P.weight I8 [N, K], P.SCB F32 [N], P.weight_format U8 (0 = row).
 *  AQLM (aqlm.QuantizedLinear; REFERENCE.md C6, kernels/aqlm.h): P.codes I8 (B <= 8) or I16
 *    [N/go, K/gi, M] (values >= 2^(B−1) stored minus 2^B: read mod 2^B), P.codebooks F16/BF16/F32
 *    [M, 2^B, go, gi], P.scales F16/BF16/F32 [N/go, 1, 1, 1]; the scheme (num_codebooks M,
 *    nbits_per_codebook B, in_group_size gi, out_group_size go) from quantization_config.
 * Every module becomes one packed tensor (DTYPE_QINT/NF4/FP4/I8ROW/AQLM) in a model buffer: the codes
 * are re-laid out for the fused kernels, never expanded to fp32. Modules a checkpoint leaves in
 * floating point (modules_in_block_to_quantize, modules_to_not_convert, llm_int8_skip_modules)
 * load through the float path. */

enum hf_qmethod { HFQ_NONE, HFQ_GPTQ, HFQ_AWQ, HFQ_BNB, HFQ_AQLM };

static const char *cfg_str(json_t *obj, const char *key) {
    json_t *v = cfg_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* GPTQ v1 or v2: quantization_config.checkpoint_format (or "format"), else quantize_config.json */
static int gptq_format_v2(struct hf_load *h, json_t *qc, bool *v2) {
    const char *f = cfg_str(qc, "checkpoint_format");
    if (!f) f = cfg_str(qc, "format");
    json_t *qj = NULL;
    if (!f) {
        char p[4300];
        snprintf(p, sizeof p, "%s/quantize_config.json", h->dir);
        if (file_exists(p) && !input_size_check(p, "the quantize config") &&
            (qj = json_load_file(p, 0, NULL))) {
            f = cfg_str(qj, "checkpoint_format");
            if (!f) f = cfg_str(qj, "format");
        }
    }
    int ret = 0;
    if (!f || !strcmp(f, "gptq")) *v2 = false;
    else if (!strcmp(f, "gptq_v2")) *v2 = true;
    else ret = err("%s: GPTQ checkpoint_format '%s' is not supported (expected gptq or gptq_v2)",
                   h->cfg_path, f);
    json_decref(qj);
    return ret;
}

static int read_quant_config(struct hf_load *h, json_t *qc) {
    const char *p = h->cfg_path, *method = cfg_str(qc, "quant_method");
    if (!json_is_object(qc)) return err("%s: quantization_config is not an object", p);
    if (!method) return err("%s: quantization_config has no quant_method", p);
    if (!strcmp(method, "auto-round") || !strcmp(method, "intel/auto-round") ||
        !strcmp(method, "autoround")) { /* AutoRound exports in the GPTQ or AWQ packing (C3) */
        const char *pf = cfg_str(qc, "packing_format");
        if (pf && strstr(pf, "awq")) method = "awq";
        else if (pf && strstr(pf, "gptq")) method = "gptq";
        else
            return err("%s: auto-round packing_format '%s' is not supported (lowbit reads the "
                       "auto_gptq and auto_awq packings)", p, pf ? pf : "(none)");
    }
    if (!strcmp(method, "gptq") || !strcmp(method, "awq")) {
        const bool awq = !strcmp(method, "awq");
        h->q.method = awq ? HFQ_AWQ : HFQ_GPTQ;
        json_t *b = cfg_get(qc, "bits");
        if (!b) b = cfg_get(qc, "w_bit");
        if (!json_is_integer(b)) return err("%s: %s quantization_config has no integer bits", p, method);
        h->q.bits = (int)json_integer_value(b);
        if (awq && h->q.bits != 4)
            return err("%s: AWQ bits %d is not supported (AWQ GEMM checkpoints are 4-bit)", p,
                       h->q.bits);
        if (h->q.bits != 2 && h->q.bits != 3 && h->q.bits != 4 && h->q.bits != 8)
            return err("%s: GPTQ bits %d is not supported (GPTQ checkpoints have 2, 3, 4 or 8 bits)",
                       p, h->q.bits);
        json_t *g = cfg_get(qc, "group_size");
        if (!g) g = cfg_get(qc, "q_group_size");
        if (!json_is_integer(g) || (json_integer_value(g) <= 0 && json_integer_value(g) != -1) ||
            json_integer_value(g) > (1 << 24))
            return err("%s: %s group_size is missing or not -1 or a positive integer", p, method);
        h->q.group = json_integer_value(g);
        if (awq) {
            const char *ver = cfg_str(qc, "version");
            if (ver && strcasecmp(ver, "gemm"))
                return err("%s: AWQ version '%s' is not supported (lowbit reads the GEMM packing; "
                           "re-export with version 'gemm')", p, ver);
            bool zp;
            if (cfg_bool(p, qc, "zero_point", true, &zp)) return -1;
            if (!zp) return err("%s: AWQ zero_point false is not supported (GEMM checkpoints "
                                "have zero points)", p);
            if (h->q.group < 0)
                return err("%s: AWQ group_size -1 is not supported (AutoAWQ needs a group size)", p);
        } else if (gptq_format_v2(h, qc, &h->q.v2)) {
            return -1;
        }
        return 0;
    }
    if (!strcmp(method, "bitsandbytes")) {
        bool l4 = false, l8 = false;
        if (cfg_bool(p, qc, "load_in_4bit", false, &l4) || cfg_bool(p, qc, "load_in_8bit", false, &l8))
            return -1;
        if (!l4 && !l8) { /* older configs spell them with a leading underscore */
            if (cfg_bool(p, qc, "_load_in_4bit", false, &l4) ||
                cfg_bool(p, qc, "_load_in_8bit", false, &l8))
                return -1;
        }
        if (l4 == l8)
            return err("%s: bitsandbytes quantization_config must set exactly one of load_in_4bit "
                       "and load_in_8bit", p);
        h->q.method = HFQ_BNB;
        h->q.bits = l4 ? 4 : 8;
        return 0;
    }
    if (!strcmp(method, "aqlm")) { /* transformers AqlmConfig: all four are required there */
        h->q.method = HFQ_AQLM;
        if (cfg_int(p, qc, "num_codebooks", true, 0, 1, AQLM_MAX_CODEBOOKS, &h->q.aq_m) ||
            cfg_int(p, qc, "nbits_per_codebook", true, 0, 1, AQLM_MAX_NBITS, &h->q.aq_b) ||
            cfg_int(p, qc, "in_group_size", true, 0, 1, AQLM_MAX_GROUP, &h->q.aq_gi) ||
            cfg_int(p, qc, "out_group_size", true, 0, 1, AQLM_MAX_GROUP, &h->q.aq_go))
            return -1;
        json_t *skip = cfg_get(qc, "linear_weights_not_to_quantize");
        if (skip && !json_is_array(skip))
            return err("%s: linear_weights_not_to_quantize is not a list of tensor names", p);
        return 0;
    }
    return err("%s: quant_method '%s' is not supported (lowbit reads gptq, awq, auto-round, "
               "bitsandbytes and aqlm checkpoints, and GGUF files)", p, method);
}

/* a tensor of any loaded file by name (the index's shard when there is one) */
static const struct safetensors_tensor *find_any(const struct hf_load *h, const char *name) {
    const char *fname = NULL;
    if (h->weight_map) {
        json_t *f = json_object_get(h->weight_map, name);
        if (!json_is_string(f)) return NULL;
        fname = json_string_value(f);
    }
    for (int i = 0; i < h->n_files; i++) {
        if (fname && strcmp(h->fnames[i], fname)) continue;
        const struct safetensors_tensor *t = safetensors_find(&h->files[i], name);
        if (t) return t;
    }
    return NULL;
}

/* [K in, N out] of canonical linear `name` from the config; false when not a 2-d weight */
static bool linear_shape(const struct hf_load *h, const char *name, int64_t *K, int64_t *N) {
    const struct model_config *c = &h->m->cfg;
    if (!strcmp(name, "output.weight") || !strcmp(name, "token_embd.weight")) {
        *K = c->dim;
        *N = c->vocab_size;
        return true;
    }
    const char *s = name;
    if (!strncmp(name, "blk.", 4)) {
        s = strchr(name + 4, '.');
        if (!s) return false;
        s++;
    }
    int e, pos = 0;
    char kind[16];
    if (c->n_expert > 0 && sscanf(s, "ffn_%15[a-z]_exps.%d.weight%n", kind, &e, &pos) == 2 &&
        !s[pos]) { /* a MoE expert: blk.N.ffn_{gate,up,down}_exps.E.weight */
        const bool down = !strcmp(kind, "down");
        *K = down ? c->expert_hidden : c->dim;
        *N = down ? c->dim : c->expert_hidden;
        return true;
    }
    pos = 0;
    if (c->shared_hidden > 0 && sscanf(s, "ffn_%15[a-z]_shexp.weight%n", kind, &pos) == 1 &&
        !s[pos]) { /* qwen2moe's shared expert */
        const bool down = !strcmp(kind, "down");
        *K = down ? c->shared_hidden : c->dim;
        *N = down ? c->dim : c->shared_hidden;
        return true;
    }
    const int i = lin_by_suffix(s);
    if (i < 0) return false;
    *K = lin_dim(c, lin_info[i].in);
    *N = lin_dim(c, lin_info[i].out);
    return true;
}

/* a checkpoint tensor that must have dtype dt and shape [d0] or [d0, d1] (d1 < 0: 1-d) */
static const struct safetensors_tensor *need(const struct hf_load *h, const char *mod,
                                             const char *suffix, enum safetensors_dtype dt,
                                             int64_t d0, int64_t d1, const char *why) {
    char name[512];
    snprintf(name, sizeof name, "%s%s", mod, suffix);
    const struct safetensors_tensor *s = find_any(h, name);
    if (!s) {
        err("%s: %s is missing (%s)", h->dir, name, why);
        return NULL;
    }
    const int want_dims = d1 < 0 ? 1 : 2;
    if ((int)s->dtype != (int)dt && (int)dt >= 0) {
        err("%s: %s has dtype %s (expected %s)", h->dir, name, safetensors_dtype_name(s->dtype),
            safetensors_dtype_name(dt));
        return NULL;
    }
    if (s->n_dims != want_dims || s->shape[0] != d0 || (d1 >= 0 && s->shape[1] != d1)) {
        char got[96] = "";
        for (int d = 0; d < s->n_dims && d < 4; d++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? ", " : "",
                     (long long)s->shape[d]);
        if (d1 < 0)
            err("%s: %s is [%s] (expected [%lld]: %s)", h->dir, name, got, (long long)d0, why);
        else
            err("%s: %s is [%s] (expected [%lld, %lld]: %s)", h->dir, name, got, (long long)d0,
                (long long)d1, why);
        return NULL;
    }
    return s;
}

/* a 4-byte aligned view of an I32 tensor (copied into a model buffer when the file left it
 * misaligned) */
static const int32_t *i32_data(struct hf_load *h, const struct safetensors_tensor *s) {
    if (!((uintptr_t)s->data % 4)) return s->data;
    void *b = model_alloc(h->m, s->nbytes, s->name);
    if (b) memcpy(b, s->data, s->nbytes);
    return b;
}

/* element i of a F16/BF16/F32 tensor */
static float float_at(const struct safetensors_tensor *s, int64_t i) {
    const uint8_t *p = s->data;
    switch (s->dtype) {
    case SAFETENSORS_F32: {
        float f;
        memcpy(&f, p + 4 * i, 4);
        return f;
    }
    case SAFETENSORS_BF16: return lb_bf16_to_f32((lb_bf16)(p[2 * i] | p[2 * i + 1] << 8));
    default: return lb_fp16_to_f32((lb_fp16)(p[2 * i] | p[2 * i + 1] << 8));
    }
}

/* GPTQ or AWQ module P -> one DTYPE_QINT tensor named canon */
static int load_qint(struct hf_load *h, const char *mod, const char *canon) {
    int64_t K, N;
    if (!linear_shape(h, canon, &K, &N))
        return err("%s: %sqweight: lowbit has no quantized slot for %s", h->dir, mod, canon);
    const bool awq = h->q.method == HFQ_AWQ;
    const int b = h->q.bits;
    const int64_t g = h->q.group < 0 ? K : h->q.group;
    char why[160];
    if (awq) {
        if (N % 8 || K % g)
            return err("%s: %sqweight: AWQ GEMM needs out_features %lld to be a multiple of 8 and "
                       "group_size %lld to divide in_features %lld", h->dir, mod, (long long)N,
                       (long long)g, (long long)K);
    } else if ((K * b) % 32 || (N * b) % 32) {
        return err("%s: %sqweight: %d-bit GPTQ packing needs in_features %lld and out_features "
                   "%lld times %d to be multiples of 32", h->dir, mod, b, (long long)K,
                   (long long)N, b);
    }
    const int64_t ng = awq ? K / g : qint_n_groups(g, K);
    snprintf(why, sizeof why, "%s %d-bit, in_features %lld, out_features %lld", awq ? "AWQ" : "GPTQ",
             b, (long long)K, (long long)N);
    const struct safetensors_tensor *qw, *qz, *sc, *gi = NULL;
    if (!(qw = need(h, mod, "qweight", SAFETENSORS_I32, awq ? K : K * b / 32, awq ? N / 8 : N, why)) ||
        !(qz = need(h, mod, "qzeros", SAFETENSORS_I32, ng, N * b / 32, why)) ||
        !(sc = need(h, mod, "scales", -1, ng, N, why)))
        return -1;
    if (sc->dtype != SAFETENSORS_F16 && sc->dtype != SAFETENSORS_BF16 && sc->dtype != SAFETENSORS_F32)
        return err("%s: %sscales has dtype %s (expected F16, BF16 or F32)", h->dir, mod,
                   safetensors_dtype_name(sc->dtype));
    char gname[512];
    snprintf(gname, sizeof gname, "%sg_idx", mod);
    if (!awq && find_any(h, gname) && !(gi = need(h, mod, "g_idx", SAFETENSORS_I32, K, -1, why)))
        return -1;
    const int32_t *qwd = i32_data(h, qw), *qzd = i32_data(h, qz), *gid = gi ? i32_data(h, gi) : NULL;
    if (!qwd || !qzd || (gi && !gid)) return -1;
    if (g % QINT_CHUNK && g < K)
        return err("%s: %sqweight: group_size %lld is not supported (lowbit holds groups that are "
                   "multiples of 32, or one group per row)", h->dir, mod, (long long)g);
    /* act-order: the permutation that makes groups contiguous */
    int32_t *perm = NULL;
    bool trivial = true;
    if (gid) {
        perm = xmalloc((size_t)K * sizeof *perm, "g_idx permutation");
        if (!perm) return -1;
        if (qint_perm_from_gidx(gname, gid, K, g, perm, &trivial)) {
            free(perm);
            return -1;
        }
    }
    struct tensor t;
    int ret = -1;
    int32_t *inv = NULL;
    if (qint_tensor_init(&t, canon, K, N, b, g, !trivial)) goto out;
    void *buf = model_alloc(h->m, qint_tensor_bytes(K, N, b, g, !trivial), canon);
    if (!buf) goto out;
    qint_tensor_attach(&t, buf, !trivial);
    if (!trivial) {
        memcpy(qint_perm_mut(&t), perm, (size_t)K * sizeof *perm);
        inv = xmalloc((size_t)K * sizeof *inv, "inverse permutation");
        if (!inv) goto out;
        for (int64_t j = 0; j < K; j++) inv[perm[j]] = (int32_t)j;
    }
    const int64_t tg = t.q_group, tng = qint_n_groups(tg, K); /* as stored (per-channel: 1) */
    struct qint_param *par = qint_params(&t);
    const unsigned zmax = 1u << b;
    for (int64_t gi2 = 0; gi2 < ng; gi2++)
        for (int64_t n = 0; n < N; n++) {
            const float d = float_at(sc, gi2 * N + n);
            if (!isfinite(d)) {
                err("%s: %sscales[%lld][%lld] is %s (scales must be finite)", h->dir, mod,
                    (long long)gi2, (long long)n, isnan(d) ? "NaN" : "Inf");
                goto out;
            }
            const unsigned zs = awq ? qint_awq_get(qzd + gi2 * (N / 8), n)
                                    : qint_stream_get(qzd + gi2 * (N * b / 32), 1, n, b);
            const unsigned z = awq || h->q.v2 ? zs : zs + 1;
            ASSERT(z <= zmax);
            if (gi2 < tng) par[n * tng + gi2] = (struct qint_param){d, (float)z};
        }
    for (int64_t n = 0; n < N; n++) {
        uint8_t *row = (uint8_t *)t.data + (size_t)n * tensor_row_bytes(&t);
        for (int64_t k = 0; k < K; k++) {
            const unsigned q = awq ? qint_awq_get(qwd + k * (N / 8), n)
                                   : qint_stream_get(qwd + n, N, k, b);
            qint_code_set(row, b, inv ? inv[k] : k, q);
        }
    }
    ret = model_add_tensor(h->m, &t);
out:
    free(perm);
    free(inv);
    return ret;
}

/* the JSON of a bitsandbytes quant_state tensor (U8 bytes) */
static json_t *quant_state_json(const struct hf_load *h, const struct safetensors_tensor *s) {
    if (s->dtype != SAFETENSORS_U8 || s->n_dims != 1) {
        err("%s: %s is not a 1-d U8 tensor (bitsandbytes packs the quant_state JSON as uint8)",
            h->dir, s->name);
        return NULL;
    }
    json_error_t je;
    json_t *j = json_loadb(s->data, s->nbytes, 0, &je);
    if (!json_is_object(j)) {
        json_decref(j);
        err("%s: %s does not hold a JSON object (%s)", h->dir, s->name, je.text);
        return NULL;
    }
    return j;
}

/* bitsandbytes Params4bit module P -> one DTYPE_NF4/FP4 tensor */
static int load_bnb4(struct hf_load *h, const char *mod, const struct safetensors_tensor *wt,
                     const struct safetensors_tensor *qs, bool fp4, const char *canon) {
    int64_t K, N;
    if (!linear_shape(h, canon, &K, &N))
        return err("%s: %s: lowbit has no quantized slot for %s", h->dir, wt->name, canon);
    json_t *j = quant_state_json(h, qs);
    if (!j) return -1;
    int ret = -1;
    float *absmax = NULL;
    const char *qt = cfg_str(j, "quant_type"), *dt = cfg_str(j, "dtype");
    json_t *jbs = cfg_get(j, "blocksize"), *shape = cfg_get(j, "shape");
    const char *missing = !qt ? "quant_type" : !jbs ? "blocksize" : !dt ? "dtype" : !shape ? "shape" : NULL;
    if (missing) {
        err("%s: %s lacks '%s' (a bitsandbytes quant_state has quant_type, blocksize, dtype, shape)",
            h->dir, qs->name, missing);
        goto out;
    }
    if (strcmp(qt, fp4 ? "fp4" : "nf4")) {
        err("%s: %s says quant_type '%s' but its key says %s", h->dir, qs->name, qt, fp4 ? "fp4" : "nf4");
        goto out;
    }
    if (!json_is_array(shape) || json_array_size(shape) != 2 ||
        json_integer_value(json_array_get(shape, 0)) != N ||
        json_integer_value(json_array_get(shape, 1)) != K) {
        err("%s: %s shape is not [%lld, %lld] (the config's out_features, in_features)", h->dir,
            qs->name, (long long)N, (long long)K);
        goto out;
    }
    const int64_t bs = json_is_integer(jbs) ? json_integer_value(jbs) : 0;
    if (!nf4_blocksize_ok(bs)) {
        err("%s: %s blocksize %lld (bitsandbytes 4-bit blocksizes are 32, 64, ..., 4096)", h->dir,
            qs->name, (long long)bs);
        goto out;
    }
    const int64_t n = N * K, nb = nf4_n_blocks(n, bs);
    if ((int64_t)wt->nbytes != (n + 1) / 2) {
        err("%s: %s holds %zu bytes (expected %lld: %lld x %lld 4-bit values)", h->dir, wt->name,
            wt->nbytes, (long long)(n + 1) / 2, (long long)N, (long long)K);
        goto out;
    }
    char name[512];
    snprintf(name, sizeof name, "%s.nested_absmax", wt->name);
    const bool nested = find_any(h, name) != NULL;
    snprintf(name, sizeof name, "%s.absmax", wt->name);
    const struct safetensors_tensor *am = find_any(h, name);
    if (!am) {
        err("%s: %s is missing (bitsandbytes 4-bit weights need their absmax)", h->dir, name);
        goto out;
    }
    if (am->n_dims != 1 || am->dtype != (nested ? SAFETENSORS_U8 : SAFETENSORS_F32) ||
        am->shape[0] != nb) {
        err("%s: %s is %s [%lld] (expected %s [%lld]: %lld weights in blocks of %lld; blocksize "
            "mismatch?)", h->dir, name, safetensors_dtype_name(am->dtype),
            am->n_dims == 1 ? (long long)am->shape[0] : -1LL, nested ? "U8" : "F32", (long long)nb,
            (long long)n, (long long)bs);
        goto out;
    }
    snprintf(name, sizeof name, "%s.quant_map", wt->name);
    const struct safetensors_tensor *qm = find_any(h, name);
    if (qm) { /* bitsandbytes dequantizes with its own table: the file's must be that table */
        if (qm->dtype != SAFETENSORS_F32 || qm->nbytes != 64) {
            err("%s: %s is not F32 [16]", h->dir, name);
            goto out;
        }
        for (int i = 0; i < 16; i++)
            if (float_at(qm, i) != (fp4 ? fp4_table : nf4_table)[i]) {
                err("%s: %s[%d] = %g differs from bitsandbytes' %s table (%g)", h->dir, name, i,
                    (double)float_at(qm, i), fp4 ? "fp4" : "nf4",
                    (double)(fp4 ? fp4_table : nf4_table)[i]);
                goto out;
            }
    }
    absmax = xmalloc((size_t)nb * sizeof *absmax, "absmax");
    if (!absmax) goto out;
    if (nested) {
        json_t *nbs_j = cfg_get(j, "nested_blocksize"), *off_j = cfg_get(j, "nested_offset");
        const char *ndt = cfg_str(j, "nested_dtype");
        const char *miss = !nbs_j ? "nested_blocksize" : !off_j ? "nested_offset" : !ndt ? "nested_dtype" : NULL;
        if (miss) {
            err("%s: %s lacks '%s' (double-quantized weights need nested_blocksize, nested_dtype, "
                "nested_offset)", h->dir, qs->name, miss);
            goto out;
        }
        const int64_t nbs = json_is_integer(nbs_j) ? json_integer_value(nbs_j) : 0;
        if (nbs < 1 || nbs > 4096 || !json_is_number(off_j) || strcmp(ndt, "float32")) {
            err("%s: %s nested_blocksize %lld, nested_dtype %s, nested_offset %s (expected "
                "1..4096, float32, a number)", h->dir, qs->name, (long long)nbs, ndt,
                json_is_number(off_j) ? "ok" : "not a number");
            goto out;
        }
        const struct safetensors_tensor *am2, *code2;
        snprintf(name, sizeof name, "%s.", wt->name);
        if (!(am2 = need(h, name, "nested_absmax", SAFETENSORS_F32, nf4_n_blocks(nb, nbs), -1,
                         "one fp32 per nested block of the absmax")) ||
            !(code2 = need(h, name, "nested_quant_map", SAFETENSORS_F32, 256, -1,
                           "the 8-bit dynamic map")))
            goto out;
        float code[256];
        for (int i = 0; i < 256; i++) code[i] = float_at(code2, i);
        float *am2f = xmalloc((size_t)am2->shape[0] * sizeof *am2f, "nested absmax");
        if (!am2f) goto out;
        for (int64_t i = 0; i < am2->shape[0]; i++) am2f[i] = float_at(am2, i);
        bnb_absmax_dequant(am->data, nb, code, am2f, nbs, (float)json_number_value(off_j), absmax);
        free(am2f);
    } else {
        for (int64_t i = 0; i < nb; i++) absmax[i] = float_at(am, i);
    }
    for (int64_t i = 0; i < nb; i++)
        if (!isfinite(absmax[i])) {
            err("%s: %s: absmax of block %lld is %s (must be finite)", h->dir, wt->name,
                (long long)i, isnan(absmax[i]) ? "NaN" : "Inf");
            goto out;
        }
    struct tensor t;
    if (nf4_tensor_init(&t, canon, fp4 ? DTYPE_FP4 : DTYPE_NF4, K, N, bs)) goto out;
    void *buf = model_alloc(h->m, tensor_nbytes(&t), canon);
    if (!buf) goto out;
    nf4_fill(&t, buf, wt->data, absmax);
    ret = model_add_tensor(h->m, &t);
out:
    free(absmax);
    json_decref(j);
    (void)mod;
    return ret;
}

/* bitsandbytes Int8Params module -> one DTYPE_I8ROW tensor */
static int load_bnb8(struct hf_load *h, const char *mod, const struct safetensors_tensor *wt,
                     const char *canon) {
    int64_t K, N;
    if (!linear_shape(h, canon, &K, &N))
        return err("%s: %s: lowbit has no quantized slot for %s", h->dir, wt->name, canon);
    const struct safetensors_tensor *scb;
    if (!need(h, mod, "weight", SAFETENSORS_I8, N, K, "int8 rows [out_features, in_features]") ||
        !(scb = need(h, mod, "SCB", SAFETENSORS_F32, N, -1, "one fp32 row absmax per output")))
        return -1;
    char name[512];
    snprintf(name, sizeof name, "%sweight_format", mod);
    const struct safetensors_tensor *wf = find_any(h, name);
    if (wf && (wf->nbytes != 1 || ((const uint8_t *)wf->data)[0] != 0))
        return err("%s: %s is not 0 (only the row-major int8 layout is supported)", h->dir, name);
    struct tensor t;
    if (i8row_tensor_init(&t, canon, K, N)) return -1;
    void *buf = model_alloc(h->m, tensor_nbytes(&t), canon);
    if (!buf) return -1;
    t.data = buf;
    memcpy(buf, wt->data, (size_t)(N * K));
    float *dst = nf4_absmax(&t);
    for (int64_t i = 0; i < N; i++) {
        dst[i] = float_at(scb, i);
        if (!isfinite(dst[i]))
            return err("%s: %sSCB[%lld] is %s (must be finite)", h->dir, mod, (long long)i,
                       isnan(dst[i]) ? "NaN" : "Inf");
    }
    return model_add_tensor(h->m, &t);
}

/* element i of an I8 or I16 tensor */
static int64_t int_at(const struct safetensors_tensor *s, int64_t i) {
    const uint8_t *p = s->data;
    if (s->dtype == SAFETENSORS_I8) return (int8_t)p[i];
    return (int16_t)(uint16_t)(p[2 * i] | p[2 * i + 1] << 8);
}

/* a checkpoint tensor of rank nd and shape want (when ones_ok, a shape [want[0], 1, ...] of any
 * rank also passes: scales written as [O] or [O, 1, 1, 1]); NULL with a message otherwise */
static const struct safetensors_tensor *need_shape(const struct hf_load *h, const char *mod,
                                                   const char *suffix, int nd, const int64_t *want,
                                                   bool ones_ok, const char *why) {
    char name[512];
    snprintf(name, sizeof name, "%s%s", mod, suffix);
    const struct safetensors_tensor *s = find_any(h, name);
    if (!s) {
        err("%s: %s is missing (%s)", h->dir, name, why);
        return NULL;
    }
    bool ok = s->n_dims == nd;
    for (int d = 0; ok && d < nd; d++) ok = s->shape[d] == want[d];
    if (!ok && ones_ok && s->n_dims >= 1 && s->shape[0] == want[0]) {
        ok = true;
        for (int d = 1; d < s->n_dims; d++) ok &= s->shape[d] == 1;
    }
    if (ok) return s;
    char got[128] = "", exp[128] = "";
    for (int d = 0; d < s->n_dims && d < 8; d++)
        snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? ", " : "",
                 (long long)s->shape[d]);
    for (int d = 0; d < nd; d++)
        snprintf(exp + strlen(exp), sizeof exp - strlen(exp), "%s%lld", d ? ", " : "",
                 (long long)want[d]);
    err("%s: %s is [%s] (expected [%s]: %s)", h->dir, name, got, exp, why);
    return NULL;
}

/* AQLM module P -> one DTYPE_AQLM tensor named canon */
static int load_aqlm(struct hf_load *h, const char *mod, const char *canon) {
    int64_t K, N;
    if (!linear_shape(h, canon, &K, &N))
        return err("%s: %scodes: lowbit has no quantized slot for %s", h->dir, mod, canon);
    const int M = h->q.aq_m, B = h->q.aq_b, gi = h->q.aq_gi, go = h->q.aq_go;
    char why[200];
    snprintf(why, sizeof why, "AQLM %dx%d, in_group_size %d, out_group_size %d, in_features %lld, "
             "out_features %lld", M, B, gi, go, (long long)K, (long long)N);
    char what[600];
    snprintf(what, sizeof what, "%s: %scodes", h->dir, mod);
    if (aqlm_check_layout(what, K, N, M, B, gi, go)) return -1;
    const int64_t O = N / go, J = K / gi, S = (int64_t)1 << B;
    const int64_t s_codes[3] = {O, J, M}, s_cb[4] = {M, S, go, gi}, s_sc[4] = {O, 1, 1, 1};
    const struct safetensors_tensor *qc, *cb, *sc;
    if (!(qc = need_shape(h, mod, "codes", 3, s_codes, false, why)) ||
        !(cb = need_shape(h, mod, "codebooks", 4, s_cb, false, why)) ||
        !(sc = need_shape(h, mod, "scales", 4, s_sc, true, why)))
        return -1;
    const enum safetensors_dtype cdt = B <= 8 ? SAFETENSORS_I8 : SAFETENSORS_I16;
    if (qc->dtype != cdt)
        return err("%s: %scodes has dtype %s (expected %s for %d-bit codes)", h->dir, mod,
                   safetensors_dtype_name(qc->dtype), safetensors_dtype_name(cdt), B);
    const struct safetensors_tensor *fl[2] = {cb, sc};
    for (int i = 0; i < 2; i++)
        if (fl[i]->dtype != SAFETENSORS_F16 && fl[i]->dtype != SAFETENSORS_BF16 &&
            fl[i]->dtype != SAFETENSORS_F32)
            return err("%s: %s has dtype %s (expected F16, BF16 or F32)", h->dir, fl[i]->name,
                       safetensors_dtype_name(fl[i]->dtype));
    struct tensor t;
    if (aqlm_tensor_init(&t, canon, K, N, M, B, gi, go)) return -1;
    void *buf = model_alloc(h->m, tensor_nbytes(&t), canon);
    if (!buf) return -1;
    t.data = buf;
    /* pack_int_data stores codes >= 2^(B−1) minus 2^B; unpack_int_data reads them mod 2^B */
    const int64_t lo = -(S / 2), hi = S - 1;
    for (int64_t o = 0; o < O; o++)
        for (int64_t j = 0; j < J; j++)
            for (int m = 0; m < M; m++) {
                const int64_t v = int_at(qc, (o * J + j) * M + m);
                if (v < lo || v > hi)
                    return err("%s: %scodes[%lld][%lld][%d] = %lld is out of range for %d-bit "
                               "codes (expected %lld to %lld)", h->dir, mod, (long long)o,
                               (long long)j, m, (long long)v, B, (long long)lo, (long long)hi);
                aqlm_code_set(&t, o, j, m, (unsigned)(v < 0 ? v + S : v));
            }
    float *dcb = aqlm_codebooks(&t), *dsc = aqlm_scales(&t);
    for (int64_t i = 0; i < M * S * go * gi; i++) {
        dcb[i] = float_at(cb, i);
        if (!isfinite(dcb[i]))
            return err("%s: %scodebooks value %lld is %s (must be finite)", h->dir, mod,
                       (long long)i, isnan(dcb[i]) ? "NaN" : "Inf");
    }
    for (int64_t o = 0; o < O; o++) {
        dsc[o] = float_at(sc, o);
        if (!isfinite(dsc[o]))
            return err("%s: %sscales[%lld] is %s (must be finite)", h->dir, mod, (long long)o,
                       isnan(dsc[o]) ? "NaN" : "Inf");
    }
    return model_add_tensor(h->m, &t);
}

/* a tensor of a quantized checkpoint: 1 = handled (a module added, or a companion tensor its
 * module consumes), 0 = an ordinary tensor, -1 = error */
static int add_quant(struct hf_load *h, const struct safetensors *st,
                     const struct safetensors_tensor *s) {
    const char *nm = s->name;
    char mod[400], wname[512], canon[TENSOR_NAME_MAX];
    /* GPTQ/AWQ: P.qweight + P.qzeros, P.scales, P.g_idx; AQLM: P.codes + P.codebooks, P.scales.
     * The first part names the module; each companion needs it beside it. */
    static const char *const qint_parts[] = {"qweight", "qzeros", "scales", "g_idx"};
    static const char *const aqlm_parts[] = {"codes", "codebooks", "scales"};
    const bool aqlm = h->q.method == HFQ_AQLM;
    if (aqlm || h->q.method == HFQ_GPTQ || h->q.method == HFQ_AWQ) {
        const char *const *parts = aqlm ? aqlm_parts : qint_parts;
        const size_t n_parts = aqlm ? LB_ARRAY_LEN(aqlm_parts) : LB_ARRAY_LEN(qint_parts);
        for (size_t i = 0; i < n_parts; i++) {
            if (!ends_with(nm, parts[i]) || strlen(nm) <= strlen(parts[i]) ||
                nm[strlen(nm) - strlen(parts[i]) - 1] != '.')
                continue;
            snprintf(mod, sizeof mod, "%.*s", (int)(strlen(nm) - strlen(parts[i])), nm);
            if (i) { /* a companion: its module must have the first part */
                snprintf(wname, sizeof wname, "%s%s", mod, parts[0]);
                if (!find_any(h, wname))
                    return err("%s: %s has no %s beside it", st->path, nm, wname);
                return 1;
            }
            snprintf(wname, sizeof wname, "%sweight", mod);
            int rc = map_name(h, st->path, wname, canon, sizeof canon);
            if (rc <= 0) return rc < 0 ? -1 : 1;
            return (aqlm ? load_aqlm(h, mod, canon) : load_qint(h, mod, canon)) ? -1 : 1;
        }
        return 0;
    }
    if (h->q.method != HFQ_BNB) return 0;
    const char *w = strstr(nm, ".weight.");
    if (w && (strstr(w, ".absmax") || strstr(w, ".quant_map") || strstr(w, ".nested_") ||
              strstr(w, ".quant_state."))) {
        snprintf(wname, sizeof wname, "%.*s", (int)(w - nm + 7), nm);
        if (!find_any(h, wname)) return err("%s: %s has no %s beside it", st->path, nm, wname);
        return 1;
    }
    if (ends_with(nm, ".SCB") || ends_with(nm, ".weight_format")) return 1;
    if (!ends_with(nm, ".weight")) return 0;
    snprintf(mod, sizeof mod, "%.*s", (int)(strlen(nm) - 6), nm);
    char qsn[600];
    snprintf(qsn, sizeof qsn, "%s.quant_state.bitsandbytes__nf4", nm);
    const struct safetensors_tensor *qs = find_any(h, qsn);
    bool fp4 = false;
    if (!qs) {
        snprintf(qsn, sizeof qsn, "%s.quant_state.bitsandbytes__fp4", nm);
        qs = find_any(h, qsn);
        fp4 = qs != NULL;
    }
    snprintf(wname, sizeof wname, "%sSCB", mod);
    const bool int8 = find_any(h, wname) != NULL;
    if (!qs && !int8) {
        if (s->dtype == SAFETENSORS_U8 || s->dtype == SAFETENSORS_I8)
            return err("%s: %s is %s but has neither a quant_state nor an SCB beside it", st->path,
                       nm, safetensors_dtype_name(s->dtype));
        return 0; /* a module left in floating point */
    }
    int rc = map_name(h, st->path, nm, canon, sizeof canon);
    if (rc <= 0) return rc < 0 ? -1 : 1;
    if (qs) return load_bnb4(h, mod, s, qs, fp4, canon) ? -1 : 1;
    return load_bnb8(h, mod, s, canon) ? -1 : 1;
}

/* ===== weights ===== */

/* Mixtral's model.layers.N.block_sparse_moe.experts.E.w{1,2,3}.weight: copied into slice E of
 * blk.N.ffn_{gate,down,up}_exps.weight (made, zeroed, at the first expert seen; same dtype for
 * all). 1 = handled, 0 = not an expert tensor, -1 = error. */
static int add_expert(struct hf_load *h, const struct safetensors *st,
                      const struct safetensors_tensor *s) {
    struct model *m = h->m;
    const struct model_config *c = &m->cfg;
    int layer, e, pos = 0;
    if (h->q.method != HFQ_NONE) return 0; /* quantized: one tensor per expert (layer_suffix) */
    if (c->n_expert <= 0 || sscanf(s->name, "model.layers.%d.%n", &layer, &pos) != 1 || !pos)
        return 0;
    const int k = expert_name(s->name + pos, &e); /* gate, up, down */
    if (k < 0) return 0;
    if (layer < 0 || layer >= c->n_layers || e >= c->n_expert)
        return err("%s: tensor '%s' is beyond the config's %d layers or %d experts", st->path,
                   s->name, c->n_layers, c->n_expert);
    const enum dtype type = s->dtype == SAFETENSORS_F32    ? DTYPE_F32
                            : s->dtype == SAFETENSORS_F16  ? DTYPE_F16
                            : s->dtype == SAFETENSORS_BF16 ? DTYPE_BF16
                                                           : DTYPE_COUNT;
    if (type == DTYPE_COUNT)
        return err("%s: tensor '%s' has dtype %s (lowbit reads F32, F16 or BF16 experts)",
                   st->path, s->name, safetensors_dtype_name(s->dtype));
    const int64_t He = c->expert_hidden, D = c->dim;
    const int64_t K = k == 2 ? He : D, N = k == 2 ? D : He; /* ne [K, N] */
    if (s->n_dims != 2 || s->shape[0] != N || s->shape[1] != K)
        return err("%s: tensor '%s' is not [%lld, %lld]", st->path, s->name, (long long)N,
                   (long long)K);
    if (!h->exp_seen) {
        const size_t n = (size_t)c->n_layers * 3;
        h->exp_seen = calloc(n * (size_t)c->n_expert, 1);
        h->exp_buf = calloc(n, sizeof *h->exp_buf);
        if (!h->exp_seen || !h->exp_buf) return err("out of memory");
    }
    const size_t slot = (size_t)layer * 3 + (size_t)k;
    uint8_t *seen = &h->exp_seen[slot * (size_t)c->n_expert + (size_t)e];
    if (*seen) return err("%s: tensor '%s' appears twice", st->path, s->name);
    static const char *const kinds[3] = {"ffn_gate", "ffn_up", "ffn_down"};
    char name[TENSOR_NAME_MAX];
    snprintf(name, sizeof name, "blk.%d.%s_exps.weight", layer, kinds[k]);
    if (!h->exp_buf[slot]) {
        const int64_t ne[3] = {K, N, c->n_expert};
        struct tensor t;
        if (tensor_init(&t, name, type, 3, ne)) return -1;
        if (!(t.data = h->exp_buf[slot] = model_alloc(m, tensor_nbytes(&t), name))) return -1;
        if (model_add_tensor(m, &t)) return -1;
    }
    const struct tensor *t = model_find_tensor(m, name);
    if (t->type != type)
        return err("%s: tensor '%s' is %s but expert 0..%d of its kind were %s", st->path,
                   s->name, safetensors_dtype_name(s->dtype), c->n_expert - 1,
                   dtype_get(t->type)->name);
    memcpy((uint8_t *)t->data + (size_t)e * s->nbytes, s->data, s->nbytes);
    *seen = 1;
    return 1;
}

/* every expert of every layer was there (add_expert) */
static int experts_complete(const struct hf_load *h) {
    const struct model_config *c = &h->m->cfg;
    if (c->n_expert <= 0 || h->q.method != HFQ_NONE) return 0; /* per-expert: model_bind checks */
    static const char *const kind[3] = {"gate", "up", "down"};
    for (int l = 0; l < c->n_layers; l++)
        for (int k = 0; k < 3; k++)
            for (int e = 0; e < c->n_expert; e++)
                if (!h->exp_seen ||
                    !h->exp_seen[((size_t)l * 3 + (size_t)k) * (size_t)c->n_expert + (size_t)e])
                    return err("%s: layer %d's expert %d has no %s matrix (the config has %d "
                               "experts)", h->dir, l, e, kind[k], c->n_expert);
    return 0;
}


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
        int rc = h->q.method != HFQ_NONE ? add_quant(h, st, s) : 0;
        if (rc < 0) return -1;
        if (rc) continue;
        if ((rc = add_expert(h, st, s)) < 0) return -1;
        if (rc) continue;
        char name[TENSOR_NAME_MAX];
        rc = map_name(h, st->path, s->name, name, sizeof name);
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
        const size_t nl = strlen(name);
        if (m->cfg.post_norms && nl > 11 && !strcmp(name + nl - 11, "norm.weight")) {
            /* Gemma's norms multiply by 1 + w: stored as the multiplier (eval/model.h) */
            const int64_t n = tensor_nelements(&t);
            float *buf = model_alloc(m, (size_t)n * sizeof(float), name);
            if (!buf) return -1;
            for (int64_t r = 0; r < tensor_nrows(&t); r++)
                tensor_row_to_f32(&t, r, buf + r * t.ne[0]);
            for (int64_t k = 0; k < n; k++) buf[k] += 1.0f;
            t.data = buf;
            t.type = DTYPE_F32;
        }
        if (m->cfg.shared_hidden > 0 && t.n_dims == 2 && t.ne[1] == 1 && nl > 25 &&
            !strcmp(name + nl - 25, "ffn_gate_inp_shexp.weight"))
            t.n_dims = 1; /* qwen2moe's shared_expert_gate [1, D]: GGUF's [D] */
        const int fused = model_add_fused(m, &t); /* phi3's qkv_proj, gate_up_proj */
        if (fused < 0 || (!fused && model_add_tensor(m, &t))) return -1;
    }
    return 0;
}

/* map DIR/fname (kept by the model) and parse it into h->files */
static int open_file(struct hf_load *h, const char *fname) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", h->dir, fname);
    const uint8_t *map;
    size_t len;
    if (model_map_file(h->m, path, &map, &len)) return -1;
    struct safetensors *nf = realloc(h->files, (size_t)(h->n_files + 1) * sizeof *nf);
    if (!nf) return err("out of memory");
    h->files = nf;
    const char **nn = realloc(h->fnames, (size_t)(h->n_files + 1) * sizeof *nn);
    if (!nn) return err("out of memory");
    h->fnames = nn;
    if (safetensors_parse(&h->files[h->n_files], path, map, len)) return -1;
    h->fnames[h->n_files++] = fname;
    return 0;
}

/* add the tensors of every open file; with an index, check each shard holds what it lists */
static int add_all(struct hf_load *h) {
    for (int i = 0; i < h->n_files; i++) {
        const struct safetensors *st = &h->files[i];
        if (add_tensors(h, st, h->weight_map, h->fnames[i])) return -1;
        if (!h->weight_map) continue;
        const char *key;
        json_t *v;
        json_object_foreach(h->weight_map, key, v) {
            if (strcmp(json_string_value(v), h->fnames[i]) || safetensors_find(st, key)) continue;
            return err("%s: tensor '%s' is listed for this shard in model.safetensors.index.json "
                       "but the file does not hold it", st->path, key);
        }
    }
    return 0;
}

static void close_all(struct hf_load *h) {
    for (int i = 0; i < h->n_files; i++) safetensors_close(&h->files[i]);
    free(h->files);
    free(h->fnames);
    h->files = NULL;
    h->fnames = NULL;
    h->n_files = 0;
}

/* model.safetensors.index.json: check the weight_map, then load each shard once */
static int load_sharded(struct hf_load *h, const char *index_path) {
    json_error_t je;
    if (input_size_check(index_path, "the shard index")) return -1;
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
        if (open_file(h, files[j])) goto out;
    h->weight_map = wm;
    ret = add_all(h);
    h->weight_map = NULL;
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
    int rc;
    if (file_exists(single)) {
        rc = open_file(&h, "model.safetensors") || add_all(&h) ? -1 : 0;
    } else if (file_exists(index)) {
        rc = load_sharded(&h, index);
    } else {
        return err("%s: no weights: expected %s or %s (pytorch_model.bin is not read; convert it "
                   "to safetensors)", dir, single, index);
    }
    close_all(&h);
    if (!rc) rc = experts_complete(&h);
    free(h.exp_seen);
    free(h.exp_buf);
    if (rc) return -1;
    if (!h.tie && !model_find_tensor(m, "output.weight"))
        return err("%s: lm_head.weight is missing and tie_word_embeddings is false in %s", dir,
                   h.cfg_path);
    return model_bind(m);
}
