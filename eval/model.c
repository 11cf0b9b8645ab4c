/* eval/model.c: model storage, the canonical tensor list, binding and format detection. */
#include "eval/model.h"

#include "kernels/hadamard.h"

#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "eval/gguf.h"
#include "kernels/hadamard.h"

const char *model_format_name(enum model_format f) {
    static const char *names[MODEL_FORMAT_COUNT] = {
        [MODEL_FORMAT_LLAMA2C] = "llama2.c", [MODEL_FORMAT_GGUF] = "gguf", [MODEL_FORMAT_HF] = "hf"};
    return (unsigned)f < MODEL_FORMAT_COUNT ? names[f] : "?";
}

/* ---- the linears of a block (model.h: enum lin) ---- */

const struct lin_info lin_info[LIN_COUNT] = {
    [LIN_Q] = {.gguf = "attn_q", .hf = "self_attn.q_proj", .l2c_slot = 0, .stage = FWD_QKV,
               .in = LIN_DIM_D, .out = LIN_DIM_QD, .attn = true, .bias = true, .rope = true},
    [LIN_K] = {.gguf = "attn_k", .hf = "self_attn.k_proj", .l2c_slot = 1, .stage = FWD_QKV,
               .in = LIN_DIM_D, .out = LIN_DIM_KVD, .attn = true, .bias = true, .rope = true},
    [LIN_V] = {.gguf = "attn_v", .hf = "self_attn.v_proj", .l2c_slot = 2, .stage = FWD_QKV,
               .in = LIN_DIM_D, .out = LIN_DIM_KVD, .attn = true, .bias = true},
    [LIN_O] = {.gguf = "attn_output", .hf = "self_attn.o_proj", .l2c_slot = 3, .stage = FWD_O,
               .in = LIN_DIM_QD, .out = LIN_DIM_D, .attn = true},
    [LIN_GATE] = {.gguf = "ffn_gate", .hf = "mlp.gate_proj", .l2c_slot = 4, .stage = FWD_GATE_UP,
                  .in = LIN_DIM_D, .out = LIN_DIM_H},
    [LIN_UP] = {.gguf = "ffn_up", .hf = "mlp.up_proj", .l2c_slot = 6, .stage = FWD_GATE_UP,
                .in = LIN_DIM_D, .out = LIN_DIM_H},
    [LIN_DOWN] = {.gguf = "ffn_down", .hf = "mlp.down_proj", .l2c_slot = 5, .stage = FWD_DOWN,
                  .in = LIN_DIM_H, .out = LIN_DIM_D},
};

enum lin lin_anchor(enum fwd_stage st) {
    for (int i = 0; i < LIN_COUNT; i++)
        if (lin_info[i].stage == st) return (enum lin)i;
    BUG("stage %d has no linear", (int)st);
}

int64_t lin_dim(const struct model_config *c, enum lin_dim d) {
    switch (d) {
    case LIN_DIM_D: return c->dim;
    case LIN_DIM_H: return c->hidden_dim;
    case LIN_DIM_QD: return (int64_t)c->n_heads * c->head_dim;
    case LIN_DIM_KVD: return (int64_t)c->n_kv_heads * c->head_dim;
    }
    BUG("lin_dim %d", (int)d);
}

void lin_name(char *buf, size_t n, int l, enum lin i) {
    snprintf(buf, n, "blk.%d.%s.weight", l, lin_info[i].gguf);
}

int lin_by_suffix(const char *s) {
    for (int i = 0; i < LIN_COUNT; i++) {
        const size_t n = strlen(lin_info[i].gguf);
        if (!strncmp(s, lin_info[i].gguf, n) && !strcmp(s + n, ".weight")) return i;
    }
    return -1;
}

int model_online_had_parse(const char *s, unsigned *bits, const char *where) {
    *bits = 0;
    const char *p = s;
    while (*p) {
        const char *e = strchr(p, ',');
        const size_t n = e ? (size_t)(e - p) : strlen(p);
        int found = -1;
        for (int i = 0; i < LIN_COUNT; i++)
            if (strlen(lin_info[i].gguf) == n && !strncmp(p, lin_info[i].gguf, n)) found = i;
        if (found != LIN_O && found != LIN_DOWN)
            return err("%s: online Hadamard on '%.*s' (lowbit rotates the inputs of attn_output "
                       "and ffn_down)",
                       where, (int)n, p);
        *bits |= 1u << found;
        p += n + (e ? 1 : 0);
    }
    return 0;
}

void model_online_had_name(unsigned bits, char *buf, size_t size) {
    size_t n = 0;
    buf[0] = 0;
    for (int i = 0; i < LIN_COUNT && n < size; i++)
        if (bits & (1u << i))
            n += (size_t)snprintf(buf + n, size - n, "%s%s", n ? "," : "", lin_info[i].gguf);
}

int lin_of_tensor(const char *name) {
    int layer, pos = 0;
    if (sscanf(name, "blk.%d.%n", &layer, &pos) != 1 || pos <= 0) return -1;
    return lin_by_suffix(name + pos);
}

int lin_rope_heads(const struct model_config *c, int i) {
    if (i < 0 || i >= LIN_COUNT || !lin_info[i].rope) return 0;
    return (int)(lin_dim(c, lin_info[i].out) / c->head_dim);
}

bool model_gguf_keeps_hf_rope(const struct model_config *c) {
    return strcmp(c->arch, "llama") && strcmp(c->arch, "mistral");
}

bool model_fused_qkv(const struct model_config *c) { return !strcmp(c->arch, "phi3"); }

int model_add_row_split(struct model *m, const struct tensor *fused, const char *const *names,
                        const int64_t *rows, int n_parts) {
    int64_t sum = 0;
    for (int i = 0; i < n_parts; i++) sum += rows[i];
    if (fused->n_dims != 2 || fused->ne[1] != sum)
        return err("%s: tensor %s has shape [%lld, %lld] (expected [%lld, %lld]: the fused rows of "
                   "%d tensors)", m->path, fused->name, (long long)fused->ne[0],
                   (long long)fused->ne[1], (long long)fused->ne[0], (long long)sum, n_parts);
    if (dtype_is_parametric(fused->type))
        return err("%s: tensor %s is a quantized fused tensor (%s), which lowbit cannot split into "
                   "its parts yet", m->path, fused->name, dtype_get(fused->type)->name);
    int64_t r0 = 0;
    for (int i = 0; i < n_parts; i++) {
        struct tensor t = *fused;
        snprintf(t.name, sizeof t.name, "%s", names[i]);
        t.ne[1] = rows[i];
        t.data = fused->data ? (uint8_t *)fused->data + (size_t)r0 * tensor_row_bytes(fused) : NULL;
        if (model_add_tensor(m, &t)) return -1;
        r0 += rows[i];
    }
    return 0;
}

int model_add_fused(struct model *m, const struct tensor *t) {
    const struct model_config *c = &m->cfg;
    int layer, pos = 0;
    if (!model_fused_qkv(c) || sscanf(t->name, "blk.%d.%n", &layer, &pos) != 1 || !pos) return 0;
    const char *s = t->name + pos;
    const bool qkv = !strcmp(s, "attn_qkv.weight");
    if (!qkv && strcmp(s, "ffn_gate_up.weight") &&
        (strcmp(s, "ffn_up.weight") || t->n_dims != 2 || t->ne[1] != 2 * (int64_t)c->hidden_dim))
        return 0;
    char nm[3][TENSOR_NAME_MAX];
    const char *names[3] = {nm[0], nm[1], nm[2]};
    const int64_t kvd = (int64_t)c->n_kv_heads * c->head_dim;
    const int64_t rows[3] = {qkv ? (int64_t)c->n_heads * c->head_dim : c->hidden_dim,
                             qkv ? kvd : c->hidden_dim, kvd};
    const enum lin parts[3] = {qkv ? LIN_Q : LIN_GATE, qkv ? LIN_K : LIN_UP, LIN_V};
    for (int k = 0; k < 3; k++) lin_name(nm[k], sizeof nm[k], layer, parts[k]);
    return model_add_row_split(m, t, names, rows, qkv ? 3 : 2) ? -1 : 1;
}

bool model_layer_swa(const struct model_config *c, int l) {
    if (c->swa_window <= 0) return false;
    return c->swa_pattern <= 0 || l % c->swa_pattern < c->swa_pattern - 1;
}

void *model_alloc(struct model *m, size_t n, const char *what) {
    if (m->n_bufs == m->cap_bufs) {
        int cap = m->cap_bufs ? 2 * m->cap_bufs : 16;
        void **nb = realloc(m->bufs, (size_t)cap * sizeof *nb);
        if (!nb) {
            err("out of memory for %s", what);
            return NULL;
        }
        m->bufs = nb;
        m->cap_bufs = cap;
    }
    void *p = xcalloc(1, n, what);
    if (p) m->bufs[m->n_bufs++] = p;
    return p;
}

void model_drop_pages(const struct model *m, const struct tensor *t) {
    model_drop_range(m, t->data, tensor_nbytes(t));
}

void model_drop_range(const struct model *m, const void *p, size_t n) {
    const uintptr_t lo = (uintptr_t)p, hi = lo + n;
    for (int i = 0; i < m->n_maps; i++) {
        const uintptr_t a = (uintptr_t)m->maps[i].addr, b = a + m->maps[i].len;
        if (lo < a || hi > b) continue;
        const uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
        const uintptr_t p0 = (lo + pg - 1) / pg * pg, p1 = hi / pg * pg;
        if (p1 > p0) (void)madvise((void *)p0, p1 - p0, MADV_DONTNEED);
        return;
    }
}

int model_map_file(struct model *m, const char *path, const uint8_t **addr, size_t *len) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return err("%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        close(fd);
        return err("%s: not a regular file", path);
    }
    size_t n = (size_t)st.st_size;
    void *p = NULL;
    if (n) {
        p = mmap(NULL, n, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            close(fd);
            return err("%s: cannot map %zu bytes: %s", path, n, strerror(errno));
        }
    }
    close(fd);
    if (m->n_maps == m->cap_maps) {
        int cap = m->cap_maps ? 2 * m->cap_maps : 4;
        struct model_map *nm = realloc(m->maps, (size_t)cap * sizeof *nm);
        if (!nm) {
            if (p) munmap(p, n);
            return err("out of memory");
        }
        m->maps = nm;
        m->cap_maps = cap;
    }
    m->maps[m->n_maps].addr = p;
    m->maps[m->n_maps].len = n;
    m->n_maps++;
    *addr = p;
    *len = n;
    return 0;
}

int model_add_tensor(struct model *m, const struct tensor *t) {
    if (model_find_tensor(m, t->name)) return err("%s: tensor %s appears twice", m->path, t->name);
    if (m->n_tensors == m->cap_tensors) {
        int cap = m->cap_tensors ? 2 * m->cap_tensors : 64;
        struct tensor *nt = realloc(m->tensors, (size_t)cap * sizeof *nt);
        if (!nt) return err("out of memory for the tensor list");
        m->tensors = nt;
        m->cap_tensors = cap;
    }
    m->tensors[m->n_tensors++] = *t;
    return 0;
}

const struct tensor *model_find_tensor(const struct model *m, const char *name) {
    for (int i = 0; i < m->n_tensors; i++)
        if (!strcmp(m->tensors[i].name, name)) return &m->tensors[i];
    return NULL;
}

void model_release(struct model *m) {
    for (int i = 0; i < m->n_bufs; i++) free(m->bufs[i]);
    for (int i = 0; i < m->n_maps; i++)
        if (m->maps[i].addr) munmap(m->maps[i].addr, m->maps[i].len);
    if (m->gguf) {
        gguf_close(m->gguf);
        free(m->gguf);
    }
    free(m->bufs);
    free(m->maps);
    free(m->tensors);
    free(m->layers);
    memset(m, 0, sizeof *m);
}

/* ---- binding ---- */

/* find `name`, check it has shape [ne0, ne1] (ne1 = 0 for 1-D), copy it to *dst. Missing tensors
 * are an error unless optional (then *dst stays zeroed and 1 is returned). */
static int bind_one(struct model *m, struct tensor *dst, const char *name, int64_t ne0, int64_t ne1,
                    bool optional) {
    const struct tensor *t = model_find_tensor(m, name);
    if (!t) {
        if (optional) return 1;
        return err("%s: missing tensor %s (a %s model needs it)", m->path, name, m->cfg.arch);
    }
    int want_dims = ne1 ? 2 : 1;
    int64_t got1 = t->n_dims >= 2 ? t->ne[1] : 0;
    bool extra = t->ne[2] != 1 || t->ne[3] != 1;
    if (t->ne[0] != ne0 || got1 != ne1 || extra || t->n_dims > want_dims)
        return err("%s: tensor %s has shape [%lld, %lld, %lld, %lld] (expected [%lld%s%.0lld]) "
                   "for the config's sizes",
                   m->path, name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                   (long long)t->ne[3], (long long)ne0, ne1 ? ", " : "", (long long)ne1);
    if (!t->data) return err("%s: tensor %s has no data", m->path, name);
    *dst = *t;
    return 0;
}

/* a MoE layer's experts of linear kind k (0 gate, 1 up, 2 down; `name` = blk.N.<kind>_exps.weight)
 * into ex[e·3 + k]: views of the slices of the stacked tensor [ne0, ne1, E] (then also *dst), or,
 * when the model has none (a quantized HF checkpoint: one module per expert), the 2-D tensors
 * blk.N.<kind>_exps.<e>.weight */
static int bind_exps(struct model *m, struct tensor *dst, struct tensor *ex, int k,
                     const char *name, int64_t ne0, int64_t ne1) {
    const int64_t E = m->cfg.n_expert;
    const struct tensor *t = model_find_tensor(m, name);
    if (!t) {
        char one[TENSOR_NAME_MAX];
        const size_t stem = strlen(name) - strlen(".weight");
        for (int64_t e = 0; e < E; e++) {
            snprintf(one, sizeof one, "%.*s.%lld.weight", (int)stem, name, (long long)e);
            if (!model_find_tensor(m, one))
                return err("%s: missing tensor %s (a %s model with %lld experts needs it, or each "
                           "expert's %s)", m->path, name, m->cfg.arch, (long long)E, one);
            if (bind_one(m, &ex[e * 3 + k], one, ne0, ne1, false)) return -1;
        }
        return 0;
    }
    if (t->ne[0] != ne0 || t->ne[1] != ne1 || t->ne[2] != E || t->ne[3] != 1)
        return err("%s: tensor %s has shape [%lld, %lld, %lld, %lld] (expected [%lld, %lld, %lld]) "
                   "for the config's sizes", m->path, name, (long long)t->ne[0],
                   (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3], (long long)ne0,
                   (long long)ne1, (long long)E);
    if (!t->data) return err("%s: tensor %s has no data", m->path, name);
    if (dtype_is_parametric(t->type))
        return err("%s: tensor %s: quantized stacked experts (%s) are not supported", m->path,
                   name, dtype_get(t->type)->name);
    *dst = *t;
    const size_t slice = (size_t)ne1 * tensor_row_bytes(t);
    for (int64_t e = 0; e < E; e++) {
        struct tensor *v = &ex[e * 3 + k];
        *v = *t;
        snprintf(v->name, sizeof v->name, "%.*s.%lld.weight", (int)(strlen(name) - 7), name,
                 (long long)e);
        v->n_dims = 2;
        v->ne[2] = 1;
        v->data = (uint8_t *)t->data + (size_t)e * slice;
    }
    return 0;
}

/* norms and biases are small: keep them fp32 */
static int to_f32(struct model *m, struct tensor *t) {
    if (!t->data || t->type == DTYPE_F32) return 0;
    int64_t n = tensor_nelements(t);
    float *buf = model_alloc(m, (size_t)n * sizeof(float), t->name);
    if (!buf) return -1;
    for (int64_t r = 0; r < tensor_nrows(t); r++) tensor_row_to_f32(t, r, buf + r * t->ne[0]);
    t->data = buf;
    t->type = DTYPE_F32;
    return 0;
}

static int check_config(const struct model *m) {
    const struct model_config *c = &m->cfg;
    const char *p = m->path;
    if (c->dim <= 0 || c->dim > (1 << 20)) return err("%s: dim %d (expected 1..2^20)", p, c->dim);
    if (c->n_layers <= 0 || c->n_layers > 4096)
        return err("%s: n_layers %d (expected 1..4096)", p, c->n_layers);
    if (c->n_heads <= 0 || c->n_heads > 4096)
        return err("%s: n_heads %d (expected 1..4096)", p, c->n_heads);
    if (c->n_kv_heads <= 0 || c->n_kv_heads > c->n_heads || c->n_heads % c->n_kv_heads)
        return err("%s: n_kv_heads %d must divide n_heads %d", p, c->n_kv_heads, c->n_heads);
    if (c->head_dim <= 0 || c->head_dim % 2 || c->head_dim > 4096)
        return err("%s: head_dim %d (expected an even number up to 4096)", p, c->head_dim);
    if (c->hidden_dim <= 0 || c->hidden_dim > (1 << 22))
        return err("%s: hidden_dim %d (expected 1..2^22)", p, c->hidden_dim);
    if (c->vocab_size <= 0 || c->vocab_size > (1 << 24))
        return err("%s: vocab_size %d (expected 1..2^24)", p, c->vocab_size);
    if (!(c->norm_eps > 0 && c->norm_eps < 1))
        return err("%s: rms norm epsilon %g (expected 0 < eps < 1)", p, (double)c->norm_eps);
    if (!(c->rope_theta > 0)) return err("%s: rope theta %g (expected > 0)", p, (double)c->rope_theta);
    if (c->ctx_len < 0) return err("%s: context length %d", p, c->ctx_len);
    if (c->shared_hidden < 0 || c->shared_hidden > (1 << 22) ||
        (c->shared_hidden > 0 && c->n_expert <= 0))
        return err("%s: shared expert hidden size %d (expected 0, or 1..2^22 with experts)", p,
                   c->shared_hidden);
    if (c->n_expert < 0 || c->n_expert > 1024 ||
        (c->n_expert > 0 && (c->n_expert_used < 1 || c->n_expert_used > c->n_expert ||
                             c->expert_hidden < 1 || c->expert_hidden > (1 << 22))))
        return err("%s: %d experts, %d used per token, expert hidden size %d (expected 0 experts, "
                   "or 1..1024 with 1..experts used and a hidden size of 1..2^22)", p,
                   c->n_expert, c->n_expert_used, c->expert_hidden);
    if (!(c->embd_scale >= 0) || !(c->attn_scale >= 0) || !(c->attn_softcap >= 0) ||
        !(c->final_softcap >= 0) || !(c->rope_theta_swa >= 0) || !(c->rope_linear >= 0) ||
        c->swa_window < 0 || c->swa_pattern < 0 || !isfinite(c->embd_scale) ||
        !isfinite(c->attn_scale) || !isfinite(c->attn_softcap) || !isfinite(c->final_softcap) ||
        !isfinite(c->rope_theta_swa) || !isfinite(c->rope_linear))
        return err("%s: embedding scale %g, attention scale %g, soft-caps %g/%g, sliding window "
                   "%d (pattern %d), rope bases/scale %g/%g (expected finite, none negative)", p,
                   (double)c->embd_scale, (double)c->attn_scale, (double)c->attn_softcap,
                   (double)c->final_softcap, c->swa_window, c->swa_pattern,
                   (double)c->rope_theta_swa, (double)c->rope_linear);
    return 0;
}

int model_bind(struct model *m) {
    struct model_config *c = &m->cfg;
    if (!c->arch[0]) snprintf(c->arch, sizeof c->arch, "llama");
    if (check_config(m)) return -1;
    if ((c->online_had & (1u << LIN_DOWN) && !had_base(c->hidden_dim)) ||
        (c->online_had & (1u << LIN_O) && !had_base(c->n_heads * c->head_dim)))
        return err("%s: online Hadamard rotations on a width without a Hadamard matrix (hidden "
                   "%d, heads·head_dim %d: kernels/hadamard.h)",
                   m->path, c->hidden_dim, c->n_heads * c->head_dim);
    if (c->act_clip < 0 || c->act_clip > 1)
        return err("%s: activation clipping ratio %g (expected 0 < clip <= 1)", m->path,
                   (double)c->act_clip);
    const int64_t D = c->dim, V = c->vocab_size;
    free(m->layers);
    m->layers = xcalloc((size_t)c->n_layers, sizeof *m->layers, "layers");
    if (!m->layers) return -1;
    if (bind_one(m, &m->tok_embd, "token_embd.weight", D, V, false) ||
        bind_one(m, &m->out_norm, "output_norm.weight", D, 0, false))
        return -1;
    int rc = bind_one(m, &m->output, "output.weight", D, V, true);
    if (rc < 0) return -1;
    m->tied_output = rc == 1;
    if (m->tied_output) m->output = m->tok_embd;
    char name[96];
#define BIND(field, suffix, n0, n1, opt)                                                           \
    do {                                                                                           \
        snprintf(name, sizeof name, "blk.%d.%s", l, suffix);                                       \
        if (bind_one(m, &L->field, name, n0, n1, opt) < 0) return -1;                              \
    } while (0)
    for (int l = 0; l < c->n_layers; l++) {
        struct layer *L = &m->layers[l];
        char sfx[64];
        if (c->n_expert > 0 &&
            !(L->ex = model_alloc(m, (size_t)c->n_expert * 3 * sizeof *L->ex, "expert views")))
            return -1;
        BIND(attn_norm, "attn_norm.weight", D, 0, false);
        if (c->qk_norm) {
            BIND(q_norm, "attn_q_norm.weight", c->head_dim, 0, false);
            BIND(k_norm, "attn_k_norm.weight", c->head_dim, 0, false);
            if (to_f32(m, &L->q_norm) || to_f32(m, &L->k_norm)) return -1;
        }
        if (c->post_norms) {
            BIND(attn_post_norm, "post_attention_norm.weight", D, 0, false);
            BIND(ffn_post_norm, "post_ffw_norm.weight", D, 0, false);
            if (to_f32(m, &L->attn_post_norm) || to_f32(m, &L->ffn_post_norm)) return -1;
        }
        for (int i = 0; i < LIN_COUNT; i++) {
            const struct lin_info *li = &lin_info[i];
            if (!li->attn && (i == 0 || lin_info[i - 1].attn)) /* the file order: norm, then FFN */
                BIND(ffn_norm, "ffn_norm.weight", D, 0, false);
            if (!li->attn && c->n_expert > 0) { /* the experts stand for the MLP */
                snprintf(name, sizeof name, "blk.%d.%s_exps.weight", l, li->gguf);
                const int64_t He = c->expert_hidden;
                const int64_t ne0 = li->in == LIN_DIM_H ? He : D, ne1 = li->out == LIN_DIM_H ? He : D;
                if (bind_exps(m, &L->exps[i - LIN_GATE], L->ex, i - LIN_GATE, name, ne0, ne1))
                    return -1;
                continue;
            }
            snprintf(sfx, sizeof sfx, "%s.weight", li->gguf);
            BIND(lin[i], sfx, lin_dim(c, li->in), lin_dim(c, li->out), false);
        }
        if (c->n_expert > 0) BIND(router, "ffn_gate_inp.weight", D, c->n_expert, false);
        if (c->shared_hidden > 0) { /* qwen2moe's shared expert */
            const int64_t Hs = c->shared_hidden;
            BIND(shexp[0], "ffn_gate_shexp.weight", D, Hs, false);
            BIND(shexp[1], "ffn_up_shexp.weight", D, Hs, false);
            BIND(shexp[2], "ffn_down_shexp.weight", Hs, D, false);
            BIND(shexp_gate, "ffn_gate_inp_shexp.weight", D, 0, false);
            if (to_f32(m, &L->shexp_gate)) return -1;
        }
        for (int i = 0; i < LIN_COUNT; i++) {
            if (!lin_info[i].bias) continue;
            snprintf(sfx, sizeof sfx, "%s.bias", lin_info[i].gguf);
            BIND(bias[i], sfx, lin_dim(c, lin_info[i].out), 0, !c->qkv_bias);
            if (to_f32(m, &L->bias[i])) return -1;
        }
        if (to_f32(m, &L->attn_norm) || to_f32(m, &L->ffn_norm)) return -1;
    }
#undef BIND
    if (to_f32(m, &m->out_norm)) return -1;

    /* every token reads every weight: weights that cannot stay resident would page forever (and
     * the finiteness pass below reads them all); refuse before touching them */
    const size_t wbytes = model_weight_bytes(m), total = mem_total();
    if (wbytes > total)
        return err("%s: the weights take %.1f MiB but this machine has %.1f MiB of memory (%s); "
                   "a forward pass reads all of them for every token",
                   m->path, (double)wbytes / 1048576.0, (double)total / 1048576.0,
                   mem_limit_source());

    /* refuse NaN/Inf anywhere: one pass over every weight in parallel, then one message naming
     * the first bad tensor (in file order, so the message does not depend on the threads) */
    int first_bad = m->n_tensors;
#pragma omp parallel for schedule(dynamic, 1) reduction(min : first_bad)
    for (int i = 0; i < m->n_tensors; i++)
        if (!tensor_all_finite(&m->tensors[i]) && i < first_bad) first_bad = i;
    if (first_bad < m->n_tensors) {
        const struct tensor *t = &m->tensors[first_bad];
        int64_t r = 0, col = 0;
        float v = 0;
        if (tensor_find_nonfinite(t, &r, &col, &v) < 0) return err("out of memory checking %s", t->name);
        return err("%s: tensor %s has %s at row %lld, column %lld (weights must be finite)", m->path,
                   t->name, isnan(v) ? "NaN" : "Inf", (long long)r, (long long)col);
    }
    return 0;
}

int64_t model_n_active_params(const struct model *m) {
    const struct model_config *c = &m->cfg;
    int64_t n = model_n_params(m);
    if (c->n_expert <= 0) return n;
    for (int l = 0; l < c->n_layers; l++)
        for (int k = 0; k < 3; k++) /* the unused experts' share */
            n -= tensor_nelements(&m->layers[l].ex[k]) * (c->n_expert - c->n_expert_used);
    return n;
}

int64_t model_n_params(const struct model *m) {
    int64_t n = 0;
    for (int i = 0; i < m->n_tensors; i++) n += tensor_nelements(&m->tensors[i]);
    return n;
}

size_t model_weight_bytes(const struct model *m) {
    size_t n = 0;
    for (int i = 0; i < m->n_tensors; i++) n += tensor_nbytes(&m->tensors[i]);
    return n;
}

/* ---- format detection ---- */

int model_load(struct model *m, const char *path) {
    memset(m, 0, sizeof *m);
    snprintf(m->path, sizeof m->path, "%s", path);
    struct stat st;
    if (stat(path, &st)) return err("%s: cannot open model: %s", path, strerror(errno));
    int rc;
    if (S_ISDIR(st.st_mode)) {
        rc = model_load_hf(m, path);
    } else {
        uint8_t magic[8] = {0};
        FILE *f = fopen(path, "rb");
        if (!f) return err("%s: cannot open model: %s", path, strerror(errno));
        size_t got = fread(magic, 1, sizeof magic, f);
        fclose(f);
        size_t n = strlen(path);
        if (got >= 4 && !memcmp(magic, "GGUF", 4)) {
            rc = model_load_gguf(m, path);
        } else if (n > 12 && !strcmp(path + n - 12, ".safetensors")) {
            /* a safetensors file names its HF directory */
            char dir[4096];
            snprintf(dir, sizeof dir, "%s", path);
            char *slash = strrchr(dir, '/');
            if (slash) *slash = 0;
            else snprintf(dir, sizeof dir, ".");
            rc = model_load_hf(m, dir);
        } else if (n > 5 && !strcmp(path + n - 5, ".gguf")) {
            /* named a GGUF, not one: say that, not "not a llama2.c checkpoint" */
            char shown[20];
            int k = 0;
            for (size_t i = 0; i < 4 && i < got; i++)
                k += snprintf(shown + k, sizeof shown - (size_t)k, "%02x", magic[i]);
            shown[k] = 0;
            rc = err("%s: not a GGUF file: it starts with the bytes %s, not 'GGUF' (47 47 55 46); "
                     "the file is damaged or is another format named .gguf", path,
                     got ? shown : "(none: the file is empty)");
        } else {
            rc = model_load_llama2c(m, path);
        }
    }
    if (rc) {
        model_release(m);
        return -1;
    }
    return 0;
}
