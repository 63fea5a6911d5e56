"""Device and precision choices, made the same way by every stage that loads a model."""

from __future__ import annotations

from .errors import ConfigError


def pick_device(device: str = "auto") -> str:
    """"auto" -> "cuda" when torch sees a GPU, else "cpu"; "cuda" without a GPU is an error."""
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: 'cuda' but torch sees no GPU")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def pick_dtype(dtype: str, device: str):
    """A named dtype as given; "auto": bf16 (or fp16) on a GPU, fp32 on CPU. On this project's CPUs
    fp32 measured faster for inference: bf16 generate ran at 0.46x the fp32 speed (SmolLM2-135M,
    batch 16, 64 new tokens) and bf16 scoring ~3x slower (bench/results/eval-scoring.json); the
    faster bf16 matmuls do not survive small decode-step matmuls and bf16 attention."""
    import torch

    if dtype != "auto":
        try:
            return getattr(torch, dtype)
        except AttributeError:
            raise ConfigError(f"unknown dtype {dtype!r}") from None
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32
