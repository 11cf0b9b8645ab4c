/* tests/fuzz/fuzz_result_json.c: lowbit result files (gen/collect.c): the validation every file
 * gets, and for a file that passes it, the load into a fresh in-memory database. */
#include <jansson.h>

#include "gen/pipeline.h"
#include "tests/fuzz/fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    err_set_quiet(true);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    json_error_t je;
    json_t *r = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &je);
    if (!r) return 0;
    int bad = collect_validate(r, NULL);
    const char *key = json_string_value(json_object_get(r, "job_key"));
    if (!bad && key) {
        /* collect reads a directory: the file under its key's name, alone in results/ */
        char dir[600], path[800];
        snprintf(dir, sizeof dir, "%s/results", fuzz_dir());
        snprintf(path, sizeof path, "%s/%s.json", dir, key);
        if (!pipe_mkdirs(dir) && !pipe_write_atomic(path, (const char *)data, size)) {
            struct collect_opts o = {.results_dir = dir, .db_path = ":memory:", .quiet = true};
            struct collect_stats st;
            collect_run(&o, &st);
            err_set_quiet(true); /* collect_run turns it off again */
            unlink(path);
        }
    }
    json_decref(r);
    return 0;
}
