"""Exact match, ROUGE-L, bootstrap intervals and the one-parameter-fits-all choice."""

import math

import pytest

from entigraph.selfguide.metrics import bootstrap_ci, exact_match, paired_gain, rouge_l, score, summarize
from entigraph.selfguide.search import choose


def test_exact_match_is_normalised_and_label_aware():
    assert exact_match("Entailment.", "Entailment", ["Entailment", "Neutral"]) == 1.0
    assert exact_match("the answer is neutral", "Neutral", ["Entailment", "Neutral"]) == 1.0
    assert exact_match("Entailment", "Neutral", ["Entailment", "Neutral"]) == 0.0
    assert exact_match("neutral or entailment", "Neutral", ["Entailment", "Neutral"]) == 1.0  # first word
    assert exact_match("maybe", "Neutral", ["Entailment", "Neutral"]) == 0.0
    assert exact_match("  Pollution, harms! ", "pollution harms") == 1.0  # no label set
    assert exact_match("pollution", "pollution harms") == 0.0


def test_rouge_l_known_values():
    assert rouge_l("the cat sat on the mat", "the cat sat on the mat") == 1.0
    assert rouge_l("dog", "the cat sat") == 0.0
    # LCS "the cat the" = 3 of 4 predicted, 3 of 6 reference: F1 = 2*0.75*0.5/1.25 = 0.6
    assert rouge_l("the cat the mat", "the cat sat on the rug") == pytest.approx(0.6)
    assert rouge_l("harms", "harming") == 1.0  # Porter stemming
    assert score("x", "x", "rouge_l") == 1.0
    with pytest.raises(ValueError):
        score("x", "x", "bleu")


def test_bootstrap_intervals():
    lo, hi = bootstrap_ci([1.0] * 20, resamples=200)
    assert lo == hi == 1.0
    lo, hi = bootstrap_ci([0.0, 1.0] * 50, resamples=500, seed=1)
    assert 0.35 < lo < 0.5 < hi < 0.65
    s = summarize([0.0, 1.0, 1.0, 1.0], n=100)
    assert s["mean"] == 75.0 and s["n"] == 4 and s["ci95"][0] <= 75 <= s["ci95"][1]
    assert math.isnan(summarize([], n=10)["mean"])
    g = paired_gain([1.0, 1.0, 0.0], [0.0, 1.0, 0.0], n=100)
    assert g["mean"] == pytest.approx(100 / 3)
    with pytest.raises(ValueError):
        paired_gain([1.0], [1.0, 0.0])


def test_choose_maximises_the_worst_gain():
    points = [
        {"temperature": 0.7, "epochs": 1, "gains": {"a": 10.0, "b": -5.0}},  # worst -5
        {"temperature": 0.7, "epochs": 3, "gains": {"a": 2.0, "b": 1.0}},  # worst 1: chosen
        {"temperature": 1.0, "epochs": 1, "gains": {"a": 30.0, "b": 0.5}},  # best mean, worse worst
        {"temperature": 1.0, "epochs": 3, "gains": {"a": 1.0, "b": 1.0}},  # ties: the earlier wins
    ]
    best = choose(points)
    assert (best["temperature"], best["epochs"], best["worst"]) == (0.7, 3, 1.0)
    with pytest.raises(ValueError):
        choose([])
