/* gen/report.c: the order of `make report`'s work, its estimates, the zoo's training steps and
 * the pending list (gen/report.h).
 *
 * Estimates. A job's wall time on one worker is
 *   - the time its model × recipe took last time (the database's latest ok run, any code);
 *   - else a prior from the model's size and the recipe's algorithm (below), scaled by what the
 *     database's runs of the same recipe took against the same prior (all recipes when none);
 *   - times, once jobs of this run have finished, their actual/estimated ratio (0.1 to 100).
 * The prior, seconds on one thread of a 2-core machine with the default (sampled) tasks, for
 * n = parameters in millions: evaluation 20 + 18 n (measured: 24 s at 0.26M, 95 s at 4.2M, 260 s
 * at 13.1M), plus quantization: fp 0.3 n, rtn/bnb/gguf 0.5 + 0.5 n, gptq 5 + 19 n (246 s on
 * zoo-15m), awq 10 + 25 n, autoround 30 + 60 n, aqlm 20 + 80 n, others 5 + 20 n. A model's
 * size: models.n_params from the database, else its files' bytes / 4 (a float32 file), else for
 * an untrained zoo model its config's count. A zoo training: its train.json's seconds from the
 * database's training table, else 274 s + 8.72 s per TFLOP of training (6 × matrix parameters
 * + 6 × layers × ctx × dim per token: 365, 534 and 1033 s for zoo-1m/4m/15m on 22 Nov 2026). */
#include "gen/report.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kernels/common.h"

int sched_parse_duration(const char *s, const char *what, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    double unit = 1;
    if (*end == 's') end++;
    else if (*end == 'm') unit = 60, end++;
    else if (*end == 'h') unit = 3600, end++;
    if (errno || end == s || *end || !(v >= 0) || v * unit > 1e8)
        return err("%s: '%s' is not a duration (seconds, or with s, m or h: 1200, 20m, 1.5h; "
                   "0 = none)", what, s);
    *out = v * unit;
    return 0;
}

/* ===== the zoo ===== */

/* DIR/NAME.conf's numbers (lowbit train's keys); -1 when the file cannot be read */
struct zoo_conf {
    double dim, hidden_dim, n_layers, n_heads, n_kv_heads, ctx, batch, steps, tied;
};
static int zoo_conf_read(const char *path, struct zoo_conf *c) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    *c = (struct zoo_conf){.n_heads = 1, .ctx = 256, .batch = 1, .steps = 1};
    char line[512];
    while (fgets(line, sizeof line, f)) {
        char key[64];
        double v;
        if (sscanf(line, " %63[a-z_] = %lf", key, &v) != 2) continue;
        if (!strcmp(key, "dim")) c->dim = v;
        else if (!strcmp(key, "hidden_dim")) c->hidden_dim = v;
        else if (!strcmp(key, "n_layers")) c->n_layers = v;
        else if (!strcmp(key, "n_heads")) c->n_heads = v;
        else if (!strcmp(key, "n_kv_heads")) c->n_kv_heads = v;
        else if (!strcmp(key, "ctx")) c->ctx = v;
        else if (!strcmp(key, "batch")) c->batch = v;
        else if (!strcmp(key, "steps")) c->steps = v;
        else if (!strcmp(key, "tied")) c->tied = v;
    }
    fclose(f);
    if (!c->n_kv_heads) c->n_kv_heads = c->n_heads;
    return 0;
}

/* the vocabulary zoo.sh trains with (the stories260K tokenizer, tok512.bin) */
#define ZOO_VOCAB 512.0

static double zoo_params(const struct zoo_conf *c) {
    const double kv = c->dim * c->n_kv_heads / LB_MAX(1, c->n_heads);
    const double block = 2 * c->dim + 2 * c->dim * c->dim + 2 * c->dim * kv + 3 * c->dim * c->hidden_dim;
    return ZOO_VOCAB * c->dim * (c->tied ? 1 : 2) + c->n_layers * block + c->dim;
}

static double zoo_flops(const struct zoo_conf *c) {
    const double kv = c->dim * c->n_kv_heads / LB_MAX(1, c->n_heads);
    const double matrix = c->n_layers * (2 * c->dim * c->dim + 2 * c->dim * kv +
                                         3 * c->dim * c->hidden_dim) + ZOO_VOCAB * c->dim;
    const double per_token = 6 * matrix + 6 * c->n_layers * c->ctx * c->dim;
    return per_token * c->steps * c->batch * c->ctx;
}

static bool zoo_path_ok(const char *dir) {
    return dir && *dir && !strchr(dir, '\'') && strlen(dir) < PIPE_PATH_MAX - 64;
}

int sched_zoo_check(const char *zoo_dir, const char *models_csv, char **train) {
    *train = NULL;
    if (!zoo_path_ok(zoo_dir)) return err("--zoo: '%s' is not a usable directory", zoo_dir);
    struct model_row *rows = NULL;
    int n = 0;
    if (csvin_models(models_csv, &rows, &n)) return -1;
    struct strbuf names = STRBUF_INIT, out = STRBUF_INIT;
    for (int i = 0; i < n; i++) {
        char conf[PIPE_PATH_MAX + 256];
        snprintf(conf, sizeof conf, "%s/%s.conf", zoo_dir, rows[i].id);
        if (!access(conf, R_OK)) strbuf_addf(&names, " '%s'", rows[i].id); /* ids: [A-Za-z0-9._+-] */
    }
    free(rows);
    int ret = 0;
    if (names.len) {
        char cmd[PIPE_PATH_MAX + 4096];
        snprintf(cmd, sizeof cmd, "sh '%s/zoo.sh' --check - %s", zoo_dir, names.buf);
        FILE *f = popen(cmd, "r");
        if (!f) {
            ret = err("--zoo: cannot run %s/zoo.sh: %s", zoo_dir, strerror(errno));
        } else {
            char line[PIPE_PATH_MAX + 256], name[PIPE_ID_MAX], what[16];
            while (fgets(line, sizeof line, f))
                if (sscanf(line, "%127s %15s", name, what) == 2 && !strcmp(what, "train"))
                    strbuf_addf(&out, "%s%s", out.len ? "," : "", name);
            if (pclose(f)) ret = err("--zoo: %s/zoo.sh --check failed", zoo_dir);
        }
    }
    strbuf_release(&names);
    if (ret) {
        strbuf_release(&out);
        return -1;
    }
    *train = out.len ? strbuf_detach(&out) : strdup("");
    if (!*train) return err("out of memory");
    return 0;
}

/* ===== what the database recorded ===== */

struct rec {
    char model[PIPE_ID_MAX], recipe[PIPE_ID_MAX];
    double secs;
};
struct history {
    struct rec *runs;
    int n_runs;
    struct rec *models; /* recipe = "", secs = n_params */
    int n_models;
    struct rec *trains; /* recipe = "", secs = training seconds */
    int n_trains;
};

static int hist_rows(sqlite3 *db, const char *sql, struct rec **out, int *n) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) return 0; /* an older schema */
    int cap = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *m = (const char *)sqlite3_column_text(st, 0),
                   *r = (const char *)sqlite3_column_text(st, 1);
        const double v = sqlite3_column_double(st, 2);
        if (!m || !(v > 0) || !isfinite(v)) continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 64;
            struct rec *nr = realloc(*out, (size_t)cap * sizeof *nr);
            if (!nr) break;
            *out = nr;
        }
        struct rec *e = &(*out)[(*n)++];
        snprintf(e->model, sizeof e->model, "%s", m);
        snprintf(e->recipe, sizeof e->recipe, "%s", r ? r : "");
        e->secs = v;
    }
    sqlite3_finalize(st);
    return 0;
}

static void hist_load(struct history *h, const char *db_path) {
    memset(h, 0, sizeof *h);
    sqlite3 *db = NULL;
    if (!db_path || access(db_path, R_OK) ||
        sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        return;
    }
    /* the latest ok run of each model × recipe: its wall time (started to finished, whole
     * seconds), at least its quantization + evaluation seconds */
    hist_rows(db, "SELECT model_id, recipe_id, max(coalesce(quant_seconds, 0) + "
                  "coalesce(eval_seconds, 0), coalesce((julianday(finished_at) - "
                  "julianday(started_at)) * 86400, 0)) FROM runs WHERE status = 'ok' "
                  "ORDER BY finished_at, id", &h->runs, &h->n_runs);
    hist_rows(db, "SELECT id, '', n_params FROM models", &h->models, &h->n_models);
    hist_rows(db, "SELECT model_id, '', json_extract(train_json, '$.train_seconds') FROM training",
              &h->trains, &h->n_trains);
    sqlite3_close(db);
}

static void hist_release(struct history *h) {
    free(h->runs);
    free(h->models);
    free(h->trains);
}

/* the last record of (model, recipe); recipe NULL matches any; 0 when none */
static double hist_find(const struct rec *r, int n, const char *model, const char *recipe) {
    double v = 0;
    for (int i = 0; i < n; i++)
        if (!strcmp(r[i].model, model) && (!recipe || !strcmp(r[i].recipe, recipe))) v = r[i].secs;
    return v;
}

/* ===== the prior ===== */

static double prior_job(const char *algorithm, double n_params) {
    const double n = n_params / 1e6;
    static const struct {
        const char *alg;
        double a, b;
    } q[] = {{"fp", 0, 0.3},      {"rtn", 0.5, 0.5},       {"bnb", 0.5, 0.5}, {"gguf", 0.5, 0.5},
             {"gptq", 5, 19},     {"awq", 10, 25},         {"autoround", 30, 60},
             {"aqlm", 20, 80}};
    double a = 5, b = 20;
    for (size_t i = 0; i < LB_ARRAY_LEN(q); i++)
        if (!strcasecmp(algorithm, q[i].alg)) a = q[i].a, b = q[i].b;
    return 20 + 18 * n + a + b * n;
}

static double prior_train(double flops) { return 274 + 8.72 * flops / 1e12; }

/* the bytes of a model's file, or of a directory's regular files */
static double model_bytes(const char *path) {
    struct stat st;
    if (stat(path, &st)) return 0;
    if (S_ISREG(st.st_mode)) return (double)st.st_size;
    if (!S_ISDIR(st.st_mode)) return 0;
    double sum = 0;
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char p[PIPE_PATH_MAX + 300];
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        if (e->d_name[0] != '.' && !stat(p, &st) && S_ISREG(st.st_mode)) sum += (double)st.st_size;
    }
    if (d) closedir(d);
    return sum;
}

/* LOWBIT_SCHED_COST (tests): "SECONDS" for every step, or "ID=SECONDS,...,*=SECONDS" by recipe
 * id ("train" for the zoo's trainings, "*" for the rest); -1 with a message */
static int fake_cost(const char *spec, const char *id, double *out) {
    char buf[1024], *save = NULL;
    snprintf(buf, sizeof buf, "%s", spec);
    double any = -1, mine = -1;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(t, '=');
        double v;
        if (sched_parse_duration(eq ? eq + 1 : t, "LOWBIT_SCHED_COST", &v)) return -1;
        if (!eq || !strncmp(t, "*=", 2)) any = v;
        else if ((size_t)(eq - t) == strlen(id) && !strncmp(t, id, strlen(id))) mine = v;
    }
    *out = mine >= 0 ? mine : any >= 0 ? any : 0;
    return 0;
}

/* ===== the order ===== */

/* a recipe's nominal bits: its bits column, else the digits of its dtype (int4, nf4, q4_k_m) */
static double recipe_bits(const struct recipe *r) {
    if (!isnan(r->bits)) return r->bits;
    for (const char *c = r->weight_dtype; *c; c++)
        if (*c >= '0' && *c <= '9') return atof(c);
    return 16;
}

/* each recipe's tier (gen/report.h); recipes[k] of the first model's jobs */
static void recipe_tiers(const struct job *jobs, int n, int *tier) {
    /* the baseline: fp16 > bf16 > fp32, the first in CSV order (as the board picks it) */
    int base = -1, base_rank = 9;
    for (int k = 0; k < n; k++) {
        const struct recipe *r = &jobs[k].recipe;
        if (strcasecmp(r->algorithm, "fp")) continue;
        const char *d = r->weight_dtype;
        const int rank = strstr(d, "16") ? (d[0] == 'b' ? 1 : 0) : 2;
        if (rank < base_rank) base = k, base_rank = rank;
    }
    for (int k = 0; k < n; k++) {
        const struct recipe *r = &jobs[k].recipe;
        tier[k] = k == base ? 0 : !strcasecmp(r->algorithm, "fp") ? 1 : 2;
    }
    /* per algorithm, the recipe nearest to 4 bits (fp32 compute first, then CSV order) */
    for (int k = 0; k < n; k++) {
        const struct recipe *r = &jobs[k].recipe;
        if (tier[k] != 2) continue;
        int best = k;
        for (int i = 0; i < n; i++) {
            const struct recipe *q = &jobs[i].recipe, *b = &jobs[best].recipe;
            if (strcasecmp(q->algorithm, r->algorithm)) continue;
            const double dq = fabs(recipe_bits(q) - 4), db = fabs(recipe_bits(b) - 4);
            const bool fq = !strcmp(q->compute_dtype, "fp32"), fb = !strcmp(b->compute_dtype, "fp32");
            if (dq < db || (dq == db && fq && !fb) || (dq == db && fq == fb && i < best)) best = i;
        }
        if (best == k) tier[k] = 1;
    }
}

static const struct sched *cmp_s;
static int cmp_steps(const void *a, const void *b) {
    const struct step *x = a, *y = b;
    if (x->tier != y->tier) return x->tier < y->tier ? -1 : 1;
    const double sx = cmp_s->models[x->model].n_params, sy = cmp_s->models[y->model].n_params;
    if (sx != sy) return sx < sy ? -1 : 1;
    if (x->model != y->model) return x->model < y->model ? -1 : 1;
    if (x->kind != y->kind) return x->kind == STEP_TRAIN ? -1 : 1; /* training first */
    return x->job < y->job ? -1 : x->job > y->job;
}

/* run_pending over model m's jobs: their steps WAITING or DONE */
static int judge_model(struct sched *s, const struct plan *p, int m, const char *out_dir,
                       bool retry_failed, int *step_of, struct run_stats *st) {
    const struct sched_model *sm = &s->models[m];
    struct plan view = {p->jobs + sm->first_job, sm->n_jobs};
    int *todo = xcalloc((size_t)LB_MAX(1, sm->n_jobs), sizeof *todo, "the job list");
    if (!todo) return -1;
    struct run_stats vs = {0};
    const int n = run_pending(&view, out_dir, retry_failed, todo, &vs);
    for (int i = 0; i < sm->n_jobs; i++) s->steps[step_of[sm->first_job + i]].state = STEP_DONE;
    for (int i = 0; i < n; i++) s->steps[step_of[sm->first_job + todo[i]]].state = STEP_WAITING;
    st->cached += vs.cached;
    st->failed += vs.failed;
    free(todo);
    return 0;
}

static int *step_index(const struct sched *s, int n_jobs) {
    int *of = xcalloc((size_t)LB_MAX(1, n_jobs), sizeof *of, "the step index");
    if (of)
        for (int k = 0; k < s->n_steps; k++)
            if (s->steps[k].kind == STEP_JOB) of[s->steps[k].job] = k;
    return of;
}

static double now_epoch(void) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

int sched_build(struct sched *s, const struct plan *p, const struct sched_opts *o,
                const char *out_dir, bool retry_failed, const char *train,
                struct run_stats *st) {
    memset(s, 0, sizeof *s);
    memset(st, 0, sizeof *st);
    s->o = *o;
    st->total = p->n_jobs;
    const char *fake = getenv("LOWBIT_SCHED_COST");
    double fake_secs = 0;
    if (fake && *fake) {
        if (fake_cost(fake, "*", &fake_secs)) return -1;
        s->fake_cost = true;
    }
    /* the models, in plan order (model-major) */
    s->models = xcalloc((size_t)LB_MAX(1, p->n_jobs), sizeof *s->models, "the schedule");
    s->steps = xcalloc((size_t)LB_MAX(1, 2 * p->n_jobs), sizeof *s->steps, "the schedule");
    if (!s->models || !s->steps) return sched_release(s), -1;
    for (int i = 0; i < p->n_jobs; i++) {
        if (!s->n_models || strcmp(s->models[s->n_models - 1].id, p->jobs[i].model.id)) {
            struct sched_model *m = &s->models[s->n_models++];
            snprintf(m->id, sizeof m->id, "%s", p->jobs[i].model.id);
            m->first_job = i;
            m->train = -1;
        }
        s->models[s->n_models - 1].n_jobs++;
    }
    struct history h;
    hist_load(&h, o->db_path);
    for (int m = 0; m < s->n_models; m++) {
        struct sched_model *sm = &s->models[m];
        const struct job *j = &p->jobs[sm->first_job];
        bool trains = false;
        if (train && *train) { /* a comma list of ids */
            const size_t len = strlen(sm->id);
            for (const char *c = train; (c = strstr(c, sm->id)); c += len)
                if ((c == train || c[-1] == ',') && (c[len] == ',' || !c[len])) trains = true;
        }
        struct zoo_conf zc;
        char conf[PIPE_PATH_MAX + 256];
        snprintf(conf, sizeof conf, "%s/%s.conf", o->zoo_dir ? o->zoo_dir : ".", sm->id);
        const bool has_conf = o->zoo_dir && !zoo_conf_read(conf, &zc);
        sm->n_params = hist_find(h.models, h.n_models, sm->id, NULL);
        if (trains || !(sm->n_params > 0)) {
            const double bytes = trains ? 0 : model_bytes(j->model_path);
            sm->n_params = bytes > 0 ? bytes / 4 : has_conf ? zoo_params(&zc) : 1e6;
        }
        if (trains) {
            struct step *t = &s->steps[s->n_steps];
            sm->train = s->n_steps++;
            *t = (struct step){STEP_TRAIN, -1, m, 0, 0, STEP_WAITING};
            sm->train_flops = has_conf ? zoo_flops(&zc) : 0;
            const double rec = hist_find(h.trains, h.n_trains, sm->id, NULL);
            if (s->fake_cost && fake_cost(fake, "train", &t->est)) return sched_release(s), -1;
            if (!s->fake_cost) t->est = rec > 0 ? rec : prior_train(sm->train_flops);
            s->n_train++;
        }
    }
    /* the jobs: tier, estimate */
    int *tier = xcalloc((size_t)LB_MAX(1, p->n_jobs), sizeof *tier, "the schedule");
    if (!tier) {
        hist_release(&h);
        return sched_release(s), -1;
    }
    for (int m = 0; m < s->n_models; m++) {
        const struct sched_model *sm = &s->models[m];
        recipe_tiers(p->jobs + sm->first_job, sm->n_jobs, tier + sm->first_job);
    }
    /* the database's time against the prior: per recipe, and over all recipes */
    double all_rec = 0, all_prior = 0;
    for (int i = 0; i < h.n_runs; i++) {
        const double np = hist_find(h.models, h.n_models, h.runs[i].model, NULL);
        if (!(np > 0)) continue;
        const struct job *j = NULL;
        for (int k = 0; k < p->n_jobs && !j; k++)
            if (!strcmp(p->jobs[k].recipe.id, h.runs[i].recipe)) j = &p->jobs[k];
        if (!j) continue;
        all_rec += h.runs[i].secs;
        all_prior += prior_job(j->recipe.algorithm, np);
    }
    for (int i = 0; i < p->n_jobs; i++) {
        const struct job *j = &p->jobs[i];
        int m = 0;
        while (m + 1 < s->n_models && s->models[m + 1].first_job <= i) m++;
        struct step *t = &s->steps[s->n_steps++];
        *t = (struct step){STEP_JOB, i, m, tier[i], 0, STEP_WAITING};
        const double rec = hist_find(h.runs, h.n_runs, j->model.id, j->recipe.id);
        double est = prior_job(j->recipe.algorithm, s->models[m].n_params);
        if (rec > 0) {
            est = rec;
        } else {
            double r_rec = 0, r_prior = 0; /* the same recipe on other models */
            for (int k = 0; k < h.n_runs; k++) {
                if (strcmp(h.runs[k].recipe, j->recipe.id)) continue;
                const double np = hist_find(h.models, h.n_models, h.runs[k].model, NULL);
                if (!(np > 0)) continue;
                r_rec += h.runs[k].secs;
                r_prior += prior_job(j->recipe.algorithm, np);
            }
            if (r_prior > 0) est *= r_rec / r_prior;
            else if (all_prior > 0) est *= all_rec / all_prior;
        }
        t->est = est;
        if (s->fake_cost && fake_cost(fake, j->recipe.id, &t->est)) {
            free(tier);
            hist_release(&h);
            return sched_release(s), -1;
        }
    }
    free(tier);
    hist_release(&h);
    cmp_s = s;
    qsort(s->steps, (size_t)s->n_steps, sizeof *s->steps, cmp_steps);
    for (int k = 0; k < s->n_steps; k++)
        if (s->steps[k].kind == STEP_TRAIN) s->models[s->steps[k].model].train = k;
    /* each job's state: a model that trains first is judged after its training */
    int *of = step_index(s, p->n_jobs);
    if (!of) return sched_release(s), -1;
    for (int m = 0; m < s->n_models; m++)
        if (s->models[m].train < 0 && judge_model(s, p, m, out_dir, retry_failed, of, st)) {
            free(of);
            return sched_release(s), -1;
        }
    free(of);
    /* the deadline on the runner's clock; collect and render keep 5% of the budget (<= 60 s) */
    if (o->budget > 0) {
        const double started = o->started > 0 ? o->started : now_epoch();
        s->deadline = now_s() + (started + o->budget - now_epoch());
        s->reserve = LB_MIN(60, 0.05 * o->budget);
    }
    return 0;
}

void sched_release(struct sched *s) {
    free(s->steps);
    free(s->models);
    memset(s, 0, sizeof *s);
}

int sched_model_ready(struct sched *s, struct plan *p, int m, const char *out_dir,
                      bool retry_failed, struct run_stats *st) {
    const struct sched_model *sm = &s->models[m];
    char cache[PIPE_PATH_MAX];
    if (pipe_path(cache, sizeof cache, out_dir, "cache", NULL, NULL)) return -1;
    for (int i = sm->first_job; i < sm->first_job + sm->n_jobs; i++) {
        struct job *j = &p->jobs[i], nj;
        if (plan_job(&nj, &j->model, &j->recipe, &j->ev, cache)) return -1;
        *j = nj;
    }
    int *of = step_index(s, p->n_jobs);
    if (!of) return -1;
    const int rc = judge_model(s, p, m, out_dir, retry_failed, of, st);
    free(of);
    return rc;
}

double sched_estimate(const struct sched *s, int k) {
    const struct step *t = &s->steps[k];
    if (t->kind != STEP_JOB || s->fake_cost || s->ratio_est <= 0) return t->est;
    /* a shared machine can be tens of times slower than the prior's (a stories260K job took
     * 907 s instead of 25 under a load of 18 on 2 cores): the correction is wide */
    return t->est * LB_MAX(0.1, LB_MIN(100.0, s->ratio_actual / s->ratio_est));
}

double sched_rest(const struct sched *s, int *n_jobs) {
    double sum = 0;
    int n = 0;
    for (int k = 0; k < s->n_steps; k++) {
        const struct step *t = &s->steps[k];
        if (t->state == STEP_DONE || t->state == STEP_FAILED) continue;
        sum += sched_estimate(s, k);
        n += t->kind == STEP_JOB;
    }
    if (n_jobs) *n_jobs = n;
    return sum;
}

static void fmt_dur(char *buf, size_t size, double s) {
    if (!(s >= 0) || s > 1e8) snprintf(buf, size, "?");
    else if (s < 90) snprintf(buf, size, "%.0f s", s);
    else if (s < 5400) snprintf(buf, size, "%.0f min", s / 60);
    else snprintf(buf, size, "%.1f h", s / 3600);
}

int sched_write_pending(const struct sched *s, const struct plan *p, const char *out_dir,
                        int n_parallel) {
    json_t *jobs = json_array(), *trains = json_array();
    for (int k = 0; k < s->n_steps; k++) {
        const struct step *t = &s->steps[k];
        if (t->state == STEP_DONE) continue;
        const struct sched_model *sm = &s->models[t->model];
        const bool waits = sm->train >= 0 && s->steps[sm->train].state != STEP_DONE;
        const double est = round(sched_estimate(s, k));
        if (t->kind == STEP_TRAIN) {
            json_array_append_new(trains, json_pack("{s:s, s:f}", "model_id", sm->id,
                                                    "estimated_seconds", est));
            continue;
        }
        const struct job *j = &p->jobs[t->job];
        json_array_append_new(
            jobs, json_pack("{s:s, s:s, s:o, s:f, s:s}", "model_id", j->model.id, "recipe_id",
                            j->recipe.id, "job_key", waits ? json_null() : json_string(j->key),
                            "estimated_seconds", est, "waiting_for",
                            waits ? "its model's training" : "a run"));
    }
    int n_jobs = 0;
    const double rest = sched_rest(s, &n_jobs);
    json_t *o = json_pack("{s:s, s:i, s:i, s:o, s:f, s:i, s:o, s:o}", "format", "lowbit-pending",
                          "version", 1, "pending", n_jobs, "budget_seconds",
                          s->o.budget > 0 ? json_real(s->o.budget) : json_null(),
                          "estimated_seconds", round(rest), "parallel", n_parallel, "jobs", jobs,
                          "training", trains);
    char path[PIPE_PATH_MAX];
    int rc = !o ? err("out of memory")
             : pipe_path(path, sizeof path, out_dir, "pending.json", NULL, NULL)
                 ? -1
                 : pipe_write_json(path, o);
    json_decref(o);
    return rc;
}

void sched_summary(const struct sched *s, const struct run_stats *st, int n_parallel) {
    int n_jobs = 0;
    const double rest = sched_rest(s, &n_jobs);
    char work[32], wall[32];
    fmt_dur(work, sizeof work, rest);
    fmt_dur(wall, sizeof wall, rest / LB_MAX(1, n_parallel));
    int n_train = 0;
    for (int k = 0; k < s->n_steps; k++)
        n_train += s->steps[k].kind == STEP_TRAIN && s->steps[k].state != STEP_DONE;
    if (!n_jobs && !n_train) {
        fprintf(stderr, "report: %d done, 0 pending\n", st->cached + st->done);
        return;
    }
    char trains[64] = "";
    if (n_train) snprintf(trains, sizeof trains, " (and %d zoo trainings)", n_train);
    fprintf(stderr, "report: %d done, %d pending%s, estimated %s of work for the rest (about %s "
            "at -j %d); the next run continues\n", st->cached + st->done, n_jobs, trains, work,
            wall, n_parallel);
}

void sched_print(const struct sched *s, const struct plan *p, FILE *f) {
    fprintf(f, "%-5s %-5s %-24s %-20s %-4s %-9s %s\n", "step", "kind", "model", "recipe", "tier",
            "estimate", "state");
    for (int k = 0; k < s->n_steps; k++) {
        const struct step *t = &s->steps[k];
        const struct sched_model *sm = &s->models[t->model];
        char e[32];
        fmt_dur(e, sizeof e, sched_estimate(s, k));
        const bool waits = t->kind == STEP_JOB && sm->train >= 0;
        fprintf(f, "%-5d %-5s %-24s %-20s %-4d %-9s %s\n", k + 1,
                t->kind == STEP_TRAIN ? "train" : "job", sm->id,
                t->kind == STEP_TRAIN ? "-" : p->jobs[t->job].recipe.id, t->tier, e,
                t->state == STEP_DONE ? "done" : waits ? "after its training" : "to run");
    }
}
