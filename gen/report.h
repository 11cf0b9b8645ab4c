/* gen/report.h: what `make report` adds to `lowbit run`: the order of the work, the time budget,
 * the zoo's training as steps of the same plan, progress across both, and the list of what is
 * still pending (OUT/pending.json, which the board shows).
 *
 * The steps are the plan's jobs and, with --zoo DIR, one training step per model of models.csv
 * that DIR has a NAME.conf for and whose trained files are not there yet (DIR/zoo.sh decides,
 * from its hash of the config, data and training code). They run in this order:
 *   tier 0  every model's baseline (the fp recipe the board compares against: fp16 > bf16 >
 *           fp32), a zoo model's training just before its baseline, smallest model first
 *   tier 1  per algorithm, the recipe nearest to 4 bits (and the other fp recipes)
 *   tier 2  the rest
 * within a tier by model size (smallest first), then in the CSV's order. A zoo model's jobs
 * wait for its training. With a budget, a step whose estimated time would end past the
 * deadline (less a reserve for collect and render) is not started; the next run continues.
 * Nothing here is in a job's key: the order and the budget change no number.
 *
 * This file and gen/report.c are not among the sources the code hash covers (Makefile
 * CODE_SRC): scheduling changes re-run nothing. */
#ifndef GEN_REPORT_H
#define GEN_REPORT_H
#include <stdbool.h>
#include <stdio.h>

#include "gen/pipeline.h"

struct sched_opts {
    double budget;       /* seconds; 0 = none */
    double started;      /* epoch seconds the budget counts from (make's start); 0 = now */
    const char *zoo_dir; /* --zoo DIR, or NULL */
    const char *db_path; /* the database whose recorded times calibrate the estimates */
};

enum step_kind { STEP_JOB, STEP_TRAIN };
enum step_state { STEP_WAITING, STEP_RUNNING, STEP_DONE, STEP_SKIPPED, STEP_FAILED };

struct step {
    enum step_kind kind;
    int job;   /* the plan's index (STEP_JOB), -1 for training */
    int model; /* index in sched.models */
    int tier;
    double est; /* estimated wall seconds on one worker */
    enum step_state state;
};

struct sched_model {
    char id[PIPE_ID_MAX];
    int first_job, n_jobs; /* its jobs in the plan (model-major: contiguous) */
    double n_params;       /* recorded, read from its file's size, or from its zoo config */
    int train;             /* its training step, -1 when it has none */
    double train_flops;    /* the zoo config's training FLOPs (0: not a zoo model) */
};

struct sched {
    struct sched_opts o;
    struct step *steps; /* in the order they are started */
    int n_steps;
    struct sched_model *models;
    int n_models;
    double deadline; /* now_s() clock; 0 = no budget */
    double reserve;  /* seconds kept for collect and render */
    bool fake_cost;  /* LOWBIT_SCHED_COST: every estimate fixed (tests) */
    double ratio_actual, ratio_est; /* jobs finished in this run: the estimates' correction */
    int n_train_done, n_train;
};

/* "1200", "1200s", "20m", "1.5h" -> seconds (0 = none); -1 with a message */
int sched_parse_duration(const char *s, const char *what, double *out);
/* --zoo: DIR/zoo.sh --check for the models of csv that DIR has a config for: links the ones
 * already trained and names the others in *train (a comma list, owned; "" none). -1 with a
 * message. */
int sched_zoo_check(const char *zoo_dir, const char *models_csv, char **train);
/* the steps of p (plan_make's, model-major) in their order, with estimates and each job's state
 * (run_pending); train: sched_zoo_check's list. st gets the totals. -1 with a message. */
int sched_build(struct sched *s, const struct plan *p, const struct sched_opts *o,
                const char *out_dir, bool retry_failed, const char *train,
                struct run_stats *st);
void sched_release(struct sched *s);
/* model m's training finished: its jobs are planned again (the model file exists now) and
 * judged (a job whose result exists is done). -1 with a message. */
int sched_model_ready(struct sched *s, struct plan *p, int m, const char *out_dir,
                      bool retry_failed, struct run_stats *st);
/* the estimate of step k now (corrected by the jobs finished in this run) */
double sched_estimate(const struct sched *s, int k);
/* the seconds of work the steps not done need, and how many jobs they are */
double sched_rest(const struct sched *s, int *n_jobs);
/* OUT/pending.json: the jobs not done (model, recipe, key, estimate, why) and the trainings;
 * what `lowbit render --pending` shows on the board */
int sched_write_pending(const struct sched *s, const struct plan *p, const char *out_dir,
                        int n_parallel);
/* the steps in their order, one line each (lowbit run --dry-run) */
void sched_print(const struct sched *s, const struct plan *p, FILE *f);
/* the report's summary line: "N done, M pending, estimated ... for the rest" */
void sched_summary(const struct sched *s, const struct run_stats *st, int n_parallel);

/* the runner with a schedule (gen/run.c): run_plan is run_sched without budget or zoo */
int run_sched(struct plan *p, const struct run_opts *o, struct sched *s, struct run_stats *st);
#endif
