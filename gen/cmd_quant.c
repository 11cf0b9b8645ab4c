/* gen/cmd_quant.c: lowbit quant (a GGUF in one of llama.cpp's file types, as llama-quantize
 * writes it, or any recipe of recipes.csv run as the pipeline runs it) and lowbit imatrix (an
 * importance matrix from calibration text, as llama-imatrix).
 *
 * --recipe R reads the recipes CSV with the pipeline's reader (gen/csvin.c) and calls
 * quant_model() with the same struct quant_job as gen/job.c, into a fresh directory beside OUT
 * (OUT.tmp.XXXXXX, same file system); the artifact it names (model.gguf or the HF directory
 * model/) is then renamed to OUT and the directory removed, so OUT is either complete or absent.
 * The directory is flock'ed while it lives; a later lowbit quant of the same OUT removes the ones
 * of killed runs (pipe_sweep_dead_dirs). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gen/cli.h"
#include "gen/pipeline.h"
#include "quant/gguf_mix.h"
#include "quant/imatrix.h"
#include "quant/quant.h"

static const char quant_help[] =
    "usage: lowbit quant --model M --ftype TYPE [--imatrix F] [--pure] [--leave-output]\n"
    "                    [--allow-requantize] [--tokenizer T] [--threads N] [--quiet] -o OUT.gguf\n"
    "       lowbit quant --model M --recipe ID [--recipes gen/recipes.csv] [--tokenizer T]\n"
    "                    [--threads N] [--quiet] -o OUT\n"
    "  --ftype: writes the GGUF llama-quantize (llama.cpp de3ff81) would: the same per-tensor\n"
    "  types and shape fallbacks, the same bytes. TYPE: F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1\n"
    "  IQ4_NL Q2_K Q2_K_S Q3_K_S Q3_K_M Q3_K_L Q4_K_S Q4_K_M Q5_K_S Q5_K_M Q6_K. --imatrix: an\n"
    "  importance matrix (lowbit imatrix, or llama-imatrix's .gguf / legacy .dat). --pure: every\n"
    "  2-D tensor in the base type. The model may be a GGUF (its metadata is kept), a llama2.c\n"
    "  checkpoint or a Hugging Face directory (metadata from its config, vocabulary from\n"
    "  --tokenizer or beside it).\n"
    "  --recipe: the row ID of the recipes CSV (the pipeline's file and reader), quantized as\n"
    "  `lowbit run` does. OUT is a GGUF file for algorithms fp and gguf, an HF directory\n"
    "  (config.json with quantization_config + model.safetensors) for rtn (GPTQ/AWQ layout) and\n"
    "  bnb (bitsandbytes); it must not exist or be empty. Prints the path, format, size and bits\n"
    "  per weight written (and the tokenizer to pass when the artifact has none) unless --quiet.\n";

/* ===== --recipe ===== */

/* 1 when path does not exist or is an empty file or directory, 0 otherwise */
static int out_is_free(const char *path) {
    struct stat st;
    if (lstat(path, &st)) return errno == ENOENT;
    if (S_ISREG(st.st_mode)) return st.st_size == 0;
    if (!S_ISDIR(st.st_mode)) return 0;
    DIR *d = opendir(path);
    if (!d) return 0;
    int empty = 1;
    for (struct dirent *e; empty && (e = readdir(d));)
        empty = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..");
    closedir(d);
    return empty;
}

/* the row `id` of the recipes CSV into *r; unknown ids list the known ones */
static int find_recipe(const char *csv, const char *id, struct recipe *r) {
    struct recipe *rows = NULL;
    int n = 0;
    if (csvin_recipes(csv, &rows, &n)) return -1;
    int ret = -1;
    for (int i = 0; i < n; i++)
        if (!strcmp(rows[i].id, id)) {
            *r = rows[i];
            ret = 0;
        }
    if (ret) {
        char list[2048];
        size_t k = 0;
        list[0] = 0;
        for (int i = 0; i < n && k < sizeof list; i++)
            k += (size_t)snprintf(list + k, sizeof list - k, "%s%s", i ? ", " : "", rows[i].id);
        err("quant: no recipe '%s' in %s (known: %s)", id, csv, list);
    }
    free(rows);
    return ret;
}

static const char *prov_get(const struct quant_artifact *a, const char *key) {
    for (int i = 0; i < a->n_prov; i++)
        if (!strcmp(a->prov[i].key, key)) return a->prov[i].value;
    return NULL;
}

/* the summary on stderr: path, format, size, bits per weight (the quantizer's own figure; the fp
 * writer states none, so the loaded artifact's weight bytes / parameters, as gen/job.c does) */
static int quant_report(const struct quant_artifact *a, const char *out, const char *recipe_id) {
    const long long bytes = path_bytes(out);
    const char *bpw = prov_get(a, "quant.bits_per_weight");
    char buf[32];
    if (!bpw) {
        struct model am;
        if (model_load(&am, out)) return -1;
        const int64_t n = model_n_params(&am);
        const double w = (double)model_weight_bytes(&am);
        snprintf(buf, sizeof buf, "%.4f", n ? 8.0 * w / (double)n : 0);
        model_release(&am);
        bpw = buf;
    }
    fprintf(stderr, "quant: wrote %s (recipe %s): %s, %lld bytes (%.2f MiB), %s bits/weight\n", out,
            recipe_id, a->format, bytes, (double)bytes / (1024.0 * 1024.0), bpw);
    for (int i = 0; i < a->n_prov; i++) {
        const char *k = a->prov[i].key;
        if (strcmp(k, "quant.bits_per_weight") && strcmp(k, "quant.format"))
            fprintf(stderr, "  %s: %s\n", k, a->prov[i].value);
    }
    if (a->tokenizer[0])
        fprintf(stderr, "quant: %s has no tokenizer; give ppl/eval --tokenizer %s\n", out,
                a->tokenizer);
    return 0;
}

static int quant_recipe(const char *model_path, const char *tok_path, const char *csv,
                        const char *id, const char *out, int threads, bool quiet) {
    struct recipe r;
    if (find_recipe(csv, id, &r) || recipe_check(&r)) return -1;
    const struct qmethod_info *q = qmethod_get(r.method);
    if (!q->quantize) /* quant_model()'s message, before loading a model for nothing */
        return err("recipe '%s': algorithm '%s' is not implemented yet", r.id, q->name);
    if (!out_is_free(out))
        return err("quant: %s exists and is not empty (remove it, or choose another -o)", out);

    struct model m;
    struct tokenizer *tok = NULL;
    struct quant_artifact a;
    char tmp[PIPE_PATH_MAX];
    bool made_tmp = false;
    int ret = -1, lock_fd = -1;
    if (model_load(&m, model_path)) return -1;
    /* the pipeline's tokenizer rule; a GGUF without a vocabulary still quantizes (only a
     * calibration set needs one, and the gguf writer says so) */
    if (tok_path || m.format != MODEL_FORMAT_GGUF) {
        if (cli_load_tokenizer(&tok, &m, tok_path)) goto out;
    } else {
        const bool quiet_was = err_quiet();
        err_set_quiet(true);
        if (cli_load_tokenizer(&tok, &m, NULL)) tok = NULL;
        err_set_quiet(quiet_was);
    }
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", out) >= sizeof tmp) {
        err("quant: -o %s: path too long", out);
        goto out;
    }
    {
        char parent[PIPE_PATH_MAX], prefix[PIPE_PATH_MAX];
        snprintf(parent, sizeof parent, "%s", out);
        char *slash = strrchr(parent, '/');
        snprintf(prefix, sizeof prefix, "%s.tmp.", slash ? slash + 1 : out);
        if (slash) *slash = 0;
        pipe_sweep_dead_dirs(slash ? (parent[0] ? parent : "/") : ".", prefix);
    }
    if (!mkdtemp(tmp)) {
        err("quant: cannot create a directory beside %s: %s", out, strerror(errno));
        goto out;
    }
    made_tmp = true;
    if ((lock_fd = pipe_lock_dir(tmp)) < 0) goto out;
    char resume[4200];
    snprintf(resume, sizeof resume, "%s.resume", out); /* fits: tmp held out + 11 bytes */
    const struct quant_job qj = {.r = &r, .m = &m, .src_path = model_path,
                                 .src_tokenizer = tok_path, .tok = tok, .out_dir = tmp,
                                 .resume_dir = resume, .threads = threads, .quiet = quiet};
    if (quant_model(&qj, &a)) goto out;
    if (!out_is_free(out)) { /* someone wrote it meanwhile */
        err("quant: %s exists and is not empty (remove it, or choose another -o)", out);
        goto out;
    }
    struct stat st;
    if (!lstat(out, &st) && (S_ISDIR(st.st_mode) ? rmdir(out) : unlink(out))) {
        err("quant: cannot replace the empty %s: %s", out, strerror(errno));
        goto out;
    }
    if (rename(a.path, out)) {
        err("quant: cannot rename %s to %s: %s", a.path, out, strerror(errno));
        goto out;
    }
    ret = quiet ? 0 : quant_report(&a, out, r.id);
out:
    if (made_tmp) (void)rm_tree(tmp);
    if (lock_fd >= 0) close(lock_fd);
    tokenizer_free(tok);
    model_release(&m);
    return ret;
}

/* ===== lowbit quant ===== */

int cmd_quant(int argc, char **argv) {
    const char *model_path = NULL, *tok_path = NULL, *im_path = NULL, *out = NULL, *v;
    const char *recipe_id = NULL, *recipes = "gen/recipes.csv";
    struct gguf_quant_opts o = {0};
    int threads = 0, rc;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help")) return fputs(quant_help, stdout), 0;
        if (!strcmp(argv[i], "--pure")) o.pure = true;
        else if (!strcmp(argv[i], "--leave-output")) o.leave_output = true;
        else if (!strcmp(argv[i], "--allow-requantize")) o.allow_requantize = true;
        else if (!strcmp(argv[i], "--quiet")) o.quiet = true;
        else if ((rc = cli_opt(argc, argv, &i, "--model", &v))) { if (rc < 0) return -1; model_path = v; }
        else if ((rc = cli_opt(argc, argv, &i, "--ftype", &v))) { if (rc < 0) return -1; o.ftype = v; }
        else if ((rc = cli_opt(argc, argv, &i, "--recipe", &v))) { if (rc < 0) return -1; recipe_id = v; }
        else if ((rc = cli_opt(argc, argv, &i, "--recipes", &v))) { if (rc < 0) return -1; recipes = v; }
        else if ((rc = cli_opt(argc, argv, &i, "--imatrix", &v))) { if (rc < 0) return -1; im_path = v; }
        else if ((rc = cli_opt(argc, argv, &i, "--tokenizer", &v))) { if (rc < 0) return -1; tok_path = v; }
        else if ((rc = cli_opt(argc, argv, &i, "-o", &v))) { if (rc < 0) return -1; out = v; }
        else if ((rc = cli_opt(argc, argv, &i, "--threads", &v))) { if (rc < 0 || cli_int(v, "--threads", 1, 1024, &threads)) return -1; }
        else return cli_unknown("quant", argv[i]);
    }
    if (o.ftype && recipe_id) return err("quant: give --ftype TYPE or --recipe ID, not both");
    if (!model_path || !out || (!o.ftype && !recipe_id)) return fputs(quant_help, stderr), -1;
    if (recipe_id && (im_path || o.pure || o.leave_output || o.allow_requantize))
        return err("quant: --imatrix, --pure, --leave-output and --allow-requantize go with "
                   "--ftype; a recipe sets them in its knobs");
    lb_set_threads(threads);
    if (recipe_id)
        return quant_recipe(model_path, tok_path, recipes, recipe_id, out, threads, o.quiet);

    enum gguf_ftype ft = GGUF_FTYPE_ALL_F32;
    if (gguf_ftype_from_name(o.ftype, &ft)) return -1;

    struct model m;
    struct tokenizer *tok = NULL;
    struct imatrix im = IMATRIX_INIT;
    int ret = -1;
    if (model_load(&m, model_path)) return -1;
    if (m.format != MODEL_FORMAT_GGUF) {
        if (cli_load_tokenizer(&tok, &m, tok_path)) goto out;
        o.tok = tok;
    }
    if (im_path) {
        if (imatrix_load(&im, im_path)) goto out;
        o.imatrix = &im;
        o.imatrix_file = im_path;
    }
    ret = gguf_quantize_model(&m, &o, out, NULL);
out:
    imatrix_release(&im);
    tokenizer_free(tok);
    model_release(&m);
    return ret;
}

static const char imatrix_help[] =
    "usage: lowbit imatrix --model M --text FILE [--ctx N] [--chunks K] [--tokenizer T]\n"
    "                      [--threads N] [--quiet] -o OUT.gguf\n"
    "  Importance matrix for lowbit quant --imatrix / llama-quantize --imatrix: sum of x^2 per\n"
    "  input column of every blk.* matmul over the text, llama-imatrix's protocol ([BOS] + text,\n"
    "  chunks of --ctx tokens (default 512) with BOS first, run from an empty cache; --chunks K\n"
    "  uses the first K). Written in llama.cpp's GGUF imatrix format.\n";

int cmd_imatrix(int argc, char **argv) {
    const char *model_path = NULL, *tok_path = NULL, *text_path = NULL, *out = NULL, *v;
    int ctx = 512, max_chunks = 0, threads = 0, rc;
    bool quiet = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help")) return fputs(imatrix_help, stdout), 0;
        if (!strcmp(argv[i], "--quiet")) quiet = true;
        else if ((rc = cli_opt(argc, argv, &i, "--model", &v))) { if (rc < 0) return -1; model_path = v; }
        else if ((rc = cli_opt(argc, argv, &i, "--text", &v))) { if (rc < 0) return -1; text_path = v; }
        else if ((rc = cli_opt(argc, argv, &i, "--tokenizer", &v))) { if (rc < 0) return -1; tok_path = v; }
        else if ((rc = cli_opt(argc, argv, &i, "-o", &v))) { if (rc < 0) return -1; out = v; }
        else if ((rc = cli_opt(argc, argv, &i, "--ctx", &v))) { if (rc < 0 || cli_int(v, "--ctx", 16, 1 << 20, &ctx)) return -1; }
        else if ((rc = cli_opt(argc, argv, &i, "--chunks", &v))) { if (rc < 0 || cli_int(v, "--chunks", 1, 1 << 30, &max_chunks)) return -1; }
        else if ((rc = cli_opt(argc, argv, &i, "--threads", &v))) { if (rc < 0 || cli_int(v, "--threads", 1, 1024, &threads)) return -1; }
        else return cli_unknown("imatrix", argv[i]);
    }
    if (!model_path || !text_path || !out) return fputs(imatrix_help, stderr), -1;
    lb_set_threads(threads);

    struct model m;
    struct tokenizer *tok = NULL;
    struct imatrix im = IMATRIX_INIT;
    char *text = NULL;
    size_t len;
    int *ids = NULL, n_ids = 0, ret = -1;
    if (model_load(&m, model_path)) return -1;
    if (cli_load_tokenizer(&tok, &m, tok_path) || read_file_all(text_path, "the text", &text, &len)) goto out;
    const int bos = tokenizer_bos(tok);
    if (tokenizer_encode(tok, text, len, bos >= 0, &ids, &n_ids)) goto out;
    if (max_chunks && (long)max_chunks * ctx < n_ids) n_ids = max_chunks * ctx;
    if (imatrix_collect(&im, &m, ids, n_ids, ctx, bos, text_path, quiet) ||
        imatrix_save(&im, out))
        goto out;
    if (!quiet)
        fprintf(stderr, "imatrix: %s: %d entries from %d chunks of %d tokens\n", out, im.n,
                im.chunk_count, im.chunk_size);
    ret = 0;
out:
    free(ids);
    free(text);
    imatrix_release(&im);
    tokenizer_free(tok);
    model_release(&m);
    return ret;
}
