/* kernels/tensor.c: see tensor.h */
#include "kernels/tensor.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

int tensor_init(struct tensor *t, const char *name, enum dtype type, int n_dims, const int64_t *ne) {
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->type = type;
    if (n_dims < 1 || n_dims > TENSOR_MAX_DIMS)
        return err("tensor %s: %d dimensions (expected 1 to %d)", name, n_dims, TENSOR_MAX_DIMS);
    t->n_dims = n_dims;
    size_t total = 1;
    for (int i = 0; i < TENSOR_MAX_DIMS; i++) {
        t->ne[i] = i < n_dims ? ne[i] : 1;
        if (t->ne[i] <= 0 || t->ne[i] > ((int64_t)1 << 40))
            return err("tensor %s: dimension %d is %lld (expected 1 to 2^40)", name, i,
                       (long long)t->ne[i]);
        if (mul_ok(total, (size_t)t->ne[i], &total) || total > ((size_t)1 << 42))
            return err("tensor %s: %s elements overflow the 2^42 limit", name, "too many");
    }
    const struct dtype_info *d = dtype_get(type);
    if (t->ne[0] % d->block)
        return err("tensor %s: row length %lld is not a multiple of the %s block length %d", name,
                   (long long)t->ne[0], d->name, d->block);
    return 0;
}

void tensor_row_to_f32(const struct tensor *t, int64_t r, float *dst) {
    dtype_get(t->type)->to_f32(tensor_row(t, r), dst, t->ne[0]);
}

int tensor_check_finite(const struct tensor *t) {
    const int64_t n_rows = tensor_nrows(t), n = t->ne[0];
    float *row = malloc((size_t)n * sizeof(float));
    if (!row) return err("out of memory checking tensor %s", t->name);
    int ret = 0;
    for (int64_t r = 0; r < n_rows && !ret; r++) {
        tensor_row_to_f32(t, r, row);
        for (int64_t c = 0; c < n; c++)
            if (!isfinite(row[c])) {
                ret = err("tensor %s: value %s at row %lld, column %lld (weights must be finite)",
                          t->name, isnan(row[c]) ? "NaN" : "Inf", (long long)r, (long long)c);
                break;
            }
    }
    free(row);
    return ret;
}
