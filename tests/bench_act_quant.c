/* tests/bench_act_quant.c: the integer paths of activation quantization (kernels/act_quant.h)
 * against the fp32 matmul (kernels/matmul.h) on the block linears of the 110M shape (dim 768,
 * MLP 2048): one block's seven products for T tokens, as W8A8 (int8 codes, act_matmul), W4A4
 * (4-bit codes packed two per byte, act_matmul_i4) and fp32 weights. The activation quantization
 * (act_quant_rows, and the packing for W4A4) is inside the timed region; the weights are quantized
 * once beforehand. Prints GOP/s (2·T·N·K per product) by wall and by CPU time, the path each
 * row took (act_matmul_path: matmul_i8's integer GEMM on the codes) and the CPU model.
 *   bench_act_quant [T] [reps]: without T, T = 128 (3 reps) and T = 1 (300 reps), each at 1 and
 *   2 threads (lb_set_threads); with T, that T (reps default 3) at the default thread count */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/act_quant.h"
#include "kernels/common.h"
#include "kernels/matmul.h"
#include "tests/t_bench.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#define TMAX 4096
enum { D = 768, H = 2048 };
static const int shapes[7][2] = {{D, D}, {D, D}, {D, D}, {D, D}, {H, D}, {H, D}, {D, H}}; /* N, K */

/* the block's weights (fp32, int8 codes, packed 4-bit codes, scales) and T_max tokens */
struct bench {
    float *x, *y, dx[TMAX];
    int8_t *qx;
    uint8_t *px;
    struct tensor w[7];
    int8_t *qw[7];
    uint8_t *pw[7];
    float *dw[7];
};

static void setup(struct bench *b, int T) {
    b->x = malloc((size_t)T * H * sizeof *b->x), b->y = malloc((size_t)T * H * sizeof *b->y);
    b->qx = malloc((size_t)T * H);
    b->px = malloc((size_t)T * H / 2);
    uint64_t s = 1;
    for (int i = 0; i < T * H; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        b->x[i] = (float)(int32_t)(s >> 32) / 2147483648.0f;
    }
    for (int l = 0; l < 7; l++) {
        const int N = shapes[l][0], K = shapes[l][1];
        const int64_t ne[2] = {K, N};
        float *f = malloc((size_t)N * K * sizeof *f);
        for (int i = 0; i < N * K; i++) f[i] = b->x[i % (T * H)] * 0.05f;
        tensor_init(&b->w[l], "w", DTYPE_F32, 2, ne);
        b->w[l].data = f;
        b->qw[l] = malloc((size_t)N * K);
        b->pw[l] = malloc((size_t)N * K / 2);
        b->dw[l] = malloc((size_t)N * sizeof(float));
        act_quant_rows(b->qw[l], b->dw[l], f, N, K, 8, 1.0f);
        int8_t *q4 = malloc((size_t)N * K);
        float *d4 = malloc((size_t)N * sizeof(float));
        act_quant_rows(q4, d4, f, N, K, 4, 1.0f);
        for (int n = 0; n < N; n++)
            act_pack_i4(b->pw[l] + (size_t)n * K / 2, q4 + (size_t)n * K, K);
        free(q4), free(d4);
    }
}

/* the three rows at T tokens, reps passes over the block */
static void run(struct bench *b, int T, int reps, const char *cpu) {
    double ops = 0;
    for (int l = 0; l < 7; l++) ops += 2.0 * T * shapes[l][0] * shapes[l][1];
    const char *names[3] = {"fp32 (matmul)", "W8A8 (act_matmul)", "W4A4 (act_matmul_i4)"};
    for (int v = 0; v < 3; v++) {
        const double w0 = now(), c0 = t_cpu_s();
        for (int r = 0; r < reps; r++)
            for (int l = 0; l < 7; l++) {
                const int N = shapes[l][0], K = shapes[l][1];
                if (v == 0) {
                    matmul(b->y, b->x, &b->w[l], T);
                } else if (v == 1) {
                    act_quant_rows(b->qx, b->dx, b->x, T, K, 8, 1.0f);
                    act_matmul(b->y, b->qx, b->dx, b->qw[l], b->dw[l], T, N, K);
                } else {
                    act_quant_rows(b->qx, b->dx, b->x, T, K, 4, 1.0f);
                    for (int t = 0; t < T; t++)
                        act_pack_i4(b->px + (size_t)t * K / 2, b->qx + (size_t)t * K, K);
                    act_matmul_i4(b->y, b->px, b->dx, b->pw[l], b->dw[l], T, N, K);
                }
            }
        const double ws = now() - w0, cs = t_cpu_s() - c0;
        printf("act_quant bench: 110M block linears, T=%d, %d thread(s), %-22s %7.2f GOP/s wall, "
               "%7.2f GOP/s per CPU-second (%s, path %s)\n",
               T, lb_threads(), names[v], ops * reps / ws * 1e-9, ops * reps / cs * 1e-9, cpu,
               v ? act_matmul_path(T, v == 2) : "matmul");
    }
}

int main(int argc, char **argv) {
    const int T = argc > 1 ? atoi(argv[1]) : 0, reps = argc > 2 ? atoi(argv[2]) : 3;
    if (argc > 3 || (argc > 1 && (T < 1 || T > TMAX)) || reps < 1) {
        fprintf(stderr, "usage: bench_act_quant [T (1..%d)] [reps (>= 1)]\n", TMAX);
        return 2;
    }
    char cpu[256];
    t_cpu_model(cpu, sizeof cpu);
    static struct bench b;
    setup(&b, T ? T : 128);
    if (T) {
        run(&b, T, reps, cpu);
        return 0;
    }
    const int threads0 = lb_threads();
    for (int nth = 1; nth <= 2; nth++) {
        lb_set_threads(nth);
        run(&b, 128, 3, cpu);
        run(&b, 1, 300, cpu);
    }
    lb_set_threads(threads0);
    return 0;
}
