/* render/format.c: how numbers are shown. One place, so the table, the charts, the captions and
 * the datasets agree. Units are decimal (1 GB = 10^9 bytes), as on the Intel board. Output never
 * depends on the locale (the C locale is never changed by lowbit). */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "render/render_impl.h"

const char *fmt_pct(char *buf, size_t n, double frac) {
    if (isnan(frac)) return buf[0] = 0, buf;
    snprintf(buf, n, "%.2f", 100.0 * frac);
    return buf;
}

const char *fmt_g(char *buf, size_t n, double v, int sig) {
    if (isnan(v)) return buf[0] = 0, buf;
    snprintf(buf, n, "%.*g", sig, v);
    return buf;
}

const char *fmt_int(char *buf, size_t n, double v) {
    if (isnan(v)) return buf[0] = 0, buf;
    snprintf(buf, n, "%.0f", v);
    return buf;
}

const char *fmt_group(char *buf, size_t n, double gs) {
    return fmt_int(buf, n, gs);
}

const char *fmt_bool(double v) {
    if (isnan(v)) return "";
    return v != 0 ? "yes" : "no";
}

/* v / unit with 3 significant digits, at least 0 decimals: "1.23", "12.3", "123" */
static void three_sig(char *buf, size_t n, double v, const char *unit) {
    int dec = v < 10 ? 2 : v < 100 ? 1 : 0;
    snprintf(buf, n, "%.*f %s", dec, v, unit);
}

const char *fmt_bytes(char *buf, size_t n, double b) {
    if (isnan(b)) return buf[0] = 0, buf;
    if (b >= 1e9) three_sig(buf, n, b / 1e9, "GB");
    else if (b >= 1e6) three_sig(buf, n, b / 1e6, "MB");
    else if (b >= 1e3) three_sig(buf, n, b / 1e3, "kB");
    else snprintf(buf, n, "%.0f B", b);
    return buf;
}

const char *fmt_params(char *buf, size_t n, double p) {
    if (isnan(p)) return buf[0] = 0, buf;
    if (p >= 1e9) three_sig(buf, n, p / 1e9, "B");
    else if (p >= 1e6) three_sig(buf, n, p / 1e6, "M");
    else if (p >= 1e3) three_sig(buf, n, p / 1e3, "K");
    else snprintf(buf, n, "%.0f", p);
    return buf;
}

const char *fmt_seconds(char *buf, size_t n, double s) {
    if (isnan(s)) return buf[0] = 0, buf;
    if (s < 60) snprintf(buf, n, "%.*f s", s < 10 ? 2 : 1, s);
    else if (s < 3600) snprintf(buf, n, "%.1f min", s / 60);
    else snprintf(buf, n, "%.2f h", s / 3600);
    return buf;
}

const char *fmt_num15(char *buf, size_t n, double v) {
    if (isnan(v) || isinf(v)) return buf[0] = 0, buf;
    snprintf(buf, n, "%.15g", v);
    return buf;
}

double num15(double v) {
    char b[40];
    if (isnan(v) || isinf(v)) return NAN;
    return strtod(fmt_num15(b, sizeof b, v), NULL);
}

char *utf8_trim(char *s) {
    size_t n = strlen(s), i = n;
    while (i > 0 && ((unsigned char)s[i - 1] & 0xc0) == 0x80) i--; /* back to a lead byte */
    if (i == 0) return s;
    unsigned char c = (unsigned char)s[i - 1];
    size_t want = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
    if (n - (i - 1) < want) s[i - 1] = 0; /* a sequence cut by snprintf */
    return s;
}

char *fmt_dup(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    const int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0) {
        err("render: out of memory");
        return NULL;
    }
    return s;
}

const char *fmt_params_active(char *buf, size_t n, double active, double total) {
    if (isnan(active) || isnan(total) || active == total) return fmt_params(buf, n, total);
    char a[32], t[32];
    snprintf(buf, n, "%s / %s", fmt_params(a, sizeof a, active), fmt_params(t, sizeof t, total));
    return buf;
}
