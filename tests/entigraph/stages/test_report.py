import re
import shutil
import subprocess
from pathlib import Path

import pytest

from entigraph import artifacts
from entigraph.config import RunConfig
from entigraph.io import write_json
from entigraph.stages.report import run as report_run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def fake_results() -> dict:
    def cond(acc, n=40):
        return {"model": "base", "accuracy": acc, "n": n, "correct": round(acc * n), "ci95": [acc - 0.1, acc + 0.1],
                "wilson95": [acc - 0.1, acc + 0.1], "truncated": 0, "seconds": 1.0,
                "by_mode": {m: {"accuracy": acc, "ci95": [acc - 0.1, acc + 0.1]} for m in ("raw", "length_norm")}}
    return {
        "questions": 40, "scoring": "length_norm", "modes": ["raw", "length_norm"], "chance": 0.25,
        "conditions": {"base_closed": cond(0.25), "cpt_closed": cond(0.45), "base_rag": cond(0.6)},
        "paired": [{"a": "cpt_closed", "b": "base_closed", "diff": 0.2, "ci95": [0.05, 0.35], "mcnemar_p": 0.01,
                    "only_a": 10, "only_b": 2, "n": 40}],
        "by_document": {"demo-0000": {"title": "<script>alert(1)</script> Tide", "n": 40,
                                      "accuracy": {"base_closed": 0.25, "cpt_closed": 0.45, "base_rag": 0.6}}},
        "by_type": {}, "retrieval": {"method": "dense", "index": "flat", "chunks": 12, "chunk_size": 100,
                                     "chunk_unit": "words", "top_k": 3, "recall@1": 0.5, "recall@3": 0.8,
                                     "recall@5": 0.9, "recall@10": 1.0, "latency": {"mean_ms": 12.0, "p95_ms": 20.0},
                                     "examples": [{"question": "When did the wire snap?", "doc_id": "d", "chunks": [
                                         {"chunk_id": "d:c1", "title": "History", "score": 0.71, "where": "p. 2"},
                                         {"chunk_id": "e:c0", "title": "Survey", "score": 0.52, "where": "§ Results"}]}]},
    }


def tiny_png(path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(2, 1))
    ax.plot([0, 1], [1, 0])
    fig.savefig(path)
    plt.close(fig)


@pytest.fixture
def run_cfg(tmp_path) -> RunConfig:
    cfg = RunConfig(name="report-test", run_dir=str(tmp_path))
    write_json(artifacts.stage_dir(cfg.out, "eval") / "results.json", fake_results())
    extract = artifacts.stage_dir(cfg.out, "extract")
    write_json(extract / "summary.json", {"documents": 1, "entities": 25, "edges": {"pairs": 40}})
    tiny_png(extract / "graph.png")
    write_json(cfg.out / "timings.json", {"extract": 3.2, "eval": 10.0})
    (cfg.out / "config.yaml").write_text("name: report-test\n")
    return cfg


def test_report_has_the_comparison_escapes_text_and_notes_missing_stages(run_cfg):
    summary = report_run(run_cfg)
    html = Path(summary["path"]).read_text()
    assert "History (p. 2)" in html and "Survey (§ Results)" in html  # retrieved chunks cite page and section
    assert 'class="comparison"' in html and "45.0 %" in html
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)" in html
    assert html.count("data:image/png;base64,") == 2  # comparison plot + graph picture
    assert "synthesize/summary.json is missing" in html and "filter/report.json is missing" in html
    assert "<details><summary>config.yaml" in html
    assert "http://" not in html and "https://" not in html  # self-contained
    assert summary["missing"] == ["synthesize", "filter", "train"]


def test_the_report_opens_with_the_verdict_in_both_directions():
    from entigraph.evaluation.report import verdict

    results = fake_results()
    results["conditions"]["cpt_rag"] = results["conditions"]["base_rag"] | {"accuracy": 0.5}
    results["paired"].append({"a": "cpt_rag", "b": "base_rag", "diff": -0.1, "ci95": [-0.2, 0.0], "mcnemar_p": 0.2,
                              "only_a": 1, "only_b": 5, "n": 40, "logprob_diff": -0.05, "logprob_ci95": [-0.1, 0.0]})
    html = verdict(results)
    learned, reads = html.split("<dt>")[1:]
    assert learned.startswith("Did the adapted model learn") and "Yes." in learned and "25.0 % → 45.0 %" in learned
    assert "Slightly lower, within noise" in reads and "-0.050 [-0.100, +0.000] nats" in reads
    results["paired"][0] |= {"mcnemar_p": 0.3}   # the same gain that McNemar does not call is not a yes
    results["paired"][1] |= {"diff": -0.2, "mcnemar_p": 0.01}
    html = verdict(results)
    assert "Not shown (the difference is within noise)" in html and "It hurts" in html and "Yes." not in html
    assert verdict({"conditions": {}, "paired": []}) == ""


def test_the_verdict_comes_before_every_section(run_cfg):
    html = Path(report_run(run_cfg)["path"]).read_text()
    assert html.index('id="verdict"') < html.index("<section")


def test_a_filter_report_the_quality_section_cannot_read_degrades_to_a_note(run_cfg):
    write_json(artifacts.stage_dir(run_cfg.out, "filter") / "report.json", {"unexpected": 1})
    html = Path(report_run(run_cfg)["path"]).read_text()
    assert 'id="filter"' in html and "Filters and data quality" in html and "unexpected" in html


def test_report_without_any_results_still_renders(tmp_path):
    cfg = RunConfig(name="empty", run_dir=str(tmp_path))
    cfg.out.mkdir(parents=True)
    html = Path(report_run(cfg)["path"]).read_text()
    assert "No evaluation results yet" in html and "eval/results.json is missing" in html


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium(run_cfg, tmp_path):
    page = Path(report_run(run_cfg)["path"]).resolve()
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
             f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,2000"]
    shot = tmp_path / "report.png"
    # one browser start: the screenshot is taken and the DOM dumped after the page's load event
    dom = subprocess.run(flags + [f"--screenshot={shot}", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body[^>]*>", dom.stdout).group(0)
    images = int(re.search(r'data-images="(\d+)"', body).group(1))
    assert images == 2 and f'data-images-ok="{images}"' in body  # every plot decoded with a width
    assert 'class="comparison"' in dom.stdout
    assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
