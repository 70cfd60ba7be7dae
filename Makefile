# All set-up happens here: `make setup` on a fresh machine, and as the first step of every target.
# TORCH_SPEC: on these machines torch==2.13.0 (CPU) lies on disk; elsewhere override it,
# e.g. `make setup TORCH_SPEC='torch>=2.4'` or `TORCH_SPEC=` to keep the torch you have.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= all,dev
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed
PYTEST_ENV := HF_HUB_OFFLINE=1 MUJOCO_GL=egl

LATEST_VENV ?= /tmp/aligngym-latest
DEMO_OUT ?=

.PHONY: setup test test-slow test-gpu test-all test-latest demo lint coverage mutation clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	if [ -n "$(TORCH_SPEC)" ] && ! $(PY) -c "import torch" 2>/dev/null; then $(PY) -m pip install -q "$(TORCH_SPEC)"; fi
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	touch $(STAMP)

test: setup
	$(PYTEST_ENV) $(BIN)/pytest -m "not slow and not gpu"

test-slow: setup
	$(PYTEST_ENV) $(BIN)/pytest -m slow

test-gpu: setup
	$(PYTEST_ENV) $(BIN)/pytest -m gpu

# The README's first command: the reward-robustness demo, ending with the table and the plot's path (the
# README says how long it takes). Re-running resumes into the same folder; delete it for fresh numbers,
# or `make demo DEMO_OUT=/tmp/demo` for another folder.
demo: setup
	$(BIN)/aligngym bench reward-robustness --recipe demo $(if $(DEMO_OUT),--out $(DEMO_OUT))

test-all: setup
	$(PYTEST_ENV) $(BIN)/pytest

# The newest versions that pyproject's pins allow (trl, transformers, gymnasium, stable-baselines3, ...),
# in a scratch venv, then the default tests: run it when a dependency releases, to see a break before
# users do. Torch stays at TORCH_SPEC (a constraint), so no multi-GB CUDA download.
test-latest:
	rm -rf $(LATEST_VENV) && $(PYTHON) -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/python -m pip install -q --upgrade pip
	echo "$(TORCH_SPEC)" > $(LATEST_VENV)/constraints.txt
	$(LATEST_VENV)/bin/python -m pip install -q --upgrade --upgrade-strategy eager \
		-c $(LATEST_VENV)/constraints.txt -e ".[$(EXTRAS)]"
	$(LATEST_VENV)/bin/python -m pip list --format=freeze | grep -iE \
		'^(torch|gymnasium|mujoco|stable.baselines3|transformers|trl|datasets|accelerate|peft)=='
	$(PYTEST_ENV) $(LATEST_VENV)/bin/pytest -m "not slow and not gpu"

# ruff is pinned in the dev extra: its default rules and its Markdown code-block formatting change between
# minor versions. Both checks run over the whole tree (docs/*.md code blocks included).
lint: setup
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

# Coverage of the default suite with what pool workers and other Python subprocesses run (pyproject's
# [tool.coverage]: every child measures itself into $(COVERAGE_FILE).*); terminal table + htmlcov/.
coverage: setup
	rm -f .coverage .coverage.*
	COVERAGE_FILE=$(CURDIR)/.coverage $(PYTEST_ENV) $(BIN)/coverage run -m pytest -m "not slow and not gpu"
	COVERAGE_FILE=$(CURDIR)/.coverage $(BIN)/coverage combine -q
	$(BIN)/coverage report --skip-covered
	$(BIN)/coverage html -q

# Plant the one-line bugs of tests/mutation/mutants.yaml one at a time in a copy of the tree, run the
# module's tests against each, write benchmarks/results/mutation.{md,json} (about a minute per mutant).
mutation: setup
	$(PY) tests/mutation/run.py --label after

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .coverage .coverage.* htmlcov
