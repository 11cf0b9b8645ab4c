/* gen/cmd_quant.c: lowbit quant (a GGUF in one of llama.cpp's file types, as llama-quantize
 * writes it) and lowbit imatrix (an importance matrix from calibration text, as llama-imatrix). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen/cli.h"
#include "quant/gguf_mix.h"
#include "quant/imatrix.h"

static const char quant_help[] =
    "usage: lowbit quant --model M --ftype TYPE [--imatrix F] [--pure] [--leave-output]\n"
    "                    [--allow-requantize] [--tokenizer T] [--threads N] [--quiet] -o OUT.gguf\n"
    "  Writes the GGUF llama-quantize (llama.cpp de3ff81) would: the same per-tensor types and\n"
    "  shape fallbacks, the same bytes. TYPE: F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 IQ4_NL Q2_K\n"
    "  Q2_K_S Q3_K_S Q3_K_M Q3_K_L Q4_K_S Q4_K_M Q5_K_S Q5_K_M Q6_K. --imatrix: an importance\n"
    "  matrix (lowbit imatrix, or llama-imatrix's .gguf / legacy .dat). --pure: every 2-D tensor\n"
    "  in the base type. The model may be a GGUF (its metadata is kept), a llama2.c checkpoint\n"
    "  or a Hugging Face directory (metadata from its config, vocabulary from --tokenizer or\n"
    "  beside it).\n";

int cmd_quant(int argc, char **argv) {
    const char *model_path = NULL, *tok_path = NULL, *im_path = NULL, *out = NULL, *v;
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
        else if ((rc = cli_opt(argc, argv, &i, "--imatrix", &v))) { if (rc < 0) return -1; im_path = v; }
        else if ((rc = cli_opt(argc, argv, &i, "--tokenizer", &v))) { if (rc < 0) return -1; tok_path = v; }
        else if ((rc = cli_opt(argc, argv, &i, "-o", &v))) { if (rc < 0) return -1; out = v; }
        else if ((rc = cli_opt(argc, argv, &i, "--threads", &v))) { if (rc < 0 || cli_int(v, "--threads", 1, 1024, &threads)) return -1; }
        else return cli_unknown("quant", argv[i]);
    }
    if (!model_path || !o.ftype || !out) return fputs(quant_help, stderr), -1;
    enum gguf_ftype ft = GGUF_FTYPE_ALL_F32;
    if (gguf_ftype_from_name(o.ftype, &ft)) return -1;
    lb_set_threads(threads);

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
    if (cli_load_tokenizer(&tok, &m, tok_path) || cli_read_file(text_path, &text, &len)) goto out;
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
