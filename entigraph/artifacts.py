"""Readers of the files each stage keeps under ``runs/<name>/<stage>/`` (what each writes is in its
declaration, ``STAGE.outputs`` in entigraph/stages/). Stages meet only through these files, so each
can be run, resumed and tested alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from .errors import EntigraphError
from .io import read_jsonl
from .records import Document, Entity, Passage, SynthPassage, from_dict

T = TypeVar("T")


def stage_dir(run_out: Path, stage: str) -> Path:
    """A stage's folder is named as the stage (and as its module in entigraph/stages/)."""
    return Path(run_out) / stage


def _need(path: Path, stage: str) -> Path:
    if not path.exists():
        raise EntigraphError(f"{path} is missing: run `entigraph {stage}` first")
    return path


def _records(run_out: Path, stage: str, name: str, cls: type[T]) -> list[T]:
    return [from_dict(cls, r) for r in read_jsonl(_need(stage_dir(run_out, stage) / name, stage))]


def documents(run_out: Path) -> list[Document]:
    return _records(run_out, "extract", "documents.jsonl", Document)


def passages(run_out: Path) -> list[Passage]:
    return _records(run_out, "extract", "passages.jsonl", Passage)


def entities(run_out: Path) -> list[Entity]:
    path = _need(stage_dir(run_out, "extract") / "entities.jsonl", "extract")
    return [Entity.from_json(r) for r in read_jsonl(path)]


def graph(run_out: Path) -> Any:
    """The extract stage's graph, or None where it wrote none (synthesis then uses co-occurrence)."""
    from .graph import load_graph

    path = stage_dir(run_out, "extract") / "graph.graphml"
    return load_graph(path) if path.is_file() else None


def synthetic(run_out: Path) -> list[SynthPassage]:
    return _records(run_out, "synthesize", "passages.jsonl", SynthPassage)


def kept(run_out: Path) -> list[SynthPassage]:
    return _records(run_out, "filter", "kept.jsonl", SynthPassage)


def trained_model(run_out: Path) -> Path:
    return _need(stage_dir(run_out, "train") / "model", "train")
