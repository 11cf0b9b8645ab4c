/* tests/fuzz/fuzz_gguf.c: GGUF files (eval/gguf.c), the vocabulary in their metadata
 * (eval/tokenizer.c) and the model loader on top (eval/gguf_model.c, eval/model.c). */
#include "eval/gguf.h"
#include "eval/model.h"
#include "tests/fuzz/fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    err_set_quiet(true);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_file(0, data, size);
    struct gguf_file g;
    if (gguf_open(&g, path)) return 0;
    /* every getter on every key, as the loaders would use them */
    for (uint64_t i = 0; i < g.n_kv; i++) {
        const struct gguf_kv *kv = &g.kv[i];
        char key[256], buf[64];
        snprintf(key, sizeof key, "%.*s", (int)(kv->key.len < 255 ? kv->key.len : 255), kv->key.p);
        int64_t iv;
        double fv;
        bool bv;
        gguf_get_int(&g, key, &iv);
        gguf_get_float(&g, key, &fv);
        gguf_get_bool(&g, key, &bv);
        gguf_get_str(&g, key, buf, sizeof buf);
        if (kv->type == GGUF_TYPE_ARRAY && kv->v.arr.n && kv->v.arr.type != GGUF_TYPE_STRING &&
            kv->v.arr.type != GGUF_TYPE_ARRAY) {
            (void)gguf_arr_float(kv, kv->v.arr.n - 1);
            (void)gguf_arr_int(kv, 0);
        }
    }
    struct tokenizer *t = NULL;
    if (!tokenizer_from_gguf(&t, &g)) {
        fuzz_tokenizer(t);
        tokenizer_free(t);
    }
    gguf_close(&g);
    struct model m = MODEL_INIT;
    if (!model_load_gguf(&m, path)) (void)model_n_params(&m);
    model_release(&m);
    return 0;
}
