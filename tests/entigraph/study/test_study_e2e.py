"""A study with the real stages and the tiny model, on a folder of plain .txt files with no questions
(the demo corpus without its questions): generated probes, tuning on one document, the report in
HTML (rendered in headless Chromium when installed), then a second invocation that runs nothing."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from entigraph.cli import main
from entigraph.io import read_json, read_jsonl

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def txt_corpus(folder: Path) -> Path:
    from entigraph.corpus import DEMO_CORPUS

    folder.mkdir(parents=True)
    source = Path(DEMO_CORPUS)
    source = source if source.is_file() else next(source.glob("*.jsonl"))
    for i, line in enumerate(source.read_text().splitlines()):
        (folder / f"doc{i}.txt").write_text(json.loads(line)["input"])
    return folder


@pytest.fixture(scope="module")
def study(tmp_path_factory, tiny_lm):
    tmp = tmp_path_factory.mktemp("study")
    corpus = txt_corpus(tmp / "corpus")
    general = tmp / "general.txt"
    general.write_text(" ".join(["The river runs to the sea and the tide comes in twice a day."] * 40))
    base = {
        "name": "x", "corpus": {"paths": [str(corpus)]},
        "models": {"base": tiny_lm},
        "backend": {"model": tiny_lm, "batch_size": 4, "sampling": {"max_new_tokens": 24}},
        "synthesis": {"max_passages": 4},
        "filter": {"min_words": 1, "require_entities": False, "max_invented_rate": 1.0},
        "report": {"embedding_coverage": False},
        "train": {"deepspeed": None, "block_size": 64, "replay": {"source": "none"}},
        "eval": {"bootstrap": 200, "retrieval": {"method": "bm25", "chunk_words": 60, "chunk_overlap": 10},
                 "generated": {"per_doc": 4}, "forgetting_paths": [str(general)], "forgetting_blocks": 4},
    }
    (tmp / "base.yaml").write_text(yaml.safe_dump(base))
    data = {
        "name": "txt", "base": str(tmp / "base.yaml"), "run_dir": str(tmp / "runs"), "executor": "inline",
        "split": {"tuning": {"skip_docs": 0, "limit_docs": 1}, "reporting": {"skip_docs": 1, "limit_docs": 4}},
        "probes": ["generated"], "reference": "raw",
        "recipes": [{"name": "base", "train": False},
                    {"name": "raw", "set": {"train.mixture": [{"source": "raw", "epochs": 1}]}, "grid": {"train.lr": [1.0e-4, 1.0e-3]}},
                    {"name": "entigraph", "tuned_like": "raw", "set": {"train.mixture": [{"source": "synthetic", "epochs": 1}, {"source": "raw", "epochs": 1}]}}],
        "docs": {"comparison": "cmp"},
    }
    path = tmp / "study.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_a_txt_folder_without_questions_gets_a_study_with_generated_probes(study, capsys):
    docs = study.parent / "results.md"
    assert main(["study", str(study), "--write-docs", str(docs)]) == 0
    out = capsys.readouterr().out
    root = study.parent / "runs" / "txt"
    assert "entigraph: study finished" in out
    res = read_json(root / "study-results.json")
    assert set(res["recipes"]) == {"base", "raw", "entigraph"}
    assert res["tuning"]["raw"]["chosen"] in ({"train.lr": 1.0e-4}, {"train.lr": 1.0e-3})
    closed = res["recipes"]["raw"]["results"]["closed/generated"]
    assert closed["n"] == 16 and 0 <= closed["ci95"][0] <= closed["accuracy"] <= closed["ci95"][1] <= 100
    # every probe is generated, labelled so, and about a reporting document (1-4), never the tuning one
    records = list(read_jsonl(root / "raw" / "eval" / "records.jsonl"))
    assert records and {r["probe_type"] for r in records} == {"generated"}
    assert not {r["doc_id"] for r in records} & {"doc0-0000"}
    tuned = {r["doc_id"] for r in read_jsonl(root / "raw-tune-lr0.001" / "eval" / "records.jsonl")}
    assert tuned == {"doc0-0000"}
    # the reading check (the base model's RAG and oracle conditions came from the evaluation cache)
    # and the forgetting check are in the trained recipes' results
    results = read_json(root / "raw" / "results.json")
    cached = read_json(root / "raw" / "eval" / ".done.json")["summary"]["cached_conditions"]
    assert {"base_rag", "base_oracle"} <= set(cached)
    assert [r["setting"] for r in results["reading"]] == ["rag", "oracle"]
    assert results["forgetting"]["source"] == "files" and results["forgetting"]["blocks"] >= 1
    assert res["recipes"]["raw"]["forgetting"]["base_loss"] > 0
    html = (root / "study.html").read_text()
    assert "Generated probes." in html and "Reading check" in html and "data:image/png;base64," in html
    assert "Generated cloze probes** — *generated" in docs.read_text()
    run_page = (root / "raw" / "report.html").read_text()
    assert "generated cloze probes" in run_page and 'id="reading"' in run_page and 'id="forgetting"' in run_page

    assert main(["study", str(study)]) == 0  # everything is complete: nothing runs again
    out = capsys.readouterr().out
    assert "running" not in out and "probes)" not in out  # no "[study] RUN: STAGES (ROLE, KIND probes)" line
    state = read_json(root / "study-state.json")
    assert state["invocations"][-1]["ran"] == []


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_the_study_report_renders_in_headless_chromium(study, tmp_path):
    page = study.parent / "runs" / "txt" / "study.html"
    if not page.is_file():
        assert main(["study", str(study)]) == 0
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
             f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,2000"]
    shot = tmp_path / "study.png"
    dom = subprocess.run(flags + [f"--screenshot={shot}", "--dump-dom", page.resolve().as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body[^>]*>", dom.stdout).group(0)
    images = int(re.search(r'data-images="(\d+)"', body).group(1))
    assert images == 1 and f'data-images-ok="{images}"' in body  # the scaling plot decoded
    assert 'class="comparison"' in dom.stdout and 'class="tuning"' in dom.stdout
    assert shot.is_file() and shot.stat().st_size > 10_000
