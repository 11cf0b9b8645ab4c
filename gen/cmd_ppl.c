/* gen/cmd_ppl.c: lowbit ppl (perplexity of a text under a named protocol) and lowbit nll (mean
 * NLL per document, llama2.c's protocol).
 *
 * Protocols (each result names its own):
 *  - llamacpp: llama.cpp's tools/perplexity: tokens = [BOS] + encode(text); n_chunk =
 *    floor(n / ctx); chunk i is tokens [i·ctx, (i+1)·ctx) with its first token replaced by BOS,
 *    run from an empty cache; positions j in [ctx/2, ctx-1) score token j+1 (ctx/2 - 1 per chunk).
 *  - chunks: the GPTQ/AWQ papers' fixed-window token perplexity: tokens = [BOS] + encode(text) cut
 *    into floor(n / ctx) non-overlapping windows, each run from an empty cache; every position
 *    j < ctx-1 scores token j+1.
 * PPL = exp(mean NLL); the ± is llama.cpp's: PPL · sqrt(var(NLL) / (N-1)). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eval/evaluate.h"
#include "gen/cli.h"
#include "gen/text.h"
#include "kernels/matmul.h"

static const char ppl_help[] =
    "usage: lowbit ppl --model M [--tokenizer T] --text FILE [--ctx N] [--protocol P]\n"
    "                  [--chunks K] [--threads N] [--compute D] [--json OUT] [--quiet]\n"
    "  Perplexity of a text file. --protocol llamacpp (default; llama.cpp's perplexity tool:\n"
    "  N-token chunks from an empty cache, first token BOS, second half scored) or chunks\n"
    "  (GPTQ/AWQ papers: non-overlapping N-token windows, every position scored). --ctx\n"
    "  default 512. --chunks K scores only the first K chunks. Prints PPL +/- stderr, the tokens\n"
    "  scored and tokens/s. --compute fp32 (default) | fp16 | bf16 | int8: the matmuls'\n"
    "  arithmetic (fp16: inputs and outputs rounded; bf16: bf16 products summed in fp32,\n"
    "  VDPBF16PS's, for f32/f16/bf16 weights, inputs rounded for the others; int8: activations\n"
    "  quantized per block as llama.cpp does, integer dot products, for Q8_0/Q4_0/Q4_1/Q5_0/\n"
    "  Q5_1/int8-row/qint weights; other weights stay fp32 and the count is reported).\n";

int cmd_ppl(int argc, char **argv) {
    const char *model_path = NULL, *tok_path = NULL, *text_path = NULL, *json_path = NULL,
               *protocol = "llamacpp", *v;
    int ctx = 512, max_chunks = 0, threads = 0, compute = COMPUTE_FP32, rc;
    bool quiet = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help")) return fputs(ppl_help, stdout), 0;
        if ((rc = cli_opt(argc, argv, &i, "--compute", &v))) {
            if (rc < 0) return -1;
            if ((compute = compute_from_name(v)) < 0)
                return err("ppl: unknown --compute '%s' (expected fp32, fp16, bf16, int8, a8 or a4)", v);
            continue;
        }
        if (!strcmp(argv[i], "--quiet")) quiet = true;
        else if ((rc = cli_opt(argc, argv, &i, "--model", &v))) { if (rc < 0) return -1; model_path = v; }
        else if ((rc = cli_opt(argc, argv, &i, "--tokenizer", &v))) { if (rc < 0) return -1; tok_path = v; }
        else if ((rc = cli_opt(argc, argv, &i, "--text", &v))) { if (rc < 0) return -1; text_path = v; }
        else if ((rc = cli_opt(argc, argv, &i, "--json", &v))) { if (rc < 0) return -1; json_path = v; }
        else if ((rc = cli_opt(argc, argv, &i, "--protocol", &v))) { if (rc < 0) return -1; protocol = v; }
        else if ((rc = cli_opt(argc, argv, &i, "--ctx", &v))) { if (rc < 0 || cli_int(v, "--ctx", 4, 1 << 20, &ctx)) return -1; }
        else if ((rc = cli_opt(argc, argv, &i, "--chunks", &v))) { if (rc < 0 || cli_int(v, "--chunks", 1, 1 << 30, &max_chunks)) return -1; }
        else if ((rc = cli_opt(argc, argv, &i, "--threads", &v))) { if (rc < 0 || cli_int(v, "--threads", 1, 1024, &threads)) return -1; }
        else return cli_unknown("ppl", argv[i]);
    }
    if (!model_path || !text_path) return fputs(ppl_help, stderr), -1;
    const bool llamacpp = !strcmp(protocol, "llamacpp");
    if (!llamacpp && strcmp(protocol, "chunks"))
        return err("ppl: unknown protocol '%s' (expected llamacpp or chunks)", protocol);
    lb_set_threads(threads);

    struct model m;
    struct tokenizer *tok = NULL;
    struct ppl_result r = {0};
    char *text = NULL;
    size_t len;
    int ret = -1;
    const struct ppl_opts o = {.text_name = text_path, .ctx = ctx, .max_chunks = max_chunks,
                               .protocol = llamacpp ? PPL_LLAMACPP : PPL_CHUNKS,
                               .compute = (enum compute_dtype)compute, .quiet = quiet};
    if (model_load(&m, model_path)) return -1;
    if (cli_load_tokenizer(&tok, &m, tok_path) ||
        read_file_all(text_path, "the text", &text, &len) || ppl_run(&m, tok, text, len, &o, &r))
        goto out;
    printf("protocol     %s (ctx %d, %s)\n", protocol, ctx,
           llamacpp ? "BOS-started chunks, second half scored" : "every position scored");
    printf("PPL = %.4f +/- %.5f\n", r.ppl, r.ppl_stderr);
    printf("mean NLL     %.6f nats/token\n", r.mean_nll);
    printf("tokens       %d in the text, %ld scored, %d chunks\n", r.text_tokens, r.scored,
           r.n_chunks);
    printf("speed        %.1f tokens/s forward (%.2f s, %d threads)\n", r.tokens_per_s, r.seconds,
           lb_threads());
    if (r.compute == COMPUTE_INT8)
        printf("compute      int8 on %ld of %ld matmuls (the rest fp32)\n", r.n_mm_int8, r.n_mm);
    else
        printf("compute      %s\n", compute_name(r.compute));
    if (json_path) {
        /* paths as text: a file name that is not UTF-8 must not cost the whole JSON */
        json_t *j = json_pack("{s:o, s:o, s:s, s:s, s:s, s:i, s:f, s:f, s:f, s:i, s:I, s:i, s:f, "
                              "s:f, s:i}", "model", text_json(model_path), "text",
                              text_json(text_path), "protocol", protocol, "kernels", kernels_isa(),
                              "compute", compute_name(r.compute), "ctx", ctx, "ppl", r.ppl,
                              "ppl_stderr", r.ppl_stderr, "mean_nll", r.mean_nll, "text_tokens",
                              r.text_tokens, "scored_tokens", (json_int_t)r.scored, "chunks",
                              r.n_chunks, "tokens_per_s", r.tokens_per_s, "seconds", r.seconds,
                              "threads", lb_threads());
        if (!j || json_dump_file(j, json_path, JSON_INDENT(2) | JSON_SORT_KEYS)) {
            json_decref(j);
            err("%s: cannot write the JSON result", json_path);
            goto out;
        }
        json_decref(j);
    }
    ret = 0;
out:
    ppl_result_release(&r);
    free(text);
    tokenizer_free(tok);
    model_release(&m);
    return ret;
}

/* ---- nll: llama2.c protocol ---- */

static const char nll_help[] =
    "usage: lowbit nll --model M [--tokenizer T] --text FILE [--sep LINE] [--ctx N]\n"
    "                  [--max-docs K] [--threads N] [--quiet]\n"
    "  Mean next-token NLL (nats) over documents, llama2.c's protocol: the text is split at\n"
    "  lines equal to --sep (default <|endoftext|>), each document is stripped, encoded with\n"
    "  BOS and cut to --ctx tokens (default 512), and every position predicts the next token.\n";

static char *strip(char *a, char *b) { /* [a, b) -> NUL-terminated stripped, in place */
    while (a < b && (*a == ' ' || *a == '\n' || *a == '\t' || *a == '\r')) a++;
    while (b > a && (b[-1] == ' ' || b[-1] == '\n' || b[-1] == '\t' || b[-1] == '\r')) b--;
    *b = 0;
    return a;
}

int cmd_nll(int argc, char **argv) {
    const char *model_path = NULL, *tok_path = NULL, *text_path = NULL, *sep = "<|endoftext|>", *v;
    int ctx = 512, max_docs = 0, threads = 0, rc;
    bool quiet = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help")) return fputs(nll_help, stdout), 0;
        if (!strcmp(argv[i], "--quiet")) quiet = true;
        else if ((rc = cli_opt(argc, argv, &i, "--model", &v))) { if (rc < 0) return -1; model_path = v; }
        else if ((rc = cli_opt(argc, argv, &i, "--tokenizer", &v))) { if (rc < 0) return -1; tok_path = v; }
        else if ((rc = cli_opt(argc, argv, &i, "--text", &v))) { if (rc < 0) return -1; text_path = v; }
        else if ((rc = cli_opt(argc, argv, &i, "--sep", &v))) { if (rc < 0) return -1; sep = v; }
        else if ((rc = cli_opt(argc, argv, &i, "--ctx", &v))) { if (rc < 0 || cli_int(v, "--ctx", 2, 1 << 20, &ctx)) return -1; }
        else if ((rc = cli_opt(argc, argv, &i, "--max-docs", &v))) { if (rc < 0 || cli_int(v, "--max-docs", 1, 1 << 30, &max_docs)) return -1; }
        else if ((rc = cli_opt(argc, argv, &i, "--threads", &v))) { if (rc < 0 || cli_int(v, "--threads", 1, 1024, &threads)) return -1; }
        else return cli_unknown("nll", argv[i]);
    }
    if (!model_path || !text_path) return fputs(nll_help, stderr), -1;
    lb_set_threads(threads);
    struct model m;
    struct tokenizer *tok = NULL;
    struct fwd_state s = {0};
    char *text = NULL;
    size_t len;
    int ret = -1;
    float *logits = NULL;
    if (model_load(&m, model_path)) return -1;
    if (cli_load_tokenizer(&tok, &m, tok_path) || read_file_all(text_path, "the text", &text, &len)) goto out;
    if (tokenizer_bos(tok) < 0) {
        err("nll: the tokenizer has no BOS token, which this protocol needs");
        goto out;
    }
    if (fwd_init(&s, &m, ctx, LB_MIN(ctx, 512))) goto out;
    logits = xcalloc((size_t)s.max_batch * m.cfg.vocab_size, sizeof(float), "logits");
    if (!logits) goto out;
    /* count documents first, for progress */
    const size_t sep_len = strlen(sep);
    long n_docs_total = 1;
    for (char *p = text; (p = strstr(p, sep)); p += sep_len) n_docs_total++;
    struct nll_acc acc = {0};
    int n_docs = 0, n_trunc = 0;
    double t0 = now_s();
    char *p = text, *end = text + len;
    while (p < end && (!max_docs || n_docs < max_docs)) {
        /* the document runs to the next line that is exactly sep */
        char *q = p, *next = end;
        while ((q = strstr(q, sep))) {
            bool line_start = q == text || q[-1] == '\n';
            char *after = q + sep_len;
            bool line_end = !*after || *after == '\n' || (*after == '\r' && after[1] == '\n');
            if (line_start && line_end) {
                next = q;
                break;
            }
            q = after;
        }
        char *doc_end = next;
        char *after_sep = next == end ? end : next + sep_len;
        char *doc = strip(p, doc_end);
        p = after_sep;
        if (!*doc) continue;
        int *ids = NULL, n = 0;
        if (tokenizer_encode(tok, doc, strlen(doc), true, &ids, &n)) goto out;
        if (n > ctx) {
            n = ctx;
            n_trunc++;
        }
        if (n >= 2) rc = ppl_score_window(&s, ids, n, 0, logits, &acc);
        else rc = 0;
        free(ids);
        if (rc) goto out;
        n_docs++;
        cli_progress("nll", n_docs, max_docs ? LB_MIN(max_docs, n_docs_total) : n_docs_total, t0,
                     quiet);
    }
    if (!acc.n) {
        err("nll: %s has no document with at least one token to predict", text_path);
        goto out;
    }
    double mean = acc.sum / acc.n, var = acc.sum2 / acc.n - mean * mean;
    printf("protocol     llama2.c (BOS + each document, at most %d tokens)\n", ctx);
    printf("mean NLL     %.4f nats/token (+/- %.4f), perplexity %.4f\n", mean,
           acc.n > 1 && var > 0 ? sqrt(var / (acc.n - 1)) : 0.0, exp(mean));
    printf("documents    %d (%d cut to %d tokens), %ld tokens scored\n", n_docs, n_trunc, ctx, acc.n);
    printf("time         %.2f s\n", now_s() - t0);
    ret = 0;
out:
    if (!quiet && isatty(2)) fputc('\n', stderr);
    free(logits);
    free(text);
    fwd_release(&s);
    tokenizer_free(tok);
    model_release(&m);
    return ret;
}
