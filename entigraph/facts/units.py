"""Source units: the sentences of the corpus, each with what a restatement of it must carry.

A unit knows its entities (from the extractor's mention offsets), its names, numbers and content
words. ``UnitIndex`` is an inverted index (content word -> units) so that finding the units a
synthetic sentence may restate costs the same whatever the size of the corpus.
"""

from __future__ import annotations

import bisect
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..entities.index import EntityIndex
from ..records import Document, Entity, from_dict
from ..text import (
    content_words,
    drop_contained,
    numbers,
    sentence_names,
    sentence_spans,
    strip_list_marker,
    words,
)

CONCEPT = "CONCEPT"  # the extractor's label for common-noun concepts (entities.spans.CONCEPT)


@dataclass
class UnitMention:
    entity_id: str
    label: str
    start: int  # character offsets into Document.text
    end: int
    text: str


@dataclass
class SourceUnit:
    unit_id: str  # "<doc_id>:u<index>"
    doc_id: str
    index: int
    start: int  # character offsets into Document.text
    end: int
    text: str
    entities: list[str] = field(default_factory=list)  # entity ids mentioned, in order of first mention
    names: list[str] = field(default_factory=list)  # named mentions and capitalised runs
    numbers: list[str] = field(default_factory=list)
    content: list[str] = field(default_factory=list)  # unique stemmed content words, in order
    mentions: list[UnitMention] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SourceUnit:
        unit = from_dict(cls, data)
        unit.mentions = [m if isinstance(m, UnitMention) else from_dict(UnitMention, m) for m in unit.mentions]
        return unit


def name_key(name: str) -> str:
    return " ".join(words(name))


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _unit_names(text: str, mentions: list[UnitMention], lower_vocab: set[str]) -> list[str]:
    """Named mentions plus the names the text itself shows, none contained in another."""
    return drop_contained([m.text for m in mentions if m.label != CONCEPT] + sentence_names(text, lower_vocab))


def _name_matches(text: str, offset: int, ids: Iterable[str], by_id: dict[str, Entity]) -> list[UnitMention]:
    """Offsets of entities known only by name (no mention offsets, e.g. LLM-extracted ones)."""
    out = []
    for eid in ids:
        ent = by_id[eid]
        for form in sorted({ent.name, *ent.aliases}, key=len, reverse=True):
            flags = 0 if form[:1].isupper() else re.IGNORECASE
            m = re.search(r"(?<!\w)" + re.escape(form) + r"(?!\w)", text, flags)
            if m:
                out.append(UnitMention(eid, ent.label, offset + m.start(), offset + m.end(), m.group()))
                break
    return out


def source_units(documents: list[Document], entities: Iterable[Entity] = ()) -> list[SourceUnit]:
    """Every sentence of every document as a unit, with the entities mentioned in it.

    Entities come from their mention offsets; entities without any mention (an LLM extractor
    gives none) are matched by name or alias instead."""
    entities = list(entities)
    by_id = {e.entity_id: e for e in entities}
    by_doc: dict[str, list[UnitMention]] = defaultdict(list)
    for ent in entities:
        for m in ent.mentions:
            by_doc[m.doc_id].append(UnitMention(ent.entity_id, ent.label, m.start, m.end, m.text))
    unmentioned = EntityIndex.build(e for e in entities if not e.mentions)
    lower_vocab = {w for d in documents for w in re.findall(r"\b[a-z][\w’'-]*", d.text)}
    units = []
    for doc in documents:
        mentions = sorted(by_doc.get(doc.doc_id, []), key=lambda m: (m.start, -m.end))
        starts = [m.start for m in mentions]
        for index, (start, end) in enumerate(sentence_spans(doc.text)):
            text = doc.text[start:end]
            lo, hi = bisect.bisect_left(starts, start), bisect.bisect_left(starts, end)
            inside = [m for m in mentions[lo:hi] if m.end <= end]
            if unmentioned.forms:
                inside += _name_matches(text, start, sorted(unmentioned.found(text)), by_id)
                inside.sort(key=lambda m: (m.start, -m.end))
            units.append(SourceUnit(
                unit_id=f"{doc.doc_id}:u{index}", doc_id=doc.doc_id, index=index, start=start, end=end,
                text=text, entities=_unique(m.entity_id for m in inside), names=_unit_names(text, inside, lower_vocab),
                numbers=_unique(numbers(strip_list_marker(text))),  # a list number states nothing (as in support.Claim)
                content=_unique(content_words(text)), mentions=inside))
    return units


def name_forms(entities: Iterable[Entity]) -> dict[str, frozenset[str]]:
    """Lowercase name form -> every form of the same entity ("holmes" -> {"holmes", "sherlock holmes"})."""
    groups: dict[str, set[str]] = defaultdict(set)
    for ent in entities:
        forms = {name_key(f) for f in (ent.name, *ent.aliases)} - {""}
        for f in forms:
            groups[f] |= forms
    return {f: frozenset(g) for f, g in groups.items()}


class UnitIndex:
    """Inverted index over units: content word -> unit positions, globally and per document.

    ``candidates`` returns the units sharing at least one content word with a sentence; words in
    more than ``max_postings`` units are not followed (they would make the lookup grow with the
    corpus), so a unit sharing only such words with the sentence is not a candidate.
    """

    def __init__(self, units: list[SourceUnit], max_postings: int = 200):
        self.units = units
        self.max_postings = max_postings
        self.content = [frozenset(u.content) for u in units]
        self.postings: dict[str, list[int]] = defaultdict(list)
        self.doc_postings: dict[tuple[str, str], list[int]] = defaultdict(list)
        self.by_doc: dict[str, list[int]] = defaultdict(list)
        for i, u in enumerate(units):
            self.by_doc[u.doc_id].append(i)
            for w in self.content[i]:
                self.postings[w].append(i)
                self.doc_postings[(u.doc_id, w)].append(i)

    def candidates(self, content: Iterable[str], doc_ids: Iterable[str] | None = None) -> set[int]:
        """Units sharing a content word with `content`; within `doc_ids` when given (exact there)."""
        out: set[int] = set()
        if doc_ids is not None:
            for d in doc_ids:
                for w in content:
                    out.update(self.doc_postings.get((d, w), ()))
            return out
        for w in content:
            hits = self.postings.get(w, ())
            if len(hits) <= self.max_postings:
                out.update(hits)
        return out
