/* tests/test_train.c: eval/train.c and lowbit train.
 *  - the full model's gradient (every parameter tensor, embeddings and output included, tied and
 *    untied) against central finite differences of an independent float64 model written here;
 *  - the loss falls on a tiny corpus; a step is bit-identical on 1 and 2 threads;
 *  - lowbit train: resume equals an uninterrupted run (bit-identical GGUF), the GGUF loads with
 *    model_load and forward() gives the training forward's logits, its vocabulary tokenizes as
 *    tok512.bin does, bad config / missing corpus give one clear error. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/forward.h"
#include "eval/gguf.h"
#include "eval/tokenizer.h"
#include "eval/train.h"
#include "gen/cli.h"
#include "kernels/common.h"
#include "t.h"

/* ===== an independent float64 model (same math as train.h describes) ===== */

static void rms64(double *o, const double *x, const double *w, int n, double eps) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += x[i] * x[i];
    const double s = 1 / sqrt(ss / n + eps);
    for (int i = 0; i < n; i++) o[i] = x[i] * s * w[i];
}

/* y[N] = W[N][K]·x[K] */
static void mv64(double *y, const double *W, const double *x, int N, int K) {
    for (int n = 0; n < N; n++) {
        double s = 0;
        for (int k = 0; k < K; k++) s += W[(size_t)n * K + k] * x[k];
        y[n] = s;
    }
}

/* mean NLL of the windows tok [n_win][T+1] under the weights w (tm's slab layout, float64) */
static double ref_loss(const struct train_model *tm, const double *w, const int *tok, int n_win,
                       int T) {
    const struct train_config *c = &tm->c;
    const int D = c->dim, H = c->hidden_dim, V = c->vocab, nh = c->n_heads, nkv = c->n_kv_heads;
    const int hd = D / nh, kvd = nkv * hd, rep = nh / nkv;
    const double *E = w + tm->pt[0].off;
    const double *Wout = c->tied ? E : w + tm->pt[1].off;
    const double *wn = w + tm->pt[c->tied ? 1 : 2].off;
    double *x = calloc((size_t)T * D, 8), *xn = calloc(D, 8), *q = calloc((size_t)T * D, 8),
           *k = calloc((size_t)T * kvd, 8), *v = calloc((size_t)T * kvd, 8),
           *o = calloc(D, 8), *t1 = calloc(D, 8), *g = calloc(H, 8), *u = calloc(H, 8),
           *lg = calloc(V, 8), *sc = calloc(T, 8);
    double total = 0;
    for (int b = 0; b < n_win; b++) {
        const int *tk = tok + (size_t)b * (T + 1);
        for (int t = 0; t < T; t++)
            for (int i = 0; i < D; i++) x[(size_t)t * D + i] = E[(size_t)tk[t] * D + i];
        for (int l = 0; l < c->n_layers; l++) {
            const struct train_param *p = &tm->pt[(c->tied ? 2 : 3) + 9 * l];
            const double *an = w + p[0].off, *Wq = w + p[1].off, *Wk = w + p[2].off,
                         *Wv = w + p[3].off, *Wo = w + p[4].off, *fn = w + p[5].off,
                         *Wg = w + p[6].off, *Wu = w + p[7].off, *Wd = w + p[8].off;
            for (int t = 0; t < T; t++) {
                rms64(xn, x + (size_t)t * D, an, D, c->norm_eps);
                mv64(q + (size_t)t * D, Wq, xn, D, D);
                mv64(k + (size_t)t * kvd, Wk, xn, kvd, D);
                mv64(v + (size_t)t * kvd, Wv, xn, kvd, D);
                /* RoPE, interleaved pairs (ROPE_NORM) */
                for (int h = 0; h < nh + nkv; h++) {
                    double *z = h < nh ? q + (size_t)t * D + h * hd : k + (size_t)t * kvd + (h - nh) * hd;
                    for (int i = 0; i < hd / 2; i++) {
                        const double a = t * pow(c->rope_theta, -2.0 * i / hd);
                        const double z0 = z[2 * i], z1 = z[2 * i + 1];
                        z[2 * i] = z0 * cos(a) - z1 * sin(a);
                        z[2 * i + 1] = z0 * sin(a) + z1 * cos(a);
                    }
                }
            }
            for (int t = 0; t < T; t++) {
                for (int h = 0; h < nh; h++) {
                    const int kg = h / rep;
                    double mx = -1e300, sum = 0;
                    for (int j = 0; j <= t; j++) {
                        double s = 0;
                        for (int i = 0; i < hd; i++)
                            s += q[(size_t)t * D + h * hd + i] * k[(size_t)j * kvd + kg * hd + i];
                        sc[j] = s / sqrt((double)hd);
                        mx = sc[j] > mx ? sc[j] : mx;
                    }
                    for (int j = 0; j <= t; j++) sum += sc[j] = exp(sc[j] - mx);
                    for (int i = 0; i < hd; i++) {
                        double a = 0;
                        for (int j = 0; j <= t; j++) a += sc[j] * v[(size_t)j * kvd + kg * hd + i];
                        o[h * hd + i] = a / sum;
                    }
                }
                double *xt = x + (size_t)t * D;
                mv64(t1, Wo, o, D, D);
                for (int i = 0; i < D; i++) xt[i] += t1[i];
                rms64(xn, xt, fn, D, c->norm_eps);
                mv64(g, Wg, xn, H, D);
                mv64(u, Wu, xn, H, D);
                for (int i = 0; i < H; i++) g[i] = g[i] / (1 + exp(-g[i])) * u[i];
                mv64(t1, Wd, g, D, H);
                for (int i = 0; i < D; i++) xt[i] += t1[i];
            }
        }
        for (int t = 0; t < T; t++) {
            rms64(xn, x + (size_t)t * D, wn, D, c->norm_eps);
            mv64(lg, Wout, xn, V, D);
            double mx = lg[0], sum = 0;
            for (int i = 1; i < V; i++) mx = lg[i] > mx ? lg[i] : mx;
            for (int i = 0; i < V; i++) sum += exp(lg[i] - mx);
            total += mx + log(sum) - lg[tk[t + 1]];
        }
    }
    free(x), free(xn), free(q), free(k), free(v), free(o), free(t1), free(g), free(u), free(lg);
    free(sc);
    return total / ((double)n_win * T);
}

static uint64_t rs = 42;
static double urand(void) { /* xorshift64*, [-1, 1) */
    rs ^= rs >> 12, rs ^= rs << 25, rs ^= rs >> 27;
    return (double)((rs * 2685821657736338717ull) >> 11) * 0x1.0p-52 - 1;
}

static void grad_check(bool tied) {
    struct train_config c = {.dim = 16, .hidden_dim = 32, .n_layers = 2, .n_heads = 4,
                             .n_kv_heads = 2, .vocab = 24, .ctx = 8, .tied = tied,
                             .norm_eps = 1e-5f, .rope_theta = 10000};
    struct train_model tm;
    T_OK(!train_model_init(&tm, &c, 2));
    /* weights large enough that every path carries gradient; norms around 1 */
    for (int i = 0; i < tm.n_pt; i++) {
        const struct train_param *p = &tm.pt[i];
        for (size_t j = 0; j < p->n; j++)
            tm.w[p->off + j] = (float)(p->n_dims == 1 ? 1 + 0.3 * urand() : 0.4 * urand());
    }
    const int n_win = 2, T = 8;
    int tok[2 * 9];
    for (int i = 0; i < 18; i++) tok[i] = (int)((urand() + 1) * 0.5 * c.vocab) % c.vocab;
    double nll;
    train_zero_grad(&tm);
    T_OK(!train_fwd_bwd(&tm, tok, n_win, T, 1.0 / (n_win * T), &nll));
    double *w64 = malloc(tm.n * sizeof *w64);
    for (size_t i = 0; i < tm.n; i++) w64[i] = tm.w[i];
    T_NEAR(nll / (n_win * T), ref_loss(&tm, w64, tok, n_win, T), 1e-4);
    double worst = 0;
    for (int i = 0; i < tm.n_pt; i++) {
        const struct train_param *p = &tm.pt[i];
        double dd = 0, nn = 0;
        for (size_t j = 0; j < p->n; j++) {
            const size_t at = p->off + j;
            const double h = 1e-5, w0 = w64[at];
            w64[at] = w0 + h;
            const double lp = ref_loss(&tm, w64, tok, n_win, T);
            w64[at] = w0 - h;
            const double lm = ref_loss(&tm, w64, tok, n_win, T);
            w64[at] = w0;
            const double num = (lp - lm) / (2 * h), ana = tm.g[at];
            dd += (num - ana) * (num - ana);
            nn += num * num;
        }
        const double rel = sqrt(dd) / (sqrt(nn) + 1e-30);
        worst = rel > worst ? rel : worst;
        if (getenv("T_VERBOSE"))
            fprintf(stderr, "  grad %-26s %s rel err %.2e (|g| %.3e)\n", p->name,
                    tied ? "tied  " : "untied", rel, sqrt(nn));
        if (!(rel < 1e-2)) T_FAIL_("%s: relative gradient error %.3e >= 1e-2", p->name, rel);
    }
    printf("grad check (%s output): worst relative error per tensor %.2e over %d tensors\n",
           tied ? "tied" : "untied", worst, tm.n_pt);
    free(w64);
    train_model_release(&tm);
}

static void test_grad_untied(void) { grad_check(false); }
static void test_grad_tied(void) { grad_check(true); }

/* a small model and a patterned token stream for the training tests */
static const struct train_config small = {.dim = 128, .hidden_dim = 256, .n_layers = 2,
                                          .n_heads = 4, .n_kv_heads = 2, .vocab = 64, .ctx = 128,
                                          .norm_eps = 1e-5f, .rope_theta = 10000};
static const struct train_opt sopt = {.lr = 3e-3f, .min_lr = 3e-4f, .warmup = 2, .steps = 20,
                                      .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f,
                                      .weight_decay = 0.1f, .clip = 1.0f};

static void fill_windows(int *tok, int n_win, int T, int step) {
    for (int b = 0; b < n_win; b++)
        for (int t = 0; t <= T; t++) /* a repeating phrase with a step-dependent phase */
            tok[b * (T + 1) + t] = (t * 7 + b * 3 + step) % 13 + (t % 5 == 0 ? 20 : 0);
}

static void run_steps(struct train_model *tm, int n_steps, int n_win, double *first, double *last) {
    const int T = tm->c.ctx;
    int *tok = malloc((size_t)n_win * (T + 1) * sizeof *tok);
    for (int s = 0; s < n_steps; s++) {
        double nll;
        fill_windows(tok, n_win, T, s);
        train_zero_grad(tm);
        T_OK(!train_fwd_bwd(tm, tok, n_win, T, 1.0 / (n_win * T), &nll));
        train_clip_grad(tm, sopt.clip);
        train_adamw(tm, &sopt, s + 1, train_lr(&sopt, s));
        if (s == 0 && first) *first = nll / (n_win * T);
        if (last) *last = nll / (n_win * T);
    }
    free(tok);
}

static void test_loss_decreases(void) {
    struct train_model tm;
    T_OK(!train_model_init(&tm, &small, 2));
    train_model_randomize(&tm, 7);
    double first = 0, last = 0;
    run_steps(&tm, 20, 2, &first, &last);
    printf("tiny corpus: loss %.3f -> %.3f in 20 steps\n", first, last);
    T_OK(last < 0.5 * first);
    train_model_release(&tm);
}

static void test_determinism_threads(void) {
    struct train_model a, b;
    T_OK(!train_model_init(&a, &small, 4));
    T_OK(!train_model_init(&b, &small, 4));
    train_model_randomize(&a, 11);
    train_model_randomize(&b, 11);
    lb_set_threads(1);
    run_steps(&a, 3, 4, NULL, NULL);
    lb_set_threads(2);
    run_steps(&b, 3, 4, NULL, NULL);
    lb_set_threads(0);
    T_OK(!memcmp(a.w, b.w, a.n * sizeof(float)));
    T_OK(!memcmp(a.m, b.m, a.n * sizeof(float)));
    T_OK(!memcmp(a.v, b.v, a.n * sizeof(float)));
    train_model_release(&a);
    train_model_release(&b);
}

static void test_schedule(void) {
    T_NEAR(train_lr(&sopt, 0), sopt.lr / 2, 1e-9);
    T_NEAR(train_lr(&sopt, 1), sopt.lr, 1e-9);
    T_NEAR(train_lr(&sopt, sopt.steps), sopt.min_lr, 1e-9);
    T_OK(train_lr(&sopt, 10) < sopt.lr && train_lr(&sopt, 10) > sopt.min_lr);
}

/* ===== lowbit train ===== */

static char cfg_path[512], corpus_path[512], heldout_path[512];

static int train_cli(const char *out, const char *extra1, const char *extra2, const char *steps) {
    const char *tok = T_DATA("tokenizers/tok512.bin");
    if (!tok) return -1;
    char tokp[4096];
    snprintf(tokp, sizeof tokp, "%s", tok);
    char *argv[20] = {"train", "--config", cfg_path, "--corpus", corpus_path, "--tokenizer", tokp,
                      "-o", (char *)out, "--heldout", heldout_path, "--quiet", "--set",
                      (char *)steps};
    int argc = 14;
    if (extra1) argv[argc++] = (char *)extra1;
    if (extra2) argv[argc++] = (char *)extra2;
    return cmd_train(argc, argv);
}

static void make_fixture(void) {
    if (cfg_path[0]) return;
    const char *dir = t_tmpdir();
    snprintf(cfg_path, sizeof cfg_path, "%s/tiny.conf", dir);
    snprintf(corpus_path, sizeof corpus_path, "%s/corpus.txt", dir);
    snprintf(heldout_path, sizeof heldout_path, "%s/heldout.txt", dir);
    FILE *f = fopen(cfg_path, "w");
    fputs("# tiny\ndim = 64\nhidden_dim = 128\nn_layers = 2\nn_heads = 4\nn_kv_heads = 2\n"
          "ctx = 64\nbatch = 4\nmicro_batch = 2\nsteps = 6\nlr = 3e-3\nmin_lr = 3e-4\n"
          "warmup = 2\nseed = 5\neval_every = 2\nckpt_every = 2\n", f);
    fclose(f);
    static const char *stories[] = {
        "Once upon a time, there was a little cat named Tom. Tom liked to play in the sun.",
        "One day, a girl named Lily found a red ball in the park. She was very happy.",
        "The dog ran to the tree. He saw a bird and barked. The bird flew away.",
        "Sam had a big box of toys. He shared them with his friend Mia. They played all day.",
    };
    f = fopen(corpus_path, "w");
    for (int r = 0; r < 30; r++)
        for (int i = 0; i < 4; i++) fprintf(f, "%s\n<|endoftext|>\n", stories[i]);
    /* a story that is also held out: must be dropped */
    fprintf(f, "The held-out story about a frog who sang a song by the quiet pond at night.\n");
    fclose(f);
    f = fopen(heldout_path, "w");
    fprintf(f, "The held-out story about a frog who sang a song by the quiet pond at night.\n"
               "<|endoftext|>\nOnce upon a time, a little cat played with a red ball.\n");
    fclose(f);
}

static char *slurp(const char *path, size_t *len) {
    char *d = NULL;
    if (read_file_all(path, "test file", &d, len)) return NULL;
    return d;
}

static void test_cli_resume_and_gguf(void) {
    make_fixture();
    char a[600], b[600], p[700], q[700];
    snprintf(a, sizeof a, "%s/run-a", t_tmpdir());
    snprintf(b, sizeof b, "%s/run-b", t_tmpdir());
    T_EQ_INT(train_cli(a, NULL, NULL, "steps=6"), 0);
    /* b: interrupted after step 3 (its checkpoint), then resumed to 6 */
    T_EQ_INT(train_cli(b, "--stop-after", "3", "steps=6"), 0);
    snprintf(p, sizeof p, "%s/model.gguf", b);
    T_OK(access(p, R_OK)); /* no outputs from an interrupted run */
    err_set_quiet(true);
    T_EQ_INT(train_cli(b, "--resume", NULL, "seed=6"), -1); /* another run: refused */
    err_set_quiet(false);
    T_CONTAINS(err_last(), "another run");
    T_EQ_INT(train_cli(b, "--resume", NULL, "steps=6"), 0);
    size_t la, lb;
    snprintf(p, sizeof p, "%s/model.gguf", a);
    snprintf(q, sizeof q, "%s/model.gguf", b);
    char *ga = slurp(p, &la), *gb = slurp(q, &lb);
    T_OK(ga && gb && la == lb && !memcmp(ga, gb, la));
    free(ga), free(gb);
    snprintf(q, sizeof q, "%s/curve.csv", b);
    char *ca = NULL, *cb = slurp(q, &lb);
    snprintf(q, sizeof q, "%s/curve.csv", a);
    ca = slurp(q, &la);
    T_OK(ca && cb && la > 60 && lb > 60);
    free(ca), free(cb);

    /* the GGUF alone: model + vocabulary; forward() = the training forward */
    struct model m;
    T_EQ_INT(model_load(&m, p), 0);
    struct tokenizer *tg = NULL, *tb = NULL;
    T_EQ_INT(tokenizer_from_gguf(&tg, m.gguf), 0);
    const char *tp = T_DATA("tokenizers/tok512.bin");
    T_OK(tp && !tokenizer_load(&tb, tp));
    const char *vt = T_DATA("datasets/tinystories/tinystories-valid.txt.1000");
    if (tg && tb && vt) {
        size_t len;
        char *text = slurp(vt, &len);
        int *ia = NULL, *ib = NULL, na = 0, nb = 0;
        T_OK(text && len > 20000);
        T_OK(!tokenizer_encode(tg, text, 20000, true, &ia, &na));
        T_OK(!tokenizer_encode(tb, text, 20000, true, &ib, &nb));
        T_EQ_INT(na, nb);
        T_OK(na == nb && !memcmp(ia, ib, (size_t)na * sizeof *ia));
        free(ia), free(ib), free(text);
    }
    tokenizer_free(tg), tokenizer_free(tb);

    /* logits: training forward (rebuilt from the checkpoint-trained GGUF weights) vs forward() */
    struct train_config c = {.dim = 64, .hidden_dim = 128, .n_layers = 2, .n_heads = 4,
                             .n_kv_heads = 2, .vocab = m.cfg.vocab_size, .ctx = 64,
                             .norm_eps = 1e-5f, .rope_theta = 10000};
    struct train_model tm;
    T_OK(!train_model_init(&tm, &c, 1));
    for (int i = 0; i < tm.n_pt; i++) {
        const struct tensor *t = model_find_tensor(&m, tm.pt[i].name);
        T_OK(t && tensor_nelements(t) == (int64_t)tm.pt[i].n);
        if (t) memcpy(tm.w + tm.pt[i].off, t->data, tm.pt[i].n * sizeof(float));
    }
    const int T = 40, V = c.vocab;
    int tok[40];
    for (int i = 0; i < T; i++) tok[i] = i == 0 ? 1 : (i * 37) % V;
    float *l1 = malloc((size_t)T * V * 4), *l2 = malloc((size_t)T * V * 4);
    T_OK(!train_logits(&tm, tok, T, l1));
    struct fwd_state s = {0};
    T_OK(!fwd_init(&s, &m, 64, 64));
    T_OK(!forward(&s, tok, T, l2, false));
    double md = 0;
    for (int i = 0; i < T * V; i++) md = fmax(md, fabs(l1[i] - l2[i]));
    printf("GGUF forward() vs training forward: max |logit diff| %.2e\n", md);
    T_OK(md <= 1e-4);
    fwd_release(&s);
    free(l1), free(l2);
    train_model_release(&tm);
    model_release(&m);
    /* curve.csv and the HF directory */
    snprintf(p, sizeof p, "%s/curve.csv", a);
    size_t lc;
    char *cv = slurp(p, &lc);
    T_OK(cv && !strncmp(cv, "step,tokens,train_loss,heldout_loss,lr,seconds\n", 47));
    free(cv);
    snprintf(p, sizeof p, "%s/hf/config.json", a);
    T_OK(!access(p, R_OK));
    snprintf(p, sizeof p, "%s/hf", a);
    struct model mh;
    T_EQ_INT(model_load(&mh, p), 0);
    model_release(&mh);
}

static void test_cli_errors(void) {
    make_fixture();
    char out[600];
    snprintf(out, sizeof out, "%s/err", t_tmpdir());
    err_set_quiet(true);
    const char *tok = T_DATA("tokenizers/tok512.bin");
    char tokp[4096];
    snprintf(tokp, sizeof tokp, "%s", tok ? tok : "x");
    char *a1[] = {"train", "--config", cfg_path, "--corpus", "/nonexistent/corpus.txt",
                  "--tokenizer", tokp, "-o", out, "--heldout", heldout_path};
    T_EQ_INT(cmd_train(11, a1), -1);
    T_CONTAINS(err_last(), "/nonexistent/corpus.txt");
    T_CONTAINS(err_last(), "LOWBIT_DATA");
    char bad[600];
    snprintf(bad, sizeof bad, "%s/bad.conf", t_tmpdir());
    FILE *f = fopen(bad, "w");
    fputs("dim = 64\nwidth = 3\n", f);
    fclose(f);
    char *a2[] = {"train", "--config", bad, "--corpus", corpus_path, "--tokenizer", tokp, "-o",
                  out};
    T_EQ_INT(cmd_train(9, a2), -1);
    T_CONTAINS(err_last(), "bad.conf:2");
    T_CONTAINS(err_last(), "unknown key 'width'");
    err_set_quiet(false);
}

int main(void) {
    T_RUN(test_grad_untied);
    T_RUN(test_grad_tied);
    T_RUN(test_schedule);
    T_RUN(test_loss_decreases);
    T_RUN(test_determinism_threads);
    T_RUN(test_cli_resume_and_gguf);
    T_RUN(test_cli_errors);
    return T_DONE();
}
