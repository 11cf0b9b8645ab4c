/* render/charts.c: the site's charts, drawn on the canvas of chart.c.
 *
 * Per base model (charts/<slug>-bars|bpw|heat|cost.svg|png):
 *   bars  best average accuracy reached by each method at each nominal bit width (grouped bars
 *         from 0), the baseline's average as a dashed reference line;
 *   bpw   average accuracy vs measured bits per weight, every ok run, Pareto frontier drawn;
 *   heat  per-task accuracy change from the baseline, percentage points, one row per variant;
 *   cost  quantization time and peak memory per method (median, whiskers min..max).
 *   speed mean KLD (average accuracy when no run has a KLD) vs prefill tokens/s, the runs of
 *         one host only (speed_runs), every point labelled with its recipe.
 *   training  (a model trained by lowbit train) train and held-out loss vs tokens seen.
 * Across all models (charts/size-accuracy, charts/size-ppl): accuracy and llama.cpp perplexity vs
 * size on disk (log axis), Pareto frontier drawn; charts/training-heldout (when the database has
 * trained models): the held-out loss curve of each, smallest model first.
 *
 * Layout, top to bottom: title, legend rows, the y axis's title (horizontal, no rotated text),
 * the plot, tick labels, the x axis's title. Labels that would collide are skipped, never drawn
 * over each other; the page's data table beside every chart has all the numbers. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "render/render_impl.h"

#define FS_TITLE 15.0
#define FS_LABEL 11.5
#define FS_TICK 10.5
#define FS_SMALL 9.5

/* ------------------------------------------------------------------ helpers */

const char *chart_fit(struct chart *c, double size, bool bold, const char *text, double maxw,
                      char *buf, size_t n) {
    if (chart_text_width(c, size, bold, text) <= maxw) return text;
    size_t len = strlen(text);
    if (len + 4 > n) len = n - 4;
    while (len > 0) {
        while (len > 0 && ((unsigned char)text[len] & 0xc0) == 0x80) len--; /* char start */
        memcpy(buf, text, len);
        memcpy(buf + len, "\xe2\x80\xa6", 4);                               /* … */
        if (chart_text_width(c, size, bold, buf) <= maxw) return buf;
        len--;
    }
    snprintf(buf, n, "\xe2\x80\xa6");
    return buf;
}

struct axis {
    double lo, hi; /* data range */
    bool log;
    double p0, p1; /* pixels for lo, hi */
};

static double ax_map(const struct axis *a, double v) {
    double f0 = a->log ? log10(a->lo) : a->lo, f1 = a->log ? log10(a->hi) : a->hi;
    double f = a->log ? log10(v) : v;
    if (f1 == f0) return (a->p0 + a->p1) / 2;
    return a->p0 + (f - f0) / (f1 - f0) * (a->p1 - a->p0);
}

struct legend_item {
    const char *label;
    int colour; /* Okabe-Ito index */
    int shape;  /* marker; -1 swatch; -2 dashed line */
};

/* legend rows from x0 to x1 starting at y; returns the y below them */
static double legend(struct chart *c, const struct legend_item *it, int n, double x0, double x1,
                     double y) {
    double x = x0, row_h = 16;
    for (int i = 0; i < n; i++) {
        char buf[128];
        const char *t = chart_fit(c, FS_LABEL, false, it[i].label, 220, buf, sizeof buf);
        double w = 18 + chart_text_width(c, FS_LABEL, false, t) + 16;
        if (x > x0 && x + w > x1) {
            x = x0;
            y += row_h;
        }
        double rgb[3];
        chart_okabe_ito(it[i].colour, rgb);
        double cy = y + row_h / 2;
        if (it[i].shape >= 0) {
            chart_marker(c->cr, it[i].shape, x + 6, cy, 4.5, rgb);
        } else if (it[i].shape == -1) {
            cairo_rectangle(c->cr, x, cy - 5, 12, 10);
            chart_set_rgb(c->cr, rgb);
            cairo_fill(c->cr);
        } else {
            static const double dash[] = {5, 3};
            cairo_set_dash(c->cr, dash, 2, 0);
            cairo_move_to(c->cr, x, cy), cairo_line_to(c->cr, x + 14, cy);
            chart_set_rgb(c->cr, rgb);
            cairo_set_line_width(c->cr, 1.5);
            cairo_stroke(c->cr);
            cairo_set_dash(c->cr, NULL, 0, 0);
        }
        cairo_set_source_rgb(c->cr, 0.1, 0.1, 0.1);
        chart_text(c, x + 18, cy, 0, 0.5, FS_LABEL, false, t);
        x += w;
    }
    return n ? y + row_h + 4 : y;
}


static void message(struct chart *c, const char *text) {
    cairo_set_source_rgb(c->cr, 0.3, 0.3, 0.3);
    chart_text(c, c->w / 2, c->h / 2, 0.5, 0.5, FS_LABEL, false, text);
}

static void title(struct chart *c, const char *t) {
    char buf[256];
    cairo_set_source_rgb(c->cr, 0, 0, 0);
    chart_text(c, 12, 8, 0, 0, FS_TITLE, true,
               chart_fit(c, FS_TITLE, true, t, c->w - 24, buf, sizeof buf));
}

typedef const char *(*tick_fmt)(char *buf, size_t n, double v);

static const char *fmt_tick_plain(char *buf, size_t n, double v) {
    snprintf(buf, n, "%g", fabs(v) < 1e-12 ? 0.0 : v);
    return buf;
}
static const char *fmt_tick_bytes(char *buf, size_t n, double v) {
    return fmt_bytes(buf, n, v);
}

/* ticks of an axis: linear ("nice" steps) or log (1-2-5 per decade, or decades when crowded) */
static int axis_ticks(const struct axis *a, double *t, int max, int max_ticks) {
    int n = 0;
    if (!a->log) {
        double t0, st;
        int k = chart_ticks(a->lo, a->hi, max_ticks, &t0, &st);
        for (int i = 0; i < k && n < max; i++) t[n++] = t0 + i * st;
        return n;
    }
    static const double m19[] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, m125[] = {1, 2, 5}, m1[] = {1};
    double decades = log10(a->hi) - log10(a->lo);
    const double *m = decades * 9 <= max_ticks ? m19 : decades * 3 <= max_ticks ? m125 : m1;
    int nm = decades * 9 <= max_ticks ? 9 : decades * 3 <= max_ticks ? 3 : 1;
    int step = 1;
    while (decades / step > max_ticks) step++;
    for (int e = (int)floor(log10(a->lo)); e <= (int)ceil(log10(a->hi)); e++) {
        if (e % step) continue;
        for (int j = 0; j < nm && n < max; j++) {
            double v = m[j] * pow(10, e);
            if (v >= a->lo * (1 - 1e-9) && v <= a->hi * (1 + 1e-9)) t[n++] = v;
        }
    }
    if (n < 3) { /* a narrow range: plain "nice" steps read better than 1-2-5 */
        double t0, st;
        int k = chart_ticks(a->lo, a->hi, max_ticks < 6 ? max_ticks : 6, &t0, &st);
        n = 0;
        for (int i = 0; i < k && n < max; i++)
            if (t0 + i * st > 0) t[n++] = t0 + i * st;
    }
    return n;
}

/* y axis (grid lines and labels at the left of the plot) */
static void draw_y(struct chart *c, const struct axis *a, tick_fmt f, int max_ticks) {
    double t[64];
    int n = axis_ticks(a, t, 64, max_ticks);
    for (int i = 0; i < n; i++) {
        double y = ax_map(a, t[i]);
        cairo_set_source_rgb(c->cr, 0.88, 0.88, 0.88);
        cairo_set_line_width(c->cr, 1);
        cairo_move_to(c->cr, c->plot.x0, floor(y) + 0.5);
        cairo_line_to(c->cr, c->plot.x1, floor(y) + 0.5);
        cairo_stroke(c->cr);
        char buf[32];
        f(buf, sizeof buf, t[i]);
        struct chart_box b = chart_text_box(c, c->plot.x0 - 6, y, 1, 0.5, FS_TICK, false, buf);
        if (chart_box_collides(c, b, 1)) continue;
        cairo_set_source_rgb(c->cr, 0.2, 0.2, 0.2);
        chart_text(c, c->plot.x0 - 6, y, 1, 0.5, FS_TICK, false, buf);
    }
}

/* x axis tick labels under the plot */
static void draw_x(struct chart *c, const struct axis *a, tick_fmt f, int max_ticks, bool grid) {
    double t[64];
    int n = axis_ticks(a, t, 64, max_ticks);
    for (int i = 0; i < n; i++) {
        double x = ax_map(a, t[i]);
        if (grid) {
            cairo_set_source_rgb(c->cr, 0.88, 0.88, 0.88);
            cairo_set_line_width(c->cr, 1);
            cairo_move_to(c->cr, floor(x) + 0.5, c->plot.y0);
            cairo_line_to(c->cr, floor(x) + 0.5, c->plot.y1);
            cairo_stroke(c->cr);
        }
        char buf[32];
        f(buf, sizeof buf, t[i]);
        struct chart_box b = chart_text_box(c, x, c->plot.y1 + 5, 0.5, 0, FS_TICK, false, buf);
        if (chart_box_collides(c, b, 3)) continue;
        cairo_set_source_rgb(c->cr, 0.2, 0.2, 0.2);
        chart_text(c, x, c->plot.y1 + 5, 0.5, 0, FS_TICK, false, buf);
    }
}

static void plot_frame(struct chart *c) {
    cairo_set_source_rgb(c->cr, 0.35, 0.35, 0.35);
    cairo_set_line_width(c->cr, 1);
    cairo_move_to(c->cr, floor(c->plot.x0) + 0.5, c->plot.y0);
    cairo_line_to(c->cr, floor(c->plot.x0) + 0.5, floor(c->plot.y1) + 0.5);
    cairo_line_to(c->cr, c->plot.x1, floor(c->plot.y1) + 0.5);
    cairo_stroke(c->cr);
}

/* title, legend and y title; sets c->plot leaving `left` px for y labels and `bottom` below */
static void layout_top(struct chart *c, const char *t, const struct legend_item *it, int n_it,
                       const char *ytitle, double left, double bottom) {
    title(c, t);
    double y = legend(c, it, n_it, 12, c->w - 12, 32);
    if (!n_it) y = 32;
    cairo_set_source_rgb(c->cr, 0.15, 0.15, 0.15);
    if (ytitle) chart_text(c, 12, y, 0, 0, FS_LABEL, false, ytitle);
    c->plot.x0 = left;
    c->plot.x1 = c->w - 18;
    c->plot.y0 = y + 22;
    c->plot.y1 = c->h - bottom;
}

static void x_title(struct chart *c, const char *t) {
    cairo_set_source_rgb(c->cr, 0.15, 0.15, 0.15);
    chart_text(c, (c->plot.x0 + c->plot.x1) / 2, c->h - 6, 0.5, 1, FS_LABEL, false, t);
}

/* place a point label at one of 8 spots around (x, y) inside the plot, or nowhere */
static void point_label(struct chart *c, double x, double y, const char *text) {
    static const double off[8][4] = {
        {8, 0, 0, 0.5},  {-8, 0, 1, 0.5}, {0, -8, 0.5, 1}, {0, 8, 0.5, 0},
        {6, -6, 0, 1},   {-6, -6, 1, 1},  {6, 6, 0, 0},    {-6, 6, 1, 0},
    };
    char buf[160];
    const char *t = chart_fit(c, FS_SMALL, false, text, 190, buf, sizeof buf);
    for (int k = 0; k < 8; k++) {
        struct chart_box b =
            chart_text_box(c, x + off[k][0], y + off[k][1], off[k][2], off[k][3], FS_SMALL, false, t);
        if (b.x0 < c->plot.x0 + 2 || b.x1 > c->plot.x1 - 2 || b.y0 < c->plot.y0 ||
            b.y1 > c->plot.y1 - 2 || chart_box_collides(c, b, 2))
            continue;
        /* a light halo keeps the label readable over grid lines, the frontier and points */
        cairo_rectangle(c->cr, b.x0 - 1.5, b.y0 + 0.5, b.x1 - b.x0 + 3, b.y1 - b.y0 - 1);
        cairo_set_source_rgba(c->cr, 1, 1, 1, 0.85);
        cairo_fill(c->cr);
        cairo_set_source_rgb(c->cr, 0.1, 0.1, 0.1);
        chart_text(c, x + off[k][0], y + off[k][1], off[k][2], off[k][3], FS_SMALL, false, t);
        return;
    }
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static const char *baseline_name(const struct lb_data *d, int run) {
    const struct lb_run *r = &d->runs[run];
    const char *w = r->recipe && r->recipe->weight_dtype ? r->recipe->weight_dtype : "";
    if (!strcmp(w, "float16") || !strcmp(w, "fp16")) return "fp16 baseline";
    if (!strcmp(w, "bfloat16") || !strcmp(w, "bf16")) return "bf16 baseline";
    if (!strcmp(w, "float32") || !strcmp(w, "fp32")) return "fp32 baseline";
    return "fp baseline";
}

/* algorithms present among runs, in palette order, then by name */
static int algo_order(const char **names, int n) {
    for (int i = 1; i < n; i++) {
        const char *v = names[i];
        int j = i - 1;
        while (j >= 0) {
            int a = chart_algo_index(names[j]), b = chart_algo_index(v);
            if (a < b || (a == b && strcmp(names[j], v) <= 0)) break;
            names[j + 1] = names[j];
            j--;
        }
        names[j + 1] = v;
    }
    return n;
}

static void add_algo(const char **names, int *n, int max, const char *a) {
    for (int i = 0; i < *n; i++)
        if (!strcmp(names[i], a)) return;
    if (*n < max) names[(*n)++] = a;
}

/* ------------------------------------------------------------------ bars */

void bars_compute(const struct lb_data *d, int g, struct bars_data *b) {
    const struct lb_group *G = &d->groups[g];
    memset(b, 0, sizeof *b);
    b->baseline = G->baseline >= 0 ? d->runs[G->baseline].average : NAN;
    b->baseline_label = G->baseline >= 0 ? baseline_name(d, G->baseline) : "baseline";
    for (int k = 0; k < G->n_runs; k++) {
        const struct lb_run *r = &d->runs[G->runs[k]];
        if (!r->ok || isnan(r->average) || !r->recipe || isnan(r->recipe->bits) ||
            !strcmp(lb_run_algorithm(r), "fp"))
            continue;
        double bits = round(r->recipe->bits * 100) / 100;
        int i = 0;
        while (i < b->n_bits && b->bits[i] != bits) i++;
        if (i == b->n_bits && b->n_bits < BARS_MAX) b->bits[b->n_bits++] = bits;
        add_algo(b->algos, &b->n_algos, BARS_MAX, lb_run_algorithm(r));
    }
    qsort(b->bits, (size_t)b->n_bits, sizeof b->bits[0], cmp_double);
    algo_order(b->algos, b->n_algos);
    for (int a = 0; a < BARS_MAX; a++)
        for (int i = 0; i < BARS_MAX; i++) b->val[a][i] = NAN, b->run[a][i] = -1;
    for (int k = 0; k < G->n_runs; k++) {
        const struct lb_run *r = &d->runs[G->runs[k]];
        if (!r->ok || isnan(r->average) || !r->recipe || isnan(r->recipe->bits) ||
            !strcmp(lb_run_algorithm(r), "fp"))
            continue;
        double bits = round(r->recipe->bits * 100) / 100;
        int i = 0, a = 0;
        while (i < b->n_bits && b->bits[i] != bits) i++;
        while (a < b->n_algos && strcmp(b->algos[a], lb_run_algorithm(r))) a++;
        if (i == b->n_bits || a == b->n_algos) continue;
        if (isnan(b->val[a][i]) || r->average > b->val[a][i]) {
            b->val[a][i] = r->average;
            b->run[a][i] = G->runs[k];
        }
    }
}

static void draw_bars(struct chart *c, const void *data) {
    const struct bars_data *b = data;
    struct legend_item it[BARS_MAX + 1];
    int n_it = 0;
    for (int a = 0; a < b->n_algos; a++)
        it[n_it++] = (struct legend_item){b->algos[a], chart_algo_index(b->algos[a]), -1};
    char bl[64];
    snprintf(bl, sizeof bl, "%s", b->baseline_label);
    if (!isnan(b->baseline)) it[n_it++] = (struct legend_item){bl, 0, -2};
    layout_top(c, "Average accuracy by method and bit width", it, n_it,
               "Average accuracy (%, mean of 10 tasks; best recipe per bar)", 52, 46);
    if (!b->n_bits) {
        message(c, "No quantized run with all ten tasks yet.");
        return;
    }
    double top = isnan(b->baseline) ? 0 : b->baseline;
    for (int a = 0; a < b->n_algos; a++)
        for (int i = 0; i < b->n_bits; i++)
            if (!isnan(b->val[a][i]) && b->val[a][i] > top) top = b->val[a][i];
    double t0, st;
    chart_ticks(0, fmin(100, top * 100 * 1.08 + 1), 6, &t0, &st);
    double ymax = fmin(100, ceil((top * 100 * 1.08 + 1) / st) * st);
    struct axis ay = {0, ymax, false, c->plot.y1, c->plot.y0};
    draw_y(c, &ay, fmt_tick_plain, (int)((c->plot.y1 - c->plot.y0) / 36) + 1);
    double gw = (c->plot.x1 - c->plot.x0) / b->n_bits;
    double bw = fmin(40, gw * 0.8 / (b->n_algos ? b->n_algos : 1));
    /* baseline first: its label has priority */
    if (!isnan(b->baseline)) {
        double y = ax_map(&ay, b->baseline * 100);
        static const double dash[] = {6, 4};
        cairo_set_dash(c->cr, dash, 2, 0);
        cairo_set_source_rgb(c->cr, 0, 0, 0);
        cairo_set_line_width(c->cr, 1.5);
        cairo_move_to(c->cr, c->plot.x0, y), cairo_line_to(c->cr, c->plot.x1, y);
        cairo_stroke(c->cr);
        cairo_set_dash(c->cr, NULL, 0, 0);
        char t[96];
        snprintf(t, sizeof t, "%s %.1f%%", b->baseline_label, b->baseline * 100);
        struct chart_box bx = chart_text_box(c, c->plot.x1 - 4, y - 3, 1, 1, FS_SMALL, true, t);
        if (!chart_box_collides(c, bx, 1)) chart_text(c, c->plot.x1 - 4, y - 3, 1, 1, FS_SMALL, true, t);
    }
    for (int i = 0; i < b->n_bits; i++) {
        double gx = c->plot.x0 + gw * i + (gw - bw * b->n_algos) / 2;
        for (int a = 0; a < b->n_algos; a++) {
            if (isnan(b->val[a][i])) continue;
            double rgb[3];
            chart_okabe_ito(chart_algo_index(b->algos[a]), rgb);
            double x = gx + a * bw, y = ax_map(&ay, b->val[a][i] * 100);
            cairo_rectangle(c->cr, x + 1, y, bw - 2, c->plot.y1 - y);
            chart_set_rgb(c->cr, rgb);
            cairo_fill_preserve(c->cr);
            cairo_set_source_rgba(c->cr, 0, 0, 0, 0.6);
            cairo_set_line_width(c->cr, 0.6);
            cairo_stroke(c->cr);
            char t[16];
            snprintf(t, sizeof t, "%.1f", b->val[a][i] * 100);
            struct chart_box bx = chart_text_box(c, x + bw / 2, y - 2, 0.5, 1, FS_SMALL, false, t);
            if (bx.x1 - bx.x0 <= bw + 2 && bx.y0 >= c->plot.y0 - 14 && !chart_box_collides(c, bx, 1)) {
                cairo_set_source_rgb(c->cr, 0.1, 0.1, 0.1);
                chart_text(c, x + bw / 2, y - 2, 0.5, 1, FS_SMALL, false, t);
            }
        }
        char t[32];
        snprintf(t, sizeof t, "%g-bit", b->bits[i]);
        struct chart_box bx =
            chart_text_box(c, c->plot.x0 + gw * (i + 0.5), c->plot.y1 + 5, 0.5, 0, FS_TICK, false, t);
        if (!chart_box_collides(c, bx, 3)) {
            cairo_set_source_rgb(c->cr, 0.2, 0.2, 0.2);
            chart_text(c, c->plot.x0 + gw * (i + 0.5), c->plot.y1 + 5, 0.5, 0, FS_TICK, false, t);
        }
    }
    plot_frame(c);
    x_title(c, "Nominal bits per weight of the recipe");
}

/* ------------------------------------------------------------------ scatter (bpw, size) */

struct scatter {
    const char *title, *xtitle, *ytitle;
    int n;
    const double *x, *y;   /* y already in display units (percent, perplexity) */
    const int *algo;       /* palette index per point */
    const char *const *label; /* frontier point labels */
    const struct lb_data *d;  /* with runs: an accuracy frontier of significant steps only */
    const int *runs;          /* the lb_data.runs index of each point */
    bool xlog, ylog, maximize;
    bool no_frontier, label_all; /* the speed chart: no frontier, every point labelled */
    bool y_from0;                /* y cannot be negative (KLD): the axis starts at 0 or above */
    double ref;            /* horizontal reference line (NAN none) */
    const char *ref_label;
    const char **legend_algos;
    int n_legend;
    tick_fmt xfmt;
    int (*palette)(const char *); /* the legend names' palette index: NULL chart_algo_index */
    bool y_zero;                  /* the y axis starts at 0 exactly (the class chart's KLD) */
};

static void draw_scatter(struct chart *c, const void *data) {
    const struct scatter *S = data;
    struct legend_item it[BARS_MAX + 2];
    int n_it = 0;
    for (int a = 0; a < S->n_legend && n_it < BARS_MAX; a++) {
        int k = (S->palette ? S->palette : chart_algo_index)(S->legend_algos[a]);
        it[n_it++] = (struct legend_item){S->legend_algos[a], k, k};
    }
    if (!S->no_frontier) it[n_it++] = (struct legend_item){"Pareto frontier", 0, -2};
    if (!isnan(S->ref) && S->ref_label) it[n_it++] = (struct legend_item){S->ref_label, 6, -2};
    layout_top(c, S->title, it, n_it, S->ytitle, 56, 46);
    int m = 0;
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    for (int i = 0; i < S->n; i++) {
        if (isnan(S->x[i]) || isnan(S->y[i]) || (S->xlog && S->x[i] <= 0) ||
            (S->ylog && S->y[i] <= 0))
            continue;
        m++;
        xlo = fmin(xlo, S->x[i]), xhi = fmax(xhi, S->x[i]);
        ylo = fmin(ylo, S->y[i]), yhi = fmax(yhi, S->y[i]);
    }
    if (!isnan(S->ref)) ylo = fmin(ylo, S->ref), yhi = fmax(yhi, S->ref);
    if (!m) {
        message(c, "No runs with these measurements yet.");
        return;
    }
    struct axis ax = {xlo, xhi, S->xlog, c->plot.x0 + 10, c->plot.x1 - 10};
    struct axis ay = {ylo, yhi, S->ylog, c->plot.y1 - 8, c->plot.y0 + 8};
    if (S->xlog) ax.lo = xlo / 1.3, ax.hi = xhi * 1.3;
    else {
        double pad = (xhi - xlo) * 0.05 + 0.25;
        ax.lo = fmax(0, xlo - pad), ax.hi = xhi + pad;
    }
    if (S->ylog) ay.lo = ylo / 1.1, ay.hi = yhi * 1.1;
    else {
        double pad = (yhi - ylo) * 0.08 + (S->y_from0 || S->y_zero ? 0 : 0.5);
        ay.lo = ylo - pad, ay.hi = yhi + pad;
        if (S->y_from0) ay.lo = fmax(0, ay.lo), ay.hi = ay.hi > ay.lo ? ay.hi : ay.lo + 1;
        if (S->y_zero) ay.lo = 0, ay.hi = ay.hi > 0 ? ay.hi : 1;
    }
    draw_y(c, &ay, fmt_tick_plain, (int)((c->plot.y1 - c->plot.y0) / 36) + 1);
    draw_x(c, &ax, S->xfmt ? S->xfmt : fmt_tick_plain,
           (int)((c->plot.x1 - c->plot.x0) / 70) + 1, true);
    if (!isnan(S->ref)) {
        double y = ax_map(&ay, S->ref), rgb[3];
        chart_okabe_ito(6, rgb);
        static const double dash[] = {6, 4};
        cairo_set_dash(c->cr, dash, 2, 0);
        chart_set_rgb(c->cr, rgb);
        cairo_set_line_width(c->cr, 1.2);
        cairo_move_to(c->cr, c->plot.x0, y), cairo_line_to(c->cr, c->plot.x1, y);
        cairo_stroke(c->cr);
        cairo_set_dash(c->cr, NULL, 0, 0);
    }
    /* the frontier, as a staircase: the best y reachable at or below each x */
    int *fr = malloc((size_t)(S->n + 1) * sizeof *fr);
    int nf = 0;
    if (fr && !S->no_frontier) {
        double *px = malloc((size_t)(S->n + 1) * sizeof *px);
        double *py = malloc((size_t)(S->n + 1) * sizeof *py);
        if (px && py) {
            for (int i = 0; i < S->n; i++) {
                bool bad = (S->xlog && !(S->x[i] > 0)) || (S->ylog && !(S->y[i] > 0));
                px[i] = bad ? NAN : S->x[i];
                py[i] = bad ? NAN : S->y[i];
            }
            nf = lb_pareto(S->d, S->runs, px, py, S->n, S->maximize, fr);
        }
        free(px), free(py);
    }
    /* points: grey-outlined markers, one shape and colour per algorithm */
    for (int i = 0; i < S->n; i++) {
        if (isnan(S->x[i]) || isnan(S->y[i]) || (S->xlog && S->x[i] <= 0) ||
            (S->ylog && S->y[i] <= 0))
            continue;
        double rgb[3];
        chart_okabe_ito(S->algo[i], rgb);
        chart_marker(c->cr, S->algo[i], ax_map(&ax, S->x[i]), ax_map(&ay, S->y[i]), 3.6, rgb);
    }
    if (nf) {
        cairo_set_source_rgb(c->cr, 0, 0, 0);
        cairo_set_line_width(c->cr, 1.4);
        static const double dash[] = {4, 3};
        cairo_set_dash(c->cr, dash, 2, 0);
        for (int k = 0; k < nf; k++) {
            double x = ax_map(&ax, S->x[fr[k]]), y = ax_map(&ay, S->y[fr[k]]);
            if (!k) cairo_move_to(c->cr, x, y);
            else {
                double py = ax_map(&ay, S->y[fr[k - 1]]);
                cairo_line_to(c->cr, x, py);
                cairo_line_to(c->cr, x, y);
            }
        }
        cairo_line_to(c->cr, c->plot.x1, ax_map(&ay, S->y[fr[nf - 1]]));
        cairo_stroke(c->cr);
        cairo_set_dash(c->cr, NULL, 0, 0);
        for (int k = 0; k < nf; k++) {
            double x = ax_map(&ax, S->x[fr[k]]), y = ax_map(&ay, S->y[fr[k]]);
            cairo_arc(c->cr, x, y, 6, 0, 2 * M_PI);
            cairo_set_source_rgb(c->cr, 0, 0, 0);
            cairo_set_line_width(c->cr, 1.2);
            cairo_stroke(c->cr);
        }
        for (int k = nf - 1; k >= 0; k--)
            if (S->label && S->label[fr[k]])
                point_label(c, ax_map(&ax, S->x[fr[k]]), ax_map(&ay, S->y[fr[k]]), S->label[fr[k]]);
    }
    free(fr);
    for (int i = 0; S->label_all && i < S->n; i++)
        if (!isnan(S->x[i]) && !isnan(S->y[i]) && S->label[i] && !(S->xlog && S->x[i] <= 0) &&
            !(S->ylog && S->y[i] <= 0))
            point_label(c, ax_map(&ax, S->x[i]), ax_map(&ay, S->y[i]), S->label[i]);
    plot_frame(c);
    x_title(c, S->xtitle);
}

/* ------------------------------------------------------------------ quality vs speed */

static _Thread_local const struct lb_data *g_sd; /* qsort context */
static int cmp_prefill(const void *a, const void *b) {
    const struct lb_run *x = &g_sd->runs[*(const int *)a], *y = &g_sd->runs[*(const int *)b];
    if (x->prefill_tps != y->prefill_tps) return x->prefill_tps < y->prefill_tps ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static bool same_host(const struct lb_run *a, const struct lb_run *b) {
    return !strcmp(a->host_cpu ? a->host_cpu : "", b->host_cpu ? b->host_cpu : "") &&
           (a->threads == b->threads || (isnan(a->threads) && isnan(b->threads)));
}

int speed_runs(const struct lb_data *d, int g, int *out, const char **cpu, double *threads,
               int *n_other, bool *kld) {
    const struct lb_group *G = &d->groups[g];
    const struct lb_run *host = NULL;
    int best = 0, n_speed = 0;
    *cpu = NULL, *threads = NAN, *n_other = 0, *kld = false;
    for (int i = 0; i < G->n_runs; i++) {
        const struct lb_run *a = &d->runs[G->runs[i]];
        if (!a->ok || !(a->prefill_tps > 0)) continue;
        n_speed++;
        int n = 0;
        for (int j = 0; j < G->n_runs; j++) {
            const struct lb_run *b = &d->runs[G->runs[j]];
            if (b->ok && b->prefill_tps > 0 && same_host(a, b)) n++;
        }
        int c = host ? strcmp(a->host_cpu ? a->host_cpu : "", host->host_cpu ? host->host_cpu : "")
                     : 0;
        if (!host || n > best || (n == best && (c < 0 || (c == 0 && a->threads < host->threads))))
            host = a, best = n;
    }
    if (!host) return 0;
    *cpu = host->host_cpu, *threads = host->threads, *n_other = n_speed - best;
    for (int i = 0; i < G->n_runs; i++) {
        const struct lb_run *a = &d->runs[G->runs[i]];
        if (a->ok && a->prefill_tps > 0 && same_host(a, host) && !isnan(a->kld)) *kld = true;
    }
    int n = 0;
    for (int i = 0; i < G->n_runs; i++) {
        const struct lb_run *a = &d->runs[G->runs[i]];
        if (a->ok && a->prefill_tps > 0 && same_host(a, host) &&
            !isnan(*kld ? a->kld : a->average))
            out[n++] = G->runs[i];
    }
    g_sd = d;
    qsort(out, (size_t)n, sizeof *out, cmp_prefill);
    return n;
}

/* charts/<slug>-speed: quality against prefill speed on one host */
static int chart_speed(struct site *s, int g, struct chart_layout *lay) {
    const struct lb_data *d = s->d;
    const struct lb_group *G = &d->groups[g];
    int n_all = G->n_runs, ret = -1;
    int *runs = calloc((size_t)n_all + 1, sizeof *runs), *algo = calloc((size_t)n_all + 1, sizeof *algo);
    double *x = calloc((size_t)n_all + 1, sizeof *x), *y = calloc((size_t)n_all + 1, sizeof *y);
    const char **lab = calloc((size_t)n_all + 1, sizeof *lab);
    char *ttl = NULL, *desc = NULL, *xt = NULL;
    const char *legend_algos[BARS_MAX];
    int n_leg = 0;
    if (!runs || !algo || !x || !y || !lab) {
        err("render: out of memory (charts)");
        goto out;
    }
    const char *cpu;
    double threads;
    int n_other;
    bool kld;
    const int n = speed_runs(d, g, runs, &cpu, &threads, &n_other, &kld);
    for (int k = 0; k < n; k++) {
        const struct lb_run *r = &d->runs[runs[k]];
        x[k] = r->prefill_tps;
        y[k] = kld ? r->kld : r->average * 100;
        algo[k] = chart_algo_index(lb_run_algorithm(r));
        lab[k] = r->recipe_id;
        add_algo(legend_algos, &n_leg, BARS_MAX, lb_run_algorithm(r));
    }
    algo_order(legend_algos, n_leg);
    char tb[32];
    if (!(ttl = fmt_dup("%s: %s vs prefill speed", G->name, kld ? "KLD" : "accuracy")) ||
        !(xt = fmt_dup("Prefill tokens/s, context 512 (log scale), on %s, %s thread%s",
                       cpu && *cpu ? cpu : "an unnamed CPU", fmt_int(tb, sizeof tb, threads),
                       threads == 1 ? "" : "s")) ||
        !(desc = fmt_dup("Scatter: one point per run of %s measured on one host (%s, %s "
                         "thread%s), x = prefill tokens/s on a log scale, y = %s; every point "
                         "is labelled with its recipe.",
                         G->name, cpu && *cpu ? cpu : "an unnamed CPU",
                         fmt_int(tb, sizeof tb, threads), threads == 1 ? "" : "s",
                         kld ? "mean KL divergence from the unquantized model (lower is better)"
                             : "average accuracy in percent")))
        goto out;
    struct scatter S = {
        .title = kld ? "KLD vs prefill speed (one host)" : "Accuracy vs prefill speed (one host)",
        .xtitle = xt,
        .ytitle = kld ? "Mean KLD from the unquantized model (nats; lower is better)"
                      : "Average accuracy (%, mean of 10 tasks)",
        .n = n, .x = x, .y = y, .algo = algo, .label = lab, .xlog = true, .no_frontier = true,
        .label_all = true, .y_from0 = kld, .ref = NAN, .legend_algos = legend_algos, .n_legend = n_leg,
    };
    char name[160];
    snprintf(name, sizeof name, "%s-speed", G->slug);
    ret = chart_write(s, name, 720, 420, ttl, desc, draw_scatter, &S, lay);
out:
    free(runs), free(algo), free(x), free(y), free(lab), free(ttl), free(desc), free(xt);
    return ret;
}

/* ------------------------------------------------------------------ KLD by method class */

int class_runs(const struct lb_data *d, int g, int *out) {
    const struct lb_group *G = &d->groups[g];
    int n = 0;
    for (int k = 0; k < G->n_runs; k++) {
        const struct lb_run *r = &d->runs[G->runs[k]];
        if (r->ok && !isnan(r->kld) && !isnan(r->bits_per_weight)) out[n++] = G->runs[k];
    }
    return n;
}

/* charts/<slug>-class: mean KLD against measured bits per weight, one colour and marker per
 * method class (the scatter, with the class palette) */
static int chart_class(struct site *s, int g, struct chart_layout *lay) {
    const struct lb_data *d = s->d;
    const struct lb_group *G = &d->groups[g];
    int n_all = G->n_runs, ret = -1;
    int *runs = calloc((size_t)n_all + 1, sizeof *runs), *pal = calloc((size_t)n_all + 1, sizeof *pal);
    double *x = calloc((size_t)n_all + 1, sizeof *x), *y = calloc((size_t)n_all + 1, sizeof *y);
    const char **lab = calloc((size_t)n_all + 1, sizeof *lab);
    char *ttl = NULL;
    const char *legend[BARS_MAX];
    int n_leg = 0;
    if (!runs || !pal || !x || !y || !lab) {
        err("render: out of memory (charts)");
        goto out;
    }
    const int n = class_runs(d, g, runs);
    for (int k = 0; k < n; k++) {
        const struct lb_run *r = &d->runs[runs[k]];
        x[k] = r->bits_per_weight;
        y[k] = r->kld;
        pal[k] = lb_method_class_index(lb_run_method_class(r));
        lab[k] = r->recipe_id;
        add_algo(legend, &n_leg, BARS_MAX, lb_run_method_class(r));
    }
    /* the legend in palette order */
    for (int i = 1; i < n_leg; i++)
        for (int j = i; j > 0 && lb_method_class_index(legend[j]) <
                                      lb_method_class_index(legend[j - 1]); j--) {
            const char *t = legend[j];
            legend[j] = legend[j - 1], legend[j - 1] = t;
        }
    if (!(ttl = fmt_dup("%s: KLD vs bits per weight by method class", G->name))) goto out;
    struct scatter S = {
        .title = "KLD vs bits per weight, by method class",
        .xtitle = "Bits per weight, measured on the quantized file (8 \xc3\x97 bytes / "
                  "parameters; log scale)",
        .ytitle = "Mean KLD from the unquantized model (nats; lower is better)",
        /* log x: the 16/32-bit baselines would otherwise crowd the 2-6 bit runs into a corner */
        .n = n, .x = x, .y = y, .algo = pal, .label = lab, .no_frontier = true, .y_zero = true,
        .xlog = true, .label_all = true,
        .ref = NAN, .legend_algos = legend, .n_legend = n_leg, .palette = lb_method_class_index,
    };
    char name[160];
    snprintf(name, sizeof name, "%s-class", G->slug);
    ret = chart_write(s, name, 720, 420, ttl,
                      "Scatter: one point per run with a KLD (rows of the variants table), x = "
                      "measured bits per weight (log scale), y = mean KL divergence from the "
                      "unquantized model, from 0; colour and marker by the PTQ benchmark's method "
                      "class; every point labelled with its recipe.",
                      draw_scatter, &S, lay);
out:
    free(runs), free(pal), free(x), free(y), free(lab), free(ttl);
    return ret;
}

/* ------------------------------------------------------------------ heatmap */

static _Thread_local const struct lb_data *g_hd; /* qsort context */
static int cmp_rank(const void *a, const void *b) {
    const struct lb_run *x = &g_hd->runs[*(const int *)a], *y = &g_hd->runs[*(const int *)b];
    return x->rank - y->rank;
}

int heat_rows(const struct lb_data *d, int g, int *out, int max) {
    const struct lb_group *G = &d->groups[g];
    int n = 0;
    for (int k = 0; k < G->n_runs; k++) {
        const struct lb_run *r = &d->runs[G->runs[k]];
        if (r->ok && G->runs[k] != G->baseline) out[n++] = G->runs[k];
    }
    g_hd = d;
    qsort(out, (size_t)n, sizeof *out, cmp_rank);
    return n < max ? n : max;
}

struct heat {
    const struct lb_data *d;
    int group;
    const int *rows;
    int n_rows, n_all;
};

/* diverging colour for a change in pp: vermillion for drops, blue for gains, white at 0 */
static void heat_colour(double v, double scale, double rgb[3]) {
    double t = fmin(1, fabs(v) / scale), end[3];
    chart_okabe_ito(v < 0 ? 6 : 5, end);
    for (int k = 0; k < 3; k++) rgb[k] = 1 + (end[k] - 1) * t;
}

static void draw_heat(struct chart *c, const void *data) {
    const struct heat *H = data;
    const struct lb_data *d = H->d;
    const struct lb_group *G = &d->groups[H->group];
    title(c, "Change in accuracy from the baseline, per task");
    cairo_set_source_rgb(c->cr, 0.15, 0.15, 0.15);
    chart_text(c, 12, 32, 0, 0, FS_LABEL, false,
               "Percentage points (variant acc \xe2\x88\x92 baseline acc); rows by rank");
    if (G->baseline < 0) {
        message(c, "No fp16/bf16/fp32 run of this model: no baseline to compare with.");
        return;
    }
    if (!H->n_rows) {
        message(c, "No quantized run of this model yet.");
        return;
    }
    const struct lb_run *B = &d->runs[G->baseline];
    double label_w = 170, cell_w = (c->w - label_w - 24) / (d->n_tasks + 1), cell_h = 18;
    double x0 = 12 + label_w, y0 = 72;
    /* the colour scale: the largest |change| rounded up to a nice step, at least 1 pp */
    double scale = 1;
    for (int i = 0; i < H->n_rows; i++)
        for (int t = 0; t < d->n_tasks; t++) {
            double v = (d->runs[H->rows[i]].acc[t] - B->acc[t]) * 100;
            if (!isnan(v)) scale = fmax(scale, fabs(v));
        }
    double t0, st;
    chart_ticks(0, scale, 4, &t0, &st);
    scale = ceil(scale / st - 1e-9) * st;
    for (int t = 0; t <= d->n_tasks; t++) {
        const char *h = t < d->n_tasks ? d->tasks[t].abbr : "Avg";
        cairo_set_source_rgb(c->cr, 0.15, 0.15, 0.15);
        struct chart_box b =
            chart_text_box(c, x0 + cell_w * (t + 0.5), y0 - 4, 0.5, 1, FS_SMALL, true, h);
        if (!chart_box_collides(c, b, 1))
            chart_text(c, x0 + cell_w * (t + 0.5), y0 - 4, 0.5, 1, FS_SMALL, true, h);
    }
    for (int i = 0; i < H->n_rows; i++) {
        const struct lb_run *r = &d->runs[H->rows[i]];
        double y = y0 + i * cell_h;
        char buf[160], lab[200];
        snprintf(lab, sizeof lab, "%s%s%s", r->model_id && strcmp(r->model_id, G->key) ? r->model_id : "",
                 r->model_id && strcmp(r->model_id, G->key) ? " " : "", r->recipe_id);
        utf8_trim(lab);
        cairo_set_source_rgb(c->cr, 0.1, 0.1, 0.1);
        chart_text(c, x0 - 6, y + cell_h / 2, 1, 0.5, FS_SMALL, false,
                   chart_fit(c, FS_SMALL, false, lab, label_w - 8, buf, sizeof buf));
        for (int t = 0; t <= d->n_tasks; t++) {
            double v = t < d->n_tasks ? (r->acc[t] - B->acc[t]) * 100
                                         : (r->average - B->average) * 100;
            double x = x0 + t * cell_w, rgb[3] = {0.93, 0.93, 0.93};
            if (!isnan(v)) heat_colour(v, scale, rgb);
            cairo_rectangle(c->cr, x + 0.5, y + 0.5, cell_w - 1, cell_h - 1);
            chart_set_rgb(c->cr, rgb);
            cairo_fill(c->cr);
            char tv[16];
            if (isnan(v)) snprintf(tv, sizeof tv, "n/a");
            else snprintf(tv, sizeof tv, "%+.1f", fabs(v) < 0.05 ? 0.0 : v);
            double lum = 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2];
            if (lum < 0.5) cairo_set_source_rgb(c->cr, 1, 1, 1);
            else cairo_set_source_rgb(c->cr, 0.1, 0.1, 0.1);
            struct chart_box b =
                chart_text_box(c, x + cell_w / 2, y + cell_h / 2, 0.5, 0.5, FS_SMALL, false, tv);
            if (b.x1 - b.x0 < cell_w - 2 && !chart_box_collides(c, b, 0))
                chart_text(c, x + cell_w / 2, y + cell_h / 2, 0.5, 0.5, FS_SMALL, false, tv);
        }
    }
    /* colour bar */
    double by = y0 + H->n_rows * cell_h + 18, bx = x0, bwid = cell_w * (d->n_tasks + 1);
    for (int k = 0; k < 100; k++) {
        double rgb[3];
        heat_colour(-scale + 2 * scale * k / 99.0, scale, rgb);
        cairo_rectangle(c->cr, bx + bwid * k / 100, by, bwid / 100 + 0.5, 10);
        chart_set_rgb(c->cr, rgb);
        cairo_fill(c->cr);
    }
    char tl[3][32];
    snprintf(tl[0], 32, "\xe2\x88\x92%g pp (worse)", scale);
    snprintf(tl[1], 32, "0");
    snprintf(tl[2], 32, "+%g pp (better)", scale);
    cairo_set_source_rgb(c->cr, 0.15, 0.15, 0.15);
    chart_text(c, bx, by + 13, 0, 0, FS_SMALL, false, tl[0]);
    chart_text(c, bx + bwid / 2, by + 13, 0.5, 0, FS_SMALL, false, tl[1]);
    chart_text(c, bx + bwid, by + 13, 1, 0, FS_SMALL, false, tl[2]);
    if (H->n_all > H->n_rows) {
        char t[96];
        snprintf(t, sizeof t, "Top %d of %d variants shown; all are in the table.", H->n_rows,
                 H->n_all);
        chart_text(c, 12, by + 30, 0, 0, FS_SMALL, false, t);
    }
}

/* ------------------------------------------------------------------ cost */

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int cost_compute(const struct lb_data *d, int g, struct cost_row *rows, int max) {
    const struct lb_group *G = &d->groups[g];
    const char *names[BARS_MAX];
    int n = 0;
    for (int k = 0; k < G->n_runs; k++) {
        const struct lb_run *r = &d->runs[G->runs[k]];
        if (r->ok && r->recipe && strcmp(lb_run_algorithm(r), "fp") &&
            (!isnan(r->quant_seconds) || !isnan(r->quant_peak_rss_mb)))
            add_algo(names, &n, max < BARS_MAX ? max : BARS_MAX, lb_run_algorithm(r));
    }
    algo_order(names, n);
    double *t = malloc((size_t)(G->n_runs + 1) * sizeof *t);
    double *m = malloc((size_t)(G->n_runs + 1) * sizeof *m);
    for (int i = 0; i < n && t && m; i++) {
        int nt = 0, nm = 0, nr = 0;
        for (int k = 0; k < G->n_runs; k++) {
            const struct lb_run *r = &d->runs[G->runs[k]];
            if (!r->ok || strcmp(lb_run_algorithm(r), names[i])) continue;
            nr++;
            if (!isnan(r->quant_seconds)) t[nt++] = r->quant_seconds;
            if (!isnan(r->quant_peak_rss_mb)) m[nm++] = r->quant_peak_rss_mb;
        }
        struct cost_row *c = &rows[i];
        c->algo = names[i];
        c->n = nr;
        c->t_med = nt ? median(t, nt) : NAN, c->t_min = nt ? t[0] : NAN,
        c->t_max = nt ? t[nt - 1] : NAN;
        c->m_med = nm ? median(m, nm) : NAN, c->m_min = nm ? m[0] : NAN,
        c->m_max = nm ? m[nm - 1] : NAN;
    }
    free(t), free(m);
    return n;
}

struct cost {
    struct cost_row rows[BARS_MAX];
    int n;
};

static const char *fmt_tick_mb(char *buf, size_t n, double v) {
    snprintf(buf, n, "%g", v);
    return buf;
}

static void cost_panel(struct chart *c, const struct cost *C, int which, double x0, double x1,
                       double y0, double row_h, const char *head) {
    double hi = 0;
    for (int i = 0; i < C->n; i++) hi = fmax(hi, which ? C->rows[i].m_max : C->rows[i].t_max);
    cairo_set_source_rgb(c->cr, 0.15, 0.15, 0.15);
    chart_text(c, x0, y0 - 26, 0, 0, FS_LABEL, true, head);
    if (!(hi > 0)) {
        chart_text(c, x0, y0 + 4, 0, 0, FS_SMALL, false, "not measured");
        return;
    }
    double t0, st;
    chart_ticks(0, hi * 1.05, (int)((x1 - x0) / 60) + 1, &t0, &st);
    struct axis ax = {0, ceil(hi * 1.05 / st) * st, false, x0, x1 - 50};
    double yb = y0 + C->n * row_h;
    struct chart sub = *c;
    sub.plot = (struct chart_box){x0, y0, x1 - 50, yb};
    draw_x(&sub, &ax, fmt_tick_mb, (int)((x1 - x0 - 50) / 55) + 1, true);
    c->labels = sub.labels, c->n_labels = sub.n_labels, c->cap_labels = sub.cap_labels;
    c->oom |= sub.oom;
    for (int i = 0; i < C->n; i++) {
        const struct cost_row *r = &C->rows[i];
        double med = which ? r->m_med : r->t_med, lo = which ? r->m_min : r->t_min,
               mx = which ? r->m_max : r->t_max;
        if (isnan(med)) continue;
        double y = y0 + i * row_h, rgb[3];
        chart_okabe_ito(chart_algo_index(r->algo), rgb);
        cairo_rectangle(c->cr, x0, y + 4, ax_map(&ax, med) - x0, row_h - 8);
        chart_set_rgb(c->cr, rgb);
        cairo_fill_preserve(c->cr);
        cairo_set_source_rgba(c->cr, 0, 0, 0, 0.6);
        cairo_set_line_width(c->cr, 0.6);
        cairo_stroke(c->cr);
        /* whisker min..max */
        cairo_set_source_rgb(c->cr, 0, 0, 0);
        cairo_set_line_width(c->cr, 1);
        double ym = y + row_h / 2;
        cairo_move_to(c->cr, ax_map(&ax, lo), ym), cairo_line_to(c->cr, ax_map(&ax, mx), ym);
        cairo_move_to(c->cr, ax_map(&ax, lo), ym - 4), cairo_line_to(c->cr, ax_map(&ax, lo), ym + 4);
        cairo_move_to(c->cr, ax_map(&ax, mx), ym - 4), cairo_line_to(c->cr, ax_map(&ax, mx), ym + 4);
        cairo_stroke(c->cr);
        char t[32];
        if (which) snprintf(t, sizeof t, "%.0f MB", med);
        else fmt_seconds(t, sizeof t, med);
        struct chart_box b = chart_text_box(c, ax_map(&ax, mx) + 5, ym, 0, 0.5, FS_SMALL, false, t);
        if (!chart_box_collides(c, b, 1)) chart_text(c, ax_map(&ax, mx) + 5, ym, 0, 0.5, FS_SMALL, false, t);
    }
    cairo_set_source_rgb(c->cr, 0.35, 0.35, 0.35);
    cairo_move_to(c->cr, floor(x0) + 0.5, y0), cairo_line_to(c->cr, floor(x0) + 0.5, yb);
    cairo_stroke(c->cr);
}

static void draw_cost(struct chart *c, const void *data) {
    const struct cost *C = data;
    title(c, "Quantization cost per method (median of its runs, whiskers min\xe2\x80\x93max)");
    if (!C->n) {
        message(c, "No quantization time or memory recorded for this model yet.");
        return;
    }
    double row_h = 24, y0 = 78, lw = 90;
    for (int i = 0; i < C->n; i++) {
        char buf[64];
        cairo_set_source_rgb(c->cr, 0.1, 0.1, 0.1);
        chart_text(c, 12 + lw - 8, y0 + i * row_h + row_h / 2, 1, 0.5, FS_LABEL, false,
                   chart_fit(c, FS_LABEL, false, C->rows[i].algo, lw - 12, buf, sizeof buf));
    }
    double mid = 12 + lw + (c->w - 24 - lw) / 2;
    cost_panel(c, C, 0, 12 + lw, mid - 10, y0, row_h, "Quantization time (s)");
    cost_panel(c, C, 1, mid + 10, c->w - 12, y0, row_h, "Peak memory while quantizing (MB)");
}

/* ------------------------------------------------------------------ lines (training curves) */

/* one series: y = held-out or train loss against x = tokens seen, of a training's curve */
struct line_series {
    const char *label;
    int colour, shape; /* Okabe-Ito index, marker */
    const struct lb_train_point *pts;
    int n;
    bool heldout; /* y: heldout_loss, else train_loss */
};

struct lines {
    const char *title, *xtitle, *ytitle, *empty;
    const struct line_series *s;
    int n;
};

static double series_y(const struct line_series *S, int i) {
    return S->heldout ? S->pts[i].heldout_loss : S->pts[i].train_loss;
}

static bool series_ok(const struct line_series *S, int i) {
    return !isnan(S->pts[i].tokens) && !isnan(series_y(S, i));
}

/* 0, 200k, 1.2M, 3B: counts of tokens */
static const char *fmt_tick_count(char *buf, size_t n, double v) {
    double a = fabs(v);
    if (a < 1e-9) snprintf(buf, n, "0");
    else if (a >= 1e9) snprintf(buf, n, "%gB", v / 1e9);
    else if (a >= 1e6) snprintf(buf, n, "%gM", v / 1e6);
    else if (a >= 1e3) snprintf(buf, n, "%gk", v / 1e3);
    else snprintf(buf, n, "%g", v);
    return buf;
}

static void draw_lines(struct chart *c, const void *data) {
    const struct lines *L = data;
    struct legend_item *it = calloc((size_t)L->n + 1, sizeof *it);
    if (!it) {
        c->oom = 1;
        return;
    }
    for (int k = 0; k < L->n; k++)
        it[k] = (struct legend_item){L->s[k].label, L->s[k].colour, L->s[k].shape};
    layout_top(c, L->title, it, L->n, L->ytitle, 56, 46);
    free(it);
    int m = 0;
    double xhi = 0, ylo = INFINITY, yhi = -INFINITY;
    for (int k = 0; k < L->n; k++)
        for (int i = 0; i < L->s[k].n; i++) {
            if (!series_ok(&L->s[k], i)) continue;
            double y = series_y(&L->s[k], i);
            m++;
            xhi = fmax(xhi, L->s[k].pts[i].tokens);
            ylo = fmin(ylo, y), yhi = fmax(yhi, y);
        }
    if (!m) {
        message(c, L->empty);
        return;
    }
    /* tokens from 0; the loss axis spans the data (it does not start at 0) */
    struct axis ax = {0, xhi > 0 ? xhi * 1.03 : 1, false, c->plot.x0 + 4, c->plot.x1 - 4};
    double pad = (yhi - ylo) * 0.08 + 0.02;
    struct axis ay = {ylo - pad, yhi + pad, false, c->plot.y1 - 6, c->plot.y0 + 6};
    draw_y(c, &ay, fmt_tick_plain, (int)((c->plot.y1 - c->plot.y0) / 36) + 1);
    draw_x(c, &ax, fmt_tick_count, (int)((c->plot.x1 - c->plot.x0) / 70) + 1, true);
    for (int k = 0; k < L->n; k++) {
        const struct line_series *S = &L->s[k];
        double rgb[3];
        chart_okabe_ito(S->colour, rgb);
        bool pen = false;
        cairo_new_path(c->cr);
        for (int i = 0; i < S->n; i++) {
            if (!series_ok(S, i)) {
                pen = false; /* a gap, not a line across it */
                continue;
            }
            double x = ax_map(&ax, S->pts[i].tokens), y = ax_map(&ay, series_y(S, i));
            if (pen) cairo_line_to(c->cr, x, y);
            else cairo_move_to(c->cr, x, y);
            pen = true;
        }
        chart_set_rgb(c->cr, rgb);
        cairo_set_line_width(c->cr, 1.8);
        cairo_set_line_join(c->cr, CAIRO_LINE_JOIN_ROUND);
        cairo_stroke(c->cr);
        if (S->n <= 60)
            for (int i = 0; i < S->n; i++)
                if (series_ok(S, i))
                    chart_marker(c->cr, S->shape, ax_map(&ax, S->pts[i].tokens),
                                 ax_map(&ay, series_y(S, i)), 3.2, rgb);
    }
    /* each series' last value beside its last point, where it fits */
    for (int k = 0; k < L->n; k++) {
        const struct line_series *S = &L->s[k];
        int i = S->n - 1;
        while (i >= 0 && !series_ok(S, i)) i--;
        if (i < 0) continue;
        char t[32];
        snprintf(t, sizeof t, "%.3f", series_y(S, i));
        point_label(c, ax_map(&ax, S->pts[i].tokens), ax_map(&ay, series_y(S, i)), t);
    }
    plot_frame(c);
    x_title(c, L->xtitle);
}

static _Thread_local const struct lb_data *g_td; /* qsort context for cmp_train_order */
static int cmp_train_order(const void *a, const void *b) {
    const struct lb_training *x = &g_td->trainings[*(const int *)a],
                             *y = &g_td->trainings[*(const int *)b];
    bool xn = isnan(x->params), yn = isnan(y->params);
    if (xn != yn) return xn ? 1 : -1;
    if (!xn && x->params != y->params) return x->params < y->params ? -1 : 1;
    return strcmp(x->model_id, y->model_id);
}

int training_order(const struct lb_data *d, int *out) {
    for (int i = 0; i < d->n_trainings; i++) out[i] = i;
    g_td = d;
    if (d->n_trainings > 0) qsort(out, (size_t)d->n_trainings, sizeof *out, cmp_train_order);
    return d->n_trainings;
}

/* the colours and markers of the overview's series, in order (yellow last: faint on white) */
static const int train_palette[8] = {5, 6, 3, 1, 7, 2, 0, 4};

static int chart_training(struct site *s, int g, struct chart_layout *lay) {
    const struct lb_data *d = s->d;
    const struct lb_group *G = &d->groups[g];
    const struct lb_training *t = lb_group_training(d, g);
    if (!t) return 0;
    const struct line_series S[2] = {
        {"train loss", 1, 0, t->curve, t->n_curve, false},
        {"held-out loss", 5, 1, t->curve, t->n_curve, true},
    };
    const struct lines L = {
        .title = "Training curve: train and held-out loss",
        .xtitle = "tokens seen",
        .ytitle = "loss (nats/token)",
        .empty = "No curve points recorded.",
        .s = S, .n = 2,
    };
    char name[160];
    snprintf(name, sizeof name, "%s-training", G->slug);
    char *ttl = fmt_dup("%s: training curve", G->name);
    const int rc = !ttl ? -1
                        : chart_write(s, name, 720, 400, ttl,
                                      "Line chart: training loss (mean over the steps since the "
                                      "previous point) and held-out loss, in nats per token, "
                                      "against the number of training tokens seen, as lowbit "
                                      "train recorded them; the data table is on the page.",
                                      draw_lines, &L, lay);
    free(ttl);
    return rc;
}

/* ------------------------------------------------------------------ the per-model set */

int charts_group(struct site *s, int g, struct chart_layout *lay_bars,
                 struct chart_layout *lay_bpw, struct chart_layout *lay_heat,
                 struct chart_layout *lay_cost, struct chart_layout *lay_train,
                 struct chart_layout *lay_speed, struct chart_layout *lay_class) {
    const struct lb_data *d = s->d;
    const struct lb_group *G = &d->groups[g];
    char name[160], desc[1024], *ttl = NULL;
    int ret = -1;

    struct bars_data b;
    bars_compute(d, g, &b);
    snprintf(name, sizeof name, "%s-bars", G->slug);
    if (!(ttl = fmt_dup("%s: average accuracy by method and bit width", G->name))) return -1;
    snprintf(desc, sizeof desc,
             "Grouped bars: for each nominal bit width, the best average accuracy (mean of the ten "
             "tasks, percent) reached by each quantization method; dashed line: the %s. The data "
             "table is on the page.",
             b.baseline_label);
    if (chart_write(s, name, 720, 400, ttl, desc, draw_bars, &b, lay_bars)) {
        free(ttl);
        return -1;
    }

    /* bpw scatter: every ok run of the group with an average */
    int n = G->n_runs;
    double *x = calloc((size_t)n + 1, sizeof *x), *y = calloc((size_t)n + 1, sizeof *y);
    int *algo = calloc((size_t)n + 1, sizeof *algo), *rows = calloc((size_t)n + 1, sizeof *rows);
    const char **lab = calloc((size_t)n + 1, sizeof *lab);
    const char *legend_algos[BARS_MAX];
    int n_leg = 0;
    if (!x || !y || !algo || !lab || !rows) {
        err("render: out of memory (charts)");
        goto out;
    }
    for (int k = 0; k < n; k++) {
        const struct lb_run *r = &d->runs[G->runs[k]];
        bool use = r->ok && !isnan(r->average);
        x[k] = use ? r->bits_per_weight : NAN;
        y[k] = use ? r->average * 100 : NAN;
        algo[k] = chart_algo_index(lb_run_algorithm(r));
        lab[k] = r->recipe_id;
        if (use) add_algo(legend_algos, &n_leg, BARS_MAX, lb_run_algorithm(r));
    }
    algo_order(legend_algos, n_leg);
    struct scatter S = {
        .title = "Accuracy vs bits per weight",
        .xtitle = "Bits per weight, measured on the quantized file (8 \xc3\x97 bytes / parameters)",
        .ytitle = "Average accuracy (%, mean of 10 tasks)",
        .n = n, .x = x, .y = y, .algo = algo, .label = lab, .maximize = true, .d = d,
        .runs = G->runs, .ref = G->baseline >= 0 && !isnan(d->runs[G->baseline].average)
                   ? d->runs[G->baseline].average * 100 : NAN,
        .ref_label = b.baseline_label, .legend_algos = legend_algos, .n_legend = n_leg,
    };
    snprintf(name, sizeof name, "%s-bpw", G->slug);
    free(ttl);
    if (!(ttl = fmt_dup("%s: accuracy vs bits per weight", G->name))) goto out;
    snprintf(desc, sizeof desc,
             "Scatter: one point per run (shape and colour by method), x = measured bits per "
             "weight, y = average accuracy in percent; the dashed staircase is the Pareto frontier "
             "(no run is both smaller and more accurate), its points are circled and labelled.");
    if (chart_write(s, name, 720, 420, ttl, desc, draw_scatter, &S, lay_bpw)) goto out;

    struct heat H = {.d = d, .group = g, .rows = rows};
    H.n_all = heat_rows(d, g, rows, n);
    H.n_rows = H.n_all < HEAT_MAX_ROWS ? H.n_all : HEAT_MAX_ROWS;
    snprintf(name, sizeof name, "%s-heat", G->slug);
    free(ttl);
    if (!(ttl = fmt_dup("%s: per-task change from the baseline", G->name))) goto out;
    snprintf(desc, sizeof desc,
             "Heatmap: rows are the quantized variants by rank, columns the ten tasks and the "
             "average; each cell is the accuracy change from the baseline in percentage points "
             "(vermillion: worse, blue: better), with its value written in the cell.");
    double hh = 72 + (H.n_rows ? H.n_rows : 4) * 18 + 60;
    if (chart_write(s, name, 720, hh, ttl, desc, draw_heat, &H, lay_heat)) goto out;

    struct cost C;
    C.n = cost_compute(d, g, C.rows, BARS_MAX);
    snprintf(name, sizeof name, "%s-cost", G->slug);
    free(ttl);
    if (!(ttl = fmt_dup("%s: quantization cost per method", G->name))) goto out;
    snprintf(desc, sizeof desc,
             "Horizontal bars per quantization method: median quantization wall time in seconds "
             "(left) and median peak resident memory in MB (right) over its runs of this model; "
             "whiskers span the minimum and maximum.");
    if (chart_write(s, name, 720, 100 + (C.n ? C.n : 2) * 24 + 30, ttl, desc, draw_cost, &C,
                    lay_cost))
        goto out;
    if (chart_training(s, g, lay_train)) goto out;
    if (chart_speed(s, g, lay_speed)) goto out;
    if (chart_class(s, g, lay_class)) goto out;
    ret = 0;
out:
    free(ttl);
    free(x), free(y), free(algo), free(lab), free(rows);
    return ret;
}

/* ------------------------------------------------------------------ across models */

/* the held-out loss curves of every trained model (none: no chart) */
static int chart_training_all(struct site *s, struct chart_layout *lay) {
    const struct lb_data *d = s->d;
    if (!d->n_trainings) return 0;
    int *order = calloc((size_t)d->n_trainings, sizeof *order);
    struct line_series *S = calloc((size_t)d->n_trainings, sizeof *S);
    char (*lab)[160] = calloc((size_t)d->n_trainings, sizeof *lab);
    int ret = -1;
    if (!order || !S || !lab) {
        err("render: out of memory (charts)");
        goto out;
    }
    int n = training_order(d, order);
    for (int k = 0; k < n; k++) {
        const struct lb_training *t = &d->trainings[order[k]];
        char p[32];
        if (isnan(t->params)) snprintf(lab[k], sizeof lab[k], "%s", t->model_id);
        else
            snprintf(lab[k], sizeof lab[k], "%s, %s params", t->model_id,
                     fmt_params(p, sizeof p, t->params));
        utf8_trim(lab[k]);
        S[k] = (struct line_series){lab[k], train_palette[k % 8], k % 8, t->curve, t->n_curve,
                                    true};
    }
    const struct lines L = {
        .title = "Held-out loss during training, every trained model",
        .xtitle = "tokens seen",
        .ytitle = "held-out loss (nats/token)",
        .empty = "No held-out loss recorded.",
        .s = S, .n = n,
    };
    ret = chart_write(s, "training-heldout", 900, 460,
                      "Held-out loss during training, every trained model",
                      "Line chart: one line per model trained by lowbit train (smallest first in "
                      "the legend), held-out loss in nats per token against the number of "
                      "training tokens seen; lower is better. The data table is on the page.",
                      draw_lines, &L, lay);
out:
    free(order), free(S), free(lab);
    return ret;
}

int charts_global(struct site *s, struct chart_layout *lay_size, struct chart_layout *lay_ppl,
                  struct chart_layout *lay_train) {
    const struct lb_data *d = s->d;
    int n = d->n_board, ret = -1;
    double *x = calloc((size_t)n + 1, sizeof *x), *y = calloc((size_t)n + 1, sizeof *y),
           *yp = calloc((size_t)n + 1, sizeof *yp);
    int *algo = calloc((size_t)n + 1, sizeof *algo);
    const char **lab = calloc((size_t)n + 1, sizeof *lab);
    char (*labbuf)[96] = calloc((size_t)n + 1, sizeof *labbuf);
    const char *legend_algos[BARS_MAX];
    int n_leg = 0;
    if (!x || !y || !yp || !algo || !lab || !labbuf) {
        err("render: out of memory (charts)");
        goto out;
    }
    for (int k = 0; k < n; k++) {
        const struct lb_run *r = &d->runs[d->board[k]];
        x[k] = r->artifact_bytes > 0 ? r->artifact_bytes : NAN;
        y[k] = r->average * 100;
        yp[k] = r->ppl_cpp;
        algo[k] = chart_algo_index(lb_run_algorithm(r));
        snprintf(labbuf[k], sizeof labbuf[k], "%s \xc2\xb7 %s", lb_run_model_name(r), r->recipe_id);
        utf8_trim(labbuf[k]);
        lab[k] = labbuf[k];
        add_algo(legend_algos, &n_leg, BARS_MAX, lb_run_algorithm(r));
    }
    algo_order(legend_algos, n_leg);
    struct scatter S = {
        .title = "Accuracy vs model size, all models",
        .xtitle = "Size of the model file on disk (log scale)",
        .ytitle = "Average accuracy (%, mean of 10 tasks)",
        .n = n, .x = x, .y = y, .algo = algo, .label = lab, .xlog = true, .maximize = true,
        .d = d, .runs = d->board, .ref = NAN, .legend_algos = legend_algos, .n_legend = n_leg,
        .xfmt = fmt_tick_bytes,
    };
    if (chart_write(s, "size-accuracy", 900, 520, "Accuracy vs model size, all models",
                    "Scatter: one point per run of every model (shape and colour by method), x = "
                    "file size on a log scale, y = average accuracy in percent; the dashed "
                    "staircase is the Pareto frontier: the most accurate run at each size budget, "
                    "its points circled and labelled with model and recipe.",
                    draw_scatter, &S, lay_size))
        goto out;
    struct scatter P = S;
    P.title = "Perplexity vs model size, all models";
    P.ytitle = "WikiText-2 perplexity, llama.cpp ctx 512 (log scale; lower is better)";
    P.y = yp;
    P.ylog = true;
    P.maximize = false;
    if (chart_write(s, "size-ppl", 900, 520, "Perplexity vs model size, all models",
                    "Scatter: one point per run with a perplexity, x = file size (log scale), y = "
                    "WikiText-2 perplexity, llama.cpp protocol at context 512 (log scale, lower is "
                    "better); the dashed staircase is the Pareto frontier: the lowest perplexity "
                    "at each size budget, a step kept only when significantly lower.",
                    draw_scatter, &P, lay_ppl))
        goto out;
    if (chart_training_all(s, lay_train)) goto out;
    ret = 0;
out:
    free(x), free(y), free(yp), free(algo), free(lab), free(labbuf);
    return ret;
}
