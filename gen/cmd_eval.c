/* gen/cmd_eval.c: lowbit eval (the leaderboard's tasks, scored as lm-evaluation-harness scores
 * them) and lowbit kld (KL divergence against a base model, as llama.cpp's perplexity tool).
 *
 * Both are thin callers of eval/evaluate.h: they parse the options, load the model and its
 * tokenizer, call eval_run (kld_base_prepare + kld_run), print the result and, with --json,
 * serialize it: eval_json() is the one place lm-eval's results layout is built. */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "eval/evaluate.h"
#include "kernels/base/sha256.h"
#include "gen/cli.h"
#include "gen/text.h"
#include "gen/pipeline.h"
#include "kernels/matmul.h"

/* bytes of a file, or of the regular files directly inside a directory */
static long long flat_bytes(const char *path) {
    struct stat st;
    if (stat(path, &st)) return -1;
    if (!S_ISDIR(st.st_mode)) return (long long)st.st_size;
    DIR *d = opendir(path);
    if (!d) return -1;
    long long n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        char p[4400];
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        if (e->d_name[0] != '.' && !stat(p, &st) && S_ISREG(st.st_mode)) n += st.st_size;
    }
    closedir(d);
    return n;
}

/* json number, or lm-eval's "N/A" for a stderr it cannot compute */
static json_t *num_or_na(double v) { return isfinite(v) && v >= 0 ? json_real(v) : json_string("N/A"); }
/* sha256 of a model file, or of a directory's regular files (name, NUL, bytes; by name) */
static int model_sha256(const char *path, char hex[65]) {
    struct stat st;
    struct sha256 h;
    sha256_init(&h);
    if (stat(path, &st)) return err("%s: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode)) {
        if (sha256_update_file(&h, path)) return -1;
        sha256_hex(&h, hex);
        return 0;
    }
    DIR *d = opendir(path);
    if (!d) return err("%s: cannot list: %s", path, strerror(errno));
    char **names = NULL;
    int n = 0, cap = 0, ret = -1;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            char **nn = realloc(names, sizeof *names * (size_t)cap);
            if (!nn) goto out;
            names = nn;
        }
        names[n++] = strdup(e->d_name);
    }
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    for (int i = 0; i < n; i++) {
        char p[4400];
        snprintf(p, sizeof p, "%s/%s", path, names[i]);
        if (stat(p, &st) || !S_ISREG(st.st_mode)) continue;
        sha256_update(&h, names[i], strlen(names[i]) + 1);
        if (sha256_update_file(&h, p)) goto out;
    }
    sha256_hex(&h, hex);
    ret = 0;
out:
    closedir(d);
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    return ret;
}

/* --compute NAME: 1 and *out set, 0 when argv[*i] is another option, -1 with a message */
static int opt_compute(const char *cmd, int argc, char **argv, int *i, enum compute_dtype *out) {
    const char *v;
    const int rc = cli_opt(argc, argv, i, "--compute", &v);
    if (rc <= 0) return rc;
    const int c = compute_from_name(v);
    if (c < 0) return err("%s: unknown --compute '%s' (expected fp32, fp16, bf16, int8, a8 or a4)", cmd, v);
    *out = (enum compute_dtype)c;
    return 1;
}

/* the run's "config" object of lowbit eval --json: the model (format, architecture, sizes,
 * sha256 of its files, weights fingerprint), the tokenizer, lowbit's version and kernels, the
 * knobs; NULL with a message */
json_t *eval_config_json(const struct eval_results *r, const struct model *m,
                         const char *model_path, const char *tok_path) {
    /* the build's own `git describe` and code hash (gen/plan.c), as runs.code_version: not the
     * state of whatever tree the binary sits in when it runs */
    char hash[24], sha[65];
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)kld_model_hash(m));
    if (model_sha256(model_path, sha)) return NULL;
    return json_pack(
        "{s:o, s:s, s:s, s:I, s:I, s:I, s:s, s:s, s:o, s:s, s:s, s:i, s:i, s:b, s:s, s:f}",
        "model", text_json(model_path), "model_format", model_format_name(m->format),
        "architecture", m->cfg.arch, "model_params", (json_int_t)model_n_params(m),
        "model_weight_bytes", (json_int_t)model_weight_bytes(m), "model_file_bytes",
        (json_int_t)flat_bytes(model_path), "model_sha256", sha, "model_weights_hash", hash,
        "tokenizer", text_json(tok_path ? tok_path : "(model's own)"), "lowbit_version",
        plan_code_version(), "kernels_isa", kernels_isa(), "threads", lb_threads(), "max_length",
        r->ctx, "add_bos", r->add_bos, "scorer",
        "lowbit loglikelihood, prefix-shared KV cache (batch size 1)", "total_seconds",
        r->seconds);
}

/* lm-eval's results layout (results, configs, n-samples, n-shot, config, timing) of r, the run of
 * the model at model_path (tokenizer tok_path, NULL = the model's own); NULL with a message */
static json_t *eval_json(const struct eval_results *r, const struct model *m,
                         const char *model_path, const char *tok_path) {
    json_t *results = json_object(), *configs = json_object(), *samples = json_object(),
           *nshot = json_object(), *timing = json_object();
    for (int k = 0; k < r->n_tasks; k++) {
        const struct eval_task *t = &r->tasks[k];
        const struct task_info *info = task_get(t->id);
        json_t *jr = json_object();
        json_object_set_new(jr, "alias", json_string(info->name));
        for (int i = 0; i < t->res.n_metrics; i++) {
            const struct metric_value *mv = &t->res.m[i];
            char key[96];
            snprintf(key, sizeof key, "%s,none", mv->name);
            json_object_set_new(jr, key, json_real(mv->value));
            snprintf(key, sizeof key, "%s_stderr,none", mv->name);
            json_object_set_new(jr, key, num_or_na(mv->stderr_));
        }
        json_object_set_new(results, info->name, jr);
        for (int i = 0; i < t->res.n_subjects; i++) { /* MMLU's subtasks, as lm-eval lists them */
            const double p = t->res.subjects[i].acc;
            const int n = t->res.subjects[i].n;
            char key[96];
            snprintf(key, sizeof key, "%s_%s", info->name, t->res.subjects[i].name);
            json_t *js = json_pack("{s:s, s:f, s:o}", "alias", t->res.subjects[i].name, "acc,none",
                                   p, "acc_stderr,none",
                                   num_or_na(n > 1 ? sqrt(p * (1 - p) / (n - 1)) : NAN));
            json_object_set_new(js, "n", json_integer(n));
            json_object_set_new(results, key, js);
        }
        json_object_set_new(
            configs, info->name,
            json_pack("{s:s, s:s, s:o, s:s, s:i, s:i, s:o, s:i, s:i, s:b, s:i, s:s}", "task",
                      info->name, "output_type", eval_kind_name(info->kind), "dataset_path",
                      text_json(t->source), "dataset_sha256", t->sha256, "n_docs", t->n_docs,
                      "n_docs_full", t->n_docs_full, "limit",
                      r->limit ? json_integer(r->limit) : json_null(), "seed", r->seed,
                      "num_fewshot", 0, "add_bos", r->add_bos, "max_length", r->ctx, "metrics",
                      info->metrics ? info->metrics : ""));
        if (t->n_truncated) /* (absent when none, as before there could be any) */
            json_object_set_new(json_object_get(configs, info->name), "n_docs_truncated",
                                json_integer(t->n_truncated));
        json_object_set_new(samples, info->name, json_pack("{s:i, s:i}", "original",
                                                           t->n_docs_full, "effective", t->n_docs));
        json_object_set_new(nshot, info->name, json_integer(0));
        const double sec = t->seconds, tps = sec > 0 ? t->st.tokens_forward / sec : 0;
        json_object_set_new(timing, info->name,
                            json_pack("{s:f, s:I, s:f, s:I, s:I, s:f}", "seconds", sec, "requests",
                                      (json_int_t)t->st.n_requests, "requests_per_s",
                                      sec > 0 ? t->st.n_requests / sec : 0.0, "tokens_forward",
                                      (json_int_t)t->st.tokens_forward, "tokens_naive",
                                      (json_int_t)t->st.tokens_naive, "tokens_per_s", tps));
    }
    json_t *config = eval_config_json(r, m, model_path, tok_path);
    if (!config) {
        json_decref(results);
        json_decref(configs);
        json_decref(nshot);
        json_decref(samples);
        json_decref(timing);
        return NULL;
    }
    return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o}", "results", results, "configs", configs,
                     "n-shot", nshot, "n-samples", samples, "config", config, "timing", timing);
}

/* eval_run's on_task: a task's table rows and its speed, as each task ends */
static void print_task(const struct eval_task *t, void *arg) {
    bool *first = arg;
    const struct task_info *info = task_get(t->id);
    if (*first) printf("%-16s %-18s %10s   %-10s %7s\n", "task", "metric", "value", "stderr", "n");
    *first = false;
    for (int i = 0; i < t->res.n_metrics; i++) {
        const struct metric_value *mv = &t->res.m[i];
        if (isfinite(mv->stderr_) && mv->stderr_ >= 0)
            printf("%-16s %-18s %10.4f ± %-10.4f %7d\n", info->name, mv->name, mv->value,
                   mv->stderr_, t->res.n_docs);
        else
            printf("%-16s %-18s %10.4f   %-10s %7d\n", info->name, mv->name, mv->value, "N/A",
                   t->res.n_docs);
    }
    if (t->n_truncated)
        printf("%-16s %d document%s with a continuation longer than max_length: scored on its last "
               "max_length tokens\n", "", t->n_truncated, t->n_truncated == 1 ? "" : "s");
    const struct score_stats *st = &t->st;
    const double sec = t->seconds, tps = sec > 0 ? st->tokens_forward / sec : 0;
    printf("%-16s %lld requests in %.2f s (%.1f req/s, %.0f tokens/s); forward %lld tokens vs "
           "%lld naive (%.1f%% saved)\n", "", (long long)st->n_requests, sec,
           sec > 0 ? st->n_requests / sec : 0.0, tps, (long long)st->tokens_forward,
           (long long)st->tokens_naive,
           st->tokens_naive ? 100.0 * (1.0 - (double)st->tokens_forward / st->tokens_naive) : 0.0);
    fflush(stdout);
}

static const char eval_help[] =
    "usage: lowbit eval --model M [--tokenizer T] --tasks LIST [--limit N] [--seed S] [--ctx N]\n"
    "                   [--bos auto|yes|no] [--json OUT] [--threads N] [--compute D] [--data DIR]\n"
    "                   [--quiet]\n"
    "  Scores the leaderboard's tasks as lm-evaluation-harness 0.4 does (0-shot, loglikelihood\n"
    "  requests, prefix-shared contexts). LIST: comma-separated task names (below) or \"all\".\n"
    "  --limit N keeps a seeded sample of N documents per\n"
    "  task (--seed, default 1234). --ctx: lm-eval's max_length (default: the model's trained\n"
    "  context, at most 8192, else 2048). --bos auto (= no: lm-eval's HF default\n"
    "  add_bos_token=False), yes or no. --data: the datasets (default $LOWBIT_DATA, else\n"
    "  ../shared/data). Prints a table per task and the speed; --json writes lm-eval's results\n"
    "  layout (results, configs, n-samples, config) plus timings. --compute fp32 (default) |\n"
    "  fp16 | bf16 | int8: the matmuls' arithmetic (see lowbit ppl --help).\n";

int cmd_eval(int argc, char **argv) {
    const char *model_path = NULL, *tok_path = NULL, *tasks_arg = NULL, *json_path = NULL,
               *bos_arg = "auto", *data_dir = NULL, *v;
    int limit = 0, seed = 1234, ctx = 0, threads = 0, rc;
    bool quiet = false;
    enum compute_dtype compute = COMPUTE_FP32;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help")) return cli_help(stdout, eval_help), 0;
        if ((rc = opt_compute("eval", argc, argv, &i, &compute))) { if (rc < 0) return -1; }
        else if (!strcmp(argv[i], "--quiet")) quiet = true;
        else if ((rc = cli_opt(argc, argv, &i, "--model", &v))) { if (rc < 0) return -1; model_path = v; }
        else if ((rc = cli_opt(argc, argv, &i, "--tokenizer", &v))) { if (rc < 0) return -1; tok_path = v; }
        else if ((rc = cli_opt(argc, argv, &i, "--tasks", &v))) { if (rc < 0) return -1; tasks_arg = v; }
        else if ((rc = cli_opt(argc, argv, &i, "--json", &v))) { if (rc < 0) return -1; json_path = v; }
        else if ((rc = cli_opt(argc, argv, &i, "--bos", &v))) { if (rc < 0) return -1; bos_arg = v; }
        else if ((rc = cli_opt(argc, argv, &i, "--data", &v))) { if (rc < 0) return -1; data_dir = v; }
        else if ((rc = cli_opt(argc, argv, &i, "--limit", &v))) { if (rc < 0 || cli_int(v, "--limit", 1, 1 << 30, &limit)) return -1; }
        else if ((rc = cli_opt(argc, argv, &i, "--seed", &v))) { if (rc < 0 || cli_int(v, "--seed", 0, 0x7fffffff, &seed)) return -1; }
        else if ((rc = cli_opt(argc, argv, &i, "--ctx", &v))) { if (rc < 0 || cli_int(v, "--ctx", 8, 1 << 20, &ctx)) return -1; }
        else if ((rc = cli_opt(argc, argv, &i, "--threads", &v))) { if (rc < 0 || cli_int(v, "--threads", 1, 1024, &threads)) return -1; }
        else return cli_unknown("eval", argv[i]);
    }
    if (!model_path || !tasks_arg) return fputs(eval_help, stderr), -1;
    struct eval_opts o = {.limit = limit, .seed = seed, .ctx = ctx, .compute = compute,
                          .quiet = quiet};
    if (!strcmp(bos_arg, "auto")) o.add_bos = -1;
    else if (!strcmp(bos_arg, "yes")) o.add_bos = 1;
    else if (!strcmp(bos_arg, "no")) o.add_bos = 0;
    else return err("eval: --bos '%s' (expected auto, yes or no)", bos_arg);
    if (!data_dir) data_dir = getenv("LOWBIT_DATA");
    if (!data_dir || !*data_dir) data_dir = "../shared/data";
    o.data_dir = data_dir;

    /* the task list, in the order given, without repeats */
    enum task_id ids[TASK_COUNT];
    int n_tasks = 0;
    {
        char buf[1024];
        snprintf(buf, sizeof buf, "%s", tasks_arg);
        for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            int from = 0, to = 0;
            if (!strcmp(t, "all")) {
                to = TASK_COUNT;
            } else {
                const int id = task_from_name(t);
                if (id < 0) {
                    cli_help(stderr, "");
                    return err("eval: unknown task '%s'", t);
                }
                from = id;
                to = id + 1;
            }
            for (int k = from; k < to; k++) {
                bool seen = false;
                for (int j = 0; j < n_tasks; j++) seen |= (int)ids[j] == k;
                if (!seen) ids[n_tasks++] = (enum task_id)k;
            }
        }
        if (!n_tasks) return err("eval: --tasks '%s' names no task", tasks_arg);
    }
    lb_set_threads(threads);

    struct model m;
    struct tokenizer *tok = NULL;
    struct eval_results r = {0};
    json_t *root = NULL;
    int ret = -1;
    if (model_load(&m, model_path)) return -1;
    if (cli_load_tokenizer(&tok, &m, tok_path)) goto out;
    if (!quiet) {
        const int c = ctx ? ctx : m.cfg.ctx_len > 0 ? LB_MIN(m.cfg.ctx_len, EVAL_MAX_DEFAULT_CTX)
                                                    : EVAL_DEFAULT_CTX;
        fprintf(stderr, "eval: %s (%s, %.2fM params), max_length %d%s, add_bos %s%s, %d threads, "
                "kernels %s, data %s\n", model_path, model_format_name(m.format),
                model_n_params(&m) / 1e6, c, !ctx && m.cfg.ctx_len > EVAL_MAX_DEFAULT_CTX
                ? " (capped)" : "", o.add_bos == 1 ? "yes" : "no",
                o.add_bos < 0 ? " (lm-eval default)" : "", lb_threads(), kernels_isa(), data_dir);
    }
    bool first = true;
    o.on_task = print_task;
    o.arg = &first;
    if (eval_run(&m, tok, ids, n_tasks, &o, &r)) goto out;
    const struct score_stats *st = &r.total;
    printf("total: %d tasks, %lld requests, %.1f s wall; forward %lld tokens vs %lld naive "
           "(%.1f%% saved)\n", n_tasks, (long long)st->n_requests, r.seconds,
           (long long)st->tokens_forward, (long long)st->tokens_naive,
           st->tokens_naive ? 100.0 * (1.0 - (double)st->tokens_forward / st->tokens_naive) : 0.0);
    if (json_path) {
        root = eval_json(&r, &m, model_path, tok_path);
        if (!root || json_dump_file(root, json_path, JSON_INDENT(2) | JSON_SORT_KEYS)) {
            err("%s: cannot write the JSON result", json_path);
            goto out;
        }
    }
    ret = 0;
out:
    json_decref(root);
    eval_results_release(&r);
    tokenizer_free(tok);
    model_release(&m);
    return ret;
}

/* ---- kld ---- */

static const char kld_help[] =
    "usage: lowbit kld --base B --model M [--tokenizer T] --text FILE [--ctx N] [--chunks K]\n"
    "                  [--cache DIR] [--f32] [--threads N] [--compute D] [--json OUT] [--quiet]\n"
    "  KL divergence of model M against its base B on the same tokens, with llama.cpp's\n"
    "  perplexity-tool statistics (--kl-divergence): PPL of both, mean KLD +/- stderr and its\n"
    "  percentiles, delta-p (p_M - p_B of the right token) and its RMS, same-top-token %.\n"
    "  Tokens: llama.cpp's protocol (as lowbit ppl --protocol llamacpp): [BOS] + text in --ctx\n"
    "  token chunks (default 512), first token BOS, second half of each chunk scored; --chunks K\n"
    "  uses the first K. The base's log-probs are computed once and kept in --cache DIR (default\n"
    "  out/cache/kld), named by the base's weights fingerprint and the tokens; f16 rows (half the\n"
    "  size; the mean KLD agrees with --f32 to ~1e-5 relative) unless --f32. --compute fp32\n"
    "  (default) | fp16 | bf16 | int8: the arithmetic of M's matmuls (the base is always fp32).\n";

static void print_kld(const struct kld_result *r) {
    printf("====== Perplexity statistics ======\n");
    printf("Mean PPL(Q)                   : %10.6f ± %10.6f\n", r->ppl_q, r->ppl_q_err);
    printf("Mean PPL(base)                : %10.6f ± %10.6f\n", r->ppl_base, r->ppl_base_err);
    printf("Cor(ln(PPL(Q)), ln(PPL(base))): %6.2f%%\n", 100.0 * r->ppl_cor);
    printf("Mean ln(PPL(Q)/PPL(base))     : %10.6f ± %10.6f\n", r->log_ppl_ratio, r->log_ppl_ratio_err);
    printf("Mean PPL(Q)/PPL(base)         : %10.6f ± %10.6f\n", r->ppl_ratio, r->ppl_ratio_err);
    printf("Mean PPL(Q)-PPL(base)         : %10.6f ± %10.6f\n", r->ppl_diff, r->ppl_diff_err);
    printf("\n====== KL divergence statistics ======\n");
    printf("Mean    KLD: %10.6f ± %10.6f\n", r->kld_mean, r->kld_err);
    static const char *const kn[KLD_N_PCT] = {"Maximum", "99.9%  ", "99.0%  ", "95.0%  ",
                                              "90.0%  ", "Median ", "10.0%  ", " 5.0%  ",
                                              " 1.0%  ", " 0.1%  ", "Minimum"};
    for (int i = 0; i < KLD_N_PCT; i++) printf("%s KLD: %10.6f\n", kn[i], r->kld_pct[i]);
    printf("\n====== Token probability statistics ======\n");
    printf("Mean    Δp: %6.3f ± %5.3f %%\n", 100.0 * r->dp_mean, 100.0 * r->dp_err);
    static const char *const dn[KLD_N_DP_PCT] = {
        "Maximum", "99.9%  ", "99.0%  ", "95.0%  ", "90.0%  ", "75.0%  ", "Median ",
        "25.0%  ", "10.0%  ", " 5.0%  ", " 1.0%  ", " 0.1%  ", "Minimum"};
    for (int i = 0; i < KLD_N_DP_PCT; i++) printf("%s Δp: %6.3f%%\n", dn[i], 100.0 * r->dp_pct[i]);
    printf("RMS Δp    : %6.3f ± %5.3f %%\n", 100.0 * r->dp_rms, 100.0 * r->dp_rms_err);
    printf("Same top p: %6.3f ± %5.3f %%\n", 100.0 * r->same_top, 100.0 * r->same_top_err);
}

int cmd_kld(int argc, char **argv) {
    const char *base_path = NULL, *model_path = NULL, *tok_path = NULL, *text_path = NULL,
               *cache_dir = "out/cache/kld", *json_path = NULL, *v;
    int ctx = 512, max_chunks = 0, threads = 0, rc;
    bool quiet = false, f32 = false;
    enum compute_dtype compute = COMPUTE_FP32;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help")) return fputs(kld_help, stdout), 0;
        if ((rc = opt_compute("kld", argc, argv, &i, &compute))) { if (rc < 0) return -1; }
        else if (!strcmp(argv[i], "--quiet")) quiet = true;
        else if (!strcmp(argv[i], "--f32")) f32 = true;
        else if ((rc = cli_opt(argc, argv, &i, "--base", &v))) { if (rc < 0) return -1; base_path = v; }
        else if ((rc = cli_opt(argc, argv, &i, "--model", &v))) { if (rc < 0) return -1; model_path = v; }
        else if ((rc = cli_opt(argc, argv, &i, "--tokenizer", &v))) { if (rc < 0) return -1; tok_path = v; }
        else if ((rc = cli_opt(argc, argv, &i, "--text", &v))) { if (rc < 0) return -1; text_path = v; }
        else if ((rc = cli_opt(argc, argv, &i, "--cache", &v))) { if (rc < 0) return -1; cache_dir = v; }
        else if ((rc = cli_opt(argc, argv, &i, "--json", &v))) { if (rc < 0) return -1; json_path = v; }
        else if ((rc = cli_opt(argc, argv, &i, "--ctx", &v))) { if (rc < 0 || cli_int(v, "--ctx", 4, 1 << 20, &ctx)) return -1; }
        else if ((rc = cli_opt(argc, argv, &i, "--chunks", &v))) { if (rc < 0 || cli_int(v, "--chunks", 1, 1 << 24, &max_chunks)) return -1; }
        else if ((rc = cli_opt(argc, argv, &i, "--threads", &v))) { if (rc < 0 || cli_int(v, "--threads", 1, 1024, &threads)) return -1; }
        else return cli_unknown("kld", argv[i]);
    }
    if (!base_path || !model_path || !text_path) return fputs(kld_help, stderr), -1;
    lb_set_threads(threads);

    struct model m;
    struct tokenizer *tok = NULL;
    struct kld_base kb = {0};
    struct kld_result r = {0};
    char *text = NULL;
    size_t len;
    int ret = -1;
    bool loaded = false;

    /* the base: tokens, fingerprint, its log-probs unless cached; then the model under test */
    const struct kld_opts ko = {.text_name = text_path, .ctx = ctx, .max_chunks = max_chunks,
                                .f32 = f32, .cache_dir = cache_dir, .quiet = quiet};
    if (model_load(&m, base_path)) return -1;
    loaded = true;
    if (cli_load_tokenizer(&tok, &m, tok_path) ||
        read_file_all(text_path, "the text", &text, &len) ||
        kld_base_prepare(&m, base_path, tok, text, len, &ko, &kb))
        goto out;
    model_release(&m);
    loaded = false;
    if (model_load(&m, model_path)) goto out;
    loaded = true;
    if (kld_run(&m, &kb, compute, quiet, &r)) goto out;
    printf("kld          %s vs base %s\n", model_path, base_path);
    printf("protocol     llamacpp (ctx %d, BOS-started chunks, second half scored): %d chunks, "
           "%ld positions, %.1f s\n\n", ctx, r.n_chunks, r.n, r.seconds);
    print_kld(&r);
    if (json_path) {
        json_t *kp = json_array(), *dp = json_array();
        for (int i = 0; i < KLD_N_PCT; i++)
            json_array_append_new(kp, json_pack("[f, f]", kld_pct_frac[i], r.kld_pct[i]));
        for (int i = 0; i < KLD_N_DP_PCT; i++)
            json_array_append_new(dp, json_pack("[f, f]", kld_dp_pct_frac[i], r.dp_pct[i]));
        json_t *j = json_pack(
            "{s:o, s:o, s:o, s:s, s:i, s:i, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:o, "
            "s:f, s:f, s:o, s:f, s:f, s:f, s:f, s:o, s:f}",
            "model", text_json(model_path), "base", text_json(base_path), "text",
            text_json(text_path), "protocol", "llamacpp",
            "ctx", ctx, "chunks", r.n_chunks, "positions", (json_int_t)r.n, "ppl", r.ppl_q,
            "ppl_stderr", r.ppl_q_err, "ppl_base", r.ppl_base, "ppl_base_stderr", r.ppl_base_err,
            "ln_ppl_ratio", r.log_ppl_ratio, "ln_ppl_ratio_stderr", r.log_ppl_ratio_err, "kld_mean",
            r.kld_mean, "kld_stderr", r.kld_err, "kld_percentiles", kp, "dp_mean", r.dp_mean,
            "dp_stderr", r.dp_err, "dp_percentiles", dp, "dp_rms", r.dp_rms, "dp_rms_stderr",
            r.dp_rms_err, "same_top", r.same_top, "same_top_stderr", r.same_top_err, "base_cache",
            text_json(kb.cache_path), "seconds", r.seconds);
        if (!j || json_dump_file(j, json_path, JSON_INDENT(2) | JSON_SORT_KEYS)) {
            json_decref(j);
            err("%s: cannot write the JSON result", json_path);
            goto out;
        }
        json_decref(j);
    }
    ret = 0;
out:
    kld_result_release(&r);
    kld_base_release(&kb);
    free(text);
    tokenizer_free(tok);
    if (loaded) model_release(&m);
    return ret;
}
