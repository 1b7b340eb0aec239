# Two commands on a fresh machine:
#   make demo   - builds the wheel, installs it alone in .venv-runtime (what a device gets), detects emotions
#                 in the bundled sample image
#   make test   - creates .venv with every extra, runs the whole test suite (CI runs exactly this)
PYTHON ?= python3
VENV   ?= .venv
RTVENV ?= .venv-runtime
PIP_FLAGS ?= -q --disable-pip-version-check
# the exact versions the benchmarks and accuracy floors were measured with
CONSTRAINTS = -c constraints.txt

.PHONY: demo test test-arm64 wheel runtime-venv dev-venv benchmark clean help
help:
	@echo "make demo       detect emotions in the bundled sample image (the built wheel, alone in a venv)"
	@echo "make test       run the whole test suite (dev venv with every extra; includes the aarch64 checks)"
	@echo "make test-arm64 only the aarch64 checks, under qemu-user in a Debian bookworm arm64 userland"
	@echo "make wheel      build dist/edge_emotion-*.whl (device artifacts only)"
	@echo "make benchmark  latency/accuracy table of every backend -> benchmarks/results/"

$(VENV)/.stamp: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install $(PIP_FLAGS) $(CONSTRAINTS) -e ".[onnx,train,dev]"
	touch $@

dev-venv: $(VENV)/.stamp

# built from the source tree by the system Python (no dev venv needed): build/ is cleared so no stale file leaks in
wheel:
	rm -rf build dist
	$(PYTHON) -m pip wheel $(PIP_FLAGS) --no-deps -w dist .
	rm -rf build

# what a device installs: the wheel, with its declared dependencies and nothing else
runtime-venv: wheel
	rm -rf $(RTVENV)
	$(PYTHON) -m venv $(RTVENV)
	$(RTVENV)/bin/pip install $(PIP_FLAGS) $(CONSTRAINTS) dist/edge_emotion-*.whl

demo: runtime-venv
	@mkdir -p out
	cd out && ../$(RTVENV)/bin/edge-emotion detect --out astronaut_annotated.png

test: dev-venv
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider tests benchmarks --benchmark-disable

test-arm64: dev-venv
	EDGE_EMOTION_X86_PYTHON=$(VENV)/bin/python bash tests/arm64/run.sh

benchmark: dev-venv
	$(VENV)/bin/edge-emotion benchmark --soak 10000 --json benchmarks/results/benchmark.json \
	  --markdown benchmarks/results/benchmark.md --plot benchmarks/results/benchmark.png

clean:
	rm -rf $(VENV) $(RTVENV) out build dist .pytest_cache
