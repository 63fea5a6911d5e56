"""Issue 21's and issue 32's findings, one test each: nothing stale, nothing mixed, nothing leaked.

Stages are stand-ins where the bookkeeping is what is tested (tests/entigraph/test_pipeline.py has
the same fixture); tests/test_kill.py kills the real stages."""

import os
import sqlite3
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from synth_inputs import tiny_config, write_inputs

import entigraph.stages.synthesize as synthesize
from entigraph import fingerprints, pipeline, stage_cache
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
    assert not fingerprints.marker(cfg, "extract").exists()
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
    with pytest.raises(ConfigError, match=r"train.mixture\[0\].epochs must be > 0"):
        load_config(None, ["train.mixture=[{source: raw, epochs: 0}]"])


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
    assert not fingerprints.marker(cfg, "synthesize").exists()
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


# ---------------------------------------------------------------------------------------------
# Issue 32's findings, one test (or more) each: content fingerprints, budgets that shrink, a stage
# cache that cannot be written through, clean errors for bad paths, nothing stale, no key stored.

def _same_size_and_mtime_edit(path, old, new):
    """Change a file's text and put size and mtime back (what `touch -r` does); ctime moves on."""
    st = path.stat()
    text = path.read_text().replace(old, new)
    assert len(text) == len(path.read_text())
    path.write_text(text)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns


# 32.1 External inputs are fingerprinted by content.

def test_corpus_edit_that_keeps_size_and_mtime_reruns_extract(tmp_path, calls):
    cfg = corpus_cfg(tmp_path)
    pipeline.run_all(cfg)
    calls.clear()
    _same_size_and_mtime_edit(tmp_path / "corpus" / "doc1.txt", "harbour", "harvest")
    pipeline.run_all(cfg)
    assert calls == list(STAGES)  # not "complete; skipping"


def test_content_hashes_are_remembered_by_path_size_times_and_inode(tmp_path, calls, monkeypatch):
    """A large corpus is not read again on every run, yet an edit behind size and mtime is seen."""
    monkeypatch.setattr(fingerprints, "RACY_NS", -1)  # files written just now may be remembered too
    hashed = []
    real = fingerprints.content_hash
    monkeypatch.setattr(fingerprints, "content_hash", lambda path: hashed.append(path.name) or real(path))
    cfg = corpus_cfg(tmp_path)
    pipeline.run_all(cfg)
    assert sorted(set(hashed)) == ["doc0.txt", "doc1.txt", "doc2.txt"]
    hashed.clear()
    pipeline.run_all(cfg)
    assert hashed == []  # remembered in run_dir/.input-hashes.json
    _same_size_and_mtime_edit(tmp_path / "corpus" / "doc2.txt", "harbour", "harvest")
    calls.clear()
    pipeline.run_all(cfg)
    assert set(hashed) == {"doc2.txt"} and calls == list(STAGES)


def test_stage_output_edit_that_keeps_size_and_mtime_reruns_the_stages_after_it(tmp_path, calls):
    cfg = corpus_cfg(tmp_path)
    pipeline.run_all(cfg)
    calls.clear()
    documents = cfg.out / "extract" / "documents.jsonl"
    _same_size_and_mtime_edit(documents, documents.read_text().strip(), "9")
    pipeline.run_all(cfg)
    assert calls == list(STAGES[1:])


def test_a_reused_stage_is_not_read_again_to_be_fingerprinted(tmp_path, calls, monkeypatch):
    """Its copies have new inodes and ctimes: the marker records them, no file is hashed again."""
    a = corpus_cfg(tmp_path)
    a.stage_cache = True
    pipeline.run_stage(a, "extract")
    b = load_config(None, [f"run_dir={tmp_path / 'runs'}", "name=u", f"corpus.paths=[{tmp_path / 'corpus'}]",
                           "stage_cache=true"])
    pipeline.run_stage(b, "extract")
    assert calls == ["extract"]  # b reused it
    hashed = []
    monkeypatch.setattr(fingerprints, "file_sha256", lambda path: hashed.append(path) or "x")
    fingerprints.fingerprint(a, "synthesize")
    fingerprints.fingerprint(b, "synthesize")
    assert hashed == []


def test_cli_extract_reads_a_corpus_file_edited_behind_size_and_mtime(tmp_path, capsys):
    """The issue's reproduction, with the real extract stage."""
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "a.txt").write_text("Ada Brask kept the Quarrow station for eleven years.\n")
    args = ["extract", "configs/demo.yaml", "--set", f"run_dir={tmp_path / 'r'}", "--set", "name=t",
            "--set", f"corpus.paths=[{corpus}]"]
    assert main(args) == 0
    _same_size_and_mtime_edit(corpus / "a.txt", "eleven", "twelve")
    assert main(args) == 0
    assert "complete; skipping" not in capsys.readouterr().out
    assert "twelve" in (tmp_path / "r" / "t" / "extract" / "documents.jsonl").read_text()


# 32.2 A lower synthesis budget serves what an uninterrupted run with that budget would.

def _free_synthesis(tmp_path, budget):
    cfg = tiny_config(tmp_path, "none", modes=["permute", "profile", "qa"], max_passages=budget)
    if not (cfg.out / "extract").exists():
        write_inputs(cfg)
    pipeline.run_stage(cfg, "synthesize", echo=lambda line: None)
    out = cfg.out / "synthesize"
    rows = sqlite3.connect(out / "store.sqlite").execute("SELECT task_id FROM passages ORDER BY task_id").fetchall()
    return (out / "passages.jsonl").read_text(), rows


def test_a_lower_passage_budget_truncates_to_what_that_budget_writes(tmp_path):
    alone = {n: _free_synthesis(tmp_path / f"alone{n}", n) for n in (2, 8)}
    assert len(alone[8][1]) == 8 and len(alone[2][1]) == 2
    assert _free_synthesis(tmp_path / "r", 8) == alone[8]
    assert _free_synthesis(tmp_path / "r", 2) == alone[2]  # was: still 8 passages
    assert _free_synthesis(tmp_path / "r", 8) == alone[8]  # and back up again


# 32.3 Stage cache entries are immutable: a run that grows after reusing one changes nothing else.

def test_growing_a_run_that_reused_a_cached_stage_leaves_the_other_run_and_the_entry_alone(tmp_path):
    def cfg_for(name, budget):
        cfg = tiny_config(tmp_path, "none", modes=["permute", "profile", "qa"], max_passages=budget)
        cfg.name, cfg.stage_cache = name, True
        return cfg

    def passages(folder):
        return sqlite3.connect(folder / "store.sqlite").execute("SELECT COUNT(*) FROM passages").fetchone()[0]

    a, b = cfg_for("A", 5), cfg_for("B", 5)
    for cfg in (a, b):
        write_inputs(cfg)
    pipeline.run_stage(a, "synthesize")
    lines = []
    pipeline.run_stage(b, "synthesize", echo=lines.append)
    assert any("reused from the stage cache" in line for line in lines)
    entry = stage_cache.cache_entry(b, "synthesize", fingerprints.fingerprint(b, "synthesize"))
    pipeline.run_stage(cfg_for("B", 12), "synthesize")
    assert passages(b.out / "synthesize") == 12
    assert passages(a.out / "synthesize") == 5  # was 12: B wrote through a hard link into A's store
    assert passages(entry) == 5
    c = cfg_for("C", 5)
    write_inputs(c)
    pipeline.run_stage(c, "synthesize")
    assert passages(c.out / "synthesize") == 5 and len((c.out / "synthesize" / "passages.jsonl").read_text().splitlines()) == 5
    for f in (b.out / "synthesize").rglob("*"):
        assert f.stat().st_nlink == 1  # its own files: nothing shared with the entry or with A


def test_shared_model_weights_are_read_only_links_a_stage_unshares_before_writing(tmp_path, monkeypatch, calls):
    """Large weights are shared as read-only hard links (no copy of a model per run); a stage that
    runs again replaces them by private copies first, so it never writes through to the entry."""
    monkeypatch.setattr(stage_cache, "SHARE_BYTES", 4)
    a = corpus_cfg(tmp_path)
    pipeline.run_stage(a, "extract")
    weights = a.out / "extract" / "model.safetensors"
    weights.write_bytes(b"weights of run A")
    a.stage_cache = True
    pipeline.run_stage(a, "extract", force=True)  # stored now, with the weights
    b = load_config(None, [f"run_dir={tmp_path / 'runs'}", "name=u", f"corpus.paths=[{tmp_path / 'corpus'}]",
                           "stage_cache=true"])
    pipeline.run_stage(b, "extract")
    shared = b.out / "extract" / "model.safetensors"
    assert shared.stat().st_nlink > 1 and not shared.stat().st_mode & 0o222
    stage_cache.unshare(b.out / "extract")
    assert shared.stat().st_nlink == 1 and shared.read_bytes() == b"weights of run A"
    shared.write_bytes(b"weights of run B")
    assert weights.read_bytes() == b"weights of run A"
    entry = stage_cache.cache_entry(a, "extract", fingerprints.fingerprint(a, "extract"))
    assert (entry / "model.safetensors").read_bytes() == b"weights of run A"


# 32.4 An unusable run_dir is one line at load, never a traceback.

@pytest.mark.parametrize("where", ["file", "under-a-file", "proc", "sys"])
def test_unusable_run_dir_is_one_line_at_load(tmp_path, where, capsys):
    (tmp_path / "afile").write_text("")
    run_dir = {"file": tmp_path / "afile", "under-a-file": tmp_path / "afile" / "runs",
               "proc": "/proc/entigraph-runs", "sys": "/sys/entigraph-runs"}[where]
    assert main(["extract", "configs/demo.yaml", "--set", f"run_dir={run_dir}", "--set", "corpus.paths=[demo]"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("entigraph: error: run_dir: ") and err.count("\n") == 1 and "Traceback" not in err


def test_unwritable_run_dir_is_one_line_at_load(tmp_path, monkeypatch, capsys):
    """Tried for real, not from permission bits (which say nothing to root, or about /proc)."""
    import tempfile

    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    if os.geteuid() == 0:  # root writes anywhere: refuse this folder as the kernel would refuse a user
        real = tempfile.mkdtemp

        def mkdtemp(*args, dir=None, **kwargs):
            if dir is not None and str(dir).startswith(str(locked)):
                raise PermissionError(13, "Permission denied", str(dir))
            return real(*args, dir=dir, **kwargs)
        monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
    for run_dir in (locked, locked / "runs"):
        assert main(["extract", "configs/demo.yaml", "--set", f"run_dir={run_dir}", "--set", "corpus.paths=[demo]"]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"entigraph: error: run_dir: {run_dir} ") and err.count("\n") == 1
        assert "Permission denied" in err
    locked.chmod(0o755)


# 32.5 Unreadable folders are listed as skipped, with the reason.

def test_unreadable_subfolder_is_listed_as_skipped(tmp_path, monkeypatch):
    from entigraph.corpus import load_corpus_report

    corpus = tmp_path / "corpus"
    (corpus / "closed").mkdir(parents=True)
    (corpus / "a.txt").write_text("Ada Brask kept the Quarrow station.\n")
    (corpus / "closed" / "b.txt").write_text("Olin Fesk sailed to Merrow.\n")
    (corpus / "closed").chmod(0)
    if os.geteuid() == 0:  # root reads any folder: refuse this one as the kernel would refuse a user
        real = os.scandir

        def scandir(path="."):
            if os.fspath(path).rstrip("/").endswith("closed"):
                raise PermissionError(13, "Permission denied", os.fspath(path))
            return real(path)
        monkeypatch.setattr(os, "scandir", scandir)
    try:
        docs, report = load_corpus_report([str(corpus)])
    finally:
        (corpus / "closed").chmod(0o755)
    assert report.summary().startswith("1 files read, 1 skipped")
    assert report.skipped == [{"file": str(corpus / "closed"), "reason": "cannot read folder: Permission denied"}]


def test_unreadable_file_is_listed_as_skipped(tmp_path, monkeypatch):
    from pathlib import Path

    from entigraph.corpus import load_corpus_report

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("Ada Brask kept the Quarrow station.\n")
    (corpus / "b.txt").write_text("Olin Fesk sailed to Merrow.\n")
    (corpus / "b.txt").chmod(0)
    if os.geteuid() == 0:  # root reads any file: refuse this one as the kernel would refuse a user
        real = Path.read_bytes

        def read_bytes(self):
            if self.name == "b.txt":
                raise PermissionError(13, "Permission denied", str(self))
            return real(self)
        monkeypatch.setattr(Path, "read_bytes", read_bytes)
    docs, report = load_corpus_report([str(corpus)])
    assert report.skipped == [{"file": str(corpus / "b.txt"), "reason": "cannot read file: Permission denied"}]


# 32.6 A key given twice in a config file is an error that names both lines.

def test_duplicate_yaml_keys_are_an_error_naming_both_lines(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("name: a\nsynthesis:\n  max_passages: 4\n  modes: [qa]\n  max_passages: 9\n")
    with pytest.raises(ConfigError, match=r"dup.yaml:5:3: .*duplicate key 'max_passages': first at line 3, again at line 5"):
        load_config(path)
    path.write_text("synthesis:\n  <<: {max_passages: 3}\n  max_passages: 4\n")  # a merge key may be overridden
    assert load_config(path).synthesis.max_passages == 4
    with pytest.raises(ConfigError, match="--set value .*duplicate key 'max_passages'"):
        load_config(None, ["synthesis={max_passages: 3, max_passages: 4}"])


# 32.7 A stage's outputs are what it wrote this time.

def test_closed_book_eval_after_a_rag_eval_leaves_no_retrieval_files(tmp_path, monkeypatch):
    import entigraph.evaluation.compare as compare
    import entigraph.evaluation.tasks as tasks
    import entigraph.stages.eval as eval_stage

    cfg = tiny_config(tmp_path, "none")
    cfg.eval.cache = False
    write_inputs(cfg)
    monkeypatch.setattr(tasks, "questions_for_run", lambda cfg, docs: (["q1"], {}))
    monkeypatch.setattr(compare, "plan_models", lambda cfg: [("base", "base-model", list(cfg.eval.conditions))])
    monkeypatch.setattr(compare, "score_loglik", lambda cfg, label, path, conds, *rest: [
        {"condition": c, "model": label, "correct": 1} for c in conds])

    def retrieve(cfg, documents, questions, out):
        (out / "index").mkdir(exist_ok=True)
        (out / "index" / "dense.faiss").write_bytes(b"index")
        (out / "retrieval.json").write_text("{}")
        return {"q1": ("context", ["c1"])}, {"recall": 1.0}
    monkeypatch.setattr(compare, "retrieve_contexts", retrieve)
    monkeypatch.setattr(compare, "summarize", lambda records, *rest: {
        k: None for k in ("questions", "scoring", "chance", "conditions", "paired", "reading", "probes")})
    monkeypatch.setattr(eval_stage, "_forgetting", lambda *a: {})
    monkeypatch.setattr(eval_stage, "_interpolated_models", lambda *a: None, raising=False)
    out = cfg.out / "eval"
    cfg.eval.conditions = ["base_closed", "base_rag"]
    pipeline.run_stage(cfg, "eval")
    assert (out / "retrieval.json").is_file() and (out / "index").is_dir()
    cfg.eval.conditions = ["base_closed"]
    pipeline.run_stage(cfg, "eval")
    assert not (out / "retrieval.json").exists() and not (out / "index").exists()
    assert sorted(fingerprints.output_hashes(cfg, "eval")) == ["records.jsonl", "results.json"]


# 32.8 Keys: never in config.yaml, never stored from a completion.

KEY = "sk-proj-4f9a2c7e1b8d6f3a0e5c9b7d"


def test_a_key_in_api_key_env_is_refused_without_echoing_it(tmp_path, capsys):
    assert main(["extract", "configs/demo.yaml", "--set", f"run_dir={tmp_path}",
                 "--set", f"backend.openai.api_key_env={KEY}"]) == 2
    err = capsys.readouterr().err
    assert "backend.openai.api_key_env" in err and err.count("\n") == 1
    assert not any(KEY[i:i + 8] in err for i in range(len(KEY) - 7))  # not even a fragment
    assert not list(tmp_path.rglob("config.yaml"))
    with pytest.raises(ConfigError, match="got 'MY-KEY'"):  # a name that cannot be one is shown
        load_config(None, ["backend.openai.api_key_env=MY-KEY"])
    assert load_config(None, ["backend.openai.api_key_env=_MY_KEY2"]).backend.openai.api_key_env == "_MY_KEY2"


def test_an_api_key_variable_that_is_not_set_is_said_once(monkeypatch, caplog):
    import logging

    from entigraph.backends.openai import OpenAIBackend

    cfg = load_config(None, ["backend.openai.api_key_env=ENTIGRAPH_TEST_KEY", "backend.openai.model=tiny"])
    monkeypatch.delenv("ENTIGRAPH_TEST_KEY", raising=False)
    with caplog.at_level(logging.WARNING):
        OpenAIBackend.from_config(cfg.backend, "tiny").close()
    assert "ENTIGRAPH_TEST_KEY, which is not set: requests go out without an API key" in caplog.text


def test_a_completion_that_echoes_the_key_is_masked_before_it_is_stored(tmp_path, monkeypatch):
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from entigraph.backends.openai import OpenAIBackend

    class Leaky(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            key = self.headers["Authorization"].split()[-1]
            body = json.dumps({"choices": [{"message": {"content": f"Mara Velt met Oskar Brenn. My key is {key}, "
                                                                    f"and its end {key[-10:]}."},
                                            "finish_reason": "stop"}], "usage": {"completion_tokens": 9}}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Leaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        cfg = tiny_config(tmp_path, "tiny", max_passages=4)
        write_inputs(cfg)
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        monkeypatch.setattr(synthesize, "run_backend", lambda cfg: OpenAIBackend(url, "tiny", api_key=KEY))
        pipeline.run_stage(cfg, "synthesize")
    finally:
        server.shutdown()
        server.server_close()
    out = cfg.out / "synthesize"
    stored = (out / "passages.jsonl").read_text()
    assert "My key is ***" in stored and len(stored.splitlines()) == 4
    for f in out.iterdir():
        data = f.read_bytes()
        assert not any(KEY[i:i + 8].encode() in data for i in range(len(KEY) - 7)), f


# 32.9 `ask` refuses an empty question before anything loads.

@pytest.mark.parametrize("question", ["", "   \t"])
def test_ask_refuses_an_empty_question_before_loading_anything(question, monkeypatch, capsys):
    import entigraph.ask as ask

    def no(*args, **kwargs):
        raise AssertionError("loaded something for an empty question")
    monkeypatch.setattr(ask, "run_config", no)
    monkeypatch.setattr(ask, "Asker", no, raising=False)
    assert main(["ask", "runs/nowhere", question]) == 2
    assert capsys.readouterr().err.strip() == ('entigraph: error: question 1 is empty: ask something, e.g. '
                                               'entigraph ask runs/nowhere "Who kept the station?"')
    assert main(["ask", "runs/nowhere", "Who kept the station?", question]) == 2  # one of several
    assert "question 2 is empty" in capsys.readouterr().err
