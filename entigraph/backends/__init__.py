"""LLM backends behind one interface: ``hf`` (transformers), ``vllm``, ``openai`` (any compatible server)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ConfigError
from .base import Backend, Generation, Request

if TYPE_CHECKING:
    from ..config import RunConfig

__all__ = ["Backend", "Generation", "Request", "get_backend"]


def get_backend(cfg: "RunConfig", model: str | None = None) -> Backend:
    """Build the configured backend for `model` (default: models.generator)."""
    name = cfg.synthesis.backend
    model = model or cfg.models.generator
    if name == "hf":
        from .hf import HFBackend

        return HFBackend.from_config(cfg, model)
    if name == "vllm":
        from .vllm import VLLMBackend

        return VLLMBackend.from_config(cfg, model)
    if name == "openai":
        from .openai import OpenAIBackend

        return OpenAIBackend.from_config(cfg, model)
    raise ConfigError(f"synthesis.backend: unknown backend {name!r}")
