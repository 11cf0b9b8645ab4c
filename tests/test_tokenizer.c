/* tests/test_tokenizer.c: eval/tokenizer against independent expectations.
 *
 *  - llama.cpp's own tokenizer test set (ggml-vocab-llama-spm.gguf .inp/.out, produced by
 *    llama.cpp's tests/test-tokenizer-0 from the SentencePiece reference) through the GGUF vocab,
 *    through llama2.c's tokenizer.bin, and through a tokenizer.json written here from the GGUF vocab
 *    in the layout transformers' LlamaConverter produces.
 *  - a tiny byte-level BPE (GPT-2 byte map, Llama-3 Split regex) as tokenizer.json and as a GGUF
 *    "gpt2" vocab, with ids derived by hand in the comments.
 *  - stories260K tok512.bin on "Once upon a time", ids derived by hand (merge trace below).
 *  - decode(encode(x)) == x, the 1.3 MB wikitext-2 test split through three encoders, and corrupt
 *    inputs. Fixtures are written at run time into t_tmpdir(). */
#include <jansson.h>
#include <stdint.h>

#include "eval/gguf.h"
#include "eval/tok_impl.h"
#include "eval/tokenizer.h"
#include "kernels/common.h"
#include "tests/t.h"

/* ===== helpers ===== */

static char *slurp(const char *path, size_t *len) {
    FILE *f = path ? fopen(path, "rb") : NULL;
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)n + 1);
    if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        p = NULL;
    }
    fclose(f);
    if (p) p[n] = 0, *len = (size_t)n;
    return p;
}

static int spit(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(p, 1, n, f);
    return fclose(f) || w != n ? -1 : 0;
}

static const char *tmp_path(const char *name) {
    static char buf[8][512];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 512, "%s/%s", t_tmpdir(), name);
    return p;
}

/* T_DATA returns one static buffer: DATA keeps up to 8 paths alive at once */
static const char *keep(const char *p) {
    static char buf[8][4096];
    static int k;
    if (!p) return NULL;
    char *d = buf[k++ % 8];
    snprintf(d, 4096, "%s", p);
    return d;
}
#define DATA(rel) keep(T_DATA(rel))

static bool ids_eq(const int *a, int na, const int *b, int nb) {
    return na == nb && (!na || !memcmp(a, b, (size_t)na * sizeof *a));
}

static void print_ids(const char *what, const int *v, int n) {
    fprintf(stderr, "    %s:", what);
    for (int i = 0; i < n; i++) fprintf(stderr, " %d", v[i]);
    fputc('\n', stderr);
}

/* an encode call's result (made at the test's line) against the expected ids; frees got */
static void check_ids(int rc, int *got, int n, const int *want, int n_want, const char *text,
                      int line) {
    if (rc) T_FAIL_("line %d: encode(\"%s\") failed: %s", line, text, err_last());
    if (!ids_eq(got, n, want, n_want)) {
        T_FAIL_("line %d: encode(\"%s\") ids differ", line, text);
        print_ids("got ", got, n);
        print_ids("want", want, n_want);
    }
    free(got);
}

/* T_IDS: tokenizer_encode with a BOS choice; T_IDS_EX: tokenizer_encode_ex with flags */
#define T_IDS_CALL(encode, tok, text, arg, ...)                                                    \
    do {                                                                                           \
        static const int want_[] = {__VA_ARGS__};                                                  \
        int *got_ = NULL, n_ = -1;                                                                 \
        int rc_ = encode((tok), (text), strlen(text), (arg), &got_, &n_);                          \
        check_ids(rc_, got_, n_, want_, (int)LB_ARRAY_LEN(want_), (text), __LINE__);               \
    } while (0)
#define T_IDS(tok, text, bos, ...) T_IDS_CALL(tokenizer_encode, tok, text, bos, __VA_ARGS__)
#define T_IDS_EX(tok, text, flags, ...) T_IDS_CALL(tokenizer_encode_ex, tok, text, flags, __VA_ARGS__)

/* every decoded piece concatenated, prev = -1 before the first; owned, *len bytes */
static char *decode_all(const struct tokenizer *t, const int *ids, int n, size_t *len) {
    size_t cap = 64, o = 0;
    char *s = malloc(cap), piece[512];
    int prev = -1;
    for (int i = 0; s && i < n; prev = ids[i], i++) {
        int k = tokenizer_decode(t, prev, ids[i], piece, sizeof piece);
        if (k < 0) {
            free(s);
            return NULL;
        }
        while (o + (size_t)k + 1 > cap) s = realloc(s, cap *= 2);
        if (s) memcpy(s + o, piece, (size_t)k), o += (size_t)k;
    }
    if (s) s[o] = 0;
    *len = o;
    return s;
}

/* encode with BOS, decode, compare with the text; false (and a FAIL line) when they differ */
static bool roundtrip(const struct tokenizer *t, const char *text, size_t len, bool bos) {
    int *ids = NULL, n = 0;
    size_t dl = 0;
    if (tokenizer_encode(t, text, len, bos, &ids, &n)) return false;
    char *d = decode_all(t, ids, n, &dl);
    bool ok = d && dl == len && !memcmp(d, text, len);
    if (!ok) T_FAIL_("%s: decode(encode(\"%.40s\")) = \"%.40s\"", tokenizer_kind(t), text,
                     d ? d : "(error)");
    free(d);
    free(ids);
    return ok;
}

/* ===== llama.cpp's vocab test set =====
 * .inp: texts separated by lines "__ggml_vocab_test__"; test-tokenizer-0 reads the file whole and
 * cuts it at "\n__ggml_vocab_test__\n", so the newline before each separator belongs to the
 * separator and the tail after the last separator is not a text (46 texts, 46 .out lines).
 * .out: one line per text, " id id ..." (empty for the empty text), encoded without BOS. */

#define VT_MAX 64
struct vocab_tests {
    char *inp, *out;
    int n;
    const char *text[VT_MAX];
    size_t len[VT_MAX];
    int ids[VT_MAX][512], n_ids[VT_MAX];
};

static struct vocab_tests *vt_load(void) {
    static struct vocab_tests vt;
    size_t ni = 0, no = 0;
    if (vt.n) return &vt;
    vt.inp = slurp(DATA("tokenizers/ggml-vocab-llama-spm.gguf.inp"), &ni);
    vt.out = slurp(DATA("tokenizers/ggml-vocab-llama-spm.gguf.out"), &no);
    if (!vt.inp || !vt.out) return NULL;
    static const char sep[] = "\n__ggml_vocab_test__\n";
    for (char *p = vt.inp; p < vt.inp + ni && vt.n < VT_MAX;) {
        char *q = strstr(p, sep);
        if (!q) q = vt.inp + ni;
        vt.text[vt.n] = p;
        vt.len[vt.n++] = (size_t)(q - p);
        *q = 0;
        p = q + (q < vt.inp + ni ? strlen(sep) : 0);
    }
    int line = 0;
    for (char *p = vt.out; p < vt.out + no && line < VT_MAX; line++) {
        char *e = strchr(p, '\n');
        if (!e) e = vt.out + no;
        *e = 0;
        for (char *s = p; *s && vt.n_ids[line] < 512;) {
            char *end;
            long v = strtol(s, &end, 10);
            if (end == s) break;
            vt.ids[line][vt.n_ids[line]++] = (int)v;
            s = end;
        }
        p = e + 1;
    }
    T_EQ_INT(vt.n, 46);
    T_EQ_INT(line, vt.n);
    return &vt;
}

/* how many texts encode (without BOS) to the .out ids; prints the first mismatches */
static int vt_check(const struct tokenizer *t, const struct vocab_tests *vt, const char *name,
                    bool skip_leading_space) {
    int ok = 0, shown = 0, tried = 0;
    for (int i = 0; i < vt->n; i++) {
        if (skip_leading_space && vt->text[i][0] == ' ') continue;
        tried++;
        int *ids = NULL, n = 0;
        if (!tokenizer_encode(t, vt->text[i], vt->len[i], false, &ids, &n) &&
            ids_eq(ids, n, vt->ids[i], vt->n_ids[i]))
            ok++;
        else if (shown++ < 3) {
            fprintf(stderr, "    %s: text %d \"%.40s\" differs\n", name, i, vt->text[i]);
            print_ids("got ", ids, n);
            print_ids("want", vt->ids[i], vt->n_ids[i]);
        }
        free(ids);
    }
    fprintf(stderr, "  llama.cpp vocab tests through %s: %d/%d match\n", name, ok, tried);
    return ok == tried ? ok : -1;
}

/* ===== llama2.c tokenizer.bin ===== */

static void test_llama2c_tok512(void) {
    struct tokenizer *t = NULL;
    const char *path = DATA("tokenizers/tok512.bin");
    if (!path) return;
    T_EQ_INT(tokenizer_load(&t, path), 0);
    if (!t) return;
    T_EQ_STR(tokenizer_kind(t), "llama2c");
    T_EQ_INT(tokenizer_vocab_size(t), 512);
    T_EQ_INT(tokenizer_bos(t), 1);
    T_EQ_INT(tokenizer_eos(t), 2);
    T_OK(tokenizer_add_bos_default(t));
    /* " Once upon a time" (dummy prefix) by score, best first (tok512 scores are -(id-259)):
     * " "+"t" (259, 0) > " "+"a" (261) > "i"+"m" (288) > "o"+"n" (289) > " "+"u" (318) >
     * " "+"O" (319) > " O"+"n" (321) > "c"+"e" (331) > " u"+"p" (350) > "im"+"e" (369) >
     * " t"+"ime" (378) > " On"+"ce" (403) > " up"+"on" (407): " Once" " upon" " a" " time" */
    T_IDS(t, "Once upon a time", false, 403, 407, 261, 378);
    T_IDS(t, "Once upon a time", true, 1, 403, 407, 261, 378);
    T_IDS(t, "", true, 1);
    /* not in the vocab: 'Z' is (469), but "\xc3\xa4" (a-umlaut) is not: bytes 0xC3+3, 0xA4+3 */
    T_IDS(t, "\xc3\xa4Z", false, 410, 198, 167, 469);
    char buf[16];
    T_EQ_INT(tokenizer_decode(t, 1, 403, buf, sizeof buf), 4); /* leading space dropped */
    T_EQ_STR(buf, "Once");
    T_EQ_INT(tokenizer_decode(t, 403, 407, buf, sizeof buf), 5);
    T_EQ_STR(buf, " upon");
    T_EQ_INT(tokenizer_decode(t, 403, 13, buf, sizeof buf), 1); /* <0x0A> */
    T_EQ_STR(buf, "\n");
    T_EQ_INT(tokenizer_decode(t, 403, 1, buf, sizeof buf), 0); /* BOS: nothing */
    T_EQ_INT(tokenizer_decode(t, 1, ' ' + 3, buf, sizeof buf), 1); /* <0x20> is not stripped */
    T_EQ_STR(buf, " ");
    const char *story = "Once upon a time, Lily saw a big \xc3\xa4pfel.\n\"Hi!\"";
    roundtrip(t, story, strlen(story), true);
    tokenizer_free(t);
}

/* the llama.cpp texts through llama2.c's algorithm on the same vocab (tokenizer.bin holds the
 * Llama-2 pieces with U+2581 written as ' '). The algorithms differ only on characters that are
 * not pieces but occur inside pieces, on pieces scored at or below -1e10 and on invalid UTF-8;
 * none of the 46 texts has these, so all must agree. */
static void test_llama2c_vocab_tests(void) {
    struct vocab_tests *vt = vt_load();
    struct tokenizer *t = NULL;
    const char *path = DATA("tokenizers/tokenizer.bin");
    if (!vt || !path) return;
    T_EQ_INT(tokenizer_load(&t, path), 0);
    if (!t) return;
    T_EQ_INT(tokenizer_vocab_size(t), 32000);
    T_EQ_INT(vt_check(t, vt, "tokenizer.bin (llama2.c encode)", false), vt->n);
    for (int i = 0; i < vt->n; i++) roundtrip(t, vt->text[i], vt->len[i], true);
    tokenizer_free(t);
}

static void test_llama2c_corrupt(void) {
    size_t n = 0;
    char *good = slurp(DATA("tokenizers/tok512.bin"), &n);
    struct tokenizer *t = NULL;
    const char *p = tmp_path("bad.bin");
    if (!good) return;
    err_set_quiet(true);
    /* cut in the middle of a record */
    T_OK(!spit(p, good, 1001));
    T_ERR(tokenizer_load(&t, p));
    T_CONTAINS(err_last(), "truncated");
    T_CONTAINS(err_last(), p);
    T_OK(!t);
    /* shorter than the header */
    T_OK(!spit(p, good, 2));
    T_ERR(tokenizer_load(&t, p));
    T_CONTAINS(err_last(), "truncated");
    /* token 3 with length -5 */
    int32_t neg = -5;
    memcpy(good + 4 + (8 + 5) + (8 + 5) + (8 + 6) + 4, &neg, 4); /* <unk>, \n<s>\n, \n</s>\n */
    T_OK(!spit(p, good, n));
    T_ERR(tokenizer_load(&t, p));
    T_CONTAINS(err_last(), "length -5");
    /* absurd max_token_length */
    int32_t big = -1;
    memcpy(good, &big, 4);
    T_OK(!spit(p, good, n));
    T_ERR(tokenizer_load(&t, p));
    T_CONTAINS(err_last(), "max_token_length");
    T_ERR(tokenizer_load(&t, tmp_path("does-not-exist.bin")));
    T_CONTAINS(err_last(), "does-not-exist");
    err_set_quiet(false);
    free(good);
}

/* ===== GGUF "llama" ===== */

static void test_gguf_vocab_tests(void) {
    struct vocab_tests *vt = vt_load();
    struct tokenizer *t = NULL;
    const char *path = DATA("tokenizers/ggml-vocab-llama-spm.gguf");
    if (!vt || !path) return;
    T_EQ_INT(tokenizer_load(&t, path), 0);
    if (!t) return;
    T_EQ_STR(tokenizer_kind(t), "spm");
    T_EQ_INT(tokenizer_vocab_size(t), 32000);
    T_EQ_INT(tokenizer_bos(t), 1);
    T_EQ_INT(tokenizer_eos(t), 2);
    T_OK(tokenizer_add_bos_default(t));
    T_EQ_INT(vt_check(t, vt, "GGUF llama (llm_tokenizer_spm)", false), vt->n);
    /* the .out lines carry no BOS: with BOS each starts with 1 */
    T_IDS(t, "Hello world", true, 1, 15043, 3186);
    T_IDS(t, "Hello world", false, 15043, 3186);
    for (int i = 0; i < vt->n; i++) roundtrip(t, vt->text[i], vt->len[i], true);
    /* without BOS the dummy prefix stays */
    int ids[2] = {15043, 3186};
    size_t dl;
    char *d = decode_all(t, ids, 2, &dl);
    T_EQ_STR(d, " Hello world");
    free(d);
    tokenizer_free(t);
}

/* ===== tokenizer.json written from the GGUF vocab, as transformers' LlamaConverter does ===== */

struct merge {
    int l, r, c;
    float score;
};

/* SentencePieceExtractor order: by the merged piece's score (highest first); ties keep vocab
 * order (merged id), then (left id, right id) */
static int merge_cmp(const void *a, const void *b) {
    const struct merge *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    if (x->c != y->c) return x->c < y->c ? -1 : 1;
    if (x->l != y->l) return x->l < y->l ? -1 : 1;
    return (x->r > y->r) - (x->r < y->r);
}

static const char *U2581 = "\xe2\x96\x81";

/* legacy: normalizer Prepend + Replace, merges "a b"; else Metaspace pre-tokenizer
 * (prepend_scheme "first", split false) and merges as [a, b] pairs */
static const char *write_llama_json(bool legacy) {
    const char *gpath = DATA("tokenizers/ggml-vocab-llama-spm.gguf");
    const char *out = tmp_path(legacy ? "llama-legacy.json" : "llama-metaspace.json");
    struct tokenizer *t = NULL;
    if (!gpath || tokenizer_load(&t, gpath)) return NULL;
    json_t *vocab = json_object(), *merges = json_array();
    size_t nm = 0, cap = 1 << 16;
    struct merge *m = malloc(cap * sizeof *m);
    for (int c = 0; c < t->n_vocab; c++) {
        const char *p = tok_piece(t, c);
        size_t n = (size_t)t->len[c];
        json_object_set_new(vocab, p, json_integer(c));
        for (size_t k = 1; k < n; k++) {
            if (((unsigned char)p[k] & 0xC0) == 0x80) continue; /* split between characters */
            int l = tok_lookup(t, p, k), r = tok_lookup(t, p + k, n - k);
            if (l < 0 || r < 0) continue;
            if (nm == cap) m = realloc(m, (cap *= 2) * sizeof *m);
            m[nm++] = (struct merge){l, r, c, t->score[c]};
        }
    }
    qsort(m, nm, sizeof *m, merge_cmp);
    for (size_t i = 0; i < nm; i++) {
        const char *a = tok_piece(t, m[i].l), *b = tok_piece(t, m[i].r);
        if (legacy) {
            char s[256];
            snprintf(s, sizeof s, "%s %s", a, b);
            json_array_append_new(merges, json_string(s));
        } else {
            json_array_append_new(merges, json_pack("[s, s]", a, b));
        }
    }
    free(m);
    json_t *model = json_pack("{s:s, s:n, s:s, s:n, s:n, s:b, s:b, s:o, s:o}", "type", "BPE",
                              "dropout", "unk_token", "<unk>", "continuing_subword_prefix",
                              "end_of_word_suffix", "fuse_unk", 1, "byte_fallback", 1, "vocab",
                              vocab, "merges", merges);
    json_t *added = json_array();
    for (int i = 0; i < 3; i++)
        json_array_append_new(added, json_pack("{s:i, s:s, s:b, s:b, s:b, s:b, s:b}", "id", i,
                                               "content", tok_piece(t, i), "single_word", 0,
                                               "lstrip", 0, "rstrip", 0, "normalized", 0,
                                               "special", 1));
    json_t *norm, *pre;
    if (legacy) {
        norm = json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:{s:s}, s:s}]}", "type", "Sequence",
                         "normalizers", "type", "Prepend", "prepend", U2581, "type", "Replace",
                         "pattern", "String", " ", "content", U2581);
        pre = json_null();
    } else {
        norm = json_null();
        pre = json_pack("{s:s, s:s, s:s, s:b}", "type", "Metaspace", "replacement", U2581,
                        "prepend_scheme", "first", "split", 0);
    }
    json_t *post = json_pack("{s:s, s:[{s:{s:s, s:i}}, {s:{s:s, s:i}}], s:{s:{s:s, s:[i], "
                             "s:[s]}}}",
                             "type", "TemplateProcessing", "single", "SpecialToken", "id", "<s>",
                             "type_id", 0, "Sequence", "id", "A", "type_id", 0, "special_tokens",
                             "<s>", "id", "<s>", "ids", 1, "tokens", "<s>");
    json_t *dec = json_pack("{s:s, s:[{s:s, s:{s:s}, s:s}, {s:s}, {s:s}, {s:s, s:s, s:i, s:i}]}",
                            "type", "Sequence", "decoders", "type", "Replace", "pattern", "String",
                            U2581, "content", " ", "type", "ByteFallback", "type", "Fuse", "type",
                            "Strip", "content", " ", "start", 1, "stop", 0);
    json_t *root = json_pack("{s:s, s:n, s:n, s:o, s:o, s:o, s:o, s:o, s:o}", "version", "1.0",
                             "truncation", "padding", "added_tokens", added, "normalizer", norm,
                             "pre_tokenizer", pre, "post_processor", post, "decoder", dec,
                             "model", model);
    int rc = root ? json_dump_file(root, out, JSON_COMPACT) : -1;
    json_decref(root);
    tokenizer_free(t);
    T_EQ_INT(rc, 0);
    return rc ? NULL : out;
}

static void test_hf_llama_json(void) {
    struct vocab_tests *vt = vt_load();
    const char *path = write_llama_json(true);
    struct tokenizer *t = NULL;
    if (!vt || !path) return;
    T_EQ_INT(tokenizer_load(&t, path), 0);
    if (!t) return;
    T_EQ_STR(tokenizer_kind(t), "bpe");
    T_EQ_INT(tokenizer_vocab_size(t), 32000);
    T_EQ_INT(tokenizer_bos(t), 1);
    T_EQ_INT(tokenizer_eos(t), 2);
    T_OK(tokenizer_add_bos_default(t));
    T_EQ_INT(vt_check(t, vt, "tokenizer.json (LlamaConverter legacy layout)", false), vt->n);
    for (int i = 0; i < vt->n; i++) roundtrip(t, vt->text[i], vt->len[i], true);
    tokenizer_free(t);

    /* Metaspace pre-tokenizer: same ids, except that a text starting with a space gets no second
     * U+2581 (tokenizers' Metaspace prepends only when the text does not start with one) */
    path = write_llama_json(false);
    if (!path) return;
    T_EQ_INT(tokenizer_load(&t, path), 0);
    if (!t) return;
    T_OK(vt_check(t, vt, "tokenizer.json (Metaspace, [a,b] merges; texts without a leading "
                         "space)", true) > 0);
    T_IDS(t, " Hello world", false, 15043, 3186);
    T_IDS(t, "Hello world", true, 1, 15043, 3186);
    tokenizer_free(t);
}

/* ===== a tiny byte-level BPE ===== */

/* GPT-2 bytes_to_unicode written out as in openai/gpt-2 encoder.py: printable bytes map to
 * themselves, the rest to 256, 257, ... in byte order */
static void gpt2_char(int b, char out[3]) {
    int cp = b, k = 0;
    bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    if (!printable) {
        cp = 256;
        for (int i = 0; i < b; i++)
            if (!((i >= '!' && i <= '~') || (i >= 0xA1 && i <= 0xAC) || (i >= 0xAE))) cp++;
    }
    if (cp < 0x80) out[k++] = (char)cp;
    else out[k++] = (char)(0xC0 | cp >> 6), out[k++] = (char)(0x80 | (cp & 0x3F));
    out[k] = 0;
}

/* vocab: ids 0..255 = the byte characters (id = byte), then the merges below in rank order give
 * ids 256..268; <|begin_of_text|> 269, <|end_of_text|> 270. G = U+0120 (space), C = U+010A (\n) */
static const char *const syn_merges[][2] = {
    {"\xc4\xa0", "t"},           /* 0: Gt    256 */
    {"h", "e"},                  /* 1: he    257 */
    {"\xc4\xa0t", "he"},         /* 2: Gthe  258 */
    {"a", "t"},                  /* 3: at    259 */
    {"c", "at"},                 /* 4: cat   260 */
    {"\xc4\xa0", "cat"},         /* 5: Gcat  261 */
    {"i", "n"},                  /* 6: in    262 */
    {"\xc4\xa0", "in"},          /* 7: Gin   263 */
    {"1", "2"},                  /* 8: 12    264 */
    {"\xc4\x8a", "\xc4\x8a"},    /* 9: CC    265 */
    {"T", "he"},                 /* 10: The  266 */
    {"'", "s"},                  /* 11: 's   267 */
    {"h", "at"},                 /* 12: hat  268 */
};
#define SYN_N 271
#define RE_LLAMA3_TEST                                                                             \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "                      \
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

/* piece text of synthetic id i into buf */
static const char *syn_piece(int i, char buf[32]) {
    if (i < 256) gpt2_char(i, buf);
    else if (i < 269) snprintf(buf, 32, "%s%s", syn_merges[i - 256][0], syn_merges[i - 256][1]);
    else snprintf(buf, 32, "%s", i == 269 ? "<|begin_of_text|>" : "<|end_of_text|>");
    return buf;
}

/* llama3: Split(Llama-3 regex, Isolated) + ByteLevel(no prefix, no regex), BOS by template;
 * else (Qwen2-like): ByteLevel(add_prefix_space, use_regex = GPT-2 regex), no BOS */
static const char *write_bytelevel_json(bool llama3) {
    const char *out = tmp_path(llama3 ? "bl-llama3.json" : "bl-gpt2.json");
    json_t *vocab = json_object(), *merges = json_array(), *added = json_array();
    char buf[32];
    for (int i = 0; i < 269; i++) json_object_set_new(vocab, syn_piece(i, buf), json_integer(i));
    for (int i = 0; i < 13; i++)
        json_array_append_new(merges, json_pack("[s, s]", syn_merges[i][0], syn_merges[i][1]));
    for (int i = llama3 ? 269 : 270; i < SYN_N; i++)
        json_array_append_new(added, json_pack("{s:i, s:s, s:b}", "id", i, "content",
                                               syn_piece(i, buf), "special", 1));
    json_t *pre, *post;
    if (llama3) {
        pre = json_pack("{s:s, s:[{s:s, s:{s:s}, s:s, s:b}, {s:s, s:b, s:b, s:b}]}", "type",
                        "Sequence", "pretokenizers", "type", "Split", "pattern", "Regex",
                        RE_LLAMA3_TEST, "behavior", "Isolated", "invert", 0, "type", "ByteLevel",
                        "add_prefix_space", 0, "trim_offsets", 1, "use_regex", 0);
        post = json_pack("{s:s, s:[{s:s}, {s:s, s:[{s:{s:s, s:i}}, {s:{s:s, s:i}}], "
                         "s:{s:{s:s, s:[i], s:[s]}}}]}",
                         "type", "Sequence", "processors", "type", "ByteLevel", "type",
                         "TemplateProcessing", "single", "SpecialToken", "id",
                         "<|begin_of_text|>", "type_id", 0, "Sequence", "id", "A", "type_id", 0,
                         "special_tokens", "<|begin_of_text|>", "id", "<|begin_of_text|>", "ids",
                         269, "tokens", "<|begin_of_text|>");
    } else {
        pre = json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", 1,
                        "trim_offsets", 1, "use_regex", 1);
        post = json_pack("{s:s}", "type", "ByteLevel");
    }
    json_t *model = json_pack("{s:s, s:n, s:b, s:b, s:b, s:o, s:o}", "type", "BPE", "unk_token",
                              "fuse_unk", 0, "byte_fallback", 0, "ignore_merges", llama3, "vocab",
                              vocab, "merges", merges);
    json_t *root = json_pack("{s:o, s:n, s:o, s:o, s:{s:s}, s:o}", "added_tokens", added,
                             "normalizer", "pre_tokenizer", pre, "post_processor", post, "decoder",
                             "type", "ByteLevel", "model", model);
    int rc = root ? json_dump_file(root, out, JSON_INDENT(1)) : -1;
    json_decref(root);
    T_EQ_INT(rc, 0);
    return rc ? NULL : out;
}

static const char syn_text[] = "The cat's 12345 in the\n\nhat";

/* Llama-3 regex pieces of syn_text: "The" " cat" "'s" " " "123" "45" " in" " the" "\n\n" "hat"
 * (" " before "12345" stands alone: no alternative takes a space before a digit except \s+).
 * Byte-mapped and merged by rank:
 *   The:  h+e (1) -> he, T+he (10) -> The                         266
 *   Gcat: a+t (3), c+at (4), G+cat (5)                            261
 *   's:   '+s (11)                                                267
 *   G:    no merge                                                32
 *   123:  1+2 (8) -> 12, then "3"                                 264 51
 *   45:   no merge                                                52 53
 *   Gin:  i+n (6), G+in (7)                                       263
 *   Gthe: G+t (0), h+e (1), Gt+he (2)                             258
 *   CC:   C+C (9)                                                 265
 *   hat:  a+t (3), h+at (12)                                      268 */
#define SYN_LLAMA3_IDS 266, 261, 267, 32, 264, 51, 52, 53, 263, 258, 265, 268

/* hf: loaded from tokenizer.json (added tokens matched in the text, as transformers does), else
 * from a GGUF vocab (llama.cpp's tokenize without parse_special: never) */
static void check_bytelevel_llama3(struct tokenizer *t, bool hf) {
    T_EQ_STR(tokenizer_kind(t), "bpe");
    T_EQ_INT(tokenizer_vocab_size(t), SYN_N);
    T_EQ_INT(tokenizer_bos(t), 269);
    T_EQ_INT(tokenizer_eos(t), 270);
    T_OK(tokenizer_add_bos_default(t));
    T_IDS(t, syn_text, false, SYN_LLAMA3_IDS);
    T_IDS(t, syn_text, true, 269, SYN_LLAMA3_IDS);
    int *ids = NULL, n = -1;
    T_EQ_INT(tokenizer_encode(t, "", 0, false, &ids, &n), 0);
    T_EQ_INT(n, 0);
    free(ids);
    /* "<|end_of_text|>" in the text is the special token (transformers' default,
     * split_special_tokens=False), or plain text with TOK_ENCODE_SPLIT_SPECIAL; plain text
     * always for a GGUF vocab */
    if (hf) T_IDS(t, "The<|end_of_text|>The", false, 266, 270, 266);
    T_EQ_INT(tokenizer_encode_ex(t, "<|end_of_text|>", 15, hf ? TOK_ENCODE_SPLIT_SPECIAL : 0,
                                 &ids, &n), 0);
    T_OK(n > 1);
    for (int i = 0; i < n; i++) T_OK(ids[i] < 256);
    free(ids);
    /* the default special tokens: the post-processor's template, BOS before the text */
    T_EQ_INT(tokenizer_encode_ex(t, "The", 3, TOK_ENCODE_SPECIAL, &ids, &n), 0);
    T_EQ_INT(n, 2);
    if (n == 2) T_OK(ids[0] == 269 && ids[1] == 266);
    free(ids);
    roundtrip(t, syn_text, strlen(syn_text), true);
    const char *mixed = " na\xc3\xafve  caf\xc3\xa9\t\r\n 3.14159 \xf0\x9f\x9a\x80!";
    roundtrip(t, mixed, strlen(mixed), true);
    char buf[8];
    T_EQ_INT(tokenizer_decode(t, 269, 258, buf, sizeof buf), 4); /* byte level keeps the space */
    T_EQ_STR(buf, " the");
    T_EQ_INT(tokenizer_decode(t, 258, 270, buf, sizeof buf), 0);
    err_set_quiet(true);
    T_ERR(tokenizer_encode(t, "a\xff", 2, false, &ids, &n));
    T_CONTAINS(err_last(), "UTF-8");
    T_ERR(tokenizer_decode(t, 0, SYN_N, buf, sizeof buf));
    T_ERR(tokenizer_decode(t, 0, 258, buf, 3)); /* " the" does not fit in 3 bytes */
    err_set_quiet(false);
}

static void test_hf_bytelevel(void) {
    const char *path = write_bytelevel_json(true);
    struct tokenizer *t = NULL;
    if (!path) return;
    T_EQ_INT(tokenizer_load(&t, path), 0);
    if (!t) return;
    check_bytelevel_llama3(t, true);
    tokenizer_free(t);

    /* GPT-2 style: add_prefix_space gives " The"; the GPT-2 regex keeps " 12345" whole and
     * splits "\n\nhat" as "\n" "\n" "hat" (\s+(?!\S) backs off to one newline):
     *   GThe -> G + The (h+e, T+he)    32 266
     *   G12345 -> G 12 3 4 5           32 264 51 52 53
     *   C, C                           10 10                                               */
    path = write_bytelevel_json(false);
    if (!path) return;
    T_EQ_INT(tokenizer_load(&t, path), 0);
    if (!t) return;
    T_EQ_INT(tokenizer_bos(t), -1);
    T_EQ_INT(tokenizer_eos(t), 270);
    T_OK(!tokenizer_add_bos_default(t));
    T_IDS(t, syn_text, false, 32, 266, 261, 267, 32, 264, 51, 52, 53, 263, 258, 10, 10, 268);
    err_set_quiet(true);
    int *ids = NULL, n = 0;
    T_ERR(tokenizer_encode(t, "x", 1, true, &ids, &n)); /* no BOS to add */
    err_set_quiet(false);
    tokenizer_free(t);
}

/* ===== a tiny GGUF "gpt2" vocab (written here: GGUF v3, no tensors) ===== */

struct wbuf {
    unsigned char *p;
    size_t n, cap;
};

static void put(struct wbuf *w, const void *s, size_t n) {
    while (w->n + n > w->cap) w->p = realloc(w->p, w->cap = w->cap ? 2 * w->cap : 4096);
    memcpy(w->p + w->n, s, n);
    w->n += n;
}
static void put_u32(struct wbuf *w, uint32_t v) { put(w, &v, 4); }
static void put_u64(struct wbuf *w, uint64_t v) { put(w, &v, 8); }
static void put_str(struct wbuf *w, const char *s) {
    put_u64(w, strlen(s));
    put(w, s, strlen(s));
}
static void kv_head(struct wbuf *w, const char *key, uint32_t type) {
    put_str(w, key);
    put_u32(w, type);
}

static const char *write_gpt2_gguf(const char *model) {
    const char *out = tmp_path("gpt2.gguf");
    struct wbuf w = {0};
    char buf[32];
    put(&w, "GGUF", 4);
    put_u32(&w, 3);
    put_u64(&w, 0); /* tensors */
    put_u64(&w, 8); /* KVs */
    kv_head(&w, "tokenizer.ggml.model", GGUF_TYPE_STRING);
    put_str(&w, model);
    kv_head(&w, "tokenizer.ggml.pre", GGUF_TYPE_STRING);
    put_str(&w, "llama-bpe");
    kv_head(&w, "tokenizer.ggml.tokens", GGUF_TYPE_ARRAY);
    put_u32(&w, GGUF_TYPE_STRING);
    put_u64(&w, SYN_N);
    for (int i = 0; i < SYN_N; i++) put_str(&w, syn_piece(i, buf));
    kv_head(&w, "tokenizer.ggml.token_type", GGUF_TYPE_ARRAY);
    put_u32(&w, GGUF_TYPE_INT32);
    put_u64(&w, SYN_N);
    for (int i = 0; i < SYN_N; i++) put_u32(&w, i < 269 ? TOK_TYPE_NORMAL : TOK_TYPE_CONTROL);
    kv_head(&w, "tokenizer.ggml.merges", GGUF_TYPE_ARRAY);
    put_u32(&w, GGUF_TYPE_STRING);
    put_u64(&w, 13);
    for (int i = 0; i < 13; i++) {
        snprintf(buf, sizeof buf, "%s %s", syn_merges[i][0], syn_merges[i][1]);
        put_str(&w, buf);
    }
    kv_head(&w, "tokenizer.ggml.bos_token_id", GGUF_TYPE_UINT32);
    put_u32(&w, 269);
    kv_head(&w, "tokenizer.ggml.eos_token_id", GGUF_TYPE_UINT32);
    put_u32(&w, 270);
    kv_head(&w, "tokenizer.ggml.add_bos_token", GGUF_TYPE_BOOL);
    put(&w, "\1", 1);
    int rc = spit(out, w.p, w.n);
    free(w.p);
    T_EQ_INT(rc, 0);
    return rc ? NULL : out;
}

static void test_gguf_gpt2(void) {
    const char *path = write_gpt2_gguf("gpt2");
    struct tokenizer *t = NULL;
    if (!path) return;
    T_EQ_INT(tokenizer_load(&t, path), 0);
    if (!t) return;
    check_bytelevel_llama3(t, false);
    tokenizer_free(t);
    err_set_quiet(true);
    T_ERR(tokenizer_load(&t, write_gpt2_gguf("bert")));
    T_CONTAINS(err_last(), "\"bert\"");
    err_set_quiet(false);
}

/* stories260K.gguf (llama.cpp's convert of the same model) carries tok512's vocab as a GGUF
 * "llama" vocab: llama.cpp's algorithm there and llama2.c's on tok512.bin must agree, on the
 * story opening and on the whole wikitext-2 test split (byte fallback all over) */
static void test_stories260k_gguf(void) {
    const char *pg = DATA("models/stories260K.gguf"), *pb = DATA("tokenizers/tok512.bin");
    size_t len = 0;
    char *text = slurp(DATA("datasets/wikitext-2/wikitext-2-raw/wiki.test.raw"), &len);
    struct tokenizer *g = NULL, *b = NULL;
    if (pg && pb && text) {
        T_EQ_INT(tokenizer_load(&g, pg), 0);
        T_EQ_INT(tokenizer_load(&b, pb), 0);
    }
    if (g && b) {
        T_EQ_STR(tokenizer_kind(g), "spm");
        T_EQ_INT(tokenizer_vocab_size(g), 512);
        T_EQ_INT(tokenizer_bos(g), 1);
        T_IDS(g, "Once upon a time", true, 1, 403, 407, 261, 378);
        int *x = NULL, *y = NULL, nx = 0, ny = 0;
        T_EQ_INT(tokenizer_encode(g, text, len, true, &x, &nx), 0);
        T_EQ_INT(tokenizer_encode(b, text, len, true, &y, &ny), 0);
        T_OK(nx > 500000 && ids_eq(x, nx, y, ny));
        free(x);
        free(y);
    }
    tokenizer_free(g);
    tokenizer_free(b);
    free(text);
}

/* ===== where llama2.c and llama.cpp legitimately differ =====
 * A tiny vocab written both as tokenizer.bin and as a GGUF "llama" vocab: <unk> <s> </s>, the 256
 * byte pieces (ids 3..258), then "_"=U+2581 (' ' in tokenizer.bin) -1, "x" -2, "x\u00e9" -3, "y" -4,
 * "yy" -2e10. "\u00e9" alone is not a piece. Text "x\u00e9 yy":
 *  - llama2.c: " " "x" then bytes C3 A9 (ids 198 172, never merged: no piece holds "<0xC3>"),
 *    " " "y" "y"; "yy" scores below run.c's -1e10 floor, so nothing merges:
 *    259 260 198 172 259 262 262
 *  - llama.cpp: symbols _ x \u00e9 _ y y; "x\u00e9" (-3) merges, then "yy" (any score does):
 *    259 261 259 263 */
static const char *const tiny_pieces[] = {"x", "x\xc3\xa9", "y", "yy"};
static const float tiny_scores[] = {-2.0f, -3.0f, -4.0f, -2e10f};
#define TINY_N (259 + 1 + 4)

static void tiny_piece(int i, bool gguf, char buf[16]) {
    if (i == 0) snprintf(buf, 16, "<unk>");
    else if (i < 3) snprintf(buf, 16, gguf ? "%s" : "\n%s\n", i == 1 ? "<s>" : "</s>");
    else if (i < 259) snprintf(buf, 16, "<0x%02X>", i - 3);
    else if (i == 259) snprintf(buf, 16, "%s", gguf ? U2581 : " ");
    else snprintf(buf, 16, "%s", tiny_pieces[i - 260]);
}

static float tiny_score(int i) { return i < 259 ? 0.0f : i == 259 ? -1.0f : tiny_scores[i - 260]; }

static const char *write_tiny_bin(void) {
    const char *out = tmp_path("tiny.bin");
    struct wbuf w = {0};
    char buf[16];
    put_u32(&w, 6);
    for (int i = 0; i < TINY_N; i++) {
        float sc = tiny_score(i);
        tiny_piece(i, false, buf);
        put(&w, &sc, 4);
        put_u32(&w, (uint32_t)strlen(buf));
        put(&w, buf, strlen(buf));
    }
    int rc = spit(out, w.p, w.n);
    free(w.p);
    return rc ? NULL : out;
}

/* n_scores != TINY_N writes a lying scores array */
static const char *write_tiny_gguf(int n_scores) {
    const char *out = tmp_path("tiny.gguf");
    struct wbuf w = {0};
    char buf[16];
    put(&w, "GGUF", 4);
    put_u32(&w, 3);
    put_u64(&w, 0);
    put_u64(&w, 4);
    kv_head(&w, "tokenizer.ggml.model", GGUF_TYPE_STRING);
    put_str(&w, "llama");
    kv_head(&w, "tokenizer.ggml.tokens", GGUF_TYPE_ARRAY);
    put_u32(&w, GGUF_TYPE_STRING);
    put_u64(&w, TINY_N);
    for (int i = 0; i < TINY_N; i++) {
        tiny_piece(i, true, buf);
        put_str(&w, buf);
    }
    kv_head(&w, "tokenizer.ggml.scores", GGUF_TYPE_ARRAY);
    put_u32(&w, GGUF_TYPE_FLOAT32);
    put_u64(&w, (uint64_t)n_scores);
    for (int i = 0; i < n_scores; i++) {
        float sc = tiny_score(i);
        put(&w, &sc, 4);
    }
    kv_head(&w, "tokenizer.ggml.token_type", GGUF_TYPE_ARRAY);
    put_u32(&w, GGUF_TYPE_INT32);
    put_u64(&w, TINY_N);
    for (int i = 0; i < TINY_N; i++)
        put_u32(&w, i == 0 ? TOK_TYPE_UNKNOWN : i < 3 ? TOK_TYPE_CONTROL
                                              : i < 259 ? TOK_TYPE_BYTE : TOK_TYPE_NORMAL);
    int rc = spit(out, w.p, w.n);
    free(w.p);
    return rc ? NULL : out;
}

static void test_llama2c_vs_llamacpp(void) {
    struct tokenizer *a = NULL, *b = NULL;
    const char *text = "x\xc3\xa9 yy";
    T_EQ_INT(tokenizer_load(&a, write_tiny_bin()), 0);
    T_EQ_INT(tokenizer_load(&b, write_tiny_gguf(TINY_N)), 0);
    if (a && b) {
        T_IDS(a, text, false, 259, 260, 198, 172, 259, 262, 262);
        T_IDS(b, text, false, 259, 261, 259, 263);
        roundtrip(a, text, strlen(text), true);
        roundtrip(b, text, strlen(text), true);
    }
    tokenizer_free(a);
    tokenizer_free(b);
    err_set_quiet(true);
    T_ERR(tokenizer_load(&b, write_tiny_gguf(TINY_N - 1)));
    T_CONTAINS(err_last(), "tokenizer.ggml.scores has 263 entries (expected 264");
    err_set_quiet(false);
}

/* ===== Metaspace options on a tiny SentencePiece-style vocab =====
 * vocab "_"=U+2581 0, a 1, b 2, _a 3, __ 4; merges by rank: "_ _", "_ a".
 *  - "  a", split true: "__a" is cut before each "_": "_" "_a"      -> 0 3
 *  - "  a", split false: one word, "_ _" (rank 0) wins: "__" "a"    -> 4 1
 *  - "a b", prepend_scheme never, split true: "a" "_b", and "_b" is no piece -> 1 0 2
 *  - "a", prepend_scheme first: "_a"                                 -> 3 */
static struct tokenizer *metaspace_tok(const char *scheme, bool split) {
    const char *p = tmp_path("metaspace.json");
    json_t *root = json_pack("{s:{s:s, s:s, s:b}, s:{s:s, s:{s:i, s:i, s:i, s:i, s:i}, s:[s, s]}}",
                             "pre_tokenizer", "type", "Metaspace", "prepend_scheme", scheme,
                             "split", split, "model", "type", "BPE", "vocab", U2581, 0, "a", 1, "b",
                             2, "\xe2\x96\x81" "a", 3, "\xe2\x96\x81\xe2\x96\x81", 4,
                             "merges", "\xe2\x96\x81 \xe2\x96\x81", "\xe2\x96\x81 a");
    struct tokenizer *t = NULL;
    T_OK(root && !json_dump_file(root, p, 0));
    json_decref(root);
    T_EQ_INT(tokenizer_load(&t, p), 0);
    return t;
}

static void test_hf_metaspace(void) {
    struct tokenizer *t = metaspace_tok("always", true);
    if (t) T_IDS(t, "  a", false, 0, 3);
    tokenizer_free(t);
    t = metaspace_tok("always", false);
    if (t) T_IDS(t, "  a", false, 4, 1);
    tokenizer_free(t);
    t = metaspace_tok("never", true);
    if (t) T_IDS(t, "a b", false, 1, 0, 2);
    tokenizer_free(t);
    t = metaspace_tok("first", true);
    if (t) {
        T_IDS(t, "a", false, 3);
        char buf[8];
        T_EQ_INT(tokenizer_decode(t, -1, 3, buf, sizeof buf), 2); /* no BOS: the space stays */
        T_EQ_STR(buf, " a");
    }
    tokenizer_free(t);
}

/* ===== malformed tokenizer.json ===== */

static void test_hf_corrupt(void) {
    static const struct {
        const char *name, *json, *msg;
    } cases[] = {
        {"syntax.json", "{\"model\": {\"type\": \"BPE\",\n \"vocab\": {\"a\": 0,}\n}}",
         "syntax.json:2:"},
        {"wordpiece.json", "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}}}",
         "\"WordPiece\""},
        {"nomodel.json", "{\"version\": \"1.0\"}", "no \"model\""},
        {"array.json", "[1, 2]", "not an object"},
        {"badid.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -3}, \"merges\": []}}",
         "model.vocab[\"a\"]"},
        {"sparse.json",
         "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 16000000}, \"merges\": []}}",
         "token id 16000000"},
        {"badmerge.json",
         "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a b\"]}}",
         "the result is not in model.vocab"},
        {"badmerge2.json",
         "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [[\"a\"]]}}",
         "merges[0]"},
        {"badpre.json",
         "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, "
         "\"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"}}",
         "BertPreTokenizer"},
        {"badre.json",
         "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, "
         "\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"(a\"}, "
         "\"behavior\": \"Isolated\"}}",
         "does not compile"},
        {"badunk.json",
         "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [], "
         "\"unk_token\": \"<unk>\"}}",
         "unk_token"},
    };
    err_set_quiet(true);
    for (size_t i = 0; i < LB_ARRAY_LEN(cases); i++) {
        struct tokenizer *t = NULL;
        const char *p = tmp_path(cases[i].name);
        T_OK(!spit(p, cases[i].json, strlen(cases[i].json)));
        T_ERR(tokenizer_load(&t, p));
        T_CONTAINS(err_last(), cases[i].msg);
        T_OK(!t);
    }
    /* a directory means DIR/tokenizer.json */
    struct tokenizer *t = NULL;
    T_ERR(tokenizer_load(&t, t_tmpdir()));
    T_CONTAINS(err_last(), "tokenizer.json");
    /* a vocab without the character, no byte fallback, no unk: an error, not a silent drop */
    const char *p = tmp_path("tiny.json");
    const char *tiny = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2},"
                       " \"merges\": [\"a b\"]}}";
    T_OK(!spit(p, tiny, strlen(tiny)));
    T_EQ_INT(tokenizer_load(&t, p), 0);
    if (t) {
        T_IDS(t, "abba", false, 2, 1, 0);
        int *ids = NULL, n = 0;
        T_ERR(tokenizer_encode(t, "abc", 3, false, &ids, &n));
        T_CONTAINS(err_last(), "\"c\"");
        T_EQ_INT(tokenizer_bos(t), -1);
        tokenizer_free(t);
    }
    err_set_quiet(false);
}

/* ===== wikitext-2 test split: three encoders of the Llama-2 vocab must agree ===== */

static void test_wikitext(void) {
    size_t len = 0;
    char *text = slurp(DATA("datasets/wikitext-2/wikitext-2-raw/wiki.test.raw"), &len);
    const char *paths[3] = {DATA("tokenizers/tokenizer.bin"),
                            DATA("tokenizers/ggml-vocab-llama-spm.gguf"), write_llama_json(true)};
    const char *names[3] = {"tokenizer.bin", "GGUF", "tokenizer.json"};
    int *ids[3] = {0}, n[3] = {0};
    if (!text || !paths[0] || !paths[1] || !paths[2]) goto out;
    T_OK(len > 1000000);
    for (int k = 0; k < 3; k++) {
        struct tokenizer *t = NULL;
        T_EQ_INT(tokenizer_load(&t, paths[k]), 0);
        if (!t) continue;
        double t0 = now_s();
        T_EQ_INT(tokenizer_encode(t, text, len, true, &ids[k], &n[k]), 0);
        double dt = now_s() - t0;
        fprintf(stderr, "  wiki.test.raw (%zu bytes) through %-14s: %d tokens in %.3f s (%.1f "
                "MB/s)\n", len, names[k], n[k], dt, (double)len / 1e6 / dt);
        size_t dl = 0;
        char *d = decode_all(t, ids[k], n[k], &dl);
        T_OK(d && dl == len && !memcmp(d, text, len));
        free(d);
        tokenizer_free(t);
    }
    T_OK(n[0] > 250000);
    /* the byte-level pipeline (Llama-3 regex, byte map) on the same text: decode(encode(x)) == x */
    const char *bl = write_bytelevel_json(true);
    struct tokenizer *t = NULL;
    if (bl && !tokenizer_load(&t, bl)) {
        int *v = NULL, nv = 0;
        size_t dl = 0;
        double t0 = now_s();
        T_EQ_INT(tokenizer_encode(t, text, len, false, &v, &nv), 0);
        fprintf(stderr, "  wiki.test.raw through the synthetic Llama-3 byte-level BPE: %d tokens in "
                "%.3f s\n", nv, now_s() - t0);
        char *d = decode_all(t, v, nv, &dl);
        T_OK(d && dl == len && !memcmp(d, text, len));
        free(d);
        free(v);
    }
    tokenizer_free(t);
    for (int k = 1; k < 3; k++) {
        int first = -1;
        for (int i = 0; i < LB_MIN(n[0], n[k]) && first < 0; i++)
            if (ids[0][i] != ids[k][i]) first = i;
        if (n[0] != n[k] || first >= 0)
            T_FAIL_("%s and %s disagree: %d vs %d tokens, first difference at %d", names[0],
                    names[k], n[0], n[k], first);
    }
out:
    for (int k = 0; k < 3; k++) free(ids[k]);
    free(text);
}

/* ===== inputs the fuzzers (tests/fuzz) found ===== */

/* a Split regex that matches the empty string ("x*" everywhere, like Llama-3's \p{N}{0,3}) gave
 * empty segments, appended to a still-NULL buffer (UBSan: zero offset to a null pointer) */
static void test_fuzz_split_empty_match(void) {
    const char *p = tmp_path("empty-match.json");
    const char *json = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, "
                       "\"ab\": 2}, \"merges\": [\"a b\"]}, \"pre_tokenizer\": {\"type\": "
                       "\"Split\", \"pattern\": {\"Regex\": \"x*\"}, \"behavior\": \"Isolated\"}}";
    T_OK(!spit(p, json, strlen(json)));
    struct tokenizer *t = NULL;
    T_EQ_INT(tokenizer_load(&t, p), 0);
    if (t) {
        /* an empty match at every position cuts between all characters: no merge applies */
        T_IDS(t, "abba", false, 0, 1, 1, 0);
        tokenizer_free(t);
    }
}

/* a tokenizer.bin whose dummy-prefix piece (no " " piece: the byte token of ' ', id 35) is empty:
 * the encoder appended 0 bytes to a still-NULL text buffer (UBSan under make check) */
static void test_fuzz_empty_prefix_piece(void) {
    const char *p = tmp_path("empty-piece.bin");
    unsigned char b[4 + 40 * 9];
    size_t n = 0;
    const int32_t max_len = 4;
    memcpy(b + n, &max_len, 4), n += 4;
    for (int i = 0; i < 40; i++) {
        const float score = 0;
        const int32_t len = i == 35 ? 0 : 1;
        memcpy(b + n, &score, 4), n += 4;
        memcpy(b + n, &len, 4), n += 4;
        if (len) b[n++] = (unsigned char)('A' + i % 26);
    }
    T_OK(!spit(p, (const char *)b, n));
    struct tokenizer *t = NULL;
    T_EQ_INT(tokenizer_load(&t, p), 0);
    if (t) {
        int *ids = NULL, n_ids = 0;
        err_set_quiet(true);
        const int rc = tokenizer_encode(t, "AB", 2, false, &ids, &n_ids);
        err_set_quiet(false);
        T_OK(rc == 0 || *err_last()); /* either encodes or says why: no crash, no UB */
        free(ids);
        tokenizer_free(t);
    }
}

/* ===== added-token flags and normalizers on a one-character vocabulary ===== */

/* a tokenizer.json whose pieces are the printable ASCII characters (id = the character's code, no
 * merges), so every expected id list below is the text's characters after normalization, with
 * the added tokens: 300 "<lt>" (special, lstrip), 301 "<rt>" (special, rstrip), 302 "ab"
 * (single_word, not normalized), 303 "XY" (normalized: matched as "xy" after the normalizer),
 * 304 "<sp>" (special) */
static const char *write_flags_json(const char *name, const char *normalizer) {
    json_t *vocab = json_object();
    for (int c = 32; c < 127; c++) {
        char k[2] = {(char)c, 0};
        json_object_set_new(vocab, k, json_integer(c));
    }
    json_object_set_new(vocab, "<unk>", json_integer(200));
    json_error_t je;
    json_t *norm = json_loads(normalizer, JSON_DECODE_ANY, &je);
    json_t *root = json_pack(
        "{s:[{s:i, s:s, s:b, s:b, s:b, s:b, s:b}, {s:i, s:s, s:b, s:b, s:b, s:b, s:b},"
        "    {s:i, s:s, s:b, s:b, s:b, s:b, s:b}, {s:i, s:s, s:b, s:b, s:b, s:b, s:b},"
        "    {s:i, s:s, s:b}],"
        " s:o, s:n, s:n, s:{s:s, s:s, s:o, s:[]}}",
        "added_tokens",
        "id", 300, "content", "<lt>", "special", 1, "lstrip", 1, "rstrip", 0, "single_word", 0,
        "normalized", 0,
        "id", 301, "content", "<rt>", "special", 1, "lstrip", 0, "rstrip", 1, "single_word", 0,
        "normalized", 0,
        "id", 302, "content", "ab", "special", 0, "lstrip", 0, "rstrip", 0, "single_word", 1,
        "normalized", 0,
        "id", 303, "content", "XY", "special", 0, "lstrip", 0, "rstrip", 0, "single_word", 0,
        "normalized", 1,
        "id", 304, "content", "<sp>", "special", 1,
        "normalizer", norm, "pre_tokenizer", "post_processor", "model", "type", "BPE",
        "unk_token", "<unk>", "vocab", vocab, "merges");
    const char *out = tmp_path(name);
    int rc = root ? json_dump_file(root, out, 0) : -1;
    json_decref(root);
    T_EQ_INT(rc, 0);
    return rc ? NULL : out;
}


static void test_hf_added_flags(void) {
    struct tokenizer *t = NULL;
    const char *p = write_flags_json(
        "flags1.json", "{\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"NFKD\"}, "
                       "{\"type\": \"StripAccents\"}, {\"type\": \"Lowercase\"}]}");
    if (!p || tokenizer_load(&t, p)) {
        T_FAIL_("%s", err_last());
        return;
    }
    T_IDS_EX(t, "\xc3\x87" "A", 0, 'c', 'a');        /* NFKD C + U+0327, mark dropped, lower */
    T_IDS_EX(t, "\xef\xac\x81", 0, 'f', 'i');        /* U+FB01 -> "fi" */
    T_IDS_EX(t, "x <lt>y", 0, 'x', 300, 'y');        /* lstrip takes the space */
    T_IDS_EX(t, "x<rt> y", 0, 'x', 301, 'y');        /* rstrip takes the space */
    T_IDS_EX(t, "x <rt> y", 0, 'x', ' ', 301, 'y');
    T_IDS_EX(t, "ab", 0, 302);
    T_IDS_EX(t, "c ab.", 0, 'c', ' ', 302, '.');
    T_IDS_EX(t, "cab", 0, 'c', 'a', 'b');            /* single_word: a letter before it */
    T_IDS_EX(t, "ab_", 0, 'a', 'b', '_');            /* '_' is a word character */
    T_IDS_EX(t, "XY", 0, 303);                       /* normalized: "xy" after Lowercase */
    T_IDS_EX(t, "xy xY", 0, 303, ' ', 303);
    T_IDS_EX(t, "<LT>", 0, '<', 'l', 't', '>');      /* specials match the raw text only */
    T_IDS_EX(t, "<sp>", 0, 304);
    T_IDS_EX(t, "<sp>", TOK_ENCODE_SPLIT_SPECIAL, '<', 's', 'p', '>');
    T_IDS_EX(t, "a<lt>", TOK_ENCODE_SPLIT_SPECIAL, 'a', '<', 'l', 't', '>');
    T_IDS_EX(t, "ab", TOK_ENCODE_SPLIT_SPECIAL, 302); /* not special: still matched */
    T_IDS_EX(t, "x", TOK_ENCODE_SPECIAL, 'x');       /* no post-processor: nothing added */
    T_OK(!tokenizer_add_bos_default(t));
    tokenizer_free(t);
    t = NULL;
    p = write_flags_json("flags2.json", "{\"type\": \"Strip\", \"strip_left\": true, "
                                        "\"strip_right\": false}");
    if (!p || tokenizer_load(&t, p)) {
        T_FAIL_("%s", err_last());
        return;
    }
    T_IDS_EX(t, " \t a b  ", 0, 'a', ' ', 'b', ' ', ' ');
    T_IDS_EX(t, "x\xe3\x80\x80<sp>\xc2\xa0y", 0, 'x', 200, 304, 'y'); /* U+3000 is unk; pieces
                                                                          stripped one by one */
    tokenizer_free(t);
    t = NULL;
    p = write_flags_json("flags3.json", "{\"type\": \"Precompiled\", \"precompiled_charsmap\": \"\"}");
    err_set_quiet(true);
    T_ERR(p ? tokenizer_load(&t, p) : -1);
    T_CONTAINS(err_last(), "normalizer \"Precompiled\" is not supported");
    err_set_quiet(false);
    tokenizer_free(t);
}

int main(void) {
    T_RUN(test_llama2c_tok512);
    T_RUN(test_llama2c_vocab_tests);
    T_RUN(test_llama2c_corrupt);
    T_RUN(test_gguf_vocab_tests);
    T_RUN(test_hf_llama_json);
    T_RUN(test_hf_bytelevel);
    T_RUN(test_gguf_gpt2);
    T_RUN(test_stories260k_gguf);
    T_RUN(test_llama2c_vs_llamacpp);
    T_RUN(test_hf_metaspace);
    T_RUN(test_hf_corrupt);
    T_RUN(test_hf_added_flags);
    T_RUN(test_wikitext);
    T_RUN(test_fuzz_split_empty_match);
    T_RUN(test_fuzz_empty_prefix_piece);
    t_tmpdir_cleanup();
    return T_DONE();
}
