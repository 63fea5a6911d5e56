import json

import pytest

from entigraph.corpus import load_corpus, split_passages
from entigraph.errors import InputError
from entigraph.records import Document


def test_loads_every_format(tmp_path):
    (tmp_path / "a.txt").write_text("Alpha Title\n\nSome text about Alpha.")
    (tmp_path / "b.md").write_text("# Beta\n\nMore text.")
    (tmp_path / "c.jsonl").write_text(json.dumps({"title": "Gamma", "text": "Gamma text."}) + "\n")
    (tmp_path / "q.jsonl").write_text(json.dumps({"input": "Delta\n\nDelta text.", "instructions": [],
                                                  "outputs": []}) + "\n")
    docs = load_corpus([str(tmp_path)])
    assert [d.title for d in docs] == ["Alpha Title", "Beta", "Gamma", "Delta"]
    assert len({d.doc_id for d in docs}) == 4


def test_demo_corpus_ships_with_the_package():
    docs = load_corpus(["demo"])
    assert 4 <= len(docs) <= 6
    words = sum(len(d.text.split()) for d in docs)
    assert 3000 <= words <= 6000


def test_non_utf8_file_is_decoded_not_fatal(tmp_path):
    (tmp_path / "latin.txt").write_bytes("Caf\xe9 Lum\xe8re opened in Saltmere.".encode("latin-1"))
    (doc,) = load_corpus([str(tmp_path / "latin.txt")])
    assert "Café" in doc.text
    assert doc.meta["encoding"] == "cp1252"


@pytest.mark.parametrize("name,content,message", [
    ("bad.jsonl", '{"text": "ok"}\n{broken\n', r"bad.jsonl: line 2: not valid JSON"),
    ("notext.jsonl", '{"body": "x"}\n', "no text field 'text'"),
    ("x.pdf", "binary", r"x.pdf: not a PDF"),
    ("x.xyz", "text", r"x.xyz: unknown file type .xyz"),
])
def test_bad_input_names_the_file(tmp_path, name, content, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(InputError, match=message):
        load_corpus([str(tmp_path / name)])


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="corpus file not found"):
        load_corpus([str(tmp_path / "missing.txt")])


def test_passages_cover_the_document_with_overlap_and_true_offsets():
    text = " ".join(f"Sentence number {i} ends here." for i in range(200))
    doc = Document("d", "t", text)
    passages = split_passages(doc, words=50, overlap=10)
    assert passages[0].start == 0 and passages[-1].end == len(text)
    for a, b in zip(passages, passages[1:]):
        assert b.start < a.end  # overlap
        assert b.start > a.start  # progress
    for p in passages:
        assert text[p.start:p.end] == p.text
        assert len(p.text.split()) <= 50


def test_empty_document_has_no_passages():
    assert split_passages(Document("d", "t", "   \n"), 50, 10) == []


def test_skip_and_limit_docs_select_a_held_out_range(demo_corpus_path):
    everything = load_corpus([demo_corpus_path])
    picked = load_corpus([demo_corpus_path], limit_docs=2, skip_docs=1)
    assert [d.doc_id for d in picked] == [d.doc_id for d in everything[1:3]]
