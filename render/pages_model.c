/* render/pages_model.c: models/index.html and models/<slug>.html, one page per base model: its
 * variants side by side (by rank), its four charts each with its data as a table, its failed
 * runs with their errors. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "render/render_impl.h"

static void dl_row(xmlNodePtr dl, const char *k, const char *v) {
    if (!v || !*v) return;
    h_el(dl, "dt", k);
    h_user(h_el(dl, "dd", NULL), v);
}

static xmlNodePtr table_head(xmlNodePtr parent, const char *cls, const char *const *heads, int n) {
    xmlNodePtr t = h_elc(parent, "table", cls, NULL);
    xmlNodePtr tr = h_el(h_el(t, "thead", NULL), "tr", NULL);
    for (int i = 0; i < n; i++) h_attr(h_el(tr, "th", heads[i]), "scope", "col");
    return h_el(t, "tbody", NULL);
}

static void run_link(struct page *p, xmlNodePtr parent, const struct lb_run *r, const char *text) {
    char href[64];
    snprintf(href, sizeof href, "runs/%lld.html", (long long)r->id);
    h_user(h_link(p, parent, href, NULL), text);
}

static void variants_table(struct page *p, xmlNodePtr parent, int g) {
    const struct lb_data *d = p->site->d;
    const struct lb_group *G = &d->groups[g];
    const struct lb_run *B = G->baseline >= 0 ? &d->runs[G->baseline] : NULL;
    const char *heads[8 + LB_TASK_COUNT + 4];
    int nh = 0;
    static const char *const h0[] = {"#", "Model \xc2\xb7 recipe", "Algorithm", "Weight dtype",
                                     "Group", "Bits/weight", "Size", "Average", "\xce\x94 avg (pp)"};
    for (size_t i = 0; i < LB_ARRAY_LEN(h0); i++) heads[nh++] = h0[i];
    for (int t = 0; t < LB_TASK_COUNT; t++) heads[nh++] = lb_tasks[t].label;
    heads[nh++] = "Wikitext PPL";
    heads[nh++] = "KLD";
    heads[nh++] = "Quant time";
    xmlNodePtr wrap = h_elc(parent, "div", "table-wrap", NULL);
    xmlNodePtr tb = table_head(wrap, "variants", heads, nh);
    int *rows = malloc((size_t)(G->n_runs + 1) * sizeof *rows), n = 0;
    if (!rows) return;
    /* by rank (the board's order), failed runs are listed separately */
    for (int k = 0; k < G->n_runs; k++)
        if (d->runs[G->runs[k]].ok) rows[n++] = G->runs[k];
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && d->runs[rows[j]].rank < d->runs[rows[j - 1]].rank; j--) {
            int t = rows[j];
            rows[j] = rows[j - 1];
            rows[j - 1] = t;
        }
    for (int i = 0; i < n; i++) {
        const struct lb_run *r = &d->runs[rows[i]];
        const struct lb_recipe *c = r->recipe;
        char b[64];
        xmlNodePtr tr = h_el(tb, "tr", NULL);
        if (rows[i] == G->baseline) h_attr(tr, "class", "baseline");
        snprintf(b, sizeof b, "%d", r->rank);
        page_td(tr, b, true);
        page_run_link(p, h_el(tr, "td", NULL), r);
        h_user(page_td(tr, NULL, false), c ? c->algorithm : "");
        h_user(page_td(tr, NULL, false), c ? c->weight_dtype : "");
        page_td(tr, fmt_group(b, sizeof b, c ? c->group_size : NAN), true);
        page_td(tr, fmt_g(b, sizeof b, r->bits_per_weight, 3), true);
        page_td(tr, fmt_bytes(b, sizeof b, r->artifact_bytes), true);
        page_td(tr, fmt_pct(b, sizeof b, r->average), true);
        double delta = B ? (r->average - B->average) * 100 : NAN;
        if (isnan(delta)) b[0] = 0;
        else snprintf(b, sizeof b, "%+.2f", delta);
        page_td(tr, b, true);
        for (int t = 0; t < LB_TASK_COUNT; t++) page_td(tr, fmt_pct(b, sizeof b, r->acc[t]), true);
        page_td(tr, fmt_g(b, sizeof b, r->ppl, 4), true);
        page_td(tr, fmt_g(b, sizeof b, r->kld, 3), true);
        page_td(tr, fmt_seconds(b, sizeof b, r->quant_seconds), true);
        h_text(tb, "\n");
    }
    free(rows);
}

/* the data behind the bars chart, as a table in the figure's caption */
static void bars_table(struct page *p, xmlNodePtr cap, const struct bars_data *b) {
    const struct lb_data *d = p->site->d;
    xmlNodePtr det = h_el(cap, "details", NULL);
    h_el(det, "summary", "Data of this chart");
    if (!b->n_bits) {
        h_el(det, "p", "No quantized run with all ten tasks yet.");
        return;
    }
    xmlNodePtr t = h_elc(det, "table", "data", NULL);
    xmlNodePtr tr = h_el(h_el(t, "thead", NULL), "tr", NULL);
    h_attr(h_el(tr, "th", "Method"), "scope", "col");
    for (int i = 0; i < b->n_bits; i++) {
        char th[64];
        snprintf(th, sizeof th, "%g-bit: best average (%%), recipe", b->bits[i]);
        h_attr(h_el(tr, "th", th), "scope", "col");
    }
    xmlNodePtr tb = h_el(t, "tbody", NULL);
    for (int a = 0; a < b->n_algos; a++) {
        tr = h_el(tb, "tr", NULL);
        h_user(h_el(tr, "th", NULL), b->algos[a]);
        for (int i = 0; i < b->n_bits; i++) {
            xmlNodePtr td = h_el(tr, "td", NULL);
            if (b->run[a][i] < 0) {
                h_text(td, "\xe2\x80\x94");
                continue;
            }
            char v[32];
            h_textf(td, "%s ", fmt_pct(v, sizeof v, b->val[a][i]));
            run_link(p, td, &d->runs[b->run[a][i]], d->runs[b->run[a][i]].recipe_id);
        }
    }
    xmlNodePtr para = h_el(det, "p", NULL);
    if (isnan(b->baseline)) h_text(para, "No baseline run: no reference line.");
    else {
        char v[32];
        h_textf(para, "Reference line: %s, average %s%%.", b->baseline_label,
                fmt_pct(v, sizeof v, b->baseline));
    }
}

static void heat_table(struct page *p, xmlNodePtr cap, int g) {
    const struct lb_data *d = p->site->d;
    const struct lb_group *G = &d->groups[g];
    xmlNodePtr det = h_el(cap, "details", NULL);
    h_el(det, "summary", "Data of this chart");
    if (G->baseline < 0) {
        h_el(det, "p", "No baseline run of this model, so no change can be computed.");
        return;
    }
    const struct lb_run *B = &d->runs[G->baseline];
    int *rows = malloc((size_t)(G->n_runs + 1) * sizeof *rows);
    if (!rows) return;
    int n = heat_rows(d, g, rows, G->n_runs);
    xmlNodePtr t = h_elc(det, "table", "data", NULL);
    xmlNodePtr tr = h_el(h_el(t, "thead", NULL), "tr", NULL);
    h_attr(h_el(tr, "th", "Variant"), "scope", "col");
    for (int k = 0; k < LB_TASK_COUNT; k++) h_attr(h_el(tr, "th", lb_tasks[k].label), "scope", "col");
    h_attr(h_el(tr, "th", "Average"), "scope", "col");
    xmlNodePtr tb = h_el(t, "tbody", NULL);
    for (int i = 0; i < n; i++) {
        const struct lb_run *r = &d->runs[rows[i]];
        tr = h_el(tb, "tr", NULL);
        run_link(p, h_el(tr, "th", NULL), r, r->recipe_id);
        for (int k = 0; k <= LB_TASK_COUNT; k++) {
            double v = k < LB_TASK_COUNT ? (r->acc[k] - B->acc[k]) * 100
                                         : (r->average - B->average) * 100;
            char b[32] = "";
            if (!isnan(v)) snprintf(b, sizeof b, "%+.2f", v);
            page_td(tr, b, true);
        }
    }
    h_el(det, "p", "Values: accuracy of the variant minus accuracy of the baseline, percentage points.");
    free(rows);
}

static void cost_table(struct page *p, xmlNodePtr cap, int g) {
    struct cost_row rows[BARS_MAX];
    int n = cost_compute(p->site->d, g, rows, BARS_MAX);
    xmlNodePtr det = h_el(cap, "details", NULL);
    h_el(det, "summary", "Data of this chart");
    if (!n) {
        h_el(det, "p", "No quantization time or memory recorded.");
        return;
    }
    static const char *const heads[] = {"Method", "Runs", "Time median", "Time min", "Time max",
                                        "Memory median (MB)", "Memory min", "Memory max"};
    xmlNodePtr tb = table_head(det, "data", heads, (int)LB_ARRAY_LEN(heads));
    for (int i = 0; i < n; i++) {
        char b[32];
        xmlNodePtr tr = h_el(tb, "tr", NULL);
        h_user(h_el(tr, "th", NULL), rows[i].algo);
        snprintf(b, sizeof b, "%d", rows[i].n);
        page_td(tr, b, true);
        page_td(tr, fmt_seconds(b, sizeof b, rows[i].t_med), true);
        page_td(tr, fmt_seconds(b, sizeof b, rows[i].t_min), true);
        page_td(tr, fmt_seconds(b, sizeof b, rows[i].t_max), true);
        page_td(tr, fmt_g(b, sizeof b, rows[i].m_med, 4), true);
        page_td(tr, fmt_g(b, sizeof b, rows[i].m_min, 4), true);
        page_td(tr, fmt_g(b, sizeof b, rows[i].m_max, 4), true);
    }
}

static int model_page(struct site *s, int g) {
    const struct lb_data *d = s->d;
    const struct lb_group *G = &d->groups[g];
    struct page p;
    char ttl[512], rel[256], b[64], alt[600];
    const struct chart_layout *L = &s->lay[g * CHARTS_PER_GROUP];
    const struct chart_layout lb = L[0], lp = L[1], lh = L[2], lc = L[3];
    int ret = -1;
    snprintf(ttl, sizeof ttl, "%s \xe2\x80\x94 lowbit", G->name);
    utf8_trim(ttl);
    if (page_new(&p, s, "model", 1, ttl)) goto out;
    xmlNodePtr head = page_slot(&p, "heading"), info = page_slot(&p, "info"),
               var = page_slot(&p, "variants"), charts = page_slot(&p, "charts"),
               failed = page_slot(&p, "failed");
    if (!head || !info || !var || !charts || !failed) goto fail;
    h_user(head, G->name);
    const struct lb_model *m = NULL;
    for (int k = 0; k < G->n_runs && !m; k++)
        if (!strcmp(d->runs[G->runs[k]].model_id, G->key)) m = d->runs[G->runs[k]].model;
    xmlNodePtr dl = h_elc(info, "dl", "facts", NULL);
    dl_row(dl, "Model id", G->key);
    if (m) {
        dl_row(dl, "Family", m->family);
        dl_row(dl, "Architecture", m->architecture);
        dl_row(dl, "Type", m->model_type);
        dl_row(dl, "License", m->license);
        dl_row(dl, "Notes", m->notes);
    }
    dl_row(dl, "Parameters", fmt_params(b, sizeof b, G->n_params));
    if (G->baseline >= 0) {
        const struct lb_run *B = &d->runs[G->baseline];
        h_el(dl, "dt", "Baseline");
        xmlNodePtr dd = h_el(dl, "dd", NULL);
        run_link(&p, dd, B, B->recipe_id);
        char v[32];
        h_textf(dd, ": average %s%%, %s", fmt_pct(v, sizeof v, B->average),
                fmt_bytes(b, sizeof b, B->artifact_bytes));
    } else {
        dl_row(dl, "Baseline", "none yet (no fp16/bf16/fp32 run of this model): no \xce\x94 column");
    }
    snprintf(b, sizeof b, "%d", G->n_runs);
    dl_row(dl, "Runs", b);

    variants_table(&p, var, g);

    struct bars_data bd;
    bars_compute(d, g, &bd);
    snprintf(rel, sizeof rel, "%s-bars", G->slug);
    snprintf(alt, sizeof alt, "Grouped bar chart of the best average accuracy of each method at each bit width for %s; data in the table below.", G->name);
    utf8_trim(alt);
    xmlNodePtr cap = page_figure(&p, charts, rel, lb.w, lb.h, alt,
                                 "Best average accuracy (mean of the ten tasks) reached by each "
                                 "method at each nominal bit width; the dashed line is the "
                                 "unquantized baseline. Bars start at 0.");
    bars_table(&p, cap, &bd);
    snprintf(rel, sizeof rel, "%s-bpw", G->slug);
    snprintf(alt, sizeof alt, "Scatter plot of average accuracy against measured bits per weight for every run of %s, with the Pareto frontier; each point is a row of the variants table.", G->name);
    utf8_trim(alt);
    cap = page_figure(&p, charts, rel, lp.w, lp.h, alt,
                      "Average accuracy against measured bits per weight, one point per run "
                      "(rows of the table above); the dashed staircase is the Pareto frontier, "
                      "whose circled points no other run beats on both size and accuracy. The y "
                      "axis does not start at 0.");
    {
        int n = 0, *rr = malloc((size_t)(G->n_runs + 1) * sizeof *rr);
        double *x = malloc((size_t)(G->n_runs + 1) * sizeof *x),
               *y = malloc((size_t)(G->n_runs + 1) * sizeof *y);
        for (int k = 0; rr && x && y && k < G->n_runs; k++) {
            const struct lb_run *r = &d->runs[G->runs[k]];
            if (!r->ok || isnan(r->average)) continue;
            rr[n] = G->runs[k], x[n] = r->bits_per_weight, y[n++] = r->average;
        }
        if (rr && x && y) page_frontier(&p, cap, rr, x, y, n, true, "more accurate");
        free(rr), free(x), free(y);
    }
    snprintf(rel, sizeof rel, "%s-heat", G->slug);
    snprintf(alt, sizeof alt, "Heatmap of the per-task accuracy change from the baseline for each variant of %s; data in the table below.", G->name);
    utf8_trim(alt);
    cap = page_figure(&p, charts, rel, lh.w, lh.h, alt,
                      "Change in accuracy from the baseline for each task, percentage points "
                      "(vermillion: lower, blue: higher).");
    heat_table(&p, cap, g);
    snprintf(rel, sizeof rel, "%s-cost", G->slug);
    snprintf(alt, sizeof alt, "Bar chart of quantization time and peak memory per method for %s; data in the table below.", G->name);
    utf8_trim(alt);
    cap = page_figure(&p, charts, rel, lc.w, lc.h, alt,
                      "What quantizing costs: wall time and peak resident memory per method, "
                      "median over its runs, whiskers from minimum to maximum.");
    cost_table(&p, cap, g);

    int nf = 0;
    for (int k = 0; k < G->n_runs; k++) {
        const struct lb_run *r = &d->runs[G->runs[k]];
        if (r->ok) continue;
        if (!nf++) {
            h_el(failed, "h2", "Failed runs");
            h_el(failed, "p", "These jobs did not finish; they are not on the board. Each page "
                              "has the error and the end of the job's log.");
        }
        xmlNodePtr li = h_el(h_el(failed, "ul", NULL), "li", NULL);
        run_link(&p, li, r, r->recipe_id);
        h_text(li, ": ");
        h_user(li, r->error ? r->error : "no error message recorded");
    }
    snprintf(rel, sizeof rel, "models/%s.html", G->slug);
    ret = page_write(&p, rel);
    goto out;
fail:
    page_release(&p);
out:
    return ret;
}

int pages_models(struct site *s) {
    const struct lb_data *d = s->d;
    struct page p;
    if (page_new(&p, s, "models", 1, "Base models \xe2\x80\x94 lowbit")) return -1;
    xmlNodePtr list = page_slot(&p, "list");
    if (!list) {
        page_release(&p);
        return -1;
    }
    static const char *const heads[] = {"Base model", "Parameters", "Runs", "Baseline average",
                                        "Best quantized average", "Best quantized recipe"};
    xmlNodePtr tb = table_head(list, "models", heads, (int)LB_ARRAY_LEN(heads));
    for (int g = 0; g < d->n_groups; g++) {
        const struct lb_group *G = &d->groups[g];
        char href[256], b[64];
        xmlNodePtr tr = h_el(tb, "tr", NULL);
        snprintf(href, sizeof href, "models/%s.html", G->slug);
        h_user(h_link(&p, h_el(tr, "td", NULL), href, NULL), G->name);
        page_td(tr, fmt_params(b, sizeof b, G->n_params), true);
        snprintf(b, sizeof b, "%d", G->n_runs);
        page_td(tr, b, true);
        page_td(tr, G->baseline >= 0 ? fmt_pct(b, sizeof b, d->runs[G->baseline].average) : "", true);
        int best = -1;
        for (int k = 0; k < G->n_runs; k++) {
            const struct lb_run *r = &d->runs[G->runs[k]];
            if (!r->ok || isnan(r->average) || !strcmp(lb_run_algorithm(r), "fp")) continue;
            if (best < 0 || r->rank < d->runs[best].rank) best = G->runs[k];
        }
        page_td(tr, best >= 0 ? fmt_pct(b, sizeof b, d->runs[best].average) : "", true);
        xmlNodePtr td = h_el(tr, "td", NULL);
        if (best >= 0) run_link(&p, td, &d->runs[best], d->runs[best].recipe_id);
        h_text(tb, "\n");
    }
    if (page_write(&p, "models/index.html")) return -1;
    for (int g = 0; g < d->n_groups; g++)
        if (model_page(s, g)) return -1;
    return 0;
}
