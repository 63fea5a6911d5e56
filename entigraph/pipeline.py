"""Run the stages in order; each writes under runs/<name>/ and is skipped when already complete.

A stage is complete when its folder holds ``.done.json`` with its fingerprint (entigraph/fingerprints.py):
change a setting or an input and that stage and everything after it rerun; with ``stage_cache`` a
stage another run finished with the same fingerprint is copied (entigraph/stage_cache.py). A
stage's marker is removed before it writes anything, so a killed stage is never complete;
interrupted stages resume from their own files (synthesis store, training checkpoints). One
process at a time writes a run folder: the others are told which PID holds it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable

import yaml

from .artifacts import stage_dir
from .config import RunConfig
from . import stage_cache
from .fingerprints import fingerprint, is_complete, marker, output_hashes
from .io import atomic_path, read_json, read_jsonl, write_json
from .locks import run_lock
from .stages import BY_NAME, MODULE, PIPELINE, STAGES


def uses_backend(cfg: RunConfig, stage: str) -> bool:
    """Whether a stage calls the `backend:` model, so its settings belong in that stage's fingerprint."""
    return BY_NAME[stage].uses_backend(cfg)


def model_stages(cfg: RunConfig) -> list[str]:
    """The stages that will load the `backend:` model: `make demo` builds vLLM's environment only
    when this is not empty."""
    return [s.name for s in PIPELINE if s.needs_model(cfg)]


def stage_function(stage: str) -> tuple[Callable[[RunConfig], dict], Callable[[dict], list[str]] | None]:
    module = MODULE[stage]
    return module.run, getattr(module, "summary_lines", None)


def run_stage(cfg: RunConfig, stage: str, force: bool = False, echo: Callable[[str], None] = print) -> dict:
    with run_lock(cfg.out):
        return _run_stage(cfg, stage, force, echo)


def _run_stage(cfg: RunConfig, stage: str, force: bool, echo: Callable[[str], None]) -> dict:
    if not force and is_complete(cfg, stage):
        done = read_json(marker(cfg, stage))
        echo(f"[{stage}] complete ({done.get('seconds', 0):.1f} s when it ran); skipping")
        return done.get("summary", {})
    for this_or_later in STAGES[STAGES.index(stage):]:  # their inputs are about to change
        marker(cfg, this_or_later).unlink(missing_ok=True)
    expected = fingerprint(cfg, stage)
    with stage_cache.cache_lock(cfg, stage, expected, echo):
        if cfg.stage_cache and not force and stage_cache.reuse(cfg, stage, expected):
            _record_attempt(cfg, stage, expected, 0.0, "reused")
            done = read_json(marker(cfg, stage))
            echo(f"[{stage}] reused from the stage cache ({expected}; {done.get('seconds', 0):.1f} s when it ran)")
            return done.get("summary", {})
        return _compute(cfg, stage, expected, echo)


def _compute(cfg: RunConfig, stage: str, expected: str, echo: Callable[[str], None]) -> dict:
    echo(f"[{stage}] running")
    run, lines = stage_function(stage)
    clean_temporary_files(stage_dir(cfg.out, stage))
    if os.environ.get("RANK", "0") == "0":
        stage_cache.unshare(stage_dir(cfg.out, stage))  # a reused stage's shared files: never written through
    start = time.perf_counter()
    try:
        summary = run(cfg) or {}
    except BaseException as e:  # SIGKILL leaves no line; anything else does
        _record_attempt(cfg, stage, expected, time.perf_counter() - start, type(e).__name__)
        raise
    seconds = time.perf_counter() - start
    if os.environ.get("RANK", "0") != "0":  # under the deepspeed launcher only rank 0 keeps the books
        return summary
    write_json(marker(cfg, stage), {
        "stage": stage, "fingerprint": expected, "seconds": seconds,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "summary": summary,
        "outputs": output_hashes(cfg, stage),
    })
    _record_attempt(cfg, stage, expected, seconds, "done")
    if cfg.stage_cache and BY_NAME[stage].cached:
        stage_cache.store(cfg, stage, expected)
    for line in (lines(summary) if lines else []):
        echo(f"[{stage}] {line}")
    echo(f"[{stage}] done in {seconds:.1f} s")
    return summary


# ---------------------------------------------------------------------------------------------
# Wall time: every attempt, so a resumed stage's total is not just its last part

def _record_attempt(cfg: RunConfig, stage: str, fp: str, seconds: float, outcome: str) -> None:
    """Append the attempt to history.jsonl; timings.json keeps, per stage, the completing attempt
    and the total of every recorded attempt at the same fingerprint (a failure and its resume)."""
    history = cfg.out / "history.jsonl"
    row = {"stage": stage, "fingerprint": fp, "seconds": round(seconds, 2), "outcome": outcome,
           "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    with open(history, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
    if outcome not in ("done", "reused"):
        return
    total = sum(r["seconds"] for r in read_jsonl(history) if r["stage"] == stage and r["fingerprint"] == fp)
    path = cfg.out / "timings.json"
    timings = read_json(path) if path.is_file() else {}
    timings[stage] = round(seconds, 2)
    timings.setdefault("total", {})[stage] = round(total, 2)
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


def run_all(cfg: RunConfig, start: str | None = None, force: bool = False,
            echo: Callable[[str], None] = print) -> dict[str, dict]:
    with run_lock(cfg.out):
        save_config(cfg)
        stages = STAGES[STAGES.index(start):] if start else STAGES
        return {stage: run_stage(cfg, stage, force=force, echo=echo) for stage in stages}
