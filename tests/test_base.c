/* tests/test_base.c: the base layer (kernels/base/): strbuf, the file helpers, the JSON accessors,
 * the hash set, SHA-256 of files, and gen's pipe_path refusing a path it would cut.
 * Expected values are worked out by hand or come from an independent tool (sha256sum's digest
 * of "abc" from FIPS 180-2). */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "gen/pipeline.h"
#include "kernels/base/base.h"
#include "kernels/base/hash.h"
#include "kernels/base/json.h"
#include "kernels/base/sha256.h"
#include "tests/t.h"

static char scratch[256];

static void test_strbuf(void) {
    struct strbuf sb = STRBUF_INIT;
    T_EQ_STR(strbuf_str(&sb), "");
    strbuf_addstr(&sb, "abc");
    strbuf_addch(&sb, '/');
    strbuf_addf(&sb, "%d-%s", 42, "x");
    T_EQ_STR(sb.buf, "abc/42-x");
    T_EQ_INT(sb.len, 8);
    /* a formatted piece longer than the first allocation (64 bytes) is not cut */
    char big[300];
    memset(big, 'y', sizeof big - 1);
    big[sizeof big - 1] = 0;
    strbuf_addf(&sb, "[%s]", big);
    T_EQ_INT(sb.len, 8 + 2 + 299);
    T_OK(sb.buf[sb.len - 1] == ']' && sb.buf[sb.len] == 0);
    strbuf_setlen(&sb, 3);
    T_EQ_STR(sb.buf, "abc");
    char *s = strbuf_detach(&sb);
    T_EQ_STR(s, "abc");
    T_OK(!sb.buf && !sb.len && !sb.alloc);
    free(s);
    /* detached without an append: "" (owned), not NULL */
    s = strbuf_detach(&sb);
    T_EQ_STR(s, "");
    free(s);
    /* out of memory is sticky: later appends are no-ops, detach gives NULL */
    sb.oom = true;
    strbuf_addstr(&sb, "lost");
    T_OK(!sb.buf);
    T_OK(!strbuf_detach(&sb));
    strbuf_release(&sb);

    char *f = xstrfmt("%s/%s.json", "out/results", "k");
    T_EQ_STR(f, "out/results/k.json");
    free(f);
}

static void test_strings(void) {
    T_OK(ends_with("model.gguf", ".gguf"));
    T_OK(ends_with(".gguf", ".gguf"));
    T_OK(!ends_with("gguf", ".gguf"));
    T_OK(ends_with("x", ""));
    T_OK(starts_with("kernels/base/x.h", "kernels/"));
    T_OK(!starts_with("kern", "kernels/"));
    const char *v[] = {"q4_k", "f16", "aqlm", "Q8_0"};
    qsort(v, 4, sizeof *v, cmp_str);
    T_EQ_STR(v[0], "Q8_0"); /* strcmp order: upper case first */
    T_EQ_STR(v[1], "aqlm");
    T_EQ_STR(v[3], "q4_k");
    char *d = xstrndup("abcdef", 3, "a test string");
    T_EQ_STR(d, "abc");
    free(d);
}

static void test_files(void) {
    char *dir = xstrfmt("%s/a/b/c", scratch);
    T_OK(!mkdir_p(dir));
    T_OK(!mkdir_p(dir)); /* already there: fine */
    struct stat st;
    T_OK(!stat(dir, &st) && S_ISDIR(st.st_mode));

    /* write_file_atomic: the whole content, no temporary file left */
    char *f1 = xstrfmt("%s/a/one.txt", scratch), *f2 = xstrfmt("%s/a/b/c/two.bin", scratch);
    T_OK(!write_file_atomic(f1, "hello\n", 6));
    T_OK(!write_file_atomic(f2, "0123456789", 10));
    T_OK(!write_file_atomic(f1, "hello, world\n", 13)); /* replaced whole */
    char *text = NULL;
    size_t len = 0;
    T_OK(!read_file_all(f1, "test file", &text, &len));
    T_EQ_INT(len, 13);
    T_EQ_STR(text, "hello, world\n");
    free(text);
    char *a = xstrfmt("%s/a", scratch), *tmpf = xstrfmt("%s.tmp.%ld", f1, (long)getpid());
    T_OK(access(tmpf, F_OK) && errno == ENOENT);
    /* a symbolic link is not followed (its target's bytes would count twice) */
    char *ln = xstrfmt("%s/a/link", scratch);
    T_OK(!symlink(f2, ln));

    /* path_bytes: a file, a tree (13 + 10), something missing */
    T_EQ_INT(path_bytes(f1), 13);
    T_EQ_INT(path_bytes(a), 23);
    char *none = xstrfmt("%s/none", scratch);
    T_EQ_INT(path_bytes(none), -1);

    /* write_file_atomic into a directory that is not there: an error naming the path */
    char *bad = xstrfmt("%s/none/x", scratch);
    err_set_quiet(true);
    T_ERR(write_file_atomic(bad, "x", 1));
    T_CONTAINS(err_last(), "none/x");
    T_ERR(read_file_all(none, "test file", &text, &len));
    T_CONTAINS(err_last(), "cannot open");
    err_set_quiet(false);

    T_OK(!rm_tree(a));
    T_OK(access(a, F_OK) && errno == ENOENT);
    free(dir), free(f1), free(f2), free(a), free(tmpf), free(ln), free(none), free(bad);
}

static void test_json(void) {
    json_error_t je;
    json_t *o = json_loads("{\"s\": \"text\", \"n\": 3, \"z\": null, \"nul\": \"a\\u0000b\"}",
                           JSON_ALLOW_NUL, &je);
    T_OK(o);
    T_EQ_STR(jstr(o, "s"), "text");
    T_OK(!jstr(o, "n") && !jstr(o, "z") && !jstr(o, "absent"));
    const char *s = "unset";
    T_OK(!jstr_get(o, "s", true, &s, "f.jsonl:%d", 7));
    T_EQ_STR(s, "text");
    T_OK(!jstr_get(o, "z", false, &s, "f.jsonl:%d", 7) && !s); /* null, optional */
    T_OK(!jstr_get(o, "absent", false, &s, "f.jsonl:%d", 7) && !s);
    err_set_quiet(true);
    T_ERR(jstr_get(o, "absent", true, &s, "f.jsonl:%d", 7));
    T_EQ_STR(err_last(), "f.jsonl:7: missing field \"absent\", expected a string");
    T_ERR(jstr_get(o, "n", true, &s, "f.jsonl:%d", 8));
    T_EQ_STR(err_last(), "f.jsonl:8: non-string field \"n\", expected a string");
    T_ERR(jstr_get(o, "nul", false, &s, "%s", "spec"));
    T_EQ_STR(err_last(), "spec: field \"nul\" holds a NUL character");
    err_set_quiet(false);
    json_t *j = jnew_str("x"), *nul = jnew_str(NULL);
    T_OK(json_is_string(j) && json_is_null(nul));
    json_decref(j);
    json_decref(nul);
    json_decref(o);
}

static void test_hash(void) {
    /* FNV-1a 64 of "a" from FNV1A64_INIT, computed apart with Python's integers:
     * ((1469598103934665603 ^ 0x61) * 1099511628211) mod 2^64; with FNV's own offset basis the
     * published vector 0xaf63dc4c8601ec8c */
    T_OK(fnv1a64(FNV1A64_INIT, "a", 1) == 0x44bd8ad473cd9906ull);
    T_OK(fnv1a64(14695981039346656037ull, "a", 1) == 0xaf63dc4c8601ec8cull);
    struct u64set s = U64SET_INIT;
    T_OK(!u64set_has(&s, 5));
    for (uint64_t k = 0; k < 20000; k++) T_OK(!u64set_add(&s, k * 7919)); /* grows past 4096 */
    T_EQ_INT(s.n, 20000); /* 0 is kept as 1, which no other k * 7919 is */
    T_OK(u64set_has(&s, 7919 * 123) && u64set_has(&s, 0) && u64set_has(&s, 1));
    T_OK(!u64set_has(&s, 7919 * 20000) && !u64set_has(&s, 2));
    u64set_release(&s);

    char *f = xstrfmt("%s/abc", scratch), hex[65];
    T_OK(!write_file_atomic(f, "abc", 3));
    T_OK(!sha256_file_hex(f, hex));
    T_EQ_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    sha256_hex_of("abc", 3, hex);
    T_EQ_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    free(f);
}

/* pipe_path: a path that does not fit is refused, never cut short */
static void test_pipe_path(void) {
    char buf[64];
    T_OK(!pipe_path(buf, sizeof buf, "out", "results", "k", ".json"));
    T_EQ_STR(buf, "out/results/k.json");
    T_OK(!pipe_path(buf, sizeof buf, "out", "lowbit.db", NULL, NULL));
    T_EQ_STR(buf, "out/lowbit.db");
    char key[65];
    memset(key, 'a', 64);
    key[64] = 0;
    err_set_quiet(true);
    T_ERR(pipe_path(buf, sizeof buf, "out", "results", key, ".json"));
    T_EQ_STR(buf, ""); /* never a prefix of the path, which would name another file */
    T_CONTAINS(err_last(), "a path of 81 bytes; lowbit takes at most 63 here");
    err_set_quiet(false);
}

int main(void) {
    snprintf(scratch, sizeof scratch, "out/test_base.%ld", (long)getpid());
    if (mkdir_p(scratch)) return 1;
    T_RUN(test_strbuf);
    T_RUN(test_strings);
    T_RUN(test_files);
    T_RUN(test_json);
    T_RUN(test_hash);
    T_RUN(test_pipe_path);
    if (!t_failed) rm_tree(scratch);
    return T_DONE();
}
