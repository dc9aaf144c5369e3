# Every target installs what it needs into .venv first, so a fresh clone needs
# only python3 (>= 3.11), make and, for the control-plane tests, Go.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: quickstart test bench controlplane realnode image pulumi-tools sdk-schema

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[runtime,terraform,test]'
	touch $(STAMP)

# The quickstart model served locally (gateway, autoscaler, replicas as processes):
# a short generated load scales it from zero, up through a burst, and back to zero.
quickstart: $(STAMP)
	$(BIN)/infra-inference dev echo --model-name chat --min 0 --max 4 --scale-to-zero-after 4 --port 0 --demo

# Binaries for the control-plane tests (tools/controlplane/build.sh): built from
# Go modules into ~/.cache/infra-inference on the first run, a cache check after.
# Without Go those tests are skipped, with the reason in pytest's summary.
controlplane:
	@if command -v go >/dev/null; then tools/controlplane/build.sh >/dev/null; \
	else echo "make: 'go' not found; tests marked controlplane will be skipped" >&2; fi

# Debian packages for the real test node and the image build (containerd, runc, CNI
# plugins, iptables, conntrack, debootstrap): tools/realnode/setup.sh, as root with apt;
# elsewhere it says what to install and the tests that need them skip.
realnode:
	@tools/realnode/setup.sh

# The runtime image from Debian packages and PyPI wheels, no registry (tools/image/build.sh):
# built on the first run into ~/.cache/infra-inference/image, per layer, then reused.
image: $(STAMP) realnode
	@if [ "$$(id -u)" = 0 ] && command -v debootstrap >/dev/null; then PYTHON=$(BIN)/python tools/image/build.sh >/dev/null; \
	else echo "make: the image build needs root and debootstrap; tests that run the image will be skipped" >&2; fi

# The Pulumi CLI, YAML language host and Kubernetes provider for the engine
# tests (tools/pulumi/build.sh), built and cached the same way.
pulumi-tools:
	@if command -v go >/dev/null; then tools/pulumi/build.sh >/dev/null; \
	else echo "make: 'go' not found; tests that drive the Pulumi engine will be skipped" >&2; fi

# sdk-docs/schema.json: the schema pulumi-resource-infra-inference serves
# (tests/components/test_provider_plugin.py fails when the two drift).
sdk-schema: $(STAMP)
	$(BIN)/python -c 'import json; from infra_inference.provider import schema; \
	    open("sdk-docs/schema.json", "w").write(json.dumps(schema(), indent=2) + "\n")'

# The three builds run side by side: the Go builds are CPU-bound, the image build mostly
# waits on debootstrap and pip downloads, so on a cold 2-core machine it hides inside them.
test: $(STAMP)
	$(MAKE) --no-print-directory -j3 controlplane pulumi-tools image
	$(BIN)/python -m pytest

# The quick benchmarks (a few minutes in all); the others are run by name, see benchmarks/RESULTS.md.
bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[runtime,test,bench]'
	$(BIN)/python benchmarks/components_scale.py
	-tools/nginx/install.sh  # the peer proxy (Debian's nginx); without it the benchmarks say so and go on
	$(BIN)/python benchmarks/gateway_hop.py
	$(BIN)/python benchmarks/streaming_overhead.py
	$(BIN)/python benchmarks/autoscale_replay.py
