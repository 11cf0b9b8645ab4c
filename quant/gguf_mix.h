/* quant/gguf_mix.h: llama.cpp's GGUF file types (its quantization "mixes") and a GGUF writer
 * that produces the file llama-quantize would.
 *
 * A file type (llama_ftype, e.g. Q4_K_M) names a base block type and rules that give some
 * tensors more bits (llama_tensor_get_type_impl in src/llama-quant.cpp of llama.cpp de3ff81):
 *  - only tensors of >= 2 dims whose names end in "weight" are quantized (not *_norm, not
 *    output.weight with leave_output, not ffn_gate_inp, position/token-type embeddings, ...);
 *  - output.weight, and token_embd when there is no output.weight, get Q6_K (Q8_0 when the base
 *    is Q8_0 or the row length is not a multiple of the base block);
 *  - attn_v / ffn_down / attn_output follow the per-ftype table (use_more_bits(i, n) = i < n/8 ||
 *    i >= 7n/8 || (i - n/8) % 3 == 2 for *_K_M), counted over tensors in llama.cpp's order
 *    (gguf_mix_order: non-layer tensors first, then by layer, each group by name);
 *  - a type whose block does not divide the row length falls back: Q2_K/Q3_K -> Q4_0,
 *    Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, IQ* -> IQ4_NL, TQ* -> Q4_0, and to F16 when that does not
 *    divide either (this llama.cpp version never refuses a shape; stories260K's ffn_down, 172
 *    columns, becomes F16 in every quantized type);
 *  - with pure, every quantizable tensor gets the base type (then the same fallback).
 * The i-quant file types follow the same function: IQ2_XXS/XS/S/M, IQ1_S/M give attn_v,
 * the first eighth of ffn_down, attn_output, output and token_embd more bits (Q2_K/IQ3_S/Q4_K/
 * Q5_K ...); IQ3_XXS/XS/S/M mix IQ3_S, IQ3_XXS, IQ2_S and K-quants; IQ4_XS as IQ4_NL; TQ1_0 and
 * TQ2_0 keep token_embd at Q4_K. Note IQ2_S's base type is IQ2_XS and IQ2_M's is IQ2_S.
 * Refusals, as llama.cpp: a tensor that would be IQ3_XXS, IQ2_XXS, IQ2_XS, IQ2_S, IQ1_M or
 * IQ1_S (other than token_embd and output), or Q2_K in a Q2_K_S file, without an importance
 * matrix (tensor_requires_imatrix); an imatrix entry of the wrong length; re-quantizing a tensor
 * that is already quantized (unless allow_requantize). Where llama.cpp would reach ggml's
 * assertion instead (IQ2_XXS, IQ2_XS or IQ1_S for token_embd or output, with --pure, and no
 * entry for them) we refuse with a message. */
#ifndef QUANT_GGUF_MIX_H
#define QUANT_GGUF_MIX_H
#include <stdbool.h>

#include "eval/model.h"

struct imatrix;
struct tokenizer;

/* llama.cpp's file types we can write; values are llama_ftype (general.file_type) */
enum gguf_ftype {
    GGUF_FTYPE_ALL_F32 = 0,
    GGUF_FTYPE_F16 = 1,
    GGUF_FTYPE_Q4_0 = 2,
    GGUF_FTYPE_Q4_1 = 3,
    GGUF_FTYPE_Q8_0 = 7,
    GGUF_FTYPE_Q5_0 = 8,
    GGUF_FTYPE_Q5_1 = 9,
    GGUF_FTYPE_Q2_K = 10,
    GGUF_FTYPE_Q3_K_S = 11,
    GGUF_FTYPE_Q3_K_M = 12,
    GGUF_FTYPE_Q3_K_L = 13,
    GGUF_FTYPE_Q4_K_S = 14,
    GGUF_FTYPE_Q4_K_M = 15,
    GGUF_FTYPE_Q5_K_S = 16,
    GGUF_FTYPE_Q5_K_M = 17,
    GGUF_FTYPE_Q6_K = 18,
    GGUF_FTYPE_IQ2_XXS = 19,
    GGUF_FTYPE_IQ2_XS = 20,
    GGUF_FTYPE_Q2_K_S = 21,
    GGUF_FTYPE_IQ3_XS = 22,
    GGUF_FTYPE_IQ3_XXS = 23,
    GGUF_FTYPE_IQ1_S = 24,
    GGUF_FTYPE_IQ4_NL = 25,
    GGUF_FTYPE_IQ3_S = 26,
    GGUF_FTYPE_IQ3_M = 27,
    GGUF_FTYPE_IQ2_S = 28,
    GGUF_FTYPE_IQ2_M = 29,
    GGUF_FTYPE_IQ4_XS = 30,
    GGUF_FTYPE_IQ1_M = 31,
    GGUF_FTYPE_BF16 = 32,
    GGUF_FTYPE_TQ1_0 = 36,
    GGUF_FTYPE_TQ2_0 = 37,
};

/* "Q4_K_M" (case-insensitive) -> its llama_ftype; -1 with a message listing the names */
int gguf_ftype_from_name(const char *name, enum gguf_ftype *out);
const char *gguf_ftype_name(enum gguf_ftype ft);
/* the ftype's base block type */
enum dtype gguf_ftype_base(enum gguf_ftype ft);

/* what the mix rules look at */
struct gguf_mix_model {
    const char *arch;  /* general.architecture */
    int n_layer;       /* block_count */
    int n_head, n_head_kv;
    int n_expert;      /* 0 or 1 = dense */
};
struct gguf_mix_tensor {
    const char *name;
    int n_dims;
    int64_t ne[4];
    enum dtype type; /* the source type */
};
struct gguf_mix_opts {
    enum gguf_ftype ftype;
    bool pure;         /* --pure: no mixing */
    bool leave_output; /* --leave-output-tensor: output.weight keeps its type */
    bool has_imatrix;  /* changes a few rules (Q4_0/Q5_0 ffn_down, IQ4_NL/XS ffn_down, IQ3_XXS) */
};

/* the index order llama.cpp processes and writes tensors in: by layer ("blk.N.", -1 for others),
 * then by name (strcmp). idx[n] is filled with 0..n-1 in that order. */
void gguf_mix_order(const struct gguf_mix_tensor *t, int n, int *idx);
/* out[i] = the type llama.cpp gives t[i]; t must be in gguf_mix_order (the counters depend on
 * it). A tensor that is not quantized keeps t[i].type. *n_fallback (may be NULL) counts shape
 * fallbacks; each is reported on stderr unless quiet. Always succeeds for our ftypes. */
void gguf_mix_types(const struct gguf_mix_model *mm, const struct gguf_mix_opts *o,
                    const struct gguf_mix_tensor *t, int n, enum dtype *out, int *n_fallback,
                    bool quiet);
/* true when llama.cpp would quantize this tensor at all */
bool gguf_mix_quantizable(const struct gguf_mix_tensor *t, bool leave_output);

/* ---- writing the file ---- */
struct gguf_quant_opts {
    const char *ftype;          /* "Q4_K_M", ... */
    bool pure, leave_output, allow_requantize;
    const struct imatrix *imatrix;   /* NULL: data-free quantization */
    const char *imatrix_file;        /* its name, recorded as llama-quantize does (see below) */
    const struct tokenizer *tok;     /* vocabulary for llama2.c / HF sources (GGUF: the file's) */
    bool vocab_optional;             /* a vocabulary we cannot write (BPE) is left out instead of
                                        refused (the evaluation then passes the tokenizer file) */
    const char *name;                /* general.name for non-GGUF sources (default: file name) */
    bool quiet;                      /* no per-tensor log on stderr */
};

/* what was written */
struct gguf_quant_result {
    bool has_vocab;          /* tokenizer.* KVs are in the file (llama.cpp can load it) */
    int n_tensors, n_quantized, n_fallback;
    double bits_per_weight;  /* 8 · tensor bytes / parameters, the file's real bpw */
    uint64_t tensor_bytes;
};

/* Quantize model m (loaded by model_load from any format) into a GGUF at out_path (written
 * atomically). A GGUF source keeps every KV in order, then general.quantization_version = 2 and
 * general.file_type are (re)set at the end, as llama-quantize does (with an imatrix, also its
 * quantize.imatrix.file / .dataset / .entries_count / .chunks_count); tensors are written in
 * gguf_mix_order with ggml's bytes, so a data-free quantization of a GGUF equals llama-quantize's
 * file. llama2.c and HF sources get llama.cpp's metadata keys from m->cfg and the vocabulary from
 * o->tok (SentencePiece vocabularies; BPE ones are refused or, with vocab_optional, left out);
 * HF llama/mistral q/k rows are permuted back to GGUF's interleaved rotary layout and Llama-3.1
 * rope scaling becomes rope_freqs.weight (quant/quant.h helpers, as the fp baselines). res may
 * be NULL. -1 with a message naming the tensor or key on any refusal. */
int gguf_quantize_model(const struct model *m, const struct gguf_quant_opts *o,
                        const char *out_path, struct gguf_quant_result *res);

/* the registry row "gguf" of quant/quant.h: recipe weight_dtype = a file type above (q4_k_m,
 * ...); knobs {"pure": bool, "leave_output": bool, "imatrix": "FILE"}; a calib_set (a text file)
 * makes an importance matrix first (chunks of calib_seqlen, default 512, at most
 * calib_nsamples of them), as llama-imatrix then llama-quantize --imatrix */
struct recipe;
struct quant_job;
struct quant_artifact;
int gguf_recipe_check(const struct recipe *r);
int gguf_recipe_quantize(const struct quant_job *j, struct quant_artifact *a);
#endif
