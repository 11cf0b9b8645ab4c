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

static void progress(const struct run_stats *st, int running, int pending, double t0,
                     double job_secs, int n_done_timed, const struct run_opts *o, bool final) {
    if (o->quiet || !isatty(2)) return;
    char eta[32] = "?";
    if (n_done_timed) {
        const double per = job_secs / n_done_timed;
        const int left = pending + running;
        fmt_secs(eta, sizeof eta, per * left / LB_MAX(1, o->n_parallel));
    }
    char el[32];
    fmt_secs(el, sizeof el, now_s() - t0);
    fprintf(stderr, "\rrun: %d/%d jobs done, %d failed, %d running, %s elapsed, ETA %s   ",
            st->cached + st->done, st->total, st->failed, running, el, final ? "0s" : eta);
    if (final) fputc('\n', stderr);
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

int run_plan(const struct plan *p, const struct run_opts *o, struct run_stats *st) {
    memset(st, 0, sizeof *st);
    st->total = p->n_jobs;
    int *todo = xcalloc((size_t)LB_MAX(1, p->n_jobs), sizeof *todo, "the job list");
    const int n_par = LB_MAX(1, o->n_parallel);
    struct worker *ws = xcalloc((size_t)n_par, sizeof *ws, "the workers");
    if (!todo || !ws) {
        free(todo);
        free(ws);
        return -1;
    }
    const int n_todo = run_pending(p, o->out_dir, o->retry_failed, todo, st);
    if (!o->quiet)
        fprintf(stderr, "run: %d jobs, %d done before, %d to run, -j %d, %d threads each\n",
                p->n_jobs, st->cached, n_todo, n_par, o->threads);
    char dir[PIPE_PATH_MAX];
    int ret = 0;
    if (n_todo && (pipe_path(dir, sizeof dir, o->out_dir, "logs", NULL, NULL) || pipe_mkdirs(dir) ||
                   pipe_path(dir, sizeof dir, o->out_dir, "results", NULL, NULL) ||
                   pipe_mkdirs(dir)))
        ret = -1;

    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, &old);
    const double t0 = now_s();
    double job_secs = 0;
    int next = 0, running = 0, n_timed = 0;
    bool stop = ret != 0;
    while (!stop && (next < n_todo || running)) {
        /* start workers */
        while (next < n_todo && running < n_par) {
            const struct job *j = &p->jobs[todo[next]];
            char spec[PIPE_PATH_MAX], log[PIPE_PATH_MAX];
            pipe_path(log, sizeof log, o->out_dir, "logs", j->key, ".log");
            struct worker *w = NULL;
            for (int k = 0; k < n_par && !w; k++)
                if (!ws[k].pid) w = &ws[k];
            memset(w, 0, sizeof *w);
            w->job = todo[next++];
            pipe_now_iso(w->started, sizeof w->started);
            w->t0 = now_s();
            w->deadline = o->timeout > 0 ? w->t0 + o->timeout : 0;
            char rpath[PIPE_PATH_MAX];
            struct stat sb;
            pipe_path(rpath, sizeof rpath, o->out_dir, "results", j->key, ".json");
            w->old_ino = stat(rpath, &sb) ? 0 : sb.st_ino;
            if (run_write_spec(o->out_dir, j, spec, sizeof spec)) {
                ret = -1;
                stop = true;
                break;
            }
            w->pid = spawn(o, spec, log, &old);
            if (w->pid < 0) {
                w->pid = 0;
                ret = -1;
                stop = true;
                break;
            }
            running++;
        }
        progress(st, running, n_todo - next, t0, job_secs, n_timed, o, false);
        if (stop) break;
        /* wait for a child, a signal, the next deadline or a progress tick */
        double wait = 1.0;
        for (int k = 0; k < n_par; k++)
            if (ws[k].pid && ws[k].deadline > 0) wait = LB_MIN(wait, ws[k].deadline - now_s());
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
            for (int k = 0; k < n_par; k++) {
                if (ws[k].pid != pid) continue;
                kill(-pid, SIGKILL); /* anything the worker left in its group */
                job_secs += now_s() - ws[k].t0;
                n_timed++;
                reap(p, o, &ws[k], status, st);
                ws[k].pid = 0;
                running--;
            }
        }
        for (int k = 0; k < n_par; k++) {
            if (!ws[k].pid || !ws[k].deadline || now_s() < ws[k].deadline || ws[k].timed_out)
                continue;
            ws[k].timed_out = true;
            kill(-ws[k].pid, SIGKILL);
        }
    }
    if (stop) { /* kill and wait for what is still running; no result is written for them */
        for (int k = 0; k < n_par; k++)
            if (ws[k].pid) {
                kill(-ws[k].pid, SIGKILL);
                waitpid(ws[k].pid, NULL, 0);
                ws[k].pid = 0;
            }
    }
    progress(st, 0, 0, t0, job_secs, n_timed, o, true);
    sigprocmask(SIG_SETMASK, &old, NULL);
    free(todo);
    free(ws);
    return ret;
}
