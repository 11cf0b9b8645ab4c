/* tests/t_isa.h: a kernel test's dispatch check runs the same test binary again with LOWBIT_ISA
 * lowered (kernels/cpu.h reads it once per process), as `BINARY --isa-child EXPECT`; main() calls
 * t_isa_init(argv[0]) first and handles "--isa-child" itself. */
#ifndef T_ISA_H
#define T_ISA_H
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *t_self_exe;

static inline void t_isa_init(const char *argv0) {
    t_self_exe = access("/proc/self/exe", X_OK) ? argv0 : "/proc/self/exe";
}

/* run this binary again with LOWBIT_ISA=env_isa and "--isa-child expect"; its exit status
 * (128 + the signal when killed, -1 when it could not be run). quiet: the child's stderr goes to
 * /dev/null (an expected warning would clutter the test log). */
static inline int t_isa_child(const char *env_isa, const char *expect, int quiet) {
    fflush(stdout);
    fflush(stderr);
    const pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        setenv("LOWBIT_ISA", env_isa, 1);
        if (quiet && !freopen("/dev/null", "w", stderr)) _exit(126);
        char *const args[] = {(char *)t_self_exe, "--isa-child", (char *)expect, NULL};
        execv(t_self_exe, args);
        _exit(127);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
#endif
