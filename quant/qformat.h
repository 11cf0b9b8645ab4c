/* quant/qformat.h: writers of each ecosystem's HF checkpoint (GPTQ v1/v2, AWQ GEMM,
 * bitsandbytes 4-bit/8-bit) from an export whose block linears are already quantized
 * (struct hfx_model, quant/hf_export.h), and the shape rules deciding how a module is held.
 *
 * Shape rules (what each ecosystem's layout can hold; REFERENCE.md C1/C2, issue 3):
 *  GPTQ: qweight [K·b/32, N] and qzeros [ceil(K/g), N·b/32]; AutoGPTQ's QuantLinear allocates
 *    K//32·b rows and N//32·b zero columns, so a module is written only when K and N are
 *    multiples of 32 (then both agree; GPTQModel sizes them with a ceiling and would also take
 *    K·b and N·b multiples of 32, e.g. 8 bits on K = 172: [43, N], which AutoGPTQ refuses). A
 *    module that fails this stays in floating point, is left out of
 *    "modules_in_block_to_quantize", and its note says why. (lowbit reads the exact packing of
 *    either.) A group that does not divide K falls back to one group per row
 *    ("per-channel"), written under the config's group_size as ceil(K/g) identical scale/zero
 *    rows with the standard g_idx = k / g, so any GPTQ loader dequantizes it the same way.
 *  AWQ GEMM: 4-bit only; qweight [K, N/8] needs N % 8 == 0 and qzeros [K/g, N/8] needs g | K; a
 *    module that fails either stays in floating point ("modules_to_not_convert").
 *  bitsandbytes: blocks run over the flattened tensor, so every shape is held as is.
 * The real bits per weight of the file are reported (struct hfx_stats). */
#ifndef QUANT_QFORMAT_H
#define QUANT_QFORMAT_H
#include "quant/hf_export.h"

enum qplan { QPLAN_GROUP, QPLAN_CHANNEL, QPLAN_FLOAT };

/* how a GPTQ (awq = false) or AWQ file holds a [N][K] module at `bits` and group_size `group`
 * (-1 = per-channel); a note says why for QPLAN_CHANNEL / QPLAN_FLOAT */
enum qplan qformat_plan(bool awq, int64_t K, int64_t N, int bits, int64_t group, char *note,
                        size_t n_note);

struct gptq_write_opts {
    int bits;
    int64_t group;       /* group_size of the config (-1 = per-channel) */
    bool sym, desc_act;
    bool v2;             /* checkpoint_format gptq_v2 (true zeros) instead of gptq (zero − 1) */
    double damp_percent; /* recorded only (0.01 when 0) */
    bool true_sequential, static_groups;
    const char *quantizer; /* recorded as quantization_config.lowbit.algorithm, e.g. "rtn" */
    json_t *extra;         /* optional: more keys for quantization_config.lowbit (borrowed) */
    json_t *top;           /* optional: more keys for quantization_config itself, e.g. AutoRound's
                              "provider" (borrowed; they override the keys above) */
};

/* GPTQ checkpoint: every quantized block linear (DTYPE_QINT with q_bits = bits and q_group = the
 * config group or one group per row) as qweight/qzeros/scales/g_idx; the rest in float.
 * -1 with a message when a module cannot be written (e.g. zero 0 in a v1 file). */
int gptq_write(struct hfx_model *hm, const struct gptq_write_opts *o, const char *dir,
               struct hfx_stats *st);
/* The writers stream (hf_export.h: hfx_stream): a quantizer that calls X_write_begin first may
 * hfx_emit each module as soon as it is final (its buffers are freed at once); X_write then
 * writes the rest, the config and the files. Without a begin, X_write begins itself. o (and
 * what it points to) must stay valid until X_write returns: o->extra is read there. */
int gptq_write_begin(struct hfx_model *hm, const struct gptq_write_opts *o, const char *dir,
                     struct hfx_stats *st);

/* AWQ GEMM checkpoint (4-bit, zero_point, version gemm) with group_size `group` */
int awq_write(struct hfx_model *hm, int64_t group, const char *quantizer, json_t *extra,
              const char *dir, struct hfx_stats *st);
int awq_write_begin(struct hfx_model *hm, int64_t group, const char *dir, struct hfx_stats *st);

struct bnb_write_opts {
    bool int8;                 /* load_in_8bit (LLM.int8 rows) instead of 4-bit */
    enum dtype type;           /* 4-bit: DTYPE_NF4 or DTYPE_FP4 */
    bool double_quant;
    const char *compute_dtype; /* bnb_4bit_compute_dtype: "float32" (bitsandbytes' default),
                                * "float16", "bfloat16" */
    json_t *extra;
};

/* bitsandbytes checkpoint: Params4bit keys with the packed quant_state, or Int8Params + SCB */
int bnb_write(struct hfx_model *hm, const struct bnb_write_opts *o, const char *dir,
              struct hfx_stats *st);
int bnb_write_begin(struct hfx_model *hm, const struct bnb_write_opts *o, const char *dir,
                    struct hfx_stats *st);

/* ===== the data-free recipes writing these checkpoints (registry rows call these) ===== */

/* a recipe as the pipeline's recipes.csv spells it (issue 5): algorithm, weight dtype, bits,
 * group size, symmetry, double quant, compute dtype, knobs JSON */
struct hf_recipe {
    const char *algorithm;     /* "rtn" or "bnb" */
    const char *weight_dtype;  /* rtn: "int2" "int3" "int4" "int8" (or NULL: from bits);
                                * bnb: "nf4" "fp4" "int8" */
    int bits;                  /* rtn: 2, 3, 4, 8 (0: from weight_dtype) */
    int64_t group_size;        /* rtn: 32, 64, 128, ... or -1 per-channel; bnb: the blocksize
                                * (0: 64) */
    bool sym;                  /* rtn (the GPTQ rule) */
    bool double_quant;         /* bnb 4-bit */
    const char *compute_dtype; /* bnb: bnb_4bit_compute_dtype (default "float32") */
    const char *knobs;         /* JSON object or NULL. rtn: {"format": "gptq" (default) |
                                * "gptq_v2" | "awq", "mse": false}; the AWQ format uses AutoAWQ's
                                * quantizer (asymmetric) */
};

/* quantize every block linear of m (loaded from src_path) and write the checkpoint to out.
 * RTN -> GPTQ (v1 or v2) or AWQ layout; bnb -> bitsandbytes 4-bit or LLM.int8. Prints one line per
 * module not held as asked (per-channel fallback, kept in float) unless quiet. */
int rtn_quantize_model(const struct model *m, const char *src_path, const struct hf_recipe *r,
                       const char *out, bool quiet, struct hfx_stats *st);
int bnb_quantize_model(const struct model *m, const char *src_path, const struct hf_recipe *r,
                       const char *out, bool quiet, struct hfx_stats *st);

/* ===== the registry rows (quant/quant.h qmethods[]: rtn, bnb) ===== */
struct recipe;
struct quant_job;
struct quant_artifact;
/* rtn: weight_dtype int2/int3/int4/int8 (bits must agree), group_size (absent: 128, the
 * GPTQConfig/AutoRound default; -1 per-channel), sym (absent: true, GPTQ's default), no double
 * quant, compute_dtype fp32/fp16/bf16 (recorded: the fused kernels take fp32 activations),
 * knobs {"format": "gptq"|"gptq_v2"|"awq", "mse": bool}. The artifact is JOB/model, an HF
 * directory. */
int rtn_recipe_check(const struct recipe *r);
int rtn_recipe_quantize(const struct quant_job *j, struct quant_artifact *a);
/* bnb: weight_dtype nf4/fp4 (bits 4) or int8 (bits 8); group_size = blocksize (absent: 64);
 * double_quant (absent: false, BitsAndBytesConfig's default); compute_dtype -> 
 * bnb_4bit_compute_dtype; no sym, no knobs */
int bnb_recipe_check(const struct recipe *r);
int bnb_recipe_quantize(const struct quant_job *j, struct quant_artifact *a);
/* shared by both: fill a (path JOB/model, format, tokenizer when the directory has none,
 * provenance) after a successful write */
void hf_recipe_artifact(const struct quant_job *j, struct quant_artifact *a, const char *format,
                        const struct hfx_stats *st);
#endif
