/* eval/evaluate.h: evaluation as library calls. A caller loads the model and its tokenizer once,
 * asks for the leaderboard's tasks (eval_run), a perplexity (ppl_run) or a KL divergence against a
 * base (kld_base_prepare + kld_run), and gets structs back: no argv, no files to read back.
 * `lowbit eval/ppl/kld` (gen/cmd_eval.c, gen/cmd_ppl.c) print and serialize these structs; the
 * pipeline's job worker (gen/job.c) copies them into its result.
 *
 * Every call returns 0, or -1 with the message left by err() (kernels/common.h). */
#ifndef EVAL_EVALUATE_H
#define EVAL_EVALUATE_H
#include <stdbool.h>
#include <stdint.h>

#include "eval/forward.h"
#include "eval/kld.h"
#include "eval/score.h"
#include "eval/task.h"

struct tokenizer;
struct eval_task;

/* ===== the tasks (lm-evaluation-harness 0.4 semantics) ===== */

#define EVAL_DEFAULT_CTX 2048     /* max_length when the model file names no context */
#define EVAL_MAX_DEFAULT_CTX 8192 /* the model's own context is capped here */

struct eval_opts {
    const char *data_dir;      /* LOWBIT_DATA layout */
    int limit;                 /* seeded sample of this many documents per task; 0 = all */
    int seed;                  /* the sample's seed (lm-eval's 1234) */
    int ctx;                   /* lm-eval's max_length; 0 = the model's (at most 8192), else 2048 */
    int add_bos;               /* -1 = lm-eval's default (no BOS), 0 no, 1 yes */
    enum compute_dtype compute;
    bool quiet;                /* no progress on stderr */
    bool keep_texts;           /* keep each scored document's text (eval_task.texts) */
    /* called after each task with its result (eval_task below), for a caller that prints as it
     * goes; NULL for none */
    void (*on_task)(const struct eval_task *t, void *arg);
    void *arg;
};

/* a scored document's text, as the model saw it (for drill-downs): moved out of the task set */
struct eval_doc_text {
    char *context;      /* MC, LOGLIK: the context (lm-eval doc_to_text); NULL otherwise */
    char **choices;     /* MC: the choices; MC_CONTEXTS: the contexts; NULL otherwise */
    int n_choices;
    char *continuation; /* MC_CONTEXTS: the shared continuation; LOGLIK: the target */
};

struct eval_task {
    enum task_id id;
    struct task_result res; /* the metrics (lm-eval's names) and MMLU's subjects */
    struct score_stats st;  /* requests, tokens run, seconds of scoring */
    double seconds;         /* the task's wall time: requests, scoring, metrics */
    int n_docs, n_docs_full;
    int n_truncated;        /* documents with a continuation longer than max_length, scored on
                               its last max_length tokens (lm-eval's input slicing) */
    char source[4096];      /* data file(s) read */
    char sha256[65];        /* of the data as read */
    struct eval_doc_text *texts; /* n_docs, in res.docs' order, when eval_opts.keep_texts */
};

struct eval_results {
    struct eval_task *tasks; /* in the order asked */
    int n_tasks;
    int ctx;                 /* max_length used */
    bool ctx_capped;         /* the model's context was above EVAL_MAX_DEFAULT_CTX */
    bool add_bos, add_bos_default;
    int limit, seed;
    struct score_stats total;
    double seconds;          /* wall time of the whole call */
};

/* score tasks ids[0..n) on model m with tokenizer tok. The model and tokenizer stay the caller's.
 * *out is filled (release it with eval_results_release, also after a failure). */
int eval_run(const struct model *m, const struct tokenizer *tok, const enum task_id *ids, int n,
             const struct eval_opts *o, struct eval_results *out);
void eval_results_release(struct eval_results *r);
/* "multiple_choice", "loglikelihood", ...: lm-eval's output_type of a task kind */
const char *eval_kind_name(enum task_kind k);

/* ===== perplexity of a text ===== */

enum ppl_protocol {
    PPL_LLAMACPP, /* llama.cpp's perplexity tool: BOS-started chunks, second half scored */
    PPL_CHUNKS,   /* GPTQ/AWQ papers: non-overlapping windows, every position scored */
};
const char *ppl_protocol_name(enum ppl_protocol p);

struct ppl_opts {
    const char *text_name; /* for messages: the text's file */
    int ctx;             /* window, tokens */
    enum ppl_protocol protocol;
    int max_chunks;      /* 0 = every whole chunk of the text */
    enum compute_dtype compute;
    bool quiet;
};

struct ppl_result {
    double ppl, ppl_stderr; /* exp(mean NLL), llama.cpp's ± */
    double mean_nll;        /* nats/token */
    int text_tokens;        /* [BOS] + the text's tokens */
    long scored;            /* positions scored */
    int n_chunks;
    double seconds, tokens_per_s;
    long n_mm, n_mm_int8;   /* matmuls, and those run in int8 (compute int8) */
    enum compute_dtype compute;
    double *chunk_nll;      /* n_chunks: each chunk's mean NLL of its scored positions (owned) */
};
void ppl_result_release(struct ppl_result *r);

/* the perplexity of text (len bytes) under model m and tokenizer tok */
int ppl_run(const struct model *m, const struct tokenizer *tok, const char *text, size_t len,
            const struct ppl_opts *o, struct ppl_result *r);

/* an accumulator of per-position NLLs */
struct nll_acc {
    double sum, sum2;
    long n;
};
/* run tokens[0..n) from an empty cache in pieces of the state's batch; score positions j in
 * [first, n-1) (token j+1) into acc. logits: max_batch · vocab floats of scratch. */
int ppl_score_window(struct fwd_state *s, const int *tokens, int n, int first, float *logits,
                     struct nll_acc *acc);

/* ===== what it costs to run ===== */

struct speed_result {
    int ctx, n_decode, threads;
    double prefill_tps;   /* tokens/s of one ctx-token prefill from an empty cache (best of 3) */
    double decode_tps;    /* tokens/s of n_decode single-token steps after a ctx/2 prompt (best
                             of 2) */
    double memory_bytes;  /* to run at ctx: the weights as loaded, the KV cache and the forward
                             state's scratch (fwd_state's allocations, counted from its shapes) */
};
/* measure model m with compute dtype c on this host's lb_threads() threads; deterministic
 * token ids (the speed does not depend on them). -1 with a message. */
int speed_run(const struct model *m, int ctx, int n_decode, enum compute_dtype c,
              struct speed_result *r);

/* ===== KL divergence against a base model ===== */

struct kld_opts {
    const char *text_name; /* for messages: the text's file */
    int ctx;            /* chunk length (llama.cpp's protocol) */
    int max_chunks;     /* 0 = every whole chunk */
    bool f32;           /* cache the base's log-probs as f32 (else f16) */
    const char *cache_dir;
    bool quiet;
};

/* the base side: the chunks' tokens, the base's fingerprint and its cached log-probs */
struct kld_base {
    int *chunks, n_chunks, ctx, text_tokens;
    uint64_t model_hash;
    char *cache_path; /* owned */
    bool f32;
};

/* tokenize text with tok (the base's tokenizer), cut llama.cpp's chunks and make sure the base's
 * log-probs are in o->cache_dir (computed with base when the file is missing, torn or foreign).
 * base_path names the cache file (its last component). Release kb with kld_base_release. */
int kld_base_prepare(const struct model *base, const char *base_path, const struct tokenizer *tok,
                     const char *text, size_t len, const struct kld_opts *o, struct kld_base *kb);
void kld_base_release(struct kld_base *kb);
/* model m against the prepared base */
int kld_run(const struct model *m, const struct kld_base *kb, enum compute_dtype compute,
            bool quiet, struct kld_result *r);
#endif
