/* gen/import.c: externally evaluated models joining the board: results JSON → result files.
 *
 * Two layouts are read (REFERENCE.md A4, B):
 *  - lm-evaluation-harness 0.4: {"results": {task: {"acc,none": x, "acc_stderr,none": s,
 *    "alias": ...}}, "n-samples": {task: {"original", "effective"}}, "n-shot", "configs",
 *    "config": {"model", "model_args": "pretrained=NAME,dtype=float16,...", "batch_size",
 *    "limit", ...}, "model_name", "lm_eval_version", "git_hash", "date"}.
 *  - the Intel low-bit board's result files: {"config": {"model_name", "model_sha",
 *    "model_params" (billions), "model_size" (GB), "precision"}, "results": {"arc:challenge":
 *    {"acc,none": ...}, ...}, "task_info": {"weight_dtype", "compute_dtype"},
 *    "quantization_config": {quant_method, bits, group_size, sym, bnb_4bit_use_double_quant,
 *    ...}} (read_evals.py defaults: weight_dtype int4, compute_dtype bfloat16).
 * Task names are mapped to lm-eval's (arc:challenge → arc_challenge, lambada:openai →
 * lambada_openai, truthfulqa:mc1 → truthfulqa_mc1, ...); tasks lowbit does not know are skipped
 * and counted. Only "<metric>,none" values are kept.
 *
 * Nothing in the file decides where lowbit writes: the result file is named by its key (a sha256
 * of the file's bytes and the two ids), ids given on the command line must pass pipe_id_check,
 * and ids taken from the file are sanitized (pipe_id_sanitize: "../x" → "x", "org/name" →
 * "org--name"); paths in the file are only recorded as text. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "kernels/base/sha256.h"
#include "gen/cli.h"
#include "gen/pipeline.h"
#include "gen/text.h"
#include "kernels/base/json.h"
#include "kernels/common.h"

const char *import_task_name(const char *name, char *buf, size_t size) {
    char tmp[128];
    if (!name || strlen(name) >= sizeof tmp) return NULL;
    size_t n = 0;
    for (const char *p = name; *p; p++) tmp[n++] = *p == ':' || *p == '-' ? '_' : *p;
    tmp[n] = 0;
    int id = task_from_name(tmp); /* names, labels and aliases: eval/task.c */
    if (id >= 0) {
        snprintf(buf, size, "%s", task_get((enum task_id)id)->name);
        return buf;
    }
    /* MMLU subjects as lm-eval names them: mmlu_<subject> */
    if (!strncmp(tmp, "mmlu_", 5) && tmp[5]) {
        char id_buf[PIPE_ID_MAX];
        pipe_id_sanitize(tmp, id_buf, sizeof id_buf);
        snprintf(buf, size, "%s", id_buf);
        return buf;
    }
    return NULL;
}

/* "key=value" from an lm-eval model_args string ("pretrained=x,dtype=float16"): the value as
 * owned memory (free), NULL when the key is absent (or out of memory) */
static char *model_arg_dup(const char *args, const char *key) {
    if (!args) return NULL;
    const size_t kn = strlen(key);
    for (const char *p = args; *p;) {
        const char *end = strchr(p, ',');
        if (!end) end = p + strlen(p);
        if ((size_t)(end - p) > kn && !strncmp(p, key, kn) && p[kn] == '=')
            return strndup(p + kn + 1, (size_t)(end - p - kn - 1));
        p = *end ? end + 1 : end;
    }
    return NULL;
}

/* the same into a buffer, for the short settings (dtype, load_in_4bit ...): false when absent or
 * longer than the buffer (no such setting is that long: not one lowbit knows) */
static bool model_arg(const char *args, const char *key, char *out, size_t size) {
    out[0] = 0;
    char *v = model_arg_dup(args, key);
    const bool ok = v && strlen(v) < size;
    if (ok) memcpy(out, v, strlen(v) + 1);
    free(v);
    return ok;
}

/* the recipe id made from its settings: "<algorithm>-<weight_dtype>[-g<group>][-dq]" */
static void recipe_id_from(const json_t *q, char *out, size_t size) {
    char text[160];
    const char *alg = json_string_value(json_object_get((json_t *)q, "algorithm"));
    const char *wdt = json_string_value(json_object_get((json_t *)q, "weight_dtype"));
    json_t *gs = json_object_get((json_t *)q, "group_size");
    json_t *dq = json_object_get((json_t *)q, "double_quant");
    int n = snprintf(text, sizeof text, "%s-%s", alg ? alg : "unknown", wdt ? wdt : "unknown");
    if (json_is_integer(gs) && n < (int)sizeof text)
        n += snprintf(text + n, sizeof text - (size_t)n, "-g%lld", (long long)json_integer_value(gs));
    if (json_is_integer(dq) && json_integer_value(dq) == 1 && n < (int)sizeof text)
        snprintf(text + n, sizeof text - (size_t)n, "-dq");
    pipe_id_sanitize(text, out, size);
}

static json_t *canon_wdt(const char *s, const char *dflt) {
    char buf[32];
    const char *c = recipe_weight_dtype_canon(s && *s ? s : dflt, buf, sizeof buf);
    return json_string(c ? c : "unknown");
}

static json_t *canon_cdt(const char *s, const char *dflt) {
    const char *c = recipe_compute_dtype_canon(s && *s ? s : dflt);
    return json_string(c ? c : (s && *s ? "unknown" : dflt));
}

/* the Intel board's quantization_config → a recipes row */
static json_t *intel_recipe(json_t *root) {
    json_t *qc = json_object_get(root, "quantization_config"), *ti = json_object_get(root, "task_info");
    const char *method = jstr(qc, "quant_method");
    const char *precision = jstr(json_object_get(root, "config"), "precision");
    char alg[32] = "fp";
    if (method && *method) {
        const char *m = strrchr(method, '/') ? strrchr(method, '/') + 1 : method;
        if (!strcasecmp(m, "bitsandbytes")) snprintf(alg, sizeof alg, "bnb");
        else if (!strcasecmp(m, "auto-round") || !strcasecmp(m, "auto_round") ||
                 !strcasecmp(m, "intel/auto-round"))
            snprintf(alg, sizeof alg, "autoround");
        else if (!strcasecmp(m, "llama.cpp") || !strcasecmp(m, "llamacpp"))
            snprintf(alg, sizeof alg, "gguf");
        else pipe_id_sanitize(m, alg, sizeof alg);
        for (char *p = alg; *p; p++)
            if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
    }
    const bool quantized = json_is_object(qc) && method;
    json_t *q = json_object();
    json_object_set_new(q, "algorithm", json_string(alg));
    json_object_set_new(q, "weight_dtype",
                        canon_wdt(jstr(ti, "weight_dtype"), quantized ? "int4" : precision ? precision : "float16"));
    json_object_set_new(q, "compute_dtype", canon_cdt(jstr(ti, "compute_dtype"), "bf16"));
    json_t *bits = json_object_get(qc, "bits");
    if (!bits && json_is_true(json_object_get(qc, "load_in_4bit"))) bits = json_integer(4);
    else if (!bits && json_is_true(json_object_get(qc, "load_in_8bit"))) bits = json_integer(8);
    else if (bits) json_incref(bits);
    json_object_set_new(q, "bits", json_is_number(bits) ? json_real(json_number_value(bits)) : json_null());
    json_decref(bits);
    json_t *gs = json_object_get(qc, "group_size");
    json_object_set_new(q, "group_size", json_is_integer(gs) ? json_incref(gs) : json_null());
    json_t *sym = json_object_get(qc, "sym");
    json_object_set_new(q, "sym", json_is_boolean(sym) ? json_integer(json_is_true(sym)) : json_null());
    json_t *dq = json_object_get(qc, "bnb_4bit_use_double_quant");
    json_object_set_new(q, "double_quant", json_is_boolean(dq) ? json_integer(json_is_true(dq)) : json_null());
    json_object_set_new(q, "calib_set", json_is_string(json_object_get(qc, "dataset"))
                                            ? json_incref(json_object_get(qc, "dataset")) : json_null());
    json_t *ns = json_object_get(qc, "nsamples");
    json_object_set_new(q, "calib_nsamples", json_is_integer(ns) ? json_incref(ns) : json_null());
    json_t *sl = json_object_get(qc, "seqlen");
    json_object_set_new(q, "calib_seqlen", json_is_integer(sl) ? json_incref(sl) : json_null());
    json_object_set_new(q, "knobs", json_is_object(qc) ? json_deep_copy(qc) : json_null());
    return q;
}

/* lm-eval's model_args → a recipes row (dtype, bitsandbytes and GPTQ flags) */
static json_t *lmeval_recipe(const char *args) {
    char v[128];
    json_t *q = json_object();
    const char *alg = "fp", *wdt = "float16";
    if ((model_arg(args, "load_in_4bit", v, sizeof v) && !strcasecmp(v, "true"))) {
        alg = "bnb";
        wdt = model_arg(args, "bnb_4bit_quant_type", v, sizeof v) ? v : "nf4";
    } else if (model_arg(args, "load_in_8bit", v, sizeof v) && !strcasecmp(v, "true")) {
        alg = "bnb";
        wdt = "int8";
    } else if ((model_arg(args, "autogptq", v, sizeof v) && strcasecmp(v, "false")) ||
               (model_arg(args, "gptqmodel", v, sizeof v) && !strcasecmp(v, "true"))) {
        alg = "gptq";
        wdt = "int4";
    } else if (model_arg(args, "dtype", v, sizeof v) && strcasecmp(v, "auto")) {
        wdt = v;
    }
    json_object_set_new(q, "algorithm", json_string(alg));
    json_object_set_new(q, "weight_dtype", canon_wdt(wdt, "float16"));
    json_object_set_new(q, "compute_dtype",
                        canon_cdt(model_arg(args, "dtype", v, sizeof v) ? v : NULL, "fp16"));
    static const char *const nulls[] = {"bits", "group_size", "sym", "double_quant", "calib_set",
                                        "calib_nsamples", "calib_seqlen"};
    for (size_t i = 0; i < LB_ARRAY_LEN(nulls); i++) json_object_set_new(q, nulls[i], json_null());
    json_object_set_new(q, "knobs", args ? json_pack("{s:s}", "model_args", args) : json_null());
    return q;
}

/* "" (unknown) for a time before 1970 or after 9999, or not a number */
static void iso_from_unix(double t, char *buf, size_t size) {
    buf[0] = 0;
    if (!(t >= 0 && t < 253402300800.0)) return;
    time_t s = (time_t)t;
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* the results' scores and task definitions lowbit knows, into scores and defs; *kept tasks taken,
 * *skipped not; -1 with a message on an impossible score */
static int import_scores(const char *path, json_t *root, json_t *results, json_t *config,
                         json_t *scores, json_t *defs, int *kept, int *skipped) {
    json_t *samples = json_object_get(root, "n-samples"), *nshot = json_object_get(root, "n-shot"),
           *configs = json_object_get(root, "configs");
    const char *task;
    json_t *tr;
    bool bad = false;
    *skipped = *kept = 0;
    /* the (task, metric) pairs and tasks already taken: sets, so 20,000 tasks take linear time */
    json_t *seen_scores = json_object(), *seen_defs = json_object();
    json_object_foreach(results, task, tr) {
        char tname[128];
        if (!json_is_object(tr) || !import_task_name(task, tname, sizeof tname)) {
            (*skipped)++;
            continue;
        }
        json_t *eff = json_object_get(json_object_get(samples, task), "effective");
        if (json_is_integer(eff) && json_integer_value(eff) < 0) eff = NULL; /* not a count */
        const char *mk;
        json_t *mv;
        int here = 0;
        json_object_foreach(tr, mk, mv) {
            const char *comma = strchr(mk, ',');
            if (!comma || strcmp(comma + 1, "none") || !json_is_number(mv) ||
                !isfinite(json_number_value(mv)))
                continue;
            const size_t ml = (size_t)(comma - mk);
            if (!ml || (ml > 7 && !strncmp(comma - 7, "_stderr", 7))) continue;
            char *metric = strndup(mk, ml), *skey = text_printf("%s_stderr,none", metric ? metric : "");
            char *pair = text_printf("%zu:%s%s", strlen(tname), tname, metric ? metric : "");
            if (!metric || !skey || !pair) {
                free(metric), free(skey), free(pair);
                bad = err("import: %s: out of memory", path);
                break;
            }
            const double v = json_number_value(mv);
            json_t *se = json_object_get(tr, skey);
            const double sev = json_is_number(se) ? json_number_value(se) : NAN;
            const char *range = collect_metric_range(metric, v);
            if (range)
                bad = err("import: %s: results.%s.\"%s\": %.17g is out of range for %s (expected %s)",
                          path, task, mk, v, metric, range);
            else if (isfinite(sev) && sev < 0)
                bad = err("import: %s: results.%s.\"%s\": %.17g is not a standard error (expected "
                          "a number >= 0)", path, task, skey, sev);
            if (!bad && !json_object_get(seen_scores, pair)) {
                json_object_set_new(seen_scores, pair, json_true());
                json_array_append_new(
                    scores, json_pack("{s:s, s:s, s:f, s:o, s:o}", "task", tname, "metric", metric,
                                      "value", v, "stderr", isfinite(sev) ? json_real(sev) : json_null(),
                                      "n", json_is_integer(eff) ? json_incref(eff) : json_null()));
                here++;
            }
            free(metric), free(skey), free(pair);
            if (bad) break;
        }
        if (bad) break;
        if (!here) {
            (*skipped)++;
            continue;
        }
        (*kept)++;
        if (json_is_integer(eff) && !json_object_get(seen_defs, tname)) {
            json_object_set_new(seen_defs, tname, json_true());
            json_t *tc = json_object_get(configs, task);
            const char *dp = jstr(tc, "dataset_path"), *dn = jstr(tc, "dataset_name");
            char *file = text_printf("%s%s%s", dp ? dp : "lm-eval:", dn ? "/" : "",
                                     dn ? dn : (dp ? "" : tname));
            json_t *orig = json_object_get(json_object_get(samples, task), "original");
            json_t *shots = json_object_get(nshot, task);
            json_t *lim = json_object_get(config, "limit");
            const double lv = json_is_number(lim) ? json_number_value(lim) : NAN;
            json_array_append_new(
                defs, json_pack("{s:s, s:s, s:s, s:O, s:o, s:o, s:n, s:o, s:n, s:n}", "task",
                                tname, "dataset_file", file ? file : "", "dataset_sha256", "",
                                "n_docs", eff, "n_docs_full",
                                json_is_integer(orig) ? json_incref(orig) : json_null(), "limit_n",
                                lv >= 0 && lv < 1e15 ? json_integer((json_int_t)lv) : json_null(),
                                "seed", "num_fewshot",
                                json_is_integer(shots) ? json_incref(shots) : json_integer(0),
                                "add_bos", "ctx"));
            free(file);
        }
    }
    json_decref(seen_scores);
    json_decref(seen_defs);
    return bad ? -1 : 0;
}

/* what the file says of where its numbers come from, into prov */
static void import_prov(json_t *prov, const char *path, json_t *root, json_t *config,
                        const char *file_sha, bool intel, const char *model_args, int skipped) {
    const char *b = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    json_object_set_new(prov, "import.file", text_json(b)); /* a file name: any bytes */
    json_object_set_new(prov, "import.file_sha256", json_string(file_sha));
    json_object_set_new(prov, "import.format", json_string(intel ? "intel-board" : "lm-eval-0.4"));
    json_object_set_new(prov, "import.tasks_skipped", json_sprintf("%d", skipped));
    if (model_args) json_object_set_new(prov, "import.model_args", json_string(model_args));
    static const char *const top[] = {"lm_eval_version", "git_hash", "transformers_version"};
    for (size_t i = 0; i < LB_ARRAY_LEN(top); i++)
        if (jstr(root, top[i])) {
            char k[64];
            snprintf(k, sizeof k, "import.%s", top[i]);
            json_object_set_new(prov, k, json_string(jstr(root, top[i])));
        }
    static const char *const cfg[] = {"model_sha", "precision", "batch_size", "device",
                                      "model_dtype"};
    for (size_t i = 0; i < LB_ARRAY_LEN(cfg); i++) {
        json_t *v = json_object_get(config, cfg[i]);
        char k[64];
        snprintf(k, sizeof k, "import.%s", cfg[i]);
        if (json_is_string(v)) json_object_set_new(prov, k, json_incref(v));
        else if (json_is_number(v)) json_object_set_new(prov, k, json_sprintf("%g", json_number_value(v)));
    }
    json_t *size = json_object_get(config, "model_size");
    if (json_is_number(size)) json_object_set_new(prov, "import.model_size_gb", json_sprintf("%g", json_number_value(size)));
}

int import_file(const char *path, const struct import_opts *o, char *key_out) {
    char *buf = NULL;
    size_t len = 0;
    json_error_t je;
    json_t *root = NULL, *res = NULL;
    int ret = -1;
    char *name = NULL, *disp = NULL;
    if (read_file_all(path, "the results file", &buf, &len)) return -1;
    root = json_loadb(buf, len, 0, &je);
    if (!root) {
        err("import: %s: not JSON (line %d: %s)", path, je.line, je.text);
        goto out;
    }
    if (!json_is_object(root)) {
        err("import: %s: the top level is %s, not an object (expected lm-evaluation-harness 0.4 "
            "or Intel board results JSON: {\"results\": ...})", path,
            json_is_array(root) ? "an array" : json_is_string(root) ? "a string" : "a number");
        goto out;
    }
    json_t *results = json_object_get(root, "results"), *config = json_object_get(root, "config");
    if (!json_is_object(results)) {
        err("import: %s: no \"results\" object (expected lm-evaluation-harness 0.4 or Intel "
            "board results JSON)", path);
        goto out;
    }
    const bool intel = json_is_object(config) && json_is_string(json_object_get(config, "model_name")) &&
                       (json_object_get(root, "task_info") || json_object_get(root, "quantization_config"));
    const char *origin = intel ? "intel" : "lm-eval";
    const char *model_args = jstr(config, "model_args");
    /* ---- the model: its name whole (models.path), cut at a character for the display name ---- */
    if (intel) name = strdup(jstr(config, "model_name"));
    else if (jstr(root, "model_name")) name = strdup(jstr(root, "model_name"));
    else name = model_arg_dup(model_args, "pretrained");
    if (name && !name[0]) {
        free(name);
        name = NULL;
    }
    if (!name) { /* the file's own name, without directories and extension (any bytes: cleaned) */
        const char *b = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
        name = text_clean(b, strcspn(b, "."));
    }
    if (!name || !(disp = strndup(name, text_cut(name, 255)))) {
        err("import: %s: out of memory", path);
        goto out;
    }
    char model_id[PIPE_ID_MAX], recipe_id[PIPE_ID_MAX];
    if (o->model_id) {
        if (pipe_id_check(o->model_id, "import: --model-id")) goto out;
        snprintf(model_id, sizeof model_id, "%s", o->model_id);
    } else {
        pipe_id_sanitize(name, model_id, sizeof model_id);
    }
    json_t *recipe = intel ? intel_recipe(root) : lmeval_recipe(model_args);
    if (o->recipe_id) {
        if (pipe_id_check(o->recipe_id, "import: --recipe-id")) {
            json_decref(recipe);
            goto out;
        }
        snprintf(recipe_id, sizeof recipe_id, "%s", o->recipe_id);
    } else {
        recipe_id_from(recipe, recipe_id, sizeof recipe_id);
    }
    json_object_set_new(recipe, "id", json_string(recipe_id));
    if (pipe_id_check(model_id, "import: model id") || pipe_id_check(recipe_id, "import: recipe id")) {
        json_decref(recipe);
        goto out;
    }
    json_t *mp = json_object_get(config, "model_params");
    json_t *n_params = json_null();
    if (json_is_number(mp) && json_number_value(mp) > 0) {
        double v = json_number_value(mp);
        v = v < 1e5 ? v * 1e9 : v; /* billions */
        if (v < 9e15) n_params = json_integer((json_int_t)llround(v)); /* else: not a count */
    }
    json_t *model = json_pack("{s:s, s:s, s:n, s:s, s:n, s:n, s:n, s:n, s:s, s:n, s:o, s:n}",
                              "id", model_id, "path", name, "tokenizer", "display_name", disp,
                              "family", "base_model", "model_type", "license", "notes",
                              intel ? "imported from the Intel low-bit board's results"
                                    : "imported from lm-evaluation-harness results",
                              "architecture", "n_params", n_params, "files_sha256");
    /* ---- the key: the file's bytes and the ids ---- */
    struct sha256 h;
    char file_sha[65], key[65], text[512];
    sha256_init(&h);
    sha256_update(&h, buf, len);
    sha256_hex(&h, file_sha);
    snprintf(text, sizeof text, "lowbit-import 1\norigin %s\nmodel %s\nrecipe %s\nfile %s\n",
             origin, model_id, recipe_id, file_sha);
    sha256_init(&h);
    sha256_update(&h, text, strlen(text));
    sha256_hex(&h, key);
    /* ---- scores ---- */
    json_t *scores = json_array(), *defs = json_array(), *prov = json_object();
    int skipped = 0, kept = 0;
    const bool bad = import_scores(path, root, results, config, scores, defs, &kept, &skipped) != 0;
    if (!kept || bad) {
        if (!bad)
            err("import: %s: no task lowbit knows has a \"<metric>,none\" value (%d skipped)",
                path, skipped);
        json_decref(model);
        json_decref(recipe);
        json_decref(scores);
        json_decref(defs);
        json_decref(prov);
        goto out;
    }
    import_prov(prov, path, root, config, file_sha, intel, model_args, skipped);
    json_t *size = json_object_get(config, "model_size");
    /* ---- the run ---- */
    char finished[32] = "";
    json_t *date = json_object_get(root, "date");
    if (json_is_number(date)) iso_from_unix(json_number_value(date), finished, sizeof finished);
    const char *ev = jstr(root, "lm_eval_version") ? jstr(root, "lm_eval_version")
                     : jstr(root, "git_hash")      ? jstr(root, "git_hash")
                                                   : "0.4";
    char *version = intel ? NULL : text_printf("lm-eval %s", ev); /* whole: no buffer to cut it */
    json_t *run = json_pack("{s:n, s:o, s:o, s:n, s:n, s:n, s:n, s:n, s:n, s:n, s:n, s:o, s:n, s:n}",
                            "started_at", "finished_at",
                            finished[0] ? json_string(finished) : json_null(), "code_version",
                            version ? json_string(version) : json_null(), "host_cpu", "threads",
                            "kernels_isa", "quant_seconds", "quant_peak_rss_mb", "eval_seconds",
                            "eval_peak_rss_mb", "artifact_path", "artifact_bytes",
                            json_is_number(size) && json_number_value(size) >= 0 &&
                                    json_number_value(size) < 9e6
                                ? json_integer((json_int_t)llround(json_number_value(size) * 1e9))
                                : json_null(),
                            "bits_per_weight", "n_params");
    res = json_pack("{s:s, s:i, s:s, s:s, s:s, s:n, s:n, s:o, s:o, s:o, s:o, s:o, s:o}", "format",
                    "lowbit-result", "version", 1, "origin", origin, "job_key", key, "status",
                    "ok", "error", "log_tail", "model", model, "recipe", recipe, "run", run,
                    "scores", scores, "task_defs", defs, "provenance", prov);
    free(version);
    if (!res) {
        err("import: %s: out of memory", path);
        goto out;
    }
    const bool q = err_quiet();
    err_set_quiet(true);
    const int invalid = collect_validate(res, key); /* what collect will check, said now */
    err_set_quiet(q);
    if (invalid) {
        err("import: %s: %s", path, err_last());
        goto out;
    }
    char dir[PIPE_PATH_MAX], out_path[PIPE_PATH_MAX];
    if (pipe_path(dir, sizeof dir, o->out_dir, "results", NULL, NULL) ||
        pipe_path(out_path, sizeof out_path, o->out_dir, "results", key, ".json") ||
        pipe_mkdirs(dir) || pipe_write_json(out_path, res))
        goto out;
    if (!o->quiet)
        fprintf(stderr, "import: %s (%s): model %s, recipe %s, %d tasks (%d skipped) -> %s\n",
                path, origin, model_id, recipe_id, kept, skipped, out_path);
    if (key_out) memcpy(key_out, key, 65);
    ret = 0;
out:
    json_decref(res);
    json_decref(root);
    free(name);
    free(disp);
    free(buf);
    return ret;
}
