#!/usr/bin/python3
"""tests/ref/arch_ref.py: float64 numpy references for the architectures beyond the Llama family
(qwen3, gemma2, gemma3, phi3), written from Hugging Face transformers' modeling_<arch>.py, not from
lowbit's C code; tests/test_arch.c compares the engine with them (max |diff| of log-probs <= 1e-4).
Needs only Debian's python3-numpy: run it with /usr/bin/python3. The file formats (safetensors,
GGUF writing) are tests/ref/llama_ref.py's; the math below is this file's own.

  arch_ref.py make-fixtures OUTDIR     tiny random models, each as an HF directory and its GGUF
                                       twin; OUTDIR/manifest.txt: "name vocab hf_dir gguf" lines
  arch_ref.py logprobs HF_DIR --tokens 1,5,9 -o OUT.f32
                                       float32 log-softmax rows [n_tok][vocab] of the HF model
  arch_ref.py random-gguf ARCH -o OUT.gguf [--dim 256 --layers 2 --vocab 512 --std 0.05 --seed 0
                                       --extra '{"sliding_window": 128}']
                                       a larger random model for llama.cpp's perplexity (the
                                       peer): weights N(0, std), above N(0, 0.02) (at 0.2
                                       llama.cpp's f16 KV cache alone moves the mean NLL 1.5e-4)

The math, per model_type (x: [T, D], positions 0..T-1, causal attention, GQA by repeat_kv):
  qwen3 (Qwen3DecoderLayer): h = rms(x)·w_in; q, k, v = h·Wq,k,vᵀ (+ biases if attention_bias);
      each head of q and k: rms(head)·q_norm / k_norm (weights [head_dim]); RoPE rotate_half with
      inv_freq = theta^(-2i/head_dim); softmax(q·kᵀ·head_dim^-0.5); x += o·Woᵀ;
      h = rms(x)·w_post; x += down(silu(gate h) ⊙ up h); logits = rms(x)·w_norm · lm_headᵀ.
  gemma2 (Gemma2DecoderLayer): x = embed·sqrt(D); every RMSNorm multiplies by (1 + w);
      h = rms(x)(1+w_in); attention with scale query_pre_attn_scalar^-0.5, scores soft-capped
      cap·tanh(s/cap) (attn_logit_softcapping), layers whose layer_types entry is
      "sliding_attention" (default: even layers) see keys j with i − j < sliding_window;
      x += rms(attn)(1+w_post_attn); h = rms(x)(1+w_pre_ff); x += rms(down(gelu_tanh(gate h) ⊙
      up h))(1+w_post_ff); logits soft-capped by final_logit_softcapping.
  gemma3 (Gemma3DecoderLayer): gemma2 without attention soft-capping, with q_norm/k_norm
      ((1+w) RMSNorm per head) before RoPE; sliding layers (default: all but every
      sliding_window_pattern-th) use rope_local_base_freq, full layers rope_theta (with "linear"
      rope_scaling: positions / factor); final_logit_softcapping when set.
  phi3 (Phi3DecoderLayer): the llama block with q, k, v = the row blocks [qd | kvd | kvd] of
      h·qkv_projᵀ and gate, up = the two halves of h·gate_up_projᵀ (gate first); every layer
      sees keys j with i − j < sliding_window when it is set; "longrope" rope_scaling
      (_compute_longrope_parameters): inv_freq = 1/(ext·theta^(2i/hd)), ext = long_factor when
      the sequence is longer than original_max_position_embeddings, else short_factor; cos and
      sin times attention_factor (default sqrt(1 + ln(max/orig)/ln(orig)) when max > orig).
  mixtral (MixtralDecoderLayer, MixtralSparseMoeBlock): the llama block whose MLP is
      num_local_experts experts; per token p = softmax(h·gateᵀ) over all experts (float),
      the num_experts_per_tok largest (torch.topk), their p divided by their sum; the output is
      Σ p_e · w2_e(silu(w1_e h) ⊙ w3_e h).
  qwen2_moe (Qwen2MoeDecoderLayer, Qwen2MoeSparseMoeBlock): q/k/v biases; the experts as
      Mixtral's (mlp.experts.E.gate/up/down_proj) with the top-k probabilities renormalized only
      when norm_topk_prob; plus the shared expert (mlp.shared_expert, every token) times
      sigmoid(h·shared_expert_gateᵀ).
"""
import json
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from llama_ref import (GGML_F16, GGML_F32, gguf_write, hf_to_interleaved,  # noqa: E402 (formats)
                       round_to, safetensors_read, safetensors_write)

# =================================================================================== config ===


class Cfg:
    def __init__(self, c):
        self.type = c["model_type"]
        self.D = c["hidden_size"]
        self.H = c["intermediate_size"]
        self.n_layers = c["num_hidden_layers"]
        self.nh = c["num_attention_heads"]
        self.nkv = c.get("num_key_value_heads", self.nh)
        default_hd = 128 if self.type == "qwen3" else (256 if self.type.startswith("gemma") else
                                                       self.D // self.nh)
        self.hd = c.get("head_dim") or default_hd
        self.V = c["vocab_size"]
        self.eps = c.get("rms_norm_eps", 1e-6)
        self.theta = c.get("rope_theta", 10000.0)
        self.tied = c.get("tie_word_embeddings", self.type.startswith("gemma"))
        self.bias = c.get("attention_bias", False)
        self.gemma = self.type in ("gemma2", "gemma3", "gemma3_text")
        self.qk_norm = self.type in ("qwen3", "gemma3", "gemma3_text")
        self.scale = self.hd ** -0.5
        self.attn_cap = self.final_cap = None
        self.window = None
        self.sliding = [False] * self.n_layers
        self.local_theta = self.theta
        self.rope_linear = 1.0
        self.phi3 = self.type == "phi3"
        self.n_expert = c.get("num_local_experts", 0) if self.type == "mixtral" else 0
        self.top_k = c.get("num_experts_per_tok", 2)
        self.norm_topk = True
        self.qwen2moe = self.type == "qwen2_moe"
        if self.qwen2moe:
            self.n_expert = c["num_experts"]
            self.norm_topk = c.get("norm_topk_prob", False)
            self.bias = c.get("qkv_bias", True)
        self.ext_short = self.ext_long = None
        self.attn_factor = 1.0
        if self.phi3:
            self.window = c.get("sliding_window")
            self.sliding = [self.window is not None] * self.n_layers
            self.orig = c.get("original_max_position_embeddings") or c["max_position_embeddings"]
            rs = c.get("rope_scaling")
            if rs and rs.get("rope_type", rs.get("type")) in ("longrope", "su"):
                self.ext_long = np.array(rs["long_factor"], dtype=np.float64)
                self.ext_short = np.array(rs["short_factor"], dtype=np.float64)
                f = c["max_position_embeddings"] / self.orig
                self.attn_factor = rs.get("attention_factor") or (
                    1.0 if f <= 1 else math.sqrt(1 + math.log(f) / math.log(self.orig)))
        if self.gemma:
            self.scale = c.get("query_pre_attn_scalar", 256) ** -0.5
            self.final_cap = c.get("final_logit_softcapping")
            self.window = c.get("sliding_window", 4096)
            lt = c.get("layer_types")
            if self.type == "gemma2":
                self.attn_cap = c.get("attn_logit_softcapping")
                if lt is None:
                    lt = ["sliding_attention" if (i + 1) % 2 else "full_attention"
                          for i in range(self.n_layers)]
            else:
                self.local_theta = c.get("rope_local_base_freq", 10000.0)
                rs = c.get("rope_scaling")
                if rs and rs.get("rope_type", rs.get("type")) == "linear":
                    self.rope_linear = float(rs["factor"])
                if lt is None:
                    p = c.get("sliding_window_pattern", 6)
                    lt = ["sliding_attention" if (i + 1) % p else "full_attention"
                          for i in range(self.n_layers)]
            self.sliding = [t == "sliding_attention" for t in lt]


# ==================================================================================== math ===


def rms(x, w, eps, gemma):
    """Qwen3RMSNorm: x/sqrt(mean x² + eps)·w; Gemma2/3RMSNorm: the same times (1 + w)"""
    n = x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)
    return n * (1.0 + w) if gemma else n * w


def rope(x, pos, theta, hd, div=1.0, ext=None, mult=1.0):
    """apply_rotary_pos_emb: x·cos + rotate_half(x)·sin, x [T, heads, hd]; ext: longrope's
    per-frequency divisors, mult: its attention factor on cos and sin"""
    inv = 1.0 / theta ** (np.arange(0, hd, 2, dtype=np.float64) / hd)
    if ext is not None:
        inv = inv / ext
    ang = (pos[:, None] / div) * inv[None, :]
    cos = np.concatenate([np.cos(ang), np.cos(ang)], axis=-1)[:, None, :] * mult
    sin = np.concatenate([np.sin(ang), np.sin(ang)], axis=-1)[:, None, :] * mult
    h = hd // 2
    rot = np.concatenate([-x[..., h:], x[..., :h]], axis=-1)
    return x * cos + rot * sin


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def forward(c, w, tokens):
    T = len(tokens)
    pos = np.arange(T, dtype=np.float64)
    x = w["model.embed_tokens.weight"][tokens].copy()
    if c.gemma:  # Gemma2Model: hidden_states * normalizer (sqrt(hidden_size), in the hidden dtype)
        x = x * math.sqrt(c.D)
    i_idx, j_idx = np.arange(T)[:, None], np.arange(T)[None, :]
    for li in range(c.n_layers):
        p = "model.layers.%d." % li
        h = rms(x, w[p + "input_layernorm.weight"], c.eps, c.gemma)
        if c.phi3:  # Phi3Attention: one qkv_proj, split [qd | kvd | kvd]
            qkv = h @ w[p + "self_attn.qkv_proj.weight"].T
            qd, kvd = c.nh * c.hd, c.nkv * c.hd
            q, k, v = qkv[:, :qd], qkv[:, qd:qd + kvd], qkv[:, qd + kvd:]
        else:
            q = h @ w[p + "self_attn.q_proj.weight"].T
            k = h @ w[p + "self_attn.k_proj.weight"].T
            v = h @ w[p + "self_attn.v_proj.weight"].T
        if c.bias:
            q += w[p + "self_attn.q_proj.bias"]
            k += w[p + "self_attn.k_proj.bias"]
            v += w[p + "self_attn.v_proj.bias"]
        q, k, v = q.reshape(T, c.nh, c.hd), k.reshape(T, c.nkv, c.hd), v.reshape(T, c.nkv, c.hd)
        if c.qk_norm:
            q = rms(q, w[p + "self_attn.q_norm.weight"], c.eps, c.gemma)
            k = rms(k, w[p + "self_attn.k_norm.weight"], c.eps, c.gemma)
        if c.type in ("gemma3", "gemma3_text") and c.sliding[li]:
            theta, div = c.local_theta, 1.0
        else:
            theta, div = c.theta, c.rope_linear
        ext = None
        if c.ext_short is not None:
            ext = c.ext_long if T > c.orig else c.ext_short
        q = rope(q, pos, theta, c.hd, div, ext, c.attn_factor)
        k = rope(k, pos, theta, c.hd, div, ext, c.attn_factor)
        mask = j_idx > i_idx
        if c.sliding[li]:
            mask = mask | (i_idx - j_idx >= c.window)
        att = np.empty((T, c.nh, c.hd))
        g = c.nh // c.nkv
        for hh in range(c.nh):
            s = (q[:, hh, :] @ k[:, hh // g, :].T) * c.scale
            if c.attn_cap:
                s = np.tanh(s / c.attn_cap) * c.attn_cap
            s[mask] = -np.inf
            s = s - s.max(axis=1, keepdims=True)
            pr = np.exp(s)
            pr /= pr.sum(axis=1, keepdims=True)
            att[:, hh, :] = pr @ v[:, hh // g, :]
        o = att.reshape(T, c.nh * c.hd) @ w[p + "self_attn.o_proj.weight"].T
        if c.gemma:
            x = x + rms(o, w[p + "post_attention_layernorm.weight"], c.eps, True)
            h = rms(x, w[p + "pre_feedforward_layernorm.weight"], c.eps, True)
        else:
            x = x + o
            h = rms(x, w[p + "post_attention_layernorm.weight"], c.eps, False)
        if c.n_expert:  # MixtralSparseMoeBlock, Qwen2MoeSparseMoeBlock
            x = x + moe(c, w, p + ("mlp." if c.qwen2moe else "block_sparse_moe."), h)
            continue
        if c.phi3:  # Phi3MLP: gate, up = chunk(gate_up_proj(h), 2)
            gu = h @ w[p + "mlp.gate_up_proj.weight"].T
            gate, up = gu[:, :c.H], gu[:, c.H:]
        else:
            gate = h @ w[p + "mlp.gate_proj.weight"].T
            up = h @ w[p + "mlp.up_proj.weight"].T
        act = gelu_tanh(gate) if c.gemma else gate / (1.0 + np.exp(-gate))
        f = (act * up) @ w[p + "mlp.down_proj.weight"].T
        if c.gemma:
            f = rms(f, w[p + "post_feedforward_layernorm.weight"], c.eps, True)
        x = x + f
    x = rms(x, w["model.norm.weight"], c.eps, c.gemma)
    out = w["model.embed_tokens.weight"] if c.tied else w["lm_head.weight"]
    logits = x @ out.T
    if c.final_cap:
        logits = np.tanh(logits / c.final_cap) * c.final_cap
    return logits


def moe(c, w, p, h):
    """Mixtral's sparse block on h [T, D]: softmax routing, top-k, renormalized weights"""
    logits = h @ w[p + "gate.weight"].T
    pr = np.exp(logits - logits.max(axis=-1, keepdims=True))
    pr /= pr.sum(axis=-1, keepdims=True)
    out = np.zeros_like(h)
    names = ("gate_proj", "up_proj", "down_proj") if c.qwen2moe else ("w1", "w3", "w2")
    for t in range(h.shape[0]):
        sel = np.argsort(-pr[t], kind="stable")[:c.top_k]
        wt = pr[t, sel] / pr[t, sel].sum() if c.norm_topk else pr[t, sel]
        for e, we in zip(sel, wt):
            q = p + "experts.%d." % e
            g = h[t] @ w[q + names[0] + ".weight"].T
            u = h[t] @ w[q + names[1] + ".weight"].T
            out[t] += we * ((g / (1.0 + np.exp(-g)) * u) @ w[q + names[2] + ".weight"].T)
    if c.qwen2moe:  # the shared expert, gated by a sigmoid
        q = p + "shared_expert."
        g = h @ w[q + "gate_proj.weight"].T
        u = h @ w[q + "up_proj.weight"].T
        y = (g / (1.0 + np.exp(-g)) * u) @ w[q + "down_proj.weight"].T
        z = h @ w[p + "shared_expert_gate.weight"].T
        out += y / (1.0 + np.exp(-z))
    return out


def log_softmax(z):
    mx = z.max(axis=-1, keepdims=True)
    return z - mx - np.log(np.exp(z - mx).sum(axis=-1, keepdims=True))


def load_hf(d):
    c = json.load(open(os.path.join(d, "config.json")))
    if c.get("model_type") not in ("qwen3", "gemma2", "gemma3", "gemma3_text", "phi3", "mixtral",
                                   "qwen2_moe"):
        raise ValueError("%s: model_type %s is not one of this reference's" % (d, c.get("model_type")))
    return Cfg(c), safetensors_read(os.path.join(d, "model.safetensors"))


# ================================================================================ fixtures ===

# name, model_type, dim, hidden, layers, heads, kv heads, head dim, vocab, tied, safetensors dtype,
# GGUF matrix type, theta, eps, extra config keys
FIXTURES = [
    dict(name="qwen3_gqa", type="qwen3", dim=64, hidden=96, layers=2, heads=4, kv_heads=2,
         head_dim=32, vocab=300, tied=False, dtype="F32", gguf_type=GGML_F32, theta=1000000.0,
         eps=1e-6, extra={}),
    dict(name="qwen3_tied_bf16", type="qwen3", dim=48, hidden=128, layers=3, heads=6, kv_heads=3,
         head_dim=8, vocab=272, tied=True, dtype="BF16", gguf_type=GGML_F32, theta=10000.0,
         eps=1e-6, extra={}),
    # window 8 < 48 tokens: the sliding layers (0 and 2) cut; small caps so tanh bends the scores;
    # query_pre_attn_scalar = head_dim, the scale llama.cpp uses for GGUF gemma2 below 27B
    dict(name="gemma2_swa_caps", type="gemma2", dim=64, hidden=128, layers=4, heads=4, kv_heads=2,
         head_dim=16, vocab=300, tied=True, dtype="F32", gguf_type=GGML_F32, theta=10000.0,
         eps=1e-6, extra=dict(sliding_window=8, attn_logit_softcapping=5.0,
                              final_logit_softcapping=8.0, query_pre_attn_scalar=16)),
    # pattern 3: layers 0, 1 slide (local RoPE base 10000), layer 2 is full (base 1e6, positions
    # halved by linear scaling)
    dict(name="gemma3_swa_bf16", type="gemma3_text", dim=48, hidden=96, layers=3, heads=4,
         kv_heads=1, head_dim=16, vocab=280, tied=True, dtype="BF16", gguf_type=GGML_F32,
         theta=1000000.0, eps=1e-6,
         extra=dict(sliding_window=8, sliding_window_pattern=3, rope_local_base_freq=10000.0,
                    rope_scaling={"rope_type": "linear", "factor": 2.0},
                    final_logit_softcapping=10.0, query_pre_attn_scalar=16)),
    # longrope: 48 tokens <= original 128, so the short factors (random, 1..4) and the attention
    # factor of max/orig = 4; a window above the sequence (llama.cpp's phi3 ignores it)
    dict(name="phi3_longrope", type="phi3", dim=64, hidden=96, layers=2, heads=4, kv_heads=2,
         head_dim=16, vocab=300, tied=False, dtype="F32", gguf_type=GGML_F32, theta=10000.0,
         eps=1e-5, extra=dict(original_max_position_embeddings=128, sliding_window=2047,
                              rope_scaling="longrope")),
    # 4 experts, 2 per token; 8 experts of bf16
    dict(name="mixtral_e4", type="mixtral", dim=64, hidden=64, layers=2, heads=4, kv_heads=2,
         head_dim=16, vocab=300, tied=False, dtype="F32", gguf_type=GGML_F32, theta=1000000.0,
         eps=1e-5, extra=dict(num_local_experts=4, num_experts_per_tok=2)),
    dict(name="mixtral_e8_bf16", type="mixtral", dim=48, hidden=32, layers=2, heads=6,
         kv_heads=2, head_dim=8, vocab=272, tied=False, dtype="BF16", gguf_type=GGML_F32,
         theta=10000.0, eps=1e-5, extra=dict(num_local_experts=8, num_experts_per_tok=2)),
    # 6 experts, 2 per token, not renormalized (Qwen1.5-MoE's norm_topk_prob false), a shared
    # expert; 4 experts renormalized in bf16
    dict(name="qwen2moe_e6", type="qwen2_moe", dim=64, hidden=96, layers=2, heads=4, kv_heads=2,
         head_dim=16, vocab=300, tied=False, dtype="F32", gguf_type=GGML_F32, theta=1000000.0,
         eps=1e-6, extra=dict(num_experts=6, num_experts_per_tok=2, moe_intermediate_size=32,
                              shared_expert_intermediate_size=80, norm_topk_prob=False)),
    dict(name="qwen2moe_norm_bf16", type="qwen2_moe", dim=48, hidden=64, layers=2, heads=6,
         kv_heads=6, head_dim=8, vocab=272, tied=False, dtype="BF16", gguf_type=GGML_F32,
         theta=10000.0, eps=1e-6, extra=dict(num_experts=4, num_experts_per_tok=2,
                                            moe_intermediate_size=24,
                                            shared_expert_intermediate_size=40,
                                            norm_topk_prob=True)),
    dict(name="phi3_plain_bf16", type="phi3", dim=48, hidden=64, layers=2, heads=6, kv_heads=6,
         head_dim=8, vocab=272, tied=False, dtype="BF16", gguf_type=GGML_F32, theta=10000.0,
         eps=1e-5, extra={}),
    # gemma3 with widths that are multiples of 32, so the GPTQ-layout recipes (AutoRound's among
    # them) quantize every linear: layers 0, 1 slide (window 8, local base 10000), layer 2 is
    # full (1e6); query_pre_attn_scalar = head_dim (what a GGUF gemma3 file implies)
    dict(name="gemma3_swa_w64", type="gemma3_text", dim=64, hidden=128, layers=3, heads=4,
         kv_heads=2, head_dim=32, vocab=300, tied=True, dtype="F32", gguf_type=GGML_F32,
         theta=1000000.0, eps=1e-6,
         extra=dict(sliding_window=8, sliding_window_pattern=3, rope_local_base_freq=10000.0,
                    query_pre_attn_scalar=32)),
]

GGUF_ARCH = {"gemma3_text": "gemma3", "mixtral": "llama", "qwen2_moe": "qwen2moe"}

CLASSES = {"qwen3": "Qwen3ForCausalLM", "gemma2": "Gemma2ForCausalLM",
           "gemma3": "Gemma3ForCausalLM", "gemma3_text": "Gemma3ForCausalLM",
           "phi3": "Phi3ForCausalLM", "mixtral": "MixtralForCausalLM",
           "qwen2_moe": "Qwen2MoeForCausalLM"}


def longrope_factors(fx, seed):
    """a fixture's "longrope" request made concrete: random long and short divisors in 1..4"""
    e = dict(fx["extra"])
    if e.get("rope_scaling") == "longrope":
        rng = np.random.default_rng(seed + 17)
        half = fx["head_dim"] // 2
        e["rope_scaling"] = {"rope_type": "longrope",
                             "long_factor": [float(v) for v in rng.uniform(1.0, 4.0, half)],
                             "short_factor": [float(v) for v in rng.uniform(1.0, 4.0, half)]}
    return e


def random_weights(fx, seed, std=None):
    """HF names and shapes; values already what the file's dtype holds. std: one scale for
    every matrix (random-gguf), else fixed per-tensor scales that keep log-probs informative"""
    rng = np.random.default_rng(seed)
    D, H, V, hd = fx["dim"], fx["hidden"], fx["vocab"], fx["head_dim"]
    qd, kvd = fx["heads"] * hd, fx["kv_heads"] * hd
    gemma = fx["type"].startswith("gemma")

    def r(shape, s):
        return round_to(rng.normal(0.0, std if std else s, size=shape), fx["dtype"])

    def norm(n):  # gemma stores w with the norm multiplying by 1 + w
        base = 0.0 if gemma else 1.0
        return round_to(base + rng.normal(0.0, 0.1, size=n), fx["dtype"])
    w = {"model.embed_tokens.weight": r((V, D), 0.4 if not gemma else 0.3)}
    phi3 = fx["type"] == "phi3"
    for i in range(fx["layers"]):
        p = "model.layers.%d." % i
        w[p + "input_layernorm.weight"] = norm(D)
        if phi3:
            w[p + "self_attn.qkv_proj.weight"] = np.concatenate(
                [r((qd, D), 0.2), r((kvd, D), 0.2), r((kvd, D), 0.15)])
        else:
            w[p + "self_attn.q_proj.weight"] = r((qd, D), 0.2)
            w[p + "self_attn.k_proj.weight"] = r((kvd, D), 0.2)
            w[p + "self_attn.v_proj.weight"] = r((kvd, D), 0.15)
        w[p + "self_attn.o_proj.weight"] = r((D, qd), 0.1)
        if fx["type"] in ("qwen3", "gemma3", "gemma3_text"):
            w[p + "self_attn.q_norm.weight"] = norm(hd)
            w[p + "self_attn.k_norm.weight"] = norm(hd)
        w[p + "post_attention_layernorm.weight"] = norm(D)
        if gemma:
            w[p + "pre_feedforward_layernorm.weight"] = norm(D)
            w[p + "post_feedforward_layernorm.weight"] = norm(D)
        if fx["type"] == "qwen2_moe":
            for n, sh in (("q", qd), ("k", kvd), ("v", kvd)):
                w[p + "self_attn.%s_proj.bias" % n] = r((sh,), 0.1)
            E, He, Hs = (fx["extra"][k] for k in ("num_experts", "moe_intermediate_size",
                                                   "shared_expert_intermediate_size"))
            w[p + "mlp.gate.weight"] = r((E, D), 0.5)
            for e in range(E):
                q = p + "mlp.experts.%d." % e
                w[q + "gate_proj.weight"] = r((He, D), 0.15)
                w[q + "up_proj.weight"] = r((He, D), 0.15)
                w[q + "down_proj.weight"] = r((D, He), 0.1)
            q = p + "mlp.shared_expert."
            w[q + "gate_proj.weight"] = r((Hs, D), 0.15)
            w[q + "up_proj.weight"] = r((Hs, D), 0.15)
            w[q + "down_proj.weight"] = r((D, Hs), 0.1)
            w[p + "mlp.shared_expert_gate.weight"] = r((1, D), 0.3)
            continue
        if fx["type"] == "mixtral":  # a router large enough that the choice varies by token
            E = fx["extra"]["num_local_experts"]
            w[p + "block_sparse_moe.gate.weight"] = r((E, D), 0.5)
            for e in range(E):
                q = p + "block_sparse_moe.experts.%d." % e
                w[q + "w1.weight"] = r((H, D), 0.15)
                w[q + "w3.weight"] = r((H, D), 0.15)
                w[q + "w2.weight"] = r((D, H), 0.1)
            continue
        if phi3:
            w[p + "mlp.gate_up_proj.weight"] = np.concatenate([r((H, D), 0.15), r((H, D), 0.15)])
        else:
            w[p + "mlp.gate_proj.weight"] = r((H, D), 0.15)
            w[p + "mlp.up_proj.weight"] = r((H, D), 0.15)
        w[p + "mlp.down_proj.weight"] = r((D, H), 0.1)
    w["model.norm.weight"] = norm(D)
    if not fx["tied"]:
        w["lm_head.weight"] = r((V, D), 0.25)
    return w


def write_hf(d, fx, w):
    os.makedirs(d, exist_ok=True)
    cfg = {"architectures": [CLASSES[fx["type"]]], "model_type": fx["type"],
           "hidden_size": fx["dim"], "intermediate_size": fx["hidden"],
           "num_hidden_layers": fx["layers"], "num_attention_heads": fx["heads"],
           "num_key_value_heads": fx["kv_heads"], "head_dim": fx["head_dim"],
           "vocab_size": fx["vocab"], "rms_norm_eps": fx["eps"], "rope_theta": fx["theta"],
           "tie_word_embeddings": fx["tied"], "max_position_embeddings": 512,
           "hidden_act": "silu", "torch_dtype": {"F32": "float32", "F16": "float16",
                                                 "BF16": "bfloat16"}[fx["dtype"]],
           "bos_token_id": 1, "eos_token_id": 2}
    if fx["type"] == "qwen3":
        cfg.update(attention_bias=False, use_sliding_window=False)
    elif fx["type"] == "phi3":
        cfg.update(sliding_window=None, original_max_position_embeddings=512)
    elif fx["type"] == "mixtral":
        cfg.update(sliding_window=None)
    elif fx["type"] == "qwen2_moe":
        cfg.update(use_sliding_window=False, decoder_sparse_step=1, mlp_only_layers=[],
                   qkv_bias=True)
    else:
        cfg["hidden_activation"] = "gelu_pytorch_tanh"
        del cfg["hidden_act"]
    cfg.update(fx["extra"])
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    safetensors_write(os.path.join(d, "model.safetensors"), list(w.items()), fx["dtype"])


def toy_vocab(V):
    """a SentencePiece-style vocabulary: <unk> <s> </s>, 256 byte pieces, then ▁-words"""
    toks = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)]
    letters = "abcdefghijklmnopqrstuvwxyz"
    i = 0
    while len(toks) < V:
        toks.append("\u2581" + letters[i % 26] + (letters[i // 26 % 26] if i >= 26 else ""))
        i += 1
    toks = toks[:V]
    scores = [0.0] * 259 + [-float(k) for k in range(V - 259)]
    ttype = [2, 3, 3] + [6] * 256 + [1] * (V - 259)
    return toks, scores, ttype


def write_gguf(path, fx, w, ctx=512):
    """the GGUF llama.cpp's convert_hf_to_gguf.py writes for these architectures: q/k rows keep
    HF's order (NEOX rope), 1-D norms F32; gemma norms are stored as written (llama.cpp's gemma
    converters add 1 to them: done here too, as lowbit reads them)"""
    arch, V = GGUF_ARCH.get(fx["type"], fx["type"]), fx["vocab"]
    toks, scores, ttype = toy_vocab(V)
    if arch == "phi3":  # llama.cpp's vocab loader looks this one up in any model named phi3
        toks[-1], ttype[-1] = "<|endoftext|>", 3
    U32, I32, F32, STR, BOOL = 4, 5, 6, 8, 7
    kvs = [("general.architecture", STR, arch), ("general.name", STR, "lowbit-ref-" + fx["name"]),
           ("general.alignment", U32, 32),
           (arch + ".context_length", U32, ctx), (arch + ".embedding_length", U32, fx["dim"]),
           (arch + ".block_count", U32, fx["layers"]),
           (arch + ".feed_forward_length", U32, fx["hidden"]),
           (arch + ".attention.head_count", U32, fx["heads"]),
           (arch + ".attention.head_count_kv", U32, fx["kv_heads"]),
           (arch + ".attention.key_length", U32, fx["head_dim"]),
           (arch + ".attention.value_length", U32, fx["head_dim"]),
           (arch + ".attention.layer_norm_rms_epsilon", F32, fx["eps"]),
           (arch + ".rope.freq_base", F32, fx["theta"]),
           ("tokenizer.ggml.model", STR, "llama"), ("tokenizer.ggml.tokens", ("arr", STR), toks),
           ("tokenizer.ggml.scores", ("arr", F32), scores),
           ("tokenizer.ggml.token_type", ("arr", I32), ttype),
           ("tokenizer.ggml.bos_token_id", U32, 1), ("tokenizer.ggml.eos_token_id", U32, 2),
           ("tokenizer.ggml.unknown_token_id", U32, 0),
           ("tokenizer.ggml.add_bos_token", BOOL, True)]
    gemma = arch.startswith("gemma")
    mt = fx["gguf_type"]

    def nrm(a):
        return a + 1.0 if gemma else a
    t = [("token_embd.weight", w["model.embed_tokens.weight"], mt)]
    phi3 = arch == "phi3"
    for i in range(fx["layers"]):
        p, b = "model.layers.%d." % i, "blk.%d." % i
        t += [(b + "attn_norm.weight", nrm(w[p + "input_layernorm.weight"]), GGML_F32)]
        if phi3:  # Phi3MiniModel keeps the fused tensors: attn_qkv, ffn_up [D, 2H]
            t += [(b + "attn_qkv.weight", w[p + "self_attn.qkv_proj.weight"], mt)]
        elif arch == "llama":  # LlamaModel's converter: q/k rows to interleaved rotary pairs
            t += [(b + "attn_q.weight", hf_to_interleaved(w[p + "self_attn.q_proj.weight"],
                                                          fx["heads"]), mt),
                  (b + "attn_k.weight", hf_to_interleaved(w[p + "self_attn.k_proj.weight"],
                                                          fx["kv_heads"]), mt),
                  (b + "attn_v.weight", w[p + "self_attn.v_proj.weight"], mt)]
        else:
            t += [(b + "attn_q.weight", w[p + "self_attn.q_proj.weight"], mt),
                  (b + "attn_k.weight", w[p + "self_attn.k_proj.weight"], mt),
                  (b + "attn_v.weight", w[p + "self_attn.v_proj.weight"], mt)]
        if p + "self_attn.q_proj.bias" in w:
            t += [(b + "attn_%s.bias" % n, w[p + "self_attn.%s_proj.bias" % n], GGML_F32)
                  for n in ("q", "k", "v")]
        t += [(b + "attn_output.weight", w[p + "self_attn.o_proj.weight"], mt)]
        if p + "self_attn.q_norm.weight" in w:
            t += [(b + "attn_q_norm.weight", nrm(w[p + "self_attn.q_norm.weight"]), GGML_F32),
                  (b + "attn_k_norm.weight", nrm(w[p + "self_attn.k_norm.weight"]), GGML_F32)]
        if gemma:
            t += [(b + "post_attention_norm.weight",
                   nrm(w[p + "post_attention_layernorm.weight"]), GGML_F32),
                  (b + "ffn_norm.weight", nrm(w[p + "pre_feedforward_layernorm.weight"]), GGML_F32),
                  (b + "post_ffw_norm.weight", nrm(w[p + "post_feedforward_layernorm.weight"]),
                   GGML_F32)]
        else:
            t += [(b + "ffn_norm.weight", w[p + "post_attention_layernorm.weight"], GGML_F32)]
        if fx["type"] == "qwen2_moe":  # Qwen2MoeModel's converter: experts stacked, shared
            q = p + "mlp."
            E = fx["extra"]["num_experts"]

            def stk(n):
                return np.stack([w[q + "experts.%d.%s_proj.weight" % (e, n)] for e in range(E)])
            t += [(b + "ffn_gate_inp.weight", w[q + "gate.weight"], mt),
                  (b + "ffn_gate_exps.weight", stk("gate"), mt),
                  (b + "ffn_down_exps.weight", stk("down"), mt),
                  (b + "ffn_up_exps.weight", stk("up"), mt),
                  (b + "ffn_gate_inp_shexp.weight", w[q + "shared_expert_gate.weight"][0], mt),
                  (b + "ffn_gate_shexp.weight", w[q + "shared_expert.gate_proj.weight"], mt),
                  (b + "ffn_up_shexp.weight", w[q + "shared_expert.up_proj.weight"], mt),
                  (b + "ffn_down_shexp.weight", w[q + "shared_expert.down_proj.weight"], mt)]
        elif fx["type"] == "mixtral":  # the router, then the experts stacked: [E, out, in]
            q = p + "block_sparse_moe."
            E = fx["extra"]["num_local_experts"]

            def stack(n):
                return np.stack([w[q + "experts.%d.%s.weight" % (e, n)] for e in range(E)])
            t += [(b + "ffn_gate_inp.weight", w[q + "gate.weight"], mt),
                  (b + "ffn_gate_exps.weight", stack("w1"), mt),
                  (b + "ffn_down_exps.weight", stack("w2"), mt),
                  (b + "ffn_up_exps.weight", stack("w3"), mt)]
        elif phi3:
            t += [(b + "ffn_down.weight", w[p + "mlp.down_proj.weight"], mt),
                  (b + "ffn_up.weight", w[p + "mlp.gate_up_proj.weight"], mt)]
        else:
            t += [(b + "ffn_gate.weight", w[p + "mlp.gate_proj.weight"], mt),
                  (b + "ffn_up.weight", w[p + "mlp.up_proj.weight"], mt),
                  (b + "ffn_down.weight", w[p + "mlp.down_proj.weight"], mt)]
    t.append(("output_norm.weight", nrm(w["model.norm.weight"]), GGML_F32))
    if not fx["tied"]:
        t.append(("output.weight", w["lm_head.weight"], mt))
    rs = fx["extra"].get("rope_scaling")
    if phi3 and isinstance(rs, dict):  # Phi3MiniModel.generate_extra_tensors
        t += [("rope_factors_long.weight", np.array(rs["long_factor"]), GGML_F32),
              ("rope_factors_short.weight", np.array(rs["short_factor"]), GGML_F32)]
    kvs += gguf_extra_kvs(fx, ctx)
    gguf_write(path, kvs, t)


def gguf_extra_kvs(fx, ctx):
    """the architecture's own GGUF keys (llama.cpp's names) from the fixture's extra config"""
    arch, e, out = GGUF_ARCH.get(fx["type"], fx["type"]), fx["extra"], []
    U32, F32, STR = 4, 6, 8
    if fx["type"] == "mixtral":
        out += [(arch + ".expert_count", U32, e["num_local_experts"]),
                (arch + ".expert_used_count", U32, e["num_experts_per_tok"])]
    if fx["type"] == "qwen2_moe":
        out += [(arch + ".expert_count", U32, e["num_experts"]),
                (arch + ".expert_used_count", U32, e["num_experts_per_tok"]),
                (arch + ".expert_feed_forward_length", U32, e["moe_intermediate_size"]),
                (arch + ".expert_shared_feed_forward_length", U32,
                 e["shared_expert_intermediate_size"])]
        if e.get("norm_topk_prob"):  # lowbit's key for it (llama.cpp's qwen2moe never norms)
            out.append((arch + ".expert_weights_norm", 7, True))
    if arch == "phi3":  # Phi3MiniModel.set_gguf_parameters
        orig = e.get("original_max_position_embeddings", ctx)
        out.append((arch + ".rope.scaling.original_context_length", U32, orig))
        out.append((arch + ".rope.dimension_count", U32, fx["head_dim"]))
        if e.get("sliding_window"):
            out.append((arch + ".attention.sliding_window", U32, e["sliding_window"]))
        if isinstance(e.get("rope_scaling"), dict):
            f = ctx / orig
            af = 1.0 if f <= 1 else math.sqrt(1 + math.log(f) / math.log(orig))
            out.append((arch + ".rope.scaling.attn_factor", F32, af))
    if arch.startswith("gemma"):
        if "sliding_window" in e:
            out.append((arch + ".attention.sliding_window", U32, e["sliding_window"]))
        if "sliding_window_pattern" in e:
            out.append((arch + ".attention.sliding_window_pattern", U32, e["sliding_window_pattern"]))
        for k in ("attn_logit_softcapping", "final_logit_softcapping"):
            if e.get(k):
                out.append((arch + "." + k, F32, e[k]))
        if "rope_local_base_freq" in e:
            out.append((arch + ".rope.freq_base_swa", F32, e["rope_local_base_freq"]))
        if "rope_scaling" in e:
            out += [(arch + ".rope.scaling.type", STR, "linear"),
                    (arch + ".rope.scaling.factor", F32, e["rope_scaling"]["factor"])]
    return out


def make_fixtures(outdir):
    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, "manifest.txt"), "w") as man:
        for k, fx in enumerate(FIXTURES):
            fx = dict(fx, extra=longrope_factors(fx, 20261207 + k))
            w = random_weights(fx, seed=20261207 + k)
            hf, gg = os.path.join(outdir, fx["name"] + "_hf"), os.path.join(outdir, fx["name"] + ".gguf")
            write_hf(hf, fx, w)
            write_gguf(gg, fx, w)
            man.write("%s %d %s %s\n" % (fx["name"], fx["vocab"], hf, gg))


# ==================================================================================== main ===


def arg(argv, name, default=None, conv=str):
    return conv(argv[argv.index(name) + 1]) if name in argv else default


def main(argv):
    if len(argv) >= 2 and argv[0] == "make-fixtures":
        make_fixtures(argv[1])
        return 0
    if len(argv) >= 2 and argv[0] == "logprobs":
        toks = [int(t) for t in arg(argv, "--tokens").split(",")]
        c, w = load_hf(argv[1])
        lp = log_softmax(forward(c, w, np.array(toks)))
        lp.astype("<f4").tofile(arg(argv, "-o"))
        return 0
    if len(argv) >= 2 and argv[0] == "random-gguf":
        arch = argv[1]
        fx = dict(name="rand-" + arch, type=arch, dim=arg(argv, "--dim", 256, int),
                  hidden=arg(argv, "--hidden", 512, int), layers=arg(argv, "--layers", 2, int),
                  heads=arg(argv, "--heads", 4, int), kv_heads=arg(argv, "--kv-heads", 2, int),
                  head_dim=arg(argv, "--head-dim", 64, int), vocab=arg(argv, "--vocab", 512, int),
                  tied=arch.startswith("gemma"), dtype="F32", gguf_type=GGML_F32,
                  theta=arg(argv, "--theta", 10000.0, float), eps=1e-6,
                  extra=json.loads(arg(argv, "--extra", "{}")))
        fx["extra"] = longrope_factors(fx, arg(argv, "--seed", 0, int))
        std = arg(argv, "--std", 0.05, float)
        w = random_weights(fx, arg(argv, "--seed", 0, int), std=std)
        write_gguf(arg(argv, "-o"), fx, w, ctx=arg(argv, "--ctx", 512, int))
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
