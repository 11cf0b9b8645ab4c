/* quant/calib.h: calibration sets for the data-driven quantizers (GPTQ first; AWQ, AutoRound,
 * imatrix-style recipes later): a text file cut into n_samples windows of seqlen tokens.
 *
 * Which file: a recipe's calib_set names either a file of $LOWBIT_DATA/datasets/calibration/
 * ("groups_merged" or "groups_merged.txt"), a path relative to $LOWBIT_DATA/datasets/
 * ("tinystories/tinystories_val.txt"), or any path (absolute, or relative to the working
 * directory; a leading "$LOWBIT_DATA" or "${LOWBIT_DATA}" is expanded). LOWBIT_DATA defaults to
 * ../shared/data, as everywhere in lowbit.
 *
 * Windows: the whole file is tokenized once without BOS (the model's tokenizer). Window i is
 *   [BOS] + text_tokens[o_i .. o_i + seqlen − 2]   (seqlen tokens)   when the tokenizer has a BOS
 *   text_tokens[o_i .. o_i + seqlen − 1]                              otherwise
 * with o_i drawn uniformly from every valid start, independently per window (windows may
 * overlap, as in the GPTQ paper's loaders). BOS first: every evaluation in lowbit scores text that
 * starts with BOS, and AutoGPTQ's usual example loaders (tokenizer(text) per example; AutoRound's
 * get_dataloader) give every sample its BOS, so position 0 sees the same activations as at
 * inference. (The GPTQ repo's datautils.get_c4/get_wikitext2 slice windows of one long encoding
 * without a BOS; that differs only in the first token of each window.)
 * RNG: splitmix64 (Steele, Lea, Flood 2014; the constants of Vigna's reference code) seeded with
 * the recipe's seed; each offset is next() reduced to [0, n_starts) by rejection (no modulo
 * bias). Same file + tokenizer + (n_samples, seqlen, seed) -> the same windows on any machine.
 *
 * Provenance: the sha256 of the file's bytes and the sha256 of the windows (n_samples·seqlen
 * int32 little-endian token ids, row by row). */
#ifndef QUANT_CALIB_H
#define QUANT_CALIB_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tokenizer;

struct calib_set {
    char path[4096];        /* the file read */
    char file_sha256[65];   /* of its bytes */
    char tokens_sha256[65]; /* of the windows */
    int64_t n_text_tokens;  /* tokens of the whole file (no BOS) */
    int n_samples, seqlen;
    uint64_t seed;
    bool bos;               /* windows start with BOS */
    int *tokens;            /* [n_samples][seqlen], owned */
};

/* the file calib_set names (rules above) into path; -1 with a message listing where it looked */
int calib_resolve(const char *name, char *path, size_t size);

/* read, tokenize and cut the calibration set (c is overwritten; release with calib_release).
 * -1 with a message: missing file, no tokenizer, a text shorter than one window. */
struct quant_job;
/* a quantizer's calibration set from its recipe: calib_nsamples (default 128) windows of
 * calib_seqlen (default 2048, capped to the model's context) tokens with `seed`; says so on
 * stderr (prefixed "algo: ") unless the job is quiet. -1 with a message. */
int calib_load_job(struct calib_set *c, const char *algo, const struct quant_job *j,
                   uint64_t seed);
int calib_load(struct calib_set *c, const char *name, const struct tokenizer *tok, int n_samples,
               int seqlen, uint64_t seed);
void calib_release(struct calib_set *c);

/* splitmix64: *state advances; exposed for tests */
uint64_t calib_rng_next(uint64_t *state);

/* ===== true-sequential passes (quant/gptq.c, quant/awq.c) =====
 * The calibrated quantizers run the windows through forward() with a copy of the model whose
 * layer slots point at the export's fp32 rows (struct hfx_tensor f32) once a module is done. */
struct model;
struct tensor;
struct hfx_tensor;
/* the source row of export row r: GGUF/llama2.c q/k rows are interleaved pairs, the export's are
 * HF's half-split (hf_export.h: HF row h·hd + s·hd/2 + i = source row h·hd + 2i + s); r itself
 * for other tensors (qk false) and for HF sources */
int64_t calib_source_row(const struct model *m, bool qk, int64_t r);
/* *slot becomes an fp32 [N][K] view of data (its name kept; data borrowed) */
void calib_f32_slot(struct tensor *slot, float *data, int64_t K, int64_t N);
/* a quantized module swapped into the forward: t->q dequantized, d·(q − z), into t->f32 in the
 * SOURCE row order (the writer reads only t->q from then on), and *slot an fp32 view of it */
void calib_swap_in(const struct model *m, struct hfx_tensor *t, bool qk, struct tensor *slot);
/* the process's peak resident set (VmHWM) in MiB, -1 when /proc cannot tell */
double calib_peak_rss_mb(void);

/* ===== the calibration driver: every window through the model one block at a time =====
 * The layer-wise procedure AutoGPTQ and AutoRound use: the windows are embedded once; the stream
 * holds the residual stream of every window at the current block, x [n][seqlen][D], and a carry
 * [n][seqlen][max(qd, H)] between the block's stages (eval/forward.h, enum fwd_stage). A quantizer
 * runs block l's stages in order, each over every window (calib_stream_stage), collecting what its
 * method needs through fs.mm_hook (which sees each stage's linear input with the group's first
 * weight, the anchors wq, wo, w_gate, w_down of fm's layer l) and replacing layer slots of fm with
 * quantized weights between stages; FWD_OUT leaves block l's outputs in x, block l+1's inputs.
 * One block pass per block: L block passes for a model of L blocks, not L(L+1)/2 as running every
 * window from the embeddings up to block l for every l. The numbers are those of forward() with
 * the same weights (the same stage functions, windows of seqlen tokens from position 0).
 * calib_stream_probe runs stages on a copy of each window (x unchanged): AWQ and GPTQ without
 * true_sequential collect every input of a block in float, quantize, then run the block.
 * keep_input keeps a copy of each block's input (calib_stream_redo runs block l again from it,
 * with whatever weights fm's slots hold then: AQLM's block fine-tuning changes the whole block
 * after its stages).
 * Memory: x and carry (and the kept input) are n·seqlen·(D + max(qd, H) (+ D)) floats; above
 * `budget` bytes (calib_stream_budget(): LOWBIT_CALIB_MEM MiB, else a quarter of the available
 * memory, at most 2 GiB) they live in an unlinked file beside `spill` (the job's directory): the
 * kernel pages them, they are not anonymous memory, and nothing is left behind on a crash. */
#include "eval/forward.h"
struct calib_stream {
    struct fwd_state fs; /* a one-block state over fm; set fs.mm_hook / mm_hook_ctx to collect */
    const struct calib_set *cs;
    int n, T, D, wc;     /* windows, tokens per window, dim, carry width */
    float *x, *carry, *x0, *scratch; /* x0: the block input (keep_input), scratch: a probe's */
    void *map;
    size_t map_len;
    bool spilled;
    int block, next;     /* the stage the stream expects next, of block `block` */
    long n_block_passes; /* windows × blocks run to the end (FWD_OUT), for reports */
    double seconds;      /* in the stages */
};
size_t calib_stream_budget(void);
/* a routed expert that saw fewer than this share of the calibration tokens is rounded to nearest
 * by the calibrated quantizers (GPTQ, AWQ): GPTQModel's Fallback default, 0.5% */
#define CALIB_MOE_MIN_SHARE 0.005
/* the anonymous bytes calib_stream_init will hold for cs on a model of configuration c (0 when
 * the stream spills to a file; a memory plan's share) */
size_t calib_stream_bytes(const struct model *m, const struct calib_set *cs, bool keep_input);
/* embed every window of cs with fm's token embeddings; fm must outlive the stream */
int calib_stream_init(struct calib_stream *st, const struct model *fm, const struct calib_set *cs,
                      bool keep_input, const char *spill);
/* stage `stage` of block l over every window (stages in order, from FWD_QKV of block l after
 * FWD_OUT of block l−1); -1 with a message */
int calib_stream_stage(struct calib_stream *st, int l, enum fwd_stage stage);
/* the remaining stages of block l, through FWD_OUT */
int calib_stream_finish(struct calib_stream *st, int l);
/* stages FWD_QKV..upto of block l on a copy of every window (the stream does not move) */
int calib_stream_probe(struct calib_stream *st, int l, enum fwd_stage upto);
/* FWD_OUT of block l on a copy of every window (the stream stands before block l's FWD_OUT;
 * it does not move): a MoE block's experts run again, e.g. with fs.hook_experts, after some of
 * them were quantized */
int calib_stream_probe_out(struct calib_stream *st, int l);
/* block l again from its kept input (keep_input), every stage, through FWD_OUT */
int calib_stream_redo(struct calib_stream *st, int l);
void calib_stream_release(struct calib_stream *st);
/* the stream in a block checkpoint (quant/resume.h): save after block l's FWD_OUT (x, named
 * "x.bin"); restore: x as saved after block l_done, block l_done + 1 next */
struct qresume;
int calib_stream_save(const struct calib_stream *st, const struct qresume *r);
int calib_stream_restore(struct calib_stream *st, const struct qresume *r, int l_done);
#endif
