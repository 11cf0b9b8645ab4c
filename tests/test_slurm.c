/* tests/test_slurm.c: lowbit slurm against a real Slurm cluster: Debian's slurm-wlm and munge
 * (make deps), started by tests/slurm/cluster.sh as a one-node cluster on this machine with
 * everything under out/slurm-test/p<pid>/ (config, state, logs, munge key and socket), stopped at
 * the end (and by the script's watchdog if this binary dies first).
 *
 * The matrix is stories260K as GGUF and as llama2.c × fp32 and rtn-w4g128, tasks arc_easy, piqa,
 * ppl, kld at --limit 4 (test_pipeline's), one cpu per task, so two tasks run at a time on two
 * cores. The llama2.c jobs hang (LOWBIT_TEST_FAULT, which sbatch passes on with the rest of the
 * environment); one is cancelled with scancel while it runs, the other's worker is killed with
 * SIGKILL (a crash as the OOM killer would make it). Then: the final job's database has both as
 * failed rows with their Slurm log tails, the cancelled one "interrupted"; a re-submit runs only
 * the cancelled job, --retry-failed the crashed one; the database then equals a local `lowbit
 * run` of the same matrix (ignoring times), with one result file and one run per job.
 * Needs root (the daemons); without a cluster every test fails with the reason in one line. */
#include <dirent.h>
#include <jansson.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kernels/base/sha256.h"
#include "gen/pipeline.h"
#include "tests/t_cli.h"

/* the static helpers (state classification, scontrol parsing); cmd_slurm then comes from here,
 * not from liblowbit.a */
#include "../gen/slurm.c"

/* ===== helpers ===== */

static char out_buf[1 << 16], err_buf[1 << 18];
static char root[512];     /* out/slurm-test/p<pid> */
static char cl_dir[600];   /* the cluster's files */
static char work[600];     /* CSVs, the local and the Slurm output directories */
static bool cluster_up;
static char cluster_error[1024];

/* a copy of LOWBIT_BIN (default out/lowbit) made at the start: the local run, the tasks and the
 * final jobs all run the same code even if out/lowbit is rebuilt meanwhile */
static char bin_copy[600];
static const char *bin(void) { return bin_copy; }

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void read_into(const char *path, char *buf, size_t size) {
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(buf, 1, size - 1, f) : 0;
    buf[n] = 0;
    if (f) fclose(f);
}

/* a shell command with stdout/stderr captured into out_buf/err_buf; its exit status */
static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...) {
    char c[8192], cmd[10000], o[700], e[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c, sizeof c, fmt, ap);
    va_end(ap);
    snprintf(o, sizeof o, "%s/sh.out", root);
    snprintf(e, sizeof e, "%s/sh.err", root);
    snprintf(cmd, sizeof cmd, "{ %s ; } >%s 2>%s </dev/null", c, o, e);
    int st = system(cmd);
    read_into(o, out_buf, sizeof out_buf);
    read_into(e, err_buf, sizeof err_buf);
    if (getenv("T_VERBOSE")) fprintf(stderr, "$ %s\n%s%s", c, out_buf, err_buf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static bool file_has(const char *path, const char *needle) {
    static char buf[1 << 18];
    read_into(path, buf, sizeof buf);
    return strstr(buf, needle) != NULL;
}

static void file_sha(const char *path, char hex[65]) {
    struct sha256 h;
    sha256_init(&h);
    FILE *f = fopen(path, "rb");
    char buf[1 << 14];
    size_t n;
    while (f && (n = fread(buf, 1, sizeof buf, f))) sha256_update(&h, buf, n);
    if (f) fclose(f);
    sha256_hex(&h, hex);
}

/* entries of dir whose name ends with suffix ("" = all but . and ..) */
static int count_entries(const char *dir, const char *suffix) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        size_t l = strlen(e->d_name), ls = strlen(suffix);
        if (e->d_name[0] == '.') continue;
        n += l >= ls && !strcmp(e->d_name + l - ls, suffix);
    }
    if (d) closedir(d);
    return n;
}

/* ===== the database as text, without times, hosts, threads and ids (test_pipeline's) ===== */

static int dump_row(void *arg, int n, char **v, char **names) {
    (void)names;
    char **s = arg;
    size_t len = *s ? strlen(*s) : 0, add = 2;
    for (int i = 0; i < n; i++) add += (v[i] ? strlen(v[i]) : 4) + 1;
    *s = realloc(*s, len + add + 1);
    char *p = *s + len;
    for (int i = 0; i < n; i++) p += sprintf(p, "%s%s", i ? "|" : "", v[i] ? v[i] : "NULL");
    strcpy(p, "\n");
    return 0;
}

static char *dump_db(const char *path) {
    sqlite3 *db = NULL;
    char *s = strdup("");
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        return s;
    }
    static const char *const q[] = {
        "SELECT 'M', * FROM models ORDER BY id",
        "SELECT 'R', * FROM recipes ORDER BY id",
        "SELECT 'U', job_key, model_id, recipe_id, status, error, code_version, kernels_isa, "
        "artifact_path, artifact_bytes, printf('%.17g', bits_per_weight), n_params FROM runs "
        "ORDER BY job_key",
        "SELECT 'S', r.job_key, s.task, s.metric, printf('%.17g', s.value), "
        "printf('%.17g', s.stderr), s.n FROM scores s JOIN runs r ON r.id = s.run_id ORDER BY 2, "
        "3, 4",
        "SELECT 'T', r.job_key, t.task, t.dataset_file, t.dataset_sha256, t.n_docs, "
        "t.n_docs_full, t.limit_n, t.seed, t.num_fewshot, t.add_bos, t.ctx FROM task_defs t JOIN "
        "runs r ON r.id = t.run_id ORDER BY 2, 3",
        "SELECT 'P', r.job_key, p.key, p.value FROM provenance p JOIN runs r ON r.id = p.run_id "
        "WHERE p.key NOT IN ('result.sha256', 'quant.write_seconds') ORDER BY 2, 3",
    };
    for (size_t i = 0; i < sizeof q / sizeof q[0]; i++) sqlite3_exec(db, q[i], dump_row, &s, NULL);
    sqlite3_close(db);
    return s;
}


/* ===== the cluster ===== */

static void cluster_start(void) {
    const double t0 = now();
    if (sh("sh tests/slurm/cluster.sh start %s %ld", cl_dir, (long)getpid())) {
        const char *m = strstr(err_buf, "slurm-test: ");
        snprintf(cluster_error, sizeof cluster_error, "%.*s", (int)strcspn(m ? m : err_buf, "\n"),
                 m ? m : err_buf);
        if (!cluster_error[0]) snprintf(cluster_error, sizeof cluster_error, "cluster.sh failed");
        fprintf(stderr, "%s", err_buf); /* the log tails after the line */
        return;
    }
    char conf[700];
    snprintf(conf, sizeof conf, "%s/slurm.conf", cl_dir);
    setenv("SLURM_CONF", conf, 1);
    cluster_up = true;
    if (getenv("T_VERBOSE")) fprintf(stderr, "cluster up in %.1f s\n", now() - t0);
}

#define NEED_CLUSTER()                                                                             \
    do {                                                                                           \
        if (!cluster_up) {                                                                         \
            T_FAIL_("no Slurm cluster: %s", cluster_error);                                        \
            return;                                                                                \
        }                                                                                          \
    } while (0)

/* squeue's lines for job ids (comma list), "" when none is queued; -1 when squeue fails */
static int queued(const char *ids, char *buf, size_t size) {
    int rc = sh("squeue -h -r -j %s -o '%%i %%T'", ids);
    if (rc && strstr(err_buf, "Invalid job id")) rc = 0, out_buf[0] = 0;
    size_t n = strlen(out_buf);
    if (n >= size) n = size - 1;
    memcpy(buf, out_buf, n);
    buf[n] = 0;
    return rc ? -1 : 0;
}

/* wait until none of the jobs is queued or running; false after secs */
static bool wait_gone(const char *ids, double secs) {
    char q[4096];
    const double t0 = now();
    while (now() - t0 < secs) {
        if (queued(ids, q, sizeof q)) {
            T_FAIL_("squeue failed: %s", err_buf);
            return false;
        }
        if (!q[0]) return true;
        usleep(200000);
    }
    T_FAIL_("jobs %s still queued after %.0f s:\n%s", ids, secs, q);
    return false;
}

/* ===== the submission files ===== */

struct sub {
    char tag[64], array[24], final[24];
    char keys[8][65];
    int n_keys;
};

/* the newest OUT/slurm/<tag>/submission.json; false when there is none */
static bool newest_sub(const char *out, struct sub *s) {
    char dir[800];
    snprintf(dir, sizeof dir, "%s/slurm", out);
    memset(s, 0, sizeof *s);
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char p[1500];
        snprintf(p, sizeof p, "%s/%s/submission.json", dir, e->d_name);
        if (e->d_name[0] == '.' || strlen(e->d_name) >= sizeof s->tag || access(p, F_OK) ||
            strcmp(e->d_name, s->tag) <= 0)
            continue;
        memcpy(s->tag, e->d_name, strlen(e->d_name) + 1);
    }
    if (d) closedir(d);
    if (!s->tag[0]) return false;
    char p[1500];
    snprintf(p, sizeof p, "%s/%s/submission.json", dir, s->tag);
    json_t *m = json_load_file(p, 0, NULL);
    json_t *a = json_array_get(json_object_get(m, "arrays"), 0), *k;
    const char *id = json_string_value(json_object_get(a, "job_id"));
    const char *fin = json_string_value(json_object_get(m, "final_job_id"));
    snprintf(s->array, sizeof s->array, "%s", id ? id : "");
    snprintf(s->final, sizeof s->final, "%s", fin ? fin : "");
    size_t i;
    json_array_foreach(json_object_get(a, "keys"), i, k) {
        if (i >= 8 || !json_is_string(k)) break;
        snprintf(s->keys[i], sizeof s->keys[i], "%s", json_string_value(k));
        s->n_keys++;
    }
    bool ok = m && s->array[0] && json_array_size(json_object_get(m, "arrays")) == 1;
    json_decref(m);
    return ok;
}

/* "model × recipe" of a key, from its spec file */
static void job_name(const char *out, const char *key, char *buf, size_t size) {
    char p[800];
    snprintf(p, sizeof p, "%s/jobs/%s.json", out, key);
    json_t *o = json_load_file(p, 0, NULL);
    const char *m = json_string_value(json_object_get(json_object_get(o, "model"), "id")),
               *r = json_string_value(json_object_get(json_object_get(o, "recipe"), "id"));
    snprintf(buf, size, "%s×%s", m ? m : "?", r ? r : "?");
    json_decref(o);
}

/* ===== the tests ===== */

static char models_csv[700], recipes_csv[700], local_out[700], cl_out[700];
static char *ref_dump;
static const char *TASKS = "--tasks arc_easy,piqa,ppl,kld --limit 4";

static void setup(void) {
    snprintf(models_csv, sizeof models_csv, "%s/models.csv", work);
    snprintf(recipes_csv, sizeof recipes_csv, "%s/recipes.csv", work);
    snprintf(local_out, sizeof local_out, "%s/local", work);
    snprintf(cl_out, sizeof cl_out, "%s/cluster", work);
    FILE *f = fopen(models_csv, "w");
    if (f) {
        fputs("id,path,tokenizer\n"
              "s260k,${LOWBIT_DATA}/models/stories260K.gguf,\n"
              "s260k-l2c,${LOWBIT_DATA}/models/stories260K.bin,"
              "${LOWBIT_DATA}/tokenizers/tok512.bin\n",
              f);
        fclose(f);
    }
    f = fopen(recipes_csv, "w");
    if (f) {
        fputs("id,algorithm,weight_dtype,bits,group_size,sym,compute_dtype\n"
              "fp32,fp,float32,32,,,fp32\n"
              "rtn-w4g128,rtn,int4,4,128,0,fp32\n", f);
        fclose(f);
    }
}

/* no cluster needed: the scripts and sbatch lines of a dry run, resources and their knobs */
static void test_dry_run(void) {
    if (!T_DATA("models/stories260K.gguf") || !T_DATA("models/stories260K.bin")) return;
    char out[800];
    snprintf(out, sizeof out, "%s/dry", work);
    T_EQ_INT(sh("%s slurm submit --models %s --recipes %s %s --out %s --cpus-per-task 1 --dry-run",
                bin(), models_csv, recipes_csv, TASKS, out), 0);
    T_CONTAINS(out_buf, "sbatch --parsable --job-name=lowbit --array=0-3 --cpus-per-task=1 "
                        "--mem=1280M --time=1:00:00");
    T_CONTAINS(out_buf, "--dependency=afterany:DRYRUN");
    T_CONTAINS(out_buf, "dry run: 4 jobs in 1 arrays");
    char p[900];
    snprintf(p, sizeof p, "%s/results", out); /* specs and scripts only */
    T_OK(access(p, F_OK) != 0);
    snprintf(p, sizeof p, "%s/jobs", out);
    T_EQ_INT(count_entries(p, ".json"), 4);
    T_EQ_INT(sh("%s slurm submit --models %s --recipes %s %s --out %s --dry-run --mem 3G "
                "--time 0:30:00 --threads 2 --partition p1 --account a1 --sbatch-arg=--qos=q1 "
                "--max-running 2 --no-final", bin(), models_csv, recipes_csv, TASKS, out), 0);
    T_CONTAINS(out_buf, "--array=0-3%2 --cpus-per-task=2 --mem=3G --time=0:30:00");
    T_CONTAINS(out_buf, "--partition=p1 --account=a1 --qos=q1");
    T_OK(!strstr(out_buf, "dependency"));
    /* a calibrating recipe gets 6x the model size and 3x the time */
    char rc2[800];
    snprintf(rc2, sizeof rc2, "%s/recipes-gptq.csv", work);
    FILE *f = fopen(rc2, "w");
    if (f) {
        fputs("id,algorithm,weight_dtype,bits,group_size,sym,calib_set,calib_nsamples,"
              "calib_seqlen\n"
              "fp32,fp,float32,32,,,,,\n"
              "gptq-w4g128,gptq,int4,4,128,1,groups_merged,8,64\n", f);
        fclose(f);
    }
    T_EQ_INT(sh("%s slurm submit --models %s --recipes %s %s --out %s --dry-run", bin(),
                models_csv, rc2, TASKS, out), 0);
    T_CONTAINS(out_buf, "--array=0-1 --cpus-per-task=4 --mem=1280M --time=1:00:00");
    T_CONTAINS(out_buf, "--array=0-1 --cpus-per-task=4 --mem=1280M --time=3:00:00");
    T_CONTAINS(out_buf, "afterany:DRYRUN:DRYRUN");
    /* bad values never reach sbatch */
    T_EQ_INT(sh("%s slurm submit --models %s --recipes %s --out %s --dry-run --mem '1G --x'",
                bin(), models_csv, recipes_csv, out), 1);
    T_CONTAINS(err_buf, "--mem");
    T_EQ_INT(sh("%s slurm frobnicate", bin()), 1);
    T_CONTAINS(err_buf, "unknown subcommand");
    T_EQ_INT(sh("%s slurm --help", bin()), 0);
    T_CONTAINS(out_buf, "--cpus-per-task");
}

/* no cluster needed: Slurm end states -> the failed result's error, interrupted or not */
static void test_states(void) {
    json_t *a = json_pack("{s:s, s:s}", "mem", "3G", "time", "0:30:00");
    struct slurm_end e = {.state = "TIMEOUT", .exit_code = "0:15"};
    char m[512];
    T_OK(!lost_cause(&e, "7_1", a, m, sizeof m));
    T_CONTAINS(m, "ran past its time limit (TIMEOUT, --time 0:30:00)");
    snprintf(e.state, sizeof e.state, "OUT_OF_MEMORY");
    T_OK(!lost_cause(&e, "7_1", a, m, sizeof m));
    T_CONTAINS(m, "ran out of memory (OUT_OF_MEMORY, --mem 3G)");
    snprintf(e.state, sizeof e.state, "FAILED");
    snprintf(e.exit_code, sizeof e.exit_code, "3:0");
    T_OK(!lost_cause(&e, "7_1", a, m, sizeof m));
    T_CONTAINS(m, "exited with status 3 without a result");
    snprintf(e.exit_code, sizeof e.exit_code, "0:6");
    T_OK(!lost_cause(&e, "7_1", a, m, sizeof m));
    T_CONTAINS(m, "killed by signal 6");
    static const char *const intr[] = {"CANCELLED", "PREEMPTED", "NODE_FAIL", "BOOT_FAIL",
                                       "UNKNOWN"};
    for (size_t i = 0; i < sizeof intr / sizeof intr[0]; i++) {
        snprintf(e.state, sizeof e.state, "%s", intr[i]);
        T_OK(lost_cause(&e, "7_1", a, m, sizeof m));
        T_OK(!strncmp(m, RUN_INTERRUPTED, strlen(RUN_INTERRUPTED)));
    }
    json_decref(a);
    /* scontrol -o show job: Name=value words */
    const char *line = "JobId=12 ArrayJobId=11 ArrayTaskId=1 JobName=lowbit JobState=TIMEOUT "
                       "Reason=TimeLimit ExitCode=0:15 StartTime=2024-05-01T12:00:00 Command=x";
    char v[64];
    kv(line, "JobState", v, sizeof v);
    T_EQ_STR(v, "TIMEOUT");
    kv(line, "JobId", v, sizeof v);
    T_EQ_STR(v, "12");
    kv(line, "ExitCode", v, sizeof v);
    T_EQ_STR(v, "0:15");
    kv(line, "Missing", v, sizeof v);
    T_EQ_STR(v, "");
    setenv("TZ", "UTC", 1);
    tzset();
    slurm_time_utc("2024-05-01T12:00:00", v, sizeof v);
    T_EQ_STR(v, "2024-05-01T12:00:00Z");
    slurm_time_utc("Unknown", v, sizeof v);
    T_EQ_STR(v, "");
}

/* the local runner's database: the reference */
static void test_local_reference(void) {
    if (!T_DATA("models/stories260K.gguf")) return;
    T_EQ_INT(sh("%s run --models %s --recipes %s %s -j 2 --out %s --quiet", bin(), models_csv,
                recipes_csv, TASKS, local_out), 0);
    char db[800];
    snprintf(db, sizeof db, "%s/lowbit.db", local_out);
    T_Q(db, "SELECT count(*) FROM runs WHERE status = 'ok'", "4");
    ref_dump = dump_db(db);
}

static struct sub first;

/* submit with the llama2.c jobs hanging; cancel one, kill the other's worker; the final job */
static void test_submit_kill(void) {
    NEED_CLUSTER();
    char db[800], q[4096], name[4][300], logp[4][900];
    snprintf(db, sizeof db, "%s/lowbit.db", cl_out);
    T_EQ_INT(sh("LOWBIT_TEST_FAULT=hang:s260k-l2c %s slurm submit --models %s --recipes %s %s "
                "--out %s --cpus-per-task 1 --partition lowbit", bin(), models_csv, recipes_csv,
                TASKS, cl_out), 0);
    T_CONTAINS(err_buf, "4 to submit");
    if (!newest_sub(cl_out, &first) || first.n_keys != 4 || !first.final[0]) {
        T_FAIL_("no submission.json with one array of 4 tasks and a final job:\n%s", err_buf);
        return;
    }
    for (int i = 0; i < 4; i++) {
        job_name(cl_out, first.keys[i], name[i], sizeof name[i]);
        snprintf(logp[i], sizeof logp[i], "%s/logs/%s.log", cl_out, first.keys[i]);
    }
    T_EQ_STR(name[0], "s260k×fp32"); /* the plan's order: model-major */
    T_EQ_STR(name[2], "s260k-l2c×fp32");
    T_EQ_STR(name[3], "s260k-l2c×rtn-w4g128");
    /* tasks 0, 1 finish; 2, 3 hang */
    const double t0 = now();
    bool ready = false;
    while (!ready && now() - t0 < 90) {
        usleep(200000);
        char t2[48], t3[48];
        snprintf(t2, sizeof t2, "%s_2 RUNNING", first.array);
        snprintf(t3, sizeof t3, "%s_3 RUNNING", first.array);
        char r0[800], r1[800];
        snprintf(r0, sizeof r0, "%s/results/%s.json", cl_out, first.keys[0]);
        snprintf(r1, sizeof r1, "%s/results/%s.json", cl_out, first.keys[1]);
        if (queued(first.array, q, sizeof q)) break;
        ready = strstr(q, t2) && strstr(q, t3) && file_has(logp[2], "LOWBIT_TEST_FAULT") &&
                file_has(logp[3], "LOWBIT_TEST_FAULT") &&
                pipe_result_state(r0, first.keys[0]) == 1 &&
                pipe_result_state(r1, first.keys[1]) == 1;
    }
    if (!ready) {
        T_FAIL_("after %.0f s: not 2 jobs done and 2 hanging; squeue:\n%s", now() - t0, q);
        return;
    }
    /* status while they run; a submit now has nothing to add (no job twice in the queue) */
    T_EQ_INT(sh("%s slurm status --out %s", bin(), cl_out), 0);
    T_CONTAINS(out_buf, "4 jobs: 2 ok, 0 failed, 0 interrupted, 2 running, 0 queued");
    char sdir[800];
    snprintf(sdir, sizeof sdir, "%s/slurm", cl_out);
    T_EQ_INT(sh("%s slurm submit --models %s --recipes %s %s --out %s --cpus-per-task 1", bin(),
                models_csv, recipes_csv, TASKS, cl_out), 0);
    T_CONTAINS(err_buf, "2 done (0 failed), 2 queued or running in earlier arrays, 0 to submit");
    T_EQ_INT(count_entries(sdir, ""), 1);
    /* task 2: scancel; task 3: SIGKILL to its worker (the batch step's process: the script
     * exec'd lowbit) */
    T_EQ_INT(sh("scancel %s_2", first.array), 0);
    T_EQ_INT(sh("J=$(squeue -h -j %s_3 -o %%A) && P=$(scontrol listpids \"$J\" | awk '$3 == "
                "\"batch\" && $4 == \"0\" {print $1}') && [ -n \"$P\" ] && "
                "tr '\\0' ' ' < /proc/$P/cmdline | grep -q ' job --spec ' && kill -KILL $P",
                first.array), 0);
    char ids[64];
    snprintf(ids, sizeof ids, "%s,%s", first.array, first.final);
    if (!wait_gone(ids, 60)) return;
    /* the final job: failed rows with the Slurm log's tail, the database, the site */
    char p[900];
    snprintf(p, sizeof p, "%s/slurm/%s/logs/final-%s.out", cl_out, first.tag, first.final);
    T_OK(file_has(p, "integrity ok"));
    snprintf(p, sizeof p, "%s/site/index.html", cl_out);
    T_OK(access(p, R_OK) == 0);
    T_Q(db, "SELECT count(*) || ' ' || sum(status = 'ok') FROM runs", "4 2");
    T_QC(db, "SELECT error FROM runs WHERE model_id = 's260k-l2c' AND recipe_id = 'fp32'",
         "interrupted: Slurm array task");
    T_QC(db, "SELECT error FROM runs WHERE model_id = 's260k-l2c' AND recipe_id = 'fp32'",
         "was CANCELLED");
    T_QC(db, "SELECT log_tail FROM runs WHERE model_id = 's260k-l2c' AND recipe_id = 'fp32'",
         "LOWBIT_TEST_FAULT=hang");
    T_QC(db, "SELECT log_tail FROM runs WHERE model_id = 's260k-l2c' AND recipe_id = 'fp32'",
         "CANCELLED AT"); /* slurmstepd's line in the Slurm log */
    T_QC(db, "SELECT error FROM runs WHERE model_id = 's260k-l2c' AND recipe_id = 'rtn-w4g128'",
         "killed by signal 9");
    T_QC(db, "SELECT log_tail FROM runs WHERE model_id = 's260k-l2c' AND recipe_id = "
             "'rtn-w4g128'", "---- Slurm output of array task");
    T_EQ_INT(sh("%s slurm status --out %s", bin(), cl_out), 0);
    T_CONTAINS(out_buf, "4 jobs: 2 ok, 1 failed, 1 interrupted, 0 running, 0 queued, 0 not run");
    T_CONTAINS(out_buf, "s260k-l2c × rtn-w4g128: failed: Slurm array task");
}

/* re-submits run only what is missing, then what failed; the same database as lowbit run */
static void test_resubmit(void) {
    NEED_CLUSTER();
    if (!first.array[0]) { T_FAIL_("needs test_submit_kill"); return; }
    char db[800], ids[64], dir[800];
    struct sub s;
    snprintf(db, sizeof db, "%s/lowbit.db", cl_out);
    snprintf(dir, sizeof dir, "%s/slurm", cl_out);
    /* 1. the cancelled job only (interrupted); the crashed one is kept as failed */
    T_EQ_INT(sh("%s slurm submit --models %s --recipes %s %s --out %s --cpus-per-task 1", bin(),
                models_csv, recipes_csv, TASKS, cl_out), 0);
    T_CONTAINS(err_buf, "3 done (1 failed), 0 queued or running in earlier arrays, 1 to submit");
    if (!newest_sub(cl_out, &s) || s.n_keys != 1) { T_FAIL_("no second submission"); return; }
    T_EQ_STR(s.keys[0], first.keys[2]);
    snprintf(ids, sizeof ids, "%s,%s", s.array, s.final);
    if (!wait_gone(ids, 60)) return;
    T_Q(db, "SELECT count(*) || ' ' || sum(status = 'ok') FROM runs", "4 3");
    T_Q(db, "SELECT status FROM runs WHERE model_id = 's260k-l2c' AND recipe_id = 'fp32'", "ok");
    /* 2. --retry-failed: the crashed one */
    T_EQ_INT(sh("%s slurm submit --models %s --recipes %s %s --out %s --cpus-per-task 1 "
                "--retry-failed", bin(), models_csv, recipes_csv, TASKS, cl_out), 0);
    T_CONTAINS(err_buf, "1 to submit");
    if (!newest_sub(cl_out, &s) || s.n_keys != 1) { T_FAIL_("no third submission"); return; }
    T_EQ_STR(s.keys[0], first.keys[3]);
    snprintf(ids, sizeof ids, "%s,%s", s.array, s.final);
    if (!wait_gone(ids, 60)) return;
    /* the local runner's database, one result and one run per job, nothing half-written */
    char *d = dump_db(db);
    T_OK(ref_dump && ref_dump[0]);
    T_EQ_STR(d, ref_dump ? ref_dump : "");
    free(d);
    T_Q(db, "SELECT count(*) || ' ' || count(DISTINCT model_id || recipe_id) FROM runs", "4 4");
    char p[800];
    snprintf(p, sizeof p, "%s/results", cl_out);
    T_EQ_INT(count_entries(p, ""), 4);
    T_EQ_INT(count_entries(p, ".json"), 4);
    T_EQ_INT(sh("%s slurm status --out %s", bin(), cl_out), 0);
    T_CONTAINS(out_buf, "4 jobs: 4 ok, 0 failed");
    /* 3. nothing left: no new submission */
    const int n_subs = count_entries(dir, "");
    T_EQ_INT(sh("%s slurm submit --models %s --recipes %s %s --out %s --cpus-per-task 1", bin(),
                models_csv, recipes_csv, TASKS, cl_out), 0);
    T_CONTAINS(err_buf, "0 to submit");
    T_CONTAINS(err_buf, "nothing to submit");
    T_EQ_INT(count_entries(dir, ""), n_subs);
    /* collect again: idempotent, not a byte of the database changes; the temporary file of a
     * writer killed mid-write is removed (nothing is queued) and never loaded */
    char sha1[65], sha2[65], tmpf[900];
    snprintf(tmpf, sizeof tmpf, "%s/results/%s.json.tmp.99999", cl_out, first.keys[0]);
    FILE *f = fopen(tmpf, "w");
    if (f) {
        fputs("{\"format\": \"lowbit-res", f); /* cut short */
        fclose(f);
    }
    file_sha(db, sha1);
    T_EQ_INT(sh("%s slurm collect --models %s --recipes %s %s --out %s", bin(), models_csv,
                recipes_csv, TASKS, cl_out), 0);
    T_CONTAINS(err_buf, "4 unchanged");
    T_CONTAINS(err_buf, "0 malformed");
    file_sha(db, sha2);
    T_EQ_STR(sha1, sha2);
    T_OK(access(tmpf, F_OK) != 0);
}

int main(void) {
    const double t0 = now();
    snprintf(root, sizeof root, "out/slurm-test/p%ld", (long)getpid());
    snprintf(cl_dir, sizeof cl_dir, "%s/cluster", root);
    snprintf(work, sizeof work, "%s/work", root);
    char cmd[2000];
    snprintf(cmd, sizeof cmd, "rm -rf %s && mkdir -p %s %s", root, cl_dir, work);
    if (system(cmd)) fprintf(stderr, "test_slurm: cannot create %s\n", root);
    const char *b = getenv("LOWBIT_BIN");
    snprintf(bin_copy, sizeof bin_copy, "%s/lowbit", root);
    snprintf(cmd, sizeof cmd, "cp %s %s", b && *b ? b : "out/lowbit", bin_copy);
    if (system(cmd)) fprintf(stderr, "test_slurm: cannot copy %s\n", b && *b ? b : "out/lowbit");
    if (!getenv("LOWBIT_DATA")) setenv("LOWBIT_DATA", "../shared/data", 1);
    setup();
    T_RUN(test_states);
    T_RUN(test_dry_run);
    T_RUN(test_local_reference);
    cluster_start();
    if (!cluster_up) fprintf(stderr, "test_slurm: FAIL: %s\n", cluster_error);
    T_RUN(test_submit_kill);
    T_RUN(test_resubmit);
    if (cluster_up && sh("sh tests/slurm/cluster.sh stop %s", cl_dir))
        fprintf(stderr, "test_slurm: stopping the cluster: %s", err_buf);
    free(ref_dump);
    if (!t_failed) { /* keep everything for a look when something failed */
        snprintf(cmd, sizeof cmd, "rm -rf %s; rmdir out/slurm-test 2>/dev/null || true", root);
        if (system(cmd)) fprintf(stderr, "test_slurm: cannot remove %s\n", root);
    }
    if (getenv("T_VERBOSE")) fprintf(stderr, "test_slurm: %.1f s\n", now() - t0);
    return T_DONE();
}
