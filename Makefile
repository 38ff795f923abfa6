# Two entry points for a fresh machine: `make run` (set up, run the embedded default) and
# `make test` (set up, run the test suite). Both create the virtual environment first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= all
# Extra pip options for the PyTorch install, e.g. a CPU-only wheel index on machines without GPUs.
TORCH_PIP_OPTS ?=

.PHONY: env run test test-cluster lint format clean

env: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements/cpu.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_PIP_OPTS) -r requirements/cpu.txt
	$(BIN)/python -m pip install --quiet -e ".[dev,cluster]"
	touch $@

run: env
	$(BIN)/snakemake --cores $(CORES)
	$(BIN)/snakemake --report results/report.html
	@echo "report: results/report.html"

test: env
	$(BIN)/python -m pytest

# Starts a real single-node SLURM (root; installs Debian packages if missing), runs the profile
# tests against it, and stops it again.
test-cluster: env
	$(BIN)/python -m pytest -m cluster tests/cluster

lint: env
	$(BIN)/ruff check src tests workflow benchmarks
	$(BIN)/ruff format --check src tests workflow benchmarks
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/snakemake --lint

format: env
	$(BIN)/ruff format src tests workflow benchmarks
	$(BIN)/ruff check --fix src tests workflow benchmarks
	$(BIN)/snakefmt Snakefile workflow/rules

clean:
	rm -rf .snakemake data results logs
