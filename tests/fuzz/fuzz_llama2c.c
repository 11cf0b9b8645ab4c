/* tests/fuzz/fuzz_llama2c.c: llama2.c files: the checkpoint (legacy, ak42 v1 and v2, in
 * eval/llama2c.c) and tokenizer.bin (eval/tokenizer.c), the same bytes read as both. */
#include "eval/model.h"
#include "tests/fuzz/fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    err_set_quiet(true);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_file(0, data, size);
    struct model m = MODEL_INIT;
    if (!model_load_llama2c(&m, path)) (void)model_n_params(&m);
    model_release(&m);
    struct tokenizer *t = NULL;
    if (!tokenizer_load(&t, fuzz_link(0, "tokenizer.bin"))) fuzz_tokenizer(t);
    tokenizer_free(t);
    return 0;
}
