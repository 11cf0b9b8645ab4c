/* render/render_impl.h: what the files of render/ share: the in-memory copy of the database, the
 * HTML page builder over libxml2, the chart canvas over Cairo, the dataset writers.
 *
 * Numbers read as NULL are NAN in memory (counts and sizes fit a double exactly below 2^53).
 * Every string read from the database is valid UTF-8 without the control characters XML forbids
 * (invalid bytes and those characters become U+FFFD), so every writer can pass it on as is and
 * rely on its own escaping. */
#ifndef RENDER_IMPL_H
#define RENDER_IMPL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cairo.h>
#include <libxml/tree.h>

struct sqlite3;

#include "kernels/base/base.h"
#include "render/render.h"

/* ===== the board tasks: the database's tasks table (gen/schema.sql, written from eval/task.c by
 * collect), those with a board_metric, in its column order ===== */
#define LB_TASK_MAX 32 /* more board tasks than this in a database are refused */
struct lb_task_info {
    char *key;    /* lm-eval task name, scores.task */
    char *label;  /* column header */
    char *abbr;   /* chart label */
    char *title;  /* what it is, for documentation */
    char *metric; /* the board's metric of the task ("acc") */
};

/* the extra metrics shown beside the tasks */
#define LB_PPL_TASK "wikitext"
#define LB_PPL_METRIC "word_perplexity"
#define LB_KLD_TASK "kld"
#define LB_KLD_METRIC "kld_mean"

/* ===== the method class of a recipe (method.c): the PTQ benchmark's taxonomy ===== */
/* "baseline" (fp), "rounding" (rtn), "compensation" (gptq), "salience" (awq, rtn with knob
 * smooth_alpha, bnb int8), "optimization" (autoround), "rotation" (rtn or gptq with knob
 * rotate), "codebook" (aqlm), "data type" (bnb nf4 / fp4, gguf); "other" for an algorithm it does
 * not know. knobs: the recipe's JSON object text (NULL or "" none; read with jansson). A
 * combination is classed by its distinctive part (QuaRot + GPTQ: rotation). Static strings. */
const char *lb_method_class(const char *algorithm, const char *weight_dtype, const char *knobs);
/* a class's palette index for the charts: its position in LB_METHOD_CLASSES */
int lb_method_class_index(const char *cls);
#define LB_METHOD_CLASSES                                                                          \
    "baseline", "rounding", "compensation", "salience", "optimization", "rotation", "codebook",    \
        "data type"

/* ===== the database in memory (data.c) ===== */
struct lb_model {
    char *id, *path, *tokenizer, *display_name, *family, *base_model, *model_type, *license, *notes,
        *architecture, *files_sha256;
    double n_params;
    double n_params_active; /* a mixture of experts: those a token goes through (schema 5);
                               dense: n_params; NAN not recorded */
};

struct lb_recipe {
    char *id, *algorithm, *weight_dtype, *compute_dtype, *calib_set, *knobs;
    const char *method_class; /* lb_method_class() of the row (static) */
    double bits, group_size, sym, double_quant, calib_nsamples, calib_seqlen;
};

struct lb_score {
    char *task, *metric;
    double value, stderr_, n;
};

struct lb_taskdef {
    char *task, *dataset_file, *dataset_sha256;
    double n_docs, n_docs_full, limit_n, seed, num_fewshot, add_bos, ctx;
    double n_truncated; /* documents cut to the context (schema 4), NAN: not recorded */
};

struct lb_prov {
    char *key, *value;
};

/* a per-sample record the statistics use (table samples): a board task's document, or a ppl/kld
 * chunk */
struct lb_sample {
    char *task;
    int doc;            /* index in the full set; chunk index */
    int gold, pred;     /* multiple choice: the right and the chosen answer; -1 n/a */
    double acc, value;  /* acc of a document; value: ppl chunk mean NLL, kld chunk mean KLD */
};

/* a document's text (table documents), for the drill-downs */
struct lb_doctext {
    char *task, *sha256;
    int doc;
    char *context, *choices, *continuation; /* choices: a JSON array of strings */
};


/* ===== paired statistics (stats.c; the method is in its header and on about.html) ===== */
#define LB_BOOT 1000      /* bootstrap resamples */
#define LB_BOOT_SEED 1234 /* their seed */
#define LB_STREAM_KLD 1000
#define LB_STREAM_PPL 1001
#define LB_LEVEL 0.95 /* the intervals' simultaneous coverage */
enum { LB_D_NONE, LB_D_OK, LB_D_APART };
/* a run's own statistic on a rank-by choice, from its records: the mean acc of a task, the board
 * tasks' mean of those, the chunks' mean KLD or mean NLL */
struct lb_rstat {
    double x;
    uint64_t sig; /* its documents: the data file's sha256 and the indices; 0 = no data file */
    int n;        /* documents (chunks) */
    int state;    /* LB_D_OK, or LB_D_NONE: no records, or a value that is not finite */
    double *st;   /* its LB_BOOT resamples (in lb_data.rboot); NULL for a run without records */
};
struct lb_delta {
    double delta, lo, hi; /* the estimate and its 95% simultaneous interval, delta -+ crit * se */
    double se, crit;      /* the bootstrap standard error; the family's critical value */
    int n;                /* documents (chunks) it rests on; the average: all tasks' */
    int state;            /* LB_D_OK; LB_D_NONE: no records; LB_D_APART: other documents */
};

/* the board's "rank by" choices, each with its own deltas and tie bands: the average, the mean
 * KLD, the perplexity (llama.cpp protocol, the chunks the intervals rest on), then one per board
 * task (LB_BY_TASK + t) */
enum { LB_BY_AVG, LB_BY_KLD, LB_BY_PPL, LB_BY_TASK };
#define LB_BY_MAX (LB_BY_TASK + LB_TASK_MAX)
#define LB_PPLC_TASK "ppl"
#define LB_PPLC_METRIC "ppl_llamacpp_ctx512"

struct lb_run {
    int64_t id;
    char *job_key, *model_id, *recipe_id, *status, *error, *log_tail, *started_at, *finished_at,
        *code_version, *host_cpu, *kernels_isa, *artifact_path;
    char *failure; /* failed runs: "environment" or "input" (schema 3), NULL when unknown */
    double threads, quant_seconds, quant_peak_rss_mb, eval_seconds, eval_peak_rss_mb,
        artifact_bytes, bits_per_weight, n_params;
    double prefill_tps, decode_tps, run_memory_mb; /* what it costs to run (schema 4), on
                                                      host_cpu with threads threads */
    double n_params_active; /* as lb_model's, of the artifact (schema 5) */
    const struct lb_model *model;   /* NULL when models has no such id */
    const struct lb_recipe *recipe; /* NULL when recipes has no such id */
    struct lb_score *scores;        /* borrowed slices of lb_data's arrays */
    struct lb_taskdef *defs;
    struct lb_prov *prov;
    int n_scores, n_defs, n_prov;
    double acc[LB_TASK_MAX], acc_se[LB_TASK_MAX]; /* fractions 0..1, by board task */
    struct lb_sample *samples;    /* borrowed slice of lb_data.samples, by task, doc */
    int n_samples;
    const struct lb_run *baseline; /* its model's baseline run (lb_stats), NULL none */
    struct lb_delta d_acc[LB_TASK_MAX], d_avg; /* acc - the baseline's, per task and average */
    struct lb_delta d_ppl;        /* mean chunk NLL - the baseline's (PPL ratio = exp) */
    struct lb_delta d_kld;        /* the mean KLD itself, with its interval over chunks */
    int band;                     /* tie band on the board (1 = the top one), 0 off the board:
                                     by_band[LB_BY_AVG] */
    double average;                                   /* the leaderboard view's average */
    double ppl, kld;                                  /* wikitext word perplexity, mean KLD */
    double ppl_cpp;                                   /* llama.cpp perplexity (task ppl) */
    int by_rank[LB_BY_MAX], by_band[LB_BY_MAX];       /* per rank-by choice (lb_stats) */
    bool ok;                                          /* status ok: on the board */
    int group;                                        /* index in lb_data.groups */
    int rank;                                         /* 1-based board rank, 0 off the board */
};

/* a base model: a model and every third-party checkpoint whose base_model names it */
struct lb_group {
    char *key;  /* the base model id */
    char *name; /* its display name (the key when models has no such row) */
    char *slug; /* models/<slug>.html: [a-z0-9._-], unique */
    int *runs;  /* indices into lb_data.runs, by run id */
    int n_runs;
    int baseline; /* the 16/32-bit fp run of the base model itself, -1 when none */
    double crit;  /* the critical value of its runs' intervals, simultaneous over n_stmt */
    int n_stmt;   /* statements: every delta against the baseline, every mean KLD */
    double n_params, n_params_active; /* active: NAN when not recorded */
};

/* one row of training_curve (a point of lowbit train's curve.csv) */
struct lb_train_point {
    double step, tokens, train_loss, heldout_loss, lr, seconds; /* NAN: NULL */
};

/* a model trained by lowbit train: its training row, the fields of train.json the site shows
 * (read with SQLite's json_extract; NAN / NULL when absent) and its curve */
struct lb_training {
    char *model_id, *train_json, *source_dir, *files_sha256;
    double params, dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab, ctx, tied;
    double steps, batch, micro_batch, lr, min_lr, warmup, weight_decay, clip, beta1, beta2, seed;
    double tokens_seen, corpus_tokens, corpus_documents, heldout_loss, heldout_documents,
        heldout_tokens, heldout_overlap_dropped, train_seconds;
    char *heldout, *heldout_protocol;
    const struct lb_model *model; /* NULL when models has no such id */
    struct lb_train_point *curve; /* borrowed slice of lb_data.train_points, by step */
    int n_curve;
    int group; /* the group whose base model this is, -1 none */
};

struct lb_data {
    struct lb_task_info *tasks; /* the board tasks, in column order */
    int n_tasks;
    struct lb_model *models;
    struct lb_recipe *recipes;
    struct lb_run *runs; /* by id */
    struct lb_score *scores;
    struct lb_taskdef *defs;
    struct lb_prov *prov;
    struct lb_sample *samples;
    int n_samples;
    struct lb_doctext *texts; /* by task, sha256, doc */
    int n_texts;
    struct lb_group *groups; /* by key */
    int *board;              /* run indices: average desc (NULL last), then id */
    struct lb_training *trainings;      /* by model id (schema 2; none in a version 1 file) */
    struct lb_train_point *train_points; /* by model id, step */
    int n_models, n_recipes, n_runs, n_scores, n_defs, n_prov, n_groups, n_board;
    int n_trainings, n_train_points;
    bool has_fixture_rows; /* some run has provenance key "fixture" */
    struct lb_rstat *rstat; /* per run and rank-by choice, from its records (stats.c) */
    double *rboot;          /* their resamples, for the ok runs with records only */
    double pair_crit[LB_BY_MAX]; /* the critical value simultaneous over every comparable pair of
                                    board runs on that choice (pair_n of them) */
    int pair_n[LB_BY_MAX];
    char *as_of;           /* latest finished_at, "" when none */
};

/* the text of document doc of task scored from the data file sha256, NULL when not recorded */
const struct lb_doctext *lb_doctext_find(const struct lb_data *d, const char *task,
                                         const char *sha256, int doc);
/* the paired statistics of every ok run against its baseline and the board's tie bands (stats.c,
 * called by lb_data_load); -1 with a message */
int lb_stats(struct lb_data *d);
/* the interval of x excludes 0 */
bool lb_significant(const struct lb_delta *x);
/* 1: run a's average is significantly above b's (paired over the same documents), -1 below, 0
 * neither or not comparable */
int lb_better_than(const struct lb_data *d, const struct lb_run *a, const struct lb_run *b);
/* the same for rank-by choice `by`: 1 when a is significantly better (higher accuracy, lower KLD
 * or perplexity), -1 worse, 0 neither or not comparable */
int lb_better_by(const struct lb_data *d, int by, const struct lb_run *a, const struct lb_run *b);
/* the rank-by choices: their count (LB_BY_TASK + n_tasks), key ("avg", "kld", "ppl", the task),
 * label, whether lower is better, a run's score (NAN none) and its delta against the baseline
 * (the KLD: the mean KLD itself, already a difference from the unquantized model) */
int lb_by_count(const struct lb_data *d);
const char *lb_by_key(const struct lb_data *d, int by);
const char *lb_by_label(const struct lb_data *d, int by);
bool lb_by_lower(int by);
double lb_by_score(const struct lb_run *r, int by);
const struct lb_delta *lb_by_delta(const struct lb_run *r, int by);

/* run r's per-document acc on task as bits for lowbit.js (hex, byte i/8 bit i%8 = the i-th
 * document by index, 1 right), sig = a hash of the data file's sha256 and the document indices
 * (two runs with the same sig were scored on the same documents), *n documents; NULL when the run
 * has no records of task or an acc other than 0 and 1. Owned (free). */
char *lb_acc_bits(const struct lb_run *r, const char *task, char sig[17], int *n);

/* chart_pareto's frontier of (x, y) (the indices into out, by x); with runs (runs[i] = the
 * lb_data.runs index of point i) a point is kept only when its run is significantly better than
 * the last point kept: more accurate on average (maximize), lower in llama.cpp perplexity
 * (minimize; y is then ppl_cpp) */
int lb_pareto(const struct lb_data *d, const int *runs, const double *x, const double *y, int n,
              bool maximize, int *out);

/* reads every table inside the current transaction of db; -1 with a message */
int lb_data_load(struct lb_data *d, struct sqlite3 *db);
void lb_data_release(struct lb_data *d);
/* the score (task, metric) of a run or NULL */
const struct lb_score *lb_run_score(const struct lb_run *r, const char *task, const char *metric);
const char *lb_run_prov(const struct lb_run *r, const char *key);
/* the label shown for a run: "display name · recipe" parts (borrowed) */
const char *lb_run_model_name(const struct lb_run *r);
const char *lb_run_algorithm(const struct lb_run *r);
/* its parameters: the run's count, else its model's; and the active ones from the same row
 * (NAN when not recorded) */
double lb_run_params(const struct lb_run *r);
double lb_run_params_active(const struct lb_run *r);
/* its recipe's method class ("" when the recipe row is missing) */
const char *lb_run_method_class(const struct lb_run *r);
/* the training of a group's base model, NULL when it was not trained by lowbit train */
const struct lb_training *lb_group_training(const struct lb_data *d, int group);
/* the label of a trained model: its display name, else its id (borrowed) */
const char *lb_training_name(const struct lb_training *t);
/* valid UTF-8 copy of s (NULL -> NULL): invalid bytes and XML-forbidden controls become U+FFFD;
 * returns owned memory (free) */
char *lb_clean_utf8(const char *s, size_t n);

/* ===== number formatting (format.c): every text that shows a number goes through these ===== */
/* "57.15" (a fraction shown in percent with 2 decimals), "" for NAN */
const char *fmt_pct(char *buf, size_t n, double frac);
/* "1.23 GB", "512 kB", "" for NAN (decimal units, as on the board) */
const char *fmt_bytes(char *buf, size_t n, double bytes);
/* "6.74 B", "15.2 M", "260 K" parameters */
const char *fmt_params(char *buf, size_t n, double p);
/* "12.9 B / 46.7 B" (active / total) when both are known and differ, else fmt_params(total) */
const char *fmt_params_active(char *buf, size_t n, double active, double total);
/* "12.3 s", "4.2 min", "1.50 h" */
const char *fmt_seconds(char *buf, size_t n, double s);
/* %.*g with sig significant digits, "" for NAN */
const char *fmt_g(char *buf, size_t n, double v, int sig);
/* a nullable integer: "128", "" for NAN */
const char *fmt_int(char *buf, size_t n, double v);
/* group size as on the board: "-1" (per channel) "128", "" n/a */
const char *fmt_group(char *buf, size_t n, double gs);
/* 1 -> "yes", 0 -> "no", NAN -> "" */
const char *fmt_bool(double v);
/* the value as a JSON/CSV number with 15 significant digits (SQLite's text form), "" for NAN */
const char *fmt_num15(char *buf, size_t n, double v);
/* s without a trailing UTF-8 sequence that snprintf cut short (in place): for labels cut to fit
 * a chart on purpose; text that must stay whole (titles, alt texts) uses fmt_dup */
char *utf8_trim(char *s);
/* printf into owned memory (free), whole: NULL with a message when out of memory */
char *fmt_dup(const char *fmt, ...) LB_PRINTF(1, 2);
/* strtod(fmt_num15(v)): what a reader of our CSV/JSON sees */
double num15(double v);

/* ===== pages (html.c): templates with named slots, serialized as polyglot XHTML ===== */
struct tmpl {
    char *name; /* "layout", "index" ... */
    xmlDocPtr doc;
};

struct site {
    const struct render_opts *opts;
    const struct lb_data *d;
    char *dir; /* the temporary directory being filled */
    struct tmpl *tmpls;
    int n_tmpls;
    int n_files;
    double bytes_csv, bytes_json, bytes_db; /* sizes shown beside the dataset links */
    double bytes_train_csv, bytes_train_json;
    struct chart_layout *lay; /* CHARTS_PER_GROUP per group, then size-accuracy, size-ppl,
                               * training-heldout */
    struct col_info *cols;    /* data/leaderboard.csv's columns (site_cols_build) */
    int *col_id;              /* each one's enum lb_col; -1 - t for board task t */
    char **col_docs;          /* the task columns' docs (owned) */
    int n_cols;
};

struct page {
    struct site *site;
    xmlDocPtr doc;
    int depth;           /* 0 for index.html, 1 for models/x.html: "../" prefixes */
    xmlNodePtr slots[24]; /* title, banner, main ... (see templates/) */
    const char *slot_names[24];
    int n_slots;
};

int site_templates_load(struct site *s);
void site_templates_release(struct site *s);
/* a page from layout.xhtml with the body template `body` (e.g. "index") in its main slot */
int page_new(struct page *p, struct site *s, const char *body, int depth, const char *title);
/* the element carrying data-slot="name", NULL (and a message) when the templates lack it */
xmlNodePtr page_slot(struct page *p, const char *name);
/* remove the element of slot name (and what it holds) from the page: a section with nothing to
 * show */
void page_drop_slot(struct page *p, const char *name);
/* serialize to <site dir>/<relpath> and free the page; -1 with a message */
int page_write(struct page *p, const char *relpath);
void page_release(struct page *p);

/* element helpers: all text is escaped by the serializer (xmlNewText); returns the new element */
xmlNodePtr h_el(xmlNodePtr parent, const char *tag, const char *text);
xmlNodePtr h_elc(xmlNodePtr parent, const char *tag, const char *cls, const char *text);
void h_attr(xmlNodePtr n, const char *name, const char *value);
void h_text(xmlNodePtr parent, const char *text);
/* formatted text, at most 2047 bytes: for numbers and fixed words, never for user strings (a cut
 * could split a UTF-8 sequence; those go through h_text/h_user) */
void h_textf(xmlNodePtr parent, const char *fmt, ...) LB_PRINTF(2, 3);
/* <a href="prefix+href">text</a> where prefix is "../" per depth for site-local links */
xmlNodePtr h_link(const struct page *p, xmlNodePtr parent, const char *href, const char *text);
/* a user string in a bidi-isolating <bdi> (RTL overrides stay inside) */
xmlNodePtr h_user(xmlNodePtr parent, const char *text);
/* site-relative path for a page at depth: "../models/x.html" */
const char *h_href(const struct page *p, char *buf, size_t n, const char *target);

/* ===== charts (chart.c): Cairo canvas written as SVG and as PNG at 2x ===== */
struct chart_box {
    double x0, y0, x1, y1;
};
struct chart {
    cairo_t *cr;
    double w, h;                     /* CSS pixels */
    struct chart_box plot;           /* the data area */
    struct chart_box *labels;        /* every text drawn, for the overlap test */
    int n_labels, cap_labels;
    int oom;
};
typedef void (*chart_draw_fn)(struct chart *c, const void *data);
/* where the chart's texts landed, for tests: owned by the caller (free(labels)) */
struct chart_layout {
    struct chart_box *labels;
    int n_labels;
    double w, h;
};
/* draw(c, data) onto an SVG surface (name.svg, with <title>/<desc> from title and desc) and onto
 * a 2x image surface (name.png), under <site dir>/charts/. layout (nullable) receives the label
 * boxes of the SVG pass. -1 with a message. */
int chart_write(struct site *s, const char *name, double w, double h, const char *title,
                const char *desc, chart_draw_fn draw, const void *data,
                struct chart_layout *layout);
/* text at (x, y) anchored by ax (0 left, 0.5 centre, 1 right) and ay (0 top, 0.5 middle, 1
 * baseline-bottom); size in px; bold; records its box. Returns the box. */
struct chart_box chart_text(struct chart *c, double x, double y, double ax, double ay,
                            double size, bool bold, const char *text);
/* the box text would take, without drawing or recording */
struct chart_box chart_text_box(struct chart *c, double x, double y, double ax, double ay,
                                double size, bool bold, const char *text);
double chart_text_width(struct chart *c, double size, bool bold, const char *text);
/* true when box overlaps a recorded label (with pad px of air) or leaves the canvas */
bool chart_box_collides(const struct chart *c, struct chart_box b, double pad);
bool chart_boxes_overlap(struct chart_box a, struct chart_box b, double pad);
/* "nice" ticks covering [lo, hi]: at most max_ticks; returns count, writes step */
int chart_ticks(double lo, double hi, int max_ticks, double *t0, double *step);
/* Okabe-Ito colours: index 0..7 (black, orange, sky blue, bluish green, yellow, blue,
 * vermillion, reddish purple) */
void chart_okabe_ito(int i, double rgb[3]);
/* the palette index of key: its position in keys[0..n) (n <= 8), else a stable index 1..7 from
 * its name; one index = one colour and one marker */
int chart_palette_index(const char *const *keys, int n, const char *key);
/* a fixed colour and marker per algorithm (fp, rtn, gptq, awq, autoround, bnb, gguf, aqlm) */
int chart_algo_index(const char *algorithm);
void chart_set_rgb(cairo_t *cr, const double rgb[3]);
/* marker shape k (0 circle, 1 square, 2 diamond, 3 triangle up, 4 triangle down, 5 plus,
 * 6 cross, 7 star) filled with rgb, dark outline */
void chart_marker(cairo_t *cr, int k, double x, double y, double r, const double rgb[3]);

/* text cut to maxw px with a trailing ellipsis (UTF-8 safe); returns text itself when it fits,
 * else buf */
const char *chart_fit(struct chart *c, double size, bool bold, const char *text, double maxw,
                      char *buf, size_t n);

/* what the per-model charts show, computed once for the chart and for its data table */
#define BARS_MAX 12
struct bars_data {
    int n_bits, n_algos;
    double bits[BARS_MAX];      /* nominal bit widths, ascending */
    const char *algos[BARS_MAX]; /* algorithms, in palette order */
    double val[BARS_MAX][BARS_MAX]; /* [algo][bits]: best average (0..1), NAN none */
    int run[BARS_MAX][BARS_MAX];    /* the run index giving it, -1 none */
    double baseline;            /* the baseline's average, NAN none */
    const char *baseline_label; /* "fp16 baseline" ... */
};
void bars_compute(const struct lb_data *d, int group, struct bars_data *b);

struct cost_row {
    const char *algo;
    int n;
    double t_med, t_min, t_max;       /* quant_seconds */
    double m_med, m_min, m_max;       /* quant_peak_rss_mb */
};
/* one row per algorithm (fp excluded) with runs in the group; returns the count (<= max) */
int cost_compute(const struct lb_data *d, int group, struct cost_row *rows, int max);
/* rows of the heatmap: the group's ok runs with an average, baseline excluded, by rank */
int heat_rows(const struct lb_data *d, int group, int *out, int max);
#define HEAT_MAX_ROWS 40

/* the charts of the site (charts.c); each writes charts/<name>.svg|png */
/* every chart of the site, drawn in parallel (OpenMP tasks) with the rest of the site; the
 * layouts are kept in s->lay (CHARTS_PER_GROUP per group, then the CHARTS_GLOBAL global ones).
 * The training charts (<slug>-training, training-heldout) exist only for trained models: their
 * layout stays zero (w = h = 0) otherwise. */
#define CHARTS_PER_GROUP 7
#define CHARTS_GLOBAL 3
int charts_group(struct site *s, int group, struct chart_layout *lay_bars,
                 struct chart_layout *lay_bpw, struct chart_layout *lay_heat,
                 struct chart_layout *lay_cost, struct chart_layout *lay_train,
                 struct chart_layout *lay_speed, struct chart_layout *lay_class);
/* the runs of group g the class chart shows (ok, with a KLD and bits per weight), in run-id
 * order, into out (G->n_runs entries); returns the count */
int class_runs(const struct lb_data *d, int g, int *out);
/* the runs of group g the speed chart compares: ok runs with a prefill speed, all measured on
 * one host (CPU model and thread count, as recorded), the host with the most such runs (ties:
 * the first by CPU name, then threads). out (G->n_runs entries) gets them by prefill speed;
 * *cpu and *threads name the host, *n_other counts the runs measured elsewhere, *kld is true when
 * the quality axis is the mean KLD (some run has one), false for the average accuracy. Returns
 * the count (runs without the chosen quality measure are left out). */
int speed_runs(const struct lb_data *d, int g, int *out, const char **cpu, double *threads,
               int *n_other, bool *kld);
int charts_global(struct site *s, struct chart_layout *lay_size, struct chart_layout *lay_ppl,
                  struct chart_layout *lay_train);
/* indices of d->trainings in the overview's order (parameters ascending, unknown last, then id);
 * out has n_trainings entries; returns the count */
int training_order(const struct lb_data *d, int *out);
/* the Pareto frontier of points (x smaller is better, y larger is better when maximize): writes
 * the indices on the frontier in x order to out, returns their count */
int chart_pareto(const double *x, const double *y, int n, bool maximize, int *out);

/* ===== datasets (datasets.c) ===== */
enum col_type { COL_TEXT, COL_INT, COL_REAL };
struct col_info {
    const char *name; /* CSV header = JSON key */
    enum col_type type;
    const char *doc; /* one line, shown on about.html */
};
/* the columns of data/leaderboard.csv and of each row of data/leaderboard.json, in order, into
 * s->cols (the fixed ones around one per board task); -1 with a message */
int site_cols_build(struct site *s);
void site_cols_release(struct site *s);
/* the columns of data/training_curves.csv and of each row of data/training_curves.json */
extern const struct col_info tc_cols[];
extern const int tc_n_cols;
int datasets_write(struct site *s, struct sqlite3 *db);
/* spreadsheet formula defusing: true when a text cell starts with = + - @ TAB or CR */
bool csv_needs_apostrophe(const char *s);
/* JSON text of the row data embedded in index.html (escaped for a <script> element: no < > &);
 * returns owned memory (free) or NULL with a message */
char *board_data_json(const struct site *s);

/* ===== pages (pages_*.c) ===== */
/* a delta cell: "+1.23 [-0.50, +2.90]" (x·scale, digits decimals), class sig / ns, "≈" before an
 * estimate whose interval includes 0, "baseline" for the baseline itself, "n/a" for runs scored
 * on other documents */
xmlNodePtr page_delta_td(xmlNodePtr tr, const struct lb_delta *x, double scale, int digits,
                         bool is_baseline);
/* "Download: leaderboard.csv (12 kB) · ..." links */
void page_downloads(struct page *p, xmlNodePtr parent);
/* <figure> with the chart (SVG, PNG fallback at 2x), alt text and a caption; returns the
 * figcaption so the caller can add a data table */
xmlNodePtr page_figure(struct page *p, xmlNodePtr parent, const char *chart, double w, double h,
                       const char *alt, const char *caption);
/* "Pareto frontier, in words:" the frontier of runs[0..n) by (x asc, y best) as a list in the
 * caption; xfmt/yfmt describe a point ("4.25 bits/weight", "54.9%") */
void page_frontier(struct page *p, xmlNodePtr cap, const int *runs, const double *x,
                   const double *y, int n, bool maximize, const char *what);
/* <a href="runs/<id>.html"><bdi>model name</bdi> · <bdi>recipe</bdi></a>: each user string in
 * its own isolate, so an RTL override in a name cannot reorder the recipe after it */
xmlNodePtr page_run_link(struct page *p, xmlNodePtr parent, const struct lb_run *r);
/* the model-type icon of Intel's board (pretrained, fine-tuned, chat, merge) */
void page_type_icon(xmlNodePtr parent, const char *model_type);
/* a <td> with text and class "num" when numeric */
xmlNodePtr page_td(xmlNodePtr tr, const char *text, bool num);
/* a task definition's first three cells: the task, its dataset file and the file's sha256 */
void page_taskdef_cells(xmlNodePtr tr, const struct lb_taskdef *t);
int page_index(struct site *s);
int pages_models(struct site *s);
int pages_runs(struct site *s);
int page_compare(struct site *s);
int page_about(struct site *s);

/* ===== site files (site.c) ===== */
/* write len bytes to <site dir>/<relpath> (parent directories made); -1 with a message */
int site_write_file(struct site *s, const char *relpath, const void *data, size_t len);
/* the command that reproduces a run, whole (owned memory: free; NULL with a message when out of
 * memory): provenance "repro.command" when the pipeline stored one, else `lowbit job --model-id
 * M --recipe-id R [--full | --limit N]` (shell-quoted) */
char *site_repro_command(const struct lb_run *r);
#endif
