# CityOS developer tasks. `make test` is what CI runs (see .ci/run).

PY ?= $(if $(shell command -v python3.11),python3.11,python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CODE := src tests benchmarks

.PHONY: setup interop citylearn demo test test-fast lint bench clean

# Reinstall only when pyproject.toml changes (the stamp is older than it).
setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -e '.[test]'
	touch $(STAMP)

# Third-party NGSI-LD clients that tests/interop drives the hub with, each in its own
# virtualenv (their pinned dependencies clash with ours and with each other's); each is
# rebuilt when its tests/interop/requirements-<client>.txt changes.
INTEROP := .venv-interop
INTEROP_CLIENTS := ngsildclient filip

interop: $(INTEROP_CLIENTS:%=$(INTEROP)/%/.installed)

$(INTEROP)/%/.installed: tests/interop/requirements-%.txt
	test -x $(INTEROP)/$*/bin/python || $(PY) -m venv $(INTEROP)/$*
	echo '*' > $(INTEROP)/.gitignore
	$(INTEROP)/$*/bin/pip install -q -r $<
	touch $@

# CityLearn 1.3.6 (the 2022 challenge's simulator; its phase_1 data ships in the wheel) in its
# own virtualenv: it needs numpy<2 and gym 0.24, which clash with ours. The energy service
# drives it over a pipe (src/cityos/services/energy/sim/citylearn.py). Rebuilt when the
# requirements file changes; citylearn itself goes in with --no-deps (its metadata pins
# versions with no wheels for Python 3.11), named on the file's `# no-deps:` line.
CITYLEARN := .venv-citylearn
CITYLEARN_REQ := src/cityos/services/energy/sim/requirements-citylearn.txt

citylearn: $(CITYLEARN)/.installed

$(CITYLEARN)/.installed: $(CITYLEARN_REQ)
	test -x $(CITYLEARN)/bin/python || $(PY) -m venv $(CITYLEARN)
	$(CITYLEARN)/bin/pip install -q -r $<
	$(CITYLEARN)/bin/pip install -q --no-deps $$(sed -n 's/^# no-deps: *//p' $<)
	touch $@

demo: setup
	$(BIN)/cityos demo

test: setup interop citylearn
	$(BIN)/pytest -q

# What a developer runs between edits: the suite less the slow tests (the fuzzers, the
# interop clients, several workers, kill -9) and those that start SUMO: 4 minutes on two
# cores. PostgreSQL and Mosquitto tests still run when the servers are there (else skip);
# `pytest -m "not slow and not sumo and not postgres and not mqtt"` leaves them out (2 min).
test-fast: setup
	$(BIN)/pytest -q -m "not slow and not sumo"

lint: setup
	$(BIN)/ruff check $(CODE)
	$(BIN)/ruff format --check $(CODE)
	$(BIN)/lint-imports --no-cache  # the layer contracts in pyproject.toml

# Every figure of the README's performance tables, on both engines, each with the limit it
# is measured against in the same run (about 40 minutes on two cores; needs wrk, PostgreSQL
# and Mosquitto); then the tables are rewritten from the result files.
bench: setup
	$(BIN)/python benchmarks/hub.py
	$(BIN)/python benchmarks/flow.py
	$(BIN)/python benchmarks/load.py
	$(BIN)/python benchmarks/report.py --readme

# Build outputs and caches; the virtualenv stays (remove it with `rm -rf .venv`).
clean:
	rm -rf build dist src/*.egg-info .pytest_cache .ruff_cache .hypothesis
	find src tests benchmarks -name __pycache__ -type d -prune -exec rm -rf {} +
