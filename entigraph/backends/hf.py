"""transformers backend: batched ``model.generate`` with left padding, the embedded default.

Requests are grouped by sampling settings and sorted by prompt length before batching, so a batch
holds prompts of similar length and little compute goes to padding. Each batch is generated under
``torch.manual_seed`` derived from its requests' seeds: the same batch (the engine forms batches
deterministically) regenerates the same text, which is what lets a resumed run match an
uninterrupted one.

A request with faithful decoding settings (``Request.decoding``, ``synthesis.decoding``) is
generated with backends/decoding.py's logits processor, in batches of its own.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from typing import TYPE_CHECKING, Any

from ..devices import pick_device, pick_dtype
from ..errors import ConfigError
from ..models import resolve_lm
from .base import Generation, Request, count_tokens, render_chat
from .decoding import FaithfulLogits, RowSource, TokenTable, active, strip_context

if TYPE_CHECKING:
    from ..config import BackendConfig, SamplingConfig

log = logging.getLogger(__name__)


def batch_seed(seeds: list[int | None]) -> int:
    blob = ",".join(str(s) for s in seeds).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "big") >> 1


class HFBackend:
    name = "hf"

    def __init__(self, model: str, *, device: str = "auto", dtype: str = "auto", batch_size: int = 16,
                 label: str | None = None) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        device = pick_device(device)
        self.device, self.batch_size = device, batch_size
        self.model = label or model
        self.dtype = pick_dtype(dtype, device)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model)
            self.lm = AutoModelForCausalLM.from_pretrained(model, dtype=self.dtype).to(device).eval()
        except OSError as e:
            raise ConfigError(f"cannot load model {model!r}: {str(e).splitlines()[0]}") from None
        self.tokenizer.padding_side = "left"  # decoder-only: new tokens must follow every prompt
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        eos = self.lm.generation_config.eos_token_id
        self.eos_ids = (set(eos if isinstance(eos, list) else [eos]) | {self.tokenizer.eos_token_id}) - {None}
        self.max_positions = getattr(self.lm.config, "max_position_embeddings", None) or 1 << 30
        self.chat = bool(getattr(self.tokenizer, "chat_template", None))
        self._table: TokenTable | None = None  # faithful decoding's view of the vocabulary, built on first use

    @classmethod
    def from_config(cls, b: "BackendConfig", model: str, device: str = "auto",
                    cache_dir: str | None = None) -> "HFBackend":
        return cls(resolve_lm(model, cache_dir), device=device, dtype=b.dtype, batch_size=b.batch_size, label=model)

    def render(self, messages: list[dict[str, str]]) -> str:
        return render_chat(self.tokenizer, messages)

    def count_tokens(self, text: str) -> int:
        return count_tokens(self.tokenizer, text)

    def generate(self, requests: list[Request]) -> list[Generation]:
        prompts = [self.render(r.messages) for r in requests]
        groups: dict[str, list[int]] = {}
        for i, r in enumerate(requests):  # one generate call needs one set of sampling (and decoding) settings
            decoding = repr(dataclasses.astuple(r.decoding)) if active(r.decoding) else ""
            groups.setdefault(repr(dataclasses.astuple(r.sampling)) + decoding, []).append(i)
        out: list[Generation | None] = [None] * len(requests)
        for members in groups.values():
            members.sort(key=lambda i: len(prompts[i]))
            for start in range(0, len(members), self.batch_size):
                chunk = members[start:start + self.batch_size]
                first = requests[chunk[0]]
                rows = [self._row(requests[i], prompts[i]) for i in chunk] if active(first.decoding) else None
                gens = self._generate_batch([prompts[i] for i in chunk], first.sampling,
                                            [requests[i].seed for i in chunk], first.decoding, rows)
                for i, g in zip(chunk, gens):
                    out[i] = g
        return out  # type: ignore[return-value]

    def _row(self, r: Request, prompt: str) -> RowSource:
        return RowSource(r.context, prompt, self.render(strip_context(r.messages, r.context)))

    def _processors(self, decoding: Any, rows: list[RowSource] | None, prompt_length: int) -> list[Any]:
        if rows is None:
            return []
        if self._table is None:
            self._table = TokenTable(self.tokenizer, self.lm.config.vocab_size)
        return [FaithfulLogits(self.lm, self.tokenizer, self._table, rows, decoding, prompt_length, self.eos_ids,
                               self.device, not self.chat)]

    def _generate_batch(self, prompts: list[str], sampling: "SamplingConfig", seeds: list[int | None],
                        decoding: Any = None, rows: list[RowSource] | None = None) -> list[Generation]:
        import torch
        from transformers import LogitsProcessorList

        start = time.perf_counter()
        enc = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=not self.chat)
        lengths = enc["attention_mask"].sum(dim=1).tolist()
        limit = self.max_positions - sampling.max_new_tokens
        if max(lengths) > limit:  # fail the long ones, generate the rest
            ok = [i for i, n in enumerate(lengths) if n <= limit]
            gens = self._generate_batch([prompts[i] for i in ok], sampling, [seeds[i] for i in ok], decoding,
                                        [rows[i] for i in ok] if rows else None) if ok else []
            done = dict(zip(ok, gens))
            return [done.get(i) or Generation("", n, 0, "error", f"prompt of {n} tokens leaves no room for "
                                              f"{sampling.max_new_tokens} new tokens in {self.max_positions}")
                    for i, n in enumerate(lengths)]
        enc = enc.to(self.device)
        torch.manual_seed(batch_seed(seeds))
        try:
            with torch.inference_mode():
                processors = self._processors(decoding, rows, enc["input_ids"].shape[1])
                out = self.lm.generate(
                    **enc, do_sample=sampling.temperature > 0, temperature=sampling.temperature or None,
                    top_p=sampling.top_p if sampling.temperature > 0 else None,
                    repetition_penalty=sampling.repetition_penalty, max_new_tokens=sampling.max_new_tokens,
                    pad_token_id=self.tokenizer.pad_token_id,
                    **({"logits_processor": LogitsProcessorList(processors)} if processors else {}),
                )
        except (RuntimeError, ValueError) as e:  # e.g. out of memory: record it, keep the run going
            log.warning("generate failed for a batch of %d: %s", len(prompts), e)
            return [Generation("", n, 0, "error", f"{type(e).__name__}: {e}") for n in lengths]
        seconds = (time.perf_counter() - start) / len(prompts)
        new = out[:, enc["input_ids"].shape[1]:].tolist()
        gens = []
        for row, n_prompt in zip(new, lengths):
            stop = next((j for j, t in enumerate(row) if t in self.eos_ids), None)
            tokens = row if stop is None else row[:stop]
            text = self.tokenizer.decode(tokens, skip_special_tokens=True).strip()
            gens.append(Generation(text, n_prompt, len(tokens) + (stop is not None),
                                   "length" if stop is None else "stop", "", seconds))
        return gens

    def close(self) -> None:
        self.lm = None
