"""Run the stages in order; each writes under runs/<name>/ and is skipped when already complete.

A stage is complete when its folder holds ``.done.json`` with a fingerprint of the settings it
depends on (and of the stages before it). Change a setting and that stage and everything after it
rerun; interrupted stages resume from their own files (synthesis store, training checkpoints).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Callable

import yaml

from . import stages
from .artifacts import STAGES, stage_dir
from .config import RunConfig
from .io import read_json, write_json


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


def fingerprint(cfg: RunConfig, stage: str) -> str:
    """Hash of this stage's settings chained with the fingerprint of the stage before it."""
    index = STAGES.index(stage)
    prev = fingerprint(cfg, STAGES[index - 1]) if index else ""
    data = {s: _section(cfg, s) for s in BY_NAME[stage].inputs(cfg)}
    blob = json.dumps([prev, data], sort_keys=True, default=str)
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
    if not force and is_complete(cfg, stage):
        done = read_json(marker(cfg, stage))
        echo(f"[{stage}] complete ({done.get('seconds', 0):.1f} s when it ran); skipping")
        return done.get("summary", {})
    echo(f"[{stage}] running")
    for later in STAGES[STAGES.index(stage) + 1:]:  # their inputs are about to change
        marker(cfg, later).unlink(missing_ok=True)
    run, lines = stage_function(stage)
    stage_dir(cfg.out, stage).mkdir(parents=True, exist_ok=True)
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
    cfg.out.mkdir(parents=True, exist_ok=True)
    (cfg.out / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), encoding="utf-8")


def run_all(cfg: RunConfig, start: str | None = None, force: bool = False,
            echo: Callable[[str], None] = print) -> dict[str, dict]:
    save_config(cfg)
    stages = STAGES[STAGES.index(start):] if start else STAGES
    return {stage: run_stage(cfg, stage, force=force, echo=echo) for stage in stages}
