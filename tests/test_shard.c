/* tests/test_shard.c: Hugging Face directories in shards (eval/safetensors_shard.c).
 *
 * - the plan: huggingface_hub's rule on a set of tensors with one larger than the limit (its own
 *   shard, numbered when it is met), checked file by file against a hand-computed plan, every
 *   tensor's bytes read back from the shard the index names, total_size, and the single-file case;
 * - a layout switch (one file, then shards, then one file) leaves only the files of the last;
 * - the limit knob: LOWBIT_MAX_SHARD_SIZE with units, and a refusal of nonsense;
 * - end to end: `lowbit quant --recipe rtn-w4g128` of stories260K with a 100 KB limit writes shards
 *   and an index, and `lowbit ppl` of that directory equals the one-file directory's. */
#include <dirent.h>
#include <jansson.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "eval/safetensors.h"
#include "kernels/common.h"
#include "tests/t_cli.h"

static bool exists(const char *dir, const char *name) {
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

static int n_files(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    if (!d) return -1;
    for (const struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* tensors t0..t5 of F32 [n] with n = sizes[i] floats, values i*1000 + j */
static const int64_t sizes[] = {10, 20, 300, 15, 15, 40}; /* ×4 bytes */
static float *vals[6];

static void add_all(struct safetensors_writer *w) {
    for (int i = 0; i < 6; i++) {
        vals[i] = malloc((size_t)sizes[i] * sizeof(float));
        for (int64_t j = 0; j < sizes[i]; j++) vals[i][j] = (float)(i * 1000 + j);
        char name[16];
        snprintf(name, sizeof name, "t%d", i);
        T_EQ_INT(safetensors_writer_add(w, name, "F32", 1, &sizes[i], vals[i],
                                        (size_t)sizes[i] * sizeof(float)),
                 0);
    }
}

static void test_plan(void) {
    const char *dir = t_scratch("shards");
    mkdir(dir, 0777);
    struct safetensors_writer w = SAFETENSORS_WRITER_INIT;
    add_all(&w);
    /* limit 200 bytes: t0 (40) + t1 (80) = 120; t2 (1200) is larger: its own shard, appended at
     * once (shard 1); t3 (60) would make 180: still in the open shard {t0, t1, t3}; t4 (60) tips
     * it (240): the open shard closes as shard 2, {t4} opens; t5 (160) tips it (220): {t4} is
     * shard 3, {t5} shard 4 */
    int64_t bytes = 0;
    T_EQ_INT(safetensors_writer_write_dir(&w, dir, 200, &bytes), 0);
    static const char *const want[6] = {"model-00002-of-00004.safetensors",
                                        "model-00002-of-00004.safetensors",
                                        "model-00001-of-00004.safetensors",
                                        "model-00002-of-00004.safetensors",
                                        "model-00003-of-00004.safetensors",
                                        "model-00004-of-00004.safetensors"};
    T_EQ_INT(n_files(dir), 5);
    T_OK(!exists(dir, "model.safetensors"));
    char p[4200];
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    json_error_t je;
    json_t *idx = json_load_file(p, 0, &je);
    T_OK(idx != NULL);
    const json_t *meta = json_object_get(idx, "metadata");
    T_EQ_INT((int)json_integer_value(json_object_get(meta, "total_size")), 400 * 4);
    const json_t *map = json_object_get(idx, "weight_map");
    T_EQ_INT((int)json_object_size(map), 6);
    int64_t sum = 0;
    for (int i = 0; i < 6; i++) {
        char name[16];
        snprintf(name, sizeof name, "t%d", i);
        const char *f = json_string_value(json_object_get(map, name));
        T_OK(f != NULL);
        if (!f) continue;
        T_EQ_STR(f, want[i]);
        struct safetensors st = SAFETENSORS_INIT;
        snprintf(p, sizeof p, "%s/%s", dir, f);
        T_EQ_INT(safetensors_open(&st, p), 0);
        const struct safetensors_tensor *t = safetensors_find(&st, name);
        T_OK(t && t->nbytes == (size_t)sizes[i] * 4 && !memcmp(t->data, vals[i], t->nbytes));
        safetensors_close(&st);
    }
    for (int s = 1; s <= 4; s++) {
        struct stat sb;
        snprintf(p, sizeof p, "%s/model-%05d-of-00004.safetensors", dir, s);
        if (!stat(p, &sb)) sum += sb.st_size;
    }
    T_EQ_INT((int)bytes, (int)sum);
    /* the index is sorted and indented as transformers writes it */
    char txt[4096];
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    t_read_into(p, txt, sizeof txt);
    T_CONTAINS(txt, "{\n  \"metadata\": {\n    \"total_size\": 1600\n  },\n  \"weight_map\": {\n"
                    "    \"t0\": \"model-00002-of-00004.safetensors\",");
    json_decref(idx);

    /* the same tensors under a large limit: one file, the shards and index gone */
    T_EQ_INT(safetensors_writer_write_dir(&w, dir, SAFETENSORS_DEFAULT_SHARD_BYTES, &bytes), 0);
    T_EQ_INT(n_files(dir), 1);
    T_OK(exists(dir, "model.safetensors"));
    /* and back to shards: the single file is gone */
    T_EQ_INT(safetensors_writer_write_dir(&w, dir, 200, &bytes), 0);
    T_OK(!exists(dir, "model.safetensors") && n_files(dir) == 5);
    safetensors_writer_release(&w);
    for (int i = 0; i < 6; i++) free(vals[i]);
}

static void test_knob(void) {
    unsetenv("LOWBIT_MAX_SHARD_SIZE");
    T_OK(safetensors_max_shard_bytes() == SAFETENSORS_DEFAULT_SHARD_BYTES);
    setenv("LOWBIT_MAX_SHARD_SIZE", "100KB", 1);
    T_OK(safetensors_max_shard_bytes() == 100000);
    setenv("LOWBIT_MAX_SHARD_SIZE", "2GiB", 1);
    T_OK(safetensors_max_shard_bytes() == (int64_t)2 << 30);
    setenv("LOWBIT_MAX_SHARD_SIZE", "12345", 1);
    T_OK(safetensors_max_shard_bytes() == 12345);
    err_set_quiet(true);
    setenv("LOWBIT_MAX_SHARD_SIZE", "5 parsecs", 1);
    T_OK(safetensors_max_shard_bytes() < 0);
    T_CONTAINS(err_last(), "LOWBIT_MAX_SHARD_SIZE=5 parsecs");
    setenv("LOWBIT_MAX_SHARD_SIZE", "0", 1);
    T_OK(safetensors_max_shard_bytes() < 0);
    err_set_quiet(false);
    unsetenv("LOWBIT_MAX_SHARD_SIZE");
}

static void test_cli(void) {
    char model[4096], text[4096], out[8192];
    if (!t_stories260k(model, text)) return;
    const char *one = t_scratch("rtn-one"), *many = t_scratch("rtn-many");
    char cmd[12000];
    snprintf(cmd, sizeof cmd, "%s quant --model %s --recipe rtn-w4g128 --quiet -o %s", t_bin(),
             model, one);
    T_EQ_INT(t_sh(cmd, out, sizeof out), 0);
    snprintf(cmd, sizeof cmd,
             "LOWBIT_MAX_SHARD_SIZE=100KB %s quant --model %s --recipe rtn-w4g128 --quiet -o %s",
             t_bin(), model, many);
    T_EQ_INT(t_sh(cmd, out, sizeof out), 0);
    T_OK(exists(one, "model.safetensors") && !exists(one, "model.safetensors.index.json"));
    T_OK(!exists(many, "model.safetensors") && exists(many, "model.safetensors.index.json"));
    /* every file the index names is there, and there are several */
    char ip[4200];
    snprintf(ip, sizeof ip, "%s/model.safetensors.index.json", many);
    json_error_t je;
    json_t *idx = json_load_file(ip, 0, &je);
    const char *key;
    json_t *v;
    int n_named = 0, n_missing = 0;
    json_object_foreach(json_object_get(idx, "weight_map"), key, v) {
        n_named++;
        n_missing += !exists(many, json_string_value(v));
    }
    json_decref(idx);
    T_OK(n_named > 0 && n_missing == 0);
    T_OK(n_files(many) >= 5); /* config, tokenizer, index and at least two shards */
    const double a = t_ppl(t_bin(), one, text), b = t_ppl(t_bin(), many, text);
    T_OK(isfinite(a) && a == b);
    /* a nonsense limit is refused, naming the variable */
    snprintf(cmd, sizeof cmd,
             "LOWBIT_MAX_SHARD_SIZE=lots %s quant --model %s --recipe rtn-w4g128 --quiet -o %s-x",
             t_bin(), model, many);
    T_OK(t_sh(cmd, out, sizeof out) != 0);
    T_CONTAINS(out, "LOWBIT_MAX_SHARD_SIZE=lots");
}

int main(void) {
    T_RUN(test_plan);
    T_RUN(test_knob);
    T_RUN(test_cli);
    return T_DONE();
}
