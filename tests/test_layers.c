/* tests/test_layers.c: the layering of the tree, checked on every #include "..." in it.
 *
 *   base (kernels/base/) <- kernels/ <- eval/ <- quant/ <- gen/
 *   render/ uses kernels/base/ and SQL only (gen/ may include render/)
 *   tests/ may include anything
 *
 * A file may include its own layer and the layers below it, never one above. Each violation is
 * one line, "FILE:LINE includes "X", which is above it (...)", and fails the test; the test runs
 * from the top of the repository (make test does), or from LOWBIT_SRC when that is set.
 * ARCHITECTURE.md says what each layer owns. */
#include <dirent.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>

#include "kernels/base/base.h"
#include "tests/t.h"

enum layer { L_BASE, L_KERNELS, L_EVAL, L_QUANT, L_GEN, L_RENDER, L_TESTS, L_NONE };

/* longest prefix first: kernels/base/ before kernels/ */
static const struct {
    const char *dir;
    enum layer layer;
} layer_dirs[] = {
    {"kernels/base/", L_BASE}, {"kernels/", L_KERNELS}, {"eval/", L_EVAL},   {"quant/", L_QUANT},
    {"gen/", L_GEN},           {"render/", L_RENDER},   {"tests/", L_TESTS},
};
static const char *const layer_name[] = {"kernels/base", "kernels", "eval", "quant",
                                         "gen",          "render",  "tests", "outside the layers"};

static enum layer layer_of(const char *path) {
    for (size_t i = 0; i < LB_ARRAY_LEN(layer_dirs); i++)
        if (starts_with(path, layer_dirs[i].dir)) return layer_dirs[i].layer;
    return L_NONE;
}

/* NULL when file (a path from the top of the tree) may include inc as written in its #include
 * "...", else why not (in buf). A name without a directory is found beside the file (the
 * compiler looks there first): the file's own layer. */
static const char *why_not(const char *file, const char *inc, char *buf, size_t size) {
    const enum layer from = layer_of(file);
    const enum layer to = strchr(inc, '/') ? layer_of(inc) : from;
    if (from == L_TESTS || to == from) return NULL;
    if (from == L_RENDER) {
        if (to == L_BASE) return NULL;
        snprintf(buf, size, "render uses kernels/base and SQL only, not %s", layer_name[to]);
        return buf;
    }
    if (to == L_RENDER) {
        if (from == L_GEN) return NULL;
        snprintf(buf, size, "only gen and tests use render, not %s", layer_name[from]);
        return buf;
    }
    if (from == L_NONE || to == L_NONE || to == L_TESTS) {
        snprintf(buf, size, "%s may not include %s", layer_name[from], layer_name[to]);
        return buf;
    }
    if (to < from) return NULL;
    snprintf(buf, size, "which is above it (%s is below %s)", layer_name[from], layer_name[to]);
    return buf;
}

/* every #include "X" of the file at path: each violation printed and counted */
static int check_file(const char *path, int *n_includes) {
    char *text;
    size_t len;
    if (read_file_all(path, "source file", &text, &len)) {
        T_FAIL_("%s: %s", path, err_last());
        return 1;
    }
    int bad = 0, line = 1;
    for (char *p = text; *p; line++) {
        char *eol = strchr(p, '\n');
        if (eol) *eol = 0;
        const char *s = p + strspn(p, " \t");
        if (*s == '#') {
            s += 1 + strspn(s + 1, " \t");
            if (starts_with(s, "include")) {
                s += 7 + strspn(s + 7, " \t");
                const char *q = *s == '"' ? strchr(s + 1, '"') : NULL;
                if (q) {
                    char inc[512], why[256];
                    snprintf(inc, sizeof inc, "%.*s", (int)(q - s - 1), s + 1);
                    ++*n_includes;
                    if (why_not(path, inc, why, sizeof why)) {
                        fprintf(stderr, "%s:%d includes \"%s\", %s\n", path, line, inc, why);
                        bad++;
                    }
                }
            }
        }
        if (!eol) break;
        p = eol + 1;
    }
    free(text);
    return bad;
}

/* the .c, .h and .inc files under dir, recursively, in name order (stable output) */
static int check_dir(const char *dir, int *n_files, int *n_includes) {
    struct dirent **names;
    const int n = scandir(dir, &names, NULL, alphasort);
    if (n < 0) {
        T_FAIL_("%s: cannot read the directory (run from the top of the repository)", dir);
        return 1;
    }
    int bad = 0;
    for (int i = 0; i < n; i++) {
        const char *name = names[i]->d_name;
        char *path = name[0] == '.' ? NULL : xstrfmt("%s/%s", dir, name);
        struct stat st;
        if (path && !lstat(path, &st)) {
            if (S_ISDIR(st.st_mode)) bad += check_dir(path, n_files, n_includes);
            else if (S_ISREG(st.st_mode) &&
                     (ends_with(name, ".c") || ends_with(name, ".h") || ends_with(name, ".inc"))) {
                ++*n_files;
                bad += check_file(path, n_includes);
            }
        }
        free(path);
        free(names[i]);
    }
    free(names);
    return bad;
}

/* the rule itself, on cases whose answer is known */
static void test_rule(void) {
    char why[256];
    /* down or sideways: allowed */
    T_OK(!why_not("kernels/dtype.c", "kernels/base/err.h", why, sizeof why));
    T_OK(!why_not("kernels/matmul.c", "kernels/dtype.h", why, sizeof why));
    T_OK(!why_not("kernels/attention.c", "attention_impl.inc", why, sizeof why));
    T_OK(!why_not("eval/forward.c", "kernels/matmul.h", why, sizeof why));
    T_OK(!why_not("quant/gptq.c", "eval/forward.h", why, sizeof why));
    T_OK(!why_not("gen/job.c", "quant/quant.h", why, sizeof why));
    T_OK(!why_not("gen/cmd_render.c", "render/render.h", why, sizeof why));
    T_OK(!why_not("render/site.c", "kernels/base/base.h", why, sizeof why));
    T_OK(!why_not("tests/test_render.c", "kernels/common.h", why, sizeof why));
    T_OK(!why_not("tests/fuzz/fuzz_gguf.c", "gen/pipeline.h", why, sizeof why));
    /* up: refused, with the reason */
    T_CONTAINS(why_not("kernels/dtype.c", "quant/ggml_quants.h", why, sizeof why),
               "which is above it (kernels is below quant)");
    T_CONTAINS(why_not("kernels/base/fs.c", "kernels/common.h", why, sizeof why),
               "(kernels/base is below kernels)");
    T_CONTAINS(why_not("eval/model.c", "gen/pipeline.h", why, sizeof why), "eval is below gen");
    T_CONTAINS(why_not("render/site.c", "kernels/common.h", why, sizeof why),
               "render uses kernels/base and SQL only, not kernels");
    T_CONTAINS(why_not("render/data.c", "gen/pipeline.h", why, sizeof why), "not gen");
    T_CONTAINS(why_not("quant/rtn.c", "render/render.h", why, sizeof why),
               "only gen and tests use render, not quant");
    T_CONTAINS(why_not("gen/run.c", "tests/t.h", why, sizeof why), "gen may not include tests");
}

/* the tree as it is: no violation */
static void test_tree(void) {
    const char *src = getenv("LOWBIT_SRC");
    if (src && *src && chdir(src)) T_FAIL_("LOWBIT_SRC=%s: cannot enter", src);
    static const char *const dirs[] = {"kernels", "eval", "quant", "gen", "render", "tests"};
    int bad = 0, n_files = 0, n_includes = 0;
    for (size_t i = 0; i < LB_ARRAY_LEN(dirs); i++)
        bad += check_dir(dirs[i], &n_files, &n_includes);
    printf("  layers: %d files, %d #include \"...\" lines, %d upward\n", n_files, n_includes, bad);
    T_EQ_INT(bad, 0);
    T_OK(n_files > 100); /* the whole tree was read, not an empty directory */
    T_OK(n_includes > 300);
}

int main(void) {
    T_RUN(test_rule);
    T_RUN(test_tree);
    return T_DONE();
}
