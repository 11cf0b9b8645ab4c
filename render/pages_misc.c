/* render/pages_misc.c: compare.html ("a bigger model at 4 bits vs a smaller one at 16 bits") and
 * about.html (the methodology; its prose lives in templates/about.xhtml, the tables that must
 * follow the data or the code are filled here).
 *
 * The comparison pairs base models by size on disk: for each model S with a 16/32-bit baseline,
 * and each model L with more parameters, the most accurate quantized run of L whose file is no
 * larger than S's baseline file. Same memory budget, two ways to spend it. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "render/render_impl.h"

#define COMPARE_MAX_ROWS 400

static xmlNodePtr table(xmlNodePtr parent, const char *cls, const char *const *heads, int n) {
    xmlNodePtr wrap = h_elc(parent, "div", "table-wrap", NULL);
    xmlNodePtr t = h_elc(wrap, "table", cls, NULL);
    xmlNodePtr tr = h_el(h_el(t, "thead", NULL), "tr", NULL);
    for (int i = 0; i < n; i++) h_attr(h_el(tr, "th", heads[i]), "scope", "col");
    return h_el(t, "tbody", NULL);
}

/* a dataset's columns: name, type and meaning, one row each */
static void cols_table(xmlNodePtr parent, const struct col_info *cols, int n) {
    static const char *const ch[] = {"Column", "Type", "Meaning"};
    xmlNodePtr tb = table(parent, "data", ch, 3);
    for (int c = 0; c < n; c++) {
        xmlNodePtr tr = h_el(tb, "tr", NULL);
        h_el(h_el(tr, "td", NULL), "code", cols[c].name);
        h_el(tr, "td", cols[c].type == COL_TEXT ? "text" : cols[c].type == COL_INT ? "integer" : "number");
        h_el(tr, "td", cols[c].doc);
    }
}

static void run_cell(struct page *p, xmlNodePtr tr, const struct lb_run *r) {
    page_run_link(p, h_el(tr, "td", NULL), r);
}

static const struct lb_data *g_cd;
static int cmp_group_size(const void *a, const void *b) {
    const struct lb_group *x = &g_cd->groups[*(const int *)a], *y = &g_cd->groups[*(const int *)b];
    double px = isnan(x->n_params) ? -1 : x->n_params, py = isnan(y->n_params) ? -1 : y->n_params;
    if (px != py) return px < py ? -1 : 1;
    return strcmp(x->key, y->key);
}

int page_compare(struct site *s) {
    const struct lb_data *d = s->d;
    struct page p;
    const struct chart_layout ls = s->lay[d->n_groups * CHARTS_PER_GROUP],
                              lp = s->lay[d->n_groups * CHARTS_PER_GROUP + 1];
    int ret = -1;
    if (page_new(&p, s, "compare", 0, "Bigger and quantized, or smaller at 16 bits? \xe2\x80\x94 lowbit"))
        goto out;
    xmlNodePtr pairs = page_slot(&p, "pairs"), charts = page_slot(&p, "charts");
    if (!pairs || !charts) goto fail;
    static const char *const heads[] = {
        "Smaller model at 16/32 bits", "Its size", "Its average", "Bigger model, quantized",
        "Its size",                    "Its bits/weight", "Its average", "\xce\x94 average (pp)",
        "At this budget"};
    xmlNodePtr tb = table(pairs, "compare", heads, (int)LB_ARRAY_LEN(heads));
    int *order = malloc((size_t)(d->n_groups + 1) * sizeof *order), rows = 0, total = 0;
    if (!order) goto fail;
    for (int g = 0; g < d->n_groups; g++) order[g] = g;
    g_cd = d;
    qsort(order, (size_t)d->n_groups, sizeof *order, cmp_group_size);
    for (int i = 0; i < d->n_groups; i++) {
        const struct lb_group *S = &d->groups[order[i]];
        if (S->baseline < 0) continue;
        const struct lb_run *B = &d->runs[S->baseline];
        if (isnan(B->average) || isnan(B->artifact_bytes) || isnan(S->n_params)) continue;
        for (int j = i + 1; j < d->n_groups; j++) {
            const struct lb_group *L = &d->groups[order[j]];
            if (isnan(L->n_params) || !(L->n_params > S->n_params)) continue;
            const struct lb_run *best = NULL;
            for (int k = 0; k < L->n_runs; k++) {
                const struct lb_run *r = &d->runs[L->runs[k]];
                if (!r->ok || isnan(r->average) || !strcmp(lb_run_algorithm(r), "fp") ||
                    isnan(r->artifact_bytes) || r->artifact_bytes > B->artifact_bytes)
                    continue;
                if (!best || r->rank < best->rank) best = r;
            }
            if (!best) continue;
            total++;
            if (rows >= COMPARE_MAX_ROWS) continue;
            rows++;
            char b[64];
            xmlNodePtr tr = h_el(tb, "tr", NULL);
            run_cell(&p, tr, B);
            page_td(tr, fmt_bytes(b, sizeof b, B->artifact_bytes), true);
            page_td(tr, fmt_pct(b, sizeof b, B->average), true);
            run_cell(&p, tr, best);
            page_td(tr, fmt_bytes(b, sizeof b, best->artifact_bytes), true);
            page_td(tr, fmt_g(b, sizeof b, best->bits_per_weight, 3), true);
            page_td(tr, fmt_pct(b, sizeof b, best->average), true);
            double delta = (best->average - B->average) * 100;
            snprintf(b, sizeof b, "%+.2f", delta);
            page_td(tr, b, true);
            /* a winner only from a significant difference (paired over the same documents) */
            const int w = lb_better_than(d, best, B);
            page_td(tr, w > 0 ? "bigger quantized wins" : w < 0 ? "smaller at 16 bits wins"
                                                        : "tie (not significantly different)",
                    false);
            h_text(tb, "\n");
        }
    }
    free(order);
    if (!total)
        h_el(pairs, "p", "No pair yet: this needs a model with a 16/32-bit baseline and a bigger "
                         "model with a quantized run no larger than that baseline.");
    else if (total > rows)
        h_textf(h_el(pairs, "p", NULL), "The first %d of %d pairs are shown; every run is in "
                                        "the datasets.", rows, total);
    int nb = d->n_board;
    int *rr = malloc((size_t)(nb + 1) * sizeof *rr);
    double *x = malloc((size_t)(nb + 1) * sizeof *x), *ya = malloc((size_t)(nb + 1) * sizeof *ya),
           *yp = malloc((size_t)(nb + 1) * sizeof *yp);
    if (!rr || !x || !ya || !yp) {
        free(rr), free(x), free(ya), free(yp);
        goto fail;
    }
    for (int k = 0; k < nb; k++) {
        const struct lb_run *r = &d->runs[d->board[k]];
        rr[k] = d->board[k];
        x[k] = r->artifact_bytes > 0 ? r->artifact_bytes : NAN;
        ya[k] = r->average;
        yp[k] = r->ppl_cpp > 0 ? r->ppl_cpp : NAN;
    }
    xmlNodePtr cap = page_figure(&p, charts, "size-accuracy", ls.w, ls.h,
                "Scatter plot of average accuracy against file size for every run of every model, "
                "log-scale size axis, with the Pareto frontier labelled.",
                "Average accuracy against size on disk for every run; the dashed staircase is the "
                "Pareto frontier: the most accurate run at each size budget. Every point is a row "
                "of the leaderboard.");
    page_frontier(&p, cap, rr, x, ya, nb, true, "more accurate");
    cap = page_figure(&p, charts, "size-ppl", lp.w, lp.h,
                "Scatter plot of WikiText-2 perplexity (llama.cpp protocol, context 512) against "
                "file size for every run, both axes log scale, with the Pareto frontier labelled.",
                "WikiText-2 perplexity (llama.cpp protocol, context 512; lower is better) against "
                "size on disk; the frontier is the lowest perplexity at each size budget, a step "
                "kept only when it is significantly lower (paired over the same chunks).");
    page_frontier(&p, cap, rr, x, yp, nb, false, "lower in perplexity");
    free(rr), free(x), free(ya), free(yp);
    page_downloads(&p, charts);
    ret = page_write(&p, "compare.html");
    goto out;
fail:
    page_release(&p);
out:
    return ret;
}

/* ------------------------------------------------------------------ about.html */

/* distinct (task, dataset file, sha256, docs, few-shot) seen in task_defs */
struct tdef_key {
    const struct lb_taskdef *t;
};
static int cmp_tdef(const void *a, const void *b) {
    const struct lb_taskdef *x = ((const struct tdef_key *)a)->t, *y = ((const struct tdef_key *)b)->t;
    int c = strcmp(x->task, y->task);
    if (!c) c = strcmp(x->dataset_file ? x->dataset_file : "", y->dataset_file ? y->dataset_file : "");
    if (!c) c = strcmp(x->dataset_sha256 ? x->dataset_sha256 : "", y->dataset_sha256 ? y->dataset_sha256 : "");
    if (!c) c = (x->n_docs > y->n_docs) - (x->n_docs < y->n_docs);
    if (!c) c = (x->num_fewshot > y->num_fewshot) - (x->num_fewshot < y->num_fewshot);
    return c;
}

int page_about(struct site *s) {
    const struct lb_data *d = s->d;
    struct page p;
    if (page_new(&p, s, "about", 0, "About and methodology \xe2\x80\x94 lowbit")) return -1;
    xmlNodePtr tasks = page_slot(&p, "tasks"), cols = page_slot(&p, "columns"),
               dl = page_slot(&p, "downloads"), repro = page_slot(&p, "repro"),
               seen = page_slot(&p, "taskdefs"), tcols = page_slot(&p, "training-columns");
    if (!tasks || !cols || !dl || !repro || !seen || !tcols) {
        page_release(&p);
        return -1;
    }
    static const char *const th[] = {"Column", "lm-eval task", "Metric", "Few-shot"};
    xmlNodePtr tb = table(tasks, "data", th, 4);
    for (int t = 0; t < d->n_tasks; t++) {
        xmlNodePtr tr = h_el(tb, "tr", NULL);
        h_el(tr, "td", d->tasks[t].label);
        h_el(h_el(tr, "td", NULL), "code", d->tasks[t].key);
        h_el(h_el(tr, "td", NULL), "code", "acc");
        page_td(tr, "0", true);
    }
    xmlNodePtr tr = h_el(tb, "tr", NULL);
    h_el(tr, "td", "Wikitext PPL");
    h_el(h_el(tr, "td", NULL), "code", LB_PPL_TASK);
    h_el(h_el(tr, "td", NULL), "code", LB_PPL_METRIC);
    page_td(tr, "0", true);
    tr = h_el(tb, "tr", NULL);
    h_el(tr, "td", "KLD");
    h_el(h_el(tr, "td", NULL), "code", LB_KLD_TASK);
    h_el(h_el(tr, "td", NULL), "code", LB_KLD_METRIC);
    page_td(tr, "\xe2\x80\x94", true);

    /* the task definitions actually used, with the data files' hashes */
    struct tdef_key *k = malloc((size_t)(d->n_defs + 1) * sizeof *k);
    int nk = 0;
    for (int i = 0; k && i < d->n_defs; i++) k[nk++].t = &d->defs[i];
    if (k) qsort(k, (size_t)nk, sizeof *k, cmp_tdef);
    static const char *const dh[] = {"Task", "Dataset file", "sha256", "Docs scored", "Few-shot",
                                     "Runs"};
    tb = table(seen, "data", dh, (int)LB_ARRAY_LEN(dh));
    for (int i = 0, j; i < nk; i = j) {
        for (j = i + 1; j < nk && !cmp_tdef(&k[i], &k[j]); j++)
            ;
        const struct lb_taskdef *t = k[i].t;
        char b[32];
        tr = h_el(tb, "tr", NULL);
        page_taskdef_cells(tr, t);
        page_td(tr, fmt_int(b, sizeof b, t->n_docs), true);
        page_td(tr, fmt_int(b, sizeof b, t->num_fewshot), true);
        snprintf(b, sizeof b, "%d", j - i);
        page_td(tr, b, true);
    }
    free(k);
    if (!nk) h_el(seen, "p", "No task definitions in the database yet.");

    cols_table(cols, p.site->cols, p.site->n_cols);
    cols_table(tcols, tc_cols, tc_n_cols);
    page_downloads(&p, dl);
    /* the reproduction command of the top row, as an example */
    if (d->n_board) {
        const struct lb_run *r = &d->runs[d->board[0]];
        char *cmd = site_repro_command(r);
        if (!cmd) {
            page_release(&p);
            return -1;
        }
        h_el(h_el(repro, "pre", NULL), "code", cmd);
        free(cmd);
        xmlNodePtr para = h_el(repro, "p", "This reproduces ");
        char href[64];
        snprintf(href, sizeof href, "runs/%lld.html", (long long)r->id);
        h_link(&p, para, href, "the top row");
        h_text(para, "; every run page shows its own command.");
    } else {
        h_el(h_el(repro, "pre", NULL), "code", "lowbit job --model-id MODEL --recipe-id RECIPE");
    }
    return page_write(&p, "about.html");
}
