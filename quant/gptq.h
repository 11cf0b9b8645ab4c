/* quant/gptq.h: GPTQ (Frantar, Ashkboos, Hoefler, Alistarh, "GPTQ: Accurate Post-Training
 * Quantization for Generative Pre-trained Transformers", ICLR 2023, arXiv 2210.17323) as
 * AutoGPTQ implements it (auto_gptq/quantization/gptq.py fasterquant, quantizer.py; REFERENCE.md
 * C1), into DTYPE_QINT tensors and the GPTQ checkpoint layout (quant/qformat.h).
 *
 * Legend: W [N out][K in]; X [T tokens][K]; H [K][K]; g = group length; b = bits; maxq = 2^b − 1.
 *
 * One layer (gptq_quantize_layer), step by step as fasterquant does it:
 *  1. H = 2/n·Σ xᵀx over the calibration tokens, n = the number of calibration windows (AutoGPTQ's
 *     add_batch running mean counts batch rows, one per window; GPTQ is invariant to H's scale).
 *  2. per-channel (group_size −1): scale/zero per row from the original W (before 3., as
 *     AutoGPTQ); a group_size >= K is one group found at column 0 (7.) on the dead-zeroed W.
 *  3. dead columns (H_kk = 0): H_kk = 1 and W[:, k] = 0.
 *  4. act-order (desc_act): columns sorted by diag(H) descending; ties keep the lower column first
 *     (a stable sort; torch.argsort leaves exact ties unspecified: they arise only for dead
 *     columns or duplicated inputs).
 *  5. H_kk += damp_percent·mean(diag H); U = upper Cholesky factor of H⁻¹ (cholesky, then
 *     cholesky_inverse, then cholesky(upper)). Not positive definite -> an error asking for a
 *     larger damp_percent.
 *  6. columns in blocks of `blocksize` (128): within a block, column i is quantized with its
 *     group's parameters, err = (w − q)/U_ii, and the block's later columns get −err·U[i, i:];
 *     after the block every later column gets −Err·U[block, end:] (lazy batch update).
 *  7. groups (static_groups false): when column i (in processing order) starts a group, its
 *     scale/zero are found (Quantizer.find_params, min-max, sym or asym) on W[:, i:i+g] of the
 *     matrix as it stood at the start of the current 128-column block — exactly AutoGPTQ, which
 *     reads W and not the block's working copy W1 (so with g < blocksize a group starting inside
 *     a block has not yet seen that block's own updates). g_idx[perm[j]] = j / g.
 * lowbit's deliberate differences, both so the checkpoint reproduces the weights GPTQ solved for:
 *  - each scale is rounded to fp16 (through fp32, as AutoGPTQ's fp32 quantizer then pack()'s
 *    .half()) when its group starts, and the codes and the error feedback use that rounded scale
 *    (AutoGPTQ solves with the fp32 scale and pack() re-rounds the codes with the fp16 one); a
 *    scale that underflows fp16 to 0 becomes 2⁻²⁴;
 *  - zero points are clamped to [zero_min, maxq]: a GPTQ v1 file stores zero − 1 and cannot hold
 *    zero 0, which asym min-max gives a group with no negative weight (zero_min 1 there; the
 *    group's range then starts one step lower). gptq_v2 files use zero_min 0.
 * Precision: H is accumulated by kernels/gram.h (fp32 sums over chunks of 256 tokens, added in
 * double: within 1.5e-5·Σ|x_i·x_j| of the float64 sum); the dampening, Cholesky, inverse, the
 * error feedback and the working copy of W are double (AutoGPTQ does all of it in fp32); codes
 * are round-half-even of x/scale in double. Tolerance promised (tests/test_gptq.c against the
 * float64 numpy reference tests/ref/gptq_ref.py, whose H is float64): identical codes, fp16
 * scales and zeros, and permutation, barring an x/scale within ~1e-7 of a rounding tie; the
 * loss within 1e-6 relative.
 * Rows are independent (each row's updates depend only on that row and U), so rows run in
 * parallel with identical results for any thread count.
 *
 * The model (gptq_quantize_model): true-sequential, block by block. For block l and each of its
 * sub-groups in AutoGPTQ's true_sequential order [q,k,v], [o], [gate,up], [down], the calibration
 * driver (quant/calib.h) runs the block's stage that ends at the sub-group's input over every
 * window's residual stream (blocks 0..l−1 and the sub-groups of block l already done hold their
 * quantized weights), and the sub-group's shared input is accumulated into H by the stage's
 * mm_hook; then the sub-group's linears are quantized; FWD_OUT then gives block l+1's inputs: one
 * block pass per block. true_sequential false takes the four inputs of block l from one probe
 * with block l still in float, then runs the quantized block. The quantized weights enter the forward as fp32 tensors
 * holding exactly d·(q − z) (the values the checkpoint dequantizes to), in the source's row order:
 * the export's own fp32 rows (struct hfx_tensor f32) are overwritten in place once a module is
 * quantized, since the writer reads only the QINT tensor from then on — no memory beyond the
 * export's. Linears the GPTQ layout cannot hold (qformat_plan QPLAN_FLOAT) stay float and are not
 * calibrated; sub-groups with none to quantize cost no forward pass. */
#ifndef QUANT_GPTQ_H
#define QUANT_GPTQ_H
#include "kernels/qint.h"
#include "quant/hf_export.h"

struct gptq_opts {
    int bits;            /* 2, 3, 4, 8 */
    int64_t group;       /* a multiple of 32, or -1 (or >= K): one group per row */
    bool sym;            /* zero = (maxq+1)/2; else asym min-max */
    bool desc_act;       /* act-order */
    double damp_percent; /* 0.01 */
    int blocksize;       /* lazy-batch block, 128 */
    int zero_min;        /* lowest zero point (1 for GPTQ v1 files, else 0) */
};
#define GPTQ_OPTS_DEFAULT                                                                          \
    {.bits = 4, .group = 128, .sym = true, .desc_act = true, .damp_percent = 0.01,                 \
     .blocksize = 128, .zero_min = 1}

/* the Hessian accumulator of one input: sum = Σ xᵀx (double, full [K][K]) */
struct gptq_hessian {
    int64_t K;
    double *sum;
    long n_samples;   /* windows added (the AutoGPTQ n) */
    int64_t n_tokens; /* rows added */
};
int gptq_hessian_init(struct gptq_hessian *h, int64_t K);
void gptq_hessian_reset(struct gptq_hessian *h);
void gptq_hessian_release(struct gptq_hessian *h);
/* add T rows x [T][K] (fp32) as one calibration sample: kernels/gram.h's gram_acc (fp32 chunks
 * of 256 tokens summed in double; its error bound). -1 with a message when out of memory. */
int gptq_hessian_add(struct gptq_hessian *h, const float *x, int T);
/* H = 2/n_samples·sum into out [K][K]; -1 when nothing was added */
int gptq_hessian_get(const struct gptq_hessian *h, double *out);

struct gptq_layer_stats {
    double loss;  /* Σ (w − q)²/U_ii² / 2 over the layer (fasterquant's "error") */
    int n_dead;   /* columns with H_kk = 0 */
    double damp;  /* the value added to the diagonal */
};

/* Quantize w [N][K] (fp32, input order) with Hessian H [K][K] (read only) into *t, a DTYPE_QINT
 * tensor named `name` with q_perm when act-order is on and there is more than one group per row
 * (a single group is stored in input order: the permutation changes only the solve). The buffer
 * *buf is owned by the caller (free()). -1 with a message (bad options, H not positive definite
 * after dampening, a scale beyond fp16). */
int gptq_quantize_layer(const float *w, int64_t K, int64_t N, const double *H,
                        const struct gptq_opts *o, const char *name, struct tensor *t, void **buf,
                        struct gptq_layer_stats *st);

/* The same in two steps, so linears that share an input (q, k, v; gate, up) share the
 * factorization: gptq_prepare does 3.–5. (dead columns, the act-order permutation, dampening, U)
 * for a Hessian and the options' desc_act and damp_percent; gptq_quantize_prepared does 6.–7. for
 * one weight with them (its desc_act and damp_percent must be the prepared ones). The results are
 * those of gptq_quantize_layer. */
struct gptq_prep {
    int64_t K;
    double *u;        /* [K][K], the upper Cholesky factor of the permuted, damped H⁻¹ */
    int32_t *perm;    /* processing order of the columns */
    bool *dead;       /* [K] columns with H_kk = 0 */
    int n_dead;
    double damp;
    bool desc_act;
    double damp_percent;
};
int gptq_prepare(const double *H, int64_t K, const struct gptq_opts *o, const char *name,
                 struct gptq_prep *p);
int gptq_quantize_prepared(const float *w, int64_t N, const struct gptq_prep *p,
                           const struct gptq_opts *o, const char *name, struct tensor *t,
                           void **buf, struct gptq_layer_stats *st);
void gptq_prep_release(struct gptq_prep *p);

/* ===== the model ===== */

struct calib_set;
struct gptq_model_opts {
    struct gptq_opts q;     /* group: the config's group (per module the plan may fall back) */
    bool v2;                /* checkpoint_format gptq_v2 */
    bool true_sequential;   /* AutoGPTQ's default true */
    /* resume (NULL: off; quant/resume.h): after every block, the block's quantized linears
     * (blk-L.q), the calibration stream (x.bin, the next block's inputs) and state.json (the
     * block, the loss and timings so far) keyed by the source file, the options and the
     * calibration tokens. A run that finds its own state re-writes the finished blocks from their
     * files and goes on with the next block: the same bytes as an uninterrupted run. */
    const char *resume_dir;
    /* optional (tests): each MoE expert's Hessian just before its solve, H = 2/n·Σxᵀx over the
     * n_tokens rows routed to it (gate/up: the post-norm inputs; down: its activations), or the
     * identity when it saw too few (fallback: round-to-nearest); nonzero stops the run */
    int (*on_moe_hessian)(void *ctx, const char *module, const double *H, int64_t K,
                          int64_t n_tokens, bool fallback);
    void *on_moe_hessian_ctx;
};
struct gptq_report {
    double seconds;         /* calibration passes + solves */
    double forward_seconds; /* of which block passes (the Hessians' accumulation included) */
    double hessian_seconds; /* of which the Hessians' accumulation */
    double solve_seconds;   /* the layer solves (Cholesky, inverse, the column loop) */
    double loss;            /* Σ of the layers' losses */
    int n_forward;          /* window-block passes (windows × blocks, calib.h) */
    int resumed_blocks;     /* blocks taken from a resume state */
    /* MoE: routed experts quantized (blocks × experts), how many saw fewer than 0.5% of the
     * calibration tokens (rounded to nearest: gptq.c), the fewest and most tokens one saw */
    int moe_experts, moe_fallback;
    int64_t moe_min_tokens, moe_max_tokens;
};

/* quantize every GPTQ-holdable block linear of m (loaded from src_path; not modified) with the
 * calibration windows of cs, true-sequentially, and write the GPTQ checkpoint to out. Prints one
 * line per block (and per module kept in float) unless quiet. A mixture-of-experts block: each
 * expert with the tokens its router sends it, the router in float (gptq.c, "MoE"). */
int gptq_quantize_model(const struct model *m, const char *src_path,
                        const struct gptq_model_opts *o, const struct calib_set *cs,
                        const char *out, bool quiet, struct hfx_stats *st, struct gptq_report *rep);

/* ===== the registry row (quant/quant.c qmethods[QMETHOD_GPTQ]) ===== */
struct recipe;
struct quant_job;
struct quant_artifact;
/* gptq: weight_dtype int2/int3/int4/int8 (bits must agree); group_size -1, 32, 64 or 128 (absent:
 * 128); sym (absent: true); no double quant; compute_dtype fp32/fp16/bf16; calib_set required;
 * calib_nsamples (absent: 128), calib_seqlen (absent: 2048; capped to the model's context);
 * knobs {"desc_act": bool (true), "damp_percent": number in (0, 1] (0.01), "true_sequential":
 * bool (true), "static_groups": false only, "blocksize": 1..4096 (128), "seed": integer >= 0 (0),
 * "format": "gptq" | "gptq_v2" ("gptq")}. The artifact is JOB/model, an HF directory. */
int gptq_recipe_check(const struct recipe *r);
int gptq_recipe_quantize(const struct quant_job *j, struct quant_artifact *a);
#endif
