# Every target installs what it needs into .venv first, so a fresh clone needs
# only python3 (>= 3.11), make and, for the control-plane tests, Go.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: quickstart test bench controlplane

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[runtime,test]'
	touch $(STAMP)

quickstart: $(STAMP)
	$(BIN)/infra-inference render examples/quickstart/spec.yaml -o out/quickstart

# Binaries for the control-plane tests (tools/controlplane/build.sh): built from
# Go modules into ~/.cache/infra-inference on the first run, a cache check after.
# Without Go those tests are skipped, with the reason in pytest's summary.
controlplane:
	@if command -v go >/dev/null; then tools/controlplane/build.sh >/dev/null; \
	else echo "make: 'go' not found; tests marked controlplane will be skipped" >&2; fi

test: $(STAMP) controlplane
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/components_scale.py
