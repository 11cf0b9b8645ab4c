/* gen/text.h: text from files and from the environment, before it reaches JSON, SQLite or HTML.
 *
 * lowbit's text is UTF-8 without NUL and without the control characters XML cannot carry: every
 * text field of models.csv, recipes.csv, curve.csv, an imported results file or a result file is
 * checked with text_problem() where it is read, and refused with its location (file, row,
 * column or JSON member, byte offset) when it is not such text. So every string in the database
 * goes to the site's HTML, JSON and CSV byte for byte.
 *
 * Text lowbit does not choose, and cannot refuse, is converted instead (text_clean, text_json):
 * error messages (which quote file contents and paths), the tail of a job's log, host names.
 * Invalid bytes and forbidden control characters become U+FFFD there. */
#ifndef GEN_TEXT_H
#define GEN_TEXT_H
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* the code point of the UTF-8 sequence at s (n > 0 bytes left) in *cp and its length, or 0 when
 * it is invalid: a stray continuation byte, an overlong form, a surrogate, above U+10FFFF, or cut
 * short by the end */
int text_utf8_next(const unsigned char *s, size_t n, uint32_t *cp);

/* NULL when the n bytes at s are text lowbit accepts in a field: valid UTF-8, no NUL, no control
 * character other than tab, line feed and carriage return, no U+FFFE/U+FFFF (the characters XML
 * 1.0 cannot hold). Otherwise what is wrong ("0xe9 is not UTF-8", "a NUL byte", "the control
 * character U+001B"), in a static buffer, and *off = the offset of the first offending byte. */
const char *text_problem(const char *s, size_t n, size_t *off);

/* s (n bytes) as text: invalid bytes and forbidden characters become U+FFFD. Returns owned memory
 * (free), NULL when out of memory. */
char *text_clean(const char *s, size_t n);

/* a JSON string of text_clean(s) (for messages, logs, paths lowbit did not choose); json_null()
 * for NULL. NULL only when out of memory. */
json_t *text_json(const char *s);

/* the largest length <= max at which s (NUL-terminated) can be cut without splitting a UTF-8
 * sequence (a shorter string is returned whole: its strlen) */
size_t text_cut(const char *s, size_t max);

/* printf into owned memory (free); NULL when out of memory. No fixed buffer, so nothing is cut. */
char *text_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#endif
