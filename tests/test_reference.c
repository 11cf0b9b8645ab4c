/* tests/test_reference.c: the engine (model_load + forward + log_softmax) against an independent
 * float64 numpy reference, tests/ref/llama_ref.py, run with Debian's /usr/bin/python3.
 *
 * Models: random-weight fixtures the reference writes at run time (GQA untied llama, tied MHA in
 * sharded BF16, Qwen2 with q/k/v biases in F16, head_dim != dim/n_heads), each as a Hugging Face
 * directory and as its GGUF twin (plus a Q8_0 GGUF), and the real stories260K in its three files
 * (llama2.c legacy, GGUF, llama2.c ak42 v1) plus its Q8_0 llama2.c v2 export.
 * Tolerances: engine vs reference <= 1e-4 max abs diff in log-probs (the bound); the same
 * weights in two files <= 1e-4 (HF vs GGUF twin) and <= 1e-5 (the stories260K files, engine vs
 * engine); 1 vs 2 OpenMP threads bit-identical; a sequence split over two forward() calls (KV
 * cache) or processed in small batches equals one call within 1e-5. */
#include <stdbool.h>
#include <stdint.h>

#include "eval/forward.h"
#include "eval/model.h"
#include "tests/t.h"
#ifdef _OPENMP
#include <omp.h>
#endif

#define PYTHON "/usr/bin/python3"
#define REF_SCRIPT "tests/ref/llama_ref.py"
#define N_TOK 64
#define SPLIT 40
#define REF_TOL 1e-4      /* engine vs reference, and the same weights in two files */
#define SAME_FILE_TOL 1e-5 /* the three stories260K files, engine vs engine */
/* one call vs the same tokens in pieces. Note: kernels/matmul.c sums in a different order for
 * T <= its GEMV threshold (lane partial sums) than for larger T (one FMA chain in k order), so
 * pieces of different sizes round differently (measured ~2e-5 in log-probs on AVX-512). */
#define SPLIT_TOL 5e-5 /* GEMV (T <= 32) and GEMM sum in different orders: last-bit differences, see kernels/matmul.h */

/* "Once upon a time, in a big forest, there lived a rhinoceros named Roxy. Roxy loved to climb.
 * She climbed trees, rocks, and hil" in tok512 (BOS first), for stories260K */
static const int stories_tokens[N_TOK] = {
    1,   403, 407, 261, 378, 432, 322, 261, 370, 272, 414, 276, 356, 432, 383, 397,
    396, 261, 352, 415, 271, 414, 429, 285, 414, 419, 395, 410, 461, 414, 444, 422,
    426, 410, 461, 414, 444, 422, 401, 396, 267, 280, 421, 288, 430, 426, 338, 280,
    421, 288, 430, 266, 259, 276, 406, 432, 352, 414, 340, 419, 432, 269, 270, 290};

/* for the random fixtures (every vocab is >= 260): BOS, then a fixed pseudo-random walk */
static int fixture_tokens[N_TOK];

static void make_fixture_tokens(void) {
    uint32_t s = 12345;
    fixture_tokens[0] = 1;
    for (int i = 1; i < N_TOK; i++) {
        s = s * 1664525u + 1013904223u;
        fixture_tokens[i] = 3 + (int)((s >> 8) % 257);
    }
}

static double max_abs_diff(const float *a, const float *b, size_t n, size_t *at) {
    double mx = 0;
    size_t where = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= mx)) { /* NaN counts as the largest */
            mx = isnan(d) ? INFINITY : d;
            where = i;
        }
    }
    if (at) *at = where;
    return mx;
}

/* the first row (of n_rows rows of len floats) where a and b differ at all; -1 when identical */
static int first_diff_row(const float *a, const float *b, int n_rows, int len) {
    for (int r = 0; r < n_rows; r++)
        if (memcmp(a + (size_t)r * len, b + (size_t)r * len, sizeof(float) * (size_t)len)) return r;
    return -1;
}

/* ---------------------------------------------------------------------------- reference side */

/* run the reference on `path` and read its [n][vocab] float32 log-probs; owned (free()) or NULL */
static float *ref_logprobs(const char *path, const int *tokens, int n, int vocab) {
    char out[512], cmd[8192];
    static int serial;
    snprintf(out, sizeof out, "%s/ref%d.f32", t_tmpdir(), serial++);
    int len = snprintf(cmd, sizeof cmd, "%s %s logprobs '%s' -o '%s' --tokens ", PYTHON, REF_SCRIPT,
                       path, out);
    for (int i = 0; i < n && len < (int)sizeof cmd - 16; i++)
        len += snprintf(cmd + len, sizeof cmd - len, "%s%d", i ? "," : "", tokens[i]);
    snprintf(cmd + len, sizeof cmd - len, " >/dev/null");
    if (system(cmd)) {
        T_FAIL_("reference failed: %s", cmd);
        return NULL;
    }
    FILE *f = fopen(out, "rb");
    float *lp = malloc(sizeof(float) * (size_t)n * vocab);
    size_t got = f && lp ? fread(lp, sizeof(float), (size_t)n * vocab, f) : 0;
    int extra = f ? fgetc(f) : EOF;
    if (f) fclose(f);
    if (got != (size_t)n * vocab || extra != EOF) {
        T_FAIL_("%s: reference wrote %zu floats, expected %d x %d (vocab mismatch?)", out, got, n,
                vocab);
        free(lp);
        return NULL;
    }
    return lp;
}

/* ------------------------------------------------------------------------------- engine side */

/* log-probs [n][vocab] from the engine, the tokens fed as pieces of at most `chunk` tokens per
 * forward() call, with scratch for max_batch rows. Owned (free()) or NULL; *vocab is set. */
static float *engine_logprobs_opt(const char *path, const int *tokens, int n, int chunk,
                                  int max_batch, int *vocab) {
    struct model m = MODEL_INIT;
    struct fwd_state s = {0};
    float *logits = NULL, *lp = NULL;
    *vocab = 0;
    if (model_load(&m, path)) {
        T_FAIL_("model_load(%s) failed", path);
        return NULL;
    }
    int V = m.cfg.vocab_size;
    if (fwd_init(&s, &m, 128, max_batch)) {
        T_FAIL_("fwd_init(%s) failed", path);
        goto out;
    }
    logits = malloc(sizeof(float) * (size_t)n * V);
    lp = malloc(sizeof(float) * (size_t)n * V);
    if (!logits || !lp) goto fail;
    for (int t0 = 0; t0 < n; t0 += chunk) {
        int len = n - t0 < chunk ? n - t0 : chunk;
        if (forward(&s, tokens + t0, len, logits + (size_t)t0 * V, false)) {
            T_FAIL_("forward(%s, pos %d, %d tokens) failed", path, t0, len);
            goto fail;
        }
    }
    for (int t = 0; t < n; t++) log_softmax(logits + (size_t)t * V, V, lp + (size_t)t * V);
    *vocab = V;
    goto out;
fail:
    free(lp);
    lp = NULL;
out:
    free(logits);
    fwd_release(&s);
    model_release(&m);
    return lp;
}

static float *engine_logprobs(const char *path, const int *tokens, int n, int *vocab) {
    return engine_logprobs_opt(path, tokens, n, n, n, vocab);
}

/* engine vs reference on one model file; returns the engine's log-probs (owned) for more checks */
static float *check_vs_reference(const char *label, const char *path, const int *tokens,
                                 double tol) {
    int V;
    float *eng = engine_logprobs(path, tokens, N_TOK, &V);
    if (!eng) return NULL;
    float *ref = ref_logprobs(path, tokens, N_TOK, V);
    if (ref) {
        size_t at;
        double d = max_abs_diff(eng, ref, (size_t)N_TOK * V, &at);
        printf("  %-26s engine vs reference: max|diff| %.3g (at pos %zu tok %zu; %.6f vs %.6f)\n",
               label, d, at / V, at % V, eng[at], ref[at]);
        if (!(d <= tol))
            T_FAIL_("%s (%s): engine vs reference max|diff| %.3g > %g at pos %zu token %zu", label,
                    path, d, tol, at / V, at % V);
    }
    free(ref);
    return eng;
}

/* -------------------------------------------------------------------------------- fixtures */

struct fixture {
    char name[64], hf[1024], gguf[1024];
    int vocab;
};
static struct fixture fixtures[16];
static int n_fixtures = -1;

static int load_fixtures(void) {
    if (n_fixtures >= 0) return n_fixtures;
    n_fixtures = 0;
    char dir[512], cmd[1024];
    snprintf(dir, sizeof dir, "%s/fx", t_tmpdir());
    snprintf(cmd, sizeof cmd, "%s %s make-fixtures '%s' >/dev/null", PYTHON, REF_SCRIPT, dir);
    if (system(cmd)) {
        T_FAIL_("could not make the fixtures: %s", cmd);
        return 0;
    }
    char man[600];
    snprintf(man, sizeof man, "%s/manifest.txt", dir);
    FILE *f = fopen(man, "r");
    if (!f) {
        T_FAIL_("no %s", man);
        return 0;
    }
    struct fixture *x = fixtures;
    while (n_fixtures < 16 &&
           fscanf(f, "%63s %d %1023s %1023s", x->name, &x->vocab, x->hf, x->gguf) == 4)
        x = &fixtures[++n_fixtures];
    fclose(f);
    T_OK(n_fixtures >= 5);
    return n_fixtures;
}

/* a fixture's HF directory or GGUF file by name; "" when absent */
static const char *fixture_path(const char *name, bool gguf) {
    for (int i = 0; i < load_fixtures(); i++)
        if (!strcmp(fixtures[i].name, name)) return gguf ? fixtures[i].gguf : fixtures[i].hf;
    T_FAIL_("no fixture %s", name);
    return "";
}

/* every fixture file agrees with the reference; every HF directory agrees with its GGUF twin */
static void test_fixtures_vs_reference(void) {
    make_fixture_tokens();
    int n = load_fixtures();
    for (int i = 0; i < n; i++) {
        const struct fixture *x = &fixtures[i];
        char label[128];
        float *hf = NULL, *gg;
        if (strcmp(x->hf, "-")) {
            snprintf(label, sizeof label, "%s (hf)", x->name);
            hf = check_vs_reference(label, x->hf, fixture_tokens, REF_TOL);
        }
        snprintf(label, sizeof label, "%s (gguf)", x->name);
        gg = check_vs_reference(label, x->gguf, fixture_tokens, REF_TOL);
        if (hf && gg) {
            size_t at;
            double d = max_abs_diff(hf, gg, (size_t)N_TOK * x->vocab, &at);
            printf("  %-26s hf vs gguf twin (engine): max|diff| %.3g\n", x->name, d);
            if (!(d <= REF_TOL))
                T_FAIL_("%s: HF vs GGUF twin max|diff| %.3g > %g at pos %zu token %zu", x->name,
                        d, REF_TOL, at / x->vocab, at % x->vocab);
        }
        free(hf);
        free(gg);
    }
}

/* ------------------------------------------------------------------------------ stories260K */

static const char *stories_files[] = {"models/stories260K.bin", "models/stories260K.gguf",
                                      "models/tinystories_260k/checkpoint_v1.bin"};
#define N_STORIES 3

static void test_stories260k_vs_reference(void) {
    float *eng[N_STORIES] = {0};
    char paths[N_STORIES][4096];
    for (int i = 0; i < N_STORIES; i++) {
        const char *p = T_DATA(stories_files[i]);
        if (!p) continue;
        snprintf(paths[i], sizeof paths[i], "%s", p);
        eng[i] = check_vs_reference(stories_files[i], paths[i], stories_tokens, REF_TOL);
    }
    /* the same weights in three files: engine vs engine */
    for (int i = 0; i < N_STORIES; i++)
        for (int j = i + 1; j < N_STORIES; j++) {
            if (!eng[i] || !eng[j]) continue;
            size_t at;
            double d = max_abs_diff(eng[i], eng[j], (size_t)N_TOK * 512, &at);
            printf("  %s vs %s (engine): max|diff| %.3g\n", stories_files[i], stories_files[j], d);
            if (!(d <= SAME_FILE_TOL))
                T_FAIL_("%s vs %s: max|diff| %.3g > %g at pos %zu token %zu", stories_files[i],
                        stories_files[j], d, SAME_FILE_TOL, at / 512, at % 512);
        }
    for (int i = 0; i < N_STORIES; i++) free(eng[i]);
    /* the Q8_0 llama2.c v2 export: the engine dequantizes the same int8 x scale weights */
    const char *q8 = T_DATA("models/stories260K_q80.bin");
    if (q8) {
        char p[4096];
        snprintf(p, sizeof p, "%s", q8);
        free(check_vs_reference("models/stories260K_q80.bin", p, stories_tokens, REF_TOL));
    }
}

/* ------------------------------------------------------------------ threads and the KV cache */

static void test_threads_bit_identical(void) {
#ifdef _OPENMP
    make_fixture_tokens();
    const char *st = T_DATA("models/stories260K.bin");
    char stories[4096] = "";
    if (st) snprintf(stories, sizeof stories, "%s", st);
    const char *paths[3] = {stories, fixture_path("gqa_untied", true),
                            fixture_path("qwen2_bias_f16", false)};
    const int *toks[3] = {stories_tokens, fixture_tokens, fixture_tokens};
    int saved = omp_get_max_threads();
    for (int k = 0; k < 3; k++) {
        if (!paths[k][0]) continue;
        int v1, v2;
        omp_set_num_threads(1);
        float *a = engine_logprobs(paths[k], toks[k], N_TOK, &v1);
        omp_set_num_threads(2);
        float *b = engine_logprobs(paths[k], toks[k], N_TOK, &v2);
        if (a && b && v1 == v2) {
            bool same = !memcmp(a, b, sizeof(float) * (size_t)N_TOK * v1);
            printf("  %s: 1 vs 2 threads %s (max|diff| %.3g)\n", paths[k],
                   same ? "bit-identical" : "DIFFER", max_abs_diff(a, b, (size_t)N_TOK * v1, NULL));
            if (!same) T_FAIL_("%s: log-probs differ between 1 and 2 OpenMP threads", paths[k]);
        }
        free(a);
        free(b);
    }
    omp_set_num_threads(saved);
#else
    printf("  built without OpenMP: thread test not applicable\n");
#endif
}

static void test_kv_cache_split(void) {
    make_fixture_tokens();
    const char *st = T_DATA("models/stories260K.bin");
    char stories[4096] = "";
    if (st) snprintf(stories, sizeof stories, "%s", st);
    const char *paths[3] = {stories, fixture_path("gqa_untied", false),
                            fixture_path("headdim32_f16", true)};
    const int *toks[3] = {stories_tokens, fixture_tokens, fixture_tokens};
    for (int k = 0; k < 3; k++) {
        if (!paths[k][0]) continue;
        int v0, v1, v2;
        float *one = engine_logprobs(paths[k], toks[k], N_TOK, &v0);
        /* first SPLIT tokens, then the rest through the cache */
        float *two = engine_logprobs_opt(paths[k], toks[k], N_TOK, SPLIT, N_TOK, &v1);
        /* one call, scratch for 7 rows: processed in pieces of 7 */
        float *small = engine_logprobs_opt(paths[k], toks[k], N_TOK, N_TOK, 7, &v2);
        if (one && two && v0 == v1) {
            double d = max_abs_diff(one, two, (size_t)N_TOK * v0, NULL);
            printf("  %s: %d+%d tokens vs one call: max|diff| %.3g (first differing pos %d)\n",
                   paths[k], SPLIT, N_TOK - SPLIT, d, first_diff_row(one, two, N_TOK, v0));
            if (!(d <= SPLIT_TOL))
                T_FAIL_("%s: %d+%d tokens differ from one call by %.3g > %g", paths[k], SPLIT,
                        N_TOK - SPLIT, d, SPLIT_TOL);
        }
        if (one && small && v0 == v2) {
            double d = max_abs_diff(one, small, (size_t)N_TOK * v0, NULL);
            printf("  %s: max_batch 7 vs 64: max|diff| %.3g (first differing pos %d)\n", paths[k],
                   d, first_diff_row(one, small, N_TOK, v0));
            if (!(d <= SPLIT_TOL))
                T_FAIL_("%s: max_batch 7 differs from one call by %.3g > %g", paths[k], d,
                        SPLIT_TOL);
        }
        free(one);
        free(two);
        free(small);
    }
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    T_RUN(test_fixtures_vs_reference);
    T_RUN(test_stories260k_vs_reference);
    T_RUN(test_threads_bit_identical);
    T_RUN(test_kv_cache_split);
    t_tmpdir_cleanup();
    return T_DONE();
}
