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

.PHONY: demo test test-arm64 wheel runtime-venv dev-venv benchmark remeasure clean help
help:
	@echo "make demo       detect emotions in the bundled sample image (the built wheel, alone in a venv)"
	@echo "make test       run the whole test suite (dev venv with every extra; includes the aarch64 checks)"
	@echo "make test-arm64 only the aarch64 checks, under qemu-user in a Debian bookworm arm64 userland"
	@echo "make wheel      build dist/edge_emotion-*.whl (device artifacts only)"
	@echo "make benchmark  latency/accuracy table of every backend -> benchmarks/results/"
	@echo "make remeasure  every published figure that depends on the bundled models (after bundling one)"

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

# After a bundled model changes: every result that depends on it, then the test that names each README figure
# still quoting the old results. Run it on an otherwise idle machine (timings).
remeasure: dev-venv
	$(MAKE) benchmark
	$(VENV)/bin/python -m benchmarks.face_detection --rounds 15 --json benchmarks/results/face_detection.json \
	  --markdown benchmarks/results/face_detection.md
	$(VENV)/bin/python -m benchmarks.alignment --json benchmarks/results/alignment.json
	$(VENV)/bin/python -m benchmarks.crop_resampling --json benchmarks/results/crop_resampling.json \
	  --markdown benchmarks/results/crop_resampling.md
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider benchmarks/test_bench_hot_paths.py \
	  --benchmark-json benchmarks/baseline/baseline.json
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider tests/test_published_figures.py

clean:
	rm -rf $(VENV) $(RTVENV) out build dist .pytest_cache
