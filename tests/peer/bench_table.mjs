// tests/peer/bench_table.mjs LABEL...: the markdown table of `make bench` (run by tests/bench.sh).
//
// Reads $OUT/LABEL.lowbit.rR.json (`lowbit bench --json`) and $OUT/LABEL.peer.rR.json (the llama.cpp
// peer, --mode speed) for R = 1..$ROUNDS and prints, per model and thread count:
//   tok/s of each engine: median over rounds of each round's median over reps (min-max over rounds);
//   lowbit / llama.cpp: median over rounds of the ratio of the two runs of the same round;
//   best-rep ratio: the fastest single pass of each engine over all reps and rounds, divided (on a
//   shared host other work only ever slows a pass down, so the best passes are the least disturbed);
//   lowbit GFLOP/s (analytic FLOP count of the pass / median time), the fp32 FMA peak lowbit
//   measured in the same process (median over rounds), and each engine's GFLOP/s as % of that
//   peak (llama.cpp's with the same FLOP count per pass, which depends only on the model shape).
// A run that failed or is missing shows as "n/a".
import fs from "node:fs";
import os from "node:os";

const dir = process.env.OUT ?? "out/bench", R = +(process.env.ROUNDS ?? 2);
const ctx = +(process.env.CTX ?? 512), reps = +(process.env.REPS ?? 5);
const read = (f) => { try { return JSON.parse(fs.readFileSync(f, "utf8")); } catch { return null; } };
const median = (a) => {
    const s = [...a].sort((x, y) => x - y), m = s.length >> 1;
    return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
// "median (min-max)" over rounds, or n/a; the range only when there is more than one value
const fmt = (a, d = 1, unit = "") => {
    a = a.filter((x) => Number.isFinite(x));
    if (!a.length) return "n/a";
    const m = median(a).toFixed(d) + unit;
    return a.length > 1 ? `${m} (${Math.min(...a).toFixed(d)}-${Math.max(...a).toFixed(d)})` : m;
};
const pct = (a) => fmt(a.map((x) => 100 * x), 1, "%");

const labels = process.argv.slice(2);
let isa = null, peerInfo = null, cpu = os.cpus()[0]?.model ?? "?";
const rows = [], targets = [];
for (const label of labels) {
    const lo = [], pe = [];
    for (let r = 1; r <= R; r++) {
        lo.push(read(`${dir}/${label}.lowbit.r${r}.json`));
        pe.push(read(`${dir}/${label}.peer.r${r}.json`));
    }
    const anyLo = lo.find(Boolean), anyPe = pe.find(Boolean);
    isa ??= anyLo?.isa;
    peerInfo ??= anyPe;
    let bytes = anyPe?.model_bytes;
    try { bytes ??= fs.statSync(anyLo.model).size; } catch { /* no run to name the file */ }
    const threads = [...new Set([...(anyLo?.runs ?? []).map((x) => x.threads_asked),
                                 ...(anyPe?.runs ?? []).map((x) => x.threads_asked)])].sort((a, b) => a - b);
    for (const t of threads) {
        const l = lo.map((j) => j?.runs.find((x) => x.threads_asked === t));
        const p = pe.map((j) => j?.runs.find((x) => x.threads_asked === t));
        const flops = lo.map((j) => j?.flops_per_pass);
        const ltok = l.map((x) => x?.tok_s_median), ptok = p.map((x) => x?.prefill?.tok_s_median);
        const peak = l.map((x) => x?.fma_peak_gflops);
        const fl = flops.find(Number.isFinite);
        const pFrac = ptok.map((v, i) => v * fl / ctx / 1e9 / peak[i]);
        const best = (runs, secs) => { const a = runs.flatMap((x) => secs(x) ?? []); return a.length ? ctx / Math.min(...a) : NaN; };
        const bestRatio = best(l, (x) => x?.seconds) / best(p, (x) => x?.prefill?.seconds);
        rows.push(`| ${label} | ${bytes ? (bytes / 2 ** 20).toFixed(1) : "?"} | ${t} | ${fmt(ltok)} | ${fmt(ptok)} | ` +
            `${fmt(ltok.map((v, i) => v / ptok[i]), 3)} | ${fmt([bestRatio], 3)} | ${fmt(l.map((x) => x?.gflops))} | ${fmt(peak)} | ` +
            `${pct(l.map((x) => x?.peak_fraction))} | ${pct(pFrac)} |`);
        if (anyLo?.dtype === "f32" && l.some((x) => x)) {
            const f = median(l.filter((x) => x).map((x) => x.peak_fraction));
            targets.push(`${label}, ${t} thread${t > 1 ? "s" : ""}: ${(100 * f).toFixed(1)}% of peak, ` +
                `${f >= 0.5 ? "met" : "NOT met"}`);
        }
        if (l.some((x) => x) && lo.some((j) => j && !j.logits_identical))
            rows.push(`| ${label} | | ${t} | logits differ between runs/threads or are not finite (see ${dir}/${label}.lowbit.r*.log) | | | | | | | |`);
    }
}

const out = [];
out.push(`# make bench: prefill pp${ctx}, lowbit vs llama.cpp, measured in the same run`, "");
out.push(`${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC; CPU ${cpu}, ${os.cpus().length} vCPUs; ` +
    `lowbit kernels ${isa ?? "n/a"}; llama.cpp ${peerInfo ? `${peerInfo.llama_cpp?.release} (${peerInfo.build}, ` +
    `node-llama-cpp 3.22.1 via @node-llama-cpp/linux-x64)` : "n/a"}.`, "");
out.push(`Prefill of ${ctx} tokens in one batch from an empty cache, logits for the last position only; ` +
    `1 warm-up + ${reps} timed pass${reps > 1 ? "es" : ""}, median. ${R} round${R !== 1 ? "s" : ""}, the engines interleaved: median over rounds ` +
    `(min-max over rounds). Ratio = median of the per-round ratios; best-rep ratio = fastest single pass of ` +
    `each engine over all reps and rounds (the least disturbed by other work on this shared host). GFLOP/s: analytic FLOPs of the pass ` +
    `(matmuls, causal attention, one output row); FMA peak: fp32 FMA loop measured by lowbit in the same ` +
    `process; llama.cpp's % of peak uses the same FLOP count and peak.`, "");
out.push("| model | file MiB | threads | lowbit tok/s | llama.cpp tok/s | lowbit / llama.cpp | best-rep ratio | lowbit GFLOP/s | " +
    "FMA peak GFLOP/s | lowbit % of peak | llama.cpp % of peak |");
out.push("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
out.push(...rows);
if (targets.length) out.push("", `Target F32 prefill >= 50% of the FMA peak: ${targets.join("; ")}.`);
if (process.env.LOAD_BEFORE)
    out.push("", `Load average (1, 5, 15 min) before / after the runs: ${process.env.LOAD_BEFORE} / ` +
        `${process.env.LOAD_AFTER}; other processes on this ${os.cpus().length}-vCPU host slow both engines, ` +
        "the 2-thread runs most." + (+process.env.NOISY ? ` ${process.env.NOISY} of ${process.env.RUNS} runs ` +
        "started while other work kept the host over 15% busy." : ""));
console.log(out.join("\n"));
