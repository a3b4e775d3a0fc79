# Two commands set everything up on a machine with only Python:
#   make repro   install, then run the whole pipeline (`dvc repro`) on the embedded sample
#   make test    install with the dev extras, then run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Which torch to install (README, "Installation"): the tested release from the default package
# index. TORCH_INDEX picks another build of it, e.g. the CPU-only wheels
# (make repro TORCH_INDEX=https://download.pytorch.org/whl/cpu) or a CUDA build (.../whl/cu128).
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
PIP_TORCH = $(BIN)/python -m pip install --quiet "$(TORCH)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
# The rest goes in with uv (installed into the venv from the package index), which fetches and
# unpacks in parallel: about 1 minute instead of pip's 4 on 2 cores. It keeps the torch above.
# --compile-bytecode as pip does: without it every stage's process compiles its imports again
# where Python may not cache them (PYTHONDONTWRITEBYTECODE, a read-only venv), ~4 s each.
# uv reads UV_DEFAULT_INDEX, not pip.conf: behind a mirror set only for pip, use INSTALLER=pip.
INSTALLER ?= uv
ifeq ($(INSTALLER),uv)
INSTALL = $(BIN)/python -m pip install --quiet "uv>=0.5" && $(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python
else ifeq ($(INSTALLER),pip)
INSTALL = $(BIN)/python -m pip install --quiet
else
$(error INSTALLER must be uv or pip, not '$(INSTALLER)')
endif
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install install-dev repro lint test bench clean-outputs

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

install: $(BIN)/python
	$(PIP_TORCH)
	$(INSTALL) -e .

install-dev: $(BIN)/python
	$(PIP_TORCH)
	$(INSTALL) -e ".[dev]"

# One Prefect server for every stage (pipelines/prefect_server.py), not one per stage.
repro: install
	python -m pipelines.prefect_server dvc repro

# Lint, format and type checks first (configured in pyproject.toml), then the tests.
lint: install-dev
	ruff check .
	ruff format --check .
	mypy

# One pytest worker per core (pytest-xdist), a whole test file per worker.
test: lint
	python -m pytest -n auto --dist loadfile --durations=15

bench: install-dev
	python benchmarks/model.py --quick
	python benchmarks/data.py
	python benchmarks/train.py
