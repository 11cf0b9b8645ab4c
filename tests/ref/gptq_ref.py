#!/usr/bin/python3
"""tests/ref/gptq_ref.py: an independent float64 numpy GPTQ, transcribed from AutoGPTQ
(auto_gptq/quantization/gptq.py GPTQ.add_batch + fasterquant, quantizer.py Quantizer) in its
matrix form, with lowbit's two documented changes (quant/gptq.h): the scale is rounded to fp16
(through fp32) when its group starts and used for the codes and the error feedback, and zeros are
clamped to [zero_min, maxq]. act-order ties: stable (lower column first).

usage: gptq_ref.py layer --w W.f32 --x X.f32 --K K --N N --T T --samples S --bits B --group G
                         --sym 0|1 --desc-act 0|1 [--damp 0.01] [--blocksize 128]
                         [--zero-min 1] -o OUT
  W.f32: [N][K] float32; X.f32: [T][K] float32 (S samples of T/S rows; H = 2/S·XᵀX)
  OUT (little-endian): perm int32 [K], codes int32 [N][K] (input column order),
  scale float32 [N][ng], zero float32 [N][ng] (ng groups in processing order), loss float64,
  then the dequantized weights float32 [N][K] (input order).
"""
import argparse
import sys

import numpy as np


def find_params(x, bits, sym, zero_min):
    """Quantizer.find_params(x, weight=True) per row of x [N, n]; scale rounded to fp16"""
    maxq = 2 ** bits - 1
    xmin = np.minimum(x.min(axis=1), 0)
    xmax = np.maximum(x.max(axis=1), 0)
    if sym:
        xmax = np.maximum(np.abs(xmin), xmax)
        tmp = xmin < 0
        xmin[tmp] = -xmax[tmp]
    tmp = (xmin == 0) & (xmax == 0)
    xmin[tmp] = -1
    xmax[tmp] = 1
    scale = (xmax - xmin) / maxq
    if sym:
        zero = np.full_like(scale, (maxq + 1) / 2)
    else:
        zero = np.round(-xmin / scale)
    scale = scale.astype(np.float32).astype(np.float16).astype(np.float64)
    scale[scale == 0] = 2.0 ** -24
    zero = np.clip(zero, zero_min, maxq)
    return scale, zero


def quantize(w, scale, zero, maxq):
    q = np.clip(np.round(w / scale) + zero, 0, maxq)
    return q, scale * (q - zero)


def gptq(W, H, bits, group, sym, desc_act, damp, blocksize, zero_min):
    N, K = W.shape
    maxq = 2 ** bits - 1
    W = W.astype(np.float64).copy()
    H = H.copy()
    if group == -1:
        scale, zero = find_params(W, bits, sym, zero_min)
    dead = np.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    perm = np.arange(K)
    if desc_act:
        perm = np.argsort(-np.diag(H), kind="stable")
        W = W[:, perm]
        H = H[perm][:, perm]
    H[np.diag_indices(K)] += damp * np.mean(np.diag(H))
    L = np.linalg.cholesky(H)                     # torch.linalg.cholesky
    Linv = np.linalg.inv(L)
    Hinv = Linv.T @ Linv                          # torch.cholesky_inverse
    U = np.linalg.cholesky(Hinv).T                # torch.linalg.cholesky(upper=True)
    codes = np.zeros((N, K), dtype=np.int64)
    Q = np.zeros((N, K))
    scales, zeros = [], []
    if group == -1:
        scales.append(scale)
        zeros.append(zero)
    loss = 0.0
    for i1 in range(0, K, blocksize):
        i2 = min(i1 + blocksize, K)
        W1 = W[:, i1:i2].copy()
        Err1 = np.zeros_like(W1)
        Hinv1 = U[i1:i2, i1:i2]
        for i in range(i2 - i1):
            w = W1[:, i]
            d = Hinv1[i, i]
            if group != -1 and (i1 + i) % group == 0:
                scale, zero = find_params(W[:, i1 + i:i1 + i + group], bits, sym, zero_min)
                scales.append(scale)
                zeros.append(zero)
            q, dq = quantize(w, scale, zero, maxq)
            codes[:, i1 + i] = q
            Q[:, i1 + i] = dq
            loss += np.sum((w - dq) ** 2 / d ** 2)
            err1 = (w - dq) / d
            W1[:, i:] -= np.outer(err1, Hinv1[i, i:])
            Err1[:, i] = err1
        W[:, i2:] -= Err1 @ U[i1:i2, i2:]
    out_codes = np.zeros_like(codes)
    out_q = np.zeros_like(Q)
    out_codes[:, perm] = codes
    out_q[:, perm] = Q
    return perm, out_codes, np.stack(scales, 1), np.stack(zeros, 1), loss / 2, out_q


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["layer"])
    ap.add_argument("--w", required=True)
    ap.add_argument("--x", required=True)
    ap.add_argument("--K", type=int, required=True)
    ap.add_argument("--N", type=int, required=True)
    ap.add_argument("--T", type=int, required=True)
    ap.add_argument("--samples", type=int, required=True)
    ap.add_argument("--bits", type=int, required=True)
    ap.add_argument("--group", type=int, required=True)
    ap.add_argument("--sym", type=int, required=True)
    ap.add_argument("--desc-act", type=int, required=True)
    ap.add_argument("--damp", type=float, default=0.01)
    ap.add_argument("--blocksize", type=int, default=128)
    ap.add_argument("--zero-min", type=int, default=1)
    ap.add_argument("-o", required=True)
    a = ap.parse_args()
    W = np.fromfile(a.w, dtype="<f4").reshape(a.N, a.K)
    X = np.fromfile(a.x, dtype="<f4").reshape(a.T, a.K).astype(np.float64)
    H = 2.0 / a.samples * (X.T @ X)  # add_batch's running mean, one sample per batch row
    perm, codes, scale, zero, loss, q = gptq(W, H, a.bits, a.group, bool(a.sym),
                                             bool(a.desc_act), a.damp, a.blocksize, a.zero_min)
    with open(a.o, "wb") as f:
        f.write(perm.astype("<i4").tobytes())
        f.write(codes.astype("<i4").tobytes())
        f.write(scale.astype("<f4").tobytes())
        f.write(zero.astype("<f4").tobytes())
        f.write(np.array([loss], dtype="<f8").tobytes())
        f.write(q.astype("<f4").tobytes())
    return 0


if __name__ == "__main__":
    sys.exit(main())
