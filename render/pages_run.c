/* render/pages_run.c: runs/<id>.html, the provenance of one row: every score with its standard
 * error and sample count, the task definitions (dataset file and sha256, documents, limit, seed,
 * few-shot, BOS, context), the recipe and its knobs, the model files, the code version, host,
 * threads, timings and memory, the artifact, every provenance key, and the one command that
 * reproduces the row. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

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

#define FLIPS_SHOWN 25 /* documents listed per task and direction; all are in data/details */

/* the samples of r for task, a slice sorted by doc */
static const struct lb_sample *run_task_samples(const struct lb_run *r, const char *task, int *n) {
    int i = 0;
    while (i < r->n_samples && strcmp(r->samples[i].task, task)) i++;
    int j = i;
    while (j < r->n_samples && !strcmp(r->samples[j].task, task)) j++;
    *n = j - i;
    return r->samples + i;
}

static const char *def_sha(const struct lb_run *r, const char *task) {
    for (int i = 0; i < r->n_defs; i++)
        if (!strcmp(r->defs[i].task, task)) return r->defs[i].dataset_sha256;
    return NULL;
}

/* one flipped document: its prompt and choices, the right one and both runs' answers marked */
static void flip_item(xmlNodePtr ol, const struct lb_doctext *t, const struct lb_sample *a,
                      const struct lb_sample *b) {
    xmlNodePtr li = h_el(ol, "li", NULL);
    h_textf(h_elc(li, "p", "docid", NULL), "document %d", a->doc);
    if (!t) {
        h_el(li, "p", "(its text was not recorded: a run collected before lowbit kept texts)");
        return;
    }
    if (t->context) h_user(h_elc(li, "p", "prompt", NULL), t->context);
    json_t *ch = t->choices ? json_loads(t->choices, 0, NULL) : NULL;
    xmlNodePtr cl = h_elc(li, "ol", "choices", NULL);
    h_attr(cl, "start", "0");
    size_t c;
    json_t *v;
    json_array_foreach(ch, c, v) {
        xmlNodePtr ci = h_el(cl, "li", NULL);
        h_user(ci, json_string_value(v));
        if ((int)c == a->gold) h_elc(ci, "span", "mark gold", " right answer");
        if ((int)c == a->pred) h_elc(ci, "span", "mark run", " this run");
        if ((int)c == b->pred) h_elc(ci, "span", "mark base", " baseline");
    }
    json_decref(ch);
    if (t->continuation) {
        xmlNodePtr cp = h_elc(li, "p", "cont", "continuation: ");
        h_user(cp, t->continuation);
    }
}

/* per board task, the documents the run gets wrong and its baseline right, and the reverse */
static void flips_section(struct page *p, xmlNodePtr slot, const struct lb_run *r) {
    const struct lb_data *d = p->site->d;
    const struct lb_run *B = r->baseline;
    if (!B || B == r || !r->n_samples) {
        h_el(slot, "p", B == r ? "This run is its model's baseline." :
                        "No per-document records, or no baseline run of this model.");
        return;
    }
    h_textf(h_el(slot, "p", NULL), "Against the baseline run %s (%lld), on the same documents: "
            "per task, the documents this run gets wrong that the baseline gets right, and the "
            "reverse (at most %d of each listed; every document is in data/details/%lld.json).",
            B->recipe_id, (long long)B->id, FLIPS_SHOWN, (long long)r->id);
    for (int t = 0; t < d->n_tasks; t++) {
        const char *task = d->tasks[t].key;
        int na, nb;
        const struct lb_sample *sa = run_task_samples(r, task, &na);
        const struct lb_sample *sb = run_task_samples(B, task, &nb);
        const char *sha = def_sha(r, task), *shb = def_sha(B, task);
        bool same = na && na == nb && sha && shb && !strcmp(sha, shb);
        for (int i = 0; same && i < na; i++) same = sa[i].doc == sb[i].doc;
        if (!same) continue;
        int down = 0, up = 0;
        for (int i = 0; i < na; i++) {
            down += sa[i].acc == 0 && sb[i].acc == 1;
            up += sa[i].acc == 1 && sb[i].acc == 0;
        }
        xmlNodePtr det = h_el(slot, "details", NULL);
        char id[160];
        snprintf(id, sizeof id, "flips-%s", task);
        h_attr(det, "id", id);
        xmlNodePtr sm = h_el(det, "summary", NULL);
        h_user(sm, d->tasks[t].label);
        h_textf(sm, ": %d right \xe2\x86\x92 wrong, %d wrong \xe2\x86\x92 right of %d documents",
                down, up, na);
        for (int dir = 0; dir < 2; dir++) {
            if (!(dir ? up : down)) continue;
            h_el(det, "h4", dir ? "Wrong for the baseline, right for this run"
                                : "Right for the baseline, wrong for this run");
            xmlNodePtr ol = h_elc(det, "ol", "flips", NULL);
            for (int i = 0, k = 0; i < na && k < FLIPS_SHOWN; i++) {
                const bool f = dir ? sa[i].acc == 1 && sb[i].acc == 0
                                   : sa[i].acc == 0 && sb[i].acc == 1;
                if (!f) continue;
                flip_item(ol, lb_doctext_find(d, task, sha, sa[i].doc), &sa[i], &sb[i]);
                k++;
            }
        }
    }
}

/* the run's task definitions: what was scored, on which data, and the documents cut to the
 * context */
static void run_defs(xmlNodePtr defs, const struct lb_run *r) {
    char b[128];
    static const char *const dh[] = {"Task", "Dataset file", "sha256", "Docs scored", "Docs in set",
                                     "Limit", "Seed", "Few-shot", "BOS", "Context",
                                     "Cut to context"};
    xmlNodePtr tb = table(defs, dh, (int)LB_ARRAY_LEN(dh));
    int n_cut = 0;
    for (int i = 0; i < r->n_defs; i++) {
        const struct lb_taskdef *t = &r->defs[i];
        xmlNodePtr tr = h_el(tb, "tr", NULL);
        page_taskdef_cells(tr, t);
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
               prov = page_slot(&p, "provenance"), repro = page_slot(&p, "repro"),
               flips = page_slot(&p, "flips");
    if (!head || !sum || !scores || !defs || !recipe || !run || !prov || !repro || !flips) {
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

    flips_section(&p, flips, r);

    run_defs(defs, r);

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
    /* what it costs to run, on this host with this many threads */
    if (!isnan(r->prefill_tps))
        snprintf(b, sizeof b, "%.1f tokens/s (512-token context)", r->prefill_tps);
    else b[0] = 0;
    fact(dl, "Prefill speed", b, false);
    if (!isnan(r->decode_tps))
        snprintf(b, sizeof b, "%.1f tokens/s (after a 256-token prompt)", r->decode_tps);
    else b[0] = 0;
    fact(dl, "Decode speed", b, false);
    if (!isnan(r->run_memory_mb))
        snprintf(b, sizeof b, "%.1f MB (weights + KV cache + scratch at context 512)",
                 r->run_memory_mb);
    else b[0] = 0;
    fact(dl, "Memory to run", b, false);
    fact(dl, "Artifact", r->artifact_path, true);
    if (!isnan(r->artifact_bytes))
        snprintf(b, sizeof b, "%.0f bytes (%s)", r->artifact_bytes,
                 fmt_bytes((char[32]){0}, 32, r->artifact_bytes));
    else b[0] = 0;
    fact(dl, "Artifact size", b, false);
    fact(dl, "Bits per weight", fmt_g(b, sizeof b, r->bits_per_weight, 5), false);
    fact(dl, "Parameters", fmt_int(b, sizeof b, r->n_params), false);
    if (!isnan(r->n_params_active) && r->n_params_active != r->n_params)
        fact(dl, "Active parameters", fmt_int(b, sizeof b, r->n_params_active), false);

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
