/* eval/forward.h: the batched decoder forward pass (prefill) with a KV cache.
 *
 * forward() runs n_tok tokens at positions pos0 .. pos0+n_tok-1 through the model, appending their
 * keys and values to the cache, attending causally to every cached position < its own, and writes
 * the fp32 logits of each position: logits[t*vocab + v] (the distribution of the token after
 * tokens[t]). Scoring a text is one call from pos0 = 0; generation is one call per token; prefix
 * sharing (the same context for several continuations) is a call for the context, then
 * fwd_truncate() back to its length before each continuation.
 * Shapes: T = n_tok, D = dim, hd = head_dim, kvd = n_kv_heads*hd. The cache holds fp32 K and V
 * per layer in kernels/attention.h's layout: keys transposed [n_kv_heads][hd][ldk], values
 * [n_kv_heads][n_ctx][ldv]. Scratch is sized for max_batch tokens per call; longer calls are
 * processed in max_batch pieces. Results are identical for any thread count. */
#ifndef EVAL_FORWARD_H
#define EVAL_FORWARD_H
#include <math.h>

#include "eval/model.h"
#include "kernels/matmul.h"    /* struct kscratch */
#include "kernels/matmul_i8.h" /* enum compute_dtype */

struct fwd_state {
    const struct model *m;
    int n_ctx, max_batch;
    int n_past; /* positions held in the cache */
    float *k_cache, *v_cache;
    int64_t ldk, ldv, kt_head, v_head; /* the cache layout (kernels/attention.h) */
    /* scratch, max_batch rows each */
    float *x, *xn, *q, *k, *v, *up;
    float *carry; /* [max_batch][max(qd, H)]: the attention output, then the FFN activation */
    /* MoE scratch (cfg.n_expert > 0): router logits [max_batch][E], each token's chosen experts
     * and their weights [max_batch][n_expert_used], one expert's tokens (rows, weights
     * [max_batch]), inputs [max_batch][D], activations [max_batch][He] x2, one expert's outputs
     * and the sum [max_batch][D] */
    float *moe_logits, *moe_w, *moe_wt, *moe_x, *moe_g, *moe_u, *moe_y, *moe_o;
    int *moe_sel, *moe_rows;
    int n_cache_layers; /* n_layers (fwd_init) or 1 (fwd_init_block) */
    bool in_stage;      /* inside fwd_block_stage: the matmuls do not call mm_hook */
    /* MoE calibration (quant/gptq.c): inside fwd_block_stage's FWD_OUT, mm_hook sees each
     * expert's gate (its input: the post-norm rows of the tokens routed to it, gathered in token
     * order; up has the same input and is not shown), each expert's down (its intermediate
     * activations, the same rows) and the shared expert's gate and down (every token); never the
     * router. false (fwd_init's): a stage shows only its anchor's input. */
    bool hook_experts;
    /* while mm_hook sees an expert's input (hook_experts): the weight each of its T rows' output
     * is multiplied by in the block's output (a routed expert: the token's router weight; the
     * shared expert: its sigmoid gate), [T]; NULL otherwise (quant/awq.c weighs its loss by it) */
    const float *hook_rw;
    float *rope_cos, *rope_sin; /* [n_ctx][hd/2] */
    float *rope_cos_swa, *rope_sin_swa; /* the sliding layers' own table (gemma3), or NULL */
    /* FLOPs of the matmuls and attention done so far (for GFLOP/s reports) */
    double flops;
    /* optional: called with every layer matmul's input x [T][K] before the product (K =
     * w->ne[0]; not for the output layer); nonzero makes forward() fail with its message */
    int (*mm_hook)(void *ctx, const struct tensor *w, const float *x, int T);
    void *mm_hook_ctx;
    bool hook_failed;
    /* optional: when > 0, run only layers [0, layer_limit) (calibration passes that need one
     * block's inputs: quant/gptq.c); forward() then refuses logits. 0 (fwd_init's) = all layers.
     * The cache of the skipped layers is left stale: fwd_truncate() before the next full pass. */
    int layer_limit;
    /* the matmuls' arithmetic (set after fwd_init; COMPUTE_FP32 by default). bf16: matmul_bf16
     * (bf16 products, fp32 sums, fp32 output) for f32/f16/bf16 weights, for the other weight
     * types inputs rounded (RNE) to bf16 around matmul; fp16: inputs and outputs of the matmul
     * rounded (RNE) to fp16 around an fp32-accumulating matmul; int8: matmul_i8 where the weight allows it (matmul_i8_tensor_ok),
     * else fp32. Counts of the matmul calls made so far, of those done in int8 (the rest fell back
     * to fp32), and of those done by matmul_bf16. */
    enum compute_dtype compute;
    long n_mm, n_mm_int8, n_mm_bf16;
    float *xh; /* fp16/bf16: the rounded input, [max_batch][max(D, qd, H)] */
    size_t xh_floats;
    bool mm_failed;
    /* the kernels' scratch, planned by fwd_init for this model, max_batch and lb_threads(): the
     * calls of a forward allocate nothing (kernels/matmul.h, struct kscratch) */
    struct kscratch ws;
};

int fwd_init(struct fwd_state *s, const struct model *m, int n_ctx, int max_batch);

/* ---- one block at a time (the calibration driver, quant/calib.h) ----
 * A decoder block in five stages, each ending where a group of its linears takes its input:
 *   FWD_QKV      xn = rmsnorm(x)·w_attn_norm                       (input of q, k, v)
 *   FWD_O        q,k,v = xn·W (+ b); RoPE; attention -> carry       (input of o)
 *   FWD_GATE_UP  x += carry·Woᵀ; xn = rmsnorm(x)·w_ffn_norm         (input of gate, up)
 *   FWD_DOWN     carry = silu(xn·Wgateᵀ) ⊙ xn·Wupᵀ                  (input of down)
 *   FWD_OUT      x += carry·Wdownᵀ                                  (x is the block's output)
 * Run in order, the stages are exactly the block forward() computes (the same functions), so a
 * stage reads whatever weights the layer slot holds when it runs: a quantizer can quantize q, k, v
 * after FWD_QKV and the later stages see the quantized weights (true-sequential). */
/* enum fwd_stage is defined in eval/model.h, beside the table of linears (lin_info[].stage) */
/* a state for fwd_block_stage only: the KV cache of one block, windows of up to n_ctx tokens
 * (forward() on it is an error) */
int fwd_init_block(struct fwd_state *s, const struct model *m, int n_ctx);
/* stage st of block l for one independent window of T <= max_batch tokens at positions 0..T−1:
 * x [T][D] the residual stream (updated by FWD_GATE_UP and FWD_OUT), carry [T][max(qd, H)]. At
 * the end the stage's linear input is handed to mm_hook with the group's first weight as w
 * (lin[lin_anchor(st)]: q, o, gate, down; none for FWD_OUT); the matmuls inside do not call the
 * hook. -1 with a message (bad arguments, out of memory, the hook's failure). */
int fwd_block_stage(struct fwd_state *s, int l, enum fwd_stage st, float *x, float *carry, int T);
/* the rotary tables forward() uses, cos_t/sin_t [n_ctx][head_dim/2] (caller-allocated): angle
 * p·inv_freq(i) in double (Llama-3.1 scaling and GGUF rope_freqs included), stored as fp32; also
 * for eval/grad.c, whose block forward must rotate exactly as forward() does */
void fwd_rope_table(const struct model *m, int n_ctx, float *cos_t, float *sin_t);
/* the sliding layers rotate with tables of their own (gemma3's rope_local_base_freq, no linear
 * scaling): fwd_rope_table_swa fills them as fwd_rope_table does; the other layers' tables serve
 * them when fwd_rope_swa_differs is false */
bool fwd_rope_swa_differs(const struct model_config *c);
void fwd_rope_table_swa(const struct model *m, int n_ctx, float *cos_t, float *sin_t);
/* x [dim] = the embedding of token as forward() feeds it to block 0 (gemma: times embd_scale) */
void fwd_embed(const struct model *m, int token, float *x);
/* gelu, tanh approximation (transformers' gelu_pytorch_tanh), in double: the gemma FFN's */
static inline float fwd_gelu_tanh(float x) {
    const double u = 0.7978845608028654 * ((double)x + 0.044715 * (double)x * x * x);
    return (float)(0.5 * x * (1.0 + tanh(u)));
}
/* a MoE router's choice for one token from its logits lg [n_expert]: softmax over all experts
 * (double), the n_expert_used most probable into sel [n_expert_used] in descending order (the lower
 * index on ties), their probabilities into w, renormalized to sum 1 with expert_norm (Mixtral:
 * = softmax over the chosen logits; qwen2moe: norm_topk_prob); also for eval/grad.c */
void fwd_moe_route(int n_expert, int n_expert_used, bool expert_norm, const float *lg, int *sel,
                   float *w);
/* the weight matmuls of a forward pass (every layer's 7 plus the output layer): how many of
 * them int8 compute runs in int8 (*n_int8) out of *n_total */
void fwd_int8_coverage(const struct model *m, int *n_int8, int *n_total);
void fwd_release(struct fwd_state *s);
/* forget cached positions >= n_past (n_past <= s->n_past) */
void fwd_truncate(struct fwd_state *s, int n_past);
/* tokens must be in [0, vocab); pos0 must equal s->n_past; pos0 + n_tok <= n_ctx. logits may be
 * NULL (only the cache is filled), or point to n_tok*vocab floats; with last_only, only the last
 * position's logits are computed (vocab floats). -1 with a message on bad arguments. */
int forward(struct fwd_state *s, const int *tokens, int n_tok, float *logits, bool last_only);

/* log-softmax of one row of logits in place-independent form: returns log p(target) and, when
 * argmax is not NULL, the index of the largest logit (lowest index on ties) */
double logprob_of(const float *logits, int vocab, int target, int *argmax);
/* full log-softmax of a row into out (double precision accumulation) */
void log_softmax(const float *logits, int vocab, float *out);
#endif
