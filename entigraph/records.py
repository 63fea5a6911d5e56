"""Typed records that stages exchange through files on disk.

Every record is a flat dataclass that round-trips through JSON (``asdict`` / ``from_dict``),
so each stage can be run, resumed and tested alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, TypeVar

T = TypeVar("T")


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build a record from a dict, ignoring keys the record does not know (forward compatible)."""
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in data.items() if k in names})


def to_dict(record: Any) -> dict[str, Any]:
    return asdict(record)


@dataclass
class Document:
    doc_id: str
    title: str
    text: str
    source: str = ""  # file the document came from
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Passage:
    """A window of a document; the unit of extraction, co-occurrence and local context."""

    passage_id: str  # "<doc_id>:p<index>"
    doc_id: str
    index: int
    start: int  # character offsets into Document.text
    end: int
    text: str


@dataclass
class Mention:
    doc_id: str
    passage_id: str
    start: int  # character offsets into Document.text
    end: int
    text: str


@dataclass
class Entity:
    entity_id: str  # normalised key, stable across runs
    name: str  # canonical surface form (the longest / most frequent)
    label: str  # PERSON, ORG, GPE, ..., or CONCEPT for noun phrases and LLM concepts
    aliases: list[str] = field(default_factory=list)
    doc_freq: int = 0
    count: int = 0
    mentions: list[Mention] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)  # extractors that found it: spacy, llm

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Entity":
        ent = from_dict(cls, data)
        ent.mentions = [m if isinstance(m, Mention) else from_dict(Mention, m) for m in ent.mentions]
        return ent


@dataclass
class Question:
    qid: str
    doc_id: str
    question: str
    options: list[str]  # empty for cloze probes scored by likelihood of `answer_text`
    answer: int  # index into options; -1 where there are no options
    answer_text: str = ""
    kind: str = "mc"  # mc | cloze
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class SynthTask:
    """One generation request; its id is a hash of everything that determines the output."""

    task_id: str
    mode: str  # synthesis.modes: summary | pair | triple | rephrase | permute | ... (config.SynthesisMode)
    entities: list[str]  # entity names (canonical)
    doc_ids: list[str]
    passage_ids: list[str]  # the context given to the model
    seq: int  # position in the sampler's order (for reproducible export order)
    unit_ids: list[str] = field(default_factory=list)  # source units it restates (entigraph.facts); [] = none named


@dataclass
class SynthPassage:
    task_id: str
    mode: str
    entities: list[str]
    doc_ids: list[str]
    passage_ids: list[str]
    text: str
    status: str = "ok"  # ok | failed
    error: str = ""
    template: str = ""
    template_version: str = ""
    model: str = ""
    backend: str = ""
    sampling: dict[str, Any] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = ""  # stop | length | error
    seconds: float = 0.0
    seq: int = 0
    prompt: str = ""  # the rendered prompt (kept for prompt-echo and grounding checks)
    unit_ids: list[str] = field(default_factory=list)  # source units it is built from or restates; [] = none named


@dataclass
class Decision:
    """A filter's verdict on one synthetic passage."""

    task_id: str
    kept: bool
    filter: str = ""  # the filter that dropped it
    reason: str = ""  # human-readable, with the measured value and the threshold
