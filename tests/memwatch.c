/* tests/memwatch.c: run a command, report its time and peak memory on one line.
 *
 *   memwatch [-o FILE] [-i MS] [--json] -- COMMAND [ARG...]
 *
 * Reported (key=value on one line, or a JSON object with --json; to FILE, else stderr):
 *   wall_s         seconds from fork to the child's exit (CLOCK_MONOTONIC)
 *   user_s, sys_s  CPU seconds of the child and every descendant it waited for (wait4's rusage)
 *   cpu_s          user_s + sys_s
 *   maxrss_mib     ru_maxrss from wait4: the largest peak RSS of the child or of a waited
 *                  descendant (the kernel's own high-water mark: never missed, but it counts
 *                  file-backed pages, e.g. a memory-mapped model, as much as allocations)
 *   peak_anon_mib  the largest sum, over the child and all its live descendants, of RssAnon in
 *                  /proc/PID/status (anonymous memory: malloc, stacks, private copies; not the
 *                  mapped files), sampled every MS milliseconds (default 50), first right after
 *                  the fork; a spike shorter than the interval can be missed
 *   peak_rss_mib   the largest sum of VmRSS at the same samples (anonymous + file + shmem)
 *   samples        how many samples were taken
 *   exit           the child's exit status, or 128 + signal
 * memwatch exits with the child's status (128 + signal when it was killed). Descendants are
 * found through /proc/PID/task/TID/children. Linux only. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* also given by the Makefile */
#endif
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_PIDS 4096

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* kB values of RssAnon and VmRSS of one process; 0 when it is gone or a zombie */
static void proc_mem(pid_t pid, long *anon_kb, long *rss_kb) {
    char path[64], line[256];
    *anon_kb = *rss_kb = 0;
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return;
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "RssAnon:", 8)) *anon_kb = strtol(line + 8, NULL, 10);
        else if (!strncmp(line, "VmRSS:", 6)) *rss_kb = strtol(line + 6, NULL, 10);
    }
    fclose(f);
}

/* append the children of every thread of pid to list (from n), returns the new count */
static int add_children(pid_t pid, pid_t *list, int n) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d) return n;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        char cpath[320];
        snprintf(cpath, sizeof cpath, "/proc/%d/task/%s/children", (int)pid, e->d_name);
        FILE *f = fopen(cpath, "r");
        if (!f) continue;
        long c;
        while (n < MAX_PIDS && fscanf(f, "%ld", &c) == 1) list[n++] = (pid_t)c;
        fclose(f);
    }
    closedir(d);
    return n;
}

/* one sample: sums over the tree rooted at root */
static void sample(pid_t root, long *anon_kb, long *rss_kb) {
    static pid_t list[MAX_PIDS];
    int n = 1;
    list[0] = root;
    *anon_kb = *rss_kb = 0;
    for (int i = 0; i < n; i++) {
        long a, r;
        proc_mem(list[i], &a, &r);
        *anon_kb += a;
        *rss_kb += r;
        n = add_children(list[i], list, n);
    }
}

static void usage(FILE *f) {
    fprintf(f, "usage: memwatch [-o FILE] [-i MS] [--json] -- COMMAND [ARG...]\n"
               "  runs COMMAND; reports wall_s, cpu_s (user+sys of it and its descendants),\n"
               "  maxrss_mib (wait4), peak_anon_mib and peak_rss_mib (RssAnon / VmRSS of the\n"
               "  process tree, sampled every MS ms, default 50) on one line to FILE or stderr.\n");
}

int main(int argc, char **argv) {
    const char *out_path = NULL;
    int interval_ms = 50, json = 0, i = 1;
    for (; i < argc; i++) {
        if (!strcmp(argv[i], "--")) {
            i++;
            break;
        } else if (!strcmp(argv[i], "-o") && i + 1 < argc) {
            out_path = argv[++i];
        } else if (!strcmp(argv[i], "-i") && i + 1 < argc) {
            interval_ms = atoi(argv[++i]);
            if (interval_ms < 1 || interval_ms > 60000) {
                fprintf(stderr, "memwatch: -i wants milliseconds in [1, 60000]\n");
                return 2;
            }
        } else if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "memwatch: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        } else {
            break;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return 2;
    }
    FILE *out = stderr;
    if (out_path && !(out = fopen(out_path, "w"))) {
        fprintf(stderr, "memwatch: cannot write %s: %s\n", out_path, strerror(errno));
        return 2;
    }

    /* SIGCHLD stays blocked: sigtimedwait wakes at the child's exit or after the interval */
    sigset_t chld, old;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, &old);

    double t0 = now();
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "memwatch: fork: %s\n", strerror(errno));
        return 2;
    }
    if (pid == 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        execvp(argv[i], argv + i);
        fprintf(stderr, "memwatch: cannot run %s: %s\n", argv[i], strerror(errno));
        _exit(127);
    }
    /* the child keeps running when we are interrupted; we report when it ends */
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);

    long peak_anon = 0, peak_rss = 0, samples = 0;
    int status = 0;
    struct rusage ru;
    const struct timespec tick = {interval_ms / 1000, (long)(interval_ms % 1000) * 1000000L};
    for (;;) {
        long a, r;
        sample(pid, &a, &r);
        samples++;
        if (a > peak_anon) peak_anon = a;
        if (r > peak_rss) peak_rss = r;
        pid_t w = wait4(pid, &status, WNOHANG, &ru);
        if (w == pid) break;
        if (w < 0 && errno != EINTR) {
            fprintf(stderr, "memwatch: wait4: %s\n", strerror(errno));
            return 2;
        }
        sigtimedwait(&chld, NULL, &tick); /* a SIGCHLD (or the tick) ends the wait */
    }
    double wall = now() - t0;
    double user = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6;
    double sys = ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : 1;
    if (json)
        fprintf(out,
                "{\"wall_s\": %.3f, \"cpu_s\": %.3f, \"user_s\": %.3f, \"sys_s\": %.3f, "
                "\"maxrss_mib\": %.1f, \"peak_anon_mib\": %.1f, \"peak_rss_mib\": %.1f, "
                "\"samples\": %ld, \"exit\": %d}\n",
                wall, user + sys, user, sys, ru.ru_maxrss / 1024.0, peak_anon / 1024.0,
                peak_rss / 1024.0, samples, code);
    else
        fprintf(out,
                "wall_s=%.3f cpu_s=%.3f user_s=%.3f sys_s=%.3f maxrss_mib=%.1f peak_anon_mib=%.1f "
                "peak_rss_mib=%.1f samples=%ld exit=%d\n",
                wall, user + sys, user, sys, ru.ru_maxrss / 1024.0, peak_anon / 1024.0,
                peak_rss / 1024.0, samples, code);
    if (out != stderr) fclose(out);
    return code;
}
