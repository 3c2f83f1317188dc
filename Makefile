# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch pinned to the release this project is tested with (a CUDA build; it runs on CPU too)
TORCH ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed

.PHONY: install demo lint test test-quick test-sweeper-oldest bench study clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e '.[test,tensorboard,mlflow,wandb,optimizers]'
	touch $(STAMP)

demo: install
	$(BIN)/python -m optsweep sweep=quickstart
	@echo "quickstart runs (metrics.csv, summary.json, .hydra/ in each):"
	@ls -d $(CURDIR)/multirun/quickstart/*/
	$(BIN)/python -m optsweep.analysis multirun/quickstart

# the whole study, preset after preset, then the analysis; rerun to resume (README.md, "Sweeps")
study: install
	$(BIN)/python -m optsweep.study $(ARGS)

# ruff (lint and import order) over the repository, mypy over the torch-free base (pyproject.toml)
lint: install
	$(BIN)/ruff check
	$(BIN)/mypy

# lint, the whole suite with coverage (its total printed, a floor in pyproject.toml), then the
# sweeper's tests again on the oldest Optuna it supports
test: lint
	$(BIN)/python -m pytest --cov
	$(MAKE) test-sweeper-oldest

# a few minutes on 2 cores: every module imported and exercised, without the tests marked slow,
# engines or browser (pyproject.toml); tests/conftest.py fails the run when a module was never
# imported
test-quick: install
	$(BIN)/python -m pytest -q --cov -m "not slow and not engines and not browser"

# The sweeper on the oldest Optuna it supports, without torch (the sweeper and
# optsweep.sweep.trial must not need it): a separate venv, tests/sweeper only.
OLDEST_VENV ?= .venv-optuna49
OLDEST_STAMP := $(OLDEST_VENV)/.installed

$(OLDEST_STAMP): pyproject.toml Makefile
	test -x $(OLDEST_VENV)/bin/python || $(PYTHON) -m venv $(OLDEST_VENV)
	$(OLDEST_VENV)/bin/python -m pip install -q --upgrade pip
	$(OLDEST_VENV)/bin/python -m pip install -q 'optuna==4.9.0' 'hydra-core>=1.3.2,<1.4' \
		'omegaconf>=2.3,<2.4' 'hydra-joblib-launcher>=1.2,<1.4' 'sqlalchemy>=2' 'psycopg[binary]' \
		pytest pytest-timeout
	$(OLDEST_VENV)/bin/python -m pip install -q --no-deps -e .
	touch $(OLDEST_STAMP)

test-sweeper-oldest: $(OLDEST_STAMP)
	! $(OLDEST_VENV)/bin/python -c 'import torch' 2>/dev/null
	$(OLDEST_VENV)/bin/python -m pytest tests/sweeper --confcutdir=tests/sweeper -q

clean:
	rm -rf multirun/quickstart analysis/quickstart .pytest_cache
