/* quant/quant.h: recipes and the quantizer registry: one row per algorithm, each turning a loaded
 * model into an artifact in its ecosystem's own format.
 *
 * A recipe is one row of recipes.csv (gen/csvin.c reads it; the database stores it in the
 * recipes table, gen/schema.sql): an algorithm and its settings. quant_model() checks the recipe
 * against its algorithm's row and calls the row's quantize function, which writes the artifact
 * (a GGUF file, or an HF directory with config.json + safetensors) inside the job's directory and
 * says what the evaluation must load.
 *
 * Adding an algorithm is one row in qmethods[] (quant/quant.c) plus its own file: a check function
 * (refuse settings the algorithm cannot do, with a message saying what it can) and a quantize
 * function. Rows whose quantize is NULL are known names that fail with "not implemented yet". */
#ifndef QUANT_QUANT_H
#define QUANT_QUANT_H
#include <stdbool.h>
#include <stddef.h>

#include "eval/model.h"

struct tokenizer;

enum qmethod {
    QMETHOD_FP,        /* fp32 / fp16 / bf16 baselines: the model re-written at that dtype */
    QMETHOD_RTN,       /* round-to-nearest integer groups (GPTQ/AWQ layouts) */
    QMETHOD_GPTQ,
    QMETHOD_AWQ,
    QMETHOD_AUTOROUND,
    QMETHOD_BNB,       /* bitsandbytes NF4 / FP4 / LLM.int8 */
    QMETHOD_GGUF,      /* llama.cpp file types (Q4_K_M ...) */
    QMETHOD_AQLM,
    QMETHOD_COUNT
};

#define RECIPE_ID_MAX 128

/* one recipes.csv row, with its optional cells marked as absent (the database stores NULL) */
struct recipe {
    char id[RECIPE_ID_MAX];
    char algorithm[32];       /* as written (lower case); method is QMETHOD_COUNT when unknown */
    enum qmethod method;
    char weight_dtype[32];    /* canonical: int2 int3 int4 int8 nf4 fp4 float16 bfloat16 float32,
                                 or a GGUF mix name (q4_k_m ...) */
    double bits;              /* NAN when absent */
    int group_size;           /* -1 = per channel; meaningful when has_group_size */
    bool has_group_size;
    int sym;                  /* 1, 0, or -1 when absent */
    int double_quant;         /* 1, 0, or -1 when absent */
    char compute_dtype[16];   /* canonical: fp32 fp16 bf16 int8 */
    char calib_set[256];      /* "" when absent */
    int calib_nsamples;       /* 0 when absent */
    int calib_seqlen;         /* 0 when absent */
    char knobs[2048];         /* JSON object, compact with sorted keys; "" when absent */
};

/* what a quantize function gets: the loaded source model and where to write */
struct quant_job {
    const struct recipe *r;
    const struct model *m;          /* loaded with model_load(src_path) */
    const char *src_path;           /* the model file or directory */
    const char *src_tokenizer;      /* explicit tokenizer path, or NULL (the model's own) */
    const struct tokenizer *tok;    /* the source's tokenizer, loaded (for writers that embed it) */
    const char *out_dir;            /* existing, empty directory owned by this job */
    /* where a long quantization keeps its progress between attempts (NULL: none): a directory
     * beside the final artifact that survives the job's own directory being emptied; removed
     * when the quantization completes (quant/resume.h: GPTQ, AWQ, AQLM, AutoRound) */
    const char *resume_dir;
    int threads;
    bool quiet;
};

#define QUANT_MAX_PROV 16
/* what a quantize function produced */
struct quant_artifact {
    char path[4096];       /* the file or directory eval loads (inside out_dir) */
    char tokenizer[4096];  /* the tokenizer eval must be given; "" when the artifact has its own */
    char format[16];       /* "gguf", "gptq", "awq", "bnb", "aqlm" */
    /* extra facts for the run's provenance table ("quant.<key>") */
    struct {
        char key[64];
        char value[512];
    } prov[QUANT_MAX_PROV];
    int n_prov;
};

typedef int (*quant_check_fn)(const struct recipe *r);
typedef int (*quant_fn)(const struct quant_job *j, struct quant_artifact *a);

struct qmethod_info {
    const char *name;         /* recipes.csv algorithm name */
    quant_check_fn check;     /* NULL: any setting is passed through */
    quant_fn quantize;        /* NULL: known but not implemented yet */
    bool needs_calib;         /* reads calib_set (the calibration text) */
};

const struct qmethod_info *qmethod_get(enum qmethod m);
/* by recipes.csv name (case-insensitive); -1 when unknown */
int qmethod_from_name(const char *name);
/* "fp, rtn, gptq, ..." into buf, for messages */
const char *qmethod_names(char *buf, size_t size);

/* canonical weight dtype and compute dtype names ("fp16" -> "float16"; "float16" -> "fp16");
 * NULL when the name is not one lowbit knows (a GGUF mix name is returned lower-cased) */
const char *recipe_weight_dtype_canon(const char *name, char *buf, size_t size);
const char *recipe_compute_dtype_canon(const char *name);

/* an empty recipe (every optional cell absent) */
void recipe_init(struct recipe *r);
/* the algorithm is known and the settings are ones it can do; -1 with a message naming the
 * recipe, the setting and what is allowed */
int recipe_check(const struct recipe *r);
/* the recipe's knobs as a JSON object (a new reference; NULL when the cell is empty), or -1 with
 * "recipe 'ID': knobs '...' are not a JSON object (why)" */
struct json_t;
int recipe_knobs(const struct recipe *r, struct json_t **out);

/* check r, then run its algorithm: writes the artifact inside j->out_dir and fills *a. -1 with
 * a one-line message ("recipe 'x': algorithm 'gptq' is not implemented yet", the writer's own
 * error, ...) */
int quant_model(const struct quant_job *j, struct quant_artifact *a);

/* add a provenance fact to a (silently ignored past QUANT_MAX_PROV) */
void quant_prov(struct quant_artifact *a, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- GGUF helpers for writers ---- */
struct gguf_writer;
/* llama.cpp's metadata for m: general.architecture, general.name, general.file_type (a
 * llama_ftype: 0 all f32, 1 mostly f16, 32 mostly bf16, ...) and ARCH.* (sizes, heads, eps,
 * rope base and dimensions, context length, vocab size) */
int quant_gguf_put_model_kv(struct gguf_writer *w, const struct model *m, const char *name,
                            int file_type);
/* copy every tokenizer.* KV of m's GGUF file (m->gguf) in file order; 1 when m is not a GGUF
 * (nothing copied: the job passes the tokenizer file to eval instead) */
int quant_gguf_copy_tokenizer(struct gguf_writer *w, const struct model *m);
/* rope_freqs.weight [head_dim/2] f32 for models whose rotary frequencies are scaled (Llama-3.1
 * rope_scaling from config.json, or a GGUF's own rope_freqs), phi3's rope_factors_long/short
 * (longrope); 0 when there is none to write.
 * *buf is owned by the caller (free()) and borrowed by w until the write. */
int quant_gguf_put_rope_freqs(struct gguf_writer *w, const struct model *m, float **buf);
/* after a writer added m's canonical tensors: the fused tensors llama.cpp's file of m's
 * architecture holds (phi3: blk.N.attn_qkv.weight, blk.N.ffn_up.weight [D, 2H]) in place of their
 * parts; nothing for the others or when the writer fused them already. 0 or -1. */
int quant_gguf_fuse(struct gguf_writer *w, const struct model *m);
#endif
