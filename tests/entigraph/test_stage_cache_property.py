"""The stage cache changes nothing a run holds (issue 32): random sequences of runs with random
synthesis budgets, sharing one run_dir with `stage_cache: true`, end with every run's folder equal
to the same run made alone without the cache, and every cache entry as it was stored.

Real extract (spaCy, three tiny documents) and synthesize (generator-free modes: no model) stages."""

import json
import random
import sqlite3
from pathlib import Path

import pytest

from entigraph import pipeline
from entigraph.config import load_config

# what differs between two identical runs: wall time, and how much of a run was done before
VOLATILE = {"seconds", "words_per_s", "step_seconds", "tokens_per_s", "finished_at", "resumed", "generated",
            "failed_this_run"}
UNSTEADY_FILES = ("summary.json", ".sqlite")  # compared by their steady content instead
STAGES = ("extract", "synthesize")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    for i in range(3):
        (folder / f"d{i}.txt").write_text(
            f"Ada Brask kept the Quarrow station for {i + 2} years. Ada Brask met Olin Fesk at Quarrow. "
            f"Olin Fesk and Ada Brask sailed to Merrow in {1900 + i}. The Merrow pier was built by Olin Fesk.\n")
    return folder


def config(run_dir: Path, name: str, corpus: Path, budget: int, cache: bool):
    return load_config("configs/demo.yaml", [
        f"run_dir={run_dir}", f"name={name}", f"corpus.paths=[{corpus}]", f"synthesis.max_passages={budget}",
        f"stage_cache={str(cache).lower()}", "synthesis.modes=[permute, profile, qa]"])


def run(cfg) -> None:
    for stage in STAGES:
        pipeline.run_stage(cfg, stage, echo=lambda line: None)


def _steady(node):
    if isinstance(node, dict):
        return {k: _steady(v) for k, v in node.items() if k not in VOLATILE}
    if isinstance(node, list):
        return [_steady(v) for v in node]
    return node


def contents(folder: Path) -> dict:
    """A stage folder as comparable data: files by content; JSON without wall times; the store's rows."""
    out = {}
    for f in sorted(folder.rglob("*")):
        if not f.is_file() or f.name.endswith((".tmp", ".lock", "-wal", "-shm")):
            continue
        rel = f.relative_to(folder).as_posix()
        if f.name == ".done.json":
            done = json.loads(f.read_text())
            # not the fingerprint: it chains the hashes of files with wall times (summary.json), which
            # two runs made apart never share; the other files' hashes must be equal
            out[rel] = [sorted(k for k in done["outputs"] if k.endswith(UNSTEADY_FILES)),
                        {k: v[2] for k, v in done["outputs"].items() if not k.endswith(UNSTEADY_FILES)},
                        _steady(done["summary"])]
        elif f.suffix == ".json":
            out[rel] = _steady(json.loads(f.read_text()))
        elif f.suffix == ".sqlite":
            db = sqlite3.connect(f"file:{f}?mode=ro", uri=True)
            out[rel] = [db.execute(f"SELECT * FROM {t} ORDER BY task_id").fetchall() for t in ("passages", "plans")]
            db.close()
        else:
            out[rel] = f.read_bytes()
    return out


def run_folder(run_dir: Path, name: str) -> dict:
    return {stage: contents(run_dir / name / stage) for stage in STAGES}


@pytest.mark.parametrize("seed", range(4))
def test_runs_sharing_a_stage_cache_equal_the_same_runs_made_alone(tmp_path, corpus, seed):
    rng = random.Random(seed)
    shared = tmp_path / "shared"
    final: dict[str, int] = {}
    entries: dict[Path, dict] = {}
    for _ in range(rng.randint(4, 7)):
        name, budget = rng.choice("ABC"), rng.randint(1, 14)
        run(config(shared, name, corpus, budget, cache=True))
        final[name] = budget
        for entry in sorted((shared / ".stage-cache").glob("*/*")):
            if entry.is_dir() and not entry.name.startswith("."):
                entries.setdefault(entry, contents(entry))  # as first stored
    alone: dict[int, dict] = {}
    for name, budget in final.items():
        if budget not in alone:
            run(config(tmp_path / f"alone-{budget}", name, corpus, budget, cache=False))
            alone[budget] = run_folder(tmp_path / f"alone-{budget}", name)
        assert run_folder(shared, name) == alone[budget], f"run {name} (budget {budget}) differs from it made alone"
    for entry, stored in entries.items():
        assert contents(entry) == stored, f"cache entry {entry} changed after it was stored"
