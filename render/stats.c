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
 *  - tie bands: down the board (average, descending), a run whose average is not significantly
 *    different from the run above it (the same paired bootstrap on the two runs' per-document
 *    differences) shares that run's band. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

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

int lb_better_than(const struct lb_data *d, const struct lb_run *a, const struct lb_run *b) {
    struct lb_delta dt[LB_TASK_MAX], avg;
    double *st = malloc(2 * LB_BOOT * sizeof *st);
    if (!st) return 0;
    compare_runs(d, a, b, dt, &avg, st, st + LB_BOOT);
    free(st);
    return lb_significant(&avg) ? (avg.delta > 0 ? 1 : -1) : 0;
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
        double *x;
        int n;
        r->d_ppl.state = paired(r, B, "ppl", F_VALUE, &x, &n);
        if (r->d_ppl.state == LB_D_OK) {
            r->d_ppl.n = n;
            r->d_ppl.delta = mean(x, n);
            boot_means(x, n, LB_STREAM_PPL, st);
            interval(st, &r->d_ppl);
            free(x);
        }
    }
    /* tie bands down the board */
    int band = 0;
    for (int k = 0; k < d->n_board; k++) {
        struct lb_run *r = &d->runs[d->board[k]];
        if (k == 0 || isnan(r->average)) {
            r->band = ++band;
            continue;
        }
        const struct lb_run *up = &d->runs[d->board[k - 1]];
        struct lb_delta dt[LB_TASK_MAX], avg;
        compare_runs(d, up, r, dt, &avg, st, st + LB_BOOT);
        r->band = lb_significant(&avg) || avg.state != LB_D_OK ? ++band : band;
    }
    free(st);
    return 0;
}

int lb_pareto(const struct lb_data *d, const int *runs, const double *x, const double *y, int n,
              bool maximize, int *out) {
    const int nf = chart_pareto(x, y, n, maximize, out);
    if (!d || !runs || !maximize) return nf;
    int m = 0;
    for (int k = 0; k < nf; k++)
        if (!m || lb_better_than(d, &d->runs[runs[out[k]]], &d->runs[runs[out[m - 1]]]) > 0)
            out[m++] = out[k];
    return m;
}
