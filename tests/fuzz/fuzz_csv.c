/* tests/fuzz/fuzz_csv.c: models.csv and recipes.csv (gen/csvin.c, libcsv); every input is read
 * as both. */
#include "gen/pipeline.h"
#include "tests/fuzz/fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    err_set_quiet(true);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_file(0, data, size);
    struct model_row *m = NULL;
    struct recipe *r = NULL;
    int n = 0;
    if (!csvin_models(path, &m, &n)) free(m);
    if (!csvin_recipes(path, &r, &n)) free(r);
    return 0;
}
