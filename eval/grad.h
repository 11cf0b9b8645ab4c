/* eval/grad.h: one Llama decoder block, forward with the activations its backward needs, and the
 * backward: the gradient of a loss with respect to the block input, its seven linear weights, the
 * q/k/v biases and its two RMSNorm weights. Written once for every user: AutoRound's block-wise
 * reconstruction (quant/autoround.c) and full-model training (`lowbit train`).
 *
 * Legend: B windows of T tokens each, R = B·T rows; D = dim, H = hidden_dim, hd = head_dim,
 * nh / nkv = query / key-value heads (GQA: query head h reads kv head h/(nh/nkv)), qd = nh·hd,
 * kvd = nkv·hd. Window b is an independent sequence at positions 0..T−1 (causal attention within
 * the window, no cache). All tensors are fp32 row-major: activations [R][width], weights
 * W [N out][K in] as the model stores them (y = x·Wᵀ).
 *
 * The block, exactly as eval/forward.c computes it (same RMSNorm in double, RoPE tables from
 * fwd_rope_table, 1/√hd scale, silu(g) = g/(1 + e^−g)):
 *   xn1 = rmsnorm(x)·w_attn_norm;  q,k,v = xn1·Wq,Wk,Wvᵀ (+ b);  q,k = rope(q,k)
 *   o[t,h] = Σ_{j<=t} softmax_j(q[t,h]·k[j,g]/√hd) v[j,g];  h1 = x + o·Woᵀ
 *   xn2 = rmsnorm(h1)·w_ffn_norm;  y = h1 + (silu(xn2·Wgᵀ) ⊙ xn2·Wuᵀ)·Wdᵀ
 * Saved for the backward (per row): x, 1/rms, xn1, rotated q and k, v, the attention output and its
 * log-sum-exp per head, h1, 1/rms, xn2, gate, up, silu(gate)·up — about 4D + qd·2 + kvd·2 + 3H
 * floats; the attention probabilities are recomputed from the log-sum-exp (flash-attention style),
 * so memory is O(R), not O(B·T²).
 * Backward: the usual chain rule, with three transposed products through kernels/matmul.h
 * (dX = dY·W as dY·(Wᵀ)ᵀ, dW = dYᵀ·X as (dYᵀ)·(Xᵀ)ᵀ, the transposes materialized in scratch);
 * RMSNorm: dx = s·(w⊙dy) − x·s³/n·Σ(w⊙dy⊙x); softmax: dS = P⊙(dP − rowsum(dO⊙O)); RoPE: the
 * inverse rotation. Every output element is computed by one thread in a fixed order (attention
 * backward is parallel over (window, kv head), so the GQA sums into dk/dv stay in one thread), so
 * results are bit-identical for any thread count.
 * Attention runs per (window, kv head) on transposed keys/values, 4 queries at a time, its inner
 * loops vectorized (omp simd) and compiled for AVX-512 / AVX2 / generic as kernels_isa() says;
 * its exp is a Cephes-style polynomial (about 2 ulp) in the forward and the backward alike.
 * Gemma 2/3 blocks (cfg.post_norms, gelu, attn_scale, attn_softcap, swa_window), as
 * eval/forward.c computes them:
 *   h1 = x + rmsnorm(o·Woᵀ)·w_attn_post;  y = h1 + rmsnorm(act·Wdᵀ)·w_ffn_post  (post-norms)
 *   act = gelu_tanh(gate) ⊙ up (fwd_gelu_tanh, in double; its derivative in double too)
 *   q ← q·(attn_scale·√hd) after RoPE (the kernels' 1/√hd then gives query_pre_attn_scalar^−½)
 *   scores s → cap·tanh(s/cap) before the softmax; dS·(1 − tanh²) in the backward
 *   a sliding layer (grad_weights.swa) sees keys j with t − j < swa_window, and rotates with the
 *   sliding layers' tables (fwd_rope_table_swa) when they differ (gemma3's local base)
 * plus gemma3's per-head q/k norms (the qwen3 path). The embedding scale acts before block 0
 * (fwd_embed: the callers' stream starts from it), the final logit soft-cap after the last block;
 * the block needs neither.
 * MoE blocks (cfg.n_expert = E > 0: Mixtral, qwen2moe), the MLP as eval/forward.c's moe_ffn:
 *   l = xn2·Wrᵀ [E];  (sel, w) = fwd_moe_route(l): the K = n_expert_used largest logits, w their
 *   softmax probabilities (over all E), renormalized over the K when cfg.expert_norm;
 *   f = Σ_j w_j·down_e(silu(gate_e·xn2) ⊙ up_e·xn2) (e = sel_j, summed in ascending e)
 *       [+ sigmoid(xn2·w_sg)·down_s(silu(gate_s·xn2) ⊙ up_s·xn2)  (qwen2moe's shared expert)]
 *   The choice of experts is discrete and gets no gradient (as autograd treats torch.topk); the
 *   weights w are differentiable in l: with expert_norm dl_sel_j = w_j(dw_j − Σ_i w_i dw_i) (the
 *   other logits get 0), without it dl_e = p_e(dw_e − Σ_j p_sel_j dw_j) over all E (dw_e = 0 for
 *   an expert not chosen), dw_j = dfᵀ·y_e; so the router weight and xn2 get the routing path's
 *   gradient too. An expert no token of the pass chose gets zero gradients. Saved per row
 *   besides the attention's: E logits, the K choices and weights, and per choice the expert's
 *   gate, up, silu(gate)·up [He each] and output [D]; the shared expert's gate, up, activation
 *   [Hs each], output [D] and sigmoid gate: E + 2K + K·(3He + D) (+ 3Hs + D + 1) floats.
 *   MoE blocks with post-norms or gelu (no such architecture) are refused.
 * Refused with a message: online Hadamard rotations.
 * Tolerance promised (tests/test_autoround.c, tests/test_arch.c): the forward equals
 * eval/forward.c's block output to 1e-5 relative (measured 3e-6 on stories260K); every gradient
 * agrees with central finite differences of an independent float64 block to 1e-4 relative per
 * tensor in the 2-norm (measured below 1e-6). */
#ifndef EVAL_GRAD_H
#define EVAL_GRAD_H
#include "eval/model.h"

/* one block's weights (borrowed, fp32), the linears by enum lin (eval/model.h): lin[i] is
 * [N][K] with K, N = lin_info[i].in, .out. Biases may be NULL (no bias); only lin_info[i].bias
 * linears (q, k, v) have one. */
struct grad_weights {
    const float *attn_norm;       /* [D] */
    const float *ffn_norm;        /* [D] */
    const float *lin[LIN_COUNT];  /* q [qd][D], k v [kvd][D], o [D][qd], gate up [H][D], down
                                   * [D][H] */
    const float *bias[LIN_COUNT]; /* [N] or NULL */
    const float *q_norm, *k_norm; /* [hd] per-head norms of q and k before RoPE (qwen3, gemma3),
                                   * or NULL */
    /* [D] norms of the attention and MLP outputs before the residual adds (gemma), or NULL; both
     * present exactly when the configuration has post_norms */
    const float *attn_post_norm, *ffn_post_norm;
    bool swa; /* the layer attends through the sliding window (model_layer_swa) */
    /* MoE (the configuration's n_expert = E > 0; lin[LIN_GATE..LIN_DOWN] unused): the router
     * [E][D]; expert e's gate, up [He][D] and down [D][He] at ex[3e + i − LIN_GATE] (i = LIN_GATE,
     * LIN_UP, LIN_DOWN: model_expert's order); qwen2moe's shared expert, shexp[0..2] = gate, up
     * [Hs][D], down [D][Hs], and its gate [D]; NULL when the configuration has none */
    const float *router;
    const float *const *ex;
    const float *shexp[3], *shexp_gate;
};

/* where the backward writes each gradient (same shapes); NULL = not wanted (not computed when
 * nothing else needs it). Gradients are overwritten, not accumulated. The per-head q/k norm
 * weights get none: the backward passes through them, nothing tunes them. */
struct grad_grads {
    float *attn_norm, *ffn_norm, *lin[LIN_COUNT], *bias[LIN_COUNT];
    float *attn_post_norm, *ffn_post_norm; /* gemma's post-norms */
    /* MoE, shaped as grad_weights': ex may be NULL, or hold 3E pointers each of which may be */
    float *router, *const *ex, *shexp[3], *shexp_gate;
};

struct grad_block {
    int D, H, n_heads, n_kv_heads, hd, qd, kvd;
    float eps;
    enum rope_style rope_style;
    int n_ctx;                  /* longest window */
    int64_t max_rows;           /* R the buffers hold */
    float *rope_cos, *rope_sin; /* [n_ctx][hd/2] */
    float *rope_cos_swa, *rope_sin_swa; /* the sliding layers' (fwd_rope_swa_differs), or NULL */
    /* gemma: post-norms, gelu FFN, q scaled by attn_mul after RoPE (0 = none), scores soft-capped
     * at softcap (0 = none), window of the sliding layers (0 = none) */
    bool post_norms, gelu;
    float attn_mul, softcap;
    int swa_window;
    /* of the last forward */
    int n_win, T;
    int window;           /* its layer's window (0 = every earlier key) */
    const float *rc, *rs; /* its layer's rotary tables */
    bool has_bias;
    bool qk_normed; /* the last forward had per-head q/k norms */
    bool mm_failed; /* a matmul of the current pass had no memory for its scratch */
    /* saved activations, [R][width] */
    float *x, *s1, *xn1, *q, *k, *v, *att, *lse, *h1, *s2, *xn2, *gate, *up, *act;
    /* q and k before their per-head norms and each head's 1/rms (when the weights have q_norm) */
    float *q0, *k0, *sq, *sk;
    /* post_norms: o·Woᵀ and act·Wdᵀ before their norms, and their 1/rms */
    float *po, *fo, *sp1, *sp2;
    /* MoE (E > 0, K = n_expert_used, He = expert_hidden; H is then the shared expert's hidden
     * size, 0 without one, and gate/up/act its activations): the router logits [R][E], each
     * row's choices and weights [R][K], the assignment (an index into the per-choice arrays,
     * which group the choices by expert ascending, rows ascending) of each (row, choice), each
     * assignment's row, the first assignment of each expert [E + 1]; per assignment the expert's
     * gate, up, act [He] and output [D]; the shared expert's sigmoid gate [R] and output [R][D] */
    int E, K, He;
    bool expert_norm;
    float *mlog, *mw, *eg, *eu, *ea, *ey, *sg, *sy;
    int *msel, *mpos, *arow, *eoff;
    float *mdy, *mdx, *dmw; /* backward scratch: [R][max(D, E)], [R][D], [R][K] */
    /* backward scratch */
    float *dh1, *dgu, *dxn, *datt, *dqkv, *yt, *xt, *wt;
    size_t wt_floats;
};

/* buffers for windows of up to n_ctx tokens and up to max_rows rows in all, shaped after m's
 * configuration (its weights are not read). -1 with a message (out of memory, bad shape). */
int grad_block_init(struct grad_block *g, const struct model *m, int n_ctx, int64_t max_rows);
void grad_block_release(struct grad_block *g);

/* y [R][D] = block(x [R][D]) for n_win windows of T tokens (R = n_win·T <= max_rows, T <= n_ctx),
 * saving what grad_block_backward needs. y must not alias x. -1 with a message on bad sizes. */
int grad_block_forward(struct grad_block *g, const struct grad_weights *w, const float *x,
                       int n_win, int T, float *y);

/* the backward of the last forward (w must be the same weights): dy [R][D] in, dx [R][D] out (or
 * NULL) and the gradients gr asks for. -1 with a message when no forward preceded it. */
int grad_block_backward(struct grad_block *g, const struct grad_weights *w, const float *dy,
                        float *dx, const struct grad_grads *gr);

/* the fp32 weights of layer l of m (a model whose block tensors are any dtype): buffers owned by
 * *w_owned (one allocation, free()), pointers into it in *w. -1 with a message. */
int grad_weights_from_layer(const struct model *m, int l, struct grad_weights *w, float **w_owned);
#endif
