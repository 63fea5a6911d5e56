"""The extract stage end to end: files written, odd inputs, the LLM and hybrid extractors."""

import json

import pytest

from entigraph import artifacts
from entigraph.graph import load_graph
from entigraph.stages import extract
from entigraph.backends.base import Generation
from entigraph.config import load_config

FILES = ("documents.jsonl", "passages.jsonl", "entities.jsonl", "graph.graphml", "graph.json",
         "graph.png", "summary.json")


def cfg_for(tmp_path, paths, *overrides):
    return load_config(None, [f"run_dir={tmp_path / 'runs'}", "name=t", f"corpus.paths={json.dumps(paths)}",
                              *overrides])


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, demo_corpus_path):
    tmp = tmp_path_factory.mktemp("demo")
    cfg = cfg_for(tmp, [demo_corpus_path], "entities.max_per_doc=25")
    return cfg, extract.run(cfg)


def test_demo_corpus(demo_run):
    cfg, summary = demo_run
    out = artifacts.stage_dir(cfg.out, "extract")
    assert all((out / f).is_file() for f in FILES)
    assert summary["documents"] == 5 and summary["entities"] > 20 and summary["edges"] > 50
    assert summary["entities_per_doc_max"] <= 25 and summary["failures"] == 0
    ents = artifacts.entities(cfg.out)
    names = {e.name for e in ents}
    assert {"Marit Ellery", "Quarrow"} <= names
    marit = next(e for e in ents if e.name == "Marit Ellery")
    assert marit.label == "PERSON" and marit.doc_freq >= 2 and "Ellery" in marit.aliases
    docs = {d.doc_id: d for d in artifacts.documents(cfg.out)}
    assert all(docs[m.doc_id].text[m.start:m.end] == m.text for e in ents for m in e.mentions)
    assert not names & {"one", "time", "a man", "the other"}
    graph = load_graph(out / "graph.graphml")
    assert graph.number_of_nodes() == len(ents) and graph.number_of_edges() == summary["edges"]
    lines = extract.summary_lines(summary)
    assert any("entities" in line and "merged aliases" in line for line in lines)


def test_empty_no_entity_and_cp1252_documents(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "empty.txt").write_text("", encoding="utf-8")
    (folder / "plain.txt").write_text("it was so. and then it was not. yes, no, maybe.\n", encoding="utf-8")
    (folder / "latin.txt").write_bytes(
        "Café Müller\n\nRenée Dubois opened the Café Müller in Zürich. Renée Dubois served crêpes; "
        "the café was Renée’s pride.".encode("cp1252"))
    cfg = cfg_for(tmp_path, [str(folder)], "entities.noun_phrases=false")
    (folder / "noise.bin.txt").write_bytes(bytes(range(256)) * 8)  # random bytes named .txt
    (folder / "notes.xyz").write_text("an unknown type")
    summary = extract.run(cfg)
    assert summary["documents"] == 2  # the empty file is skipped, with its reason recorded
    docs = {d.source.rsplit("/", 1)[-1]: d for d in artifacts.documents(cfg.out)}
    assert "Renée Dubois" in docs["latin.txt"].text and docs["latin.txt"].meta["encoding"] == "cp1252"
    assert "empty.txt" not in docs and "noise.bin.txt" not in docs
    skipped = {s["file"].rsplit("/", 1)[-1]: s["reason"] for s in summary["corpus"]["skipped"]}
    assert set(skipped) == {"empty.txt", "noise.bin.txt", "notes.xyz"}
    assert "empty" in skipped["empty.txt"] and "binary" in skipped["noise.bin.txt"]
    assert any("3 skipped" in line for line in extract.summary_lines(summary))
    ents = artifacts.entities(cfg.out)
    assert any(e.name == "Renée Dubois" for e in ents)
    assert all(m.doc_id == docs["latin.txt"].doc_id for e in ents for m in e.mentions)


class ScriptedBackend:
    name, model = "fake", "fake"

    def __init__(self, answer):
        self.answer = answer
        self.closed = False

    def generate(self, requests):
        return [Generation(self.answer(r.messages[-1]["content"])) for r in requests]

    def count_tokens(self, text):
        return len(text.split())

    def close(self):
        self.closed = True


def test_llm_extractor_records_failures(tmp_path, demo_corpus_path):
    def answer(prompt):  # valid JSON for the history document, garbage for the others
        if "Short History" in prompt:
            return '```json\n{"summary": "x", "entities": ["Ottoline Brask", "tide staff", "Atlantis",]}\n```'
        return "I am not sure."

    cfg = cfg_for(tmp_path, [demo_corpus_path], "entities.extractor=llm", "entities.llm_retries=1",
                  "corpus.limit_docs=2")
    summary = extract.run(cfg, backend=ScriptedBackend(answer))
    assert summary["failures"] >= 1 and summary["failure_details"][0]["attempts"] == 2
    saved = json.loads((artifacts.stage_dir(cfg.out, "extract") / "summary.json").read_text())
    assert saved["failures"] == summary["failures"]
    assert "Atlantis" in saved["dropped"]["llm: hallucinated (not in the document)"]["examples"]
    names = {e.name for e in artifacts.entities(cfg.out)}
    assert {"Ottoline Brask", "tide staff"} <= names


def test_hybrid_unions_both_extractors(tmp_path, demo_corpus_path):
    cfg = cfg_for(tmp_path, [demo_corpus_path], "entities.extractor=hybrid", "corpus.limit_docs=1",
                  "entities.noun_phrases=false")
    extract.run(cfg, backend=ScriptedBackend(lambda p: '{"entities": ["Marit Ellery", "drum gauge"]}'))
    ents = {e.name: e for e in artifacts.entities(cfg.out)}
    assert ents["Marit Ellery"].sources == ["llm", "spacy"]
    assert ents["drum gauge"].sources == ["llm"]
