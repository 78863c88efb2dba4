VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: help install demo test lint conformance bench clean

help:           ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

install:        ## create .venv and install Pointsmith with its dev tools
	python3 -m venv $(VENV) && $(VENV)/bin/pip install -q -e '.[dev]'

demo: install   ## seed the demo database and serve it on :8000
	$(VENV)/bin/pointsmith demo

test: install   ## the whole suite (SQLite, and PostgreSQL when it answers)
	$(PY) -m pytest

lint: install   ## ruff and mypy
	$(PY) -m ruff check src tests bench && $(PY) -m mypy

conformance: install  ## the contract conformance suite on SQLite (needs ../shared beside the checkout)
	@test -x ../shared/conformance/run || { echo "no ../shared/conformance/run beside this checkout"; exit 1; }
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH ../shared/conformance/run foundation ledger rules lots tiers

bench: install  ## the benchmarks (see bench/README.md)
	$(PY) -m bench.ledger && $(PY) -m bench.events && $(PY) -m bench.tiers

clean:          ## remove caches and local databases
	rm -rf .pytest_cache .mypy_cache .ruff_cache pointsmith.db*
