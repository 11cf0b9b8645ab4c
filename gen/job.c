/* gen/job.c: one job, in its own worker process: quantize the model with the recipe, evaluate the
 * artifact, and write the result file; plus the file helpers every pipeline step shares.
 *
 * Evaluation is eval/evaluate.h's library calls, the same ones `lowbit eval`, `lowbit ppl` and
 * `lowbit kld` make (so a job's numbers are exactly what they print for the same artifact); each
 * model is loaded once and the calls' structs go straight into the result:
 *   source    quantized (quant_model), then, while it is loaded, kld's base log-probs
 *             (kld_base_prepare: computed once per model, text and chunk count, cached in
 *             OUT/cache/kld under a lock)
 *   artifact  loaded once for its size and for every evaluation:
 *     tasks   eval_run (lm-eval 0.4 semantics; one call per distinct limit)
 *     ppl     ppl_run --protocol llamacpp --ctx 512, N chunks of WikiText-2 raw test
 *     kld     kld_run against the source's log-probs (the base runs in fp32, the artifact with the
 *             recipe's compute dtype); when ppl and kld use the same chunks, kld's PPL(Q) is the
 *             ppl score
 * Timings are wall clock; peak RSS is the process's high-water mark (VmHWM), reset between the
 * quantization and the evaluation through /proc/self/clear_refs when the kernel allows it
 * (otherwise getrusage's lifetime maximum, so eval_peak >= quant_peak).
 *
 * Result file (OUT/results/<key>.json, version 1), read by gen/collect.c:
 *   format "lowbit-result", version 1, origin "lowbit" | "lm-eval" | "intel", job_key, status
 *   "ok" | "failed", error (one line), log_tail and failure ("environment" | "input",
 *   pipe_failure: the next run retries the former) for failed only, model {models row}, recipe
 *   {recipes row}, run {runs row: times, host, sizes}, scores [{task, metric, value, stderr, n}],
 *   task_defs [{task, dataset_file, dataset_sha256, n_docs, n_docs_full, limit_n, seed,
 *   num_fewshot, add_bos, ctx, n_truncated (lm-eval tasks: documents whose continuation was
 *   longer than ctx, scored on its last ctx tokens)}], provenance {key: string}, samples
 *   {task: {docs: [[index, gold, pred, pred_norm, acc, acc_norm, loglik, truncated, [choice
 *   log-likelihoods]], texts: [[context, [choices], continuation]]} for the lm-eval tasks,
 *   {chunks: [[value, value2]]} for ppl (the chunk's
 *   mean NLL) and kld (its mean KLD, the model's mean NLL)}: the per-sample records. */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "eval/evaluate.h"
#include "kernels/base/sha256.h"
#include "gen/cli.h"
#include "gen/pipeline.h"
#include "gen/text.h"
#include "kernels/common.h"
#include "kernels/matmul.h"

/* ===== files ===== */

int pipe_path(char *buf, size_t size, const char *out_dir, const char *sub, const char *key,
              const char *ext) {
    const int n = snprintf(buf, size, "%s/%s%s%s%s", out_dir, sub, key ? "/" : "", key ? key : "",
                           ext ? ext : "");
    if (n >= 0 && (size_t)n < size) return 0;
    buf[0] = 0; /* never a cut path, which could name another file */
    return err("%s/%s%s%s%s: a path of %d bytes; lowbit takes at most %zu here", out_dir, sub,
               key ? "/" : "", key ? key : "", ext ? ext : "", n, size - 1);
}

int pipe_dir_check(const char *dir, const char *what) {
    const size_t n = strlen(dir);
    if (n > PIPE_PATH_MAX - 512)
        return err("%s: a path of %zu bytes; lowbit takes at most %d here (the files it writes "
                   "under it must fit its path buffers)", what, n, PIPE_PATH_MAX - 512);
    return 0;
}

int pipe_mkdirs(const char *dir) { return mkdir_p(dir); }

int pipe_lock_dir(const char *dir) {
    const int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || flock(fd, LOCK_EX)) {
        const int e = errno;
        if (fd >= 0) close(fd);
        return err("%s: cannot lock: %s", dir, strerror(e));
    }
    return fd;
}

void pipe_sweep_dead_dirs(const char *parent, const char *prefix) {
    DIR *d = opendir(parent);
    if (!d) return;
    const size_t np = strlen(prefix);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, prefix, np)) continue;
        char *path = text_printf("%s/%s", parent, e->d_name);
        const int fd = path ? open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW) : -1;
        if (fd >= 0 && !flock(fd, LOCK_EX | LOCK_NB)) /* nobody holds it: its writer is gone */
            rm_tree(path);
        if (fd >= 0) close(fd);
        free(path);
    }
    closedir(d);
}

int pipe_write_atomic(const char *path, const char *data, size_t len) {
    return write_file_atomic(path, data, len);
}

int pipe_write_json(const char *path, json_t *o) {
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
    if (!s) return err("%s: cannot serialize the JSON", path);
    size_t n = strlen(s);
    char *t = realloc(s, n + 2);
    if (!t) {
        free(s);
        return err("out of memory");
    }
    t[n] = '\n';
    t[n + 1] = 0;
    int rc = pipe_write_atomic(path, t, n + 1);
    free(t);
    return rc;
}

char *pipe_log_tail(const char *path, int max_lines, size_t max_bytes) {
    FILE *f = path ? fopen(path, "rb") : NULL;
    char *out = NULL;
    if (f && !fseek(f, 0, SEEK_END)) {
        long size = ftell(f);
        long start = size > (long)max_bytes ? size - (long)max_bytes : 0;
        out = malloc((size_t)(size - start) + 1);
        if (out && !fseek(f, start, SEEK_SET)) {
            size_t n = fread(out, 1, (size_t)(size - start), f);
            out[n] = 0;
            /* drop \r progress redraws: keep what follows the last \r of each line */
            char *w = out;
            for (char *line = out; *line;) {
                char *nl = strchr(line, '\n');
                char *end = nl ? nl : line + strlen(line);
                char *cr = line;
                for (char *p = line; p < end; p++)
                    if (*p == '\r') cr = p + 1;
                memmove(w, cr, (size_t)(end - cr));
                w += end - cr;
                if (nl) *w++ = '\n';
                line = nl ? nl + 1 : end;
            }
            *w = 0;
            /* the last max_lines lines (ignoring a trailing newline) */
            size_t len = strlen(out);
            while (len && out[len - 1] == '\n') out[--len] = 0;
            int lines = 0;
            char *p = out + len;
            while (p > out) {
                if (p[-1] == '\n' && ++lines == max_lines) break;
                p--;
            }
            if (start > 0 && p == out) { /* a cut first line: drop it */
                char *nl = strchr(out, '\n');
                if (nl) p = nl + 1;
            }
            memmove(out, p, strlen(p) + 1);
        }
    }
    if (f) fclose(f);
    if (!out) out = strdup("");
    return out;
}

void pipe_now_iso(char *buf, size_t size) {
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int pipe_result_state(const char *path, const char *key) {
    if (access(path, F_OK)) return 0;
    json_t *r = json_load_file(path, 0, NULL);
    int state = -1;
    const char *k = json_string_value(json_object_get(r, "job_key"));
    const char *s = json_string_value(json_object_get(r, "status"));
    if (k && s && !strcmp(k, key)) state = !strcmp(s, "ok") ? 1 : !strcmp(s, "failed") ? 2 : -1;
    json_decref(r);
    return state;
}

bool pipe_artifact_missing(const char *path) {
    json_t *r = json_load_file(path, 0, NULL);
    const char *a = json_string_value(json_object_get(json_object_get(r, "run"), "artifact_path"));
    bool missing = false;
    if (a && !strncmp(a, "artifacts/", 10) && !strstr(a, "..")) {
        /* path is OUT/results/KEY.json; the artifact is OUT/artifacts/... */
        char out[PIPE_PATH_MAX], full[2 * PIPE_PATH_MAX];
        snprintf(out, sizeof out, "%s", path);
        for (int up = 0; up < 2; up++) {
            char *slash = strrchr(out, '/');
            if (slash) *slash = 0;
            else snprintf(out, sizeof out, ".");
        }
        snprintf(full, sizeof full, "%s/%s", out, a);
        missing = access(full, F_OK) != 0;
    }
    json_decref(r);
    return missing;
}

/* ===== the result being built ===== */

struct result {
    json_t *root, *run, *scores, *task_defs, *prov;
    json_t *samples; /* {task: {docs | chunks}}: the per-sample records */
    char bad_score[512]; /* the first score out of its range (collect_metric_range), "" none */
};

static json_t *str_or_null(const char *s) { return s && *s ? json_string(s) : json_null(); }

static void prov_set(struct result *r, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* a provenance value, whole (no buffer to cut it) and as text: it may quote a path, a file's
 * metadata or a library's message, which json_string would refuse (and the key vanish) */
static void prov_set(struct result *r, const char *key, const char *fmt, ...) {
    char *v = NULL;
    va_list ap;
    va_start(ap, fmt);
    const int n = vasprintf(&v, fmt, ap);
    va_end(ap);
    json_object_set_new(r->prov, key, text_json(n < 0 ? "(out of memory)" : v));
    free(v);
}

static void add_score(struct result *r, const char *task, const char *metric, double value,
                      double stderr_, long long n) {
    if (!isfinite(value)) return; /* the database stores numbers only */
    const char *range = collect_metric_range(metric, value);
    if (range && !r->bad_score[0]) /* the job fails with it: collect would refuse the file */
        snprintf(r->bad_score, sizeof r->bad_score, "eval: %s/%s = %.17g is out of range "
                 "(expected %s)", task, metric, value, range);
    json_array_append_new(r->scores,
                          json_pack("{s:s, s:s, s:f, s:o, s:o}", "task", task, "metric", metric,
                                    "value", value, "stderr",
                                    isfinite(stderr_) && stderr_ >= 0 ? json_real(stderr_)
                                                                      : json_null(),
                                    "n", n >= 0 ? json_integer(n) : json_null()));
}

/* a number, or null when it is not finite */
static json_t *num_or_null(double v) { return isfinite(v) ? json_real(v) : json_null(); }

/* the task's per-document records: samples[task].docs = [[index, gold, pred, pred_norm, acc,
 * acc_norm, loglik, truncated, [choice log-likelihoods]], ...] (gen/collect.c: table samples),
 * and texts = [[context, [choices], continuation], ...] in the same order (table documents) */
static void add_task_samples(struct result *r, const char *task, const struct task_result *res,
                             const struct eval_doc_text *texts) {
    json_t *docs = json_array();
    for (int i = 0; i < res->n_docs; i++) {
        const struct task_doc_score *d = &res->docs[i];
        json_t *lls = json_array();
        for (int c = 0; c < d->n_choices; c++)
            json_array_append_new(lls, num_or_null(res->lls[d->first + c]));
        json_array_append_new(docs, json_pack("[i, i, i, i, o, o, o, b, o]", d->index, d->gold,
                                              d->pred, d->pred_norm, num_or_null(d->acc),
                                              num_or_null(d->acc_norm), num_or_null(d->loglik),
                                              d->truncated, lls));
    }
    json_t *o = json_pack("{s:o}", "docs", docs);
    if (texts) {
        json_t *tx = json_array();
        for (int i = 0; i < res->n_docs; i++) {
            const struct eval_doc_text *t = &texts[i];
            json_t *ch = json_array();
            for (int c = 0; c < t->n_choices; c++)
                json_array_append_new(ch, text_json(t->choices[c]));
            json_array_append_new(tx, json_pack("[o, o, o]", text_json(t->context), ch,
                                                text_json(t->continuation)));
        }
        json_object_set_new(o, "texts", tx);
    }
    json_object_set_new(r->samples, task, o);
}

/* ppl's and kld's per-chunk records: samples[task].chunks = [[value, value2], ...] (ppl: the
 * chunk's mean NLL, null; kld: its mean KLD and the model's mean NLL) */
static void add_chunk_samples(struct result *r, const char *task, const double *v,
                              const double *v2, int n) {
    json_t *chunks = json_array();
    for (int c = 0; c < n; c++)
        json_array_append_new(chunks, json_pack("[o, o]", num_or_null(v[c]),
                                                v2 ? num_or_null(v2[c]) : json_null()));
    json_object_set_new(r->samples, task, json_pack("{s:o}", "chunks", chunks));
}

static void host_cpu(char *buf, size_t size) {
    snprintf(buf, size, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10)) continue;
        char *c = strchr(line, ':');
        if (!c) continue;
        c++;
        while (*c == ' ' || *c == '\t') c++;
        c[strcspn(c, "\n")] = 0;
        snprintf(buf, size, "%s", c);
        break;
    }
    if (f) fclose(f);
}

static struct result result_new(const struct job *j, const char *started_at) {
    struct result r;
    json_t *model = model_row_to_json(&j->model);
    json_object_set_new(model, "files_sha256", str_or_null(j->model_sha));
    json_object_set_new(model, "architecture", json_null());
    json_object_set_new(model, "n_params", json_null());
    json_object_set_new(model, "n_params_active", json_null());
    char cpu[256];
    host_cpu(cpu, sizeof cpu);
    char rel[PIPE_PATH_MAX];
    snprintf(rel, sizeof rel, "artifacts/%s", j->key);
    r.run = json_pack("{s:s, s:o, s:s, s:o, s:o, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
                      "started_at", started_at, "finished_at", json_null(), "code_version",
                      j->code_version, "host_cpu", text_json(cpu), "threads", json_null(), "kernels_isa",
                      kernels_isa(), "quant_seconds", json_null(), "quant_peak_rss_mb",
                      json_null(), "eval_seconds", json_null(), "eval_peak_rss_mb", json_null(),
                      "artifact_path", json_null(), "artifact_bytes", json_null(),
                      "bits_per_weight", json_null(), "n_params", json_null());
    json_object_set_new(r.run, "prefill_tps", json_null());
    json_object_set_new(r.run, "decode_tps", json_null());
    json_object_set_new(r.run, "run_memory_mb", json_null());
    json_object_set_new(r.run, "n_params_active", json_null());
    r.bad_score[0] = 0;
    r.scores = json_array();
    r.task_defs = json_array();
    r.prov = json_object();
    r.samples = json_object();
    r.root = json_pack("{s:s, s:i, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:O, s:O, s:O, s:O, s:O}",
                       "format", "lowbit-result", "version", 1, "origin", "lowbit", "job_key",
                       j->key, "status", "failed", "error", json_null(), "log_tail", json_null(),
                       "model", model, "recipe", recipe_to_json(&j->recipe), "run", r.run,
                       "scores", r.scores, "task_defs", r.task_defs, "provenance", r.prov,
                       "samples", r.samples);
    json_decref(r.samples);
    json_decref(r.run);
    json_decref(r.scores);
    json_decref(r.task_defs);
    json_decref(r.prov);
    return r;
}

/* finish and write: status ok, or failed with error, the log's tail and where the failure came
 * from. The error and the log are what lowbit and the libraries printed (file contents, paths):
 * cleaned into text, never dropped (a string jansson refuses would lose the member). */
static int result_write(struct result *r, const char *out_dir, const char *key, const char *error,
                        const char *log_path, enum pipe_failure kind) {
    char now[32], path[PIPE_PATH_MAX];
    pipe_now_iso(now, sizeof now);
    json_object_set_new(r->run, "finished_at", json_string(now));
    json_object_set_new(r->root, "status", json_string(error ? "failed" : "ok"));
    if (error) {
        /* one line: the first line of the message */
        const char *e = *error ? error : "failed without a message";
        char *line = strndup(e, strcspn(e, "\n"));
        json_object_set_new(r->root, "error", text_json(line ? line : "out of memory"));
        free(line);
        fflush(stdout);
        fflush(stderr);
        char *tail = pipe_log_tail(log_path, 20, 4096);
        json_object_set_new(r->root, "log_tail", tail && *tail ? text_json(tail) : json_null());
        free(tail);
        json_object_set_new(r->root, "failure", json_string(pipe_failure_name(kind)));
    }
    if (pipe_path(path, sizeof path, out_dir, "results", NULL, NULL) || pipe_mkdirs(path) ||
        pipe_path(path, sizeof path, out_dir, "results", key, ".json"))
        return -1;
    return pipe_write_json(path, r->root);
}

int job_write_failed(const char *out_dir, const struct job *j, const char *error,
                     const char *log_path, const char *started_at, enum pipe_failure kind) {
    char now[32];
    pipe_now_iso(now, sizeof now);
    struct result r = result_new(j, started_at ? started_at : now);
    int rc = result_write(&r, out_dir, j->key, error, log_path, kind);
    json_decref(r.root);
    return rc;
}

/* ===== measuring ===== */

static double peak_rss_mb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double mb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) mb = atof(line + 6) / 1024.0;
    if (f) fclose(f);
    if (mb < 0) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        mb = ru.ru_maxrss / 1024.0;
    }
    return mb;
}

/* reset VmHWM (Linux >= 4.0: "5" > /proc/self/clear_refs); false when not allowed */
static bool reset_peak_rss(void) {
    int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
    if (fd < 0) return false;
    bool ok = write(fd, "5", 1) == 1;
    close(fd);
    return ok;
}

/* empty and re-create OUT/artifacts/<key> (leftovers of an interrupted attempt) */
static int fresh_dir(const char *dir) {
    struct stat st;
    if (!stat(dir, &st) && rm_tree(dir))
        return err("%s: cannot empty: %s", dir, strerror(errno));
    return pipe_mkdirs(dir);
}

/* ===== evaluation: eval/evaluate.h's calls, their structs copied into the result ===== */

/* err_last() with a phase prefix */
static void fail_msg(char *buf, size_t size, const char *phase) {
    const char *m = err_last();
    snprintf(buf, size, "%s: %s", phase, m && *m ? m : "failed (see the log)");
}

struct eval_ctx {
    const struct job *j;
    const struct model *m;        /* the artifact, loaded once */
    const struct tokenizer *tok;  /* its tokenizer */
    const char *artifact;
    const char *tok_path;         /* explicit tokenizer file, NULL = the artifact's own */
    const char *text;             /* the ppl/kld text */
    size_t text_len;
    enum compute_dtype compute;   /* the recipe's (for kld: the model under test's) */
    bool quiet;
};

/* the lm-eval tasks whose limit is lim, in one eval_run */
static int eval_tasks(const struct eval_ctx *c, int lim, struct result *r, char *msg, size_t msz) {
    const struct eval_spec *ev = &c->j->ev;
    enum task_id ids[TASK_COUNT];
    int n = 0;
    for (int s = 0; s < TASK_COUNT; s++)
        if (ev->on[s] && ev->limit[s] == lim) ids[n++] = (enum task_id)s;
    if (!n) return 0;
    printf("job: eval --tasks ");
    for (int k = 0; k < n; k++) printf("%s%s", k ? "," : "", task_get(ids[k])->name);
    printf(" --limit %d\n", lim);
    fflush(stdout);
    const struct eval_opts o = {.data_dir = ev->data_dir, .limit = lim, .seed = ev->seed,
                                .add_bos = -1, .compute = c->compute, .quiet = c->quiet,
                                .keep_texts = true};
    struct eval_results er;
    json_t *config = NULL;
    int ret = -1;
    if (eval_run(c->m, c->tok, ids, n, &o, &er)) {
        fail_msg(msg, msz, "eval");
        goto out;
    }
    for (int k = 0; k < er.n_tasks; k++) {
        const struct eval_task *t = &er.tasks[k];
        const char *name = task_get(t->id)->name;
        if (ev->sha[t->id][0] && strcmp(t->sha256, ev->sha[t->id])) {
            snprintf(msg, msz, "eval: %s: the data file changed since planning (sha256 %.12s, "
                     "planned %.12s); run again", name, t->sha256, ev->sha[t->id]);
            goto out;
        }
        for (int i = 0; i < t->res.n_metrics; i++)
            add_score(r, name, t->res.m[i].name, t->res.m[i].value, t->res.m[i].stderr_,
                      t->n_docs);
        add_task_samples(r, name, &t->res, t->texts);
        for (int i = 0; i < t->res.n_subjects; i++) { /* MMLU's subtasks */
            const double p = t->res.subjects[i].acc;
            const int ns = t->res.subjects[i].n;
            char *task = text_printf("%s_%s", name, t->res.subjects[i].name);
            if (!task) {
                snprintf(msg, msz, "eval: out of memory");
                goto out;
            }
            add_score(r, task, "acc", p, ns > 1 ? sqrt(p * (1 - p) / (ns - 1)) : NAN, ns);
            free(task);
        }
        json_array_append_new(
            r->task_defs,
            json_pack("{s:s, s:o, s:s, s:i, s:i, s:o, s:i, s:i, s:b, s:i, s:i}", "task", name,
                      "dataset_file", text_json(t->source), "dataset_sha256", t->sha256, "n_docs",
                      t->n_docs, "n_docs_full", t->n_docs_full, "limit_n",
                      lim ? json_integer(lim) : json_null(), "seed", er.seed, "num_fewshot", 0,
                      "add_bos", er.add_bos, "ctx", er.ctx, "n_truncated", t->n_truncated));
    }
    /* the run's configuration as `lowbit eval --json` records it; timings, hosts and paths are
     * not provenance of the numbers */
    if (!(config = eval_config_json(&er, c->m, c->artifact, c->tok_path))) {
        fail_msg(msg, msz, "eval");
        goto out;
    }
    const char *k;
    json_t *v;
    json_object_foreach(config, k, v) {
        if (!strcmp(k, "total_seconds") || !strcmp(k, "threads") || !strcmp(k, "model") ||
            !strcmp(k, "tokenizer"))
            continue;
        char pk[96];
        snprintf(pk, sizeof pk, "eval.%s", k);
        if (json_is_string(v)) prov_set(r, pk, "%s", json_string_value(v));
        else if (json_is_integer(v)) prov_set(r, pk, "%lld", (long long)json_integer_value(v));
        else if (json_is_boolean(v)) prov_set(r, pk, "%s", json_is_true(v) ? "true" : "false");
    }
    ret = 0;
out:
    json_decref(config);
    eval_results_release(&er);
    return ret;
}

static void ppl_task_def(struct result *r, const struct eval_ctx *c, const char *task, int chunks,
                         long long full) {
    const struct eval_spec *ev = &c->j->ev;
    const int slot = !strcmp(task, "ppl") ? PIPE_PPL : PIPE_KLD;
    char file[sizeof ev->text + 16]; /* named under $LOWBIT_DATA, as the tasks' files are */
    task_data_name(file, sizeof file, ev->text, ev->data_dir);
    json_array_append_new(
        r->task_defs,
        json_pack("{s:s, s:s, s:s, s:i, s:o, s:o, s:o, s:i, s:b, s:i}", "task", task,
                  "dataset_file", file, "dataset_sha256", ev->sha[slot], "n_docs", chunks,
                  "n_docs_full", full > 0 ? json_integer(full) : json_null(), "limit_n",
                  ev->limit[slot] ? json_integer(ev->limit[slot]) : json_null(), "seed",
                  json_null(), "num_fewshot", 0, "add_bos", 1, "ctx", PIPE_PPL_CTX));
}

static int eval_ppl(const struct eval_ctx *c, struct result *r, char *msg, size_t msz) {
    const struct eval_spec *ev = &c->j->ev;
    printf("job: ppl --protocol llamacpp --ctx %d --chunks %d\n", PIPE_PPL_CTX,
           ev->limit[PIPE_PPL]);
    fflush(stdout);
    const struct ppl_opts o = {.text_name = ev->text, .ctx = PIPE_PPL_CTX,
                               .protocol = PPL_LLAMACPP, .max_chunks = ev->limit[PIPE_PPL],
                               .compute = c->compute, .quiet = c->quiet};
    struct ppl_result p;
    if (ppl_run(c->m, c->tok, c->text, c->text_len, &o, &p)) {
        fail_msg(msg, msz, "ppl");
        return -1;
    }
    add_score(r, "ppl", "ppl_llamacpp_ctx512", p.ppl, p.ppl_stderr, p.scored);
    ppl_task_def(r, c, "ppl", p.n_chunks, (long long)p.text_tokens / PIPE_PPL_CTX);
    add_chunk_samples(r, "ppl", p.chunk_nll, NULL, p.n_chunks);
    ppl_result_release(&p);
    return 0;
}

/* the file-name part `lowbit kld` starts its cache files with: the base path's last component,
 * at most 64 bytes (eval/evaluate.c: "%.64s-<fingerprint>-<tokens>-c<ctx>-k<chunks>.<dtype>.kld") */
static void kld_cache_prefix(const char *base, char *out, size_t size) {
    char b[PIPE_PATH_MAX];
    snprintf(b, sizeof b, "%s", base);
    size_t n = strlen(b);
    while (n > 1 && b[n - 1] == '/') b[--n] = 0; /* an HF directory given as "dir/" */
    const char *name = strrchr(b, '/');
    name = name && name[1] ? name + 1 : b;
    snprintf(out, size, "%.64s", name);
}

/* remove the cached base files of this base (prefix-*.kld) whose header or size is wrong (a
 * file cut short by a crash: kld_base_write renames its temporary file without fsync, so after a
 * power loss the name can hold fewer bytes), so `lowbit kld` computes them again instead of
 * failing on them every time. Called with the base's lock held: no pipeline job is writing. */
static void kld_cache_sweep(const char *cache, const char *prefix) {
    DIR *d = opendir(cache);
    if (!d) return;
    const size_t np = strlen(prefix);
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *name = e->d_name;
        const size_t n = strlen(name);
        if (n <= np + 5 || strncmp(name, prefix, np) || name[np] != '-') continue;
        char path[PIPE_PATH_MAX + 300];
        snprintf(path, sizeof path, "%s/%s", cache, name);
        /* kld_base_write's temporary file (NAME.kld.XXXXXX) of a job killed while writing it
         * (up to a GiB): nobody writes this base's files while we hold its lock */
        const char *dot = strstr(name, ".kld.");
        if (dot && strlen(dot) == 11) {
            if (!unlink(path)) printf("job: kld: removed %s, left by a killed job\n", path);
            continue;
        }
        if (strcmp(name + n - 4, ".kld")) continue;
        struct kld_base_info info;
        const bool quiet_was = err_quiet();
        err_set_quiet(true); /* said below, once */
        const int bad = kld_base_info(path, &info);
        err_set_quiet(quiet_was);
        if (!bad) continue;
        if (!unlink(path))
            printf("job: kld: removed the invalid cached base log-probs %s (%s); computing them "
                   "again\n", path, err_last());
    }
    closedir(d);
}

/* the base's log-probs for kld, computed (or found in OUT/cache/kld) with the source model while
 * the job still holds it: the base model is loaded once, for quantization and for this. Jobs of one
 * model share the cached file: one computes it, the others wait. The lock is named by what names
 * the cache file (the base's file name, weights fingerprint and tokens), so two model rows that
 * differ only in bytes the fingerprint ignores (GGUF metadata, another directory) still take
 * turns. *f32: exact f32 base log-probs unless they would take more than 1 GiB (then f16, KLD
 * within ~0.05%: an fp16 model's KLD of ~1e-6 would be lost in f16 rounding of the base). */
static int kld_prepare(const struct job *j, const char *out_dir, const struct model *base,
                       const struct tokenizer *tok, const char *text, size_t len, bool quiet,
                       struct kld_base *kb, char *msg, size_t msz) {
    const struct eval_spec *ev = &j->ev;
    char cache[PIPE_PATH_MAX], lock[PIPE_PATH_MAX + 100];
    pipe_path(cache, sizeof cache, out_dir, "cache/kld", NULL, NULL);
    if (pipe_mkdirs(cache)) {
        fail_msg(msg, msz, "kld");
        return -1;
    }
    const double rows = ev->limit[PIPE_KLD] ? (double)ev->limit[PIPE_KLD] * (PIPE_PPL_CTX / 2 - 1)
                                            : 1e30;
    const struct kld_opts o = {.text_name = ev->text, .ctx = PIPE_PPL_CTX,
                               .max_chunks = ev->limit[PIPE_KLD],
                               .f32 = rows * base->cfg.vocab_size * 4.0 <= 1024.0 * 1024 * 1024,
                               .cache_dir = cache, .quiet = quiet};
    char bname[65], lhex[65];
    kld_cache_prefix(j->model_path, bname, sizeof bname);
    struct sha256 lh;
    sha256_init(&lh);
    sha256_update(&lh, bname, strlen(bname));
    sha256_hex(&lh, lhex);
    snprintf(lock, sizeof lock, "%s/base-%.16s.lock", cache, lhex);
    const int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0)
        while (flock(fd, LOCK_EX) && errno == EINTR) {}
    kld_cache_sweep(cache, bname);
    printf("job: kld base %s --ctx %d --chunks %d\n", j->model_path, PIPE_PPL_CTX,
           ev->limit[PIPE_KLD]);
    fflush(stdout);
    const int rc = kld_base_prepare(base, j->model_path, tok, text, len, &o, kb);
    if (fd >= 0) close(fd);
    if (rc) fail_msg(msg, msz, "kld");
    return rc;
}

/* the KLD percentile at frac */
static double kld_pct_at(const struct kld_result *k, double frac) {
    for (int i = 0; i < KLD_N_PCT; i++)
        if (fabs(kld_pct_frac[i] - frac) < 1e-9) return k->kld_pct[i];
    return NAN;
}

static int eval_kld(const struct eval_ctx *c, const struct kld_base *kb, bool ppl_too,
                    struct result *r, char *msg, size_t msz) {
    printf("job: kld --ctx %d --chunks %d\n", PIPE_PPL_CTX, kb->n_chunks);
    fflush(stdout);
    struct kld_result k;
    if (kld_run(c->m, kb, c->compute, c->quiet, &k)) {
        fail_msg(msg, msz, "kld");
        return -1;
    }
    const long long n = k.n;
    add_score(r, "kld", "kld_mean", k.kld_mean, k.kld_err, n);
    add_score(r, "kld", "kld_median", kld_pct_at(&k, 0.5), NAN, n);
    add_score(r, "kld", "kld_p99", kld_pct_at(&k, 0.99), NAN, n);
    add_score(r, "kld", "kld_max", kld_pct_at(&k, 1.0), NAN, n);
    add_score(r, "kld", "same_top", k.same_top, k.same_top_err, n);
    add_score(r, "kld", "dp_mean", k.dp_mean, k.dp_err, n);
    add_score(r, "kld", "dp_rms", k.dp_rms, k.dp_rms_err, n);
    add_score(r, "kld", "ppl_base", k.ppl_base, k.ppl_base_err, n);
    add_score(r, "kld", "ln_ppl_ratio", k.log_ppl_ratio, k.log_ppl_ratio_err, n);
    ppl_task_def(r, c, "kld", k.n_chunks, -1);
    add_chunk_samples(r, "kld", k.chunk_kld, k.chunk_nll, k.n_chunks);
    if (ppl_too) { /* the same chunks and positions as `lowbit ppl --protocol llamacpp` */
        add_score(r, "ppl", "ppl_llamacpp_ctx512", k.ppl_q, k.ppl_q_err, n);
        ppl_task_def(r, c, "ppl", k.n_chunks, -1);
        add_chunk_samples(r, "ppl", k.chunk_nll, NULL, k.n_chunks);
    }
    kld_result_release(&k);
    prov_set(r, "kld.base", "%s", c->j->model.path);
    prov_set(r, "kld.base_logprobs", "%s", kb->f32 ? "f32" : "f16");
    return 0;
}

/* ===== how to reproduce the run ===== */

/* s as one POSIX shell word: as is when plain, else in single quotes ('\'' for a quote) */
static void sh_word(FILE *f, const char *s) {
    bool plain = *s;
    for (const char *p = s; *p; p++)
        plain &= (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                 strchr("._/-:=+@,%", *p) != NULL;
    if (plain) {
        fputs(s, f);
        return;
    }
    fputc('\'', f);
    for (const char *p = s; *p; p++)
        if (*p == '\'') fputs("'\\''", f);
        else fputc(*p, f);
    fputc('\'', f);
}

/* one RFC 4180 cell (quoted when it holds a comma, a quote, a line break or edge spaces) */
static void csv_cell(FILE *f, const char *s) {
    size_t n = strlen(s);
    if (!strpbrk(s, ",\"\r\n") && !(n && (s[0] == ' ' || s[n - 1] == ' '))) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (const char *p = s; *p; p++) {
        if (*p == '"') fputc('"', f);
        fputc(*p, f);
    }
    fputc('"', f);
}

/* the CSV columns of a row with a value (names and values in parallel, n of them) as the shell
 * command that writes a two-line CSV file */
static void csv_lines(FILE *f, const char *const *names, const char *const *values, int n,
                      const char *file) {
    char *line = NULL;
    size_t len = 0;
    fputs("printf '%s\\n' ", f);
    for (int row = 0; row < 2; row++) {
        FILE *l = open_memstream(&line, &len);
        if (!l) return;
        for (int i = 0, k = 0; i < n; i++) {
            if (!values[i] || !*values[i]) continue;
            if (k++) fputc(',', l);
            csv_cell(l, row ? values[i] : names[i]);
        }
        fclose(l);
        sh_word(f, line);
        fputc(' ', f);
        free(line);
        line = NULL;
    }
    fprintf(f, "> %s\n", file);
}

/* the job's rows are exactly those of the repository's gen/models.csv and gen/recipes.csv (read
 * from the working directory, where `make report` runs) */
static bool rows_in_repo_csvs(const struct job *j) {
    struct model_row *models = NULL;
    struct recipe *recipes = NULL;
    int n_models = 0, n_recipes = 0;
    bool model_same = false, recipe_same = false;
    if (access("gen/models.csv", R_OK) || access("gen/recipes.csv", R_OK)) return false;
    const bool quiet_was = err_quiet();
    err_set_quiet(true); /* a broken CSV there is not this job's business */
    if (!csvin_models("gen/models.csv", &models, &n_models) &&
        !csvin_recipes("gen/recipes.csv", &recipes, &n_recipes)) {
        json_t *a = model_row_to_json(&j->model), *b = recipe_to_json(&j->recipe);
        for (int i = 0; i < n_models && !model_same; i++) {
            json_t *x = model_row_to_json(&models[i]);
            model_same = json_equal(a, x);
            json_decref(x);
        }
        for (int i = 0; i < n_recipes && !recipe_same; i++) {
            json_t *x = recipe_to_json(&recipes[i]);
            recipe_same = json_equal(b, x);
            json_decref(x);
        }
        json_decref(a);
        json_decref(b);
    }
    err_set_quiet(quiet_was);
    free(models);
    free(recipes);
    return model_same && recipe_same;
}

/* the commit lowbit was built from, out of the build's `git describe --always --dirty --tags`
 * (the first word of code_version; "" when built without git): "v1.2" (on a tag), "abc1234"
 * (from "v1.2-3-gabc1234" or a bare "abc1234"); *dirty when the tree had changes */
static void build_commit(const char *code_version, char *out, size_t size, bool *dirty) {
    const char *sp = strchr(code_version, ' ');
    char d[160];
    snprintf(d, sizeof d, "%.*s", sp ? (int)(sp - code_version) : 0, code_version);
    size_t n = strlen(d);
    *dirty = n > 6 && !strcmp(d + n - 6, "-dirty");
    if (*dirty) d[n -= 6] = 0;
    const char *g = strrchr(d, '-');
    if (g && g[1] == 'g' && g[2] && strspn(g + 2, "0123456789abcdef") == strlen(g + 2)) g += 2;
    else g = d;
    snprintf(out, size, "%s", g);
}

/* provenance repro.*: the commands that reproduce this one run from a clean checkout, typed in
 * its top directory: check out the commit lowbit was built from, build, write the model and recipe
 * rows (unless they are the repository's own), and run `lowbit job` with the same tasks and
 * limits (the seed, the context and the protocols have no options: the commit fixes them; the
 * thread count does not change a result). The job it runs has the same key as this one when the
 * model files and the data are the same, and --out out puts its result at out/results/<key>.json.
 * Owned; NULL when out of memory. */
static char *repro_command(const struct job *j, char *commit, size_t commit_size, bool *dirty) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return NULL;
    build_commit(j->code_version, commit, commit_size, dirty);
    if (commit[0]) {
        fputs("git checkout ", f);
        sh_word(f, commit);
        fputs(*dirty ? "   # lowbit was built from a modified tree: results may differ\n" : "\n", f);
    }
    fputs("make\n", f);
    const char *models = "gen/models.csv", *recipes = "gen/recipes.csv";
    if (!rows_in_repo_csvs(j)) {
        const struct model_row *m = &j->model;
        const char *mn[] = {"id", "path", "tokenizer", "display_name", "family", "base_model",
                            "model_type", "license", "notes"};
        const char *mv[] = {m->id, m->path, m->tokenizer,
                            strcmp(m->display_name, m->id) ? m->display_name : "", m->family,
                            m->base_model, m->model_type, m->license, m->notes};
        models = "repro-models.csv";
        csv_lines(f, mn, mv, (int)(sizeof mn / sizeof *mn), models);
        const struct recipe *r = &j->recipe;
        char bits[32] = "", gs[16] = "", sym[16] = "", dq[16] = "", ns[16] = "", sl[16] = "";
        if (!isnan(r->bits)) snprintf(bits, sizeof bits, "%.17g", r->bits);
        if (r->has_group_size) snprintf(gs, sizeof gs, "%d", r->group_size);
        if (r->sym >= 0) snprintf(sym, sizeof sym, "%d", r->sym);
        if (r->double_quant >= 0) snprintf(dq, sizeof dq, "%d", r->double_quant);
        if (r->calib_nsamples) snprintf(ns, sizeof ns, "%d", r->calib_nsamples);
        if (r->calib_seqlen) snprintf(sl, sizeof sl, "%d", r->calib_seqlen);
        const char *rn[] = {"id", "algorithm", "weight_dtype", "bits", "group_size", "sym",
                            "double_quant", "compute_dtype", "calib_set", "calib_nsamples",
                            "calib_seqlen", "knobs"};
        const char *rv[] = {r->id, r->algorithm, r->weight_dtype, bits, gs, sym, dq,
                            r->compute_dtype, r->calib_set, ns, sl, r->knobs};
        recipes = "repro-recipes.csv";
        csv_lines(f, rn, rv, (int)(sizeof rn / sizeof *rn), recipes);
    }
    const struct eval_spec *ev = &j->ev;
    if (strcmp(ev->data_dir, "../shared/data")) { /* the Makefile's and lowbit's default */
        fputs("LOWBIT_DATA=", f);
        sh_word(f, ev->data_dir);
        fputc(' ', f);
    }
    fputs("out/lowbit job --model-id ", f);
    sh_word(f, j->model.id);
    fputs(" --recipe-id ", f);
    sh_word(f, j->recipe.id);
    fprintf(f, " --models %s --recipes %s", models, recipes);
    /* --tasks: the enabled slots (none named = all) */
    struct eval_spec def;
    plan_eval_default(&def, false);
    bool all = true, as_default = true, none = true, same = true;
    int first = -1;
    for (int s = 0; s < PIPE_N_TASKS; s++) {
        all &= ev->on[s];
        if (!ev->on[s]) continue;
        if (first < 0) first = ev->limit[s];
        as_default &= ev->limit[s] == def.limit[s];
        none &= !ev->limit[s];
        same &= ev->limit[s] == first;
    }
    if (!all) {
        fputs(" --tasks ", f);
        for (int s = 0, k = 0; s < PIPE_N_TASKS; s++)
            if (ev->on[s]) fprintf(f, "%s%s", k++ ? "," : "", plan_slot_name(s));
    }
    /* the limits: the defaults, none (--full) or one for every task (--limit N) are all that
     * `lowbit run` and `lowbit job` can plan */
    if (!as_default && none) fputs(" --full", f);
    else if (!as_default && same) fprintf(f, " --limit %d", first);
    else if (!as_default) fputs("   # per-task limits no option gives: see task_defs", f);
    fputs(" --out out\n", f);
    if (fclose(f)) {
        free(text);
        return NULL;
    }
    if (len && text[len - 1] == '\n') text[len - 1] = 0;
    return text;
}

static void prov_repro(struct result *r, const struct job *j) {
    char commit[160];
    bool dirty = false;
    char *cmd = repro_command(j, commit, sizeof commit, &dirty);
    if (cmd) json_object_set_new(r->prov, "repro.command", json_string(cmd));
    free(cmd);
    prov_set(r, "repro.git_commit", "%s", commit[0] ? commit : "unknown (built without git)");
    prov_set(r, "repro.git_dirty", "%s", !commit[0] ? "unknown" : dirty ? "true" : "false");
}

/* the artifact's row facts: where it is, its size, parameters and bits per weight */
static void record_artifact(struct result *r, const struct model *am,
                            const struct quant_artifact *art) {
    const int64_t n_params = model_n_params(am);
    const size_t wbytes = model_weight_bytes(am);
    const char *rel = strstr(art->path, "artifacts/");
    json_object_set_new(r->run, "artifact_path", json_string(rel ? rel : art->path));
    const long long abytes = path_bytes(art->path);
    json_object_set_new(r->run, "artifact_bytes", abytes >= 0 ? json_integer(abytes) : json_null());
    json_object_set_new(r->run, "n_params", json_integer(n_params));
    /* a mixture of experts: the parameters a token goes through (dense: n_params) */
    json_object_set_new(r->run, "n_params_active", json_integer(model_n_active_params(am)));
    /* the quantizer's figure for the file it wrote when it gives one (an HF checkpoint's
     * loaded layout cannot tell e.g. nf4 from nf4 with double-quantized absmax); else the
     * loaded weights' bytes */
    double bpw = n_params ? 8.0 * (double)wbytes / (double)n_params : 0;
    for (int i = 0; i < art->n_prov; i++)
        if (!strcmp(art->prov[i].key, "quant.bits_per_weight")) {
            char *end;
            const double v = strtod(art->prov[i].value, &end);
            if (end != art->prov[i].value && v > 0 && v < 64) bpw = v;
        }
    json_object_set_new(r->run, "bits_per_weight", json_real(bpw));
}

/* what it costs to run the artifact: on this host, with this job's threads (in the run row) */
static int record_speed(struct result *r, const struct model *am, enum compute_dtype compute,
                        char *msg, size_t msz) {
    struct speed_result sp;
    printf("job: speed (prefill %d tokens, decode %d)\n", PIPE_PPL_CTX, PIPE_SPEED_DECODE);
    fflush(stdout);
    if (speed_run(am, PIPE_PPL_CTX, PIPE_SPEED_DECODE, compute, &sp)) {
        fail_msg(msg, msz, "speed");
        return -1;
    }
    json_object_set_new(r->run, "prefill_tps", json_real(sp.prefill_tps));
    json_object_set_new(r->run, "decode_tps", json_real(sp.decode_tps));
    json_object_set_new(r->run, "run_memory_mb", json_real(sp.memory_bytes / (1024.0 * 1024.0)));
    return 0;
}

/* ===== the job ===== */

/* tests/test_pipeline.c makes workers misbehave: LOWBIT_TEST_FAULT="crash:ID" (abort(): SIGABRT,
 * which sanitizers leave alone), "kill:ID" (SIGKILL, as the OOM killer sends it), "hang:ID"
 * (sleeps until killed) or "exit:ID" (exit status 3, no result) for the jobs of model ID. Unset
 * in normal use. */
static void test_fault(const struct job *j) {
    const char *f = getenv("LOWBIT_TEST_FAULT"), *colon = f ? strchr(f, ':') : NULL;
    if (!colon || strcmp(colon + 1, j->model.id)) return;
    printf("job: LOWBIT_TEST_FAULT=%s\n", f);
    fflush(stdout);
    if (!strncmp(f, "crash:", 6)) abort();
    if (!strncmp(f, "kill:", 5)) raise(SIGKILL);
    if (!strncmp(f, "exit:", 5)) _exit(3);
    if (!strncmp(f, "hang:", 5))
        for (;;) pause();
}

int job_execute(const struct job *j, const struct job_opts *o) {
    char started[32], msg[8192] = "", dir[PIPE_PATH_MAX];
    pipe_now_iso(started, sizeof started);
    struct result r = result_new(j, started);
    struct model m = MODEL_INIT, am = MODEL_INIT;
    bool m_loaded = false, am_loaded = false;
    struct tokenizer *tok = NULL;
    struct kld_base kb = {0};
    char *text = NULL;
    size_t text_len = 0;
    int ret = -1;
    lb_set_threads(o->threads);
    json_object_set_new(r.run, "threads", json_integer(lb_threads()));
    prov_repro(&r, j);
    printf("job %s: model %s (%s), recipe %s (%s)\n", j->key, j->model.id, j->model_path,
           j->recipe.id, j->recipe.algorithm);
    fflush(stdout);
    test_fault(j);

    /* the spec must be what the planner meant: same key, same code, same files */
    char *key_text = plan_key_text(j), hex[65];
    if (!key_text) goto fail;
    struct sha256 h;
    sha256_init(&h);
    sha256_update(&h, key_text, strlen(key_text));
    sha256_hex(&h, hex);
    free(key_text);
    if (strcmp(hex, j->key)) {
        snprintf(msg, sizeof msg, "job spec: its contents do not give its key %.12s (got %.12s); "
                 "re-plan with lowbit run", j->key, hex);
        goto fail;
    }
    if (strcmp(j->code_hash, plan_code_hash())) {
        snprintf(msg, sizeof msg, "job spec: planned by lowbit %s, this is %s; re-plan with "
                 "lowbit run", j->code_version, plan_code_version());
        goto fail;
    }
    if (j->model_error[0]) {
        snprintf(msg, sizeof msg, "model '%s': %s", j->model.id, j->model_error);
        goto fail;
    }
    char cache[PIPE_PATH_MAX];
    pipe_path(cache, sizeof cache, o->out_dir, "cache", NULL, NULL);
    if (plan_hash_path(j->model_path, cache, hex)) {
        fail_msg(msg, sizeof msg, "model");
        goto fail;
    }
    if (strcmp(hex, j->model_sha)) {
        snprintf(msg, sizeof msg, "model '%s': %s changed since planning; run again", j->model.id,
                 j->model_path);
        goto fail;
    }
    if (recipe_check(&j->recipe)) {
        snprintf(msg, sizeof msg, "%s", err_last());
        goto fail;
    }

    /* ---- quantize ---- */
    const double t_quant = now_s();
    if (model_load(&m, j->model_path)) {
        snprintf(msg, sizeof msg, "model '%s': %s", j->model.id, err_last());
        goto fail;
    }
    m_loaded = true;
    json_t *model = json_object_get(r.root, "model");
    json_object_set_new(model, "architecture", json_string(m.cfg.arch));
    json_object_set_new(model, "n_params", json_integer(model_n_params(&m)));
    json_object_set_new(model, "n_params_active", json_integer(model_n_active_params(&m)));
    prov_set(&r, "model.format", "%s", model_format_name(m.format));
    if (cli_load_tokenizer(&tok, &m, j->model_tokenizer[0] ? j->model_tokenizer : NULL)) {
        snprintf(msg, sizeof msg, "model '%s': %s", j->model.id, err_last());
        goto fail;
    }
    pipe_path(dir, sizeof dir, o->out_dir, "artifacts", j->key, NULL);
    if (fresh_dir(dir)) {
        fail_msg(msg, sizeof msg, "quant");
        goto fail;
    }
    char resume[4200]; /* beside the job's directory, which each attempt empties */
    snprintf(resume, sizeof resume, "%s.resume", dir);
    struct quant_job qj = {.r = &j->recipe, .m = &m, .src_path = j->model_path,
                           .src_tokenizer = j->model_tokenizer[0] ? j->model_tokenizer : NULL,
                           .tok = tok, .out_dir = dir, .resume_dir = resume,
                           .threads = o->threads, .quiet = o->quiet};
    struct quant_artifact art;
    printf("job: quantizing (%s %s)\n", j->recipe.algorithm, j->recipe.weight_dtype);
    fflush(stdout);
    if (quant_model(&qj, &art)) {
        snprintf(msg, sizeof msg, "%s", err_last());
        goto fail;
    }
    const double quant_s = j->recipe.method == QMETHOD_FP ? 0.0 : now_s() - t_quant;
    json_object_set_new(r.run, "quant_seconds", json_real(quant_s));
    json_object_set_new(r.run, "quant_peak_rss_mb", json_real(peak_rss_mb()));
    if (j->recipe.method == QMETHOD_FP)
        prov_set(&r, "quant.write_seconds", "%.3f", now_s() - t_quant);
    for (int i = 0; i < art.n_prov; i++) prov_set(&r, art.prov[i].key, "%s", art.prov[i].value);
    prov_set(&r, "quant.format", "%s", art.format);
    const char *eval_tok = art.tokenizer[0] ? art.tokenizer : j->model_tokenizer;
    if (eval_tok[0]) prov_set(&r, "eval.tokenizer_file", "%s", eval_tok);

    /* ---- the evaluation's inputs: the text, and kld's base log-probs from the source model
     * while it is loaded (tokenized as `lowbit kld --base SOURCE --tokenizer T` would) ---- */
    const bool peak_reset = reset_peak_rss();
    const double t_eval = now_s();
    const struct eval_spec *ev = &j->ev;
    if ((ev->on[PIPE_PPL] || ev->on[PIPE_KLD]) &&
        read_file_all(ev->text, "the text", &text, &text_len)) {
        fail_msg(msg, sizeof msg, "eval");
        goto fail;
    }
    if (ev->on[PIPE_KLD]) {
        const bool same_tok = !strcmp(eval_tok, j->model_tokenizer);
        struct tokenizer *ktok = same_tok ? tok : NULL;
        if (!same_tok && cli_load_tokenizer(&ktok, &m, eval_tok)) {
            fail_msg(msg, sizeof msg, "kld");
            goto fail;
        }
        const int rc = kld_prepare(j, o->out_dir, &m, ktok, text, text_len, o->quiet, &kb, msg,
                                   sizeof msg);
        if (!same_tok) tokenizer_free(ktok);
        if (rc) goto fail;
    }
    tokenizer_free(tok);
    tok = NULL;
    model_release(&m);
    m_loaded = false;

    /* ---- the artifact, loaded once: size, parameters, bits per weight ---- */
    if (model_load(&am, art.path)) {
        fail_msg(msg, sizeof msg, "artifact");
        goto fail;
    }
    am_loaded = true;
    record_artifact(&r, &am, &art);
    if (cli_load_tokenizer(&tok, &am, eval_tok[0] ? eval_tok : NULL)) {
        fail_msg(msg, sizeof msg, "eval");
        goto fail;
    }

    /* ---- evaluate ---- */
    const int compute = j->recipe.compute_dtype[0] ? compute_from_name(j->recipe.compute_dtype)
                                                   : COMPUTE_FP32;
    if (compute < 0) {
        snprintf(msg, sizeof msg, "eval: unknown compute dtype '%s' (expected fp32, fp16, bf16 "
                 "or int8)", j->recipe.compute_dtype);
        goto fail;
    }
    struct eval_ctx c = {.j = j, .m = &am, .tok = tok, .artifact = art.path,
                         .tok_path = eval_tok[0] ? eval_tok : NULL, .text = text,
                         .text_len = text_len, .compute = (enum compute_dtype)compute,
                         .quiet = o->quiet};
    bool limit_done[PIPE_N_TASKS] = {0};
    for (int s = 0; s < TASK_COUNT; s++) { /* one eval_run per distinct limit */
        if (!ev->on[s] || limit_done[s]) continue;
        for (int t = s; t < TASK_COUNT; t++)
            if (ev->limit[t] == ev->limit[s]) limit_done[t] = true;
        if (eval_tasks(&c, ev->limit[s], &r, msg, sizeof msg)) goto fail;
    }
    const bool ppl_in_kld = ev->on[PIPE_PPL] && ev->on[PIPE_KLD] &&
                            ev->limit[PIPE_PPL] == ev->limit[PIPE_KLD];
    if (ev->on[PIPE_PPL] && !ppl_in_kld && eval_ppl(&c, &r, msg, sizeof msg)) goto fail;
    if (ev->on[PIPE_KLD] && eval_kld(&c, &kb, ppl_in_kld, &r, msg, sizeof msg)) goto fail;
    if (record_speed(&r, &am, c.compute, msg, sizeof msg)) goto fail;
    if (r.bad_score[0]) {
        snprintf(msg, sizeof msg, "%s", r.bad_score);
        goto fail;
    }
    json_object_set_new(r.run, "eval_seconds", json_real(now_s() - t_eval));
    json_object_set_new(r.run, "eval_peak_rss_mb", json_real(peak_rss_mb()));
    prov_set(&r, "eval.peak_rss", "%s", peak_reset ? "eval phase only (VmHWM reset)"
                                                   : "whole job (getrusage)");
    if (j->recipe.knobs[0]) prov_set(&r, "recipe.knobs", "%s", j->recipe.knobs);
    prov_set(&r, "lowbit.code_version", "%s", j->code_version);
    ret = result_write(&r, o->out_dir, j->key, NULL, NULL, PIPE_FAIL_INPUT) ? -1 : 0;
    printf("job %s: ok\n", j->key);
    goto out;
fail:
    if (!msg[0]) fail_msg(msg, sizeof msg, "job");
    const enum pipe_failure kind = pipe_failure_of(msg);
    fprintf(stderr, "lowbit: job %s (%s × %s) failed: %s%s\n", j->key, j->model.id, j->recipe.id,
            msg, kind == PIPE_FAIL_ENVIRONMENT ? " (a failure of the environment: the next lowbit "
                                                 "run tries again)" : "");
    ret = result_write(&r, o->out_dir, j->key, msg, o->log, kind) ? -1 : 1;
out:
    tokenizer_free(tok);
    if (m_loaded) model_release(&m);
    if (am_loaded) model_release(&am);
    kld_base_release(&kb);
    free(text);
    json_decref(r.root);
    return ret;
}
