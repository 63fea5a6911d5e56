"""`entigraph study`: the bookkeeping with stand-in stages (what runs, how often, what reruns), the
document split, resuming after a kill, and the report's shape. tests/entigraph/study/test_study_e2e.py runs the
real stages."""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from entigraph import pipeline
from entigraph.errors import ConfigError
from entigraph.io import read_json, read_jsonl, write_json, write_jsonl
from entigraph.study import SplitError, Study, load_study, run_study

N_DOCS = 12


def _h(text: str) -> float:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


class Calls(list):
    """(run, stage) of every completed stage; `fail[(run, stage)] = n` kills that stage n times."""

    def __init__(self):
        super().__init__()
        self.fail: dict = {}


@pytest.fixture
def calls(monkeypatch):
    """Stand-in stages that write just enough for the study to read: documents of the run's range,
    kept passages, a model folder, training data tokens, and eval records whose closed-book target
    log-likelihood peaks at lr 1e-3."""
    ran = Calls()
    fail = ran.fail

    def fake(stage):
        def run(cfg):
            if fail.get((cfg.name, stage)):
                fail[(cfg.name, stage)] -= 1
                raise KeyboardInterrupt  # a kill in the middle of the stage
            ran.append((cfg.name, stage))
            out = cfg.out / stage
            out.mkdir(parents=True, exist_ok=True)
            if stage == "extract":
                lo = cfg.corpus.skip_docs
                hi = min(N_DOCS, lo + (cfg.corpus.limit_docs or N_DOCS))
                write_jsonl(out / "documents.jsonl", [{"doc_id": f"doc-{i:04d}", "title": f"d{i}",
                                                       "text": f"document {i}"} for i in range(lo, hi)])
            elif stage == "synthesize":
                write_jsonl(out / "passages.jsonl", [{"text": f"{cfg.synthesis.max_passages}"}])
            elif stage == "filter":
                write_jsonl(out / "kept.jsonl", [{"text": "one two three four " * 10, "seq": i} for i in range(4)])
            elif stage == "train":
                (out / "model").mkdir(exist_ok=True)
                (out / "model" / "weights.bin").write_text(f"{cfg.train.lr} {cfg.train.max_synthetic_tokens}")
                write_json(out / "data" / "manifest.json", {"train_tokens": 1000, "steps": 5,
                                                            "pool_tokens": {"synthetic": 400},
                                                            "train_tokens_by_source": {"synthetic": 900, "replay": 100}})
            elif stage == "eval":
                docs = [r["doc_id"] for r in read_jsonl(cfg.out / "extract" / "documents.jsonl")]
                from entigraph.evaluation.compare import planned_conditions

                records = []
                lr = cfg.train.lr if any(c.startswith("cpt") for c in cfg.eval.conditions) else None
                for cond in planned_conditions(cfg) + [f"{label}_closed" for label in cfg.eval.extra_models]:
                    for d in docs:
                        for j in range(5):
                            qid = f"{d}:{cfg.eval.probes}{j}"
                            trained = cond.startswith("cpt")
                            lp = -4.0 + (2.0 - abs(math.log10(lr) + 3) if trained else 0.0)
                            lp += _h(qid + cond)
                            ok = _h(qid + cond + "c") < (0.7 if trained else 0.4)
                            records.append({"condition": cond, "model": cond.rsplit("_", 1)[0], "qid": qid,
                                            "doc_id": d, "probe_type": "generated" if cfg.eval.probes == "generated"
                                            else ("gen" if j < 3 else "hard_gen"), "correct": ok,
                                            "target_logprob": lp})
                write_jsonl(out / "records.jsonl", records)
                write_json(out / "results.json", {"forgetting": {"skipped": "stand-in"}})
            return {"stage": stage}
        return run, None

    monkeypatch.setattr(pipeline, "stage_function", fake)
    return ran


def study_file(tmp_path: Path, tiny_lm: str, **extra) -> Path:
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump({"name": "x", "corpus": {"paths": ["demo"]}, "models": {"base": tiny_lm},
                                    "train": {"lr": 1e-4, "deepspeed": None}}))
    data = {
        "name": "st", "base": str(base), "run_dir": str(tmp_path / "runs"), "executor": "inline",
        "split": {"tuning": {"skip_docs": 8, "limit_docs": 4}, "reporting": {"skip_docs": 0, "limit_docs": 8}},
        "reference": "raw", "probes": ["given", "generated"],
        "recipes": [
            {"name": "base", "train": False},
            {"name": "raw", "set": {"train.mixture": [{"source": "raw", "epochs": 2.0}, {"source": "replay", "share": 0.1}]}, "grid": {"train.lr": [1.0e-4, 1.0e-3]}},
            {"name": "entigraph", "grid": {"train.lr": [1.0e-4, 1.0e-3]}},
            {"name": "eg-half", "tuned_like": "entigraph", "synthetic_token_share": 0.5, "group": "budget"},
        ],
        "docs": {"comparison": "cmp", "tuning": "tune", "probes": "probes"},
        **extra,
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_shared_stages_run_once_and_a_second_invocation_runs_nothing(tmp_path, tiny_lm, calls):
    res = run_study(load_study(study_file(tmp_path, tiny_lm)), echo=lambda line: None)
    count = lambda stage: sum(1 for _, s in calls if s == stage)  # noqa: E731
    # one extract per document range, one synthesis and one filter per range (only EntiGraph and
    # its budget synthesise; the budget run reuses EntiGraph's), one training per distinct model
    assert count("extract") == 2
    assert count("synthesize") == 2 and count("filter") == 2
    assert sorted(n for n, s in calls if s == "train") == [
        "eg-half", "entigraph", "entigraph-tune-lr0.0001", "entigraph-tune-lr0.001",
        "raw", "raw-tune-lr0.0001", "raw-tune-lr0.001"]
    # the generated-probe runs reuse every stage but eval
    assert not [n for n, s in calls if n.endswith(".generated") and s not in ("eval", "report")]
    assert res["tuning"]["raw"]["chosen"] == {"train.lr": 1.0e-3}  # the stand-in's best
    assert res["recipes"]["eg-half"]["point"] == {"train.lr": 1.0e-3}
    cfg = yaml.safe_load((tmp_path / "runs" / "st" / "eg-half" / "config.yaml").read_text())
    assert cfg["train"]["max_synthetic_tokens"] > 0 and cfg["stage_cache"] is True
    assert cfg["run_dir"] == str(tmp_path / "runs" / "st")
    n_before = len(calls)
    run_study(load_study(study_file(tmp_path, tiny_lm)), echo=lambda line: None)
    assert len(calls) == n_before  # everything complete: nothing ran


def test_a_changed_setting_reruns_exactly_the_stages_it_affects(tmp_path, tiny_lm, calls):
    run_study(load_study(study_file(tmp_path, tiny_lm)), echo=lambda line: None)
    calls.clear()
    run_study(load_study(study_file(tmp_path, tiny_lm), ["set.filter.min_words=5"]), echo=lambda line: None)
    stages = {(n, s) for n, s in calls}
    # the filter of each range, and the trainings and evaluations after it; Raw CPT and the base
    # model never read filter settings, so nothing of theirs reruns
    assert {s for _, s in stages} == {"filter", "train", "eval", "report"}
    assert sum(1 for _, s in calls if s == "filter") == 2
    assert not [n for n, _ in calls if n.startswith(("raw", "base"))]
    assert {n for n, s in calls if s == "train"} == {"entigraph-tune-lr0.0001", "entigraph-tune-lr0.001",
                                                       "entigraph", "eg-half"}


def test_an_evaluation_setting_reruns_only_the_evaluations(tmp_path, tiny_lm, calls):
    run_study(load_study(study_file(tmp_path, tiny_lm)), echo=lambda line: None)
    calls.clear()
    run_study(load_study(study_file(tmp_path, tiny_lm), ["set.eval.max_context_tokens=1024"]), echo=lambda line: None)
    assert {s for _, s in calls} == {"eval", "report"}


def test_the_report_has_every_part_and_splices_into_a_document(tmp_path, tiny_lm, calls):
    doc = tmp_path / "results.md"
    doc.write_text("intro\n<!-- cmp:begin -->\nold\n<!-- cmp:end -->\nmiddle\n<!-- tune:begin -->\n<!-- tune:end -->\n")
    res = run_study(load_study(study_file(tmp_path, tiny_lm)), echo=lambda line: None, write_docs=doc)
    text = doc.read_text()
    assert "old" not in text and text.startswith("intro\n<!-- cmp:begin -->\n**Paraphrased probes**")
    assert "| raw |" in text and "Generated cloze probes** — *generated from the documents" in text
    assert "| raw | `raw-tune-lr0.001` | train.lr=0.001 |" in text and "✓" in text
    assert "<!-- probes:begin -->" in text  # appended: the file had no such markers
    # the comparison block carries its figure, named after the block: another block keeps its own
    assert (tmp_path / "img" / "study-st-cmp-scaling.png").is_file()
    cmp_block = text.split("<!-- cmp:begin -->")[1].split("<!-- cmp:end -->")[0]
    assert "](img/study-st-cmp-scaling.png)" in cmp_block
    html = Path(res["paths"]["html"]).read_text()
    for part in ("Comparison", "Scaling", "Reading check", "Forgetting", "Chosen hyperparameters",
                 "Generated against given probes", "Token budgets and wall time", "Generated probes."):
        assert part in html, part
    data = read_json(res["paths"]["json"])
    assert set(data["recipes"]) == {"base", "raw", "entigraph", "eg-half"}
    assert data["paired"]["entigraph vs base: closed/gen"]["n"] == 24  # 8 documents x 3 paraphrased probes
    assert "logprob_ci95" in data["paired"]["entigraph vs raw: closed/gen"]
    assert data["ranking"]["recipes"] == ["base", "raw", "entigraph", "eg-half"]
    assert data["recipes"]["eg-half"]["timings"]["stages"]["extract"]["reused"] is True
    assert data["compute"]["reused_stages"] > 0


def test_overlapping_tuning_and_reporting_documents_are_refused(tmp_path, tiny_lm):
    path = study_file(tmp_path, tiny_lm)
    with pytest.raises(ConfigError, match="overlap"):
        load_study(path, ["split.tuning.skip_docs=4"])


def test_a_tuning_document_in_a_reporting_number_raises(tmp_path, tiny_lm, calls, monkeypatch):
    """The stand-in eval leaks a tuning document's question into the reporting runs: the check catches it."""
    run_study(load_study(study_file(tmp_path, tiny_lm)), echo=lambda line: None)
    path = tmp_path / "runs" / "st" / "raw" / "eval" / "records.jsonl"
    rows = list(read_jsonl(path))
    rows[0]["doc_id"] = "doc-0009"  # a tuning document (8-11)
    write_jsonl(path, rows)
    with pytest.raises(SplitError, match="raw: questions about tuning documents"):
        run_study(load_study(study_file(tmp_path, tiny_lm)), echo=lambda line: None, report_only=True)


def test_reporting_runs_never_see_tuning_documents_or_their_probes(tmp_path, tiny_lm, calls):
    run_study(load_study(study_file(tmp_path, tiny_lm)), echo=lambda line: None)
    root = tmp_path / "runs" / "st"
    tuning = {f"doc-{i:04d}" for i in range(8, 12)}
    for run in ("base", "raw", "entigraph", "eg-half", "raw.generated"):
        docs = {r["doc_id"] for r in read_jsonl(root / run / "extract" / "documents.jsonl")}
        asked = {r["doc_id"] for r in read_jsonl(root / run / "eval" / "records.jsonl")}
        assert docs and not docs & tuning and not asked & tuning
    for run in ("raw-tune-lr0.001", "base-tune"):
        assert {r["doc_id"] for r in read_jsonl(root / run / "extract" / "documents.jsonl")} == tuning


def test_a_killed_study_resumes_without_repeating_finished_stages(tmp_path, tiny_lm, calls):
    calls.fail[("entigraph", "train")] = 1  # killed while training the reporting EntiGraph model
    with pytest.raises(KeyboardInterrupt):
        run_study(load_study(study_file(tmp_path, tiny_lm)), echo=lambda line: None)
    state = read_json(tmp_path / "runs" / "st" / "study-state.json")
    assert state["runs"]["entigraph"]["status"] == "failed"
    assert state["chosen"]["entigraph"]["point"] == {"train.lr": 1.0e-3}
    before = list(calls)
    run_study(load_study(study_file(tmp_path, tiny_lm)), echo=lambda line: None)
    after = calls[len(before):]
    assert not set(after) & set(before)  # no finished stage ran again
    assert ("entigraph", "train") in after
    history = [json.loads(l) for l in (tmp_path / "runs" / "st" / "entigraph" / "history.jsonl").read_text().splitlines()]
    assert [h["outcome"] for h in history if h["stage"] == "train"] == ["KeyboardInterrupt", "done"]


def test_only_runs_the_named_recipes_and_what_they_need(tmp_path, tiny_lm, calls):
    run_study(load_study(study_file(tmp_path, tiny_lm)), only=["eg-half"], echo=lambda line: None)
    names = {n for n, _ in calls}
    assert "eg-half" in names and {"entigraph-tune-lr0.0001", "entigraph-tune-lr0.001"} <= names
    assert not {"raw", "base", "entigraph"} & names  # EntiGraph's choice, not its reporting run


def test_tuning_only_chooses_and_runs_no_reporting_run(tmp_path, tiny_lm, calls):
    run_study(load_study(study_file(tmp_path, tiny_lm, tuning_only=True)), only=["raw"], echo=lambda line: None)
    names = {n for n, _ in calls}
    assert {"raw-tune-lr0.0001", "raw-tune-lr0.001"} <= names and "raw" not in names
    state = read_json(tmp_path / "runs" / "st" / "study-state.json")
    assert state["chosen"]["raw"]["point"] == {"train.lr": 0.001}


def test_study_file_errors_are_one_line(tmp_path, tiny_lm):
    path = study_file(tmp_path, tiny_lm)
    with pytest.raises(ConfigError, match="unknown setting recipes"):
        load_study(path, ["recipes=[{name: a, tuned: x}]"])
    with pytest.raises(ConfigError, match="tuned_like: no recipe named 'nope'"):
        load_study(path, ["recipes=[{name: a, tuned_like: nope}]"])
    with pytest.raises(ConfigError, match="select.metric"):
        load_study(path, ["select.metric=loss"])


def test_a_control_trains_on_other_documents_and_answers_the_reporting_questions(tmp_path, tiny_lm, calls):
    extra = {"recipes": [{"name": "base", "train": False}, {"name": "raw", "set": {"train.mixture": [{"source": "raw", "epochs": 2.0}, {"source": "replay", "share": 0.1}]}},
                         {"name": "raw-other", "set": {"train.mixture": [{"source": "raw", "epochs": 2.0}, {"source": "replay", "share": 0.1}]}, "train_docs": {"skip_docs": 0, "limit_docs": 2},
                          "conditions": ["closed"]}],
             "split": {"reporting": {"skip_docs": 2, "limit_docs": 4}}, "probes": ["given"]}
    res = run_study(load_study(study_file(tmp_path, tiny_lm, **extra)), echo=lambda line: None)
    assert ("raw-other-train", "train") in calls and ("raw-other", "eval") in calls
    assert ("raw-other", "train") not in calls
    cfg = yaml.safe_load((tmp_path / "runs" / "st" / "raw-other" / "config.yaml").read_text())
    model = cfg["eval"]["extra_models"]["control"]
    assert "/.stage-cache/train/" in model and cfg["corpus"]["skip_docs"] == 2
    assert res["recipes"]["raw-other"]["results"]["closed/gen"]["n"] == 12  # 4 reporting documents x 3
    assert res["paired"]["raw-other vs raw: closed/gen"]["n"] == 12
    with pytest.raises(ConfigError, match="overlap the tuning documents"):
        load_study(study_file(tmp_path, tiny_lm, **{**extra, "split": {"tuning": {"skip_docs": 0, "limit_docs": 1},
                                                                      "reporting": {"skip_docs": 2}}}))


def test_budget_like_trains_on_the_other_recipes_token_budget(tmp_path, tiny_lm, calls):
    extra = {"recipes": [{"name": "base", "train": False},
                         {"name": "eg-half", "synthetic_token_share": 0.5},
                         {"name": "ungrounded", "budget_like": "eg-half", "set": {"filter.min_words": 0}}],
             "split": {"reporting": {"skip_docs": 0, "limit_docs": 4}}, "probes": ["given"], "reference": None}
    run_study(load_study(study_file(tmp_path, tiny_lm, **extra)), echo=lambda line: None)
    read = lambda n: yaml.safe_load((tmp_path / "runs" / "st" / n / "config.yaml").read_text())  # noqa: E731
    assert read("ungrounded")["train"]["max_synthetic_tokens"] == read("eg-half")["train"]["max_synthetic_tokens"] > 0


def test_selection_rules():
    from entigraph.study.config import SelectConfig
    from entigraph.study.runner import select

    def ev(run, lr, lps, acc):
        per = {f"q{i}": [float(i < acc * len(lps)), lp] for i, lp in enumerate(lps)}
        return {"run": run, "point": {"train.lr": lr}, "n": len(lps), "accuracy": acc,
                "target_logprob": sum(lps) / len(lps), "per_probe": per}

    noisy = [(-2.0 if i % 2 else -1.0) for i in range(40)]
    evidence = [ev("a", 1e-3, noisy, 0.5), ev("b", 3e-3, [x + 0.05 for x in noisy[::-1]], 0.4),
                ev("c", 1e-4, [x - 1.0 for x in noisy], 0.6)]
    assert select(evidence, SelectConfig())["point"] == {"train.lr": 3e-3}  # the best mean
    choice = select(evidence, SelectConfig(noise=True, tie_break="order"))
    assert choice["point"] == {"train.lr": 1e-3} and "within noise" in choice["why"]  # b is not better beyond noise
    assert select(evidence, SelectConfig(tie_within=0.1))["point"] == {"train.lr": 1e-3}  # tie broken by accuracy
    assert select(evidence, SelectConfig(metric="accuracy"))["point"] == {"train.lr": 1e-4}
    assert select([{**evidence[0], "n": 0}], SelectConfig())["point"] is None


def test_a_reading_floor_keeps_points_that_read_like_the_base_model(tmp_path):
    from entigraph.study.config import SelectConfig
    from entigraph.study.runner import reading_gaps, select

    def ev(alpha, lp, reading):
        return {"run": f"a{alpha}", "point": {"train.interpolate": alpha}, "n": 10, "accuracy": 0.5,
                "target_logprob": lp, "reading": reading}

    evidence = [ev(0.25, -2.0, {"gen": 0.1, "hard_gen": 0.05}), ev(0.5, -1.5, {"gen": 0.0, "hard_gen": -0.08}),
                ev(1.0, -1.0, {"gen": 0.1, "hard_gen": -0.4})]
    assert select(evidence, SelectConfig())["point"] == {"train.interpolate": 1.0}  # no floor: the best recall
    choice = select(evidence, SelectConfig(reading_floor=0.1))
    assert choice["point"] == {"train.interpolate": 0.5} and "not eligible" in choice["why"]
    assert select(evidence, SelectConfig(reading_floor=0.0))["point"] == {"train.interpolate": 0.25}
    worse = [ev(0.5, -1.5, {"gen": -0.3}), ev(1.0, -1.0, {"gen": -0.5})]
    choice = select(worse, SelectConfig(reading_floor=0.1))
    assert choice["point"] == {"train.interpolate": 0.5} and "reads best" in choice["why"]

    run = tmp_path / "r"
    (run / "eval").mkdir(parents=True)
    write_json(run / "eval" / ".done.json", {})
    write_jsonl(run / "eval" / "records.jsonl", [
        {"condition": c, "qid": f"q{j}", "probe_type": "gen", "correct": True,
         "target_logprob": lp + j * (1.3 if c == "cpt_rag" else 1.0)}
        for c, lp in (("cpt_rag", -1.5), ("base_rag", -1.0), ("cpt_closed", -9.0)) for j in range(3)])
    gaps = reading_gaps(run)  # differences -0.5, -0.2, +0.1: the interval's lower end, not the mean -0.2
    assert list(gaps) == ["gen"] and -0.5 - 1e-9 <= gaps["gen"] < -0.3


def test_two_invocations_side_by_side_keep_each_others_state(tmp_path, tiny_lm, calls):
    # both read the (empty) state before either writes, as two `--only` processes started together
    path = study_file(tmp_path, tiny_lm)
    first = Study(load_study(path), only=["raw"], echo=lambda line: None)
    second = Study(load_study(path), only=["entigraph"], echo=lambda line: None)
    first.run()
    second.run()
    state = read_json(tmp_path / "runs" / "st" / "study-state.json")
    assert {"raw", "raw-tune-lr0.001", "entigraph", "entigraph-tune-lr0.001"} <= set(state["runs"])
    assert set(state["chosen"]) == {"raw", "entigraph"}
    assert [i["only"] for i in state["invocations"]] == [["raw"], ["entigraph"]]
    assert all(i.get("finished") for i in state["invocations"])


def test_a_run_another_invocation_holds_is_waited_for_not_marked_interrupted(tmp_path, tiny_lm, calls):
    path = study_file(tmp_path, tiny_lm)
    run_study(load_study(path), only=["raw"], echo=lambda line: None)
    state_path = tmp_path / "runs" / "st" / "study-state.json"
    state = read_json(state_path)
    state["runs"]["raw"]["status"] = "running"
    write_json(state_path, state)
    lock = tmp_path / "runs" / "st" / "raw" / ".lock"
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1]); "
                               "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(2)", str(lock)],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    lines: list[str] = []
    study = Study(load_study(path), only=["raw"], echo=lines.append)
    study.run()  # the stages are complete: it waits for the holder, then finds nothing to do
    holder.wait()
    assert any("another invocation is running it" in line for line in lines)
    assert study.invocation["finished"] and read_json(state_path)["runs"]["raw"]["status"] == "done"


def test_a_thread_cap_reaches_every_stage_of_a_worker(tmp_path, tiny_lm, monkeypatch):
    from entigraph.config import load_config
    from entigraph.study.runner import worker_env

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    study_file(tmp_path, tiny_lm)
    cfg = load_config(tmp_path / "base.yaml", ["train.threads=1"])
    assert worker_env(cfg)["OMP_NUM_THREADS"] == "1"
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the user's own setting wins
    assert worker_env(cfg)["OMP_NUM_THREADS"] == "3"


def test_killing_the_study_stops_its_worker_and_the_worker_records_it(tmp_path):
    """`kill` on the study (not Ctrl-C, which the terminal sends to the worker too) stops the worker,
    which exits as on Ctrl-C: its clean-up runs (the stage's attempt recorded, its locks let go)."""
    import signal

    marker = tmp_path / "stopped"
    worker = ("import sys, time\nfrom entigraph.errors import run_reporting_errors\n"
              "def work():\n    try:\n        print('started', flush=True)\n        time.sleep(60)\n"
              "    finally:\n        open(sys.argv[1], 'w').write('clean-up ran')\n"
              "sys.exit(run_reporting_errors(work))")
    study = ("import os, sys\nfrom entigraph.errors import run_reporting_errors\n"
             "from entigraph.study.runner import _worker\n"
             "sys.exit(run_reporting_errors(lambda: _worker([sys.executable, '-c', sys.argv[1], sys.argv[2]],"
             " dict(os.environ), grace_s=0.5)))")
    proc = subprocess.Popen([sys.executable, "-c", study, worker, str(marker)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "started"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 130
    assert marker.read_text() == "clean-up ran"
    assert proc.stderr.read().count("interrupted; rerun the same command to resume") == 2  # the worker, then the study


def test_a_worker_killed_by_sigkill_is_reported_as_such_with_the_oom_killer_named():
    """A worker the kernel's OOM killer took exits with -9; the study says so instead of 'exit code -9'."""
    from entigraph.study.runner import _stopped, _worker

    code = _worker([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"], dict(os.environ))
    assert code == -9
    assert "SIGKILL" in _stopped(code) and "OOM killer" in _stopped(code)
    assert _stopped(-15) == "was stopped by SIGTERM"
    assert _stopped(2) == "stopped (exit code 2)"


def test_the_ranking_sentence_says_where_generated_and_given_probes_disagree():
    from entigraph.study.report import ranking_sentence

    order = {"accuracy": ["raw", "entigraph", "base"], "target_logprob": ["raw", "entigraph", "base"]}
    swapped = {"accuracy": ["entigraph", "raw", "base"], "target_logprob": order["target_logprob"]}
    pairs = [{"a": "raw", "b": "entigraph", "agree_accuracy": False}, {"a": "base", "b": "raw", "agree_accuracy": True}]
    rk = {"recipes": ["base", "raw", "entigraph"], "kinds": ["given", "generated"], "pairs": pairs,
          "order": {"given": order, "generated": swapped}, "same_order": {"accuracy": False, "target_logprob": True}}
    text = ranking_sentence({"ranking": rk})
    assert text.startswith("By closed-book accuracy they **disagree**: given raw > entigraph > base, "
                           "generated entigraph > raw > base; by target log-likelihood both rank raw > entigraph > base.")
    assert text.endswith("Pairs ordered differently by accuracy: raw vs entigraph.")
    assert ranking_sentence({}) == "No recipe was evaluated on both probe kinds."


def test_the_tradeoff_table_has_every_interpolation_weight_against_the_base_model(tmp_path):
    from entigraph.study.analysis import tradeoff
    from entigraph.study.report import markdown_tradeoff

    run = tmp_path / "mix-tune"
    (run / "eval").mkdir(parents=True)
    write_json(run / "eval" / ".done.json", {})
    shift = {"base": 0.0, "alpha0": 0.0, "alpha0.5": -0.2, "cpt": -0.5}  # the trained model reads worse
    records = []
    for label, d in shift.items():
        for setting in ("closed", "rag"):
            for j in range(6):
                records.append({"condition": f"{label}_{setting}", "qid": f"q{j}", "probe_type": "gen" if j < 3 else "hard_gen",
                                "correct": j % 2 == 0, "target_logprob": -1.0 - j / 10 + d})
    write_jsonl(run / "eval" / "records.jsonl", records)
    rows = tradeoff(run, resamples=200)
    assert {(r["alpha"], r["model"]) for r in rows} == {(0.0, "base"), (0.5, "alpha0.5"), (1.0, "cpt")}  # alpha0 is base
    rag = {r["alpha"]: r for r in rows if r["setting"] == "rag" and r["probe_type"] == "hard_gen"}
    assert "vs_base" not in rag[0.0]
    assert rag[0.5]["vs_base"]["logprob_diff"] == pytest.approx(-0.2)
    assert rag[1.0]["vs_base"]["logprob_diff"] == pytest.approx(-0.5)
    text = markdown_tradeoff({"tradeoff": {"mix-tune": rows}, "runs": {"mix-tune": {"role": "tuning"}}}, "tuning")
    assert text.count("`mix-tune`") == 6 and "-0.500 [-0.500, -0.500]" in text
    assert markdown_tradeoff({"tradeoff": {"mix-tune": rows}, "runs": {"mix-tune": {"role": "tuning"}}}, "reporting") == ""


def test_the_tuning_rule_names_the_reading_floor():
    from entigraph.study.config import SelectConfig
    from entigraph.study.report import markdown_tuning

    res = {"tuning": {"mix": {"chosen": {"train.interpolate": 0.5}, "why": "w", "evidence": [
        {"run": "mix-tune-interpolate0.5", "point": {"train.interpolate": 0.5}, "n": 1, "accuracy": 0.5,
         "ci95": [0, 1], "target_logprob": -1.0, "by_type": {}}]}}, "runs": {}}
    plain = markdown_tuning({**res, "select": vars(SelectConfig())})
    floored = markdown_tuning({**res, "select": vars(SelectConfig(reading_floor=0.1))})
    assert "eligible" not in plain and "stays above -0.1 nats" in floored
