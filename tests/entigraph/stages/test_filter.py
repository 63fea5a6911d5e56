"""The filter stage end to end on a tiny stored run: files written, counts, summary lines."""

import numpy as np
import pytest

from entigraph import artifacts
from entigraph.stages import filter as filter_stage
from entigraph.backends.base import Generation
from entigraph.config import load_config
from entigraph.io import read_json, read_jsonl, write_jsonl
from entigraph.records import Document, Entity, Passage, SynthPassage, to_dict

SOURCE = (
    "Marit Ellery kept the Quarrow tide station for thirty-one years. Every morning she walked from "
    "Brask House to the gauge hut on Hobb's Nab and changed the paper on the Veslin drum. In the storm "
    "of November 1963 the float wire snapped, and Jonas Pell rowed the boat Patience across the "
    "Merrin Sound to fetch a spare wire from Saltmere."
)
GOOD = [
    "Marit Ellery looked after the tide station on Quarrow for thirty-one years, walking each morning "
    "from Brask House to the gauge hut. When the float wire snapped in 1963, Jonas Pell took the boat "
    "Patience over the sound to Saltmere for a spare wire.",
    "Jonas Pell is remembered for one night: in the November storm of 1963 he rowed the Patience "
    "across the Merrin Sound. Marit Ellery had found the float wire of the Veslin drum snapped, and "
    "the spare was in Saltmere.",
    "Every morning Marit Ellery changed the paper on the Veslin drum in the gauge hut on Hobb's Nab. "
    "Her records ran for thirty-one years, and Jonas Pell once rowed to Saltmere to keep them going "
    "after a storm broke the wire.",
]

CUT = (
    "The gauge hut on Hobb's Nab held the Veslin drum, and Marit Ellery changed its paper each day. "
    "In 1963 the wire snapped; Jonas Pell fetched a new one from Saltmere in the boat Patience."
)


def synth(i, text, **kw):
    fields = dict(task_id=f"t{i}", mode="pair", entities=["Marit Ellery", "Jonas Pell"], doc_ids=["d1"],
                  passage_ids=["d1:p0"], text=text, finish_reason="stop", seq=i,
                  completion_tokens=len(text.split()) * 4 // 3,
                  prompt=f"Text:\n{SOURCE}\nWrite about Marit Ellery and Jonas Pell.")
    return SynthPassage(**{**fields, **kw})


@pytest.fixture
def run_cfg(tmp_path):
    cfg = load_config(None, [f"run_dir={tmp_path}", "name=t", "filter.min_words=10"])
    ext = artifacts.stage_dir(cfg.out, "extract")
    write_jsonl(ext / "documents.jsonl", [to_dict(Document("d1", "The Quarrow Tide Station", SOURCE))])
    write_jsonl(ext / "passages.jsonl", [to_dict(Passage("d1:p0", "d1", 0, 0, len(SOURCE), SOURCE))])
    write_jsonl(ext / "entities.jsonl", [to_dict(e) for e in (
        Entity("marit-ellery", "Marit Ellery", "PERSON", aliases=["Ellery"]),
        Entity("jonas-pell", "Jonas Pell", "PERSON", aliases=["Pell"]),
        Entity("saltmere", "Saltmere", "GPE"),
    )])
    import networkx as nx

    g = nx.Graph()
    g.add_edge("marit-ellery", "jonas-pell")
    g.add_edge("jonas-pell", "saltmere")
    nx.write_graphml(g, ext / "graph.graphml")
    passages = [synth(i, t) for i, t in enumerate(GOOD)] + [
        synth(3, "Sure, I'd be happy to help! " + GOOD[0]),
        synth(4, CUT + " Then the keeper", finish_reason="length"),
        synth(5, "", status="failed", error="timeout", finish_reason="error"),
        synth(6, GOOD[0].replace(",", "").replace("When", "when").replace("1963. ", "1963 ")),
    ]
    write_jsonl(artifacts.stage_dir(cfg.out, "synthesize") / "passages.jsonl", [to_dict(p) for p in passages])
    return cfg


def fake_embed(texts):
    return np.array([[1.0, 0.1 * (len(t) % 3)] for t in texts])


def test_run_writes_kept_dropped_report_and_summary(run_cfg):
    summary = filter_stage.run(run_cfg, embed=fake_embed)
    out = artifacts.stage_dir(run_cfg.out, "filter")
    kept = artifacts.kept(run_cfg.out)
    assert [p.task_id for p in kept] == ["t0", "t1", "t2", "t4"]
    assert kept[3].text == CUT  # trimmed to its last full sentence
    rows = {r["task_id"]: r for r in read_jsonl(out / "kept.jsonl")}
    assert rows["t4"]["edits"][0]["filter"] == "truncated" and rows["t0"]["edits"] == []
    dropped = {r["task_id"]: (r["dropped_by"], r["reason"]) for r in read_jsonl(out / "dropped.jsonl")}
    assert dropped["t3"][0] == "noise" and dropped["t5"] == ("failed", "generation failed: timeout")
    assert dropped["t6"][0] == "near_dup" and "near-duplicate of t0" in dropped["t6"][1]

    report = read_json(out / "report.json")
    by_filter = {f["filter"]: f for f in report["filters"]}
    assert by_filter["noise"]["examples"][0]["task_id"] == "t3"
    assert report["metrics"]["before"]["passages"] == 6 and report["metrics"]["after"]["passages"] == 4
    assert report["metrics"]["before"]["near_dup_rate"] > 0 == report["metrics"]["after"]["near_dup_rate"]
    assert report["metrics"]["after"]["edge_coverage"] == 1.0
    assert "embedding_coverage" in report["metrics"]["after"]
    assert read_json(out / "summary.json") == summary
    assert summary["input"] == 7 and summary["kept"] == 4 and summary["trimmed"] == 1
    assert summary["dropped"]["near_dup"] == 1 and summary["tokens_kept"] == report["tokens_kept"]

    lines = filter_stage.summary_lines(summary)
    assert lines[0].startswith("kept 4/7 passages (57%)")
    assert "failed 1, noise 1, near_dup 1" in lines[1]


def test_embedding_coverage_can_be_switched_off(run_cfg):
    run_cfg.report.embedding_coverage = False
    filter_stage.run(run_cfg, embed=lambda texts: pytest.fail("embedder used"))
    report = read_json(artifacts.stage_dir(run_cfg.out, "filter") / "report.json")
    assert "embedding_coverage" not in report["metrics"]["after"]


class FakeBackend:
    name, model = "fake", "fake"
    closed = False

    def generate(self, requests):
        return [Generation(text="2" if "Patience over the sound" in r.messages[0]["content"] else "5")
                for r in requests]

    def count_tokens(self, text):
        return len(text.split())

    def close(self):
        FakeBackend.closed = True


def test_judge_runs_through_the_configured_backend(run_cfg, monkeypatch):
    import entigraph.backends

    monkeypatch.setattr(entigraph.backends, "run_backend", lambda cfg, model=None: FakeBackend())
    run_cfg.filter.judge.enabled = True
    run_cfg.report.embedding_coverage = False
    summary = filter_stage.run(run_cfg)
    assert summary["dropped"]["judge"] == 1 and summary["kept"] == 3 and FakeBackend.closed
    report = read_json(artifacts.stage_dir(run_cfg.out, "filter") / "report.json")
    assert report["judge"]["scores"] == {"2": 1, "5": 3} and report["judge"]["unparseable"] == 0


def test_missing_synthesis_is_a_user_error(tmp_path):
    from entigraph.errors import EntigraphError

    cfg = load_config(None, [f"run_dir={tmp_path}", "name=empty"])
    with pytest.raises(EntigraphError, match="run `entigraph synthesize` first"):
        filter_stage.run(cfg)


def test_sentence_support_gate_records_each_removed_sentence_and_the_report_shows_coverage(run_cfg):
    run_cfg.filter.support.enabled = True
    run_cfg.report.embedding_coverage = False
    path = artifacts.stage_dir(run_cfg.out, "synthesize") / "passages.jsonl"
    partly = ("In the storm of November 1963 the float wire snapped. "
              "Jonas Pell rowed the boat Patience across the Merrin Sound to fetch a spare wire from Saltmere. "
              "Every morning Marit Ellery changed the paper on the Veslin drum. "
              "Later the Zorblax Society gave Pell a golden medal.")
    sentences = SOURCE.split(". ")
    permuted = ". ".join(sentences[::-1]).rstrip(".") + "."
    rows = list(read_jsonl(path)) + [to_dict(synth(7, partly)),
                                     to_dict(synth(8, permuted, mode="permute", entities=[], completion_tokens=70))]
    write_jsonl(path, rows)
    summary = filter_stage.run(run_cfg)
    out = artifacts.stage_dir(run_cfg.out, "filter")
    kept = {r["task_id"]: r for r in read_jsonl(out / "kept.jsonl")}
    assert kept["t7"]["text"] == partly.rsplit(" Later", 1)[0]
    assert [s["reason"] for s in kept["t7"]["unsupported_sentences"]] == [
        "name 'Zorblax Society' absent from the source and the corpus"]
    assert kept["t7"]["edits"][0]["filter"] == "support" and kept["t8"]["text"] == permuted  # untouched
    report = read_json(out / "report.json")
    # t3's chatter ("Sure, I'd be happy to help!") goes too; what is left duplicates t0
    dropped = {r["task_id"]: r for r in read_jsonl(out / "dropped.jsonl")}
    assert dropped["t3"]["dropped_by"] == "near_dup" and dropped["t3"]["unsupported_sentences"][0]["sentence"] == \
        "Sure, I'd be happy to help!"
    assert report["support"]["all"]["repaired"] == 2 and report["support"]["reasons"] == {
        "name absent from the source": 1, "too few content words in the source": 1}
    modes = report["coverage"]["after"]["modes"]
    assert modes["permute"]["covered_1"] == 1.0 and modes["*"]["covered_1"] == 1.0
    assert summary["coverage"]["covered_1"] == 1.0
    assert any(l.startswith("source units covered >= 1: 100%") for l in filter_stage.summary_lines(summary))
    from entigraph.quality import report_section_html

    html = report_section_html(report)
    assert "Sentence support gate" in html and "Zorblax Society" in html and "Source coverage" in html
