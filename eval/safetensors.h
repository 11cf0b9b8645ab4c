/* eval/safetensors.h: reading and writing safetensors files (Hugging Face's tensor container).
 *
 * Byte layout (little-endian):
 *  1. u64 N: the length of the JSON header in bytes (at most SAFETENSORS_MAX_HEADER)
 *  2. N bytes of UTF-8 JSON, one object, padded at the end with spaces (0x20) so that 8 + N is a
 *     multiple of 8 (the reference writer does this; the reader accepts any N):
 *       {"__metadata__": {"key": "value", ...},                        (optional; strings only)
 *        "NAME": {"dtype": "F32", "shape": [d0, d1, ...], "data_offsets": [begin, end]}, ...}
 *     shape is outermost first (PyTorch order: a Linear weight is [out, in]); [] is a scalar.
 *     data_offsets are bytes relative to the first byte after the header, end exclusive.
 *  3. the data: each tensor's elements row-major, little-endian, end - begin bytes.
 * The reader checks everything before use: N against the file, the JSON, every dtype, shape and
 * offset pair (byte size == end - begin, no overflow, within the file, no two tensors
 * overlapping); a file that lies gets one message naming the file, the tensor and what was
 * expected. It accepts gaps between tensors (the reference reader does not).
 * The writer lays tensors out back to back, sorted by element size (largest first) then name, as
 * the reference writer does, so every tensor starts aligned to its element size. */
#ifndef EVAL_SAFETENSORS_H
#define EVAL_SAFETENSORS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SAFETENSORS_MAX_DIMS 8
#define SAFETENSORS_MAX_HEADER 100000000 /* bytes; the reference implementation's limit */

/* X(name, bits per element): the dtype names of the format, as they appear in the header */
#define SAFETENSORS_DTYPES(X)                                                                      \
    X(BOOL, 8) X(U8, 8) X(I8, 8) X(F8_E5M2, 8) X(F8_E4M3, 8) X(F8_E8M0, 8) X(I16, 16) X(U16, 16)  \
    X(F16, 16) X(BF16, 16) X(I32, 32) X(U32, 32) X(F32, 32) X(I64, 64) X(U64, 64) X(F64, 64)       \
    X(C64, 64) X(F4, 4) X(F6_E2M3, 6) X(F6_E3M2, 6)

enum safetensors_dtype {
#define SAFETENSORS_ENUM_(name, bits) SAFETENSORS_##name,
    SAFETENSORS_DTYPES(SAFETENSORS_ENUM_)
#undef SAFETENSORS_ENUM_
    SAFETENSORS_DTYPE_COUNT
};

/* "F32", ...; the header's spelling */
const char *safetensors_dtype_name(enum safetensors_dtype t);
/* by exact (case-sensitive, as the format is) name; -1 when unknown */
int safetensors_dtype_from_name(const char *name);
int safetensors_dtype_bits(enum safetensors_dtype t);
/* bytes of a tensor of this dtype and shape (n_dims 0 = scalar); -1 (no message) when a dim is
 * negative, the size overflows, or a sub-byte dtype does not fill whole bytes */
int safetensors_nbytes(enum safetensors_dtype t, int n_dims, const int64_t *shape, size_t *out);

/* ===== reader ===== */

struct safetensors_tensor {
    const char *name; /* borrowed until safetensors_close */
    enum safetensors_dtype dtype;
    int n_dims;                          /* 0 for a scalar */
    int64_t shape[SAFETENSORS_MAX_DIMS]; /* outermost first, as in the file */
    const void *data;                    /* into the mapping; aligned only as the file made it */
    size_t nbytes;
    uint64_t offset; /* of the data from the start of the file */
};

struct safetensors_kv {
    const char *key, *value; /* borrowed until safetensors_close */
};

struct safetensors {
    char path[4096];
    const uint8_t *map; /* the whole file */
    size_t size;
    bool owns_map; /* unmapped by safetensors_close (safetensors_open) or borrowed (_parse) */
    uint64_t header_len;
    /* in data order (increasing offset) */
    struct safetensors_tensor *tensors;
    int n_tensors;
    struct safetensors_kv *meta; /* __metadata__, in file order */
    int n_meta;
    const struct safetensors_tensor **by_name; /* tensors sorted by name, for safetensors_find */
    void *json;   /* the parsed header (json_t *): owns the name/key/value strings */
};

#define SAFETENSORS_INIT {0}

/* map PATH read-only and parse it; the mapping is owned by st. -1 with one message (st is then
 * closed). */
int safetensors_open(struct safetensors *st, const char *path);
/* parse a file already in memory (map, size): map is borrowed and must outlive st and every data
 * pointer taken from it; path is only for messages. -1 with one message (st is then closed). */
int safetensors_parse(struct safetensors *st, const char *path, const void *map, size_t size);
/* release everything; a zeroed or closed st may be closed again */
void safetensors_close(struct safetensors *st);
/* the tensor named name, or NULL (no message) */
const struct safetensors_tensor *safetensors_find(const struct safetensors *st, const char *name);
/* the __metadata__ value of key, or NULL (no message) */
const char *safetensors_meta(const struct safetensors *st, const char *key);

/* ===== writer ===== */

struct safetensors_writer_tensor {
    char *name; /* owned */
    enum safetensors_dtype dtype;
    int n_dims;
    int64_t shape[SAFETENSORS_MAX_DIMS];
    const void *data; /* borrowed until safetensors_writer_write; NULL when spooled */
    size_t nbytes;
    int64_t spool_off; /* where its bytes are in the spool file (spooled tensors) */
};

struct safetensors_writer {
    struct safetensors_writer_tensor *tensors;
    int n_tensors, cap_tensors;
    struct {
        char *key, *value; /* owned */
    } *meta;
    int n_meta, cap_meta;
    bool spooling;  /* safetensors_writer_spool: add() copies the bytes to spool_fd */
    int spool_fd;
    int64_t spool_len;
};

#define SAFETENSORS_WRITER_INIT {0}

/* add a tensor: dtype by its header name ("F32", "BF16", ...), shape outermost first (n_dims 0..8,
 * 0 = scalar), data of exactly nbytes bytes (checked against dtype and shape), little-endian.
 * The name is copied; data is borrowed until safetensors_writer_write returns. A duplicate name
 * or "__metadata__" is an error. */
int safetensors_writer_add(struct safetensors_writer *w, const char *name, const char *dtype,
                           int n_dims, const int64_t *shape, const void *data, size_t nbytes);
/* from now on add() copies each tensor's bytes into an unlinked temporary file created as
 * NEAR.spool-XXXXXX (NEAR a path prefix, e.g. the output's), so the caller may free them at once:
 * a writer of a large file holds one tensor at a time in memory. The written file is the same
 * bytes. -1 with a message (the file cannot be created). */
int safetensors_writer_spool(struct safetensors_writer *w, const char *near);
/* set a __metadata__ entry (both strings copied); setting a key again replaces its value */
int safetensors_writer_set_meta(struct safetensors_writer *w, const char *key, const char *value);
/* write the file atomically: PATH.tmp is written, fsynced and renamed over PATH (PATH.tmp is
 * removed on failure). w is unchanged and may be written again. */
int safetensors_writer_write(const struct safetensors_writer *w, const char *path);
/* the tensors as a Hugging Face model directory (eval/safetensors_shard.c): dir/model.safetensors
 * when they fit in max_shard_bytes, else shards split as transformers' save_pretrained splits them
 * (huggingface_hub's rule, in the order the tensors were added) named
 * model-0000i-of-0000N.safetensors, with model.safetensors.index.json ({"metadata": {"total_size"},
 * "weight_map"}) written last; weights files of another layout in dir are removed first.
 * *file_bytes: the bytes written. -1 with a message. */
#define SAFETENSORS_DEFAULT_SHARD_BYTES ((int64_t)5000000000) /* transformers' "5GB" */
int safetensors_writer_write_dir(const struct safetensors_writer *w, const char *dir,
                                 int64_t max_shard_bytes, int64_t *file_bytes);
/* LOWBIT_MAX_SHARD_SIZE (bytes, or with KB/MB/GB or KiB/MiB/GiB) or the default 5 GB; -1 with a
 * message when the variable is not a size */
int64_t safetensors_max_shard_bytes(void);
/* free everything w owns; a released writer is empty and may be reused */
void safetensors_writer_release(struct safetensors_writer *w);
#endif
