# spkid: the two commands are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: demo test lint bench clean-venv

# Create .venv when missing and install spkid with the tested versions pinned.
$(STAMP): setup.py constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt 'setuptools<81' wheel
	$(PY) -m pip install -q -c constraints.txt -e '.[resemblyzer,plot,dev]'
	touch $@

demo: $(STAMP)
	cd egs/mini/v1 && ./run.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check .

test: lint
	$(VENV)/bin/pytest -q -n 2 $(PYTEST_ARGS) tests

bench: $(STAMP)
	for b in bench/*.py; do $(PY) $$b || exit 1; done

clean-venv:
	rm -rf $(VENV)
