"""Generator-free modes: passages built from the source's own sentences, with provenance; no model.

- ``permute``: a section's sentences in a new order (``permutations`` orders per section);
- ``profile``: every sentence about an entity, from the extractor's mentions (and opening pronouns
  the restorer resolves to it), built once, in the stream of the first document that mentions it;
- ``reading``: a section followed by questions and clozes mined from it;
- ``qa``: grounded question-answer pairs, each answer followed by the sentence that states it;
- ``relation``: for a pair or triple of the graph, the sentences that mention two or more of them,
  then each one's own sentences (``relation_units`` at most);
- ``walk``: sentences chained along a path of co-mentions A-B-C (``walk_length`` entities), the
  first in the document whose stream it belongs to, the next ones in other documents where the
  source allows (Synthesize-on-Graph, 2025).

A relation's or a walk's units are chosen when its task is drawn (their order is the task's
provenance); building it joins them.

The transforms themselves are entigraph/facts/transforms.py; here is what a task of each mode is
(its key and units) and what it becomes. ``NoBackend`` stands in for the model when every mode
asked for is generator-free.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

from ..backends.base import Generation, Request
from ..facts.transforms import Restorer, chain, entity_profile, grounded_qa, mine_reading_tasks, permute
from ..facts.units import SourceUnit
from ..records import Entity

FREE_VERSION = "1"  # bump when a generator-free transform changes its output


def estimate_tokens(text: str) -> int:
    """Tokens without a tokenizer (generator-free passages load no model): 4/3 per word."""
    return len(text.split()) * 4 // 3 + 1


class NoBackend:
    """Stands in for the model when every mode asked for is generator-free: nothing is loaded."""

    name, model = "none", ""

    def generate(self, requests: list[Request]) -> list[Generation]:
        raise RuntimeError("no model is loaded: every synthesis mode asked for is generator-free")

    def count_tokens(self, text: str) -> int:
        return estimate_tokens(text)

    def close(self) -> None:
        pass


def as_generation(text: str) -> Generation:
    """A built passage as if a backend had written it (tokens estimated)."""
    return Generation(text, 0, estimate_tokens(text) if text else 0, "stop")


def profiles(units: list[SourceUnit], entities: list[Entity], restorer: Restorer | None, min_units: int,
             doc_order: dict[str, int]) -> dict[str, list[tuple[Entity, list[SourceUnit]]]]:
    """Home document -> (entity, its units): an entity's profile is built once, in the stream of
    the first document that mentions it; pronouns resolved by the restorer count as mentions."""
    about: dict[str, list[SourceUnit]] = defaultdict(list)
    for u in units:
        ids = list(u.entities)
        if restorer:
            hit = restorer.pronoun_target(u)
            if hit and hit[1].entity_id not in ids:
                ids.append(hit[1].entity_id)
        for eid in ids:
            about[eid].append(u)
    out: dict[str, list[tuple[Entity, list[SourceUnit]]]] = defaultdict(list)
    for ent in entities:
        us = about.get(ent.entity_id, [])
        if len(us) >= min_units:
            home = min((u.doc_id for u in us), key=lambda d: doc_order.get(d, 1 << 30))
            out[home].append((ent, us))
    return out


def permutation_orders(key: str, units: list[SourceUnit], count: int,
                       seed_of: Callable[[str], int]) -> Iterator[tuple[str, list[str]]]:
    """(task key, unit ids in order) for `count` distinct new orders of a section's units (fewer
    when the section has fewer: a short section has few)."""
    seen: set[tuple[str, ...]] = set()
    for k in range(min(count, math.factorial(min(len(units), 8)) - 1)):
        for attempt in range(20):
            sub = f"{key}#{k}" + (f".{attempt}" if attempt else "")
            order = tuple(permute(units, seed_of(sub)).unit_ids)
            if order not in seen:
                seen.add(order)
                yield sub, list(order)
                break


def build(mode: str, units: list[SourceUnit], seed: int, options: Any, restorer: Restorer | None,
          entity: Entity | None = None) -> tuple[str, list[str]] | None:
    """(text, unit ids) of a generator-free task over `units`; None when it yields nothing.
    `options`: the UnitOptions (reading_per_unit, qa_per_unit); `entity`: a profile's entity."""
    if mode == "permute":
        t = permute(units, seed, restorer)
        return t.text, t.unit_ids
    if mode == "profile":
        if entity is None:
            raise ValueError("a profile needs its entity")
        p = entity_profile(entity, units, seed, restorer)
        return (p.text, p.unit_ids) if p else None
    if mode == "reading":
        ts = mine_reading_tasks(units, seed, options.reading_per_unit, restorer)
        return (ts[0].text, ts[0].unit_ids) if ts else None
    if mode == "qa":
        ts = grounded_qa(units, seed, options.qa_per_unit, restorer)
        return ("\n\n".join(t.text for t in ts), list(dict.fromkeys(u for t in ts for u in t.unit_ids))) if ts else None
    if mode in ("relation", "walk"):
        t = chain(units, mode, restorer)
        return (t.text, t.unit_ids) if units else None
    raise ValueError(f"not a generator-free mode: {mode!r}")
