/* quant/awq_format.c: the AWQ GEMM checkpoint writer (AutoAWQ awq/modules/linear/gemm.py
 * from_linear; REFERENCE.md C2; shape rules in quant/qformat.h).
 *
 * Per module P [N out][K in], group g (g | K), 4 bits:
 *   P.qweight I32 [K, N/8]: word c of input row k holds outputs 8c..8c+7, output 8c + ORDER[i]
 *             in nibble i, ORDER = [0,2,4,6,1,3,5,7] (qint_awq_set)
 *   P.qzeros  I32 [K/g, N/8]: the true zero points, same order
 *   P.scales  F16 [K/g, N]
 * quantization_config: {"quant_method": "awq", "bits": 4, "group_size": g, "zero_point": true,
 * "version": "gemm", "modules_to_not_convert": [...] or null} plus "lowbit": {...}. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant/qformat.h"

/* the module's three tensors into w; ctx: the group size (int64_t) */
static int write_module(void *ctx, struct safetensors_writer *w, const struct hfx_tensor *t,
                        void **bufs, int *n_bufs, struct hfx_stats *st) {
    const int64_t g = *(const int64_t *)ctx;
    const struct tensor *q = &t->q;
    const int64_t K = t->K, N = t->N, ng = K / g;
    if (q->type != DTYPE_QINT || q->q_bits != 4 || q->q_group != g || q->q_perm || N % 8 || K % g)
        return err("%s: quantized as %s %d-bit group %lld%s, which a group_size %lld AWQ GEMM file "
                   "cannot hold", t->module, dtype_get(q->type)->name, q->q_bits,
                   (long long)q->q_group, q->q_perm ? " act-order" : "", (long long)g);
    int32_t *qw = calloc((size_t)(K * N / 8), 4), *qz = calloc((size_t)(ng * N / 8), 4);
    lb_fp16 *sc = malloc((size_t)(ng * N) * 2);
    bufs[(*n_bufs)++] = qw, bufs[(*n_bufs)++] = qz, bufs[(*n_bufs)++] = sc;
    if (!qw || !qz || !sc) return err("out of memory packing %s", t->module);
    const struct qint_param *par = qint_params(q);
    for (int64_t n = 0; n < N; n++) {
        const uint8_t *row = (const uint8_t *)q->data + (size_t)n * tensor_row_bytes(q);
        for (int64_t k = 0; k < K; k++) qint_awq_set(qw + k * (N / 8), n, qint_code_get(row, 4, k));
        for (int64_t r = 0; r < ng; r++) {
            const struct qint_param *p = &par[n * ng + r];
            const lb_fp16 h = lb_f32_to_fp16(p->d);
            if (lb_fp16_to_f32(h) != p->d)
                return err("%s: scale %.9g of row %lld is not an fp16 value (AWQ stores fp16 "
                           "scales)", t->module, (double)p->d, (long long)n);
            if (p->z < 0 || p->z > 15)
                return err("%s: zero point %g of row %lld is outside 0..15", t->module,
                           (double)p->z, (long long)n);
            sc[r * N + n] = h;
            qint_awq_set(qz + r * (N / 8), n, (unsigned)p->z);
        }
    }
    char name[256];
    const int64_t s_qw[2] = {K, N / 8}, s_qz[2] = {ng, N / 8}, s_sc[2] = {ng, N};
    snprintf(name, sizeof name, "%s.qweight", t->module);
    if (safetensors_writer_add(w, name, "I32", 2, s_qw, qw, (size_t)(K * N / 8) * 4)) return -1;
    snprintf(name, sizeof name, "%s.qzeros", t->module);
    if (safetensors_writer_add(w, name, "I32", 2, s_qz, qz, (size_t)(ng * N / 8) * 4)) return -1;
    snprintf(name, sizeof name, "%s.scales", t->module);
    if (safetensors_writer_add(w, name, "F16", 2, s_sc, sc, (size_t)(ng * N) * 2)) return -1;
    hfx_count(st, t, (size_t)(K * N / 8) * 4 + (size_t)(ng * N / 8) * 4 + (size_t)(ng * N) * 2);
    return 0;
}

int awq_write_begin(struct hfx_model *hm, int64_t group, const char *dir, struct hfx_stats *st) {
    if (group <= 0) return err("AWQ needs a positive group_size (got %lld)", (long long)group);
    int64_t *g = malloc(sizeof *g);
    if (!g) return err("out of memory");
    *g = group;
    return hfx_stream(hm, write_module, g, free, dir, st);
}

int awq_write(struct hfx_model *hm, int64_t group, const char *quantizer, json_t *extra,
              const char *dir, struct hfx_stats *st) {
    if (!hm->out && awq_write_begin(hm, group, dir, st)) return -1;
    int ret = -1;
    json_t *qc = NULL, *fl = json_array();
    if (hfx_add_tensors(hm, fl) || safetensors_writer_set_meta(&hm->out->w, "format", "pt"))
        goto out;
    qc = json_pack("{s:s, s:i, s:I, s:b, s:s}", "quant_method", "awq", "bits", 4, "group_size",
                   (json_int_t)group, "zero_point", 1, "version", "gemm");
    json_object_set_new(qc, "modules_to_not_convert",
                        json_array_size(fl) ? hfx_module_list(hm, false) : json_null());
    json_t *lb = json_pack("{s:s, s:O}", "algorithm", quantizer ? quantizer : "unknown",
                           "float_modules", fl);
    if (extra) json_object_update(lb, extra);
    json_object_set_new(qc, "lowbit", lb);
    ret = hfx_write_dir(hm, dir, &hm->out->w, qc, hm->st);
out:
    hfx_end(hm);
    json_decref(qc);
    json_decref(fl);
    return ret;
}
