/* tests/bench_gptq.c: `make bench`'s figure for GPTQ's float64 solver (quant/gptq.h:
 * gptq_prepare = dampening, Cholesky of the reversed H and its triangular inverse; then
 * gptq_quantize_prepared = the column loop with the lazy-batch update), against the machine's
 * FMA peak measured in the same run.
 *
 *   bench_gptq [K N THREADS]   (one case instead of the list)
 *
 * Cases (K, N, threads): the inputs GPTQ meets at TinyLlama-1.1B width (K = 2048 with the q,k,v
 * rows N = 2560; K = 5632, the down_proj input, N = 2048) and at Llama-2-7B width (K = 4096,
 * N = 12288; K = 11008, N = 4096), on 1 and 2 threads. H is a random symmetric matrix with a
 * dominant diagonal (positive definite), W uniform, w4 g128 asym with act-order. Flops counted:
 * 2·(K³/3 + K³/3) for the Cholesky and the inverse (a multiply and an add each), N·K² for the
 * solve (the lazy update's N·K²/2 multiply-adds). The peak column is the float64 FMA peak, half the
 * fp32 one kernels_fma_peak_gflops() measures on the same threads; CPU share is the process's CPU
 * time over wall × threads (below 1 when other processes took the cores). One row per case, with
 * the CPU model and kernels_isa(). Exit status 1 only when a call fails. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/common.h"
#include "tests/t_bench.h"
#include "kernels/dmm.h"
#include "kernels/matmul.h"
#include "kernels/tensor.h"
#include "quant/gptq.h"

static uint64_t rng = 12345;
static double urand(void) { /* [-0.5, 0.5) */
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rng >> 11) * 0x1p-53 - 0.5;
}

static int run_case(const char *cpu, int64_t K, int64_t N, int th) {
    double *H = malloc((size_t)(K * K) * sizeof *H);
    float *w = malloc((size_t)(K * N) * sizeof *w);
    if (!H || !w) {
        free(H), free(w);
        return fprintf(stderr, "bench_gptq: out of memory for K = %lld\n", (long long)K), 1;
    }
    for (int64_t i = 0; i < K; i++)
        for (int64_t j = 0; j <= i; j++) H[i * K + j] = H[j * K + i] = 0.02 * urand();
    for (int64_t i = 0; i < K; i++) H[i * K + i] += 2.0 + (double)(i % 7) + 0.01 * (double)K;
    for (int64_t i = 0; i < K * N; i++) w[i] = (float)(0.05 * urand());
    const struct gptq_opts o = {.bits = 4, .group = 128, .sym = false, .desc_act = true,
                                .damp_percent = 0.01, .blocksize = 128, .zero_min = 0};
    lb_set_threads(th);
    const double peak = kernels_fma_peak_gflops(th, 0.5) / 2;
    struct gptq_prep p;
    struct tensor t;
    void *buf = NULL;
    struct gptq_layer_stats st;
    const double w0 = now_s(), c0 = t_cpu_s();
    int rc = gptq_prepare(H, K, &o, "bench", &p);
    const double w1 = now_s(), c1 = t_cpu_s();
    if (!rc) rc = gptq_quantize_prepared(w, N, &p, &o, "bench", &t, &buf, &st);
    const double w2 = now_s(), c2 = t_cpu_s();
    if (!rc) {
        const double fp = 4.0 / 3.0 * (double)K * (double)K * (double)K,
                     fs = (double)N * (double)K * (double)K;
        const double gp = fp / (w1 - w0) * 1e-9, gs = fs / (w2 - w1) * 1e-9;
        const double sp = (c1 - c0) / ((w1 - w0) * th), ss = (c2 - c1) / ((w2 - w1) * th);
        printf("| %s | %s | %d | %lld | %lld | %.2f | %.1f | %.0f%% | %.2f | %.2f | %.1f | "
               "%.0f%% | "
               "%.2f | %.1f |\n",
               cpu, dmm_path(), th, (long long)K, (long long)N, w1 - w0, gp, 100 * gp / peak,
               sp, w2 - w1, gs, 100 * gs / peak, ss, peak);
        fflush(stdout);
    }
    if (!rc) gptq_prep_release(&p);
    free(buf), free(H), free(w);
    return rc ? 1 : 0;
}

int main(int argc, char **argv) {
    char cpu[256];
    t_cpu_model(cpu, sizeof cpu);
    const int nproc = lb_threads();
    struct {
        int64_t K, N;
        int th;
    } cases[] = {{2048, 2560, 1}, {2048, 2560, 2}, {5632, 2048, 1}, {5632, 2048, 2},
                 {4096, 12288, 2}, {11008, 4096, 2}};
    size_t n = LB_ARRAY_LEN(cases);
    if (argc == 4) {
        cases[0].K = atoll(argv[1]), cases[0].N = atoll(argv[2]), cases[0].th = atoi(argv[3]);
        n = 1;
        if (cases[0].K < 1 || cases[0].N < 1 || cases[0].th < 1)
            return fprintf(stderr, "usage: bench_gptq [K N THREADS]\n"), 1;
    }
    printf("| CPU | ISA | threads | K | N | prepare s | GFLOP/s | %% of f64 peak | CPU share | "
           "solve s | GFLOP/s | %% of f64 peak | CPU share | f64 FMA peak GFLOP/s |\n");
    printf("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
    int rc = 0;
    for (size_t c = 0; c < n; c++) {
        if (cases[c].th > nproc && n > 1) continue;
        rc |= run_case(cpu, cases[c].K, cases[c].N, cases[c].th);
    }
    return rc;
}
