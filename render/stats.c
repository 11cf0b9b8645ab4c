/* render/stats.c: paired statistics of a run against its model's baseline, from the per-sample
 * records (table samples), and the board's tie bands (issue 17).
 *
 * The method (about.html explains it; tests/paired_ci.py recomputes it from the published
 * details with numpy and must agree):
 *  - a task's delta is the mean over its documents of acc(run) - acc(baseline), both runs scored
 *    on the same documents: the same indices of the same data file (task_defs.dataset_sha256).
 *    Runs scored on different document sets are not compared (state LB_D_APART).
 *  - its 95% interval is a paired bootstrap over documents: B = LB_BOOT resamples of the n
 *    differences, drawn with replacement; resample b of the task at board position k takes
 *    document floor(u · n) for draw i, u = (z >> 11) · 2^-53, z = splitmix64(LB_BOOT_SEED ^ ((k+1)
 *    << 48 | b << 24 | i)); the interval is the sorted resample means' [floor(0.025 B)] and
 *    [ceil(0.975 B) - 1] entries.
 *  - the average's delta is the mean of the board tasks' deltas; its resample b is the mean of
 *    the tasks' resample-b means (documents resampled within each task, the same draws).
 *  - KLD: the run's mean KLD over the kld chunks, its interval a bootstrap over chunks (stream
 *    k = LB_STREAM_KLD); PPL: the paired delta of the chunks' mean NLL, shown as the ratio
 *    exp(delta) = PPL(run) / PPL(baseline) (stream LB_STREAM_PPL).
 *  - significant: the interval excludes 0.
 *  - tie bands, for each "rank by" choice (the average, the mean KLD, the llama.cpp perplexity,
 *    each board task): down the board in that choice's order (accuracy descending, KLD and PPL
 *    ascending, a missing score last, ties by run id), a run not significantly different from the
 *    run above it shares that run's band. The test is the same paired bootstrap on the two runs'
 *    per-document (per-chunk) differences, in the choice's stream: the average as above, task t
 *    stream t, KLD the chunks' KLD (LB_STREAM_KLD), PPL the chunks' mean NLL (LB_STREAM_PPL).
 *    Runs that cannot be compared (no records, other documents) start a new band. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/base/hash.h"
#include "render/render_impl.h"

static uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* the document of draw i of resample b of stream k among n */
static int draw(int k, int b, int i, int n) {
    const uint64_t z = splitmix64(LB_BOOT_SEED ^ ((uint64_t)(k + 1) << 48 | (uint64_t)b << 24 |
                                                  (uint64_t)i));
    const double u = (double)(z >> 11) * 0x1p-53;
    const int j = (int)floor(u * n);
    return j < n ? j : n - 1;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* the interval of the B resample statistics (sorted in place) */
static void interval(double *st, struct lb_delta *d) {
    qsort(st, LB_BOOT, sizeof *st, cmp_double);
    d->lo = st[(int)floor(0.025 * LB_BOOT)];
    d->hi = st[(int)ceil(0.975 * LB_BOOT) - 1];
    d->state = LB_D_OK;
}

/* resample means of x[0..n) for stream k into st[0..B) */
static void boot_means(const double *x, int n, int k, double *st) {
    for (int b = 0; b < LB_BOOT; b++) {
        double s = 0;
        for (int i = 0; i < n; i++) s += x[draw(k, b, i, n)];
        st[b] = s / n;
    }
}

/* the samples of run r for task, as a slice (sorted by doc) */
static const struct lb_sample *task_samples(const struct lb_run *r, const char *task, int *n) {
    int i = 0;
    while (i < r->n_samples && strcmp(r->samples[i].task, task)) i++;
    int j = i;
    while (j < r->n_samples && !strcmp(r->samples[j].task, task)) j++;
    *n = j - i;
    return r->samples + i;
}

static const struct lb_taskdef *task_def(const struct lb_run *r, const char *task) {
    for (int i = 0; i < r->n_defs; i++)
        if (!strcmp(r->defs[i].task, task)) return &r->defs[i];
    return NULL;
}

/* the per-document differences field(a) - field(b) of task into x (owned, *n of them), or why
 * not: LB_D_NONE when either run has no records, LB_D_APART when their documents differ */
enum field { F_ACC, F_VALUE };
static int paired(const struct lb_run *a, const struct lb_run *b, const char *task, enum field f,
                  double **x, int *n) {
    int na, nb;
    const struct lb_sample *sa = task_samples(a, task, &na), *sb = task_samples(b, task, &nb);
    *x = NULL;
    *n = 0;
    if (!na || !nb) return LB_D_NONE;
    const struct lb_taskdef *da = task_def(a, task), *db = task_def(b, task);
    if (na != nb || !da || !db || !da->dataset_sha256 || !db->dataset_sha256 ||
        strcmp(da->dataset_sha256, db->dataset_sha256))
        return LB_D_APART;
    double *v = malloc((size_t)na * sizeof *v);
    if (!v) return LB_D_NONE;
    for (int i = 0; i < na; i++) {
        if (sa[i].doc != sb[i].doc) {
            free(v);
            return LB_D_APART;
        }
        const double p = f == F_ACC ? sa[i].acc : sa[i].value;
        const double q = f == F_ACC ? sb[i].acc : sb[i].value;
        if (!isfinite(p) || !isfinite(q)) {
            free(v);
            return LB_D_NONE;
        }
        v[i] = p - q;
    }
    *x = v;
    *n = na;
    return LB_D_OK;
}

static double mean(const double *x, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += x[i];
    return s / n;
}

/* run a against run b on every board task and their average (streams 0..n_tasks-1, the average
 * from the same draws); d[t] per task, *avg the average */
static void compare_runs(const struct lb_data *d, const struct lb_run *a, const struct lb_run *b,
                         struct lb_delta *dt, struct lb_delta *avg, double *st, double *sum) {
    avg->state = d->n_tasks ? LB_D_OK : LB_D_NONE;
    avg->delta = 0;
    avg->n = 0;
    for (int b_ = 0; b_ < LB_BOOT; b_++) sum[b_] = 0;
    for (int t = 0; t < d->n_tasks; t++) {
        double *x;
        int n;
        struct lb_delta *o = &dt[t];
        memset(o, 0, sizeof *o);
        o->state = paired(a, b, d->tasks[t].key, F_ACC, &x, &n);
        if (o->state != LB_D_OK) {
            if (avg->state == LB_D_OK || o->state == LB_D_APART) avg->state = o->state;
            continue;
        }
        o->n = n;
        o->delta = mean(x, n);
        boot_means(x, n, t, st);
        for (int b_ = 0; b_ < LB_BOOT; b_++) sum[b_] += st[b_];
        interval(st, o);
        avg->delta += o->delta;
        avg->n += n;
        free(x);
    }
    if (avg->state != LB_D_OK) return;
    avg->delta /= d->n_tasks;
    for (int b_ = 0; b_ < LB_BOOT; b_++) st[b_] = sum[b_] / d->n_tasks;
    interval(st, avg);
}

bool lb_significant(const struct lb_delta *x) {
    return x->state == LB_D_OK && (x->lo > 0 || x->hi < 0);
}

/* ------------------------------------------------------------------ rank-by choices */

int lb_by_count(const struct lb_data *d) {
    return LB_BY_TASK + d->n_tasks;
}

const char *lb_by_key(const struct lb_data *d, int by) {
    return by == LB_BY_AVG ? "avg" : by == LB_BY_KLD ? "kld" : by == LB_BY_PPL ? "ppl"
                                                                               : d->tasks[by - LB_BY_TASK].key;
}

const char *lb_by_label(const struct lb_data *d, int by) {
    return by == LB_BY_AVG ? "Average" : by == LB_BY_KLD ? "KLD" : by == LB_BY_PPL ? "PPL"
                                                                                   : d->tasks[by - LB_BY_TASK].label;
}

bool lb_by_lower(int by) {
    return by == LB_BY_KLD || by == LB_BY_PPL;
}

double lb_by_score(const struct lb_run *r, int by) {
    return by == LB_BY_AVG ? r->average : by == LB_BY_KLD ? r->kld : by == LB_BY_PPL ? r->ppl_cpp
                                                                                     : r->acc[by - LB_BY_TASK];
}

const struct lb_delta *lb_by_delta(const struct lb_run *r, int by) {
    return by == LB_BY_AVG ? &r->d_avg : by == LB_BY_KLD ? &r->d_kld : by == LB_BY_PPL ? &r->d_ppl
                                                                                       : &r->d_acc[by - LB_BY_TASK];
}

/* a single paired quantity of a - b: task t's acc, the KLD or the ppl chunks' NLL */
static void compare_one(const struct lb_run *a, const struct lb_run *b, const char *task,
                        enum field f, int stream, struct lb_delta *o, double *st) {
    double *x;
    int n;
    memset(o, 0, sizeof *o);
    o->state = paired(a, b, task, f, &x, &n);
    if (o->state != LB_D_OK) return;
    o->n = n;
    o->delta = mean(x, n);
    boot_means(x, n, stream, st);
    interval(st, o);
    free(x);
}

/* a - b for choice by (st, sum: LB_BOOT doubles each) */
static void compare_by(const struct lb_data *d, int by, const struct lb_run *a,
                       const struct lb_run *b, struct lb_delta *o, double *st, double *sum) {
    struct lb_delta dt[LB_TASK_MAX];
    if (by == LB_BY_AVG) compare_runs(d, a, b, dt, o, st, sum);
    else if (by == LB_BY_KLD) compare_one(a, b, LB_KLD_TASK, F_VALUE, LB_STREAM_KLD, o, st);
    else if (by == LB_BY_PPL) compare_one(a, b, LB_PPLC_TASK, F_VALUE, LB_STREAM_PPL, o, st);
    else compare_one(a, b, d->tasks[by - LB_BY_TASK].key, F_ACC, by - LB_BY_TASK, o, st);
}

int lb_better_by(const struct lb_data *d, int by, const struct lb_run *a, const struct lb_run *b) {
    struct lb_delta o;
    double *st = malloc(2 * LB_BOOT * sizeof *st);
    if (!st) return 0;
    compare_by(d, by, a, b, &o, st, st + LB_BOOT);
    free(st);
    if (!lb_significant(&o)) return 0;
    return (o.delta > 0) != lb_by_lower(by) ? 1 : -1;
}

int lb_better_than(const struct lb_data *d, const struct lb_run *a, const struct lb_run *b) {
    return lb_better_by(d, LB_BY_AVG, a, b);
}

/* the board in the order of choice by: better score first, missing last, then run id */
struct by_key {
    double score;
    int64_t id;
    int run;
};

static int cmp_by_key(const void *a, const void *b) {
    const struct by_key *x = a, *y = b;
    const bool xn = isnan(x->score), yn = isnan(y->score);
    if (xn != yn) return xn ? 1 : -1;
    if (!xn && x->score != y->score) return x->score < y->score ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* by_rank and by_band of every board run for choice by; the average keeps the board's order */
static int bands_by(struct lb_data *d, int by, double *st) {
    struct by_key *k = malloc(((size_t)d->n_board + 1) * sizeof *k);
    if (!k) return err("render: out of memory for the tie bands");
    const double sign = lb_by_lower(by) ? 1 : -1;
    for (int i = 0; i < d->n_board; i++) {
        const struct lb_run *r = &d->runs[d->board[i]];
        k[i] = (struct by_key){sign * lb_by_score(r, by), r->id, d->board[i]};
    }
    if (by != LB_BY_AVG) qsort(k, (size_t)d->n_board, sizeof *k, cmp_by_key);
    int band = 0;
    for (int i = 0; i < d->n_board; i++) {
        struct lb_run *r = &d->runs[k[i].run];
        r->by_rank[by] = i + 1;
        if (i == 0 || isnan(k[i].score)) {
            r->by_band[by] = ++band;
            continue;
        }
        struct lb_delta o;
        compare_by(d, by, &d->runs[k[i - 1].run], r, &o, st, st + LB_BOOT);
        r->by_band[by] = lb_significant(&o) || o.state != LB_D_OK ? ++band : band;
    }
    free(k);
    return 0;
}

int lb_stats(struct lb_data *d) {
    double *st = malloc(2 * LB_BOOT * sizeof *st);
    if (!st) return err("render: out of memory for the bootstrap");
    for (int i = 0; i < d->n_runs; i++) {
        struct lb_run *r = &d->runs[i];
        r->d_avg.state = r->d_kld.state = r->d_ppl.state = LB_D_NONE;
        for (int t = 0; t < LB_TASK_MAX; t++) r->d_acc[t].state = LB_D_NONE;
        /* KLD: its own interval over chunks */
        int nk;
        const struct lb_sample *sk = task_samples(r, LB_KLD_TASK, &nk);
        if (r->ok && nk > 0) {
            double *x = malloc((size_t)nk * sizeof *x);
            if (!x) break;
            for (int c = 0; c < nk; c++) x[c] = sk[c].value;
            r->d_kld.delta = mean(x, nk);
            r->d_kld.n = nk;
            boot_means(x, nk, LB_STREAM_KLD, st);
            interval(st, &r->d_kld);
            free(x);
        }
        const struct lb_group *G = r->group >= 0 ? &d->groups[r->group] : NULL;
        if (!r->ok || !G || G->baseline < 0) continue;
        const struct lb_run *B = &d->runs[G->baseline];
        r->baseline = B;
        if (B == r) continue;
        compare_runs(d, r, B, r->d_acc, &r->d_avg, st, st + LB_BOOT);
        compare_one(r, B, LB_PPLC_TASK, F_VALUE, LB_STREAM_PPL, &r->d_ppl, st);
    }
    /* tie bands down the board, per rank-by choice */
    int rc = 0;
    for (int by = 0; by < lb_by_count(d) && !rc; by++) rc = bands_by(d, by, st);
    for (int k = 0; k < d->n_board; k++) {
        struct lb_run *r = &d->runs[d->board[k]];
        r->band = r->by_band[LB_BY_AVG];
    }
    free(st);
    return rc;
}

int lb_pareto(const struct lb_data *d, const int *runs, const double *x, const double *y, int n,
              bool maximize, int *out) {
    const int nf = chart_pareto(x, y, n, maximize, out);
    if (!d || !runs) return nf;
    const int by = maximize ? LB_BY_AVG : LB_BY_PPL;
    int m = 0;
    for (int k = 0; k < nf; k++)
        if (!m || lb_better_by(d, by, &d->runs[runs[out[k]]], &d->runs[runs[out[m - 1]]]) > 0)
            out[m++] = out[k];
    return m;
}

char *lb_acc_bits(const struct lb_run *r, const char *task, char sig[17], int *n) {
    const struct lb_sample *x = task_samples(r, task, n);
    const struct lb_taskdef *td = task_def(r, task);
    if (!*n || !td || !td->dataset_sha256) return NULL;
    const int nb = (*n + 7) / 8;
    uint8_t *bits = calloc((size_t)nb, 1);
    char *hex = malloc((size_t)nb * 2 + 1);
    if (!bits || !hex) {
        free(bits), free(hex);
        return NULL;
    }
    uint64_t h = fnv1a64(0xcbf29ce484222325ull, td->dataset_sha256, strlen(td->dataset_sha256));
    for (int i = 0; i < *n; i++) {
        if (x[i].acc != 0 && x[i].acc != 1) {
            free(bits), free(hex);
            return NULL;
        }
        if (x[i].acc == 1) bits[i / 8] |= (uint8_t)(1u << (i % 8));
        const int32_t doc = x[i].doc;
        h = fnv1a64(h, &doc, sizeof doc);
    }
    for (int i = 0; i < nb; i++) snprintf(hex + 2 * i, 3, "%02x", bits[i]);
    snprintf(sig, 17, "%016llx", (unsigned long long)h);
    free(bits);
    return hex;
}
