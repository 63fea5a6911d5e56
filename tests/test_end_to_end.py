"""The whole pipeline on the demo corpus with the tiny model: real spaCy, real FAISS, real
MiniLM, real training; then a rerun that skips every stage."""

import json

from entigraph.cli import main


def test_run_end_to_end_then_skip(tmp_path, tiny_lm, capsys):
    args = [
        "run", "configs/demo.yaml",
        "--set", f"run_dir={tmp_path}",
        "--set", f"backend.model={tiny_lm}",
        "--set", "backend.kind=hf",  # the demo's vllm-server path has its own tests (test_server.py)
        "--set", f"models.base={tiny_lm}",
        "--set", "synthesis.max_passages=6",
        "--set", "backend.batch_size=6",
        "--set", "backend.sampling.max_new_tokens=24",
        "--set", "filter.min_words=1",
        "--set", "filter.require_entities=false",
        "--set", "filter.max_invented_rate=1.0",
        "--set", "filter.embedding_coverage=false",
        "--set", "train.deepspeed=null",
        "--set", "train.data=synthetic+raw",
        "--set", "train.block_size=64",
        "--set", "train.epochs=1",
        "--set", "train.replay.source=none",
        "--set", "train.replay.fraction=0",
        "--set", "eval.limit=8",
        "--set", "eval.bootstrap=200",
    ]
    assert main(args) == 0
    run = tmp_path / "demo"
    results = json.loads((run / "results.json").read_text())
    conditions = results["conditions"]
    assert set(conditions) == {"base_closed", "cpt_closed", "base_rag", "cpt_rag"}
    for cond in conditions.values():
        assert cond["n"] == 8
        lo, hi = cond["ci95"]
        assert 0 <= lo <= cond["accuracy"] <= hi <= 1
    html = (run / "report.html").read_text()
    assert "base_closed" in html and "<img" in html
    assert (run / "train" / "model" / "config.json").is_file()
    out = capsys.readouterr().out
    assert "base_closed" in out  # the table is printed

    assert main(args) == 0
    out = capsys.readouterr().out
    for stage in ("extract", "synthesize", "filter", "train", "eval", "report"):
        assert f"[{stage}] complete" in out
