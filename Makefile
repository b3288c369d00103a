# The two commands of the quickstart: `make run` and `make test`.
# plyvel ships wheels for CPython 3.11-3.12 only, so pick one of those if present.
PYTHON ?= $(shell for p in python3.11 python3.12 python3; do command -v $$p >/dev/null 2>&1 && { echo $$p; break; }; done)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test soak lint venv clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/aichain-node start --dev

# Every package of the product and the tools are held to the formatter, to strict mypy and to vulture
# (docs/decisions.md, "Static checks"; mypy's file list is in pyproject.toml, vulture's in
# tools/dead_code.py). The tests follow the formatter too.
FORMATTED := core storage vm consensus node aichain_node cli tools typings tests

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check $(FORMATTED)
	$(BIN)/mypy
	$(BIN)/python tools/dead_code.py
	$(BIN)/python tools/check_imports.py

test: lint
	$(BIN)/python -m pytest -q -p no:cacheprovider

# Long adversarial campaigns (chaos on a 4-validator testnet, long fuzzing runs): tens of minutes.
soak: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -m soak

clean:
	rm -rf $(VENV) build *.egg-info
