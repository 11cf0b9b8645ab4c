/* eval/llama2c.c: karpathy/llama2.c checkpoints.
 *
 * Legacy (run.c): 7 × i32 header {dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
 *   seq_len}, vocab_size < 0 meaning an untied classifier at the end; then fp32 arrays in this order:
 *   token_embedding [V][D], rms_att [L][D], wq [L][D][D], wk [L][kvd][D], wv [L][kvd][D],
 *   wo [L][D][D], rms_ffn [L][D], w1 [L][H][D], w2 [L][D][H], w3 [L][H][D], rms_final [D],
 *   freq_cis_real [seq][hd/2], freq_cis_imag [seq][hd/2] (unused: we compute RoPE), [wcls [V][D]].
 * Version 1 ("ak42", export.py version1_export): 256-byte header {u32 magic 0x616b3432, i32 version
 *   1, 7 × i32 params (vocab > 0), u8 shared_classifier, zero pad}; fp32: attention norms [L][D],
 *   ffn norms [L][D], final norm [D], tok_embeddings, wq×L, wk×L, wv×L, wo×L, w1×L, w2×L, w3×L,
 *   [output].
 * Version 2 (runq.c Q8_0): header as v1 plus i32 group_size at byte 37; fp32 norms as v1, then each
 *   of tok_embeddings, wq×L … w3×L, [output] as int8 q[numel] followed by fp32 s[numel/gs], with
 *   w[i] = q[i]·s[i/gs] over the flattened tensor (groups may cross rows when a row length is not
 *   a multiple of gs, as in stories260K). We dequantize v2 to fp32 exactly at load.
 * All use interleaved-pair RoPE (ROPE_NORM) with theta 10000 and RMSNorm eps 1e-5. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/model.h"

#define AK42_MAGIC 0x616b3432u
#define AK42_HEADER 256

struct l2c_hdr {
    int32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
};

static int check_hdr(const char *path, const struct l2c_hdr *h) {
    if (h->dim <= 0 || h->dim > 65536 || h->hidden_dim <= 0 || h->hidden_dim > 1 << 20 ||
        h->n_layers <= 0 || h->n_layers > 1024 || h->n_heads <= 0 || h->n_heads > 1024 ||
        h->n_kv_heads <= 0 || h->n_kv_heads > h->n_heads || h->vocab_size == 0 ||
        h->vocab_size > 1 << 22 || h->vocab_size < -(1 << 22) || h->seq_len <= 0 ||
        h->seq_len > 1 << 22)
        return err("%s: not a llama2.c checkpoint: absurd header dim=%d hidden=%d layers=%d heads=%d "
                   "kv_heads=%d vocab=%d seq_len=%d (or an unsupported format: lowbit reads GGUF, "
                   "llama2.c .bin and Hugging Face directories)",
                   path, h->dim, h->hidden_dim, h->n_layers, h->n_heads, h->n_kv_heads,
                   h->vocab_size, h->seq_len);
    if (h->dim % h->n_heads || (h->dim / h->n_heads) % 2 || h->n_heads % h->n_kv_heads)
        return err("%s: dim %d, heads %d, kv heads %d do not make whole even heads", path, h->dim,
                   h->n_heads, h->n_kv_heads);
    return 0;
}

static void set_cfg(struct model *m, const struct l2c_hdr *h) {
    struct model_config *c = &m->cfg;
    snprintf(c->arch, sizeof c->arch, "llama");
    c->dim = h->dim;
    c->hidden_dim = h->hidden_dim;
    c->n_layers = h->n_layers;
    c->n_heads = h->n_heads;
    c->n_kv_heads = h->n_kv_heads;
    c->head_dim = h->dim / h->n_heads;
    c->vocab_size = abs(h->vocab_size);
    c->ctx_len = h->seq_len;
    c->norm_eps = 1e-5f;
    c->rope_theta = 10000.0f;
    c->rope_style = ROPE_NORM;
}

/* the weight tensors in file order; per-layer ones are L consecutive tensors: the embeddings,
 * the block linears in llama2.c's order (wq wk wv wo w1 w2 w3: lin_info[].l2c_slot), the
 * classifier */
enum { W_EMB, W_LIN0, W_CLS = W_LIN0 + LIN_COUNT, W_COUNT };

/* the block linear stored at slot w (W_LIN0 <= w < W_CLS) */
static enum lin w_lin(int w) {
    for (int i = 0; i < LIN_COUNT; i++)
        if (lin_info[i].l2c_slot == w - W_LIN0) return (enum lin)i;
    BUG("llama2.c slot %d has no linear", w);
}

static void w_name(int w, char *buf, size_t n) {
    if (w == W_EMB) snprintf(buf, n, "token_embd.weight");
    else if (w == W_CLS) snprintf(buf, n, "output.weight");
    else snprintf(buf, n, "%s.weight", lin_info[w_lin(w)].gguf);
}

/* the attention linears come before the FFN norms in a legacy file */
static bool w_attn(int w) { return w > W_EMB && w < W_CLS && lin_info[w_lin(w)].attn; }

static void w_shape(const struct model_config *c, int w, int64_t ne[2]) {
    if (w == W_EMB || w == W_CLS) {
        ne[0] = c->dim;
        ne[1] = c->vocab_size;
    } else {
        ne[0] = lin_dim(c, lin_info[w_lin(w)].in);
        ne[1] = lin_dim(c, lin_info[w_lin(w)].out);
    }
}

static int add(struct model *m, const char *name, int n_dims, int64_t ne0, int64_t ne1,
               const void *data) {
    struct tensor t;
    int64_t ne[2] = {ne0, ne1};
    if (tensor_init(&t, name, DTYPE_F32, n_dims, ne)) return -1;
    t.data = (void *)data;
    return model_add_tensor(m, &t);
}

static int add_weight(struct model *m, int w, int l, const void *data) {
    char name[96], base[64];
    int64_t ne[2];
    w_shape(&m->cfg, w, ne);
    w_name(w, base, sizeof base);
    if (w == W_EMB || w == W_CLS) snprintf(name, sizeof name, "%s", base);
    else snprintf(name, sizeof name, "blk.%d.%s", l, base);
    return add(m, name, 2, ne[0], ne[1], data);
}

static int add_norm(struct model *m, const char *fmt, int l, const float *data) {
    char name[64];
    snprintf(name, sizeof name, fmt, l);
    return add(m, name, 1, m->cfg.dim, 0, data);
}

static int size_error(const char *path, size_t have, size_t want) {
    if (have < want)
        return err("%s: truncated llama2.c checkpoint: %zu bytes, the header implies %zu", path,
                   have, want);
    return err("%s: %zu bytes, but the llama2.c header implies %zu: not this format or corrupt",
               path, have, want);
}

static int load_legacy(struct model *m, const char *path, const uint8_t *map, size_t len) {
    struct l2c_hdr h;
    memcpy(&h, map, sizeof h);
    if (check_hdr(path, &h)) return -1;
    set_cfg(m, &h);
    const struct model_config *c = &m->cfg;
    bool shared = h.vocab_size > 0;
    const int64_t D = c->dim, L = c->n_layers;
    int64_t nw[W_COUNT];
    for (int w = 0; w < W_COUNT; w++) {
        int64_t ne[2];
        w_shape(c, w, ne);
        nw[w] = ne[0] * ne[1];
    }
    /* total floats after the header */
    int64_t total = nw[W_EMB] + 2 * L * D + D + (int64_t)h.seq_len * c->head_dim +
                    (shared ? 0 : nw[W_CLS]);
    for (int w = W_LIN0; w < W_CLS; w++) total += L * nw[w];
    size_t want = sizeof h + (size_t)total * 4;
    if (len != want) return size_error(path, len, want);
    const float *p = (const float *)(map + sizeof h);
    if (add_weight(m, W_EMB, 0, p)) return -1;
    p += nw[W_EMB];
    for (int l = 0; l < L; l++, p += D)
        if (add_norm(m, "blk.%d.attn_norm.weight", l, p)) return -1;
    for (int w = W_LIN0; w < W_CLS; w++) {
        if (!w_attn(w) && w_attn(w - 1))
            for (int l = 0; l < L; l++, p += D)
                if (add_norm(m, "blk.%d.ffn_norm.weight", l, p)) return -1;
        for (int l = 0; l < L; l++, p += nw[w])
            if (add_weight(m, w, l, p)) return -1;
    }
    if (add(m, "output_norm.weight", 1, D, 0, p)) return -1;
    p += D + (int64_t)h.seq_len * c->head_dim;
    if (!shared && add_weight(m, W_CLS, 0, p)) return -1;
    return 0;
}

static int load_ak42(struct model *m, const char *path, const uint8_t *map, size_t len) {
    if (len < AK42_HEADER) return size_error(path, len, AK42_HEADER);
    int32_t version;
    struct l2c_hdr h;
    memcpy(&version, map + 4, 4);
    memcpy(&h, map + 8, sizeof h);
    if (version != 1 && version != 2)
        return err("%s: llama2.c 'ak42' version %d (lowbit reads versions 1 and 2)", path, version);
    if (h.vocab_size < 0) return err("%s: negative vocab_size in a version %d header", path, version);
    if (check_hdr(path, &h)) return -1;
    set_cfg(m, &h);
    bool shared = map[36] != 0;
    int32_t gs = 0;
    if (version == 2) {
        memcpy(&gs, map + 37, 4);
        if (gs <= 0 || gs > 1 << 20) return err("%s: group size %d in the header", path, gs);
    }
    const struct model_config *c = &m->cfg;
    const int64_t D = c->dim, L = c->n_layers;
    int64_t nw[W_COUNT];
    size_t want = AK42_HEADER + (size_t)(2 * L * D + D) * 4;
    for (int w = 0; w < W_COUNT; w++) {
        int64_t ne[2];
        w_shape(c, w, ne);
        nw[w] = ne[0] * ne[1];
        int64_t count = w == W_EMB ? 1 : w == W_CLS ? (shared ? 0 : 1) : L;
        if (version == 2 && count && nw[w] % gs) {
            char name[64];
            w_name(w, name, sizeof name);
            return err("%s: tensor %s has %lld weights, not a multiple of the group size %d", path,
                       name, (long long)nw[w], gs);
        }
        want += (size_t)(count * nw[w]) * (version == 1 ? 4 : 1) +
                (version == 2 ? (size_t)(count * (nw[w] / gs)) * 4 : 0);
    }
    if (len != want) return size_error(path, len, want);
    const uint8_t *p = map + AK42_HEADER;
    const float *norms = (const float *)p;
    for (int l = 0; l < L; l++)
        if (add_norm(m, "blk.%d.attn_norm.weight", l, norms + l * D)) return -1;
    for (int l = 0; l < L; l++)
        if (add_norm(m, "blk.%d.ffn_norm.weight", l, norms + (L + l) * D)) return -1;
    if (add(m, "output_norm.weight", 1, D, 0, norms + 2 * L * D)) return -1;
    p += (size_t)(2 * L * D + D) * 4;
    for (int w = W_EMB; w < W_COUNT; w++) {
        int64_t count = w == W_EMB ? 1 : w == W_CLS ? (shared ? 0 : 1) : L;
        for (int l = 0; l < count; l++) {
            const void *data = p;
            if (version == 1) {
                p += nw[w] * 4;
            } else { /* dequantize q·s into an owned fp32 buffer */
                const int8_t *q = (const int8_t *)p;
                const uint8_t *sp = p + nw[w];
                char name[64];
                w_name(w, name, sizeof name);
                float *f = model_alloc(m, (size_t)nw[w] * sizeof(float), name);
                if (!f) return -1;
                for (int64_t i = 0; i < nw[w]; i++) {
                    float s;
                    memcpy(&s, sp + (size_t)(i / gs) * 4, 4);
                    f[i] = (float)q[i] * s;
                }
                data = f;
                p += nw[w] + (size_t)(nw[w] / gs) * 4;
            }
            if (add_weight(m, w, l, data)) return -1;
        }
    }
    return 0;
}

int model_load_llama2c(struct model *m, const char *path) {
    const uint8_t *map;
    size_t len;
    m->format = MODEL_FORMAT_LLAMA2C;
    if (model_map_file(m, path, &map, &len)) return -1;
    if (len < 28)
        return err("%s: %zu bytes is too short for a llama2.c checkpoint (28-byte header)", path,
                   len);
    uint32_t magic;
    memcpy(&magic, map, 4);
    int rc = magic == AK42_MAGIC ? load_ak42(m, path, map, len) : load_legacy(m, path, map, len);
    return rc ? rc : model_bind(m);
}
