/* gen/collect.c: result files → the database, the only writer of out/lowbit.db.
 *
 * Each result file (OUT/results/<job_key>.json, format in gen/job.c) is validated as a whole
 * first, then loaded in one transaction: its model and recipe rows (upserted), its run, scores,
 * task definitions and provenance. A file that fails validation is reported by name and skipped,
 * so nothing of it reaches the database. Loading is idempotent: the file's sha256 is kept as the
 * run's provenance "result.sha256", and a file whose key is present with the same hash changes
 * nothing (not even the file's pages: the transaction writes nothing).
 *
 * One run per model × recipe: the leaderboard view lists every ok run, so when a newer result
 * for the same model and recipe arrives (new code, data or model files = a new key), it replaces
 * the older run. The winner: the current plan's key (when `lowbit run` calls collect), else the
 * later finished_at, else the larger key. Older result files stay on disk.
 *
 * Training provenance: when a model row is written and the model's file lies in a directory that
 * also holds lowbit train's train.json and curve.csv (gen/cmd_train.c), the same transaction
 * replaces the model's rows of training and training_curve with those files' contents (nothing
 * is written when the same bytes are already there). A malformed file is one warning line naming
 * it: the model is recorded without training rows and the run goes on. Each model is looked at
 * once per collect: from the plan's models.csv row when a plan is given, else from the first
 * lowbit result file that records it. */
#include <dirent.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernels/base/sha256.h"
#include "gen/cli.h"
#include "gen/pipeline.h"
#include "gen/text.h"
#include "kernels/common.h"

/* ===== validation ===== */

static bool is_key(const char *s) {
    if (!s || strlen(s) != 64) return false;
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
    return true;
}

enum jt { J_STR, J_STR_NULL, J_INT_NULL, J_NUM_NULL, J_INT, J_OBJ_NULL };

static int want(json_t *o, const char *obj, const char *key, enum jt t) {
    json_t *v = json_object_get(o, key);
    bool ok;
    switch (t) {
    case J_STR: ok = json_is_string(v); break;
    case J_STR_NULL: ok = !v || json_is_null(v) || json_is_string(v); break;
    case J_INT: ok = json_is_integer(v); break;
    case J_INT_NULL: ok = !v || json_is_null(v) || json_is_integer(v); break;
    case J_NUM_NULL: ok = !v || json_is_null(v) || (json_is_number(v) && isfinite(json_number_value(v))); break;
    case J_OBJ_NULL: ok = !v || json_is_null(v) || json_is_object(v); break;
    default: ok = false;
    }
    if (ok) return 0;
    static const char *const tn[] = {"a string", "a string or null", "an integer or null",
                                     "a number or null", "an integer", "an object or null"};
    return err("%s.%s: %s (expected %s)", obj, key, v ? "wrong type" : "missing", tn[t]);
}

/* ===== ranges: what a number may be before it reaches the database ===== */

static bool prefix(const char *s, const char *p) { return !strncmp(s, p, strlen(p)); }
static bool suffix(const char *s, const char *x) {
    const size_t n = strlen(s), k = strlen(x);
    return n >= k && !strcmp(s + n - k, x);
}

const char *collect_metric_range(const char *metric, double v) {
    if (!isfinite(v)) return "a finite number";
    /* fractions: lm-eval's accuracies and matches, the share of same top tokens */
    if (!strcmp(metric, "acc") || prefix(metric, "acc_") || !strcmp(metric, "exact_match") ||
        !strcmp(metric, "em") || !strcmp(metric, "f1") || !strcmp(metric, "mc1") ||
        !strcmp(metric, "mc2") || !strcmp(metric, "same_top") || !strcmp(metric, "dp_rms"))
        return v >= 0 && v <= 1 ? NULL : "a fraction in [0, 1]";
    /* perplexities: lm-eval's (word_, byte_), llama.cpp's protocol, the KLD base's */
    if (!strcmp(metric, "perplexity") || suffix(metric, "_perplexity") || prefix(metric, "ppl_") ||
        !strcmp(metric, "ppl"))
        return v >= 1 ? NULL : "a perplexity, >= 1";
    /* KL divergences (>= 0 up to rounding: a mean of -1e-12 for identical models) and bits per
     * byte */
    if (prefix(metric, "kld")) return v >= -1e-6 ? NULL : "a KL divergence, >= 0";
    if (!strcmp(metric, "bits_per_byte")) return v >= 0 ? NULL : "bits per byte, >= 0";
    if (!strcmp(metric, "dp_mean")) return v >= -1 && v <= 1 ? NULL : "a mean probability change in [-1, 1]";
    return NULL; /* another metric (ln_ppl_ratio ...): any finite number */
}

/* the numbers of a run: (lo, hi] or [lo, hi], by key; NULL when v is fine */
static const char *run_number_range(const char *key, double v) {
    if (!strcmp(key, "bits_per_weight")) return v >= 0 && v <= 64 ? NULL : "bits per weight in [0, 64]";
    if (!strcmp(key, "threads")) return v >= 1 ? NULL : "a thread count >= 1";
    return v >= 0 ? NULL : "a number >= 0"; /* seconds, MB, bytes, parameters */
}

/* every string value of o (and its keys; not nested objects: knobs are JSON text in the
 * database) is text (gen/text.h): -1 with "obj.key: byte N: what" */
static int want_text(json_t *o, const char *obj) {
    const char *k;
    json_t *v;
    size_t off;
    json_object_foreach(o, k, v) {
        const char *why = text_problem(k, strlen(k), &off);
        if (why) return err("%s: a key has %s at byte %zu", obj, why, off + 1);
        if (!json_is_string(v)) continue;
        why = text_problem(json_string_value(v), json_string_length(v), &off);
        if (why) return err("%s.%s: byte %zu: %s (text must be UTF-8 without control characters)",
                            obj, k, off + 1, why);
    }
    return 0;
}

int collect_validate(json_t *r, const char *name_key) {
    if (!json_is_object(r)) return err("not a JSON object");
    const char *fmt = json_string_value(json_object_get(r, "format"));
    if (!fmt || strcmp(fmt, "lowbit-result"))
        return err("format is not \"lowbit-result\" (not a lowbit result file)");
    if (json_integer_value(json_object_get(r, "version")) != 1)
        return err("result format version is not 1");
    const char *key = json_string_value(json_object_get(r, "job_key"));
    if (!is_key(key)) return err("job_key is not 64 lowercase hex digits");
    if (name_key && strcmp(key, name_key))
        return err("job_key %.12s... does not match the file name %.12s...", key, name_key);
    const char *status = json_string_value(json_object_get(r, "status"));
    if (!status || (strcmp(status, "ok") && strcmp(status, "failed")))
        return err("status is not \"ok\" or \"failed\"");
    if (want(r, "result", "origin", J_STR) || want(r, "result", "error", J_STR_NULL) ||
        want(r, "result", "log_tail", J_STR_NULL))
        return -1;
    if (!strcmp(status, "failed") && !json_is_string(json_object_get(r, "error")))
        return err("a failed result without an error message");
    if (want(r, "result", "failure", J_STR_NULL)) return -1;
    const char *failure = json_string_value(json_object_get(r, "failure"));
    if (failure && strcmp(failure, "environment") && strcmp(failure, "input"))
        return err("failure is \"%s\" (expected \"environment\" or \"input\")", failure);
    json_t *m = json_object_get(r, "model"), *q = json_object_get(r, "recipe"),
           *run = json_object_get(r, "run");
    if (!json_is_object(m) || !json_is_object(q) || !json_is_object(run))
        return err("model, recipe and run must be objects");
    static const char *const m_str[] = {"tokenizer", "family", "base_model", "model_type",
                                        "license", "notes", "architecture", "files_sha256"};
    if (want(m, "model", "id", J_STR) || want(m, "model", "path", J_STR) ||
        want(m, "model", "display_name", J_STR) || want(m, "model", "n_params", J_INT_NULL) ||
        want(m, "model", "n_params_active", J_INT_NULL))
        return -1;
    for (size_t i = 0; i < LB_ARRAY_LEN(m_str); i++)
        if (want(m, "model", m_str[i], J_STR_NULL)) return -1;
    if (pipe_id_check(json_string_value(json_object_get(m, "id")), "model.id")) return -1;
    const char *base = json_string_value(json_object_get(m, "base_model"));
    if (base && pipe_id_check(base, "model.base_model")) return -1;
    if (want(q, "recipe", "id", J_STR) || want(q, "recipe", "algorithm", J_STR) ||
        want(q, "recipe", "weight_dtype", J_STR) || want(q, "recipe", "compute_dtype", J_STR) ||
        want(q, "recipe", "bits", J_NUM_NULL) || want(q, "recipe", "group_size", J_INT_NULL) ||
        want(q, "recipe", "sym", J_INT_NULL) || want(q, "recipe", "double_quant", J_INT_NULL) ||
        want(q, "recipe", "calib_set", J_STR_NULL) ||
        want(q, "recipe", "calib_nsamples", J_INT_NULL) ||
        want(q, "recipe", "calib_seqlen", J_INT_NULL) || want(q, "recipe", "knobs", J_OBJ_NULL))
        return -1;
    if (pipe_id_check(json_string_value(json_object_get(q, "id")), "recipe.id")) return -1;
    if (want_text(m, "model") || want_text(q, "recipe") || want_text(run, "run")) return -1;
    json_t *bits = json_object_get(q, "bits");
    if (json_is_number(bits) && !(json_number_value(bits) >= 0 && json_number_value(bits) <= 64))
        return err("recipe.bits: %g is out of range (expected bits in [0, 64])",
                   json_number_value(bits));
    json_t *gsz = json_object_get(q, "group_size");
    if (json_is_integer(gsz) && json_integer_value(gsz) < -1)
        return err("recipe.group_size: %lld (expected -1 for per channel, or a size)",
                   (long long)json_integer_value(gsz));
    static const char *const r_str[] = {"started_at", "finished_at", "code_version", "host_cpu",
                                        "kernels_isa", "artifact_path"};
    static const char *const r_num[] = {"quant_seconds", "quant_peak_rss_mb", "eval_seconds",
                                        "eval_peak_rss_mb", "bits_per_weight", "prefill_tps",
                                        "decode_tps", "run_memory_mb"};
    static const char *const r_int[] = {"threads", "artifact_bytes", "n_params", "n_params_active"};
    for (size_t i = 0; i < LB_ARRAY_LEN(r_str); i++)
        if (want(run, "run", r_str[i], J_STR_NULL)) return -1;
    for (size_t i = 0; i < LB_ARRAY_LEN(r_num); i++)
        if (want(run, "run", r_num[i], J_NUM_NULL)) return -1;
    for (size_t i = 0; i < LB_ARRAY_LEN(r_int); i++)
        if (want(run, "run", r_int[i], J_INT_NULL)) return -1;
    for (size_t i = 0; i < LB_ARRAY_LEN(r_num) + LB_ARRAY_LEN(r_int); i++) {
        const char *k = i < LB_ARRAY_LEN(r_num) ? r_num[i] : r_int[i - LB_ARRAY_LEN(r_num)];
        json_t *v = json_object_get(run, k);
        const char *range = json_is_number(v) ? run_number_range(k, json_number_value(v)) : NULL;
        if (range) return err("run.%s: %g is out of range (expected %s)", k, json_number_value(v), range);
    }
    for (int k = 0; k < 2; k++) {
        const char *field = k ? "n_params_active" : "n_params";
        json_t *mnp = json_object_get(m, field);
        if (json_is_integer(mnp) && json_integer_value(mnp) < 0)
            return err("model.%s: %lld (expected a count >= 0)", field,
                       (long long)json_integer_value(mnp));
    }
    json_t *scores = json_object_get(r, "scores"), *defs = json_object_get(r, "task_defs"),
           *prov = json_object_get(r, "provenance");
    if (!json_is_array(scores) || !json_is_array(defs) || !json_is_object(prov))
        return err("scores and task_defs must be arrays, provenance an object");
    size_t i;
    json_t *s;
    /* duplicates through a set (a JSON object: a hash table), in linear time */
    json_t *seen = json_object();
    int ret = -1;
    json_array_foreach(scores, i, s) {
        char what[48];
        snprintf(what, sizeof what, "scores[%zu]", i);
        if (!json_is_object(s)) {
            err("%s is not an object", what);
            goto out;
        }
        if (want(s, what, "task", J_STR) || want(s, what, "metric", J_STR) ||
            want(s, what, "stderr", J_NUM_NULL) || want(s, what, "n", J_INT_NULL) ||
            want_text(s, what))
            goto out;
        json_t *v = json_object_get(s, "value"), *se = json_object_get(s, "stderr"),
               *n = json_object_get(s, "n");
        if (!json_is_number(v) || !isfinite(json_number_value(v))) {
            err("%s.value: not a finite number", what);
            goto out;
        }
        const char *ta = json_string_value(json_object_get(s, "task")),
                   *me = json_string_value(json_object_get(s, "metric"));
        if (!*ta || !*me) {
            err("%s: empty task or metric", what);
            goto out;
        }
        const char *range = collect_metric_range(me, json_number_value(v));
        if (range) {
            err("%s.value: %.17g is out of range for %s/%s (expected %s)", what,
                json_number_value(v), ta, me, range);
            goto out;
        }
        if (json_is_number(se) && json_number_value(se) < 0) {
            err("%s.stderr: %g (expected a standard error >= 0)", what, json_number_value(se));
            goto out;
        }
        if (json_is_integer(n) && json_integer_value(n) < 0) {
            err("%s.n: %lld (expected a count >= 0)", what, (long long)json_integer_value(n));
            goto out;
        }
        char *pair = text_printf("%zu:%s%s", strlen(ta), ta, me);
        const bool dup = pair && json_object_get(seen, pair);
        if (pair && !dup) json_object_set_new(seen, pair, json_true());
        free(pair);
        if (dup) {
            err("%s: %s/%s appears twice", what, ta, me);
            goto out;
        }
    }
    json_object_clear(seen);
    json_array_foreach(defs, i, s) {
        char what[48];
        snprintf(what, sizeof what, "task_defs[%zu]", i);
        if (!json_is_object(s)) {
            err("%s is not an object", what);
            goto out;
        }
        if (want(s, what, "task", J_STR) || want(s, what, "dataset_file", J_STR) ||
            want(s, what, "dataset_sha256", J_STR) || want(s, what, "n_docs", J_INT) ||
            want(s, what, "n_docs_full", J_INT_NULL) || want(s, what, "limit_n", J_INT_NULL) ||
            want(s, what, "seed", J_INT_NULL) || want(s, what, "num_fewshot", J_INT_NULL) ||
            want(s, what, "ctx", J_INT_NULL) || want(s, what, "n_truncated", J_INT_NULL) ||
            want_text(s, what))
            goto out;
        static const char *const counts[] = {"n_docs", "n_docs_full", "limit_n", "num_fewshot",
                                             "ctx", "n_truncated"};
        for (size_t c = 0; c < LB_ARRAY_LEN(counts); c++) {
            json_t *v = json_object_get(s, counts[c]);
            if (json_is_integer(v) && json_integer_value(v) < 0) {
                err("%s.%s: %lld (expected a count >= 0)", what, counts[c],
                    (long long)json_integer_value(v));
                goto out;
            }
        }
        json_t *ab = json_object_get(s, "add_bos");
        if (ab && !json_is_null(ab) && !json_is_boolean(ab) && !json_is_integer(ab)) {
            err("%s.add_bos: not a boolean", what);
            goto out;
        }
        const char *ta = json_string_value(json_object_get(s, "task"));
        if (json_object_get(seen, ta)) {
            err("%s: task %s appears twice", what, ta);
            goto out;
        }
        json_object_set_new(seen, ta, json_true());
    }
    const char *pk;
    json_t *pv;
    json_object_foreach(prov, pk, pv) {
        if (!json_is_string(pv) && !json_is_null(pv)) {
            err("provenance.%s: not a string", pk);
            goto out;
        }
    }
    if (want_text(prov, "provenance")) goto out;
    ret = 0;
out:
    json_decref(seen);
    return ret;
}

/* ===== binding ===== */

static void bind_json(sqlite3_stmt *st, int i, json_t *v) {
    if (json_is_string(v)) sqlite3_bind_text(st, i, json_string_value(v), -1, SQLITE_TRANSIENT);
    else if (json_is_integer(v)) sqlite3_bind_int64(st, i, json_integer_value(v));
    else if (json_is_real(v)) sqlite3_bind_double(st, i, json_real_value(v));
    else if (json_is_boolean(v)) sqlite3_bind_int(st, i, json_is_true(v));
    else if (json_is_object(v) || json_is_array(v)) {
        char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
        sqlite3_bind_text(st, i, s ? s : "", -1, SQLITE_TRANSIENT);
        free(s);
    } else sqlite3_bind_null(st, i);
}

/* prepare, bind the members keys[] of o in order as ?1.., step once */
static int exec_json(sqlite3 *db, const char *sql, json_t *o, const char *const *keys, int n_keys,
                     sqlite3_int64 extra, bool bind_extra) {
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) return err("collect: %s: %s", db_errmsg(db), sql);
    int i = 1;
    if (bind_extra) sqlite3_bind_int64(st, i++, extra);
    for (int k = 0; k < n_keys; k++) bind_json(st, i++, json_object_get(o, keys[k]));
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return err("collect: %s", db_errmsg(db));
    return 0;
}

static const char *const model_keys[] = {"id", "path", "tokenizer", "display_name", "family",
                                          "base_model", "model_type", "license", "notes",
                                          "architecture", "n_params", "files_sha256",
                                          "n_params_active"};
/* the measured columns keep their value when a row brings NULL (a failed run knows none) */
static const char model_upsert[] =
    "INSERT INTO models (id, path, tokenizer, display_name, family, base_model, model_type, "
    "license, notes, architecture, n_params, files_sha256, n_params_active) VALUES (?1,?2,?3,?4,"
    "?5,?6,?7,?8,?9,?10,?11,?12,?13) ON CONFLICT(id) DO UPDATE SET path = excluded.path, tokenizer = "
    "excluded.tokenizer, display_name = excluded.display_name, family = excluded.family, "
    "base_model = excluded.base_model, model_type = excluded.model_type, license = "
    "excluded.license, notes = excluded.notes, architecture = coalesce(excluded.architecture, "
    "architecture), n_params = coalesce(excluded.n_params, n_params), files_sha256 = "
    "coalesce(excluded.files_sha256, files_sha256), n_params_active = "
    "coalesce(excluded.n_params_active, n_params_active) WHERE path IS NOT excluded.path OR tokenizer "
    "IS NOT excluded.tokenizer OR display_name IS NOT excluded.display_name OR family IS NOT "
    "excluded.family OR base_model IS NOT excluded.base_model OR model_type IS NOT "
    "excluded.model_type OR license IS NOT excluded.license OR notes IS NOT excluded.notes OR "
    "(excluded.architecture IS NOT NULL AND architecture IS NOT excluded.architecture) OR "
    "(excluded.n_params IS NOT NULL AND n_params IS NOT excluded.n_params) OR "
    "(excluded.files_sha256 IS NOT NULL AND files_sha256 IS NOT excluded.files_sha256) OR "
    "(excluded.n_params_active IS NOT NULL AND n_params_active IS NOT excluded.n_params_active)";

static const char *const recipe_keys[] = {"id", "algorithm", "weight_dtype", "bits", "group_size",
                                           "sym", "double_quant", "compute_dtype", "calib_set",
                                           "calib_nsamples", "calib_seqlen", "knobs"};
static const char recipe_upsert[] =
    "INSERT INTO recipes (id, algorithm, weight_dtype, bits, group_size, sym, double_quant, "
    "compute_dtype, calib_set, calib_nsamples, calib_seqlen, knobs) VALUES (?1,?2,?3,?4,?5,?6,"
    "?7,?8,?9,?10,?11,?12) ON CONFLICT(id) DO UPDATE SET algorithm = excluded.algorithm, "
    "weight_dtype = excluded.weight_dtype, bits = excluded.bits, group_size = "
    "excluded.group_size, sym = excluded.sym, double_quant = excluded.double_quant, "
    "compute_dtype = excluded.compute_dtype, calib_set = excluded.calib_set, calib_nsamples = "
    "excluded.calib_nsamples, calib_seqlen = excluded.calib_seqlen, knobs = excluded.knobs WHERE "
    "algorithm IS NOT excluded.algorithm OR weight_dtype IS NOT excluded.weight_dtype OR bits IS "
    "NOT excluded.bits OR group_size IS NOT excluded.group_size OR sym IS NOT excluded.sym OR "
    "double_quant IS NOT excluded.double_quant OR compute_dtype IS NOT excluded.compute_dtype OR "
    "calib_set IS NOT excluded.calib_set OR calib_nsamples IS NOT excluded.calib_nsamples OR "
    "calib_seqlen IS NOT excluded.calib_seqlen OR knobs IS NOT excluded.knobs";

static const char *const run_keys[] = {
    "started_at", "finished_at", "code_version", "host_cpu", "threads", "kernels_isa",
    "quant_seconds", "quant_peak_rss_mb", "eval_seconds", "eval_peak_rss_mb", "artifact_path",
    "artifact_bytes", "bits_per_weight", "n_params", "prefill_tps", "decode_tps",
    "run_memory_mb", "n_params_active"};

/* ===== one file ===== */

/* what one collect looks up for every file, as sets (JSON objects: hash tables), so 20,000
 * result files against a plan of 20,000 jobs take linear time: the plan's keys and model ids,
 * and the models whose training rows were looked at (each once) */
struct collect_sets {
    json_t *plan_keys, *plan_models, *training_seen;
};

static void collect_sets_init(struct collect_sets *c, const struct plan *p) {
    c->plan_keys = json_object();
    c->plan_models = json_object();
    c->training_seen = json_object();
    for (int i = 0; p && i < p->n_jobs; i++) {
        json_object_set_new(c->plan_keys, p->jobs[i].key, json_true());
        json_object_set_new(c->plan_models, p->jobs[i].model.id, json_true());
    }
}

static void collect_sets_release(struct collect_sets *c) {
    json_decref(c->plan_keys);
    json_decref(c->plan_models);
    json_decref(c->training_seen);
}

static bool in_plan(const struct collect_sets *c, const char *key) {
    return key && json_object_get(c->plan_keys, key) != NULL;
}

enum outcome { O_INSERTED, O_REPLACED, O_UNCHANGED, O_SUPERSEDED };

/* text of column 0 of the first row (owned, NULL when none) and its integer column 1 */
static int query_row(sqlite3 *db, const char *sql, const char *a, const char *b, const char *c,
                     sqlite3_int64 *id, char **text, char **text2) {
    sqlite3_stmt *st = NULL;
    *id = 0;
    if (text) *text = NULL;
    if (text2) *text2 = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return err("collect: %s", db_errmsg(db));
    sqlite3_bind_text(st, 1, a, -1, SQLITE_TRANSIENT);
    if (b) sqlite3_bind_text(st, 2, b, -1, SQLITE_TRANSIENT);
    if (c) sqlite3_bind_text(st, 3, c, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *id = sqlite3_column_int64(st, 0);
        if (text && sqlite3_column_text(st, 1)) *text = strdup((const char *)sqlite3_column_text(st, 1));
        if (text2 && sqlite3_column_text(st, 2))
            *text2 = strdup((const char *)sqlite3_column_text(st, 2));
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return err("collect: %s", db_errmsg(db));
    return rc == SQLITE_ROW ? 1 : 0;
}

/* ===== training provenance ===== */

/* true the first time a model is looked at in this collect */
static bool training_seen_add(struct collect_sets *c, const char *id) {
    if (json_object_get(c->training_seen, id)) return false;
    json_object_set_new(c->training_seen, id, json_true());
    return true;
}

/* where lowbit train would have put train.json for a model at path (expanded): the directory of
 * a model file, a model directory itself, or the parent of lowbit train's OUT/hf/. false when
 * the path does not exist. */
static bool training_dir(const char *path, char *dir, size_t size) {
    struct stat st;
    if (stat(path, &st)) return false;
    snprintf(dir, size, "%s", path);
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') dir[--n] = 0;
    char probe[PIPE_PATH_MAX + 16];
    snprintf(probe, sizeof probe, "%s/train.json", dir);
    if (S_ISDIR(st.st_mode) && !access(probe, F_OK)) return true;
    char *slash = strrchr(dir, '/');
    if (S_ISDIR(st.st_mode) && strcmp(slash ? slash + 1 : dir, "hf")) return true;
    if (!slash) snprintf(dir, size, ".");
    else if (slash == dir) dir[1] = 0;
    else *slash = 0;
    return true;
}

/* train.json (a JSON object, as compact text with sorted keys: owned) and curve.csv's rows of
 * dir, and the sha256 of their bytes; -1 with a message naming the file */
static int training_read(const char *dir, char **json_text, struct curve_row **rows, int *n_rows,
                         char sha[65]) {
    char path[PIPE_PATH_MAX + 16];
    char *buf = NULL, *cbuf = NULL;
    size_t len = 0, clen = 0;
    json_t *j = NULL;
    json_error_t je;
    int ret = -1;
    *json_text = NULL;
    *rows = NULL;
    *n_rows = 0;
    snprintf(path, sizeof path, "%s/train.json", dir);
    if (read_file_all(path, "train.json", &buf, &len)) goto out;
    if (!(j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je))) {
        err("%s: not JSON: line %d: %s", path, je.line, je.text);
        goto out;
    }
    if (!json_is_object(j)) {
        err("%s: not a JSON object (expected lowbit train's summary)", path);
        goto out;
    }
    /* the numbers the site shows (render/data.c's TRAINING_SELECT): counts, losses, times and
     * rates are >= 0, Adam's betas in [0, 1); text is text */
    static const char *const nonneg[] = {
        "params", "train_tokens_seen", "corpus_tokens", "corpus_documents", "heldout_loss",
        "heldout_documents", "heldout_tokens", "heldout_overlap_dropped", "train_seconds",
        "model.dim", "model.hidden_dim", "model.n_layers", "model.n_heads", "model.n_kv_heads",
        "model.vocab", "model.ctx", "opt.steps", "opt.batch", "opt.micro_batch", "opt.lr",
        "opt.min_lr", "opt.warmup", "opt.weight_decay", "opt.clip", "opt.seed", "opt.beta1",
        "opt.beta2"};
    for (size_t i = 0; i < LB_ARRAY_LEN(nonneg); i++) {
        const char *k = nonneg[i], *dot = strchr(k, '.');
        char obj[16] = "";
        if (dot) snprintf(obj, sizeof obj, "%.*s", (int)(dot - k), k);
        json_t *v = dot ? json_object_get(json_object_get(j, obj), dot + 1) : json_object_get(j, k);
        if (!json_is_number(v)) continue;
        const double x = json_number_value(v);
        const bool beta = dot && !strncmp(dot + 1, "beta", 4);
        if (!(x >= 0) || (beta && x >= 1)) {
            err("%s: %s is %g (expected %s)", path, k, x, beta ? "a value in [0, 1)" : "a number >= 0");
            goto out;
        }
    }
    static const char *const texts[] = {"heldout", "heldout_protocol"};
    for (size_t i = 0; i < LB_ARRAY_LEN(texts); i++) {
        json_t *v = json_object_get(j, texts[i]);
        size_t off;
        const char *why = json_is_string(v) ? text_problem(json_string_value(v), json_string_length(v), &off) : NULL;
        if (why) {
            err("%s: %s: byte %zu: %s", path, texts[i], off + 1, why);
            goto out;
        }
    }
    if (!(*json_text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17)))) {
        err("%s: out of memory", path);
        goto out;
    }
    snprintf(path, sizeof path, "%s/curve.csv", dir);
    if (read_file_all(path, "curve.csv", &cbuf, &clen) || csvin_curve(path, rows, n_rows))
        goto out;
    struct sha256 h;
    sha256_init(&h);
    sha256_update(&h, buf, len);
    sha256_update(&h, "", 1);
    sha256_update(&h, cbuf, clen);
    sha256_hex(&h, sha);
    ret = 0;
out:
    if (ret) {
        free(*json_text);
        *json_text = NULL;
    }
    json_decref(j);
    free(buf);
    free(cbuf);
    return ret;
}

static int bind_step(sqlite3 *db, sqlite3_stmt *st) {
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? 0 : err("collect: %s", db_errmsg(db));
}

static void bind_real_or_null(sqlite3_stmt *st, int i, double v) {
    if (isnan(v)) sqlite3_bind_null(st, i);
    else sqlite3_bind_double(st, i, v);
}

/* the training rows of model_id from the files beside raw_path (models.csv's path, ${VAR}s not
 * yet expanded), inside the caller's transaction. -1 only for a database error; a malformed file
 * is a warning (the model keeps no training rows). */
static int record_training(sqlite3 *db, const char *model_id, const char *raw_path,
                           struct collect_sets *seen) {
    if (!model_id || !raw_path || !training_seen_add(seen, model_id)) return 0;
    char path[PIPE_PATH_MAX], dir[PIPE_PATH_MAX], probe[PIPE_PATH_MAX + 16], sha[65] = "";
    char *json_text = NULL, *old_sha = NULL, *old_dir = NULL;
    struct curve_row *rows = NULL;
    int n_rows = 0, ret = -1;
    sqlite3_stmt *st = NULL;
    bool found = false;
    const bool quiet_was = err_quiet();
    err_set_quiet(true);
    if (!pipe_expand(raw_path, path, sizeof path) && training_dir(path, dir, sizeof dir)) {
        snprintf(probe, sizeof probe, "%s/train.json", dir);
        found = !access(probe, F_OK);
        snprintf(probe, sizeof probe, "%s/curve.csv", dir);
        found = found && !access(probe, F_OK);
    }
    int bad = found ? training_read(dir, &json_text, &rows, &n_rows, sha) : 0;
    err_set_quiet(quiet_was);
    if (bad)
        fprintf(stderr, "lowbit: collect: warning: %s; model %s is recorded without training "
                "rows\n", err_last(), model_id);
    const bool have = found && !bad;
    /* the same files already recorded: nothing to write */
    sqlite3_int64 unused;
    int rc = query_row(db, "SELECT 0, files_sha256, source_dir FROM training WHERE model_id = ?1",
                       model_id, NULL, NULL, &unused, &old_sha, &old_dir);
    if (rc < 0) goto out;
    if (rc == 0 && !have) {
        ret = 0;
        goto out;
    }
    if (rc == 1 && have && old_sha && old_dir && !strcmp(old_sha, sha) && !strcmp(old_dir, dir)) {
        ret = 0;
        goto out;
    }
    static const char *const del[] = {"DELETE FROM training_curve WHERE model_id = ?1",
                                      "DELETE FROM training WHERE model_id = ?1"};
    for (size_t i = 0; i < LB_ARRAY_LEN(del); i++) {
        if (sqlite3_prepare_v2(db, del[i], -1, &st, NULL) != SQLITE_OK) {
            err("collect: %s", db_errmsg(db));
            goto out;
        }
        sqlite3_bind_text(st, 1, model_id, -1, SQLITE_TRANSIENT);
        rc = bind_step(db, st);
        sqlite3_finalize(st);
        st = NULL;
        if (rc) goto out;
    }
    if (!have) {
        ret = 0;
        goto out;
    }
    if (sqlite3_prepare_v2(db, "INSERT INTO training (model_id, train_json, source_dir, "
                               "files_sha256) VALUES (?1, ?2, ?3, ?4)",
                           -1, &st, NULL) != SQLITE_OK) {
        err("collect: %s", db_errmsg(db));
        goto out;
    }
    sqlite3_bind_text(st, 1, model_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, json_text, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, dir, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 4, sha, -1, SQLITE_TRANSIENT);
    rc = bind_step(db, st);
    sqlite3_finalize(st);
    st = NULL;
    if (rc) goto out;
    if (sqlite3_prepare_v2(db, "INSERT INTO training_curve (model_id, step, tokens, train_loss, "
                               "heldout_loss, lr, seconds) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                           -1, &st, NULL) != SQLITE_OK) {
        err("collect: %s", db_errmsg(db));
        goto out;
    }
    for (int i = 0; i < n_rows; i++) {
        const struct curve_row *c = &rows[i];
        sqlite3_bind_text(st, 1, model_id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 2, c->step);
        sqlite3_bind_int64(st, 3, c->tokens);
        sqlite3_bind_double(st, 4, c->train_loss);
        bind_real_or_null(st, 5, c->heldout_loss);
        bind_real_or_null(st, 6, c->lr);
        bind_real_or_null(st, 7, c->seconds);
        if (bind_step(db, st)) goto out;
    }
    ret = 0;
out:
    sqlite3_finalize(st);
    free(json_text);
    free(rows);
    free(old_sha);
    free(old_dir);
    return ret;
}

static bool plan_has_model(const struct collect_sets *c, const char *id) {
    return id && json_object_get(c->plan_models, id) != NULL;
}

/* a number or null of a samples record; false when it is neither */
static bool num_or_null_ok(json_t *v) { return json_is_number(v) || json_is_null(v); }

static void bind_num(sqlite3_stmt *st, int i, json_t *v) {
    if (json_is_number(v) && isfinite(json_number_value(v)))
        sqlite3_bind_double(st, i, json_number_value(v));
    else sqlite3_bind_null(st, i);
}

/* the result's per-sample records (gen/job.c: samples) into table samples; absent = none (an
 * imported or older result). -1 with a message naming the record that is not as expected. */
/* samples[task].texts (gen/job.c) into table documents, keyed by the task's data file */
static int insert_texts(sqlite3 *db, const char *task, json_t *docs, json_t *texts,
                        json_t *defs) {
    const char *sha = NULL;
    size_t i;
    json_t *d;
    json_array_foreach(defs, i, d) {
        const char *dt = json_string_value(json_object_get(d, "task"));
        if (dt && !strcmp(dt, task)) sha = json_string_value(json_object_get(d, "dataset_sha256"));
    }
    if (!sha || !*sha) return err("samples.%s.texts: no task definition names its data file", task);
    if (!json_is_array(texts) || json_array_size(texts) != json_array_size(docs))
        return err("samples.%s.texts: not one entry per document", task);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "INSERT OR IGNORE INTO documents (task, dataset_sha256, doc, "
                           "context, choices, continuation) VALUES (?1,?2,?3,?4,?5,?6)", -1, &st,
                           NULL) != SQLITE_OK)
        return err("collect: %s", db_errmsg(db));
    int rc = 0;
    json_array_foreach(texts, i, d) {
        json_t *ctx = json_array_get(d, 0), *ch = json_array_get(d, 1);
        json_t *cont = json_array_get(d, 2);
        bool ok = json_is_array(d) && json_array_size(d) == 3 &&
                  (json_is_string(ctx) || json_is_null(ctx)) && json_is_array(ch) &&
                  (json_is_string(cont) || json_is_null(cont));
        size_t c;
        json_t *v;
        json_array_foreach(ok ? ch : NULL, c, v) ok = ok && json_is_string(v);
        size_t off;
        for (int k = 0; ok && k < 3; k += 2) {
            json_t *str = json_array_get(d, (size_t)k);
            ok = !json_is_string(str) ||
                 !text_problem(json_string_value(str), json_string_length(str), &off);
        }
        json_array_foreach(ok ? ch : NULL, c, v)
            ok = ok && !text_problem(json_string_value(v), json_string_length(v), &off);
        if (!ok) {
            rc = err("samples.%s.texts[%zu]: not [context, [choices], continuation] of text",
                     task, i);
            break;
        }
        char *chs = json_dumps(ch, JSON_COMPACT);
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        sqlite3_bind_text(st, 1, task, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, sha, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 3, json_integer_value(json_array_get(json_array_get(docs, i), 0)));
        if (json_is_string(ctx))
            sqlite3_bind_text(st, 4, json_string_value(ctx), -1, SQLITE_TRANSIENT);
        if (chs) sqlite3_bind_text(st, 5, chs, -1, SQLITE_TRANSIENT);
        if (json_is_string(cont))
            sqlite3_bind_text(st, 6, json_string_value(cont), -1, SQLITE_TRANSIENT);
        const int step = sqlite3_step(st);
        free(chs);
        if (step != SQLITE_DONE) {
            rc = err("samples.%s.texts[%zu]: %s", task, i, db_errmsg(db));
            break;
        }
    }
    sqlite3_finalize(st);
    return rc;
}

static int insert_samples(sqlite3 *db, sqlite3_int64 run_id, json_t *samples, json_t *defs) {
    if (!samples || json_is_null(samples)) return 0;
    if (!json_is_object(samples)) return err("samples: not an object");
    if (want_text(samples, "samples")) return -1;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "INSERT INTO samples (run_id, task, doc, gold, pred, pred_norm, "
                           "acc, acc_norm, value, value2, truncated, choices) VALUES "
                           "(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12)", -1, &st, NULL) != SQLITE_OK)
        return err("collect: %s", db_errmsg(db));
    const char *task;
    json_t *t;
    int rc = 0;
    json_object_foreach(samples, task, t) {
        json_t *docs = json_object_get(t, "docs"), *chunks = json_object_get(t, "chunks");
        if (!json_is_array(docs) == !json_is_array(chunks)) {
            rc = err("samples.%s: expected one array, docs or chunks", task);
            break;
        }
        size_t i;
        json_t *d;
        json_array_foreach(docs ? docs : chunks, i, d) {
            sqlite3_reset(st);
            sqlite3_clear_bindings(st);
            sqlite3_bind_int64(st, 1, run_id);
            sqlite3_bind_text(st, 2, task, -1, SQLITE_TRANSIENT);
            char *choices = NULL;
            bool ok;
            if (docs) {
                json_t *lls = json_array_get(d, 8);
                ok = json_is_array(d) && json_array_size(d) == 9 && json_is_array(lls);
                for (int k = 0; ok && k < 4; k++) ok = json_is_integer(json_array_get(d, k));
                for (int k = 4; ok && k < 7; k++) ok = num_or_null_ok(json_array_get(d, k));
                ok = ok && json_is_boolean(json_array_get(d, 7));
                size_t c;
                json_t *v;
                json_array_foreach(ok ? lls : NULL, c, v) ok = ok && num_or_null_ok(v);
                const json_int_t doc = json_integer_value(json_array_get(d, 0));
                ok = ok && doc >= 0 && doc <= INT32_MAX;
                if (ok) {
                    sqlite3_bind_int64(st, 3, doc);
                    for (int k = 1; k < 4; k++) {
                        const json_int_t v_ = json_integer_value(json_array_get(d, k));
                        if (v_ >= 0) sqlite3_bind_int64(st, 3 + k, v_);
                    }
                    bind_num(st, 7, json_array_get(d, 4));
                    bind_num(st, 8, json_array_get(d, 5));
                    bind_num(st, 9, json_array_get(d, 6));
                    sqlite3_bind_int(st, 11, json_is_true(json_array_get(d, 7)));
                    if (json_array_size(lls)) {
                        choices = json_dumps(lls, JSON_COMPACT);
                        if (choices) sqlite3_bind_text(st, 12, choices, -1, SQLITE_TRANSIENT);
                    }
                }
            } else {
                ok = json_is_array(d) && json_array_size(d) == 2 &&
                     num_or_null_ok(json_array_get(d, 0)) && num_or_null_ok(json_array_get(d, 1));
                if (ok) {
                    sqlite3_bind_int64(st, 3, (sqlite3_int64)i);
                    bind_num(st, 9, json_array_get(d, 0));
                    bind_num(st, 10, json_array_get(d, 1));
                }
            }
            if (!ok) {
                rc = err("samples.%s.%s[%zu]: not a record of the expected layout (gen/job.c)",
                         task, docs ? "docs" : "chunks", i);
                break;
            }
            const int step = sqlite3_step(st);
            free(choices);
            if (step != SQLITE_DONE) {
                rc = err("samples.%s[%zu]: %s", task, i, db_errmsg(db));
                break;
            }
        }
        if (rc) break;
        json_t *texts = json_object_get(t, "texts");
        if (texts && docs && (rc = insert_texts(db, task, docs, texts, defs))) break;
    }
    sqlite3_finalize(st);
    return rc;
}

static int load_result(sqlite3 *db, json_t *r, const char *sha, const char *file,
                       struct collect_sets *seen, enum outcome *out) {
    const char *key = json_string_value(json_object_get(r, "job_key"));
    json_t *m = json_object_get(r, "model"), *q = json_object_get(r, "recipe"),
           *run = json_object_get(r, "run");
    const char *model_id = json_string_value(json_object_get(m, "id")),
               *recipe_id = json_string_value(json_object_get(q, "id")),
               *finished = json_string_value(json_object_get(run, "finished_at"));
    sqlite3_int64 run_id = 0, other = 0;
    char *old_sha = NULL, *other_key = NULL, *other_fin = NULL;
    int ret = -1, rc;
    /* 1. same key and same bytes: nothing to do */
    rc = query_row(db,
                   "SELECT r.id, p.value FROM runs r LEFT JOIN provenance p ON p.run_id = r.id "
                   "AND p.key = 'result.sha256' WHERE r.job_key = ?1",
                   key, NULL, NULL, &run_id, &old_sha, NULL);
    if (rc < 0) goto out;
    if (rc == 1 && old_sha && !strcmp(old_sha, sha)) {
        *out = O_UNCHANGED;
        ret = 0;
        goto out;
    }
    /* 2. another run of this model × recipe: keep the winner */
    rc = query_row(db,
                   "SELECT id, job_key, finished_at FROM runs WHERE model_id = ?1 AND "
                   "recipe_id = ?2 AND job_key != ?3",
                   model_id, recipe_id, key, &other, &other_key, &other_fin);
    if (rc < 0) goto out;
    if (rc == 1) {
        const bool np = in_plan(seen, key), op = in_plan(seen, other_key);
        int cmp = np != op ? (np ? 1 : -1) : 0;
        if (!cmp) cmp = strcmp(finished ? finished : "", other_fin ? other_fin : "");
        if (!cmp) cmp = strcmp(key, other_key);
        if (cmp < 0) {
            *out = O_SUPERSEDED;
            ret = 0;
            goto out;
        }
        char sql[96];
        snprintf(sql, sizeof sql, "DELETE FROM runs WHERE id = %lld", (long long)other);
        if (db_exec(db, sql, "removing a superseded run")) goto out;
    }
    /* 3. the rows */
    if (exec_json(db, model_upsert, m, model_keys, (int)LB_ARRAY_LEN(model_keys), 0, false) ||
        exec_json(db, recipe_upsert, q, recipe_keys, 12, 0, false))
        goto out;
    /* training provenance beside the model file: for lowbit's own results (an imported file's
     * path names no file of ours) of models the plan does not name (load_catalog does those) */
    const char *origin = json_string_value(json_object_get(r, "origin"));
    if (origin && !strcmp(origin, "lowbit") && !plan_has_model(seen, model_id) &&
        record_training(db, model_id, json_string_value(json_object_get(m, "path")), seen))
        goto out;
    /* the run's own columns, then the validated identity on top (a "run" object that names
     * job_key, model_id, ... itself must not override them: fuzz, NOT NULL constraint) */
    json_t *head = json_object();
    json_object_update(head, run);
    /* where a failure came from: the file says (lowbit writes it since schema version 3), else
     * what its error tells */
    const char *status = json_string_value(json_object_get(r, "status"));
    const char *failure = json_string_value(json_object_get(r, "failure"));
    if (!failure && !strcmp(status, "failed"))
        failure = pipe_failure_name(
            pipe_failure_of(json_string_value(json_object_get(r, "error"))));
    json_t *ids = json_pack("{s:s, s:s, s:s, s:O, s:O, s:O, s:o}", "job_key", key, "model_id",
                            model_id, "recipe_id", recipe_id, "status",
                            json_object_get(r, "status"), "error", json_object_get(r, "error"),
                            "log_tail", json_object_get(r, "log_tail"), "failure",
                            failure && !strcmp(status, "failed") ? json_string(failure)
                                                                 : json_null());
    json_object_update(head, ids);
    json_decref(ids);
    static const char *const all_keys[] = {
        "job_key", "model_id", "recipe_id", "status", "error", "log_tail", "started_at",
        "finished_at", "code_version", "host_cpu", "threads", "kernels_isa", "quant_seconds",
        "quant_peak_rss_mb", "eval_seconds", "eval_peak_rss_mb", "artifact_path",
        "artifact_bytes", "bits_per_weight", "n_params", "failure", "prefill_tps", "decode_tps",
        "run_memory_mb", "n_params_active"};
    _Static_assert(LB_ARRAY_LEN(all_keys) == 7 + LB_ARRAY_LEN(run_keys), "run columns");
    if (run_id) {
        rc = exec_json(db,
                       "UPDATE runs SET job_key=?2, model_id=?3, recipe_id=?4, status=?5, error=?6, "
                       "log_tail=?7, started_at=?8, finished_at=?9, code_version=?10, "
                       "host_cpu=?11, threads=?12, kernels_isa=?13, quant_seconds=?14, "
                       "quant_peak_rss_mb=?15, eval_seconds=?16, eval_peak_rss_mb=?17, "
                       "artifact_path=?18, artifact_bytes=?19, bits_per_weight=?20, "
                       "n_params=?21, failure=?22, prefill_tps=?23, decode_tps=?24, "
                       "run_memory_mb=?25, n_params_active=?26 WHERE id = ?1",
                       head, all_keys, 25, run_id, true);
        if (!rc) {
            char sql[400];
            snprintf(sql, sizeof sql,
                     "DELETE FROM scores WHERE run_id = %lld; DELETE FROM task_defs WHERE run_id "
                     "= %lld; DELETE FROM provenance WHERE run_id = %lld; DELETE FROM samples "
                     "WHERE run_id = %lld",
                     (long long)run_id, (long long)run_id, (long long)run_id, (long long)run_id);
            rc = db_exec(db, sql, "replacing a run");
        }
        *out = O_REPLACED;
    } else {
        rc = exec_json(db,
                       "INSERT INTO runs (job_key, model_id, recipe_id, status, error, log_tail, "
                       "started_at, finished_at, code_version, host_cpu, threads, kernels_isa, "
                       "quant_seconds, quant_peak_rss_mb, eval_seconds, eval_peak_rss_mb, "
                       "artifact_path, artifact_bytes, bits_per_weight, n_params, failure, "
                       "prefill_tps, decode_tps, run_memory_mb, n_params_active) VALUES "
                       "(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,"
                       "?21,?22,?23,?24,?25)",
                       head, all_keys, 25, 0, false);
        run_id = sqlite3_last_insert_rowid(db);
        *out = other ? O_REPLACED : O_INSERTED;
    }
    json_decref(head);
    if (rc) goto out;
    size_t i;
    json_t *s;
    static const char *const score_keys[] = {"task", "metric", "value", "stderr", "n"};
    json_array_foreach(json_object_get(r, "scores"), i, s) {
        if (exec_json(db, "INSERT INTO scores (run_id, task, metric, value, stderr, n) VALUES "
                          "(?1,?2,?3,?4,?5,?6)", s, score_keys, 5, run_id, true))
            goto out;
    }
    static const char *const def_keys[] = {"task", "dataset_file", "dataset_sha256", "n_docs",
                                           "n_docs_full", "limit_n", "seed", "num_fewshot",
                                           "add_bos", "ctx", "n_truncated"};
    json_array_foreach(json_object_get(r, "task_defs"), i, s) {
        json_t *d = json_deep_copy(s);
        if (!json_object_get(d, "num_fewshot") || json_is_null(json_object_get(d, "num_fewshot")))
            json_object_set_new(d, "num_fewshot", json_integer(0)); /* NOT NULL DEFAULT 0 */
        rc = exec_json(db, "INSERT INTO task_defs (run_id, task, dataset_file, dataset_sha256, "
                           "n_docs, n_docs_full, limit_n, seed, num_fewshot, add_bos, ctx, "
                           "n_truncated) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12)", d,
                           def_keys, 11, run_id, true);
        json_decref(d);
        if (rc) goto out;
    }
    if (insert_samples(db, run_id, json_object_get(r, "samples"), json_object_get(r, "task_defs")))
        goto out;
    json_t *prov = json_deep_copy(json_object_get(r, "provenance"));
    json_object_set_new(prov, "result.sha256", json_string(sha));
    json_object_set_new(prov, "result.file", json_string(file));
    json_object_set_new(prov, "result.origin", json_incref(json_object_get(r, "origin")));
    const char *pk;
    json_t *pv;
    json_object_foreach(prov, pk, pv) {
        json_t *row = json_pack("{s:s, s:O}", "key", pk, "value", pv);
        static const char *const pkeys[] = {"key", "value"};
        rc = exec_json(db, "INSERT INTO provenance (run_id, key, value) VALUES (?1,?2,?3)", row,
                       pkeys, 2, run_id, true);
        json_decref(row);
        if (rc) break;
    }
    json_decref(prov);
    if (rc) goto out;
    ret = 0;
out:
    free(old_sha);
    free(other_key);
    free(other_fin);
    return ret;
}

/* the plan's CSV rows refresh the models/recipes metadata (display names, licenses, notes) */
static int load_catalog(sqlite3 *db, const struct plan *p, struct collect_sets *seen) {
    for (int i = 0; i < p->n_jobs; i++) {
        const struct job *j = &p->jobs[i];
        json_t *m = model_row_to_json(&j->model), *q = recipe_to_json(&j->recipe);
        json_object_set_new(m, "files_sha256", j->model_sha[0] ? json_string(j->model_sha) : json_null());
        int rc = exec_json(db, model_upsert, m, model_keys, (int)LB_ARRAY_LEN(model_keys), 0, false);
        if (!rc) rc = record_training(db, j->model.id, j->model.path, seen);
        if (!rc) rc = exec_json(db, recipe_upsert, q, recipe_keys, 12, 0, false);
        json_decref(m);
        json_decref(q);
        if (rc) return -1;
    }
    return 0;
}

int collect_run(const struct collect_opts *o, struct collect_stats *st) {
    memset(st, 0, sizeof *st);
    sqlite3 *db = NULL;
    char **names = NULL;
    int n = 0, cap = 0, ret = -1;
    struct collect_sets seen;
    collect_sets_init(&seen, o->plan);
    DIR *d = opendir(o->results_dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            size_t len = strlen(e->d_name);
            if (len < 6 || strcmp(e->d_name + len - 5, ".json")) continue;
            if (n == cap) {
                cap = cap ? 2 * cap : 64;
                char **nn = realloc(names, (size_t)cap * sizeof *nn);
                if (!nn) break;
                names = nn;
            }
            if (!(names[n] = strdup(e->d_name))) break;
            n++;
        }
        closedir(d);
        if (n) qsort(names, (size_t)n, sizeof *names, cmp_str);
    }
    if (db_open(o->db_path, &db)) goto out;
    for (int i = 0; i < n; i++) {
        char path[PIPE_PATH_MAX + 300], key[65];
        snprintf(path, sizeof path, "%s/%s", o->results_dir, names[i]);
        st->files++;
        snprintf(key, sizeof key, "%.*s", (int)strlen(names[i]) - 5, names[i]);
        char *buf = NULL;
        size_t len = 0;
        json_t *r = NULL;
        json_error_t je;
        const bool quiet_was = err_quiet();
        err_set_quiet(true);
        int bad = read_file_all(path, "the result file", &buf, &len);
        if (!bad && !(r = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je)))
            bad = err("not JSON: line %d: %s", je.line, je.text);
        if (!bad && !is_key(key)) bad = err("the name is not <job_key>.json");
        if (!bad) bad = collect_validate(r, key);
        err_set_quiet(quiet_was);
        /* the error and the log's tail are what a job printed, not data: cleaned, not refused (a
         * result file of an older lowbit may hold a terminal's escape sequences there) */
        static const char *const logged[] = {"error", "log_tail"};
        for (size_t k = 0; !bad && k < LB_ARRAY_LEN(logged); k++) {
            json_t *v = json_object_get(r, logged[k]);
            if (json_is_string(v)) json_object_set_new(r, logged[k], text_json(json_string_value(v)));
        }
        if (bad) {
            fprintf(stderr, "lowbit: collect: %s: %s (skipped)\n", path, err_last());
            st->malformed++;
            json_decref(r);
            free(buf);
            continue;
        }
        struct sha256 h;
        char sha[65];
        sha256_init(&h);
        sha256_update(&h, buf, len);
        sha256_hex(&h, sha);
        free(buf);
        enum outcome oc = O_UNCHANGED;
        int rc = db_exec(db, "BEGIN IMMEDIATE", "starting a transaction");
        if (!rc) rc = load_result(db, r, sha, names[i], &seen, &oc);
        json_decref(r);
        if (!rc) rc = db_exec(db, "COMMIT", "committing");
        if (rc) {
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            fprintf(stderr, "lowbit: collect: %s: not loaded (%s)\n", path, err_last());
            goto out;
        }
        switch (oc) {
        case O_INSERTED: st->inserted++; break;
        case O_REPLACED: st->replaced++; break;
        case O_UNCHANGED: st->unchanged++; break;
        case O_SUPERSEDED: st->superseded++; break;
        }
    }
    if (o->plan) {
        int rc = db_exec(db, "BEGIN IMMEDIATE", "starting a transaction");
        if (!rc) rc = load_catalog(db, o->plan, &seen);
        if (!rc) rc = db_exec(db, "COMMIT", "committing");
        if (rc) {
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            goto out;
        }
    }
    if (db_check(db)) goto out;
    if (!o->quiet)
        fprintf(stderr, "collect: %d result files: %d new, %d replaced, %d unchanged, %d "
                "superseded, %d malformed; %s: integrity ok\n", st->files, st->inserted,
                st->replaced, st->unchanged, st->superseded, st->malformed, o->db_path);
    ret = 0;
out:
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    collect_sets_release(&seen);
    db_close(db);
    return ret;
}
