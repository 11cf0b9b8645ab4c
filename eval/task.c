/* eval/task.c: the task registry, task_load's dispatch to the readers (eval/task_data.c), the
 * seeded sample, and the tokenized requests.
 *
 * Request semantics are lm-evaluation-harness's, read in its source at v0.4.2 (checked against
 * the Intel-pinned 008fc2a2 = v0.3.0 and HEAD 4e7e0d47):
 *  - ConfigurableTask.construct_requests (lm_eval/api/task.py): multiple_choice sends
 *    (ctx, " " + choice) per choice; with multiple inputs (winogrande) (ctx + choice_i,
 *    " " + target); loglikelihood (lambada) (ctx, target) with target = " " + last word.
 *    target_delimiter defaults to " " (lm_eval/api/task.py TaskConfig).
 *  - LM.loglikelihood / _encode_pair (lm_eval/api/model.py):
 *        n_spaces = len(context) - len(context.rstrip())   (Python whitespace)
 *        continuation = context[-n_spaces:] + continuation; context = context[:-n_spaces]
 *        whole_enc = tok_encode(context + continuation); context_enc = tok_encode(context)
 *        continuation_enc = whole_enc[len(context_enc):]
 *    and an empty context becomes [eot_token_id] + tok_encode(continuation) (v0.4.2, v0.3.0;
 *    HEAD uses prefix_token_id = BOS when the tokenizer has one).
 *  - BOS (lm_eval/models/huggingface.py HFLM.tok_encode): v0.3.0 (008fc2a2, models/gpt2.py
 *    tok_encode: add_special_tokens=False) and v0.4.0 .. v0.4.9 encode with
 *    add_special_tokens = False or self.add_bos_token, add_bos_token defaulting to False (forced
 *    True only for Gemma since v0.4.2): no BOS for Llama unless --model_args add_bos_token=True.
 *    Commit 5302f2a9 (#3347, Nov 2025, released in v0.4.10) made add_bos_token default to None,
 *    i.e. the tokenizer's own default: Llama tokenizers then add BOS. With BOS, both encodes
 *    start with it, so it lands on the context side of the split -- what add_bos does here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "eval/task_impl.h"
#include "eval/tokenizer.h"
#include "kernels/common.h"

/* ===== registry ===== */

/* names: lm-eval task names; labels: Intel board column headers (src/display/utils.py); sizes:
 * lm-eval's documents per split (README / dataset cards; checked on our files). The ten tasks
 * with a board metric are Intel's, averaged with plain "acc". Aliases: Intel's result files spell
 * lm-eval 0.4's group:task keys ("arc:challenge"); lowbit import also meets older and shorter
 * names. Default samples (lowbit run without --full): measured on stories260K with one thread on
 * this project's 2-core machine while it was shared (load ~12), about 4.5 minutes a job, so `make
 * report` (4 jobs, -j 2) stays inside 20 minutes even then; a third of a job is wikitext (rolling
 * windows of max_length tokens, ~15k tokens a page with a 512-token vocabulary). Standard errors
 * at these sizes: about ±2.2% (500), ±3.5% (200), ±5% (100). */
static const struct task_info infos[TASK_COUNT] = {
    [TASK_ARC_CHALLENGE] = {"arc_challenge", "ARC-c", "ARC-c", "ARC-Challenge", TASK_KIND_MC, 1172,
                            "acc,acc_norm", "acc", 500, "arc:challenge,arc,arc_c"},
    [TASK_ARC_EASY] = {"arc_easy", "ARC-e", "ARC-e", "ARC-Easy", TASK_KIND_MC, 2376,
                       "acc,acc_norm", "acc", 500, "arc:easy,arc_e"},
    [TASK_BOOLQ] = {"boolq", "Boolq", "Boolq", "BoolQ", TASK_KIND_MC, 3270, "acc", "acc",
                    100 /* long passages */, ""},
    [TASK_HELLASWAG] = {"hellaswag", "HellaSwag", "HellaS.", "HellaSwag", TASK_KIND_MC, 10042,
                        "acc,acc_norm", "acc", 200, ""},
    [TASK_LAMBADA] = {"lambada_openai", "Lambada", "Lambada", "LAMBADA (OpenAI)",
                      TASK_KIND_LOGLIK, 5153, "perplexity,acc", "acc", 300,
                      "lambada:openai,lambada"},
    [TASK_MMLU] = {"mmlu", "MMLU", "MMLU", "MMLU", TASK_KIND_MC, 14042, "acc", "acc", 200, ""},
    [TASK_OPENBOOKQA] = {"openbookqa", "Openbookqa", "OBQA", "OpenBookQA", TASK_KIND_MC, 500,
                         "acc,acc_norm", "acc", 500, ""},
    [TASK_PIQA] = {"piqa", "Piqa", "Piqa", "PIQA", TASK_KIND_MC, 1838, "acc,acc_norm", "acc", 500,
                   ""},
    [TASK_TRUTHFULQA_MC1] = {"truthfulqa_mc1", "Truthfulqa", "TruthQA", "TruthfulQA mc1",
                             TASK_KIND_MC, 817, "acc", "acc", 200 /* long 6-shot preamble */,
                             "truthfulqa:mc1,truthfulqa_mc,truthfulqa"},
    [TASK_WINOGRANDE] = {"winogrande", "Winogrande", "Wino.", "Winogrande",
                         TASK_KIND_MC_CONTEXTS, 1267, "acc", "acc", 500, ""},
    [TASK_WIKITEXT] = {"wikitext", "Wikitext", "Wikitext", "WikiText-2 (rolling)",
                       TASK_KIND_ROLLING, 62, "word_perplexity,byte_perplexity,bits_per_byte",
                       NULL, 2 /* pages */, "wikitext2"},
};

const struct task_info *task_get(enum task_id id) {
    return (unsigned)id < TASK_COUNT ? &infos[id] : NULL;
}

/* name is one of the comma list's items (any case) */
static bool in_list(const char *list, const char *name) {
    const size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *end = strchr(p, ',');
        if (!end) end = p + strlen(p);
        if ((size_t)(end - p) == n && !strncasecmp(p, name, n)) return true;
        p = *end ? end + 1 : end;
    }
    return false;
}

int task_from_name(const char *name) {
    if (!name || !*name) return -1;
    for (int i = 0; i < TASK_COUNT; i++)
        if (!strcmp(name, infos[i].name) || !strcasecmp(name, infos[i].label) ||
            in_list(infos[i].aliases, name))
            return i;
    return -1;
}

/* ===== loading ===== */

/* default files under LOWBIT_DATA (../shared/data/MANIFEST.md); aux = second file */
static const struct {
    const char *file, *aux;
} layout[TASK_COUNT] = {
    [TASK_ARC_CHALLENGE] = {"arc/ARC-Challenge-Test.jsonl", NULL},
    [TASK_ARC_EASY] = {"arc/ARC-Easy-Test.jsonl", NULL},
    [TASK_BOOLQ] = {"boolq/val.jsonl", NULL},
    [TASK_HELLASWAG] = {"hellaswag/hellaswag_val_full.txt", NULL},
    [TASK_LAMBADA] = {"lambada/lambada_test.jsonl", NULL},
    [TASK_MMLU] = {"mmlu/test", NULL},
    [TASK_OPENBOOKQA] = {"openbookqa/test.tsv", NULL},
    [TASK_PIQA] = {"piqa/valid.jsonl", "piqa/valid-labels.lst"},
    [TASK_TRUTHFULQA_MC1] = {"truthfulqa/v0/mc_task.json", NULL},
    [TASK_WINOGRANDE] = {"winogrande/winogrande.jsonl", "winogrande/dev-labels.lst"},
    [TASK_WIKITEXT] = {"wikitext-2/wikitext-2-raw/wiki.test.raw", NULL},
};

/* "<dir>/datasets/<rel>" (the shared data layout), else "<dir>/<rel>" when only that exists */
static char *data_path(const char *dir, const char *rel) {
    struct stat st;
    char *a = task_concat(dir, "/datasets/", rel, (char *)NULL);
    if (!a || !stat(a, &st)) return a;
    char *b = task_concat(dir, "/", rel, (char *)NULL);
    if (b && !stat(b, &st)) {
        free(a);
        return b;
    }
    free(b);
    return a; /* missing: the reader reports the canonical path */
}

/* a user's PIQA file "x.jsonl" has its labels in "x-labels.lst" */
static char *piqa_labels_for(const char *path) {
    size_t n = strlen(path);
    if (n > 6 && !strcmp(path + n - 6, ".jsonl")) n -= 6;
    char *stem = task_strndup(path, n);
    char *p = stem ? task_concat(stem, "-labels.lst", (char *)NULL) : NULL;
    free(stem);
    return p;
}

static int read_task(struct task_rd *r, enum task_id id, const char *file, const char *aux) {
    switch (id) {
    case TASK_ARC_CHALLENGE:
    case TASK_ARC_EASY: return task_read_arc(r, file);
    case TASK_BOOLQ: return task_read_boolq(r, file);
    case TASK_HELLASWAG: return task_read_hellaswag(r, file);
    case TASK_LAMBADA: return task_read_lambada(r, file);
    case TASK_MMLU: return task_read_mmlu(r, file);
    case TASK_OPENBOOKQA: return task_read_openbookqa(r, file);
    case TASK_PIQA: return task_read_piqa(r, file, aux);
    case TASK_TRUTHFULQA_MC1: return task_read_truthfulqa(r, file);
    case TASK_WINOGRANDE: return task_read_winogrande(r, file, aux);
    case TASK_WIKITEXT: return task_read_wikitext(r, file);
    case TASK_COUNT: break;
    }
    BUG("task id %d", (int)id);
}

int task_load(struct task_set *ts, enum task_id id, const char *data_dir, const char *path) {
    memset(ts, 0, sizeof *ts);
    ts->id = id;
    if ((unsigned)id >= TASK_COUNT) return err("task_load: unknown task id %d", (int)id);
    if (!data_dir) data_dir = getenv("LOWBIT_DATA");
    if (!data_dir || !*data_dir) data_dir = "../shared/data";
    struct task_rd r = {.ts = ts};
    sha256_init(&r.sha);
    char *file = NULL, *aux = NULL;
    if (path) {
        file = task_strdup(path);
        if (id == TASK_PIQA) aux = piqa_labels_for(path);
    } else {
        r.data_dir = data_dir;
        file = data_path(data_dir, layout[id].file);
        if (layout[id].aux) aux = data_path(data_dir, layout[id].aux);
    }
    /* a user's WinoGrande file needs no labels file (its rows carry the answer) */
    int rc = file && (!layout[id].aux || aux || path) ? read_task(&r, id, file, aux) : -1;
    if (!rc && !path && infos[id].expected_docs && ts->n_docs != infos[id].expected_docs)
        rc = err("%s: %d documents, expected lm-eval's %d for %s (truncated or wrong file?)", file,
                 ts->n_docs, infos[id].expected_docs, infos[id].name);
    if (!rc && !ts->n_docs) rc = err("%s: no documents", file);
    free(file);
    free(aux);
    if (rc) {
        task_release(ts);
        ts->id = id;
        return -1;
    }
    sha256_hex(&r.sha, ts->sha256);
    for (int i = 0; i < ts->n_docs; i++) ts->docs[i].index = i;
    return 0;
}

void task_data_name(char *out, size_t cap, const char *path, const char *data_dir) {
    const size_t nd = data_dir ? strlen(data_dir) : 0;
    if (nd && !strncmp(path, data_dir, nd) && path[nd] == '/')
        snprintf(out, cap, "$LOWBIT_DATA%s", path + nd);
    else
        snprintf(out, cap, "%s", path);
}

static void doc_release(struct task_doc *d) {
    free(d->context);
    for (int j = 0; j < d->n_choices; j++) free(d->choices[j]);
    free(d->choices);
    free(d->continuation);
    free(d->subject);
    free(d->text);
    memset(d, 0, sizeof *d);
}

void task_release(struct task_set *ts) {
    for (int i = 0; i < ts->n_docs; i++) doc_release(&ts->docs[i]);
    free(ts->docs);
    memset(ts, 0, sizeof *ts);
}

/* ===== sample ===== */

static uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

struct rank {
    uint64_t key;
    int i;
};

static int cmp_rank(const void *a, const void *b) {
    const struct rank *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

/* every document gets the key splitmix64(seed ^ splitmix64(index)); the n smallest keys stay.
 * The choice depends on (seed, n, n_docs) only, and a larger n keeps a superset. */
void task_limit(struct task_set *ts, int n, uint64_t seed) {
    if (n < 0) n = 0;
    if (n >= ts->n_docs) return;
    struct rank *rk = malloc((size_t)ts->n_docs * sizeof *rk);
    bool *keep = calloc((size_t)ts->n_docs, 1);
    if (!rk || !keep) BUG("out of memory sampling %d documents", ts->n_docs);
    for (int i = 0; i < ts->n_docs; i++)
        rk[i] = (struct rank){splitmix64(seed ^ splitmix64((uint64_t)i)), i};
    qsort(rk, (size_t)ts->n_docs, sizeof *rk, cmp_rank);
    for (int k = 0; k < n; k++) keep[rk[k].i] = true;
    int m = 0;
    for (int i = 0; i < ts->n_docs; i++) {
        if (keep[i]) ts->docs[m++] = ts->docs[i];
        else doc_release(&ts->docs[i]);
    }
    ts->n_docs = m;
    free(rk);
    free(keep);
}

/* ===== requests ===== */

static void req_release(struct lm_request *q) {
    free(q->ctx);
    free(q->cont);
    q->ctx = q->cont = NULL;
    q->n_ctx = q->n_cont = 0;
}

void request_set_release(struct request_set *rs) {
    for (int i = 0; i < rs->n; i++) req_release(&rs->reqs[i]);
    free(rs->reqs);
    memset(rs, 0, sizeof *rs);
}

/* context-side encoding shared by every request of one context string: encode(ctx.rstrip()) */
struct ctx_enc {
    int *ids;
    int n;
};

static int encode_ctx(const struct tokenizer *tok, const char *ctx, struct ctx_enc *ce) {
    return tokenizer_encode(tok, ctx, py_rstrip_len(ctx, strlen(ctx)), false, &ce->ids, &ce->n);
}

/* _encode_pair(ctx, cont) into q. ce = encode_ctx(ctx) (ignored for an empty ctx). Since the
 * moved spaces rejoin the continuation, context + continuation is just ctx + cont. */
static int encode_pair(const struct tokenizer *tok, const char *ctx, const struct ctx_enc *ce,
                       const char *cont, bool add_bos, struct lm_request *q, const char *task,
                       int doc) {
    int *whole = NULL, n_whole = 0, lead = add_bos ? tokenizer_bos(tok) : tokenizer_eos(tok);
    if (add_bos && lead < 0) return err("%s: add_bos asked but the tokenizer has no BOS", task);
    if (!*ctx) { /* lm-eval: empty context -> the prefix token alone */
        if (lead < 0)
            return err("%s doc %d: empty context and the tokenizer has no EOS", task, doc);
        if (tokenizer_encode(tok, cont, strlen(cont), false, &q->cont, &q->n_cont)) return -1;
        if (!(q->ctx = xmalloc(sizeof(int), "request context"))) return -1;
        q->ctx[0] = lead;
        q->n_ctx = 1;
    } else {
        size_t nc = strlen(ctx), nt = strlen(cont);
        char *joint = xmalloc(nc + nt + 1, "request text");
        if (!joint) return -1;
        memcpy(joint, ctx, nc);
        memcpy(joint + nc, cont, nt + 1);
        int rc = tokenizer_encode(tok, joint, nc + nt, false, &whole, &n_whole);
        free(joint);
        if (rc) return -1;
        int nb = add_bos ? 1 : 0;
        q->n_ctx = nb + ce->n;
        q->n_cont = n_whole - ce->n;
        q->ctx = xmalloc((size_t)(q->n_ctx ? q->n_ctx : 1) * sizeof(int), "request context");
        q->cont = q->n_cont > 0 ? xmalloc((size_t)q->n_cont * sizeof(int), "request tokens") : NULL;
        if (!q->ctx || (q->n_cont > 0 && !q->cont)) {
            free(whole);
            return -1;
        }
        if (nb) q->ctx[0] = lead;
        if (ce->n) memcpy(q->ctx + nb, ce->ids, (size_t)ce->n * sizeof(int));
        if (q->n_cont > 0) memcpy(q->cont, whole + ce->n, (size_t)q->n_cont * sizeof(int));
        free(whole);
    }
    if (q->n_cont < 1)
        return err("%s doc %d choice %d: the continuation \"%.40s\" encodes to no tokens after "
                   "the context's",
                   task, doc, q->choice, cont);
    if (q->n_ctx < 1)
        return err("%s doc %d: the context is only whitespace; nothing to condition on "
                   "(use add_bos)",
                   task, doc);
    return 0;
}

static int n_requests(const struct task_set *ts, enum task_kind kind) {
    if (kind == TASK_KIND_LOGLIK || kind == TASK_KIND_ROLLING) return ts->n_docs;
    int n = 0;
    for (int i = 0; i < ts->n_docs; i++) n += ts->docs[i].n_choices;
    return n;
}

/* ROLLING (wikitext): one request per document with n_ctx = 0 and cont = the page's tokens
 * (lm-eval's tok_encode(page): BOS first only when add_bos); the scorer runs
 * loglikelihood_rolling over cont and stores the page's summed loglik in the request. */
int task_build_requests(const struct task_set *ts, const struct tokenizer *tok, bool add_bos,
                        struct request_set *rs) {
    memset(rs, 0, sizeof *rs);
    rs->add_bos = add_bos;
    const struct task_info *ti = task_get(ts->id);
    if (!ti) return err("task_build_requests: unknown task id %d", (int)ts->id);
    int n = n_requests(ts, ti->kind);
    rs->reqs = xcalloc((size_t)(n ? n : 1), sizeof *rs->reqs, "requests");
    if (!rs->reqs) return -1;
    int rc = 0;
    for (int i = 0; !rc && i < ts->n_docs; i++) {
        const struct task_doc *d = &ts->docs[i];
        struct ctx_enc ce = {0};
        if (ti->kind == TASK_KIND_ROLLING) {
            struct lm_request *q = &rs->reqs[rs->n++];
            q->doc = i;
            rc = tokenizer_encode(tok, d->text, strlen(d->text), add_bos, &q->cont, &q->n_cont);
            if (!rc && !q->n_cont) rc = err("%s doc %d: empty page", ti->name, i);
        } else if (ti->kind == TASK_KIND_LOGLIK) {
            struct lm_request *q = &rs->reqs[rs->n++];
            q->doc = i;
            char *cont = task_concat(" ", d->continuation, (char *)NULL);
            rc = !cont || (*d->context && encode_ctx(tok, d->context, &ce)) ||
                 encode_pair(tok, d->context, &ce, cont, add_bos, q, ti->name, i);
            free(cont);
        } else if (ti->kind == TASK_KIND_MC) {
            rc = *d->context ? encode_ctx(tok, d->context, &ce) : 0;
            for (int j = 0; !rc && j < d->n_choices; j++) {
                struct lm_request *q = &rs->reqs[rs->n++];
                q->doc = i, q->choice = j;
                char *cont = task_concat(" ", d->choices[j], (char *)NULL);
                rc = !cont || encode_pair(tok, d->context, &ce, cont, add_bos, q, ti->name, i);
                free(cont);
            }
        } else { /* MC_CONTEXTS: each choice is a context, the continuation is shared */
            char *cont = task_concat(" ", d->continuation, (char *)NULL);
            rc = !cont;
            for (int j = 0; !rc && j < d->n_choices; j++) {
                struct lm_request *q = &rs->reqs[rs->n++];
                q->doc = i, q->choice = j;
                rc = (*d->choices[j] && encode_ctx(tok, d->choices[j], &ce)) ||
                     encode_pair(tok, d->choices[j], &ce, cont, add_bos, q, ti->name, i);
                free(ce.ids);
                ce = (struct ctx_enc){0};
            }
            free(cont);
        }
        free(ce.ids);
    }
    if (rc) {
        request_set_release(rs);
        return -1;
    }
    return 0;
}
