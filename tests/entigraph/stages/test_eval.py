"""The eval stage's reading check, forgetting check and per-condition cache (tiny model, hashed
embedder; tests/entigraph/evaluation/test_compare.py covers the comparison itself)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from entigraph import artifacts
from entigraph.corpus import load_corpus
from entigraph.evaluation import compare
from entigraph.evaluation.forgetting import held_out_replay
from entigraph.io import read_json, write_json, write_jsonl
from entigraph.records import to_dict
from entigraph.stages import eval as eval_stage
from entigraph.stages.report import run as report_run

from eval_inputs import mini_run


@pytest.fixture
def run_cfg(tmp_path, tiny_lm, monkeypatch):
    cfg = mini_run(tmp_path, tiny_lm, monkeypatch)
    cfg.train.block_size = 32
    shutil.copytree(tiny_lm, artifacts.stage_dir(cfg.out, "train") / "model")
    return cfg


@pytest.fixture
def scored(monkeypatch):
    """The conditions the scorer is actually asked for."""
    asked: list[str] = []
    real = compare.score_loglik

    def spy(cfg, label, path, conds, *rest):
        asked.extend(conds)
        return real(cfg, label, path, conds, *rest)

    monkeypatch.setattr(compare, "score_loglik", spy)
    return asked


def test_the_reading_check_scores_the_base_model_with_the_same_context(run_cfg, scored):
    run_cfg.eval.conditions = ["cpt_closed", "cpt_rag", "cpt_oracle"]
    run_cfg.eval.forgetting_blocks = 0
    summary = eval_stage.run(run_cfg)
    results = read_json(run_cfg.out / "results.json")
    assert {"base_rag", "base_oracle"} <= set(results["conditions"])
    assert [r["setting"] for r in results["reading"]] == ["rag", "oracle"]
    r = results["reading"][0]
    assert r["n"] == 3 and r["a"] == "cpt_rag" and r["b"] == "base_rag" and "mcnemar_p" in r
    assert r["cpt"]["accuracy"] == r["base"]["accuracy"]  # the same weights read alike
    assert summary["forgetting"] == {"skipped": "eval.forgetting_blocks is 0"}
    report_run(run_cfg)
    html = (run_cfg.out / "report.html").read_text()
    assert 'class="reading"' in html and "Not measured: eval.forgetting_blocks is 0" in html
    run_cfg.eval.reading_check = False
    run_cfg.eval.cache = False
    eval_stage.run(run_cfg)
    assert set(read_json(run_cfg.out / "results.json")["conditions"]) == {"cpt_closed", "cpt_rag", "cpt_oracle"}


def test_adding_a_condition_scores_only_that_condition(run_cfg, scored):
    run_cfg.eval.conditions = ["base_closed"]
    run_cfg.eval.forgetting_blocks = 0
    assert eval_stage.run(run_cfg)["cached_conditions"] == []
    first = read_json(run_cfg.out / "results.json")
    assert scored == ["base_closed"]
    scored.clear()
    run_cfg.eval.conditions = ["base_closed", "base_rag"]
    assert eval_stage.run(run_cfg)["cached_conditions"] == ["base_closed"]
    second = read_json(run_cfg.out / "results.json")
    assert scored == ["base_rag"] and "cached_conditions" not in second
    assert second["conditions"]["base_closed"] == first["conditions"]["base_closed"]
    scored.clear()
    eval_stage.run(run_cfg)  # everything cached, the retrieval too
    assert scored == [] and read_json(run_cfg.out / "results.json")["retrieval"]["chunks"] > 0
    # keyed by the model's content: the trained model here is a copy of the base model
    run_cfg.eval.conditions = ["cpt_closed"]
    eval_stage.run(run_cfg)
    assert scored == []
    # a scoring setting is part of the key
    run_cfg.eval.max_context_tokens = 512
    eval_stage.run(run_cfg)
    assert scored == ["cpt_closed"]
    # as are the model's weights
    scored.clear()
    run_cfg.eval.max_context_tokens = 1536
    weights = next((artifacts.stage_dir(run_cfg.out, "train") / "model").glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    eval_stage.run(run_cfg)
    assert scored == ["cpt_closed"]


def test_forgetting_compares_both_models_on_held_out_text(run_cfg, tmp_path):
    general = tmp_path / "general.txt"
    general.write_text("The river runs to the sea and the tide comes in twice a day. " * 30)
    run_cfg.eval.conditions = ["cpt_closed"]
    run_cfg.eval.forgetting_paths = [str(general)]
    run_cfg.eval.forgetting_blocks = 3
    eval_stage.run(run_cfg)
    f = read_json(run_cfg.out / "results.json")["forgetting"]
    assert f["source"] == "files" and f["blocks"] == 3 and f["tokens"] == 3 * 32
    assert f["base_loss"] > 0 and f["diff"] == 0.0 and f["worse_blocks"] == 0  # same weights, same loss
    report_run(run_cfg)
    assert 'class="forgetting"' in (run_cfg.out / "report.html").read_text()


def test_forgetting_without_held_out_text_says_so(run_cfg):
    run_cfg.eval.conditions = ["cpt_closed"]
    eval_stage.run(run_cfg)  # no replay, and the run holds every document of the corpus
    assert "no held-out general text" in read_json(run_cfg.out / "results.json")["forgetting"]["skipped"]


def test_forgetting_falls_back_to_corpus_documents_outside_the_run(run_cfg):
    run_cfg.corpus.limit_docs = 1
    write_jsonl(artifacts.stage_dir(run_cfg.out, "extract") / "documents.jsonl",
                [to_dict(d) for d in load_corpus(run_cfg.corpus.paths, limit_docs=1)])
    run_cfg.eval.conditions = ["cpt_closed"]
    eval_stage.run(run_cfg)
    f = read_json(run_cfg.out / "results.json")["forgetting"]
    assert f["source"] == "corpus" and f["doc_ids"] == ["mini-0001"]


def test_held_out_replay_blocks_are_the_ones_training_never_used(tmp_path):
    data = tmp_path / "train" / "data"
    data.mkdir(parents=True)
    blocks = np.arange(8 * 4).reshape(8, 4).astype(np.int32)
    sources = np.array([0, 0, 0, 2, 2, 2, 2, 2], dtype=np.uint8)  # three main blocks, five replay blocks
    order = np.array([0, 1, 3, 2, 5, 0, 1, 2])  # replay blocks 3 and 5 used
    np.save(data / "blocks.npy", blocks)
    np.save(data / "lengths.npy", np.array([4, 4, 4, 4, 4, 4, 3, 4]))
    np.save(data / "sources.npy", sources)
    np.save(data / "order.npy", order)
    np.save(data / "val.npy", np.array([], dtype=np.int64))
    write_json(data / "manifest.json", {"sources": ["synthetic", "raw", "replay", "anneal"]})
    picked, source = held_out_replay(tmp_path, 10, 0)
    assert sorted(map(tuple, picked)) == [(16, 17, 18, 19), (24, 25, 26), (28, 29, 30, 31)]
    assert source["source"] == "replay" and "3 of the" in source["detail"]
    assert len(held_out_replay(tmp_path, 2, 0)[0]) == 2


def test_a_model_another_run_is_scoring_is_left_for_last_then_read_from_the_cache(run_cfg, scored, tmp_path):
    """Two recipes evaluated side by side both need the base model's conditions: the second scores
    its own model first, waits for the first, and reads the base model's records from the cache."""
    import threading

    from filelock import FileLock

    from entigraph.evaluation.cache import EvalCache

    run_cfg.eval.conditions = ["base_closed", "cpt_closed"]
    run_cfg.eval.forgetting_blocks = 0
    config = artifacts.stage_dir(run_cfg.out, "train") / "model" / "config.json"
    config.write_text(config.read_text() + "\n")  # the adapted model: other files, its own lock
    eval_stage.run(run_cfg)  # the other run's work, done once to have its records
    stored = sorted((tmp_path / "runs" / ".eval-cache" / "records").glob("*.jsonl"))
    assert len(stored) == 2 and scored == ["base_closed", "cpt_closed"]
    cache = EvalCache.for_run(run_cfg)
    base = next(p for p in stored if json.loads(p.read_text().splitlines()[0])["model"] == "base")
    aside = base.read_bytes()
    base.unlink()
    for p in stored:
        if p != base:
            p.unlink()  # the adapted model is scored again: it is this run's own work
    scored.clear()
    lock = FileLock(str(cache.root / "locks" / f"{cache.model_digest(run_cfg.models.base)}.lock"), thread_local=False)
    lock.acquire()  # the other run is scoring the base model

    def other_run_finishes():
        while "cpt_closed" not in scored:  # this run went on to its own model
            threading.Event().wait(0.05)
        base.write_bytes(aside)
        lock.release()

    threading.Thread(target=other_run_finishes, daemon=True).start()
    summary = eval_stage.run(run_cfg)
    assert scored == ["cpt_closed"]  # the base model was not scored a second time
    assert summary["cached_conditions"] == ["base_closed"]
    assert set(read_json(run_cfg.out / "results.json")["conditions"]) == {"base_closed", "cpt_closed"}
