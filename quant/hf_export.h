/* quant/hf_export.h: writing a Hugging Face model directory for a quantized checkpoint: the part
 * every ecosystem writer (quant/gptq_format.c, awq_format.c, bnb_format.c) shares.
 *
 * Directory written (each file to FILE.tmp, then renamed):
 *   model.safetensors   the writer's tensors (HF names, PyTorch [out, in] shapes)
 *   config.json         the source's config.json when the source is an HF directory, else one
 *                       made from the model's config (llama / mistral / qwen2), plus
 *                       "quantization_config" (the writer's) and "torch_dtype"
 *   tokenizer.json ...  copied from an HF source (tokenizer.json, tokenizer_config.json,
 *                       special_tokens_map.json, tokenizer.model, generation_config.json); for a
 *                       GGUF source with a SentencePiece ("llama") vocab, a tokenizer.json made
 *                       from it: BPE with byte fallback whose merges are ranked as transformers'
 *                       SentencePieceExtractor ranks them (score of the merged piece, descending;
 *                       then the ids of the two halves), which reproduces llama.cpp's
 *                       highest-score-first SPM merging when scores are distinct.
 * Tensor names and rows: canonical names map back to HF's (token_embd.weight ->
 * model.embed_tokens.weight, blk.N.attn_q.weight -> model.layers.N.self_attn.q_proj.weight, ...).
 * GGUF/llama2.c sources keep q/k rows in interleaved-pair rotary order (ROPE_NORM); HF wants the
 * half-split order, so those rows are un-permuted (the inverse of llama.cpp's convert permute:
 * HF row h·hd + s·hd/2 + i = source row h·hd + 2i + s) BEFORE quantization — bitsandbytes blocks
 * run across rows, so the order matters. */
#ifndef QUANT_HF_EXPORT_H
#define QUANT_HF_EXPORT_H
#include <jansson.h>

#include "eval/model.h"
#include "eval/safetensors.h"
#include "kernels/qint.h"
#include "quant/bnb.h"

/* one tensor of the export */
struct hfx_tensor {
    char hf[192];              /* HF tensor name, e.g. model.layers.0.self_attn.q_proj.weight */
    char module[192];          /* for linears: the module prefix (hf without ".weight") */
    const struct tensor *src;  /* the source tensor (canonical name in src->name) */
    bool linear;               /* a Linear inside a decoder block (what GPTQ/AWQ/bnb quantize) */
    int64_t K, N;              /* in features (ne[0]) and rows */
    float *f32;                /* [N][K] fp32 in HF row order (q/k un-permuted), owned */
    /* filled by the quantizer; quantized == false keeps the module in floating point */
    bool quantized;
    struct tensor q;           /* DTYPE_QINT / NF4 / FP4 / I8ROW */
    void *qbuf;                /* owns q's buffer */
    struct bnb_state bnb;      /* bitsandbytes 4-bit: the state the file stores */
    char note[160];            /* how the module was handled, when not the plain setting */
    bool written;              /* in the current file already (hfx_emit) */
    bool dropped;              /* its buffers were freed when written (hfx_emit) */
    int qk;                    /* q/k rows (un-permuted for a ROPE_NORM source) */
};

struct hfx_file;
struct hfx_stats;
typedef int (*hfx_module_fn)(void *ctx, struct safetensors_writer *w, const struct hfx_tensor *t,
                             void **bufs, int *n_bufs, struct hfx_stats *st);
struct hfx_model {
    const struct model *m;
    const char *src_path;
    struct hfx_tensor *t;
    int n;
    /* the file being written (hfx_stream): tensors go into it as soon as they are final */
    struct hfx_file *out;  /* owned */
    hfx_module_fn fn;
    void *fn_ctx;          /* the format's, freed by ctx_free at hfx_end */
    void (*ctx_free)(void *);
    struct hfx_stats *st;
};

/* sizes and bits per weight of a written directory */
struct hfx_stats {
    size_t file_bytes;      /* model.safetensors */
    int64_t n_params;       /* all weights of the model */
    int64_t n_lin, n_lin_q; /* weights of block linears, and of those quantized */
    size_t lin_bytes, lin_q_bytes; /* their bytes in the file (every tensor of the module) */
    int n_modules, n_modules_q, n_per_channel, n_float;
};
/* 8·bytes/weights: the quantized modules, all block linears, the whole file over all weights */
static inline double hfx_bpw_quantized(const struct hfx_stats *s) {
    return s->n_lin_q ? 8.0 * (double)s->lin_q_bytes / (double)s->n_lin_q : 0;
}
static inline double hfx_bpw_linears(const struct hfx_stats *s) {
    return s->n_lin ? 8.0 * (double)s->lin_bytes / (double)s->n_lin : 0;
}
static inline double hfx_bpw_file(const struct hfx_stats *s) {
    return s->n_params ? 8.0 * (double)s->file_bytes / (double)s->n_params : 0;
}

/* every tensor of m under its HF name. With lazy false every block linear's fp32 rows (t->f32)
 * are materialized at once (refused up front when they do not fit in memory); with lazy true
 * hfx_load materializes them when the quantizer needs them, and hfx_emit frees them when the
 * tensor is written: a quantizer that writes each block's linears after the block holds one
 * block in fp32 at a time. -1 with a message (an architecture or tensor with no HF name). */
int hfx_collect(struct hfx_model *hm, const struct model *m, const char *src_path, bool lazy);
/* t->f32 of hm->t[i] (HF row order, q/k un-permuted) when not there yet; -1 with a message */
int hfx_load(struct hfx_model *hm, int i);
/* the fp32 bytes hfx_load needs for block l's linears (for memory plans) */
size_t hfx_block_bytes(const struct hfx_model *hm, int l);
/* the index in hm->t of the tensor whose source (canonical) name is name, or -1 */
int hfx_find(const struct hfx_model *hm, const char *name);
void hfx_release(struct hfx_model *hm);

/* a float tensor into w in the source's float dtype (F32 for quantized sources); data is
 * converted into *owned (free() after the write) when needed */
int hfx_add_float(struct safetensors_writer *w, const struct hfx_tensor *t, void **owned);
/* add bytes of tensor `name` (already added to w) to the module tallies */
void hfx_count(struct hfx_stats *st, const struct hfx_tensor *t, size_t bytes);

/* the tensors of one model.safetensors being written, and the buffers they point into (freed by
 * hfx_file_release, after the write; or at once when the writer spools, hfx_stream) */
struct hfx_file {
    struct safetensors_writer w;
    void **bufs;
    int n_bufs, cap_bufs;
};
#define HFX_FILE_INIT {SAFETENSORS_WRITER_INIT, NULL, 0, 0}
/* the most buffers one quantized module may add to bufs */
#define HFX_MODULE_BUFS 5
/* (hfx_module_fn, above) how a format writes one quantized linear: its tensors into w, each
 * buffer it allocates appended to bufs (at most HFX_MODULE_BUFS), its bytes tallied (hfx_count);
 * 0 or -1 */
/* start writing hm with the format's module writer (its ctx owned, freed with ctx_free, may be
 * NULL): hm->out's writer spools (the bytes go to an unlinked file beside `near`, the output
 * path), so hfx_emit can write a tensor as soon as the quantizer is done with it and free it. st
 * is zeroed and gets the tallies. The format writers (gptq_write_begin, ...) call this. */
int hfx_stream(struct hfx_model *hm, hfx_module_fn fn, void *ctx, void (*ctx_free)(void *),
               const char *near, struct hfx_stats *st);
/* the stream's file and the format's ctx released (hfx_release does it too) */
void hfx_end(struct hfx_model *hm);
/* write hm->t[i] now (a quantized block linear through the module writer, anything else in
 * float) and free its fp32 rows and quantized buffers: the quantizer is done with it; nothing
 * when already written. Needs hfx_stream. 0 or -1 with a message. */
int hfx_emit(struct hfx_model *hm, int i);
/* hfx_emit of every tensor of block l (blk.l.*): after the quantizer is done with the block */
int hfx_emit_block(struct hfx_model *hm, int l);
/* the rest of hm (every tensor not yet written) into the stream's file, as hfx_emit but keeping
 * the tensors' buffers (callers may still read t->f32 and t->q until hfx_release); then
 * float_linears (may be NULL) gets the module name of each block linear kept in float, in hm's
 * order. 0 or -1 with a message. */
int hfx_add_tensors(struct hfx_model *hm, json_t *float_linears);
void hfx_file_release(struct hfx_file *f);

/* create dir (mkdir -p), write w as dir/model.safetensors, config.json with qc (borrowed) as
 * quantization_config, and the tokenizer files; fills st->file_bytes and st->n_params */
int hfx_write_dir(const struct hfx_model *hm, const char *dir, struct safetensors_writer *w,
                  json_t *qc, struct hfx_stats *st);

/* the "modules_in_block_to_quantize" / "modules_to_not_convert" lists: the distinct module
 * suffixes (self_attn.q_proj, ...) of block linears with quantized == want (new reference) */
json_t *hfx_module_list(const struct hfx_model *hm, bool want);
/* the Python json.dumps of a float32 (repr of the double: shortest round-trip digits) */
void hfx_py_float(char *buf, size_t n, float v);
#endif
