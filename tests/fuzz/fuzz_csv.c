/* tests/fuzz/fuzz_csv.c: models.csv, recipes.csv and lowbit train's curve.csv (gen/csvin.c,
 * libcsv); every input is read as all three. */
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
    struct curve_row *c = NULL;
    int n = 0;
    if (!csvin_models(path, &m, &n)) free(m);
    if (!csvin_recipes(path, &r, &n)) free(r);
    if (!csvin_curve(path, &c, &n)) free(c);
    return 0;
}
