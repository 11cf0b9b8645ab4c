#!/bin/sh
# tests/unattended.sh: the nightly run as CI does it, twice, with damage in between (issue 10):
#   1. make report (the full default matrix: gen/models.csv × gen/recipes.csv, default tasks),
#   2. delete one artifact of a finished job (OUT/artifacts/<key>/),
#   3. make report again,
# then check that every job of the plan has exactly one result file and one row in the database,
# the deleted artifact is back (its job ran again) and nothing else ran again, every run that was
# ok is still ok with the same scores, the database passes integrity_check and the site is whole.
# Run from a checkout (make deps done); takes as long as two reports (the second is the re-run
# job plus collect and render). Prints one line per check and ends with "unattended: ok" or exits 1.
set -e
MAKE=${MAKE:-make}
OUT=out
DB=$OUT/lowbit.db
PY=/usr/bin/python3
fail() { echo "unattended: FAILED: $*" >&2; exit 1; }
q() { $PY -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); r=c.execute(sys.argv[2]).fetchall(); print("\n".join("|".join("" if v is None else str(v) for v in row) for row in r))' "$DB" "$1"; }

t0=$(date +%s)
$MAKE report REPORT_ARGS=--quiet >"$OUT.unattended-1.log" 2>&1 || { tail -20 "$OUT.unattended-1.log"; fail "the first make report failed"; }
t1=$(date +%s)
n_jobs=$("$OUT/lowbit" status | sed -n 's/^\([0-9]*\) jobs:.*/\1/p' | tail -1)
n_runs=$(q "SELECT count(*) FROM runs")
n_ok=$(q "SELECT count(*) FROM runs WHERE status = 'ok'")
echo "unattended: first report: $n_runs runs ($n_ok ok) of $n_jobs planned jobs in $((t1 - t0)) s"
[ -n "$n_jobs" ] && [ "$n_runs" = "$n_jobs" ] || fail "$n_runs runs for $n_jobs jobs"
scores1=$(q "SELECT r.job_key, s.task, s.metric, printf('%.17g', s.value) FROM scores s JOIN runs r ON r.id = s.run_id ORDER BY 1, 2, 3")

# the damage: one finished job's artifact
victim=$(q "SELECT job_key, artifact_path FROM runs WHERE status = 'ok' AND artifact_path IS NOT NULL ORDER BY job_key LIMIT 1")
key=${victim%%|*}; art=${victim#*|}
[ -n "$key" ] && [ -e "$OUT/$art" ] || fail "no ok run with an artifact to delete"
rm -rf "$OUT/artifacts/$key"
echo "unattended: deleted $OUT/artifacts/$key ($art)"

$MAKE report REPORT_ARGS= >"$OUT.unattended-2.log" 2>&1 || { tail -20 "$OUT.unattended-2.log"; fail "the second make report failed"; }
t2=$(date +%s)
grep -q "is missing (deleted?); running the job again" "$OUT.unattended-2.log" || fail "the deleted artifact was not noticed"
grep -q "1 to run" "$OUT.unattended-2.log" || fail "the second run ran more (or less) than the one job: $(grep 'to run' "$OUT.unattended-2.log")"
[ -e "$OUT/$art" ] || fail "the artifact $OUT/$art was not rebuilt"
echo "unattended: second report: the one job ran again, artifact rebuilt, in $((t2 - t1)) s"

# every result present once
n_runs2=$(q "SELECT count(*) FROM runs")
dups=$(q "SELECT model_id, recipe_id, count(*) FROM runs GROUP BY 1, 2 HAVING count(*) > 1")
n_files=$(ls "$OUT/results" | grep -c '^[0-9a-f]*\.json$')
[ "$n_runs2" = "$n_jobs" ] || fail "$n_runs2 runs after the second report, $n_jobs jobs planned"
[ -z "$dups" ] || fail "duplicate runs: $dups"
[ "$n_files" = "$n_jobs" ] || fail "$n_files result files for $n_jobs jobs"
[ "$(q "SELECT count(*) FROM runs WHERE status = 'ok'")" = "$n_ok" ] || fail "the ok count changed"
scores2=$(q "SELECT r.job_key, s.task, s.metric, printf('%.17g', s.value) FROM scores s JOIN runs r ON r.id = s.run_id ORDER BY 1, 2, 3")
[ "$scores1" = "$scores2" ] || fail "scores changed between the two reports"
[ "$(q "PRAGMA integrity_check")" = ok ] || fail "integrity_check"
[ -f "$OUT/site/index.html" ] && [ -f "$OUT/site/data/lowbit.db" ] || fail "the site is incomplete"
[ -z "$(find "$OUT" -maxdepth 3 -name '*.tmp*' | head -1)" ] || fail "temporary files left: $(find "$OUT" -maxdepth 3 -name '*.tmp*' | head -3)"
echo "unattended: $n_jobs jobs, each with one result file and one run; scores identical; integrity ok; site whole"
echo "unattended: ok"
