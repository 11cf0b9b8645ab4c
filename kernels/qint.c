/* kernels/qint.c: the integer-group type (layout in qint.h) and the row geometry of every
 * parametric type (the qtensor_* hooks struct tensor calls). */
#include "kernels/qint.h"

#include <stdio.h>
#include <stdlib.h>

#include "kernels/aqlm.h"
#include "kernels/nf4.h"

const int QINT_AWQ_ORDER[8] = {0, 2, 4, 6, 1, 3, 5, 7};
const int QINT_AWQ_REVERSE[8] = {0, 4, 1, 5, 2, 6, 3, 7};

static size_t align8(size_t n) { return (n + 7) & ~(size_t)7; }

/* ===== geometry of the parametric types ===== */

size_t qtensor_row_bytes(const struct tensor *t) {
    const int64_t K = t->ne[0];
    switch (t->type) {
    case DTYPE_QINT: return qint_row_bytes(t->q_bits, K);
    case DTYPE_NF4:
    case DTYPE_FP4: return (size_t)(K + 1) / 2;
    case DTYPE_I8ROW: return (size_t)K;
    case DTYPE_AQLM: return aqlm_row_bytes(t);
    default: BUG("qtensor_row_bytes: dtype %d is not parametric", (int)t->type);
    }
}

size_t qtensor_side_offset(const struct tensor *t) {
    if (t->type == DTYPE_AQLM) return aqlm_side_offset(t); /* rows are output groups */
    return align8(qtensor_row_bytes(t) * (size_t)tensor_nrows(t));
}

size_t qtensor_side_bytes(const struct tensor *t) {
    const int64_t K = t->ne[0], N = tensor_nrows(t);
    switch (t->type) {
    case DTYPE_QINT:
        return (size_t)(N * qint_n_groups(t->q_group, K)) * sizeof(struct qint_param) +
               (t->q_perm ? (size_t)K * sizeof(int32_t) : 0);
    case DTYPE_NF4:
    case DTYPE_FP4: return (size_t)nf4_n_blocks(N * K, t->q_group) * sizeof(float);
    case DTYPE_I8ROW: return (size_t)N * sizeof(float);
    case DTYPE_AQLM: return aqlm_side_bytes(t);
    default: BUG("qtensor_side_bytes: dtype %d is not parametric", (int)t->type);
    }
}

void qtensor_row_to_f32(const struct tensor *t, int64_t r, float *dst) {
    switch (t->type) {
    case DTYPE_QINT: qint_row_to_f32(t, r, dst); break;
    case DTYPE_NF4:
    case DTYPE_FP4: nf4_row_to_f32(t, r, dst); break;
    case DTYPE_I8ROW: i8row_row_to_f32(t, r, dst); break;
    case DTYPE_AQLM: aqlm_row_to_f32(t, r, dst); break;
    default: BUG("qtensor_row_to_f32: dtype %d is not parametric", (int)t->type);
    }
}

/* ===== qint ===== */

int qint_check_layout(const char *what, int bits, int64_t group, int64_t K) {
    if (bits != 2 && bits != 3 && bits != 4 && bits != 8)
        return err("%s: %d bits (expected 2, 3, 4 or 8)", what, bits);
    if (K <= 0) return err("%s: %lld input features", what, (long long)K);
    if (group <= 0 || (group % QINT_CHUNK && group < K))
        return err("%s: group size %lld with %lld input features (lowbit holds groups that are a "
                   "multiple of %d, or one group per row)", what, (long long)group, (long long)K,
                   QINT_CHUNK);
    return 0;
}

int qint_tensor_init(struct tensor *t, const char *name, int64_t K, int64_t N, int bits,
                     int64_t group, bool has_perm) {
    const int64_t ne[2] = {K, N};
    if (group <= 0) group = K; /* -1: one group per row (per-channel) */
    if (qint_check_layout(name, bits, group, K) || tensor_init(t, name, DTYPE_QINT, 2, ne))
        return -1;
    if (group > K) group = K; /* one group per row either way; keeps ng = 1 */
    t->q_bits = bits;
    t->q_group = (int)LB_MIN(group, (int64_t)1 << 30);
    if (t->q_group != group) return err("%s: group size %lld too large", name, (long long)group);
    t->q_perm = NULL;
    (void)has_perm;
    return 0;
}

size_t qint_tensor_bytes(int64_t K, int64_t N, int bits, int64_t group, bool has_perm) {
    if (group <= 0 || group > K) group = K;
    return align8(qint_row_bytes(bits, K) * (size_t)N) +
           (size_t)(N * qint_n_groups(group, K)) * sizeof(struct qint_param) +
           (has_perm ? (size_t)K * sizeof(int32_t) : 0);
}

void qint_tensor_attach(struct tensor *t, void *buf, bool has_perm) {
    t->data = buf;
    t->q_perm = NULL;
    if (has_perm) {
        int32_t *p = qint_perm_mut(t);
        for (int64_t k = 0; k < t->ne[0]; k++) p[k] = (int32_t)k;
        t->q_perm = p;
    }
}

void qint_row_to_f32(const struct tensor *t, int64_t n, float *dst) {
    const int64_t K = t->ne[0], g = t->q_group, ng = qint_n_groups(g, K);
    const uint8_t *row = tensor_row(t, n);
    const struct qint_param *p = qint_params(t) + n * ng;
    for (int64_t j = 0; j < K; j++) {
        const struct qint_param *pg = &p[j / g];
        const float v = pg->d * ((float)qint_code_get(row, t->q_bits, j) - pg->z);
        dst[t->q_perm ? t->q_perm[j] : j] = v;
    }
}

int qint_perm_from_gidx(const char *what, const int32_t *g_idx, int64_t K, int64_t group,
                        int32_t *perm, bool *trivial) {
    const int64_t ng = qint_n_groups(group, K);
    int64_t *count = xcalloc((size_t)ng + 1, sizeof *count, "g_idx histogram");
    if (!count) return -1;
    int ret = -1;
    *trivial = true;
    for (int64_t k = 0; k < K; k++) {
        if (g_idx[k] < 0 || g_idx[k] >= ng) {
            err("%s: g_idx[%lld] = %d is out of range (expected 0 to %lld: %lld input features in "
                "groups of %lld)", what, (long long)k, g_idx[k], (long long)ng - 1, (long long)K,
                (long long)group);
            goto out;
        }
        count[g_idx[k] + 1]++;
        if (g_idx[k] != k / group) *trivial = false;
    }
    for (int64_t gi = 0; gi < ng; gi++) {
        const int64_t want = gi < ng - 1 ? group : K - (ng - 1) * group;
        if (count[gi + 1] != want) {
            err("%s: g_idx puts %lld input features in group %lld (expected %lld: GPTQ groups hold "
                "group_size features each)", what, (long long)count[gi + 1], (long long)gi,
                (long long)want);
            goto out;
        }
    }
    for (int64_t gi = 0; gi < ng; gi++) count[gi + 1] += count[gi]; /* group starts */
    for (int64_t k = 0; k < K; k++) perm[count[g_idx[k]]++] = (int32_t)k; /* stable */
    ret = 0;
out:
    free(count);
    return ret;
}
