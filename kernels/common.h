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
/* the current setting, to restore after a quiet stretch whose message is said again with context */
bool err_quiet(void);
/* while on, only the first message (of any thread) is printed: parallel work that fails in
 * several places at once (every writer of a full disk) reports once. Set and cleared outside
 * parallel regions. */
void err_first_only(bool on);

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

/* ---- memory budget: refuse what cannot fit before allocating it ----
 * mem_available(): bytes this process may still allocate: the least of MemAvailable + SwapFree
 * (/proc/meminfo), the cgroup v2 limit less its usage (memory.max − memory.current), RLIMIT_AS and
 * RLIMIT_DATA less what the process already maps (VmSize/VmData), and LOWBIT_MEM_LIMIT_MB (a
 * user's cap; also what the tests use) less the resident set. mem_total(): the memory the machine
 * (or cgroup, or LOWBIT_MEM_LIMIT_MB) has in all: the ceiling for data that must stay resident,
 * like the weights a forward pass reads every token. SIZE_MAX when nothing tells.
 * mem_check(): 0 when `bytes` for `what` fits mem_available(), else -1 with "WHAT needs N MiB but
 * only M MiB of memory is available (source)". xmalloc/xcalloc call it for blocks of 64 MiB and
 * more, so a huge request is refused with that message instead of being overcommitted and then
 * killed by the OOM killer halfway through a job. */
size_t mem_available(void);
size_t mem_total(void);
int mem_check(size_t bytes, const char *what);
/* the source of the last mem_available()/mem_total() figure ("MemAvailable", "cgroup",
 * "RLIMIT_AS", "LOWBIT_MEM_LIMIT_MB", ...), for messages */
const char *mem_limit_source(void);

/* ---- whole-file inputs (texts, task files, JSON, tokenizers) ----
 * A file read whole is at most LOWBIT_MAX_INPUT_MB (default 1024) MiB and must fit mem_check():
 * a text of gigabytes is refused with its size and the knob before anything is allocated.
 * input_size_check(): 0 when path is small enough (or cannot be stat'ed: the open reports that),
 * else -1 with "WHAT PATH is N MiB; ...". read_file_all(): the whole of path (a regular file or a
 * stream such as a pipe, checked as it grows) into *data, NUL-terminated (owned, free()), its
 * length in *len; -1 with "PATH: cannot open: ...", the size refusal, or a read error. */
int input_size_check(const char *path, const char *what);
int read_file_all(const char *path, const char *what, char **data, size_t *len);

/* wall clock in seconds (monotonic) */
double now_s(void);
/* number of threads parallel regions will use (1 without OpenMP) */
int lb_threads(void);
void lb_set_threads(int n);

/* a function compiled for x86-64-v4 (AVX-512), -v3 (AVX2) and the baseline, the best chosen at
 * load time (GCC function multiversioning): for plain C loops that vectorize. Floating-point
 * contraction stays off (-std=c11 implies -ffp-contract=off; the Makefile says so too), so every
 * clone computes the same bits: vector width changes, the order of each element's operations
 * does not. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(LB_NO_CLONES)
#define LB_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define LB_CLONES
#endif

#define LB_MIN(a, b) ((a) < (b) ? (a) : (b))
#define LB_MAX(a, b) ((a) > (b) ? (a) : (b))
#define LB_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#endif
