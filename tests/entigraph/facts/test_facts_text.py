from entigraph.text import (
    content_words,
    numbers,
    sentence_spans,
    sentences,
    strip_list_marker,
)


def test_sentence_spans_are_offsets_of_trimmed_sentences():
    text = "  Zaronix Ltd. employs 6,000 people. Alex Gorsky runs Zaronix Ltd. Under his lead, Dr. Vale met J. Pell.\nA line"
    spans = sentence_spans(text)
    assert [text[a:b] for a, b in spans] == [
        "Zaronix Ltd. employs 6,000 people.",
        "Alex Gorsky runs Zaronix Ltd.",
        "Under his lead, Dr. Vale met J. Pell.",
        "A line",
    ]


def test_quotes_and_list_markers_stay_in_their_sentence():
    assert sentences('He said "It is done." Then he left.') == ['He said "It is done."', "Then he left."]
    assert sentences("Points:\n1. Growth in 2010.\n2. Decline.") == ["Points:", "1. Growth in 2010.", "2. Decline."]
    assert strip_list_marker("2. Growth in 2010.") == "Growth in 2010."
    assert strip_list_marker("1990 was a year.") == "1990 was a year."


def test_numbers_and_content_words():
    assert numbers("It cost 4,000 crowns in the 1990s, not 2.5.") == ["4000", "1990", "2.5"]
    # function words and digits go; the rest is cut to a 6-letter stem
    assert content_words("The Trust established the establishment in 1887") == ["trust", "establ", "establ"]
