/* kernels/base/json.c: see json.h */
#include "kernels/base/json.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *jstr(const json_t *o, const char *key) {
    return json_string_value(json_object_get(o, key));
}

int jstr_get(const json_t *o, const char *key, bool required, const char **out, const char *ctx,
             ...) {
    const json_t *v = json_object_get(o, key);
    *out = NULL;
    if (json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v)) {
        *out = json_string_value(v);
        return 0;
    }
    if (!required && (!v || json_is_null(v))) return 0;
    char where[512];
    va_list ap;
    va_start(ap, ctx);
    vsnprintf(where, sizeof where, ctx, ap);
    va_end(ap);
    if (json_is_string(v)) return err("%s: field \"%s\" holds a NUL character", where, key);
    return err("%s: %s \"%s\", expected a string", where, v ? "non-string field" : "missing field",
               key);
}

json_t *jnew_str(const char *s) { return s ? json_string(s) : json_null(); }
