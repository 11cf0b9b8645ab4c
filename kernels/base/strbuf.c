/* kernels/base/strbuf.c: see strbuf.h */
#include "kernels/base/strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int strbuf_grow(struct strbuf *sb, size_t extra) {
    if (sb->oom) return -1;
    if (extra >= (size_t)-1 / 2 - sb->len) {
        sb->oom = true;
        return err("out of memory: a string of more than %zu bytes", sb->len);
    }
    const size_t need = sb->len + extra + 1;
    if (need <= sb->alloc) return 0;
    size_t alloc = sb->alloc ? sb->alloc : 64;
    while (alloc < need) alloc *= 2;
    char *p = realloc(sb->buf, alloc);
    if (!p) {
        sb->oom = true;
        return err("out of memory: %zu bytes for a string", alloc);
    }
    sb->buf = p, sb->alloc = alloc;
    return 0;
}

void strbuf_add(struct strbuf *sb, const void *data, size_t n) {
    if (strbuf_grow(sb, n)) return;
    if (n) memcpy(sb->buf + sb->len, data, n);
    sb->len += n;
    sb->buf[sb->len] = 0;
}

void strbuf_addstr(struct strbuf *sb, const char *s) { strbuf_add(sb, s, strlen(s)); }
void strbuf_addch(struct strbuf *sb, char c) { strbuf_add(sb, &c, 1); }

void strbuf_vaddf(struct strbuf *sb, const char *fmt, va_list ap) {
    if (strbuf_grow(sb, 64)) return;
    va_list cp;
    va_copy(cp, ap);
    int k = vsnprintf(sb->buf + sb->len, sb->alloc - sb->len, fmt, cp);
    va_end(cp);
    if (k < 0) {
        sb->oom = true;
        err("a string could not be formatted (%s)", fmt);
        return;
    }
    if ((size_t)k >= sb->alloc - sb->len) {
        if (strbuf_grow(sb, (size_t)k)) return;
        vsnprintf(sb->buf + sb->len, sb->alloc - sb->len, fmt, ap);
    }
    sb->len += (size_t)k;
}

void strbuf_addf(struct strbuf *sb, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    strbuf_vaddf(sb, fmt, ap);
    va_end(ap);
}

void strbuf_setlen(struct strbuf *sb, size_t len) {
    ASSERT(len <= sb->len);
    sb->len = len;
    if (sb->buf) sb->buf[len] = 0;
}

char *strbuf_detach(struct strbuf *sb) {
    if (!sb->buf) strbuf_add(sb, "", 0); /* "" rather than NULL */
    char *p = sb->oom ? NULL : sb->buf;
    if (sb->oom) free(sb->buf);
    *sb = (struct strbuf)STRBUF_INIT;
    return p;
}

void strbuf_release(struct strbuf *sb) {
    free(sb->buf);
    *sb = (struct strbuf)STRBUF_INIT;
}

char *xstrfmt(const char *fmt, ...) {
    struct strbuf sb = STRBUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    strbuf_vaddf(&sb, fmt, ap);
    va_end(ap);
    return strbuf_detach(&sb);
}

bool ends_with(const char *s, const char *suffix) {
    const size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !memcmp(s + n - k, suffix, k);
}

bool starts_with(const char *s, const char *prefix) {
    return !strncmp(s, prefix, strlen(prefix));
}

int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}
