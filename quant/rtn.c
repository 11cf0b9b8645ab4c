/* quant/rtn.c: round-to-nearest into integer groups (the rules and their sources in rtn.h).
 * Deterministic, fp32 arithmetic as the references do it in torch (fp32 tensors); the only
 * simplification is that sums run in double where torch sums fp32 in its own order (the mse
 * search's error sums: ties between grid points may resolve differently, values agree). */
#include "quant/rtn.h"

#include <jansson.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant/qformat.h"

/* GPTQ quantize(): clamp(round(x/scale) + zero, 0, maxq) as float */
static float q_gptq(float x, float scale, float zero, float maxq) {
    const float q = rintf(x / scale) + zero;
    return fminf(fmaxf(q, 0.0f), maxq); /* NaN (0/0 when scale is 0) becomes 0 */
}

/* scale and zero of one group by AutoGPTQ's find_params (+ mse grid) */
static void params_gptq(const float *x, int64_t n, const struct rtn_opts *o, float *scale,
                        float *zero) {
    const float maxq = (float)((1 << o->bits) - 1);
    float xmin = 0.0f, xmax = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        xmin = fminf(xmin, x[i]);
        xmax = fmaxf(xmax, x[i]);
    }
    if (o->sym) {
        xmax = fmaxf(fabsf(xmin), xmax);
        if (xmin < 0) xmin = -xmax;
    }
    if (xmin == 0 && xmax == 0) xmin = -1, xmax = 1;
    *scale = (xmax - xmin) / maxq;
    *zero = o->sym ? (maxq + 1) / 2 : rintf(-xmin / *scale);
    if (!o->mse) return;
    double best = INFINITY;
    for (int i = 0; i < 80; i++) { /* int(maxshrink · grid) = 80 */
        const float p = 1.0f - (float)i / 100.0f;
        const float xmin1 = p * xmin, xmax1 = p * xmax, scale1 = (xmax1 - xmin1) / maxq;
        const float zero1 = o->sym ? *zero : rintf(-xmin1 / scale1);
        double e = 0;
        for (int64_t j = 0; j < n; j++) {
            const float d = scale1 * (q_gptq(x[j], scale1, zero1, maxq) - zero1) - x[j];
            e += pow(fabs((double)d), 2.4);
        }
        if (e < best) {
            best = e;
            *scale = scale1;
            *zero = zero1;
        }
    }
}

/* AutoAWQ pseudo_quantize_tensor, zero_point = True */
static void params_awq(const float *x, int64_t n, int bits, float *scale, float *zero) {
    const float maxq = (float)((1 << bits) - 1);
    float mn = x[0], mx = x[0];
    for (int64_t i = 1; i < n; i++) {
        mn = fminf(mn, x[i]);
        mx = fmaxf(mx, x[i]);
    }
    *scale = fmaxf(mx - mn, 1e-5f) / maxq;
    *zero = fminf(fmaxf(-rintf(mn / *scale), 0.0f), maxq);
}

int rtn_quantize(const float *w, int64_t K, int64_t N, const struct rtn_opts *o, const char *name,
                 struct tensor *t, void **buf) {
    *buf = NULL;
    const int64_t group = o->group <= 0 || o->group >= K ? K : o->group;
    if ((unsigned)o->style >= RTN_STYLE_COUNT) return err("%s: unknown RTN style", name);
    if (o->style == RTN_AWQ && o->sym)
        return err("%s: the AWQ quantizer is asymmetric (zero_point); use the GPTQ rule for sym",
                   name);
    if (qint_tensor_init(t, name, K, N, o->bits, group, false)) return -1;
    void *b = xcalloc(1, qint_tensor_bytes(K, N, o->bits, group, false), name);
    if (!b) return -1;
    qint_tensor_attach(t, b, false);
    const int64_t ng = qint_n_groups(group, K);
    const float maxq = (float)((1 << o->bits) - 1), zmin = (float)o->zero_min;
    struct qint_param *par = qint_params(t);
    for (int64_t n = 0; n < N; n++) {
        const float *x = w + (size_t)(n * K);
        uint8_t *row = (uint8_t *)t->data + (size_t)n * tensor_row_bytes(t);
        for (int64_t gi = 0; gi < ng; gi++) {
            const int64_t k0 = gi * group, len = LB_MIN(group, K - k0);
            float scale, zero;
            if (o->style == RTN_AWQ) params_awq(x + k0, len, o->bits, &scale, &zero);
            else params_gptq(x + k0, len, o, &scale, &zero);
            if (!o->scale_f32) {
                if (!(fabsf(scale) <= 65504.0f)) {
                    free(b);
                    return err("%s: row %lld group %lld needs scale %g, beyond fp16 (weights must "
                               "be finite and below 1e6)", name, (long long)n, (long long)gi,
                               (double)scale);
                }
                scale = lb_fp16_to_f32(lb_f32_to_fp16(scale));
            }
            zero = fminf(fmaxf(zero, zmin), maxq);
            par[n * ng + gi] = (struct qint_param){scale, zero};
            for (int64_t k = k0; k < k0 + len; k++)
                qint_code_set(row, o->bits, k, (unsigned)q_gptq(x[k], scale, zero, maxq));
        }
    }
    *buf = b;
    return 0;
}

/* ===== the rtn recipe: a whole model into a GPTQ or AWQ checkpoint ===== */

int rtn_quantize_model(const struct model *m, const char *src_path, const struct hf_recipe *r,
                       const char *out, bool quiet, struct hfx_stats *st) {
    int bits = r->bits;
    if (!bits && r->weight_dtype && sscanf(r->weight_dtype, "int%d", &bits) != 1)
        return err("rtn: weight dtype '%s' (expected int2, int3, int4 or int8)", r->weight_dtype);
    const char *fmt = "gptq";
    bool mse = false;
    json_t *kn = NULL;
    if (r->knobs && *r->knobs) {
        json_error_t je;
        kn = json_loads(r->knobs, 0, &je);
        if (!json_is_object(kn)) {
            json_decref(kn);
            return err("rtn: knobs '%s' are not a JSON object (%s)", r->knobs, je.text);
        }
        json_t *f = json_object_get(kn, "format"), *ms = json_object_get(kn, "mse");
        if (f && !json_is_string(f)) f = NULL;
        if (f) fmt = json_string_value(f);
        if (ms) mse = json_is_true(ms);
        const char *key;
        json_t *v;
        json_object_foreach(kn, key, v) if (strcmp(key, "format") && strcmp(key, "mse")) {
            err("rtn: unknown knob '%s' (rtn knows format, mse)", key);
            json_decref(kn);
            return -1;
        }
    }
    const bool awq = !strcmp(fmt, "awq"), v2 = !strcmp(fmt, "gptq_v2");
    int ret = -1;
    struct hfx_model hm = {0};
    if (!awq && !v2 && strcmp(fmt, "gptq")) {
        err("rtn: format '%s' (expected gptq, gptq_v2 or awq)", fmt);
        goto out0;
    }
    if (awq && r->sym) {
        err("rtn: the AWQ format is asymmetric (zero_point); use sym false or format gptq");
        goto out0;
    }
    if (awq && r->group_size <= 0) {
        err("rtn: the AWQ format needs a group size (AutoAWQ has no per-channel mode)");
        goto out0;
    }
    json_t *extra = json_pack("{s:b}", "mse", mse);
    const struct gptq_write_opts go = {.bits = bits, .group = r->group_size, .sym = r->sym,
                                       .v2 = v2, .damp_percent = 0.01, .quantizer = "rtn",
                                       .extra = extra};
    /* one module in fp32 at a time: each is written as soon as it is quantized */
    if (!extra || hfx_collect(&hm, m, src_path, true) ||
        (awq ? awq_write_begin(&hm, r->group_size, out, st) : gptq_write_begin(&hm, &go, out, st)))
        goto out;
    for (int i = 0; i < hm.n; i++) {
        struct hfx_tensor *t = &hm.t[i];
        if (!t->linear) continue;
        const enum qplan plan = qformat_plan(awq, t->K, t->N, bits, r->group_size, t->note,
                                             sizeof t->note);
        if (plan != QPLAN_GROUP && !quiet) fprintf(stderr, "rtn: %s: %s\n", t->module, t->note);
        if (plan == QPLAN_FLOAT) continue;
        const struct rtn_opts o = {
            .bits = bits,
            .group = plan == QPLAN_CHANNEL ? -1 : r->group_size,
            .sym = r->sym,
            .mse = mse,
            .style = awq ? RTN_AWQ : RTN_GPTQ,
            .zero_min = !awq && !v2 ? 1 : 0, /* v1 stores zero - 1 */
        };
        if (hfx_load(&hm, i) || rtn_quantize(t->f32, t->K, t->N, &o, t->module, &t->q, &t->qbuf))
            goto out;
        t->quantized = true;
        if (hfx_emit(&hm, i)) goto out;
    }
    ret = awq ? awq_write(&hm, r->group_size, "rtn", extra, out, st)
              : gptq_write(&hm, &go, out, st);
out:
    json_decref(extra);
    hfx_release(&hm);
out0:
    json_decref(kn);
    return ret;
}

/* ===== the registry row ===== */

#include "quant/quant.h"

static int rtn_bits(const struct recipe *r) {
    int bits = 0;
    if (sscanf(r->weight_dtype, "int%d", &bits) != 1 || (bits != 2 && bits != 3 && bits != 4 && bits != 8))
        return err("recipe '%s': algorithm rtn quantizes to int2, int3, int4 or int8, not %s", r->id,
                   r->weight_dtype);
    if (!isnan(r->bits) && r->bits != bits)
        return err("recipe '%s': bits %g does not match weight_dtype %s", r->id, r->bits, r->weight_dtype);
    return bits;
}

int rtn_recipe_check(const struct recipe *r) {
    const int bits = rtn_bits(r);
    if (bits < 0) return -1;
    if (r->double_quant == 1)
        return err("recipe '%s': algorithm rtn has no double quantization (that is bnb's)", r->id);
    if (!strcmp(r->compute_dtype, "int8"))
        return err("recipe '%s': compute_dtype int8 is not available for rtn weights (fp32, fp16 "
                   "or bf16 activations)", r->id);
    const int64_t g = r->has_group_size ? r->group_size : 128;
    if (g != -1 && (g < 32 || g % 32))
        return err("recipe '%s': group_size %lld (rtn groups are multiples of 32, or -1 per "
                   "channel)", r->id, (long long)g);
    json_t *kn; /* the knobs are parsed again by rtn_quantize_model; check them early */
    if (recipe_knobs(r, &kn)) return -1;
    if (kn) {
        int ret = 0;
        const char *key;
        json_t *v;
        json_object_foreach(kn, key, v) {
            if (!strcmp(key, "format") && json_is_string(v) &&
                (!strcmp(json_string_value(v), "gptq") || !strcmp(json_string_value(v), "gptq_v2") ||
                 !strcmp(json_string_value(v), "awq")))
                continue;
            if (!strcmp(key, "mse") && json_is_boolean(v)) continue;
            ret = err("recipe '%s': rtn knob '%s' (rtn knows format: gptq|gptq_v2|awq and mse: "
                      "true|false)", r->id, key);
            break;
        }
        json_t *f = json_object_get(kn, "format");
        if (!ret && f && !strcmp(json_string_value(f), "awq")) {
            if (bits != 4) ret = err("recipe '%s': the AWQ format is 4-bit only", r->id);
            else if (r->sym == 1) ret = err("recipe '%s': the AWQ format is asymmetric (sym 0)", r->id);
            else if (g == -1) ret = err("recipe '%s': the AWQ format needs a group size", r->id);
        }
        json_decref(kn);
        if (ret) return -1;
    }
    return 0;
}

void hf_recipe_artifact(const struct quant_job *j, struct quant_artifact *a, const char *format,
                        const struct hfx_stats *st) {
    snprintf(a->format, sizeof a->format, "%s", format);
    char tj[4200];
    snprintf(tj, sizeof tj, "%s/tokenizer.json", a->path);
    FILE *f = fopen(tj, "rb");
    if (f) {
        fclose(f);
    } else if (j->src_tokenizer) { /* no tokenizer.json written: eval needs the source's */
        snprintf(a->tokenizer, sizeof a->tokenizer, "%s", j->src_tokenizer);
    } else if (j->m->format == MODEL_FORMAT_GGUF) {
        snprintf(a->tokenizer, sizeof a->tokenizer, "%s", j->src_path);
    } else {
        const char *sl = strrchr(j->src_path, '/');
        const int dir = sl ? (int)(sl - j->src_path + 1) : 0;
        snprintf(a->tokenizer, sizeof a->tokenizer, "%.*stokenizer.bin", dir, j->src_path);
    }
    quant_prov(a, "quant.format", "%s", format);
    quant_prov(a, "quant.bits_per_weight", "%.4f", hfx_bpw_file(st));
    quant_prov(a, "quant.bpw_block_linears", "%.4f", hfx_bpw_linears(st));
    quant_prov(a, "quant.bpw_quantized_modules", "%.4f", hfx_bpw_quantized(st));
    quant_prov(a, "quant.modules", "%d of %d block linears quantized, %d per-channel fallback, %d "
               "kept in float", st->n_modules_q, st->n_modules, st->n_per_channel, st->n_float);
    quant_prov(a, "quant.file_bytes", "%zu", st->file_bytes);
}

int rtn_recipe_quantize(const struct quant_job *j, struct quant_artifact *a) {
    const struct recipe *r = j->r;
    const int bits = rtn_bits(r);
    if (bits < 0) return -1;
    const struct hf_recipe hr = {
        .algorithm = "rtn",
        .bits = bits,
        .group_size = r->has_group_size ? r->group_size : 128,
        .sym = r->sym != 0,
        .knobs = r->knobs[0] ? r->knobs : NULL,
    };
    snprintf(a->path, sizeof a->path, "%s/model", j->out_dir);
    struct hfx_stats st;
    if (rtn_quantize_model(j->m, j->src_path, &hr, a->path, j->quiet, &st)) return -1;
    const char *fmt = r->knobs[0] && strstr(r->knobs, "\"awq\"") ? "awq" : "gptq";
    hf_recipe_artifact(j, a, fmt, &st);
    quant_prov(a, "quant.rtn", "%d-bit, group %lld, %s%s", bits, (long long)hr.group_size,
               hr.sym ? "sym" : "asym", r->knobs[0] && strstr(r->knobs, "\"mse\":true") ? ", mse clipping" : "");
    return 0;
}
