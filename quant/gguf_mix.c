/* quant/gguf_mix.c: llama.cpp's per-tensor type choice and the GGUF quantizer (gguf_mix.h).
 *
 * Source: src/llama-quant.cpp of llama.cpp de3ff81: tensor_allows_quantization,
 * tensor_get_category, llama_tensor_get_type_impl, tensor_type_fallback,
 * tensor_requires_imatrix and llama_model_quantize_impl, restricted to the file types in
 * gguf_mix.h (every one but MXFP4_MOE, Q1_0 and Q2_0).
 * Two quirks of that version are kept on purpose: a fused attn_qkv is counted as attn_v (its own
 * branch further down is unreachable there), and a 32-block type that does not fit falls to F16
 * rather than being refused. Tensor order, KV order, alignment (32) and padding follow
 * llama-quantize, so the output is byte-identical to its file when the source is a GGUF
 * (tests/test_quants.c and the cross-check in the report). */
#include "quant/gguf_mix.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "eval/gguf.h"
#include "eval/tok_impl.h"
#include "kernels/ggml_quants.h"
#include "kernels/iquants.h"
#include "quant/calib.h"
#include "quant/imatrix.h"
#include "quant/quant.h"

/* ===== file types ===== */

static const struct {
    enum gguf_ftype ft;
    const char *name;
    enum dtype base;
} ftypes[] = {
    {GGUF_FTYPE_ALL_F32, "F32", DTYPE_F32},     {GGUF_FTYPE_F16, "F16", DTYPE_F16},
    {GGUF_FTYPE_BF16, "BF16", DTYPE_BF16},      {GGUF_FTYPE_Q8_0, "Q8_0", DTYPE_Q8_0},
    {GGUF_FTYPE_Q4_0, "Q4_0", DTYPE_Q4_0},      {GGUF_FTYPE_Q4_1, "Q4_1", DTYPE_Q4_1},
    {GGUF_FTYPE_Q5_0, "Q5_0", DTYPE_Q5_0},      {GGUF_FTYPE_Q5_1, "Q5_1", DTYPE_Q5_1},
    {GGUF_FTYPE_IQ4_NL, "IQ4_NL", DTYPE_IQ4_NL}, {GGUF_FTYPE_Q2_K, "Q2_K", DTYPE_Q2_K},
    {GGUF_FTYPE_Q2_K_S, "Q2_K_S", DTYPE_Q2_K},  {GGUF_FTYPE_Q3_K_S, "Q3_K_S", DTYPE_Q3_K},
    {GGUF_FTYPE_Q3_K_M, "Q3_K_M", DTYPE_Q3_K},  {GGUF_FTYPE_Q3_K_L, "Q3_K_L", DTYPE_Q3_K},
    {GGUF_FTYPE_Q4_K_S, "Q4_K_S", DTYPE_Q4_K},  {GGUF_FTYPE_Q4_K_M, "Q4_K_M", DTYPE_Q4_K},
    {GGUF_FTYPE_Q5_K_S, "Q5_K_S", DTYPE_Q5_K},  {GGUF_FTYPE_Q5_K_M, "Q5_K_M", DTYPE_Q5_K},
    {GGUF_FTYPE_Q6_K, "Q6_K", DTYPE_Q6_K},
    /* i-quants and ternary (llama_ftype_get_default_type: IQ2_S is mostly IQ2_XS, IQ2_M mostly
     * IQ2_S, IQ3_XS/M mostly IQ3_S) */
    {GGUF_FTYPE_IQ4_XS, "IQ4_XS", DTYPE_IQ4_XS},  {GGUF_FTYPE_IQ3_M, "IQ3_M", DTYPE_IQ3_S},
    {GGUF_FTYPE_IQ3_S, "IQ3_S", DTYPE_IQ3_S},     {GGUF_FTYPE_IQ3_XS, "IQ3_XS", DTYPE_IQ3_S},
    {GGUF_FTYPE_IQ3_XXS, "IQ3_XXS", DTYPE_IQ3_XXS}, {GGUF_FTYPE_IQ2_M, "IQ2_M", DTYPE_IQ2_S},
    {GGUF_FTYPE_IQ2_S, "IQ2_S", DTYPE_IQ2_XS},    {GGUF_FTYPE_IQ2_XS, "IQ2_XS", DTYPE_IQ2_XS},
    {GGUF_FTYPE_IQ2_XXS, "IQ2_XXS", DTYPE_IQ2_XXS}, {GGUF_FTYPE_IQ1_M, "IQ1_M", DTYPE_IQ1_M},
    {GGUF_FTYPE_IQ1_S, "IQ1_S", DTYPE_IQ1_S},     {GGUF_FTYPE_TQ2_0, "TQ2_0", DTYPE_TQ2_0},
    {GGUF_FTYPE_TQ1_0, "TQ1_0", DTYPE_TQ1_0},
};

int gguf_ftype_from_name(const char *name, enum gguf_ftype *out) {
    for (size_t i = 0; i < LB_ARRAY_LEN(ftypes); i++)
        if (!strcasecmp(name, ftypes[i].name)) {
            *out = ftypes[i].ft;
            return 0;
        }
    char list[600] = "";
    for (size_t i = 0; i < LB_ARRAY_LEN(ftypes); i++) {
        size_t l = strlen(list);
        snprintf(list + l, sizeof list - l, "%s%s", i ? " " : "", ftypes[i].name);
    }
    return err("unknown GGUF file type '%s' (expected one of: %s)", name, list);
}

const char *gguf_ftype_name(enum gguf_ftype ft) {
    for (size_t i = 0; i < LB_ARRAY_LEN(ftypes); i++)
        if (ftypes[i].ft == ft) return ftypes[i].name;
    return "?";
}

enum dtype gguf_ftype_base(enum gguf_ftype ft) {
    for (size_t i = 0; i < LB_ARRAY_LEN(ftypes); i++)
        if (ftypes[i].ft == ft) return ftypes[i].base;
    BUG("gguf_ftype_base: %d", (int)ft);
}

static bool is_block_type(enum dtype t) {
    return t != DTYPE_F32 && t != DTYPE_F16 && t != DTYPE_BF16; /* ggml_is_quantized */
}

/* ===== which tensors, which category ===== */

bool gguf_mix_quantizable(const struct gguf_mix_tensor *t, bool leave_output) {
    static const char *const never[] = {
        "_norm.weight", "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel",
        "per_layer_model_proj", "ssm_conv1d", "shortconv.conv.weight", "indexer.k_proj.weight",
        "indexer.q_proj.weight", "time_mix_first.weight", "time_mix_w0.weight",
        "time_mix_w1.weight", "time_mix_w2.weight", "time_mix_v0.weight", "time_mix_v1.weight",
        "time_mix_v2.weight", "time_mix_a0.weight", "time_mix_a1.weight", "time_mix_a2.weight",
        "time_mix_g1.weight", "time_mix_g2.weight", "time_mix_decay_w1.weight",
        "time_mix_decay_w2.weight", "time_mix_lerp_fused.weight", "attn_rel_b.weight",
        ".position_embd", "sam.pos_embd", "sam.neck.", "sam.net_", ".rel_pos", ".patch_embd",
        ".patch_merger", "a.rvq.codebook", "mm.a.code_embd"};
    if (t->n_dims < 2 || !ends_with(t->name, "weight")) return false;
    if (leave_output && !strcmp(t->name, "output.weight")) return false;
    if (!strcmp(t->name, "position_embd.weight") || !strcmp(t->name, "token_types.weight"))
        return false;
    for (size_t i = 0; i < LB_ARRAY_LEN(never); i++)
        if (strstr(t->name, never[i])) return false;
    return true;
}

enum category { CAT_TOKEN_EMBD, CAT_ATTN_Q, CAT_ATTN_V, CAT_ATTN_K, CAT_ATTN_QKV, CAT_ATTN_KV_B,
                CAT_ATTN_OUTPUT, CAT_FFN_UP, CAT_FFN_GATE, CAT_FFN_DOWN, CAT_OUTPUT, CAT_OTHER };

static enum category category_of(const char *name) {
    if (!strcmp(name, "output.weight")) return CAT_OUTPUT;
    if (!strcmp(name, "token_embd.weight") || !strcmp(name, "per_layer_token_embd.weight"))
        return CAT_TOKEN_EMBD;
    static const struct {
        const char *s;
        enum category c;
    } by_part[] = {{"attn_qkv.weight", CAT_ATTN_QKV},       {"attn_kv_b.weight", CAT_ATTN_KV_B},
                   {"attn_v.weight", CAT_ATTN_V},           {"attn_k.weight", CAT_ATTN_K},
                   {"attn_q.weight", CAT_ATTN_Q},           {"attn_output.weight", CAT_ATTN_OUTPUT},
                   {"ffn_up", CAT_FFN_UP},                  {"ffn_gate", CAT_FFN_GATE},
                   {"ffn_down", CAT_FFN_DOWN}};
    for (size_t i = 0; i < LB_ARRAY_LEN(by_part); i++)
        if (strstr(name, by_part[i].s)) return by_part[i].c;
    return CAT_OTHER;
}

static bool is_attn_v_like(enum category c) {
    return c == CAT_ATTN_V || c == CAT_ATTN_QKV || c == CAT_ATTN_KV_B;
}

static int layer_of(const char *name) {
    int l = -1;
    if (sscanf(name, "blk.%d.", &l) != 1) l = -1;
    return l;
}

static const struct gguf_mix_tensor *order_base;
static int order_cmp(const void *a, const void *b) {
    const struct gguf_mix_tensor *x = &order_base[*(const int *)a];
    const struct gguf_mix_tensor *y = &order_base[*(const int *)b];
    const int lx = layer_of(x->name), ly = layer_of(y->name);
    if (lx != ly) return lx < ly ? -1 : 1;
    return strcmp(x->name, y->name);
}

void gguf_mix_order(const struct gguf_mix_tensor *t, int n, int *idx) {
    for (int i = 0; i < n; i++) idx[i] = i;
    order_base = t;
    qsort(idx, (size_t)n, sizeof *idx, order_cmp);
    order_base = NULL;
}

/* ===== the rules ===== */

struct mix_state {
    int n_attention_wv, i_attention_wv, n_ffn_down, i_ffn_down, i_ffn_gate, i_ffn_up;
    bool tied; /* no output.weight: token_embd is also the output */
};

static bool use_more_bits(int i, int n) {
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

/* the 1.5-2.7 bpw i-quant file types, which have their own branch in llama.cpp */
static bool is_iq_low(enum gguf_ftype ft) {
    return ft == GGUF_FTYPE_IQ2_XXS || ft == GGUF_FTYPE_IQ2_XS || ft == GGUF_FTYPE_IQ1_S ||
           ft == GGUF_FTYPE_IQ2_S || ft == GGUF_FTYPE_IQ2_M || ft == GGUF_FTYPE_IQ1_M;
}

/* llama_tensor_get_type_impl, the i-quant branch (IQ2_XXS/XS/S/M, IQ1_S/M) */
static enum dtype mix_rule_iq_low(struct mix_state *s, const struct gguf_mix_model *mm,
                                  enum gguf_ftype ft, enum category cat, enum dtype nt) {
    const int n_gqa = mm->n_head_kv ? mm->n_head / mm->n_head_kv : 0;
    const bool s_or_m = ft == GGUF_FTYPE_IQ2_S || ft == GGUF_FTYPE_IQ2_M;
    if (is_attn_v_like(cat)) {
        s->i_attention_wv++;
        if (n_gqa >= 4 || mm->n_expert >= 4) return DTYPE_Q4_K;
        return s_or_m ? DTYPE_IQ3_S : DTYPE_Q2_K;
    }
    if (mm->n_expert == 8 && cat == CAT_ATTN_K) return DTYPE_Q4_K;
    if (cat == CAT_FFN_DOWN) {
        if (s->i_ffn_down < s->n_ffn_down / 8) nt = s_or_m ? DTYPE_IQ3_S : DTYPE_Q2_K;
        s->i_ffn_down++;
        return nt;
    }
    if (cat == CAT_ATTN_OUTPUT) {
        if (mm->n_expert == 8) return DTYPE_Q5_K;
        if (ft == GGUF_FTYPE_IQ1_S || ft == GGUF_FTYPE_IQ1_M) return DTYPE_IQ2_XXS;
        if (s_or_m) return DTYPE_IQ3_S;
    }
    return nt;
}

/* llama_tensor_get_type_impl for our ftypes */
static enum dtype mix_rule(struct mix_state *s, const struct gguf_mix_model *mm,
                           const struct gguf_mix_opts *o, const struct gguf_mix_tensor *t,
                           enum category cat, enum dtype nt) {
    const enum gguf_ftype ft = o->ftype;
    const bool falcon = !strcmp(mm->arch, "falcon");
    const int n_gqa = mm->n_head_kv ? mm->n_head / mm->n_head_kv : 0;
    const bool is_70b =
        !strcmp(mm->arch, "llama") && mm->n_layer == 80 && mm->n_head != mm->n_head_kv;
    if (cat == CAT_OUTPUT || (s->tied && cat == CAT_TOKEN_EMBD)) {
        if (falcon || t->ne[0] % dtype_get(nt)->block) return DTYPE_Q8_0;
        if (is_iq_low(ft) || ft == GGUF_FTYPE_IQ3_XXS) return DTYPE_Q5_K;
        return nt != DTYPE_Q8_0 ? DTYPE_Q6_K : nt;
    }
    if (cat == CAT_TOKEN_EMBD) {
        if (ft == GGUF_FTYPE_IQ2_XXS || ft == GGUF_FTYPE_IQ2_XS || ft == GGUF_FTYPE_IQ1_S ||
            ft == GGUF_FTYPE_IQ1_M)
            return DTYPE_Q2_K;
        if (ft == GGUF_FTYPE_IQ2_S || ft == GGUF_FTYPE_IQ2_M || ft == GGUF_FTYPE_IQ3_XXS)
            return DTYPE_IQ3_S;
        if (ft == GGUF_FTYPE_TQ1_0 || ft == GGUF_FTYPE_TQ2_0) return DTYPE_Q4_K;
        return nt;
    }
    if (is_iq_low(ft)) return mix_rule_iq_low(s, mm, ft, cat, nt);
    if (is_attn_v_like(cat)) {
        if (ft == GGUF_FTYPE_Q2_K)
            nt = n_gqa >= 4 ? DTYPE_Q4_K : DTYPE_Q3_K;
        else if (ft == GGUF_FTYPE_Q2_K_S && n_gqa >= 4)
            nt = DTYPE_Q4_K;
        else if (ft == GGUF_FTYPE_IQ3_XXS)
            nt = n_gqa >= 4 ? DTYPE_Q4_K : !o->has_imatrix ? DTYPE_IQ3_S : DTYPE_IQ3_XXS;
        else if ((ft == GGUF_FTYPE_IQ3_XS || ft == GGUF_FTYPE_IQ3_S) && n_gqa >= 4)
            nt = DTYPE_Q4_K;
        else if (ft == GGUF_FTYPE_IQ3_M)
            nt = DTYPE_Q4_K;
        else if (ft == GGUF_FTYPE_Q3_K_M)
            nt = s->i_attention_wv < 2 ? DTYPE_Q5_K : DTYPE_Q4_K;
        else if (ft == GGUF_FTYPE_Q3_K_L)
            nt = DTYPE_Q5_K;
        else if ((ft == GGUF_FTYPE_IQ4_NL || ft == GGUF_FTYPE_IQ4_XS) && n_gqa >= 4)
            nt = DTYPE_Q5_K;
        else if ((ft == GGUF_FTYPE_Q4_K_M || ft == GGUF_FTYPE_Q5_K_M) &&
                 use_more_bits(s->i_attention_wv, s->n_attention_wv))
            nt = DTYPE_Q6_K;
        else if (ft == GGUF_FTYPE_Q4_K_S && s->i_attention_wv < 4)
            nt = DTYPE_Q5_K;
        if (is_70b && (nt == DTYPE_Q3_K || nt == DTYPE_Q4_K)) nt = DTYPE_Q5_K;
        if (mm->n_expert == 8) nt = DTYPE_Q8_0;
        s->i_attention_wv++;
        return nt;
    }
    if (cat == CAT_ATTN_K) {
        if (mm->n_expert == 8) return DTYPE_Q8_0;
        if (ft == GGUF_FTYPE_IQ3_XS) return DTYPE_IQ3_XXS;
        if (ft == GGUF_FTYPE_IQ3_XXS) return DTYPE_IQ2_S;
        return nt;
    }
    if (cat == CAT_ATTN_Q) {
        if (ft == GGUF_FTYPE_IQ3_XS) return DTYPE_IQ3_XXS;
        if (ft == GGUF_FTYPE_IQ3_XXS) return DTYPE_IQ2_S;
        return nt;
    }
    if (cat == CAT_FFN_DOWN) {
        int i_layer = s->i_ffn_down, n_layer = s->n_ffn_down;
        if (mm->n_expert > 1) i_layer = layer_of(t->name); /* experts are not consecutive */
        if (ft == GGUF_FTYPE_Q2_K) {
            nt = DTYPE_Q3_K;
        } else if (ft == GGUF_FTYPE_Q2_K_S) {
            if (i_layer < n_layer / 8) nt = DTYPE_Q4_K;
        } else if (ft == GGUF_FTYPE_IQ3_XXS && !o->has_imatrix) {
            nt = i_layer < n_layer / 8 ? DTYPE_Q4_K : DTYPE_Q3_K;
        } else if (ft == GGUF_FTYPE_Q3_K_M) {
            nt = i_layer < n_layer / 16                        ? DTYPE_Q5_K
                 : !falcon || use_more_bits(i_layer, n_layer) ? DTYPE_Q4_K
                                                              : DTYPE_Q3_K;
        } else if (ft == GGUF_FTYPE_IQ3_M &&
                   (i_layer < n_layer / 8 ||
                    (mm->n_expert == 8 && use_more_bits(i_layer, n_layer)))) {
            nt = DTYPE_Q4_K;
        } else if (ft == GGUF_FTYPE_Q3_K_L) {
            nt = falcon ? DTYPE_Q4_K : DTYPE_Q5_K;
        } else if (ft == GGUF_FTYPE_Q4_K_M) {
            if (falcon)
                nt = i_layer < n_layer / 16              ? DTYPE_Q6_K
                     : use_more_bits(i_layer, n_layer) ? DTYPE_Q5_K
                                                       : DTYPE_Q4_K;
            else if (use_more_bits(i_layer, n_layer))
                nt = DTYPE_Q6_K;
        } else if (i_layer < n_layer / 8 &&
                   (ft == GGUF_FTYPE_IQ4_NL || ft == GGUF_FTYPE_IQ4_XS) && !o->has_imatrix) {
            nt = DTYPE_Q5_K;
        } else if (ft == GGUF_FTYPE_Q5_K_M && use_more_bits(i_layer, n_layer)) {
            nt = DTYPE_Q6_K;
        } else if (ft == GGUF_FTYPE_Q4_K_S && !falcon && i_layer < n_layer / 8) {
            nt = DTYPE_Q5_K;
        } else if ((ft == GGUF_FTYPE_Q4_0 || ft == GGUF_FTYPE_Q5_0) && o->has_imatrix &&
                   i_layer < n_layer / 8) {
            nt = ft == GGUF_FTYPE_Q4_0 ? DTYPE_Q4_1 : DTYPE_Q5_1;
        }
        s->i_ffn_down++;
        return nt;
    }
    if (cat == CAT_ATTN_OUTPUT) {
        if (!falcon) {
            if (mm->n_expert == 8) {
                if (ft == GGUF_FTYPE_Q2_K || ft == GGUF_FTYPE_IQ3_XS ||
                    ft == GGUF_FTYPE_IQ3_XXS || ft == GGUF_FTYPE_Q3_K_S ||
                    ft == GGUF_FTYPE_Q3_K_M || ft == GGUF_FTYPE_IQ4_NL ||
                    ft == GGUF_FTYPE_Q4_K_S || ft == GGUF_FTYPE_Q4_K_M ||
                    ft == GGUF_FTYPE_IQ3_S || ft == GGUF_FTYPE_IQ3_M || ft == GGUF_FTYPE_IQ4_XS)
                    nt = DTYPE_Q5_K;
            } else if (ft == GGUF_FTYPE_Q2_K) {
                nt = DTYPE_Q3_K;
            } else if (ft == GGUF_FTYPE_IQ3_XXS) {
                nt = DTYPE_IQ3_S;
            } else if (ft == GGUF_FTYPE_Q3_K_M || ft == GGUF_FTYPE_IQ3_M) {
                nt = DTYPE_Q4_K;
            } else if (ft == GGUF_FTYPE_Q3_K_L) {
                nt = DTYPE_Q5_K;
            }
        } else if (ft == GGUF_FTYPE_Q3_K_L) {
            nt = DTYPE_Q4_K;
        }
        return nt;
    }
    if (cat == CAT_FFN_GATE || cat == CAT_FFN_UP) {
        int *ctr = cat == CAT_FFN_GATE ? &s->i_ffn_gate : &s->i_ffn_up;
        const int n_layer = s->n_ffn_down, i_layer = mm->n_expert > 1 ? layer_of(t->name) : *ctr;
        if (ft == GGUF_FTYPE_IQ3_XS && i_layer >= n_layer / 8 && i_layer < 7 * n_layer / 8)
            nt = DTYPE_IQ3_XXS;
        (*ctr)++;
        return nt;
    }
    return nt;
}

/* tensor_type_fallback: a type whose block does not divide the row length */
static enum dtype mix_fallback(const struct gguf_mix_tensor *t, enum dtype nt, int *n_fallback,
                               bool quiet) {
    const int64_t ncols = t->ne[0];
    const int blk = dtype_get(nt)->block;
    if (ncols % blk == 0) return nt;
    enum dtype rt = nt;
    switch (nt) {
    case DTYPE_Q2_K: case DTYPE_Q3_K: rt = DTYPE_Q4_0; break;
    case DTYPE_Q4_K: rt = DTYPE_Q5_0; break;
    case DTYPE_Q5_K: rt = DTYPE_Q5_1; break;
    case DTYPE_Q6_K: rt = DTYPE_Q8_0; break;
    case DTYPE_IQ1_S: case DTYPE_IQ1_M: case DTYPE_IQ2_XXS: case DTYPE_IQ2_XS:
    case DTYPE_IQ2_S: case DTYPE_IQ3_XXS: case DTYPE_IQ3_S: case DTYPE_IQ4_XS:
        rt = DTYPE_IQ4_NL;
        break;
    case DTYPE_TQ1_0: case DTYPE_TQ2_0: rt = DTYPE_Q4_0; break;
    default: rt = nt; break; /* a 32-block type: no smaller block to go to */
    }
    const bool f16 = ncols % dtype_get(rt)->block != 0;
    if (f16) rt = DTYPE_F16;
    if (n_fallback) (*n_fallback)++;
    if (!quiet)
        fprintf(stderr,
                "quant: warning: %-36s - ncols %6lld not divisible by %3d (required for type %s)"
                "%s -> falling back to %s\n",
                t->name, (long long)ncols, blk, dtype_get(nt)->name,
                f16 ? " (must use F16 due to unusual shape)" : "", dtype_get(rt)->name);
    return rt;
}

void gguf_mix_types(const struct gguf_mix_model *mm, const struct gguf_mix_opts *o,
                    const struct gguf_mix_tensor *t, int n, enum dtype *out, int *n_fallback,
                    bool quiet) {
    struct mix_state s = {.n_ffn_down = mm->n_layer, .tied = true};
    for (int i = 0; i < n; i++) {
        const enum category c = category_of(t[i].name);
        if (is_attn_v_like(c)) s.n_attention_wv++;
        if (c == CAT_OUTPUT) s.tied = false;
    }
    const enum dtype base = gguf_ftype_base(o->ftype);
    for (int i = 0; i < n; i++) {
        out[i] = t[i].type;
        if (!gguf_mix_quantizable(&t[i], o->leave_output)) continue;
        enum dtype nt = base;
        if (!is_block_type(base)) { /* F32/F16/BF16 files: no mix, no fallback */
            out[i] = base;
            continue;
        }
        if (!o->pure) nt = mix_rule(&s, mm, o, &t[i], category_of(t[i].name), nt);
        out[i] = mix_fallback(&t[i], nt, n_fallback, quiet);
    }
}

/* ===== the quantizer ===== */

/* one tensor of the output */
struct qtensor {
    struct gguf_mix_tensor mt;
    char name[TENSOR_NAME_MAX];
    const void *src; /* source data (type mt.type) */
    int permute_heads; /* > 0: HF rotary rows to GGUF interleaved, this many heads */
    enum dtype out_type;
    bool convert;    /* made by the writer's fill (gq_fill_tensor); else src is written as is */
    size_t out_bytes;
};

/* ggml_n_dims: trailing 1s do not count */
static int n_dims_of(const int64_t *ne, int n_dims) {
    int d = n_dims;
    while (d > 1 && ne[d - 1] == 1) d--;
    return d;
}

/* row r of a [.., n_rows] weight with HF q/k row order maps to GGUF row perm(r): within each
 * head of hd rows, HF row s·hd/2 + i holds what GGUF keeps at row 2i + s */
static int64_t hf_source_row(int64_t r, int64_t n_rows, int n_heads) {
    const int64_t hd = n_rows / n_heads, half = hd / 2, h = r / hd, j = r % hd;
    return h * hd + (j % 2) * half + j / 2;
}

/* src rows of t as fp32 (rows permuted for HF q/k), into f[n_rows][ne0] */
static void source_f32(const struct qtensor *q, float *f) {
    struct tensor t;
    memset(&t, 0, sizeof t);
    t.type = q->mt.type;
    t.n_dims = q->mt.n_dims;
    for (int d = 0; d < 4; d++) t.ne[d] = q->mt.ne[d];
    t.data = (void *)q->src;
    const int64_t n_rows = tensor_nrows(&t), ne0 = t.ne[0];
#pragma omp parallel for schedule(static) if (n_rows * ne0 >= (1 << 16))
    for (int64_t r = 0; r < n_rows; r++) {
        const int64_t sr = q->permute_heads ? hf_source_row(r, n_rows, q->permute_heads) : r;
        tensor_row_to_f32(&t, sr, f + r * ne0);
    }
}

/* quantize rows in per-thread slices (rows are independent in every gq_ type) */
static void quantize_rows(enum dtype t, const float *f, void *dst, int64_t n_rows, int64_t ne0,
                          int64_t rows_per_mat, const float *imatrix) {
    const size_t rb = dtype_row_size(t, ne0);
#pragma omp parallel if (n_rows * ne0 >= (1 << 16))
    {
#ifdef _OPENMP
        const int ith = omp_get_thread_num(), nth = omp_get_num_threads();
#else
        const int ith = 0, nth = 1;
#endif
        const int64_t r0 = n_rows * ith / nth, r1 = n_rows * (ith + 1) / nth;
        for (int64_t r = r0; r < r1;) {
            /* one call per run of rows of the same matrix (experts have their own imatrix) */
            const int64_t mat = r / rows_per_mat, end = LB_MIN(r1, (mat + 1) * rows_per_mat);
            gq_quantize(t, f + r * ne0, (char *)dst + (size_t)r * rb, end - r, ne0,
                        imatrix ? imatrix + mat * ne0 : NULL);
            r = end;
        }
    }
}

static char *str0(const struct gguf_str *s) {
    char *p = malloc(s->len + 1);
    if (!p) return NULL;
    memcpy(p, s->p, s->len);
    p[s->len] = 0;
    return p;
}

/* every KV of the source GGUF except the ones llama-quantize re-sets or drops */
static int copy_kvs(struct gguf_writer *w, const struct gguf_file *g) {
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const struct gguf_kv *kv = &g->kv[i];
        char *key = str0(&kv->key);
        if (!key) return err("out of memory");
        int rc = 0;
        if (!strcmp(key, "general.quantization_version") || !strcmp(key, "general.file_type") ||
            !strcmp(key, "split.no") || !strcmp(key, "split.count") ||
            !strcmp(key, "split.tensors.count")) {
            free(key);
            continue;
        }
        if (!strcmp(key, "general.alignment") && kv->v.u != 32) {
            /* our writer aligns to 32: a different value would make the file lie */
            free(key);
            continue;
        }
        switch (kv->type) {
        case GGUF_TYPE_UINT32: rc = gguf_writer_u32(w, key, (uint32_t)kv->v.u); break;
        case GGUF_TYPE_INT32: rc = gguf_writer_i32(w, key, (int32_t)kv->v.i); break;
        case GGUF_TYPE_FLOAT32: rc = gguf_writer_f32(w, key, (float)kv->v.f); break;
        case GGUF_TYPE_BOOL: rc = gguf_writer_bool(w, key, kv->v.u != 0); break;
        case GGUF_TYPE_STRING: {
            char *v = str0(&kv->v.str);
            rc = v ? gguf_writer_str(w, key, v) : err("out of memory");
            free(v);
            break;
        }
        case GGUF_TYPE_ARRAY:
            if (kv->v.arr.type == GGUF_TYPE_STRING) {
                char **s = calloc(kv->v.arr.n + 1, sizeof *s);
                rc = s ? 0 : err("out of memory");
                for (uint64_t j = 0; !rc && j < kv->v.arr.n; j++)
                    if (!(s[j] = str0(&kv->v.arr.strs[j]))) rc = err("out of memory");
                if (!rc) rc = gguf_writer_arr_str(w, key, (const char *const *)s, kv->v.arr.n);
                for (uint64_t j = 0; s && j < kv->v.arr.n; j++) free(s[j]);
                free(s);
            } else if (kv->v.arr.type == GGUF_TYPE_ARRAY) {
                rc = err("%s: KV %s is an array of arrays, which lowbit's GGUF writer cannot copy",
                         g->path, key);
            } else {
                rc = gguf_writer_arr(w, key, kv->v.arr.type, kv->v.arr.data, kv->v.arr.n);
            }
            break;
        default:
            rc = err("%s: KV %s has type %s, which lowbit's GGUF writer cannot write yet (it "
                     "writes u32, i32, f32, bool, string and arrays)",
                     g->path, key, gguf_type_name(kv->type));
        }
        free(key);
        if (rc) return -1;
    }
    return 0;
}

/* tokenizer.* KVs of a SentencePiece vocabulary (llama2.c pieces carry ' ' where GGUF keeps
 * U+2581); 1 when tok is NULL or a byte-level BPE vocabulary (not written yet) */
static int vocab_kvs(struct gguf_writer *w, const struct tokenizer *tok) {
    if (!tok || tok->kind == TOK_KIND_BPE) return 1;
    const int n = tok->n_vocab;
    char **tokens = calloc((size_t)n, sizeof *tokens);
    float *scores = calloc((size_t)n, sizeof *scores);
    int32_t *types = calloc((size_t)n, sizeof *types);
    int rc = tokens && scores && types ? 0 : err("out of memory");
    for (int i = 0; !rc && i < n; i++) {
        const char *p = tok->len[i] >= 0 ? tok_piece(tok, i) : "";
        size_t len = tok->len[i] >= 0 ? (size_t)tok->len[i] : 0;
        if (tok->kind == TOK_KIND_LLAMA2C && (i == tok->bos || i == tok->eos) && len > 2 &&
            p[0] == '\n' && p[len - 1] == '\n') { /* llama2.c stores "\n<s>\n", "\n</s>\n" */
            p++;
            len -= 2;
        }
        char *o = malloc(3 * len + 1);
        if (!o) {
            rc = err("out of memory");
            break;
        }
        size_t j = 0;
        for (size_t q = 0; q < len; q++) {
            if (tok->kind == TOK_KIND_LLAMA2C && p[q] == ' ') {
                memcpy(o + j, "\xe2\x96\x81", 3);
                j += 3;
            } else {
                o[j++] = p[q];
            }
        }
        o[j] = 0;
        tokens[i] = o;
        scores[i] = tok->score ? tok->score[i] : 0.0f;
        types[i] = tok->type ? tok->type[i] : TOK_TYPE_NORMAL;
    }
    if (!rc)
        rc = gguf_writer_str(w, "tokenizer.ggml.model", "llama") ||
             gguf_writer_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)tokens,
                                 (uint64_t)n) ||
             gguf_writer_arr(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, scores, (uint64_t)n) ||
             gguf_writer_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, (uint64_t)n);
    if (!rc && tok->bos >= 0)
        rc = gguf_writer_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)tok->bos);
    if (!rc && tok->eos >= 0)
        rc = gguf_writer_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)tok->eos);
    if (!rc && tok->unk >= 0)
        rc = gguf_writer_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)tok->unk);
    for (int i = 0; tokens && i < n; i++) free(tokens[i]);
    free(tokens);
    free(scores);
    free(types);
    return rc ? -1 : 0;
}

static double mib(double b) { return b / 1048576.0; }

/* the tensors of m as llama.cpp would see them: the GGUF file's list when m is one (g), else the
 * model's, with HF rotary rows to permute back; q has room for them. The count, or -1. */
static int gq_collect(const struct model *m, const struct gguf_file *g, struct qtensor *q) {
    int n = 0;
    if (g) {
        for (uint64_t i = 0; i < g->n_tensors; i++, n++) {
            const struct gguf_tensor_info *ti = &g->ti[i];
            snprintf(q[n].name, sizeof q[n].name, "%.*s", (int)ti->name.len, ti->name.p);
            const int dt = dtype_from_ggml((int)ti->ggml_type);
            if (dt < 0)
                return err("%s: tensor %s has GGUF type %u, which lowbit cannot read", g->path,
                           q[n].name, ti->ggml_type);
            q[n].mt.type = (enum dtype)dt;
            for (int d = 0; d < 4; d++) q[n].mt.ne[d] = ti->ne[d];
            q[n].mt.n_dims = n_dims_of(ti->ne, (int)ti->n_dims);
            q[n].src = g->map + g->data_offset + ti->offset;
        }
    } else {
        const bool hf_rope = m->cfg.rope_style == ROPE_NEOX && !model_gguf_keeps_hf_rope(&m->cfg);
        for (int i = 0; i < m->n_tensors; i++, n++) {
            const struct tensor *t = &m->tensors[i];
            snprintf(q[n].name, sizeof q[n].name, "%s", t->name);
            q[n].mt.type = t->type;
            for (int d = 0; d < 4; d++) q[n].mt.ne[d] = t->ne[d];
            q[n].mt.n_dims = n_dims_of(t->ne, t->n_dims);
            q[n].src = t->data;
            if (hf_rope) q[n].permute_heads = lin_rope_heads(&m->cfg, lin_of_tensor(t->name));
            const int li = lin_of_tensor(t->name), parts = li == LIN_Q ? 3 : li == LIN_GATE ? 2 : 0;
            if (!model_fused_qkv(&m->cfg) || !parts) continue;
            /* phi3: llama.cpp's file holds q, k, v as attn_qkv and gate, up as ffn_up [D, 2H];
             * the loaders made the parts views of those rows, so they lie back to back */
            const char *at = (const char *)t->data + tensor_nbytes(t);
            for (int k = 1; k < parts; k++) {
                const struct tensor *u = i + k < m->n_tensors ? &m->tensors[i + k] : NULL;
                if (!u || lin_of_tensor(u->name) != li + k || u->type != t->type ||
                    u->data != at)
                    return err("%s: %s and the linears fused with it in a phi3 GGUF are not "
                               "consecutive rows of one tensor", m->path, t->name);
                q[n].mt.ne[1] += u->ne[1];
                at += tensor_nbytes(u);
            }
            const char *s = strstr(q[n].name, li == LIN_Q ? "attn_q." : "ffn_gate.");
            snprintf((char *)s, sizeof q[n].name - (size_t)(s - q[n].name), "%s",
                     li == LIN_Q ? "attn_qkv.weight" : "ffn_up.weight");
            i += parts - 1;
        }
    }
    return n;
}

/* tensor_requires_imatrix: the very low-bit types (and Q2_K in a Q2_K_S file) need an
 * importance matrix, except for token_embd and output */
static bool requires_imatrix(const char *name, enum dtype t, enum gguf_ftype ft) {
    if (!strcmp(name, "token_embd.weight") || !strcmp(name, "per_layer_token_embd.weight") ||
        !strcmp(name, "output.weight"))
        return false;
    switch (t) {
    case DTYPE_IQ3_XXS: case DTYPE_IQ2_XXS: case DTYPE_IQ2_XS: case DTYPE_IQ2_S:
    case DTYPE_IQ1_M: case DTYPE_IQ1_S:
        return true;
    case DTYPE_Q2_K: return ft == GGUF_FTYPE_Q2_K_S;
    default: return false;
    }
}

/* the refusals llama.cpp's preliminary pass makes, before any work (mt and types in its order) */
static int gq_refuse(const struct gguf_quant_opts *o, enum gguf_ftype ft,
                     const struct gguf_mix_tensor *mt, const enum dtype *types, int n) {
    for (int k = 0; k < n; k++) {
        const struct gguf_mix_tensor *t = &mt[k];
        const bool quantized = gguf_mix_quantizable(t, o->leave_output);
        if (!o->imatrix && quantized && requires_imatrix(t->name, types[k], ft))
            return err("%s needs an importance matrix (--imatrix): tensor %s would be %s, which "
                       "llama.cpp refuses to make without one",
                       gguf_ftype_name(ft), t->name, dtype_get(types[k])->name);
        if (!o->imatrix && quantized && types[k] != t->type && iq_requires_imatrix(types[k]))
            return err("%s: tensor %s would be %s, which ggml cannot make without an importance "
                       "matrix (llama.cpp aborts here); pass --imatrix, or leave out --pure",
                       gguf_ftype_name(ft), t->name, dtype_get(types[k])->name);
        if (types[k] != t->type && is_block_type(t->type) && !o->allow_requantize)
            return err("tensor %s is already %s: requantizing to %s is disabled (as "
                       "llama-quantize without --allow-requantize); start from an F32/F16/BF16 "
                       "file",
                       t->name, dtype_get(t->type)->name, dtype_get(types[k])->name);
        if (!gq_can_quantize(types[k])) BUG("mix chose %s", dtype_get(types[k])->name);
    }
    return 0;
}

/* bytes in and out and weights of the tensors, for the report */
struct gq_sizes {
    double in, out, n_el;
};

/* each tensor k's output type and size (llama.cpp's order: q[idx[k]], mt[k]), and the importance
 * matrix entries checked, before any work; sizes for the report */
static int gq_plan(const struct gguf_quant_opts *o, enum gguf_ftype ft, struct qtensor *q,
                   const struct gguf_mix_tensor *mt, const int *idx, const enum dtype *types, int n,
                   struct gq_sizes *sz) {
    for (int k = 0; k < n; k++) {
        struct qtensor *t = &q[idx[k]];
        const struct gguf_mix_tensor *x = &mt[k];
        t->out_type = types[k];
        const int64_t ne0 = x->ne[0], n_rows = x->ne[1] * x->ne[2] * x->ne[3];
        const size_t in_bytes = dtype_row_size(x->type, ne0) * (size_t)n_rows;
        t->out_bytes = dtype_row_size(types[k], ne0) * (size_t)n_rows;
        sz->in += (double)in_bytes;
        sz->out += (double)t->out_bytes;
        sz->n_el += (double)ne0 * (double)n_rows;
        t->convert = types[k] != x->type || t->permute_heads;
        if (!o->imatrix || types[k] == x->type) continue;
        float *imw = NULL;
        int rc = imatrix_weights(o->imatrix, x->name, ne0, (int)x->ne[2], &imw);
        free(imw);
        if (rc < 0) {
            if (strcmp(x->name, "token_embd.weight")) return -1;
            rc = 0; /* llama.cpp ignores a bad token_embd entry */
        }
        if (rc == 0 && !o->quiet) fprintf(stderr, "quant: no importance matrix entry for %s\n", x->name);
        if (rc == 0 && requires_imatrix(x->name, types[k], ft))
            return err("missing importance matrix for tensor %s in a very low-bit quantization "
                       "(%s); llama.cpp bails out here too", x->name, gguf_ftype_name(ft));
        if (rc == 0 && iq_requires_imatrix(types[k]))
            return err("tensor %s would be %s, which ggml cannot make without an importance "
                       "matrix entry for it (llama.cpp aborts here)", x->name,
                       dtype_get(types[k])->name);
    }
    return 0;
}

/* what the writer's fill needs to make tensor k when the file reaches it */
struct gq_fill {
    const struct model *m;
    const struct gguf_quant_opts *o;
    const struct qtensor *q;
    const struct gguf_mix_tensor *mt;
    const int *idx, *kof; /* kof[i]: the k of the i-th filled tensor */
    int n;
    float *f32;
    int64_t f32_cap;
};

/* the writer's fill (eval/gguf.h): tensor k converted to its type into buf, one at a time, the
 * source's mapped pages released after; the progress line unless quiet */
static int gq_fill_tensor(void *ctx, uint64_t i, void *buf, uint64_t nbytes) {
    struct gq_fill *c = ctx;
    const int k = c->kof[i];
    const struct qtensor *t = &c->q[c->idx[k]];
    const struct gguf_mix_tensor *x = &c->mt[k];
    const int64_t ne0 = x->ne[0], n_rows = x->ne[1] * x->ne[2] * x->ne[3];
    if (nbytes != t->out_bytes) BUG("gguf fill: %s: %llu bytes, planned %zu", x->name,
                                    (unsigned long long)nbytes, t->out_bytes);
    float *imw = NULL;
    if (c->o->imatrix && t->out_type != x->type &&
        imatrix_weights(c->o->imatrix, x->name, ne0, (int)x->ne[2], &imw) < 0)
        imw = NULL; /* token_embd's bad entry, as the plan allowed */
    if (ne0 * n_rows > c->f32_cap) {
        free(c->f32);
        c->f32_cap = ne0 * n_rows;
        if (!(c->f32 = xmalloc((size_t)c->f32_cap * sizeof(float), x->name))) {
            c->f32_cap = 0;
            free(imw);
            return -1;
        }
    }
    source_f32(t, c->f32);
    quantize_rows(t->out_type, c->f32, buf, n_rows, ne0, x->ne[1], imw);
    model_drop_range(c->m, t->src, dtype_row_size(x->type, ne0) * (size_t)n_rows);
    if (!c->o->quiet)
        fprintf(stderr, "quant: [%4d/%4d] %-36s %-5s -> %-6s %8.2f MiB -> %8.2f MiB%s\n", k + 1,
                c->n, x->name, dtype_get(x->type)->name, dtype_get(t->out_type)->name,
                mib((double)(dtype_row_size(x->type, ne0) * (size_t)n_rows)),
                mib((double)t->out_bytes), imw ? " (imatrix)" : "");
    free(imw);
    return 0;
}

/* the file's metadata: the source GGUF's KVs (g), else the model's and its vocabulary; then the
 * importance matrix's; r->has_vocab set */
static int gq_write_kvs(struct gguf_writer *w, const struct model *m, const struct gguf_file *g,
                        const struct gguf_quant_opts *o, enum gguf_ftype ft,
                        struct gguf_quant_result *r) {
    if (g) {
        if (copy_kvs(w, g) || gguf_writer_u32(w, "general.quantization_version", 2) ||
            gguf_writer_u32(w, "general.file_type", (uint32_t)ft))
            return -1;
        r->has_vocab = gguf_find(g, "tokenizer.ggml.model") != NULL;
    } else {
        const char *base = strrchr(m->path, '/');
        if (quant_gguf_put_model_kv(w, m, o->name ? o->name : base ? base + 1 : m->path, (int)ft))
            return -1;
        const int rc = vocab_kvs(w, o->tok);
        if (rc < 0) return -1;
        if (rc == 1 && !o->vocab_optional)
            return err("%s: %s; pass --tokenizer with a SentencePiece vocabulary (tokenizer.bin, "
                       "tokenizer.json with Metaspace, or a .gguf)", m->path,
                       o->tok ? "writing a byte-level BPE vocabulary to GGUF is not supported yet"
                              : "no tokenizer to write into the GGUF");
        r->has_vocab = rc == 0;
        if (gguf_writer_u32(w, "general.quantization_version", 2)) return -1;
    }
    if (o->imatrix) { /* tools/quantize/quantize.cpp's KV overrides (strings cut at 127 bytes) */
        const struct imatrix *im = o->imatrix;
        char s[128];
        snprintf(s, sizeof s, "%s", o->imatrix_file ? o->imatrix_file : "");
        if (gguf_writer_str(w, "quantize.imatrix.file", s)) return -1;
        if (im->n_datasets) {
            snprintf(s, sizeof s, "%s", im->datasets[0]);
            if (gguf_writer_str(w, "quantize.imatrix.dataset", s)) return -1;
        }
        if (gguf_writer_u32(w, "quantize.imatrix.entries_count", (uint32_t)im->n)) return -1;
        if (im->chunk_count > 0 &&
            gguf_writer_u32(w, "quantize.imatrix.chunks_count", (uint32_t)im->chunk_count))
            return -1;
    }
    return 0;
}

int gguf_quantize_model(const struct model *m, const struct gguf_quant_opts *o,
                        const char *out_path, struct gguf_quant_result *res) {
    enum gguf_ftype ft = GGUF_FTYPE_ALL_F32;
    if (gguf_ftype_from_name(o->ftype, &ft)) return -1;
    const struct gguf_file *g = m->format == MODEL_FORMAT_GGUF ? m->gguf : NULL;
    int ret = -1, n = 0;
    struct qtensor *q = NULL;
    struct gguf_mix_tensor *mt = NULL;
    int *idx = NULL;
    enum dtype *types = NULL;
    float *rope = NULL;
    struct gguf_quant_result r = {0};
    struct gguf_writer *w = NULL;
    int *kof = NULL;
    struct gq_fill fill = {0};

    /* the tensors, as llama.cpp would see them */
    const int cap = g ? (int)g->n_tensors : m->n_tensors;
    q = calloc((size_t)cap + 1, sizeof *q);
    if (!q) return err("out of memory");
    if ((n = gq_collect(m, g, q)) < 0) {
        n = 0;
        goto out;
    }
    mt = calloc((size_t)n + 1, sizeof *mt);
    idx = calloc((size_t)n + 1, sizeof *idx);
    types = calloc((size_t)n + 1, sizeof *types);
    if (!mt || !idx || !types) {
        err("out of memory");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        q[i].mt.name = q[i].name;
        mt[i] = q[i].mt;
    }
    gguf_mix_order(mt, n, idx);
    for (int i = 0; i < n; i++) mt[i] = q[idx[i]].mt; /* mt in llama.cpp's order */

    int64_t n_expert = m->cfg.n_expert; /* the file's key wins for a GGUF source */
    if (g) {
        char key[64];
        snprintf(key, sizeof key, "%s.expert_count", m->cfg.arch);
        if (gguf_get_int(g, key, &n_expert) < 0) goto out;
    }
    const struct gguf_mix_model mm = {m->cfg.arch, m->cfg.n_layers, m->cfg.n_heads,
                                      m->cfg.n_kv_heads, (int)n_expert};
    const struct gguf_mix_opts mo = {ft, o->pure, o->leave_output, o->imatrix != NULL};
    int n_fallback = 0;
    gguf_mix_types(&mm, &mo, mt, n, types, &n_fallback, o->quiet);
    if (!g) /* llama.cpp's converters write 1-D tensors (norms, biases) as F32 */
        for (int k = 0; k < n; k++)
            if (mt[k].n_dims < 2) types[k] = DTYPE_F32;
    struct gq_sizes sz = {0};
    if (gq_refuse(o, ft, mt, types, n) || gq_plan(o, ft, q, mt, idx, types, n, &sz)) goto out;

    /* the file, each converted tensor made when the writer reaches it (one in memory at a time) */
    if (!(kof = calloc((size_t)n + 1, sizeof *kof))) {
        err("out of memory");
        goto out;
    }
    fill = (struct gq_fill){.m = m, .o = o, .q = q, .mt = mt, .idx = idx, .kof = kof, .n = n};
    w = gguf_writer_new();
    if (!w || gq_write_kvs(w, m, g, o, ft, &r)) goto out;
    for (int k = 0, nf = 0; k < n; k++) {
        const struct qtensor *t = &q[idx[k]];
        const uint32_t gt = (uint32_t)dtype_get(t->out_type)->ggml_type;
        if (!t->convert) {
            if (!o->quiet)
                fprintf(stderr, "quant: [%4d/%4d] %-36s %-5s size = %8.3f MiB\n", k + 1, n,
                        t->name, dtype_get(t->mt.type)->name, mib((double)t->out_bytes));
            if (gguf_writer_tensor(w, t->name, gt, t->mt.n_dims, t->mt.ne, t->src,
                                   (uint64_t)t->out_bytes))
                goto out;
            continue;
        }
        kof[nf++] = k;
        if (gguf_writer_tensor_fill(w, t->name, gt, t->mt.n_dims, t->mt.ne,
                                    (uint64_t)t->out_bytes, gq_fill_tensor, &fill))
            goto out;
    }
    if (!g && (quant_gguf_put_rope_freqs(w, m, &rope) || quant_gguf_fuse(w, m))) goto out;
    if (gguf_writer_write(w, out_path)) goto out;
    r.n_tensors = n;
    r.n_fallback = n_fallback;
    r.tensor_bytes = (uint64_t)sz.out;
    r.bits_per_weight = sz.n_el > 0 ? 8 * sz.out / sz.n_el : 0;
    for (int k = 0; k < n; k++) r.n_quantized += types[k] != mt[k].type;
    if (res) *res = r;
    if (!o->quiet) {
        fprintf(stderr, "quant: %s: model size %.2f MiB (%.2f bpw) -> %s %.2f MiB (%.2f bpw)\n",
                out_path, mib(sz.in), 8 * sz.in / sz.n_el, gguf_ftype_name(ft), mib(sz.out),
                8 * sz.out / sz.n_el);
        if (n_fallback)
            fprintf(stderr, "quant: %d of %d tensors required fallback quantization\n", n_fallback,
                    n);
    }
    ret = 0;
out:
    gguf_writer_free(w);
    free(fill.f32);
    free(kof);
    free(q);
    free(mt);
    free(idx);
    free(types);
    free(rope);
    return ret;
}

/* ===== the registry row "gguf" (quant/quant.h) ===== */

struct gguf_knobs {
    bool pure, leave_output;
    char imatrix[4096];
};

static int gguf_parse_knobs(const struct recipe *r, struct gguf_knobs *k) {
    memset(k, 0, sizeof *k);
    json_t *o;
    if (recipe_knobs(r, &o)) return -1;
    if (!o) return 0;
    const char *key;
    json_t *v;
    int rc = 0;
    json_object_foreach(o, key, v) {
        if (!strcmp(key, "pure") && json_is_boolean(v)) k->pure = json_is_true(v);
        else if (!strcmp(key, "leave_output") && json_is_boolean(v))
            k->leave_output = json_is_true(v);
        else if (!strcmp(key, "imatrix") && json_is_string(v))
            snprintf(k->imatrix, sizeof k->imatrix, "%s", json_string_value(v));
        else {
            rc = err("recipe '%s': gguf knob '%s' is unknown or of the wrong type (known: pure "
                     "and leave_output (true/false), imatrix (a file name))", r->id, key);
            break;
        }
    }
    json_decref(o);
    return rc;
}

int gguf_recipe_check(const struct recipe *r) {
    enum gguf_ftype ft;
    char up[32];
    snprintf(up, sizeof up, "%s", r->weight_dtype);
    if (!strcmp(up, "float32")) snprintf(up, sizeof up, "F32");
    if (!strcmp(up, "float16")) snprintf(up, sizeof up, "F16");
    if (!strcmp(up, "bfloat16")) snprintf(up, sizeof up, "BF16");
    if (gguf_ftype_from_name(up, &ft))
        return err("recipe '%s': algorithm gguf needs weight_dtype = a llama.cpp file type (%s)",
                   r->id, err_last());
    if (r->has_group_size && r->group_size != -1)
        return err("recipe '%s': algorithm gguf has fixed blocks (group_size must be empty)",
                   r->id);
    if (!isnan(r->bits))
        return err("recipe '%s': algorithm gguf: leave bits empty (a mix has no single width; the "
                   "file's real bits per weight are recorded)", r->id);
    struct gguf_knobs k;
    if (gguf_parse_knobs(r, &k)) return -1;
    if (k.imatrix[0] && r->calib_set[0])
        return err("recipe '%s': give either knobs.imatrix or calib_set, not both", r->id);
    return 0;
}

/* "$LOWBIT_DATA/x" and "${LOWBIT_DATA}/x" expanded (default ../shared/data); -1 when too long */
static int expand_data(const char *raw, char *out, size_t size) {
    const char *d = getenv("LOWBIT_DATA");
    if (!d || !*d) d = "../shared/data";
    int n;
    if (!strncmp(raw, "$LOWBIT_DATA", 12)) n = snprintf(out, size, "%s%s", d, raw + 12);
    else if (!strncmp(raw, "${LOWBIT_DATA}", 14)) n = snprintf(out, size, "%s%s", d, raw + 14);
    else n = snprintf(out, size, "%s", raw);
    return n < 0 || (size_t)n >= size ? err("path too long: %s", raw) : 0;
}

int gguf_recipe_quantize(const struct quant_job *j, struct quant_artifact *a) {
    const struct recipe *r = j->r;
    struct gguf_knobs k;
    if (gguf_recipe_check(r) || gguf_parse_knobs(r, &k)) return -1;
    char ftname[32];
    snprintf(ftname, sizeof ftname, "%s", r->weight_dtype);
    if (!strcmp(ftname, "float32")) snprintf(ftname, sizeof ftname, "F32");
    if (!strcmp(ftname, "float16")) snprintf(ftname, sizeof ftname, "F16");
    if (!strcmp(ftname, "bfloat16")) snprintf(ftname, sizeof ftname, "BF16");
    struct imatrix im = IMATRIX_INIT;
    int *ids = NULL, ret = -1;
    char *text = NULL, path[4096];
    struct gguf_quant_opts o = {.ftype = ftname, .pure = k.pure, .leave_output = k.leave_output,
                                .tok = j->tok, .vocab_optional = true, .name = r->id,
                                .quiet = j->quiet};
    if (k.imatrix[0]) {
        if (expand_data(k.imatrix, path, sizeof path) || imatrix_load(&im, path)) goto out;
        o.imatrix = &im;
        o.imatrix_file = k.imatrix;
    } else if (r->calib_set[0]) {
        if (calib_resolve(r->calib_set, path, sizeof path)) goto out; /* groups_merged, a path */
        FILE *f = fopen(path, "rb");
        if (!f) {
            err("recipe '%s': calibration text %s: cannot open", r->id, path);
            goto out;
        }
        fseek(f, 0, SEEK_END);
        const long len = ftell(f);
        fseek(f, 0, SEEK_SET);
        text = len >= 0 ? malloc((size_t)len + 1) : NULL;
        const bool ok = text && fread(text, 1, (size_t)len, f) == (size_t)len;
        fclose(f);
        if (!ok || !j->tok) {
            err("recipe '%s': cannot read %s%s", r->id, path, j->tok ? "" : " (no tokenizer)");
            goto out;
        }
        int n_ids = 0;
        const int bos = tokenizer_bos(j->tok), ctx = r->calib_seqlen > 0 ? r->calib_seqlen : 512;
        if (tokenizer_encode(j->tok, text, (size_t)len, bos >= 0, &ids, &n_ids)) goto out;
        if (r->calib_nsamples > 0 && (long)r->calib_nsamples * ctx < n_ids)
            n_ids = r->calib_nsamples * ctx;
        if (imatrix_collect(&im, j->m, ids, n_ids, ctx, bos, r->calib_set, j->quiet)) goto out;
        snprintf(path, sizeof path, "%s/imatrix.gguf", j->out_dir);
        if (imatrix_save(&im, path)) goto out;
        o.imatrix = &im;
        o.imatrix_file = "imatrix.gguf";
    }
    snprintf(a->path, sizeof a->path, "%s/model.gguf", j->out_dir);
    snprintf(a->format, sizeof a->format, "gguf");
    struct gguf_quant_result res;
    if (gguf_quantize_model(j->m, &o, a->path, &res)) goto out;
    if (!res.has_vocab) { /* the evaluation needs the source's tokenizer file */
        if (j->src_tokenizer && *j->src_tokenizer) {
            snprintf(a->tokenizer, sizeof a->tokenizer, "%s", j->src_tokenizer);
        } else if (j->m->format == MODEL_FORMAT_HF) {
            snprintf(a->tokenizer, sizeof a->tokenizer, "%s/tokenizer.json", j->src_path);
        } else {
            const char *slash = strrchr(j->src_path, '/');
            const int dir = slash ? (int)(slash - j->src_path) : 0;
            snprintf(a->tokenizer, sizeof a->tokenizer, "%.*s%stokenizer.bin", dir, j->src_path,
                     slash ? "/" : "");
        }
    }
    enum gguf_ftype ft = GGUF_FTYPE_ALL_F32;
    gguf_ftype_from_name(ftname, &ft);
    quant_prov(a, "quant.gguf_ftype", "%s (llama_ftype %d%s)", gguf_ftype_name(ft), (int)ft,
               k.pure ? ", --pure" : "");
    quant_prov(a, "quant.bits_per_weight", "%.4f", res.bits_per_weight);
    quant_prov(a, "quant.tensors", "%d of %d quantized, %d by shape fallback", res.n_quantized,
               res.n_tensors, res.n_fallback);
    if (o.imatrix)
        quant_prov(a, "quant.imatrix", "%s: %d entries, %d chunks of %d tokens",
                   o.imatrix_file, im.n, im.chunk_count, im.chunk_size);
    quant_prov(a, "quant.llama_cpp_vocab", "%s", res.has_vocab ? "in the file" : "left out");
    ret = 0;
out:
    free(ids);
    free(text);
    imatrix_release(&im);
    return ret;
}
