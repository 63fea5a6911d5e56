"""The whole pipeline on the demo corpus with the tiny model: real spaCy, real FAISS, real
MiniLM, real training; then a rerun that skips every stage."""

import json

from entigraph.cli import main


def test_run_end_to_end_then_skip(tmp_path, tiny_lm, capsys):
    args = [  # the demo as shipped (its recipe, mixture and retrieval), with the tiny model and short runs
        "run", "configs/demo.yaml",
        "--set", f"run_dir={tmp_path}",
        "--set", f"backend.model={tiny_lm}",
        "--set", f"models.base={tiny_lm}",
        "--set", "report.embedding_coverage=false",
        "--set", "train.deepspeed=null",
        "--set", "train.block_size=64",
        "--set", "train.max_steps=4",
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
    blocks = json.loads((run / "train" / "data" / "manifest.json").read_text())["documents"]
    assert all(blocks[s] > 0 for s in ("synthetic:permute+profile+qa", "raw", "rag", "replay"))
    assert 'id="verdict"' in html
    out = capsys.readouterr().out
    assert "base_closed" in out  # the table is printed

    assert main(args) == 0
    out = capsys.readouterr().out
    for stage in ("extract", "synthesize", "filter", "train", "eval", "report"):
        assert f"[{stage}] complete" in out
