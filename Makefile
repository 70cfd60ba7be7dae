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

.PHONY: setup test test-slow test-gpu test-all demo lint clean

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

# The README's first command: the reward-robustness demo (about 3 minutes on 2 idle cores), ending with
# the table and the plot's path. Re-running resumes into the same folder; delete it for fresh numbers.
demo: setup
	$(BIN)/aligngym bench reward-robustness --recipe demo

test-all: setup
	$(PYTEST_ENV) $(BIN)/pytest

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
