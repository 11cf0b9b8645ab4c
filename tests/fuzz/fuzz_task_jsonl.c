/* tests/fuzz/fuzz_task_jsonl.c: every task file reader (eval/task_data.c, eval/task_text.c), then
 * the requests (eval/task.c) and metrics (eval/task_metrics.c) of what was read.
 *
 * Input: byte 0 picks the task (mod TASK_COUNT), the rest is the file. PIQA and WinoGrande take a
 * labels file: the part after "\n--labels--\n", when present. MMLU reads a single CSV file. The
 * requests use stories260K's llama2.c tokenizer from LOWBIT_DATA when it is there. */
#include "eval/task_impl.h"
#include "tests/fuzz/fuzz_common.h"

#define SEP "\n--labels--\n"

static struct tokenizer *tok;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    err_set_quiet(true);
    const char *d = getenv("LOWBIT_DATA");
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizers/tok512.bin", d && *d ? d : "../shared/data");
    if (tokenizer_load(&tok, path)) tok = NULL;
    return 0;
}

static int read_task(struct task_rd *r, enum task_id id, const char *file, const char *aux) {
    switch (id) {
    case TASK_ARC_CHALLENGE:
    case TASK_ARC_EASY: return task_read_arc(r, file);
    case TASK_BOOLQ: return task_read_boolq(r, file);
    case TASK_HELLASWAG: return task_read_hellaswag(r, file);
    case TASK_LAMBADA: return task_read_lambada(r, file);
    case TASK_MMLU: return task_read_mmlu(r, fuzz_link(0, "astronomy_test.csv"));
    case TASK_OPENBOOKQA: return task_read_openbookqa(r, file);
    case TASK_PIQA: return task_read_piqa(r, file, aux);
    case TASK_TRUTHFULQA_MC1: return task_read_truthfulqa(r, file);
    case TASK_WINOGRANDE: return task_read_winogrande(r, file, aux);
    case TASK_WIKITEXT: return task_read_wikitext(r, file);
    case TASK_COUNT: break;
    }
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    enum task_id id = (enum task_id)(data[0] % TASK_COUNT);
    size_t n1, n2;
    const uint8_t *p2;
    bool has_aux = fuzz_split(data + 1, size - 1, SEP, &n1, &p2, &n2);
    const char *file = fuzz_file(0, data + 1, n1);
    const char *aux = has_aux ? fuzz_file(1, p2, n2) : NULL;
    struct task_set ts = {.id = id};
    struct task_rd r = {.ts = &ts};
    sha256_init(&r.sha);
    if (!read_task(&r, id, file, aux) && ts.n_docs > 0 && tok) {
        task_limit(&ts, 16, 1234);
        struct request_set rs;
        for (int bos = 0; bos < 2; bos++) {
            if (!task_build_requests(&ts, tok, bos, &rs)) {
                for (int i = 0; i < rs.n; i++) {
                    rs.reqs[i].loglik = -(double)(i % 7) - 0.5;
                    rs.reqs[i].greedy = i % 2;
                }
                struct task_result res;
                if (!task_metrics(&ts, &rs, &res)) task_result_release(&res);
            }
            request_set_release(&rs);
        }
    }
    task_release(&ts);
    return 0;
}
