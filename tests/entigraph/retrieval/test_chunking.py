import pytest

from entigraph.records import Document
from entigraph.retrieval.chunking import chunk_document, count_words, sentence_spans

TEXT = ("The Harbour Guild built the tidal clock in 1887. It stood on the quay for forty years! "
        "Mara Velt kept its records. Did anyone ask why? Oskar Brenn said “the sea keeps time.” "
        "The clock was moved to Kettle Point in 1931.")


def doc(text=TEXT, title="Tidal clock"):
    return Document("d-0000", title, text)


def test_sentence_spans_cover_every_sentence():
    spans = sentence_spans(TEXT)
    assert [TEXT[s:e] for s, e in spans][:2] == [
        "The Harbour Guild built the tidal clock in 1887.", "It stood on the quay for forty years!"]
    assert TEXT[spans[4][0]:spans[4][1]] == "Oskar Brenn said “the sea keeps time.”"
    assert len(spans) == 6


def test_chunks_respect_size_keep_sentences_whole_and_overlap():
    chunks = chunk_document(doc(), size=20, overlap=8, title_prefix=False)
    assert len(chunks) > 1
    for c in chunks:
        assert count_words(c.text) <= 20
        assert c.text == TEXT[c.start:c.end]
        assert c.text.endswith((".", "!", "?", "”"))  # windows end on sentence boundaries
    for a, b in zip(chunks, chunks[1:]):
        assert b.start < a.end  # consecutive chunks share at least one sentence
        assert b.start > a.start  # and always move forward
    assert chunks[-1].end == len(TEXT)
    assert [c.chunk_id for c in chunks][:2] == ["d-0000:c0000", "d-0000:c0001"]


def test_overlong_sentence_is_cut_by_words():
    text = " ".join(f"w{i}" for i in range(55)) + "."
    chunks = chunk_document(doc(text), size=20, overlap=0, title_prefix=False)
    assert [count_words(c.text) for c in chunks] == [20, 20, 15]


def test_title_prefix_and_token_unit():
    c = chunk_document(doc(), size=200, overlap=0)[0]
    assert c.indexed_text.startswith("Tidal clock\nThe Harbour Guild")
    assert chunk_document(doc(), size=200, overlap=0, title_prefix=False)[0].indexed_text.startswith("The Harbour")
    chars = chunk_document(doc(), size=60, overlap=0, length=len)  # any length function: here characters
    assert all(len(x.text) <= 60 for x in chars)


def test_bad_sizes_and_empty_document():
    with pytest.raises(ValueError):
        chunk_document(doc(), size=10, overlap=10)
    assert chunk_document(doc("   "), size=10, overlap=2) == []
