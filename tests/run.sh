#!/bin/sh
# Run every test binary in $1 (with the lowbit binary $2 in LOWBIT_BIN for CLI tests), sum their
# "N passed, N failed" lines, and end with "tests: N passed, N failed".  A binary that crashes or
# prints no summary counts as one failure.
dir=$1; export LOWBIT_BIN=$2
passed=0; failed=0
for t in "$dir"/test_*; do
    [ -x "$t" ] || continue
    case "$t" in *.d) continue ;; esac
    out=$("$t" 2>&1); rc=$?
    line=$(printf '%s\n' "$out" | grep -E '^[^ ]+: [0-9]+ passed, [0-9]+ failed$' | tail -1)
    printf '%s\n' "$out" | grep -v -E '^[^ ]+: [0-9]+ passed, [0-9]+ failed$'
    if [ -z "$line" ]; then
        echo "$(basename "$t"): crashed or printed no summary (exit $rc)"
        failed=$((failed + 1)); continue
    fi
    echo "$line"
    p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed/\1/')
    f=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed/\2/')
    passed=$((passed + p)); failed=$((failed + f))
    [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && { echo "$(basename "$t"): exit $rc"; failed=$((failed + 1)); }
done
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
