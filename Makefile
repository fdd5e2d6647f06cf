# Two commands do all the set-up on a fresh machine with Python 3.11:
#   make demo   - run the main job on the embedded demo scene
#   make test   - run the test suite
# The virtual environment (~8 GB: torch with its CUDA libraries) is cached outside the clone and keyed
# by constraints.txt, so it is built once per lock file and reused by every clone and CI run.

PYTHON ?= python3.11
LOCK := constraints.txt
LOCK_KEY := $(shell sha256sum $(LOCK) | cut -c1-16)
VENV ?= $(HOME)/.cache/nerfstudio-trim/venv-$(LOCK_KEY)
BIN := $(VENV)/bin
STAMP := $(VENV)/.deps-installed
export PATH := $(BIN):$(PATH)

# PlayCanvas splat-transform (npm), pinned, for the test that opens our PLY with it; cached like the venv.
SPLAT_TRANSFORM_VERSION := 2.7.1
NODE_TOOLS := $(HOME)/.cache/nerfstudio-trim/splat-transform-$(SPLAT_TRANSFORM_VERSION)
SPLAT_TRANSFORM := $(NODE_TOOLS)/node_modules/.bin/splat-transform

# gsply (PyPI) writes and reads SPZ for the format comparison (benchmarks/bench_formats.py); it needs Numba,
# so it gets its own small environment, pinned and cached, instead of joining the pinned one.
GSPLY_VERSION := 0.4.6
GSPLY_VENV := $(HOME)/.cache/nerfstudio-trim/gsply-$(GSPLY_VERSION)
# zstd and constriction's range coder, for the entropy-coder comparison (benchmarks/bench_entropy.py), pinned.
ENTROPY_TOOLS := zstandard==0.25.0 constriction==0.5.0 numpy==2.4.6
ENTROPY_VENV := $(HOME)/.cache/nerfstudio-trim/entropy-tools

.PHONY: demo test env install system tools bench-tools bench scene baseline clean-outputs print-venv

demo: install system
	$(BIN)/python demo/run_demo.py

test: install system tools
	SPLAT_TRANSFORM="$$(test -x $(SPLAT_TRANSFORM) && echo $(SPLAT_TRANSFORM))" $(BIN)/python -m pytest

# Dependencies, once per lock file: the environment's folder name carries the lock file's hash, so
# the stamp has no prerequisite (a fresh clone's newer file times must not trigger a rebuild). The
# stamp is written last: an interrupted build has none, and the next run starts it again.
$(STAMP):
	@echo "Creating the environment in $(VENV) (first time only: ~5 minutes, ~8 GB)"
	rm -rf "$(VENV)"
	$(PYTHON) -m venv "$(VENV)"
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c $(LOCK) torch torchvision
	$(BIN)/python -m pip install -q -c $(LOCK) nerfstudio gsplat pytest setuptools
	touch $(STAMP)

env: $(STAMP)

# Where the environment is, e.g. for running the benchmark scripts: export PATH=$$(make -s print-venv)/bin:$$PATH
print-venv:
	@echo $(VENV)

# This clone's package, editable, into the shared environment (a few seconds; every run, since
# another clone may have installed its own copy since).
# pip's output (setuptools' editable-install warnings) is shown only if the install fails.
install: $(STAMP)
	@out=$$($(BIN)/python -m pip install -q --no-deps --no-build-isolation -e . 2>&1) || { echo "$$out"; exit 1; }
	@$(BIN)/python -c "import nerfstudio_trim, sys; sys.exit(0)"

# What the environment needs from the operating system (open3d's shared libraries): installed with
# apt-get when run as root, otherwise one line naming the package. SYSTEM_INSTALL=no only checks.
system: $(STAMP)
	@$(BIN)/python tools/check_system.py

# Where npm is missing or the registry unreachable, the splat-transform test is skipped, nothing fails.
tools:
	@test -x $(SPLAT_TRANSFORM) || ! command -v npm >/dev/null || \
		npm install --prefix "$(NODE_TOOLS)" --no-audit --no-fund --loglevel=error \
		@playcanvas/splat-transform@$(SPLAT_TRANSFORM_VERSION) >/dev/null 2>&1 || \
		echo "could not install splat-transform with npm: its test will be skipped"

# Everything benchmarks/bench_formats.py compares against; a tool that cannot be installed gets a row saying so.
bench-tools: tools
	@$(GSPLY_VENV)/bin/python -c "import gsply" 2>/dev/null || \
		($(PYTHON) -m venv "$(GSPLY_VENV)" && $(GSPLY_VENV)/bin/pip install -q "gsply[spz]==$(GSPLY_VERSION)") || \
		echo "could not install gsply: bench_formats.py will say so in its SPZ rows"
	@$(ENTROPY_VENV)/bin/python -c "import zstandard, constriction" 2>/dev/null || \
		($(PYTHON) -m venv "$(ENTROPY_VENV)" && $(ENTROPY_VENV)/bin/pip install -q $(ENTROPY_TOOLS)) || \
		echo "could not install zstandard and constriction: bench_entropy.py cannot run"

bench: install
	$(BIN)/python benchmarks/bench_cpu_raster.py

# Re-render the demo scene (Debian's blender, Cycles on CPU; ~5 minutes).
scene:
	blender -b --python demo/make_scene.py -- --out demo/scene

# Retrain the committed demo baseline from scratch on CPU (the schedule used for demo/baseline).
baseline: install
	$(BIN)/python demo/train_baseline.py

clean-outputs:
	rm -rf outputs
