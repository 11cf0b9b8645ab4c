/* eval/task_text.c: the Python string operations lm-eval's task definitions are written in,
 * reproduced on UTF-8 bytes, and the two task-specific text transforms built from them:
 *
 *  - wikitext: lm_eval/tasks/wikitext/preprocess_wikitext.py (wikitext_detokenizer,
 *    process_results' word count) and the page splitter of the EleutherAI/wikitext_document_level
 *    dataset script (the same script lived in lm-eval as lm_eval/datasets/wikitext/wikitext.py,
 *    e.g. commit 121b7096a, _generate_examples).
 *  - hellaswag: lm_eval/tasks/hellaswag/utils.py (preprocess, process_docs), checked at v0.4.2
 *    and HEAD 4e7e0d47 (identical), plus the recovery of ctx_b from llama.cpp's text layout.
 *
 * Whitespace is Python's str.isspace() set, which is also what re's \s matches on str patterns
 * (29 code points: U+0009-000D, U+001C-001F, U+0020, U+0085, U+00A0, U+1680, U+2000-200A,
 * U+2028, U+2029, U+202F, U+205F, U+3000; checked with CPython 3.11). Case mapping is ASCII only
 * (see py_capitalize). */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "eval/task_impl.h"
#include "kernels/common.h"

char *task_strndup(const char *s, size_t n) { return xstrndup(s, n, "a task string"); }
char *task_strdup(const char *s) { return xstrndup(s, strlen(s), "a task string"); }

char *task_concat(const char *first, ...) {
    struct strbuf b = STRBUF_INIT;
    va_list ap;
    va_start(ap, first);
    for (const char *s = first; s; s = va_arg(ap, const char *)) strbuf_addstr(&b, s);
    va_end(ap);
    return strbuf_detach(&b);
}

/* ===== UTF-8 and Python whitespace ===== */

/* decode the code point at s[i] (n bytes in all); *len its byte length. An invalid byte (a stray
 * continuation byte, a cut sequence) decodes as U+FFFD of length 1, never as whitespace (input
 * files are validated with utf8_check first). */
static uint32_t utf8_at(const char *s, size_t n, size_t i, size_t *len) {
    const unsigned char *u = (const unsigned char *)s + i;
    size_t left = n - i;
    *len = 1;
    if (u[0] < 0x80) return u[0];
    size_t k = u[0] >= 0xF0 ? 4 : u[0] >= 0xE0 ? 3 : u[0] >= 0xC0 ? 2 : 1;
    if (k == 1 || k > left) return 0xFFFD;
    uint32_t cp = u[0] & (0x7Fu >> k);
    for (size_t j = 1; j < k; j++) {
        if ((u[j] & 0xC0) != 0x80) return 0xFFFD;
        cp = cp << 6 | (u[j] & 0x3Fu);
    }
    *len = k;
    return cp;
}

static bool py_isspace(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

size_t py_space_at(const char *s, size_t n, size_t i) {
    if (i >= n) return 0;
    if ((unsigned char)s[i] < 0x80) return py_isspace((unsigned char)s[i]) ? 1 : 0;
    size_t k;
    uint32_t c = utf8_at(s, n, i, &k);
    return py_isspace(c) ? k : 0;
}

/* bytes of the whitespace character that ends just before s[i], 0 when none */
static size_t py_space_before(const char *s, size_t i) {
    if (!i) return 0;
    size_t j = i - 1;
    while (j > 0 && i - j < 4 && ((unsigned char)s[j] & 0xC0) == 0x80) j--;
    size_t k = py_space_at(s, i, j);
    return k == i - j ? k : 0;
}

size_t py_rstrip_len(const char *s, size_t n) {
    size_t k;
    while (n && (k = py_space_before(s, n))) n -= k;
    return n;
}

size_t py_lstrip_off(const char *s, size_t n) {
    size_t i = 0, k;
    while (i < n && (k = py_space_at(s, n, i))) i += k;
    return i;
}

char *py_strip(const char *s, size_t n) {
    size_t a = py_lstrip_off(s, n);
    return task_strndup(s + a, py_rstrip_len(s + a, n - a));
}

char *py_replace(const char *s, const char *old, const char *new_) {
    size_t lo = strlen(old), ln = strlen(new_);
    struct strbuf b = STRBUF_INIT;
    for (const char *p = s;;) {
        const char *q = strstr(p, old);
        if (!q) {
            strbuf_addstr(&b, p);
            break;
        }
        strbuf_add(&b, p, (size_t)(q - p));
        strbuf_add(&b, new_, ln);
        p = q + lo;
    }
    return strbuf_detach(&b);
}

size_t utf8_chars(const char *s, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

size_t utf8_check(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        unsigned c = u[i];
        size_t k = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3
                                                         : (c & 0xF8) == 0xF0 ? 4 : 0;
        if (!k || k > n - i || (k == 2 && c < 0xC2)) return i;
        uint32_t cp = c & (0x7Fu >> k);
        for (size_t j = 1; j < k; j++) {
            if ((u[i + j] & 0xC0) != 0x80) return i;
            cp = cp << 6 | (u[i + j] & 0x3Fu);
        }
        /* overlong 3/4-byte forms, surrogates and > U+10FFFF are not UTF-8 (Python rejects) */
        if ((k == 3 && cp < 0x800) || (k == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return i;
        i += k;
    }
    return n;
}

/* ===== wikitext ===== */

/* re.sub(r"X\s*([^Y]*?)\s*Y", r"X\1Y", s) for an opening X and closing Y (X == Y for quotes):
 * each X pairs with the first Y after it (the class [^Y] can't cross a Y) and the text between
 * loses its leading and trailing whitespace (greedy \s* before, lazy group, \s* after). An X
 * with no Y after it fails to match and is kept; the scan resumes after each replacement. */
static char *sub_pair(const char *s, char x, char y) {
    size_t n = strlen(s);
    struct strbuf b = STRBUF_INIT;
    size_t i = 0;
    while (i < n) {
        const char *px = memchr(s + i, x, n - i);
        if (!px) break;
        size_t a = (size_t)(px - s);
        const char *py = memchr(s + a + 1, y, n - a - 1);
        if (!py) break; /* no closer after this X, so none after any later X either */
        size_t z = (size_t)(py - s);
        strbuf_add(&b, s + i, a + 1 - i);
        size_t lo = a + 1 + py_lstrip_off(s + a + 1, z - a - 1);
        strbuf_add(&b, s + lo, py_rstrip_len(s + lo, z - lo));
        strbuf_add(&b, &y, 1);
        i = z + 1;
    }
    strbuf_add(&b, s + i, n - i);
    return strbuf_detach(&b);
}

/* re.sub(r"/' [0-9]/", r"/'[0-9]/", s): the replacement is the literal text "/'[0-9]/" */
static char *sub_slash_digit(const char *s) {
    struct strbuf b = STRBUF_INIT;
    const char *p = s;
    for (const char *q; (q = strstr(p, "/' "));) {
        if (q[3] >= '0' && q[3] <= '9' && q[4] == '/') {
            strbuf_add(&b, p, (size_t)(q - p));
            strbuf_addstr(&b, "/'[0-9]/");
            p = q + 5;
        } else {
            strbuf_add(&b, p, (size_t)(q - p) + 1);
            p = q + 1;
        }
    }
    strbuf_addstr(&b, p);
    return strbuf_detach(&b);
}

/* lm_eval/tasks/wikitext/preprocess_wikitext.py wikitext_detokenizer, step for step */
char *wikitext_detokenize(const char *page) {
    static const char *const before[][2] = {
        {"s '", "s'"}, /* contractions (then the "/' [0-9]/" sub) */
    };
    static const char *const middle[][2] = {
        /* number separators */
        {" @-@ ", "-"}, {" @,@ ", ","}, {" @.@ ", "."},
        /* punctuation */
        {" : ", ": "}, {" ; ", "; "}, {" . ", ". "}, {" ! ", "! "}, {" ? ", "? "}, {" , ", ", "},
    };
    static const char *const after[][2] = {
        /* miscellaneous; chr(176) is the degree sign, U+00B0 */
        {"= = = =", "===="}, {"= = =", "==="}, {"= =", "=="}, {" \xc2\xb0 ", "\xc2\xb0"},
        {" \n", "\n"}, {"\n ", "\n"}, {" N ", " 1 "}, {" 's", "'s"},
    };
    static const char pairs[][2] = {{'(', ')'}, {'[', ']'}, {'{', '}'}, {'"', '"'}, {'\'', '\''}};
    char *s = task_strdup(page), *t;
    for (size_t i = 0; s && i < LB_ARRAY_LEN(before); i++, free(s), s = t)
        t = py_replace(s, before[i][0], before[i][1]);
    if (s) t = sub_slash_digit(s), free(s), s = t;
    for (size_t i = 0; s && i < LB_ARRAY_LEN(middle); i++, free(s), s = t)
        t = py_replace(s, middle[i][0], middle[i][1]);
    /* double brackets, then quotes */
    for (size_t i = 0; s && i < LB_ARRAY_LEN(pairs); i++, free(s), s = t)
        t = sub_pair(s, pairs[i][0], pairs[i][1]);
    for (size_t i = 0; s && i < LB_ARRAY_LEN(after); i++, free(s), s = t)
        t = py_replace(s, after[i][0], after[i][1]);
    return s;
}

/* process_results: _words = len(re.split(r"\s+", doc["page"])) -- one more than the number of
 * whitespace runs (a leading or trailing run yields an empty piece, which counts) */
int64_t wikitext_count_words(const char *page, size_t n) {
    int64_t runs = 0;
    for (size_t i = 0; i < n;) {
        size_t k = py_space_at(page, n, i);
        if (!k) {
            utf8_at(page, n, i, &k);
            i += k;
            continue;
        }
        runs++;
        while (i < n && (k = py_space_at(page, n, i))) i += k;
    }
    return runs + 1;
}

/* wikitext_document_level _generate_examples: a line starts a page when
 *   rline = line.replace("= = =", "===").replace("= =", "==").strip()
 *   rline.startswith("= ") and rline.strip().endswith(" =")
 * (sub-headings " = = X = = " become "== X ==" and fail the test) */
bool wikitext_is_title(const char *line, size_t n) {
    char *raw = task_strndup(line, n);
    char *a = raw ? py_replace(raw, "= = =", "===") : NULL;
    char *b = a ? py_replace(a, "= =", "==") : NULL;
    char *r = b ? py_strip(b, strlen(b)) : NULL;
    size_t m = r ? strlen(r) : 0;
    bool yes = r && m >= 2 && !memcmp(r, "= ", 2) && !memcmp(r + m - 2, " =", 2);
    free(raw), free(a), free(b), free(r);
    return yes;
}

/* ===== hellaswag ===== */

/* re.sub("\\[.*?\\]", "", s): each "[" up to the first "]" on the same line ('.' does not match
 * "\n"); a "[" without one is kept. *removed tells whether anything was removed. */
static char *drop_brackets(const char *s, size_t n, bool *removed) {
    struct strbuf b = STRBUF_INIT;
    size_t i = 0;
    *removed = false;
    for (size_t j = 0; j < n; j++) {
        if (s[j] != '[') continue;
        size_t k = j + 1;
        while (k < n && s[k] != ']' && s[k] != '\n') k++;
        if (k >= n || s[k] != ']') continue;
        strbuf_add(&b, s + i, j - i);
        i = k + 1, j = k, *removed = true;
    }
    strbuf_add(&b, s + i, n - i);
    return strbuf_detach(&b);
}

/* utils.py preprocess(text):
 *     text = text.strip()
 *     text = text.replace(" [title]", ". ")
 *     text = re.sub("\\[.*?\\]", "", text)
 *     text = text.replace("  ", " ") */
char *hellaswag_preprocess(const char *text, size_t n) {
    bool removed;
    char *a = py_strip(text, n);
    char *b = a ? py_replace(a, " [title]", ". ") : NULL;
    char *c = b ? drop_brackets(b, strlen(b), &removed) : NULL;
    char *d = c ? py_replace(c, "  ", " ") : NULL;
    free(a), free(b), free(c);
    return d;
}

/* str.capitalize(): the first character upper case, the rest lower case. Only ASCII letters
 * change here; Python would also map non-ASCII letters (none occur in the ctx_b phrases of
 * HellaSwag's validation set as this layout shows them). */
char *py_capitalize(const char *s, size_t n) {
    char *p = task_strndup(s, n);
    for (size_t i = 0; p && i < n; i++) {
        char c = p[i];
        if (i == 0 && c >= 'a' && c <= 'z') p[i] = (char)(c - 'a' + 'A');
        if (i > 0 && c >= 'A' && c <= 'Z') p[i] = (char)(c - 'A' + 'a');
    }
    return p;
}

/* The llama.cpp layout (klosax/hellaswag_text_data extract_hellaswag.cpp) writes
 *     preprocess_k(activity_label) + ": " + preprocess_k(ctx)
 * where ctx = ctx_a + " " + ctx_b (or ctx_a when ctx_b is empty, per rowanz/hellaswag's README)
 * and preprocess_k removes "[header]", "[step]", "[substeps]", turns " [title]" into ". ", drops
 * "[title] "/"[title].", collapses "  " once and trims one space at each end. lm-eval builds
 *     preprocess(activity_label + ": " + ctx_a + " " + ctx_b.capitalize())
 * so what the layout lost is ctx_b's capitalization. ctx_b is "the incomplete noun phrase" that
 * ends an ActivityNet context (README); WikiHow contexts end in complete sentences with an empty
 * ctx_b. Recovery: when the context does not end with ".", "!" or "?", ctx_b is the text after the
 * last sentence end ([.!?], an optional quote, a space), and it gets str.capitalize(). On the
 * validation set this touches 3243 of 10042 contexts; in all of them the recovered phrase is
 * lower case after its first character, so capitalize() changes exactly its first letter.
 * Residual differences (see also hellaswag_ending_from_line):
 *  - 7 phrases start with a digit or a quote ("5 the guy", "\" power dribble"); if the true
 *    ctx_b starts later (at "the guy"), lm-eval capitalizes a letter we leave alone;
 *  - 42 of the 60252 lines keep "[...]" spans the layout's tag list did not cover; lm-eval's
 *    re.sub removes them, and so do we -- but where the original text had a stray "[" paired
 *    with the "]" of a tag the layout already removed, lm-eval's span was longer. */
char *hellaswag_query_from_line(const char *line, size_t n) {
    const char *colon = NULL;
    for (size_t i = 0; i + 1 < n; i++)
        if (line[i] == ':' && line[i + 1] == ' ') {
            colon = line + i;
            break;
        }
    if (!colon) return NULL;
    size_t body = (size_t)(colon - line) + 2, tail = n; /* ctx_b empty: nothing to change */
    char last = n > body ? line[n - 1] : '.';
    if (last != '.' && last != '!' && last != '?') {
        tail = body; /* no sentence end: all of it is ctx_b */
        for (size_t i = body; i + 1 < n; i++) {
            if (line[i] != '.' && line[i] != '!' && line[i] != '?') continue;
            size_t j = i + 1;
            if (line[j] == '"' || line[j] == '\'') j++;
            if (j < n && line[j] == ' ') tail = j + 1;
        }
    }
    struct strbuf b = STRBUF_INIT;
    strbuf_add(&b, line, tail);
    char *cap = py_capitalize(line + tail, n - tail);
    if (cap) strbuf_addstr(&b, cap);
    else b.oom = true;
    free(cap);
    char *q = strbuf_detach(&b);
    char *out = q ? hellaswag_ending_from_line(q, strlen(q)) : NULL;
    free(q);
    return out;
}

/* The layout's endings are preprocess_k(ending). lm-eval's preprocess additionally removes any
 * "[...]" span; when that happens its single "  " -> " " pass runs on the result, which we
 * repeat. Otherwise the line is lm-eval's string, with one residual: an original ending that
 * began with a tag ("[step] Do X") keeps a leading space in lm-eval (strip() runs before the
 * tag is removed) that the layout trimmed; the layout can't tell those endings apart. */
char *hellaswag_ending_from_line(const char *line, size_t n) {
    bool removed;
    char *a = drop_brackets(line, n, &removed);
    if (!a || !removed) return a;
    char *b = py_replace(a, "  ", " ");
    free(a);
    return b;
}
