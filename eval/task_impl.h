/* eval/task_impl.h: helpers shared by eval/task.c, task_data.c, task_text.c, task_metrics.c.
 * Not a public interface: everything outside eval/task*.c goes through eval/task.h.
 *
 * Strings are UTF-8. "py_" functions reproduce the Python str operation of the same name on
 * code points, because lm-eval defines its prompts with Python (str.strip, str.replace, re). */
#ifndef EVAL_TASK_IMPL_H
#define EVAL_TASK_IMPL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/base/sha256.h"
#include "kernels/base/strbuf.h"
#include "eval/task.h"

/* owned copies (free()); NULL with a message when out of memory */
char *task_strndup(const char *s, size_t n);
char *task_strdup(const char *s);
/* concatenation of the NULL-terminated list of strings, owned */
char *task_concat(const char *first, ...);

/* ===== Python str semantics on UTF-8 ===== */
/* bytes of the whitespace character (str.isspace / re \s) starting at s[i], 0 when not one */
size_t py_space_at(const char *s, size_t n, size_t i);
/* len(s.rstrip()) and the offset of s.lstrip(), in bytes */
size_t py_rstrip_len(const char *s, size_t n);
size_t py_lstrip_off(const char *s, size_t n);
/* s.strip(), owned */
char *py_strip(const char *s, size_t n);
/* s.replace(old, new), owned (old non-empty) */
char *py_replace(const char *s, const char *old, const char *new_);
/* len(s) of a Python str: number of code points of valid UTF-8 */
size_t utf8_chars(const char *s, size_t n);
/* offset of the first byte that is not valid UTF-8 (n when all valid) */
size_t utf8_check(const char *s, size_t n);

/* ===== lm-eval text transforms (task_text.c; sources cited there) ===== */
char *wikitext_detokenize(const char *page);              /* preprocess_wikitext.py */
int64_t wikitext_count_words(const char *page, size_t n); /* len(re.split(r"\s+", page)) */
bool wikitext_is_title(const char *line, size_t n);       /* wikitext_document_level page start */
char *hellaswag_preprocess(const char *text, size_t n);   /* hellaswag/utils.py preprocess() */
char *py_capitalize(const char *s, size_t n);             /* str.capitalize(), ASCII letters */
/* llama.cpp layout line "label: ctx" -> lm-eval query (capitalized ctx_b recovered) */
char *hellaswag_query_from_line(const char *line, size_t n);
/* llama.cpp layout ending -> lm-eval choice (the layout already preprocessed it) */
char *hellaswag_ending_from_line(const char *line, size_t n);

/* ===== reading ===== */
struct task_rd {
    struct task_set *ts;
    struct sha256 sha; /* of every byte read, in reading order */
    int cap;           /* docs allocated */
    bool no_source;    /* don't list files in ts->source (MMLU lists its folder instead) */
    const char *data_dir; /* the default files' LOWBIT_DATA, listed as "$LOWBIT_DATA/..." (the
                             published pages name no machine's paths); NULL: a user's file */
};
/* read a whole file (NUL-terminated), hash it and list it in ts->source. A missing default file
 * says which variable to set. */
int rd_slurp(struct task_rd *r, const char *path, char **buf, size_t *len);
void rd_source(struct task_rd *r, const char *what);
/* a zeroed document appended to ts (gold = -1); NULL when out of memory */
struct task_doc *rd_doc(struct task_rd *r);

/* the readers; path is the file (or MMLU folder) to read; aux an optional second file */
int task_read_arc(struct task_rd *r, const char *path);
int task_read_boolq(struct task_rd *r, const char *path);
int task_read_hellaswag(struct task_rd *r, const char *path);
int task_read_lambada(struct task_rd *r, const char *path);
int task_read_mmlu(struct task_rd *r, const char *path);
int task_read_openbookqa(struct task_rd *r, const char *path);
int task_read_piqa(struct task_rd *r, const char *path, const char *labels);
int task_read_truthfulqa(struct task_rd *r, const char *path);
int task_read_winogrande(struct task_rd *r, const char *path, const char *labels);
int task_read_wikitext(struct task_rd *r, const char *path);

/* MMLU: "The following are multiple choice questions (with answers) about <subject>." + sep */
extern const char *const task_mmlu_desc_sep;
/* MMLU subject -> lm-eval group index (0 stem, 1 other, 2 social_sciences, 3 humanities), -1 */
int task_mmlu_category(const char *subject);

/* lm-eval's bootstrap stderr of the "perplexity" aggregation (see task_metrics.c) */
double task_bootstrap_perplexity_stderr(const double *ll, int n, int iters);
#endif
