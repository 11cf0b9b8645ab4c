/* gen/cmd_model.c: lowbit info, generate, tokenize, logprobs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen/cli.h"
#include "kernels/matmul.h"

/* ---- info ---- */

static const char info_help[] =
    "usage: lowbit info MODEL [--tensors]\n"
    "  MODEL: a GGUF file, a llama2.c checkpoint, or a Hugging Face directory.\n"
    "  Prints the architecture, shapes, dtypes, parameter count and bits per weight, and the\n"
    "  compute dtypes its weights support (--compute of ppl/eval/kld/bench: fp32, fp16, bf16\n"
    "  always; int8 on how many of the weight matmuls); --tensors also lists every tensor.\n";

int cmd_info(int argc, char **argv) {
    const char *path = NULL;
    bool tensors = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help")) return fputs(info_help, stdout), 0;
        if (!strcmp(argv[i], "--tensors")) tensors = true;
        else if (argv[i][0] == '-' || path) return cli_unknown("info", argv[i]);
        else path = argv[i];
    }
    if (!path) return fputs(info_help, stderr), -1;
    struct model m;
    if (model_load(&m, path)) return -1;
    const struct model_config *c = &m.cfg;
    int64_t n_params = model_n_params(&m);
    size_t bytes = model_weight_bytes(&m);
    printf("model        %s\n", path);
    printf("format       %s\n", model_format_name(m.format));
    printf("architecture %s\n", c->arch);
    printf("dim          %d\nhidden_dim   %d\nn_layers     %d\nn_heads      %d\nn_kv_heads   %d\n"
           "head_dim     %d\nvocab_size   %d\ncontext      %d\n",
           c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim,
           c->vocab_size, c->ctx_len);
    printf("rope         %s, theta %g%s\n", c->rope_style == ROPE_NORM ? "interleaved pairs" : "half split (neox)",
           (double)c->rope_theta, c->rope_factor > 0 || m.rope_freq_factors ? ", scaled (llama3)" : "");
    printf("norm_eps     %g\n", (double)c->norm_eps);
    printf("output       %s\n", m.tied_output ? "tied to token_embd" : "separate");
    printf("qkv_bias     %s\n", c->qkv_bias ? "yes" : "no");
    int64_t per_type[DTYPE_COUNT] = {0};
    for (int i = 0; i < m.n_tensors; i++) per_type[m.tensors[i].type] += tensor_nelements(&m.tensors[i]);
    printf("dtypes      ");
    for (int t = 0; t < DTYPE_COUNT; t++)
        if (per_type[t])
            printf(" %s %.1f%%", dtype_get((enum dtype)t)->name, 100.0 * per_type[t] / n_params);
    printf("\n");
    printf("tensors      %d\n", m.n_tensors);
    printf("parameters   %lld (%.2fM)\n", (long long)n_params, n_params / 1e6);
    if (c->n_expert > 0)
        printf("experts      %d, %d per token: %lld parameters active (%.2fM)\n", c->n_expert,
               c->n_expert_used, (long long)model_n_active_params(&m),
               model_n_active_params(&m) / 1e6);
    printf("weight bytes %zu (%.2f MiB)\n", bytes, bytes / 1048576.0);
    printf("bits/weight  %.3f\n", n_params ? 8.0 * (double)bytes / (double)n_params : 0.0);
    int n_i8, n_mm;
    fwd_int8_coverage(&m, &n_i8, &n_mm);
    printf("compute      fp32 fp16 bf16%s (int8 on %d of %d weight matmuls%s)\n",
           n_i8 ? " int8" : "", n_i8, n_mm, n_i8 == n_mm ? "" : ", the rest fp32");
    if (tensors)
        for (int i = 0; i < m.n_tensors; i++) {
            const struct tensor *t = &m.tensors[i];
            printf("  %-32s %-5s [", t->name, dtype_get(t->type)->name);
            for (int d = 0; d < t->n_dims; d++) printf("%s%lld", d ? ", " : "", (long long)t->ne[d]);
            printf("]\n");
        }
    model_release(&m);
    return 0;
}

/* ---- generate ---- */

static const char gen_help[] =
    "usage: lowbit generate --model M [--tokenizer T] [--prompt TEXT] [-n N] [--threads N]\n"
    "  Greedy decoding from BOS + the prompt, N new tokens at most (default 64), stopping at\n"
    "  BOS/EOS. Prints the text on stdout and tokens/s on stderr.\n";

int cmd_generate(int argc, char **argv) {
    const char *model_path = NULL, *tok_path = NULL, *prompt = "", *v;
    int n_new = 64, threads = 0, rc;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help")) return fputs(gen_help, stdout), 0;
        if ((rc = cli_opt(argc, argv, &i, "--model", &v))) { if (rc < 0) return -1; model_path = v; }
        else if ((rc = cli_opt(argc, argv, &i, "--tokenizer", &v))) { if (rc < 0) return -1; tok_path = v; }
        else if ((rc = cli_opt(argc, argv, &i, "--prompt", &v))) { if (rc < 0) return -1; prompt = v; }
        else if ((rc = cli_opt(argc, argv, &i, "-n", &v))) { if (rc < 0 || cli_int(v, "-n", 1, 1 << 20, &n_new)) return -1; }
        else if ((rc = cli_opt(argc, argv, &i, "--threads", &v))) { if (rc < 0 || cli_int(v, "--threads", 1, 1024, &threads)) return -1; }
        else return cli_unknown("generate", argv[i]);
    }
    if (!model_path) return fputs(gen_help, stderr), -1;
    lb_set_threads(threads);
    struct model m;
    struct tokenizer *tok = NULL;
    struct fwd_state s = {0};
    int *ids = NULL, n_ids = 0, ret = -1;
    float *logits = NULL;
    if (model_load(&m, model_path)) return -1;
    if (cli_load_tokenizer(&tok, &m, tok_path)) goto out;
    if (tokenizer_encode(tok, prompt, strlen(prompt), true, &ids, &n_ids)) goto out;
    int n_ctx = m.cfg.ctx_len > 0 ? m.cfg.ctx_len : 2048;
    if (n_ids + n_new > n_ctx) n_new = n_ctx - n_ids;
    if (n_new <= 0) {
        err("generate: the prompt (%d tokens) fills the context of %d", n_ids, n_ctx);
        goto out;
    }
    if (fwd_init(&s, &m, n_ids + n_new, 512)) goto out;
    logits = xmalloc((size_t)m.cfg.vocab_size * sizeof(float), "logits");
    if (!logits) goto out;
    double t0 = now_s();
    if (forward(&s, ids, n_ids, logits, true)) goto out;
    int prev = ids[n_ids - 1], n_done = 0;
    char piece[256];
    for (int i = 0; i < n_ids; i++)
        if (i > 0 || ids[0] != tokenizer_bos(tok)) {
            if (tokenizer_decode(tok, i ? ids[i - 1] : -1, ids[i], piece, sizeof piece) >= 0)
                fputs(piece, stdout);
        }
    for (; n_done < n_new; n_done++) {
        int next;
        logprob_of(logits, m.cfg.vocab_size, 0, &next);
        if (next == tokenizer_eos(tok) || next == tokenizer_bos(tok)) break;
        if (tokenizer_decode(tok, prev, next, piece, sizeof piece) >= 0) fputs(piece, stdout);
        fflush(stdout);
        prev = next;
        if (n_done + 1 < n_new && forward(&s, &next, 1, logits, true)) goto out;
    }
    putchar('\n');
    double el = now_s() - t0;
    fprintf(stderr, "generate: %d tokens in %.2f s (%.1f tokens/s)\n", n_done, el, n_done / el);
    ret = 0;
out:
    free(logits);
    free(ids);
    fwd_release(&s);
    tokenizer_free(tok);
    model_release(&m);
    return ret;
}

/* ---- tokenize ---- */

static const char tok_help[] =
    "usage: lowbit tokenize (--model M | --tokenizer T) [--text-file F | TEXT] [--no-bos]\n"
    "  Prints the token ids, one line, space separated, with the tokenizer's default special\n"
    "  tokens (Hugging Face's encode(text); BOS for llama2.c and SentencePiece GGUF) unless\n"
    "  --no-bos.\n";

int cmd_tokenize(int argc, char **argv) {
    const char *model_path = NULL, *tok_path = NULL, *file = NULL, *text = NULL, *v;
    bool bos = true;
    int rc;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help")) return fputs(tok_help, stdout), 0;
        if (!strcmp(argv[i], "--no-bos")) bos = false;
        else if ((rc = cli_opt(argc, argv, &i, "--model", &v))) { if (rc < 0) return -1; model_path = v; }
        else if ((rc = cli_opt(argc, argv, &i, "--tokenizer", &v))) { if (rc < 0) return -1; tok_path = v; }
        else if ((rc = cli_opt(argc, argv, &i, "--text-file", &v))) { if (rc < 0) return -1; file = v; }
        else if (argv[i][0] == '-' || text) return cli_unknown("tokenize", argv[i]);
        else text = argv[i];
    }
    if (!model_path && !tok_path) return fputs(tok_help, stderr), -1;
    struct model m = MODEL_INIT;
    struct tokenizer *tok = NULL;
    char *buf = NULL;
    size_t len = 0;
    int *ids = NULL, n = 0, ret = -1;
    if (model_path && model_load(&m, model_path)) return -1;
    if (cli_load_tokenizer(&tok, &m, tok_path)) goto out;
    if (file) {
        if (read_file_all(file, "the text", &buf, &len)) goto out;
        text = buf;
    } else if (!text) {
        text = "";
    }
    if (!file) len = strlen(text);
    if (tokenizer_encode_ex(tok, text, len, bos ? TOK_ENCODE_SPECIAL : 0, &ids, &n)) goto out;
    for (int i = 0; i < n; i++) printf("%s%d", i ? " " : "", ids[i]);
    printf("\n");
    ret = 0;
out:
    free(ids);
    free(buf);
    tokenizer_free(tok);
    model_release(&m);
    return ret;
}

/* ---- logprobs ---- */

static const char lp_help[] =
    "usage: lowbit logprobs --model M --tokens ID,ID,... [-o FILE] [--threads N]\n"
    "  Runs the sequence in one batch. Prints, per position, the log-probability of the next\n"
    "  token and the argmax; -o writes the full log-softmax rows as little-endian float32\n"
    "  [n_tokens][vocab].\n";

int cmd_logprobs(int argc, char **argv) {
    const char *model_path = NULL, *toks = NULL, *outp = NULL, *v;
    int threads = 0, rc;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help")) return fputs(lp_help, stdout), 0;
        if ((rc = cli_opt(argc, argv, &i, "--model", &v))) { if (rc < 0) return -1; model_path = v; }
        else if ((rc = cli_opt(argc, argv, &i, "--tokens", &v))) { if (rc < 0) return -1; toks = v; }
        else if ((rc = cli_opt(argc, argv, &i, "-o", &v))) { if (rc < 0) return -1; outp = v; }
        else if ((rc = cli_opt(argc, argv, &i, "--threads", &v))) { if (rc < 0 || cli_int(v, "--threads", 1, 1024, &threads)) return -1; }
        else return cli_unknown("logprobs", argv[i]);
    }
    if (!model_path || !toks) return fputs(lp_help, stderr), -1;
    lb_set_threads(threads);
    int n = 1;
    for (const char *p = toks; *p; p++) n += *p == ',';
    int *ids = xcalloc((size_t)n, sizeof(int), "token ids");
    if (!ids) return -1;
    struct model m;
    struct fwd_state s = {0};
    float *logits = NULL, *row = NULL;
    FILE *f = NULL;
    int ret = -1;
    {
        const char *p = toks;
        for (int i = 0; i < n; i++) {
            char *end;
            long x = strtol(p, &end, 10);
            if (end == p || (*end && *end != ',')) {
                free(ids);
                return err("--tokens: '%s' is not a comma-separated list of ids", toks);
            }
            ids[i] = (int)x;
            p = *end ? end + 1 : end;
        }
    }
    if (model_load(&m, model_path)) {
        free(ids);
        return -1;
    }
    const int V = m.cfg.vocab_size;
    if (fwd_init(&s, &m, n, 512)) goto out;
    logits = xcalloc((size_t)n * V, sizeof(float), "logits");
    row = xcalloc((size_t)V, sizeof(float), "logits");
    if (!logits || !row || forward(&s, ids, n, logits, false)) goto out;
    if (outp && !(f = fopen(outp, "wb"))) {
        err("%s: cannot write", outp);
        goto out;
    }
    for (int t = 0; t < n; t++) {
        int am;
        log_softmax(logits + (size_t)t * V, V, row);
        double lp = t + 1 < n ? logprob_of(logits + (size_t)t * V, V, ids[t + 1], &am) : 0;
        if (t + 1 >= n) logprob_of(logits + (size_t)t * V, V, 0, &am);
        printf("%d\t%d\t%.6f\t%d\n", t, ids[t], lp, am);
        if (f && fwrite(row, sizeof(float), (size_t)V, f) != (size_t)V) {
            err("%s: write error", outp);
            goto out;
        }
    }
    ret = 0;
out:
    if (f && fclose(f) && !ret) ret = err("%s: write error", outp);
    free(row);
    free(logits);
    free(ids);
    fwd_release(&s);
    model_release(&m);
    return ret;
}
