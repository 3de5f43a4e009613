# Two commands: `make demo` and `make test`. Both create .venv and install the project first.
# Python 3.11, 3.12 or 3.13; another venv per interpreter, e.g.
# `make test-fast PYTHON="$(PYENV_VERSION=3.12.1 pyenv which python)" VENV=.venv-py3.12`
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# pytest options, e.g. `make test PYTEST_ARGS="-m 'not slow'"`
PYTEST_ARGS ?=
DEMO_DIR ?= demo_work

.PHONY: install demo test test-fast bench gpu-check docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# the exact versions the tests ran with; pyproject.toml declares ranges
CONSTRAINTS := constraints.txt

$(STAMP): pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(BIN)/pip install --quiet -c $(CONSTRAINTS) -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/hecktor-demo --workdir $(DEMO_DIR)

test: $(STAMP)
	$(BIN)/python -m pytest -q -rs $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -rs -m "not slow" $(PYTEST_ARGS)

# hand-run measurements on CPU (gpu-check below needs a CUDA machine)
bench: $(STAMP)
	$(BIN)/python benchmarks/convert.py
	$(BIN)/python benchmarks/evaluate.py
	$(BIN)/python benchmarks/augmentation.py
	$(BIN)/python benchmarks/radiomics_extraction.py
	$(BIN)/python benchmarks/prognosis_training.py
	$(BIN)/python benchmarks/inference.py

# one command on a CUDA machine (~8-10 min estimated, no internet): learning, inference, step time
# (benchmarks/gpu/, each part also runnable alone); writes benchmarks/results/gpu_check.json, then
# its block in docs/benchmarks.md. The CPU dry run: `$(BIN)/python -m benchmarks.gpu --device cpu --tiny`
gpu-check: $(STAMP)
	$(BIN)/python -m benchmarks.gpu
	$(BIN)/python benchmarks/tables.py

# rewrite the generated tables of docs/ (benchmarks/results/*.json, the trainer classes)
docs: $(STAMP)
	$(BIN)/python benchmarks/tables.py

clean:
	rm -rf $(DEMO_DIR) build dist *.egg-info
