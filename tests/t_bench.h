/* tests/t_bench.h: what the C benchmarks under tests/ share: the CPU model they name in every row
 * and the process's CPU time (to tell how much of the wall time the machine gave them). */
#ifndef TESTS_T_BENCH_H
#define TESTS_T_BENCH_H
#include <stdio.h>
#include <string.h>
#include <time.h>

/* /proc/cpuinfo's first "model name", or "unknown" */
static inline void t_cpu_model(char *out, size_t len) {
    snprintf(out, len, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10)) continue;
        const char *v = strchr(line, ':');
        if (!v) break;
        v++;
        while (*v == ' ' || *v == '\t') v++;
        snprintf(out, len, "%s", v);
        out[strcspn(out, "\n")] = 0;
        break;
    }
    fclose(f);
}

/* seconds of CPU the process has used (every thread) */
static inline double t_cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
#endif
