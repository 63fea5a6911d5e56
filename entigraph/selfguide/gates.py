"""SELF-GUIDE's gates on generated examples, built on the shared noise and length checks
(entigraph/text.py); each returns why it drops an example.

Inputs: empty, exact duplicate (of a seed example or an earlier input), noise term, length.
Outputs (generation tasks): empty, noise term, length. Lengths are words and must lie within
mean ± sigma·std of the seed examples (inputs always; outputs for generation tasks only, since a
classification output is a label).
"""

from __future__ import annotations

import random
from collections import defaultdict

from ..text import length_bounds, noise_found
from .settings import SGFilterConfig
from .tasks import Task


def word_count(text: str) -> int:
    return len(text.split())


def noise_terms(task: Task, cfg: SGFilterConfig) -> list[str]:
    terms = list(cfg.noise_terms) + (list(task.noise_terms) if cfg.task_noise_terms else [])
    return list(dict.fromkeys(t for t in terms if t))


def dedup_key(text: str) -> str:
    return " ".join(text.split())


def _reason(text: str, terms: list[str], bounds: tuple[float, float], side: str) -> str | None:
    """empty, noise term, or length outside the seed examples' bounds (in that order), or None."""
    if not text.strip():
        return f"empty_{side}"
    found = noise_found(text, terms)
    if found:
        return f"noise_{side}:{found[0]!r}"
    return None if bounds[0] <= word_count(text) <= bounds[1] else f"length_{side}"


class InputFilter:
    """Stateful: remembers kept inputs, so the second copy of an input is the duplicate."""

    def __init__(self, task: Task, cfg: SGFilterConfig):
        self.terms = noise_terms(task, cfg)
        self.bounds = length_bounds([word_count(e["input"]) for e in task.examples], cfg.length_sigma, ddof=1)
        self.seen = {dedup_key(e["input"]) for e in task.examples}

    def reason(self, text: str) -> str | None:
        """Why `text` is dropped, or None (and then it counts as seen)."""
        if text.strip() and dedup_key(text) in self.seen:
            return "duplicate"
        why = _reason(text, self.terms, self.bounds, "input")
        if why is None:
            self.seen.add(dedup_key(text))
        return why


class OutputFilter:
    def __init__(self, task: Task, cfg: SGFilterConfig):
        self.active = not task.is_classification
        self.terms = noise_terms(task, cfg)
        self.bounds = length_bounds([word_count(e["output"]) for e in task.examples], cfg.length_sigma, ddof=1)

    def reason(self, text: str) -> str | None:
        return _reason(text, self.terms, self.bounds, "output") if self.active else None


def balance(rows: list[dict], seed: int) -> tuple[list[dict], list[dict]]:
    """Downsample every label to the count of the rarest label present; returns (kept, dropped)."""
    by_label: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_label[row["output"]].append(row)
    if not by_label:
        return [], []
    cap = min(len(v) for v in by_label.values())
    rng = random.Random(seed)
    keep_ids = set()
    for label in sorted(by_label):
        group = by_label[label]
        keep_ids.update(r["id"] for r in (group if len(group) <= cap else rng.sample(group, cap)))
    kept = [r for r in rows if r["id"] in keep_ids]
    dropped = [r for r in rows if r["id"] not in keep_ids]
    return kept, dropped
