"""LLM backends behind one interface: ``hf`` (transformers), ``vllm`` (offline engine), ``vllm-server``
(vLLM's server from its own venv, owned by the stage, hf as the fallback), ``openai`` (any compatible server)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from .base import Backend, Generation, Request

if TYPE_CHECKING:
    from ..config import BackendConfig, RunConfig

__all__ = ["Backend", "Generation", "Request", "get_backend", "open_backend", "run_backend"]


def get_backend(settings: "BackendConfig", model: str | None = None, *, device: str = "auto", seed: int = 0,
                cache_dir: str | None = None, work_dir: Path | None = None) -> Backend:
    """The backend `settings.kind` for `model` (default: settings.model). `work_dir` holds engine
    caches (vLLM's compile cache); `cache_dir` the converted embedded models."""
    model = model or settings.model
    if settings.kind == "hf":
        from .hf import HFBackend

        return HFBackend.from_config(settings, model, device=device, cache_dir=cache_dir)
    if settings.kind == "vllm":
        from .vllm import VLLMBackend

        return VLLMBackend.from_config(settings, model, device=device, seed=seed, cache_dir=cache_dir,
                                       work_dir=work_dir or Path("."))
    if settings.kind == "vllm-server":
        from .server import server_backend

        return server_backend(settings, model, device=device, seed=seed, cache_dir=cache_dir,
                              work_dir=work_dir or Path("."))
    from .openai import OpenAIBackend

    return OpenAIBackend.from_config(settings, model)


def run_backend(cfg: "RunConfig", model: str | None = None) -> Backend:
    """The run's backend (`backend:` section), its engine caches under the run folder."""
    return get_backend(cfg.backend, model, device=cfg.device, seed=cfg.seed, cache_dir=cfg.models.cache_dir,
                       work_dir=cfg.out)


@contextmanager
def open_backend(cfg: "RunConfig", model: str | None = None) -> Iterator[Backend]:
    """The run's backend for a block, closed however the block ends (a server it started is stopped)."""
    backend = run_backend(cfg, model)
    try:
        yield backend
    finally:
        backend.close()
