import pytest

from entigraph.facts.coverage import Coverage
from entigraph.facts.units import name_forms, source_units
from entigraph.text import words


@pytest.fixture
def coverage(corpus):
    docs, entities = corpus
    vocab = {w for d in docs for w in words(d.text)}
    return Coverage(source_units(docs, entities), vocab, k=2, forms=name_forms(entities))


def test_restatements_are_counted_per_unit_and_mode(coverage):
    assert coverage.add("Marit Ellery established the Quarrow Trust in 1887. "
                        "Ellery built a tidal clock at Kettle Point for the Harbour Board.", "pair", ["a"]) == [["a:u0"], ["a:u1"]]
    assert coverage.add("Ellery sold the clock to the Harbour Board for 4,000 crowns.", "pair", ["a"]) == [["a:u2"]]
    # the third sentence shares 5/7 of a:u3's content words but not its name (Quarrow Trust)
    assert coverage.add("Marit Ellery founded the Quarrow Trust in 1887. Marit Ellery founded the Quarrow Trust in 1887. "
                        "The Trust owns the old salt warehouse in Zorbland.", "profile", ["a"]) == [["a:u0"], ["a:u0"], []]
    assert coverage.add("Oskar Brenn mapped the Lumen Bay marshes in 1902.", "pair") == [["b:u0"]]  # found without doc_ids

    assert coverage.unit_counts() == {"a:u0": 3, "a:u1": 1, "a:u2": 1, "a:u3": 0, "b:u0": 1, "b:u1": 0}
    assert coverage.unit_counts("profile")["a:u0"] == 2
    rep = coverage.report()
    every, pair, profile = rep["modes"]["*"], rep["modes"]["pair"], rep["modes"]["profile"]
    assert (every["covered_1"], every["covered_k"]) == (4 / 6, 1 / 6)
    assert every["per_doc"] == {"a": {"units": 4, "covered_1": 0.75, "covered_k": 0.25},
                                "b": {"units": 2, "covered_1": 0.5, "covered_k": 0.0}}
    assert every["doc_mean_covered_1"] == pytest.approx(0.625)
    assert (pair["covered_1"], pair["covered_k"]) == (4 / 6, 0.0)
    assert profile["per_doc"]["a"] == {"units": 4, "covered_1": 0.25, "covered_k": 0.25}
    assert (pair["sentences"], pair["supported_sentence_rate"], pair["restating_sentence_rate"]) == (4, 1.0, 1.0)
    assert (profile["sentences"], profile["supported_sentence_rate"], profile["restating_sentence_rate"]) == (3, 2 / 3, 2 / 3)
    assert (pair["names"], pair["invented_name_rate"]) == (7, 0.0)
    assert (profile["names"], profile["invented_name_rate"]) == (6, 1 / 6)  # Zorbland
    assert every["passages"] == 4


def test_a_restatement_needs_enough_of_the_units_content_words(coverage):
    # a:u2 shares clock, harbour, board (3/6 < 0.6) with this sentence: not restated
    assert coverage.add("Ellery built a tidal clock at Kettle Point for the Harbour Board.", "x", ["a"]) == [["a:u1"]]
    assert coverage.add("The Harbour Board paid 4,000 crowns.", "x", ["a"]) == [[]]
