#!/usr/bin/python3
"""tests/paired_ci.py: recompute the board's paired statistics from the published details.

usage: /usr/bin/python3 tests/paired_ci.py SITE_DIR

For every data/details/<run>.json this recomputes, from the per-sample records alone and with
numpy, what lowbit render published (render/stats.c, the method on about.html#statistics):
  - each run's statistic per rank-by choice (a board task's mean acc, the board tasks' mean of
    those, the kld chunks' mean KLD, the ppl chunks' mean NLL) and its B bootstrap resamples: draw
    i of resample b of stream k picks document floor(u * n), u = (z >> 11) * 2^-53,
    z = splitmix64(seed ^ ((k+1) << 48 | b << 24 | i)); the average's resample is the mean of the
    tasks' resample means;
  - a statement's estimate (run minus baseline, or a run's own mean KLD), its resamples (the
    difference of the two runs' resamples: the paired bootstrap on the same documents) and its
    standard error (their standard deviation, divisor B - 1);
  - the simultaneous critical value of a family, entry ceil(level * B) - 1 of the sorted
    max over statements of |resample - estimate| / se, and every interval estimate -+ crit * se:
    the model family (every delta of the model's runs against its baseline and every run's mean
    KLD) and, per rank-by choice, the pair family (every two board runs that can be compared);
  - the tie bands of every rank-by choice: the published order against the scores, and for every
    two runs at consecutive ranks the lower one starts a new band exactly when their difference
    is significant in the pair family, the two cannot be compared, or its score is missing.
Runs are compared only on the same documents of the same data file (dataset_sha256); the average
only when every board task is.
It prints one line per run and exits 1 when a published number differs by more than 1e-9 (the
sums are taken in another order than C's), or when the runs' documents differ but were compared.
"""
import json
import math
import os
import sys

import numpy as np

TOL = 1e-9


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


def column(rows, fields, name):
    k = fields.index(name)
    return [r[k] for r in rows]


class Stat:
    """a run's statistic on one choice: estimate x, resamples st, documents sig"""
    def __init__(self, x, st, sig, n):
        self.x, self.st, self.sig, self.n = x, st, sig, n


def task_stat(d, task, field, stream):
    t = d["tasks"].get(task)
    if not t or not t["rows"]:
        return None
    v = column(t["rows"], d["fields"], field)
    if any(e is None for e in v):
        return None
    x = np.array(v, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        return None
    b = d["bootstrap"]
    st = x[draws(b["seed"], stream, b["resamples"], len(x))].mean(axis=1)
    sig = (t["dataset_sha256"], tuple(column(t["rows"], d["fields"], "doc"))) \
        if t["dataset_sha256"] else None
    return Stat(x.mean(), st, sig, len(x))


def run_stats(d):
    """the run's Stat per choice key (None: no records)"""
    b = d["bootstrap"]
    out = {"kld": task_stat(d, "kld", "value", b["stream_kld"]),
           "ppl": task_stat(d, "ppl", "value", b["stream_ppl"])}
    tasks = d["board_tasks"]
    for k, task in enumerate(tasks):
        out[task] = task_stat(d, task, "acc", k)
    ts = [out[t] for t in tasks]
    if tasks and all(ts):
        sig = None if any(t.sig is None for t in ts) else tuple(t.sig for t in ts)
        out["avg"] = Stat(float(np.mean([t.x for t in ts])),
                          np.mean(np.array([t.st for t in ts]), axis=0), sig,
                          sum(t.n for t in ts))
    else:
        out["avg"] = None
    return out


def own(a):
    """(state, estimate, se, resamples) of a run's own statistic a; state None (no records) or 'ok'"""
    if a is None:
        return None, None, None, None
    return "ok", a.x, float(np.std(a.st, ddof=1)), a.st


def pair(a, b):
    """the same for a - b; state None (no records), 'apart' (other documents) or 'ok'"""
    if a is None or b is None:
        return None, None, None, None
    if a.sig is None or a.sig != b.sig:
        return "apart", None, None, None
    st = a.st - b.st
    return "ok", a.x - b.x, float(np.std(st, ddof=1)), st


def crit_of(stmts, level, n_boot):
    """the simultaneous critical value of the statements [(delta, se, resamples)]"""
    maxt = np.zeros(n_boot)
    for delta, se, st in stmts:
        if se > 0:
            maxt = np.maximum(maxt, np.abs(st - delta) / se)
    return float(np.sort(maxt)[int(math.ceil(level * n_boot)) - 1])


def close(a, b):
    return a is not None and b is not None and abs(a - b) <= TOL * max(1.0, abs(b))


def check(what, published, delta, se, crit, bad):
    if published is None or "delta" not in published:
        bad.append(f"{what}: not published")
        return
    lo, hi = delta - crit * se, delta + crit * se
    for name, mine in (("delta", delta), ("lo", lo), ("hi", hi), ("se", se), ("crit", crit)):
        if not close(published.get(name), mine):
            bad.append(f"{what}.{name}: published {published.get(name)!r}, recomputed {mine!r}")
    sig = lo > 0 or hi < 0
    if published.get("significant") != sig:
        bad.append(f"{what}: published significant={published.get('significant')}, recomputed {sig}")


def published_delta(d, key):
    """the published delta object of choice key (the mean KLD for kld)"""
    if key == "kld":
        return (d["tasks"].get("kld") or {}).get("mean_kld")
    if key == "ppl":
        return (d["tasks"].get("ppl") or {}).get("delta_mean_nll")
    if key == "avg":
        return d.get("delta_average")
    return (d["tasks"].get(key) or {}).get("delta_acc")


def check_models(runs, stats, failures):
    """the model families; returns (runs compared with a baseline, numbers checked)"""
    groups = {}
    for rid, d in runs.items():
        if d.get("rank_by"):  # an ok run
            groups.setdefault(d["simultaneous"]["model_group"], []).append(rid)
    n_runs = n_values = 0
    for key, rids in sorted(groups.items(), key=lambda kv: str(kv[0])):
        stmts = []  # (rid, choice, state, delta, se, resamples)
        for rid in sorted(rids):
            d = runs[rid]
            s = stats[rid]
            stmts.append((rid, "kld") + own(s["kld"]))
            base = d.get("baseline_run_id")
            if base is None or base == rid:
                continue
            bs = stats.get(base) if base in runs and runs[base].get("rank_by") else None
            for ch in ["avg", "ppl"] + d["board_tasks"]:
                stmts.append((rid, ch) + pair(s[ch], bs[ch] if bs else None))
        d0 = runs[rids[0]]
        level, n_boot = d0["simultaneous"]["level"], d0["bootstrap"]["resamples"]
        ok = [(t[3], t[4], t[5]) for t in stmts if t[2] == "ok"]
        crit = crit_of(ok, level, n_boot)
        per_run = {}
        for rid, ch, state, delta, se, st in stmts:
            bad = per_run.setdefault(rid, [])
            pub = published_delta(runs[rid], ch)
            if state == "ok":
                check(ch, pub, delta, se, crit, bad)
                n_values += 5
            elif state == "apart":
                if pub not in (None, {"state": "other documents"}):
                    bad.append(f"{ch}: documents differ from the baseline's but a delta was published")
            elif pub is not None and ch != "kld":
                bad.append(f"{ch}: no records to compare, but {pub!r} was published")
        for rid in sorted(rids):
            d = runs[rid]
            bad = per_run.get(rid, [])
            if not close(d["simultaneous"]["model_crit"], crit) and ok:
                bad.append(f"model_crit: published {d['simultaneous']['model_crit']!r}, "
                           f"recomputed {crit!r}")
            if d["simultaneous"]["model_statements"] != len(ok):
                bad.append(f"model_statements: published {d['simultaneous']['model_statements']}, "
                           f"recomputed {len(ok)}")
            base = d.get("baseline_run_id")
            if base is not None and base != rid:
                avg = d.get("delta_average") or {}
                print(f"run {rid} vs baseline {base}: average delta {avg.get('delta')} "
                      f"[{avg.get('lo')}, {avg.get('hi')}] (crit {crit:.3f} over {len(ok)} "
                      f"statements): {'MISMATCH' if bad else 'agrees'}")
                n_runs += 1
            failures += [f"run {rid}: {m}" for m in bad]
    return n_runs, n_values


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


def check_bands(runs, stats, failures):
    """the pair families and rank-by bands of every choice; returns (choices, pairs checked)"""
    keys = set()
    for d in runs.values():
        keys.update((d.get("rank_by") or {}).keys())
    board = sorted(rid for rid, d in runs.items() if d.get("rank_by"))
    n_pairs = 0
    for key in sorted(keys):
        d0 = runs[board[0]]
        level, n_boot = d0["simultaneous"]["level"], d0["bootstrap"]["resamples"]
        ok = []
        for i, a in enumerate(board):
            for b in board[i + 1:]:
                st = pair(stats[a].get(key), stats[b].get(key))
                if st[0] == "ok":
                    ok.append(st[1:])
        crit = crit_of(ok, level, n_boot)
        ranked = sorted((runs[rid]["rank_by"][key]["rank"], rid) for rid in board
                        if key in runs[rid]["rank_by"])
        for rank, rid in ranked:
            pub = runs[rid]["rank_by"][key]
            if not close(pub.get("pair_crit"), crit) and ok:
                failures.append(f"run {rid}: rank by {key}: published pair_crit "
                                f"{pub.get('pair_crit')!r}, recomputed {crit!r}")
            if pub.get("pairs") != len(ok):
                failures.append(f"run {rid}: rank by {key}: published pairs {pub.get('pairs')}, "
                                f"recomputed {len(ok)}")
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
            st = pair(stats[up].get(key), stats[lo].get(key))
            if b["score"] is None or st[0] != "ok":
                new_band, what = True, "not comparable"
            else:
                _, delta, se, _ = st
                new_band = abs(delta) > crit * se
                what = "delta %r +- %r" % (delta, crit * se)
            want = a["band"] + 1 if new_band else a["band"]
            n_pairs += 1
            if b["band"] != want:
                failures.append(f"rank by {key}: run {lo} (rank {r2}) has band {b['band']}, "
                                f"recomputed {want} (run {up} above in band {a['band']}, {what})")
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
    stats = {rid: run_stats(d) for rid, d in runs.items()}
    failures = []
    n_checked, n_values = check_models(runs, stats, failures)
    n_choices, n_pairs = check_bands(runs, stats, failures)
    for f in failures:
        print("  " + f)
    print(f"paired_ci: {n_checked} runs against their baseline, {n_values} published numbers "
          f"recomputed, tie bands of {n_choices} rank-by choices checked over {n_pairs} "
          f"neighbouring pairs, {len(failures)} mismatches")
    sys.exit(1 if failures or not n_checked or not n_pairs else 0)


if __name__ == "__main__":
    main()
