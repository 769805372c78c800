# One target per habit; CI runs `make test` (through .ci/run).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install run test lint bench-ingest

$(VENV)/bin/veritas: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

install: $(VENV)/bin/veritas

run: install
	$(VENV)/bin/veritas serve

test: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check src tests
