/* eval/task.h: the leaderboard's tasks as lm-evaluation-harness defines them, and the
 * loglikelihood requests they become.
 *
 * Flow: task_load() reads a task's documents from LOWBIT_DATA (or a user's JSONL file);
 * task_build_requests() turns every document into lm-eval requests (context string,
 * continuation string) and tokenizes them the way lm-eval's _encode_pair does (trailing context
 * spaces move to the continuation; the joint string is encoded and split at the context's token
 * count); the scorer (eval/score.h) fills each request's loglik/greedy; task_metrics() computes
 * acc, acc_norm, perplexity, ... with lm-eval's aggregation and stderr. */
#ifndef EVAL_TASK_H
#define EVAL_TASK_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tokenizer;

enum task_id {
    TASK_ARC_CHALLENGE,
    TASK_ARC_EASY,
    TASK_BOOLQ,
    TASK_HELLASWAG,
    TASK_LAMBADA,
    TASK_MMLU,
    TASK_OPENBOOKQA,
    TASK_PIQA,
    TASK_TRUTHFULQA_MC1,
    TASK_WINOGRANDE,
    TASK_WIKITEXT,
    TASK_COUNT
};

enum task_kind {
    TASK_KIND_MC,          /* one context, n choices as continuations (" " + choice) */
    TASK_KIND_MC_CONTEXTS, /* winogrande: n contexts, one shared continuation */
    TASK_KIND_LOGLIK,      /* lambada: context + " " + last word; acc = greedy, perplexity */
    TASK_KIND_ROLLING,     /* wikitext: whole documents, rolling windows, word/byte perplexity */
};

/* the one definition of a task: everything else (lowbit eval's and lowbit run's --tasks, the
 * pipeline's default sample sizes, lowbit import's names, the database's tasks table and through
 * it the site's columns) reads it from here */
struct task_info {
    const char *name;    /* lm-eval task name: "arc_challenge", ..., "wikitext" */
    const char *label;   /* column header as on Intel's board: "ARC-c", ... */
    const char *abbr;    /* short label for charts: "HellaS.", ... */
    const char *title;   /* what it is, for documentation: "ARC-Challenge", "LAMBADA (OpenAI)" */
    enum task_kind kind;
    int expected_docs;   /* the documented full-set size (0 = not fixed) */
    const char *metrics; /* comma list of metrics lm-eval reports, e.g. "acc,acc_norm" */
    const char *board_metric; /* the metric of the board's average ("acc"); NULL: not in it */
    int default_limit;   /* the pipeline's seeded sample without --full (0 = the whole set) */
    const char *aliases; /* comma list of other names it goes by (Intel's "arc:challenge", ...) */
};
const struct task_info *task_get(enum task_id id);
/* the task of a name, a label (any case) or an alias; -1 when unknown */
int task_from_name(const char *name);

struct task_doc {
    char *context;     /* MC, LOGLIK: the context string (lm-eval doc_to_text) */
    char **choices;    /* MC: choice strings without the delimiter; MC_CONTEXTS: the contexts */
    int n_choices;
    char *continuation; /* MC_CONTEXTS: the shared continuation; LOGLIK: the target (both
                           without the " " delimiter, which the requests add) */
    int gold;           /* index of the right choice (-1 for LOGLIK/ROLLING) */
    char *subject;      /* MMLU subtask name, else NULL */
    char *text;         /* ROLLING: the page text to score (detokenized) */
    int64_t words, bytes; /* ROLLING: counts of the original page (word/byte perplexity) */
    int index;            /* its position in the full set (task_limit keeps it) */
};

struct task_set {
    enum task_id id;
    struct task_doc *docs;
    int n_docs;
    char source[4096];   /* file(s) read, for provenance */
    char sha256[65];     /* of the data file(s) as read (concatenated in a fixed order) */
};

/* read task id's documents from data_dir (LOWBIT_DATA layout, see ../shared/data/MANIFEST.md) or,
 * when path is not NULL, from the user's file in the same layout. Missing file: -1 with one line
 * naming the file and LOWBIT_DATA. Malformed file: -1 naming file and line. */
int task_load(struct task_set *ts, enum task_id id, const char *data_dir, const char *path);
void task_release(struct task_set *ts);
/* the name a data file is recorded under: "$LOWBIT_DATA/rest" when path is data_dir/rest, else
 * path itself (the published pages name no machine's paths); cut at cap */
void task_data_name(char *out, size_t cap, const char *path, const char *data_dir);
/* keep a seeded, stable sample of n documents (n >= n_docs keeps all); the sample depends only on
 * (seed, n, n_docs) and keeps the documents' original order */
void task_limit(struct task_set *ts, int n, uint64_t seed);

/* one loglikelihood request */
struct lm_request {
    int doc, choice;    /* which document, which choice/context */
    int *ctx, n_ctx;    /* context token ids (BOS first when add_bos), owned */
    int *cont, n_cont;  /* continuation token ids, n_cont >= 1, owned */
    double loglik;      /* filled by the scorer: sum of log p(cont | ctx) */
    bool greedy;        /* filled by the scorer: every continuation token is the argmax */
    bool truncated;     /* filled by the scorer: the continuation was longer than the context
                           (max_length): only its last max_length tokens were scored */
};

struct request_set {
    struct lm_request *reqs;
    int n;
    bool add_bos;
};

/* build and tokenize every request of the task. add_bos: prefix BOS to every request's context
 * (recorded in results). ROLLING: one request per page, n_ctx = 0, cont = the page's tokens (BOS
 * first when add_bos); the scorer stores the page's summed loglik. -1 with a message. */
int task_build_requests(const struct task_set *ts, const struct tokenizer *tok, bool add_bos,
                        struct request_set *rs);
void request_set_release(struct request_set *rs);

struct metric_value {
    const char *name; /* "acc", "acc_norm", "perplexity", "word_perplexity", ... */
    double value, stderr_;
};
/* one document's result: what the aggregate metrics are the mean of (issue 17's per-sample
 * records, the paired statistics' input) */
struct task_doc_score {
    int index;            /* the document's position in the full set (task_doc.index) */
    int gold;             /* MC: the right choice; -1 otherwise */
    int pred, pred_norm;  /* MC: argmax of loglik, of loglik per character; -1 otherwise */
    double acc, acc_norm; /* 1 right, 0 wrong; NAN when the task does not report it */
    double loglik;        /* LOGLIK, ROLLING: the document's log-likelihood; NAN for MC */
    int first, n_choices; /* MC: its choices' log-likelihoods are lls[first .. first + n) */
    bool truncated;       /* a request of it was cut to the context (lm_request.truncated) */
};
struct task_result {
    enum task_id id;
    int n_docs;
    struct task_doc_score *docs; /* n_docs, in the set's order (owned) */
    double *lls;                 /* MC: every (document, choice) log-likelihood (owned) */
    struct metric_value m[8];
    int n_metrics;
    /* MMLU: per-subject acc and count, for the details file */
    struct { char name[64]; double acc; int n; } *subjects;
    int n_subjects;
};
/* aggregate per lm-eval (mean over docs, stderr = sample std / sqrt(n); perplexity and the
 * wikitext perplexities as lm-eval computes them; MMLU micro-averaged) */
int task_metrics(const struct task_set *ts, const struct request_set *rs, struct task_result *res);
void task_result_release(struct task_result *res);
#endif
