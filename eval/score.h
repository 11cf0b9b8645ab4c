/* eval/score.h: the scoring engine: loglikelihood requests with prefix sharing, rolling
 * loglikelihood of long texts, and KL divergence against a base model.
 *
 * score_requests() sorts requests so that those sharing a context run back to back, runs each
 * distinct context through the model once (its K/V stay in the cache), then for every
 * continuation truncates the cache back to the context and runs only the continuation tokens:
 * a context is never recomputed. Longer-than-context inputs are left-truncated to n_ctx tokens as
 * lm-eval does (max_length). Results do not depend on the order, batching or thread count. */
#ifndef EVAL_SCORE_H
#define EVAL_SCORE_H
#include "eval/forward.h"
#include "eval/task.h"

struct score_stats {
    int64_t tokens_forward; /* tokens actually run through the model */
    int64_t tokens_naive;   /* tokens a scorer without prefix sharing would run (sum of
                               ctx+cont per request, after truncation) */
    int64_t n_requests;
    double seconds;
};

/* fill loglik/greedy of every request; progress on stderr unless quiet */
int score_requests(struct fwd_state *s, struct lm_request *reqs, int n, bool quiet,
                   struct score_stats *st);

/* lm-eval loglikelihood_rolling: tokens are the document's tokens (no BOS); the first window is
 * conditioned on prefix_token (BOS/EOS), later windows on the tokens before them, max_len
 * tokens predicted per window; every token is scored exactly once. Returns the summed loglik. */
int score_rolling(struct fwd_state *s, const int *tokens, int n, int max_len, int prefix_token,
                  double *loglik, struct score_stats *st);
#endif
