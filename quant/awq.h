/* quant/awq.h: AWQ (Lin, Tang, Tang, Yang, Chen, Wang, Xiao, Dang, Gan, Han, "AWQ: Activation-aware
 * Weight Quantization for LLM Compression and Acceleration", MLSys 2024, arXiv 2306.00978) as
 * AutoAWQ implements it (awq/quantize/quantizer.py AwqQuantizer: _search_best_scale,
 * _compute_best_scale, _search_best_clip, _compute_best_clip, pseudo_quantize_tensor;
 * awq/quantize/scale.py apply_scale / apply_clip; awq/models/llama.py get_layers_for_scaling;
 * REFERENCE.md C2), written as an AWQ GEMM checkpoint (quant/awq_format.c).
 *
 * Legend: W [N out][K in]; X [T tokens][K]; g = group length (g | K); s [K] the scales;
 * Q(·) = pseudo_quantize_tensor: per row and group, asymmetric ("zero_point"), b = 4 bits:
 *   scale = max(max w − min w, 1e-5)/15, zero = clamp(−round(min w/scale), 0, 15),
 *   Q(w) = scale·(clamp(round(w/scale) + zero, 0, 15) − zero)       (round half to even).
 *
 * One scaling group (awq_search_scale): linears L_1..L_m sharing the input X, behind a previous
 * op P (an RMSNorm weight, or the rows of a previous linear):
 *  1. x_mean[k] = mean_t |X_tk|;  w_mean[k] = mean over all rows n of the concatenated W of
 *     |W_nk| / (max_{k' in k's group} |W_nk'| + 1e-6)                 (AutoAWQ's w_scale/w_mean)
 *  2. for r = i/n_grid, i = 0..n_grid−1 (n_grid 20):
 *       duo_scaling: s = clamp(x_mean^r / (w_mean^(1−r) + 1e-4), >= 1e-4), else s = clamp(x_mean^r,
 *       >= 1e-4); s /= sqrt(max s · min s); inf/nan -> 1;
 *       Ŵ_i = Q(W_i·diag(s))·diag(s)⁻¹;  loss(r) = Σ_i ‖X·(W_i − Ŵ_i)ᵀ‖² / (T·Σ_i N_i);
 *     keep the first r with the least loss. The loss is computed the cheaper of two ways:
 *     directly (D_i = W_i − Ŵ_i, X·D_iᵀ through the fp32 GEMM, squares summed in double:
 *     n_grid·2·T·Σ N_i·K flops) or through the Gram matrix G = XᵀX (kernels/gram.h, float64,
 *     rounded to fp32 once): Σ_i Σ_rows d·G·dᵀ, by G's symmetry one GEMM per block row of 256
 *     columns against the panel of G from that block on, the off-diagonal blocks counted twice
 *     (T·K² once + n_grid·Σ N_i·K·(K + 256)): at 128 × 256 calibration tokens the Gram way
 *     costs ~10-20× less. Both give the loss to ~1e-6 relative.
 *  3. fold (apply_scale): P /= s (RMSNorm weight element k, or row k of the previous linear),
 *     W_i[:, k] *= s_k, and the captured X[:, k] /= s_k for the clipping; in exact arithmetic the
 *     block computes the same function.
 * The loss: AutoAWQ measures the output of module2inspect, which for (q,k,v) is the whole attention
 * and for (gate,up) the whole MLP; lowbit measures the concatenated outputs of the group's own
 * linears (for (o) and (down) the two agree: module2inspect is the linear itself). This keeps the
 * search independent of attention/RoPE and needs no second copy of the block; it differs from
 * AutoAWQ only in how errors of q/k/v (resp. gate/up) are weighted against each other.
 *
 * Clipping (awq_search_clip, apply_clip), for every quantized linear but q and k: the tokens
 * X[::step] with step = max(1, T // n_sample_token) (512); per row n and group: m0 = max |w|,
 * for i = 0 .. int(max_shrink·n_grid)−1 (0.5·20 = 10): m = m0·(1 − i/n_grid), ŵ = Q(clamp(w, −m, m)),
 * err = mean_t (Σ_k x_tk·(ŵ_k − w_k))² over the group's columns; keep the first least (strictly
 * below 1e9, AutoAWQ's start). err is computed directly (Ts·g products per candidate, in double) or,
 * when g < Ts, as δᵀ·G_j·δ / Ts with δ = ŵ − w and G_j the double Gram matrix of the group's columns
 * over the sampled tokens (g² per candidate; 8x fewer at g 64, 512 tokens): the same value to
 * ~1e-15 relative, so the same choice but on exact ties. Then W = clamp(W, −m, m) and the final codes are RTN (quant/rtn.h
 * RTN_AWQ, the same Q with the scale rounded to fp16 as the checkpoint stores it).
 *
 * The model (awq_quantize_model), block by block as AutoAWQ's loop: for block l, one probe of
 * every calibration window's residual stream through block l (the calibration driver,
 * quant/calib.h) records the inputs of q (= k, v), o, gate (= up) and down (the stages' mm_hook);
 * after the block is quantized it runs once more to give block l+1's inputs. The groups of
 * get_layers_for_scaling
 *   (input_layernorm -> q,k,v), (v -> o) only when v_proj and o_proj have the same shape (AutoAWQ's
 *   rule: under GQA, n_kv_heads·hd != dim, it is skipped), (post_attention_layernorm -> gate,up),
 *   (up -> down)
 * are searched on the block's float weights, then all folded, then clipped, then rounded.
 * lowbit's deliberate difference: blocks 0..l−1 are already quantized (their dequantized weights
 * swapped in, calib.h) when block l's inputs are recorded — true-sequential, as GPTQ does; AutoAWQ
 * feeds block l the outputs of the float blocks. A group is searched only when every linear in it
 * is quantized (qformat_plan: the AWQ GEMM layout needs N % 8 == 0 and g | K; the others stay float
 * and are listed in modules_to_not_convert); (up -> down) and (v -> o) need only down / o.
 * Mixture-of-experts blocks (Mixtral, qwen2moe): each expert's searches on the calibration tokens
 * routed to it, one gate/up scale for all experts folded into the norm they share with the router
 * compensated, experts under 0.5% of the tokens rounded to nearest: quant/awq.c, "MoE".
 * Precision: fp32 weights and pseudo-quantization (AutoAWQ runs them in the model's fp16), scales
 * and means computed in double and rounded to fp32 once; the losses accumulate in double.
 * Tolerance promised (tests/test_awq.c against tests/ref/awq_ref.py, float64 numpy with the same
 * fp32 rounding of W·s and Q): the same ratio and scales within 1e-6 relative. */
#ifndef QUANT_AWQ_H
#define QUANT_AWQ_H
#include "kernels/qint.h"
#include "quant/hf_export.h"

#define AWQ_MAX_GRID 100

struct awq_opts {
    int bits;            /* 4 (the GEMM layout); 2, 3, 4 or 8 with gptq_v2 */
    int64_t group;       /* g, dividing every quantized K: 32, 64, 128 */
    int n_grid;          /* 20: ratios i/n_grid, and the clip grid's step */
    bool duo_scaling;    /* true */
    bool clip;           /* true (AutoAWQ apply_clip) */
    double max_shrink;   /* 0.5 */
    int n_sample_token;  /* 512 */
    bool direct_loss;    /* the scale and clip searches' losses always the direct way (tests) */
    bool gptq_v2;        /* write a GPTQ v2 checkpoint (true zeros) instead of AWQ GEMM: what
                            llm-awq's own --w_bit 3 runs need, since the GEMM layout is 4-bit */
    const char *resume_dir; /* a checkpoint after each block (quant/resume.h); NULL: none */
};
#define AWQ_OPTS_DEFAULT                                                                           \
    {.bits = 4, .group = 128, .n_grid = 20, .duo_scaling = true, .clip = true, .max_shrink = 0.5, \
     .n_sample_token = 512}

/* per input channel: x_mean [K] of X [T][K]; w_mean [K] of the m weights w[i] [n[i]][K] */
void awq_x_mean(const float *x, int64_t T, int64_t K, float *x_mean);
void awq_w_mean(const float *const *w, const int64_t *n, int m, int64_t K, int64_t group,
                float *w_mean);
/* Q(w) in place on w [N][K], groups of `group` along K (asymmetric, fp32 scale) */
void awq_pseudo_quantize(float *w, int64_t K, int64_t N, int bits, int64_t group);

struct awq_search {
    int best;                  /* index i of the chosen ratio i/n_grid */
    double ratio;              /* best / n_grid */
    double loss[AWQ_MAX_GRID]; /* loss(i/n_grid) */
};
/* step 2 above: the best scales s [K] for the m linears w[i] [n[i]][K] (not modified) fed by
 * X [T][K]. -1 with a message (bad options, a non-finite loss at every ratio, out of memory). */
int awq_search_scale(const float *x, int64_t T, int64_t K, const float *const *w, const int64_t *n,
                     int m, const struct awq_opts *o, float *s, struct awq_search *res);

/* step 2 in parts, for a group whose linears do not share one X (MoE, awq.c "MoE"): the
 * squared output errors Σ_i ‖X·(W_i − Ŵ_i)ᵀ‖² of the m linears w[i] fed by X [T][K] at every
 * ratio, with the candidates of the given x_mean and w_mean, added into loss[0 .. n_grid);
 * awq_scale_pick divides them by denom and puts the scales of the first least into s. -1 with a
 * message (out of memory; no finite loss). */
int awq_scale_losses(const float *x, int64_t T, int64_t K, const float *const *w, const int64_t *n,
                     int m, const float *x_mean, const float *w_mean, const struct awq_opts *o,
                     double *loss);
int awq_scale_pick(const double *loss, double denom, const float *x_mean, const float *w_mean,
                   int64_t K, const struct awq_opts *o, float *s, struct awq_search *res);

/* step 3 (apply_scale): prev [K][prev_cols] (an RMSNorm weight: prev_cols 1; a previous linear's
 * rows: its in_features) row k divided by s_k; every w[i] [n[i]][K] column k multiplied by s_k */
void awq_fold(float *prev, int64_t prev_cols, float *const *w, const int64_t *n, int m, int64_t K,
              const float *s);

/* the clipping search for w [N][K] fed by X [T][K]: max_val [N][K/g]; -1 when out of memory */
int awq_search_clip(const float *x, int64_t T, int64_t K, const float *w, int64_t N,
                    const struct awq_opts *o, float *max_val);
/* apply_clip: w = clamp(w, −max_val, max_val) per row and group */
void awq_apply_clip(float *w, int64_t K, int64_t N, int64_t group, const float *max_val);

/* ===== the model ===== */

struct calib_set;
struct awq_report {
    double seconds;         /* everything but the write */
    double forward_seconds; /* calibration passes */
    double search_seconds, clip_seconds;
    int n_forward;          /* windows probed (one per window and block; calib.h) */
    int n_groups;           /* scaling groups searched */
    double ratio_sum[4];    /* Σ of the chosen ratios per group kind: qkv, o, gate_up, down */
    int ratio_n[4];         /* groups of each kind searched */
    int resumed_blocks;     /* blocks taken from a killed run's checkpoint */
    /* MoE: routed experts (blocks x experts) and those that saw fewer than CALIB_MOE_MIN_SHARE
     * (quant/calib.h) of the calibration tokens (rounded to nearest, no search), the fewest and
     * most tokens an expert saw */
    int moe_experts, moe_fallback;
    int64_t moe_min_tokens, moe_max_tokens;
};

/* quantize every AWQ-holdable block linear of m (loaded from src_path; not modified) with the
 * calibration windows of cs and write the AWQ GEMM checkpoint to out (config.lowbit gets the
 * knobs and the chosen ratio of every group). One line per block unless quiet. */
int awq_quantize_model(const struct model *m, const char *src_path, const struct awq_opts *o,
                       const struct calib_set *cs, const char *out, bool quiet,
                       struct hfx_stats *st, struct awq_report *rep);

/* ===== the registry row (quant/quant.c qmethods[QMETHOD_AWQ]) ===== */
struct recipe;
struct quant_job;
struct quant_artifact;
/* awq: weight_dtype int4 (bits 4: the GEMM layout holds nothing else), or int2/int3/int4/int8
 * with knob "format": "gptq_v2" (the same search, fold, clip and zero-point rounding, written in
 * the GPTQ v2 layout: llm-awq evaluates its 3-bit results the same way, fake-quantized); group_size 32, 64 or 128
 * (absent: 128); sym absent or false (zero_point true, AutoAWQ's default: the GEMM kernels are
 * asymmetric); no double quant; compute_dtype fp32/fp16/bf16; calib_set required; calib_nsamples
 * (absent: 128), calib_seqlen (absent: 2048, capped to the model's context); knobs {"n_grid":
 * 1..100 (20), "duo_scaling": bool (true), "clip": bool (true), "max_shrink": (0, 1) (0.5),
 * "n_sample_token": >= 1 (512), "seed": integer >= 0 (0), "format": "awq" | "gptq_v2" ("awq")}.
 * The artifact is JOB/model. */
int awq_recipe_check(const struct recipe *r);
int awq_recipe_quantize(const struct quant_job *j, struct quant_artifact *a);
#endif
