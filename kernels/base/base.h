/* kernels/base/base.h: the base layer in one include, and the few macros every file uses.
 *
 * The base layer sits below kernels/ (base ← kernels ← eval ← quant ← gen; render uses base and
 * SQL only; tests/layers checks it): what any C program of this size needs and nothing of
 * lowbit's own subject. Each header states its contracts:
 *   err.h     err()/err_last()/BUG()/ASSERT(): the error API
 *   mem.h     xmalloc & co. (they report), the memory budget (mem_check)
 *   strbuf.h  struct strbuf, xstrfmt, ends_with, cmp_str
 *   fs.h      whole-file reads with size limits, mkdir_p, write_file_atomic, rm_tree, path_bytes
 *   sha256.h  SHA-256 of bytes and files; hash.h: FNV-1a and a set of 64-bit keys
 *   json.h    jstr & co. over jansson
 * This header includes err.h, mem.h, strbuf.h and fs.h; sha256.h, hash.h and json.h are
 * included by the files that use them (json.h brings jansson). */
#ifndef KERNELS_BASE_BASE_H
#define KERNELS_BASE_BASE_H
#include "kernels/base/err.h"
#include "kernels/base/fs.h"
#include "kernels/base/mem.h"
#include "kernels/base/strbuf.h"

/* wall clock in seconds (monotonic) */
double now_s(void);

#define LB_MIN(a, b) ((a) < (b) ? (a) : (b))
#define LB_MAX(a, b) ((a) > (b) ? (a) : (b))
#define LB_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
/* fminf / fmaxf of non-NaN floats, inlined (without -ffinite-math-only they are library calls);
 * the same results as glibc's, signed zeros included: the first argument on a tie */
static inline float lb_minf(float a, float b) { return b < a ? b : a; }
static inline float lb_maxf(float a, float b) { return b > a ? b : a; }
#endif
