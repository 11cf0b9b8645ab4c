/* quant/bnb.c: bitsandbytes NF4/FP4 (with double quant) and LLM.int8 quantization (rules and
 * sources in bnb.h). */
#include "quant/bnb.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "quant/qformat.h"

/* torch.bucketize(v, bounds, right=False): the number of bounds strictly below v */
static int bucketize(float v, const float *bounds, int n_bounds) {
    int lo = 0, hi = n_bounds; /* first i with v <= bounds[i] */
    while (lo < hi) {
        const int mid = (lo + hi) / 2;
        if (bounds[mid] < v) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

void bnb_quantize_blocks(const float *x, int64_t n, int64_t bs, const float *sorted_code,
                         int n_code, const uint8_t *order, uint8_t *q, float *absmax) {
    float bounds[255];
    for (int i = 0; i + 1 < n_code; i++) bounds[i] = (sorted_code[i] + sorted_code[i + 1]) / 2.0f;
    const int64_t rem = n % bs, full = n - rem;
    for (int64_t b0 = 0; b0 < n; b0 += bs) {
        const int64_t len = LB_MIN(bs, n - b0);
        float am = 0.0f;
        for (int64_t i = 0; i < len; i++) am = fmaxf(am, fabsf(x[b0 + i]));
        const bool partial = b0 >= full;
        const float amc = fmaxf(am, 1e-38f), inv = 1.0f / amc;
        absmax[b0 / bs] = partial ? amc : am;
        for (int64_t i = 0; i < len; i++) {
            float v = partial ? x[b0 + i] / amc : x[b0 + i] * inv;
            v = fminf(fmaxf(v, -1.0f), 1.0f);
            const int idx = bucketize(v, bounds, n_code - 1);
            q[b0 + i] = order ? order[idx] : (uint8_t)idx;
        }
    }
}

/* argsort(fp4_table), stable: the sorted index -> FP4 bit pattern */
static void fp4_order(float sorted[16], uint8_t order[16]) {
    for (int i = 0; i < 16; i++) order[i] = (uint8_t)i;
    for (int i = 1; i < 16; i++) /* insertion sort: stable */
        for (int j = i; j > 0 && fp4_table[order[j - 1]] > fp4_table[order[j]]; j--) {
            const uint8_t tmp = order[j];
            order[j] = order[j - 1];
            order[j - 1] = tmp;
        }
    for (int i = 0; i < 16; i++) sorted[i] = fp4_table[order[i]];
}

void bnb_state_release(struct bnb_state *st) {
    free(st->packed);
    free(st->absmax);
    free(st->qabsmax);
    free(st->absmax2);
    memset(st, 0, sizeof *st);
}

int bnb_quantize_4bit(const float *w, int64_t K, int64_t N, enum dtype type, int64_t bs,
                      bool double_quant, struct bnb_state *st) {
    memset(st, 0, sizeof *st);
    ASSERT(type == DTYPE_NF4 || type == DTYPE_FP4);
    if (!nf4_blocksize_ok(bs))
        return err("bitsandbytes blocksize %lld (expected 32, 64, ..., 4096)", (long long)bs);
    const int64_t n = N * K, nb = nf4_n_blocks(n, bs);
    *st = (struct bnb_state){.type = type, .K = K, .N = N, .bs = bs, .n_blocks = nb,
                             .nested = double_quant};
    uint8_t *codes = xmalloc((size_t)n + 1, "bnb codes");
    st->packed = xcalloc((size_t)(n + 1) / 2, 1, "bnb packed weight");
    st->absmax = xmalloc((size_t)nb * sizeof(float), "bnb absmax");
    if (!codes || !st->packed || !st->absmax) goto oom;
    float sorted[16];
    uint8_t order[16];
    if (type == DTYPE_NF4) {
        memcpy(sorted, nf4_table, sizeof sorted);
    } else {
        fp4_order(sorted, order);
    }
    bnb_quantize_blocks(w, n, bs, sorted, 16, type == DTYPE_NF4 ? NULL : order, codes,
                        st->absmax);
    if (n % 2) { /* F.pad(scaled, (0, 1)): the pad value 0 goes through the same bucketize */
        float bounds[15];
        for (int i = 0; i < 15; i++) bounds[i] = (sorted[i] + sorted[i + 1]) / 2.0f;
        const int idx = bucketize(0.0f, bounds, 15);
        codes[n] = type == DTYPE_NF4 ? (uint8_t)idx : order[idx];
    }
    for (int64_t j = 0; j < (n + 1) / 2; j++)
        st->packed[j] = (uint8_t)(codes[2 * j] << 4 | codes[2 * j + 1]);
    free(codes);
    codes = NULL;
    if (double_quant) {
        const int64_t nb2 = nf4_n_blocks(nb, BNB_NESTED_BLOCKSIZE);
        st->qabsmax = xmalloc((size_t)nb, "bnb nested codes");
        st->absmax2 = xmalloc((size_t)nb2 * sizeof(float), "bnb nested absmax");
        float *centered = xmalloc((size_t)nb * sizeof(float), "bnb absmax - offset");
        if (!st->qabsmax || !st->absmax2 || !centered) {
            free(centered);
            goto oom;
        }
        double sum = 0;
        for (int64_t i = 0; i < nb; i++) sum += st->absmax[i];
        st->offset = (float)(sum / (double)nb);
        for (int64_t i = 0; i < nb; i++) centered[i] = st->absmax[i] - st->offset;
        bnb_dynamic_map(st->code2);
        bnb_quantize_blocks(centered, nb, BNB_NESTED_BLOCKSIZE, st->code2, 256, NULL, st->qabsmax,
                            st->absmax2);
        free(centered);
        /* the weights use the absmax rebuilt from the codes, as bitsandbytes' matmul does */
        bnb_absmax_dequant(st->qabsmax, nb, st->code2, st->absmax2, BNB_NESTED_BLOCKSIZE,
                           st->offset, st->absmax);
    }
    return 0;
oom:
    free(codes);
    bnb_state_release(st);
    return -1;
}

int bnb_state_tensor(const struct bnb_state *st, const char *name, struct tensor *t, void **buf) {
    *buf = NULL;
    if (nf4_tensor_init(t, name, st->type, st->K, st->N, st->bs)) return -1;
    void *b = xcalloc(1, tensor_nbytes(t), name);
    if (!b) return -1;
    nf4_fill(t, b, st->packed, st->absmax);
    *buf = b;
    return 0;
}

void bnb_quantize_int8(const float *w, int64_t K, int64_t N, int8_t *q, float *scb) {
    for (int64_t n = 0; n < N; n++) {
        const float *x = w + (size_t)(n * K);
        float am = 0.0f;
        for (int64_t k = 0; k < K; k++) am = fmaxf(am, fabsf(lb_fp16_to_f32(lb_f32_to_fp16(x[k]))));
        scb[n] = am;
        const float s = 127.0f / am;
        for (int64_t k = 0; k < K; k++) {
            const float v = rintf(lb_fp16_to_f32(lb_f32_to_fp16(x[k])) * s);
            q[n * K + k] = am > 0 ? (int8_t)fminf(fmaxf(v, -127.0f), 127.0f) : 0;
        }
    }
}

/* ===== the bnb recipe: a whole model into a bitsandbytes checkpoint ===== */

int bnb_quantize_model(const struct model *m, const char *src_path, const struct hf_recipe *r,
                       const char *out, bool quiet, struct hfx_stats *st) {
    const char *wd = r->weight_dtype ? r->weight_dtype : "nf4";
    const bool int8 = !strcmp(wd, "int8");
    enum dtype type = DTYPE_NF4;
    if (!strcmp(wd, "fp4")) type = DTYPE_FP4;
    else if (strcmp(wd, "nf4") && !int8)
        return err("bnb: weight dtype '%s' (expected nf4, fp4 or int8)", wd);
    if (r->knobs && *r->knobs && strcmp(r->knobs, "{}"))
        return err("bnb: unknown knobs '%s' (bnb has none: the blocksize is the group size)",
                   r->knobs);
    const int64_t bs = r->group_size > 0 ? r->group_size : 64;
    if (!int8 && !nf4_blocksize_ok(bs))
        return err("bnb: blocksize %lld (bitsandbytes allows 32, 64, ..., 4096)", (long long)bs);
    const char *cd = r->compute_dtype && *r->compute_dtype ? r->compute_dtype : "float32";
    if (strcmp(cd, "float32") && strcmp(cd, "float16") && strcmp(cd, "bfloat16"))
        return err("bnb: compute dtype '%s' (expected float32, float16 or bfloat16)", cd);
    struct hfx_model hm = {0};
    const struct bnb_write_opts o = {.int8 = int8, .type = type, .double_quant = r->double_quant,
                                     .compute_dtype = cd};
    int ret = -1;
    /* one module in fp32 at a time: each is written as soon as it is quantized */
    if (hfx_collect(&hm, m, src_path, true) || bnb_write_begin(&hm, &o, out, st)) goto out;
    for (int i = 0; i < hm.n; i++) {
        struct hfx_tensor *t = &hm.t[i];
        if (!t->linear) continue;
        if (hfx_load(&hm, i)) goto out;
        if (int8) {
            int8_t *q = xmalloc((size_t)(t->N * t->K), t->module);
            float *scb = xmalloc((size_t)t->N * sizeof *scb, t->module);
            if (!q || !scb || i8row_tensor_init(&t->q, t->module, t->K, t->N) ||
                !(t->qbuf = xcalloc(1, tensor_nbytes(&t->q), t->module))) {
                free(q), free(scb);
                goto out;
            }
            bnb_quantize_int8(t->f32, t->K, t->N, q, scb);
            i8row_fill(&t->q, t->qbuf, q, scb);
            free(q), free(scb);
        } else {
            if (bnb_quantize_4bit(t->f32, t->K, t->N, type, bs, r->double_quant, &t->bnb) ||
                bnb_state_tensor(&t->bnb, t->module, &t->q, &t->qbuf))
                goto out;
        }
        t->quantized = true;
        if (hfx_emit(&hm, i)) goto out;
    }
    (void)quiet;
    ret = bnb_write(&hm, &o, out, st);
out:
    hfx_release(&hm);
    return ret;
}

/* ===== the registry row ===== */

#include <math.h>

#include "quant/quant.h"

int bnb_recipe_check(const struct recipe *r) {
    const bool int8 = !strcmp(r->weight_dtype, "int8");
    if (!int8 && strcmp(r->weight_dtype, "nf4") && strcmp(r->weight_dtype, "fp4"))
        return err("recipe '%s': algorithm bnb quantizes to nf4, fp4 or int8, not %s", r->id,
                   r->weight_dtype);
    if (!isnan(r->bits) && r->bits != (int8 ? 8 : 4))
        return err("recipe '%s': bits %g does not match weight_dtype %s", r->id, r->bits, r->weight_dtype);
    if (r->sym != -1)
        return err("recipe '%s': bnb has no sym setting (NF4/FP4 tables and int8 rows are "
                   "symmetric by construction); leave sym empty", r->id);
    if (int8 && r->double_quant == 1)
        return err("recipe '%s': double quantization applies to 4-bit bnb only", r->id);
    if (int8 && r->has_group_size && r->group_size != -1)
        return err("recipe '%s': bnb int8 is per row (group_size -1 or empty)", r->id);
    if (!int8 && r->has_group_size && !nf4_blocksize_ok(r->group_size))
        return err("recipe '%s': bnb blocksize %d (bitsandbytes allows 32, 64, ..., 4096)", r->id,
                   r->group_size);
    /* int8 rows may run W8A8 (activations quantized per token, integer dot products) */
    if (!int8 && !strcmp(r->compute_dtype, "int8"))
        return err("recipe '%s': compute_dtype int8 is not a bitsandbytes 4-bit compute dtype "
                   "(fp32, fp16 or bf16; int8 compute is for bnb int8 rows)", r->id);
    if (r->knobs[0] && strcmp(r->knobs, "{}"))
        return err("recipe '%s': bnb has no knobs (got %s)", r->id, r->knobs);
    return 0;
}

int bnb_recipe_quantize(const struct quant_job *j, struct quant_artifact *a) {
    const struct recipe *r = j->r;
    const char *cd = !strcmp(r->compute_dtype, "fp16")   ? "float16"
                     : !strcmp(r->compute_dtype, "bf16") ? "bfloat16"
                                                         : "float32";
    const bool int8 = !strcmp(r->weight_dtype, "int8");
    const struct hf_recipe hr = {
        .algorithm = "bnb",
        .weight_dtype = r->weight_dtype,
        .group_size = int8 || !r->has_group_size ? 0 : r->group_size,
        .double_quant = r->double_quant == 1,
        .compute_dtype = cd,
    };
    snprintf(a->path, sizeof a->path, "%s/model", j->out_dir);
    struct hfx_stats st;
    if (bnb_quantize_model(j->m, j->src_path, &hr, a->path, j->quiet, &st)) return -1;
    hf_recipe_artifact(j, a, "bnb", &st);
    quant_prov(a, "quant.bnb", "%s%s, blocksize %lld, compute %s", r->weight_dtype,
               hr.double_quant ? " + double quant" : "", (long long)(hr.group_size ? hr.group_size : 64), cd);
    return 0;
}
