"""Grounding: the sampled entities appear and few names are invented."""

from __future__ import annotations

from collections.abc import Iterable

from ..text import invented_names
from .base import Filter, Flag

class Grounding(Filter):
    """The sampled entities (or an alias) must appear, and few names may be invented.

    Pair and triple passages must mention every sampled entity (their relation is the point);
    summaries and rephrasings, whose entity list is a hint, at least one of them. Passages of
    `sentence_gated` modes (the support gate has already removed every sentence with a name absent
    from the source) skip the invented-name check."""

    name = "grounding"

    def __init__(self, require_entities: bool, max_invented_rate: float, sentence_gated: Iterable[str] = ()):
        self.require_entities, self.max_invented_rate = require_entities, max_invented_rate
        self.sentence_gated = frozenset(sentence_gated)

    def check(self, p, ctx):
        if self.require_entities and p.entities:
            grams = ctx.entities.grams(p.text)
            missing = [e for e in p.entities if not ctx.entities.mentioned(e, grams)]
            if missing and (p.mode in ("pair", "triple") or len(missing) == len(p.entities)):
                return Flag(f"sampled entities not mentioned: {', '.join(missing)}")
        if p.mode in self.sentence_gated:
            return None
        candidates, invented = invented_names(p.text, ctx.vocab)
        if candidates:
            rate = len(invented) / len(candidates)
            if rate > self.max_invented_rate:
                shown = ", ".join(sorted(set(invented))[:5])
                return Flag(f"invented-name rate {rate:.2f} ({len(invented)}/{len(candidates)}: {shown}) "
                            f"> max_invented_rate {self.max_invented_rate}")
        return None
