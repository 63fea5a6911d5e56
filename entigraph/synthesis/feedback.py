"""Unit coverage for the sampler's ``units`` strategy: which candidates' source units are restated least.

Restating sentences per source unit among the stored passages (LLM passages after the support
gate), refreshed only at fixed points of the task stream so that a resumed run makes the same choices.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import TypeVar

from ..facts.coverage import Coverage
from ..facts.support import SupportGate
from ..records import SynthPassage
from ..modes import GENERATOR_FREE
from .sources import UnitTasks

LOOKAHEAD = 64  # candidates weighed at each pick (the base order's next ones)
T = TypeVar("T")


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
