/* eval/gguf.h: reading GGUF files (ggml's model container), versions 2 and 3.
 *
 * Byte layout (little-endian; gguf string = u64 length + bytes, no NUL):
 *  1. u32 magic "GGUF" (47 47 55 46), u32 version (2 or 3), u64 n_tensors, u64 n_kv
 *  2. n_kv × { string key, u32 value type, value }; types 0 u8, 1 i8, 2 u16, 3 i16, 4 u32, 5 i32,
 *     6 f32, 7 bool (1 byte), 8 string, 9 array (u32 elem type, u64 count, elements; nestable),
 *     10 u64, 11 i64, 12 f64
 *  3. n_tensors × { string name, u32 n_dims (1..4), u64 ne[n_dims] (innermost first), u32 ggml
 *     type, u64 offset (relative to the data section, a multiple of the alignment) }
 *  4. zero padding to general.alignment (default 32), then the data section.
 * gguf_open maps the file and checks every length, count, offset and size against the file before
 * anything is used; a file that lies gets one message saying what and where. */
#ifndef EVAL_GGUF_H
#define EVAL_GGUF_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum gguf_type {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
    GGUF_TYPE_COUNT
};

struct gguf_str {
    uint64_t len;
    const char *p; /* into the mapping, not NUL-terminated */
};

struct gguf_kv {
    struct gguf_str key;
    enum gguf_type type;
    union {
        uint64_t u;   /* unsigned integer types and bool */
        int64_t i;    /* signed integer types */
        double f;     /* f32, f64 */
        struct gguf_str str;
        struct {
            enum gguf_type type; /* element type */
            uint64_t n;
            const uint8_t *data;   /* raw elements (fixed-size types) */
            struct gguf_str *strs; /* string arrays: n entries (owned by the file) */
        } arr;
    } v;
};

struct gguf_tensor_info {
    struct gguf_str name;
    uint32_t n_dims;
    int64_t ne[4];
    uint32_t ggml_type;
    uint64_t offset; /* relative to data_offset */
    uint64_t nbytes; /* 0 when the type is unknown to lowbit */
};

struct gguf_file {
    const uint8_t *map;
    size_t size;
    uint32_t version;
    uint64_t n_kv, n_tensors;
    struct gguf_kv *kv;
    struct gguf_tensor_info *ti;
    uint64_t alignment, data_offset;
    char path[4096];
};

/* map and parse; -1 with a message (file is then closed) */
int gguf_open(struct gguf_file *g, const char *path);
void gguf_close(struct gguf_file *g);

const struct gguf_kv *gguf_find(const struct gguf_file *g, const char *key);
/* typed getters: 0 ok, 1 when the key is absent (out untouched), -1 (with a message) on a type
 * mismatch or out-of-range value. Integers accept any integer type in range. */
int gguf_get_int(const struct gguf_file *g, const char *key, int64_t *out);
int gguf_get_float(const struct gguf_file *g, const char *key, double *out);
int gguf_get_bool(const struct gguf_file *g, const char *key, bool *out);
/* copies with a NUL into buf (truncation is an error) */
int gguf_get_str(const struct gguf_file *g, const char *key, char *buf, size_t size);
/* element i of a numeric array as double / int64 (no bounds check: i < kv->v.arr.n) */
double gguf_arr_float(const struct gguf_kv *kv, uint64_t i);
int64_t gguf_arr_int(const struct gguf_kv *kv, uint64_t i);
const char *gguf_type_name(enum gguf_type t);

/* ---- writing (GGUF v3) ----
 * Collect KVs and tensors in memory order, then gguf_writer_write() lays out the header, the
 * tensor infos with aligned offsets and the data, to PATH.tmp then renamed over PATH (a reader
 * never sees half a file). Tensor data is borrowed until the write, or made at the write by a fill
 * callback into a buffer the writer reuses (one tensor in memory at a time: how a quantizer
 * streams a large model). */
struct gguf_writer;
struct gguf_writer *gguf_writer_new(void);
void gguf_writer_free(struct gguf_writer *w);
int gguf_writer_str(struct gguf_writer *w, const char *key, const char *val);
int gguf_writer_u32(struct gguf_writer *w, const char *key, uint32_t val);
int gguf_writer_i32(struct gguf_writer *w, const char *key, int32_t val);
int gguf_writer_f32(struct gguf_writer *w, const char *key, float val);
int gguf_writer_bool(struct gguf_writer *w, const char *key, bool val);
/* arrays: elem type u8..f64 (fixed size, n elements at data) or strings (n C strings) */
int gguf_writer_arr(struct gguf_writer *w, const char *key, enum gguf_type elem, const void *data,
                    uint64_t n);
int gguf_writer_arr_str(struct gguf_writer *w, const char *key, const char *const *strs, uint64_t n);
int gguf_writer_tensor(struct gguf_writer *w, const char *name, uint32_t ggml_type, int n_dims,
                       const int64_t *ne, const void *data, uint64_t nbytes);
/* fill(ctx, i, buf, nbytes) writes the nbytes of the tensor into buf when the file reaches it (i:
 * the i-th tensor added with a fill); 0, or -1 with a message, which fails the write */
typedef int (*gguf_fill_fn)(void *ctx, uint64_t i, void *buf, uint64_t nbytes);
int gguf_writer_tensor_fill(struct gguf_writer *w, const char *name, uint32_t ggml_type, int n_dims,
                            const int64_t *ne, uint64_t nbytes, gguf_fill_fn fill, void *ctx);
/* replace the tensors names[0..n) (added already, one type) by one tensor `name` of shape ne
 * holding their bytes one after another, at the first one's place: phi3's fused q/k/v rows, a
 * MoE layer's experts stacked along ne[2]. 1 when names[0] is not there (nothing done), 0, or
 * -1 with a message. The parts are made at the write, one after another (their data borrowed, or
 * their fills called). */
int gguf_writer_merge(struct gguf_writer *w, const char *const *names, int n, const char *name,
                      int n_dims, const int64_t *ne);
int gguf_writer_write(struct gguf_writer *w, const char *path);
#endif
