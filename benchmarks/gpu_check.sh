#!/usr/bin/env bash
# What a session with a GPU runs, in one budget: the GPUs, `stylevid ops status`, the kernels'
# build, the CUDA tests, the kernels against the reference (benchmarks/ops.py), ffs256 trained at
# 64² and at its own 256² (benchmarks/gpu_train.py: sec/kimg, peak memory, GPU busy share, ADA and
# bfloat16), the temporal discriminator's overhead (benchmarks/train.py), and the disentanglement
# recipe against no teacher (benchmarks/disentangle.py). Ends with a table: step, status, seconds,
# the key figure. Every step runs even if an earlier one failed; the exit status is 1 if any did.
#
#   bash benchmarks/gpu_check.sh                 # .venv's Python
#   PY=python3 bash benchmarks/gpu_check.sh      # the machine's own Python and torch, as they are
#   BUDGET_S=300 OUT=folder ...                  # the budget in seconds, where the logs go
#   DRY_RUN=1 ...                                # the plan: each step's command and limit, as if
#                                                # every step took its whole limit; nothing runs
#
# The first line says which of setup.py's packages that Python lacks, with the pip command. Where
# it cannot import stylevid, stylevid is installed (editable, no dependencies, nothing downloaded)
# into build/gpu-check-venv, a venv that sees that Python's packages; the Python itself is untouched.
#
# Budget: each step's time limit is its weight's share of the time left, counted when it starts
# (limit = left * weight / the weights of it and the steps after it), so a step that ends early
# passes its time on, one that hangs takes only its share, and a smaller BUDGET_S shrinks every
# step alike. The training steps train for a fixed part of their limit and keep the rest for
# start-up and the final snapshot. The default, 500 s, keeps the whole check within 9 minutes.
#
# Writes $OUT/gpu_check.log (everything printed), $OUT/steps/*.log (each step's output),
# $OUT/ops_bench.json, $OUT/gpu_train_64.json and $OUT/gpu_train_256.json.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
OUT=${OUT:-/tmp/stylevid-gpu-check}
BUDGET_S=${BUDGET_S:-500}
DRY_RUN=${DRY_RUN:-0}
CHECK_VENV=build/gpu-check-venv
export PYTHONUNBUFFERED=1 # a step stopped at its limit still leaves its output in the log

# The steps, in order: name, weight (its nominal seconds in the default budget), the function that
# runs it with its limit, and the sed -E script that picks its key figure from its output.
names=() weights=() functions=() figures=()
plan() {
  names+=("$1") weights+=("$2") functions+=("$3") figures+=("$4")
}
plan "GPUs" 5 gpus 's/^(GPU [0-9]+: .*) \(UUID.*/\1/p'
plan "ops status" 15 ops_status 's/^ *(torch .*built for CUDA.*)/\1/p'
plan "kernel build" 45 prebuild 's/^(upfirdn2d|bias_act): (ok in [0-9.]+ s).*/\1 \2/p'
plan "CUDA tests" 45 cuda_tests '/ (passed|failed|errors?|skipped|deselected)( |,|$)/{s/=+//g;s/^ +| +$//g;p}'
plan "kernel benchmark" 60 kernel_benchmark \
  's/^min speedup over all .*: ([0-9.]+x) .*: (PASS|MISS)$/min speedup \1 (\2)/p;s/^bias_act fwd\+bwd speedup: min ([0-9.]+x).*: (PASS|MISS)$/bias_act fwd+bwd min \1 (\2)/p;s/^(speedups: n\/a.*)/\1/p'
plan "ffs256 64x64" 75 train_64 's/^summary: //p'
plan "ffs256 256x256" 100 train_256 's/^summary: //p'
plan "synth64, temporal D" 40 temporal_d 's/^training: ([0-9.]+ sec\/kimg), batch ([0-9]+).*/synth64 \1 at batch \2/p;s/.*, (ratio [0-9.]+)$/temporal D \1 of per-frame/p'
plan "ablation" 120 ablation 's/^\| (full|no_[a-z_]+) \| [0-9.]+ \| ([0-9.]+) .*/\1: leakage \2/p'

# run COMMAND...: COMMAND, or with DRY_RUN=1 only what it would be.
run() {
  if [ "$DRY_RUN" = 1 ]; then
    echo "would run: ${*@Q}"
  else
    "$@"
  fi
}

# limited LIMIT COMMAND...: COMMAND stopped after LIMIT seconds (killed 5 s later if it ignores that).
limited() {
  local limit=$1
  shift
  run timeout -k 5 "$limit" "$@"
}

# part LIMIT NUMERATOR DENOMINATOR: that fraction of LIMIT rounded up, at least 5 (a step's training seconds).
part() {
  local seconds=$((($1 * $2 + $3 - 1) / $3))
  echo $((seconds > 5 ? seconds : 5))
}

gpus() { limited "$1" nvidia-smi -L; }
ops_status() { limited "$1" "$PY" -m stylevid ops status; }

# Both extensions at once: each is one nvcc and one c++ compile, so the two share the cores and
# the build takes the time of the slower one.
prebuild() {
  local op pid pids=() rc=0
  for op in upfirdn2d bias_act; do
    limited "$1" "$PY" -m stylevid ops build --verbose --ops "$op" >"$OUT/steps/build_$op.log" 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do
    wait "$pid" || rc=$?
  done
  cat "$OUT/steps/build_upfirdn2d.log" "$OUT/steps/build_bias_act.log"
  return "$rc"
}

# -m cuda: the nvcc test builds both extensions again, from scratch, for sm_90, which the build step
# has just done for this GPU; it runs in `make test` wherever nvcc exists.
cuda_tests() { limited "$1" "$PY" -m pytest -q -p no:cacheprovider -m cuda tests/custom_ops; }
kernel_benchmark() { limited "$1" "$PY" benchmarks/ops.py --device cuda --json "$OUT/ops_bench.json"; }

# gpu_train.py trains for 45 of 75 (64²) and 60 of 100 (256²) seconds of its limit in the default budget,
# then times each phase over 16 (64²: lazy R1 among them) and 8 (256²) more steps.
train_64() {
  limited "$1" "$PY" benchmarks/gpu_train.py --device cuda --resolution 64 --seconds "$(part "$1" 45 75)" \
    --profile-steps 16 --json "$OUT/gpu_train_64.json"
}
train_256() {
  limited "$1" "$PY" benchmarks/gpu_train.py --device cuda --resolution 256 --seconds "$(part "$1" 60 100)" \
    --profile-steps 8 --json "$OUT/gpu_train_256.json"
}
# synth64's step at batch 8 and 32 (the issue's 7 s/kimg at 32 before the host reads went), and D's cost.
temporal_d() { limited "$1" "$PY" benchmarks/train.py --device cuda --batch 8,32 --steps 24; }

# Two variants, 35 s each of the 120 in the default budget; the rest renders the data and judges them.
ablation() {
  limited "$1" "$PY" benchmarks/disentangle.py --device cuda --variants full,no_teacher \
    --minutes "$(awk "BEGIN {print $(part "$1" 35 120) / 60}")" --data "$OUT/synthetic-64.zip" --out "$OUT/ablation"
}

# The Python to use: $PY if it imports stylevid, else a venv over $PY's packages with stylevid added.
# (Each command ends in `|| return`: bash ignores `set -e` in a function called from `||`.)
python_with_stylevid() {
  local site
  if "$PY" -c "import stylevid.custom_ops" 2>/dev/null; then
    return 0
  fi
  echo "$PY cannot import stylevid: installing it (editable, --no-deps) into $CHECK_VENV, over $PY's packages"
  if [ "$DRY_RUN" = 1 ]; then
    return 0
  fi
  rm -rf "$CHECK_VENV"
  "$PY" -m venv --without-pip "$CHECK_VENV" || return
  site=$("$CHECK_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))') || return
  # site.addsitedir, not a plain list of folders, so that the .pth files there (editable installs) work too.
  "$PY" -c 'import sys; print("import site; " + "; ".join(
    f"site.addsitedir({p!r})" for p in sys.path if p.endswith(("site-packages", "dist-packages"))))' \
    >"$site/machine-python.pth" || return
  "$PY" -m pip --python "$CHECK_VENV/bin/python" install --quiet --no-deps --no-build-isolation -e . || return
  PY=$CHECK_VENV/bin/python
}

statuses=() durations=() keys=() failed=()
dry_spent=0 # seconds a dry run counts as spent: each step's whole limit

# elapsed: seconds of the budget spent so far.
elapsed() { echo $((SECONDS + dry_spent)); }

# step INDEX: run step INDEX with its share of the time left; record status, seconds and key figure.
step() {
  local i=$1 weight_left=0 j left limit started rc log figure status
  for ((j = i; j < ${#weights[@]}; j++)); do
    weight_left=$((weight_left + weights[j]))
  done
  started=$(elapsed)
  left=$((BUDGET_S - started))
  limit=$((left * weights[i] / weight_left))
  limit=$((limit > 1 ? limit : 1)) # `timeout 0` would mean no limit
  log=$OUT/steps/$((i + 1))-${functions[i]}.log
  echo
  echo "=== ${names[i]}: limit $limit s of the $left s left"
  set +e
  "${functions[i]}" "$limit" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  set -e
  if [ "$DRY_RUN" = 1 ]; then
    dry_spent=$((dry_spent + limit))
  fi
  case $rc in
    0) status=$([ "$DRY_RUN" = 1 ] && echo "dry run" || echo ok) ;;
    124 | 137) status="time limit" ;;
    *) status="FAILED ($rc)" ;;
  esac
  if [ "$rc" -eq 0 ]; then
    figure=$(sed -nE "${figures[i]}" "$log" | awk '!seen[$0]++' | paste -sd ';' | sed 's/;/; /g')
  else
    failed+=("${names[i]}")
    figure=""
  fi
  if [ -z "$figure" ]; then # the error, mostly; in a dry run the command
    figure=$(grep -v '^\s*$' "$log" | tail -1 || true)
  fi
  if [ -z "$figure" ] && [ "$status" = "time limit" ]; then
    figure="no output in its $limit s"
  fi
  statuses+=("$status") durations+=($(($(elapsed) - started))) keys+=("${figure:0:100}")
  echo "=== ${names[i]}: $status in $(($(elapsed) - started)) s"
}

table() {
  local i
  printf '\n%-20s %-12s %7s  %s\n' "step" "status" "seconds" "key figure"
  for i in "${!names[@]}"; do
    printf '%-20s %-12s %7s  %s\n' "${names[i]}" "${statuses[i]}" "${durations[i]}" "${keys[i]}"
  done
}

main() {
  local i
  if ! command -v "$PY" >/dev/null; then
    echo "no Python at PY=$PY: make one with \`make .venv/.installed\`, or name the machine's, e.g. PY=python3" >&2
    return 2
  fi
  # Asked first, of the Python as given: the one line to act on before anything else runs. Where
  # stylevid must be installed for it, that takes setuptools with its own bdist_wheel (70.1 on).
  local also=(pytest)
  "$PY" -c "import stylevid.custom_ops" 2>/dev/null || also+=("setuptools>=70.1")
  "$PY" benchmarks/missing_packages.py --also "${also[@]}" || true
  echo "stylevid GPU check, $(date -u '+%Y-%m-%d %H:%M:%S UTC'), python: $PY, budget $BUDGET_S s"
  if ! python_with_stylevid; then
    echo "=== GPU check: stylevid could not be installed for $PY (pip's error above); install what the first line names"
    return 1
  fi
  for i in "${!names[@]}"; do
    step "$i"
  done
  table
  echo
  if [ "$DRY_RUN" = 1 ]; then
    echo "=== GPU check: dry run, nothing ran; $(elapsed) s of the $BUDGET_S s budget if every step took its limit"
    return 0
  fi
  if [ "${#failed[@]}" -eq 0 ]; then
    echo "=== GPU check: every step passed in $SECONDS s"
    return 0
  fi
  echo "=== GPU check: ${#failed[@]} of ${#names[@]} steps failed ($(
    IFS=,
    echo "${failed[*]}"
  )) in $SECONDS s"
  return 1
}

rm -rf "$OUT/steps" && mkdir -p "$OUT/steps"
main 2>&1 | tee "$OUT/gpu_check.log"
