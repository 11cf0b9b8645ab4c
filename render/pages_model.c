/* render/pages_model.c: models/index.html and models/<slug>.html, one page per base model: its
 * variants side by side (by rank), its four charts each with its data as a table, its failed
 * runs with their errors. A model trained by lowbit train also gets its training provenance
 * (train.json as a table) and its training curve; models/index.html then shows the held-out
 * loss curves of every trained model together. */
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
    const char *heads[9 + d->n_tasks + 4];
    int nh = 0;
    static const char *const h0[] = {"#", "Model \xc2\xb7 recipe", "Algorithm", "Class", "Weight dtype",
                                     "Group", "Bits/weight", "Size", "Average",
                                     "\xce\x94 avg vs baseline (pp, 95% simultaneous CI)"};
    for (size_t i = 0; i < LB_ARRAY_LEN(h0); i++) heads[nh++] = h0[i];
    for (int t = 0; t < d->n_tasks; t++) heads[nh++] = d->tasks[t].label;
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
        h_text(page_td(tr, NULL, false), lb_run_method_class(r));
        h_user(page_td(tr, NULL, false), c ? c->weight_dtype : "");
        page_td(tr, fmt_group(b, sizeof b, c ? c->group_size : NAN), true);
        page_td(tr, fmt_g(b, sizeof b, r->bits_per_weight, 3), true);
        page_td(tr, fmt_bytes(b, sizeof b, r->artifact_bytes), true);
        page_td(tr, fmt_pct(b, sizeof b, r->average), true);
        page_delta_td(tr, &r->d_avg, 100, 2, r == B);
        for (int t = 0; t < d->n_tasks; t++) page_td(tr, fmt_pct(b, sizeof b, r->acc[t]), true);
        page_td(tr, fmt_g(b, sizeof b, r->ppl, 4), true);
        page_td(tr, fmt_g(b, sizeof b, r->kld, 3), true);
        page_td(tr, fmt_seconds(b, sizeof b, r->quant_seconds), true);
        h_text(tb, "\n");
    }
    free(rows);
}

/* each variant's paired deltas against the baseline, per task, with their intervals
 * (about.html#statistics), and the PPL change */
static void deltas_table(struct page *p, xmlNodePtr parent, int g) {
    const struct lb_data *d = p->site->d;
    const struct lb_group *G = &d->groups[g];
    if (G->baseline < 0) return;
    h_el(parent, "h3", "Differences from the baseline, per task");
    h_textf(h_el(parent, "p", NULL), "Percentage points of accuracy against %s on the same "
            "documents, with paired-bootstrap intervals that hold together: all %d intervals of "
            "this model (every delta below and every mean KLD) cover their true values at once "
            "with 95%% probability, each \xc2\xb1 %.2f standard errors (a lone 95%% interval "
            "would use about 1.96; about.html#statistics); \xe2\x89\x88 marks a difference "
            "that is not significant. PPL change: PPL(variant) / PPL(baseline) - 1 on the same "
            "512-token chunks (llama.cpp's protocol), in percent.",
            d->runs[G->baseline].recipe_id, G->n_stmt, G->crit);
    const char *heads[2 + LB_TASK_MAX + 1];
    int nh = 0;
    heads[nh++] = "Model \xc2\xb7 recipe";
    heads[nh++] = "Average";
    for (int t = 0; t < d->n_tasks; t++) heads[nh++] = d->tasks[t].label;
    heads[nh++] = "PPL change (%)";
    xmlNodePtr wrap = h_elc(parent, "div", "table-wrap", NULL);
    xmlNodePtr tb = table_head(wrap, "deltas", heads, nh);
    for (int k = 0; k < d->n_board; k++) {
        const struct lb_run *r = &d->runs[d->board[k]];
        if (r->group != g || r->baseline == r || r->d_avg.state == LB_D_NONE) continue;
        xmlNodePtr tr = h_el(tb, "tr", NULL);
        page_run_link(p, h_el(tr, "td", NULL), r);
        page_delta_td(tr, &r->d_avg, 100, 2, false);
        for (int t = 0; t < d->n_tasks; t++) page_delta_td(tr, &r->d_acc[t], 100, 1, false);
        if (r->d_ppl.state == LB_D_OK) {
            /* the ratio and its interval: exp of the mean NLL difference */
            struct lb_delta x = r->d_ppl;
            x.delta = expm1(x.delta), x.lo = expm1(x.lo), x.hi = expm1(x.hi);
            page_delta_td(tr, &x, 100, 1, false);
        } else {
            page_td(tr, "", true);
        }
        h_text(tb, "\n");
    }
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
    for (int k = 0; k < d->n_tasks; k++) h_attr(h_el(tr, "th", d->tasks[k].label), "scope", "col");
    h_attr(h_el(tr, "th", "Average"), "scope", "col");
    xmlNodePtr tb = h_el(t, "tbody", NULL);
    for (int i = 0; i < n; i++) {
        const struct lb_run *r = &d->runs[rows[i]];
        tr = h_el(tb, "tr", NULL);
        run_link(p, h_el(tr, "th", NULL), r, r->recipe_id);
        for (int k = 0; k <= d->n_tasks; k++) {
            double v = k < d->n_tasks ? (r->acc[k] - B->acc[k]) * 100
                                         : (r->average - B->average) * 100;
            char b[32] = "";
            if (!isnan(v)) snprintf(b, sizeof b, "%+.2f", v);
            page_td(tr, b, true);
        }
    }
    h_el(det, "p", "Values: accuracy of the variant minus accuracy of the baseline, percentage points.");
    free(rows);
}

/* the data of the speed chart: its host and one row per run, fastest prefill last */
static void speed_table(struct page *p, xmlNodePtr cap, int g) {
    const struct lb_data *d = p->site->d;
    const struct lb_group *G = &d->groups[g];
    xmlNodePtr det = h_el(cap, "details", NULL);
    h_el(det, "summary", "Data of this chart");
    int *rows = malloc((size_t)(G->n_runs + 1) * sizeof *rows);
    if (!rows) return;
    const char *cpu;
    double threads;
    int n_other;
    bool kld;
    const int n = speed_runs(d, g, rows, &cpu, &threads, &n_other, &kld);
    char b[64];
    if (!n) {
        h_el(det, "p", "No run of this model has a measured prefill speed yet.");
        free(rows);
        return;
    }
    xmlNodePtr para = h_el(det, "p", "Host: ");
    h_user(para, cpu && *cpu ? cpu : "CPU not recorded");
    h_textf(para, ", %s thread%s.", fmt_int(b, sizeof b, threads), threads == 1 ? "" : "s");
    if (n_other)
        h_textf(para, " %d run%s measured on other hosts (another CPU or thread count) %s left "
                      "out: speeds are compared within one host only.",
                n_other, n_other == 1 ? "" : "s", n_other == 1 ? "is" : "are");
    static const char *const heads[] = {"Variant", "Prefill tok/s", "Decode tok/s", "Memory",
                                        "Mean KLD", "Average"};
    xmlNodePtr t = h_elc(det, "table", "data", NULL);
    xmlNodePtr tr = h_el(h_el(t, "thead", NULL), "tr", NULL);
    for (size_t k = 0; k < LB_ARRAY_LEN(heads); k++)
        h_attr(h_el(tr, "th", heads[k]), "scope", "col");
    xmlNodePtr tb = h_el(t, "tbody", NULL);
    for (int i = 0; i < n; i++) {
        const struct lb_run *r = &d->runs[rows[i]];
        tr = h_el(tb, "tr", NULL);
        run_link(p, h_el(tr, "th", NULL), r, r->recipe_id);
        page_td(tr, fmt_g(b, sizeof b, r->prefill_tps, 4), true);
        page_td(tr, fmt_g(b, sizeof b, r->decode_tps, 4), true);
        page_td(tr, fmt_bytes(b, sizeof b, r->run_memory_mb * 1024 * 1024), true);
        page_td(tr, fmt_g(b, sizeof b, r->kld, 3), true);
        page_td(tr, fmt_pct(b, sizeof b, r->average), true);
    }
    h_textf(h_el(det, "p", NULL), "The chart's y axis: %s.",
            kld ? "the mean KLD" : "the average accuracy (no run has a KLD)");
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

/* ------------------------------------------------------------------ training */

static void th_row(xmlNodePtr tb, const char *head, const char *text) {
    xmlNodePtr tr = h_el(tb, "tr", NULL);
    h_attr(h_el(tr, "th", head), "scope", "row");
    h_el(tr, "td", text);
}

/* "a, b, c" of the parts that are not empty */
static void join_part(char *buf, size_t n, const char *part) {
    if (!part || !*part) return;
    size_t o = strlen(buf);
    snprintf(buf + o, n - o, "%s%s", o ? ", " : "", part);
}

/* the curve as a table (in the chart's caption) */
static void curve_table(struct page *p, xmlNodePtr cap, const struct lb_training *t) {
    xmlNodePtr det = h_el(cap, "details", NULL);
    h_el(det, "summary", "Data of this chart");
    static const char *const heads[] = {"Step", "Tokens seen", "Train loss", "Held-out loss",
                                        "Learning rate", "Seconds"};
    xmlNodePtr tb = table_head(det, "data", heads, (int)LB_ARRAY_LEN(heads));
    for (int i = 0; i < t->n_curve; i++) {
        const struct lb_train_point *q = &t->curve[i];
        char b[32];
        xmlNodePtr tr = h_el(tb, "tr", NULL);
        page_td(tr, fmt_int(b, sizeof b, q->step), true);
        page_td(tr, fmt_int(b, sizeof b, q->tokens), true);
        page_td(tr, fmt_g(b, sizeof b, q->train_loss, 5), true);
        page_td(tr, fmt_g(b, sizeof b, q->heldout_loss, 5), true);
        page_td(tr, fmt_g(b, sizeof b, q->lr, 3), true);
        page_td(tr, fmt_g(b, sizeof b, q->seconds, 5), true);
    }
    xmlNodePtr para = h_el(det, "p", "Train loss: mean over the steps since the previous point; "
                                     "held-out loss: measured at that step (the last point "
                                     "scores every held-out document). Every model's curve: ");
    h_link(p, para, "data/training_curves.csv", "training_curves.csv");
    h_text(para, ".");
}

/* the provenance of a trained model (its train.json) and its training curve */
static void training_section(struct page *p, xmlNodePtr sec, const struct lb_group *G,
                             const struct lb_training *t, const struct chart_layout *lay) {
    char b[64], c[64], line[512];
    h_el(sec, "h2", "Training");
    xmlNodePtr para = h_el(sec, "p", "This model was trained by ");
    h_el(para, "code", "lowbit train");
    h_text(para, "; its settings come from the ");
    h_el(para, "code", "train.json");
    h_text(para, " and its curve from the ");
    h_el(para, "code", "curve.csv");
    h_text(para, " written beside the model file (tables training and training_curve of the "
                 "database).");
    xmlNodePtr wrap = h_elc(sec, "div", "table-wrap", NULL);
    xmlNodePtr tb = h_el(h_elc(wrap, "table", "data training", NULL), "tbody", NULL);
    if (!isnan(t->params)) {
        snprintf(line, sizeof line, "%s (%s)", fmt_params(b, sizeof b, t->params),
                 fmt_int(c, sizeof c, t->params));
        th_row(tb, "Parameters", line);
    }
    line[0] = 0;
    struct { const char *fmt; double v; } shape[] = {
        {"dim %s", t->dim}, {"hidden %s", t->hidden_dim}, {"%s layers", t->n_layers},
        {"%s heads", t->n_heads}, {"%s kv heads", t->n_kv_heads}, {"vocabulary %s", t->vocab},
        {"context %s", t->ctx}};
    for (size_t i = 0; i < LB_ARRAY_LEN(shape); i++) {
        if (isnan(shape[i].v)) continue;
        char part[64];
        snprintf(part, sizeof part, shape[i].fmt, fmt_int(b, sizeof b, shape[i].v));
        join_part(line, sizeof line, part);
    }
    if (!isnan(t->tied)) join_part(line, sizeof line, t->tied ? "tied output" : "untied output");
    if (*line) th_row(tb, "Dimensions and layers", line);
    if (!isnan(t->steps)) th_row(tb, "Steps", fmt_int(b, sizeof b, t->steps));
    if (!isnan(t->tokens_seen)) {
        snprintf(line, sizeof line, "%s (%s)", fmt_int(b, sizeof b, t->tokens_seen),
                 fmt_params(c, sizeof c, t->tokens_seen));
        th_row(tb, "Tokens seen", line);
    }
    if (!isnan(t->batch)) {
        char mb[64] = "";
        if (!isnan(t->micro_batch))
            snprintf(mb, sizeof mb, " (micro-batches of %s)", fmt_int(c, sizeof c, t->micro_batch));
        if (!isnan(t->ctx))
            snprintf(line, sizeof line, "%s windows of %.0f tokens per step%s",
                     fmt_int(b, sizeof b, t->batch), t->ctx, mb);
        else
            snprintf(line, sizeof line, "%s windows per step%s", fmt_int(b, sizeof b, t->batch),
                     mb);
        th_row(tb, "Batch", line);
    }
    line[0] = 0;
    if (!isnan(t->lr)) {
        char part[96];
        snprintf(part, sizeof part, "peak %s", fmt_g(b, sizeof b, t->lr, 3));
        join_part(line, sizeof line, part);
    }
    if (!isnan(t->warmup)) {
        char part[96];
        snprintf(part, sizeof part, "linear warm-up %s steps", fmt_int(b, sizeof b, t->warmup));
        join_part(line, sizeof line, part);
    }
    if (!isnan(t->min_lr)) {
        char part[96];
        snprintf(part, sizeof part, "cosine decay to %s", fmt_g(b, sizeof b, t->min_lr, 3));
        join_part(line, sizeof line, part);
    }
    if (!isnan(t->weight_decay)) {
        char part[96];
        snprintf(part, sizeof part, "AdamW weight decay %s",
                 fmt_g(b, sizeof b, t->weight_decay, 3));
        join_part(line, sizeof line, part);
    }
    if (!isnan(t->clip)) {
        char part[96];
        snprintf(part, sizeof part, "gradient clip %s", fmt_g(b, sizeof b, t->clip, 3));
        join_part(line, sizeof line, part);
    }
    if (*line) th_row(tb, "Optimizer and learning rate", line);
    if (!isnan(t->seed)) th_row(tb, "Seed", fmt_int(b, sizeof b, t->seed));
    if (!isnan(t->heldout_loss)) {
        snprintf(line, sizeof line, "%.4f nats/token (perplexity %.2f)", t->heldout_loss,
                 exp(t->heldout_loss));
        if (!isnan(t->heldout_documents) && !isnan(t->heldout_tokens)) {
            size_t o = strlen(line);
            snprintf(line + o, sizeof line - o, " on %s documents, %s predicted tokens",
                     fmt_int(b, sizeof b, t->heldout_documents),
                     fmt_int(c, sizeof c, t->heldout_tokens));
        }
        th_row(tb, "Held-out loss", line);
    }
    if (t->heldout_protocol) {
        xmlNodePtr tr = h_el(tb, "tr", NULL);
        h_attr(h_el(tr, "th", "Held-out protocol"), "scope", "row");
        h_user(h_el(tr, "td", NULL), t->heldout_protocol);
    }
    if (t->heldout) {
        xmlNodePtr tr = h_el(tb, "tr", NULL);
        h_attr(h_el(tr, "th", "Held-out text"), "scope", "row");
        h_user(h_el(h_el(tr, "td", NULL), "code", NULL), t->heldout);
    }
    if (!isnan(t->corpus_tokens)) {
        snprintf(line, sizeof line, "%s tokens", fmt_int(b, sizeof b, t->corpus_tokens));
        if (!isnan(t->corpus_documents)) {
            size_t o = strlen(line);
            snprintf(line + o, sizeof line - o, " in %s documents",
                     fmt_int(c, sizeof c, t->corpus_documents));
        }
        if (!isnan(t->heldout_overlap_dropped)) {
            size_t o = strlen(line);
            snprintf(line + o, sizeof line - o, "; %s overlapping the held-out text dropped",
                     fmt_int(c, sizeof c, t->heldout_overlap_dropped));
        }
        th_row(tb, "Training corpus", line);
    }
    if (!isnan(t->train_seconds))
        th_row(tb, "Train time", fmt_seconds(b, sizeof b, t->train_seconds));
    xmlNodePtr tr = h_el(tb, "tr", NULL);
    h_attr(h_el(tr, "th", "Source"), "scope", "row");
    xmlNodePtr td = h_el(tr, "td", NULL);
    h_user(h_el(td, "code", NULL), t->source_dir ? t->source_dir : "");
    if (t->files_sha256) {
        h_text(td, " (sha256 of train.json + curve.csv: ");
        h_user(h_elc(td, "code", "hash", NULL), t->files_sha256);
        h_text(td, ")");
    }

    char rel[256];
    snprintf(rel, sizeof rel, "%s-training", G->slug);
    char *alt = fmt_dup("Line chart of the training loss and the held-out loss of %s against the tokens seen during training; data in the table below.", G->name);
    xmlNodePtr cap = page_figure(p, sec, rel, lay->w, lay->h, alt ? alt : "",
                                 "Training curve: train and held-out loss (nats per token) "
                                 "against the training tokens seen. The y axis does not start "
                                 "at 0.");
    free(alt);
    curve_table(p, cap, t);
}

/* models/index.html: every trained model's held-out loss curve in one chart, and a summary */
static void training_overview(struct page *p, xmlNodePtr sec) {
    const struct site *s = p->site;
    const struct lb_data *d = s->d;
    const struct chart_layout lt = s->lay[d->n_groups * CHARTS_PER_GROUP + 2];
    int *order = malloc((size_t)(d->n_trainings + 1) * sizeof *order);
    if (!order) return;
    int n = training_order(d, order);
    h_el(sec, "h2", "Training curves");
    xmlNodePtr para = h_el(sec, "p", "Models trained by ");
    h_el(para, "code", "lowbit train");
    h_text(para, ", smallest first: held-out loss (nats per token, lower is better) as training "
                 "went on. Each model's page has its full curve and settings.");
    xmlNodePtr cap = page_figure(p, sec, "training-heldout", lt.w, lt.h,
                                 "Line chart of the held-out loss of every trained model against "
                                 "the tokens seen during training; data in the table below.",
                                 "Held-out loss during training, one line per trained model; "
                                 "the last point of each line scores every held-out document. "
                                 "The y axis does not start at 0.");
    xmlNodePtr det = h_el(cap, "details", NULL);
    h_el(det, "summary", "Data of this chart");
    static const char *const heads[] = {"Model", "Parameters", "Steps", "Tokens seen",
                                        "Final held-out loss", "Train time"};
    xmlNodePtr tb = table_head(det, "data", heads, (int)LB_ARRAY_LEN(heads));
    for (int k = 0; k < n; k++) {
        const struct lb_training *t = &d->trainings[order[k]];
        char b[64];
        xmlNodePtr tr = h_el(tb, "tr", NULL), td = h_el(tr, "td", NULL);
        if (t->group >= 0) {
            char href[256];
            snprintf(href, sizeof href, "models/%s.html", d->groups[t->group].slug);
            h_user(h_link(p, td, href, NULL), lb_training_name(t));
        } else {
            h_user(td, lb_training_name(t));
        }
        page_td(tr, fmt_params(b, sizeof b, t->params), true);
        page_td(tr, fmt_int(b, sizeof b, t->steps), true);
        page_td(tr, fmt_int(b, sizeof b, t->tokens_seen), true);
        page_td(tr, fmt_g(b, sizeof b, t->heldout_loss, 5), true);
        page_td(tr, fmt_seconds(b, sizeof b, t->train_seconds), true);
    }
    xmlNodePtr dl = h_elc(det, "p", NULL, "Every point: ");
    h_link(p, dl, "data/training_curves.csv", "training_curves.csv");
    h_text(dl, ", ");
    h_link(p, dl, "data/training_curves.json", "training_curves.json");
    h_text(dl, ".");
    free(order);
}

static int model_page(struct site *s, int g) {
    const struct lb_data *d = s->d;
    const struct lb_group *G = &d->groups[g];
    struct page p;
    char rel[256], b[64], *alt = NULL;
    const struct chart_layout *L = &s->lay[g * CHARTS_PER_GROUP];
    const struct chart_layout lb = L[0], lp = L[1], lh = L[2], lc = L[3], lt = L[4], ls = L[5],
                              lk = L[6];
    int ret = -1;
    char *ttl = fmt_dup("%s \xe2\x80\x94 lowbit", G->name);
    if (!ttl || page_new(&p, s, "model", 1, ttl)) goto out;
    xmlNodePtr head = page_slot(&p, "heading"), info = page_slot(&p, "info"),
               var = page_slot(&p, "variants"), charts = page_slot(&p, "charts"),
               failed = page_slot(&p, "failed"), train = page_slot(&p, "training");
    if (!head || !info || !var || !charts || !failed || !train) goto fail;
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
    if (!isnan(G->n_params_active) && G->n_params_active != G->n_params)
        dl_row(dl, "Active parameters", fmt_params(b, sizeof b, G->n_params_active));
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
    const struct lb_training *t = lb_group_training(d, g);
    if (t) training_section(&p, train, G, t, &lt);
    else page_drop_slot(&p, "training");

    variants_table(&p, var, g);
    deltas_table(&p, var, g);

    struct bars_data bd;
    bars_compute(d, g, &bd);
    snprintf(rel, sizeof rel, "%s-bars", G->slug);
    free(alt);
    if (!(alt = fmt_dup("Grouped bar chart of the best average accuracy of each method at each bit width for %s; data in the table below.", G->name))) goto fail;
    xmlNodePtr cap = page_figure(&p, charts, rel, lb.w, lb.h, alt,
                                 "Best average accuracy (mean of the ten tasks) reached by each "
                                 "method at each nominal bit width; the dashed line is the "
                                 "unquantized baseline. Bars start at 0.");
    bars_table(&p, cap, &bd);
    snprintf(rel, sizeof rel, "%s-bpw", G->slug);
    free(alt);
    if (!(alt = fmt_dup("Scatter plot of average accuracy against measured bits per weight for every run of %s, with the Pareto frontier; each point is a row of the variants table.", G->name))) goto fail;
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
    snprintf(rel, sizeof rel, "%s-class", G->slug);
    free(alt);
    if (!(alt = fmt_dup("Scatter plot of the mean KL divergence from the unquantized model "
                        "against measured bits per weight for every run of %s with a KLD, one "
                        "colour and marker per method class; each point is a row of the "
                        "variants table.", G->name)))
        goto fail;
    cap = page_figure(&p, charts, rel, lk.w, lk.h, alt,
                      "Mean KLD against measured bits per weight, one point per run with a KLD "
                      "(rows of the variants table, whose Class column names each one's class), "
                      "coloured by the PTQ benchmark's method class; the KLD axis starts at 0. ");
    h_link(&p, cap, "about.html#classes", "What the classes are");
    h_text(cap, ".");
    snprintf(rel, sizeof rel, "%s-speed", G->slug);
    free(alt);
    if (!(alt = fmt_dup("Scatter plot of quality (mean KLD, or average accuracy without KLD) "
                        "against prefill tokens per second for the runs of %s measured on one "
                        "host, each point labelled with its recipe; data in the table below.",
                        G->name)))
        goto fail;
    cap = page_figure(&p, charts, rel, ls.w, ls.h, alt,
                      "What each variant costs to run against what it loses: prefill speed at "
                      "context 512 (x, log scale) and the mean KL divergence from the "
                      "unquantized model (y; the average accuracy when no run has a KLD). Speeds "
                      "are only comparable on one machine: the chart keeps the runs of one host "
                      "(CPU model and threads as recorded).");
    speed_table(&p, cap, g);
    snprintf(rel, sizeof rel, "%s-heat", G->slug);
    free(alt);
    if (!(alt = fmt_dup("Heatmap of the per-task accuracy change from the baseline for each variant of %s; data in the table below.", G->name))) goto fail;
    cap = page_figure(&p, charts, rel, lh.w, lh.h, alt,
                      "Change in accuracy from the baseline for each task, percentage points "
                      "(vermillion: lower, blue: higher).");
    heat_table(&p, cap, g);
    snprintf(rel, sizeof rel, "%s-cost", G->slug);
    free(alt);
    if (!(alt = fmt_dup("Bar chart of quantization time and peak memory per method for %s; data in the table below.", G->name))) goto fail;
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
    free(ttl);
    free(alt);
    return ret;
}

int pages_models(struct site *s) {
    const struct lb_data *d = s->d;
    struct page p;
    if (page_new(&p, s, "models", 1, "Base models \xe2\x80\x94 lowbit")) return -1;
    xmlNodePtr list = page_slot(&p, "list"), train = page_slot(&p, "training");
    if (!list || !train) {
        page_release(&p);
        return -1;
    }
    if (d->n_trainings) training_overview(&p, train);
    else page_drop_slot(&p, "training");
    static const char *const heads[] = {"Base model", "Parameters (active / total)", "Runs", "Baseline average",
                                        "Best quantized average", "Best quantized recipe"};
    xmlNodePtr tb = table_head(list, "models", heads, (int)LB_ARRAY_LEN(heads));
    for (int g = 0; g < d->n_groups; g++) {
        const struct lb_group *G = &d->groups[g];
        char href[256], b[64];
        xmlNodePtr tr = h_el(tb, "tr", NULL);
        snprintf(href, sizeof href, "models/%s.html", G->slug);
        h_user(h_link(&p, h_el(tr, "td", NULL), href, NULL), G->name);
        page_td(tr, fmt_params_active(b, sizeof b, G->n_params_active, G->n_params), true);
        snprintf(b, sizeof b, "%d", G->n_runs);
        page_td(tr, b, true);
        page_td(tr, G->baseline >= 0 ? fmt_pct(b, sizeof b, d->runs[G->baseline].average) : "", true);
        int best = -1;
        for (int k = 0; k < G->n_runs; k++) {
            const struct lb_run *r = &d->runs[G->runs[k]];
            if (!r->ok || isnan(r->average) || !strcmp(lb_run_algorithm(r), "fp")) continue;
            if (best < 0 || r->rank < d->runs[best].rank) best = G->runs[k];
        }
        /* the best: the top quantized run, with every quantized run not significantly below it
         * (a tie is named as one), marked when it is not significantly different from the
         * baseline (about.html#statistics) */
        xmlNodePtr bt = page_td(tr, best >= 0 ? fmt_pct(b, sizeof b, d->runs[best].average) : "",
                                true);
        if (best >= 0 && d->runs[best].d_avg.state == LB_D_OK &&
            !lb_significant(&d->runs[best].d_avg)) {
            h_text(bt, " \xe2\x89\x88 baseline");
            h_attr(bt, "title", "not significantly different from the baseline");
        }
        xmlNodePtr td = h_el(tr, "td", NULL);
        int n_tied = 0;
        for (int k = 0; best >= 0 && k < G->n_runs; k++) {
            const struct lb_run *r = &d->runs[G->runs[k]];
            if (!r->ok || isnan(r->average) || !strcmp(lb_run_algorithm(r), "fp")) continue;
            if (G->runs[k] != best && lb_better_than(d, &d->runs[best], r) != 0) continue;
            if (n_tied++) h_text(td, ", ");
            run_link(&p, td, r, r->recipe_id);
        }
        if (n_tied > 1)
            h_textf(td, " (%d recipes not significantly different: no single best)", n_tied);
        h_text(tb, "\n");
    }
    if (page_write(&p, "models/index.html")) return -1;
    for (int g = 0; g < d->n_groups; g++)
        if (model_page(s, g)) return -1;
    return 0;
}
