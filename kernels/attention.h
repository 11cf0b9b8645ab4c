/* kernels/attention.h: causal multi-head attention over a KV cache, for prefill and decode.
 *
 * Shapes: T queries at positions pos0 .. pos0+T-1; nh query heads of hd; nkv key/value heads
 * (query head h reads kv head h / (nh/nkv), GQA). Query t attends keys j = 0 .. pos0+t:
 *   out[t][h] = Σ_j softmax_j(scale · q[t][h]·k[j]) · v[j],   scale = 1/√hd
 * Layouts (fp32; the caller owns the cache and fills it before the call):
 *   q, out  [T][nh·hd], row-major (the rotated queries; the attention output)
 *   kt      [nkv][hd][ldk]    the keys transposed, kt[g][i][j] = component i of key j of head g;
 *                             ldk = attn_ldk(n_ctx), so a row is whole vectors of keys
 *   v       [nkv][vrows][ldv] the values, one row of ldv per position; ldv = attn_ldv(hd) and the
 *                             columns hd..ldv-1 are zero; vrows >= pos0+T
 * Memory of kt past the last key of a row (up to ldk) must be readable (any finite or non-finite
 * values: they are masked); the cache from fwd_init is calloc'd.
 *
 * attention_ref is the oracle: per (t, h) the scores as fp32 dot products in index order times
 * scale, the softmax with the max subtracted and expf, the output Σ_j p_j·v_j in j order times
 * 1/Σp. attention is the fast path (AVX-512 / AVX2 / generic C, chosen with matmul's ISA): blocks
 * of 6 queries × 32 keys of one head computed like a GEMM tile, exp by a degree-6 polynomial
 * (about 2 ulp), the P·V product in tiles of 6 queries × 64 columns. Each output is computed by one
 * thread in a fixed order, so results do not depend on the thread count; they agree with
 * attention_ref to about 1e-6 relative (tests/test_attention.c). Call from outside an OpenMP
 * parallel region; -1 with a message when out of memory. */
#ifndef KERNELS_ATTENTION_H
#define KERNELS_ATTENTION_H
#include <stddef.h>
#include <stdint.h>

struct attn_shape {
    int T, pos0;
    int n_heads, n_kv_heads, head_dim;
    int64_t ldk, ldv;       /* from attn_ldk / attn_ldv */
    int64_t kt_head, v_head; /* floats from one kv head's block to the next in kt and v */
};

/* the key row stride for a cache of n_ctx positions (n_ctx rounded up to 32) */
int64_t attn_ldk(int n_ctx);
/* the value row stride for head_dim hd (hd rounded up to 16) */
int64_t attn_ldv(int hd);

void attention_ref(float *out, const float *q, const float *kt, const float *v,
                   const struct attn_shape *s);
/* the path attention takes (kernels/cpu.h) */
const char *attention_path(void);
int attention(float *out, const float *q, const float *kt, const float *v,
              const struct attn_shape *s);
/* the same with the caller's planned scratch (kernels/matmul.h: struct kscratch), and the bytes
 * it takes for any call with pos0 + T <= n_ctx on n_threads threads. 0, or -1 with a message when
 * the scratch cannot be had. */
struct kscratch;
int attention_ws(float *out, const float *q, const float *kt, const float *v,
                 const struct attn_shape *s, struct kscratch *ws);
size_t attention_scratch(int n_ctx, int head_dim, int n_threads);

/* exp(x) for x <= 0 as the fast path computes it (0 below -87.3, NaN stays NaN), for tests */
float attn_exp(float x);
#endif
