/* gen/cmd_train.c: lowbit train: a Llama decoder trained from scratch on text files, with the
 * math of eval/train.c; writes OUT/model.gguf (F32, vocabulary inside), OUT/hf/ (config.json +
 * safetensors + tokenizer.json), OUT/curve.csv and OUT/train.json, and a resumable checkpoint.
 *
 * Data: every corpus file is split into documents (at lines "<|endoftext|>" when the file has
 * any, else at blank lines), each stripped and encoded with BOS; the token streams are
 * concatenated and each micro-batch takes windows of ctx+1 tokens at uniformly random offsets
 * (llama2.c's way). The held-out text is split the same way at "<|endoftext|>" and scored with
 * `lowbit nll`'s protocol (BOS + document, at most ctx tokens, mean NLL per predicted token).
 * A training document equal to a held-out one (case-folded, whitespace collapsed), or holding a
 * line of 40+ characters that a held-out document holds, is dropped, and the count is reported:
 * no held-out text is trained on.
 * Checkpoint OUT/ckpt.bin (little-endian, written to .tmp, fsynced, renamed):
 *  1. "LBTRAIN1", u32 version 1, u32 n_curve
 *  2. i32 × 8: dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab, ctx, tied
 *  3. u64 run key (FNV-1a of the settings and the training tokens), u64 step, u64 rng state,
 *     u64 n floats, f64 seconds trained
 *  4. n_curve × 6 f64 (the curve rows so far), then w, m, v: n floats each */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "eval/gguf.h"
#include "eval/tokenizer.h"
#include "eval/train.h"
#include "gen/cli.h"
#include "gen/pipeline.h"
#include "gen/text.h"
#include "kernels/base/hash.h"
#include "kernels/matmul.h"
#include "quant/hf_export.h"
#include "quant/quant.h"

static const char train_help[] =
    "usage: lowbit train --config C --corpus FILE [--corpus FILE...] --tokenizer T -o OUT\n"
    "                    [--heldout FILE] [--set key=value...] [--resume] [--threads N]\n"
    "                    [--quiet] [--bench N] [--stop-after N]\n"
    "  Trains a Llama decoder (RMSNorm, RoPE, GQA, SwiGLU) from scratch with AdamW, warm-up +\n"
    "  cosine schedule and gradient clipping, deterministically (same seed: the same bits at\n"
    "  any thread count). C is a key = value file (# comments):\n"
    "    dim hidden_dim n_layers n_heads n_kv_heads ctx tied   model (vocab from the tokenizer)\n"
    "    batch micro_batch steps                 windows of ctx tokens per step / per pass\n"
    "    lr min_lr warmup weight_decay clip beta1 beta2 seed\n"
    "    eval_every eval_docs ckpt_every         held-out loss every N steps on the first K docs\n"
    "    heldout                                 held-out text (${LOWBIT_DATA} expands)\n"
    "  Writes OUT/model.gguf (F32, vocabulary inside), OUT/hf/, OUT/curve.csv (step, tokens,\n"
    "  train_loss, heldout_loss, lr, seconds), OUT/train.json and OUT/ckpt.bin (--resume goes\n"
    "  on from it). --bench N: N steps after one warm-up step, then tokens/s, GFLOP/s and the\n"
    "  fraction of the FMA peak; nothing is written. --stop-after N: stop after step N with only\n"
    "  the checkpoint written (an interruption, for tests).\n";

/* ===== settings ===== */

struct train_settings {
    struct train_config c;
    struct train_opt o;
    int batch, micro_batch, eval_every, eval_docs, ckpt_every;
    uint64_t seed;
    char heldout[4096];
};

static void settings_default(struct train_settings *s) {
    memset(s, 0, sizeof *s);
    s->c = (struct train_config){.dim = 256, .hidden_dim = 768, .n_layers = 2, .n_heads = 8,
                                 .n_kv_heads = 4, .ctx = 256, .norm_eps = 1e-5f,
                                 .rope_theta = 10000.0f};
    s->o = (struct train_opt){.lr = 1e-3f, .min_lr = 1e-4f, .warmup = 10, .steps = 100,
                              .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f,
                              .clip = 1.0f};
    s->batch = 8, s->micro_batch = 8, s->eval_every = 50, s->eval_docs = 0, s->ckpt_every = 0;
    s->seed = 1337;
    snprintf(s->heldout, sizeof s->heldout, "${LOWBIT_DATA}/datasets/tinystories/tinystories-valid.txt.1000");
}

/* one "key = value"; -1 with a message naming where */
static int settings_set(struct train_settings *s, const char *key, const char *val,
                        const char *where) {
    struct {
        const char *k;
        int *p;
        long lo, hi;
    } ints[] = {
        {"dim", &s->c.dim, 2, 65536},          {"hidden_dim", &s->c.hidden_dim, 1, 1 << 20},
        {"n_layers", &s->c.n_layers, 1, 1024}, {"n_heads", &s->c.n_heads, 1, 4096},
        {"n_kv_heads", &s->c.n_kv_heads, 1, 4096}, {"ctx", &s->c.ctx, 2, 1 << 16},
        {"batch", &s->batch, 1, 1 << 20},       {"micro_batch", &s->micro_batch, 1, 1 << 20},
        {"steps", &s->o.steps, 1, 1 << 30},     {"warmup", &s->o.warmup, 0, 1 << 30},
        {"eval_every", &s->eval_every, 0, 1 << 30}, {"eval_docs", &s->eval_docs, 0, 1 << 30},
        {"ckpt_every", &s->ckpt_every, 0, 1 << 30},
    };
    struct {
        const char *k;
        float *p;
    } flts[] = {{"lr", &s->o.lr},           {"min_lr", &s->o.min_lr},
                {"weight_decay", &s->o.weight_decay}, {"clip", &s->o.clip},
                {"beta1", &s->o.beta1},     {"beta2", &s->o.beta2},
                {"adam_eps", &s->o.eps},    {"norm_eps", &s->c.norm_eps},
                {"rope_theta", &s->c.rope_theta}};
    char *end;
    for (size_t i = 0; i < LB_ARRAY_LEN(ints); i++)
        if (!strcmp(key, ints[i].k)) {
            errno = 0;
            long v = strtol(val, &end, 10);
            if (errno || end == val || *end || v < ints[i].lo || v > ints[i].hi)
                return err("%s: %s = '%s' is not an integer in [%ld, %ld]", where, key, val,
                           ints[i].lo, ints[i].hi);
            *ints[i].p = (int)v;
            return 0;
        }
    for (size_t i = 0; i < LB_ARRAY_LEN(flts); i++)
        if (!strcmp(key, flts[i].k)) {
            errno = 0;
            double v = strtod(val, &end);
            if (errno || end == val || *end || !isfinite(v) || v < 0)
                return err("%s: %s = '%s' is not a non-negative number", where, key, val);
            *flts[i].p = (float)v;
            return 0;
        }
    if (!strcmp(key, "seed")) {
        errno = 0;
        unsigned long long v = strtoull(val, &end, 10);
        if (errno || end == val || *end) return err("%s: seed = '%s' is not an integer", where, val);
        s->seed = v;
        return 0;
    }
    if (!strcmp(key, "tied")) {
        if (strcmp(val, "0") && strcmp(val, "1"))
            return err("%s: tied = '%s' (expected 0 or 1)", where, val);
        s->c.tied = val[0] == '1';
        return 0;
    }
    if (!strcmp(key, "heldout")) return pipe_expand(val, s->heldout, sizeof s->heldout);
    return err("%s: unknown key '%s' (known: dim hidden_dim n_layers n_heads n_kv_heads ctx tied "
               "batch micro_batch steps lr min_lr warmup weight_decay clip beta1 beta2 adam_eps "
               "seed eval_every eval_docs ckpt_every heldout norm_eps rope_theta)", where, key);
}

static char *trim(char *a) {
    while (*a == ' ' || *a == '\t') a++;
    char *b = a + strlen(a);
    while (b > a && (b[-1] == ' ' || b[-1] == '\t' || b[-1] == '\r' || b[-1] == '\n')) b--;
    *b = 0;
    return a;
}

static int settings_line(struct train_settings *s, char *line, const char *where) {
    char *h = strchr(line, '#');
    if (h) *h = 0;
    char *t = trim(line);
    if (!*t) return 0;
    char *eq = strchr(t, '=');
    if (!eq) return err("%s: '%s' is not key = value", where, t);
    *eq = 0;
    return settings_set(s, trim(t), trim(eq + 1), where);
}

static int settings_load(struct train_settings *s, const char *path) {
    char *text = NULL;
    size_t len;
    if (read_file_all(path, "the training config", &text, &len))
        return err("train: cannot read the config %s (see gen/zoo/*.conf for the form)", path);
    int ret = 0, ln = 0;
    for (char *p = text, *nl; p && *p && !ret; p = nl ? nl + 1 : NULL) {
        nl = strchr(p, '\n');
        if (nl) *nl = 0;
        char where[4200];
        snprintf(where, sizeof where, "%s:%d", path, ++ln);
        ret = settings_line(s, p, where);
    }
    free(text);
    return ret;
}

static int settings_check(const struct train_settings *s) {
    if (s->batch % s->micro_batch)
        return err("train: batch %d is not a multiple of micro_batch %d", s->batch, s->micro_batch);
    if (s->o.min_lr > s->o.lr) return err("train: min_lr %g above lr %g", s->o.min_lr, s->o.lr);
    if (s->o.beta1 >= 1 || s->o.beta2 >= 1) return err("train: beta1/beta2 must be below 1");
    return 0;
}

/* ===== documents ===== */

struct doc_list {
    char **d;
    int n, cap;
};

static void docs_release(struct doc_list *l) {
    for (int i = 0; i < l->n; i++) free(l->d[i]);
    free(l->d);
    memset(l, 0, sizeof *l);
}

static int docs_push(struct doc_list *l, const char *a, const char *b) {
    while (a < b && (*a == ' ' || *a == '\n' || *a == '\t' || *a == '\r')) a++;
    while (b > a && (b[-1] == ' ' || b[-1] == '\n' || b[-1] == '\t' || b[-1] == '\r')) b--;
    if (a == b) return 0;
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 1024;
        char **d = realloc(l->d, (size_t)cap * sizeof *d);
        if (!d) return err("out of memory (documents)");
        l->d = d, l->cap = cap;
    }
    char *c = xmalloc((size_t)(b - a) + 1, "a document");
    if (!c) return -1;
    memcpy(c, a, (size_t)(b - a));
    c[b - a] = 0;
    l->d[l->n++] = c;
    return 0;
}

static const char SEP[] = "<|endoftext|>";

/* a pointer to the next line equal to SEP at or after p, or NULL */
static const char *next_sep(const char *text, const char *p) {
    for (const char *q = p; (q = strstr(q, SEP)); q += sizeof SEP - 1) {
        const char *after = q + sizeof SEP - 1;
        if ((q == text || q[-1] == '\n') &&
            (!*after || *after == '\n' || (*after == '\r' && after[1] == '\n')))
            return q;
    }
    return NULL;
}

/* split path into documents: at SEP lines, or (no SEP line at all) at blank lines */
static int docs_read(struct doc_list *l, const char *path, const char *what) {
    char *text = NULL;
    size_t len;
    if (access(path, R_OK))
        return err("train: %s %s: %s (the TinyStories files are under LOWBIT_DATA=%s; see its "
                   "MANIFEST.md)", what, path, strerror(errno),
                   getenv("LOWBIT_DATA") ? getenv("LOWBIT_DATA") : "../shared/data (unset)");
    if (read_file_all(path, what, &text, &len)) return -1;
    int ret = 0;
    const char *end = text + len, *p = text;
    if (next_sep(text, text)) {
        while (p < end && !ret) {
            const char *q = next_sep(text, p);
            ret = docs_push(l, p, q ? q : end);
            p = q ? q + sizeof SEP - 1 : end;
        }
    } else {
        while (p < end && !ret) { /* a blank line: "\n" followed by optional spaces and "\n" */
            const char *q = p, *cut = NULL;
            while ((q = strchr(q, '\n'))) {
                const char *r = q + 1;
                while (*r == ' ' || *r == '\t' || *r == '\r') r++;
                if (*r == '\n') {
                    cut = q;
                    break;
                }
                q++;
            }
            ret = docs_push(l, p, cut ? cut : end);
            p = cut ? cut + 1 : end;
        }
    }
    free(text);
    return ret;
}

/* FNV-1a of text case-folded with whitespace runs collapsed to one space */
static uint64_t norm_hash(const char *a, const char *b) {
    uint64_t h = FNV1A64_INIT;
    bool sp = false, any = false;
    for (; a < b; a++) {
        unsigned char c = (unsigned char)*a;
        if (c == ' ' || c == '\n' || c == '\t' || c == '\r') {
            sp = any;
            continue;
        }
        if (sp) h = (h ^ ' ') * 1099511628211ull, sp = false;
        if (c >= 'A' && c <= 'Z') c = (unsigned char)(c + 32);
        h = (h ^ c) * 1099511628211ull;
        any = true;
    }
    return h;
}

#define LINE_MIN 40

/* the document's hash and, with add, every line of LINE_MIN+ characters into lines; without add,
 * whether any such line is in lines */
static bool doc_lines(const char *d, struct u64set *lines, bool add, int *rc) {
    for (const char *p = d; *p;) {
        const char *e = strchr(p, '\n');
        if (!e) e = p + strlen(p);
        if (e - p >= LINE_MIN) {
            uint64_t h = norm_hash(p, e);
            if (add) {
                if (u64set_add(lines, h)) *rc = -1;
            } else if (u64set_has(lines, h)) {
                return true;
            }
        }
        p = *e ? e + 1 : e;
    }
    return false;
}

/* ===== data ===== */

struct train_data {
    int *tok;     /* training token stream */
    int64_t n_tok;
    int n_docs, n_dropped, n_files;
    int **ho;     /* held-out documents: BOS + tokens, at most ctx */
    int *ho_n;
    int n_ho, n_ho_cut;
    int64_t ho_tokens; /* predicted positions */
};

static void data_release(struct train_data *d) {
    free(d->tok);
    for (int i = 0; i < d->n_ho; i++) free(d->ho[i]);
    free(d->ho);
    free(d->ho_n);
    memset(d, 0, sizeof *d);
}

static int data_load(struct train_data *d, const struct train_settings *s, char **corpus,
                     int n_corpus, const struct tokenizer *tok, bool quiet) {
    struct doc_list ho = {0}, tr = {0};
    struct u64set ho_docs = U64SET_INIT, ho_lines = U64SET_INIT;
    int ret = -1, rc = 0;
    memset(d, 0, sizeof *d);
    if (docs_read(&ho, s->heldout, "held-out text")) goto out;
    for (int i = 0; i < ho.n; i++) {
        if (u64set_add(&ho_docs, norm_hash(ho.d[i], ho.d[i] + strlen(ho.d[i])))) goto out;
        doc_lines(ho.d[i], &ho_lines, true, &rc);
        if (rc) goto out;
    }
    d->ho = xcalloc((size_t)ho.n, sizeof *d->ho, "held-out");
    d->ho_n = xcalloc((size_t)ho.n, sizeof *d->ho_n, "held-out");
    if (!d->ho || !d->ho_n) goto out;
    for (int i = 0; i < ho.n; i++) {
        int *ids = NULL, n = 0;
        if (tokenizer_encode(tok, ho.d[i], strlen(ho.d[i]), true, &ids, &n)) goto out;
        if (n > s->c.ctx) n = s->c.ctx, d->n_ho_cut++;
        if (n < 2) {
            free(ids);
            continue;
        }
        d->ho[d->n_ho] = ids, d->ho_n[d->n_ho++] = n;
        d->ho_tokens += n - 1;
    }
    if (!d->n_ho) {
        err("train: the held-out text %s has no document of 2+ tokens", s->heldout);
        goto out;
    }
    int64_t cap = 1 << 20;
    d->tok = xmalloc((size_t)cap * sizeof *d->tok, "training tokens");
    if (!d->tok) goto out;
    for (int f = 0; f < n_corpus; f++) {
        docs_release(&tr);
        if (docs_read(&tr, corpus[f], "corpus file")) goto out;
        d->n_files++;
        for (int i = 0; i < tr.n; i++) {
            const char *doc = tr.d[i];
            if (u64set_has(&ho_docs, norm_hash(doc, doc + strlen(doc))) ||
                doc_lines(doc, &ho_lines, false, &rc)) {
                d->n_dropped++;
                continue;
            }
            int *ids = NULL, n = 0;
            if (tokenizer_encode(tok, doc, strlen(doc), true, &ids, &n)) goto out;
            if (d->n_tok + n > cap) {
                while (d->n_tok + n > cap) cap *= 2;
                int *nt = realloc(d->tok, (size_t)cap * sizeof *nt);
                if (!nt) {
                    free(ids);
                    err("out of memory (training tokens)");
                    goto out;
                }
                d->tok = nt;
            }
            memcpy(d->tok + d->n_tok, ids, (size_t)n * sizeof *ids);
            d->n_tok += n;
            d->n_docs++;
            free(ids);
        }
    }
    if (d->n_tok < s->c.ctx + 1) {
        err("train: the corpus has %lld tokens, fewer than one window of ctx+1 = %d",
            (long long)d->n_tok, s->c.ctx + 1);
        goto out;
    }
    if (!quiet)
        fprintf(stderr, "train: corpus %d file(s), %d documents, %lld tokens; held-out %s: %d "
                        "documents (%d cut to %d tokens), %lld predicted tokens; %d training "
                        "documents overlapping the held-out text dropped\n",
                d->n_files, d->n_docs, (long long)d->n_tok, s->heldout, d->n_ho, d->n_ho_cut,
                s->c.ctx, (long long)d->ho_tokens, d->n_dropped);
    ret = 0;
out:
    if (ret) data_release(d);
    docs_release(&ho);
    docs_release(&tr);
    u64set_release(&ho_docs);
    u64set_release(&ho_lines);
    return ret;
}

/* ===== checkpoint ===== */

#define CURVE_COLS 6
struct curve {
    double *r; /* rows of CURVE_COLS: step, tokens, train_loss, heldout_loss, lr, seconds */
    int n, cap;
};

static int curve_add(struct curve *c, const double row[CURVE_COLS]) {
    if (c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 64;
        double *r = realloc(c->r, (size_t)cap * CURVE_COLS * sizeof *r);
        if (!r) return err("out of memory (curve)");
        c->r = r, c->cap = cap;
    }
    memcpy(c->r + (size_t)c->n++ * CURVE_COLS, row, CURVE_COLS * sizeof *row);
    return 0;
}

/* the run key: every setting that changes the trajectory, and the training tokens */
static uint64_t run_key(const struct train_settings *s, const struct train_data *d) {
    uint64_t h = FNV1A64_INIT;
    h = fnv1a64(h, &s->c, sizeof s->c);
    h = fnv1a64(h, &s->o, sizeof s->o);
    const int ints[] = {s->batch, s->micro_batch};
    h = fnv1a64(h, ints, sizeof ints);
    h = fnv1a64(h, &s->seed, sizeof s->seed);
    return fnv1a64(h, d->tok, (size_t)d->n_tok * sizeof *d->tok);
}

struct ckpt_head {
    char magic[8];
    uint32_t version, n_curve;
    int32_t cfg[8];
    uint64_t key, step, rng, n;
    double seconds;
};

static void ckpt_cfg(const struct train_config *c, int32_t out[8]) {
    const int32_t v[8] = {c->dim, c->hidden_dim, c->n_layers, c->n_heads,
                          c->n_kv_heads, c->vocab, c->ctx, c->tied};
    memcpy(out, v, sizeof v);
}

static int ckpt_write(const char *path, const struct train_model *tm, uint64_t key, int step,
                      uint64_t rng, double seconds, const struct curve *cv) {
    struct ckpt_head h = {.magic = "LBTRAIN1", .version = 1, .n_curve = (uint32_t)cv->n,
                          .key = key, .step = (uint64_t)step, .rng = rng, .n = tm->n,
                          .seconds = seconds};
    ckpt_cfg(&tm->c, h.cfg);
    char *tmp = xstrfmt("%s.tmp", path);
    if (!tmp) return -1;
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        err("%s: cannot write: %s", tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    bool ok = fwrite(&h, sizeof h, 1, f) == 1 &&
              fwrite(cv->r, sizeof(double) * CURVE_COLS, (size_t)cv->n, f) == (size_t)cv->n &&
              fwrite(tm->w, sizeof(float), tm->n, f) == tm->n &&
              fwrite(tm->m, sizeof(float), tm->n, f) == tm->n &&
              fwrite(tm->v, sizeof(float), tm->n, f) == tm->n && !fflush(f) && !fsync(fileno(f));
    ok = !fclose(f) && ok;
    if (!ok || rename(tmp, path)) {
        int e = errno;
        unlink(tmp);
        free(tmp);
        return err("%s: cannot write the checkpoint: %s", path, strerror(e));
    }
    free(tmp);
    return 0;
}

static int ckpt_read(const char *path, struct train_model *tm, uint64_t key, int *step,
                     uint64_t *rng, double *seconds, struct curve *cv) {
    FILE *f = fopen(path, "rb");
    if (!f) return err("%s: cannot resume: %s", path, strerror(errno));
    struct ckpt_head h;
    int32_t cfg[8];
    ckpt_cfg(&tm->c, cfg);
    int ret = -1;
    if (fread(&h, sizeof h, 1, f) != 1 || memcmp(h.magic, "LBTRAIN1", 8) || h.version != 1) {
        err("%s: not a lowbit training checkpoint (expected magic LBTRAIN1 version 1)", path);
        goto out;
    }
    if (memcmp(h.cfg, cfg, sizeof cfg) || h.n != tm->n || h.key != key) {
        err("%s: the checkpoint is of another run (model, settings or corpus differ); remove it "
            "or train without --resume", path);
        goto out;
    }
    cv->n = 0;
    for (uint32_t i = 0; i < h.n_curve; i++) {
        double row[CURVE_COLS];
        if (fread(row, sizeof row, 1, f) != 1 || curve_add(cv, row)) goto trunc;
    }
    if (fread(tm->w, sizeof(float), tm->n, f) != tm->n ||
        fread(tm->m, sizeof(float), tm->n, f) != tm->n ||
        fread(tm->v, sizeof(float), tm->n, f) != tm->n)
        goto trunc;
    *step = (int)h.step, *rng = h.rng, *seconds = h.seconds;
    ret = 0;
    goto out;
trunc:
    if (ret) err("%s: truncated checkpoint", path);
out:
    fclose(f);
    return ret;
}

/* ===== outputs ===== */

static int write_curve(const char *path, const struct curve *cv) {
    size_t cap = 128 + (size_t)cv->n * 160, len = 0;
    char *buf = xmalloc(cap, "curve.csv");
    if (!buf) return -1;
    len += (size_t)snprintf(buf, cap, "step,tokens,train_loss,heldout_loss,lr,seconds\n");
    for (int i = 0; i < cv->n; i++) {
        const double *r = cv->r + (size_t)i * CURVE_COLS;
        len += (size_t)snprintf(buf + len, cap - len, "%.0f,%.0f,%.6f,%.6f,%.6g,%.2f\n", r[0], r[1],
                                r[2], r[3], r[4], r[5]);
    }
    int rc = pipe_write_atomic(path, buf, len);
    free(buf);
    return rc;
}

/* OUT/model.gguf: F32 tensors under canonical names, llama metadata, the vocabulary */
static int write_gguf(const char *path, const struct train_model *tm, const struct tokenizer *tok,
                      const char *name) {
    struct model m;
    if (train_to_model(tm, &m)) return -1;
    struct gguf_writer *w = gguf_writer_new();
    int ret = -1;
    if (!w) goto out;
    if (quant_gguf_put_model_kv(w, &m, name, 0) || train_gguf_put_vocab(w, tok)) goto out;
    for (int i = 0; i < tm->n_pt; i++) {
        const struct train_param *p = &tm->pt[i];
        if (gguf_writer_tensor(w, p->name, 0 /* GGML_TYPE_F32 */, p->n_dims, p->ne, tm->w + p->off,
                               (uint64_t)p->n * sizeof(float)))
            goto out;
    }
    ret = gguf_writer_write(w, path);
out:
    gguf_writer_free(w);
    model_release(&m);
    return ret;
}

/* OUT/hf/ from the written GGUF (quant/hf_export.h: config.json, safetensors, tokenizer.json) */
static int write_hf(const char *gguf_path, const char *dir) {
    struct model m;
    struct hfx_model hm = {0};
    struct safetensors_writer w = SAFETENSORS_WRITER_INIT;
    struct hfx_stats st = {0};
    void **own = NULL;
    int ret = -1;
    if (model_load(&m, gguf_path)) return -1;
    if (hfx_collect(&hm, &m, gguf_path, false)) goto out;
    own = xcalloc((size_t)hm.n + 1, sizeof *own, "HF export");
    if (!own) goto out;
    for (int i = 0; i < hm.n; i++)
        if (hfx_add_float(&w, &hm.t[i], &own[i])) goto out;
    if (safetensors_writer_set_meta(&w, "format", "pt")) goto out;
    ret = hfx_write_dir(&hm, dir, &w, NULL, &st);
out:
    for (int i = 0; own && i < hm.n; i++) free(own[i]);
    free(own);
    safetensors_writer_release(&w);
    hfx_release(&hm);
    model_release(&m);
    return ret;
}

/* ===== the loop ===== */

/* mean NLL over the first n_docs held-out documents (0 = all) */
static int heldout_loss(struct train_model *tm, const struct train_data *d, int n_docs,
                        double *out) {
    double sum = 0;
    int64_t n = 0;
    const int nd = n_docs > 0 ? LB_MIN(n_docs, d->n_ho) : d->n_ho;
    for (int i = 0; i < nd; i++) {
        double s;
        if (train_nll(tm, d->ho[i], 1, d->ho_n[i] - 1, &s)) return -1;
        sum += s;
        n += d->ho_n[i] - 1;
    }
    *out = sum / (double)n;
    return 0;
}

static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* one optimizer step: batch windows in micro-batches; returns the mean train NLL in *loss */
static int train_step(struct train_model *tm, const struct train_settings *s,
                      const struct train_data *d, int step, uint64_t *rng, int *win, double *loss,
                      double *gnorm) {
    const int T = s->c.ctx, n_mb = s->batch / s->micro_batch;
    const double scale = 1.0 / ((double)s->batch * T);
    double sum = 0;
    train_zero_grad(tm);
    for (int mb = 0; mb < n_mb; mb++) {
        for (int b = 0; b < s->micro_batch; b++) {
            const uint64_t off = rng_next(rng) % (uint64_t)(d->n_tok - T);
            memcpy(win + (size_t)b * (T + 1), d->tok + off, (size_t)(T + 1) * sizeof *win);
        }
        double nll;
        if (train_fwd_bwd(tm, win, s->micro_batch, T, scale, &nll)) return -1;
        sum += nll;
    }
    *loss = sum * scale;
    *gnorm = train_clip_grad(tm, s->o.clip);
    train_adamw(tm, &s->o, step + 1, train_lr(&s->o, step));
    return 0;
}

static int path_join(char *buf, size_t size, const char *dir, const char *name) {
    if ((size_t)snprintf(buf, size, "%s/%s", dir, name) >= size)
        return err("train: path %s/%s too long", dir, name);
    return 0;
}

int cmd_train(int argc, char **argv) {
    const char *cfg_path = NULL, *tok_path = NULL, *out_dir = NULL, *heldout = NULL, *v;
    char **corpus = xcalloc((size_t)argc + 1, sizeof *corpus, "arguments");
    const char **sets = xcalloc((size_t)argc + 1, sizeof *sets, "arguments");
    int n_corpus = 0, n_sets = 0, threads = 0, bench = 0, stop_after = 0, rc;
    bool quiet = false, resume = false;
    struct train_settings s;
    struct tokenizer *tok = NULL;
    struct train_data d = {0};
    struct train_model tm = TRAIN_MODEL_INIT;
    struct curve cv = {0};
    int *win = NULL, ret = -1;
    json_t *summary = NULL;
    if (!corpus || !sets) goto out;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help")) {
            fputs(train_help, stdout);
            ret = 0;
            goto out;
        }
        if (!strcmp(argv[i], "--quiet")) quiet = true;
        else if (!strcmp(argv[i], "--resume")) resume = true;
        else if ((rc = cli_opt(argc, argv, &i, "--config", &v))) { if (rc < 0) goto out; cfg_path = v; }
        else if ((rc = cli_opt(argc, argv, &i, "--corpus", &v))) { if (rc < 0) goto out; corpus[n_corpus++] = (char *)v; }
        else if ((rc = cli_opt(argc, argv, &i, "--tokenizer", &v))) { if (rc < 0) goto out; tok_path = v; }
        else if ((rc = cli_opt(argc, argv, &i, "-o", &v))) { if (rc < 0) goto out; out_dir = v; }
        else if ((rc = cli_opt(argc, argv, &i, "--heldout", &v))) { if (rc < 0) goto out; heldout = v; }
        else if ((rc = cli_opt(argc, argv, &i, "--set", &v))) { if (rc < 0) goto out; sets[n_sets++] = v; }
        else if ((rc = cli_opt(argc, argv, &i, "--threads", &v))) { if (rc < 0 || cli_int(v, "--threads", 1, 1024, &threads)) goto out; }
        else if ((rc = cli_opt(argc, argv, &i, "--stop-after", &v))) { if (rc < 0 || cli_int(v, "--stop-after", 1, 1 << 30, &stop_after)) goto out; }
        else if ((rc = cli_opt(argc, argv, &i, "--bench", &v))) { if (rc < 0 || cli_int(v, "--bench", 1, 1 << 20, &bench)) goto out; }
        else {
            cli_unknown("train", argv[i]);
            goto out;
        }
    }
    if (!cfg_path || !n_corpus || !tok_path || (!out_dir && !bench)) {
        fputs(train_help, stderr);
        err("train: --config, --corpus, --tokenizer and -o are required");
        goto out;
    }
    lb_set_threads(threads);
    settings_default(&s);
    if (settings_load(&s, cfg_path)) goto out;
    for (int i = 0; i < n_sets; i++) {
        char line[4200];
        snprintf(line, sizeof line, "%s", sets[i]);
        if (settings_line(&s, line, "--set")) goto out;
    }
    if (heldout && pipe_expand(heldout, s.heldout, sizeof s.heldout)) goto out;
    if (settings_check(&s)) goto out;
    if (access(tok_path, R_OK)) {
        err("train: tokenizer %s: %s (tok512.bin is under LOWBIT_DATA/tokenizers)", tok_path,
            strerror(errno));
        goto out;
    }
    if (tokenizer_load(&tok, tok_path)) goto out;
    if (tokenizer_bos(tok) < 0) {
        err("train: the tokenizer %s has no BOS token", tok_path);
        goto out;
    }
    s.c.vocab = tokenizer_vocab_size(tok);
    if (data_load(&d, &s, corpus, n_corpus, tok, quiet || bench)) goto out;
    if (train_model_init(&tm, &s.c, s.micro_batch)) goto out;
    train_model_randomize(&tm, s.seed);
    win = xmalloc((size_t)s.micro_batch * (size_t)(s.c.ctx + 1) * sizeof *win, "windows");
    if (!win) goto out;
    const uint64_t key = run_key(&s, &d);
    uint64_t rng = s.seed ^ 0xD1B54A32D192ED03ull;
    int step0 = 0;
    double secs0 = 0;
    const double tok_per_step = (double)s.batch * s.c.ctx;
    const double flops_tok = train_flops_per_token(&tm, s.c.ctx);

    if (bench) { /* one warm-up step, then bench timed steps */
        double loss, gn, t0 = 0;
        for (int st = 0; st <= bench; st++) {
            if (st == 1) t0 = now_s();
            if (train_step(&tm, &s, &d, st, &rng, win, &loss, &gn)) goto out;
        }
        const double el = now_s() - t0, tps = bench * tok_per_step / el;
        const double gf = tps * flops_tok / 1e9, peak = kernels_fma_peak_gflops(lb_threads(), 0.5);
        printf("train bench: %lld params, dim %d, hidden %d, %d layers, ctx %d, batch %d x %d "
               "tokens, %d threads, %s\n", (long long)train_n_params(&tm), s.c.dim,
               s.c.hidden_dim, s.c.n_layers, s.c.ctx, s.batch, s.c.ctx, lb_threads(), kernels_isa());
        printf("train bench: %.0f tokens/s  %.1f GFLOP/s  (%.3g GFLOP/token)  FMA peak %.1f "
               "GFLOP/s  %.1f%% of peak  loss %.4f\n", tps, gf, flops_tok / 1e9, peak,
               100 * gf / peak, loss);
        ret = 0;
        goto out;
    }

    char ckpt[4200], gguf[4200], hfdir[4200], curve_path[4200], json_path[4200];
    if (pipe_mkdirs(out_dir) || path_join(ckpt, sizeof ckpt, out_dir, "ckpt.bin") ||
        path_join(gguf, sizeof gguf, out_dir, "model.gguf") ||
        path_join(hfdir, sizeof hfdir, out_dir, "hf") ||
        path_join(curve_path, sizeof curve_path, out_dir, "curve.csv") ||
        path_join(json_path, sizeof json_path, out_dir, "train.json"))
        goto out;
    if (resume && !access(ckpt, R_OK)) {
        if (ckpt_read(ckpt, &tm, key, &step0, &rng, &secs0, &cv)) goto out;
        if (!quiet) fprintf(stderr, "train: resumed from %s at step %d\n", ckpt, step0);
    }
    if (!quiet)
        fprintf(stderr, "train: %lld parameters, %d steps of %d x %d tokens, %d threads (%s)\n",
                (long long)train_n_params(&tm), s.o.steps, s.batch, s.c.ctx, lb_threads(),
                kernels_isa());
    const bool tty = !quiet && isatty(2);
    double t_start = now_s(), loss_acc = 0, gnorm = 0;
    int n_acc = 0;
    for (int step = step0; step < s.o.steps; step++) {
        double loss;
        if (train_step(&tm, &s, &d, step, &rng, win, &loss, &gnorm)) goto out;
        if (!isfinite(loss)) {
            err("train: the loss is %g at step %d (lower lr?)", loss, step + 1);
            goto out;
        }
        loss_acc += loss, n_acc++;
        const double secs = secs0 + now_s() - t_start;
        const bool last = step + 1 == s.o.steps;
        if ((s.eval_every && (step + 1) % s.eval_every == 0) || last) {
            double ho;
            if (heldout_loss(&tm, &d, last ? 0 : s.eval_docs, &ho)) goto out;
            const double row[CURVE_COLS] = {step + 1, (step + 1) * tok_per_step, loss_acc / n_acc,
                                             ho, train_lr(&s.o, step), secs};
            if (curve_add(&cv, row)) goto out;
            if (!quiet)
                fprintf(stderr, "%sstep %d/%d  train %.4f  held-out %.4f  lr %.3g  |g| %.3f  "
                                "%.0f tok/s  %.0f s\n", tty ? "\r" : "", step + 1, s.o.steps,
                        loss_acc / n_acc, ho, train_lr(&s.o, step), gnorm,
                        (step + 1 - step0) * tok_per_step / (now_s() - t_start), secs);
            loss_acc = 0, n_acc = 0;
        }
        const bool stop = stop_after && step + 1 == stop_after && !last;
        if ((s.ckpt_every && (step + 1) % s.ckpt_every == 0) || last || stop)
            if (ckpt_write(ckpt, &tm, key, step + 1, rng, secs0 + now_s() - t_start, &cv))
                goto out;
        if (stop) { /* an interruption, for tests of --resume: the checkpoint only */
            ret = 0;
            goto out;
        }
        if (tty) {
            const double el = now_s() - t_start, tps = (step + 1 - step0) * tok_per_step / el;
            fprintf(stderr, "\rstep %d/%d  loss %.4f  %.0f tok/s  ETA %.0f s   ", step + 1,
                    s.o.steps, loss, tps, (s.o.steps - step - 1) * tok_per_step / tps);
        }
    }
    if (tty) fputc('\n', stderr);
    if (step0 >= s.o.steps && !cv.n) {
        err("train: nothing to do (the checkpoint is at step %d of %d)", step0, s.o.steps);
        goto out;
    }
    const double final_ho = cv.r[(size_t)(cv.n - 1) * CURVE_COLS + 3];
    const double secs = cv.r[(size_t)(cv.n - 1) * CURVE_COLS + 5];
    /* general.name: the config's file name without its extension (not the output directory,
     * so the same run writes the same bytes wherever it goes) */
    char name[256];
    const char *base = strrchr(cfg_path, '/');
    snprintf(name, sizeof name, "%s", base ? base + 1 : cfg_path);
    char *dot = strrchr(name, '.');
    if (dot && dot != name) *dot = 0;
    if (write_curve(curve_path, &cv) || write_gguf(gguf, &tm, tok, name) ||
        write_hf(gguf, hfdir))
        goto out;
    summary = json_pack(
        "{s:I, s:{s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:b}, s:{s:i, s:i, s:i, s:f, s:f, s:i, "
        "s:f, s:f, s:I}, s:I, s:I, s:i, s:i, s:o, s:i, s:I, s:i, s:f, s:f, s:f, s:s}",
        "params", (json_int_t)train_n_params(&tm), "model", "dim", s.c.dim, "hidden_dim",
        s.c.hidden_dim, "n_layers", s.c.n_layers, "n_heads", s.c.n_heads, "n_kv_heads",
        s.c.n_kv_heads, "vocab", s.c.vocab, "ctx", s.c.ctx, "tied", s.c.tied, "opt", "steps",
        s.o.steps, "batch", s.batch, "micro_batch", s.micro_batch, "lr", (double)s.o.lr,
        "min_lr", (double)s.o.min_lr, "warmup", s.o.warmup, "weight_decay",
        (double)s.o.weight_decay, "clip", (double)s.o.clip, "seed", (json_int_t)s.seed,
        "train_tokens_seen", (json_int_t)(s.o.steps * tok_per_step), "corpus_tokens",
        (json_int_t)d.n_tok, "corpus_documents", d.n_docs, "heldout_overlap_dropped",
        d.n_dropped, "heldout", text_json(s.heldout), "heldout_documents", d.n_ho, "heldout_tokens",
        (json_int_t)d.ho_tokens, "heldout_cut", d.n_ho_cut, "heldout_loss", final_ho,
        "train_seconds", secs, "gflop_per_token", flops_tok / 1e9, "heldout_protocol",
        "lowbit nll: BOS + each <|endoftext|>-separated document, at most ctx tokens, mean NLL "
        "(nats) per predicted token");
    if (!summary) { /* (the held-out file's name is converted as text: it cannot be why) */
        err("train: %s: out of memory", json_path);
        goto out;
    }
    if (pipe_write_json(json_path, summary)) goto out;
    printf("train: %s: held-out loss %.4f nats/token (%d documents, %lld tokens), %d steps, "
           "%.0f s; %d overlapping training documents dropped\n", out_dir, final_ho, d.n_ho,
           (long long)d.ho_tokens, s.o.steps, secs, d.n_dropped);
    ret = 0;
out:
    json_decref(summary);
    free(cv.r);
    free(win);
    train_model_release(&tm);
    data_release(&d);
    tokenizer_free(tok);
    free(corpus);
    free(sets);
    return ret;
}
