# eventbatch: the two commands are `make demo` and `make test`. See README.md.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
EB := $(VENV)/bin/eventbatch

.PHONY: setup up down status demo test test-unit test-integration lint bench images clean

setup:
	@bash devstack/setup.sh

up: setup
	@$(EB) up

down:
	@if [ -x $(EB) ]; then $(EB) down; else echo "nothing to stop (no .venv)"; fi

status: setup
	@$(EB) status

images: setup
	@$(EB) images

demo: setup
	@$(EB) demo

lint: setup
	@$(VENV)/bin/ruff check .

test: setup lint
	@$(PY) -m pytest -q $(PYTEST_ARGS)

test-unit: setup
	@$(PY) -m pytest -q tests/unit $(PYTEST_ARGS)

bench: setup
	@$(PY) -m bench $(BENCH_ARGS)

clean: down
	@if [ -x $(PY) ]; then $(PY) -c 'from devstack.stack.engine import remove_outside_runroot as r; r()'; fi
	rm -rf .devstack
