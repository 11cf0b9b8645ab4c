/* kernels/common.c: see common.h */
#include "kernels/common.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static _Thread_local char last_msg[1024];
static bool quiet;

int err_at(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_msg, sizeof last_msg, fmt, ap);
    va_end(ap);
    if (!quiet) {
        if (getenv("LOWBIT_DEBUG"))
            fprintf(stderr, "lowbit: %s [%s:%d]\n", last_msg, file, line);
        else
            fprintf(stderr, "lowbit: %s\n", last_msg);
    }
    return -1;
}

const char *err_last(void) { return last_msg; }
void err_set_quiet(bool q) { quiet = q; }

void bug_at(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "lowbit: BUG at %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

void *xmalloc(size_t n, const char *what) {
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
