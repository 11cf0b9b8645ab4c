/* quant/rotate.c: QuaRot's rotation and SmoothQuant's migration (quant/rotate.h).
 *
 * Written from the papers' equations (QuaRot §4, SmoothQuant §4); spcl/QuaRot's
 * fake_quant/rotation_utils.py was read for the order of the steps (fold the norms, rotate the
 * embeddings, the readers, the writers and the head, then the online Hadamard on down_proj), not
 * copied. Every transformed tensor is computed in fp32 from the source's rows (any dtype):
 * a row w of a reader becomes U·(g⊙w) with U·v = H_D·(s⊙v)/√D through the fast transform
 * (kernels/hadamard.h), a writer's columns the same through a transposed copy. */
#include "quant/rotate.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/forward.h"
#include "kernels/base/base.h"
#include "kernels/hadamard.h"
#include "quant/calib.h"
#include "quant/quant.h"

/* ===== knobs ===== */

int rot_knobs(const char *id, const char *knobs, struct rot_opts *o, char *rest, size_t size) {
    const struct rot_opts init = ROT_OPTS_INIT;
    *o = init;
    rest[0] = 0;
    if (!knobs || !*knobs) return 0;
    json_error_t je;
    json_t *kn = json_loads(knobs, 0, &je);
    if (!json_is_object(kn)) {
        json_decref(kn);
        return err("recipe '%s': knobs '%s' are not a JSON object", id, knobs);
    }
    int ret = -1;
    const size_t before = json_object_size(kn);
    json_t *v;
    if ((v = json_object_get(kn, "rotate"))) {
        if (!json_is_boolean(v)) goto bad_rotate;
        o->rotate = json_is_true(v);
        json_object_del(kn, "rotate");
    }
    if ((v = json_object_get(kn, "rotate_o"))) {
        if (!json_is_boolean(v)) {
            err("recipe '%s': knob rotate_o must be true or false", id);
            goto out;
        }
        o->rotate_o = json_is_true(v);
        json_object_del(kn, "rotate_o");
    }
    if ((v = json_object_get(kn, "rotate_seed"))) {
        if (!json_is_integer(v) || json_integer_value(v) < 0) {
            err("recipe '%s': knob rotate_seed must be an integer >= 0", id);
            goto out;
        }
        o->seed = (uint64_t)json_integer_value(v);
        json_object_del(kn, "rotate_seed");
    }
    if ((v = json_object_get(kn, "smooth_alpha"))) {
        if (!json_is_number(v) || !(json_number_value(v) >= 0 && json_number_value(v) <= 1)) {
            err("recipe '%s': knob smooth_alpha must be a number in [0, 1]", id);
            goto out;
        }
        o->smooth_alpha = json_number_value(v);
        json_object_del(kn, "smooth_alpha");
    }
    if ((v = json_object_get(kn, "act_clip"))) {
        if (!json_is_number(v) || !(json_number_value(v) > 0 && json_number_value(v) <= 1)) {
            err("recipe '%s': knob act_clip must be a number in (0, 1]", id);
            goto out;
        }
        o->act_clip = (float)json_number_value(v);
        json_object_del(kn, "act_clip");
    }
    if ((o->rotate_o || o->seed) && !o->rotate) {
        err("recipe '%s': knobs rotate_o and rotate_seed need \"rotate\": true", id);
        goto out;
    }
    if (o->rotate && o->smooth_alpha >= 0) {
        err("recipe '%s': rotate and smooth_alpha together are not supported", id);
        goto out;
    }
    if (json_object_size(kn) == before) { /* none of ours: the knobs go on as written */
        snprintf(rest, size, "%s", knobs);
    } else if (json_object_size(kn)) {
        char *s = json_dumps(kn, JSON_COMPACT | JSON_SORT_KEYS);
        if (!s || strlen(s) >= size) {
            free(s);
            err("recipe '%s': knobs too long", id);
            goto out;
        }
        snprintf(rest, size, "%s", s);
        free(s);
    }
    ret = 0;
    goto out;
bad_rotate:
    err("recipe '%s': knob rotate must be true or false", id);
out:
    json_decref(kn);
    return ret;
}

bool rot_wanted(const struct rot_opts *o) {
    return o->rotate || o->smooth_alpha >= 0 || o->act_clip > 0;
}

/* ===== SmoothQuant statistics ===== */

struct stats_ctx {
    const struct model *m;
    float *amax; /* [L][2D + H] */
};

static int stats_hook(void *ctx, const struct tensor *w, const float *x, int T) {
    struct stats_ctx *c = ctx;
    const struct model_config *cf = &c->m->cfg;
    const int64_t D = cf->dim, H = cf->hidden_dim, row = 2 * D + H;
    for (int l = 0; l < cf->n_layers; l++) {
        const struct layer *L = &c->m->layers[l];
        int64_t off, K;
        if (w == &L->lin[LIN_Q]) off = 0, K = D;
        else if (w == &L->lin[LIN_GATE]) off = D, K = D;
        else if (w == &L->lin[LIN_DOWN]) off = 2 * D, K = H;
        else continue;
        float *a = c->amax + l * row + off;
        for (int t = 0; t < T; t++)
            for (int64_t k = 0; k < K; k++) a[k] = fmaxf(a[k], fabsf(x[t * K + k]));
        return 0;
    }
    return 0;
}

int rot_act_stats(const struct quant_job *j, float **amax) {
    const struct model *m = j->m;
    const struct model_config *c = &m->cfg;
    struct calib_set cs = {0};
    struct fwd_state fs = {0};
    bool fs_ok = false;
    int ret = -1;
    *amax = xcalloc((size_t)c->n_layers * (size_t)(2 * c->dim + c->hidden_dim), sizeof(float),
                    "smoothquant statistics");
    if (!*amax || calib_load_job(&cs, "smoothquant", j, 0)) goto out;
    if (fwd_init(&fs, m, cs.seqlen, cs.seqlen)) goto out;
    fs_ok = true;
    struct stats_ctx sc = {m, *amax};
    fs.mm_hook = stats_hook;
    fs.mm_hook_ctx = &sc;
    for (int i = 0; i < cs.n_samples; i++) {
        fwd_truncate(&fs, 0);
        if (forward(&fs, cs.tokens + (size_t)i * cs.seqlen, cs.seqlen, NULL, false)) goto out;
    }
    ret = 0;
out:
    if (fs_ok) fwd_release(&fs);
    calib_release(&cs);
    if (ret) {
        free(*amax);
        *amax = NULL;
    }
    return ret;
}

/* ===== the transform ===== */

struct rot {
    const struct model *m;
    struct model *out;
    const struct rot_opts *o;
    const float *amax;
    float *sign;      /* [D] ±1 */
    float *smooth[3]; /* per layer scratch: s for the qkv, gate/up, down inputs */
};

/* U·v = H_D·(s⊙v)/√D on n rows of D */
static int rot_u(const struct rot *r, float *x, int64_t n_rows) {
    const int64_t D = r->m->cfg.dim;
    for (int64_t i = 0; i < n_rows; i++)
        for (int64_t k = 0; k < D; k++) x[i * D + k] *= r->sign[k];
    return had_rows(x, n_rows, (int)D);
}

/* a fresh fp32 tensor of t's shape in out, named as t, filled with t's values */
static float *copy_f32(struct model *out, const struct tensor *t, const char *name,
                       struct tensor *dst) {
    const int64_t K = t->ne[0], N = tensor_nrows(t);
    float *f = model_alloc(out, (size_t)(K * N) * sizeof(float), name);
    if (!f) return NULL;
    if (tensor_init(dst, name, DTYPE_F32, t->n_dims, t->ne)) return NULL;
    dst->data = f;
    for (int64_t r = 0; r < N; r++) tensor_row_to_f32(t, r, f + r * K);
    return f;
}

static float *ones(struct model *out, const char *name, int64_t n, struct tensor *dst) {
    float *f = model_alloc(out, (size_t)n * sizeof(float), name);
    const int64_t ne[1] = {n};
    if (!f || tensor_init(dst, name, DTYPE_F32, 1, ne)) return NULL;
    for (int64_t i = 0; i < n; i++) f[i] = 1;
    dst->data = f;
    return f;
}

/* a reader [N][K=D]: row w → U·(g/s ⊙ w) (rotation) or row w → s ⊙ g ⊙ w (smoothing); g may be
 * NULL (1) */
static int reader(const struct rot *r, float *w, int64_t N, int64_t K, const float *g,
                  const float *s) {
    for (int64_t n = 0; n < N; n++)
        for (int64_t k = 0; k < K; k++) {
            if (g) w[n * K + k] *= g[k];
            if (s) w[n * K + k] *= s[k];
        }
    return r->o->rotate ? rot_u(r, w, N) : 0;
}

/* a writer [N=D][K]: online Hadamard of K on each row (when had), then U on each column */
static int writer(const struct rot *r, float *w, int64_t N, int64_t K, bool had) {
    if (had && had_rows(w, N, (int)K)) return -1;
    if (!r->o->rotate) return 0;
    float *t = xmalloc((size_t)(N * K) * sizeof *t, "a transposed linear");
    if (!t) return -1;
    for (int64_t n = 0; n < N; n++)
        for (int64_t k = 0; k < K; k++) t[k * N + n] = w[n * K + k];
    const int rc = rot_u(r, t, K);
    for (int64_t n = 0; n < N; n++)
        for (int64_t k = 0; k < K; k++) w[n * K + k] = t[k * N + n];
    free(t);
    return rc;
}

/* SmoothQuant's s for one input: s_j = amax_j^α / wmax_j^(1−α) over the linears li[0..n) */
static void smooth_scales(const struct rot *r, int l, int which, const enum lin *li, int n,
                          float *s) {
    const struct model_config *c = &r->m->cfg;
    const int64_t D = c->dim, H = c->hidden_dim, K = which == 2 ? H : D;
    const float *a = r->amax + (int64_t)l * (2 * D + H) + (which == 0 ? 0 : which == 1 ? D : 2 * D);
    const double al = r->o->smooth_alpha;
    float *row = xmalloc((size_t)K * sizeof *row, "a row");
    float *wmax = xcalloc((size_t)K, sizeof *wmax, "column maxima");
    for (int i = 0; row && wmax && i < n; i++) {
        const struct tensor *t = &r->m->layers[l].lin[li[i]];
        for (int64_t q = 0; q < tensor_nrows(t); q++) {
            tensor_row_to_f32(t, q, row);
            for (int64_t k = 0; k < K; k++) wmax[k] = fmaxf(wmax[k], fabsf(row[k]));
        }
    }
    for (int64_t k = 0; k < K; k++) {
        double v = wmax ? pow(fmax(a[k], 1e-5), al) / pow(fmax(wmax[k], 1e-5), 1 - al) : 1;
        s[k] = (float)fmax(v, 1e-5);
    }
    free(row);
    free(wmax);
}

static int check_shape(const struct model *m, const struct rot_opts *o) {
    const struct model_config *c = &m->cfg;
    if (c->post_norms || c->embd_scale > 0)
        return err("rotate: %s blocks are not supported (scaled embeddings and post-norms; "
                   "rotation and smoothing run llama, mistral, qwen2, qwen3)",
                   c->arch);
    if (c->n_expert > 0 || model_fused_qkv(c))
        return err("rotate: %s is not supported yet (%s; rotation and smoothing run llama, "
                   "mistral, qwen2, qwen3)", m->path,
                   c->n_expert > 0 ? "mixture-of-experts blocks" : "phi3's fused linears");
    if (c->online_had) return err("rotate: %s already carries online rotations", m->path);
    if (!o->rotate) return 0;
    const int qd = c->n_heads * c->head_dim;
    if (!had_base(c->dim))
        return err("rotate: dim %d has no Hadamard matrix (kernels/hadamard.h)", c->dim);
    if (!had_base(c->hidden_dim))
        return err("rotate: hidden_dim %d has no Hadamard matrix (kernels/hadamard.h)",
                   c->hidden_dim);
    if (o->rotate_o && !had_base(qd))
        return err("rotate: n_heads·head_dim %d has no Hadamard matrix (kernels/hadamard.h)", qd);
    return 0;
}

int rot_model(struct model *out, const struct model *m, const struct rot_opts *o,
              const float *amax) {
    const struct model_config *c = &m->cfg;
    memset(out, 0, sizeof *out);
    if (check_shape(m, o)) return -1;
    if (o->smooth_alpha >= 0 && !amax) BUG("rot_model: smoothing without statistics");
    out->cfg = *c;
    out->format = m->format;
    snprintf(out->path, sizeof out->path, "%s", m->path);
    out->rope_freq_factors = m->rope_freq_factors;
    const int64_t D = c->dim, H = c->hidden_dim;
    struct rot r = {.m = m, .out = out, .o = o, .amax = amax};
    int ret = -1;
    r.sign = xmalloc((size_t)D * sizeof *r.sign, "rotation signs");
    for (int i = 0; i < 3; i++) r.smooth[i] = xmalloc((size_t)LB_MAX(D, H) * sizeof(float), "s");
    if (!r.sign || !r.smooth[0] || !r.smooth[1] || !r.smooth[2]) goto out;
    uint64_t st = o->seed;
    for (int64_t k = 0; k < D; k++) r.sign[k] = calib_rng_next(&st) >> 63 ? -1.0f : 1.0f;
    if (o->rotate) {
        out->cfg.online_had = 1u << LIN_DOWN;
        if (o->rotate_o) out->cfg.online_had |= 1u << LIN_O;
    }
    if (o->act_clip > 0) out->cfg.act_clip = o->act_clip;
    const enum lin qkv[3] = {LIN_Q, LIN_K, LIN_V}, gu[2] = {LIN_GATE, LIN_UP}, dn[1] = {LIN_DOWN};
    int cur_l = -1;
    for (int i = 0; i < m->n_tensors; i++) {
        const struct tensor *t = &m->tensors[i];
        struct tensor nt = *t;
        const int li = lin_of_tensor(t->name);
        int l = -1;
        if (!strncmp(t->name, "blk.", 4)) l = atoi(t->name + 4);
        const struct layer *L = l >= 0 && l < c->n_layers ? &m->layers[l] : NULL;
        if (L && l != cur_l && o->smooth_alpha >= 0) { /* this block's three s vectors */
            smooth_scales(&r, l, 0, qkv, 3, r.smooth[0]);
            smooth_scales(&r, l, 1, gu, 2, r.smooth[1]);
            smooth_scales(&r, l, 2, dn, 1, r.smooth[2]);
            cur_l = l;
        }
        const bool sm = o->smooth_alpha >= 0;
        const size_t nl = strlen(t->name);
        const bool is_norm = L && nl > 11 && !strcmp(t->name + nl - 11, "norm.weight") &&
                             (strstr(t->name, ".attn_norm.") || strstr(t->name, ".ffn_norm."));
        float *f = NULL;
        if (!strcmp(t->name, "token_embd.weight") && o->rotate) {
            if (!(f = copy_f32(out, t, t->name, &nt)) || rot_u(&r, f, tensor_nrows(t))) goto out;
        } else if (!strcmp(t->name, "output.weight") && o->rotate) {
            if (!(f = copy_f32(out, t, t->name, &nt)) ||
                reader(&r, f, tensor_nrows(t), D, m->out_norm.data, NULL))
                goto out;
        } else if (!strcmp(t->name, "output_norm.weight") && o->rotate) {
            if (!ones(out, t->name, D, &nt)) goto out;
        } else if (is_norm && (o->rotate || sm)) {
            const bool attn = strstr(t->name, ".attn_norm.") != NULL;
            if (o->rotate) {
                if (!ones(out, t->name, D, &nt)) goto out;
            } else {
                const struct tensor *g = attn ? &L->attn_norm : &L->ffn_norm;
                if (!(f = copy_f32(out, g, t->name, &nt))) goto out;
                for (int64_t k = 0; k < D; k++) f[k] /= r.smooth[attn ? 0 : 1][k];
            }
        } else if (L && li >= 0 && t->n_dims == 2 && (o->rotate || sm)) {
            const int64_t K = t->ne[0], N = tensor_nrows(t);
            if (!(f = copy_f32(out, t, t->name, &nt))) goto out;
            int rc = 0;
            switch ((enum lin)li) {
            case LIN_Q:
            case LIN_K:
            case LIN_V:
                rc = reader(&r, f, N, K, o->rotate ? L->attn_norm.data : NULL,
                            sm ? r.smooth[0] : NULL);
                break;
            case LIN_GATE:
                rc = reader(&r, f, N, K, o->rotate ? L->ffn_norm.data : NULL,
                            sm ? r.smooth[1] : NULL);
                break;
            case LIN_UP:
                rc = reader(&r, f, N, K, o->rotate ? L->ffn_norm.data : NULL,
                            sm ? r.smooth[1] : NULL);
                if (sm) /* the down input's 1/s into up's rows */
                    for (int64_t n = 0; n < N; n++)
                        for (int64_t k = 0; k < K; k++) f[n * K + k] /= r.smooth[2][n];
                break;
            case LIN_O: rc = writer(&r, f, N, K, o->rotate_o); break;
            case LIN_DOWN:
                if (sm)
                    for (int64_t n = 0; n < N; n++)
                        for (int64_t k = 0; k < K; k++) f[n * K + k] *= r.smooth[2][k];
                rc = writer(&r, f, N, K, o->rotate);
                break;
            default: break;
            }
            if (rc) goto out;
        }
        if (model_add_tensor(out, &nt)) goto out;
    }
    if (o->rotate && m->tied_output) { /* the head is U-rotated with output_norm folded in: untied */
        struct tensor nt;
        float *f = copy_f32(out, &m->tok_embd, "output.weight", &nt);
        if (!f || reader(&r, f, tensor_nrows(&m->tok_embd), D, m->out_norm.data, NULL) ||
            model_add_tensor(out, &nt))
            goto out;
    }
    if (model_bind(out)) goto out;
    out->gguf = m->gguf;
    ret = 0;
out:
    free(r.sign);
    for (int i = 0; i < 3; i++) free(r.smooth[i]);
    if (ret) rot_model_release(out);
    return ret;
}

void rot_model_release(struct model *out) {
    out->gguf = NULL; /* borrowed */
    model_release(out);
}
