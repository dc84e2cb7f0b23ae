#!/usr/bin/env bash
# What a session with a GPU runs: build the CUDA kernels, run the CUDA tests, time the kernels
# against the reference, train ffs256-shaped networks at 64² for three minutes (ADA from p 0.3,
# bfloat16; benchmarks/gpu_train.py), and time the temporal discriminator against its per-frame
# path (benchmarks/train.py), and run the disentanglement ablation's full recipe against no teacher
# for a minute each (benchmarks/disentangle.py). Every step runs even if an earlier one failed; the summary at the
# end names the failures and the exit status is nonzero if there were any. Uses the repository's
# .venv as carried over (a GPU box may be offline, so nothing is installed).
#
#   bash benchmarks/gpu_check.sh          # PY=path/to/python and OUT=folder override the defaults
#
# Writes $OUT/gpu_check.log (everything printed), $OUT/ops_bench.json (the benchmark rows) and
# $OUT/gpu_train.json (the training run's summary).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
OUT=${OUT:-/tmp}
# The whole check fits one 8-minute device slot: each step's time limit comes out of this budget,
# and the later steps keep their shares even when the build or the tests run long or hang.
BUDGET_S=${BUDGET_S:-470}
TRAIN_S=${TRAIN_S:-120}      # seconds of training in gpu_train.py
TRAIN_EXTRA_S=40             # gpu_train.py around them: start-up, networks, last tick, final snapshot
ABLATION_S=${ABLATION_S:-60}  # training seconds per variant in benchmarks/disentangle.py
ABLATION_RESERVE_S=$((2 * ABLATION_S + 50))  # two variants, their evaluation and the start-up
TRAIN_BENCH_RESERVE_S=$((45 + ABLATION_RESERVE_S)) # benchmarks/train.py and after it
TRAINING_RESERVE_S=$((TRAIN_S + TRAIN_EXTRA_S + TRAIN_BENCH_RESERVE_S))
BENCH_RESERVE_S=$((75 + TRAINING_RESERVE_S)) # benchmarks/ops.py and everything after it
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

# train_seconds LIMIT: the training time that leaves TRAIN_EXTRA_S of a LIMIT-second step (at least 10).
train_seconds() {
  local seconds=$(($1 - TRAIN_EXTRA_S))
  echo $((seconds > 10 ? seconds : 10))
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
  # -m cuda: the nvcc test builds both extensions again, from scratch, for sm_90, which prebuild has
  # just done for this GPU; it runs in `make test` wherever nvcc exists.
  step "CUDA tests" timeout "$(limit 300 "$BENCH_RESERVE_S")" \
    "$PY" -m pytest -q -m cuda tests/custom_ops
  step "benchmark" timeout "$(limit 300 "$TRAINING_RESERVE_S")" \
    "$PY" benchmarks/ops.py --device cuda --json "$OUT/ops_bench.json"
  local train_limit
  train_limit=$(limit $((TRAIN_S + TRAIN_EXTRA_S)) "$TRAIN_BENCH_RESERVE_S")
  step "training" timeout "$train_limit" "$PY" benchmarks/gpu_train.py --device cuda \
    --seconds "$(train_seconds "$train_limit")" --json "$OUT/gpu_train.json"
  step "temporal D overhead" timeout "$(limit 120 "$ABLATION_RESERVE_S")" "$PY" benchmarks/train.py --device cuda
  step "disentanglement ablation" timeout "$(limit "$ABLATION_RESERVE_S")" "$PY" benchmarks/disentangle.py \
    --device cuda --minutes "$(awk "BEGIN {print $ABLATION_S / 60}")" --variants full,no_teacher \
    --data "$OUT/synthetic-64.zip" --out "$OUT/ablation"
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
