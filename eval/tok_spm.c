/* eval/tok_spm.c: SentencePiece-BPE encoding by piece score.
 *
 * Both encoders repeatedly merge the adjacent pair of symbols whose concatenation is a vocabulary
 * piece with the highest score, the leftmost pair on ties, until no pair forms a piece:
 *  - TOK_KIND_LLAMA2C follows llama2.c run.c encode: dummy prefix " " (when the text is not
 *    empty), one symbol per UTF-8 character (a lead byte plus up to 3 continuation bytes) when that
 *    character is a piece, otherwise one symbol per byte with id byte+3; a merge needs a score
 *    above -1e10. run.c rescans every pair after each merge (O(n^2)); here a max-heap of candidate
 *    pairs with lazy deletion gives the same sequence of merges in O(n log n).
 *  - TOK_KIND_SPM follows llama.cpp llm_tokenizer_spm: spaces become U+2581, U+2581 is prefixed
 *    when add_space_prefix, symbols are UTF-8 characters (length from the lead byte alone), a
 *    character that is not a piece stays a symbol (and can still merge), and symbols that are not
 *    pieces at the end are emitted as byte tokens <0xXX> (unk when a byte piece is missing).
 * Where they legitimately differ: llama2.c turns an unknown character into byte tokens before
 * merging (so it never merges), llama.cpp merges it when some piece contains it; llama.cpp lets
 * every piece merge, llama2.c only scores above -1e10; they cut invalid UTF-8 differently
 * (llama.cpp takes a stray lead byte's length on trust, so "\xe2 " swallows the first bytes of
 * the U+2581 that replaced the space: decode(encode(x)) == x holds there for valid UTF-8 only).
 * llama2.c also lets BOS take part in the merges, which no real piece makes possible (no piece
 * begins with "\n<s>\n"); BOS is prepended by tokenizer_encode instead.
 * Speed: symbols are cut into stretches wherever the touching bytes never meet inside a piece
 * (tok_joinable); no merge crosses such a cut, so each stretch is merged on its own with a small
 * heap and the ids are the same (about 10 MB/s on wikitext-2 with the Llama-2 vocab). */
#include <stdlib.h>
#include <string.h>

#include "eval/tok_impl.h"
#include "kernels/common.h"

#define LLAMA2C_MIN_SCORE -1e10f /* run.c: best_score starts at -1e10 */

struct sym {
    size_t start; /* bytes [start, start + n) of the working text */
    uint32_t n;
    bool dead; /* merged into its left neighbour */
    int prev, next;
    int id; /* llama2c: known id; spm: -1 until resolved at the end */
};

struct bigram {
    float score;
    int left;
    uint32_t size; /* bytes of the pair when queued: a stale entry no longer matches */
    int id;
};

struct heap {
    struct bigram *v;
    size_t n, cap;
};

/* a is popped before b: higher score, then smaller left index */
static bool before(const struct bigram *a, const struct bigram *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static int heap_push(struct heap *h, struct bigram b) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 256;
        struct bigram *p = realloc(h->v, cap * sizeof *p);
        if (!p) return err("out of memory: tokenizer merge queue of %zu entries", cap);
        h->v = p;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0 && before(&b, &h->v[(i - 1) / 2])) {
        h->v[i] = h->v[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h->v[i] = b;
    return 0;
}

static struct bigram heap_pop(struct heap *h) {
    struct bigram top = h->v[0], last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && before(&h->v[c + 1], &h->v[c])) c++;
        if (!before(&h->v[c], &last)) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n) h->v[i] = last;
    return top;
}

struct spm_work {
    const struct tokenizer *t;
    struct tok_ids *out;
    char *text; /* working text */
    size_t len, cap;
    struct sym *sym; /* the symbols of the current stretch (see flush) */
    size_t n_sym, cap_sym;
    struct heap heap;
};

static int work_append(struct spm_work *w, const char *s, size_t n) {
    if (w->cap - w->len < n) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap - w->len < n) cap *= 2;
        char *p = realloc(w->text, cap);
        if (!p) return err("out of memory: tokenizer text of %zu bytes", cap);
        w->text = p;
        w->cap = cap;
    }
    if (n) memcpy(w->text + w->len, s, n); /* n = 0 may come with no buffer yet */
    w->len += n;
    return 0;
}

static int try_bigram(struct spm_work *w, int left, int right) {
    if (left < 0 || right < 0) return 0;
    const struct sym *l = &w->sym[left], *r = &w->sym[right];
    size_t size = (size_t)l->n + r->n;
    int id = tok_lookup(w->t, w->text + l->start, size);
    if (id < 0) return 0;
    float score = w->t->score[id];
    if (w->t->kind == TOK_KIND_LLAMA2C && !(score > LLAMA2C_MIN_SCORE)) return 0;
    return heap_push(&w->heap, (struct bigram){score, left, (uint32_t)size, id});
}

/* merge the current stretch of symbols until no pair forms a piece, emit it, start anew */
static int flush(struct spm_work *w) {
    const struct tokenizer *t = w->t;
    for (int i = 1; i < (int)w->n_sym; i++)
        if (try_bigram(w, i - 1, i)) return -1;
    while (w->heap.n) {
        struct bigram g = heap_pop(&w->heap);
        struct sym *l = &w->sym[g.left];
        if (l->dead || l->next < 0) continue;
        struct sym *r = &w->sym[l->next];
        if ((size_t)l->n + r->n != g.size) continue; /* stale: one side grew */
        l->n += r->n;
        l->id = g.id;
        r->dead = true;
        l->next = r->next;
        if (r->next >= 0) w->sym[r->next].prev = g.left;
        if (try_bigram(w, l->prev, g.left) || try_bigram(w, g.left, l->next)) return -1;
    }
    for (size_t i = 0; i < w->n_sym; i++) {
        const struct sym *s = &w->sym[i];
        if (s->dead) continue;
        int id = s->id >= 0 ? s->id : tok_lookup(t, w->text + s->start, s->n);
        if (id >= 0) {
            if (tok_ids_push(w->out, id)) return -1;
            continue;
        }
        for (uint32_t j = 0; j < s->n; j++) { /* llama.cpp resegment: not a piece, so bytes */
            unsigned c = (unsigned char)w->text[s->start + j];
            int b = t->byte_id[c] >= 0 ? t->byte_id[c] : t->unk;
            if (b < 0)
                return err("tokenizer: byte 0x%02x has no <0x%02X> piece and there is no unk "
                           "token", c, c);
            if (tok_ids_push(w->out, b)) return -1;
        }
    }
    w->n_sym = 0;
    return 0;
}

/* the stretch so far cannot merge with a symbol starting with byte c: emit it */
static int cut_before(struct spm_work *w, unsigned char c) {
    const struct sym *p = w->n_sym ? &w->sym[w->n_sym - 1] : NULL;
    if (!p || !p->n || tok_joinable(w->t, (unsigned char)w->text[p->start + p->n - 1], c))
        return 0;
    return flush(w);
}

/* a symbol for working-text bytes [start, start + n). No merge can join it to the previous
 * symbol when their touching bytes never meet inside a piece (tok_joinable): the stretch before
 * it is then merged and emitted on its own, which gives the same ids with small heaps. */
static int sym_add(struct spm_work *w, size_t start, size_t n, int id) {
    if (n && cut_before(w, (unsigned char)w->text[start])) return -1;
    if (w->n_sym == w->cap_sym) {
        size_t cap = w->cap_sym ? 2 * w->cap_sym : 256;
        struct sym *p = realloc(w->sym, cap * sizeof *p);
        if (!p) return err("out of memory: %zu tokenizer symbols", cap);
        w->sym = p;
        w->cap_sym = cap;
    }
    int i = (int)w->n_sym++;
    w->sym[i] = (struct sym){.start = start, .n = (uint32_t)n, .dead = false, .prev = i - 1,
                             .next = -1, .id = id};
    if (i > 0) w->sym[i - 1].next = i;
    return 0;
}

/* llama2.c: a symbol per piece id; the working text is the concatenation of their pieces */
static int add_l2c(struct spm_work *w, int id) {
    const struct tokenizer *t = w->t;
    size_t n = (size_t)t->len[id];
    if (n && cut_before(w, (unsigned char)tok_piece(t, id)[0])) return -1;
    if (!w->n_sym) w->len = 0; /* nothing refers to the text of emitted stretches */
    if (work_append(w, tok_piece(t, id), n)) return -1;
    return sym_add(w, w->len - n, n, id);
}

static int encode_llama2c(struct spm_work *w, const char *text, size_t len) {
    const struct tokenizer *t = w->t;
    /* dummy prefix: run.c pushes the id of " " (and -1 when there is none; we use its byte) */
    int sp = tok_lookup(t, " ", 1);
    if (sp < 0) sp = ' ' + 3;
    if (sp >= t->n_vocab) return err("tokenizer: no piece \" \" and no byte token for it");
    if (add_l2c(w, sp)) return -1;
    for (size_t i = 0; i < len;) {
        size_t k = 1; /* a lead byte plus continuation bytes, at most 4 in all (run.c) */
        while (k < 4 && i + k < len && ((unsigned char)text[i + k] & 0xC0) == 0x80) k++;
        int id = tok_lookup(t, text + i, k);
        if (id >= 0 && add_l2c(w, id)) return -1;
        for (size_t j = 0; id < 0 && j < k; j++) {
            int b = (unsigned char)text[i + j] + 3;
            if (b >= t->n_vocab)
                return err("tokenizer: byte 0x%02x needs token %d beyond the vocab of %d",
                           (unsigned char)text[i + j], b, t->n_vocab);
            if (add_l2c(w, b)) return -1;
        }
        i += k;
    }
    return flush(w);
}

/* llama.cpp: the escaped text, one symbol per UTF-8 character (length from its first byte) */
static int encode_spm(struct spm_work *w, const char *text, size_t len) {
    static const char ws[] = "\xe2\x96\x81"; /* U+2581 LOWER ONE EIGHTH BLOCK */
    size_t n_sp = 0;
    for (size_t i = 0; i < len; i++) n_sp += text[i] == ' ';
    w->cap = len + 2 * n_sp + 3;
    w->text = xmalloc(w->cap, "tokenizer text");
    if (!w->text) return -1;
    if (w->t->add_space_prefix) memcpy(w->text, ws, 3), w->len = 3;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') memcpy(w->text + w->len, ws, 3), w->len += 3;
        else w->text[w->len++] = text[i];
    }
    for (size_t i = 0; i < w->len;) {
        size_t k = LB_MIN(tok_utf8_len((unsigned char)w->text[i]), w->len - i);
        if (sym_add(w, i, k, -1)) return -1;
        i += k;
    }
    return flush(w);
}

int tok_spm_encode(const struct tokenizer *t, const char *text, size_t len, struct tok_ids *out) {
    struct spm_work w = {.t = t, .out = out};
    int rc = 0;
    if (len) rc = t->kind == TOK_KIND_LLAMA2C ? encode_llama2c(&w, text, len)
                                              : encode_spm(&w, text, len);
    free(w.text);
    free(w.sym);
    free(w.heap.v);
    return rc;
}
