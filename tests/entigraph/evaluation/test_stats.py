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
