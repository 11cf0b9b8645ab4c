/* gen/csvin.c: models.csv, recipes.csv and lowbit train's curve.csv (RFC 4180 through libcsv),
 * ids and ${VAR} paths.
 *
 * Both files have a header row naming their columns (any order, all but the required ones
 * optional); a row whose first cell starts with '#' is a comment. Cells are trimmed; an empty
 * cell is "absent" (NULL in the database). See gen/pipeline.h for the columns.
 *
 * The files are UTF-8 text (a byte order mark at the start is skipped): every cell, comments and
 * the header included, is checked as it is read (gen/text.h), and a byte that is not UTF-8, a NUL
 * or a control character other than tab, CR and LF is refused with the file, row, column and
 * offset, before anything is planned. */
#include <csv.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gen/cli.h"
#include "gen/pipeline.h"
#include "gen/text.h"
#include "kernels/common.h"

/* ===== ids and paths ===== */

static bool id_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-' || c == '+';
}

int pipe_id_check(const char *id, const char *what) {
    size_t n = id ? strlen(id) : 0;
    if (!n) return err("%s: empty id", what);
    if (n >= PIPE_ID_MAX)
        return err("%s: id '%.*s...' is longer than %d characters", what, (int)text_cut(id, 40),
                   id, PIPE_ID_MAX - 1);
    if (id[0] == '.' || id[0] == '-')
        return err("%s: id '%s' starts with '%c' (ids name files of the site: use letters, "
                   "digits and . _ - +, not first . or -)", what, id, id[0]);
    for (size_t i = 0; i < n; i++)
        if (!id_char(id[i]))
            return err("%s: id '%s' has the character '%c' (ids name files of the site: use "
                       "letters, digits and . _ - +)", what, id, id[i]);
    return 0;
}

void pipe_id_sanitize(const char *text, char *out, size_t size) {
    char tmp[2 * PIPE_ID_MAX + 2];
    size_t n = 0;
    for (const char *p = text ? text : ""; *p && n + 2 < sizeof tmp; p++) {
        if (*p == '/') {
            tmp[n++] = '-';
            tmp[n++] = '-';
        } else {
            tmp[n++] = id_char(*p) ? *p : '_';
        }
    }
    tmp[n] = 0;
    const char *s = tmp;
    while (*s == '.' || *s == '-') s++; /* "../x" must not stay a path or an option */
    if (size > PIPE_ID_MAX) size = PIPE_ID_MAX;
    n = LB_MIN(strlen(s), size - 1);
    memcpy(out, s, n);
    out[n] = 0;
    while (n && out[n - 1] == '-') out[--n] = 0;
    if (!n) snprintf(out, size, "unnamed");
}

int pipe_expand(const char *raw, char *out, size_t size) {
    size_t n = 0;
    for (const char *p = raw; *p;) {
        if (p[0] == '$' && p[1] == '{') {
            const char *end = strchr(p + 2, '}');
            if (!end) return err("'%s': '${' without '}'", raw);
            char name[128];
            if ((size_t)(end - p - 2) >= sizeof name || end == p + 2)
                return err("'%s': bad variable name", raw);
            memcpy(name, p + 2, (size_t)(end - p - 2));
            name[end - p - 2] = 0;
            const char *v = getenv(name);
            if ((!v || !*v) && !strcmp(name, "LOWBIT_DATA")) v = "../shared/data";
            if (!v || !*v) return err("'%s': ${%s} is not set", raw, name);
            size_t vn = strlen(v);
            if (n + vn >= size) return err("'%s': expanded path too long", raw);
            memcpy(out + n, v, vn);
            n += vn;
            p = end + 1;
        } else {
            if (n + 1 >= size) return err("'%s': path too long", raw);
            out[n++] = *p++;
        }
    }
    out[n] = 0;
    return 0;
}

/* ===== a whole CSV file as rows of cells ===== */

struct csv_table {
    char ***rows;  /* rows[r][c], NULL = empty cell */
    size_t **lens; /* lens[r][c]: the cell's bytes (a NUL inside one is refused, not a cut) */
    int *n_cells;
    int n_rows, cap_rows;
    /* the row being read */
    char **cur;
    size_t *cur_len;
    int n_cur, cap_cur;
    bool oom;
};

static void on_cell(void *s, size_t len, void *data) {
    struct csv_table *t = data;
    if (t->oom) return;
    if (t->n_cur == t->cap_cur) {
        int cap = t->cap_cur ? 2 * t->cap_cur : 16;
        char **nc = realloc(t->cur, (size_t)cap * sizeof *nc);
        if (nc) t->cur = nc;
        size_t *nl = realloc(t->cur_len, (size_t)cap * sizeof *nl);
        if (nl) t->cur_len = nl;
        if (!nc || !nl) {
            t->oom = true;
            return;
        }
        t->cap_cur = cap;
    }
    char *v = NULL;
    if (s && len) {
        v = malloc(len + 1);
        if (!v) {
            t->oom = true;
            return;
        }
        memcpy(v, s, len);
        v[len] = 0;
    }
    t->cur_len[t->n_cur] = v ? len : 0;
    t->cur[t->n_cur++] = v;
}

static void on_row(int c, void *data) {
    (void)c;
    struct csv_table *t = data;
    if (t->oom) return;
    if (t->n_rows == t->cap_rows) {
        int cap = t->cap_rows ? 2 * t->cap_rows : 16;
        char ***nr = realloc(t->rows, (size_t)cap * sizeof *nr);
        size_t **nl = realloc(t->lens, (size_t)cap * sizeof *nl);
        int *nn = realloc(t->n_cells, (size_t)cap * sizeof *nn);
        if (nr) t->rows = nr;
        if (nl) t->lens = nl;
        if (nn) t->n_cells = nn;
        if (!nr || !nl || !nn) {
            t->oom = true;
            return;
        }
        t->cap_rows = cap;
    }
    t->rows[t->n_rows] = t->cur;
    t->lens[t->n_rows] = t->cur_len;
    t->n_cells[t->n_rows++] = t->n_cur;
    t->cur = NULL;
    t->cur_len = NULL;
    t->n_cur = t->cap_cur = 0;
}

static void table_release(struct csv_table *t) {
    for (int r = 0; r < t->n_rows; r++) {
        for (int c = 0; c < t->n_cells[r]; c++) free(t->rows[r][c]);
        free(t->rows[r]);
        free(t->lens[r]);
    }
    for (int c = 0; c < t->n_cur; c++) free(t->cur[c]);
    free(t->cur);
    free(t->cur_len);
    free(t->rows);
    free(t->lens);
    free(t->n_cells);
    memset(t, 0, sizeof *t);
}

/* the first cell of t (header and comment rows included, in file order) that is not text: one
 * message naming the row, the column (by its header), the byte in the cell, and where the first
 * such byte of the file is (the same byte: cells hold the file's bytes in order) */
static int table_check_text(const char *path, const struct csv_table *t, const char *text,
                            size_t len) {
    size_t foff = 0;
    if (!text_problem(text, len, &foff)) return 0;
    int line = 1;
    for (size_t i = 0; i < foff; i++) line += text[i] == '\n';
    int id_col = -1;
    for (int c = 0; t->n_rows && c < t->n_cells[0]; c++) {
        size_t o;
        const char *h = t->rows[0][c];
        if (h && !text_problem(h, t->lens[0][c], &o) && !strcasecmp(h, "id")) id_col = c;
    }
    for (int r = 0; r < t->n_rows; r++)
        for (int c = 0; c < t->n_cells[r]; c++) {
            size_t off = 0;
            const char *v = t->rows[r][c], *why = v ? text_problem(v, t->lens[r][c], &off) : NULL;
            if (!why) continue;
            char where[400], col[300];
            const char *h = c < t->n_cells[0] ? t->rows[0][c] : NULL, *id = NULL;
            size_t o;
            if (r && h && !text_problem(h, t->lens[0][c], &o))
                snprintf(col, sizeof col, "column %.*s", (int)text_cut(h, 200), h);
            else
                snprintf(col, sizeof col, "column %d", c + 1);
            if (r && id_col >= 0 && id_col < t->n_cells[r] && id_col != c &&
                (id = t->rows[r][id_col]) && !text_problem(id, t->lens[r][id_col], &o))
                snprintf(where, sizeof where, "row %d (id '%.*s')", r, (int)text_cut(id, 127), id);
            else if (r)
                snprintf(where, sizeof where, "row %d", r);
            else
                snprintf(where, sizeof where, "the header");
            return err("%s: %s, %s: byte %zu of the cell (line %d, byte %zu of the file): %s "
                       "(a CSV file is UTF-8 text without control characters other than tab and "
                       "line breaks; save it as UTF-8)",
                       path, where, col, off + 1, line, foff + 1, why);
        }
    return err("%s: line %d, byte %zu: %s (a CSV file is UTF-8 text without control characters "
               "other than tab and line breaks; save it as UTF-8)",
               path, line, foff + 1, text_problem(text, len, &foff));
}

static int table_read(const char *path, struct csv_table *t) {
    memset(t, 0, sizeof *t);
    char *buf = NULL;
    size_t len = 0;
    if (read_file_all(path, "the CSV file", &buf, &len)) return -1;
    /* a UTF-8 byte order mark (spreadsheets write one) is not part of the first cell */
    const size_t bom = len >= 3 && !memcmp(buf, "\xef\xbb\xbf", 3) ? 3 : 0;
    struct csv_parser p;
    if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL | CSV_EMPTY_IS_NULL)) {
        free(buf);
        return err("%s: cannot start the CSV parser", path);
    }
    size_t done = csv_parse(&p, buf + bom, len - bom, on_cell, on_row, t);
    int rc = 0;
    if (done != len - bom) {
        /* which line the parser stopped on */
        int line = 1;
        for (size_t i = 0; i < done && i < len - bom; i++) line += buf[bom + i] == '\n';
        rc = err("%s: line %d: %s", path, line, csv_strerror(csv_error(&p)));
    } else if (csv_fini(&p, on_cell, on_row, t)) {
        rc = err("%s: %s at the end of the file", path, csv_strerror(csv_error(&p)));
    }
    csv_free(&p);
    if (!rc && t->oom) rc = err("%s: out of memory", path);
    if (!rc) rc = table_check_text(path, t, buf + bom, len - bom);
    free(buf);
    if (!rc && !t->n_rows) rc = err("%s: empty (expected a header row naming the columns)", path);
    if (rc) table_release(t);
    return rc;
}

/* ===== typed cells ===== */

struct cell_ctx {
    const char *file;
    int row;        /* data row, 1-based */
    const char *id; /* the row's id, for messages */
};

static int cell_str(const struct cell_ctx *cx, const char *col, const char *v, char *out,
                    size_t size) {
    out[0] = 0;
    if (!v) return 0;
    if (strlen(v) >= size)
        return err("%s: row %d (id '%s'), column %s: longer than %zu characters", cx->file,
                   cx->row, cx->id, col, size - 1);
    snprintf(out, size, "%s", v);
    return 0;
}

static int cell_int(const struct cell_ctx *cx, const char *col, const char *v, long lo, long hi,
                    int *out, bool *present) {
    if (present) *present = false;
    if (!v) return 0;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi)
        return err("%s: row %d (id '%s'), column %s: '%s' is not an integer in [%ld, %ld]",
                   cx->file, cx->row, cx->id, col, v, lo, hi);
    *out = (int)x;
    if (present) *present = true;
    return 0;
}

static int cell_bool(const struct cell_ctx *cx, const char *col, const char *v, int *out) {
    *out = -1;
    if (!v) return 0;
    static const char *const yes[] = {"1", "true", "yes", "y"}, *const no[] = {"0", "false", "no", "n"};
    for (size_t i = 0; i < LB_ARRAY_LEN(yes); i++) {
        if (!strcasecmp(v, yes[i])) return *out = 1, 0;
        if (!strcasecmp(v, no[i])) return *out = 0, 0;
    }
    return err("%s: row %d (id '%s'), column %s: '%s' (expected 1/0, true/false or yes/no)",
               cx->file, cx->row, cx->id, col, v);
}

/* ===== header → column indexes ===== */

static int columns(const char *file, struct csv_table *t, const char *const *names, int n_names,
                   const char *const *required, int *col) {
    for (int k = 0; k < n_names; k++) col[k] = -1;
    for (int c = 0; c < t->n_cells[0]; c++) {
        const char *h = t->rows[0][c];
        if (!h) return err("%s: header column %d is empty", file, c + 1);
        int k = 0;
        while (k < n_names && strcasecmp(h, names[k])) k++;
        if (k == n_names) {
            char list[512];
            size_t n = 0;
            list[0] = 0;
            for (int i = 0; i < n_names && n < sizeof list; i++)
                n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", i ? ", " : "", names[i]);
            return err("%s: unknown column '%s' (columns are: %s)", file, h, list);
        }
        if (col[k] >= 0) return err("%s: column '%s' appears twice", file, h);
        col[k] = c;
    }
    for (const char *const *r = required; *r; r++) {
        int k = 0;
        while (strcmp(names[k], *r)) k++;
        if (col[k] < 0) return err("%s: the header has no '%s' column", file, *r);
    }
    return 0;
}

static const char *cell(const struct csv_table *t, int r, int c) {
    return c >= 0 && c < t->n_cells[r] ? t->rows[r][c] : NULL;
}

static bool comment_row(const struct csv_table *t, int r) {
    const char *first = cell(t, r, 0);
    if (first && first[0] == '#') return true;
    for (int c = 0; c < t->n_cells[r]; c++)
        if (t->rows[r][c]) return false;
    return true; /* every cell empty */
}

/* ===== models.csv ===== */

enum { MC_ID, MC_PATH, MC_TOK, MC_NAME, MC_FAMILY, MC_BASE, MC_TYPE, MC_LICENSE, MC_NOTES, MC_N };
static const char *const model_cols[MC_N] = {"id", "path", "tokenizer", "display_name", "family",
                                             "base_model", "model_type", "license", "notes"};

int csvin_models(const char *path, struct model_row **rows, int *n) {
    *rows = NULL;
    *n = 0;
    struct csv_table t;
    if (table_read(path, &t)) return -1;
    int col[MC_N], ret = -1;
    static const char *const req[] = {"id", "path", NULL};
    struct model_row *out = NULL;
    json_t *ids = json_object(); /* the ids so far: a set, so 100,000 rows take linear time */
    if (columns(path, &t, model_cols, MC_N, req, col)) goto out;
    out = xcalloc((size_t)t.n_rows, sizeof *out, "models");
    if (!out) goto out;
    int k = 0;
    for (int r = 1; r < t.n_rows; r++) {
        if (comment_row(&t, r)) continue;
        struct model_row *m = &out[k];
        const char *id = cell(&t, r, col[MC_ID]);
        char what[4400];
        snprintf(what, sizeof what, "%s: row %d, column id", path, r);
        if (pipe_id_check(id, what)) goto out;
        struct cell_ctx cx = {path, r, id};
        if (cell_str(&cx, "id", id, m->id, sizeof m->id) ||
            cell_str(&cx, "path", cell(&t, r, col[MC_PATH]), m->path, sizeof m->path) ||
            cell_str(&cx, "tokenizer", cell(&t, r, col[MC_TOK]), m->tokenizer, sizeof m->tokenizer) ||
            cell_str(&cx, "display_name", cell(&t, r, col[MC_NAME]), m->display_name,
                     sizeof m->display_name) ||
            cell_str(&cx, "family", cell(&t, r, col[MC_FAMILY]), m->family, sizeof m->family) ||
            cell_str(&cx, "base_model", cell(&t, r, col[MC_BASE]), m->base_model,
                     sizeof m->base_model) ||
            cell_str(&cx, "model_type", cell(&t, r, col[MC_TYPE]), m->model_type,
                     sizeof m->model_type) ||
            cell_str(&cx, "license", cell(&t, r, col[MC_LICENSE]), m->license, sizeof m->license) ||
            cell_str(&cx, "notes", cell(&t, r, col[MC_NOTES]), m->notes, sizeof m->notes))
            goto out;
        if (!m->path[0]) {
            err("%s: row %d (id '%s'): the path is empty", path, r, id);
            goto out;
        }
        snprintf(what, sizeof what, "%s: row %d (id '%s'), column base_model", path, r, id);
        if (m->base_model[0] && pipe_id_check(m->base_model, what)) goto out;
        if (!m->display_name[0]) snprintf(m->display_name, sizeof m->display_name, "%s", m->id);
        if (json_object_get(ids, m->id)) {
            err("%s: row %d: id '%s' appears twice", path, r, m->id);
            goto out;
        }
        json_object_set_new(ids, m->id, json_true());
        k++;
    }
    if (!k) {
        err("%s: no model rows", path);
        goto out;
    }
    *rows = out;
    *n = k;
    out = NULL;
    ret = 0;
out:
    json_decref(ids);
    free(out);
    table_release(&t);
    return ret;
}

/* ===== recipes.csv ===== */

enum {
    RC_ID, RC_ALG, RC_WDT, RC_BITS, RC_GROUP, RC_SYM, RC_DQ, RC_CDT, RC_CALIB, RC_NSAMP, RC_SEQLEN,
    RC_KNOBS, RC_N
};
static const char *const recipe_cols[RC_N] = {
    "id", "algorithm", "weight_dtype", "bits", "group_size", "sym", "double_quant",
    "compute_dtype", "calib_set", "calib_nsamples", "calib_seqlen", "knobs"};

static int recipe_row(const struct csv_table *t, int r, const int *col, const char *path,
                      struct recipe *q) {
    recipe_init(q);
    const char *id = cell(t, r, col[RC_ID]);
    char what[4400];
    snprintf(what, sizeof what, "%s: row %d, column id", path, r);
    if (pipe_id_check(id, what)) return -1;
    struct cell_ctx cx = {path, r, id};
    snprintf(q->id, sizeof q->id, "%s", id);
    const char *alg = cell(t, r, col[RC_ALG]);
    if (!alg) return err("%s: row %d (id '%s'): the algorithm is empty", path, r, id);
    if (cell_str(&cx, "algorithm", alg, q->algorithm, sizeof q->algorithm)) return -1;
    for (char *p = q->algorithm; *p; p++)
        if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
    const int m = qmethod_from_name(q->algorithm);
    q->method = m < 0 ? QMETHOD_COUNT : (enum qmethod)m;
    const char *wdt = cell(t, r, col[RC_WDT]);
    if (wdt) {
        char buf[32];
        const char *c = recipe_weight_dtype_canon(wdt, buf, sizeof buf);
        if (!c) return err("%s: row %d (id '%s'), column weight_dtype: '%s' is not a type name "
                           "(int2..int8, nf4, fp4, float16, bfloat16, float32 or a GGUF type)",
                           path, r, id, wdt);
        snprintf(q->weight_dtype, sizeof q->weight_dtype, "%s", c);
    }
    const char *bits = cell(t, r, col[RC_BITS]);
    if (bits) {
        char *end;
        q->bits = strtod(bits, &end);
        if (end == bits || *end || !(q->bits >= 0 && q->bits <= 64))
            return err("%s: row %d (id '%s'), column bits: '%s' is not a number of bits in "
                       "[0, 64]", path, r, id, bits);
    }
    if (cell_int(&cx, "group_size", cell(t, r, col[RC_GROUP]), -1, 1 << 24, &q->group_size,
                 &q->has_group_size) ||
        cell_bool(&cx, "sym", cell(t, r, col[RC_SYM]), &q->sym) ||
        cell_bool(&cx, "double_quant", cell(t, r, col[RC_DQ]), &q->double_quant) ||
        cell_str(&cx, "calib_set", cell(t, r, col[RC_CALIB]), q->calib_set, sizeof q->calib_set) ||
        cell_int(&cx, "calib_nsamples", cell(t, r, col[RC_NSAMP]), 1, 1 << 24, &q->calib_nsamples,
                 NULL) ||
        cell_int(&cx, "calib_seqlen", cell(t, r, col[RC_SEQLEN]), 1, 1 << 24, &q->calib_seqlen,
                 NULL))
        return -1;
    if (!q->has_group_size) q->group_size = -1;
    const char *cdt = cell(t, r, col[RC_CDT]);
    const char *cc = cdt ? recipe_compute_dtype_canon(cdt) : "fp32";
    if (cell_str(&cx, "compute_dtype", cc ? cc : cdt, q->compute_dtype, sizeof q->compute_dtype))
        return -1;
    const char *knobs = cell(t, r, col[RC_KNOBS]);
    if (knobs) {
        json_error_t je;
        json_t *k = json_loads(knobs, JSON_REJECT_DUPLICATES, &je);
        if (!json_is_object(k)) {
            json_decref(k);
            return err("%s: row %d (id '%s'), column knobs: not a JSON object (%s)", path, r, id,
                       je.text[0] ? je.text : "another JSON value");
        }
        char *s = json_dumps(k, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(k);
        int rc = s ? cell_str(&cx, "knobs", s, q->knobs, sizeof q->knobs) : err("out of memory");
        free(s);
        if (rc) return -1;
    }
    return 0;
}

int csvin_recipes(const char *path, struct recipe **rows, int *n) {
    *rows = NULL;
    *n = 0;
    struct csv_table t;
    if (table_read(path, &t)) return -1;
    int col[RC_N], ret = -1, k = 0;
    static const char *const req[] = {"id", "algorithm", NULL};
    struct recipe *out = NULL;
    json_t *ids = json_object(); /* the ids so far (a set) */
    if (columns(path, &t, recipe_cols, RC_N, req, col)) goto out;
    out = xcalloc((size_t)t.n_rows, sizeof *out, "recipes");
    if (!out) goto out;
    for (int r = 1; r < t.n_rows; r++) {
        if (comment_row(&t, r)) continue;
        if (recipe_row(&t, r, col, path, &out[k])) goto out;
        if (json_object_get(ids, out[k].id)) {
            err("%s: row %d: id '%s' appears twice", path, r, out[k].id);
            goto out;
        }
        json_object_set_new(ids, out[k].id, json_true());
        k++;
    }
    if (!k) {
        err("%s: no recipe rows", path);
        goto out;
    }
    *rows = out;
    *n = k;
    out = NULL;
    ret = 0;
out:
    json_decref(ids);
    free(out);
    table_release(&t);
    return ret;
}

/* ===== curve.csv (lowbit train) ===== */

enum { CC_STEP, CC_TOKENS, CC_TRAIN, CC_HELDOUT, CC_LR, CC_SECONDS, CC_N };
static const char *const curve_cols[CC_N] = {"step", "tokens", "train_loss", "heldout_loss", "lr",
                                             "seconds"};

/* a number in [lo, hi] (an integer when integer); NAN for an empty cell when optional */
static int cell_real(const char *file, int row, const char *col, const char *v, double lo,
                     double hi, bool integer, bool optional, double *out) {
    *out = NAN;
    if (!v) {
        if (optional) return 0;
        return err("%s: row %d, column %s: empty (expected a number)", file, row, col);
    }
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !isfinite(x) || x < lo || x > hi || (integer && x != floor(x)))
        return err("%s: row %d, column %s: '%s' is not %s in [%g, %g]", file, row, col, v,
                   integer ? "an integer" : "a number", lo, hi);
    *out = x;
    return 0;
}

int csvin_curve(const char *path, struct curve_row **rows, int *n) {
    *rows = NULL;
    *n = 0;
    struct csv_table t;
    if (table_read(path, &t)) return -1;
    int col[CC_N], ret = -1, k = 0;
    static const char *const req[] = {"step", "tokens", "train_loss", "heldout_loss", NULL};
    struct curve_row *out = NULL;
    if (columns(path, &t, curve_cols, CC_N, req, col)) goto out;
    out = xcalloc((size_t)t.n_rows, sizeof *out, "curve rows");
    if (!out) goto out;
    for (int r = 1; r < t.n_rows; r++) {
        if (comment_row(&t, r)) continue;
        double v[CC_N];
        static const double hi[CC_N] = {2147483647.0, 9007199254740992.0, 1e6, 1e6, 1e6, 1e12};
        for (int c = 0; c < CC_N; c++)
            if (cell_real(path, r, curve_cols[c], cell(&t, r, col[c]), c == CC_STEP ? 1 : 0, hi[c],
                          c <= CC_TOKENS, c >= CC_HELDOUT, &v[c]))
                goto out;
        struct curve_row *o = &out[k];
        o->step = (long long)v[CC_STEP];
        o->tokens = (long long)v[CC_TOKENS];
        o->train_loss = v[CC_TRAIN];
        o->heldout_loss = v[CC_HELDOUT];
        o->lr = v[CC_LR];
        o->seconds = v[CC_SECONDS];
        if (k && o->step <= out[k - 1].step) {
            err("%s: row %d, column step: %lld after %lld (steps must increase)", path, r,
                o->step, out[k - 1].step);
            goto out;
        }
        k++;
    }
    if (!k) {
        err("%s: no rows after the header", path);
        goto out;
    }
    *rows = out;
    *n = k;
    out = NULL;
    ret = 0;
out:
    free(out);
    table_release(&t);
    return ret;
}
