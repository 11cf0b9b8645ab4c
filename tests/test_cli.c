/* tests/test_cli.c: the lowbit binary as a user runs it (LOWBIT_BIN, set by tests/run.sh).
 * Expected figures come from outside lowbit: llama2.c's greedy story, and llama.cpp's own
 * perplexity of stories260K.gguf on TinyStories (../shared/tools/llamacpp-peer/README.md:
 * 77352 tokens in tinystories-valid.txt.1000 with BOS; first 40 chunks of 512: PPL 8.3546 by an
 * independent float64 forward, 8.3544 by llama.cpp without flash attention). */
#include <csv.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "gen/pipeline.h"
#include "quant/quant.h"
#include "t.h"
#include "tests/t_cli.h"

static char out_buf[1 << 16], err_buf[1 << 16];

static void read_into(const char *path, char *buf, size_t size) {
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(buf, 1, size - 1, f) : 0;
    buf[n] = 0;
    if (f) fclose(f);
}

/* run "$LOWBIT_BIN args"; stdout/stderr into out_buf/err_buf; returns the exit status */
static int run(const char *args) {
    const char *bin = t_bin();
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

/* ===== lowbit quant --recipe ===== */

/* "PPL = x" of `lowbit ppl` on TinyStories (8 chunks of 256, llama.cpp protocol); NAN on failure */
static double ppl_of(const char *model, const char *text) {
    char cmd[2400];
    snprintf(cmd, sizeof cmd, "ppl --model %s --text %s --ctx 256 --chunks 8 --quiet", model, text);
    double ppl = NAN;
    const int rc = run(cmd);
    const char *at = strstr(out_buf, "PPL = ");
    if (rc || !at || sscanf(at, "PPL = %lf", &ppl) != 1)
        fprintf(stderr, "  ppl of %s failed: %.300s\n", model, err_buf);
    return ppl;
}

static bool exists(const char *dir, const char *name) {
    char p[1200];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return !access(p, R_OK);
}

static const char quant_csv_text[] =
    "id,algorithm,weight_dtype,bits,group_size,sym,double_quant,compute_dtype,calib_set,"
    "calib_nsamples,calib_seqlen,knobs\n"
    "# a comment row\n"
    "rtn-w4g32,rtn,int4,4,32,0,,fp32,,,,\n"
    "nf4,bnb,nf4,4,64,,0,fp32,,,,\n"
    "q8,gguf,q8_0,,,,,,,,,\n"
    "aqlm-2x8,aqlm,int2,2,8,,,fp16,data.txt,128,2048,\n";

static const char *quant_csv(void) {
    static char p[512];
    snprintf(p, sizeof p, "%s/quant-recipes.csv", t_tmpdir());
    FILE *f = fopen(p, "wb");
    if (!f) return NULL;
    fputs(quant_csv_text, f);
    fclose(f);
    return p;
}

/* rtn 4-bit g32 and bnb nf4 of stories260K: HF directories that lowbit loads back, with a
 * perplexity near the fp32 model's. The bound is ours, not a reference figure: weight-only 4-bit
 * on this 260K-parameter model costs 8% (rtn g32 asym; most MLPs stay in float, as 172 columns
 * do not pack) and 21% (nf4) at the time of writing; more than 1.5x, or less than 0.9x, means
 * the weights were written or read wrongly. */
static void test_quant_recipe_hf(void) {
    const char *m = dpath(0, "models/stories260K.gguf");
    const char *t = dpath(1, "datasets/tinystories/tinystories-valid.txt.1000");
    const char *csv = quant_csv();
    if (!m || !t || !csv) return;
    const double base = ppl_of(m, t);
    T_OK(isfinite(base) && base > 1);
    static const struct {
        const char *id, *format, *dtype;
    } cases[] = {{"rtn-w4g32", "gptq", "qint"}, {"nf4", "bnb", "nf4"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[600], cmd[3000];
        snprintf(out, sizeof out, "%s/q-%s", t_tmpdir(), cases[i].id);
        snprintf(cmd, sizeof cmd, "quant --model %s --recipe %s --recipes %s -o %s --threads 1", m,
                 cases[i].id, csv, out);
        T_EQ_INT(run(cmd), 0);
        char want[800];
        snprintf(want, sizeof want, "quant: wrote %s (recipe %s): %s, ", out, cases[i].id,
                 cases[i].format);
        T_CONTAINS(err_buf, want);
        T_CONTAINS(err_buf, " bits/weight\n");
        T_OK(exists(out, "config.json") && exists(out, "model.safetensors"));
        char cfg[800];
        snprintf(cfg, sizeof cfg, "%s/config.json", out);
        static char text[1 << 14];
        read_into(cfg, text, sizeof text);
        T_CONTAINS(text, "\"quantization_config\"");
        snprintf(cmd, sizeof cmd, "info %s", out);
        T_EQ_INT(run(cmd), 0);
        T_CONTAINS(out_buf, cases[i].dtype);
        T_CONTAINS(out_buf, "parameters   292800");
        const double ppl = ppl_of(out, t);
        printf("stories260K %s: PPL %.4f vs fp32 %.4f (8 chunks of 256)\n", cases[i].id, ppl, base);
        T_OK(isfinite(ppl) && ppl < 1.5 * base && ppl > 0.9 * base);
        /* a second run refuses to overwrite it */
        snprintf(cmd, sizeof cmd, "quant --model %s --recipe %s --recipes %s -o %s --quiet", m,
                 cases[i].id, csv, out);
        T_EQ_INT(run(cmd), 1);
        T_EQ_INT(count_lines(err_buf), 1);
        T_CONTAINS(err_buf, "exists and is not empty");
    }
}

/* a gguf recipe writes the same bytes as --ftype, OUT as a file; --quiet prints nothing */
static void test_quant_recipe_gguf(void) {
    const char *m = dpath(0, "models/stories260K.gguf");
    const char *csv = quant_csv();
    if (!m || !csv) return;
    char a[600], b[600], cmd[3000];
    snprintf(a, sizeof a, "%s/q8-recipe.gguf", t_tmpdir());
    snprintf(b, sizeof b, "%s/q8-ftype.gguf", t_tmpdir());
    remove(a), remove(b);
    snprintf(cmd, sizeof cmd, "quant --model %s --recipe q8 --recipes %s -o %s --quiet", m, csv, a);
    T_EQ_INT(run(cmd), 0);
    T_EQ_STR(err_buf, "");
    snprintf(cmd, sizeof cmd, "quant --model %s --ftype Q8_0 -o %s --quiet", m, b);
    T_EQ_INT(run(cmd), 0);
    snprintf(cmd, sizeof cmd, "cmp -s %s %s", a, b);
    T_EQ_INT(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "info %s", a);
    T_EQ_INT(run(cmd), 0);
    T_CONTAINS(out_buf, "q8_0");
}

/* errors: one line, exit 1, nothing left behind */
static void test_quant_recipe_errors(void) {
    const char *m = dpath(0, "models/stories260K.gguf");
    const char *csv = quant_csv();
    if (!m || !csv) return;
    char out[600], cmd[3000];
    snprintf(out, sizeof out, "%s/q-err", t_tmpdir());
    snprintf(cmd, sizeof cmd, "quant --model %s --recipe nope --recipes %s -o %s", m, csv, out);
    T_EQ_INT(run(cmd), 1);
    T_EQ_INT(count_lines(err_buf), 1);
    T_CONTAINS(err_buf, "no recipe 'nope'");
    T_CONTAINS(err_buf, "(known: rtn-w4g32, nf4, q8, aqlm-2x8)");

    snprintf(cmd, sizeof cmd, "quant --model %s --recipe aqlm-2x8 --recipes %s -o %s", m, csv,
             out);
    T_EQ_INT(run(cmd), 1);
    T_EQ_INT(count_lines(err_buf), 1);
    /* a setting the algorithm refuses (aqlm's scheme is in its knobs, weight_dtype aqlm) */
    T_CONTAINS(err_buf, "recipe 'aqlm-2x8': algorithm aqlm writes weight_dtype aqlm, not 'int2'");

    snprintf(cmd, sizeof cmd, "quant --model %s --recipe nf4 --recipes %s/missing.csv -o %s", m,
             t_tmpdir(), out);
    T_EQ_INT(run(cmd), 1);
    T_EQ_INT(count_lines(err_buf), 1);
    T_CONTAINS(err_buf, "missing.csv");

    snprintf(cmd, sizeof cmd, "quant --model %s --recipe nf4 --ftype Q8_0 --recipes %s -o %s", m,
             csv, out);
    T_EQ_INT(run(cmd), 1);
    T_CONTAINS(err_buf, "not both");
    snprintf(cmd, sizeof cmd, "quant --model %s --recipe nf4 --pure --recipes %s -o %s", m, csv,
             out);
    T_EQ_INT(run(cmd), 1);
    T_CONTAINS(err_buf, "--ftype");

    /* a failing quantizer (the model is missing) leaves neither OUT nor its temporary directory */
    snprintf(cmd, sizeof cmd, "quant --model %s/missing.gguf --recipe nf4 --recipes %s -o %s",
             t_tmpdir(), csv, out);
    T_EQ_INT(run(cmd), 1);
    T_EQ_INT(count_lines(err_buf), 1);
    T_OK(access(out, F_OK));
    snprintf(cmd, sizeof cmd, "ls %s | grep -q '\\.tmp\\.'", t_tmpdir());
    T_OK(system(cmd) != 0);

    T_EQ_INT(run("quant --help"), 0);
    T_CONTAINS(out_buf, "--recipe ID");
}

/* In a sanitizer build (T_SANITIZED, make check) the calibrated rows run 10-50x slower (an
 * AutoRound row over 6 CPU-minutes), so test_quant_default_recipes quantizes a light copy of
 * recipes.csv (light_recipes): the same rows, algorithms, bits, groups, formats and knobs, on 8
 * windows of 64 tokens, AutoRound with 10 iterations, AQLM with one beam-search epoch and one
 * fine-tuning epoch. Every code path of each row still runs and its artifact must still load. */
static void csv_cell(FILE *f, const char *s, bool last) {
    if (*s) csv_fwrite(f, s, strlen(s));
    fputc(last ? '\n' : ',', f);
}

/* src's rows through the pipeline's reader (gen/csvin.c), written to dst with the calibrated rows
 * made light; 0 on success */
static int light_recipes(const char *src, const char *dst) {
    struct recipe *rows = NULL;
    int n = 0;
    if (csvin_recipes(src, &rows, &n)) return -1;
    FILE *f = fopen(dst, "wb");
    if (!f) {
        free(rows);
        return -1;
    }
    fputs("id,algorithm,weight_dtype,bits,group_size,sym,double_quant,compute_dtype,calib_set,"
          "calib_nsamples,calib_seqlen,knobs\n", f);
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        const struct recipe *r = &rows[i];
        char num[6][32] = {"", "", "", "", "", ""};
        if (!isnan(r->bits)) snprintf(num[0], sizeof num[0], "%.17g", r->bits);
        if (r->has_group_size) snprintf(num[1], sizeof num[1], "%d", r->group_size);
        if (r->sym >= 0) snprintf(num[2], sizeof num[2], "%d", r->sym);
        if (r->double_quant >= 0) snprintf(num[3], sizeof num[3], "%d", r->double_quant);
        json_t *kn = r->knobs[0] ? json_loads(r->knobs, 0, NULL) : json_object();
        if (!json_is_object(kn)) rc = -1;
        if (!rc && r->calib_nsamples > 0) {
            snprintf(num[4], sizeof num[4], "8");
            snprintf(num[5], sizeof num[5], "64");
            if (!strcmp(r->algorithm, "autoround"))
                json_object_set_new(kn, "iters", json_integer(10));
            if (!strcmp(r->algorithm, "aqlm")) {
                json_object_set_new(kn, "max_epochs", json_integer(1));
                json_object_set_new(kn, "finetune_max_epochs", json_integer(1));
            }
        }
        if (!rc && r->calib_seqlen > 0 && !num[5][0])
            snprintf(num[5], sizeof num[5], "%d", r->calib_seqlen);
        char *knobs = rc || !json_object_size(kn) ? NULL : json_dumps(kn, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(kn);
        if (rc) break;
        const char *cells[12] = {r->id, r->algorithm, r->weight_dtype, num[0], num[1], num[2],
                                 num[3], r->compute_dtype, r->calib_set, num[4], num[5],
                                 knobs ? knobs : ""};
        for (int c = 0; c < 12; c++) csv_cell(f, cells[c], c == 11);
        free(knobs);
    }
    if (fclose(f)) rc = -1;
    free(rows);
    return rc;
}

/* every recipe shipped in gen/recipes.csv quantizes stories260K and loads back (README: only
 * recipes that work are shipped) */
static void test_quant_default_recipes(void) {
    const char *m = dpath(0, "models/stories260K.gguf");
    if (!m) return;
    static char text[1 << 14];
    read_into("gen/recipes.csv", text, sizeof text);
    T_OK(text[0]);
    static char ids[64][128];
    int n = 0;
    for (char *line = strchr(text, '\n'); line && line[1] && n < 64; line = strchr(line + 1, '\n'))
        if (line[1] != '#' && sscanf(line + 1, "%127[^,\n]", ids[n]) == 1) n++;
    T_OK(n >= 2);
    /* every row quantized, one thread each, as many at once as there are cores (the calibrated
     * rows take seconds each): DIR/default-ID plus its .err and .rc */
    const char *bin = t_bin();
    static char list[8400], cmd[65536], recipes[8400] = "gen/recipes.csv";
    if (T_SANITIZED) {
        snprintf(recipes, sizeof recipes, "%s/recipes-light.csv", t_tmpdir());
        T_EQ_INT(light_recipes("gen/recipes.csv", recipes), 0);
        printf("  (sanitizer build: the calibrated rows run light, %s)\n", recipes);
    }
    snprintf(list, sizeof list, "%s/recipe-ids", t_tmpdir());
    FILE *f = fopen(list, "wb");
    for (int i = 0; f && i < n; i++) fprintf(f, "%s\n", ids[i]);
    if (f) fclose(f);
    const long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    snprintf(cmd, sizeof cmd,
             "xargs -P %ld -I@ sh -c '%s quant --model %s --recipe @ --recipes %s -o %s/default-@ "
             "--quiet --threads 1 >%s/default-@.err 2>&1; echo $? >%s/default-@.rc' <%s",
             ncpu > 0 ? ncpu : 1, bin, m, recipes, t_tmpdir(), t_tmpdir(), t_tmpdir(), list);
    T_EQ_INT(system(cmd), 0);
    for (int i = 0; i < n; i++) {
        static char p[8600];
        char rc[32] = "";
        snprintf(p, sizeof p, "%s/default-%s.rc", t_tmpdir(), ids[i]);
        read_into(p, rc, sizeof rc);
        if (atoi(rc) != 0 || !rc[0]) {
            snprintf(p, sizeof p, "%s/default-%s.err", t_tmpdir(), ids[i]);
            read_into(p, err_buf, sizeof err_buf);
            T_FAIL_("recipe %s: exit %s: %.300s", ids[i], rc[0] ? rc : "?", err_buf);
            continue;
        }
        snprintf(cmd, sizeof cmd, "info %s/default-%s", t_tmpdir(), ids[i]);
        T_EQ_INT(run(cmd), 0);
        T_CONTAINS(out_buf, "parameters   292800");
    }
}

/* ===== lowbit kld: the base's cached log-probs ===== */

/* a torn cache file (a writer killed mid-way, a full disk) is computed again, not trusted: the
 * same KLD as from a fresh cache; no temporary file is left beside it */
static void test_kld_cache_torn(void) {
    const char *m = dpath(0, "models/stories260K.gguf");
    const char *t = dpath(1, "datasets/tinystories/tinystories-valid.txt.1000");
    if (!m || !t) return;
    char cache[600], cmd[2400], first[256] = "";
    snprintf(cache, sizeof cache, "%s/kldcache", t_tmpdir());
    /* the model under test: the same weights with bf16 compute (a KLD of about 4e-4) */
    snprintf(cmd, sizeof cmd,
             "kld --model %s --base %s --text %s --chunks 3 --cache %s --f32 --compute bf16", m, m,
             t, cache);
    T_EQ_INT(run(cmd), 0);
    const char *at = strstr(out_buf, "Mean    KLD:");
    double kld = 0;
    T_OK(at && sscanf(at, "Mean    KLD: %lf", &kld) == 1 && kld > 1e-5);
    if (at) snprintf(first, sizeof first, "%.*s", (int)strcspn(at, "\n"), at);
    char sh[1400];
    snprintf(sh, sizeof sh, "f=$(ls %s/*.kld) && n=$(stat -c %%s \"$f\") && truncate -s $((n / 2)) \"$f\"",
             cache);
    T_EQ_INT(system(sh), 0);
    T_EQ_INT(run(cmd), 0);
    T_CONTAINS(err_buf, "is invalid or incomplete: computing it again");
    T_CONTAINS(out_buf, first);
    snprintf(sh, sizeof sh, "test $(ls %s | wc -l) -eq 1", cache);
    T_EQ_INT(system(sh), 0);
}

int main(void) {
    T_RUN(test_usage);
    T_RUN(test_bad_files_one_line);
    T_RUN(test_info);
    T_RUN(test_generate_three_files);
    T_RUN(test_ppl_matches_llamacpp);
    T_RUN(test_quant_recipe_hf);
    T_RUN(test_quant_recipe_gguf);
    T_RUN(test_quant_recipe_errors);
    T_RUN(test_quant_default_recipes);
    T_RUN(test_kld_cache_torn);
    return T_DONE();
}
