/* kernels/base/err.c: see err.h */
#include "kernels/base/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
