#!/usr/bin/python3
"""tests/ref/awq_ref.py: an independent numpy AWQ scale search, transcribed from AutoAWQ
(awq/quantize/quantizer.py _search_best_scale + _compute_best_scale + pseudo_quantize_tensor,
zero_point True) for a group of linears whose loss is their concatenated outputs (quant/awq.h).
Weights and the pseudo-quantizer in float32 (as the model's dtype), means, scales and the loss in
float64.

usage: awq_ref.py --x X.f32 --w W.f32 --T T --K K --n N1,N2,.. --group G [--bits 4]
                  [--n-grid 20] [--duo 1] -o OUT
  X.f32: [T][K] float32; W.f32: the linears' rows [sum N][K] float32, one after another
  OUT (little-endian): best int32, losses float64 [n_grid], scales float32 [K]
"""
import argparse

import numpy as np


def pseudo_quantize(w, bits, group):
    """pseudo_quantize_tensor(zero_point=True) on float32 w [N][K], groups along K"""
    n, k = w.shape
    g = w.reshape(-1, group)
    maxq = np.float32(2 ** bits - 1)
    mx = g.max(axis=1, keepdims=True)
    mn = g.min(axis=1, keepdims=True)
    scale = np.maximum(mx - mn, np.float32(1e-5)) / maxq
    zero = np.clip(-np.rint(mn / scale), np.float32(0), maxq)
    q = np.clip(np.rint(g / scale) + zero, np.float32(0), maxq)
    return ((q - zero) * scale).astype(np.float32).reshape(n, k)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--x", required=True)
    ap.add_argument("--w", required=True)
    ap.add_argument("--T", type=int, required=True)
    ap.add_argument("--K", type=int, required=True)
    ap.add_argument("--n", required=True)
    ap.add_argument("--group", type=int, required=True)
    ap.add_argument("--bits", type=int, default=4)
    ap.add_argument("--n-grid", type=int, default=20)
    ap.add_argument("--duo", type=int, default=1)
    ap.add_argument("-o", required=True)
    a = ap.parse_args()
    ns = [int(v) for v in a.n.split(",")]
    x = np.fromfile(a.x, dtype=np.float32).reshape(a.T, a.K)
    wall = np.fromfile(a.w, dtype=np.float32).reshape(sum(ns), a.K)
    ws = np.split(wall, np.cumsum(ns)[:-1])
    x64 = x.astype(np.float64)

    # x_mean: mean |x| per input channel; w_mean: |w| / (group amax + 1e-6), mean over all rows
    x_mean = np.abs(x64).mean(axis=0).astype(np.float32)
    g = np.abs(wall.astype(np.float64)).reshape(-1, a.group)
    amax = np.abs(wall).reshape(-1, a.group).max(axis=1, keepdims=True).astype(np.float64)
    w_mean = (g / (amax + 1e-6)).reshape(wall.shape).mean(axis=0).astype(np.float32)

    losses = []
    best, best_loss, best_s = -1, np.inf, None
    for i in range(a.n_grid):
        r = i / a.n_grid
        xm = x_mean.astype(np.float64)
        if a.duo:
            v = xm ** r / (w_mean.astype(np.float64) ** (1 - r) + 1e-4)
        else:
            v = xm ** r
        v = np.maximum(v, 1e-4)
        s = (v / np.sqrt(v.max() * v.min())).astype(np.float32)
        s[~np.isfinite(s)] = 1
        err = 0.0
        for w in ws:
            wq = pseudo_quantize(w * s, a.bits, a.group) / s
            d = (w - wq).astype(np.float32).astype(np.float64)
            err += ((x64 @ d.T) ** 2).sum()
        loss = err / (a.T * sum(ns))
        losses.append(loss)
        if loss < best_loss:
            best, best_loss, best_s = i, loss, s.copy()
    with open(a.o, "wb") as f:
        f.write(np.int32(best).tobytes())
        f.write(np.array(losses, dtype="<f8").tobytes())
        f.write(best_s.astype("<f4").tobytes())


if __name__ == "__main__":
    main()
