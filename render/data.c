/* render/data.c: the database (schema v4: the board's tasks come from its tasks table, so older
 * files are upgraded by lowbit collect first) read into memory, once, inside one read
 * transaction.
 *
 * Everything the site shows comes from here: one SELECT per table, rows ordered by primary key so
 * the same database always gives the same arrays, then joined in C (runs -> model, recipe, scores,
 * task definitions, provenance) and grouped by base model. The board order is average desc (NULL
 * last), then run id: the same order the pages, the CSV/JSON and the tests use. */
#include <jansson.h>
#include <math.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "render/render_impl.h"

/* ------------------------------------------------------------------ strings */

/* the code point of a valid UTF-8 sequence at s (len bytes left) in *cp, its length, or 0 */
static int utf8_next(const unsigned char *s, size_t len, uint32_t *cp) {
    unsigned c = s[0];
    if (c < 0x80) return *cp = c, 1;
    int n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
    if (!n || c > 0xf4 || (size_t)n > len) return 0;
    uint32_t v = c & (0x3f >> (n - 1));
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        v = v << 6 | (s[i] & 0x3f);
    }
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (v < min[n] || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return 0;
    *cp = v;
    return n;
}

char *lb_clean_utf8(const char *str, size_t len) {
    if (!str) return NULL;
    const unsigned char *s = (const unsigned char *)str;
    char *out = xmalloc(len * 3 + 1, "string"), *o = out;
    if (!out) return NULL;
    for (size_t i = 0; i < len;) {
        uint32_t cp = 0;
        int n = utf8_next(s + i, len - i, &cp);
        bool bad = !n || (cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r') || cp == 0xfffe ||
                   cp == 0xffff;
        if (bad) {
            memcpy(o, "\xef\xbf\xbd", 3); /* U+FFFD */
            o += 3;
            i += n ? (size_t)n : 1;
        } else {
            memcpy(o, s + i, (size_t)n);
            o += n;
            i += (size_t)n;
        }
    }
    *o = 0;
    return out;
}

static char *col_str(sqlite3_stmt *st, int i) {
    if (sqlite3_column_type(st, i) == SQLITE_NULL) return NULL;
    const unsigned char *t = sqlite3_column_text(st, i);
    return lb_clean_utf8((const char *)t, (size_t)sqlite3_column_bytes(st, i));
}

static double col_num(sqlite3_stmt *st, int i) {
    int t = sqlite3_column_type(st, i);
    if (t == SQLITE_NULL) return NAN;
    if (t == SQLITE_INTEGER) return (double)sqlite3_column_int64(st, i);
    if (t == SQLITE_FLOAT) return sqlite3_column_double(st, i);
    /* text or blob in a numeric column: a number only if it parses whole */
    const char *s = (const char *)sqlite3_column_text(st, i);
    char *end = NULL;
    double v = s ? strtod(s, &end) : NAN;
    return s && end != s && !*end ? v : NAN;
}

/* ------------------------------------------------------------------ queries */

/* run sql, calling row(st, ctx) for each row; -1 with a message */
static int query(sqlite3 *db, const char *sql, int (*row)(sqlite3_stmt *, void *), void *ctx) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return err("render: %s (in \"%.60s...\"); is this a lowbit database (gen/schema.sql)?",
                   sqlite3_errmsg(db), sql);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        if (row(st, ctx)) {
            sqlite3_finalize(st);
            return -1;
        }
    if (rc != SQLITE_DONE) {
        err("render: reading the database: %s", sqlite3_errmsg(db));
        sqlite3_finalize(st);
        return -1;
    }
    sqlite3_finalize(st);
    return 0;
}

/* a growable array of n elements of size sz */
static int grow(void **arr, int *cap, int n, size_t sz) {
    if (n < *cap) return 0;
    int nc = *cap ? *cap * 2 : 64;
    void *p = realloc(*arr, (size_t)nc * sz);
    if (!p) return err("render: out of memory reading the database");
    *arr = p;
    *cap = nc;
    return 0;
}

struct loader {
    struct lb_data *d;
    int cap;
    int64_t *run_ids; /* parallel to scores/defs/prov while loading */
    int cap_ids;
    char **point_ids; /* model ids, parallel to train_points while loading (owned) */
    int cap_point_ids;
};

static int row_task(sqlite3_stmt *st, void *ctx) {
    struct loader *L = ctx;
    struct lb_data *d = L->d;
    if (d->n_tasks == LB_TASK_MAX)
        return err("render: the database lists more than %d board tasks", LB_TASK_MAX);
    if (grow((void **)&d->tasks, &L->cap, d->n_tasks, sizeof *d->tasks)) return -1;
    struct lb_task_info *t = &d->tasks[d->n_tasks++];
    t->key = col_str(st, 0);
    t->label = col_str(st, 1);
    t->abbr = col_str(st, 2);
    t->title = col_str(st, 3);
    t->metric = col_str(st, 4);
    if (!t->key || !t->label || !t->abbr || !t->title || !t->metric)
        return err("render: a row of the tasks table has an empty name, label or metric");
    return 0;
}

static int row_model(sqlite3_stmt *st, void *ctx) {
    struct loader *L = ctx;
    struct lb_data *d = L->d;
    if (grow((void **)&d->models, &L->cap, d->n_models, sizeof *d->models)) return -1;
    struct lb_model *m = &d->models[d->n_models++];
    memset(m, 0, sizeof *m);
    m->id = col_str(st, 0);
    m->path = col_str(st, 1);
    m->tokenizer = col_str(st, 2);
    m->display_name = col_str(st, 3);
    m->family = col_str(st, 4);
    m->base_model = col_str(st, 5);
    m->model_type = col_str(st, 6);
    m->license = col_str(st, 7);
    m->notes = col_str(st, 8);
    m->architecture = col_str(st, 9);
    m->n_params = col_num(st, 10);
    m->files_sha256 = col_str(st, 11);
    m->n_params_active = col_num(st, 12);
    if (!m->id) m->id = lb_clean_utf8("", 0);
    if (!m->display_name) m->display_name = lb_clean_utf8(m->id, strlen(m->id));
    return 0;
}

static int row_recipe(sqlite3_stmt *st, void *ctx) {
    struct loader *L = ctx;
    struct lb_data *d = L->d;
    if (grow((void **)&d->recipes, &L->cap, d->n_recipes, sizeof *d->recipes)) return -1;
    struct lb_recipe *c = &d->recipes[d->n_recipes++];
    memset(c, 0, sizeof *c);
    c->id = col_str(st, 0);
    c->algorithm = col_str(st, 1);
    c->weight_dtype = col_str(st, 2);
    c->bits = col_num(st, 3);
    c->group_size = col_num(st, 4);
    c->sym = col_num(st, 5);
    c->double_quant = col_num(st, 6);
    c->compute_dtype = col_str(st, 7);
    c->calib_set = col_str(st, 8);
    c->calib_nsamples = col_num(st, 9);
    c->calib_seqlen = col_num(st, 10);
    c->knobs = col_str(st, 11);
    c->method_class = lb_method_class(c->algorithm, c->weight_dtype, c->knobs);
    if (!c->id) c->id = lb_clean_utf8("", 0);
    return 0;
}

static int row_run(sqlite3_stmt *st, void *ctx) {
    struct loader *L = ctx;
    struct lb_data *d = L->d;
    if (grow((void **)&d->runs, &L->cap, d->n_runs, sizeof *d->runs)) return -1;
    struct lb_run *r = &d->runs[d->n_runs++];
    memset(r, 0, sizeof *r);
    r->id = sqlite3_column_int64(st, 0);
    r->job_key = col_str(st, 1);
    r->model_id = col_str(st, 2);
    r->recipe_id = col_str(st, 3);
    r->status = col_str(st, 4);
    r->error = col_str(st, 5);
    r->log_tail = col_str(st, 6);
    r->started_at = col_str(st, 7);
    r->finished_at = col_str(st, 8);
    r->code_version = col_str(st, 9);
    r->host_cpu = col_str(st, 10);
    r->threads = col_num(st, 11);
    r->kernels_isa = col_str(st, 12);
    r->quant_seconds = col_num(st, 13);
    r->quant_peak_rss_mb = col_num(st, 14);
    r->eval_seconds = col_num(st, 15);
    r->eval_peak_rss_mb = col_num(st, 16);
    r->artifact_path = col_str(st, 17);
    r->artifact_bytes = col_num(st, 18);
    r->bits_per_weight = col_num(st, 19);
    r->n_params = col_num(st, 20);
    r->failure = col_str(st, 21);
    r->prefill_tps = col_num(st, 22);
    r->decode_tps = col_num(st, 23);
    r->run_memory_mb = col_num(st, 24);
    r->n_params_active = col_num(st, 25);
    if (!r->model_id) r->model_id = lb_clean_utf8("", 0);
    if (!r->recipe_id) r->recipe_id = lb_clean_utf8("", 0);
    if (!r->status) r->status = lb_clean_utf8("", 0);
    r->average = r->ppl = r->kld = r->ppl_cpp = NAN;
    for (int t = 0; t < LB_TASK_MAX; t++) r->acc[t] = r->acc_se[t] = NAN;
    r->group = -1;
    return 0;
}

static int push_id(struct loader *L, int n, int64_t id) {
    if (grow((void **)&L->run_ids, &L->cap_ids, n, sizeof *L->run_ids)) return -1;
    L->run_ids[n] = id;
    return 0;
}

static int row_score(sqlite3_stmt *st, void *ctx) {
    struct loader *L = ctx;
    struct lb_data *d = L->d;
    if (grow((void **)&d->scores, &L->cap, d->n_scores, sizeof *d->scores)) return -1;
    if (push_id(L, d->n_scores, sqlite3_column_int64(st, 0))) return -1;
    struct lb_score *s = &d->scores[d->n_scores++];
    s->task = col_str(st, 1);
    s->metric = col_str(st, 2);
    s->value = col_num(st, 3);
    s->stderr_ = col_num(st, 4);
    s->n = col_num(st, 5);
    if (!s->task) s->task = lb_clean_utf8("", 0);
    if (!s->metric) s->metric = lb_clean_utf8("", 0);
    return 0;
}

static int row_sample(sqlite3_stmt *st, void *ctx) {
    struct loader *L = ctx;
    struct lb_data *d = L->d;
    if (grow((void **)&d->samples, &L->cap, d->n_samples, sizeof *d->samples)) return -1;
    if (push_id(L, d->n_samples, sqlite3_column_int64(st, 0))) return -1;
    struct lb_sample *s = &d->samples[d->n_samples++];
    s->task = col_str(st, 1);
    s->doc = sqlite3_column_int(st, 2);
    s->acc = col_num(st, 3);
    s->value = col_num(st, 4);
    s->gold = sqlite3_column_type(st, 5) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 5);
    s->pred = sqlite3_column_type(st, 6) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 6);
    if (!s->task) s->task = lb_clean_utf8("", 0);
    return 0;
}

static int row_doctext(sqlite3_stmt *st, void *ctx) {
    struct loader *L = ctx;
    struct lb_data *d = L->d;
    if (grow((void **)&d->texts, &L->cap, d->n_texts, sizeof *d->texts)) return -1;
    struct lb_doctext *t = &d->texts[d->n_texts++];
    t->task = col_str(st, 0);
    t->sha256 = col_str(st, 1);
    t->doc = sqlite3_column_int(st, 2);
    t->context = col_str(st, 3);
    t->choices = col_str(st, 4);
    t->continuation = col_str(st, 5);
    if (!t->task) t->task = lb_clean_utf8("", 0);
    if (!t->sha256) t->sha256 = lb_clean_utf8("", 0);
    return 0;
}

static int cmp_doctext(const void *a, const void *b) {
    const struct lb_doctext *x = a, *y = b;
    int c = strcmp(x->task, y->task);
    if (!c) c = strcmp(x->sha256, y->sha256);
    return c ? c : (x->doc > y->doc) - (x->doc < y->doc);
}

const struct lb_doctext *lb_doctext_find(const struct lb_data *d, const char *task,
                                         const char *sha256, int doc) {
    if (!task || !sha256) return NULL;
    const struct lb_doctext key = {.task = (char *)task, .sha256 = (char *)sha256, .doc = doc};
    return bsearch(&key, d->texts, (size_t)d->n_texts, sizeof *d->texts, cmp_doctext);
}

static int row_def(sqlite3_stmt *st, void *ctx) {
    struct loader *L = ctx;
    struct lb_data *d = L->d;
    if (grow((void **)&d->defs, &L->cap, d->n_defs, sizeof *d->defs)) return -1;
    if (push_id(L, d->n_defs, sqlite3_column_int64(st, 0))) return -1;
    struct lb_taskdef *t = &d->defs[d->n_defs++];
    t->task = col_str(st, 1);
    t->dataset_file = col_str(st, 2);
    t->dataset_sha256 = col_str(st, 3);
    t->n_docs = col_num(st, 4);
    t->n_docs_full = col_num(st, 5);
    t->limit_n = col_num(st, 6);
    t->seed = col_num(st, 7);
    t->num_fewshot = col_num(st, 8);
    t->add_bos = col_num(st, 9);
    t->ctx = col_num(st, 10);
    t->n_truncated = col_num(st, 11);
    if (!t->task) t->task = lb_clean_utf8("", 0);
    return 0;
}

static int row_prov(sqlite3_stmt *st, void *ctx) {
    struct loader *L = ctx;
    struct lb_data *d = L->d;
    if (grow((void **)&d->prov, &L->cap, d->n_prov, sizeof *d->prov)) return -1;
    if (push_id(L, d->n_prov, sqlite3_column_int64(st, 0))) return -1;
    struct lb_prov *p = &d->prov[d->n_prov++];
    p->key = col_str(st, 1);
    p->value = col_str(st, 2);
    if (!p->key) p->key = lb_clean_utf8("", 0);
    return 0;
}

static int row_training(sqlite3_stmt *st, void *ctx) {
    struct loader *L = ctx;
    struct lb_data *d = L->d;
    if (grow((void **)&d->trainings, &L->cap, d->n_trainings, sizeof *d->trainings)) return -1;
    struct lb_training *t = &d->trainings[d->n_trainings++];
    memset(t, 0, sizeof *t);
    int i = 0;
    t->model_id = col_str(st, i++);
    t->train_json = col_str(st, i++);
    t->source_dir = col_str(st, i++);
    t->files_sha256 = col_str(st, i++);
    double *const nums[] = {&t->params, &t->dim, &t->hidden_dim, &t->n_layers, &t->n_heads,
                            &t->n_kv_heads, &t->vocab, &t->ctx, &t->tied, &t->steps, &t->batch,
                            &t->micro_batch, &t->lr, &t->min_lr, &t->warmup, &t->weight_decay,
                            &t->clip, &t->beta1, &t->beta2, &t->seed, &t->tokens_seen,
                            &t->corpus_tokens, &t->corpus_documents, &t->heldout_loss,
                            &t->heldout_documents, &t->heldout_tokens,
                            &t->heldout_overlap_dropped, &t->train_seconds};
    for (size_t k = 0; k < LB_ARRAY_LEN(nums); k++) *nums[k] = col_num(st, i++);
    t->heldout = col_str(st, i++);
    t->heldout_protocol = col_str(st, i++);
    if (!t->model_id) t->model_id = lb_clean_utf8("", 0);
    t->group = -1;
    return 0;
}

/* the train.json members row_training reads, in its order (SQLite JSON paths) */
#define TRAINING_SELECT                                                                            \
    "SELECT model_id, train_json, source_dir, files_sha256, json_extract(j, '$.params'),"         \
    " json_extract(j, '$.model.dim'), json_extract(j, '$.model.hidden_dim'),"                     \
    " json_extract(j, '$.model.n_layers'), json_extract(j, '$.model.n_heads'),"                   \
    " json_extract(j, '$.model.n_kv_heads'), json_extract(j, '$.model.vocab'),"                   \
    " json_extract(j, '$.model.ctx'), json_extract(j, '$.model.tied'),"                           \
    " json_extract(j, '$.opt.steps'), json_extract(j, '$.opt.batch'),"                            \
    " json_extract(j, '$.opt.micro_batch'), json_extract(j, '$.opt.lr'),"                         \
    " json_extract(j, '$.opt.min_lr'), json_extract(j, '$.opt.warmup'),"                          \
    " json_extract(j, '$.opt.weight_decay'), json_extract(j, '$.opt.clip'),"                      \
    " json_extract(j, '$.opt.beta1'), json_extract(j, '$.opt.beta2'),"                            \
    " json_extract(j, '$.opt.seed'), json_extract(j, '$.train_tokens_seen'),"                     \
    " json_extract(j, '$.corpus_tokens'), json_extract(j, '$.corpus_documents'),"                 \
    " json_extract(j, '$.heldout_loss'), json_extract(j, '$.heldout_documents'),"                 \
    " json_extract(j, '$.heldout_tokens'), json_extract(j, '$.heldout_overlap_dropped'),"         \
    " json_extract(j, '$.train_seconds'), json_extract(j, '$.heldout'),"                          \
    " json_extract(j, '$.heldout_protocol')"                                                       \
    " FROM (SELECT *, CASE WHEN json_valid(train_json) THEN CASE json_type(train_json) WHEN"     \
    " 'object' THEN train_json ELSE '{}' END ELSE '{}' END AS j FROM training) ORDER BY model_id"

static int row_train_point(sqlite3_stmt *st, void *ctx) {
    struct loader *L = ctx;
    struct lb_data *d = L->d;
    if (grow((void **)&d->train_points, &L->cap, d->n_train_points, sizeof *d->train_points) ||
        grow((void **)&L->point_ids, &L->cap_point_ids, d->n_train_points,
             sizeof *L->point_ids))
        return -1;
    L->point_ids[d->n_train_points] = col_str(st, 0);
    struct lb_train_point *p = &d->train_points[d->n_train_points++];
    p->step = col_num(st, 1);
    p->tokens = col_num(st, 2);
    p->train_loss = col_num(st, 3);
    p->heldout_loss = col_num(st, 4);
    p->lr = col_num(st, 5);
    p->seconds = col_num(st, 6);
    return 0;
}

static struct lb_run *find_run(struct lb_data *d, int64_t id) {
    int lo = 0, hi = d->n_runs - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        if (d->runs[mid].id == id) return &d->runs[mid];
        if (d->runs[mid].id < id) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

static int row_average(sqlite3_stmt *st, void *ctx) {
    struct loader *L = ctx;
    struct lb_run *r = find_run(L->d, sqlite3_column_int64(st, 0));
    if (r) {
        r->ok = true;
        r->average = col_num(st, 1);
    }
    return 0;
}

/* ------------------------------------------------------------------ joins */

static int cmp_model(const void *a, const void *b) {
    return strcmp(((const struct lb_model *)a)->id, ((const struct lb_model *)b)->id);
}
static int cmp_recipe(const void *a, const void *b) {
    return strcmp(((const struct lb_recipe *)a)->id, ((const struct lb_recipe *)b)->id);
}

static const struct lb_model *find_model(const struct lb_data *d, const char *id) {
    struct lb_model key = {.id = (char *)id};
    return bsearch(&key, d->models, (size_t)d->n_models, sizeof key, cmp_model);
}
static const struct lb_recipe *find_recipe(const struct lb_data *d, const char *id) {
    struct lb_recipe key = {.id = (char *)id};
    return bsearch(&key, d->recipes, (size_t)d->n_recipes, sizeof key, cmp_recipe);
}

/* attach the slices [i, j) of an array sorted by run id to their runs */
#define ATTACH(arr, n, field, nfield)                                                              \
    for (int i = 0, j; i < (n); i = j) {                                                           \
        for (j = i + 1; j < (n) && L.run_ids[j] == L.run_ids[i]; j++)                              \
            ;                                                                                      \
        struct lb_run *r_ = find_run(d, L.run_ids[i]);                                             \
        if (r_) {                                                                                  \
            r_->field = &(arr)[i];                                                                 \
            r_->nfield = j - i;                                                                    \
        }                                                                                          \
    }

const struct lb_score *lb_run_score(const struct lb_run *r, const char *task, const char *metric) {
    for (int i = 0; i < r->n_scores; i++)
        if (!strcmp(r->scores[i].task, task) && !strcmp(r->scores[i].metric, metric))
            return &r->scores[i];
    return NULL;
}

const char *lb_run_prov(const struct lb_run *r, const char *key) {
    for (int i = 0; i < r->n_prov; i++)
        if (!strcmp(r->prov[i].key, key)) return r->prov[i].value ? r->prov[i].value : "";
    return NULL;
}

const char *lb_run_model_name(const struct lb_run *r) {
    return r->model ? r->model->display_name : r->model_id;
}

const char *lb_run_algorithm(const struct lb_run *r) {
    return r->recipe && r->recipe->algorithm ? r->recipe->algorithm : "";
}

double lb_run_params(const struct lb_run *r) {
    return !isnan(r->n_params) ? r->n_params : r->model ? r->model->n_params : NAN;
}

double lb_run_params_active(const struct lb_run *r) {
    if (!isnan(r->n_params)) return r->n_params_active;
    return r->model ? r->model->n_params_active : NAN;
}

const char *lb_run_method_class(const struct lb_run *r) {
    return r->recipe ? r->recipe->method_class : "";
}

static int cmp_training(const void *a, const void *b) {
    return strcmp(((const struct lb_training *)a)->model_id,
                  ((const struct lb_training *)b)->model_id);
}

static struct lb_training *find_training(const struct lb_data *d, const char *id) {
    struct lb_training key = {.model_id = (char *)id};
    if (!d->n_trainings) return NULL; /* bsearch's base must not be NULL, even for no elements */
    return bsearch(&key, d->trainings, (size_t)d->n_trainings, sizeof key, cmp_training);
}

const struct lb_training *lb_group_training(const struct lb_data *d, int group) {
    return group >= 0 && group < d->n_groups ? find_training(d, d->groups[group].key) : NULL;
}

const char *lb_training_name(const struct lb_training *t) {
    return t->model ? t->model->display_name : t->model_id;
}

static const struct lb_data *g_sort_data; /* qsort has no context argument */

static int cmp_board(const void *a, const void *b) {
    const struct lb_run *x = &g_sort_data->runs[*(const int *)a];
    const struct lb_run *y = &g_sort_data->runs[*(const int *)b];
    bool xn = isnan(x->average), yn = isnan(y->average);
    if (xn != yn) return xn ? 1 : -1;
    if (!xn && x->average != y->average) return x->average > y->average ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}


/* "[a-z0-9._-]" slug of s, at most 60 bytes, "model" when nothing is left */
static void slugify(const char *s, char *out, size_t n) {
    size_t o = 0;
    bool dash = false;
    for (const unsigned char *p = (const unsigned char *)s; *p && o + 2 < n && o < 60; p++) {
        int c = *p;
        if (c >= 'A' && c <= 'Z') c += 'a' - 'A';
        bool keep = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
                    (c == '.' && o > 0 && out[o - 1] != '.');
        if (keep) {
            if (dash && o) out[o++] = '-';
            out[o++] = (char)c;
            dash = false;
        } else {
            dash = true;
        }
    }
    while (o && (out[o - 1] == '.' || out[o - 1] == '-')) o--;
    out[o] = 0;
    if (!o) snprintf(out, n, "model");
}

/* 0 fp16 .. 3 other: which fp run is the baseline */
static int fp_pref(const struct lb_run *r) {
    const char *w = r->recipe && r->recipe->weight_dtype ? r->recipe->weight_dtype : "";
    if (!strcmp(w, "float16") || !strcmp(w, "fp16")) return 0;
    if (!strcmp(w, "bfloat16") || !strcmp(w, "bf16")) return 1;
    if (!strcmp(w, "float32") || !strcmp(w, "fp32")) return 2;
    return 3;
}

static const char **g_keys; /* qsort context for cmp_key_idx */

static int cmp_key_idx(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    int c = strcmp(g_keys[x], g_keys[y]);
    return c ? c : (x > y) - (x < y);
}

static int build_groups(struct lb_data *d) {
    /* each run's base id; runs sorted by (base id, index) give the groups in key order */
    const char **keys = xcalloc((size_t)d->n_runs + 1, sizeof *keys, "groups");
    int *order = xcalloc((size_t)d->n_runs + 1, sizeof *order, "groups");
    d->groups = xcalloc((size_t)d->n_runs + 1, sizeof *d->groups, "groups");
    if (!keys || !order || !d->groups) {
        free(keys), free(order);
        return -1;
    }
    for (int i = 0; i < d->n_runs; i++) {
        const struct lb_run *r = &d->runs[i];
        keys[i] = r->model && r->model->base_model && *r->model->base_model ? r->model->base_model
                                                                             : r->model_id;
        order[i] = i;
    }
    g_keys = keys;
    qsort(order, (size_t)d->n_runs, sizeof *order, cmp_key_idx);
    for (int k = 0, j; k < d->n_runs; k = j) {
        for (j = k + 1; j < d->n_runs && !strcmp(keys[order[j]], keys[order[k]]); j++)
            ;
        struct lb_group *G = &d->groups[d->n_groups];
        int g = d->n_groups++;
        G->key = lb_clean_utf8(keys[order[k]], strlen(keys[order[k]]));
        G->runs = xcalloc((size_t)(j - k), sizeof *G->runs, "groups");
        if (!G->key || !G->runs) {
            free(keys), free(order);
            return -1;
        }
        /* members in run-id order (order[] is by index within a key, and runs are by id) */
        for (int m = k; m < j; m++) {
            G->runs[G->n_runs++] = order[m];
            d->runs[order[m]].group = g;
        }
        const struct lb_model *mo = find_model(d, G->key);
        const char *name = mo ? mo->display_name : G->key;
        G->name = lb_clean_utf8(name, strlen(name));
        G->n_params = mo ? mo->n_params : NAN;
        G->n_params_active = mo ? mo->n_params_active : NAN;
        G->baseline = -1;
    }
    free(keys), free(order);
    /* slugs: unique, a later group with a taken slug gets "-2", "-3" ... (the slugs taken are a
     * set: a JSON object, so 100,000 base models take linear time) */
    json_t *taken_slugs = json_object();
    json_object_set_new(taken_slugs, "index", json_true());
    for (int g = 0; g < d->n_groups; g++) {
        struct lb_group *G = &d->groups[g];
        char slug[96], try[112];
        slugify(G->key, slug, sizeof slug);
        snprintf(try, sizeof try, "%s", slug);
        for (int k = 2; json_object_get(taken_slugs, try); k++)
            snprintf(try, sizeof try, "%s-%d", slug, k);
        json_object_set_new(taken_slugs, try, json_true());
        G->slug = lb_clean_utf8(try, strlen(try));
    }
    json_decref(taken_slugs);
    /* the baseline: an ok fp run of the base model itself, fp16 > bf16 > fp32, then lowest id */
    for (int g = 0; g < d->n_groups; g++) {
        struct lb_group *G = &d->groups[g];
        int best = -1;
        for (int k = 0; k < G->n_runs; k++) {
            const struct lb_run *r = &d->runs[G->runs[k]];
            if (!r->ok || !r->recipe || !r->recipe->algorithm ||
                strcmp(r->recipe->algorithm, "fp") || strcmp(r->model_id, G->key))
                continue;
            if (best < 0 || fp_pref(r) < fp_pref(&d->runs[best])) best = G->runs[k];
        }
        G->baseline = best;
        if (isnan(G->n_params) && best >= 0) {
            G->n_params = d->runs[best].n_params;
            G->n_params_active = d->runs[best].n_params_active;
        }
    }
    return 0;
}

int lb_data_load(struct lb_data *d, sqlite3 *db) {
    memset(d, 0, sizeof *d);
    struct loader L = {.d = d};
    int ret = -1;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        err("render: cannot read the schema version: %s", sqlite3_errmsg(db));
        sqlite3_finalize(st);
        return -1;
    }
    int version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    /* the board's tasks come from the tasks table (version 4); version 5 adds the active
     * parameters of a mixture of experts (NULL: not recorded) */
    if (version != 4 && version != 5)
        return err("render: database schema version %d; this renderer reads versions 4 and 5 "
                   "(gen/schema.sql): 'lowbit collect --db FILE' upgrades an older one in place",
                   version);
    const char *active = version >= 5 ? "n_params_active" : "NULL";
    char sql_models[320], sql_runs[512];
    if (query(db,
              "SELECT name, label, abbr, title, board_metric FROM tasks"
              " WHERE board_metric IS NOT NULL ORDER BY position",
              row_task, &L))
        goto out;
    L.cap = 0;
    snprintf(sql_models, sizeof sql_models,
             "SELECT id, path, tokenizer, display_name, family, base_model, model_type, license,"
             " notes, architecture, n_params, files_sha256, %s FROM models ORDER BY id", active);
    if (query(db, sql_models, row_model, &L))
        goto out;
    L.cap = 0;
    if (query(db,
              "SELECT id, algorithm, weight_dtype, bits, group_size, sym, double_quant,"
              " compute_dtype, calib_set, calib_nsamples, calib_seqlen, knobs"
              " FROM recipes ORDER BY id",
              row_recipe, &L))
        goto out;
    L.cap = 0;
#define RUNS_SELECT                                                                                \
    "SELECT id, job_key, model_id, recipe_id, status, error, log_tail, started_at, finished_at,"   \
    " code_version, host_cpu, threads, kernels_isa, quant_seconds, quant_peak_rss_mb,"             \
    " eval_seconds, eval_peak_rss_mb, artifact_path, artifact_bytes, bits_per_weight, n_params, "
    snprintf(sql_runs, sizeof sql_runs,
             RUNS_SELECT "failure, prefill_tps, decode_tps, run_memory_mb, %s FROM runs ORDER BY id",
             active);
    if (query(db, sql_runs, row_run, &L))
        goto out;
    L.cap = 0;
    if (query(db,
              "SELECT run_id, task, metric, value, stderr, n FROM scores"
              " ORDER BY run_id, task, metric",
              row_score, &L))
        goto out;
    ATTACH(d->scores, d->n_scores, scores, n_scores);
    L.cap = 0;
    if (query(db,
              "SELECT run_id, task, dataset_file, dataset_sha256, n_docs, n_docs_full, limit_n,"
              " seed, num_fewshot, add_bos, ctx, n_truncated FROM task_defs ORDER BY run_id, task",
              row_def, &L))
        goto out;
    ATTACH(d->defs, d->n_defs, defs, n_defs);
    L.cap = 0;
    if (query(db, "SELECT run_id, key, value FROM provenance ORDER BY run_id, key", row_prov, &L))
        goto out;
    ATTACH(d->prov, d->n_prov, prov, n_prov);
    L.cap = 0;
    if (query(db,
              "SELECT run_id, task, doc, acc, value, gold, pred FROM samples"
              " WHERE task IN ('ppl', 'kld') OR"
              " task IN (SELECT name FROM tasks WHERE board_metric IS NOT NULL)"
              " ORDER BY run_id, task, doc",
              row_sample, &L))
        goto out;
    ATTACH(d->samples, d->n_samples, samples, n_samples);
    L.cap = 0;
    if (query(db,
              "SELECT task, dataset_sha256, doc, context, choices, continuation FROM documents"
              " WHERE task IN (SELECT name FROM tasks WHERE board_metric IS NOT NULL)",
              row_doctext, &L))
        goto out;
    if (d->n_texts > 1) qsort(d->texts, (size_t)d->n_texts, sizeof *d->texts, cmp_doctext);
    if (query(db, "SELECT run_id, average FROM leaderboard", row_average, &L)) goto out;
    L.cap = 0;
    if (query(db, TRAINING_SELECT, row_training, &L)) goto out;
    L.cap = 0;
    if (query(db,
              "SELECT model_id, step, tokens, train_loss, heldout_loss, lr, seconds"
              " FROM training_curve ORDER BY model_id, step",
              row_train_point, &L))
        goto out;

    /* sort in C (byte order of the cleaned strings) so lookups agree with strcmp */
    qsort(d->models, (size_t)d->n_models, sizeof *d->models, cmp_model);
    qsort(d->recipes, (size_t)d->n_recipes, sizeof *d->recipes, cmp_recipe);
    const char *as_of = "";
    for (int i = 0; i < d->n_runs; i++) {
        struct lb_run *r = &d->runs[i];
        r->model = find_model(d, r->model_id);
        r->recipe = find_recipe(d, r->recipe_id);
        for (int k = 0; k < r->n_scores; k++) {
            const struct lb_score *s = &r->scores[k];
            for (int t = 0; t < d->n_tasks; t++)
                if (!strcmp(s->task, d->tasks[t].key) && !strcmp(s->metric, d->tasks[t].metric)) {
                    r->acc[t] = s->value;
                    r->acc_se[t] = s->stderr_;
                }
        }
        const struct lb_score *s = lb_run_score(r, LB_PPL_TASK, LB_PPL_METRIC);
        r->ppl = s ? s->value : NAN;
        s = lb_run_score(r, LB_KLD_TASK, LB_KLD_METRIC);
        r->kld = s ? s->value : NAN;
        s = lb_run_score(r, LB_PPLC_TASK, LB_PPLC_METRIC);
        r->ppl_cpp = s ? s->value : NAN;
        if (lb_run_prov(r, "fixture")) d->has_fixture_rows = true;
        if (r->finished_at && strcmp(r->finished_at, as_of) > 0) as_of = r->finished_at;
    }
    d->as_of = lb_clean_utf8(as_of, strlen(as_of));
    if (build_groups(d)) goto out;
    /* trainings: by id in C's order, each with its model, group and slice of curve points (the
     * points of one model are consecutive, by step) */
    if (d->n_trainings) /* qsort's base must not be NULL, even for no elements */
        qsort(d->trainings, (size_t)d->n_trainings, sizeof *d->trainings, cmp_training);
    for (int i = 0; i < d->n_trainings; i++) {
        struct lb_training *t = &d->trainings[i];
        t->model = find_model(d, t->model_id);
        for (int g = 0; g < d->n_groups; g++)
            if (!strcmp(d->groups[g].key, t->model_id)) t->group = g;
    }
    for (int i = 0, j; i < d->n_train_points; i = j) {
        for (j = i + 1; j < d->n_train_points && L.point_ids[j] && L.point_ids[i] &&
                        !strcmp(L.point_ids[j], L.point_ids[i]);
             j++)
            ;
        struct lb_training *t = L.point_ids[i] ? find_training(d, L.point_ids[i]) : NULL;
        if (t && !t->curve) {
            t->curve = &d->train_points[i];
            t->n_curve = j - i;
        }
    }

    d->board = xcalloc((size_t)d->n_runs + 1, sizeof *d->board, "board");
    if (!d->board) goto out;
    for (int i = 0; i < d->n_runs; i++)
        if (d->runs[i].ok) d->board[d->n_board++] = i;
    g_sort_data = d;
    qsort(d->board, (size_t)d->n_board, sizeof *d->board, cmp_board);
    for (int k = 0; k < d->n_board; k++) d->runs[d->board[k]].rank = k + 1;
    if (lb_stats(d)) goto out;
    ret = 0;
out:
    free(L.run_ids);
    for (int i = 0; i < d->n_train_points; i++) free(L.point_ids[i]);
    free(L.point_ids);
    if (ret) lb_data_release(d);
    return ret;
}

void lb_data_release(struct lb_data *d) {
    for (int i = 0; i < d->n_tasks; i++) {
        struct lb_task_info *t = &d->tasks[i];
        free(t->key), free(t->label), free(t->abbr), free(t->title), free(t->metric);
    }
    free(d->tasks);
    for (int i = 0; i < d->n_samples; i++) free(d->samples[i].task);
    free(d->samples);
    for (int i = 0; i < d->n_texts; i++) {
        struct lb_doctext *t = &d->texts[i];
        free(t->task), free(t->sha256), free(t->context), free(t->choices), free(t->continuation);
    }
    free(d->texts);
    for (int i = 0; i < d->n_models; i++) {
        struct lb_model *m = &d->models[i];
        free(m->id), free(m->path), free(m->tokenizer), free(m->display_name), free(m->family);
        free(m->base_model), free(m->model_type), free(m->license), free(m->notes);
        free(m->architecture), free(m->files_sha256);
    }
    for (int i = 0; i < d->n_recipes; i++) {
        struct lb_recipe *c = &d->recipes[i];
        free(c->id), free(c->algorithm), free(c->weight_dtype), free(c->compute_dtype);
        free(c->calib_set), free(c->knobs);
    }
    for (int i = 0; i < d->n_runs; i++) {
        struct lb_run *r = &d->runs[i];
        free(r->job_key), free(r->model_id), free(r->recipe_id), free(r->status), free(r->error);
        free(r->log_tail), free(r->started_at), free(r->finished_at), free(r->code_version);
        free(r->host_cpu), free(r->kernels_isa), free(r->artifact_path), free(r->failure);
    }
    for (int i = 0; i < d->n_scores; i++) free(d->scores[i].task), free(d->scores[i].metric);
    for (int i = 0; i < d->n_defs; i++)
        free(d->defs[i].task), free(d->defs[i].dataset_file), free(d->defs[i].dataset_sha256);
    for (int i = 0; i < d->n_prov; i++) free(d->prov[i].key), free(d->prov[i].value);
    for (int g = 0; g < d->n_groups; g++)
        free(d->groups[g].key), free(d->groups[g].name), free(d->groups[g].slug),
            free(d->groups[g].runs);
    for (int i = 0; i < d->n_trainings; i++) {
        struct lb_training *t = &d->trainings[i];
        free(t->model_id), free(t->train_json), free(t->source_dir), free(t->files_sha256);
        free(t->heldout), free(t->heldout_protocol);
    }
    free(d->trainings), free(d->train_points);
    free(d->models), free(d->recipes), free(d->runs), free(d->scores), free(d->defs);
    free(d->prov), free(d->groups), free(d->board), free(d->as_of);
    free(d->rstat), free(d->rboot);
    memset(d, 0, sizeof *d);
}
