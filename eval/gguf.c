/* eval/gguf.c: GGUF v2/v3 reader (layout in gguf.h).
 *
 * The file is mapped read-only and parsed with a bounds-checked cursor: every read checks the bytes
 * remain, every count is checked against what the remaining bytes could possibly hold before any
 * allocation, so a lying header fails with a message instead of a huge malloc or a read past the
 * end. Tensor data ranges are checked against the file size and the alignment. */
#include "eval/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernels/common.h"
#include "kernels/dtype.h"

#define GGUF_MAGIC 0x46554747u /* "GGUF" little-endian */
#define GGUF_MAX_DEPTH 4       /* nesting of arrays in arrays */

struct cursor {
    const uint8_t *base, *p, *end;
    const char *path;
    const char *what; /* what is being read, for messages */
};

static size_t type_size(enum gguf_type t) {
    switch (t) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_INT8: case GGUF_TYPE_BOOL: return 1;
    case GGUF_TYPE_UINT16: case GGUF_TYPE_INT16: return 2;
    case GGUF_TYPE_UINT32: case GGUF_TYPE_INT32: case GGUF_TYPE_FLOAT32: return 4;
    case GGUF_TYPE_UINT64: case GGUF_TYPE_INT64: case GGUF_TYPE_FLOAT64: return 8;
    default: return 0;
    }
}

const char *gguf_type_name(enum gguf_type t) {
    static const char *names[GGUF_TYPE_COUNT] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32",
                                                 "bool", "string", "array", "u64", "i64", "f64"};
    return (unsigned)t < GGUF_TYPE_COUNT ? names[t] : "unknown";
}

static int need(struct cursor *c, size_t n) {
    if ((size_t)(c->end - c->p) < n)
        return err("%s: truncated GGUF file: %s needs %zu bytes at offset %zu, %zu left", c->path,
                   c->what, n, (size_t)(c->p - c->base), (size_t)(c->end - c->p));
    return 0;
}

static int rd(struct cursor *c, void *dst, size_t n) {
    if (need(c, n)) return -1;
    memcpy(dst, c->p, n);
    c->p += n;
    return 0;
}

static int rd_str(struct cursor *c, struct gguf_str *s) {
    uint64_t len;
    if (rd(c, &len, 8)) return -1;
    if (len > (uint64_t)(c->end - c->p))
        return err("%s: %s: string length %llu runs past the end of the file", c->path, c->what,
                   (unsigned long long)len);
    s->len = len;
    s->p = (const char *)c->p;
    c->p += len;
    return 0;
}

/* skip or record a value of type t; depth guards nested arrays */
static int rd_value(struct cursor *c, enum gguf_type t, struct gguf_kv *kv, int depth) {
    if ((unsigned)t >= GGUF_TYPE_COUNT)
        return err("%s: %s: unknown value type %u (expected 0..12)", c->path, c->what, (unsigned)t);
    if (t == GGUF_TYPE_STRING) {
        struct gguf_str s;
        if (rd_str(c, &s)) return -1;
        if (kv) kv->v.str = s;
        return 0;
    }
    if (t == GGUF_TYPE_ARRAY) {
        uint32_t et;
        uint64_t n;
        if (depth >= GGUF_MAX_DEPTH)
            return err("%s: %s: arrays nested deeper than %d", c->path, c->what, GGUF_MAX_DEPTH);
        if (rd(c, &et, 4) || rd(c, &n, 8)) return -1;
        if (et >= GGUF_TYPE_COUNT)
            return err("%s: %s: unknown array element type %u", c->path, c->what, et);
        size_t es = type_size((enum gguf_type)et);
        size_t left = (size_t)(c->end - c->p);
        /* every element takes at least es bytes (8 for strings/arrays): a count that cannot fit is
         * refused before anything is allocated */
        size_t min_es = es ? es : (et == GGUF_TYPE_STRING ? 8 : 12);
        if (n > left / min_es)
            return err("%s: %s: array of %llu %s elements cannot fit in the %zu bytes left",
                       c->path, c->what, (unsigned long long)n, gguf_type_name((enum gguf_type)et),
                       left);
        if (kv) {
            kv->v.arr.type = (enum gguf_type)et;
            kv->v.arr.n = n;
            kv->v.arr.data = c->p;
            kv->v.arr.strs = NULL;
        }
        if (es) {
            c->p += n * es;
            return 0;
        }
        if (et == GGUF_TYPE_STRING && kv) {
            kv->v.arr.strs = xcalloc(n ? n : 1, sizeof(struct gguf_str), "GGUF string array");
            if (!kv->v.arr.strs) return -1;
            for (uint64_t i = 0; i < n; i++)
                if (rd_str(c, &kv->v.arr.strs[i])) return -1;
            return 0;
        }
        for (uint64_t i = 0; i < n; i++)
            if (rd_value(c, (enum gguf_type)et, NULL, depth + 1)) return -1;
        return 0;
    }
    size_t sz = type_size(t);
    uint8_t buf[8] = {0};
    if (rd(c, buf, sz)) return -1;
    if (!kv) return 0;
    switch (t) {
    case GGUF_TYPE_UINT8: kv->v.u = buf[0]; break;
    case GGUF_TYPE_BOOL: kv->v.u = buf[0] != 0; break;
    case GGUF_TYPE_INT8: kv->v.i = (int8_t)buf[0]; break;
    case GGUF_TYPE_UINT16: { uint16_t x; memcpy(&x, buf, 2); kv->v.u = x; break; }
    case GGUF_TYPE_INT16: { int16_t x; memcpy(&x, buf, 2); kv->v.i = x; break; }
    case GGUF_TYPE_UINT32: { uint32_t x; memcpy(&x, buf, 4); kv->v.u = x; break; }
    case GGUF_TYPE_INT32: { int32_t x; memcpy(&x, buf, 4); kv->v.i = x; break; }
    case GGUF_TYPE_FLOAT32: { float x; memcpy(&x, buf, 4); kv->v.f = x; break; }
    case GGUF_TYPE_UINT64: { uint64_t x; memcpy(&x, buf, 8); kv->v.u = x; break; }
    case GGUF_TYPE_INT64: { int64_t x; memcpy(&x, buf, 8); kv->v.i = x; break; }
    case GGUF_TYPE_FLOAT64: { double x; memcpy(&x, buf, 8); kv->v.f = x; break; }
    default: BUG("type %d", (int)t);
    }
    return 0;
}

static bool str_eq(struct gguf_str s, const char *z) {
    size_t n = strlen(z);
    return s.len == n && !memcmp(s.p, z, n);
}

void gguf_close(struct gguf_file *g) {
    if (g->kv)
        for (uint64_t i = 0; i < g->n_kv; i++)
            if (g->kv[i].type == GGUF_TYPE_ARRAY) free(g->kv[i].v.arr.strs);
    free(g->kv);
    free(g->ti);
    if (g->map) munmap((void *)g->map, g->size);
    memset(g, 0, sizeof *g);
}

static int parse(struct gguf_file *g) {
    if (g->size < 24) /* before the cursor: an empty file has no mapping (map is NULL) */
        return err("%s: %zu bytes is too short for a GGUF header (24 bytes)", g->path, g->size);
    struct cursor c = {g->map, g->map, g->map + g->size, g->path, "header"};
    uint32_t magic;
    if (rd(&c, &magic, 4)) return -1;
    if (magic != GGUF_MAGIC)
        return err("%s: bad magic %02x %02x %02x %02x (expected 'GGUF')", g->path, g->map[0],
                   g->map[1], g->map[2], g->map[3]);
    if (rd(&c, &g->version, 4)) return -1;
    if (g->version != 2 && g->version != 3)
        return err("%s: GGUF version %u (lowbit reads versions 2 and 3)", g->path, g->version);
    if (rd(&c, &g->n_tensors, 8) || rd(&c, &g->n_kv, 8)) return -1;
    /* a KV takes >= 8+4+1 bytes, a tensor info >= 8+4+8+4+8 */
    if (g->n_kv > g->size / 13 || g->n_tensors > g->size / 32)
        return err("%s: header claims %llu KVs and %llu tensors, more than a %zu-byte file holds",
                   g->path, (unsigned long long)g->n_kv, (unsigned long long)g->n_tensors, g->size);
    g->kv = xcalloc(g->n_kv ? g->n_kv : 1, sizeof *g->kv, "GGUF metadata");
    g->ti = xcalloc(g->n_tensors ? g->n_tensors : 1, sizeof *g->ti, "GGUF tensor infos");
    if (!g->kv || !g->ti) return -1;

    char what[160];
    for (uint64_t i = 0; i < g->n_kv; i++) {
        struct gguf_kv *kv = &g->kv[i];
        snprintf(what, sizeof what, "metadata entry %llu", (unsigned long long)i);
        c.what = what;
        uint32_t t;
        if (rd_str(&c, &kv->key) || rd(&c, &t, 4)) return -1;
        snprintf(what, sizeof what, "metadata '%.*s'", (int)LB_MIN(kv->key.len, 100),
                 kv->key.p);
        kv->type = (enum gguf_type)t;
        if (rd_value(&c, kv->type, kv, 0)) return -1;
    }
    g->alignment = 32;
    const struct gguf_kv *al = gguf_find(g, "general.alignment");
    if (al) {
        if (al->type != GGUF_TYPE_UINT32 || al->v.u == 0 || (al->v.u & (al->v.u - 1)))
            return err("%s: general.alignment must be a power-of-two u32 (found %s %llu)", g->path,
                       gguf_type_name(al->type), (unsigned long long)al->v.u);
        g->alignment = al->v.u;
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        struct gguf_tensor_info *ti = &g->ti[i];
        snprintf(what, sizeof what, "tensor info %llu", (unsigned long long)i);
        c.what = what;
        if (rd_str(&c, &ti->name) || rd(&c, &ti->n_dims, 4)) return -1;
        snprintf(what, sizeof what, "tensor '%.*s'", (int)LB_MIN(ti->name.len, 100), ti->name.p);
        if (ti->name.len == 0 || ti->name.len >= 128)
            return err("%s: %s: name length %llu (expected 1..127)", g->path, what,
                       (unsigned long long)ti->name.len);
        if (ti->n_dims < 1 || ti->n_dims > 4)
            return err("%s: %s has %u dimensions (expected 1 to 4)", g->path, what, ti->n_dims);
        uint64_t nel = 1;
        for (int d = 0; d < 4; d++) {
            uint64_t ne = 1;
            if (d < (int)ti->n_dims && rd(&c, &ne, 8)) return -1;
            if (ne == 0 || ne > ((uint64_t)1 << 40) || nel > (((uint64_t)1 << 42) / ne))
                return err("%s: %s: absurd dimension %d = %llu", g->path, what, d,
                           (unsigned long long)ne);
            ti->ne[d] = (int64_t)ne;
            nel *= ne;
        }
        if (rd(&c, &ti->ggml_type, 4) || rd(&c, &ti->offset, 8)) return -1;
        if (ti->offset % g->alignment)
            return err("%s: %s: data offset %llu is not a multiple of the alignment %llu", g->path,
                       what, (unsigned long long)ti->offset, (unsigned long long)g->alignment);
        int dt = dtype_from_ggml((int)ti->ggml_type);
        if (dt >= 0) {
            const struct dtype_info *di = dtype_get((enum dtype)dt);
            if (ti->ne[0] % di->block)
                return err("%s: %s: row length %lld is not a multiple of the %s block (%d)",
                           g->path, what, (long long)ti->ne[0], di->name, di->block);
            ti->nbytes = nel / (uint64_t)di->block * (uint64_t)di->block_bytes;
        }
        for (uint64_t j = 0; j < i; j++)
            if (g->ti[j].name.len == ti->name.len &&
                !memcmp(g->ti[j].name.p, ti->name.p, ti->name.len))
                return err("%s: %s appears twice", g->path, what);
    }
    size_t hdr = (size_t)(c.p - g->map);
    g->data_offset = (hdr + g->alignment - 1) / g->alignment * g->alignment;
    if (g->n_tensors && g->data_offset > g->size)
        return err("%s: truncated: tensor data would start at %llu, past the end (%zu bytes)",
                   g->path, (unsigned long long)g->data_offset, g->size);
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const struct gguf_tensor_info *ti = &g->ti[i];
        if (!ti->nbytes) continue; /* unknown type: checked by whoever uses it */
        uint64_t avail = g->size - g->data_offset;
        if (ti->offset > avail || ti->nbytes > avail - ti->offset)
            return err("%s: tensor '%.*s' data [%llu, +%llu) runs past the end of the file "
                       "(%llu data bytes): truncated or lying file",
                       g->path, (int)ti->name.len, ti->name.p,
                       (unsigned long long)ti->offset, (unsigned long long)ti->nbytes,
                       (unsigned long long)avail);
    }
    return 0;
}

int gguf_open(struct gguf_file *g, const char *path) {
    memset(g, 0, sizeof *g);
    snprintf(g->path, sizeof g->path, "%s", path);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return err("%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        close(fd);
        return err("%s: not a regular file", path);
    }
    g->size = (size_t)st.st_size;
    if (g->size) {
        void *p = mmap(NULL, g->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            close(fd);
            return err("%s: cannot map %zu bytes: %s", path, g->size, strerror(errno));
        }
        g->map = p;
    }
    close(fd);
    if (parse(g)) {
        gguf_close(g);
        return -1;
    }
    return 0;
}

const struct gguf_kv *gguf_find(const struct gguf_file *g, const char *key) {
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (str_eq(g->kv[i].key, key)) return &g->kv[i];
    return NULL;
}

static bool is_signed(enum gguf_type t) {
    return t == GGUF_TYPE_INT8 || t == GGUF_TYPE_INT16 || t == GGUF_TYPE_INT32 ||
           t == GGUF_TYPE_INT64;
}
static bool is_unsigned(enum gguf_type t) {
    return t == GGUF_TYPE_UINT8 || t == GGUF_TYPE_UINT16 || t == GGUF_TYPE_UINT32 ||
           t == GGUF_TYPE_UINT64;
}

int gguf_get_int(const struct gguf_file *g, const char *key, int64_t *out) {
    const struct gguf_kv *kv = gguf_find(g, key);
    if (!kv) return 1;
    if (is_signed(kv->type)) {
        *out = kv->v.i;
        return 0;
    }
    if (is_unsigned(kv->type)) {
        if (kv->v.u > (uint64_t)INT64_MAX)
            return err("%s: %s = %llu is out of range", g->path, key, (unsigned long long)kv->v.u);
        *out = (int64_t)kv->v.u;
        return 0;
    }
    return err("%s: %s is a %s (expected an integer)", g->path, key, gguf_type_name(kv->type));
}

int gguf_get_float(const struct gguf_file *g, const char *key, double *out) {
    const struct gguf_kv *kv = gguf_find(g, key);
    if (!kv) return 1;
    if (kv->type == GGUF_TYPE_FLOAT32 || kv->type == GGUF_TYPE_FLOAT64) *out = kv->v.f;
    else if (is_signed(kv->type)) *out = (double)kv->v.i;
    else if (is_unsigned(kv->type)) *out = (double)kv->v.u;
    else return err("%s: %s is a %s (expected a number)", g->path, key, gguf_type_name(kv->type));
    return 0;
}

int gguf_get_bool(const struct gguf_file *g, const char *key, bool *out) {
    const struct gguf_kv *kv = gguf_find(g, key);
    if (!kv) return 1;
    if (kv->type != GGUF_TYPE_BOOL)
        return err("%s: %s is a %s (expected bool)", g->path, key, gguf_type_name(kv->type));
    *out = kv->v.u != 0;
    return 0;
}

int gguf_get_str(const struct gguf_file *g, const char *key, char *buf, size_t size) {
    const struct gguf_kv *kv = gguf_find(g, key);
    if (!kv) return 1;
    if (kv->type != GGUF_TYPE_STRING)
        return err("%s: %s is a %s (expected string)", g->path, key, gguf_type_name(kv->type));
    if (kv->v.str.len >= size)
        return err("%s: %s is %llu bytes long (at most %zu expected)", g->path, key,
                   (unsigned long long)kv->v.str.len, size - 1);
    memcpy(buf, kv->v.str.p, kv->v.str.len);
    buf[kv->v.str.len] = 0;
    return 0;
}

double gguf_arr_float(const struct gguf_kv *kv, uint64_t i) {
    const uint8_t *p = kv->v.arr.data + i * type_size(kv->v.arr.type);
    switch (kv->v.arr.type) {
    case GGUF_TYPE_FLOAT32: { float x; memcpy(&x, p, 4); return x; }
    case GGUF_TYPE_FLOAT64: { double x; memcpy(&x, p, 8); return x; }
    default: return (double)gguf_arr_int(kv, i);
    }
}

int64_t gguf_arr_int(const struct gguf_kv *kv, uint64_t i) {
    const uint8_t *p = kv->v.arr.data + i * type_size(kv->v.arr.type);
    switch (kv->v.arr.type) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_BOOL: return p[0];
    case GGUF_TYPE_INT8: return (int8_t)p[0];
    case GGUF_TYPE_UINT16: { uint16_t x; memcpy(&x, p, 2); return x; }
    case GGUF_TYPE_INT16: { int16_t x; memcpy(&x, p, 2); return x; }
    case GGUF_TYPE_UINT32: { uint32_t x; memcpy(&x, p, 4); return x; }
    case GGUF_TYPE_INT32: { int32_t x; memcpy(&x, p, 4); return x; }
    case GGUF_TYPE_UINT64: { uint64_t x; memcpy(&x, p, 8); return (int64_t)x; }
    case GGUF_TYPE_INT64: { int64_t x; memcpy(&x, p, 8); return x; }
    case GGUF_TYPE_FLOAT32: { float x; memcpy(&x, p, 4); return (int64_t)x; }
    case GGUF_TYPE_FLOAT64: { double x; memcpy(&x, p, 8); return (int64_t)x; }
    default: return 0;
    }
}

/* ---- writer ---- */

struct gw_buf {
    uint8_t *p;
    size_t n, cap;
    bool oom;
};

static void gw_put(struct gw_buf *b, const void *src, size_t n) {
    if (b->oom) return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n) cap *= 2;
        uint8_t *np = realloc(b->p, cap);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void gw_str(struct gw_buf *b, const char *s) {
    uint64_t n = strlen(s);
    gw_put(b, &n, 8);
    gw_put(b, s, n);
}

struct gw_tensor {
    char name[128];
    uint32_t type;
    int n_dims;
    int64_t ne[4];
    const void *data;
    uint64_t nbytes, offset;
    gguf_fill_fn fill; /* data made at the write (data NULL) */
    void *fill_ctx;
    uint64_t fill_i;
};

struct gguf_writer {
    struct gw_buf kv; /* serialized KVs */
    uint64_t n_kv;
    struct gw_tensor *t;
    uint64_t n_t, cap_t, n_fill;
    void **own; /* the part lists gguf_writer_merge made */
    int n_own;
};

struct gguf_writer *gguf_writer_new(void) {
    struct gguf_writer *w = calloc(1, sizeof *w);
    if (!w) err("out of memory");
    return w;
}

void gguf_writer_free(struct gguf_writer *w) {
    if (!w) return;
    free(w->kv.p);
    free(w->t);
    for (int i = 0; i < w->n_own; i++) free(w->own[i]);
    free(w->own);
    free(w);
}

static int gw_key(struct gguf_writer *w, const char *key, uint32_t type) {
    gw_str(&w->kv, key);
    gw_put(&w->kv, &type, 4);
    w->n_kv++;
    return 0;
}

static int gw_done(struct gguf_writer *w) { return w->kv.oom ? err("out of memory") : 0; }

int gguf_writer_str(struct gguf_writer *w, const char *key, const char *val) {
    gw_key(w, key, GGUF_TYPE_STRING);
    gw_str(&w->kv, val);
    return gw_done(w);
}
int gguf_writer_u32(struct gguf_writer *w, const char *key, uint32_t val) {
    gw_key(w, key, GGUF_TYPE_UINT32);
    gw_put(&w->kv, &val, 4);
    return gw_done(w);
}
int gguf_writer_i32(struct gguf_writer *w, const char *key, int32_t val) {
    gw_key(w, key, GGUF_TYPE_INT32);
    gw_put(&w->kv, &val, 4);
    return gw_done(w);
}
int gguf_writer_f32(struct gguf_writer *w, const char *key, float val) {
    gw_key(w, key, GGUF_TYPE_FLOAT32);
    gw_put(&w->kv, &val, 4);
    return gw_done(w);
}
int gguf_writer_bool(struct gguf_writer *w, const char *key, bool val) {
    uint8_t b = val;
    gw_key(w, key, GGUF_TYPE_BOOL);
    gw_put(&w->kv, &b, 1);
    return gw_done(w);
}
int gguf_writer_arr(struct gguf_writer *w, const char *key, enum gguf_type elem, const void *data,
                    uint64_t n) {
    size_t es = type_size(elem);
    if (!es) BUG("gguf_writer_arr: element type %d is not fixed-size", (int)elem);
    uint32_t et = elem;
    gw_key(w, key, GGUF_TYPE_ARRAY);
    gw_put(&w->kv, &et, 4);
    gw_put(&w->kv, &n, 8);
    gw_put(&w->kv, data, n * es);
    return gw_done(w);
}
int gguf_writer_arr_str(struct gguf_writer *w, const char *key, const char *const *strs, uint64_t n) {
    uint32_t et = GGUF_TYPE_STRING;
    gw_key(w, key, GGUF_TYPE_ARRAY);
    gw_put(&w->kv, &et, 4);
    gw_put(&w->kv, &n, 8);
    for (uint64_t i = 0; i < n; i++) gw_str(&w->kv, strs[i]);
    return gw_done(w);
}

int gguf_writer_tensor(struct gguf_writer *w, const char *name, uint32_t ggml_type, int n_dims,
                       const int64_t *ne, const void *data, uint64_t nbytes) {
    if (n_dims < 1 || n_dims > 4 || strlen(name) >= 128)
        return err("gguf writer: tensor %s: bad name or %d dims", name, n_dims);
    if (w->n_t == w->cap_t) {
        uint64_t cap = w->cap_t ? 2 * w->cap_t : 64;
        struct gw_tensor *nt = realloc(w->t, cap * sizeof *nt);
        if (!nt) return err("out of memory");
        w->t = nt;
        w->cap_t = cap;
    }
    struct gw_tensor *t = &w->t[w->n_t++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->type = ggml_type;
    t->n_dims = n_dims;
    for (int d = 0; d < 4; d++) t->ne[d] = d < n_dims ? ne[d] : 1;
    t->data = data;
    t->nbytes = nbytes;
    return 0;
}

int gguf_writer_tensor_fill(struct gguf_writer *w, const char *name, uint32_t ggml_type, int n_dims,
                            const int64_t *ne, uint64_t nbytes, gguf_fill_fn fill, void *ctx) {
    if (gguf_writer_tensor(w, name, ggml_type, n_dims, ne, NULL, nbytes)) return -1;
    struct gw_tensor *t = &w->t[w->n_t - 1];
    t->fill = fill;
    t->fill_ctx = ctx;
    t->fill_i = w->n_fill++;
    return 0;
}

/* a merged tensor's parts, each borrowed data or its own fill, made one after another */
struct gw_merged {
    int n;
    struct gw_tensor part[];
};

static int gw_merged_fill(void *ctx, uint64_t i, void *buf, uint64_t nbytes) {
    (void)i;
    (void)nbytes;
    const struct gw_merged *m = ctx;
    uint8_t *p = buf;
    for (int k = 0; k < m->n; k++) {
        const struct gw_tensor *t = &m->part[k];
        if (t->fill) {
            if (t->fill(t->fill_ctx, t->fill_i, p, t->nbytes)) return -1;
        } else {
            memcpy(p, t->data, t->nbytes);
        }
        p += t->nbytes;
    }
    return 0;
}

int gguf_writer_merge(struct gguf_writer *w, const char *const *names, int n, const char *name,
                      int n_dims, const int64_t *ne) {
    uint64_t at[64], bytes = 0;
    if (n < 1 || n > 64 || n_dims < 1 || n_dims > 4 || strlen(name) >= 128)
        return err("gguf writer: merging %d tensors into %s", n, name);
    for (int k = 0; k < n; k++) {
        at[k] = w->n_t;
        for (uint64_t i = 0; i < w->n_t; i++)
            if (!strcmp(w->t[i].name, names[k])) at[k] = i;
        if (at[k] == w->n_t) {
            if (k == 0) return 1;
            return err("gguf writer: %s is missing (merging into %s)", names[k], name);
        }
        if (w->t[at[k]].type != w->t[at[0]].type)
            return err("gguf writer: %s and %s have different types (merging into %s)",
                       names[0], names[k], name);
        bytes += w->t[at[k]].nbytes;
    }
    void **no = realloc(w->own, (size_t)(w->n_own + 1) * sizeof *no);
    if (!no) return err("out of memory");
    w->own = no;
    struct gw_merged *m = xmalloc(sizeof *m + (size_t)n * sizeof m->part[0], name);
    if (!m) return -1;
    w->own[w->n_own++] = m;
    m->n = n;
    for (int k = 0; k < n; k++) m->part[k] = w->t[at[k]];
    struct gw_tensor *t = &w->t[at[0]];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->n_dims = n_dims;
    for (int d = 0; d < 4; d++) t->ne[d] = d < n_dims ? ne[d] : 1;
    t->data = NULL;
    t->nbytes = bytes;
    t->fill = gw_merged_fill;
    t->fill_ctx = m;
    uint64_t keep = 0; /* drop the other parts, keeping the order */
    for (uint64_t i = 0; i < w->n_t; i++) {
        bool part = false;
        for (int k = 1; k < n; k++) part |= at[k] == i;
        if (!part) w->t[keep++] = w->t[i];
    }
    w->n_t = keep;
    return 0;
}

int gguf_writer_write(struct gguf_writer *w, const char *path) {
    const uint64_t align = 32;
    struct gw_buf h = {0};
    uint32_t magic = GGUF_MAGIC, version = 3;
    gw_put(&h, &magic, 4);
    gw_put(&h, &version, 4);
    gw_put(&h, &w->n_t, 8);
    gw_put(&h, &w->n_kv, 8);
    gw_put(&h, w->kv.p, w->kv.n);
    uint64_t off = 0;
    for (uint64_t i = 0; i < w->n_t; i++) {
        struct gw_tensor *t = &w->t[i];
        uint32_t nd = (uint32_t)t->n_dims;
        gw_str(&h, t->name);
        gw_put(&h, &nd, 4);
        for (int d = 0; d < t->n_dims; d++) {
            uint64_t ne = (uint64_t)t->ne[d];
            gw_put(&h, &ne, 8);
        }
        gw_put(&h, &t->type, 4);
        t->offset = off;
        gw_put(&h, &off, 8);
        off += (t->nbytes + align - 1) / align * align;
    }
    static const uint8_t zeros[32];
    gw_put(&h, zeros, (align - h.n % align) % align);
    if (h.oom) {
        free(h.p);
        return err("out of memory writing %s", path);
    }
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        free(h.p);
        return err("%s: cannot create: %s", tmp, strerror(errno));
    }
    bool ok = fwrite(h.p, 1, h.n, f) == h.n, filled = true;
    free(h.p);
    void *buf = NULL; /* the filled tensors' buffer, as large as the largest */
    uint64_t cap = 0;
    for (uint64_t i = 0; ok && filled && i < w->n_t; i++) {
        const struct gw_tensor *t = &w->t[i];
        const void *data = t->data;
        if (t->fill) {
            if (t->nbytes > cap) {
                free(buf);
                cap = t->nbytes;
                if (!(buf = xmalloc((size_t)cap, t->name))) {
                    filled = false;
                    break;
                }
            }
            if (t->fill(t->fill_ctx, t->fill_i, buf, t->nbytes)) {
                filled = false;
                break;
            }
            data = buf;
        }
        ok = fwrite(data, 1, t->nbytes, f) == t->nbytes;
        size_t pad = (size_t)((align - t->nbytes % align) % align);
        if (ok && pad) ok = fwrite(zeros, 1, pad, f) == pad;
    }
    free(buf);
    ok = ok && filled && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (fclose(f)) ok = false;
    if (!filled) { /* the fill said why */
        unlink(tmp);
        return -1;
    }
    if (!ok || rename(tmp, path)) {
        int e = errno;
        unlink(tmp);
        return err("%s: write failed: %s", path, strerror(e));
    }
    return 0;
}
