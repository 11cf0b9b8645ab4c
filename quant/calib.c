/* quant/calib.c: calibration sets (rules, RNG and provenance in calib.h). */
#include "quant/calib.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "eval/model.h"
#include "kernels/base/sha256.h"
#include "eval/tokenizer.h"
#include "kernels/common.h"
#include "quant/quant.h"
#include "quant/hf_export.h"
#include "quant/resume.h"

uint64_t calib_rng_next(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* uniform in [0, n) by rejection: draws below the largest multiple of n only */
static uint64_t rng_below(uint64_t *state, uint64_t n) {
    const uint64_t lim = UINT64_MAX - UINT64_MAX % n;
    uint64_t v;
    do v = calib_rng_next(state);
    while (v >= lim);
    return v % n;
}

static bool readable(const char *p) { return !access(p, R_OK); }

int calib_resolve(const char *name, char *path, size_t size) {
    if (!name || !*name) return err("calibration: no calib_set given (e.g. groups_merged)");
    const char *d = getenv("LOWBIT_DATA");
    if (!d || !*d) d = "../shared/data";
    const char *rest = NULL;
    if (!strncmp(name, "${LOWBIT_DATA}", 14)) rest = name + 14;
    else if (!strncmp(name, "$LOWBIT_DATA", 12)) rest = name + 12;
    if (rest) {
        if ((size_t)snprintf(path, size, "%s%s", d, rest) >= size)
            return err("calibration: path %s too long", name);
        if (readable(path)) return 0;
        return err("calibration: cannot read %s (%s)", path, strerror(errno));
    }
    char cand[3][4096];
    snprintf(cand[0], sizeof cand[0], "%s/datasets/calibration/%s", d, name);
    snprintf(cand[1], sizeof cand[1], "%s/datasets/calibration/%s.txt", d, name);
    snprintf(cand[2], sizeof cand[2], "%s/datasets/%s", d, name);
    const bool plain = !strchr(name, '/');
    if (!plain && readable(name)) return snprintf(path, size, "%s", name), 0;
    for (int i = 0; i < 3; i++)
        if (readable(cand[i]) && strlen(cand[i]) < size)
            return snprintf(path, size, "%s", cand[i]), 0;
    if (plain && readable(name)) return snprintf(path, size, "%s", name), 0;
    return err("calibration: set '%s' not found (looked for %s, %s, %s and the path itself; "
               "set LOWBIT_DATA or give a path)", name, cand[0], cand[1], cand[2]);
}

void calib_release(struct calib_set *c) {
    free(c->tokens);
    memset(c, 0, sizeof *c);
}

/* the whole file into *buf (owned), its sha256 into hex */
static int read_all(const char *path, char **buf, size_t *len, char hex[65]) {
    if (read_file_all(path, "the calibration text", buf, len)) return -1;
    struct sha256 h;
    sha256_init(&h);
    sha256_update(&h, *buf, *len);
    sha256_hex(&h, hex);
    return 0;
}

int calib_load(struct calib_set *c, const char *name, const struct tokenizer *tok, int n_samples,
               int seqlen, uint64_t seed) {
    memset(c, 0, sizeof *c);
    if (!tok) return err("calibration: the model has no tokenizer (give --tokenizer)");
    if (n_samples < 1 || seqlen < 2)
        return err("calibration: %d samples of %d tokens (expected >= 1 samples of >= 2 tokens)",
                   n_samples, seqlen);
    if (calib_resolve(name, c->path, sizeof c->path)) return -1;
    char *text = NULL;
    size_t len = 0;
    int *ids = NULL, n_ids = 0, ret = -1;
    if (read_all(c->path, &text, &len, c->file_sha256)) return -1;
    if (tokenizer_encode(tok, text, len, false, &ids, &n_ids)) goto out;
    const int bos = tokenizer_bos(tok);
    c->bos = bos >= 0;
    const int body = seqlen - (c->bos ? 1 : 0); /* text tokens per window */
    if (n_ids < body) {
        err("calibration: %s has %d tokens, fewer than one window of %d (use a smaller "
            "calib_seqlen or a longer text)", c->path, n_ids, body);
        goto out;
    }
    c->tokens = xmalloc((size_t)n_samples * (size_t)seqlen * sizeof *c->tokens, "calibration");
    if (!c->tokens) goto out;
    uint64_t st = seed;
    const uint64_t n_starts = (uint64_t)(n_ids - body) + 1;
    struct sha256 h;
    sha256_init(&h);
    for (int i = 0; i < n_samples; i++) {
        int *w = c->tokens + (size_t)i * seqlen;
        const uint64_t o = rng_below(&st, n_starts);
        if (c->bos) w[0] = bos;
        memcpy(w + (c->bos ? 1 : 0), ids + o, (size_t)body * sizeof *w);
        for (int t = 0; t < seqlen; t++) {
            const uint32_t v = (uint32_t)w[t];
            const uint8_t le[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16),
                                   (uint8_t)(v >> 24)};
            sha256_update(&h, le, 4);
        }
    }
    sha256_hex(&h, c->tokens_sha256);
    c->n_text_tokens = n_ids;
    c->n_samples = n_samples;
    c->seqlen = seqlen;
    c->seed = seed;
    ret = 0;
out:
    free(text);
    free(ids);
    if (ret) calib_release(c);
    return ret;
}

/* ===== true-sequential passes ===== */

int64_t calib_source_row(const struct model *m, bool qk, int64_t r) {
    if (!qk || m->cfg.rope_style != ROPE_NORM) return r;
    const int64_t hd = m->cfg.head_dim, h = r / hd, w = r % hd, s = w / (hd / 2), i = w % (hd / 2);
    return h * hd + 2 * i + s;
}

void calib_f32_slot(struct tensor *slot, float *data, int64_t K, int64_t N) {
    struct tensor f = {0};
    snprintf(f.name, sizeof f.name, "%s", slot->name);
    f.type = DTYPE_F32;
    f.n_dims = 2;
    f.ne[0] = K, f.ne[1] = N, f.ne[2] = f.ne[3] = 1;
    f.data = data;
    *slot = f;
}

void calib_swap_in(const struct model *m, struct hfx_tensor *t, bool qk, struct tensor *slot) {
    for (int64_t r = 0; r < t->N; r++)
        qint_row_to_f32(&t->q, r, t->f32 + calib_source_row(m, qk, r) * t->K);
    calib_f32_slot(slot, t->f32, t->K, t->N);
}

double calib_peak_rss_mb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double mb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) mb = atof(line + 6) / 1024.0;
    if (f) fclose(f);
    return mb;
}

int calib_load_job(struct calib_set *c, const char *algo, const struct quant_job *j,
                   uint64_t seed) {
    const struct recipe *r = j->r;
    const int n_samples = r->calib_nsamples > 0 ? r->calib_nsamples : 128;
    int seqlen = r->calib_seqlen > 0 ? r->calib_seqlen : 2048;
    const int ctx = j->m->cfg.ctx_len;
    if (ctx > 0 && seqlen > ctx) {
        if (!j->quiet)
            fprintf(stderr, "%s: calib_seqlen %d capped to the model's context %d\n", algo, seqlen,
                    ctx);
        seqlen = ctx;
    }
    if (calib_load(c, r->calib_set, j->tok, n_samples, seqlen, seed)) return -1;
    if (!j->quiet)
        fprintf(stderr, "%s: calibration %s: %d windows of %d tokens (of %lld), seed %llu\n", algo,
                c->path, c->n_samples, c->seqlen, (long long)c->n_text_tokens,
                (unsigned long long)seed);
    return 0;
}

/* ===== the calibration driver ===== */

size_t calib_stream_budget(void) {
    const char *e = getenv("LOWBIT_CALIB_MEM");
    if (e && *e) {
        char *end;
        const double mb = strtod(e, &end);
        if (end != e && !*end && mb >= 0) return (size_t)(mb * 1048576.0);
    }
    const size_t q = mem_available() / 4, cap = (size_t)2 << 30;
    return q < cap ? q : cap;
}

/* the stream's floats: the inputs x (rows × D), the carry (rows × wc), a copy of x when kept;
 * 0 when the count overflows */
static size_t stream_floats(const struct model_config *c, const struct calib_set *cs,
                            bool keep_input, size_t *fl_x, size_t *fl_c) {
    const size_t rows = (size_t)cs->n_samples * (size_t)cs->seqlen;
    const size_t wc = (size_t)LB_MAX(c->n_heads * c->head_dim, c->hidden_dim);
    if (cs->seqlen <= 0 || rows / (size_t)cs->seqlen != (size_t)cs->n_samples ||
        rows > SIZE_MAX / 4 / (3 * (size_t)c->dim + wc))
        return 0;
    *fl_x = rows * (size_t)c->dim, *fl_c = rows * wc;
    return *fl_x * (keep_input ? 2 : 1) + *fl_c;
}

size_t calib_stream_bytes(const struct model *m, const struct calib_set *cs, bool keep_input) {
    size_t fl_x, fl_c;
    const size_t b = stream_floats(&m->cfg, cs, keep_input, &fl_x, &fl_c) * sizeof(float);
    return b > calib_stream_budget() ? 0 : b;
}

int calib_stream_init(struct calib_stream *st, const struct model *fm, const struct calib_set *cs,
                      bool keep_input, const char *spill) {
    memset(st, 0, sizeof *st);
    const struct model_config *c = &fm->cfg;
    st->cs = cs;
    st->n = cs->n_samples, st->T = cs->seqlen, st->D = c->dim;
    st->wc = LB_MAX(c->n_heads * c->head_dim, c->hidden_dim);
    const size_t rows = (size_t)st->n * (size_t)st->T;
    size_t fl_x = 0, fl_c = 0;
    const size_t bytes = stream_floats(c, cs, keep_input, &fl_x, &fl_c) * sizeof(float);
    if (!bytes) return err("calibration: %d windows of %d tokens are too many", st->n, st->T);
    if (bytes > calib_stream_budget() && spill) {
        /* an unlinked file beside `spill`: paged by the kernel, gone with the process */
        char path[4200];
        snprintf(path, sizeof path, "%s.calib-XXXXXX", spill);
        const int fd = mkstemp(path);
        if (fd < 0) return err("calibration: cannot create a spill file %s: %s", path,
                               strerror(errno));
        unlink(path);
        int e = posix_fallocate(fd, 0, (off_t)bytes);
        void *p = e ? MAP_FAILED
                    : mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED && !e) e = errno;
        close(fd);
        if (p == MAP_FAILED)
            return err("calibration: a spill file of %.1f MiB beside %s: %s", bytes / 1048576.0,
                       spill, strerror(e));
        st->map = p, st->map_len = bytes, st->spilled = true;
        st->x = p;
    } else {
        char what[128];
        snprintf(what, sizeof what, "the calibration stream (%d windows of %d tokens)", st->n,
                 st->T);
        if (mem_check(bytes, what)) return -1;
        if (!(st->x = xmalloc(bytes, what))) return -1;
    }
    st->carry = st->x + fl_x;
    if (keep_input) st->x0 = st->carry + fl_c;
    if (fwd_init_block(&st->fs, fm, st->T)) {
        calib_stream_release(st);
        return -1;
    }
    for (size_t r = 0; r < rows; r++) fwd_embed(fm, cs->tokens[r], st->x + r * (size_t)st->D);
    return 0;
}

void calib_stream_release(struct calib_stream *st) {
    if (st->fs.m) fwd_release(&st->fs);
    if (st->map) munmap(st->map, st->map_len);
    else free(st->x);
    free(st->scratch);
    memset(st, 0, sizeof *st);
}

int calib_stream_save(const struct calib_stream *st, const struct qresume *r) {
    if (st->next != FWD_QKV) return err("calibration: a checkpoint in the middle of block %d", st->block);
    return qresume_put(r, "x.bin", st->x, (size_t)st->n * (size_t)st->T * (size_t)st->D * sizeof(float));
}

int calib_stream_restore(struct calib_stream *st, const struct qresume *r, int l_done) {
    if (st->block != 0 || st->next != FWD_QKV)
        return err("calibration: a checkpoint restored into a stream at block %d", st->block);
    if (qresume_get(r, "x.bin", st->x, (size_t)st->n * (size_t)st->T * (size_t)st->D * sizeof(float)))
        return -1;
    st->block = l_done + 1, st->next = FWD_QKV;
    st->n_block_passes = (long)(l_done + 1) * st->n;
    return 0;
}

static int stream_run(struct calib_stream *st, int l, enum fwd_stage stage, float *x) {
    const double t0 = now_s();
    for (int w = 0; w < st->n; w++) {
        const size_t r0 = (size_t)w * (size_t)st->T;
        if (fwd_block_stage(&st->fs, l, stage, x + r0 * (size_t)st->D,
                            st->carry + r0 * (size_t)st->wc, st->T))
            return -1;
    }
    st->seconds += now_s() - t0;
    return 0;
}

int calib_stream_stage(struct calib_stream *st, int l, enum fwd_stage stage) {
    if (l != st->block || (int)stage != st->next)
        return err("calibration: block %d stage %d run out of order (expected block %d stage %d)",
                   l, (int)stage, st->block, st->next);
    if (stage == FWD_QKV && st->x0)
        memcpy(st->x0, st->x, (size_t)st->n * (size_t)st->T * (size_t)st->D * sizeof(float));
    if (stream_run(st, l, stage, st->x)) return -1;
    if (stage == FWD_OUT) {
        st->block++, st->next = FWD_QKV;
        st->n_block_passes += st->n;
    } else {
        st->next = stage + 1;
    }
    return 0;
}

int calib_stream_finish(struct calib_stream *st, int l) {
    if (l != st->block) return err("calibration: block %d finished out of order", l);
    while (st->block == l)
        if (calib_stream_stage(st, l, (enum fwd_stage)st->next)) return -1;
    return 0;
}

/* stages first..last of block l on a copy of every window's input (the stream stays where it is) */
static int probe_stages(struct calib_stream *st, int l, int first, int last) {
    const size_t W = (size_t)st->T * (size_t)st->D;
    if (!st->scratch && !(st->scratch = xmalloc(W * sizeof(float), "a calibration window")))
        return -1;
    const double t0 = now_s();
    for (int w = 0; w < st->n; w++) {
        const size_t r0 = (size_t)w * (size_t)st->T;
        memcpy(st->scratch, st->x + r0 * (size_t)st->D, W * sizeof(float));
        for (int s = first; s <= last; s++)
            if (fwd_block_stage(&st->fs, l, (enum fwd_stage)s, st->scratch,
                                st->carry + r0 * (size_t)st->wc, st->T))
                return -1;
    }
    st->seconds += now_s() - t0;
    return 0;
}

int calib_stream_probe(struct calib_stream *st, int l, enum fwd_stage upto) {
    if (l != st->block || st->next != FWD_QKV)
        return err("calibration: a probe of block %d in the middle of block %d", l, st->block);
    return probe_stages(st, l, FWD_QKV, (int)upto);
}

int calib_stream_probe_out(struct calib_stream *st, int l) {
    if (l != st->block || st->next != FWD_OUT)
        return err("calibration: block %d's output probed at block %d stage %d", l, st->block,
                   st->next);
    return probe_stages(st, l, FWD_OUT, FWD_OUT);
}

int calib_stream_redo(struct calib_stream *st, int l) {
    if (!st->x0) return err("calibration: block %d again, but its input was not kept", l);
    if (l != st->block - 1 || st->next != FWD_QKV)
        return err("calibration: block %d again after block %d", l, st->block - 1);
    memcpy(st->x, st->x0, (size_t)st->n * (size_t)st->T * (size_t)st->D * sizeof(float));
    for (int s = FWD_QKV; s < FWD_N_STAGES; s++)
        if (stream_run(st, l, (enum fwd_stage)s, st->x)) return -1;
    return 0;
}
