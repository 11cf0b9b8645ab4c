#!/usr/bin/python3
"""tests/gen_scale.py: random-weight Llama models at real sizes, for `make bench-scale`.

Writes a Llama model of a real shape with random weights as an F16 GGUF (OUT.gguf) and/or as a
Hugging Face directory (OUT-hf/), streaming: one chunk of rows is generated, written and dropped
at a time, so peak memory stays at a few tens of MB whatever the model size (7B included).

  gen_scale.py --shape tinyllama -o out/scale/tinyllama               # both formats
  gen_scale.py --shape llama2-7b --format gguf -o out/scale/llama2-7b
  gen_scale.py --shape tinyllama --layers 2 --max-shard-size 200MB -o /tmp/tl2

Shapes (as the published configs):
  tinyllama   TinyLlama-1.1B: 22 layers, dim 2048, hidden 5632, 32 heads, 4 kv heads (GQA),
              vocab 32000, ctx 2048, rope_theta 10000, rms eps 1e-5              (1.10B params)
  llama2-7b   Llama-2-7B: 32 layers, dim 4096, hidden 11008, 32 heads, 32 kv heads,
              vocab 32000, ctx 4096, rope_theta 10000, rms eps 1e-5              (6.74B params)
--layers N keeps the first N blocks (quick runs); the other sizes stay.

Weights. Every tensor is a function of (--seed, the tensor's index in the HF state_dict order, the
chunk of rows) only: chunk c of tensor i holds rows [c·R, (c+1)·R) (R = 256, or a multiple of the
head size when 256 is not one), drawn from numpy's PCG64 seeded with SeedSequence([seed, i, c]).
So the GGUF and the HF directory hold the same model, and any --format gives the same bytes.
  - embeddings, lm_head, q/k/v/gate/up: N(0, 0.02) (transformers' initializer_range for Llama);
  - o_proj and down_proj (the two matmuls that write into the residual stream):
    N(0, 0.02 / sqrt(2·n_layers)), the GPT-2 / Megatron scaled init. Why: with pre-RMSNorm blocks
    each block adds about 0.02·sqrt(K)·rms(input) to the residual stream (≈ 0.9 at dim 2048,
    ≈ 2 for the 11008-wide down_proj of 7B), so unscaled the stream's rms grows with depth, to
    4.6 after 22 TinyLlama blocks and 13.8 after 32 Llama-2-7B blocks (a numpy forward of 16
    tokens), 200-700x the 0.02 of the token embeddings. Scaled it ends at 0.69 and 1.7: O(1) at
    any depth, the activation range a quantizer meets in a model's early layers. The logits are
    about N(0, 0.02·sqrt(dim)), so the PPL is near exp(ln V + 0.0002·dim): ~48,000 for
    TinyLlama, ~73,000 for 7B (measured on 2 / 1 layers: 65,600 and 75,000);
  - RMSNorm weights: 1.
Values are rounded to the stored dtype (F16; --hf-dtype bf16 for a BF16 HF checkpoint).

GGUF (v3, 32-byte alignment): llama.cpp's llama naming and metadata, 2-D weights F16 and norms
F32 as llama.cpp's converter writes them, general.file_type 1 (MOSTLY_F16). q and k rows are
permuted from HF's half-split rotary layout to GGUF's interleaved one as convert_hf_to_gguf.py
does (per head: row 2j <- j, row 2j+1 <- hd/2 + j), so both files compute the same function. The
tokenizer.* metadata (the 32000-token Llama SentencePiece vocabulary) is copied byte for byte from
$LOWBIT_DATA/tokenizers/ggml-vocab-llama-spm.gguf.

HF directory: config.json (LlamaForCausalLM), the weights as transformers shards them
(huggingface_hub's rule: tensors in state_dict order, a new shard when the next tensor would push
the current one past --max-shard-size, default 5GB = 5·10^9 bytes; one shard -> model.safetensors,
else model-0000i-of-0000N.safetensors + model.safetensors.index.json), and tokenizer.model (the
same vocabulary, $LOWBIT_DATA/tokenizers/tokenizer.model) + tokenizer_config.json. The data
directory has no tokenizer.json for this vocabulary, so lowbit needs
--tokenizer $LOWBIT_DATA/tokenizers/ggml-vocab-llama-spm.gguf with the HF directory.

Outputs are written under .tmp names and renamed when complete; OUT.stamp (JSON: generator
version, shape, layers, seed, dtypes, shard size, formats) is written last. --cached exits at once
when OUT.stamp matches the request and the outputs exist (tests/bench_scale.sh uses it).
"""
import argparse
import json
import math
import os
import shutil
import struct
import sys
import time

import numpy as np

VERSION = 1  # bump when the bytes written for the same arguments change

SHAPES = {
    'tinyllama': dict(dim=2048, hidden=5632, n_layers=22, n_heads=32, n_kv_heads=4, vocab=32000,
                      ctx=2048, rope_theta=10000.0, eps=1e-5, name='TinyLlama-1.1B'),
    'llama2-7b': dict(dim=4096, hidden=11008, n_layers=32, n_heads=32, n_kv_heads=32, vocab=32000,
                      ctx=4096, rope_theta=10000.0, eps=1e-5, name='Llama-2-7B'),
}
STD = 0.02
GGUF_ALIGN = 32
# GGUF metadata value types (gguf.md)
T_U8, T_I8, T_U16, T_I16, T_U32, T_I32, T_F32, T_BOOL, T_STR, T_ARR, T_U64, T_I64, T_F64 = range(13)
SCALAR_SIZE = {T_U8: 1, T_I8: 1, T_U16: 2, T_I16: 2, T_U32: 4, T_I32: 4, T_F32: 4, T_BOOL: 1,
               T_U64: 8, T_I64: 8, T_F64: 8}
GGML_F32, GGML_F16 = 0, 1


def die(msg):
    sys.exit('gen_scale: ' + msg)


def parse_size(s):
    """'5GB' -> 5e9, '200MB' -> 2e8, '1GiB' -> 2^30 (huggingface_hub's units), or plain bytes"""
    units = {'KIB': 2**10, 'MIB': 2**20, 'GIB': 2**30, 'KB': 10**3, 'MB': 10**6, 'GB': 10**9, 'B': 1}
    t = s.strip().upper()
    for u, k in units.items():
        if t.endswith(u):
            return int(float(t[:-len(u)]) * k)
    return int(t)


# ---------------------------------------------------------------- the model's tensors

class Tensor:
    def __init__(self, index, hf_name, gguf_name, rows, cols, std, rope_heads=0):
        self.index, self.hf_name, self.gguf_name = index, hf_name, gguf_name
        self.rows, self.cols, self.std = rows, cols, std  # cols = 0: a 1-D norm of `rows` ones
        self.rope_heads = rope_heads                       # q/k: heads to permute for GGUF

    @property
    def numel(self):
        return self.rows * max(self.cols, 1)


def model_tensors(h):
    d, f, L, V = h['dim'], h['hidden'], h['n_layers'], h['vocab']
    hd = d // h['n_heads']
    kvd = hd * h['n_kv_heads']
    std_res = STD / math.sqrt(2 * h['n_layers_full'])
    ts = []

    def add(hf, gg, rows, cols, std, rope_heads=0):
        ts.append(Tensor(len(ts), hf, gg, rows, cols, std, rope_heads))

    # transformers' LlamaForCausalLM state_dict order
    add('model.embed_tokens.weight', 'token_embd.weight', V, d, STD)
    for i in range(L):
        p, g = 'model.layers.%d.' % i, 'blk.%d.' % i
        add(p + 'self_attn.q_proj.weight', g + 'attn_q.weight', d, d, STD, h['n_heads'])
        add(p + 'self_attn.k_proj.weight', g + 'attn_k.weight', kvd, d, STD, h['n_kv_heads'])
        add(p + 'self_attn.v_proj.weight', g + 'attn_v.weight', kvd, d, STD)
        add(p + 'self_attn.o_proj.weight', g + 'attn_output.weight', d, d, std_res)
        add(p + 'mlp.gate_proj.weight', g + 'ffn_gate.weight', f, d, STD)
        add(p + 'mlp.up_proj.weight', g + 'ffn_up.weight', f, d, STD)
        add(p + 'mlp.down_proj.weight', g + 'ffn_down.weight', d, f, std_res)
        add(p + 'input_layernorm.weight', g + 'attn_norm.weight', d, 0, 0)
        add(p + 'post_attention_layernorm.weight', g + 'ffn_norm.weight', d, 0, 0)
    add('model.norm.weight', 'output_norm.weight', d, 0, 0)
    add('lm_head.weight', 'output.weight', V, d, STD)
    return ts


def chunk_rows(h):
    hd = h['dim'] // h['n_heads']
    return 256 if 256 % hd == 0 else hd


def chunks(t, seed, R):
    """the tensor's values as fp32 row chunks [r][cols] in HF layout (1-D norms: one chunk)"""
    if t.cols == 0:
        yield np.ones(t.rows, np.float32)
        return
    for c, r0 in enumerate(range(0, t.rows, R)):
        n = min(R, t.rows - r0)
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, t.index, c])))
        a = rng.standard_normal((n, t.cols), dtype=np.float32)
        a *= np.float32(t.std)
        yield a


def gguf_permute(a, hd):
    """HF half-split rotary rows -> GGUF interleaved rows, per head (convert_hf_to_gguf.permute);
    a holds whole heads"""
    n, k = a.shape
    return a.reshape(n // hd, 2, hd // 2, k).swapaxes(1, 2).reshape(n, k)


def to_bf16_bytes(a):
    """fp32 -> bf16 with round-to-nearest-even (as torch does), little-endian bytes"""
    u = a.view(np.uint32)
    r = ((u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16))
    return r.astype('<u2').tobytes()


# ---------------------------------------------------------------- GGUF

def gguf_str(s):
    b = s.encode('utf-8')
    return struct.pack('<Q', len(b)) + b


def gguf_kv(key, t, v):
    out = gguf_str(key) + struct.pack('<I', t)
    if t == T_STR:
        return out + gguf_str(v)
    fmt = {T_U32: '<I', T_F32: '<f', T_BOOL: '<?', T_U64: '<Q', T_I32: '<i'}[t]
    return out + struct.pack(fmt, v)


def tokenizer_kvs(path, vocab):
    """the raw bytes of every tokenizer.* KV of a GGUF file, and how many there are"""
    with open(path, 'rb') as f:
        b = f.read()
    if b[:4] != b'GGUF':
        die('%s: not a GGUF file' % path)
    ver, n_t, n_kv = struct.unpack_from('<IQQ', b, 4)
    if ver not in (2, 3):
        die('%s: GGUF version %d (expected 2 or 3)' % (path, ver))
    p = 24

    def skip_str(p):
        (n,) = struct.unpack_from('<Q', b, p)
        return p + 8 + n

    def skip_val(p, t):
        if t == T_STR:
            return skip_str(p)
        if t == T_ARR:
            et, n = struct.unpack_from('<IQ', b, p)
            p += 12
            if et == T_STR:
                for _ in range(n):
                    p = skip_str(p)
                return p
            if et not in SCALAR_SIZE:
                die('%s: array of type %d' % (path, et))
            return p + n * SCALAR_SIZE[et]
        if t not in SCALAR_SIZE:
            die('%s: unknown value type %d' % (path, t))
        return p + SCALAR_SIZE[t]

    out, count, n_tokens = [], 0, None
    for _ in range(n_kv):
        start = p
        (kl,) = struct.unpack_from('<Q', b, p)
        key = b[p + 8:p + 8 + kl].decode('utf-8')
        p += 8 + kl
        (t,) = struct.unpack_from('<I', b, p)
        p = skip_val(p + 4, t)
        if key.startswith('tokenizer.'):
            out.append(b[start:p])
            count += 1
            if key == 'tokenizer.ggml.tokens':
                (n_tokens,) = struct.unpack_from('<Q', b, start + 8 + kl + 4 + 4)
    if n_tokens != vocab:
        die('%s holds %s tokens, the shape wants %d' % (path, n_tokens, vocab))
    return b''.join(out), count


def gguf_header(h, ts, tok_bytes, n_tok_kv, desc):
    hd = h['dim'] // h['n_heads']
    kvs = [gguf_kv('general.architecture', T_STR, 'llama'),
           gguf_kv('general.name', T_STR, h['label']),
           gguf_kv('general.description', T_STR, desc),
           gguf_kv('general.file_type', T_U32, 1),
           gguf_kv('general.alignment', T_U32, GGUF_ALIGN),
           gguf_kv('llama.context_length', T_U32, h['ctx']),
           gguf_kv('llama.embedding_length', T_U32, h['dim']),
           gguf_kv('llama.block_count', T_U32, h['n_layers']),
           gguf_kv('llama.feed_forward_length', T_U32, h['hidden']),
           gguf_kv('llama.attention.head_count', T_U32, h['n_heads']),
           gguf_kv('llama.attention.head_count_kv', T_U32, h['n_kv_heads']),
           gguf_kv('llama.rope.dimension_count', T_U32, hd),
           gguf_kv('llama.rope.freq_base', T_F32, h['rope_theta']),
           gguf_kv('llama.attention.layer_norm_rms_epsilon', T_F32, h['eps']),
           gguf_kv('llama.vocab_size', T_U32, h['vocab'])]
    out = [b'GGUF', struct.pack('<IQQ', 3, len(ts), len(kvs) + n_tok_kv)] + kvs + [tok_bytes]
    off = 0
    for t in ts:
        ne = [t.rows] if t.cols == 0 else [t.cols, t.rows]
        ty = GGML_F32 if t.cols == 0 else GGML_F16
        out.append(gguf_str(t.gguf_name) + struct.pack('<I', len(ne)) +
                   b''.join(struct.pack('<Q', n) for n in ne) + struct.pack('<IQ', ty, off))
        off += -(-t.numel * (4 if ty == GGML_F32 else 2) // GGUF_ALIGN) * GGUF_ALIGN
    hdr = b''.join(out)
    return hdr + b'\0' * (-len(hdr) % GGUF_ALIGN), off


class GGUFWriter:
    def __init__(self, path, h, ts, tok_bytes, n_tok_kv, desc):
        self.path, self.f = path, open(path, 'wb')
        hdr, self.data_bytes = gguf_header(h, ts, tok_bytes, n_tok_kv, desc)
        self.f.write(hdr)
        self.hd = h['dim'] // h['n_heads']
        self.cur = 0  # bytes of the current tensor written

    def chunk(self, t, a):
        if t.cols == 0:
            b = a.astype('<f4').tobytes()
        else:
            if t.rope_heads:
                a = gguf_permute(a, self.hd)
            b = a.astype('<f2').tobytes()
        self.f.write(b)
        self.cur += len(b)

    def end_tensor(self):
        self.f.write(b'\0' * (-self.cur % GGUF_ALIGN))
        self.cur = 0

    def close(self):
        self.f.close()


# ---------------------------------------------------------------- safetensors (HF)

def plan_shards(ts, elsize, max_shard):
    """huggingface_hub split_state_dict_into_shards_factory: in order, a tensor larger than the
    limit gets a shard of its own; otherwise a new shard starts when it would not fit"""
    shards, cur, cur_size = [], [], 0
    for t in ts:
        n = t.numel * elsize
        if n > max_shard:
            shards.append([t])
            continue
        if cur and cur_size + n > max_shard:
            shards.append(cur)
            cur, cur_size = [], 0
        cur.append(t)
        cur_size += n
    if cur:
        shards.append(cur)
    return shards


def st_header(tensors, elsize, st_dtype, meta):
    hdr, off = {'__metadata__': meta}, 0
    for t in tensors:
        shape = [t.rows] if t.cols == 0 else [t.rows, t.cols]
        n = t.numel * elsize
        hdr[t.hf_name] = {'dtype': st_dtype, 'shape': shape, 'data_offsets': [off, off + n]}
        off += n
    js = json.dumps(hdr, separators=(',', ':')).encode()
    js += b' ' * (-(8 + len(js)) % 64)  # data starts 64-byte aligned (spaces: valid JSON padding)
    return struct.pack('<Q', len(js)) + js, off


class HFWriter:
    def __init__(self, dirpath, h, ts, hf_dtype, max_shard, meta):
        self.dir = dirpath
        self.elsize = 2
        self.dtype = hf_dtype
        self.st_dtype = {'f16': 'F16', 'bf16': 'BF16'}[hf_dtype]
        self.shards = plan_shards(ts, self.elsize, max_shard)
        n = len(self.shards)
        self.names = ['model.safetensors'] if n == 1 else \
            ['model-%05d-of-%05d.safetensors' % (i + 1, n) for i in range(n)]
        self.shard_of = {}
        for i, sh in enumerate(self.shards):
            for t in sh:
                self.shard_of[t.index] = i
        self.meta, self.f, self.open_i, self.total = meta, None, -1, 0

    def chunk(self, t, a):
        i = self.shard_of[t.index]
        if i != self.open_i:
            if self.f:
                self.f.close()
            self.f = open(os.path.join(self.dir, self.names[i]), 'wb')
            hdr, size = st_header(self.shards[i], self.elsize, self.st_dtype, self.meta)
            self.f.write(hdr)
            self.total += size
            self.open_i = i
        b = a.astype('<f2').tobytes() if self.dtype == 'f16' else to_bf16_bytes(a)
        self.f.write(b)

    def end_tensor(self):
        pass

    def close(self, h, data):
        self.f.close()
        if len(self.names) > 1:
            index = {'metadata': {'total_size': self.total},
                     'weight_map': {t.hf_name: self.names[i]
                                    for i, sh in enumerate(self.shards) for t in sh}}
            with open(os.path.join(self.dir, 'model.safetensors.index.json'), 'w') as f:
                json.dump(index, f, indent=2)
                f.write('\n')
        cfg = {
            'architectures': ['LlamaForCausalLM'],
            'model_type': 'llama',
            'hidden_size': h['dim'],
            'intermediate_size': h['hidden'],
            'num_hidden_layers': h['n_layers'],
            'num_attention_heads': h['n_heads'],
            'num_key_value_heads': h['n_kv_heads'],
            'hidden_act': 'silu',
            'max_position_embeddings': h['ctx'],
            'rms_norm_eps': h['eps'],
            'rope_theta': h['rope_theta'],
            'rope_scaling': None,
            'vocab_size': h['vocab'],
            'tie_word_embeddings': False,
            'attention_bias': False,
            'attention_dropout': 0.0,
            'mlp_bias': False,
            'pretraining_tp': 1,
            'initializer_range': STD,
            'bos_token_id': 1,
            'eos_token_id': 2,
            'use_cache': True,
            'torch_dtype': {'f16': 'float16', 'bf16': 'bfloat16'}[self.dtype],
        }
        with open(os.path.join(self.dir, 'config.json'), 'w') as f:
            json.dump(cfg, f, indent=2)
            f.write('\n')
        spm = os.path.join(data, 'tokenizers', 'tokenizer.model')
        if os.path.exists(spm):
            shutil.copyfile(spm, os.path.join(self.dir, 'tokenizer.model'))
            tc = {'tokenizer_class': 'LlamaTokenizer', 'bos_token': '<s>', 'eos_token': '</s>',
                  'unk_token': '<unk>', 'add_bos_token': True, 'add_eos_token': False,
                  'model_max_length': h['ctx'], 'legacy': True}
            with open(os.path.join(self.dir, 'tokenizer_config.json'), 'w') as f:
                json.dump(tc, f, indent=2)
                f.write('\n')


# ---------------------------------------------------------------- main

def stamp_of(a, h):
    return {'generator': 'tests/gen_scale.py', 'version': VERSION, 'shape': a.shape,
            'layers': h['n_layers'], 'seed': a.seed, 'gguf_dtype': 'f16', 'hf_dtype': a.hf_dtype,
            'max_shard_size': a.max_shard_bytes}


def outputs(out, formats):
    return [out + '.gguf' if f == 'gguf' else out + '-hf' for f in formats]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--shape', choices=sorted(SHAPES), required=True)
    ap.add_argument('--layers', type=int, help='keep the first N blocks (default: all)')
    ap.add_argument('--format', choices=['gguf', 'hf', 'both'], default='both')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--hf-dtype', choices=['f16', 'bf16'], default='f16')
    ap.add_argument('--max-shard-size', default='5GB', help="HF shard limit (default 5GB = 5e9 bytes)")
    ap.add_argument('--cached', action='store_true',
                    help='do nothing when OUT.stamp matches and the outputs exist')
    ap.add_argument('-o', '--out', required=True,
                    help='output prefix: writes OUT.gguf and/or OUT-hf/ and OUT.stamp')
    a = ap.parse_args()
    h = dict(SHAPES[a.shape])
    h['n_layers_full'] = h['n_layers']
    if a.layers is not None:
        if not 1 <= a.layers <= h['n_layers']:
            ap.error('--layers wants 1..%d for %s' % (h['n_layers'], a.shape))
        h['n_layers'] = a.layers
    h['label'] = 'random-%s%s' % (a.shape, '' if a.layers is None else '-%dl' % a.layers)
    a.max_shard_bytes = parse_size(a.max_shard_size)
    formats = ['gguf', 'hf'] if a.format == 'both' else [a.format]
    out = a.out[:-5] if a.out.endswith('.gguf') else a.out
    data = os.environ.get('LOWBIT_DATA', '../shared/data')
    stamp_path = out + '.stamp'
    want = stamp_of(a, h)

    if a.cached and os.path.exists(stamp_path):
        try:
            with open(stamp_path) as f:
                have = json.load(f)
        except (OSError, ValueError):
            have = {}
        if all(have.get(k) == v for k, v in want.items()) and \
                set(formats) <= set(have.get('formats', [])) and all(map(os.path.exists, outputs(out, formats))):
            print('gen_scale: %s is up to date (%s)' % (', '.join(outputs(out, formats)), stamp_path))
            return

    vocab_gguf = os.path.join(data, 'tokenizers', 'ggml-vocab-llama-spm.gguf')
    if not os.path.exists(vocab_gguf):
        die('missing %s (set LOWBIT_DATA to the shared data folder; see its MANIFEST.md)' % vocab_gguf)
    tok_bytes, n_tok_kv = tokenizer_kvs(vocab_gguf, h['vocab'])
    ts = model_tensors(h)
    n_params = sum(t.numel for t in ts)
    desc = 'RANDOM weights (benchmark shape only): tests/gen_scale.py v%d, shape %s, %d layers, seed %d' % (
        VERSION, a.shape, h['n_layers'], a.seed)

    d = os.path.dirname(os.path.abspath(out))
    os.makedirs(d, exist_ok=True)
    # the old outputs go first (a stale stamp must never describe a half-written model)
    for p in [stamp_path] + outputs(out, ['gguf', 'hf']):
        if os.path.isdir(p):
            shutil.rmtree(p)
        elif os.path.exists(p):
            os.remove(p)
    need = n_params * 2 * len(formats)
    free = shutil.disk_usage(d).free
    if need > free - (1 << 30):
        die('%s: %.1f GB needed, %.1f GB free' % (d, need / 1e9, free / 1e9))

    writers = []
    if 'gguf' in formats:
        gpath = out + '.gguf.tmp'
        writers.append(GGUFWriter(gpath, h, ts, tok_bytes, n_tok_kv, desc))
    if 'hf' in formats:
        hdir = out + '-hf.tmp'
        shutil.rmtree(hdir, ignore_errors=True)
        os.makedirs(hdir)
        meta = {'format': 'pt', 'generator': 'lowbit tests/gen_scale.py v%d' % VERSION,
                'shape': a.shape, 'seed': str(a.seed), 'note': 'RANDOM weights, benchmark shape only'}
        writers.append(HFWriter(hdir, h, ts, a.hf_dtype, a.max_shard_bytes, meta))

    R = chunk_rows(h)
    t0, done, last = time.time(), 0, 0.0
    for t in ts:
        for c in chunks(t, a.seed, R):
            for w in writers:
                w.chunk(t, c)
            done += c.size
        for w in writers:
            w.end_tensor()
        el = time.time() - t0
        if sys.stderr.isatty() or el - last >= 30:
            last = el
            sys.stderr.write('gen_scale: %s %.0f%% (%.0f s)%s' % (
                h['label'], 100.0 * done / n_params, el, '\r' if sys.stderr.isatty() else '\n'))
    for w in writers:
        if isinstance(w, GGUFWriter):
            w.close()
            os.rename(w.path, out + '.gguf')
        else:
            w.close(h, data)
            os.rename(w.dir, out + '-hf')
    want['formats'] = formats
    want['params'] = n_params
    with open(stamp_path + '.tmp', 'w') as f:
        json.dump(want, f, indent=1)
        f.write('\n')
    os.rename(stamp_path + '.tmp', stamp_path)
    if sys.stderr.isatty():
        sys.stderr.write('\n')
    for p in outputs(out, formats):
        size = os.path.getsize(p) if os.path.isfile(p) else \
            sum(os.path.getsize(os.path.join(p, x)) for x in os.listdir(p))
        print('gen_scale: wrote %s (%d bytes)' % (p, size))
    print('gen_scale: %s, %d layers, %.3fB parameters, seed %d, %.0f s' % (
        a.shape, h['n_layers'], n_params / 1e9, a.seed, time.time() - t0))


if __name__ == '__main__':
    main()
