# The two commands of the README: `make demo` runs the whole pipeline locally, `make test` runs
# every test. Both set themselves up first; set-up steps re-run only when their inputs change.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check --no-input
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CDK_DISABLE_VERSION_CHECK := 1

.PHONY: setup demo test clean

setup: $(VENV)/.stamp node_modules/.stamp

# torch is installed on its own first, pinned, so that nothing resolves a multi-GB CUDA build.
$(VENV)/.stamp: requirements.txt requirements-dev.txt training/requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q torch==2.14.1 torchvision==0.29.1
	$(PIP) install -q -r requirements-dev.txt
	$(PIP) install -q --no-deps -e .
	touch $@

node_modules/.stamp: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

demo: setup
	$(VENV)/bin/imgclf local run --demo

test: setup
	$(PY) -m pytest

clean:
	rm -rf $(VENV) node_modules cdk.out runs .pytest_cache
