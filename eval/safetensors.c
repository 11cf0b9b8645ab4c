/* eval/safetensors.c: safetensors reader and writer (layout in safetensors.h).
 *
 * Reader: the 8-byte length is checked against the file before the header is touched, the header
 * is parsed by jansson from the mapping (length-delimited, no copy) with duplicate keys refused,
 * and every tensor entry is checked (dtype, shape, offsets, byte size, bounds, overlap) before a
 * data pointer is handed out. The parsed JSON stays alive and owns the name strings.
 * Writer: builds the header with jansson in the reference order (__metadata__, then tensors by
 * element size descending and name), pads it with spaces to a multiple of 8, and writes
 * PATH.tmp, fsync, rename. */
#include "eval/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernels/common.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; lowbit supports little-endian hosts only"
#endif

static const struct {
    const char *name;
    int bits;
} dtypes[SAFETENSORS_DTYPE_COUNT] = {
#define SAFETENSORS_ROW_(n, b) [SAFETENSORS_##n] = {#n, b},
    SAFETENSORS_DTYPES(SAFETENSORS_ROW_)
#undef SAFETENSORS_ROW_
};

const char *safetensors_dtype_name(enum safetensors_dtype t) {
    ASSERT((unsigned)t < SAFETENSORS_DTYPE_COUNT);
    return dtypes[t].name;
}

int safetensors_dtype_bits(enum safetensors_dtype t) {
    ASSERT((unsigned)t < SAFETENSORS_DTYPE_COUNT);
    return dtypes[t].bits;
}

int safetensors_dtype_from_name(const char *name) {
    for (int t = 0; t < SAFETENSORS_DTYPE_COUNT; t++)
        if (!strcmp(name, dtypes[t].name)) return t;
    return -1;
}

int safetensors_nbytes(enum safetensors_dtype t, int n_dims, const int64_t *shape, size_t *out) {
    if (n_dims < 0 || n_dims > SAFETENSORS_MAX_DIMS) return -1;
    uint64_t n = 1;
    bool empty = false;
    for (int i = 0; i < n_dims; i++) {
        if (shape[i] < 0) return -1;
        if (!shape[i]) empty = true;
    }
    if (empty) {
        *out = 0;
        return 0;
    }
    for (int i = 0; i < n_dims; i++) {
        if (n > UINT64_MAX / (uint64_t)shape[i]) return -1;
        n *= (uint64_t)shape[i];
    }
    const uint64_t bits = (uint64_t)safetensors_dtype_bits(t);
    if (n > UINT64_MAX / bits || (n * bits) % 8 || n * bits / 8 > SIZE_MAX) return -1;
    *out = (size_t)(n * bits / 8);
    return 0;
}

/* "[4, 8]" into buf, for messages */
static const char *shape_str(char *buf, size_t size, int n_dims, const int64_t *shape) {
    size_t k = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < n_dims && k < size; i++)
        k += (size_t)snprintf(buf + k, size - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < size) snprintf(buf + k, size - k, "]");
    return buf;
}

/* ===== reader ===== */

void safetensors_close(struct safetensors *st) {
    if (st->owns_map && st->map) munmap((void *)st->map, st->size);
    if (st->json) json_decref(st->json);
    free(st->tensors);
    free(st->meta);
    free(st->by_name);
    memset(st, 0, sizeof *st);
}

static int cmp_offset(const void *a, const void *b) {
    const struct safetensors_tensor *x = a, *y = b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int cmp_name(const void *a, const void *b) {
    const struct safetensors_tensor *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

/* a non-negative JSON integer, or -1 */
static int64_t json_u63(const json_t *v) {
    if (!json_is_integer(v)) return -1;
    json_int_t i = json_integer_value(v);
    return i < 0 ? -1 : (int64_t)i;
}

/* check one header entry `name: {dtype, shape, data_offsets}` against the data section
 * [data_start, data_start + data_size) and fill t */
static int parse_tensor(struct safetensors *st, const char *name, const json_t *v,
                        uint64_t data_start, uint64_t data_size, struct safetensors_tensor *t) {
    const char *p = st->path;
    if (!json_is_object(v))
        return err("%s: tensor '%s': header entry is not an object (expected {\"dtype\", "
                   "\"shape\", \"data_offsets\"})", p, name);
    const json_t *jd = json_object_get(v, "dtype"), *js = json_object_get(v, "shape"),
                 *jo = json_object_get(v, "data_offsets");
    if (!json_is_string(jd))
        return err("%s: tensor '%s': dtype is %s (expected a string such as \"F32\")", p, name,
                   jd ? "not a string" : "missing");
    int dt = safetensors_dtype_from_name(json_string_value(jd));
    if (dt < 0)
        return err("%s: tensor '%s': unknown dtype '%s' (expected one of F32, F16, BF16, F64, I8, "
                   "U8, I16, U16, I32, U32, I64, U64, BOOL, F8_E4M3, F8_E5M2, ...)", p, name,
                   json_string_value(jd));
    t->name = name;
    t->dtype = (enum safetensors_dtype)dt;
    if (!json_is_array(js))
        return err("%s: tensor '%s': shape is %s (expected an array of sizes)", p, name,
                   js ? "not an array" : "missing");
    if (json_array_size(js) > SAFETENSORS_MAX_DIMS)
        return err("%s: tensor '%s': %zu dimensions (lowbit reads at most %d)", p, name,
                   json_array_size(js), SAFETENSORS_MAX_DIMS);
    t->n_dims = (int)json_array_size(js);
    for (int i = 0; i < t->n_dims; i++) {
        t->shape[i] = json_u63(json_array_get(js, (size_t)i));
        if (t->shape[i] < 0)
            return err("%s: tensor '%s': shape element %d is not a non-negative integer", p, name,
                       i);
    }
    if (!json_is_array(jo) || json_array_size(jo) != 2)
        return err("%s: tensor '%s': data_offsets is %s (expected [begin, end])", p, name,
                   jo ? "not a pair" : "missing");
    int64_t begin = json_u63(json_array_get(jo, 0)), end = json_u63(json_array_get(jo, 1));
    if (begin < 0 || end < 0 || begin > end)
        return err("%s: tensor '%s': data_offsets must be two integers with 0 <= begin <= end",
                   p, name);
    char sh[160];
    size_t nbytes;
    if (safetensors_nbytes(t->dtype, t->n_dims, t->shape, &nbytes))
        return err("%s: tensor '%s': shape %s of %s has no valid byte size (overflow or partial "
                   "bytes)", p, name, shape_str(sh, sizeof sh, t->n_dims, t->shape),
                   dtypes[dt].name);
    if ((uint64_t)(end - begin) != nbytes)
        return err("%s: tensor '%s': shape %s of %s is %zu bytes but data_offsets [%lld, %lld] "
                   "span %lld (size and shape disagree)", p, name,
                   shape_str(sh, sizeof sh, t->n_dims, t->shape), dtypes[dt].name, nbytes,
                   (long long)begin, (long long)end, (long long)(end - begin));
    if ((uint64_t)end > data_size)
        return err("%s: tensor '%s': data_offsets [%lld, %lld] run past the end of the file (the "
                   "data section holds %llu bytes; truncated file?)", p, name, (long long)begin,
                   (long long)end, (unsigned long long)data_size);
    t->offset = data_start + (uint64_t)begin;
    t->data = st->map + t->offset;
    t->nbytes = nbytes;
    return 0;
}

/* parse st->map/st->size (already set); on error the caller closes st */
static int parse(struct safetensors *st) {
    const char *p = st->path;
    if (st->size < 8)
        return err("%s: %zu bytes is too short for a safetensors file (expected an 8-byte header "
                   "length, then a JSON header)", p, st->size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | st->map[i];
    st->header_len = n;
    if (n > SAFETENSORS_MAX_HEADER && n <= st->size - 8)
        return err("%s: header length %llu is over the %d-byte limit (not a safetensors file?)", p,
                   (unsigned long long)n, SAFETENSORS_MAX_HEADER);
    if (n > st->size - 8)
        return err("%s: header length %llu is larger than the file (%zu bytes after the 8-byte "
                   "length): truncated or not a safetensors file", p, (unsigned long long)n,
                   st->size - 8);
    json_error_t je;
    json_t *root = json_loadb((const char *)st->map + 8, (size_t)n, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return err("%s: bad JSON header at line %d, column %d: %s", p, je.line, je.column, je.text);
    st->json = root;
    if (!json_is_object(root))
        return err("%s: the JSON header is not an object (expected {\"name\": {...}, ...})", p);
    const uint64_t data_start = 8 + n, data_size = st->size - data_start;

    size_t n_entries = json_object_size(root);
    const json_t *jmeta = json_object_get(root, "__metadata__");
    if (jmeta) {
        if (!json_is_object(jmeta))
            return err("%s: __metadata__ is not an object (expected {\"key\": \"value\", ...})", p);
        n_entries--;
        st->meta = xcalloc(json_object_size(jmeta), sizeof *st->meta, "safetensors metadata");
        if (!st->meta) return -1;
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)jmeta, key, val) {
            if (!json_is_string(val))
                return err("%s: __metadata__ '%s' is not a string (metadata maps strings to "
                           "strings)", p, key);
            st->meta[st->n_meta].key = key;
            st->meta[st->n_meta++].value = json_string_value(val);
        }
    }
    if (n_entries > (size_t)INT32_MAX) return err("%s: %zu tensors is too many", p, n_entries);
    st->tensors = xcalloc(n_entries, sizeof *st->tensors, "safetensors tensor list");
    st->by_name = xcalloc(n_entries, sizeof *st->by_name, "safetensors tensor index");
    if (!st->tensors || !st->by_name) return -1;
    const char *name;
    json_t *val;
    json_object_foreach(root, name, val) {
        if (!strcmp(name, "__metadata__")) continue;
        if (parse_tensor(st, name, val, data_start, data_size, &st->tensors[st->n_tensors]))
            return -1;
        st->n_tensors++;
    }
    qsort(st->tensors, (size_t)st->n_tensors, sizeof *st->tensors, cmp_offset);
    uint64_t prev_end = 0;
    const char *prev = NULL;
    for (int i = 0; i < st->n_tensors; i++) {
        const struct safetensors_tensor *t = &st->tensors[i];
        if (t->nbytes && prev && t->offset < prev_end)
            return err("%s: tensors '%s' and '%s' overlap (data_offsets must not share bytes)", p,
                       prev, t->name);
        if (t->nbytes) {
            prev_end = t->offset + t->nbytes;
            prev = t->name;
        }
        st->by_name[i] = t;
    }
    qsort(st->by_name, (size_t)st->n_tensors, sizeof *st->by_name, cmp_name);
    return 0;
}

int safetensors_parse(struct safetensors *st, const char *path, const void *map, size_t size) {
    memset(st, 0, sizeof *st);
    snprintf(st->path, sizeof st->path, "%s", path);
    st->map = map;
    st->size = size;
    if (parse(st)) {
        safetensors_close(st);
        return -1;
    }
    return 0;
}

int safetensors_open(struct safetensors *st, const char *path) {
    memset(st, 0, sizeof *st);
    snprintf(st->path, sizeof st->path, "%s", path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return err("cannot open %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb)) {
        int e = errno;
        close(fd);
        return err("cannot stat %s: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return err("%s is not a regular file (expected a .safetensors file)", path);
    }
    st->size = (size_t)sb.st_size;
    if (st->size >= 8) {
        void *m = mmap(NULL, st->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            int e = errno;
            close(fd);
            return err("cannot map %s (%zu bytes): %s", path, st->size, strerror(e));
        }
        st->map = m;
        st->owns_map = true;
    }
    close(fd);
    if (parse(st)) {
        safetensors_close(st);
        return -1;
    }
    return 0;
}

const struct safetensors_tensor *safetensors_find(const struct safetensors *st, const char *name) {
    struct safetensors_tensor key = {.name = name};
    const struct safetensors_tensor *kp = &key;
    if (!st->n_tensors) return NULL;
    const struct safetensors_tensor **hit =
        bsearch(&kp, st->by_name, (size_t)st->n_tensors, sizeof *st->by_name, cmp_name);
    return hit ? *hit : NULL;
}

const char *safetensors_meta(const struct safetensors *st, const char *key) {
    for (int i = 0; i < st->n_meta; i++)
        if (!strcmp(st->meta[i].key, key)) return st->meta[i].value;
    return NULL;
}

/* ===== writer ===== */

int safetensors_writer_spool(struct safetensors_writer *w, const char *near) {
    if (w->spooling) return 0;
    char path[4200];
    if ((size_t)snprintf(path, sizeof path, "%s.spool-XXXXXX", near) >= sizeof path)
        return err("%s: path too long for a spool file", near);
    const int fd = mkstemp(path);
    if (fd < 0) return err("cannot create the spool file %s: %s", path, strerror(errno));
    unlink(path); /* gone with the process, whatever happens */
    w->spool_fd = fd;
    w->spool_len = 0;
    w->spooling = true;
    return 0;
}

void safetensors_writer_release(struct safetensors_writer *w) {
    if (w->spooling) close(w->spool_fd);
    for (int i = 0; i < w->n_tensors; i++) free(w->tensors[i].name);
    for (int i = 0; i < w->n_meta; i++) {
        free(w->meta[i].key);
        free(w->meta[i].value);
    }
    free(w->tensors);
    free(w->meta);
    memset(w, 0, sizeof *w);
}

static char *dup_str(const char *s, const char *what) {
    size_t n = strlen(s) + 1;
    char *d = xmalloc(n, what);
    if (d) memcpy(d, s, n);
    return d;
}

/* grow *arr (elements of size es) so that it holds at least n + 1 */
static int grow(void **arr, int *cap, int n, size_t es, const char *what) {
    if (n < *cap) return 0;
    int nc = *cap ? *cap * 2 : 16;
    size_t bytes;
    if (nc <= 0 || mul_ok((size_t)nc, es, &bytes)) return err("out of memory: too many %s", what);
    void *p = realloc(*arr, bytes);
    if (!p) return err("out of memory: %zu bytes for %s", bytes, what);
    *arr = p;
    *cap = nc;
    return 0;
}

/* append n bytes to the spool file */
static int spool_put(struct safetensors_writer *w, const void *data, size_t n, const char *name) {
    const uint8_t *p = data;
    while (n) {
        const ssize_t k = pwrite(w->spool_fd, p, n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n,
                                 (off_t)w->spool_len);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0)
            return err("safetensors writer: tensor '%s': cannot write the spool file: %s", name,
                       k < 0 ? strerror(errno) : "no progress");
        p += k;
        n -= (size_t)k;
        w->spool_len += k;
    }
    return 0;
}

int safetensors_writer_add(struct safetensors_writer *w, const char *name, const char *dtype,
                           int n_dims, const int64_t *shape, const void *data, size_t nbytes) {
    if (!strcmp(name, "__metadata__"))
        return err("safetensors writer: '__metadata__' is reserved and cannot name a tensor");
    int dt = safetensors_dtype_from_name(dtype);
    if (dt < 0)
        return err("safetensors writer: tensor '%s': unknown dtype '%s' (expected F32, F16, BF16, "
                   "I8, U8, I32, ...)", name, dtype);
    if (n_dims < 0 || n_dims > SAFETENSORS_MAX_DIMS)
        return err("safetensors writer: tensor '%s': %d dimensions (expected 0 to %d)", name,
                   n_dims, SAFETENSORS_MAX_DIMS);
    size_t need;
    char sh[160];
    if (safetensors_nbytes((enum safetensors_dtype)dt, n_dims, shape, &need))
        return err("safetensors writer: tensor '%s': shape %s of %s has no valid byte size", name,
                   shape_str(sh, sizeof sh, n_dims, shape), dtype);
    if (need != nbytes)
        return err("safetensors writer: tensor '%s': %zu bytes given, shape %s of %s needs %zu",
                   name, nbytes, shape_str(sh, sizeof sh, n_dims, shape), dtype, need);
    if (nbytes && !data) return err("safetensors writer: tensor '%s': no data", name);
    for (int i = 0; i < w->n_tensors; i++)
        if (!strcmp(w->tensors[i].name, name))
            return err("safetensors writer: tensor '%s' added twice", name);
    if (grow((void **)&w->tensors, &w->cap_tensors, w->n_tensors, sizeof *w->tensors,
             "safetensors writer tensors"))
        return -1;
    struct safetensors_writer_tensor *t = &w->tensors[w->n_tensors];
    memset(t, 0, sizeof *t);
    if (!(t->name = dup_str(name, "tensor name"))) return -1;
    t->dtype = (enum safetensors_dtype)dt;
    t->n_dims = n_dims;
    for (int i = 0; i < n_dims; i++) t->shape[i] = shape[i];
    t->data = data;
    t->nbytes = nbytes;
    if (w->spooling) {
        t->data = NULL;
        t->spool_off = w->spool_len;
        if (spool_put(w, data, nbytes, name)) {
            free(t->name);
            return -1;
        }
    }
    w->n_tensors++;
    return 0;
}

int safetensors_writer_set_meta(struct safetensors_writer *w, const char *key, const char *value) {
    char *v = dup_str(value, "metadata value");
    if (!v) return -1;
    for (int i = 0; i < w->n_meta; i++)
        if (!strcmp(w->meta[i].key, key)) {
            free(w->meta[i].value);
            w->meta[i].value = v;
            return 0;
        }
    char *k = dup_str(key, "metadata key");
    if (!k || grow((void **)&w->meta, &w->cap_meta, w->n_meta, sizeof *w->meta,
                   "safetensors metadata")) {
        free(k);
        free(v);
        return -1;
    }
    w->meta[w->n_meta].key = k;
    w->meta[w->n_meta++].value = v;
    return 0;
}

/* reference order: element size descending, then name */
static int cmp_layout(const void *a, const void *b) {
    const struct safetensors_writer_tensor *const *x = a, *const *y = b;
    int bx = safetensors_dtype_bits((*x)->dtype), by = safetensors_dtype_bits((*y)->dtype);
    if (bx != by) return bx > by ? -1 : 1;
    return strcmp((*x)->name, (*y)->name);
}

static int write_all(int fd, const void *buf, size_t n, const char *path) {
    const uint8_t *p = buf;
    while (n) {
        ssize_t k = write(fd, p, n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0)
            return err("cannot write %s: %s", path, k < 0 ? strerror(errno) : "no progress");
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* a spooled tensor's bytes from the spool file into fd, 8 MiB at a time */
static int copy_spooled(const struct safetensors_writer *w,
                        const struct safetensors_writer_tensor *t, int fd, const char *path) {
    enum { CHUNK = 8 << 20 };
    if (!t->nbytes) return 0;
    if (!w->spooling) return err("%s: tensor '%s' has no data", path, t->name);
    uint8_t *buf = xmalloc(t->nbytes < CHUNK ? t->nbytes : CHUNK, "a spool copy buffer");
    if (!buf) return -1;
    int ret = 0;
    for (size_t done = 0; done < t->nbytes && !ret;) {
        const size_t n = t->nbytes - done < CHUNK ? t->nbytes - done : CHUNK;
        const ssize_t k = pread(w->spool_fd, buf, n, (off_t)(t->spool_off + (int64_t)done));
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            ret = err("%s: cannot read tensor '%s' back from the spool file: %s", path, t->name,
                      k < 0 ? strerror(errno) : "short file");
            break;
        }
        ret = write_all(fd, buf, (size_t)k, path);
        done += (size_t)k;
    }
    free(buf);
    return ret;
}

/* the header JSON (compact), unpadded; owned (free with free) or NULL with a message */
static char *build_header(const struct safetensors_writer *w,
                          const struct safetensors_writer_tensor **order) {
    char *out = NULL;
    json_t *root = json_object();
    if (!root) goto oom;
    if (w->n_meta) {
        json_t *meta = json_object();
        if (json_object_set_new(root, "__metadata__", meta)) goto oom;
        for (int i = 0; i < w->n_meta; i++) {
            json_t *s = json_string(w->meta[i].value);
            if (!s) {
                err("safetensors writer: metadata '%s': value is not valid UTF-8", w->meta[i].key);
                goto out;
            }
            if (json_object_set_new(meta, w->meta[i].key, s)) {
                err("safetensors writer: metadata key '%s' is not valid UTF-8", w->meta[i].key);
                goto out;
            }
        }
    }
    uint64_t off = 0;
    for (int i = 0; i < w->n_tensors; i++) {
        const struct safetensors_writer_tensor *t = order[i];
        json_t *e = json_object(), *shape = json_array(), *offs = json_array();
        if (!e || !shape || !offs) {
            json_decref(e);
            json_decref(shape);
            json_decref(offs);
            goto oom;
        }
        int bad = json_object_set_new(e, "dtype", json_string(safetensors_dtype_name(t->dtype)));
        bad |= json_object_set_new(e, "shape", shape);
        bad |= json_object_set_new(e, "data_offsets", offs);
        for (int d = 0; d < t->n_dims; d++)
            bad |= json_array_append_new(shape, json_integer(t->shape[d]));
        bad |= json_array_append_new(offs, json_integer((json_int_t)off));
        bad |= json_array_append_new(offs, json_integer((json_int_t)(off + t->nbytes)));
        if (bad) {
            json_decref(e);
            goto oom;
        }
        if (json_object_set_new(root, t->name, e)) {
            err("safetensors writer: tensor name '%s' is not valid UTF-8", t->name);
            goto out;
        }
        off += t->nbytes;
    }
    out = json_dumps(root, JSON_COMPACT);
    if (!out) goto oom;
    goto out;
oom:
    err("out of memory building a safetensors header");
out:
    json_decref(root);
    return out;
}

int safetensors_writer_write(const struct safetensors_writer *w, const char *path) {
    int ret = -1, fd = -1;
    bool created = false;
    char tmp[4096];
    char *json = NULL;
    const struct safetensors_writer_tensor **order = NULL;
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
        return err("%s: path too long", path);
    order = xcalloc((size_t)w->n_tensors, sizeof *order, "safetensors writer order");
    if (!order) goto out;
    for (int i = 0; i < w->n_tensors; i++) order[i] = &w->tensors[i];
    qsort(order, (size_t)w->n_tensors, sizeof *order, cmp_layout);
    if (!(json = build_header(w, order))) goto out;
    const size_t len = strlen(json), padded = (len + 7) / 8 * 8;
    if (padded > SAFETENSORS_MAX_HEADER) {
        err("%s: the header would be %zu bytes (the format allows %d)", path, padded,
            SAFETENSORS_MAX_HEADER);
        goto out;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        err("cannot create %s: %s", tmp, strerror(errno));
        goto out;
    }
    created = true;
    uint8_t n8[8];
    for (int i = 0; i < 8; i++) n8[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    static const char spaces[8] = "        ";
    if (write_all(fd, n8, 8, tmp) || write_all(fd, json, len, tmp) ||
        write_all(fd, spaces, padded - len, tmp))
        goto out;
    for (int i = 0; i < w->n_tensors; i++)
        if (order[i]->data ? write_all(fd, order[i]->data, order[i]->nbytes, tmp)
                           : copy_spooled(w, order[i], fd, tmp))
            goto out;
    if (fsync(fd)) {
        err("cannot sync %s: %s", tmp, strerror(errno));
        goto out;
    }
    int rc = close(fd);
    fd = -1;
    if (rc) {
        err("cannot write %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (rename(tmp, path)) {
        err("cannot rename %s to %s: %s", tmp, path, strerror(errno));
        goto out;
    }
    /* make the rename durable: sync the directory (best effort; some filesystems refuse) */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        slash == dir ? (void)(slash[1] = 0) : (void)(*slash = 0);
    else
        snprintf(dir, sizeof dir, ".");
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    ret = 0;
out:
    if (fd >= 0) close(fd);
    if (ret && created) unlink(tmp);
    free(json);
    free(order);
    return ret;
}
