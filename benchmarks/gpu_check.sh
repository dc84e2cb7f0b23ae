#!/usr/bin/env bash
# What a session with a GPU runs: build the CUDA kernels, run the CUDA and nvcc tests, time the
# kernels against the reference. Every step runs even if an earlier one failed; the summary at
# the end names the failures and the exit status is nonzero if there were any. Uses the
# repository's .venv as carried over (a GPU box may be offline, so nothing is installed).
#
#   bash benchmarks/gpu_check.sh          # PY=path/to/python and OUT=folder override the defaults
#
# Writes $OUT/gpu_check.log (everything printed) and $OUT/ops_bench.json (the benchmark rows).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
OUT=${OUT:-/tmp}
# The whole check fits one 5-minute device slot: each step's time limit comes out of this budget,
# and the benchmark keeps its share even when the build or the tests run long or hang.
BUDGET_S=${BUDGET_S:-290}
BENCH_RESERVE_S=75
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 # a step stopped at its limit still leaves its output in the log

failed=()

# limit MAX [RESERVE]: seconds a step may take: at most MAX, and no more of the budget than
# leaves RESERVE for later steps (at least 1, since `timeout 0` would mean no limit).
limit() {
  local left=$((BUDGET_S - SECONDS - ${2:-0}))
  left=$((left < $1 ? left : $1))
  echo $((left > 1 ? left : 1))
}

# step NAME COMMAND...: run COMMAND, print its duration, record a failure and carry on.
step() {
  local name=$1 started=$SECONDS rc=0
  shift
  echo
  echo "=== $name: ${*@Q}"
  "$@" || rc=$?
  if [ "$rc" -eq 0 ]; then
    echo "=== $name: ok in $((SECONDS - started)) s"
  else
    if [ "$rc" -eq 124 ]; then echo "=== $name: stopped at its time limit"; fi
    echo "=== $name: FAILED (exit status $rc) after $((SECONDS - started)) s"
    failed+=("$name (exit status $rc)")
  fi
}

# Both extensions at once: each is one nvcc and one c++ compile, so the two share the cores and
# the build takes the time of the slower one. LIMIT_S bounds each.
prebuild() {
  local limit_s=$1 op pid pids=() rc=0
  for op in upfirdn2d bias_act; do
    timeout "$limit_s" "$PY" -m stylevid ops build --verbose --ops "$op" >"$OUT/build_$op.log" 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do
    wait "$pid" || rc=$?
  done
  cat "$OUT/build_upfirdn2d.log" "$OUT/build_bias_act.log"
  return "$rc"
}

main() {
  echo "stylevid GPU check, $(date -u '+%Y-%m-%d %H:%M:%S UTC'), python: $PY, budget $BUDGET_S s"
  step "GPUs" timeout 15 nvidia-smi -L
  step "ops status" timeout 30 "$PY" -m stylevid ops status
  step "prebuild" prebuild "$(limit 150 "$BENCH_RESERVE_S")"
  step "CUDA and nvcc tests" timeout "$(limit 300 "$BENCH_RESERVE_S")" \
    "$PY" -m pytest -q -m "cuda or nvcc" tests/custom_ops
  step "benchmark" timeout "$(limit 300)" "$PY" benchmarks/ops.py --device cuda --json "$OUT/ops_bench.json"
  echo
  if [ "${#failed[@]}" -eq 0 ]; then
    echo "=== GPU check: every step passed in $SECONDS s"
    return 0
  fi
  echo "=== GPU check: ${#failed[@]} step(s) failed, $SECONDS s in all:"
  printf '  - %s\n' "${failed[@]}"
  return 1
}

main 2>&1 | tee "$OUT/gpu_check.log"
