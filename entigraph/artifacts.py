"""Where each stage keeps its files under ``runs/<name>/``, and readers for them.

Stages meet only through these files, so each can be run, resumed and tested alone:

    extract/     documents.jsonl passages.jsonl entities.jsonl graph.graphml graph.json graph.png summary.json
    synth/       store.sqlite passages.jsonl summary.json
    filter/      kept.jsonl dropped.jsonl report.json summary.json
    train/       model/ checkpoints/ data/ loss.json loss.png summary.json
    eval/        records.jsonl results.json retrieval.json summary.json
    results.json report.html
"""

from __future__ import annotations

from pathlib import Path

from .errors import EntigraphError
from .io import read_jsonl
from .records import Document, Entity, Passage, SynthPassage, from_dict

STAGES = ("extract", "synthesize", "filter", "train", "eval", "report")
STAGE_DIRS = {"extract": "extract", "synthesize": "synth", "filter": "filter", "train": "train",
              "eval": "eval", "report": "report"}


def stage_dir(run_out: Path, stage: str) -> Path:
    return Path(run_out) / STAGE_DIRS[stage]


def _need(path: Path, stage: str) -> Path:
    if not path.exists():
        raise EntigraphError(f"{path} is missing: run `entigraph {stage}` first")
    return path


def documents(run_out: Path) -> list[Document]:
    p = _need(stage_dir(run_out, "extract") / "documents.jsonl", "extract")
    return [from_dict(Document, r) for r in read_jsonl(p)]


def passages(run_out: Path) -> list[Passage]:
    p = _need(stage_dir(run_out, "extract") / "passages.jsonl", "extract")
    return [from_dict(Passage, r) for r in read_jsonl(p)]


def entities(run_out: Path) -> list[Entity]:
    p = _need(stage_dir(run_out, "extract") / "entities.jsonl", "extract")
    return [Entity.from_json(r) for r in read_jsonl(p)]


def graph_path(run_out: Path) -> Path:
    return _need(stage_dir(run_out, "extract") / "graph.graphml", "extract")


def synthetic(run_out: Path) -> list[SynthPassage]:
    p = _need(stage_dir(run_out, "synthesize") / "passages.jsonl", "synthesize")
    return [from_dict(SynthPassage, r) for r in read_jsonl(p)]


def kept(run_out: Path) -> list[SynthPassage]:
    p = _need(stage_dir(run_out, "filter") / "kept.jsonl", "filter")
    return [from_dict(SynthPassage, r) for r in read_jsonl(p)]


def trained_model(run_out: Path) -> Path:
    return _need(stage_dir(run_out, "train") / "model", "train")
