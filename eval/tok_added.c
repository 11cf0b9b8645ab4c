/* eval/tok_added.c: what a Hugging Face tokenizer.json adds around its BPE model: the added
 * tokens matched in the text, and the special tokens an encode with add_special_tokens=True puts
 * around it (the post-processor, or tokenizer_config.json for the classes that rebuild it).
 *
 * Behaviour reproduced (no code taken from them):
 *  - tokenizers (Rust, Apache-2.0) tokenizer/added_vocabulary.rs, and @huggingface/tokenizers
 *    (JS) Tokenizer.encode_text: the text is first cut at the added tokens whose "normalized" is
 *    false (special tokens by default), leftmost-longest (aho-corasick MatchKind::LeftmostLongest;
 *    the JS trie walk is the same); each remaining piece is normalized on its own, then cut at the
 *    tokens whose "normalized" is true, matched by their normalized content; what is left goes
 *    through the pre-tokenizer and the model piece by piece. single_word: a match with a word
 *    character (alphanumeric or '_') right before or after it is skipped; lstrip / rstrip: the
 *    whitespace before / after the match goes with the token. encode_special_tokens (transformers'
 *    split_special_tokens): matches of special tokens are skipped, their text is encoded as text.
 *    A skipped match still ends the scan there (find_iter does not overlap).
 *  - post-processors: TemplateProcessing ("single": the special tokens before and after $A, each
 *    with its "ids"), RobertaProcessing / BertProcessing (cls before, sep after), ByteLevel (no
 *    tokens), Sequence (each wraps what the previous one made).
 *  - transformers (v4) LlamaTokenizerFast / GemmaTokenizerFast / CodeLlamaTokenizerFast call
 *    update_post_processor() when they load: the template becomes "[bos] $A [eos]" by the
 *    tokenizer_config.json's add_bos_token (default true) and add_eos_token (default false),
 *    whatever the file's post_processor says; every other class keeps the post_processor. This is
 *    what lm-evaluation-harness's HF model gets from tokenizer.encode(text) (its default since
 *    v0.4.10; add_special_tokens=True).
 * BOS / EOS: tokenizer_config.json's bos_token / eos_token when given, else the template's first
 * special token, else tokenizer.json's bos_token, else the names Llama-family files use. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "eval/tok_impl.h"
#include "kernels/common.h"

/* ===== a byte trie for leftmost-longest matching ===== */

struct trie {
    uint64_t *key;    /* edge node << 8 | byte, UINT64_MAX = empty slot */
    int32_t *child;   /* the node that edge leads to */
    size_t mask, n_edges;
    int32_t *term;    /* node -> index of the added token ending there, -1 none */
    int n_nodes, cap_nodes;
    uint64_t first[4]; /* bit b: some token starts with byte b */
};

struct added {
    int id;
    bool special, lstrip, rstrip, single_word, normalized;
};

struct tok_added {
    struct added *tok;
    int n;
    struct trie raw, norm; /* normalized = false / true */
};

static size_t edge_slot(const struct trie *tr, uint64_t key) {
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    size_t i = (size_t)(h ^ (h >> 29)) & tr->mask;
    while (tr->key[i] != UINT64_MAX && tr->key[i] != key) i = (i + 1) & tr->mask;
    return i;
}

static int trie_grow_edges(struct trie *tr) {
    size_t cap = tr->key ? 2 * (tr->mask + 1) : 256;
    uint64_t *key = xmalloc(cap * sizeof *key, "added-token matcher");
    int32_t *child = xmalloc(cap * sizeof *child, "added-token matcher");
    if (!key || !child) return free(key), free(child), -1;
    struct trie n = *tr;
    n.key = key, n.child = child, n.mask = cap - 1;
    for (size_t i = 0; i < cap; i++) key[i] = UINT64_MAX;
    for (size_t i = 0; tr->key && i <= tr->mask; i++) {
        if (tr->key[i] == UINT64_MAX) continue;
        size_t j = edge_slot(&n, tr->key[i]);
        key[j] = tr->key[i], child[j] = tr->child[i];
    }
    free(tr->key), free(tr->child);
    *tr = n;
    return 0;
}

static int trie_new_node(struct trie *tr) {
    if (tr->n_nodes == tr->cap_nodes) {
        int cap = tr->cap_nodes ? 2 * tr->cap_nodes : 256;
        int32_t *p = realloc(tr->term, (size_t)cap * sizeof *p);
        if (!p) return err("out of memory: added-token matcher of %d nodes", cap);
        tr->term = p;
        tr->cap_nodes = cap;
    }
    tr->term[tr->n_nodes] = -1;
    return tr->n_nodes++;
}

/* add s[0..n) ending in token k; a later token with the same text replaces an earlier one (the JS
 * tokenizer's added_tokens_map keeps the last) */
static int trie_add(struct trie *tr, const char *s, size_t n, int k) {
    if (!n) return 0; /* an empty token never matches */
    if (!tr->n_nodes && trie_new_node(tr) < 0) return -1;
    int node = 0;
    for (size_t i = 0; i < n; i++) {
        if ((!tr->key || 2 * (tr->n_edges + 1) > tr->mask + 1) && trie_grow_edges(tr)) return -1;
        uint64_t key = (uint64_t)node << 8 | (unsigned char)s[i];
        size_t j = edge_slot(tr, key);
        if (tr->key[j] == UINT64_MAX) {
            int c = trie_new_node(tr);
            if (c < 0) return -1;
            tr->key[j] = key, tr->child[j] = c;
            tr->n_edges++;
        }
        node = tr->child[j];
    }
    tr->term[node] = k;
    unsigned char b = (unsigned char)s[0];
    tr->first[b >> 6] |= 1ull << (b & 63);
    return 0;
}

/* the longest token starting at s[i]: its index (-1 none) and end in *end */
static int trie_match(const struct trie *tr, const char *s, size_t n, size_t i, size_t *end) {
    unsigned char b = (unsigned char)s[i];
    if (!(tr->first[b >> 6] >> (b & 63) & 1)) return -1;
    int node = 0, best = -1;
    for (size_t j = i; j < n; j++) {
        size_t k = edge_slot(tr, (uint64_t)node << 8 | (unsigned char)s[j]);
        if (tr->key[k] == UINT64_MAX) break;
        node = tr->child[k];
        if (tr->term[node] >= 0) best = tr->term[node], *end = j + 1;
    }
    return best;
}

static void trie_free(struct trie *tr) {
    free(tr->key), free(tr->child), free(tr->term);
}

void tok_added_free(struct tok_added *a) {
    if (!a) return;
    trie_free(&a->raw), trie_free(&a->norm);
    free(a->tok);
    free(a);
}

bool tok_added_any(const struct tokenizer *t, bool normalized) {
    return t->added && (normalized ? t->added->norm.n_nodes : t->added->raw.n_nodes) > 0;
}

/* ===== loading ===== */

static int jflag(const json_t *o, const char *key, bool dflt, bool *out, const char *path,
                 size_t i) {
    const json_t *v = json_object_get(o, key);
    *out = dflt;
    if (json_is_boolean(v)) *out = json_is_true(v);
    else if (v && !json_is_null(v))
        return err("%s: added_tokens[%zu].%s is not true/false", path, i, key);
    return 0;
}

int tok_added_init(struct tokenizer *t, const json_t *root, const char *path) {
    const json_t *arr = json_object_get(root, "added_tokens");
    size_t n = json_array_size(arr);
    if (!n) return 0;
    struct tok_added *a = xcalloc(1, sizeof *a, "added tokens");
    if (!a) return -1;
    t->added = a;
    a->tok = xcalloc(n, sizeof *a->tok, "added tokens");
    if (!a->tok) return -1;
    for (size_t i = 0; i < n; i++) {
        const json_t *o = json_array_get(arr, i);
        const char *c = json_string_value(json_object_get(o, "content"));
        size_t len = json_string_length(json_object_get(o, "content"));
        struct added *k = &a->tok[a->n];
        k->id = (int)json_integer_value(json_object_get(o, "id")); /* checked by parse_model */
        if (jflag(o, "special", false, &k->special, path, i) ||
            jflag(o, "lstrip", false, &k->lstrip, path, i) ||
            jflag(o, "rstrip", false, &k->rstrip, path, i) ||
            jflag(o, "single_word", false, &k->single_word, path, i) ||
            jflag(o, "normalized", !k->special, &k->normalized, path, i))
            return -1;
        if (tok_utf8_valid(c, len) != len)
            return err("%s: added_tokens[%zu].content is not valid UTF-8", path, i);
        /* without a normalizer a "normalized" token is matched as it is, with the others */
        bool norm = k->normalized && tok_has_normalizer(t);
        int rc;
        if (norm) {
            char *s;
            size_t ns;
            if (tok_normalize(t, c, len, &s, &ns)) return -1;
            rc = trie_add(&a->norm, s, ns, a->n);
            free(s);
        } else {
            rc = trie_add(&a->raw, c, len, a->n);
        }
        if (rc) return -1;
        a->n++;
    }
    return 0;
}

/* ===== splitting ===== */

/* the code point that ends at s[e] (s[0..e) valid UTF-8, e > 0) */
static int32_t cp_before(const char *s, size_t e) {
    size_t b = e - 1;
    while (b > 0 && ((unsigned char)s[b] & 0xC0) == 0x80) b--;
    utf8proc_int32_t cp = -1;
    utf8proc_iterate((const utf8proc_uint8_t *)s + b, (utf8proc_ssize_t)(e - b), &cp);
    return cp;
}

static int32_t cp_at(const char *s, size_t n, size_t i, size_t *len) {
    utf8proc_int32_t cp = -1;
    utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i,
                                          (utf8proc_ssize_t)(n - i), &cp);
    *len = k > 0 ? (size_t)k : 1;
    return cp;
}

/* Rust char::is_alphanumeric (letters and numbers) or '_' */
static bool word_char(int32_t cp) {
    if (cp == '_') return true;
    if (cp < 0) return false;
    const char *c = utf8proc_category_string(cp);
    return c[0] == 'L' || c[0] == 'N';
}

bool tok_is_space(int32_t cp) {
    if ((cp >= 9 && cp <= 13) || cp == 0x85) return true;
    if (cp < 0) return false;
    utf8proc_category_t c = utf8proc_category(cp);
    return c == UTF8PROC_CATEGORY_ZS || c == UTF8PROC_CATEGORY_ZL || c == UTF8PROC_CATEGORY_ZP;
}

static int seg_push(struct tok_seg **seg, size_t *n, size_t *cap, size_t a, size_t b, int id) {
    if (*n == *cap) {
        size_t c = *cap ? 2 * *cap : 16;
        struct tok_seg *p = realloc(*seg, c * sizeof *p);
        if (!p) return err("out of memory: %zu added-token pieces", c);
        *seg = p;
        *cap = c;
    }
    (*seg)[(*n)++] = (struct tok_seg){a, b, id};
    return 0;
}

int tok_added_split(const struct tokenizer *t, bool normalized, bool split_special, const char *s,
                    size_t n, struct tok_seg **seg, size_t *n_seg, size_t *cap) {
    const struct tok_added *a = t->added;
    const struct trie *tr = normalized ? &a->norm : &a->raw;
    size_t from = 0; /* the text not yet emitted starts here */
    *n_seg = 0;
    for (size_t i = 0; tr->n_nodes && i < n;) {
        size_t end = 0;
        int k = trie_match(tr, s, n, i, &end);
        if (k < 0) {
            i++;
            continue;
        }
        const struct added *tk = &a->tok[k];
        size_t start = i, stop = end;
        i = end;
        if (split_special && tk->special) continue;
        if (tk->single_word && ((start > 0 && word_char(cp_before(s, start))) ||
                                (stop < n && word_char(cp_at(s, n, stop, &(size_t){0})))))
            continue;
        if (tk->lstrip)
            while (start > from && tok_is_space(cp_before(s, start))) {
                size_t b = start - 1;
                while (b > from && ((unsigned char)s[b] & 0xC0) == 0x80) b--;
                start = b;
            }
        if (tk->rstrip) {
            size_t k2;
            while (stop < n && tok_is_space(cp_at(s, n, stop, &k2))) stop += k2;
            i = stop;
        }
        if (from < start && seg_push(seg, n_seg, cap, from, start, -1)) return -1;
        if (seg_push(seg, n_seg, cap, start, stop, tk->id)) return -1;
        from = stop;
    }
    if (from < n && seg_push(seg, n_seg, cap, from, n, -1)) return -1;
    return 0;
}

/* ===== special tokens ===== */

static int push_id(int **v, int *n, int id) {
    int *p = realloc(*v, (size_t)(*n + 1) * sizeof *p);
    if (!p) return err("out of memory: special tokens");
    *v = p;
    p[(*n)++] = id;
    return 0;
}

/* id of the token with this text: an added token's content, else (vocab_too) a model piece */
static int token_id(const struct tokenizer *t, const json_t *root, const char *s, bool vocab_too) {
    const json_t *arr = json_object_get(root, "added_tokens");
    int id = -1;
    for (size_t i = 0; s && i < json_array_size(arr); i++) { /* the last one, as the JS map */
        const json_t *o = json_array_get(arr, i);
        const char *c = json_string_value(json_object_get(o, "content"));
        if (c && !strcmp(c, s)) id = (int)json_integer_value(json_object_get(o, "id"));
    }
    if (id < 0 && s && vocab_too) id = tok_lookup(t, s, strlen(s));
    return id >= 0 && id < t->n_vocab ? id : -1;
}

/* a token named in tokenizer_config.json: "text", {"content": "text", ...} or null */
static const char *config_token(const json_t *cfg, const char *key) {
    const json_t *v = json_object_get(cfg, key);
    return json_is_string(v) ? json_string_value(v)
                             : json_string_value(json_object_get(v, "content"));
}

struct sp {
    int *pre, *post, n_pre, n_post;
};

/* wrap what sp holds in pre..post */
static int sp_wrap(struct sp *sp, const int *pre, int n_pre, const int *post, int n_post) {
    int *p = malloc((size_t)(n_pre + sp->n_pre + 1) * sizeof *p);
    if (!p) return err("out of memory: special tokens");
    if (n_pre) memcpy(p, pre, (size_t)n_pre * sizeof *p);
    if (sp->n_pre) memcpy(p + n_pre, sp->pre, (size_t)sp->n_pre * sizeof *p);
    free(sp->pre);
    sp->pre = p;
    sp->n_pre += n_pre;
    for (int i = 0; i < n_post; i++)
        if (push_id(&sp->post, &sp->n_post, post[i])) return -1;
    return 0;
}

static int post_processor(const struct tokenizer *t, const json_t *pp, struct sp *sp,
                          const char *path, int depth) {
    if (!pp || json_is_null(pp)) return 0;
    const char *type = json_string_value(json_object_get(pp, "type"));
    if (depth > 8) return err("%s: post_processor nested too deep", path);
    if (!type) return err("%s: a post_processor without \"type\"", path);
    if (!strcmp(type, "ByteLevel")) return 0; /* offsets only */
    if (!strcmp(type, "Sequence")) {
        const json_t *a = json_object_get(pp, "processors");
        if (!json_is_array(a)) return err("%s: Sequence post_processor without a list", path);
        for (size_t i = 0; i < json_array_size(a); i++)
            if (post_processor(t, json_array_get(a, i), sp, path, depth + 1)) return -1;
        return 0;
    }
    int *pre = NULL, *post = NULL, n_pre = 0, n_post = 0, rc = -1;
    if (!strcmp(type, "TemplateProcessing")) {
        const json_t *single = json_object_get(pp, "single");
        const json_t *specials = json_object_get(pp, "special_tokens");
        bool seen_a = false;
        if (!json_is_array(single)) {
            err("%s: TemplateProcessing without a \"single\" list", path);
            goto out;
        }
        for (size_t i = 0; i < json_array_size(single); i++) {
            const json_t *it = json_array_get(single, i), *st = json_object_get(it, "SpecialToken");
            if (json_object_get(it, "Sequence")) {
                seen_a = true;
                continue;
            }
            const char *name = json_string_value(json_object_get(st, "id"));
            const json_t *ids = json_object_get(json_object_get(specials, name ? name : ""), "ids");
            if (!name || !json_is_array(ids)) {
                err("%s: TemplateProcessing single[%zu] is neither $A nor a special token listed "
                    "in special_tokens", path, i);
                goto out;
            }
            for (size_t j = 0; j < json_array_size(ids); j++) {
                json_int_t id = json_integer_value(json_array_get(ids, j));
                if (!json_is_integer(json_array_get(ids, j)) || id < 0 || id >= t->n_vocab) {
                    err("%s: special_tokens[\"%s\"].ids[%zu] is not a token id below %d", path,
                        name, j, t->n_vocab);
                    goto out;
                }
                if (seen_a ? push_id(&post, &n_post, (int)id) : push_id(&pre, &n_pre, (int)id))
                    goto out;
            }
        }
    } else if (!strcmp(type, "RobertaProcessing") || !strcmp(type, "BertProcessing")) {
        const json_t *cls = json_object_get(pp, "cls"), *sep = json_object_get(pp, "sep");
        const json_t *ic = json_array_get(cls, 1), *is = json_array_get(sep, 1);
        if (!json_is_integer(ic) || !json_is_integer(is) || json_integer_value(ic) < 0 ||
            json_integer_value(ic) >= t->n_vocab || json_integer_value(is) < 0 ||
            json_integer_value(is) >= t->n_vocab) {
            err("%s: %s needs \"cls\" and \"sep\" as [text, id] with ids below %d", path, type,
                t->n_vocab);
            goto out;
        }
        if (push_id(&pre, &n_pre, (int)json_integer_value(ic)) ||
            push_id(&post, &n_post, (int)json_integer_value(is)))
            goto out;
    } else {
        err("%s: post_processor \"%s\" is not supported (expected TemplateProcessing, ByteLevel, "
            "RobertaProcessing, BertProcessing, Sequence)", path, type);
        goto out;
    }
    rc = sp_wrap(sp, pre, n_pre, post, n_post);
out:
    free(pre), free(post);
    return rc;
}

/* tokenizer_config.json beside path (NULL when there is none); -1 with a message when malformed */
static int load_config(const char *path, json_t **cfg) {
    char p[4200];
    const char *slash = strrchr(path, '/');
    size_t dir = slash ? (size_t)(slash - path) + 1 : 0;
    *cfg = NULL;
    if (dir + sizeof "tokenizer_config.json" > sizeof p) return err("%s: path too long", path);
    memcpy(p, path, dir);
    strcpy(p + dir, "tokenizer_config.json");
    FILE *f = fopen(p, "rb");
    if (!f) return 0;
    fclose(f);
    if (input_size_check(p, "the tokenizer config")) return -1;
    json_error_t je;
    *cfg = json_load_file(p, JSON_DECODE_INT_AS_REAL, &je); /* model_max_length 1e30 */
    if (!json_is_object(*cfg)) {
        json_decref(*cfg);
        *cfg = NULL;
        return err("%s:%d: not a JSON object: %s (expected a Hugging Face tokenizer_config.json)",
                   p, je.line, je.text);
    }
    return 0;
}

int tok_specials_init(struct tokenizer *t, const json_t *root, const char *path) {
    json_t *cfg;
    struct sp sp = {0};
    int rc = -1;
    if (load_config(path, &cfg)) return -1;
    if (post_processor(t, json_object_get(root, "post_processor"), &sp, path, 0)) goto out;
    /* BOS / EOS */
    const char *cb = config_token(cfg, "bos_token"), *ce = config_token(cfg, "eos_token");
    t->bos = cb ? token_id(t, root, cb, true) : -1;
    if (cb && t->bos < 0) {
        err("%s: tokenizer_config.json's bos_token \"%s\" is not a token", path, cb);
        goto out;
    }
    if (t->bos < 0 && sp.n_pre) t->bos = sp.pre[0];
    const json_t *bt = json_object_get(root, "bos_token");
    if (t->bos < 0 && bt)
        t->bos = token_id(t, root, json_is_string(bt) ? json_string_value(bt)
                                                      : json_string_value(json_object_get(bt, "content")),
                          false);
    static const char *const bos_names[] = {"<s>", "<|begin_of_text|>"};
    static const char *const eos_names[] = {"</s>", "<|end_of_text|>", "<|endoftext|>",
                                            "<|im_end|>"};
    const json_t *added = json_object_get(root, "added_tokens");
    for (size_t i = 0; i < LB_ARRAY_LEN(bos_names) && t->bos < 0 && added; i++)
        t->bos = token_id(t, root, bos_names[i], false);
    t->eos = ce ? token_id(t, root, ce, true) : -1;
    if (ce && t->eos < 0) {
        err("%s: tokenizer_config.json's eos_token \"%s\" is not a token", path, ce);
        goto out;
    }
    for (size_t i = 0; i < LB_ARRAY_LEN(eos_names) && t->eos < 0 && added; i++)
        t->eos = token_id(t, root, eos_names[i], false);
    /* the classes whose fast tokenizer rebuilds the template from add_bos/add_eos_token */
    char cls[64] = "";
    const char *c = json_string_value(json_object_get(cfg, "tokenizer_class"));
    if (c && strlen(c) < sizeof cls) {
        strcpy(cls, c);
        size_t k = strlen(cls);
        if (k > 4 && !strcmp(cls + k - 4, "Fast")) cls[k - 4] = 0;
    }
    if (!strcmp(cls, "LlamaTokenizer") || !strcmp(cls, "GemmaTokenizer") ||
        !strcmp(cls, "CodeLlamaTokenizer")) {
        const json_t *ab = json_object_get(cfg, "add_bos_token"),
                     *ae = json_object_get(cfg, "add_eos_token");
        bool add_bos = ab && !json_is_null(ab) ? json_is_true(ab) : true;
        bool add_eos = ae && !json_is_null(ae) ? json_is_true(ae) : false;
        if ((add_bos && t->bos < 0) || (add_eos && t->eos < 0)) {
            err("%s: tokenizer_config.json asks for add_%s_token but names no %s token", path,
                add_bos && t->bos < 0 ? "bos" : "eos", add_bos && t->bos < 0 ? "bos" : "eos");
            goto out;
        }
        sp.n_pre = sp.n_post = 0;
        if ((add_bos && push_id(&sp.pre, &sp.n_pre, t->bos)) ||
            (add_eos && push_id(&sp.post, &sp.n_post, t->eos)))
            goto out;
    }
    t->has_sp = true;
    t->sp_pre = sp.pre, t->n_sp_pre = sp.n_pre;
    t->sp_post = sp.post, t->n_sp_post = sp.n_post;
    sp.pre = sp.post = NULL;
    t->add_bos_default = t->bos >= 0 && t->n_sp_pre > 0 && t->sp_pre[0] == t->bos;
    rc = 0;
out:
    free(sp.pre), free(sp.post);
    json_decref(cfg);
    return rc;
}
