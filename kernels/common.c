/* kernels/common.c: see common.h */
#include "kernels/common.h"

#ifdef _OPENMP
#include <omp.h>
#endif

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
