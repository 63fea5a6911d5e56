"""KL to the base model on reading examples (train.kl): loss = LM loss + weight x KL(base || model).

Continued pretraining teaches the documents and, with this model, unlearns some of reading
retrieved context (docs/results.md: every trained model gives composition targets less likelihood
than the base model when both read the same chunks). The term pins the model's next-token
distribution to the frozen base model's where a context is given: on the blocks of the mixture's
`rag` source (question, retrieved chunks, answer; training/rag.py), at the answer's tokens
(`positions: answer`) or every token of the example (`example`). Every other block, and every
other position, gets the LM loss alone: knowledge goes in where no context is given.

The positions come from the tokens themselves (the answer follows the "\\nAnswer:" marker that
rag.render writes and ends at EOS), so the packed data, its hash and its order are unchanged.
The base model is frozen and deterministic, so a resumed run still ends where an uninterrupted
one does (tests/entigraph/training/test_kl.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

ANSWER_MARKER = "\nAnswer:"  # rag.render: "...\nQuestion: {q}\nAnswer: {answer}"


class PositionFinder:
    """The KL positions of a block: position t is chosen when the token at t + 1 is one the term
    constrains (logits at t predict token t + 1)."""

    def __init__(self, tokenizer, positions: str, eos_id: int):
        ids = tokenizer(ANSWER_MARKER, add_special_tokens=False)["input_ids"]
        # the newline may merge with the token before it ("?\n"): match the marker without it,
        # preceded by any token that ends in a newline
        while ids and not tokenizer.decode(ids[:1]).strip():
            ids = ids[1:]
        if not ids:
            raise ValueError(f"the tokenizer has no tokens for {ANSWER_MARKER!r}")
        self.marker = np.asarray(ids, dtype=np.int64)
        self.positions, self.eos_id, self.tokenizer = positions, eos_id, tokenizer
        self._newline: dict[int, bool] = {}

    def _ends_line(self, token: int) -> bool:
        if token not in self._newline:
            self._newline[token] = self.tokenizer.decode([token]).endswith("\n")
        return self._newline[token]

    def answer_spans(self, ids: np.ndarray, n: int) -> list[tuple[int, int]]:
        """[start, end) token spans of the answers in ids[:n]: after each marker, through its EOS."""
        m, spans = len(self.marker), []
        hits = np.flatnonzero(ids[: n - m + 1] == self.marker[0]) if n >= m else []
        for i in hits:
            if not np.array_equal(ids[i:i + m], self.marker) or i == 0 or not self._ends_line(int(ids[i - 1])):
                continue
            start = i + m
            eos = np.flatnonzero(ids[start:n] == self.eos_id)
            end = start + int(eos[0]) + 1 if len(eos) else n  # the EOS that ends the answer is predicted too
            if end > start:
                spans.append((start, end))
        return spans

    def mask(self, ids: np.ndarray, n: int) -> np.ndarray:
        out = np.zeros(len(ids), dtype=bool)
        if self.positions == "example":
            out[: max(0, n - 1)] = True
        else:
            for start, end in self.answer_spans(ids, n):
                out[start - 1:end - 1] = True
        return out


def kl_to_base(logits: torch.Tensor, base_logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the masked positions of KL(base || model) of the next-token distributions; 0 (with
    a graph, so backward still runs) when no position is masked."""
    if not bool(mask.any()):
        return logits.sum() * 0.0
    lp = torch.log_softmax(logits[mask].float(), dim=-1)
    lq = torch.log_softmax(base_logits[mask].float(), dim=-1)
    return (lq.exp() * (lq - lp)).sum(-1).mean()


def kl_trainer_class():
    """A transformers Trainer whose loss adds weight x KL to a frozen base model on the rows and
    positions `kl_mask` marks (the dataset's extra column)."""
    from transformers import Trainer

    class KLTrainer(Trainer):
        def __init__(self, *args, base_model: torch.nn.Module, kl_weight: float, **kwargs):
            super().__init__(*args, **kwargs)
            self.base_model = base_model.eval().requires_grad_(False)
            self.kl_weight = kl_weight

        def compute_loss(self, model, inputs: dict[str, Any], return_outputs: bool = False,
                         num_items_in_batch=None):
            mask = inputs.pop("kl_mask", None)
            loss, outputs = super().compute_loss(model, inputs, return_outputs=True,
                                                 num_items_in_batch=num_items_in_batch)
            if mask is not None and model.training and bool(mask.any()):
                rows = mask.any(dim=1)
                if self.base_model.device != outputs.logits.device:
                    self.base_model.to(outputs.logits.device)
                with torch.no_grad():
                    base_logits = self.base_model(input_ids=inputs["input_ids"][rows],
                                                  attention_mask=inputs["attention_mask"][rows]).logits
                kl = kl_to_base(outputs.logits[rows], base_logits, mask[rows])
                if self.model_accepts_loss_kwargs and num_items_in_batch is not None:
                    kl = kl / self.current_gradient_accumulation_steps  # the LM loss is already scaled so
                loss = loss + self.kl_weight * kl
            return (loss, outputs) if return_outputs else loss

    return KLTrainer
