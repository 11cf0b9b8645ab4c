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
    if (dtype_is_parametric(t->type)) /* kernels/qint.c */
        qtensor_row_to_f32(t, r, dst);
    else
        dtype_get(t->type)->to_f32(tensor_row(t, r), dst, t->ne[0]);
}

int tensor_find_nonfinite(const struct tensor *t, int64_t *row, int64_t *col, float *val) {
    const int64_t n_rows = tensor_nrows(t), n = t->ne[0];
    float *buf = malloc((size_t)n * sizeof(float));
    if (!buf) return -1;
    int found = 0;
    for (int64_t r = 0; r < n_rows && !found; r++) {
        tensor_row_to_f32(t, r, buf);
        for (int64_t c = 0; c < n; c++)
            if (!isfinite(buf[c])) {
                *row = r;
                *col = c;
                *val = buf[c];
                found = 1;
                break;
            }
    }
    free(buf);
    return found;
}

int tensor_check_finite(const struct tensor *t) {
    int64_t r, c;
    float v;
    int rc = tensor_find_nonfinite(t, &r, &c, &v);
    if (rc < 0) return err("out of memory checking tensor %s", t->name);
    if (rc)
        return err("tensor %s: value %s at row %lld, column %lld (weights must be finite)", t->name,
                   isnan(v) ? "NaN" : "Inf", (long long)r, (long long)c);
    return 0;
}

bool tensor_all_finite(const struct tensor *t) {
    const int64_t n_rows = tensor_nrows(t), n = t->ne[0];
    float *row = malloc((size_t)n * sizeof(float));
    if (!row) return false; /* reported by tensor_check_finite */
    bool ok = true;
    for (int64_t r = 0; r < n_rows && ok; r++) {
        tensor_row_to_f32(t, r, row);
        float acc = 0; /* NaN and Inf propagate into the product with zero */
        for (int64_t c = 0; c < n; c++) acc += row[c] * 0.0f;
        ok = acc == 0.0f;
    }
    free(row);
    return ok;
}
