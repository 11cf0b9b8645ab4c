/* tests/fuzz/fuzz_text_path.c: arbitrary bytes in every text field of models.csv and recipes.csv,
 * along the path a job's strings take (gen/csvin.c, gen/plan.c, the spec file, the result file,
 * collect_validate, an HTML text node). The input is split at 0x1e into the nine models.csv cells
 * (id, path, tokenizer, display_name, family, base_model, model_type, license, notes) and the
 * recipe's id, algorithm, compute_dtype, calib_set; each cell is written quoted, as a spreadsheet
 * would. Properties (a failure aborts):
 *  - a refused file names itself in the message;
 *  - a taken row goes through the spec file and back unchanged, makes a result that
 *    collect_validate accepts, and every text cell comes out of the result's JSON and of a
 *    serialized HTML text node byte for byte.
 * tests/test_hostile.c's test_property_text is the seeded version of this inside make test. */
#include <jansson.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include "gen/pipeline.h"
#include "quant/calib.h"
#include "tests/fuzz/fuzz_common.h"

enum { N_MODEL = 9, N_RECIPE = 4, N_CELLS = N_MODEL + N_RECIPE };
static const char *const HEAD_M = "id,path,tokenizer,display_name,family,base_model,model_type,"
                                  "license,notes\n";
static const char *const HEAD_R = "id,algorithm,compute_dtype,calib_set\n";

static struct eval_spec ev;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    err_set_quiet(true);
    memset(&ev, 0, sizeof ev); /* no task: nothing to hash */
    ev.seed = 1234;
    return 0;
}

/* cells [from, to) of the split input as one quoted CSV row after head */
static size_t csv_row(char *out, const char *head, const uint8_t **cell, const size_t *len,
                      int from, int to) {
    size_t o = strlen(head);
    memcpy(out, head, o);
    for (int c = from; c < to; c++) {
        if (c > from) out[o++] = ',';
        out[o++] = '"';
        for (size_t i = 0; i < len[c]; i++) {
            if (cell[c][i] == '"') out[o++] = '"';
            out[o++] = (char)cell[c][i];
        }
        out[o++] = '"';
    }
    out[o++] = '\n';
    return o;
}

/* s as an HTML text node, serialized and parsed back, is s */
static void html_round_trip(const char *s) {
    if (!*s) return;
    xmlDocPtr doc = xmlNewDoc((const xmlChar *)"1.0");
    xmlNodePtr p = xmlNewNode(NULL, (const xmlChar *)"p");
    xmlDocSetRootElement(doc, p);
    xmlAddChild(p, xmlNewDocText(doc, (const xmlChar *)s));
    xmlChar *text = NULL;
    int n = 0;
    xmlDocDumpMemoryEnc(doc, &text, &n, "UTF-8");
    xmlFreeDoc(doc);
    xmlDocPtr back = text ? xmlReadMemory((const char *)text, n, NULL, "UTF-8", XML_PARSE_NONET) : NULL;
    xmlChar *got = back ? xmlNodeGetContent(xmlDocGetRootElement(back)) : NULL;
    if (!got || strcmp((const char *)got, s)) abort();
    xmlFree(got);
    xmlFreeDoc(back);
    xmlFree(text);
}

static void same(json_t *o, const char *key, const char *want) {
    const char *got = json_string_value(json_object_get(o, key));
    if (*want ? !got || strcmp(got, want) : got != NULL) abort();
    html_round_trip(want);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 1 << 16) return 0;
    const uint8_t *cell[N_CELLS];
    size_t len[N_CELLS];
    const uint8_t *p = data;
    size_t left = size;
    for (int c = 0; c < N_CELLS; c++) {
        const uint8_t *next;
        size_t rest;
        cell[c] = p;
        fuzz_split(p, left, "\x1e", &len[c], &next, &rest);
        p = next, left = rest;
    }
    char *buf = malloc(2 * size + 256);
    if (!buf) return 0;
    const char *mp = fuzz_file(0, buf, csv_row(buf, HEAD_M, cell, len, 0, N_MODEL));
    const char *rp = fuzz_file(1, buf, csv_row(buf, HEAD_R, cell, len, N_MODEL, N_CELLS));
    free(buf);
    struct model_row *m = NULL;
    struct recipe *r = NULL;
    int nm = 0, nr = 0;
    if (csvin_models(mp, &m, &nm)) {
        if (!strstr(err_last(), mp)) abort();
        return 0;
    }
    if (csvin_recipes(rp, &r, &nr)) {
        if (!strstr(err_last(), rp)) abort();
        free(m);
        return 0;
    }
    /* paths that name something on this machine (/proc, ${HOME}; a calibration file) would be
     * hashed, and a /proc file can block: only rows whose files do not exist are planned */
    char ep[PIPE_PATH_MAX], et[PIPE_PATH_MAX];
    const bool exists = !pipe_expand(m[0].path, ep, sizeof ep) && !access(ep, F_OK);
    const bool t_exists = m[0].tokenizer[0] && !pipe_expand(m[0].tokenizer, et, sizeof et) &&
                          !access(et, F_OK);
    char cp[PIPE_PATH_MAX];
    const bool c_exists = r[0].calib_set[0] && !calib_resolve(r[0].calib_set, cp, sizeof cp);
    struct job *j = exists || t_exists || c_exists ? NULL : calloc(2, sizeof *j);
    if (j && !plan_job(&j[0], &m[0], &r[0], &ev, NULL)) {
        json_t *spec = job_to_json(&j[0]);
        if (!spec) abort(); /* a taken row always makes a spec (issue 18: "out of memory") */
        char *text = json_dumps(spec, 0);
        json_t *back = text ? json_loads(text, 0, NULL) : NULL;
        if (!back || job_from_json(&j[1], back, "spec") || strcmp(j[0].key, j[1].key)) abort();
        /* the result file's model and recipe, as job.c builds them */
        json_t *res = json_pack("{s:s, s:i, s:s, s:s, s:s, s:s, s:n, s:o, s:o, s:{}, s:[], s:[], s:{}}",
                                "format", "lowbit-result", "version", 1, "origin", "lowbit",
                                "job_key", j[1].key, "status", "failed", "error", "x", "log_tail",
                                "model", model_row_to_json(&j[1].model), "recipe",
                                recipe_to_json(&j[1].recipe), "run", "scores", "task_defs",
                                "provenance");
        if (!res || collect_validate(res, NULL)) abort();
        json_t *mo = json_object_get(res, "model"), *ro = json_object_get(res, "recipe");
        static const char *const mk[N_MODEL] = {"id", "path", "tokenizer", "display_name",
                                                 "family", "base_model", "model_type",
                                                 "license", "notes"};
        const char *mv[N_MODEL] = {m[0].id, m[0].path, m[0].tokenizer, m[0].display_name,
                                   m[0].family, m[0].base_model, m[0].model_type, m[0].license,
                                   m[0].notes};
        for (int k = 0; k < N_MODEL; k++) same(mo, mk[k], mv[k]);
        same(ro, "id", r[0].id);
        same(ro, "calib_set", r[0].calib_set);
        /* the cells themselves (the CSV's bytes, quotes undone) reached the rows whole */
        if (len[3] && (strlen(m[0].display_name) != len[3] ||
                       memcmp(m[0].display_name, cell[3], len[3])))
            abort();
        if (len[8] && (strlen(m[0].notes) != len[8] || memcmp(m[0].notes, cell[8], len[8])))
            abort();
        json_decref(res);
        json_decref(back);
        json_decref(spec);
        free(text);
    }
    err_set_quiet(true);
    free(j);
    free(m);
    free(r);
    return 0;
}
