/* quant/autoround.h: AutoRound / SignRound (Cheng, Zhang, Shen, Guo, Lv, Liu, "Optimize Weight
 * Rounding via Signed Gradient Descent for the Quantization of LLMs", arXiv 2309.05516) as
 * intel/auto-round implements it (REFERENCE.md C3; auto_round/data_type/int.py quant_tensor_sym /
 * quant_tensor_asym, wrapper.py WrapperLinear, algorithms/quantization/sign_round/quantizer.py
 * quantize_block, sign_sgd.py, compressors/utils.py IndexSampler, calibration/llm.py), written
 * as a GPTQ checkpoint (what AutoRound's auto_gptq export writes) or a GGUF file.
 *
 * Legend: W [N out][K in] fp32; g = group length along K (one group per row when g >= K);
 * b = bits; per group: wmin = min(min w, 0), wmax = max(max w, 0) of the ORIGINAL weights.
 * Trainable per linear: V [N][K] (init 0), min_scale and max_scale [N][ceil(K/g)] (init 1,
 * clamped to [0, 1] before every use). fp16(·) rounds to binary16 (scale_dtype float16); STE:
 * round() passes the gradient unchanged; clamp() passes it only inside its range.
 *  sym (full range, q in −2^(b−1) .. 2^(b−1)−1, maxq = 2^(b−1)):
 *    a = −wmin·min_scale, c = wmax·max_scale;  max_v = c < a ? a : −c (ties: −c, the gradient
 *    split in halves as torch.maximum does);  s = fp16(max_v/maxq), |s| >= fp16(1e−5) keeping
 *    its sign;  q = clamp(round(w/s + V), −maxq, maxq − 1);  ŵ = s·q.  (s is negative when the
 *    positive side dominates, as ggml's Q4_0 d = max/−8.)
 *  asym (maxq = 2^b − 1): wn = wmin·min_scale, wx = wmax·max_scale; s = max(fp16((wx − wn)/maxq),
 *    fp16(1e−5)); zp = clamp(round(−wn/s), zero_min, maxq); q = clamp(round(w/s + V) + zp, 0,
 *    maxq); ŵ = s·(q − zp).
 * Block-wise reconstruction (autoround_tune_block), per decoder block with its quantizable
 * linears fake-quantized:
 *  - loss = mean((block_q(x_q) − block_fp(x_fp))²) over a mini-batch of batch_size windows,
 *    leaving out the last position of each window (auto-round marks it −100: no next-token
 *    target) and the run of tokens equal to it (its padding heuristic; autoround_valid_mask);
 *  - mini-batches: IndexSampler, a shuffled permutation of the windows cut into consecutive
 *    slices, reshuffled when fewer than batch_size remain;
 *  - ∂L/∂ŵ comes from eval/grad.c's block backward and is chained through the fake quantizer
 *    above here (autoround_chain);
 *  - SignSGD: p ← p − lr_i·sign(∂L/∂p) (sign(0) = 0), lr_i = lr·(1 − i/iters) (LinearLR 1 → 0),
 *    minmax_lr for min/max_scale, iterations i = 0 .. iters−1;
 *  - the parameters of the iteration with the least loss (measured before its step) are kept
 *    (not_use_best_mse false);
 *  - x_fp is the float model's stream (block_fp's outputs are the next block's float input),
 *    x_q the quantized one (enable_quanted_input: the next block's inputs are this block's
 *    quantized outputs).
 * Defaults (auto-round cli recipes): default 200 iters / 128 samples, lr = 1/iters; light 50
 * iters, lr 5e−3; best 1000 iters / 512 samples, lr = 2/iters at <= 3 bits (else 1/iters);
 * batch_size 8, seqlen 2048, minmax_lr = lr.
 * lowbit's differences, each deliberate:
 *  - fp32 throughout (AutoRound tunes under bf16/fp16 autocast); windows from quant/calib.h
 *    (BOS + text of groups_merged or any text) instead of pile-10k;
 *  - asym zero points are clamped to >= 1 for GPTQ v1 files (zero − 1 is stored; AutoRound's
 *    packer would write −1 into the neighbouring bits); sym never needs it (zp = 2^(b−1));
 *  - the sampler's RNG is quant/calib.h's splitmix64 seeded with the recipe's seed;
 *  - the loss reported and compared for the best iteration is the mean over the valid positions
 *    (auto-round divides its masked-tensor mean by the valid token count; the ranking is the same
 *    whenever batches hold equally many valid positions, i.e. always without token repeats);
 *  - block inputs are carried by eval/grad.c's block forward (equal to eval/forward.c's to 1e-5)
 *    rather than re-running forward() per block: AutoRound caches block inputs the same way;
 *  - linears the format cannot hold stay float and are not tuned (the block is still tuned with
 *    them in float); embeddings and the output layer are not quantized (AutoRound's default).
 * Outputs: GPTQ codes c = q + 2^(b−1) with zero 2^(b−1) (sym; negative fp16 scales as
 * AutoRound's export writes them) or c = q with zero zp (asym); the checkpoint dequantizes to ŵ
 * exactly. GGUF: Q4_0 (d = s, c = q + 8) and Q8_0 (d = s, q) hold ŵ exactly; Q4_1 stores
 * m = fp16(−zp·s) as AutoRound's q4_1 packer does, so its weights differ from ŵ by that rounding
 * (at most half an fp16 ulp of m).
 * Thread count: every reduction has a fixed order, so results are bit-identical for any number
 * of threads (tests/test_autoround.c).
 * Measured on stories260K (gen/recipes.csv's autoround rows, 128 windows of 256 tokens, one
 * thread: ~19 s, 55 MB peak): held-out PPL w4g128 8.566, w3g128 9.549, w2g64 14.44, against GPTQ
 * 8.750 / 11.49 / 37.70 and RTN 8.614 / 15.84 / 69.18 (fp32 8.225). */
#ifndef QUANT_AUTOROUND_H
#define QUANT_AUTOROUND_H
#include "eval/grad.h"
#include "quant/hf_export.h"

struct autoround_opts {
    int bits;           /* 2, 3, 4, 8 */
    int64_t group;      /* a multiple of 32, or -1 / >= K: one group per row */
    bool sym;           /* full range (see above) */
    int iters;          /* >= 0 (0: AutoRound's RTN, the same quantizer untuned) */
    double lr;          /* rounding lr (> 0) */
    double minmax_lr;   /* min/max_scale lr (> 0) */
    int batch_size;     /* windows per step (capped to the number of windows) */
    bool minmax_tuning; /* enable_minmax_tuning (true) */
    bool quanted_input; /* enable_quanted_input (true) */
    bool use_best;      /* keep the best iteration (not not_use_best_mse: true) */
    int zero_min;       /* asym: lowest zero point (1 for GPTQ v1 files, else 0) */
    uint64_t seed;      /* the sampler's */
    const char *resume_dir; /* a checkpoint after each block (quant/resume.h); NULL: none */
};
#define AUTOROUND_OPTS_DEFAULT                                                                     \
    {.bits = 4, .group = 128, .sym = true, .iters = 200, .lr = 5e-3, .minmax_lr = 5e-3,            \
     .batch_size = 8, .minmax_tuning = true, .quanted_input = true, .use_best = true,              \
     .zero_min = 1, .seed = 0}

/* the lr AutoRound picks when none is given: 2/iters at >= 1000 iters and <= 3 bits, else 1/iters
 * (5e-3 for iters 0, unused) */
double autoround_auto_lr(int iters, int bits);

/* ===== one linear ===== */

/* the tuning state of one linear (all buffers owned; release with autoround_linear_release) */
struct autoround_linear {
    const float *w;             /* [N][K] the float weights (borrowed) */
    int64_t K, N, g, ng;        /* g: the group length used (K when per-row), ng groups per row */
    float *v;                   /* [N][K] */
    float *min_scale, *max_scale; /* [N][ng] */
    float *wmin, *wmax;         /* [N][ng] of w */
    float *best_v, *best_min, *best_max;
    float *wq;                  /* [N][K] the fake-quantized weights (autoround_qdq) */
    float *gwq;                 /* [N][K] ∂L/∂ŵ, filled by the block backward */
    float *gv, *gmin, *gmax;    /* the chained gradients */
};
/* V = 0, scales 1, wmin/wmax of w (group <= 0 or >= K: one group per row). -1 when out of
 * memory. */
int autoround_linear_init(struct autoround_linear *L, const float *w, int64_t K, int64_t N,
                          int64_t group);
void autoround_linear_release(struct autoround_linear *L);
/* ŵ of the current parameters into L->wq (min/max_scale clamped to [0, 1] first) */
void autoround_qdq(struct autoround_linear *L, const struct autoround_opts *o);
/* from L->gwq: ∂L/∂V, ∂L/∂min_scale, ∂L/∂max_scale (the fake quantizer's STE chain) */
void autoround_chain(struct autoround_linear *L, const struct autoround_opts *o);
/* the integer result of the current parameters: codes [N][K] as unsigned codes c in [0, 2^b)
 * with ŵ = d·(c − z) (sym: c = q + 2^(b−1), z = 2^(b−1)), d [N][ng] (fp16 values, sym ones
 * signed) and z [N][ng]. -1 with a message when a scale is beyond fp16. */
int autoround_codes(struct autoround_linear *L, const struct autoround_opts *o, uint8_t *codes,
                    float *d, float *z);

/* ===== one block ===== */

struct autoround_block_stat {
    double loss_init; /* iteration 0 (the untuned, RTN-equal weights) */
    double loss_best; /* the kept iteration's */
    int best_iter;
    int n_linears;    /* tuned */
};

/* the positions the loss counts (auto-round calibration/llm.py: every position but the last of
 * each window and the run of tokens equal to the last one before it, its padding heuristic):
 * valid [n_win][T] of tokens [n_win][T] */
void autoround_valid_mask(const int *tokens, int n_win, int T, uint8_t *valid);

/* tune the linears lin[i] (NULL: kept float; indexes 0..6 = q, k, v, o, gate, up, down) of the
 * block with float weights wf, on n_win windows of T tokens: inputs xq [n_win·T][D], targets yfp
 * [n_win·T][D], positions counted valid [n_win·T] (NULL: all). g must hold batch_size·T rows.
 * *rng is the sampler's state. The loss reported and compared is the mean squared error over the
 * valid positions. On return every lin[i] holds the kept parameters and its ŵ in wq. -1 with a
 * message. */
int autoround_tune_block(struct grad_block *g, const struct grad_weights *wf,
                         struct autoround_linear *const lin[LIN_COUNT], const float *xq,
                         const float *yfp, const uint8_t *valid, int n_win, int T,
                         const struct autoround_opts *o, uint64_t *rng,
                         struct autoround_block_stat *st);

/* ===== the model ===== */

enum autoround_format { AUTOROUND_GPTQ, AUTOROUND_GGUF };

struct calib_set;
struct autoround_report {
    double seconds, tune_seconds;
    int n_linears, n_blocks;
    struct autoround_block_stat *blocks; /* [n_layers], owned */
    struct hfx_stats st;                 /* GPTQ: the written directory's */
    int64_t n_params, n_quantized;       /* GGUF: weights in the file, of which tuned */
    uint64_t tensor_bytes;               /* GGUF: tensor data */
    const char *gguf_type;               /* GGUF: "q4_0", "q4_1", "q8_0" */
    bool has_vocab;                      /* GGUF: the file carries the tokenizer (GGUF source) */
    int resumed_blocks;                  /* blocks taken from a killed run's checkpoint */
    /* MoE: experts (blocks × experts), of which no calibration token of the float stream was
     * routed to (their block loss gives them no gradient: they keep the untuned quantizer's
     * round-to-nearest), and the fewest and most tokens an expert had */
    int moe_experts, moe_idle;
    int64_t moe_min_tokens, moe_max_tokens;
    /* with keep_weights: ŵ of each tuned linear, fp32 [N][K] in the SOURCE model's row order
     * (l·LIN_COUNT + i, i as autoround_tune_block; NULL for linears kept float) */
    float **deq;
};
void autoround_report_release(struct autoround_report *rep, int n_layers);

/* quantize m (loaded from src_path; not modified) with the windows of cs and write the artifact:
 * AUTOROUND_GPTQ: an HF directory `out` (GPTQ v1 layout, quantization_config as AutoRound's
 * auto_gptq export: quant_method gptq, provider auto-round, desc_act false, true_sequential
 * false, plus the tuning record under "lowbit"); AUTOROUND_GGUF: the GGUF file `out` (group 32:
 * Q4_0 for 4-bit sym, Q4_1 for 4-bit asym, Q8_0 for 8-bit sym; tuned codes and scales stored as
 * they are; other tensors f32; a GGUF source's tokenizer KVs copied). `name` is general.name.
 * One line per block unless quiet. */
int autoround_quantize_model(const struct model *m, const char *src_path,
                             const struct autoround_opts *o, const struct calib_set *cs,
                             enum autoround_format fmt, const char *out, const char *name,
                             bool quiet, bool keep_weights, struct autoround_report *rep);

/* ===== the registry row (quant/quant.c qmethods[QMETHOD_AUTOROUND]) ===== */
struct recipe;
struct quant_job;
struct quant_artifact;
/* autoround: weight_dtype int2/int3/int4/int8 (bits must agree); group_size -1, 32, 64 or 128
 * (absent: 128); sym (absent: true); no double quant; compute_dtype fp32/fp16/bf16; calib_set
 * required; calib_nsamples (absent: the recipe's, 128 or 512), calib_seqlen (absent: 2048, capped
 * to the model's context); knobs {"recipe": "default" | "light" | "best", "iters": 0..100000,
 * "lr": (0, 10], "minmax_lr": (0, 10], "batch_size": 1..4096, "nsamples" / "seqlen" (only when the
 * calib_ columns are empty), "enable_minmax_tuning": bool, "enable_quanted_input": bool,
 * "not_use_best_mse": bool, "seed": integer >= 0, "format": "gptq" | "gguf"}. gguf needs
 * group_size 32 and 4-bit (sym or asym) or 8-bit sym. The artifact is JOB/model (gptq) or
 * JOB/model.gguf. */
int autoround_recipe_check(const struct recipe *r);
int autoround_recipe_quantize(const struct quant_job *j, struct quant_artifact *a);
#endif
