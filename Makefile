# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch pinned to the release this project is tested with (a CUDA build; it runs on CPU too)
TORCH ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed

.PHONY: install demo test bench study clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: install
	$(BIN)/python -m optsweep sweep=quickstart
	@echo "quickstart runs (metrics.csv, summary.json, .hydra/ in each):"
	@ls -d $(CURDIR)/multirun/quickstart/*/
	$(BIN)/python -m optsweep.analysis multirun/quickstart

# the whole study, preset after preset, then the analysis; rerun to resume (README.md, "Sweeps")
study: install
	$(BIN)/python -m optsweep.study $(ARGS)

test: install
	$(BIN)/python -m pytest

clean:
	rm -rf multirun/quickstart analysis/quickstart .pytest_cache
