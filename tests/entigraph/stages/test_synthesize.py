import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from synth_inputs import tiny_config, write_inputs

from entigraph import artifacts
from entigraph.stages import synthesize as synthesis
from entigraph.backends.base import Generation
from entigraph.errors import EntigraphError
from entigraph.io import read_json
from entigraph.synthesis.engine import Engine
from entigraph.synthesis.store import Store

HERE = Path(__file__).parent


def stored(cfg) -> list:
    with Store(cfg.out / "synthesize" / "store.sqlite") as store:
        return list(store.passages(None))


def test_run_writes_outputs_with_provenance_and_resumes(tmp_path, tiny_lm):
    cfg = tiny_config(tmp_path, tiny_lm, max_passages=10)
    write_inputs(cfg)
    summary = synthesis.run(cfg, progress=False)
    out = cfg.out / "synthesize"
    assert {"store.sqlite", "passages.jsonl", "failed.jsonl", "summary.json"} <= {p.name for p in out.iterdir()}
    assert summary["passages"] == summary["generated"] == 10 and summary["resumed"] == 0
    assert summary["completion_tokens"] > 0 and summary["tokens_per_s"] > 0 and summary["budget_reached"]
    assert summary["prompt_tokens_per_generated_token"] == pytest.approx(
        summary["prompt_tokens"] / summary["completion_tokens"], abs=1e-3)
    assert read_json(out / "summary.json") == summary
    rows = artifacts.synthetic(cfg.out)
    assert [r.seq for r in rows] == list(range(10))
    for mode, row in summary["per_mode"].items():  # what prefill costs each mode, from its own passages
        prompt = sum(r.prompt_tokens for r in rows if r.mode == mode)
        generated = sum(r.completion_tokens for r in rows if r.mode == mode)
        assert row["prompt_tokens"] == prompt and row["prompt_tokens_per_generated_token"] == round(prompt / generated, 3)
    assert {r.mode for r in rows} == {"summary", "pair", "triple"}
    for r in rows:
        assert r.status == "ok" and r.backend == "hf" and r.model == tiny_lm and r.template == f"{r.mode}.txt"
        assert r.template_version.startswith("1+") and r.sampling["max_new_tokens"] == 16
        assert r.prompt_tokens > 0 and 0 < r.completion_tokens <= 16 and r.passage_ids and r.doc_ids
        assert all(e in r.prompt for e in r.entities)
    again = synthesis.run(cfg, progress=False)
    assert again["resumed"] == 10 and again["generated"] == 0 and again["passages"] == 10
    cfg.synthesis.max_passages = 14  # a bigger budget extends the same stream
    more = synthesis.run(cfg, progress=False)
    assert more["resumed"] == 10 and more["generated"] == 4
    assert [r.text for r in artifacts.synthetic(cfg.out)][:10] == [r.text for r in rows]
    path = synthesis.export_hf_dataset(cfg)
    import datasets

    assert len(datasets.load_from_disk(str(path))) == 14


def test_token_budget_and_context_kinds(tmp_path, tiny_lm):
    cfg = tiny_config(tmp_path / "a", tiny_lm, max_passages=None, max_tokens=40, modes=["pair"])
    write_inputs(cfg)
    s = synthesis.run(cfg, progress=False)
    assert s["budget_reached"] and 40 <= s["completion_tokens"] < 40 + 4 * 16  # stops within a batch
    ratios = {}
    for context in ("local", "document"):
        cfg = tiny_config(tmp_path / context, tiny_lm, max_passages=8, modes=["pair"], context=context)
        write_inputs(cfg)
        ratios[context] = synthesis.run(cfg, progress=False)["prompt_tokens_per_generated_token"]
    assert ratios["document"] > ratios["local"]


class FlakyBackend:
    """Deterministic text from the seed; fails the first `fail_first` requests it sees."""

    name, model = "fake", "fake-model"

    def __init__(self, fail_first: int):
        self.left, self.calls = fail_first, 0

    def generate(self, requests):
        out = []
        for r in requests:
            self.calls += 1
            if self.left > 0:
                self.left -= 1
                out.append(Generation("", 3, 0, "error", "server on fire"))
            else:
                out.append(Generation(f"text {r.seed}", 3, 2, "stop"))
        return out

    def count_tokens(self, text):
        return len(text.split())

    def close(self):
        pass


@pytest.mark.parametrize("retry", [True, False])
def test_failed_generations_are_stored_then_retried_never_duplicated(tmp_path, retry):
    cfg = tiny_config(tmp_path, "fake", max_passages=12, retry_failed=retry)
    write_inputs(cfg)
    out = cfg.out
    args = (artifacts.documents(out), artifacts.passages(out), artifacts.entities(out), artifacts.graph(out))
    with Store(tmp_path / "store.sqlite") as store:
        first = Engine(cfg, FlakyBackend(5), *args).run(store, progress=False)
        assert (first["passages"], first["failed"]) == (7, 5)
        assert {p.error for p in store.passages("failed")} == {"server on fire"}
        backend = FlakyBackend(0)
        second = Engine(cfg, backend, *args).run(store, progress=False)
        assert backend.calls == (5 if retry else 0)
        assert (second["passages"], second["failed"]) == ((12, 0) if retry else (7, 5))
        assert store.totals()["rows"] == 12


def test_missing_extract_outputs_name_the_stage(tmp_path):
    with pytest.raises(EntigraphError, match="entigraph extract"):
        synthesis.run(tiny_config(tmp_path, "fake"), progress=False)


def kill_config(root, model):
    cfg = tiny_config(Path(root), model, max_passages=24, batch_size=2)
    cfg.backend.sampling.max_new_tokens = 24
    return cfg


def committed(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
            return con.execute("SELECT COUNT(*) FROM passages").fetchone()[0]
    except sqlite3.OperationalError:  # the schema is not there yet
        return 0


def test_sigkill_mid_run_then_resume_equals_an_uninterrupted_run(tmp_path, tiny_lm):
    reference = kill_config(tmp_path / "ref", tiny_lm)
    write_inputs(reference)
    synthesis.run(reference, progress=False)
    expected = {(r.task_id, r.seq, r.text) for r in stored(reference)}
    assert len(expected) == 24

    killed = kill_config(tmp_path / "killed", tiny_lm)
    write_inputs(killed)
    db = killed.out / "synthesize" / "store.sqlite"
    script = tmp_path / "run_synth.py"
    script.write_text(
        "import sys\nsys.path[:0] = [sys.argv[3], sys.argv[4]]\nfrom pathlib import Path\n"
        "from test_synthesize import kill_config\nfrom entigraph.stages import synthesize as synthesis\n"
        "synthesis.run(kill_config(sys.argv[1], sys.argv[2]), progress=False)\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE.parents[2])}  # the repository
    mid_run = 0
    for target in (4, 10, 16):  # kill once at least `target` passages are committed
        proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "killed"), tiny_lm, str(HERE), str(HERE.parents[1])],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while proc.poll() is None and committed(db) < target and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        mid_run += proc.returncode == -signal.SIGKILL and committed(db) < 24
    assert mid_run >= 2, "the runs finished before they could be killed"
    summary = synthesis.run(killed, progress=False)
    rows = stored(killed)
    assert summary["resumed"] > 0 and summary["passages"] == 24
    assert len(rows) == len({r.task_id for r in rows}) == 24  # no duplicates, nothing missing
    assert {(r.task_id, r.seq, r.text) for r in rows} == expected  # identical for the fixed seed
    with Store(db) as store:
        assert store.totals()["attempts"] == 24  # no passage was written twice


FREE = ["permute", "profile", "reading", "qa"]


def test_generator_free_modes_load_no_model(tmp_path, monkeypatch):
    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(synthesis, "run_backend", no_model)
    cfg = tiny_config(tmp_path, "no-such-model", max_passages=None, modes=FREE, per_doc={"permute": 2})
    write_inputs(cfg)
    summary = synthesis.run(cfg, progress=False)
    assert summary["backend"] == "none" and summary["failed"] == 0 and set(summary["per_mode"]) == set(FREE)
    assert summary["per_mode"]["permute"]["passages"] == 2 * 2  # per_doc: two per document
    rows = artifacts.synthetic(cfg.out)
    assert all(r.unit_ids and r.passage_ids and r.doc_ids and r.completion_tokens > 0 for r in rows)
    assert synthesis.run(cfg, progress=False)["resumed"] == len(rows)
    cfg.synthesis.per_doc = {"explain": 2}
    with pytest.raises(Exception, match="synthesis.per_doc: 'explain' is not one of synthesis.modes"):
        synthesis.run(cfg, progress=False)


NEW_MODES = FREE + ["explain", "quiz", "dialogue", "list", "timeline", "notes", "active_reading", "pair"]


def kill_config_new_modes(root, model):
    """Every new mode (and a pair, so the units strategy steers), small generations: 16 tokens."""
    cfg = tiny_config(Path(root), model, max_passages=30, batch_size=2, modes=NEW_MODES, strategy="units",
                      templates_dir=str(Path(root).parent / "templates"), active_reading_strategies=2)
    cfg.synthesis.per_doc = {m: 1 for m in FREE}
    return cfg


def short_templates(folder: Path) -> None:
    """The shipped templates with max_new_tokens 16, so that a tiny model's run stays short."""
    from entigraph.synthesis.prompts import SHIPPED_DIR

    folder.mkdir(exist_ok=True)
    for path in SHIPPED_DIR.glob("*.txt"):
        text = path.read_text()
        text = "\n".join(l for l in text.splitlines() if not l.startswith("# max_new_tokens"))
        (folder / path.name).write_text(text.replace("# version: 1", "# version: 1\n# max_new_tokens: 16"))


def test_sigkill_new_modes_then_resume_equals_an_uninterrupted_run(tmp_path, tiny_lm):
    short_templates(tmp_path / "templates")
    reference = kill_config_new_modes(tmp_path / "ref", tiny_lm)
    write_inputs(reference)
    synthesis.run(reference, progress=False)
    expected = {(r.task_id, r.seq, r.mode, r.text, tuple(r.unit_ids)) for r in stored(reference)}
    assert len(expected) == 30 and {r[2] for r in expected} == set(NEW_MODES)
    with Store(reference.out / "synthesize" / "store.sqlite") as store:
        plans = {p.task_id: p.text for p in store.plans().values()}
    assert plans

    killed = kill_config_new_modes(tmp_path / "killed", tiny_lm)
    write_inputs(killed)
    db = killed.out / "synthesize" / "store.sqlite"
    script = tmp_path / "run_synth.py"
    script.write_text(
        "import sys\nsys.path[:0] = [sys.argv[3], sys.argv[4]]\n"
        "from test_synthesize import kill_config_new_modes\nfrom entigraph.stages import synthesize as synthesis\n"
        "synthesis.run(kill_config_new_modes(sys.argv[1], sys.argv[2]), progress=False)\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE.parents[2])}
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "killed"), tiny_lm, str(HERE),
                             str(HERE.parents[1])], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while proc.poll() is None and committed(db) < 12 and time.monotonic() < deadline:  # one kill, mid-run
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL and 0 < committed(db) < 30, "the run finished before it could be killed"
    summary = synthesis.run(killed, progress=False)
    rows = stored(killed)
    assert summary["resumed"] > 0 and summary["passages"] == 30
    assert {(r.task_id, r.seq, r.mode, r.text, tuple(r.unit_ids)) for r in rows} == expected
    with Store(db) as store:
        assert store.totals()["attempts"] == 30  # no passage was written twice
        assert {p.task_id: p.text for p in store.plans().values()} == plans  # the same plans,
        assert store.db.execute("SELECT MAX(attempts) FROM plans").fetchone()[0] == 1  # each written once
