/* tests/t_cli.h: running the lowbit binary from a test (shared by the quantizer tests).
 * t_sh: a shell command with OMP_NUM_THREADS=1 (forward's parallel loops on a loaded 2-core
 * machine cost more than they give at stories260K's size), stdout+stderr captured into buf; its
 * exit status (128 when killed). t_ppl: `lowbit ppl --protocol llamacpp` of a model on a text, NAN (and a
 * failure) when the command fails. t_bin: $LOWBIT_BIN (set by tests/run.sh) or out/lowbit. */
#ifndef TESTS_T_CLI_H
#define TESTS_T_CLI_H
#include <math.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/t.h"

static inline const char *t_bin(void) {
    const char *b = getenv("LOWBIT_BIN");
    return b && *b ? b : "out/lowbit";
}

/* LOWBIT_DATA's stories260K.gguf and held-out TinyStories text into model and text (4096 bytes
 * each); false (with T_DATA's failure naming the missing file) when one is missing */
static inline bool t_stories260k(char model[4096], char text[4096]) {
    const char *p = T_DATA("models/stories260K.gguf");
    if (!p) return false;
    snprintf(model, 4096, "%s", p);
    if (!(p = T_DATA("datasets/tinystories/tinystories-valid.txt.1000"))) return false;
    snprintf(text, 4096, "%s", p);
    return true;
}

/* the first size − 1 bytes of the file at path into buf, NUL-terminated ("" when unreadable) */
static inline void t_read_into(const char *path, char *buf, size_t size) {
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(buf, 1, size - 1, f) : 0;
    buf[n] = 0;
    if (f) fclose(f);
}

/* "<scratch dir>/name": interned, so the pointer stays valid for the whole run */
static inline const char *t_scratch(const char *name) {
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

/* "PREFIX $LOWBIT_BIN args" with stdout into out and stderr into err (NUL-terminated, cut to
 * their sizes); the exit status (128 when killed). The prefix runs the binary under a limit
 * (prlimit ...) or with an environment. */
static inline int t_vrun(const char *prefix, char *out, size_t n_out, char *err, size_t n_err,
                         const char *fmt, va_list ap) {
    char args[8192], cmd[9000], o[300], e[300];
    vsnprintf(args, sizeof args, fmt, ap);
    snprintf(o, sizeof o, "%s/run.out", t_tmpdir());
    snprintf(e, sizeof e, "%s/run.err", t_tmpdir());
    snprintf(cmd, sizeof cmd, "%s %s %s >%s 2>%s </dev/null", prefix, t_bin(), args, o, e);
    int st = system(cmd);
    t_read_into(o, out, n_out);
    t_read_into(e, err, n_err);
    if (getenv("T_VERBOSE")) fprintf(stderr, "$ %s lowbit %s\n%s", prefix, args, err);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* one value of a query on the database at db_path as text (owned; "" when none). Read-write
 * when `rw`: a killed writer leaves a hot journal that only a read-write open rolls back (a
 * read-only one refuses). */
static inline char *t_q1_open(const char *db_path, const char *sql, int rw) {
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    char *r = NULL;
    if (sqlite3_open_v2(db_path, &db, rw ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY, NULL) ==
            SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
        sqlite3_column_text(st, 0))
        r = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return r ? r : strdup("");
}
static inline char *t_q1(const char *db_path, const char *sql) { return t_q1_open(db_path, sql, 0); }
#define T_QC(db, sql, needle)                                                                      \
    do {                                                                                           \
        char *v_ = t_q1(db, sql);                                                                  \
        T_CONTAINS(v_, needle);                                                                    \
        free(v_);                                                                                  \
    } while (0)
#define T_Q(db, sql, want)                                                                         \
    do {                                                                                           \
        char *v_ = t_q1(db, sql);                                                                  \
        T_EQ_STR(v_, want);                                                                        \
        free(v_);                                                                                  \
    } while (0)

static inline int t_sh(const char *cmd, char *buf, size_t size) {
    char full[8192], outp[300];
    snprintf(outp, sizeof outp, "%s/sh.out", t_tmpdir());
    snprintf(full, sizeof full, "OMP_NUM_THREADS=1 %s >%s 2>&1 </dev/null", cmd, outp);
    const int st = system(full);
    FILE *f = fopen(outp, "rb");
    size_t n = f ? fread(buf, 1, size - 1, f) : 0;
    buf[n] = 0;
    if (f) fclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* quant/resume.h as a user meets it: `lowbit QUANT_ARGS -o DIR` killed by SIGKILL after block
 * `after` (LOWBIT_KILL_AFTER_BLOCK) leaves DIR.resume; the same command again says each line of
 * `resumed` (NULL-terminated; e.g. "awq: resuming after block 2/5", "quant.awq_resumed_blocks:
 * 2"), does not run block `after` again (no "BLOCK_TAG after/"), writes each of files (NULL-terminated) byte for byte as the uninterrupted run in
 * REF_DIR did, and leaves no DIR.resume */
static inline void t_resume_same(const char *quant_args, const char *dir, int after,
                                 const char *const *resumed, const char *block_tag, const char *ref_dir,
                                 const char *const *files) {
    char cmd[12000], res[4200], out[16384], tag[200];
    snprintf(res, sizeof res, "%s.resume", dir);
    snprintf(cmd, sizeof cmd, "LOWBIT_KILL_AFTER_BLOCK=%d %s %s -o %s", after, t_bin(), quant_args,
             dir);
    T_EQ_INT(t_sh(cmd, out, sizeof out), 128 + 9); /* the shell's status of a SIGKILL'ed child */
    T_OK(access(res, F_OK) == 0);
    snprintf(cmd, sizeof cmd, "%s %s -o %s", t_bin(), quant_args, dir);
    T_EQ_INT(t_sh(cmd, out, sizeof out), 0);
    for (int i = 0; resumed[i]; i++) T_CONTAINS(out, resumed[i]);
    snprintf(tag, sizeof tag, "%s %d/", block_tag, after);
    T_OK(strstr(out, tag) == NULL);
    T_OK(access(res, F_OK) != 0);
    static const char *const itself[] = {"", NULL};
    if (!files) files = itself;
    for (int i = 0; files[i]; i++) {
        char pa[4400], pb[4400];
        snprintf(pa, sizeof pa, "%s%s%s", ref_dir, *files[i] ? "/" : "", files[i]);
        snprintf(pb, sizeof pb, "%s%s%s", dir, *files[i] ? "/" : "", files[i]);
        FILE *fa = fopen(pa, "rb"), *fb = fopen(pb, "rb");
        bool same = fa && fb;
        while (same) {
            const int a = fgetc(fa), b = fgetc(fb);
            same = a == b;
            if (a == EOF) break;
        }
        if (!same) T_FAIL_("%s differs between the resumed and the uninterrupted run", pb);
        if (fa) fclose(fa);
        if (fb) fclose(fb);
    }
}

static inline double t_ppl(const char *bin, const char *model, const char *text) {
    static char out[65536];
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s ppl --model %s --text %s --protocol llamacpp", bin, model, text);
    if (t_sh(cmd, out, sizeof out)) {
        T_FAIL_("%s failed:\n%s", cmd, out);
        return NAN;
    }
    const char *p = strstr(out, "PPL = ");
    return p ? atof(p + 6) : NAN;
}
#endif
