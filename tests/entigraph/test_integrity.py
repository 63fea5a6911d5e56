"""Issue 21's findings, one test each: nothing stale, nothing mixed, nothing leaked.

Stages are stand-ins where the bookkeeping is what is tested (tests/entigraph/test_pipeline.py has
the same fixture); tests/test_kill.py kills the real stages."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from synth_inputs import tiny_config, write_inputs

import entigraph.stages.synthesize as synthesize
from entigraph import pipeline
from entigraph.locks import run_lock
from entigraph.stages import STAGES
from entigraph.backends.base import Generation
from entigraph.cli import main
from entigraph.config import load_config
from entigraph.errors import ConfigError, EntigraphError
from entigraph.io import atomic_path


def corpus_cfg(tmp_path, n_files=3):
    corpus = tmp_path / "corpus"
    corpus.mkdir(exist_ok=True)
    for i in range(n_files):
        (corpus / f"doc{i}.txt").write_text(f"Document {i} is about the harbour.\n")
    return load_config(None, [f"run_dir={tmp_path / 'runs'}", "name=t", f"corpus.paths=[{corpus}]"])


# 1. A stage is never served as complete over changed inputs or after a kill.

def test_added_corpus_file_reruns_extract_and_everything_after(tmp_path, calls):
    cfg = corpus_cfg(tmp_path)
    pipeline.run_all(cfg)
    calls.clear()
    pipeline.run_all(cfg)
    assert calls == []  # nothing changed
    (tmp_path / "corpus" / "doc9.txt").write_text("A new document.\n")
    pipeline.run_all(cfg)
    assert calls == list(STAGES)


def test_changed_stage_output_reruns_the_stages_after_it(tmp_path, calls):
    cfg = corpus_cfg(tmp_path)
    pipeline.run_all(cfg)
    calls.clear()
    (cfg.out / "extract" / "documents.jsonl").write_text("edited by hand\n")
    pipeline.run_all(cfg)
    assert calls == ["synthesize", "filter", "train", "eval", "report"]


def test_a_stage_killed_after_writing_is_not_complete(tmp_path, calls, monkeypatch):
    cfg = corpus_cfg(tmp_path)
    pipeline.run_all(cfg)
    fake = pipeline.stage_function

    def killed(stage):
        run, lines = fake(stage)

        def die(cfg):
            run(cfg)  # rewrites its outputs, then dies before the marker
            raise KeyboardInterrupt
        return (die if stage == "extract" else run), lines

    monkeypatch.setattr(pipeline, "stage_function", killed)
    with pytest.raises(KeyboardInterrupt):
        pipeline.run_stage(cfg, "extract", force=True)
    assert not pipeline.marker(cfg, "extract").exists()
    monkeypatch.setattr(pipeline, "stage_function", fake)
    calls.clear()
    pipeline.run_all(cfg)
    assert calls == list(STAGES)  # not "complete; skipping"


# 2. One writer per run folder; temporary names never shared.

def test_a_second_process_is_refused_with_the_holders_pid(tmp_path):
    cfg = corpus_cfg(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from entigraph.config import load_config
        from entigraph.locks import run_lock
        cfg = load_config(None, ["run_dir={tmp_path / 'runs'}", "name=t"])
        with run_lock(cfg.out):
            print("locked", flush=True)
            time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(EntigraphError, match=rf"being written by another entigraph process \(PID {holder.pid}\)"):
            pipeline.run_all(cfg)
    finally:
        holder.kill()
        holder.wait()
    pipeline.run_all(cfg, start="report")  # a dead holder's lock is gone with it


def test_temporary_files_are_unique_and_a_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "graph.graphml"
    with atomic_path(target) as a, atomic_path(target) as b:
        assert a != b and a.name.endswith(".graphml.tmp")
        a.write_text("one")
        b.write_text("two")
    assert target.read_text() in ("one", "two")
    with pytest.raises(RuntimeError), atomic_path(target) as c:
        c.write_text("half")
        raise RuntimeError
    assert target.read_text() in ("one", "two") and not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_leftover_temporary_files_are_cleaned_when_the_stage_starts(tmp_path, calls):
    cfg = corpus_cfg(tmp_path)
    stale = cfg.out / "extract" / ".graph.x1y2.graphml.tmp"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"")
    pipeline.run_stage(cfg, "extract")
    assert not stale.exists()


# 3. The run name never escapes run_dir.

@pytest.mark.parametrize("name", ["../../escape2", "/abs/escape", "''", "a/b", ".."])
def test_run_names_are_one_safe_path_component(tmp_path, name, capsys):
    code = main(["extract", "configs/demo.yaml", "--set", f"run_dir={tmp_path / 'runs'}", "--set", f"name={name}"])
    assert code == 2
    assert "not a valid run name" in capsys.readouterr().err
    assert not any(tmp_path.rglob("config.yaml")) and not (tmp_path / "escape2").exists()


# 5. Numbers are range-checked before any model loads (tests/entigraph/test_config.py has the table).

def test_negative_budget_fails_at_load_not_after_loading_a_model(tmp_path, capsys):
    start = time.perf_counter()
    assert main(["synthesize", "configs/demo.yaml", "--set", f"run_dir={tmp_path}",
                 "--set", "synthesis.max_passages=-1"]) == 2
    assert capsys.readouterr().err.strip() == "entigraph: error: synthesis.max_passages must be >= 1, got -1"
    assert time.perf_counter() - start < 5
    with pytest.raises(ConfigError, match="train.epochs must be > 0"):
        load_config(None, ["train.epochs=0"])


# 7. A stage that failed entirely is not complete, and says so.

class DownBackend:
    name, model = "fake", "fake-model"
    calls = 0

    def generate(self, requests):
        DownBackend.calls += len(requests)
        return [Generation("", 3, 0, "error", "connection refused") for _ in requests]

    def count_tokens(self, text):
        return len(text.split())

    def close(self):
        pass


def test_synthesis_where_every_request_failed_is_not_complete(tmp_path, monkeypatch):
    cfg = tiny_config(tmp_path, "fake", max_passages=6)
    write_inputs(cfg)
    monkeypatch.setattr(synthesize, "run_backend", lambda cfg: DownBackend())
    with pytest.raises(EntigraphError, match="all 6 requests failed .*connection refused"):
        pipeline.run_stage(cfg, "synthesize")
    assert not pipeline.marker(cfg, "synthesize").exists()
    with pytest.raises(EntigraphError):
        pipeline.run_stage(cfg, "synthesize")
    assert DownBackend.calls == 12  # the rerun retried every failed request


def test_sigkilled_writer_leaves_a_lock_nobody_holds(tmp_path):
    """The run lock is a kernel lock: SIGKILL releases it, so no stale lock can block a rerun."""
    cfg = corpus_cfg(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from entigraph.config import load_config
        from entigraph.locks import run_lock
        with run_lock(load_config(None, ["run_dir={tmp_path / 'runs'}", "name=t"]).out):
            print("locked", flush=True)
            time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    with run_lock(cfg.out):
        assert (cfg.out / ".lock").read_text() == str(os.getpid())
