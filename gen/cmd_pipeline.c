/* gen/cmd_pipeline.c: lowbit run, job, collect, import, status: the pipeline's command lines
 * (the work is in gen/plan.c, job.c, run.c, collect.c, import.c; see gen/pipeline.h). */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "gen/cli.h"
#include "gen/pipeline.h"
#include "gen/report.h"
#include "kernels/common.h"

/* ===== options shared by run, job and status (what the plan is) ===== */

int plan_opt(int argc, char **argv, int *i, struct plan_inputs *a) {
    const char *v;
    int rc;
    if (!strcmp(argv[*i], "--full")) return a->full = true, 1;
    if ((rc = cli_opt(argc, argv, i, "--models", &v))) return rc < 0 ? -1 : (a->models = v, 1);
    if ((rc = cli_opt(argc, argv, i, "--recipes", &v))) return rc < 0 ? -1 : (a->recipes = v, 1);
    if ((rc = cli_opt(argc, argv, i, "--tasks", &v))) return rc < 0 ? -1 : (a->tasks = v, 1);
    if ((rc = cli_opt(argc, argv, i, "--out", &v)))
        return rc < 0 || pipe_dir_check(v, "--out") ? -1 : (a->out = v, 1);
    if ((rc = cli_opt(argc, argv, i, "--limit", &v)))
        return rc < 0 || cli_int(v, "--limit", 1, 1 << 30, &a->limit) ? -1 : 1;
    return 0;
}

/* ===== run ===== */

static const char run_help[] =
    "usage: lowbit run [--models gen/models.csv] [--recipes gen/recipes.csv] [--tasks LIST]\n"
    "                  [--limit N | --full] [-j N] [--threads N] [--timeout SEC] [--strict]\n"
    "                  [--retry-failed] [--out out] [--db OUT/lowbit.db] [--quiet]\n"
    "                  [--budget DURATION [--budget-start EPOCH]] [--zoo DIR] [--dry-run]\n"
    "  Quantizes every model of --models with every recipe of --recipes and evaluates each\n"
    "  result, N jobs at a time (-j, default 1; --threads per job, default cores / N), then\n"
    "  loads the result files into the database (lowbit collect). A job is skipped when its\n"
    "  result file exists: its key hashes the model files, the recipe, the tasks' data and\n"
    "  settings, and lowbit itself, so only what changed runs again; failed jobs are kept\n"
    "  until --retry-failed. A job that crashes, fails or runs past --timeout seconds becomes a\n"
    "  failed row with its error and log tail; the others go on. Kill it at any point and run\n"
    "  it again: finished jobs are kept. Exit status 0 even when jobs failed, unless --strict.\n"
    "  --tasks: comma list of the tasks below, ppl (llama.cpp protocol, ctx 512) and kld (KL\n"
    "  divergence vs the unquantized model), or all (default). Without --full the\n"
    "  big tasks are sampled (README: The pipeline); --limit N caps every task at N documents\n"
    "  (ppl/kld: N chunks). Files: OUT/results/<key>.json, OUT/logs/<key>.log,\n"
    "  OUT/artifacts/<key>/, OUT/jobs/<key>.json (the job specs), OUT/lowbit.db.\n"
    "  Order: every model's baseline first, then per algorithm the recipe nearest to 4 bits,\n"
    "  then the rest (smallest model first within each). --budget 20m (or 1200, 1.5h; 0 = none):\n"
    "  a job is not started when its estimated time (the database's recorded times, else a\n"
    "  model-size x recipe-cost model) would end past the budget, counted from --budget-start\n"
    "  (epoch seconds; default now) less a reserve for collect and render; what is not done is\n"
    "  listed in OUT/pending.json (lowbit render --pending) and the next run continues.\n"
    "  --zoo DIR: a model of --models with DIR/<id>.conf is trained first by DIR/zoo.sh (when\n"
    "  its trained files are not there yet), as a step of the same plan; its jobs wait for it.\n"
    "  --dry-run prints the steps in their order with their estimates and runs nothing.\n"
    "  LOWBIT_SCHED_COST=SEC (or RECIPE=SEC,train=SEC,*=SEC) fixes the estimates (tests).\n";

/* one `lowbit run` per output directory at a time */
static int lock_out(const char *out, int *fd) {
    char path[PIPE_PATH_MAX];
    if (pipe_mkdirs(out) || pipe_path(path, sizeof path, out, ".run.lock", NULL, NULL)) return -1;
    *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (*fd < 0) return err("%s: cannot open: %s", path, strerror(errno));
    if (flock(*fd, LOCK_EX | LOCK_NB)) {
        char pid[32] = "?";
        ssize_t n = pread(*fd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 1] = 0;
        pid[strcspn(pid, "\n")] = 0;
        close(*fd);
        *fd = -1;
        return err("run: another lowbit run (pid %s) is using %s; wait for it or stop it", pid, out);
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(*fd, 0) || pwrite(*fd, pid, (size_t)n, 0) != n) { /* for the message only */
    }
    return 0;
}

void pipe_sweep_tmp(const char *out) {
    static const char *const subs[] = {"results", "jobs", "cache/sha256"};
    for (size_t k = 0; k < LB_ARRAY_LEN(subs); k++) {
        char dir[PIPE_PATH_MAX];
        DIR *d = pipe_path(dir, sizeof dir, out, subs[k], NULL, NULL) ? NULL : opendir(dir);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (!strstr(e->d_name, ".tmp.")) continue;
            char p[PIPE_PATH_MAX + 300];
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
        if (d) closedir(d);
    }
}

int cmd_run(int argc, char **argv) {
    struct plan_inputs a = PLAN_INPUTS_INIT;
    struct run_opts o = {.n_parallel = 1};
    struct sched_opts so = {0};
    struct timespec start;
    clock_gettime(CLOCK_REALTIME, &start); /* the budget counts from here unless --budget-start */
    so.started = (double)start.tv_sec + start.tv_nsec * 1e-9;
    const char *db = NULL, *v;
    bool strict = false, dry_run = false;
    int rc, jobs = 1, timeout = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return cli_help(stdout, run_help), 0;
        if ((rc = plan_opt(argc, argv, &i, &a))) { if (rc < 0) return -1; }
        else if (!strcmp(argv[i], "--quiet") || !strcmp(argv[i], "-q")) o.quiet = true;
        else if (!strcmp(argv[i], "--strict")) strict = true;
        else if (!strcmp(argv[i], "--dry-run")) dry_run = true;
        else if (!strcmp(argv[i], "--retry-failed")) o.retry_failed = true;
        else if ((rc = cli_opt(argc, argv, &i, "-j", &v)) ||
                 (rc = cli_opt(argc, argv, &i, "--jobs", &v))) { if (rc < 0 || cli_int(v, "-j", 1, 1024, &jobs)) return -1; }
        else if (!strncmp(argv[i], "-j", 2) && argv[i][2]) { if (cli_int(argv[i] + 2, "-j", 1, 1024, &jobs)) return -1; }
        else if ((rc = cli_opt(argc, argv, &i, "--threads", &v))) { if (rc < 0 || cli_int(v, "--threads", 1, 1024, &o.threads)) return -1; }
        else if ((rc = cli_opt(argc, argv, &i, "--timeout", &v))) { if (rc < 0 || cli_int(v, "--timeout", 1, 1 << 30, &timeout)) return -1; o.timeout = timeout; }
        else if ((rc = cli_opt(argc, argv, &i, "--db", &v))) { if (rc < 0 || pipe_dir_check(v, "--db")) return -1; db = v; }
        else if ((rc = cli_opt(argc, argv, &i, "--budget", &v))) { if (rc < 0 || sched_parse_duration(v, "--budget", &so.budget)) return -1; }
        else if ((rc = cli_opt(argc, argv, &i, "--budget-start", &v))) {
            char *end;
            if (rc < 0) return -1;
            so.started = strtod(v, &end);
            if (end == v || *end || !(so.started > 0 && so.started < 1e11))
                return err("--budget-start: '%s' is not a time in seconds since 1970 (date +%%s)", v);
        }
        else if ((rc = cli_opt(argc, argv, &i, "--zoo", &v))) { if (rc < 0) return -1; so.zoo_dir = v; }
        else return cli_unknown("run", argv[i]);
    }
    o.n_parallel = jobs;
    o.out_dir = a.out;
    if (!o.threads) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        o.threads = (int)LB_MAX(1, (cores > 0 ? cores : 1) / jobs);
    }
    char db_path[PIPE_PATH_MAX], results[PIPE_PATH_MAX];
    if (pipe_path(db_path, sizeof db_path, a.out, "lowbit.db", NULL, NULL) ||
        pipe_path(results, sizeof results, a.out, "results", NULL, NULL))
        return -1;
    if (db) snprintf(db_path, sizeof db_path, "%s", db); /* fits: pipe_dir_check */
    int lock = -1, ret = -1;
    struct plan p = {0};
    struct sched s = {0};
    char *train = NULL;
    const double t0 = now_s();
    if (lock_out(a.out, &lock)) return -1;
    /* the zoo first: trained models are linked before they are hashed, the others are steps */
    if (so.zoo_dir && sched_zoo_check(so.zoo_dir, a.models, &train)) goto out;
    if (plan_make(&a, &p)) goto out;
    if (!o.quiet)
        fprintf(stderr, "run: planned %d jobs from %s × %s in %.1f s (code %s)\n", p.n_jobs,
                a.models, a.recipes, now_s() - t0, plan_code_version());
    pipe_sweep_tmp(a.out);
    struct run_stats st;
    so.db_path = db_path;
    if (sched_build(&s, &p, &so, a.out, o.retry_failed, train, &st)) goto out;
    if (dry_run) { /* the order and the estimates, nothing run */
        sched_print(&s, &p, stdout);
        ret = 0;
        goto out;
    }
    const int run_rc = run_sched(&p, &o, &s, &st);
    if (sched_write_pending(&s, &p, a.out, o.n_parallel)) goto out;
    if (run_rc < 0) {
        /* interrupted or could not start workers: what finished is kept, nothing is collected */
        goto out;
    }
    struct collect_opts co = {.results_dir = results, .db_path = db_path, .plan = &p,
                              .quiet = o.quiet};
    struct collect_stats cs;
    if (collect_run(&co, &cs)) goto out;
    if (!o.quiet || st.failed)
        fprintf(stderr, "run: %d jobs: %d ok, %d failed, %d pending (%d ran now, %d from earlier "
                "runs) in %.1f s; database %s\n", st.total, st.cached + st.done - st.failed,
                st.failed, st.total - st.cached - st.done, st.done, st.cached, now_s() - t0,
                db_path);
    if (!o.quiet) sched_summary(&s, &st, o.n_parallel);
    ret = strict && (st.failed || cs.malformed) ? 1 : 0;
    if (ret) err("run: --strict: %d jobs failed", st.failed);
    if (run_rc > 0) ret = 1; /* a zoo training failed (said when it did) */
out:
    sched_release(&s);
    free(train);
    plan_release(&p);
    if (lock >= 0) close(lock);
    return ret;
}

/* ===== job (the worker) ===== */

static const char job_help[] =
    "usage: lowbit job --spec OUT/jobs/KEY.json [--out out] [--log FILE] [--threads N] [--quiet]\n"
    "       lowbit job --model-id ID --recipe-id ID [--models CSV] [--recipes CSV] [--tasks LIST]\n"
    "                  [--limit N | --full] [--out out] [--log FILE] [--threads N] [--quiet]\n"
    "  One job of the pipeline (what lowbit run starts for each; also usable by hand or from a\n"
    "  cluster scheduler): quantizes the model with the recipe into OUT/artifacts/KEY/,\n"
    "  evaluates it, and writes OUT/results/KEY.json (status ok, or failed with the error and\n"
    "  the log's tail). --spec runs a planned job; --model-id/--recipe-id plans that one job\n"
    "  from the CSVs with the same options as lowbit run. --log sends stdout and stderr to FILE.\n"
    "  Exit status 0 when the job succeeded, 1 when it failed (its result file says why).\n";

int cmd_job(int argc, char **argv) {
    struct plan_inputs a = PLAN_INPUTS_INIT;
    const char *spec = NULL, *model_id = NULL, *recipe_id = NULL, *log = NULL, *v;
    struct job_opts o = {0};
    int rc;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return fputs(job_help, stdout), 0;
        if ((rc = plan_opt(argc, argv, &i, &a))) { if (rc < 0) return -1; }
        else if (!strcmp(argv[i], "--quiet") || !strcmp(argv[i], "-q")) o.quiet = true;
        else if ((rc = cli_opt(argc, argv, &i, "--spec", &v))) { if (rc < 0) return -1; spec = v; }
        else if ((rc = cli_opt(argc, argv, &i, "--model-id", &v))) { if (rc < 0) return -1; model_id = v; }
        else if ((rc = cli_opt(argc, argv, &i, "--recipe-id", &v))) { if (rc < 0) return -1; recipe_id = v; }
        else if ((rc = cli_opt(argc, argv, &i, "--log", &v))) { if (rc < 0) return -1; log = v; }
        else if ((rc = cli_opt(argc, argv, &i, "--threads", &v))) { if (rc < 0 || cli_int(v, "--threads", 1, 1024, &o.threads)) return -1; }
        else return cli_unknown("job", argv[i]);
    }
    if (!spec == !(model_id && recipe_id)) return fputs(job_help, stderr), -1;
    o.out_dir = a.out;
    o.log = log;
    if (log) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) return err("job: %s: cannot create the log: %s", log, strerror(errno));
        fflush(stdout);
        fflush(stderr);
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
        setvbuf(stdout, NULL, _IOLBF, 0);
    }
    struct job *j = xcalloc(1, sizeof *j, "the job");
    if (!j) return -1;
    int ret = -1;
    if (spec) {
        json_error_t je;
        json_t *o_spec = json_load_file(spec, 0, &je);
        if (!o_spec) {
            err("job: %s: %s", spec, je.text);
        } else if (!job_from_json(j, o_spec, spec)) {
            ret = 0;
        }
        json_decref(o_spec);
    } else {
        if (pipe_id_check(model_id, "job: --model-id") || pipe_id_check(recipe_id, "job: --recipe-id")) {
            free(j);
            return -1;
        }
        struct plan p = {0};
        if (!plan_make(&a, &p)) {
            for (int i = 0; i < p.n_jobs; i++)
                if (!strcmp(p.jobs[i].model.id, model_id) && !strcmp(p.jobs[i].recipe.id, recipe_id)) {
                    *j = p.jobs[i];
                    ret = 0;
                }
            if (ret) err("job: no model '%s' in %s or no recipe '%s' in %s", model_id, a.models,
                         recipe_id, a.recipes);
            plan_release(&p);
        }
    }
    if (!ret) {
        /* a job whose result cannot be written has failed in a way only the exit status shows */
        rc = job_execute(j, &o);
        ret = rc;
    }
    free(j);
    return ret;
}

/* ===== collect ===== */

static const char collect_help[] =
    "usage: lowbit collect [--results out/results] [--db out/lowbit.db] [--quiet]\n"
    "  Loads every result file into the database, one transaction each, idempotently (a file\n"
    "  already loaded with the same content changes nothing); one run per model × recipe, the\n"
    "  latest finished winning. A malformed file is reported by name and skipped (exit status\n"
    "  1 at the end). A model whose file has lowbit train's train.json and curve.csv beside\n"
    "  it also gets its training rows (tables training, training_curve; a malformed file is a\n"
    "  warning, not an error). Ends with PRAGMA integrity_check.\n";

int cmd_collect(int argc, char **argv) {
    struct collect_opts o = {.results_dir = "out/results", .db_path = "out/lowbit.db"};
    const char *v;
    int rc;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return fputs(collect_help, stdout), 0;
        if (!strcmp(argv[i], "--quiet") || !strcmp(argv[i], "-q")) o.quiet = true;
        else if ((rc = cli_opt(argc, argv, &i, "--results", &v))) { if (rc < 0 || pipe_dir_check(v, "--results")) return -1; o.results_dir = v; }
        else if ((rc = cli_opt(argc, argv, &i, "--db", &v))) { if (rc < 0 || pipe_dir_check(v, "--db")) return -1; o.db_path = v; }
        else return cli_unknown("collect", argv[i]);
    }
    struct collect_stats st;
    if (collect_run(&o, &st)) return -1;
    if (st.malformed) return err("collect: %d malformed result files were skipped", st.malformed);
    return 0;
}

/* ===== import ===== */

static const char import_help[] =
    "usage: lowbit import FILE... [--model-id ID] [--recipe-id ID] [--out out] [--db PATH]\n"
    "                     [--no-collect] [--quiet]\n"
    "  Loads externally evaluated results: lm-evaluation-harness 0.4 results JSON\n"
    "  (\"results\": {task: {\"acc,none\": ...}}, \"config\": {\"model_args\": ...}) or the Intel\n"
    "  low-bit board's result files (config, results, task_info, quantization_config). Each\n"
    "  becomes OUT/results/<key>.json, then lowbit collect runs. Ids default to the model name\n"
    "  (\"org/name\" -> \"org--name\") and the quantization settings (\"gptq-int4-g128\");\n"
    "  given ids must be letters, digits and . _ - + (never a path).\n";

int cmd_import(int argc, char **argv) {
    struct import_opts o = {.out_dir = "out"};
    const char *db = NULL, *v;
    const char **files = xcalloc((size_t)argc, sizeof *files, "the file list");
    int n = 0, rc, ret = -1;
    bool collect = true;
    if (!files) return -1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            free(files);
            return fputs(import_help, stdout), 0;
        }
        if (!strcmp(argv[i], "--quiet") || !strcmp(argv[i], "-q")) o.quiet = true;
        else if (!strcmp(argv[i], "--no-collect")) collect = false;
        else if ((rc = cli_opt(argc, argv, &i, "--model-id", &v))) { if (rc < 0) goto out; o.model_id = v; }
        else if ((rc = cli_opt(argc, argv, &i, "--recipe-id", &v))) { if (rc < 0) goto out; o.recipe_id = v; }
        else if ((rc = cli_opt(argc, argv, &i, "--out", &v))) { if (rc < 0 || pipe_dir_check(v, "--out")) goto out; o.out_dir = v; }
        else if ((rc = cli_opt(argc, argv, &i, "--db", &v))) { if (rc < 0 || pipe_dir_check(v, "--db")) goto out; db = v; }
        else if (argv[i][0] == '-') { cli_unknown("import", argv[i]); goto out; }
        else files[n++] = argv[i];
    }
    if (!n) {
        fputs(import_help, stderr);
        goto out;
    }
    if ((o.model_id && pipe_id_check(o.model_id, "import: --model-id")) ||
        (o.recipe_id && pipe_id_check(o.recipe_id, "import: --recipe-id")))
        goto out;
    int failed = 0;
    for (int i = 0; i < n; i++) failed += import_file(files[i], &o, NULL) != 0;
    if (collect) {
        char db_path[PIPE_PATH_MAX], results[PIPE_PATH_MAX];
        if (pipe_path(db_path, sizeof db_path, o.out_dir, "lowbit.db", NULL, NULL) ||
            pipe_path(results, sizeof results, o.out_dir, "results", NULL, NULL))
            goto out;
        struct collect_opts co = {.results_dir = results, .db_path = db ? db : db_path,
                                  .quiet = o.quiet};
        struct collect_stats cs;
        if (collect_run(&co, &cs)) goto out;
    }
    ret = failed ? err("import: %d of %d files could not be imported", failed, n) : 0;
out:
    free(files);
    return ret;
}

/* ===== status ===== */

static const char status_help[] =
    "usage: lowbit status [--models CSV] [--recipes CSV] [--tasks LIST] [--limit N | --full]\n"
    "                     [--out out] [--explain]\n"
    "  The plan lowbit run would run, without running it: each model × recipe with its key,\n"
    "  whether its result exists (ok / failed, with the error) or is pending, and the database's\n"
    "  row counts. --explain prints each job's key text (what its key hashes).\n";

int cmd_status(int argc, char **argv) {
    struct plan_inputs a = PLAN_INPUTS_INIT;
    bool explain = false;
    int rc;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return fputs(status_help, stdout), 0;
        if ((rc = plan_opt(argc, argv, &i, &a))) { if (rc < 0) return -1; }
        else if (!strcmp(argv[i], "--explain")) explain = true;
        else return cli_unknown("status", argv[i]);
    }
    struct plan p = {0};
    if (plan_make(&a, &p)) return -1;
    int n_ok = 0, n_failed = 0, n_pending = 0;
    printf("%-24s %-20s %-12s %s\n", "model", "recipe", "key", "state");
    for (int i = 0; i < p.n_jobs; i++) {
        const struct job *j = &p.jobs[i];
        char path[PIPE_PATH_MAX];
        if (pipe_path(path, sizeof path, a.out, "results", j->key, ".json")) {
            plan_release(&p);
            return -1;
        }
        const int state = pipe_result_state(path, j->key);
        const char *s = state == 1 ? "ok" : state == 2 ? "failed" : state < 0 ? "unreadable" : "pending";
        n_ok += state == 1;
        n_failed += state == 2;
        n_pending += state != 1 && state != 2;
        printf("%-24s %-20s %.12s %s", j->model.id, j->recipe.id, j->key, s);
        if (state == 2) {
            json_t *r = json_load_file(path, 0, NULL);
            const char *e = json_string_value(json_object_get(r, "error"));
            if (e) printf(": %s", e);
            if (pipe_result_retryable(path))
                printf(" (a failure of the environment: the next lowbit run retries it)");
            json_decref(r);
        }
        putchar('\n');
        if (explain) {
            char *t = plan_key_text(j);
            printf("%s\n", t ? t : "");
            free(t);
        }
    }
    printf("%d jobs: %d ok, %d failed, %d pending (code %s)\n", p.n_jobs, n_ok, n_failed,
           n_pending, plan_code_version());
    char db_path[PIPE_PATH_MAX];
    sqlite3 *db = NULL;
    if (!pipe_path(db_path, sizeof db_path, a.out, "lowbit.db", NULL, NULL) &&
        !access(db_path, R_OK) &&
        sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(db, "SELECT status, count(*) FROM runs GROUP BY status ORDER BY 1",
                               -1, &st, NULL) == SQLITE_OK) {
            printf("%s:", db_path);
            while (sqlite3_step(st) == SQLITE_ROW)
                printf(" %d %s", sqlite3_column_int(st, 1), sqlite3_column_text(st, 0));
            printf(" runs\n");
        }
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    plan_release(&p);
    return 0;
}
