#!/usr/bin/python3
"""tests/simultaneous_null.py: how often the board's method calls noise significant.

usage: /usr/bin/python3 tests/simultaneous_null.py [N_BOARDS]

Simulates N_BOARDS null models: a baseline and five quantized runs that are all equally good
(every run answers each document right with the document's own probability, independently), on
ten tasks of 200 documents, and applies the method of render/stats.c to each: per-document paired
bootstrap (1000 resamples, the same draws for every run), the Average as the mean of the tasks,
and intervals delta -+ crit * se. It prints the share of null models in which at least one of
the 55 deltas (10 tasks + the Average, five runs) is called significant, with one-at-a-time
intervals (crit 1.96) and with the simultaneous max-|T| critical value; the second should be
near 5%, the first far above it. (The draws here come from numpy's generator, not splitmix64:
this checks the method's calibration, tests/paired_ci.py checks lowbit's arithmetic.)
"""
import sys

import numpy as np


def one_board(rng, n_runs=5, n_tasks=10, n_docs=200, n_boot=1000, level=0.95):
    p = rng.uniform(0.2, 0.8, size=(n_tasks, n_docs))  # each document's difficulty
    acc = (rng.random((n_runs + 1, n_tasks, n_docs)) < p).astype(np.float64)
    idx = rng.integers(0, n_docs, size=(n_tasks, n_boot, n_docs))
    # resample means of every run per task: (runs, tasks, boot)
    st = np.stack([np.take_along_axis(np.broadcast_to(acc[:, t][:, None, :], (n_runs + 1, n_boot, n_docs)),
                                      np.broadcast_to(idx[t][None], (n_runs + 1, n_boot, n_docs)), 2).mean(axis=2)
                   for t in range(n_tasks)], axis=1)
    x = acc.mean(axis=2)  # (runs, tasks)
    st = np.concatenate([st, st.mean(axis=1, keepdims=True)], axis=1)  # + the Average
    x = np.concatenate([x, x.mean(axis=1, keepdims=True)], axis=1)
    d = x[1:] - x[0]                     # (runs, tasks+1)
    D = st[1:] - st[0]                   # (runs, tasks+1, boot)
    se = D.std(axis=2, ddof=1)
    ok = se > 0
    T = np.where(ok[..., None], np.abs(D - d[..., None]) / np.where(ok, se, 1)[..., None], 0)
    crit = np.sort(T.reshape(-1, n_boot).max(axis=0))[int(np.ceil(level * n_boot)) - 1]
    sig_one = np.any(np.abs(d) > 1.959963984540054 * se)
    sig_sim = np.any(np.abs(d) > crit * se)
    return sig_one, sig_sim, crit


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    rng = np.random.default_rng(1234)
    one = sim = 0
    crits = []
    for _ in range(n):
        a, b, c = one_board(rng)
        one += a
        sim += b
        crits.append(c)
    print(f"{n} null models (5 runs x (10 tasks + Average) = 55 deltas each, 200 documents a task): "
          f"at least one delta called significant in {100 * one / n:.1f}% with one-at-a-time "
          f"95% intervals, {100 * sim / n:.1f}% with the simultaneous ones "
          f"(critical value median {np.median(crits):.2f})")


if __name__ == "__main__":
    main()
