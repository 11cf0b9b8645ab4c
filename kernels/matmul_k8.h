/* kernels/matmul_k8.h: Y = X·Wᵀ in llama.cpp's arithmetic for the GGUF super-block types, whose
 * CPU vec_dot pairs them with Q8_K activations (ggml-cpu's type_traits: vec_dot_type Q8_K for
 * Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_XS, IQ3_S, IQ3_XXS, IQ2_S, IQ2_XS, IQ2_XXS, IQ1_M, IQ1_S,
 * TQ1_0, TQ2_0). Reached through kernels/matmul_i8.h (int8 compute); the legacy 32-weight types
 * (Q8_0, Q4_0, Q5_0, IQ4_NL with Q8_0 activations; Q4_1, Q5_1 with Q8_1) are matmul_i8.c's.
 *
 * Semantics (the oracle, matmul_k8_ref). Each row of x is quantized per 256 as ggml's
 * quantize_row_q8_K_ref (q8_k_from_f32: d_x fp32, q int8, bsums per 16). Each weight super-block
 * is read as integers (k8_unpack): signed codes v[256] (|v| <= 127), per sub-block j of LS = 16 or
 * 32 weights an integer scale sc_j and (Q2_K, Q4_K, Q5_K) an integer min mn_j, and fp32 D, Dm:
 *     w_k = D·sc_j·v_k − Dm·mn_j
 * Per super-block, as ggml's vec_dot_*_q8_K: integer sums
 *     isum = Σ_j sc_j·Σ_{k∈j} v_k·q_k,     imin = Σ_j mn_j·Σ_{k∈j} q_k   (= bsums)
 * and y = Σ_sb ((D·d_x)·isum − (Dm·d_x)·imin)   (fp32, super-blocks in order, no FMA).
 * The types' v, sc, D:
 *   Q2_K  v = q (0..3), sc/mn 4-bit per 16, D = d, Dm = dmin       Q3_K  v = q − 4, sc − 32 per 16
 *   Q4_K  v = q (0..15), Q5_K v = q (0..31): 6-bit sc/mn per 32    Q6_K  v = q − 32, sc int8 per 16
 *   IQ4_XS v = kvalues_iq4nl[q], sc = ls − 32 per 32
 *   IQ2_XXS/XS/S  v = ±grid (8..43), sc = 2s + 1 per 32/16/16, D = d/8 (ggml's final ·0.125)
 *   IQ3_XXS v = ±grid (4..62), sc = 2s + 1 per 32, D = d/4;  IQ3_S v = ±grid (1..15), D = d
 *   IQ1_S / IQ1_M  v = 8·g + δ (g ∈ {−1, 0, 1}, δ = ±1: ggml's sumi + IQ1*_DELTA·sumi1 as one
 *       integer), sc = 2s + 1 per 32 / 16, D = d/8
 *   TQ1_0, TQ2_0  v = t − 1, sc = 1, D = d
 * The powers of two folded into D are exact, so they give ggml's values; ggml's SIMD versions
 * sum the super-blocks' fp32 terms in other orders (per ISA), which changes the last bits only.
 * The fast path (AVX-512 VNNI, AVX2, generic by cpu_isa()) equals matmul_k8_ref bit for bit on
 * every path and thread count (tests/test_k8.c). */
#ifndef KERNELS_MATMUL_K8_H
#define KERNELS_MATMUL_K8_H
#include "kernels/tensor.h"

struct kscratch;

/* the Q8_K-paired types above */
bool k8_supported(enum dtype t);
/* the sub-block length LS of type t (16 or 32), and whether it has mins */
int k8_sub_len(enum dtype t);
bool k8_has_min(enum dtype t);
/* one super-block of type t as integers (see above): v[256], sc and mn [256/LS] */
void k8_unpack(enum dtype t, const void *blk, int8_t *v, int32_t *sc, int32_t *mn, float *D,
               float *Dm);

/* the oracle; w->ne[0] a multiple of 256 */
void matmul_k8_ref(float *y, const float *x, const struct tensor *w, int n_tok);
/* the fast path with the caller's scratch (kscratch_take), 0 or -1 with a message; call from
 * outside any parallel region */
int matmul_k8_ws(float *y, const float *x, const struct tensor *w, int n_tok, struct kscratch *ws);
size_t matmul_k8_scratch(const struct tensor *w, int n_tok, int n_threads);
/* on a named path ("generic", "avx2", "avx512"); -2 when the CPU lacks it (tests) */
int matmul_k8_isa(float *y, const float *x, const struct tensor *w, int n_tok, const char *isa);
/* the path matmul_k8_ws takes: "avx512-vnni", "avx2" or "generic" */
const char *matmul_k8_path(void);
#endif
