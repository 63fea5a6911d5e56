import math

import numpy as np
import pytest

from entigraph.evaluation.stats import bootstrap_ci, mcnemar_exact, paired_bootstrap, wilson_ci


def test_bootstrap_ci_is_seeded_and_brackets_the_mean():
    x = [1] * 30 + [0] * 70
    lo, hi = bootstrap_ci(x, 2000, seed=3)
    assert (lo, hi) == bootstrap_ci(x, 2000, seed=3)
    assert lo < 0.3 < hi and 0.19 < lo < 0.23 and 0.37 < hi < 0.41  # ~ 0.3 ± 1.96 * 0.046
    assert bootstrap_ci([1, 1, 1], 100) == (1.0, 1.0)
    assert all(math.isnan(v) for v in bootstrap_ci([], 100))


def test_wilson_known_values():
    lo, hi = wilson_ci(30, 100)
    assert lo == pytest.approx(0.2189, abs=1e-3) and hi == pytest.approx(0.3958, abs=1e-3)
    lo, hi = wilson_ci(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-3)


def test_mcnemar_exact_on_discordant_pairs():
    # 10 questions only a gets right, 0 only b: p = 2 * 0.5**10
    a = [True] * 10 + [True] * 5 + [False] * 5
    b = [False] * 10 + [True] * 5 + [False] * 5
    r = mcnemar_exact(a, b)
    assert (r["only_a"], r["only_b"]) == (10, 0)
    assert r["p"] == pytest.approx(2 * 0.5 ** 10)
    assert mcnemar_exact(a, a)["p"] == 1.0
    assert mcnemar_exact([True, False], [False, True])["p"] == 1.0  # 1 vs 1
    with pytest.raises(ValueError):
        mcnemar_exact([True], [True, False])


def test_paired_bootstrap_difference():
    rng = np.random.default_rng(0)
    b = rng.random(400) < 0.3
    a = b | (rng.random(400) < 0.2)  # a is right wherever b is, and more often
    r = paired_bootstrap(a, b, 1000, seed=0)
    assert r["diff"] == pytest.approx(a.mean() - b.mean())
    assert 0 < r["ci95"][0] < r["diff"] < r["ci95"][1]
    assert paired_bootstrap(b, b, 200)["ci95"] == [0.0, 0.0]


def _hand_bootstrap(x, resamples, seed, level=0.95):
    """The hand-written percentile bootstrap scipy replaced: the recorded intervals came from it."""
    x = np.asarray(x, dtype=np.float64)
    means = x[np.random.default_rng(seed).integers(0, x.size, size=(resamples, x.size))].mean(axis=1)
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def _hand_wilson(k, n, z=1.959963984540054):
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@pytest.mark.parametrize("n", [2, 10, 50, 237])
def test_scipy_intervals_equal_the_hand_written_ones(n):
    rng = np.random.default_rng(n)
    a = (rng.random(n) < 0.6).astype(float)
    b = (rng.random(n) < 0.5).astype(float)
    for seed in (0, 7):
        # the same resamples: equal up to the rounding of the quantile's interpolation
        assert bootstrap_ci(a, 2000, seed) == pytest.approx(_hand_bootstrap(a, 2000, seed), abs=1e-12)
        assert paired_bootstrap(a, b, 1000, seed)["ci95"] == pytest.approx(_hand_bootstrap(a - b, 1000, seed),
                                                                           abs=1e-12)
    assert bootstrap_ci(a, 500, 0, level=0.9) == pytest.approx(_hand_bootstrap(a, 500, 0, level=0.9), abs=1e-12)
    for k in (0, 1, n // 2, n):
        assert wilson_ci(k, n) == pytest.approx(_hand_wilson(k, n), abs=1e-12)
    assert bootstrap_ci([1.0], 100) == (1.0, 1.0)
