/* render/chart.c: the chart canvas: Cairo drawing written twice, as SVG (charts/<name>.svg) and as
 * a PNG at 2x (charts/<name>.png), with text placement that never overlaps.
 *
 * Fonts: "DejaVu Sans" through cairo's toy API, i.e. fontconfig (fonts-dejavu-core). Hinting is
 * off and metrics unhinted on both surfaces, so the text boxes (and so the layout) are the same
 * in the SVG and the PNG pass. SVG text is drawn as glyph outlines: the file looks the same
 * everywhere and needs no font; its words are in <title>/<desc> and in the page's caption.
 *
 * Determinism: cairo numbers the SVG's top group from a process-wide surface counter
 * (id="surface7" for the 7th surface made), so rendering the same data twice in one process gave
 * different bytes. Every "surfaceN" is renumbered from 1 in order of appearance after the fact;
 * the other ids (glyphs, clips, patterns) are already counted per document. PNG bytes depend only
 * on the pixels (cairo writes no time chunk).
 *
 * Overlaps: every text goes through chart_text(), which records its box; callers place labels
 * with chart_box_collides() and skip what cannot fit (the page's table has every number). Tests
 * check the recorded boxes pairwise. */
#include <cairo-svg.h>
#include <libdeflate.h>
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "render/render_impl.h"

#define CHART_FONT "DejaVu Sans"

/* ------------------------------------------------------------------ colours and markers */

void chart_okabe_ito(int i, double rgb[3]) {
    static const unsigned char pal[8][3] = {
        {0, 0, 0},       {230, 159, 0},  {86, 180, 233}, {0, 158, 115},
        {240, 228, 66},  {0, 114, 178},  {213, 94, 0},   {204, 121, 167},
    };
    i = ((i % 8) + 8) % 8;
    for (int k = 0; k < 3; k++) rgb[k] = pal[i][k] / 255.0;
}

int chart_palette_index(const char *const *keys, int n, const char *key) {
    for (int i = 0; i < n; i++)
        if (key && !strcmp(key, keys[i])) return i;
    /* anything else: a stable colour from its name */
    unsigned h = 5381;
    for (const char *p = key ? key : ""; *p; p++) h = h * 33 + (unsigned char)*p;
    return 1 + (int)(h % 7);
}

int chart_algo_index(const char *a) {
    static const char *const algos[] = {"fp", "rtn", "gptq", "awq", "aqlm", "autoround", "gguf",
                                        "bnb"};
    return chart_palette_index(algos, 8, a);
}

void chart_set_rgb(cairo_t *cr, const double rgb[3]) {
    cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
}

void chart_marker(cairo_t *cr, int k, double x, double y, double r, const double rgb[3]) {
    cairo_new_path(cr);
    switch (((k % 8) + 8) % 8) {
    case 0: cairo_arc(cr, x, y, r, 0, 2 * M_PI); break;
    case 1: cairo_rectangle(cr, x - r * 0.85, y - r * 0.85, r * 1.7, r * 1.7); break;
    case 2:
        cairo_move_to(cr, x, y - r * 1.2), cairo_line_to(cr, x + r * 1.2, y);
        cairo_line_to(cr, x, y + r * 1.2), cairo_line_to(cr, x - r * 1.2, y);
        cairo_close_path(cr);
        break;
    case 3:
        cairo_move_to(cr, x, y - r * 1.2), cairo_line_to(cr, x + r * 1.1, y + r * 0.8);
        cairo_line_to(cr, x - r * 1.1, y + r * 0.8), cairo_close_path(cr);
        break;
    case 4:
        cairo_move_to(cr, x, y + r * 1.2), cairo_line_to(cr, x + r * 1.1, y - r * 0.8);
        cairo_line_to(cr, x - r * 1.1, y - r * 0.8), cairo_close_path(cr);
        break;
    case 5:
        cairo_rectangle(cr, x - r * 1.1, y - r * 0.4, r * 2.2, r * 0.8);
        cairo_rectangle(cr, x - r * 0.4, y - r * 1.1, r * 0.8, r * 2.2);
        break;
    case 6:
        cairo_move_to(cr, x - r, y - r * 0.6), cairo_line_to(cr, x - r * 0.6, y - r);
        cairo_line_to(cr, x + r, y + r * 0.6), cairo_line_to(cr, x + r * 0.6, y + r);
        cairo_close_path(cr);
        cairo_move_to(cr, x + r, y - r * 0.6), cairo_line_to(cr, x + r * 0.6, y - r);
        cairo_line_to(cr, x - r, y + r * 0.6), cairo_line_to(cr, x - r * 0.6, y + r);
        cairo_close_path(cr);
        break;
    default:
        for (int i = 0; i < 10; i++) {
            double a = -M_PI / 2 + i * M_PI / 5, rr = i % 2 ? r * 0.55 : r * 1.3;
            if (i) cairo_line_to(cr, x + rr * cos(a), y + rr * sin(a));
            else cairo_move_to(cr, x + rr * cos(a), y + rr * sin(a));
        }
        cairo_close_path(cr);
    }
    chart_set_rgb(cr, rgb);
    cairo_fill_preserve(cr);
    cairo_set_source_rgba(cr, 0, 0, 0, 0.75);
    cairo_set_line_width(cr, 0.8);
    cairo_stroke(cr);
}

/* ------------------------------------------------------------------ text */

static void set_font(struct chart *c, double size, bool bold) {
    cairo_select_font_face(c->cr, CHART_FONT, CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(c->cr, size);
}

/* text as Cairo will take it: Cairo refuses (CAIRO_STATUS_INVALID_STRING, which fails the whole
 * chart) the noncharacters U+FDD0..U+FDEF and U+xFFFE/U+xFFFF, which are valid UTF-8 and which
 * the pages and datasets carry as they are; a chart draws U+FFFD for them. Returns text itself
 * when it has none, else a copy in a per-thread buffer (until the next call). */
static const char *drawable(const char *text) {
    static _Thread_local char *buf;
    static _Thread_local size_t cap;
    const unsigned char *s = (const unsigned char *)text;
    size_t n = strlen(text), o = 0;
    bool clean = true;
    for (size_t i = 0; i < n && clean; i++)
        clean = s[i] < 0xef || (s[i] == 0xef && i + 1 < n && s[i + 1] != 0xb7 && s[i + 1] != 0xbf) ||
                (s[i] >= 0xf0 && i + 2 < n && (s[i + 2] & 0x0f) != 0x0f);
    if (clean) return text;
    if (cap < 3 * n + 1) {
        char *nb = realloc(buf, 3 * n + 1);
        if (!nb) return "\xef\xbf\xbd";
        buf = nb;
        cap = 3 * n + 1;
    }
    for (size_t i = 0; i < n;) {
        const int k = s[i] < 0x80 ? 1 : s[i] >= 0xf0 ? 4 : s[i] >= 0xe0 ? 3 : 2;
        uint32_t cp = k == 1 ? s[i] : s[i] & (0x3fu >> (k - 1));
        for (int j = 1; j < k && i + (size_t)j < n; j++) cp = cp << 6 | (s[i + j] & 0x3fu);
        if ((cp >= 0xfdd0 && cp <= 0xfdef) || (cp & 0xfffe) == 0xfffe) {
            memcpy(buf + o, "\xef\xbf\xbd", 3);
            o += 3;
        } else {
            memcpy(buf + o, s + i, (size_t)k);
            o += (size_t)k;
        }
        i += (size_t)k;
    }
    buf[o] = 0;
    return buf;
}

double chart_text_width(struct chart *c, double size, bool bold, const char *text) {
    cairo_text_extents_t te;
    set_font(c, size, bold);
    cairo_text_extents(c->cr, drawable(text), &te);
    return te.x_advance;
}

struct chart_box chart_text_box(struct chart *c, double x, double y, double ax, double ay,
                                double size, bool bold, const char *text) {
    cairo_font_extents_t fe;
    double w = chart_text_width(c, size, bold, text);
    cairo_font_extents(c->cr, &fe);
    double h = fe.ascent + fe.descent;
    struct chart_box b;
    b.x0 = x - ax * w;
    b.x1 = b.x0 + w;
    b.y0 = y - ay * h;
    b.y1 = b.y0 + h;
    return b;
}

struct chart_box chart_text(struct chart *c, double x, double y, double ax, double ay,
                            double size, bool bold, const char *text) {
    struct chart_box b = chart_text_box(c, x, y, ax, ay, size, bold, text);
    cairo_font_extents_t fe;
    cairo_font_extents(c->cr, &fe);
    cairo_move_to(c->cr, b.x0, b.y0 + fe.ascent);
    cairo_show_text(c->cr, drawable(text));
    if (c->n_labels == c->cap_labels) {
        int nc = c->cap_labels ? c->cap_labels * 2 : 64;
        struct chart_box *p = realloc(c->labels, (size_t)nc * sizeof *p);
        if (!p) {
            c->oom = 1;
            return b;
        }
        c->labels = p;
        c->cap_labels = nc;
    }
    c->labels[c->n_labels++] = b;
    return b;
}

bool chart_boxes_overlap(struct chart_box a, struct chart_box b, double pad) {
    return a.x0 < b.x1 + pad && b.x0 < a.x1 + pad && a.y0 < b.y1 + pad && b.y0 < a.y1 + pad;
}

bool chart_box_collides(const struct chart *c, struct chart_box b, double pad) {
    if (b.x0 < 0 || b.y0 < 0 || b.x1 > c->w || b.y1 > c->h) return true;
    for (int i = 0; i < c->n_labels; i++)
        if (chart_boxes_overlap(b, c->labels[i], pad)) return true;
    return false;
}

int chart_ticks(double lo, double hi, int max_ticks, double *t0, double *step) {
    if (max_ticks < 2) max_ticks = 2;
    double range = hi - lo;
    if (!(range > 0)) range = fabs(hi) > 0 ? fabs(hi) : 1;
    double raw = range / (max_ticks - 1), mag = pow(10, floor(log10(raw))), st = 10 * mag;
    static const double nice[] = {1, 2, 2.5, 5, 10};
    for (int i = 0; i < 5; i++)
        if (nice[i] * mag >= raw) {
            st = nice[i] * mag;
            break;
        }
    *step = st;
    *t0 = ceil(lo / st - 1e-9) * st;
    int n = (int)floor((hi - *t0) / st + 1e-9) + 1;
    return n < 0 ? 0 : n;
}

/* ------------------------------------------------------------------ output */

struct membuf {
    unsigned char *p;
    size_t n, cap;
    int oom;
};

static cairo_status_t mem_write(void *ctx, const unsigned char *data, unsigned int len) {
    struct membuf *m = ctx;
    if (m->n + len > m->cap) {
        size_t nc = m->cap ? m->cap : 1 << 16;
        while (nc < m->n + len) nc *= 2;
        unsigned char *q = realloc(m->p, nc);
        if (!q) {
            m->oom = 1;
            return CAIRO_STATUS_WRITE_ERROR;
        }
        m->p = q;
        m->cap = nc;
    }
    memcpy(m->p + m->n, data, len);
    m->n += len;
    return CAIRO_STATUS_SUCCESS;
}

static void mem_puts(struct membuf *m, const char *s) {
    mem_write(m, (const unsigned char *)s, (unsigned)strlen(s));
}

static void mem_escaped(struct membuf *m, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '&': mem_puts(m, "&amp;"); break;
        case '<': mem_puts(m, "&lt;"); break;
        case '>': mem_puts(m, "&gt;"); break;
        case '"': mem_puts(m, "&quot;"); break;
        default: mem_write(m, (const unsigned char *)s, 1);
        }
    }
}

/* the SVG cairo wrote, with "surfaceN" renumbered per document and <title>/<desc> added */
static int svg_finish(const struct membuf *in, struct membuf *out, const char *title,
                      const char *desc) {
    long map_from[64], map_n = 0;
    const char *s = (const char *)in->p, *end = s + in->n;
    const char *svg = NULL;
    for (const char *p = s; p + 4 < end; p++)
        if (!memcmp(p, "<svg", 4)) {
            svg = p;
            break;
        }
    const char *svg_end = svg ? memchr(svg, '>', (size_t)(end - svg)) : NULL;
    if (!svg_end) return err("render: cairo wrote no <svg> element");
    for (const char *p = s; p < end;) {
        if (p == svg + 4) {
            mem_puts(out, " role=\"img\" aria-labelledby=\"t d\"");
        }
        if (p == svg_end + 1) {
            mem_puts(out, "\n<title id=\"t\">");
            mem_escaped(out, title);
            mem_puts(out, "</title>\n<desc id=\"d\">");
            mem_escaped(out, desc);
            mem_puts(out, "</desc>");
        }
        if (end - p > 7 && !memcmp(p, "surface", 7) && isdigit((unsigned char)p[7]) &&
            (p == s || !isalnum((unsigned char)p[-1]))) {
            char *q;
            long v = strtol(p + 7, &q, 10), k = 0;
            while (k < map_n && map_from[k] != v) k++;
            if (k == map_n && map_n < 64) map_from[map_n++] = v;
            char b[32];
            snprintf(b, sizeof b, "surface%ld", k + 1);
            mem_puts(out, b);
            p = q;
            continue;
        }
        /* copy up to the next point of interest in one go */
        const char *q = p + 1;
        while (q < end && q != svg + 4 && q != svg_end + 1 && *q != 's') q++;
        mem_write(out, (const unsigned char *)p, (unsigned)(q - p));
        p = q;
    }
    return out->oom ? err("render: out of memory writing a chart") : 0;
}

/* the image surface as an 8-bit RGB PNG, written here: signature, IHDR, one IDAT, IEND.
 * Why not cairo_surface_write_to_png_stream: it has libpng try every row filter at zlib's
 * default level, which made PNG encoding two thirds of the time to render 10,000 runs. Charts are
 * flat colours: every row uses the "up" filter and libdeflate compresses the whole image at level
 * 3, several times faster than zlib and a smaller file than zlib's fast RLE mode. No time chunk:
 * the bytes depend on the pixels only. */
static void be32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

static void png_chunk(struct membuf *out, const char *type, const unsigned char *data, size_t n) {
    unsigned char hdr[8], crc[4];
    be32(hdr, (uint32_t)n);
    memcpy(hdr + 4, type, 4);
    uint32_t c = libdeflate_crc32(0, hdr + 4, 4);
    c = libdeflate_crc32(c, data, n);
    be32(crc, c);
    mem_write(out, hdr, 8);
    if (n) mem_write(out, data, (unsigned)n);
    mem_write(out, crc, 4);
}

static int png_encode(cairo_surface_t *im, struct membuf *out) {
    static _Thread_local struct libdeflate_compressor *z;
    cairo_surface_flush(im);
    int w = cairo_image_surface_get_width(im), h = cairo_image_surface_get_height(im);
    int stride = cairo_image_surface_get_stride(im);
    const unsigned char *px = cairo_image_surface_get_data(im);
    if (!z) z = libdeflate_alloc_compressor(3);
    size_t row = 1 + 3 * (size_t)w, raw_n = row * (size_t)h;
    unsigned char *raw = malloc(raw_n);
    size_t bound = z ? libdeflate_zlib_compress_bound(z, raw_n) : 0;
    unsigned char *zbuf = malloc(bound + 1);
    if (!z || !raw || !zbuf || !px) {
        free(raw), free(zbuf);
        return -1;
    }
    for (int y = 0; y < h; y++) {
        const uint32_t *src = (const uint32_t *)(const void *)(px + (size_t)y * (size_t)stride);
        const uint32_t *up = y ? (const uint32_t *)(const void *)(px + (size_t)(y - 1) * (size_t)stride)
                               : NULL;
        unsigned char *o = raw + row * (size_t)y;
        *o++ = 2; /* filter: up */
        for (int x = 0; x < w; x++, o += 3) { /* RGB24: 0x00RRGGBB in native order */
            uint32_t v = src[x], u = up ? up[x] : 0;
            o[0] = (unsigned char)((v >> 16) - (u >> 16));
            o[1] = (unsigned char)((v >> 8) - (u >> 8));
            o[2] = (unsigned char)(v - u);
        }
    }
    size_t zn = libdeflate_zlib_compress(z, raw, raw_n, zbuf, bound);
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    unsigned char ihdr[13];
    be32(ihdr, (uint32_t)w);
    be32(ihdr + 4, (uint32_t)h);
    ihdr[8] = 8;  /* bit depth */
    ihdr[9] = 2;  /* colour type: RGB */
    ihdr[10] = 0; /* deflate */
    ihdr[11] = 0; /* adaptive filtering (per-row filter bytes) */
    ihdr[12] = 0; /* no interlace */
    if (zn) {
        mem_write(out, sig, 8);
        png_chunk(out, "IHDR", ihdr, 13);
        png_chunk(out, "IDAT", zbuf, zn);
        png_chunk(out, "IEND", NULL, 0);
    }
    free(raw), free(zbuf);
    return zn && !out->oom ? 0 : -1;
}

static void font_options(cairo_t *cr) {
    cairo_font_options_t *fo = cairo_font_options_create();
    cairo_font_options_set_hint_style(fo, CAIRO_HINT_STYLE_NONE);
    cairo_font_options_set_hint_metrics(fo, CAIRO_HINT_METRICS_OFF);
    cairo_font_options_set_antialias(fo, CAIRO_ANTIALIAS_GRAY);
    cairo_set_font_options(cr, fo);
    cairo_font_options_destroy(fo);
}

static void draw_pass(struct chart *c, cairo_t *cr, double w, double h, chart_draw_fn draw,
                      const void *data) {
    c->cr = cr;
    c->w = w;
    c->h = h;
    c->n_labels = 0;
    font_options(cr);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_set_source_rgb(cr, 0, 0, 0);
    draw(c, data);
}

int chart_write(struct site *s, const char *name, double w, double h, const char *title,
                const char *desc, chart_draw_fn draw, const void *data,
                struct chart_layout *layout) {
    int ret = -1;
    struct membuf raw = {0}, svg = {0}, png = {0};
    struct chart c = {0};
    char rel[512];

    cairo_surface_t *sv = cairo_svg_surface_create_for_stream(mem_write, &raw, w, h);
    cairo_svg_surface_set_document_unit(sv, CAIRO_SVG_UNIT_PX);
    cairo_t *cr = cairo_create(sv);
    draw_pass(&c, cr, w, h, draw, data);
    cairo_status_t st = cairo_status(cr);
    cairo_destroy(cr);
    cairo_surface_finish(sv);
    if (st == CAIRO_STATUS_SUCCESS) st = cairo_surface_status(sv);
    cairo_surface_destroy(sv);
    if (st != CAIRO_STATUS_SUCCESS || raw.oom || c.oom) {
        err("render: chart %s (svg): %s", name, cairo_status_to_string(st));
        goto out;
    }
    if (layout) {
        layout->labels = malloc((size_t)(c.n_labels + 1) * sizeof *layout->labels);
        if (layout->labels) memcpy(layout->labels, c.labels, (size_t)c.n_labels * sizeof *c.labels);
        layout->n_labels = layout->labels ? c.n_labels : 0;
        layout->w = w;
        layout->h = h;
    }
    if (svg_finish(&raw, &svg, title, desc)) goto out;
    snprintf(rel, sizeof rel, "charts/%s.svg", name);
    if (site_write_file(s, rel, svg.p, svg.n)) goto out;

    /* one pixel buffer per thread, reused: a fresh 10 MB surface per chart cost more in page
     * faults than drawing on it */
    static _Thread_local unsigned char *pix;
    static _Thread_local size_t pix_cap;
    int pw = (int)ceil(w * 2), ph = (int)ceil(h * 2);
    int stride = cairo_format_stride_for_width(CAIRO_FORMAT_RGB24, pw);
    size_t need = (size_t)stride * (size_t)ph;
    if (need > pix_cap) {
        free(pix);
        pix = malloc(need);
        pix_cap = pix ? need : 0;
        if (!pix) {
            err("render: out of memory for chart %s (%dx%d px)", name, pw, ph);
            goto out;
        }
    }
    cairo_surface_t *im = cairo_image_surface_create_for_data(pix, CAIRO_FORMAT_RGB24, pw, ph, stride);
    cr = cairo_create(im);
    cairo_scale(cr, 2, 2);
    draw_pass(&c, cr, w, h, draw, data);
    st = cairo_status(cr);
    cairo_destroy(cr);
    if (st == CAIRO_STATUS_SUCCESS && png_encode(im, &png)) st = CAIRO_STATUS_WRITE_ERROR;
    cairo_surface_destroy(im);
    if (st != CAIRO_STATUS_SUCCESS || png.oom) {
        err("render: chart %s (png): %s", name, cairo_status_to_string(st));
        goto out;
    }
    snprintf(rel, sizeof rel, "charts/%s.png", name);
    if (site_write_file(s, rel, png.p, png.n)) goto out;
    ret = 0;
out:
    free(raw.p), free(svg.p), free(png.p), free(c.labels);
    return ret;
}

static _Thread_local const double *g_px, *g_py; /* qsort context for cmp_pareto */
static _Thread_local bool g_pmax;

static int cmp_pareto(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b;
    if (g_px[i] != g_px[j]) return g_px[i] < g_px[j] ? -1 : 1;
    if (g_py[i] != g_py[j]) return (g_pmax ? g_py[i] > g_py[j] : g_py[i] < g_py[j]) ? -1 : 1;
    return (i > j) - (i < j);
}

int chart_pareto(const double *x, const double *y, int n, bool maximize, int *out) {
    /* by x ascending (better y first on ties), keep the points that strictly improve y */
    int *idx = malloc((size_t)(n + 1) * sizeof *idx), k = 0, m = 0;
    if (!idx) return 0;
    for (int i = 0; i < n; i++)
        if (!isnan(x[i]) && !isnan(y[i])) idx[m++] = i;
    g_px = x, g_py = y, g_pmax = maximize;
    qsort(idx, (size_t)m, sizeof *idx, cmp_pareto);
    double best = maximize ? -INFINITY : INFINITY;
    for (int i = 0; i < m; i++) {
        double v = y[idx[i]];
        if (maximize ? v > best : v < best) {
            best = v;
            out[k++] = idx[i];
        }
    }
    free(idx);
    return k;
}
