# sloscaler — the two commands: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck layers pytest system-deps clean bench-sim bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## demo: the closed loop on the bundled Azure conversation trace; prints a summary, writes report.html
demo: $(STAMP)
	$(BIN)/sloscaler simulate --scenario azure-conv-h100 --report report.html --json demo-summary.json

## system-deps: Debian packages the tests use, installed when missing: prometheus (server and
## promtool, the real-Prometheus tests), chromium (the report test in headless Chromium),
## kubectl (rendering the Kustomize overlays)
DEBIAN_TOOLS := promtool:prometheus chromium:chromium kubectl:kubectl
system-deps:
	@missing=""; for pair in $(DEBIAN_TOOLS); do cmd=$${pair%%:*}; pkg=$${pair##*:}; \
	  command -v $$cmd >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then echo "installing Debian packages:$$missing"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends $$missing >/dev/null) \
	  || echo "warning: could not install$$missing; the tests that need them will be skipped"; fi

PY_DIRS := autoscaler predictor policies simulator dashboards tests benchmarks

lint: $(STAMP)
	$(BIN)/ruff check $(PY_DIRS)
	$(BIN)/ruff format --check $(PY_DIRS)

typecheck: $(STAMP)
	$(BIN)/mypy autoscaler predictor policies simulator dashboards

layers: $(STAMP)
	$(BIN)/lint-imports

pytest: $(STAMP) system-deps
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
