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

/* how many entries of dir start with prefix */
static int count_prefixed(const char *dir, const char *prefix) {
    char cmd[1200], o[300], b[32];
    snprintf(o, sizeof o, "%s/count.out", t_tmpdir());
    snprintf(cmd, sizeof cmd, "ls -a %s 2>/dev/null | grep -c '^%s' > %s", dir, prefix, o);
    if (system(cmd) < 0) return -1;
    read_into(o, b, sizeof b);
    return atoi(b);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* the data directory as an absolute path (the CSVs name the model through it) */
static const char *data_dir(void) {
    static char abs_path[4096];
    const char *d = getenv("LOWBIT_DATA");
    if (!abs_path[0] && !realpath(d && *d ? d : "../shared/data", abs_path)) abs_path[0] = 0;
    return abs_path;
}

/* a minimal lowbit result file (status ok) of model mid × recipe rid with the given scores (a
 * JSON array text) and provenance (a JSON object text); returns the key it is written under */
static const char *write_result(const char *dir, int serial, const char *mid, const char *rid,
                                const char *scores, const char *prov) {
    static char key[65];
    snprintf(key, sizeof key, "%064x", serial);
    char path[1200], cmd[1200];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", dir);
    if (system(cmd)) T_FAIL_("%s", cmd);
    snprintf(path, sizeof path, "%s/%s.json", dir, key);
    json_error_t je;
    json_t *sc = json_loads(scores, 0, &je), *pv = json_loads(prov, 0, &je);
    json_t *r = json_pack(
        "{s:s, s:i, s:s, s:s, s:s, s:n, s:n, s:{s:s, s:s, s:s}, s:{s:s, s:s, s:s, s:s}, "
        "s:{s:s}, s:o, s:[], s:o}",
        "format", "lowbit-result", "version", 1, "origin", "lowbit", "job_key", key, "status",
        "ok", "error", "log_tail", "model", "id", mid, "path", "m.gguf", "display_name", mid,
        "recipe", "id", rid, "algorithm", "fp", "weight_dtype", "float32", "compute_dtype", "fp32",
        "run", "finished_at", "2026-01-01T00:00:00Z", "scores", sc, "task_defs", "provenance",
        pv);
    T_OK(r != NULL);
    if (r && json_dump_file(r, path, JSON_INDENT(1))) T_FAIL_("cannot write %s", path);
    json_decref(r);
    return key;
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

static void test_import_ranges(void) {
    const char *u = tmp("huge.json"), *O = tmp("O3"), *db = tmp("O3/lowbit.db");
    spit(u, "{\"results\":{\"arc_easy\":{\"acc,none\":1.5e308},\"piqa\":{\"acc,none\":-5},"
            "\"boolq\":{\"acc,none\":150}},\"model_name\":\"huge\"}");
    T_EQ_INT(run("import %s --out %s", u, O), 1);
    T_CONTAINS(err_buf, "huge.json");
    T_CONTAINS(err_buf, "acc");
    T_CONTAINS(err_buf, "[0, 1]");
    T_Q(db, "SELECT count(*) FROM scores", "0");
    /* perplexity below 1, a negative standard error */
    spit(u, "{\"results\":{\"wikitext\":{\"word_perplexity,none\":0.5}},\"model_name\":\"w\"}");
    T_EQ_INT(run("import %s --out %s", u, O), 1);
    T_CONTAINS(err_buf, "word_perplexity");
    spit(u, "{\"results\":{\"piqa\":{\"acc,none\":0.5,\"acc_stderr,none\":-0.1}},\"model_name\":\"s\"}");
    T_EQ_INT(run("import %s --out %s", u, O), 1);
    T_CONTAINS(err_buf, "stderr");
    /* a result file that says the same (written by hand): collect refuses it by name */
    const char *R = tmp("O3r/results");
    write_result(R, 1, "m", "fp32", "[{\"task\": \"arc_easy\", \"metric\": \"acc\", \"value\": 150, "
                                    "\"stderr\": null, \"n\": 10}]", "{}");
    write_result(R, 2, "m2", "fp32", "[{\"task\": \"kld\", \"metric\": \"kld_mean\", \"value\": "
                                     "-0.5, \"stderr\": null, \"n\": 10}]", "{}");
    write_result(R, 3, "m3", "fp32", "[{\"task\": \"ppl\", \"metric\": \"ppl_llamacpp_ctx512\", "
                                     "\"value\": 0.25, \"stderr\": null, \"n\": 10}]", "{}");
    T_EQ_INT(run("collect --results %s --db %s", R, tmp("O3r/lowbit.db")), 1);
    T_CONTAINS(err_buf, "3 malformed");
    T_CONTAINS(err_buf, "scores[0].value");
    T_Q(tmp("O3r/lowbit.db"), "SELECT count(*) FROM scores", "0");
}

/* ===== 4. the reproduce command, whole ===== */

static void test_repro_long(void) {
    /* a legal command of ~2.5 kB: the model row written by the command, a multi-byte character
     * where the old 1024-byte buffer ended, and the job line last */
    char cmd[4096];
    int n = snprintf(cmd, sizeof cmd, "git checkout abc1234\nmake\ncat > repro-models.csv <<'EOF'\n"
                                      "id,path,notes\nm,m.gguf,\"");
    while (n < 1010) cmd[n++] = 'x';
    while (n < 2400) n += snprintf(cmd + n, sizeof cmd - (size_t)n, "\xc3\xa9\xe2\x82\xac");
    n += snprintf(cmd + n, sizeof cmd - (size_t)n,
                  "\"\nEOF\nout/lowbit job --model-id m --recipe-id fp32 --models "
                  "repro-models.csv --recipes gen/recipes.csv --tasks arc_easy --limit 4 --out out");
    json_t *prov = json_pack("{s:s}", "repro.command", cmd);
    char *pt = json_dumps(prov, 0);
    const char *R = tmp("O4/results"), *db = tmp("O4/lowbit.db"), *site = tmp("O4/site");
    write_result(R, 4, "m", "fp32", "[{\"task\": \"arc_easy\", \"metric\": \"acc\", \"value\": 0.5, "
                                    "\"stderr\": null, \"n\": 4}]", pt);
    free(pt);
    json_decref(prov);
    T_EQ_INT(run("collect --results %s --db %s", R, db), 0);
    T_EQ_INT(run("render --db %s -o %s --quiet", db, site), 0);
    char page[700];
    snprintf(page, sizeof page, "%s/runs/1.html", site);
    xmlDocPtr doc = xmlReadFile(page, NULL, XML_PARSE_NONET);
    T_OK(doc != NULL);
    bool found = false;
    for (xmlNodePtr c = doc ? xmlDocGetRootElement(doc) : NULL; c;) {
        if (c->type == XML_ELEMENT_NODE && !strcmp((const char *)c->name, "code")) {
            xmlChar *t = xmlNodeGetContent(c);
            found |= t && !strcmp((const char *)t, cmd);
            xmlFree(t);
        }
        /* depth first */
        if (c->children) c = c->children;
        else {
            while (c && !c->next) c = c->parent;
            if (c) c = c->next;
        }
    }
    T_OK(found); /* the whole command, not 1023 bytes of it */
    xmlFreeDoc(doc);
}

/* ===== 5. duplicate checks in linear time ===== */

static void test_linear_duplicates(void) {
    /* 20,000 task entries (MMLU subjects pass through import's task names) */
    const char *f = tmp("big.json");
    FILE *o = fopen(f, "w");
    if (!o) { T_FAIL_("cannot write %s", f); return; }
    fputs("{\"model_name\": \"big\", \"results\": {", o);
    for (int i = 0; i < 20000; i++)
        fprintf(o, "%s\"mmlu_s%d\": {\"acc,none\": 0.5, \"acc_stderr,none\": 0.01}", i ? ", " : "", i);
    fputs("}}\n", o);
    fclose(o);
    const char *O = tmp("O5");
    double t0 = now();
    T_EQ_INT(run("import %s --out %s --quiet", f, O), 0);
    double t_import = now() - t0;
    char results[700], db[700];
    snprintf(results, sizeof results, "%s/results", O);
    snprintf(db, sizeof db, "%s/lowbit.db", O);
    T_Q(db, "SELECT count(*) FROM scores", "20000");
    t0 = now();
    T_EQ_INT(run("collect --results %s --db %s", results, db), 0); /* unchanged: nothing to do */
    double t_collect = now() - t0;
    T_CONTAINS(err_buf, "1 unchanged");
    /* quadratic checks took 25 s and 7.5 s here; linear ones take well under a second */
    if (t_import > 5) T_FAIL_("importing 20,000 tasks took %.1f s", t_import);
    if (t_collect > 2.5) T_FAIL_("re-collecting 20,000 unchanged tasks took %.1f s", t_collect);
    /* duplicates are still found */
    const char *R = tmp("O5d/results");
    write_result(R, 5, "m", "fp32",
                 "[{\"task\": \"arc_easy\", \"metric\": \"acc\", \"value\": 0.5, \"stderr\": null, "
                 "\"n\": 4}, {\"task\": \"piqa\", \"metric\": \"acc\", \"value\": 0.5, \"stderr\": "
                 "null, \"n\": 4}, {\"task\": \"arc_easy\", \"metric\": \"acc\", \"value\": 0.25, "
                 "\"stderr\": null, \"n\": 4}]", "{}");
    T_EQ_INT(run("collect --results %s --db %s", R, tmp("O5d/lowbit.db")), 1);
    T_CONTAINS(err_buf, "scores[2]: arc_easy/acc appears twice");
}

/* ===== 6, 7. render and collect killed, or limited ===== */

static const char *big_db(void) {
    static bool made;
    const char *db = tmp("big-fixture.db");
    if (!made) {
        made = true;
        if (fixture_big(db, 40, 30)) T_FAIL_("fixture_big");
    }
    return db;
}

static void test_killed_render(void) {
    const char *db = big_db(), *dir = tmp("O6");
    char site[700], cmd[2000], pidf[700];
    snprintf(site, sizeof site, "%s/site", dir);
    snprintf(pidf, sizeof pidf, "%s/render.pid", t_tmpdir());
    mkdir(dir, 0755);
    for (int round = 0; round < 2; round++) {
        snprintf(cmd, sizeof cmd, "%s render --fixture --db %s -o %s --quiet >/dev/null 2>&1 & "
                 "echo $! > %s", bin(), db, site, pidf);
        T_EQ_INT(system(cmd), 0);
        char b[32] = "";
        read_into(pidf, b, sizeof b);
        const pid_t pid = (pid_t)atol(b);
        /* wait until it has its temporary directory, then kill it */
        for (int i = 0; i < 3000 && count_prefixed(dir, ".site.tmp") == 0; i++) usleep(2000);
        T_OK(count_prefixed(dir, ".site.tmp") > 0);
        usleep(round ? 300000 : 50000);
        kill(pid, SIGKILL);
        while (kill(pid, 0) == 0) usleep(1000);
    }
    T_OK(count_prefixed(dir, ".site.tmp") > 0); /* what the killed renders left */
    T_EQ_INT(run("render --fixture --db %s -o %s --quiet", db, site), 0);
    T_EQ_INT(count_prefixed(dir, ".site.tmp"), 0);
    T_EQ_INT(count_prefixed(dir, "site.old"), 0);
}

/* no "trap '' XFSZ" here: lowbit itself must not die of the limit */
static void test_file_size_limit(void) {
    const char *db = big_db(), *dir = tmp("O7");
    char site[700];
    snprintf(site, sizeof site, "%s/site", dir);
    mkdir(dir, 0755);
    int rc = run_with("prlimit --fsize=200000", "render --fixture --db %s -o %s --quiet", db, site);
    T_EQ_INT(rc, 1);
    T_CONTAINS(err_buf, "render: ");
    T_CONTAINS(err_buf, "File too large");
    T_EQ_INT(lines_of(err_buf), 1);
    T_EQ_INT(count_prefixed(dir, ".site.tmp"), 0);
    T_OK(access(site, F_OK) != 0);
    /* collect: a database that would grow past 16 kB */
    const char *R = tmp("O7/results"), *cdb = tmp("O7/lowbit.db");
    write_result(R, 7, "m", "fp32", "[{\"task\": \"arc_easy\", \"metric\": \"acc\", \"value\": 0.5, "
                                    "\"stderr\": null, \"n\": 4}]", "{}");
    rc = run_with("prlimit --fsize=16384", "collect --results %s --db %s --quiet", R, cdb);
    T_EQ_INT(rc, 1);
    T_CONTAINS(err_buf, "File too large");
    T_EQ_INT(lines_of(err_buf), 1);
    /* with room: the same database as if nothing had happened */
    T_EQ_INT(run("collect --results %s --db %s --quiet", R, cdb), 0);
    T_Q(cdb, "PRAGMA integrity_check", "ok");
    T_Q(cdb, "SELECT count(*) FROM scores", "1");
}

/* found by the property test below: a display name holding a Unicode noncharacter (U+FDD0, valid
 * UTF-8 and valid XML) made Cairo refuse the chart text and the whole render fail */
static void test_chart_noncharacters(void) {
    const char *R = tmp("O8/results"), *db = tmp("O8/lowbit.db"), *site = tmp("O8/site");
    /* the ten board tasks: an average, so the run is a labelled point of the size charts */
    char scores[2000];
    int n = snprintf(scores, sizeof scores, "[");
    for (int t = 0; t < 10; t++)
        n += snprintf(scores + n, sizeof scores - (size_t)n, "%s{\"task\": \"%s\", \"metric\": "
                      "\"acc\", \"value\": 0.5, \"stderr\": null, \"n\": 4}", t ? ", " : "",
                      TASKS10[t]);
    snprintf(scores + n, sizeof scores - (size_t)n, "]");
    write_result(R, 8, "m", "fp32", scores, "{}");
    char path[700], name[64];
    snprintf(path, sizeof path, "%s/%064x.json", R, 8);
    snprintf(name, sizeof name, "non\xef\xb7\x90" "char \xf0\x9f\xbf\xbe" " end");
    json_t *r = json_load_file(path, 0, NULL);
    json_object_set_new(json_object_get(r, "model"), "display_name", json_string(name));
    json_object_set_new(json_object_get(r, "run"), "artifact_bytes", json_integer(1000));
    if (json_dump_file(r, path, 0)) T_FAIL_("cannot write %s", path);
    json_decref(r);
    T_EQ_INT(run("collect --results %s --db %s --quiet", R, db), 0);
    T_EQ_INT(run("render --db %s -o %s --quiet", db, site), 0);
    T_EQ_INT(lines_of(err_buf), 0);
    char page[700];
    snprintf(page, sizeof page, "%s/index.html", site);
    char *html = slurp(page, NULL);
    T_OK(html && strstr(html, name)); /* the page keeps the characters; the chart draws U+FFFD */
    free(html);
}

/* ===== minor: model files ===== */

static void test_model_messages(void) {
    /* 7 heads over 64 dimensions: said as such, not as "head dim 0" */
    const char *g = tmp("heads7.gguf");
    struct gguf_writer *w = gguf_writer_new();
    gguf_writer_str(w, "general.architecture", "llama");
    gguf_writer_u32(w, "llama.embedding_length", 64);
    gguf_writer_u32(w, "llama.block_count", 1);
    gguf_writer_u32(w, "llama.feed_forward_length", 172);
    gguf_writer_u32(w, "llama.attention.head_count", 7);
    gguf_writer_u32(w, "llama.rope.dimension_count", 8);
    float z[64] = {0};
    const int64_t ne[1] = {64};
    gguf_writer_tensor(w, "output_norm.weight", 0, 1, ne, z, sizeof z);
    T_EQ_INT(gguf_writer_write(w, g), 0);
    gguf_writer_free(w);
    T_EQ_INT(run("info %s", g), 1);
    T_CONTAINS(err_buf, "head_count 7");
    T_OK(!strstr(err_buf, "head dim 0"));
    /* a GGUF whose magic is damaged: not called a llama2.c checkpoint */
    const char *src = T_DATA("models/stories260K.gguf");
    if (!src) return;
    size_t len = 0;
    char *data = slurp(src, &len);
    T_OK(data && len > 8);
    if (!data) return;
    data[0] = 'X';
    spit_n(tmp("badmagic.gguf"), data, len);
    free(data);
    T_EQ_INT(run("info %s", tmp("badmagic.gguf")), 1);
    T_OK(!strstr(err_buf, "llama2.c checkpoint"));
    T_CONTAINS(err_buf, "GGUF");
}


int main(void) {
    T_RUN(test_csv_text);
    T_RUN(test_import_long_name);
    T_RUN(test_import_ranges);
    T_RUN(test_repro_long);
    T_RUN(test_linear_duplicates);
    T_RUN(test_killed_render);
    T_RUN(test_file_size_limit);
    T_RUN(test_chart_noncharacters);
    T_RUN(test_model_messages);
    t_tmpdir_cleanup();
    return T_DONE();
}
