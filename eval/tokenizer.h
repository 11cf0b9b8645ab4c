/* eval/tokenizer.h: text <-> token ids for the tokenizers Llama-family checkpoints ship.
 *
 *  - llama2.c tokenizer.bin (i32 max_token_length, then per token: f32 score, i32 len, bytes):
 *    SentencePiece-BPE by score, as llama2.c run.c encodes (dummy prefix " ", byte fallback
 *    <0xXX> at id byte+3).
 *  - GGUF metadata, tokenizer.ggml.model "llama" (SentencePiece BPE by score, llama.cpp's
 *    llm_tokenizer_spm) or "gpt2" (byte-level BPE by merge rank with the pre-tokenizer regex).
 *  - Hugging Face tokenizer.json, model.type "BPE": SentencePiece style (Metaspace / Prepend
 *    normalizer, byte_fallback) or byte-level (ByteLevel pre-tokenizer, Split regex as in
 *    GPT-2, Llama-3, Qwen2), merges by rank.
 * A tokenizer.json's added tokens written in the text are matched (special and not, as Hugging
 * Face's added vocabulary does), its normalizers applied (NFC, NFKC, Replace, ...), and its
 * default special tokens known (post-processor, tokenizer_config.json): see README "Tokenizers".
 * tokenizer_encode adds BOS only when asked; tokenizer_encode_ex with TOK_ENCODE_SPECIAL adds
 * what Hugging Face's encode(text) adds (add_special_tokens=True). */
#ifndef EVAL_TOKENIZER_H
#define EVAL_TOKENIZER_H
#include <stdbool.h>
#include <stddef.h>

struct gguf_file;
struct tokenizer;

/* by file kind: *.json = HF tokenizer.json, *.gguf = GGUF metadata, else llama2.c tokenizer.bin.
 * A directory means DIR/tokenizer.json. -1 with a message naming the file. */
int tokenizer_load(struct tokenizer **out, const char *path);
int tokenizer_from_gguf(struct tokenizer **out, const struct gguf_file *g);
void tokenizer_free(struct tokenizer *t);

/* encode len bytes of text; *ids is owned (free()), *n_ids its length. Special tokens written in
 * the text are parsed (lm-eval's default: transformers' split_special_tokens=False); add_bos puts
 * BOS first. Text a BPE tokenizer gets must be valid UTF-8 (else -1 naming the byte). */
int tokenizer_encode(const struct tokenizer *t, const char *text, size_t len, bool add_bos,
                     int **ids, int *n_ids);
enum {
    /* the tokenizer's default special tokens around the text: Hugging Face's
     * encode(text, add_special_tokens=True) for a tokenizer.json; BOS when
     * tokenizer_add_bos_default() for llama2.c and GGUF vocabularies */
    TOK_ENCODE_SPECIAL = 1,
    /* special added tokens in the text are encoded as plain text (split_special_tokens=True) */
    TOK_ENCODE_SPLIT_SPECIAL = 2,
};
int tokenizer_encode_ex(const struct tokenizer *t, const char *text, size_t len, unsigned flags,
                        int **ids, int *n_ids);
/* the text of token id as it appears after prev (SentencePiece drops the leading space after
 * BOS; byte tokens become their byte); NUL-terminated into buf. Returns length or -1. */
int tokenizer_decode(const struct tokenizer *t, int prev, int id, char *buf, size_t size);

int tokenizer_vocab_size(const struct tokenizer *t);
int tokenizer_bos(const struct tokenizer *t); /* -1 when none */
int tokenizer_eos(const struct tokenizer *t);
/* true when the tokenizer's default special tokens start with BOS (tokenizer.json: its
 * post-processor / tokenizer_config.json, as transformers builds them; GGUF:
 * tokenizer.ggml.add_bos_token, default yes for SentencePiece; llama2.c: yes) */
bool tokenizer_add_bos_default(const struct tokenizer *t);
/* "llama2c", "spm", "bpe" */
const char *tokenizer_kind(const struct tokenizer *t);
#endif
