#!/usr/bin/python3
"""tests/outlier_probe.py: why the W4A4 KLD of tests/gen_outlier.py's model falls by only ~3x with
rotation, measured block by block on a numpy forward of the model's residual stream (no
vocabulary: token rows drawn as the embeddings are, through --layers blocks of the same shapes and
distributions as gen_outlier.py's; the head is not needed for these figures).

Per block it prints
  - the stream's non-outlier channels split into their token-independent part (the mean over the
    tokens) and the token part, and the outlier channels' mean |value|;
  - the a4 input error of the q/k/v/gate/up input (RMSNorm'd stream; norm weights 1), without and
    with a random orthogonal rotation, at act_clip 1 and 0.9: |Q(x) - x|^2 (taken back to the
    model's basis) over the energy of x's non-outlier channels, the part that carries the token;
  - the same for v_proj's output with W4 per-channel RTN weights (rotated weights W.U when
    rotated), against the token part of the non-outlier input's output;
  - each sublayer's update (o_proj's, down_proj's output) split the same way.
QuaRot's argument is about the second figure: unrotated, the few massive channels set each token's
int4 step and the rest rounds to zero (error ~1); rotated, the step follows the token's whole norm,
so the error is ~0.014·|x|^2/|x_non-outlier|^2 at clip 0.9 (Gaussian coordinates, max ~3.2 sigma).

  outlier_probe.py [--layers 12] [--tokens 32] [gen_outlier.py's model options: --scale,
                   --channels, --read, --update-gain]"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_outlier as go  # noqa: E402

f32 = np.float32


def rms(x):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-5)


def fq(x, clip, qm=7):  # per-token symmetric, as kernels/act_quant.c's act_fake_quant_rows
    d = clip * np.abs(x).max(-1, keepdims=True) / qm
    d[d == 0] = 1
    return d * np.clip(np.round(x / d), -qm - 1, qm)


def wq(w, qm=7):  # per output row symmetric (recipes' int4, group -1)
    d = np.abs(w).max(1, keepdims=True) / qm
    d[d == 0] = 1
    return d * np.clip(np.round(w / d), -qm - 1, qm)


def main():
    argv = sys.argv[1:]
    T = 32
    if '--tokens' in argv:
        i = argv.index('--tokens')
        T = int(argv[i + 1])
        del argv[i:i + 2]
    a = go.parse(['-o', '/dev/null'] + argv)
    D, H, L = go.D, go.H, a.layers
    ch = [int(c) for c in a.channels.split(',') if c]
    rng = np.random.default_rng(a.seed)
    U = np.linalg.qr(rng.standard_normal((D, D)))[0].astype(f32)
    x = (rng.standard_normal((T, D)) * 0.02).astype(f32)
    x[:, ch] = f32(a.scale * 0.02) * np.where(np.arange(len(ch)) % 2, -1, 1).astype(f32)
    std_w = a.update_gain * 0.02 / np.sqrt(2 * L)

    def lin(r, c, s, reads=False):
        w = (rng.standard_normal((r, c)) * s).astype(f32)
        if reads and a.read == 'zero':
            w[:, ch] = 0
        return w

    def err(xin, clip, basis, w=None):
        sig = xin.copy()
        sig[:, ch] = 0
        xi = xin @ basis if basis is not None else xin
        xq = fq(xi, clip)
        if w is None:
            e = (xq - xi) @ basis.T if basis is not None else xq - xi
            return (e ** 2).sum() / (sig ** 2).sum()
        wr = w @ basis if basis is not None else w
        ys = sig @ w.T
        return ((xq @ wq(wr).T - xi @ wr.T) ** 2).sum() / ((ys - ys.mean(0)) ** 2).sum()

    def split(d):
        d = d.copy()
        d[:, ch] = 0
        c = d.mean(0)
        return np.sqrt((c ** 2).mean()), np.sqrt(((d - c) ** 2).mean())

    mask = np.triu(np.full((T, T), -np.inf, f32), 1)
    print('blk  stream const/token/outl | a4 in-err clip1 unrot/rot, clip.9 unrot/rot | '
          'v w4a4 unrot/rot | attn upd const/token | mlp upd const/token')
    for l in range(L):
        wqk = [lin(D, D, s * 0.02, True) for s in (a.qk_gain, a.qk_gain, 1)]
        wo = lin(D, D, std_w)
        wg, wu, wd = lin(H, D, 0.02, True), lin(H, D, 0.02, True), lin(D, H, std_w)
        h = rms(x)
        c, t = split(x)
        line = '%3d  %.4f %.4f %.2f | %.3f %.3f  %.3f %.3f | %.3f %.3f' % (
            l, c, t, np.abs(x[:, ch]).mean(), err(h, 1, None), err(h, 1, U), err(h, .9, None),
            err(h, .9, U), err(h, .9, None, wqk[2]), err(h, .9, U, wqk[2]))
        q, k, v = ((h @ w.T).reshape(T, 12, 64).transpose(1, 0, 2) for w in wqk)
        s = q @ k.transpose(0, 2, 1) / 8 + mask
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        dx = (s @ v).transpose(1, 0, 2).reshape(T, D) @ wo.T
        x = x + dx
        h = rms(x)
        g, u = h @ wg.T, h @ wu.T
        dm = (g / (1 + np.exp(-g)) * u) @ wd.T
        x = x + dm
        line += ' | %.4f %.4f | %.4f %.4f' % (split(dx) + split(dm))
        print(line, flush=True)


if __name__ == '__main__':
    main()
