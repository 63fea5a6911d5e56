"""Active Reading's first step (Lin et al., 2025): the LLM proposes study strategies for a section.

Plans are generated in fixed groups of sections (the corpus's sections in order, ``group`` at a
time) and kept in the store's plans table, so a resumed run sees the same plans; the second step
(a task per strategy) is a rewrite (synthesis/rewrites.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, Protocol

from ..backends.base import Generation, Request
from ..config import SamplingConfig
from ..records import SynthPassage, SynthTask
from ..text import words
from .ids import digest, request_seed, task_id
from .prompts import PLAN, Template
from .sources import Section, UnitTasks

# what fills a plan that proposes fewer strategies than asked for (after the paper's list)
DEFAULT_STRATEGIES = (
    "Paraphrase each sentence of the text in your own words.",
    "Ask questions about the facts of the text and answer each one from the text.",
    "Put the events of the text in order, each with its date or time.",
    "Explain how the people, places and things of the text are related.",
    "Write the key facts of the text as a list.",
)
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


class PlanStore(Protocol):
    def plans(self, task_ids: list[str] | None = None) -> dict[str, SynthPassage]: ...

    def add_plans(self, batch: list[SynthPassage]) -> None: ...


class Planner:
    """Strategies per section, generated with `generate` (the engine's backend) in fixed groups of
    sections and recorded with `record` (the engine's record builder) in the store's plans table.

    `salt`: what else determines a plan (template version, model, sampling, seed), serialised;
    `retry`: a failed plan is generated again (synthesis.retry_failed)."""

    def __init__(self, tasks: UnitTasks, store: PlanStore, generate: Callable[[list[Request]], list[Generation]],
                 record: Callable[[SynthTask, Request, Generation], SynthPassage], template: Template,
                 sampling: SamplingConfig, salt: dict[str, Any], group: int, retry: bool) -> None:
        self.tasks, self.store, self.generate, self.record = tasks, store, generate, record
        self.template, self.sampling, self.retry = template, sampling, retry
        self.sections = [s for d in tasks.docs for s in tasks.sections.get(d, [])]
        self.index = {s.key: i for i, s in enumerate(self.sections)}
        self.group = max(1, group)
        self.count = tasks.options.strategies
        self.salt = json.dumps(salt, sort_keys=True)
        self.cache: dict[str, list[str]] = {}
        self.generated = 0

    def task_id(self, sec: Section) -> str:
        return task_id(PLAN, [], [sec.doc_id], sec.passage_ids,
                       json.dumps([self.salt, sec.key, digest([u.text for u in sec.units]), self.count]))

    def messages(self, sec: Section) -> list[dict[str, str]]:
        return self.template.render(title=self.tasks.docs[sec.doc_id].title, context=self.tasks.text_of(sec.units),
                                    entities=[], count=self.count)

    def strategies(self, sec: Section) -> list[str]:
        if sec.key not in self.cache:
            self._plan_group(self.index[sec.key] // self.group)
        return self.cache[sec.key]

    def _plan_group(self, g: int) -> None:
        members = self.sections[g * self.group:(g + 1) * self.group]
        ids = [self.task_id(s) for s in members]
        stored = self.store.plans(ids)
        if any(i not in stored or (stored[i].status != "ok" and self.retry) for i in ids):
            # the whole group in one call, as the first attempt made it: the same plans on a rerun
            tasks = [SynthTask(i, PLAN, [], [s.doc_id], s.passage_ids, 0, unit_ids=[u.unit_id for u in s.units])
                     for s, i in zip(members, ids)]
            reqs = [Request(self.messages(s), self.sampling, request_seed(i)) for s, i in zip(members, ids)]
            gens = self.generate(reqs)
            self.store.add_plans([self.record(t, r, g_) for t, r, g_ in zip(tasks, reqs, gens)])
            self.generated += len(members)
            stored = self.store.plans(ids)
        for s, i in zip(members, ids):
            plan = stored.get(i)
            self.cache[s.key] = parse_strategies(plan.text if plan and plan.status == "ok" else "", self.count)
