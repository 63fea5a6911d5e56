"""SELF-GUIDE task metrics: exact match (label-aware, shared with QA evaluation), ROUGE-L, intervals."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..evaluation.answers import exact_match, map_label, normalize_answer
from ..evaluation.stats import bootstrap_ci

__all__ = ["bootstrap_ci", "exact_match", "map_label", "normalize_answer", "paired_gain", "rouge_l", "score",
           "summarize"]

@lru_cache(maxsize=1)
def _scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l(prediction: str, gold: str) -> float:
    """ROUGE-L F1 (rouge-score, Porter stemming), as Super-NaturalInstructions reports it."""
    return _scorer().score(gold, prediction)["rougeL"].fmeasure


def score(prediction: str, gold: str, metric: str, labels: list[str] | None = None) -> float:
    if metric == "exact_match":
        return float(exact_match(prediction, gold, labels))
    if metric == "rouge_l":
        return rouge_l(prediction, gold)
    raise ValueError(f"unknown metric {metric!r}")


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
