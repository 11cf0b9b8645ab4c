/* kernels/base/mem.c: see mem.h */
#include "kernels/base/mem.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "kernels/base/err.h"
#include "kernels/base/strbuf.h"

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
    char *line = NULL;
    size_t cap = 0;
    const char *rel = ""; /* this process's cgroup under /sys/fs/cgroup, "" for the root */
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (f) {
        while (getline(&line, &cap, f) > 0)
            if (!strncmp(line, "0::", 3)) {
                line[strcspn(line, "\n")] = 0;
                if (strcmp(line + 3, "/")) rel = line + 3;
                break;
            }
        fclose(f);
    }
    char *path = xstrfmt("/sys/fs/cgroup%s/%s", rel, file);
    f = path ? fopen(path, "r") : NULL;
    free(path);
    free(line);
    if (!f) {
        char root[256];
        snprintf(root, sizeof root, "/sys/fs/cgroup/%s", file); /* file: a short constant */
        if (!(f = fopen(root, "r"))) return SIZE_MAX;
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

void *xrealloc(void *p, size_t n, const char *what) {
    if (n >= MEM_CHECK_MIN && mem_check(n, what)) return NULL;
    void *q = realloc(p, n ? n : 1);
    if (!q) err("out of memory: %zu bytes for %s", n, what);
    return q;
}

char *xstrndup(const char *s, size_t n, const char *what) {
    char *p = xmalloc(n + 1, what);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

char *xstrdup(const char *s, const char *what) { return xstrndup(s, strlen(s), what); }
