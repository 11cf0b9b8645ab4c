/* quant/gptq_format.c: the GPTQ checkpoint writer (AutoGPTQ / GPTQModel layout, REFERENCE.md C1;
 * rules in quant/qformat.h) and the shape planner shared with AWQ.
 *
 * Per module P [N out][K in], b bits, file group g (config group_size, -1 = K):
 *   P.qweight I32 [K·b/32, N]: input column k of output n at bits [k·b, k·b+b) of column n's
 *             LSB-first stream (qint_stream_set; AutoGPTQ qlinear_cuda_old.pack, 3-bit included)
 *   P.qzeros  I32 [ceil(K/g), N·b/32]: zero − 1 (v1, "gptq") or the zero (v2, "gptq_v2"), packed
 *             along the outputs
 *   P.scales  F16 [ceil(K/g), N]: the in-memory fp32 scales, which RTN/GPTQ rounded to fp16, so
 *             the conversion is exact (refused otherwise)
 *   P.g_idx   I32 [K]: group of input column k: k / g, or with act-order (q_perm) the group of
 *             its stored position, q_perm[j] -> j / g (non-monotonic)
 * quantization_config: quant_method "gptq", bits, group_size, desc_act, sym, damp_percent,
 * true_sequential, static_groups, checkpoint_format and format (the same value: GPTQModel writes
 * both, and some transformers/optimum versions read only one), modules_in_block_to_quantize (when
 * some modules stay in float), plus "lowbit": {algorithm, per_channel_modules, float_modules,
 * ...}. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant/qformat.h"

enum qplan qformat_plan(bool awq, int64_t K, int64_t N, int bits, int64_t group, char *note,
                        size_t n_note) {
    note[0] = 0;
    if (awq) {
        if (bits != 4) {
            snprintf(note, n_note, "kept in float: AWQ GEMM holds 4-bit weights only");
            return QPLAN_FLOAT;
        }
        if (N % 8) {
            snprintf(note, n_note, "kept in float: AWQ packs 8 outputs per int32, out_features %lld",
                     (long long)N);
            return QPLAN_FLOAT;
        }
        if (group <= 0 || K % group) {
            snprintf(note, n_note, "kept in float: AWQ needs group_size %lld to divide in_features %lld",
                     (long long)group, (long long)K);
            return QPLAN_FLOAT;
        }
        return QPLAN_GROUP;
    }
    if (K % 32 || N % 32) { /* AutoGPTQ's QuantLinear: qweight [K // 32 · bits, N] */
        snprintf(note, n_note,
                 "kept in float: AutoGPTQ holds %d-bit GPTQ modules whose in_features and "
                 "out_features are multiples of 32 (it allocates in_features // 32 · %d qweight "
                 "rows), not %lld × %lld",
                 bits, bits, (long long)K, (long long)N);
        return QPLAN_FLOAT;
    }
    if (group > 0 && group < K && K % group) {
        snprintf(note, n_note, "per-channel: group_size %lld does not divide in_features %lld",
                 (long long)group, (long long)K);
        return QPLAN_CHANNEL;
    }
    return QPLAN_GROUP;
}

/* what gptq_write's modules share: the options, and what the config reports of them */
struct gptq_ctx {
    const struct gptq_write_opts *o;
    json_t *per_channel; /* modules quantized per channel where the file's group is smaller */
    bool any_perm;       /* some module has an act-order permutation */
};

/* the module's tensors into w; their bytes go to the tallies; ctx: a struct gptq_ctx */
static int write_module(void *ctx, struct safetensors_writer *w, const struct hfx_tensor *t,
                        void **bufs, int *n_bufs, struct hfx_stats *st) {
    struct gptq_ctx *c = ctx;
    const struct gptq_write_opts *o = c->o;
    const struct tensor *q = &t->q;
    c->any_perm |= q->q_perm != NULL;
    if (o->group > 0 && o->group < t->K && q->q_group != o->group) {
        st->n_per_channel++;
        json_array_append_new(c->per_channel, json_string(t->module));
    }
    const int b = o->bits;
    const int64_t K = t->K, N = t->N, g = o->group <= 0 ? K : o->group, ng = qint_n_groups(g, K);
    const int64_t tg = q->q_group, tng = qint_n_groups(tg, K);
    if (q->type != DTYPE_QINT || q->q_bits != b || (tg != g && tg != K) || (q->q_perm && tg != g))
        return err("%s: quantized as %s %d-bit group %lld, which a %d-bit group_size %lld GPTQ file "
                   "cannot hold", t->module, dtype_get(q->type)->name, q->q_bits, (long long)tg, b,
                   (long long)g);
    if ((K * b) % 32 || (N * b) % 32)
        return err("%s: %d-bit GPTQ packing needs %lld·%d and %lld·%d to be multiples of 32",
                   t->module, b, (long long)K, b, (long long)N, b);
    const int64_t rows = K * b / 32, zcols = N * b / 32;
    int32_t *qw = calloc((size_t)(rows * N), 4), *qz = calloc((size_t)(ng * zcols), 4);
    int32_t *gi = malloc((size_t)K * 4), *inv = malloc((size_t)K * 4);
    lb_fp16 *sc = malloc((size_t)(ng * N) * 2);
    bufs[(*n_bufs)++] = qw, bufs[(*n_bufs)++] = qz, bufs[(*n_bufs)++] = gi, bufs[(*n_bufs)++] = sc;
    if (!qw || !qz || !gi || !inv || !sc) {
        free(inv);
        return err("out of memory packing %s", t->module);
    }
    for (int64_t j = 0; j < K; j++) inv[q->q_perm ? q->q_perm[j] : j] = (int32_t)j;
    for (int64_t k = 0; k < K; k++) gi[k] = (int32_t)(q->q_perm ? inv[k] / g : k / g);
    const struct qint_param *par = qint_params(q);
    const unsigned zmax = (1u << b) - 1;
    int ret = -1;
    for (int64_t n = 0; n < N; n++) {
        const uint8_t *row = (const uint8_t *)q->data + (size_t)n * tensor_row_bytes(q);
        for (int64_t k = 0; k < K; k++)
            qint_stream_set(qw + n, N, k, b, qint_code_get(row, b, inv[k]));
        for (int64_t r = 0; r < ng; r++) {
            /* file group r holds stored columns [r·g, ...): the tensor's group of column r·g */
            const struct qint_param *p = &par[n * tng + (tg == g ? r : 0)];
            const lb_fp16 h = lb_f32_to_fp16(p->d);
            if (lb_fp16_to_f32(h) != p->d) {
                err("%s: scale %.9g of row %lld is not an fp16 value (GPTQ stores fp16 scales)",
                    t->module, (double)p->d, (long long)n);
                goto out;
            }
            const int z = (int)p->z - (o->v2 ? 0 : 1);
            if (z < 0 || (unsigned)z > zmax) {
                err("%s: zero point %g of row %lld cannot be stored in a %s file (%s)", t->module,
                    (double)p->z, (long long)n, o->v2 ? "gptq_v2" : "gptq v1",
                    o->v2 ? "zeros are 0..2^bits-1" : "it stores zero - 1 in bits bits: quantize "
                    "with zero >= 1 or write checkpoint_format gptq_v2");
                goto out;
            }
            sc[r * N + n] = h;
            qint_stream_set(qz + r * zcols, 1, n, b, (unsigned)z);
        }
    }
    char name[256];
    const int64_t s_qw[2] = {rows, N}, s_qz[2] = {ng, zcols}, s_sc[2] = {ng, N}, s_gi[1] = {K};
    const size_t nb_qw = (size_t)(rows * N) * 4, nb_qz = (size_t)(ng * zcols) * 4,
                 nb_sc = (size_t)(ng * N) * 2, nb_gi = (size_t)K * 4;
#define ADD(suffix, dt, nd, shape, data, nb)                                                       \
    do {                                                                                           \
        snprintf(name, sizeof name, "%s.%s", t->module, suffix);                                   \
        if (safetensors_writer_add(w, name, dt, nd, shape, data, nb)) goto out;                    \
        hfx_count(st, t, nb);                                                                      \
    } while (0)
    ADD("qweight", "I32", 2, s_qw, qw, nb_qw);
    ADD("qzeros", "I32", 2, s_qz, qz, nb_qz);
    ADD("scales", "F16", 2, s_sc, sc, nb_sc);
    ADD("g_idx", "I32", 1, s_gi, gi, nb_gi);
#undef ADD
    ret = 0;
out:
    free(inv);
    return ret;
}

static void gptq_ctx_free(void *p) {
    struct gptq_ctx *c = p;
    if (c) json_decref(c->per_channel);
    free(c);
}

int gptq_write_begin(struct hfx_model *hm, const struct gptq_write_opts *o, const char *dir,
                     struct hfx_stats *st) {
    if (o->bits != 2 && o->bits != 3 && o->bits != 4 && o->bits != 8)
        return err("GPTQ writes 2, 3, 4 or 8 bits, not %d", o->bits);
    struct gptq_ctx *c = calloc(1, sizeof *c);
    if (!c || !(c->per_channel = json_array())) {
        free(c);
        return err("out of memory");
    }
    c->o = o;
    return hfx_stream(hm, write_module, c, gptq_ctx_free, dir, st);
}

int gptq_write(struct hfx_model *hm, const struct gptq_write_opts *o, const char *dir,
               struct hfx_stats *st) {
    if (!hm->out && gptq_write_begin(hm, o, dir, st)) return -1;
    const struct gptq_ctx *c = hm->fn_ctx; /* gptq_write_begin's */
    int ret = -1;
    json_t *qc = NULL, *fl = json_array();
    if (hfx_add_tensors(hm, fl) || safetensors_writer_set_meta(&hm->out->w, "format", "pt"))
        goto out;
    /* "checkpoint_format" (AutoGPTQ, optimum) and "format" (GPTQModel writes both; one
     * transformers/optimum pair reads only this one): the same value in both */
    qc = json_pack("{s:s, s:i, s:I, s:b, s:b, s:f, s:b, s:b, s:s, s:s}", "quant_method", "gptq",
                   "bits", o->bits, "group_size", (json_int_t)(o->group <= 0 ? -1 : o->group),
                   "desc_act", o->desc_act || c->any_perm, "sym", o->sym, "damp_percent",
                   o->damp_percent > 0 ? o->damp_percent : 0.01, "true_sequential",
                   o->true_sequential, "static_groups", o->static_groups, "checkpoint_format",
                   o->v2 ? "gptq_v2" : "gptq", "format", o->v2 ? "gptq_v2" : "gptq");
    if (json_array_size(fl)) json_object_set_new(qc, "modules_in_block_to_quantize",
                                                 json_pack("[o]", hfx_module_list(hm, true)));
    if (o->top) json_object_update(qc, o->top);
    json_t *lb = json_pack("{s:s, s:O, s:O}", "algorithm", o->quantizer ? o->quantizer : "unknown",
                           "per_channel_modules", c->per_channel, "float_modules", fl);
    if (o->extra) json_object_update(lb, o->extra);
    json_object_set_new(qc, "lowbit", lb);
    ret = hfx_write_dir(hm, dir, &hm->out->w, qc, hm->st);
    if (!ret) { /* AutoGPTQ reads quantize_config.json too */
        char p[4300];
        snprintf(p, sizeof p, "%s/quantize_config.json", dir);
        if (json_dump_file(qc, p, JSON_INDENT(2))) ret = err("cannot write %s", p);
    }
out:
    hfx_end(hm);
    json_decref(qc);
    json_decref(fl);
    return ret;
}
