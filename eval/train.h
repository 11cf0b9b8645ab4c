/* eval/train.h: training a Llama decoder from scratch: the whole-model forward/backward around
 * eval/grad.h's block, AdamW, the learning-rate schedule and global-norm clipping.
 *
 * Legend: B windows of T tokens per micro-batch, R = B·T rows; D = dim, H = hidden_dim, V = vocab,
 * L = n_layers. The model is what eval/forward.c runs for a GGUF "llama" file (ROPE_NORM pairs):
 *   x0 = E[tok]  (E = token_embd [V][D]);  x_{l+1} = block_l(x_l)  (eval/grad.h);
 *   xf = rmsnorm(x_L)·w_out_norm;  logits = xf·Woutᵀ  (Wout = output [V][D], or E when tied);
 *   loss = mean over predicted positions of −log softmax(logits)[next token].
 * The backward is the chain rule in reverse: cross-entropy (softmax − one-hot)/n, the output
 * projection (dWout = dlogitsᵀ·xf, dxf = dlogits·Wout through kernels/matmul.h with materialized
 * transposes), the final RMSNorm, grad_block_backward per layer (its gradients are overwritten, so
 * each layer's land in scratch and are added to the accumulated ones), and the embedding's
 * scatter-add (parallel over columns, rows in order). Every parallel loop gives each output to one
 * thread with a fixed summation order, so a step is bit-identical for any thread count.
 * Parameters live in one slab (gradient, AdamW moments alike), in the order of train_model.pt[]:
 * token_embd, [output], output_norm, then per layer attn_norm wq wk wv wo ffn_norm gate up down.
 * Optimizer: AdamW (Loshchilov & Hutter, decoupled decay: w −= lr·(m̂/(√v̂+ε) + wd·w)), decay on
 * matrices only (not norms); linear warm-up then cosine decay to min_lr; clipping of the global
 * gradient 2-norm (computed in double over fixed 64Ki-element chunks, summed in order).
 * Tolerance promised (tests/test_train.c): every parameter tensor's gradient agrees with central
 * finite differences of an independent float64 model to 1e-2 relative in the 2-norm (the float32
 * block of eval/grad.c bounds it); training forward logits equal forward()'s on the exported
 * GGUF to 1e-4. */
#ifndef EVAL_TRAIN_H
#define EVAL_TRAIN_H
#include <stdint.h>

#include "eval/grad.h"
#include "eval/model.h"

struct tokenizer;
struct gguf_writer;

struct train_config {
    int dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab, ctx;
    bool tied;        /* output projection = token_embd */
    float norm_eps;   /* 1e-5 */
    float rope_theta; /* 10000 */
};

struct train_opt {
    float lr, min_lr;  /* peak and final learning rate */
    int warmup, steps; /* linear warm-up steps; total steps (cosine to min_lr at steps) */
    float beta1, beta2, eps, weight_decay;
    float clip;        /* global gradient 2-norm bound (0 = none) */
};

/* one parameter tensor in the slab */
struct train_param {
    char name[64];   /* canonical GGUF name (eval/model.h) */
    int n_dims;
    int64_t ne[2];   /* ggml order: ne[0] innermost */
    size_t off, n;   /* floats into the slab */
    bool decay;      /* AdamW weight decay applies (matrices) */
};

struct train_model {
    struct train_config c;
    struct model shape; /* cfg only: what grad_block_init and fwd_rope_table read */
    struct train_param *pt;
    int n_pt;
    size_t n;                   /* floats per slab */
    float *w, *g, *m, *v;       /* weights, accumulated gradient, AdamW moments: [n] each */
    float *tok_embd, *out_norm, *output; /* views into w (output == tok_embd when tied) */
    size_t layer_off0, layer_n; /* layer l's parameters are w[layer_off0 + l·layer_n ...] */
    struct grad_weights *lw;    /* per layer, into w */
    /* micro-batch buffers: up to max_win windows of ctx tokens */
    int max_win;
    struct grad_block *blk;     /* per layer: saved activations */
    float *xa, *xb;             /* [R][D] residual stream ping-pong */
    float *xf, *sf;             /* final norm output [R][D] and 1/rms [R] */
    float *logits;              /* [R][V], then dlogits */
    float *tr_a, *tr_b, *wt;    /* transposes: [max(V,D)][R], [D][R], [D][V] */
    float *gl;                  /* one layer's gradients (layer_n floats) */
    double *row_nll;            /* [R] */
    double *partial;            /* clip-norm chunk partials */
};

#define TRAIN_MODEL_INIT {0}

/* allocate the slabs and the buffers for micro-batches of up to max_win windows of c->ctx tokens.
 * -1 with a message (a bad shape: D, H multiples of... any positive; n_heads % n_kv_heads == 0;
 * head_dim even). Weights are zero until train_model_randomize. */
int train_model_init(struct train_model *tm, const struct train_config *c, int max_win);
void train_model_release(struct train_model *tm);
/* fixed-seed init: matrices N(0, 0.02) (attn_output and ffn_down scaled by 1/√(2L), GPT-2),
 * norms 1; moments zeroed */
void train_model_randomize(struct train_model *tm, uint64_t seed);
/* parameter count (the slab, tied output counted once) */
int64_t train_n_params(const struct train_model *tm);
/* FLOPs of one training step per token: 6·(matrix parameters except the embedding lookup) +
 * attention 6·L·T·qd (scores and values, forward and twice in the backward, T/2 keys average) */
double train_flops_per_token(const struct train_model *tm, int T);

/* g = 0 */
void train_zero_grad(struct train_model *tm);
/* one micro-batch: tok [n_win][T+1] (window b predicts tok[b][1..T] from tok[b][0..T-1]),
 * forward and backward, gradient of scale·(sum of NLLs) ADDED to tm->g; *nll_sum = Σ NLL (nats).
 * n_win <= max_win, T <= ctx. */
int train_fwd_bwd(struct train_model *tm, const int *tok, int n_win, int T, double scale,
                  double *nll_sum);
/* forward only: Σ NLL of the T predictions of each window (tok as train_fwd_bwd) */
int train_nll(struct train_model *tm, const int *tok, int n_win, int T, double *nll_sum);
/* the logits [T][V] of one window of T tokens */
int train_logits(struct train_model *tm, const int *tok, int T, float *logits);

/* learning rate of step s (0-based): warm-up (s+1)/warmup·lr, then cosine from lr to min_lr */
float train_lr(const struct train_opt *o, int step);
/* global gradient 2-norm; scaled down to o->clip when above it (clip > 0). Returns the norm
 * before clipping. */
double train_clip_grad(struct train_model *tm, float clip);
/* one AdamW update with step number t (1-based, for bias correction) at learning rate lr */
void train_adamw(struct train_model *tm, const struct train_opt *o, int t, float lr);

/* a struct model whose tensors borrow tm's weights (F32), bound with model_bind: what
 * forward() runs and the GGUF writer writes. Release with model_release (the weights stay). */
int train_to_model(const struct train_model *tm, struct model *m);
/* the tokenizer's vocabulary as GGUF tokenizer.ggml.* keys ("llama" SentencePiece: pieces with
 * ' ' written as U+2581, scores, token types, bos/eos/unk ids), as llama.cpp's llama2.c converter
 * stores a tokenizer.bin */
int train_gguf_put_vocab(struct gguf_writer *w, const struct tokenizer *tok);
#endif
