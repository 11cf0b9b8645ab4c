/* quant/imatrix.c: importance matrices (imatrix.h): collection, llama.cpp's file formats.
 *
 * Collection runs forward() over chunks of the text with its per-matmul hook, which hands every
 * layer matmul's input [T][K] to imatrix_accumulate under the weight's name (the output layer is
 * not collected, as in llama.cpp's default). Sources:
 * llama.cpp de3ff81 tools/imatrix/imatrix.cpp (collect_imatrix, save_imatrix) and
 * common/imatrix-loader.cpp (both file formats). */
#include "quant/imatrix.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eval/forward.h"
#include "eval/gguf.h"
#include "kernels/matmul.h"

void imatrix_release(struct imatrix *im) {
    for (int i = 0; i < im->n; i++) {
        free(im->e[i].name);
        free(im->e[i].sum2);
        free(im->e[i].count);
    }
    free(im->e);
    for (int i = 0; i < im->n_datasets; i++) free(im->datasets[i]);
    free(im->datasets);
    memset(im, 0, sizeof *im);
}

const struct imatrix_entry *imatrix_find(const struct imatrix *im, const char *name) {
    for (int i = 0; i < im->n; i++)
        if (!strcmp(im->e[i].name, name)) return &im->e[i];
    return NULL;
}

static struct imatrix_entry *entry_new(struct imatrix *im, const char *name, int64_t n_cols,
                                       int n_mat) {
    if (im->n == im->cap) {
        int cap = im->cap ? 2 * im->cap : 64;
        struct imatrix_entry *e = realloc(im->e, (size_t)cap * sizeof *e);
        if (!e) return NULL;
        im->e = e;
        im->cap = cap;
    }
    struct imatrix_entry *e = &im->e[im->n];
    memset(e, 0, sizeof *e);
    e->name = strdup(name);
    e->n_cols = n_cols;
    e->n_mat = n_mat;
    e->sum2 = calloc((size_t)(n_cols * n_mat), sizeof *e->sum2);
    e->count = calloc((size_t)n_mat, sizeof *e->count);
    if (!e->name || !e->sum2 || !e->count) {
        free(e->name);
        free(e->sum2);
        free(e->count);
        err("out of memory for the importance matrix of %s", name);
        return NULL;
    }
    im->n++;
    return e;
}

static int add_dataset(struct imatrix *im, const char *name) {
    char **d = realloc(im->datasets, (size_t)(im->n_datasets + 1) * sizeof *d);
    if (!d) return err("out of memory");
    im->datasets = d;
    if (!(d[im->n_datasets] = strdup(name))) return err("out of memory");
    im->n_datasets++;
    return 0;
}

int imatrix_accumulate(struct imatrix *im, const char *name, const float *x, int T,
                       int64_t n_cols) {
    struct imatrix_entry *e = (struct imatrix_entry *)imatrix_find(im, name);
    if (!e && !(e = entry_new(im, name, n_cols, 1))) return -1;
    if (e->n_cols != n_cols || e->n_mat != 1)
        return err("importance matrix of %s: %lld columns, got rows of %lld", name,
                   (long long)e->n_cols, (long long)n_cols);
#pragma omp parallel for schedule(static) if (n_cols * T >= (1 << 16))
    for (int64_t j = 0; j < n_cols; j++) {
        double s = 0;
        for (int t = 0; t < T; t++) {
            const double v = x[(size_t)t * (size_t)n_cols + (size_t)j];
            s += v * v;
        }
        e->sum2[j] += s;
    }
    e->count[0] += T;
    return 0;
}

int imatrix_weights(const struct imatrix *im, const char *name, int64_t n_cols, int n_mat,
                    float **w) {
    *w = NULL;
    const struct imatrix_entry *e = imatrix_find(im, name);
    if (!e) return 0;
    if (e->n_cols * e->n_mat != n_cols * n_mat)
        return err("imatrix size %lld is different from tensor size %lld for %s",
                   (long long)(e->n_cols * e->n_mat), (long long)(n_cols * n_mat), name);
    float *v = malloc((size_t)(n_cols * n_mat) * sizeof *v);
    if (!v) return err("out of memory");
    for (int k = 0; k < e->n_mat; k++)
        for (int64_t j = 0; j < e->n_cols; j++) {
            const double s = e->sum2[k * e->n_cols + j];
            /* GGUF: Σx²/count (1 where nothing was seen); legacy: stored already scaled by
             * ncall/count, divided by ncall (the "count" read from the file) */
            v[k * e->n_cols + j] = e->count[k] > 0 ? (float)(float)s / (float)e->count[k]
                                   : im->legacy ? (float)s
                                                : 1.0f;
        }
    *w = v;
    return 1;
}

/* ===== collection ===== */

/* forward()'s hook: every layer matmul's input, accumulated under the weight's name */
static int collect_hook(void *ctx, const struct tensor *w, const float *x, int T) {
    return imatrix_accumulate(ctx, w->name, x, T, w->ne[0]);
}

int imatrix_collect(struct imatrix *im, const struct model *m, const int *tokens, int n_tokens,
                    int n_ctx, int bos, const char *dataset, bool quiet) {
    const int n_chunk = n_ctx > 0 ? n_tokens / n_ctx : 0;
    if (n_chunk < 1)
        return err("imatrix: %d tokens make no chunk of %d (need at least %d tokens of text)",
                   n_tokens, n_ctx, n_ctx);
    if (im->chunk_size && im->chunk_size != n_ctx)
        return err("imatrix: adding chunks of %d tokens to a matrix made with %d", n_ctx,
                   im->chunk_size);
    struct fwd_state s;
    if (fwd_init(&s, m, n_ctx, n_ctx)) return -1;
    s.mm_hook = collect_hook;
    s.mm_hook_ctx = im;
    int *chunk = malloc((size_t)n_ctx * sizeof *chunk), rc = chunk ? 0 : err("out of memory");
    const double t0 = now_s();
    for (int i = 0; !rc && i < n_chunk; i++) {
        memcpy(chunk, tokens + (size_t)i * n_ctx, (size_t)n_ctx * sizeof *chunk);
        if (bos >= 0) chunk[0] = bos;
        fwd_truncate(&s, 0);
        rc = forward(&s, chunk, n_ctx, NULL, false);
        im->chunk_count++;
        if (!quiet && isatty(2))
            fprintf(stderr, "\rimatrix: chunk %d/%d (%.1f s)", i + 1, n_chunk, now_s() - t0);
    }
    if (!quiet)
        fprintf(stderr, "%simatrix: %d chunks of %d tokens in %.1f s\n", isatty(2) ? "\n" : "",
                n_chunk, n_ctx, now_s() - t0);
    im->chunk_size = n_ctx;
    if (!rc && dataset) rc = add_dataset(im, dataset);
    free(chunk);
    fwd_release(&s);
    return rc;
}

/* ===== files ===== */

static int cmp_entry(const void *a, const void *b) {
    return strcmp(((const struct imatrix_entry *)a)->name, ((const struct imatrix_entry *)b)->name);
}

int imatrix_save(const struct imatrix *im, const char *path) {
    struct gguf_writer *w = gguf_writer_new();
    struct imatrix_entry *e = malloc((size_t)(im->n + 1) * sizeof *e);
    float **bufs = calloc((size_t)(2 * im->n + 1), sizeof *bufs);
    int rc = w && e && bufs ? 0 : err("out of memory");
    if (!rc) {
        memcpy(e, im->e, (size_t)im->n * sizeof *e);
        qsort(e, (size_t)im->n, sizeof *e, cmp_entry); /* deterministic order, as llama.cpp */
        rc = gguf_writer_str(w, "general.type", "imatrix") ||
             gguf_writer_arr_str(w, "imatrix.datasets", (const char *const *)im->datasets,
                                 (uint64_t)im->n_datasets) ||
             gguf_writer_u32(w, "imatrix.chunk_count", (uint32_t)im->chunk_count) ||
             gguf_writer_u32(w, "imatrix.chunk_size", (uint32_t)im->chunk_size);
    }
    char name[160];
    for (int i = 0; !rc && i < im->n; i++) {
        const int64_t nv = e[i].n_cols * e[i].n_mat;
        float *s2 = bufs[2 * i] = malloc((size_t)nv * sizeof(float));
        float *cn = bufs[2 * i + 1] = malloc((size_t)e[i].n_mat * sizeof(float));
        if (!s2 || !cn) {
            rc = err("out of memory");
            break;
        }
        for (int64_t j = 0; j < nv; j++) s2[j] = (float)e[i].sum2[j];
        for (int k = 0; k < e[i].n_mat; k++) cn[k] = (float)e[i].count[k];
        const int64_t ne_s[2] = {e[i].n_cols, e[i].n_mat}, ne_c[2] = {1, e[i].n_mat};
        const int nd = e[i].n_mat > 1 ? 2 : 1; /* ggml_n_dims: trailing 1s dropped */
        snprintf(name, sizeof name, "%s.in_sum2", e[i].name);
        rc = gguf_writer_tensor(w, name, 0, nd, ne_s, s2, (uint64_t)nv * 4);
        snprintf(name, sizeof name, "%s.counts", e[i].name);
        if (!rc) rc = gguf_writer_tensor(w, name, 0, nd, ne_c, cn, (uint64_t)e[i].n_mat * 4);
    }
    if (!rc) rc = gguf_writer_write(w, path);
    for (int i = 0; bufs && i < 2 * im->n; i++) free(bufs[i]);
    free(bufs);
    free(e);
    gguf_writer_free(w);
    return rc ? -1 : 0;
}

static int load_legacy(struct imatrix *im, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return err("%s: cannot open: %s", path, strerror(errno));
    int32_t n_entries = 0, rc = 0;
    if (fread(&n_entries, 4, 1, f) != 1 || n_entries < 1 || n_entries > 1000000)
        rc = err("%s: neither a GGUF imatrix nor a legacy .dat (bad entry count)", path);
    char name[4096];
    for (int i = 0; !rc && i < n_entries; i++) {
        int32_t len = 0, ncall = 0, nval = 0;
        if (fread(&len, 4, 1, f) != 1 || len < 1 || len >= (int32_t)sizeof name ||
            fread(name, 1, (size_t)len, f) != (size_t)len || fread(&ncall, 4, 1, f) != 1 ||
            fread(&nval, 4, 1, f) != 1 || nval < 1 || nval > (1 << 28)) {
            rc = err("%s: legacy imatrix entry %d is truncated or malformed", path, i + 1);
            break;
        }
        name[len] = 0;
        struct imatrix_entry *e = entry_new(im, name, nval, 1);
        float *v = malloc((size_t)nval * sizeof *v);
        if (!e || !v || fread(v, 4, (size_t)nval, f) != (size_t)nval) {
            free(v);
            rc = err("%s: legacy imatrix entry %s is truncated", path, name);
            break;
        }
        for (int j = 0; j < nval; j++) e->sum2[j] = v[j];
        e->count[0] = ncall;
        free(v);
    }
    int32_t chunks = 0, len = 0;
    if (!rc && fread(&chunks, 4, 1, f) == 1) {
        im->chunk_count = chunks;
        if (fread(&len, 4, 1, f) == 1 && len > 0 && len < (int32_t)sizeof name &&
            fread(name, 1, (size_t)len, f) == (size_t)len) {
            name[len] = 0;
            rc = add_dataset(im, name);
        }
    }
    fclose(f);
    im->legacy = true;
    return rc;
}

int imatrix_load(struct imatrix *im, const char *path) {
    memset(im, 0, sizeof *im);
    FILE *f = fopen(path, "rb");
    if (!f) return err("%s: cannot open: %s", path, strerror(errno));
    char magic[4] = {0};
    const bool is_gguf = fread(magic, 1, 4, f) == 4 && !memcmp(magic, "GGUF", 4);
    fclose(f);
    if (!is_gguf) {
        if (load_legacy(im, path)) {
            imatrix_release(im);
            return -1;
        }
        return 0;
    }
    struct gguf_file g;
    if (gguf_open(&g, path)) return -1;
    int rc = 0;
    int64_t v;
    if (gguf_get_int(&g, "imatrix.chunk_count", &v) == 0) im->chunk_count = (int)v;
    if (gguf_get_int(&g, "imatrix.chunk_size", &v) == 0) im->chunk_size = (int)v;
    const struct gguf_kv *ds = gguf_find(&g, "imatrix.datasets");
    if (!ds || ds->type != GGUF_TYPE_ARRAY || !gguf_find(&g, "imatrix.chunk_count") ||
        !gguf_find(&g, "imatrix.chunk_size"))
        rc = err("%s: missing imatrix metadata (imatrix.datasets, chunk_count, chunk_size)", path);
    for (uint64_t i = 0; !rc && ds->v.arr.type == GGUF_TYPE_STRING && i < ds->v.arr.n; i++) {
        char name[4096];
        snprintf(name, sizeof name, "%.*s", (int)ds->v.arr.strs[i].len, ds->v.arr.strs[i].p);
        rc = add_dataset(im, name);
    }
    /* pair NAME.in_sum2 with NAME.counts */
    for (uint64_t i = 0; !rc && i < g.n_tensors; i++) {
        const struct gguf_tensor_info *ti = &g.ti[i];
        const char *suf = ".in_sum2";
        const size_t ls = strlen(suf);
        if (ti->name.len <= ls || memcmp(ti->name.p + ti->name.len - ls, suf, ls)) continue;
        char base[160], cname[176];
        snprintf(base, sizeof base, "%.*s", (int)(ti->name.len - ls), ti->name.p);
        snprintf(cname, sizeof cname, "%s.counts", base);
        const struct gguf_tensor_info *ci = NULL;
        for (uint64_t j = 0; j < g.n_tensors; j++)
            if (g.ti[j].name.len == strlen(cname) && !memcmp(g.ti[j].name.p, cname, strlen(cname)))
                ci = &g.ti[j];
        if (!ci) {
            rc = err("%s: mismatched sums and counts for %s", path, base);
            break;
        }
        if (ti->ggml_type != 0 || ci->ggml_type != 0) {
            rc = err("%s: sums and counts for %s must be F32", path, base);
            break;
        }
        const int64_t n_mat = ci->ne[0] * ci->ne[1] * ci->ne[2] * ci->ne[3];
        const int64_t nv = ti->ne[0] * ti->ne[1] * ti->ne[2] * ti->ne[3];
        if (n_mat < 1 || nv % n_mat) {
            rc = err("%s: %s has %lld sums for %lld counts", path, base, (long long)nv,
                     (long long)n_mat);
            break;
        }
        struct imatrix_entry *e = entry_new(im, base, nv / n_mat, (int)n_mat);
        if (!e) {
            rc = -1;
            break;
        }
        const float *s2 = (const float *)(g.map + g.data_offset + ti->offset);
        const float *cn = (const float *)(g.map + g.data_offset + ci->offset);
        for (int64_t j = 0; j < nv; j++) e->sum2[j] = s2[j];
        for (int64_t k = 0; k < n_mat; k++) e->count[k] = lround(cn[k]);
    }
    for (int i = 0; !rc && i < im->n; i++) /* llama-quantize refuses non-finite values */
        for (int64_t j = 0; j < im->e[i].n_cols * im->e[i].n_mat; j++)
            if (!isfinite(im->e[i].sum2[j])) {
                rc = err("%s: imatrix contains a non-finite value in %s", path, im->e[i].name);
                break;
            }
    gguf_close(&g);
    if (rc) imatrix_release(im);
    return rc;
}
