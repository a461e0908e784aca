# The two commands of the README: `make demo` runs the whole pipeline locally, `make test` runs
# every test. Both set themselves up first; set-up steps re-run only when their inputs change.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check --no-input
CHROMIUM_STAMP := $(VENV)/.chromium-stamp
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CDK_DISABLE_VERSION_CHECK := 1

.PHONY: setup demo test clean

setup: $(VENV)/.stamp node_modules/.stamp $(CHROMIUM_STAMP)

# torch is installed on its own first, pinned to the release whose wheels pip finds on this kind of
# machine, so that no other requirement resolves a different (downloaded, multi-GB) torch build.
# smdebug's own pins cannot be met on a current Python: it goes in with --no-deps, as in a job.
$(VENV)/.stamp: requirements.txt requirements-dev.txt training/requirements.txt training/requirements-optimize.txt training/requirements-no-deps.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q torch==2.14.1 torchvision==0.29.1
	$(PIP) install -q -r requirements-dev.txt
	$(PIP) install -q --no-deps -r training/requirements-no-deps.txt
	$(PIP) install -q --no-deps -e .
	touch $@

# The TorchServe inference container's serving stack, TorchServe + sagemaker-pytorch-inference, for
# `endpoint.container: torchserve` locally (imgclf/local/torchserve_container.py), its test and the
# load benchmark's comparison. A venv of its own, because sagemaker-pytorch-inference ships its own copy of
# sagemaker_inference; torch and the other large packages come from $(VENV) through a .pth file,
# which site appends after this venv's own site-packages, so that this venv's packages win.
TS_VENV := .venv-torchserve
TS_PY := $(TS_VENV)/bin/python
$(TS_VENV)/.stamp: $(VENV)/.stamp
	$(PY) -m venv --clear $(TS_VENV)
	$(TS_PY) -m pip --disable-pip-version-check --no-input install -q --no-deps torchserve==0.12.0 \
		sagemaker-pytorch-inference==2.0.25 retrying==1.4.2 six==1.17.0 PyYAML==6.0.4 psutil==7.2.2 \
		packaging==26.3 wheel==0.48.0 "setuptools<81"
	$(PY) -c "import sysconfig; print(sysconfig.get_path('purelib'))" \
		> "$$($(TS_PY) -c "import sysconfig; print(sysconfig.get_path('purelib'))")/zz_main_venv.pth"
	touch $@

# The web page's browser tests (tests/page) drive Debian's Chromium through Playwright's Python
# package with executable_path=/usr/bin/chromium: never `playwright install`, which downloads a browser.
# Installed with apt when missing (CI runs as root on a clean machine; elsewhere run it as root once).
$(CHROMIUM_STAMP): $(VENV)/.stamp
	command -v chromium || (apt-get update && apt-get install -y --no-install-recommends chromium)
	touch $@

node_modules/.stamp: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

demo: setup
	$(VENV)/bin/imgclf local run --demo

test: setup $(TS_VENV)/.stamp
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

clean:
	rm -rf $(VENV) node_modules cdk.out runs .pytest_cache
