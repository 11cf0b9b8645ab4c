/* tests/fuzz/fuzz_hf_config.c: a Hugging Face model directory (eval/hf.c): config.json, and when
 * the input holds the separator below, a model.safetensors after it, so the fuzzer reaches the
 * tensor mapping and the quantized-weight loaders (GPTQ/AWQ/bitsandbytes) with a config it
 * controls. */
#include "eval/model.h"
#include "tests/fuzz/fuzz_common.h"

#define SEP "\n--model.safetensors--\n"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    err_set_quiet(true);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    size_t n1, n2;
    const uint8_t *p2;
    bool has_st = fuzz_split(data, size, SEP, &n1, &p2, &n2);
    fuzz_file(0, data, n1);
    (void)fuzz_link(0, "config.json");
    /* the weights link exists only when the input has weights: "no weights" is its own path */
    char st_path[600];
    snprintf(st_path, sizeof st_path, "%s/model.safetensors", fuzz_dir());
    if (has_st) {
        fuzz_file(1, p2, n2);
        char target[64];
        snprintf(target, sizeof target, "/proc/self/fd/%d", fuzz_fd(1));
        if (access(st_path, F_OK) && symlink(target, st_path)) abort();
    } else {
        unlink(st_path);
    }
    struct model m = MODEL_INIT;
    if (!model_load_hf(&m, fuzz_dir())) (void)model_weight_bytes(&m);
    model_release(&m);
    return 0;
}
