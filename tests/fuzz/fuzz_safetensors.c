/* tests/fuzz/fuzz_safetensors.c: the safetensors header and tensor table (eval/safetensors.c),
 * parsed from memory as the HF loader's borrowed-map entry point does, and once more through the
 * file entry point. */
#include "eval/safetensors.h"
#include "tests/fuzz/fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    err_set_quiet(true);
    return 0;
}

static void use(const struct safetensors *st) {
    volatile uint8_t sink = 0;
    for (int i = 0; i < st->n_tensors; i++) {
        const struct safetensors_tensor *t = &st->tensors[i];
        if (safetensors_find(st, t->name) == NULL) abort(); /* every listed tensor is findable */
        if (t->nbytes) sink ^= ((const uint8_t *)t->data)[0] ^ ((const uint8_t *)t->data)[t->nbytes - 1];
    }
    for (int i = 0; i < st->n_meta; i++)
        if (safetensors_meta(st, st->meta[i].key) == NULL) abort();
    (void)sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* a private copy, so that a read past the input is caught by ASan at the copy's end */
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    memcpy(copy, data, size);
    struct safetensors st = SAFETENSORS_INIT;
    if (!safetensors_parse(&st, "fuzz.safetensors", copy, size)) use(&st);
    safetensors_close(&st);
    free(copy);
    if (!safetensors_open(&st, fuzz_file(0, data, size))) use(&st);
    safetensors_close(&st);
    return 0;
}
