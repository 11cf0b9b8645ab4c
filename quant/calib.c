/* quant/calib.c: calibration sets (rules, RNG and provenance in calib.h). */
#include "quant/calib.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eval/model.h"
#include "eval/sha256.h"
#include "eval/tokenizer.h"
#include "kernels/common.h"
#include "quant/quant.h"
#include "quant/hf_export.h"

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
