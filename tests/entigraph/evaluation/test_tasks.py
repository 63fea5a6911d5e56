import json
from pathlib import Path

import pytest

from entigraph.config import RunConfig
from entigraph.corpus import load_corpus
from entigraph.errors import InputError
from entigraph.evaluation.tasks import load_questions, parse_leval_instruction, questions_for_run

ARTICLE = "THE TIDAL CLOCK\n\nThe Harbour Guild built the tidal clock in 1887. Mara Velt kept its records."
LEVAL_ROW = {
    "input": ARTICLE,
    "instructions": [
        "Who built the tidal clock?\n\n (A) Mara Velt \n (B) The Harbour Guild \n (C) Oskar Brenn \n (D) Nobody ",
        "When was it built?\n\n (A) 1887\n (B) 1901\n (C) 1931\n (D) 1963",
    ],
    "outputs": ["(B) The Harbour Guild", "(A) 1887"],
    "source": "quality_raw", "evaluation": "exam",
}


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_parse_leval_instruction():
    q, opts = parse_leval_instruction(LEVAL_ROW["instructions"][0])
    assert q == "Who built the tidal clock?"
    assert opts == ["Mara Velt", "The Harbour Guild", "Oskar Brenn", "Nobody"]


def test_leval_loader_ids_match_the_corpus_loader(tmp_path):
    path = write_jsonl(tmp_path / "Quality Dev.jsonl", [LEVAL_ROW, {**LEVAL_ROW, "input": "Other\n\ntext"}])
    docs, qs = load_questions(path)
    corpus_ids = [d.doc_id for d in load_corpus([str(path)])]
    assert [d.doc_id for d in docs] == corpus_ids == ["quality-dev-0000", "quality-dev-0001"]
    assert [(q.doc_id, q.answer, q.answer_text) for q in qs[:2]] == [
        ("quality-dev-0000", 1, "The Harbour Guild"), ("quality-dev-0000", 0, "1887")]
    assert qs[0].qid == "quality-dev-0000:q00" and qs[0].kind == "mc" and len(qs) == 4


def test_leval_loader_rejects_bad_answers(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [{**LEVAL_ROW, "outputs": ["(F) what", "(A) 1887"]}])
    with pytest.raises(InputError, match="bad.jsonl:1: question 1"):
        load_questions(path)


def test_original_quality_release_format(tmp_path):
    row = {"article_id": "51", "title": "The Tidal Clock", "article": ARTICLE, "questions": [
        {"question": "Who built it?", "options": ["Mara", "The Guild", "Oskar", "Nobody"], "gold_label": 2,
         "question_unique_id": "51_q1"}]}
    docs, qs = load_questions(write_jsonl(tmp_path / "quality.jsonl", [row]))
    assert docs[0].title == "The Tidal Clock" and docs[0].doc_id == "quality-0000"
    assert (qs[0].qid, qs[0].answer, qs[0].answer_text) == ("51_q1", 1, "The Guild")


def fictional_rows():
    def row(name, n=3):
        return {"train_context": f"{name} is a town. " * 5,
                **{f"{t}_input": [f"{name} {t} probe {j}" for j in range(n)] for t in ("mem", "gen", "hard_gen")},
                **{f"{t}_target": [f"{name} {t} target {j}" for j in range(n)] for t in ("mem", "gen", "hard_gen")}}
    return [row("Malm"), row("Oskarby"), row("Veltham")]


def test_fictional_probes_same_document_distractors(tmp_path):
    path = tmp_path / "fk.json"
    path.write_text(json.dumps(fictional_rows()))
    docs, qs = load_questions(path, probe_types=["gen"], num_options=3, seed=1)
    assert len(docs) == 3 and len(qs) == 9 and {q.kind for q in qs} == {"cloze"}
    q = qs[0]
    assert q.qid == "fk-0000:gen0" and q.question == "Malm gen probe 0" and q.options[q.answer] == "Malm gen target 0"
    assert all(o.startswith("Malm gen target") for o in q.options) and len(set(q.options)) == 3
    again = load_questions(path, probe_types=["gen"], num_options=3, seed=1)[1]
    assert [x.options for x in again] == [x.options for x in qs]  # seeded


def test_fictional_other_document_distractors_and_no_mc(tmp_path):
    path = tmp_path / "fk.json"
    path.write_text(json.dumps(fictional_rows()))
    _, qs = load_questions(path, probe_types=["mem", "hard_gen"], distractors="other_doc", num_options=4)
    assert len(qs) == 18 and {q.meta["probe_type"] for q in qs} == {"mem", "hard_gen"}
    q = qs[0]
    others = [o for i, o in enumerate(q.options) if i != q.answer]
    assert len(others) == 3 and not any(o.startswith("Malm") for o in others)
    assert all(o.split()[1] == "mem" for o in others)  # same probe type
    _, bare = load_questions(path, probe_types=["mem"], mc=False)
    assert bare[0].options == [] and bare[0].answer == -1 and bare[0].answer_text == "Malm mem target 0"


def test_simple_jsonl_answers_by_index_letter_text_and_short(tmp_path):
    rows = [
        {"question": "Colour?", "options": ["red", "blue"], "answer": 1, "doc_id": "x"},
        {"question": "Colour?", "options": ["red", "blue"], "answer": "A"},
        {"question": "Colour?", "options": ["red", "blue"], "answer": "(B) blue"},
        {"question": "Colour?", "options": ["red", "blue"], "answer": "Red"},
        {"question": "Who painted it?", "answer": "Oskar Brenn", "id": "own-1"},
    ]
    docs, qs = load_questions(write_jsonl(tmp_path / "mine.jsonl", rows))
    assert docs == [] and [q.answer for q in qs] == [1, 0, 1, 0, -1]
    assert qs[0].doc_id == "x" and qs[4].kind == "short" and qs[4].qid == "own-1"
    with pytest.raises(InputError, match="matches no option"):
        load_questions(write_jsonl(tmp_path / "bad.jsonl", [{"question": "?", "options": ["a", "b"], "answer": "c"}]))


def test_questions_for_run_maps_by_text_and_limits(tmp_path):
    path = write_jsonl(tmp_path / "dev.jsonl", [LEVAL_ROW, {**LEVAL_ROW, "input": "Second\n\narticle"}])
    cfg = RunConfig()
    cfg.corpus.paths = [str(path)]
    docs = load_corpus([str(path)])[:1]  # corpus.limit_docs=1: questions on the other article drop
    docs[0].doc_id = "renamed-0"
    qs, notes = questions_for_run(cfg, docs)
    assert [q.doc_id for q in qs] == ["renamed-0", "renamed-0"] and notes["dropped_outside_corpus"] == 2
    cfg.eval.limit = 1
    assert len(questions_for_run(cfg, docs)[0]) == 1
    plain = tmp_path / "notes.txt"
    plain.write_text("no questions here")
    cfg.corpus.paths = [str(plain)]
    with pytest.raises(InputError, match="no questions"):
        questions_for_run(cfg, docs)


@pytest.mark.skipif(not Path("../shared/data/quality-leval/dev.jsonl").is_file(), reason="shared data absent")
def test_real_quality_dev_parses():
    _, qs = load_questions("../shared/data/quality-leval/dev.jsonl")
    assert len(qs) == 119 and all(len(q.options) == 4 for q in qs)
