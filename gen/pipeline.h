/* gen/pipeline.h: the batch pipeline: model list × recipes → jobs → result files → SQLite.
 *
 *   csvin    models.csv / recipes.csv (libcsv) → struct model_row / struct recipe
 *   plan     the job matrix; each job's key = sha256 of everything that decides its numbers
 *   job      one worker process: quantize, evaluate, write results/<key>.json (tmp + rename)
 *   run      the local runner: -j N worker processes (fork/exec "lowbit job"), timeouts, progress
 *   slurm    the same jobs as Slurm job arrays (sbatch), their state (squeue), a final collect
 *   collect  the only writer of the database: one transaction per result file, idempotent
 *   db       open/create out/lowbit.db from gen/schema.sql (embedded at build time), migrations
 *   import   lm-evaluation-harness and Intel-board results JSON → result files
 *
 * Files under the output directory OUT (default "out"):
 *   OUT/jobs/<key>.json        the job's spec (what the worker runs), written by the planner
 *   OUT/results/<key>.json     the job's result (status ok or failed), written once, atomically
 *   OUT/logs/<key>.log         the worker's stdout and stderr
 *   OUT/artifacts/<key>/       the quantized model
 *   OUT/cache/                 file hashes, KL-divergence base log-probs
 *   OUT/lowbit.db              the database (gen/schema.sql)
 *   OUT/slurm/<tag>/           one `lowbit slurm submit`: batch scripts, key lists, Slurm logs
 * A job is identified by its key only: a spec or result file is named by it, never by an id from
 * a CSV or an imported file. Everything that is not how a worker is started (fork/exec in run.c,
 * a Slurm array task in slurm.c) is shared: plan, spec files, `lowbit job --spec`, result files,
 * pending jobs, failed results of workers that died, collect. */
#ifndef GEN_PIPELINE_H
#define GEN_PIPELINE_H
#include <stdbool.h>
#include <jansson.h>

#include "eval/task.h"
#include "quant/quant.h"

#define PIPE_PATH_MAX 4096
#define PIPE_ID_MAX RECIPE_ID_MAX

/* ===== subcommands (gen/cmd_pipeline.c) ===== */
int cmd_run(int argc, char **argv);
int cmd_job(int argc, char **argv);
int cmd_collect(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_slurm(int argc, char **argv); /* gen/slurm.c */

/* ===== ids and paths (gen/csvin.c) ===== */

/* ids name database rows and pages of the site: 1..127 characters of [A-Za-z0-9._+-], not
 * starting with '.' or '-' (so never "..", "/x" or an option). -1 with a message naming what. */
int pipe_id_check(const char *id, const char *what);
/* an id made from free text (an imported model name): unsafe characters become '_', "/"
 * becomes "--", a leading '.'/'-' is dropped, cut to 127 characters; "" becomes "unnamed" */
void pipe_id_sanitize(const char *text, char *out, size_t size);
/* expand ${VAR} in a CSV path (LOWBIT_DATA defaults to ../shared/data); -1 when a variable is
 * unset or the result does not fit */
int pipe_expand(const char *raw, char *out, size_t size);

/* ===== models.csv and recipes.csv (gen/csvin.c) ===== */

struct model_row {
    char id[PIPE_ID_MAX];
    char path[PIPE_PATH_MAX];      /* as written (may hold ${LOWBIT_DATA}) */
    char tokenizer[PIPE_PATH_MAX]; /* as written; "" = the model's own */
    char display_name[256];
    char family[64];
    char base_model[PIPE_ID_MAX];
    char model_type[32];
    char license[64];
    char notes[1024];
};

/* read a CSV with a header row (columns by name, any order; '#' in the first cell comments a row
 * out). models: id, path required; tokenizer, display_name (default: id), family, base_model,
 * model_type, license, notes optional. recipes: id, algorithm required; weight_dtype, bits,
 * group_size, sym, double_quant, compute_dtype (default fp32), calib_set, calib_nsamples,
 * calib_seqlen, knobs (a JSON object) optional. An unknown column, a duplicate id, an unsafe id
 * or a malformed cell is an error naming file, row and column. Recipe algorithms are NOT checked
 * here: an unknown algorithm becomes a failed job with its message. *rows is owned (free()). */
int csvin_models(const char *path, struct model_row **rows, int *n);
int csvin_recipes(const char *path, struct recipe **rows, int *n);

/* ===== training provenance: lowbit train's OUT/curve.csv (gen/csvin.c) ===== */

/* one row of curve.csv (gen/cmd_train.c: step,tokens,train_loss,heldout_loss,lr,seconds) */
struct curve_row {
    long long step, tokens;   /* optimizer steps done, training tokens seen */
    double train_loss;        /* nats/token */
    double heldout_loss, lr, seconds; /* NAN: an empty cell or no such column (lr, seconds) */
};
/* read a curve.csv: a header naming the columns (any order; step, tokens, train_loss and
 * heldout_loss required, lr and seconds optional), then at least one row; integers for step (>= 1,
 * strictly increasing) and tokens (>= 0), finite numbers >= 0 for the rest. *rows is owned
 * (free()). -1 with a message naming the file, row and column. */
int csvin_curve(const char *path, struct curve_row **rows, int *n);

/* ===== what every job evaluates (gen/plan.c) ===== */

/* task slots: the lm-eval tasks (enum task_id), then the two protocols on WikiText-2 raw test */
enum { PIPE_PPL = TASK_COUNT, PIPE_KLD, PIPE_N_TASKS };
#define PIPE_PPL_CTX 512
#define PIPE_SPEED_DECODE 64 /* decode steps of the speed measure (prefill: PIPE_PPL_CTX) */

struct eval_spec {
    bool on[PIPE_N_TASKS];
    int limit[PIPE_N_TASKS];  /* documents (tasks) or 512-token chunks (ppl, kld); 0 = all */
    int seed;                 /* task_limit's sample seed (lm-eval's 1234) */
    char data_dir[PIPE_PATH_MAX];
    char text[PIPE_PATH_MAX]; /* the ppl/kld text (WikiText-2 raw test) */
    /* filled by plan_eval_hash: sha256 of each enabled task's data (ppl/kld: of text) */
    char sha[PIPE_N_TASKS][65];
};

/* the default evaluation: every task, with the per-task limits that keep `make report` within
 * its time budget (full = no limits) */
void plan_eval_default(struct eval_spec *ev, bool full);
/* apply "--tasks LIST" (task names, "ppl", "kld", "all") and "--limit N" (every slot) */
int plan_eval_tasks(struct eval_spec *ev, const char *list);
void plan_eval_limit(struct eval_spec *ev, int limit);
/* hash every enabled task's data files (loading them once); -1 when a file is missing */
int plan_eval_hash(struct eval_spec *ev);
const char *plan_slot_name(int slot); /* "arc_easy", ..., "ppl", "kld" */

/* ===== jobs (gen/plan.c) ===== */

struct job {
    char key[65];
    struct model_row model;
    char model_path[PIPE_PATH_MAX];     /* expanded */
    char model_tokenizer[PIPE_PATH_MAX]; /* expanded, "" = the model's own */
    char model_sha[65];     /* sha256 over the model's files ("" when they cannot be read) */
    char tok_sha[65];       /* of the explicit tokenizer file ("" none/unreadable) */
    char model_error[512];  /* why the files could not be read ("" = they could) */
    struct recipe recipe;
    struct eval_spec ev;
    char code_version[160]; /* for people: git describe + code hash */
    char code_hash[40];     /* in the key: plan_code_hash() */
};

struct plan {
    struct job *jobs;
    int n_jobs;
};

/* the code part of every key: "src.<hash>" of the sources that compute numbers (kernels/, eval/,
 * quant/, the job and eval commands) and the compiler flags, taken by the Makefile at build time;
 * "bin.<hash>" of the running binary when it was built without. */
const char *plan_code_hash(void);
/* what runs.code_version shows: `git describe --always --dirty` at build time + the code hash */
const char *plan_code_version(void);
/* sha256 of a file, or of a directory's regular files (name + hash each, sorted); cached under
 * cache_dir by (path, size, mtime, inode) when cache_dir is not NULL. -1 with a message. */
int plan_hash_path(const char *path, const char *cache_dir, char hex[65]);
/* fill a job (files hashed, key computed) */
int plan_job(struct job *j, const struct model_row *m, const struct recipe *r,
             const struct eval_spec *ev, const char *cache_dir);
/* the key text (what is hashed), for tests and `lowbit status --explain`; owned (free()) */
char *plan_key_text(const struct job *j);
/* every model × recipe (model-major, CSV order) */
int plan_build(struct plan *p, const struct model_row *models, int n_models,
               const struct recipe *recipes, int n_recipes, const struct eval_spec *ev,
               const char *cache_dir);
void plan_release(struct plan *p);

/* what `lowbit run`, `lowbit job` and `lowbit status` plan from (their shared options) */
struct plan_inputs {
    const char *models, *recipes; /* CSV paths */
    const char *tasks;            /* --tasks LIST, NULL = all */
    const char *out;              /* output directory (its cache/ holds file hashes) */
    int limit;                    /* --limit N, 0 = the defaults */
    bool full;                    /* --full: no limits */
};
#define PLAN_INPUTS_INIT {"gen/models.csv", "gen/recipes.csv", NULL, "out", 0, false}
/* one of the plan options (--models --recipes --tasks --out --limit --full) at argv[*i]: 1 taken
 * (*i advanced past a value), 0 not a plan option, -1 a bad value (with a message). Shared by
 * run, job, status and slurm (gen/cmd_pipeline.c). */
int plan_opt(int argc, char **argv, int *i, struct plan_inputs *a);
/* remove the temporary files of killed writers (<name>.tmp.<pid>) under OUT/results, OUT/jobs
 * and OUT/cache/sha256; only when no writer can be running (the caller holds OUT/.run.lock or
 * knows) */
void pipe_sweep_tmp(const char *out);
/* read the CSVs, set up and hash the evaluation, build the plan; -1 with a message */
int plan_make(const struct plan_inputs *in, struct plan *p);

/* the job as JSON (the spec file's content; also the model/recipe part of a result) and back */
json_t *job_to_json(const struct job *j);
int job_from_json(struct job *j, json_t *o, const char *what);
/* model and recipe rows as JSON objects (a result file's "model" and "recipe") */
json_t *model_row_to_json(const struct model_row *m);
json_t *recipe_to_json(const struct recipe *r);

/* ===== files (gen/job.c) ===== */

/* "OUT/results/<key>.json" etc. (OUT/SUB, OUT/SUB/KEY, OUT/SUB/KEY.EXT) into buf. A path that
 * does not fit is never cut short: buf is set to "" (which names no file) and -1 returned with
 * "PATH: a path of N bytes; ...". Under a directory that passed pipe_dir_check every such path
 * fits a PIPE_PATH_MAX buffer. */
int pipe_path(char *buf, size_t size, const char *out_dir, const char *sub, const char *key,
              const char *ext);
/* mkdir -p */
int pipe_mkdirs(const char *dir);
/* a temporary directory a process fills and then renames or removes (lowbit quant's OUT.tmp.*)
 * is held with an flock while it lives: the fd to keep open (closed at exit), -1 with a message */
int pipe_lock_dir(const char *dir);
/* remove every directory of parent whose name starts with prefix and that no live process holds
 * (pipe_lock_dir): what writers killed before they could clean up left */
void pipe_sweep_dead_dirs(const char *parent, const char *prefix);
/* the paths under dir must fit lowbit's PIPE_PATH_MAX buffers: a directory (an --out, --results,
 * --db) longer than PIPE_PATH_MAX - 512 bytes is refused up front, so no path built under it is
 * ever cut short (a cut path could name another file) */
int pipe_dir_check(const char *dir, const char *what);
/* write data to path via a temporary file in the same directory, fsync, rename, fsync the
 * directory: a reader sees the old file or the whole new one, never a part */
int pipe_write_atomic(const char *path, const char *data, size_t len);
/* json_dumps (indent 2, sorted keys) + pipe_write_atomic */
int pipe_write_json(const char *path, json_t *o);
/* the last max_lines lines (at most max_bytes) of a log file; owned, "" when unreadable */
char *pipe_log_tail(const char *path, int max_lines, size_t max_bytes);
/* ISO 8601 UTC "2024-05-01T12:00:00Z" */
void pipe_now_iso(char *buf, size_t size);

/* a result file's state: 0 absent, 1 ok, 2 failed, -1 present but unreadable / another key */
int pipe_result_state(const char *path, const char *key);
/* an ok result (at OUT/results/KEY.json) whose artifact (OUT/artifacts/...) is gone: the job runs
 * again, so that every run on the board keeps its downloadable artifact */
bool pipe_artifact_missing(const char *path);

/* Where a failure came from, recorded with it (result files' "failure", runs.failure):
 *  - the environment: the disk or a quota full, a file-size limit, an I/O error, memory that was
 *    not there at run time, a worker killed from outside (SIGKILL: the OOM killer; SIGTERM,
 *    SIGINT, SIGHUP), a Slurm task cancelled or preempted (RUN_INTERRUPTED). The next `lowbit
 *    run` (or `lowbit slurm submit`) runs the job again by itself.
 *  - the inputs: everything else (a missing or corrupt model, an unknown recipe, bad data, a
 *    crash or a timeout on these inputs): the same key fails the same way, so the failed result
 *    is kept until --retry-failed. */
enum pipe_failure { PIPE_FAIL_INPUT, PIPE_FAIL_ENVIRONMENT };
/* "input" / "environment" */
const char *pipe_failure_name(enum pipe_failure f);
/* the failure an error message or a log's tail tells of: ENVIRONMENT when it starts with
 * RUN_INTERRUPTED or carries the system's words for ENOSPC, EDQUOT, EIO, EFBIG, ENOMEM, EROFS,
 * EMFILE/ENFILE, SQLite's "database or disk is full", or lowbit's own "out of memory" and "...
 * of memory is available" (not "... but this machine has": a model too big for the machine stays
 * failed); INPUT otherwise */
enum pipe_failure pipe_failure_of(const char *text);
/* the failure a signal that killed a worker tells of: ENVIRONMENT for SIGKILL, SIGTERM, SIGINT,
 * SIGHUP, SIGXFSZ and SIGXCPU (sent from outside), INPUT for a crash (SIGSEGV, SIGABRT, ...) */
enum pipe_failure pipe_failure_of_signal(int sig);
/* a failed result file at path whose failure was the environment's (its "failure", or for a
 * file written before lowbit recorded one, what its error tells): the job is pending again */
bool pipe_result_retryable(const char *path);

/* the failed result of a job that produced none itself (crash, timeout, exec failure) */
int job_write_failed(const char *out_dir, const struct job *j, const char *error,
                     const char *log_path, const char *started_at, enum pipe_failure kind);

struct job_opts {
    const char *out_dir;
    const char *log;  /* the file stdout/stderr go to (its tail goes in a failed result), or NULL */
    int threads;      /* 0 = every core */
    bool quiet;
};
/* the worker: quantize, evaluate, write OUT/results/<key>.json (ok or failed). Returns 0 when
 * the job succeeded, 1 when it wrote a failed result, -1 when it could not write a result. */
int job_execute(const struct job *j, const struct job_opts *o);

/* ===== the local runner (gen/run.c) ===== */

struct run_opts {
    const char *out_dir;
    int n_parallel;      /* -j */
    int threads;         /* per job; 0 = cores / n_parallel (at least 1) */
    double timeout;      /* seconds per job; 0 = none */
    bool quiet, retry_failed;
};
struct run_stats {
    int total, cached, done, ok, failed, crashed;
};
/* the error prefix of the failed result of a job stopped from outside before it could finish
 * (a Slurm task cancelled, preempted or lost with its node): not the job's own failure, so it
 * is pending again without retry_failed */
#define RUN_INTERRUPTED "interrupted: "
/* the result file at path is failed with a RUN_INTERRUPTED error */
bool run_interrupted(const char *path);
/* the jobs of p still to run: result file missing or unreadable, failed by the environment
 * (pipe_result_retryable: RUN_INTERRUPTED among them), or failed at all with retry_failed; a key
 * planned twice runs once. todo (p->n_jobs entries) gets their indexes; st->total, cached and
 * failed (of the cached) are filled. Returns the count. (Shared with cluster submission.) */
int run_pending(const struct plan *p, const char *out_dir, bool retry_failed, int *todo,
                struct run_stats *st);
/* the failed result of a job whose worker ended without writing one (a crash, a signal, a
 * timeout; a Slurm task cancelled, out of time or memory): error = cause (one line), log_tail =
 * the tail of OUT/logs/<key>.log, failure = kind. The one writer of such results, for `lowbit
 * run` and `lowbit slurm`. -1 with a message. */
int run_write_lost(const char *out_dir, const struct job *j, const char *cause,
                   const char *started_at, enum pipe_failure kind);
/* write OUT/jobs/<key>.json (the spec `lowbit job --spec` runs); path gets its name */
int run_write_spec(const char *out_dir, const struct job *j, char *path, size_t size);
/* run every job whose result file is missing (or failed, with retry_failed): spec files, worker
 * processes, timeouts, failed results for workers that die. Stops early (-1) on SIGINT/SIGTERM
 * after killing the workers. */
int run_plan(const struct plan *p, const struct run_opts *o, struct run_stats *st);

/* ===== database (gen/db.c) ===== */
struct sqlite3;
#define DB_SCHEMA_VERSION 5 /* 2: tables training, training_curve; 3: runs.failure; 4: tasks;
                               5: n_params_active */
/* open (creating the file and directories) and bring the schema to DB_SCHEMA_VERSION inside one
 * transaction, with the tasks table rewritten from eval/task.c (db_write_tasks); a newer database
 * is refused. Rollback journal, synchronous FULL, foreign keys on. */
int db_open(const char *path, struct sqlite3 **db);
void db_close(struct sqlite3 *db);
/* PRAGMA integrity_check and foreign_key_check; -1 with the first problem */
int db_check(struct sqlite3 *db);
/* sqlite3_errmsg(db), with the system's error after it when an I/O failure caused it ("disk
 * I/O error (File too large)"); thread-local buffer */
const char *db_errmsg(struct sqlite3 *db);
/* exec SQL with a message naming what on failure */
int db_exec(struct sqlite3 *db, const char *sql, const char *what);
/* replace the rows of the tasks table with eval/task.c's tasks (inside the caller's transaction) */
int db_write_tasks(struct sqlite3 *db);
/* the embedded gen/schema.sql */
const char *db_schema_sql(void);

/* ===== collect (gen/collect.c) ===== */
struct collect_stats {
    int files, inserted, replaced, unchanged, superseded, malformed;
};
struct collect_opts {
    const char *results_dir, *db_path;
    /* the current plan (from `lowbit run`): its keys win over other results for the same
     * model × recipe, and its CSV rows refresh the models/recipes metadata. NULL = none. */
    const struct plan *plan;
    bool quiet;
};
int collect_run(const struct collect_opts *o, struct collect_stats *st);
/* validate a parsed result file (everything collect needs, with the right types, safe ids, the
 * key matching the file name when name_key is not NULL, text without control characters, every
 * number in its range: collect_metric_range for scores, >= 0 for standard errors, counts, times,
 * sizes, bits per weight in [0, 64]), with duplicate tasks/metrics found in linear time; -1 with
 * a message naming the member */
int collect_validate(json_t *r, const char *name_key);
/* the range of a score by its metric name: NULL when v lies in it, else what was expected
 * (static text): acc, acc_* and other fractions in [0, 1], perplexities (perplexity,
 * *_perplexity, ppl_*) >= 1, KL divergences (kld*) and bits_per_byte >= 0, dp_mean in [-1, 1];
 * any other metric any finite number. Every path into the database (import, collect) checks it. */
const char *collect_metric_range(const char *metric, double v);

/* ===== import (gen/import.c) ===== */
struct import_opts {
    const char *model_id, *recipe_id; /* NULL: from the file */
    const char *out_dir;
    bool quiet;
};
/* one lm-eval 0.4 or Intel-board results JSON → OUT/results/<key>.json; *key_out (65) gets the
 * key. -1 with a message. */
int import_file(const char *path, const struct import_opts *o, char *key_out);
/* "arc:challenge" -> "arc_challenge", "truthfulqa:mc1" -> "truthfulqa_mc1", ...; NULL when the
 * name is not a task lowbit knows (MMLU subjects "mmlu_x" pass through) */
const char *import_task_name(const char *name, char *buf, size_t size);
#endif
