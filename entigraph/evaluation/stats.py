"""Intervals and paired tests for accuracies over a few hundred questions, where a 5-point
difference can be noise.

- bootstrap_ci: seeded percentile bootstrap of the mean of 0/1 outcomes.
- wilson_ci: Wilson score interval (closed form; better than the normal one near 0 or 1).
- mcnemar_exact: two-sided exact McNemar test = binomial test on the discordant pairs.
- paired_bootstrap: the difference of two conditions on the same questions, resampling questions.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy.stats import binomtest


def bootstrap_ci(correct: Sequence[float], resamples: int = 2000, seed: int = 0, level: float = 0.95
                 ) -> tuple[float, float]:
    x = np.asarray(correct, dtype=np.float64)
    if x.size == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(resamples, x.size))].mean(axis=1)
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def wilson_ci(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    if n == 0:
        return (float("nan"), float("nan"))
    from scipy.stats import norm

    z = float(norm.ppf(1 - (1 - level) / 2))
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def mcnemar_exact(a: Sequence[bool], b: Sequence[bool]) -> dict:
    """Exact two-sided McNemar test on paired outcomes: among questions where exactly one
    condition is right, is "a right, b wrong" as common as the reverse?"""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError("paired outcomes must have the same length")
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    n = only_a + only_b
    p = 1.0 if n == 0 else float(binomtest(only_a, n, 0.5, alternative="two-sided").pvalue)
    return {"only_a": only_a, "only_b": only_b, "p": min(1.0, p)}


def paired_bootstrap(a: Sequence[float], b: Sequence[float], resamples: int = 2000, seed: int = 0,
                     level: float = 0.95) -> dict:
    """mean(a) - mean(b) with a percentile interval from resampling the same questions for both."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError("paired outcomes must have the same length")
    if a.size == 0:
        return {"diff": float("nan"), "ci95": [float("nan"), float("nan")]}
    d = a - b
    rng = np.random.default_rng(seed)
    diffs = d[rng.integers(0, d.size, size=(resamples, d.size))].mean(axis=1)
    alpha = (1 - level) / 2
    return {"diff": float(d.mean()), "ci95": [float(np.quantile(diffs, alpha)), float(np.quantile(diffs, 1 - alpha))]}
