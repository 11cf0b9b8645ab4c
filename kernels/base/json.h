/* kernels/base/json.h: the few accessors over jansson that the tree uses, one meaning each.
 *
 *   jstr(o, key)              the string member, borrowed from o; NULL when absent or not a string
 *   jstr_get(o, key, req, &s, "%s:%d", path, line)
 *                             the same, checked: -1 with a message naming the member and the
 *                             context (formatted only on error) when it is absent (req), not a
 *                             string, or holds a NUL; absent or null and not req: s = NULL, 0
 *   jnew_str(s)               a new JSON string of s, json_null() for NULL
 *
 * The file that includes this header links jansson (pkg-config jansson). */
#ifndef KERNELS_BASE_JSON_H
#define KERNELS_BASE_JSON_H
#include <stdbool.h>

#include <jansson.h>

#include "kernels/base/err.h"

const char *jstr(const json_t *o, const char *key);
int jstr_get(const json_t *o, const char *key, bool required, const char **out, const char *ctx,
             ...) LB_PRINTF(5, 6);
json_t *jnew_str(const char *s);
#endif
