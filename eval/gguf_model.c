/* eval/gguf_model.c: a Llama-family model from a GGUF file (the layout llama.cpp writes).
 *
 * Metadata read (ARCH = general.architecture: llama, mistral, qwen2, qwen3, gemma2, gemma3, phi3):
 *   ARCH.embedding_length, .block_count, .feed_forward_length, .attention.head_count,
 *   .attention.head_count_kv (default head_count), .attention.key_length (default
 *   embedding/heads), .attention.layer_norm_rms_epsilon, .rope.freq_base (default 10000),
 *   .rope.dimension_count (must be the head dim: partial rotary is not supported), .context_length,
 *   ARCH.vocab_size (default token_embd rows); Mixtral: llama with ARCH.expert_count,
 *   .expert_used_count, blk.N.ffn_gate_inp.weight and blk.N.ffn_{gate,up,down}_exps.weight;
 *   qwen2moe: those with .expert_feed_forward_length, q/k/v biases, the weights not
 *   renormalized (llama.cpp's norm_w false; ARCH.expert_weights_norm true, which lowbit writes for
 *   norm_topk_prob and llama.cpp ignores, renormalizes them), and the shared expert (.expert_shared_feed_forward_
 *   length, blk.N.ffn_{gate,up,down}_shexp.weight, its gate blk.N.ffn_gate_inp_shexp.weight).
 * llama.cpp's converter permutes HF q/k rows to interleaved pairs for llama/mistral (ROPE_NORM);
 * qwen2 and qwen3 keep the HF half-split layout (ROPE_NEOX); qwen2 has q/k/v biases, qwen3 per-head
 * q/k norms (blk.N.attn_{q,k}_norm.weight) and no biases. Tensor data stays in the
 * mapping (zero copy); the open file is kept in m->gguf for the tokenizer.
 * gemma2/gemma3 as llama.cpp reads them (src/models/gemma2.cpp, gemma3.cpp): embeddings times
 * √dim, post-attention and post-MLP norms, gelu, half-split rotary rows; ARCH.attention.
 * sliding_window (gemma2 default 4096; gemma3 slides only when it is set) on the layers of
 * ARCH.attention.sliding_window_pattern (default 2 and 6); gemma2's ARCH.attn_logit_softcapping
 * and .final_logit_softcapping (defaults 50 and 30), gemma3's .final_logit_softcapping (default
 * none); the sliding layers' RoPE base ARCH.rope.freq_base_swa (gemma2: rope.freq_base, gemma3:
 * 10000); gemma3's ARCH.rope.scaling.factor (or .rope.scale_linear) on the full layers. The
 * attention scale is 1/√head_dim, except for the 27B shapes (46 and 62 blocks): 1/√(dim/heads).
 * phi3 as llama.cpp reads it (src/models/phi3.cpp): blk.N.attn_qkv.weight [D, qd + 2·kvd] (q, k,
 * v rows in that order; separate attn_q/k/v are read too) and blk.N.ffn_up.weight [D, 2H] (gate
 * rows, then up) split into the canonical tensors as views; half-split rotary rows; longrope's
 * rope_factors_long/short.weight [head_dim/2] chosen by the context against ARCH.rope.scaling.
 * original_context_length, ARCH.rope.scaling.attn_factor on cos and sin; ARCH.attention.
 * sliding_window is read and ignored, as llama.cpp ignores it ("Phi SWA is currently disabled"). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/gguf.h"
#include "eval/model.h"

static int get_int(const struct gguf_file *g, const char *arch, const char *key, int *out,
                   bool required, int64_t lo, int64_t hi) {
    char full[128];
    snprintf(full, sizeof full, "%s.%s", arch, key);
    int64_t v;
    int rc = gguf_get_int(g, full, &v);
    if (rc < 0) return -1;
    if (rc == 1) {
        if (required) return err("%s: missing metadata %s", g->path, full);
        return 0;
    }
    if (v < lo || v > hi)
        return err("%s: %s = %lld (expected %lld..%lld)", g->path, full, (long long)v,
                   (long long)lo, (long long)hi);
    *out = (int)v;
    return 0;
}

static int get_float(const struct gguf_file *g, const char *arch, const char *key, float *out) {
    char full[128];
    snprintf(full, sizeof full, "%s.%s", arch, key);
    double v;
    int rc = gguf_get_float(g, full, &v);
    if (rc < 0) return -1;
    if (rc == 0) *out = (float)v;
    return 0;
}

/* the gemma2/gemma3 keys and llama.cpp's defaults (the comment at the top) */
static int gemma_config(const struct gguf_file *g, const char *arch, struct model_config *c) {
    const bool gemma2 = !strcmp(arch, "gemma2");
    c->post_norms = c->gelu = true;
    c->embd_scale = sqrtf((float)c->dim);
    c->swa_window = gemma2 ? 4096 : 0;
    c->swa_pattern = gemma2 ? 2 : 6;
    c->attn_softcap = gemma2 ? 50.0f : 0;
    c->final_softcap = gemma2 ? 30.0f : 0;
    c->rope_theta_swa = gemma2 ? c->rope_theta : 10000.0f;
    float factor = 0;
    if (get_int(g, arch, "attention.sliding_window", &c->swa_window, false, 0, 1 << 24) ||
        get_int(g, arch, "attention.sliding_window_pattern", &c->swa_pattern, false, 0, 4096) ||
        get_float(g, arch, "attn_logit_softcapping", &c->attn_softcap) ||
        get_float(g, arch, "final_logit_softcapping", &c->final_softcap) ||
        get_float(g, arch, "rope.freq_base_swa", &c->rope_theta_swa) ||
        get_float(g, arch, "rope.scale_linear", &factor) ||
        get_float(g, arch, "rope.scaling.factor", &factor))
        return -1;
    if (!gemma2) c->attn_softcap = 0;
    if (!gemma2 && factor > 0) c->rope_linear = factor;
    if (c->n_layers == (gemma2 ? 46 : 62)) c->attn_scale = 1.0f / sqrtf((float)(c->dim / c->n_heads));
    return 0;
}

int model_load_gguf(struct model *m, const char *path) {
    m->format = MODEL_FORMAT_GGUF;
    m->gguf = calloc(1, sizeof *m->gguf);
    if (!m->gguf) return err("out of memory");
    struct gguf_file *g = m->gguf;
    if (gguf_open(g, path)) {
        free(m->gguf);
        m->gguf = NULL;
        return -1;
    }
    struct model_config *c = &m->cfg;
    char arch[32];
    int rc = gguf_get_str(g, "general.architecture", arch, sizeof arch);
    if (rc < 0) return -1;
    if (rc == 1) return err("%s: missing metadata general.architecture", path);
    if (strcmp(arch, "llama") && strcmp(arch, "mistral") && strcmp(arch, "qwen2") &&
        strcmp(arch, "qwen3") && strcmp(arch, "gemma2") && strcmp(arch, "gemma3") &&
        strcmp(arch, "phi3") && strcmp(arch, "qwen2moe"))
        return err("%s: unsupported architecture '%s' (lowbit runs llama, mistral, qwen2, qwen3, "
                   "gemma2, gemma3, phi3, qwen2moe)", path, arch);
    snprintf(c->arch, sizeof c->arch, "%s", arch);
    c->rope_style = model_gguf_keeps_hf_rope(c) ? ROPE_NEOX : ROPE_NORM;
    const bool qwen2moe = !strcmp(arch, "qwen2moe");
    c->qkv_bias = !strcmp(arch, "qwen2") || qwen2moe;
    const bool gemma2 = !strcmp(arch, "gemma2"), gemma3 = !strcmp(arch, "gemma3");
    c->qk_norm = !strcmp(arch, "qwen3") || gemma3;
    c->norm_eps = 1e-5f;
    c->rope_theta = 10000.0f;
    int rope_dims = 0;
    if (get_int(g, arch, "embedding_length", &c->dim, true, 1, 1 << 20) ||
        get_int(g, arch, "block_count", &c->n_layers, true, 1, 4096) ||
        get_int(g, arch, "feed_forward_length", &c->hidden_dim, true, 1, 1 << 22) ||
        get_int(g, arch, "attention.head_count", &c->n_heads, true, 1, 4096))
        return -1;
    c->n_kv_heads = c->n_heads;
    c->head_dim = c->dim % c->n_heads ? 0 : c->dim / c->n_heads;
    if (get_int(g, arch, "attention.head_count_kv", &c->n_kv_heads, false, 1, 4096) ||
        get_int(g, arch, "attention.key_length", &c->head_dim, false, 1, 4096) ||
        get_int(g, arch, "context_length", &c->ctx_len, false, 0, 1 << 24) ||
        get_int(g, arch, "rope.dimension_count", &rope_dims, false, 0, 4096) ||
        get_float(g, arch, "attention.layer_norm_rms_epsilon", &c->norm_eps) ||
        get_float(g, arch, "rope.freq_base", &c->rope_theta))
        return -1;
    if (c->head_dim == 0) /* no key_length and the heads do not divide the width */
        return err("%s: %s.embedding_length %d is not a multiple of %s.attention.head_count %d "
                   "(and there is no %s.attention.key_length)", path, arch, c->dim, arch,
                   c->n_heads, arch);
    if ((gemma2 || gemma3) && gemma_config(g, arch, c)) return -1;
    /* Mixtral: a "llama" file with experts (llama.cpp's llm_build_llama: softmax gating, the
     * chosen weights renormalized) */
    if (get_int(g, arch, "expert_count", &c->n_expert, false, 0, 1024) ||
        get_int(g, arch, "expert_used_count", &c->n_expert_used, false, 0, 1024))
        return -1;
    if (c->n_expert > 0 && strcmp(arch, "llama") && !qwen2moe)
        return err("%s: %s with %d experts is not supported (lowbit runs Mixtral-style experts in "
                   "llama files, and qwen2moe)", path, arch, c->n_expert);
    if (qwen2moe && c->n_expert <= 0)
        return err("%s: qwen2moe without %s.expert_count", path, arch);
    c->expert_hidden = c->n_expert > 0 ? c->hidden_dim : 0;
    /* llama.cpp's qwen2moe keeps the top-k softmax probabilities as they are (norm_w false) */
    c->expert_norm = c->n_expert > 0 && !qwen2moe;
    char key[96];
    snprintf(key, sizeof key, "%s.expert_weights_norm", arch); /* norm_topk_prob (not llama.cpp's) */
    if (qwen2moe && gguf_get_bool(g, key, &c->expert_norm) < 0) return -1;
    if (qwen2moe &&
        (get_int(g, arch, "expert_feed_forward_length", &c->expert_hidden, true, 1, 1 << 22) ||
         get_int(g, arch, "expert_shared_feed_forward_length", &c->shared_hidden, true, 1,
                 1 << 22)))
        return -1;
    if (model_fused_qkv(c) &&
        (get_int(g, arch, "rope.scaling.original_context_length", &c->rope_orig_ctx, false, 0,
                 1 << 24) ||
         get_float(g, arch, "rope.scaling.attn_factor", &c->rope_attn_factor)))
        return -1;
    char oh[128]; /* a rotated model's online transforms and activation clip (quant/rotate.h) */
    double clip;
    if ((rc = gguf_get_str(g, "lowbit.online_hadamard", oh, sizeof oh)) < 0 ||
        (!rc && model_online_had_parse(oh, &c->online_had, path)))
        return -1;
    if ((rc = gguf_get_float(g, "lowbit.act_clip", &clip)) < 0) return -1;
    if (!rc) c->act_clip = (float)clip;
    if (rope_dims && rope_dims != c->head_dim)
        return err("%s: %s.rope.dimension_count %d differs from the head dim %d (partial rotary "
                   "is not supported)", path, arch, rope_dims, c->head_dim);

    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const struct gguf_tensor_info *ti = &g->ti[i];
        char name[TENSOR_NAME_MAX];
        snprintf(name, sizeof name, "%.*s", (int)ti->name.len, ti->name.p);
        int dt = dtype_from_ggml((int)ti->ggml_type);
        if (dt < 0)
            return err("%s: tensor %s has GGUF type %u, which lowbit cannot compute with yet", path,
                       name, ti->ggml_type);
        struct tensor t;
        if (tensor_init(&t, name, (enum dtype)dt, (int)ti->n_dims, ti->ne)) return -1;
        t.data = (void *)(g->map + g->data_offset + ti->offset);
        const bool lr_long = !strcmp(name, "rope_factors_long.weight");
        if (!strcmp(name, "rope_freqs.weight") || lr_long ||
            !strcmp(name, "rope_factors_short.weight")) {
            if (t.type != DTYPE_F32 || t.ne[0] != c->head_dim / 2 || t.n_dims != 1)
                return err("%s: %s must be f32 [%d]", path, name, c->head_dim / 2);
            if (!strcmp(name, "rope_freqs.weight")) m->rope_freq_factors = t.data;
            else if (lr_long) m->rope_long = t.data;
            else m->rope_short = t.data;
            continue;
        }
        const int fused = model_add_fused(m, &t); /* phi3's attn_qkv, ffn_up [D, 2H] */
        if (fused < 0) return -1;
        if (fused) continue;
        if (model_add_tensor(m, &t)) return -1;
    }
    const struct tensor *emb = model_find_tensor(m, "token_embd.weight");
    if (!emb) return err("%s: missing tensor token_embd.weight", path);
    c->vocab_size = (int)emb->ne[1];
    if (get_int(g, arch, "vocab_size", &c->vocab_size, false, 1, 1 << 24)) return -1;
    return model_bind(m);
}
