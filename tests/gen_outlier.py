#!/usr/bin/python3
"""tests/gen_outlier.py: a random-weight Llama model of the 110M shape with activation outliers, for
the rotation / activation-quantization table (README "Rotation and activation quantization").

Large LLMs carry a few residual-stream channels with activations tens of times larger than the rest
(Dettmers et al. 2022, LLM.int8(); Sun et al. 2024, "Massive activations"); per-token activation
quantization then spends its range on those channels and rounds the others to zero, which is what
QuaRot's rotation undoes. Random or tiny trained models have none, so this script makes them: the
stories110M / Llama-2 110M shape (12 layers, dim 768, MLP 2048, 12 heads, vocab 32000, ctx 1024),
weights as tests/gen_scale.py draws them (N(0, 0.02); o_proj and down_proj N(0, 0.02/sqrt(2L));
norms 1), then --channels residual channels (default 4: 7, 101, 333, 650) made --scale (default 50)
times larger than the rest:
  --mode massive (default): those channels of every token embedding hold one value, ±scale·0.02
      (the sign per channel): the "massive activations" of Sun et al. 2024, nearly the same for
      every token, which carry little of the token's information yet set each token's
      quantization range;
  --mode scaled: those channels of the embeddings and the output rows of every o_proj and
      down_proj multiplied by scale: outliers that vary with the token and carry most of its
      signal (there dropping the small channels loses little, and rotation does not help).
Two knobs (defaults: the first table's model, byte for byte; tests/outlier_probe.py measures what
they change, README "Rotation and activation quantization"):
  --read zero: the q/k/v/gate/up columns at the outlier channels are 0 (drawn, then zeroed, so the
      other weights do not change). With random columns (--read random) every block reads the
      massive, token-independent values through random weights and writes a token-independent
      vector back into all channels of the stream (o_proj, down_proj): the stream's non-outlier
      channels fill with a constant offset that carries nothing about the token, and which no
      rotation can spread, since it is not concentrated in a few channels. In trained LLMs the
      massive activations act as a fixed bias (Sun et al. 2024), not as a growing dense offset;
  --update-gain G: o_proj and down_proj drawn N(0, G·0.02/sqrt(2L)). At G = 1 block 0's
      token-dependent updates are 0.0043 (attention) and 0.0093 (MLP) rms against the stream's
      0.0198 (tests/outlier_probe.py): G > 1 makes the blocks, the part a4 and rotation act on,
      weigh more in the logits, as a trained model's blocks do; the outliers stay 50x the
      embeddings' other channels, so their dominance falls with depth as the stream grows;
  --qk-gain S: q_proj and k_proj drawn S times larger (sharper attention; random q/k give nearly
      uniform causal attention, whose output is much the same for every token).

  gen_outlier.py -o out/outlier/llama110m-outlier.gguf [--mode massive] [--scale 50] [--layers 12]
                 [--read random|zero] [--update-gain 1] [--qk-gain 1]

Writes one F16 GGUF (2-D weights F16, norms F32, llama.cpp's names; q/k in GGUF's interleaved rotary
order is irrelevant for random weights) with the tokenizer.* metadata of
$LOWBIT_DATA/tokenizers/ggml-vocab-llama-spm.gguf (32000 tokens), through a .tmp name."""
import argparse
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_scale as gs  # noqa: E402  (the GGUF helpers and the tokenizer copy)


def parse(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument('-o', required=True)
    ap.add_argument('--scale', type=float, default=50.0)
    ap.add_argument('--channels', default='7,101,333,650')
    ap.add_argument('--layers', type=int, default=12)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--mode', choices=('massive', 'scaled'), default='massive')
    ap.add_argument('--update-gain', type=float, default=1.0)
    ap.add_argument('--read', choices=('random', 'zero'), default='random')
    ap.add_argument('--qk-gain', type=float, default=1.0)
    return ap.parse_args(argv)


D, H, NH, V = 768, 2048, 12, 32000


def tensors(a):
    L = a.layers
    ch = [int(c) for c in a.channels.split(',') if c]
    rng = np.random.default_rng(a.seed)
    std_w = a.update_gain * 0.02 / np.sqrt(2 * L)
    ts = []  # (name, array: rows x cols, or 1-D)

    def lin(name, rows, cols, std, outl=False, reads=False):
        w = rng.standard_normal((rows, cols), dtype=np.float32) * np.float32(std)
        if outl and a.mode == 'scaled':
            w[ch, :] *= np.float32(a.scale)
        if reads and a.read == 'zero':
            w[:, ch] = 0
        ts.append((name, w))

    e = rng.standard_normal((V, D), dtype=np.float32) * np.float32(0.02)
    if a.mode == 'scaled':
        e[:, ch] *= np.float32(a.scale)
    else:
        e[:, ch] = np.float32(a.scale * 0.02) * np.where(np.arange(len(ch)) % 2, -1, 1).astype(np.float32)
    ts.append(('token_embd.weight', e))
    ts.append(('output_norm.weight', np.ones(D, np.float32)))
    lin('output.weight', V, D, 0.02)
    for l in range(L):
        p = 'blk.%d.' % l
        ts.append((p + 'attn_norm.weight', np.ones(D, np.float32)))
        lin(p + 'attn_q.weight', D, D, a.qk_gain * 0.02, reads=True)
        lin(p + 'attn_k.weight', D, D, a.qk_gain * 0.02, reads=True)
        lin(p + 'attn_v.weight', D, D, 0.02, reads=True)
        lin(p + 'attn_output.weight', D, D, std_w, True)
        ts.append((p + 'ffn_norm.weight', np.ones(D, np.float32)))
        lin(p + 'ffn_gate.weight', H, D, 0.02, reads=True)
        lin(p + 'ffn_up.weight', H, D, 0.02, reads=True)
        lin(p + 'ffn_down.weight', D, H, std_w, True)
    return ts


def main():
    a = parse()
    L = a.layers
    data = os.environ.get('LOWBIT_DATA', '../shared/data')
    tok, n_tok = gs.tokenizer_kvs(os.path.join(data, 'tokenizers/ggml-vocab-llama-spm.gguf'), V)
    ts = tensors(a)
    K = gs.gguf_kv
    kvs = [K('general.architecture', gs.T_STR, 'llama'),
           K('general.name', gs.T_STR, 'llama110m-outlier'),
           K('general.file_type', gs.T_U32, 1),
           K('llama.context_length', gs.T_U32, 1024),
           K('llama.embedding_length', gs.T_U32, D),
           K('llama.block_count', gs.T_U32, L),
           K('llama.feed_forward_length', gs.T_U32, H),
           K('llama.attention.head_count', gs.T_U32, NH),
           K('llama.attention.head_count_kv', gs.T_U32, NH),
           K('llama.rope.dimension_count', gs.T_U32, D // NH),
           K('llama.rope.freq_base', gs.T_F32, 10000.0),
           K('llama.attention.layer_norm_rms_epsilon', gs.T_F32, 1e-5),
           K('llama.vocab_size', gs.T_U32, V)]
    out = [b'GGUF', struct.pack('<IQQ', 3, len(ts), len(kvs) + n_tok)] + kvs + [tok]
    off, blobs = 0, []
    for name, w in ts:
        ne = [w.shape[0]] if w.ndim == 1 else [w.shape[1], w.shape[0]]
        ty = gs.GGML_F32 if w.ndim == 1 else gs.GGML_F16
        b = w.astype('<f4' if w.ndim == 1 else '<f2').tobytes()
        out.append(gs.gguf_str(name) + struct.pack('<I', len(ne)) +
                   b''.join(struct.pack('<Q', n) for n in ne) + struct.pack('<IQ', ty, off))
        blobs.append(b + b'\0' * (-len(b) % gs.GGUF_ALIGN))
        off += len(blobs[-1])
    hdr = b''.join(out)
    hdr += b'\0' * (-len(hdr) % gs.GGUF_ALIGN)
    os.makedirs(os.path.dirname(os.path.abspath(a.o)), exist_ok=True)
    with open(a.o + '.tmp', 'wb') as f:
        f.write(hdr)
        for b in blobs:
            f.write(b)
    os.replace(a.o + '.tmp', a.o)


if __name__ == '__main__':
    main()
