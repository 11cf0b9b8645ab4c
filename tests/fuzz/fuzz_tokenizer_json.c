/* tests/fuzz/fuzz_tokenizer_json.c: Hugging Face tokenizer.json (eval/tok_bpe.c, eval/tokenizer.c):
 * load, then encode and decode a few texts with what was loaded. */
#include "tests/fuzz/fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    err_set_quiet(true);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_file(0, data, size);
    struct tokenizer *t = NULL;
    if (!tokenizer_load(&t, fuzz_link(0, "tokenizer.json"))) fuzz_tokenizer(t);
    tokenizer_free(t);
    return 0;
}
