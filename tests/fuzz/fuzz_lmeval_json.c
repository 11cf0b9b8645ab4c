/* tests/fuzz/fuzz_lmeval_json.c: lm-evaluation-harness / Intel board results JSON (gen/import.c).
 * An accepted file is written as OUT/results/<key>.json in the scratch directory, then deleted. */
#include "gen/pipeline.h"
#include "tests/fuzz/fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    err_set_quiet(true);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_file(0, data, size);
    char out[600], key[65];
    snprintf(out, sizeof out, "%s/out", fuzz_dir());
    struct import_opts o = {.out_dir = out, .quiet = true};
    if (!import_file(fuzz_link(0, "results.json"), &o, key)) {
        char res[800];
        snprintf(res, sizeof res, "%s/results/%s.json", out, key);
        unlink(res);
    }
    return 0;
}
