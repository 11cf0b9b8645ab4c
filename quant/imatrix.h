/* quant/imatrix.h: importance matrices, llama.cpp's way (tools/imatrix/imatrix.cpp and
 * common/imatrix-loader.cpp of llama.cpp de3ff81).
 *
 * For every weight W (blk.N.* matmuls) the matrix is the diagonal Σ_t x_t[j]² of its inputs x_t
 * over the calibration tokens, with the number of rows accumulated. llama-quantize divides one by
 * the other and weights each column's quantization error by the result (kernels/ggml_quants.h).
 *
 * File format: the GGUF container that this llama.cpp version writes by default (llama-imatrix
 * --output-format gguf; the legacy .dat is written only on request there, and read by both):
 *   KVs: general.type = "imatrix", imatrix.datasets = [calibration file names],
 *        imatrix.chunk_count (u32), imatrix.chunk_size (u32, tokens per chunk);
 *   tensors, sorted by name, per weight NAME: NAME.in_sum2 F32 [n_cols, n_mat] (Σx², 1-D when
 *        n_mat = 1) and NAME.counts F32 [1, n_mat] (rows accumulated).
 * imatrix_load also reads the legacy .dat (i32 n_entries; per entry i32 name length, name, i32
 * ncall, i32 n, f32[n] values already divided by the count and multiplied by ncall; optional i32
 * chunk count + dataset name).
 *
 * Collection protocol (llama-imatrix): the text is tokenized with BOS, cut into chunks of n_ctx
 * tokens (the last partial chunk is dropped), each chunk's first token replaced by BOS and run
 * from an empty cache; every matmul input row of every blk.* weight is accumulated (output.weight
 * is not, as llama-imatrix without --process-output). Sums are accumulated in double and stored
 * as fp32 (llama-imatrix accumulates in fp32). */
#ifndef QUANT_IMATRIX_H
#define QUANT_IMATRIX_H
#include <stdbool.h>
#include <stdint.h>

struct model;

struct imatrix_entry {
    char *name;     /* the weight, e.g. "blk.0.attn_q.weight" */
    int64_t n_cols; /* input columns (ne[0] of the weight) */
    int n_mat;      /* matrices (experts); 1 for dense weights */
    double *sum2;   /* [n_mat][n_cols] Σ x² */
    int64_t *count; /* [n_mat] rows accumulated */
};

struct imatrix {
    struct imatrix_entry *e;
    int n, cap;
    int chunk_count, chunk_size;
    char **datasets;
    int n_datasets;
    bool legacy; /* loaded from a .dat (sums are already count-normalized) */
};
#define IMATRIX_INIT {0}

void imatrix_release(struct imatrix *im);
/* the entry for weight name, NULL when absent */
const struct imatrix_entry *imatrix_find(const struct imatrix *im, const char *name);
/* add Σ over T rows of x[t][j]² (x: [T][n_cols] fp32) to the entry of name (created on first use;
 * an entry of another width is an error) */
int imatrix_accumulate(struct imatrix *im, const char *name, const float *x, int T, int64_t n_cols);

/* what llama-quantize hands the quantizer for weight name with n_cols × n_mat columns: Σx²/count
 * per column (1 where the count is 0). Returns 1 and *w (owned, free()) when found, 0 when the
 * entry is absent, -1 with llama.cpp's message when its size differs. */
int imatrix_weights(const struct imatrix *im, const char *name, int64_t n_cols, int n_mat,
                    float **w);

/* run the model over tokens[n_tokens] (already tokenized with BOS) in chunks of n_ctx, as
 * llama-imatrix; bos replaces each chunk's first token. dataset is recorded in the file. */
int imatrix_collect(struct imatrix *im, const struct model *m, const int *tokens, int n_tokens,
                    int n_ctx, int bos, const char *dataset, bool quiet);

int imatrix_save(const struct imatrix *im, const char *path);
int imatrix_load(struct imatrix *im, const char *path);
#endif
