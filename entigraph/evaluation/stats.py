"""Intervals and paired tests for accuracies over a few hundred questions, where a 5-point
difference can be noise.

- bootstrap_ci: seeded percentile bootstrap of the mean of 0/1 outcomes (scipy.stats.bootstrap).
- wilson_ci: Wilson score interval (scipy.stats.binomtest(...).proportion_ci(method="wilson")).
- mcnemar_exact: two-sided exact McNemar test = binomial test on the discordant pairs (binomtest).
- paired_bootstrap: the difference of two conditions on the same questions, resampling questions.

The bootstraps draw their resamples as the hand-written ones they replace did (one seeded
generator, resamples x questions indices at once, numpy's linear quantiles), so recorded intervals
are reproduced to within 1e-12 (tests/entigraph/evaluation/test_stats.py checks it).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.stats import binomtest, bootstrap


def _percentile_mean_ci(x: np.ndarray, resamples: int, seed: int, level: float) -> tuple[float, float]:
    if x.size == 1:  # every resample is the one value (scipy needs two observations)
        return float(x[0]), float(x[0])
    r = bootstrap((x,), np.mean, n_resamples=resamples, confidence_level=level, method="percentile",
                  vectorized=True, rng=np.random.default_rng(seed))
    return float(r.confidence_interval.low), float(r.confidence_interval.high)


def bootstrap_ci(correct: Sequence[float], resamples: int = 2000, seed: int = 0, level: float = 0.95
                 ) -> tuple[float, float]:
    x = np.asarray(correct, dtype=np.float64)
    if x.size == 0:
        return (float("nan"), float("nan"))
    return _percentile_mean_ci(x, resamples, seed, level)


def wilson_ci(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    if n == 0:
        return (float("nan"), float("nan"))
    ci = binomtest(k, n).proportion_ci(confidence_level=level, method="wilson")
    return max(0.0, float(ci.low)), min(1.0, float(ci.high))


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
    return {"diff": float(d.mean()), "ci95": list(_percentile_mean_ci(d, resamples, seed, level))}
