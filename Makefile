# The front-door commands (see README.md); each sets up .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
WORKDIR ?= workdirs/clip_shapes

.PHONY: train test test-fast lint evaluate setup

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0  # the CPU build (see README); the test extra needs torch
	$(PY) -m pip install -q -e '.[test]'
	touch $@

setup: $(VENV)/.installed

train: setup
	$(PY) -m train --config configs/clip_shapes.py --workdir $(WORKDIR)

evaluate: setup
	$(PY) -m train.evaluate --workdir $(WORKDIR)  # the config the run recorded

# One pytest worker per core (at most 4), each test module kept on one worker so that its
# trained-run fixtures are built once; every worker shares the persistent compilation cache.
XDIST = -n auto --maxprocesses=4 --dist loadscope

test: setup
	$(PY) -m pytest -q $(XDIST) tests

test-fast: setup  # the inner loop: everything but the end-to-end runs marked slow
	$(PY) -m pytest -q $(XDIST) -m "not slow" tests

lint: setup
	$(PY) -m ruff check .
