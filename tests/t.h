/* tests/t.h: the test harness (sds testhelp.h + libuv ASSERT style).
 *
 * Each tests/test_<module>.c is one binary whose main() calls T_RUN(fn) for each test function and
 * returns T_DONE(). A check that fails prints "file:line: expr (lhs op rhs)" and marks the current
 * test failed; the test goes on, so one run shows every failure. T_DONE() prints
 * "<binary>: N passed, N failed" (tests/run.sh sums those into the closing line).
 * Tests that need real data call T_DATA(path) to get "$LOWBIT_DATA/path"; when the file is missing
 * the test fails with a line naming the file and the variable (never skipped in silence). */
#ifndef T_H
#define T_H
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* T_SANITIZED: 1 in a sanitizer build (make check), where the slow tests run lighter work */
#if defined(__SANITIZE_ADDRESS__)
#define T_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(undefined_behavior_sanitizer)
#define T_SANITIZED 1
#endif
#endif
#ifndef T_SANITIZED
#define T_SANITIZED 0
#endif

static int t_passed, t_failed, t_cur_failed;
static const char *t_cur_name;

#define T_FAIL_(...)                                                                               \
    do {                                                                                           \
        fprintf(stderr, "  FAIL %s: %s:%d: ", t_cur_name, __FILE__, __LINE__);                     \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fputc('\n', stderr);                                                                       \
        t_cur_failed = 1;                                                                          \
    } while (0)

#define T_OK(e)                                                                                    \
    do {                                                                                           \
        if (!(e)) T_FAIL_("%s", #e);                                                               \
    } while (0)
#define T_EQ_INT(a, b)                                                                             \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ != b_) T_FAIL_("%s == %s (%lld vs %lld)", #a, #b, a_, b_);                          \
    } while (0)
#define T_EQ_STR(a, b)                                                                             \
    do {                                                                                           \
        const char *a_ = (a), *b_ = (b);                                                           \
        if (!a_ || !b_ || strcmp(a_, b_)) T_FAIL_("%s == %s (\"%s\" vs \"%s\")", #a, #b,          \
                                                  a_ ? a_ : "(null)", b_ ? b_ : "(null)");         \
    } while (0)
#define T_NEAR(a, b, tol)                                                                          \
    do {                                                                                           \
        double a_ = (a), b_ = (b);                                                                 \
        if (!(fabs(a_ - b_) <= (tol)))                                                             \
            T_FAIL_("|%s - %s| <= %s (%.9g vs %.9g, diff %.3g)", #a, #b, #tol, a_, b_,            \
                    fabs(a_ - b_));                                                                \
    } while (0)
/* rc < 0 expected (an error return), e.g. for corrupt-input tests */
#define T_ERR(e)                                                                                   \
    do {                                                                                           \
        if ((e) >= 0) T_FAIL_("%s is an error (< 0)", #e);                                         \
    } while (0)
/* strstr(hay, needle) */
#define T_CONTAINS(hay, needle)                                                                    \
    do {                                                                                           \
        const char *h_ = (hay);                                                                    \
        if (!h_ || !strstr(h_, (needle)))                                                          \
            T_FAIL_("\"%s\" contains \"%s\"", h_ ? h_ : "(null)", (needle));                       \
    } while (0)

/* T_ONLY=name1,name2 (environment) runs only the tests whose names it contains (while working
 * on one); the others are neither run nor counted */
#define T_RUN(fn)                                                                                  \
    do {                                                                                           \
        if (getenv("T_ONLY") && !strstr(getenv("T_ONLY"), #fn)) break;                             \
        t_cur_name = #fn;                                                                          \
        t_cur_failed = 0;                                                                          \
        fn();                                                                                      \
        if (t_cur_failed) {                                                                        \
            t_failed++;                                                                            \
            fprintf(stderr, "not ok %s\n", #fn);                                                   \
        } else {                                                                                   \
            t_passed++;                                                                            \
            if (getenv("T_VERBOSE")) fprintf(stderr, "ok %s\n", #fn);                              \
        }                                                                                          \
    } while (0)

#define T_DONE() (printf("%s: %d passed, %d failed\n", __FILE__, t_passed, t_failed), t_failed != 0)

/* "$LOWBIT_DATA/rel" in a static buffer (one at a time); fails the test when the file is missing. */
static inline const char *t_data(const char *rel, const char *file, int line) {
    static char buf[4096];
    const char *d = getenv("LOWBIT_DATA");
    snprintf(buf, sizeof buf, "%s/%s", d && *d ? d : "../shared/data", rel);
    if (access(buf, R_OK)) {
        fprintf(stderr, "  FAIL %s: %s:%d: missing data file %s (set LOWBIT_DATA)\n", t_cur_name,
                file, line, buf);
        t_cur_failed = 1;
        return NULL;
    }
    return buf;
}
#define T_DATA(rel) t_data((rel), __FILE__, __LINE__)

/* a fresh scratch directory under out/tmp for this test binary */
static inline const char *t_tmpdir(void) {
    static char dir[256];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "out/tmp/t%ld", (long)getpid());
        char cmd[300];
        snprintf(cmd, sizeof cmd, "mkdir -p %s", dir);
        if (system(cmd)) return "/tmp";
    }
    return dir;
}

/* at the end of main, before T_DONE: remove the scratch directory when every test passed (a
 * failing run keeps its fixtures and outputs for a look) */
static inline void t_tmpdir_cleanup(void) {
    if (t_failed) return;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", t_tmpdir());
    if (strncmp(t_tmpdir(), "out/tmp/", 8) || system(cmd))
        fprintf(stderr, "  (left %s behind)\n", t_tmpdir());
}
#endif
