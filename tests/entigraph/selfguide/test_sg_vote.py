"""Self-consistency vote, label mapping, balancing, and the SELF-GUIDE filters."""

from entigraph.selfguide.annotate import vote
from entigraph.selfguide.settings import SGFilterConfig
from entigraph.text import length_bounds
from entigraph.selfguide.gates import InputFilter, OutputFilter, balance
from entigraph.selfguide.metrics import map_label
from entigraph.selfguide.tasks import Task, clean_output


def task(kind="classification", labels=("Entailment", "Neutral", "Contradiction")):
    return Task(task="t", kind=kind, metric="exact_match" if kind == "classification" else "rouge_l",
                instruction="Do the task.", labels=list(labels) if kind == "classification" else None,
                examples=[{"input": "one two three four", "output": "a b"},
                          {"input": "one two three four five six", "output": "a b c d"}],
                noise_terms=["input", "\n\n"])


def test_map_label():
    labels = ["Entailment", "Neutral", "Contradiction"]
    assert map_label("entailment.", labels) == "Entailment"
    assert map_label("Neutral - the premise says nothing", labels) == "Neutral"
    assert map_label("I think it is a contradiction", labels) == "Contradiction"
    assert map_label("Entailment or Neutral", labels) == "Entailment"  # first word decides
    assert map_label("either neutral or contradiction", labels) is None  # two labels: ambiguous
    assert map_label("no idea", labels) is None
    assert map_label("", labels) is None
    assert map_label("The answer is 2.", ["1", "2", "3"]) == "2"
    assert map_label("E", ["C", "E", "N"]) == "E"


def test_vote_classification():
    t = task()
    assert vote(["Neutral", "neutral.", "Entailment"], t, 2) == ("Neutral", None, 2)
    assert vote(["Neutral", "Entailment", "Contradiction"], t, 2) == (None, "no_agreement", 1)
    assert vote(["what?", "", "hmm"], t, 2) == (None, "unmappable_label", 0)
    # unmappable samples do not vote, but a mapped majority still wins
    assert vote(["Neutral", "?", "Neutral"], t, 2) == ("Neutral", None, 2)
    assert vote(["Neutral", "Entailment", "Neutral", "Entailment"], t, 2)[1] == "no_agreement"  # tie


def test_vote_generation_by_normalised_text():
    t = task("generation")
    assert vote(["Pollution harms.", "pollution harms", "water"], t, 2) == ("Pollution harms.", None, 2)
    assert vote(["a", "b", "c"], t, 2)[1] == "no_agreement"
    assert vote(["", " "], t, 1)[1] == "empty_output"
    assert vote(["a", "b", "c"], t, 1)[1] == "no_agreement"  # a three-way tie is no agreement


def test_balance_downsamples_to_the_rarest_label():
    rows = [{"id": str(i), "output": lab} for i, lab in enumerate("AAAAABBC")]
    kept, dropped = balance(rows, seed=0)
    assert sorted(r["output"] for r in kept) == ["A", "B", "C"]
    assert len(dropped) == 5
    assert balance(rows, seed=0)[0] == kept  # seeded
    assert balance([], 0) == ([], [])


def test_input_filters_record_their_reason():
    t = task()
    f = InputFilter(t, SGFilterConfig(noise_terms=["Sure,"], length_sigma=2.0))
    lo, hi = length_bounds([4, 6], 2.0, ddof=1)
    assert (lo, hi) == (5 - 2 * 2 ** 0.5, 5 + 2 * 2 ** 0.5)
    assert f.reason("  ") == "empty_input"
    assert f.reason("one two three four") == "duplicate"  # a copy of a seed example
    assert f.reason("Sure, here are five words") == "noise_input:'Sure,'"
    assert f.reason("the input is five words") == "noise_input:'input'"  # the task's own terms
    assert f.reason("two\n\nparagraphs of five words") == "noise_input:'\\n\\n'"
    assert f.reason("x") == "length_input"
    assert f.reason("a fresh example of five") is None
    assert f.reason("a fresh  example of five") == "duplicate"  # whitespace-insensitive
    assert InputFilter(t, SGFilterConfig(task_noise_terms=False)).reason("the input is five words") is None


def test_output_filters_only_for_generation():
    assert OutputFilter(task(), SGFilterConfig()).reason("") is None  # a label is not filtered
    f = OutputFilter(task("generation"), SGFilterConfig())
    assert f.reason("") == "empty_output"
    assert f.reason("one two three") is None
    assert f.reason(" ".join(["w"] * 12)) == "length_output"


def test_clean_output_cuts_at_the_next_field():
    assert clean_output(" Neutral\nInput: something else\nOutput: E") == "Neutral"
    assert clean_output("pollution harms.\n\noutput: x") == "pollution harms."
