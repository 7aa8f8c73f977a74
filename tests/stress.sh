#!/usr/bin/env bash
# Run the whole suite STRESS_RUNS times beside STRESS_LOAD busy loops; print each run's failures and a summary.
# Usage: tests/stress.sh [pytest args...]  (make test-stress). Exits 1 if any run failed.
set -u
runs=${STRESS_RUNS:-5}
load=${STRESS_LOAD:-2}
logs=${STRESS_LOG_DIR:-$(mktemp -d -t aura-stress.XXXXXX)}
pytest=${PYTEST:-.venv/bin/pytest}
mkdir -p "$logs"

busy=()
stop_load() {
  # Only the loops started here, by pid: never a broad pkill.
  for pid in "${busy[@]}"; do kill "$pid" 2>/dev/null; done
  busy=()
}
trap stop_load EXIT
trap 'exit 130' INT TERM

for _ in $(seq 1 "$load"); do
  yes >/dev/null &
  busy+=("$!")
done
echo "stress: $runs run(s) beside $load busy loop(s) (pids ${busy[*]:-none}); load average $(cut -d' ' -f1-3 /proc/loadavg); logs in $logs"

failed_runs=0
for n in $(seq 1 "$runs"); do
  log="$logs/run-$n.log"
  began=$(date +%s)
  "$pytest" -q -p no:cacheprovider -rfE "$@" >"$log" 2>&1
  code=$?
  took=$(($(date +%s) - began))
  counts=$(grep -E '^=*.* in [0-9.]+s' "$log" | tail -1 | sed -E 's/^=+ //; s/ =+$//')
  if [ "$code" -eq 0 ]; then
    echo "run $n: pass ($counts, ${took} s)"
  else
    failed_runs=$((failed_runs + 1))
    echo "run $n: FAIL exit $code (${counts:-no summary line}, ${took} s), log $log"
    grep -E '^(FAILED|ERROR) ' "$log" | sed -E 's/^(FAILED|ERROR) ([^ ]+).*/  \1 \2/'
  fi
done

echo "stress summary: $((runs - failed_runs))/$runs run(s) passed beside $load busy loop(s); logs in $logs"
[ "$failed_runs" -eq 0 ]
