/* eval/kld.h: KL divergence of a (quantized) model against its base model on the same tokens, with
 * the statistics llama.cpp's perplexity tool prints for --kl-divergence-base / --kl-divergence
 * (tools/perplexity/perplexity.cpp, kl_divergence()).
 *
 * Tokens and positions: llama.cpp's chunk protocol, the same as `lowbit ppl --protocol llamacpp`:
 * tokens = [BOS] + encode(text); n_chunks = floor(n / n_ctx) (optionally fewer); chunk c is
 * tokens [c·n_ctx, (c+1)·n_ctx) with its first token replaced by BOS, run from an empty cache;
 * positions j in [n_ctx/2, n_ctx-1) are scored, each predicting token j+1 (n_ctx-1-n_ctx/2 rows a
 * chunk). So PPL(base) here equals `lowbit ppl --protocol llamacpp` of the base.
 *
 * Per scored position, with P = the base's next-token distribution, Q = the model's:
 *   KLD = KL(P || Q) = Σ_v P(v) (log P(v) - log Q(v))       (nats)
 *   Δp  = Q(correct) - P(correct);  same top = argmax P == argmax Q (lowest index on ties)
 * Reported as llama.cpp does: mean ± sqrt(var/(n-1)) (0 when n <= 10), the percentiles by linear
 * interpolation on the sorted values, RMS Δp ± its propagated error, same-top % ± binomial error,
 * PPL(Q), PPL(base) and their ratio/difference with the covariance of the two NLLs.
 * One difference: llama.cpp stores the base log-probs as 16-bit steps over [max-16, max] and
 * skips base log-probs below -16 in the KLD sum; we store every log-prob (f32, or f16 renormalized
 * on read), so our KLD is exact (f32) or within ~2^-11 relative (f16) of KL(P || Q).
 *
 * Base file (the base's log-probs, computed once per base model, text and protocol), all values
 * little-endian:
 *     0  char[8]   magic "LBKLDLP\0"
 *     8  u32       version (1)
 *    12  u32       dtype of the rows' log-probs: 0 = f32, 1 = f16
 *    16  u32       n_vocab
 *    20  u32       n_ctx
 *    24  u32       n_chunks
 *    28  u32       first scored position (n_ctx/2)
 *    32  u64       the base model's fingerprint (kld_model_hash)
 *    40  u64       hash of the tokens below (kld_tokens_hash)
 *    48  char[64]  the base model's file name (NUL-padded; for messages only)
 *   112  i32[n_chunks·n_ctx]  the chunks' tokens as run (first of each chunk = BOS)
 *   then n_chunks · (n_ctx-1-first) rows in chunk order, each:
 *          f32 log P(correct next token) (from the full-precision logits)
 *          i32 argmax of the base logits
 *          n_vocab log P(v), f32 or f16 (IEEE binary16, round-to-nearest-even)
 *   and last a u64 checksum of everything before it: h = 0, then h = kld_hash_bytes(section,
 *   h) for the header, the tokens and each chunk's rows in turn.
 * The file is written to PATH.tmp and renamed, so a file at PATH is always whole; a reader
 * checks magic, version, dtype, the size implied by the header, the vocabulary, the tokens and
 * the checksum, and refuses the file with a message naming what differs. */
#ifndef EVAL_KLD_H
#define EVAL_KLD_H
#include <stdbool.h>
#include <stdint.h>

#include "eval/forward.h"

#define KLD_MAGIC "LBKLDLP"
#define KLD_VERSION 1u
#define KLD_HEADER_BYTES 112

enum kld_dtype { KLD_F32, KLD_F16, KLD_DTYPE_COUNT };

/* a fingerprint of a model's weights and shape: every tensor's name, type, dims and bytes (in name
 * order, so the same weights in another container hash the same) plus the config's numbers. Not
 * cryptographic: it names a cache entry. Reads every weight byte once. */
uint64_t kld_model_hash(const struct model *m);
uint64_t kld_tokens_hash(const int *tokens, size_t n);
/* a 64-bit hash of n bytes (4-lane multiply-rotate rounds, avalanche finish) */
uint64_t kld_hash_bytes(const void *data, size_t n, uint64_t seed);

/* llama.cpp's chunks of ids ([BOS] + text tokens): floor(n_ids / n_ctx) chunks (at most
 * max_chunks when > 0), first token of each replaced by bos (when bos >= 0). *chunks is owned
 * (free()), n_chunks·n_ctx ints. -1 with a message when fewer than 2·n_ctx tokens (llama.cpp's
 * requirement) or when n_ctx < 4. */
int kld_make_chunks(const int *ids, int n_ids, int n_ctx, int bos, int max_chunks, int **chunks,
                    int *n_chunks);

/* run the base model (state s, s->n_ctx >= n_ctx) over every chunk and write its log-probs to
 * path (via path.tmp + rename). model_name is recorded for messages. -1 with a message. */
int kld_base_write(struct fwd_state *s, const int *chunks, int n_chunks, int n_ctx,
                   enum kld_dtype dtype, uint64_t model_hash, const char *model_name,
                   const char *path, bool quiet);

/* what a base file's header says (kld_base_info reads and checks only the header and size) */
struct kld_base_info {
    enum kld_dtype dtype;
    int n_vocab, n_ctx, n_chunks, first;
    uint64_t model_hash, tokens_hash;
    char model_name[65];
};
int kld_base_info(const char *path, struct kld_base_info *info);

#define KLD_N_PCT 11 /* KLD percentiles: max, 99.9, 99, 95, 90, median, 10, 5, 1, 0.1, min */
#define KLD_N_DP_PCT 13 /* Δp: max, 99.9, 99, 95, 90, 75, median, 25, 10, 5, 1, 0.1, min */
extern const double kld_pct_frac[KLD_N_PCT];
extern const double kld_dp_pct_frac[KLD_N_DP_PCT];

struct kld_result {
    long n; /* positions scored */
    int n_chunks, n_ctx;
    double ppl_q, ppl_q_err, ppl_base, ppl_base_err;
    double ppl_cor;                          /* Cor(ln PPL(Q), ln PPL(base)) */
    double log_ppl_ratio, log_ppl_ratio_err; /* mean ln(PPL(Q)/PPL(base)) */
    double ppl_ratio, ppl_ratio_err, ppl_diff, ppl_diff_err;
    double kld_mean, kld_err, kld_pct[KLD_N_PCT];
    double dp_mean, dp_err, dp_pct[KLD_N_DP_PCT]; /* Δp as a fraction (not %) */
    double dp_rms, dp_rms_err;
    double same_top, same_top_err; /* fraction */
    double seconds;
    double *chunk_kld, *chunk_nll; /* n_chunks: each chunk's mean KLD and mean NLL of the model
                                      (owned: kld_result_release) */
};

/* run the model (state s) over the chunks stored in the base file and compare. When chunks is not
 * NULL, the file's tokens must equal them (same text, tokenizer, ctx and chunk count); when
 * base_hash is not 0, the file's model fingerprint must equal it. The model's vocabulary must
 * match the file's. -1 with a message naming the file and what differs. */
int kld_compare(struct fwd_state *s, const char *base_path, const int *chunks, int n_chunks,
                int n_ctx, uint64_t base_hash, bool quiet, struct kld_result *res);
void kld_result_release(struct kld_result *res);
#endif
