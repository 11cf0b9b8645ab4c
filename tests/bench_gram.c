/* tests/bench_gram.c: `make bench`'s figure for the Gram kernel (kernels/gram.h), the GPTQ
 * Hessian's H += XᵀX, against the machine's fp32 FMA peak measured in the same run.
 *
 *   bench_gram [REPS [THREADS K T]]   (REPS timed calls per case, default 5, the median reported;
 *                                      THREADS K T: that one case instead of the list)
 *
 * Cases (threads, K, T): (1, 4096, 2048), (2, 4096, 2048), then K = 2048, 5632 (T = 2048) and
 * K = 11008 (T = 256) on every thread count of the machine up to 2. x is uniform in [-1, 1)
 * (a fixed LCG), H starts at zero and accumulates over the warm-up and timed calls (as GPTQ's
 * does over calibration windows). One markdown row per case: CPU model (/proc/cpuinfo),
 * kernels_isa(), seconds (median of REPS), GFLOP/s in useful flops T·K·(K+1) (the upper triangle,
 * 2 per multiply-add), the fp32 FMA peak kernels_fma_peak_gflops() measures on the same threads
 * just before the case, % of that peak, the CPU share (process CPU time over wall time × threads
 * during the timed calls: below 1 when other processes took the cores; the peak is a best-of-rounds
 * figure that load disturbs little, the median is not), % of peak per CPU second (the same divided
 * by the CPU share: the rate while the process ran, waits at barriers included), and gram_acc_ref
 * (scalar, one thread) against gram_acc on a small case (K = 512, T = 256) for scale. Exit status 1
 * only when a call fails. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/common.h"
#include "tests/t_bench.h"
#include "kernels/gram.h"
#include "kernels/matmul.h"

static void fill(float *x, size_t n, uint32_t seed) {
    uint32_t s = seed;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)((double)(s >> 8) / (double)(1u << 24) * 2.0 - 1.0);
    }
}

static int cmp_d(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* median seconds of reps calls (after one untimed call); -1 when a call fails. *cpu_share: the
 * process's CPU time over the timed calls' wall time × threads (1: we had the cores to ourselves,
 * less: other processes ran on them) */
static double time_gram(double *H, const float *x, int64_t T, int64_t K, int reps, bool ref,
                        int threads, double *cpu_share) {
    double ts[64], wall = 0.0, cpu = 0.0;
    reps = LB_MAX(1, LB_MIN(reps, (int)LB_ARRAY_LEN(ts)));
    for (int r = -1; r < reps; r++) {
        const double t0 = now_s(), c0 = t_cpu_s();
        if (ref)
            gram_acc_ref(H, x, T, K);
        else if (gram_acc(H, x, T, K))
            return -1;
        if (r < 0) continue;
        ts[r] = now_s() - t0;
        wall += ts[r];
        cpu += t_cpu_s() - c0;
    }
    if (cpu_share) *cpu_share = cpu / (wall * threads);
    qsort(ts, (size_t)reps, sizeof *ts, cmp_d);
    return ts[reps / 2];
}

int main(int argc, char **argv) {
    const int reps = argc > 1 ? atoi(argv[1]) : 5;
    char cpu[256];
    t_cpu_model(cpu, sizeof cpu);
    const int nproc = lb_threads();
    struct {
        int threads;
        int64_t K, T;
    } cases[] = {{1, 4096, 2048}, {2, 4096, 2048}, {1, 2048, 2048}, {2, 2048, 2048},
                 {1, 5632, 2048}, {2, 5632, 2048}, {1, 11008, 256}, {2, 11008, 256}};
    /* the small case for the oracle (one thread), shared by every row */
    const int64_t sK = 512, sT = 256;
    float *sx = malloc((size_t)(sK * sT) * sizeof(float));
    double *sH = calloc((size_t)(sK * sK), sizeof(double));
    if (!sx || !sH) return fprintf(stderr, "bench_gram: out of memory\n"), 1;
    fill(sx, (size_t)(sK * sT), 7);
    lb_set_threads(1);
    const double ref_s = time_gram(sH, sx, sT, sK, 3, true, 1, NULL);

    printf("| CPU | ISA | threads | K | T | s (median of %d) | GFLOP/s | fp32 FMA peak GFLOP/s | "
           "%% of peak | CPU share | %% of peak per CPU second | ref s (K=%lld T=%lld, 1 thread) | gram_acc s (same case) |\n",
           reps, (long long)sK, (long long)sT);
    printf("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
    fflush(stdout);
    int rc = 0;
    size_t n_cases = LB_ARRAY_LEN(cases);
    if (argc > 4) {
        cases[0].threads = atoi(argv[2]);
        cases[0].K = atoll(argv[3]);
        cases[0].T = atoll(argv[4]);
        n_cases = 1;
        if (cases[0].threads < 1 || cases[0].K < 1 || cases[0].T < 1)
            return fprintf(stderr, "usage: bench_gram [REPS [THREADS K T]]\n"), 1;
    }
    for (size_t c = 0; c < n_cases; c++) {
        const int th = cases[c].threads;
        const int64_t K = cases[c].K, T = cases[c].T;
        if (th > 1 && th > nproc && n_cases > 1) continue;
        float *x = malloc((size_t)(T * K) * sizeof(float));
        double *H = calloc((size_t)(K * K), sizeof(double));
        if (!x || !H) {
            fprintf(stderr, "bench_gram: out of memory for K = %lld\n", (long long)K);
            free(x), free(H);
            rc = 1;
            continue;
        }
        fill(x, (size_t)(T * K), (uint32_t)(K + T));
        lb_set_threads(th);
        const double small_s = time_gram(sH, sx, sT, sK, 5, false, th, NULL);
        const double peak = kernels_fma_peak_gflops(th, 0.5);
        double share = 0.0;
        const double s = time_gram(H, x, T, K, reps, false, th, &share);
        if (s < 0 || small_s < 0) {
            rc = 1;
        } else {
            const double gf = (double)T * (double)K * (double)(K + 1) / s * 1e-9;
            printf("| %s | %s | %d | %lld | %lld | %.4f | %.1f | %.1f | %.1f%% | %.2f | %.1f%% | %.4f | "
                   "%.5f |\n",
                   cpu, kernels_isa(), th, (long long)K, (long long)T, s, gf, peak,
                   100.0 * gf / peak, share, 100.0 * gf / peak / share, ref_s, small_s);
            fflush(stdout);
        }
        free(x);
        free(H);
    }
    free(sx);
    free(sH);
    return rc;
}
