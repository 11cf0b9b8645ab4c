/* gen/run.c: the local runner: every pending job as a worker process, N at a time.
 *
 * For each job of the plan whose result file is missing, the runner writes the job's spec file
 * (OUT/jobs/<key>.json) and starts `lowbit job --spec FILE --log OUT/logs/<key>.log` with
 * fork/exec of /proc/self/exe (the same binary, so the same code version), in its own process
 * group, with PR_SET_PDEATHSIG = SIGKILL (a runner killed with -9 takes its workers with it:
 * nothing keeps running unseen, and the re-run starts those jobs again). The worker writes its
 * own result, ok or failed. When a worker exits without one (a crash, a signal, a non-zero exit
 * before it could write, or --timeout, which kills its process group), the runner writes the
 * failed result, with the cause and the tail of the log.
 *
 * A Slurm array task is the same worker started by sbatch instead of fork (gen/slurm.c): the
 * plan, the spec file, `lowbit job --spec`, the result file, which jobs are pending
 * (run_pending) and the failed result of a worker that died (run_write_lost) are shared, only
 * the starting and the watching differ. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gen/pipeline.h"
#include "gen/report.h"
#include "gen/text.h"
#include "kernels/common.h"

struct worker {
    pid_t pid;
    int job;           /* index in the plan */
    double t0, deadline;
    bool timed_out;
    char started[32];
    ino_t old_ino; /* the result file's inode before the worker started (a retried failure), 0 */
};

int run_write_spec(const char *out_dir, const struct job *j, char *path, size_t size) {
    char dir[PIPE_PATH_MAX];
    if (pipe_path(dir, sizeof dir, out_dir, "jobs", NULL, NULL) || pipe_mkdirs(dir) ||
        pipe_path(path, size, out_dir, "jobs", j->key, ".json"))
        return -1;
    json_t *o = job_to_json(j);
    int rc = o ? pipe_write_json(path, o) : err("out of memory");
    json_decref(o);
    return rc;
}

/* in a forked worker: its own process group, killed with the runner, default signals and the
 * runner's mask, stdout and stderr into log, stdin from /dev/null */
static void child_setup(pid_t parent, const char *log, const sigset_t *old_mask) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127); /* the runner died before prctl */
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    sigprocmask(SIG_SETMASK, old_mask, NULL);
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        if (fd > 2) close(fd);
    }
    int null = open("/dev/null", O_RDONLY);
    if (null >= 0) {
        dup2(null, 0);
        if (null > 0) close(null);
    }
}

static pid_t spawn(const struct run_opts *o, const char *spec, const char *log,
                   const sigset_t *old_mask) {
    char threads[16];
    snprintf(threads, sizeof threads, "%d", o->threads);
    const pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) return err("cannot start a worker: fork: %s", strerror(errno));
    if (pid) {
        setpgid(pid, pid); /* also in the child: whichever runs first */
        return pid;
    }
    /* ---- child ---- */
    child_setup(parent, log, old_mask);
    char *argv[] = {"lowbit", "job", "--spec", (char *)spec, "--out", (char *)o->out_dir, "--log",
                    (char *)log, "--threads", threads, o->quiet ? "--quiet" : NULL, NULL};
    execv("/proc/self/exe", argv);
    fprintf(stderr, "lowbit: cannot run /proc/self/exe job: %s\n", strerror(errno));
    _exit(127);
}

static void fmt_secs(char *buf, size_t size, double s) {
    if (s < 0 || s > 1e7) snprintf(buf, size, "?");
    else if (s < 90) snprintf(buf, size, "%.0fs", s);
    else if (s < 5400) snprintf(buf, size, "%dm%02ds", (int)(s / 60), (int)s % 60);
    else snprintf(buf, size, "%.1fh", s / 3600);
}

static const char *sig_name(int s) {
    static char buf[64];
    const char *d = strsignal(s);
    snprintf(buf, sizeof buf, "signal %d (%s)", s, d ? d : "?");
    return buf;
}

/* ===== where a failure came from ===== */

const char *pipe_failure_name(enum pipe_failure f) {
    return f == PIPE_FAIL_ENVIRONMENT ? "environment" : "input";
}

enum pipe_failure pipe_failure_of(const char *text) {
    if (!text) return PIPE_FAIL_INPUT;
    if (!strncmp(text, RUN_INTERRUPTED, strlen(RUN_INTERRUPTED))) return PIPE_FAIL_ENVIRONMENT;
    /* the system's words (strerror in the C locale lowbit runs in), SQLite's and lowbit's */
    static const int errnos[] = {ENOSPC, EDQUOT, EIO, EFBIG, ENOMEM, EROFS, EMFILE, ENFILE};
    for (size_t i = 0; i < LB_ARRAY_LEN(errnos); i++)
        if (strstr(text, strerror(errnos[i]))) return PIPE_FAIL_ENVIRONMENT;
    static const char *const words[] = {"database or disk is full", "out of memory",
                                        "of memory is available"};
    for (size_t i = 0; i < LB_ARRAY_LEN(words); i++)
        if (strstr(text, words[i])) return PIPE_FAIL_ENVIRONMENT;
    return PIPE_FAIL_INPUT;
}

enum pipe_failure pipe_failure_of_signal(int sig) {
    return sig == SIGKILL || sig == SIGTERM || sig == SIGINT || sig == SIGHUP || sig == SIGXFSZ ||
                   sig == SIGXCPU
               ? PIPE_FAIL_ENVIRONMENT
               : PIPE_FAIL_INPUT;
}

bool pipe_result_retryable(const char *path) {
    json_t *r = json_load_file(path, 0, NULL);
    const char *f = json_string_value(json_object_get(r, "failure"));
    const char *e = json_string_value(json_object_get(r, "error"));
    const bool yes = f ? !strcmp(f, "environment") : pipe_failure_of(e) == PIPE_FAIL_ENVIRONMENT;
    json_decref(r);
    return yes;
}

int run_write_lost(const char *out_dir, const struct job *j, const char *cause,
                   const char *started_at, enum pipe_failure kind) {
    char log[PIPE_PATH_MAX];
    if (pipe_path(log, sizeof log, out_dir, "logs", j->key, ".log")) return -1;
    const bool q = err_quiet(); /* said once, with the job */
    err_set_quiet(true);
    const int rc = job_write_failed(out_dir, j, cause, log, started_at, kind);
    err_set_quiet(q);
    if (rc)
        return err("%s × %s: cannot write its failed result: %s", j->model.id, j->recipe.id,
                   err_last());
    return 0;
}

/* a worker ended: its result file, or a failed one written here */
static void reap(const struct plan *p, const struct run_opts *o, struct worker *w, int status,
                 struct run_stats *st) {
    const struct job *j = &p->jobs[w->job];
    char path[PIPE_PATH_MAX], log[PIPE_PATH_MAX], msg[512];
    pipe_path(path, sizeof path, o->out_dir, "results", j->key, ".json");
    pipe_path(log, sizeof log, o->out_dir, "logs", j->key, ".log");
    /* a worker's result is a new file (tmp + rename: a new inode), not a failure it retried */
    struct stat sb;
    const bool fresh = !stat(path, &sb) && sb.st_ino != w->old_ino;
    int state = fresh ? pipe_result_state(path, j->key) : 0;
    const double secs = now_s() - w->t0;
    if (w->timed_out || state <= 0) {
        /* the same timeout and the same crash come back; a signal from outside (the OOM
         * killer's SIGKILL) and a worker that could not write its result for want of room do
         * not (its last words are in the log) */
        enum pipe_failure kind = PIPE_FAIL_INPUT;
        if (w->timed_out) {
            snprintf(msg, sizeof msg, "timed out after %.0f s (--timeout %.0f); the job was killed",
                     secs, o->timeout);
        } else if (WIFSIGNALED(status)) {
            snprintf(msg, sizeof msg, "the worker was killed by %s", sig_name(WTERMSIG(status)));
            kind = pipe_failure_of_signal(WTERMSIG(status));
        } else {
            if (WIFEXITED(status) && WEXITSTATUS(status))
                snprintf(msg, sizeof msg, "the worker exited with status %d without a result",
                         WEXITSTATUS(status));
            else
                snprintf(msg, sizeof msg, "the worker wrote no result file");
            char *tail = pipe_log_tail(log, 20, 4096);
            kind = pipe_failure_of(tail);
            free(tail);
        }
        run_write_lost(o->out_dir, j, msg, w->started, kind);
        state = 2;
        st->crashed++;
    }
    st->done++;
    if (state == 1) st->ok++;
    else st->failed++;
    if (state != 1 || (!o->quiet && !isatty(2))) {
        if (isatty(2) && !o->quiet) fputc('\n', stderr);
        json_t *r = state != 1 ? json_load_file(path, 0, NULL) : NULL;
        const char *e = json_string_value(json_object_get(r, "error"));
        fprintf(stderr, "run: [%d/%d] %s %s × %s (%.1f s)%s%s%s\n", st->cached + st->done,
                st->total, state == 1 ? "ok    " : "FAILED", j->model.id, j->recipe.id, secs,
                e ? ": " : "", e ? e : "", state == 1 ? "" : "");
        if (state != 1) fprintf(stderr, "       log: %s\n", log);
        json_decref(r);
    }
}

bool run_interrupted(const char *path) {
    json_t *r = json_load_file(path, 0, NULL);
    const char *e = json_string_value(json_object_get(r, "error"));
    const bool yes = e && !strncmp(e, RUN_INTERRUPTED, strlen(RUN_INTERRUPTED));
    json_decref(r);
    return yes;
}

int run_pending(const struct plan *p, const char *out_dir, bool retry_failed, int *todo,
                struct run_stats *st) {
    char path[PIPE_PATH_MAX];
    int n_todo = 0;
    st->total = p->n_jobs;
    json_t *planned = json_object(); /* keys already taken (a set: linear in the plan's size) */
    for (int i = 0; i < p->n_jobs; i++) {
        pipe_path(path, sizeof path, out_dir, "results", p->jobs[i].key, ".json");
        int state = pipe_result_state(path, p->jobs[i].key);
        if (state == 1 && pipe_artifact_missing(path)) {
            fprintf(stderr, "lowbit: run: the artifact of %s is missing (deleted?); running the job "
                    "again\n", path);
            state = 0;
        }
        const bool dup = json_object_get(planned, p->jobs[i].key) != NULL;
        const bool env = state == 2 && !dup && pipe_result_retryable(path);
        const bool retry = retry_failed || env;
        if (state == 1 || (state == 2 && !retry) || dup) {
            st->cached++;
            if (state == 2) st->failed++;
            continue;
        }
        if (env && !retry_failed) {
            json_t *r = json_load_file(path, 0, NULL);
            const char *e = json_string_value(json_object_get(r, "error"));
            fprintf(stderr, "lowbit: run: %s × %s failed by the environment last time (%s); "
                    "running it again\n", p->jobs[i].model.id, p->jobs[i].recipe.id, e ? e : "?");
            json_decref(r);
        }
        if (state < 0)
            fprintf(stderr, "lowbit: run: %s is unreadable or not this job's; running the job "
                    "again\n", path);
        json_object_set_new(planned, p->jobs[i].key, json_true());
        todo[n_todo++] = i;
    }
    json_decref(planned);
    return n_todo;
}

/* ===== zoo training steps ===== */

/* `sh ZOO/zoo.sh BIN NAME` as a worker: its own process group, its output into the log, the
 * worker's threads through OMP_NUM_THREADS (training is bit-identical at any count) */
static pid_t spawn_train(const struct run_opts *o, const struct sched *s, const char *name,
                         const char *log, const sigset_t *old_mask) {
    char script[PIPE_PATH_MAX + 16], bin[PIPE_PATH_MAX], threads[16];
    snprintf(script, sizeof script, "%s/zoo.sh", s->o.zoo_dir);
    const ssize_t n = readlink("/proc/self/exe", bin, sizeof bin - 1);
    if (n <= 0) return err("cannot find this binary (/proc/self/exe): %s", strerror(errno));
    bin[n] = 0;
    snprintf(threads, sizeof threads, "%d", o->threads);
    const pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) return err("cannot start a training: fork: %s", strerror(errno));
    if (pid) {
        setpgid(pid, pid);
        return pid;
    }
    child_setup(parent, log, old_mask);
    setenv("OMP_NUM_THREADS", threads, 1);
    execl("/bin/sh", "sh", script, bin, name, (char *)NULL);
    fprintf(stderr, "lowbit: cannot run /bin/sh %s: %s\n", script, strerror(errno));
    _exit(127);
}

/* the last "step N/M" lowbit train wrote into the log: *done, *total (0 when none yet) */
static void train_step_of(const char *log, int *done, int *total) {
    *done = *total = 0;
    char *tail = pipe_log_tail(log, 40, 8192);
    for (const char *c = tail; c && (c = strstr(c, "step ")); c += 5) {
        int a, b;
        if (sscanf(c, "step %d/%d", &a, &b) == 2 && b > 0) *done = a, *total = b;
    }
    free(tail);
}

/* ===== progress across trainings and jobs ===== */

struct report_view {
    double t0;
    int running, last_step_line[64];
};

static void report_progress(const struct plan *p, const struct sched *s, const struct worker *ws,
                            int n_par, const struct run_stats *st, const struct run_opts *o,
                            struct report_view *v) {
    (void)p;
    if (o->quiet) return;
    const bool tty = isatty(2);
    char train[160] = "";
    for (int k = 0; k < n_par; k++) {
        if (!ws[k].pid || s->steps[ws[k].job].kind != STEP_TRAIN) continue;
        const int m = s->steps[ws[k].job].model;
        char log[PIPE_PATH_MAX], name[PIPE_ID_MAX + 8];
        snprintf(name, sizeof name, "zoo-%s", s->models[m].id);
        pipe_path(log, sizeof log, o->out_dir, "logs", name, ".log");
        int a, b;
        train_step_of(log, &a, &b);
        if (tty) {
            size_t len = strlen(train);
            snprintf(train + len, sizeof train - len, ", %s step %d/%d", s->models[m].id, a, b);
        } else if (a > 0 && a != v->last_step_line[m % 64]) {
            v->last_step_line[m % 64] = a;
            fprintf(stderr, "report: %s: training step %d/%d\n", s->models[m].id, a, b);
        }
    }
    if (!tty) return;
    char el[32], eta[32] = "?", left[48] = "";
    const double now = now_s(), elapsed = now - v->t0;
    fmt_secs(el, sizeof el, elapsed);
    /* the rest: what is waiting and fits, and what is running, spread over the workers */
    double rest = 0;
    for (int k = 0; k < s->n_steps; k++)
        if (s->steps[k].state == STEP_WAITING) rest += sched_estimate(s, k);
    for (int k = 0; k < n_par; k++)
        if (ws[k].pid) rest += LB_MAX(0, sched_estimate(s, ws[k].job) - (now - ws[k].t0));
    fmt_secs(eta, sizeof eta, rest / n_par);
    if (s->deadline > 0) {
        char b[32];
        fmt_secs(b, sizeof b, LB_MAX(0, s->deadline - now));
        snprintf(left, sizeof left, ", budget left %s", b);
    }
    const int finished = st->done;
    char rate[32] = "";
    if (finished && elapsed > 0) snprintf(rate, sizeof rate, ", %.1f jobs/min", finished * 60 / elapsed);
    fprintf(stderr, "\rreport: zoo %d/%d%s | jobs %d/%d done, %d failed, %d running%s | %s "
            "elapsed, ETA %s%s   ", s->n_train_done, s->n_train, train, st->cached + st->done,
            st->total, st->failed, v->running, rate, el, eta, left);
}

/* the next step to start: the first waiting one that is ready (a zoo model's jobs wait for its
 * training) and fits the budget; one that does not fit is skipped for this run. -1: none. */
static int next_step(struct sched *s, const struct run_opts *o) {
    for (int k = 0; k < s->n_steps; k++) {
        struct step *t = &s->steps[k];
        if (t->state != STEP_WAITING) continue;
        const int tr = s->models[t->model].train;
        if (t->kind == STEP_JOB && tr >= 0 && s->steps[tr].state != STEP_DONE) {
            if (s->steps[tr].state == STEP_SKIPPED || s->steps[tr].state == STEP_FAILED)
                t->state = STEP_SKIPPED;
            continue;
        }
        const double est = sched_estimate(s, k);
        if (s->deadline > 0 && now_s() + est > s->deadline - s->reserve) {
            t->state = STEP_SKIPPED;
            if (t->kind == STEP_TRAIN && !o->quiet) {
                char e[32], l[32];
                fmt_secs(e, sizeof e, est);
                fmt_secs(l, sizeof l, LB_MAX(0, s->deadline - s->reserve - now_s()));
                fprintf(stderr, "%sreport: budget: not training %s now (estimated %s, %s left); "
                        "the next run continues\n", isatty(2) ? "\n" : "",
                        s->models[t->model].id, e, l);
            }
            continue;
        }
        return k;
    }
    return -1;
}

int run_plan(const struct plan *p, const struct run_opts *o, struct run_stats *st) {
    /* without a budget or a zoo, the plan is not changed (no model is planned again) */
    struct sched s;
    struct sched_opts so = {0};
    struct plan *mp = (struct plan *)p;
    if (sched_build(&s, p, &so, o->out_dir, o->retry_failed, NULL, st)) return -1;
    const int rc = run_sched(mp, o, &s, st);
    sched_release(&s);
    return rc;
}

int run_sched(struct plan *p, const struct run_opts *o, struct sched *s, struct run_stats *st) {
    const int n_par = LB_MAX(1, o->n_parallel);
    struct worker *ws = xcalloc((size_t)n_par, sizeof *ws, "the workers");
    if (!ws) return -1;
    int n_todo = 0;
    for (int k = 0; k < s->n_steps; k++)
        n_todo += s->steps[k].kind == STEP_JOB && s->steps[k].state == STEP_WAITING;
    if (!o->quiet) {
        fprintf(stderr, "run: %d jobs, %d done before, %d to run, -j %d, %d threads each\n",
                p->n_jobs, st->cached, n_todo, n_par, o->threads);
        if (s->n_train || s->deadline > 0) {
            int n_rest = 0;
            char w[32], b[32] = "none";
            fmt_secs(w, sizeof w, sched_rest(s, &n_rest));
            if (s->deadline > 0) fmt_secs(b, sizeof b, LB_MAX(0, s->deadline - now_s()));
            fprintf(stderr, "report: %d zoo trainings and %d jobs to do, estimated %s of work; "
                    "budget left %s\n", s->n_train, n_rest, w, b);
        }
    }
    char dir[PIPE_PATH_MAX];
    int ret = 0;
    if (pipe_path(dir, sizeof dir, o->out_dir, "logs", NULL, NULL) || pipe_mkdirs(dir) ||
        pipe_path(dir, sizeof dir, o->out_dir, "results", NULL, NULL) || pipe_mkdirs(dir))
        ret = -1;

    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, &old);
    struct report_view view = {.t0 = now_s()};
    bool stop = ret != 0, train_failed = false;
    int running = 0;
    while (!stop) {
        /* start workers (w->job is the step) */
        int k;
        while (running < n_par && (k = next_step(s, o)) >= 0) {
            struct step *t = &s->steps[k];
            struct worker *w = NULL;
            for (int i = 0; i < n_par && !w; i++)
                if (!ws[i].pid) w = &ws[i];
            memset(w, 0, sizeof *w);
            w->job = k;
            pipe_now_iso(w->started, sizeof w->started);
            w->t0 = now_s();
            char log[PIPE_PATH_MAX];
            if (t->kind == STEP_TRAIN) {
                const char *id = s->models[t->model].id;
                char name[PIPE_ID_MAX + 8], e[32];
                snprintf(name, sizeof name, "zoo-%s", id);
                pipe_path(log, sizeof log, o->out_dir, "logs", name, ".log");
                fmt_secs(e, sizeof e, t->est);
                if (!o->quiet)
                    fprintf(stderr, "%sreport: training %s (estimated %s; log %s)\n",
                            isatty(2) ? "\n" : "", id, e, log);
                w->pid = spawn_train(o, s, id, log, &old);
            } else {
                const struct job *j = &p->jobs[t->job];
                char spec[PIPE_PATH_MAX], rpath[PIPE_PATH_MAX];
                struct stat sb;
                pipe_path(log, sizeof log, o->out_dir, "logs", j->key, ".log");
                w->deadline = o->timeout > 0 ? w->t0 + o->timeout : 0;
                pipe_path(rpath, sizeof rpath, o->out_dir, "results", j->key, ".json");
                w->old_ino = stat(rpath, &sb) ? 0 : sb.st_ino;
                if (run_write_spec(o->out_dir, j, spec, sizeof spec)) {
                    ret = -1;
                    stop = true;
                    break;
                }
                w->pid = spawn(o, spec, log, &old);
            }
            if (w->pid < 0) {
                w->pid = 0;
                ret = -1;
                stop = true;
                break;
            }
            t->state = STEP_RUNNING;
            running++;
        }
        view.running = running;
        report_progress(p, s, ws, n_par, st, o, &view);
        if (stop || !running) break;
        /* wait for a child, a signal, the next deadline or a progress tick */
        double wait = 1.0;
        for (int i = 0; i < n_par; i++)
            if (ws[i].pid && ws[i].deadline > 0) wait = LB_MIN(wait, ws[i].deadline - now_s());
        if (wait < 0.01) wait = 0.01;
        struct timespec ts = {(time_t)wait, (long)((wait - (time_t)wait) * 1e9)};
        siginfo_t si;
        int sig = sigtimedwait(&set, &si, &ts);
        if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP) {
            fprintf(stderr, "\nlowbit: run: interrupted by %s: stopping %d workers; run again to "
                    "resume (finished results are kept)\n", sig_name(sig), running);
            ret = -1;
            stop = true;
            break;
        }
        int status;
        pid_t pid;
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
            for (int i = 0; i < n_par; i++) {
                if (ws[i].pid != pid) continue;
                kill(-pid, SIGKILL); /* anything the worker left in its group */
                struct step *t = &s->steps[ws[i].job];
                const double secs = now_s() - ws[i].t0;
                if (t->kind == STEP_JOB) {
                    if (!s->fake_cost) {
                        s->ratio_actual += secs;
                        s->ratio_est += t->est;
                    }
                    struct worker w = ws[i];
                    w.job = t->job; /* reap speaks of plan indexes */
                    reap(p, o, &w, status, st);
                    t->state = STEP_DONE;
                } else {
                    const int m = t->model;
                    char e[32];
                    fmt_secs(e, sizeof e, secs);
                    if (WIFEXITED(status) && !WEXITSTATUS(status)) {
                        t->state = STEP_DONE;
                        s->n_train_done++;
                        if (!o->quiet)
                            fprintf(stderr, "%sreport: %s trained in %s\n", isatty(2) ? "\n" : "",
                                    s->models[m].id, e);
                        if (sched_model_ready(s, p, m, o->out_dir, o->retry_failed, st)) {
                            ret = -1;
                            stop = true;
                        }
                    } else {
                        t->state = STEP_FAILED;
                        train_failed = true;
                        char name[PIPE_ID_MAX + 8], log[PIPE_PATH_MAX];
                        snprintf(name, sizeof name, "zoo-%s", s->models[m].id);
                        pipe_path(log, sizeof log, o->out_dir, "logs", name, ".log");
                        err("report: training %s failed after %s (%s); its jobs are not run; "
                            "log: %s", s->models[m].id, e,
                            WIFSIGNALED(status) ? sig_name(WTERMSIG(status)) : "non-zero exit",
                            log);
                    }
                }
                ws[i].pid = 0;
                running--;
            }
        }
        for (int i = 0; i < n_par; i++) {
            if (!ws[i].pid || !ws[i].deadline || now_s() < ws[i].deadline || ws[i].timed_out)
                continue;
            ws[i].timed_out = true;
            kill(-ws[i].pid, SIGKILL);
        }
    }
    if (stop) { /* kill and wait for what is still running; no result is written for them */
        for (int i = 0; i < n_par; i++)
            if (ws[i].pid) {
                kill(-ws[i].pid, SIGKILL);
                waitpid(ws[i].pid, NULL, 0);
                s->steps[ws[i].job].state = STEP_WAITING;
                ws[i].pid = 0;
            }
    }
    view.running = 0;
    if (!o->quiet && isatty(2)) {
        report_progress(p, s, ws, n_par, st, o, &view);
        fputc('\n', stderr);
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    free(ws);
    if (!ret && train_failed) ret = 1;
    return ret;
}
