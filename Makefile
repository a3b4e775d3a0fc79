# Two commands set everything up on a machine with only Python:
#   make repro   install, then run the whole pipeline (`dvc repro`) on the embedded sample
#   make test    install with the dev extras, then run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch on these machines' disk; a GPU user overrides it, e.g. TORCH=torch.
TORCH ?= torch==2.13.0
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install install-dev repro test bench clean-outputs

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

install: $(BIN)/python
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e .

install-dev: $(BIN)/python
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"

repro: install
	dvc repro

test: install-dev
	python -m pytest

bench: install-dev
	python benchmarks/model.py --quick
	python benchmarks/data.py
	python benchmarks/train.py
