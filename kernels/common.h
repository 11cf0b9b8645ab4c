/* kernels/common.h: error reporting and invariants shared by every layer (git/ggml style).
 *
 * Three kinds of failure, three tools:
 *  - bad input, I/O, resources: `return err("what, where, what was expected")`. err() prints one line
 *    "lowbit: <message>" on stderr (the source location follows in brackets when LOWBIT_DEBUG is
 *    set), keeps the message for err_last(), and returns -1.
 *  - impossible states: BUG("...") / ASSERT(x) print file:line and abort().
 *  - exit() only in gen/main.c. */
#ifndef KERNELS_COMMON_H
#define KERNELS_COMMON_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define LB_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define LB_NORETURN __attribute__((noreturn))
#else
#define LB_PRINTF(a, b)
#define LB_NORETURN
#endif

int err_at(const char *file, int line, const char *fmt, ...) LB_PRINTF(3, 4);
#define err(...) err_at(__FILE__, __LINE__, __VA_ARGS__)
/* the last message err() produced in this thread ("" when none); borrowed until the next err() */
const char *err_last(void);
/* errors still go to err_last() but are not printed while quiet (tests of bad input) */
void err_set_quiet(bool quiet);

void bug_at(const char *file, int line, const char *fmt, ...) LB_PRINTF(3, 4) LB_NORETURN;
#define BUG(...) bug_at(__FILE__, __LINE__, __VA_ARGS__)
#define ASSERT(x)                                                                                  \
    do {                                                                                           \
        if (!(x)) bug_at(__FILE__, __LINE__, "assertion failed: %s", #x);                          \
    } while (0)

/* malloc/calloc that report "out of memory: N bytes for WHAT" through err() and return NULL */
void *xmalloc(size_t n, const char *what);
void *xcalloc(size_t n, size_t size, const char *what);
/* n*size without overflow: 0 on success, -1 (no message) when it would overflow */
int mul_ok(size_t n, size_t size, size_t *out);

/* wall clock in seconds (monotonic) */
double now_s(void);
/* number of threads parallel regions will use (1 without OpenMP) */
int lb_threads(void);
void lb_set_threads(int n);

#define LB_MIN(a, b) ((a) < (b) ? (a) : (b))
#define LB_MAX(a, b) ((a) > (b) ? (a) : (b))
#define LB_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#endif
