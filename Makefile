# Two entry points for a fresh machine: `make demo` and `make test`.
# torch is installed first, pinned, so that nothing later pulls a CUDA build.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.socmap-installed
DEMO_OUT ?= demo_output
# Two workers on the 2-core CI; a test file stays on one worker, in order (module fixtures).
PYTEST_ARGS ?= --durations=25 -n 2 --dist loadfile

.PHONY: install browser peers demo test lint typecheck bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[dev,ee]"
	touch $(STAMP)

install: $(STAMP)

# Headless Chromium for the report render test (Debian package; needs apt and root).
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

demo: $(STAMP)
	$(BIN)/socmap demo --out $(DEMO_OUT)

test: $(STAMP) browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP) peers
	$(BIN)/python benchmarks/bench_cube.py
	$(BIN)/python benchmarks/bench_depth.py
	$(BIN)/python benchmarks/bench_profiles.py
	$(BIN)/python benchmarks/bench_pretrain.py          # rewrites the shipped bundle (same seed, same weights)
	$(BIN)/python benchmarks/bench_edgeroi_transfer.py
	$(BIN)/python benchmarks/bench_transfer_regions.py --quick   # the full grid: without --quick, resumable
	$(BIN)/python benchmarks/bench_predict.py --max-pixel-passes 1.7e7
	$(BIN)/python benchmarks/bench_predict_peers.py    # beside R terra + ranger (make peers)

# R terra + ranger, the peers of benchmarks/bench_predict_peers.py (Debian packages)
peers:
	@command -v Rscript >/dev/null 2>&1 && Rscript -e 'library(terra); library(ranger)' >/dev/null 2>&1 || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq r-cran-terra r-cran-ranger)

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .mypy_cache .ruff_cache
