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
 * The encoder never adds BOS by itself: callers pass add_bos. */
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

/* encode len bytes of text; *ids is owned (free()), *n_ids its length */
int tokenizer_encode(const struct tokenizer *t, const char *text, size_t len, bool add_bos,
                     int **ids, int *n_ids);
/* the text of token id as it appears after prev (SentencePiece drops the leading space after
 * BOS; byte tokens become their byte); NUL-terminated into buf. Returns length or -1. */
int tokenizer_decode(const struct tokenizer *t, int prev, int id, char *buf, size_t size);

int tokenizer_vocab_size(const struct tokenizer *t);
int tokenizer_bos(const struct tokenizer *t); /* -1 when none */
int tokenizer_eos(const struct tokenizer *t);
/* true when the model family expects BOS at the start (SentencePiece Llama: yes) */
bool tokenizer_add_bos_default(const struct tokenizer *t);
/* "llama2c", "spm", "bpe" */
const char *tokenizer_kind(const struct tokenizer *t);
#endif
