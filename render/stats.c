/* render/stats.c: paired statistics of a run against its model's baseline, from the per-sample
 * records (table samples), and the board's tie bands (issue 17).
 *
 * The method (about.html explains it; tests/paired_ci.py recomputes it from the published
 * details with numpy and must agree):
 *  - every run has, per rank-by choice, its own statistic from its records: a task's mean acc
 *    over its documents, the board tasks' mean of those (the average), the kld chunks' mean KLD,
 *    the ppl chunks' mean NLL; and B = LB_BOOT bootstrap resamples of it: resample b of stream k
 *    takes, as draw i, document floor(u · n) with u = (z >> 11) · 2^-53, z = splitmix64(
 *    LB_BOOT_SEED ^ ((k+1) << 48 | b << 24 | i)); stream k = the task's board position, KLD
 *    LB_STREAM_KLD, PPL LB_STREAM_PPL; the average's resample b is the mean of the tasks'
 *    resample-b means.
 *  - two runs are compared only on the same documents (the same indices of the same data file,
 *    task_defs.dataset_sha256; LB_D_APART otherwise). Their difference a - b and its resamples
 *    S_a[b] - S_b[b] are then the paired bootstrap over documents (the same draws for both), with
 *    standard error se = the resamples' standard deviation (divisor B - 1).
 *  - intervals are simultaneous (a max-|T| bootstrap, the resampling form of Dunnett's and Tukey's
 *    procedures): over a family of statements with estimates d_j, resamples D_j[b] and errors
 *    se_j, crit = entry ceil(LB_LEVEL · B) - 1 of the sorted max_j |D_j[b] - d_j| / se_j (se_j > 0);
 *    each interval is d_j -+ crit · se_j, and all of them hold together with probability LB_LEVEL.
 *  - the model family: all of a model's intervals at once: every delta of its runs against its
 *    baseline (each board task, the average, the PPL chunks' mean NLL) and every run's mean KLD
 *    (its own resamples S[b] - x). A delta is significant when its interval excludes 0.
 *  - the pair family, per rank-by choice: every two board runs that can be compared on it. The tie
 *    bands, the Pareto frontiers, "best recipe" and the comparison page's winner use it: down the
 *    board in the choice's order (accuracy descending, KLD and PPL ascending, a missing score last,
 *    ties by run id), a run whose difference from the run above it is not significant shares that
 *    run's band; runs that cannot be compared start a new band. */
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

/* a hash of the data file's sha256 and the document indices of x[0..n) */
static uint64_t doc_sig(const struct lb_taskdef *td, const struct lb_sample *x, int n) {
    uint64_t h = fnv1a64(0xcbf29ce484222325ull, td->dataset_sha256, strlen(td->dataset_sha256));
    for (int i = 0; i < n; i++) {
        const int32_t doc = x[i].doc;
        h = fnv1a64(h, &doc, sizeof doc);
    }
    return h ? h : 1;
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

static struct lb_delta *by_delta(struct lb_run *r, int by) {
    return by == LB_BY_AVG ? &r->d_avg : by == LB_BY_KLD ? &r->d_kld : by == LB_BY_PPL ? &r->d_ppl
                                                                                       : &r->d_acc[by - LB_BY_TASK];
}

const struct lb_delta *lb_by_delta(const struct lb_run *r, int by) {
    return by_delta((struct lb_run *)r, by);
}

/* ------------------------------------------------------------------ per-run statistics */

static struct lb_rstat *rstat(const struct lb_data *d, int run, int by) {
    return &d->rstat[(size_t)run * (size_t)lb_by_count(d) + (size_t)by];
}

/* run r's statistic on one record set (the acc or the value of task's samples, stream k) */
static void rstat_task(const struct lb_run *r, const char *task, bool acc, int k,
                       struct lb_rstat *o, double *x) {
    int n;
    const struct lb_sample *s = task_samples(r, task, &n);
    const struct lb_taskdef *td = task_def(r, task);
    o->state = LB_D_NONE;
    if (!n) return;
    for (int i = 0; i < n; i++) {
        x[i] = acc ? s[i].acc : s[i].value;
        if (!isfinite(x[i])) return;
    }
    double m = 0;
    for (int i = 0; i < n; i++) m += x[i];
    o->x = m / n;
    o->n = n;
    o->sig = td && td->dataset_sha256 ? doc_sig(td, s, n) : 0;
    o->state = LB_D_OK;
    boot_means(x, n, k, o->st);
}

/* every choice's statistic of run i; boot: room for its resamples (NULL: the run has no records),
 * x: for its largest record set */
static void rstat_run(struct lb_data *d, int i, double *boot, double *x) {
    const struct lb_run *r = &d->runs[i];
    for (int by = 0; by < lb_by_count(d); by++)
        *rstat(d, i, by) = (struct lb_rstat){.state = LB_D_NONE,
                                             .st = boot ? boot + (size_t)by * LB_BOOT : NULL};
    if (!boot) return;
    rstat_task(r, LB_KLD_TASK, false, LB_STREAM_KLD, rstat(d, i, LB_BY_KLD), x);
    rstat_task(r, LB_PPLC_TASK, false, LB_STREAM_PPL, rstat(d, i, LB_BY_PPL), x);
    struct lb_rstat *avg = rstat(d, i, LB_BY_AVG);
    double *sa = avg->st;
    *avg = (struct lb_rstat){0, 0xcbf29ce484222325ull, 0, d->n_tasks ? LB_D_OK : LB_D_NONE, sa};
    for (int b = 0; b < LB_BOOT; b++) sa[b] = 0;
    for (int t = 0; t < d->n_tasks; t++) {
        struct lb_rstat *o = rstat(d, i, LB_BY_TASK + t);
        const double *st = o->st;
        rstat_task(r, d->tasks[t].key, true, t, o, x);
        if (o->state != LB_D_OK) {
            avg->state = LB_D_NONE;
            continue;
        }
        avg->x += o->x;
        avg->n += o->n;
        avg->sig = o->sig && avg->sig ? fnv1a64(avg->sig, &o->sig, sizeof o->sig) : 0;
        for (int b = 0; b < LB_BOOT; b++) sa[b] += st[b];
    }
    if (avg->state != LB_D_OK) return;
    avg->x /= d->n_tasks;
    for (int b = 0; b < LB_BOOT; b++) sa[b] /= d->n_tasks;
}

/* ------------------------------------------------------------------ statements and families */

/* one statement: run a minus run b (b < 0: run a's own statistic) on choice by */
struct stmt {
    int state;          /* LB_D_OK, LB_D_NONE, LB_D_APART */
    double delta, se;
    int n;
    const double *sa, *sb; /* the resamples; sb NULL for a run's own statistic */
};

static struct stmt stmt_of(const struct lb_data *d, int a, int b, int by) {
    struct stmt s = {LB_D_NONE, 0, 0, 0, NULL, NULL};
    const struct lb_rstat *x = rstat(d, a, by), *y = b >= 0 ? rstat(d, b, by) : NULL;
    if (x->state != LB_D_OK || (y && y->state != LB_D_OK)) return s;
    if (y && (!x->sig || x->sig != y->sig || x->n != y->n)) {
        s.state = LB_D_APART;
        return s;
    }
    s.state = LB_D_OK;
    s.delta = x->x - (y ? y->x : 0);
    s.n = x->n;
    s.sa = x->st;
    s.sb = y ? y->st : NULL;
    double m = 0, v = 0;
    for (int k = 0; k < LB_BOOT; k++) m += s.sa[k] - (s.sb ? s.sb[k] : 0);
    m /= LB_BOOT;
    for (int k = 0; k < LB_BOOT; k++) {
        const double e = s.sa[k] - (s.sb ? s.sb[k] : 0) - m;
        v += e * e;
    }
    s.se = sqrt(v / (LB_BOOT - 1));
    return s;
}

/* fold statement s into the family's max |T| per resample */
static void family_add(double *maxt, const struct stmt *s) {
    if (s->state != LB_D_OK || !(s->se > 0)) return;
    for (int k = 0; k < LB_BOOT; k++) {
        const double t = fabs(s->sa[k] - (s->sb ? s->sb[k] : 0) - s->delta) / s->se;
        if (t > maxt[k]) maxt[k] = t;
    }
}

/* the family's critical value (sorts maxt) */
static double family_crit(double *maxt) {
    qsort(maxt, LB_BOOT, sizeof *maxt, cmp_double);
    return maxt[(int)ceil(LB_LEVEL * LB_BOOT) - 1];
}

static void delta_set(struct lb_delta *o, const struct stmt *s, double crit) {
    memset(o, 0, sizeof *o);
    o->state = s->state;
    if (s->state != LB_D_OK) return;
    o->delta = s->delta;
    o->se = s->se;
    o->crit = crit;
    o->lo = s->delta - crit * s->se;
    o->hi = s->delta + crit * s->se;
    o->n = s->n;
}

bool lb_significant(const struct lb_delta *x) {
    return x->state == LB_D_OK && (x->lo > 0 || x->hi < 0);
}

/* the statements of group G's family: a run's deltas against the baseline and its mean KLD;
 * pass 0 folds them into maxt, pass 1 sets the runs' intervals at crit */
static void group_pass(struct lb_data *d, struct lb_group *G, int pass, double *maxt, double crit) {
    const int B = G->baseline;
    const bool base_ok = B >= 0 && d->runs[B].ok;
    for (int k = 0; k < G->n_runs; k++) {
        const int i = G->runs[k];
        struct lb_run *r = &d->runs[i];
        if (!r->ok) continue;
        struct stmt s[LB_BY_MAX];
        int by[LB_BY_MAX], m = 0;
        by[m] = LB_BY_KLD, s[m++] = stmt_of(d, i, -1, LB_BY_KLD);
        if (base_ok && B != i) {
            by[m] = LB_BY_AVG, s[m++] = stmt_of(d, i, B, LB_BY_AVG);
            by[m] = LB_BY_PPL, s[m++] = stmt_of(d, i, B, LB_BY_PPL);
            for (int t = 0; t < d->n_tasks; t++)
                by[m] = LB_BY_TASK + t, s[m++] = stmt_of(d, i, B, LB_BY_TASK + t);
        }
        for (int j = 0; j < m; j++) {
            if (pass == 0) {
                family_add(maxt, &s[j]);
                G->n_stmt += s[j].state == LB_D_OK;
            } else {
                delta_set(by_delta(r, by[j]), &s[j], crit);
            }
        }
    }
}

static void group_stats(struct lb_data *d, struct lb_group *G, double *maxt) {
    for (int k = 0; k < LB_BOOT; k++) maxt[k] = 0;
    G->n_stmt = 0;
    group_pass(d, G, 0, maxt, 0);
    G->crit = family_crit(maxt);
    group_pass(d, G, 1, NULL, G->crit);
    const struct lb_run *B = G->baseline >= 0 ? &d->runs[G->baseline] : NULL;
    for (int k = 0; k < G->n_runs; k++)
        if (d->runs[G->runs[k]].ok) d->runs[G->runs[k]].baseline = B;
}

/* the pair family of choice by: every two comparable board runs */
static void pair_family(struct lb_data *d, int by, double *maxt) {
    for (int k = 0; k < LB_BOOT; k++) maxt[k] = 0;
    d->pair_n[by] = 0;
    for (int i = 0; i < d->n_board; i++)
        for (int j = i + 1; j < d->n_board; j++) {
            const struct stmt s = stmt_of(d, d->board[i], d->board[j], by);
            family_add(maxt, &s);
            d->pair_n[by] += s.state == LB_D_OK;
        }
    d->pair_crit[by] = family_crit(maxt);
}

/* a - b on choice by at the pair family's critical value */
static struct lb_delta pair_delta(const struct lb_data *d, int by, const struct lb_run *a,
                                  const struct lb_run *b) {
    struct lb_delta o;
    const struct stmt s = stmt_of(d, (int)(a - d->runs), (int)(b - d->runs), by);
    delta_set(&o, &s, d->pair_crit[by]);
    return o;
}

int lb_better_by(const struct lb_data *d, int by, const struct lb_run *a, const struct lb_run *b) {
    if (!d->rstat) return 0;
    const struct lb_delta o = pair_delta(d, by, a, b);
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
static int bands_by(struct lb_data *d, int by) {
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
        const struct lb_delta o = pair_delta(d, by, &d->runs[k[i - 1].run], r);
        r->by_band[by] = lb_significant(&o) || o.state != LB_D_OK ? ++band : band;
    }
    free(k);
    return 0;
}

int lb_stats(struct lb_data *d) {
    const int nby = lb_by_count(d);
    int most = 1;
    size_t n_rec = 0; /* ok runs with records: the only ones with resamples */
    for (int i = 0; i < d->n_runs; i++) {
        struct lb_run *r = &d->runs[i];
        memset(&r->d_avg, 0, sizeof r->d_avg), memset(&r->d_kld, 0, sizeof r->d_kld);
        memset(&r->d_ppl, 0, sizeof r->d_ppl), memset(r->d_acc, 0, sizeof r->d_acc);
        r->baseline = NULL;
        if (r->n_samples > most) most = r->n_samples;
        n_rec += r->ok && r->n_samples > 0;
    }
    d->rstat = malloc(((size_t)d->n_runs + 1) * (size_t)nby * sizeof *d->rstat);
    d->rboot = malloc((n_rec + 1) * (size_t)nby * LB_BOOT * sizeof *d->rboot);
    double *x = malloc((size_t)most * sizeof *x), *maxt = malloc(LB_BOOT * sizeof *maxt);
    if (!d->rstat || !d->rboot || !x || !maxt) {
        free(x), free(maxt);
        return err("render: out of memory for the bootstrap (%zu runs with records x %d choices "
                   "x %d resamples)", n_rec, nby, LB_BOOT);
    }
    double *boot = d->rboot;
    for (int i = 0; i < d->n_runs; i++) {
        const bool rec = d->runs[i].ok && d->runs[i].n_samples > 0;
        rstat_run(d, i, rec ? boot : NULL, x);
        if (rec) boot += (size_t)nby * LB_BOOT;
    }
    for (int g = 0; g < d->n_groups; g++) group_stats(d, &d->groups[g], maxt);
    int rc = 0;
    for (int by = 0; by < nby && !rc; by++) {
        pair_family(d, by, maxt);
        rc = bands_by(d, by);
    }
    for (int k = 0; k < d->n_board; k++) {
        struct lb_run *r = &d->runs[d->board[k]];
        r->band = r->by_band[LB_BY_AVG];
    }
    free(x), free(maxt);
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
    for (int i = 0; i < *n; i++) {
        if (x[i].acc != 0 && x[i].acc != 1) {
            free(bits), free(hex);
            return NULL;
        }
        if (x[i].acc == 1) bits[i / 8] |= (uint8_t)(1u << (i % 8));
    }
    for (int i = 0; i < nb; i++) snprintf(hex + 2 * i, 3, "%02x", bits[i]);
    snprintf(sig, 17, "%016llx", (unsigned long long)doc_sig(td, x, *n));
    free(bits);
    return hex;
}
