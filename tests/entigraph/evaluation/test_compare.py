import shutil

import pytest

from entigraph import artifacts
from entigraph.backends.base import Generation
from entigraph.errors import EntigraphError
from entigraph.io import read_json, read_jsonl
from entigraph.evaluation import compare
from entigraph.stages import eval as eval_stage
from entigraph.stages.report import run as report_run

from eval_inputs import mini_run

@pytest.fixture
def run_cfg(tmp_path, tiny_lm, monkeypatch):
    return mini_run(tmp_path, tiny_lm, monkeypatch)


def test_missing_trained_model_says_to_train(run_cfg):
    run_cfg.eval.conditions = ["base_closed", "cpt_closed"]
    with pytest.raises(EntigraphError, match="entigraph train"):
        eval_stage.run(run_cfg)


def test_compare_end_to_end_then_report(run_cfg, tiny_lm):
    shutil.copytree(tiny_lm, artifacts.stage_dir(run_cfg.out, "train") / "model")
    run_cfg.eval.conditions = ["base_closed", "cpt_closed", "base_rag", "cpt_rag", "base_oracle", "cpt_oracle"]
    run_cfg.eval.extra_models = {"rawcpt": tiny_lm}
    summary = eval_stage.run(run_cfg)

    out = artifacts.stage_dir(run_cfg.out, "eval")
    records = list(read_jsonl(out / "records.jsonl"))
    conds = ["base_closed", "base_rag", "base_oracle", "cpt_closed", "cpt_rag", "cpt_oracle", "rawcpt_closed", "rawcpt_rag"]
    assert len(records) == 3 * len(conds)
    rec = next(r for r in records if r["condition"] == "base_rag")
    assert set(rec["scores"]) == {"raw", "length_norm", "char_norm", "calibrated"}
    assert rec["retrieved"] and rec["correct"] == (rec["predicted"] == rec["answer"])
    assert next(r for r in records if r["condition"] == "cpt_oracle")["retrieved"] == [rec["doc_id"]]

    results = read_json(run_cfg.out / "results.json")
    assert results == read_json(out / "results.json")
    assert list(results["conditions"]) == conds
    c = results["conditions"]["base_closed"]
    assert c["n"] == 3 and 0 <= c["ci95"][0] <= c["accuracy"] <= c["ci95"][1] <= 1
    assert set(c["by_mode"]) == {"raw", "length_norm", "char_norm", "calibrated"}
    # the same weights give the same answers: cpt (a copy of base) equals base
    assert results["conditions"]["cpt_rag"]["accuracy"] == results["conditions"]["base_rag"]["accuracy"]
    pair = next(p for p in results["paired"] if (p["a"], p["b"]) == ("cpt_closed", "base_closed"))
    assert pair["diff"] == 0 and pair["mcnemar_p"] == 1.0
    assert {"recall@1", "recall@3", "latency"} <= set(results["retrieval"])
    assert set(results["by_document"]) == {"mini-0000", "mini-0001"} and results["chance"] == 0.25
    assert (out / "index" / "index.faiss").is_file() and (out / "retrieval.json").is_file()
    lines = compare.table_lines(results)
    assert lines[0].startswith("condition") and any(l.startswith("cpt_closed - base_closed") for l in lines)
    assert summary["conditions"].keys() == results["conditions"].keys()

    page = report_run(run_cfg)
    html = (run_cfg.out / "report.html").read_text()
    assert page["missing"] and 'class="comparison"' in html and "cpt_closed" in html
    assert "data:image/png;base64," in html


class FakeBackend:
    name, model = "fake", "fake"

    def __init__(self):
        self.seen = []

    def generate(self, requests):
        self.seen += requests
        return [Generation("Let me think.\nAnswer: (B)") for _ in requests]

    def count_tokens(self, text):
        return len(text.split())

    def close(self):
        pass


def test_generate_mode_parses_replies_from_any_backend(run_cfg, monkeypatch):
    backend = FakeBackend()
    monkeypatch.setattr("entigraph.backends.run_backend", lambda cfg, model=None: backend)
    run_cfg.eval.conditions = ["base_closed", "base_oracle"]
    run_cfg.eval.answer_mode = "generate"
    run_cfg.eval.few_shot = 1
    eval_stage.run(run_cfg)
    records = list(read_jsonl(artifacts.stage_dir(run_cfg.out, "eval") / "records.jsonl"))
    assert [r["predicted"] for r in records] == [1] * 6
    assert [r["correct"] for r in records[:3]] == [True, False, False]
    assert backend.seen[0].sampling.temperature == 0.0
    assert len(backend.seen[0].messages) == 3  # one solved example from the other document first
    assert "Oskar Brenn painted" in backend.seen[3].messages[-1]["content"] or \
           "Harbour Guild built" in backend.seen[3].messages[-1]["content"]  # oracle: the document
