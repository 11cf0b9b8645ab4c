/* gen/cmd_eval.c: lowbit eval (the leaderboard's tasks, scored as lm-evaluation-harness scores
 * them) and lowbit kld (KL divergence against a base model, as llama.cpp's perplexity tool).
 *
 * eval: for each task, task_load → task_limit → task_build_requests → score_requests →
 * task_metrics (eval/task.h, eval/score.h); for wikitext (loglikelihood_rolling) the requests are
 * one per page (n_ctx = 0, cont = the page's tokens) and score_rolling puts the page's total in
 * loglik. Knobs recorded per run as lm-eval's config does
 * (REFERENCE.md B4): max_length (--ctx), add_bos, limit, seed, dataset file + sha256.
 *  - max_length: lm-eval's HF model uses the config's max_position_embeddings, else 2048; here
 *    the model file's trained context when it has one (capped at 8192), else 2048.
 *  - add_bos: lm-eval's HF model encodes with add_special_tokens = add_bos_token, False by default
 *    (lm_eval/models/huggingface.py tok_encode), so --bos auto = no BOS; the rolling windows'
 *    prefix token is BOS (EOS when there is none), as HFLM.prefix_token_id. */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "eval/kld.h"
#include "eval/score.h"
#include "kernels/base/sha256.h"
#include "eval/task.h"
#include "gen/cli.h"
#include "gen/text.h"
#include "gen/pipeline.h"
#include "kernels/matmul.h"

#define EVAL_DEFAULT_CTX 2048
#define EVAL_MAX_DEFAULT_CTX 8192

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

static const char *kind_name(enum task_kind k) {
    switch (k) {
    case TASK_KIND_MC: return "multiple_choice";
    case TASK_KIND_MC_CONTEXTS: return "multiple_choice (partial scoring)";
    case TASK_KIND_LOGLIK: return "loglikelihood";
    case TASK_KIND_ROLLING: return "loglikelihood_rolling";
    }
    return "?";
}

/* json number, or lm-eval's "N/A" for a stderr it cannot compute */
static json_t *num_or_na(double v) { return isfinite(v) && v >= 0 ? json_real(v) : json_string("N/A"); }

/* wikitext: task_build_requests made one request per page (n_ctx 0, cont = the page's tokens);
 * score each with lm-eval's rolling windows and keep the page total in loglik. Every window runs
 * from an empty cache, so pages are independent: with several threads and a small model (as in
 * score.c: weights <= 64 MiB), pages run concurrently, one state per thread; a page's result is
 * the same either way. */
#define PAGES_PAR_MAX_WEIGHT_BYTES ((size_t)64 << 20)
static int score_pages(struct fwd_state *s, const struct tokenizer *tok, int max_len, bool quiet,
                       struct request_set *rs, struct score_stats *st) {
    const int bos = tokenizer_bos(tok), prefix = bos >= 0 ? bos : tokenizer_eos(tok);
    if (prefix < 0)
        return err("eval: the tokenizer has neither BOS nor EOS for the rolling windows' prefix");
    memset(st, 0, sizeof *st);
    const double t0 = now_s();
    int n_par = LB_MIN(lb_threads(), rs->n);
    if (model_weight_bytes(s->m) > PAGES_PAR_MAX_WEIGHT_BYTES) n_par = 1;
    struct fwd_state *states = xcalloc((size_t)LB_MAX(1, n_par), sizeof *states, "page states");
    if (!states) return -1;
    int failed = 0, n_init = 0;
    long done = 0;
    int64_t fwd = 0;
    for (; n_init < n_par && n_par > 1; n_init++)
        if (fwd_init(&states[n_init], s->m, s->n_ctx, s->max_batch)) {
            failed = 1;
            break;
        } else {
            states[n_init].compute = s->compute;
        }
    const int n_todo = failed ? 0 : rs->n;
#pragma omp parallel for num_threads(n_par) schedule(dynamic, 1) reduction(| : failed) \
    reduction(+ : fwd) if (n_par > 1)
    for (int i = 0; i < n_todo; i++) {
        if (failed) continue;
        struct fwd_state *ws = s;
#ifdef _OPENMP
        if (n_par > 1) {
            ws = &states[omp_get_thread_num()];
            lb_set_threads(1);
        }
#endif
        struct lm_request *r = &rs->reqs[i];
        struct score_stats one;
        if (score_rolling(ws, r->cont, r->n_cont, max_len, prefix, &r->loglik, &one)) {
            failed = 1;
            continue;
        }
        r->greedy = false;
        fwd += one.tokens_forward;
        long d;
#pragma omp atomic capture
        d = ++done;
#ifdef _OPENMP
        if (omp_get_thread_num() == 0)
#endif
            cli_progress("score", d, rs->n, t0, quiet || d == rs->n);
    }
    for (int k = 0; k < n_init; k++) fwd_release(&states[k]);
    free(states);
    cli_progress("score", rs->n, rs->n, t0, quiet || failed);
    if (failed) return -1;
    st->tokens_forward = st->tokens_naive = fwd;
    st->n_requests = rs->n;
    st->seconds = now_s() - t0;
    return 0;
}

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

/* a forward state for the task's requests: its KV cache holds the longest input they need,
 * capped at max_len. Truncation needs none below that, so scoring with a state of that context
 * gives what a state of max_len would (the cache, 4 GB for Llama-2-7B at 4096, stays small). */
static int state_for(struct fwd_state *s, const struct model *m, const struct request_set *rs,
                     bool rolling, int max_len) {
    int need = 1;
    for (int i = 0; i < rs->n; i++) {
        const struct lm_request *r = &rs->reqs[i];
        /* rolling: windows of min(n, max_len) inputs; else ctx + cont[:-1] */
        need = LB_MAX(need, rolling ? r->n_cont : r->n_ctx + r->n_cont - 1);
    }
    need = LB_MIN(need, max_len);
    if (s->m && s->n_ctx == need) return 0;
    const enum compute_dtype compute = s->compute;
    fwd_release(s);
    if (fwd_init(s, m, need, LB_MIN(need, 512))) return -1;
    s->compute = compute;
    return 0;
}

/* --compute NAME: 1 and *out set, 0 when argv[*i] is another option, -1 with a message */
static int opt_compute(const char *cmd, int argc, char **argv, int *i, enum compute_dtype *out) {
    const char *v;
    const int rc = cli_opt(argc, argv, i, "--compute", &v);
    if (rc <= 0) return rc;
    const int c = compute_from_name(v);
    if (c < 0) return err("%s: unknown --compute '%s' (expected fp32, fp16, bf16 or int8)", cmd, v);
    *out = (enum compute_dtype)c;
    return 1;
}

static const char eval_help[] =
    "usage: lowbit eval --model M [--tokenizer T] --tasks LIST [--limit N] [--seed S] [--ctx N]\n"
    "                   [--bos auto|yes|no] [--json OUT] [--threads N] [--compute D] [--data DIR]\n"
    "                   [--quiet]\n"
    "  Scores the leaderboard's tasks as lm-evaluation-harness 0.4 does (0-shot, loglikelihood\n"
    "  requests, prefix-shared contexts). LIST: comma-separated task names (arc_challenge,\n"
    "  arc_easy, boolq, hellaswag, lambada_openai, mmlu, openbookqa, piqa, truthfulqa_mc1,\n"
    "  winogrande, wikitext) or \"all\". --limit N keeps a seeded sample of N documents per\n"
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
        if (!strcmp(argv[i], "--help")) return fputs(eval_help, stdout), 0;
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
    int add_bos_opt; /* -1 auto */
    if (!strcmp(bos_arg, "auto")) add_bos_opt = -1;
    else if (!strcmp(bos_arg, "yes")) add_bos_opt = 1;
    else if (!strcmp(bos_arg, "no")) add_bos_opt = 0;
    else return err("eval: --bos '%s' (expected auto, yes or no)", bos_arg);
    if (!data_dir) data_dir = getenv("LOWBIT_DATA");
    if (!data_dir || !*data_dir) data_dir = "../shared/data";

    /* the task list, in the order given, without repeats */
    int ids[TASK_COUNT], n_tasks = 0;
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
                    fprintf(stderr, "lowbit: eval: tasks are:");
                    for (int k = 0; k < TASK_COUNT; k++)
                        fprintf(stderr, " %s", task_get((enum task_id)k)->name);
                    fputc('\n', stderr);
                    return err("eval: unknown task '%s'", t);
                }
                from = id;
                to = id + 1;
            }
            for (int k = from; k < to; k++) {
                bool seen = false;
                for (int j = 0; j < n_tasks; j++) seen |= ids[j] == k;
                if (!seen) ids[n_tasks++] = k;
            }
        }
        if (!n_tasks) return err("eval: --tasks '%s' names no task", tasks_arg);
    }
    lb_set_threads(threads);

    struct model m;
    struct tokenizer *tok = NULL;
    struct fwd_state s = {.compute = compute};
    int ret = -1;
    const double t_start = now_s();
    if (model_load(&m, model_path)) return -1;
    json_t *results = json_object(), *configs = json_object(), *samples = json_object(),
           *nshot = json_object(), *timing = json_object(), *root = NULL;
    if (cli_load_tokenizer(&tok, &m, tok_path)) goto out;
    if (tokenizer_vocab_size(tok) > m.cfg.vocab_size) {
        err("eval: the tokenizer has %d tokens, the model %d", tokenizer_vocab_size(tok),
            m.cfg.vocab_size);
        goto out;
    }
    const bool add_bos = add_bos_opt < 0 ? false : add_bos_opt == 1;
    if (add_bos && tokenizer_bos(tok) < 0) {
        err("eval: --bos yes but the tokenizer has no BOS token");
        goto out;
    }
    bool ctx_capped = false;
    if (!ctx) {
        ctx = m.cfg.ctx_len > 0 ? m.cfg.ctx_len : EVAL_DEFAULT_CTX;
        if (ctx > EVAL_MAX_DEFAULT_CTX) ctx = EVAL_MAX_DEFAULT_CTX, ctx_capped = true;
    }
    if (!quiet)
        fprintf(stderr, "eval: %s (%s, %.2fM params), max_length %d%s, add_bos %s%s, %d threads, "
                "kernels %s, data %s\n", model_path, model_format_name(m.format),
                model_n_params(&m) / 1e6, ctx, ctx_capped ? " (capped)" : "",
                add_bos ? "yes" : "no", add_bos_opt < 0 ? " (lm-eval default)" : "", lb_threads(),
                kernels_isa(), data_dir);

    struct score_stats total = {0};
    for (int k = 0; k < n_tasks; k++) {
        const enum task_id id = (enum task_id)ids[k];
        const struct task_info *info = task_get(id);
        struct task_set ts;
        struct request_set rs = {0};
        struct task_result res = {0};
        struct score_stats st = {0};
        memset(&ts, 0, sizeof ts);
        if (task_load(&ts, id, data_dir, NULL)) goto out;
        const int n_full = ts.n_docs;
        if (limit) task_limit(&ts, limit, (uint64_t)seed);
        if (!quiet) fprintf(stderr, "eval: %s: %d of %d documents\n", info->name, ts.n_docs, n_full);
        const double t0 = now_s();
        rc = task_build_requests(&ts, tok, add_bos, &rs);
        if (!rc) rc = state_for(&s, &m, &rs, info->kind == TASK_KIND_ROLLING, ctx);
        if (!rc && info->kind == TASK_KIND_ROLLING)
            rc = score_pages(&s, tok, ctx, quiet, &rs, &st);
        else if (!rc)
            rc = score_requests(&s, rs.reqs, rs.n, quiet, &st);
        if (!rc) rc = task_metrics(&ts, &rs, &res);
        const double sec = now_s() - t0;
        if (rc) {
            request_set_release(&rs);
            task_release(&ts);
            goto out;
        }
        if (k == 0) printf("%-16s %-18s %10s   %-10s %7s\n", "task", "metric", "value", "stderr", "n");
        json_t *jr = json_object();
        json_object_set_new(jr, "alias", json_string(info->name));
        for (int i = 0; i < res.n_metrics; i++) {
            const struct metric_value *mv = &res.m[i];
            char key[96];
            snprintf(key, sizeof key, "%s,none", mv->name);
            json_object_set_new(jr, key, json_real(mv->value));
            snprintf(key, sizeof key, "%s_stderr,none", mv->name);
            json_object_set_new(jr, key, num_or_na(mv->stderr_));
            if (isfinite(mv->stderr_) && mv->stderr_ >= 0)
                printf("%-16s %-18s %10.4f ± %-10.4f %7d\n", info->name, mv->name, mv->value,
                       mv->stderr_, res.n_docs);
            else
                printf("%-16s %-18s %10.4f   %-10s %7d\n", info->name, mv->name, mv->value, "N/A",
                       res.n_docs);
        }
        json_object_set_new(results, info->name, jr);
        for (int i = 0; i < res.n_subjects; i++) { /* MMLU's subtasks, as lm-eval lists them */
            const double p = res.subjects[i].acc;
            const int n = res.subjects[i].n;
            char key[96];
            snprintf(key, sizeof key, "%s_%s", info->name, res.subjects[i].name);
            json_t *js = json_pack("{s:s, s:f, s:o}", "alias", res.subjects[i].name, "acc,none",
                                   p, "acc_stderr,none",
                                   num_or_na(n > 1 ? sqrt(p * (1 - p) / (n - 1)) : NAN));
            json_object_set_new(js, "n", json_integer(n));
            json_object_set_new(results, key, js);
        }
        json_object_set_new(configs, info->name,
                            json_pack("{s:s, s:s, s:o, s:s, s:i, s:i, s:o, s:i, s:i, s:b, s:i, s:s}",
                                      "task", info->name, "output_type", kind_name(info->kind),
                                      "dataset_path", text_json(ts.source), "dataset_sha256", ts.sha256,
                                      "n_docs", ts.n_docs, "n_docs_full", n_full, "limit",
                                      limit ? json_integer(limit) : json_null(), "seed", seed,
                                      "num_fewshot", 0, "add_bos", add_bos, "max_length", ctx,
                                      "metrics", info->metrics ? info->metrics : ""));
        json_object_set_new(samples, info->name,
                            json_pack("{s:i, s:i}", "original", n_full, "effective", ts.n_docs));
        json_object_set_new(nshot, info->name, json_integer(0));
        const double tps = sec > 0 ? st.tokens_forward / sec : 0;
        json_object_set_new(timing, info->name,
                            json_pack("{s:f, s:I, s:f, s:I, s:I, s:f}", "seconds", sec, "requests",
                                      (json_int_t)st.n_requests, "requests_per_s",
                                      sec > 0 ? st.n_requests / sec : 0.0, "tokens_forward",
                                      (json_int_t)st.tokens_forward, "tokens_naive",
                                      (json_int_t)st.tokens_naive, "tokens_per_s", tps));
        printf("%-16s %lld requests in %.2f s (%.1f req/s, %.0f tokens/s); forward %lld tokens vs "
               "%lld naive (%.1f%% saved)\n", "", (long long)st.n_requests, sec,
               sec > 0 ? st.n_requests / sec : 0.0, tps, (long long)st.tokens_forward,
               (long long)st.tokens_naive,
               st.tokens_naive ? 100.0 * (1.0 - (double)st.tokens_forward / st.tokens_naive) : 0.0);
        fflush(stdout);
        total.tokens_forward += st.tokens_forward;
        total.tokens_naive += st.tokens_naive;
        total.n_requests += st.n_requests;
        task_result_release(&res);
        request_set_release(&rs);
        task_release(&ts);
    }
    const double wall = now_s() - t_start;
    printf("total: %d tasks, %lld requests, %.1f s wall; forward %lld tokens vs %lld naive "
           "(%.1f%% saved)\n", n_tasks, (long long)total.n_requests, wall,
           (long long)total.tokens_forward, (long long)total.tokens_naive,
           total.tokens_naive ? 100.0 * (1.0 - (double)total.tokens_forward / total.tokens_naive)
                              : 0.0);
    if (json_path) {
        /* the build's own `git describe` and code hash (gen/plan.c), as runs.code_version: not
         * the state of whatever tree the binary sits in when it runs */
        const char *version = plan_code_version();
        char hash[24], sha[65];
        snprintf(hash, sizeof hash, "%016llx", (unsigned long long)kld_model_hash(&m));
        if (model_sha256(model_path, sha)) goto out;
        json_t *config = json_pack(
            "{s:o, s:s, s:s, s:I, s:I, s:I, s:s, s:s, s:o, s:s, s:s, s:i, s:i, s:b, s:s, s:f}",
            "model", text_json(model_path), "model_format", model_format_name(m.format), "architecture",
            m.cfg.arch, "model_params", (json_int_t)model_n_params(&m), "model_weight_bytes",
            (json_int_t)model_weight_bytes(&m), "model_file_bytes",
            (json_int_t)flat_bytes(model_path), "model_sha256", sha, "model_weights_hash", hash,
            "tokenizer",
            text_json(tok_path ? tok_path : "(model's own)"), "lowbit_version", version, "kernels_isa",
            kernels_isa(), "threads", lb_threads(), "max_length", ctx, "add_bos", add_bos,
            "scorer", "lowbit loglikelihood, prefix-shared KV cache (batch size 1)",
            "total_seconds", wall);
        root = json_pack("{s:o, s:o, s:o, s:o, s:o, s:o}", "results", results, "configs", configs,
                         "n-shot", nshot, "n-samples", samples, "config", config, "timing", timing);
        results = configs = nshot = samples = timing = NULL;
        if (!root || json_dump_file(root, json_path, JSON_INDENT(2) | JSON_SORT_KEYS)) {
            err("%s: cannot write the JSON result", json_path);
            goto out;
        }
    }
    ret = 0;
out:
    json_decref(root);
    json_decref(results);
    json_decref(configs);
    json_decref(samples);
    json_decref(nshot);
    json_decref(timing);
    fwd_release(&s);
    tokenizer_free(tok);
    model_release(&m);
    return ret;
}

/* ---- kld ---- */

/* mkdir -p */
static int make_dirs(const char *dir) {
    char p[4096];
    if (snprintf(p, sizeof p, "%s", dir) >= (int)sizeof p) return err("%s: path too long", dir);
    for (char *s = p + 1;; s++) {
        const char c = *s;
        if (c == '/' || !c) {
            *s = 0;
            if (mkdir(p, 0777) && errno != EEXIST) return err("%s: cannot create: %s", p, strerror(errno));
            *s = c;
        }
        if (!c) break;
    }
    return 0;
}

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
    struct fwd_state s = {0};
    char *text = NULL, cache_path[4600];
    size_t len;
    int *ids = NULL, n_ids = 0, *chunks = NULL, n_chunks = 0, ret = -1;
    bool loaded = false;
    uint64_t hb;

    /* the base: tokens, fingerprint, its log-probs unless cached */
    if (model_load(&m, base_path)) return -1;
    loaded = true;
    if (cli_load_tokenizer(&tok, &m, tok_path) || read_file_all(text_path, "the text", &text, &len)) goto out;
    const int bos = tokenizer_bos(tok);
    if (tokenizer_encode(tok, text, len, bos >= 0, &ids, &n_ids)) goto out;
    if (kld_make_chunks(ids, n_ids, ctx, bos, max_chunks, &chunks, &n_chunks)) goto out;
    double t0 = now_s();
    hb = kld_model_hash(&m);
    const uint64_t ht = kld_tokens_hash(chunks, (size_t)n_chunks * ctx);
    const char *bname = strrchr(base_path, '/');
    bname = bname && bname[1] ? bname + 1 : base_path;
    snprintf(cache_path, sizeof cache_path, "%s/%.64s-%016llx-%016llx-c%d-k%d.%s.kld", cache_dir,
             bname, (unsigned long long)hb, (unsigned long long)ht, ctx, n_chunks,
             f32 ? "f32" : "f16");
    if (!quiet)
        fprintf(stderr, "kld: %s, %d tokens, %d chunks of %d (%d scored each), %d threads, "
                "kernels %s; base fingerprint %016llx (%.1f s)\n", text_path, n_ids, n_chunks, ctx,
                ctx - 1 - ctx / 2, lb_threads(), kernels_isa(), (unsigned long long)hb,
                now_s() - t0);
    /* a cached file is used when its header and size check out; a torn or foreign one (another
     * writer's crash, a disk that filled) is computed again and replaced */
    struct kld_base_info bi;
    bool cached = !access(cache_path, R_OK);
    if (cached) {
        const bool quiet_was = err_quiet();
        err_set_quiet(true);
        cached = !kld_base_info(cache_path, &bi) && bi.n_ctx == ctx && bi.n_chunks == n_chunks &&
                 bi.model_hash == hb && bi.tokens_hash == ht;
        err_set_quiet(quiet_was);
        if (!cached && !quiet)
            fprintf(stderr, "kld: %s is invalid or incomplete: computing it again\n", cache_path);
    }
    if (!cached) {
        if (make_dirs(cache_dir) || fwd_init(&s, &m, ctx, LB_MIN(ctx, 512))) goto out;
        t0 = now_s();
        if (kld_base_write(&s, chunks, n_chunks, ctx, f32 ? KLD_F32 : KLD_F16, hb, base_path,
                           cache_path, quiet))
            goto out;
        if (!quiet)
            fprintf(stderr, "kld: base log-probs computed in %.1f s -> %s\n", now_s() - t0,
                    cache_path);
        fwd_release(&s);
    } else if (!quiet) {
        fprintf(stderr, "kld: base log-probs from %s\n", cache_path);
    }
    model_release(&m);
    loaded = false;

    /* the model under test */
    if (model_load(&m, model_path)) goto out;
    loaded = true;
    if (fwd_init(&s, &m, ctx, LB_MIN(ctx, 512))) goto out;
    s.compute = compute;
    struct kld_result r;
    if (kld_compare(&s, cache_path, chunks, n_chunks, ctx, hb, quiet, &r)) goto out;
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
            text_json(cache_path), "seconds", r.seconds);
        if (!j || json_dump_file(j, json_path, JSON_INDENT(2) | JSON_SORT_KEYS)) {
            json_decref(j);
            err("%s: cannot write the JSON result", json_path);
            goto out;
        }
        json_decref(j);
    }
    ret = 0;
out:
    free(chunks);
    free(ids);
    free(text);
    fwd_release(&s);
    tokenizer_free(tok);
    if (loaded) model_release(&m);
    return ret;
}
