"""Faithful decoding for the hf backend: a logits processor that pulls each generation toward its source context.

A request that carries its source context (``Request.context``, the text its prompt quotes) and
decoding settings (``Request.decoding``, ``synthesis.decoding``) is generated with, per step:

- context-aware decoding (Shi et al., 2023, "Trusting Your Evidence"): the next-token scores
  contrast the prompt with the context against the same prompt without it,
  ``(1 + a) log p(y | context, x) - a log p(y | x)`` with ``a = context_contrast``: what the
  context makes likely gains, what the model would say anyway loses; only among the tokens whose
  probability with the context is at least ``contrast_plausibility`` of the likeliest one's (the
  ratio alone lifts tokens both prompts find unlikely: a small model's noise). The prompt without
  the context runs beside the batch with its own cache (a second forward pass per step);
- a copy bias: ``copy_bias`` added to the score of every token of the context (and end of text);
- a novelty penalty: ``novel_penalty`` subtracted from every token that would start a capitalised
  word or a number that no word of the prompt begins with, and from every token that would carry
  a capitalised word or number already begun outside the prompt's words ("Zar" + "eph" where the
  source says "Zaronix"). Capitalised function words ("The", "However") are not names.

Processors run after the repetition penalty and before temperature and top-p (transformers' order
for custom processors), so sampling settings keep their meaning.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from ..text import FUNCTION_WORDS

_ALNUM = re.compile(r"[^\W_]+")


def _core(text: str) -> str:
    """The run of letters and digits a token text opens with, after its leading whitespace."""
    m = _ALNUM.match(text.lstrip())
    return m.group() if m else ""


def _capital(word: str) -> bool:
    return bool(word) and (word[0].isupper() or word[0].isdigit())


def allowed_words(prompt: str) -> set[str]:
    """Capitalised words and numbers a generation may use: those of the prompt (its context, title
    and names), and function words written with a capital."""
    return {w for w in _ALNUM.findall(prompt) if _capital(w)} | {w.capitalize() for w in FUNCTION_WORDS}


def prefixes(words: set[str]) -> set[str]:
    return {w[:k] for w in words for k in range(1, len(w) + 1)}


class TokenTable:
    """What each token of a tokenizer's vocabulary looks like as text, computed once per backend."""

    def __init__(self, tokenizer: Any, vocab_size: int) -> None:
        import torch

        n = len(tokenizer)
        self.texts = tokenizer.batch_decode([[i] for i in range(n)]) + [""] * max(0, vocab_size - n)
        self.size = vocab_size
        self.core = [_core(t) for t in self.texts]
        lead = [bool(t) and t[0].isspace() and bool(c) and t.lstrip()[:len(c)] == c
                for t, c in zip(self.texts, self.core)]
        bare = [bool(t) and t[0].isalnum() for t in self.texts]
        capital = [_capital(c) for c in self.core]
        self.lead = torch.tensor(lead)  # whitespace, then a word: always starts one
        self.bare = torch.tensor(bare)  # a word's characters at once: continues the word before it, if any
        self.capital = torch.tensor(capital)
        self.by_core: dict[str, list[int]] = {}  # core -> token ids (leading whitespace or not)
        self.bare_by_core: dict[str, list[int]] = {}
        for i, c in enumerate(self.core):
            if c:
                self.by_core.setdefault(c, []).append(i)
                if bare[i]:
                    self.bare_by_core.setdefault(c, []).append(i)


@dataclass
class RowSource:
    """One request's source: the context its prompt quotes, the whole prompt text, and the prompt
    without the context (context-aware decoding's contrast)."""

    context: str
    prompt: str
    plain_prompt: str


class FaithfulLogits:
    """A transformers LogitsProcessor for one batch (rows in the batch's order)."""

    def __init__(self, lm: Any, tokenizer: Any, table: TokenTable, rows: list[RowSource], settings: Any,
                 prompt_length: int, eos_ids: set[int], device: str, add_special_tokens: bool) -> None:
        import torch

        self.lm, self.table, self.rows, self.s = lm, table, rows, settings
        self.prompt_length, self.device = prompt_length, device
        n, v = len(rows), table.size
        self.copy = torch.zeros(n, v)
        for r, row in enumerate(rows):
            ids = set(tokenizer(row.context, add_special_tokens=False)["input_ids"]) | eos_ids
            self.copy[r, [i for i in ids if i < v]] = 1.0
        self.copy = self.copy.to(device)
        self.words = [allowed_words(row.prompt) for row in rows]
        self.prefixes = [prefixes(w) for w in self.words]
        self.start_ok = torch.zeros(n, v, dtype=torch.bool)
        for r, ps in enumerate(self.prefixes):
            ids = [i for p in ps for i in table.by_core.get(p, ())]
            if ids:
                self.start_ok[r, ids] = True
        self.tails = [""] * n  # the text generated so far, its last word at least
        self.plain: Any = None  # the contrast's state: (cache, attention mask, next positions)
        if settings.context_contrast > 0:
            enc = tokenizer([row.plain_prompt for row in rows], return_tensors="pt", padding=True,
                            add_special_tokens=add_special_tokens).to(device)
            self._plain_enc = enc
        self.steps = 0
        self.forward_seconds = 0.0

    # -- context-aware decoding ------------------------------------------------------------------

    def _plain_logits(self, input_ids: Any) -> Any:
        import torch

        if self.plain is None:
            enc = self._plain_enc
            mask = enc["attention_mask"]
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            out = self.lm(input_ids=enc["input_ids"], attention_mask=mask, position_ids=positions, use_cache=True,
                          logits_to_keep=1)
            self.plain = (out.cache, mask, positions[:, -1:] + 1)
            return out.logits[:, -1, :]
        cache, mask, nxt = self.plain
        mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
        out = self.lm(input_ids=input_ids[:, -1:], attention_mask=mask, position_ids=nxt, cache=cache,
                      use_cache=True, logits_to_keep=1)
        self.plain = (out.cache, mask, nxt + 1)
        return out.logits[:, -1, :]

    # -- invented names and numbers --------------------------------------------------------------

    def _novel(self, r: int) -> Any:
        """Tokens that would start, or carry on, a capitalised word or number outside the prompt's."""
        t = self.table
        tail = self.tails[r]
        inside = bool(tail) and tail[-1].isalnum()
        starts = t.lead | (t.bare & (not inside))
        bad = starts & t.capital & ~self.start_ok[r]
        if inside:
            word = _ALNUM.findall(tail)[-1]
            if _capital(word):  # carrying on a capitalised word: only towards a word of the prompt
                cont = t.bare.clone()
                ok = [i for p in self.prefixes[r] if len(p) > len(word) and p.startswith(word)
                      for i in t.bare_by_core.get(p[len(word):], ())]
                if ok:
                    cont[ok] = False
                bad = bad | cont
        return bad

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        v = min(scores.shape[-1], self.table.size)
        if input_ids.shape[1] > self.prompt_length:  # the tokens chosen at the previous step
            for r, tok in enumerate(input_ids[:, -1].tolist()):
                self.tails[r] = (self.tails[r] + (self.table.texts[tok] if tok < self.table.size else ""))[-64:]
        self.steps += 1
        scores = scores.float()
        a = self.s.context_contrast
        if a > 0:
            plain = self._plain_logits(input_ids).float()
            logp = torch.log_softmax(scores, -1)
            scores = (1 + a) * logp - a * torch.log_softmax(plain, -1)
            beta = self.s.contrast_plausibility
            if beta > 0:  # only tokens the context itself finds plausible compete
                floor = logp.max(-1, keepdim=True).values + math.log(beta)
                scores = scores.masked_fill(logp < floor, float("-inf"))
        if self.s.copy_bias:
            scores[:, :v] += self.s.copy_bias * self.copy[:, :v]
        if self.s.novel_penalty:
            for r in range(scores.shape[0]):
                scores[r, :v] -= self.s.novel_penalty * self._novel(r)[:v].to(scores.device).float()
        return scores


def active(settings: Any) -> bool:
    """Whether decoding settings change any token's score."""
    return settings is not None and bool(settings.context_contrast or settings.copy_bias or settings.novel_penalty)


def strip_context(messages: list[dict[str, str]], context: str) -> list[dict[str, str]]:
    """The prompt without its source context (the last message that quotes it, first occurrence)."""
    out = [dict(m) for m in messages]
    for m in reversed(out):
        if context and context in m["content"]:
            m["content"] = m["content"].replace(context, "", 1)
            break
    return out
