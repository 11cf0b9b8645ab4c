/* gen/bench.c: `lowbit bench`, prefill speed of one model beside this machine's FMA peak.
 *
 * What is measured, per thread count n (llama-bench "pp<ctx>" protocol, as tests/bench.sh's peer):
 *  - tokens: ctx ids, BOS first; from --tokens FILE, from --text F (tokenized), or by default
 *    pseudo-random ids in [0, vocab) from minstd (x = x*48271 mod 2^31-1, seed --seed, id = x mod
 *    vocab), the same generator tests/bench.sh writes its token file with.
 *  - one untimed forward() of all ctx tokens from an empty cache (page-in of the mapped weights,
 *    first-touch of the scratch), then --reps timed forward() calls of the ctx tokens in one batch,
 *    each from an empty cache (fwd_truncate to 0, not timed) with logits for the last position only.
 *    tokens/s = ctx / wall time of one forward() call; the median over reps is reported (min, max too).
 *  - GFLOP/s = the analytic FLOP count of one pass / the median time. Count (multiply-add = 2 FLOPs):
 *    per token and layer 2·(D·q + 2·D·kvd + q·D + 3·D·H) for the q, k, v, o, gate, up, down matmuls
 *    (q = n_heads·hd), attention 2·2·hd·n_heads·(t+1) for the token at position t (Q·Kᵀ and P·V over
 *    the causal prefix), and 2·D·V once for the output row of the last position. Norms, RoPE,
 *    softmax and SwiGLU are not counted. The same count applies to any engine doing this pass, so
 *    GFLOP/s ratios equal tokens/s ratios. The forward pass's own counter (fwd_state.flops) is
 *    reported beside it as a cross-check.
 *  - the fp32 FMA peak on n threads, kernels_fma_peak_gflops(n, --peak-seconds), measured in this
 *    process right before and right after the timed forwards; the larger of the two is the
 *    baseline ("% of peak" = GFLOP/s / peak), so a noisy neighbour during one of them does not
 *    inflate the percentage.
 *  - the last position's logits of every run are compared bit for bit (they must not depend on
 *    the run or the thread count) and checked finite; a mismatch is reported, not hidden.
 * Results go to stdout (one table line per thread count) and, with --json, to a file; progress and
 * diagnostics go to stderr. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen/cli.h"
#include "kernels/aqlm.h"
#include "kernels/attention.h"
#include "kernels/matmul.h"
#include "kernels/matmul_bf16.h"
#include "kernels/qint.h"

#define BENCH_MAX_THREADS 64

struct bench_opts {
    const char *model, *json, *tokens, *text, *tokenizer;
    int ctx, reps, n_threads, threads[BENCH_MAX_THREADS];
    unsigned seed;
    double peak_seconds;
    enum compute_dtype compute;
    bool peak_only;
};

struct bench_run {
    int threads;                     /* as lb_threads() reports after lb_set_threads() */
    double t_median, t_min, t_max;   /* seconds per forward() */
    double peak_before, peak_after;  /* GFLOP/s */
    double fwd_flops;                /* fwd_state.flops gained by one timed pass (0 = not counted) */
    double *seconds;                 /* reps */
};

static void bench_usage(FILE *f) {
    fprintf(f,
            "usage: lowbit bench --model M [--ctx 512] [--threads 1,2] [--reps 5] [--json OUT]\n"
            "                    [--tokens FILE | --text FILE [--tokenizer T]] [--seed 1]\n"
            "                    [--peak-seconds 0.5] [--compute fp32|fp16|bf16|int8]\n"
            "Prefill tokens/s (ctx tokens in one batch from an empty cache, last-position logits),\n"
            "median of reps after one warm-up, per thread count; GFLOP/s from the analytic FLOP\n"
            "count of the pass; the fp32 FMA peak measured in the same process. --compute: the\n"
            "matmuls' arithmetic (default fp32; int8 = int8 activations and integer dot products\n"
            "where the weight type allows, see lowbit ppl --help).\n"
            "  --tokens FILE  token ids (whitespace or comma separated), the first ctx are used\n"
            "  --text FILE    a text, tokenized with BOS (--tokenizer overrides the model's own)\n"
            "  default        BOS + pseudo-random ids (minstd from --seed)\n"
            "       lowbit bench --peak-only [--threads 1,2] [--peak-seconds 0.5]\n"
            "  prints only the fp32 FMA peak per thread count (no model)\n");
}

static int parse_int(const char *opt, const char *s, int lo, int hi, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return err("bench: %s wants an integer in [%d, %d], got '%s'", opt, lo, hi, s);
    *out = (int)v;
    return 0;
}

static int parse_threads(const char *s, struct bench_opts *o) {
    char buf[256];
    if (strlen(s) >= sizeof buf) return err("bench: --threads list too long");
    strcpy(buf, s);
    o->n_threads = 0;
    for (char *save = NULL, *p = strtok_r(buf, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        if (o->n_threads == BENCH_MAX_THREADS) return err("bench: more than %d thread counts", BENCH_MAX_THREADS);
        if (parse_int("--threads", p, 1, 1024, &o->threads[o->n_threads])) return -1;
        o->n_threads++;
    }
    if (!o->n_threads) return err("bench: --threads wants a list like 1,2");
    return 0;
}

static int parse_args(int argc, char **argv, struct bench_opts *o) {
    *o = (struct bench_opts){.ctx = 512, .reps = 5, .n_threads = 2, .threads = {1, 2}, .seed = 1,
                             .peak_seconds = 0.5};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            bench_usage(stdout);
            return 1;
        }
        if (!strcmp(a, "--peak-only")) {
            o->peak_only = true;
            continue;
        }
        if (i + 1 >= argc) return err("bench: unknown option or missing value: '%s' (see --help)", a);
        const char *v = argv[++i];
        int n;
        if (!strcmp(a, "--model")) o->model = v;
        else if (!strcmp(a, "--json")) o->json = v;
        else if (!strcmp(a, "--tokens")) o->tokens = v;
        else if (!strcmp(a, "--text")) o->text = v;
        else if (!strcmp(a, "--tokenizer")) o->tokenizer = v;
        else if (!strcmp(a, "--ctx")) {
            if (parse_int(a, v, 2, 1 << 20, &o->ctx)) return -1;
        } else if (!strcmp(a, "--reps")) {
            if (parse_int(a, v, 1, 1000, &o->reps)) return -1;
        } else if (!strcmp(a, "--seed")) {
            if (parse_int(a, v, 1, 2147483646, &n)) return -1;
            o->seed = (unsigned)n;
        } else if (!strcmp(a, "--peak-seconds")) {
            char *end;
            o->peak_seconds = strtod(v, &end);
            if (end == v || *end || !(o->peak_seconds > 0 && o->peak_seconds <= 60))
                return err("bench: --peak-seconds wants a number in (0, 60], got '%s'", v);
        } else if (!strcmp(a, "--threads")) {
            if (parse_threads(v, o)) return -1;
        } else if (!strcmp(a, "--compute")) {
            if ((n = compute_from_name(v)) < 0)
                return err("bench: unknown --compute '%s' (expected fp32, fp16, bf16, int8, a8 or a4)", v);
            o->compute = (enum compute_dtype)n;
        } else
            return err("bench: unknown option '%s' (see --help)", a);
    }
    if (!o->model && !o->peak_only) return err("bench: --model is required (see --help)");
    if (o->tokens && o->text) return err("bench: give --tokens or --text, not both");
    if (o->tokenizer && !o->text) return err("bench: --tokenizer only goes with --text");
    return 0;
}

/* ids from a file of integers separated by whitespace or commas; at least ctx of them */
static int read_token_file(const char *path, int ctx, int vocab, int *ids) {
    char *data;
    size_t len;
    if (read_file_all(path, "the token file", &data, &len)) return -1;
    int n = 0;
    const char *p = data;
    while (n < ctx) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == ',') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v >= vocab) {
            free(data);
            return err("bench: %s: token %d is not an id in [0, %d)", path, n, vocab);
        }
        ids[n++] = (int)v;
        p = end;
    }
    free(data);
    if (n < ctx) return err("bench: %s holds %d token ids, --ctx %d needs that many", path, n, ctx);
    return 0;
}

/* BOS of the model's own vocab when its file carries one, else 1 (SentencePiece Llama's BOS) */
static int model_bos(const struct model *m) {
    int bos = 1;
    if (m->gguf) {
        struct tokenizer *tok = NULL;
        const bool quiet_was = err_quiet();
        err_set_quiet(true);
        if (!tokenizer_from_gguf(&tok, m->gguf)) {
            if (tokenizer_bos(tok) >= 0) bos = tokenizer_bos(tok);
            tokenizer_free(tok);
        }
        err_set_quiet(quiet_was);
    }
    return bos < m->cfg.vocab_size ? bos : 0;
}

static int make_tokens(const struct bench_opts *o, const struct model *m, int *ids) {
    int vocab = m->cfg.vocab_size;
    if (o->tokens) return read_token_file(o->tokens, o->ctx, vocab, ids);
    if (o->text) {
        struct tokenizer *tok;
        char *text;
        size_t len;
        int *enc, n_enc;
        if (cli_load_tokenizer(&tok, m, o->tokenizer)) return -1;
        if (read_file_all(o->text, "the text", &text, &len)) {
            tokenizer_free(tok);
            return -1;
        }
        int rc = tokenizer_encode(tok, text, len, true, &enc, &n_enc);
        free(text);
        tokenizer_free(tok);
        if (rc) return -1;
        if (n_enc < o->ctx) {
            free(enc);
            return err("bench: %s gives %d tokens, --ctx %d needs that many", o->text, n_enc, o->ctx);
        }
        for (int i = 0; i < o->ctx; i++) {
            if (enc[i] < 0 || enc[i] >= vocab) {
                free(enc);
                return err("bench: the tokenizer gave id %d, outside the model's vocab %d", enc[i], vocab);
            }
            ids[i] = enc[i];
        }
        free(enc);
        return 0;
    }
    uint64_t x = o->seed;
    ids[0] = model_bos(m);
    for (int i = 1; i < o->ctx; i++) {
        x = x * 48271u % 2147483647u;
        ids[i] = (int)(x % (uint64_t)vocab);
    }
    return 0;
}

/* the analytic FLOP count of one prefill pass of T tokens from an empty cache (see the top) */
static double pass_flops(const struct model_config *c, int T) {
    double D = c->dim, H = c->hidden_dim, V = c->vocab_size, hd = c->head_dim;
    double q = (double)c->n_heads * hd, kvd = (double)c->n_kv_heads * hd;
    double per_tok = 2.0 * (D * q + 2.0 * D * kvd + q * D + 3.0 * D * H);
    double attn = 4.0 * hd * c->n_heads * ((double)T * (T + 1) / 2.0); /* Σ_t (t+1) */
    return c->n_layers * (T * per_tok + attn) + 2.0 * D * V;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static const char *weight_dtype(const struct model *m) {
    return m->cfg.n_layers > 0 ? dtype_get(m->layers[0].lin[LIN_Q].type)->name : "?";
}

static int write_json(const struct bench_opts *o, const struct model *m, const char *token_src,
                      double flops, const struct bench_run *runs, bool identical) {
    json_t *arr = json_array(), *root;
    for (int i = 0; i < o->n_threads; i++) {
        const struct bench_run *r = &runs[i];
        double peak = LB_MAX(r->peak_before, r->peak_after), gf = flops / r->t_median / 1e9;
        json_t *secs = json_array();
        for (int k = 0; k < o->reps; k++) json_array_append_new(secs, json_real(r->seconds[k]));
        json_array_append_new(
            arr, json_pack("{s:i, s:i, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:o}", "threads",
                           r->threads, "threads_asked", o->threads[i], "tok_s_median",
                           o->ctx / r->t_median, "tok_s_min", o->ctx / r->t_max, "tok_s_max",
                           o->ctx / r->t_min, "gflops", gf,
                           "fma_peak_gflops", peak, "fma_peak_before", r->peak_before,
                           "fma_peak_after", r->peak_after, "peak_fraction",
                           peak > 0 ? gf / peak : 0.0, "fwd_flops_per_pass", r->fwd_flops,
                           "seconds", secs));
    }
    int n_i8, n_mm;
    fwd_int8_coverage(m, &n_i8, &n_mm);
    root = json_pack("{s:s, s:s, s:I, s:I, s:s, s:{s:s, s:s, s:s, s:s, s:s, s:s}, s:s, s:i, s:i, "
                     "s:i, s:i, s:s, s:f, s:b, s:o}",
                     "model", o->model, "dtype", weight_dtype(m), "params",
                     (json_int_t)model_n_params(m), "weight_bytes", (json_int_t)model_weight_bytes(m),
                     "isa", kernels_isa(), "kernel_paths", "matmul", kernels_isa(), "matmul_q",
                     matmul_q_path(), "matmul_i8", matmul_i8_path(), "matmul_bf16",
                     matmul_bf16_path(), "aqlm", aqlm_matmul_path(), "attention", attention_path(), "compute", compute_name(o->compute),
                     "compute_int8_matmuls", o->compute == COMPUTE_INT8 ? n_i8 : 0, "matmuls", n_mm,
                     "ctx", o->ctx, "reps", o->reps, "tokens", token_src, "flops_per_pass", flops,
                     "logits_identical", identical, "runs", arr);
    if (!root) return err("bench: building the JSON result failed");
    int rc = json_dump_file(root, o->json, JSON_INDENT(2) | JSON_REAL_PRECISION(8));
    json_decref(root);
    if (rc) return err("bench: cannot write %s: %s", o->json, strerror(errno));
    return 0;
}

int cmd_bench(int argc, char **argv) {
    struct bench_opts o;
    int rc = parse_args(argc, argv, &o);
    if (rc) return rc < 0 ? -1 : 0;
    if (o.peak_only) {
        printf("kernels: using %s\n", kernels_isa());
        for (int i = 0; i < o.n_threads; i++) {
            lb_set_threads(o.threads[i]);
            printf("fma_peak_gflops threads=%d %.1f\n", lb_threads(),
                   kernels_fma_peak_gflops(lb_threads(), o.peak_seconds));
        }
        return 0;
    }

    struct model m = MODEL_INIT;
    struct fwd_state s;
    bool have_state = false, identical = true, finite = true;
    int *ids = NULL;
    float *logits = NULL, *ref = NULL;
    struct bench_run runs[BENCH_MAX_THREADS] = {{0}};
    rc = -1;

    if (model_load(&m, o.model)) return -1;
    const struct model_config *c = &m.cfg;
    int vocab = c->vocab_size;
    if (!(ids = xmalloc(sizeof *ids * (size_t)o.ctx, "bench token ids"))) goto out;
    if (make_tokens(&o, &m, ids)) goto out;
    const char *token_src = o.tokens ? o.tokens : o.text ? o.text : "minstd";
    if (!(logits = xmalloc(sizeof *logits * (size_t)vocab, "bench logits")) ||
        !(ref = xmalloc(sizeof *ref * (size_t)vocab, "bench logits")))
        goto out;
    if (fwd_init(&s, &m, o.ctx, o.ctx)) goto out;
    have_state = true;
    s.compute = o.compute;

    double flops = pass_flops(c, o.ctx);
    printf("kernels: using %s\n", kernels_isa());
    printf("kernel paths: matmul %s, matmul_q %s, matmul_i8 %s, aqlm %s, attention %s\n",
           kernels_isa(), matmul_q_path(), matmul_i8_path(), aqlm_matmul_path(),
           attention_path());
    int n_i8, n_mm;
    fwd_int8_coverage(&m, &n_i8, &n_mm);
    if (o.compute == COMPUTE_INT8)
        printf("compute: int8 (%s) on %d of %d weight matmuls, the rest fp32\n", matmul_i8_path(),
               n_i8, n_mm);
    else if (o.compute == COMPUTE_BF16)
        printf("compute: bf16 (matmul_bf16 %s for f32/f16/bf16 weights, else rounded fp32)\n",
               matmul_bf16_path());
    else
        printf("compute: %s\n", compute_name(o.compute));
    printf("model: %s (%s weights, %.1fM params, %.1f MiB), ctx %d, reps %d, tokens: %s\n", o.model,
           weight_dtype(&m), model_n_params(&m) / 1e6, model_weight_bytes(&m) / 1048576.0, o.ctx,
           o.reps, o.tokens ? o.tokens : o.text ? o.text : "BOS + minstd pseudo-random ids");
    printf("analytic work: %.3f GFLOP per pass (matmuls + causal attention + 1 output row)\n",
           flops / 1e9);
    printf("%7s %11s %17s %9s %9s %13s %9s\n", "threads", "tok/s", "(min-max)", "s/pass", "GFLOP/s",
           "FMA peak", "of peak");
    fflush(stdout);

    for (int i = 0; i < o.n_threads; i++) {
        struct bench_run *r = &runs[i];
        lb_set_threads(o.threads[i]);
        r->threads = lb_threads();
        if (r->threads != o.threads[i])
            fprintf(stderr, "bench: asked for %d threads, running %d\n", o.threads[i], r->threads);
        if (!(r->seconds = xmalloc(sizeof *r->seconds * (size_t)o.reps, "bench times"))) goto out;

        r->peak_before = kernels_fma_peak_gflops(r->threads, o.peak_seconds);
        fprintf(stderr, "bench: %d thread(s): warm-up pass\n", r->threads);
        fwd_truncate(&s, 0);
        if (forward(&s, ids, o.ctx, logits, true)) goto out;
        for (int k = 0; k < o.reps; k++) {
            fwd_truncate(&s, 0);
            double f0 = s.flops, t0 = now_s();
            if (forward(&s, ids, o.ctx, logits, true)) goto out;
            r->seconds[k] = now_s() - t0;
            r->fwd_flops = s.flops - f0;
            fprintf(stderr, "bench: %d thread(s): rep %d/%d %.3f s (%.1f tok/s)\n", r->threads,
                    k + 1, o.reps, r->seconds[k], o.ctx / r->seconds[k]);
            if (i == 0 && k == 0) {
                memcpy(ref, logits, sizeof *ref * (size_t)vocab);
                for (int v = 0; v < vocab; v++) finite = finite && isfinite(ref[v]);
            } else if (memcmp(ref, logits, sizeof *ref * (size_t)vocab)) {
                identical = false;
            }
        }
        r->peak_after = kernels_fma_peak_gflops(r->threads, o.peak_seconds);

        double *sorted = xmalloc(sizeof *sorted * (size_t)o.reps, "bench times");
        if (!sorted) goto out;
        memcpy(sorted, r->seconds, sizeof *sorted * (size_t)o.reps);
        qsort(sorted, (size_t)o.reps, sizeof *sorted, cmp_double);
        r->t_min = sorted[0];
        r->t_max = sorted[o.reps - 1];
        r->t_median = o.reps % 2 ? sorted[o.reps / 2]
                                 : (sorted[o.reps / 2 - 1] + sorted[o.reps / 2]) / 2;
        free(sorted);

        double gf = flops / r->t_median / 1e9, peak = LB_MAX(r->peak_before, r->peak_after);
        char range[40];
        snprintf(range, sizeof range, "(%.1f-%.1f)", o.ctx / r->t_max, o.ctx / r->t_min);
        printf("%7d %11.1f %17s %9.3f %9.1f %13.1f %8.1f%%\n", r->threads, o.ctx / r->t_median,
               range, r->t_median, gf, peak, peak > 0 ? 100.0 * gf / peak : 0.0);
        fflush(stdout);
        if (r->fwd_flops > 0 && fabs(r->fwd_flops / flops - 1) > 0.02)
            fprintf(stderr, "bench: note: the forward pass counted %.3f GFLOP, the analytic count "
                            "is %.3f GFLOP\n", r->fwd_flops / 1e9, flops / 1e9);
    }
    if (!finite) fprintf(stderr, "bench: WARNING: the last position's logits are not all finite\n");
    if (!identical)
        fprintf(stderr, "bench: WARNING: the logits differ between runs or thread counts "
                        "(the forward pass should be deterministic)\n");
    printf("logits: %s across runs and thread counts%s\n", identical ? "identical" : "DIFFERENT",
           finite ? "" : ", NOT FINITE");
    if (o.json && write_json(&o, &m, token_src, flops, runs, identical && finite)) goto out;
    rc = 0;
out:
    for (int i = 0; i < o.n_threads; i++) free(runs[i].seconds);
    if (have_state) fwd_release(&s);
    free(ids);
    free(logits);
    free(ref);
    model_release(&m);
    return rc;
}
