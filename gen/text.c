/* gen/text.c: UTF-8 text checks and conversions (gen/text.h). */
#include "gen/text.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int text_utf8_next(const unsigned char *s, size_t n, uint32_t *cp) {
    const unsigned c = s[0];
    if (c < 0x80) return *cp = c, 1;
    const int len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
    if (!len || c > 0xf4 || (size_t)len > n) return 0;
    uint32_t v = c & (0x3fu >> (len - 1));
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        v = v << 6 | (s[i] & 0x3fu);
    }
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (v < min[len] || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return 0;
    *cp = v;
    return len;
}

/* a code point text may not hold */
static bool forbidden(uint32_t cp) {
    return (cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r') || cp == 0xfffe || cp == 0xffff;
}

const char *text_problem(const char *str, size_t n, size_t *off) {
    static _Thread_local char why[64];
    const unsigned char *s = (const unsigned char *)str;
    for (size_t i = 0; i < n;) {
        if (s[i] >= 0x20 && s[i] < 0x80) { /* the common case */
            i++;
            continue;
        }
        uint32_t cp = 0;
        const int k = text_utf8_next(s + i, n - i, &cp);
        if (k && !forbidden(cp)) {
            i += (size_t)k;
            continue;
        }
        *off = i;
        if (!k) snprintf(why, sizeof why, "0x%02x is not UTF-8", s[i]);
        else if (!cp) snprintf(why, sizeof why, "a NUL byte");
        else snprintf(why, sizeof why, "the control character U+%04X", (unsigned)cp);
        return why;
    }
    return NULL;
}

char *text_clean(const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    char *out = malloc(n * 3 + 1), *o = out;
    if (!out) return NULL;
    for (size_t i = 0; i < n;) {
        uint32_t cp = 0;
        const int k = text_utf8_next(s + i, n - i, &cp);
        if (!k || forbidden(cp)) {
            memcpy(o, "\xef\xbf\xbd", 3); /* U+FFFD */
            o += 3;
            i += k ? (size_t)k : 1;
        } else {
            memcpy(o, s + i, (size_t)k);
            o += k;
            i += (size_t)k;
        }
    }
    *o = 0;
    return out;
}

json_t *text_json(const char *s) {
    if (!s) return json_null();
    char *c = text_clean(s, strlen(s));
    json_t *j = c ? json_string(c) : NULL;
    free(c);
    return j;
}

size_t text_cut(const char *s, size_t max) {
    size_t n = strlen(s);
    if (n <= max) return n;
    n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80) n--; /* s[n] starts the cut-off part */
    return n;
}

char *text_printf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    const int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    return n < 0 ? NULL : s;
}
