#!/usr/bin/python3
"""tests/paired_ci.py: recompute the board's paired statistics from the published details.

usage: /usr/bin/python3 tests/paired_ci.py SITE_DIR

For every data/details/<run>.json that names a baseline run, this recomputes, from the two runs'
per-sample records alone and with numpy, what lowbit render published (render/stats.c, the method
on about.html#statistics):
  - per board task: the mean paired difference of acc on the same documents and its 95% interval,
    a paired bootstrap over documents (B resamples; draw i of resample b of stream k picks
    document floor(u * n), u = (z >> 11) * 2^-53, z = splitmix64(seed ^ ((k+1) << 48 | b << 24 | i)),
    interval = sorted means [floor(0.025 B)] and [ceil(0.975 B) - 1]);
  - the average's delta (mean of the tasks' deltas) and interval (mean of the tasks' resample means);
  - the mean KLD's interval over chunks; the paired delta of the ppl chunks' mean NLL;
  - the tie bands of every rank-by choice (rank_by: avg, kld, ppl, each board task): each run's
    score from its records (a task's mean acc, the mean of the tasks' means, the chunks' mean KLD,
    exp of the ppl chunks' mean NLL), the published order against those scores, and, for every
    two runs at consecutive ranks, the paired bootstrap of the lower against the upper one in that
    choice's stream: the lower run starts a new band exactly when the difference is significant,
    the two cannot be compared, or its score is missing.
Runs are compared only on the same documents of the same data file (dataset_sha256); the average
only when every board task (board_tasks) is.
It prints one line per run and exits 1 when a published number differs by more than 1e-9 (the
sums are taken in another order than C's), or when the runs' documents differ but were compared.
"""
import json
import math
import os
import sys

import numpy as np

TOL = 1e-9
M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def splitmix64(x):
    """splitmix64 of a uint64 array (wrapping arithmetic)"""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def draws(seed, k, n_boot, n):
    """the (n_boot, n) document indices of stream k"""
    b = np.arange(n_boot, dtype=np.uint64)[:, None]
    i = np.arange(n, dtype=np.uint64)[None, :]
    ctr = (np.uint64(k + 1) << np.uint64(48)) | (b << np.uint64(24)) | i
    z = splitmix64(np.uint64(seed) ^ ctr)
    u = (z >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
    j = np.floor(u * n).astype(np.int64)
    return np.minimum(j, n - 1)


def interval(stats):
    s = np.sort(stats)
    b = len(s)
    return s[int(math.floor(0.025 * b))], s[int(math.ceil(0.975 * b)) - 1]


def check(what, published, delta, lo, hi, bad):
    if published is None or "delta" not in published:
        bad.append(f"{what}: not published")
        return
    for name, mine in (("delta", delta), ("lo", lo), ("hi", hi)):
        theirs = published[name]
        if theirs is None or abs(theirs - mine) > TOL * max(1.0, abs(mine)):
            bad.append(f"{what}.{name}: published {theirs!r}, recomputed {mine!r}")
    sig = lo > 0 or hi < 0
    if published.get("significant") != sig:
        bad.append(f"{what}: published significant={published.get('significant')}, recomputed {sig}")


def column(rows, fields, name):
    k = fields.index(name)
    return [r[k] for r in rows]


def paired_x(a, b, task, field):
    """the per-document differences field(a) - field(b) of task, None when not comparable"""
    ta, tb = a["tasks"].get(task), b["tasks"].get(task)
    fa, fb = a["fields"], b["fields"]
    if (not ta or not tb or not ta["dataset_sha256"] or ta["dataset_sha256"] != tb["dataset_sha256"]
            or column(ta["rows"], fa, "doc") != column(tb["rows"], fb, "doc") or not ta["rows"]):
        return None
    va, vb = column(ta["rows"], fa, field), column(tb["rows"], fb, field)
    if any(v is None for v in va + vb):
        return None
    x = np.array(va, dtype=np.float64) - np.array(vb, dtype=np.float64)
    return x if np.all(np.isfinite(x)) else None


def compare_by(a, b, key):
    """(delta, lo, hi) of a - b for rank-by choice key, None when not comparable"""
    seed, n_boot = a["bootstrap"]["seed"], a["bootstrap"]["resamples"]
    if key == "kld" or key == "ppl":
        x = paired_x(a, b, key, "value")
        if x is None:
            return None
        idx = draws(seed, a["bootstrap"]["stream_" + key], n_boot, len(x))
        return (x.mean(),) + interval(x[idx].mean(axis=1))
    tasks = a["board_tasks"] if key == "avg" else [key]
    means, deltas = [], []
    for task in tasks:
        x = paired_x(a, b, task, "acc")
        if x is None:
            return None
        idx = draws(seed, a["board_tasks"].index(task), n_boot, len(x))
        means.append(x[idx].mean(axis=1))
        deltas.append(x.mean())
    if key == "avg":
        return (float(np.mean(deltas)),) + interval(np.mean(np.array(means), axis=0))
    return (deltas[0],) + interval(means[0])


def score_of(d, key):
    """the run's score for rank-by choice key from its records alone (None: none)"""
    f = d["fields"]
    if key in ("kld", "ppl"):
        t = d["tasks"].get(key)
        if not t or not t["rows"]:
            return None
        m = float(np.mean(np.array(column(t["rows"], f, "value"), dtype=np.float64)))
        return m if key == "kld" else math.exp(m)
    tasks = d["board_tasks"] if key == "avg" else [key]
    accs = []
    for task in tasks:
        t = d["tasks"].get(task)
        if not t or not t["rows"]:
            return None
        accs.append(float(np.mean(np.array(column(t["rows"], f, "acc"), dtype=np.float64))))
    return float(np.mean(accs))


def check_bands(runs, failures):
    """the rank-by bands of every choice; returns (choices, pairs checked)"""
    keys = set()
    for d in runs.values():
        keys.update((d.get("rank_by") or {}).keys())
    n_pairs = 0
    for key in sorted(keys):
        ranked = sorted((d["rank_by"][key]["rank"], rid) for rid, d in runs.items()
                        if key in (d.get("rank_by") or {}))
        for rank, rid in ranked:
            pub = runs[rid]["rank_by"][key]
            mine = score_of(runs[rid], key)
            theirs = pub["score"]
            # the board's scores come from the scores table; the records must give the same
            # number (KLD over tokens and over equal chunks agree to rounding)
            if (mine is None) != (theirs is None) or (
                    mine is not None and abs(mine - theirs) > 1e-9 * max(1.0, abs(mine))):
                failures.append(f"run {rid}: rank by {key}: published score {theirs!r}, "
                                f"recomputed from the records {mine!r}")
        for (r1, up), (r2, lo) in zip(ranked, ranked[1:]):
            if r2 != r1 + 1:
                continue  # a board run without published details between them
            a, b = runs[up]["rank_by"][key], runs[lo]["rank_by"][key]
            lower = a["lower_is_better"]
            if a["score"] is not None and b["score"] is not None and (
                    (b["score"] < a["score"]) if lower else (b["score"] > a["score"])):
                failures.append(f"rank by {key}: run {lo} (rank {r2}, {b['score']!r}) is better "
                                f"than run {up} (rank {r1}, {a['score']!r}) above it")
            c = None if b["score"] is None else compare_by(runs[up], runs[lo], key)
            new_band = c is None or c[1] > 0 or c[2] < 0
            want = a["band"] + 1 if new_band else a["band"]
            n_pairs += 1
            if b["band"] != want:
                failures.append(f"rank by {key}: run {lo} (rank {r2}) has band {b['band']}, "
                                f"recomputed {want} (run {up} above in band {a['band']}, "
                                f"{'not comparable' if c is None else 'delta %r [%r, %r]' % c})")
    return len(keys), n_pairs


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    ddir = os.path.join(sys.argv[1], "data", "details")
    runs = {}
    for f in sorted(os.listdir(ddir)):
        if f.endswith(".json"):
            with open(os.path.join(ddir, f)) as fh:
                d = json.load(fh)
            runs[d["run_id"]] = d
    n_checked = n_values = 0
    failures = []
    for rid, d in sorted(runs.items()):
        seed, n_boot = d["bootstrap"]["seed"], d["bootstrap"]["resamples"]
        fields = d["fields"]
        bad = []
        # KLD: its own interval over chunks
        kld = d["tasks"].get("kld")
        if kld:
            x = np.array(column(kld["rows"], fields, "value"), dtype=np.float64)
            idx = draws(seed, d["bootstrap"]["stream_kld"], n_boot, len(x))
            lo, hi = interval(x[idx].mean(axis=1))
            check("kld", kld.get("mean_kld"), x.mean(), lo, hi, bad)
            n_values += 3
        base_id = d.get("baseline_run_id")
        if base_id is None or base_id == rid or base_id not in runs:
            failures += [f"run {rid}: {m}" for m in bad]
            continue
        base = runs[base_id]
        per_task_means, deltas, n_tasks = [], [], 0
        comparable = True
        for task, t in sorted(d["tasks"].items(), key=lambda kv: kv[1].get("position", 1e9)):
            if "position" not in t:
                continue
            n_tasks += 1
            bt = base["tasks"].get(task)
            docs = column(t["rows"], fields, "doc")
            if (not bt or column(bt["rows"], fields, "doc") != docs or not t["dataset_sha256"]
                    or t["dataset_sha256"] != bt["dataset_sha256"]):
                comparable = False
                if t.get("delta_acc") not in (None, {"state": "other documents"}):
                    bad.append(f"{task}: documents differ from the baseline's but a delta was published")
                continue
            x = (np.array(column(t["rows"], fields, "acc"), dtype=np.float64) -
                 np.array(column(bt["rows"], fields, "acc"), dtype=np.float64))
            idx = draws(seed, t["position"], n_boot, len(x))
            means = x[idx].mean(axis=1)
            lo, hi = interval(means)
            check(task, t.get("delta_acc"), x.mean(), lo, hi, bad)
            per_task_means.append(means)
            deltas.append(x.mean())
            n_values += 3
        if comparable and len(deltas) == len(d["board_tasks"]):
            avg_means = np.mean(np.array(per_task_means), axis=0)
            lo, hi = interval(avg_means)
            check("average", d.get("delta_average"), float(np.mean(deltas)), lo, hi, bad)
            n_values += 3
        ppl, bppl = d["tasks"].get("ppl"), base["tasks"].get("ppl")
        if (ppl and bppl and column(ppl["rows"], fields, "doc") == column(bppl["rows"], fields, "doc")
                and ppl["dataset_sha256"] and ppl["dataset_sha256"] == bppl["dataset_sha256"]):
            x = (np.array(column(ppl["rows"], fields, "value"), dtype=np.float64) -
                 np.array(column(bppl["rows"], fields, "value"), dtype=np.float64))
            idx = draws(seed, d["bootstrap"]["stream_ppl"], n_boot, len(x))
            lo, hi = interval(x[idx].mean(axis=1))
            check("ppl", ppl.get("delta_mean_nll"), x.mean(), lo, hi, bad)
            n_values += 3
        avg = d.get("delta_average") or {}
        print(f"run {rid} vs baseline {base_id}: average delta {avg.get('delta')} "
              f"[{avg.get('lo')}, {avg.get('hi')}]: {'MISMATCH' if bad else 'agrees'}")
        n_checked += 1
        failures += [f"run {rid}: {m}" for m in bad]
    n_choices, n_pairs = check_bands(runs, failures)
    for f in failures:
        print("  " + f)
    print(f"paired_ci: {n_checked} runs against their baseline, {n_values} published numbers "
          f"recomputed, tie bands of {n_choices} rank-by choices checked over {n_pairs} "
          f"neighbouring pairs, {len(failures)} mismatches")
    sys.exit(1 if failures or not n_checked or not n_pairs else 0)


if __name__ == "__main__":
    main()
