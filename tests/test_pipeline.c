/* tests/test_pipeline.c: the pipeline end to end on a tiny random model (a GGUF written here with
 * stories260K's vocabulary): CSVs, keys, lowbit run (LOWBIT_BIN, set by tests/run.sh) with
 * broken rows, -j 1 vs -j 2, kill -9 of the runner and of collect, idempotent collect, malformed
 * result files, imports, ids that try to escape out/. Tasks are arc_easy, piqa, ppl and kld at
 * --limit 4 so the whole file runs in well under a minute. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "eval/gguf.h"
#include "eval/kld.h"
#include "eval/model.h"
#include "kernels/base/sha256.h"
#include "gen/pipeline.h"
#include "quant/quant.h"
#include "tests/t_cli.h"

/* ===== helpers ===== */

static char out_buf[1 << 16], err_buf[1 << 18];


/* "PREFIX $LOWBIT_BIN args" with stdout/stderr captured; the exit status (128 + signal when
 * killed). The prefix runs the binary under a limit (prlimit ...) or with an environment. */
static int vrun_with(const char *prefix, const char *fmt, va_list ap) {
    return t_vrun(prefix, out_buf, sizeof out_buf, err_buf, sizeof err_buf, fmt, ap);
}
static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = vrun_with("", fmt, ap);
    va_end(ap);
    return rc;
}
static int run_with(const char *prefix, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int run_with(const char *prefix, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = vrun_with(prefix, fmt, ap);
    va_end(ap);
    return rc;
}

static void spit(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void file_sha(const char *path, char hex[65]) {
    struct sha256 h;
    sha256_init(&h);
    FILE *f = fopen(path, "rb");
    char buf[1 << 14];
    size_t n;
    while (f && (n = fread(buf, 1, sizeof buf, f))) sha256_update(&h, buf, n);
    if (f) fclose(f);
    sha256_hex(&h, hex);
}

static int count_files(const char *dir, const char *suffix) {
    char cmd[1024], o[300];
    snprintf(o, sizeof o, "%s/count.out", t_tmpdir());
    snprintf(cmd, sizeof cmd, "ls %s 2>/dev/null | grep -c '%s$' > %s", dir, suffix, o);
    if (system(cmd) < 0) return -1;
    char b[32];
    t_read_into(o, b, sizeof b);
    return atoi(b);
}

/* ===== the fixture: a tiny random llama with stories260K's tokenizer ===== */

enum { D = 32, HID = 64, NL = 2, NH = 4, NKV = 2, HD = 8 };

static uint32_t rng;
static float frand(void) {
    rng = rng * 1664525u + 1013904223u;
    return ((rng >> 8) / 16777216.0f - 0.5f) * 0.4f;
}

static int write_fixture(const char *path, uint32_t seed) {
    struct model src = MODEL_INIT;
    const char *s = T_DATA("models/stories260K.gguf");
    if (!s || model_load(&src, s)) return -1;
    const int V = src.cfg.vocab_size;
    rng = seed;
    struct gguf_writer *w = gguf_writer_new();
    gguf_writer_str(w, "general.architecture", "llama");
    gguf_writer_u32(w, "llama.embedding_length", D);
    gguf_writer_u32(w, "llama.block_count", NL);
    gguf_writer_u32(w, "llama.feed_forward_length", HID);
    gguf_writer_u32(w, "llama.attention.head_count", NH);
    gguf_writer_u32(w, "llama.attention.head_count_kv", NKV);
    gguf_writer_u32(w, "llama.context_length", 512);
    gguf_writer_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    int rc = quant_gguf_copy_tokenizer(w, &src);
    float *bufs[64];
    int nb = 0;
#define T(name, a, b, base)                                                                        \
    do {                                                                                           \
        int64_t ne_[2] = {a, b ? b : 1};                                                           \
        float *p_ = malloc((size_t)(a) * (size_t)ne_[1] * sizeof(float));                        \
        for (int64_t i_ = 0; i_ < (int64_t)(a) * ne_[1]; i_++) p_[i_] = (base) + frand();         \
        bufs[nb++] = p_;                                                                           \
        gguf_writer_tensor(w, name, 0, b ? 2 : 1, ne_, p_, (uint64_t)((a) * ne_[1] * 4));         \
    } while (0)
    T("token_embd.weight", D, V, 0);
    T("output_norm.weight", D, 0, 1);
    T("output.weight", D, V, 0);
    char name[64];
    for (int l = 0; l < NL; l++) {
#define TL(suffix, a, b, base)                                                                     \
    snprintf(name, sizeof name, "blk.%d." suffix, l);                                              \
    T(name, a, b, base)
        TL("attn_norm.weight", D, 0, 1);
        TL("attn_q.weight", D, NH * HD, 0);
        TL("attn_k.weight", D, NKV * HD, 0);
        TL("attn_v.weight", D, NKV * HD, 0);
        TL("attn_output.weight", NH * HD, D, 0);
        TL("ffn_norm.weight", D, 0, 1);
        TL("ffn_gate.weight", D, HID, 0);
        TL("ffn_up.weight", D, HID, 0);
        TL("ffn_down.weight", HID, D, 0);
#undef TL
    }
#undef T
    if (!rc) rc = gguf_writer_write(w, path);
    gguf_writer_free(w);
    for (int i = 0; i < nb; i++) free(bufs[i]);
    model_release(&src);
    return rc;
}

/* the test's CSVs: a good model, a missing file, a corrupt GGUF; fp32, fp16, an unknown recipe */
static const char *models_csv, *recipes_csv;
static const char *TASKS = "--tasks arc_easy,piqa,ppl,kld --limit 4";

static bool setup_done, setup_ok;
static void setup(void) {
    if (setup_done) return;
    setup_done = true;
    char text[2048];
    const char *good = t_scratch("good.gguf"), *corrupt = t_scratch("corrupt.gguf");
    if (write_fixture(good, 1234)) return;
    spit(corrupt, "GGUF\3\0\0\0garbage");
    models_csv = t_scratch("models.csv");
    snprintf(text, sizeof text,
             "id,path,tokenizer,display_name,family,license,notes\n"
             "good,%s,,Good model,test,MIT,\"a note, with a comma\"\n"
             "# a commented-out row\n"
             "missing,%s,,,,,\n"
             "corrupt,%s,,,,,\n",
             good, t_scratch("missing.gguf"), corrupt);
    spit(models_csv, text);
    recipes_csv = t_scratch("recipes.csv");
    spit(recipes_csv, "id,algorithm,weight_dtype,bits,group_size,compute_dtype,knobs\n"
                      "fp32,fp,float32,32,,fp32,\n"
                      "fp16,FP,fp16,16,,,\n"
                      "bogus,frobnicate,int4,4,128,,\"{\"\"b\"\": 1, \"\"a\"\": 2}\"\n");
    setup_ok = true;
}

/* ===== the database as text, without times, hosts, thread counts and ids ===== */

static int dump_row(void *arg, int n, char **v, char **names) {
    (void)names;
    char **s = arg;
    size_t len = *s ? strlen(*s) : 0, add = 2;
    for (int i = 0; i < n; i++) add += (v[i] ? strlen(v[i]) : 4) + 1;
    *s = realloc(*s, len + add + 1);
    char *p = *s + len;
    for (int i = 0; i < n; i++) p += sprintf(p, "%s%s", i ? "|" : "", v[i] ? v[i] : "NULL");
    strcpy(p, "\n");
    return 0;
}

static char *dump_db(const char *path) {
    sqlite3 *db = NULL;
    char *s = strdup("");
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        return s;
    }
    static const char *const q[] = {
        "SELECT 'M', * FROM models ORDER BY id",
        "SELECT 'R', * FROM recipes ORDER BY id",
        "SELECT 'U', job_key, model_id, recipe_id, status, error, code_version, kernels_isa, "
        "artifact_path, artifact_bytes, printf('%.17g', bits_per_weight), n_params FROM runs "
        "ORDER BY job_key",
        "SELECT 'S', r.job_key, s.task, s.metric, printf('%.17g', s.value), "
        "printf('%.17g', s.stderr), s.n FROM scores s JOIN runs r ON r.id = s.run_id ORDER BY 2, "
        "3, 4",
        "SELECT 'T', r.job_key, t.task, t.dataset_file, t.dataset_sha256, t.n_docs, "
        "t.n_docs_full, t.limit_n, t.seed, t.num_fewshot, t.add_bos, t.ctx FROM task_defs t JOIN "
        "runs r ON r.id = t.run_id ORDER BY 2, 3",
        "SELECT 'P', r.job_key, p.key, p.value FROM provenance p JOIN runs r ON r.id = p.run_id "
        "WHERE p.key NOT IN ('result.sha256', 'quant.write_seconds') ORDER BY 2, 3",
    };
    for (size_t i = 0; i < sizeof q / sizeof q[0]; i++) sqlite3_exec(db, q[i], dump_row, &s, NULL);
    sqlite3_close(db);
    return s;
}


static void integrity_ok(const char *db) {
    char *v = t_q1_open(db, "PRAGMA integrity_check", 1);
    T_EQ_STR(v, "ok");
    free(v);
}

/* ===== unit: ids, CSVs, task names ===== */

static void test_ids(void) {
    err_set_quiet(true);
    T_EQ_INT(pipe_id_check("stories260K", "t"), 0);
    T_EQ_INT(pipe_id_check("gptq-w4g128_v2.1+x", "t"), 0);
    T_ERR(pipe_id_check("../x", "t"));
    T_CONTAINS(err_last(), "../x");
    T_ERR(pipe_id_check("a/b", "t"));
    T_ERR(pipe_id_check(".hidden", "t"));
    T_ERR(pipe_id_check("-rf", "t"));
    T_ERR(pipe_id_check("", "t"));
    T_ERR(pipe_id_check("a b", "t"));
    char longid[300];
    memset(longid, 'a', sizeof longid - 1);
    longid[sizeof longid - 1] = 0;
    T_ERR(pipe_id_check(longid, "t"));
    err_set_quiet(false);
    char id[PIPE_ID_MAX];
    pipe_id_sanitize("../../etc/passwd", id, sizeof id);
    T_EQ_STR(id, "etc--passwd");
    T_EQ_INT(pipe_id_check(id, "t"), 0);
    pipe_id_sanitize("meta-llama/Llama-2-7b-hf", id, sizeof id);
    T_EQ_STR(id, "meta-llama--Llama-2-7b-hf");
    pipe_id_sanitize("a b;$(rm)", id, sizeof id);
    T_EQ_STR(id, "a_b___rm_");
    pipe_id_sanitize("../..", id, sizeof id);
    T_EQ_STR(id, "unnamed");
    pipe_id_sanitize(longid, id, sizeof id);
    T_EQ_INT(pipe_id_check(id, "t"), 0);
    char p[256];
    setenv("LOWBIT_TEST_VAR", "/data", 1);
    T_EQ_INT(pipe_expand("${LOWBIT_TEST_VAR}/m.gguf", p, sizeof p), 0);
    T_EQ_STR(p, "/data/m.gguf");
    err_set_quiet(true);
    T_ERR(pipe_expand("${LOWBIT_NOT_SET_ANYWHERE}/m", p, sizeof p));
    T_CONTAINS(err_last(), "LOWBIT_NOT_SET_ANYWHERE");
    err_set_quiet(false);
}

static void test_task_names(void) {
    char b[128];
    T_EQ_STR(import_task_name("arc:challenge", b, sizeof b), "arc_challenge");
    T_EQ_STR(import_task_name("arc:easy", b, sizeof b), "arc_easy");
    T_EQ_STR(import_task_name("lambada:openai", b, sizeof b), "lambada_openai");
    T_EQ_STR(import_task_name("truthfulqa:mc1", b, sizeof b), "truthfulqa_mc1");
    T_EQ_STR(import_task_name("hellaswag", b, sizeof b), "hellaswag");
    T_EQ_STR(import_task_name("mmlu_abstract_algebra", b, sizeof b), "mmlu_abstract_algebra");
    T_OK(!import_task_name("gsm8k", b, sizeof b));
    T_OK(!import_task_name("../x", b, sizeof b));
}

static void test_csv(void) {
    setup();
    if (!setup_ok) { T_FAIL_("no fixture"); return; }
    struct model_row *m = NULL;
    struct recipe *r = NULL;
    int nm = 0, nr = 0;
    T_EQ_INT(csvin_models(models_csv, &m, &nm), 0);
    T_EQ_INT(nm, 3);
    if (nm == 3) {
        T_EQ_STR(m[0].id, "good");
        T_EQ_STR(m[0].display_name, "Good model");
        T_EQ_STR(m[0].notes, "a note, with a comma");
        T_EQ_STR(m[1].display_name, "missing"); /* defaults to the id */
        T_EQ_STR(m[2].id, "corrupt");
    }
    T_EQ_INT(csvin_recipes(recipes_csv, &r, &nr), 0);
    T_EQ_INT(nr, 3);
    if (nr == 3) {
        T_EQ_STR(r[1].algorithm, "fp");
        T_EQ_INT(r[1].method, QMETHOD_FP);
        T_EQ_STR(r[1].weight_dtype, "float16"); /* canonical */
        T_EQ_STR(r[1].compute_dtype, "fp32");   /* default */
        T_EQ_INT(r[2].method, QMETHOD_COUNT);   /* unknown: a failed job, not a CSV error */
        T_EQ_STR(r[2].knobs, "{\"a\":2,\"b\":1}");
        T_EQ_INT(r[2].group_size, 128);
        T_EQ_INT(r[0].has_group_size, 0);
        err_set_quiet(true);
        T_ERR(recipe_check(&r[2]));
        T_CONTAINS(err_last(), "algorithm 'frobnicate' is unknown");
        T_EQ_INT(recipe_check(&r[0]), 0);
        err_set_quiet(false);
    }
    free(m);
    free(r);
    struct {
        const char *text, *want;
    } bad[] = {
        {"id,path,colour\na,b,c\n", "unknown column 'colour'"},
        {"id\na\n", "no 'path' column"},
        {"id,path\na,x\na,y\n", "id 'a' appears twice"},
        {"id,path\n../x,y\n", "id '../x'"},
        {"id,path\na,\n", "path is empty"},
        {"id,path\na,\"unterminated\n", "bad.csv"},
    };
    err_set_quiet(true);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *p = t_scratch("bad.csv");
        spit(p, bad[i].text);
        T_ERR(csvin_models(p, &m, &nm));
        T_CONTAINS(err_last(), bad[i].want);
    }
    const char *p = t_scratch("badr.csv");
    spit(p, "id,algorithm,sym\nx,rtn,maybe\n");
    T_ERR(csvin_recipes(p, &r, &nr));
    T_CONTAINS(err_last(), "column sym");
    spit(p, "id,algorithm,knobs\nx,rtn,[1]\n");
    T_ERR(csvin_recipes(p, &r, &nr));
    T_CONTAINS(err_last(), "knobs");
    err_set_quiet(false);
}

/* ===== keys ===== */

static void key_of(const struct job *j, char hex[65]) {
    char *t = plan_key_text(j);
    struct sha256 h;
    sha256_init(&h);
    sha256_update(&h, t, strlen(t));
    sha256_hex(&h, hex);
    free(t);
}

static void test_keys(void) {
    setup();
    if (!setup_ok) { T_FAIL_("no fixture"); return; }
    struct model_row *m = NULL;
    struct recipe *r = NULL;
    int nm = 0, nr = 0;
    if (csvin_models(models_csv, &m, &nm) || csvin_recipes(recipes_csv, &r, &nr)) {
        T_FAIL_("CSVs");
        return;
    }
    struct eval_spec ev;
    plan_eval_default(&ev, false);
    T_EQ_INT(plan_eval_tasks(&ev, "arc_easy,piqa,ppl,kld"), 0);
    plan_eval_limit(&ev, 4);
    T_EQ_INT(plan_eval_hash(&ev), 0);
    struct job a, b;
    const char *cache = t_scratch("keycache");
    T_EQ_INT(plan_job(&a, &m[0], &r[0], &ev, cache), 0);
    T_EQ_INT(plan_job(&b, &m[0], &r[0], &ev, cache), 0); /* through the hash cache this time */
    T_EQ_STR(a.key, b.key);
    char k[65];
    key_of(&a, k);
    T_EQ_STR(k, a.key);
    /* the key text names everything */
    char *text = plan_key_text(&a);
    T_CONTAINS(text, "model.files ");
    T_CONTAINS(text, "task arc_easy limit 4 seed 1234");
    T_CONTAINS(text, "kld llamacpp ctx 512 chunks 4 base model");
    free(text);
    /* not in the key: names, notes, where the file is */
    b = a;
    snprintf(b.model.display_name, sizeof b.model.display_name, "Renamed");
    snprintf(b.model.notes, sizeof b.model.notes, "other notes");
    key_of(&b, k);
    T_EQ_STR(k, a.key);
    struct model_row moved = m[0];
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cp %s %s", t_scratch("good.gguf"), t_scratch("moved.gguf"));
    T_EQ_INT(system(cmd), 0);
    snprintf(moved.path, sizeof moved.path, "%s", t_scratch("moved.gguf"));
    T_EQ_INT(plan_job(&b, &moved, &r[0], &ev, cache), 0);
    T_EQ_STR(b.key, a.key);
    /* in the key: every input that decides the numbers */
    T_EQ_INT(write_fixture(t_scratch("moved.gguf"), 99), 0); /* other weights at the same path */
    T_EQ_INT(plan_job(&b, &moved, &r[0], &ev, cache), 0);
    T_OK(strcmp(b.key, a.key));
    T_EQ_INT(plan_job(&b, &m[0], &r[1], &ev, cache), 0); /* another recipe */
    T_OK(strcmp(b.key, a.key));
#define CHANGED(stmt)                                                                              \
    do {                                                                                           \
        b = a;                                                                                     \
        stmt;                                                                                      \
        key_of(&b, k);                                                                             \
        if (!strcmp(k, a.key)) T_FAIL_("the key ignores: %s", #stmt);                              \
    } while (0)
    CHANGED(b.recipe.bits = 16);
    CHANGED(snprintf(b.recipe.weight_dtype, sizeof b.recipe.weight_dtype, "bfloat16"));
    CHANGED(snprintf(b.recipe.knobs, sizeof b.recipe.knobs, "{\"damp\":0.1}"));
    CHANGED(snprintf(b.recipe.compute_dtype, sizeof b.recipe.compute_dtype, "bf16"));
    CHANGED(b.recipe.group_size = 64; b.recipe.has_group_size = true);
    CHANGED(snprintf(b.recipe.id, sizeof b.recipe.id, "fp32b"));
    CHANGED(snprintf(b.model.id, sizeof b.model.id, "other"));
    CHANGED(b.ev.limit[TASK_PIQA] = 5);
    CHANGED(b.ev.limit[PIPE_KLD] = 0);
    CHANGED(b.ev.seed = 1);
    CHANGED(b.ev.on[TASK_ARC_EASY] = false);
    CHANGED(b.ev.on[TASK_BOOLQ] = true);
    CHANGED(b.ev.sha[TASK_PIQA][0] ^= 1);  /* a dataset file changed */
    CHANGED(b.ev.sha[PIPE_PPL][3] ^= 1);
    CHANGED(snprintf(b.tok_sha, sizeof b.tok_sha, "%064d", 7)); /* the tokenizer file */
    CHANGED(snprintf(b.code_hash, sizeof b.code_hash, "src.0123"));
    /* the calibration file by its content, found as the quantizer finds it: a name of
     * LOWBIT_DATA/datasets/calibration/ ("groups_merged") or a path */
    b = a;
    snprintf(b.recipe.calib_set, sizeof b.recipe.calib_set, "groups_merged");
    char *ct = plan_key_text(&b);
    T_OK(!strstr(ct, "calib unreadable") && strstr(ct, "calib "));
    free(ct);
    key_of(&b, k);
    char kc[65];
    snprintf(kc, sizeof kc, "%s", k);
    spit(t_scratch("calib.txt"), "one calibration text\n");
    snprintf(b.recipe.calib_set, sizeof b.recipe.calib_set, "%s", t_scratch("calib.txt"));
    key_of(&b, k);
    T_OK(strcmp(k, kc));
    snprintf(kc, sizeof kc, "%s", k);
    spit(t_scratch("calib.txt"), "another calibration text\n"); /* same path, other bytes */
    key_of(&b, k);
    T_OK(strcmp(k, kc));
    b = a; /* the describe part is for people only */
    snprintf(b.code_version, sizeof b.code_version, "v9.9-other-commit");
    key_of(&b, k);
    T_EQ_STR(k, a.key);
#undef CHANGED
    /* the spec file round trip keeps the key */
    json_t *o = job_to_json(&a);
    struct job c;
    T_EQ_INT(job_from_json(&c, o, "spec"), 0);
    json_decref(o);
    key_of(&c, k);
    T_EQ_STR(k, a.key);
    T_EQ_STR(c.model_path, a.model_path);
    free(m);
    free(r);
}

/* ===== end to end ===== */

static char *ref_dump; /* the uninterrupted -j 1 run */

static void test_run(void) {
    setup();
    if (!setup_ok) { T_FAIL_("no fixture"); return; }
    const char *A = t_scratch("A"), *dbA = t_scratch("A/lowbit.db");
    T_EQ_INT(run("run --models %s --recipes %s %s -j 1 --out %s", models_csv, recipes_csv, TASKS, A), 0);
    T_CONTAINS(err_buf, "9 to run");
    integrity_ok(dbA);
    T_Q(dbA, "SELECT count(*) FROM runs", "9");
    T_Q(dbA, "SELECT count(*) FROM runs WHERE status = 'ok'", "2");
    T_Q(dbA, "SELECT group_concat(recipe_id) FROM (SELECT recipe_id FROM runs WHERE status = 'ok' "
             "AND model_id = 'good' ORDER BY 1)", "fp16,fp32");
    /* broken rows: failed with a clear message, the rest completed */
    T_QC(dbA, "SELECT error FROM runs WHERE model_id = 'missing' AND recipe_id = 'fp32'",
         "missing.gguf: cannot open");
    T_QC(dbA, "SELECT error FROM runs WHERE model_id = 'corrupt' AND recipe_id = 'fp16'",
         "corrupt.gguf");
    T_QC(dbA, "SELECT error FROM runs WHERE model_id = 'good' AND recipe_id = 'bogus'",
         "algorithm 'frobnicate' is unknown");
    T_QC(dbA, "SELECT log_tail FROM runs WHERE model_id = 'good' AND recipe_id = 'bogus'",
         "frobnicate");
    /* what an ok run stores */
    T_Q(dbA, "SELECT display_name FROM models WHERE id = 'good'", "Good model");
    char want[64];
    snprintf(want, sizeof want, "%d", 2 * D * 512 + D + NL * (2 * D + 2 * D * NH * HD + 2 * D * NKV * HD + 3 * D * HID));
    T_Q(dbA, "SELECT n_params FROM models WHERE id = 'good'", want);
    T_Q(dbA, "SELECT knobs FROM recipes WHERE id = 'bogus'", "{\"a\":2,\"b\":1}");
    T_Q(dbA, "SELECT count(*) FROM scores s JOIN runs r ON r.id = s.run_id WHERE r.model_id = "
             "'good' AND r.recipe_id = 'fp32' AND ((s.task = 'arc_easy' AND s.metric = 'acc' AND "
             "s.n = 4) OR (s.task = 'piqa' AND s.metric = 'acc') OR (s.task = 'ppl' AND s.metric "
             "= 'ppl_llamacpp_ctx512') OR (s.task = 'kld' AND s.metric = 'kld_mean'))", "4");
    T_Q(dbA, "SELECT s.value < 1e-9 FROM scores s JOIN runs r ON r.id = s.run_id WHERE "
             "r.recipe_id = 'fp32' AND r.model_id = 'good' AND s.metric = 'kld_mean'", "1");
    T_Q(dbA, "SELECT s.value > 1e-12 AND s.value < 1e-3 FROM scores s JOIN runs r ON r.id = "
             "s.run_id WHERE r.recipe_id = 'fp16' AND s.metric = 'kld_mean'", "1");
    T_Q(dbA, "SELECT round(bits_per_weight) FROM runs WHERE model_id = 'good' AND recipe_id = "
             "'fp32'", "32.0");
    T_Q(dbA, "SELECT bits_per_weight > 16 AND bits_per_weight < 16.5 FROM runs WHERE model_id = "
             "'good' AND recipe_id = 'fp16'", "1");
    T_Q(dbA, "SELECT count(*) FROM task_defs t JOIN runs r ON r.id = t.run_id WHERE r.recipe_id "
             "= 'fp16' AND r.model_id = 'good'", "4");
    T_QC(dbA, "SELECT artifact_path FROM runs WHERE model_id = 'good' AND recipe_id = 'fp16'",
         "artifacts/");
    T_Q(dbA, "SELECT count(*) FROM leaderboard", "2");
    /* issue 17: every ok run has its per-sample records, the documents' texts and its speed */
    T_Q(dbA, "SELECT count(*) FROM runs r WHERE status = 'ok' AND NOT EXISTS (SELECT 1 FROM "
             "samples s WHERE s.run_id = r.id)", "0");
    T_Q(dbA, "SELECT count(*) FROM runs WHERE status = 'ok' AND NOT (prefill_tps > 0 AND "
             "decode_tps > 0 AND run_memory_mb > 0)", "0");
    T_Q(dbA, "SELECT count(*) > 0 FROM documents", "1");
    /* a task's records average to its score (acc over the documents) */
    T_Q(dbA, "SELECT count(*) FROM scores c WHERE c.metric = 'acc' AND c.task IN (SELECT name FROM "
             "tasks) AND abs(c.value - (SELECT avg(acc) FROM samples s WHERE s.run_id = c.run_id "
             "AND s.task = c.task)) > 1e-12", "0");
    /* a second run does no model work */
    char sha1[65], sha2[65];
    file_sha(dbA, sha1);
    struct timespec w0, w1;
    clock_gettime(CLOCK_MONOTONIC, &w0);
    T_EQ_INT(run("run --models %s --recipes %s %s -j 1 --out %s", models_csv, recipes_csv, TASKS, A), 0);
    clock_gettime(CLOCK_MONOTONIC, &w1);
    T_CONTAINS(err_buf, "0 to run");
    T_CONTAINS(err_buf, "9 unchanged");
    T_OK(w1.tv_sec - w0.tv_sec < 10);
    file_sha(dbA, sha2);
    T_EQ_STR(sha1, sha2); /* not one byte of the database changed */
    ref_dump = dump_db(dbA);
    /* -j 2: the same contents */
    const char *B = t_scratch("B");
    T_EQ_INT(run("run --models %s --recipes %s %s -j 2 --out %s", models_csv, recipes_csv, TASKS, B), 0);
    char *dB = dump_db(t_scratch("B/lowbit.db"));
    T_EQ_STR(dB, ref_dump);
    free(dB);
    /* --strict turns failed jobs into a failed run */
    T_EQ_INT(run("run --models %s --recipes %s %s --out %s --strict --quiet", models_csv,
                 recipes_csv, TASKS, A), 1);
    T_CONTAINS(err_buf, "7 jobs failed");
}

/* kill -9 of the runner at random points, then run to the end: the same database */
static void test_kill_runner(void) {
    if (!ref_dump) { T_FAIL_("needs test_run"); return; }
    const char *C = t_scratch("C"), *dbC = t_scratch("C/lowbit.db");
    char tasks[256];
    snprintf(tasks, sizeof tasks, "%s", TASKS);
    srand(42);
    int killed = 0;
    for (int round = 0; round < 6; round++) {
        pid_t pid = fork();
        if (!pid) {
            if (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr)) _exit(127);
            execl(t_bin(), "lowbit", "run", "--models", models_csv, "--recipes", recipes_csv,
                  "--tasks", "arc_easy,piqa,ppl,kld", "--limit", "4", "-j", round % 2 ? "2" : "1",
                  "--out", C, (char *)NULL);
            _exit(127);
        }
        usleep((useconds_t)(50000 + rand() % 900000));
        killed += kill(pid, SIGKILL) == 0;
        int st;
        waitpid(pid, &st, 0);
        if (!access(dbC, F_OK)) integrity_ok(dbC); /* whatever state it was left in */
    }
    T_OK(killed > 0);
    T_EQ_INT(run("run --models %s --recipes %s %s -j 2 --out %s", models_csv, recipes_csv, tasks, C), 0);
    integrity_ok(dbC);
    T_EQ_INT(count_files(t_scratch("C/results"), "[0-9a-f]\\.json"), 9);
    T_EQ_INT(count_files(t_scratch("C/results"), "\\.tmp\\.[0-9]*"), 0);
    T_Q(dbC, "SELECT count(*) FROM runs", "9");
    T_Q(dbC, "SELECT count(DISTINCT model_id || '/' || recipe_id) FROM runs", "9");
    char *d = dump_db(dbC);
    T_EQ_STR(d, ref_dump);
    free(d);
}

/* kill -9 of collect at random points, then collect to the end: the same database */
static void test_kill_collect(void) {
    if (!ref_dump) { T_FAIL_("needs test_run"); return; }
    const char *db = t_scratch("killed-collect.db"), *results = t_scratch("A/results");
    srand(7);
    for (int round = 0; round < 8; round++) {
        pid_t pid = fork();
        if (!pid) {
            if (!freopen("/dev/null", "w", stderr)) _exit(127);
            execl(t_bin(), "lowbit", "collect", "--results", results, "--db", db, (char *)NULL);
            _exit(127);
        }
        usleep((useconds_t)(rand() % 40000));
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        if (!access(db, F_OK)) integrity_ok(db);
    }
    T_EQ_INT(run("collect --results %s --db %s", results, db), 0);
    integrity_ok(db);
    char *d = dump_db(db);
    T_EQ_STR(d, ref_dump);
    free(d);
    /* idempotent: again, and nothing changes */
    char s1[65], s2[65];
    file_sha(db, s1);
    T_EQ_INT(run("collect --results %s --db %s", results, db), 0);
    T_CONTAINS(err_buf, "0 new, 0 replaced, 9 unchanged");
    file_sha(db, s2);
    T_EQ_STR(s1, s2);
}

static void test_malformed(void) {
    if (!ref_dump) { T_FAIL_("needs test_run"); return; }
    const char *E = t_scratch("E"), *db = t_scratch("E/lowbit.db");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "mkdir -p %s/results && cp %s/*.json %s/results/", E, t_scratch("A/results"), E);
    T_EQ_INT(system(cmd), 0);
    const char *garbage = "0000000000000000000000000000000000000000000000000000000000000001.json";
    char p[600];
    snprintf(p, sizeof p, "%s/results/%s", E, garbage);
    spit(p, "{\"format\": \"lowbit-result\", \"version\": 1, \"job_key\": \"00");
    snprintf(p, sizeof p, "%s/results/not-a-key.json", E);
    spit(p, "{}");
    /* a well-formed file whose model id tries to leave out/ */
    const char *evil = "0000000000000000000000000000000000000000000000000000000000000002";
    snprintf(cmd, sizeof cmd, "ls %s/results | head -1", t_scratch("A"));
    FILE *ls = popen(cmd, "r");
    char first[128] = "";
    if (ls) {
        if (!fgets(first, sizeof first, ls)) first[0] = 0;
        pclose(ls);
    }
    first[strcspn(first, "\n")] = 0;
    snprintf(p, sizeof p, "%s/results/%s", t_scratch("A"), first);
    json_t *r = json_load_file(p, 0, NULL);
    T_OK(r != NULL);
    if (r) {
        json_object_set_new(r, "job_key", json_string(evil));
        json_object_set_new(json_object_get(r, "model"), "id", json_string("../x"));
        snprintf(p, sizeof p, "%s/results/%s.json", E, evil);
        json_dump_file(r, p, 0);
        json_decref(r);
    }
    /* a run object naming the identity columns itself (null job key, another model): the
     * validated key and ids win (fuzz: the insert failed a NOT NULL constraint) */
    snprintf(p, sizeof p, "%s/results/%s", t_scratch("A"), first);
    if ((r = json_load_file(p, 0, NULL))) {
        json_t *ru = json_object_get(r, "run");
        json_object_set_new(ru, "job_key", json_null());
        json_object_set_new(ru, "model_id", json_string("intruder"));
        snprintf(p, sizeof p, "%s/results/%s", E, first);
        json_dump_file(r, p, 0);
        json_decref(r);
    }
    T_EQ_INT(run("collect --results %s/results --db %s", E, db), 1);
    T_OK(!strstr(err_buf, "NOT NULL"));
    T_Q(db, "SELECT count(*) FROM runs WHERE model_id = 'intruder' OR job_key IS NULL", "0");
    T_CONTAINS(err_buf, garbage);
    T_CONTAINS(err_buf, "not-a-key.json");
    T_CONTAINS(err_buf, "skipped");
    T_CONTAINS(err_buf, "model.id: id '../x'");
    T_CONTAINS(err_buf, "3 malformed");
    T_Q(db, "SELECT count(*) FROM runs", "9");
    T_Q(db, "SELECT count(*) FROM models WHERE id LIKE '%x%'", "0");
    integrity_ok(db);
}

/* a worker that crashes, one that hangs past --timeout, one that exits without a result */
static void test_crash_timeout(void) {
    setup();
    if (!setup_ok) { T_FAIL_("no fixture"); return; }
    const char *F = t_scratch("F"), *db = t_scratch("F/lowbit.db");
    setenv("LOWBIT_TEST_FAULT", "crash:good", 1);
    T_EQ_INT(run("run --models %s --recipes %s --tasks arc_easy --limit 2 -j 2 --out %s",
                 models_csv, recipes_csv, F), 0);
    T_QC(db, "SELECT error FROM runs WHERE model_id = 'good' AND recipe_id = 'fp32'",
         "killed by signal 6");
    T_QC(db, "SELECT log_tail FROM runs WHERE model_id = 'good' AND recipe_id = 'fp32'",
         "LOWBIT_TEST_FAULT=crash:good");
    T_QC(db, "SELECT error FROM runs WHERE model_id = 'missing' AND recipe_id = 'fp32'",
         "cannot open");
    setenv("LOWBIT_TEST_FAULT", "hang:good", 1);
    T_EQ_INT(run("run --models %s --recipes %s --tasks arc_easy --limit 2 -j 3 --timeout 1 "
                 "--retry-failed --out %s", models_csv, recipes_csv, F), 0);
    T_QC(db, "SELECT error FROM runs WHERE model_id = 'good' AND recipe_id = 'fp16'",
         "timed out after");
    setenv("LOWBIT_TEST_FAULT", "exit:good", 1);
    T_EQ_INT(run("run --models %s --recipes %s --tasks arc_easy --limit 2 --retry-failed "
                 "--out %s", models_csv, recipes_csv, F), 0);
    T_QC(db, "SELECT error FROM runs WHERE model_id = 'good' AND recipe_id = 'fp32'",
         "exited with status 3");
    unsetenv("LOWBIT_TEST_FAULT");
    /* failed results are kept until --retry-failed; then the job runs again and succeeds */
    T_EQ_INT(run("run --models %s --recipes %s --tasks arc_easy --limit 2 --out %s", models_csv,
                 recipes_csv, F), 0);
    T_CONTAINS(err_buf, "0 to run");
    T_EQ_INT(run("run --models %s --recipes %s --tasks arc_easy --limit 2 --retry-failed --out %s",
                 models_csv, recipes_csv, F), 0);
    T_Q(db, "SELECT status FROM runs WHERE model_id = 'good' AND recipe_id = 'fp32'", "ok");
    T_Q(db, "SELECT count(*) FROM runs", "9");
    integrity_ok(db);
}

/* ===== reproducing a run: provenance repro.command ===== */

/* the ok result of (model, recipe) in a database: its file under out's results/ */
static json_t *result_of(const char *out, const char *db, const char *model, const char *recipe) {
    char sql[256], path[600];
    snprintf(sql, sizeof sql, "SELECT job_key FROM runs WHERE model_id = '%s' AND recipe_id = "
             "'%s' AND status = 'ok'", model, recipe);
    char *key = t_q1(db, sql);
    snprintf(path, sizeof path, "%s/results/%s.json", out, key);
    free(key);
    return json_load_file(path, 0, NULL);
}

/* the command stored with test_run's good × fp16 run, typed in a fresh directory (without its
 * `git checkout` and `make` lines: out/lowbit there is this build), makes the same job (same key)
 * with the same scores */
static void test_repro(void) {
    if (!ref_dump) { T_FAIL_("needs test_run"); return; }
    const char *A = t_scratch("A"), *dbA = t_scratch("A/lowbit.db"), *R = t_scratch("R");
    char *cmd = t_q1(dbA, "SELECT p.value FROM provenance p JOIN runs r ON r.id = p.run_id WHERE "
                        "r.model_id = 'good' AND r.recipe_id = 'fp16' AND p.key = 'repro.command'");
    if (getenv("T_VERBOSE")) fprintf(stderr, "repro.command:\n%s\n", cmd);
    T_CONTAINS(cmd, "\nmake\n");
    T_CONTAINS(cmd, "out/lowbit job --model-id good --recipe-id fp16 --models repro-models.csv "
                    "--recipes repro-recipes.csv --tasks arc_easy,piqa,ppl,kld --limit 4 --out out");
    T_CONTAINS(cmd, "'good,"); /* the model row, written by the command */
    T_CONTAINS(cmd, "a note, with a comma");
    char *commit = t_q1(dbA, "SELECT p.value FROM provenance p JOIN runs r ON r.id = p.run_id WHERE "
                           "r.model_id = 'good' AND r.recipe_id = 'fp16' AND p.key = "
                           "'repro.git_commit'");
    T_OK(*commit);
    free(commit);
    /* the lines after `make`, in R with R/out/lowbit = this binary */
    char script[600], sh[6600], real[4096];
    snprintf(sh, sizeof sh, "rm -rf %s && mkdir -p %s/out", R, R);
    T_EQ_INT(system(sh), 0);
    T_OK(realpath(t_bin(), real) != NULL);
    snprintf(sh, sizeof sh, "%s/out/lowbit", R);
    T_EQ_INT(symlink(real, sh), 0);
    /* the model row's path is relative to the top directory (as a path in gen/models.csv
     * would be): the same file at the same place under R */
    snprintf(sh, sizeof sh, "mkdir -p %s/%s && ln -s \"$(realpath %s)\" %s/%s", R, t_tmpdir(),
             t_scratch("good.gguf"), R, t_scratch("good.gguf"));
    T_EQ_INT(system(sh), 0);
    snprintf(script, sizeof script, "%s/repro.sh", R);
    const char *body = strstr(cmd, "\nmake\n");
    spit(script, body ? body + 6 : "false");
    /* the default data directory is relative to the checkout: R is elsewhere */
    const char *data = getenv("LOWBIT_DATA");
    char data_abs[4096];
    T_OK(realpath(data && *data ? data : "../shared/data", data_abs) != NULL);
    snprintf(sh, sizeof sh, "cd %s && LOWBIT_DATA='%s' sh repro.sh > repro.log 2>&1", R, data_abs);
    T_EQ_INT(system(sh), 0);
    char out[600];
    snprintf(out, sizeof out, "%s/out", R);
    json_t *a = result_of(A, dbA, "good", "fp16"), *b = NULL;
    const char *key = json_string_value(json_object_get(a, "job_key"));
    char path[700];
    snprintf(path, sizeof path, "%s/results/%s.json", out, key ? key : "none");
    b = json_load_file(path, 0, NULL); /* the same key: the same job */
    T_OK(a && b);
    T_EQ_STR(json_string_value(json_object_get(b, "status")), "ok");
    T_OK(json_equal(json_object_get(a, "scores"), json_object_get(b, "scores")));
    T_OK(json_array_size(json_object_get(a, "scores")) >= 4);
    /* the same command (R's may name LOWBIT_DATA where the original used the default) */
    const char *job_line = strstr(cmd, "out/lowbit job ");
    T_CONTAINS(json_string_value(json_object_get(json_object_get(b, "provenance"), "repro.command")),
               job_line ? job_line : cmd);
    json_decref(a);
    json_decref(b);
    free(cmd);
}

/* ===== the KL-divergence base cache under concurrency ===== */

/* the cache files of dir ending in suffix; *valid = how many of the .kld ones kld_base_info
 * accepts */
static int kld_files(const char *dir, const char *suffix, int *valid, char *first, size_t size) {
    char cmd[700], o[300], list[4096];
    snprintf(o, sizeof o, "%s/kld.list", t_tmpdir());
    snprintf(cmd, sizeof cmd, "ls %s 2>/dev/null | grep '%s$' > %s", dir, suffix, o);
    if (system(cmd) < 0) return -1;
    t_read_into(o, list, sizeof list);
    int n = 0;
    *valid = 0;
    for (char *save = NULL, *t = strtok_r(list, "\n", &save); t; t = strtok_r(NULL, "\n", &save)) {
        char p[1200];
        snprintf(p, sizeof p, "%s/%s", dir, t);
        struct kld_base_info info;
        err_set_quiet(true);
        if (!kld_base_info(p, &info)) ++*valid;
        err_set_quiet(false);
        if (!n++ && first) snprintf(first, size, "%s", p);
    }
    return n;
}

/* two workers of one model started at the same instant (fork) with an empty cache: both ok, one
 * whole cache file, no temporary left, the same base statistics; then a cache file cut short (a
 * crash before the data reached the disk) is computed again instead of failing the job */
static void test_kld_race(void) {
    setup();
    if (!setup_ok) { T_FAIL_("no fixture"); return; }
    const char *K = t_scratch("K");
    char cache[600], first[1300];
    snprintf(cache, sizeof cache, "%s/cache/kld", K);
    for (int round = 0; round < 2; round++) {
        char sh[700];
        snprintf(sh, sizeof sh, "rm -rf %s", K);
        T_EQ_INT(system(sh), 0);
        pid_t pids[2];
        const char *recipes[2] = {"fp32", "fp16"};
        for (int w = 0; w < 2; w++) {
            pids[w] = fork();
            if (!pids[w]) {
                char log[600];
                snprintf(log, sizeof log, "%s/job-%s.log", t_tmpdir(), recipes[w]);
                execl(t_bin(), "lowbit", "job", "--model-id", "good", "--recipe-id", recipes[w],
                      "--models", models_csv, "--recipes", recipes_csv, "--tasks", "ppl,kld",
                      "--limit", "3", "--threads", "1", "--out", K, "--log", log, "--quiet",
                      (char *)NULL);
                _exit(127);
            }
        }
        for (int w = 0; w < 2; w++) {
            int st = -1;
            waitpid(pids[w], &st, 0);
            T_OK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        }
        int valid = 0;
        T_EQ_INT(kld_files(cache, ".kld", &valid, first, sizeof first), 1);
        T_EQ_INT(valid, 1);
        T_EQ_INT(kld_files(cache, ".tmp", &valid, NULL, 0), 0);
    }
    /* both jobs compared against the same base numbers */
    char p[700], list[2048];
    double base[2] = {-1, -2};
    snprintf(p, sizeof p, "ls %s/results/*.json > %s/kld.res", K, t_tmpdir());
    T_EQ_INT(system(p), 0);
    snprintf(p, sizeof p, "%s/kld.res", t_tmpdir());
    t_read_into(p, list, sizeof list);
    int w = 0;
    for (char *save = NULL, *t = strtok_r(list, "\n", &save); t && w < 2;
         t = strtok_r(NULL, "\n", &save), w++) {
        json_t *r = json_load_file(t, 0, NULL);
        size_t i;
        json_t *sc;
        json_array_foreach(json_object_get(r, "scores"), i, sc)
            if (!strcmp(json_string_value(json_object_get(sc, "metric")), "ppl_base"))
                base[w] = json_number_value(json_object_get(sc, "value"));
        json_decref(r);
    }
    T_EQ_INT(w, 2);
    T_OK(base[0] > 1 && base[0] == base[1]);
    /* cut the cache file in half: the next job computes it again; and the temporary file of a
     * job killed while writing one (up to a GiB) is removed by the next job of that base */
    struct stat st0;
    T_EQ_INT(stat(first, &st0), 0);
    T_EQ_INT(truncate(first, st0.st_size / 2), 0);
    char dead[700];
    snprintf(dead, sizeof dead, "%s/good.gguf-0123456789abcdef-killed.kld.Ab12Cd", cache);
    spit(dead, "a job was killed while writing this");
    T_EQ_INT(run("job --model-id good --recipe-id fp16 --models %s --recipes %s --tasks ppl,kld "
                 "--limit 3 --threads 1 --out %s", models_csv, recipes_csv, K), 0);
    T_CONTAINS(out_buf, "removed the invalid cached base log-probs");
    T_OK(access(dead, F_OK) != 0);
    struct stat st1;
    T_EQ_INT(stat(first, &st1), 0);
    T_EQ_INT(st1.st_size, st0.st_size);
    int valid = 0;
    T_EQ_INT(kld_files(cache, ".kld", &valid, NULL, 0), 1);
    T_EQ_INT(valid, 1);
}

/* ===== import ===== */

static const char lmeval_json[] =
    "{\n"
    "  \"results\": {\n"
    "    \"arc_challenge\": {\"alias\": \"arc_challenge\", \"acc,none\": 0.4352, "
    "\"acc_stderr,none\": 0.0145, \"acc_norm,none\": 0.4625, \"acc_norm_stderr,none\": 0.0146},\n"
    "    \"hellaswag\": {\"acc,none\": 0.5715, \"acc_stderr,none\": 0.0049},\n"
    "    \"lambada_openai\": {\"perplexity,none\": 3.39, \"perplexity_stderr,none\": 0.066, "
    "\"acc,none\": 0.7377, \"acc_stderr,none\": \"N/A\"},\n"
    "    \"gsm8k\": {\"exact_match,strict-match\": 0.14}\n"
    "  },\n"
    "  \"n-samples\": {\"arc_challenge\": {\"original\": 1172, \"effective\": 1172}, "
    "\"hellaswag\": {\"original\": 10042, \"effective\": 10042}},\n"
    "  \"n-shot\": {\"arc_challenge\": 0, \"hellaswag\": 0},\n"
    "  \"configs\": {\"arc_challenge\": {\"dataset_path\": \"allenai/ai2_arc\", "
    "\"dataset_name\": \"ARC-Challenge\"}},\n"
    "  \"config\": {\"model\": \"hf\", \"model_args\": "
    "\"pretrained=meta-llama/Llama-2-7b-hf,dtype=float16\", \"batch_size\": 1, \"limit\": null},\n"
    "  \"lm_eval_version\": \"0.4.2\",\n"
    "  \"date\": 1714521600.0\n"
    "}\n";

static const char intel_json[] =
    "{\n"
    "  \"config\": {\"model_name\": \"%s\", \"model_sha\": \"abc123\", "
    "\"model_params\": 7.24, \"model_size\": 3.9, \"precision\": \"4bit\"},\n"
    "  \"results\": {\n"
    "    \"arc:challenge\": {\"acc,none\": 0.42, \"acc_stderr,none\": 0.014},\n"
    "    \"arc:easy\": {\"acc,none\": 0.74},\n"
    "    \"lambada:openai\": {\"acc,none\": 0.71},\n"
    "    \"truthfulqa:mc1\": {\"acc,none\": 0.25},\n"
    "    \"winogrande\": {\"acc,none\": 0.68}\n"
    "  },\n"
    "  \"task_info\": {\"weight_dtype\": \"int4\", \"compute_dtype\": \"float16\"},\n"
    "  \"quantization_config\": {\"quant_method\": \"gptq\", \"bits\": 4, \"group_size\": 128, "
    "\"sym\": true, \"desc_act\": false}\n"
    "}\n";

static void test_import(void) {
    const char *G = t_scratch("G"), *db = t_scratch("G/lowbit.db"), *lm = t_scratch("lm.json"), *in = t_scratch("intel.json");
    spit(lm, lmeval_json);
    char text[4096];
    snprintf(text, sizeof text, intel_json, "Intel/Llama-2-7b-int4-inc");
    spit(in, text);
    T_EQ_INT(run("import %s %s --out %s", lm, in, G), 0);
    integrity_ok(db);
    T_Q(db, "SELECT count(*) FROM runs", "2");
    T_Q(db, "SELECT recipe_id FROM runs WHERE model_id = 'meta-llama--Llama-2-7b-hf'", "fp-float16");
    T_Q(db, "SELECT display_name FROM models WHERE id = 'meta-llama--Llama-2-7b-hf'",
        "meta-llama/Llama-2-7b-hf");
    T_Q(db, "SELECT printf('%.4f', value) FROM scores s JOIN runs r ON r.id = s.run_id WHERE "
            "r.model_id = 'meta-llama--Llama-2-7b-hf' AND task = 'arc_challenge' AND metric = "
            "'acc'", "0.4352");
    T_Q(db, "SELECT n FROM scores s JOIN runs r ON r.id = s.run_id WHERE r.model_id = "
            "'meta-llama--Llama-2-7b-hf' AND task = 'hellaswag' AND metric = 'acc'", "10042");
    T_Q(db, "SELECT stderr IS NULL FROM scores WHERE task = 'lambada_openai' AND metric = 'acc' "
            "AND value > 0.73", "1");
    T_Q(db, "SELECT count(*) FROM scores WHERE task = 'gsm8k'", "0");
    T_Q(db, "SELECT dataset_file FROM task_defs WHERE task = 'arc_challenge'",
        "allenai/ai2_arc/ARC-Challenge");
    T_Q(db, "SELECT value FROM provenance WHERE key = 'import.lm_eval_version'", "0.4.2");
    /* the Intel layout: task names mapped, the recipe from quantization_config */
    const char *im = "Intel--Llama-2-7b-int4-inc";
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT recipe_id FROM runs WHERE model_id = '%s'", im);
    T_Q(db, sql, "gptq-int4-g128");
    T_Q(db, "SELECT algorithm || ' ' || weight_dtype || ' ' || bits || ' ' || group_size || ' ' || "
            "sym || ' ' || compute_dtype FROM recipes WHERE id = 'gptq-int4-g128'",
        "gptq int4 4.0 128 1 fp16");
    snprintf(sql, sizeof sql, "SELECT group_concat(task, ',') FROM (SELECT task FROM scores s JOIN "
             "runs r ON r.id = s.run_id WHERE r.model_id = '%s' ORDER BY task)", im);
    T_Q(db, sql, "arc_challenge,arc_easy,lambada_openai,truthfulqa_mc1,winogrande");
    snprintf(sql, sizeof sql, "SELECT n_params FROM models WHERE id = '%s'", im);
    T_Q(db, sql, "7240000000");
    T_Q(db, "SELECT count(*) FROM leaderboard", "2");
    /* the same files again: nothing changes */
    T_EQ_INT(run("import %s %s --out %s", lm, in, G), 0);
    T_CONTAINS(err_buf, "2 unchanged");
    T_Q(db, "SELECT count(*) FROM runs", "2");
    /* explicit ids */
    T_EQ_INT(run("import %s --model-id llama2-7b --recipe-id fp16-lmeval --out %s", lm, G), 0);
    T_Q(db, "SELECT count(*) FROM runs WHERE model_id = 'llama2-7b' AND recipe_id = 'fp16-lmeval'", "1");
    /* fuzz regression: a "date" far past year 9999 (UBSan: out of range for time_t's cast) is an
     * unknown time, not undefined behaviour */
    const char *dated = t_scratch("dated.json");
    char *t2 = strdup(lmeval_json);
    char *at = t2 ? strstr(t2, "1714521600.0") : NULL;
    T_OK(at != NULL);
    if (at) {
        memcpy(at, "1.76211e+19 ", 12); /* same length: the rest of the file is unchanged */
        spit(dated, t2);
    }
    free(t2);
    T_EQ_INT(run("import %s --model-id dated --recipe-id fp16-dated --out %s", dated, G), 0);
    T_Q(db, "SELECT finished_at IS NULL FROM runs WHERE model_id = 'dated'", "1");
}

/* ids from the command line, a CSV or a results file never make lowbit write outside out/ */
static void test_path_escape(void) {
    setup();
    const char *H = t_scratch("H"), *in = t_scratch("evil.json");
    T_EQ_INT(run("import %s --model-id ../x --out %s", t_scratch("lm.json"), H), 1);
    T_CONTAINS(err_buf, "id '../x'");
    T_EQ_INT(run("import %s --recipe-id a/b --out %s", t_scratch("lm.json"), H), 1);
    T_CONTAINS(err_buf, "id 'a/b'");
    char text[4096];
    snprintf(text, sizeof text, intel_json, "../../../../tmp/evil/../x");
    spit(in, text);
    T_EQ_INT(run("import %s --out %s", in, H), 0);
    T_Q(t_scratch("H/lowbit.db"), "SELECT id FROM models", "tmp--evil--..--x");
    /* every file written is a <key>.json under H/results */
    T_EQ_INT(count_files(t_scratch("H/results"), "json"), 1);
    T_EQ_INT(count_files(t_scratch("H/results"), "^[0-9a-f]*\\.json"), 1);
    T_OK(access(t_scratch("x"), F_OK) && access("/tmp/evil", F_OK));
    /* a CSV id is refused before anything runs */
    const char *csv = t_scratch("evil.csv");
    snprintf(text, sizeof text, "id,path\n../x,%s\n", t_scratch("good.gguf"));
    spit(csv, text);
    T_EQ_INT(run("run --models %s --recipes %s %s --out %s", csv, recipes_csv, TASKS, H), 1);
    T_CONTAINS(err_buf, "id '../x'");
    T_EQ_INT(run("job --model-id ../x --recipe-id fp32 --out %s", H), 1);
    T_CONTAINS(err_buf, "id '../x'");
}

/* ===== training provenance: train.json + curve.csv beside a model (lowbit train's outputs) ===== */

static const char TRAIN_JSON[] =
    "{\"params\": 123456, \"model\": {\"dim\": 32, \"n_layers\": 2, \"tied\": false},\n"
    " \"opt\": {\"steps\": 30, \"batch\": 2, \"lr\": 0.001, \"seed\": 7},\n"
    " \"train_tokens_seen\": 15360, \"heldout_loss\": 2.875, \"train_seconds\": 4.75}\n";
static const char CURVE_CSV[] = "step,tokens,train_loss,heldout_loss,lr,seconds\n"
                                "10,5120,4.5,4.25,0.001,1.5\n"
                                "20,10240,3.75,,0.0005,3.25\n"
                                "30,15360,3.125,2.875,0.0001,4.75\n";
/* the curve rows of model `trained` as text, by step */
#define CURVE_SQL                                                                                  \
    "SELECT group_concat(step || ':' || tokens || ':' || train_loss || ':' || "                    \
    "ifnull(heldout_loss, '-') || ':' || lr || ':' || seconds, ' ') FROM (SELECT * FROM "          \
    "training_curve WHERE model_id = 'trained' ORDER BY step)"
#define CURVE_WANT                                                                                 \
    "10:5120:4.5:4.25:0.001:1.5 20:10240:3.75:-:0.0005:3.25 30:15360:3.125:2.875:0.0001:4.75"

static int count_lines_with(const char *s, const char *needle) {
    int n = 0;
    for (const char *line = s; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (memmem(line, len, needle, strlen(needle))) n++;
        line = end ? end + 1 : NULL;
    }
    return n;
}

static void test_training(void) {
    setup();
    if (!setup_ok) { T_FAIL_("no fixture"); return; }
    /* models without the files: no training rows (the main run of test_run) */
    if (ref_dump) T_Q(t_scratch("A/lowbit.db"), "SELECT count(*) FROM training", "0");
    const char *dir = t_scratch("trained"), *T = t_scratch("T"), *db = t_scratch("T/lowbit.db");
    char p[600], text[2048];
    mkdir(dir, 0755);
    snprintf(p, sizeof p, "%s/model.gguf", dir);
    T_EQ_INT(write_fixture(p, 4321), 0); /* other weights than good.gguf: a job of its own */
    const char *models = t_scratch("trained-models.csv"), *recipes = t_scratch("fp32-recipe.csv");
    snprintf(text, sizeof text, "id,path\ntrained,%s/model.gguf\n", dir);
    spit(models, text);
    spit(recipes, "id,algorithm,weight_dtype\nfp32,fp,float32\n");
    char train_json[600], curve_csv[600];
    snprintf(train_json, sizeof train_json, "%s/train.json", dir);
    snprintf(curve_csv, sizeof curve_csv, "%s/curve.csv", dir);
    spit(train_json, TRAIN_JSON);
    spit(curve_csv, CURVE_CSV);
    const char *args = "--tasks arc_easy --limit 2 -j 1 --quiet";
    T_EQ_INT(run("run --models %s --recipes %s %s --out %s", models, recipes, args, T), 0);
    T_OK(!strstr(err_buf, "warning"));
    T_Q(db, "SELECT count(*) FROM runs WHERE model_id = 'trained' AND status = 'ok'", "1");
    T_Q(db, CURVE_SQL, CURVE_WANT); /* the CSV's values, NULL for the empty cell */
    T_Q(db, "SELECT json_extract(train_json, '$.params') || ' ' || json_extract(train_json, "
            "'$.opt.seed') || ' ' || json_extract(train_json, '$.heldout_loss') FROM training "
            "WHERE model_id = 'trained'", "123456 7 2.875");
    T_Q(db, "SELECT source_dir FROM training", dir);
    T_Q(db, "SELECT length(files_sha256) FROM training", "64");
    integrity_ok(db);
    /* the same files again: not one byte of the database changes */
    char s1[65], s2[65];
    file_sha(db, s1);
    T_EQ_INT(run("run --models %s --recipes %s %s --out %s", models, recipes, args, T), 0);
    file_sha(db, s2);
    T_EQ_STR(s1, s2);

    /* a malformed curve.csv: one warning naming it, the model recorded without training rows,
     * the run succeeds */
    spit(curve_csv, "step,tokens,train_loss,heldout_loss,lr,seconds\n10,5120,abc,4.25,0.001,1.5\n");
    T_EQ_INT(run("run --models %s --recipes %s %s --out %s", models, recipes, args, T), 0);
    T_EQ_INT(count_lines_with(err_buf, "warning"), 1);
    T_CONTAINS(err_buf, "curve.csv: row 1, column train_loss: 'abc' is not a number");
    T_CONTAINS(err_buf, "model trained is recorded without training rows");
    T_Q(db, "SELECT count(*) FROM training", "0");
    T_Q(db, "SELECT count(*) FROM training_curve", "0");
    T_Q(db, "SELECT count(*) FROM models WHERE id = 'trained'", "1");
    T_Q(db, "SELECT count(*) FROM runs WHERE model_id = 'trained' AND status = 'ok'", "1");
    integrity_ok(db);
    /* steps out of order, an unknown column: the same */
    spit(curve_csv, "step,tokens,train_loss,heldout_loss\n20,1,2,3\n10,1,2,3\n");
    T_EQ_INT(run("run --models %s --recipes %s %s --out %s", models, recipes, args, T), 0);
    T_CONTAINS(err_buf, "steps must increase");
    spit(curve_csv, "step,tokens,train_loss,heldout_loss,bogus\n10,1,2,3,4\n");
    T_EQ_INT(run("run --models %s --recipes %s %s --out %s", models, recipes, args, T), 0);
    T_CONTAINS(err_buf, "unknown column 'bogus'");
    /* a train.json that is not a JSON object */
    spit(curve_csv, CURVE_CSV);
    spit(train_json, "[1, 2]");
    T_EQ_INT(run("run --models %s --recipes %s %s --out %s", models, recipes, args, T), 0);
    T_EQ_INT(count_lines_with(err_buf, "warning"), 1);
    T_CONTAINS(err_buf, "train.json: not a JSON object");
    T_Q(db, "SELECT count(*) FROM training", "0");
    /* numbers out of their range (a negative loss, a beta of 1) are refused the same way */
    spit(train_json, "{\"params\": 123456, \"heldout_loss\": -5}");
    T_EQ_INT(run("run --models %s --recipes %s %s --out %s", models, recipes, args, T), 0);
    T_EQ_INT(count_lines_with(err_buf, "warning"), 1);
    T_CONTAINS(err_buf, "train.json: heldout_loss is -5 (expected a number >= 0)");
    T_Q(db, "SELECT count(*) FROM training", "0");
    spit(train_json, "{\"opt\": {\"beta2\": 1}}");
    T_EQ_INT(run("run --models %s --recipes %s %s --out %s", models, recipes, args, T), 0);
    T_CONTAINS(err_buf, "opt.beta2 is 1 (expected a value in [0, 1))");
    /* good files again: the rows come back */
    spit(train_json, TRAIN_JSON);
    T_EQ_INT(run("run --models %s --recipes %s %s --out %s", models, recipes, args, T), 0);
    T_Q(db, CURVE_SQL, CURVE_WANT);

    /* collect without a plan records it from the result file's model path */
    const char *solo = t_scratch("T/solo.db");
    T_EQ_INT(run("collect --results %s/results --db %s", T, solo), 0);
    T_Q(solo, CURVE_SQL, CURVE_WANT);
    T_Q(solo, "PRAGMA user_version", "5");
    /* the tasks as eval/task.c defines them, the board's ten with "acc" */
    T_Q(solo, "SELECT count(*) FROM tasks", "11");
    T_Q(solo, "SELECT group_concat(name, ',') FROM (SELECT name FROM tasks WHERE board_metric = "
              "'acc' ORDER BY position)", "arc_challenge,arc_easy,boolq,hellaswag,lambada_openai,"
              "mmlu,openbookqa,piqa,truthfulqa_mc1,winogrande");

    /* a version 1 database gains the tables and runs.failure, with the columns of a fresh one */
    const char *v1 = t_scratch("T/v1.db");
    snprintf(text, sizeof text, "cp %s %s", solo, v1);
    T_EQ_INT(system(text), 0);
    sqlite3 *h = NULL;
    T_OK(sqlite3_open(v1, &h) == SQLITE_OK &&
         sqlite3_exec(h, "DROP TABLE training_curve; DROP TABLE training; ALTER TABLE runs DROP "
                         "COLUMN failure; DROP VIEW leaderboard; DROP TABLE tasks; ALTER TABLE "
                         "task_defs DROP COLUMN n_truncated; DROP TABLE samples; DROP TABLE "
                         "documents; ALTER TABLE runs DROP COLUMN prefill_tps; ALTER TABLE runs "
                         "DROP COLUMN decode_tps; ALTER TABLE runs DROP COLUMN run_memory_mb; "
                         "ALTER TABLE runs DROP COLUMN n_params_active; ALTER TABLE models DROP "
                         "COLUMN n_params_active; "
                         "PRAGMA user_version = 1",
                      NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(h);
    T_EQ_INT(run("collect --results %s/results --db %s", T, v1), 0);
    T_Q(v1, "PRAGMA user_version", "5");
    T_Q(v1, "SELECT count(*) FROM tasks", "11"); /* and the view reading it gives the averages */
    char *avg_solo = t_q1(solo, "SELECT group_concat(printf('%.17g', average)) FROM leaderboard");
    T_Q(v1, "SELECT group_concat(printf('%.17g', average)) FROM leaderboard", avg_solo);
    free(avg_solo);
    static const char COLS[] =
        "SELECT group_concat(col, ', ') FROM (SELECT m.name || '.' || c.name || ' ' || c.type || "
        "' ' || c.\"notnull\" || ' ' || c.pk AS col FROM sqlite_master m, "
        "pragma_table_info(m.name) c WHERE m.name IN ('runs', 'models', 'training', 'training_curve', "
        "'task_defs', 'tasks', 'samples', 'documents') ORDER BY "
        "m.name, c.cid)";
    char *fresh = t_q1(solo, COLS), *migrated = t_q1(v1, COLS);
    T_OK(strlen(fresh) > 100);
    T_EQ_STR(migrated, fresh);
    free(fresh), free(migrated);
    integrity_ok(v1);
}

/* ===== resource limits: memory, disk full, concurrent runs ===== */

/* a file of `size` bytes that takes no disk (a hole) */
static int sparse_file(const char *path, off_t size) {
    FILE *f = fopen(path, "wb");
    int rc = f && !ftruncate(fileno(f), size) ? 0 : -1;
    if (f) fclose(f);
    return rc;
}

static int count_lines_of(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

static void test_memory_refusal(void) {
    setup();
    if (!setup_ok) { T_FAIL_("no fixture"); return; }
    const char *good = t_scratch("good.gguf"), *text = t_scratch("text.txt");
    spit(text, "Once upon a time there was a little dog. It liked to run in the park.\n");
    /* weights beyond the machine's memory (here a cap the user set): refused before reading them */
    T_EQ_INT(run_with("LOWBIT_MEM_LIMIT_MB=0.05", "ppl --model %s --text %s --quiet", good, text), 1);
    T_CONTAINS(err_buf, "good.gguf: the weights take 0.");
    T_CONTAINS(err_buf, "MiB of memory (LOWBIT_MEM_LIMIT_MB)");
    T_EQ_INT(count_lines_of(err_buf), 1);
    /* buffers that cannot fit (a 2^20-token KV cache of 512 MiB under a 200 MiB cap) are refused
     * with its size and purpose, not overcommitted */
    T_EQ_INT(run_with("LOWBIT_MEM_LIMIT_MB=200", "bench --model %s --ctx 1048576 --threads 1",
                      good), 1);
    T_CONTAINS(err_buf, "the KV cache and activations of a 1048576-token context needs ");
    T_CONTAINS(err_buf, "MiB of memory is available (LOWBIT_MEM_LIMIT_MB)");
    T_EQ_INT(count_lines_of(err_buf), 1);
    /* a text of gigabytes: refused from its size, before any allocation or read (a sparse file) */
    const char *big = t_scratch("big.txt");
    T_EQ_INT(sparse_file(big, (off_t)3 << 30), 0);
    T_EQ_INT(run("ppl --model %s --text %s --quiet", good, big), 1);
    T_CONTAINS(err_buf, "big.txt is 3072.0 MiB; lowbit reads such files whole and takes at most "
                        "1024 MiB (LOWBIT_MAX_INPUT_MB)");
    T_EQ_INT(count_lines_of(err_buf), 1);
    /* the same for a task file and a CSV, and for a stream that never ends (read as it grows) */
    mkdir(t_scratch("bigdata"), 0755);
    mkdir(t_scratch("bigdata/datasets"), 0755);
    mkdir(t_scratch("bigdata/datasets/arc"), 0755);
    T_EQ_INT(sparse_file(t_scratch("bigdata/datasets/arc/ARC-Easy-Test.jsonl"), (off_t)2 << 30), 0);
    T_EQ_INT(run("eval --model %s --tasks arc_easy --data %s --quiet", good, t_scratch("bigdata")), 1);
    T_CONTAINS(err_buf, "ARC-Easy-Test.jsonl is 2048.0 MiB");
    T_EQ_INT(run_with("LOWBIT_MAX_INPUT_MB=1", "ppl --model %s --text /dev/zero --quiet", good), 1);
    T_CONTAINS(err_buf, "the text /dev/zero is at least 2.0 MiB; lowbit reads such files whole and takes at most 1 MiB");
    const char *bigcsv = t_scratch("big.csv");
    T_EQ_INT(sparse_file(bigcsv, (off_t)5 << 30), 0);
    T_EQ_INT(run("status --models %s --recipes %s %s --out %s", bigcsv, recipes_csv, TASKS,
                 t_scratch("Mem")), 1);
    T_CONTAINS(err_buf, "big.csv is 5120.0 MiB");
}

/* "prlimit --fsize=N": writes past N bytes fail with EFBIG (lowbit ignores SIGXFSZ itself: no
 * "trap '' XFSZ" in front, so a lowbit that died of the signal fails these tests) */
static const char *fsize_prefix(long bytes) {
    static char b[128];
    snprintf(b, sizeof b, "prlimit --fsize=%ld", bytes);
    return b;
}

/* every *.json under dir parses (nothing half-written); the number of files */
static int all_json_ok(const char *dir) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "n=0; for f in %s/*.json; do [ -e \"$f\" ] || continue; "
             "/usr/bin/python3 -c 'import json,sys; json.load(open(sys.argv[1]))' \"$f\" || exit 99; "
             "n=$((n+1)); done; exit $n",
             dir);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* no temporary file or directory left in dir (render's .NAME.tmp-*, writers' *.tmp.*) */
static int count_tmp(const char *dir) {
    char cmd[1024], o[300];
    snprintf(o, sizeof o, "%s/tmpcount.out", t_tmpdir());
    snprintf(cmd, sizeof cmd, "find %s -name '*.tmp*' | wc -l > %s", dir, o);
    if (system(cmd) < 0) return -1;
    char b[32];
    t_read_into(o, b, sizeof b);
    return atoi(b);
}

static bool mount_tmpfs(const char *dir, const char *size) {
    char cmd[1024];
    mkdir(dir, 0755);
    snprintf(cmd, sizeof cmd, "mount -t tmpfs -o size=%s lowbit-test %s 2>/dev/null", size, dir);
    return system(cmd) == 0;
}

static void umount_dir(const char *dir) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "umount %s 2>/dev/null", dir);
    if (system(cmd)) {
    }
}

/* the pipeline on a full disk: a clear error, no half-written result or database; the next run
 * with room completes and stores exactly what an undisturbed run stores */
static void disk_full_run(const char *F, const char *prefix, const char *label) {
    int rc = run_with(prefix, "run --models %s --recipes %s %s -j 1 --out %s --quiet", models_csv,
                      recipes_csv, TASKS, F);
    T_OK(rc != 128); /* no crash */
    if (!strstr(err_buf, "No space left") && !strstr(err_buf, "too large") &&
        !strstr(err_buf, "disk full") && !strstr(err_buf, "database or disk is full"))
        printf("%s: the run's stderr: %s\n", label, err_buf);
    char results[600];
    snprintf(results, sizeof results, "%s/results", F);
    T_OK(all_json_ok(results) < 99);
    char db[600];
    snprintf(db, sizeof db, "%s/lowbit.db", F);
    if (access(db, F_OK) == 0) integrity_ok(db);
}

static void test_disk_full(void) {
    setup();
    if (!setup_ok || !ref_dump) { T_FAIL_("no fixture or reference run"); return; }
    /* (1) a file-size limit (EFBIG on any write past 200 KB: the KLD cache of base log-probs,
     * 4 MB, cannot be written) */
    const char *F = t_scratch("Full");
    disk_full_run(F, fsize_prefix(200 * 1024), "fsize");
    T_OK(strstr(err_buf, "File too large") || strstr(err_buf, "disk is full"));
    /* the next run with room completes what is missing: no --retry-failed needed, the failures
     * were the environment's */
    T_EQ_INT(run("run --models %s --recipes %s %s -j 1 --out %s --quiet", models_csv, recipes_csv,
                 TASKS, F), 0);
    char *d = dump_db(t_scratch("Full/lowbit.db"));
    T_EQ_STR(d, ref_dump);
    free(d);
    T_EQ_INT(count_tmp(t_scratch("Full/results")), 0);

    /* (2) the site: a render that runs out of room fails with one message and leaves the
     * previous site as it was (a file-size limit here; a full tmpfs below) */
    {
        const char *site1 = t_scratch("sitedir/site1");
        T_EQ_INT(run("render --db %s -o %s --quiet", t_scratch("A/lowbit.db"), site1), 0);
        char sha0[65], sha1[65], idx1[600];
        snprintf(idx1, sizeof idx1, "%s/index.html", site1);
        file_sha(idx1, sha0);
        const int n0 = count_files(site1, "");
        T_EQ_INT(run_with(fsize_prefix(8 * 1024), "render --db %s -o %s --quiet",
                          t_scratch("A/lowbit.db"), site1), 1);
        T_CONTAINS(err_buf, "render: ");
        T_CONTAINS(err_buf, "File too large");
        T_EQ_INT(count_lines_of(err_buf), 1);
        file_sha(idx1, sha1);
        T_EQ_STR(sha1, sha0);
        T_EQ_INT(count_files(site1, ""), n0);
        T_EQ_INT(count_tmp(t_scratch("sitedir")), 0);
    }

    /* (3) a real full file system: a 1 MiB tmpfs (root only; CI runs as root) */
    const char *mnt = t_scratch("tmpfs");
    if (!mount_tmpfs(mnt, "1m")) {
        /* said, not skipped silently: the file-size-limit half above still ran */
        printf("test_disk_full: cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN): only the "
               "file-size-limit half ran\n");
        return;
    }
    const char *G = t_scratch("tmpfs/out");
    disk_full_run(G, "", "tmpfs");
    T_CONTAINS(err_buf, "No space left on device");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "mount -o remount,size=64m %s", mnt);
    T_EQ_INT(system(cmd), 0);
    T_EQ_INT(run("run --models %s --recipes %s %s -j 1 --out %s --quiet", models_csv, recipes_csv,
                 TASKS, G), 0);
    d = dump_db(t_scratch("tmpfs/out/lowbit.db"));
    T_EQ_STR(d, ref_dump);
    free(d);

    /* the site on a file system with room for one site only: the new one cannot be written */
    const char *site = t_scratch("tmpfs/site");
    T_EQ_INT(run("render --db %s -o %s --quiet", t_scratch("A/lowbit.db"), site), 0);
    char sha_before[65], sha_after[65], idx[600];
    snprintf(idx, sizeof idx, "%s/index.html", site);
    file_sha(idx, sha_before);
    snprintf(cmd, sizeof cmd, "used=$(du -sk %s | cut -f1); mount -o remount,size=$((used + 64))k %s",
             mnt, mnt);
    T_EQ_INT(system(cmd), 0);
    T_EQ_INT(run("render --db %s -o %s --quiet", t_scratch("A/lowbit.db"), site), 1);
    T_OK(strstr(err_buf, "No space left on device") || strstr(err_buf, "disk is full"));
    T_CONTAINS(err_buf, "render: ");
    T_EQ_INT(count_lines_of(err_buf), 1);
    file_sha(idx, sha_after);
    T_EQ_STR(sha_after, sha_before);
    T_EQ_INT(count_tmp(t_scratch("tmpfs")), 0);
    /* collect into a database on a full file system: refused with one message, no database
     * left half-written; with room again, the same database as an undisturbed run's */
    snprintf(cmd, sizeof cmd, "rm -rf %s/site && mount -o remount,size=64m %s && mkdir -p %s/H && "
             "cp -r %s %s/H/ && used=$(du -sk %s | cut -f1) && "
             "mount -o remount,size=$((used + 8))k %s",
             mnt, mnt, mnt, t_scratch("A/results"), mnt, mnt, mnt);
    T_EQ_INT(system(cmd), 0);
    const char *hdb = t_scratch("tmpfs/H/lowbit.db");
    T_EQ_INT(run("collect --results %s --db %s --quiet", t_scratch("tmpfs/H/results"), hdb), 1);
    T_OK(strstr(err_buf, "disk is full") || strstr(err_buf, "No space left on device"));
    T_EQ_INT(count_lines_of(err_buf), 1);
    if (access(hdb, F_OK) == 0) integrity_ok(hdb);
    snprintf(cmd, sizeof cmd, "mount -o remount,size=64m %s", mnt);
    T_EQ_INT(system(cmd), 0);
    T_EQ_INT(run("collect --results %s --db %s --quiet", t_scratch("tmpfs/H/results"), hdb), 0);
    d = dump_db(hdb);
    T_EQ_STR(d, ref_dump);
    free(d);
    umount_dir(mnt);
}

/* failures of the environment (a full disk, a file-size limit, a worker killed from outside) are
 * retried by the next run without --retry-failed; failures of the inputs stay until it */
static void test_env_retry(void) {
    setup();
    if (!setup_ok || !ref_dump) { T_FAIL_("no fixture or reference run"); return; }
    const char *E = t_scratch("Env"), *db = t_scratch("Env/lowbit.db");
    /* a file-size limit: the KLD cache (4 MB) cannot be written, the good jobs fail */
    T_OK(run_with(fsize_prefix(200 * 1024), "run --models %s --recipes %s %s -j 1 --out %s "
                  "--quiet", models_csv, recipes_csv, TASKS, E) != 128);
    /* (the database may not have fitted under the limit either) */
    T_EQ_INT(run("collect --results %s/results --db %s --quiet", E, db), 0);
    T_QC(db, "SELECT error FROM runs WHERE model_id = 'good' AND recipe_id = 'fp32'",
         "File too large");
    T_Q(db, "SELECT failure FROM runs WHERE model_id = 'good' AND recipe_id = 'fp32'",
        "environment");
    T_Q(db, "SELECT failure FROM runs WHERE model_id = 'missing' AND recipe_id = 'fp32'", "input");
    T_EQ_INT(run("run --models %s --recipes %s %s -j 1 --out %s", models_csv, recipes_csv, TASKS,
                 E), 0);
    T_CONTAINS(err_buf, "2 to run"); /* good x fp32, fp16; the 7 failures of the inputs stay */
    char *d = dump_db(db);
    T_EQ_STR(d, ref_dump);
    free(d);
    /* a worker killed from outside (the OOM killer's SIGKILL): retried; a crash (SIGABRT): kept */
    const char *K = t_scratch("EnvK"), *kdb = t_scratch("EnvK/lowbit.db");
    setenv("LOWBIT_TEST_FAULT", "kill:good", 1);
    T_EQ_INT(run("run --models %s --recipes %s --tasks arc_easy --limit 2 -j 1 --out %s --quiet",
                 models_csv, recipes_csv, K), 0);
    unsetenv("LOWBIT_TEST_FAULT");
    T_QC(kdb, "SELECT error FROM runs WHERE model_id = 'good' AND recipe_id = 'fp32'",
         "killed by signal 9");
    T_Q(kdb, "SELECT failure FROM runs WHERE model_id = 'good' AND recipe_id = 'fp32'",
        "environment");
    T_EQ_INT(run("run --models %s --recipes %s --tasks arc_easy --limit 2 -j 1 --out %s",
                 models_csv, recipes_csv, K), 0);
    T_CONTAINS(err_buf, "3 to run"); /* good's three jobs (the fault came before the recipe) */
    T_Q(kdb, "SELECT count(*) FROM runs WHERE model_id = 'good' AND status = 'ok'", "2");
    setenv("LOWBIT_TEST_FAULT", "crash:good", 1);
    T_EQ_INT(run("run --models %s --recipes %s --tasks arc_easy --limit 1 -j 1 --out %s --quiet",
                 models_csv, recipes_csv, K), 0);
    unsetenv("LOWBIT_TEST_FAULT");
    T_Q(kdb, "SELECT failure FROM runs WHERE model_id = 'good' AND recipe_id = 'fp32'", "input");
    T_EQ_INT(run("run --models %s --recipes %s --tasks arc_easy --limit 1 -j 1 --out %s",
                 models_csv, recipes_csv, K), 0);
    T_CONTAINS(err_buf, "0 to run");
    integrity_ok(kdb);
}

/* an ok job whose artifact was deleted runs again (the board links every artifact); nothing else
 * runs, and the database is the same, each run once */
static void test_artifact_deleted(void) {
    setup();
    if (!setup_ok || !ref_dump) { T_FAIL_("no fixture or reference run"); return; }
    const char *E = t_scratch("Art");
    T_EQ_INT(run("run --models %s --recipes %s %s -j 1 --out %s --quiet", models_csv, recipes_csv,
                 TASKS, E), 0);
    char *art = t_q1(t_scratch("Art/lowbit.db"), "SELECT artifact_path FROM runs WHERE model_id = 'good' "
                                         "AND recipe_id = 'fp16'");
    char full[1200], cmd[1400];
    snprintf(full, sizeof full, "%s/%s", E, art);
    T_OK(access(full, F_OK) == 0);
    snprintf(cmd, sizeof cmd, "rm -rf %s", full);
    T_EQ_INT(system(cmd), 0);
    T_EQ_INT(run("run --models %s --recipes %s %s -j 1 --out %s", models_csv, recipes_csv, TASKS,
                 E), 0);
    T_CONTAINS(err_buf, "is missing (deleted?); running the job again");
    T_CONTAINS(err_buf, "1 to run");
    T_OK(access(full, F_OK) == 0);
    char *d = dump_db(t_scratch("Art/lowbit.db"));
    T_EQ_STR(d, ref_dump);
    free(d);
    T_Q(t_scratch("Art/lowbit.db"), "SELECT count(*) FROM runs", "9");
    T_EQ_INT(count_files(t_scratch("Art/results"), "json"), 9);
    free(art);
}

/* two runs at once on one output directory: the second refuses at once, naming the first; the
 * first completes as if alone */
static void test_concurrent_runs(void) {
    setup();
    if (!setup_ok || !ref_dump) { T_FAIL_("no fixture or reference run"); return; }
    const char *C = t_scratch("Conc"), *pidf = t_scratch("conc.pid");
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "%s run --models %s --recipes %s %s -j 1 --out %s --quiet >/dev/null 2>%s & "
             "echo $! > %s",
             t_bin(), models_csv, recipes_csv, TASKS, C, t_scratch("conc.err"), pidf);
    T_EQ_INT(system(cmd), 0);
    char b[64] = "";
    t_read_into(pidf, b, sizeof b);
    const pid_t first = (pid_t)atol(b);
    /* wait until the first holds the lock (its pid is in the lock file) */
    char lock[600], held[64] = "";
    snprintf(lock, sizeof lock, "%s/.run.lock", C);
    for (int i = 0; i < 500 && atol(held) != first; i++) {
        usleep(10000);
        t_read_into(lock, held, sizeof held);
    }
    T_EQ_INT((int)atol(held), (int)first);
    T_EQ_INT(run("run --models %s --recipes %s %s -j 1 --out %s --quiet", models_csv, recipes_csv,
                 TASKS, C), 1);
    char want[128];
    snprintf(want, sizeof want, "another lowbit run (pid %ld) is using", (long)first);
    T_CONTAINS(err_buf, want);
    T_EQ_INT(count_lines_of(err_buf), 1);
    /* wait for the first, which is not disturbed */
    for (int i = 0; i < 6000 && kill(first, 0) == 0; i++) usleep(10000);
    T_OK(kill(first, 0) != 0);
    char *d = dump_db(t_scratch("Conc/lowbit.db"));
    T_EQ_STR(d, ref_dump);
    free(d);
    /* two renders at once into one site: each swaps a whole site in; no temporary is left */
    const char *site = t_scratch("Conc/site");
    snprintf(cmd, sizeof cmd,
             "%s render --db %s -o %s --quiet & %s render --db %s -o %s --quiet & wait",
             t_bin(), t_scratch("Conc/lowbit.db"), site, t_bin(), t_scratch("Conc/lowbit.db"), site);
    T_EQ_INT(system(cmd), 0);
    char idx[600];
    snprintf(idx, sizeof idx, "%s/index.html", site);
    T_OK(access(idx, F_OK) == 0);
    T_EQ_INT(count_tmp(C), 0);
}

static void test_help(void) {
    static const char *const cmds[] = {"run", "job", "collect", "import", "status"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        T_EQ_INT(run("%s --help", cmds[i]), 0);
        T_CONTAINS(out_buf, "usage: lowbit");
        T_EQ_INT(run("%s --bogus-option", cmds[i]), 1);
        T_CONTAINS(err_buf, "unknown option");
    }
    setup();
    if (!setup_ok) return;
    T_EQ_INT(run("status --models %s --recipes %s %s --out %s", models_csv, recipes_csv, TASKS,
                 t_scratch("A")), 0);
    T_CONTAINS(out_buf, "9 jobs: 2 ok, 7 failed, 0 pending");
}

int main(void) {
    T_RUN(test_ids);
    T_RUN(test_task_names);
    T_RUN(test_csv);
    T_RUN(test_keys);
    T_RUN(test_run);
    T_RUN(test_repro);
    T_RUN(test_training);
    T_RUN(test_kill_runner);
    T_RUN(test_kill_collect);
    T_RUN(test_malformed);
    T_RUN(test_crash_timeout);
    T_RUN(test_kld_race);
    T_RUN(test_import);
    T_RUN(test_path_escape);
    T_RUN(test_memory_refusal);
    T_RUN(test_disk_full);
    T_RUN(test_env_retry);
    T_RUN(test_concurrent_runs);
    T_RUN(test_artifact_deleted);
    T_RUN(test_help);
    free(ref_dump);
    return T_DONE();
}
