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
# extra arguments for JupyterLab and the Voila app, e.g. LAB_ARGS="--port 9999 --no-browser"
LAB_ARGS ?=
APP_ARGS ?=
APP_PORT ?= 8866
# Jupyter refuses to run as root without --allow-root (containers, CI); a user needs nothing
ALLOW_ROOT := $(if $(filter 0,$(shell id -u 2>/dev/null)),--allow-root)

.PHONY: setup lock test test-fast test-browser lint typecheck docs lab app reproduce bench gpu-check clean

setup: $(STAMP)

# torch is pinned in the same pip command as the package so nothing pulls a CUDA build; every other
# package comes at the version in constraints.txt (the environment that made the committed results).
$(STAMP): pyproject.toml constraints.txt Makefile
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet -c constraints.txt torch==2.13.0 -e '.[dev,notebooks,ray,docs]'
	# mup only cross-checks archscale's muP recipe in the tests; --no-deps keeps torchvision (CUDA torch) out
	$(PIP) install --quiet --no-deps mup==1.0.0
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

# constraints.txt anew from the newest releases pyproject.toml admits (then: make reproduce, commit both)
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet torch==2.13.0 -e '.[dev,notebooks,ray,docs]'
	{ sed -n '/^#/p' constraints.txt; .lock-venv/bin/pip freeze --exclude-editable | grep -v '^torch=='; } \
		> constraints.tmp && mv constraints.tmp constraints.txt
	rm -rf .lock-venv

# The browser tests (tests/browser) are part of the suite; they skip without Chromium unless
# ARCHSCALE_REQUIRE_BROWSER=1 (.ci/run sets it after installing Chromium).
test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(MAKE) --no-print-directory docs
	$(PY) -m pytest -q -n 2 --durations=15

test-browser: setup docs
	ARCHSCALE_REQUIRE_BROWSER=1 $(PY) -m pytest -q -n 2 -m browser tests/browser

test-fast: setup
	$(PY) -m pytest -q -n 2 -m "not notebook and not slow and not browser"

lint: setup
	$(VENV)/bin/ruff check .

# The documentation site (Sphinx + myst-nb, offline) into docs/_build/html; open docs/_build/html/index.html.
# Warnings are errors, and -E rereads every page so that a warning is never hidden by an incremental build.
# The notebook pages are the executed copies in papermill_runs/, rendered as committed (never executed).
docs: setup
	rm -rf docs/api/generated  # module pages are generated anew, so a moved or renamed module leaves none behind
	$(VENV)/bin/sphinx-build -b html -W --keep-going -E -q -j auto docs docs/_build/html
	@echo "docs: open docs/_build/html/index.html"

# mypy on archscale/ at the strictness stated in pyproject.toml's [tool.mypy] (also run by `make test`)
typecheck: setup
	$(VENV)/bin/mypy

# JupyterLab on the repository root (notebooks/, papermill_runs/ and app/ all reachable), opened on notebooks/
lab: setup
	$(VENV)/bin/jupyter lab --ServerApp.root_dir="$(CURDIR)" --LabApp.default_url=/lab/tree/notebooks \
		$(ALLOW_ROOT) $(LAB_ARGS)

# The DAG explorer as an app without code cells (Voila), on http://localhost:$(APP_PORT)/
app: setup
	$(VENV)/bin/voila app/explorer.ipynb --port=$(APP_PORT) $(APP_ARGS)

reproduce: setup
	$(VENV)/bin/archscale reproduce --preset $(PRESET) --device $(DEVICE) \
		$(if $(DATASET),--dataset $(DATASET)) $(if $(DATA_DIR),--data-dir $(DATA_DIR))

bench: setup
	$(PY) benchmarks/sweep_throughput.py

# On a GPU machine: CUDA benchmark, CUDA tests, full-preset depth and CNN sweeps (mnist, or CIFAR-10
# with DATA_DIR) into gpu_check/ with device, versions and timings (about 8 minutes on one H100).
gpu-check: setup
	$(PY) benchmarks/gpu_check.py --device cuda --out gpu_check $(if $(DATA_DIR),--data-dir $(DATA_DIR))

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis test-artifacts docs/_build docs/api/generated

	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .hypothesis test-artifacts
