/* eval/task_metrics.c: per-document scores and their aggregation, as lm-evaluation-harness
 * v0.4.2 computes them (lm_eval/api/task.py ConfigurableTask.process_results,
 * lm_eval/api/metrics.py, lm_eval/evaluator_utils.py, lm_eval/evaluator.py; the formulas are
 * the same at HEAD 4e7e0d47).
 *
 *  multiple_choice: pred = np.argmax(lls) (first maximum), acc = pred == gold;
 *      acc_norm: np.argmax(lls / [float(len(choice))]) with len = Python len = code points of
 *      the choice without the delimiter (winogrande's "choices" are its contexts; it reports acc
 *      only).
 *  loglikelihood (lambada): acc = is_greedy, perplexity item = ll.
 *  aggregation: mean(arr) = sum(arr) / len(arr); perplexity(items) = exp(-mean(items));
 *      weighted_perplexity(items) = exp(-sum(ll) / sum(n)); bits_per_byte = -sum(ll) / sum(n)
 *      / log(2).
 *  stderr (evaluator_utils.TaskOutput.calculate_aggregate_metric, bootstrap_iters = 100000):
 *      mean -> mean_stderr = sample_stddev / sqrt(n) (n - 1 in the variance);
 *      perplexity -> bootstrap_stderr (below); weighted_perplexity, bits_per_byte -> none ("N/A");
 *      "N/A" also when n < 2. We store NaN for "N/A".
 *  groups (mmlu): evaluator.py walks the group tree children first; a group's metric is
 *      aggregate_subtask_metrics = sum(metric * size) / sum(size) and its stderr
 *      pooled_sample_stderr = sqrt(sum((size - 1) * stderr^2 * size) / (sum(size) - k) /
 *      sum(size)), first over the subjects of each category (mmlu_stem, mmlu_other,
 *      mmlu_social_sciences, mmlu_humanities), then over the four categories. The metric is the
 *      micro average over all questions. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/task_impl.h"
#include "kernels/common.h"

/* ===== Python's random, for the bootstrap ===== */

/* CPython Modules/_randommodule.c: MT19937 seeded with init_by_array; random.seed(i) for an
 * int uses the 32-bit words of abs(i) (one zero word for 0); random() = (a * 2^26 + b) / 2^53
 * with a = next >> 5, b = next >> 6; random.choices(xs, k=n) = [xs[floor(random() * n)] ...]. */
struct mt {
    uint32_t s[624];
    int i;
};

static void mt_init_genrand(struct mt *m, uint32_t seed) {
    m->s[0] = seed;
    for (int i = 1; i < 624; i++)
        m->s[i] = 1812433253u * (m->s[i - 1] ^ (m->s[i - 1] >> 30)) + (uint32_t)i;
    m->i = 624;
}

static void mt_seed_int(struct mt *m, uint32_t key) {
    mt_init_genrand(m, 19650218u);
    int i = 1, j = 0;
    for (int k = 624; k; k--) { /* key_length 1 */
        m->s[i] = (m->s[i] ^ ((m->s[i - 1] ^ (m->s[i - 1] >> 30)) * 1664525u)) + key + (uint32_t)j;
        i++, j = 0;
        if (i >= 624) m->s[0] = m->s[623], i = 1;
    }
    for (int k = 623; k; k--) {
        m->s[i] = (m->s[i] ^ ((m->s[i - 1] ^ (m->s[i - 1] >> 30)) * 1566083941u)) - (uint32_t)i;
        i++;
        if (i >= 624) m->s[0] = m->s[623], i = 1;
    }
    m->s[0] = 0x80000000u;
}

static uint32_t mt_next(struct mt *m) {
    if (m->i >= 624) { /* the twist, as genrand_uint32's three loops (N = 624, M = 397) */
        uint32_t *s = m->s, y;
        int k = 0;
        for (; k < 624 - 397; k++) {
            y = (s[k] & 0x80000000u) | (s[k + 1] & 0x7fffffffu);
            s[k] = s[k + 397] ^ (y >> 1) ^ (0x9908b0dfu & (0u - (y & 1u)));
        }
        for (; k < 623; k++) {
            y = (s[k] & 0x80000000u) | (s[k + 1] & 0x7fffffffu);
            s[k] = s[k + 397 - 624] ^ (y >> 1) ^ (0x9908b0dfu & (0u - (y & 1u)));
        }
        y = (s[623] & 0x80000000u) | (s[0] & 0x7fffffffu);
        s[623] = s[396] ^ (y >> 1) ^ (0x9908b0dfu & (0u - (y & 1u)));
        m->i = 0;
    }
    uint32_t y = m->s[m->i++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

static double mt_random(struct mt *m) {
    uint32_t a = mt_next(m) >> 5, b = mt_next(m) >> 6;
    return ((double)a * 67108864.0 + (double)b) * (1.0 / 9007199254740992.0);
}

static double mean_of(const double *x, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += x[i];
    return s / n;
}

/* metrics.sample_stddev (Bessel), NaN below 2 items */
static double sample_stddev(const double *x, int n) {
    if (n < 2) return NAN;
    double mu = mean_of(x, n), s = 0;
    for (int i = 0; i < n; i++) s += (x[i] - mu) * (x[i] - mu);
    return sqrt(s / (n - 1));
}

static double mean_stderr(const double *x, int n) { return sample_stddev(x, n) / sqrt((double)n); }

/* metrics.bootstrap_stderr(perplexity, xs, iters): iters // 1000 chunks, chunk i seeded with
 * random.Random().seed(i) and producing min(1000, iters) resampled perplexities
 * exp(-mean(rnd.choices(xs, k=len(xs)))); the pool's imap returns chunks in order; result =
 * sample_stddev of all of them. Sums run left to right as CPython < 3.12's sum() does (3.12
 * compensates; the difference is at the last bits). ~2 random() per item per resample: about
 * 1e9 draws for LAMBADA's 5153 texts, split over threads by chunk. */
double task_bootstrap_perplexity_stderr(const double *ll, int n, int iters) {
    int chunk = LB_MIN(1000, iters), n_chunks = chunk ? iters / chunk : 0;
    if (n < 2 || n_chunks < 1) return NAN;
    double *res = malloc((size_t)n_chunks * (size_t)chunk * sizeof *res);
    if (!res) {
        err("out of memory: %d bootstrap samples (perplexity stderr left N/A)", iters);
        return NAN;
    }
#pragma omp parallel for schedule(dynamic, 1)
    for (int c = 0; c < n_chunks; c++) {
        struct mt m;
        mt_seed_int(&m, (uint32_t)c);
        for (int k = 0; k < chunk; k++) {
            double s = 0;
            /* floor(random() * n) of a value in [0, n): truncation is the same */
            for (int j = 0; j < n; j++) s += ll[(int)(mt_random(&m) * (double)n)];
            res[(size_t)c * (size_t)chunk + (size_t)k] = exp(-(s / n));
        }
    }
    double sd = sample_stddev(res, n_chunks * chunk);
    free(res);
    return sd;
}

/* ===== metrics ===== */

static void put(struct task_result *res, const char *name, double v, double se) {
    ASSERT(res->n_metrics < (int)LB_ARRAY_LEN(res->m));
    res->m[res->n_metrics++] = (struct metric_value){name, v, se};
}

/* np.argmax: the first maximum (a NaN wins, as numpy's argmax returns the first NaN) */
static int argmax(const double *x, int n) {
    int b = 0;
    for (int i = 0; i < n; i++) {
        if (isnan(x[i])) return i;
        if (x[i] > x[b]) b = i;
    }
    return b;
}

/* pooled_sample_stderr over groups with (stderr, size); metric = size-weighted mean */
static void pool(const double *metric, const double *se, const int *size, int k, double *m_out,
                 double *se_out) {
    double num = 0, var = 0;
    long long n = 0;
    int used = 0;
    for (int i = 0; i < k; i++) {
        if (!size[i]) continue;
        num += metric[i] * size[i];
        var += (size[i] - 1) * se[i] * se[i] * size[i];
        n += size[i];
        used++;
    }
    *m_out = n ? num / (double)n : NAN;
    *se_out = n > used ? sqrt(var / (double)(n - used) / (double)n) : NAN;
}

/* subject, then document order (qsort is not stable) */
static int cmp_subject(const void *a, const void *b) {
    const struct task_doc *const *x = a, *const *y = b;
    int c = strcmp((*x)->subject ? (*x)->subject : "", (*y)->subject ? (*y)->subject : "");
    return c ? c : (*x > *y) - (*x < *y);
}

/* MMLU: per-subject acc, then the two-level pooled group metric */
static int mmlu_metrics(const struct task_set *ts, const double *acc, struct task_result *res) {
    int n = ts->n_docs, rc = -1, ns = 0;
    const struct task_doc **order = malloc((size_t)n * sizeof *order);
    double *x = malloc((size_t)n * sizeof *x);
    /* per subject: metric, stderr, size, category (4 = outside lm-eval's 57) */
    double *sm = malloc((size_t)n * sizeof *sm), *sse = malloc((size_t)n * sizeof *sse);
    double *gm = malloc((size_t)n * sizeof *gm), *gse = malloc((size_t)n * sizeof *gse);
    int *sn = malloc((size_t)n * sizeof *sn), *scat = malloc((size_t)n * sizeof *scat);
    int *gn = malloc((size_t)n * sizeof *gn);
    res->subjects = calloc((size_t)n, sizeof *res->subjects);
    if (!order || !x || !sm || !sse || !gm || !gse || !sn || !scat || !gn || !res->subjects) {
        err("out of memory: MMLU metrics for %d documents", n);
        goto out;
    }
    for (int i = 0; i < n; i++) order[i] = &ts->docs[i];
    qsort(order, (size_t)n, sizeof *order, cmp_subject);
    for (int i = 0; i < n;) {
        const char *s = order[i]->subject ? order[i]->subject : "";
        int j = i, m = 0;
        for (; j < n && !strcmp(order[j]->subject ? order[j]->subject : "", s); j++)
            x[m++] = acc[order[j] - ts->docs];
        sm[ns] = mean_of(x, m);
        sse[ns] = mean_stderr(x, m);
        sn[ns] = m;
        int c = task_mmlu_category(s);
        scat[ns] = c < 0 ? 4 : c;
        snprintf(res->subjects[ns].name, sizeof res->subjects[ns].name, "%s", s);
        res->subjects[ns].acc = sm[ns];
        res->subjects[ns].n = m;
        ns++;
        i = j;
    }
    res->n_subjects = ns;
    double cat_m[5] = {0}, cat_se[5] = {0};
    int cat_n[5] = {0};
    for (int c = 0; c < 5; c++) {
        int k = 0;
        for (int s = 0; s < ns; s++)
            if (scat[s] == c) gm[k] = sm[s], gse[k] = sse[s], gn[k] = sn[s], cat_n[c] += sn[s], k++;
        if (k) pool(gm, gse, gn, k, &cat_m[c], &cat_se[c]);
    }
    double m, se;
    pool(cat_m, cat_se, cat_n, 5, &m, &se);
    put(res, "acc", m, se);
    rc = 0;
out:
    free(order), free(x), free(sm), free(sse), free(gm), free(gse), free(sn), free(scat), free(gn);
    if (rc) {
        free(res->subjects);
        res->subjects = NULL;
    }
    return rc;
}

int task_metrics(const struct task_set *ts, const struct request_set *rs, struct task_result *res) {
    memset(res, 0, sizeof *res);
    res->id = ts->id;
    res->n_docs = ts->n_docs;
    const struct task_info *ti = task_get(ts->id);
    if (!ti) return err("task_metrics: unknown task id %d", (int)ts->id);
    int n = ts->n_docs, rc = -1;
    if (n < 1) return err("%s: no documents to score", ti->name);
    bool per_choice = ti->kind == TASK_KIND_MC || ti->kind == TASK_KIND_MC_CONTEXTS;
    /* every (doc, choice) must have exactly one request */
    int *off = malloc((size_t)(n + 1) * sizeof *off);
    if (!off) return err("out of memory: task_metrics offsets");
    off[0] = 0;
    for (int i = 0; i < n; i++) off[i + 1] = off[i] + (per_choice ? ts->docs[i].n_choices : 1);
    int total = off[n];
    const struct lm_request **slot = calloc((size_t)total, sizeof *slot);
    double *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
    double *lls = malloc((size_t)total * sizeof *lls), *norm = malloc((size_t)total * sizeof *norm);
    res->docs = calloc((size_t)n, sizeof *res->docs);
    if (!slot || !a || !b || !lls || !norm || !res->docs) {
        err("out of memory: task_metrics for %d requests", total);
        goto out;
    }
    for (int k = 0; k < rs->n; k++) {
        const struct lm_request *q = &rs->reqs[k];
        if (q->doc < 0 || q->doc >= n || q->choice < 0 ||
            q->choice >= off[q->doc + 1] - off[q->doc]) {
            err("%s: request %d names doc %d choice %d, which the task set does not have",
                ti->name, k, q->doc, q->choice);
            goto out;
        }
        if (slot[off[q->doc] + q->choice]) {
            err("%s: two requests for doc %d choice %d", ti->name, q->doc, q->choice);
            goto out;
        }
        slot[off[q->doc] + q->choice] = q;
    }
    for (int s = 0; s < total; s++)
        if (!slot[s]) {
            int d = 0;
            while (off[d + 1] <= s) d++;
            err("%s: no scored request for doc %d choice %d", ti->name, d, s - off[d]);
            goto out;
        }

    switch (ti->kind) {
    case TASK_KIND_MC:
    case TASK_KIND_MC_CONTEXTS:
        for (int i = 0; i < n; i++) {
            const struct task_doc *d = &ts->docs[i];
            for (int j = 0; j < d->n_choices; j++) {
                lls[off[i] + j] = slot[off[i] + j]->loglik;
                norm[off[i] + j] =
                    lls[off[i] + j] / (double)utf8_chars(d->choices[j], strlen(d->choices[j]));
            }
            const int pred = argmax(lls + off[i], d->n_choices);
            const int pred_norm = argmax(norm + off[i], d->n_choices);
            a[i] = pred == d->gold ? 1.0 : 0.0;
            b[i] = pred_norm == d->gold ? 1.0 : 0.0;
            res->docs[i] = (struct task_doc_score){
                d->index, d->gold, pred, pred_norm, a[i],
                strstr(ti->metrics, "acc_norm") ? b[i] : NAN, NAN, off[i], d->n_choices, false};
        }
        if (ts->id == TASK_MMLU) {
            if (mmlu_metrics(ts, a, res)) goto out;
            break;
        }
        put(res, "acc", mean_of(a, n), mean_stderr(a, n));
        if (strstr(ti->metrics, "acc_norm")) put(res, "acc_norm", mean_of(b, n), mean_stderr(b, n));
        break;
    case TASK_KIND_LOGLIK:
        for (int i = 0; i < n; i++) {
            a[i] = slot[off[i]]->loglik;
            b[i] = slot[off[i]]->greedy ? 1.0 : 0.0;
            res->docs[i] = (struct task_doc_score){ts->docs[i].index, -1, -1, -1, b[i], NAN, a[i],
                                                   0, 0, false};
        }
        put(res, "perplexity", exp(-mean_of(a, n)),
            task_bootstrap_perplexity_stderr(a, n, 100000));
        put(res, "acc", mean_of(b, n), mean_stderr(b, n));
        break;
    case TASK_KIND_ROLLING: {
        double ll = 0;
        int64_t words = 0, bytes = 0;
        for (int i = 0; i < n; i++) {
            res->docs[i] = (struct task_doc_score){ts->docs[i].index, -1, -1, -1, NAN, NAN,
                                                   slot[off[i]]->loglik, 0, 0, false};
            ll += slot[off[i]]->loglik;
            words += ts->docs[i].words;
            bytes += ts->docs[i].bytes;
        }
        if (words <= 0 || bytes <= 0) {
            err("%s: documents without word/byte counts", ti->name);
            goto out;
        }
        put(res, "word_perplexity", exp(-ll / (double)words), NAN);
        put(res, "byte_perplexity", exp(-ll / (double)bytes), NAN);
        put(res, "bits_per_byte", -(ll / (double)bytes) / log(2.0), NAN);
        break;
    }
    }
    for (int s = 0; s < total; s++)
        if (slot[s]->truncated) {
            int d = 0;
            while (off[d + 1] <= s) d++;
            res->docs[d].truncated = true;
        }
    if (per_choice) {
        res->lls = lls;
        lls = NULL;
    }
    rc = 0;
out:
    free(off);
    free(slot);
    free(a), free(b), free(lls), free(norm);
    if (rc) task_result_release(res);
    return rc;
}

void task_result_release(struct task_result *res) {
    free(res->docs);
    free(res->lls);
    free(res->subjects);
    memset(res, 0, sizeof *res);
}
