/* eval/model.h: a Llama-family decoder's configuration and weights, whatever file they came from.
 *
 * Every loader (llama2c.c, gguf_model.c, hf.c) fills `cfg`, adds each weight under its canonical
 * GGUF name with model_add_tensor(), then calls model_bind(), which finds the tensors, checks every
 * shape against cfg, converts norms and biases to fp32 and refuses NaN/Inf weights. Canonical names
 * (ggml ne order, ne[0] innermost; D = dim, H = hidden_dim, V = vocab, hd = head_dim):
 *   token_embd.weight [D, V]        output_norm.weight [D]        output.weight [D, V] (optional:
 *   absent = tied to token_embd)    blk.N.attn_norm.weight [D]    blk.N.attn_q.weight [D, n_heads*hd]
 *   blk.N.attn_k.weight [D, n_kv*hd]  blk.N.attn_v.weight [D, n_kv*hd]
 *   blk.N.attn_output.weight [n_heads*hd, D]  blk.N.attn_{q,k,v}.bias (qwen2)
 *   blk.N.ffn_norm.weight [D]  blk.N.ffn_gate.weight [D, H]  blk.N.ffn_up.weight [D, H]
 *   blk.N.ffn_down.weight [H, D]
 *   blk.N.attn_q_norm.weight [hd]  blk.N.attn_k_norm.weight [hd] (qwen3, gemma3: per-head RMSNorm of
 *   q and k before RoPE, cfg.qk_norm)
 *   blk.N.post_attention_norm.weight [D]  blk.N.post_ffw_norm.weight [D] (gemma2/3: RMSNorm of the
 *   attention and MLP outputs before each residual add, cfg.post_norms; ffn_norm is then the
 *   pre-MLP norm)
 *   MoE (cfg.n_expert = E > 0, He = cfg.expert_hidden) instead of ffn_gate/up/down:
 *   blk.N.ffn_gate_inp.weight [D, E] (the router)  blk.N.ffn_gate_exps.weight [D, He, E]
 *   blk.N.ffn_up_exps.weight [D, He, E]  blk.N.ffn_down_exps.weight [He, D, E] (expert e's matrix
 *   is slice e, as GGUF stores them; an HF checkpoint's float experts are stacked into them, its
 *   quantized ones are blk.N.ffn_{gate,up,down}_exps.<e>.weight, one per expert)
 * Norm weights are multipliers, as GGUF stores them: Gemma's Hugging Face checkpoints store w for a
 * norm that multiplies by (1 + w), and their loader adds the 1 (as llama.cpp's converter does).
 * Rotary layout: llama2.c and GGUF "llama" files rotate interleaved pairs (2i, 2i+1) of each head
 * (ROPE_NORM); Hugging Face checkpoints keep q/k rows permuted so that pairs are (i, i+hd/2)
 * (ROPE_NEOX). Both give the same attention scores for the same model; the loader records which. */
#ifndef EVAL_MODEL_H
#define EVAL_MODEL_H
#include "kernels/tensor.h"

enum model_format { MODEL_FORMAT_LLAMA2C, MODEL_FORMAT_GGUF, MODEL_FORMAT_HF, MODEL_FORMAT_COUNT };
enum rope_style { ROPE_NORM, ROPE_NEOX };

struct model_config {
    char arch[32]; /* "llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3", "phi3", "qwen2moe" */
    int dim, hidden_dim, n_layers, n_heads, n_kv_heads, head_dim, vocab_size;
    int ctx_len; /* trained context length (0 = unknown) */
    float norm_eps, rope_theta;
    enum rope_style rope_style;
    bool qkv_bias;
    bool qk_norm; /* each head of q and k RMS-normalized (weight [hd]) before RoPE: qwen3, gemma3 */
    /* Gemma 2/3 (all 0/false for the others) */
    bool post_norms;    /* RMSNorm of the attention and MLP outputs before the residual adds */
    bool gelu;          /* FFN activation gelu (tanh approximation) instead of silu */
    float embd_scale;   /* token embeddings times this (√dim); 0 = 1 */
    float attn_scale;   /* q·k times this (query_pre_attn_scalar^-1/2); 0 = 1/√head_dim */
    float attn_softcap; /* scores → cap·tanh(score/cap) before the softmax (gemma2); 0 = none */
    float final_softcap; /* logits → cap·tanh(logit/cap); 0 = none */
    int swa_window;     /* sliding layers see keys j with pos − j < swa_window; 0 = no sliding */
    int swa_pattern;    /* layer l slides when l % swa_pattern < swa_pattern − 1 (llama.cpp's
                         * set_swa_pattern: gemma2 2, gemma3 6); 0 = every layer */
    float rope_theta_swa; /* the RoPE base of sliding layers (gemma3's rope_local_base_freq); 0 = rope_theta */
    float rope_linear;  /* full layers divide positions by this (linear rope scaling); 0 = 1 */
    /* Llama-3.1 "llama3" rope scaling; rope_factor 0 = none */
    float rope_factor, rope_low_freq_factor, rope_high_freq_factor;
    int rope_orig_ctx; /* llama3's original_max_position_embeddings; phi3's (longrope) too */
    /* Phi-3 "longrope" (formerly "su") scaling: the rotary cos and sin are multiplied by this
     * (attention_factor, sqrt(1 + ln(ctx/orig)/ln(orig)) by default); 0 = 1. Its per-frequency
     * divisors are the model's rope_long / rope_short. */
    float rope_attn_factor;
    /* mixture of experts (Mixtral: GGUF "llama" with ARCH.expert_count, HF "mixtral"): n_expert
     * experts of hidden size expert_hidden replace the MLP; a router picks n_expert_used per
     * token by softmax over all experts, and with expert_norm their weights are renormalized to
     * sum to 1 (Mixtral always) */
    int n_expert, n_expert_used, expert_hidden;
    bool expert_norm;
    /* qwen2moe's shared expert: a SwiGLU MLP of this hidden size that every token runs, its output
     * times sigmoid(x·w_gate) added to the experts'; 0 = none */
    int shared_hidden;
    /* rotated models (quant/rotate.h): bit i set = the forward pass applies an online Hadamard
     * transform R = H/√n to the input of linear i (enum lin: LIN_O, LIN_DOWN) before its matmul;
     * act_clip: the clipping ratio of activation quantization (compute a8/a4; 0 = 1) */
    unsigned online_had;
    float act_clip;
};

/* ---- the linears of a decoder block: one enum, one table ----
 * Every list of a block's linears (the forward and backward passes, the quantizers, the readers
 * and writers) is a loop over enum lin, in this order, which is the order lowbit's files list
 * them in (llama2.c files store w1 w2 w3 = gate down up: l2c_slot; writers that copy a model
 * keep its tensor order). Adding a linear is one enum value and one row of lin_info (model.c);
 * a fused file tensor (phi3's qkv_proj, gate_up_proj) is a reader/writer concern that maps onto
 * consecutive rows of several entries (their `out` sizes say where each one starts), and
 * per-expert linears would repeat the entries per expert, so no list is written out again. */
enum lin { LIN_Q, LIN_K, LIN_V, LIN_O, LIN_GATE, LIN_UP, LIN_DOWN, LIN_COUNT };

/* the sizes a linear's input (ne[0], K) and output (ne[1], N) take, from the config */
enum lin_dim { LIN_DIM_D, LIN_DIM_H, LIN_DIM_QD, LIN_DIM_KVD };

/* the stages of a decoder block (eval/forward.h documents them): a linear's input is ready at the
 * end of stage `stage`; the linears of one stage share that input */
enum fwd_stage { FWD_QKV, FWD_O, FWD_GATE_UP, FWD_DOWN, FWD_OUT, FWD_N_STAGES };
#define LIN_N_INPUTS FWD_OUT /* the distinct inputs of a block's linears (stages before FWD_OUT) */

struct lin_info {
    const char *gguf;     /* canonical (GGUF) name: blk.N.<gguf>.weight, blk.N.<gguf>.bias */
    const char *hf;       /* Hugging Face module: model.layers.N.<hf>.weight */
    int l2c_slot;         /* its place among the block linears of a llama2.c checkpoint */
    enum fwd_stage stage; /* whose end its input is ready at (the calibration driver's anchor) */
    enum lin_dim in, out; /* K = ne[0], N = ne[1] */
    bool attn;            /* in the attention half of the block */
    bool bias;            /* has a bias when cfg.qkv_bias (qwen2) */
    bool rope;            /* its output is rotated: HF checkpoints order its rows per head */
};
extern const struct lin_info lin_info[LIN_COUNT];

/* the first linear of stage st's group: the weight the hooks name for that input (st < FWD_OUT) */
enum lin lin_anchor(enum fwd_stage st);
/* the size d takes in config c */
int64_t lin_dim(const struct model_config *c, enum lin_dim d);
/* "blk.<l>.<gguf>.weight" into buf */
void lin_name(char *buf, size_t n, int l, enum lin i);
/* the linear whose canonical suffix (after "blk.N.") is s ("attn_q.weight"), or -1 */
int lin_by_suffix(const char *s);
/* online Hadamard rotations as text ("attn_output,ffn_down": the canonical names of the linears
 * whose input is rotated, enum lin order) ↔ model_config.online_had; parse: -1 with a message
 * naming `where` for any other name */
int model_online_had_parse(const char *s, unsigned *bits, const char *where);
void model_online_had_name(unsigned bits, char *buf, size_t size);
/* the linear a canonical tensor name ("blk.3.attn_q.weight") holds, or -1 (any other tensor) */
int lin_of_tensor(const char *name);
/* the heads of head_dim rows a rotated linear's output holds (n_heads for q, n_kv_heads for k);
 * 0 for i < 0 and the linears RoPE does not touch */
int lin_rope_heads(const struct model_config *c, int i);

struct layer {
    struct tensor attn_norm, ffn_norm;
    /* MoE (cfg.n_expert > 0; lin[LIN_GATE..LIN_DOWN] are then zeroed): the router [D, E], the
     * stacked experts exps[i - LIN_GATE] for i = LIN_GATE, LIN_UP, LIN_DOWN, and each expert's
     * 2-D slice of them, ex[e·3 + i − LIN_GATE] (views named blk.N.ffn_gate_exps.<e>.weight;
     * a quantized HF checkpoint has one tensor per expert under that name, and exps zeroed) */
    struct tensor router, exps[3];
    struct tensor *ex;
    /* qwen2moe (cfg.shared_hidden > 0): the shared expert's gate, up, down (blk.N.ffn_{gate,up,
     * down}_shexp.weight [D, Hs], [D, Hs], [Hs, D]) and its gate [D] (ffn_gate_inp_shexp, fp32) */
    struct tensor shexp[3], shexp_gate;
    struct tensor attn_post_norm, ffn_post_norm; /* [D] fp32 when cfg.post_norms, else zeroed */
    struct tensor q_norm, k_norm;  /* [hd] fp32 when cfg.qk_norm, else zeroed */
    struct tensor lin[LIN_COUNT];  /* enum lin */
    struct tensor bias[LIN_COUNT]; /* zeroed (data NULL) when absent */
};

struct model {
    struct model_config cfg;
    enum model_format format;
    char path[4096];
    struct tensor tok_embd, out_norm, output; /* output aliases tok_embd when tied */
    /* optional per-frequency RoPE divisors [head_dim/2] (GGUF rope_freqs.weight, Llama-3.1) */
    const float *rope_freq_factors;
    /* phi3 longrope divisors [head_dim/2] (GGUF rope_factors_long/short.weight, HF rope_scaling
     * long_factor/short_factor): a forward whose context exceeds cfg.rope_orig_ctx rotates with
     * the long ones, any other with the short ones (llama.cpp's choice by context size), or NULL */
    const float *rope_long, *rope_short;
    bool tied_output;
    struct layer *layers;

    /* every tensor the loader added, by canonical name (borrowed data) */
    struct tensor *tensors;
    int n_tensors, cap_tensors;
    /* storage released by model_release: owned buffers and mapped files */
    void **bufs;
    int n_bufs, cap_bufs;
    struct model_map {
        void *addr;
        size_t len;
    } *maps;
    int n_maps, cap_maps;
    /* for the tokenizer of GGUF files (vocab in the metadata): the open file, or NULL */
    struct gguf_file *gguf;
};

#define MODEL_INIT {0}

/* Load any supported model file or directory: a GGUF file, a llama2.c checkpoint (legacy, ak42
 * v1/v2), or a Hugging Face directory (config.json + safetensors). -1 with one clear message on
 * any problem; m is then released. */
int model_load(struct model *m, const char *path);
void model_release(struct model *m);

/* ---- for loaders ---- */
/* copy t (data borrowed from m's storage) into the tensor list; a duplicate name is an error */
int model_add_tensor(struct model *m, const struct tensor *t);
const struct tensor *model_find_tensor(const struct model *m, const char *name);
/* an owned, zeroed buffer of n bytes freed with the model; NULL (with a message) when out of memory */
void *model_alloc(struct model *m, size_t n, const char *what);
/* map a whole file read-only; the mapping is released with the model */
int model_map_file(struct model *m, const char *path, const uint8_t **addr, size_t *len);
/* the caller is done with t's bytes for now: when they lie in one of m's mapped files, the whole
 * pages inside them leave the process's resident set (madvise MADV_DONTNEED; a later read maps
 * them in again from the file). Nothing for owned buffers. */
void model_drop_pages(const struct model *m, const struct tensor *t);
/* the same for the n bytes at p (no-op when they are not in one of m's maps) */
void model_drop_range(const struct model *m, const void *p, size_t n);
/* check cfg, find and check every tensor, convert norms/biases to fp32, refuse NaN/Inf */
int model_bind(struct model *m);

int model_load_llama2c(struct model *m, const char *path);
int model_load_gguf(struct model *m, const char *path);
int model_load_hf(struct model *m, const char *dir);

/* phi3 keeps q, k, v in one fused file tensor (GGUF attn_qkv, HF self_attn.qkv_proj) and gate, up
 * in another (GGUF ffn_up [D, 2H], HF mlp.gate_up_proj; gate rows first): the loaders add each part
 * under its canonical name as a view of the fused rows (model_add_row_split), and the writers fuse
 * them again */
bool model_fused_qkv(const struct model_config *c);
/* add the row ranges of `fused` (a 2-D tensor of n_parts parts of rows[i] rows each, rows summing
 * to its ne[1]) as tensors names[i]: views of its data when its rows are independent (every dtype
 * but the parametric ones), else -1 with a message naming the tensor */
int model_add_row_split(struct model *m, const struct tensor *fused, const char *const *names,
                        const int64_t *rows, int n_parts);
/* phi3: when t is a fused tensor (blk.N.attn_qkv.weight; blk.N.ffn_up.weight of 2H rows, or the
 * HF reader's blk.N.ffn_gate_up.weight), add its parts (q, k, v; gate, up) and return 1; 0 when t
 * is no fused tensor (the caller adds it), -1 on error */
int model_add_fused(struct model *m, const struct tensor *t);
/* the GGUF form of c's architecture keeps Hugging Face's half-split rotary rows (ROPE_NEOX): every
 * architecture but llama and mistral, whose GGUF q/k rows llama.cpp's converter permutes to
 * interleaved pairs */
bool model_gguf_keeps_hf_rope(const struct model_config *c);
/* layer l attends through a sliding window (cfg.swa_window, swa_pattern) */
bool model_layer_swa(const struct model_config *c, int l);

/* expert e's matrix of linear i (LIN_GATE, LIN_UP, LIN_DOWN) in layer L of a MoE model */
static inline const struct tensor *model_expert(const struct layer *L, int e, enum lin i) {
    return &L->ex[e * 3 + (i - LIN_GATE)];
}
/* parameters a token uses (the router, n_expert_used of the experts, everything else), for MoE;
 * model_n_params() otherwise */
int64_t model_n_active_params(const struct model *m);
/* parameter count (all weights) and storage bytes of the weights as loaded */
int64_t model_n_params(const struct model *m);
size_t model_weight_bytes(const struct model *m);
const char *model_format_name(enum model_format f);
#endif
