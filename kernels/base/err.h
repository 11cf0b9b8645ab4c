/* kernels/base/err.h: error reporting and invariants, for every layer (git's usage.c, ggml's
 * GGML_ABORT).
 *
 * Three kinds of failure, three tools:
 *  - bad input, I/O, resources: `return err("what, where, what was expected")`. err() prints one
 *    line "lowbit: <message>" on stderr (the source location follows in brackets when
 *    LOWBIT_DEBUG is set), keeps the message for err_last(), and returns -1.
 *  - impossible states: BUG("...") / ASSERT(x) print file:line and abort().
 *  - exit() only in gen/main.c. */
#ifndef KERNELS_BASE_ERR_H
#define KERNELS_BASE_ERR_H
#include <stdbool.h>

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
#endif
