/* eval/evaluate.c: the tasks, perplexity and KL divergence as library calls (eval/evaluate.h).
 *
 * eval_run: for each task, task_load → task_limit → task_build_requests → score_requests (or the
 * rolling windows for wikitext) → task_metrics (eval/task.h, eval/score.h). For wikitext
 * (loglikelihood_rolling) the requests are one per page (n_ctx = 0, cont = the page's tokens) and
 * score_rolling puts the page's total in loglik. Knobs, recorded per run as lm-eval's config
 * does (REFERENCE.md B4): max_length, add_bos, limit, seed, dataset file + sha256.
 *  - max_length: lm-eval's HF model uses the config's max_position_embeddings, else 2048; here
 *    the model file's trained context when it has one (capped at 8192), else 2048.
 *  - add_bos: lm-eval's HF model encodes with add_special_tokens = add_bos_token, False by default
 *    (lm_eval/models/huggingface.py tok_encode), so the default is no BOS; the rolling windows'
 *    prefix token is BOS (EOS when there is none), as HFLM.prefix_token_id.
 *
 * ppl_run: the protocols of `lowbit ppl` (gen/cmd_ppl.c's header). kld_base_prepare / kld_run:
 * llama.cpp's --kl-divergence-base / --kl-divergence in two halves (eval/kld.h), so that a caller
 * holding the base model computes its log-probs and can release it before loading the model under
 * test. */
#include "eval/evaluate.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "eval/tokenizer.h"
#include "kernels/common.h"
#include "kernels/matmul.h"

/* "label: done/total (rate/s, ETA)" on stderr when it is a terminal */
static void progress(const char *label, long done, long total, double t0, bool quiet) {
    if (quiet || !isatty(2)) return;
    const double el = now_s() - t0, rate = el > 0 ? done / el : 0;
    fprintf(stderr, "\r%s: %ld/%ld  %.1f/s  ETA %.0fs   ", label, done, total, rate,
            rate > 0 ? (total - done) / rate : 0);
    if (done >= total) fputc('\n', stderr);
}

/* ===== tasks ===== */

const char *eval_kind_name(enum task_kind k) {
    switch (k) {
    case TASK_KIND_MC: return "multiple_choice";
    case TASK_KIND_MC_CONTEXTS: return "multiple_choice (partial scoring)";
    case TASK_KIND_LOGLIK: return "loglikelihood";
    case TASK_KIND_ROLLING: return "loglikelihood_rolling";
    }
    return "?";
}

/* wikitext: task_build_requests made one request per page (n_ctx 0, cont = the page's tokens);
 * score each with lm-eval's rolling windows and keep the page total in loglik. Every window runs
 * from an empty cache, so pages are independent: with several threads and a small model (as in
 * score.c: weights <= 64 MiB), pages run concurrently, one state per thread; a page's result is
 * the same either way. */
#define PAGES_PAR_MAX_WEIGHT_BYTES ((size_t)64 << 20)
static int score_pages(struct fwd_state *s, const struct tokenizer *tok, int max_len, bool quiet,
                       struct request_set *rs, struct score_stats *st) {
    const int bos = tokenizer_bos(tok), prefix = bos >= 0 ? bos : tokenizer_eos(tok);
    if (prefix < 0)
        return err("eval: the tokenizer has neither BOS nor EOS for the rolling windows' prefix");
    memset(st, 0, sizeof *st);
    const double t0 = now_s();
    int n_par = LB_MIN(lb_threads(), rs->n);
    if (model_weight_bytes(s->m) > PAGES_PAR_MAX_WEIGHT_BYTES) n_par = 1;
    struct fwd_state *states = xcalloc((size_t)LB_MAX(1, n_par), sizeof *states, "page states");
    if (!states) return -1;
    int failed = 0, n_init = 0;
    long done = 0;
    int64_t fwd = 0;
    for (; n_init < n_par && n_par > 1; n_init++)
        if (fwd_init(&states[n_init], s->m, s->n_ctx, s->max_batch)) {
            failed = 1;
            break;
        } else {
            states[n_init].compute = s->compute;
        }
    const int n_todo = failed ? 0 : rs->n;
#pragma omp parallel for num_threads(n_par) schedule(dynamic, 1) reduction(| : failed) \
    reduction(+ : fwd) if (n_par > 1)
    for (int i = 0; i < n_todo; i++) {
        if (failed) continue;
        struct fwd_state *ws = s;
#ifdef _OPENMP
        if (n_par > 1) {
            ws = &states[omp_get_thread_num()];
            lb_set_threads(1);
        }
#endif
        struct lm_request *r = &rs->reqs[i];
        struct score_stats one;
        if (score_rolling(ws, r->cont, r->n_cont, max_len, prefix, &r->loglik, &one)) {
            failed = 1;
            continue;
        }
        r->greedy = false;
        fwd += one.tokens_forward;
        long d;
#pragma omp atomic capture
        d = ++done;
#ifdef _OPENMP
        if (omp_get_thread_num() == 0)
#endif
            progress("score", d, rs->n, t0, quiet || d == rs->n);
    }
    for (int k = 0; k < n_init; k++) fwd_release(&states[k]);
    free(states);
    progress("score", rs->n, rs->n, t0, quiet || failed);
    if (failed) return -1;
    st->tokens_forward = st->tokens_naive = fwd;
    st->n_requests = rs->n;
    st->seconds = now_s() - t0;
    return 0;
}

/* a forward state for the task's requests: its KV cache holds the longest input they need,
 * capped at max_len. Truncation needs none below that, so scoring with a state of that context
 * gives what a state of max_len would (the cache, 4 GB for Llama-2-7B at 4096, stays small). */
static int state_for(struct fwd_state *s, const struct model *m, const struct request_set *rs,
                     bool rolling, int max_len) {
    int need = 1;
    for (int i = 0; i < rs->n; i++) {
        const struct lm_request *r = &rs->reqs[i];
        /* rolling: windows of min(n, max_len) inputs; else ctx + cont[:-1] */
        need = LB_MAX(need, rolling ? r->n_cont : r->n_ctx + r->n_cont - 1);
    }
    need = LB_MIN(need, max_len);
    if (s->m && s->n_ctx == need) return 0;
    const enum compute_dtype compute = s->compute;
    fwd_release(s);
    if (fwd_init(s, m, need, LB_MIN(need, 512))) return -1;
    s->compute = compute;
    return 0;
}

/* one task into t */
static int run_task(struct fwd_state *s, const struct model *m, const struct tokenizer *tok,
                    enum task_id id, const struct eval_opts *o, int ctx, bool add_bos,
                    struct eval_task *t) {
    const struct task_info *info = task_get(id);
    struct task_set ts;
    struct request_set rs = {0};
    memset(&ts, 0, sizeof ts);
    t->id = id;
    if (task_load(&ts, id, o->data_dir, NULL)) return -1;
    t->n_docs_full = ts.n_docs;
    if (o->limit) task_limit(&ts, o->limit, (uint64_t)o->seed);
    t->n_docs = ts.n_docs;
    snprintf(t->source, sizeof t->source, "%s", ts.source);
    memcpy(t->sha256, ts.sha256, sizeof t->sha256);
    if (!o->quiet)
        fprintf(stderr, "eval: %s: %d of %d documents\n", info->name, ts.n_docs, t->n_docs_full);
    const double t0 = now_s();
    int rc = task_build_requests(&ts, tok, add_bos, &rs);
    if (!rc) rc = state_for(s, m, &rs, info->kind == TASK_KIND_ROLLING, ctx);
    if (!rc && info->kind == TASK_KIND_ROLLING)
        rc = score_pages(s, tok, ctx, o->quiet, &rs, &t->st);
    else if (!rc)
        rc = score_requests(s, rs.reqs, rs.n, o->quiet, &t->st);
    if (!rc) rc = task_metrics(&ts, &rs, &t->res);
    t->seconds = now_s() - t0;
    if (!rc && o->keep_texts && info->kind != TASK_KIND_ROLLING) {
        t->texts = xcalloc((size_t)ts.n_docs, sizeof *t->texts, "the documents' texts");
        if (!t->texts) rc = -1;
        for (int i = 0; !rc && i < ts.n_docs; i++) { /* moved: task_release frees NULLs */
            struct task_doc *d = &ts.docs[i];
            t->texts[i] = (struct eval_doc_text){d->context, d->choices, d->n_choices,
                                                 d->continuation};
            d->context = d->continuation = NULL;
            d->choices = NULL;
            d->n_choices = 0;
        }
    }
    for (int i = 0, last = -1; !rc && i < rs.n; i++) /* a document's requests are consecutive */
        if (rs.reqs[i].truncated && rs.reqs[i].doc != last) {
            t->n_truncated++;
            last = rs.reqs[i].doc;
        }
    request_set_release(&rs);
    task_release(&ts);
    return rc;
}

int eval_run(const struct model *m, const struct tokenizer *tok, const enum task_id *ids, int n,
             const struct eval_opts *o, struct eval_results *out) {
    memset(out, 0, sizeof *out);
    const double t_start = now_s();
    out->limit = o->limit;
    out->seed = o->seed;
    if (tokenizer_vocab_size(tok) > m->cfg.vocab_size)
        return err("eval: the tokenizer has %d tokens, the model %d", tokenizer_vocab_size(tok),
                   m->cfg.vocab_size);
    out->add_bos_default = o->add_bos < 0;
    out->add_bos = o->add_bos == 1;
    if (out->add_bos && tokenizer_bos(tok) < 0)
        return err("eval: --bos yes but the tokenizer has no BOS token");
    out->ctx = o->ctx;
    if (!out->ctx) {
        out->ctx = m->cfg.ctx_len > 0 ? m->cfg.ctx_len : EVAL_DEFAULT_CTX;
        if (out->ctx > EVAL_MAX_DEFAULT_CTX) {
            out->ctx = EVAL_MAX_DEFAULT_CTX;
            out->ctx_capped = true;
        }
    }
    out->tasks = xcalloc((size_t)LB_MAX(n, 1), sizeof *out->tasks, "the task results");
    if (!out->tasks) return -1;
    struct fwd_state s = {.compute = o->compute};
    int ret = 0;
    for (int k = 0; k < n && !ret; k++) {
        struct eval_task *t = &out->tasks[k];
        out->n_tasks = k + 1;
        if (run_task(&s, m, tok, ids[k], o, out->ctx, out->add_bos, t)) {
            ret = -1;
            break;
        }
        out->total.tokens_forward += t->st.tokens_forward;
        out->total.tokens_naive += t->st.tokens_naive;
        out->total.n_requests += t->st.n_requests;
        if (o->on_task) o->on_task(t, o->arg);
    }
    fwd_release(&s);
    out->seconds = now_s() - t_start;
    return ret;
}

void eval_results_release(struct eval_results *r) {
    for (int k = 0; k < r->n_tasks; k++) {
        struct eval_task *t = &r->tasks[k];
        task_result_release(&t->res);
        for (int i = 0; t->texts && i < t->n_docs; i++) {
            free(t->texts[i].context);
            for (int c = 0; c < t->texts[i].n_choices; c++) free(t->texts[i].choices[c]);
            free(t->texts[i].choices);
            free(t->texts[i].continuation);
        }
        free(t->texts);
    }
    free(r->tasks);
    memset(r, 0, sizeof *r);
}

/* ===== perplexity ===== */

const char *ppl_protocol_name(enum ppl_protocol p) {
    return p == PPL_LLAMACPP ? "llamacpp" : "chunks";
}

static void acc_add(struct nll_acc *a, double nll) {
    a->sum += nll;
    a->sum2 += nll * nll;
    a->n++;
}

int ppl_score_window(struct fwd_state *s, const int *tokens, int n, int first, float *logits,
                     struct nll_acc *acc) {
    const int V = s->m->cfg.vocab_size;
    fwd_truncate(s, 0);
    for (int i = 0; i < n; i += s->max_batch) {
        const int T = LB_MIN(s->max_batch, n - i);
        const bool need = i + T - 1 >= first; /* any scored position in this piece */
        if (forward(s, tokens + i, T, need ? logits : NULL, false)) return -1;
        if (!need) continue;
        for (int t = 0; t < T; t++) {
            const int j = i + t;
            if (j < first || j >= n - 1) continue;
            acc_add(acc, -logprob_of(logits + (size_t)t * V, V, tokens[j + 1], NULL));
        }
    }
    return 0;
}

int ppl_run(const struct model *m, const struct tokenizer *tok, const char *text, size_t len,
            const struct ppl_opts *o, struct ppl_result *r) {
    memset(r, 0, sizeof *r);
    const bool llamacpp = o->protocol == PPL_LLAMACPP;
    const int ctx = o->ctx, bos = tokenizer_bos(tok);
    struct fwd_state s = {0};
    int *ids = NULL, n_ids = 0, ret = -1;
    float *logits = NULL;
    if (tokenizer_encode(tok, text, len, bos >= 0, &ids, &n_ids)) goto out;
    int n_chunk = n_ids / ctx;
    r->text_tokens = n_ids;
    if (n_chunk < (llamacpp ? 2 : 1)) {
        err("ppl: %s has %d tokens, fewer than the %d the %s protocol needs at --ctx %d",
            o->text_name, n_ids, (llamacpp ? 2 : 1) * ctx, ppl_protocol_name(o->protocol), ctx);
        goto out;
    }
    if (o->max_chunks && o->max_chunks < n_chunk) n_chunk = o->max_chunks;
    if (fwd_init(&s, m, ctx, LB_MIN(ctx, 512))) goto out;
    s.compute = o->compute;
    logits = xcalloc((size_t)s.max_batch * m->cfg.vocab_size, sizeof(float), "logits");
    if (!logits) goto out;
    if (!o->quiet)
        fprintf(stderr, "ppl: %s, %d tokens, %d chunks of %d, protocol %s, %d threads, kernels "
                "%s, compute %s\n", o->text_name, n_ids, n_chunk, ctx,
                ppl_protocol_name(o->protocol), lb_threads(), kernels_isa(),
                compute_name(s.compute));
    struct nll_acc acc = {0};
    r->chunk_nll = xcalloc((size_t)n_chunk, sizeof *r->chunk_nll, "the chunks' NLL");
    if (!r->chunk_nll) goto out;
    const double t0 = now_s();
    for (int c = 0; c < n_chunk; c++) {
        int *w = ids + (size_t)c * ctx;
        const int saved = w[0];
        if (llamacpp && bos >= 0) w[0] = bos;
        const struct nll_acc before = acc; /* one accumulator: the headline's sums unchanged */
        const int rc = ppl_score_window(&s, w, ctx, llamacpp ? ctx / 2 : 0, logits, &acc);
        w[0] = saved;
        if (rc) goto out;
        r->chunk_nll[c] = acc.n > before.n ? (acc.sum - before.sum) / (double)(acc.n - before.n)
                                           : 0;
        progress("ppl", c + 1, n_chunk, t0, o->quiet);
    }
    r->seconds = now_s() - t0;
    r->mean_nll = acc.sum / acc.n;
    r->ppl = exp(r->mean_nll);
    const double var = acc.sum2 / acc.n - r->mean_nll * r->mean_nll;
    r->ppl_stderr = acc.n > 1 && var > 0 ? r->ppl * sqrt(var / (acc.n - 1)) : 0;
    r->tokens_per_s = (double)n_chunk * ctx / r->seconds;
    r->scored = acc.n;
    r->n_chunks = n_chunk;
    r->n_mm = s.n_mm;
    r->n_mm_int8 = s.n_mm_int8;
    r->compute = s.compute;
    ret = 0;
out:
    free(logits);
    free(ids);
    fwd_release(&s);
    if (ret) ppl_result_release(r);
    return ret;
}

void ppl_result_release(struct ppl_result *r) {
    free(r->chunk_nll);
    r->chunk_nll = NULL;
}

/* ===== KL divergence ===== */

int kld_base_prepare(const struct model *base, const char *base_path, const struct tokenizer *tok,
                     const char *text, size_t len, const struct kld_opts *o, struct kld_base *kb) {
    memset(kb, 0, sizeof *kb);
    kb->ctx = o->ctx;
    kb->f32 = o->f32;
    struct fwd_state s = {0};
    int *ids = NULL, n_ids = 0, ret = -1;
    const int bos = tokenizer_bos(tok);
    if (tokenizer_encode(tok, text, len, bos >= 0, &ids, &n_ids)) goto out;
    kb->text_tokens = n_ids;
    if (kld_make_chunks(ids, n_ids, o->ctx, bos, o->max_chunks, &kb->chunks, &kb->n_chunks))
        goto out;
    double t0 = now_s();
    kb->model_hash = kld_model_hash(base);
    const uint64_t ht = kld_tokens_hash(kb->chunks, (size_t)kb->n_chunks * o->ctx);
    const char *bname = strrchr(base_path, '/');
    bname = bname && bname[1] ? bname + 1 : base_path;
    if (asprintf(&kb->cache_path, "%s/%.64s-%016llx-%016llx-c%d-k%d.%s.kld", o->cache_dir, bname,
                 (unsigned long long)kb->model_hash, (unsigned long long)ht, o->ctx, kb->n_chunks,
                 o->f32 ? "f32" : "f16") < 0) {
        kb->cache_path = NULL;
        err("out of memory");
        goto out;
    }
    if (!o->quiet)
        fprintf(stderr, "kld: %s, %d tokens, %d chunks of %d (%d scored each), %d threads, "
                "kernels %s; base fingerprint %016llx (%.1f s)\n", o->text_name, n_ids,
                kb->n_chunks, o->ctx, o->ctx - 1 - o->ctx / 2, lb_threads(), kernels_isa(),
                (unsigned long long)kb->model_hash, now_s() - t0);
    /* a cached file is used when its header and size check out; a torn or foreign one (another
     * writer's crash, a disk that filled) is computed again and replaced */
    struct kld_base_info bi;
    bool cached = !access(kb->cache_path, R_OK);
    if (cached) {
        const bool quiet_was = err_quiet();
        err_set_quiet(true);
        cached = !kld_base_info(kb->cache_path, &bi) && bi.n_ctx == o->ctx &&
                 bi.n_chunks == kb->n_chunks && bi.model_hash == kb->model_hash &&
                 bi.tokens_hash == ht;
        err_set_quiet(quiet_was);
        if (!cached && !o->quiet)
            fprintf(stderr, "kld: %s is invalid or incomplete: computing it again\n",
                    kb->cache_path);
    }
    if (!cached) {
        if (mkdir_p(o->cache_dir) || fwd_init(&s, base, o->ctx, LB_MIN(o->ctx, 512))) goto out;
        t0 = now_s();
        if (kld_base_write(&s, kb->chunks, kb->n_chunks, o->ctx, o->f32 ? KLD_F32 : KLD_F16,
                           kb->model_hash, base_path, kb->cache_path, o->quiet))
            goto out;
        if (!o->quiet)
            fprintf(stderr, "kld: base log-probs computed in %.1f s -> %s\n", now_s() - t0,
                    kb->cache_path);
    } else if (!o->quiet) {
        fprintf(stderr, "kld: base log-probs from %s\n", kb->cache_path);
    }
    ret = 0;
out:
    free(ids);
    fwd_release(&s);
    return ret;
}

void kld_base_release(struct kld_base *kb) {
    free(kb->chunks);
    free(kb->cache_path);
    memset(kb, 0, sizeof *kb);
}

int kld_run(const struct model *m, const struct kld_base *kb, enum compute_dtype compute,
            bool quiet, struct kld_result *r) {
    struct fwd_state s = {0};
    if (fwd_init(&s, m, kb->ctx, LB_MIN(kb->ctx, 512))) return -1;
    s.compute = compute;
    const int rc = kld_compare(&s, kb->cache_path, kb->chunks, kb->n_chunks, kb->ctx,
                               kb->model_hash, quiet, r);
    fwd_release(&s);
    return rc;
}

/* ===== what it costs to run ===== */

int speed_run(const struct model *m, int ctx, int n_decode, enum compute_dtype c,
              struct speed_result *r) {
    memset(r, 0, sizeof *r);
    const struct model_config *cf = &m->cfg;
    r->ctx = ctx;
    r->n_decode = n_decode = LB_MIN(n_decode, ctx / 2);
    r->threads = lb_threads();
    struct fwd_state s = {0};
    int *toks = xcalloc((size_t)ctx, sizeof *toks, "the speed test's tokens");
    float *logits = xcalloc((size_t)cf->vocab_size, sizeof *logits, "logits");
    int ret = -1;
    if (!toks || !logits || fwd_init(&s, m, ctx, LB_MIN(ctx, 512))) goto out;
    s.compute = c;
    for (int i = 0; i < ctx; i++)
        toks[i] = (int)((1 + (uint64_t)i * 7919) % (uint64_t)cf->vocab_size);
    double best = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        fwd_truncate(&s, 0);
        const double t0 = now_s();
        if (forward(&s, toks, ctx, logits, true)) goto out;
        best = LB_MIN(best, now_s() - t0);
    }
    r->prefill_tps = ctx / best;
    best = 1e30;
    for (int rep = 0; rep < 2; rep++) {
        fwd_truncate(&s, 0);
        if (forward(&s, toks, ctx / 2, logits, true)) goto out;
        const double t0 = now_s();
        for (int i = 0; i < n_decode; i++)
            if (forward(&s, toks + ctx / 2 + i, 1, logits, true)) goto out;
        best = LB_MIN(best, now_s() - t0);
    }
    r->decode_tps = n_decode / best;
    /* the allocations of fwd_init at this context: K and V caches, the rope tables, the scratch
     * rows (x, xn, q, k, v, up, carry) and the logits row */
    const double qd = (double)cf->n_heads * cf->head_dim;
    const double kvd = (double)cf->n_kv_heads * cf->head_dim;
    const double kv = 2.0 * cf->n_layers * ctx * kvd;
    const double rope = (double)ctx * cf->head_dim;
    const double rows = (double)s.max_batch * (2.0 * cf->dim + qd + 2 * kvd +
                                               2.0 * cf->hidden_dim + LB_MAX(qd, cf->hidden_dim));
    r->memory_bytes = (double)model_weight_bytes(m) + 4.0 * (kv + rope + rows + cf->vocab_size);
    ret = 0;
out:
    fwd_release(&s);
    free(toks);
    free(logits);
    return ret;
}
