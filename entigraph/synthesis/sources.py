"""A corpus's source units as synthesis sees them, and the task streams of the unit-anchored modes.

Source units are the sentences of the corpus (entigraph/facts/units.py). ``UnitTasks`` knows where
each is (the passages that hold it: what the filter's support gate checks against), cuts each
document into sections (consecutive units up to ``section_tokens``, estimated), and streams each
unit-anchored mode's tasks per document: generator-free ones (synthesis/free.py), rewrites and
Active Reading's applications (synthesis/rewrites.py; the strategies come from
synthesis/planner.py). Every task names its source units (``unit_ids``) and the passages that hold
them (``passage_ids``).
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, TypeVar

from ..backends.base import Generation
from ..facts.support import Evidence
from ..facts.transforms import MentionIndex, Restorer, by_document, relation_units, walk_units
from ..facts.units import CONCEPT, SourceUnit, name_forms, source_units
from ..records import Document, Entity, Passage
from ..text import words
from . import free, rewrites
from .ids import derived_seed, digest
from ..modes import GENERATOR_FREE, REWRITES
from .prompts import Template

T = TypeVar("T")


@dataclass(frozen=True)
class UnitOptions:
    permutations: int = 3
    profile_min_units: int = 2
    reading_per_unit: int = 2
    qa_per_unit: int = 1
    rewrite_units: int = 4
    strategies: int = 3
    section_tokens: int = 512
    restore: bool = True

    @classmethod
    def from_config(cls, s: Any) -> UnitOptions:
        return cls(s.permutations, s.profile_min_units, s.reading_per_unit, s.qa_per_unit, s.rewrite_units,
                   s.active_reading_strategies, s.section_tokens, s.restore_names)


@dataclass(frozen=True)
class RelationOptions:
    """The relation and walk modes' settings: kept apart from UnitOptions, whose fields salt the
    other generator-free modes' task ids."""

    relation_units: int = 8
    walk_length: int = 3

    @classmethod
    def from_config(cls, s: Any) -> RelationOptions:
        return cls(s.relation_units, s.walk_length)


@dataclass
class Section:
    key: str  # "<doc_id>:s<index>"
    doc_id: str
    units: list[SourceUnit]
    passage_ids: list[str]


@dataclass
class UnitTask:
    """What the sampler turns into a SynthTask: a mode's task over given source units."""

    mode: str
    key: str  # identifies the task within its mode ("<doc>:s0#1", "<doc>:w4-8", "profile:<entity>")
    doc_ids: list[str]
    passage_ids: list[str]
    unit_ids: list[str]
    entities: list[str] = field(default_factory=list)  # names
    digest: str = ""  # of the source text it is built from: an edited document is new work
    strategy: str = ""  # active_reading: the strategy to apply
    build: list[str] = field(default_factory=list)  # the units it is built from, in the order given to the transform


class Strategies(Protocol):
    """Active Reading's first step (synthesis/planner.Planner)."""

    def strategies(self, sec: Section) -> list[str]: ...


class Reorder(Protocol):
    """The units strategy's reordering of candidates (synthesis/feedback.UnitFeedback)."""

    def least_covered(self, candidates: Iterator[T], units_of: Callable[[T], list[int]]) -> Iterator[T]: ...


class UnitTasks:
    """Source units of a corpus and the tasks of the unit-anchored modes over them."""

    def __init__(self, documents: list[Document], passages: list[Passage], entities: list[Entity],
                 options: UnitOptions = UnitOptions(), seed: int = 0,
                 relations: RelationOptions = RelationOptions()) -> None:
        self.options, self.seed, self.relations = options, seed, relations
        self.docs = {d.doc_id: d for d in documents}
        self.doc_order = {d: i for i, d in enumerate(self.docs)}
        self.entities = list(entities)
        self.by_entity = {e.entity_id: e for e in self.entities}
        self.units = source_units(documents, self.entities)
        self.position = {u.unit_id: i for i, u in enumerate(self.units)}
        self.restorer = Restorer(self.units, self.entities) if options.restore else None
        self.per_doc = by_document(self.units)
        self.passage_text = {p.passage_id: p.text for p in passages}
        self.vocab = {w for d in documents for w in words(d.title + "\n" + d.text)}
        self.forms = name_forms(self.entities)
        self.unit_passages = self._unit_passages(passages)
        self.passage_units: dict[str, list[int]] = defaultdict(list)
        for u in self.units:
            for pid in self.unit_passages[u.unit_id]:
                self.passage_units[pid].append(self.position[u.unit_id])
        self.sections = {d: self._sections(d, us) for d, us in self.per_doc.items()}
        self.profiles = free.profiles(self.units, self.entities, self.restorer, options.profile_min_units,
                                      self.doc_order)
        self.tasks: dict[str, UnitTask] = {}  # task id -> its unit task (what renders or builds it)
        self.planner: Strategies | None = None
        self._evidence: dict[tuple[str, ...], Evidence] = {}
        self._mentions: MentionIndex | None = None

    # -- where things are ------------------------------------------------------------------------

    def _unit_passages(self, passages: list[Passage]) -> dict[str, list[str]]:
        by_doc: dict[str, list[Passage]] = defaultdict(list)
        for p in sorted(passages, key=lambda p: (p.doc_id, p.start)):
            by_doc[p.doc_id].append(p)
        return {u.unit_id: [p.passage_id for p in by_doc.get(u.doc_id, []) if p.start < u.end and u.start < p.end]
                for u in self.units}

    def passages_of(self, units: Iterable[SourceUnit]) -> list[str]:
        return list(dict.fromkeys(pid for u in sorted(units, key=lambda u: (u.doc_id, u.index))
                                  for pid in self.unit_passages[u.unit_id]))

    def _sections(self, doc_id: str, units: list[SourceUnit]) -> list[Section]:
        groups: list[list[SourceUnit]] = []
        used = 0
        for u in units:
            n = free.estimate_tokens(u.text)
            if not groups or used + n > self.options.section_tokens:
                groups.append([])
                used = 0
            groups[-1].append(u)
            used += n
        return [Section(f"{doc_id}:s{i}", doc_id, g, self.passages_of(g)) for i, g in enumerate(groups)]

    def unit(self, unit_id: str) -> SourceUnit:
        return self.units[self.position[unit_id]]

    def text_of(self, units: Iterable[SourceUnit]) -> str:
        """Units in the given order, each made to read alone (full names, opening pronouns)."""
        return " ".join(self.restorer(u) if self.restorer else u.text for u in units)

    def evidence(self, passage_ids: Iterable[str]) -> Evidence:
        key = tuple(passage_ids)
        if key not in self._evidence:
            if len(self._evidence) > 10_000:
                self._evidence.clear()
            self._evidence[key] = Evidence.of("\n\n".join(self.passage_text.get(p, "") for p in key))
        return self._evidence[key]

    def seed_of(self, key: str) -> int:
        return derived_seed(self.seed, key)

    def salt(self, mode: str) -> str:
        """What determines a generator-free mode's output besides its units (the version, seed, options)."""
        salt = {"version": free.FREE_VERSION, "seed": self.seed, "options": asdict(self.options)}
        if mode in ("relation", "walk"):
            salt["relations"] = asdict(self.relations)
        return json.dumps(salt, sort_keys=True)

    @property
    def mentions(self) -> MentionIndex:
        if self._mentions is None:
            self._mentions = MentionIndex(self.units, skip=(e.entity_id for e in self.entities if e.label == CONCEPT))
        return self._mentions

    # -- relations between entities (the sampler draws the pairs and triples, and the walks' starts) --

    def relation(self, entity_ids: list[str]) -> UnitTask | None:
        """The relation task of a pair or triple; None when no sentence mentions two of them."""
        units = relation_units(entity_ids, self.mentions, self.relations.relation_units)
        if not units:
            return None
        names = [self.by_entity[e].name for e in entity_ids]
        order = digest([u.unit_id for u in units])  # the order is the passage: part of its identity
        return self._task("relation", f"relation:{'|'.join(sorted(entity_ids))}:{order}", units, entities=names)

    def walks(self, doc_id: str, starts: list[str]) -> Iterator[UnitTask]:
        """A walk from each of `starts` (the document's entities, salience order) that makes at
        least two hops, or one hop when walk_length is 2."""
        n = self.relations.walk_length
        for eid in starts:
            key = f"walk:{doc_id}:{eid}"
            units, path = walk_units(eid, doc_id, self.mentions, n, random.Random(self.seed_of(key)))
            if len(units) >= min(2, n - 1):
                yield self._task("walk", f"{key}:{digest([u.unit_id for u in units])}", units,
                                 entities=[self.by_entity[e].name for e in path])

    # -- task streams, per document ----------------------------------------------------------------

    def stream(self, doc_id: str, mode: str, feedback: Reorder | None = None) -> Iterator[UnitTask]:
        if mode in REWRITES:
            windows: Iterator[list[SourceUnit]] = iter(rewrites.windows(self.per_doc.get(doc_id, []),
                                                                        self.options.rewrite_units))
            if feedback is not None:
                windows = feedback.least_covered(windows, lambda w: [self.position[u.unit_id] for u in w])
            for w in windows:
                yield self._task(mode, rewrites.window_key(doc_id, w), w)
            return
        if mode == "profile":
            for ent, us in self.profiles.get(doc_id, []):
                yield self._task(mode, f"profile:{ent.entity_id}", us, entities=[ent.name])
            return
        for sec in self.sections.get(doc_id, []):
            if mode == "permute":
                for key, order in free.permutation_orders(sec.key, sec.units, self.options.permutations, self.seed_of):
                    yield self._task(mode, key, sec.units, unit_ids=order)
            elif mode in ("reading", "qa"):
                built = self._build(mode, sec.key, sec.units)
                if built is not None:
                    yield self._task(mode, sec.key, sec.units, unit_ids=built[1])
            elif mode == "active_reading":
                if self.planner is None:
                    raise RuntimeError("active_reading needs a planner (the engine attaches one)")
                for j, strategy in enumerate(self.planner.strategies(sec)):
                    yield self._task(mode, f"{sec.key}#a{j}", sec.units, strategy=strategy)
            else:
                raise ValueError(f"not a unit mode: {mode!r}")

    def _task(self, mode: str, key: str, units: list[SourceUnit], unit_ids: list[str] | None = None,
              entities: list[str] | None = None, strategy: str = "") -> UnitTask:
        ordered = sorted(units, key=lambda u: (u.doc_id, u.index))
        return UnitTask(mode, key, sorted({u.doc_id for u in units}, key=lambda d: self.doc_order.get(d, 1 << 30)),
                        self.passages_of(ordered), unit_ids or [u.unit_id for u in units], entities or [],
                        digest([u.text for u in ordered]), strategy, [u.unit_id for u in units])

    def remember(self, task_id: str, task: UnitTask) -> None:
        self.tasks[task_id] = task

    # -- what a task becomes -------------------------------------------------------------------

    def _build(self, mode: str, key: str, units: list[SourceUnit]) -> tuple[str, list[str]] | None:
        entity = self.by_entity[key.removeprefix("profile:")] if mode == "profile" else None
        return free.build(mode, units, self.seed_of(key), self.options, self.restorer, entity)

    def generation(self, task_id: str) -> Generation:
        """A generator-free task's text, as if a backend had written it (tokens estimated)."""
        ut = self.tasks[task_id]
        built = self._build(ut.mode, ut.key, [self.unit(u) for u in ut.build])
        return free.as_generation(built[0] if built else "")

    def messages(self, task_id: str, templates: dict[str, Template]) -> list[dict[str, str]]:
        """The prompt of an LLM unit task: its units as the context (the strategy for active reading)."""
        ut = self.tasks[task_id]
        if ut.mode in GENERATOR_FREE:
            return []
        return rewrites.messages(templates[ut.mode], self.docs[ut.doc_ids[0]].title,
                                 [self.unit(u) for u in ut.unit_ids], self.text_of, ut.entities, ut.strategy)

    def context(self, task_id: str) -> str:
        """The source text an LLM unit task's prompt quotes."""
        return rewrites.context([self.unit(u) for u in self.tasks[task_id].unit_ids], self.text_of)
