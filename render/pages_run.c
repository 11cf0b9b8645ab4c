/* render/pages_run.c: runs/<id>.html, the provenance of one row: every score with its standard
 * error and sample count, the task definitions (dataset file and sha256, documents, limit, seed,
 * few-shot, BOS, context), the recipe and its knobs, the model files, the code version, host,
 * threads, timings and memory, the artifact, every provenance key, and the one command that
 * reproduces the row. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "render/render_impl.h"

static void fact(xmlNodePtr dl, const char *k, const char *v, bool code) {
    if (!v || !*v) return;
    h_el(dl, "dt", k);
    xmlNodePtr dd = h_el(dl, "dd", NULL);
    h_user(code ? h_el(dd, "code", NULL) : dd, v);
}

static xmlNodePtr table(xmlNodePtr parent, const char *const *heads, int n) {
    xmlNodePtr wrap = h_elc(parent, "div", "table-wrap", NULL);
    xmlNodePtr t = h_elc(wrap, "table", "data", NULL);
    xmlNodePtr tr = h_el(h_el(t, "thead", NULL), "tr", NULL);
    for (int i = 0; i < n; i++) h_attr(h_el(tr, "th", heads[i]), "scope", "col");
    return h_el(t, "tbody", NULL);
}

static const char *task_label(const struct lb_data *d, const char *task) {
    for (int t = 0; t < d->n_tasks; t++)
        if (!strcmp(task, d->tasks[t].key)) return d->tasks[t].label;
    return NULL;
}

static int run_page(struct site *s, const struct lb_run *r) {
    const struct lb_data *d = s->d;
    const struct lb_group *G = &d->groups[r->group];
    const struct lb_recipe *c = r->recipe;
    const struct lb_model *m = r->model;
    struct page p;
    char b[128], rel[64], href[256];
    char *ttl = fmt_dup("%s \xc2\xb7 %s (run %lld) \xe2\x80\x94 lowbit", lb_run_model_name(r),
                        r->recipe_id, (long long)r->id);
    const int bad = !ttl || page_new(&p, s, "run", 1, ttl);
    free(ttl);
    if (bad) return -1;
    xmlNodePtr head = page_slot(&p, "heading"), sum = page_slot(&p, "summary"),
               scores = page_slot(&p, "scores"), defs = page_slot(&p, "defs"),
               recipe = page_slot(&p, "recipe"), run = page_slot(&p, "run"),
               prov = page_slot(&p, "provenance"), repro = page_slot(&p, "repro");
    if (!head || !sum || !scores || !defs || !recipe || !run || !prov || !repro) {
        page_release(&p);
        return -1;
    }
    h_user(head, lb_run_model_name(r));
    h_text(head, " \xc2\xb7 ");
    h_user(head, r->recipe_id);

    xmlNodePtr para = h_el(sum, "p", NULL);
    if (r->ok) {
        char v[32];
        h_textf(para, "Rank %d on the board, average %s%%. Base model: ", r->rank,
                r->rank && !isnan(r->average) ? fmt_pct(v, sizeof v, r->average) : "n/a ");
    } else {
        h_text(para, "This run failed and is not on the board. Base model: ");
    }
    snprintf(href, sizeof href, "models/%s.html", G->slug);
    h_user(h_link(&p, para, href, NULL), G->name);
    h_text(para, ".");
    if (!r->ok) {
        xmlNodePtr e = h_elc(sum, "p", "error", NULL);
        h_el(e, "strong", "Error: ");
        h_user(e, r->error ? r->error : "no message recorded");
        if (r->failure && !strcmp(r->failure, "environment"))
            h_el(sum, "p", "A failure of the environment (disk, memory, a limit, the worker "
                           "killed from outside): the next lowbit run runs this job again.");
        else if (r->failure)
            h_el(sum, "p", "A failure of the inputs (model, recipe, data): kept until lowbit run "
                           "--retry-failed.");
        if (r->log_tail && *r->log_tail) {
            xmlNodePtr det = h_el(sum, "details", NULL);
            h_el(det, "summary", "End of the job's log");
            h_el(det, "pre", r->log_tail);
        }
    }

    /* scores: the board's tasks first (in column order), then the rest as stored */
    static const char *const sh[] = {"Task", "Metric", "Value", "\xc2\xb1 stderr", "n"};
    xmlNodePtr tb = table(scores, sh, (int)LB_ARRAY_LEN(sh));
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < r->n_scores; i++) {
            const struct lb_score *x = &r->scores[i];
            const char *lab = task_label(d, x->task);
            if ((pass == 0) != (lab != NULL)) continue;
            xmlNodePtr tr = h_el(tb, "tr", NULL);
            xmlNodePtr td = h_el(tr, "td", NULL);
            h_user(td, x->task);
            if (lab) h_textf(td, " (%s)", lab);
            h_user(h_el(tr, "td", NULL), x->metric);
            bool frac = !strcmp(x->metric, "acc") || !strcmp(x->metric, "acc_norm");
            if (frac) {
                page_td(tr, fmt_pct(b, sizeof b, x->value), true);
                if (!isnan(x->stderr_)) snprintf(b, sizeof b, "%.2f", x->stderr_ * 100);
                else b[0] = 0;
                page_td(tr, b, true);
            } else {
                page_td(tr, fmt_g(b, sizeof b, x->value, 6), true);
                page_td(tr, fmt_g(b, sizeof b, x->stderr_, 3), true);
            }
            page_td(tr, fmt_int(b, sizeof b, x->n), true);
        }
    if (!r->n_scores) h_el(scores, "p", "No scores recorded.");
    else
        h_el(scores, "p", "acc and acc_norm in percent (stderr in percentage points); n = "
                          "documents scored, or tokens for perplexity and KL divergence.");

    static const char *const dh[] = {"Task", "Dataset file", "sha256", "Docs scored", "Docs in set",
                                     "Limit", "Seed", "Few-shot", "BOS", "Context",
                                     "Cut to context"};
    tb = table(defs, dh, (int)LB_ARRAY_LEN(dh));
    int n_cut = 0;
    for (int i = 0; i < r->n_defs; i++) {
        const struct lb_taskdef *t = &r->defs[i];
        xmlNodePtr tr = h_el(tb, "tr", NULL);
        h_user(h_el(tr, "td", NULL), t->task);
        h_user(h_el(h_el(tr, "td", NULL), "code", NULL), t->dataset_file ? t->dataset_file : "");
        h_user(h_elc(h_el(tr, "td", NULL), "code", "hash", NULL),
               t->dataset_sha256 ? t->dataset_sha256 : "");
        page_td(tr, fmt_int(b, sizeof b, t->n_docs), true);
        page_td(tr, fmt_int(b, sizeof b, t->n_docs_full), true);
        page_td(tr, isnan(t->limit_n) ? "full set" : fmt_int(b, sizeof b, t->limit_n), true);
        page_td(tr, fmt_int(b, sizeof b, t->seed), true);
        page_td(tr, fmt_int(b, sizeof b, t->num_fewshot), true);
        page_td(tr, fmt_bool(t->add_bos), false);
        page_td(tr, fmt_int(b, sizeof b, t->ctx), true);
        xmlNodePtr tc = page_td(tr, fmt_int(b, sizeof b, t->n_truncated), true);
        if (t->n_truncated > 0) {
            h_attr(tc, "class", "num flagged");
            h_attr(tc, "title", "documents with a continuation longer than the context, scored on "
                                "its last Context tokens (lm-eval's input slicing)");
            n_cut += (int)t->n_truncated;
        }
    }
    if (!r->n_defs) h_el(defs, "p", "No task definitions recorded.");
    if (n_cut)
        h_textf(h_elc(defs, "p", "flagged", NULL), "%d document%s had a continuation longer than "
                "the context: only its last Context tokens were scored, as lm-evaluation-harness's "
                "input slicing does (column Cut to context).", n_cut, n_cut == 1 ? "" : "s");

    xmlNodePtr dl = h_elc(recipe, "dl", "facts", NULL);
    fact(dl, "Recipe id", r->recipe_id, true);
    if (c) {
        fact(dl, "Algorithm", c->algorithm, false);
        fact(dl, "Weight dtype", c->weight_dtype, false);
        fact(dl, "Nominal bits", fmt_g(b, sizeof b, c->bits, 4), false);
        fact(dl, "Group size", fmt_group(b, sizeof b, c->group_size), false);
        fact(dl, "Symmetric", fmt_bool(c->sym), false);
        fact(dl, "Double quant", fmt_bool(c->double_quant), false);
        fact(dl, "Compute dtype", c->compute_dtype, false);
        fact(dl, "Calibration set", c->calib_set, true);
        fact(dl, "Calibration samples", fmt_int(b, sizeof b, c->calib_nsamples), false);
        fact(dl, "Calibration seq. length", fmt_int(b, sizeof b, c->calib_seqlen), false);
        if (c->knobs && *c->knobs) {
            h_el(dl, "dt", "Knobs");
            h_el(h_el(dl, "dd", NULL), "pre", c->knobs);
        }
    } else {
        fact(dl, "Recipe", "not in the recipes table", false);
    }
    fact(dl, "Model id", r->model_id, true);
    if (m) {
        fact(dl, "Model path", m->path, true);
        fact(dl, "Tokenizer", m->tokenizer, true);
        fact(dl, "Model files sha256", m->files_sha256, true);
    }

    dl = h_elc(run, "dl", "facts", NULL);
    snprintf(b, sizeof b, "%lld", (long long)r->id);
    fact(dl, "Run id", b, false);
    fact(dl, "Status", r->status, false);
    fact(dl, "Failure", r->failure, false);
    fact(dl, "Job key", r->job_key, true);
    fact(dl, "Code version", r->code_version, true);
    fact(dl, "Host CPU", r->host_cpu, false);
    fact(dl, "Threads", fmt_int(b, sizeof b, r->threads), false);
    fact(dl, "Kernels", r->kernels_isa, false);
    fact(dl, "Started", r->started_at, false);
    fact(dl, "Finished", r->finished_at, false);
    fact(dl, "Quantization time", fmt_seconds(b, sizeof b, r->quant_seconds), false);
    if (!isnan(r->quant_peak_rss_mb)) snprintf(b, sizeof b, "%.1f MB", r->quant_peak_rss_mb);
    else b[0] = 0;
    fact(dl, "Quantization peak memory", b, false);
    fact(dl, "Evaluation time", fmt_seconds(b, sizeof b, r->eval_seconds), false);
    if (!isnan(r->eval_peak_rss_mb)) snprintf(b, sizeof b, "%.1f MB", r->eval_peak_rss_mb);
    else b[0] = 0;
    fact(dl, "Evaluation peak memory", b, false);
    fact(dl, "Artifact", r->artifact_path, true);
    if (!isnan(r->artifact_bytes))
        snprintf(b, sizeof b, "%.0f bytes (%s)", r->artifact_bytes,
                 fmt_bytes((char[32]){0}, 32, r->artifact_bytes));
    else b[0] = 0;
    fact(dl, "Artifact size", b, false);
    fact(dl, "Bits per weight", fmt_g(b, sizeof b, r->bits_per_weight, 5), false);
    fact(dl, "Parameters", fmt_int(b, sizeof b, r->n_params), false);

    static const char *const ph[] = {"Key", "Value"};
    tb = table(prov, ph, 2);
    for (int i = 0; i < r->n_prov; i++) {
        xmlNodePtr tr = h_el(tb, "tr", NULL);
        h_user(h_el(h_el(tr, "td", NULL), "code", NULL), r->prov[i].key);
        h_user(h_el(tr, "td", NULL), r->prov[i].value ? r->prov[i].value : "");
    }
    if (!r->n_prov) h_el(prov, "p", "No provenance keys recorded.");

    char *cmd = site_repro_command(r);
    if (!cmd) {
        page_release(&p);
        return -1;
    }
    h_el(h_el(repro, "pre", NULL), "code", cmd);
    free(cmd);
    snprintf(rel, sizeof rel, "runs/%lld.html", (long long)r->id);
    return page_write(&p, rel);
}

int pages_runs(struct site *s) {
    for (int i = 0; i < s->d->n_runs; i++)
        if (run_page(s, &s->d->runs[i])) return -1;
    return 0;
}
