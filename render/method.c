/* render/method.c: the method class of a recipe, the taxonomy of the PTQ benchmark (Zhao et al.
 * 2025, arXiv 2502.13178): compensation (GPTQ), salience (AWQ, SmoothQuant's migration, LLM.int8's
 * fp16 outlier columns), optimization (AutoRound, OmniQuant), rotation (QuaRot, QuIP,
 * SpinQuant), to which the board adds rounding (plain RTN), codebook (AQLM), data type (the
 * formats whose grid is the method: bitsandbytes nf4 / fp4, GGUF k- and i-quants) and baseline
 * (the unquantized model).
 *
 * A recipe combining two strategies is classed by its distinctive part: QuaRot rounds with RTN
 * or GPTQ after rotating, and is "rotation"; SmoothQuant rounds with RTN after migrating the
 * activation outliers, and is "salience". */
#include <jansson.h>
#include <string.h>

#include "render/render_impl.h"

/* the knob is set: present and neither false, null nor 0 */
static bool knob_set(const json_t *knobs, const char *key) {
    const json_t *v = json_object_get(knobs, key);
    if (!v || json_is_null(v) || json_is_false(v)) return false;
    if (json_is_number(v)) return json_number_value(v) != 0;
    return true;
}

const char *lb_method_class(const char *algorithm, const char *weight_dtype, const char *knobs) {
    const char *a = algorithm ? algorithm : "", *w = weight_dtype ? weight_dtype : "";
    json_t *k = knobs && *knobs ? json_loads(knobs, JSON_DECODE_ANY, NULL) : NULL;
    const bool rotate = knob_set(k, "rotate"), smooth = knob_set(k, "smooth_alpha");
    json_decref(k);
    if (!strcmp(a, "fp")) return "baseline";
    if (!strcmp(a, "rtn")) return rotate ? "rotation" : smooth ? "salience" : "rounding";
    if (!strcmp(a, "gptq")) return rotate ? "rotation" : "compensation";
    if (!strcmp(a, "awq")) return "salience";
    if (!strcmp(a, "autoround")) return "optimization";
    if (!strcmp(a, "aqlm")) return "codebook";
    if (!strcmp(a, "bnb")) return !strcmp(w, "int8") ? "salience" : "data type";
    if (!strcmp(a, "gguf")) return "data type";
    return "other";
}

/* the classes in palette order: colour and marker k (chart_okabe_ito, chart_marker) */
static const char *const classes[] = {LB_METHOD_CLASSES};

int lb_method_class_index(const char *cls) {
    return chart_palette_index(classes, (int)LB_ARRAY_LEN(classes), cls);
}
