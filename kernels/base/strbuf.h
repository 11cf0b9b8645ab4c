/* kernels/base/strbuf.h: a growable string (git's strbuf), owned strings, small string helpers.
 *
 *   struct strbuf sb = STRBUF_INIT;     always valid to release
 *   strbuf_addf(&sb, "%s/%s", dir, name);
 *   strbuf_addstr(&sb, ".json");
 *   if (sb.oom) ...                     an allocation failed (reported once through err())
 *   char *s = strbuf_detach(&sb);       owned (free()); NULL when an allocation failed
 *
 * sb.buf is NUL-terminated after any append (NULL before the first: read it with strbuf_str()).
 * Out of memory is sticky: the first failed append reports "out of memory: N bytes for a string"
 * and sets oom; every later append is a no-op, so a caller checks once, at the end. */
#ifndef KERNELS_BASE_STRBUF_H
#define KERNELS_BASE_STRBUF_H
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "kernels/base/err.h"

struct strbuf {
    char *buf;    /* len bytes + NUL; NULL until the first append */
    size_t len;   /* bytes held, not counting the NUL */
    size_t alloc; /* bytes allocated */
    bool oom;     /* an allocation failed (already reported) */
};
#define STRBUF_INIT {NULL, 0, 0, false}

/* room for extra more bytes (and the NUL); -1 (oom set, reported) when it cannot be had */
int strbuf_grow(struct strbuf *sb, size_t extra);
void strbuf_add(struct strbuf *sb, const void *data, size_t n);
void strbuf_addstr(struct strbuf *sb, const char *s);
void strbuf_addch(struct strbuf *sb, char c);
void strbuf_addf(struct strbuf *sb, const char *fmt, ...) LB_PRINTF(2, 3);
void strbuf_vaddf(struct strbuf *sb, const char *fmt, va_list ap);
/* keep the first len bytes (len <= sb->len) */
void strbuf_setlen(struct strbuf *sb, size_t len);
static inline void strbuf_reset(struct strbuf *sb) { strbuf_setlen(sb, 0); }
/* the string ("" before the first append); borrowed until the next change */
static inline const char *strbuf_str(const struct strbuf *sb) { return sb->buf ? sb->buf : ""; }
/* the string, owned by the caller (free()), and sb back to STRBUF_INIT; NULL when an append
 * failed (sb is released then) */
char *strbuf_detach(struct strbuf *sb);
/* free the contents; sb is STRBUF_INIT again */
void strbuf_release(struct strbuf *sb);

/* printf into owned memory (free()); NULL with "out of memory" reported. No fixed buffer, so
 * nothing is cut: what paths are built with. */
char *xstrfmt(const char *fmt, ...) LB_PRINTF(1, 2);

/* s ends with suffix / starts with prefix */
bool ends_with(const char *s, const char *suffix);
bool starts_with(const char *s, const char *prefix);
/* qsort comparator for an array of strings (char * or const char *), strcmp order */
int cmp_str(const void *a, const void *b);
#endif
