# Two commands: `make demo` and `make test`. Both create .venv and install the project first.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# pytest options, e.g. `make test PYTEST_ARGS="-m 'not slow'"`
PYTEST_ARGS ?=
DEMO_DIR ?= demo_work

.PHONY: install demo test test-fast bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	# torch and torchvision are resolved together (nnunetv2 needs torchvision)
	$(BIN)/pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/hecktor-demo --workdir $(DEMO_DIR)

test: $(STAMP)
	$(BIN)/python -m pytest -q -rs $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -rs -m "not slow" $(PYTEST_ARGS)

# hand-run measurements on CPU (benchmarks/gpu_train_step.py needs a CUDA machine)
bench: $(STAMP)
	$(BIN)/python benchmarks/convert.py
	$(BIN)/python benchmarks/evaluate.py
	$(BIN)/python benchmarks/augmentation.py
	$(BIN)/python benchmarks/radiomics_extraction.py
	$(BIN)/python benchmarks/prognosis_training.py
	$(BIN)/python benchmarks/inference.py

clean:
	rm -rf $(DEMO_DIR) build dist *.egg-info
