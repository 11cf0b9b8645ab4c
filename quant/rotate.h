/* quant/rotate.h: transforms of a model that leave its function unchanged and make it easier to
 * quantize, applied before any quantizer (quant_model): QuaRot's rotation and SmoothQuant's
 * migration. The knobs that ask for them are the recipe's (gen/recipes.csv):
 *   "rotate": true            QuaRot (Ashkboos et al. 2024, arXiv:2404.00456, §4): RMSNorm weights
 *                             folded into the linears that read them, the residual stream rotated
 *                             by U = H_D·diag(s)/√D (s a seeded random ±1 vector: QuIP#'s randomized
 *                             Hadamard), an online Hadamard R_H = H_H/√H on the down_proj input
 *   "rotate_seed": N          the seed of s (default 0; splitmix64, quant/calib.h's generator)
 *   "rotate_o": true          also an online Hadamard R_qd on the o_proj input (QuaRot's
 *                             per-head + across-heads rotation, as one qd-point transform)
 *   "smooth_alpha": α         SmoothQuant (Xiao et al. 2023, arXiv:2211.10438, §4): per input
 *                             channel j of the q/k/v, gate/up and down inputs, s_j =
 *                             max|X_j|^α / max|W_:,j|^(1−α) over the recipe's calibration windows;
 *                             X/s folded into the RMSNorm weight (q/k/v, gate/up) or the up_proj
 *                             rows (down), W·diag(s) into the linears
 *   "act_clip": c             the activation quantizer's clipping ratio (compute a8/a4): recorded in
 *                             the artifact (default 1: the row's max)
 * Shapes: D = dim, H = hidden_dim, qd = n_heads·head_dim; each must have a Hadamard matrix
 * (kernels/hadamard.h) when rotated. With x' = U·x on the residual stream (column vectors):
 *   token_embd rows e → U·e; readers W (q, k, v with g = attn_norm; gate, up with g = ffn_norm;
 *   output with g = output_norm) → W·diag(g)·Uᵀ (row w → U·(g⊙w)), the norms become 1 (RMSNorm
 *   without weight commutes with U); writers (o, down) → U·W, and down → U·W·R_Hᵀ with the
 *   forward applying R_H to down's input (o likewise with "rotate_o"). The output layer is
 *   untied from the embeddings. The rotated model computes the same function up to rounding (the
 *   fp32 log-probs within 1e-4: tests/test_rotate.c). Online rotations are written into the
 *   artifact (GGUF lowbit.online_hadamard, config.json lowbit_online_hadamard: the canonical names
 *   of the linears whose input is rotated, e.g. "attn_output,ffn_down") and model_config carries
 *   them (online_had) into the forward pass. Llama-family blocks only (llama, mistral, qwen2,
 *   qwen3); gemma's scaled embeddings and post-norms are refused. */
#ifndef QUANT_ROTATE_H
#define QUANT_ROTATE_H
#include <stdbool.h>
#include <stdint.h>

#include "eval/model.h"

struct rot_opts {
    bool rotate;
    bool rotate_o;
    uint64_t seed;
    double smooth_alpha; /* < 0: no smoothing */
    float act_clip;      /* 0: not set */
};
#define ROT_OPTS_INIT                                                                              \
    { false, false, 0, -1.0, 0 }

/* the knobs above out of a recipe's knobs JSON (knobs may be NULL or ""): *o filled, and the other
 * knobs (for the quantizer's own check) into rest as compact sorted JSON ("" when none). -1 with
 * a message naming the recipe and the knob. */
int rot_knobs(const char *id, const char *knobs, struct rot_opts *o, char *rest, size_t size);
/* whether any transform of the model is asked for */
bool rot_wanted(const struct rot_opts *o);

/* the per-channel absolute maxima of a block's three linear inputs (SmoothQuant's statistics):
 * amax [n_layers][D + D + H] (q/k/v input, gate/up input, down input), owned (free()) */
struct quant_job;
int rot_act_stats(const struct quant_job *j, float **amax);

/* out ← m transformed by o (rotation, smoothing with amax when o->smooth_alpha >= 0); out owns
 * fp32 copies of the transformed tensors and borrows m's other tensors and its GGUF (out->gguf is
 * m->gguf: release out with rot_model_release, never model_release). -1 with a message. */
int rot_model(struct model *out, const struct model *m, const struct rot_opts *o, const float *amax);
void rot_model_release(struct model *out);
#endif
