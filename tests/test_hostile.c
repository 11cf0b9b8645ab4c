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
#include <cairo.h>
#include <csv.h>
#include <fontconfig/fontconfig.h>
#include <errno.h>
#include <fcntl.h>
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
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "eval/gguf.h"
#include "gen/pipeline.h"
#include "render/render_impl.h"
#include "tests/t_cli.h"
#include "tests/render_fixture.h"

/* ===== helpers ===== */

static char out_buf[1 << 16], err_buf[1 << 16];


/* "PREFIX $LOWBIT_BIN args" into out_buf / err_buf (t_vrun) */
static int run_with(const char *prefix, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int run_with(const char *prefix, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    const int rc = t_vrun(prefix, out_buf, sizeof out_buf, err_buf, sizeof err_buf, fmt, ap);
    va_end(ap);
    return rc;
}
#define run(...) run_with("", __VA_ARGS__)


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

/* how many entries of dir start with prefix */
static int count_prefixed(const char *dir, const char *prefix) {
    char cmd[1200], o[300], b[32];
    snprintf(o, sizeof o, "%s/count.out", t_tmpdir());
    snprintf(cmd, sizeof cmd, "ls -a %s 2>/dev/null | grep -c '^%s' > %s", dir, prefix, o);
    if (system(cmd) < 0) return -1;
    t_read_into(o, b, sizeof b);
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
    const char *D = data_dir(), *r_csv = t_scratch("r.csv"), *m_csv = t_scratch("m.csv");
    char text[8192];
    spit(r_csv, "id,algorithm,weight_dtype\nfp32,fp,float32\n");
    /* the outside test's reproduction: a cp1252 'é' in notes */
    snprintf(text, sizeof text, "id,path,notes\nm,%s/models/stories260K.gguf,caf\xe9\n", D);
    spit(m_csv, text);
    const char *args = "--tasks arc_easy --limit 5";
    T_EQ_INT(run("run --models %s --recipes %s %s --out %s", m_csv, r_csv, args, t_scratch("O1")), 1);
    T_OK(!strstr(err_buf, "out of memory"));
    T_CONTAINS(err_buf, "m.csv: row 1 (id 'm'), column notes");
    T_CONTAINS(err_buf, "byte 4 of the cell");
    T_CONTAINS(err_buf, "is not UTF-8");
    T_EQ_INT(lines_of(err_buf), 1);
    T_OK(access(t_scratch("O1/results"), F_OK) != 0); /* refused before any job ran */
    /* status reads the same file the same way */
    T_EQ_INT(run("status --models %s --recipes %s %s --out %s", m_csv, r_csv, args, t_scratch("O1")), 1);
    T_CONTAINS(err_buf, "column notes");

    /* a NUL inside a cell does not cut it short in silence */
    int n = snprintf(text, sizeof text, "id,path,display_name\nm,%s/models/stories260K.gguf,ab", D);
    memcpy(text + n, "\0cd\n", 4);
    spit_n(m_csv, text, (size_t)n + 4);
    T_EQ_INT(run("status --models %s --recipes %s %s --out %s", m_csv, r_csv, args, t_scratch("O1")), 1);
    T_CONTAINS(err_buf, "column display_name");
    T_CONTAINS(err_buf, "NUL");
    /* control characters (an ANSI escape) are refused, not turned into U+FFFD later */
    snprintf(text, sizeof text, "id,path,family\nm,%s/models/stories260K.gguf,\"x\x1b[31mred\"\n", D);
    spit(m_csv, text);
    T_EQ_INT(run("status --models %s --recipes %s %s --out %s", m_csv, r_csv, args, t_scratch("O1")), 1);
    T_CONTAINS(err_buf, "column family");
    T_CONTAINS(err_buf, "U+001B");
    /* recipes.csv alike */
    snprintf(text, sizeof text, "id,path\nm,%s/models/stories260K.gguf\n", D);
    spit(m_csv, text);
    spit(t_scratch("r2.csv"), "id,algorithm,calib_set\ngptq-x,gptq,\"gro\xffups\"\n");
    T_EQ_INT(run("status --models %s --recipes %s %s --out %s", m_csv, t_scratch("r2.csv"), args,
                 t_scratch("O1")), 1);
    T_CONTAINS(err_buf, "r2.csv: row 1 (id 'gptq-x'), column calib_set");
    /* a bad base_model is named as the base_model column, not as the id */
    snprintf(text, sizeof text, "id,path,base_model\nm,%s/models/stories260K.gguf,../up\n", D);
    spit(m_csv, text);
    T_EQ_INT(run("status --models %s --recipes %s %s --out %s", m_csv, r_csv, args, t_scratch("O1")), 1);
    T_CONTAINS(err_buf, "column base_model");
    /* multi-byte text that is valid goes through */
    snprintf(text, sizeof text,
             "id,path,notes,display_name\nm,%s/models/stories260K.gguf,caf\xc3\xa9 \xf0\x9f\x98\x80,"
             "\"\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d\"\n", D);
    spit(m_csv, text);
    T_EQ_INT(run("status --models %s --recipes %s %s --out %s", m_csv, r_csv, args, t_scratch("O1")), 0);
}

/* ===== 2, 3 and `[]`: imports ===== */

static void test_import_long_name(void) {
    char name[300], text[1200];
    memset(name, 'a', 254);
    memcpy(name + 254, "\xc3\xa9", 3); /* 254 ASCII bytes + 'é' (2 bytes) + NUL */
    snprintf(text, sizeof text,
             "{\"results\": {\"arc_easy\": {\"acc,none\": 0.5}}, \"model_name\": \"%s\"}", name);
    const char *u = t_scratch("u.json"), *O = t_scratch("O2"), *db = t_scratch("O2/lowbit.db");
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
    const char *u = t_scratch("huge.json"), *O = t_scratch("O3"), *db = t_scratch("O3/lowbit.db");
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
    const char *R = t_scratch("O3r/results");
    write_result(R, 1, "m", "fp32", "[{\"task\": \"arc_easy\", \"metric\": \"acc\", \"value\": 150, "
                                    "\"stderr\": null, \"n\": 10}]", "{}");
    write_result(R, 2, "m2", "fp32", "[{\"task\": \"kld\", \"metric\": \"kld_mean\", \"value\": "
                                     "-0.5, \"stderr\": null, \"n\": 10}]", "{}");
    write_result(R, 3, "m3", "fp32", "[{\"task\": \"ppl\", \"metric\": \"ppl_llamacpp_ctx512\", "
                                     "\"value\": 0.25, \"stderr\": null, \"n\": 10}]", "{}");
    T_EQ_INT(run("collect --results %s --db %s", R, t_scratch("O3r/lowbit.db")), 1);
    T_CONTAINS(err_buf, "3 malformed");
    T_CONTAINS(err_buf, "scores[0].value");
    T_Q(t_scratch("O3r/lowbit.db"), "SELECT count(*) FROM scores", "0");
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
    const char *R = t_scratch("O4/results"), *db = t_scratch("O4/lowbit.db"), *site = t_scratch("O4/site");
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
    const char *f = t_scratch("big.json");
    FILE *o = fopen(f, "w");
    if (!o) { T_FAIL_("cannot write %s", f); return; }
    fputs("{\"model_name\": \"big\", \"results\": {", o);
    for (int i = 0; i < 20000; i++)
        fprintf(o, "%s\"mmlu_s%d\": {\"acc,none\": 0.5, \"acc_stderr,none\": 0.01}", i ? ", " : "", i);
    fputs("}}\n", o);
    fclose(o);
    const char *O = t_scratch("O5");
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
    const char *R = t_scratch("O5d/results");
    write_result(R, 5, "m", "fp32",
                 "[{\"task\": \"arc_easy\", \"metric\": \"acc\", \"value\": 0.5, \"stderr\": null, "
                 "\"n\": 4}, {\"task\": \"piqa\", \"metric\": \"acc\", \"value\": 0.5, \"stderr\": "
                 "null, \"n\": 4}, {\"task\": \"arc_easy\", \"metric\": \"acc\", \"value\": 0.25, "
                 "\"stderr\": null, \"n\": 4}]", "{}");
    T_EQ_INT(run("collect --results %s --db %s", R, t_scratch("O5d/lowbit.db")), 1);
    T_CONTAINS(err_buf, "scores[2]: arc_easy/acc appears twice");
}

/* ===== 6, 7. render and collect killed, or limited ===== */

static const char *big_db(void) {
    static bool made;
    const char *db = t_scratch("big-fixture.db");
    if (!made) {
        made = true;
        if (fixture_big(db, 40, 30)) T_FAIL_("fixture_big");
    }
    return db;
}

static void test_killed_render(void) {
    const char *db = big_db(), *dir = t_scratch("O6");
    char site[700], cmd[2000], pidf[700];
    snprintf(site, sizeof site, "%s/site", dir);
    snprintf(pidf, sizeof pidf, "%s/render.pid", t_tmpdir());
    mkdir(dir, 0755);
    for (int round = 0; round < 2; round++) {
        snprintf(cmd, sizeof cmd, "%s render --fixture --db %s -o %s --quiet >/dev/null 2>&1 & "
                 "echo $! > %s", t_bin(), db, site, pidf);
        T_EQ_INT(system(cmd), 0);
        char b[32] = "";
        t_read_into(pidf, b, sizeof b);
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
    const char *db = big_db(), *dir = t_scratch("O7");
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
    const char *R = t_scratch("O7/results"), *cdb = t_scratch("O7/lowbit.db");
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
    const char *R = t_scratch("O8/results"), *db = t_scratch("O8/lowbit.db"), *site = t_scratch("O8/site");
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

/* the same class as defect 1 where the bytes come from elsewhere than a CSV cell: a ${VAR} or
 * LOWBIT_DATA holding a Latin-1 byte (refused with the model and column), and a model file whose
 * name is not UTF-8 (lowbit ppl --json writes its name as text instead of failing to write) */
static void test_text_from_elsewhere(void) {
    const char *D = data_dir(), *m_csv = t_scratch("mv.csv"), *r_csv = t_scratch("r.csv");
    spit(r_csv, "id,algorithm,weight_dtype\nfp32,fp,float32\n");
    spit(m_csv, "id,path\nm,${LOWBIT_TEST_LATIN1}/m.gguf\n");
    setenv("LOWBIT_TEST_LATIN1", "/tmp/caf\xe9", 1);
    T_EQ_INT(run("status --models %s --recipes %s --tasks arc_easy --out %s", m_csv, r_csv,
                 t_scratch("O9")), 1);
    unsetenv("LOWBIT_TEST_LATIN1");
    T_CONTAINS(err_buf, "model 'm', column path");
    T_CONTAINS(err_buf, "0xe9 is not UTF-8");
    T_EQ_INT(lines_of(err_buf), 1);
    char text[4400];
    snprintf(text, sizeof text, "id,path\nm,%s/models/stories260K.gguf\n", D);
    spit(m_csv, text);
    T_EQ_INT(run_with("LOWBIT_DATA=/tmp/caf\xe9", "status --models %s --recipes %s --tasks "
                      "arc_easy --out %s", m_csv, r_csv, t_scratch("O9")), 1);
    T_CONTAINS(err_buf, "LOWBIT_DATA has 0xe9");
    /* a model file named in Latin-1 */
    char model[700], cmd[2000];
    snprintf(model, sizeof model, "%s/caf\xe9.gguf", t_tmpdir());
    snprintf(cmd, sizeof cmd, "cp '%s/models/stories260K.gguf' '%s'", D, model);
    T_EQ_INT(system(cmd), 0);
    spit(t_scratch("t.txt"), "Once upon a time there was a little dog. It liked to run in the park. "
                       "One day it saw a big red ball and ran after it.\n");
    T_EQ_INT(run("ppl --model '%s' --text %s --ctx 16 --chunks 1 --json %s --quiet", model,
                 t_scratch("t.txt"), t_scratch("ppl.json")), 0);
    json_t *j = json_load_file(t_scratch("ppl.json"), 0, NULL);
    T_OK(j != NULL);
    T_EQ_STR(json_string_value(json_object_get(j, "model")) ? strrchr(json_string_value(
                 json_object_get(j, "model")), '/') + 1 : NULL, "caf\xef\xbf\xbd.gguf");
    json_decref(j);
    /* an output directory longer than lowbit's path buffers: refused, not cut */
    char longdir[4000];
    memset(longdir, 'd', sizeof longdir - 1);
    longdir[sizeof longdir - 1] = 0;
    for (size_t i = 100; i < sizeof longdir - 1; i += 100) longdir[i] = '/';
    T_EQ_INT(run("collect --results %s --db %s", longdir, t_scratch("x.db")), 1);
    T_CONTAINS(err_buf, "--results: a path of 3999 bytes");
}

/* the class of defect 6 beyond render: lowbit quant's OUT.tmp.* directory of a killed run is
 * removed by the next quant of the same OUT; one a live process holds stays */
static void test_killed_quant(void) {
    const char *src = T_DATA("models/stories260K.gguf");
    if (!src) return;
    const char *dir = t_scratch("O10");
    char out[600], dead[700], live[700], cmd[2400];
    mkdir(dir, 0755);
    snprintf(out, sizeof out, "%s/q.gguf", dir);
    snprintf(dead, sizeof dead, "%s.tmp.Dead01", out);
    snprintf(live, sizeof live, "%s.tmp.Live01", out);
    snprintf(cmd, sizeof cmd, "mkdir -p %s %s && echo x > %s/model.gguf", dead, live, dead);
    T_EQ_INT(system(cmd), 0);
    const int fd = open(live, O_RDONLY | O_DIRECTORY);
    T_OK(fd >= 0 && !flock(fd, LOCK_EX));
    T_EQ_INT(run("quant --model %s --recipe fp16 -o %s --quiet", src, out), 0);
    T_OK(access(out, F_OK) == 0);
    T_OK(access(dead, F_OK) != 0); /* left by a killed quant: removed */
    T_OK(access(live, F_OK) == 0); /* held by a live one: kept */
    if (fd >= 0) close(fd);
    T_EQ_INT(count_prefixed(dir, "q.gguf.tmp.Xx"), 0);
}

/* ===== minor: model files ===== */

static void test_model_messages(void) {
    /* 7 heads over 64 dimensions: said as such, not as "head dim 0" */
    const char *g = t_scratch("heads7.gguf");
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
    spit_n(t_scratch("badmagic.gguf"), data, len);
    free(data);
    T_EQ_INT(run("info %s", t_scratch("badmagic.gguf")), 1);
    T_OK(!strstr(err_buf, "llama2.c checkpoint"));
    T_CONTAINS(err_buf, "GGUF");
}


/* ===== the property: random text through models.csv, recipes.csv and import to the site =====
 *
 * Seeded random strings (T_SEED, default 18) in every text field: ASCII with the characters that
 * matter to CSV, HTML, JSON and shells, tab and line breaks, Latin-1, C1 controls, zero-width and
 * bidi characters, a BOM, U+FFFD, noncharacters, CJK, Hebrew, combining marks, emoji; and in some
 * fields one thing that is not text (a byte that is not UTF-8, a cut sequence, an overlong form, a
 * surrogate, a NUL, a control character, U+FFFE) or a string longer than the field holds, or an
 * id that is not an id. The oracle here says, from how the string was made, whether lowbit must
 * refuse the file (and which column or member it must name) or take it; what it takes must come
 * out byte for byte: in the database, on the run and model pages (each string in an element of
 * its own), in data/leaderboard.json and in data/leaderboard.csv (with the documented apostrophe
 * before a leading = + - @ TAB CR). Everything runs in this process (csvin, plan_job, the spec
 * round trip, job_write_failed, import_file, collect_run, render_site), so an abort anywhere is a
 * crash of this test. */

static uint64_t rs;
static uint32_t rnd(void) {
    rs ^= rs >> 12, rs ^= rs << 25, rs ^= rs >> 27;
    return (uint32_t)((rs * 2685821657736338717ull) >> 32);
}
static int rn(int n) { return (int)(rnd() % (uint32_t)n); }

struct str {
    char *p;
    size_t n, cap;
};
static void sput(struct str *s, const void *d, size_t n) {
    if (s->n + n + 1 > s->cap) {
        s->cap = 2 * (s->n + n + 1) + 16;
        s->p = realloc(s->p, s->cap);
    }
    memcpy(s->p + s->n, d, n);
    s->n += n;
    s->p[s->n] = 0;
}
static void sputs(struct str *s, const char *t) { sput(s, t, strlen(t)); }
static void sput_cp(struct str *s, uint32_t cp) {
    unsigned char b[4];
    size_t n;
    if (cp < 0x80) b[0] = (unsigned char)cp, n = 1;
    else if (cp < 0x800) b[0] = (unsigned char)(0xc0 | cp >> 6), b[1] = (unsigned char)(0x80 | (cp & 0x3f)), n = 2;
    else if (cp < 0x10000)
        b[0] = (unsigned char)(0xe0 | cp >> 12), b[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f)),
        b[2] = (unsigned char)(0x80 | (cp & 0x3f)), n = 3;
    else
        b[0] = (unsigned char)(0xf0 | cp >> 18), b[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f)),
        b[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f)), b[3] = (unsigned char)(0x80 | (cp & 0x3f)), n = 4;
    sput(s, b, n);
}

/* how a string was made: text, or with one thing that is not text */
enum made { MADE_TEXT, MADE_BYTES /* not UTF-8, or a NUL */, MADE_CONTROL /* a control, U+FFFE */ };

static const uint32_t POOL[] = {
    'a', 'b', 'Z', 'q', '0', '7', ' ', ' ', '_', '.', ',', '"', '\'', '<', '>', '&', '=', '+', '-',
    '@', '#', '$', '{', '}', '\\', '/', ';', '|', '`', '!', '%', '*', '\t', '\n', '\r', 0x7f,
    0xe9, 0xa0, 0x85, 0x9f, 0x200b, 0x202e, 0x2028, 0xfeff, 0xfffd, 0xfdd0, 0x4e2d, 0x5d0, 0x301,
    0x1f600, 0x10fffd};

/* random text of 0..max code points into s (reset); with made != MADE_TEXT, one thing that is
 * not text somewhere in it */
static void gen_text(struct str *s, int max, enum made made) {
    s->n = 0;
    sput(s, "", 0);
    const int n = max ? rn(max + 1) : 0, at = n ? rn(n + 1) : 0;
    for (int i = 0; i <= n; i++) {
        if (i == at && made == MADE_BYTES) {
            static const char *const bad[] = {"\xe9", "\x80", "\xc3", "\xc0\xaf", "\xed\xa0\x80",
                                              "\xf4\x90\x80\x80", "\xff", "\xf8\x88\x80\x80\x80"};
            const int k = rn(9);
            if (k == 8) sput(s, "", 1); /* a NUL */
            else sputs(s, bad[k]);
        } else if (i == at && made == MADE_CONTROL) {
            static const uint32_t ctl[] = {0x01, 0x08, 0x0b, 0x0c, 0x1b, 0x1f, 0xfffe, 0xffff};
            sput_cp(s, ctl[rn(8)]);
        }
        if (i < n) sput_cp(s, POOL[rn((int)LB_ARRAY_LEN(POOL))]);
    }
}

/* an id: mostly letters, digits and . _ - + after a safe first character */
static void gen_id(struct str *s, const char *prefix, int k) {
    static const char ic[] = "abcXYZ019._-+";
    s->n = 0;
    char b[32];
    snprintf(b, sizeof b, "%s%03d", prefix, k);
    sputs(s, b);
    for (int i = rn(8); i > 0; i--) sput(s, &ic[rn((int)sizeof ic - 1)], 1);
}

/* the rule of an id, written here again: 1..127 of [A-Za-z0-9._+-], not first . or - */
static bool is_id(const char *s, size_t n) {
    if (!n || n > 127 || s[0] == '.' || s[0] == '-') return false;
    for (size_t i = 0; i < n; i++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+-", s[i]) || !s[i])
            return false;
    return true;
}

/* a cut at a character boundary, written here again */
static size_t cut_at(const char *s, size_t n, size_t max) {
    if (n <= max) return n;
    while (max > 0 && ((unsigned char)s[max] & 0xc0) == 0x80) max--;
    return max;
}

static void csv_cell_out(struct str *o, const struct str *v) {
    sput(o, "\"", 1);
    for (size_t i = 0; i < v->n; i++) sput(o, v->p[i] == '"' ? "\"\"" : &v->p[i], 1 + (v->p[i] == '"'));
    sput(o, "\"", 1);
}

/* a shuffled order of n columns */
static void shuffle(int *o, int n) {
    for (int i = 0; i < n; i++) o[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = rn(i + 1), t = o[i];
        o[i] = o[j], o[j] = t;
    }
}

/* what a case expects: refused with a message holding `want` (and "row 1" for a CSV), or taken */
struct expect {
    bool refuse;
    char want[160];
};

enum { MF_ID, MF_PATH, MF_TOK, MF_NAME, MF_FAMILY, MF_BASE, MF_TYPE, MF_LICENSE, MF_NOTES, MF_N };
static const char *const MF[MF_N] = {"id", "path", "tokenizer", "display_name", "family",
                                      "base_model", "model_type", "license", "notes"};
enum { RF_ID, RF_ALG, RF_WDT, RF_CDT, RF_CALIB, RF_KNOBS, RF_N };
static const char *const RF[RF_N] = {"id", "algorithm", "weight_dtype", "compute_dtype",
                                      "calib_set", "knobs"};

struct pcase {
    int k;
    bool taken, ok_run;
    struct str m[MF_N], r[RF_N];
    char knob_value_json[1200]; /* the knobs cell's expected stored form */
    char error[2200];           /* the failed result's error (first line) */
};

/* every text of the elements of a page, for lookups */
struct texts {
    char **v;
    int n, cap;
};
static void texts_walk(xmlNodePtr n, struct texts *t) {
    for (; n; n = n->next) {
        if (n->type != XML_ELEMENT_NODE) continue;
        xmlChar *c = xmlNodeGetContent(n);
        if (t->n == t->cap) t->v = realloc(t->v, (size_t)(t->cap = 2 * t->cap + 64) * sizeof *t->v);
        t->v[t->n++] = strdup(c ? (const char *)c : "");
        xmlFree(c);
        texts_walk(n->children, t);
    }
}
static bool texts_load(const char *path, struct texts *t) {
    memset(t, 0, sizeof *t);
    xmlDocPtr doc = xmlReadFile(path, NULL, XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (!doc) return false;
    texts_walk(xmlDocGetRootElement(doc), t);
    xmlFreeDoc(doc);
    return true;
}
static bool texts_has(const struct texts *t, const char *want) {
    for (int i = 0; i < t->n; i++)
        if (!strcmp(t->v[i], want)) return true;
    return false;
}
static void texts_free(struct texts *t) {
    for (int i = 0; i < t->n; i++) free(t->v[i]);
    free(t->v);
}

/* leaderboard.csv as rows of cells */
struct csvrows {
    char ***rows;
    int *n_cells, n_rows, cap;
    char **cur;
    int n_cur;
};
static void pcsv_cell(void *s, size_t len, void *data) {
    struct csvrows *c = data;
    c->cur = realloc(c->cur, (size_t)(c->n_cur + 1) * sizeof *c->cur);
    c->cur[c->n_cur] = malloc(len + 1);
    memcpy(c->cur[c->n_cur], s ? s : "", len);
    c->cur[c->n_cur++][len] = 0;
}
static void pcsv_row(int ch, void *data) {
    (void)ch;
    struct csvrows *c = data;
    if (c->n_rows == c->cap) {
        c->cap = 2 * c->cap + 64;
        c->rows = realloc(c->rows, (size_t)c->cap * sizeof *c->rows);
        c->n_cells = realloc(c->n_cells, (size_t)c->cap * sizeof *c->n_cells);
    }
    c->rows[c->n_rows] = c->cur;
    c->n_cells[c->n_rows++] = c->n_cur;
    c->cur = NULL;
    c->n_cur = 0;
}

/* "'" + v when a spreadsheet would read v as a formula (datasets.c's documented rule) */
static const char *csv_expected(const char *v, char *buf, size_t n) {
    if (*v == '=' || *v == '+' || *v == '-' || *v == '@' || *v == '\t' || *v == '\r')
        snprintf(buf, n, "'%s", v);
    else
        snprintf(buf, n, "%s", v);
    return buf;
}

static int col_of(const struct csvrows *c, const char *name) {
    for (int k = 0; c->n_rows && k < c->n_cells[0]; k++)
        if (!strcmp(c->rows[0][k], name)) return k;
    return -1;
}

/* the expectation for a models.csv row, from how its cells were made */
static void expect_model(const struct str *m, const enum made *made, const int *order,
                         struct expect *e) {
    e->refuse = true;
    for (int c = 0; c < MF_N; c++)
        if (made[order[c]] != MADE_TEXT) {
            snprintf(e->want, sizeof e->want, "column %s: byte", MF[order[c]]);
            return;
        }
    if (m[order[0]].n && m[order[0]].p[0] == '#') { /* the row's first cell: a comment */
        snprintf(e->want, sizeof e->want, "no model rows");
        return;
    }
    if (!is_id(m[MF_ID].p, m[MF_ID].n)) {
        snprintf(e->want, sizeof e->want, "row 1, column id: ");
        return;
    }
    static const size_t cap[MF_N] = {128, 4096, 4096, 256, 64, 128, 32, 64, 1024};
    for (int f = 0; f < MF_N; f++)
        if (m[f].n >= cap[f]) {
            snprintf(e->want, sizeof e->want, "column %s: longer than", MF[f]);
            return;
        }
    if (!m[MF_PATH].n) {
        snprintf(e->want, sizeof e->want, "the path is empty");
        return;
    }
    if (m[MF_BASE].n && !is_id(m[MF_BASE].p, m[MF_BASE].n)) {
        snprintf(e->want, sizeof e->want, "column base_model: id");
        return;
    }
    e->refuse = false;
}

static void expect_recipe(const struct str *r, const enum made *made, const int *order,
                          struct expect *e) {
    e->refuse = true;
    for (int c = 0; c < RF_N; c++)
        if (made[order[c]] != MADE_TEXT) {
            snprintf(e->want, sizeof e->want, "column %s: byte", RF[order[c]]);
            return;
        }
    if (r[order[0]].n && r[order[0]].p[0] == '#') {
        snprintf(e->want, sizeof e->want, "no recipe rows");
        return;
    }
    if (!is_id(r[RF_ID].p, r[RF_ID].n)) {
        snprintf(e->want, sizeof e->want, "row 1, column id: ");
        return;
    }
    if (!r[RF_ALG].n) {
        snprintf(e->want, sizeof e->want, "the algorithm is empty");
        return;
    }
    if (r[RF_ALG].n >= 32) {
        snprintf(e->want, sizeof e->want, "column algorithm: longer than");
        return;
    }
    if (r[RF_WDT].n && strcmp(r[RF_WDT].p, "int4") && strcmp(r[RF_WDT].p, "float16")) {
        snprintf(e->want, sizeof e->want, "column weight_dtype");
        return;
    }
    if (r[RF_CALIB].n >= 256) {
        snprintf(e->want, sizeof e->want, "column calib_set: longer than");
        return;
    }
    if (r[RF_CDT].n && !recipe_compute_dtype_canon(r[RF_CDT].p) && r[RF_CDT].n >= 16) {
        snprintf(e->want, sizeof e->want, "column compute_dtype: longer than");
        return;
    }
    e->refuse = false;
}

/* the cell as the database holds it: NULL for an empty optional one */
static const char *or_null(const struct str *s) { return s->n ? s->p : NULL; }

/* one value of a query with text parameters (owned; NULL for SQL NULL or no row) */
static char *q1p(sqlite3 *db, const char *sql, const char *a, const char *b) {
    sqlite3_stmt *st = NULL;
    char *r = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, a, -1, SQLITE_TRANSIENT);
        if (b) sqlite3_bind_text(st, 2, b, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
            r = strdup((const char *)sqlite3_column_text(st, 0));
    }
    sqlite3_finalize(st);
    return r;
}
#define T_DB(db, sql, a, b, want)                                                                  \
    do {                                                                                           \
        char *v_ = q1p(db, sql, a, b);                                                             \
        const char *w_ = (want);                                                                   \
        if (w_ ? !v_ || strcmp(v_, w_) : v_ != NULL)                                               \
            T_FAIL_("case %d: %s: got \"%s\", want \"%s\"", pc->k, sql, v_ ? v_ : "(null)",       \
                    w_ ? w_ : "(null)");                                                           \
        free(v_);                                                                                  \
    } while (0)

/* one CSV case: write the files, read them, and when taken, make the job's result file */
static void csv_case(struct pcase *pc, const char *dir, const struct eval_spec *ev) {
    enum made mm[MF_N] = {0}, rm[RF_N] = {0};
    memset(pc->m, 0, sizeof pc->m);
    memset(pc->r, 0, sizeof pc->r);
    const int mode = rn(100); /* < 55: all text; else one field made bad, long or not an id */
    const int bad_field = rn(MF_N + RF_N);
    for (int f = 0; f < MF_N; f++) {
        const bool here = mode >= 55 && bad_field == f;
        const enum made made = here && mode < 85 ? (rn(2) ? MADE_BYTES : MADE_CONTROL) : MADE_TEXT;
        mm[f] = made;
        if (f == MF_ID && !(here && mode >= 85)) gen_id(&pc->m[f], "p", pc->k);
        else if (f == MF_BASE && !here) pc->m[f].n = 0, sput(&pc->m[f], "", 0);
        else gen_text(&pc->m[f], here && mode >= 92 ? 1200 : f == MF_TYPE ? 6 : 24, made);
        if (f == MF_ID && made != MADE_TEXT) {
            struct str t = {0};
            gen_text(&t, 6, made); /* an id with one thing that is not text in it */
            gen_id(&pc->m[f], "p", pc->k);
            sput(&pc->m[f], t.p, t.n);
            free(t.p);
        }
    }
    for (int f = 0; f < RF_N; f++) {
        const bool here = mode >= 55 && bad_field == MF_N + f;
        const enum made made = here && mode < 85 && f != RF_WDT && f != RF_KNOBS
                                   ? (rn(2) ? MADE_BYTES : MADE_CONTROL) : MADE_TEXT;
        rm[f] = made;
        struct str *v = &pc->r[f];
        if (f == RF_ID) {
            gen_id(v, "r", pc->k);
            if (made != MADE_TEXT || (here && mode >= 85)) {
                struct str t = {0};
                gen_text(&t, 6, made);
                sput(v, t.p, t.n);
                free(t.p);
            }
        } else if (f == RF_WDT) {
            static const char *const w[] = {"", "", "int4", "float16"};
            v->n = 0;
            sputs(v, here ? "not a type!" : w[rn(4)]);
        } else if (f == RF_KNOBS) {
            v->n = 0;
            sput(v, "", 0);
            pc->knob_value_json[0] = 0;
            if (rn(3) == 0) { /* a JSON object holding a random string */
                struct str t = {0};
                gen_text(&t, 16, MADE_TEXT);
                json_t *o = json_pack("{s:s%, s:i}", "note", t.p, t.n, "n", rn(9));
                char *a = json_dumps(o, 0), *b = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
                sputs(v, a);
                snprintf(pc->knob_value_json, sizeof pc->knob_value_json, "%s", b);
                free(a), free(b), free(t.p);
                json_decref(o);
            }
        } else {
            gen_text(v, here && mode >= 92 ? 300 : (f == RF_CDT ? 6 : 16), made);
            if (f == RF_ALG && !v->n) sputs(v, "x"); /* (empty is refused: tested elsewhere) */
        }
    }
    int mo[MF_N], ro[RF_N];
    shuffle(mo, MF_N);
    shuffle(ro, RF_N);
    struct str csv = {0};
    for (int c = 0; c < MF_N; c++) sputs(&csv, c ? "," : ""), sputs(&csv, MF[mo[c]]);
    sputs(&csv, "\n");
    for (int c = 0; c < MF_N; c++) sputs(&csv, c ? "," : ""), csv_cell_out(&csv, &pc->m[mo[c]]);
    sputs(&csv, "\n");
    char mpath[600], rpath[600];
    snprintf(mpath, sizeof mpath, "%s/m%03d.csv", dir, pc->k);
    snprintf(rpath, sizeof rpath, "%s/r%03d.csv", dir, pc->k);
    spit_n(mpath, csv.p, csv.n);
    csv.n = 0;
    for (int c = 0; c < RF_N; c++) sputs(&csv, c ? "," : ""), sputs(&csv, RF[ro[c]]);
    sputs(&csv, "\n");
    for (int c = 0; c < RF_N; c++) sputs(&csv, c ? "," : ""), csv_cell_out(&csv, &pc->r[ro[c]]);
    sputs(&csv, "\n");
    spit_n(rpath, csv.p, csv.n);
    free(csv.p);

    struct expect em, er;
    expect_model(pc->m, mm, mo, &em);
    expect_recipe(pc->r, rm, ro, &er);
    struct model_row *rows = NULL;
    struct recipe *recs = NULL;
    int nm = 0, nr = 0;
    const int rc_m = csvin_models(mpath, &rows, &nm);
    char msg_m[1100];
    snprintf(msg_m, sizeof msg_m, "%s", err_last());
    const int rc_r = csvin_recipes(rpath, &recs, &nr);
    if (em.refuse != (rc_m != 0))
        T_FAIL_("case %d: models.csv %s, expected %s (%s)", pc->k, rc_m ? "refused" : "taken",
                em.refuse ? "a refusal" : "it taken", rc_m ? msg_m : em.want);
    else if (em.refuse && (!strstr(msg_m, mpath) || !strstr(msg_m, em.want)))
        T_FAIL_("case %d: the refusal \"%s\" does not say \"%s\"", pc->k, msg_m, em.want);
    if (er.refuse != (rc_r != 0))
        T_FAIL_("case %d: recipes.csv %s, expected %s (%s)", pc->k, rc_r ? "refused" : "taken",
                er.refuse ? "a refusal" : "it taken", rc_r ? err_last() : er.want);
    else if (er.refuse && (!strstr(err_last(), rpath) || !strstr(err_last(), er.want)))
        T_FAIL_("case %d: the refusal \"%s\" does not say \"%s\"", pc->k, err_last(), er.want);
    pc->taken = !rc_m && !rc_r;
    if (!pc->taken) goto out;
    /* the job, through its spec file's JSON as `lowbit job --spec` reads it */
    struct job j, j2;
    const bool dollar = strstr(pc->m[MF_PATH].p, "${") || strstr(pc->m[MF_TOK].p, "${");
    if (plan_job(&j, &rows[0], &recs[0], ev, NULL)) {
        pc->taken = false;
        if (!dollar || !strstr(err_last(), "model '"))
            T_FAIL_("case %d: plan_job: %s", pc->k, err_last());
        goto out;
    }
    json_t *spec = job_to_json(&j);
    char *spec_text = spec ? json_dumps(spec, JSON_SORT_KEYS) : NULL;
    json_decref(spec);
    json_t *back = spec_text ? json_loads(spec_text, 0, NULL) : NULL;
    T_OK(spec_text && back && !job_from_json(&j2, back, "spec"));
    free(spec_text);
    json_decref(back);
    if (!back) {
        pc->taken = false;
        goto out;
    }
    /* the failed result of the job; every other one made an ok run (scores, size) */
    struct str e = {0};
    sputs(&e, "test failure: ");
    sput(&e, pc->m[MF_NOTES].p, pc->m[MF_NOTES].n);
    snprintf(pc->error, sizeof pc->error, "%.*s", (int)strcspn(e.p, "\n"), e.p);
    T_EQ_INT(job_write_failed(dir, &j2, e.p, NULL, NULL, PIPE_FAIL_INPUT), 0);
    free(e.p);
    pc->ok_run = pc->k % 2 == 0;
    if (pc->ok_run) {
        char res[700];
        pipe_path(res, sizeof res, dir, "results", j2.key, ".json");
        json_t *r = json_load_file(res, 0, NULL);
        json_object_set_new(r, "status", json_string("ok"));
        json_object_set_new(r, "error", json_null());
        json_object_set_new(r, "log_tail", json_null());
        json_object_del(r, "failure");
        json_object_set_new(r, "scores", json_pack("[{s:s, s:s, s:f, s:f, s:i}]", "task",
                                                   "arc_easy", "metric", "acc", "value", 0.5,
                                                   "stderr", 0.1, "n", 4));
        json_t *run = json_object_get(r, "run");
        json_object_set_new(run, "bits_per_weight", json_real(4.5));
        json_object_set_new(run, "artifact_bytes", json_integer(1000));
        T_EQ_INT(pipe_write_json(res, r), 0);
        json_decref(r);
    }
out:
    free(rows);
    free(recs);
}

/* an lm-eval results file with random text in its strings (written by hand: raw bytes stay
 * raw, control characters become \u escapes as JSON allows them) */
struct icase {
    int k;
    bool taken;
    struct str name, args, version, dpath, dname;
};
static void json_str_out(struct str *o, const struct str *v) {
    sput(o, "\"", 1);
    for (size_t i = 0; i < v->n; i++) {
        const unsigned char c = (unsigned char)v->p[i];
        char b[8];
        if (c == '"' || c == '\\') b[0] = '\\', b[1] = (char)c, sput(o, b, 2);
        else if (c < 0x20) snprintf(b, sizeof b, "\\u%04x", c), sputs(o, b);
        else sput(o, &v->p[i], 1);
    }
    sput(o, "\"", 1);
}

static void import_case(struct icase *ic, const char *dir) {
    struct str *f[5] = {&ic->name, &ic->args, &ic->version, &ic->dpath, &ic->dname};
    enum made made[5] = {0};
    const int mode = rn(100), bad = rn(5);
    for (int i = 0; i < 5; i++) {
        made[i] = mode >= 60 && bad == i ? (rn(2) ? MADE_BYTES : MADE_CONTROL) : MADE_TEXT;
        gen_text(f[i], i == 0 && mode >= 50 && mode < 60 ? 300 : 20, made[i]);
    }
    if (!ic->name.n || ic->name.p[0] == 0) {
        ic->name.n = 0;
        sputs(&ic->name, "n");
        if (made[0] == MADE_BYTES) sputs(&ic->name, "\xff");
    }
    struct str js = {0};
    sputs(&js, "{\"results\": {\"arc_easy\": {\"acc,none\": 0.5, \"acc_stderr,none\": 0.01}}, "
               "\"n-samples\": {\"arc_easy\": {\"original\": 100, \"effective\": 10}}, "
               "\"configs\": {\"arc_easy\": {\"dataset_path\": ");
    json_str_out(&js, &ic->dpath);
    sputs(&js, ", \"dataset_name\": ");
    json_str_out(&js, &ic->dname);
    sputs(&js, "}}, \"config\": {\"model_args\": ");
    json_str_out(&js, &ic->args);
    sputs(&js, "}, \"lm_eval_version\": ");
    json_str_out(&js, &ic->version);
    sputs(&js, ", \"model_name\": ");
    json_str_out(&js, &ic->name);
    sputs(&js, "}\n");
    char path[600], id[32];
    snprintf(path, sizeof path, "%s/imp%03d.json", dir, ic->k);
    snprintf(id, sizeof id, "imp%03d", ic->k);
    spit_n(path, js.p, js.n);
    free(js.p);
    /* the oracle: raw bytes that are not UTF-8 (or a \u0000) are not JSON; a control character
     * is refused at the first member (validation order) holding it */
    const char *want = NULL;
    for (int i = 0; i < 5 && !want; i++)
        if (made[i] == MADE_BYTES) want = "not JSON (line";
    static const char *const member[5] = {"model.path", "provenance.import.model_args",
                                          "run.code_version", "task_defs[0].dataset_file",
                                          "task_defs[0].dataset_file"};
    static const int order[5] = {0, 2, 3, 4, 1}; /* model, run, task_defs, provenance */
    for (int k = 0; k < 5 && !want; k++)
        if (made[order[k]] == MADE_CONTROL) want = member[order[k]];
    const struct import_opts o = {.model_id = id, .out_dir = dir, .quiet = true};
    char key[65];
    const int rc = import_file(path, &o, key);
    if (!want != !rc)
        T_FAIL_("import case %d: %s, expected %s (%s)", ic->k, rc ? "refused" : "taken",
                want ? "a refusal" : "it taken", rc ? err_last() : want);
    else if (want && (!strstr(err_last(), path) || !strstr(err_last(), want)))
        T_FAIL_("import case %d: the refusal \"%s\" does not say \"%s\"", ic->k, err_last(), want);
    ic->taken = !rc;
}

static void test_property_text(void) {
    const char *seed = getenv("T_SEED");
    rs = 0x9e3779b97f4a7c15ull * (uint64_t)(seed ? atoll(seed) : 18) + 1;
    const int n_csv = T_SANITIZED ? 40 : 160, n_imp = T_SANITIZED ? 20 : 60;
    const char *dir = t_scratch("prop");
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf %s && mkdir -p %s", dir, dir);
    T_EQ_INT(system(cmd), 0);
    struct eval_spec ev;
    plan_eval_default(&ev, false);
    plan_eval_tasks(&ev, "arc_easy");
    plan_eval_limit(&ev, 1);
    if (plan_eval_hash(&ev)) {
        T_FAIL_("task data: %s", err_last());
        return;
    }
    err_set_quiet(true);
    struct pcase *pcs = calloc((size_t)n_csv, sizeof *pcs);
    struct icase *ics = calloc((size_t)n_imp, sizeof *ics);
    int taken = 0, refused = 0;
    for (int k = 0; k < n_csv; k++) {
        pcs[k].k = k;
        csv_case(&pcs[k], dir, &ev);
        taken += pcs[k].taken;
        refused += !pcs[k].taken;
    }
    for (int k = 0; k < n_imp; k++) {
        ics[k].k = k;
        import_case(&ics[k], dir);
        taken += ics[k].taken;
        refused += !ics[k].taken;
    }
    /* both outcomes happen often enough for the property to mean something */
    if (taken < (n_csv + n_imp) / 4 || refused < (n_csv + n_imp) / 8)
        T_FAIL_("%d cases taken, %d refused: the generator is off", taken, refused);
    char results[700], dbp[700], site[700];
    snprintf(results, sizeof results, "%s/results", dir);
    snprintf(dbp, sizeof dbp, "%s/lowbit.db", dir);
    snprintf(site, sizeof site, "%s/site", dir);
    struct collect_opts co = {.results_dir = results, .db_path = dbp, .quiet = true};
    struct collect_stats cst;
    if (collect_run(&co, &cst)) T_FAIL_("collect: %s", err_last());
    T_EQ_INT(cst.malformed, 0);
    const struct render_opts ro = {.db_path = dbp, .out_dir = site, .templates_dir = "templates",
                                   .quiet = true};
    if (render_site(&ro, NULL)) T_FAIL_("render: %s", err_last());
    err_set_quiet(false);

    /* ---- every taken string, byte for byte, everywhere it is shown ---- */
    sqlite3 *db = NULL;
    T_OK(sqlite3_open_v2(dbp, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK);
    struct lb_data d;
    T_OK(!lb_data_load(&d, db));
    char p[1200];
    snprintf(p, sizeof p, "%s/data/leaderboard.json", site);
    json_t *lj = json_load_file(p, 0, NULL);
    T_OK(lj != NULL);
    snprintf(p, sizeof p, "%s/data/leaderboard.csv", site);
    size_t clen = 0;
    char *ctext = slurp(p, &clen);
    struct csvrows cr = {0};
    struct csv_parser cp;
    csv_init(&cp, CSV_STRICT | CSV_STRICT_FINI);
    T_EQ_INT(csv_parse(&cp, ctext ? ctext : "", clen, pcsv_cell, pcsv_row, &cr), clen);
    csv_fini(&cp, pcsv_cell, pcsv_row, &cr);
    csv_free(&cp);
    free(ctext);
    const int c_mid = col_of(&cr, "model_id"), c_rid = col_of(&cr, "recipe_id"),
              c_model = col_of(&cr, "model"), c_family = col_of(&cr, "family"),
              c_type = col_of(&cr, "model_type"), c_alg = col_of(&cr, "algorithm"),
              c_cdt = col_of(&cr, "compute_dtype"), c_err = col_of(&cr, "error"),
              c_base = col_of(&cr, "base_model"), c_code = col_of(&cr, "code_version");
    T_OK(c_mid >= 0 && c_rid >= 0 && c_model >= 0 && c_err >= 0 && c_code >= 0);
    int checked = 0;
    for (int k = 0; k < n_csv; k++) {
        struct pcase *pc = &pcs[k];
        if (!pc->taken) continue;
        const char *mid = pc->m[MF_ID].p, *rid = pc->r[RF_ID].p;
        const char *disp = pc->m[MF_NAME].n ? pc->m[MF_NAME].p : mid;
        char alg[64];
        snprintf(alg, sizeof alg, "%s", pc->r[RF_ALG].p);
        for (char *c = alg; *c; c++)
            if (*c >= 'A' && *c <= 'Z') *c = (char)(*c - 'A' + 'a');
        const char *cdt = !pc->r[RF_CDT].n ? "fp32"
                          : recipe_compute_dtype_canon(pc->r[RF_CDT].p) ? recipe_compute_dtype_canon(pc->r[RF_CDT].p)
                                                                        : pc->r[RF_CDT].p;
        /* the database */
        T_DB(db, "SELECT display_name FROM models WHERE id = ?", mid, NULL, disp);
        T_DB(db, "SELECT path FROM models WHERE id = ?", mid, NULL, pc->m[MF_PATH].p);
        for (int f = MF_TOK; f < MF_N; f++) {
            if (f == MF_NAME) continue;
            char sql[96];
            snprintf(sql, sizeof sql, "SELECT %s FROM models WHERE id = ?", MF[f]);
            T_DB(db, sql, mid, NULL, or_null(&pc->m[f]));
        }
        T_DB(db, "SELECT algorithm FROM recipes WHERE id = ?", rid, NULL, alg);
        T_DB(db, "SELECT compute_dtype FROM recipes WHERE id = ?", rid, NULL, cdt);
        T_DB(db, "SELECT calib_set FROM recipes WHERE id = ?", rid, NULL, or_null(&pc->r[RF_CALIB]));
        T_DB(db, "SELECT knobs FROM recipes WHERE id = ?", rid, NULL,
             pc->knob_value_json[0] ? pc->knob_value_json : NULL);
        T_DB(db, "SELECT error FROM runs WHERE model_id = ?1 AND recipe_id = ?2", mid, rid,
             pc->ok_run ? NULL : pc->error);
        char *run_id = q1p(db, "SELECT id FROM runs WHERE model_id = ?1 AND recipe_id = ?2", mid, rid);
        T_OK(run_id != NULL);
        if (!run_id) continue;
        /* the run page: each string in an element of its own */
        struct texts t;
        snprintf(p, sizeof p, "%s/runs/%s.html", site, run_id);
        T_OK(texts_load(p, &t));
        const char *want_run[] = {mid, rid, disp, pc->m[MF_PATH].p, or_null(&pc->m[MF_TOK]), alg,
                                  cdt, or_null(&pc->r[RF_CALIB]),
                                  pc->knob_value_json[0] ? pc->knob_value_json : NULL,
                                  pc->ok_run ? NULL : pc->error};
        for (size_t i = 0; i < LB_ARRAY_LEN(want_run); i++)
            if (want_run[i] && !texts_has(&t, want_run[i]))
                T_FAIL_("case %d: runs/%s.html does not show \"%s\"", k, run_id, want_run[i]);
        texts_free(&t);
        /* the model page (of a base model: its own row's facts) */
        if (!pc->m[MF_BASE].n) {
            const char *slug = NULL;
            for (int g = 0; g < d.n_groups; g++)
                if (!strcmp(d.groups[g].key, mid)) slug = d.groups[g].slug;
            T_OK(slug != NULL);
            snprintf(p, sizeof p, "%s/models/%s.html", site, slug ? slug : "none");
            T_OK(texts_load(p, &t));
            const char *want_model[] = {disp, or_null(&pc->m[MF_FAMILY]), or_null(&pc->m[MF_TYPE]),
                                        or_null(&pc->m[MF_LICENSE]), or_null(&pc->m[MF_NOTES])};
            for (size_t i = 0; i < LB_ARRAY_LEN(want_model); i++)
                if (want_model[i] && !texts_has(&t, want_model[i]))
                    T_FAIL_("case %d: models/%s.html does not show \"%s\"", k, slug, want_model[i]);
            texts_free(&t);
        }
        /* leaderboard.json */
        size_t i;
        json_t *row, *mine = NULL;
        json_array_foreach(json_object_get(lj, "rows"), i, row)
            if (!strcmp(json_string_value(json_object_get(row, "model_id")), mid) &&
                !strcmp(json_string_value(json_object_get(row, "recipe_id")), rid))
                mine = row;
        T_OK(mine != NULL);
        const char *jwant[][2] = {{"model", disp}, {"family", or_null(&pc->m[MF_FAMILY])},
                                  {"model_type", or_null(&pc->m[MF_TYPE])}, {"algorithm", alg},
                                  {"compute_dtype", cdt},
                                  {"base_model", pc->m[MF_BASE].n ? pc->m[MF_BASE].p : mid},
                                  {"error", pc->ok_run ? NULL : pc->error}};
        for (size_t w = 0; mine && w < LB_ARRAY_LEN(jwant); w++) {
            const char *got = json_string_value(json_object_get(mine, jwant[w][0]));
            if (jwant[w][1] ? !got || strcmp(got, jwant[w][1]) : got != NULL)
                T_FAIL_("case %d: leaderboard.json %s: \"%s\", want \"%s\"", k, jwant[w][0],
                        got ? got : "(null)", jwant[w][1] ? jwant[w][1] : "(null)");
        }
        /* leaderboard.csv */
        int crow = -1;
        for (int r = 1; r < cr.n_rows; r++) {
            char b1[300], b2[300];
            if (!strcmp(cr.rows[r][c_mid], csv_expected(mid, b1, sizeof b1)) &&
                !strcmp(cr.rows[r][c_rid], csv_expected(rid, b2, sizeof b2)))
                crow = r;
        }
        T_OK(crow > 0);
        const int ccols[] = {c_model, c_family, c_type, c_alg, c_cdt, c_base, c_err};
        for (size_t w = 0; crow > 0 && w < LB_ARRAY_LEN(ccols); w++) {
            static char b[4200];
            const char *want = csv_expected(jwant[w][1] ? jwant[w][1] : "", b, sizeof b);
            if (ccols[w] < 0 || strcmp(cr.rows[crow][ccols[w]], want))
                T_FAIL_("case %d: leaderboard.csv %s: \"%s\", want \"%s\"", k, jwant[w][0],
                        ccols[w] < 0 ? "?" : cr.rows[crow][ccols[w]], want);
        }
        free(run_id);
        checked++;
    }
    for (int k = 0; k < n_imp; k++) {
        struct icase *ic = &ics[k];
        if (!ic->taken) continue;
        char id[32], disp[400], version[200], file[200];
        snprintf(id, sizeof id, "imp%03d", k);
        snprintf(disp, sizeof disp, "%.*s", (int)cut_at(ic->name.p, ic->name.n, 255), ic->name.p);
        snprintf(version, sizeof version, "lm-eval %s", ic->version.n ? ic->version.p : "");
        snprintf(file, sizeof file, "%s/%s", ic->dpath.n ? ic->dpath.p : "", ic->dname.p);
        const struct pcase *pc = &(struct pcase){.k = 1000 + k};
        T_DB(db, "SELECT display_name FROM models WHERE id = ?", id, NULL, disp);
        T_DB(db, "SELECT path FROM models WHERE id = ?", id, NULL, ic->name.p);
        T_DB(db, "SELECT code_version FROM runs WHERE model_id = ?", id, NULL, version);
        T_DB(db, "SELECT p.value FROM provenance p JOIN runs r ON r.id = p.run_id WHERE "
                 "r.model_id = ? AND p.key = 'import.model_args'", id, NULL, ic->args.p);
        T_DB(db, "SELECT p.value FROM provenance p JOIN runs r ON r.id = p.run_id WHERE "
                 "r.model_id = ? AND p.key = 'import.lm_eval_version'", id, NULL, ic->version.p);
        T_DB(db, "SELECT t.dataset_file FROM task_defs t JOIN runs r ON r.id = t.run_id WHERE "
                 "r.model_id = ?", id, NULL, file);
        char *run_id = q1p(db, "SELECT id FROM runs WHERE model_id = ?", id, NULL);
        T_OK(run_id != NULL);
        if (!run_id) continue;
        struct texts t;
        snprintf(p, sizeof p, "%s/runs/%s.html", site, run_id);
        T_OK(texts_load(p, &t));
        const char *want_run[] = {disp, ic->name.p, version, ic->args.p, ic->version.p, file};
        for (size_t i = 0; i < LB_ARRAY_LEN(want_run); i++)
            if (*want_run[i] && !texts_has(&t, want_run[i]))
                T_FAIL_("import case %d: runs/%s.html does not show \"%s\"", k, run_id, want_run[i]);
        texts_free(&t);
        size_t i;
        json_t *row, *mine = NULL;
        json_array_foreach(json_object_get(lj, "rows"), i, row)
            if (!strcmp(json_string_value(json_object_get(row, "model_id")), id)) mine = row;
        T_OK(mine != NULL);
        json_t *pv = json_object_get(mine, "provenance");
        if (mine && (strcmp(json_string_value(json_object_get(mine, "model")), disp) ||
                     strcmp(json_string_value(json_object_get(mine, "code_version")), version) ||
                     strcmp(json_string_value(json_object_get(pv, "import.model_args")), ic->args.p) ||
                     strcmp(json_string_value(json_array_get(
                                json_array_get(json_object_get(mine, "task_defs"), 0), 1)), file)))
            T_FAIL_("import case %d: leaderboard.json differs from the file's strings", k);
        int crow = -1;
        for (int r = 1; r < cr.n_rows; r++)
            if (!strcmp(cr.rows[r][c_mid], id)) crow = r;
        char b1[600], b2[400];
        T_OK(crow > 0 && !strcmp(cr.rows[crow][c_model], csv_expected(disp, b1, sizeof b1)) &&
             !strcmp(cr.rows[crow][c_code], csv_expected(version, b2, sizeof b2)));
        free(run_id);
        checked++;
    }
    if (getenv("T_VERBOSE"))
        fprintf(stderr, "  property: %d cases taken (%d checked through the site), %d refused\n",
                taken, checked, refused);
    T_EQ_INT(checked, taken);
    for (int r = 0; r < cr.n_rows; r++) {
        for (int c = 0; c < cr.n_cells[r]; c++) free(cr.rows[r][c]);
        free(cr.rows[r]);
    }
    free(cr.rows), free(cr.n_cells);
    json_decref(lj);
    lb_data_release(&d);
    sqlite3_close(db);
    for (int k = 0; k < n_csv; k++) {
        for (int f = 0; f < MF_N; f++) free(pcs[k].m[f].p);
        for (int f = 0; f < RF_N; f++) free(pcs[k].r[f].p);
    }
    for (int k = 0; k < n_imp; k++) {
        free(ics[k].name.p), free(ics[k].args.p), free(ics[k].version.p);
        free(ics[k].dpath.p), free(ics[k].dname.p);
    }
    free(pcs);
    free(ics);
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
    T_RUN(test_text_from_elsewhere);
    T_RUN(test_killed_quant);
    T_RUN(test_model_messages);
    T_RUN(test_property_text);
    /* cairo's font caches and fontconfig's configuration live until exit: release them so
     * LeakSanitizer (make check) sees nothing left (as test_render does) */
    cairo_debug_reset_static_data();
    FcFini();
    t_tmpdir_cleanup();
    return T_DONE();
}
