/* kernels/cpu.c: the CPU-feature probe and the kernels' path (see cpu.h). */
#include "kernels/cpu.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/common.h"

static const char *const isa_names[CPU_ISA_COUNT] = {
    [CPU_ISA_GENERIC] = "generic", [CPU_ISA_AVX2] = "avx2", [CPU_ISA_AVX512] = "avx512"};

static struct {
    struct cpu_features f;
    enum cpu_isa best, cur;
} cpu;
static pthread_once_t cpu_once = PTHREAD_ONCE_INIT;

static void cpu_probe(void) {
#if LB_X86
    __builtin_cpu_init();
    cpu.f.avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    cpu.f.avx512 = cpu.f.avx2 && __builtin_cpu_supports("avx512f") &&
                   __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
    cpu.f.avx512vnni = cpu.f.avx512 && __builtin_cpu_supports("avx512vnni");
    cpu.f.avx512bf16 = cpu.f.avx512 && __builtin_cpu_supports("avx512bf16");
#endif
    cpu.best = cpu.f.avx512 ? CPU_ISA_AVX512 : cpu.f.avx2 ? CPU_ISA_AVX2 : CPU_ISA_GENERIC;
    cpu.cur = cpu.best;
    const char *want = getenv("LOWBIT_ISA");
    if (!want || !*want) return;
    const int i = cpu_isa_from_name(want);
    if (i < 0)
        err("LOWBIT_ISA=%s not understood (expected generic, avx2 or avx512); using %s", want,
            isa_names[cpu.cur]);
    else if (i > (int)cpu.best)
        err("LOWBIT_ISA=%s: this CPU lacks it; using %s", want, isa_names[cpu.cur]);
    else
        cpu.cur = (enum cpu_isa)i;
}

#if defined(__GNUC__)
/* at load time, so a LOWBIT_ISA message comes before anything else */
__attribute__((constructor)) static void cpu_ctor(void) { pthread_once(&cpu_once, cpu_probe); }
#endif

const struct cpu_features *cpu_features(void) {
    pthread_once(&cpu_once, cpu_probe);
    return &cpu.f;
}

enum cpu_isa cpu_isa_best(void) {
    pthread_once(&cpu_once, cpu_probe);
    return cpu.best;
}

enum cpu_isa cpu_isa(void) {
    pthread_once(&cpu_once, cpu_probe);
    return cpu.cur;
}

bool cpu_has(enum cpu_isa isa) { return (unsigned)isa <= (unsigned)cpu_isa_best(); }

const char *cpu_isa_name(enum cpu_isa isa) {
    return (unsigned)isa < CPU_ISA_COUNT ? isa_names[isa] : "?";
}

int cpu_isa_from_name(const char *s) {
    for (int i = 0; i < CPU_ISA_COUNT; i++)
        if (s && !strcmp(s, isa_names[i])) return i;
    return -1;
}

int cpu_isa_usable(const char *s) {
    const int i = cpu_isa_from_name(s);
    return i >= 0 && cpu_has((enum cpu_isa)i) ? i : -1;
}

bool cpu_bf16(void) { return cpu_isa() == CPU_ISA_AVX512 && cpu_features()->avx512bf16; }

const char *kernels_isa(void) { return isa_names[cpu_isa()]; }
