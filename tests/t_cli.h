/* tests/t_cli.h: running the lowbit binary from a test (shared by the quantizer tests).
 * t_sh: a shell command with OMP_NUM_THREADS=1 (forward's parallel loops on a loaded 2-core
 * machine cost more than they give at stories260K's size), stdout+stderr captured into buf; its
 * exit status (128 when killed). t_ppl: `lowbit ppl --protocol llamacpp` of a model on a text, NAN (and a
 * failure) when the command fails. t_bin: $LOWBIT_BIN (set by tests/run.sh) or out/lowbit. */
#ifndef TESTS_T_CLI_H
#define TESTS_T_CLI_H
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

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
