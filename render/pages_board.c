/* render/pages_board.c: index.html, the leaderboard, and the helpers every page shares.
 *
 * Without JavaScript the page is complete: the whole board, ranked by average (NULL last, then
 * run id), every model linking to its base model's page and every row to its run page. With
 * templates/lowbit.js the hidden controls appear: filters, sorting by any column, re-ranking by task
 * weights, all kept in the URL hash. The script reads the rows' numbers from the JSON in
 * <script id="board-data"> (15 significant digits, same as data/leaderboard.json) and moves the
 * existing <tr> elements, so it never builds markup from strings. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "render/render_impl.h"

/* ------------------------------------------------------------------ shared helpers */

void page_downloads(struct page *p, xmlNodePtr parent) {
    const struct site *s = p->site;
    char b[32];
    xmlNodePtr para = h_elc(parent, "p", "downloads", "Download the data: ");
    h_link(p, para, "data/leaderboard.csv", "leaderboard.csv");
    h_textf(para, " (%s, one row per run) \xc2\xb7 ", fmt_bytes(b, sizeof b, s->bytes_csv));
    h_link(p, para, "data/leaderboard.json", "leaderboard.json");
    h_textf(para, " (%s, rows + per-task details) \xc2\xb7 ", fmt_bytes(b, sizeof b, s->bytes_json));
    h_link(p, para, "data/lowbit.db", "lowbit.db");
    h_textf(para, " (%s, the SQLite database) \xc2\xb7 ", fmt_bytes(b, sizeof b, s->bytes_db));
    h_link(p, para, "data/training_curves.csv", "training_curves.csv");
    h_textf(para, " (%s, one row per training-curve point of the models lowbit trained) \xc2\xb7 ",
            fmt_bytes(b, sizeof b, s->bytes_train_csv));
    h_link(p, para, "data/training_curves.json", "training_curves.json");
    h_textf(para, " (%s, the same rows + each model's train.json). Columns: ",
            fmt_bytes(b, sizeof b, s->bytes_train_json));
    h_link(p, para, "about.html#datasets", "documented on the methodology page");
    h_text(para, ".");
}

xmlNodePtr page_figure(struct page *p, xmlNodePtr parent, const char *chart, double w, double h,
                       const char *alt, const char *caption) {
    char href[512], buf[600], ws[16], hs[16];
    xmlNodePtr fig = h_elc(parent, "figure", "chart", NULL);
    xmlNodePtr pic = h_el(fig, "picture", NULL);
    xmlNodePtr src = h_el(pic, "source", NULL);
    snprintf(href, sizeof href, "charts/%s.svg", chart);
    h_attr(src, "srcset", h_href(p, buf, sizeof buf, href));
    h_attr(src, "type", "image/svg+xml");
    xmlNodePtr img = h_el(pic, "img", NULL);
    snprintf(href, sizeof href, "charts/%s.png", chart);
    h_attr(img, "src", h_href(p, buf, sizeof buf, href));
    snprintf(ws, sizeof ws, "%.0f", w);
    snprintf(hs, sizeof hs, "%.0f", h);
    h_attr(img, "width", ws);
    h_attr(img, "height", hs);
    h_attr(img, "alt", alt);
    xmlNodePtr cap = h_el(fig, "figcaption", NULL);
    h_text(cap, caption);
    h_text(cap, " ");
    snprintf(href, sizeof href, "charts/%s.svg", chart);
    h_link(p, cap, href, "SVG");
    h_text(cap, " \xc2\xb7 ");
    snprintf(href, sizeof href, "charts/%s.png", chart);
    h_link(p, cap, href, "PNG (2\xc3\x97)");
    return cap;
}

void page_frontier(struct page *p, xmlNodePtr cap, const int *runs, const double *x,
                   const double *y, int n, bool maximize, const char *what) {
    const struct lb_data *d = p->site->d;
    int *fr = malloc((size_t)(n + 1) * sizeof *fr);
    if (!fr) return;
    int nf = lb_pareto(d, runs, x, y, n, maximize, fr);
    xmlNodePtr det = h_el(cap, "details", NULL);
    h_el(det, "summary", "The Pareto frontier, in words");
    if (!nf) {
        h_el(det, "p", "No run has both measurements yet.");
        free(fr);
        return;
    }
    h_textf(h_el(det, "p", NULL), "From the smallest to the largest, each run below is %s than "
                                  "every smaller run%s:", what, maximize ? " (significantly, on "
                                  "the same documents: about.html#statistics)" : "");
    xmlNodePtr ol = h_el(det, "ol", NULL);
    for (int k = 0; k < nf; k++) {
        const struct lb_run *r = &d->runs[runs[fr[k]]];
        char b1[32], b2[32];
        xmlNodePtr li = h_el(ol, "li", NULL);
        page_run_link(p, li, r);
        h_textf(li, ": %s, %.3g bits/weight, average %s%%, wikitext PPL %s",
                fmt_bytes(b1, sizeof b1, r->artifact_bytes), r->bits_per_weight,
                fmt_pct(b2, sizeof b2, r->average), isnan(r->ppl) ? "n/a" : "");
        if (!isnan(r->ppl)) h_textf(li, "%.4g", r->ppl);
    }
    free(fr);
}

xmlNodePtr page_run_link(struct page *p, xmlNodePtr parent, const struct lb_run *r) {
    char href[64];
    snprintf(href, sizeof href, "runs/%lld.html", (long long)r->id);
    xmlNodePtr a = h_link(p, parent, href, NULL);
    h_user(a, lb_run_model_name(r));
    h_text(a, " \xc2\xb7 ");
    h_user(a, r->recipe_id);
    return a;
}

void page_type_icon(xmlNodePtr parent, const char *t) {
    static const struct {
        const char *type, *cls, *sym;
    } icons[] = {
        {"pretrained", "ti-pt", "\xe2\x97\x8f"},          /* ● */
        {"continuously pretrained", "ti-cpt", "\xe2\x97\x90"}, /* ◐ */
        {"fine-tuned", "ti-ft", "\xe2\x97\x86"},          /* ◆ */
        {"chat", "ti-chat", "\xe2\x96\xb2"},              /* ▲ */
        {"merge", "ti-merge", "\xe2\x9c\x9a"},            /* ✚ */
    };
    const char *cls = "ti-unknown", *sym = "?", *label = t && *t ? t : "type not given";
    for (size_t i = 0; t && i < LB_ARRAY_LEN(icons); i++)
        if (!strcmp(t, icons[i].type)) cls = icons[i].cls, sym = icons[i].sym;
    char c[48];
    snprintf(c, sizeof c, "ti %s", cls);
    xmlNodePtr sp = h_elc(parent, "span", c, sym);
    h_attr(sp, "title", label);
    h_attr(sp, "aria-hidden", "true");
    h_elc(parent, "span", "sr", label);
}

/* "%+.*f" of v, with more decimals (up to 6) while that would show a non-zero bound as 0: a
 * significant interval never reads [+0.00, ...] */
static void fmt_bound(char *b, size_t n, double v, int digits) {
    snprintf(b, n, "%+.*f", digits, v);
    while (digits < 6 && v != 0 && strtod(b, NULL) == 0) snprintf(b, n, "%+.*f", ++digits, v);
}

xmlNodePtr page_delta_td(xmlNodePtr tr, const struct lb_delta *x, double scale, int digits,
                         bool is_baseline) {
    char b[96];
    if (is_baseline) {
        xmlNodePtr td = page_td(tr, "baseline", false);
        h_attr(td, "class", "num base");
        return td;
    }
    if (x->state != LB_D_OK) {
        xmlNodePtr td = page_td(tr, x->state == LB_D_APART ? "n/a" : "", true);
        if (x->state == LB_D_APART)
            h_attr(td, "title", "scored on other documents than the baseline: not compared");
        return td;
    }
    const bool sig = lb_significant(x);
    snprintf(b, sizeof b, "%s%+.*f", sig ? "" : "\xe2\x89\x88", digits, x->delta * scale);
    xmlNodePtr td = page_td(tr, b, true);
    char hi[48];
    fmt_bound(b, sizeof b, x->lo * scale, digits);
    fmt_bound(hi, sizeof hi, x->hi * scale, digits);
    h_textf(h_elc(td, "span", "ci", NULL), " [%s, %s]", b, hi);
    h_attr(td, "class", sig ? "num sig" : "num ns");
    h_attr(td, "title", sig ? "significantly different from the baseline (95% interval excludes 0)"
                            : "not significantly different from the baseline (95% interval "
                              "includes 0)");
    return td;
}

xmlNodePtr page_td(xmlNodePtr tr, const char *text, bool num) {
    xmlNodePtr td = h_el(tr, "td", text && *text ? text : NULL);
    if (num) h_attr(td, "class", "num");
    return td;
}

void page_taskdef_cells(xmlNodePtr tr, const struct lb_taskdef *t) {
    h_user(h_el(tr, "td", NULL), t->task);
    h_user(h_el(h_el(tr, "td", NULL), "code", NULL), t->dataset_file ? t->dataset_file : "");
    h_user(h_elc(h_el(tr, "td", NULL), "code", "hash", NULL),
           t->dataset_sha256 ? t->dataset_sha256 : "");
}

/* ------------------------------------------------------------------ index.html */

/* the board's columns: key (JS sort key, data-key), header, tooltip, numeric; the board tasks'
 * columns (from the database) follow the first BOARD_COLS_HEAD */
#define BOARD_COLS_HEAD 6
static const struct {
    const char *key, *head, *title;
    bool num;
} board_cols[] = {
    {"rank", "#", "rank by the current score (average by default)", true},
    {"type", "T", "model type: \xe2\x97\x8f pretrained, \xe2\x97\x86 fine-tuned, \xe2\x96\xb2 chat, \xe2\x9c\x9a merge", false},
    {"model", "Model", "model, recipe, and a link to the run's details and provenance", false},
    {"avg", "Average", "mean of the ten task accuracies (%), Intel's Average", true},
    {"davg", "\xce\x94 vs baseline", "average minus the model's fp baseline on the same documents, "
     "percentage points, with its 95% simultaneous paired-bootstrap interval; \xe2\x89\x88 = not "
     "significantly different", true},
    {"band", "Band", "tie band: runs not significantly different from the run above share a band",
     true},
    {"algorithm", "Algorithm", "quantization algorithm (fp = unquantized baseline)", false},
    {"class", "Class", "method class, the PTQ benchmark's taxonomy (about.html#classes): "
     "baseline, rounding, compensation, salience, optimization, rotation, codebook or data type; "
     "a recipe combining two is classed by its distinctive part (QuaRot rounding with GPTQ: "
     "rotation; SmoothQuant rounding with RTN: salience)", false},
    {"wdtype", "Weight dtype", "type of the stored weights", false},
    {"cdtype", "Compute dtype", "type the activations are computed in", false},
    {"group", "Group size", "weights per quantization scale; -1 = per channel", true},
    {"dq", "Double quant", "scales quantized again (bitsandbytes)", false},
    {"params", "#Params", "parameters of the model; a mixture of experts shows active / total: "
     "the parameters a token goes through (shared weights and the experts used per token) and "
     "all of them", true},
    {"size", "Model size", "size of the model file on disk (1 GB = 10^9 bytes)", true},
    {"ppl", "Wikitext PPL", "wikitext word perplexity, lm-eval rolling protocol; lower is better", true},
    {"kld", "KLD", "mean KL divergence from the unquantized model's next-token distribution (nats); lower is better", true},
    {"bpw", "Bits/weight", "8 x weight bytes / parameters, measured on the file", true},
    {"qsec", "Quant time", "quantization wall time", true},
    {"prefill", "Prefill tok/s", "prefill tokens/s of a 512-token context on the run's host and "
     "threads (compare within one host only; the run page names the CPU)", true},
    {"decode", "Decode tok/s", "decode tokens/s after a 256-token prompt, same host and threads",
     true},
    {"mem", "Memory", "memory to run at context 512: weights + KV cache + forward scratch", true},
};

static void facet(struct page *p, const char *slot, const char *name, const char **vals, int n) {
    xmlNodePtr sp = page_slot(p, slot);
    if (!sp) return;
    for (int i = 0; i < n; i++) {
        xmlNodePtr lab = h_el(sp, "label", NULL);
        xmlNodePtr in = h_el(lab, "input", NULL);
        h_attr(in, "type", "checkbox");
        h_attr(in, "name", name);
        h_attr(in, "value", vals[i]);
        h_text(lab, " ");
        h_user(lab, *vals[i] ? vals[i] : "(none)");
    }
}

static int cmp_num_str(const void *a, const void *b) {
    double x = atof(*(const char *const *)a), y = atof(*(const char *const *)b);
    return (x > y) - (x < y);
}

/* the distinct values of one recipe field over the board (which: 0 algorithm, 1 weight dtype,
 * 2 compute dtype, 3 group size, 4 method class), sorted; returns owned array */
static const char **distinct(const struct lb_data *d, int which, int *n, char (*nums)[16]) {
    const char **v = calloc((size_t)d->n_board + 1, sizeof *v);
    if (!v) return NULL;
    int k = 0;
    for (int i = 0; i < d->n_board; i++) {
        const struct lb_recipe *c = d->runs[d->board[i]].recipe;
        const char *s = "";
        if (c && which == 0) s = c->algorithm ? c->algorithm : "";
        if (c && which == 4) s = c->method_class;
        if (c && which == 1) s = c->weight_dtype ? c->weight_dtype : "";
        if (c && which == 2) s = c->compute_dtype ? c->compute_dtype : "";
        if (which == 3) {
            if (!c || isnan(c->group_size)) continue;
            snprintf(nums[i], 16, "%.0f", c->group_size);
            s = nums[i];
        }
        v[k++] = s;
    }
    qsort(v, (size_t)k, sizeof *v, which == 3 ? cmp_num_str : cmp_str);
    int m = 0;
    for (int i = 0; i < k; i++)
        if (!m || strcmp(v[m - 1], v[i])) v[m++] = v[i];
    *n = m;
    return v;
}

/* the "rank by" choices (lowbit.js shows each one's precomputed statistics) */
static void rank_by_options(xmlNodePtr sel, const struct lb_data *d) {
    for (int by = 0; by < lb_by_count(d); by++) {
        xmlNodePtr o = h_el(sel, "option", NULL);
        h_attr(o, "value", lb_by_key(d, by));
        if (by == LB_BY_AVG) h_attr(o, "selected", "selected");
        h_text(o, by == LB_BY_AVG   ? "Average (or the task weights below)"
                  : by == LB_BY_KLD ? "KLD (lower is better)"
                  : by == LB_BY_PPL ? "PPL, llama.cpp ctx 512 (lower is better)"
                                    : lb_by_label(d, by));
    }
}

static void board_row(struct page *p, xmlNodePtr tbody, const struct lb_run *r) {
    const struct lb_data *d = p->site->d;
    const struct lb_recipe *c = r->recipe;
    char b[64], href[256];
    xmlNodePtr tr = h_el(tbody, "tr", NULL);
    snprintf(b, sizeof b, "run-%lld", (long long)r->id);
    h_attr(tr, "id", b);
    snprintf(b, sizeof b, "%d", r->rank);
    page_td(tr, b, true);
    page_type_icon(h_el(tr, "td", NULL), r->model ? r->model->model_type : NULL);
    xmlNodePtr td = h_elc(tr, "td", "model", NULL);
    snprintf(href, sizeof href, "models/%s.html", d->groups[r->group].slug);
    h_user(h_link(p, td, href, NULL), lb_run_model_name(r));
    h_text(td, " ");
    h_user(h_elc(td, "span", "recipe", NULL), r->recipe_id);
    h_text(td, " ");
    snprintf(href, sizeof href, "runs/%lld.html", (long long)r->id);
    xmlNodePtr a = h_link(p, td, href, "details");
    h_attr(a, "class", "det");
    page_td(tr, fmt_pct(b, sizeof b, r->average), true);
    page_delta_td(tr, &r->d_avg, 100, 2, r->baseline == r);
    snprintf(b, sizeof b, "%d", r->band);
    page_td(tr, b, true);
    h_attr(tr, "class", r->band % 2 ? "band-odd" : "band-even");
    for (int t = 0; t < d->n_tasks; t++) page_td(tr, fmt_pct(b, sizeof b, r->acc[t]), true);
    h_user(page_td(tr, NULL, false), c ? c->algorithm : "");
    h_text(page_td(tr, NULL, false), lb_run_method_class(r));
    h_user(page_td(tr, NULL, false), c ? c->weight_dtype : "");
    h_user(page_td(tr, NULL, false), c ? c->compute_dtype : "");
    page_td(tr, fmt_group(b, sizeof b, c ? c->group_size : NAN), true);
    page_td(tr, fmt_bool(c ? c->double_quant : NAN), false);
    page_td(tr, fmt_params_active(b, sizeof b, lb_run_params_active(r), lb_run_params(r)), true);
    page_td(tr, fmt_bytes(b, sizeof b, r->artifact_bytes), true);
    page_td(tr, fmt_g(b, sizeof b, r->ppl, 4), true);
    xmlNodePtr kt = page_td(tr, fmt_g(b, sizeof b, r->kld, 3), true);
    if (r->d_kld.state == LB_D_OK) {
        char lo[32], hi[32];
        snprintf(b, sizeof b, "95%% simultaneous interval over chunks: %s to %s",
                 fmt_g(lo, sizeof lo, r->d_kld.lo, 3), fmt_g(hi, sizeof hi, r->d_kld.hi, 3));
        h_attr(kt, "title", b);
    }
    page_td(tr, fmt_g(b, sizeof b, r->bits_per_weight, 3), true);
    page_td(tr, fmt_seconds(b, sizeof b, r->quant_seconds), true);
    page_td(tr, fmt_g(b, sizeof b, r->prefill_tps, 4), true);
    page_td(tr, fmt_g(b, sizeof b, r->decode_tps, 4), true);
    page_td(tr, fmt_bytes(b, sizeof b, r->run_memory_mb * 1024 * 1024), true);
    h_text(tbody, "\n");
}

/* an id of lowbit's pipeline: [A-Za-z0-9._+-], 1..127 bytes */
static bool pending_id_ok(const char *id) {
    size_t n = id ? strlen(id) : 0;
    if (!n || n > 127) return false;
    for (size_t i = 0; i < n; i++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+-", id[i]))
            return false;
    return true;
}

/* a JSON object's string member, "" when it is not one */
static const char *jtext(json_t *o, const char *key) {
    const char *v = json_string_value(json_object_get(o, key));
    return v ? v : "";
}

/* the runs lowbit run has not done yet (its pending.json, render_opts.pending_path), one row per
 * model: pending, not missing. The slot is dropped when nothing is pending. */
static int board_pending(struct page *p, const char *path) {
    if (!path) return page_drop_slot(p, "pending"), 0;
    json_error_t je;
    json_t *o = json_load_file(path, 0, &je);
    json_t *jobs = json_object_get(o, "jobs"), *trains = json_object_get(o, "training");
    if (!o || !json_is_array(jobs) || !json_is_array(trains) ||
        strcmp(jtext(o, "format"), "lowbit-pending")) {
        err("render: %s: %s", path, o ? "not a lowbit pending list (lowbit run's pending.json)" : je.text);
        json_decref(o);
        return -1;
    }
    const size_t n = json_array_size(jobs);
    if (!n && !json_array_size(trains)) {
        json_decref(o);
        page_drop_slot(p, "pending");
        return 0;
    }
    xmlNodePtr sec = page_slot(p, "pending");
    if (!sec) {
        json_decref(o);
        return -1;
    }
    char b[64];
    double total = json_number_value(json_object_get(o, "estimated_seconds"));
    h_el(sec, "h2", "Pending");
    h_textf(h_el(sec, "p", NULL), "%zu runs are pending: planned, not evaluated yet (about %s of "
            "work). They are not on the board until the next make report runs them.", n,
            fmt_seconds(b, sizeof b, total));
    xmlNodePtr table = h_elc(sec, "table", "pending", NULL);
    xmlNodePtr tr = h_el(h_el(table, "thead", NULL), "tr", NULL);
    static const char *const heads[] = {"Model", "Pending recipes", "Estimated"};
    for (int i = 0; i < 3; i++) h_attr(h_el(tr, "th", heads[i]), "scope", "col");
    xmlNodePtr body = h_el(table, "tbody", NULL);
    /* models in the file's order (the run's), each with its recipes */
    bool *used = calloc(n + 1, 1);
    if (!used) {
        json_decref(o);
        return err("out of memory");
    }
    int ret = 0;
    for (size_t i = 0; i < n && !ret; i++) {
        if (used[i]) continue;
        const char *model = json_string_value(json_object_get(json_array_get(jobs, i), "model_id"));
        if (!pending_id_ok(model)) {
            ret = err("render: %s: job %zu: model_id is not a lowbit id", path, i + 1);
            break;
        }
        tr = h_el(body, "tr", NULL);
        h_user(h_el(tr, "td", NULL), model);
        xmlNodePtr td = h_el(tr, "td", NULL);
        double secs = 0;
        int count = 0;
        bool waits = false;
        for (size_t k = i; k < n; k++) {
            json_t *j = json_array_get(jobs, k);
            if (used[k] || strcmp(jtext(j, "model_id"), model)) continue;
            const char *recipe = json_string_value(json_object_get(j, "recipe_id"));
            if (!pending_id_ok(recipe)) {
                ret = err("render: %s: job %zu: recipe_id is not a lowbit id", path, k + 1);
                break;
            }
            used[k] = true;
            if (count++) h_text(td, ", ");
            h_user(td, recipe);
            secs += json_number_value(json_object_get(j, "estimated_seconds"));
            waits |= json_is_null(json_object_get(j, "job_key"));
        }
        if (waits) h_text(td, " (after the model is trained)");
        page_td(tr, fmt_seconds(b, sizeof b, secs), true);
    }
    free(used);
    json_decref(o);
    return ret;
}

int page_index(struct site *s) {
    const struct lb_data *d = s->d;
    struct page p;
    char b[256];
    if (page_new(&p, s, "index", 0, "lowbit: low-bit quantized LLM leaderboard")) return -1;
    xmlNodePtr sum = page_slot(&p, "summary"), head = page_slot(&p, "thead"),
               body = page_slot(&p, "tbody"), data = page_slot(&p, "data"),
               cap = page_slot(&p, "caption"), dl = page_slot(&p, "downloads"),
               wts = page_slot(&p, "weights"), by = page_slot(&p, "by");
    if (!sum || !head || !body || !data || !cap || !dl || !wts || !by) goto fail;
    h_textf(sum, "%d quantized and baseline runs of %d base models, ranked by the average of the "
                 "ten tasks of Intel's low-bit leaderboard (0-shot accuracy). ",
            d->n_board, d->n_groups);
    if (*d->as_of) {
        h_text(sum, "Latest run finished ");
        h_user(sum, d->as_of);
        h_text(sum, ". ");
    }
    h_link(&p, sum, "about.html", "How every number is produced");
    h_text(sum, ".");
    h_textf(cap, "The board: %d runs, ranked by average accuracy", d->n_board);

    xmlNodePtr tr = h_el(head, "tr", NULL);
    for (size_t i = 0; i < LB_ARRAY_LEN(board_cols); i++) {
        if (i == BOARD_COLS_HEAD)
            for (int t = 0; t < d->n_tasks; t++) {
                xmlNodePtr th = h_el(tr, "th", d->tasks[t].label);
                h_attr(th, "scope", "col");
                h_attr(th, "data-key", d->tasks[t].key);
                snprintf(b, sizeof b, "%s accuracy (%%), 0-shot, %s", d->tasks[t].label,
                         d->tasks[t].metric);
                h_attr(th, "title", b);
                h_attr(th, "class", "num");
            }
        xmlNodePtr th = h_el(tr, "th", board_cols[i].head);
        h_attr(th, "scope", "col");
        h_attr(th, "data-key", board_cols[i].key);
        h_attr(th, "title", board_cols[i].title);
        if (board_cols[i].num) h_attr(th, "class", "num");
    }
    for (int k = 0; k < d->n_board; k++) board_row(&p, body, &d->runs[d->board[k]]);
    if (!d->n_board) {
        xmlNodePtr td = h_el(h_el(body, "tr", NULL), "td", "No successful run in the database yet.");
        snprintf(b, sizeof b, "%d", (int)LB_ARRAY_LEN(board_cols) + d->n_tasks);
        h_attr(td, "colspan", b);
    }

    /* facets from the values present */
    char(*nums)[16] = calloc((size_t)d->n_board + 1, sizeof *nums);
    static const char *const slots[] = {"f-algorithm", "f-wdtype", "f-cdtype", "f-group",
                                        "f-class"};
    static const char *const names[] = {"algorithm", "wdtype", "cdtype", "group", "class"};
    for (int w = 0; w < 5 && nums; w++) {
        int n = 0;
        const char **v = distinct(d, w, &n, nums);
        if (v) facet(&p, slots[w], names[w], v, n);
        free(v);
    }
    free(nums);
    rank_by_options(by, d);
    for (int t = 0; t < d->n_tasks; t++) {
        xmlNodePtr lab = h_el(wts, "label", NULL);
        xmlNodePtr in = h_el(lab, "input", NULL);
        h_attr(in, "type", "number");
        h_attr(in, "min", "0");
        h_attr(in, "max", "10");
        h_attr(in, "step", "any");
        h_attr(in, "value", "1");
        h_attr(in, "data-task", d->tasks[t].key);
        snprintf(b, sizeof b, "w-%s", d->tasks[t].key);
        h_attr(in, "id", b);
        h_text(lab, " ");
        h_text(lab, d->tasks[t].label);
    }
    page_downloads(&p, dl);
    if (board_pending(&p, s->opts->pending_path)) goto fail;
    char *json = board_data_json(s);
    if (!json) goto fail;
    h_text(data, json);
    free(json);
    return page_write(&p, "index.html");
fail:
    page_release(&p);
    return -1;
}
