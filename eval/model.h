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
 * Rotary layout: llama2.c and GGUF "llama" files rotate interleaved pairs (2i, 2i+1) of each head
 * (ROPE_NORM); Hugging Face checkpoints keep q/k rows permuted so that pairs are (i, i+hd/2)
 * (ROPE_NEOX). Both give the same attention scores for the same model; the loader records which. */
#ifndef EVAL_MODEL_H
#define EVAL_MODEL_H
#include "kernels/tensor.h"

enum model_format { MODEL_FORMAT_LLAMA2C, MODEL_FORMAT_GGUF, MODEL_FORMAT_HF, MODEL_FORMAT_COUNT };
enum rope_style { ROPE_NORM, ROPE_NEOX };

struct model_config {
    char arch[32]; /* "llama", "mistral", "qwen2" */
    int dim, hidden_dim, n_layers, n_heads, n_kv_heads, head_dim, vocab_size;
    int ctx_len; /* trained context length (0 = unknown) */
    float norm_eps, rope_theta;
    enum rope_style rope_style;
    bool qkv_bias;
    /* Llama-3.1 "llama3" rope scaling; rope_factor 0 = none */
    float rope_factor, rope_low_freq_factor, rope_high_freq_factor;
    int rope_orig_ctx;
};

struct layer {
    struct tensor attn_norm, wq, wk, wv, wo, bq, bk, bv, ffn_norm, w_gate, w_up, w_down;
};

struct model {
    struct model_config cfg;
    enum model_format format;
    char path[4096];
    struct tensor tok_embd, out_norm, output; /* output aliases tok_embd when tied */
    /* optional per-frequency RoPE divisors [head_dim/2] (GGUF rope_freqs.weight, Llama-3.1) */
    const float *rope_freq_factors;
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
/* check cfg, find and check every tensor, convert norms/biases to fp32, refuse NaN/Inf */
int model_bind(struct model *m);

int model_load_llama2c(struct model *m, const char *path);
int model_load_gguf(struct model *m, const char *path);
int model_load_hf(struct model *m, const char *dir);

/* parameter count (all weights) and storage bytes of the weights as loaded */
int64_t model_n_params(const struct model *m);
size_t model_weight_bytes(const struct model *m);
const char *model_format_name(enum model_format f);
#endif
