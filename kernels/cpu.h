/* kernels/cpu.h: the one CPU-feature probe, the instruction-set paths the kernels dispatch on, and
 * the one definition of the target attributes the per-ISA kernels are compiled with.
 *
 * The probe runs once (at load time, or at the first call without constructors): cpuid through
 * __builtin_cpu_supports. The path the kernels take is the widest this CPU runs, lowered by
 * LOWBIT_ISA=generic|avx2|avx512 (tests and benchmarks force a path that way; a path the CPU lacks
 * or a name not understood keeps the widest, with one message). Every kernel family (matmul.c,
 * matmul_q.c, matmul_i8.c, aqlm.c, attention.c, gram.c, dmm.c, eval/grad.c's attention) keeps one
 * table of its functions per path, indexed by enum cpu_isa, and reads cpu_isa() for the current
 * one: no family probes the CPU or compares names itself. Each family says which path it took
 * (kernels_isa(), matmul_q_path(), matmul_i8_path(), aqlm_matmul_path(), attention_path(),
 * gram_path(), dmm_path()); `lowbit bench` prints them. */
#ifndef KERNELS_CPU_H
#define KERNELS_CPU_H
#include <stdbool.h>

enum cpu_isa { CPU_ISA_GENERIC, CPU_ISA_AVX2, CPU_ISA_AVX512, CPU_ISA_COUNT };

struct cpu_features {
    bool avx2;       /* avx2 + fma (f16c comes with every such CPU) */
    bool avx512;     /* avx2 and avx512f + avx512bw + avx512vl */
    bool avx512vnni; /* avx512 and avx512vnni (matmul_i8's integer dot products) */
    bool avx512bf16; /* avx512 and avx512_bf16 (matmul_bf16's VDPBF16PS) */
};

/* this CPU's features (probed once; thread-safe) */
const struct cpu_features *cpu_features(void);
/* the widest path this CPU runs */
enum cpu_isa cpu_isa_best(void);
/* the path the kernels take: cpu_isa_best() lowered by LOWBIT_ISA */
enum cpu_isa cpu_isa(void);
/* whether this CPU runs path isa */
bool cpu_has(enum cpu_isa isa);
/* "generic", "avx2", "avx512" */
const char *cpu_isa_name(enum cpu_isa isa);
/* the path named s, or -1 when s names none */
int cpu_isa_from_name(const char *s);
/* the path named s if this CPU runs it, else -1: the index into a kernel family's per-path table
 * for the _isa entry points (tests and benchmarks); the hot paths index it by cpu_isa() */
int cpu_isa_usable(const char *s);
/* whether the kernels may use the AVX512-BF16 extension: the CPU has it and the path is avx512
 * (LOWBIT_ISA=generic|avx2 turns it off with the rest; matmul_bf16's only user) */
bool cpu_bf16(void);
/* the name of cpu_isa() (printed once by the CLI as "kernels: using avx512") */
const char *kernels_isa(void);

/* ---- the target attributes of the per-ISA kernels (x86-64 with GCC or Clang) ----
 * LB_AVX512: matmul and matmul_q's AVX-512 paths; LB_VNNI: matmul_i8's; LB_AVX2: their AVX2 paths;
 * LB_BF16: matmul_bf16's VDPBF16PS path.
 * LB_AVX512F, LB_AVX2F: the float-only kernels (attention, the Gram kernel, eval/grad.c's
 * attention), compiled with fewer extensions: changing a kernel's target set can change how the
 * compiler vectorizes its sums, so each keeps the one it was validated with. */
#if defined(__x86_64__) && defined(__GNUC__)
#define LB_X86 1
#define LB_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,fma,f16c")))
#define LB_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")))
#define LB_AVX2 __attribute__((target("avx2,fma,f16c")))
#define LB_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,fma,f16c")))
#define LB_AVX512F __attribute__((target("avx512f,fma")))
#define LB_AVX2F __attribute__((target("avx2,fma")))
#else
#define LB_X86 0
#endif
#if defined(__GNUC__)
#define LB_INLINE inline __attribute__((always_inline))
#else
#define LB_INLINE inline
#endif
#endif
