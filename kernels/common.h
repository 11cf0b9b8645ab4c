/* kernels/common.h: what every kernels file (and most files above) includes: the base layer
 * (kernels/base/base.h: errors, allocation, strings, files) and the kernels' own threading and
 * code-generation helpers. The error API, xmalloc and the memory budget are documented in
 * kernels/base/err.h and kernels/base/mem.h. */
#ifndef KERNELS_COMMON_H
#define KERNELS_COMMON_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/base/base.h"

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
#endif
