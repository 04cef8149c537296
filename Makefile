# tokendrop — everything a fresh machine needs, from two commands: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
export CHECKPOINT_DISABLE := 1
export TF_CLI_CONFIG_FILE ?= /dev/null

.PHONY: help test lint proto demo sandbox bench clean

help:
	@echo "make demo   deploy the example stacks against the local sandbox, then clean up"
	@echo "make test   run the whole test suite (unit, terraform end-to-end, cdktf)"
	@echo "make lint   ruff and the generated-code checks"
	@echo "make bench  the performance benchmark (prints one table)"

$(STAMP): requirements/runtime.txt requirements/dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements/dev.txt
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

venv: $(STAMP)

lint: $(STAMP)
	$(PY) scripts/gen_proto.py --check
	$(VENV)/bin/ruff check constructs provider stacks examples tests scripts

test: $(STAMP)
	$(MAKE) --no-print-directory lint
	$(VENV)/bin/pytest -q -p no:cacheprovider

proto: $(STAMP)
	$(PY) scripts/gen_proto.py

clean:
	rm -rf $(VENV) node_modules cdktf.out .tokendrop
