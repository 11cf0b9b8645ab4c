/* gen/cli.c: helpers shared by the subcommands. */
#include "gen/cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "eval/task.h"
#include "kernels/common.h"

int cli_load_tokenizer(struct tokenizer **out, const struct model *m, const char *explicit_path) {
    if (explicit_path) return tokenizer_load(out, explicit_path);
    if (m->format == MODEL_FORMAT_GGUF && m->gguf) return tokenizer_from_gguf(out, m->gguf);
    /* HF: DIR/tokenizer.json; llama2.c: tokenizer.bin beside the file */
    const char *slash = strrchr(m->path, '/');
    char *path = m->format == MODEL_FORMAT_HF ? xstrfmt("%s/tokenizer.json", m->path)
                 : slash ? xstrfmt("%.*s/tokenizer.bin", (int)(slash - m->path), m->path)
                         : xstrfmt("tokenizer.bin");
    if (!path) return -1;
    const int rc = access(path, R_OK)
                       ? err("no tokenizer for %s: looked for %s; pass --tokenizer FILE (a "
                             "llama2.c tokenizer.bin, an HF tokenizer.json or a .gguf)",
                             m->path, path)
                       : tokenizer_load(out, path);
    free(path);
    return rc;
}

void cli_help(FILE *f, const char *help) {
    fputs(help, f);
    int col = fprintf(f, "  tasks:");
    for (int k = 0; k < TASK_COUNT; k++) {
        const struct task_info *t = task_get((enum task_id)k);
        const int w = (int)strlen(t->name) + (int)strlen(t->label) + 5;
        if (col + w > 92) {
            fputs("\n        ", f);
            col = 8;
        }
        col += fprintf(f, " %s (%s)%s", t->name, t->label, k + 1 < TASK_COUNT ? "," : "\n");
    }
}

void cli_progress(const char *label, long done, long total, double t0, bool quiet) {
    if (quiet || !isatty(2)) return;
    double el = now_s() - t0, rate = el > 0 ? done / el : 0;
    double eta = rate > 0 ? (total - done) / rate : 0;
    fprintf(stderr, "\r%s: %ld/%ld  %.1f/s  ETA %.0fs   ", label, done, total, rate, eta);
    if (done >= total) fputc('\n', stderr);
}

int cli_opt(int argc, char **argv, int *i, const char *name, const char **val) {
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n)) return 0;
    if (a[n] == '=') {
        *val = a + n + 1;
        return 1;
    }
    if (a[n]) return 0;
    if (*i + 1 >= argc) return err("option %s needs a value", name);
    *val = argv[++*i];
    return 1;
}

int cli_int(const char *s, const char *name, long lo, long hi, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return err("option %s: '%s' is not an integer in [%ld, %ld]", name, s, lo, hi);
    *out = (int)v;
    return 0;
}

int cli_int_list(const char *s, const char *name, int *out, int max) {
    int n = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (n == max) return err("option %s: more than %d values", name, max);
        if (cli_int(tok, name, 1, 1 << 20, &out[n++])) return -1;
    }
    if (!n) return err("option %s: no values in '%s'", name, s);
    return n;
}

int cli_unknown(const char *cmd, const char *arg) {
    return err("%s: unknown option or argument '%s' (see lowbit %s --help)", cmd, arg, cmd);
}
