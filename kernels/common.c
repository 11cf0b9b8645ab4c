/* kernels/common.c: see common.h */
#include "kernels/common.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static _Thread_local char last_msg[1024];
static bool quiet;
static bool once;      /* err_first_only() */
static int once_done;  /* a message was printed while `once` */

int err_at(const char *file, int line, const char *fmt, ...) {
    /* formatted apart first: a message may quote the previous one (err("x: %s", err_last())) */
    char msg[sizeof last_msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    memcpy(last_msg, msg, sizeof msg);
    if (!quiet && !(once && __atomic_exchange_n(&once_done, 1, __ATOMIC_RELAXED))) {
        if (getenv("LOWBIT_DEBUG"))
            fprintf(stderr, "lowbit: %s [%s:%d]\n", last_msg, file, line);
        else
            fprintf(stderr, "lowbit: %s\n", last_msg);
    }
    return -1;
}

const char *err_last(void) { return last_msg; }
void err_set_quiet(bool q) { quiet = q; }
bool err_quiet(void) { return quiet; }
void err_first_only(bool on) {
    once = on;
    __atomic_store_n(&once_done, 0, __ATOMIC_RELAXED);
}

void bug_at(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "lowbit: BUG at %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

/* ===== memory budget ===== */

#define MEM_CHECK_MIN ((size_t)64 << 20)
static _Thread_local const char *mem_src = "unknown";

const char *mem_limit_source(void) { return mem_src; }

/* "Key:   N kB" of a /proc file, in bytes; SIZE_MAX when absent */
static size_t proc_kb(const char *path, const char *key) {
    FILE *f = fopen(path, "r");
    if (!f) return SIZE_MAX;
    char line[256];
    size_t klen = strlen(key), v = SIZE_MAX;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, klen) && line[klen] == ':') {
            unsigned long long kb = strtoull(line + klen + 1, NULL, 10);
            v = kb > SIZE_MAX / 1024 ? SIZE_MAX : (size_t)kb * 1024;
            break;
        }
    fclose(f);
    return v;
}

/* one number from a cgroup v2 file of this process's cgroup; SIZE_MAX for "max" or none */
static size_t cgroup_value(const char *file) {
    char rel[1024] = "", path[1400];
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (f) {
        char line[1000];
        while (fgets(line, sizeof line, f))
            if (!strncmp(line, "0::", 3)) {
                snprintf(rel, sizeof rel, "%s", line + 3);
                rel[strcspn(rel, "\n")] = 0;
                if (!strcmp(rel, "/")) rel[0] = 0;
                break;
            }
        fclose(f);
    }
    snprintf(path, sizeof path, "/sys/fs/cgroup%s/%s", rel, file);
    if (!(f = fopen(path, "r"))) {
        snprintf(path, sizeof path, "/sys/fs/cgroup/%s", file);
        if (!(f = fopen(path, "r"))) return SIZE_MAX;
    }
    char b[64] = "";
    size_t v = SIZE_MAX;
    if (fgets(b, sizeof b, f) && b[0] >= '0' && b[0] <= '9') v = (size_t)strtoull(b, NULL, 10);
    fclose(f);
    return v;
}

static void mem_min(size_t *best, size_t v, const char *src) {
    if (v < *best) {
        *best = v;
        mem_src = src;
    }
}

static size_t env_limit(void) {
    const char *e = getenv("LOWBIT_MEM_LIMIT_MB");
    if (!e || !*e) return SIZE_MAX;
    char *end;
    double mb = strtod(e, &end);
    if (end == e || *end || !(mb >= 0) || mb > 1e12) return SIZE_MAX;
    return (size_t)(mb * 1048576.0);
}

static size_t less(size_t a, size_t b) { return a == SIZE_MAX ? SIZE_MAX : a > b ? a - b : 0; }

/* what the process holds of a /proc/self/status figure (0 when unknown) */
static size_t self_kb(const char *key) {
    size_t v = proc_kb("/proc/self/status", key);
    return v == SIZE_MAX ? 0 : v;
}

size_t mem_available(void) {
    size_t best = SIZE_MAX;
    mem_src = "unknown";
    size_t avail = proc_kb("/proc/meminfo", "MemAvailable");
    size_t swap = proc_kb("/proc/meminfo", "SwapFree");
    if (avail != SIZE_MAX)
        mem_min(&best, avail + (swap == SIZE_MAX ? 0 : swap), "MemAvailable + SwapFree");
    size_t cmax = cgroup_value("memory.max"), ccur = cgroup_value("memory.current");
    if (cmax != SIZE_MAX)
        mem_min(&best, less(cmax, ccur == SIZE_MAX ? 0 : ccur), "the cgroup's memory.max");
    struct rlimit rl;
    if (!getrlimit(RLIMIT_AS, &rl) && rl.rlim_cur != RLIM_INFINITY)
        mem_min(&best, less((size_t)rl.rlim_cur, self_kb("VmSize")), "RLIMIT_AS (ulimit -v)");
    if (!getrlimit(RLIMIT_DATA, &rl) && rl.rlim_cur != RLIM_INFINITY)
        mem_min(&best, less((size_t)rl.rlim_cur, self_kb("VmData")), "RLIMIT_DATA (ulimit -d)");
    size_t env = env_limit();
    if (env != SIZE_MAX) mem_min(&best, less(env, self_kb("VmRSS")), "LOWBIT_MEM_LIMIT_MB");
    return best;
}

size_t mem_total(void) {
    size_t best = SIZE_MAX;
    mem_src = "unknown";
    mem_min(&best, proc_kb("/proc/meminfo", "MemTotal"), "MemTotal");
    mem_min(&best, cgroup_value("memory.max"), "the cgroup's memory.max");
    struct rlimit rl;
    if (!getrlimit(RLIMIT_AS, &rl) && rl.rlim_cur != RLIM_INFINITY)
        mem_min(&best, (size_t)rl.rlim_cur, "RLIMIT_AS (ulimit -v)");
    mem_min(&best, env_limit(), "LOWBIT_MEM_LIMIT_MB");
    return best;
}

int mem_check(size_t bytes, const char *what) {
    size_t avail = mem_available();
    if (bytes <= avail) return 0;
    return err("%s needs %.1f MiB but only %.1f MiB of memory is available (%s)", what,
               (double)bytes / 1048576.0, (double)avail / 1048576.0, mem_src);
}

/* ===== whole-file inputs ===== */

static size_t input_cap(void) {
    const char *e = getenv("LOWBIT_MAX_INPUT_MB");
    char *end;
    double mb = e && *e ? strtod(e, &end) : 1024;
    if (e && *e && (end == e || *end || !(mb > 0) || mb > 1e9)) mb = 1024;
    return (size_t)(mb * 1048576.0);
}

/* size: the file's, or (more) a lower bound of a stream's */
static int too_big(const char *path, const char *what, size_t size, bool more) {
    const size_t cap = input_cap();
    if (size > cap)
        return err("%s %s is %s%.1f MiB; lowbit reads such files whole and takes at most %.0f MiB "
                   "(LOWBIT_MAX_INPUT_MB)",
                   what, path, more ? "at least " : "", (double)size / 1048576.0,
                   (double)cap / 1048576.0);
    char w[512];
    snprintf(w, sizeof w, "reading %s %s", what, path);
    return mem_check(size + 1, w);
}

int input_size_check(const char *path, const char *what) {
    struct stat st;
    if (stat(path, &st) || !S_ISREG(st.st_mode)) return 0;
    return too_big(path, what, (size_t)st.st_size, false);
}

int read_file_all(const char *path, const char *what, char **data, size_t *len) {
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return err("%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) || S_ISDIR(st.st_mode)) {
        fclose(f);
        return err("%s: not a file", path);
    }
    size_t cap = S_ISREG(st.st_mode) ? (size_t)st.st_size + 1 : (size_t)1 << 16, n = 0;
    if (S_ISREG(st.st_mode) && too_big(path, what, (size_t)st.st_size, false)) {
        fclose(f);
        return -1;
    }
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            fclose(f);
            return err("out of memory: %zu bytes reading %s %s", cap, what, path);
        }
        n += fread(buf + n, 1, cap - 1 - n, f);
        if (n < cap - 1) break; /* the end, or an error */
        const int c = fgetc(f);
        if (c == EOF) break;
        /* a stream, or a file that grew: double, within the cap */
        if (too_big(path, what, n + 1, true)) {
            free(buf);
            fclose(f);
            return -1;
        }
        char *nb = realloc(buf, cap *= 2);
        if (!nb) free(buf);
        buf = nb;
        if (buf) buf[n++] = (char)c;
    }
    const int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return err("%s: read error", path);
    }
    buf[n] = 0;
    *data = buf;
    *len = n;
    return 0;
}

void *xmalloc(size_t n, const char *what) {
    if (n >= MEM_CHECK_MIN && mem_check(n, what)) return NULL;
    void *p = malloc(n ? n : 1);
    if (!p) err("out of memory: %zu bytes for %s", n, what);
    return p;
}

void *xcalloc(size_t n, size_t size, const char *what) {
    size_t total;
    if (mul_ok(n, size, &total)) {
        err("out of memory: %zu x %zu bytes for %s overflows", n, size, what);
        return NULL;
    }
    if (total >= MEM_CHECK_MIN && mem_check(total, what)) return NULL;
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) err("out of memory: %zu bytes for %s", total, what);
    return p;
}

int mul_ok(size_t n, size_t size, size_t *out) {
    if (size && n > SIZE_MAX / size) return -1;
    *out = n * size;
    return 0;
}

double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int lb_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

void lb_set_threads(int n) {
#ifdef _OPENMP
    if (n > 0) omp_set_num_threads(n);
#else
    (void)n;
#endif
}
