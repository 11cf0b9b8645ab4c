/* eval/score.c: the scoring engine (see score.h): lm-eval loglikelihood requests with prefix
 * sharing, and lm-eval's rolling loglikelihood of whole documents.
 *
 * Definitions followed (EleutherAI/lm-evaluation-harness, lm_eval/models/huggingface.py
 * _loglikelihood_tokens):
 *   inp    = (ctx + cont)[-(max_length + 1):][:-1]          (left truncation; max_length = n_ctx)
 *   logits = log_softmax(model(inp))[len(inp) - len(cont) : len(inp)]
 *   loglik = Σ_i logits[i][cont[i]];  greedy = all(argmax(logits[i]) == cont[i])
 * so the positions scored are ectx_len-1 .. ectx_len+n_cont-2 of inp = ectx + cont[:-1], where
 * ectx is the context after the left truncation. A continuation longer than max_length (two PIQA
 * solutions of stories260K's 512-token model) leaves no context in the window: the window is the
 * continuation's last max_length + 1 tokens, and its last max_length tokens are the ones scored
 * (lm-eval's slice keeps the last len(inp) logits); the request says so (truncated). argmax ties
 * go to the lowest index (torch.argmax / np.argmax).
 *
 * Prefix sharing. Requests are sorted by (ectx, cont) lexicographically, so equal contexts are
 * adjacent and a context that extends another comes right after it. The tokens held in the KV
 * cache are tracked; a new context keeps the longest common prefix with them (fwd_truncate) and
 * runs only the rest, with the logits of its last position only. The continuations of that
 * context then each run cont[:-1] from the end of the context, minus the leading tokens they
 * share with the previous continuation (whose logits rows are kept); a one-token continuation
 * runs nothing at all (its log-prob comes from the context's last row).
 *
 * Determinism. forward() is thread-count independent, but the matmul's summation order depends on
 * the number of tokens in a call (GEMV below a few tokens, GEMM above), so a position's logits can
 * differ in the last bits with how its context was split. The split here depends only on the
 * sorted request set: the sorted groups are cut into segments at fixed rules (below), each
 * segment starts from an empty cache, and the sort has a total order (ties by request index). So
 * results are bit-identical for any input order and any thread count, and agree with a naive
 * full forward per request to float rounding (~1e-6).
 *
 * Parallelism. A small model (weights that fit in cache) gains little from threads inside one
 * forward of a few dozen tokens, so when there are several threads and the model is small,
 * segments run concurrently, one fwd_state per thread (nested parallel regions are then single
 * threaded). Large models run one segment after another with all threads inside forward(). */
#include "eval/score.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "kernels/common.h"

/* segment rules: a new segment starts at a group whose context shares at most SEG_NATURAL_LCP
 * tokens with the previous group's (a BOS at most, so nothing is lost) once the segment has
 * SEG_MIN_GROUPS groups, and unconditionally after SEG_MAX_GROUPS groups (losing one shared
 * prefix per SEG_MAX_GROUPS contexts) */
#define SEG_NATURAL_LCP 1
#define SEG_MIN_GROUPS 8
#define SEG_MAX_GROUPS 64
/* run segments concurrently when the weights are at most this many bytes */
#define PAR_MAX_WEIGHT_BYTES ((size_t)64 << 20)
/* and the per-thread states together take at most this much memory */
#define PAR_MAX_STATE_BYTES ((size_t)2 << 30)

/* ---- progress (the CLI's cli_progress; eval does not include gen/) ---- */

struct progress {
    const char *label;
    long total;
    double t0, last;
    bool on;
};

static void progress_init(struct progress *p, const char *label, long total, bool quiet) {
    p->label = label;
    p->total = total;
    p->t0 = p->last = now_s();
    p->on = !quiet && isatty(2);
}

/* print "label: done/total  rate/s  ETA" at most 5 times a second; final: the closing line */
static void progress_show(struct progress *p, long done, bool final) {
    if (!p->on) return;
    const double t = now_s();
    if (!final && (done >= p->total || t - p->last < 0.2)) return;
    p->last = t;
    const double el = t - p->t0, rate = el > 0 ? done / el : 0;
    const double eta = rate > 0 ? (p->total - done) / rate : 0;
    fprintf(stderr, "\r%s: %ld/%ld  %.1f/s  ETA %.0fs   ", p->label, done, p->total, rate, eta);
    if (final) fputc('\n', stderr);
}

/* ---- request bookkeeping ---- */

struct item {
    struct lm_request *r;
    const int *ctx; /* the effective (left-truncated) context: r->ctx + drop */
    int n_ctx;
    const int *cont; /* the effective continuation: r->cont, or its last max_length tokens */
    int n_cont;
    int index; /* position in the caller's array: the final tie-break */
};

static int cmp_tokens(const int *a, int na, const int *b, int nb) {
    const int n = LB_MIN(na, nb);
    for (int i = 0; i < n; i++)
        if (a[i] != b[i]) return a[i] < b[i] ? -1 : 1;
    return na < nb ? -1 : na > nb;
}

static int cmp_item(const void *pa, const void *pb) {
    const struct item *a = pa, *b = pb;
    int c = cmp_tokens(a->ctx, a->n_ctx, b->ctx, b->n_ctx);
    if (!c) c = cmp_tokens(a->cont, a->n_cont, b->cont, b->n_cont);
    if (!c) c = a->index < b->index ? -1 : a->index > b->index;
    return c;
}

static int lcp(const int *a, int na, const int *b, int nb) {
    const int n = LB_MIN(na, nb);
    int i = 0;
    while (i < n && a[i] == b[i]) i++;
    return i;
}

/* ---- per-thread work state ---- */

struct worker {
    struct fwd_state *s;
    struct fwd_state own; /* used when s is not the caller's */
    float *logits;        /* rows rows */
    int rows;             /* at most this many positions per forward() call with logits */
    float *row;           /* the current context's last row */
    int *cached;          /* the tokens in s's cache, s->n_past of them */
    /* logits rows 0..n_prev-1 hold the positions after the current context whose inputs were
     * prev[0..n_prev) (the last continuation run) */
    const int *prev;
    int n_prev;
    int64_t tokens_forward;
};

/* rows: the most positions whose logits one call needs (the longest continuation - 1), at most
 * max_batch */
static int worker_init(struct worker *w, struct fwd_state *shared, const struct model *m, int n_ctx,
                       int max_batch, int rows) {
    memset(w, 0, sizeof *w);
    if (shared) {
        w->s = shared;
    } else {
        if (fwd_init(&w->own, m, n_ctx, max_batch)) return -1;
        w->s = &w->own;
    }
    const size_t V = (size_t)m->cfg.vocab_size;
    w->rows = LB_MAX(1, LB_MIN(rows, w->s->max_batch));
    w->logits = xcalloc((size_t)w->rows * V, sizeof(float), "logits");
    w->row = xcalloc(V, sizeof(float), "logits");
    w->cached = xcalloc((size_t)w->s->n_ctx, sizeof(int), "the cached tokens");
    return w->logits && w->row && w->cached ? 0 : -1;
}

static void worker_release(struct worker *w) {
    if (w->s == &w->own) fwd_release(&w->own);
    free(w->logits);
    free(w->row);
    free(w->cached);
    memset(w, 0, sizeof *w);
}

/* make the cache hold toks[0..n) (n >= 1), reusing its longest common prefix with what it holds,
 * and leave the logits of position n-1 in w->row */
static int worker_prefill(struct worker *w, const int *toks, int n) {
    struct fwd_state *s = w->s;
    const int keep = LB_MIN(lcp(w->cached, s->n_past, toks, n), n - 1);
    fwd_truncate(s, keep);
    if (forward(s, toks + keep, n - keep, w->row, true)) return -1;
    memcpy(w->cached + keep, toks + keep, (size_t)(n - keep) * sizeof(int));
    w->tokens_forward += n - keep;
    return 0;
}

/* run toks[0..n) after the cache's s->n_past positions; for each position t the logits predict
 * targets[t]: add log p to *ll and clear *greedy unless it is the argmax */
static int worker_extend(struct worker *w, const int *toks, const int *targets, int n, double *ll,
                         bool *greedy) {
    struct fwd_state *s = w->s;
    const int V = s->m->cfg.vocab_size;
    for (int i = 0; i < n; i += w->rows) {
        const int T = LB_MIN(w->rows, n - i);
        const int pos = s->n_past;
        if (forward(s, toks + i, T, w->logits, false)) return -1;
        memcpy(w->cached + pos, toks + i, (size_t)T * sizeof(int));
        w->tokens_forward += T;
        for (int t = 0; t < T; t++) {
            int am;
            *ll += logprob_of(w->logits + (size_t)t * V, V, targets[i + t], &am);
            if (am != targets[i + t]) *greedy = false;
        }
    }
    return 0;
}

/* add log p(cont[1..]) of a continuation of the n-token context in the cache: row t of the
 * logits is position n+t (input cont[t], predicting cont[t+1]). Rows whose inputs agree with the
 * last continuation's (sorted, so sharers are adjacent) are reused, not recomputed. */
static int score_cont(struct worker *w, int n, const int *cont, int n_cont, double *ll,
                      bool *greedy) {
    struct fwd_state *s = w->s;
    const int V = s->m->cfg.vocab_size, m = n_cont - 1;
    if (m <= 0) return 0;
    if (m > w->rows) { /* longer than the rows buffer: in pieces, nothing kept */
        w->n_prev = 0;
        fwd_truncate(s, n);
        return worker_extend(w, cont, cont + 1, m, ll, greedy);
    }
    const int j = lcp(w->prev, w->n_prev, cont, m);
    if (j < m) {
        fwd_truncate(s, n + j);
        if (forward(s, cont + j, m - j, w->logits + (size_t)j * V, false)) return -1;
        memcpy(w->cached + n + j, cont + j, (size_t)(m - j) * sizeof(int));
        w->tokens_forward += m - j;
        w->prev = cont;
        w->n_prev = m;
    }
    for (int t = 0; t < m; t++) {
        int am;
        *ll += logprob_of(w->logits + (size_t)t * V, V, cont[t + 1], &am);
        if (am != cont[t + 1]) *greedy = false;
    }
    return 0;
}

/* score the groups of items[i0, i1) (sorted) from an empty cache. no_sharing (the environment
 * variable LOWBIT_SCORE_NO_SHARING, for measuring what sharing saves): every request runs its
 * whole input from an empty cache, as a naive scorer would. */
static int run_segment(struct worker *w, struct item *items, int i0, int i1, long *done,
                       struct progress *pg, bool no_sharing) {
    struct fwd_state *s = w->s;
    const int V = s->m->cfg.vocab_size;
    fwd_truncate(s, 0);
    for (int g0 = i0, g1; g0 < i1; g0 = g1) {
        const struct item *head = &items[g0];
        for (g1 = g0 + 1; g1 < i1 && !no_sharing; g1++)
            if (cmp_tokens(items[g1].ctx, items[g1].n_ctx, head->ctx, head->n_ctx)) break;
        if (no_sharing) {
            g1 = g0 + 1;
            fwd_truncate(s, 0);
        }
        if (worker_prefill(w, head->ctx, head->n_ctx)) return -1;
        w->n_prev = 0;
        /* the context's last row, as logprob_of computes it (same expression, same bits) */
        float mx = w->row[0];
        int am = 0;
        for (int v = 1; v < V; v++)
            if (w->row[v] > mx) {
                mx = w->row[v];
                am = v;
            }
        double sum = 0;
        for (int v = 0; v < V; v++) sum += exp((double)w->row[v] - mx);
        const double log_sum = log(sum);
        const int n = head->n_ctx;
        for (int i = g0; i < g1; i++) {
            struct lm_request *r = items[i].r;
            const int *cont = items[i].cont;
            double ll = (double)w->row[cont[0]] - mx - log_sum;
            bool greedy = am == cont[0];
            if (score_cont(w, n, cont, items[i].n_cont, &ll, &greedy)) return -1;
            r->loglik = ll;
            r->greedy = greedy;
        }
        long d;
#ifdef _OPENMP
#pragma omp atomic capture
#endif
        d = *done += g1 - g0;
        /* only the first thread writes the progress line */
#ifdef _OPENMP
        if (omp_get_thread_num() == 0)
#endif
            progress_show(pg, d, false);
    }
    return 0;
}

int score_requests(struct fwd_state *s, struct lm_request *reqs, int n, bool quiet,
                   struct score_stats *st) {
    const double t0 = now_s();
    const int max_len = s->n_ctx, V = s->m->cfg.vocab_size;
    struct score_stats local = {0};
    if (!st) st = &local;
    memset(st, 0, sizeof *st);
    if (n <= 0) return 0;
    struct item *items = xcalloc((size_t)n, sizeof *items, "the request index");
    int *seg = NULL, n_seg = 0, ret = -1, max_cont = 1;
    struct worker *ws = NULL;
    int n_workers = 0;
    if (!items) return -1;
    for (int i = 0; i < n; i++) {
        struct lm_request *r = &reqs[i];
        if (r->n_cont < 1 || r->n_ctx < 1) {
            err("request %d (doc %d, choice %d): %d context and %d continuation tokens (expected "
                "at least one of each; an empty context is lm-eval's [prefix token])",
                i, r->doc, r->choice, r->n_ctx, r->n_cont);
            goto out;
        }
        for (int j = 0; j < r->n_ctx + r->n_cont; j++) {
            const int t = j < r->n_ctx ? r->ctx[j] : r->cont[j - r->n_ctx];
            if (t < 0 || t >= V) {
                err("request %d (doc %d, choice %d): token id %d outside the vocabulary [0, %d)",
                    i, r->doc, r->choice, t, V);
                goto out;
            }
        }
        /* lm-eval: inp = (ctx + cont)[-(max_length + 1):][:-1]. A continuation longer than
         * max_length is cut on the left too: the window is its last max_length + 1 tokens, the
         * first of them the context, the other max_length scored (r->truncated) */
        const int total = r->n_ctx + r->n_cont;
        const int drop = LB_MAX(0, total - (max_len + 1));
        r->truncated = r->n_cont > max_len;
        if (r->truncated) {
            const int *w0 = r->cont + (r->n_cont - max_len - 1);
            items[i] = (struct item){r, w0, 1, w0 + 1, max_len, i};
        } else {
            items[i] = (struct item){r, r->ctx + drop, r->n_ctx - drop, r->cont, r->n_cont, i};
        }
        max_cont = LB_MAX(max_cont, items[i].n_cont);
        st->tokens_naive += total - drop - 1;
    }
    qsort(items, (size_t)n, sizeof *items, cmp_item);

    /* segments: [seg[k], seg[k+1]) in items */
    seg = xcalloc((size_t)n + 1, sizeof *seg, "the segment index");
    if (!seg) goto out;
    {
        int groups = 0;
        const struct item *prev = NULL;
        for (int i = 0; i < n; i++) {
            const struct item *it = &items[i];
            if (prev && !cmp_tokens(it->ctx, it->n_ctx, prev->ctx, prev->n_ctx)) continue;
            const bool cut = !prev || groups >= SEG_MAX_GROUPS ||
                             (groups >= SEG_MIN_GROUPS &&
                              lcp(it->ctx, it->n_ctx, prev->ctx, prev->n_ctx) <= SEG_NATURAL_LCP);
            if (cut) {
                seg[n_seg++] = i;
                groups = 0;
            }
            groups++;
            prev = it;
        }
        seg[n_seg] = n;
    }

    /* one state per thread for small models, else the caller's state with threads inside */
    const struct model *m = s->m;
    const struct model_config *c = &m->cfg;
    const size_t kv_bytes = 2 * sizeof(float) * (size_t)c->n_layers * (size_t)s->n_ctx *
                            (size_t)c->n_kv_heads * (size_t)c->head_dim;
    int n_par = LB_MIN(lb_threads(), n_seg);
    if (n_par > 1 && (model_weight_bytes(m) > PAR_MAX_WEIGHT_BYTES ||
                      (size_t)n_par * kv_bytes > PAR_MAX_STATE_BYTES))
        n_par = 1;
    ws = xcalloc((size_t)n_par, sizeof *ws, "scoring workers");
    if (!ws) goto out;
    for (n_workers = 0; n_workers < n_par; n_workers++)
        if (worker_init(&ws[n_workers], n_workers == 0 ? s : NULL, m, s->n_ctx, s->max_batch,
                        max_cont - 1)) {
            n_workers++;
            goto out;
        }

    const char *ns = getenv("LOWBIT_SCORE_NO_SHARING");
    const bool no_sharing = ns && *ns && strcmp(ns, "0");
    struct progress pg;
    progress_init(&pg, "score", n, quiet);
    long done = 0;
    int failed = 0;
    if (n_par == 1) {
        for (int k = 0; k < n_seg && !failed; k++)
            failed = run_segment(&ws[0], items, seg[k], seg[k + 1], &done, &pg, no_sharing) != 0;
    } else {
#ifdef _OPENMP
#pragma omp parallel num_threads(n_par) reduction(| : failed)
        {
            struct worker *w = &ws[omp_get_thread_num()];
            lb_set_threads(1); /* this thread's nested regions: one thread */
#pragma omp for schedule(dynamic, 1)
            for (int k = 0; k < n_seg; k++) {
                if (failed) continue;
                if (run_segment(w, items, seg[k], seg[k + 1], &done, &pg, no_sharing)) failed = 1;
            }
        }
#endif
    }
    if (failed) goto out;
    progress_show(&pg, done, true);
    for (int k = 0; k < n_workers; k++) st->tokens_forward += ws[k].tokens_forward;
    st->n_requests = n;
    st->seconds = now_s() - t0;
    ret = 0;
out:
    for (int k = 0; k < n_workers; k++) worker_release(&ws[k]);
    free(ws);
    free(seg);
    free(items);
    return ret;
}

/* ---- rolling loglikelihood ---- */

int score_rolling(struct fwd_state *s, const int *tokens, int n, int max_len, int prefix_token,
                  double *loglik, struct score_stats *st) {
    const double t0 = now_s();
    const int V = s->m->cfg.vocab_size;
    struct score_stats local = {0};
    if (!st) st = &local;
    memset(st, 0, sizeof *st);
    *loglik = 0;
    /* the longest window input is min(n, max_len) tokens */
    if (max_len < 1 || LB_MIN(n, max_len) > s->n_ctx)
        return err("rolling loglikelihood: windows of %d tokens do not fit the state's context of "
                   "%d", LB_MIN(n, max_len), s->n_ctx);
    if (prefix_token < 0 || prefix_token >= V)
        return err("rolling loglikelihood: prefix token %d outside the vocabulary [0, %d)",
                   prefix_token, V);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= V)
            return err("rolling loglikelihood: token id %d at %d outside the vocabulary [0, %d)",
                       tokens[i], i, V);
    if (n <= 0) return 0;
    struct worker w;
    if (worker_init(&w, s, s->m, s->n_ctx, s->max_batch, LB_MIN(n, max_len))) {
        worker_release(&w);
        return -1;
    }
    int *inp = xcalloc((size_t)LB_MIN(n, max_len), sizeof(int), "a rolling window");
    if (!inp) {
        worker_release(&w);
        return -1;
    }
    /* lm_eval/utils.py get_rolling_token_windows(tokens, prefix, max_seq_len = max_len,
     * context_len = 1) + make_disjoint_window, then _loglikelihood_tokens' truncation:
     *  - first window: input [prefix] + tokens[0 .. m-1), predicts tokens[0 .. m), m =
     *    min(max_len, n);
     *  - then, while predicted < n: k = min(n - predicted, max_len), end = predicted + k; input
     *    tokens[end-max_len-1 .. end-1) (max_len tokens, the k predicted ones last), predicts
     *    tokens[end-k .. end).
     * Each window runs from an empty cache; scored positions are the last k of its input. */
    double ll = 0;
    bool greedy = true;
    int ret = -1, predicted = 0;
    while (predicted < n) {
        int n_inp, k;
        const int *targets;
        if (predicted == 0) {
            k = LB_MIN(max_len, n);
            inp[0] = prefix_token;
            memcpy(inp + 1, tokens, (size_t)(k - 1) * sizeof(int));
            n_inp = k;
            targets = tokens;
        } else {
            k = LB_MIN(n - predicted, max_len);
            const int end = predicted + k;
            n_inp = max_len;
            memcpy(inp, tokens + end - max_len - 1, (size_t)max_len * sizeof(int));
            targets = tokens + end - k;
        }
        fwd_truncate(s, 0);
        const int first = n_inp - k; /* positions [first, n_inp) are scored */
        if (first > 0) {
            if (forward(s, inp, first, NULL, false)) goto out;
            w.tokens_forward += first;
        }
        if (worker_extend(&w, inp + first, targets, k, &ll, &greedy)) goto out;
        predicted += k;
    }
    *loglik = ll;
    st->tokens_forward = st->tokens_naive = w.tokens_forward;
    st->n_requests = 1;
    st->seconds = now_s() - t0;
    ret = 0;
out:
    free(inp);
    worker_release(&w);
    return ret;
}
