# Two entry points: `make demo` (train -> export -> validate -> bench on real CIFAR-10) and `make test`.
# Each creates .venv when missing and installs the project into it.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= runs/demo
DEMO_EPOCHS ?= 2

.PHONY: install demo test test-fast clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/toolkit train --model task2 --epochs $(DEMO_EPOCHS) --out $(DEMO_DIR)
	$(BIN)/toolkit export --onnx $(DEMO_DIR)/checkpoint.pt -o $(DEMO_DIR)/task2.onnx
	$(BIN)/toolkit bench $(DEMO_DIR)/checkpoint.pt $(DEMO_DIR)/task2.onnx --provider cpu --json $(DEMO_DIR)/bench.json

test: $(STAMP)
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

clean:
	rm -rf $(VENV) runs build *.egg-info
