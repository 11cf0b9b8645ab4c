/* eval/tok_bpe.c: BPE by merge rank, the normalizer / pre-tokenizer pipeline, and the loader of
 * Hugging Face tokenizer.json files.
 *
 * Behaviour reproduced (no code taken from them):
 *  - Hugging Face tokenizers (Apache-2.0), models/bpe: a word is split into characters; a character
 *    that is not a piece becomes its byte pieces "<0xXX>" (byte_fallback, when all exist) or unk
 *    (consecutive unks fused when fuse_unk); then the adjacent pair with the lowest merge rank is
 *    merged, leftmost first, with a heap and lazy deletion (an entry is stale when its pair no
 *    longer yields the same merged id); ignore_merges emits a word that is a piece as is.
 *  - pre_tokenizers Split (Regex or String pattern, the five behaviours, invert), ByteLevel
 *    (add_prefix_space per split, GPT-2 regex when use_regex, then the bytes_to_unicode map),
 *    Metaspace (spaces to the replacement, prepend_scheme always/first/never unless the split
 *    already starts with it, split before each replacement), Digits, Sequence.
 *  - normalizers NFC, NFD, NFKC, NFKD (utf8proc's Unicode tables), Lowercase (per code point,
 *    utf8proc_tolower: the simple mapping, so U+0130 and a final sigma lower differently from
 *    Rust's and JS's full mapping), Strip (White_Space at either end), StripAccents (drops the
 *    marks, category M), Prepend (only a non-empty text), Replace (String or Regex), Sequence;
 *    any other normalizer is refused when the file is loaded.
 *  - the added tokens (tok_added.c): the text is cut at them first, each remaining piece is
 *    normalized, cut at the normalized added tokens, then pre-tokenized and merged on its own,
 *    as the added vocabulary of Hugging Face tokenizers does.
 *  - llama.cpp llm_tokenizer_bpe for GGUF "gpt2" vocabs: merges "a b" ranked by position (the first
 *    occurrence of a pair wins), pre-tokenizer regex by tokenizer.ggml.pre.
 * Text must be valid UTF-8 (a Python or JS string cannot hold anything else): other bytes are
 * refused with the offset of the first bad one.
 * Regexes run in PCRE2 with UTF and UCP (Unicode properties for \s, \p{L}); the patterns are
 * written for Oniguruma, and the ones Llama/Qwen/GPT-2 use mean the same in both. */
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <jansson.h>
#include <pcre2.h>
#include <utf8proc.h>

#include "eval/tok_impl.h"
#include "kernels/base/json.h"
#include "kernels/common.h"

#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
#define RE_LLAMA3                                                                                  \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "                      \
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN2                                                                                   \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "                           \
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

/* ===== GPT-2 bytes_to_unicode ===== */

/* bytes 33..126, 161..172, 174..255 are themselves; 0..32, 127..160, 173 become U+0100.. in order */
uint32_t tok_byte_to_unicode(unsigned b) {
    if (b <= 32) return 256 + b;
    if (b >= 127 && b <= 160) return 256 + 33 + (b - 127);
    if (b == 173) return 256 + 67;
    return b;
}

int tok_unicode_to_byte(uint32_t cp) {
    if (cp < 256) return tok_byte_to_unicode(cp) == cp ? (int)cp : -1;
    if (cp < 256 + 33) return (int)(cp - 256);
    if (cp < 256 + 67) return (int)(cp - 256 - 33 + 127);
    if (cp == 256 + 67) return 173;
    return -1;
}

/* ===== merge table ===== */

static size_t pair_slot(const struct tok_pairmap *m, uint64_t key) {
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    size_t i = (size_t)(h ^ (h >> 31)) & m->mask;
    while (m->key[i] != UINT64_MAX && m->key[i] != key) i = (i + 1) & m->mask;
    return i;
}

static int pair_grow(struct tok_pairmap *m) {
    size_t cap = m->key ? 2 * (m->mask + 1) : 1024;
    struct tok_pairmap n = {.mask = cap - 1, .n = m->n};
    n.key = xmalloc(cap * sizeof *n.key, "merge table");
    n.rank = xmalloc(cap * sizeof *n.rank, "merge table");
    n.merged = xmalloc(cap * sizeof *n.merged, "merge table");
    if (!n.key || !n.rank || !n.merged) {
        free(n.key), free(n.rank), free(n.merged);
        return -1;
    }
    for (size_t i = 0; i < cap; i++) n.key[i] = UINT64_MAX;
    for (size_t i = 0; m->key && i <= m->mask; i++) {
        if (m->key[i] == UINT64_MAX) continue;
        size_t j = pair_slot(&n, m->key[i]);
        n.key[j] = m->key[i], n.rank[j] = m->rank[i], n.merged[j] = m->merged[i];
    }
    free(m->key), free(m->rank), free(m->merged);
    *m = n;
    return 0;
}

int tok_merge_add(struct tokenizer *t, int a, int b, int merged, int rank) {
    struct tok_pairmap *m = &t->merges;
    if ((!m->key || 2 * (m->n + 1) > m->mask + 1) && pair_grow(m)) return -1;
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    size_t i = pair_slot(m, key);
    if (m->key[i] == key) return 0; /* first occurrence wins (llama.cpp bpe_ranks.emplace) */
    m->key[i] = key, m->rank[i] = rank, m->merged[i] = merged;
    m->n++;
    return 0;
}

/* rank of (a, b), -1 when they do not merge; *merged gets the result */
static int merge_find(const struct tokenizer *t, int a, int b, int *merged) {
    const struct tok_pairmap *m = &t->merges;
    if (!m->key) return -1;
    size_t i = pair_slot(m, (uint64_t)(uint32_t)a << 32 | (uint32_t)b);
    if (m->key[i] == UINT64_MAX) return -1;
    *merged = m->merged[i];
    return m->rank[i];
}

/* ===== pipeline ===== */

enum step_kind {
    STEP_PREPEND,   /* normalizer: text = s + text, when text is not empty */
    STEP_REPLACE,   /* normalizer: every match of re becomes s */
    STEP_UNORM,     /* normalizer: Unicode normalization form (utf8proc options in uopt) */
    STEP_LOWER,     /* normalizer: each code point to lower case */
    STEP_STRIP,     /* normalizer: White_Space off the left / right end */
    STEP_NOMARK,    /* normalizer: StripAccents, every mark (category M) removed */
    STEP_SPLIT,     /* pre-tokenizer: split each piece at the matches of re */
    STEP_METASPACE, /* pre-tokenizer: ' ' -> s, prepend s, split before s */
    STEP_BL_PREFIX, /* ByteLevel add_prefix_space: " " before each piece not starting with one */
    STEP_BL_MAP,    /* ByteLevel: every byte to its bytes_to_unicode character */
};

enum split_behavior {
    SPLIT_REMOVED,
    SPLIT_ISOLATED,
    SPLIT_MERGED_PREV,
    SPLIT_MERGED_NEXT,
    SPLIT_CONTIGUOUS,
    SPLIT_COUNT
};

static const char *const split_names[SPLIT_COUNT] = {
    [SPLIT_REMOVED] = "Removed",
    [SPLIT_ISOLATED] = "Isolated",
    [SPLIT_MERGED_PREV] = "MergedWithPrevious",
    [SPLIT_MERGED_NEXT] = "MergedWithNext",
    [SPLIT_CONTIGUOUS] = "Contiguous",
};

enum prepend_scheme { PREPEND_NEVER, PREPEND_FIRST, PREPEND_ALWAYS };

struct step {
    enum step_kind kind;
    char *s; /* prepend / replacement text */
    size_t n;
    pcre2_code *re;
    enum split_behavior behavior;
    bool invert;
    enum prepend_scheme scheme;
    bool split;
    int uopt;         /* STEP_UNORM */
    bool left, right; /* STEP_STRIP */
};

struct tok_pipe {
    struct step *st;
    int n, cap;
    int n_norm; /* st[0..n_norm) are normalizers (whole text), the rest pre-tokenizers */
};

void tok_pipe_free(struct tok_pipe *p) {
    if (!p) return;
    for (int i = 0; i < p->n; i++) {
        free(p->st[i].s);
        pcre2_code_free(p->st[i].re);
    }
    free(p->st);
    free(p);
}

static struct step *pipe_add(struct tokenizer *t, enum step_kind kind) {
    if (!t->pipe) t->pipe = xcalloc(1, sizeof *t->pipe, "tokenizer pipeline");
    if (!t->pipe) return NULL;
    struct tok_pipe *p = t->pipe;
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 8;
        struct step *s = realloc(p->st, (size_t)cap * sizeof *s);
        if (!s) return err("out of memory: tokenizer pipeline"), NULL;
        p->st = s;
        p->cap = cap;
    }
    struct step *s = &p->st[p->n++];
    memset(s, 0, sizeof *s);
    s->kind = kind;
    return s;
}

static int step_text(struct step *s, const char *text) {
    s->n = strlen(text);
    s->s = xmalloc(s->n + 1, "tokenizer pipeline text");
    if (!s->s) return -1;
    memcpy(s->s, text, s->n + 1);
    return 0;
}

static int step_regex(struct step *s, const char *pattern, bool literal, const char *path) {
    int code;
    PCRE2_SIZE off;
    uint32_t opt = PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);
    s->re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, opt, &code, &off, NULL);
    if (!s->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        return err("%s: regex /%s/ does not compile at offset %zu: %s", path, pattern,
                   (size_t)off, (char *)msg);
    }
    pcre2_jit_compile(s->re, PCRE2_JIT_COMPLETE); /* without JIT pcre2_match interprets */
    return 0;
}

static int add_split(struct tokenizer *t, const char *pattern, bool literal,
                     enum split_behavior b, bool invert, const char *path) {
    struct step *s = pipe_add(t, STEP_SPLIT);
    if (!s) return -1;
    s->behavior = b;
    s->invert = invert;
    return step_regex(s, pattern, literal, path);
}

static int add_bytelevel(struct tokenizer *t, bool prefix, bool use_regex, const char *path) {
    if (prefix && !pipe_add(t, STEP_BL_PREFIX)) return -1;
    if (use_regex && add_split(t, RE_GPT2, false, SPLIT_ISOLATED, false, path)) return -1;
    return pipe_add(t, STEP_BL_MAP) ? 0 : -1;
}

int tok_pipe_for_gguf_pre(struct tokenizer *t, const char *pre, const char *path) {
    const char *re;
    if (!*pre || !strcmp(pre, "default") || !strcmp(pre, "gpt2")) re = RE_GPT2;
    else if (!strcmp(pre, "llama-bpe") || !strcmp(pre, "llama3")) re = RE_LLAMA3;
    else if (!strcmp(pre, "qwen2")) re = RE_QWEN2;
    else
        return err("%s: tokenizer.ggml.pre \"%s\" is not supported (expected gpt2, llama-bpe or "
                   "qwen2)", path, pre);
    if (add_split(t, re, false, SPLIT_ISOLATED, false, path)) return -1;
    return add_bytelevel(t, false, false, path);
}

/* ----- running it ----- */

struct span {
    size_t off, len;
    bool first; /* starts at the beginning of the text (Metaspace "first") */
};

struct pieces {
    char *buf;
    size_t len, cap;
    struct span *sp;
    size_t n, cap_sp;
};

struct seg {
    size_t a, b;
    bool match;
};

struct run {
    struct pieces p[2];
    struct seg *seg, *seg2;
    size_t cap_seg;
    pcre2_match_data *md;
};

static int pc_put(struct pieces *pc, const char *s, size_t n) {
    if (!n) return 0; /* an empty regex match: nothing to copy, and buf may still be NULL */
    if (pc->cap - pc->len < n) {
        size_t cap = pc->cap ? pc->cap : 1024;
        while (cap - pc->len < n) cap *= 2;
        char *p = realloc(pc->buf, cap);
        if (!p) return err("out of memory: tokenizer text of %zu bytes", cap);
        pc->buf = p;
        pc->cap = cap;
    }
    memcpy(pc->buf + pc->len, s, n);
    pc->len += n;
    return 0;
}

/* a span for bytes [a, b) of the buffer (nothing when empty) */
static int pc_span2(struct pieces *pc, size_t a, size_t b, bool first) {
    if (a == b) return 0;
    if (pc->n == pc->cap_sp) {
        size_t cap = pc->cap_sp ? 2 * pc->cap_sp : 64;
        struct span *p = realloc(pc->sp, cap * sizeof *p);
        if (!p) return err("out of memory: %zu pre-tokenizer pieces", cap);
        pc->sp = p;
        pc->cap_sp = cap;
    }
    pc->sp[pc->n++] = (struct span){a, b - a, first};
    return 0;
}

/* a span for the bytes appended since `from` */
static int pc_span(struct pieces *pc, size_t from, bool first) {
    return pc_span2(pc, from, pc->len, first);
}

static int seg_reserve(struct run *r, size_t n) {
    if (n <= r->cap_seg) return 0;
    size_t cap = r->cap_seg ? r->cap_seg : 64;
    while (cap < n) cap *= 2;
    struct seg *a = realloc(r->seg, cap * sizeof *a);
    if (a) r->seg = a;
    struct seg *b = a ? realloc(r->seg2, cap * sizeof *b) : NULL;
    if (b) r->seg2 = b;
    if (!a || !b) return err("out of memory: %zu regex matches", cap);
    r->cap_seg = cap;
    return 0;
}

/* HF Pattern::find_matches: alternating (gap, match) segments covering s[0..n) */
static int find_segments(struct run *r, const pcre2_code *re, const char *s, size_t n,
                         size_t *n_seg) {
    size_t k = 0, prev = 0, pos = 0;
    while (pos <= n) {
        int rc = pcre2_match(re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, r->md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return err("tokenizer: regex match failed: %s", (char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r->md);
        size_t a = ov[0], b = ov[1];
        if (seg_reserve(r, k + 2)) return -1;
        if (a != prev) r->seg[k++] = (struct seg){prev, a, false};
        r->seg[k++] = (struct seg){a, b, true};
        prev = b;
        /* after an empty match go on one character later */
        pos = b > a ? b : b + (b < n ? tok_utf8_len((unsigned char)s[b]) : 1);
    }
    if (seg_reserve(r, k + 1)) return -1;
    if (prev != n) r->seg[k++] = (struct seg){prev, n, false};
    *n_seg = k;
    return 0;
}

/* HF SplitDelimiterBehavior applied to segments seg[0..k): the pieces, into seg2 */
static size_t apply_behavior(struct run *r, size_t k, enum split_behavior b) {
    struct seg *in = r->seg, *o = r->seg2;
    size_t m = 0;
    bool prev_match = false;
    switch (b) {
    case SPLIT_ISOLATED: memcpy(o, in, k * sizeof *o); return k;
    case SPLIT_REMOVED:
        for (size_t i = 0; i < k; i++)
            if (!in[i].match) o[m++] = in[i];
        return m;
    case SPLIT_CONTIGUOUS:
        for (size_t i = 0; i < k; prev_match = in[i].match, i++) {
            if (in[i].match && prev_match) o[m - 1].b = in[i].b;
            else o[m++] = in[i];
        }
        return m;
    case SPLIT_MERGED_PREV:
        for (size_t i = 0; i < k; prev_match = in[i].match, i++) {
            if (in[i].match && !prev_match && m) o[m - 1].b = in[i].b;
            else o[m++] = in[i];
        }
        return m;
    case SPLIT_MERGED_NEXT: /* built back to front, then reversed */
        for (size_t i = k; i-- > 0; prev_match = in[i].match) {
            if (in[i].match && !prev_match && m) o[m - 1].a = in[i].a;
            else o[m++] = in[i];
        }
        for (size_t i = 0; i < m / 2; i++) {
            struct seg x = o[i];
            o[i] = o[m - 1 - i];
            o[m - 1 - i] = x;
        }
        return m;
    case SPLIT_COUNT: break;
    }
    BUG("split behavior %d", (int)b);
}

static bool has_prefix(const char *s, size_t n, const char *p, size_t k) {
    return n >= k && !memcmp(s, p, k);
}

/* one pre-tokenizer step: the pieces of in become the pieces of out (emptied first) */
static int step_run(const struct step *st, struct run *r, const struct pieces *in,
                    struct pieces *out) {
    out->len = out->n = 0;
    for (size_t i = 0; i < in->n; i++) {
        const struct span *sp = &in->sp[i];
        const char *s = in->buf + sp->off;
        size_t n = sp->len, from = out->len, k;
        switch (st->kind) {
        case STEP_SPLIT:
            if (find_segments(r, st->re, s, n, &k)) return -1;
            if (st->invert)
                for (size_t j = 0; j < k; j++) r->seg[j].match = !r->seg[j].match;
            k = apply_behavior(r, k, st->behavior);
            for (size_t j = 0; j < k; j++) {
                from = out->len;
                if (pc_put(out, s + r->seg2[j].a, r->seg2[j].b - r->seg2[j].a) ||
                    pc_span(out, from, sp->first && !r->seg2[j].a))
                    return -1;
            }
            break;
        case STEP_METASPACE: {
            /* after ' ' -> rep, does the piece start with rep? */
            bool starts = (n && *s == ' ') || has_prefix(s, n, st->s, st->n);
            bool pre = st->scheme == PREPEND_ALWAYS || (st->scheme == PREPEND_FIRST && sp->first);
            if (pre && !starts && pc_put(out, st->s, st->n)) return -1;
            for (size_t j = 0; j < n; j++)
                if (s[j] == ' ' ? pc_put(out, st->s, st->n) : pc_put(out, s + j, 1)) return -1;
            size_t piece = from, end = out->len;
            bool first = sp->first;
            for (size_t j = from; st->split && st->n && j < end;) { /* cut before each rep */
                bool rep = has_prefix(out->buf + j, end - j, st->s, st->n);
                if (rep && j > piece) {
                    if (pc_span2(out, piece, j, first)) return -1;
                    piece = j;
                    first = false;
                }
                j += rep ? st->n : 1;
            }
            if (pc_span2(out, piece, end, first)) return -1;
            break;
        }
        case STEP_BL_PREFIX:
            if ((!n || *s != ' ') && pc_put(out, " ", 1)) return -1;
            if (pc_put(out, s, n) || pc_span(out, from, sp->first)) return -1;
            break;
        case STEP_BL_MAP:
            for (size_t j = 0; j < n; j++) {
                uint32_t cp = tok_byte_to_unicode((unsigned char)s[j]);
                char u[2] = {(char)cp, 0};
                if (cp >= 0x80) u[0] = (char)(0xC0 | cp >> 6), u[1] = (char)(0x80 | (cp & 0x3F));
                if (pc_put(out, u, cp >= 0x80 ? 2 : 1)) return -1;
            }
            if (pc_span(out, from, sp->first)) return -1;
            break;
        case STEP_PREPEND:
        case STEP_REPLACE:
        case STEP_UNORM:
        case STEP_LOWER:
        case STEP_STRIP:
        case STEP_NOMARK: BUG("normalizer step %d run as a pre-tokenizer", (int)st->kind);
        }
    }
    return 0;
}

/* the code-point normalizers (valid UTF-8 in, valid UTF-8 out) */
static int norm_codepoints(const struct step *st, const char *s, size_t n, struct pieces *out) {
    if (st->kind == STEP_UNORM) {
        utf8proc_uint8_t *o = NULL;
        utf8proc_ssize_t k = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &o,
                                          (utf8proc_option_t)st->uopt);
        if (k < 0) return err("tokenizer: Unicode normalization failed: %s", utf8proc_errmsg(k));
        int rc = pc_put(out, (const char *)o, (size_t)k);
        free(o);
        return rc;
    }
    if (st->kind == STEP_STRIP) { /* keep [a, b) */
        size_t a = 0, b = n;
        while (st->left && a < n) {
            utf8proc_int32_t cp;
            utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + a,
                                                  (utf8proc_ssize_t)(n - a), &cp);
            if (k <= 0 || !tok_is_space(cp)) break;
            a += (size_t)k;
        }
        while (st->right && b > a) {
            size_t c = b - 1; /* the last code point starts at c */
            while (c > a && ((unsigned char)s[c] & 0xC0) == 0x80) c--;
            utf8proc_int32_t cp;
            utf8proc_iterate((const utf8proc_uint8_t *)s + c, (utf8proc_ssize_t)(b - c), &cp);
            if (!tok_is_space(cp)) break;
            b = c;
        }
        return pc_put(out, s + a, b - a);
    }
    for (size_t i = 0; i < n;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i,
                                              (utf8proc_ssize_t)(n - i), &cp);
        if (k <= 0) BUG("invalid UTF-8 in a checked text");
        if (st->kind == STEP_NOMARK) {
            if (utf8proc_category_string(cp)[0] != 'M' && pc_put(out, s + i, (size_t)k)) return -1;
        } else { /* STEP_LOWER */
            utf8proc_uint8_t u[4];
            utf8proc_ssize_t m = utf8proc_encode_char(utf8proc_tolower(cp), u);
            if (pc_put(out, (const char *)u, (size_t)m)) return -1;
        }
        i += (size_t)k;
    }
    return 0;
}

/* normalizers on the whole text (in one span) */
static int norm_run(const struct step *st, struct run *r, const struct pieces *in,
                    struct pieces *out) {
    out->len = out->n = 0;
    const char *s = in->buf;
    size_t n = in->len, k;
    if (st->kind == STEP_PREPEND) {
        if (n && pc_put(out, st->s, st->n)) return -1;
        if (pc_put(out, s, n)) return -1;
    } else if (st->kind != STEP_REPLACE) {
        if (norm_codepoints(st, s, n, out)) return -1;
    } else {
        if (find_segments(r, st->re, s, n, &k)) return -1;
        for (size_t j = 0; j < k; j++) {
            const struct seg *g = &r->seg[j];
            if (g->match ? pc_put(out, st->s, st->n) : pc_put(out, s + g->a, g->b - g->a))
                return -1;
        }
    }
    return pc_span(out, 0, true);
}

/* steps [from, to) of t->pipe on s[0..n) as one piece (first: it starts the text); the pieces end
 * in r->p[0]. s must not point into r->p. */
static int pipe_run(const struct tokenizer *t, struct run *r, int from, int to, const char *s,
                    size_t n, bool first) {
    struct pieces *in = &r->p[0], *o = &r->p[1];
    in->len = in->n = 0;
    if (pc_put(in, s, n) || pc_span(in, 0, first)) return -1;
    for (int i = from; i < to; i++) {
        const struct step *st = &t->pipe->st[i];
        if (i < t->pipe->n_norm ? norm_run(st, r, in, o) : step_run(st, r, in, o)) return -1;
        struct pieces x = *in;
        *in = *o;
        *o = x;
    }
    return 0;
}

bool tok_has_normalizer(const struct tokenizer *t) { return t->pipe && t->pipe->n_norm > 0; }

int tok_normalize(const struct tokenizer *t, const char *s, size_t n, char **out, size_t *n_out) {
    struct run r = {0};
    int nn = t->pipe ? t->pipe->n_norm : 0, rc = -1;
    *out = NULL;
    r.md = pcre2_match_data_create(16, NULL);
    if (!r.md) {
        err("out of memory: regex match data");
        goto out;
    }
    if (pipe_run(t, &r, 0, nn, s, n, true)) goto out;
    *out = xmalloc(r.p[0].len + 1, "normalized text");
    if (!*out) goto out;
    if (r.p[0].len) memcpy(*out, r.p[0].buf, r.p[0].len);
    (*out)[r.p[0].len] = 0;
    *n_out = r.p[0].len;
    rc = 0;
out:
    for (int i = 0; i < 2; i++) free(r.p[i].buf), free(r.p[i].sp);
    free(r.seg), free(r.seg2);
    pcre2_match_data_free(r.md);
    return rc;
}

/* ===== BPE of one word ===== */

struct bsym {
    int id, prev, next;
    bool gone;
};

struct bmerge {
    int rank, pos, merged;
};

struct bpe_work {
    struct bsym *sym;
    size_t n_sym, cap_sym;
    struct bmerge *heap;
    size_t n_heap, cap_heap;
};

/* a pops before b: lower rank, then leftmost */
static bool bm_before(const struct bmerge *a, const struct bmerge *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static int bm_push(struct bpe_work *w, struct bmerge m) {
    if (w->n_heap == w->cap_heap) {
        size_t cap = w->cap_heap ? 2 * w->cap_heap : 64;
        struct bmerge *p = realloc(w->heap, cap * sizeof *p);
        if (!p) return err("out of memory: BPE merge queue of %zu entries", cap);
        w->heap = p;
        w->cap_heap = cap;
    }
    size_t i = w->n_heap++;
    while (i > 0 && bm_before(&m, &w->heap[(i - 1) / 2])) {
        w->heap[i] = w->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    w->heap[i] = m;
    return 0;
}

static struct bmerge bm_pop(struct bpe_work *w) {
    struct bmerge top = w->heap[0], last = w->heap[--w->n_heap];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= w->n_heap) break;
        if (c + 1 < w->n_heap && bm_before(&w->heap[c + 1], &w->heap[c])) c++;
        if (!bm_before(&w->heap[c], &last)) break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (w->n_heap) w->heap[i] = last;
    return top;
}

static int bpe_try(const struct tokenizer *t, struct bpe_work *w, int pos) {
    if (pos < 0 || w->sym[pos].next < 0) return 0;
    int merged, rank = merge_find(t, w->sym[pos].id, w->sym[w->sym[pos].next].id, &merged);
    return rank < 0 ? 0 : bm_push(w, (struct bmerge){rank, pos, merged});
}

/* merge the current stretch of symbols by rank, emit it, start anew */
static int bpe_flush(const struct tokenizer *t, struct bpe_work *w, struct tok_ids *out) {
    for (int i = 0; i + 1 < (int)w->n_sym; i++)
        if (bpe_try(t, w, i)) return -1;
    while (w->n_heap) {
        struct bmerge m = bm_pop(w);
        struct bsym *l = &w->sym[m.pos];
        if (l->gone || l->next < 0) continue;
        struct bsym *r = &w->sym[l->next];
        int merged;
        if (merge_find(t, l->id, r->id, &merged) < 0 || merged != m.merged) continue; /* stale */
        l->id = m.merged;
        r->gone = true;
        l->next = r->next;
        if (r->next >= 0) w->sym[r->next].prev = m.pos;
        if (bpe_try(t, w, l->prev) || bpe_try(t, w, m.pos)) return -1;
    }
    for (size_t i = 0; i < w->n_sym; i++)
        if (!w->sym[i].gone && tok_ids_push(out, w->sym[i].id)) return -1;
    w->n_sym = 0;
    return 0;
}

/* append symbol id; when no merge can join it to the previous symbol (their touching bytes never
 * meet inside a piece, see tok_joinable) the stretch before it is merged and emitted first */
static int bsym_add(const struct tokenizer *t, struct bpe_work *w, int id, struct tok_ids *out) {
    if (w->n_sym) {
        int l = w->sym[w->n_sym - 1].id;
        if (t->len[l] > 0 && t->len[id] > 0 &&
            !tok_joinable(t, (unsigned char)tok_piece(t, l)[t->len[l] - 1],
                          (unsigned char)tok_piece(t, id)[0]) &&
            bpe_flush(t, w, out))
            return -1;
    }
    if (w->n_sym == w->cap_sym) {
        size_t cap = w->cap_sym ? 2 * w->cap_sym : 64;
        struct bsym *p = realloc(w->sym, cap * sizeof *p);
        if (!p) return err("out of memory: %zu BPE symbols", cap);
        w->sym = p;
        w->cap_sym = cap;
    }
    int i = (int)w->n_sym++;
    w->sym[i] = (struct bsym){id, i - 1, -1, false};
    if (i > 0) w->sym[i - 1].next = i;
    return 0;
}

static int bpe_word(const struct tokenizer *t, struct bpe_work *w, const char *s, size_t n,
                    struct tok_ids *out) {
    if (t->ignore_merges) {
        int id = tok_lookup(t, s, n);
        if (id >= 0) return tok_ids_push(out, id);
    }
    w->n_sym = w->n_heap = 0;
    bool pending_unk = false;
    for (size_t i = 0; i < n;) {
        size_t k = LB_MIN(tok_utf8_len((unsigned char)s[i]), n - i);
        int id = tok_lookup(t, s + i, k);
        bool bytes = id < 0 && t->byte_fallback;
        for (size_t j = 0; bytes && j < k; j++) bytes = t->byte_id[(unsigned char)s[i + j]] >= 0;
        if (id >= 0 || bytes) {
            if (pending_unk && bsym_add(t, w, t->unk, out)) return -1;
            pending_unk = false;
            if (id >= 0 && bsym_add(t, w, id, out)) return -1;
            for (size_t j = 0; bytes && j < k; j++)
                if (bsym_add(t, w, t->byte_id[(unsigned char)s[i + j]], out)) return -1;
        } else if (t->unk >= 0) {
            if (pending_unk && !t->fuse_unk && bsym_add(t, w, t->unk, out)) return -1;
            pending_unk = true;
        } else {
            return err("tokenizer: \"%.*s\" is not in the vocabulary, which has neither byte "
                       "fallback nor an unk token", (int)k, s + i);
        }
        i += k;
    }
    if (pending_unk && bsym_add(t, w, t->unk, out)) return -1;
    return bpe_flush(t, w, out);
}

/* BPE of every piece in r->p[0] */
static int bpe_pieces(const struct tokenizer *t, struct run *r, struct bpe_work *w,
                      struct tok_ids *out) {
    const struct pieces *in = &r->p[0];
    for (size_t i = 0; i < in->n; i++)
        if (bpe_word(t, w, in->buf + in->sp[i].off, in->sp[i].len, out)) return -1;
    return 0;
}

int tok_bpe_encode(const struct tokenizer *t, const char *text, size_t len, bool split_special,
                   struct tok_ids *out) {
    struct run r = {0};
    struct bpe_work w = {0};
    struct pieces nb = {0}; /* one piece of the text, normalized */
    struct tok_seg *s1 = NULL, *s2 = NULL;
    size_t n1 = 0, n2 = 0, c1 = 0, c2 = 0;
    int ret = -1, nn = t->pipe ? t->pipe->n_norm : 0, ns = t->pipe ? t->pipe->n : 0;
    size_t bad = tok_utf8_valid(text, len);
    if (bad != len)
        return err("tokenizer: text is not valid UTF-8 at byte %zu (BPE tokenizers take UTF-8)",
                   bad);
    r.md = pcre2_match_data_create(16, NULL);
    if (!r.md) {
        err("out of memory: regex match data");
        goto out;
    }
    if (!t->added) {
        if (pipe_run(t, &r, 0, ns, text, len, true) || bpe_pieces(t, &r, &w, out)) goto out;
        ret = 0;
        goto out;
    }
    if (tok_added_split(t, false, split_special, text, len, &s1, &n1, &c1)) goto out;
    for (size_t i = 0; i < n1; i++) {
        const struct tok_seg *g = &s1[i];
        if (g->id >= 0) {
            if (tok_ids_push(out, g->id)) goto out;
            continue;
        }
        bool first = !g->a;
        if (pipe_run(t, &r, 0, nn, text + g->a, g->b - g->a, first)) goto out;
        nb.len = 0;
        if (pc_put(&nb, r.p[0].buf, r.p[0].len)) goto out;
        if (!tok_added_any(t, true)) {
            if (pipe_run(t, &r, nn, ns, nb.buf, nb.len, first) || bpe_pieces(t, &r, &w, out))
                goto out;
            continue;
        }
        if (tok_added_split(t, true, split_special, nb.buf, nb.len, &s2, &n2, &c2)) goto out;
        for (size_t j = 0; j < n2; j++) {
            const struct tok_seg *h = &s2[j];
            if (h->id >= 0 ? tok_ids_push(out, h->id)
                           : pipe_run(t, &r, nn, ns, nb.buf + h->a, h->b - h->a, first) ||
                                 bpe_pieces(t, &r, &w, out))
                goto out;
        }
    }
    ret = 0;
out:
    for (int i = 0; i < 2; i++) free(r.p[i].buf), free(r.p[i].sp);
    free(nb.buf), free(nb.sp);
    free(s1), free(s2);
    free(r.seg);
    free(r.seg2);
    pcre2_match_data_free(r.md);
    free(w.sym);
    free(w.heap);
    return ret;
}

/* ===== tokenizer.json ===== */

struct hf {
    const char *path;
    bool prepends; /* some step puts a space marker before the text (decoding strips it) */
    bool metaspace, bytelevel;
};

/* a bool member, dflt when absent or null; -1 with a message when of another type */
static int jbool(const struct hf *h, const json_t *o, const char *key, bool dflt, bool *out) {
    const json_t *v = json_object_get(o, key);
    *out = dflt;
    if (json_is_boolean(v)) *out = json_is_true(v);
    else if (v && !json_is_null(v))
        return err("%s: \"%s\" is not true/false", h->path, key);
    return 0;
}

/* {"String": s} or {"Regex": s} */
static int jpattern(const struct hf *h, const json_t *o, const char **pat, bool *literal) {
    const json_t *p = json_object_get(o, "pattern");
    *literal = !!jstr(p, "String");
    *pat = *literal ? jstr(p, "String") : jstr(p, "Regex");
    if (!*pat)
        return err("%s: %s has no pattern {\"String\": ...} or {\"Regex\": ...}", h->path,
                   jstr(o, "type"));
    return 0;
}

static int parse_normalizer(struct hf *h, struct tokenizer *t, const json_t *j, int depth) {
    if (!j || json_is_null(j)) return 0;
    const char *type = jstr(j, "type");
    if (depth > 8) return err("%s: normalizers nested too deep", h->path);
    if (!type) return err("%s: a normalizer without \"type\"", h->path);
    if (!strcmp(type, "Sequence")) {
        const json_t *a = json_object_get(j, "normalizers");
        if (!json_is_array(a)) return err("%s: Sequence normalizer without a list", h->path);
        for (size_t i = 0; i < json_array_size(a); i++)
            if (parse_normalizer(h, t, json_array_get(a, i), depth + 1)) return -1;
        return 0;
    }
    static const struct {
        const char *name;
        int opt;
    } forms[] = {
        {"NFC", UTF8PROC_STABLE | UTF8PROC_COMPOSE},
        {"NFD", UTF8PROC_STABLE | UTF8PROC_DECOMPOSE},
        {"NFKC", UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT},
        {"NFKD", UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT},
    };
    for (size_t i = 0; i < LB_ARRAY_LEN(forms); i++) {
        if (strcmp(type, forms[i].name)) continue;
        struct step *st = pipe_add(t, STEP_UNORM);
        if (!st) return -1;
        st->uopt = forms[i].opt;
        return 0;
    }
    if (!strcmp(type, "Lowercase") || !strcmp(type, "StripAccents"))
        return pipe_add(t, type[0] == 'L' ? STEP_LOWER : STEP_NOMARK) ? 0 : -1;
    if (!strcmp(type, "Strip")) {
        struct step *st = pipe_add(t, STEP_STRIP);
        if (!st || jbool(h, j, "strip_left", true, &st->left) ||
            jbool(h, j, "strip_right", true, &st->right))
            return -1;
        return 0;
    }
    if (!strcmp(type, "Prepend")) {
        const char *s = jstr(j, "prepend");
        struct step *st = s ? pipe_add(t, STEP_PREPEND) : NULL;
        if (!s) return err("%s: Prepend normalizer without \"prepend\"", h->path);
        h->prepends = true;
        h->metaspace |= !strcmp(s, "\xe2\x96\x81");
        return st ? step_text(st, s) : -1;
    }
    if (!strcmp(type, "Replace")) {
        const char *pat, *content = jstr(j, "content");
        bool literal;
        if (jpattern(h, j, &pat, &literal)) return -1;
        if (!content) return err("%s: Replace normalizer without \"content\"", h->path);
        struct step *st = pipe_add(t, STEP_REPLACE);
        h->metaspace |= !strcmp(content, "\xe2\x96\x81");
        return st ? step_text(st, content) || step_regex(st, pat, literal, h->path) : -1;
    }
    return err("%s: normalizer \"%s\" is not supported (expected Sequence, NFC, NFD, NFKC, NFKD, "
               "Lowercase, Strip, StripAccents, Prepend, Replace)", h->path, type);
}

static int parse_pre(struct hf *h, struct tokenizer *t, const json_t *j, int depth) {
    if (!j || json_is_null(j)) return 0;
    const char *type = jstr(j, "type");
    if (depth > 8) return err("%s: pre_tokenizers nested too deep", h->path);
    if (!type) return err("%s: a pre_tokenizer without \"type\"", h->path);
    if (!strcmp(type, "Sequence")) {
        const json_t *a = json_object_get(j, "pretokenizers");
        if (!json_is_array(a)) return err("%s: Sequence pre_tokenizer without a list", h->path);
        for (size_t i = 0; i < json_array_size(a); i++)
            if (parse_pre(h, t, json_array_get(a, i), depth + 1)) return -1;
        return 0;
    }
    if (!strcmp(type, "Split")) {
        const char *pat, *beh = jstr(j, "behavior");
        bool literal = false, invert = false;
        int b = 0;
        if (jpattern(h, j, &pat, &literal) || jbool(h, j, "invert", false, &invert)) return -1;
        while (b < SPLIT_COUNT && (!beh || strcmp(beh, split_names[b]))) b++;
        if (b == SPLIT_COUNT)
            return err("%s: Split behavior \"%s\" is not one of Removed, Isolated, "
                       "MergedWithPrevious, MergedWithNext, Contiguous", h->path,
                       beh ? beh : "(none)");
        return add_split(t, pat, literal, (enum split_behavior)b, invert, h->path);
    }
    if (!strcmp(type, "ByteLevel")) {
        bool prefix = false, use_regex = false;
        if (jbool(h, j, "add_prefix_space", true, &prefix) ||
            jbool(h, j, "use_regex", true, &use_regex))
            return -1;
        h->bytelevel = true;
        return add_bytelevel(t, prefix, use_regex, h->path);
    }
    if (!strcmp(type, "Metaspace")) {
        const char *rep = jstr(j, "replacement"), *scheme = jstr(j, "prepend_scheme");
        bool split = false, prefix = false;
        if (jbool(h, j, "split", true, &split) || jbool(h, j, "add_prefix_space", true, &prefix))
            return -1;
        struct step *st = pipe_add(t, STEP_METASPACE);
        if (!st) return -1;
        st->split = split;
        st->scheme = prefix ? PREPEND_ALWAYS : PREPEND_NEVER; /* before prepend_scheme existed */
        if (scheme && !strcmp(scheme, "always")) st->scheme = PREPEND_ALWAYS;
        else if (scheme && !strcmp(scheme, "first")) st->scheme = PREPEND_FIRST;
        else if (scheme && !strcmp(scheme, "never")) st->scheme = PREPEND_NEVER;
        else if (scheme)
            return err("%s: Metaspace prepend_scheme \"%s\" (expected always, first, never)",
                       h->path, scheme);
        h->metaspace = true;
        h->prepends |= st->scheme != PREPEND_NEVER;
        return step_text(st, rep ? rep : "\xe2\x96\x81");
    }
    if (!strcmp(type, "Digits")) {
        bool each = false;
        if (jbool(h, j, "individual_digits", false, &each)) return -1;
        return add_split(t, each ? "\\p{N}" : "\\p{N}+", false, SPLIT_ISOLATED, false, h->path);
    }
    return err("%s: pre_tokenizer \"%s\" is not supported (expected Sequence, Split, ByteLevel, "
               "Metaspace, Digits)", h->path, type);
}

/* decoder: only how pieces become text (ByteLevel, or Metaspace / Replace U+2581 -> " ") */
static void scan_decoder(struct hf *h, const json_t *j, int depth, bool *seen_bl, bool *seen_ms,
                         bool *strip) {
    const char *type = jstr(j, "type");
    if (!type || depth > 8) return;
    if (!strcmp(type, "Sequence")) {
        const json_t *a = json_object_get(j, "decoders");
        for (size_t i = 0; i < json_array_size(a); i++)
            scan_decoder(h, json_array_get(a, i), depth + 1, seen_bl, seen_ms, strip);
    } else if (!strcmp(type, "ByteLevel")) {
        *seen_bl = true;
    } else if (!strcmp(type, "Metaspace")) {
        const char *scheme = jstr(j, "prepend_scheme");
        *seen_ms = true;
        *strip |= !scheme || strcmp(scheme, "never");
    } else if (!strcmp(type, "Replace")) {
        const char *pat = jstr(json_object_get(j, "pattern"), "String");
        *seen_ms |= pat && !strcmp(pat, "\xe2\x96\x81");
    } else if (!strcmp(type, "Strip")) {
        *strip |= json_integer_value(json_object_get(j, "start")) > 0;
    }
}

static int parse_model(struct hf *h, struct tokenizer *t, const json_t *root) {
    const json_t *model = json_object_get(root, "model");
    const json_t *added = json_object_get(root, "added_tokens");
    const json_t *merges = json_object_get(model, "merges");
    json_t *vocab = json_object_get(model, "vocab"), *v; /* json_object_foreach wants non-const */
    const char *type = jstr(model, "type"), *key;
    if (!json_is_object(model)) return err("%s: no \"model\" object", h->path);
    if (!type && vocab && merges) type = "BPE"; /* files from before "type" was written */
    if (!type || strcmp(type, "BPE"))
        return err("%s: model.type \"%s\" is not supported (expected \"BPE\")", h->path,
                   type ? type : "(none)");
    if (!json_is_object(vocab)) return err("%s: model.vocab is not an object", h->path);
    if (!json_is_array(merges)) return err("%s: model.merges is not an array", h->path);
    if (added && !json_is_array(added)) return err("%s: added_tokens is not an array", h->path);
    /* ids and sizes */
    long long max_id = -1;
    size_t arena = 0;
    json_object_foreach(vocab, key, v) {
        long long id = json_is_integer(v) ? json_integer_value(v) : -1;
        if (id < 0 || id >= (1 << 24))
            return err("%s: model.vocab[\"%s\"] is not an id in 0..%d", h->path, key, (1 << 24) - 1);
        max_id = LB_MAX(max_id, id);
        arena += strlen(key) + 1;
    }
    for (size_t i = 0; i < json_array_size(added); i++) {
        const json_t *a = json_array_get(added, i);
        const json_t *jid = json_object_get(a, "id");
        long long id = json_is_integer(jid) ? json_integer_value(jid) : -1;
        if (id < 0 || id >= (1 << 24) || !jstr(a, "content"))
            return err("%s: added_tokens[%zu] needs an \"id\" in 0..%d and a \"content\"",
                       h->path, i, (1 << 24) - 1);
        max_id = LB_MAX(max_id, id);
        arena += strlen(jstr(a, "content")) + 1;
    }
    if (max_id < 0) return err("%s: model.vocab is empty", h->path);
    size_t n_entries = json_object_size(vocab) + json_array_size(added);
    if ((size_t)max_id >= 2 * n_entries + 1024) /* a tiny file must not allocate 16M ids */
        return err("%s: token id %lld with only %zu tokens (expected ids below about the token "
                   "count)", h->path, max_id, n_entries);
    if (tok_vocab_alloc(t, (int)max_id + 1, arena)) return -1;
    bool *in_model = xcalloc((size_t)t->n_vocab, 1, "tokenizer vocab flags");
    if (!in_model) return -1;
    size_t used = 0;
    json_object_foreach(vocab, key, v) {
        int id = (int)json_integer_value(v);
        if (t->len[id] >= 0) { /* two pieces with one id: keep the first */
            continue;
        }
        tok_set_piece(t, &used, id, key, strlen(key));
        t->type[id] = TOK_TYPE_NORMAL;
        in_model[id] = true;
    }
    for (size_t i = 0; i < json_array_size(added); i++) {
        const json_t *a = json_array_get(added, i);
        int id = (int)json_integer_value(json_object_get(a, "id"));
        const char *c = jstr(a, "content");
        if (t->len[id] < 0) tok_set_piece(t, &used, id, c, strlen(c));
        t->type[id] = json_is_true(json_object_get(a, "special")) ? TOK_TYPE_CONTROL
                                                                   : TOK_TYPE_USER;
    }
    int rc = tok_vocab_index(t, in_model);
    free(in_model);
    if (rc) return -1;
    if (jbool(h, model, "byte_fallback", false, &t->byte_fallback) ||
        jbool(h, model, "fuse_unk", false, &t->fuse_unk) ||
        jbool(h, model, "ignore_merges", false, &t->ignore_merges))
        return -1;
    const char *unk = jstr(model, "unk_token");
    t->unk = unk ? tok_lookup(t, unk, strlen(unk)) : -1;
    if (unk && t->unk < 0)
        return err("%s: model.unk_token \"%s\" is not in model.vocab", h->path, unk);
    if (t->unk >= 0 && t->type[t->unk] == TOK_TYPE_NORMAL) t->type[t->unk] = TOK_TYPE_UNKNOWN;
    for (int b = 0; t->byte_fallback && b < 256; b++)
        if (t->byte_id[b] >= 0) t->type[t->byte_id[b]] = TOK_TYPE_BYTE;
    const char *csp = jstr(model, "continuing_subword_prefix");
    const char *eow = jstr(model, "end_of_word_suffix");
    if ((csp && *csp) || (eow && *eow))
        return err("%s: continuing_subword_prefix / end_of_word_suffix are not supported (a "
                   "Llama/Qwen BPE has neither)", h->path);
    /* merges: "a b" strings or [a, b] pairs, ranked by position */
    for (size_t i = 0; i < json_array_size(merges); i++) {
        const json_t *m = json_array_get(merges, i);
        const char *a, *b;
        size_t na, nb;
        char pair[2048];
        if (json_is_string(m)) {
            const char *s = json_string_value(m), *sp = *s ? strchr(s + 1, ' ') : NULL;
            if (!sp) return err("%s: model.merges[%zu] \"%s\" is not \"left right\"", h->path, i, s);
            a = s, na = (size_t)(sp - s), b = sp + 1, nb = strlen(b);
        } else if (json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
                   json_is_string(json_array_get(m, 1))) {
            a = json_string_value(json_array_get(m, 0)), na = strlen(a);
            b = json_string_value(json_array_get(m, 1)), nb = strlen(b);
        } else {
            return err("%s: model.merges[%zu] is neither \"a b\" nor [\"a\", \"b\"]", h->path, i);
        }
        if (na + nb > sizeof pair)
            return err("%s: model.merges[%zu] is longer than %zu bytes", h->path, i, sizeof pair);
        memcpy(pair, a, na);
        memcpy(pair + na, b, nb);
        int ia = tok_lookup(t, a, na), ib = tok_lookup(t, b, nb), ic = tok_lookup(t, pair, na + nb);
        if (ia < 0 || ib < 0 || ic < 0)
            return err("%s: model.merges[%zu] \"%.*s\" + \"%.*s\": %s not in model.vocab", h->path,
                       i, (int)na, a, (int)nb, b,
                       ia < 0 ? "the left piece is" : ib < 0 ? "the right piece is" : "the result is");
        if (tok_merge_add(t, ia, ib, ic, (int)i)) return -1;
    }
    return 0;
}

int tok_hf_load(struct tokenizer *t, const char *path) {
    json_error_t je;
    struct hf h = {.path = path};
    int ret = -1;
    if (input_size_check(path, "the tokenizer")) return -1;
    json_t *root = json_load_file(path, JSON_DECODE_ANY, &je);
    if (!root && je.line < 1) return err("%s: cannot read: %s", path, je.text);
    if (!root)
        return err("%s:%d:%d: not valid JSON: %s (expected a Hugging Face tokenizer.json)", path,
                   je.line, je.column, je.text);
    if (!json_is_object(root)) {
        err("%s: the JSON is not an object (expected a Hugging Face tokenizer.json)", path);
        goto out;
    }
    t->kind = TOK_KIND_BPE;
    if (parse_model(&h, t, root)) goto out;
    if (parse_normalizer(&h, t, json_object_get(root, "normalizer"), 0)) goto out;
    if (t->pipe) t->pipe->n_norm = t->pipe->n;
    if (parse_pre(&h, t, json_object_get(root, "pre_tokenizer"), 0)) goto out;
    /* decoding */
    const json_t *dec = json_object_get(root, "decoder");
    bool bl = false, ms = false, strip = false;
    if (dec && !json_is_null(dec)) scan_decoder(&h, dec, 0, &bl, &ms, &strip);
    else bl = h.bytelevel, ms = h.metaspace, strip = h.prepends;
    t->dec = bl ? TOK_DEC_BYTELEVEL : ms ? TOK_DEC_METASPACE : TOK_DEC_RAW;
    t->dec_strip_after_bos = strip && !bl;
    if (tok_added_init(t, root, path) || tok_specials_init(t, root, path)) goto out;
    ret = 0;
out:
    json_decref(root);
    return ret;
}
