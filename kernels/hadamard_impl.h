/* kernels/hadamard_impl.h: the base matrices kept as data (kernels/had_data.c) */
#ifndef KERNELS_HADAMARD_IMPL_H
#define KERNELS_HADAMARD_IMPL_H
#include "kernels/hadamard.h"

#define HAD_N_TABLES 3
struct had_table {
    int m;                   /* order */
    const char *const *rows; /* m rows of hex sign bits (1 = −1), first column in the top bit */
    const char *sha256;      /* of the text form: a line of '+'/'-' per row, '\n' after each */
};
extern const struct had_table had_tables[HAD_N_TABLES];
#endif
