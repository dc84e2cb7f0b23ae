#!/usr/bin/env bash
# CI's short run on the other supported Python (3.12; `make test` covers 3.11) with the lowest
# supported torch (.ci/lowest-torch.txt): install into build/venv312, import every module, run the
# version tests, the kernels' tests (nvcc build, CPU emulation against the reference, bfloat16
# autocast), whole training steps of both presets through the emulated kernels under bfloat16 and
# the device stand-ins (no host read in a step), then train synth64 on the CPU past the start of
# the pair terms, resume, and generate.
#
#   bash .ci/other_python.sh        # OTHER_PYTHON=/path/to/python3.12 overrides the search
#
# PyPI has no CPU-only torch 2.11 (its +cpu builds live on PyTorch's own index), so pip takes the
# CUDA build: about 1.9 GB of downloads, 80 s here, 4.7 GB in the venv. The venv is reused while
# setup.py and the constraints are older than it. Ends with one line saying what passed; the exit
# status is nonzero if any step failed.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=3.12
VENV=build/venv312
WORK=build/py312-run # the run's data, run folders and kernel builds, made anew each time
started=$SECONDS

# The interpreter: $OTHER_PYTHON, else python3.12 on PATH (a pyenv shim there fails unless that
# version is selected, so each candidate must run), else pyenv's installed 3.12.x, else Debian's.
find_python() {
  local pyenv_root candidate
  pyenv_root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
  for candidate in ${OTHER_PYTHON:-} "python$VERSION" "$pyenv_root"/versions/"$VERSION".*/bin/"python$VERSION" \
    "/usr/bin/python$VERSION"; do
    if [ "$("$candidate" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$VERSION" ]; then
      command -v "$candidate"
      return 0
    fi
  done
  echo "no Python $VERSION found (tried \$OTHER_PYTHON, python$VERSION on PATH, $pyenv_root/versions/$VERSION.*," \
    "/usr/bin/python$VERSION); install one (e.g. \`pyenv install $VERSION\`) or set OTHER_PYTHON" >&2
  return 1
}

install() {
  local python
  python=$(find_python)
  if [ -f "$VENV/.installed" ] && [ "$VENV/.installed" -nt setup.py ] && [ "$VENV/.installed" -nt .ci/lowest-torch.txt ]; then
    echo "reusing $VENV"
    return 0
  fi
  rm -rf "$VENV"
  "$python" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet --constraint .ci/lowest-torch.txt -e . pytest
  touch "$VENV/.installed"
}

# Every module of the four folders, so a torch API missing from the lowest release fails here
# even where no test reaches it.
import_all() {
  "$VENV/bin/python" - <<'PY'
import importlib
import pkgutil
import sys

import torch
import torchvision

names = set()
for top in ("stylevid", "stylevid.custom_ops", "stylevid.training", "stylevid.metrics"):
    package = importlib.import_module(top)
    names.update(m.name for m in pkgutil.walk_packages(package.__path__, top + "."))
for name in sorted(n for n in names if not n.endswith("__main__")):
    importlib.import_module(name)
print(f"Python {sys.version.split()[0]}, torch {torch.__version__}, torchvision {torchvision.__version__}:"
      f" {len(names)} modules import")
PY
}

tests() {
  "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/test_versions.py tests/custom_ops \
    tests/training/test_emulated_step.py tests/training/test_device.py
}

# synth64 on the CPU: 44 steps of 8 clips (0.35 kimg) reach lazy R1 and the pair terms (they start
# at 0.3 kimg), then a resume adds a tick and a video is generated.
train() {
  local run=$WORK/runs/00000-synth64
  "$VENV/bin/python" -m stylevid synth --out "$WORK/synthetic.zip" --videos 8 --frames 8 --resolution 64
  "$VENV/bin/python" -m stylevid train --data "$WORK/synthetic.zip" --preset synth64 --kimg 0.35 \
    --out "$WORK/runs" --device cpu
  "$VENV/bin/python" -m stylevid train --resume "$run" --kimg 0.4 --device cpu
  "$VENV/bin/python" -m stylevid generate --network "$run/$(sed -nE 's/.*"snapshot": "(.*)".*/\1/p' "$run/latest.json")" \
    --seeds 0 --frames 8 --out "$WORK/videos" --device cpu
}

passed=() failed=()
# run_step NAME FUNCTION: the function in a subshell, where `set -e` holds (bash ignores it in a
# function called from an `if` or `||`), so its first failing command fails the step.
run_step() {
  local name=$1 step_started=$SECONDS rc
  echo "=== $name"
  set +e
  (
    set -e
    "$2"
  )
  rc=$?
  set -e
  if [ "$rc" -eq 0 ]; then
    passed+=("$name ($((SECONDS - step_started)) s)")
  else
    failed+=("$name")
    echo "=== $name: FAILED (exit status $rc)"
  fi
}

rm -rf "$WORK" && mkdir -p "$WORK"
export STYLEVID_CACHE_DIR=$WORK/cache # kernels built anew, as on a fresh machine
run_step install install
if [ "${#failed[@]}" -eq 0 ]; then
  run_step imports import_all
  run_step tests tests
  run_step training train
fi
summary="${#passed[@]} of $((${#passed[@]} + ${#failed[@]})) steps passed in $((SECONDS - started)) s"
if [ "${#failed[@]}" -eq 0 ]; then
  echo "=== Python $VERSION with the lowest torch: $summary: ${passed[*]}"
else
  echo "=== Python $VERSION with the lowest torch: FAILED: ${failed[*]}; $summary"
  exit 1
fi
