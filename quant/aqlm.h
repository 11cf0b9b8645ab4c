/* quant/aqlm.h: AQLM (Egiazarian, Panferov, Kuznedelev, Frantar, Babenko, Alistarh, "Extreme
 * Compression of Large Language Models via Additive Quantization", ICML 2024, arXiv 2401.06118)
 * as Vahe1994/AQLM implements it (src/aq.py QuantizedWeight + init_aq_kmeans,
 * src/beam_search_xtx.py, aq_engine.py AQEngine.quantize, main.py quantize_aq; REFERENCE.md C6),
 * into DTYPE_AQLM tensors (kernels/aqlm.h) and the AQLM checkpoint layout transformers reads.
 *
 * Legend: W [N out][K in]; X the calibration inputs [T tokens][K]; H = XᵀX/T [K][K] (the
 * reference's XTX, a running mean over tokens); M codebooks of 2^B vectors; gi/go in/out group
 * sizes; O = N/go output groups, J = K/gi input groups, d = go·gi. Ŵ[o·go+i][j·gi+c] =
 * s_o·Σ_m C_m[q_ojm][i][c].
 *
 * One layer (aqlm_quantize_layer) minimises the output error
 *     L(Ŵ) = Σ_rows (w − ŵ)ᵀ H (w − ŵ)        (= ‖X·Wᵀ − X·Ŵᵀ‖²/T)
 * over codes, codebooks and scales, as the reference does:
 *  1. scales s_o = ‖W_o‖ (the output group's Frobenius norm) + 1e-9; W' = W/s.
 *  2. residual k-means (init_aq_kmeans): for m = 0..M−1, Lloyd's k-means with k = 2^B on the rows
 *     of the residual of W' cut into d-vectors (init_max_iter iterations, or until at most 0.1% of
 *     the points change cluster; centroids start at distinct random points; an empty cluster keeps
 *     its centroid; fitted on at most init_max_points_per_centroid·k random points, faiss' default
 *     256, the reference's --init_max_points_per_centroid), codes = nearest centroid over all
 *     points, residual −= centroid. Distances through the fp32 GEMM.
 *  3. epochs (AQEngine.quantize): stop when L/best > 1 − relative_mse_tolerance at an epoch's
 *     start, else update the codebooks and scales, then beam search the codes:
 *     - codebooks: lowbit solves the codes-fixed problem, which is quadratic in the codebooks,
 *       with cg_iters steps of Jacobi-preconditioned conjugate gradients on its exact normal
 *       equations, then the per-group scale in closed form (s_o = Σ vᵀHw / Σ vᵀHv, v the unscaled
 *       reconstruction of the group's rows). The reference
 *       takes steps_per_epoch = 100 Adam steps (lr 1e-4, betas (0, 0.95), amsgrad) on both; CG
 *       reaches the same minimiser in a few tens of matrix products, where Adam with that step
 *       size needs many epochs. DEVIATION, on purpose.
 *     - codes (beam_search_optimal_codes): for each input group j and codebook m, in an order
 *       shuffled per epoch (dim_rng; the same order for every output group), every hypothesis of
 *       the beam tries every code c of codebook m for (j, m), scored by the exact change of L:
 *         ΔL(c) = s²·Σ_i C_m[c]ᵢᵀ H_jj C_m[c]ᵢ − 2s·Σ_i C_m[c]ᵢᵀ u_i − (the same for the old code),
 *         u_i = (H·(w_i − ŵ_i))_j + H_jj·(s·C_m[old]ᵢ)
 *       and the beam_size best (loss, then parent, then code: deterministic) survive. Output
 *       groups are independent and run in parallel.
 *     After the last epoch lowbit updates codebooks and scales once more (the reference stops
 *     right after a beam search; its block fine-tuning then moves them anyway).
 *  4. the codebooks and scales are rounded to fp16 (what the checkpoint stores); the scales are
 *     refit to the rounded codebooks and rounded. The reported loss is the rounded weights'.
 *
 * The model (aqlm_quantize_model): true-sequential like GPTQ (quant/gptq.h): block by block, for
 * each of the sub-groups [q,k,v], [o], [gate,up], [down], the calibration driver (quant/calib.h)
 * runs the block's stage ending at the sub-group's input over every window, earlier blocks and
 * sub-groups already quantized; H comes from the stage's mm_hook; each linear of the sub-group is
 * quantized, and its dequantized weights (the checkpoint's values) replace it in the forward. With
 * fine-tuning the block is run again from its kept input with its final weights.
 * Block fine-tuning (knob finetune; src/finetune.py finetune_groupwise, through eval/grad.h's
 * block backward pass): after a block's linears are quantized, their codebooks and scales (codes
 * fixed) are trained with Adam (betas 0.9, 0.95; finetune_lr, batches of finetune_batch_size
 * windows, finetune_max_epochs passes in a seeded random order) on the mean squared error between
 * the block's output and the FLOAT block's output on the same input, the quantized stream (the
 * windows through the quantized blocks before it, as main.py's inps); the best epoch is kept
 * (finetune_keep_best), then rounded to fp16, and kept only if it still beats no tuning.
 * Differences from the reference: once per block, not after each sub-group; norms are not tuned
 * (the export writes the source's); no held-out windows (the best epoch is judged on the
 * calibration windows themselves); the learning rate: the reference's 1e-5 serves ~5000 steps
 * (1024 windows of 4096 tokens, one per step, 5 epochs), lowbit's default 1e-3 the ~80 steps of
 * 128 windows of 256 tokens in batches of 8. On stories260K (1x5 g4, attention only,
 * tinystories-valid.txt.1000 PPL) it takes 28.77 without fine-tuning to 24.88 (lr 1e-4), 19.39
 * (1e-3), 19.31 (3e-3), 19.00 (1e-2) with 5 epochs, 20.38 with 2 epochs at 3e-3.
 * Cost per linear and epoch: about (2·cg_iters + 4)·N·K² multiply-adds for the codebooks and
 * scales, N·K·M·2^B (scores) + N·K²·M (updates) per beam for the codes; k-means 2^B·N·K per
 * iteration; the fine-tuning one block forward + backward per window and epoch.
 * Precision: H, the solver and the Adam state are double; the forward passes, the block backward
 * and the per-window XᵀX products are fp32.
 * Every parallel loop splits independent rows, points or output groups and every reduction runs
 * in a fixed order, so results are identical for any thread count; the RNG is splitmix64 seeded
 * per module from the recipe's seed. */
#ifndef QUANT_AQLM_H
#define QUANT_AQLM_H
#include "kernels/aqlm.h"
#include "quant/hf_export.h"

struct aqlm_opts {
    int num_codebooks;       /* M (1) */
    int nbits;               /* B, nbits_per_codebook (16) */
    int in_group, out_group; /* 8, 1 */
    int beam_size;           /* 1 */
    int max_epochs;          /* 100 (the reference's 1000 with its 100 Adam steps each) */
    int init_max_iter;       /* k-means iterations (100) */
    int init_max_points;     /* k-means fits on at most this many points per centroid (256, faiss'
                              * default; 0: all) */
    int cg_iters;            /* conjugate-gradient steps per codebook update (10) */
    double rel_tol;          /* relative_mse_tolerance (0.01, the README's examples; the
                              * reference's argparse default is none) */
    uint64_t seed;
};
#define AQLM_OPTS_DEFAULT                                                                          \
    {.num_codebooks = 1, .nbits = 16, .in_group = 8, .out_group = 1, .beam_size = 1,               \
     .max_epochs = 100, .init_max_iter = 100, .init_max_points = 256, .cg_iters = 10,              \
     .rel_tol = 0.01, .seed = 0}

struct aqlm_layer_stats {
    double loss;      /* L of the stored (fp16-rounded) weights, per output row */
    double loss_init; /* after the k-means initialisation */
    double rel_mse;   /* L / Σ wᵀHw */
    int epochs;       /* epochs run (beam searches) */
};

/* Quantize w [N][K] (fp32) against H [K][K] (the mean of xxᵀ over calibration tokens; read
 * only) into *t, a DTYPE_AQLM tensor named `name`; the buffer *buf is owned by the caller
 * (free()). -1 with a message (bad layout or options, a non-finite weight or loss). */
int aqlm_quantize_layer(const float *w, int64_t K, int64_t N, const double *H,
                        const struct aqlm_opts *o, const char *name, struct tensor *t, void **buf,
                        struct aqlm_layer_stats *st);

/* ===== the model and its checkpoint ===== */

struct calib_set;
enum aqlm_modules { AQLM_MOD_ALL, AQLM_MOD_ATTENTION, AQLM_MOD_MLP };
struct aqlm_model_opts {
    struct aqlm_opts q;
    bool true_sequential;    /* true */
    bool finetune;           /* block fine-tuning (true) */
    int finetune_max_epochs; /* passes over the windows (5, the reference's default) */
    double finetune_lr;      /* Adam learning rate (1e-3) */
    int finetune_batch_size; /* windows per step (8) */
    enum aqlm_modules modules; /* which block linears to quantize (all) */
    const char *resume_dir;    /* a checkpoint after each block (quant/resume.h); NULL: none */
};
struct aqlm_report {
    double seconds, forward_seconds;
    int n_forward, n_layers, epochs; /* windows run, linears quantized, Σ epochs */
    double rel_mse_mean, rel_mse_max; /* over the quantized linears (before fine-tuning) */
    double ft_seconds, ft_gain;       /* fine-tuning: time, Σ over blocks of 1 − MSE after/before */
    int ft_blocks;
    char rel_mse_max_module[192];
    int resumed_blocks; /* blocks taken from a killed run's checkpoint */
};

/* quantize the block linears of m (loaded from src_path; not modified) that the layout can hold
 * (gi | K, go | N) with the windows of cs, and write the AQLM checkpoint to out. */
int aqlm_quantize_model(const struct model *m, const char *src_path,
                        const struct aqlm_model_opts *o, const struct calib_set *cs,
                        const char *out, bool quiet, struct hfx_stats *st,
                        struct aqlm_report *rep);

/* The AQLM checkpoint (transformers AqlmConfig / aqlm.QuantizedLinear, convert_to_hf.py), per
 * quantized module P [N][K]:
 *   P.codes     I8 (B <= 8) or I16 [O, J, M], codes >= 2^(B−1) stored minus 2^B (pack_int_data)
 *   P.codebooks F16 [M, 2^B, go, gi]
 *   P.scales    F16 [O, 1, 1, 1]
 * everything else as the source's floats. quantization_config: quant_method "aqlm",
 * nbits_per_codebook, num_codebooks, out_group_size, in_group_size, linear_weights_not_to_quantize
 * (every weight of the file not quantized, and lm_head.weight, as convert_to_hf.py lists them:
 * transformers replaces every other nn.Linear), plus "lowbit" (extra, borrowed: algorithm and
 * calibration facts). Every quantized module must use the scheme of o. */
int aqlm_write(struct hfx_model *hm, const struct aqlm_opts *o, json_t *extra, const char *dir,
               struct hfx_stats *st);
/* streaming as gptq_write_begin (quant/qformat.h) */
int aqlm_write_begin(struct hfx_model *hm, const struct aqlm_opts *o, const char *dir,
                     struct hfx_stats *st);

/* ===== the registry row (quant/quant.c qmethods[QMETHOD_AQLM]) ===== */
struct recipe;
struct quant_job;
struct quant_artifact;
/* aqlm: weight_dtype "aqlm"; calib_set required (calib_nsamples absent: 128, calib_seqlen absent:
 * 2048, capped to the model's context); group_size, when given, is in_group_size; bits, when given,
 * must equal the code bits M·B/(gi·go); no sym, no double quant; compute_dtype fp32/fp16/bf16.
 * knobs (absent: the default): num_codebooks 1..16 (1), nbits_per_codebook 1..16 (16),
 * in_group_size 1..64 (8), out_group_size 1..64 (1), beam_size 1..64 (1), max_epochs 1..1000
 * (100), init_max_iter 1..1000 (100), init_max_points_per_centroid 0..2^20 (256; 0 all),
 * cg_iters 1..1000 (10),
 * relative_mse_tolerance [0, 1) (0.01), finetune bool (true), finetune_max_epochs 0..100 (5),
 * finetune_lr (0, 1) (1e-3), finetune_batch_size 1..1024 (8),
 * true_sequential bool (true), modules "all"|"attention"|"mlp" ("all"), seed >= 0 (0). The
 * artifact is JOB/model, an HF directory. */
int aqlm_recipe_check(const struct recipe *r);
int aqlm_recipe_quantize(const struct quant_job *j, struct quant_artifact *a);
#endif
