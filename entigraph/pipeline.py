"""Run the stages in order; each writes under runs/<name>/ and is skipped when already complete.

A stage is complete when its folder holds ``.done.json`` with a fingerprint of what it depends on:
its settings, the files it reads (the corpus, question and replay files; every earlier stage's
outputs, by name, size and modification time) and the fingerprint of the stage before it. Change a
setting or an input and that stage and everything after it rerun. A stage's marker is removed
before it writes anything, so a killed stage is never complete; interrupted stages resume from
their own files (synthesis store, training checkpoints). One process at a time writes a run
folder: the others are told which PID holds it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Callable, Iterable

import yaml

from . import stages
from .artifacts import STAGES, stage_dir
from .config import RunConfig
from .errors import EntigraphError
from .io import atomic_path, read_json, write_json


def _uses_backend(cfg: RunConfig, stage: str) -> bool:
    """Whether a stage calls the `backend:` model, so its settings belong in that stage's fingerprint."""
    return {
        "extract": cfg.entities.extractor in ("llm", "hybrid"),
        "synthesize": True,
        "filter": cfg.filter.judge,
        "eval": cfg.eval.answer_mode == "generate",
    }.get(stage, False)


@dataclass(frozen=True)
class Stage:
    name: str
    module: ModuleType  # run(cfg) -> dict, and optionally summary_lines(summary)
    sections: tuple[str, ...]  # config sections whose change invalidates this stage (besides `backend`)

    def inputs(self, cfg: RunConfig) -> tuple[str, ...]:
        return self.sections + (("backend",) if _uses_backend(cfg, self.name) else ())


PIPELINE = (
    Stage("extract", stages.extract, ("seed", "corpus", "entities", "models.spacy")),
    Stage("synthesize", stages.synthesize, ("synthesis",)),
    Stage("filter", stages.filter, ("filter", "models.embedder")),
    Stage("train", stages.train, ("train", "models.base")),
    Stage("eval", stages.eval, ("eval", "models.base", "models.embedder")),
    Stage("report", stages.report, ()),
)
BY_NAME = {s.name: s for s in PIPELINE}
assert tuple(BY_NAME) == STAGES


def _section(cfg: RunConfig, dotted: str):
    node = cfg.to_dict()
    for part in dotted.split("."):
        node = node[part]
    return node


def _external_inputs(cfg: RunConfig, stage: str) -> list[str]:
    """Paths outside the run folder that a stage reads."""
    return {
        "extract": list(cfg.corpus.paths),
        "synthesize": [cfg.synthesis.templates_dir] if cfg.synthesis.templates_dir else [],
        "train": list(cfg.train.replay.paths) + list(cfg.train.anneal_paths),
        "eval": list(cfg.eval.questions),
    }.get(stage, [])


def _stat_files(files: Iterable[Path]) -> list[tuple[str, int, int]]:
    out = []
    for f in files:
        try:
            st = f.stat()
            out.append((str(f), st.st_size, st.st_mtime_ns))
        except OSError:
            out.append((str(f), -1, -1))
    return out


def _outputs(cfg: RunConfig, stage: str) -> list[Path]:
    """A finished stage's files (not its marker, locks or temporary files)."""
    root = stage_dir(cfg.out, stage)
    return sorted(f for f in root.rglob("*") if f.is_file() and not f.name.startswith(".")
                  and not f.name.endswith(".tmp") and "checkpoints" not in f.relative_to(root).parts)


def input_digest(cfg: RunConfig, stage: str) -> list:
    """What a stage reads, as (file, size, mtime) triples: any change of input reruns it."""
    from .corpus import list_files

    index = STAGES.index(stage)
    files = [f for earlier in STAGES[:index] for f in _outputs(cfg, earlier)]
    external = [p for p in _external_inputs(cfg, stage) if p]
    try:
        listed, skipped = list_files(external)
        files += listed + [Path(s["file"]) for s in skipped]
    except EntigraphError as e:  # a missing input: the stage itself reports it when it runs
        return [*_stat_files(files), str(e)]
    return _stat_files(files)


def fingerprint(cfg: RunConfig, stage: str) -> str:
    """Hash of this stage's settings and inputs, chained with the fingerprint of the stage before it."""
    index = STAGES.index(stage)
    prev = fingerprint(cfg, STAGES[index - 1]) if index else ""
    data = {s: _section(cfg, s) for s in BY_NAME[stage].inputs(cfg)}
    blob = json.dumps([prev, data, input_digest(cfg, stage)], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def marker(cfg: RunConfig, stage: str) -> Path:
    return stage_dir(cfg.out, stage) / ".done.json"


def is_complete(cfg: RunConfig, stage: str) -> bool:
    path = marker(cfg, stage)
    if not path.is_file():
        return False
    try:
        return read_json(path).get("fingerprint") == fingerprint(cfg, stage)
    except (OSError, ValueError):
        return False


def stage_function(stage: str) -> tuple[Callable[[RunConfig], dict], Callable[[dict], list[str]] | None]:
    module = BY_NAME[stage].module
    return module.run, getattr(module, "summary_lines", None)


def run_stage(cfg: RunConfig, stage: str, force: bool = False, echo: Callable[[str], None] = print) -> dict:
    with run_lock(cfg):
        return _run_stage(cfg, stage, force, echo)


def _run_stage(cfg: RunConfig, stage: str, force: bool, echo: Callable[[str], None]) -> dict:
    if not force and is_complete(cfg, stage):
        done = read_json(marker(cfg, stage))
        echo(f"[{stage}] complete ({done.get('seconds', 0):.1f} s when it ran); skipping")
        return done.get("summary", {})
    echo(f"[{stage}] running")
    for this_or_later in STAGES[STAGES.index(stage):]:  # their inputs are about to change
        marker(cfg, this_or_later).unlink(missing_ok=True)
    run, lines = stage_function(stage)
    clean_temporary_files(stage_dir(cfg.out, stage))
    start = time.perf_counter()
    summary = run(cfg) or {}
    seconds = time.perf_counter() - start
    if os.environ.get("RANK", "0") != "0":  # under the deepspeed launcher only rank 0 keeps the books
        return summary
    write_json(marker(cfg, stage), {
        "stage": stage, "fingerprint": fingerprint(cfg, stage), "seconds": seconds,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "summary": summary,
    })
    _record_timing(cfg, stage, seconds)
    for line in (lines(summary) if lines else []):
        echo(f"[{stage}] {line}")
    echo(f"[{stage}] done in {seconds:.1f} s")
    return summary


def _record_timing(cfg: RunConfig, stage: str, seconds: float) -> None:
    path = cfg.out / "timings.json"
    timings = read_json(path) if path.is_file() else {}
    timings[stage] = round(seconds, 2)
    write_json(path, timings)


def save_config(cfg: RunConfig) -> None:
    """The settings of the last command, beside its outputs (written under the run lock)."""
    with atomic_path(cfg.out / "config.yaml") as tmp:
        tmp.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), encoding="utf-8")


def clean_temporary_files(folder: Path) -> None:
    """Temporary files a killed process left behind (safe under the run lock: no writer is alive)."""
    folder.mkdir(parents=True, exist_ok=True)
    for f in folder.rglob("*.tmp"):
        if f.is_file():
            f.unlink(missing_ok=True)


@contextmanager
def run_lock(cfg: RunConfig):
    """One writer per run folder. Re-entrant within a process; under the deepspeed launcher only
    rank 0 takes it (every rank runs the train stage)."""
    if os.environ.get("RANK", "0") != "0" or str(cfg.out.resolve()) in _HELD:
        yield
        return
    cfg.out.mkdir(parents=True, exist_ok=True)
    path = cfg.out / ".lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the kernel releases it when its holder dies
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise EntigraphError(f"{cfg.out} is being written by another entigraph process (PID {holder}); "
                             "wait for it to finish or stop it") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    _HELD.add(str(cfg.out.resolve()))
    try:
        yield
    finally:
        _HELD.discard(str(cfg.out.resolve()))
        os.ftruncate(fd, 0)
        os.close(fd)


_HELD: set[str] = set()


def run_all(cfg: RunConfig, start: str | None = None, force: bool = False,
            echo: Callable[[str], None] = print) -> dict[str, dict]:
    with run_lock(cfg):
        save_config(cfg)
        stages = STAGES[STAGES.index(start):] if start else STAGES
        return {stage: run_stage(cfg, stage, force=force, echo=echo) for stage in stages}
