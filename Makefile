# sloscaler — the two commands: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck layers pytest prometheus chromium clean bench-sim bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## demo: the closed loop on the bundled Azure conversation trace; prints a summary, writes report.html
demo: $(STAMP)
	$(BIN)/sloscaler simulate --scenario azure-conv-h100 --report report.html --json demo-summary.json

## prometheus: install Debian's prometheus (server + promtool) when missing
prometheus:
	@command -v promtool >/dev/null 2>&1 || { \
	  echo "installing Debian package prometheus (for promtool and the real-Prometheus tests)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null) \
	  || echo "warning: could not install prometheus; tests that need it will be skipped"; }

## chromium: install Debian's chromium when missing (the bench report's headless-browser test)
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian package chromium (for the report test in headless Chromium)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null) \
	  || echo "warning: could not install chromium; the report test will be skipped"; }

PY_DIRS := autoscaler predictor policies simulator tests benchmarks

lint: $(STAMP)
	$(BIN)/ruff check $(PY_DIRS)
	$(BIN)/ruff format --check $(PY_DIRS)

typecheck: $(STAMP)
	$(BIN)/mypy autoscaler predictor policies simulator

layers: $(STAMP)
	$(BIN)/lint-imports

pytest: $(STAMP) prometheus chromium
	$(BIN)/pytest -n 2 --durations=15

## test: lint, types, layer contracts and the whole test suite
test: lint typecheck layers pytest

## bench: every policy on every bundled scenario, seeds 1,2,3 (docs/bench.md)
bench: $(STAMP)
	$(BIN)/sloscaler bench --seeds 1,2,3 --out bench-out

bench-sim: $(STAMP)
	$(BIN)/python benchmarks/bench_simulator.py

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
