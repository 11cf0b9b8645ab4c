/* eval/kld.c: KL divergence against a base model's stored log-probs (see kld.h for the protocol,
 * the statistics and the file format). Shapes: V = n_vocab, R = n_ctx-1-first rows a chunk. */
#include "eval/kld.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernels/dtype.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "kld.c writes its files in host order, which must be little-endian"
#endif

const double kld_pct_frac[KLD_N_PCT] = {1, .999, .99, .95, .90, .5, .10, .05, .01, .001, 0};
const double kld_dp_pct_frac[KLD_N_DP_PCT] = {1,   .999, .99, .95, .90, .75, .5,
                                               .25, .10,  .05, .01, .001, 0};

/* ---- hashing ---- */

#define H_P1 0x9E3779B185EBCA87ull
#define H_P2 0xC2B2AE3D27D4EB4Full
#define H_P3 0x165667B19E3779F9ull

static inline uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

static inline uint64_t h_round(uint64_t acc, uint64_t w) {
    acc += w * H_P2;
    return rotl64(acc, 31) * H_P1;
}

/* splitmix64's finalizer */
static inline uint64_t h_avalanche(uint64_t h) {
    h ^= h >> 30;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 27;
    h *= 0x94D049BB133111EBull;
    return h ^ (h >> 31);
}

uint64_t kld_hash_bytes(const void *data, size_t n, uint64_t seed) {
    const unsigned char *p = data;
    uint64_t v[4] = {seed + H_P1 + H_P2, seed + H_P2, seed, seed - H_P1};
    size_t i = 0;
    for (; i + 32 <= n; i += 32)
        for (int j = 0; j < 4; j++) {
            uint64_t w;
            memcpy(&w, p + i + 8 * j, 8);
            v[j] = h_round(v[j], w);
        }
    uint64_t h = rotl64(v[0], 1) + rotl64(v[1], 7) + rotl64(v[2], 12) + rotl64(v[3], 18);
    h ^= (uint64_t)n * H_P3;
    for (; i < n; i++) h = rotl64(h ^ (p[i] * H_P3), 11) * H_P1;
    return h_avalanche(h);
}

uint64_t kld_tokens_hash(const int *tokens, size_t n) {
    return kld_hash_bytes(tokens, n * sizeof(int), 0x746f6b656e73ull);
}

static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp((*(const struct tensor *const *)a)->name, (*(const struct tensor *const *)b)->name);
}

uint64_t kld_model_hash(const struct model *m) {
    const struct model_config *c = &m->cfg;
    const double cfg[] = {c->dim,        c->hidden_dim,  c->n_layers,      c->n_heads,
                          c->n_kv_heads, c->head_dim,    c->vocab_size,    c->norm_eps,
                          c->rope_theta, c->rope_factor, c->rope_style,    c->qkv_bias,
                          c->rope_low_freq_factor, c->rope_high_freq_factor, c->rope_orig_ctx};
    uint64_t h = kld_hash_bytes(cfg, sizeof cfg, 0x6d6f64656cull);
    const struct tensor **ts = malloc((size_t)LB_MAX(1, m->n_tensors) * sizeof *ts);
    if (!ts) return h; /* out of memory: config only (a cache miss at worst) */
    for (int i = 0; i < m->n_tensors; i++) ts[i] = &m->tensors[i];
    qsort(ts, (size_t)m->n_tensors, sizeof *ts, cmp_tensor_name);
    for (int i = 0; i < m->n_tensors; i++) {
        const struct tensor *t = ts[i];
        const int64_t meta[6] = {t->type, t->n_dims, t->ne[0], t->ne[1], t->ne[2], t->ne[3]};
        h = kld_hash_bytes(t->name, strlen(t->name), h);
        h = kld_hash_bytes(meta, sizeof meta, h);
        if (t->data) h = kld_hash_bytes(t->data, tensor_nbytes(t), h);
    }
    free(ts);
    return h;
}

/* ---- chunks ---- */

int kld_make_chunks(const int *ids, int n_ids, int n_ctx, int bos, int max_chunks, int **chunks,
                    int *n_chunks) {
    *chunks = NULL;
    *n_chunks = 0;
    if (n_ctx < 4) return err("kld: context of %d tokens (expected at least 4)", n_ctx);
    if (n_ids < 2 * n_ctx)
        return err("kld: the text has %d tokens, fewer than the %d llama.cpp's protocol needs at a "
                   "context of %d", n_ids, 2 * n_ctx, n_ctx);
    int n = n_ids / n_ctx;
    if (max_chunks > 0 && max_chunks < n) n = max_chunks;
    int *c = xmalloc((size_t)n * n_ctx * sizeof(int), "the chunks");
    if (!c) return -1;
    memcpy(c, ids, (size_t)n * n_ctx * sizeof(int));
    if (bos >= 0)
        for (int i = 0; i < n; i++) c[(size_t)i * n_ctx] = bos;
    *chunks = c;
    *n_chunks = n;
    return 0;
}

/* ---- file layout ---- */

struct hdr {
    char magic[8];
    uint32_t version, dtype, n_vocab, n_ctx, n_chunks, first;
    uint64_t model_hash, tokens_hash;
    char model_name[64];
};
_Static_assert(sizeof(struct hdr) == KLD_HEADER_BYTES, "kld header size");

static size_t row_bytes(enum kld_dtype dt, int V) {
    return 8 + (size_t)V * (dt == KLD_F16 ? 2 : 4);
}

static int rows_per_chunk(int n_ctx) { return n_ctx - 1 - n_ctx / 2; }

/* total file size implied by a header */
static uint64_t file_bytes(const struct hdr *h) {
    return KLD_HEADER_BYTES + (uint64_t)h->n_chunks * h->n_ctx * 4 +
           (uint64_t)h->n_chunks * (uint64_t)rows_per_chunk((int)h->n_ctx) *
               row_bytes((enum kld_dtype)h->dtype, (int)h->n_vocab) +
           8;
}

/* run one chunk from an empty cache; call fn for every scored position j (logits of position j,
 * target tokens[j+1]) in order */
typedef int (*row_fn)(void *ctx, const float *logits, int target, int row);
static int run_chunk(struct fwd_state *s, const int *toks, int n_ctx, float *logits, row_fn fn,
                     void *ctx) {
    const int V = s->m->cfg.vocab_size, first = n_ctx / 2;
    fwd_truncate(s, 0);
    for (int i = 0; i < n_ctx; i += s->max_batch) {
        const int T = LB_MIN(s->max_batch, n_ctx - i);
        const bool need = i + T - 1 >= first;
        if (forward(s, toks + i, T, need ? logits : NULL, false)) return -1;
        if (!need) continue;
        for (int t = 0; t < T; t++) {
            const int j = i + t;
            if (j < first || j >= n_ctx - 1) continue;
            if (fn(ctx, logits + (size_t)t * V, toks[j + 1], j - first)) return -1;
        }
    }
    return 0;
}

/* ---- writing the base ---- */

struct writer {
    enum kld_dtype dtype;
    int V;
    unsigned char *rows; /* one chunk of rows */
    float *lp;
};

static int write_row(void *ctx, const float *logits, int target, int row) {
    struct writer *w = ctx;
    const int V = w->V;
    unsigned char *r = w->rows + (size_t)row * row_bytes(w->dtype, V);
    int am;
    const float lpc = (float)logprob_of(logits, V, target, &am);
    log_softmax(logits, V, w->lp);
    memcpy(r, &lpc, 4);
    memcpy(r + 4, &am, 4);
    if (w->dtype == KLD_F32) {
        memcpy(r + 8, w->lp, (size_t)V * 4);
    } else {
        for (int v = 0; v < V; v++) {
            const lb_fp16 h = lb_f32_to_fp16(w->lp[v]);
            memcpy(r + 8 + 2 * (size_t)v, &h, 2);
        }
    }
    return 0;
}

int kld_base_write(struct fwd_state *s, const int *chunks, int n_chunks, int n_ctx,
                   enum kld_dtype dtype, uint64_t model_hash, const char *model_name,
                   const char *path, bool quiet) {
    const int V = s->m->cfg.vocab_size, R = rows_per_chunk(n_ctx);
    if (n_ctx > s->n_ctx || n_ctx < 4 || n_chunks < 1)
        return err("kld: %d chunks of %d tokens with a model state of context %d", n_chunks, n_ctx,
                   s->n_ctx);
    if ((unsigned)dtype >= KLD_DTYPE_COUNT) return err("kld: unknown log-prob dtype %d", dtype);
    /* a temporary name of our own beside the target (concurrent writers of one cache never
     * share it), fsync'd, then renamed over the target: readers see the old file or the whole
     * new one */
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.XXXXXX", path) >= (int)sizeof tmp)
        return err("%s: path too long", path);
    struct hdr h = {0};
    memcpy(h.magic, KLD_MAGIC, 8);
    h.version = KLD_VERSION;
    h.dtype = dtype;
    h.n_vocab = (uint32_t)V;
    h.n_ctx = (uint32_t)n_ctx;
    h.n_chunks = (uint32_t)n_chunks;
    h.first = (uint32_t)(n_ctx / 2);
    h.model_hash = model_hash;
    h.tokens_hash = kld_tokens_hash(chunks, (size_t)n_chunks * n_ctx);
    if (model_name) {
        const char *base = strrchr(model_name, '/');
        snprintf(h.model_name, sizeof h.model_name, "%s", base && base[1] ? base + 1 : model_name);
    }
    struct writer w = {dtype, V, NULL, NULL};
    const size_t chunk_bytes = (size_t)R * row_bytes(dtype, V);
    float *logits = xcalloc((size_t)s->max_batch * V, sizeof(float), "logits");
    w.rows = xmalloc(chunk_bytes, "a chunk of base log-probs");
    w.lp = xcalloc((size_t)V, sizeof(float), "a log-prob row");
    FILE *f = NULL;
    int ret = -1, fd = -1;
    bool made = false;
    if (!logits || !w.rows || !w.lp) goto out;
    fd = mkstemp(tmp);
    if (fd < 0 || !(f = fdopen(fd, "wb"))) {
        err("%s: cannot create: %s", tmp, strerror(errno));
        if (fd >= 0) close(fd), remove(tmp);
        goto out;
    }
    made = true;
    uint64_t sum = kld_hash_bytes(&h, sizeof h, 0);
    const size_t tok_bytes = (size_t)n_chunks * n_ctx * sizeof(int);
    sum = kld_hash_bytes(chunks, tok_bytes, sum);
    if (fwrite(&h, sizeof h, 1, f) != 1 || fwrite(chunks, 1, tok_bytes, f) != tok_bytes) goto io;
    const double t0 = now_s();
    for (int c = 0; c < n_chunks; c++) {
        if (run_chunk(s, chunks + (size_t)c * n_ctx, n_ctx, logits, write_row, &w)) goto out;
        sum = kld_hash_bytes(w.rows, chunk_bytes, sum);
        if (fwrite(w.rows, 1, chunk_bytes, f) != chunk_bytes) goto io;
        if (!quiet && isatty(2)) {
            const double el = now_s() - t0;
            fprintf(stderr, "\rkld base: chunk %d/%d  ETA %.0fs   ", c + 1, n_chunks,
                    el / (c + 1) * (n_chunks - c - 1));
            if (c + 1 == n_chunks) fputc('\n', stderr);
        }
    }
    if (fwrite(&sum, 8, 1, f) != 1 || fflush(f) || fsync(fileno(f)) ||
        fchmod(fileno(f), 0644))
        goto io;
    if (fclose(f)) {
        f = NULL;
        goto io;
    }
    f = NULL;
    if (rename(tmp, path)) {
        err("%s: cannot rename to %s: %s", tmp, path, strerror(errno));
        goto out;
    }
    ret = 0;
    goto out;
io:
    err("%s: write error: %s", tmp, strerror(errno));
out:
    if (f) fclose(f);
    if (ret && made) remove(tmp);
    free(logits);
    free(w.rows);
    free(w.lp);
    return ret;
}

/* ---- reading ---- */

static int read_header(FILE *f, const char *path, struct hdr *h) {
    struct stat st;
    if (fstat(fileno(f), &st) || !S_ISREG(st.st_mode)) return err("%s: not a regular file", path);
    if (fread(h, sizeof *h, 1, f) != 1 || memcmp(h->magic, KLD_MAGIC, 8))
        return err("%s: not a lowbit base log-prob file (expected magic \"%s\"); delete it and "
                   "run lowbit kld again", path, KLD_MAGIC);
    if (h->version != KLD_VERSION)
        return err("%s: base log-prob file version %u (this build reads %u); delete it to "
                   "recompute", path, h->version, KLD_VERSION);
    if (h->dtype >= KLD_DTYPE_COUNT) return err("%s: unknown log-prob dtype %u", path, h->dtype);
    if (h->n_vocab < 1 || h->n_vocab > (1u << 24) || h->n_ctx < 4 || h->n_ctx > (1u << 22) ||
        h->n_chunks < 1 || h->n_chunks > (1u << 24) || h->first != h->n_ctx / 2)
        return err("%s: implausible header (vocab %u, ctx %u, chunks %u, first %u)", path,
                   h->n_vocab, h->n_ctx, h->n_chunks, h->first);
    const uint64_t want = file_bytes(h);
    if ((uint64_t)st.st_size != want)
        return err("%s: %lld bytes where the header implies %llu (truncated or corrupt); delete "
                   "it to recompute", path, (long long)st.st_size, (unsigned long long)want);
    return 0;
}

int kld_base_info(const char *path, struct kld_base_info *info) {
    FILE *f = fopen(path, "rb");
    if (!f) return err("%s: cannot open: %s", path, strerror(errno));
    struct hdr h;
    const int rc = read_header(f, path, &h);
    fclose(f);
    if (rc) return -1;
    info->dtype = (enum kld_dtype)h.dtype;
    info->n_vocab = (int)h.n_vocab;
    info->n_ctx = (int)h.n_ctx;
    info->n_chunks = (int)h.n_chunks;
    info->first = (int)h.first;
    info->model_hash = h.model_hash;
    info->tokens_hash = h.tokens_hash;
    memcpy(info->model_name, h.model_name, 64);
    info->model_name[64] = 0;
    return 0;
}

struct acc {
    double nll, nll2, nll_b, nll_b2, nll_nll_b, kld, kld2, dp, dp2, dp4;
    long same_top, n;
};

struct reader {
    enum kld_dtype dtype;
    int V;
    const unsigned char *rows;
    double *lpb; /* a base row, renormalized */
    struct acc a;
    float *kld_values, *dp_values; /* all positions */
    double chunk_kld, chunk_nll;   /* sums over the current chunk's positions */
};

static int compare_row(void *ctx, const float *logits, int target, int row) {
    struct reader *r = ctx;
    const int V = r->V;
    const unsigned char *b = r->rows + (size_t)row * row_bytes(r->dtype, V);
    float lpc_base;
    int am_base;
    memcpy(&lpc_base, b, 4);
    memcpy(&am_base, b + 4, 4);
    /* the base row, renormalized in double so that Σ P = 1 whatever the storage rounding */
    double mxb = -INFINITY;
    for (int v = 0; v < V; v++) {
        float x;
        if (r->dtype == KLD_F32) {
            memcpy(&x, b + 8 + 4 * (size_t)v, 4);
        } else {
            lb_fp16 hv;
            memcpy(&hv, b + 8 + 2 * (size_t)v, 2);
            x = lb_fp16_to_f32(hv);
        }
        r->lpb[v] = x;
        if (x > mxb) mxb = x;
    }
    double sb = 0;
    for (int v = 0; v < V; v++) sb += exp(r->lpb[v] - mxb);
    const double lse_b = mxb + log(sb);
    /* the model's row: log Q = logit - lse (double), argmax lowest index on ties */
    float mx = logits[0];
    int am = 0;
    for (int v = 1; v < V; v++)
        if (logits[v] > mx) {
            mx = logits[v];
            am = v;
        }
    double sq = 0;
    for (int v = 0; v < V; v++) sq += exp((double)logits[v] - mx);
    const double lse_q = mx + log(sq);
    double kld = 0;
    for (int v = 0; v < V; v++) {
        const double lp = r->lpb[v] - lse_b;
        const double p = exp(lp);
        if (p > 0) kld += p * (lp - ((double)logits[v] - lse_q));
    }
    const double nll = lse_q - logits[target], nll_b = -(double)lpc_base;
    const double dp = exp(-nll) - exp(-nll_b);
    struct acc *a = &r->a;
    a->nll += nll;
    a->nll2 += nll * nll;
    a->nll_b += nll_b;
    a->nll_b2 += nll_b * nll_b;
    a->nll_nll_b += nll * nll_b;
    a->kld += kld;
    a->kld2 += kld * kld;
    a->dp += dp;
    a->dp2 += dp * dp;
    a->dp4 += dp * dp * dp * dp;
    a->same_top += am == am_base;
    r->chunk_kld += kld;
    r->chunk_nll += nll;
    r->kld_values[a->n] = (float)kld;
    r->dp_values[a->n] = (float)dp;
    a->n++;
    return 0;
}

/* llama.cpp's mean_and_uncertainty: mean and sqrt(var/(n-1)), the latter 0 unless n > 10 */
static void mean_unc(double sum, double sum2, long n, double *mean, double *unc) {
    *mean = n > 0 ? sum / n : 0;
    double var = n > 0 ? sum2 / n - *mean * *mean : 0;
    *unc = var > 0 && n > 10 ? sqrt(var / (n - 1)) : 0;
}

static double covariance(double sa, double sb, double sab, long n) {
    if (n < 10) return 0;
    return (sab / n - (sa / n) * (sb / n)) / (n - 1);
}

static int cmp_float(const void *a, const void *b) {
    const float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

/* llama.cpp's percentile (linear interpolation on sorted values) and its median */
static double percentile(const float *v, long n, double frac) {
    if (frac <= 0) return v[0];
    if (frac >= 1) return v[n - 1];
    double p = frac * (double)(n - 1);
    const long ip = (long)p;
    p -= (double)ip;
    return (1 - p) * v[ip] + p * v[LB_MIN(ip + 1, n - 1)];
}
static double median(const float *v, long n) {
    return n % 2 == 0 ? 0.5 * ((double)v[n / 2] + v[n / 2 - 1]) : v[n / 2];
}

int kld_compare(struct fwd_state *s, const char *base_path, const int *chunks, int n_chunks,
                int n_ctx, uint64_t base_hash, bool quiet, struct kld_result *res) {
    memset(res, 0, sizeof *res);
    const int V = s->m->cfg.vocab_size;
    FILE *f = fopen(base_path, "rb");
    if (!f) return err("%s: cannot open: %s", base_path, strerror(errno));
    struct hdr h;
    struct reader r = {0};
    int *toks = NULL, ret = -1;
    float *logits = NULL;
    if (read_header(f, base_path, &h)) goto out;
    if ((int)h.n_vocab != V) {
        err("%s: the base has a vocabulary of %u tokens, this model %d: not the same tokenizer",
            base_path, h.n_vocab, V);
        goto out;
    }
    if (base_hash && h.model_hash != base_hash) {
        err("%s: computed for another base model (%s, fingerprint %016llx; expected %016llx); "
            "delete it to recompute", base_path, h.model_name, (unsigned long long)h.model_hash,
            (unsigned long long)base_hash);
        goto out;
    }
    if ((int)h.n_ctx > s->n_ctx) {
        err("%s: computed at a context of %u, more than this model state's %d", base_path,
            h.n_ctx, s->n_ctx);
        goto out;
    }
    const size_t n_tok = (size_t)h.n_chunks * h.n_ctx;
    toks = xmalloc(n_tok * sizeof(int), "the base's tokens");
    if (!toks) goto out;
    if (fread(toks, sizeof(int), n_tok, f) != n_tok) {
        err("%s: read error in the tokens", base_path);
        goto out;
    }
    uint64_t sum = kld_hash_bytes(&h, sizeof h, 0);
    sum = kld_hash_bytes(toks, n_tok * sizeof(int), sum);
    if (kld_tokens_hash(toks, n_tok) != h.tokens_hash) {
        err("%s: the stored tokens do not match their hash (corrupt); delete it to recompute",
            base_path);
        goto out;
    }
    if (chunks && ((int)h.n_ctx != n_ctx || (int)h.n_chunks != n_chunks ||
                   memcmp(chunks, toks, n_tok * sizeof(int)))) {
        err("%s: holds %u chunks of %u tokens of another text or tokenization (here: %d chunks of "
            "%d); delete it to recompute", base_path, h.n_chunks, h.n_ctx, n_chunks, n_ctx);
        goto out;
    }
    for (size_t i = 0; i < n_tok; i++)
        if (toks[i] < 0 || toks[i] >= V) {
            err("%s: token id %d outside the vocabulary (corrupt)", base_path, toks[i]);
            goto out;
        }
    const int R = rows_per_chunk((int)h.n_ctx);
    const size_t chunk_bytes = (size_t)R * row_bytes((enum kld_dtype)h.dtype, V);
    const long n_rows = (long)h.n_chunks * R;
    r.dtype = (enum kld_dtype)h.dtype;
    r.V = V;
    unsigned char *rows = xmalloc(chunk_bytes, "a chunk of base log-probs");
    r.rows = rows;
    r.lpb = xcalloc((size_t)V, sizeof(double), "a log-prob row");
    r.kld_values = xcalloc((size_t)n_rows, sizeof(float), "the KLD values");
    r.dp_values = xcalloc((size_t)n_rows, sizeof(float), "the probability differences");
    logits = xcalloc((size_t)s->max_batch * V, sizeof(float), "logits");
    res->chunk_kld = xcalloc(h.n_chunks, sizeof(double), "the chunks' KLD");
    res->chunk_nll = xcalloc(h.n_chunks, sizeof(double), "the chunks' NLL");
    if (!rows || !r.lpb || !r.kld_values || !r.dp_values || !logits || !res->chunk_kld ||
        !res->chunk_nll)
        goto out;
    const double t0 = now_s();
    for (int c = 0; c < (int)h.n_chunks; c++) {
        if (fread(rows, 1, chunk_bytes, f) != chunk_bytes) {
            err("%s: read error in chunk %d", base_path, c);
            goto out;
        }
        sum = kld_hash_bytes(rows, chunk_bytes, sum);
        r.chunk_kld = r.chunk_nll = 0;
        if (run_chunk(s, toks + (size_t)c * h.n_ctx, (int)h.n_ctx, logits, compare_row, &r))
            goto out;
        res->chunk_kld[c] = r.chunk_kld / R;
        res->chunk_nll[c] = r.chunk_nll / R;
        if (!quiet && isatty(2)) {
            const double el = now_s() - t0;
            fprintf(stderr, "\rkld: chunk %d/%u  ETA %.0fs   ", c + 1, h.n_chunks,
                    el / (c + 1) * (h.n_chunks - c - 1));
            if (c + 1 == (int)h.n_chunks) fputc('\n', stderr);
        }
    }
    uint64_t stored;
    if (fread(&stored, 8, 1, f) != 1 || stored != sum) {
        err("%s: checksum mismatch (the file is corrupt); delete it to recompute", base_path);
        goto out;
    }

    /* statistics, as llama.cpp's kl_divergence() prints them */
    const struct acc *a = &r.a;
    const long n = a->n;
    res->n = n;
    res->n_chunks = (int)h.n_chunks;
    res->n_ctx = (int)h.n_ctx;
    double lq, lq_u, lb, lb_u;
    mean_unc(a->nll, a->nll2, n, &lq, &lq_u);
    mean_unc(a->nll_b, a->nll_b2, n, &lb, &lb_u);
    res->ppl_q = exp(lq);
    res->ppl_q_err = res->ppl_q * lq_u;
    res->ppl_base = exp(lb);
    res->ppl_base_err = res->ppl_base * lb_u;
    const double cov = covariance(a->nll, a->nll_b, a->nll_nll_b, n);
    res->ppl_cor = lq_u > 0 && lb_u > 0 ? cov / (lq_u * lb_u) : 0;
    res->log_ppl_ratio = lq - lb;
    res->log_ppl_ratio_err = sqrt(fmax(0, lq_u * lq_u + lb_u * lb_u - 2 * cov));
    res->ppl_ratio = exp(res->log_ppl_ratio);
    res->ppl_ratio_err = res->ppl_ratio * res->log_ppl_ratio_err;
    res->ppl_diff = res->ppl_q - res->ppl_base;
    res->ppl_diff_err = sqrt(fmax(0, res->ppl_q_err * res->ppl_q_err +
                                         res->ppl_base_err * res->ppl_base_err -
                                         2 * res->ppl_q * res->ppl_base * cov));
    mean_unc(a->kld, a->kld2, n, &res->kld_mean, &res->kld_err);
    mean_unc(a->dp, a->dp2, n, &res->dp_mean, &res->dp_err);
    double mse, mse_u;
    mean_unc(a->dp2, a->dp4, n, &mse, &mse_u);
    res->dp_rms = sqrt(mse);
    res->dp_rms_err = res->dp_rms > 0 ? 0.5 / res->dp_rms * mse_u : 0;
    res->same_top = n ? (double)a->same_top / n : 0;
    res->same_top_err = n > 1 ? sqrt(res->same_top * (1 - res->same_top) / (n - 1)) : 0;
    qsort(r.kld_values, (size_t)n, sizeof(float), cmp_float);
    qsort(r.dp_values, (size_t)n, sizeof(float), cmp_float);
    for (int i = 0; i < KLD_N_PCT; i++)
        res->kld_pct[i] = kld_pct_frac[i] == .5 ? median(r.kld_values, n)
                                                : percentile(r.kld_values, n, kld_pct_frac[i]);
    for (int i = 0; i < KLD_N_DP_PCT; i++)
        res->dp_pct[i] = kld_dp_pct_frac[i] == .5 ? median(r.dp_values, n)
                                                  : percentile(r.dp_values, n, kld_dp_pct_frac[i]);
    res->seconds = now_s() - t0;
    ret = 0;
out:
    fclose(f);
    free(toks);
    free(logits);
    free((void *)r.rows);
    free(r.lpb);
    free(r.kld_values);
    free(r.dp_values);
    if (ret) kld_result_release(res);
    return ret;
}

void kld_result_release(struct kld_result *r) {
    free(r->chunk_kld);
    free(r->chunk_nll);
    r->chunk_kld = r->chunk_nll = NULL;
}
