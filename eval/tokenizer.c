/* eval/tokenizer.c: loading (llama2.c tokenizer.bin, GGUF vocab; tokenizer.json is in tok_bpe.c),
 * the shared vocabulary table, encode dispatch and decoding. See tokenizer.h.
 *
 * Sources for the behaviour reproduced here (no code taken from them):
 *  - llama2.c run.c build_tokenizer/encode/decode (Karpathy, MIT): tokenizer.bin layout, BOS=1,
 *    EOS=2, byte tokens at id byte+3, the leading space dropped after BOS.
 *  - llama.cpp src/llama-vocab.cpp (ggml authors, MIT): GGUF tokenizer.ggml.* keys and defaults
 *    (add_space_prefix true, add_bos_token true for "llama"), token_to_id keeps the last id of a
 *    duplicated piece, token types 1..6, byte_to_token looks up "<0xXX>".
 * Added tokens written in the text are matched for tokenizer.json vocabularies (tok_added.c);
 * llama2.c and GGUF vocabularies never produce a special token from text. */
#include "eval/tokenizer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "eval/gguf.h"
#include "eval/tok_impl.h"
#include "kernels/common.h"

#define TOK_MAX_VOCAB (1 << 24) /* refuse more ids than any real vocabulary has (16M) */

/* ===== vocabulary table ===== */

uint64_t tok_hash(const char *s, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (uint64_t)n, w;
    for (; n >= 8; s += 8, n -= 8) {
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    w = 0;
    memcpy(&w, s, n);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 29);
}

int tok_lookup(const struct tokenizer *t, const char *s, size_t n) {
    if (!t->map.slot) return -1;
    for (size_t i = tok_hash(s, n) & t->map.mask;; i = (i + 1) & t->map.mask) {
        int id = t->map.slot[i];
        if (id < 0) return -1;
        if ((size_t)t->len[id] == n && !memcmp(tok_piece(t, id), s, n)) return id;
    }
}

int tok_vocab_alloc(struct tokenizer *t, int n, size_t arena_size) {
    if (n <= 0 || n > TOK_MAX_VOCAB)
        return err("tokenizer: %d tokens (expected 1..%d)", n, TOK_MAX_VOCAB);
    t->n_vocab = n;
    t->arena = xmalloc(arena_size + 1, "tokenizer pieces");
    t->off = xcalloc((size_t)n, sizeof *t->off, "tokenizer offsets");
    t->len = xmalloc((size_t)n * sizeof *t->len, "tokenizer lengths");
    t->score = xcalloc((size_t)n, sizeof *t->score, "tokenizer scores");
    t->type = xcalloc((size_t)n, 1, "tokenizer types");
    if (!t->arena || !t->off || !t->len || !t->score || !t->type) return -1;
    t->arena[0] = 0; /* ids never set point here: "" with len -1 */
    for (int i = 0; i < n; i++) t->len[i] = -1;
    return 0;
}

void tok_set_piece(struct tokenizer *t, size_t *arena_used, int id, const char *s, size_t n) {
    t->off[id] = *arena_used;
    memcpy(t->arena + *arena_used, s, n);
    t->arena[*arena_used + n] = 0;
    t->len[id] = (int32_t)n;
    *arena_used += n + 1;
}

/* "<0xXX>" with upper-case hex, as SentencePiece names byte pieces: the byte, or -1 */
static int byte_piece_value(const char *s, size_t n) {
    if (n != 6 || memcmp(s, "<0x", 3) || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

int tok_vocab_index(struct tokenizer *t, const bool *include) {
    size_t cap = 16;
    while (cap < 2 * (size_t)t->n_vocab) cap *= 2;
    t->map.slot = xmalloc(cap * sizeof *t->map.slot, "tokenizer hash table");
    if (!t->map.slot) return -1;
    t->map.mask = cap - 1;
    for (size_t i = 0; i < cap; i++) t->map.slot[i] = -1;
    for (int id = 0; id < t->n_vocab; id++) {
        if (t->len[id] < 0 || (include && !include[id])) continue;
        const char *s = tok_piece(t, id);
        size_t n = (size_t)t->len[id], i = tok_hash(s, n) & t->map.mask;
        while (t->map.slot[i] >= 0) {
            int o = t->map.slot[i];
            if ((size_t)t->len[o] == n && !memcmp(tok_piece(t, o), s, n)) break; /* later wins */
            i = (i + 1) & t->map.mask;
        }
        t->map.slot[i] = id;
        for (size_t j = 1; j < n; j++) {
            unsigned k = (unsigned)(unsigned char)s[j - 1] << 8 | (unsigned char)s[j];
            t->joinable[k >> 6] |= 1ull << (k & 63);
        }
    }
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        t->byte_id[b] = tok_lookup(t, name, 6);
    }
    return 0;
}

int tok_ids_push(struct tok_ids *v, int id) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? 2 * v->cap : 64;
        int *p = realloc(v->v, cap * sizeof *p);
        if (!p) return err("out of memory: %zu token ids", cap);
        v->v = p;
        v->cap = cap;
    }
    v->v[v->n++] = id;
    return 0;
}

size_t tok_utf8_len(unsigned char c) {
    static const uint8_t lut[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lut[c >> 4];
}

size_t tok_utf8_valid(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k;
        uint32_t cp, min;
        if (c >= 0xC2 && c <= 0xDF) k = 1, cp = c & 0x1F, min = 0x80;
        else if (c >= 0xE0 && c <= 0xEF) k = 2, cp = c & 0x0F, min = 0x800;
        else if (c >= 0xF0 && c <= 0xF4) k = 3, cp = c & 0x07, min = 0x10000;
        else return i;
        if (n - i <= k) return i;
        for (size_t j = 1; j <= k; j++) {
            if ((p[i + j] & 0xC0) != 0x80) return i;
            cp = cp << 6 | (p[i + j] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
        i += k + 1;
    }
    return n;
}

/* ===== llama2.c tokenizer.bin ===== */

/* tokenizer.bin: i32 max_token_length, then until the end of the file {f32 score, i32 len, len
 * bytes}. The token count is not stored (llama2.c takes it from the model config): it is what the
 * file holds, and a record cut short is an error. */
static int load_llama2c(struct tokenizer *t, const char *path) {
    unsigned char *d = NULL;
    size_t size = 0, arena = 0, used = 0;
    int ret = -1, n = 0;
    int32_t max_len;
    char *raw;
    if (read_file_all(path, "the tokenizer file", &raw, &size)) return -1;
    d = (unsigned char *)raw;
    if (size < 4) {
        err("%s: truncated llama2.c tokenizer: %zu bytes (expected an i32 max_token_length, then "
            "score/length/bytes records)", path, size);
        goto out;
    }
    memcpy(&max_len, d, 4);
    if (max_len <= 0 || max_len > (1 << 20)) {
        err("%s: max_token_length %d is not a plausible llama2.c tokenizer header (expected "
            "1..%d)", path, (int)max_len, 1 << 20);
        goto out;
    }
    for (size_t p = 4; p < size; n++) {
        int32_t l;
        if (size - p < 8) {
            err("%s: truncated llama2.c tokenizer: token %d needs 8 header bytes at offset %zu, "
                "%zu left", path, n, p, size - p);
            goto out;
        }
        memcpy(&l, d + p + 4, 4);
        if (l < 0 || l > max_len) {
            err("%s: token %d at offset %zu has length %d (expected 0..max_token_length %d)",
                path, n, p, (int)l, (int)max_len);
            goto out;
        }
        if (size - p - 8 < (size_t)l) {
            err("%s: truncated llama2.c tokenizer: token %d needs %d bytes at offset %zu, %zu "
                "left", path, n, (int)l, p + 8, size - p - 8);
            goto out;
        }
        p += 8 + (size_t)l;
        arena += (size_t)l + 1;
        if (n >= TOK_MAX_VOCAB) {
            err("%s: more than %d tokens", path, TOK_MAX_VOCAB);
            goto out;
        }
    }
    if (n < 3) {
        err("%s: %d tokens (a llama2.c tokenizer has at least <unk>, <s>, </s>)", path, n);
        goto out;
    }
    if (tok_vocab_alloc(t, n, arena)) goto out;
    for (size_t p = 4, i = 0; p < size; i++) {
        int32_t l;
        memcpy(&t->score[i], d + p, 4);
        memcpy(&l, d + p + 4, 4);
        /* llama2.c compares pieces as C strings: a piece ends at its first NUL */
        tok_set_piece(t, &used, (int)i, (const char *)d + p + 8, strnlen((char *)d + p + 8, l));
        t->type[i] = byte_piece_value(tok_piece(t, (int)i), (size_t)t->len[i]) >= 0
                         ? TOK_TYPE_BYTE
                         : TOK_TYPE_NORMAL;
        p += 8 + (size_t)l;
    }
    t->kind = TOK_KIND_LLAMA2C;
    t->unk = 0, t->bos = 1, t->eos = 2;
    t->type[0] = TOK_TYPE_UNKNOWN;
    t->type[1] = t->type[2] = TOK_TYPE_CONTROL;
    t->add_bos_default = true;
    t->dec = TOK_DEC_RAW;
    t->dec_strip_after_bos = true;
    if (tok_vocab_index(t, NULL)) goto out;
    ret = 0;
out:
    free(d);
    return ret;
}

/* ===== GGUF tokenizer.ggml.* ===== */

static const struct gguf_kv *gguf_array(const struct gguf_file *g, const char *key,
                                        enum gguf_type want, uint64_t n, int *rc) {
    const struct gguf_kv *kv = gguf_find(g, key);
    *rc = 0;
    if (!kv) return NULL;
    bool numeric = want != GGUF_TYPE_STRING;
    bool ok = kv->type == GGUF_TYPE_ARRAY &&
              (numeric ? kv->v.arr.type != GGUF_TYPE_STRING && kv->v.arr.type != GGUF_TYPE_ARRAY
                       : kv->v.arr.type == GGUF_TYPE_STRING && kv->v.arr.strs);
    if (!ok) {
        *rc = err("%s: %s is a %s%s%s (expected an array of %s)", g->path, key,
                  gguf_type_name(kv->type), kv->type == GGUF_TYPE_ARRAY ? " of " : "",
                  kv->type == GGUF_TYPE_ARRAY ? gguf_type_name(kv->v.arr.type) : "",
                  numeric ? "numbers" : "strings");
        return NULL;
    }
    if (n && kv->v.arr.n != n) {
        *rc = err("%s: %s has %llu entries (expected %llu, one per token)", g->path, key,
                  (unsigned long long)kv->v.arr.n, (unsigned long long)n);
        return NULL;
    }
    return kv;
}

/* optional special-token id: the default when absent or out of range (llama.cpp warns and keeps
 * its default too) */
static int gguf_special(const struct gguf_file *g, const char *key, int dflt, int n, int *rc) {
    int64_t v;
    int r = gguf_get_int(g, key, &v);
    if (r < 0) *rc = -1;
    if (r) return dflt;
    return v >= 0 && v < n ? (int)v : dflt;
}

static int load_gguf(struct tokenizer *t, const struct gguf_file *g) {
    char model[64], pre[128] = "";
    int rc = gguf_get_str(g, "tokenizer.ggml.model", model, sizeof model);
    if (rc < 0) return -1;
    if (rc) return err("%s: no tokenizer.ggml.model (expected \"llama\" or \"gpt2\")", g->path);
    bool spm = !strcmp(model, "llama");
    if (!spm && strcmp(model, "gpt2"))
        return err("%s: tokenizer.ggml.model \"%s\" is not supported (expected \"llama\" = "
                   "SentencePiece or \"gpt2\" = byte-level BPE)", g->path, model);
    const struct gguf_kv *tokens = gguf_array(g, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, 0, &rc);
    if (rc) return -1;
    if (!tokens) return err("%s: no tokenizer.ggml.tokens array", g->path);
    if (!tokens->v.arr.n || tokens->v.arr.n > TOK_MAX_VOCAB)
        return err("%s: tokenizer.ggml.tokens has %llu entries (expected 1..%d)", g->path,
                   (unsigned long long)tokens->v.arr.n, TOK_MAX_VOCAB);
    int n = (int)tokens->v.arr.n;
    const struct gguf_kv *scores = gguf_array(g, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32,
                                              (uint64_t)n, &rc);
    if (rc) return -1;
    const struct gguf_kv *types = gguf_array(g, "tokenizer.ggml.token_type", GGUF_TYPE_INT32,
                                             (uint64_t)n, &rc);
    if (rc) return -1;
    size_t arena = 0;
    for (int i = 0; i < n; i++) arena += tokens->v.arr.strs[i].len + 1;
    if (tok_vocab_alloc(t, n, arena)) return -1;
    size_t used = 0;
    for (int i = 0; i < n; i++) {
        const struct gguf_str *s = &tokens->v.arr.strs[i];
        tok_set_piece(t, &used, i, s->p, s->len);
        t->score[i] = scores ? (float)gguf_arr_float(scores, (uint64_t)i) : 0.0f;
        int64_t ty = types ? gguf_arr_int(types, (uint64_t)i) : TOK_TYPE_NORMAL;
        t->type[i] = ty >= TOK_TYPE_NORMAL && ty <= TOK_TYPE_BYTE ? (uint8_t)ty : TOK_TYPE_NORMAL;
    }
    if (tok_vocab_index(t, NULL)) return -1;
    rc = 0;
    t->bos = gguf_special(g, "tokenizer.ggml.bos_token_id", spm ? 1 : -1, n, &rc);
    t->eos = gguf_special(g, "tokenizer.ggml.eos_token_id", spm ? 2 : -1, n, &rc);
    t->unk = gguf_special(g, "tokenizer.ggml.unknown_token_id", spm ? 0 : -1, n, &rc);
    t->add_bos_default = spm;
    t->add_space_prefix = spm;
    if (rc) return -1;
    if (gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &t->add_bos_default) < 0) return -1;
    if (gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix) < 0) return -1;
    if (!types) { /* infer what token_type would have said */
        for (int b = 0; b < 256; b++)
            if (t->byte_id[b] >= 0) t->type[t->byte_id[b]] = TOK_TYPE_BYTE;
        if (t->bos >= 0) t->type[t->bos] = TOK_TYPE_CONTROL;
        if (t->eos >= 0) t->type[t->eos] = TOK_TYPE_CONTROL;
    }
    if (spm) {
        t->kind = TOK_KIND_SPM;
        t->dec = TOK_DEC_METASPACE;
        t->dec_strip_after_bos = t->add_space_prefix;
        return 0;
    }
    t->kind = TOK_KIND_BPE;
    t->dec = TOK_DEC_BYTELEVEL;
    const struct gguf_kv *merges = gguf_array(g, "tokenizer.ggml.merges", GGUF_TYPE_STRING, 0, &rc);
    if (rc) return -1;
    if (!merges) return err("%s: a \"gpt2\" vocab needs tokenizer.ggml.merges", g->path);
    for (uint64_t i = 0; i < merges->v.arr.n; i++) {
        const struct gguf_str *m = &merges->v.arr.strs[i];
        /* split at the first space after the first byte (llama.cpp: find(' ', 1)) */
        const char *sp = m->len > 1 ? memchr(m->p + 1, ' ', m->len - 1) : NULL;
        if (!sp || sp == m->p + m->len - 1)
            return err("%s: tokenizer.ggml.merges[%llu] is not \"left right\"", g->path,
                       (unsigned long long)i);
        size_t nl = (size_t)(sp - m->p), nr = m->len - nl - 1;
        int a = tok_lookup(t, m->p, nl), b = tok_lookup(t, sp + 1, nr);
        char buf[1024];
        if (nl + nr > sizeof buf)
            return err("%s: tokenizer.ggml.merges[%llu] longer than %zu bytes", g->path,
                       (unsigned long long)i, sizeof buf);
        memcpy(buf, m->p, nl);
        memcpy(buf + nl, sp + 1, nr);
        int c = tok_lookup(t, buf, nl + nr);
        if (a < 0 || b < 0 || c < 0)
            return err("%s: tokenizer.ggml.merges[%llu] \"%.*s\" names a piece not in "
                       "tokenizer.ggml.tokens", g->path, (unsigned long long)i, (int)m->len, m->p);
        if (tok_merge_add(t, a, b, c, (int)i)) return -1;
    }
    if (gguf_get_str(g, "tokenizer.ggml.pre", pre, sizeof pre) < 0) return -1;
    t->ignore_merges = !strcmp(pre, "llama-bpe") || !strcmp(pre, "llama3");
    return tok_pipe_for_gguf_pre(t, pre, g->path);
}

/* ===== public API ===== */

void tokenizer_free(struct tokenizer *t) {
    if (!t) return;
    free(t->arena);
    free(t->off);
    free(t->len);
    free(t->score);
    free(t->type);
    free(t->map.slot);
    free(t->merges.key);
    free(t->merges.rank);
    free(t->merges.merged);
    tok_pipe_free(t->pipe);
    tok_added_free(t->added);
    free(t->sp_pre);
    free(t->sp_post);
    free(t);
}

static struct tokenizer *tok_new(void) {
    struct tokenizer *t = xcalloc(1, sizeof *t, "tokenizer");
    if (!t) return NULL;
    t->bos = t->eos = t->unk = -1;
    for (int b = 0; b < 256; b++) t->byte_id[b] = -1;
    return t;
}

int tokenizer_from_gguf(struct tokenizer **out, const struct gguf_file *g) {
    *out = NULL;
    struct tokenizer *t = tok_new();
    if (!t) return -1;
    if (load_gguf(t, g)) {
        tokenizer_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

int tokenizer_load(struct tokenizer **out, const char *path) {
    *out = NULL;
    struct stat st;
    char buf[4096];
    if (stat(path, &st)) return err("%s: cannot open tokenizer: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        if ((size_t)snprintf(buf, sizeof buf, "%s/tokenizer.json", path) >= sizeof buf)
            return err("%s: path too long", path);
        path = buf;
    }
    if (ends_with(path, ".gguf")) {
        struct gguf_file g;
        if (gguf_open(&g, path)) return -1;
        int rc = tokenizer_from_gguf(out, &g);
        gguf_close(&g);
        return rc;
    }
    struct tokenizer *t = tok_new();
    if (!t) return -1;
    int rc = ends_with(path, ".json") ? tok_hf_load(t, path) : load_llama2c(t, path);
    if (rc) {
        tokenizer_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

static int encode(const struct tokenizer *t, const char *text, size_t len, bool add_bos,
                  unsigned flags, int **ids, int *n_ids) {
    struct tok_ids v = {0};
    *ids = NULL;
    *n_ids = 0;
    if (!text && len) return err("tokenizer_encode: NULL text of %zu bytes", len);
    if (len > (size_t)INT32_MAX / 2)
        return err("tokenizer_encode: text of %zu bytes is too long (at most %d)", len,
                   INT32_MAX / 2);
    const bool special = flags & TOK_ENCODE_SPECIAL;
    if (add_bos || (special && !t->has_sp && t->add_bos_default)) {
        if (t->bos < 0) return err("tokenizer_encode: this tokenizer has no BOS token");
        if (tok_ids_push(&v, t->bos)) return -1;
    }
    int rc = 0;
    for (int i = 0; special && i < t->n_sp_pre && !rc; i++) rc = tok_ids_push(&v, t->sp_pre[i]);
    if (len && !rc) {
        if (t->kind == TOK_KIND_BPE)
            rc = tok_bpe_encode(t, text, len, flags & TOK_ENCODE_SPLIT_SPECIAL, &v);
        else rc = tok_spm_encode(t, text, len, &v);
    }
    for (int i = 0; special && i < t->n_sp_post && !rc; i++) rc = tok_ids_push(&v, t->sp_post[i]);
    if (rc || v.n > (size_t)INT32_MAX) {
        free(v.v);
        return rc ? -1 : err("tokenizer_encode: too many tokens");
    }
    if (!v.v) v.v = xmalloc(sizeof(int), "token ids"); /* empty: still an owned pointer */
    if (!v.v) return -1;
    *ids = v.v;
    *n_ids = (int)v.n;
    return 0;
}

int tokenizer_encode(const struct tokenizer *t, const char *text, size_t len, bool add_bos,
                     int **ids, int *n_ids) {
    return encode(t, text, len, add_bos, 0, ids, n_ids);
}

int tokenizer_encode_ex(const struct tokenizer *t, const char *text, size_t len, unsigned flags,
                        int **ids, int *n_ids) {
    return encode(t, text, len, false, flags, ids, n_ids);
}

/* decoding: see tokenizer.h. Control tokens (BOS, EOS, chat markers) decode to "". */
int tokenizer_decode(const struct tokenizer *t, int prev, int id, char *buf, size_t size) {
    if (!buf || !size) return err("tokenizer_decode: no output buffer");
    buf[0] = 0;
    if (id < 0 || id >= t->n_vocab)
        return err("tokenizer_decode: token id %d out of range (vocab of %d)", id, t->n_vocab);
    if (t->len[id] < 0 || t->type[id] == TOK_TYPE_CONTROL) return 0;
    const char *p = tok_piece(t, id);
    size_t n = (size_t)t->len[id], o = 0;
    int byte = t->type[id] == TOK_TYPE_BYTE ? byte_piece_value(p, n) : -1;
    char one[1];
    if (byte >= 0) {
        one[0] = (char)byte;
        p = one;
        n = 1;
    }
    /* run.c strips a piece that starts with ' ', so never a byte token */
    bool strip = t->dec_strip_after_bos && prev >= 0 && prev == t->bos && byte < 0;
    for (size_t i = 0; i < n;) {
        char c[4];
        size_t k = 1;
        c[0] = p[i];
        if (byte >= 0 || t->dec == TOK_DEC_RAW || t->type[id] == TOK_TYPE_USER) {
            i++;
        } else if (t->dec == TOK_DEC_METASPACE) {
            if (n - i >= 3 && !memcmp(p + i, "\xe2\x96\x81", 3)) c[0] = ' ', i += 3;
            else i++;
        } else { /* byte level: each character of the piece stands for one byte */
            size_t cl = LB_MIN(tok_utf8_len((unsigned char)p[i]), n - i);
            uint32_t cp = (unsigned char)p[i];
            if (cl == 2) cp = (cp & 0x1Fu) << 6 | ((unsigned char)p[i + 1] & 0x3Fu);
            int b = cl <= 2 ? tok_unicode_to_byte(cp) : -1;
            if (b >= 0) c[0] = (char)b;
            else memcpy(c, p + i, cl), k = cl; /* not from the byte map: copied as is */
            i += cl;
        }
        if (strip && !o && c[0] == ' ') {
            strip = false;
            continue;
        }
        strip = false;
        if (o + k >= size)
            return err("tokenizer_decode: token %d needs more than %zu bytes", id, size - 1);
        memcpy(buf + o, c, k);
        o += k;
    }
    buf[o] = 0;
    return (int)o;
}

int tokenizer_vocab_size(const struct tokenizer *t) { return t->n_vocab; }
int tokenizer_bos(const struct tokenizer *t) { return t->bos; }
int tokenizer_eos(const struct tokenizer *t) { return t->eos; }
bool tokenizer_add_bos_default(const struct tokenizer *t) { return t->add_bos_default; }

const char *tokenizer_kind(const struct tokenizer *t) {
    static const char *const names[TOK_KIND_COUNT] = {
        [TOK_KIND_LLAMA2C] = "llama2c", [TOK_KIND_SPM] = "spm", [TOK_KIND_BPE] = "bpe"};
    return names[t->kind];
}
