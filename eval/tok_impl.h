/* eval/tok_impl.h: what tokenizer.c, tok_spm.c and tok_bpe.c share (not a public interface).
 *
 * One struct tokenizer serves every format. The vocabulary is an id-indexed table of pieces (bytes,
 * as the format stores them: llama2.c pieces carry ' ', SentencePiece pieces in GGUF and
 * tokenizer.json carry U+2581, byte-level pieces carry the GPT-2 byte map) with one hash table
 * from piece text to id. tok_spm.c merges by score (llama2.c, llama.cpp llm_tokenizer_spm);
 * tok_bpe.c merges by rank (Hugging Face tokenizers' BPE model, llama.cpp llm_tokenizer_bpe) after
 * the normalizer / pre-tokenizer pipeline of a tokenizer.json or of a GGUF "gpt2" vocab. */
#ifndef EVAL_TOK_IMPL_H
#define EVAL_TOK_IMPL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "eval/tokenizer.h"

enum tok_kind { TOK_KIND_LLAMA2C, TOK_KIND_SPM, TOK_KIND_BPE, TOK_KIND_COUNT };

/* token types, numbered as GGUF tokenizer.ggml.token_type (llama.cpp llama_token_type) */
enum tok_type {
    TOK_TYPE_UNDEFINED = 0,
    TOK_TYPE_NORMAL = 1,
    TOK_TYPE_UNKNOWN = 2,
    TOK_TYPE_CONTROL = 3,
    TOK_TYPE_USER = 4,
    TOK_TYPE_UNUSED = 5,
    TOK_TYPE_BYTE = 6,
};

/* piece text -> id: open addressing over slots holding ids (-1 empty); keys are the pieces */
struct tok_strmap {
    int32_t *slot;
    size_t mask; /* capacity - 1, capacity a power of two */
};

/* (left id, right id) -> merge rank and merged id, open addressing (key UINT64_MAX = empty) */
struct tok_pairmap {
    uint64_t *key;
    int32_t *rank, *merged;
    size_t mask, n;
};

/* one growing id list */
struct tok_ids {
    int *v;
    size_t n, cap;
};

struct tok_pipe;  /* tok_bpe.c: normalizers and pre-tokenizers */
struct tok_added; /* tok_added.c: a tokenizer.json's added tokens and their matchers */

/* decoding style (how pieces become text) */
enum tok_dec { TOK_DEC_RAW, TOK_DEC_METASPACE, TOK_DEC_BYTELEVEL };

struct tokenizer {
    enum tok_kind kind;
    int n_vocab;
    char *arena;     /* every piece, NUL-terminated */
    size_t *off;     /* piece i starts at arena + off[i] */
    int32_t *len;    /* its length in bytes; -1 for an id no token uses (tokenizer.json gaps) */
    float *score;    /* SentencePiece scores (0 when the format has none) */
    uint8_t *type;   /* enum tok_type */
    struct tok_strmap map;
    /* bit a*256+b set when bytes a, b are adjacent inside some piece: a merge can join two symbols
     * only if the last byte of the left and the first of the right are such a pair, so where
     * they are not, the text falls apart into pieces that are encoded independently */
    uint64_t joinable[65536 / 64];
    int byte_id[256]; /* id of piece "<0xXX>", -1 when absent */
    int bos, eos, unk;
    bool add_bos_default;
    bool add_space_prefix; /* TOK_KIND_SPM: prefix U+2581 to the text */
    enum tok_dec dec;
    bool dec_strip_after_bos; /* drop the leading space of the piece that follows BOS */
    /* TOK_KIND_BPE */
    struct tok_pairmap merges;
    bool byte_fallback, fuse_unk, ignore_merges;
    struct tok_pipe *pipe; /* NULL: the whole text is one word */
    struct tok_added *added; /* NULL: no added token is matched in the text */
    /* the default special tokens (TOK_ENCODE_SPECIAL): sp_pre ids before the text, sp_post after
     * (tokenizer.json: its post-processor or tokenizer_config.json, see tok_added.c); has_sp false:
     * BOS when add_bos_default (llama2.c, GGUF) */
    bool has_sp;
    int *sp_pre, *sp_post, n_sp_pre, n_sp_post;
};

/* --- tokenizer.c: vocabulary and helpers --- */
uint64_t tok_hash(const char *s, size_t n);
/* id of the piece equal to s[0..n), -1 when none */
int tok_lookup(const struct tokenizer *t, const char *s, size_t n);
static inline const char *tok_piece(const struct tokenizer *t, int id) {
    return t->arena + t->off[id];
}
/* allocate the per-id tables for n tokens and an arena of arena_size bytes (pieces are then
 * written with tok_set_piece in id order or any order); -1 with a message */
int tok_vocab_alloc(struct tokenizer *t, int n, size_t arena_size);
/* copy piece id (arena space is taken in call order; the caller sized the arena) */
void tok_set_piece(struct tokenizer *t, size_t *arena_used, int id, const char *s, size_t n);
/* build t->map (later ids win on duplicate pieces, as llama.cpp's token_to_id) and byte_id[];
 * only ids with include[id] (NULL: all) go into the map */
int tok_vocab_index(struct tokenizer *t, const bool *include);
int tok_ids_push(struct tok_ids *v, int id);
static inline bool tok_joinable(const struct tokenizer *t, unsigned char a, unsigned char b) {
    unsigned k = (unsigned)a << 8 | b;
    return t->joinable[k >> 6] >> (k & 63) & 1;
}
/* bytes of the UTF-8 sequence starting with lead byte c, as llama.cpp unicode_len_utf8 (1 for a
 * stray continuation byte, 4 for 0xF8..0xFF) */
size_t tok_utf8_len(unsigned char c);
/* length of the valid UTF-8 prefix of s[0..n) (== n when the whole text is valid) */
size_t tok_utf8_valid(const char *s, size_t n);

/* --- tok_spm.c --- */
/* SentencePiece-BPE by score: llama2.c encode (TOK_KIND_LLAMA2C) or llama.cpp
 * llm_tokenizer_spm (TOK_KIND_SPM); appends to out */
int tok_spm_encode(const struct tokenizer *t, const char *text, size_t len, struct tok_ids *out);

/* --- tok_bpe.c --- */
/* split_special: special added tokens in the text are plain text (HF split_special_tokens) */
int tok_bpe_encode(const struct tokenizer *t, const char *text, size_t len, bool split_special,
                   struct tok_ids *out);
/* run the normalizers of t->pipe on s[0..n): *out (malloc'ed, NUL-terminated), *n_out */
int tok_normalize(const struct tokenizer *t, const char *s, size_t n, char **out, size_t *n_out);
bool tok_has_normalizer(const struct tokenizer *t);
/* load a Hugging Face tokenizer.json into t (zeroed, kind set by the loader); -1 with a message */
int tok_hf_load(struct tokenizer *t, const char *path);
/* a GGUF "gpt2" vocab's pre-tokenizer, by tokenizer.ggml.pre name ("" = default GPT-2 regex) */
int tok_pipe_for_gguf_pre(struct tokenizer *t, const char *pre, const char *path);
/* add merge (a, b) -> merged with the given rank (first occurrence of a pair wins) */
int tok_merge_add(struct tokenizer *t, int a, int b, int merged, int rank);
void tok_pipe_free(struct tok_pipe *p);
/* GPT-2 bytes_to_unicode: the codepoint byte b stands for (printable Latin-1 bytes stand for
 * themselves, the other 68 for U+0100.. in byte order), and its inverse (-1 outside the map) */
uint32_t tok_byte_to_unicode(unsigned b);
int tok_unicode_to_byte(uint32_t cp);

/* --- tok_added.c --- */
struct json_t; /* jansson's json_t */
/* t->added from root's "added_tokens" (after the normalizers are parsed: a token with
 * "normalized" is matched in the normalized text) */
int tok_added_init(struct tokenizer *t, const struct json_t *root, const char *path);
void tok_added_free(struct tok_added *a);
/* one piece of a text cut at added tokens: bytes [a, b), id of the added token or -1 for text */
struct tok_seg {
    size_t a, b;
    int id;
};
/* cut s[0..n) at the added tokens of one matcher (normalized = false: tokens matched in the raw
 * text; true: in the normalized text), leftmost-longest, lstrip/rstrip/single_word applied;
 * specials skipped when split_special. *seg is grown as needed (*cap its capacity). */
int tok_added_split(const struct tokenizer *t, bool normalized, bool split_special, const char *s,
                    size_t n, struct tok_seg **seg, size_t *n_seg, size_t *cap);
/* Rust char::is_whitespace: the White_Space property (Zs, Zl, Zp, U+0009..U+000D, U+0085) */
bool tok_is_space(int32_t cp);
/* true when the matcher of that kind has tokens */
bool tok_added_any(const struct tokenizer *t, bool normalized);
/* BOS, EOS and the default special tokens of a tokenizer.json from its post_processor and the
 * tokenizer_config.json beside it (see tok_added.c) */
int tok_specials_init(struct tokenizer *t, const struct json_t *root, const char *path);
#endif
