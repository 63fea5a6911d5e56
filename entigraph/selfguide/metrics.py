"""Label mapping, exact match (label-aware), ROUGE-L and bootstrap intervals."""

from __future__ import annotations

import re
import string
from functools import lru_cache

import numpy as np

_PUNCT = re.compile(f"[{re.escape(string.punctuation)}]")


def normalize(text: str) -> str:
    """Lower case, no punctuation, single spaces (SQuAD-style answer normalisation)."""
    return " ".join(_PUNCT.sub(" ", text.lower()).split())


def map_label(text: str, labels: list[str]) -> str | None:
    """Map a free-text answer onto the label set, or None when it is not one label.

    In order: the whole answer is a label; its first word is a label; exactly one label
    occurs in it as a whole word (so "The answer is 2." maps to "2", but "yes or no" maps to none).
    """
    norm = normalize(text)
    if not norm:
        return None
    by_norm = {normalize(lab): lab for lab in labels}
    if norm in by_norm:
        return by_norm[norm]
    first = norm.split()[0]
    if first in by_norm:
        return by_norm[first]
    found = [lab for key, lab in by_norm.items() if key and re.search(rf"\b{re.escape(key)}\b", norm)]
    return found[0] if len(found) == 1 else None


def exact_match(prediction: str, gold: str, labels: list[str] | None = None) -> float:
    """1.0 when the normalised prediction equals the gold answer; with a label set the prediction
    is first mapped onto it, so "Entailment." and "entailment" both count for "Entailment"."""
    if labels:
        mapped = map_label(prediction, labels)
        return float(mapped is not None and normalize(mapped) == normalize(gold))
    return float(normalize(prediction) == normalize(gold))


@lru_cache(maxsize=1)
def _scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l(prediction: str, gold: str) -> float:
    """ROUGE-L F1 (rouge-score, Porter stemming), as Super-NaturalInstructions reports it."""
    return _scorer().score(gold, prediction)["rougeL"].fmeasure


def score(prediction: str, gold: str, metric: str, labels: list[str] | None = None) -> float:
    if metric == "exact_match":
        return exact_match(prediction, gold, labels)
    if metric == "rouge_l":
        return rouge_l(prediction, gold)
    raise ValueError(f"unknown metric {metric!r}")


def bootstrap_ci(scores: list[float], n: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Percentile 95 % interval of the mean over resampled rows."""
    if not scores:
        return (float("nan"), float("nan"))
    x = np.asarray(scores, dtype=float)
    idx = np.random.default_rng(seed).integers(0, len(x), size=(n, len(x)))
    means = x[idx].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def summarize(scores: list[float], n: int = 1000, seed: int = 0) -> dict:
    """Mean and interval in points (0-100), the scale the paper reports."""
    lo, hi = bootstrap_ci(scores, n, seed)
    mean = float(np.mean(scores)) if scores else float("nan")
    return {"mean": 100 * mean, "ci95": [100 * lo, 100 * hi], "n": len(scores)}


def paired_gain(finetuned: list[float], baseline: list[float], n: int = 1000, seed: int = 0) -> dict:
    """Gain of the fine-tuned model over prompting on the same rows, with a paired interval."""
    if len(finetuned) != len(baseline):
        raise ValueError("paired_gain needs scores on the same rows")
    return summarize([a - b for a, b in zip(finetuned, baseline)], n, seed)
