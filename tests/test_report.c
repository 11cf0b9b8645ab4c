/* tests/test_report.c: what make report adds to lowbit run (gen/report.h): the order (every
 * baseline first, a recipe per algorithm nearest 4 bits, the rest; a zoo model's training before
 * its jobs), the budget (jobs not started, the pending count and list, the board's pending
 * section, the next run continuing without re-running anything), the zoo as steps of the plan
 * (a stand-in zoo.sh that copies stories260K instead of training), progress on a terminal and
 * without one, --quiet. Estimates are fixed with LOWBIT_SCHED_COST so the budget decides the same
 * way on a loaded machine; tasks are arc_easy at --limit 2. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <jansson.h>

#include "tests/t_cli.h"

static char out_buf[1 << 16], err_buf[1 << 18];

static int run(const char *prefix, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int run(const char *prefix, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = t_vrun(prefix, out_buf, sizeof out_buf, err_buf, sizeof err_buf, fmt, ap);
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

static const char *TASKS = "--tasks arc_easy --limit 2";
static char model_gguf[4096], model_bin[4096], tok512[4096];
static const char *zoo_dir, *zoo_out, *recipes_all;

/* the data, a stand-in zoo (same arguments and --check lines as gen/zoo/zoo.sh; "training"
 * prints two step lines and copies stories260K.gguf) and a recipe list */
static bool setup(void) {
    static int done = 0;
    if (done) return done > 0;
    done = -1;
    const char *p;
    if (!(p = T_DATA("models/stories260K.gguf"))) return false;
    snprintf(model_gguf, sizeof model_gguf, "%s", p);
    if (!(p = T_DATA("models/stories260K.bin"))) return false;
    snprintf(model_bin, sizeof model_bin, "%s", p);
    if (!(p = T_DATA("tokenizers/tok512.bin"))) return false;
    snprintf(tok512, sizeof tok512, "%s", p);
    zoo_dir = t_scratch("zoo");
    zoo_out = t_scratch("zoo-out");
    mkdir(zoo_dir, 0755);
    char script[16384], path[600];
    snprintf(script, sizeof script,
             "#!/bin/sh\n"
             "check=0; [ \"$1\" = --check ] && { check=1; shift; }; shift\n"
             "for n in \"$@\"; do\n"
             "  d=%s/$n\n"
             "  if [ -f $d/model.gguf ]; then echo \"$n cached $d\"\n"
             "  elif [ $check = 1 ]; then echo \"$n train $d\"\n"
             "  else echo \"step 1/2\"; sleep 1; echo \"step 2/2\"; mkdir -p $d && cp '%s' $d/model.gguf; fi\n"
             "done\n", zoo_out, model_gguf);
    snprintf(path, sizeof path, "%s/zoo.sh", zoo_dir);
    spit(path, script);
    /* a big config: ordered after the 0.3M-parameter stories260K */
    snprintf(path, sizeof path, "%s/tiny.conf", zoo_dir);
    spit(path, "dim = 512\nhidden_dim = 1536\nn_layers = 4\nn_heads = 8\nn_kv_heads = 4\nctx = 512\n"
               "batch = 8\nsteps = 250\n");
    recipes_all = t_scratch("recipes.csv");
    spit(recipes_all, "id,algorithm,weight_dtype,bits,group_size,sym,double_quant,compute_dtype\n"
                      "fp32,fp,float32,32,,,,fp32\n"
                      "fp16,fp,float16,16,,,,fp32\n"
                      "rtn-w2g64,rtn,int2,2,64,0,,fp32\n"
                      "rtn-w4g128,rtn,int4,4,128,0,,fp32\n"
                      "bnb-nf4,bnb,nf4,4,64,,0,fp32\n"
                      "gguf-q8_0,gguf,q8_0,,,,,fp32\n"
                      "gguf-q4_0,gguf,q4_0,,,,,fp32\n");
    done = 1;
    return true;
}

static const char *models_csv(const char *name, bool a, bool b, bool tiny) {
    const char *path = t_scratch(name);
    char text[16384];
    int n = snprintf(text, sizeof text, "id,path,tokenizer\n");
    if (a) n += snprintf(text + n, sizeof text - n, "a,%s,\n", model_gguf);
    if (b) n += snprintf(text + n, sizeof text - n, "b,%s,%s\n", model_bin, tok512);
    if (tiny) snprintf(text + n, sizeof text - n, "tiny,%s/tiny/model.gguf,\n", zoo_out);
    spit(path, text);
    return path;
}

/* ===== the order ===== */

static void test_order(void) {
    if (!setup()) return;
    const char *models = models_csv("models-order.csv", true, true, true);
    T_EQ_INT(run("", "run --dry-run --models %s --recipes %s %s --zoo %s --out %s", models,
                 recipes_all, TASKS, zoo_dir, t_scratch("order")), 0);
    /* step kind model recipe tier estimate state */
    int n = 0, last_tier = 0, tiny_train = -1, tiny_first_job = -1, bad_tier = 0;
    char seen[3][512] = {"", "", ""};
    for (char *line = strtok(out_buf, "\n"); line; line = strtok(NULL, "\n")) {
        char kind[16], model[64], recipe[64];
        int step, tier;
        if (sscanf(line, "%d %15s %63s %63s %d", &step, kind, model, recipe, &tier) != 5) continue;
        n++;
        if (tier < last_tier) bad_tier++;
        last_tier = tier;
        if (!strcmp(kind, "train")) {
            T_EQ_STR(model, "tiny");
            tiny_train = step;
            continue;
        }
        if (!strcmp(model, "tiny")) {
            if (tiny_first_job < 0) tiny_first_job = step;
            T_CONTAINS(line, "after its training");
        }
        if (!strcmp(model, "a")) { /* the recipes of each tier, for one model */
            strcat(seen[tier], recipe);
            strcat(seen[tier], " ");
        }
    }
    T_EQ_INT(n, 3 * 7 + 1);
    T_EQ_INT(bad_tier, 0);
    /* the baseline is the fp16 row (the board compares against fp16 > bf16 > fp32) */
    T_EQ_STR(seen[0], "fp16 ");
    /* per algorithm the recipe nearest 4 bits, and the other fp rows */
    T_EQ_STR(seen[1], "fp32 rtn-w4g128 bnb-nf4 gguf-q4_0 ");
    T_EQ_STR(seen[2], "rtn-w2g64 gguf-q8_0 ");
    /* the zoo model's training comes before its jobs, and after the smaller models' baselines */
    T_OK(tiny_train > 2 && tiny_train < tiny_first_job);
    T_EQ_INT(tiny_first_job, tiny_train + 1);
}

/* ===== the budget, the pending list, the board, the next run ===== */

static json_t *pending_of(const char *out) {
    char path[600];
    snprintf(path, sizeof path, "%s/pending.json", out);
    return json_load_file(path, 0, NULL);
}

static void test_budget(void) {
    if (!setup()) return;
    const char *models = models_csv("models-budget.csv", true, false, false);
    const char *recipes = t_scratch("recipes-budget.csv");
    spit(recipes, "id,algorithm,weight_dtype,bits,group_size,sym,compute_dtype\n"
                  "fp32,fp,float32,32,,,fp32\n"
                  "rtn-w4g128,rtn,int4,4,128,0,fp32\n"
                  "fp16,fp,float16,16,,,fp32\n");
    const char *O = t_scratch("budget"), *db = t_scratch("budget/lowbit.db");
    char site[600], index[700];
    snprintf(site, sizeof site, "%s/site", O);
    snprintf(index, sizeof index, "%s/index.html", site);
    /* the baseline estimated at 1 s, the rest at 100 s, 50 s of budget (2.5 s kept for collect
     * and render): the baseline runs, nothing else fits */
    T_EQ_INT(run("LOWBIT_SCHED_COST='fp16=1,*=100'", "run --models %s --recipes %s %s -j 2 "
                 "--budget 50 --out %s", models, recipes, TASKS, O), 0);
    T_CONTAINS(err_buf, "report: 1 done, 2 pending");
    T_CONTAINS(err_buf, "the next run continues");
    T_CONTAINS(err_buf, "run: [1/3] ok");
    T_Q(db, "SELECT group_concat(recipe_id) FROM runs", "fp16");
    json_t *pend = pending_of(O);
    T_EQ_INT(json_integer_value(json_object_get(pend, "pending")), 2);
    json_t *jobs = json_object_get(pend, "jobs");
    T_EQ_INT(json_array_size(jobs), 2);
    T_EQ_STR(json_string_value(json_object_get(json_array_get(jobs, 0), "recipe_id")), "fp32");
    T_EQ_STR(json_string_value(json_object_get(json_array_get(jobs, 1), "recipe_id")), "rtn-w4g128");
    T_EQ_INT(json_string_length(json_object_get(json_array_get(jobs, 1), "job_key")), 64);
    json_decref(pend);
    /* the board says what is pending */
    T_EQ_INT(run("", "render --db %s -o %s --pending %s/pending.json -q", db, site, O), 0);
    static char html[1 << 20];
    t_read_into(index, html, sizeof html);
    T_CONTAINS(html, "2 runs are pending");
    T_CONTAINS(html, "<bdi>fp32</bdi>, <bdi>rtn-w4g128</bdi>");
    char *fin = t_q1(db, "SELECT finished_at || job_key FROM runs WHERE recipe_id = 'fp16'");
    /* the next run continues: fp16 is not run again, the others are */
    T_EQ_INT(run("", "run --models %s --recipes %s %s -j 2 --out %s", models, recipes, TASKS, O), 0);
    T_CONTAINS(err_buf, "1 done before, 2 to run");
    T_CONTAINS(err_buf, "report: 3 done, 0 pending");
    T_Q(db, "SELECT count(*) FROM runs WHERE status = 'ok'", "3");
    char *fin2 = t_q1(db, "SELECT finished_at || job_key FROM runs WHERE recipe_id = 'fp16'");
    T_EQ_STR(fin, fin2);
    free(fin);
    free(fin2);
    /* the budget is in no key: lowbit status (no budget) finds every job done */
    T_EQ_INT(run("", "status --models %s --recipes %s %s --out %s", models, recipes, TASKS, O), 0);
    T_CONTAINS(out_buf, "3 jobs: 3 ok, 0 failed, 0 pending");
    pend = pending_of(O);
    T_EQ_INT(json_integer_value(json_object_get(pend, "pending")), 0);
    json_decref(pend);
    T_EQ_INT(run("", "render --db %s -o %s --pending %s/pending.json -q", db, site, O), 0);
    t_read_into(index, html, sizeof html);
    T_OK(!strstr(html, "runs are pending"));
    /* --quiet: no progress, no summary */
    T_EQ_INT(run("", "run --models %s --recipes %s %s --out %s --quiet", models, recipes, TASKS, O), 0);
    T_OK(!strstr(err_buf, "run:") && !strstr(err_buf, "report:"));
    /* bad input: one message, non-zero */
    T_OK(run("", "run --models %s --recipes %s --budget 20x --out %s", models, recipes, O) != 0);
    T_CONTAINS(err_buf, "'20x' is not a duration");
    T_OK(run("", "run --models %s --recipes %s --budget-start yesterday --out %s", models, recipes, O) != 0);
    T_CONTAINS(err_buf, "is not a time in seconds since 1970");
    /* make report's way: the budget counts from a start given in epoch seconds (make's) */
    T_EQ_INT(run("", "run --dry-run --models %s --recipes %s %s --budget 20m --budget-start %ld --out %s",
                 models, recipes, TASKS, (long)time(NULL), O), 0);
    spit(t_scratch("bad-pending.json"), "{\"format\": \"something else\", \"jobs\": []}");
    T_OK(run("", "render --db %s -o %s --pending %s -q", db, site, t_scratch("bad-pending.json")) != 0);
    T_CONTAINS(err_buf, "not a lowbit pending list");
}

/* ===== the zoo inside the plan ===== */

static void test_zoo(void) {
    if (!setup()) return;
    const char *models = models_csv("models-zoo.csv", false, false, true);
    const char *recipes = t_scratch("recipes-zoo.csv");
    spit(recipes, "id,algorithm,weight_dtype,bits,compute_dtype\nfp16,fp,float16,16,fp32\n");
    const char *O = t_scratch("zoo-run"), *db = t_scratch("zoo-run/lowbit.db");
    /* a budget too small for the training: nothing runs, the training and the job are pending */
    T_EQ_INT(run("LOWBIT_SCHED_COST=4.5", "run --models %s --recipes %s %s --zoo %s --budget 1 "
                 "--out %s", models, recipes, TASKS, zoo_dir, O), 0);
    T_CONTAINS(err_buf, "report: budget: not training tiny now");
    T_CONTAINS(err_buf, "report: 0 done, 1 pending (and 1 zoo trainings)");
    json_t *pend = pending_of(O);
    json_t *job = json_array_get(json_object_get(pend, "jobs"), 0);
    T_OK(json_is_null(json_object_get(job, "job_key")));
    T_EQ_STR(json_string_value(json_object_get(job, "waiting_for")), "its model's training");
    T_EQ_STR(json_string_value(json_object_get(json_array_get(json_object_get(pend, "training"), 0),
                                               "model_id")), "tiny");
    json_decref(pend);
    char site[600], index[700];
    snprintf(site, sizeof site, "%s/site", O);
    snprintf(index, sizeof index, "%s/index.html", site);
    T_EQ_INT(run("", "render --db %s -o %s --pending %s/pending.json -q", db, site, O), 0);
    static char html[1 << 20];
    t_read_into(index, html, sizeof html);
    T_CONTAINS(html, "(after the model is trained)");
    /* no budget, on a terminal (script(1) gives it a pty): trains, then runs the job on the
     * trained file; the progress line counts both */
    char cmd[16384];
    static char tty[1 << 18];
    snprintf(cmd, sizeof cmd, "script -qec \"%s run --models %s --recipes %s %s --zoo %s --out %s\" "
             "/dev/null", t_bin(), models, recipes, TASKS, zoo_dir, O);
    T_EQ_INT(t_sh(cmd, tty, sizeof tty), 0);
    T_CONTAINS(tty, "report: training tiny");
    T_CONTAINS(tty, "report: tiny trained in");
    T_CONTAINS(tty, "\rreport: zoo 1/1 | jobs 1/1 done, 0 failed");
    T_CONTAINS(tty, "report: 1 done, 0 pending");
    T_Q(db, "SELECT status FROM runs WHERE model_id = 'tiny'", "ok");
    /* its key is the trained file's: what lowbit status plans now */
    T_EQ_INT(run("", "status --models %s --recipes %s %s --out %s", models, recipes, TASKS, O), 0);
    T_CONTAINS(out_buf, "1 jobs: 1 ok, 0 failed, 0 pending");
    /* without a terminal: one line per event; the training's log has its steps */
    T_EQ_INT(run("", "run --models %s --recipes %s %s --zoo %s --out %s", models, recipes, TASKS,
                 zoo_dir, O), 0);
    T_CONTAINS(err_buf, "1 done before, 0 to run");
    T_OK(!strchr(err_buf, '\r'));
    char log[600];
    snprintf(log, sizeof log, "%s/logs/zoo-tiny.log", O);
    t_read_into(log, tty, sizeof tty);
    T_CONTAINS(tty, "step 2/2");
}

/* gen/zoo/zoo.sh --check names what it would train, training nothing */
static void test_zoo_check(void) {
    if (!setup()) return;
    char cmd[1024];
    static char buf[8192];
    snprintf(cmd, sizeof cmd, "ZOO_OUT=%s sh gen/zoo/zoo.sh --check - zoo-1m zoo-15m",
             t_scratch("zc"));
    T_EQ_INT(t_sh(cmd, buf, sizeof buf), 0);
    T_CONTAINS(buf, "zoo-1m train ");
    T_CONTAINS(buf, "zoo-15m train ");
    snprintf(cmd, sizeof cmd, "ZOO_OUT=%s sh gen/zoo/zoo.sh --check - no-such-model",
             t_scratch("zc"));
    T_OK(t_sh(cmd, buf, sizeof buf) != 0);
    T_CONTAINS(buf, "no config gen/zoo/no-such-model.conf");
}

int main(void) {
    T_RUN(test_order);
    T_RUN(test_budget);
    T_RUN(test_zoo);
    T_RUN(test_zoo_check);
    t_tmpdir_cleanup();
    return T_DONE();
}
