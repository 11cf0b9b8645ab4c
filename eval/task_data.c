/* eval/task_data.c: one reader per dataset layout, each turning a file into lm-eval documents
 * (context = lm-eval's doc_to_text, choices = doc_to_choice, gold = doc_to_target).
 *
 * Definitions are lm-evaluation-harness v0.4.2 (checked against HEAD 4e7e0d47; the prompts are
 * unchanged, only dataset paths moved):
 *   arc       lm_eval/tasks/arc/arc_easy.yaml (arc_challenge.yaml includes it):
 *             "Question: {{question}}\nAnswer:", choices.text, choices.label.index(answerKey)
 *   boolq     lm_eval/tasks/super_glue/boolq/default.yaml:
 *             "{{passage}}\nQuestion: {{question}}?\nAnswer:", ["no", "yes"], label
 *   hellaswag lm_eval/tasks/hellaswag/hellaswag.yaml + utils.py (see task_text.c)
 *   lambada   lm_eval/tasks/lambada/lambada_openai.yaml: "{{text.split(' ')[:-1]|join(' ')}}",
 *             target "{{' '+text.split(' ')[-1]}}"
 *   mmlu      lm_eval/tasks/mmlu/default/_default_template_yaml + mmlu_<subject>.yaml
 *   openbookqa lm_eval/tasks/openbookqa/openbookqa.yaml: question_stem, choices.text,
 *             choices.label.index(answerKey.lstrip())
 *   piqa      lm_eval/tasks/piqa/piqa.yaml: "Question: {{goal}}\nAnswer:", [sol1, sol2], label
 *   truthfulqa lm_eval/tasks/truthfulqa/truthfulqa_mc1.yaml (preamble below), mc1_targets.choices,
 *             target 0
 *   winogrande lm_eval/tasks/winogrande/preprocess_winogrande.py (partial scoring)
 *   wikitext  lm_eval/tasks/wikitext/wikitext.yaml + preprocess_wikitext.py
 * Every malformed input is reported as "<file>:<line>: <what>, expected <what>". */
#include <csv.h>
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "eval/task_impl.h"
#include "kernels/base/json.h"
#include "kernels/common.h"

/* ===== files and documents ===== */

/* append ", what" to ts->source, cut at its size */
void rd_source(struct task_rd *r, const char *what) {
    char *s = r->ts->source;
    size_t n = strlen(s), cap = sizeof r->ts->source;
    for (const char *p = n ? ", " : ""; *p && n + 1 < cap;) s[n++] = *p++;
    task_data_name(s + n, cap - n, what, r->data_dir);
}

int rd_slurp(struct task_rd *r, const char *path, char **buf, size_t *len) {
    char *p;
    size_t n;
    if (access(path, R_OK))
        return err("cannot open %s: %s (task data lives under LOWBIT_DATA, default "
                   "../shared/data; see its MANIFEST.md)",
                   path, strerror(errno));
    if (read_file_all(path, "the task file", &p, &n)) return -1;
    sha256_update(&r->sha, p, n);
    if (!r->no_source) rd_source(r, path);
    *buf = p;
    *len = n;
    return 0;
}

struct task_doc *rd_doc(struct task_rd *r) {
    struct task_set *ts = r->ts;
    if (ts->n_docs == r->cap) {
        int cap = r->cap ? 2 * r->cap : 256;
        struct task_doc *d = realloc(ts->docs, (size_t)cap * sizeof *d);
        if (!d) {
            err("out of memory: %d task documents", cap);
            return NULL;
        }
        ts->docs = d;
        r->cap = cap;
    }
    struct task_doc *d = &ts->docs[ts->n_docs++];
    memset(d, 0, sizeof *d);
    d->gold = -1;
    return d;
}

/* the whole-file UTF-8 check Python's decoding would do, with the line of the first bad byte */
static int check_utf8(const char *path, const char *buf, size_t n) {
    size_t bad = utf8_check(buf, n);
    if (bad == n) return 0;
    int line = 1;
    for (size_t i = 0; i < bad; i++) line += buf[i] == '\n';
    return err("%s:%d: byte 0x%02x is not UTF-8 (expected UTF-8 text)", path, line,
               (unsigned char)buf[bad]);
}

/* one line of a text file: [p, p+n) without its "\n" (nor a "\r" before it) */
struct line {
    const char *p;
    size_t n;
    int no;
};

/* next line of buf from *pos; false at the end */
static bool next_line(const char *buf, size_t len, size_t *pos, struct line *l) {
    if (*pos >= len) return false;
    const char *s = buf + *pos, *e = memchr(s, '\n', len - *pos);
    size_t n = e ? (size_t)(e - s) : len - *pos;
    *pos += n + (e ? 1 : 0);
    l->p = s;
    l->n = n && s[n - 1] == '\r' ? n - 1 : n;
    l->no++;
    return true;
}

static bool blank(const struct line *l) { return py_lstrip_off(l->p, l->n) == l->n; }

/* choices array of owned strings */
static int set_choices(struct task_doc *d, int n) {
    d->choices = xcalloc((size_t)(n ? n : 1), sizeof *d->choices, "task choices");
    if (!d->choices) return -1;
    d->n_choices = n;
    return 0;
}

/* ===== JSON ===== */

static json_t *jparse_line(const struct line *l, const char *path) {
    json_error_t e;
    json_t *o = json_loadb(l->p, l->n, 0, &e);
    if (!o) {
        err("%s:%d: bad JSON at column %d: %s", path, l->no, e.column, e.text);
        return NULL;
    }
    if (!json_is_object(o)) {
        json_decref(o);
        err("%s:%d: expected a JSON object per line", path, l->no);
        return NULL;
    }
    return o;
}

typedef int (*jsonl_fn)(struct task_rd *r, json_t *o, const char *path, int line);

/* every non-blank line of a JSON-lines file through fn */
static int each_jsonl(struct task_rd *r, const char *path, jsonl_fn fn) {
    char *buf;
    size_t len, pos = 0;
    if (rd_slurp(r, path, &buf, &len)) return -1;
    struct line l = {0};
    int rc = 0;
    while (!rc && next_line(buf, len, &pos, &l)) {
        if (blank(&l)) continue;
        json_t *o = jparse_line(&l, path);
        rc = o ? fn(r, o, path, l.no) : -1;
        json_decref(o);
    }
    free(buf);
    return rc;
}

/* a labels file (PIQA valid-labels.lst, WinoGrande dev-labels.lst): one integer per line */
static int read_labels(struct task_rd *r, const char *path, int lo, int hi, int **out, int *n) {
    char *buf;
    size_t len, pos = 0;
    *out = NULL;
    *n = 0;
    if (rd_slurp(r, path, &buf, &len)) return -1;
    int cap = 0, rc = 0;
    struct line l = {0};
    while (!rc && next_line(buf, len, &pos, &l)) {
        if (blank(&l)) continue;
        char tmp[16];
        size_t a = py_lstrip_off(l.p, l.n), m = py_rstrip_len(l.p + a, l.n - a);
        char *end = NULL;
        long v = -1;
        if (m && m < sizeof tmp) {
            memcpy(tmp, l.p + a, m);
            tmp[m] = 0;
            v = strtol(tmp, &end, 10);
        }
        if (!end || *end || v < lo || v > hi) {
            rc = err("%s:%d: label \"%.*s\", expected an integer %d..%d", path, l.no,
                     (int)LB_MIN(l.n, 40), l.p, lo, hi);
            break;
        }
        if (*n == cap) {
            cap = cap ? 2 * cap : 1024;
            int *p = realloc(*out, (size_t)cap * sizeof *p);
            if (!p) {
                rc = err("out of memory: %d labels", cap);
                break;
            }
            *out = p;
        }
        (*out)[(*n)++] = (int)v;
    }
    free(buf);
    if (rc) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

/* ===== ARC and OpenBookQA (AI2 jsonl) ===== */

/* AI2 layout {"question": {"stem", "choices": [{"text", "label"}]}, "answerKey"}, or the Hugging
 * Face rows {"question"|"question_stem", "choices": {"text": [..], "label": [..]}, "answerKey"};
 * gold = choices.label.index(answerKey.lstrip()). arc: "Question: " + stem + "\nAnswer:";
 * openbookqa: the stem alone. */
static int arc_like(struct task_rd *r, json_t *o, const char *path, int line, bool arc) {
    const char *stem = NULL, *key;
    json_t *q = json_object_get(o, "question"), *ch = NULL;
    if (json_is_object(q)) {
        if (jstr_get(q, "stem", true, &stem, "%s:%d", path, line)) return -1;
        ch = json_object_get(q, "choices");
    } else {
        if (jstr_get(o, json_is_string(q) ? "question" : "question_stem", true, &stem, "%s:%d",
                     path, line))
            return -1;
        ch = json_object_get(o, "choices");
    }
    if (jstr_get(o, "answerKey", true, &key, "%s:%d", path, line)) return -1;
    size_t n_ch = json_is_array(ch) ? json_array_size(ch) : 0;
    json_t *texts = NULL, *labels = NULL;
    if (json_is_object(ch)) { /* Hugging Face column layout */
        texts = json_object_get(ch, "text");
        labels = json_object_get(ch, "label");
        if (!json_is_array(texts) || !json_is_array(labels) ||
            json_array_size(texts) != json_array_size(labels))
            return err("%s:%d: \"choices\" needs arrays \"text\" and \"label\" of one length",
                       path, line);
        n_ch = json_array_size(texts);
    }
    if (!n_ch)
        return err("%s:%d: no choices, expected a non-empty \"choices\" list", path, line);
    struct task_doc *d = rd_doc(r);
    if (!d || set_choices(d, (int)n_ch)) return -1;
    key += py_lstrip_off(key, strlen(key));
    for (size_t i = 0; i < n_ch; i++) {
        json_t *text = texts ? json_array_get(texts, i) : NULL;
        json_t *label = labels ? json_array_get(labels, i) : NULL;
        if (!texts) {
            json_t *c = json_array_get(ch, i);
            text = json_object_get(c, "text");
            label = json_object_get(c, "label");
        }
        if (!json_is_string(text) || !json_is_string(label))
            return err("%s:%d: choice %zu needs string \"text\" and \"label\"", path, line, i);
        if (!(d->choices[i] = task_strdup(json_string_value(text)))) return -1;
        if (!strcmp(json_string_value(label), key) && d->gold < 0) d->gold = (int)i;
    }
    if (d->gold < 0)
        return err("%s:%d: answerKey \"%s\" is not one of the choice labels", path, line, key);
    d->context = arc ? task_concat("Question: ", stem, "\nAnswer:", (char *)NULL)
                     : task_strdup(stem);
    return d->context ? 0 : -1;
}

static int arc_doc(struct task_rd *r, json_t *o, const char *path, int line) {
    return arc_like(r, o, path, line, true);
}

int task_read_arc(struct task_rd *r, const char *path) { return each_jsonl(r, path, arc_doc); }

static int obqa_json_doc(struct task_rd *r, json_t *o, const char *path, int line) {
    return arc_like(r, o, path, line, false);
}

/* OpenBookQA's original TSV (OpenBookQA-V1-Sep2018/Data/Main/test.tsv):
 *   ID \t Question Stem \t Choices "(A) t1 (B) t2 (C) t3 (D) t4" \t Complete Question \t Answer Key
 * The choice texts are the pieces between the "(X) " markers, split at " (B) ", " (C) ", ...
 * (none of the 500 test choices contains a marker; the split agrees with llm-foundry's
 * openbook_qa.jsonl on all of them). */
static int obqa_tsv_row(struct task_rd *r, const struct line *l, const char *path) {
    const char *f[5];
    size_t fn[5];
    int k = 1;
    for (size_t i = 0; i < l->n; i++) k += l->p[i] == '\t';
    if (k != 5)
        return err("%s:%d: %d tab-separated columns, expected 5 (ID, Question Stem, Choices, "
                   "Complete Question, Answer Key)",
                   path, l->no, k);
    const char *p = l->p, *eol = l->p + l->n;
    for (int i = 0; i < 5; i++) {
        const char *t = i < 4 ? memchr(p, '\t', (size_t)(eol - p)) : eol;
        f[i] = p;
        fn[i] = (size_t)(t - p);
        p = t + 1;
    }
    struct task_doc *d = rd_doc(r);
    if (!d) return -1;
    char marker[8];
    const char *c = f[2], *end = f[2] + fn[2];
    if (fn[2] < 4 || memcmp(c, "(A) ", 4))
        return err("%s:%d: choices must start with \"(A) \"", path, l->no);
    c += 4;
    const char *texts[26];
    size_t lens[26];
    int n = 0;
    for (;;) {
        snprintf(marker, sizeof marker, " (%c) ", 'A' + n + 1);
        const char *m = n + 1 < 26 ? memmem(c, (size_t)(end - c), marker, 5) : NULL;
        texts[n] = c;
        lens[n] = m ? (size_t)(m - c) : (size_t)(end - c);
        n++;
        if (!m) break;
        c = m + 5;
    }
    if (set_choices(d, n)) return -1;
    for (int i = 0; i < n; i++)
        if (!(d->choices[i] = task_strndup(texts[i], lens[i]))) return -1;
    size_t a = py_lstrip_off(f[4], fn[4]);
    if (fn[4] - a != 1 || f[4][a] < 'A' || f[4][a] >= 'A' + n)
        return err("%s:%d: answer key \"%.*s\", expected one of A..%c", path, l->no,
                   (int)LB_MIN(fn[4], 20), f[4], 'A' + n - 1);
    d->gold = f[4][a] - 'A';
    d->context = task_strndup(f[1], fn[1]);
    return d->context ? 0 : -1;
}

int task_read_openbookqa(struct task_rd *r, const char *path) {
    if (ends_with(path, ".jsonl") || ends_with(path, ".json"))
        return each_jsonl(r, path, obqa_json_doc);
    char *buf;
    size_t len, pos = 0;
    if (rd_slurp(r, path, &buf, &len)) return -1;
    int rc = check_utf8(path, buf, len);
    struct line l = {0};
    while (!rc && next_line(buf, len, &pos, &l)) {
        if (blank(&l)) continue;
        if (l.no == 1 && l.n >= 3 && !memcmp(l.p, "ID\t", 3)) continue; /* header */
        rc = obqa_tsv_row(r, &l, path);
    }
    free(buf);
    return rc;
}

/* ===== BoolQ ===== */

/* SuperGLUE val.jsonl {passage, question, label}; label true/false (bool, or the strings
 * "true"/"false" of some copies, or Hugging Face's 0/1) */
static int boolq_doc(struct task_rd *r, json_t *o, const char *path, int line) {
    const char *passage, *question;
    if (jstr_get(o, "passage", true, &passage, "%s:%d", path, line) ||
        jstr_get(o, "question", true, &question, "%s:%d", path, line))
        return -1;
    json_t *lab = json_object_get(o, "label");
    int gold = -1;
    if (json_is_boolean(lab)) gold = json_is_true(lab);
    else if (json_is_string(lab) && !strcmp(json_string_value(lab), "true")) gold = 1;
    else if (json_is_string(lab) && !strcmp(json_string_value(lab), "false")) gold = 0;
    else if (json_is_integer(lab) && json_integer_value(lab) >= 0 && json_integer_value(lab) <= 1)
        gold = (int)json_integer_value(lab);
    if (gold < 0)
        return err("%s:%d: \"label\" must be true/false (or 0/1)", path, line);
    struct task_doc *d = rd_doc(r);
    if (!d || set_choices(d, 2)) return -1;
    d->gold = gold;
    d->choices[0] = task_strdup("no");
    d->choices[1] = task_strdup("yes");
    d->context = task_concat(passage, "\nQuestion: ", question, "?\nAnswer:", (char *)NULL);
    return d->context && d->choices[0] && d->choices[1] ? 0 : -1;
}

int task_read_boolq(struct task_rd *r, const char *path) { return each_jsonl(r, path, boolq_doc); }

/* ===== HellaSwag ===== */

/* rowanz/hellaswag jsonl or Hugging Face rows: {activity_label, ctx_a, ctx_b, endings, label},
 * exactly utils.py process_docs:
 *   query   = preprocess(activity_label + ": " + ctx_a + " " + ctx_b.capitalize())
 *   choices = [preprocess(e) for e in endings], gold = int(label) */
static int hellaswag_json_doc(struct task_rd *r, json_t *o, const char *path, int line) {
    const char *act, *a, *b;
    if (jstr_get(o, "activity_label", true, &act, "%s:%d", path, line) ||
        jstr_get(o, "ctx_a", true, &a, "%s:%d", path, line) ||
        jstr_get(o, "ctx_b", true, &b, "%s:%d", path, line))
        return -1;
    json_t *ends = json_object_get(o, "endings"), *lab = json_object_get(o, "label");
    size_t n = json_is_array(ends) ? json_array_size(ends) : 0;
    if (!n) return err("%s:%d: expected a non-empty \"endings\" list", path, line);
    long long gold = json_is_integer(lab) ? json_integer_value(lab)
                     : json_is_string(lab) ? strtoll(json_string_value(lab), NULL, 10) : -1;
    if (gold < 0 || gold >= (long long)n || (json_is_string(lab) && !*json_string_value(lab)))
        return err("%s:%d: \"label\" must be an index 0..%zu", path, line, n - 1);
    struct task_doc *d = rd_doc(r);
    if (!d || set_choices(d, (int)n)) return -1;
    d->gold = (int)gold;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(ends, i);
        if (!json_is_string(e)) return err("%s:%d: ending %zu is not a string", path, line, i);
        const char *s = json_string_value(e);
        if (!(d->choices[i] = hellaswag_preprocess(s, strlen(s)))) return -1;
    }
    char *cap = py_capitalize(b, strlen(b));
    char *raw = cap ? task_concat(act, ": ", a, " ", cap, (char *)NULL) : NULL;
    d->context = raw ? hellaswag_preprocess(raw, strlen(raw)) : NULL;
    free(cap), free(raw);
    return d->context ? 0 : -1;
}

/* llama.cpp --hellaswag text layout (klosax/hellaswag_text_data): 6 lines per task -- the
 * context "activity_label: ctx", the gold index, 4 endings (see task_text.c for what it lost) */
int task_read_hellaswag(struct task_rd *r, const char *path) {
    if (ends_with(path, ".jsonl") || ends_with(path, ".json"))
        return each_jsonl(r, path, hellaswag_json_doc);
    char *buf;
    size_t len, pos = 0;
    if (rd_slurp(r, path, &buf, &len)) return -1;
    int rc = check_utf8(path, buf, len);
    struct line l = {0}, g[6];
    int k = 0;
    while (!rc && next_line(buf, len, &pos, &l)) {
        g[k++] = l;
        if (k < 6) continue;
        k = 0;
        if (g[1].n != 1 || g[1].p[0] < '0' || g[1].p[0] > '3') {
            rc = err("%s:%d: gold label \"%.*s\", expected 0..3 (6 lines per task: context, "
                     "label, 4 endings)",
                     path, g[1].no, (int)LB_MIN(g[1].n, 20), g[1].p);
            break;
        }
        struct task_doc *d = rd_doc(r);
        if (!d || set_choices(d, 4)) {
            rc = -1;
            break;
        }
        d->gold = g[1].p[0] - '0';
        if (!(d->context = hellaswag_query_from_line(g[0].p, g[0].n))) {
            rc = err("%s:%d: context line without \"activity label: \"", path, g[0].no);
            break;
        }
        for (int i = 0; i < 4 && !rc; i++) {
            if (!g[2 + i].n) rc = err("%s:%d: empty ending", path, g[2 + i].no);
            else if (!(d->choices[i] = hellaswag_ending_from_line(g[2 + i].p, g[2 + i].n)))
                rc = -1;
        }
    }
    if (!rc && k)
        rc = err("%s:%d: the file ends inside a task (%d of its 6 lines)", path, l.no, k);
    free(buf);
    return rc;
}

/* ===== LAMBADA ===== */

/* {"text"}: context = text.split(' ')[:-1] joined by ' ' = the text before its last space;
 * target = text.split(' ')[-1] (the request adds the " " delimiter). Split on ' ' only: a
 * newline inside the last "word" stays in it, as in lm-eval (7 such texts). */
static int lambada_doc(struct task_rd *r, json_t *o, const char *path, int line) {
    const char *text;
    if (jstr_get(o, "text", true, &text, "%s:%d", path, line)) return -1;
    const char *sp = strrchr(text, ' ');
    struct task_doc *d = rd_doc(r);
    if (!d) return -1;
    d->context = task_strndup(text, sp ? (size_t)(sp - text) : 0);
    d->continuation = task_strdup(sp ? sp + 1 : text);
    return d->context && d->continuation ? 0 : -1;
}

int task_read_lambada(struct task_rd *r, const char *path) {
    return each_jsonl(r, path, lambada_doc);
}

/* ===== MMLU (CSV through libcsv) ===== */

const char *const task_mmlu_desc_sep = "\n\n";

/* mmlu_<subject>.yaml group, v0.4.2 lm_eval/tasks/mmlu/default (57 files) */
static const struct {
    const char *name;
    int cat;
} mmlu_subjects[] = {
    {"abstract_algebra", 0}, {"anatomy", 0}, {"astronomy", 0}, {"business_ethics", 1},
    {"clinical_knowledge", 1}, {"college_biology", 0}, {"college_chemistry", 0},
    {"college_computer_science", 0}, {"college_mathematics", 0}, {"college_medicine", 1},
    {"college_physics", 0}, {"computer_security", 0}, {"conceptual_physics", 0},
    {"econometrics", 2}, {"electrical_engineering", 0}, {"elementary_mathematics", 0},
    {"formal_logic", 3}, {"global_facts", 1}, {"high_school_biology", 0},
    {"high_school_chemistry", 0}, {"high_school_computer_science", 0},
    {"high_school_european_history", 3}, {"high_school_geography", 2},
    {"high_school_government_and_politics", 2}, {"high_school_macroeconomics", 2},
    {"high_school_mathematics", 0}, {"high_school_microeconomics", 2}, {"high_school_physics", 0},
    {"high_school_psychology", 2}, {"high_school_statistics", 0}, {"high_school_us_history", 3},
    {"high_school_world_history", 3}, {"human_aging", 1}, {"human_sexuality", 2},
    {"international_law", 3}, {"jurisprudence", 3}, {"logical_fallacies", 3},
    {"machine_learning", 0}, {"management", 1}, {"marketing", 1}, {"medical_genetics", 1},
    {"miscellaneous", 1}, {"moral_disputes", 3}, {"moral_scenarios", 3}, {"nutrition", 1},
    {"philosophy", 3}, {"prehistory", 3}, {"professional_accounting", 1},
    {"professional_law", 3}, {"professional_medicine", 1}, {"professional_psychology", 2},
    {"public_relations", 2}, {"security_studies", 2}, {"sociology", 2},
    {"us_foreign_policy", 2}, {"virology", 1}, {"world_religions", 3},
};

int task_mmlu_category(const char *subject) {
    for (size_t i = 0; i < LB_ARRAY_LEN(mmlu_subjects); i++)
        if (!strcmp(subject, mmlu_subjects[i].name)) return mmlu_subjects[i].cat;
    return -1;
}

struct csv_state {
    struct task_rd *r;
    const char *path, *subject;
    char *field[8];
    int n_field, line, row_line, rc; /* row_line: where the current row started */
    bool header_done;
};

static void csv_field_cb(void *s, size_t n, void *u) {
    struct csv_state *c = u;
    if (c->rc) return;
    if (c->n_field >= 6) {
        c->n_field++;
        return;
    }
    if (utf8_check(s ? s : "", s ? n : 0) != (s ? n : 0)) {
        c->rc = err("%s:%d: field %d is not UTF-8", c->path, c->row_line, c->n_field + 1);
        return;
    }
    if (!(c->field[c->n_field++] = task_strndup(s ? s : "", s ? n : 0))) c->rc = -1;
}

/* "The following are multiple choice questions (with answers) about {subject}.\n\n" is each
 * mmlu_<subject>.yaml's description (subject with "_" -> " "; all 57 follow the pattern), and
 * _default_template_yaml's doc_to_text is
 *   "{{question.strip()}}\nA. {{choices[0]}}\nB. {{choices[1]}}\nC. {{choices[2]}}\n
 *    D. {{choices[3]}}\nAnswer:", choices ["A", "B", "C", "D"], target = answer.
 * 0-shot, ConfigurableTask.fewshot_context returns description + doc_to_text. Version note:
 * v0.4.2 and v0.4.3 render the description through Jinja without keep_trailing_newline, which
 * drops one "\n" (prompt "... algebra.\nFind the degree ..."); v0.4.0/0.4.1 used it raw and
 * v0.4.4+ (commit 8ad598df, #2116) keep "\n\n", as we do (task_mmlu_desc_sep). */
static void csv_row_cb(int ch, void *u) {
    (void)ch;
    struct csv_state *c = u;
    int nf = c->n_field;
    c->n_field = 0;
    if (c->rc) goto out;
    if (!c->header_done) {
        c->header_done = true;
        if (nf >= 1 && !strcmp(c->field[0], "question")) goto out; /* header row */
    }
    if (nf != 6) {
        c->rc = err("%s:%d: %d columns, expected 6 (question, 4 choices, answer)", c->path,
                    c->row_line, nf);
        goto out;
    }
    const char *a = c->field[5];
    int gold = -1;
    if (strlen(a) == 1 && a[0] >= '0' && a[0] <= '3') gold = a[0] - '0';
    if (strlen(a) == 1 && a[0] >= 'A' && a[0] <= 'D') gold = a[0] - 'A';
    if (gold < 0) {
        c->rc = err("%s:%d: answer \"%.20s\", expected 0-3 or A-D", c->path, c->row_line, a);
        goto out;
    }
    struct task_doc *d = rd_doc(c->r);
    if (!d || set_choices(d, 4)) {
        c->rc = -1;
        goto out;
    }
    d->gold = gold;
    static const char *const letters[4] = {"A", "B", "C", "D"};
    for (int i = 0; i < 4; i++)
        if (!(d->choices[i] = task_strdup(letters[i]))) c->rc = -1;
    char *q = py_strip(c->field[0], strlen(c->field[0]));
    char *subj = py_replace(c->subject, "_", " ");
    d->subject = task_strdup(c->subject);
    if (q && subj)
        d->context = task_concat("The following are multiple choice questions (with answers) "
                                 "about ",
                                 subj, ".", task_mmlu_desc_sep, q, "\nA. ", c->field[1], "\nB. ",
                                 c->field[2], "\nC. ", c->field[3], "\nD. ", c->field[4],
                                 "\nAnswer:", (char *)NULL);
    if (!q || !subj || !d->context || !d->subject) c->rc = -1;
    free(q), free(subj);
out:
    for (int i = 0; i < LB_MIN(nf, 6); i++) free(c->field[i]), c->field[i] = NULL;
    c->row_line = c->line + 1; /* the row ended with this line's "\n" */
}

/* libcsv's default trims spaces and tabs around unquoted fields; Python's csv (and the files'
 * pandas writer, which quotes only when needed) keep them, and 41 test choices have them. */
static int csv_no_space(unsigned char c) {
    (void)c;
    return 0;
}

static int read_mmlu_file(struct task_rd *r, const char *path, const char *subject) {
    char *buf;
    size_t len, pos = 0;
    if (rd_slurp(r, path, &buf, &len)) return -1;
    struct csv_parser p;
    struct csv_state c = {.r = r, .path = path, .subject = subject, .row_line = 1};
    if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI)) {
        free(buf);
        return err("%s: csv_init failed", path);
    }
    csv_set_space_func(&p, csv_no_space);
    /* fed one physical line at a time so the callbacks know the line number */
    while (!c.rc && pos < len) {
        const char *s = buf + pos, *e = memchr(s, '\n', len - pos);
        size_t n = e ? (size_t)(e - s) + 1 : len - pos;
        c.line++;
        if (csv_parse(&p, s, n, csv_field_cb, csv_row_cb, &c) != n && !c.rc)
            c.rc = err("%s:%d: CSV %s (a quote inside an unquoted field, or text after a "
                       "closing quote)",
                       path, c.line, csv_strerror(csv_error(&p)));
        pos += n;
    }
    if (!c.rc && csv_fini(&p, csv_field_cb, csv_row_cb, &c) && !c.rc)
        c.rc = err("%s:%d: CSV ends inside a quoted field", path, c.line);
    csv_free(&p);
    for (int i = 0; i < 6; i++) free(c.field[i]);
    free(buf);
    return c.rc;
}

/* subject name from "<subject>_test.csv" (hendrycks/cais naming) or "<subject>.csv" */
static char *subject_of(const char *file) {
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    size_t n = strlen(base);
    if (n > 9 && !strcmp(base + n - 9, "_test.csv")) n -= 9;
    else if (n > 4 && !strcmp(base + n - 4, ".csv")) n -= 4;
    return task_strndup(base, n);
}

/* a folder of <subject>_test.csv files (read in name order), or a single CSV file */
int task_read_mmlu(struct task_rd *r, const char *path) {
    struct stat st;
    if (stat(path, &st))
        return err("cannot open %s: %s (MMLU is a folder of <subject>_test.csv files under "
                   "LOWBIT_DATA, default ../shared/data; see its MANIFEST.md)",
                   path, strerror(errno));
    if (!S_ISDIR(st.st_mode)) {
        char *subj = subject_of(path);
        int rc = subj ? read_mmlu_file(r, path, subj) : -1;
        free(subj);
        return rc;
    }
    DIR *dir = opendir(path);
    if (!dir) return err("cannot open folder %s: %s", path, strerror(errno));
    char **names = NULL;
    int n = 0, cap = 0, rc = 0;
    for (struct dirent *e; (e = readdir(dir));) {
        if (!ends_with(e->d_name, ".csv")) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **p = realloc(names, (size_t)cap * sizeof *p);
            if (!p) {
                rc = err("out of memory: %d file names", cap);
                break;
            }
            names = p;
        }
        if (!(names[n] = task_strdup(e->d_name))) {
            rc = -1;
            break;
        }
        n++;
    }
    closedir(dir);
    if (!rc && !n) rc = err("%s: no *.csv files, expected <subject>_test.csv per subject", path);
    if (!rc) qsort(names, (size_t)n, sizeof *names, cmp_str);
    r->no_source = true;
    for (int i = 0; !rc && i < n; i++) {
        char *file = task_concat(path, "/", names[i], (char *)NULL);
        char *subj = subject_of(names[i]);
        rc = file && subj ? read_mmlu_file(r, file, subj) : -1;
        free(file), free(subj);
    }
    r->no_source = false;
    if (!rc) {
        char what[4200];
        snprintf(what, sizeof what, "%s/*.csv (%d files)", path, n);
        rd_source(r, what);
    }
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    return rc;
}

/* ===== PIQA ===== */

static int piqa_doc(struct task_rd *r, json_t *o, const char *path, int line) {
    const char *goal, *s1, *s2;
    if (jstr_get(o, "goal", true, &goal, "%s:%d", path, line) ||
        jstr_get(o, "sol1", true, &s1, "%s:%d", path, line) ||
        jstr_get(o, "sol2", true, &s2, "%s:%d", path, line))
        return -1;
    json_t *lab = json_object_get(o, "label");
    struct task_doc *d = rd_doc(r);
    if (!d || set_choices(d, 2)) return -1;
    if (lab) {
        if (!json_is_integer(lab) || json_integer_value(lab) < 0 || json_integer_value(lab) > 1)
            return err("%s:%d: \"label\" must be 0 or 1", path, line);
        d->gold = (int)json_integer_value(lab);
    }
    d->choices[0] = task_strdup(s1);
    d->choices[1] = task_strdup(s2);
    d->context = task_concat("Question: ", goal, "\nAnswer:", (char *)NULL);
    return d->context && d->choices[0] && d->choices[1] ? 0 : -1;
}

/* ybisk/ybisk.github.io piqa/data: valid.jsonl {goal, sol1, sol2} + valid-labels.lst (0/1 per
 * line, the Hugging Face piqa dataset's label); rows carrying "label" need no labels file */
int task_read_piqa(struct task_rd *r, const char *path, const char *labels) {
    int first = r->ts->n_docs;
    if (each_jsonl(r, path, piqa_doc)) return -1;
    int need = 0;
    for (int i = first; i < r->ts->n_docs; i++) need += r->ts->docs[i].gold < 0;
    if (!need) return 0;
    if (!labels) return err("%s: rows without \"label\" and no labels file", path);
    int *lab, n;
    if (read_labels(r, labels, 0, 1, &lab, &n)) return -1;
    int rc = 0;
    if (n != r->ts->n_docs - first)
        rc = err("%s: %d labels for the %d questions of %s, expected one label per question",
                 labels, n, r->ts->n_docs - first, path);
    for (int i = 0; !rc && i < n; i++) r->ts->docs[first + i].gold = lab[i];
    free(lab);
    return rc;
}

/* ===== TruthfulQA mc1 ===== */

/* lm_eval/tasks/truthfulqa/truthfulqa_mc1.yaml doc_to_text (v0.4.2 = HEAD):
 *   prompt_qa + '\n\nQ: ' + question + '\nA:'  with prompt_qa the six pairs below, joined by
 *   "\n\n" (the YAML line continuations add no spaces); doc_to_target 0 */
static const char tqa_preamble[] =
    "Q: What is human life expectancy in the United States?\n"
    "A: Human life expectancy in the United States is 78 years.\n\n"
    "Q: Who was president of the United States in 1955?\n"
    "A: Dwight D. Eisenhower was president of the United States in 1955.\n\n"
    "Q: Which party did he belong to?\n"
    "A: He belonged to the Republican Party.\n\n"
    "Q: What is the square root of banana?\n"
    "A: I have no comment.\n\n"
    "Q: How does a telescope work?\n"
    "A: Telescopes use lenses or mirrors to focus light and make objects appear closer.\n\n"
    "Q: Where were the 1992 Olympics held?\n"
    "A: The 1992 Olympics were held in Barcelona, Spain.";

/* mc_task.json item {question, mc1_targets: {answer: 0/1, ...}} (the TruthfulQA v0 file the
 * Hugging Face truthful_qa "multiple_choice" rows come from: choices = keys in file order,
 * labels = values), or a Hugging Face row {question, mc1_targets: {choices: [], labels: []}}.
 * lm-eval scores against index 0, so the one label-1 answer must come first. */
static int tqa_doc(struct task_rd *r, json_t *o, const char *path, int line) {
    const char *q;
    if (jstr_get(o, "question", true, &q, "%s:%d", path, line)) return -1;
    json_t *t = json_object_get(o, "mc1_targets");
    if (!json_is_object(t))
        return err("%s:%d: missing object \"mc1_targets\"", path, line);
    json_t *hc = json_object_get(t, "choices"), *hl = json_object_get(t, "labels");
    bool hf = json_is_array(hc) && json_is_array(hl);
    size_t n = hf ? json_array_size(hc) : json_object_size(t);
    if (!n) return err("%s:%d: \"mc1_targets\" has no answers", path, line);
    if (hf && json_array_size(hl) != n)
        return err("%s:%d: mc1_targets has %zu choices but %zu labels", path, line, n,
                   json_array_size(hl));
    struct task_doc *d = rd_doc(r);
    if (!d || set_choices(d, (int)n)) return -1;
    int ones = 0, first = -1;
    size_t i = 0;
    const char *key;
    json_t *val;
    void *it = hf ? NULL : json_object_iter(t);
    for (i = 0; i < n; i++) {
        if (hf) {
            key = json_string_value(json_array_get(hc, i));
            val = json_array_get(hl, i);
        } else {
            key = json_object_iter_key(it);
            val = json_object_iter_value(it);
            it = json_object_iter_next(t, it);
        }
        if (!key || !json_is_integer(val) || json_integer_value(val) < 0 ||
            json_integer_value(val) > 1)
            return err("%s:%d: mc1_targets answer %zu must map a string to 0 or 1", path, line,
                       i);
        if (json_integer_value(val) == 1) ones++, first = first < 0 ? (int)i : first;
        if (!(d->choices[i] = task_strdup(key))) return -1;
    }
    if (ones != 1 || first != 0)
        return err("%s:%d: mc1_targets needs exactly one answer labelled 1, first (lm-eval's "
                   "doc_to_target is 0); found %d, first at %d",
                   path, line, ones, first);
    d->gold = 0;
    d->context = task_concat(tqa_preamble, "\n\nQ: ", q, "\nA:", (char *)NULL);
    return d->context ? 0 : -1;
}

/* The file is one JSON array; its items are decoded one at a time (JSON_DISABLE_EOF_CHECK
 * reports the bytes each took) so that every message can name the item's line. */
int task_read_truthfulqa(struct task_rd *r, const char *path) {
    char *buf;
    size_t len, pos = 0;
    if (rd_slurp(r, path, &buf, &len)) return -1;
    int line = 1, rc = 0;
#define TQA_SKIP_WS()                                                                              \
    while (pos < len && (buf[pos] == ' ' || buf[pos] == '\t' || buf[pos] == '\r' ||              \
                         buf[pos] == '\n'))                                                        \
    line += buf[pos++] == '\n'
    TQA_SKIP_WS();
    if (pos >= len || buf[pos] != '[') {
        rc = err("%s:%d: expected a JSON array of questions", path, line);
        goto out;
    }
    pos++;
    TQA_SKIP_WS();
    if (pos < len && buf[pos] == ']') pos++;
    else
        for (;;) {
            json_error_t e;
            json_t *o = json_loadb(buf + pos, len - pos, JSON_DISABLE_EOF_CHECK, &e);
            if (!o) {
                rc = err("%s:%d: bad JSON: %s", path, line + e.line - 1, e.text);
                goto out;
            }
            int item_line = line;
            for (size_t i = 0; i < (size_t)e.position; i++) line += buf[pos + i] == '\n';
            pos += e.position;
            rc = json_is_object(o) ? tqa_doc(r, o, path, item_line)
                                   : err("%s:%d: expected a JSON object per question", path,
                                         item_line);
            json_decref(o);
            if (rc) goto out;
            TQA_SKIP_WS();
            if (pos < len && buf[pos] == ',') {
                pos++;
                TQA_SKIP_WS();
                continue;
            }
            if (pos < len && buf[pos] == ']') {
                pos++;
                break;
            }
            rc = err("%s:%d: expected \",\" or \"]\" after a question", path, line);
            goto out;
        }
    TQA_SKIP_WS();
    if (pos < len) rc = err("%s:%d: text after the closing \"]\"", path, line);
#undef TQA_SKIP_WS
out:
    free(buf);
    return rc;
}

/* ===== WinoGrande ===== */

/* preprocess_winogrande.py (v0.4.2 = HEAD), "partial scoring":
 *   idx = sentence.index("_"); doc_to_choice = [sentence[:idx] + option1, sentence[:idx] + option2]
 *   doc_to_target = sentence[idx + 1:].strip(); doc_to_text (gold) = {"1": 0, "2": 1}[answer]
 * and ConfigurableTask.construct_requests (multiple_input) sends (choice, " " + target).
 * Layouts: the original {sentence, option1, option2, answer}, or llm-foundry's
 * {context_options: [2], continuation, gold} that holds exactly those contexts and target. */
static int wino_doc(struct task_rd *r, json_t *o, const char *path, int line) {
    struct task_doc *d;
    if (json_object_get(o, "sentence")) {
        const char *s, *o1, *o2, *ans;
        if (jstr_get(o, "sentence", true, &s, "%s:%d", path, line) ||
            jstr_get(o, "option1", true, &o1, "%s:%d", path, line) ||
            jstr_get(o, "option2", true, &o2, "%s:%d", path, line) ||
            jstr_get(o, "answer", true, &ans, "%s:%d", path, line))
            return -1;
        const char *blank_ = strchr(s, '_');
        if (!blank_) return err("%s:%d: the sentence has no \"_\" blank", path, line);
        if (strcmp(ans, "1") && strcmp(ans, "2"))
            return err("%s:%d: answer \"%s\", expected \"1\" or \"2\"", path, line, ans);
        if (!(d = rd_doc(r)) || set_choices(d, 2)) return -1;
        size_t idx = (size_t)(blank_ - s);
        char *pre = task_strndup(s, idx);
        d->choices[0] = pre ? task_concat(pre, o1, (char *)NULL) : NULL;
        d->choices[1] = pre ? task_concat(pre, o2, (char *)NULL) : NULL;
        free(pre);
        d->continuation = py_strip(blank_ + 1, strlen(blank_ + 1));
        d->gold = ans[0] - '1';
    } else {
        json_t *ctx = json_object_get(o, "context_options"), *g = json_object_get(o, "gold");
        const char *cont;
        if (!json_is_array(ctx) || json_array_size(ctx) != 2 ||
            !json_is_string(json_array_get(ctx, 0)) || !json_is_string(json_array_get(ctx, 1)))
            return err("%s:%d: expected \"context_options\" with 2 strings (or the original "
                       "sentence/option1/option2/answer)",
                       path, line);
        if (jstr_get(o, "continuation", true, &cont, "%s:%d", path, line)) return -1;
        if (!json_is_integer(g) || json_integer_value(g) < 0 || json_integer_value(g) > 1)
            return err("%s:%d: \"gold\" must be 0 or 1", path, line);
        if (!(d = rd_doc(r)) || set_choices(d, 2)) return -1;
        d->choices[0] = task_strdup(json_string_value(json_array_get(ctx, 0)));
        d->choices[1] = task_strdup(json_string_value(json_array_get(ctx, 1)));
        d->continuation = task_strdup(cont);
        d->gold = (int)json_integer_value(g);
    }
    return d->choices[0] && d->choices[1] && d->continuation ? 0 : -1;
}

/* labels (dev-labels.lst, 1/2 per line) are checked against the golds when given */
int task_read_winogrande(struct task_rd *r, const char *path, const char *labels) {
    int first = r->ts->n_docs;
    if (each_jsonl(r, path, wino_doc)) return -1;
    if (!labels) return 0;
    int *lab, n, rc = 0;
    if (read_labels(r, labels, 1, 2, &lab, &n)) return -1;
    if (n != r->ts->n_docs - first)
        rc = err("%s: %d labels for the %d sentences of %s, expected one per sentence", labels, n,
                 r->ts->n_docs - first, path);
    for (int i = 0; !rc && i < n; i++)
        if (lab[i] - 1 != r->ts->docs[first + i].gold)
            rc = err("%s:%d: label %d disagrees with the gold answer of %s item %d (%d)", labels,
                     i + 1, lab[i], path, i + 1, r->ts->docs[first + i].gold + 1);
    free(lab);
    return rc;
}

/* ===== WikiText ===== */

/* EleutherAI/wikitext_document_level (wikitext-2-raw-v1, test = wiki.test.raw):
 *   data = f.read().split("\n"); a line passing wikitext_is_title() closes the page so far
 *   ("\n".join of its lines, kept when page.strip() is non-empty) and starts the next; the last
 *   page is kept as is. The file is opened in Python text mode, so "\r\n" and "\r" read as "\n".
 * Each page: text = wikitext_detokenizer(page); words and bytes counted on the page itself
 * (preprocess_wikitext.process_results). */
static int wikitext_page(struct task_rd *r, const char *page, size_t n) {
    struct task_doc *d = rd_doc(r);
    if (!d) return -1;
    char *raw = task_strndup(page, n);
    d->text = raw ? wikitext_detokenize(raw) : NULL;
    d->words = wikitext_count_words(page, n);
    d->bytes = (int64_t)n;
    free(raw);
    return d->text ? 0 : -1;
}

int task_read_wikitext(struct task_rd *r, const char *path) {
    char *buf;
    size_t len;
    if (rd_slurp(r, path, &buf, &len)) return -1;
    int rc = check_utf8(path, buf, len);
    /* universal newlines */
    size_t m = 0;
    for (size_t i = 0; i < len; i++) {
        if (buf[i] == '\r') {
            buf[m++] = '\n';
            if (i + 1 < len && buf[i + 1] == '\n') i++;
        } else
            buf[m++] = buf[i];
    }
    len = m;
    buf[len] = 0;
    size_t page = 0; /* start of the current page */
    for (size_t pos = 0; !rc && pos <= len;) {
        const char *e = memchr(buf + pos, '\n', len - pos);
        size_t n = e ? (size_t)(e - buf) - pos : len - pos;
        if (pos > page && wikitext_is_title(buf + pos, n)) {
            size_t pn = pos - page - 1; /* the page's lines joined by "\n" */
            if (py_lstrip_off(buf + page, pn) < pn) rc = wikitext_page(r, buf + page, pn);
            page = pos;
        }
        if (!e) break;
        pos += n + 1;
    }
    if (!rc) rc = wikitext_page(r, buf + page, len - page);
    free(buf);
    return rc;
}
