# Every target installs what it needs into .venv first, so a fresh clone needs
# only python3 (>= 3.11), make and, for the control-plane tests, Go.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: quickstart test bench

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[runtime,test]'
	touch $(STAMP)

quickstart: $(STAMP)
	$(BIN)/infra-inference render examples/quickstart/spec.yaml -o out/quickstart

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/components_scale.py
