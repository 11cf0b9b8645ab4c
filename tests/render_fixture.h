/* tests/render_fixture.h: FIXTURE databases for the site (tests/test_render.c, bench_render.c).
 *
 * fx_open() creates a database from gen/schema.sql (run from the repository root); fx_model(),
 * fx_recipe() and fx_run() add rows; fx_close() commits. Every run carries provenance key
 * "fixture", so `lowbit render` refuses the database without --fixture (which marks every page).
 *   fixture_small  4 base models + a third-party checkpoint, hostile strings, a failed run, a run
 *                  with a missing task, a very long multi-byte name; training provenance (tables
 *                  training, training_curve) for three of them, one with a train_json that is
 *                  not JSON
 *   fixture_big    n_models x n_recipes synthetic runs (every 97th failed), deterministic
 * Everything here is static: each test or bench program that includes it gets its own copy. */
#ifndef TESTS_RENDER_FIXTURE_H
#define TESTS_RENDER_FIXTURE_H
#include <math.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen/pipeline.h" /* db_write_tasks */

/* a program that includes this header uses only some of it */
#define FX_FN static __attribute__((unused))

/* the hostile strings: markup, quotes, formulas, RTL override, emoji, newline, tab */
#define HOSTILE_NAME "<script>alert(1)</script> \"Q\" 'A' & \xe2\x80\xae" "gnp.exe \xf0\x9f\x98\x80\nline2"
#define FORMULA_NAME "=cmd|' /C calc'!A0"
#define PLUS_ID "+1 formula"
#define AT_FAMILY "@SUM(A1)"
#define HOSTILE_RECIPE "-2+3 <b>recipe</b>"
#define HOSTILE_ERROR "</pre><script>alert(2)</script>\tend"
#define HOSTILE_PROV "]]><!-- </script> \r\n x"

__attribute__((unused)) static const char *const TASKS10[] = {
    "arc_challenge", "arc_easy", "boolq", "hellaswag", "lambada_openai", "mmlu", "openbookqa",
    "piqa", "truthfulqa_mc1", "winogrande"};

FX_FN char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) b[n] = 0;
    if (len) *len = (size_t)n;
    return b;
}

/* deterministic noise in [-1, 1) from two integers */
FX_FN double noise(uint32_t a, uint32_t b) {
    uint64_t x = (uint64_t)a * 0x9E3779B97F4A7C15ull ^ ((uint64_t)b + 0x632BE59BD9B4E019ull);
    x ^= x >> 31, x *= 0xBF58476D1CE4E5B9ull, x ^= x >> 29;
    return (double)(x >> 11) / (double)(1ull << 52) - 1.0;
}

/* ------------------------------------------------------------------ fixture databases */

struct fx_recipe {
    const char *id, *algo, *wdtype, *cdtype;
    double bits, gs, dq, penalty, qtime, qmem;
};

FX_FN int exec(sqlite3 *db, const char *sql) {
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        fprintf(stderr, "  sqlite: %s\n", msg ? msg : "?");
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

struct fx {
    sqlite3 *db;
    sqlite3_stmt *model, *recipe, *run, *score, *def, *prov, *sample;
    bool with_samples; /* fx_run writes per-sample records (fixture_small) */
};

FX_FN void bind_text_or_null(sqlite3_stmt *st, int i, const char *s) {
    if (s) sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
    else sqlite3_bind_null(st, i);
}
FX_FN void bind_num_or_null(sqlite3_stmt *st, int i, double v) {
    if (isnan(v)) sqlite3_bind_null(st, i);
    else sqlite3_bind_double(st, i, v);
}
FX_FN int step(sqlite3_stmt *st) {
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

FX_FN int fx_open(struct fx *f, const char *path) {
    memset(f, 0, sizeof *f);
    remove(path);
    char *schema = slurp("gen/schema.sql", NULL);
    if (!schema) {
        fprintf(stderr, "  cannot read gen/schema.sql (run the tests from the repository root)\n");
        return -1;
    }
    /* the tasks table as collect writes it (gen/db.c: db_write_tasks) */
    int rc = sqlite3_open(path, &f->db) != SQLITE_OK || exec(f->db, schema) ||
             exec(f->db, "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; BEGIN") ||
             db_write_tasks(f->db);
    free(schema);
    if (rc) return -1;
    rc = sqlite3_prepare_v2(f->db,
                            "INSERT INTO models(id,path,display_name,family,base_model,model_type,"
                            "license,notes,architecture,n_params,files_sha256) "
                            "VALUES(?,?,?,?,?,?,?,?,?,?,?)",
                            -1, &f->model, NULL) ||
         sqlite3_prepare_v2(f->db,
                            "INSERT INTO recipes(id,algorithm,weight_dtype,bits,group_size,sym,"
                            "double_quant,compute_dtype,calib_set,calib_nsamples,calib_seqlen,knobs)"
                            " VALUES(?,?,?,?,?,?,?,?,?,?,?,?)",
                            -1, &f->recipe, NULL) ||
         sqlite3_prepare_v2(f->db,
                            "INSERT INTO runs(job_key,model_id,recipe_id,status,error,log_tail,"
                            "started_at,finished_at,code_version,host_cpu,threads,kernels_isa,"
                            "quant_seconds,quant_peak_rss_mb,eval_seconds,eval_peak_rss_mb,"
                            "artifact_path,artifact_bytes,bits_per_weight,n_params) "
                            "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                            -1, &f->run, NULL) ||
         sqlite3_prepare_v2(f->db, "INSERT INTO scores VALUES(?,?,?,?,?,?)", -1, &f->score, NULL) ||
         sqlite3_prepare_v2(f->db,
                            "INSERT INTO task_defs(run_id,task,dataset_file,dataset_sha256,n_docs,"
                            "n_docs_full,limit_n,seed,num_fewshot,add_bos,ctx) "
                            "VALUES(?,?,?,?,?,?,?,?,?,?,?)",
                            -1, &f->def, NULL) ||
         sqlite3_prepare_v2(f->db, "INSERT INTO provenance VALUES(?,?,?)", -1, &f->prov, NULL) ||
         sqlite3_prepare_v2(f->db, "INSERT INTO samples(run_id,task,doc,gold,pred,acc,value) "
                            "VALUES(?,?,?,?,?,?,?)", -1, &f->sample, NULL);
    return rc ? -1 : 0;
}

FX_FN int fx_close(struct fx *f) {
    sqlite3_finalize(f->model), sqlite3_finalize(f->recipe), sqlite3_finalize(f->run);
    sqlite3_finalize(f->score), sqlite3_finalize(f->def), sqlite3_finalize(f->prov);
    sqlite3_finalize(f->sample);
    int rc = exec(f->db, "COMMIT");
    sqlite3_close(f->db);
    return rc;
}

FX_FN int fx_model(struct fx *f, const char *id, const char *name, const char *family,
                    const char *base, const char *type, const char *notes, double n_params) {
    sqlite3_stmt *st = f->model;
    char path[256];
    snprintf(path, sizeof path, "models/%.200s.gguf", id);
    bind_text_or_null(st, 1, id);
    bind_text_or_null(st, 2, path);
    bind_text_or_null(st, 3, name);
    bind_text_or_null(st, 4, family);
    bind_text_or_null(st, 5, base);
    bind_text_or_null(st, 6, type);
    bind_text_or_null(st, 7, "MIT");
    bind_text_or_null(st, 8, notes);
    bind_text_or_null(st, 9, "LlamaForCausalLM");
    sqlite3_bind_double(st, 10, n_params);
    bind_text_or_null(st, 11, "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0");
    return step(st);
}

FX_FN int fx_recipe(struct fx *f, const struct fx_recipe *r) {
    sqlite3_stmt *st = f->recipe;
    bool calib = strcmp(r->algo, "fp") && strcmp(r->algo, "rtn") && strcmp(r->algo, "bnb") &&
                 strcmp(r->algo, "gguf");
    bind_text_or_null(st, 1, r->id);
    bind_text_or_null(st, 2, r->algo);
    bind_text_or_null(st, 3, r->wdtype);
    sqlite3_bind_double(st, 4, r->bits);
    bind_num_or_null(st, 5, r->gs);
    bind_num_or_null(st, 6, strcmp(r->algo, "fp") ? 0 : NAN);
    bind_num_or_null(st, 7, r->dq);
    bind_text_or_null(st, 8, r->cdtype);
    bind_text_or_null(st, 9, calib ? "c4-sample.txt" : NULL);
    bind_num_or_null(st, 10, calib ? 128 : NAN);
    bind_num_or_null(st, 11, calib ? 512 : NAN);
    bind_text_or_null(st, 12, calib ? "{\"damp\":0.01,\"iters\":200}" : NULL);
    return step(st);
}

/* one run of model (quality q, n_params) with recipe r; missing_task >= 0 leaves a task out */
struct fx_rank {
    double key;
    int doc;
};
FX_FN int fx_cmp_rank(const void *a, const void *b) {
    const struct fx_rank *x = a, *y = b;
    return x->key < y->key ? -1 : x->key > y->key ? 1 : x->doc - y->doc;
}

/* per-sample records of a fixture run: n documents of task, `right` of them right. Which ones
 * depends mostly on the model (a document's difficulty) and a little on the recipe, so runs of a
 * model agree on most documents, as real quantized variants do. value: NAN. */
FX_FN int fx_doc_samples(struct fx *f, sqlite3_int64 run, int model_i, int recipe_i, int t,
                         const char *task, int n, int right) {
    struct fx_rank rk[512];
    for (int d = 0; d < n && d < 512; d++)
        rk[d] = (struct fx_rank){noise((uint32_t)(model_i * 31 + t), (uint32_t)d) +
                                     0.3 * noise((uint32_t)(recipe_i * 977 + t), (uint32_t)d + 7919),
                                 d};
    qsort(rk, (size_t)n, sizeof *rk, fx_cmp_rank);
    bool ok[512] = {0};
    for (int k = 0; k < right && k < n; k++) ok[rk[k].doc] = true;
    for (int d = 0; d < n; d++) {
        sqlite3_bind_int64(f->sample, 1, run);
        bind_text_or_null(f->sample, 2, task);
        sqlite3_bind_int(f->sample, 3, d);
        sqlite3_bind_int(f->sample, 4, 0);
        sqlite3_bind_int(f->sample, 5, ok[d] ? 0 : 1 + d % 3);
        sqlite3_bind_double(f->sample, 6, ok[d] ? 1.0 : 0.0);
        sqlite3_bind_null(f->sample, 7);
        if (step(f->sample)) return -1;
    }
    return 0;
}

/* the texts of task t's n documents (table documents), with markup and quotes a page must
 * escape; the data file's sha256 as fx_run writes it */
#define FX_DOC_SCRIPT "<script>alert('doc')</script>"
FX_FN int fx_doc_texts(struct fx *f, int t, int n) {
    sqlite3_stmt *st = NULL;
    char sha[65];
    for (int k = 0; k < 64; k++) sha[k] = "0123456789abcdef"[(t * 7 + k * 3) % 16];
    sha[64] = 0;
    if (sqlite3_prepare_v2(f->db, "INSERT INTO documents VALUES(?,?,?,?,?,NULL)", -1, &st, NULL))
        return -1;
    int rc = 0;
    for (int d = 0; d < n && !rc; d++) {
        char ctx[128];
        snprintf(ctx, sizeof ctx, "Question %d: " FX_DOC_SCRIPT " & \"which\"?", d);
        bind_text_or_null(st, 1, TASKS10[t]);
        bind_text_or_null(st, 2, sha);
        sqlite3_bind_int(st, 3, d);
        bind_text_or_null(st, 4, ctx);
        bind_text_or_null(st, 5, "[\"<b>bold</b>\",\"a & b\",\"x < y\",\"\\u00e9t\\u00e9\"]");
        rc = step(st);
    }
    sqlite3_finalize(st);
    return rc;
}

/* chunk records of ppl or kld: n chunks around mean; *got the mean of the values written (what
 * the run's score then is, as lowbit's own scores are the means of their chunks) */
FX_FN int fx_chunk_samples(struct fx *f, sqlite3_int64 run, int model_i, int recipe_i,
                           const char *task, int n, double mean, double *got) {
    double sum = 0;
    for (int c = 0; c < n; c++) {
        sqlite3_bind_int64(f->sample, 1, run);
        bind_text_or_null(f->sample, 2, task);
        sqlite3_bind_int(f->sample, 3, c);
        sqlite3_bind_null(f->sample, 4);
        sqlite3_bind_null(f->sample, 5);
        sqlite3_bind_null(f->sample, 6);
        const double v = mean * (1 + 0.2 * noise((uint32_t)(model_i * 53 + c), (uint32_t)c)) +
                         0.01 * noise((uint32_t)recipe_i, (uint32_t)c);
        sqlite3_bind_double(f->sample, 7, v);
        if (step(f->sample)) return -1;
        sum += v;
    }
    *got = sum / n;
    return 0;
}

FX_FN int fx_run(struct fx *f, int model_i, const char *model_id, double n_params, double q,
                  const struct fx_recipe *r, int recipe_i, bool failed, int missing_task,
                  const char *prov_extra) {
    sqlite3_stmt *st = f->run;
    char key[64], stamp[32];
    snprintf(key, sizeof key, "fx%04d-%04d", model_i, recipe_i);
    snprintf(stamp, sizeof stamp, "2026-01-%02dT%02d:%02d:00Z", 1 + model_i % 28,
             recipe_i % 24, (model_i * 7 + recipe_i) % 60);
    double bpw = r->bits + (r->gs > 0 ? 32.0 / r->gs : r->bits < 16 ? 0.05 : 0);
    double scale = n_params / 1e7;
    bind_text_or_null(st, 1, key);
    bind_text_or_null(st, 2, model_id);
    bind_text_or_null(st, 3, r->id);
    bind_text_or_null(st, 4, failed ? "failed" : "ok");
    bind_text_or_null(st, 5, failed ? HOSTILE_ERROR : NULL);
    bind_text_or_null(st, 6, failed ? "quantizing layer 3/6\nkilled by signal 9 <oom>" : NULL);
    bind_text_or_null(st, 7, stamp);
    bind_text_or_null(st, 8, stamp);
    bind_text_or_null(st, 9, "v0.0-fixture");
    bind_text_or_null(st, 10, "Fixture CPU @ 3.0GHz");
    sqlite3_bind_int(st, 11, 2);
    bind_text_or_null(st, 12, "avx2");
    bind_num_or_null(st, 13, failed ? NAN : r->qtime * scale * (1 + 0.2 * noise(model_i, recipe_i)));
    bind_num_or_null(st, 14, failed ? NAN : r->qmem * (1 + scale));
    bind_num_or_null(st, 15, failed ? NAN : 30 * scale);
    bind_num_or_null(st, 16, failed ? NAN : 50 + n_params * bpw / 8e6);
    char art[128];
    snprintf(art, sizeof art, "artifacts/%s", key);
    bind_text_or_null(st, 17, art);
    bind_num_or_null(st, 18, failed ? NAN : round(n_params * bpw / 8));
    bind_num_or_null(st, 19, failed ? NAN : bpw);
    sqlite3_bind_double(st, 20, n_params);
    if (step(st)) return -1;
    sqlite3_int64 run = sqlite3_last_insert_rowid(f->db);
    /* provenance: every fixture run is marked */
    const char *pk[] = {"fixture", "lowbit.cflags", "recipe.knobs", "hostile"};
    const char *pv[] = {"1", "-O2 -g", r->id, prov_extra};
    for (int i = 0; i < 4; i++) {
        if (!pv[i]) continue;
        sqlite3_bind_int64(f->prov, 1, run);
        bind_text_or_null(f->prov, 2, pk[i]);
        bind_text_or_null(f->prov, 3, pv[i]);
        if (step(f->prov)) return -1;
    }
    if (failed) return 0;
    for (int t = 0; t < 11; t++) {
        const char *task = t < 10 ? TASKS10[t] : "wikitext";
        char file[64], sha[65];
        snprintf(file, sizeof file, "%s.jsonl", task);
        for (int k = 0; k < 64; k++) sha[k] = "0123456789abcdef"[(t * 7 + k * 3) % 16];
        sha[64] = 0;
        sqlite3_bind_int64(f->def, 1, run);
        bind_text_or_null(f->def, 2, task);
        bind_text_or_null(f->def, 3, file);
        bind_text_or_null(f->def, 4, sha);
        sqlite3_bind_int(f->def, 5, 500);
        sqlite3_bind_int(f->def, 6, 1000 + 100 * t);
        sqlite3_bind_int(f->def, 7, 500);
        sqlite3_bind_int(f->def, 8, 1234);
        sqlite3_bind_int(f->def, 9, 0);
        sqlite3_bind_int(f->def, 10, 1);
        sqlite3_bind_int(f->def, 11, 2048);
        if (step(f->def)) return -1;
        if (t == missing_task) continue;
        double v, se, n = 500;
        const char *metric = "acc";
        if (t < 10) {
            v = q + 0.04 * (t % 5) - 0.1 - r->penalty * (1 + 0.3 * noise(t, recipe_i)) +
                0.012 * noise(model_i * 131 + recipe_i, t);
            v = fmin(0.97, fmax(0.03, v));
            v = round(v * n) / n; /* a count of correct documents */
            se = sqrt(v * (1 - v) / (n - 1));
        } else {
            metric = "word_perplexity";
            v = 12.0 / q * exp(4 * r->penalty) * (1 + 0.01 * noise(model_i, recipe_i));
            se = NAN;
            n = 24576;
        }
        sqlite3_bind_int64(f->score, 1, run);
        bind_text_or_null(f->score, 2, task);
        bind_text_or_null(f->score, 3, metric);
        sqlite3_bind_double(f->score, 4, v);
        bind_num_or_null(f->score, 5, se);
        sqlite3_bind_double(f->score, 6, n);
        if (step(f->score)) return -1;
        if (f->with_samples && t < 10 &&
            fx_doc_samples(f, run, model_i, recipe_i, t, task, (int)n, (int)round(v * n)))
            return -1;
    }
    for (int k = 0; f->with_samples && k < 2; k++) { /* the chunks' task definitions */
        sqlite3_bind_int64(f->def, 1, run);
        bind_text_or_null(f->def, 2, k ? "kld" : "ppl");
        bind_text_or_null(f->def, 3, "wiki.test.raw");
        bind_text_or_null(f->def, 4, "5b5c3dfe4e3a8a2e0fd0f5f0c4e0a4f1a3c2b1d0e9f8a7b6c5d4e3f2a1b0c9d8");
        sqlite3_bind_int(f->def, 5, 40);
        sqlite3_bind_null(f->def, 6);
        sqlite3_bind_int(f->def, 7, 500); /* lowbit run --limit 500: every chunk there is */
        sqlite3_bind_null(f->def, 8);
        sqlite3_bind_int(f->def, 9, 0);
        sqlite3_bind_int(f->def, 10, 1);
        sqlite3_bind_int(f->def, 11, 512);
        if (step(f->def)) return -1;
    }
    double nll_mean = NAN, kld_mean = NAN;
    if (f->with_samples &&
        (fx_chunk_samples(f, run, model_i, recipe_i, "ppl", 40, 2.5 / q + 3 * r->penalty,
                          &nll_mean) ||
         (strcmp(r->algo, "fp") && fx_chunk_samples(f, run, model_i, recipe_i, "kld", 40,
                                                    r->penalty * 1.5 + 1e-4, &kld_mean))))
        return -1;
    if (f->with_samples) { /* llama.cpp's PPL at ctx 512: exp of the chunks' mean NLL */
        sqlite3_bind_int64(f->score, 1, run);
        bind_text_or_null(f->score, 2, "ppl");
        bind_text_or_null(f->score, 3, "ppl_llamacpp_ctx512");
        sqlite3_bind_double(f->score, 4, exp(nll_mean));
        sqlite3_bind_double(f->score, 5, 0.01);
        sqlite3_bind_int(f->score, 6, 40);
        if (step(f->score)) return -1;
    }
    if (strcmp(r->algo, "fp")) {
        sqlite3_bind_int64(f->score, 1, run);
        bind_text_or_null(f->score, 2, "kld");
        bind_text_or_null(f->score, 3, "kld_mean");
        sqlite3_bind_double(f->score, 4, f->with_samples ? kld_mean
                                                         : r->penalty * 1.5 *
                                                               (1 + 0.1 * noise(model_i, recipe_i)));
        sqlite3_bind_double(f->score, 5, 0.001);
        sqlite3_bind_int(f->score, 6, 24576);
        if (step(f->score)) return -1;
    }
    return 0;
}

/* the training curve point k of a fixture training (q: the model's quality, larger = lower loss);
 * every 4th point of a model with a gap has no held-out loss */
FX_FN void fx_curve_point(int k, double q, bool gap, double v[6]) {
    double step = 25.0 * (k + 1);
    v[0] = step;
    v[1] = step * 4096;
    v[2] = 1.5 / q + 3.0 / (1 + 0.04 * step) + 0.01 * noise(k, (uint32_t)(q * 100));
    v[3] = gap && k % 4 == 2 ? NAN : 1.4 / q + 2.5 / (1 + 0.04 * step);
    v[4] = 0.002 * (0.1 + 0.9 * 0.5 * (1 + cos(M_PI * k / 10.0)));
    v[5] = 14.5 * (k + 1);
}
#define FX_CURVE_POINTS 10

/* a training row and FX_CURVE_POINTS curve points for model id */
FX_FN int fx_training(struct fx *f, const char *id, const char *train_json, double q, bool gap) {
    sqlite3_stmt *st = NULL, *pt = NULL;
    int rc = sqlite3_prepare_v2(f->db, "INSERT INTO training VALUES(?,?,?,?)", -1, &st, NULL) ||
             sqlite3_prepare_v2(f->db, "INSERT INTO training_curve VALUES(?,?,?,?,?,?,?)", -1, &pt,
                                NULL);
    if (!rc) {
        char dir[160];
        snprintf(dir, sizeof dir, "out/zoo/%.100s", id);
        bind_text_or_null(st, 1, id);
        bind_text_or_null(st, 2, train_json);
        bind_text_or_null(st, 3, dir);
        bind_text_or_null(st, 4, "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789");
        rc = step(st);
    }
    for (int k = 0; !rc && k < FX_CURVE_POINTS; k++) {
        double v[6];
        fx_curve_point(k, q, gap, v);
        bind_text_or_null(pt, 1, id);
        sqlite3_bind_int64(pt, 2, (sqlite3_int64)v[0]);
        sqlite3_bind_int64(pt, 3, (sqlite3_int64)v[1]);
        for (int c = 2; c < 6; c++) bind_num_or_null(pt, c + 2, v[c]);
        rc = step(pt);
    }
    sqlite3_finalize(st);
    sqlite3_finalize(pt);
    return rc ? -1 : 0;
}

/* train.json as lowbit train writes it (gen/cmd_train.c), for the fixture trainings */
#define FX_TRAIN_JSON(params, dim, layers, protocol)                                               \
    "{\"corpus_documents\":5840,\"corpus_tokens\":1342938,\"heldout\":\"tinystories-valid.txt\","  \
    "\"heldout_documents\":202,\"heldout_loss\":2.4426115555668622,\"heldout_overlap_dropped\":"   \
    "779,\"heldout_protocol\":\"" protocol "\",\"heldout_tokens\":68767,\"model\":{\"ctx\":512,"   \
    "\"dim\":" #dim ",\"hidden_dim\":512,\"n_heads\":8,\"n_kv_heads\":4,\"n_layers\":" #layers    \
    ",\"tied\":false,\"vocab\":512},\"opt\":{\"batch\":8,\"clip\":1.0,\"lr\":0.002,\"micro_batch\""\
    ":4,\"min_lr\":0.0002,\"seed\":1337,\"steps\":250,\"warmup\":20,\"weight_decay\":0.1},"        \
    "\"params\":" #params ",\"train_seconds\":359.4,\"train_tokens_seen\":1024000}"
#define FX_PROTOCOL "lowbit nll: BOS + each document, mean NLL (nats) per predicted token"
/* the hostile model's protocol: markup and quotes, escaped in JSON, read back as this text */
#define FX_HOSTILE_PROTOCOL "<b>\\\"nll\\\"</b> & </script>"
#define FX_HOSTILE_PROTOCOL_TEXT "<b>\"nll\"</b> & </script>"

static const struct fx_recipe FX_RECIPES[] = {
    {"fp16", "fp", "float16", "fp16", 16, NAN, NAN, 0, 0, 0},
    {"rtn-w8", "rtn", "int8", "fp32", 8, -1, 0, 0.002, 0.4, 80},
    {"rtn-w4g128", "rtn", "int4", "fp32", 4, 128, 0, 0.035, 0.5, 90},
    {"gptq-w4g128", "gptq", "int4", "fp32", 4, 128, 0, 0.018, 25, 400},
    {"awq-w4g128", "awq", "int4", "fp32", 4, 128, 0, 0.015, 18, 350},
    {"autoround-w4g128", "autoround", "int4", "bf16", 4, 128, 0, 0.012, 60, 500},
    {"gptq-w3g128", "gptq", "int3", "fp32", 3, 128, 0, 0.05, 24, 400},
    {"bnb-nf4", "bnb", "nf4", "bf16", 4, 64, 1, 0.022, 0.3, 70},
    {"gguf-q4_k_m", "gguf", "q4_k_m", "fp32", 4.5, 256, 0, 0.016, 2, 120},
    {"aqlm-2x8", "aqlm", "int2", "fp16", 2, 8, 0, 0.09, 300, 900},
    {HOSTILE_RECIPE, "rtn", "int4", "fp32", 4, 32, 0, 0.03, 0.6, 95},
};
#define N_FX_RECIPES ((int)(sizeof FX_RECIPES / sizeof FX_RECIPES[0]))

/* the small fixture: 4 base models + a third-party checkpoint, hostile strings, a failed run and
 * a run with a missing task (no average) */
FX_FN int fixture_small(const char *path) {
    struct fx f;
    if (fx_open(&f, path)) return -1;
    f.with_samples = true;
    int rc = 0;
    for (int i = 0; i < N_FX_RECIPES; i++) rc |= fx_recipe(&f, &FX_RECIPES[i]);
    rc |= fx_model(&f, "tiny-15M", "Tiny 15M", "tinystories", NULL, "pretrained", NULL, 15.2e6);
    rc |= fx_model(&f, "tiny-42M", "Tiny 42M", "tinystories", NULL, "pretrained",
                   "trained on TinyStories", 41.7e6);
    rc |= fx_model(&f, "tiny-110M", "Tiny 110M", "tinystories", NULL, "fine-tuned", NULL, 110e6);
    rc |= fx_model(&f, "hostile", HOSTILE_NAME, AT_FAMILY, NULL, "chat", FORMULA_NAME " <b>n</b>",
                   60e6);
    rc |= fx_model(&f, PLUS_ID, FORMULA_NAME, "tinystories", "tiny-42M", "merge", NULL, 41.7e6);
    struct {
        const char *id;
        double np, q;
    } models[] = {{"tiny-15M", 15.2e6, 0.52}, {"tiny-42M", 41.7e6, 0.58},
                  {"tiny-110M", 110e6, 0.64}, {"hostile", 60e6, 0.55}};
    for (int m = 0; m < 4; m++)
        for (int k = 0; k < N_FX_RECIPES; k++) {
            bool failed = m == 2 && !strcmp(FX_RECIPES[k].id, "aqlm-2x8");
            int missing = m == 0 && !strcmp(FX_RECIPES[k].id, "rtn-w8") ? 5 : -1;
            rc |= fx_run(&f, m, models[m].id, models[m].np, models[m].q, &FX_RECIPES[k], k, failed,
                         missing, m == 3 ? HOSTILE_PROV : NULL);
        }
    rc |= fx_run(&f, 4, PLUS_ID, 41.7e6, 0.57, &FX_RECIPES[3], 3, false, -1, NULL);
    rc |= fx_doc_texts(&f, 0, 500); /* ARC-c's documents have texts: the drill-downs show them */
    /* a very long multi-byte name: every fixed-size buffer that holds it must cut it between
     * characters (a cut inside one would be invalid UTF-8 in the HTML, the SVG, the JSON) */
    char longname[1300] = "";
    for (int i = 0; i < 300; i++) strcat(longname, "\xf0\x9f\x98\x80");
    strcat(longname, " end");
    rc |= fx_model(&f, "long-name", longname, "tinystories", NULL, "pretrained", NULL, 20e6);
    rc |= fx_run(&f, 5, "long-name", 20e6, 0.53, &FX_RECIPES[0], 0, false, -1, NULL);
    rc |= fx_run(&f, 5, "long-name", 20e6, 0.53, &FX_RECIPES[3], 3, false, -1, NULL);
    /* trained models: two base models, the hostile one (markup in train.json), and the
     * third-party checkpoint (a formula-like id, a train_json that is not JSON) */
    rc |= fx_training(&f, "tiny-15M", FX_TRAIN_JSON(15200000, 256, 2, FX_PROTOCOL), 0.52, false);
    rc |= fx_training(&f, "tiny-42M", FX_TRAIN_JSON(41700000, 512, 4, FX_PROTOCOL), 0.58, true);
    rc |= fx_training(&f, "hostile", FX_TRAIN_JSON(60000000, 384, 3, FX_HOSTILE_PROTOCOL), 0.55,
                      false);
    rc |= fx_training(&f, PLUS_ID, "{not json", 0.57, false);
    rc |= fx_close(&f);
    return rc ? -1 : 0;
}

/* n_models x n_recipes synthetic runs (every 97th failed) */
FX_FN int fixture_big(const char *path, int n_models, int n_recipes) {
    static const char *const algos[] = {"rtn", "gptq", "awq", "autoround", "bnb", "gguf", "aqlm"};
    static const double bits[] = {2, 3, 4, 8}, gss[] = {32, 64, 128, -1};
    struct fx f;
    if (fx_open(&f, path)) return -1;
    int rc = 0;
    struct fx_recipe *rs = calloc((size_t)n_recipes, sizeof *rs);
    char(*ids)[48] = calloc((size_t)n_recipes, sizeof *ids);
    char(*wd)[16] = calloc((size_t)n_recipes, sizeof *wd);
    if (!rs || !ids || !wd) return -1;
    rs[0] = FX_RECIPES[0];
    for (int k = 1; k < n_recipes; k++) {
        int a = (k - 1) % 7, b = (k - 1) / 7 % 4, g = (k - 1) / 28 % 4, v = (k - 1) / 112;
        snprintf(ids[k], sizeof ids[k], "%s-w%gg%g-v%d", algos[a], bits[b], gss[g], v);
        snprintf(wd[k], sizeof wd[k], "int%g", bits[b]);
        rs[k] = (struct fx_recipe){ids[k], algos[a], wd[k], a % 2 ? "bf16" : "fp32", bits[b],
                                   gss[g], a == 4 ? 1 : 0, 0.25 / (bits[b] * bits[b]) + 0.002 * a,
                                   1 + 10 * a, 100 + 50 * a};
    }
    for (int k = 0; k < n_recipes; k++) rc |= fx_recipe(&f, &rs[k]);
    for (int m = 0; m < n_models && !rc; m++) {
        char id[32], name[64];
        snprintf(id, sizeof id, "synth-%03d", m);
        snprintf(name, sizeof name, "Synthetic %03d", m);
        double np = 1e6 * pow(1.12, m);
        rc |= fx_model(&f, id, name, "synthetic", NULL, m % 3 ? "pretrained" : "chat", NULL, np);
        for (int k = 0; k < n_recipes && !rc; k++)
            rc |= fx_run(&f, m, id, np, 0.35 + 0.05 * log10(np / 1e6), &rs[k], k,
                         (m * n_recipes + k) % 97 == 96, -1, NULL);
    }
    rc |= fx_close(&f);
    free(rs), free(ids), free(wd);
    return rc ? -1 : 0;
}
#endif
