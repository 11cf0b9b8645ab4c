/* quant/bnb_format.c: the bitsandbytes checkpoint writer, as transformers saves a model loaded
 * with BitsAndBytesConfig (bitsandbytes nn/modules.py Linear4bit._save_to_state_dict ->
 * QuantState.as_dict(packed=True); Linear8bitLt._save_to_state_dict; REFERENCE.md C4).
 *
 * 4-bit module P [N][K], n = N·K, bs = blocksize, nb = ceil(n/bs):
 *   P.weight                      U8 [ceil(n/2), 1]  the packed stream (high nibble first)
 *   P.weight.absmax               F32 [nb], or U8 [nb] when double-quantized
 *   P.weight.quant_map            F32 [16]  the 4-bit table (bit-pattern order)
 *   P.weight.nested_absmax        F32 [ceil(nb/256)]        (double quant)
 *   P.weight.nested_quant_map     F32 [256] the dynamic map (double quant)
 *   P.weight.quant_state.bitsandbytes__nf4 (or __fp4)  U8 [len]: json.dumps of
 *     {"quant_type", "blocksize", "dtype", "shape": [N, K] (+ "nested_blocksize", "nested_dtype",
 *     "nested_offset")}, with Python's separators and float repr.
 * 8-bit module: P.weight I8 [N, K], P.SCB F32 [N], P.weight_format U8 [] = 0 (row-major).
 * quantization_config: the BitsAndBytesConfig.to_dict() keys (load_in_4bit/8bit, bnb_4bit_*,
 * llm_int8_*), quant_method "bitsandbytes", plus "lowbit". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant/qformat.h"

static const char *dtype_str(enum dtype t) {
    return t == DTYPE_F16 ? "float16" : t == DTYPE_BF16 ? "bfloat16" : "float32";
}

static int write4(struct safetensors_writer *w, const struct hfx_tensor *t, void **bufs,
                  int *n_bufs, struct hfx_stats *st) {
    const struct bnb_state *s = &t->bnb;
    if (!s->packed || (t->q.type != DTYPE_NF4 && t->q.type != DTYPE_FP4) || s->K != t->K ||
        s->N != t->N)
        return err("%s: no bitsandbytes 4-bit state to write", t->module);
    const bool fp4 = s->type == DTYPE_FP4;
    const int64_t n = s->N * s->K, nb = s->n_blocks, nb2 = nf4_n_blocks(nb, BNB_NESTED_BLOCKSIZE);
    char name[320], js[512], off[64];
    size_t total = 0;
#define ADD(suffix, dt, nd, shape, data, nbytes)                                                   \
    do {                                                                                           \
        snprintf(name, sizeof name, "%s.weight%s", t->module, suffix);                             \
        if (safetensors_writer_add(w, name, dt, nd, shape, data, nbytes)) return -1;               \
        total += nbytes;                                                                           \
    } while (0)
    const int64_t s_w[2] = {(n + 1) / 2, 1}, s_am[1] = {nb}, s_qm[1] = {16}, s_am2[1] = {nb2},
                  s_code2[1] = {256};
    ADD("", "U8", 2, s_w, s->packed, (size_t)(n + 1) / 2);
    if (s->nested) ADD(".absmax", "U8", 1, s_am, s->qabsmax, (size_t)nb);
    else ADD(".absmax", "F32", 1, s_am, s->absmax, (size_t)nb * 4);
    ADD(".quant_map", "F32", 1, s_qm, fp4 ? fp4_table : nf4_table, 64);
    if (s->nested) {
        ADD(".nested_absmax", "F32", 1, s_am2, s->absmax2, (size_t)nb2 * 4);
        ADD(".nested_quant_map", "F32", 1, s_code2, s->code2, 1024);
        hfx_py_float(off, sizeof off, s->offset);
        snprintf(js, sizeof js,
                 "{\"quant_type\": \"%s\", \"blocksize\": %lld, \"dtype\": \"%s\", \"shape\": "
                 "[%lld, %lld], \"nested_blocksize\": %d, \"nested_dtype\": \"float32\", "
                 "\"nested_offset\": %s}", fp4 ? "fp4" : "nf4", (long long)s->bs,
                 dtype_str(t->src->type), (long long)s->N, (long long)s->K, BNB_NESTED_BLOCKSIZE,
                 off);
    } else {
        snprintf(js, sizeof js,
                 "{\"quant_type\": \"%s\", \"blocksize\": %lld, \"dtype\": \"%s\", \"shape\": "
                 "[%lld, %lld]}", fp4 ? "fp4" : "nf4", (long long)s->bs, dtype_str(t->src->type),
                 (long long)s->N, (long long)s->K);
    }
    char *jb = strdup(js);
    if (!jb) return err("out of memory");
    bufs[(*n_bufs)++] = jb;
    const int64_t s_js[1] = {(int64_t)strlen(jb)};
    ADD(fp4 ? ".quant_state.bitsandbytes__fp4" : ".quant_state.bitsandbytes__nf4", "U8", 1, s_js,
        jb, strlen(jb));
#undef ADD
    hfx_count(st, t, total);
    return 0;
}

static int write8(struct safetensors_writer *w, const struct hfx_tensor *t, struct hfx_stats *st) {
    const struct tensor *q = &t->q;
    if (q->type != DTYPE_I8ROW) return err("%s: not an LLM.int8 tensor", t->module);
    char name[320];
    static const uint8_t zero = 0;
    const int64_t s_w[2] = {t->N, t->K}, s_scb[1] = {t->N};
    snprintf(name, sizeof name, "%s.weight", t->module);
    if (safetensors_writer_add(w, name, "I8", 2, s_w, q->data, (size_t)(t->N * t->K))) return -1;
    snprintf(name, sizeof name, "%s.SCB", t->module);
    if (safetensors_writer_add(w, name, "F32", 1, s_scb, nf4_absmax(q), (size_t)t->N * 4)) return -1;
    snprintf(name, sizeof name, "%s.weight_format", t->module);
    if (safetensors_writer_add(w, name, "U8", 0, NULL, &zero, 1)) return -1;
    hfx_count(st, t, (size_t)(t->N * t->K) + (size_t)t->N * 4 + 1);
    return 0;
}

/* ctx: the struct bnb_write_opts */
static int write_module(void *ctx, struct safetensors_writer *w, const struct hfx_tensor *t,
                        void **bufs, int *n_bufs, struct hfx_stats *st) {
    const struct bnb_write_opts *o = ctx;
    return o->int8 ? write8(w, t, st) : write4(w, t, bufs, n_bufs, st);
}

int bnb_write_begin(struct hfx_model *hm, const struct bnb_write_opts *o, const char *dir,
                    struct hfx_stats *st) {
    return hfx_stream(hm, write_module, (void *)o, NULL, dir, st);
}

int bnb_write(struct hfx_model *hm, const struct bnb_write_opts *o, const char *dir,
              struct hfx_stats *st) {
    if (!hm->out && bnb_write_begin(hm, o, dir, st)) return -1;
    int ret = -1;
    json_t *qc = NULL, *fl = json_array();
    if (hfx_add_tensors(hm, fl) || safetensors_writer_set_meta(&hm->out->w, "format", "pt"))
        goto out;
    const char *cd = o->compute_dtype ? o->compute_dtype : "float32";
    qc = json_pack("{s:b, s:b, s:s, s:s, s:s, s:b, s:b, s:b, s:n, s:f, s:b, s:b, s:s}",
                   "_load_in_4bit", !o->int8, "_load_in_8bit", o->int8, "bnb_4bit_compute_dtype",
                   cd, "bnb_4bit_quant_storage", "uint8", "bnb_4bit_quant_type",
                   o->type == DTYPE_FP4 ? "fp4" : "nf4", "bnb_4bit_use_double_quant",
                   o->double_quant, "llm_int8_enable_fp32_cpu_offload", 0,
                   "llm_int8_has_fp16_weight", 0, "llm_int8_skip_modules", "llm_int8_threshold",
                   6.0, "load_in_4bit", !o->int8, "load_in_8bit", o->int8, "quant_method",
                   "bitsandbytes");
    if (json_array_size(fl)) json_object_set_new(qc, "llm_int8_skip_modules", hfx_module_list(hm, false));
    json_t *lb = json_pack("{s:s, s:O}", "algorithm", "bnb", "float_modules", fl);
    if (o->extra) json_object_update(lb, o->extra);
    json_object_set_new(qc, "lowbit", lb);
    ret = hfx_write_dir(hm, dir, &hm->out->w, qc, hm->st);
out:
    hfx_end(hm);
    json_decref(qc);
    json_decref(fl);
    return ret;
}
