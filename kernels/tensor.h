/* kernels/tensor.h: a named n-d view of weight data of one dtype.
 *
 * Layout is ggml's: ne[0] is the innermost (contiguous) dimension, so a Linear layer's weight
 * W[out][in] has ne[0] = in (row length, "n_cols") and ne[1] = out ("n_rows"). Rows are
 * tensor_row_bytes() bytes (dtype_row_size(type, ne[0]) for block types), back to back. The data is borrowed: it lives in a mapped
 * file or a buffer the model owns; a tensor never frees it. */
#ifndef KERNELS_TENSOR_H
#define KERNELS_TENSOR_H
#include "kernels/dtype.h"

#define TENSOR_MAX_DIMS 4
#define TENSOR_NAME_MAX 128

struct tensor {
    char name[TENSOR_NAME_MAX];
    enum dtype type;
    int n_dims;
    int64_t ne[TENSOR_MAX_DIMS]; /* unused dims are 1 */
    void *data;                  /* borrowed */
    /* parametric types only (dtype_is_parametric: DTYPE_QINT, DTYPE_NF4, DTYPE_FP4, DTYPE_I8ROW,
     * DTYPE_AQLM; zero otherwise). data then holds, in one buffer: the codes (rows of
     * tensor_row_bytes()), the side data (scales/zeros, absmax, codebooks) from qtensor_side(),
     * and q_perm's array, so that tensor_nbytes() is the whole storage. Layouts: kernels/qint.h,
     * kernels/nf4.h, kernels/aqlm.h. */
    int q_bits;            /* bits per code: qint 2, 3, 4, 8; nf4/fp4 4; i8row 8 */
    int q_group;           /* qint: group length along ne[0] (>= ne[0]: one group per row, i.e.
                            * per-channel); nf4/fp4: block length over the flattened tensor */
    const int32_t *q_perm; /* qint act-order: NULL, or [ne[0]]: stored column j holds input
                            * column q_perm[j] (groups are contiguous in stored order) */
    /* DTYPE_AQLM only (kernels/aqlm.h; q_bits = bits per codebook, q_group = in_group_size) */
    int q_ncb;       /* number of codebooks */
    int q_out_group; /* out_group_size */
};

/* kernels/qint.c: row bytes, side-data bytes and row dequantization of the parametric types */
size_t qtensor_row_bytes(const struct tensor *t);
size_t qtensor_side_offset(const struct tensor *t);
size_t qtensor_side_bytes(const struct tensor *t);
void qtensor_row_to_f32(const struct tensor *t, int64_t r, float *dst);

static inline int64_t tensor_nelements(const struct tensor *t) {
    return t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
}
static inline int64_t tensor_nrows(const struct tensor *t) { return t->ne[1] * t->ne[2] * t->ne[3]; }
static inline size_t tensor_row_bytes(const struct tensor *t) {
    return dtype_is_parametric(t->type) ? qtensor_row_bytes(t) : dtype_row_size(t->type, t->ne[0]);
}
static inline size_t tensor_nbytes(const struct tensor *t) {
    if (dtype_is_parametric(t->type)) return qtensor_side_offset(t) + qtensor_side_bytes(t);
    return tensor_row_bytes(t) * (size_t)tensor_nrows(t);
}
static inline const void *tensor_row(const struct tensor *t, int64_t r) {
    return (const char *)t->data + (size_t)r * tensor_row_bytes(t);
}

/* fill name/type/dims; checks the dims are positive, fit in memory and the row is whole blocks;
 * returns -1 with a message naming the tensor otherwise. data is left NULL. */
int tensor_init(struct tensor *t, const char *name, enum dtype type, int n_dims, const int64_t *ne);
/* dequantize row r to fp32 (ne[0] floats) */
void tensor_row_to_f32(const struct tensor *t, int64_t r, float *dst);
/* true when every value is finite (no message; safe to call from parallel threads) */
bool tensor_all_finite(const struct tensor *t);
/* the first non-finite value: 1 with its row/column/value, 0 when all are finite, -1 out of memory */
int tensor_find_nonfinite(const struct tensor *t, int64_t *row, int64_t *col, float *val);
/* -1 with a message naming the tensor and the first bad index when any value is NaN or Inf */
int tensor_check_finite(const struct tensor *t);
#endif
