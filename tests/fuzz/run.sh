#!/bin/sh
# tests/fuzz/run.sh TARGET [SECONDS] [BUILD_DIR]: run one libFuzzer target for SECONDS (default
# 600) on its corpus out/fuzz/corpus/TARGET (grown in place), crash/leak/timeout inputs to
# out/fuzz/crashes/TARGET/, libFuzzer's log to out/fuzz/logs/TARGET.log; then one summary line:
#   fuzz TARGET: N execs in S s (wall clock) (E exec/s), cov: C ft: F, corpus K, crashes X
# Exit status 1 when the run left a crash, leak, timeout or OOM input.
set -u
t=${1:?usage: tests/fuzz/run.sh TARGET [SECONDS] [BUILD_DIR]}
secs=${2:-600}
bin=${3:-out/build-fuzz}/fuzz/fuzz_$t
[ -x "$bin" ] || { echo "fuzz $t: $bin is not built (make fuzz-build)" >&2; exit 2; }
LOWBIT_DATA=${LOWBIT_DATA:-../shared/data}
export LOWBIT_DATA
corpus=out/fuzz/corpus/$t
crashes=out/fuzz/crashes/$t
log=out/fuzz/logs/$t.log
mkdir -p "$corpus" "$crashes" out/fuzz/logs
before=$(ls "$crashes" | wc -l)
# the scratch directory the target makes (symlinks, import output), removed afterwards
mkdir -p out/fuzz/tmp
tmp=$(mktemp -d "$(pwd)/out/fuzz/tmp/$t.XXXXXX")
t0=$(date +%s)
TMPDIR=$tmp \
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
"$bin" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$crashes/" "$corpus" > "$log" 2>&1
rc=$?
rm -rf "$tmp"
elapsed=$(($(date +%s) - t0))
after=$(ls "$crashes" | wc -l)
# the last status line ("#N DONE|pulse|NEW cov: C ft: F corp: K/..b ... exec/s: E") and the
# final stats
last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
eps=$(grep -E '^stat::average_exec_per_sec' "$log" | awk '{print $2}')
cov=$(echo "$last" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
ft=$(echo "$last" | sed -n 's/.*ft: \([0-9]*\).*/\1/p')
corp=$(echo "$last" | sed -n 's/.*corp: \([0-9]*\).*/\1/p')
new=$((after - before))
echo "fuzz $t: ${execs:-?} execs in ${elapsed} s (${eps:-?} exec/s), cov: ${cov:-?} ft: ${ft:-?}," \
     "corpus ${corp:-?}, crashes $new (exit $rc; log $log)"
if [ "$new" -gt 0 ] || [ "$rc" -ne 0 ]; then
    grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error)' "$log" | head -n 5 >&2
    ls -t "$crashes" | head -n "$new" | sed "s|^|  $crashes/|" >&2
    exit 1
fi
exit 0
