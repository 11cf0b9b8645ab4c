/* gen/slurm.c: lowbit slurm submit | status | collect: the job matrix as Slurm job arrays.
 *
 * Only how a worker is started and watched differs from `lowbit run` (gen/run.c): the plan, the
 * spec files (OUT/jobs/<key>.json), the worker (`lowbit job --spec`), the result files, which
 * jobs are pending (run_pending), the failed result of a worker that died (run_write_lost) and
 * collect are the same code. An array task is the worker started by sbatch instead of fork.
 *
 * submit: plan; the pending jobs minus those queued or running in an earlier submission; one
 * array per distinct (cpus, memory, time), at most SLURM_ARRAY_MAX tasks each; then a final
 * job (afterany on every array) that runs `lowbit slurm collect` and `lowbit render`. Files of
 * one submission, under OUT/slurm/<tag>/ (tag = UTC time + pid, so names sort by age):
 *   array-<g>.keys        one job key per line: array task i runs line i+1
 *   array-<g>.sh          the batch script: lowbit job --spec OUT/jobs/KEY.json
 *   final.sh              lowbit slurm collect ... && lowbit render ...
 *   logs/<A>_<i>.out      Slurm's output of array A's task i (slurmstepd's CANCELLED / TIME
 *                         LIMIT lines); it exists once the task started
 *   submission.json       what was submitted: {format "lowbit-slurm", version 1, tag, submitted_at,
 *                         cwd, lowbit, arrays [{job_id, cpus, mem, time, keys [..]}], final_job_id}
 * Every path is relative to the directory submit ran in (the tasks run there: --chdir), which
 * must be on a filesystem every node sees at the same path.
 *
 * status and collect (and submit, before it decides): every task of every submission that is no
 * longer in squeue, that started (its Slurm log exists) and whose job has no result file ended
 * without one: its Slurm state (scontrol, else sacct) becomes a failed result through
 * run_write_lost, with the Slurm log appended to the job's log so the result's log tail shows
 * it. Cancelled, preempted, node-failed tasks and tasks Slurm forgot are RUN_INTERRUPTED (the
 * next submit or run runs them again); time limit, out of memory, a crash or an exit without a
 * result are the job's own failure, kept until --retry-failed like lowbit run's. A task that
 * never started stays pending. The newest submission of a key decides; a key queued or running
 * anywhere is never touched. OUT/slurm/.lock serializes these writers. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gen/cli.h"
#include "gen/pipeline.h"
#include "gen/text.h"
#include "kernels/common.h"

#define SLURM_ARRAY_MAX 1000  /* tasks per array: Slurm's default MaxArraySize is 1001 */
#define SLURM_EXTRA_MAX 32    /* --sbatch-arg */
#define SLURM_DEFAULT_CPUS 4
#define SLURM_FINAL_MEM "2G"  /* collect + render */
#define SLURM_FINAL_TIME "1:00:00"

/* ===== running the Slurm commands ===== */

/* run argv (searched in PATH) with stdin from /dev/null; *out and *errs get its stdout and
 * stderr (owned, NUL-terminated). Returns its exit status (128 + signal when killed), or -1 with
 * a message when it cannot be started. */
static int capture(char *const argv[], char **out, char **errs) {
    int po[2] = {-1, -1}, pe[2] = {-1, -1};
    *out = *errs = NULL;
    if (pipe(po) || pipe(pe)) {
        int e = errno;
        for (int k = 0; k < 2; k++) {
            if (po[k] >= 0) close(po[k]);
            if (pe[k] >= 0) close(pe[k]);
        }
        return err("%s: pipe: %s", argv[0], strerror(e));
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(po[0]), close(po[1]), close(pe[0]), close(pe[1]);
        return err("%s: fork: %s", argv[0], strerror(e));
    }
    if (!pid) {
        int null = open("/dev/null", O_RDONLY);
        if (null >= 0) dup2(null, 0);
        dup2(po[1], 1);
        dup2(pe[1], 2);
        close(po[0]), close(po[1]), close(pe[0]), close(pe[1]);
        execvp(argv[0], argv);
        fprintf(stderr, "lowbit: cannot run %s: %s", argv[0], strerror(errno));
        _exit(127);
    }
    close(po[1]), close(pe[1]);
    char *buf[2] = {NULL, NULL};
    size_t len[2] = {0, 0}, cap[2] = {0, 0};
    struct pollfd fds[2] = {{.fd = po[0], .events = POLLIN}, {.fd = pe[0], .events = POLLIN}};
    int open_fds = 2;
    bool oom = false;
    while (open_fds) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        for (int k = 0; k < 2; k++) {
            if (fds[k].fd < 0 || !(fds[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            if (len[k] + 4096 + 1 > cap[k]) {
                size_t nc = cap[k] ? 2 * cap[k] : 8192;
                char *nb = realloc(buf[k], nc);
                if (!nb) {
                    oom = true;
                    close(fds[k].fd);
                    fds[k].fd = -1;
                    open_fds--;
                    continue;
                }
                buf[k] = nb;
                cap[k] = nc;
            }
            ssize_t n = read(fds[k].fd, buf[k] + len[k], 4096);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                close(fds[k].fd);
                fds[k].fd = -1;
                open_fds--;
                continue;
            }
            len[k] += (size_t)n;
        }
    }
    for (int k = 0; k < 2; k++)
        if (fds[k].fd >= 0) close(fds[k].fd);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    for (int k = 0; k < 2; k++) {
        if (!buf[k]) buf[k] = malloc(1);
        if (buf[k]) buf[k][len[k]] = 0;
    }
    *out = buf[0];
    *errs = buf[1];
    if (oom || !buf[0] || !buf[1]) return err("out of memory reading %s's output", argv[0]);
    const int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (rc == 127 && !strncmp(*errs, "lowbit: cannot run", 18))
        return err("%s; is Slurm's client installed and in PATH (Debian: slurm-client)?",
                   *errs + 8);
    return rc;
}

/* the first line of a command's stderr, for a message */
static const char *first_line(const char *s, char *buf, size_t size) {
    while (*s == '\n' || *s == ' ') s++;
    snprintf(buf, size, "%.*s", (int)strcspn(s, "\n"), s);
    return buf[0] ? buf : "(no message)";
}

/* s as one POSIX shell word: single-quoted, a quote as '\'' */
static void sh_word(FILE *f, const char *s) {
    fputc('\'', f);
    for (; *s; s++) {
        if (*s == '\'') fputs("'\\''", f);
        else fputc(*s, f);
    }
    fputc('\'', f);
}

/* ===== submissions on disk ===== */

struct stask {
    char key[65];
    char array_id[24];
    int index;    /* its array task id */
    int sub;      /* its submission (index in survey.tags) */
    char queue[24]; /* squeue's state (PENDING, RUNNING, ...); "" when Slurm no longer has it */
};

/* every task of every submission under OUT/slurm, newest submission first */
struct survey {
    struct stask *t;
    int n, cap;
    char (*tags)[64];
    json_t **subs; /* the submission.json of each tag (owned) */
    int n_subs;
    bool queue_known; /* squeue answered: tasks missing from it have ended */
    /* lookups in linear time over tens of thousands of tasks (JSON objects as hash tables):
     * "ARRAY_INDEX" -> task index, key -> index of its newest task, keys queued or running */
    json_t *by_task, *first_of_key, *active_keys;
};

static void survey_release(struct survey *s) {
    json_decref(s->by_task);
    json_decref(s->first_of_key);
    json_decref(s->active_keys);
    for (int i = 0; i < s->n_subs; i++) json_decref(s->subs[i]);
    free(s->subs);
    free(s->tags);
    free(s->t);
    memset(s, 0, sizeof *s);
}

static int cmp_tag_desc(const void *a, const void *b) {
    return -strcmp(*(char *const *)a, *(char *const *)b);
}

/* read OUT/slurm/<tag>/submission.json of every tag (a malformed one is reported and skipped) */
static int survey_load(struct survey *s, const char *out) {
    char dir[PIPE_PATH_MAX];
    memset(s, 0, sizeof *s);
    if (pipe_path(dir, sizeof dir, out, "slurm", NULL, NULL)) return -1;
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? 0 : err("%s: cannot read: %s", dir, strerror(errno));
    char **names = NULL;
    int n = 0, cap = 0, ret = -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || strlen(e->d_name) >= 64) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            char **nn = realloc(names, (size_t)cap * sizeof *nn);
            if (!nn) goto out;
            names = nn;
        }
        if (!(names[n] = strdup(e->d_name))) goto out;
        n++;
    }
    if (n) qsort(names, (size_t)n, sizeof *names, cmp_tag_desc);
    s->tags = xcalloc((size_t)LB_MAX(n, 1), sizeof *s->tags, "the submissions");
    s->subs = xcalloc((size_t)LB_MAX(n, 1), sizeof *s->subs, "the submissions");
    if (!s->tags || !s->subs) goto out;
    for (int i = 0; i < n; i++) {
        char path[PIPE_PATH_MAX + 128];
        snprintf(path, sizeof path, "%s/%s/submission.json", dir, names[i]);
        if (access(path, F_OK)) continue; /* not a submission (or a dry run) */
        json_error_t je;
        json_t *m = json_load_file(path, 0, &je);
        json_t *arrays = json_object_get(m, "arrays");
        const char *fmt = json_string_value(json_object_get(m, "format"));
        if (!m || !fmt || strcmp(fmt, "lowbit-slurm") || !json_is_array(arrays)) {
            fprintf(stderr, "lowbit: slurm: %s: not a lowbit submission (%s); ignored\n", path,
                    m ? "format" : je.text);
            json_decref(m);
            continue;
        }
        const int sub = s->n_subs++;
        snprintf(s->tags[sub], sizeof s->tags[sub], "%s", names[i]);
        s->subs[sub] = m;
        size_t ai;
        json_t *a;
        json_array_foreach(arrays, ai, a) {
            const char *id = json_string_value(json_object_get(a, "job_id"));
            json_t *keys = json_object_get(a, "keys");
            if (!id || strlen(id) >= sizeof s->t[0].array_id || !json_is_array(keys)) continue;
            size_t ki;
            json_t *k;
            json_array_foreach(keys, ki, k) {
                const char *key = json_string_value(k);
                if (!key || strlen(key) != 64 || strspn(key, "0123456789abcdef") != 64) continue;
                if (s->n == s->cap) {
                    int nc = s->cap ? 2 * s->cap : 256;
                    struct stask *nt = realloc(s->t, (size_t)nc * sizeof *nt);
                    if (!nt) {
                        err("out of memory");
                        goto out;
                    }
                    s->t = nt;
                    s->cap = nc;
                }
                struct stask *t = &s->t[s->n++];
                memset(t, 0, sizeof *t);
                memcpy(t->key, key, 65);
                snprintf(t->array_id, sizeof t->array_id, "%s", id);
                t->index = (int)ki;
                t->sub = sub;
            }
        }
    }
    ret = 0;
out:
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    closedir(d);
    return ret;
}

/* the lookups of the tasks as loaded (s->t is newest submission first) */
static int survey_index(struct survey *s) {
    s->by_task = json_object();
    s->first_of_key = json_object();
    s->active_keys = json_object();
    if (!s->by_task || !s->first_of_key || !s->active_keys) return err("out of memory");
    for (int i = 0; i < s->n; i++) {
        char name[96];
        snprintf(name, sizeof name, "%s_%d", s->t[i].array_id, s->t[i].index);
        json_object_set_new(s->by_task, name, json_integer(i));
        if (!json_object_get(s->first_of_key, s->t[i].key))
            json_object_set_new(s->first_of_key, s->t[i].key, json_integer(i));
    }
    return 0;
}

/* squeue's state of every task of the arrays (stask.queue); -1 with a message when squeue fails */
static int survey_queue(struct survey *s) {
    /* the job ids, 64 per squeue call */
    char **ids = xcalloc((size_t)LB_MAX(1, s->n_subs * 8 + s->n), sizeof *ids, "the job ids");
    int n_ids = 0;
    if (!ids) return -1;
    for (int i = 0; i < s->n; i++) {
        bool seen = false;
        for (int k = 0; k < n_ids && !seen; k++) seen = !strcmp(ids[k], s->t[i].array_id);
        if (!seen) ids[n_ids++] = s->t[i].array_id;
    }
    int ret = 0;
    for (int from = 0; from < n_ids && !ret; from += 64) {
        char list[64 * 25] = "";
        size_t len = 0;
        for (int k = from; k < n_ids && k < from + 64; k++)
            len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", k > from ? "," : "",
                                    ids[k]);
        char *argv[] = {"squeue", "-h", "-r", "-j", list, "-o", "%F|%K|%T", NULL};
        char *out = NULL, *errs = NULL, line[256];
        int rc = capture(argv, &out, &errs);
        if (rc > 0 && errs && strstr(errs, "Invalid job id")) {
            rc = 0; /* none of them is known any more: all ended */
            out[0] = 0;
        }
        if (rc > 0)
            ret = err("slurm: squeue failed (exit %d): %s", rc,
                      first_line(errs, line, sizeof line));
        else if (rc < 0)
            ret = -1;
        for (char *save = NULL, *l = rc ? NULL : strtok_r(out, "\n", &save); l;
             l = strtok_r(NULL, "\n", &save)) {
            char *f1 = strchr(l, '|'), *f2 = f1 ? strchr(f1 + 1, '|') : NULL;
            if (!f2) continue;
            *f1 = *f2 = 0;
            char *end;
            long idx = strtol(f1 + 1, &end, 10);
            if (end == f1 + 1 || *end) continue; /* not one array task */
            char name[96];
            snprintf(name, sizeof name, "%s_%ld", l, idx);
            json_t *at = json_object_get(s->by_task, name);
            if (at) {
                struct stask *t = &s->t[json_integer_value(at)];
                snprintf(t->queue, sizeof t->queue, "%s", f2 + 1);
                json_object_set_new(s->active_keys, t->key, json_true());
            }
        }
        free(out);
        free(errs);
    }
    free(ids);
    s->queue_known = !ret;
    return ret;
}

static void task_log(const struct survey *s, const struct stask *t, const char *out, char *buf,
                     size_t size) {
    snprintf(buf, size, "%s/slurm/%s/logs/%s_%d.out", out, s->tags[t->sub], t->array_id, t->index);
}

/* key queued or running in some array */
static bool key_active(const struct survey *s, const char *key) {
    return json_object_get(s->active_keys, key) != NULL;
}

/* the newest task of this key (s->t is newest submission first; within one, the first) */
static bool newest_of_key(const struct survey *s, int i) {
    return json_integer_value(json_object_get(s->first_of_key, s->t[i].key)) == i;
}

/* ===== tasks that ended without a result ===== */

struct slurm_end {
    char state[64];    /* CANCELLED, TIMEOUT, FAILED, ... or UNKNOWN */
    char exit_code[16]; /* "0:9" (status:signal) */
    char started[32];  /* ISO 8601 UTC, "" unknown */
};

/* "2024-05-01T12:00:00" (the controller's local time) -> "2024-05-01T10:00:00Z" */
static void slurm_time_utc(const char *t, char *buf, size_t size) {
    struct tm tm = {0};
    buf[0] = 0;
    const char *end = strptime(t, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!end || (*end && *end != ' ')) return;
    tm.tm_isdst = -1;
    time_t secs = mktime(&tm);
    struct tm u;
    if (secs == (time_t)-1 || !gmtime_r(&secs, &u)) return;
    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &u);
}

/* " Name=value" of a `scontrol -o show job` line */
static void kv(const char *line, const char *name, char *buf, size_t size) {
    char pat[48];
    snprintf(pat, sizeof pat, " %s=", name);
    const char *p = strstr(line, pat);
    if (p) p += strlen(pat);
    else if (!strncmp(line, pat + 1, strlen(pat) - 1)) p = line + strlen(pat) - 1;
    buf[0] = 0;
    if (p) snprintf(buf, size, "%.*s", (int)strcspn(p, " \n"), p);
}

/* the end state of array task array_id_index: scontrol (jobs the controller still holds), else
 * sacct (accounting, when the cluster keeps it), else UNKNOWN */
static void slurm_end_state(const char *array_id, int index, struct slurm_end *e) {
    memset(e, 0, sizeof *e);
    snprintf(e->state, sizeof e->state, "UNKNOWN");
    char id[48];
    snprintf(id, sizeof id, "%s_%d", array_id, index);
    char *out = NULL, *errs = NULL;
    char *sc[] = {"scontrol", "-o", "show", "job", id, NULL};
    const bool quiet_was = err_quiet();
    err_set_quiet(true);
    if (!capture(sc, &out, &errs)) {
        char v[64];
        kv(out, "JobState", v, sizeof v);
        if (v[0]) {
            snprintf(e->state, sizeof e->state, "%s", v);
            kv(out, "ExitCode", e->exit_code, sizeof e->exit_code);
            kv(out, "StartTime", v, sizeof v);
            slurm_time_utc(v, e->started, sizeof e->started);
        }
    }
    free(out);
    free(errs);
    out = errs = NULL;
    if (!strcmp(e->state, "UNKNOWN")) {
        char *sa[] = {"sacct", "-n", "-P", "-X", "-j", id, "-o", "State,ExitCode,Start", NULL};
        if (!capture(sa, &out, &errs) && out[0]) {
            char *f1 = strchr(out, '|'), *f2 = f1 ? strchr(f1 + 1, '|') : NULL;
            if (f2) {
                *f1 = *f2 = 0;
                snprintf(e->state, sizeof e->state, "%.*s", (int)strcspn(out, " \n"), out);
                snprintf(e->exit_code, sizeof e->exit_code, "%s", f1 + 1);
                f2[1 + strcspn(f2 + 1, "\n")] = 0;
                slurm_time_utc(f2 + 1, e->started, sizeof e->started);
            }
        }
        free(out);
        free(errs);
    }
    err_set_quiet(quiet_was);
}

/* the failed result's error for a task that ended in state e without a result; true when that
 * is not the job's doing (RUN_INTERRUPTED: it runs again on the next submit) */
static bool lost_cause(const struct slurm_end *e, const char *task, const json_t *array,
                       char *msg, size_t size) {
    const char *st = e->state;
    const char *mem = json_string_value(json_object_get(array, "mem"));
    const char *tl = json_string_value(json_object_get(array, "time"));
    if (!strcmp(st, "TIMEOUT") || !strcmp(st, "DEADLINE")) {
        snprintf(msg, size, "Slurm array task %s ran past its time limit (%s, --time %s) and was "
                 "killed; submit with a larger --time and --retry-failed", task, st, tl ? tl : "?");
        return false;
    }
    if (!strcmp(st, "OUT_OF_MEMORY")) {
        snprintf(msg, size, "Slurm array task %s ran out of memory (OUT_OF_MEMORY, --mem %s); "
                 "submit with a larger --mem and --retry-failed", task, mem ? mem : "?");
        return false;
    }
    if (!strcmp(st, "FAILED") || !strcmp(st, "COMPLETED")) {
        int code = 0, sig = 0;
        if (sscanf(e->exit_code, "%d:%d", &code, &sig) != 2) code = sig = 0;
        if (sig)
            snprintf(msg, size, "Slurm array task %s: the worker was killed by signal %d (%s) "
                     "without a result (%s)", task, sig, strsignal(sig), st);
        else if (code)
            snprintf(msg, size, "Slurm array task %s: the worker exited with status %d without "
                     "a result (%s)", task, code, st);
        else
            snprintf(msg, size, "Slurm array task %s: the worker wrote no result file (%s)",
                     task, st);
        return false;
    }
    if (!strcmp(st, "UNKNOWN"))
        snprintf(msg, size, RUN_INTERRUPTED "Slurm array task %s ended without a result and "
                 "Slurm no longer knows how; the next lowbit slurm submit runs it again", task);
    else
        snprintf(msg, size, RUN_INTERRUPTED "Slurm array task %s was %s before the job wrote a "
                 "result; the next lowbit slurm submit runs it again", task, st);
    return true;
}

/* append the task's Slurm output (its last 16 KiB) to OUT/logs/<key>.log */
static void append_slurm_log(const char *slurm_log, const char *out, const char *key,
                             const char *task) {
    char log[PIPE_PATH_MAX];
    pipe_path(log, sizeof log, out, "logs", key, ".log");
    FILE *in = fopen(slurm_log, "rb"), *f = fopen(log, "ab");
    if (f) fprintf(f, "\n---- Slurm output of array task %s (%s) ----\n", task, slurm_log);
    if (in && f && !fseek(in, 0, SEEK_END)) {
        long size = ftell(in);
        fseek(in, size > 16384 ? size - 16384 : 0, SEEK_SET);
        char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, in))) fwrite(buf, 1, n, f);
    }
    if (in) fclose(in);
    if (f) fclose(f);
}

static json_t *task_array(const struct survey *s, const struct stask *t) {
    json_t *arrays = json_object_get(s->subs[t->sub], "arrays"), *a;
    size_t i;
    json_array_foreach(arrays, i, a) {
        const char *id = json_string_value(json_object_get(a, "job_id"));
        if (id && !strcmp(id, t->array_id)) return a;
    }
    return NULL;
}

/* the job of a key, from its spec file OUT/jobs/<key>.json (owned: free()) */
static struct job *load_spec(const char *out, const char *key) {
    char path[PIPE_PATH_MAX];
    pipe_path(path, sizeof path, out, "jobs", key, ".json");
    json_error_t je;
    json_t *o = json_load_file(path, 0, &je);
    struct job *j = o ? xcalloc(1, sizeof *j, "a job") : NULL;
    if (!o) err("%s: %s", path, je.text);
    if (j && job_from_json(j, o, path)) {
        free(j);
        j = NULL;
    }
    json_decref(o);
    return j;
}

/* write the failed results of tasks that ended without one (see the top); the count, -1 when
 * the queue is unknown */
static int survey_mark_lost(struct survey *s, const char *out, bool quiet) {
    if (!s->queue_known) return -1;
    int n = 0;
    for (int i = 0; i < s->n; i++) {
        const struct stask *t = &s->t[i];
        char rpath[PIPE_PATH_MAX], slog[PIPE_PATH_MAX + 256], task[48];
        if (t->queue[0] || !newest_of_key(s, i) || key_active(s, t->key)) continue;
        pipe_path(rpath, sizeof rpath, out, "results", t->key, ".json");
        if (pipe_result_state(rpath, t->key) > 0) continue;
        task_log(s, t, out, slog, sizeof slog);
        if (access(slog, F_OK)) continue; /* it never started: pending */
        snprintf(task, sizeof task, "%s_%d", t->array_id, t->index);
        struct slurm_end e;
        slurm_end_state(t->array_id, t->index, &e);
        char msg[512];
        const enum pipe_failure kind = lost_cause(&e, task, task_array(s, t), msg, sizeof msg)
                                           ? PIPE_FAIL_ENVIRONMENT
                                           : PIPE_FAIL_INPUT;
        struct job *j = load_spec(out, t->key);
        if (!j) {
            fprintf(stderr, "lowbit: slurm: task %s: no job spec, no failed result: %s\n", task,
                    err_last());
            continue;
        }
        if (pipe_result_state(rpath, t->key) <= 0) { /* not written meanwhile */
            append_slurm_log(slog, out, t->key, task);
            if (!run_write_lost(out, j, msg, e.started[0] ? e.started : NULL, kind)) {
                n++;
                if (!quiet)
                    fprintf(stderr, "slurm: %s × %s (task %s): %s\n", j->model.id, j->recipe.id,
                            task, msg);
            }
        }
        free(j);
    }
    return n;
}

/* OUT/slurm/.lock, held until the process ends or the fd is closed */
static int lock_slurm(const char *out) {
    char dir[PIPE_PATH_MAX], path[PIPE_PATH_MAX + 16];
    if (pipe_path(dir, sizeof dir, out, "slurm", NULL, NULL) || pipe_mkdirs(dir)) return -1;
    snprintf(path, sizeof path, "%s/.lock", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return err("%s: cannot open: %s", path, strerror(errno));
    while (flock(fd, LOCK_EX)) {
        if (errno == EINTR) continue;
        int e = errno;
        close(fd);
        return err("%s: cannot lock: %s", path, strerror(e));
    }
    return fd;
}

/* temporary files of writers that were killed (pipe_write_atomic's <name>.tmp.<pid>), when no
 * task of ours is queued or running and no lowbit run holds OUT/.run.lock: none is being written */
static void remove_stale_tmp(const struct survey *s, const char *out) {
    for (int i = 0; i < s->n; i++)
        if (s->t[i].queue[0]) return;
    char path[PIPE_PATH_MAX + 300];
    pipe_path(path, sizeof path, out, ".run.lock", NULL, NULL);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB)) {
        close(fd);
        return;
    }
    pipe_sweep_tmp(out);
    if (fd >= 0) close(fd);
}

/* load, ask squeue, mark lost tasks: what every subcommand starts with */
static int survey_take(struct survey *s, const char *out, bool quiet) {
    if (survey_load(s, out) || survey_index(s)) return -1;
    if (!s->n) return 0;
    if (survey_queue(s)) return -1;
    if (survey_mark_lost(s, out, quiet) < 0) return -1;
    remove_stale_tmp(s, out);
    return 0;
}

/* ===== options ===== */

/* a value passed on to sbatch: no spaces, not an option */
static int check_word(const char *v, const char *name, const char *allowed) {
    if (!*v || *v == '-' || (allowed && strspn(v, allowed) != strlen(v)) ||
        strpbrk(v, " \t\n'\"\\"))
        return err("slurm: %s '%s' is not a valid value", name, v);
    return 0;
}

/* ===== resources ===== */

struct res {
    int cpus;
    char mem[32], time[32];
};

/* the defaults (README: Running on a Slurm cluster): memory 1 GiB + 4x the model's files (6x
 * when the recipe calibrates), in 256 MiB steps; time 1 h + 1 h per GB of model files, x3 when
 * calibrating, x4 with --full */
static void job_res(const struct job *j, const struct res *force, bool full, struct res *r) {
    const long long bytes = LB_MAX(path_bytes(j->model_path), 0); /* 0 when unreadable */
    const struct qmethod_info *qi =
        j->recipe.method < QMETHOD_COUNT ? qmethod_get(j->recipe.method) : NULL;
    const bool calib = qi && qi->needs_calib;
    r->cpus = force->cpus;
    if (force->mem[0]) {
        snprintf(r->mem, sizeof r->mem, "%s", force->mem);
    } else {
        long long mb = 1024 + ((calib ? 6 : 4) * bytes + (1 << 20) - 1) / (1 << 20);
        mb = (mb + 255) / 256 * 256;
        if (mb % 1024) snprintf(r->mem, sizeof r->mem, "%lldM", mb);
        else snprintf(r->mem, sizeof r->mem, "%lldG", mb / 1024);
    }
    if (force->time[0]) {
        snprintf(r->time, sizeof r->time, "%s", force->time);
    } else {
        long long min = 60 + 60 * bytes / 1000000000LL;
        if (calib) min *= 3;
        if (full) min *= 4;
        if (min >= 24 * 60)
            snprintf(r->time, sizeof r->time, "%lld-%02lld:%02lld:00", min / 1440,
                     min % 1440 / 60, min % 60);
        else
            snprintf(r->time, sizeof r->time, "%lld:%02lld:00", min / 60, min % 60);
    }
}

/* ===== submit ===== */

struct submit_opts {
    struct plan_inputs in;
    struct res force; /* --cpus-per-task, --mem, --time ("" = estimate) */
    const char *partition, *account, *db, *site;
    const char *extra[SLURM_EXTRA_MAX];
    int n_extra, max_running;
    bool retry_failed, no_final, dry_run, quiet;
};

static void add_common(char **argv, int *n, const struct submit_opts *o, char *store,
                       size_t size) {
    size_t used = 0;
    if (o->partition) {
        argv[(*n)++] = store + used;
        used += (size_t)snprintf(store + used, size - used, "--partition=%s", o->partition) + 1;
    }
    if (o->account) {
        argv[(*n)++] = store + used;
        used += (size_t)snprintf(store + used, size - used, "--account=%s", o->account) + 1;
    }
    for (int k = 0; k < o->n_extra; k++) argv[(*n)++] = (char *)o->extra[k];
}

/* sbatch ARGV; *job_id gets the id. Prints the command unless quiet. */
static int sbatch(char **argv, bool print, bool dry_run, char *job_id, size_t size) {
    if (print || dry_run) {
        fprintf(dry_run ? stdout : stderr, "%s", dry_run ? "" : "slurm: ");
        for (int k = 0; argv[k]; k++) {
            fputs(k ? " " : "", dry_run ? stdout : stderr);
            if (strpbrk(argv[k], " '\"$\\*?&;|<>()`")) sh_word(dry_run ? stdout : stderr, argv[k]);
            else fputs(argv[k], dry_run ? stdout : stderr);
        }
        fputc('\n', dry_run ? stdout : stderr);
    }
    if (dry_run) {
        snprintf(job_id, size, "DRYRUN");
        return 0;
    }
    char *out = NULL, *errs = NULL, line[512];
    int rc = capture(argv, &out, &errs);
    if (rc > 0) err("slurm: sbatch failed (exit %d): %s", rc, first_line(errs, line, sizeof line));
    if (!rc) {
        /* --parsable: "<id>" or "<id>;<cluster>" */
        size_t n = strspn(out, "0123456789");
        if (!n || n >= size) rc = err("slurm: sbatch printed no job id: '%s'", out);
        else snprintf(job_id, size, "%.*s", (int)n, out);
    }
    free(out);
    free(errs);
    return rc ? -1 : 0;
}

static int write_text(const char *path, const char *text) {
    return pipe_write_atomic(path, text, strlen(text));
}

/* the batch script of one array: task i runs the job on line i+1 of keys */
static int write_array_script(const char *path, const char *keys, const char *bin,
                              const struct submit_opts *o, const struct res *r, const char *tag) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return err("out of memory");
    fprintf(f, "#!/bin/sh\n# lowbit slurm submit %s: array task i runs the job on line i+1 of the "
            "keys file, as the\n# worker lowbit run starts (lowbit job --spec). cpus %d, mem %s, "
            "time %s.\nkeys=", tag, r->cpus, r->mem, r->time);
    sh_word(f, keys);
    fprintf(f, "\nkey=$(sed -n \"$((SLURM_ARRAY_TASK_ID + 1))p\" \"$keys\")\n"
            "case $key in\n"
            "[0-9a-f]*) ;;\n"
            "*) echo \"lowbit: array task ${SLURM_ARRAY_TASK_ID:-?}: no job on line "
            "$((SLURM_ARRAY_TASK_ID + 1)) of $keys\" >&2; exit 2 ;;\n"
            "esac\n"
            "echo \"lowbit: array task ${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID} on "
            "$(hostname): job $key\"\n"
            "exec ");
    sh_word(f, bin);
    fputs(" job --spec ", f);
    sh_word(f, o->in.out);
    fputs("/jobs/\"$key\".json --out ", f);
    sh_word(f, o->in.out);
    fputs(" --log ", f);
    sh_word(f, o->in.out);
    fprintf(f, "/logs/\"$key\".log --threads \"${SLURM_CPUS_PER_TASK:-%d}\"%s\n", r->cpus,
            o->quiet ? " --quiet" : "");
    fclose(f);
    int rc = text ? write_text(path, text) : err("out of memory");
    free(text);
    if (!rc) chmod(path, 0755);
    return rc;
}

static int write_final_script(const char *path, const char *bin, const struct submit_opts *o,
                              const char *db, const char *site, const char *tag) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return err("out of memory");
    fprintf(f, "#!/bin/sh\n# lowbit slurm submit %s: after every array task (afterany): failed "
            "results for tasks\n# that died, the database (lowbit slurm collect), the site "
            "(lowbit render)\nset -e\necho \"lowbit: final job ${SLURM_JOB_ID:-} on "
            "$(hostname)\"\n", tag);
    sh_word(f, bin);
    fputs(" slurm collect --models ", f);
    sh_word(f, o->in.models);
    fputs(" --recipes ", f);
    sh_word(f, o->in.recipes);
    if (o->in.tasks) {
        fputs(" --tasks ", f);
        sh_word(f, o->in.tasks);
    }
    if (o->in.limit) fprintf(f, " --limit %d", o->in.limit);
    if (o->in.full) fputs(" --full", f);
    fputs(" --out ", f);
    sh_word(f, o->in.out);
    fputs(" --db ", f);
    sh_word(f, db);
    fputc('\n', f);
    sh_word(f, bin);
    fputs(" render --db ", f);
    sh_word(f, db);
    fputs(" -o ", f);
    sh_word(f, site);
    fputc('\n', f);
    fclose(f);
    int rc = text ? write_text(path, text) : err("out of memory");
    free(text);
    if (!rc) chmod(path, 0755);
    return rc;
}

struct group {
    struct res r;
    int *jobs; /* plan indexes */
    int n;
};

static int submit(const struct submit_opts *o) {
    const char *out = o->in.out;
    struct plan p = {0};
    struct survey s = {0};
    struct group *groups = NULL;
    int *todo = NULL, n_groups = 0, ret = -1, lock = -1;
    json_t *manifest = NULL, *arrays = NULL;
    char bin[PATH_MAX], cwd[PATH_MAX], tag[64], dir[PIPE_PATH_MAX], mpath[PIPE_PATH_MAX + 32];
    char db[PIPE_PATH_MAX], site[PIPE_PATH_MAX];
    ssize_t bl = readlink("/proc/self/exe", bin, sizeof bin - 1);
    if (bl <= 0 || !getcwd(cwd, sizeof cwd))
        return err("slurm: cannot find this lowbit binary or the current directory");
    bin[bl] = 0;
    if (pipe_path(db, sizeof db, out, "lowbit.db", NULL, NULL) ||
        pipe_path(site, sizeof site, out, "site", NULL, NULL))
        return -1;
    if (o->db) snprintf(db, sizeof db, "%s", o->db);
    if (o->site) snprintf(site, sizeof site, "%s", o->site);

    if (!o->dry_run && (lock = lock_slurm(out)) < 0) return -1;
    const double t0 = now_s();
    if (plan_make(&o->in, &p)) goto out;
    /* earlier submissions: tasks that died become failed results; queued/running keys wait */
    if (!o->dry_run && survey_take(&s, out, o->quiet)) goto out;
    todo = xcalloc((size_t)LB_MAX(1, p.n_jobs), sizeof *todo, "the job list");
    if (!todo) goto out;
    struct run_stats st = {0};
    int n_todo = run_pending(&p, out, o->retry_failed, todo, &st), n_active = 0;
    for (int i = 0, k = 0; i < n_todo; i++) { /* not what an earlier array still runs */
        if (key_active(&s, p.jobs[todo[i]].key)) n_active++;
        else todo[k++] = todo[i];
    }
    n_todo -= n_active;
    if (!o->quiet)
        fprintf(stderr, "slurm: planned %d jobs from %s × %s in %.1f s: %d done (%d failed), %d "
                "queued or running in earlier arrays, %d to submit\n", p.n_jobs, o->in.models,
                o->in.recipes, now_s() - t0, st.cached, st.failed, n_active, n_todo);
    if (!n_todo) {
        if (!o->quiet)
            fprintf(stderr, "slurm: nothing to submit%s\n", st.failed && !o->retry_failed
                    ? " (failed jobs are kept; --retry-failed submits them again)" : "");
        ret = 0;
        goto out;
    }

    /* group the jobs by resources */
    groups = xcalloc((size_t)n_todo, sizeof *groups, "the arrays");
    if (!groups) goto out;
    for (int i = 0; i < n_todo; i++) {
        struct res r;
        job_res(&p.jobs[todo[i]], &o->force, o->in.full, &r);
        int g = 0;
        while (g < n_groups && (groups[g].n == SLURM_ARRAY_MAX || groups[g].r.cpus != r.cpus ||
                                strcmp(groups[g].r.mem, r.mem) || strcmp(groups[g].r.time, r.time)))
            g++;
        if (g == n_groups) {
            groups[g].r = r;
            groups[g].jobs = xcalloc((size_t)LB_MIN(n_todo, SLURM_ARRAY_MAX), sizeof(int),
                                     "an array");
            if (!groups[g].jobs) goto out;
            n_groups++;
        }
        groups[g].jobs[groups[g].n++] = todo[i];
    }

    if (n_groups > 64) {
        err("slurm: the jobs need %d arrays (one per set of resources, at most %d tasks each), "
            "more than the final job's dependency takes (64); give --mem and --time to make "
            "fewer", n_groups, SLURM_ARRAY_MAX);
        goto out;
    }
    /* the files: spec files, OUT/logs, OUT/results, OUT/slurm/<tag>/ */
    char now[32];
    pipe_now_iso(now, sizeof now);
    {
        time_t tt = time(NULL);
        struct tm tm;
        gmtime_r(&tt, &tm);
        char ts[32];
        strftime(ts, sizeof ts, "%Y%m%d-%H%M%S", &tm);
        snprintf(tag, sizeof tag, "%s-%ld%s", ts, (long)getpid(), o->dry_run ? "-dry-run" : "");
    }
    char sub[PIPE_PATH_MAX], path[PIPE_PATH_MAX + 64];
    snprintf(sub, sizeof sub, "%s/slurm/%s", out, tag);
    snprintf(path, sizeof path, "%s/logs", sub);
    if (pipe_mkdirs(path)) goto out;
    if (pipe_path(dir, sizeof dir, out, "logs", NULL, NULL) || (!o->dry_run && pipe_mkdirs(dir)) ||
        pipe_path(dir, sizeof dir, out, "results", NULL, NULL) || (!o->dry_run && pipe_mkdirs(dir)))
        goto out;
    for (int i = 0; i < n_todo; i++)
        if (run_write_spec(out, &p.jobs[todo[i]], path, sizeof path)) goto out;

    arrays = json_array();
    manifest = json_pack("{s:s, s:i, s:s, s:s, s:o, s:o, s:s, s:O, s:n}", "format", "lowbit-slurm",
                         "version", 1, "tag", tag, "submitted_at", now, "cwd", text_json(cwd),
                         "lowbit", text_json(bin),
                         "code_version", plan_code_version(), "arrays", arrays, "final_job_id");
    if (!manifest) {
        err("out of memory");
        goto out;
    }
    snprintf(mpath, sizeof mpath, "%s/submission.json", sub);
    char deps[32 + 24 * 64] = "afterany";
    size_t deps_len = strlen(deps);
    int submitted = 0;
    for (int g = 0; g < n_groups; g++) {
        const struct group *gr = &groups[g];
        char keys[PIPE_PATH_MAX + 64], script[PIPE_PATH_MAX + 64];
        snprintf(keys, sizeof keys, "%s/array-%d.keys", sub, g);
        snprintf(script, sizeof script, "%s/array-%d.sh", sub, g);
        char *ktext = xcalloc((size_t)gr->n, 65, "the keys");
        if (!ktext) goto out;
        json_t *jkeys = json_array();
        for (int k = 0; k < gr->n; k++) {
            memcpy(ktext + 65 * k, p.jobs[gr->jobs[k]].key, 64);
            ktext[65 * k + 64] = '\n';
            json_array_append_new(jkeys, json_string(p.jobs[gr->jobs[k]].key));
        }
        int rc = pipe_write_atomic(keys, ktext, (size_t)gr->n * 65);
        free(ktext);
        if (rc || write_array_script(script, keys, bin, o, &gr->r, tag)) {
            json_decref(jkeys);
            goto out;
        }
        char a_array[48], a_cpus[32], a_mem[48], a_time[48], a_out[PIPE_PATH_MAX + 48],
            a_chdir[PATH_MAX + 16], common[1024];
        snprintf(a_array, sizeof a_array, "--array=0-%d", gr->n - 1);
        if (o->max_running)
            snprintf(a_array + strlen(a_array), sizeof a_array - strlen(a_array), "%%%d",
                     o->max_running);
        snprintf(a_cpus, sizeof a_cpus, "--cpus-per-task=%d", gr->r.cpus);
        snprintf(a_mem, sizeof a_mem, "--mem=%s", gr->r.mem);
        snprintf(a_time, sizeof a_time, "--time=%s", gr->r.time);
        snprintf(a_out, sizeof a_out, "--output=%s/logs/%%A_%%a.out", sub);
        snprintf(a_chdir, sizeof a_chdir, "--chdir=%s", cwd);
        char *argv[16 + SLURM_EXTRA_MAX] = {"sbatch", "--parsable", "--job-name=lowbit", a_array,
                                            a_cpus, a_mem, a_time, a_out, a_chdir};
        int n = 9;
        add_common(argv, &n, o, common, sizeof common);
        argv[n++] = script;
        argv[n] = NULL;
        char id[24];
        if (sbatch(argv, !o->quiet, o->dry_run, id, sizeof id)) {
            json_decref(jkeys);
            goto written;
        }
        json_array_append_new(arrays, json_pack("{s:s, s:i, s:s, s:s, s:o}", "job_id", id,
                                                "cpus", gr->r.cpus, "mem", gr->r.mem, "time",
                                                gr->r.time, "keys", jkeys));
        submitted++;
        if (!o->dry_run && pipe_write_json(mpath, manifest)) goto out;
        if (!o->quiet || o->dry_run)
            fprintf(o->dry_run ? stdout : stderr,
                    "slurm: array %s: %d tasks, cpus-per-task %d, mem %s, time %s\n",
                    id, gr->n, gr->r.cpus, gr->r.mem, gr->r.time);
        deps_len += (size_t)snprintf(deps + deps_len, sizeof deps - deps_len, ":%s", id);
    }
    if (!o->no_final) {
        char script[PIPE_PATH_MAX + 64], a_dep[sizeof deps + 16], a_out[PIPE_PATH_MAX + 48],
            a_chdir[PATH_MAX + 16], common[1024];
        snprintf(script, sizeof script, "%s/final.sh", sub);
        if (write_final_script(script, bin, o, db, site, tag)) goto written;
        snprintf(a_dep, sizeof a_dep, "--dependency=%s", deps);
        snprintf(a_out, sizeof a_out, "--output=%s/logs/final-%%j.out", sub);
        snprintf(a_chdir, sizeof a_chdir, "--chdir=%s", cwd);
        char *argv[16 + SLURM_EXTRA_MAX] = {"sbatch", "--parsable", "--job-name=lowbit-collect",
                                            a_dep, "--cpus-per-task=1", "--mem=" SLURM_FINAL_MEM,
                                            "--time=" SLURM_FINAL_TIME, a_out, a_chdir};
        int n = 9;
        add_common(argv, &n, o, common, sizeof common);
        argv[n++] = script;
        argv[n] = NULL;
        char id[24];
        if (sbatch(argv, !o->quiet, o->dry_run, id, sizeof id)) goto written;
        json_object_set_new(manifest, "final_job_id", json_string(id));
        if (!o->quiet || o->dry_run)
            fprintf(o->dry_run ? stdout : stderr, "slurm: final job %s (collect, render) after "
                    "the arrays\n", id);
    }
    ret = 0;
written:
    if (!o->dry_run && submitted && pipe_write_json(mpath, manifest)) ret = -1;
    if (!o->quiet && !o->dry_run && submitted)
        fprintf(stderr, "slurm: submitted %d jobs in %d arrays (%s); lowbit slurm status --out %s "
                "follows them\n", n_todo, submitted, sub, out);
    if (o->dry_run)
        fprintf(stdout, "slurm: dry run: %d jobs in %d arrays; scripts in %s, nothing "
                "submitted\n", n_todo, n_groups, sub);
out:
    json_decref(manifest);
    json_decref(arrays);
    for (int g = 0; g < n_groups; g++) free(groups[g].jobs);
    free(groups);
    free(todo);
    survey_release(&s);
    plan_release(&p);
    if (lock >= 0) close(lock);
    return ret;
}

/* ===== status ===== */

static int status(const char *out, bool quiet) {
    struct survey s = {0};
    int lock = lock_slurm(out), ret = -1;
    if (lock < 0) return -1;
    if (survey_take(&s, out, quiet)) goto out;
    if (!s.n_subs) {
        printf("slurm: no submissions in %s/slurm (lowbit slurm submit)\n", out);
        ret = 0;
        goto out;
    }
    /* the submissions */
    for (int k = s.n_subs - 1; k >= 0; k--) {
        json_t *arrays = json_object_get(s.subs[k], "arrays"), *a;
        const char *fin = json_string_value(json_object_get(s.subs[k], "final_job_id"));
        printf("submission %s:", s.tags[k]);
        size_t ai;
        json_array_foreach(arrays, ai, a) {
            int n_q = 0, n_r = 0, n_t = 0;
            const char *id = json_string_value(json_object_get(a, "job_id"));
            for (int i = 0; i < s.n; i++) {
                if (s.t[i].sub != k || !id || strcmp(s.t[i].array_id, id)) continue;
                n_t++;
                n_q += !strcmp(s.t[i].queue, "PENDING");
                n_r += s.t[i].queue[0] && strcmp(s.t[i].queue, "PENDING");
            }
            const char *mem = json_string_value(json_object_get(a, "mem")),
                       *tl = json_string_value(json_object_get(a, "time"));
            printf("%s array %s (%d tasks; cpus-per-task %lld, mem %s, time %s): %d queued, %d "
                   "running, %d ended", ai ? ";" : "", id ? id : "?", n_t,
                   (long long)json_integer_value(json_object_get(a, "cpus")), mem ? mem : "?",
                   tl ? tl : "?", n_q, n_r, n_t - n_q - n_r);
        }
        printf("%s%s\n", fin ? "; final job " : "", fin ? fin : "");
    }
    /* the jobs: each key by its newest task */
    int n_ok = 0, n_failed = 0, n_intr = 0, n_run = 0, n_queued = 0, n_never = 0, n_keys = 0;
    for (int i = 0; i < s.n; i++) {
        const struct stask *t = &s.t[i];
        if (!newest_of_key(&s, i)) continue;
        n_keys++;
        char rpath[PIPE_PATH_MAX], slog[PIPE_PATH_MAX + 256], task[48], what[600] = "";
        snprintf(task, sizeof task, "%s_%d", t->array_id, t->index);
        pipe_path(rpath, sizeof rpath, out, "results", t->key, ".json");
        const int state = pipe_result_state(rpath, t->key);
        if (key_active(&s, t->key)) {
            const bool pend = !strcmp(t->queue, "PENDING") || !t->queue[0];
            n_queued += pend;
            n_run += !pend;
            if (pend) continue;
            snprintf(what, sizeof what, "%s", t->queue[0] ? t->queue : "queued");
        } else if (state == 1) {
            n_ok++;
            continue;
        } else if (state == 2) {
            json_t *r = json_load_file(rpath, 0, NULL);
            const char *e = json_string_value(json_object_get(r, "error"));
            const bool intr = run_interrupted(rpath);
            n_intr += intr;
            n_failed += !intr;
            snprintf(what, sizeof what, "%s: %s", intr ? "interrupted" : "failed",
                     e ? e + (intr ? strlen(RUN_INTERRUPTED) : 0) : "?");
            json_decref(r);
        } else {
            task_log(&s, t, out, slog, sizeof slog);
            n_never++;
            snprintf(what, sizeof what, "%s", access(slog, F_OK)
                     ? "ended before it started (cancelled?): pending; the next submit runs it"
                     : "ended without a result: pending; the next submit runs it");
        }
        struct job *j = load_spec(out, t->key);
        printf("  %-12s %s × %s: %s\n", task, j ? j->model.id : t->key,
               j ? j->recipe.id : "", what);
        free(j);
    }
    printf("slurm: %d jobs: %d ok, %d failed, %d interrupted, %d running, %d queued, %d not "
           "run\n", n_keys, n_ok, n_failed, n_intr, n_run, n_queued, n_never);
    if (n_intr + n_never + n_failed)
        printf("slurm: lowbit slurm submit runs the interrupted and not-run jobs again%s\n",
               n_failed ? "; with --retry-failed the failed ones too" : "");
    ret = 0;
out:
    survey_release(&s);
    close(lock);
    return ret;
}

/* ===== collect (the final job) ===== */

static int slurm_collect(const struct plan_inputs *in, const char *db, bool quiet) {
    struct survey s = {0};
    struct plan p = {0};
    int lock = lock_slurm(in->out), ret = -1;
    if (lock < 0) return -1;
    if (survey_take(&s, in->out, quiet))
        fprintf(stderr, "lowbit: slurm collect: the tasks' states are unknown (%s); tasks that "
                "died get their failed results on the next run\n", err_last());
    close(lock);
    lock = -1;
    if (plan_make(in, &p)) goto out;
    char results[PIPE_PATH_MAX], db_path[PIPE_PATH_MAX];
    if (pipe_path(results, sizeof results, in->out, "results", NULL, NULL) ||
        pipe_path(db_path, sizeof db_path, in->out, "lowbit.db", NULL, NULL))
        goto out;
    if (db) snprintf(db_path, sizeof db_path, "%s", db);
    struct collect_opts co = {.results_dir = results, .db_path = db_path, .plan = &p,
                              .quiet = quiet};
    struct collect_stats cs;
    if (collect_run(&co, &cs)) goto out;
    ret = cs.malformed ? err("slurm collect: %d malformed result files were skipped",
                             cs.malformed) : 0;
out:
    plan_release(&p);
    survey_release(&s);
    return ret;
}

/* ===== the command line ===== */

static const char slurm_help[] =
    "usage: lowbit slurm submit [--models CSV] [--recipes CSV] [--tasks LIST]\n"
    "                           [--limit N | --full] [--out out] [--cpus-per-task N]\n"
    "                           [--mem SIZE] [--time TIME] [--partition P] [--account A]\n"
    "                           [--sbatch-arg ARG]... [--max-running N] [--retry-failed]\n"
    "                           [--db PATH] [--site DIR] [--no-final] [--dry-run] [--quiet]\n"
    "       lowbit slurm status [--out out]\n"
    "       lowbit slurm collect [--models CSV] [--recipes CSV] [--tasks LIST]\n"
    "                            [--limit N | --full] [--out out] [--db PATH] [--quiet]\n"
    "  submit: the jobs lowbit run would run (no result yet, or interrupted; failed ones\n"
    "  with --retry-failed), minus those still queued or running from an earlier submit, as\n"
    "  Slurm job arrays (sbatch --array; each task is one job: lowbit job --spec\n"
    "  OUT/jobs/KEY.json), then a final job (afterany) that runs lowbit slurm collect and\n"
    "  lowbit render (--db, default OUT/lowbit.db; --site, default OUT/site; --no-final:\n"
    "  none). Run it from a directory every node sees at the same path: the tasks run\n"
    "  there and write OUT/results, OUT/logs, etc.\n"
    "  Resources per task: --cpus-per-task N (alias --threads; default 4; the worker's\n"
    "  threads); --mem SIZE (default 1 GiB + 4x the model's files, 6x for calibrating\n"
    "  recipes); --time TIME (default 1 h + 1 h per GB of model files, x3 calibrating, x4\n"
    "  --full); jobs with different resources go to different arrays (at most 1000 tasks\n"
    "  each). --partition, --account and each --sbatch-arg (e.g. --sbatch-arg=--qos=long)\n"
    "  go to every sbatch; --max-running N throttles each array (%N). The environment\n"
    "  (LOWBIT_DATA, PATH) goes with the tasks. --dry-run writes the scripts under\n"
    "  OUT/slurm/ and prints the sbatch commands without submitting.\n"
    "  status: each submission's arrays (queued, running, ended), then each job by its\n"
    "  newest task: failed and interrupted ones with their errors. A task that ended\n"
    "  without a result becomes a failed result with the tail of its log and of its Slurm\n"
    "  output: cancelled, preempted or node-failed tasks are 'interrupted' and the next\n"
    "  submit runs them again; a time limit, out of memory or a crash is a failure, kept\n"
    "  until --retry-failed (like lowbit run's).\n"
    "  collect: the same for tasks that died, then lowbit collect with the plan (what the\n"
    "  final job runs; idempotent).\n";

/* the options of submit that are not plan options: 1 taken, 0 not one, -1 bad value */
static int submit_opt(int argc, char **argv, int *i, struct submit_opts *o, int *cpus) {
    const char *a = argv[*i], *v;
    int rc;
    if (!strcmp(a, "--retry-failed")) return o->retry_failed = true, 1;
    if (!strcmp(a, "--no-final")) return o->no_final = true, 1;
    if (!strcmp(a, "--dry-run")) return o->dry_run = true, 1;
    if ((rc = cli_opt(argc, argv, i, "--cpus-per-task", &v)) ||
        (rc = cli_opt(argc, argv, i, "--threads", &v)))
        return rc < 0 || cli_int(v, "--cpus-per-task", 1, 4096, cpus) ? -1 : 1;
    if ((rc = cli_opt(argc, argv, i, "--mem", &v))) {
        if (rc < 0 || check_word(v, "--mem", "0123456789KMGTkmgt")) return -1;
        if (!strspn(v, "0123456789"))
            return err("slurm: --mem '%s' is not a size (e.g. 16G, 4000M)", v);
        snprintf(o->force.mem, sizeof o->force.mem, "%s", v);
        return 1;
    }
    if ((rc = cli_opt(argc, argv, i, "--time", &v))) {
        if (rc < 0 || check_word(v, "--time", "0123456789:-")) return -1;
        snprintf(o->force.time, sizeof o->force.time, "%s", v);
        return 1;
    }
    if ((rc = cli_opt(argc, argv, i, "--partition", &v)))
        return rc < 0 || check_word(v, "--partition", NULL) ? -1 : (o->partition = v, 1);
    if ((rc = cli_opt(argc, argv, i, "--account", &v)))
        return rc < 0 || check_word(v, "--account", NULL) ? -1 : (o->account = v, 1);
    if ((rc = cli_opt(argc, argv, i, "--site", &v)))
        return rc < 0 || pipe_dir_check(v, "--site") ? -1 : (o->site = v, 1);
    if ((rc = cli_opt(argc, argv, i, "--max-running", &v)))
        return rc < 0 || cli_int(v, "--max-running", 1, 1 << 20, &o->max_running) ? -1 : 1;
    if ((rc = cli_opt(argc, argv, i, "--sbatch-arg", &v))) {
        if (rc < 0) return -1;
        if (o->n_extra == SLURM_EXTRA_MAX)
            return err("slurm: more than %d --sbatch-arg", SLURM_EXTRA_MAX);
        if (v[0] != '-')
            return err("slurm: --sbatch-arg '%s' is not an sbatch option (write "
                       "--sbatch-arg=--qos=long)", v);
        o->extra[o->n_extra++] = v;
        return 1;
    }
    return 0;
}

int cmd_slurm(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(slurm_help, argc < 2 ? stderr : stdout);
        return argc < 2 ? -1 : 0;
    }
    const char *verb = argv[1], *v;
    const bool is_submit = !strcmp(verb, "submit"), is_status = !strcmp(verb, "status"),
               is_collect = !strcmp(verb, "collect");
    if (!is_submit && !is_status && !is_collect)
        return err("slurm: unknown subcommand '%s' (submit, status, collect; see lowbit slurm "
                   "--help)", verb);
    struct submit_opts o = {.in = PLAN_INPUTS_INIT};
    int rc, cpus = SLURM_DEFAULT_CPUS;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return fputs(slurm_help, stdout), 0;
        if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
            o.quiet = true;
            continue;
        }
        if (is_status) {
            if (!(rc = cli_opt(argc, argv, &i, "--out", &v))) return cli_unknown("slurm status", a);
            if (rc < 0 || pipe_dir_check(v, "--out")) return -1;
            o.in.out = v;
            continue;
        }
        if ((rc = plan_opt(argc, argv, &i, &o.in))) {
            if (rc < 0) return -1;
        } else if ((rc = cli_opt(argc, argv, &i, "--db", &v))) {
            if (rc < 0 || pipe_dir_check(v, "--db")) return -1;
            o.db = v;
        } else if (is_collect) {
            return cli_unknown("slurm collect", a);
        } else if ((rc = submit_opt(argc, argv, &i, &o, &cpus))) {
            if (rc < 0) return -1;
        } else {
            return cli_unknown("slurm submit", a);
        }
    }
    o.force.cpus = cpus;
    if (is_status) return status(o.in.out, o.quiet);
    if (is_collect) return slurm_collect(&o.in, o.db, o.quiet);
    return submit(&o);
}
