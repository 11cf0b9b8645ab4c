/* tests/fuzz/fuzz_common.h: what every libFuzzer target shares.
 *
 * The parsers take paths, so each input is written to an anonymous memory file (memfd_create) and
 * handed over as /proc/self/fd/N: nothing touches the disk. A parser that picks its format by the
 * file name (tokenizer_load: *.json) or reads a directory (config.json) gets a symlink with that
 * name, made once in a scratch directory, pointing at the memfd. Errors are expected on almost
 * every input, so err() is quieted once at start-up. */
#ifndef TESTS_FUZZ_COMMON_H
#define TESTS_FUZZ_COMMON_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "eval/tokenizer.h"
#include "kernels/common.h"

#define FUZZ_SLOTS 4

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* the memfd of slot i (created on first use; aborts when the kernel has none) */
static inline int fuzz_fd(int slot) {
    static int fds[FUZZ_SLOTS] = {-1, -1, -1, -1};
    if (fds[slot] < 0) {
        fds[slot] = memfd_create("lowbit-fuzz", 0);
        if (fds[slot] < 0) {
            perror("memfd_create");
            abort();
        }
    }
    return fds[slot];
}

/* replace slot i's contents with data; returns its path (static buffer per slot) */
static inline const char *fuzz_file(int slot, const void *data, size_t size) {
    static char paths[FUZZ_SLOTS][64];
    int fd = fuzz_fd(slot);
    if (ftruncate(fd, 0) || (size && pwrite(fd, data, size, 0) != (ssize_t)size)) {
        perror("fuzz_file");
        abort();
    }
    snprintf(paths[slot], sizeof paths[slot], "/proc/self/fd/%d", fd);
    return paths[slot];
}

/* a scratch directory for this process, removed by nobody: it only holds symlinks and whatever
 * the parser under test writes (import/collect output), which the targets delete */
static inline const char *fuzz_dir(void) {
    static char dir[256];
    if (!dir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/lowbit-fuzz-XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(dir)) {
            perror("mkdtemp");
            abort();
        }
    }
    return dir;
}

/* fuzz_dir()/name as a symlink to slot i's memfd; returns the link's path (static per slot) */
static inline const char *fuzz_link(int slot, const char *name) {
    static char links[FUZZ_SLOTS][512];
    if (!links[slot][0]) {
        char target[64];
        snprintf(links[slot], sizeof links[slot], "%s/%s", fuzz_dir(), name);
        snprintf(target, sizeof target, "/proc/self/fd/%d", fuzz_fd(slot));
        unlink(links[slot]);
        if (symlink(target, links[slot])) {
            perror("symlink");
            abort();
        }
    }
    return links[slot];
}

/* split data at the first occurrence of sep: [data, *n1) and [*p2, *p2 + *n2); false (n2 = 0)
 * when sep is absent */
static inline bool fuzz_split(const uint8_t *data, size_t size, const char *sep, size_t *n1,
                       const uint8_t **p2, size_t *n2) {
    size_t k = strlen(sep);
    const uint8_t *hit = size >= k ? memmem(data, size, sep, k) : NULL;
    *n1 = hit ? (size_t)(hit - data) : size;
    *p2 = hit ? hit + k : data + size;
    *n2 = hit ? size - *n1 - k : 0;
    return hit != NULL;
}

/* encode a few fixed texts (ASCII, accents, CJK, control characters, a chat marker) and decode
 * every id: a loaded tokenizer's tables must survive use, not only loading */
static inline void fuzz_tokenizer(const struct tokenizer *t) {
    static const char *const texts[] = {
        "Hello world, it's 2024!", " leading and  double  spaces\n\ttab",
        "caf\xc3\xa9 na\xc3\xafve \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x98\x80",
        "<|endoftext|><s></s>\x01\x7f\xff bad utf8", "a"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        int *ids = NULL, n = 0;
        bool bos = tokenizer_bos(t) >= 0;
        if (!tokenizer_encode(t, texts[i], strlen(texts[i]), bos, &ids, &n)) {
            char buf[256];
            for (int k = 0; k < n; k++)
                tokenizer_decode(t, k ? ids[k - 1] : -1, ids[k], buf, sizeof buf);
        }
        free(ids);
    }
    (void)tokenizer_vocab_size(t), (void)tokenizer_eos(t), (void)tokenizer_kind(t);
    (void)tokenizer_add_bos_default(t);
}
#endif
