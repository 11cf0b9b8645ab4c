/* kernels/base/mem.h: allocation that reports, and the memory budget (git's wrapper.c xmalloc,
 * with a check against what the machine can give instead of a die()).
 *
 * Every allocation here reports its own failure through err() ("out of memory: N bytes for
 * WHAT") and returns NULL; the caller returns -1. Memory is freed with free(). */
#ifndef KERNELS_BASE_MEM_H
#define KERNELS_BASE_MEM_H
#include <stddef.h>

/* malloc/calloc that report "out of memory: N bytes for WHAT" through err() and return NULL */
void *xmalloc(size_t n, const char *what);
void *xcalloc(size_t n, size_t size, const char *what);
/* realloc of p to n bytes, same report; on failure p is left as it was (still owned) */
void *xrealloc(void *p, size_t n, const char *what);
/* an owned copy of s (of its first n bytes, NUL added); NULL with the report */
char *xstrdup(const char *s, const char *what);
char *xstrndup(const char *s, size_t n, const char *what);
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
 * only M MiB of memory is available (source)". xmalloc/xcalloc/xrealloc call it for blocks of
 * 64 MiB and more, so a huge request is refused with that message instead of being overcommitted
 * and then killed by the OOM killer halfway through a job. */
size_t mem_available(void);
size_t mem_total(void);
int mem_check(size_t bytes, const char *what);
/* the source of the last mem_available()/mem_total() figure ("MemAvailable", "cgroup",
 * "RLIMIT_AS", "LOWBIT_MEM_LIMIT_MB", ...), for messages */
const char *mem_limit_source(void);
#endif
