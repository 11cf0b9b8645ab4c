#!/usr/bin/python3
"""tests/ref/llama_ref.py: an independent float64 numpy reference for Llama-family decoders.

Written from the math, not from lowbit's C code, so the engine can be checked against it
(tests/test_reference.c asks for <= 1e-4 max abs diff in log-probs). Needs only Debian's
python3-numpy: run it with /usr/bin/python3.

  llama_ref.py logprobs MODEL --tokens 1,5,9 -o OUT.f32   float32 log-softmax rows [n_tok][vocab]
  llama_ref.py make-fixtures OUTDIR                        random models (HF dirs + GGUF) + manifest
  llama_ref.py info MODEL                                  config and tensor list
  llama_ref.py sanity MODEL --tokenizer tok512.bin [--text FILE]
                                                           mean NLL on text and greedy sample

MODEL is a llama2.c checkpoint (legacy 7-int header; "ak42" version 1 fp32 or version 2 Q8_0),
a GGUF v2/v3 file (F32, F16, BF16, Q8_0 tensors; arch llama/mistral/qwen2) or a Hugging Face
directory (config.json + model.safetensors or model.safetensors.index.json; F32, F16, BF16).

The math, in float64 (x: [T, D] rows, one per position):
  rmsnorm(x, w)   = x * w / sqrt(mean(x^2) + eps)
  per layer:      h = rmsnorm(x, attn_norm); q = Wq h (+bq); k = Wk h (+bk); v = Wv h (+bv)
                  rotate q, k by angle pos * theta^(-2i/n_rot) for pair i
                  q head j attends to kv head j // (n_heads / n_kv_heads), causally, softmax of
                  q.k / sqrt(head_dim); x += Wo concat(heads)
                  h = rmsnorm(x, ffn_norm); x += W_down (silu(W_gate h) * (W_up h))
  logits = W_out rmsnorm(x, out_norm) (W_out = token embedding when tied); log-softmax per row.
Rotary pairs: llama2.c files and GGUF arch llama store q/k so that pairs are (2i, 2i+1) in each
head ("interleaved"); HF checkpoints and GGUF arch qwen2 pair (i, i + n_rot/2) ("half"). Each
format is evaluated in its own convention; a GGUF llama made from HF weights has the q/k rows of
each head reordered (HF row c*hd/2 + i -> GGUF row 2i + c), which make_fixtures does.
"""
import json
import os
import struct
import sys

import numpy as np

# ====================================================================================== model ===


class Model:
    """Weights in the math's orientation: matrices are [out, in] float64 arrays."""

    def __init__(self):
        self.fmt = ""
        self.arch = "llama"
        self.dim = self.hidden_dim = self.n_layers = self.n_heads = self.n_kv_heads = 0
        self.head_dim = self.vocab_size = 0
        self.n_rot = 0  # rotated dims per head (== head_dim unless the file says otherwise)
        self.eps = 1e-5
        self.theta = 10000.0
        self.rope = "interleaved"  # or "half"
        self.tied = False
        self.embed = None  # [V, D]
        self.out_norm = None  # [D]
        self.output = None  # [V, D] (is embed when tied)
        self.layers = []  # dicts: attn_norm wq wk wv wo bq bk bv ffn_norm w_gate w_up w_down

    def describe(self):
        return ("%s arch=%s dim=%d hidden=%d layers=%d heads=%d kv_heads=%d head_dim=%d n_rot=%d "
                "vocab=%d eps=%g theta=%g rope=%s tied=%s bias=%s" %
                (self.fmt, self.arch, self.dim, self.hidden_dim, self.n_layers, self.n_heads,
                 self.n_kv_heads, self.head_dim, self.n_rot, self.vocab_size, self.eps, self.theta,
                 self.rope, self.tied, self.layers[0].get("bq") is not None))

    def check(self):
        D, H, hd = self.dim, self.hidden_dim, self.head_dim
        qd, kvd = self.n_heads * hd, self.n_kv_heads * hd
        if self.n_heads % self.n_kv_heads:
            raise ValueError("n_heads %d not a multiple of n_kv_heads %d" %
                             (self.n_heads, self.n_kv_heads))
        if self.n_rot % 2 or self.n_rot > hd:
            raise ValueError("bad rotary dims %d (head_dim %d)" % (self.n_rot, hd))
        want = {"attn_norm": (D,), "wq": (qd, D), "wk": (kvd, D), "wv": (kvd, D), "wo": (D, qd),
                "ffn_norm": (D,), "w_gate": (H, D), "w_up": (H, D), "w_down": (D, H),
                "bq": (qd,), "bk": (kvd,), "bv": (kvd,)}
        assert len(self.layers) == self.n_layers
        for i, L in enumerate(self.layers):
            for k, shp in want.items():
                if L.get(k) is None and k[0] == "b":
                    continue
                if L[k].shape != shp:
                    raise ValueError("layer %d %s: shape %s, expected %s" % (i, k, L[k].shape, shp))
        for name, a, shp in (("embed", self.embed, (self.vocab_size, D)), ("out_norm", self.out_norm, (D,)),
                             ("output", self.output, (self.vocab_size, D))):
            if a.shape != shp:
                raise ValueError("%s: shape %s, expected %s" % (name, a.shape, shp))
        return self


# ==================================================================================== forward ===


def rmsnorm(x, w, eps):
    return x * w / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)


def rope_tables(m, positions):
    """cos, sin: [T, n_rot/2] for pair i at each position"""
    i = np.arange(m.n_rot // 2, dtype=np.float64)
    inv_freq = m.theta ** (-2.0 * i / m.n_rot)
    ang = np.asarray(positions, dtype=np.float64)[:, None] * inv_freq[None, :]
    return np.cos(ang), np.sin(ang)


def rope_apply(x, cos, sin, n_rot, style):
    """x: [T, n_head, hd]; rotates the first n_rot dims of every head"""
    x = x.copy()
    if style == "interleaved":
        a, b = x[:, :, 0:n_rot:2].copy(), x[:, :, 1:n_rot:2].copy()
        c, s = cos[:, None, :], sin[:, None, :]
        x[:, :, 0:n_rot:2] = a * c - b * s
        x[:, :, 1:n_rot:2] = a * s + b * c
    elif style == "half":
        h = n_rot // 2
        a, b = x[:, :, 0:h].copy(), x[:, :, h:n_rot].copy()
        c, s = cos[:, None, :], sin[:, None, :]
        x[:, :, 0:h] = a * c - b * s
        x[:, :, h:n_rot] = a * s + b * c
    else:
        raise ValueError("unknown rope style " + style)
    return x


def forward(m, tokens):
    """logits [T, V] (float64) of tokens at positions 0..T-1"""
    tokens = np.asarray(tokens, dtype=np.int64)
    if tokens.min() < 0 or tokens.max() >= m.vocab_size:
        raise ValueError("token out of range [0, %d)" % m.vocab_size)
    T, hd, nh, nkv = len(tokens), m.head_dim, m.n_heads, m.n_kv_heads
    group = nh // nkv
    cos, sin = rope_tables(m, np.arange(T))
    causal = np.triu(np.ones((T, T), dtype=bool), k=1)  # True = future, masked
    x = m.embed[tokens].copy()
    for L in m.layers:
        h = rmsnorm(x, L["attn_norm"], m.eps)
        q, k, v = h @ L["wq"].T, h @ L["wk"].T, h @ L["wv"].T
        if L.get("bq") is not None:
            q, k, v = q + L["bq"], k + L["bk"], v + L["bv"]
        q = rope_apply(q.reshape(T, nh, hd), cos, sin, m.n_rot, m.rope)
        k = rope_apply(k.reshape(T, nkv, hd), cos, sin, m.n_rot, m.rope)
        v = v.reshape(T, nkv, hd)
        att = np.empty((T, nh, hd))
        for j in range(nh):
            g = j // group
            s = (q[:, j, :] @ k[:, g, :].T) / np.sqrt(hd)
            s[causal] = -np.inf
            s -= s.max(axis=1, keepdims=True)
            p = np.exp(s)
            p /= p.sum(axis=1, keepdims=True)
            att[:, j, :] = p @ v[:, g, :]
        x = x + att.reshape(T, nh * hd) @ L["wo"].T
        h = rmsnorm(x, L["ffn_norm"], m.eps)
        gate, up = h @ L["w_gate"].T, h @ L["w_up"].T
        x = x + (gate / (1.0 + np.exp(-gate)) * up) @ L["w_down"].T
    x = rmsnorm(x, m.out_norm, m.eps)
    return x @ m.output.T


def log_softmax(logits):
    mx = logits.max(axis=-1, keepdims=True)
    return logits - mx - np.log(np.exp(logits - mx).sum(axis=-1, keepdims=True))


# ============================================================================ numeric formats ===


def f16_to_f64(raw_u16):
    return np.asarray(raw_u16, dtype=np.uint16).view(np.float16).astype(np.float64)


def bf16_to_f64(raw_u16):
    return (np.asarray(raw_u16, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32).astype(np.float64)


def f32_to_bf16_bits(a):
    """round-to-nearest-even fp32 -> bf16 bits (no NaN inputs)"""
    u = np.asarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype(np.uint16)


def round_to(a, dtype):
    """the values a takes once stored as dtype ("F32", "F16", "BF16"), as float32"""
    a = np.asarray(a, dtype=np.float32)
    if dtype == "F32":
        return a
    if dtype == "F16":
        return a.astype(np.float16).astype(np.float32)
    if dtype == "BF16":
        return bf16_to_f64(f32_to_bf16_bits(a)).astype(np.float32)
    raise ValueError(dtype)


# ====================================================================================== llama2.c ===


def load_llama2c(path):
    """legacy (7 x i32 header; vocab < 0 = separate classifier; freq_cis tables skipped) or
    ak42 v1 (fp32) / v2 (int8 + fp32 scale per group, per tensor) with a 256-byte header.
    llama2.c conventions: eps 1e-5, rope theta 10000, interleaved pairs."""
    data = open(path, "rb").read()
    m = Model()
    magic = struct.unpack_from("<I", data, 0)[0]
    if magic == 0x616B3432:
        version = struct.unpack_from("<i", data, 4)[0]
        dim, hidden, L, nh, nkv, vocab, seq = struct.unpack_from("<7i", data, 8)
        shared = data[36] != 0
        m.fmt = "llama2c-v%d" % version
        hs = dim // nh
        kvd = nkv * hs
        off = 256
        if version not in (1, 2):
            raise ValueError("%s: ak42 version %d not supported (1 fp32, 2 q8_0)" % (path, version))
        if len(data) < 256:
            raise ValueError("%s: file too short" % path)

        def take(n, shape):
            nonlocal off
            if off + 4 * n > len(data):
                raise ValueError("%s: file too short" % path)
            a = np.frombuffer(data, dtype="<f4", count=n, offset=off).astype(np.float64)
            off += 4 * n
            return a.reshape(shape)
        # norms are fp32 in both versions and come first
        attn_norm = take(L * dim, (L, dim))
        ffn_norm = take(L * dim, (L, dim))
        out_norm = take(dim, (dim,))
        if version == 2:
            gs = struct.unpack_from("<i", data, 37)[0]

            def takeq(n, shape):  # int8 values, then one fp32 scale per group of gs
                nonlocal off
                if n % gs:
                    raise ValueError("%s: tensor size %d not a multiple of group size %d" % (path, n, gs))
                q = np.frombuffer(data, dtype=np.int8, count=n, offset=off).astype(np.float64)
                off += n
                s = np.frombuffer(data, dtype="<f4", count=n // gs, offset=off).astype(np.float64)
                off += 4 * (n // gs)
                return (q.reshape(-1, gs) * s[:, None]).reshape(shape)
            take = takeq
        embed = take(vocab * dim, (vocab, dim))
        wq = [take(dim * dim, (dim, dim)) for _ in range(L)]
        wk = [take(kvd * dim, (kvd, dim)) for _ in range(L)]
        wv = [take(kvd * dim, (kvd, dim)) for _ in range(L)]
        wo = [take(dim * dim, (dim, dim)) for _ in range(L)]
        w1 = [take(hidden * dim, (hidden, dim)) for _ in range(L)]
        w2 = [take(dim * hidden, (dim, hidden)) for _ in range(L)]
        w3 = [take(hidden * dim, (hidden, dim)) for _ in range(L)]
        output = embed if shared else take(vocab * dim, (vocab, dim))
        if off != len(data):
            raise ValueError("%s: %d bytes left after the weights" % (path, len(data) - off))
    else:
        dim, hidden, L, nh, nkv, vocab, seq = struct.unpack_from("<7i", data, 0)
        shared = vocab > 0
        vocab = abs(vocab)
        m.fmt = "llama2c-legacy"
        hs = dim // nh
        kvd = nkv * hs
        f = np.frombuffer(data, dtype="<f4", offset=28).astype(np.float64)
        off = 0

        def take(n, shape):
            nonlocal off
            a = f[off:off + n]
            off += n
            if len(a) != n:
                raise ValueError("%s: file too short" % path)
            return a.reshape(shape)
        embed = take(vocab * dim, (vocab, dim))
        attn_norm = take(L * dim, (L, dim))
        wq = take(L * dim * dim, (L, dim, dim))
        wk = take(L * kvd * dim, (L, kvd, dim))
        wv = take(L * kvd * dim, (L, kvd, dim))
        wo = take(L * dim * dim, (L, dim, dim))
        ffn_norm = take(L * dim, (L, dim))
        w1 = take(L * hidden * dim, (L, hidden, dim))
        w2 = take(L * dim * hidden, (L, dim, hidden))
        w3 = take(L * hidden * dim, (L, hidden, dim))
        out_norm = take(dim, (dim,))
        take(seq * hs // 2, (-1,))  # freq_cis_real (recomputed, as run.c does)
        take(seq * hs // 2, (-1,))  # freq_cis_imag
        output = embed if shared else take(vocab * dim, (vocab, dim))
        if off != len(f):
            raise ValueError("%s: %d floats left after the weights" % (path, len(f) - off))
    m.dim, m.hidden_dim, m.n_layers, m.n_heads, m.n_kv_heads = dim, hidden, L, nh, nkv
    m.vocab_size, m.head_dim, m.n_rot = vocab, dim // nh, dim // nh
    m.eps, m.theta, m.rope, m.arch = 1e-5, 10000.0, "interleaved", "llama"
    m.tied = shared
    m.embed, m.out_norm, m.output = embed, out_norm, output
    m.layers = [dict(attn_norm=attn_norm[i], wq=wq[i], wk=wk[i], wv=wv[i], wo=wo[i],
                     ffn_norm=ffn_norm[i], w_gate=w1[i], w_down=w2[i], w_up=w3[i])
                for i in range(L)]
    return m.check()


# ========================================================================================== GGUF ===

GGUF_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
                10: "<Q", 11: "<q", 12: "<d"}
GGML_F32, GGML_F16, GGML_Q8_0, GGML_BF16 = 0, 1, 8, 30


class GGUF:
    def __init__(self, path):
        self.path = path
        self.data = data = open(path, "rb").read()
        if data[:4] != b"GGUF":
            raise ValueError("%s: not a GGUF file (magic %r)" % (path, data[:4]))
        self.version, n_tensors, n_kv = struct.unpack_from("<IQQ", data, 4)
        if self.version not in (2, 3):
            raise ValueError("%s: GGUF version %d" % (path, self.version))
        self.off = 24
        self.kv = {}
        for _ in range(n_kv):
            key = self._str()
            typ = self._u32()
            self.kv[key] = self._value(typ)
        self.tensors = {}
        for _ in range(n_tensors):
            name = self._str()
            nd = self._u32()
            ne = list(struct.unpack_from("<%dQ" % nd, data, self.off))
            self.off += 8 * nd
            typ = self._u32()
            (toff,) = struct.unpack_from("<Q", data, self.off)
            self.off += 8
            self.tensors[name] = (ne, typ, toff)
        align = int(self.kv.get("general.alignment", 32))
        self.data_offset = (self.off + align - 1) // align * align

    def _u32(self):
        (v,) = struct.unpack_from("<I", self.data, self.off)
        self.off += 4
        return v

    def _str(self):
        (n,) = struct.unpack_from("<Q", self.data, self.off)
        s = self.data[self.off + 8:self.off + 8 + n]
        self.off += 8 + n
        return s.decode("utf-8", errors="replace")

    def _value(self, typ):
        if typ == 8:
            return self._str()
        if typ == 9:
            et = self._u32()
            (n,) = struct.unpack_from("<Q", self.data, self.off)
            self.off += 8
            if et in GGUF_SCALARS and et != 7:
                fmt = GGUF_SCALARS[et]
                a = np.frombuffer(self.data, dtype=np.dtype(fmt), count=n, offset=self.off)
                self.off += a.nbytes
                return a
            return [self._value(et) for _ in range(n)]
        fmt = GGUF_SCALARS.get(typ)
        if fmt is None:
            raise ValueError("%s: unknown GGUF value type %d" % (self.path, typ))
        (v,) = struct.unpack_from(fmt, self.data, self.off)
        self.off += struct.calcsize(fmt)
        return v

    def tensor(self, name):
        """float64 array in numpy order (ne reversed): a weight [out, in]"""
        ne, typ, toff = self.tensors[name]
        n = int(np.prod(ne))
        o = self.data_offset + toff
        if typ == GGML_F32:
            a = np.frombuffer(self.data, dtype="<f4", count=n, offset=o).astype(np.float64)
        elif typ == GGML_F16:
            a = f16_to_f64(np.frombuffer(self.data, dtype="<u2", count=n, offset=o))
        elif typ == GGML_BF16:
            a = bf16_to_f64(np.frombuffer(self.data, dtype="<u2", count=n, offset=o))
        elif typ == GGML_Q8_0:
            nb = n // 32
            blk = np.frombuffer(self.data, dtype=np.dtype([("d", "<u2"), ("q", "i1", 32)]), count=nb, offset=o)
            a = (f16_to_f64(blk["d"])[:, None] * blk["q"].astype(np.float64)).reshape(-1)
        else:
            raise ValueError("%s: tensor %s has ggml type %d (reference reads 0 f32, 1 f16, 8 q8_0, 30 bf16)"
                             % (self.path, name, typ))
        return a.reshape(tuple(reversed(ne)))


def load_gguf(path):
    g = GGUF(path)
    m = Model()
    m.fmt = "gguf"
    arch = g.kv.get("general.architecture", "llama")
    m.arch = arch

    def kv(key, default=None):
        v = g.kv.get(arch + "." + key, default)
        if v is None:
            raise ValueError("%s: missing %s.%s" % (path, arch, key))
        return v
    m.dim = int(kv("embedding_length"))
    m.hidden_dim = int(kv("feed_forward_length"))
    m.n_layers = int(kv("block_count"))
    m.n_heads = int(kv("attention.head_count"))
    m.n_kv_heads = int(kv("attention.head_count_kv", m.n_heads))
    m.head_dim = int(kv("attention.key_length", m.dim // m.n_heads))
    m.n_rot = int(kv("rope.dimension_count", m.head_dim))
    m.eps = float(kv("attention.layer_norm_rms_epsilon"))
    m.theta = float(kv("rope.freq_base", 10000.0))
    if arch in ("llama", "mistral"):
        m.rope = "interleaved"
    elif arch == "qwen2":
        m.rope = "half"
    else:
        raise ValueError("%s: architecture %s not supported by the reference" % (path, arch))
    if "rope_freqs.weight" in g.tensors or g.kv.get(arch + ".rope.scaling.type", "none") not in ("none",):
        raise ValueError("%s: rope scaling not supported by the reference" % path)
    m.embed = g.tensor("token_embd.weight")
    m.vocab_size = m.embed.shape[0]
    m.out_norm = g.tensor("output_norm.weight")
    m.tied = "output.weight" not in g.tensors
    m.output = m.embed if m.tied else g.tensor("output.weight")
    names = dict(attn_norm="attn_norm.weight", wq="attn_q.weight", wk="attn_k.weight",
                 wv="attn_v.weight", wo="attn_output.weight", ffn_norm="ffn_norm.weight",
                 w_gate="ffn_gate.weight", w_up="ffn_up.weight", w_down="ffn_down.weight",
                 bq="attn_q.bias", bk="attn_k.bias", bv="attn_v.bias")
    for i in range(m.n_layers):
        L = {}
        for k, n in names.items():
            full = "blk.%d.%s" % (i, n)
            L[k] = g.tensor(full) if full in g.tensors else None
            if L[k] is None and k[0] != "b":
                raise ValueError("%s: missing tensor %s" % (path, full))
        m.layers.append(L)
    return m.check()


def gguf_write(path, kvs, tensors, alignment=32):
    """kvs: list of (key, type, value) with type an int GGUF type or ("arr", elem_type);
    tensors: list of (name, numpy array in [out, in] order, ggml type)"""
    def s(x):
        b = x.encode("utf-8")
        return struct.pack("<Q", len(b)) + b

    def val(t, v):
        if t == 8:
            return s(v)
        return struct.pack(GGUF_SCALARS[t], v)
    out = bytearray(b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)))
    for key, t, v in kvs:
        out += s(key)
        if isinstance(t, tuple):
            et = t[1]
            out += struct.pack("<IIQ", 9, et, len(v))
            for e in v:
                out += val(et, e)
        else:
            out += struct.pack("<I", t) + val(t, v)
    blobs, off = [], 0
    for name, a, typ in tensors:
        a = np.asarray(a, dtype=np.float32)
        if typ == GGML_F32:
            b = a.astype("<f4").tobytes()
        elif typ == GGML_F16:
            b = a.astype("<f2").tobytes()
        elif typ == GGML_BF16:
            b = f32_to_bf16_bits(a).astype("<u2").tobytes()
        elif typ == GGML_Q8_0:
            b = q8_0_bytes(a)
        else:
            raise ValueError(typ)
        ne = list(reversed(a.shape))
        out += s(name) + struct.pack("<I", len(ne)) + struct.pack("<%dQ" % len(ne), *ne)
        out += struct.pack("<IQ", typ, off)
        blobs.append(b)
        off += (len(b) + alignment - 1) // alignment * alignment
    out += b"\0" * ((-len(out)) % alignment)
    for b in blobs:
        out += b + b"\0" * ((-len(b)) % alignment)
    with open(path, "wb") as f:
        f.write(out)


def q8_0_bytes(a):
    """ggml Q8_0 blocks of 32: d = max|x|/127 (stored fp16), q = round(x/d)"""
    x = np.asarray(a, dtype=np.float32).reshape(-1, 32)
    amax = np.abs(x).max(axis=1)
    d = amax / np.float32(127)
    inv = np.where(d > 0, np.float32(1) / np.where(d > 0, d, 1), 0).astype(np.float32)
    q = np.rint(x * inv[:, None]).astype(np.int8)
    blk = np.zeros(len(x), dtype=np.dtype([("d", "<f2"), ("q", "i1", 32)]))
    blk["d"], blk["q"] = d.astype(np.float16), q
    return blk.tobytes()


# =================================================================================== HF / safetensors ===

ST_DTYPES = {"F32": ("<f4", None), "F16": ("<u2", f16_to_f64), "BF16": ("<u2", bf16_to_f64),
             "F64": ("<f8", None)}


def safetensors_read(path):
    """{name: float64 array}"""
    data = open(path, "rb").read()
    (n,) = struct.unpack_from("<Q", data, 0)
    hdr = json.loads(data[8:8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    for name, info in hdr.items():
        if name == "__metadata__":
            continue
        dt, conv = ST_DTYPES.get(info["dtype"], (None, None))
        if dt is None:
            raise ValueError("%s: %s has dtype %s (reference reads F32 F16 BF16)" % (path, name, info["dtype"]))
        b, e = info["data_offsets"]
        cnt = int(np.prod(info["shape"])) if info["shape"] else 1
        if (e - b) != cnt * np.dtype(dt).itemsize:
            raise ValueError("%s: %s: byte range %d..%d does not match shape" % (path, name, b, e))
        a = np.frombuffer(data, dtype=dt, count=cnt, offset=base + b)
        a = conv(a) if conv else a.astype(np.float64)
        out[name] = a.reshape(info["shape"])
    return out


def safetensors_write(path, tensors, dtype):
    """tensors: list of (name, array); all stored as dtype"""
    hdr, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name, a in tensors:
        a = np.asarray(a, dtype=np.float32)
        if dtype == "F32":
            b = a.astype("<f4").tobytes()
        elif dtype == "F16":
            b = a.astype("<f2").tobytes()
        elif dtype == "BF16":
            b = f32_to_bf16_bits(a).astype("<u2").tobytes()
        else:
            raise ValueError(dtype)
        hdr[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(hdr, separators=(",", ":")).encode("utf-8")
    h += b" " * ((-len(h)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)
    return off


def load_hf(d):
    cfg = json.load(open(os.path.join(d, "config.json")))
    idx = os.path.join(d, "model.safetensors.index.json")
    w = {}
    if os.path.exists(idx):
        files = sorted(set(json.load(open(idx))["weight_map"].values()))
        for f in files:
            w.update(safetensors_read(os.path.join(d, f)))
    else:
        w = safetensors_read(os.path.join(d, "model.safetensors"))
    m = Model()
    m.fmt = "hf"
    m.arch = cfg.get("model_type", "llama")
    if m.arch not in ("llama", "mistral", "qwen2"):
        raise ValueError("%s: model_type %s not supported by the reference" % (d, m.arch))
    if cfg.get("hidden_act", "silu") != "silu":
        raise ValueError("%s: hidden_act %s" % (d, cfg.get("hidden_act")))
    if cfg.get("rope_scaling"):
        raise ValueError("%s: rope_scaling not supported by the reference" % d)
    m.dim = cfg["hidden_size"]
    m.hidden_dim = cfg["intermediate_size"]
    m.n_layers = cfg["num_hidden_layers"]
    m.n_heads = cfg["num_attention_heads"]
    m.n_kv_heads = cfg.get("num_key_value_heads") or m.n_heads
    m.head_dim = cfg.get("head_dim") or m.dim // m.n_heads
    m.n_rot = m.head_dim
    m.vocab_size = cfg["vocab_size"]
    m.eps = float(cfg.get("rms_norm_eps", 1e-6))
    m.theta = float(cfg.get("rope_theta", 10000.0))
    m.rope = "half"
    m.embed = w["model.embed_tokens.weight"]
    m.out_norm = w["model.norm.weight"]
    m.tied = bool(cfg.get("tie_word_embeddings", False)) or "lm_head.weight" not in w
    m.output = m.embed if m.tied else w["lm_head.weight"]
    for i in range(m.n_layers):
        p = "model.layers.%d." % i
        L = dict(attn_norm=w[p + "input_layernorm.weight"], wq=w[p + "self_attn.q_proj.weight"],
                 wk=w[p + "self_attn.k_proj.weight"], wv=w[p + "self_attn.v_proj.weight"],
                 wo=w[p + "self_attn.o_proj.weight"], ffn_norm=w[p + "post_attention_layernorm.weight"],
                 w_gate=w[p + "mlp.gate_proj.weight"], w_up=w[p + "mlp.up_proj.weight"],
                 w_down=w[p + "mlp.down_proj.weight"])
        for b, n in (("bq", "q_proj"), ("bk", "k_proj"), ("bv", "v_proj")):
            L[b] = w.get(p + "self_attn.%s.bias" % n)
        m.layers.append(L)
    return m.check()


def load(path):
    if os.path.isdir(path):
        return load_hf(path)
    with open(path, "rb") as f:
        head = f.read(4)
    if head == b"GGUF":
        return load_gguf(path)
    return load_llama2c(path)


# ============================================================================== random fixtures ===

FIXTURES = [
    # name, arch, dim, hidden, layers, heads, kv_heads, head_dim, vocab, tied, bias,
    #   hf dtype, hf shards, gguf matrix type, theta, eps
    dict(name="gqa_untied", arch="llama", dim=64, hidden=96, layers=3, heads=4, kv_heads=2,
         head_dim=16, vocab=300, tied=False, bias=False, hf_dtype="F32", shards=1,
         gguf_type=GGML_F32, theta=10000.0, eps=1e-5),
    dict(name="mha_tied_bf16", arch="llama", dim=48, hidden=128, layers=2, heads=6, kv_heads=6,
         head_dim=8, vocab=260, tied=True, bias=False, hf_dtype="BF16", shards=2,
         gguf_type=GGML_F32, theta=500000.0, eps=1e-6),
    dict(name="qwen2_bias_f16", arch="qwen2", dim=64, hidden=160, layers=2, heads=8, kv_heads=2,
         head_dim=8, vocab=320, tied=False, bias=True, hf_dtype="F16", shards=1,
         gguf_type=GGML_F16, theta=1000000.0, eps=1e-6),
    dict(name="headdim32_f16", arch="llama", dim=64, hidden=128, layers=2, heads=4, kv_heads=1,
         head_dim=32, vocab=288, tied=False, bias=False, hf_dtype="F32", shards=3,
         gguf_type=GGML_F16, theta=10000.0, eps=1e-5),
]


def hf_to_interleaved(w, n_head):
    """reorder the q/k rows of each head from HF's half layout (row c*hd/2 + i) to the
    interleaved layout (row 2i + c); works on weights [n_head*hd, in] and biases [n_head*hd]"""
    hd = w.shape[0] // n_head
    return w.reshape(n_head, 2, hd // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def random_weights(fx, seed):
    """HF-layout float32 weights, already rounded to what both files can hold exactly"""
    rng = np.random.default_rng(seed)
    D, H, V, hd = fx["dim"], fx["hidden"], fx["vocab"], fx["head_dim"]
    qd, kvd = fx["heads"] * hd, fx["kv_heads"] * hd
    store = fx["hf_dtype"] if fx["hf_dtype"] != "F32" else ("F16" if fx["gguf_type"] == GGML_F16 else "F32")

    def r(shape, std):
        return round_to(rng.normal(0.0, std, size=shape), store)

    def norm(n):
        return round_to(1.0 + rng.normal(0.0, 0.1, size=n), store)
    w = {"model.embed_tokens.weight": r((V, D), 0.4)}
    for i in range(fx["layers"]):
        p = "model.layers.%d." % i
        w[p + "input_layernorm.weight"] = norm(D)
        w[p + "self_attn.q_proj.weight"] = r((qd, D), 0.2)
        w[p + "self_attn.k_proj.weight"] = r((kvd, D), 0.2)
        w[p + "self_attn.v_proj.weight"] = r((kvd, D), 0.15)
        w[p + "self_attn.o_proj.weight"] = r((D, qd), 0.1)
        if fx["bias"]:
            w[p + "self_attn.q_proj.bias"] = r(qd, 0.3)
            w[p + "self_attn.k_proj.bias"] = r(kvd, 0.3)
            w[p + "self_attn.v_proj.bias"] = r(kvd, 0.1)
        w[p + "post_attention_layernorm.weight"] = norm(D)
        w[p + "mlp.gate_proj.weight"] = r((H, D), 0.15)
        w[p + "mlp.up_proj.weight"] = r((H, D), 0.15)
        w[p + "mlp.down_proj.weight"] = r((D, H), 0.1)
    w["model.norm.weight"] = norm(D)
    if not fx["tied"]:
        w["lm_head.weight"] = r((V, D), 0.25)
    return w


def write_hf(d, fx, w):
    os.makedirs(d, exist_ok=True)
    arch = fx["arch"]
    cfg = {"architectures": ["Qwen2ForCausalLM" if arch == "qwen2" else "LlamaForCausalLM"],
           "model_type": arch, "hidden_size": fx["dim"], "intermediate_size": fx["hidden"],
           "num_hidden_layers": fx["layers"], "num_attention_heads": fx["heads"],
           "num_key_value_heads": fx["kv_heads"], "vocab_size": fx["vocab"],
           "rms_norm_eps": fx["eps"], "rope_theta": fx["theta"],
           "tie_word_embeddings": fx["tied"], "max_position_embeddings": 512,
           "hidden_act": "silu", "torch_dtype": {"F32": "float32", "F16": "float16",
                                                 "BF16": "bfloat16"}[fx["hf_dtype"]],
           "bos_token_id": 1, "eos_token_id": 2}
    if fx["head_dim"] != fx["dim"] // fx["heads"]:
        cfg["head_dim"] = fx["head_dim"]
    if arch == "qwen2":
        cfg["use_sliding_window"] = False
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    names = list(w.keys())
    n = fx["shards"]
    if n == 1:
        safetensors_write(os.path.join(d, "model.safetensors"), [(k, w[k]) for k in names], fx["hf_dtype"])
        return
    # shards in a shuffled-ish order so a tensor's file is not predictable from its position
    parts = [names[i::n] for i in range(n)]
    wmap, total = {}, 0
    for i, part in enumerate(parts):
        fn = "model-%05d-of-%05d.safetensors" % (i + 1, n)
        total += safetensors_write(os.path.join(d, fn), [(k, w[k]) for k in part], fx["hf_dtype"])
        for k in part:
            wmap[k] = fn
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": dict(sorted(wmap.items()))}, f, indent=2)


def write_gguf_twin(path, fx, w, mat_type=None):
    arch = fx["arch"]
    mat_type = fx["gguf_type"] if mat_type is None else mat_type
    V = fx["vocab"]
    toks = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)]
    letters = "abcdefghijklmnopqrstuvwxyz"
    i = 0
    while len(toks) < V:
        toks.append("\u2581" + letters[i % 26] + (letters[i // 26 % 26] if i >= 26 else ""))
        i += 1
    toks = toks[:V]
    scores = [0.0, 0.0, 0.0] + [0.0] * 256 + [-float(k) for k in range(V - 259)]
    ttype = [2, 3, 3] + [6] * 256 + [1] * (V - 259)
    U32, I32, F32, STR, BOOL = 4, 5, 6, 8, 7
    kvs = [("general.architecture", STR, arch), ("general.name", STR, "lowbit-ref-" + fx["name"]),
           ("general.alignment", U32, 32),
           (arch + ".context_length", U32, 512), (arch + ".embedding_length", U32, fx["dim"]),
           (arch + ".block_count", U32, fx["layers"]), (arch + ".feed_forward_length", U32, fx["hidden"]),
           (arch + ".attention.head_count", U32, fx["heads"]),
           (arch + ".attention.head_count_kv", U32, fx["kv_heads"]),
           (arch + ".attention.layer_norm_rms_epsilon", F32, fx["eps"]),
           (arch + ".rope.freq_base", F32, fx["theta"]),
           (arch + ".rope.dimension_count", U32, fx["head_dim"])]
    if fx["head_dim"] != fx["dim"] // fx["heads"]:
        kvs += [(arch + ".attention.key_length", U32, fx["head_dim"]),
                (arch + ".attention.value_length", U32, fx["head_dim"])]
    kvs += [("tokenizer.ggml.model", STR, "llama"), ("tokenizer.ggml.tokens", ("arr", STR), toks),
            ("tokenizer.ggml.scores", ("arr", F32), scores),
            ("tokenizer.ggml.token_type", ("arr", I32), ttype),
            ("tokenizer.ggml.bos_token_id", U32, 1), ("tokenizer.ggml.eos_token_id", U32, 2),
            ("tokenizer.ggml.unknown_token_id", U32, 0), ("tokenizer.ggml.add_bos_token", BOOL, True)]
    # rope.freq_base is stored as f32: the fixture's theta values are exact in f32
    perm = (arch == "llama")
    t = [("token_embd.weight", w["model.embed_tokens.weight"], mat_type)]
    for i in range(fx["layers"]):
        p, b = "model.layers.%d." % i, "blk.%d." % i
        wq, wk = w[p + "self_attn.q_proj.weight"], w[p + "self_attn.k_proj.weight"]
        if perm:
            wq, wk = hf_to_interleaved(wq, fx["heads"]), hf_to_interleaved(wk, fx["kv_heads"])
        t += [(b + "attn_norm.weight", w[p + "input_layernorm.weight"], GGML_F32),
              (b + "attn_q.weight", wq, mat_type), (b + "attn_k.weight", wk, mat_type),
              (b + "attn_v.weight", w[p + "self_attn.v_proj.weight"], mat_type),
              (b + "attn_output.weight", w[p + "self_attn.o_proj.weight"], mat_type)]
        if fx["bias"]:
            bq, bk = w[p + "self_attn.q_proj.bias"], w[p + "self_attn.k_proj.bias"]
            if perm:
                bq, bk = hf_to_interleaved(bq, fx["heads"]), hf_to_interleaved(bk, fx["kv_heads"])
            t += [(b + "attn_q.bias", bq, GGML_F32), (b + "attn_k.bias", bk, GGML_F32),
                  (b + "attn_v.bias", w[p + "self_attn.v_proj.bias"], GGML_F32)]
        t += [(b + "ffn_norm.weight", w[p + "post_attention_layernorm.weight"], GGML_F32),
              (b + "ffn_gate.weight", w[p + "mlp.gate_proj.weight"], mat_type),
              (b + "ffn_up.weight", w[p + "mlp.up_proj.weight"], mat_type),
              (b + "ffn_down.weight", w[p + "mlp.down_proj.weight"], mat_type)]
    t.append(("output_norm.weight", w["model.norm.weight"], GGML_F32))
    if not fx["tied"]:
        t.append(("output.weight", w["lm_head.weight"], mat_type))
    gguf_write(path, kvs, t)


def make_fixtures(outdir):
    os.makedirs(outdir, exist_ok=True)
    manifest = {"models": []}
    for k, fx in enumerate(FIXTURES):
        w = random_weights(fx, seed=20240601 + k)
        hf = os.path.join(outdir, fx["name"] + "_hf")
        gg = os.path.join(outdir, fx["name"] + ".gguf")
        write_hf(hf, fx, w)
        write_gguf_twin(gg, fx, w)
        info = {"name": fx["name"], "hf": hf, "gguf": gg, "vocab": fx["vocab"], "arch": fx["arch"]}
        if k == 0:  # a Q8_0 GGUF of the first model (not a twin: its weights are quantized)
            q8 = os.path.join(outdir, fx["name"] + "_q8_0.gguf")
            write_gguf_twin(q8, fx, w, mat_type=GGML_Q8_0)
            info["gguf_q8_0"] = q8
        manifest["models"].append(info)
    with open(os.path.join(outdir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
    # one line per model, easy to read from C: name vocab hf gguf
    with open(os.path.join(outdir, "manifest.txt"), "w") as f:
        for info in manifest["models"]:
            f.write("%s %d %s %s\n" % (info["name"], info["vocab"], info["hf"], info["gguf"]))
            if "gguf_q8_0" in info:
                f.write("%s_q8_0 %d - %s\n" % (info["name"], info["vocab"], info["gguf_q8_0"]))
    return manifest


# ========================================================================= llama2.c tokenizer ===


class Llama2cTokenizer:
    """tokenizer.bin: i32 max_token_length, then per token f32 score, i32 len, bytes.
    Encoding is SentencePiece-BPE by score with a dummy-prefix space and <0xXX> byte fallback."""

    def __init__(self, path, vocab_size=None):
        data = open(path, "rb").read()
        off, self.pieces, self.scores = 4, [], []
        while off < len(data) and (vocab_size is None or len(self.pieces) < vocab_size):
            sc, n = struct.unpack_from("<fi", data, off)
            self.pieces.append(data[off + 8:off + 8 + n])
            self.scores.append(sc)
            off += 8 + n
        self.lookup = {p: i for i, p in enumerate(self.pieces)}

    def encode(self, text, bos=True):
        ids = []
        if text:
            ids.append(self.lookup[b" "])
        for ch in text:
            b = ch.encode("utf-8")
            if b in self.lookup:
                ids.append(self.lookup[b])
            else:
                ids.extend(x + 3 for x in b)
        while True:
            best, bi = None, -1
            for i in range(len(ids) - 1):
                j = self.lookup.get(self.pieces[ids[i]] + self.pieces[ids[i + 1]])
                if j is not None and (best is None or self.scores[j] > self.scores[best]):
                    best, bi = j, i
            if best is None:
                break
            ids[bi:bi + 2] = [best]
        return ([1] if bos else []) + ids

    def decode(self, prev, tok):
        p = self.pieces[tok]
        if prev == 1 and p.startswith(b" "):
            p = p[1:]
        if len(p) == 6 and p.startswith(b"<0x") and p.endswith(b">"):
            return bytes([int(p[3:5], 16)])
        return p


# ============================================================================================ CLI ===


def _parse_tokens(s):
    return [int(x) for x in s.replace(" ", "").split(",") if x]


def cmd_logprobs(args):
    import argparse
    ap = argparse.ArgumentParser(prog="llama_ref.py logprobs")
    ap.add_argument("model")
    ap.add_argument("--tokens", required=True, help="comma-separated token ids, or @FILE")
    ap.add_argument("-o", "--out", required=True, help="float32 little-endian [n_tok][vocab]")
    a = ap.parse_args(args)
    tok = a.tokens
    if tok.startswith("@"):
        tok = open(tok[1:]).read()
    tokens = _parse_tokens(tok)
    m = load(a.model)
    lp = log_softmax(forward(m, tokens))
    lp.astype("<f4").tofile(a.out)
    print("%s: %d tokens x %d vocab -> %s (nll of the given continuation %.6f nats/token)" %
          (a.model, len(tokens), m.vocab_size, a.out,
           -np.mean(lp[np.arange(len(tokens) - 1), tokens[1:]]) if len(tokens) > 1 else 0.0))
    return 0


def cmd_info(args):
    m = load(args[0])
    print(m.describe())
    return 0


def cmd_sanity(args):
    import argparse
    ap = argparse.ArgumentParser(prog="llama_ref.py sanity")
    ap.add_argument("model")
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--text", help="text file: stories (split at <|endoftext|> lines, else at blank "
                    "lines) each scored from BOS, the first 512 tokens of each")
    ap.add_argument("--max-tokens", type=int, default=20000)
    ap.add_argument("--gen", type=int, default=60)
    a = ap.parse_args(args)
    m = load(a.model)
    tk = Llama2cTokenizer(a.tokenizer, m.vocab_size)
    print(m.describe())
    ids = [1]
    for _ in range(a.gen):
        nxt = int(np.argmax(forward(m, ids)[-1]))
        ids.append(nxt)
    out = b"".join(tk.decode(ids[i - 1], ids[i]) for i in range(1, len(ids)))
    print("greedy from BOS: %r" % out.decode("utf-8", errors="replace"))
    if a.text:
        text = open(a.text, encoding="utf-8").read()
        sep = "<|endoftext|>" if "<|endoftext|>" in text else "\n\n"
        paras = [p.strip() for p in text.split(sep) if p.strip()]
        nll, n = 0.0, 0
        for p in paras:
            t = tk.encode(p[:4000])[:512]
            lp = log_softmax(forward(m, t))
            nll -= lp[np.arange(len(t) - 1), t[1:]].sum()
            n += len(t) - 1
            if n >= a.max_tokens:
                break
        print("mean NLL %.4f nats/token over %d tokens (%s, each piece from BOS)" % (nll / n, n, a.text))
    return 0


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0 if len(argv) >= 2 else 2
    cmd, rest = argv[1], argv[2:]
    if cmd == "make-fixtures":
        if len(rest) != 1:
            print("usage: llama_ref.py make-fixtures OUTDIR", file=sys.stderr)
            return 2
        man = make_fixtures(rest[0])
        print("wrote %d models to %s" % (len(man["models"]), rest[0]))
        return 0
    if cmd == "logprobs":
        return cmd_logprobs(rest)
    if cmd == "info":
        return cmd_info(rest)
    if cmd == "sanity":
        return cmd_sanity(rest)
    print("llama_ref.py: unknown command %r (logprobs, make-fixtures, info, sanity)" % cmd, file=sys.stderr)
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except (ValueError, OSError, KeyError) as e:
        print("llama_ref.py: %s" % e, file=sys.stderr)
        sys.exit(1)
