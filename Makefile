# archscale: `make test` sets up .venv from scratch and runs the suite.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed
PRESET ?= quick
DEVICE ?= cpu
DATASET ?=
DATA_DIR ?=

.PHONY: setup test test-fast lint lab reproduce bench clean

setup: $(STAMP)

# torch is pinned in the same pip command as the package so nothing pulls a CUDA build.
$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet torch==2.13.0 -e '.[dev,notebooks,ray]'
	# mup only cross-checks archscale's muP recipe in the tests; --no-deps keeps torchvision (CUDA torch) out
	$(PIP) install --quiet --no-deps mup==1.0.0
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

test: setup
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -n 2 --durations=15

test-fast: setup
	$(PY) -m pytest -q -n 2 -m "not notebook and not slow"

lint: setup
	$(VENV)/bin/ruff check .

lab: setup
	$(VENV)/bin/jupyter lab notebooks/

reproduce: setup
	$(VENV)/bin/archscale reproduce --preset $(PRESET) --device $(DEVICE) \
		$(if $(DATASET),--dataset $(DATASET)) $(if $(DATA_DIR),--data-dir $(DATA_DIR))

bench: setup
	$(PY) benchmarks/sweep_throughput.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
