# CityOS developer tasks. `make test` is what CI runs (see .ci/run).

PY ?= $(if $(shell command -v python3.11),python3.11,python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CODE := src tests benchmarks

.PHONY: setup demo test lint bench clean

# Reinstall only when pyproject.toml changes (the stamp is older than it).
setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -e '.[test]'
	touch $(STAMP)

demo: setup
	$(BIN)/cityos demo

test: setup
	$(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check $(CODE)
	$(BIN)/ruff format --check $(CODE)

bench: setup
	$(BIN)/python benchmarks/hub.py

# Build outputs and caches; the virtualenv stays (remove it with `rm -rf .venv`).
clean:
	rm -rf build dist src/*.egg-info .pytest_cache .ruff_cache .hypothesis
	find src tests benchmarks -name __pycache__ -type d -prune -exec rm -rf {} +
