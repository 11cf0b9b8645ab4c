/* quant/imatrix.c: importance matrices (imatrix.h): collection, llama.cpp's file formats.
 *
 * Collection replays the decoder of eval/forward.c one layer at a time (forward() exposes no
 * per-matmul hook), taking every matmul input on the way: the rope tables, caches and scratch
 * come from fwd_init, and the arithmetic repeats forward.c's (RMSNorm in double, rotary pairs by
 * m->cfg.rope_style, causal GQA softmax in fp32, SwiGLU), so the activations are those of
 * forward(); tests/test_quants.c checks the replay's logits against forward()'s. Sources:
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

static void rmsnorm(float *out, const float *x, const float *w, int T, int n, float eps) {
#pragma omp parallel for schedule(static) if ((size_t)T * n >= (1 << 16))
    for (int t = 0; t < T; t++) {
        const float *xr = x + (size_t)t * n;
        float *o = out + (size_t)t * n;
        double ss = 0;
        for (int i = 0; i < n; i++) ss += (double)xr[i] * xr[i];
        const float scale = (float)(1.0 / sqrt(ss / n + eps));
        for (int i = 0; i < n; i++) o[i] = xr[i] * scale * w[i];
    }
}

static void add_bias(float *y, const struct tensor *b, int T, int n) {
    if (!b->data) return;
    const float *bv = b->data;
    for (int t = 0; t < T; t++)
        for (int i = 0; i < n; i++) y[(size_t)t * n + i] += bv[i];
}

static void rope(float *x, int T, int n_heads, int hd, const struct fwd_state *s,
                 enum rope_style style) {
    const int half = hd / 2;
    for (int t = 0; t < T; t++) {
        const float *cs = s->rope_cos + (size_t)t * half, *sn = s->rope_sin + (size_t)t * half;
        for (int h = 0; h < n_heads; h++) {
            float *v = x + ((size_t)t * n_heads + h) * hd;
            for (int i = 0; i < half; i++) {
                const int a = style == ROPE_NORM ? 2 * i : i;
                const int b = style == ROPE_NORM ? 2 * i + 1 : i + half;
                const float x0 = v[a], x1 = v[b];
                v[a] = x0 * cs[i] - x1 * sn[i];
                v[b] = x0 * sn[i] + x1 * cs[i];
            }
        }
    }
}

static float dot8(const float *a, const float *b, int n) {
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += a[i + j] * b[i + j];
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

/* causal attention of T positions from 0 over k/v [T][kvd] into out [T][qd] */
static int attend(const struct model_config *c, const float *q, const float *k, const float *v,
                  float *out, int T) {
    const int hd = c->head_dim, nh = c->n_heads, g = c->n_heads / c->n_kv_heads;
    const size_t kvd = (size_t)c->n_kv_heads * hd, qd = (size_t)nh * hd;
    const float scale = 1.0f / sqrtf((float)hd);
    int bad = 0;
#pragma omp parallel reduction(| : bad)
    {
        float *sc = malloc((size_t)T * sizeof *sc);
        if (!sc) bad = 1;
#pragma omp for schedule(dynamic, 4) collapse(2)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < nh; h++) {
                if (!sc) continue;
                const float *qr = q + (size_t)t * qd + (size_t)h * hd;
                const size_t ko = (size_t)(h / g) * hd;
                float mx = -INFINITY, sum = 0;
                for (int j = 0; j <= t; j++) {
                    sc[j] = dot8(qr, k + (size_t)j * kvd + ko, hd) * scale;
                    if (sc[j] > mx) mx = sc[j];
                }
                for (int j = 0; j <= t; j++) {
                    sc[j] = expf(sc[j] - mx);
                    sum += sc[j];
                }
                const float inv = 1.0f / sum;
                float *o = out + (size_t)t * qd + (size_t)h * hd;
                for (int i = 0; i < hd; i++) o[i] = 0;
                for (int j = 0; j <= t; j++) {
                    const float p = sc[j] * inv;
                    const float *vr = v + (size_t)j * kvd + ko;
                    for (int i = 0; i < hd; i++) o[i] += p * vr[i];
                }
            }
        free(sc);
    }
    return bad ? err("out of memory for attention scores") : 0;
}

/* one chunk of T tokens from position 0; accumulates every blk.* matmul input. With logits
 * (T*vocab floats) also computes the output layer (tests compare it with forward()). */
static int replay_chunk(struct imatrix *im, struct fwd_state *s, const int *tok, int T,
                        float *logits) {
    const struct model *m = s->m;
    const struct model_config *c = &m->cfg;
    const int D = c->dim, H = c->hidden_dim, hd = c->head_dim;
    const size_t qd = (size_t)c->n_heads * hd, kvd = (size_t)c->n_kv_heads * hd;
    for (int t = 0; t < T; t++) tensor_row_to_f32(&m->tok_embd, tok[t], s->x + (size_t)t * D);
#define ACC(w, x, n) \
    if (imatrix_accumulate(im, (w).name, (x), T, (n))) return -1
    for (int l = 0; l < c->n_layers; l++) {
        const struct layer *L = &m->layers[l];
        rmsnorm(s->xn, s->x, L->attn_norm.data, T, D, c->norm_eps);
        ACC(L->wq, s->xn, D);
        ACC(L->wk, s->xn, D);
        ACC(L->wv, s->xn, D);
        matmul(s->q, s->xn, &L->wq, T);
        matmul(s->k, s->xn, &L->wk, T);
        matmul(s->v, s->xn, &L->wv, T);
        add_bias(s->q, &L->bq, T, (int)qd);
        add_bias(s->k, &L->bk, T, (int)kvd);
        add_bias(s->v, &L->bv, T, (int)kvd);
        rope(s->q, T, c->n_heads, hd, s, c->rope_style);
        rope(s->k, T, c->n_kv_heads, hd, s, c->rope_style);
        if (attend(c, s->q, s->k, s->v, s->att_out, T)) return -1;
        ACC(L->wo, s->att_out, (int64_t)qd);
        matmul(s->xn, s->att_out, &L->wo, T);
        for (size_t i = 0; i < (size_t)T * D; i++) s->x[i] += s->xn[i];
        rmsnorm(s->xn, s->x, L->ffn_norm.data, T, D, c->norm_eps);
        ACC(L->w_gate, s->xn, D);
        ACC(L->w_up, s->xn, D);
        matmul(s->gate, s->xn, &L->w_gate, T);
        matmul(s->up, s->xn, &L->w_up, T);
        for (size_t j = 0; j < (size_t)T * H; j++) {
            const float gv = s->gate[j];
            s->gate[j] = gv / (1.0f + expf(-gv)) * s->up[j];
        }
        ACC(L->w_down, s->gate, H);
        matmul(s->xn, s->gate, &L->w_down, T);
        for (size_t i = 0; i < (size_t)T * D; i++) s->x[i] += s->xn[i];
    }
#undef ACC
    if (logits) {
        rmsnorm(s->xn, s->x, m->out_norm.data, T, D, c->norm_eps);
        matmul(logits, s->xn, &m->output, T);
    }
    return 0;
}

/* for tests: the replay's logits of one chunk (T <= n_ctx) */
int imatrix_replay_logits(const struct model *m, const int *tok, int T, float *logits);
int imatrix_replay_logits(const struct model *m, const int *tok, int T, float *logits) {
    struct imatrix im = IMATRIX_INIT;
    struct fwd_state s;
    if (fwd_init(&s, m, T, T)) return -1;
    int rc = replay_chunk(&im, &s, tok, T, logits);
    fwd_release(&s);
    imatrix_release(&im);
    return rc;
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
    int *chunk = malloc((size_t)n_ctx * sizeof *chunk), rc = chunk ? 0 : err("out of memory");
    const double t0 = now_s();
    for (int i = 0; !rc && i < n_chunk; i++) {
        memcpy(chunk, tokens + (size_t)i * n_ctx, (size_t)n_ctx * sizeof *chunk);
        if (bos >= 0) chunk[0] = bos;
        rc = replay_chunk(im, &s, chunk, n_ctx, NULL);
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
