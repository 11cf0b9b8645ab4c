/* render/datasets.c: data/leaderboard.csv (libcsv), data/leaderboard.json (jansson),
 * data/training_curves.csv|json (the curves of models trained by lowbit train), data/lowbit.db
 * (SQLite backup API), and the row data embedded in index.html.
 *
 * One column list (LB_COLS) feeds the CSV header, the JSON keys and the documentation table on
 * about.html, so they cannot drift apart (house style 5).
 *
 * CSV: RFC 4180 (comma, CRLF, text fields always quoted by csv_fwrite with "" for a quote, numbers
 * bare). Spreadsheet formula injection: a text cell that begins with = + - @ TAB or CR gets a
 * leading apostrophe ('=cmd|...), which spreadsheets show as text and never evaluate. Numeric
 * cells are never prefixed (they are written by us, e.g. -0.5). The JSON keeps every string exactly
 * as stored. Numbers carry 15 significant digits in both (the text form SQLite itself uses). */
#include <csv.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kernels/base/json.h"
#include "render/render_impl.h"

#define LB_COLS(X)                                                                                 \
    X(RUN_ID, "run_id", COL_INT, "the run's id in data/lowbit.db (runs.id); details: runs/<run_id>.html") \
    X(RANK, "rank", COL_INT, "position on the board (average descending, then run_id); empty for failed runs") \
    X(STATUS, "status", COL_TEXT, "ok, or failed (then see error)")                                \
    X(MODEL_ID, "model_id", COL_TEXT, "the model's id (models.csv)")                               \
    X(MODEL, "model", COL_TEXT, "the model's display name")                                        \
    X(BASE_MODEL, "base_model", COL_TEXT, "the base model it belongs to (its own id for a base)")  \
    X(MODEL_TYPE, "model_type", COL_TEXT, "pretrained, fine-tuned, chat or merge")                 \
    X(FAMILY, "family", COL_TEXT, "architecture family (llama, qwen2, tinystories ...)")           \
    X(RECIPE_ID, "recipe_id", COL_TEXT, "the recipe's id (recipes.csv)")                           \
    X(ALGORITHM, "algorithm", COL_TEXT, "fp, rtn, gptq, awq, autoround, bnb, gguf or aqlm")         \
    X(METHOD_CLASS, "method_class", COL_TEXT, "the PTQ benchmark's method class: baseline, rounding, compensation, salience, optimization, rotation, codebook or data type (a combination by its distinctive part: QuaRot + GPTQ is rotation)") \
    X(WEIGHT_DTYPE, "weight_dtype", COL_TEXT, "int2 ... int8, nf4, fp4, float16, bfloat16, float32, or the GGUF mix") \
    X(BITS, "bits", COL_REAL, "nominal bits per weight of the recipe")                             \
    X(GROUP_SIZE, "group_size", COL_INT, "quantization group size; -1 = per channel; empty = n/a")  \
    X(SYM, "sym", COL_INT, "1 symmetric, 0 asymmetric, empty n/a")                                 \
    X(DOUBLE_QUANT, "double_quant", COL_INT, "1 when the scales are quantized again (bnb)")        \
    X(COMPUTE_DTYPE, "compute_dtype", COL_TEXT, "fp32, fp16, bf16 or int8: the activations' type") \
    X(N_PARAMS, "n_params", COL_INT, "parameters of the model (a mixture of experts: all of them)") \
    X(N_PARAMS_ACTIVE, "n_params_active", COL_INT, "parameters a token goes through: n_params for a dense model, the shared ones plus the experts used per token for a mixture of experts; empty when not recorded (runs collected before schema version 5)") \
    X(SIZE_BYTES, "size_bytes", COL_INT, "size of the quantized model on disk, bytes")             \
    X(BITS_PER_WEIGHT, "bits_per_weight", COL_REAL, "8 x weight bytes / parameters, measured on the artifact") \
    X(AVERAGE, "average", COL_REAL, "mean of the ten task accuracies (0..1); empty unless all ten ran") \
    X(TASKS, NULL, COL_REAL, NULL) /* one column per board task (the tasks table) */        \
    X(PPL, "wikitext_word_perplexity", COL_REAL, "wikitext word perplexity (lm-eval rolling protocol); lower is better") \
    X(KLD, "kld_mean", COL_REAL, "mean KL divergence of the next-token distribution from the unquantized model's (nats)") \
    X(QUANT_SECONDS, "quant_seconds", COL_REAL, "quantization wall time, seconds (0 for fp baselines)") \
    X(QUANT_RSS, "quant_peak_rss_mb", COL_REAL, "peak resident memory while quantizing, MB")       \
    X(EVAL_SECONDS, "eval_seconds", COL_REAL, "evaluation wall time, seconds")                     \
    X(EVAL_RSS, "eval_peak_rss_mb", COL_REAL, "peak resident memory while evaluating, MB")         \
    X(PREFILL, "prefill_tps", COL_REAL, "prefill tokens/s of a 512-token context on host_cpu with the run's threads") \
    X(DECODE, "decode_tps", COL_REAL, "decode tokens/s after a 256-token prompt, same host and threads") \
    X(RUN_MEM, "run_memory_mb", COL_REAL, "memory to run at context 512: weights + KV cache + forward scratch, MB") \
    X(THREADS, "threads", COL_INT, "threads the run used (its speeds are for this count on host_cpu)") \
    X(CODE_VERSION, "code_version", COL_TEXT, "git describe of the lowbit that produced the row")  \
    X(HOST_CPU, "host_cpu", COL_TEXT, "the CPU it ran on")                                          \
    X(FINISHED_AT, "finished_at", COL_TEXT, "when the run finished, ISO 8601 UTC")                 \
    X(JOB_KEY, "job_key", COL_TEXT, "content hash of everything that determines the numbers")      \
    X(ERROR, "error", COL_TEXT, "what failed, for failed runs")                                    \
    X(FAILURE, "failure", COL_TEXT, "failed runs: environment (disk, memory, a limit, a worker killed from outside; the next run retries it) or input") \
    X(DETAILS, "details", COL_TEXT, "the run's page, relative to the site root")

enum lb_col {
#define X(e, name, type, doc) LB_COL_##e,
    LB_COLS(X)
#undef X
        LB_COL_COUNT
};

static const struct col_info fixed_cols[] = {
#define X(e, name, type, doc) [LB_COL_##e] = {name, type, doc},
    LB_COLS(X)
#undef X
};

int site_cols_build(struct site *s) {
    const struct lb_data *d = s->d;
    const int n = LB_COL_COUNT - 1 + d->n_tasks;
    s->cols = calloc((size_t)n, sizeof *s->cols);
    s->col_id = calloc((size_t)n, sizeof *s->col_id);
    s->col_docs = calloc((size_t)d->n_tasks + 1, sizeof *s->col_docs);
    if (!s->cols || !s->col_id || !s->col_docs) return err("render: out of memory");
    for (int e = 0; e < LB_COL_COUNT; e++) {
        if (e != LB_COL_TASKS) {
            s->col_id[s->n_cols] = e;
            s->cols[s->n_cols++] = fixed_cols[e];
            continue;
        }
        for (int t = 0; t < d->n_tasks; t++) {
            const struct lb_task_info *ti = &d->tasks[t];
            if (asprintf(&s->col_docs[t], "%s %s (0..1), 0-shot", ti->title, ti->metric) < 0) {
                s->col_docs[t] = NULL;
                return err("render: out of memory");
            }
            s->col_id[s->n_cols] = -1 - t;
            s->cols[s->n_cols++] = (struct col_info){ti->key, COL_REAL, s->col_docs[t]};
        }
    }
    return 0;
}

void site_cols_release(struct site *s) {
    for (int t = 0; s->col_docs && t < s->d->n_tasks; t++) free(s->col_docs[t]);
    free(s->col_docs);
    free(s->cols);
    free(s->col_id);
    s->cols = NULL;
    s->col_id = NULL;
    s->col_docs = NULL;
    s->n_cols = 0;
}

/* a cell: text (NULL = empty) or number (NAN = empty) */
struct cell {
    const char *text;
    double num;
    char buf[64];
};

/* the cell of column col (an index into s->cols) */
static void cell_of(const struct site *s, const struct lb_run *r, int col, struct cell *c) {
    const struct lb_model *m = r->model;
    c->text = NULL;
    c->num = NAN;
    col = s->col_id[col];
    if (col < 0) { /* board task -1 - col */
        c->num = r->acc[-1 - col];
        return;
    }
    const struct lb_recipe *k = r->recipe;
    switch ((enum lb_col)col) {
    case LB_COL_RUN_ID: c->num = (double)r->id; break;
    case LB_COL_RANK: c->num = r->rank ? r->rank : NAN; break;
    case LB_COL_STATUS: c->text = r->status; break;
    case LB_COL_MODEL_ID: c->text = r->model_id; break;
    case LB_COL_MODEL: c->text = lb_run_model_name(r); break;
    case LB_COL_BASE_MODEL: c->text = s->d->groups[r->group].key; break;
    case LB_COL_MODEL_TYPE: c->text = m ? m->model_type : NULL; break;
    case LB_COL_FAMILY: c->text = m ? m->family : NULL; break;
    case LB_COL_RECIPE_ID: c->text = r->recipe_id; break;
    case LB_COL_ALGORITHM: c->text = k ? k->algorithm : NULL; break;
    case LB_COL_METHOD_CLASS: c->text = k ? k->method_class : NULL; break;
    case LB_COL_WEIGHT_DTYPE: c->text = k ? k->weight_dtype : NULL; break;
    case LB_COL_BITS: c->num = k ? k->bits : NAN; break;
    case LB_COL_GROUP_SIZE: c->num = k ? k->group_size : NAN; break;
    case LB_COL_SYM: c->num = k ? k->sym : NAN; break;
    case LB_COL_DOUBLE_QUANT: c->num = k ? k->double_quant : NAN; break;
    case LB_COL_COMPUTE_DTYPE: c->text = k ? k->compute_dtype : NULL; break;
    case LB_COL_N_PARAMS: c->num = lb_run_params(r); break;
    case LB_COL_N_PARAMS_ACTIVE: c->num = lb_run_params_active(r); break;
    case LB_COL_SIZE_BYTES: c->num = r->artifact_bytes; break;
    case LB_COL_BITS_PER_WEIGHT: c->num = r->bits_per_weight; break;
    case LB_COL_AVERAGE: c->num = r->average; break;
    case LB_COL_TASKS: BUG("column %d", col);
    case LB_COL_PPL: c->num = r->ppl; break;
    case LB_COL_KLD: c->num = r->kld; break;
    case LB_COL_QUANT_SECONDS: c->num = r->quant_seconds; break;
    case LB_COL_QUANT_RSS: c->num = r->quant_peak_rss_mb; break;
    case LB_COL_EVAL_SECONDS: c->num = r->eval_seconds; break;
    case LB_COL_EVAL_RSS: c->num = r->eval_peak_rss_mb; break;
    case LB_COL_PREFILL: c->num = r->prefill_tps; break;
    case LB_COL_DECODE: c->num = r->decode_tps; break;
    case LB_COL_RUN_MEM: c->num = r->run_memory_mb; break;
    case LB_COL_THREADS: c->num = r->threads; break;
    case LB_COL_CODE_VERSION: c->text = r->code_version; break;
    case LB_COL_HOST_CPU: c->text = r->host_cpu; break;
    case LB_COL_FINISHED_AT: c->text = r->finished_at; break;
    case LB_COL_JOB_KEY: c->text = r->job_key; break;
    case LB_COL_ERROR: c->text = r->error; break;
    case LB_COL_FAILURE: c->text = r->failure; break;
    case LB_COL_DETAILS: snprintf(c->buf, sizeof c->buf, "runs/%lld.html", (long long)r->id);
        c->text = c->buf;
        break;
    case LB_COL_COUNT: BUG("column %d", col);
    }
}


/* every run: the board in rank order, then the failed runs by id */
static int *dataset_order(const struct lb_data *d, int *n) {
    int *o = xcalloc((size_t)d->n_runs + 1, sizeof *o, "rows");
    if (!o) return NULL;
    int k = 0;
    for (int i = 0; i < d->n_board; i++) o[k++] = d->board[i];
    for (int i = 0; i < d->n_runs; i++)
        if (!d->runs[i].ok) o[k++] = i;
    *n = k;
    return o;
}

/* ------------------------------------------------------------------ CSV */

bool csv_needs_apostrophe(const char *s) {
    return s && (*s == '=' || *s == '+' || *s == '-' || *s == '@' || *s == '\t' || *s == '\r');
}

static void csv_text(FILE *f, const char *s) {
    if (!s) return;
    if (csv_needs_apostrophe(s)) {
        size_t n = strlen(s);
        char *t = malloc(n + 2);
        if (!t) return;
        t[0] = '\'';
        memcpy(t + 1, s, n + 1);
        csv_fwrite(f, t, n + 1);
        free(t);
    } else {
        csv_fwrite(f, s, strlen(s));
    }
}

static int write_csv(struct site *s) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return err("render: out of memory (csv)");
    int n = 0, *order = dataset_order(s->d, &n);
    if (!order) {
        fclose(f);
        free(buf);
        return -1;
    }
    for (int c = 0; c < s->n_cols; c++) {
        if (c) fputc(',', f);
        fputs(s->cols[c].name, f);
    }
    fputs("\r\n", f);
    for (int i = 0; i < n; i++) {
        const struct lb_run *r = &s->d->runs[order[i]];
        for (int c = 0; c < s->n_cols; c++) {
            struct cell v;
            cell_of(s, r, c, &v);
            if (c) fputc(',', f);
            if (s->cols[c].type == COL_TEXT) csv_text(f, v.text);
            else if (!isnan(v.num)) {
                char nb[40];
                fputs(s->cols[c].type == COL_INT ? fmt_int(nb, sizeof nb, v.num)
                                                 : fmt_num15(nb, sizeof nb, v.num),
                      f);
            }
        }
        fputs("\r\n", f);
    }
    free(order);
    if (fclose(f)) {
        free(buf);
        return err("render: out of memory (csv)");
    }
    int rc = site_write_file(s, "data/leaderboard.csv", buf, len);
    s->bytes_csv = (double)len;
    free(buf);
    return rc;
}

/* ------------------------------------------------------------------ JSON */

static json_t *jnum(double v) {
    return isnan(v) || isinf(v) ? json_null() : json_real(v);
}
static json_t *jint(double v) {
    return isnan(v) ? json_null() : json_integer((json_int_t)v);
}
static json_t *row_json(const struct site *s, const struct lb_run *r) {
    json_t *o = json_object();
    for (int c = 0; c < s->n_cols; c++) {
        struct cell v;
        cell_of(s, r, c, &v);
        json_t *j = s->cols[c].type == COL_TEXT  ? jnew_str(v.text)
                    : s->cols[c].type == COL_INT ? jint(v.num)
                                                 : jnum(v.num);
        json_object_set_new(o, s->cols[c].name, j);
    }
    /* per-task details as arrays, their fields named once at the top (score_fields,
     * task_def_fields): a 10,000-run file is half the size and twice as fast to write */
    json_t *sc = json_array();
    for (int i = 0; i < r->n_scores; i++) {
        const struct lb_score *x = &r->scores[i];
        json_t *a = json_array();
        json_array_append_new(a, json_string(x->task));
        json_array_append_new(a, json_string(x->metric));
        json_array_append_new(a, jnum(x->value));
        json_array_append_new(a, jnum(x->stderr_));
        json_array_append_new(a, jint(x->n));
        json_array_append_new(sc, a);
    }
    json_object_set_new(o, "scores", sc);
    json_t *td = json_array();
    for (int i = 0; i < r->n_defs; i++) {
        const struct lb_taskdef *t = &r->defs[i];
        json_t *a = json_array();
        json_array_append_new(a, json_string(t->task));
        json_array_append_new(a, jnew_str(t->dataset_file));
        json_array_append_new(a, jnew_str(t->dataset_sha256));
        json_array_append_new(a, jint(t->n_docs));
        json_array_append_new(a, jint(t->n_docs_full));
        json_array_append_new(a, jint(t->limit_n));
        json_array_append_new(a, jint(t->seed));
        json_array_append_new(a, jint(t->num_fewshot));
        json_array_append_new(a, jint(t->add_bos));
        json_array_append_new(a, jint(t->ctx));
        json_array_append_new(td, a);
    }
    json_object_set_new(o, "task_defs", td);
    json_t *pv = json_object();
    for (int i = 0; i < r->n_prov; i++)
        json_object_set_new(pv, r->prov[i].key, jnew_str(r->prov[i].value));
    json_object_set_new(o, "provenance", pv);
    const struct lb_recipe *k = r->recipe;
    json_t *knobs = NULL;
    if (k && k->knobs) knobs = json_loads(k->knobs, JSON_DECODE_ANY, NULL);
    if (!knobs && k && k->knobs) knobs = json_string(k->knobs); /* not JSON: kept as text */
    json_object_set_new(o, "recipe_knobs", knobs ? knobs : json_null());
    return o;
}

static int write_json(struct site *s) {
    int n = 0, *order = dataset_order(s->d, &n);
    if (!order) return -1;
    json_t *root = json_object(), *tasks = json_array(), *cols = json_array(),
           *rows = json_array();
    json_object_set_new(root, "schema", json_string("lowbit-leaderboard/1"));
    json_object_set_new(root, "fixture", json_boolean(s->opts->fixture));
    json_object_set_new(root, "as_of", json_string(s->d->as_of));
    for (int t = 0; t < s->d->n_tasks; t++)
        json_array_append_new(tasks, json_pack("{s:s,s:s,s:s,s:i}", "task", s->d->tasks[t].key,
                                               "label", s->d->tasks[t].label, "metric",
                                               s->d->tasks[t].metric, "num_fewshot", 0));
    json_object_set_new(root, "tasks", tasks);
    for (int c = 0; c < s->n_cols; c++)
        json_array_append_new(cols, json_pack("{s:s,s:s,s:s}", "name", s->cols[c].name, "type",
                                              s->cols[c].type == COL_TEXT  ? "string"
                                              : s->cols[c].type == COL_INT ? "integer"
                                                                           : "number",
                                              "doc", s->cols[c].doc));
    json_object_set_new(root, "columns", cols);
    json_object_set_new(root, "score_fields",
                        json_pack("[s,s,s,s,s]", "task", "metric", "value", "stderr", "n"));
    json_object_set_new(root, "task_def_fields",
                        json_pack("[s,s,s,s,s,s,s,s,s,s]", "task", "dataset_file",
                                  "dataset_sha256", "n_docs", "n_docs_full", "limit", "seed",
                                  "num_fewshot", "add_bos", "ctx"));
    for (int i = 0; i < n; i++) json_array_append_new(rows, row_json(s, &s->d->runs[order[i]]));
    json_object_set_new(root, "rows", rows);
    free(order);
    char *text = json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(15));
    json_decref(root);
    if (!text) return err("render: out of memory (json)");
    size_t len = strlen(text);
    int rc = site_write_file(s, "data/leaderboard.json", text, len);
    s->bytes_json = (double)len;
    free(text);
    return rc;
}

/* ------------------------------------------------------------------ training curves */

/* data/training_curves.csv and the rows of data/training_curves.json: one row per point of the
 * training curve of every model trained by lowbit train (tables training_curve, training), by
 * model id then step. Same conventions as the leaderboard's files. */
#define TC_COLS(X)                                                                                 \
    X(MODEL_ID, "model_id", COL_TEXT, "the trained model's id (models.csv); its settings (train.json) are in training_curves.json and on its model page") \
    X(STEP, "step", COL_INT, "optimizer steps done")                                              \
    X(TOKENS, "tokens", COL_INT, "training tokens seen by then")                                   \
    X(TRAIN_LOSS, "train_loss", COL_REAL, "mean training loss over the steps since the previous row, nats/token") \
    X(HELDOUT_LOSS, "heldout_loss", COL_REAL, "held-out loss at this step, nats/token (the last row of a model scores every held-out document)") \
    X(LR, "lr", COL_REAL, "learning rate at this step")                                            \
    X(SECONDS, "seconds", COL_REAL, "training wall time so far, seconds")

enum tc_col {
#define X(e, name, type, doc) TC_COL_##e,
    TC_COLS(X)
#undef X
        TC_COL_COUNT
};

const struct col_info tc_cols[] = {
#define X(e, name, type, doc) [TC_COL_##e] = {name, type, doc},
    TC_COLS(X)
#undef X
};
const int tc_n_cols = TC_COL_COUNT;

static void tc_cell_of(const struct lb_training *t, const struct lb_train_point *q, int col,
                       struct cell *c) {
    c->text = NULL;
    c->num = NAN;
    switch ((enum tc_col)col) {
    case TC_COL_MODEL_ID: c->text = t->model_id; break;
    case TC_COL_STEP: c->num = q->step; break;
    case TC_COL_TOKENS: c->num = q->tokens; break;
    case TC_COL_TRAIN_LOSS: c->num = q->train_loss; break;
    case TC_COL_HELDOUT_LOSS: c->num = q->heldout_loss; break;
    case TC_COL_LR: c->num = q->lr; break;
    case TC_COL_SECONDS: c->num = q->seconds; break;
    case TC_COL_COUNT: BUG("column %d", col);
    }
}

static int write_training_csv(struct site *s) {
    const struct lb_data *d = s->d;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return err("render: out of memory (csv)");
    for (int c = 0; c < tc_n_cols; c++) {
        if (c) fputc(',', f);
        fputs(tc_cols[c].name, f);
    }
    fputs("\r\n", f);
    for (int i = 0; i < d->n_trainings; i++) {
        const struct lb_training *t = &d->trainings[i];
        for (int k = 0; k < t->n_curve; k++) {
            for (int c = 0; c < tc_n_cols; c++) {
                struct cell v;
                tc_cell_of(t, &t->curve[k], c, &v);
                if (c) fputc(',', f);
                if (tc_cols[c].type == COL_TEXT) csv_text(f, v.text);
                else if (!isnan(v.num)) {
                    char nb[40];
                    fputs(tc_cols[c].type == COL_INT ? fmt_int(nb, sizeof nb, v.num)
                                                     : fmt_num15(nb, sizeof nb, v.num),
                          f);
                }
            }
            fputs("\r\n", f);
        }
    }
    if (fclose(f)) {
        free(buf);
        return err("render: out of memory (csv)");
    }
    int rc = site_write_file(s, "data/training_curves.csv", buf, len);
    s->bytes_train_csv = (double)len;
    free(buf);
    return rc;
}

static int write_training_json(struct site *s) {
    const struct lb_data *d = s->d;
    json_t *root = json_object(), *cols = json_array(), *models = json_array(),
           *rows = json_array();
    json_object_set_new(root, "schema", json_string("lowbit-training-curves/1"));
    json_object_set_new(root, "fixture", json_boolean(s->opts->fixture));
    json_object_set_new(root, "as_of", json_string(d->as_of));
    for (int c = 0; c < tc_n_cols; c++)
        json_array_append_new(cols, json_pack("{s:s,s:s,s:s}", "name", tc_cols[c].name, "type",
                                              tc_cols[c].type == COL_TEXT  ? "string"
                                              : tc_cols[c].type == COL_INT ? "integer"
                                                                           : "number",
                                              "doc", tc_cols[c].doc));
    json_object_set_new(root, "columns", cols);
    for (int i = 0; i < d->n_trainings; i++) {
        const struct lb_training *t = &d->trainings[i];
        json_t *train = t->train_json ? json_loads(t->train_json, JSON_DECODE_ANY, NULL) : NULL;
        if (!train && t->train_json) train = json_string(t->train_json); /* not JSON: as text */
        json_array_append_new(models, json_pack("{s:s,s:o,s:o,s:o}", "model_id", t->model_id,
                                                "source_dir", jnew_str(t->source_dir),
                                                "files_sha256", jnew_str(t->files_sha256), "train",
                                                train ? train : json_null()));
        for (int k = 0; k < t->n_curve; k++) {
            json_t *o = json_object();
            for (int c = 0; c < tc_n_cols; c++) {
                struct cell v;
                tc_cell_of(t, &t->curve[k], c, &v);
                json_object_set_new(o, tc_cols[c].name,
                                    tc_cols[c].type == COL_TEXT  ? jnew_str(v.text)
                                    : tc_cols[c].type == COL_INT ? jint(v.num)
                                                                 : jnum(v.num));
            }
            json_array_append_new(rows, o);
        }
    }
    json_object_set_new(root, "models", models);
    json_object_set_new(root, "rows", rows);
    char *text = json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(15));
    json_decref(root);
    if (!text) return err("render: out of memory (json)");
    size_t len = strlen(text);
    int rc = site_write_file(s, "data/training_curves.json", text, len);
    s->bytes_train_json = (double)len;
    free(text);
    return rc;
}

/* ------------------------------------------------------------------ index.html data */

char *board_data_json(const struct site *s) {
    const struct lb_data *d = s->d;
    static const char *const cols[] = {"id",    "rank", "model", "recipe", "algorithm",
                                       "wdtype", "cdtype", "group", "dq",   "bits",
                                       "size",  "params", "avg",  "ppl",    "kld",
                                       "bpw",   "qsec", "type", "base",  "tasks",
                                       "davg",  "dlo",  "dhi",  "band", "prefill", "decode",
                                       "mem",   "pplc", "by",   "bits", "class", "pact"};
    json_t *root = json_object(), *jc = json_array(), *jt = json_array(), *rows = json_array();
    for (size_t i = 0; i < LB_ARRAY_LEN(cols); i++) json_array_append_new(jc, json_string(cols[i]));
    for (int t = 0; t < d->n_tasks; t++) json_array_append_new(jt, json_string(d->tasks[t].key));
    json_object_set_new(root, "cols", jc);
    json_object_set_new(root, "tasks", jt);
    /* the rank-by choices; each row's "by" holds, per choice, [rank, band, state, delta, lo, hi]
     * (state 0: no delta, 1: delta against the baseline with its interval, 2: scored on other
     * documents, 3: the baseline itself) */
    json_t *jb = json_array();
    for (int by = 0; by < lb_by_count(d); by++)
        json_array_append_new(jb, json_pack("{s:s, s:s, s:b}", "key", lb_by_key(d, by), "label",
                                            lb_by_label(d, by), "lower", lb_by_lower(by)));
    json_object_set_new(root, "by", jb);
    for (int k = 0; k < d->n_board; k++) {
        const struct lb_run *r = &d->runs[d->board[k]];
        const struct lb_recipe *c = r->recipe;
        json_t *acc = json_array();
        for (int t = 0; t < d->n_tasks; t++) json_array_append_new(acc, jnum(r->acc[t]));
        json_t *by = json_array();
        for (int b = 0; b < lb_by_count(d); b++) {
            const struct lb_delta *x = lb_by_delta(r, b);
            const bool ok = x->state == LB_D_OK;
            const int state = r->baseline == r ? 3
                              : x->state == LB_D_APART       ? 2
                                                             : ok;
            json_array_append_new(by, json_pack("[i,i,i,o,o,o]", r->by_rank[b], r->by_band[b],
                                                state, jnum(ok ? x->delta : NAN),
                                                jnum(ok ? x->lo : NAN), jnum(ok ? x->hi : NAN)));
        }
        /* per board task [documents' signature, acc bits in hex] (null: none), for the
         * intervals and bands lowbit.js computes under custom weights */
        json_t *bits = json_null();
        for (int t = 0; t < d->n_tasks; t++) {
            char sig[17];
            int n;
            char *hex = lb_acc_bits(r, d->tasks[t].key, sig, &n);
            if (json_is_null(bits) && hex) {
                bits = json_array();
                for (int u = 0; u < t; u++) json_array_append_new(bits, json_null());
            }
            if (!json_is_null(bits))
                json_array_append_new(bits, hex ? json_pack("[s,i,s]", sig, n, hex) : json_null());
            free(hex);
        }
        json_t *row = json_pack(
            "[I,i,o,o,o,o,o,o,o,o,o,o,o,o,o,o,o,o,i,o,o,o,o,i,o,o,o,o,o,o,s,o]", (json_int_t)r->id, r->rank,
            jnew_str(lb_run_model_name(r)), jnew_str(r->recipe_id), jnew_str(c ? c->algorithm : NULL),
            jnew_str(c ? c->weight_dtype : NULL), jnew_str(c ? c->compute_dtype : NULL),
            jint(c ? c->group_size : NAN), jint(c ? c->double_quant : NAN),
            jnum(c ? c->bits : NAN), jint(r->artifact_bytes),
            jint(lb_run_params(r)),
            jnum(r->average), jnum(r->ppl), jnum(r->kld), jnum(r->bits_per_weight),
            jnum(r->quant_seconds), jnew_str(r->model ? r->model->model_type : NULL), r->group, acc,
            jnum(r->d_avg.state == LB_D_OK ? r->d_avg.delta : NAN),
            jnum(r->d_avg.state == LB_D_OK ? r->d_avg.lo : NAN),
            jnum(r->d_avg.state == LB_D_OK ? r->d_avg.hi : NAN), r->band, jnum(r->prefill_tps),
            jnum(r->decode_tps), jnum(r->run_memory_mb), jnum(r->ppl_cpp), by, bits,
            lb_run_method_class(r), jint(lb_run_params_active(r)));
        if (!row) {
            json_decref(root);
            json_decref(rows);
            err("render: cannot build the board data");
            return NULL;
        }
        json_array_append_new(rows, row);
    }
    json_object_set_new(root, "rows", rows);
    char *text = json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(15));
    json_decref(root);
    if (!text) {
        err("render: out of memory (board data)");
        return NULL;
    }
    /* < > & appear only inside JSON strings: escaping them keeps the <script> element's raw
     * text free of "</script>", "<!--" and of anything XML would have to escape */
    size_t n = 0;
    for (const char *p = text; *p; p++) n += (*p == '<' || *p == '>' || *p == '&') ? 6 : 1;
    char *out = xmalloc(n + 1, "board data");
    if (out) {
        char *o = out;
        for (const char *p = text; *p; p++) {
            if (*p == '<' || *p == '>' || *p == '&') {
                o += snprintf(o, 7, "\\u%04x", (unsigned)*p);
            } else {
                *o++ = *p;
            }
        }
        *o = 0;
    }
    free(text);
    return out;
}

/* ------------------------------------------------------------------ the database copy */

static int copy_db(struct site *s, sqlite3 *db) {
    char path[4200];
    snprintf(path, sizeof path, "%s/data", s->dir);
    if (mkdir(path, 0755) && errno != EEXIST)
        return err("render: cannot create %s: %s", path, strerror(errno));
    snprintf(path, sizeof path, "%s/data/lowbit.db", s->dir);
    sqlite3 *dst = NULL;
    int rc = sqlite3_open_v2(path, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_backup *b = sqlite3_backup_init(dst, "main", db, "main");
        if (b) {
            rc = sqlite3_backup_step(b, -1);
            sqlite3_backup_finish(b);
            rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
        } else {
            rc = sqlite3_errcode(dst);
        }
    }
    if (rc != SQLITE_OK) {
        const int e = dst ? sqlite3_system_errno(dst) : 0; /* EFBIG, ENOSPC ... behind it */
        err("render: copying the database to %s: %s%s%s%s", path,
            dst ? sqlite3_errmsg(dst) : "out of memory", e ? " (" : "", e ? strerror(e) : "",
            e ? ")" : "");
        sqlite3_close(dst);
        return -1;
    }
    sqlite3_close(dst);
    struct stat st;
    if (stat(path, &st)) return err("render: %s: %s", path, strerror(errno));
    s->bytes_db = (double)st.st_size;
#pragma omp atomic
    s->n_files++;
    return 0;
}

/* ------------------------------------------------------------------ per-sample details */

static json_t *jdelta(const struct lb_delta *x) {
    if (x->state == LB_D_NONE) return json_null();
    if (x->state == LB_D_APART) return json_pack("{s:s}", "state", "other documents");
    return json_pack("{s:o, s:o, s:o, s:o, s:o, s:i, s:b}", "delta", jnum(x->delta), "lo",
                     jnum(x->lo), "hi", jnum(x->hi), "se", jnum(x->se), "crit", jnum(x->crit), "n",
                     x->n, "significant", lb_significant(x));
}

/* data/details/<run_id>.json of a run with per-sample records: every document (chunk) as the
 * samples table has it, and the paired statistics against the baseline computed from them
 * (stats.c; tests/paired_ci.py recomputes them from two such files) */
static int write_details_run(struct site *s, sqlite3 *db, const struct lb_run *r) {
    const struct lb_data *d = s->d;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT task, doc, gold, pred, pred_norm, acc, acc_norm, value, "
                           "value2, truncated, choices FROM samples WHERE run_id = ? "
                           "ORDER BY task, doc", -1, &st, NULL) != SQLITE_OK)
        return err("render: %s", sqlite3_errmsg(db));
    sqlite3_bind_int64(st, 1, r->id);
    json_t *tasks = json_object();
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        char *task = lb_clean_utf8((const char *)sqlite3_column_text(st, 0),
                                   (size_t)sqlite3_column_bytes(st, 0));
        if (!task) break;
        json_t *t = json_object_get(tasks, task);
        if (!t) {
            t = json_pack("{s:[]}", "rows");
            json_object_set_new(tasks, task, t);
        }
        json_t *ch = NULL;
        if (sqlite3_column_type(st, 10) == SQLITE_TEXT)
            ch = json_loads((const char *)sqlite3_column_text(st, 10), 0, NULL);
        json_t *row = json_array();
        json_array_append_new(row, json_integer(sqlite3_column_int(st, 1)));
        for (int c = 2; c <= 4; c++)
            json_array_append_new(row, sqlite3_column_type(st, c) == SQLITE_NULL
                                           ? json_null()
                                           : json_integer(sqlite3_column_int(st, c)));
        for (int c = 5; c <= 8; c++)
            json_array_append_new(row, sqlite3_column_type(st, c) == SQLITE_NULL
                                           ? json_null()
                                           : jnum(sqlite3_column_double(st, c)));
        json_array_append_new(row, json_boolean(sqlite3_column_int(st, 9)));
        json_array_append_new(row, ch ? ch : json_null());
        json_array_append_new(json_object_get(t, "rows"), row);
        free(task);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        json_decref(tasks);
        return err("render: reading the samples of run %lld: %s", (long long)r->id,
                   sqlite3_errmsg(db));
    }
    json_t *board = json_array();
    for (int t = 0; t < d->n_tasks; t++) {
        json_array_append_new(board, json_string(d->tasks[t].key));
        json_t *jt = json_object_get(tasks, d->tasks[t].key);
        if (!jt) continue;
        json_object_set_new(jt, "position", json_integer(t));
        json_object_set_new(jt, "delta_acc", jdelta(&r->d_acc[t]));
    }
    const char *task;
    json_t *jt;
    json_object_foreach(tasks, task, jt) { /* the data file the documents come from */
        const struct lb_taskdef *td = NULL;
        for (int i = 0; i < r->n_defs && !td; i++)
            if (!strcmp(r->defs[i].task, task)) td = &r->defs[i];
        json_object_set_new(jt, "dataset_sha256", jnew_str(td ? td->dataset_sha256 : NULL));
    }
    json_t *k = json_object_get(tasks, LB_KLD_TASK), *pp = json_object_get(tasks, "ppl");
    if (k) json_object_set_new(k, "mean_kld", jdelta(&r->d_kld));
    if (pp) json_object_set_new(pp, "delta_mean_nll", jdelta(&r->d_ppl));
    json_t *rank_by = json_object();
    for (int by = 0; r->ok && by < lb_by_count(d); by++)
        json_object_set_new(rank_by, lb_by_key(d, by),
                            json_pack("{s:o, s:b, s:i, s:i, s:o, s:o, s:i}", "score",
                                      jnum(lb_by_score(r, by)), "lower_is_better", lb_by_lower(by),
                                      "rank", r->by_rank[by], "band", r->by_band[by], "delta",
                                      jdelta(lb_by_delta(r, by)), "pair_crit",
                                      jnum(d->pair_crit[by]), "pairs", d->pair_n[by]));
    const struct lb_group *G = r->group >= 0 ? &d->groups[r->group] : NULL;
    json_t *root = json_pack(
        "{s:s, s:I, s:o, s:o, s:o, s:{s:i, s:i, s:i, s:i, s:s}, s:[s,s,s,s,s,s,s,s,s,s,s], "
        "s:o, s:o, s:i, s:o, s:o, s:{s:o, s:o, s:i, s:f}}",
        "schema", "lowbit-details/1", "run_id", (json_int_t)r->id, "model_id", jnew_str(r->model_id),
        "recipe_id", jnew_str(r->recipe_id), "baseline_run_id",
        r->baseline ? json_integer(r->baseline->id) : json_null(), "bootstrap", "resamples",
        LB_BOOT, "seed", LB_BOOT_SEED, "stream_kld", LB_STREAM_KLD, "stream_ppl", LB_STREAM_PPL,
        "interval", "95% simultaneous over the model's intervals (max-|T| paired bootstrap, "
                    "about.html#statistics)", "fields",
        "doc", "gold", "pred", "pred_norm", "acc", "acc_norm", "value", "value2", "truncated",
        "choices", "(value: loglik of lambada/wikitext documents, mean NLL of a ppl chunk, mean KLD "
                   "of a kld chunk; value2: the kld chunk's mean NLL)",
        "tasks", tasks, "delta_average", jdelta(&r->d_avg), "band", r->band, "board_tasks",
        board, "rank_by", rank_by, "simultaneous", "model_group", jnew_str(G ? G->key : NULL),
        "model_crit", jnum(G ? G->crit : NAN),
        "model_statements", G ? G->n_stmt : 0, "level", LB_LEVEL);
    char *text = root ? json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
    json_decref(root);
    if (!text) return err("render: out of memory (details)");
    char rel[64];
    snprintf(rel, sizeof rel, "data/details/%lld.json", (long long)r->id);
    rc = site_write_file(s, rel, text, strlen(text));
    free(text);
    return rc;
}

static int write_details(struct site *s, sqlite3 *db) {
    for (int i = 0; i < s->d->n_runs; i++)
        if (s->d->runs[i].n_samples && write_details_run(s, db, &s->d->runs[i])) return -1;
    return 0;
}

int datasets_write(struct site *s, sqlite3 *db) {
    if (copy_db(s, db) || write_csv(s) || write_json(s) || write_training_csv(s) ||
        write_training_json(s) || write_details(s, db))
        return -1;
    return 0;
}
