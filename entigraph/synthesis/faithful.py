"""Synthesis anchored in source units (entigraph/facts): what the modes beyond EntiGraph's are built from.

- Generator-free modes (no model): ``permute`` (a section's sentences in a new order),
  ``profile`` (every sentence about an entity, from the extractor's mentions), ``reading`` (a
  section followed by questions and clozes mined from it) and ``qa`` (grounded question-answer
  pairs, each answer followed by the sentence that states it). Their text is made here.
- Source-anchored rewrites (``explain``, ``quiz``, ``dialogue``, ``list``, ``timeline``,
  ``notes``): the LLM restates a window of ``rewrite_units`` consecutive source sentences in one
  form; two tilings of the document (the second shifted by half a window) give every sentence two
  windows.
- ``active_reading`` (Lin et al., 2025): the LLM proposes study strategies for a section (first step,
  ``Planner``, stored in the store's plans table), then applies each to it (second step, a task per
  strategy). Plans are generated in fixed groups of sections, so a resumed run sees the same plans.

Sections are consecutive sentences of a document up to ``section_tokens`` (estimated tokens).
Every task names its source units (``unit_ids``) and the passages that hold them (``passage_ids``:
what the filter's support gate checks against).

``UnitFeedback`` is the unit coverage the sampler's ``units`` strategy reads: restating sentences
per source unit among the stored passages (LLM passages after the support gate), refreshed only
at fixed points of the task stream so that a resumed run makes the same choices.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from ..backends.base import Generation, Request
from ..facts.coverage import Coverage
from ..facts.support import Evidence, SupportGate
from ..facts.transforms import Restorer, by_document, entity_profile, grounded_qa, mine_reading_tasks, permute
from ..facts.units import SourceUnit, name_forms, source_units
from ..records import Document, Entity, Passage, SynthPassage
from ..text import words
from .prompts import GENERATOR_FREE, PLAN, REWRITES

FREE_VERSION = "1"  # bump when a generator-free transform changes its output
UNIT_MODES = GENERATOR_FREE + REWRITES + ("active_reading",)
LOOKAHEAD = 64  # units strategy: candidates weighed at each pick (the base order's next ones)
# Active Reading: what fills a plan that proposes fewer strategies than asked for (after the paper's list)
DEFAULT_STRATEGIES = (
    "Paraphrase each sentence of the text in your own words.",
    "Ask questions about the facts of the text and answer each one from the text.",
    "Put the events of the text in order, each with its date or time.",
    "Explain how the people, places and things of the text are related.",
    "Write the key facts of the text as a list.",
)
T = TypeVar("T")


def estimate_tokens(text: str) -> int:
    """Tokens without a tokenizer (generator-free passages load no model): 4/3 per word."""
    return len(text.split()) * 4 // 3 + 1


def needs_backend(modes: Iterable[str]) -> bool:
    return any(m not in GENERATOR_FREE for m in modes)


def needs_units(modes: Iterable[str], strategy: str) -> bool:
    return strategy == "units" or any(m in UNIT_MODES for m in modes)


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode()).hexdigest()[:16]


class NoBackend:
    """Stands in for the model when every mode asked for is generator-free: nothing is loaded."""

    name, model = "none", ""

    def generate(self, requests: list[Request]) -> list[Generation]:
        raise RuntimeError("no model is loaded: every synthesis mode asked for is generator-free")

    def count_tokens(self, text: str) -> int:
        return estimate_tokens(text)

    def close(self) -> None:
        pass


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


class UnitTasks:
    """Source units of a corpus and the tasks of the unit-anchored modes over them."""

    def __init__(self, documents: list[Document], passages: list[Passage], entities: list[Entity],
                 options: UnitOptions = UnitOptions(), seed: int = 0) -> None:
        self.options, self.seed = options, seed
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
        self.profiles = self._profiles()
        self.tasks: dict[str, UnitTask] = {}  # task id -> its unit task (what renders or builds it)
        self.planner: Planner | None = None
        self._evidence: dict[tuple[str, ...], Evidence] = {}

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
            n = estimate_tokens(u.text)
            if not groups or used + n > self.options.section_tokens:
                groups.append([])
                used = 0
            groups[-1].append(u)
            used += n
        return [Section(f"{doc_id}:s{i}", doc_id, g, self.passages_of(g)) for i, g in enumerate(groups)]

    def _profiles(self) -> dict[str, list[tuple[Entity, list[SourceUnit]]]]:
        """Home document -> (entity, its units): an entity's profile is built once, in the stream of
        the first document that mentions it; pronouns resolved by the restorer count as mentions."""
        about: dict[str, list[SourceUnit]] = defaultdict(list)
        for u in self.units:
            ids = list(u.entities)
            if self.restorer:
                hit = self.restorer.pronoun_target(u)
                if hit and hit[1].entity_id not in ids:
                    ids.append(hit[1].entity_id)
            for eid in ids:
                about[eid].append(u)
        out: dict[str, list[tuple[Entity, list[SourceUnit]]]] = defaultdict(list)
        for ent in self.entities:
            us = about.get(ent.entity_id, [])
            if len(us) >= self.options.profile_min_units:
                home = min((u.doc_id for u in us), key=lambda d: self.doc_order.get(d, 1 << 30))
                out[home].append((ent, us))
        return out

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

    def _seed(self, key: str) -> int:
        return int(_digest(self.seed, key)[:8], 16)

    def salt(self, mode: str) -> str:
        """What determines a generator-free mode's output besides its units (the version, seed, options)."""
        return json.dumps({"version": FREE_VERSION, "seed": self.seed, "options": asdict(self.options)}, sort_keys=True)

    # -- task streams, per document ----------------------------------------------------------------

    def stream(self, doc_id: str, mode: str, feedback: UnitFeedback | None = None) -> Iterator[UnitTask]:
        if mode in REWRITES:
            windows = self._windows(doc_id)
            if feedback is not None:
                windows = feedback.least_covered(windows, lambda w: [self.position[u.unit_id] for u in w])
            for w in windows:
                yield self._task(mode, f"{doc_id}:w{w[0].index}-{w[-1].index}", w)
            return
        if mode == "profile":
            for ent, us in self.profiles.get(doc_id, []):
                yield self._task(mode, f"profile:{ent.entity_id}", us, entities=[ent.name])
            return
        for sec in self.sections.get(doc_id, []):
            if mode == "permute":
                seen: set[tuple[str, ...]] = set()
                for k in range(min(self.options.permutations, math.factorial(min(len(sec.units), 8)) - 1)):
                    for attempt in range(20):  # a new order each time (a short section has few)
                        key = f"{sec.key}#{k}" + (f".{attempt}" if attempt else "")
                        order = tuple(permute(sec.units, self._seed(key)).unit_ids)
                        if order not in seen:
                            seen.add(order)
                            yield self._task(mode, key, sec.units, unit_ids=list(order))
                            break
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

    def _windows(self, doc_id: str) -> Iterator[list[SourceUnit]]:
        """Windows of rewrite_units consecutive units: one tiling, then one shifted by half a window."""
        us, n = self.per_doc.get(doc_id, []), self.options.rewrite_units
        spans = [(a, min(a + n, len(us))) for a in range(0, len(us), n)]
        shift = (n + 1) // 2
        if n > 1 and len(us) > n:
            spans += [(a, min(a + n, len(us))) for a in range(shift, len(us), n) if (a, min(a + n, len(us))) not in spans]
        return iter([us[a:b] for a, b in spans])

    def _task(self, mode: str, key: str, units: list[SourceUnit], unit_ids: list[str] | None = None,
              entities: list[str] | None = None, strategy: str = "") -> UnitTask:
        ordered = sorted(units, key=lambda u: (u.doc_id, u.index))
        return UnitTask(mode, key, sorted({u.doc_id for u in units}, key=lambda d: self.doc_order.get(d, 1 << 30)),
                        self.passages_of(ordered), unit_ids or [u.unit_id for u in units], entities or [],
                        _digest([u.text for u in ordered]), strategy, [u.unit_id for u in units])

    def remember(self, task_id: str, task: UnitTask) -> None:
        self.tasks[task_id] = task

    # -- what a task becomes -------------------------------------------------------------------

    def _build(self, mode: str, key: str, units: list[SourceUnit]) -> tuple[str, list[str]] | None:
        """(text, unit ids) of a generator-free task; None when it yields nothing."""
        seed = self._seed(key)
        if mode == "permute":
            t = permute(units, seed, self.restorer)
            return t.text, t.unit_ids
        if mode == "profile":
            t = entity_profile(self.by_entity[key.removeprefix("profile:")], units, seed, self.restorer)
            return (t.text, t.unit_ids) if t else None
        if mode == "reading":
            ts = mine_reading_tasks(units, seed, self.options.reading_per_unit, self.restorer)
            return (ts[0].text, ts[0].unit_ids) if ts else None
        if mode == "qa":
            ts = grounded_qa(units, seed, self.options.qa_per_unit, self.restorer)
            return ("\n\n".join(t.text for t in ts), list(dict.fromkeys(u for t in ts for u in t.unit_ids))) if ts else None
        raise ValueError(f"not a generator-free mode: {mode!r}")

    def generation(self, task_id: str) -> Generation:
        """A generator-free task's text, as if a backend had written it (tokens estimated)."""
        ut = self.tasks[task_id]
        built = self._build(ut.mode, ut.key, [self.units[self.position[u]] for u in ut.build])
        text = built[0] if built else ""
        return Generation(text, 0, estimate_tokens(text) if text else 0, "stop")

    def messages(self, task_id: str, templates: dict) -> list[dict[str, str]]:
        """The prompt of an LLM unit task: its units as the context (the strategy for active reading)."""
        ut = self.tasks[task_id]
        if ut.mode in GENERATOR_FREE:
            return []
        units = sorted((self.units[self.position[u]] for u in ut.unit_ids), key=lambda u: (u.doc_id, u.index))
        extra = {"strategy": ut.strategy} if ut.mode == "active_reading" else {}
        return templates[ut.mode].render(title=self.docs[ut.doc_ids[0]].title, context=self.text_of(units),
                                         entities=ut.entities, **extra)


# ---------------------------------------------------------------------------------------------
# Active Reading's first step


_ITEM = re.compile(r"^\s*(?:\*\*)?(?:\d{1,2}[.):]|[-*•]|Strategy\s*\d*\s*[:.])\s*(?:\*\*)?\s*(.+)$", re.IGNORECASE)


def parse_strategies(text: str, count: int) -> list[str]:
    """The first `count` distinct strategies of a plan (numbered or bulleted lines; any lines when
    none is), each of 3-40 words; DEFAULT_STRATEGIES fill what is missing."""
    lines = [l for l in text.splitlines() if l.strip()]
    items = [m.group(1) for l in lines if (m := _ITEM.match(l))] or lines
    out: list[str] = []
    for item in items + list(DEFAULT_STRATEGIES):
        s = item.strip().strip("*").strip()
        if 3 <= len(words(s)) <= 40 and s.lower() not in {x.lower() for x in out}:
            out.append(s)
        if len(out) == count:
            break
    return out


class Planner:
    """Strategies per section, generated by the engine's backend in fixed groups of sections (the
    corpus's sections in order, ``group`` at a time) and kept in the store's plans table."""

    def __init__(self, tasks: UnitTasks, engine: Any, store: Any) -> None:
        self.tasks, self.engine, self.store = tasks, engine, store
        self.sections = [s for d in tasks.docs for s in tasks.sections.get(d, [])]
        self.index = {s.key: i for i, s in enumerate(self.sections)}
        self.group = max(1, engine.cfg.backend.batch_size)
        self.count = tasks.options.strategies
        self.salt = json.dumps({"template": engine.templates[PLAN].version, "model": engine.backend.model,
                                "sampling": asdict(engine.sampling[PLAN]), "seed": engine.cfg.seed}, sort_keys=True)
        self.cache: dict[str, list[str]] = {}
        self.generated = 0

    def task_id(self, sec: Section) -> str:
        from .sampler import task_id

        return task_id(PLAN, [], [sec.doc_id], sec.passage_ids,
                       json.dumps([self.salt, sec.key, _digest([u.text for u in sec.units]), self.count]))

    def messages(self, sec: Section) -> list[dict[str, str]]:
        return self.engine.templates[PLAN].render(title=self.tasks.docs[sec.doc_id].title,
                                                  context=self.tasks.text_of(sec.units), entities=[], count=self.count)

    def strategies(self, sec: Section) -> list[str]:
        if sec.key not in self.cache:
            self._plan_group(self.index[sec.key] // self.group)
        return self.cache[sec.key]

    def _plan_group(self, g: int) -> None:
        from .engine import request_seed

        members = self.sections[g * self.group:(g + 1) * self.group]
        ids = [self.task_id(s) for s in members]
        stored = self.store.plans(ids)
        retry = self.engine.cfg.synthesis.retry_failed
        if any(i not in stored or (stored[i].status != "ok" and retry) for i in ids):
            # the whole group in one call, as the first attempt made it: the same plans on a rerun
            sampling = self.engine.sampling[PLAN]
            reqs = [Request(self.messages(s), sampling, request_seed(i)) for s, i in zip(members, ids)]
            gens = self.engine.backend.generate(reqs)
            b = self.engine.backend
            self.store.add_plans([SynthPassage(
                task_id=i, mode=PLAN, entities=[], doc_ids=[s.doc_id], passage_ids=s.passage_ids,
                unit_ids=[u.unit_id for u in s.units], text=g_.text,
                status="failed" if g_.finish_reason == "error" else "ok", error=g_.error,
                template=PLAN + ".txt", template_version=self.engine.templates[PLAN].version, model=b.model,
                backend=b.name, sampling=asdict(sampling), prompt_tokens=g_.prompt_tokens,
                completion_tokens=g_.completion_tokens, finish_reason=g_.finish_reason, seconds=g_.seconds,
                prompt=r.messages[-1]["content"]) for s, i, r, g_ in zip(members, ids, reqs, gens)])
            self.generated += len(members)
            stored = self.store.plans(ids)
        for s, i in zip(members, ids):
            plan = stored.get(i)
            self.cache[s.key] = parse_strategies(plan.text if plan and plan.status == "ok" else "", self.count)


# ---------------------------------------------------------------------------------------------
# Unit coverage for the `units` strategy


class UnitFeedback:
    """Restating sentences per source unit among the passages generated so far (LLM passages after
    the support gate, with its default thresholds), plus the picks made since the last refresh.

    The sampler calls ``refresh`` with the task ids it yielded since the previous refresh, at fixed
    positions of its stream (multiples of the engine's window): by then the engine has generated
    and committed every one of them, so the counts depend on the stream alone, and a resumed run
    sees the same counts at the same positions as an uninterrupted one."""

    def __init__(self, tasks: UnitTasks, k: int = 3) -> None:
        self.tasks, self.k = tasks, k
        self.lookup: Callable[[list[str]], list[SynthPassage]] | None = None  # the store's ok records
        self.reset()

    def reset(self) -> None:
        self.coverage = Coverage(self.tasks.units, self.tasks.vocab, k=self.k, forms=self.tasks.forms)
        self.gate = SupportGate(forms=self.tasks.forms)
        self.pending: Counter = Counter()  # unit position -> picks since the last refresh
        self.refreshes = 0

    @property
    def counts(self) -> list[int]:
        return self.coverage.counts["*"]

    def refresh(self, task_ids: list[str]) -> None:
        self.pending.clear()
        self.refreshes += 1
        if self.lookup is not None and task_ids:
            for p in self.lookup(task_ids):
                self.add(p)

    def add(self, p: SynthPassage) -> None:
        text = p.text
        if p.mode not in GENERATOR_FREE:
            res = self.gate.apply(text, self.tasks.evidence(p.passage_ids))
            if not res.kept:
                return
            text = res.text
        self.coverage.add(text, p.mode, p.doc_ids)

    def score(self, positions: list[int]) -> float:
        """Mean coverage (capped at k, picks since the refresh included) of the units: lower first."""
        if not positions:
            return float(self.k)
        counts = self.counts
        return sum(min(self.k, counts[i] + self.pending[i]) for i in positions) / len(positions)

    def least_covered(self, candidates: Iterator[T], units_of: Callable[[T], list[int]]) -> Iterator[T]:
        """The candidates reordered: each pick is the one of the next LOOKAHEAD (in their base order)
        whose units are least covered; ties keep the base order."""
        pool = []
        for c in candidates:
            pool.append((c, units_of(c)))
            if len(pool) >= LOOKAHEAD:
                break
        while pool:
            best = min(range(len(pool)), key=lambda i: (self.score(pool[i][1]), i))
            item, positions = pool.pop(best)
            self.pending.update(positions)
            yield item
            for c in candidates:  # refill from the base order
                pool.append((c, units_of(c)))
                break
