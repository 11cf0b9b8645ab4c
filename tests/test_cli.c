/* tests/test_cli.c: the lowbit binary as a user runs it (LOWBIT_BIN, set by tests/run.sh).
 * Expected figures come from outside lowbit: llama2.c's greedy story, and llama.cpp's own
 * perplexity of stories260K.gguf on TinyStories (../shared/tools/llamacpp-peer/README.md:
 * 77352 tokens in tinystories-valid.txt.1000 with BOS; first 40 chunks of 512: PPL 8.3546 by an
 * independent float64 forward, 8.3544 by llama.cpp without flash attention). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "t.h"

static char out_buf[1 << 16], err_buf[1 << 16];

static void read_into(const char *path, char *buf, size_t size) {
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(buf, 1, size - 1, f) : 0;
    buf[n] = 0;
    if (f) fclose(f);
}

/* run "$LOWBIT_BIN args"; stdout/stderr into out_buf/err_buf; returns the exit status */
static int run(const char *args) {
    const char *bin = getenv("LOWBIT_BIN");
    if (!bin) bin = "out/lowbit";
    char o[300], e[300], cmd[8192];
    snprintf(o, sizeof o, "%s/cli.out", t_tmpdir());
    snprintf(e, sizeof e, "%s/cli.err", t_tmpdir());
    snprintf(cmd, sizeof cmd, "%s %s >%s 2>%s </dev/null", bin, args, o, e);
    int st = system(cmd);
    read_into(o, out_buf, sizeof out_buf);
    read_into(e, err_buf, sizeof err_buf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

static char data[3][4096];
static const char *dpath(int slot, const char *rel) {
    const char *p = T_DATA(rel);
    if (!p) return NULL;
    snprintf(data[slot], sizeof data[slot], "%s", p);
    return data[slot];
}

static void test_usage(void) {
    T_EQ_INT(run(""), 2);
    T_CONTAINS(err_buf, "usage: lowbit");
    T_EQ_INT(run("frobnicate"), 2);
    T_CONTAINS(err_buf, "unknown command 'frobnicate'");
    T_EQ_INT(run("ppl --help"), 0);
    T_CONTAINS(out_buf, "--protocol");
    T_EQ_INT(run("ppl --model x --bogus"), 1);
    T_CONTAINS(err_buf, "unknown option");
}

/* bad files: exit 1, exactly one line on stderr, starting "lowbit: " */
static void test_bad_files_one_line(void) {
    char p[512], cmd[1200];
    snprintf(p, sizeof p, "%s/bad.gguf", t_tmpdir());
    FILE *f = fopen(p, "wb");
    fputs("GGUF\3\0\0\0garbage", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "info %s", p);
    T_EQ_INT(run(cmd), 1);
    T_EQ_INT(count_lines(err_buf), 1);
    T_OK(!strncmp(err_buf, "lowbit: ", 8));
    T_CONTAINS(err_buf, p);

    snprintf(cmd, sizeof cmd, "info %s/missing-model.gguf", t_tmpdir());
    T_EQ_INT(run(cmd), 1);
    T_EQ_INT(count_lines(err_buf), 1);
    T_CONTAINS(err_buf, "cannot open");

    const char *m = dpath(0, "models/stories260K.bin");
    if (!m) return;
    snprintf(cmd, sizeof cmd, "generate --model %s -n 3", m); /* no tokenizer beside it */
    T_EQ_INT(run(cmd), 1);
    T_CONTAINS(err_buf, "--tokenizer");
}

static void test_info(void) {
    const char *m = dpath(0, "models/stories260K.gguf");
    if (!m) return;
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "info %s", m);
    T_EQ_INT(run(cmd), 0);
    T_CONTAINS(out_buf, "architecture llama");
    T_CONTAINS(out_buf, "n_kv_heads   4");
    T_CONTAINS(out_buf, "hidden_dim   172");
    T_CONTAINS(out_buf, "bits/weight  32.000");
    T_CONTAINS(out_buf, "output       separate");
}

/* llama2.c's run.c with stories260K, temperature 0, from BOS, prints this story */
static void test_generate_three_files(void) {
    const char *tok = dpath(2, "tokenizers/tok512.bin");
    const char *files[3] = {"models/stories260K.bin", "models/stories260K.gguf",
                            "models/tinystories_260k/checkpoint_v1.bin"};
    if (!tok) return;
    for (int i = 0; i < 3; i++) {
        const char *m = dpath(0, files[i]);
        if (!m) return;
        char cmd[2400];
        /* the GGUF brings its own vocab: use it, not tok512.bin */
        if (i == 1) snprintf(cmd, sizeof cmd, "generate --model %s -n 20", m);
        else snprintf(cmd, sizeof cmd, "generate --model %s --tokenizer %s -n 20", m, tok);
        T_EQ_INT(run(cmd), 0);
        T_OK(!strncmp(out_buf, "Once upon a time, there was a little girl named Lily.", 53));
        if (strncmp(out_buf, "Once upon a time, there was a little girl named Lily.", 53))
            fprintf(stderr, "  %s generated: %.80s\n", files[i], out_buf);
    }
}

static void test_ppl_matches_llamacpp(void) {
    const char *m = dpath(0, "models/stories260K.gguf");
    const char *t = dpath(1, "datasets/tinystories/tinystories-valid.txt.1000");
    if (!m || !t) return;
    char cmd[2400];
    snprintf(cmd, sizeof cmd, "ppl --model %s --text %s --ctx 512 --protocol llamacpp --chunks 40 --quiet",
             m, t);
    T_EQ_INT(run(cmd), 0);
    T_CONTAINS(out_buf, "tokens       77352 in the text, 10200 scored, 40 chunks");
    double ppl = 0;
    const char *at = strstr(out_buf, "PPL = ");
    T_OK(at && sscanf(at, "PPL = %lf", &ppl) == 1);
    printf("stories260K llama.cpp protocol, 40 chunks: PPL %.4f (llama.cpp float64 reference 8.3546)\n",
           ppl);
    T_NEAR(ppl, 8.3546, 0.002);
}

int main(void) {
    T_RUN(test_usage);
    T_RUN(test_bad_files_one_line);
    T_RUN(test_info);
    T_RUN(test_generate_three_files);
    T_RUN(test_ppl_matches_llamacpp);
    return T_DONE();
}
