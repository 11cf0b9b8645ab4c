/* quant/aqlm_format.c: the AQLM checkpoint writer (layout and config in quant/aqlm.h; the reader
 * is eval/hf.c). Tensor names and dtypes follow aqlm.QuantizedLinear and convert_to_hf.py:
 * P.codes I8/I16 [O, J, M] (pack_int_data: values >= 2^(B−1) stored minus 2^B), P.codebooks F16
 * [M, 2^B, go, gi], P.scales F16 [O, 1, 1, 1]. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant/aqlm.h"

/* the module's three tensors into w (buffers appended to bufs); their bytes go to the tallies;
 * ctx: the struct aqlm_opts */
static int write_module(void *ctx, struct safetensors_writer *w, const struct hfx_tensor *t,
                        void **bufs, int *n_bufs, struct hfx_stats *st) {
    const struct aqlm_opts *o = ctx;
    const struct tensor *q = &t->q;
    if (q->type != DTYPE_AQLM || q->q_ncb != o->num_codebooks || q->q_bits != o->nbits ||
        q->q_group != o->in_group || q->q_out_group != o->out_group || q->ne[0] != t->K ||
        tensor_nrows(q) != t->N)
        return err("%s: quantized as %s, which the %dx%d in %d out %d AQLM checkpoint cannot hold",
                   t->module, dtype_get(q->type)->name, o->num_codebooks, o->nbits, o->in_group,
                   o->out_group);
    const int M = q->q_ncb, B = q->q_bits, go = q->q_out_group, gi = q->q_group;
    const int64_t O = aqlm_n_out_groups(q), J = aqlm_n_in_groups(q), S = aqlm_codebook_size(q);
    const size_t n_codes = (size_t)(O * J) * (size_t)M, n_cb = (size_t)(M * S) * (size_t)(go * gi);
    const size_t esz = B <= 8 ? 1 : 2;
    void *codes = malloc(n_codes * esz);
    lb_fp16 *cb = malloc(n_cb * sizeof *cb), *sc = malloc((size_t)O * sizeof *sc);
    bufs[(*n_bufs)++] = codes, bufs[(*n_bufs)++] = cb, bufs[(*n_bufs)++] = sc;
    if (!codes || !cb || !sc) return err("out of memory packing %s", t->module);
    const int64_t half = (int64_t)1 << (B - 1), full = (int64_t)1 << B;
    for (int64_t og = 0; og < O; og++)
        for (int64_t j = 0; j < J; j++)
            for (int m = 0; m < M; m++) {
                int64_t v = aqlm_code_get(q, og, j, m);
                if (v >= half) v -= full; /* pack_int_data */
                const size_t i = ((size_t)og * (size_t)J + (size_t)j) * (size_t)M + (size_t)m;
                if (esz == 1) ((int8_t *)codes)[i] = (int8_t)v;
                else ((int16_t *)codes)[i] = (int16_t)v;
            }
    const float *qc = aqlm_codebooks(q), *qs = aqlm_scales(q);
    for (size_t i = 0; i < n_cb; i++) {
        cb[i] = lb_f32_to_fp16(qc[i]);
        if (lb_fp16_to_f32(cb[i]) != qc[i])
            return err("%s: codebook value %.9g is not an fp16 value (AQLM stores fp16 codebooks)",
                       t->module, (double)qc[i]);
    }
    for (int64_t og = 0; og < O; og++) {
        sc[og] = lb_f32_to_fp16(qs[og]);
        if (lb_fp16_to_f32(sc[og]) != qs[og])
            return err("%s: scale %.9g of output group %lld is not an fp16 value", t->module,
                       (double)qs[og], (long long)og);
    }
    char name[256];
    const int64_t s_codes[3] = {O, J, M}, s_cb[4] = {M, S, go, gi}, s_sc[4] = {O, 1, 1, 1};
    snprintf(name, sizeof name, "%s.codes", t->module);
    if (safetensors_writer_add(w, name, esz == 1 ? "I8" : "I16", 3, s_codes, codes, n_codes * esz))
        return -1;
    hfx_count(st, t, n_codes * esz);
    snprintf(name, sizeof name, "%s.codebooks", t->module);
    if (safetensors_writer_add(w, name, "F16", 4, s_cb, cb, n_cb * 2)) return -1;
    hfx_count(st, t, n_cb * 2);
    snprintf(name, sizeof name, "%s.scales", t->module);
    if (safetensors_writer_add(w, name, "F16", 4, s_sc, sc, (size_t)O * 2)) return -1;
    hfx_count(st, t, (size_t)O * 2);
    return 0;
}

int aqlm_write_begin(struct hfx_model *hm, const struct aqlm_opts *o, const char *dir,
                     struct hfx_stats *st) {
    return hfx_stream(hm, write_module, (void *)o, NULL, dir, st);
}

int aqlm_write(struct hfx_model *hm, const struct aqlm_opts *o, json_t *extra, const char *dir,
               struct hfx_stats *st) {
    if (!hm->out && aqlm_write_begin(hm, o, dir, st)) return -1;
    int ret = -1;
    json_t *skip = json_array(), *qc = NULL;
    if (!skip) {
        hfx_end(hm);
        return err("out of memory");
    }
    if (hfx_add_tensors(hm, NULL)) goto out;
    /* convert_to_hf.py lists every weight it keeps in floating point */
    bool has_lm_head = false;
    for (int i = 0; i < hm->n; i++) {
        const struct hfx_tensor *t = &hm->t[i];
        if ((t->linear && t->quantized) || !ends_with(t->hf, ".weight")) continue;
        json_array_append_new(skip, json_string(t->hf));
        has_lm_head |= !strcmp(t->hf, "lm_head.weight");
    }
    /* transformers replaces every nn.Linear not listed, lm_head included even when tied */
    if (!has_lm_head) json_array_append_new(skip, json_string("lm_head.weight"));
    if (safetensors_writer_set_meta(&hm->out->w, "format", "pt")) goto out;
    qc = json_pack("{s:s, s:i, s:i, s:i, s:i, s:O}", "quant_method", "aqlm",
                   "nbits_per_codebook", o->nbits, "num_codebooks", o->num_codebooks,
                   "out_group_size", o->out_group, "in_group_size", o->in_group,
                   "linear_weights_not_to_quantize", skip);
    if (!qc) {
        err("out of memory");
        goto out;
    }
    json_t *lb = json_pack("{s:s}", "algorithm", "aqlm");
    if (extra) json_object_update(lb, extra);
    json_object_set_new(qc, "lowbit", lb);
    ret = hfx_write_dir(hm, dir, &hm->out->w, qc, hm->st);
out:
    hfx_end(hm);
    json_decref(qc);
    json_decref(skip);
    return ret;
}
