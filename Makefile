# One target per habit; CI runs `make test` (through .ci/run).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install run test lint lock smoke bench-ingest bench-school

$(VENV)/bin/veritas: pyproject.toml requirements-test.lock
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes -r requirements-test.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

install: $(VENV)/bin/veritas

run: install
	$(VENV)/bin/veritas serve

test: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

# Rewrite the lock files from pyproject.toml's pins (after changing one).
lock:
	bash scripts/lock.sh

# The README's Run command on a fresh virtualenv, as .ci/run proves it before the tests.
smoke:
	bash scripts/smoke_fresh_install.sh

# The ingestion benchmark: raw COPY vs the one-commit-per-event design vs Veritas, one run.
bench-ingest: install
	$(PY) -m bench.ingest

# School-scale read paths (10,000 students, 5M events); add ARGS=--quick for a small run.
bench-school: install
	$(PY) -m bench.school $(ARGS)
